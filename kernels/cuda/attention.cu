// attention.cu: native flash attention, forward and backward, for every layout kind (kernels/layout.h).
//
// Two implementations of the same passes: wgmma (sm_90a, the default where the binary has sm_90a code; see the
// "wgmma kernels" section) and mma.sync (any sm_80+ build; LG_ATTN_IMPL=mma selects it). Both use the tiling below.
// Tiling: 64 queries x 64 keys; a CTA is 4 warps, each warp owns 16 rows (queries in the forward and dQ
// kernels, keys in the dK/dV kernel). bf16 operands on mma.sync.m16n8k16 with fp32 accumulation; softmax
// in fp32 in the log2 domain (scores pre-multiplied by scale*log2 e, so exp2 is one MUFU op).
//
// Which tiles: the host builds, from the one mask definition (lg_attn_key_tiles), CSR lists
//   fwd:  per (list head, query tile) the key tiles, ascending     (forward and dQ walk these)
//   bwd:  per (list head, key tile) the query tiles, ascending     (dK/dV walk these)
// "list head" is the KV head for BLOCK_SPARSE and 0 for FULL/SINK_WINDOW (their lists do not depend on h).
// Inside a listed tile, pairs are masked element-wise with dev_allows(), the device copy of lg_attn_allows();
// tiles that are wholly visible skip the element test (tile_needs_mask()). The GPU test compares every
// output with a dense reference built from lg_attn_allows itself.
//
// Backward (deterministic, no atomics): delta = rowsum(dO*O); dK/dV kernel per key tile loops over the query
// heads of its GQA group and their query tiles in a fixed order; dQ kernel per query tile loops over its key
// tiles. Both recompute P = exp(S*scale - lse).
// Default wgmma variant (LG_ATTN_PIPE 1926, see pipe_flags): the v10 forward (attention_wg3.cuh: three
// warpgroups with Q in registers share each K/V tile, streamed by TMA through an mbarrier ring) and the TMA
// backward (the dK/dV and dQ kernels' TMA flag). Before it the v7 forward (attention_tma.cuh: one warpgroup
// per CTA, three CTAs per SM; 902). All variants of one arithmetic family give bit-identical results
// (tests/gpu/test_attention.cu).
// v4 (opt-in, LG_ATTN_PIPE bits 8/16/32; section "v4"): the wgmma passes with 128 rows per CTA, two warpgroups
// sharing each loaded tile, walking pair lists (the union of two tiles' lists with a per-half flag).
#include "kernels/cuda/attention.h"

#include <cuda_bf16.h>
#include <cudaTypedefs.h>  // CUtensorMap, PFN_cuTensorMapEncodeTiled (driver entry point; no libcuda link)
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_check.h"

typedef __nv_bfloat16 bf16;

#define TILE 64        // tokens per query tile and per key tile (divides the BLOCK_SPARSE block)
#define NTHREADS 128   // 4 warps x 16 rows
#define LOG2E 1.4426950408889634f
#define LN2 0.6931471805599453f

// The mask, flattened for the kernels (kind values as lg_attn_kind).
typedef struct {
    int kind, sink, window;
    int block, local, stride, step;  // step = max(1, stride / n_kv_heads), as layout.c
    int per_head;                    // lists differ per KV head (BLOCK_SPARSE)
} MaskP;

// ------------------------------------------------------------------------------------------------------
// device primitives

static __device__ __forceinline__ uint32_t smem_u32(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

// 16-byte async copy global -> shared; valid == 0 fills the 16 bytes with zeros (rows past S).
static __device__ __forceinline__ void cp_async16(void *smem, const void *gmem, int valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(smem)), "l"(gmem),
                 "r"(valid ? 16 : 0)
                 : "memory");
}
// 2^x on the MUFU unit, one instruction. exp2f() adds a range test and two predicated multiplies per call
// (to return denormal results for x < -126), a quarter of the forward's instructions in the profile
// (bench/results/attention.md, session 4). Our arguments are <= 0 (scores minus a running max or the lse):
// flushing results below 2^-126 to 0 changes nothing a bf16 P or an fp32 row sum can hold.
static __device__ __forceinline__ float ex2f(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}
static __device__ __forceinline__ void cp_async_commit(void) { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
static __device__ __forceinline__ void cp_async_wait_all(void) { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

static __device__ __forceinline__ void ldsm_x4(uint32_t r[4], const bf16 *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p))
                 : "memory");
}
static __device__ __forceinline__ void ldsm_x4_t(uint32_t r[4], const bf16 *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p))
                 : "memory");
}
// c (16x8 fp32) += a (16x16 bf16, row) * b (16x8 bf16, col)
static __device__ __forceinline__ void mma16816(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
// two floats -> bf16x2, lo in the low half (the lower column of a fragment pair)
static __device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *(uint32_t *)&v;
}

// Fragment addressing (lane l of a warp; g = l/4 row in an 8x8, t = l%4 column pair):
//  A 16x16 from row-major smem [row][k]:      ldsm_x4 at row (l&15), col 8*(l>>4)       -> a0..a3
//  B n16 x k16 from smem stored [n][k]:       ldsm_x4 at row (l&7)+8*(l>>4), col 8*((l>>3)&1)
//                                              -> {r0,r1} = B of n-tile 0, {r2,r3} = B of n-tile 1
//  B k16 x n16 from smem stored [k][n]:       ldsm_x4_t at row (l&15), col 8*(l>>4)     -> same
//  C 16x8: c0,c1 at (g, 2t..2t+1), c2,c3 at (g+8, 2t..2t+1)
// An S/P tile held as C fragments s[nt][4] (n-tiles of 8 columns) is the A operand of the next product
// with k = those columns: a = {s[2j][0..1], s[2j][2..3], s[2j+1][0..1], s[2j+1][2..3]} packed.

// The products the mma.sync passes share (one warp, 16 rows; smem tiles with row stride D+8, or TILE+8 for dS^T).
// s (16 x 64) = A (16 x D: rows at a, which already holds this lane's ldsm_x4 offset) * T^T, T a 64 x D tile.
template <int D>
static __device__ __forceinline__ void mma_rows_tileT(float s[8][4], const bf16 *a, const bf16 *T) {
    constexpr int LDS = D + 8;
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int x = 0; x < 8; x++) s[x][0] = s[x][1] = s[x][2] = s[x][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
        uint32_t af[4];
        ldsm_x4(af, a + kk * 16);
#pragma unroll
        for (int np = 0; np < 4; np++) {
            uint32_t bb[4];
            ldsm_x4(bb, T + (np * 16 + (lane & 7) + ((lane >> 4) << 3)) * LDS + kk * 16 + ((lane >> 3) & 1) * 8);
            mma16816(s[2 * np], af, bb[0], bb[1]);
            mma16816(s[2 * np + 1], af, bb[2], bb[3]);
        }
    }
}
// acc (16 x D) += P (16 x 64, C fragments, rounded to bf16) * T, T a 64 x D tile.
template <int D>
static __device__ __forceinline__ void mma_frag_tile(float acc[][4], const float p[8][4], const bf16 *T) {
    constexpr int LDS = D + 8;
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int kc = 0; kc < 4; kc++) {
        uint32_t a[4] = {pack_bf16(p[2 * kc][0], p[2 * kc][1]), pack_bf16(p[2 * kc][2], p[2 * kc][3]),
                         pack_bf16(p[2 * kc + 1][0], p[2 * kc + 1][1]), pack_bf16(p[2 * kc + 1][2], p[2 * kc + 1][3])};
#pragma unroll
        for (int dp = 0; dp < D / 16; dp++) {
            uint32_t bb[4];
            ldsm_x4_t(bb, T + (kc * 16 + (lane & 15)) * LDS + dp * 16 + (lane >> 4) * 8);
            mma16816(acc[2 * dp], a, bb[0], bb[1]);
            mma16816(acc[2 * dp + 1], a, bb[2], bb[3]);
        }
    }
}
// qa (16 queries of warp w x 64 columns half*64..) = dS K, dS read transposed from sS [64 keys][TILE+8] (dS^T)
// and K the 64 x D key tile.
template <int D>
static __device__ __forceinline__ void mma_dsT_tile(float qa[8][4], const bf16 *sS, const bf16 *K, int half) {
    constexpr int LDS = D + 8;
    const int lane = threadIdx.x & 31, warp = (threadIdx.x >> 5) & 3;
#pragma unroll
    for (int x = 0; x < 8; x++) qa[x][0] = qa[x][1] = qa[x][2] = qa[x][3] = 0.f;
#pragma unroll
    for (int kc = 0; kc < 4; kc++) {
        uint32_t a[4];
        ldsm_x4_t(a, sS + (kc * 16 + (lane & 7) + ((lane >> 4) << 3)) * (TILE + 8) + warp * 16 + ((lane >> 3) & 1) * 8);
#pragma unroll
        for (int np = 0; np < 4; np++) {
            uint32_t bb[4];
            ldsm_x4_t(bb, K + (kc * 16 + (lane & 15)) * LDS + half * 64 + np * 16 + (lane >> 4) * 8);
            mma16816(qa[2 * np], a, bb[0], bb[1]);
            mma16816(qa[2 * np + 1], a, bb[2], bb[3]);
        }
    }
}

// Loads a 64 x D bf16 tile (rows row0.. of a tensor whose rows are ld elements apart) into smem with
// row stride D+8 (the 16-byte pad makes the 8 row addresses of an ldmatrix hit 8 different bank groups).
template <int D>
static __device__ __forceinline__ void load_tile(bf16 *sm, const bf16 *g, int64_t ld, int row0, int S) {
    constexpr int CPR = D / 8;                 // 16-byte chunks per row
    constexpr int ITERS = TILE * CPR / NTHREADS;
#pragma unroll
    for (int it = 0; it < ITERS; it++) {
        int c = it * NTHREADS + threadIdx.x;
        int r = c / CPR, ch = c % CPR;
        int valid = row0 + r < S;
        const bf16 *src = valid ? g + (int64_t)(row0 + r) * ld + ch * 8 : g;
        cp_async16(sm + r * (D + 8) + ch * 8, src, valid);
    }
}

// The device copy of lg_attn_allows (layout.c) for 0 <= q, k < S.
static __device__ __forceinline__ bool dev_allows(const MaskP &m, int h, int q, int k) {
    if (k > q) return false;
    if (m.kind == LG_ATTN_SINK_WINDOW) return k < m.sink || q - k < m.window;
    if (m.kind == LG_ATTN_BLOCK_SPARSE) {
        int qb = q / m.block, kb = k / m.block;
        if (qb - kb < m.local) return true;
        return ((kb + h * m.step) % m.stride) == 0;
    }
    return true;
}

// Does the listed tile pair (q0.., k0..) hold any pair that is not visible (or lies past S)?
// FULL: only tiles reaching the diagonal. BLOCK_SPARSE: a listed tile lies in one kept block (64 | block),
// so also only the diagonal. SINK_WINDOW: the sink/window edges too.
static __device__ __forceinline__ bool tile_needs_mask(const MaskP &m, int q0, int k0, int S) {
    int q1 = q0 + TILE - 1, k1 = k0 + TILE - 1;
    if (k1 > q0 || q1 >= S || k1 >= S) return true;
    if (m.kind == LG_ATTN_SINK_WINDOW) return !(k1 < m.sink || q1 - k0 < m.window);
    return false;
}

// One warp's 16 staged bf16 rows (stg: this warp's rows, stride D + 8) to global rows row0 + warp * 16..
// (stride ld; rows >= S skipped), 16 contiguous bytes per lane. The caller __syncwarp()s after staging.
template <int D>
static __device__ __forceinline__ void warp_store_staged(bf16 *dst, int64_t ld, const bf16 *stg, int row0, int S,
                                                         int warp, int lane) {
    constexpr int LDS = D + 8;
#pragma unroll
    for (int it = 0; it < 16 * (D / 8) / 32; it++) {
        int c = it * 32 + lane, r = c / (D / 8), ch = c % (D / 8);
        int row = row0 + warp * 16 + r;
        if (row < S) *(uint4 *)(dst + (int64_t)row * ld + ch * 8) = *(const uint4 *)(stg + r * LDS + ch * 8);
    }
}
// One warp's 16 rows (row0 + warp * 16..) of a D-wide fp32 accumulator in the m16n8 / wgmma fragment layout
// (acc[4i + c]: row g + 8 (c >> 1), column 8i + 2 t4 + (c & 1); mma.sync's acc[D/8][4] is the same memory),
// times f0 (rows g) and f1 (rows g + 8), as bf16 into global rows (stride ld, rows >= S skipped): staged
// through stg (the warp's 16 padded rows, stride D + 8: no bank conflicts) so that each lane stores 16
// contiguous bytes. The caller makes sure no MMA still reads the shared memory under stg.
template <int D>
static __device__ __forceinline__ void wg_store_rows(bf16 *dst, int64_t ld, const float *acc, float f0, float f1,
                                                     bf16 *stg, int row0, int S, int warp, int lane) {
    constexpr int LDS = D + 8;
    const int g = lane >> 2, t4 = lane & 3;
#pragma unroll
    for (int i = 0; i < D / 8; i++) {
        *(uint32_t *)(stg + g * LDS + i * 8 + t4 * 2) = pack_bf16(acc[4 * i] * f0, acc[4 * i + 1] * f0);
        *(uint32_t *)(stg + (g + 8) * LDS + i * 8 + t4 * 2) = pack_bf16(acc[4 * i + 2] * f1, acc[4 * i + 3] * f1);
    }
    __syncwarp();
    warp_store_staged<D>(dst, ld, stg, row0, S, warp, lane);
}

// ------------------------------------------------------------------------------------------------------
// forward: grid (query tiles, H, B); CTA = 64 queries of one head.
// smem: K[2], V[2] tiles (double buffer; Q is staged in K[1] before the loop).

template <int D, int MINB>
__global__ void __launch_bounds__(NTHREADS, MINB) attn_fwd_kernel(bf16 *__restrict__ out, float *__restrict__ lse,
                                                            const bf16 *__restrict__ q, const bf16 *__restrict__ k,
                                                            const bf16 *__restrict__ v, int S, int H, int KVH,
                                                            float scale_log2, MaskP m, const int32_t *__restrict__ off,
                                                            const int32_t *__restrict__ tiles, int nqt) {
    constexpr int LDS = D + 8, TSZ = TILE * LDS;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *sK = (bf16 *)smem_raw;  // [2][64][LDS]
    bf16 *sV = sK + 2 * TSZ;      // [2][64][LDS]

    const int qt = nqt - 1 - blockIdx.x;  // long rows (late tiles) first
    const int h = blockIdx.y, b = blockIdx.z;
    const int kvh = h / (H / KVH);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t4 = lane & 3;
    const int q0 = qt * TILE;
    const int64_t ldq = (int64_t)H * D, ldk = (int64_t)KVH * D;
    const bf16 *qg = q + ((int64_t)b * S * H + h) * D;
    const bf16 *kg = k + ((int64_t)b * S * KVH + kvh) * D;
    const bf16 *vg = v + ((int64_t)b * S * KVH + kvh) * D;
    const int lh = m.per_head ? kvh : 0;
    const int i0 = off[lh * (nqt + 1) + qt], n = off[lh * (nqt + 1) + qt + 1] - i0;
    const int32_t *lst = tiles + i0;

    load_tile<D>(sK + TSZ, qg, ldq, q0, S);
    if (n > 0) {
        load_tile<D>(sK, kg, ldk, lst[0] * TILE, S);
        load_tile<D>(sV, vg, ldk, lst[0] * TILE, S);
    }
    cp_async_commit();
    cp_async_wait_all();
    __syncthreads();
    uint32_t qf[D / 16][4];
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) ldsm_x4(qf[kk], sK + TSZ + (warp * 16 + (lane & 15)) * LDS + kk * 16 + (lane >> 4) * 8);
    __syncthreads();  // the Q staging area is the first prefetch target

    float acc[D / 8][4];
#pragma unroll
    for (int i = 0; i < D / 8; i++) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.f;
    float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.f, 0.f};

    for (int j = 0; j < n; j++) {
        const int buf = j & 1;
        if (j > 0) {
            cp_async_wait_all();
            __syncthreads();  // tile j landed for all; everyone is done with tile j-1 (buffer buf^1)
        }
        if (j + 1 < n) {
            int kt1 = lst[j + 1];
            load_tile<D>(sK + (buf ^ 1) * TSZ, kg, ldk, kt1 * TILE, S);
            load_tile<D>(sV + (buf ^ 1) * TSZ, vg, ldk, kt1 * TILE, S);
            cp_async_commit();
        }
        const bf16 *cK = sK + buf * TSZ, *cV = sV + buf * TSZ;
        const int k0 = lst[j] * TILE;

        float s[8][4];
#pragma unroll
        for (int i = 0; i < 8; i++) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
#pragma unroll
            for (int np = 0; np < 4; np++) {
                uint32_t bb[4];
                ldsm_x4(bb, cK + (np * 16 + (lane & 7) + ((lane >> 4) << 3)) * LDS + kk * 16 + ((lane >> 3) & 1) * 8);
                mma16816(s[2 * np], qf[kk], bb[0], bb[1]);
                mma16816(s[2 * np + 1], qf[kk], bb[2], bb[3]);
            }
        }
#pragma unroll
        for (int i = 0; i < 8; i++)
#pragma unroll
            for (int c = 0; c < 4; c++) s[i][c] *= scale_log2;
        if (tile_needs_mask(m, q0, k0, S)) {
#pragma unroll
            for (int i = 0; i < 8; i++)
#pragma unroll
                for (int c = 0; c < 4; c++) {
                    int qq = q0 + warp * 16 + g + (c >> 1) * 8, kk = k0 + i * 8 + t4 * 2 + (c & 1);
                    if (qq >= S || kk >= S || !dev_allows(m, kvh, qq, kk)) s[i][c] = -INFINITY;
                }
        }
        // online softmax; each row is spread over the 4 lanes of a quad
#pragma unroll
        for (int r = 0; r < 2; r++) {
            float mx = mrow[r];
#pragma unroll
            for (int i = 0; i < 8; i++) mx = fmaxf(mx, fmaxf(s[i][2 * r], s[i][2 * r + 1]));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            const float base = mx == -INFINITY ? 0.f : mx;  // a row with nothing visible yet stays at 0
            const float corr = ex2f(mrow[r] - base);
            mrow[r] = mx;
            float sum = 0.f;
#pragma unroll
            for (int i = 0; i < 8; i++) {
                s[i][2 * r] = ex2f(s[i][2 * r] - base);
                s[i][2 * r + 1] = ex2f(s[i][2 * r + 1] - base);
                sum += s[i][2 * r] + s[i][2 * r + 1];
            }
            lrow[r] = lrow[r] * corr + sum;
#pragma unroll
            for (int i = 0; i < D / 8; i++) {
                acc[i][2 * r] *= corr;
                acc[i][2 * r + 1] *= corr;
            }
        }
        mma_frag_tile<D>(acc, s, cV);  // O += P V
    }

    // finish: O / l, lse = ln(sum exp(scaled score)) = m ln2 + ln l
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
    __syncthreads();  // all warps are done with every K/V buffer: stage O in K[0] (this warp's 16 rows)
    wg_store_rows<D>(out + ((int64_t)b * S * H + h) * D, ldq, &acc[0][0], inv[0], inv[1], sK + warp * 16 * LDS, q0,
                     S, warp, lane);
}

// ------------------------------------------------------------------------------------------------------
// backward 1: delta (B,H,S) = rowsum(dO * O), one warp per (b, s, h) row.

template <int D>
__global__ void attn_delta_kernel(float *__restrict__ delta, const bf16 *__restrict__ dout, const bf16 *__restrict__ out,
                                  int64_t rows, int S, int H) {
    int64_t row = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x & 31;
    if (row >= rows) return;
    constexpr int PER = D / 32;  // 4 or 2 elements per lane
    const bf16 *o = out + row * D + lane * PER, *d = dout + row * D + lane * PER;
    float sum = 0.f;
#pragma unroll
    for (int i = 0; i < PER; i += 2) {
        float2 a = __bfloat1622float2(*(const __nv_bfloat162 *)(o + i));
        float2 c = __bfloat1622float2(*(const __nv_bfloat162 *)(d + i));
        sum += a.x * c.x + a.y * c.y;
    }
#pragma unroll
    for (int w = 16; w > 0; w >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, w);
    if (lane == 0) {
        int64_t b = row / ((int64_t)S * H), s = (row / H) % S, h = row % H;
        delta[(b * H + h) * S + s] = sum;
    }
}

// dq (n) bf16 = acc * scale (the atomic path's fp32 accumulator), 4 elements per thread
__global__ void attn_dq_convert_kernel(bf16 *__restrict__ dq, const float *__restrict__ acc, int64_t n4, float scale) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n4) return;
    float4 a = ((const float4 *)acc)[i];
    uint2 o;
    o.x = pack_bf16(a.x * scale, a.y * scale);
    o.y = pack_bf16(a.z * scale, a.w * scale);
    ((uint2 *)dq)[i] = o;
}

// ------------------------------------------------------------------------------------------------------
// backward 2: dK, dV. grid (key tiles, KVH, B); CTA = 64 keys of one KV head; warp w owns keys w*16..w*16+15.
// Loops over the query heads of the GQA group, and for each over the query tiles that see this key tile.
// Per step (transposed problem, rows = keys): S^T = K Q^T, P^T = exp2(S^T*c - lse), dP^T = V dO^T,
// dS^T = P^T (dP^T - delta); dV += P^T dO; dK += dS^T Q (times scale at the end).
// smem: K, V (fixed), Q[2], dO[2] tiles, lse[2][64], delta[2][64].

template <int D, bool ATOMIC>
__global__ void __launch_bounds__(NTHREADS) attn_bwd_dkdv_kernel(
    bf16 *__restrict__ dk, bf16 *__restrict__ dv, float *__restrict__ dq_acc, const bf16 *__restrict__ q, const bf16 *__restrict__ k,
    const bf16 *__restrict__ v, const bf16 *__restrict__ dout, const float *__restrict__ lse,
    const float *__restrict__ delta, int S, int H, int KVH, float scale, float scale_log2, MaskP m,
    const int32_t *__restrict__ toff, const int32_t *__restrict__ tq, int nqt) {
    constexpr int LDS = D + 8, TSZ = TILE * LDS;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *sK = (bf16 *)smem_raw;  // [64][LDS]
    bf16 *sV = sK + TSZ;          // [64][LDS]
    bf16 *sQ = sV + TSZ;          // [2][64][LDS]
    bf16 *sO = sQ + 2 * TSZ;      // [2][64][LDS]  (dO)
    float *sL = (float *)(sO + 2 * TSZ);  // [2][64] lse * log2 e
    float *sD = sL + 2 * TILE;            // [2][64] delta
    bf16 *sS = (bf16 *)(sD + 2 * TILE);   // [64 keys][64+8] dS^T, ATOMIC only

    const int kt = blockIdx.x;  // early key tiles are seen by the most query tiles: they go first
    const int kvh = blockIdx.y, b = blockIdx.z;
    const int G = H / KVH;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t4 = lane & 3;
    const int k0 = kt * TILE;
    const int64_t ldq = (int64_t)H * D, ldk = (int64_t)KVH * D;
    const bf16 *kg = k + ((int64_t)b * S * KVH + kvh) * D;
    const bf16 *vg = v + ((int64_t)b * S * KVH + kvh) * D;
    const int lh = m.per_head ? kvh : 0;
    const int i0 = toff[lh * (nqt + 1) + kt], nq = toff[lh * (nqt + 1) + kt + 1] - i0;
    const int32_t *lst = tq + i0;
    const int n = nq * G;  // steps: (head in group) x (query tile)

    // step i -> query head kvh*G + i/nq, query tile lst[i%nq]
#define DKDV_PREFETCH(i, buf)                                                                        \
    do {                                                                                             \
        int hq_ = kvh * G + (i) / nq, qt_ = lst[(i) % nq];                                           \
        const bf16 *qg_ = q + ((int64_t)b * S * H + hq_) * D;                                        \
        const bf16 *og_ = dout + ((int64_t)b * S * H + hq_) * D;                                     \
        load_tile<D>(sQ + (buf) * TSZ, qg_, ldq, qt_ * TILE, S);                                     \
        load_tile<D>(sO + (buf) * TSZ, og_, ldq, qt_ * TILE, S);                                     \
        cp_async_commit();                                                                           \
        int t_ = threadIdx.x & 63, row_ = qt_ * TILE + t_;                                           \
        int64_t at_ = ((int64_t)b * H + hq_) * S + row_;                                             \
        if (threadIdx.x < 64) sL[(buf) * TILE + t_] = row_ < S ? lse[at_] * LOG2E : 0.f;             \
        else sD[(buf) * TILE + t_] = row_ < S ? delta[at_] : 0.f;                                    \
    } while (0)

    load_tile<D>(sK, kg, ldk, k0, S);
    load_tile<D>(sV, vg, ldk, k0, S);
    cp_async_commit();
    if (n > 0) DKDV_PREFETCH(0, 0);
    cp_async_wait_all();
    __syncthreads();

    float dka[D / 8][4], dva[D / 8][4];
#pragma unroll
    for (int i = 0; i < D / 8; i++)
#pragma unroll
        for (int c = 0; c < 4; c++) dka[i][c] = dva[i][c] = 0.f;
    const bf16 *aK = sK + (warp * 16 + (lane & 15)) * LDS + (lane >> 4) * 8;  // A-fragment rows of this warp
    const bf16 *aV = sV + (warp * 16 + (lane & 15)) * LDS + (lane >> 4) * 8;

    for (int i = 0; i < n; i++) {
        const int buf = i & 1;
        if (i > 0) {
            cp_async_wait_all();
            __syncthreads();
        }
        if (i + 1 < n) DKDV_PREFETCH(i + 1, buf ^ 1);
        const bf16 *cQ = sQ + buf * TSZ, *cO = sO + buf * TSZ;
        const float *cL = sL + buf * TILE, *cD = sD + buf * TILE;
        const int q0 = lst[i % nq] * TILE;

        // S^T (16 keys x 64 queries)
        float s[8][4];
        mma_rows_tileT<D>(s, aK, cQ);
        // P^T
        const bool need = tile_needs_mask(m, q0, k0, S);
#pragma unroll
        for (int x = 0; x < 8; x++)
#pragma unroll
            for (int c = 0; c < 4; c++) {
                int qi = x * 8 + t4 * 2 + (c & 1);
                float p = ex2f(s[x][c] * scale_log2 - cL[qi]);
                if (need) {
                    int qq = q0 + qi, kk = k0 + warp * 16 + g + (c >> 1) * 8;
                    if (qq >= S || kk >= S || !dev_allows(m, kvh, qq, kk)) p = 0.f;
                }
                s[x][c] = p;
            }
        // dV += P^T dO
        mma_frag_tile<D>(dva, s, cO);
        // dP^T (16 keys x 64 queries) = V dO^T
        float dp_[8][4];
        mma_rows_tileT<D>(dp_, aV, cO);
        // dS^T = P^T (dP^T - delta)
#pragma unroll
        for (int x = 0; x < 8; x++)
#pragma unroll
            for (int c = 0; c < 4; c++) dp_[x][c] = s[x][c] * (dp_[x][c] - cD[x * 8 + t4 * 2 + (c & 1)]);
        if (ATOMIC) {  // dS^T to smem for the dQ product below (each warp its 16 key rows)
#pragma unroll
            for (int x = 0; x < 8; x++) {
                *(uint32_t *)(sS + (warp * 16 + g) * (TILE + 8) + x * 8 + t4 * 2) = pack_bf16(dp_[x][0], dp_[x][1]);
                *(uint32_t *)(sS + (warp * 16 + g + 8) * (TILE + 8) + x * 8 + t4 * 2) = pack_bf16(dp_[x][2], dp_[x][3]);
            }
        }
        // dK += dS^T Q
        mma_frag_tile<D>(dka, dp_, cQ);
        if (ATOMIC) {
            // dQ (64 queries x D) += dS (queries x keys, = sS transposed) K; warp w: queries 16w..16w+15, D in
            // halves of 64 columns to bound registers; fp32 float2 atomics (unordered: not deterministic).
            __syncthreads();
            const int hq = kvh * G + i / nq;
            float *dqg = dq_acc + ((int64_t)b * S * H + hq) * D;
#pragma unroll
            for (int half = 0; half < D / 64; half++) {
                float qa[8][4];
                mma_dsT_tile<D>(qa, sS, sK, half);
#pragma unroll
                for (int r = 0; r < 2; r++) {
                    int row = q0 + warp * 16 + g + r * 8;
                    if (row < S) {
#pragma unroll
                        for (int x = 0; x < 8; x++)
                            atomicAdd((float2 *)(dqg + (int64_t)row * ldq + half * 64 + x * 8 + t4 * 2),
                                      make_float2(qa[x][2 * r], qa[x][2 * r + 1]));
                    }
                }
            }
        }
    }
#undef DKDV_PREFETCH

    // Each warp reads only its own 16 rows of sK/sV (except the ATOMIC dQ product, which reads all of sK:
    // wait for it): stage its dK/dV there, then write 16-byte rows.
    if (ATOMIC) __syncthreads();
    __syncwarp();
    const int64_t kvo = ((int64_t)b * S * KVH + kvh) * D;
    wg_store_rows<D>(dk + kvo, ldk, &dka[0][0], scale, scale, sK + warp * 16 * LDS, k0, S, warp, lane);
    wg_store_rows<D>(dv + kvo, ldk, &dva[0][0], 1.f, 1.f, sV + warp * 16 * LDS, k0, S, warp, lane);
}

// ------------------------------------------------------------------------------------------------------
// backward 3: dQ. grid (query tiles, H, B); CTA = 64 queries of one head, walking the forward key-tile list.
// S = Q K^T, P = exp2(S*c - lse), dP = dO V^T, dS = P (dP - delta), dQ += dS K (times scale at the end).
// smem: K[2], V[2]; Q staged in K[1] and dO in V[1] before the loop (both then live in registers).

template <int D>
__global__ void __launch_bounds__(NTHREADS) attn_bwd_dq_kernel(
    bf16 *__restrict__ dq, const bf16 *__restrict__ q, const bf16 *__restrict__ k, const bf16 *__restrict__ v,
    const bf16 *__restrict__ dout, const float *__restrict__ lse, const float *__restrict__ delta, int S, int H,
    int KVH, float scale, float scale_log2, MaskP m, const int32_t *__restrict__ off,
    const int32_t *__restrict__ tiles, int nqt) {
    constexpr int LDS = D + 8, TSZ = TILE * LDS;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *sK = (bf16 *)smem_raw;  // [2][64][LDS]
    bf16 *sV = sK + 2 * TSZ;      // [2][64][LDS]

    const int qt = nqt - 1 - blockIdx.x;
    const int h = blockIdx.y, b = blockIdx.z;
    const int kvh = h / (H / KVH);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t4 = lane & 3;
    const int q0 = qt * TILE;
    const int64_t ldq = (int64_t)H * D, ldk = (int64_t)KVH * D;
    const bf16 *qg = q + ((int64_t)b * S * H + h) * D;
    const bf16 *og = dout + ((int64_t)b * S * H + h) * D;
    const bf16 *kg = k + ((int64_t)b * S * KVH + kvh) * D;
    const bf16 *vg = v + ((int64_t)b * S * KVH + kvh) * D;
    const int lh = m.per_head ? kvh : 0;
    const int i0 = off[lh * (nqt + 1) + qt], n = off[lh * (nqt + 1) + qt + 1] - i0;
    const int32_t *lst = tiles + i0;

    load_tile<D>(sK + TSZ, qg, ldq, q0, S);
    load_tile<D>(sV + TSZ, og, ldq, q0, S);
    if (n > 0) {
        load_tile<D>(sK, kg, ldk, lst[0] * TILE, S);
        load_tile<D>(sV, vg, ldk, lst[0] * TILE, S);
    }
    cp_async_commit();
    float lr[2], dl[2];  // this thread's two rows: lse * log2 e, delta
#pragma unroll
    for (int r = 0; r < 2; r++) {
        int row = q0 + warp * 16 + g + r * 8;
        int64_t at = ((int64_t)b * H + h) * S + row;
        lr[r] = row < S ? lse[at] * LOG2E : 0.f;
        dl[r] = row < S ? delta[at] : 0.f;
    }
    cp_async_wait_all();
    __syncthreads();
    uint32_t qf[D / 16][4], of[D / 16][4];
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
        ldsm_x4(qf[kk], sK + TSZ + (warp * 16 + (lane & 15)) * LDS + kk * 16 + (lane >> 4) * 8);
        ldsm_x4(of[kk], sV + TSZ + (warp * 16 + (lane & 15)) * LDS + kk * 16 + (lane >> 4) * 8);
    }
    __syncthreads();

    float acc[D / 8][4];
#pragma unroll
    for (int i = 0; i < D / 8; i++) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.f;

    for (int j = 0; j < n; j++) {
        const int buf = j & 1;
        if (j > 0) {
            cp_async_wait_all();
            __syncthreads();
        }
        if (j + 1 < n) {
            int kt1 = lst[j + 1];
            load_tile<D>(sK + (buf ^ 1) * TSZ, kg, ldk, kt1 * TILE, S);
            load_tile<D>(sV + (buf ^ 1) * TSZ, vg, ldk, kt1 * TILE, S);
            cp_async_commit();
        }
        const bf16 *cK = sK + buf * TSZ, *cV = sV + buf * TSZ;
        const int k0 = lst[j] * TILE;

        float s[8][4], dp_[8][4];
#pragma unroll
        for (int x = 0; x < 8; x++)
#pragma unroll
            for (int c = 0; c < 4; c++) s[x][c] = dp_[x][c] = 0.f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
#pragma unroll
            for (int np = 0; np < 4; np++) {
                uint32_t bb[4];
                ldsm_x4(bb, cK + (np * 16 + (lane & 7) + ((lane >> 4) << 3)) * LDS + kk * 16 + ((lane >> 3) & 1) * 8);
                mma16816(s[2 * np], qf[kk], bb[0], bb[1]);
                mma16816(s[2 * np + 1], qf[kk], bb[2], bb[3]);
                ldsm_x4(bb, cV + (np * 16 + (lane & 7) + ((lane >> 4) << 3)) * LDS + kk * 16 + ((lane >> 3) & 1) * 8);
                mma16816(dp_[2 * np], of[kk], bb[0], bb[1]);
                mma16816(dp_[2 * np + 1], of[kk], bb[2], bb[3]);
            }
        }
        const bool need = tile_needs_mask(m, q0, k0, S);
#pragma unroll
        for (int x = 0; x < 8; x++)
#pragma unroll
            for (int c = 0; c < 4; c++) {
                float p = ex2f(s[x][c] * scale_log2 - lr[c >> 1]);
                if (need) {
                    int qq = q0 + warp * 16 + g + (c >> 1) * 8, kk = k0 + x * 8 + t4 * 2 + (c & 1);
                    if (qq >= S || kk >= S || !dev_allows(m, kvh, qq, kk)) p = 0.f;
                }
                dp_[x][c] = p * (dp_[x][c] - dl[c >> 1]);
            }
        // dQ += dS K  (K stored [key][d] = [k][n]: transposed ldmatrix)
#pragma unroll
        for (int kc = 0; kc < 4; kc++) {
            uint32_t a[4] = {pack_bf16(dp_[2 * kc][0], dp_[2 * kc][1]), pack_bf16(dp_[2 * kc][2], dp_[2 * kc][3]),
                             pack_bf16(dp_[2 * kc + 1][0], dp_[2 * kc + 1][1]),
                             pack_bf16(dp_[2 * kc + 1][2], dp_[2 * kc + 1][3])};
#pragma unroll
            for (int dd = 0; dd < D / 16; dd++) {
                uint32_t bb[4];
                ldsm_x4_t(bb, cK + (kc * 16 + (lane & 15)) * LDS + dd * 16 + (lane >> 4) * 8);
                mma16816(acc[2 * dd], a, bb[0], bb[1]);
                mma16816(acc[2 * dd + 1], a, bb[2], bb[3]);
            }
        }
    }

    __syncthreads();  // stage dQ in K[0]
    wg_store_rows<D>(dq + ((int64_t)b * S * H + h) * D, ldq, &acc[0][0], scale, scale, sK + warp * 16 * LDS, q0, S,
                     warp, lane);
}

// ------------------------------------------------------------------------------------------------------
// wgmma kernels (sm_90a): the same three passes with warpgroup MMA. A CTA is one warpgroup (4 warps, 64 rows,
// warp w owns rows 16w..16w+15 exactly as above, so the softmax and masking code is unchanged: the wgmma
// accumulator of m64nN is, per warp, the mma.sync C layout repeated over N/8 column chunks, and a register A
// operand has the mma.sync A-fragment layout). Operands come from shared memory through descriptors:
//   tiles of 64 rows x D bf16 in the 128-byte swizzle layout (below); K-major operands (Q, K, V, dO as the
//   second factor of Q K^T, dO V^T, K Q^T, V dO^T) and N-major ones (V, K, dO, Q as the second factor of
//   P V, dS K, P^T dO, dS^T Q, which the instruction transposes: bf16 allows it).
// Loads are cp.async (every thread), double-buffered, one tile ahead, except the v7 forward's K/V tiles (TMA,
// attention_tma.cuh); two CTAs per SM overlap one CTA's softmax with the other's MMAs. Bit-for-bit deterministic: the same fixed loop orders as the mma.sync path.
#if !defined(__CUDA_ARCH__) || defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define LG_HAVE_WGMMA_CODE 1
#endif
#ifdef LG_HAVE_WGMMA_CODE
// mbarriers and TMA (the v7 forward and the TMA backward): one thread arms a barrier with the bytes to expect
// and issues the boxes; the consumers wait on the barrier's phase parity.
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
// 2D TMA box (64 columns x 64 rows of bf16 at coordinates {c0 = column, c1 = row}) into dst, completing on bar
static __device__ __forceinline__ void tma_load_2d(void *dst, const CUtensorMap *map, int c0, int c1, uint64_t *bar) {
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(
            smem_u32(dst)),
        "l"((uint64_t)map), "r"(c0), "r"(c1), "r"(smem_u32(bar))
        : "memory");
}
#endif

#ifdef LG_HAVE_WGMMA_CODE
// Two 64-row x D tiles (K and V, or Q and dO) at rows [row, row + 64), columns [col, col + D) of two row-major
// tensor maps into the swizzled stage tiles a and b, completing on bar (one thread calls this).
template <int D>
static __device__ __forceinline__ void tma_tile_pair(bf16 *a, bf16 *b, const CUtensorMap *ma, const CUtensorMap *mb,
                                                     int col, int row, uint64_t *bar) {
    mbar_expect_tx(bar, 2 * TILE * D * sizeof(bf16));
#pragma unroll
    for (int slab = 0; slab < D / 64; slab++) {
        tma_load_2d(a + slab * (TILE * 64), ma, col + slab * 64, row, bar);
        tma_load_2d(b + slab * (TILE * 64), mb, col + slab * 64, row, bar);
    }
}
#endif
#ifdef LG_HAVE_WGMMA_CODE
// 4-byte async copy global -> shared; valid == 0 writes 0.0f
static __device__ __forceinline__ void cp_async4(void *smem, const void *gmem, int valid) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_u32(smem)), "l"(gmem), "r"(valid ? 4 : 0)
                 : "memory");
}
#endif

// 64 x D tile in the 128-byte swizzle layout: D/64 slabs of 64 rows x 128 bytes (8 KB apart, 1024-aligned);
// the 16-byte chunk c (0..7) of row r sits at chunk position c ^ (r % 8) of that row.
template <int D>
static __device__ __forceinline__ void load_tile_sw(bf16 *sm, const bf16 *g, int64_t ld, int row0, int S) {
    constexpr int CPR = D / 8;
    constexpr int ITERS = TILE * CPR / NTHREADS;
#pragma unroll
    for (int it = 0; it < ITERS; it++) {
        int c = it * NTHREADS + threadIdx.x;
        int r = c / CPR, ch = c % CPR;
        int valid = row0 + r < S;
        const bf16 *src = valid ? g + (int64_t)(row0 + r) * ld + ch * 8 : g;
        cp_async16((unsigned char *)sm + (ch >> 3) * 8192 + r * 128 + (((ch & 7) ^ (r & 7)) << 4), src, valid);
    }
}

#ifdef LG_HAVE_WGMMA_CODE
// Descriptor of the 64 x 16 (K-major: rows are M or N, 16 consecutive k) piece kk of a swizzled tile:
// start address (>>4), leading offset unused (1), stride 1024 B between 8-row groups, 128-byte swizzle.
// The piece offset is added to the descriptor of the tile's start (same value: shared addresses are below
// 256 KB, so the 14-bit address field cannot carry), which the compiler then builds once per tile instead of
// once per MMA (session 4 profile: ~110 uniform-datapath instructions per forward tile went to descriptors).
static __device__ __forceinline__ uint64_t desc_kmaj(const bf16 *tile, int kk) {
    const uint64_t base = (uint64_t)((smem_u32(tile) & 0x3FFFF) >> 4) | (1ull << 16) | (64ull << 32) | (1ull << 62);
    return base + (uint32_t)(((kk >> 2) * 8192 + (kk & 3) * 32) >> 4);
}
// Descriptor of rows 16kc..16kc+15 of a swizzled tile read as B = [k][n] (N-major, transposed by the MMA):
// leading offset 8 KB between 64-column slabs along n, stride 1024 B between 8-row groups along k.
static __device__ __forceinline__ uint64_t desc_nmaj(const bf16 *tile, int kc) {
    const uint64_t base =
        (uint64_t)((smem_u32(tile) & 0x3FFFF) >> 4) | ((uint64_t)(8192 >> 4) << 16) | (64ull << 32) | (1ull << 62);
    return base + (uint32_t)((kc * 2048) >> 4);
}
static __device__ __forceinline__ void fence_async_smem(void) {
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
static __device__ __forceinline__ void wg_fence(void) { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
static __device__ __forceinline__ void wg_commit(void) { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
static __device__ __forceinline__ void wg_wait0(void) { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
static __device__ __forceinline__ void wg_wait1(void) { asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory"); }
// keeps the compiler from moving accumulator reads above the wait (the asm outputs are written asynchronously)
template <int N>
static __device__ __forceinline__ void reg_fence(float *r) {
#pragma unroll
    for (int i = 0; i < N; i++) asm volatile("" : "+f"(r[i])::"memory");
}
// d (64 x 64 fp32, wgmma accumulator layout) (+)= A (64x16, smem desc) * B (16x64, smem desc, K-major)
static __device__ __forceinline__ void wgmma_ss_n64(float d[32], uint64_t da, uint64_t db, int accumulate) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "l"(da), "l"(db), "r"(accumulate));
}

// d (64 x 64 fp32) += A (64x16 bf16 in registers, mma.sync A-fragment layout per warp) * B (16x64, smem desc,
// N-major: stored [k][n], transposed by the instruction)
static __device__ __forceinline__ void wgmma_rs_n64_tb(float d[32], const uint32_t a[4], uint64_t db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, {%32,%33,%34,%35}, %36, p, 1, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
}

// d (64 x 64 fp32) (+)= A (64x16 bf16 in registers, mma.sync A-fragment layout per warp) * B (16x64, smem desc,
// K-major as wgmma_ss_n64's B)
static __device__ __forceinline__ void wgmma_rs_n64_kb(float d[32], const uint32_t a[4], uint64_t db, int accumulate) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, {%32,%33,%34,%35}, %36, p, 1, 1, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(accumulate));
}

// d (64 x 128 fp32) += A (64x16 bf16 in registers, mma.sync A-fragment layout per warp) * B (16x128, smem desc,
// N-major: stored [k][n], transposed by the instruction)
static __device__ __forceinline__ void wgmma_rs_n128_tb(float d[64], const uint32_t a[4], uint64_t db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, {%64,%65,%66,%67}, %68, p, 1, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
}

// O (64 x D) += A (regs) * B (16 x D, N-major desc)
template <int D>
static __device__ __forceinline__ void wgmma_rs_d(float *d, const uint32_t a[4], uint64_t db) {
    if (D == 128) wgmma_rs_n128_tb(d, a, db);
    else wgmma_rs_n64_tb(d, a, db);
}
// a (A fragment, 16 columns 16kc..) from an accumulator tile s (64 columns, fp32) rounded to bf16
static __device__ __forceinline__ void frag_a(uint32_t a[4], const float *s, int kc) {
    a[0] = pack_bf16(s[8 * kc + 0], s[8 * kc + 1]);
    a[1] = pack_bf16(s[8 * kc + 2], s[8 * kc + 3]);
    a[2] = pack_bf16(s[8 * kc + 4], s[8 * kc + 5]);
    a[3] = pack_bf16(s[8 * kc + 6], s[8 * kc + 7]);
}
#endif

#ifdef LG_HAVE_WGMMA_CODE
// The wgmma forward's key-tile step for one warpgroup's 64 query rows, in three parts (wg_fwd_tile runs them
// back to back; a pipelined v7 that issued S of the next tile before this tile's softmax measured slower,
// bench/results/attention.md, session 4):
// wg_fwd_s: S = Q K^T issued (committed, not waited). warp: the warp within the warpgroup; g, t4: lane / 4, lane % 4.
template <int D>
static __device__ __forceinline__ void wg_fwd_s(float s[32], const bf16 *sQ, const bf16 *cK) {
#pragma unroll
    for (int i = 0; i < 32; i++) s[i] = 0.f;
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) wgmma_ss_n64(s, desc_kmaj(sQ, kk), desc_kmaj(cK, kk), kk > 0);
    wg_commit();
}
// wg_fwd_softmax: the mask and the online softmax of a completed S, in place (x: S in, P out; running base
// mrow and sum lrow of this thread's two rows) and O's rescale factors corr. x must not be the accumulator of
// an MMA still in flight (ptxas would serialize every wgmma of the kernel).
static __device__ __forceinline__ void wg_fwd_softmax(float x[32], float mrow[2], float lrow[2], float corr[2],
                                                      const MaskP &m, int q0, int k0, int S, int kvh,
                                                      float scale_log2, int warp, int g, int t4) {
    // The mask on the raw scores; the max is taken before scaling (scale > 0: the same element wins) so that
    // P = 2^(s * scale_log2 - base) is one FFMA and one MUFU per element.
    // one branch around the whole element test (per element, the v10 kernel compiled it as 32 divergent
    // branches with reconvergence even on unmasked tiles)
    if (tile_needs_mask(m, q0, k0, S)) {
#pragma unroll
        for (int i = 0; i < 8; i++)
#pragma unroll
            for (int c = 0; c < 4; c++) {
                int qq = q0 + warp * 16 + g + (c >> 1) * 8, kk = k0 + i * 8 + t4 * 2 + (c & 1);
                if (qq >= S || kk >= S || !dev_allows(m, kvh, qq, kk)) x[4 * i + c] = -INFINITY;
            }
    }
#pragma unroll
    for (int r = 0; r < 2; r++) {
        float mx = -INFINITY;
#pragma unroll
        for (int i = 0; i < 8; i++) mx = fmaxf(mx, fmaxf(x[4 * i + 2 * r], x[4 * i + 2 * r + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        mx *= scale_log2;
        // The running base (mrow, log2 units) moves only when the row max passes it by more than 8: P stays
        // <= 2^8 (exact in fp32 sums, bf16's relative precision at any magnitude), and O is rescaled only on
        // the rare steps where some row's base moved (first tiles), not on every step. The result is exact
        // either way: O and l are both relative to the same base; lse = base * ln 2 + ln l.
        const float nb = mx > mrow[r] + 8.f ? mx : mrow[r];  // mrow = -inf: any visible max moves it
        const float base = nb == -INFINITY ? 0.f : nb;       // a row with nothing visible yet stays at 0
        corr[r] = ex2f(mrow[r] - base);                      // 1 exactly when the base stayed
        mrow[r] = nb;
        float sum = 0.f;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            x[4 * i + 2 * r] = ex2f(fmaf(x[4 * i + 2 * r], scale_log2, -base));
            x[4 * i + 2 * r + 1] = ex2f(fmaf(x[4 * i + 2 * r + 1], scale_log2, -base));
            sum += x[4 * i + 2 * r] + x[4 * i + 2 * r + 1];
        }
        lrow[r] = lrow[r] * corr[r] + sum;
    }
}
// wg_fwd_pv: O (acc) rescaled where a base moved, then O += P V issued (committed, not waited).
template <int D>
static __device__ __forceinline__ void wg_fwd_pv(float *acc, const float s[32], const float corr[2], const bf16 *cV) {
    if (__any_sync(0xffffffffu, corr[0] != 1.f || corr[1] != 1.f)) {
#pragma unroll
        for (int i = 0; i < D / 8; i++) {
            acc[4 * i] *= corr[0];
            acc[4 * i + 1] *= corr[0];
            acc[4 * i + 2] *= corr[1];
            acc[4 * i + 3] *= corr[1];
        }
    }
    uint32_t pa[4][4];
#pragma unroll
    for (int kc = 0; kc < 4; kc++) frag_a(pa[kc], s, kc);
    wg_fence();
#pragma unroll
    for (int kc = 0; kc < 4; kc++) wgmma_rs_d<D>(acc, pa[kc], desc_nmaj(cV, kc));
    wg_commit();
}
// wg_fwd_s with Q as register A fragments (qa[kk]: columns 16kk.. of this warp's 16 rows) instead of smem.
template <int D>
static __device__ __forceinline__ void wg_fwd_s_rq(float s[32], const uint32_t (*qa)[4], const bf16 *cK) {
#pragma unroll
    for (int i = 0; i < 32; i++) s[i] = 0.f;
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) wgmma_rs_n64_kb(s, qa[kk], desc_kmaj(cK, kk), kk > 0);
    wg_commit();
}
// The A fragments of 16 rows (row0.., this warp's) x D columns of a row-major bf16 matrix, straight from global
// memory (a[kk]: columns 16kk..16kk+15, wgmma's register-A layout; zeros for rows >= S): Q for the forward's
// S = Q K^T, Q and dO for dQ's S and dP. Read once per CTA, so the strided 4-byte loads do not matter.
template <int D>
static __device__ __forceinline__ void ldg_a_frags(uint32_t (*a)[4], const bf16 *src, int64_t ld, int row0, int S,
                                                   int g, int t4) {
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int row = row0 + g + r * 8;
        const uint32_t *p = (const uint32_t *)(src + (int64_t)(row < S ? row : 0) * ld);
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            a[kk][r] = row < S ? __ldg(p + kk * 8 + t4) : 0u;
            a[kk][2 + r] = row < S ? __ldg(p + kk * 8 + 4 + t4) : 0u;
        }
    }
}
// One whole step (v3, v4 and the unpipelined v7): S, softmax, O += P V, each waited for.
template <int D>
static __device__ __forceinline__ void wg_fwd_tile(float *acc, float mrow[2], float lrow[2], const bf16 *sQ,
                                                   const bf16 *cK, const bf16 *cV, const MaskP &m, int q0, int k0,
                                                   int S, int kvh, float scale_log2, int warp, int g, int t4) {
    float s[32], corr[2];
    wg_fwd_s<D>(s, sQ, cK);
    wg_wait0();
    reg_fence<32>(s);
    wg_fwd_softmax(s, mrow, lrow, corr, m, q0, k0, S, kvh, scale_log2, warp, g, t4);
    wg_fwd_pv<D>(acc, s, corr, cV);
    wg_wait0();
    reg_fence<D / 2>(acc);
}
// The forward's end for one warpgroup's 64 query rows (q0..): lse (natural log; -inf for a row that saw no
// key) and O = acc / l. O is staged per warp through stg (this warp's 16 rows, stride D + 8: no bank conflicts)
// so that the stores are 16 contiguous bytes per lane. Contains a __syncthreads (every thread of the CTA must
// call it): after it no MMA still reads the shared memory under stg. og, lsep: this (b, h)'s out and lse.
template <int D>
static __device__ __forceinline__ void wg_fwd_epilogue(bf16 *og, int64_t ldq, float *lsep, const float *acc,
                                                       const float mrow[2], const float lrow[2], bf16 *stg, int q0,
                                                       int S, int warp, int lane) {
    const int g = lane >> 2, t4 = lane & 3;
    float inv[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        float l = lrow[r];
        l += __shfl_xor_sync(0xffffffffu, l, 1);
        l += __shfl_xor_sync(0xffffffffu, l, 2);
        inv[r] = l > 0.f ? 1.f / l : 0.f;
        int row = q0 + warp * 16 + g + r * 8;
        if (t4 == 0 && row < S) lsep[row] = l > 0.f ? mrow[r] * LN2 + logf(l) : -INFINITY;
    }
    __syncthreads();
    wg_store_rows<D>(og, ldq, acc, inv[0], inv[1], stg, q0, S, warp, lane);
}
#endif

// forward, wgmma. smem: Q, K[2], V[2] (swizzled); O is staged through K[0..1] (padded) at the end.
template <int D>
__global__ void __launch_bounds__(NTHREADS, 2) attn_fwd_wg_kernel(bf16 *__restrict__ out, float *__restrict__ lse,
                                                              const bf16 *__restrict__ q, const bf16 *__restrict__ k,
                                                              const bf16 *__restrict__ v, int S, int H, int KVH,
                                                              float scale_log2, MaskP m, const int32_t *__restrict__ off,
                                                              const int32_t *__restrict__ tiles, int nqt) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    constexpr int TB = TILE * D, LDS = D + 8;
    extern __shared__ __align__(1024) unsigned char smem_wg[];
    bf16 *sQ = (bf16 *)smem_wg, *sK = sQ + TB, *sV = sK + 2 * TB;

    const int qt = nqt - 1 - blockIdx.x;  // long rows (late tiles) first
    const int h = blockIdx.y, b = blockIdx.z;
    const int kvh = h / (H / KVH);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t4 = lane & 3;
    const int q0 = qt * TILE;
    const int64_t ldq = (int64_t)H * D, ldk = (int64_t)KVH * D;
    const bf16 *qg = q + ((int64_t)b * S * H + h) * D;
    const bf16 *kg = k + ((int64_t)b * S * KVH + kvh) * D;
    const bf16 *vg = v + ((int64_t)b * S * KVH + kvh) * D;
    const int lh = m.per_head ? kvh : 0;
    const int i0 = off[lh * (nqt + 1) + qt], n = off[lh * (nqt + 1) + qt + 1] - i0;
    const int32_t *lst = tiles + i0;

    load_tile_sw<D>(sQ, qg, ldq, q0, S);
    if (n > 0) {
        load_tile_sw<D>(sK, kg, ldk, lst[0] * TILE, S);
        load_tile_sw<D>(sV, vg, ldk, lst[0] * TILE, S);
    }
    cp_async_commit();

    float acc[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; i++) acc[i] = 0.f;
    float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.f, 0.f};

    for (int j = 0; j < n; j++) {
        const int buf = j & 1;
        cp_async_wait_all();
        fence_async_smem();  // cp.async wrote through the generic proxy; the MMAs read through the async one
        __syncthreads();     // tile j landed for all; every MMA on tile j-1 (buffer buf^1) has completed
        if (j + 1 < n) {
            int kt1 = lst[j + 1];
            load_tile_sw<D>(sK + (buf ^ 1) * TB, kg, ldk, kt1 * TILE, S);
            load_tile_sw<D>(sV + (buf ^ 1) * TB, vg, ldk, kt1 * TILE, S);
            cp_async_commit();
        }
        const bf16 *cK = sK + buf * TB, *cV = sV + buf * TB;
        wg_fwd_tile<D>(acc, mrow, lrow, sQ, cK, cV, m, q0, lst[j] * TILE, S, kvh, scale_log2, warp, g, t4);
    }
    cp_async_wait_all();  // n == 0: the Q load is still in flight

    // every MMA is done with K/V once all threads pass the epilogue's barrier: O is staged over them
    wg_fwd_epilogue<D>(out + ((int64_t)b * S * H + h) * D, ldq, lse + ((int64_t)b * H + h) * S, acc, mrow, lrow,
                       sK + warp * 16 * LDS, q0, S, warp, lane);
#endif
}

// forward, wgmma, pipelined (FlashAttention-3's intra-warpgroup overlap): while the softmax of key tile j runs
// on the FP32/MUFU units, the tensor cores already compute S for tile j+1. K is loaded two tiles ahead, V one.
// smem: Q, K[3], V[2] (swizzled); O staged through K[0..1] at the end.
template <int D>
__global__ void __launch_bounds__(NTHREADS, 2) attn_fwd_wgp_kernel(bf16 *__restrict__ out, float *__restrict__ lse,
                                                               const bf16 *__restrict__ q, const bf16 *__restrict__ k,
                                                               const bf16 *__restrict__ v, int S, int H, int KVH,
                                                               float scale_log2, MaskP m, const int32_t *__restrict__ off,
                                                               const int32_t *__restrict__ tiles, int nqt) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    constexpr int TB = TILE * D, LDS = D + 8;
    extern __shared__ __align__(1024) unsigned char smem_wg[];
    bf16 *sQ = (bf16 *)smem_wg, *sK = sQ + TB, *sV = sK + 3 * TB;

    const int qt = nqt - 1 - blockIdx.x;  // long rows (late tiles) first
    const int h = blockIdx.y, b = blockIdx.z;
    const int kvh = h / (H / KVH);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t4 = lane & 3;
    const int q0 = qt * TILE;
    const int64_t ldq = (int64_t)H * D, ldk = (int64_t)KVH * D;
    const bf16 *qg = q + ((int64_t)b * S * H + h) * D;
    const bf16 *kg = k + ((int64_t)b * S * KVH + kvh) * D;
    const bf16 *vg = v + ((int64_t)b * S * KVH + kvh) * D;
    const int lh = m.per_head ? kvh : 0;
    const int i0 = off[lh * (nqt + 1) + qt], n = off[lh * (nqt + 1) + qt + 1] - i0;
    const int32_t *lst = tiles + i0;

    load_tile_sw<D>(sQ, qg, ldq, q0, S);
    if (n > 0) {
        load_tile_sw<D>(sK, kg, ldk, lst[0] * TILE, S);
        load_tile_sw<D>(sV, vg, ldk, lst[0] * TILE, S);
    }
    if (n > 1) load_tile_sw<D>(sK + TB, kg, ldk, lst[1] * TILE, S);
    cp_async_commit();
    cp_async_wait_all();
    fence_async_smem();
    __syncthreads();

    float acc[D / 2], s[32], sn[32];
#pragma unroll
    for (int i = 0; i < D / 2; i++) acc[i] = 0.f;
#pragma unroll
    for (int i = 0; i < 32; i++) s[i] = sn[i] = 0.f;
    float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.f, 0.f};
    if (n > 0) {
        wg_fence();
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) wgmma_ss_n64(sn, desc_kmaj(sQ, kk), desc_kmaj(sK, kk), kk > 0);
        wg_commit();
        wg_wait0();
        reg_fence<32>(sn);
#pragma unroll
        for (int i = 0; i < 32; i++) s[i] = sn[i];  // s is never an MMA accumulator itself (no serialization)
    }

    for (int j = 0; j < n; j++) {
        if (j > 0) {
            cp_async_wait_all();
            fence_async_smem();
            __syncthreads();  // K[j+1] and V[j] landed; every MMA of step j-1 has completed
        }
        if (j + 2 < n) load_tile_sw<D>(sK + ((j + 2) % 3) * TB, kg, ldk, lst[j + 2] * TILE, S);
        if (j + 1 < n) load_tile_sw<D>(sV + ((j + 1) & 1) * TB, vg, ldk, lst[j + 1] * TILE, S);
        cp_async_commit();
        if (j + 1 < n) {  // S for tile j+1, asynchronously
            const bf16 *nK = sK + ((j + 1) % 3) * TB;
            wg_fence();
#pragma unroll
            for (int kk = 0; kk < D / 16; kk++) wgmma_ss_n64(sn, desc_kmaj(sQ, kk), desc_kmaj(nK, kk), kk > 0);
            wg_commit();
        }
        const int k0 = lst[j] * TILE;
        const bool need = tile_needs_mask(m, q0, k0, S);
#pragma unroll
        for (int i = 0; i < 8; i++)
#pragma unroll
            for (int c = 0; c < 4; c++) {
                float x = s[4 * i + c] * scale_log2;
                if (need) {
                    int qq = q0 + warp * 16 + g + (c >> 1) * 8, kk = k0 + i * 8 + t4 * 2 + (c & 1);
                    if (qq >= S || kk >= S || !dev_allows(m, kvh, qq, kk)) x = -INFINITY;
                }
                s[4 * i + c] = x;
            }
        float corr[2];
#pragma unroll
        for (int r = 0; r < 2; r++) {
            float mx = mrow[r];
#pragma unroll
            for (int i = 0; i < 8; i++) mx = fmaxf(mx, fmaxf(s[4 * i + 2 * r], s[4 * i + 2 * r + 1]));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            const float base = mx == -INFINITY ? 0.f : mx;
            corr[r] = ex2f(mrow[r] - base);
            mrow[r] = mx;
            float sum = 0.f;
#pragma unroll
            for (int i = 0; i < 8; i++) {
                s[4 * i + 2 * r] = ex2f(s[4 * i + 2 * r] - base);
                s[4 * i + 2 * r + 1] = ex2f(s[4 * i + 2 * r + 1] - base);
                sum += s[4 * i + 2 * r] + s[4 * i + 2 * r + 1];
            }
            lrow[r] = lrow[r] * corr[r] + sum;
        }
        uint32_t pa[4][4];
#pragma unroll
        for (int kc = 0; kc < 4; kc++) frag_a(pa[kc], s, kc);
        // O is touched only once S(j+1) is done: no accumulator in flight is read (ptxas would serialize)
        wg_wait0();
        reg_fence<32>(sn);
#pragma unroll
        for (int i = 0; i < D / 8; i++) {
            acc[4 * i] *= corr[0];
            acc[4 * i + 1] *= corr[0];
            acc[4 * i + 2] *= corr[1];
            acc[4 * i + 3] *= corr[1];
        }
        const bf16 *cV = sV + (j & 1) * TB;
        wg_fence();
#pragma unroll
        for (int kc = 0; kc < 4; kc++) wgmma_rs_d<D>(acc, pa[kc], desc_nmaj(cV, kc));
        wg_commit();
#pragma unroll
        for (int i = 0; i < 32; i++) s[i] = sn[i];
        wg_wait0();
        reg_fence<D / 2>(acc);
    }
    cp_async_wait_all();

    // every MMA is done with K/V once all threads pass the epilogue's barrier: O is staged over them
    wg_fwd_epilogue<D>(out + ((int64_t)b * S * H + h) * D, ldq, lse + ((int64_t)b * H + h) * S, acc, mrow, lrow,
                       sK + warp * 16 * LDS, q0, S, warp, lane);
#endif
}

// One step of the wgmma dK/dV kernels (v3 attn_bwd_dkdv_wg_kernel, v4 attn_bwd_dkdv_wg2_kernel), one warpgroup:
// S^T = K Q^T, dP^T = V dO^T (64 keys x 64 queries each; K, V, Q, dO swizzled in smem), P^T, dS^T =
// P^T (dP^T - delta), both rounded to bf16 A fragments (registers), then dV += P^T dO, dK += dS^T Q.
// PIPE: P^T while dP^T is still on the tensor cores, and dV's product while dS^T is formed.
template <int D, bool PIPE>
static __device__ __forceinline__ void wg_dkdv_step(float (&dka)[D / 2], float (&dva)[D / 2], const bf16 *sK,
                                                    const bf16 *sV, const bf16 *cQ, const bf16 *cO, const float *cL,
                                                    const float *cD, const MaskP &m, int kvh, int q0, int k0, int S,
                                                    float scale_log2, int warp, int g, int t4) {
    float s[32], dp[32];
#pragma unroll
    for (int x = 0; x < 32; x++) s[x] = dp[x] = 0.f;
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) wgmma_ss_n64(s, desc_kmaj(sK, kk), desc_kmaj(cQ, kk), kk > 0);
    if (PIPE) wg_commit();
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) wgmma_ss_n64(dp, desc_kmaj(sV, kk), desc_kmaj(cO, kk), kk > 0);
    wg_commit();
    const bool need = tile_needs_mask(m, q0, k0, S);
    // P^T = exp2(S^T * scale_log2 - lse): all 32 exponentials in one block, the mask after it under one branch
    // (a test per element split the block into 8 basic blocks with a branch each: 24 BRA per tile, 22% of the
    // stall samples in session 4's profile)
    auto p_tile = [&]() {
#pragma unroll
        for (int x = 0; x < 8; x++)
#pragma unroll
            for (int c = 0; c < 4; c++) s[4 * x + c] = ex2f(s[4 * x + c] * scale_log2 - cL[x * 8 + t4 * 2 + (c & 1)]);
        if (need) {
#pragma unroll
            for (int x = 0; x < 8; x++)
#pragma unroll
                for (int c = 0; c < 4; c++) {
                    int qq = q0 + x * 8 + t4 * 2 + (c & 1), kk = k0 + warp * 16 + g + (c >> 1) * 8;
                    if (qq >= S || kk >= S || !dev_allows(m, kvh, qq, kk)) s[4 * x + c] = 0.f;
                }
        }
    };
    uint32_t pa[4][4], da[4][4];
    if (PIPE) {
        wg_wait1();
        reg_fence<32>(s);
        p_tile();
#pragma unroll
        for (int kc = 0; kc < 4; kc++) frag_a(pa[kc], s, kc);
        wg_fence();
#pragma unroll
        for (int kc = 0; kc < 4; kc++) wgmma_rs_d<D>(dva, pa[kc], desc_nmaj(cO, kc));
        wg_commit();
        wg_wait1();
        reg_fence<32>(dp);
#pragma unroll
        for (int x = 0; x < 32; x++) dp[x] = s[x] * (dp[x] - cD[(x >> 2) * 8 + t4 * 2 + (x & 1)]);
#pragma unroll
        for (int kc = 0; kc < 4; kc++) frag_a(da[kc], dp, kc);
        wg_fence();
#pragma unroll
        for (int kc = 0; kc < 4; kc++) wgmma_rs_d<D>(dka, da[kc], desc_nmaj(cQ, kc));
        wg_commit();
    } else {
        wg_wait0();
        reg_fence<32>(s);
        reg_fence<32>(dp);
        p_tile();
#pragma unroll
        for (int kc = 0; kc < 4; kc++) {
#pragma unroll
            for (int x = 2 * kc; x < 2 * kc + 2; x++)
#pragma unroll
                for (int c = 0; c < 4; c++)
                    dp[4 * x + c] = s[4 * x + c] * (dp[4 * x + c] - cD[x * 8 + t4 * 2 + (c & 1)]);
            frag_a(pa[kc], s, kc);
            frag_a(da[kc], dp, kc);
        }
        wg_fence();
#pragma unroll
        for (int kc = 0; kc < 4; kc++) wgmma_rs_d<D>(dva, pa[kc], desc_nmaj(cO, kc));
#pragma unroll
        for (int kc = 0; kc < 4; kc++) wgmma_rs_d<D>(dka, da[kc], desc_nmaj(cQ, kc));
        wg_commit();
    }
    wg_wait0();
    reg_fence<D / 2>(dka);
    reg_fence<D / 2>(dva);
}

// dK, dV, wgmma (deterministic). grid (KVH * key tiles, 1, B): CTA x takes (kvh, key tile) = korder[x], all
// heads' key tiles longest query list first (see kv_order); the loop and its order as attn_bwd_dkdv_kernel.
// smem: K, V, Q[2], dO[2] (swizzled), lse[2][64], delta[2][64]; dK/dV staged through Q[0..1] / dO[0..1].
// TMA: Q/dO tiles by TMA (tq_map, to_map: q and dout as [B*S rows][H*D columns]) onto full[2], one thread
// issuing, instead of cp.async by every thread (lse and delta stay 4-byte cp.async).
template <int D, bool PIPE, bool TMA>
__global__ void __launch_bounds__(NTHREADS, 2) attn_bwd_dkdv_wg_kernel(
    bf16 *__restrict__ dk, bf16 *__restrict__ dv, const bf16 *__restrict__ q, const bf16 *__restrict__ k,
    const bf16 *__restrict__ v, const bf16 *__restrict__ dout, const float *__restrict__ lse2,
    const float *__restrict__ delta, int S, int H, int KVH, float scale, float scale_log2, MaskP m,
    const int32_t *__restrict__ toff, const int32_t *__restrict__ tq, int nqt, const int32_t *__restrict__ korder,
    const __grid_constant__ CUtensorMap tq_map, const __grid_constant__ CUtensorMap to_map) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    constexpr int TB = TILE * D, LDS = D + 8;
    extern __shared__ __align__(1024) unsigned char smem_wg[];
    bf16 *sK = (bf16 *)smem_wg, *sV = sK + TB, *sQ = sV + TB, *sO = sQ + 2 * TB;
    float *sL = (float *)(sO + 2 * TB);  // [2][64] lse * log2 e
    float *sD = sL + 2 * TILE;           // [2][64] delta
    uint64_t *full = (uint64_t *)(sD + 2 * TILE);  // [2], TMA only

    const int kt = korder[blockIdx.x] % nqt;
    const int kvh = korder[blockIdx.x] / nqt, b = blockIdx.z;
    const int G = H / KVH;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t4 = lane & 3;
    const int k0 = kt * TILE;
    const int64_t ldq = (int64_t)H * D, ldk = (int64_t)KVH * D;
    const bf16 *kg = k + ((int64_t)b * S * KVH + kvh) * D;
    const bf16 *vg = v + ((int64_t)b * S * KVH + kvh) * D;
    const int lh = m.per_head ? kvh : 0;
    const int i0 = toff[lh * (nqt + 1) + kt], nq = toff[lh * (nqt + 1) + kt + 1] - i0;
    const int32_t *lst = tq + i0;
    const int n = nq * G;
#define DKDV_WG_PREFETCH(hoff, qtile, buf)                                                           \
    do {                                                                                             \
        const int hq_ = kvh * G + (hoff), qt_ = (qtile);                                             \
        const bf16 *qg_ = q + ((int64_t)b * S * H + hq_) * D;                                        \
        const bf16 *og_ = dout + ((int64_t)b * S * H + hq_) * D;                                     \
        if (TMA) {                                                                                   \
            if (threadIdx.x == 0)                                                                    \
                tma_tile_pair<D>(sQ + (buf) * TB, sO + (buf) * TB, &tq_map, &to_map, hq_ * D,         \
                                 b * S + qt_ * TILE, &full[buf]);                                    \
        } else {                                                                                     \
            load_tile_sw<D>(sQ + (buf) * TB, qg_, ldq, qt_ * TILE, S);                               \
            load_tile_sw<D>(sO + (buf) * TB, og_, ldq, qt_ * TILE, S);                               \
        }                                                                                            \
        int t_ = threadIdx.x & 63, row_ = qt_ * TILE + t_;                                           \
        int64_t at_ = row_ < S ? ((int64_t)b * H + hq_) * S + row_ : 0;                              \
        if (threadIdx.x < 64) cp_async4(sL + (buf) * TILE + t_, lse2 + at_, row_ < S);               \
        else cp_async4(sD + (buf) * TILE + t_, delta + at_, row_ < S);                               \
        cp_async_commit();                                                                           \
    } while (0)

    if (TMA && threadIdx.x == 0) {
        mbar_init(&full[0], 1);
        mbar_init(&full[1], 1);
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    load_tile_sw<D>(sK, kg, ldk, k0, S);
    load_tile_sw<D>(sV, vg, ldk, k0, S);
    cp_async_commit();
    // Step i visits query head kvh * G + i / nq, query tile lst[i % nq]. The entries are read a step before
    // the prefetch that needs them, and the head / index advance by counting (a list load at the prefetch
    // stalled the issuing thread for an L2 round trip per step: session 4 profile).
    int qcur = n > 0 ? lst[0] : 0;  // step i's query tile
    int hn = 0, tn = 1;             // step i+1's head offset and list index
    if (tn == nq) tn = 0, hn++;
    int qn = n > 1 ? lst[tn] : 0;   // step i+1's query tile
    if (n > 0) DKDV_WG_PREFETCH(0, qcur, 0);

    float dka[D / 2], dva[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; i++) dka[i] = dva[i] = 0.f;

    for (int i = 0; i < n; i++) {
        const int buf = i & 1;
        int h2 = hn, t2 = tn + 1;  // step i+2
        if (t2 == nq) t2 = 0, h2++;
        const int q2 = i + 2 < n ? lst[t2] : 0;
        cp_async_wait_all();
        if (!TMA || i == 0) fence_async_smem();  // cp.async-written K/V (and Q/dO without TMA) read by the MMAs
        __syncthreads();  // this step's loads landed; every warp finished step i-1 (its buffers are free)
        if (i + 1 < n) DKDV_WG_PREFETCH(hn, qn, buf ^ 1);
        if (TMA) mbar_wait(&full[buf], (uint32_t)((i >> 1) & 1));
        const bf16 *cQ = sQ + buf * TB, *cO = sO + buf * TB;
        const float *cL = sL + buf * TILE, *cD = sD + buf * TILE;
        const int q0 = qcur * TILE;
        qcur = qn, qn = q2, hn = h2, tn = t2;

        wg_dkdv_step<D, PIPE>(dka, dva, sK, sV, cQ, cO, cL, cD, m, kvh, q0, k0, S, scale_log2, warp, g, t4);
    }
#undef DKDV_WG_PREFETCH
    cp_async_wait_all();
    __syncthreads();  // every MMA is done: stage dK over Q[0..1], dV over dO[0..1] (padded rows)
    bf16 *stk = sQ + warp * 16 * LDS, *stv = sO + warp * 16 * LDS;
    const int64_t kvo = ((int64_t)b * S * KVH + kvh) * D;
    wg_store_rows<D>(dk + kvo, ldk, dka, scale, scale, stk, k0, S, warp, lane);
    wg_store_rows<D>(dv + kvo, ldk, dva, 1.f, 1.f, stv, k0, S, warp, lane);
#endif
}

// One key tile of the wgmma dQ pass for a warpgroup's 64 query rows q0.. (its Q, dO tiles sQ, sO; key tile k0
// in cK, cV; lr = lse * log2 e and dl = delta of this thread's two rows): S = Q K^T, dP = dO V^T, P, dS, and
// dQ (acc) += dS K, every MMA waited for. PIPE: P is formed while dP is still on the tensor cores. Used by the
// 64-row dQ kernel and by the three-warpgroup one (attention_wg3.cuh): the same products in the same order.
template <int D, bool PIPE>
static __device__ __forceinline__ void wg_dq_step(float *acc, const bf16 *sQ, const bf16 *sO, const bf16 *cK,
                                                  const bf16 *cV, const float lr[2], const float dl[2],
                                                  const MaskP &m, int q0, int k0, int S, int kvh, float scale_log2,
                                                  int warp, int g, int t4) {
    float s[32], dp[32];
#pragma unroll
    for (int x = 0; x < 32; x++) s[x] = dp[x] = 0.f;
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) wgmma_ss_n64(s, desc_kmaj(sQ, kk), desc_kmaj(cK, kk), kk > 0);
    if (PIPE) wg_commit();
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) wgmma_ss_n64(dp, desc_kmaj(sO, kk), desc_kmaj(cV, kk), kk > 0);
    wg_commit();
    if (PIPE) wg_wait1();  // P while dP is still on the tensor cores
    else wg_wait0();
    reg_fence<32>(s);
    // all 32 exponentials in one block, the mask after it under one branch (a test per element split the
    // block into 8 basic blocks with a branch each; session 5)
#pragma unroll
    for (int x = 0; x < 8; x++)
#pragma unroll
        for (int c = 0; c < 4; c++) s[4 * x + c] = ex2f(s[4 * x + c] * scale_log2 - lr[c >> 1]);
    if (tile_needs_mask(m, q0, k0, S)) {
#pragma unroll
        for (int x = 0; x < 8; x++)
#pragma unroll
            for (int c = 0; c < 4; c++) {
                int qq = q0 + warp * 16 + g + (c >> 1) * 8, kk = k0 + x * 8 + t4 * 2 + (c & 1);
                if (qq >= S || kk >= S || !dev_allows(m, kvh, qq, kk)) s[4 * x + c] = 0.f;
            }
    }
    if (PIPE) wg_wait0();
    reg_fence<32>(dp);
#pragma unroll
    for (int x = 0; x < 32; x++) dp[x] = s[x] * (dp[x] - dl[(x >> 1) & 1]);
    // dQ += dS K (K read as B = [key][d], N-major)
    uint32_t da[4][4];
#pragma unroll
    for (int kc = 0; kc < 4; kc++) frag_a(da[kc], dp, kc);
    wg_fence();
#pragma unroll
    for (int kc = 0; kc < 4; kc++) wgmma_rs_d<D>(acc, da[kc], desc_nmaj(cK, kc));
    wg_commit();
    wg_wait0();
    reg_fence<D / 2>(acc);
}

// dQ, wgmma. grid (query tiles, H, B), walking the forward key-tile list as attn_bwd_dq_kernel.
// smem: Q, dO, K[2], V[2] (swizzled); dQ staged through K[0..1].
// TMA: K/V tiles by TMA (tk, tv as make_rows_map) onto full[2], one thread issuing, as the v7 forward.
template <int D, bool PIPE, bool TMA>
__global__ void __launch_bounds__(NTHREADS, 2) attn_bwd_dq_wg_kernel(
    bf16 *__restrict__ dq, const bf16 *__restrict__ q, const bf16 *__restrict__ k, const bf16 *__restrict__ v,
    const bf16 *__restrict__ dout, const float *__restrict__ lse, const float *__restrict__ delta, int S, int H,
    int KVH, float scale, float scale_log2, MaskP m, const int32_t *__restrict__ off,
    const int32_t *__restrict__ tiles, int nqt, const __grid_constant__ CUtensorMap tk,
    const __grid_constant__ CUtensorMap tv) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    constexpr int TB = TILE * D, LDS = D + 8;
    extern __shared__ __align__(1024) unsigned char smem_wg[];
    bf16 *sQ = (bf16 *)smem_wg, *sO = sQ + TB, *sK = sO + TB, *sV = sK + 2 * TB;
    uint64_t *full = (uint64_t *)(sV + 2 * TB);  // [2], TMA only

    const int qt = nqt - 1 - blockIdx.x;
    const int h = blockIdx.y, b = blockIdx.z;
    const int kvh = h / (H / KVH);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t4 = lane & 3;
    const int q0 = qt * TILE;
    const int64_t ldq = (int64_t)H * D, ldk = (int64_t)KVH * D;
    const bf16 *qg = q + ((int64_t)b * S * H + h) * D;
    const bf16 *og = dout + ((int64_t)b * S * H + h) * D;
    const bf16 *kg = k + ((int64_t)b * S * KVH + kvh) * D;
    const bf16 *vg = v + ((int64_t)b * S * KVH + kvh) * D;
    const int lh = m.per_head ? kvh : 0;
    const int i0 = off[lh * (nqt + 1) + qt], n = off[lh * (nqt + 1) + qt + 1] - i0;
    const int32_t *lst = tiles + i0;

    if (TMA && threadIdx.x == 0) {
        mbar_init(&full[0], 1);
        mbar_init(&full[1], 1);
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
        if (n > 0) tma_tile_pair<D>(sK, sV, &tk, &tv, kvh * D, b * S + lst[0] * TILE, &full[0]);
    }
    load_tile_sw<D>(sQ, qg, ldq, q0, S);
    load_tile_sw<D>(sO, og, ldq, q0, S);
    if (!TMA && n > 0) {
        load_tile_sw<D>(sK, kg, ldk, lst[0] * TILE, S);
        load_tile_sw<D>(sV, vg, ldk, lst[0] * TILE, S);
    }
    cp_async_commit();
    // TMA: list entries read a step before they are needed (the issuing thread and the mask both use them)
    int kcur = n > 0 ? lst[0] : 0, knext = n > 1 ? lst[1] : 0;
    float lr[2], dl[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        int row = q0 + warp * 16 + g + r * 8;
        int64_t at = ((int64_t)b * H + h) * S + row;
        lr[r] = row < S ? lse[at] * LOG2E : 0.f;
        dl[r] = row < S ? delta[at] : 0.f;
    }
    float acc[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; i++) acc[i] = 0.f;

    for (int j = 0; j < n; j++) {
        const int buf = j & 1;
        int k0;
        if (TMA) {
            if (j == 0) {
                cp_async_wait_all();  // Q, dO
                fence_async_smem();
            }
            __syncthreads();  // (j == 0: Q/dO landed, barriers initialized) every warp finished step j-1
            if (threadIdx.x == 0 && j + 1 < n)
                tma_tile_pair<D>(sK + (buf ^ 1) * TB, sV + (buf ^ 1) * TB, &tk, &tv, kvh * D, b * S + knext * TILE,
                                 &full[buf ^ 1]);
            const int kn2 = j + 2 < n ? lst[j + 2] : 0;
            k0 = kcur * TILE;
            kcur = knext, knext = kn2;
            mbar_wait(&full[buf], (uint32_t)((j >> 1) & 1));
        } else {
            cp_async_wait_all();
            fence_async_smem();
            __syncthreads();
            if (j + 1 < n) {
                int kt1 = lst[j + 1];
                load_tile_sw<D>(sK + (buf ^ 1) * TB, kg, ldk, kt1 * TILE, S);
                load_tile_sw<D>(sV + (buf ^ 1) * TB, vg, ldk, kt1 * TILE, S);
                cp_async_commit();
            }
            k0 = lst[j] * TILE;
        }
        wg_dq_step<D, PIPE>(acc, sQ, sO, sK + buf * TB, sV + buf * TB, lr, dl, m, q0, k0, S, kvh, scale_log2, warp,
                            g, t4);
    }
    cp_async_wait_all();
    __syncthreads();  // stage dQ over K[0..1]
    wg_store_rows<D>(dq + ((int64_t)b * S * H + h) * D, ldq, acc, scale, scale, sK + warp * 16 * LDS, q0, S, warp,
                     lane);
#endif
}

// ------------------------------------------------------------------------------------------------------
// v4 (opt-in, LG_ATTN_PIPE bits 8/16/32): 128 rows per CTA. Two warpgroups (256 threads) share every tile that
// is loaded into shared memory: the forward and dQ CTAs own query tiles 2p and 2p+1 (warpgroup w: tile 2p+w)
// and share each K/V tile; the dK/dV CTA owns key tiles 2p and 2p+1 and shares each Q/dO tile (and its lse and
// delta). Why: a 64-row CTA reloads 32 KB of K/V from L2 per 2.1 MFLOP (D=128), which caps v3 near 310 TF/s
// (4.7 TB/s of L2->SM traffic); 128 rows halve the bytes per FLOP.
// Tile lists: the CTA walks the UNION of the lists of its two 64-row tiles (pair lists, built on the host
// from the same per-tile lists), each entry tile*4 + flags, bit w set when tile 2p+w's list holds it. A
// warpgroup skips the entries whose bit is clear (it still loads its share and meets the barrier), so each
// warpgroup performs exactly the products, in exactly the order, of the 64-row kernel for its tile: the same
// masking, the same deterministic summation order (bitwise reproducible), and no extra MMA work. 128-granular
// lists (lg_attn_key_tiles with tile 128) would be simpler but cannot express block_sparse with block 64, and
// would add MMAs on tiles one half never sees.
// One CTA per SM (the accumulators need up to 255 registers x 256 threads), so loads run STAGES-1 tiles ahead
// (no second CTA hides the L2 latency); the dK/dV pass gets lse*log2e and delta by cp.async too (v3 loaded them
// synchronously inside the loop).
#define WG2_THREADS 256
#define WG2_STAGES 3

// 64 x D tile into the 128-byte swizzle layout (as load_tile_sw) by NT threads, tid in [0, NT).
template <int D, int NT>
static __device__ __forceinline__ void load_tile_swt(bf16 *sm, const bf16 *g, int64_t ld, int row0, int S, int tid) {
    constexpr int CPR = D / 8;
    constexpr int ITERS = TILE * CPR / NT;
#pragma unroll
    for (int it = 0; it < ITERS; it++) {
        int c = it * NT + tid;
        int r = c / CPR, ch = c % CPR;
        int valid = row0 + r < S;
        const bf16 *src = valid ? g + (int64_t)(row0 + r) * ld + ch * 8 : g;
        cp_async16((unsigned char *)sm + (ch >> 3) * 8192 + r * 128 + (((ch & 7) ^ (r & 7)) << 4), src, valid);
    }
}
// wait until at most N of this thread's committed groups are pending
template <int N>
static __device__ __forceinline__ void cp_async_wait(void) {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// delta (B,H,S) = rowsum(dO * O) as attn_delta_kernel, plus lse2 (B,H,S) = lse * log2 e for the v4 dK/dV pass
// (same float product as v3 computes in its loop, so P is bit-identical).
template <int D>
__global__ void attn_delta_lse_kernel(float *__restrict__ delta, float *__restrict__ lse2, const bf16 *__restrict__ dout,
                                      const bf16 *__restrict__ out, const float *__restrict__ lse, int64_t rows, int S,
                                      int H) {
    int64_t row = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x & 31;
    if (row >= rows) return;
    constexpr int PER = D / 32;
    const bf16 *o = out + row * D + lane * PER, *d = dout + row * D + lane * PER;
    float sum = 0.f;
#pragma unroll
    for (int i = 0; i < PER; i += 2) {
        float2 a = __bfloat1622float2(*(const __nv_bfloat162 *)(o + i));
        float2 c = __bfloat1622float2(*(const __nv_bfloat162 *)(d + i));
        sum += a.x * c.x + a.y * c.y;
    }
#pragma unroll
    for (int w = 16; w > 0; w >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, w);
    if (lane == 0) {
        int64_t b = row / ((int64_t)S * H), s = (row / H) % S, h = row % H;
        int64_t at = (b * H + h) * S + s;
        delta[at] = sum;
        lse2[at] = lse[at] * LOG2E;
    }
}

// forward, wgmma, 128 queries per CTA. grid (query-tile pairs, H, B), pairs with late (long) rows first.
// smem: Q[2] (one per warpgroup), K[ST], V[ST] (swizzled); O staged through K/V (padded rows) at the end.
template <int D>
__global__ void __launch_bounds__(WG2_THREADS, 1) attn_fwd_wg2_kernel(bf16 *__restrict__ out, float *__restrict__ lse,
                                                                   const bf16 *__restrict__ q, const bf16 *__restrict__ k,
                                                                   const bf16 *__restrict__ v, int S, int H, int KVH,
                                                                   float scale_log2, MaskP m,
                                                                   const int32_t *__restrict__ off2,
                                                                   const int32_t *__restrict__ tiles2, int npair) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    constexpr int TB = TILE * D, LDS = D + 8, ST = WG2_STAGES;
    static_assert(2 * TILE * LDS <= 2 * ST * TB, "O staging must fit over K and V");
    extern __shared__ __align__(1024) unsigned char smem_wg[];
    bf16 *sQ = (bf16 *)smem_wg, *sK = sQ + 2 * TB, *sV = sK + ST * TB;

    const int p = npair - 1 - blockIdx.x;
    const int h = blockIdx.y, b = blockIdx.z;
    const int kvh = h / (H / KVH);
    const int wg = threadIdx.x >> 7, tid = threadIdx.x & 127;
    const int lane = tid & 31, warp = tid >> 5, g = lane >> 2, t4 = lane & 3;
    const int q0 = (2 * p + wg) * TILE;  // this warpgroup's query tile
    const int64_t ldq = (int64_t)H * D, ldk = (int64_t)KVH * D;
    const bf16 *qg = q + ((int64_t)b * S * H + h) * D;
    const bf16 *kg = k + ((int64_t)b * S * KVH + kvh) * D;
    const bf16 *vg = v + ((int64_t)b * S * KVH + kvh) * D;
    const int lh = m.per_head ? kvh : 0;
    const int i0 = off2[lh * (npair + 1) + p], n = off2[lh * (npair + 1) + p + 1] - i0;
    const int32_t *lst = tiles2 + i0;
    const bf16 *myQ = sQ + wg * TB;

    load_tile_swt<D, 128>((bf16 *)myQ, qg, ldq, q0, S, tid);
#pragma unroll
    for (int st = 0; st < ST - 1; st++) {  // group st: tile st (group 0 also holds Q)
        if (st < n) {
            const int kt = lst[st] >> 2;
            load_tile_swt<D, WG2_THREADS>(sK + st * TB, kg, ldk, kt * TILE, S, threadIdx.x);
            load_tile_swt<D, WG2_THREADS>(sV + st * TB, vg, ldk, kt * TILE, S, threadIdx.x);
        }
        cp_async_commit();
    }

    float acc[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; i++) acc[i] = 0.f;
    float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.f, 0.f};

    for (int j = 0; j < n; j++) {
        const int e = lst[j];
        cp_async_wait<ST - 2>();  // groups 0..j complete: tile j landed (this thread's part)
        fence_async_smem();
        __syncthreads();  // ... for all threads; every MMA on tile j-1 (the buffer refilled next) has completed
        if (j + ST - 1 < n) {
            const int kt1 = lst[j + ST - 1] >> 2, nb = (j + ST - 1) % ST;
            load_tile_swt<D, WG2_THREADS>(sK + nb * TB, kg, ldk, kt1 * TILE, S, threadIdx.x);
            load_tile_swt<D, WG2_THREADS>(sV + nb * TB, vg, ldk, kt1 * TILE, S, threadIdx.x);
        }
        cp_async_commit();  // always one group per iteration (possibly empty): the wait count stays exact
        if (!((e >> wg) & 1)) continue;  // this warpgroup's tile does not see key tile e>>2
        const bf16 *cK = sK + (j % ST) * TB, *cV = sV + (j % ST) * TB;
        wg_fwd_tile<D>(acc, mrow, lrow, myQ, cK, cV, m, q0, (e >> 2) * TILE, S, kvh, scale_log2, warp, g, t4);
    }
    cp_async_wait_all();  // the trailing (empty or, for n == 0, Q) groups

    // every MMA is done with K/V once all threads pass the epilogue's barrier: O is staged over them
    wg_fwd_epilogue<D>(out + ((int64_t)b * S * H + h) * D, ldq, lse + ((int64_t)b * H + h) * S, acc, mrow, lrow,
                       sK + (wg * TILE + warp * 16) * LDS, q0, S, warp, lane);
#endif
}

// dK, dV, wgmma, 128 keys per CTA (deterministic). grid (key-tile pairs, KVH, B). A pair is two key tiles
// whose query lists overlap (kpair, see build_pairs: not always adjacent tiles; longest lists first).
// Steps: (query head of the group) x (entry of the pair's union list of query tiles); warpgroup w walks the
// steps whose bit w is set: exactly v3's list for its key tile, in v3's order.
// smem: K[2], V[2] (one per warpgroup), Q[ST], dO[ST] (swizzled), lse2[ST][64], delta[ST][64];
// dK/dV staged through Q / dO (padded rows) at the end.
template <int D, bool PIPE>
__global__ void __launch_bounds__(WG2_THREADS, 1) attn_bwd_dkdv_wg2_kernel(
    bf16 *__restrict__ dk, bf16 *__restrict__ dv, const bf16 *__restrict__ q, const bf16 *__restrict__ k,
    const bf16 *__restrict__ v, const bf16 *__restrict__ dout, const float *__restrict__ lse2,
    const float *__restrict__ delta, int S, int H, int KVH, float scale, float scale_log2, MaskP m,
    const int32_t *__restrict__ toff2, const int32_t *__restrict__ tq2, const int32_t *__restrict__ kpair,
    int npair) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    constexpr int TB = TILE * D, LDS = D + 8, ST = WG2_STAGES;
    static_assert(2 * TILE * LDS <= ST * TB, "dK/dV staging must fit over the Q / dO stages");
    extern __shared__ __align__(1024) unsigned char smem_wg[];
    bf16 *sK = (bf16 *)smem_wg, *sV = sK + 2 * TB, *sQ = sV + 2 * TB, *sO = sQ + ST * TB;
    float *sL = (float *)(sO + ST * TB);  // [ST][64] lse * log2 e
    float *sD = sL + ST * TILE;           // [ST][64] delta

    const int p = blockIdx.x;
    const int kvh = blockIdx.y, b = blockIdx.z;
    const int G = H / KVH;
    const int wg = threadIdx.x >> 7, tid = threadIdx.x & 127;
    const int lane = tid & 31, warp = tid >> 5, g = lane >> 2, t4 = lane & 3;
    const int64_t ldq = (int64_t)H * D, ldk = (int64_t)KVH * D;
    const bf16 *kg = k + ((int64_t)b * S * KVH + kvh) * D;
    const bf16 *vg = v + ((int64_t)b * S * KVH + kvh) * D;
    const int lh = m.per_head ? kvh : 0;
    // this warpgroup's key tile (nqt when the pair has one tile only: rows >= S, zero-filled, never stored)
    const int k0 = kpair[((int64_t)lh * npair + p) * 2 + wg] * TILE;
    const int i0 = toff2[lh * (npair + 1) + p], nq = toff2[lh * (npair + 1) + p + 1] - i0;
    const int32_t *lst = tq2 + i0;
    const int n = nq * G;
    const bf16 *myK = sK + wg * TB, *myV = sV + wg * TB;

    // step i -> query head kvh*G + i/nq, query tile lst[i%nq] >> 2; every thread loads its share
#define DKDV2_PREFETCH(i, buf)                                                                               \
    do {                                                                                                     \
        int hq_ = kvh * G + (i) / nq, qt_ = lst[(i) % nq] >> 2;                                              \
        const bf16 *qg_ = q + ((int64_t)b * S * H + hq_) * D;                                                \
        const bf16 *og_ = dout + ((int64_t)b * S * H + hq_) * D;                                             \
        load_tile_swt<D, WG2_THREADS>(sQ + (buf) * TB, qg_, ldq, qt_ * TILE, S, threadIdx.x);                \
        load_tile_swt<D, WG2_THREADS>(sO + (buf) * TB, og_, ldq, qt_ * TILE, S, threadIdx.x);                \
        if (threadIdx.x < 2 * TILE) {                                                                        \
            int t_ = threadIdx.x & (TILE - 1), row_ = qt_ * TILE + t_;                                       \
            const float *src_ = threadIdx.x < TILE ? lse2 : delta;                                           \
            float *dst_ = (threadIdx.x < TILE ? sL : sD) + (buf) * TILE + t_;                                \
            cp_async4(dst_, row_ < S ? src_ + ((int64_t)b * H + hq_) * S + row_ : src_, row_ < S);           \
        }                                                                                                    \
    } while (0)

    load_tile_swt<D, 128>((bf16 *)myK, kg, ldk, k0, S, tid);
    load_tile_swt<D, 128>((bf16 *)myV, vg, ldk, k0, S, tid);
#pragma unroll
    for (int st = 0; st < ST - 1; st++) {  // group st: step st (group 0 also holds K and V)
        if (st < n) DKDV2_PREFETCH(st, st);
        cp_async_commit();
    }

    float dka[D / 2], dva[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; i++) dka[i] = dva[i] = 0.f;

    for (int i = 0; i < n; i++) {
        const int e = lst[i % nq];
        cp_async_wait<ST - 2>();
        fence_async_smem();
        __syncthreads();  // step i landed for all; every MMA of step i-1 (the stage refilled next) has completed
        if (i + ST - 1 < n) DKDV2_PREFETCH(i + ST - 1, (i + ST - 1) % ST);
        cp_async_commit();
        if (!((e >> wg) & 1)) continue;  // this warpgroup's key tile is not seen by query tile e>>2
        const int buf = i % ST;
        const bf16 *cQ = sQ + buf * TB, *cO = sO + buf * TB;
        const float *cL = sL + buf * TILE, *cD = sD + buf * TILE;
        const int q0 = (e >> 2) * TILE;

        wg_dkdv_step<D, PIPE>(dka, dva, myK, myV, cQ, cO, cL, cD, m, kvh, q0, k0, S, scale_log2, warp, g, t4);
    }
#undef DKDV2_PREFETCH
    cp_async_wait_all();
    __syncthreads();  // every MMA of both warpgroups is done: stage dK over the Q stages, dV over the dO stages
    bf16 *stk = sQ + (wg * TILE + warp * 16) * LDS, *stv = sO + (wg * TILE + warp * 16) * LDS;
    const int64_t kvo = ((int64_t)b * S * KVH + kvh) * D;
    wg_store_rows<D>(dk + kvo, ldk, dka, scale, scale, stk, k0, S, warp, lane);
    wg_store_rows<D>(dv + kvo, ldk, dva, 1.f, 1.f, stv, k0, S, warp, lane);
#endif
}

// dQ, wgmma, 128 queries per CTA. grid (query-tile pairs, H, B), walking the forward pair lists.
// smem: Q[2], dO[2] (one per warpgroup), K[ST], V[ST] (swizzled); dQ staged through K/V at the end.
template <int D, bool PIPE>
__global__ void __launch_bounds__(WG2_THREADS, 1) attn_bwd_dq_wg2_kernel(
    bf16 *__restrict__ dq, const bf16 *__restrict__ q, const bf16 *__restrict__ k, const bf16 *__restrict__ v,
    const bf16 *__restrict__ dout, const float *__restrict__ lse, const float *__restrict__ delta, int S, int H,
    int KVH, float scale, float scale_log2, MaskP m, const int32_t *__restrict__ off2,
    const int32_t *__restrict__ tiles2, int npair) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    constexpr int TB = TILE * D, LDS = D + 8, ST = WG2_STAGES;
    static_assert(2 * TILE * LDS <= 2 * ST * TB, "dQ staging must fit over K and V");
    extern __shared__ __align__(1024) unsigned char smem_wg[];
    bf16 *sQ = (bf16 *)smem_wg, *sO = sQ + 2 * TB, *sK = sO + 2 * TB, *sV = sK + ST * TB;

    const int p = npair - 1 - blockIdx.x;
    const int h = blockIdx.y, b = blockIdx.z;
    const int kvh = h / (H / KVH);
    const int wg = threadIdx.x >> 7, tid = threadIdx.x & 127;
    const int lane = tid & 31, warp = tid >> 5, g = lane >> 2, t4 = lane & 3;
    const int q0 = (2 * p + wg) * TILE;
    const int64_t ldq = (int64_t)H * D, ldk = (int64_t)KVH * D;
    const bf16 *qg = q + ((int64_t)b * S * H + h) * D;
    const bf16 *og = dout + ((int64_t)b * S * H + h) * D;
    const bf16 *kg = k + ((int64_t)b * S * KVH + kvh) * D;
    const bf16 *vg = v + ((int64_t)b * S * KVH + kvh) * D;
    const int lh = m.per_head ? kvh : 0;
    const int i0 = off2[lh * (npair + 1) + p], n = off2[lh * (npair + 1) + p + 1] - i0;
    const int32_t *lst = tiles2 + i0;
    const bf16 *myQ = sQ + wg * TB, *myO = sO + wg * TB;

    load_tile_swt<D, 128>((bf16 *)myQ, qg, ldq, q0, S, tid);
    load_tile_swt<D, 128>((bf16 *)myO, og, ldq, q0, S, tid);
#pragma unroll
    for (int st = 0; st < ST - 1; st++) {
        if (st < n) {
            const int kt = lst[st] >> 2;
            load_tile_swt<D, WG2_THREADS>(sK + st * TB, kg, ldk, kt * TILE, S, threadIdx.x);
            load_tile_swt<D, WG2_THREADS>(sV + st * TB, vg, ldk, kt * TILE, S, threadIdx.x);
        }
        cp_async_commit();
    }
    float lr[2], dl[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        int row = q0 + warp * 16 + g + r * 8;
        int64_t at = ((int64_t)b * H + h) * S + row;
        lr[r] = row < S ? lse[at] * LOG2E : 0.f;
        dl[r] = row < S ? delta[at] : 0.f;
    }
    float acc[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; i++) acc[i] = 0.f;

    for (int j = 0; j < n; j++) {
        const int e = lst[j];
        cp_async_wait<ST - 2>();
        fence_async_smem();
        __syncthreads();
        if (j + ST - 1 < n) {
            const int kt1 = lst[j + ST - 1] >> 2, nb = (j + ST - 1) % ST;
            load_tile_swt<D, WG2_THREADS>(sK + nb * TB, kg, ldk, kt1 * TILE, S, threadIdx.x);
            load_tile_swt<D, WG2_THREADS>(sV + nb * TB, vg, ldk, kt1 * TILE, S, threadIdx.x);
        }
        cp_async_commit();
        if (!((e >> wg) & 1)) continue;
        wg_dq_step<D, PIPE>(acc, myQ, myO, sK + (j % ST) * TB, sV + (j % ST) * TB, lr, dl, m, q0, (e >> 2) * TILE,
                            S, kvh, scale_log2, warp, g, t4);
    }
    cp_async_wait_all();
    __syncthreads();  // stage dQ over K/V
    wg_store_rows<D>(dq + ((int64_t)b * S * H + h) * D, ldq, acc, scale, scale, sK + (wg * TILE + warp * 16) * LDS,
                     q0, S, warp, lane);
#endif
}

// Writes 1 when this binary holds sm_90a code for the running device (the wgmma kernels are real).
__global__ void attn_wgmma_probe_kernel(int *out) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    *out = 1;
#else
    *out = 0;
#endif
}

// ------------------------------------------------------------------------------------------------------
// host: tile lists (cached per mask and length), workspace, launches

typedef struct {
    int valid;
    lg_attn mask;
    int kvh, S;             // kvh only matters for BLOCK_SPARSE (0 otherwise)
    int nh, nqt;            // list heads, tiles
    int32_t *off, *tiles;   // device: fwd CSR, (nh, nqt+1) offsets into tiles
    int32_t *toff, *tq;     // device: transposed CSR, (nh, nqt+1) offsets into tq
    // v4 pair lists (built on first use): per (list head, tile pair p = tiles 2p, 2p+1) the union of the two
    // tiles' lists, ascending, each entry tile*4 + (bit w: tile 2p+w's list holds it); (nh, np+1) offsets.
    int np;                 // pairs, (nqt + 1) / 2; 0 until built
    int32_t *off2, *tiles2; // device: forward pair lists (key tiles of query pairs)
    int32_t *toff2, *tq2;   // device: transposed pair lists (query tiles of key pairs)
    int32_t *kpair;         // device: (nh, np, 2) the key tiles of each key pair (nqt: none), see build_pairs
    int32_t *korder;        // device: (KVH * nqt) kvh * nqt + kt, longest list first (kv_order); for korder_kvh
    int korder_kvh;
    // v10 triple lists (built on first use): per (list head, triple p = tiles 3p..3p+2) the union of the three
    // tiles' lists, ascending, entries tile*8 + (bit w: tile 3p+w's list holds it); (nh, np3+1) offsets.
    int np3;                // triples, (nqt + 2) / 3; 0 until built
    int32_t *off3, *tiles3; // device
    unsigned long long last_use;
} TileLists;

#define LIST_CACHE 8
static TileLists g_lists[LIST_CACHE];
static unsigned long long g_use_clock;

static int same_mask(const lg_attn *a, const lg_attn *b) {
    if (a->kind != b->kind) return 0;
    if (a->kind == LG_ATTN_SINK_WINDOW) return a->sink == b->sink && a->window == b->window;
    if (a->kind == LG_ATTN_BLOCK_SPARSE)
        return a->block == b->block && a->local_blocks == b->local_blocks && a->vert_stride == b->vert_stride;
    return 1;
}

static void *host_alloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "lgtrain: error: attention: out of host memory for %zu bytes of tile lists\n", n);
        exit(1);
    }
    return p;
}

static void free_lists(TileLists *t) {
    if (!t->valid) return;
    cudaCheck(cudaFree(t->off));
    cudaCheck(cudaFree(t->tiles));
    cudaCheck(cudaFree(t->toff));
    cudaCheck(cudaFree(t->tq));
    if (t->np3) {
        cudaCheck(cudaFree(t->off3));
        cudaCheck(cudaFree(t->tiles3));
    }
    if (t->np) {
        cudaCheck(cudaFree(t->off2));
        cudaCheck(cudaFree(t->tiles2));
        cudaCheck(cudaFree(t->toff2));
        cudaCheck(cudaFree(t->tq2));
        cudaCheck(cudaFree(t->kpair));
    }
    if (t->korder) cudaCheck(cudaFree(t->korder));
    memset(t, 0, sizeof(*t));
}

// Host CSR lists from the one mask definition: fwd (per list head and query tile, key tiles ascending) and
// transposed (per list head and key tile, query tiles ascending). Caller frees the four arrays.
typedef struct {
    int32_t *off, *tiles, *toff, *tq;
    int64_t total;
} HostLists;

static void host_lists(HostLists *hl, const lg_attn *mask, int KVH, int S, int nh, int nqt) {
    const int64_t nrow = (int64_t)nh * (nqt + 1);
    int32_t *off = (int32_t *)host_alloc(sizeof(int32_t) * nrow);
    int32_t *toff = (int32_t *)host_alloc(sizeof(int32_t) * nrow);
    int32_t *buf = (int32_t *)host_alloc(sizeof(int32_t) * (nqt + 1));
    // pass 1: counts (the lists come straight from the one mask definition)
    int64_t total = 0;
    for (int h = 0; h < nh; h++) {
        for (int kt = 0; kt <= nqt; kt++) toff[(int64_t)h * (nqt + 1) + kt] = 0;
        for (int qt = 0; qt < nqt; qt++) {
            off[(int64_t)h * (nqt + 1) + qt] = (int32_t)total;
            int c = lg_attn_key_tiles(mask, KVH, h, TILE, S, qt, buf);
            for (int i = 0; i < c; i++) toff[(int64_t)h * (nqt + 1) + buf[i]]++;
            total += c;
        }
        off[(int64_t)h * (nqt + 1) + nqt] = (int32_t)total;
    }
    if (total > INT32_MAX) {
        fprintf(stderr, "lgtrain: error: attention: %lld tile pairs exceed the int32 list offsets (S=%d)\n",
                (long long)total, S);
        exit(1);
    }
    // counts -> exclusive offsets, continuing across heads
    int64_t run = 0;
    for (int h = 0; h < nh; h++)
        for (int kt = 0; kt <= nqt; kt++) {
            int64_t at = (int64_t)h * (nqt + 1) + kt, c = kt < nqt ? toff[at] : 0;
            toff[at] = (int32_t)run;
            run += c;
        }
    int32_t *tiles = (int32_t *)host_alloc(sizeof(int32_t) * (total ? total : 1));
    int32_t *tq = (int32_t *)host_alloc(sizeof(int32_t) * (total ? total : 1));
    int32_t *fill = (int32_t *)host_alloc(sizeof(int32_t) * nrow);
    memcpy(fill, toff, sizeof(int32_t) * nrow);
    // pass 2: the lists; query tiles ascending, so each transposed list is ascending too
    for (int h = 0; h < nh; h++)
        for (int qt = 0; qt < nqt; qt++) {
            int64_t o = off[(int64_t)h * (nqt + 1) + qt];
            int c = lg_attn_key_tiles(mask, KVH, h, TILE, S, qt, tiles + o);
            for (int i = 0; i < c; i++) tq[fill[(int64_t)h * (nqt + 1) + tiles[o + i]]++] = qt;
        }
    free(buf);
    free(fill);
    hl->off = off, hl->tiles = tiles, hl->toff = toff, hl->tq = tq, hl->total = total;
}

static void free_host_lists(HostLists *hl) {
    free(hl->off);
    free(hl->tiles);
    free(hl->toff);
    free(hl->tq);
}

// Pair lists from CSR lists (off: (nh, nqt+1) offsets into lst): for pair p of head h, the ascending union of
// the lists of rows sel[(h*np + p)*2 + w] (w = 0, 1; a row >= nqt is absent), entries value*4 + (bit w: row w's
// list holds it). Writes off2 (nh, np+1) and lst2 (capacity: the entries of lst, an upper bound of the unions);
// returns the entries written.
static int64_t pair_lists(const int32_t *off, const int32_t *lst, int nh, int nqt, int np, const int32_t *sel,
                          int32_t *off2, int32_t *lst2) {
    int64_t o = 0;
    for (int h = 0; h < nh; h++) {
        for (int p = 0; p < np; p++) {
            off2[(int64_t)h * (np + 1) + p] = (int32_t)o;
            const int32_t ra = sel[((int64_t)h * np + p) * 2], rb = sel[((int64_t)h * np + p) * 2 + 1];
            const int64_t base = (int64_t)h * (nqt + 1);
            int64_t a = ra < nqt ? off[base + ra] : 0, ae = ra < nqt ? off[base + ra + 1] : 0;
            int64_t bb = rb < nqt ? off[base + rb] : 0, be = rb < nqt ? off[base + rb + 1] : 0;
            while (a < ae || bb < be) {
                if (bb >= be || (a < ae && lst[a] < lst[bb])) lst2[o++] = lst[a++] * 4 + 1;
                else if (a >= ae || lst[bb] < lst[a]) lst2[o++] = lst[bb++] * 4 + 2;
                else lst2[o++] = lst[a++] * 4 + 3, bb++;
            }
        }
        off2[(int64_t)h * (np + 1) + np] = (int32_t)o;
    }
    return o;
}

// Key tiles of one head ordered by the length of their query-tile list, longest first (ties: ascending tile).
// Pairing neighbours of this order pairs tiles whose lists overlap: for FULL and SINK_WINDOW adjacent tiles;
// for BLOCK_SPARSE the strided ("vertical") key tiles with each other (kt, kt+stride: nearly the same long
// list) and the local ones with each other, where adjacent tiles would pair a strided tile with a local one and
// leave one warpgroup idle for most of the strided tile's steps. Longest first also serves the grid's order.
static const int32_t *g_sort_len;  // qsort has no context argument
static int cmp_len_desc(const void *x, const void *y) {
    int32_t a = *(const int32_t *)x, b = *(const int32_t *)y;
    if (g_sort_len[a] != g_sort_len[b]) return g_sort_len[a] > g_sort_len[b] ? -1 : 1;
    return a < b ? -1 : a > b;
}

// The v4 pair lists on the host (build_pairs uploads them).
typedef struct {
    int32_t *off2, *l2, *toff2, *tl2, *ksel;  // (nh, np+1), entries, (nh, np+1), entries, (nh, np, 2)
    int64_t n2, tn2;                          // entries in l2, tl2
} HostPairs;

static void host_pairs(HostPairs *hp, const HostLists *hl, int nh, int nqt) {
    const int np = (nqt + 1) / 2;
    const int64_t nrow2 = (int64_t)nh * (np + 1), nsel = (int64_t)nh * np * 2;
    hp->off2 = (int32_t *)host_alloc(sizeof(int32_t) * nrow2);
    hp->toff2 = (int32_t *)host_alloc(sizeof(int32_t) * nrow2);
    hp->l2 = (int32_t *)host_alloc(sizeof(int32_t) * (hl->total ? hl->total : 1));
    hp->tl2 = (int32_t *)host_alloc(sizeof(int32_t) * (hl->total ? hl->total : 1));
    hp->ksel = (int32_t *)host_alloc(sizeof(int32_t) * nsel);  // key pairs: neighbours in length order
    int32_t *qsel = (int32_t *)host_alloc(sizeof(int32_t) * nsel);  // query pairs: tiles 2p, 2p+1
    int32_t *len = (int32_t *)host_alloc(sizeof(int32_t) * (nqt + 1));
    int32_t *order = (int32_t *)host_alloc(sizeof(int32_t) * (nqt + 1));
    for (int h = 0; h < nh; h++) {
        for (int p = 0; p < np; p++) {
            qsel[((int64_t)h * np + p) * 2] = 2 * p;
            qsel[((int64_t)h * np + p) * 2 + 1] = 2 * p + 1;  // == nqt (absent) for the last pair of an odd count
        }
        for (int kt = 0; kt < nqt; kt++) {
            len[kt] = hl->toff[(int64_t)h * (nqt + 1) + kt + 1] - hl->toff[(int64_t)h * (nqt + 1) + kt];
            order[kt] = kt;
        }
        g_sort_len = len;
        qsort(order, (size_t)nqt, sizeof(int32_t), cmp_len_desc);
        for (int p = 0; p < np; p++) {
            hp->ksel[((int64_t)h * np + p) * 2] = order[2 * p];
            hp->ksel[((int64_t)h * np + p) * 2 + 1] = 2 * p + 1 < nqt ? order[2 * p + 1] : nqt;
        }
    }
    hp->n2 = pair_lists(hl->off, hl->tiles, nh, nqt, np, qsel, hp->off2, hp->l2);
    hp->tn2 = pair_lists(hl->toff, hl->tq, nh, nqt, np, hp->ksel, hp->toff2, hp->tl2);  // toff[h][nqt] ends head h
    free(qsel);
    free(len);
    free(order);
}

static void free_host_pairs(HostPairs *hp) {
    free(hp->off2);
    free(hp->l2);
    free(hp->toff2);
    free(hp->tl2);
    free(hp->ksel);
}

static int32_t *upload_i32(const int32_t *h, int64_t n) {
    int32_t *d = NULL;
    size_t bytes = sizeof(int32_t) * (size_t)(n > 0 ? n : 1);
    cudaCheck(cudaMalloc((void **)&d, bytes));
    if (n > 0) cudaCheck(cudaMemcpy(d, h, sizeof(int32_t) * (size_t)n, cudaMemcpyHostToDevice));
    return d;
}

static void build_pairs(TileLists *t, const HostLists *hl) {
    const int np = (t->nqt + 1) / 2;
    const int64_t nrow2 = (int64_t)t->nh * (np + 1), nsel = (int64_t)t->nh * np * 2;
    HostPairs hp;
    host_pairs(&hp, hl, t->nh, t->nqt);
    t->off2 = upload_i32(hp.off2, nrow2);
    t->tiles2 = upload_i32(hp.l2, hp.n2);
    t->toff2 = upload_i32(hp.toff2, nrow2);
    t->tq2 = upload_i32(hp.tl2, hp.tn2);
    t->kpair = upload_i32(hp.ksel, nsel);
    t->np = np;
    free_host_pairs(&hp);
}

// The dK/dV grid order over every (KV head, key tile): longest query list first (ties: ascending tile, then
// head), i.e. longest-processing-time-first over the whole grid. Ordered per head only (the grid's x = key
// tile), each head's long tiles started after all earlier heads' CTAs: the sink tile of SINK_WINDOW sees every
// query tile (~2000 steps at 128K, ~11 ms for one CTA) and the strided tiles of BLOCK_SPARSE ~1000, so the last
// heads' long tiles ran alone at the end of the kernel.
static const int32_t *kv_order(TileLists *t, int KVH) {
    if (t->korder && t->korder_kvh == KVH) return t->korder;
    if (t->korder) cudaCheck(cudaFree(t->korder));
    const int nqt = t->nqt;
    const int64_t n = (int64_t)KVH * nqt;
    int32_t *toff = (int32_t *)host_alloc(sizeof(int32_t) * (size_t)t->nh * (nqt + 1));
    cudaCheck(cudaMemcpy(toff, t->toff, sizeof(int32_t) * (size_t)t->nh * (nqt + 1), cudaMemcpyDeviceToHost));
    int32_t *len = (int32_t *)host_alloc(sizeof(int32_t) * (size_t)n), *ord = (int32_t *)host_alloc(sizeof(int32_t) * (size_t)n);
    for (int h = 0; h < KVH; h++) {
        const int lh = t->nh > 1 ? h : 0;
        for (int kt = 0; kt < nqt; kt++) {
            const int64_t e = (int64_t)h * nqt + kt;
            len[e] = toff[(int64_t)lh * (nqt + 1) + kt + 1] - toff[(int64_t)lh * (nqt + 1) + kt];
        }
    }
    // ties broken by tile before head: sort keys kt * KVH + h, mapped back to h * nqt + kt
    int32_t *lenk = (int32_t *)host_alloc(sizeof(int32_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        const int kt = (int)(i / KVH), h = (int)(i % KVH);
        lenk[i] = len[(int64_t)h * nqt + kt];
        ord[i] = (int32_t)i;
    }
    g_sort_len = lenk;  // cmp_len_desc: longest first, ties by ascending key
    qsort(ord, (size_t)n, sizeof(int32_t), cmp_len_desc);
    for (int64_t i = 0; i < n; i++) ord[i] = (ord[i] % KVH) * nqt + ord[i] / KVH;
    const char *e = getenv("LG_ATTN_KVORDER");  // 0: the previous per-head order (benchmarks only)
    if (e && !strcmp(e, "0"))
        for (int64_t i = 0; i < n; i++) ord[i] = (int32_t)i;
    t->korder = upload_i32(ord, n);
    t->korder_kvh = KVH;
    free(toff), free(len), free(lenk), free(ord);
    return t->korder;
}

static void build_triples(TileLists *t, const HostLists *hl);  // attention_wg3.cuh

// want: bit 1 the v4 kernels run, which walk the pair lists; bit 2 the v10 forward, which walks the triple
// lists (each built once per cached mask).
static const TileLists *get_lists(const lg_attn *mask, int KVH, int S, int want) {
    int kvh = mask->kind == LG_ATTN_BLOCK_SPARSE ? KVH : 0;
    TileLists *slot = &g_lists[0];
    for (int i = 0; i < LIST_CACHE; i++) {
        TileLists *t = &g_lists[i];
        if (t->valid && t->S == S && t->kvh == kvh && same_mask(&t->mask, mask)) {
            t->last_use = ++g_use_clock;
            if (((want & 1) && !t->np) || ((want & 2) && !t->np3)) {
                HostLists hl;
                host_lists(&hl, mask, KVH, S, t->nh, t->nqt);
                if ((want & 1) && !t->np) build_pairs(t, &hl);
                if ((want & 2) && !t->np3) build_triples(t, &hl);
                free_host_lists(&hl);
            }
            return t;
        }
        if (!t->valid || (slot->valid && t->last_use < slot->last_use)) slot = t;
    }
    free_lists(slot);
    const int nh = kvh ? KVH : 1, nqt = (S + TILE - 1) / TILE;
    const int64_t nrow = (int64_t)nh * (nqt + 1);
    HostLists hl;
    host_lists(&hl, mask, KVH, S, nh, nqt);
    slot->off = upload_i32(hl.off, nrow);
    slot->toff = upload_i32(hl.toff, nrow);
    slot->tiles = upload_i32(hl.tiles, hl.total);
    slot->tq = upload_i32(hl.tq, hl.total);
    slot->valid = 1;
    slot->mask = *mask;
    slot->kvh = kvh;
    slot->S = S;
    slot->nh = nh;
    slot->nqt = nqt;
    slot->np = 0;
    slot->np3 = 0;
    slot->last_use = ++g_use_clock;
    if (want & 1) build_pairs(slot, &hl);
    if (want & 2) build_triples(slot, &hl);
    free_host_lists(&hl);
    return slot;
}

static void check_args(const char *op, int B, int S, int H, int KVH, int D, const lg_attn *mask) {
    const char *bad = NULL;
    if (B < 1 || S < 1) bad = "B and S must be >= 1";
    else if (H < 1 || KVH < 1 || H % KVH != 0) bad = "H must be a positive multiple of KVH";
    else if (D != 64 && D != 128) bad = "head_dim must be 64 or 128";
    else if (B > 65535 || H > 65535) bad = "B and H must be <= 65535 (grid dimensions)";
    else if (!mask) bad = "mask is NULL";
    else if (mask->kind == LG_ATTN_SINK_WINDOW && (mask->sink < 0 || mask->window < 1))
        bad = "sink_window needs sink >= 0 and window >= 1";
    else if (mask->kind == LG_ATTN_BLOCK_SPARSE &&
             (mask->block < TILE || mask->block % TILE != 0 || mask->local_blocks < 0 || mask->vert_stride < 1))
        bad = "block_sparse needs block a multiple of 64, local_blocks >= 0, vert_stride >= 1";
    else if (mask->kind != LG_ATTN_FULL && mask->kind != LG_ATTN_SINK_WINDOW && mask->kind != LG_ATTN_BLOCK_SPARSE)
        bad = "unknown mask kind";
    if (!bad) return;
    char desc[96] = "?";
    if (mask) lg_attn_describe(mask, desc, sizeof desc);
    fprintf(stderr, "lgtrain: error: %s: B=%d S=%d H=%d KVH=%d D=%d mask=%s: %s\n", op, B, S, H, KVH, D, desc, bad);
    exit(1);
}

static MaskP mask_params(const lg_attn *a, int KVH) {
    MaskP m;
    memset(&m, 0, sizeof m);
    m.kind = a->kind;
    m.sink = a->sink;
    m.window = a->window;
    m.block = a->block > 0 ? a->block : 1;
    m.local = a->local_blocks;
    m.stride = a->vert_stride > 0 ? a->vert_stride : 1;
    int step = m.stride / KVH;
    m.step = step < 1 ? 1 : step;
    m.per_head = a->kind == LG_ATTN_BLOCK_SPARSE;
    return m;
}

static size_t smem_fwd_wg(int D) { return (size_t)5 * TILE * D * sizeof(bf16); }
static size_t smem_fwd_wgp(int D) { return (size_t)6 * TILE * D * sizeof(bf16); }
static size_t smem_dq_wg(int D) { return (size_t)6 * TILE * D * sizeof(bf16) + 2 * sizeof(uint64_t); }
static size_t smem_dkdv_wg(int D) {
    return (size_t)6 * TILE * D * sizeof(bf16) + 4 * TILE * sizeof(float) + 2 * sizeof(uint64_t);
}
// v4 (128 rows per CTA): one CTA per SM; at D=128: fwd 128 KB, dK/dV 161.5 KB, dQ 160 KB (of 227 KB).
static size_t smem_fwd_wg2(int D) { return (size_t)(2 + 2 * WG2_STAGES) * TILE * D * sizeof(bf16); }
static size_t smem_dq_wg2(int D) { return (size_t)(4 + 2 * WG2_STAGES) * TILE * D * sizeof(bf16); }
static size_t smem_dkdv_wg2(int D) {
    return (size_t)(4 + 2 * WG2_STAGES) * TILE * D * sizeof(bf16) + (size_t)2 * WG2_STAGES * TILE * sizeof(float);
}
static size_t smem_fwd(int D) { return (size_t)4 * TILE * (D + 8) * sizeof(bf16); }
static size_t smem_dq(int D) { return (size_t)4 * TILE * (D + 8) * sizeof(bf16); }
static size_t smem_dkdv(int D, bool atomic) {
    return (size_t)6 * TILE * (D + 8) * sizeof(bf16) + 4 * TILE * sizeof(float) +
           (atomic ? (size_t)TILE * (TILE + 8) * sizeof(bf16) : 0);
}

// Forward build: 2 resident CTAs per SM (no register cap) by default: measured faster on the H100 than the
// 3-CTA build, whose 168-register cap spills (bench/results/attention.md).
static int g_fwd_blocks = 2;
extern "C" void lg_cuda_attention_tune(int fwd_blocks_per_sm) { g_fwd_blocks = fwd_blocks_per_sm == 3 ? 3 : 2; }

template <typename K>
static void raise_smem(K kernel, size_t bytes) {
    cudaCheck(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
}

static void set_smem_limits(void) {
    static int done;
    if (done) return;
    raise_smem(attn_fwd_kernel<64, 2>, smem_fwd(64));
    raise_smem(attn_fwd_kernel<64, 3>, smem_fwd(64));
    raise_smem(attn_fwd_kernel<128, 2>, smem_fwd(128));
    raise_smem(attn_fwd_kernel<128, 3>, smem_fwd(128));
    raise_smem(attn_bwd_dq_kernel<64>, smem_dq(64));
    raise_smem(attn_bwd_dq_kernel<128>, smem_dq(128));
    raise_smem(attn_bwd_dkdv_kernel<64, false>, smem_dkdv(64, false));
    raise_smem(attn_bwd_dkdv_kernel<64, true>, smem_dkdv(64, true));
    raise_smem(attn_bwd_dkdv_kernel<128, false>, smem_dkdv(128, false));
    raise_smem(attn_bwd_dkdv_kernel<128, true>, smem_dkdv(128, true));
    raise_smem(attn_fwd_wg_kernel<64>, smem_fwd_wg(64));
    raise_smem(attn_fwd_wg_kernel<128>, smem_fwd_wg(128));
    raise_smem(attn_fwd_wgp_kernel<64>, smem_fwd_wgp(64));
    raise_smem(attn_fwd_wgp_kernel<128>, smem_fwd_wgp(128));
    raise_smem(attn_bwd_dq_wg_kernel<64, false, false>, smem_dq_wg(64));
    raise_smem(attn_bwd_dq_wg_kernel<128, false, false>, smem_dq_wg(128));
    raise_smem(attn_bwd_dkdv_wg_kernel<64, false, false>, smem_dkdv_wg(64));
    raise_smem(attn_bwd_dkdv_wg_kernel<128, false, false>, smem_dkdv_wg(128));
    raise_smem(attn_bwd_dq_wg_kernel<64, true, false>, smem_dq_wg(64));
    raise_smem(attn_bwd_dq_wg_kernel<128, true, false>, smem_dq_wg(128));
    raise_smem(attn_bwd_dkdv_wg_kernel<64, true, false>, smem_dkdv_wg(64));
    raise_smem(attn_bwd_dkdv_wg_kernel<128, true, false>, smem_dkdv_wg(128));
    raise_smem(attn_bwd_dq_wg_kernel<64, true, true>, smem_dq_wg(64));
    raise_smem(attn_bwd_dq_wg_kernel<128, true, true>, smem_dq_wg(128));
    raise_smem(attn_bwd_dkdv_wg_kernel<64, true, true>, smem_dkdv_wg(64));
    raise_smem(attn_bwd_dkdv_wg_kernel<128, true, true>, smem_dkdv_wg(128));
    raise_smem(attn_fwd_wg2_kernel<64>, smem_fwd_wg2(64));
    raise_smem(attn_fwd_wg2_kernel<128>, smem_fwd_wg2(128));
    raise_smem(attn_bwd_dkdv_wg2_kernel<64, false>, smem_dkdv_wg2(64));
    raise_smem(attn_bwd_dkdv_wg2_kernel<64, true>, smem_dkdv_wg2(64));
    raise_smem(attn_bwd_dkdv_wg2_kernel<128, false>, smem_dkdv_wg2(128));
    raise_smem(attn_bwd_dkdv_wg2_kernel<128, true>, smem_dkdv_wg2(128));
    raise_smem(attn_bwd_dq_wg2_kernel<64, false>, smem_dq_wg2(64));
    raise_smem(attn_bwd_dq_wg2_kernel<64, true>, smem_dq_wg2(64));
    raise_smem(attn_bwd_dq_wg2_kernel<128, false>, smem_dq_wg2(128));
    raise_smem(attn_bwd_dq_wg2_kernel<128, true>, smem_dq_wg2(128));
    done = 1;
}

// Which kernels: the wgmma ones where the binary has sm_90a code for this device (probed once), unless
// lg_cuda_attention_set_impl(0) or LG_ATTN_IMPL=mma asks for the mma.sync ones.
static int g_impl = -1;  // -1 auto, 0 mma.sync, 1 wgmma
extern "C" void lg_cuda_attention_set_impl(int impl) { g_impl = impl < 0 ? -1 : impl ? 1 : 0; }

static int wgmma_available(void) {
    static int avail = -1;
    if (avail >= 0) return avail;
    int dev = 0, major = 0;
    cudaCheck(cudaGetDevice(&dev));
    cudaCheck(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    avail = 0;
    if (major == 9) {
        int *d = NULL, h = 0;
        cudaCheck(cudaMalloc((void **)&d, sizeof(int)));
        attn_wgmma_probe_kernel<<<1, 1>>>(d);
        cudaCheckLaunch("attn_wgmma_probe_kernel");
        cudaCheck(cudaMemcpy(&h, d, sizeof(int), cudaMemcpyDeviceToHost));
        cudaCheck(cudaFree(d));
        avail = h == 1;
    }
    return avail;
}

// wgmma variants (bit flags): 1 pipelined forward, 2 pipelined dK/dV, 4 pipelined dQ; 128 the v7 forward
// (attention_tma.cuh: K/V by TMA; over bit 1), 64 with it: three stages instead of two, 512 with it: Q in
// registers, three CTAs per SM (two stages; over 64); 256 the TMA backward
// (dK/dV's Q/dO and dQ's K/V tiles by TMA; split waits in both, over bits 2 and 4). v4 (measured slower,
// opt-in): 8 forward with 128 queries per CTA, 16 dK/dV with 128 keys per CTA, 32 dQ with 128 queries per CTA
// (bits 2 and 4 still pick the split waits inside the 128-row dK/dV and dQ kernels; bit 8 overrides 1 and 128).
// 1024 with 128 (bit 8 off): the v10 forward (attention_wg3.cuh: three warpgroups with Q in registers share
// each K/V tile; bits 64 and 512 do not apply to it). 2048 with 256 (bit 32 off): dQ with three warpgroups
// sharing each K/V tile (attention_wg3.cuh; bit-identical, measured ~1% faster: opt-in). Default 1926 = v10 + TMA backward + split waits (session
// 5: 128K block_sparse forward 9.06 -> 8.72 ms against 902). Before it, 902 = v7 forward with Q in registers
// (3 CTAs per SM) + TMA backward + split waits
// (bench/results/attention.md, session 4: at 128K block_sparse the v7 forward 12.4 -> 10.0 ms, Q in registers
// 10.4 -> 9.1, the TMA backward 37.5 -> 32-34 ms; three stages +-2.5%; the pipelined forwards measured slower,
// the split waits 1-2% faster). Session 3's v6 forward (bit 64 then: clusters sharing K/V by TMA multicast, commit 7de597e)
// measured slower than v3 and was removed. LG_ATTN_PIPE=<flags> or lg_cuda_attention_set_variant() override.
#define PIPE_MASK 4095
static int g_pipe = -1;
static int pipe_flags(void) {
    if (g_pipe < 0) {
        const char *e = getenv("LG_ATTN_PIPE");
        g_pipe = e ? atoi(e) & PIPE_MASK : 1926;
    }
    return g_pipe;
}
extern "C" void lg_cuda_attention_set_variant(int flags) { g_pipe = flags < 0 ? -1 : flags & PIPE_MASK; }
extern "C" int lg_cuda_attention_variant(void) { return pipe_flags(); }

extern "C" int lg_cuda_attention_impl(void) {
    int want = g_impl;
    if (want < 0) {
        const char *e = getenv("LG_ATTN_IMPL");
        want = !(e && !strcmp(e, "mma"));
    }
    return want && wgmma_available();
}

// Growable device workspace (the backward's delta and, for the atomic path, the fp32 dQ accumulator).
static void *g_ws[3];  // 0 delta, 1 atomic dQ accumulator, 2 sink-part dK/dV partials (attention_sink.cuh)
static size_t g_ws_cap[3];
static void *workspace(int which, size_t bytes) {
    if (bytes > g_ws_cap[which]) {
        if (g_ws[which]) cudaCheck(cudaFree(g_ws[which]));  // cudaFree waits for kernels still using it
        cudaCheck(cudaMalloc(&g_ws[which], bytes));
        g_ws_cap[which] = bytes;
    }
    return g_ws[which];
}

#include "kernels/cuda/attention_tma.cuh"   // v7 forward (bit 128, default): K/V tiles by TMA, mbarriers
#include "kernels/cuda/attention_wg3.cuh"   // three warpgroups share each K/V tile: v10 forward (1024), dQ (2048)

template <int D, int MINB>
static void launch_fwd(void *out, float *lse, const void *q, const void *k, const void *v, int B, int S, int H, int KVH,
                       const MaskP &m, const TileLists *L, cudaStream_t stream) {
    const float scale_log2 = (float)(1.0 / sqrt((double)D)) * LOG2E;
    dim3 grid(L->nqt, H, B);
    attn_fwd_kernel<D, MINB><<<grid, NTHREADS, smem_fwd(D), stream>>>(
        (bf16 *)out, lse, (const bf16 *)q, (const bf16 *)k, (const bf16 *)v, S, H, KVH, scale_log2, m, L->off, L->tiles,
        L->nqt);
    cudaCheckLaunch("attn_fwd_kernel");
}

extern "C" void lg_cuda_attention_fwd(void *out, float *lse, const void *q, const void *k, const void *v, int B, int S,
                                      int H, int KVH, int D, const lg_attn *mask, cudaStream_t stream) {
    check_args("attention_fwd", B, S, H, KVH, D, mask);
    set_smem_limits();
    const int wg = lg_cuda_attention_impl();
    const int v10 = wg && (pipe_flags() & (1024 | 128 | 8)) == (1024 | 128);
    const TileLists *L = get_lists(mask, KVH, S, (wg && (pipe_flags() & 8) ? 1 : 0) | (v10 ? 2 : 0));
    MaskP m = mask_params(mask, KVH);
    if (wg) {
        const float scale_log2 = (float)(1.0 / sqrt((double)D)) * LOG2E;
        dim3 grid(L->nqt, H, B);
        if (pipe_flags() & 8) {  // v4: 128 queries per CTA
            dim3 grid2(L->np, H, B);
            if (D == 128)
                attn_fwd_wg2_kernel<128><<<grid2, WG2_THREADS, smem_fwd_wg2(128), stream>>>(
                    (bf16 *)out, lse, (const bf16 *)q, (const bf16 *)k, (const bf16 *)v, S, H, KVH, scale_log2, m,
                    L->off2, L->tiles2, L->np);
            else
                attn_fwd_wg2_kernel<64><<<grid2, WG2_THREADS, smem_fwd_wg2(64), stream>>>(
                    (bf16 *)out, lse, (const bf16 *)q, (const bf16 *)k, (const bf16 *)v, S, H, KVH, scale_log2, m,
                    L->off2, L->tiles2, L->np);
            cudaCheckLaunch("attn_fwd_wg2_kernel");
            return;
        }
        if (v10) {  // three warpgroups share each K/V tile
            if (D == 128) launch_fwd_wg3_d<128>(out, lse, q, k, v, B, S, H, KVH, m, L, scale_log2, stream);
            else launch_fwd_wg3_d<64>(out, lse, q, k, v, B, S, H, KVH, m, L, scale_log2, stream);
            return;
        }
        if (pipe_flags() & 128) {  // v7: K/V by TMA (bit 64: three stages)
            launch_fwd_tma(out, lse, q, k, v, B, S, H, KVH, D, pipe_flags() & 64 ? 3 : 2, pipe_flags() & 512, m, L,
                           scale_log2, stream);
            return;
        }
        if (pipe_flags() & 1) {
            if (D == 128)
                attn_fwd_wgp_kernel<128><<<grid, NTHREADS, smem_fwd_wgp(128), stream>>>(
                    (bf16 *)out, lse, (const bf16 *)q, (const bf16 *)k, (const bf16 *)v, S, H, KVH, scale_log2, m,
                    L->off, L->tiles, L->nqt);
            else
                attn_fwd_wgp_kernel<64><<<grid, NTHREADS, smem_fwd_wgp(64), stream>>>(
                    (bf16 *)out, lse, (const bf16 *)q, (const bf16 *)k, (const bf16 *)v, S, H, KVH, scale_log2, m,
                    L->off, L->tiles, L->nqt);
            cudaCheckLaunch("attn_fwd_wgp_kernel");
            return;
        }
        if (D == 128)
            attn_fwd_wg_kernel<128><<<grid, NTHREADS, smem_fwd_wg(128), stream>>>(
                (bf16 *)out, lse, (const bf16 *)q, (const bf16 *)k, (const bf16 *)v, S, H, KVH, scale_log2, m, L->off,
                L->tiles, L->nqt);
        else
            attn_fwd_wg_kernel<64><<<grid, NTHREADS, smem_fwd_wg(64), stream>>>(
                (bf16 *)out, lse, (const bf16 *)q, (const bf16 *)k, (const bf16 *)v, S, H, KVH, scale_log2, m, L->off,
                L->tiles, L->nqt);
        cudaCheckLaunch("attn_fwd_wg_kernel");
        return;
    }
    if (D == 128) {
        if (g_fwd_blocks == 3) launch_fwd<128, 3>(out, lse, q, k, v, B, S, H, KVH, m, L, stream);
        else launch_fwd<128, 2>(out, lse, q, k, v, B, S, H, KVH, m, L, stream);
    } else {
        if (g_fwd_blocks == 3) launch_fwd<64, 3>(out, lse, q, k, v, B, S, H, KVH, m, L, stream);
        else launch_fwd<64, 2>(out, lse, q, k, v, B, S, H, KVH, m, L, stream);
    }
}

template <int D>
static void launch_bwd(void *dq, void *dk, void *dv, const void *dout, const void *q, const void *k, const void *v,
                       const void *out, const float *lse, int B, int S, int H, int KVH, const MaskP &m,
                       const TileLists *L, int deterministic, cudaStream_t stream) {
    const double sc = 1.0 / sqrt((double)D);
    const float scale = (float)sc, scale_log2 = (float)sc * LOG2E;
    const int64_t rows = (int64_t)B * S * H;
    const int wg = deterministic && lg_cuda_attention_impl(), flags = pipe_flags();
    const int v4kv = wg && (flags & 16), v4q = wg && (flags & 32), tma = wg && (flags & 256);
    // wgmma dK/dV (v3 and v4): delta and lse * log2 e side by side in the workspace (the kernels prefetch both
    // with cp.async a tile ahead; the session 4 profile had v3's synchronous lse load at 15% of the stall samples)
    float *delta = (float *)workspace(0, sizeof(float) * (size_t)rows * (wg ? 2 : 1));
    if (wg) {
        attn_delta_lse_kernel<D><<<(unsigned)((rows + 7) / 8), 256, 0, stream>>>(
            delta, delta + rows, (const bf16 *)dout, (const bf16 *)out, lse, rows, S, H);
        cudaCheckLaunch("attn_delta_lse_kernel");
    } else {
        attn_delta_kernel<D><<<(unsigned)((rows + 7) / 8), 256, 0, stream>>>(delta, (const bf16 *)dout,
                                                                             (const bf16 *)out, rows, S, H);
        cudaCheckLaunch("attn_delta_kernel");
    }
    dim3 gkv(L->nqt, KVH, B), gq(L->nqt, H, B);
    if (wg) {
        if (v4kv) {  // 128 keys per CTA
            auto dkdv2 = (flags & 2) ? attn_bwd_dkdv_wg2_kernel<D, true> : attn_bwd_dkdv_wg2_kernel<D, false>;
            dkdv2<<<dim3(L->np, KVH, B), WG2_THREADS, smem_dkdv_wg2(D), stream>>>(
                (bf16 *)dk, (bf16 *)dv, (const bf16 *)q, (const bf16 *)k, (const bf16 *)v, (const bf16 *)dout,
                delta + rows, delta, S, H, KVH, scale, scale_log2, m, L->toff2, L->tq2, L->kpair, L->np);
            cudaCheckLaunch("attn_bwd_dkdv_wg2_kernel");
        } else {
            auto dkdv = tma ? attn_bwd_dkdv_wg_kernel<D, true, true>
                        : (flags & 2) ? attn_bwd_dkdv_wg_kernel<D, true, false>
                                      : attn_bwd_dkdv_wg_kernel<D, false, false>;
            const int32_t *ko = kv_order((TileLists *)L, KVH);
            const CUtensorMap mq = tma ? make_rows_map(q, B, S, H, D) : CUtensorMap{},
                              mo = tma ? make_rows_map(dout, B, S, H, D) : CUtensorMap{};
            dkdv<<<dim3(L->nqt * KVH, 1, B), NTHREADS, smem_dkdv_wg(D), stream>>>(
                (bf16 *)dk, (bf16 *)dv, (const bf16 *)q, (const bf16 *)k, (const bf16 *)v, (const bf16 *)dout,
                delta + rows, delta, S, H, KVH, scale, scale_log2, m, L->toff, L->tq, L->nqt, ko, mq, mo);
            cudaCheckLaunch("attn_bwd_dkdv_wg_kernel");
        }
        if (v4q) {  // 128 queries per CTA
            auto dq2 = (flags & 4) ? attn_bwd_dq_wg2_kernel<D, true> : attn_bwd_dq_wg2_kernel<D, false>;
            dq2<<<dim3(L->np, H, B), WG2_THREADS, smem_dq_wg2(D), stream>>>(
                (bf16 *)dq, (const bf16 *)q, (const bf16 *)k, (const bf16 *)v, (const bf16 *)dout, lse, delta, S, H,
                KVH, scale, scale_log2, m, L->off2, L->tiles2, L->np);
            cudaCheckLaunch("attn_bwd_dq_wg2_kernel");
        } else if (tma && (flags & 2048)) {  // three warpgroups share each K/V tile
            launch_bwd_dq_wg3<D>(dq, q, k, v, dout, lse, delta, B, S, H, KVH, scale, scale_log2, m, L, stream);
        } else {
            auto dqk = tma ? attn_bwd_dq_wg_kernel<D, true, true>
                       : (flags & 4) ? attn_bwd_dq_wg_kernel<D, true, false>
                                     : attn_bwd_dq_wg_kernel<D, false, false>;
            const CUtensorMap mk = tma ? make_rows_map(k, B, S, KVH, D) : CUtensorMap{},
                              mv = tma ? make_rows_map(v, B, S, KVH, D) : CUtensorMap{};
            dqk<<<gq, NTHREADS, smem_dq_wg(D), stream>>>((bf16 *)dq, (const bf16 *)q, (const bf16 *)k,
                                                          (const bf16 *)v, (const bf16 *)dout, lse, delta, S, H, KVH,
                                                          scale, scale_log2, m, L->off, L->tiles, L->nqt, mk, mv);
            cudaCheckLaunch("attn_bwd_dq_wg_kernel");
        }
    } else if (deterministic) {
        attn_bwd_dkdv_kernel<D, false><<<gkv, NTHREADS, smem_dkdv(D, false), stream>>>(
            (bf16 *)dk, (bf16 *)dv, NULL, (const bf16 *)q, (const bf16 *)k, (const bf16 *)v, (const bf16 *)dout, lse,
            delta, S, H, KVH, scale, scale_log2, m, L->toff, L->tq, L->nqt);
        cudaCheckLaunch("attn_bwd_dkdv_kernel");
        attn_bwd_dq_kernel<D><<<gq, NTHREADS, smem_dq(D), stream>>>(
            (bf16 *)dq, (const bf16 *)q, (const bf16 *)k, (const bf16 *)v, (const bf16 *)dout, lse, delta, S, H, KVH,
            scale, scale_log2, m, L->off, L->tiles, L->nqt);
        cudaCheckLaunch("attn_bwd_dq_kernel");
    } else {
        const size_t nq = (size_t)rows * D;
        float *acc = (float *)workspace(1, sizeof(float) * nq);
        cudaCheck(cudaMemsetAsync(acc, 0, sizeof(float) * nq, stream));
        attn_bwd_dkdv_kernel<D, true><<<gkv, NTHREADS, smem_dkdv(D, true), stream>>>(
            (bf16 *)dk, (bf16 *)dv, acc, (const bf16 *)q, (const bf16 *)k, (const bf16 *)v, (const bf16 *)dout, lse,
            delta, S, H, KVH, scale, scale_log2, m, L->toff, L->tq, L->nqt);
        cudaCheckLaunch("attn_bwd_dkdv_kernel (atomic dq)");
        const int64_t n4 = (int64_t)(nq / 4);
        attn_dq_convert_kernel<<<(unsigned)((n4 + 255) / 256), 256, 0, stream>>>((bf16 *)dq, acc, n4, scale);
        cudaCheckLaunch("attn_dq_convert_kernel");
    }
}

extern "C" void lg_cuda_attention_bwd(void *dq, void *dk, void *dv, const void *dout, const void *q, const void *k,
                                      const void *v, const void *out, const float *lse, int B, int S, int H, int KVH,
                                      int D, const lg_attn *mask, int deterministic, cudaStream_t stream) {
    check_args("attention_bwd", B, S, H, KVH, D, mask);
    set_smem_limits();
    const int wgi = deterministic && lg_cuda_attention_impl();
    const TileLists *L = get_lists(mask, KVH, S,
                                   (wgi && (pipe_flags() & (16 | 32)) ? 1 : 0) |
                                       (wgi && (pipe_flags() & (2048 | 256 | 32)) == (2048 | 256) ? 2 : 0));
    MaskP m = mask_params(mask, KVH);
    if (D == 128) launch_bwd<128>(dq, dk, dv, dout, q, k, v, out, lse, B, S, H, KVH, m, L, deterministic, stream);
    else launch_bwd<64>(dq, dk, dv, dout, q, k, v, out, lse, B, S, H, KVH, m, L, deterministic, stream);
}

extern "C" void lg_cuda_attention_release(void) {
    for (int i = 0; i < LIST_CACHE; i++) free_lists(&g_lists[i]);
    for (int i = 0; i < 3; i++) {
        if (g_ws[i]) cudaCheck(cudaFree(g_ws[i]));
        g_ws[i] = NULL;
        g_ws_cap[i] = 0;
    }
}

#include "kernels/cuda/attention_sink.cuh"  // the sink part of SINK_WINDOW for the cuDNN path
