// test_attention_cpu: the CPU backend's tiled sparse attention against a dense fp64 reference that builds the
// whole S x S mask from lg_attn_allows and does naive softmax(Q K^T / sqrt(D)) V and its backward.
// Asserts max |x - ref| / max |ref| < 1e-5 for out, lse, dq, dk, dv over several layouts, GQA groupings, odd S
// and head dims 16 and 8, with the AVX2 and the baseline kernels; that the per-row mask shortcut used inside
// tiles (lg_cpu_mask_row) equals lg_attn_allows; and that a sparse layer's work is sub-quadratic (tile counts).
// LG_BENCH=1 also times fwd+bwd at S=2048, H=8, D=64 for full vs sink_window(64,256) (informational).
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu.h"
#include "kernels/ops.h"
#include "trainer/util.h"

static const lg_ops *O;
static int fails = 0;
static uint64_t rng_state = 12345;

static double urand(void) {  // splitmix64 -> [0,1)
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
}
static double nrand(void) { return sqrt(-2.0 * log(1.0 - urand())) * cos(6.283185307179586 * urand()); }
static float *randn(int64_t n) {
    float *p = lg_malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) p[i] = (float)nrand();
    return p;
}

static void check_rel(const char *what, const float *got, const double *ref, int64_t n, double tol) {
    double emax = 0, rmax = 0;
    for (int64_t i = 0; i < n; i++) {
        if (isinf(ref[i])) {  // lse of a query with no visible key: -inf exactly
            if (got[i] != ref[i]) emax = INFINITY;
            continue;
        }
        double e = fabs((double)got[i] - ref[i]);
        if (!(e <= emax)) emax = e;
        if (fabs(ref[i]) > rmax) rmax = fabs(ref[i]);
    }
    double rel = emax / (rmax > 0 ? rmax : 1.0);
    int ok = rel <= tol;
    printf("%s %-70s %.2e\n", ok ? "ok  " : "FAIL", what, rel);
    if (!ok) fails++;
}

// Dense reference, fp64. q,out (B,S,H,D); k,v (B,S,KVH,D); lse (B,H,S).
static void dense_ref(int B, int S, int H, int KVH, int D, const lg_attn *m, const float *q, const float *k,
                      const float *v, const float *dout, double *out, double *lse, double *dq, double *dk, double *dv) {
    int G = H / KVH;
    double scale = 1.0 / sqrt((double)D);
    char *mask = lg_malloc((size_t)S * S);
    double *P = lg_malloc(sizeof(double) * S * S), *dS = lg_malloc(sizeof(double) * S * S);
    memset(dk, 0, sizeof(double) * B * S * KVH * D);
    memset(dv, 0, sizeof(double) * B * S * KVH * D);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            int kh = h / G;
#define Q(i, d) q[(((int64_t)b * S + (i)) * H + h) * D + (d)]
#define GO(i, d) dout[(((int64_t)b * S + (i)) * H + h) * D + (d)]
#define K(j, d) k[(((int64_t)b * S + (j)) * KVH + kh) * D + (d)]
#define V(j, d) v[(((int64_t)b * S + (j)) * KVH + kh) * D + (d)]
            for (int i = 0; i < S; i++)
                for (int j = 0; j < S; j++) mask[(int64_t)i * S + j] = (char)lg_attn_allows(m, KVH, kh, i, j);
            for (int i = 0; i < S; i++) {
                double mx = -INFINITY, l = 0;
                double *p = P + (int64_t)i * S;
                for (int j = 0; j < S; j++) {
                    p[j] = -INFINITY;
                    if (!mask[(int64_t)i * S + j]) continue;
                    double s = 0;
                    for (int d = 0; d < D; d++) s += (double)Q(i, d) * K(j, d);
                    p[j] = s * scale;
                    if (p[j] > mx) mx = p[j];
                }
                for (int j = 0; j < S; j++) l += mask[(int64_t)i * S + j] ? exp(p[j] - mx) : 0.0;
                double ls = l > 0 ? mx + log(l) : -INFINITY;
                lse[((int64_t)b * H + h) * S + i] = ls;
                for (int j = 0; j < S; j++) p[j] = mask[(int64_t)i * S + j] ? exp(p[j] - ls) : 0.0;
                for (int d = 0; d < D; d++) {
                    double o = 0;
                    for (int j = 0; j < S; j++) o += p[j] * V(j, d);
                    out[(((int64_t)b * S + i) * H + h) * D + d] = o;
                }
                // dP_ij = dO_i . v_j ; dS = P (dP - sum_j P dP)
                double di = 0;
                for (int j = 0; j < S; j++) {
                    double dp = 0;
                    if (p[j] != 0)
                        for (int d = 0; d < D; d++) dp += (double)GO(i, d) * V(j, d);
                    dS[(int64_t)i * S + j] = dp;
                    di += p[j] * dp;
                }
                for (int j = 0; j < S; j++) dS[(int64_t)i * S + j] = p[j] * (dS[(int64_t)i * S + j] - di);
            }
            for (int i = 0; i < S; i++)
                for (int d = 0; d < D; d++) {
                    double a = 0;
                    for (int j = 0; j < S; j++) a += dS[(int64_t)i * S + j] * K(j, d);
                    dq[(((int64_t)b * S + i) * H + h) * D + d] = a * scale;
                }
            for (int j = 0; j < S; j++)
                for (int d = 0; d < D; d++) {
                    double ak = 0, av = 0;
                    for (int i = 0; i < S; i++) {
                        ak += dS[(int64_t)i * S + j] * Q(i, d);
                        av += P[(int64_t)i * S + j] * GO(i, d);
                    }
                    dk[(((int64_t)b * S + j) * KVH + kh) * D + d] += ak * scale;
                    dv[(((int64_t)b * S + j) * KVH + kh) * D + d] += av;
                }
#undef Q
#undef GO
#undef K
#undef V
        }
    free(mask); free(P); free(dS);
}

static void run_case(int B, int S, int H, int KVH, int D, lg_attn m) {
    int64_t nq = (int64_t)B * S * H * D, nk = (int64_t)B * S * KVH * D, nl = (int64_t)B * H * S;
    float *q = randn(nq), *k = randn(nk), *v = randn(nk), *dout = randn(nq);
    double *out_r = lg_malloc(sizeof(double) * nq), *lse_r = lg_malloc(sizeof(double) * nl);
    double *dq_r = lg_malloc(sizeof(double) * nq), *dk_r = lg_malloc(sizeof(double) * nk), *dv_r = lg_malloc(sizeof(double) * nk);
    dense_ref(B, S, H, KVH, D, &m, q, k, v, dout, out_r, lse_r, dq_r, dk_r, dv_r);
    float *out = randn(nq), *lse = randn(nl), *dq = randn(nq), *dk = randn(nk), *dv = randn(nk);  // garbage: ops write
    O->attention_fwd(out, lse, q, k, v, B, S, H, KVH, D, &m);
    O->attention_bwd(dq, dk, dv, dout, q, k, v, out, lse, B, S, H, KVH, D, &m);
    char desc[96], buf[200];
    lg_attn_describe(&m, desc, sizeof desc);
    const char *names[5] = {"out", "lse", "dq", "dk", "dv"};
    const float *got[5] = {out, lse, dq, dk, dv};
    const double *ref[5] = {out_r, lse_r, dq_r, dk_r, dv_r};
    int64_t ns[5] = {nq, nl, nq, nk, nk};
    for (int i = 0; i < 5; i++) {
        snprintf(buf, sizeof buf, "%s B=%d S=%d H=%d KVH=%d D=%d %s", desc, B, S, H, KVH, D, names[i]);
        check_rel(buf, got[i], ref[i], ns[i], 1e-5);
    }
    free(q); free(k); free(v); free(dout); free(out_r); free(lse_r); free(dq_r); free(dk_r); free(dv_r);
    free(out); free(lse); free(dq); free(dk); free(dv);
}

// lg_cpu_mask_row must describe exactly the keys lg_attn_allows lets through, for every row of every tile.
static void check_mask_rows(const lg_attn *m, int KVH, int64_t S) {
    int tile = lg_cpu_attn_tile(m), bad = 0;
    for (int h = 0; h < KVH; h++)
        for (int64_t q = 0; q < S; q++)
            for (int64_t k0 = 0; k0 < S; k0 += tile) {
                int64_t k1 = k0 + tile < S ? k0 + tile : S, iv[4];
                lg_cpu_mask_row(m, KVH, h, q, k0, k1, iv);
                for (int64_t k = k0; k < k1; k++) {
                    int in = (k >= iv[0] && k < iv[1]) + (k >= iv[2] && k < iv[3]);  // 2 would be an overlap
                    if (in != lg_attn_allows(m, KVH, h, q, k)) bad++;
                }
            }
    char desc[96], buf[256];
    lg_attn_describe(m, desc, sizeof desc);
    snprintf(buf, sizeof buf, "mask rows == lg_attn_allows: %s KVH=%d S=%lld tile=%d (%d mismatches)", desc, KVH,
             (long long)S, tile, bad);
    printf("%s %s\n", bad ? "FAIL" : "ok  ", buf);
    if (bad) fails++;
}

// Work of a sparse layer: tiles listed vs the causal triangle, and the tiles the kernels actually visited.
static void check_subquadratic(void) {
    int64_t S = 4096;
    lg_attn sw = {.kind = LG_ATTN_SINK_WINDOW, .sink = 64, .window = 256};
    int tile = lg_cpu_attn_tile(&sw);
    int64_t nt = (S + tile - 1) / tile, listed = 0;
    int32_t *kt = lg_malloc(sizeof(int32_t) * (size_t)nt);
    for (int64_t qt = 0; qt < nt; qt++) listed += lg_attn_key_tiles(&sw, 1, 0, tile, S, qt, kt);
    free(kt);
    double frac = (double)listed * tile * tile / ((double)S * S / 2);
    // sink + window + up to 2 partial tiles per query tile: (64 + 256)/32 + 2 = 12 tiles of 32 per query tile
    int ok = listed <= nt * 12 && frac < 0.2;
    printf("%s sink_window(64,256) S=4096: %lld key tiles of %d listed = %.3f of S^2/2\n", ok ? "ok  " : "FAIL",
           (long long)listed, tile, frac);
    if (!ok) fails++;
    int D = 16;
    float *q = randn(S * D), *k = randn(S * D), *v = randn(S * D), *o = randn(S * D), *lse = randn(S);
    float *dq = randn(S * D), *dk = randn(S * D), *dv = randn(S * D);
    O->attention_fwd(o, lse, q, k, v, 1, (int)S, 1, 1, D, &sw);
    O->attention_bwd(dq, dk, dv, o, q, k, v, o, lse, 1, (int)S, 1, 1, D, &sw);
    ok = lg_cpu_attn_tiles_fwd == listed && lg_cpu_attn_tiles_bwd == listed;
    printf("%s kernels visited exactly the listed tiles: fwd %lld, bwd %lld (full causal would be %lld)\n",
           ok ? "ok  " : "FAIL", (long long)lg_cpu_attn_tiles_fwd, (long long)lg_cpu_attn_tiles_bwd,
           (long long)(nt * (nt + 1) / 2));
    if (!ok) fails++;
    free(q); free(k); free(v); free(o); free(lse); free(dq); free(dk); free(dv);
}

// Results must not depend on the thread count (no shared accumulation, fixed summation orders).
static void check_thread_independence(void) {
    int B = 2, S = 130, H = 4, KVH = 2, D = 16;
    lg_attn m = {.kind = LG_ATTN_SINK_WINDOW, .sink = 5, .window = 40};
    int64_t nq = (int64_t)B * S * H * D, nk = (int64_t)B * S * KVH * D, nl = (int64_t)B * H * S;
    float *q = randn(nq), *k = randn(nk), *v = randn(nk), *g = randn(nq);
    float *r[2][5];
    int saved = omp_get_max_threads();
    for (int run = 0; run < 2; run++) {
        omp_set_num_threads(run ? 3 : 1);
        float *o = randn(nq), *l = randn(nl), *dq = randn(nq), *dk = randn(nk), *dv = randn(nk);
        O->attention_fwd(o, l, q, k, v, B, S, H, KVH, D, &m);
        O->attention_bwd(dq, dk, dv, g, q, k, v, o, l, B, S, H, KVH, D, &m);
        r[run][0] = o; r[run][1] = l; r[run][2] = dq; r[run][3] = dk; r[run][4] = dv;
    }
    omp_set_num_threads(saved);
    int64_t ns[5] = {nq, nl, nq, nk, nk};
    int same = 1;
    for (int i = 0; i < 5; i++) same &= !memcmp(r[0][i], r[1][i], sizeof(float) * (size_t)ns[i]);
    printf("%s attention fwd+bwd bitwise identical with 1 and 3 threads\n", same ? "ok  " : "FAIL");
    if (!same) fails++;
    for (int i = 0; i < 5; i++) { free(r[0][i]); free(r[1][i]); }
    free(q); free(k); free(v); free(g);
}

static void bench(void) {
    int B = 1, S = 2048, H = 8, D = 64;
    int64_t n = (int64_t)B * S * H * D;
    float *q = randn(n), *k = randn(n), *v = randn(n), *o = randn(n), *lse = randn((int64_t)B * H * S);
    float *dq = randn(n), *dk = randn(n), *dv = randn(n);
    lg_attn layouts[2] = {{.kind = LG_ATTN_FULL}, {.kind = LG_ATTN_SINK_WINDOW, .sink = 64, .window = 256}};
    for (int li = 0; li < 2; li++) {
        double bf = 1e9, bb = 1e9;
        for (int r = 0; r < 3; r++) {
            double t0 = lg_now_seconds();
            O->attention_fwd(o, lse, q, k, v, B, S, H, H, D, &layouts[li]);
            double t1 = lg_now_seconds();
            O->attention_bwd(dq, dk, dv, o, q, k, v, o, lse, B, S, H, H, D, &layouts[li]);
            double t2 = lg_now_seconds();
            if (t1 - t0 < bf) bf = t1 - t0;
            if (t2 - t1 < bb) bb = t2 - t1;
        }
        char desc[96];
        lg_attn_describe(&layouts[li], desc, sizeof desc);
        printf("bench (simd %s): attention B=%d S=%d H=%d D=%d %s: fwd %.1f ms, bwd %.1f ms, fwd+bwd %.1f ms\n",
               lg_cpu_avx2 ? "avx2" : "baseline", B, S, H, D, desc, bf * 1e3, bb * 1e3, (bf + bb) * 1e3);
    }
    free(q); free(k); free(v); free(o); free(lse); free(dq); free(dk); free(dv);
}

int main(void) {
    O = lg_ops_cpu();
    lg_attn full = {.kind = LG_ATTN_FULL};
    lg_attn sw = {.kind = LG_ATTN_SINK_WINDOW, .sink = 3, .window = 10};
    lg_attn bs8 = {.kind = LG_ATTN_BLOCK_SPARSE, .block = 8, .local_blocks = 2, .vert_stride = 3};
    lg_attn bs16 = {.kind = LG_ATTN_BLOCK_SPARSE, .block = 16, .local_blocks = 1, .vert_stride = 4};
    lg_attn bs64 = {.kind = LG_ATTN_BLOCK_SPARSE, .block = 64, .local_blocks = 1, .vert_stride = 2};  // tile < block
    lg_attn bs0 = {.kind = LG_ATTN_BLOCK_SPARSE, .block = 8, .local_blocks = 0, .vert_stride = 3};   // keyless rows
    lg_attn sw0 = {.kind = LG_ATTN_SINK_WINDOW, .sink = 40, .window = 1};  // sink wider than a tile
    int have_avx2 = lg_cpu_avx2;
    for (int mode = have_avx2; mode >= 0; mode--) {
        lg_cpu_set_simd(mode);
        printf("== kernels: %s ==\n", mode ? "avx2+fma" : "baseline");
        run_case(2, 61, 4, 2, 16, full);
        run_case(1, 130, 2, 1, 8, full);
        run_case(2, 61, 4, 2, 16, sw);
        run_case(1, 130, 4, 4, 8, sw);
        run_case(2, 61, 4, 2, 16, bs8);
        run_case(1, 130, 4, 1, 8, bs8);
        run_case(2, 61, 4, 4, 16, bs16);
        run_case(1, 130, 8, 4, 8, bs16);
        run_case(1, 130, 2, 2, 16, bs64);
        run_case(1, 61, 2, 2, 8, bs0);
        run_case(1, 130, 2, 1, 16, sw0);
        run_case(1, 1, 2, 1, 8, full);
    }
    lg_cpu_set_simd(have_avx2);
    lg_attn *all[] = {&full, &sw, &bs8, &bs16, &bs64, &bs0, &sw0};
    for (int i = 0; i < 7; i++) {
        check_mask_rows(all[i], 4, 130);
        check_mask_rows(all[i], 1, 61);
    }
    check_subquadratic();
    check_thread_independence();
    const char *b = getenv("LG_BENCH");
    if (b && *b && strcmp(b, "0")) bench();
    if (fails) { printf("%d FAILED\n", fails); return 1; }
    printf("all attention checks ok\n");
    return 0;
}
