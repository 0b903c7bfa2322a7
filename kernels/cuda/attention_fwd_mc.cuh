// attention_fwd_mc.cuh (included by attention.cu after the v4 kernels; uses their pair lists and the wgmma
// helpers): v6 forward, opt-in (LG_ATTN_PIPE bit 64), WRITTEN IN SESSION 3 AND NOT YET RUN ON A GPU.
//
// Why: every measured variant that kept v3's bytes per FLOP kept v3's speed (~310 TF/s: 64-query CTAs reload
// 32 KB of K/V from L2 per 2.1 MFLOP, ~4.8 TB/s L2->SM), and the one that halved the bytes (v4, 128 rows per
// CTA) lost the overlap of two resident CTAs per SM to lockstep. Here the two 64-row CTAs of a query-tile pair
// form a cluster of 2 (on two SMs): each K/V tile is read from L2 once and multicast by TMA into both CTAs'
// shared memory (rank 0 issues K, rank 1 issues V), so L2->SM bytes halve while each SM still holds two
// independent CTAs (of different clusters) whose softmax and MMAs interleave as in v3. A producer warp issues
// the loads (STAGES deep, mbarriers), so the consumer warpgroup never stalls on its own loads; the two CTAs of
// a cluster are coupled only through the stage ring (a stage is refilled when both have released it).
// The CTA pair walks the union list of its two query tiles (v4's pair lists, entry tile*4 + flags); a CTA
// computes only the entries with its bit, in v3's order: v3's products and summation order per query tile.
//
// CTA: warps 0-3 = the consumer warpgroup (v3's forward body), warp 4 = producer (lane 0 issues).
// smem: Q (cp.async), K[ST], V[ST] (128-byte swizzle, TMA boxes of 64 rows x 64 columns), the barriers;
// O staged over K.
// Barriers: full[s] (1 local arrival with the expected bytes + the TMA transactions of both producers),
// empty[s] (4 warps x 2 CTAs arrivals).

#include <cudaTypedefs.h>  // PFN_cuTensorMapEncodeTiled (the driver entry point; no link against libcuda)

#define MC_STAGES 2
#define MC_THREADS (NTHREADS + 32)

#if defined(LG_HAVE_WGMMA_CODE)
static __device__ __forceinline__ uint32_t mc_rank(void) {
    uint32_t r;
    asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(r));
    return r;
}
static __device__ __forceinline__ void mc_cluster_sync(void) {
    asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;\n" ::: "memory");
}
static __device__ __forceinline__ void mbar_init(uint64_t *bar, uint32_t count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(count) : "memory");
}
static __device__ __forceinline__ void mbar_expect_tx(uint64_t *bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(bytes) : "memory");
}
static __device__ __forceinline__ void mbar_wait(uint64_t *bar, uint32_t parity) {
    uint32_t done;
    do {
        asm volatile(
            "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
            : "=r"(done)
            : "r"(smem_u32(bar)), "r"(parity)
            : "memory");
    } while (!done);
}
static __device__ __forceinline__ void mbar_arrive(uint64_t *bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_u32(bar)) : "memory");
}
// arrive on the barrier at the same offset in CTA `rank` of the cluster
static __device__ __forceinline__ void mbar_arrive_remote(uint64_t *bar, uint32_t rank) {
    asm volatile(
        "{\n.reg .b32 ra;\nmapa.shared::cluster.u32 ra, %0, %1;\nmbarrier.arrive.release.cluster.shared::cluster.b64 _, "
        "[ra];\n}\n" ::"r"(smem_u32(bar)),
        "r"(rank)
        : "memory");
}
// 2D TMA box (64 x 64 bf16 at coordinates {c0 = column, c1 = row}) into dst of every CTA in mask, completing
// on the barrier at the same offset in each
static __device__ __forceinline__ void tma_load_mc(void *dst, const CUtensorMap *map, int c0, int c1, uint64_t *bar,
                                                   uint16_t mask) {
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster [%0], [%1, "
        "{%2, %3}], [%4], %5;\n" ::"r"(smem_u32(dst)),
        "l"((uint64_t)map), "r"(c0), "r"(c1), "r"(smem_u32(bar)), "h"(mask)
        : "memory");
}
static __device__ __forceinline__ void mc_bar_consumers(void) {  // the 128 consumer threads only
    asm volatile("bar.sync 1, %0;\n" ::"n"(NTHREADS) : "memory");
}
#endif

// grid (2 * query-tile pairs, H, B), clusters of 2 along x (rank = x & 1: query tile 2p + rank).
// tk, tv: K and V as 2D tensors [B*S rows][KVH*D columns] (make_kv_map).
template <int D>
__global__ void __cluster_dims__(2, 1, 1) __launch_bounds__(MC_THREADS, 2)
    attn_fwd_mc_kernel(bf16 *__restrict__ out, float *__restrict__ lse, const bf16 *__restrict__ q,
                       const __grid_constant__ CUtensorMap tk, const __grid_constant__ CUtensorMap tv, int S, int H,
                       int KVH, float scale_log2, MaskP m, const int32_t *__restrict__ off2,
                       const int32_t *__restrict__ tiles2, int npair) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    constexpr int TB = TILE * D, LDS = D + 8, ST = MC_STAGES;
    constexpr uint32_t STAGE_BYTES = 2 * TB * sizeof(bf16);  // K and V tiles, both delivered to each CTA
    static_assert(TILE * LDS <= ST * TB, "O staging must fit over K");
    extern __shared__ __align__(1024) unsigned char smem_wg[];
    bf16 *sQ = (bf16 *)smem_wg, *sK = sQ + TB, *sV = sK + ST * TB;
    uint64_t *full = (uint64_t *)(sV + ST * TB), *empty = full + ST;  // in the dynamic block: its base is 1024-aligned

    const uint32_t rank = mc_rank();
    const int p = npair - 1 - (int)(blockIdx.x >> 1);  // late (long) pairs first
    const int h = blockIdx.y, b = blockIdx.z;
    const int kvh = h / (H / KVH);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t4 = lane & 3;
    const int q0 = (2 * p + (int)rank) * TILE;  // q0 >= S: the absent second tile of an odd count
    const int64_t ldq = (int64_t)H * D;
    const bf16 *qg = q + ((int64_t)b * S * H + h) * D;
    const int lh = m.per_head ? kvh : 0;
    const int i0 = off2[lh * (npair + 1) + p], n = off2[lh * (npair + 1) + p + 1] - i0;
    const int32_t *lst = tiles2 + i0;

    if (threadIdx.x == 0) {
        for (int s = 0; s < ST; s++) {
            mbar_init(&full[s], 1);
            mbar_init(&empty[s], 2 * (NTHREADS / 32));
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    if (warp < 4) {
        load_tile_sw<D>(sQ, qg, ldq, q0, S);
        cp_async_commit();
    }
    __syncwarp();       // barrier.cluster is .aligned: every warp converged
    mc_cluster_sync();  // both CTAs' barriers exist before any multicast or remote arrival

    if (warp == 4) {  // producer
        if (lane == 0) {
            const CUtensorMap *map = rank == 0 ? &tk : &tv;
            bf16 *dst0 = rank == 0 ? sK : sV;
            for (int j = 0; j < n; j++) {
                const int s = j % ST;
                if (j >= ST) mbar_wait(&empty[s], (uint32_t)((j / ST - 1) & 1));  // both CTAs released it
                mbar_expect_tx(&full[s], STAGE_BYTES);
                const int row = b * S + (lst[j] >> 2) * TILE;
#pragma unroll
                for (int slab = 0; slab < D / 64; slab++)
                    tma_load_mc(dst0 + s * TB + slab * (TILE * 64), map, kvh * D + slab * 64, row, &full[s], 3);
            }
        }
        __syncwarp();  // lanes 1-31 wait for lane 0 before the (aligned) cluster barrier
    } else {  // consumer warpgroup: v3's forward body (wg_fwd_tile) on the stage ring
        cp_async_wait_all();
        fence_async_smem();
        mc_bar_consumers();  // Q landed for the whole warpgroup

        float acc[D / 2];
#pragma unroll
        for (int i = 0; i < D / 2; i++) acc[i] = 0.f;
        float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.f, 0.f};

        for (int j = 0; j < n; j++) {
            const int s = j % ST, e = lst[j];
            mbar_wait(&full[s], (uint32_t)((j / ST) & 1));
            if (((e >> rank) & 1) && q0 < S) {
                wg_fwd_tile<D>(acc, mrow, lrow, sQ, sK + s * TB, sV + s * TB, m, q0, (e >> 2) * TILE, S, kvh,
                               scale_log2, warp, g, t4);
            }
            __syncwarp();
            if (lane == 0) {  // this warp is done with stage s, in both CTAs' rings
                mbar_arrive(&empty[s]);
                mbar_arrive_remote(&empty[s], rank ^ 1u);
            }
        }

        float inv[2];
#pragma unroll
        for (int r = 0; r < 2; r++) {
            float l = lrow[r];
            l += __shfl_xor_sync(0xffffffffu, l, 1);
            l += __shfl_xor_sync(0xffffffffu, l, 2);
            inv[r] = l > 0.f ? 1.f / l : 0.f;
            int row = q0 + warp * 16 + g + r * 8;
            if (t4 == 0 && row < S) lse[((int64_t)b * H + h) * S + row] = l > 0.f ? mrow[r] * LN2 + logf(l) : -INFINITY;
        }
        // every load of this CTA's ring has landed (all n waited) and every MMA of the warpgroup is done:
        // stage O (padded rows) over K
        mc_bar_consumers();
        bf16 *st = sK + warp * 16 * LDS;
#pragma unroll
        for (int i = 0; i < D / 8; i++) {
            *(uint32_t *)(st + g * LDS + i * 8 + t4 * 2) = pack_bf16(acc[4 * i] * inv[0], acc[4 * i + 1] * inv[0]);
            *(uint32_t *)(st + (g + 8) * LDS + i * 8 + t4 * 2) =
                pack_bf16(acc[4 * i + 2] * inv[1], acc[4 * i + 3] * inv[1]);
        }
        __syncwarp();
        bf16 *og = out + ((int64_t)b * S * H + h) * D;
#pragma unroll
        for (int it = 0; it < 16 * (D / 8) / 32; it++) {
            int c = it * 32 + lane, r = c / (D / 8), ch = c % (D / 8);
            int row = q0 + warp * 16 + r;
            if (row < S) *(uint4 *)(og + (int64_t)row * ldq + ch * 8) = *(const uint4 *)(st + r * LDS + ch * 8);
        }
    }
    mc_cluster_sync();  // no CTA leaves while its peer may still arrive on its barriers
#endif
}

// ---- host ----------------------------------------------------------------------------------------------
static size_t smem_fwd_mc(int D) {
    return (size_t)(1 + 2 * MC_STAGES) * TILE * D * sizeof(bf16) + 2 * MC_STAGES * sizeof(uint64_t);
}

// cuTensorMapEncodeTiled through the runtime's driver entry point (the build links only cudart).
static PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder(void) {
    static PFN_cuTensorMapEncodeTiled_v12000 fn;
    if (fn) return fn;
    void *p = NULL;
    cudaDriverEntryPointQueryResult qr;
    cudaCheck(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &qr));
    if (qr != cudaDriverEntryPointSuccess || !p) {
        fprintf(stderr, "lgtrain: error: attention v6 forward: the driver has no cuTensorMapEncodeTiled (query result "
                        "%d); unset bit 64 of LG_ATTN_PIPE\n", (int)qr);
        exit(1);
    }
    fn = (PFN_cuTensorMapEncodeTiled_v12000)p;
    return fn;
}

// K or V (B, S, KVH, D) bf16 as a 2D tensor [B*S rows][KVH*D columns], boxes of 64 x 64, 128-byte swizzle
// (the layout load_tile_sw writes: desc_kmaj / desc_nmaj read it). Rows past B*S read as zeros.
static CUtensorMap make_kv_map(const void *base, int B, int S, int KVH, int D) {
    CUtensorMap map;
    const cuuint64_t dims[2] = {(cuuint64_t)KVH * D, (cuuint64_t)B * S};
    const cuuint64_t strides[1] = {(cuuint64_t)KVH * D * sizeof(bf16)};
    const cuuint32_t box[2] = {64, TILE}, estr[2] = {1, 1};
    CUresult r = tensor_map_encoder()(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, (void *)base, dims, strides, box, estr,
                                      CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                      CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r != CUDA_SUCCESS) {
        fprintf(stderr, "lgtrain: error: attention v6 forward: cuTensorMapEncodeTiled failed (CUresult %d) for B=%d S=%d "
                        "KVH=%d D=%d at %p (needs a 16-byte aligned base)\n", (int)r, B, S, KVH, D, base);
        exit(1);
    }
    return map;
}

static void launch_fwd_mc(void *out, float *lse, const void *q, const void *k, const void *v, int B, int S, int H,
                          int KVH, int D, const MaskP &m, const TileLists *L, float scale_log2, cudaStream_t stream) {
    static int smem_set;
    if (!smem_set) {
        raise_smem(attn_fwd_mc_kernel<64>, smem_fwd_mc(64));
        raise_smem(attn_fwd_mc_kernel<128>, smem_fwd_mc(128));
        smem_set = 1;
    }
    const CUtensorMap tk = make_kv_map(k, B, S, KVH, D), tv = make_kv_map(v, B, S, KVH, D);
    dim3 grid(2 * L->np, H, B);
    if (D == 128)
        attn_fwd_mc_kernel<128><<<grid, MC_THREADS, smem_fwd_mc(128), stream>>>(
            (bf16 *)out, lse, (const bf16 *)q, tk, tv, S, H, KVH, scale_log2, m, L->off2, L->tiles2, L->np);
    else
        attn_fwd_mc_kernel<64><<<grid, MC_THREADS, smem_fwd_mc(64), stream>>>(
            (bf16 *)out, lse, (const bf16 *)q, tk, tv, S, H, KVH, scale_log2, m, L->off2, L->tiles2, L->np);
    cudaCheckLaunch("attn_fwd_mc_kernel");
}
