// test_ops_cuda: every op of the CUDA backend against the CPU backend (lg_ops_cpu(), the fp32 reference that
// test_ops checks against fp64 loops and finite differences), on fresh random inputs. The CPU gets the
// bf16-rounded copies of the inputs the GPU gets, so only the arithmetic differs.
//
// Measure: rel = ||gpu - cpu|| / ||cpu|| over the whole tensor (NaN fails). Budgets:
//   - bf16 outputs (activations, dinp, dlogits): each element is rounded once to bf16 (unit roundoff
//     2^-9 = 2e-3; the rms of a uniform relative rounding error is ~1.1e-3), plus fp32 summation-order noise:
//     budget 1e-2. Attention (P and dS rounded to bf16 inside the tensor-core kernels): 2e-2.
//   - fp32 reductions over bf16-exact inputs (dw of matmul, rmsnorm and embedding; rstd; lse): only the order
//     of fp32 additions differs (~1e-6): budget 1e-3 (1e-5 for embedding and rstd, plain sums).
//   - optimizer ops on fp32 (adamw, scale, sumsq, cast): exact to 1e-6 (adamw, scale, cast are bit-exact).
// Every output is poisoned with NaN before the op, so an element the op fails to write fails the check;
// "+=" outputs are pre-filled with random values instead, which asserts the accumulate semantics.
// Also: the cross-entropy over T x V > 2^31 logits (64-bit indexing), a bad-target error message (re-run of
// this program in a child process), determinism of embedding_bwd and sumsq, and per-op timings (--bench).
// Usage: gpu_test_ops_cuda [--small] [--bench]   (--small: small sizes, no 4 GiB test; for compute-sanitizer)
// Exit 77 when there is no CUDA device.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/ops.h"
#include "trainer/util.h"

static const lg_ops *G, *C;
static int fails = 0, small = 0;
static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

static double urand(void) {  // splitmix64 -> [0,1)
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
}
static double randn(void) { return sqrt(-2.0 * log(1.0 - urand())) * cos(6.283185307179586 * urand()); }

static float bf16r(float f) {  // round to bf16 (nearest even) and back, as the GPU's conversions
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x7fffffu)) return f;  // NaN stays NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&f, &u, 4);
    return f;
}
static float *hrandn(int64_t n, double scale, int round) {
    float *p = lg_malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        float v = (float)(randn() * scale);
        p[i] = round ? bf16r(v) : v;
    }
    return p;
}
static float *hdup(const float *x, int64_t n) {
    float *p = lg_malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    memcpy(p, x, (size_t)n * sizeof(float));
    return p;
}
// device copy of a host array as bf16 (es 2) or fp32 (es 4)
static void *dev(const float *h, int64_t n, size_t es) {
    void *d = G->alloc((size_t)n * es);
    G->upload(d, h, (size_t)n, es);
    return d;
}
static void *dev_poison(int64_t n, size_t es) {
    float *nan = lg_malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) nan[i] = NAN;
    void *d = dev(nan, n, es);
    free(nan);
    return d;
}
static int32_t *dev_i32(const int32_t *h, int64_t n) {
    int32_t *d = G->alloc((size_t)n * 4);
    G->upload_i32(d, h, (size_t)n);
    return d;
}
static float *host(const void *d, int64_t n, size_t es) {
    float *h = lg_malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    G->download(h, d, (size_t)n, es);
    return h;
}

static double relerr(const float *a, const float *b, int64_t n) {
    double e = 0, r = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        e += d * d;
        r += (double)b[i] * b[i];
    }
    return r > 0 ? sqrt(e / r) : sqrt(e);
}
static void check(const char *what, double rel, double tol) {
    int ok = rel <= tol;  // NaN fails
    printf("%-4s %-44s rel %.3e  (budget %.0e)\n", ok ? "ok" : "FAIL", what, rel, tol);
    if (!ok) fails++;
}
static void checkv(const char *what, const void *d, const float *ref, int64_t n, size_t es, double tol) {
    float *h = host(d, n, es);
    check(what, relerr(h, ref, n), tol);
    free(h);
}

// ---------------------------------------------------------------------------------------------------------
static void test_embedding(int64_t T, int Cd, int V) {
    char name[96];
    int32_t *tok = lg_malloc(sizeof(int32_t) * (size_t)T);
    for (int64_t t = 0; t < T; t++) tok[t] = urand() < 0.3 ? 3 % V : (int32_t)(urand() * V);  // one long run
    float *wte = hrandn((int64_t)V * Cd, 1.0, 1), *dout = hrandn(T * Cd, 1.0, 1), *dw0 = hrandn((int64_t)V * Cd, 1.0, 0);
    int32_t *dtok = dev_i32(tok, T);
    void *dwte = dev(wte, (int64_t)V * Cd, 2), *dout_d = dev(dout, T * Cd, 2), *out = dev_poison(T * Cd, 2);
    G->embedding_fwd(out, dtok, dwte, T, Cd);
    float *ref = lg_malloc(sizeof(float) * (size_t)(T * Cd));
    C->embedding_fwd(ref, tok, wte, T, Cd);
    snprintf(name, sizeof name, "embedding_fwd T=%lld C=%d (exact)", (long long)T, Cd);
    checkv(name, out, ref, T * Cd, 2, 0.0);

    float *dwd = dev(dw0, (int64_t)V * Cd, 4), *dwd2 = dev(dw0, (int64_t)V * Cd, 4);
    G->embedding_bwd(dwd, dout_d, dtok, T, Cd);
    G->embedding_bwd(dwd2, dout_d, dtok, T, Cd);
    float *dref = hdup(dw0, (int64_t)V * Cd);
    C->embedding_bwd(dref, dout, tok, T, Cd);
    snprintf(name, sizeof name, "embedding_bwd dwte T=%lld C=%d", (long long)T, Cd);
    float *g1 = host(dwd, (int64_t)V * Cd, 4), *g2 = host(dwd2, (int64_t)V * Cd, 4);
    check(name, relerr(g1, dref, (int64_t)V * Cd), 1e-5);
    // Both runs started from dw0: bit-identical sums prove the run order is fixed.
    for (int64_t i = 0; i < (int64_t)V * Cd; i++) g1[i] -= dw0[i], g2[i] -= dw0[i];
    int same = !memcmp(g1, g2, sizeof(float) * (size_t)V * Cd);
    printf("%-4s embedding_bwd deterministic (two runs bit-identical)\n", same ? "ok" : "FAIL");
    fails += !same;
    G->free(dtok), G->free(dwte), G->free(dout_d), G->free(out), G->free(dwd), G->free(dwd2);
    free(tok), free(wte), free(dout), free(dw0), free(ref), free(dref), free(g1), free(g2);
}

static void test_rmsnorm(int64_t T, int Cd) {
    char name[96];
    float *x = lg_malloc(sizeof(float) * (size_t)(T * Cd));
    for (int64_t t = 0; t < T; t++) {
        double s = 0.1 + 3 * urand();  // rows of different scales
        for (int c = 0; c < Cd; c++) x[t * Cd + c] = bf16r((float)(randn() * s));
    }
    float *w = lg_malloc(sizeof(float) * (size_t)Cd);
    for (int c = 0; c < Cd; c++) w[c] = bf16r((float)(1.0 + 0.3 * randn()));
    void *xd = dev(x, T * Cd, 2), *wd = dev(w, Cd, 2), *out = dev_poison(T * Cd, 2);
    float *rstd = dev_poison(T, 4);
    G->rmsnorm_fwd(out, rstd, xd, wd, T, Cd, 1e-5f);
    float *ref = lg_malloc(sizeof(float) * (size_t)(T * Cd)), *rref = lg_malloc(sizeof(float) * (size_t)T);
    C->rmsnorm_fwd(ref, rref, x, w, T, Cd, 1e-5f);
    snprintf(name, sizeof name, "rmsnorm_fwd out T=%lld C=%d", (long long)T, Cd);
    checkv(name, out, ref, T * Cd, 2, 1e-2);
    snprintf(name, sizeof name, "rmsnorm_fwd rstd T=%lld C=%d", (long long)T, Cd);
    checkv(name, rstd, rref, T, 4, 1e-5);

    float *dy = hrandn(T * Cd, 1.0, 1), *dx0 = hrandn(T * Cd, 1.0, 1), *dw0 = hrandn(Cd, 1.0, 0);
    void *dyd = dev(dy, T * Cd, 2), *dxd = dev(dx0, T * Cd, 2);
    float *dwd = dev(dw0, Cd, 4);
    G->rmsnorm_bwd(dxd, dwd, dyd, xd, wd, rstd, T, Cd);
    C->rmsnorm_bwd(dx0, dw0, dy, x, w, rref, T, Cd);
    snprintf(name, sizeof name, "rmsnorm_bwd dinp(+=) T=%lld C=%d", (long long)T, Cd);
    checkv(name, dxd, dx0, T * Cd, 2, 1e-2);
    snprintf(name, sizeof name, "rmsnorm_bwd dw(+=) T=%lld C=%d", (long long)T, Cd);
    checkv(name, dwd, dw0, Cd, 4, 1e-3);
    G->free(xd), G->free(wd), G->free(out), G->free(rstd), G->free(dyd), G->free(dxd), G->free(dwd);
    free(x), free(w), free(ref), free(rref), free(dy), free(dx0), free(dw0);
}

static void test_matmul(int64_t T, int Cd, int OC) {
    char name[96];
    float *x = hrandn(T * Cd, 1.0, 1), *w = hrandn((int64_t)OC * Cd, 1.0 / sqrt(Cd), 1);
    void *xd = dev(x, T * Cd, 2), *wd = dev(w, (int64_t)OC * Cd, 2), *out = dev_poison(T * OC, 2);
    G->matmul_fwd(out, xd, wd, T, Cd, OC);
    float *ref = lg_malloc(sizeof(float) * (size_t)(T * OC));
    C->matmul_fwd(ref, x, w, T, Cd, OC);
    snprintf(name, sizeof name, "matmul_fwd T=%lld C=%d OC=%d", (long long)T, Cd, OC);
    checkv(name, out, ref, T * OC, 2, 1e-2);

    float *dy = hrandn(T * OC, 1.0, 1), *dw0 = hrandn((int64_t)OC * Cd, 1.0, 0), *dx0 = hrandn(T * Cd, 1.0, 1);
    void *dyd = dev(dy, T * OC, 2), *dxd = dev_poison(T * Cd, 2);
    float *dwd = dev(dw0, (int64_t)OC * Cd, 4);
    G->matmul_bwd(dxd, dwd, dyd, xd, wd, T, Cd, OC, 0);
    float *dxr = lg_malloc(sizeof(float) * (size_t)(T * Cd));
    C->matmul_bwd(dxr, dw0, dy, x, w, T, Cd, OC, 0);
    snprintf(name, sizeof name, "matmul_bwd dinp(=) T=%lld C=%d OC=%d", (long long)T, Cd, OC);
    checkv(name, dxd, dxr, T * Cd, 2, 1e-2);
    snprintf(name, sizeof name, "matmul_bwd dw(+=) T=%lld C=%d OC=%d", (long long)T, Cd, OC);
    checkv(name, dwd, dw0, (int64_t)OC * Cd, 4, 1e-3);
    // accumulate_dinp, no dw
    G->upload(dxd, dx0, (size_t)(T * Cd), 2);
    G->matmul_bwd(dxd, NULL, dyd, xd, wd, T, Cd, OC, 1);
    C->matmul_bwd(dx0, NULL, dy, x, w, T, Cd, OC, 1);
    snprintf(name, sizeof name, "matmul_bwd dinp(+=) T=%lld C=%d OC=%d", (long long)T, Cd, OC);
    checkv(name, dxd, dx0, T * Cd, 2, 1e-2);
    G->free(xd), G->free(wd), G->free(out), G->free(dyd), G->free(dxd), G->free(dwd);
    free(x), free(w), free(ref), free(dy), free(dw0), free(dx0), free(dxr);
}

static void test_rope(int B, int S, int H, int D) {
    char name[96];
    int64_t T = (int64_t)B * S, n = T * H * D;
    int half = D / 2;
    float *cs = lg_malloc(sizeof(float) * (size_t)S * half), *sn = lg_malloc(sizeof(float) * (size_t)S * half);
    for (int p = 0; p < S; p++)
        for (int i = 0; i < half; i++) {
            double a = p * pow(10000.0, -2.0 * i / D) + urand();
            cs[p * half + i] = (float)cos(a);
            sn[p * half + i] = (float)sin(a);
        }
    float *csd = dev(cs, (int64_t)S * half, 4), *snd = dev(sn, (int64_t)S * half, 4);
    for (int bwd = 0; bwd < 2; bwd++) {
        float *x = hrandn(n, 1.0, 1);
        void *xd = dev(x, n, 2);
        if (bwd) G->rope_bwd(xd, csd, snd, T, S, H, D), C->rope_bwd(x, cs, sn, T, S, H, D);
        else G->rope_fwd(xd, csd, snd, T, S, H, D), C->rope_fwd(x, cs, sn, T, S, H, D);
        snprintf(name, sizeof name, "rope_%s B=%d S=%d H=%d D=%d", bwd ? "bwd" : "fwd", B, S, H, D);
        checkv(name, xd, x, n, 2, 1e-2);
        G->free(xd);
        free(x);
    }
    G->free(csd), G->free(snd);
    free(cs), free(sn);
}

static void test_attention(int B, int S, int H, int KVH, int D, lg_attn mask) {
    char name[128], desc[64];
    lg_attn_describe(&mask, desc, sizeof desc);
    int64_t nq = (int64_t)B * S * H * D, nk = (int64_t)B * S * KVH * D, nl = (int64_t)B * H * S;
    float *q = hrandn(nq, 1.0, 1), *k = hrandn(nk, 1.0, 1), *v = hrandn(nk, 1.0, 1), *dout = hrandn(nq, 1.0, 1);
    void *qd = dev(q, nq, 2), *kd = dev(k, nk, 2), *vd = dev(v, nk, 2), *dod = dev(dout, nq, 2);
    void *od = dev_poison(nq, 2);
    float *ld = dev_poison(nl, 4);
    G->attention_fwd(od, ld, qd, kd, vd, B, S, H, KVH, D, &mask);
    float *o = lg_malloc(sizeof(float) * (size_t)nq), *l = lg_malloc(sizeof(float) * (size_t)nl);
    C->attention_fwd(o, l, q, k, v, B, S, H, KVH, D, &mask);
    snprintf(name, sizeof name, "attention_fwd out %s H=%d KVH=%d D=%d", desc, H, KVH, D);
    checkv(name, od, o, nq, 2, 2e-2);
    snprintf(name, sizeof name, "attention_fwd lse %s", desc);
    checkv(name, ld, l, nl, 4, 1e-3);
    void *dqd = dev_poison(nq, 2), *dkd = dev_poison(nk, 2), *dvd = dev_poison(nk, 2);
    G->attention_bwd(dqd, dkd, dvd, dod, qd, kd, vd, od, ld, B, S, H, KVH, D, &mask);
    float *dq = lg_malloc(sizeof(float) * (size_t)nq), *dk = lg_malloc(sizeof(float) * (size_t)nk),
          *dv = lg_malloc(sizeof(float) * (size_t)nk);
    C->attention_bwd(dq, dk, dv, dout, q, k, v, o, l, B, S, H, KVH, D, &mask);
    snprintf(name, sizeof name, "attention_bwd dq %s", desc);
    checkv(name, dqd, dq, nq, 2, 2e-2);
    snprintf(name, sizeof name, "attention_bwd dk %s", desc);
    checkv(name, dkd, dk, nk, 2, 2e-2);
    snprintf(name, sizeof name, "attention_bwd dv %s", desc);
    checkv(name, dvd, dv, nk, 2, 2e-2);
    G->free(qd), G->free(kd), G->free(vd), G->free(dod), G->free(od), G->free(ld), G->free(dqd), G->free(dkd),
        G->free(dvd);
    free(q), free(k), free(v), free(dout), free(o), free(l), free(dq), free(dk), free(dv);
}

static void test_swiglu(int64_t T, int F) {
    char name[96];
    int64_t n = T * F;
    float *g = hrandn(n, 3.0, 1), *u = hrandn(n, 1.0, 1), *dy = hrandn(n, 1.0, 1);
    void *gd = dev(g, n, 2), *ud = dev(u, n, 2), *dyd = dev(dy, n, 2), *od = dev_poison(n, 2);
    void *dgd = dev_poison(n, 2), *dud = dev_poison(n, 2);
    float *o = lg_malloc(sizeof(float) * (size_t)n), *dg = lg_malloc(sizeof(float) * (size_t)n),
          *du = lg_malloc(sizeof(float) * (size_t)n);
    G->swiglu_fwd(od, gd, ud, T, F);
    C->swiglu_fwd(o, g, u, T, F);
    G->swiglu_bwd(dgd, dud, dyd, gd, ud, T, F);
    C->swiglu_bwd(dg, du, dy, g, u, T, F);
    snprintf(name, sizeof name, "swiglu_fwd T=%lld F=%d", (long long)T, F);
    checkv(name, od, o, n, 2, 1e-2);
    snprintf(name, sizeof name, "swiglu_bwd dgate T=%lld F=%d", (long long)T, F);
    checkv(name, dgd, dg, n, 2, 1e-2);
    snprintf(name, sizeof name, "swiglu_bwd dup T=%lld F=%d", (long long)T, F);
    checkv(name, dud, du, n, 2, 1e-2);
    G->free(gd), G->free(ud), G->free(dyd), G->free(od), G->free(dgd), G->free(dud);
    free(g), free(u), free(dy), free(o), free(dg), free(du);
}

static void test_add(int64_t n) {
    char name[96];
    float *x = hrandn(n, 1.0, 1), *y = hrandn(n, 1.0, 1);
    void *xd = dev(x, n, 2), *yd = dev(y, n, 2);
    G->add_inplace(xd, yd, n);
    C->add_inplace(x, y, n);
    snprintf(name, sizeof name, "add_inplace n=%lld", (long long)n);
    checkv(name, xd, x, n, 2, 1e-2);
    G->free(xd), G->free(yd);
    free(x), free(y);
}

static void test_ce(int64_t T, int V) {
    char name[96];
    float *lg = hrandn(T * V, 2.0, 1);
    int32_t *tg = lg_malloc(sizeof(int32_t) * (size_t)T);
    for (int64_t t = 0; t < T; t++) tg[t] = urand() < 0.1 ? -1 : (int32_t)(urand() * V);
    void *ld = dev(lg, T * V, 2);
    int32_t *tgd = dev_i32(tg, T);
    float dscale = (float)(1.0 / T);
    double lgpu = G->cross_entropy(ld, tgd, T, V, dscale);
    double lcpu = C->cross_entropy(lg, tg, T, V, dscale);
    snprintf(name, sizeof name, "cross_entropy loss T=%lld V=%d", (long long)T, V);
    check(name, fabs(lgpu - lcpu) / fabs(lcpu), 1e-5);
    snprintf(name, sizeof name, "cross_entropy dlogits T=%lld V=%d", (long long)T, V);
    checkv(name, ld, lg, T * V, 2, 1e-2);
    G->free(ld), G->free(tgd);
    free(lg), free(tg);
}

// T x V = 67109 x 32000 = 2,147,488,000 > 2^31 logits (4.3 GB bf16); the last row straddles element 2^31.
// All rows are zero except the last (random): each zero row costs exactly log(V) (the fp32 sum of V ones is
// exact) and its gradient is dscale (1/V - onehot); the last row is checked against the CPU.
static void test_ce_big(void) {
    const int64_t T = 67109;
    const int V = 32000;
    void *ld = G->alloc((size_t)(T * V) * 2);
    G->zero(ld, (size_t)(T * V) * 2);
    float *last = hrandn(V, 2.0, 1);
    void *lastd = (char *)ld + (size_t)((T - 1) * V) * 2;
    G->upload(lastd, last, (size_t)V, 2);
    int32_t *tg = lg_malloc(sizeof(int32_t) * (size_t)T);
    for (int64_t t = 0; t < T; t++) tg[t] = (int32_t)((t * 7919) % V);
    int32_t *tgd = dev_i32(tg, T);
    float dscale = 0.5f;
    double l = G->cross_entropy(ld, tgd, T, V, dscale);
    double lref = C->cross_entropy(last, tg + T - 1, 1, V, dscale) + (double)(T - 1) * log((double)V);
    check("cross_entropy loss T*V > 2^31", fabs(l - lref) / lref, 1e-9);
    checkv("cross_entropy dlogits of the row at 2^31", lastd, last, V, 2, 1e-2);
    float *row = host((char *)ld + (size_t)((T - 2) * V) * 2, V, 2), *rr = lg_malloc(sizeof(float) * V);
    for (int j = 0; j < V; j++) rr[j] = dscale / V - (j == tg[T - 2] ? dscale : 0.0f);
    check("cross_entropy dlogits of a zero row near 2^31", relerr(row, rr, V), 1e-2);
    G->free(ld), G->free(tgd);
    free(last), free(tg), free(row), free(rr);
}

static void test_optim(int64_t n) {
    char name[96];
    float *p = hrandn(n, 1.0, 0), *g = hrandn(n, 1e-2, 0), *m = hrandn(n, 1e-3, 0), *v = lg_malloc(sizeof(float) * n);
    for (int64_t i = 0; i < n; i++) v[i] = (float)(1e-5 * urand());
    float *pd = dev(p, n, 4), *gd = dev(g, n, 4), *md = dev(m, n, 4), *vd = dev(v, n, 4);
    for (int t = 1; t <= 3; t++) {
        G->adamw(pd, gd, md, vd, n, 1e-3f, 0.9f, 0.95f, 1e-8f, t == 2 ? 0.0f : 0.1f, t);
        C->adamw(p, g, m, v, n, 1e-3f, 0.9f, 0.95f, 1e-8f, t == 2 ? 0.0f : 0.1f, t);
    }
    float *ph = host(pd, n, 4), *mh = host(md, n, 4), *vh = host(vd, n, 4);
    int64_t diff = 0;
    for (int64_t i = 0; i < n; i++) diff += memcmp(&ph[i], &p[i], 4) != 0 || mh[i] != m[i] || vh[i] != v[i];
    snprintf(name, sizeof name, "adamw x3 param n=%lld (%lld elements differ)", (long long)n, (long long)diff);
    check(name, relerr(ph, p, n), 1e-6);
    check("adamw x3 m, v", relerr(mh, m, n) + relerr(vh, v, n), 1e-6);

    double s1 = G->sumsq(gd, n), s2 = G->sumsq(gd, n), sc = C->sumsq(g, n);
    snprintf(name, sizeof name, "sumsq n=%lld", (long long)n);
    check(name, fabs(s1 - sc) / sc, 1e-12);
    printf("%-4s sumsq deterministic (two runs bit-identical)\n", s1 == s2 ? "ok" : "FAIL");
    fails += s1 != s2;
    double s3 = G->sumsq((const float *)gd + 1, n - 1), s3c = C->sumsq(g + 1, n - 1);  // unaligned start
    check("sumsq unaligned", fabs(s3 - s3c) / s3c, 1e-12);

    G->scale(gd, n, 0.37f);
    C->scale(g, n, 0.37f);
    float *gh = host(gd, n, 4);
    check("scale (exact)", relerr(gh, g, n), 0.0);

    // cast: random values plus halfway cases (ties to even), tiny and huge values
    float *src = hrandn(n, 1.0, 0);
    uint32_t special[] = {0x3f808000u, 0x3f818000u, 0xbf808000u, 0x00000001u, 0x7f7fffffu, 0xff7fffffu,
                          0x3f80ffffu, 0x80000000u};
    for (size_t i = 0; i < sizeof special / 4 && (int64_t)i < n; i++) memcpy(&src[i], &special[i], 4);
    float *srcd = dev(src, n, 4);
    void *wd = dev_poison(n, 2);
    G->cast_params(wd, srcd, n);
    float *wh = host(wd, n, 2);
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        float r = bf16r(src[i]);
        bad += memcmp(&wh[i], &r, 4) != 0;
    }
    snprintf(name, sizeof name, "cast_params fp32->bf16 n=%lld: %lld differ from RNE", (long long)n, (long long)bad);
    check(name, (double)bad, 0.0);
    G->free(pd), G->free(gd), G->free(md), G->free(vd), G->free(srcd), G->free(wd);
    free(p), free(g), free(m), free(v), free(ph), free(mh), free(vh), free(gh), free(src), free(wh);
}

// upload/download: bf16 conversion through the staging buffer (n spans several 8M-element chunks when big)
static void test_transfer(int64_t n) {
    float *x = hrandn(n, 10.0, 0);
    void *d2 = G->alloc((size_t)n * 2);
    float *d4 = G->alloc((size_t)n * 4);
    G->upload(d2, x, (size_t)n, 2);
    G->upload(d4, x, (size_t)n, 4);
    float *h2 = host(d2, n, 2), *h4 = host(d4, n, 4);
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        float r = bf16r(x[i]);
        bad += memcmp(&h2[i], &r, 4) != 0 || memcmp(&h4[i], &x[i], 4) != 0;
    }
    char name[96];
    snprintf(name, sizeof name, "upload/download bf16+fp32 n=%lld: %lld differ", (long long)n, (long long)bad);
    check(name, (double)bad, 0.0);
    G->free(d2), G->free(d4);
    free(x), free(h2), free(h4);
}

// The child half of the bad-target test: dies in cross_entropy.
static int bad_target_child(void) {
    const int V = 40, T = 3;
    float *lg = hrandn(T * V, 1.0, 1);
    int32_t tg[3] = {1, 45, 2};
    void *ld = dev(lg, T * V, 2);
    int32_t *tgd = dev_i32(tg, T);
    G->cross_entropy(ld, tgd, T, V, 1.0f);
    return 0;  // not reached
}
static void test_bad_target(const char *argv0) {
    char out[256], cmd[1024];
    snprintf(out, sizeof out, "/tmp/test_ops_cuda_bad.%d.txt", (int)getpid());
    snprintf(cmd, sizeof cmd, "'%s' --bad-target-child 2>'%s'", argv0, out);
    int rc = system(cmd);
    char *msg = lg_file_exists(out) ? lg_read_file(out, NULL) : lg_strdup("");
    int ok = rc != 0 && strstr(msg, "cross_entropy: the target at position 1") &&
             strstr(msg, "outside the vocabulary [0, 40)");
    printf("%-4s bad target dies with the position and the vocabulary (%s)\n", ok ? "ok" : "FAIL",
           msg[0] ? strtok(msg, "\n") : "no message");
    fails += !ok;
    remove(out);
    free(msg);
}

// --- timings (--bench): 7B-wide shapes, median-free mean over reps after a warm-up --------------------
static double time_op(void (*fn)(void *), void *ctx, int reps) {
    fn(ctx);
    G->sync();
    double t0 = lg_now_seconds();
    for (int i = 0; i < reps; i++) fn(ctx);
    G->sync();
    return (lg_now_seconds() - t0) / reps;
}
typedef struct {
    void *a, *b, *c, *d;
    float *f1, *f2;
    int32_t *tok;
    int64_t T;
    int C, OC, V;
} bctx;
static void b_rms_fwd(void *p) { bctx *x = p; G->rmsnorm_fwd(x->a, x->f1, x->b, x->c, x->T, x->C, 1e-5f); }
static void b_rms_bwd(void *p) { bctx *x = p; G->rmsnorm_bwd(x->a, x->f2, x->d, x->b, x->c, x->f1, x->T, x->C); }
static void b_mm_fwd(void *p) { bctx *x = p; G->matmul_fwd(x->a, x->b, x->c, x->T, x->C, x->OC); }
static void b_mm_bwd(void *p) { bctx *x = p; G->matmul_bwd(x->b, x->f2, x->a, x->d, x->c, x->T, x->C, x->OC, 0); }
static void b_swiglu(void *p) { bctx *x = p; G->swiglu_fwd(x->a, x->b, x->c, x->T, x->C); }
static void b_swiglu_bwd(void *p) { bctx *x = p; G->swiglu_bwd(x->a, x->d, x->a, x->b, x->c, x->T, x->C); }
static void b_rope(void *p) { bctx *x = p; G->rope_fwd(x->a, x->f1, x->f2, x->T, (int)x->T, 32, 128); }
static void b_emb_bwd(void *p) { bctx *x = p; G->embedding_bwd(x->f1, x->a, x->tok, x->T, x->C); }
static void b_ce(void *p) { bctx *x = p; G->cross_entropy(x->a, x->tok, x->T, x->V, 1e-4f); }

static void bench(void) {
    printf("--- timings (one GPU; bytes = each input read once + each output written once) ---\n");
    const int64_t T = 16384;
    const int Cd = 4096, F = 11008, V = 32000;
    bctx x = {0};
    x.T = T, x.C = Cd;
    float *h = hrandn(T * F, 1.0, 0);
    x.a = dev(h, T * F, 2), x.b = dev(h, T * F, 2), x.c = dev(h, T * F, 2), x.d = dev(h, T * F, 2);
    x.f1 = dev(h, 1 << 24, 4), x.f2 = dev(h, (int64_t)F * Cd, 4);
    double s = time_op(b_rms_fwd, &x, 20);
    printf("rmsnorm_fwd  T=%lld C=%d: %.3f ms, %.0f GB/s\n", (long long)T, Cd, s * 1e3, 4.0 * T * Cd / s / 1e9);
    s = time_op(b_rms_bwd, &x, 20);
    printf("rmsnorm_bwd  T=%lld C=%d: %.3f ms, %.0f GB/s\n", (long long)T, Cd, s * 1e3, 8.0 * T * Cd / s / 1e9);
    x.OC = F;
    s = time_op(b_mm_fwd, &x, 10);
    printf("matmul_fwd   T=%lld C=%d OC=%d: %.3f ms, %.0f TFLOP/s\n", (long long)T, Cd, F, s * 1e3,
           2.0 * T * Cd * F / s / 1e12);
    s = time_op(b_mm_bwd, &x, 10);
    printf("matmul_bwd   T=%lld C=%d OC=%d: %.3f ms, %.0f TFLOP/s (dinp + fp32 dw)\n", (long long)T, Cd, F, s * 1e3,
           4.0 * T * Cd * F / s / 1e12);
    x.C = F;
    s = time_op(b_swiglu, &x, 20);
    printf("swiglu_fwd   T=%lld F=%d: %.3f ms, %.0f GB/s\n", (long long)T, F, s * 1e3, 6.0 * T * F / s / 1e9);
    s = time_op(b_swiglu_bwd, &x, 20);
    printf("swiglu_bwd   T=%lld F=%d: %.3f ms, %.0f GB/s\n", (long long)T, F, s * 1e3, 10.0 * T * F / s / 1e9);
    x.T = 8192;  // rope: (8192, 32, 128) with an (8192, 64) table
    s = time_op(b_rope, &x, 20);
    printf("rope_fwd     T=8192 H=32 D=128: %.3f ms, %.0f GB/s\n", s * 1e3, 4.0 * 8192 * 4096 / s / 1e9);
    x.T = 131072, x.C = 4096;  // embedding_bwd at 128K tokens, realistic skew: 5% one token
    int32_t *tok = lg_malloc(sizeof(int32_t) * 131072);
    for (int i = 0; i < 131072; i++) tok[i] = urand() < 0.05 ? 13 : (int32_t)(urand() * 4000);
    x.tok = dev_i32(tok, 131072);
    G->free(x.a);
    x.a = G->alloc(131072LL * 4096 * 2);  // (131072, 4096) dout: random in the first T*F elements, zeros after
    G->zero(x.a, 131072LL * 4096 * 2);
    G->upload(x.a, h, (size_t)(T * F), 2);
    G->free(x.f1);
    x.f1 = G->alloc(4000LL * 4096 * 4);
    G->zero(x.f1, 4000LL * 4096 * 4);
    s = time_op(b_emb_bwd, &x, 5);
    printf("embedding_bwd T=131072 C=4096: %.3f ms (sort + per-run sums)\n", s * 1e3);
    for (int i = 0; i < 8192; i++) tok[i] = (int32_t)(urand() * V);
    G->upload_i32(x.tok, tok, 8192);
    x.T = 8192, x.V = V;
    s = time_op(b_ce, &x, 10);
    printf("cross_entropy T=8192 V=%d: %.3f ms, %.0f GB/s (read twice, write once)\n", V, s * 1e3,
           6.0 * 8192 * V / s / 1e9);
    G->free(x.a), G->free(x.b), G->free(x.c), G->free(x.d), G->free(x.f1), G->free(x.f2), G->free(x.tok);
    free(h), free(tok);
}

int main(int argc, char **argv) {
    lg_set_progname("test_ops_cuda");
    int do_bench = 0, child = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--small")) small = 1;
        else if (!strcmp(argv[i], "--bench")) do_bench = 1;
        else if (!strcmp(argv[i], "--bad-target-child")) child = 1;
        else lg_die("usage: %s [--small] [--bench]", argv[0]);
    }
    const char *why = NULL;
    G = lg_ops_cuda(&why);
    if (!G) {
        printf("SKIP: %s\n", why);
        return 77;
    }
    C = lg_ops_cpu();
    if (child) return bad_target_child();

    test_embedding(small ? 200 : 1500, 96, 50);
    test_embedding(37, 36, 11);  // C not a multiple of 8: scalar paths
    test_embedding(small ? 3000 : 20000, 64, 500);  // > 2048 keys: the sort's global passes; runs > 128 entries
    test_rmsnorm(small ? 33 : 300, 4096);
    test_rmsnorm(17, 36);
    test_rmsnorm(5, 8192);
    test_matmul(257, 192, 320);
    test_matmul(small ? 64 : 1000, 512, 1024);
    test_matmul(19, 36, 20);  // leading dimensions that are not multiples of 8
    test_rope(2, 64, 3, 64);
    test_rope(2, 17, 2, 20);  // D/2 = 10: scalar path
    test_rope(1, 33, 4, 128);
    lg_attn full = {LG_ATTN_FULL, 0, 0, 0, 0, 0};
    lg_attn sw = {LG_ATTN_SINK_WINDOW, 4, 40, 0, 0, 0};
    lg_attn bs = {LG_ATTN_BLOCK_SPARSE, 0, 0, 64, 1, 2};
    test_attention(2, 256, 4, 2, 64, full);
    test_attention(2, 200, 4, 1, 128, sw);
    test_attention(1, 320, 4, 2, 64, bs);
    test_swiglu(small ? 50 : 300, 264);
    test_swiglu(7, 13);  // odd size: scalar tail
    test_add(100003);
    test_ce(small ? 20 : 70, 1000);
    test_ce(13, 37);   // V not a multiple of 8
    test_ce(9, 32000);
    test_optim(small ? 10001 : 1000003);
    test_transfer(small ? 1001 : (1 << 23) * 2 + 5);
    test_bad_target(argv[0]);
    if (!small) test_ce_big();
    if (do_bench) bench();
    G->sync();
    G->release();  // memcheck --leak-check full: nothing left allocated
    printf("%s: %d failure(s)\n", fails ? "FAILED" : "PASSED", fails);
    return fails ? 1 : 0;
}
