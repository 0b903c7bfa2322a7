// attention.c: causal attention under a layer's mask (kernels/layout.h), flash-style: per query tile, only the
// key tiles that lg_attn_key_tiles lists are visited, with an online softmax, so a sparse layer costs
// O(visible tiles) and never O(S^2). Tile products run on the GEMM micro-kernel (gemm.c).
//
// Forward unit = (b, query head h, query tile). Backward unit = (b, h): it owns dq of head h and private dk, dv
// accumulators of head h (B,H,S,D), summed over the heads of each KV group at the end in a fixed order. So no
// two threads ever write the same element, nothing is recomputed twice, and the result does not depend on
// the thread count.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/ops_cpu.h"
#include "trainer/util.h"

int64_t lg_cpu_attn_tiles_fwd = 0, lg_cpu_attn_tiles_bwd = 0;

static int gcd_int(int a, int b) {
    while (b) { int t = a % b; a = b; b = t; }
    return a;
}

int lg_cpu_attn_tile(const lg_attn *a) { return a->kind == LG_ATTN_BLOCK_SPARSE ? gcd_int(a->block, 32) : 32; }

void lg_cpu_mask_row(const lg_attn *a, int n_kv_heads, int h, int64_t q, int64_t k0, int64_t k1, int64_t iv[4]) {
    iv[0] = iv[1] = iv[2] = iv[3] = 0;
    int64_t hi = k1 < q + 1 ? k1 : q + 1;  // causal
    if (hi <= k0) return;
    switch (a->kind) {
    case LG_ATTN_FULL: iv[0] = k0; iv[1] = hi; return;
    case LG_ATTN_SINK_WINDOW: {
        // [0, sink) and (q - window, q], the second started after the first so they never overlap.
        int64_t s1 = a->sink < hi ? a->sink : hi;
        if (s1 > k0) { iv[0] = k0; iv[1] = s1; }
        int64_t w0 = q - a->window + 1;
        if (w0 < k0) w0 = k0;
        if (w0 < s1) w0 = s1;
        if (w0 < hi) { iv[2] = w0; iv[3] = hi; }
        return;
    }
    case LG_ATTN_BLOCK_SPARSE:
        // The tile lies in one key block and the decision is per block: one probe decides the whole row.
        if (lg_attn_allows(a, n_kv_heads, h, q, k0)) { iv[0] = k0; iv[1] = hi; }
        return;
    }
}

static void check_args(const char *op, int B, int S, int H, int KVH, int D, const lg_attn *m) {
    if (B <= 0 || S <= 0 || H <= 0 || KVH <= 0 || D <= 0)
        lg_die("%s: B=%d S=%d H=%d KVH=%d D=%d, expected all > 0", op, B, S, H, KVH, D);
    if (H % KVH) lg_die("%s: n_heads %d is not a multiple of n_kv_heads %d", op, H, KVH);
    switch (m->kind) {
    case LG_ATTN_FULL: break;
    case LG_ATTN_SINK_WINDOW:
        if (m->sink < 0 || m->window < 1)
            lg_die("%s: sink_window(sink=%d, window=%d), expected sink >= 0 and window >= 1", op, m->sink, m->window);
        break;
    case LG_ATTN_BLOCK_SPARSE:
        if (m->block < 1 || m->local_blocks < 0 || m->vert_stride < 1)
            lg_die("%s: block_sparse(block=%d, local=%d, stride=%d), expected block >= 1, local >= 0, stride >= 1", op,
                   m->block, m->local_blocks, m->vert_stride);
        break;
    default: lg_die("%s: unknown attention layout kind %d", op, (int)m->kind);
    }
}

// Geometry shared by forward and backward.
typedef struct {
    int tile, ntiles, lds;  // tile size, tiles per sequence, row stride of the score tile (>= 16, mult of 16)
    int64_t Sp, Dp;         // padded sequence length (every 16-wide read of a tile stays inside), padded head dim
} geom;

static geom make_geom(int S, int D, const lg_attn *m) {
    geom g;
    g.tile = lg_cpu_attn_tile(m);
    g.ntiles = (S + g.tile - 1) / g.tile;
    g.lds = (g.tile + 15) / 16 * 16;
    g.Sp = (int64_t)g.ntiles * g.tile + 16;
    g.Dp = (D + 15) / 16 * 16;
    return g;
}

// Transposed copy of k or v (B,S,KVH,D) -> (B,KVH,D,Sp), zero-padded: the B operand of Q K^T (and dO V^T).
static void pack_t(float *dst, const float *src, int B, int S, int KVH, int D, int64_t Sp) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int kh = 0; kh < KVH; kh++) {
            float *o = dst + ((int64_t)b * KVH + kh) * D * Sp;
            for (int64_t s = 0; s < S; s++) {
                const float *r = src + (((int64_t)b * S + s) * KVH + kh) * D;
                for (int d = 0; d < D; d++) o[d * Sp + s] = r[d];
            }
        }
}

// Head-major padded copy (B,S,NH,D) -> (B,NH,Sp,Dp) times scale, zero-padded: rows of 16-wide column reads.
static void pack_rows(float *dst, const float *src, int B, int S, int NH, int D, int64_t Sp, int64_t Dp, float scale) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            float *o = dst + ((int64_t)b * NH + h) * Sp * Dp;
            for (int64_t s = 0; s < S; s++) {
                const float *r = src + (((int64_t)b * S + s) * NH + h) * D;
                for (int d = 0; d < D; d++) o[s * Dp + d] = r[d] * scale;
            }
        }
}

static float *zalloc(int64_t n) { return lg_calloc((size_t)n, sizeof(float)); }

// Mask one score row x (cols keys from k0) to its visible keys: returns 0 when none is visible, else 1 with
// *full = whether every key is visible; when not full, masked entries are set to -inf and [a0,a1),[b0,b1)
// are the visible column ranges.
static int mask_scores(const lg_attn *m, int KVH, int kvh, int64_t q, int64_t k0, int cols, float *x, int *full,
                       int64_t r[4]) {
    int64_t iv[4];
    lg_cpu_mask_row(m, KVH, kvh, q, k0, k0 + cols, iv);
    for (int i = 0; i < 4; i++) r[i] = iv[i] - k0;
    int has_a = r[0] < r[1], has_b = r[2] < r[3];
    if (!has_a && !has_b) return 0;
    *full = (has_a && r[0] == 0 && r[1] == cols) || (!has_a && r[2] == 0 && r[3] == cols) ||
            (has_a && has_b && r[0] == 0 && r[1] == r[2] && r[3] == cols);
    if (!*full)
        for (int j = 0; j < cols; j++)
            if (!((j >= r[0] && j < r[1]) || (j >= r[2] && j < r[3]))) x[j] = -INFINITY;
    return 1;
}

static void zero_masked(float *x, int cols, const int64_t r[4]) {
    for (int j = 0; j < cols; j++)
        if (!((j >= r[0] && j < r[1]) || (j >= r[2] && j < r[3]))) x[j] = 0.0f;
}

// C (rows x ncols, ldc) (=/+=) A (rows x K) B (K x ncols) by micro-kernel calls; B must be readable 16 wide.
static void tile_mm(float *c, int64_t ldc, const float *a, int64_t sai, int64_t sak, const float *b, int64_t ldb,
                    int rows, int ncols, int64_t K, int acc) {
    for (int r0 = 0; r0 < rows; r0 += 6)
        for (int c0 = 0; c0 < ncols; c0 += 16)
            lg_cpu_uk(rows - r0 < 6 ? rows - r0 : 6, ncols - c0 < 16 ? ncols - c0 : 16, K, a + r0 * sai, sai, sak,
                      b + c0, ldb, c + r0 * ldc + c0, ldc, acc);
}

// ---------------------------------------------------------------------------------------------------------
// q,out (B,S,H,D); k,v (B,S,KVH,D); lse (B,H,S)
void lg_cpu_attention_fwd(void *out, float *lse, const void *q, const void *k, const void *v, int B, int S, int H,
                          int KVH, int D, const lg_attn *mask) {
    check_args("attention_fwd", B, S, H, KVH, D, mask);
    geom g = make_geom(S, D, mask);
    const int G = H / KVH, T = g.tile, LDS = g.lds;
    const int64_t Sp = g.Sp, Dp = g.Dp;
    const float scale = (float)(1.0 / sqrt((double)D));
    float *Qs = zalloc((int64_t)B * H * Sp * Dp);    // (B,H,Sp,Dp) q * scale
    float *Kt = zalloc((int64_t)B * KVH * D * Sp);   // (B,KVH,D,Sp)
    float *Vp = zalloc((int64_t)B * KVH * Sp * Dp);  // (B,KVH,Sp,Dp)
    pack_rows(Qs, (const float *)q, B, S, H, D, Sp, Dp, scale);
    pack_t(Kt, (const float *)k, B, S, KVH, D, Sp);
    pack_rows(Vp, (const float *)v, B, S, KVH, D, Sp, Dp, 1.0f);
    float *o = (float *)out;
    int64_t visited = 0;
    int64_t nunits = (int64_t)B * H * g.ntiles;
#pragma omp parallel reduction(+ : visited)
    {
        float *Sb = lg_malloc((size_t)T * LDS * sizeof(float));  // scores, then probabilities (T, LDS)
        float *Oa = lg_malloc((size_t)(T * Dp) * sizeof(float));  // unnormalized output (T, Dp)
        float *mrow = lg_malloc((size_t)T * sizeof(float)), *lrow = lg_malloc((size_t)T * sizeof(float));
        int32_t *list = lg_malloc((size_t)g.ntiles * sizeof(int32_t));
#pragma omp for schedule(dynamic, 1)
        for (int64_t u = 0; u < nunits; u++) {
            int b = (int)(u / ((int64_t)H * g.ntiles)), h = (int)((u / g.ntiles) % H), qt = (int)(u % g.ntiles);
            int kvh = h / G;
            int64_t q0 = (int64_t)qt * T;
            int rows = (int)(S - q0 < T ? S - q0 : T);
            const float *Qt = Qs + (((int64_t)b * H + h) * Sp + q0) * Dp;
            const float *Ktb = Kt + ((int64_t)b * KVH + kvh) * D * Sp;
            const float *Vb = Vp + ((int64_t)b * KVH + kvh) * Sp * Dp;
            memset(Oa, 0, (size_t)(rows * Dp) * sizeof(float));
            for (int i = 0; i < rows; i++) { mrow[i] = -INFINITY; lrow[i] = 0.0f; }
            int n = lg_attn_key_tiles(mask, KVH, kvh, T, S, qt, list);
            visited += n;
            for (int ti = 0; ti < n; ti++) {
                int64_t k0 = (int64_t)list[ti] * T;
                int cols = (int)(S - k0 < T ? S - k0 : T);
                tile_mm(Sb, LDS, Qt, Dp, 1, Ktb + k0, Sp, rows, cols, D, 0);  // S = Qs K^T
                for (int i = 0; i < rows; i++) {
                    float *x = Sb + (int64_t)i * LDS;
                    int full = 1;
                    int64_t r[4];
                    if (!mask_scores(mask, KVH, kvh, q0 + i, k0, cols, x, &full, r)) {
                        memset(x, 0, (size_t)cols * sizeof(float));
                        continue;
                    }
                    float mt = lg_cpu_max_row(x, cols);
                    float mnew = mt > mrow[i] ? mt : mrow[i];
                    float corr = mrow[i] == -INFINITY ? 0.0f : expf(mrow[i] - mnew);
                    double sum = lg_cpu_exp_row(x, cols, mnew);
                    if (!full) zero_masked(x, cols, r);
                    lrow[i] = (float)(lrow[i] * corr + sum);
                    mrow[i] = mnew;
                    if (corr != 1.0f) {
                        float *oi = Oa + i * Dp;
                        for (int64_t d = 0; d < Dp; d++) oi[d] *= corr;
                    }
                }
                tile_mm(Oa, Dp, Sb, LDS, 1, Vb + k0 * Dp, Dp, rows, (int)Dp, cols, 1);  // O += P V
            }
            for (int i = 0; i < rows; i++) {
                int64_t qi = q0 + i;
                float *dst = o + (((int64_t)b * S + qi) * H + h) * D;
                float inv = lrow[i] > 0 ? 1.0f / lrow[i] : 0.0f;  // no visible key: output 0, lse -inf
                for (int d = 0; d < D; d++) dst[d] = Oa[i * Dp + d] * inv;
                lse[((int64_t)b * H + h) * S + qi] = lrow[i] > 0 ? mrow[i] + logf(lrow[i]) : -INFINITY;
            }
        }
        free(Sb); free(Oa); free(mrow); free(lrow); free(list);
    }
    lg_cpu_attn_tiles_fwd = visited;
    free(Qs); free(Kt); free(Vp);
}

// ---------------------------------------------------------------------------------------------------------
// With s = scale q.k, P = exp(s - lse), Di = sum_d dO o:
//   dV_j += P_ij dO_i ; dS_ij = P_ij (dO_i.v_j - Di) ; dQ_i += scale dS_ij k_j ; dK_j += scale dS_ij q_i
void lg_cpu_attention_bwd(void *dq, void *dk, void *dv, const void *dout, const void *q, const void *k,
                          const void *v, const void *out, const float *lse, int B, int S, int H, int KVH, int D,
                          const lg_attn *mask) {
    check_args("attention_bwd", B, S, H, KVH, D, mask);
    geom g = make_geom(S, D, mask);
    const int G = H / KVH, T = g.tile, LDS = g.lds;
    const int64_t Sp = g.Sp, Dp = g.Dp;
    const float scale = (float)(1.0 / sqrt((double)D));
    float *Qs = zalloc((int64_t)B * H * Sp * Dp);    // (B,H,Sp,Dp) q * scale
    float *dOp = zalloc((int64_t)B * H * Sp * Dp);   // (B,H,Sp,Dp)
    float *Kt = zalloc((int64_t)B * KVH * D * Sp);   // (B,KVH,D,Sp)
    float *Vt = zalloc((int64_t)B * KVH * D * Sp);   // (B,KVH,D,Sp)
    float *Kp = zalloc((int64_t)B * KVH * Sp * Dp);  // (B,KVH,Sp,Dp)
    float *dKh = zalloc((int64_t)B * H * Sp * Dp);   // (B,H,Sp,Dp) per query head, summed per group at the end
    float *dVh = zalloc((int64_t)B * H * Sp * Dp);
    float *Di = lg_malloc((size_t)((int64_t)B * H * S) * sizeof(float));  // (B,H,S)
    pack_rows(Qs, (const float *)q, B, S, H, D, Sp, Dp, scale);
    pack_rows(dOp, (const float *)dout, B, S, H, D, Sp, Dp, 1.0f);
    pack_t(Kt, (const float *)k, B, S, KVH, D, Sp);
    pack_t(Vt, (const float *)v, B, S, KVH, D, Sp);
    pack_rows(Kp, (const float *)k, B, S, KVH, D, Sp, Dp, 1.0f);
    const float *go = (const float *)dout, *oo = (const float *)out;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < (int64_t)B * S * H; r++) {  // r = (b*S + s)*H + h
        double acc = 0;
        for (int d = 0; d < D; d++) acc += (double)go[r * D + d] * oo[r * D + d];
        int64_t b = r / ((int64_t)S * H), s = (r / H) % S, h = r % H;
        Di[(b * H + h) * S + s] = (float)acc;
    }
    float *gq = (float *)dq;
    int64_t visited = 0;
#pragma omp parallel reduction(+ : visited)
    {
        float *Pb = lg_malloc((size_t)T * LDS * sizeof(float));   // probabilities (T, LDS)
        float *dSb = lg_malloc((size_t)T * LDS * sizeof(float));  // dP, then scale-free dS (T, LDS)
        float *dQa = lg_malloc((size_t)(T * Dp) * sizeof(float));  // (T, Dp)
        int32_t *list = lg_malloc((size_t)g.ntiles * sizeof(int32_t));
#pragma omp for schedule(dynamic, 1)
        for (int64_t u = 0; u < (int64_t)B * H; u++) {
            int b = (int)(u / H), h = (int)(u % H), kvh = h / G;
            const float *Qh = Qs + ((int64_t)b * H + h) * Sp * Dp, *dOh = dOp + ((int64_t)b * H + h) * Sp * Dp;
            const float *Ktb = Kt + ((int64_t)b * KVH + kvh) * D * Sp, *Vtb = Vt + ((int64_t)b * KVH + kvh) * D * Sp;
            const float *Kb = Kp + ((int64_t)b * KVH + kvh) * Sp * Dp;
            float *dKb = dKh + ((int64_t)b * H + h) * Sp * Dp, *dVb = dVh + ((int64_t)b * H + h) * Sp * Dp;
            const float *lse_h = lse + ((int64_t)b * H + h) * S, *Di_h = Di + ((int64_t)b * H + h) * S;
            for (int qt = 0; qt < g.ntiles; qt++) {
                int64_t q0 = (int64_t)qt * T;
                int rows = (int)(S - q0 < T ? S - q0 : T);
                memset(dQa, 0, (size_t)(rows * Dp) * sizeof(float));
                int n = lg_attn_key_tiles(mask, KVH, kvh, T, S, qt, list);
                visited += n;
                for (int ti = 0; ti < n; ti++) {
                    int64_t k0 = (int64_t)list[ti] * T;
                    int cols = (int)(S - k0 < T ? S - k0 : T);
                    tile_mm(Pb, LDS, Qh + q0 * Dp, Dp, 1, Ktb + k0, Sp, rows, cols, D, 0);    // S = Qs K^T
                    tile_mm(dSb, LDS, dOh + q0 * Dp, Dp, 1, Vtb + k0, Sp, rows, cols, D, 0);  // dP = dO V^T
                    for (int i = 0; i < rows; i++) {
                        float *p = Pb + (int64_t)i * LDS, *ds = dSb + (int64_t)i * LDS;
                        int full = 1;
                        int64_t r[4];
                        if (!mask_scores(mask, KVH, kvh, q0 + i, k0, cols, p, &full, r)) {
                            memset(p, 0, (size_t)cols * sizeof(float));
                            memset(ds, 0, (size_t)cols * sizeof(float));
                            continue;
                        }
                        lg_cpu_exp_row(p, cols, lse_h[q0 + i]);
                        if (!full) zero_masked(p, cols, r);
                        float di = Di_h[q0 + i];
                        for (int j = 0; j < cols; j++) ds[j] = p[j] * (ds[j] - di);
                    }
                    // dV (cols x Dp) += P^T dO ; dK += dS^T Qs ; dQ (rows x Dp) += dS K (scale applied at the end)
                    tile_mm(dVb + k0 * Dp, Dp, Pb, 1, LDS, dOh + q0 * Dp, Dp, cols, (int)Dp, rows, 1);
                    tile_mm(dKb + k0 * Dp, Dp, dSb, 1, LDS, Qh + q0 * Dp, Dp, cols, (int)Dp, rows, 1);
                    tile_mm(dQa, Dp, dSb, LDS, 1, Kb + k0 * Dp, Dp, rows, (int)Dp, cols, 1);
                }
                for (int i = 0; i < rows; i++) {
                    float *dst = gq + (((int64_t)b * S + q0 + i) * H + h) * D;
                    for (int d = 0; d < D; d++) dst[d] = dQa[i * Dp + d] * scale;
                }
            }
        }
        free(Pb); free(dSb); free(dQa); free(list);
    }
    lg_cpu_attn_tiles_bwd = visited;
    // dk, dv (B,S,KVH,D) = sum over the G query heads of each group, in head order.
    float *gk = (float *)dk, *gv = (float *)dv;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < (int64_t)B * S * KVH; r++) {  // r = (b*S + s)*KVH + kvh
        int64_t b = r / ((int64_t)S * KVH), s = (r / KVH) % S, kvh = r % KVH;
        for (int d = 0; d < D; d++) {
            float ak = 0, av = 0;
            for (int j = 0; j < G; j++) {
                int64_t idx = ((b * H + kvh * G + j) * Sp + s) * Dp + d;
                ak += dKh[idx];
                av += dVh[idx];
            }
            gk[r * D + d] = ak;
            gv[r * D + d] = av;
        }
    }
    free(Qs); free(dOp); free(Kt); free(Vt); free(Kp); free(dKh); free(dVh); free(Di);
}
