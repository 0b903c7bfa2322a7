// swiglu.cu: the SwiGLU nonlinearity, out = silu(gate) * up, and its backward; bf16 in/out, fp32 math,
// 8 elements per thread with 16-byte loads and stores, one pass.
#include "kernels/cuda/ops_cuda.h"

// sigmoid that never overflows: exp of a non-positive argument only (as the CPU reference)
static __device__ __forceinline__ float sigmoid_f(float x) {
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

__global__ void swiglu_fwd_kernel(bf16 *__restrict__ out, const bf16 *__restrict__ gate, const bf16 *__restrict__ up,
                                  int64_t n, int vec) {
    int64_t i0 = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * 8;
    if (i0 >= n) return;
    int m = n - i0 < 8 ? (int)(n - i0) : 8;
    float g[8], u[8], y[8];
    lg_ld8n(gate + i0, m, vec, g);
    lg_ld8n(up + i0, m, vec, u);
#pragma unroll
    for (int i = 0; i < 8; i++) y[i] = g[i] * sigmoid_f(g[i]) * u[i];
    lg_st8n(out + i0, m, vec, y);
}

// d silu(g)/dg = s (1 + g (1 - s)), s = sigmoid(g)
__global__ void swiglu_bwd_kernel(bf16 *__restrict__ dgate, bf16 *__restrict__ dup, const bf16 *__restrict__ dout,
                                  const bf16 *__restrict__ gate, const bf16 *__restrict__ up, int64_t n, int vec) {
    int64_t i0 = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * 8;
    if (i0 >= n) return;
    int m = n - i0 < 8 ? (int)(n - i0) : 8;
    float g[8], u[8], d[8], dg[8], du[8];
    lg_ld8n(gate + i0, m, vec, g);
    lg_ld8n(up + i0, m, vec, u);
    lg_ld8n(dout + i0, m, vec, d);
#pragma unroll
    for (int i = 0; i < 8; i++) {
        float s = sigmoid_f(g[i]);
        dg[i] = d[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
        du[i] = d[i] * g[i] * s;
    }
    lg_st8n(dgate + i0, m, vec, dg);
    lg_st8n(dup + i0, m, vec, du);
}

void lg_cu_swiglu_fwd(void *out, const void *gate, const void *up, int64_t T, int F) {
    int64_t n = T * F;
    if (n <= 0) return;
    int vec = lg_cu_al16(out) && lg_cu_al16(gate) && lg_cu_al16(up);
    swiglu_fwd_kernel<<<lg_cu_blocks((n + 7) / 8, 256), 256, 0, LG_CU_STREAM>>>((bf16 *)out, (const bf16 *)gate,
                                                                                (const bf16 *)up, n, vec);
    cudaCheckLaunch("swiglu_fwd_kernel");
}

void lg_cu_swiglu_bwd(void *dgate, void *dup, const void *dout, const void *gate, const void *up, int64_t T, int F) {
    int64_t n = T * F;
    if (n <= 0) return;
    int vec = lg_cu_al16(dgate) && lg_cu_al16(dup) && lg_cu_al16(dout) && lg_cu_al16(gate) && lg_cu_al16(up);
    swiglu_bwd_kernel<<<lg_cu_blocks((n + 7) / 8, 256), 256, 0, LG_CU_STREAM>>>(
        (bf16 *)dgate, (bf16 *)dup, (const bf16 *)dout, (const bf16 *)gate, (const bf16 *)up, n, vec);
    cudaCheckLaunch("swiglu_bwd_kernel");
}
