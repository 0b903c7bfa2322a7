// norm.c: RMSNorm as in HF LlamaRMSNorm: y = x / sqrt(mean(x^2) + eps) * w, the mean in fp64.
#include <math.h>
#include <stdlib.h>

#include "kernels/cpu/ops_cpu.h"
#include "trainer/util.h"

// out (T,C), rstd (T) = 1/rms, inp (T,C), w (C)
void lg_cpu_rmsnorm_fwd(void *out, float *rstd, const void *inp, const void *w, int64_t T, int C, float eps) {
    float *o = (float *)out;
    const float *x = (const float *)inp, *g = (const float *)w;
#pragma omp parallel for schedule(static) if (T * C > 65536)
    for (int64_t t = 0; t < T; t++) {
        const float *xt = x + t * C;
        double ss = 0;
        for (int c = 0; c < C; c++) ss += (double)xt[c] * xt[c];
        float r = (float)(1.0 / sqrt(ss / C + (double)eps));
        rstd[t] = r;
        float *ot = o + t * C;
        for (int c = 0; c < C; c++) ot[c] = (xt[c] * r) * g[c];
    }
}

// y_c = x_c r w_c, r = (mean x^2 + eps)^-1/2:
//   dx_c = r w_c dy_c - r^3 x_c / C * sum_j w_j dy_j x_j ;  dw_c = sum_t dy_c x_c r
// dinp (T,C) += ; dw (C) +=
void lg_cpu_rmsnorm_bwd(void *dinp, float *dw, const void *dout, const void *inp, const void *w, const float *rstd,
                        int64_t T, int C) {
    float *dx = (float *)dinp;
    const float *dy = (const float *)dout, *x = (const float *)inp, *g = (const float *)w;
#pragma omp parallel for schedule(static) if (T * C > 65536)
    for (int64_t t = 0; t < T; t++) {
        const float *dyt = dy + t * C, *xt = x + t * C;
        float r = rstd[t];
        double dot = 0;
        for (int c = 0; c < C; c++) dot += (double)g[c] * dyt[c] * xt[c];
        float k = (float)((double)r * r * r * dot / C);
        float *dxt = dx + t * C;
        for (int c = 0; c < C; c++) dxt[c] += r * g[c] * dyt[c] - k * xt[c];
    }
    // dw: threads own column ranges (no races, fixed order), fp64 column sums.
    enum { CB = 64 };
    int nb = (C + CB - 1) / CB;
#pragma omp parallel for schedule(static) if (T * C > 65536)
    for (int b = 0; b < nb; b++) {
        int c0 = b * CB, c1 = c0 + CB < C ? c0 + CB : C;
        double acc[CB] = {0};
        for (int64_t t = 0; t < T; t++) {
            const float *dyt = dy + t * C, *xt = x + t * C;
            float r = rstd[t];
            for (int c = c0; c < c1; c++) acc[c - c0] += (double)(dyt[c] * xt[c] * r);
        }
        for (int c = c0; c < c1; c++) dw[c] += (float)acc[c - c0];
    }
}
