// swiglu.c: the SwiGLU MLP nonlinearity, out = silu(gate) * up.
#include <math.h>

#include "kernels/cpu/ops_cpu.h"

// sigmoid that never overflows: exp of a non-positive argument only.
static inline float sigmoidf(float x) {
    if (x >= 0) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

// out, gate, up (T,F)
void lg_cpu_swiglu_fwd(void *out, const void *gate, const void *up, int64_t T, int F) {
    float *o = (float *)out;
    const float *g = (const float *)gate, *u = (const float *)up;
    int64_t n = T * F;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) o[i] = g[i] * sigmoidf(g[i]) * u[i];
}

// d silu(g)/dg = s (1 + g (1 - s)), s = sigmoid(g)
void lg_cpu_swiglu_bwd(void *dgate, void *dup, const void *dout, const void *gate, const void *up, int64_t T, int F) {
    float *dg = (float *)dgate, *du = (float *)dup;
    const float *dy = (const float *)dout, *g = (const float *)gate, *u = (const float *)up;
    int64_t n = T * F;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        float s = sigmoidf(g[i]), x = g[i], d = dy[i];
        dg[i] = d * u[i] * s * (1.0f + x * (1.0f - s));
        du[i] = d * x * s;
    }
}
