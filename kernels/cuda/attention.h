// attention.h: native flash attention (forward and backward) for every layout kind (kernels/layout.h),
// bf16 in/out, fp32 softmax statistics, tensor cores (wgmma on sm_90a, mma.sync otherwise). C-callable.
//
// Shapes (ops.h): q, out, dq (B,S,H,D); k, v, dk, dv (B,S,KVH,D); lse (B,H,S) fp32 natural log of
// sum_k exp(q.k * scale) over the visible keys, scale = 1/sqrt(D). Query head h uses KV head h / (H/KVH).
// All pointers are device memory; bf16 tensors are __nv_bfloat16. D must be 64 or 128; BLOCK_SPARSE needs
// block % 64 == 0 (the kernels' tile is 64 tokens).
#pragma once
#include <cuda_runtime.h>

#include "kernels/layout.h"

#ifdef __cplusplus
extern "C" {
#endif

// out (B,S,H,D) and lse (B,H,S) written (=). A row with no visible key gets out = 0 and lse = -inf.
void lg_cuda_attention_fwd(void *out, float *lse, const void *q, const void *k, const void *v, int B, int S, int H,
                           int KVH, int D, const lg_attn *mask, cudaStream_t stream);

// dq (B,S,H,D), dk, dv (B,S,KVH,D) written (=). Needs out and lse of the forward.
// deterministic != 0: no atomics anywhere; two runs give bit-identical gradients (dK/dV per key tile over its
// query tiles in ascending order, dQ by a separate pass over each query tile's key tiles: 7 matrix products
// per tile pair). deterministic == 0: dQ is accumulated inside the dK/dV pass with fp32 atomics (5 products;
// faster, but the summation order of dQ varies from run to run). Uses a device workspace of B*S*H*4 bytes
// (twice that with variant bit 16; plus B*S*H*D*4 for the atomic path), kept between calls.
void lg_cuda_attention_bwd(void *dq, void *dk, void *dv, const void *dout, const void *q, const void *k, const void *v,
                           const void *out, const float *lse, int B, int S, int H, int KVH, int D, const lg_attn *mask,
                           int deterministic, cudaStream_t stream);

// For benchmarks: which forward build runs, 2 (default) or 3 resident CTAs per SM (registers capped at 168).
void lg_cuda_attention_tune(int fwd_blocks_per_sm);

// Which kernels run: -1 (default) the wgmma (sm_90a) kernels for the forward and the deterministic backward
// where the binary has sm_90a code for the device, else the mma.sync ones; 0 always mma.sync; 1 wgmma where
// available. The environment variable LG_ATTN_IMPL=mma has the effect of 0 while the setting is -1. The atomic
// backward (deterministic == 0) is mma.sync only. lg_cuda_attention_impl() says which one runs (1 = wgmma).
void lg_cuda_attention_set_impl(int impl);
int lg_cuda_attention_impl(void);
// wgmma variants, bit flags: 1 pipelined forward (S of the next key tile on the tensor cores during the
// softmax), 2 pipelined dK/dV, 4 pipelined dQ (P computed while dP is on the tensor cores); 128 the v7
// forward (K/V tiles by TMA onto mbarriers instead of cp.async; over bit 1), 64 with it: three stages; 256
// the TMA backward (dK/dV's Q/dO and dQ's K/V tiles by TMA; split waits); 512 with 128: Q in registers,
// three CTAs per SM; v4
// (measured slower, opt-in): 8 forward with 128 queries per CTA, 16 dK/dV with 128 keys per CTA, 32 dQ with
// 128 queries per CTA (two warpgroups share each loaded tile; bit 8 overrides 1 and 128; 62 = all of v4 with
// split waits). -1 = default (the fastest measured; env LG_ATTN_PIPE=<flags> overrides it). Each variant is
// bitwise deterministic, and every variant computes the same products in the same order per 64-row tile
// (6, 134, 198, 390, 454 and 902 give bit-identical results). 1024 with 128: the v10 forward, three
// warpgroups sharing each K/V tile (the same outputs as v7; lse may differ in the last bit). Default 1926
// (v10 + TMA backward + split waits). 2048 with 256: dQ with three warpgroups sharing each K/V tile
// (bit-identical to the 64-row dQ; measured ~1% faster, opt-in).
void lg_cuda_attention_set_variant(int flags);
int lg_cuda_attention_variant(void);  // the flags in effect
// Host-only check of the v10 triple lists against the per-tile lists (no device needed): 1 = ok, else 0 with
// the first difference in err.
int lg_cuda_attention_check_lists(const lg_attn *mask, int KVH, int S, char *err, size_t errlen);

// The sink part of SINK_WINDOW for the cuDNN path (attention_cudnn.cu): the keys k < sink that query q sees
// only through the sink (q - k >= window), for a result (out, lse / dq, dk, dv) that already holds the causal +
// window part. Forward: merges by log-sum-exp into out and lse in place. Backward (lse, out: the merged
// forward's): adds the sink share into dq (rows >= window) and dk, dv (rows < sink); deterministic (chunk
// partials summed in a fixed order; a device workspace of B*H*ceil((S-window)/2048)*64 KB*D/128 bytes).
// Supported: head_dim 64 or 128, 1 <= sink <= 64, 1 <= window < S (else the caller keeps cuDNN's sink call).
int lg_cuda_attention_sink_supported(int S, int H, int KVH, int D, int sink, int window);
void lg_cuda_attention_sink_fwd(void *out, float *lse, const void *q, const void *k, const void *v, int B, int S, int H,
                                int KVH, int D, int sink, int window, cudaStream_t stream);
void lg_cuda_attention_sink_bwd(void *dq, void *dk, void *dv, const void *dout, const void *q, const void *k,
                                const void *v, const void *out, const float *lse, int B, int S, int H, int KVH, int D,
                                int sink, int window, cudaStream_t stream);

// Frees the cached tile lists and the backward workspace (they are rebuilt on the next call).
void lg_cuda_attention_release(void);

#ifdef __cplusplus
}
#endif
