// bench_attention: times the native CUDA attention (kernels/cuda/attention.cu) forward, backward and both,
// for FULL, SINK_WINDOW(64, 2048) and BLOCK_SPARSE(64, 16, 64), at S = 8K, 32K, 128K (B=1, H=32, KVH=32,
// D=128) and at 32K with H=64, KVH=8 (70B-like GQA). Checks against a float64 CPU reference first.
//
// FLOP count (the FlashAttention convention, on the kept (query, key) pairs of lg_attn_pairs, summed over
// query heads): forward 4*D*pairs (QK^T and PV), backward 10*D*pairs (2.5x forward: QK^T, dO V^T, dV, dK,
// dQ), forward+backward 14*D*pairs. Recomputation is not counted (our deterministic backward does 7 matrix
// products per tile, 2 more than counted).
// Usage: bench_attention [sparse] [S ...]   (default 8192 32768 131072; "sparse" skips FULL). One table row
// per configuration.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/layout.h"

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

// ---- correctness check at a small size: float64 dense reference on the device's own bf16 inputs ----
static int check_small(const lg_attn *mask) {
    const int B = 1, S = 1024, H = 4, KVH = 2, D = 128, G = H / KVH;
    const size_t nq = (size_t)B * S * H * D, nk = (size_t)B * S * KVH * D;
    void *q, *k, *v, *go, *o, *dq, *dk, *dv;
    float *lse;
    cudaCheck(cudaMalloc(&q, 2 * nq));
    cudaCheck(cudaMalloc(&k, 2 * nk));
    cudaCheck(cudaMalloc(&v, 2 * nk));
    cudaCheck(cudaMalloc(&go, 2 * nq));
    cudaCheck(cudaMalloc(&o, 2 * nq));
    cudaCheck(cudaMalloc(&dq, 2 * nq));
    cudaCheck(cudaMalloc(&dk, 2 * nk));
    cudaCheck(cudaMalloc(&dv, 2 * nk));
    cudaCheck(cudaMalloc((void **)&lse, 4 * (size_t)B * H * S));
    fill(q, nq, 11, 1.5f), fill(k, nk, 12, 1.f), fill(v, nk, 13, 1.f), fill(go, nq, 14, 1.f);
    cudaCheck(cudaMemset(o, 0xFF, 2 * nq));
    cudaCheck(cudaMemset(dq, 0xFF, 2 * nq));
    cudaCheck(cudaMemset(dk, 0xFF, 2 * nk));
    cudaCheck(cudaMemset(dv, 0xFF, 2 * nk));
    lg_cuda_attention_fwd(o, lse, q, k, v, B, S, H, KVH, D, mask, 0);
    lg_cuda_attention_bwd(dq, dk, dv, go, q, k, v, o, lse, B, S, H, KVH, D, mask, 1, 0);
    cudaCheck(cudaDeviceSynchronize());
    uint16_t *h[8];
    void *src[8] = {q, k, v, go, o, dq, dk, dv};
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
    char desc[96];
    lg_attn_describe(mask, desc, sizeof desc);
    int ok = 1;
    double err[4];
    for (int i = 0; i < 4; i++) {
        err[i] = sqrt(num[i] / den[i]);
        ok &= err[i] < 2e-2;  // NaN fails too
    }
    printf("check %-40s S=%d H=%d KVH=%d D=%d: rel err out %.2e dq %.2e dk %.2e dv %.2e %s\n", desc, S, H, KVH, D,
           err[0], err[1], err[2], err[3], ok ? "ok" : "FAIL");
    for (int i = 0; i < 8; i++) free(h[i]);
    free(rdk), free(rdv), free(p), free(ro), free(rdq);
    void *bufs[9] = {q, k, v, go, o, dq, dk, dv, lse};
    for (int i = 0; i < 9; i++) cudaCheck(cudaFree(bufs[i]));
    return ok;
}

// ---- timing ----
static int cmp_f(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

typedef struct {
    void *q, *k, *v, *o, *go, *dq, *dk, *dv;
    float *lse;
    int B, S, H, KVH, D, det;
    const lg_attn *mask;
} Run;

static void do_fwd(Run *r) {
    lg_cuda_attention_fwd(r->o, r->lse, r->q, r->k, r->v, r->B, r->S, r->H, r->KVH, r->D, r->mask, 0);
}
static void do_bwd(Run *r) {
    lg_cuda_attention_bwd(r->dq, r->dk, r->dv, r->go, r->q, r->k, r->v, r->o, r->lse, r->B, r->S, r->H, r->KVH, r->D,
                          r->mask, r->det, 0);
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
    return t[reps / 2];
}

static void bench_one(const lg_attn *mask, int S, int H, int KVH) {
    Run r;
    r.det = 1, r.B = 1, r.S = S, r.H = H, r.KVH = KVH, r.D = 128, r.mask = mask;
    size_t nq = (size_t)r.B * S * H * r.D, nk = (size_t)r.B * S * KVH * r.D;
    cudaCheck(cudaMalloc(&r.q, 2 * nq));
    cudaCheck(cudaMalloc(&r.k, 2 * nk));
    cudaCheck(cudaMalloc(&r.v, 2 * nk));
    cudaCheck(cudaMalloc(&r.o, 2 * nq));
    cudaCheck(cudaMalloc(&r.go, 2 * nq));
    cudaCheck(cudaMalloc(&r.dq, 2 * nq));
    cudaCheck(cudaMalloc(&r.dk, 2 * nk));
    cudaCheck(cudaMalloc(&r.dv, 2 * nk));
    cudaCheck(cudaMalloc((void **)&r.lse, 4 * (size_t)r.B * H * S));
    fill(r.q, nq, 1, 1.f), fill(r.k, nk, 2, 1.f), fill(r.v, nk, 3, 1.f), fill(r.go, nq, 4, 1.f);
    do_fwd(&r);  // builds the tile lists outside the timed region
    cudaCheck(cudaDeviceSynchronize());
    double pairs = 0;  // kept (query, key) pairs over all query heads
    int G = H / KVH;
    if (mask->kind == LG_ATTN_BLOCK_SPARSE)
        for (int h = 0; h < KVH; h++) pairs += (double)G * lg_attn_pairs(mask, KVH, h, S);
    else
        pairs = (double)H * lg_attn_pairs(mask, KVH, 0, S);
    pairs *= r.B;
    int reps = mask->kind == LG_ATTN_FULL && S >= 131072 ? 3 : S >= 131072 ? 5 : 11;
    lg_cuda_attention_tune(3);
    float f3 = time_it(&r, 0, reps);
    lg_cuda_attention_tune(2);
    float f2 = time_it(&r, 0, reps);
    lg_cuda_attention_tune(f3 <= f2 ? 3 : 2);
    float f = f3 <= f2 ? f3 : f2;
    r.det = 1;
    float bd = time_it(&r, 1, reps), fbd = time_it(&r, 2, reps);
    r.det = 0;
    float ba = time_it(&r, 1, reps), fba = time_it(&r, 2, reps);
    lg_cuda_attention_tune(2);
    double fl = 4.0 * r.D * pairs;
    char desc[96];
    lg_attn_describe(mask, desc, sizeof desc);
    printf("| %-41s | %6d | %2d/%2d | %8.2f | %8.2f | %8.2f | %8.2f | %8.2f | %8.2f | %5.0f | %5.0f | %5.0f | %5.0f | "
           "%5.0f |\n",
           desc, S, H, KVH, f3, f2, bd, ba, fbd, fba, fl / f / 1e9, 2.5 * fl / bd / 1e9, 2.5 * fl / ba / 1e9,
           3.5 * fl / fbd / 1e9, 3.5 * fl / fba / 1e9);
    fflush(stdout);
    void *bufs[9] = {r.q, r.k, r.v, r.o, r.go, r.dq, r.dk, r.dv, r.lse};
    for (int i = 0; i < 9; i++) cudaCheck(cudaFree(bufs[i]));
}

int main(int argc, char **argv) {
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("bench_attention: no CUDA device\n");
        return 77;
    }
    cudaDeviceProp prop;
    cudaCheck(cudaGetDeviceProperties(&prop, 0));
    printf("bench_attention on %s (%d SMs)\n", prop.name, prop.multiProcessorCount);
    const lg_attn full = {LG_ATTN_FULL, 0, 0, 0, 0, 0};
    const lg_attn sw = {LG_ATTN_SINK_WINDOW, 64, 2048, 0, 0, 0};
    const lg_attn bs = {LG_ATTN_BLOCK_SPARSE, 0, 0, 64, 16, 64};
    const lg_attn sw_small = {LG_ATTN_SINK_WINDOW, 64, 256, 0, 0, 0};
    const lg_attn bs_small = {LG_ATTN_BLOCK_SPARSE, 0, 0, 64, 2, 4};
    int ok = check_small(&full) & check_small(&sw_small) & check_small(&bs_small);
    if (!ok) {
        printf("bench_attention: correctness check failed, not timing\n");
        return 1;
    }
    int sizes[8], ns = 0, sparse_only = 0;
    for (int i = 1; i < argc && ns < 8; i++) {
        if (!strcmp(argv[i], "sparse")) sparse_only = 1;
        else sizes[ns++] = atoi(argv[i]);
    }
    if (!ns) sizes[0] = 8192, sizes[1] = 32768, sizes[2] = 131072, ns = 3;
    printf("ms: fwd with 3 and 2 CTAs/SM; bwd and fwd+bwd deterministic (det) and atomic-dQ (atom), with the faster "
           "fwd.\nTF/s = FlashAttention count on kept pairs (fwd 4*D*pairs, bwd 10*D*pairs).\n");
    printf("| mask | S | H/KVH | fwd3 ms | fwd2 ms | bwd det | bwd atom | f+b det | f+b atom | TF fwd | TF bwd det | "
           "TF bwd atom | TF f+b det | TF f+b atom |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    const lg_attn *masks[3] = {&sw, &bs, &full};
    for (int i = 0; i < ns; i++) {
        int nm = sparse_only ? 2 : 3;
        for (int m = 0; m < nm; m++) bench_one(masks[m], sizes[i], 32, 32);
        if (sizes[i] == 32768)
            for (int m = 0; m < nm; m++) bench_one(masks[m], sizes[i], 64, 8);
    }
    lg_cuda_attention_release();
    return 0;
}
