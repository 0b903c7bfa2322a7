// attention_sink.cuh (included by attention.cu: it uses that file's tile loads and mma.sync primitives): the
// sink part of a SINK_WINDOW layer for the cuDNN path. cuDNN cannot express "sink OR window" in one graph, so
// attention_cudnn.cu runs causal+window through cuDNN (call 1) and adds the keys k < sink that a query q sees
// only through the sink (q - k >= W) here, merged by log-sum-exp. These are at most 64 keys (one key tile)
// seen by nearly every query: cuDNN's own graph for them parallelises its backward over key tiles (one CTA per
// head for the whole sequence: 7.5 ms of a 33 ms backward at 128K), and its merge goes through a full-size
// output tensor. Here the forward merges in place, and the backward splits the query tiles into chunks
// whose partial dK/dV (fp32) a second kernel sums in a fixed order: deterministic, no atomics.
//
// Shapes as attention.h: q, out, dq (B,S,H,D); k, v, dk, dv (B,S,KVH,D); lse (B,H,S) natural log.

#define SINK_CHUNK 32  // query tiles per backward CTA (fewer partials vs more CTAs: 128K, H=32 gives 2016 CTAs)

// forward: grid (query tiles qt0.., H, B). out/lse hold call 1's result and are merged in place:
// L = logaddexp(L1, L2), out = out * e^(L1-L) + O2 * e^(L2-L). Rows without a visible sink key are untouched.
// smem: Q, K, V, out tiles (padded rows).
template <int D>
__global__ void __launch_bounds__(NTHREADS) attn_sink_fwd_kernel(bf16 *__restrict__ out, float *__restrict__ lse,
                                                                  const bf16 *__restrict__ q, const bf16 *__restrict__ k,
                                                                  const bf16 *__restrict__ v, int S, int H, int KVH,
                                                                  int sink, int W, float scale_log2, int qt0) {
    constexpr int LDS = D + 8, TSZ = TILE * LDS;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *sQ = (bf16 *)smem_raw, *sK = sQ + TSZ, *sV = sK + TSZ, *sO = sV + TSZ;
    const int qt = qt0 + blockIdx.x, h = blockIdx.y, b = blockIdx.z, kvh = h / (H / KVH);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t4 = lane & 3;
    const int q0 = qt * TILE;
    const int64_t ldq = (int64_t)H * D, ldk = (int64_t)KVH * D;
    bf16 *og = out + ((int64_t)b * S * H + h) * D;
    load_tile<D>(sQ, q + ((int64_t)b * S * H + h) * D, ldq, q0, S);
    load_tile<D>(sK, k + ((int64_t)b * S * KVH + kvh) * D, ldk, 0, sink);  // rows >= sink read as zeros
    load_tile<D>(sV, v + ((int64_t)b * S * KVH + kvh) * D, ldk, 0, sink);
    load_tile<D>(sO, og, ldq, q0, S);
    cp_async_commit();
    cp_async_wait_all();
    __syncthreads();

    // S (16 queries of this warp x 64 keys)
    float s[8][4];
    mma_rows_tileT<D>(s, sQ + (warp * 16 + (lane & 15)) * LDS + (lane >> 4) * 8, sK);
    // softmax over the visible sink keys (one tile: no running rescale)
    float mx[2], l[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int row = q0 + warp * 16 + g + r * 8;
        float m = -INFINITY;
#pragma unroll
        for (int i = 0; i < 8; i++)
#pragma unroll
            for (int c = 0; c < 2; c++) {
                int key = i * 8 + t4 * 2 + c;
                float x = s[i][2 * r + c] * scale_log2;
                if (row >= S || key >= sink || row - key < W) x = -INFINITY;
                s[i][2 * r + c] = x;
                m = fmaxf(m, x);
            }
        m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 1));
        m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 2));
        const float base = m == -INFINITY ? 0.f : m;
        float sum = 0.f;
#pragma unroll
        for (int i = 0; i < 8; i++)
#pragma unroll
            for (int c = 0; c < 2; c++) {
                s[i][2 * r + c] = ex2f(s[i][2 * r + c] - base);
                sum += s[i][2 * r + c];
            }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        mx[r] = m, l[r] = sum;
    }
    // O2 (unnormalised) = P V
    float acc[D / 8][4];
#pragma unroll
    for (int i = 0; i < D / 8; i++) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.f;
    mma_frag_tile<D>(acc, s, sV);
    // merge into this warp's 16 rows of the out tile (each lane owns its elements), then write them back
    float *lrow = lse + ((int64_t)b * H + h) * S;
    float L1[2], w1[2], w2[2], L[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int row = q0 + warp * 16 + g + r * 8;
        L1[r] = row < S ? lrow[row] : -INFINITY;
        if (l[r] > 0.f) {
            const float L2 = mx[r] * LN2 + logf(l[r]);
            const float m = fmaxf(L1[r], L2);
            L[r] = m + logf(expf(L1[r] - m) + expf(L2 - m));
            w1[r] = L1[r] == -INFINITY ? 0.f : expf(L1[r] - L[r]);
            w2[r] = expf(L2 - L[r]) / l[r];
        } else {
            L[r] = L1[r], w1[r] = 1.f, w2[r] = 0.f;
        }
    }
    __syncwarp();  // every lane has read its rows' L1 before the quad leaders overwrite them
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int row = q0 + warp * 16 + g + r * 8;
        if (t4 == 0 && row < S && l[r] > 0.f) lrow[row] = L[r];
        bf16 *o = sO + (warp * 16 + g + r * 8) * LDS + t4 * 2;
#pragma unroll
        for (int i = 0; i < D / 8; i++) {
            float2 x = __bfloat1622float2(*(const __nv_bfloat162 *)(o + i * 8));
            *(uint32_t *)(o + i * 8) =
                pack_bf16(w1[r] * x.x + w2[r] * acc[i][2 * r], w1[r] * x.y + w2[r] * acc[i][2 * r + 1]);
        }
    }
    __syncwarp();
    warp_store_staged<D>(og, ldq, sO + warp * 16 * LDS, q0, S, warp, lane);
}

// backward: grid (chunks, H, B); CTA = the 64 sink keys of query head h against query tiles qt0 + chunk*CH ..
// (transposed problem as attn_bwd_dkdv_kernel: warp w owns keys 16w..16w+15). Per query tile:
// S^T = K Q^T, P^T = exp2(S^T c - lse) (lse: the merged one), delta = rowsum(dO O), dP^T = V dO^T,
// dS^T = P^T (dP^T - delta); dV += P^T dO; dK += dS^T Q; dq += scale * dS K (this CTA is the only writer of
// these dq rows' sink share: a plain read-add-write after call 1 wrote dq). dK/dV partials (fp32, unscaled)
// go to part[(b*H + h)*nch + chunk] for attn_sink_reduce_kernel.
// smem: K, V; Q, dO, O and the tile's dq rows double-buffered (dq is prefetched with the others: a synchronous
// read-add-write left the 4 warps of the one CTA per SM waiting on global loads, 4.5 ms at 128K);
// dS^T [64][72]; lse*log2e, delta [2][64].
template <int D>
__global__ void __launch_bounds__(NTHREADS) attn_sink_bwd_kernel(
    bf16 *__restrict__ dq, float *__restrict__ part, const bf16 *__restrict__ q, const bf16 *__restrict__ k,
    const bf16 *__restrict__ v, const bf16 *__restrict__ dout, const bf16 *__restrict__ out,
    const float *__restrict__ lse, int S, int H, int KVH, int sink, int W, float scale, float scale_log2, int qt0,
    int nqt, int nch) {
    constexpr int LDS = D + 8, TSZ = TILE * LDS, LDSS = TILE + 8;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *sK = (bf16 *)smem_raw, *sV = sK + TSZ;
    bf16 *sQ = sV + TSZ, *sDO = sQ + 2 * TSZ, *sOt = sDO + 2 * TSZ;  // [2] each
    bf16 *sDQ = sOt + 2 * TSZ;                                       // [2] dq rows of the tile
    bf16 *sS = sDQ + 2 * TSZ;                                        // dS^T [64 keys][LDSS]
    float *sL = (float *)(sS + TILE * LDSS), *sD = sL + 2 * TILE;    // [2][64] each

    const int ch = blockIdx.x, h = blockIdx.y, b = blockIdx.z, kvh = h / (H / KVH);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t4 = lane & 3;
    const int64_t ldq = (int64_t)H * D, ldk = (int64_t)KVH * D;
    const bf16 *qg = q + ((int64_t)b * S * H + h) * D, *dog = dout + ((int64_t)b * S * H + h) * D;
    const bf16 *oog = out + ((int64_t)b * S * H + h) * D;
    bf16 *dqg = dq + ((int64_t)b * S * H + h) * D;
    const float *lrow = lse + ((int64_t)b * H + h) * S;
    const int t_first = qt0 + ch * SINK_CHUNK;
    const int n = min(SINK_CHUNK, nqt - t_first);

#define SINK_PREFETCH(i, buf)                                                               \
    do {                                                                                    \
        const int r0_ = (t_first + (i)) * TILE;                                             \
        load_tile<D>(sQ + (buf) * TSZ, qg, ldq, r0_, S);                                    \
        load_tile<D>(sDO + (buf) * TSZ, dog, ldq, r0_, S);                                  \
        load_tile<D>(sOt + (buf) * TSZ, oog, ldq, r0_, S);                                  \
        load_tile<D>(sDQ + (buf) * TSZ, dqg, ldq, r0_, S);                                  \
        cp_async_commit();                                                                  \
        if (threadIdx.x < TILE) {                                                           \
            int row_ = r0_ + threadIdx.x;                                                   \
            sL[(buf) * TILE + threadIdx.x] = row_ < S ? lrow[row_] * LOG2E : INFINITY;     \
        }                                                                                   \
    } while (0)

    load_tile<D>(sK, k + ((int64_t)b * S * KVH + kvh) * D, ldk, 0, sink);
    load_tile<D>(sV, v + ((int64_t)b * S * KVH + kvh) * D, ldk, 0, sink);
    cp_async_commit();
    SINK_PREFETCH(0, 0);

    float dka[D / 8][4], dva[D / 8][4];
#pragma unroll
    for (int i = 0; i < D / 8; i++)
#pragma unroll
        for (int c = 0; c < 4; c++) dka[i][c] = dva[i][c] = 0.f;
    const bf16 *aK = sK + (warp * 16 + (lane & 15)) * LDS + (lane >> 4) * 8;
    const bf16 *aV = sV + (warp * 16 + (lane & 15)) * LDS + (lane >> 4) * 8;
    const int key_r0 = warp * 16 + g;  // this lane's key rows: key_r0, key_r0 + 8

    for (int i = 0; i < n; i++) {
        const int buf = i & 1;
        cp_async_wait_all();
        __syncthreads();  // tile i landed; every warp is done with tile i-1 (its buffers and sS)
        if (i + 1 < n) SINK_PREFETCH(i + 1, buf ^ 1);
        const bf16 *cQ = sQ + buf * TSZ, *cO = sDO + buf * TSZ, *cOt = sOt + buf * TSZ;
        bf16 *cDQ = sDQ + buf * TSZ;
        const float *cL = sL + buf * TILE;
        float *cD = sD + buf * TILE;
        const int q0 = (t_first + i) * TILE;
        {  // delta = rowsum(dO * O): two threads per row
            const int row = threadIdx.x >> 1, half = threadIdx.x & 1;
            const bf16 *x = cO + row * LDS + half * (D / 2), *y = cOt + row * LDS + half * (D / 2);
            float sum = 0.f;
#pragma unroll
            for (int j = 0; j < D / 2; j += 2) {
                float2 a = __bfloat1622float2(*(const __nv_bfloat162 *)(x + j));
                float2 c = __bfloat1622float2(*(const __nv_bfloat162 *)(y + j));
                sum += a.x * c.x + a.y * c.y;
            }
            sum += __shfl_xor_sync(0xffffffffu, sum, 1);
            if (!half) cD[row] = sum;
        }
        // S^T (16 keys x 64 queries)
        float s[8][4];
        mma_rows_tileT<D>(s, aK, cQ);
        // P^T: visible iff key < sink and query - key >= W (query < S)
#pragma unroll
        for (int x = 0; x < 8; x++)
#pragma unroll
            for (int c = 0; c < 4; c++) {
                int qi = x * 8 + t4 * 2 + (c & 1), qq = q0 + qi, key = key_r0 + (c >> 1) * 8;
                float p = ex2f(s[x][c] * scale_log2 - cL[qi]);
                s[x][c] = (qq < S && key < sink && qq - key >= W) ? p : 0.f;
            }
        // dV += P^T dO
        mma_frag_tile<D>(dva, s, cO);
        // dP^T = V dO^T
        float dp_[8][4];
        mma_rows_tileT<D>(dp_, aV, cO);
        __syncthreads();  // delta (cD) written by all
        // dS^T = P^T (dP^T - delta), to smem for the dQ product
#pragma unroll
        for (int x = 0; x < 8; x++) {
#pragma unroll
            for (int c = 0; c < 4; c++) dp_[x][c] = s[x][c] * (dp_[x][c] - cD[x * 8 + t4 * 2 + (c & 1)]);
            *(uint32_t *)(sS + key_r0 * LDSS + x * 8 + t4 * 2) = pack_bf16(dp_[x][0], dp_[x][1]);
            *(uint32_t *)(sS + (key_r0 + 8) * LDSS + x * 8 + t4 * 2) = pack_bf16(dp_[x][2], dp_[x][3]);
        }
        // dK += dS^T Q
        mma_frag_tile<D>(dka, dp_, cQ);
        __syncthreads();  // sS complete
        // dq rows of this warp (queries 16w..) += scale * dS K, in halves of 64 columns, in the smem copy
#pragma unroll
        for (int half = 0; half < D / 64; half++) {
            float qa[8][4];
            mma_dsT_tile<D>(qa, sS, sK, half);
            bf16 *st = cDQ + (warp * 16 + g) * LDS + half * 64 + t4 * 2;
#pragma unroll
            for (int x = 0; x < 8; x++)
#pragma unroll
                for (int r = 0; r < 2; r++) {
                    __nv_bfloat162 *e = (__nv_bfloat162 *)(st + r * 8 * LDS + x * 8);
                    float2 y = __bfloat1622float2(*e);
                    *(uint32_t *)e = pack_bf16(y.x + qa[x][2 * r] * scale, y.y + qa[x][2 * r + 1] * scale);
                }
        }
        __syncwarp();
        warp_store_staged<D>(dqg, ldq, cDQ + warp * 16 * LDS, q0, S, warp, lane);  // this warp's 16 dq rows
    }
#undef SINK_PREFETCH

    // partials: this lane's fragment elements, fp32, unscaled
    float *pk = part + (((int64_t)b * H + h) * nch + ch) * (int64_t)(2 * TILE * D), *pv = pk + TILE * D;
#pragma unroll
    for (int i = 0; i < D / 8; i++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int64_t at = (int64_t)(key_r0 + r * 8) * D + i * 8 + t4 * 2;
            *(float2 *)(pk + at) = make_float2(dka[i][2 * r], dka[i][2 * r + 1]);
            *(float2 *)(pv + at) = make_float2(dva[i][2 * r], dva[i][2 * r + 1]);
        }
}

// dk[b, r, kvh, :] += scale * sum, dv[b, r, kvh, :] += sum over the group's query heads and the chunks, in
// order (deterministic), for the sink rows r < sink. One thread per (b, kvh, r, column).
template <int D>
__global__ void attn_sink_reduce_kernel(bf16 *__restrict__ dk, bf16 *__restrict__ dv, const float *__restrict__ part,
                                        int B, int S, int H, int KVH, int sink, int nch, float scale) {
    const int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, n = (int64_t)B * KVH * sink * D;
    if (t >= n) return;
    const int d = (int)(t % D), r = (int)((t / D) % sink), kvh = (int)((t / ((int64_t)D * sink)) % KVH);
    const int b = (int)(t / ((int64_t)D * sink * KVH)), G = H / KVH;
    float sk = 0.f, sv = 0.f;
    for (int hh = 0; hh < G; hh++) {
        const float *p = part + (((int64_t)b * H + kvh * G + hh) * nch) * (int64_t)(2 * TILE * D) + r * D + d;
        for (int c = 0; c < nch; c++, p += 2 * TILE * D) sk += p[0], sv += p[TILE * D];
    }
    const int64_t at = (((int64_t)b * S + r) * KVH + kvh) * D + d;
    dk[at] = __float2bfloat16(__bfloat162float(dk[at]) + sk * scale);
    dv[at] = __float2bfloat16(__bfloat162float(dv[at]) + sv);
}

// ---- host side ------------------------------------------------------------------------------------------
static size_t smem_sink_fwd(int D) { return (size_t)4 * TILE * (D + 8) * sizeof(bf16); }
static size_t smem_sink_bwd(int D) {
    return (size_t)10 * TILE * (D + 8) * sizeof(bf16) + (size_t)TILE * (TILE + 8) * sizeof(bf16) +
           (size_t)4 * TILE * sizeof(float);
}
extern "C" int lg_cuda_attention_sink_supported(int S, int H, int KVH, int D, int sink, int window) {
    return (D == 64 || D == 128) && sink >= 1 && sink <= TILE && window >= 1 && window < S && H % KVH == 0;
}

static void sink_check(const char *op, int S, int H, int KVH, int D, int sink, int window) {
    if (lg_cuda_attention_sink_supported(S, H, KVH, D, sink, window)) return;
    fprintf(stderr,
            "lgtrain: error: %s: S=%d H=%d KVH=%d D=%d sink=%d window=%d: expected head_dim 64 or 128, 1 <= sink <= %d, "
            "1 <= window < S, H a multiple of KVH (callers check lg_cuda_attention_sink_supported first)\n",
            op, S, H, KVH, D, sink, window, TILE);
    exit(1);
}

static void sink_smem_limits(void) {
    static int done;
    if (done) return;
    raise_smem(attn_sink_fwd_kernel<64>, smem_sink_fwd(64));
    raise_smem(attn_sink_fwd_kernel<128>, smem_sink_fwd(128));
    raise_smem(attn_sink_bwd_kernel<64>, smem_sink_bwd(64));
    raise_smem(attn_sink_bwd_kernel<128>, smem_sink_bwd(128));
    done = 1;
}

extern "C" void lg_cuda_attention_sink_fwd(void *out, float *lse, const void *q, const void *k, const void *v, int B,
                                           int S, int H, int KVH, int D, int sink, int window, cudaStream_t stream) {
    sink_check("attention_sink_fwd", S, H, KVH, D, sink, window);
    sink_smem_limits();
    const int nqt = (S + TILE - 1) / TILE, qt0 = window / TILE;  // rows q >= window are the only ones that see one
    const float scale_log2 = (float)(1.0 / sqrt((double)D)) * LOG2E;
    dim3 grid(nqt - qt0, H, B);
    if (D == 128)
        attn_sink_fwd_kernel<128><<<grid, NTHREADS, smem_sink_fwd(128), stream>>>(
            (bf16 *)out, lse, (const bf16 *)q, (const bf16 *)k, (const bf16 *)v, S, H, KVH, sink, window, scale_log2, qt0);
    else
        attn_sink_fwd_kernel<64><<<grid, NTHREADS, smem_sink_fwd(64), stream>>>(
            (bf16 *)out, lse, (const bf16 *)q, (const bf16 *)k, (const bf16 *)v, S, H, KVH, sink, window, scale_log2, qt0);
    cudaCheckLaunch("attn_sink_fwd_kernel");
}

extern "C" void lg_cuda_attention_sink_bwd(void *dq, void *dk, void *dv, const void *dout, const void *q, const void *k,
                                           const void *v, const void *out, const float *lse, int B, int S, int H,
                                           int KVH, int D, int sink, int window, cudaStream_t stream) {
    sink_check("attention_sink_bwd", S, H, KVH, D, sink, window);
    sink_smem_limits();
    const int nqt = (S + TILE - 1) / TILE, qt0 = window / TILE;
    const int nch = (nqt - qt0 + SINK_CHUNK - 1) / SINK_CHUNK;
    const double sc = 1.0 / sqrt((double)D);
    const float scale = (float)sc, scale_log2 = (float)sc * LOG2E;
    float *part = (float *)workspace(2, sizeof(float) * (size_t)B * H * nch * 2 * TILE * D);
    dim3 grid(nch, H, B);
    if (D == 128)
        attn_sink_bwd_kernel<128><<<grid, NTHREADS, smem_sink_bwd(128), stream>>>(
            (bf16 *)dq, part, (const bf16 *)q, (const bf16 *)k, (const bf16 *)v, (const bf16 *)dout, (const bf16 *)out,
            lse, S, H, KVH, sink, window, scale, scale_log2, qt0, nqt, nch);
    else
        attn_sink_bwd_kernel<64><<<grid, NTHREADS, smem_sink_bwd(64), stream>>>(
            (bf16 *)dq, part, (const bf16 *)q, (const bf16 *)k, (const bf16 *)v, (const bf16 *)dout, (const bf16 *)out,
            lse, S, H, KVH, sink, window, scale, scale_log2, qt0, nqt, nch);
    cudaCheckLaunch("attn_sink_bwd_kernel");
    const int64_t n = (int64_t)B * KVH * sink * D;
    auto red = D == 128 ? attn_sink_reduce_kernel<128> : attn_sink_reduce_kernel<64>;
    red<<<(unsigned)((n + 255) / 256), 256, 0, stream>>>((bf16 *)dk, (bf16 *)dv, part, B, S, H, KVH, sink, nch, scale);
    cudaCheckLaunch("attn_sink_reduce_kernel");
}
