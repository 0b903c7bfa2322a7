// matmul.c: linear layers, y = x W^T with HF (out, in) weights, on the packed GEMM of gemm.c.
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/ops_cpu.h"

// out (T,OC) = inp (T,C) @ w (OC,C)^T
void lg_cpu_matmul_fwd(void *out, const void *inp, const void *w, int64_t T, int C, int OC) {
    // A = inp (rows t, k = c), B[k=c][j=o] = w[o*C + c]
    lg_cpu_gemm((float *)out, OC, (const float *)inp, C, 1, (const float *)w, 1, C, T, OC, C, 0);
}

// dinp (T,C) = / += dout (T,OC) @ w (OC,C) ; dw (OC,C) += dout^T @ inp (T,C)
void lg_cpu_matmul_bwd(void *dinp, float *dw, const void *dout, const void *inp, const void *w, int64_t T, int C,
                       int OC, int accumulate_dinp) {
    const float *g = (const float *)dout;
    if (dinp) lg_cpu_gemm((float *)dinp, C, g, OC, 1, (const float *)w, C, 1, T, C, OC, accumulate_dinp);
    // A[i=o][k=t] = dout[t*OC + o], B[k=t][j=c] = inp[t*C + c]: rows of dw are owned by one thread each.
    if (dw) lg_cpu_gemm(dw, C, g, 1, OC, (const float *)inp, C, 1, OC, C, T, 1);
}
