// ops_cuda.h: internals shared by the CUDA backend's files (not part of the op interface; see kernels/ops.h).
// Activations and weights are bf16 (__nv_bfloat16), gradients, master weights, optimizer state, rstd and lse
// are fp32. Every kernel runs on the legacy default stream (LG_CU_STREAM), so ops are ordered with each other
// and with the synchronous cudaMemcpy of upload/download.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "kernels/cuda/cuda_check.h"
#include "kernels/layout.h"

typedef __nv_bfloat16 bf16;
#define LG_CU_STREAM ((cudaStream_t)0)

// Fatal error: "lgtrain: error: <msg>" through lg_die when the core library is linked (its rank prefix and
// MPI abort hook), else to stderr; exits.
void lg_cu_die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

// Grow-only device scratch buffers, one per slot, freed at exit by the driver. A slot is reallocated only
// when a call needs more than ever before (cudaFree synchronizes, so in-flight users are finished).
enum { LG_CU_SCRATCH_STAGE = 0, LG_CU_SCRATCH_SORT, LG_CU_SCRATCH_NORM, LG_CU_SCRATCH_LOSS, LG_CU_SCRATCH_REDUCE,
       LG_CU_SCRATCH_N };
void *lg_cu_scratch(int slot, size_t bytes);
int lg_cu_num_sms(void);

// 1 when p is 16-byte aligned (the vector paths load and store 8 bf16 or 4 floats at once).
static inline int lg_cu_al16(const void *p) { return ((uintptr_t)p & 15) == 0; }
static inline unsigned lg_cu_blocks(int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads;
    if (b > 2147483647) lg_cu_die("CUDA launch: %lld blocks exceed the grid limit", (long long)b);
    return (unsigned)(b > 0 ? b : 1);
}

// --- device helpers: 8 bf16 <-> 8 floats ----------------------------------------------------------------
#ifdef __CUDACC__
// p 16-byte aligned
static __device__ __forceinline__ void lg_ld8(const bf16 *p, float *f) {
    uint4 u = *(const uint4 *)p;
    const __nv_bfloat162 *h = (const __nv_bfloat162 *)&u;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 v = __bfloat1622float2(h[i]);
        f[2 * i] = v.x;
        f[2 * i + 1] = v.y;
    }
}
static __device__ __forceinline__ void lg_st8(bf16 *p, const float *f) {
    uint4 u;
    __nv_bfloat162 *h = (__nv_bfloat162 *)&u;
#pragma unroll
    for (int i = 0; i < 4; i++) h[i] = __floats2bfloat162_rn(f[2 * i], f[2 * i + 1]);
    *(uint4 *)p = u;
}
// n valid elements (1..8) at p; vec: the whole group is valid and p is aligned. Missing elements read as 0.
static __device__ __forceinline__ void lg_ld8n(const bf16 *p, int n, int vec, float *f) {
    if (vec && n == 8) {
        lg_ld8(p, f);
    } else {
#pragma unroll
        for (int i = 0; i < 8; i++) f[i] = i < n ? __bfloat162float(p[i]) : 0.0f;
    }
}
static __device__ __forceinline__ void lg_st8n(bf16 *p, int n, int vec, const float *f) {
    if (vec && n == 8) {
        lg_st8(p, f);
    } else {
#pragma unroll
        for (int i = 0; i < 8; i++)
            if (i < n) p[i] = __float2bfloat16_rn(f[i]);
    }
}
// Sum over the block (blockDim.x a multiple of 32, <= 1024); every thread gets the total. sh: 32 floats.
// Fixed order (shuffle tree, then warp 0 over the warps' sums): deterministic.
static __device__ __forceinline__ float lg_block_sum(float v, float *sh) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int w = threadIdx.x >> 5, l = threadIdx.x & 31, nw = blockDim.x >> 5;
    __syncthreads();  // sh may still be read by a previous call
    if (l == 0) sh[w] = v;
    __syncthreads();
    v = l < nw ? sh[l] : 0.0f;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
#endif

// --- launchers (each file's kernels; all pointers device memory) -----------------------------------------
void lg_cu_embedding_fwd(void *out, const int32_t *tokens, const void *wte, int64_t T, int C);
void lg_cu_embedding_bwd(float *dwte, const void *dout, const int32_t *tokens, int64_t T, int C);
void lg_cu_rmsnorm_fwd(void *out, float *rstd, const void *inp, const void *w, int64_t T, int C, float eps);
void lg_cu_rmsnorm_bwd(void *dinp, float *dw, const void *dout, const void *inp, const void *w, const float *rstd,
                       int64_t T, int C);
void lg_cu_gemm_init(void);
void lg_cu_gemm_release(void);
void lg_cu_matmul_fwd(void *out, const void *inp, const void *w, int64_t T, int C, int OC);
void lg_cu_matmul_bwd(void *dinp, float *dw, const void *dout, const void *inp, const void *w, int64_t T, int C,
                      int OC, int accumulate_dinp);
void lg_cu_rope_fwd(void *x, const float *cos, const float *sin, int64_t T, int S, int H, int D);
void lg_cu_rope_bwd(void *dx, const float *cos, const float *sin, int64_t T, int S, int H, int D);
void lg_cu_swiglu_fwd(void *out, const void *gate, const void *up, int64_t T, int F);
void lg_cu_swiglu_bwd(void *dgate, void *dup, const void *dout, const void *gate, const void *up, int64_t T, int F);
void lg_cu_add_inplace(void *x, const void *y, int64_t n);
double lg_cu_cross_entropy(void *logits, const int32_t *targets, int64_t T, int V, float dscale);
void lg_cu_adamw(float *param, const float *grad, float *m, float *v, int64_t n, float lr, float beta1, float beta2,
                 float eps, float wd, int t);
double lg_cu_sumsq(const float *x, int64_t n);
void lg_cu_scale(float *x, int64_t n, float s);
void lg_cu_cast_params(void *dst, const float *src, int64_t n);
void lg_cu_add_f32(float *x, const float *y, int64_t n);
// offload.cu: pinned host memory and the copy stream (activation offload)
void *lg_cu_host_alloc(size_t bytes);
void lg_cu_host_free(void *p);
void lg_cu_copy_async(void *dst, const void *src, size_t bytes, int slot);
void lg_cu_copy_wait(int slot);
void lg_cu_copy_release(void);  // the copy stream and its events
// fp32 <-> bf16 on the device (round to nearest even), n elements.
void lg_cu_f32_to_bf16(bf16 *dst, const float *src, int64_t n);
void lg_cu_bf16_to_f32(float *dst, const bf16 *src, int64_t n);
