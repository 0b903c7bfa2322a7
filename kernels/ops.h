// ops.h: the op interface. The model calls these and nothing else; each backend implements all of them
// with the same meaning (kernels/cpu: fp32 reference; kernels/cuda: bf16 activations, fp32 accumulation).
//
// Conventions
//   - Row-major. T = tokens in the micro-batch (B*S flattened; attention gets S and B separately).
//   - Weights follow HF: a linear layer's weight is (out, in) and y = x W^T.
//   - Forward ops write their outputs (=). Backward ops ADD into weight gradients (+=, so micro-batches
//     accumulate) and WRITE input gradients (=) unless the argument is documented as "+=".
//   - Every index into a token-sized buffer is 64-bit (128K x 32000 logits exceed int32).
//   - Buffers are backend memory (host for cpu, device for cuda) from ops->alloc.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "layout.h"

typedef struct lg_ops {
    const char *name;     // "cpu" or "cuda"
    size_t act_size;      // bytes per activation element (cpu 4, cuda 2)
    size_t param_size;    // bytes per weight element used by the ops (cpu 4, cuda 2)

    void *(*alloc)(size_t bytes);
    void (*free)(void *p);
    void (*zero)(void *p, size_t bytes);
    // fp32 host <-> backend buffers holding n elements of the given element size (act_size or 4).
    void (*upload)(void *dst, const float *src, size_t n, size_t elem_size);
    void (*download)(float *dst, const void *src, size_t n, size_t elem_size);
    void (*upload_i32)(int32_t *dst, const int32_t *src, size_t n);
    void (*sync)(void);

    // out (T,C) = wte[tokens[t]] ; wte (V,C)
    void (*embedding_fwd)(void *out, const int32_t *tokens, const void *wte, int64_t T, int C);
    // dwte (V,C) fp32 += scatter of dout (T,C)
    void (*embedding_bwd)(float *dwte, const void *dout, const int32_t *tokens, int64_t T, int C);

    // out (T,C) = inp / rms(inp) * w ; rstd (T) fp32 saved for backward
    void (*rmsnorm_fwd)(void *out, float *rstd, const void *inp, const void *w, int64_t T, int C, float eps);
    // dinp (T,C) += ; dw (C) fp32 +=
    void (*rmsnorm_bwd)(void *dinp, float *dw, const void *dout, const void *inp, const void *w, const float *rstd,
                        int64_t T, int C);

    // out (T,OC) = inp (T,C) @ w (OC,C)^T
    void (*matmul_fwd)(void *out, const void *inp, const void *w, int64_t T, int C, int OC);
    // dinp (T,C) = (or += when accumulate_dinp) dout @ w ; dw (OC,C) fp32 += dout^T @ inp. dinp may be NULL.
    void (*matmul_bwd)(void *dinp, float *dw, const void *dout, const void *inp, const void *w, int64_t T, int C,
                       int OC, int accumulate_dinp);

    // In place on x (T, H, D), half-split (HF rotate_half) form; cos/sin (S, D/2) fp32 tables for positions
    // 0..S-1 with any attention scaling folded in; token t has position t % S (B sequences of S).
    //   y[i] = x[i] c - x[i+D/2] s ;  y[i+D/2] = x[i+D/2] c + x[i] s
    void (*rope_fwd)(void *x, const float *cos, const float *sin, int64_t T, int S, int H, int D);
    // In place on dx (T, H, D): the transpose of rope_fwd.
    void (*rope_bwd)(void *dx, const float *cos, const float *sin, int64_t T, int S, int H, int D);

    // Causal attention under the layer's mask (layout.h), B sequences of S tokens, scale 1/sqrt(D).
    // q,out (B,S,H,D); k,v (B,S,KVH,D) (GQA: query head h uses KV head h / (H/KVH)); lse (B,H,S) fp32.
    void (*attention_fwd)(void *out, float *lse, const void *q, const void *k, const void *v, int B, int S, int H,
                          int KVH, int D, const lg_attn *mask);
    // dq (B,S,H,D), dk, dv (B,S,KVH,D) written (=).
    void (*attention_bwd)(void *dq, void *dk, void *dv, const void *dout, const void *q, const void *k, const void *v,
                          const void *out, const float *lse, int B, int S, int H, int KVH, int D, const lg_attn *mask);

    // out (T,F) = silu(gate) * up
    void (*swiglu_fwd)(void *out, const void *gate, const void *up, int64_t T, int F);
    // dgate, dup (T,F) written
    void (*swiglu_bwd)(void *dgate, void *dup, const void *dout, const void *gate, const void *up, int64_t T, int F);

    // x (n) += y (n)   (residual stream)
    void (*add_inplace)(void *x, const void *y, int64_t n);

    // Cross-entropy over logits (T,V) with targets (T) (target < 0: ignored). Returns the SUM of the
    // per-token losses (fp64 on the host) and overwrites logits with dlogits = (softmax - onehot) * dscale.
    double (*cross_entropy)(void *logits, const int32_t *targets, int64_t T, int V, float dscale);

    // Optimizer on fp32 master state (n elements): decoupled weight decay AdamW.
    // t is the 1-based step for bias correction; the trainer passes wd = 0 for tensors without decay (norms).
    void (*adamw)(float *param, const float *grad, float *m, float *v, int64_t n, float lr, float beta1, float beta2,
                  float eps, float wd, int t);
    // sum of squares of x (n) fp32, in fp64
    double (*sumsq)(const float *x, int64_t n);
    // x (n) *= s
    void (*scale)(float *x, int64_t n, float s);
    // dst (n) in the weight dtype = src fp32 master (cuda: cast to bf16; cpu: copy, may alias)
    void (*cast_params)(void *dst, const float *src, int64_t n);

    // x (n) += y (n), fp32 (a rank adds its reduced part of a gradient bucket into its ZeRO-2 shard)
    void (*add_f32)(float *x, const float *y, int64_t n);

    // Activation offload (memory.offload_activations): page-locked host memory and asynchronous copies on a
    // copy stream of their own, ordered after the compute work queued so far. copy_wait(slot) makes the
    // compute work queued next wait for the copy last started with that slot (slots 0..7). cpu: malloc,
    // memcpy, no-op.
    void *(*host_alloc)(size_t bytes);
    void (*host_free)(void *p);
    void (*copy_async)(void *dst, const void *src, size_t bytes, int slot);
    void (*copy_wait)(int slot);

    // Attention implementation for the following calls (cuda only; NULL on cpu, which has one).
    // backend: LG_ATTN_BACKEND_*; deterministic != 0: every backward bitwise reproducible (native kernels,
    // no atomics), whatever backend says.
    void (*attention_options)(int backend, int deterministic);

    // Frees what the backend keeps for the life of the process (cuda: GEMM workspace and plans, scratch slots,
    // attention tile lists and workspaces, cuDNN plans, the copy stream), after finishing queued work. Call it
    // last, after every buffer of the backend is freed; using the table afterwards needs lg_ops_cuda() again.
    // Memory checkers (compute-sanitizer --leak-check full) then see no leak. cpu: nothing to free.
    void (*release)(void);
} lg_ops;

enum { LG_ATTN_BACKEND_AUTO = 0, LG_ATTN_BACKEND_CUDNN = 1, LG_ATTN_BACKEND_NATIVE = 2 };

const lg_ops *lg_ops_cpu(void);
// NULL when built without CUDA or no GPU is present (reason in *why).
const lg_ops *lg_ops_cuda(const char **why);
