// gemm.c: the one matrix-multiply engine of the CPU backend. A 6x16 register-blocked micro-kernel (12 vector
// accumulators, B rows loaded as two 8-wide vectors, A elements broadcast) and a packed, cache-blocked driver
// over it. matmul.c calls the driver; attention.c calls the micro-kernel on its tiles directly.
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/simd.h"
#include "trainer/util.h"

int lg_cpu_avx2 = 0;

void lg_cpu_simd_init(void) {
    static int done = 0;
    if (done) return;
    done = 1;
    const char *e = getenv("LG_CPU_SIMD");
    if (e && !strcmp(e, "generic")) { lg_cpu_avx2 = 0; return; }
#if LG_CPU_X86
    __builtin_cpu_init();
    lg_cpu_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
}

void lg_cpu_set_simd(int avx2) {
    lg_cpu_simd_init();
#if LG_CPU_X86
    if (avx2 && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
        lg_die("lg_cpu_set_simd: this CPU has no AVX2+FMA");
    lg_cpu_avx2 = avx2;
#else
    if (avx2) lg_die("lg_cpu_set_simd: AVX2 kernels exist only on x86");
#endif
}

// ---------------------------------------------------------------------------------------------------------
// Micro-kernel. M is a compile-time constant after inlining (the switch below), so unused rows vanish.
#define UK_ROW(i)                                   \
    if (M > i) {                                    \
        float t = ak[(i) * sai]; /* scalar * vector broadcasts */             \
        c##i##0 += t * b0;                          \
        c##i##1 += t * b1;                          \
    }
#define UK_STORE(i)                                                                                      \
    if (M > i) {                                                                                         \
        float *cr = c + (i) * ldc;                                                                       \
        if (n == 16) {                                                                                   \
            if (acc) { lg_st(cr, lg_ld(cr) + c##i##0); lg_st(cr + 8, lg_ld(cr + 8) + c##i##1); }          \
            else { lg_st(cr, c##i##0); lg_st(cr + 8, c##i##1); }                                          \
        } else {                                                                                         \
            float tmp[16];                                                                               \
            lg_st(tmp, c##i##0);                                                                         \
            lg_st(tmp + 8, c##i##1);                                                                     \
            if (acc) for (int j = 0; j < n; j++) cr[j] += tmp[j];                                        \
            else for (int j = 0; j < n; j++) cr[j] = tmp[j];                                             \
        }                                                                                                \
    }

LG_INLINE void uk_body(const int M, int n, int64_t K, const float *a, int64_t sai, int64_t sak, const float *b,
                       int64_t ldb, float *c, int64_t ldc, int acc) {
    lg_v8 z = lg_bc(0.0f);
    lg_v8 c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z, c30 = z, c31 = z, c40 = z, c41 = z, c50 = z, c51 = z;
    for (int64_t k = 0; k < K; k++) {
        lg_v8 b0 = lg_ld(b), b1 = lg_ld(b + 8);
        const float *ak = a;
        b += ldb;
        a += sak;
        UK_ROW(0) UK_ROW(1) UK_ROW(2) UK_ROW(3) UK_ROW(4) UK_ROW(5)
    }
    UK_STORE(0) UK_STORE(1) UK_STORE(2) UK_STORE(3) UK_STORE(4) UK_STORE(5)
}

#define UK_SWITCH                                                  \
    switch (m) {                                                   \
    case 1: uk_body(1, n, K, a, sai, sak, b, ldb, c, ldc, acc); break; \
    case 2: uk_body(2, n, K, a, sai, sak, b, ldb, c, ldc, acc); break; \
    case 3: uk_body(3, n, K, a, sai, sak, b, ldb, c, ldc, acc); break; \
    case 4: uk_body(4, n, K, a, sai, sak, b, ldb, c, ldc, acc); break; \
    case 5: uk_body(5, n, K, a, sai, sak, b, ldb, c, ldc, acc); break; \
    default: uk_body(6, n, K, a, sai, sak, b, ldb, c, ldc, acc); break; \
    }

// Baseline ISA (SSE2 / NEON: 16 vector registers of 4 lanes): the 6x16 block as two 6x8 halves, so the
// 12 accumulators of a half stay in registers.
typedef float lg_v4 __attribute__((vector_size(16)));
typedef float lg_v4u __attribute__((vector_size(16), aligned(4), may_alias));
#define UK4_ROW(i)                                  \
    if (M > i) {                                    \
        float t = ak[(i) * sai];                    \
        c##i##0 += t * b0;                          \
        c##i##1 += t * b1;                          \
    }
#define UK4_STORE(i)                                                                       \
    if (M > i) {                                                                           \
        float tmp[8], *cr = c + (i) * ldc + h;                                             \
        *(lg_v4u *)tmp = c##i##0;                                                          \
        *(lg_v4u *)(tmp + 4) = c##i##1;                                                    \
        if (acc) for (int j = 0; j < nh; j++) cr[j] += tmp[j];                             \
        else for (int j = 0; j < nh; j++) cr[j] = tmp[j];                                  \
    }
LG_INLINE void uk_body4(const int M, int n, int64_t K, const float *a0, int64_t sai, int64_t sak, const float *b00,
                        int64_t ldb, float *c, int64_t ldc, int acc) {
    for (int h = 0; h < n; h += 8) {
        int nh = n - h < 8 ? n - h : 8;
        lg_v4 z = {0, 0, 0, 0};
        lg_v4 c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z, c30 = z, c31 = z, c40 = z, c41 = z, c50 = z,
              c51 = z;
        const float *a = a0, *b = b00 + h;
        for (int64_t k = 0; k < K; k++) {
            lg_v4 b0 = *(const lg_v4u *)b, b1 = *(const lg_v4u *)(b + 4);
            const float *ak = a;
            b += ldb;
            a += sak;
            UK4_ROW(0) UK4_ROW(1) UK4_ROW(2) UK4_ROW(3) UK4_ROW(4) UK4_ROW(5)
        }
        UK4_STORE(0) UK4_STORE(1) UK4_STORE(2) UK4_STORE(3) UK4_STORE(4) UK4_STORE(5)
    }
}

static void uk_generic(int m, int n, int64_t K, const float *a, int64_t sai, int64_t sak, const float *b,
                       int64_t ldb, float *c, int64_t ldc, int acc) {
#define uk_body uk_body4
    UK_SWITCH
#undef uk_body
}
#if LG_CPU_X86
LG_AVX2_FN static void uk_avx2(int m, int n, int64_t K, const float *a, int64_t sai, int64_t sak, const float *b,
                               int64_t ldb, float *c, int64_t ldc, int acc) {
    UK_SWITCH
}
#endif

void lg_cpu_uk(int m, int n, int64_t K, const float *a, int64_t sai, int64_t sak, const float *b, int64_t ldb,
               float *c, int64_t ldc, int acc) {
#if LG_CPU_X86
    if (lg_cpu_avx2) { uk_avx2(m, n, K, a, sai, sak, b, ldb, c, ldc, acc); return; }
#endif
    uk_generic(m, n, K, a, sai, sak, b, ldb, c, ldc, acc);
}

// ---------------------------------------------------------------------------------------------------------
// Driver. Blocking for a core with 32 KiB L1 / 512 KiB+ L2: a packed B micro-panel (KC x 16 = 16 KiB) stays in
// L1 while the MR-row panels of a packed A block (MC x KC = 72 KiB) stream from L2.
enum { MR = 6, NR = 16, KC = 256, MC = 72, NU = 128, NC = 4096 };

// B panel jc..jc+nc, k-block pc..pc+kc -> bp[p][k][16], zero-padded past N. Micro-panel p written by one thread.
static void pack_b_panel(float *bp, const float *b, int64_t sbk, int64_t sbj, int64_t pc, int64_t kc, int64_t j0,
                         int64_t nj) {
    if (sbk == 1) {
        for (int64_t j = 0; j < NR; j++)
            for (int64_t k = 0; k < kc; k++) bp[k * NR + j] = j < nj ? b[(pc + k) + (j0 + j) * sbj] : 0.0f;
    } else {
        for (int64_t k = 0; k < kc; k++)
            for (int64_t j = 0; j < NR; j++) bp[k * NR + j] = j < nj ? b[(pc + k) * sbk + (j0 + j) * sbj] : 0.0f;
    }
}

// A rows i0..i0+mi, k-block -> ap[k][MR], zero-padded past the last row.
static void pack_a_panel(float *ap, const float *a, int64_t sai, int64_t sak, int64_t i0, int64_t mi, int64_t pc,
                         int64_t kc) {
    if (sak == 1) {
        for (int64_t i = 0; i < MR; i++)
            for (int64_t k = 0; k < kc; k++) ap[k * MR + i] = i < mi ? a[(i0 + i) * sai + pc + k] : 0.0f;
    } else {
        for (int64_t k = 0; k < kc; k++)
            for (int64_t i = 0; i < MR; i++) ap[k * MR + i] = i < mi ? a[(i0 + i) * sai + (pc + k) * sak] : 0.0f;
    }
}

void lg_cpu_gemm(float *c, int64_t ldc, const float *a, int64_t sai, int64_t sak, const float *b, int64_t sbk,
                 int64_t sbj, int64_t M, int64_t N, int64_t K, int accumulate) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (!accumulate)
            for (int64_t i = 0; i < M; i++) memset(c + i * ldc, 0, (size_t)N * sizeof(float));
        return;
    }
    int64_t ncmax = N < NC ? N : NC;
    int64_t npan_max = (ncmax + NR - 1) / NR;
    int64_t kcmax = K < KC ? K : KC;
    float *bpack = lg_malloc((size_t)(npan_max * kcmax * NR) * sizeof(float));
    double work = (double)M * (double)N * (double)K;  // small products stay on one thread
    (void)work;
#pragma omp parallel if (work > 262144.0)
    {
        float *apack = lg_malloc((size_t)(MC * kcmax) * sizeof(float));
        for (int64_t jc = 0; jc < N; jc += NC) {
            int64_t nc = N - jc < NC ? N - jc : NC;
            int64_t npan = (nc + NR - 1) / NR;
            for (int64_t pc = 0; pc < K; pc += KC) {
                int64_t kc = K - pc < KC ? K - pc : KC;
#pragma omp for schedule(static)
                for (int64_t p = 0; p < npan; p++) {
                    int64_t j0 = jc + p * NR, nj = N - j0 < NR ? N - j0 : NR;
                    pack_b_panel(bpack + p * kc * NR, b, sbk, sbj, pc, kc, j0, nj);
                }
                int64_t nmu = (M + MC - 1) / MC, nnu = (nc + NU - 1) / NU;
                int acc = accumulate || pc > 0;
#pragma omp for schedule(dynamic, 1)
                for (int64_t u = 0; u < nmu * nnu; u++) {
                    int64_t ic = (u / nnu) * MC, jn = (u % nnu) * NU;
                    int64_t mc = M - ic < MC ? M - ic : MC;
                    int64_t jend = jn + NU < nc ? jn + NU : nc;
                    for (int64_t ir = 0; ir < mc; ir += MR)
                        pack_a_panel(apack + ir * kc, a, sai, sak, ic + ir, mc - ir < MR ? mc - ir : MR, pc, kc);
                    for (int64_t jr = jn; jr < jend; jr += NR) {
                        const float *bp = bpack + (jr / NR) * kc * NR;
                        int n = (int)(nc - jr < NR ? nc - jr : NR);
                        for (int64_t ir = 0; ir < mc; ir += MR) {
                            int m = (int)(mc - ir < MR ? mc - ir : MR);
                            lg_cpu_uk(m, n, kc, apack + ir * kc, 1, MR, bp, NR, c + (ic + ir) * ldc + jc + jr, ldc,
                                      acc);
                        }
                    }
                }
            }
        }
        free(apack);
    }
    free(bpack);
}

// ---------------------------------------------------------------------------------------------------------
// Softmax row helpers (vector exp), compiled for both instruction sets.
LG_INLINE double exp_row_body(float *x, int64_t n, float mx) {
    lg_v8 s = lg_bc(0.0f), m = lg_bc(mx);
    double tot = 0;
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        lg_v8 e = lg_exp8(lg_ld(x + j) - m);
        lg_st(x + j, e);
        s += e;
        if ((j & 1023) == 1016) { tot += lg_hsum(s); s = lg_bc(0.0f); }  // fp64 every 1024 lanes
    }
    if (j < n) {
        float tmp[8] = {0};
        for (int64_t i = j; i < n; i++) tmp[i - j] = x[i] - mx;
        lg_v8 e = lg_exp8(lg_ld(tmp));
        for (int64_t i = j; i < n; i++) { x[i] = e[i - j]; tot += e[i - j]; }
    }
    return tot + lg_hsum(s);
}
LG_INLINE float max_row_body(const float *x, int64_t n) {
    float mx = -INFINITY;
    int64_t j = 0;
    if (n >= 8) {
        lg_v8 m = lg_ld(x);
        for (j = 8; j + 8 <= n; j += 8) m = lg_vmax(m, lg_ld(x + j));
        mx = lg_hmax(m);
    }
    for (; j < n; j++) mx = x[j] > mx ? x[j] : mx;
    return mx;
}
static double exp_row_generic(float *x, int64_t n, float mx) { return exp_row_body(x, n, mx); }
static float max_row_generic(const float *x, int64_t n) { return max_row_body(x, n); }
#if LG_CPU_X86
LG_AVX2_FN static double exp_row_avx2(float *x, int64_t n, float mx) { return exp_row_body(x, n, mx); }
LG_AVX2_FN static float max_row_avx2(const float *x, int64_t n) { return max_row_body(x, n); }
#endif

double lg_cpu_exp_row(float *x, int64_t n, float mx) {
#if LG_CPU_X86
    if (lg_cpu_avx2) return exp_row_avx2(x, n, mx);
#endif
    return exp_row_generic(x, n, mx);
}
float lg_cpu_max_row(const float *x, int64_t n) {
#if LG_CPU_X86
    if (lg_cpu_avx2) return max_row_avx2(x, n);
#endif
    return max_row_generic(x, n);
}
