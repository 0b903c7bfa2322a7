// embedding.cu: token embedding lookup (bf16 rows copied with 16-byte moves) and its backward.
//
// Backward, deterministic without atomics: dwte (V,C) fp32 += scatter of dout (T,C).
//   1. keys[i] = token << 32 | position, padded with ~0 to a power of two N, bitonic-sorted on the GPU (shared
//      memory for strides < 2048, one global pass per larger stride: ~30 launches at T = 128K). The keys are
//      unique, so the order is total and the result does not depend on scheduling.
//   2. One block column per sorted entry; only the entry that starts a run of equal tokens works: it sums its
//      run's dout rows in position order (fp32, 8 columns per thread, the run's positions staged 128 at a time
//      in shared memory so the row loads are independent) and adds the sum to its dwte row, which no other
//      block touches. Work is O(T C) reads; a very frequent token makes one block column longer (a token at 5%
//      of 128K positions sums 6.5K rows), which stays around a millisecond.
// Token ids must be in [0, V): the model checks them on the host before the forward (V is not passed here).
#include "kernels/cuda/ops_cuda.h"

// out (T,C) = wte[tokens[t]] ; 8 columns per thread
__global__ void embedding_fwd_kernel(bf16 *__restrict__ out, const int32_t *__restrict__ tokens,
                                     const bf16 *__restrict__ wte, int64_t T, int C, int vec) {
    int gpr = (C + 7) / 8;
    int64_t item = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (item >= T * gpr) return;
    int64_t t = item / gpr;
    int c = (int)(item - t * gpr) * 8;
    const bf16 *src = wte + (int64_t)tokens[t] * C + c;
    bf16 *dst = out + t * C + c;
    if (vec) {
        *(uint4 *)dst = *(const uint4 *)src;
    } else {
        int n = C - c < 8 ? C - c : 8;
        for (int i = 0; i < n; i++) dst[i] = src[i];
    }
}

void lg_cu_embedding_fwd(void *out, const int32_t *tokens, const void *wte, int64_t T, int C) {
    if (T <= 0 || C <= 0) return;
    int vec = C % 8 == 0 && lg_cu_al16(out) && lg_cu_al16(wte);
    embedding_fwd_kernel<<<lg_cu_blocks(T * ((C + 7) / 8), 256), 256, 0, LG_CU_STREAM>>>((bf16 *)out, tokens,
                                                                                         (const bf16 *)wte, T, C, vec);
    cudaCheckLaunch("embedding_fwd_kernel");
}

// --- bitonic sort of N (a power of two) 64-bit keys, ascending --------------------------------------------
enum { SORT_E = 2048 };  // elements per shared-memory block (1024 threads, one pair each)

__global__ void keys_fill_kernel(uint64_t *__restrict__ keys, const int32_t *__restrict__ tokens, int64_t T,
                                 int64_t N) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N) return;
    keys[i] = i < T ? ((uint64_t)(uint32_t)tokens[i] << 32) | (uint64_t)i : ~(uint64_t)0;
}

// Sorting network steps with stride j < E inside one block's E = 2 * blockDim.x elements. full: every stage
// k = 2..E (sorts each block in the direction bitonic order needs); else only stage k = kk, strides E/2..1.
__global__ void bitonic_local_kernel(uint64_t *__restrict__ keys, int64_t kk, int full) {
    __shared__ uint64_t s[SORT_E];
    int E = 2 * blockDim.x, tid = threadIdx.x;
    int64_t base = (int64_t)blockIdx.x * E;
    s[tid] = keys[base + tid];
    s[tid + blockDim.x] = keys[base + tid + blockDim.x];
    __syncthreads();
    int64_t k0 = full ? 2 : kk, k1 = full ? E : kk;
    for (int64_t k = k0; k <= k1; k <<= 1) {
        for (int j = (int)(k < E ? k : E) / 2; j > 0; j >>= 1) {
            int lo = 2 * j * (tid / j) + tid % j, hi = lo + j;
            int asc = ((base + lo) & k) == 0;
            uint64_t a = s[lo], b = s[hi];
            if ((a > b) == asc) {
                s[lo] = b;
                s[hi] = a;
            }
            __syncthreads();
        }
    }
    keys[base + tid] = s[tid];
    keys[base + tid + blockDim.x] = s[tid + blockDim.x];
}

// One step with stride j >= E over all N/2 pairs.
__global__ void bitonic_global_kernel(uint64_t *__restrict__ keys, int64_t N, int64_t k, int64_t j) {
    int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= N / 2) return;
    int64_t lo = 2 * j * (p / j) + p % j, hi = lo + j;
    int asc = (lo & k) == 0;
    uint64_t a = keys[lo], b = keys[hi];
    if ((a > b) == asc) {
        keys[lo] = b;
        keys[hi] = a;
    }
}

static void bitonic_sort(uint64_t *keys, int64_t N) {
    if (N < 2) return;
    int64_t E = N < SORT_E ? N : SORT_E;
    unsigned nblk = (unsigned)(N / E);
    bitonic_local_kernel<<<nblk, (unsigned)(E / 2), 0, LG_CU_STREAM>>>(keys, 0, 1);
    cudaCheckLaunch("bitonic_local_kernel");
    for (int64_t k = 2 * E; k <= N; k <<= 1) {
        for (int64_t j = k / 2; j >= E; j >>= 1) {
            bitonic_global_kernel<<<lg_cu_blocks(N / 2, 256), 256, 0, LG_CU_STREAM>>>(keys, N, k, j);
            cudaCheckLaunch("bitonic_global_kernel");
        }
        bitonic_local_kernel<<<nblk, (unsigned)(E / 2), 0, LG_CU_STREAM>>>(keys, k, 0);
        cudaCheckLaunch("bitonic_local_kernel");
    }
}

// --- per-run sums --------------------------------------------------------------------------------------------
enum { SEG_THREADS = 128 };

// grid (T, ceil(C / (SEG_THREADS * 8))); keys sorted (token, position).
__global__ void __launch_bounds__(SEG_THREADS) embedding_seg_kernel(float *__restrict__ dwte,
                                                                     const bf16 *__restrict__ dout,
                                                                     const uint64_t *__restrict__ keys, int64_t T,
                                                                     int C, int vec) {
    __shared__ uint32_t pos[SEG_THREADS];
    int64_t i = blockIdx.x;
    uint32_t tok = (uint32_t)(keys[i] >> 32);
    if (i > 0 && (uint32_t)(keys[i - 1] >> 32) == tok) return;  // not the first entry of its run
    int c = (blockIdx.y * SEG_THREADS + threadIdx.x) * 8;
    int n = C - c < 8 ? C - c : 8;
    float acc[8];
#pragma unroll
    for (int k = 0; k < 8; k++) acc[k] = 0.0f;
    for (int64_t e0 = i;; e0 += SEG_THREADS) {
        int64_t e = e0 + threadIdx.x;
        uint32_t p = 0;
        int valid = 0;
        if (e < T) {
            uint64_t key = keys[e];
            valid = (uint32_t)(key >> 32) == tok;
            p = (uint32_t)key;
        }
        pos[threadIdx.x] = p;
        int cnt = __syncthreads_count(valid);  // the run is contiguous: the valid entries are a prefix
        if (n > 0) {
#pragma unroll 4
            for (int j = 0; j < cnt; j++) {
                float v[8];
                lg_ld8n(dout + (int64_t)pos[j] * C + c, n, vec, v);
#pragma unroll
                for (int k = 0; k < 8; k++) acc[k] += v[k];
            }
        }
        if (cnt < SEG_THREADS) break;
        __syncthreads();  // everyone is done with pos[] before the next batch overwrites it
    }
    if (n <= 0) return;
    float *d = dwte + (int64_t)tok * C + c;
    if (vec) {
        float4 a = *(float4 *)d, b = *(float4 *)(d + 4);
        a.x += acc[0], a.y += acc[1], a.z += acc[2], a.w += acc[3];
        b.x += acc[4], b.y += acc[5], b.z += acc[6], b.w += acc[7];
        *(float4 *)d = a;
        *(float4 *)(d + 4) = b;
    } else {
        for (int k = 0; k < n; k++) d[k] += acc[k];
    }
}

void lg_cu_embedding_bwd(float *dwte, const void *dout, const int32_t *tokens, int64_t T, int C) {
    if (T <= 0 || C <= 0) return;
    if (T > 2147483647) lg_cu_die("embedding_bwd: %lld tokens exceed the 2^31 this kernel indexes", (long long)T);
    int64_t N = 1;
    while (N < T) N <<= 1;
    uint64_t *keys = (uint64_t *)lg_cu_scratch(LG_CU_SCRATCH_SORT, (size_t)N * sizeof(uint64_t));
    keys_fill_kernel<<<lg_cu_blocks(N, 256), 256, 0, LG_CU_STREAM>>>(keys, tokens, T, N);
    cudaCheckLaunch("keys_fill_kernel");
    bitonic_sort(keys, N);
    int vec = C % 8 == 0 && lg_cu_al16(dwte) && lg_cu_al16(dout);
    dim3 grid((unsigned)T, (unsigned)((C + SEG_THREADS * 8 - 1) / (SEG_THREADS * 8)));
    embedding_seg_kernel<<<grid, SEG_THREADS, 0, LG_CU_STREAM>>>(dwte, (const bf16 *)dout, keys, T, C, vec);
    cudaCheckLaunch("embedding_seg_kernel");
}
