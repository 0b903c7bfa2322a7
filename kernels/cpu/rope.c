// rope.c: rotary position embedding in the half-split (HF rotate_half) form, in place.
#include "kernels/cpu/ops_cpu.h"
#include "trainer/util.h"

// x (T,H,D); cos/sin (S, D/2); token t has position t % S.
//   y[i] = x[i] c - x[i+D/2] s ;  y[i+D/2] = x[i+D/2] c + x[i] s
void lg_cpu_rope_fwd(void *x, const float *cos, const float *sin, int64_t T, int S, int H, int D) {
    if (D % 2) lg_die("rope_fwd: head_dim %d must be even", D);
    float *p = (float *)x;
    int half = D / 2;
#pragma omp parallel for schedule(static) if (T * H * D > 65536)
    for (int64_t t = 0; t < T; t++) {
        const float *c = cos + (t % S) * half, *s = sin + (t % S) * half;
        for (int h = 0; h < H; h++) {
            float *v = p + (t * H + h) * D;
            for (int i = 0; i < half; i++) {
                float a = v[i], b = v[i + half];
                v[i] = a * c[i] - b * s[i];
                v[i + half] = b * c[i] + a * s[i];
            }
        }
    }
}

// The transpose of rope_fwd: dx[i] = dy[i] c + dy[i+D/2] s ; dx[i+D/2] = dy[i+D/2] c - dy[i] s
void lg_cpu_rope_bwd(void *dx, const float *cos, const float *sin, int64_t T, int S, int H, int D) {
    if (D % 2) lg_die("rope_bwd: head_dim %d must be even", D);
    float *p = (float *)dx;
    int half = D / 2;
#pragma omp parallel for schedule(static) if (T * H * D > 65536)
    for (int64_t t = 0; t < T; t++) {
        const float *c = cos + (t % S) * half, *s = sin + (t % S) * half;
        for (int h = 0; h < H; h++) {
            float *v = p + (t * H + h) * D;
            for (int i = 0; i < half; i++) {
                float a = v[i], b = v[i + half];
                v[i] = a * c[i] + b * s[i];
                v[i + half] = b * c[i] - a * s[i];
            }
        }
    }
}
