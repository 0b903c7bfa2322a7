// attention_wg3.cuh (included by attention.cu after attention_tma.cuh): kernels in which three warpgroups share
// every K/V tile: the v10 forward (LG_ATTN_PIPE bit 1024 with 128; the default 1926 = 1024 | 902) and the
// three-warpgroup dQ (bit 2048 with 256; see attn_bwd_dq_wg3_kernel).
//
// Why (session 5 profile of v7 with Q in registers, 128K block_sparse): L2 throughput 73% of peak (each
// 64-row CTA pulls 32 KB of K/V per 64x64 tile: 68 GB in 9.2 ms, 7.4 TB/s), and 11.5% of the stall samples
// wait on a K/V tile's mbarrier although it was issued a whole step (~1.7 us) ahead: the L2 was the limit.
// Earlier sharing designs (v4: two warpgroups, one __syncthreads per tile, cp.async; v8: two consumer
// warpgroups and a producer warp) ran two warpgroups per SM against v7's three CTAs. Here a CTA is three
// warpgroups with Q in registers (168 registers: 384 threads fill the register file), so an SM still runs
// three independent 64-row chains, but each K/V tile leaves L2 once for 192 query rows (block_sparse 64/16/64:
// the three adjacent tiles' union list is ~1.1x one tile's). Measured (bench/results/attention.md, session 5):
// L2 throughput 73% -> 32%, 128K block_sparse forward 9.06 -> 8.72 ms, FULL 32K 17.0 -> 16.0 ms.
//
// CTA: query tiles 3p, 3p+1, 3p+2 of one (b, h), warpgroup w owning tile 3p+w with v7's body for it (the same
// products in the same order per tile: the same outputs; lse can differ from v7's in the last bit, compiled in
// another context). The union list (host, triple_lists) holds entries kt * 8 + bits, bit w: tile 3p+w sees key
// tile kt, ascending. K/V tiles stream through an ST-stage ring: full[s] (expect_tx by the issuing thread +
// TMA bytes), empty[s] (12 warps: a warp arrives after its P V of the entry completed; every warp waits on
// full[] for every entry, also those its warpgroup skips, so that no warp arrives for a later use of a stage
// early). Thread 0 issues entry j + LA at the start of its step j, after empty[] says entry j + LA - ST was
// released, so the warpgroups may drift ST - LA - 1 entries apart before it waits. No CTA-wide barrier in the
// loop.
#define WG3_THREADS (3 * NTHREADS)

static __device__ __forceinline__ void mbar_arrive(uint64_t *bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_u32(bar)) : "memory");
}

#ifdef LG_HAVE_WGMMA_CODE
// The K/V ring of the wg3 kernels (protocol above) over one CTA's union list lst[0..n): stage s holds K at
// stage0 + s * 2 * TB and V after it; full[ST], empty[ST] follow the stages in shared memory. start() (every
// thread, before the CTA's first __syncthreads) initializes the barriers and issues the first LA entries;
// step j: begin(j) issues entry j + LA (thread 0, once its stage is released; its list entry was read a step
// earlier) and waits until entry j's stage is full, returning it; end(j) releases it (per warp).
template <int D, int ST, int LA>
struct Wg3Ring {
    static constexpr int TB = TILE * D;
    static_assert(LA >= 1 && LA < ST, "issue look-ahead must leave a stage of slack");
    bf16 *stage0;
    uint64_t *full, *empty;
    const CUtensorMap *tk, *tv;  // K and V as [B*S rows][KVH*D columns] (make_rows_map)
    int col, row0;                // this CTA's KV head column (kvh * D) and batch row (b * S)
    const int32_t *lst;
    int n, eissue;                // thread 0: the entry issued at the next step

    __device__ __forceinline__ void issue(int st, int kt) {
        tma_tile_pair<D>(stage0 + st * 2 * TB, stage0 + st * 2 * TB + TB, tk, tv, col, row0 + kt * TILE, &full[st]);
    }
    __device__ __forceinline__ void start() {
        if (threadIdx.x == 0) {
            for (int s = 0; s < ST; s++) {
                mbar_init(&full[s], 1);
                mbar_init(&empty[s], WG3_THREADS / 32);
            }
            asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");  // visible to the TMA unit
            for (int j = 0; j < LA && j < n; j++) issue(j, lst[j] >> 3);
        }
        eissue = LA < n ? lst[LA] : 0;
    }
    __device__ __forceinline__ const bf16 *begin(int j) {
        const int st = j % ST;
        if (threadIdx.x == 0 && j + LA < n) {
            const int jn = j + LA, sn = jn % ST;
            if (jn >= ST) mbar_wait(&empty[sn], (uint32_t)((jn / ST - 1) & 1));  // entry jn - ST released by all
            issue(sn, eissue >> 3);
        }
        eissue = threadIdx.x == 0 && j + LA + 1 < n ? lst[j + LA + 1] : 0;
        // every warp waits for every entry, also one its warpgroup skips: a warp that ran ahead would arrive at
        // empty[] for a later use of the stage while this one is still counting (and the phases would slip)
        mbar_wait(&full[st], (uint32_t)((j / ST) & 1));
        return stage0 + st * 2 * TB;
    }
    __device__ __forceinline__ void end(int j) {
        __syncwarp();
        if ((threadIdx.x & 31) == 0) mbar_arrive(&empty[j % ST]);  // this warp is done with the stage (MMAs completed)
    }
};
#endif

template <int D, int ST, int LA>
__global__ void __launch_bounds__(WG3_THREADS, 1)
    attn_fwd_wg3_kernel(bf16 *__restrict__ out, float *__restrict__ lse, const bf16 *__restrict__ q,
                        const __grid_constant__ CUtensorMap tk, const __grid_constant__ CUtensorMap tv, int S, int H,
                        int KVH, float scale_log2, MaskP m, const int32_t *__restrict__ off3,
                        const int32_t *__restrict__ tiles3, int np3) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    constexpr int TB = TILE * D;
    static_assert(3 * TILE * (D + 8) <= ST * 2 * TB, "O staging must fit over the stages");
    extern __shared__ __align__(1024) unsigned char smem_wg[];
    bf16 *stage0 = (bf16 *)smem_wg;  // stage s at stage0 + s * 2 * TB: K, then V
    uint64_t *full = (uint64_t *)(stage0 + ST * 2 * TB), *empty = full + ST;

    const int p = np3 - 1 - blockIdx.x;  // long rows (late tiles) first
    const int h = blockIdx.y, b = blockIdx.z;
    const int kvh = h / (H / KVH);
    const int wg = threadIdx.x >> 7, tid = threadIdx.x & 127;
    const int lane = tid & 31, warp = tid >> 5, g = lane >> 2, t4 = lane & 3;
    const int q0 = (3 * p + wg) * TILE;  // >= S: an absent tile of the last triple (its bits are never set)
    const int64_t ldq = (int64_t)H * D;
    const bf16 *qg = q + ((int64_t)b * S * H + h) * D;
    const int lh = m.per_head ? kvh : 0;
    const int i0 = off3[lh * (np3 + 1) + p], n = off3[lh * (np3 + 1) + p + 1] - i0;
    const int32_t *lst = tiles3 + i0;
    Wg3Ring<D, ST, LA> ring{stage0, full, empty, &tk, &tv, kvh * D, b * S, lst, n, 0};
    ring.start();
    uint32_t qa[D / 16][4];
    ldg_a_frags<D>(qa, qg, ldq, q0 + warp * 16, S, g, t4);
    __syncthreads();  // the barriers are initialized before anyone waits on or arrives at them

    float acc[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; i++) acc[i] = 0.f;
    float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.f, 0.f};
    // entries read a step before they are needed (a global load per step would stall its warp)
    int ecur = n > 0 ? lst[0] : 0, enext = n > 1 ? lst[1] : 0;
    for (int j = 0; j < n; j++) {
        const int en2 = j + 2 < n ? lst[j + 2] : 0;
        const bf16 *sk = ring.begin(j);
        if ((ecur >> wg) & 1) {
            const bf16 *sv = sk + TB;
            float sc[32], corr[2];
            wg_fwd_s_rq<D>(sc, qa, sk);
            wg_wait0();
            reg_fence<32>(sc);
            wg_fwd_softmax(sc, mrow, lrow, corr, m, q0, (ecur >> 3) * TILE, S, kvh, scale_log2, warp, g, t4);
            wg_fwd_pv<D>(acc, sc, corr, sv);
            wg_wait0();
            reg_fence<D / 2>(acc);
        }
        ring.end(j);
        ecur = enext, enext = en2;
    }
    // every issued tile had a consumer that waited for it; the epilogue's barrier makes all MMAs done before
    // O is staged over the stages (warpgroup w: rows w * 64.. of the staging area)
    wg_fwd_epilogue<D>(out + ((int64_t)b * S * H + h) * D, ldq, lse + ((int64_t)b * H + h) * S, acc, mrow, lrow,
                       stage0 + (wg * TILE + warp * 16) * (D + 8), q0, S, warp, lane);
#endif
}

// dQ with three warpgroups sharing each K/V tile (LG_ATTN_PIPE bit 2048, with the TMA backward 256): the
// v10 construction applied to attn_bwd_dq_wg_kernel. Why (session 5 profile of the final build, 128K
// sink_window): dQ ran with 79.5% L2 throughput, 30% of its stall samples waiting on MMAs and 20% on the
// K/V mbarriers, the state the forward was in before v10. Warpgroup w owns query tile 3p+w: its Q and dO tiles
// in shared memory (cp.async, as the dQ kernel), lse and delta of its rows in registers, and the dQ kernel's
// products in its order (S = Q K^T, dP = dO V^T, dQ += dS K). The ring and its protocol are v10's.
// smem: Q[3], dO[3], ST stages (K, V), full[ST], empty[ST]; dQ staged over the stages at the end.
// Measured (session 5, same call as 1926, two runs): bit-identical results; 128K bwd sink_window 29.27 / 29.36
// vs 29.82 / 28.92, block_sparse 30.93 / 30.84 vs 31.25 / 31.50, FULL 32K 48.69 vs 49.26 ms: ~1%, so opt-in.
// 168 registers with a 32-byte stack frame (384 threads cap them); Q/dO from shared memory keep the SS wgmmas.
template <int D, int ST, int LA>
__global__ void __launch_bounds__(WG3_THREADS, 1)
    attn_bwd_dq_wg3_kernel(bf16 *__restrict__ dq, const bf16 *__restrict__ q, const bf16 *__restrict__ dout,
                           const float *__restrict__ lse, const float *__restrict__ delta, int S, int H, int KVH,
                           float scale, float scale_log2, MaskP m, const int32_t *__restrict__ off3,
                           const int32_t *__restrict__ tiles3, int np3, const __grid_constant__ CUtensorMap tk,
                           const __grid_constant__ CUtensorMap tv) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    constexpr int TB = TILE * D, LDS = D + 8;
    static_assert(3 * TILE * LDS <= ST * 2 * TB, "dQ staging must fit over the stages");
    extern __shared__ __align__(1024) unsigned char smem_wg[];
    bf16 *sQ = (bf16 *)smem_wg, *sO = sQ + 3 * TB, *stage0 = sO + 3 * TB;
    uint64_t *full = (uint64_t *)(stage0 + ST * 2 * TB), *empty = full + ST;

    const int p = np3 - 1 - blockIdx.x;  // long rows first
    const int h = blockIdx.y, b = blockIdx.z;
    const int kvh = h / (H / KVH);
    const int wg = threadIdx.x >> 7, tid = threadIdx.x & 127;
    const int lane = tid & 31, warp = tid >> 5, g = lane >> 2, t4 = lane & 3;
    const int q0 = (3 * p + wg) * TILE;
    const int64_t ldq = (int64_t)H * D;
    const int lh = m.per_head ? kvh : 0;
    const int i0 = off3[lh * (np3 + 1) + p], n = off3[lh * (np3 + 1) + p + 1] - i0;
    const int32_t *lst = tiles3 + i0;
    bf16 *myQ = sQ + wg * TB, *myO = sO + wg * TB;
    Wg3Ring<D, ST, LA> ring{stage0, full, empty, &tk, &tv, kvh * D, b * S, lst, n, 0};
    ring.start();
    load_tile_swt<D, NTHREADS>(myQ, q + ((int64_t)b * S * H + h) * D, ldq, q0, S, tid);
    load_tile_swt<D, NTHREADS>(myO, dout + ((int64_t)b * S * H + h) * D, ldq, q0, S, tid);
    cp_async_commit();
    float lr[2], dl[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int row = q0 + warp * 16 + g + r * 8;
        const int64_t at = ((int64_t)b * H + h) * S + row;
        lr[r] = row < S ? lse[at] * LOG2E : 0.f;
        dl[r] = row < S ? delta[at] : 0.f;
    }
    cp_async_wait_all();
    fence_async_smem();  // cp.async wrote Q/dO through the generic proxy; the MMAs read them through the async one
    __syncthreads();     // Q/dO landed for all; the barriers are initialized

    float acc[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; i++) acc[i] = 0.f;
    int ecur = n > 0 ? lst[0] : 0, enext = n > 1 ? lst[1] : 0;
    for (int j = 0; j < n; j++) {
        const int en2 = j + 2 < n ? lst[j + 2] : 0;
        const bf16 *sk = ring.begin(j);
        if ((ecur >> wg) & 1)
            wg_dq_step<D, true>(acc, myQ, myO, sk, sk + TB, lr, dl, m, q0, (ecur >> 3) * TILE, S, kvh, scale_log2,
                                warp, g, t4);
        ring.end(j);
        ecur = enext, enext = en2;
    }
    __syncthreads();  // every MMA is done: stage dQ over the stages (warpgroup w: rows w * 64..)
    wg_store_rows<D>(dq + ((int64_t)b * S * H + h) * D, ldq, acc, scale, scale,
                     stage0 + (wg * TILE + warp * 16) * LDS, q0, S, warp, lane);
#endif
}

// ---- host ----------------------------------------------------------------------------------------------
// Union lists of query-tile triples (3p, 3p+1, 3p+2) from the per-tile forward lists: per list head and
// triple, the key tiles any of the three sees, ascending, entry kt * 8 + (bit w: tile 3p+w sees kt).
// off3: (nh, np3+1) offsets into l3. Returns the entry count.
static int64_t triple_lists(const int32_t *off, const int32_t *tiles, int nh, int nqt, int np3, int32_t *off3,
                            int32_t *l3) {
    int64_t total = 0;
    for (int h = 0; h < nh; h++) {
        const int32_t *o = off + (int64_t)h * (nqt + 1);
        for (int p = 0; p < np3; p++) {
            off3[(int64_t)h * (np3 + 1) + p] = (int32_t)total;
            int idx[3], end[3];
            for (int w = 0; w < 3; w++) {
                const int t = 3 * p + w;
                idx[w] = t < nqt ? o[t] : 0, end[w] = t < nqt ? o[t + 1] : 0;
            }
            for (;;) {  // three-way merge of ascending lists
                int kt = INT32_MAX;
                for (int w = 0; w < 3; w++)
                    if (idx[w] < end[w] && tiles[idx[w]] < kt) kt = tiles[idx[w]];
                if (kt == INT32_MAX) break;
                int bits = 0;
                for (int w = 0; w < 3; w++)
                    if (idx[w] < end[w] && tiles[idx[w]] == kt) bits |= 1 << w, idx[w]++;
                if (l3) l3[total] = kt * 8 + bits;
                total++;
            }
        }
        off3[(int64_t)h * (np3 + 1) + np3] = (int32_t)total;
    }
    return total;
}

static void build_triples(TileLists *t, const HostLists *hl) {
    const int np3 = (t->nqt + 2) / 3;
    const int64_t nrow3 = (int64_t)t->nh * (np3 + 1);
    int32_t *off3 = (int32_t *)host_alloc(sizeof(int32_t) * nrow3);
    const int64_t total = triple_lists(hl->off, hl->tiles, t->nh, t->nqt, np3, off3, NULL);
    if (total > INT32_MAX) {
        fprintf(stderr, "lgtrain: error: attention: %lld triple-list entries exceed int32\n", (long long)total);
        exit(1);
    }
    int32_t *l3 = (int32_t *)host_alloc(sizeof(int32_t) * (size_t)(total > 0 ? total : 1));
    triple_lists(hl->off, hl->tiles, t->nh, t->nqt, np3, off3, l3);
    t->off3 = upload_i32(off3, nrow3);
    t->tiles3 = upload_i32(l3, total);
    t->np3 = np3;
    free(off3);
    free(l3);
}

template <int D, int ST, int LA>
static void launch_fwd_wg3_s(void *out, float *lse, const void *q, const CUtensorMap &tk, const CUtensorMap &tv,
                             int B, int S, int H, int KVH, const MaskP &m, const TileLists *L, float scale_log2,
                             cudaStream_t stream) {
    const size_t smem = (size_t)ST * 2 * TILE * D * sizeof(bf16) + 2 * ST * sizeof(uint64_t);
    static int smem_set;
    if (!smem_set) {
        raise_smem(attn_fwd_wg3_kernel<D, ST, LA>, smem);
        smem_set = 1;
    }
    attn_fwd_wg3_kernel<D, ST, LA><<<dim3(L->np3, H, B), WG3_THREADS, smem, stream>>>(
        (bf16 *)out, lse, (const bf16 *)q, tk, tv, S, H, KVH, scale_log2, m, L->off3, L->tiles3, L->np3);
    cudaCheckLaunch("attn_fwd_wg3_kernel");
}

// Ring depth and issue look-ahead: LG_ATTN_WG3=<stages><ahead> (42, 62 default, 63, 74; benchmarks only).
// Session 5, 128K block_sparse forward (ms, two runs): 42 8.71 / 8.75, 62 8.70 / 8.73, 63 8.92 / 8.84, 74 9.10 /
// 9.15 (v7: 9.13 / 8.99): a look-ahead of two tiles suffices once the L2 is no longer saturated, and a deeper one
// only couples the warpgroups (thread 0 waits for the slowest).
static int wg3_config(void) {
    static int cfg;
    if (!cfg) {
        const char *e = getenv("LG_ATTN_WG3");
        cfg = e ? atoi(e) : 62;
        if (cfg != 42 && cfg != 62 && cfg != 63 && cfg != 74) {
            fprintf(stderr, "lgtrain: error: LG_ATTN_WG3=%s: expected 42, 62, 63 or 74 (ring stages, look-ahead)\n",
                    e);
            exit(1);
        }
    }
    return cfg;
}

template <int D>
static void launch_fwd_wg3_d(void *out, float *lse, const void *q, const void *k, const void *v, int B, int S, int H,
                             int KVH, const MaskP &m, const TileLists *L, float scale_log2, cudaStream_t stream) {
    const CUtensorMap tk = make_rows_map(k, B, S, KVH, D), tv = make_rows_map(v, B, S, KVH, D);
    switch (wg3_config()) {
    case 42: launch_fwd_wg3_s<D, 4, 2>(out, lse, q, tk, tv, B, S, H, KVH, m, L, scale_log2, stream); break;
    case 63: launch_fwd_wg3_s<D, 6, 3>(out, lse, q, tk, tv, B, S, H, KVH, m, L, scale_log2, stream); break;
    case 74: launch_fwd_wg3_s<D, 7, 4>(out, lse, q, tk, tv, B, S, H, KVH, m, L, scale_log2, stream); break;
    default: launch_fwd_wg3_s<D, 6, 2>(out, lse, q, tk, tv, B, S, H, KVH, m, L, scale_log2, stream);
    }
}

template <int D>
static void launch_bwd_dq_wg3(void *dq, const void *q, const void *k, const void *v, const void *dout,
                              const float *lse, const float *delta, int B, int S, int H, int KVH, float scale,
                              float scale_log2, const MaskP &m, const TileLists *L, cudaStream_t stream) {
    constexpr int ST = 4, LA = 2;  // 6 + 2 * 4 tiles: 224 KB at D = 128
    const size_t smem = (size_t)(6 + 2 * ST) * TILE * D * sizeof(bf16) + 2 * ST * sizeof(uint64_t);
    static int smem_set;
    if (!smem_set) {
        raise_smem(attn_bwd_dq_wg3_kernel<D, ST, LA>, smem);
        smem_set = 1;
    }
    const CUtensorMap tk = make_rows_map(k, B, S, KVH, D), tv = make_rows_map(v, B, S, KVH, D);
    attn_bwd_dq_wg3_kernel<D, ST, LA><<<dim3(L->np3, H, B), WG3_THREADS, smem, stream>>>(
        (bf16 *)dq, (const bf16 *)q, (const bf16 *)dout, lse, delta, S, H, KVH, scale, scale_log2, m, L->off3,
        L->tiles3, L->np3, tk, tv);
    cudaCheckLaunch("attn_bwd_dq_wg3_kernel");
}

// Host-only check of the triple lists against the per-tile lists they are built from (no device needed:
// tests/gpu/test_attention_lists.c runs it in CI). For every list head and triple p: entries strictly ascending
// in key tile, each with at least one bit, no bit for a tile past the end, and the entries with bit w, in order,
// exactly tile 3p+w's list. 1 = ok; else 0 and the first difference in err.
extern "C" int lg_cuda_attention_check_lists(const lg_attn *mask, int KVH, int S, char *err, size_t errlen) {
    const int nh = mask->kind == LG_ATTN_BLOCK_SPARSE ? KVH : 1, nqt = (S + TILE - 1) / TILE, np3 = (nqt + 2) / 3;
    HostLists hl;
    host_lists(&hl, mask, KVH, S, nh, nqt);
    int32_t *off3 = (int32_t *)host_alloc(sizeof(int32_t) * (size_t)nh * (np3 + 1));
    const int64_t total = triple_lists(hl.off, hl.tiles, nh, nqt, np3, off3, NULL);
    int32_t *l3 = (int32_t *)host_alloc(sizeof(int32_t) * (size_t)(total > 0 ? total : 1));
    triple_lists(hl.off, hl.tiles, nh, nqt, np3, off3, l3);
    int ok = 1;
    for (int h = 0; h < nh && ok; h++)
        for (int p = 0; p < np3 && ok; p++) {
            const int64_t a = off3[(int64_t)h * (np3 + 1) + p], e = off3[(int64_t)h * (np3 + 1) + p + 1];
            int64_t idx[3], end[3];
            for (int w = 0; w < 3; w++) {
                const int t = 3 * p + w;
                idx[w] = t < nqt ? hl.off[(int64_t)h * (nqt + 1) + t] : 0;
                end[w] = t < nqt ? hl.off[(int64_t)h * (nqt + 1) + t + 1] : 0;
            }
            for (int64_t i = a; i < e && ok; i++) {
                const int kt = l3[i] >> 3, bits = l3[i] & 7;
                if (bits == 0 || (i > a && kt <= (l3[i - 1] >> 3))) {
                    snprintf(err, errlen, "head %d triple %d entry %lld: kt %d bits %d (empty or not ascending)", h,
                             p, (long long)(i - a), kt, bits);
                    ok = 0;
                }
                for (int w = 0; w < 3 && ok; w++)
                    if ((bits >> w) & 1) {
                        if (idx[w] >= end[w] || hl.tiles[idx[w]] != kt) {
                            snprintf(err, errlen, "head %d triple %d: tile %d's list does not have key tile %d next",
                                     h, p, 3 * p + w, kt);
                            ok = 0;
                        }
                        idx[w]++;
                    }
            }
            for (int w = 0; w < 3 && ok; w++)
                if (idx[w] != end[w]) {
                    snprintf(err, errlen, "head %d triple %d: tile %d's list has %lld entries the triple list lacks",
                             h, p, 3 * p + w, (long long)(end[w] - idx[w]));
                    ok = 0;
                }
        }
    free(off3);
    free(l3);
    free_host_lists(&hl);
    return ok;
}
