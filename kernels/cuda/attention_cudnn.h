// attention_cudnn.h: cuDNN fused attention (forward and backward) built through the cuDNN backend graph API,
// for the FULL and SINK_WINDOW layout kinds. C-callable. Same contract as attention.h (the native kernels):
//
//   q, out, dq (B,S,H,D); k, v, dk, dv (B,S,KVH,D) bf16, device memory; lse (B,H,S) fp32, the natural log of
//   sum_k exp(q.k * scale) over the visible keys, scale = 1/sqrt(D); query head h uses KV head h / (H/KVH).
//   A row with no visible key has lse = -inf and out = 0 (never happens for FULL or SINK_WINDOW: the diagonal
//   is always visible). The LSE convention is the native kernels', so either backward accepts either forward.
//
// FULL: one causal graph. SINK_WINDOW (layout.h: k <= q and (k < sink or q - k < window)): call 1 is causal +
// window (keys q-window < k <= q) over all keys; call 2 sees only the first `sink` keys with k <= q - window
// (the sink keys the window misses; disjoint from call 1). The two are merged by log-sum-exp:
//   L = logaddexp(L1, L2), O = O1 exp(L1 - L) + O2 exp(L2 - L).
// Backward: both calls' backward graphs run with the MERGED O and L (P_i = exp(s - L) is then the merged
// softmax restricted to each call's keys, and rowsum(dO * O) is the merged delta), dQ = dQ1 + dQ2 and call 2's
// dK, dV are added into the first `sink` key rows.
// BLOCK_SPARSE is not expressible in cuDNN on Hopper: the calls return LG_CUDNN_UNSUPPORTED.
//
// Before a configuration (kind, which calls, GQA ratio, head_dim) is first used, cuDNN and the native kernels
// run one small random problem of that structure (1100 tokens); if they disagree by more than 2e-2, cuDNN is not
// used for it (a cuDNN release can accept a graph and compute it wrongly). LG_CUDNN_NO_SELFCHECK=1 skips this.
// Plans are built on first use per (direction, B, S, H, KVH, D, window, sink) and cached; the first build of a
// shape takes about a second (cuDNN compiles the kernel at run time). Scratch (cuDNN workspace, dQ_accum fp32
// (B,H,S,D), softmax_sum (B,H,S), SINK_WINDOW's second output) is allocated on first need and reused.
#pragma once
#include <stddef.h>

#include <cuda_runtime.h>

#include "kernels/layout.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { LG_CUDNN_OK = 0, LG_CUDNN_UNSUPPORTED = 1 };

// Forward: out, lse written (=). Returns LG_CUDNN_OK, or LG_CUDNN_UNSUPPORTED without touching any output when
// cuDNN is absent, too old, or rejects this mask/shape (a warning naming the reason is printed once per shape);
// the caller then runs the native kernel.
int lg_cuda_attention_cudnn_fwd(void *out, float *lse, const void *q, const void *k, const void *v, int B, int S,
                                int H, int KVH, int D, const lg_attn *mask, cudaStream_t stream);

// Backward: dq, dk, dv written (=), from the forward's out and lse (of either backend). Not bitwise
// reproducible (cuDNN accumulates dQ with atomics). Same return convention as the forward.
int lg_cuda_attention_cudnn_bwd(void *dq, void *dk, void *dv, const void *dout, const void *q, const void *k,
                                const void *v, const void *out, const float *lse, int B, int S, int H, int KVH,
                                int D, const lg_attn *mask, cudaStream_t stream);

// Device bytes the cuDNN path keeps allocated for this shape (forward and backward together), for the memory
// planner: dQ_accum B*H*S*D*4 + softmax_sum B*H*S*4 + the plans' workspace (exact once planned; before that
// an upper estimate: 64 MiB, plus B*H*S*D*4 for GQA, whose backward reduces dK/dV over query heads in
// workspace) + for SINK_WINDOW the second call's output B*S*H*D*2 and lse B*H*S*4 and dK/dV B*sink*KVH*D*4.
// 0 for BLOCK_SPARSE. Needs no GPU.
size_t lg_cuda_attention_cudnn_workspace_bytes(int B, int S, int H, int KVH, int D, const lg_attn *mask);

// The cuDNN version the program loaded (e.g. 91900 for 9.19.0), 0 when built without cuDNN. Needs no GPU.
int lg_cuda_attention_cudnn_version(void);

// 1 when the loaded cuDNN is usable for fused attention at all (version checks; no graph is built). When 0,
// *why (if not NULL) says why.
int lg_cuda_attention_cudnn_usable(const char **why);

// Frees the plans, the handle and the scratch (rebuilt on next use).
void lg_cuda_attention_cudnn_release(void);

#ifdef __cplusplus
}
#endif
