// hf_export.h: write a HuggingFace Llama directory that transformers loads as LlamaForCausalLM and that
// vLLM and llama.cpp's converter read with the trained RoPE: safetensors (sharded over the limit) +
// config.json (every source field kept, model/RoPE fields set, the layout recorded) + tokenizer files.
#pragma once
#include <stdint.h>

#include "../trainer/config.h"
#include "../trainer/params.h"

// Export master (fp32, laid out by t) to out_dir as dtype "bf16" (default when NULL), "f16" or "f32".
// src_dir_or_null: the HF dir the run started from; its config.json is the base of the new one (every field
// kept, in order) and its tokenizer files are copied (c->tokenizer_dir wins for tokenizer files when set).
// Written to "<out_dir>.tmp" and renamed into place. An existing out_dir is replaced (atomically where the
// filesystem allows) only when it is an earlier lgtrain export (config.json has "lgtrain_export");
// anything else is refused, so user data is never lost.
void lg_hf_export(const char *out_dir, const lg_config *c, const lg_param_table *t, const float *master,
                  const char *src_dir_or_null, const char *dtype);
// The same with an explicit shard limit in bytes (0 = LG_ST_DEFAULT_SHARD_BYTES, 5 GB); tests use tiny ones.
void lg_hf_export_ex(const char *out_dir, const lg_config *c, const lg_param_table *t, const float *master,
                     const char *src_dir_or_null, const char *dtype, uint64_t max_shard_bytes);
