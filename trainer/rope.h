// rope.h: rotary position tables for every HF scaling type, computed exactly as transformers does
// (modeling_rope_utils.py, v5) but in fp64, so that positions up to 128K and beyond keep their angles.
#pragma once
#include "config.h"

// Inverse frequencies (head_dim/2) and the attention scaling folded into cos/sin (yarn; 1 otherwise)
// for a sequence of `seq_len` tokens (only "dynamic" depends on it, as in transformers).
void lg_rope_inv_freq(const lg_rope_cfg *r, int head_dim, int64_t seq_len, double *inv_freq, double *attn_scale);
// cos/sin tables (S, head_dim/2) for positions 0..S-1: cos[p][i] = cos(p * inv_freq[i]) * attn_scale.
void lg_rope_tables(const lg_rope_cfg *r, int head_dim, int S, float *cos_t, float *sin_t);
const char *lg_rope_type_name(lg_rope_type t);
