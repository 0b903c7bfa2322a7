// ops_cuda.cu: the CUDA backend's lg_ops table (bf16 activations and weights, fp32 gradients and optimizer
// state), device selection, memory, fp32<->bf16 conversions and the residual add. The ops themselves live in
// one file per concern beside this one (gemm, norm, rope, swiglu, embedding, loss, optim; attention.cu is the
// flash attention).
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublasLt.h>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/attention_cudnn.h"
#include "kernels/cuda/ops_cuda.h"
#include "kernels/ops.h"

// lg_die lives in the core library (trainer/util.c), which links after this one: a weak reference resolves to
// it whenever util.o is in the program (always, in lgtrain and the tests), and to NULL otherwise.
extern "C" void lg_die(const char *fmt, ...) __attribute__((weak, noreturn));

void lg_cu_die(const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (lg_die) lg_die("%s", msg);
    fprintf(stderr, "lgtrain: error: %s\n", msg);
    fflush(stderr);
    exit(1);
}

static int g_sms = 0;
int lg_cu_num_sms(void) { return g_sms; }

// --- memory ------------------------------------------------------------------------------------------------
static void *cu_alloc(size_t bytes) {
    if (bytes == 0) bytes = 1;
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();  // clear the sticky-free allocation error
        size_t fr = 0, tot = 0;
        cudaMemGetInfo(&fr, &tot);
        lg_cu_die("out of GPU memory: cudaMalloc(%.3f GiB) failed (%s) with %.3f GiB free of %.3f GiB; lower "
                  "micro_batch or seq_len, raise zero_stage, or shrink mlp_chunk/loss_chunk (lgtrain --plan shows "
                  "where the memory goes)",
                  bytes / 1073741824.0, cudaGetErrorString(e), fr / 1073741824.0, tot / 1073741824.0);
    }
    return p;
}
static void cu_free(void *p) {
    if (p) cudaCheck(cudaFree(p));
}
static void cu_zero(void *p, size_t bytes) {
    if (bytes) cudaCheck(cudaMemsetAsync(p, 0, bytes, LG_CU_STREAM));
}

static void *g_scratch[LG_CU_SCRATCH_N];
static size_t g_scratch_bytes[LG_CU_SCRATCH_N];
void *lg_cu_scratch(int slot, size_t bytes) {
    if (bytes > g_scratch_bytes[slot]) {
        if (g_scratch[slot]) cudaCheck(cudaFree(g_scratch[slot]));
        size_t n = bytes < 4096 ? 4096 : bytes + bytes / 4;  // headroom so slowly growing sizes reallocate rarely
        g_scratch[slot] = cu_alloc(n);
        g_scratch_bytes[slot] = n;
    }
    return g_scratch[slot];
}

// --- conversions -------------------------------------------------------------------------------------------
// 8 elements per thread; vector loads/stores when both pointers are 16-byte aligned.
__global__ void f32_to_bf16_kernel(bf16 *__restrict__ dst, const float *__restrict__ src, int64_t n, int vec) {
    int64_t i0 = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * 8;
    if (i0 >= n) return;
    int m = n - i0 < 8 ? (int)(n - i0) : 8;
    float f[8];
    if (vec && m == 8) {
        float4 a = *(const float4 *)(src + i0), b = *(const float4 *)(src + i0 + 4);
        f[0] = a.x, f[1] = a.y, f[2] = a.z, f[3] = a.w, f[4] = b.x, f[5] = b.y, f[6] = b.z, f[7] = b.w;
    } else {
        for (int i = 0; i < 8; i++) f[i] = i < m ? src[i0 + i] : 0.0f;
    }
    lg_st8n(dst + i0, m, vec, f);
}
__global__ void bf16_to_f32_kernel(float *__restrict__ dst, const bf16 *__restrict__ src, int64_t n, int vec) {
    int64_t i0 = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * 8;
    if (i0 >= n) return;
    int m = n - i0 < 8 ? (int)(n - i0) : 8;
    float f[8];
    lg_ld8n(src + i0, m, vec, f);
    if (vec && m == 8) {
        *(float4 *)(dst + i0) = make_float4(f[0], f[1], f[2], f[3]);
        *(float4 *)(dst + i0 + 4) = make_float4(f[4], f[5], f[6], f[7]);
    } else {
        for (int i = 0; i < m; i++) dst[i0 + i] = f[i];
    }
}
void lg_cu_f32_to_bf16(bf16 *dst, const float *src, int64_t n) {
    if (n <= 0) return;
    f32_to_bf16_kernel<<<lg_cu_blocks((n + 7) / 8, 256), 256, 0, LG_CU_STREAM>>>(dst, src, n,
                                                                                 lg_cu_al16(dst) && lg_cu_al16(src));
    cudaCheckLaunch("f32_to_bf16_kernel");
}
void lg_cu_bf16_to_f32(float *dst, const bf16 *src, int64_t n) {
    if (n <= 0) return;
    bf16_to_f32_kernel<<<lg_cu_blocks((n + 7) / 8, 256), 256, 0, LG_CU_STREAM>>>(dst, src, n,
                                                                                 lg_cu_al16(dst) && lg_cu_al16(src));
    cudaCheckLaunch("bf16_to_f32_kernel");
}

// Host fp32 <-> device. elem_size 4: plain copy. elem_size 2: through a device fp32 staging buffer of at most
// STAGE elements, converted on the GPU (weights of a 7B model are 7e9 elements: no host-side loop).
enum { STAGE = 1 << 23 };  // 8M floats = 32 MiB
static void check_elem(size_t es, const char *what) {
    if (es != 2 && es != 4)
        lg_cu_die("cuda backend %s: element size %zu, expected 2 (bf16) or 4 (fp32)", what, es);
}
static void cu_upload(void *dst, const float *src, size_t n, size_t es) {
    check_elem(es, "upload");
    if (n == 0) return;
    if (es == 4) {
        cudaCheck(cudaMemcpy(dst, src, n * 4, cudaMemcpyHostToDevice));
        return;
    }
    float *st = (float *)lg_cu_scratch(LG_CU_SCRATCH_STAGE, (size_t)(n < STAGE ? n : STAGE) * 4);
    for (size_t i = 0; i < n; i += STAGE) {
        size_t m = n - i < STAGE ? n - i : STAGE;
        cudaCheck(cudaMemcpy(st, src + i, m * 4, cudaMemcpyHostToDevice));
        lg_cu_f32_to_bf16((bf16 *)dst + i, st, (int64_t)m);
    }
}
static void cu_download(float *dst, const void *src, size_t n, size_t es) {
    check_elem(es, "download");
    if (n == 0) return;
    if (es == 4) {
        cudaCheck(cudaMemcpy(dst, src, n * 4, cudaMemcpyDeviceToHost));
        return;
    }
    float *st = (float *)lg_cu_scratch(LG_CU_SCRATCH_STAGE, (size_t)(n < STAGE ? n : STAGE) * 4);
    for (size_t i = 0; i < n; i += STAGE) {
        size_t m = n - i < STAGE ? n - i : STAGE;
        lg_cu_bf16_to_f32(st, (const bf16 *)src + i, (int64_t)m);
        cudaCheck(cudaMemcpy(dst + i, st, m * 4, cudaMemcpyDeviceToHost));
    }
}
static void cu_upload_i32(int32_t *dst, const int32_t *src, size_t n) {
    if (n) cudaCheck(cudaMemcpy(dst, src, n * 4, cudaMemcpyHostToDevice));
}
static void cu_sync(void) {
    cudaError_t e = cudaDeviceSynchronize();
    if (e != cudaSuccess)
        lg_cu_die("a CUDA kernel failed: %s (%s), seen at cudaDeviceSynchronize (%s:%d). Kernels run asynchronously, "
                  "so the failing op is earlier: rerun with CUDA_LAUNCH_BLOCKING=1 to stop at it, or under "
                  "`compute-sanitizer --tool memcheck` for out-of-bounds accesses",
                  cudaGetErrorName(e), cudaGetErrorString(e), __FILE__, __LINE__);
}

// --- residual add: x (n) += y (n), bf16 ----------------------------------------------------------------------
__global__ void add_kernel(bf16 *__restrict__ x, const bf16 *__restrict__ y, int64_t n, int vec) {
    int64_t i0 = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * 8;
    if (i0 >= n) return;
    int m = n - i0 < 8 ? (int)(n - i0) : 8;
    float a[8], b[8];
    lg_ld8n(x + i0, m, vec, a);
    lg_ld8n(y + i0, m, vec, b);
#pragma unroll
    for (int i = 0; i < 8; i++) a[i] += b[i];
    lg_st8n(x + i0, m, vec, a);
}
void lg_cu_add_inplace(void *x, const void *y, int64_t n) {
    if (n <= 0) return;
    add_kernel<<<lg_cu_blocks((n + 7) / 8, 256), 256, 0, LG_CU_STREAM>>>((bf16 *)x, (const bf16 *)y, n,
                                                                         lg_cu_al16(x) && lg_cu_al16(y));
    cudaCheckLaunch("add_kernel");
}

// --- attention: the native kernels (attention.cu) or cuDNN fused attention (attention_cudnn.cu) ----------------
// Until the trainer calls attention_options, the native deterministic kernels run (bitwise resume). The choice
// depends only on the options and the layout kind, so a layer's forward and backward take the same backend
// (and the two backends' out/lse conventions are identical: tests/gpu/test_attention_cudnn.cu crosses them).
static int g_attn_backend = LG_ATTN_BACKEND_NATIVE, g_attn_det = 1;

static void cu_attention_options(int backend, int deterministic) {
    if (backend != LG_ATTN_BACKEND_AUTO && backend != LG_ATTN_BACKEND_CUDNN && backend != LG_ATTN_BACKEND_NATIVE)
        lg_cu_die("attention_options: backend %d: expected LG_ATTN_BACKEND_AUTO (0), _CUDNN (1) or _NATIVE (2)",
                  backend);
    g_attn_backend = backend;
    g_attn_det = deterministic != 0;
}

// 1: try cuDNN for this layer. Deterministic runs use the native kernels (cuDNN's backward accumulates dQ with
// atomics); BLOCK_SPARSE has no cuDNN form on Hopper. auto: cuDNN for FULL and SINK_WINDOW, the faster per kind
// in bench/results/attention-cudnn.md. When cuDNN refuses a shape (warned once) the native kernel runs.
static int attn_use_cudnn(const lg_attn *mask) {
    if (g_attn_det || mask->kind == LG_ATTN_BLOCK_SPARSE || g_attn_backend == LG_ATTN_BACKEND_NATIVE) return 0;
    if (g_attn_backend == LG_ATTN_BACKEND_CUDNN) return 1;
    return mask->kind == LG_ATTN_FULL || mask->kind == LG_ATTN_SINK_WINDOW;
}

static void cu_attention_fwd(void *out, float *lse, const void *q, const void *k, const void *v, int B, int S, int H,
                             int KVH, int D, const lg_attn *mask) {
    if (attn_use_cudnn(mask) &&
        lg_cuda_attention_cudnn_fwd(out, lse, q, k, v, B, S, H, KVH, D, mask, LG_CU_STREAM) == LG_CUDNN_OK)
        return;
    lg_cuda_attention_fwd(out, lse, q, k, v, B, S, H, KVH, D, mask, LG_CU_STREAM);
}
static void cu_attention_bwd(void *dq, void *dk, void *dv, const void *dout, const void *q, const void *k,
                             const void *v, const void *out, const float *lse, int B, int S, int H, int KVH, int D,
                             const lg_attn *mask) {
    if (attn_use_cudnn(mask) && lg_cuda_attention_cudnn_bwd(dq, dk, dv, dout, q, k, v, out, lse, B, S, H, KVH, D, mask,
                                                            LG_CU_STREAM) == LG_CUDNN_OK)
        return;
    // deterministic = 1: the native kernels' atomic-free backward (resume-reproducibility needs it).
    lg_cuda_attention_bwd(dq, dk, dv, dout, q, k, v, out, lse, B, S, H, KVH, D, mask, 1, LG_CU_STREAM);
}

static lg_ops cuda_ops;
static int g_state = 0;  // the table: 0 not built, 1 ready, -1 no usable device

// ops->release: everything kept for the life of the process, after the queued work finishes.
static void cu_release(void) {
    cudaCheck(cudaDeviceSynchronize());
    for (int i = 0; i < LG_CU_SCRATCH_N; i++) {
        if (g_scratch[i]) cudaCheck(cudaFree(g_scratch[i]));
        g_scratch[i] = NULL;
        g_scratch_bytes[i] = 0;
    }
    lg_cuda_attention_release();
    lg_cuda_attention_cudnn_release();
    lg_cu_copy_release();
    lg_cu_gemm_release();
    g_state = 0;  // lg_ops_cuda() builds the table again
}

static int local_rank(void) {
    const char *vars[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "LOCAL_RANK", "MPI_LOCALRANKID"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *s = getenv(vars[i]);
        if (s && *s) {
            char *end;
            long r = strtol(s, &end, 10);
            if (*end || r < 0) lg_cu_die("environment %s=%s: expected a non-negative integer (node-local rank)", vars[i], s);
            return (int)r;
        }
    }
    return 0;
}

// The table, built once. The device is chosen from the node-local rank before any allocation.
extern "C" const lg_ops *lg_ops_cuda_impl(const char **why) {
    static char reason[256];
    if (g_state == 1) return &cuda_ops;
    if (g_state == -1) {
        if (why) *why = reason;
        return NULL;
    }
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        if (e != cudaSuccess)
            snprintf(reason, sizeof reason, "no usable CUDA device: cudaGetDeviceCount failed: %s (%s)",
                     cudaGetErrorString(e), cudaGetErrorName(e));
        else
            snprintf(reason, sizeof reason, "no CUDA device found (cudaGetDeviceCount returned 0)");
        (void)cudaGetLastError();
        g_state = -1;
        if (why) *why = reason;
        return NULL;
    }
    int dev = local_rank() % n;
    cudaCheck(cudaSetDevice(dev));
    cudaCheck(cudaDeviceGetAttribute(&g_sms, cudaDevAttrMultiProcessorCount, dev));
    lg_cu_gemm_init();

    memset(&cuda_ops, 0, sizeof cuda_ops);
    cuda_ops.name = "cuda";
    cuda_ops.act_size = 2;
    cuda_ops.param_size = 2;
    cuda_ops.alloc = cu_alloc;
    cuda_ops.free = cu_free;
    cuda_ops.zero = cu_zero;
    cuda_ops.upload = cu_upload;
    cuda_ops.download = cu_download;
    cuda_ops.upload_i32 = cu_upload_i32;
    cuda_ops.sync = cu_sync;
    cuda_ops.embedding_fwd = lg_cu_embedding_fwd;
    cuda_ops.embedding_bwd = lg_cu_embedding_bwd;
    cuda_ops.rmsnorm_fwd = lg_cu_rmsnorm_fwd;
    cuda_ops.rmsnorm_bwd = lg_cu_rmsnorm_bwd;
    cuda_ops.matmul_fwd = lg_cu_matmul_fwd;
    cuda_ops.matmul_bwd = lg_cu_matmul_bwd;
    cuda_ops.rope_fwd = lg_cu_rope_fwd;
    cuda_ops.rope_bwd = lg_cu_rope_bwd;
    cuda_ops.attention_fwd = cu_attention_fwd;
    cuda_ops.attention_bwd = cu_attention_bwd;
    cuda_ops.attention_options = cu_attention_options;
    cuda_ops.swiglu_fwd = lg_cu_swiglu_fwd;
    cuda_ops.swiglu_bwd = lg_cu_swiglu_bwd;
    cuda_ops.add_inplace = lg_cu_add_inplace;
    cuda_ops.cross_entropy = lg_cu_cross_entropy;
    cuda_ops.adamw = lg_cu_adamw;
    cuda_ops.sumsq = lg_cu_sumsq;
    cuda_ops.scale = lg_cu_scale;
    cuda_ops.cast_params = lg_cu_cast_params;
    cuda_ops.add_f32 = lg_cu_add_f32;
    cuda_ops.host_alloc = lg_cu_host_alloc;
    cuda_ops.host_free = lg_cu_host_free;
    cuda_ops.copy_async = lg_cu_copy_async;
    cuda_ops.copy_wait = lg_cu_copy_wait;
    cuda_ops.release = cu_release;
    g_state = 1;
    return &cuda_ops;
}
