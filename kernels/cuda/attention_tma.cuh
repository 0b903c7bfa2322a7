// attention_tma.cuh (included by attention.cu after the v4 kernels; uses the wgmma helpers and wg_fwd_tile):
// v7 forward, the wgmma default (LG_ATTN_PIPE bit 128; with 512: Q in registers, three CTAs per SM, the default;
// with 64: three stages without the per-tile barrier).
//
// Why (bench/results/attention.md, session 4 profile): v3's forward issued 853 instructions per warp per key
// tile for 12 HGMMAs; the issue slots, not L2 bytes, were the limit (v6, which halved the L2 bytes, was slower).
// About 230 of those were cp.async address arithmetic: 16 LDGSTS per thread per tile, each with its own row
// test, 64-bit address and swizzle. Here one thread issues the K and V tiles as TMA boxes (the hardware writes
// the same 128-byte swizzle), completing on an mbarrier the consumers wait on; the body per tile stays
// wg_fwd_tile (v3's products, order and masking). No producer warp and no cluster: v6's profile spent 18% of
// its stall samples on the cluster-scope release fences of its cross-CTA arrivals and its producer spinning;
// with two stages a stage is released by the __syncthreads every tile already had, with three by the order
// the warpgroup's MMAs impose (no barrier in the loop).
//
// CTA: 128 threads = one warpgroup of 64 query rows, two CTAs per SM. smem: Q (cp.async), K[ST], V[ST] (TMA
// boxes of 64 rows x 64 columns, 128-byte swizzle), full[ST] mbarriers; O staged over K at the end.
// Stage protocol: tile j lives in stage j % ST; at the start of step j thread 0 issues tile j+1 (into the
// stage of tile j+1-ST; ST == 2 after a barrier, ST == 3 without one, see the loop); the consumers wait on
// full[j % ST] with parity (j / ST) & 1 (the stage's (j / ST)-th fill).

// grid (query tiles, H, B) as v3. tk, tv: K and V as 2D tensors [B*S rows][KVH*D columns] (make_rows_map).
// QR (LG_ATTN_PIPE bit 512, two stages): Q lives in registers as the A operand of S = Q K^T (32 registers per
// thread at D=128) instead of 16 KB of shared memory, so a CTA needs 64 KB and three fit on an SM (v7: two):
// more independent warpgroups to hide the serial chain S -> softmax -> P V of each.
template <int D, int ST, bool QR = false>
__global__ void __launch_bounds__(NTHREADS, QR ? 3 : 2)
    attn_fwd_tma_kernel(bf16 *__restrict__ out, float *__restrict__ lse, const bf16 *__restrict__ q,
                        const __grid_constant__ CUtensorMap tk, const __grid_constant__ CUtensorMap tv, int S, int H,
                        int KVH, float scale_log2, MaskP m, const int32_t *__restrict__ off,
                        const int32_t *__restrict__ tiles, int nqt) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    constexpr int TB = TILE * D, LDS = D + 8;
    constexpr uint32_t STAGE_BYTES = 2 * TB * sizeof(bf16);  // one K and one V tile
    static_assert(TILE * LDS <= ST * TB, "O staging must fit over K");
    extern __shared__ __align__(1024) unsigned char smem_wg[];
    bf16 *sQ = (bf16 *)smem_wg, *sK = sQ + (QR ? 0 : TB), *sV = sK + ST * TB;
    uint64_t *full = (uint64_t *)(sV + ST * TB);

    const int qt = nqt - 1 - blockIdx.x;  // long rows (late tiles) first
    const int h = blockIdx.y, b = blockIdx.z;
    const int kvh = h / (H / KVH);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t4 = lane & 3;
    const int q0 = qt * TILE;
    const int64_t ldq = (int64_t)H * D;
    const bf16 *qg = q + ((int64_t)b * S * H + h) * D;
    const int lh = m.per_head ? kvh : 0;
    const int i0 = off[lh * (nqt + 1) + qt], n = off[lh * (nqt + 1) + qt + 1] - i0;
    const int32_t *lst = tiles + i0;

    // K and V of key tile kt into stage st (thread 0 only). Rows past S belong to the next sequence of the
    // batch (finite; masked to P = 0) or lie past B*S (TMA fills zeros), as cp.async's zero fill did for v3.
    const CUtensorMap *mk = &tk, *mv = &tv;  // parameter space (__grid_constant__), read by the TMA unit
    auto issue = [&](int st, int kt) {
        mbar_expect_tx(&full[st], STAGE_BYTES);
        const int row = b * S + kt * TILE;
#pragma unroll
        for (int slab = 0; slab < D / 64; slab++) {
            tma_load_2d(sK + st * TB + slab * (TILE * 64), mk, kvh * D + slab * 64, row, &full[st]);
            tma_load_2d(sV + st * TB + slab * (TILE * 64), mv, kvh * D + slab * 64, row, &full[st]);
        }
    };
    if (threadIdx.x == 0) {
        for (int s = 0; s < ST; s++) mbar_init(&full[s], 1);
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");  // visible to the TMA unit
        if (n > 0) issue(0, lst[0]);
    }
    uint32_t qa[D / 16][4];  // QR: the A fragments of this warp's 16 Q rows (zeros past S)
    if (QR) {
        ldg_a_frags<D>(qa, qg, ldq, q0 + warp * 16, S, g, t4);
    } else {
        load_tile_sw<D>(sQ, qg, ldq, q0, S);
    }
    cp_async_commit();
    // list entries are read a step before they are needed (a global load per step would stall every warp)
    int kcur = n > 0 ? lst[0] : 0, knext = n > 1 ? lst[1] : 0;
    cp_async_wait_all();
    fence_async_smem();
    __syncthreads();  // Q landed for all; the barriers are initialized before anyone waits on them

    float acc[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; i++) acc[i] = 0.f;
    float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.f, 0.f};

    for (int j = 0; j < n; j++) {
        const int st = j % ST;
        // Tile j+1 goes into the stage of tile j+1-ST. ST == 2: the barrier makes every warp finish step j-1
        // first. ST == 3 needs no barrier: when warp 0 starts step j it has waited for O += P V of tile j-1,
        // which completes only once all four warps issued it, each after its own wait for tile j-2's MMAs, so
        // tile j-2's stage is free (and no warp still waits on its barrier phase).
        if (ST == 2 && j > 0) __syncthreads();
        if (threadIdx.x == 0 && j + 1 < n) issue((j + 1) % ST, knext);
        const int knext1 = j + 2 < n ? lst[j + 2] : 0;
        mbar_wait(&full[st], (uint32_t)((j / ST) & 1));
        if (QR) {
            float sc[32], corr[2];
            wg_fwd_s_rq<D>(sc, qa, sK + st * TB);
            wg_wait0();
            reg_fence<32>(sc);
            wg_fwd_softmax(sc, mrow, lrow, corr, m, q0, kcur * TILE, S, kvh, scale_log2, warp, g, t4);
            wg_fwd_pv<D>(acc, sc, corr, sV + st * TB);
            wg_wait0();
            reg_fence<D / 2>(acc);
        } else {
            wg_fwd_tile<D>(acc, mrow, lrow, sQ, sK + st * TB, sV + st * TB, m, q0, kcur * TILE, S, kvh, scale_log2,
                           warp, g, t4);
        }
        kcur = knext, knext = knext1;
    }

    // every MMA is done with K/V once all threads pass the epilogue's barrier: O is staged over them
    wg_fwd_epilogue<D>(out + ((int64_t)b * S * H + h) * D, ldq, lse + ((int64_t)b * H + h) * S, acc, mrow, lrow,
                       sK + warp * 16 * LDS, q0, S, warp, lane);
#endif
}

// ---- host ----------------------------------------------------------------------------------------------
template <int ST, bool QR = false>
static size_t smem_fwd_tma(int D) {
    return (size_t)((QR ? 0 : 1) + 2 * ST) * TILE * D * sizeof(bf16) + ST * sizeof(uint64_t);
}

// cuTensorMapEncodeTiled through the runtime's driver entry point (the build links only cudart).
static PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder(void) {
    static PFN_cuTensorMapEncodeTiled_v12000 fn;
    if (fn) return fn;
    void *p = NULL;
    cudaDriverEntryPointQueryResult qr;
    cudaCheck(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &qr));
    if (qr != cudaDriverEntryPointSuccess || !p) {
        fprintf(stderr, "lgtrain: error: attention forward: the driver has no cuTensorMapEncodeTiled (query result "
                        "%d); LG_ATTN_PIPE=6 selects the cp.async forward\n", (int)qr);
        exit(1);
    }
    fn = (PFN_cuTensorMapEncodeTiled_v12000)p;
    return fn;
}

// A (B, S, heads, D) bf16 tensor (K, V; Q, dO) as a 2D tensor [B*S rows][heads*D columns], boxes of 64 x 64,
// 128-byte swizzle (the layout load_tile_sw writes: desc_kmaj / desc_nmaj read it). Rows past B*S read as zeros.
static CUtensorMap make_rows_map(const void *base, int B, int S, int KVH, int D) {
    CUtensorMap map;
    const cuuint64_t dims[2] = {(cuuint64_t)KVH * D, (cuuint64_t)B * S};
    const cuuint64_t strides[1] = {(cuuint64_t)KVH * D * sizeof(bf16)};
    const cuuint32_t box[2] = {64, TILE}, estr[2] = {1, 1};
    CUresult r = tensor_map_encoder()(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, (void *)base, dims, strides, box, estr,
                                      CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                      CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r != CUDA_SUCCESS) {
        fprintf(stderr, "lgtrain: error: attention forward: cuTensorMapEncodeTiled failed (CUresult %d) for B=%d S=%d "
                        "KVH=%d D=%d at %p (needs a 16-byte aligned base)\n", (int)r, B, S, KVH, D, base);
        exit(1);
    }
    return map;
}

template <int D, int ST, bool QR = false>
static void launch_fwd_tma_d(void *out, float *lse, const void *q, const CUtensorMap &tk, const CUtensorMap &tv, int B,
                             int S, int H, int KVH, const MaskP &m, const TileLists *L, float scale_log2,
                             cudaStream_t stream) {
    static int smem_set;
    if (!smem_set) {
        raise_smem(attn_fwd_tma_kernel<D, ST, QR>, smem_fwd_tma<ST, QR>(D));
        smem_set = 1;
    }
    attn_fwd_tma_kernel<D, ST, QR><<<dim3(L->nqt, H, B), NTHREADS, smem_fwd_tma<ST, QR>(D), stream>>>(
        (bf16 *)out, lse, (const bf16 *)q, tk, tv, S, H, KVH, scale_log2, m, L->off, L->tiles, L->nqt);
    cudaCheckLaunch("attn_fwd_tma_kernel");
}

static void launch_fwd_tma(void *out, float *lse, const void *q, const void *k, const void *v, int B, int S, int H,
                           int KVH, int D, int stages, bool qreg, const MaskP &m, const TileLists *L,
                           float scale_log2, cudaStream_t stream) {
    const CUtensorMap tk = make_rows_map(k, B, S, KVH, D), tv = make_rows_map(v, B, S, KVH, D);
#define LG_FWD_TMA(DD, ST) launch_fwd_tma_d<DD, ST>(out, lse, q, tk, tv, B, S, H, KVH, m, L, scale_log2, stream)
    if (qreg) {  // two stages
        if (D == 128) launch_fwd_tma_d<128, 2, true>(out, lse, q, tk, tv, B, S, H, KVH, m, L, scale_log2, stream);
        else launch_fwd_tma_d<64, 2, true>(out, lse, q, tk, tv, B, S, H, KVH, m, L, scale_log2, stream);
    } else if (D == 128) {
        if (stages == 3) LG_FWD_TMA(128, 3);
        else LG_FWD_TMA(128, 2);
    } else {
        if (stages == 3) LG_FWD_TMA(64, 3);
        else LG_FWD_TMA(64, 2);
    }
#undef LG_FWD_TMA
}
