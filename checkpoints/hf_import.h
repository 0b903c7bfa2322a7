// hf_import.h: read a HuggingFace Llama directory (config.json + model.safetensors or a sharded
// model.safetensors.index.json) into the flat fp32 master buffer laid out by the parameter table.
#pragma once
#include "../trainer/params.h"
#include "json.h"

// Fill master (t->total floats) with every tensor of the table. F32/F16/BF16 are converted exactly.
// Dies naming the directory, the file and the tensor on: a missing tensor (with the files searched), a shape
// that differs from the table (with the config.json fields it follows from), an unknown tensor, an unsupported
// dtype, or a malformed/truncated safetensors file. `*.rotary_emb.inv_freq` buffers are skipped; with tied
// embeddings a stored lm_head.weight is skipped with a warning (the model uses embed_tokens).
void lg_hf_import(const char *dir, const lg_param_table *t, float *master);

// Parse <dir>/config.json; dies with a clear message when it is missing, not JSON, or not an object.
// The caller frees it with lg_json_free.
lg_json *lg_hf_read_config_json(const char *dir);
