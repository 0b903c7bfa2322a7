// gemm.cu: the linear layers on cuBLASLt, bf16 operands with fp32 accumulation (CUBLAS_COMPUTE_32F).
//   out  (T,OC) bf16       = inp (T,C) @ w (OC,C)^T
//   dinp (T,C)  bf16       = (or +=, beta 1) dout (T,OC) @ w (OC,C)
//   dw   (OC,C) fp32      += dout^T @ inp             (bf16 A/B, fp32 C/D: gradients accumulate in fp32)
// cuBLAS is column-major: a row-major (R,K) matrix is a column-major (K,R) one with ld K, so every product is
// written for the transposes (out^T = w . inp^T etc.). A plan (matmul descriptor, the four layouts and the
// algorithm chosen by the heuristic) is built once per shape and kept in a small hash table; the workspace is
// allocated once. When the heuristic offers no algorithm (odd leading dimensions, unaligned pointers) the plan
// remembers that and the product goes through cublasGemmEx, which takes any shape.
#include <string.h>

#include <cublasLt.h>
#include <cublas_v2.h>

#include "kernels/cuda/ops_cuda.h"

enum { OP_FWD = 0, OP_DINP = 1, OP_DW = 2 };
enum { NPLAN = 256, WORKSPACE = 32 << 20 };  // 32 MiB: what cuBLAS recommends for Hopper

typedef struct {
    // key
    int used, op, accumulate;
    int64_t m, n, k;
    unsigned align;  // 4 x 8 bits: the pointers' alignment (log2, capped at 8 = 256 bytes) of A, B, C, D
    // plan
    int lt;  // 1: cublasLtMatmul with algo; 0: cublasGemmEx
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;
} plan_t;

static cublasLtHandle_t g_lt;
static cublasHandle_t g_blas;  // fallback only, created on first use
static void *g_ws;
static plan_t g_plans[NPLAN];

void lg_cu_gemm_init(void) {
    cublasCheck(cublasLtCreate(&g_lt));
    cudaCheck(cudaMalloc(&g_ws, WORKSPACE));
}

static void plan_destroy(plan_t *p);

// Frees the cuBLASLt handle, workspace, plans and the fallback handle; lg_cu_gemm_init() makes it usable again.
void lg_cu_gemm_release(void) {
    for (int i = 0; i < NPLAN; i++) plan_destroy(&g_plans[i]);
    if (g_blas) cublasCheck(cublasDestroy(g_blas));
    if (g_lt) cublasCheck(cublasLtDestroy(g_lt));
    if (g_ws) cudaCheck(cudaFree(g_ws));
    g_blas = NULL;
    g_lt = NULL;
    g_ws = NULL;
}

static unsigned align_log2(const void *p) {
    uintptr_t a = (uintptr_t)p;
    unsigned l = 0;
    while (l < 8 && !(a & ((uintptr_t)1 << l))) l++;
    return l;
}

// Column-major problem: D (m,n) = alpha op(A) op(B) + beta C, A (rows ar, cols ac, ld lda) etc.
typedef struct {
    int op;
    cublasOperation_t ta, tb;
    int64_t m, n, k, lda, ldb, ldc;
    cudaDataType_t tc;  // C/D type
} prob_t;

static void plan_destroy(plan_t *p) {
    if (!p->used) return;
    cublasCheck(cublasLtMatrixLayoutDestroy(p->la));
    cublasCheck(cublasLtMatrixLayoutDestroy(p->lb));
    cublasCheck(cublasLtMatrixLayoutDestroy(p->lc));
    cublasCheck(cublasLtMatmulDescDestroy(p->desc));
    p->used = 0;
}

static void plan_build(plan_t *p, const prob_t *q, int accumulate, unsigned align) {
    p->used = 1;
    p->op = q->op;
    p->accumulate = accumulate;
    p->m = q->m, p->n = q->n, p->k = q->k;
    p->align = align;
    cublasCheck(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasCheck(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &q->ta, sizeof q->ta));
    cublasCheck(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &q->tb, sizeof q->tb));
    // stored shapes: op(A) is (m,k), op(B) is (k,n)
    int64_t ar = q->ta == CUBLAS_OP_N ? q->m : q->k, ac = q->ta == CUBLAS_OP_N ? q->k : q->m;
    int64_t br = q->tb == CUBLAS_OP_N ? q->k : q->n, bc = q->tb == CUBLAS_OP_N ? q->n : q->k;
    cublasCheck(cublasLtMatrixLayoutCreate(&p->la, CUDA_R_16BF, (uint64_t)ar, (uint64_t)ac, q->lda));
    cublasCheck(cublasLtMatrixLayoutCreate(&p->lb, CUDA_R_16BF, (uint64_t)br, (uint64_t)bc, q->ldb));
    cublasCheck(cublasLtMatrixLayoutCreate(&p->lc, q->tc, (uint64_t)q->m, (uint64_t)q->n, q->ldc));

    cublasLtMatmulPreference_t pref;
    cublasCheck(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t ws = WORKSPACE;
    cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    // Tell the heuristic how aligned the pointers really are (its default assumes 256 bytes).
    cublasLtMatmulPreferenceAttributes_t at[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (int i = 0; i < 4; i++) {
        uint32_t b = 1u << ((align >> (8 * i)) & 0xff);
        cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, at[i], &b, sizeof b));
    }
    cublasLtMatmulHeuristicResult_t res;
    int nres = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(g_lt, p->desc, p->la, p->lb, p->lc, p->lc, pref, 1, &res, &nres);
    cublasCheck(cublasLtMatmulPreferenceDestroy(pref));
    if (st == CUBLAS_STATUS_SUCCESS && nres > 0) {
        p->lt = 1;
        p->algo = res.algo;
    } else {
        if (st != CUBLAS_STATUS_SUCCESS && st != CUBLAS_STATUS_NOT_SUPPORTED) cublasCheck(st);
        p->lt = 0;
    }
}

static plan_t *plan_get(const prob_t *q, int accumulate, unsigned align) {
    uint64_t h = 1469598103934665603ull;
    int64_t key[6] = {q->op, accumulate, q->m, q->n, q->k, (int64_t)align};
    for (int i = 0; i < 6; i++) h = (h ^ (uint64_t)key[i]) * 1099511628211ull;
    unsigned home = (unsigned)(h % NPLAN);
    for (int probe = 0; probe < 8; probe++) {
        plan_t *p = &g_plans[(home + probe) % NPLAN];
        if (!p->used) {
            plan_build(p, q, accumulate, align);
            return p;
        }
        if (p->op == q->op && p->accumulate == accumulate && p->m == q->m && p->n == q->n && p->k == q->k &&
            p->align == align)
            return p;
    }
    plan_t *p = &g_plans[home];  // crowded: replace the home slot
    plan_destroy(p);
    plan_build(p, q, accumulate, align);
    return p;
}

static void gemm(const prob_t *q, const void *A, const void *B, void *D, float beta) {
    if (q->m <= 0 || q->n <= 0) return;
    if (q->k <= 0) {  // empty sum: D = beta D
        size_t es = q->tc == CUDA_R_32F ? 4 : 2;
        if (beta == 0.0f) cudaCheck(cudaMemsetAsync(D, 0, (size_t)(q->m * q->n) * es, LG_CU_STREAM));
        return;
    }
    unsigned align = align_log2(A) | align_log2(B) << 8 | align_log2(D) << 16 | align_log2(D) << 24;
    plan_t *p = plan_get(q, beta != 0.0f, align);
    const float alpha = 1.0f;
    if (p->lt) {
        cublasStatus_t st = cublasLtMatmul(g_lt, p->desc, &alpha, A, p->la, B, p->lb, &beta, D, p->lc, D, p->lc,
                                           &p->algo, g_ws, WORKSPACE, LG_CU_STREAM);
        if (st != CUBLAS_STATUS_NOT_SUPPORTED) {
            cublasCheck(st);
            return;
        }
        p->lt = 0;  // the heuristic's choice refused this shape: use cublasGemmEx for it from now on
    }
    if (!g_blas) {
        cublasCheck(cublasCreate(&g_blas));
        cublasCheck(cublasSetStream(g_blas, LG_CU_STREAM));
    }
    if (q->m > 2147483647 || q->n > 2147483647 || q->k > 2147483647)
        lg_cu_die("matmul: shape m=%lld n=%lld k=%lld exceeds cublasGemmEx's int range", (long long)q->m,
                  (long long)q->n, (long long)q->k);
    cublasCheck(cublasGemmEx(g_blas, q->ta, q->tb, (int)q->m, (int)q->n, (int)q->k, &alpha, A, CUDA_R_16BF,
                             (int)q->lda, B, CUDA_R_16BF, (int)q->ldb, &beta, D, q->tc, (int)q->ldc, CUBLAS_COMPUTE_32F,
                             CUBLAS_GEMM_DEFAULT));
}

// out (T,OC) = inp (T,C) @ w (OC,C)^T  ->  out^T (OC,T) = op_T(w: col-major (C,OC)) . inp^T (C,T)
void lg_cu_matmul_fwd(void *out, const void *inp, const void *w, int64_t T, int C, int OC) {
    prob_t q = {OP_FWD, CUBLAS_OP_T, CUBLAS_OP_N, OC, T, C, C, C, OC, CUDA_R_16BF};
    gemm(&q, w, inp, out, 0.0f);
}

void lg_cu_matmul_bwd(void *dinp, float *dw, const void *dout, const void *inp, const void *w, int64_t T, int C,
                      int OC, int accumulate_dinp) {
    if (dinp) {
        // dinp^T (C,T) = w^T as col-major (C,OC) . dout^T (OC,T)
        prob_t q = {OP_DINP, CUBLAS_OP_N, CUBLAS_OP_N, C, T, OC, C, OC, C, CUDA_R_16BF};
        gemm(&q, w, dout, dinp, accumulate_dinp ? 1.0f : 0.0f);
    }
    if (dw) {
        // dw^T (C,OC) += inp^T (C,T) . op_T(dout^T (OC,T)) ; fp32 C/D
        prob_t q = {OP_DW, CUBLAS_OP_N, CUBLAS_OP_T, C, OC, T, C, OC, C, CUDA_R_32F};
        gemm(&q, inp, dout, dw, 1.0f);
    }
}
