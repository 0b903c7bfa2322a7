// gguf_export.h: write a GGUF v3 file that llama.cpp loads as a "llama" model: metadata with the exact value
// types llama.cpp expects (u32 counts and lengths, f32 eps / freq_base / scaling factor), tensors named as
// llama.cpp names them with dims reversed and data aligned to 32 bytes, Q/K rows permuted back from HF's
// half-split order to interleaved pairs, and the sentencepiece vocabulary of the source tokenizer.model.
#pragma once
#include "../trainer/config.h"
#include "../trainer/params.h"

// dtype: "f32", "f16" or "bf16" for matrices (1-D norm weights stay f32, as llama.cpp's converter does).
// tokenizer_model: path of tokenizer.model (required: llama.cpp needs the vocabulary).
// Written to "<path>.tmp" and renamed; an existing file is replaced only if it is a GGUF written by lgtrain.
void lg_gguf_export(const char *path, const lg_config *c, const lg_param_table *t, const float *master,
                    const char *tokenizer_model, const char *dtype);
// tokenizer.model of export.tokenizer_dir, else of the init_from directory; NULL when neither has one.
// Caller frees.
char *lg_gguf_find_tokenizer(const lg_config *c);
