// bench_attention: times attention forward, backward and both, for each layout kind and backend: the native
// kernels (kernels/cuda/attention.cu; deterministic backward, as training runs them) and cuDNN fused attention
// (kernels/cuda/attention_cudnn.cu; FULL and SINK_WINDOW only). B=1, D=128, H/KVH = 32/32 and 64/8 (70B-like
// GQA). Checks both backends against a float64 dense reference at a small size first and refuses to time a
// backend that fails.
//
// FLOP count (the FlashAttention convention, on the kept (query, key) pairs of lg_attn_pairs, summed over
// query heads): forward 4*D*pairs (QK^T and PV), backward 10*D*pairs (2.5x: QK^T, dO V^T, dV, dK, dQ),
// forward+backward 14*D*pairs. Recomputation is not counted.
// Usage: bench_attention [native] [cudnn] [full] [sw] [bs] [gqa=all|32k|none] [maxnativefull=N] [sink=N]
//                        [window=N] [S ...]
//   sink=/window= change the timed sink_window mask (default 64/2048); sink=0 times the cuDNN path's window graph
//   alone, so the difference to sink=64 is the cost of the sink graph and the log-sum-exp merges.
//   backends and kinds default to all (cudnn skips bs); gqa=32k (default) runs 64/8 at S=32768 only;
//   maxnativefull=N skips native FULL above S=N for 64/8 (it takes seconds per call). Default S: 8192 32768 131072.
// Timing: CUDA events, one warm-up (it also builds cuDNN's plans), median of 11 reps (5 at 128K, 2 for FULL at 128K).
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/attention_cudnn.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/layout.h"

enum { NATIVE = 0, CUDNN = 1 };
static const char *const backend_name[2] = {"native", "cudnn"};

// deterministic pseudo-normal bf16 fill (hash -> Box-Muller), so timing never runs on zeros
__global__ void fill_randn(__nv_bfloat16 *x, size_t n, uint32_t seed, float sd) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    uint32_t h = (uint32_t)i * 2654435761u ^ seed * 0x9E3779B9u, h2;
    h ^= h >> 16, h *= 0x85EBCA6Bu, h ^= h >> 13, h *= 0xC2B2AE35u, h ^= h >> 16;
    h2 = h * 0x27D4EB2Fu + 0x165667B1u;
    h2 ^= h2 >> 15, h2 *= 0x2C1B3C6Du, h2 ^= h2 >> 12;
    float u1 = ((h >> 8) + 1) * (1.0f / 16777217.0f), u2 = (h2 >> 8) * (1.0f / 16777216.0f);
    x[i] = __float2bfloat16(sd * sqrtf(-2.f * logf(u1)) * cosf(6.2831853f * u2));
}

static void fill(void *p, size_t n, uint32_t seed, float sd) {
    fill_randn<<<(unsigned)((n + 255) / 256), 256>>>((__nv_bfloat16 *)p, n, seed, sd);
    cudaCheckLaunch("fill_randn");
}

static double bf2d(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

typedef struct {
    void *q, *k, *v, *o, *go, *dq, *dk, *dv;
    float *lse;
    int B, S, H, KVH, D, backend;
    const lg_attn *mask;
} Run;

// returns 0 when cuDNN refused (the caller reports it)
static int do_fwd(Run *r) {
    if (r->backend == CUDNN)
        return lg_cuda_attention_cudnn_fwd(r->o, r->lse, r->q, r->k, r->v, r->B, r->S, r->H, r->KVH, r->D, r->mask,
                                           0) == LG_CUDNN_OK;
    lg_cuda_attention_fwd(r->o, r->lse, r->q, r->k, r->v, r->B, r->S, r->H, r->KVH, r->D, r->mask, 0);
    return 1;
}
static int do_bwd(Run *r) {
    if (r->backend == CUDNN)
        return lg_cuda_attention_cudnn_bwd(r->dq, r->dk, r->dv, r->go, r->q, r->k, r->v, r->o, r->lse, r->B, r->S,
                                           r->H, r->KVH, r->D, r->mask, 0) == LG_CUDNN_OK;
    lg_cuda_attention_bwd(r->dq, r->dk, r->dv, r->go, r->q, r->k, r->v, r->o, r->lse, r->B, r->S, r->H, r->KVH, r->D,
                          r->mask, 1, 0);
    return 1;
}

static void alloc_run(Run *r) {
    size_t nq = (size_t)r->B * r->S * r->H * r->D, nk = (size_t)r->B * r->S * r->KVH * r->D;
    cudaCheck(cudaMalloc(&r->q, 2 * nq));
    cudaCheck(cudaMalloc(&r->k, 2 * nk));
    cudaCheck(cudaMalloc(&r->v, 2 * nk));
    cudaCheck(cudaMalloc(&r->o, 2 * nq));
    cudaCheck(cudaMalloc(&r->go, 2 * nq));
    cudaCheck(cudaMalloc(&r->dq, 2 * nq));
    cudaCheck(cudaMalloc(&r->dk, 2 * nk));
    cudaCheck(cudaMalloc(&r->dv, 2 * nk));
    cudaCheck(cudaMalloc((void **)&r->lse, 4 * (size_t)r->B * r->H * r->S));
}
static void free_run(Run *r) {
    void *bufs[9] = {r->q, r->k, r->v, r->o, r->go, r->dq, r->dk, r->dv, r->lse};
    for (int i = 0; i < 9; i++) cudaCheck(cudaFree(bufs[i]));
}

// ---- correctness check at a small size: float64 dense reference on the device's own bf16 inputs ----
static int check_small(const lg_attn *mask, int backend) {
    Run r;
    r.B = 1, r.S = 1024, r.H = 4, r.KVH = 2, r.D = 128, r.mask = mask, r.backend = backend;
    const int B = r.B, S = r.S, H = r.H, KVH = r.KVH, D = r.D, G = H / KVH;
    const size_t nq = (size_t)B * S * H * D, nk = (size_t)B * S * KVH * D;
    alloc_run(&r);
    fill(r.q, nq, 11, 1.5f), fill(r.k, nk, 12, 1.f), fill(r.v, nk, 13, 1.f), fill(r.go, nq, 14, 1.f);
    cudaCheck(cudaMemset(r.o, 0xFF, 2 * nq));  // poison: NaN wherever nothing is written
    cudaCheck(cudaMemset(r.dq, 0xFF, 2 * nq));
    cudaCheck(cudaMemset(r.dk, 0xFF, 2 * nk));
    cudaCheck(cudaMemset(r.dv, 0xFF, 2 * nk));
    char desc[96];
    lg_attn_describe(mask, desc, sizeof desc);
    if (!do_fwd(&r) || !do_bwd(&r)) {
        printf("check %-6s %-40s: cuDNN refused this mask/shape (warning above)\n", backend_name[backend], desc);
        free_run(&r);
        return 0;
    }
    cudaCheck(cudaDeviceSynchronize());
    uint16_t *h[8];
    void *src[8] = {r.q, r.k, r.v, r.go, r.o, r.dq, r.dk, r.dv};
    size_t cnt[8] = {nq, nk, nk, nq, nq, nq, nk, nk};
    for (int i = 0; i < 8; i++) {
        h[i] = (uint16_t *)malloc(2 * cnt[i]);
        if (!h[i]) return 0;
        cudaCheck(cudaMemcpy(h[i], src[i], 2 * cnt[i], cudaMemcpyDeviceToHost));
    }
    double num[4] = {0}, den[4] = {0};  // out, dq, dk, dv
    double *rdk = (double *)calloc(nk, 8), *rdv = (double *)calloc(nk, 8), *p = (double *)malloc(8 * S);
    double *ro = (double *)malloc(8 * D), *rdq = (double *)malloc(8 * D);
    const double scale = 1.0 / sqrt((double)D);
    for (int hh = 0; hh < H; hh++) {
        int kh = hh / G;
        for (int i = 0; i < S; i++) {
            const uint16_t *qi = h[0] + ((size_t)i * H + hh) * D, *gi = h[3] + ((size_t)i * H + hh) * D;
            double mx = -INFINITY, l = 0;
            for (int j = 0; j <= i; j++) {
                p[j] = -INFINITY;
                if (!lg_attn_allows(mask, KVH, kh, i, j)) continue;
                const uint16_t *kj = h[1] + ((size_t)j * KVH + kh) * D;
                double s = 0;
                for (int d = 0; d < D; d++) s += bf2d(qi[d]) * bf2d(kj[d]);
                p[j] = s * scale;
                if (p[j] > mx) mx = p[j];
            }
            for (int j = 0; j <= i; j++) l += exp(p[j] - mx);
            for (int d = 0; d < D; d++) ro[d] = rdq[d] = 0;
            for (int j = 0; j <= i; j++) {
                p[j] = exp(p[j] - mx) / l;
                for (int d = 0; d < D; d++) ro[d] += p[j] * bf2d(h[2][((size_t)j * KVH + kh) * D + d]);
            }
            double delta = 0;
            for (int d = 0; d < D; d++) delta += bf2d(gi[d]) * ro[d];
            for (int j = 0; j <= i; j++) {
                if (p[j] == 0) continue;
                size_t kv = ((size_t)j * KVH + kh) * D;
                double dp = 0;
                for (int d = 0; d < D; d++) dp += bf2d(gi[d]) * bf2d(h[2][kv + d]);
                double ds = p[j] * (dp - delta) * scale;
                for (int d = 0; d < D; d++) {
                    rdq[d] += ds * bf2d(h[1][kv + d]);
                    rdk[kv + d] += ds * bf2d(qi[d]);
                    rdv[kv + d] += p[j] * bf2d(gi[d]);
                }
            }
            for (int d = 0; d < D; d++) {
                size_t at = ((size_t)i * H + hh) * D + d;
                double e = bf2d(h[4][at]) - ro[d], f = bf2d(h[5][at]) - rdq[d];
                num[0] += e * e, den[0] += ro[d] * ro[d];
                num[1] += f * f, den[1] += rdq[d] * rdq[d];
            }
        }
    }
    for (size_t i = 0; i < nk; i++) {
        double e = bf2d(h[6][i]) - rdk[i], f = bf2d(h[7][i]) - rdv[i];
        num[2] += e * e, den[2] += rdk[i] * rdk[i];
        num[3] += f * f, den[3] += rdv[i] * rdv[i];
    }
    int ok = 1;
    double err[4];
    for (int i = 0; i < 4; i++) {
        err[i] = sqrt(num[i] / den[i]);
        ok &= err[i] < 2e-2;  // NaN fails too
    }
    printf("check %-6s %-40s S=%d H=%d KVH=%d D=%d: rel err out %.2e dq %.2e dk %.2e dv %.2e %s\n",
           backend_name[backend], desc, S, H, KVH, D, err[0], err[1], err[2], err[3], ok ? "ok" : "FAIL");
    for (int i = 0; i < 8; i++) free(h[i]);
    free(rdk), free(rdv), free(p), free(ro), free(rdq);
    free_run(&r);
    return ok;
}

// ---- timing ----
static int cmp_f(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

// median ms over reps (after one warm-up) of: 0 fwd, 1 bwd, 2 fwd+bwd
static float time_it(Run *r, int what, int reps) {
    cudaEvent_t a, b;
    cudaCheck(cudaEventCreate(&a));
    cudaCheck(cudaEventCreate(&b));
    float t[32];
    for (int i = -1; i < reps; i++) {
        cudaCheck(cudaEventRecord(a, 0));
        if (what != 1) do_fwd(r);
        if (what != 0) do_bwd(r);
        cudaCheck(cudaEventRecord(b, 0));
        cudaCheck(cudaEventSynchronize(b));
        if (i >= 0) cudaCheck(cudaEventElapsedTime(&t[i], a, b));
    }
    cudaCheck(cudaEventDestroy(a));
    cudaCheck(cudaEventDestroy(b));
    qsort(t, reps, sizeof(float), cmp_f);
    return reps % 2 ? t[reps / 2] : 0.5f * (t[reps / 2 - 1] + t[reps / 2]);
}

static void bench_one(const lg_attn *mask, int S, int H, int KVH, int backend) {
    Run r;
    r.B = 1, r.S = S, r.H = H, r.KVH = KVH, r.D = 128, r.mask = mask, r.backend = backend;
    size_t nq = (size_t)r.B * S * H * r.D, nk = (size_t)r.B * S * KVH * r.D;
    alloc_run(&r);
    fill(r.q, nq, 1, 1.f), fill(r.k, nk, 2, 1.f), fill(r.v, nk, 3, 1.f), fill(r.go, nq, 4, 1.f);
    char desc[96];
    lg_attn_describe(mask, desc, sizeof desc);
    // first calls outside the timed region: tile lists, cuDNN plans (run-time compilation), scratch
    if (!do_fwd(&r) || !do_bwd(&r)) {
        printf("| %-41s | %6d | %2d/%2d | %-6s | cuDNN refused (warning above) |\n", desc, S, H, KVH,
               backend_name[backend]);
        free_run(&r);
        return;
    }
    cudaCheck(cudaDeviceSynchronize());
    double pairs = 0;  // kept (query, key) pairs over all query heads
    int G = H / KVH;
    for (int h = 0; h < KVH; h++) pairs += (double)G * lg_attn_pairs(mask, KVH, h, S);
    pairs *= r.B;
    int reps = mask->kind == LG_ATTN_FULL && S >= 131072 ? 2 : S >= 131072 ? 5 : 11;
    float f = time_it(&r, 0, reps), b = time_it(&r, 1, reps), fb = time_it(&r, 2, reps);
    double fl = 4.0 * r.D * pairs;
    printf("| %-41s | %6d | %2d/%2d | %-6s | %8.2f | %8.2f | %8.2f | %5.0f | %5.0f | %5.0f |\n", desc, S, H, KVH,
           backend_name[backend], f, b, fb, fl / f / 1e9, 2.5 * fl / b / 1e9, 3.5 * fl / fb / 1e9);
    fflush(stdout);
    free_run(&r);
}

int main(int argc, char **argv) {
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("bench_attention: no CUDA device\n");
        return 77;
    }
    cudaDeviceProp prop;
    cudaCheck(cudaGetDeviceProperties(&prop, 0));
    int ver = lg_cuda_attention_cudnn_version();
    printf("bench_attention on %s (%d SMs), cuDNN %d.%d.%d loaded\n", prop.name, prop.multiProcessorCount,
           ver / 10000, ver / 100 % 100, ver % 100);
    int use[2] = {0, 0}, kinds[3] = {0, 0, 0}, sizes[8], ns = 0, gqa = 1, maxnativefull = 1 << 30;
    int sink = 64, window = 2048;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "native")) use[NATIVE] = 1;
        else if (!strcmp(argv[i], "cudnn")) use[CUDNN] = 1;
        else if (!strcmp(argv[i], "full")) kinds[0] = 1;
        else if (!strcmp(argv[i], "sw")) kinds[1] = 1;
        else if (!strcmp(argv[i], "bs")) kinds[2] = 1;
        else if (!strcmp(argv[i], "gqa=all")) gqa = 2;
        else if (!strcmp(argv[i], "gqa=32k")) gqa = 1;
        else if (!strcmp(argv[i], "gqa=none")) gqa = 0;
        else if (!strncmp(argv[i], "maxnativefull=", 14)) maxnativefull = atoi(argv[i] + 14);
        else if (!strncmp(argv[i], "sink=", 5) && atoi(argv[i] + 5) >= 0) sink = atoi(argv[i] + 5);
        else if (!strncmp(argv[i], "window=", 7) && atoi(argv[i] + 7) > 0) window = atoi(argv[i] + 7);
        else if (atoi(argv[i]) > 0 && ns < 8) sizes[ns++] = atoi(argv[i]);
        else {
            fprintf(stderr, "bench_attention: unknown argument '%s' (see the usage in bench/attention.cu)\n", argv[i]);
            return 2;
        }
    }
    if (!use[0] && !use[1]) use[0] = use[1] = 1;
    if (!kinds[0] && !kinds[1] && !kinds[2]) kinds[0] = kinds[1] = kinds[2] = 1;
    if (!ns) sizes[0] = 8192, sizes[1] = 32768, sizes[2] = 131072, ns = 3;
    const lg_attn full = {LG_ATTN_FULL, 0, 0, 0, 0, 0};
    const lg_attn sw = {LG_ATTN_SINK_WINDOW, sink, window, 0, 0, 0};
    const lg_attn bs = {LG_ATTN_BLOCK_SPARSE, 0, 0, 64, 16, 64};
    const lg_attn sw_small = {LG_ATTN_SINK_WINDOW, 64, 256, 0, 0, 0};
    const lg_attn bs_small = {LG_ATTN_BLOCK_SPARSE, 0, 0, 64, 2, 4};
    const lg_attn *small[3] = {&full, &sw_small, &bs_small};
    for (int be = 0; be < 2; be++) {
        if (!use[be]) continue;
        int ok = 1;
        for (int m = 0; m < 3; m++)
            if (kinds[m] && !(be == CUDNN && m == 2)) ok &= check_small(small[m], be);
        if (!ok) {
            printf("bench_attention: the %s check failed, not timing it\n", backend_name[be]);
            use[be] = 0;
        }
    }
    printf("native kernels: %s, LG_ATTN_PIPE variant flags %d (kernels/cuda/attention.h)\n",
           lg_cuda_attention_impl() ? "wgmma" : "mma.sync", lg_cuda_attention_variant());
    printf("ms: median of CUDA-event timings; bwd alone (native: deterministic), f+b = one forward and one backward.\n"
           "TF/s = FlashAttention count on kept pairs (fwd 4*D*pairs, bwd 10*D*pairs, f+b 14*D*pairs).\n");
    printf("| mask | S | H/KVH | backend | fwd ms | bwd ms | f+b ms | TF/s fwd | TF/s bwd | TF/s f+b |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|\n");
    const lg_attn *masks[3] = {&sw, &bs, &full};
    const int kind_of[3] = {1, 2, 0};
    for (int i = 0; i < ns; i++)
        for (int hk = 0; hk < 2; hk++) {
            int H = hk ? 64 : 32, KVH = hk ? 8 : 32;
            if (hk && !(gqa == 2 || (gqa == 1 && sizes[i] == 32768))) continue;
            for (int m = 0; m < 3; m++) {
                if (!kinds[kind_of[m]]) continue;
                for (int be = 0; be < 2; be++) {
                    if (!use[be] || (be == CUDNN && masks[m]->kind == LG_ATTN_BLOCK_SPARSE)) continue;
                    if (be == NATIVE && masks[m]->kind == LG_ATTN_FULL && hk && sizes[i] > maxnativefull) continue;
                    bench_one(masks[m], sizes[i], H, KVH, be);
                }
            }
        }
    lg_cuda_attention_cudnn_release();
    lg_cuda_attention_release();
    return 0;
}
