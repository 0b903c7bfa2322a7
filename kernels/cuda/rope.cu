// rope.cu: rotary position embedding in the half-split (HF rotate_half) form, in place on bf16 (T,H,D).
// The angles come precomputed in fp32 tables cos/sin (S, D/2) (trainer/rope.c computes them in fp64), so no
// position x frequency product is ever formed in low precision. One thread rotates 8 pairs (i, i + D/2):
// two 16-byte loads and stores of x, four of the tables. Token t has position t % S.
#include "kernels/cuda/ops_cuda.h"

// fwd: y[i] = x[i] c - x[i+h] s ; y[i+h] = x[i+h] c + x[i] s.   bwd (the transpose): sign of s flipped.
__global__ void rope_kernel(bf16 *__restrict__ x, const float *__restrict__ cos_t, const float *__restrict__ sin_t,
                            int64_t rows, int S, int H, int D, float sgn, int vec) {
    int half = D / 2, gph = (half + 7) / 8;  // groups of 8 pairs per head
    int64_t item = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (item >= rows * gph) return;
    int64_t row = item / gph;  // t * H + h
    int i0 = (int)(item - row * gph) * 8;
    int n = half - i0 < 8 ? half - i0 : 8;
    int64_t pos = (row / H) % S;
    bf16 *a = x + row * D + i0, *b = a + half;
    const float *c = cos_t + pos * half + i0, *s = sin_t + pos * half + i0;
    float av[8], bv[8], cv[8], sv[8];
    lg_ld8n(a, n, vec, av);
    lg_ld8n(b, n, vec, bv);
    if (vec && n == 8) {
        float4 c0 = *(const float4 *)c, c1 = *(const float4 *)(c + 4);
        float4 s0 = *(const float4 *)s, s1 = *(const float4 *)(s + 4);
        cv[0] = c0.x, cv[1] = c0.y, cv[2] = c0.z, cv[3] = c0.w, cv[4] = c1.x, cv[5] = c1.y, cv[6] = c1.z, cv[7] = c1.w;
        sv[0] = s0.x, sv[1] = s0.y, sv[2] = s0.z, sv[3] = s0.w, sv[4] = s1.x, sv[5] = s1.y, sv[6] = s1.z, sv[7] = s1.w;
    } else {
#pragma unroll
        for (int i = 0; i < 8; i++) {
            cv[i] = i < n ? c[i] : 0.0f;
            sv[i] = i < n ? s[i] : 0.0f;
        }
    }
    float ya[8], yb[8];
#pragma unroll
    for (int i = 0; i < 8; i++) {
        float si = sgn * sv[i];
        ya[i] = av[i] * cv[i] - bv[i] * si;
        yb[i] = bv[i] * cv[i] + av[i] * si;
    }
    lg_st8n(a, n, vec, ya);
    lg_st8n(b, n, vec, yb);
}

static void rope(void *x, const float *cos_t, const float *sin_t, int64_t T, int S, int H, int D, float sgn,
                 const char *op) {
    if (D % 2) lg_cu_die("%s: head_dim %d must be even", op, D);
    if (T <= 0 || H <= 0 || D <= 0) return;
    if (S <= 0) lg_cu_die("%s: sequence length %d must be positive", op, S);
    int half = D / 2;
    int64_t items = T * H * ((half + 7) / 8);
    // vector path: 8 | D/2 makes every group start 16-byte aligned in x and 32-byte aligned in the tables
    int vec = half % 8 == 0 && lg_cu_al16(x) && lg_cu_al16(cos_t) && lg_cu_al16(sin_t);
    rope_kernel<<<lg_cu_blocks(items, 256), 256, 0, LG_CU_STREAM>>>((bf16 *)x, cos_t, sin_t, T * H, S, H, D, sgn, vec);
    cudaCheckLaunch("rope_kernel");
}

void lg_cu_rope_fwd(void *x, const float *cos_t, const float *sin_t, int64_t T, int S, int H, int D) {
    rope(x, cos_t, sin_t, T, S, H, D, 1.0f, "rope_fwd");
}
void lg_cu_rope_bwd(void *dx, const float *cos_t, const float *sin_t, int64_t T, int S, int H, int D) {
    rope(dx, cos_t, sin_t, T, S, H, D, -1.0f, "rope_bwd");
}
