// ops_cpu.h: the CPU backend's op functions, gathered into the lg_ops table by ops_cpu.c.
// Meanings, shapes and conventions: kernels/ops.h.
#pragma once
#include <stdint.h>

#include "kernels/layout.h"

void lg_cpu_embedding_fwd(void *out, const int32_t *tokens, const void *wte, int64_t T, int C);
void lg_cpu_embedding_bwd(float *dwte, const void *dout, const int32_t *tokens, int64_t T, int C);
void lg_cpu_rmsnorm_fwd(void *out, float *rstd, const void *inp, const void *w, int64_t T, int C, float eps);
void lg_cpu_rmsnorm_bwd(void *dinp, float *dw, const void *dout, const void *inp, const void *w, const float *rstd,
                        int64_t T, int C);
void lg_cpu_matmul_fwd(void *out, const void *inp, const void *w, int64_t T, int C, int OC);
void lg_cpu_matmul_bwd(void *dinp, float *dw, const void *dout, const void *inp, const void *w, int64_t T, int C,
                       int OC, int accumulate_dinp);
void lg_cpu_rope_fwd(void *x, const float *cos, const float *sin, int64_t T, int S, int H, int D);
void lg_cpu_rope_bwd(void *dx, const float *cos, const float *sin, int64_t T, int S, int H, int D);
void lg_cpu_attention_fwd(void *out, float *lse, const void *q, const void *k, const void *v, int B, int S, int H,
                          int KVH, int D, const lg_attn *mask);
void lg_cpu_attention_bwd(void *dq, void *dk, void *dv, const void *dout, const void *q, const void *k,
                          const void *v, const void *out, const float *lse, int B, int S, int H, int KVH, int D,
                          const lg_attn *mask);
void lg_cpu_swiglu_fwd(void *out, const void *gate, const void *up, int64_t T, int F);
void lg_cpu_swiglu_bwd(void *dgate, void *dup, const void *dout, const void *gate, const void *up, int64_t T, int F);
double lg_cpu_cross_entropy(void *logits, const int32_t *targets, int64_t T, int V, float dscale);
void lg_cpu_adamw(float *param, const float *grad, float *m, float *v, int64_t n, float lr, float beta1, float beta2,
                  float eps, float wd, int t);
