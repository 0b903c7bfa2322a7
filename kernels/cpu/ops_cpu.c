// ops_cpu.c: the CPU backend's lg_ops table (fp32 everywhere), its memory functions and the small vector ops.
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/ops_cpu.h"
#include "kernels/ops.h"
#include "trainer/util.h"

// 64-byte alignment: whole cache lines, and any vector width.
static void *cpu_alloc(size_t bytes) {
    void *p = NULL;
    size_t n = (bytes + 63) / 64 * 64;
    int rc = posix_memalign(&p, 64, n ? n : 64);
    if (rc != 0 || !p) lg_die("out of host memory: posix_memalign(64, %zu) for a cpu backend buffer", bytes);
    return p;
}
static void cpu_free(void *p) { free(p); }
static void cpu_zero(void *p, size_t bytes) { memset(p, 0, bytes); }
static void check_elem(size_t elem_size, const char *what) {
    if (elem_size != 4) lg_die("cpu backend %s: element size %zu, expected 4 (the cpu backend is fp32 only)", what, elem_size);
}
static void cpu_upload(void *dst, const float *src, size_t n, size_t elem_size) {
    check_elem(elem_size, "upload");
    if (dst != src) memmove(dst, src, n * sizeof(float));
}
static void cpu_download(float *dst, const void *src, size_t n, size_t elem_size) {
    check_elem(elem_size, "download");
    if (dst != src) memmove(dst, src, n * sizeof(float));
}
static void cpu_upload_i32(int32_t *dst, const int32_t *src, size_t n) {
    if (dst != src) memmove(dst, src, n * sizeof(int32_t));
}
static void cpu_sync(void) {}

static void cpu_add_inplace(void *x, const void *y, int64_t n) {
    float *a = (float *)x;
    const float *b = (const float *)y;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) a[i] += b[i];
}

// Fixed chunks summed in order: the result does not depend on the thread count.
static double cpu_sumsq(const float *x, int64_t n) {
    enum { CH = 65536 };
    int64_t nch = (n + CH - 1) / CH;
    if (nch <= 0) return 0.0;
    double *part = lg_malloc((size_t)nch * sizeof(double));
#pragma omp parallel for schedule(static) if (nch > 1)
    for (int64_t c = 0; c < nch; c++) {
        int64_t i1 = (c + 1) * CH < n ? (c + 1) * CH : n;
        double s = 0;
        for (int64_t i = c * CH; i < i1; i++) s += (double)x[i] * (double)x[i];
        part[c] = s;
    }
    double s = 0;
    for (int64_t c = 0; c < nch; c++) s += part[c];
    free(part);
    return s;
}

static void cpu_scale(float *x, int64_t n, float s) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) x[i] *= s;
}

static void cpu_add_f32(float *x, const float *y, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) x[i] += y[i];
}

static void *cpu_host_alloc(size_t bytes) { return lg_malloc(bytes ? bytes : 1); }
static void cpu_host_free(void *p) { free(p); }
static void cpu_copy_async(void *dst, const void *src, size_t bytes, int slot) {
    (void)slot;
    memmove(dst, src, bytes);
}
static void cpu_copy_wait(int slot) { (void)slot; }

static void cpu_cast_params(void *dst, const float *src, int64_t n) {
    if (dst != src) memmove(dst, src, (size_t)n * sizeof(float));
}

static void cpu_release(void) {}  // the cpu backend keeps nothing between calls

static const lg_ops cpu_ops = {
    .name = "cpu",
    .act_size = 4,
    .param_size = 4,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .zero = cpu_zero,
    .upload = cpu_upload,
    .download = cpu_download,
    .upload_i32 = cpu_upload_i32,
    .sync = cpu_sync,
    .embedding_fwd = lg_cpu_embedding_fwd,
    .embedding_bwd = lg_cpu_embedding_bwd,
    .rmsnorm_fwd = lg_cpu_rmsnorm_fwd,
    .rmsnorm_bwd = lg_cpu_rmsnorm_bwd,
    .matmul_fwd = lg_cpu_matmul_fwd,
    .matmul_bwd = lg_cpu_matmul_bwd,
    .rope_fwd = lg_cpu_rope_fwd,
    .rope_bwd = lg_cpu_rope_bwd,
    .attention_fwd = lg_cpu_attention_fwd,
    .attention_bwd = lg_cpu_attention_bwd,
    .swiglu_fwd = lg_cpu_swiglu_fwd,
    .swiglu_bwd = lg_cpu_swiglu_bwd,
    .add_inplace = cpu_add_inplace,
    .cross_entropy = lg_cpu_cross_entropy,
    .adamw = lg_cpu_adamw,
    .sumsq = cpu_sumsq,
    .scale = cpu_scale,
    .cast_params = cpu_cast_params,
    .add_f32 = cpu_add_f32,
    .host_alloc = cpu_host_alloc,
    .host_free = cpu_host_free,
    .copy_async = cpu_copy_async,
    .copy_wait = cpu_copy_wait,
    .release = cpu_release,
};

const lg_ops *lg_ops_cpu(void) {
    lg_cpu_simd_init();
    return &cpu_ops;
}
