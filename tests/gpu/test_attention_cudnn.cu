// test_attention_cudnn: cuDNN fused attention (kernels/cuda/attention_cudnn.cu), forward and backward, against a
// float64 dense-mask reference on the same bf16-rounded inputs (the mask from lg_attn_allows, the one layout
// definition). FULL and SINK_WINDOW (the two-call log-sum-exp merge), GQA, odd lengths, head_dim 64 and 128,
// sink/window edges that cross cuDNN's 64/128-key tiles, a window longer than the sequence.
//
// Asserts, per case: ||x - ref|| / ||ref|| < 2e-2 for out, lse, dq, dk, dv, and separately for the rows the
// SINK_WINDOW merge touches (query rows >= window for out/lse/dq, the sink key rows for dk/dv), so that a wrong
// merge of a few rows cannot hide in the total. Why 2e-2: P and dS are rounded to bf16 (unit roundoff 2^-9 =
// 2e-3) before the tensor-core products and every output is rounded to bf16 again; sums over hundreds of keys of
// random sign keep the relative error at a few 1e-3 (measured 3e-3..6e-3); 2e-2 leaves 3-7x. No NaN anywhere:
// outputs are poisoned with 0xFF bytes (NaN in bf16 and fp32) before every call, so an unwritten element fails.
// The backends' out/lse conventions must agree: the native backward runs on cuDNN's forward and the cuDNN
// backward on the native forward, both checked against the reference. Then cuDNN vs the native kernels at
// S=8192 on random data, and the ops dispatch (attention_options): BLOCK_SPARSE with backend=cudnn (no cuDNN
// form: must fall back) and deterministic runs give the native kernels' results bit for bit.
// Exit 77 without a GPU or without a usable cuDNN (the reason is printed).
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cuda_runtime.h>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/attention_cudnn.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/layout.h"
extern "C" {  // ops.h is a C header without C++ guards
#include "kernels/ops.h"
}

static uint64_t g_rng;
static double urand(void) {  // xorshift64*, in (0,1)
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return ((g_rng * 2685821657736338717ULL) >> 11) * (1.0 / 9007199254740992.0) + 1e-300;
}
static double gauss(void) { return sqrt(-2.0 * log(urand())) * cos(6.283185307179586 * urand()); }
static uint16_t to_bf16(float f) {  // round to nearest even
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7FFF + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}
static double from_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static void *xalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "test_attention_cudnn: out of host memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}
static void *dalloc(size_t n) {
    void *p;
    cudaCheck(cudaMalloc(&p, n));
    return p;
}

typedef struct {
    int B, S, H, KVH, D;
    lg_attn mask;
} Case;

// fp64 dense-mask attention forward + backward. q, dO (B,S,H,D); k, v (B,S,KVH,D); lse (B,H,S).
static void dense_reference(const Case *c, const double *q, const double *k, const double *v, const double *dO,
                            double *o, double *lse, double *dq, double *dk, double *dv) {
    const int B = c->B, S = c->S, H = c->H, KVH = c->KVH, D = c->D, G = H / KVH;
    const double scale = 1.0 / sqrt((double)D);
    double *p = (double *)xalloc(sizeof(double) * S);
    memset(dk, 0, sizeof(double) * (size_t)B * S * KVH * D);
    memset(dv, 0, sizeof(double) * (size_t)B * S * KVH * D);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < S; i++) {
                const int kh = h / G;
                const size_t qi = (((size_t)b * S + i) * H + h) * D;
                double mx = -INFINITY;
                for (int j = 0; j < S; j++) {
                    p[j] = -INFINITY;
                    if (!lg_attn_allows(&c->mask, KVH, kh, i, j)) continue;
                    const double *kj = k + (((size_t)b * S + j) * KVH + kh) * D;
                    double s = 0;
                    for (int d = 0; d < D; d++) s += q[qi + d] * kj[d];
                    p[j] = s * scale;
                    mx = p[j] > mx ? p[j] : mx;
                }
                double l = 0;
                for (int j = 0; j < S; j++) l += p[j] == -INFINITY ? 0 : exp(p[j] - mx);
                const double L = l > 0 ? mx + log(l) : -INFINITY;
                lse[((size_t)b * H + h) * S + i] = L;
                for (int d = 0; d < D; d++) o[qi + d] = 0, dq[qi + d] = 0;
                for (int j = 0; j < S; j++) {
                    p[j] = p[j] == -INFINITY ? 0 : exp(p[j] - L);
                    if (p[j] == 0) continue;
                    const double *vj = v + (((size_t)b * S + j) * KVH + kh) * D;
                    for (int d = 0; d < D; d++) o[qi + d] += p[j] * vj[d];
                }
                double delta = 0;  // rowsum(dO * O)
                for (int d = 0; d < D; d++) delta += dO[qi + d] * o[qi + d];
                for (int j = 0; j < S; j++) {
                    if (p[j] == 0) continue;
                    const size_t kv = (((size_t)b * S + j) * KVH + kh) * D;
                    double dp = 0;
                    for (int d = 0; d < D; d++) dp += dO[qi + d] * v[kv + d];
                    const double ds = p[j] * (dp - delta) * scale;
                    for (int d = 0; d < D; d++) {
                        dq[qi + d] += ds * k[kv + d];
                        dk[kv + d] += ds * q[qi + d];
                        dv[kv + d] += p[j] * dO[qi + d];
                    }
                }
            }
    free(p);
}

// Relative Frobenius error over the elements whose sequence row r (0..S-1) satisfies r in [r0, r1); elements
// are laid out (B, S, inner) (inner = heads*D), or (B, heads, S) for lse (lse_layout). NaN propagates (fails).
typedef struct {
    double rel, maxerr;  // maxerr: max |x - ref| / max |ref|
    size_t nan;
} Err;
static Err compare(const float *x, const double *ref, int B, int S, size_t inner, int lse_layout, int r0, int r1) {
    double num = 0, den = 0, emax = 0, rmax = 0;
    size_t nan = 0;
    for (int b = 0; b < B; b++)
        for (size_t a = 0; a < (lse_layout ? inner : 1); a++)
            for (int r = r0; r < r1; r++)
                for (size_t e = 0; e < (lse_layout ? 1 : inner); e++) {
                    size_t i = lse_layout ? ((size_t)b * inner + a) * S + r : ((size_t)b * S + r) * inner + e;
                    if (isnan(x[i])) nan++;
                    double d = x[i] - ref[i];
                    num += d * d, den += ref[i] * ref[i];
                    if (isnan(d)) emax = NAN;
                    else if (fabs(d) > emax) emax = fabs(d);
                    if (fabs(ref[i]) > rmax) rmax = fabs(ref[i]);
                }
    Err r = {sqrt(num / (den > 0 ? den : 1)), emax / (rmax > 0 ? rmax : 1), nan};
    return r;
}

static void down_bf16(float *dst, const void *dev, size_t n) {
    uint16_t *h = (uint16_t *)xalloc(2 * n);
    cudaCheck(cudaMemcpy(h, dev, 2 * n, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < n; i++) dst[i] = (float)from_bf16(h[i]);
    free(h);
}
static void down_f32(float *dst, const void *dev, size_t n) {
    cudaCheck(cudaMemcpy(dst, dev, 4 * n, cudaMemcpyDeviceToHost));
}

typedef struct {
    void *q, *k, *v, *g, *o, *dq, *dk, *dv;
    float *lse;
} Dev;

static const double TOL = 2e-2;

// Checks out/lse (fwd != 0) or dq/dk/dv against the reference; prints one line; returns 1 when all pass.
static int check(const char *what, const Case *c, const Dev *d, int fwd, const double *ro, const double *rl,
                 const double *rdq, const double *rdk, const double *rdv) {
    const int B = c->B, S = c->S, H = c->H, KVH = c->KVH, D = c->D;
    const size_t nq = (size_t)B * S * H * D, nk = (size_t)B * S * KVH * D;
    // the rows the SINK_WINDOW merge touches: queries >= window see sink keys through call 2
    const int sw = c->mask.kind == LG_ATTN_SINK_WINDOW && c->mask.window < S;
    const int w0 = sw ? c->mask.window : 0, sk = sw ? (c->mask.sink < S ? c->mask.sink : S) : S;
    float *f = (float *)xalloc(4 * (nq > nk ? nq : nk));
    Err e[4], es[4];
    const char *nm[4];
    int n = 0, ok = 1;
    if (fwd) {
        down_bf16(f, d->o, nq);
        e[n] = compare(f, ro, B, S, (size_t)H * D, 0, 0, S), es[n] = compare(f, ro, B, S, (size_t)H * D, 0, w0, S);
        nm[n++] = "out";
        down_f32(f, d->lse, (size_t)B * H * S);
        e[n] = compare(f, rl, B, S, H, 1, 0, S), es[n] = compare(f, rl, B, S, H, 1, w0, S);
        nm[n++] = "lse";
    } else {
        down_bf16(f, d->dq, nq);
        e[n] = compare(f, rdq, B, S, (size_t)H * D, 0, 0, S), es[n] = compare(f, rdq, B, S, (size_t)H * D, 0, w0, S);
        nm[n++] = "dq";
        down_bf16(f, d->dk, nk);
        e[n] = compare(f, rdk, B, S, (size_t)KVH * D, 0, 0, S), es[n] = compare(f, rdk, B, S, (size_t)KVH * D, 0, 0, sk);
        nm[n++] = "dk";
        down_bf16(f, d->dv, nk);
        e[n] = compare(f, rdv, B, S, (size_t)KVH * D, 0, 0, S), es[n] = compare(f, rdv, B, S, (size_t)KVH * D, 0, 0, sk);
        nm[n++] = "dv";
    }
    char line[512];
    int at = snprintf(line, sizeof line, "%-22s", what);
    for (int i = 0; i < n; i++) {
        int good = e[i].rel < TOL && es[i].rel < TOL && !e[i].nan;
        ok &= good;
        at += snprintf(line + at, sizeof line - at, " %s %.1e", nm[i], e[i].rel);
        if (sw) at += snprintf(line + at, sizeof line - at, " (merged rows %.1e)", es[i].rel);
        at += snprintf(line + at, sizeof line - at, " max %.1e%s%s", e[i].maxerr, e[i].nan ? " NaN!" : "",
                       good ? "" : " FAIL");
        if (at >= (int)sizeof line) at = (int)sizeof line - 1;
    }
    printf("  %-4s %s\n", ok ? "ok" : "FAIL", line);
    free(f);
    return ok;
}

static void poison_fwd(const Dev *d, size_t nq, size_t nl) {
    cudaCheck(cudaMemset(d->o, 0xFF, 2 * nq));
    cudaCheck(cudaMemset(d->lse, 0xFF, 4 * nl));
}
static void poison_bwd(const Dev *d, size_t nq, size_t nk) {
    cudaCheck(cudaMemset(d->dq, 0xFF, 2 * nq));
    cudaCheck(cudaMemset(d->dk, 0xFF, 2 * nk));
    cudaCheck(cudaMemset(d->dv, 0xFF, 2 * nk));
}

// Random bf16 tensor: host bits, fp64 copy of the rounded values, device copy.
static void *rand_tensor(size_t n, double sd, double *ref) {
    uint16_t *h = (uint16_t *)xalloc(2 * n);
    for (size_t i = 0; i < n; i++) {
        h[i] = to_bf16((float)(sd * gauss()));
        if (ref) ref[i] = from_bf16(h[i]);
    }
    void *d = dalloc(2 * n);
    cudaCheck(cudaMemcpy(d, h, 2 * n, cudaMemcpyHostToDevice));
    free(h);
    return d;
}

static int run_case(const Case *c) {
    const int B = c->B, S = c->S, H = c->H, KVH = c->KVH, D = c->D;
    const size_t nq = (size_t)B * S * H * D, nk = (size_t)B * S * KVH * D, nl = (size_t)B * H * S;
    char desc[96];
    lg_attn_describe(&c->mask, desc, sizeof desc);
    printf("%s B=%d S=%d H=%d KVH=%d D=%d\n", desc, B, S, H, KVH, D);
    double *rq = (double *)xalloc(8 * nq), *rk = (double *)xalloc(8 * nk), *rv = (double *)xalloc(8 * nk);
    double *rg = (double *)xalloc(8 * nq);
    Dev d;
    d.q = rand_tensor(nq, 1.5, rq);  // a bit above unit: some peaked softmax rows
    d.k = rand_tensor(nk, 1.0, rk);
    d.v = rand_tensor(nk, 1.0, rv);
    d.g = rand_tensor(nq, 1.0, rg);
    d.o = dalloc(2 * nq), d.dq = dalloc(2 * nq), d.dk = dalloc(2 * nk), d.dv = dalloc(2 * nk);
    d.lse = (float *)dalloc(4 * nl);
    double *ro = (double *)xalloc(8 * nq), *rl = (double *)xalloc(8 * nl), *rdq = (double *)xalloc(8 * nq);
    double *rdk = (double *)xalloc(8 * nk), *rdv = (double *)xalloc(8 * nk);
    dense_reference(c, rq, rk, rv, rg, ro, rl, rdq, rdk, rdv);
    int ok = 1;

    // cuDNN forward, then cuDNN backward and the native backward on its out/lse
    poison_fwd(&d, nq, nl);
    int st = lg_cuda_attention_cudnn_fwd(d.o, d.lse, d.q, d.k, d.v, B, S, H, KVH, D, &c->mask, 0);
    cudaCheck(cudaDeviceSynchronize());
    if (st != LG_CUDNN_OK) {
        printf("  FAIL cuDNN refused the forward (see the warning above)\n");
        ok = 0;
    } else {
        ok &= check("cudnn fwd", c, &d, 1, ro, rl, NULL, NULL, NULL);
        poison_bwd(&d, nq, nk);
        st = lg_cuda_attention_cudnn_bwd(d.dq, d.dk, d.dv, d.g, d.q, d.k, d.v, d.o, d.lse, B, S, H, KVH, D, &c->mask, 0);
        cudaCheck(cudaDeviceSynchronize());
        if (st != LG_CUDNN_OK) {
            printf("  FAIL cuDNN refused the backward (see the warning above)\n");
            ok = 0;
        } else {
            ok &= check("cudnn bwd", c, &d, 0, NULL, NULL, rdq, rdk, rdv);
        }
        poison_bwd(&d, nq, nk);
        lg_cuda_attention_bwd(d.dq, d.dk, d.dv, d.g, d.q, d.k, d.v, d.o, d.lse, B, S, H, KVH, D, &c->mask, 1, 0);
        cudaCheck(cudaDeviceSynchronize());
        ok &= check("native bwd on cudnn fwd", c, &d, 0, NULL, NULL, rdq, rdk, rdv);
    }
    // native forward, cuDNN backward on its out/lse
    poison_fwd(&d, nq, nl);
    lg_cuda_attention_fwd(d.o, d.lse, d.q, d.k, d.v, B, S, H, KVH, D, &c->mask, 0);
    poison_bwd(&d, nq, nk);
    st = lg_cuda_attention_cudnn_bwd(d.dq, d.dk, d.dv, d.g, d.q, d.k, d.v, d.o, d.lse, B, S, H, KVH, D, &c->mask, 0);
    cudaCheck(cudaDeviceSynchronize());
    if (st != LG_CUDNN_OK) {
        printf("  FAIL cuDNN refused the backward\n");
        ok = 0;
    } else {
        ok &= check("cudnn bwd on native fwd", c, &d, 0, NULL, NULL, rdq, rdk, rdv);
    }

    void *bufs[9] = {d.q, d.k, d.v, d.g, d.o, d.dq, d.dk, d.dv, d.lse};
    for (int i = 0; i < 9; i++) cudaCheck(cudaFree(bufs[i]));
    free(rq), free(rk), free(rv), free(rg), free(ro), free(rl), free(rdq), free(rdk), free(rdv);
    return ok;
}

// cuDNN vs the native kernels on random data at a length where the reference would be slow.
static double rel_diff_dev(const void *a, const void *b, size_t n, int bf16) {
    float *x = (float *)xalloc(4 * n), *y = (float *)xalloc(4 * n);
    if (bf16) down_bf16(x, a, n), down_bf16(y, b, n);
    else down_f32(x, a, n), down_f32(y, b, n);
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)x[i] - y[i];
        num += d * d, den += (double)y[i] * y[i];
    }
    free(x), free(y);
    return sqrt(num / (den > 0 ? den : 1));  // NaN stays NaN
}

static int vs_native(const Case *c) {
    const int B = c->B, S = c->S, H = c->H, KVH = c->KVH, D = c->D;
    const size_t nq = (size_t)B * S * H * D, nk = (size_t)B * S * KVH * D, nl = (size_t)B * H * S;
    Dev a, n;
    a.q = rand_tensor(nq, 1.5, NULL), a.k = rand_tensor(nk, 1.0, NULL), a.v = rand_tensor(nk, 1.0, NULL);
    a.g = rand_tensor(nq, 1.0, NULL);
    n = a;
    a.o = dalloc(2 * nq), a.dq = dalloc(2 * nq), a.dk = dalloc(2 * nk), a.dv = dalloc(2 * nk);
    a.lse = (float *)dalloc(4 * nl);
    n.o = dalloc(2 * nq), n.dq = dalloc(2 * nq), n.dk = dalloc(2 * nk), n.dv = dalloc(2 * nk);
    n.lse = (float *)dalloc(4 * nl);
    poison_fwd(&a, nq, nl), poison_bwd(&a, nq, nk), poison_fwd(&n, nq, nl), poison_bwd(&n, nq, nk);
    int st = lg_cuda_attention_cudnn_fwd(a.o, a.lse, a.q, a.k, a.v, B, S, H, KVH, D, &c->mask, 0);
    if (st == LG_CUDNN_OK)
        st = lg_cuda_attention_cudnn_bwd(a.dq, a.dk, a.dv, a.g, a.q, a.k, a.v, a.o, a.lse, B, S, H, KVH, D, &c->mask, 0);
    lg_cuda_attention_fwd(n.o, n.lse, n.q, n.k, n.v, B, S, H, KVH, D, &c->mask, 0);
    lg_cuda_attention_bwd(n.dq, n.dk, n.dv, n.g, n.q, n.k, n.v, n.o, n.lse, B, S, H, KVH, D, &c->mask, 1, 0);
    cudaCheck(cudaDeviceSynchronize());
    double e[5] = {NAN, NAN, NAN, NAN, NAN};
    if (st == LG_CUDNN_OK) {
        e[0] = rel_diff_dev(a.o, n.o, nq, 1), e[1] = rel_diff_dev(a.lse, n.lse, nl, 0);
        e[2] = rel_diff_dev(a.dq, n.dq, nq, 1), e[3] = rel_diff_dev(a.dk, n.dk, nk, 1);
        e[4] = rel_diff_dev(a.dv, n.dv, nk, 1);
    }
    int ok = st == LG_CUDNN_OK;
    for (int i = 0; i < 5; i++) ok &= e[i] < TOL;
    char desc[96];
    lg_attn_describe(&c->mask, desc, sizeof desc);
    printf("%-4s cudnn vs native %s S=%d H=%d KVH=%d D=%d: rel diff out %.1e lse %.1e dq %.1e dk %.1e dv %.1e\n",
           ok ? "ok" : "FAIL", desc, S, H, KVH, D, e[0], e[1], e[2], e[3], e[4]);
    void *bufs[14] = {a.q, a.k, a.v, a.g, a.o, a.dq, a.dk, a.dv, a.lse, n.o, n.dq, n.dk, n.dv, n.lse};
    for (int i = 0; i < 14; i++) cudaCheck(cudaFree(bufs[i]));
    return ok;
}

// The ops dispatch: which backend attention_options selects; fallbacks give the native kernels' bits.
static int bits_equal(const void *a, const void *b, size_t bytes) {
    uint8_t *x = (uint8_t *)xalloc(bytes), *y = (uint8_t *)xalloc(bytes);
    cudaCheck(cudaMemcpy(x, a, bytes, cudaMemcpyDeviceToHost));
    cudaCheck(cudaMemcpy(y, b, bytes, cudaMemcpyDeviceToHost));
    int eq = !memcmp(x, y, bytes);
    free(x), free(y);
    return eq;
}
static int dispatch(const lg_ops *ops) {
    const int B = 1, S = 300, H = 4, KVH = 2, D = 128;
    const size_t nq = (size_t)B * S * H * D, nk = (size_t)B * S * KVH * D, nl = (size_t)B * H * S;
    const lg_attn full = {LG_ATTN_FULL, 0, 0, 0, 0, 0};
    const lg_attn bs = {LG_ATTN_BLOCK_SPARSE, 0, 0, 64, 2, 3};
    Dev a, n;
    a.q = rand_tensor(nq, 1.5, NULL), a.k = rand_tensor(nk, 1.0, NULL), a.v = rand_tensor(nk, 1.0, NULL);
    a.g = rand_tensor(nq, 1.0, NULL);
    n = a;
    a.o = dalloc(2 * nq), a.dq = dalloc(2 * nq), a.dk = dalloc(2 * nk), a.dv = dalloc(2 * nk);
    a.lse = (float *)dalloc(4 * nl);
    n.o = dalloc(2 * nq), n.dq = dalloc(2 * nq), n.dk = dalloc(2 * nk), n.dv = dalloc(2 * nk);
    n.lse = (float *)dalloc(4 * nl);
    struct {
        int backend, det;
        const lg_attn *mask;
        int expect_cudnn;
        const char *name;
    } t[] = {
        {LG_ATTN_BACKEND_CUDNN, 0, &bs, 0, "backend=cudnn, block_sparse -> native"},
        {LG_ATTN_BACKEND_AUTO, 1, &full, 0, "backend=auto, deterministic -> native"},
        {LG_ATTN_BACKEND_CUDNN, 1, &full, 0, "backend=cudnn, deterministic -> native"},
        {LG_ATTN_BACKEND_NATIVE, 0, &full, 0, "backend=native -> native"},
        {LG_ATTN_BACKEND_CUDNN, 0, &full, 1, "backend=cudnn, full -> cudnn"},
        {LG_ATTN_BACKEND_AUTO, 0, &full, 1, "backend=auto, full -> cudnn"},
    };
    int ok_all = 1;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        ops->attention_options(t[i].backend, t[i].det);
        poison_fwd(&a, nq, nl), poison_bwd(&a, nq, nk), poison_fwd(&n, nq, nl), poison_bwd(&n, nq, nk);
        ops->attention_fwd(a.o, a.lse, a.q, a.k, a.v, B, S, H, KVH, D, t[i].mask);
        ops->attention_bwd(a.dq, a.dk, a.dv, a.g, a.q, a.k, a.v, a.o, a.lse, B, S, H, KVH, D, t[i].mask);
        int st = LG_CUDNN_OK;
        if (t[i].expect_cudnn) {
            st = lg_cuda_attention_cudnn_fwd(n.o, n.lse, n.q, n.k, n.v, B, S, H, KVH, D, t[i].mask, 0);
            st |= lg_cuda_attention_cudnn_bwd(n.dq, n.dk, n.dv, n.g, n.q, n.k, n.v, n.o, n.lse, B, S, H, KVH, D,
                                              t[i].mask, 0);
        } else {
            lg_cuda_attention_fwd(n.o, n.lse, n.q, n.k, n.v, B, S, H, KVH, D, t[i].mask, 0);
            lg_cuda_attention_bwd(n.dq, n.dk, n.dv, n.g, n.q, n.k, n.v, n.o, n.lse, B, S, H, KVH, D, t[i].mask, 1, 0);
        }
        cudaCheck(cudaDeviceSynchronize());
        // the forward of either backend is deterministic: bit for bit. cuDNN's backward accumulates dQ with
        // atomics (order varies): dq within 1e-2 there, dk/dv and everything else bit for bit.
        int fwd_eq = bits_equal(a.o, n.o, 2 * nq) && bits_equal(a.lse, n.lse, 4 * nl);
        int dkv_eq = bits_equal(a.dk, n.dk, 2 * nk) && bits_equal(a.dv, n.dv, 2 * nk);
        int dq_eq = bits_equal(a.dq, n.dq, 2 * nq);
        double dq_rel = rel_diff_dev(a.dq, n.dq, nq, 1);
        int ok = st == LG_CUDNN_OK && fwd_eq && (t[i].expect_cudnn ? dq_rel < 1e-2 : dq_eq && dkv_eq);
        ok_all &= ok;
        printf("%-4s dispatch %-40s fwd bitwise %s, dk/dv bitwise %s, dq bitwise %s (rel %.1e)\n", ok ? "ok" : "FAIL",
               t[i].name, fwd_eq ? "yes" : "NO", dkv_eq ? "yes" : "no", dq_eq ? "yes" : "no", dq_rel);
    }
    // the native and cuDNN forwards must differ somewhere, or the checks above could not tell them apart
    lg_cuda_attention_fwd(n.o, n.lse, n.q, n.k, n.v, B, S, H, KVH, D, &full, 0);
    lg_cuda_attention_cudnn_fwd(a.o, a.lse, a.q, a.k, a.v, B, S, H, KVH, D, &full, 0);
    cudaCheck(cudaDeviceSynchronize());
    int differ = !bits_equal(a.o, n.o, 2 * nq);
    printf("%-4s dispatch: native and cuDNN forwards differ in some bits (so the checks above identify the backend)\n",
           differ ? "ok" : "FAIL");
    ok_all &= differ;
    ops->attention_options(LG_ATTN_BACKEND_NATIVE, 1);
    void *bufs[14] = {a.q, a.k, a.v, a.g, a.o, a.dq, a.dk, a.dv, a.lse, n.o, n.dq, n.dk, n.dv, n.lse};
    for (int i = 0; i < 14; i++) cudaCheck(cudaFree(bufs[i]));
    return ok_all;
}

int main(void) {
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("test_attention_cudnn: no CUDA device, skipped\n");
        return 77;
    }
    const char *why = NULL;
    const lg_ops *ops = lg_ops_cuda(&why);
    if (!ops) {
        printf("test_attention_cudnn: no CUDA backend (%s), skipped\n", why ? why : "?");
        return 77;
    }
    int ver = lg_cuda_attention_cudnn_version();
    printf("test_attention_cudnn: cuDNN %d.%d.%d loaded\n", ver / 10000, ver / 100 % 100, ver % 100);
    if (!lg_cuda_attention_cudnn_usable(&why)) {
        printf("test_attention_cudnn: cuDNN not usable (%s), skipped\n", why);
        return 77;
    }
    const char *seed_env = getenv("LG_SEED");
    uint64_t seed = seed_env ? strtoull(seed_env, NULL, 10) : (uint64_t)time(NULL) * 2654435761u ^ (uint64_t)getpid();
    g_rng = seed ? seed : 1;
    printf("test_attention_cudnn: seed %llu (LG_SEED=%llu repeats this run)\n", (unsigned long long)seed,
           (unsigned long long)seed);

    const lg_attn full = {LG_ATTN_FULL, 0, 0, 0, 0, 0};
    const lg_attn sw_a = {LG_ATTN_SINK_WINDOW, 4, 40, 0, 0, 0};     // small, many merged rows
    const lg_attn sw_b = {LG_ATTN_SINK_WINDOW, 64, 256, 0, 0, 0};   // sink = one 64-key tile
    const lg_attn sw_c = {LG_ATTN_SINK_WINDOW, 5, 100, 0, 0, 0};    // odd everything
    const lg_attn sw_d = {LG_ATTN_SINK_WINDOW, 130, 129, 0, 0, 0};  // sink and window just past 128-key tiles
    const lg_attn sw_e = {LG_ATTN_SINK_WINDOW, 16, 400, 0, 0, 0};   // window longer than the sequence
    const Case cases[] = {
        {2, 200, 8, 2, 128, full}, {1, 1000, 4, 4, 64, full}, {1, 777, 8, 2, 128, full}, {1, 64, 2, 1, 64, full},
        {2, 200, 8, 2, 128, sw_a}, {1, 1000, 4, 1, 64, sw_b}, {1, 777, 4, 2, 128, sw_c}, {1, 1000, 2, 2, 64, sw_d},
        {1, 300, 4, 2, 128, sw_e},
    };
    int fails = 0, ran = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++, ran++) fails += !run_case(&cases[i]);
    const lg_attn sw_big = {LG_ATTN_SINK_WINDOW, 64, 2048, 0, 0, 0};
    const Case big[] = {{1, 8192, 8, 2, 128, full}, {1, 8192, 8, 2, 128, sw_big}};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++, ran++) fails += !vs_native(&big[i]);
    fails += !dispatch(ops);
    ran++;
    size_t ws_full = lg_cuda_attention_cudnn_workspace_bytes(1, 8192, 8, 2, 128, &full);
    const lg_attn bs = {LG_ATTN_BLOCK_SPARSE, 0, 0, 64, 16, 64};
    size_t ws_none = lg_cuda_attention_cudnn_workspace_bytes(1, 8192, 8, 2, 128, &bs);
    int ws_ok = ws_full >= (size_t)8192 * 8 * 128 * 4 && ws_none == 0;  // at least dQ_accum
    printf("%-4s workspace_bytes full 8192x8/2x128 = %zu, block_sparse = %zu\n", ws_ok ? "ok" : "FAIL", ws_full, ws_none);
    fails += !ws_ok;
    ran++;
    ops->release();  // the ops table's caches, the native and cuDNN attention caches: memcheck sees no leak
    printf("test_attention_cudnn: %d of %d checks failed (cuDNN %d)\n", fails, ran, ver);
    return fails ? 1 : 0;
}
