// loss.cu: softmax cross-entropy over bf16 logits (T,V) with fp32 math, fused with its gradient: the logits
// are overwritten in place by dlogits = (softmax - onehot(target)) * dscale (bf16). One block per row: pass 1
// an online max/sum of exp over the row (16-byte loads), pass 2 writes the gradient (the row is still in L2).
// The per-row losses (fp64) are summed by one block in a fixed order, and the sum and the bad-target flag come
// back in one copy. Row offsets are 64-bit: 128K x 32000 logits pass 2^31.
#include <math.h>

#include "kernels/cuda/ops_cuda.h"

enum { CE_THREADS = 512, RED_THREADS = 1024 };

typedef struct {
    double loss;
    unsigned long long bad;  // 1 + the largest row whose target is >= V (0: none)
} ce_result;

static __device__ __forceinline__ void lse_merge(float &m, float &s, float m2, float s2) {
    float M = fmaxf(m, m2);
    if (M == -INFINITY) return;  // both empty
    s = (m == -INFINITY ? 0.0f : s * expf(m - M)) + (m2 == -INFINITY ? 0.0f : s2 * expf(m2 - M));
    m = M;
}

__global__ void __launch_bounds__(CE_THREADS) ce_kernel(bf16 *__restrict__ logits, const int32_t *__restrict__ targets,
                                                        double *__restrict__ row_loss, unsigned long long *bad,
                                                        int V, float dscale, int vec) {
    __shared__ float shm[32], shs[32];
    int64_t t = blockIdx.x;
    bf16 *row = logits + t * (int64_t)V;
    int ng = (V + 7) / 8;
    int y = targets[t];
    if (y >= V) {
        if (threadIdx.x == 0) atomicMax(bad, (unsigned long long)t + 1);
        y = -1;
    }
    if (y < 0) {  // ignored: loss 0, zero gradient row
        float z[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int g = threadIdx.x; g < ng; g += blockDim.x) {
            int c = g * 8, n = V - c < 8 ? V - c : 8;
            lg_st8n(row + c, n, vec, z);
        }
        if (threadIdx.x == 0) row_loss[t] = 0.0;
        return;
    }
    float m = -INFINITY, s = 0.0f;
    for (int g = threadIdx.x; g < ng; g += blockDim.x) {
        int c = g * 8, n = V - c < 8 ? V - c : 8;
        float v[8];
        lg_ld8n(row + c, n, vec, v);
        float gm = v[0];
        for (int i = 1; i < n; i++) gm = fmaxf(gm, v[i]);
        if (gm > m) {
            s = m == -INFINITY ? 0.0f : s * expf(m - gm);
            m = gm;
        }
        for (int i = 0; i < n; i++) s += expf(v[i] - m);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
        lse_merge(m, s, m2, s2);
    }
    int w = threadIdx.x >> 5, l = threadIdx.x & 31, nw = blockDim.x >> 5;
    if (l == 0) shm[w] = m, shs[w] = s;
    __syncthreads();
    m = l < nw ? shm[l] : -INFINITY;
    s = l < nw ? shs[l] : 0.0f;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
        lse_merge(m, s, m2, s2);
    }
    float xy = __bfloat162float(row[y]);
    __syncthreads();  // every thread has read row[y] before pass 2 overwrites it
    if (threadIdx.x == 0) row_loss[t] = log((double)s) + (double)m - (double)xy;
    float k = dscale / s;
    for (int g = threadIdx.x; g < ng; g += blockDim.x) {
        int c = g * 8, n = V - c < 8 ? V - c : 8;
        float v[8];
        lg_ld8n(row + c, n, vec, v);
#pragma unroll
        for (int i = 0; i < 8; i++) {
            v[i] = expf(v[i] - m) * k;
            if (c + i == y) v[i] -= dscale;
        }
        lg_st8n(row + c, n, vec, v);
    }
}

// One block: out->loss = sum of row_loss (T), strided per thread then a shared-memory tree (fixed order).
__global__ void __launch_bounds__(RED_THREADS) loss_sum_kernel(ce_result *out, const double *__restrict__ row_loss,
                                                               int64_t T) {
    __shared__ double sh[RED_THREADS];
    double s = 0.0;
    for (int64_t t = threadIdx.x; t < T; t += RED_THREADS) s += row_loss[t];
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int h = RED_THREADS / 2; h > 0; h >>= 1) {
        if ((int)threadIdx.x < h) sh[threadIdx.x] += sh[threadIdx.x + h];
        __syncthreads();
    }
    if (threadIdx.x == 0) out->loss = sh[0];
}

double lg_cu_cross_entropy(void *logits, const int32_t *targets, int64_t T, int V, float dscale) {
    if (T <= 0) return 0.0;
    if (T > 2147483647) lg_cu_die("cross_entropy: %lld rows exceed the grid limit", (long long)T);
    if (V <= 0) lg_cu_die("cross_entropy: vocabulary size %d must be positive", V);
    double *row_loss = (double *)lg_cu_scratch(LG_CU_SCRATCH_LOSS, (size_t)T * sizeof(double));
    ce_result *res = (ce_result *)lg_cu_scratch(LG_CU_SCRATCH_REDUCE, 64 * sizeof(double));
    cudaCheck(cudaMemsetAsync(&res->bad, 0, sizeof res->bad, LG_CU_STREAM));
    int vec = V % 8 == 0 && lg_cu_al16(logits);
    ce_kernel<<<(unsigned)T, CE_THREADS, 0, LG_CU_STREAM>>>((bf16 *)logits, targets, row_loss, &res->bad, V, dscale,
                                                            vec);
    cudaCheckLaunch("ce_kernel");
    loss_sum_kernel<<<1, RED_THREADS, 0, LG_CU_STREAM>>>(res, row_loss, T);
    cudaCheckLaunch("loss_sum_kernel");
    ce_result h;
    cudaCheck(cudaMemcpy(&h, res, sizeof h, cudaMemcpyDeviceToHost));
    if (h.bad)
        lg_cu_die("cross_entropy: the target at position %llu of this chunk is outside the vocabulary [0, %d)",
                  h.bad - 1, V);
    return h.loss;
}
