// params.h: the parameter table. Every weight of the model is one entry, named with its HF name, living
// at an offset in one flat fp32 buffer. Import, export, checkpoints, the optimizer and ZeRO sharding all
// walk this table; nothing else knows the model's weight list.
#pragma once
#include <stdint.h>

#include "config.h"

typedef enum {
    LG_P_EMBED = 0,   // model.embed_tokens.weight            (V, C)
    LG_P_ATTN_NORM,   // model.layers.N.input_layernorm.weight (C)
    LG_P_WQ,          // model.layers.N.self_attn.q_proj.weight (H*D, C)
    LG_P_WK,          // ...k_proj.weight (KVH*D, C)
    LG_P_WV,          // ...v_proj.weight (KVH*D, C)
    LG_P_WO,          // ...o_proj.weight (C, H*D)
    LG_P_FFN_NORM,    // model.layers.N.post_attention_layernorm.weight (C)
    LG_P_WGATE,       // model.layers.N.mlp.gate_proj.weight (F, C)
    LG_P_WUP,         // ...up_proj.weight (F, C)
    LG_P_WDOWN,       // ...down_proj.weight (C, F)
    LG_P_NORM,        // model.norm.weight (C)
    LG_P_LM_HEAD,     // lm_head.weight (V, C); absent when tied
    LG_P_NKINDS
} lg_param_kind;

typedef struct {
    char name[96];       // HF tensor name
    lg_param_kind kind;
    int layer;           // -1 for non-layer tensors
    int ndim;            // 1 or 2
    int64_t shape[2];    // HF shape ([out, in] for linear)
    int64_t numel;
    int64_t offset;      // element offset into the flat buffer
    int decay;           // 1 if weight decay applies (matrices), 0 for norms
} lg_param;

typedef struct {
    lg_param *p;
    int n;
    int64_t total;       // elements over all tensors
    int index[LG_MAX_LAYERS + 2][LG_P_NKINDS];  // [layer+1][kind] -> table index (-1 absent); row 0 = non-layer
} lg_param_table;

// Build the table for a model shape (order: embed, per layer in the kinds' order above, norm, lm_head).
void lg_params_build(lg_param_table *t, const lg_model_cfg *m);
void lg_params_free(lg_param_table *t);
// Lookup by HF name (NULL if absent) and by (kind, layer) (layer -1 for non-layer kinds).
const lg_param *lg_params_find(const lg_param_table *t, const char *name);
const lg_param *lg_params_get(const lg_param_table *t, lg_param_kind kind, int layer);
// Deterministic random init (normal(0, init_std) for matrices, ones for norms) from a seed.
void lg_params_init_random(const lg_param_table *t, float *master, const lg_model_cfg *m, uint64_t seed);
