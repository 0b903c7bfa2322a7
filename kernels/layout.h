// layout.h: the ONE definition of which keys each query may attend to, per layer.
// The CPU reference, the CUDA kernels, the memory planner and the KV-cache sizing all call this.
//
// Kinds (DESIGN.md):
//   FULL          causal: key k visible to query q iff k <= q.
//   SINK_WINDOW   k <= q and (k < sink or q - k < window).
//   BLOCK_SPARSE  blocks of `block` tokens; query block qb sees key block kb (kb <= qb) iff
//                 qb - kb < local_blocks or (kb + h*step) % vert_stride == 0, step = max(1, vert_stride / n_kv_heads),
//                 h the KV head (query heads of one GQA group share it); token-level causal inside the diagonal block.
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {  // the CUDA backend (.cu, compiled as C++) calls these too
#endif

typedef enum { LG_ATTN_FULL = 0, LG_ATTN_SINK_WINDOW = 1, LG_ATTN_BLOCK_SPARSE = 2 } lg_attn_kind;

typedef struct {
    lg_attn_kind kind;
    int sink, window;                        // SINK_WINDOW, in tokens
    int block, local_blocks, vert_stride;    // BLOCK_SPARSE (block in tokens, the others in blocks)
} lg_attn;

const char *lg_attn_kind_name(lg_attn_kind k);
// "full", "sink_window(sink=64,window=2048)", "block_sparse(block=64,local=16,stride=64)".
void lg_attn_describe(const lg_attn *a, char *buf, int n);

// Token-level mask: may query position q attend to key position k, for KV head h of n_kv_heads?
int lg_attn_allows(const lg_attn *a, int n_kv_heads, int h, int64_t q, int64_t k);

// Block-level view used by every kernel: tiles of `tile` tokens (tile must divide `block` for BLOCK_SPARSE,
// any value for the other kinds). For query tile qt, writes the key tiles that may hold a visible key, in
// ascending order, into kt (capacity >= qt + 1) and returns their count. A listed tile can still be partly
// masked: kernels apply lg_attn_allows (or its inlined equivalent) to the edge tiles.
int lg_attn_key_tiles(const lg_attn *a, int n_kv_heads, int h, int tile, int64_t T, int64_t qt, int32_t *kt);

// Number of (query, key) pairs visible in a sequence of length T for KV head h: the work and KV-cache measure.
int64_t lg_attn_pairs(const lg_attn *a, int n_kv_heads, int h, int64_t T);
// Keys a decoder must keep in its cache after T tokens (max over heads), for KV-cache sizing.
int64_t lg_attn_kv_cache_tokens(const lg_attn *a, int n_kv_heads, int64_t T);

#ifdef __cplusplus
}
#endif
