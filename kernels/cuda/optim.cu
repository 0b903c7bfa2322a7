// optim.cu: the optimizer-side ops on fp32 device buffers: AdamW, the sum of squares for the gradient norm,
// the in-place scale used by clipping, and the fp32 master -> bf16 weight cast.
#include <math.h>

#include "kernels/cuda/ops_cuda.h"

// AdamW exactly as kernels/cpu/adamw.c (PyTorch's torch.optim.AdamW): the same fp32 operations in the same order,
// each explicitly rounded (no fused multiply-add contraction), so the GPU and CPU updates are bit-identical.
__global__ void adamw_kernel(float *__restrict__ p, const float *__restrict__ grad, float *__restrict__ m,
                             float *__restrict__ v, int64_t n, float beta1, float beta2, float eps, float step_size,
                             float bc2_sqrt, float decay) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float g = grad[i];
    float mi = __fadd_rn(__fmul_rn(beta1, m[i]), __fmul_rn(__fsub_rn(1.0f, beta1), g));
    float vi = __fadd_rn(__fmul_rn(beta2, v[i]), __fmul_rn(__fmul_rn(__fsub_rn(1.0f, beta2), g), g));
    m[i] = mi;
    v[i] = vi;
    float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bc2_sqrt), eps);
    p[i] = __fsub_rn(__fmul_rn(p[i], decay), __fmul_rn(step_size, __fdiv_rn(mi, denom)));
}

void lg_cu_adamw(float *param, const float *grad, float *m, float *v, int64_t n, float lr, float beta1, float beta2,
                 float eps, float wd, int t) {
    if (t < 1) lg_cu_die("adamw: step %d, expected a 1-based step >= 1", t);
    if (n <= 0) return;
    double bc1 = 1.0 - pow((double)beta1, t), bc2 = 1.0 - pow((double)beta2, t);
    float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2), decay = (float)(1.0 - (double)lr * wd);
    adamw_kernel<<<lg_cu_blocks(n, 256), 256, 0, LG_CU_STREAM>>>(param, grad, m, v, n, beta1, beta2, eps, step_size,
                                                                 bc2_sqrt, decay);
    cudaCheckLaunch("adamw_kernel");
}

// Sum of squares in fp64, deterministic: a fixed grid (independent of the GPU) of per-thread strided sums,
// shared-memory trees, then one block over the block sums.
enum { SS_BLOCKS = 512, SS_THREADS = 256 };

static __device__ __forceinline__ double tree_sum(double s, double *sh) {
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int h = blockDim.x / 2; h > 0; h >>= 1) {
        if ((int)threadIdx.x < h) sh[threadIdx.x] += sh[threadIdx.x + h];
        __syncthreads();
    }
    return sh[0];
}

__global__ void __launch_bounds__(SS_THREADS) sumsq_kernel(double *__restrict__ part, const float *__restrict__ x,
                                                           int64_t n, int vec) {
    __shared__ double sh[SS_THREADS];
    int64_t i = (int64_t)blockIdx.x * SS_THREADS + threadIdx.x, stride = (int64_t)SS_BLOCKS * SS_THREADS;
    double s = 0.0;
    if (vec) {
        int64_t n4 = n / 4;
        for (int64_t j = i; j < n4; j += stride) {
            float4 a = ((const float4 *)x)[j];
            s += (double)a.x * a.x + (double)a.y * a.y + (double)a.z * a.z + (double)a.w * a.w;
        }
        if (i < n - n4 * 4) s += (double)x[n4 * 4 + i] * x[n4 * 4 + i];
    } else {
        for (int64_t j = i; j < n; j += stride) s += (double)x[j] * x[j];
    }
    s = tree_sum(s, sh);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

__global__ void __launch_bounds__(SS_BLOCKS) sumsq_final_kernel(double *__restrict__ out,
                                                                const double *__restrict__ part) {
    __shared__ double sh[SS_BLOCKS];
    double s = tree_sum(part[threadIdx.x], sh);
    if (threadIdx.x == 0) *out = s;
}

double lg_cu_sumsq(const float *x, int64_t n) {
    if (n <= 0) return 0.0;
    double *part = (double *)lg_cu_scratch(LG_CU_SCRATCH_REDUCE, (SS_BLOCKS + 1) * sizeof(double));
    sumsq_kernel<<<SS_BLOCKS, SS_THREADS, 0, LG_CU_STREAM>>>(part, x, n, lg_cu_al16(x));
    cudaCheckLaunch("sumsq_kernel");
    sumsq_final_kernel<<<1, SS_BLOCKS, 0, LG_CU_STREAM>>>(part + SS_BLOCKS, part);
    cudaCheckLaunch("sumsq_final_kernel");
    double s;
    cudaCheck(cudaMemcpy(&s, part + SS_BLOCKS, sizeof s, cudaMemcpyDeviceToHost));
    return s;
}

// x (n) *= s, 4 per thread
__global__ void scale_kernel(float *__restrict__ x, int64_t n, float s, int vec) {
    int64_t i0 = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * 4;
    if (i0 >= n) return;
    if (vec && i0 + 4 <= n) {
        float4 a = *(float4 *)(x + i0);
        a.x *= s, a.y *= s, a.z *= s, a.w *= s;
        *(float4 *)(x + i0) = a;
    } else {
        for (int64_t i = i0; i < n && i < i0 + 4; i++) x[i] *= s;
    }
}

void lg_cu_scale(float *x, int64_t n, float s) {
    if (n <= 0) return;
    scale_kernel<<<lg_cu_blocks((n + 3) / 4, 256), 256, 0, LG_CU_STREAM>>>(x, n, s, lg_cu_al16(x));
    cudaCheckLaunch("scale_kernel");
}

// x (n) += y (n), 4 per thread
__global__ void add_f32_kernel(float *__restrict__ x, const float *__restrict__ y, int64_t n, int vec) {
    int64_t i0 = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * 4;
    if (i0 >= n) return;
    if (vec && i0 + 4 <= n) {
        float4 a = *(float4 *)(x + i0), b = *(const float4 *)(y + i0);
        a.x += b.x, a.y += b.y, a.z += b.z, a.w += b.w;
        *(float4 *)(x + i0) = a;
    } else {
        for (int64_t i = i0; i < n && i < i0 + 4; i++) x[i] += y[i];
    }
}

void lg_cu_add_f32(float *x, const float *y, int64_t n) {
    if (n <= 0) return;
    add_f32_kernel<<<lg_cu_blocks((n + 3) / 4, 256), 256, 0, LG_CU_STREAM>>>(x, y, n, lg_cu_al16(x) && lg_cu_al16(y));
    cudaCheckLaunch("add_f32_kernel");
}

// dst (n) bf16 = src (n) fp32 master, round to nearest even
void lg_cu_cast_params(void *dst, const float *src, int64_t n) { lg_cu_f32_to_bf16((bf16 *)dst, src, n); }
