// config.h: the resolved run configuration (INI file + --set overrides + HF config.json when importing).
// Sections: [run] [model] [rope] [layout] [data] [optim] [memory] [checkpoint] [export].
#pragma once
#include <stdint.h>
#include <stdio.h>

#include "../kernels/layout.h"

#define LG_MAX_LAYERS 256
#define LG_PATH_MAX 1024

typedef enum { LG_ROPE_DEFAULT = 0, LG_ROPE_LINEAR, LG_ROPE_DYNAMIC, LG_ROPE_YARN, LG_ROPE_LLAMA3 } lg_rope_type;
typedef enum { LG_LR_CONSTANT = 0, LG_LR_COSINE } lg_lr_schedule;

typedef struct {
    // [model]: filled from config.json when init_from is a HF dir (the INI may not contradict it)
    int vocab_size;         // 32000 for Llama-2
    int dim;                // hidden_size
    int n_layers;           // num_hidden_layers
    int n_heads;            // num_attention_heads
    int n_kv_heads;         // num_key_value_heads (GQA when < n_heads)
    int head_dim;           // dim / n_heads unless config.json says otherwise
    int ffn_dim;            // intermediate_size
    float norm_eps;         // rms_norm_eps
    int tie_embeddings;     // tie_word_embeddings
    int bos_id, eos_id;
    float init_std;         // initializer_range for init_from = random
} lg_model_cfg;

typedef struct {
    lg_rope_type type;      // [rope] scaling = none|linear|dynamic|yarn|llama3
    double theta;           // rope_theta (base)
    double factor;          // scaling factor (linear, dynamic, yarn, llama3)
    int original_max_pos;   // original_max_position_embeddings (the pretrained context, 4096 for Llama-2)
    int max_pos;            // max_position_embeddings written on export (the new context)
    double beta_fast, beta_slow;     // yarn
    double attention_factor;         // yarn; 0 = derive as transformers does
    double low_freq_factor, high_freq_factor;  // llama3
} lg_rope_cfg;

typedef struct {
    // Resolved per-layer attention; built from [layout] full_layers + sparse kind + parameters.
    lg_attn layer[LG_MAX_LAYERS];
    char full_layers[256];  // as written: "auto", "all", "none", or ranges "10-21,30"
    lg_attn_kind sparse_kind;
    int sink, window, block, local_blocks, vert_stride;
    char attention_backend[16];  // auto|cudnn|native (CUDA only)
} lg_layout_cfg;

typedef struct {
    // [run]
    char name[128];
    char out_dir[LG_PATH_MAX];     // run directory: logs, checkpoints, export
    char device[16];               // cpu|cuda
    char init_from[LG_PATH_MAX];   // HF dir, or "random"
    uint64_t seed;
    int steps;                     // optimizer steps
    int log_every;
    int deterministic;
    int threads;                   // OpenMP threads for the CPU backend; 0 = all
    lg_model_cfg model;
    lg_rope_cfg rope;
    lg_layout_cfg layout;
    // [data]
    char data_train[LG_PATH_MAX];  // shard glob/dir, or "synthetic"
    char data_val[LG_PATH_MAX];
    int seq_len;                   // tokens per sequence
    int micro_batch;               // sequences per micro-batch per rank
    int64_t tokens_per_step;       // global batch in tokens; grad accumulation = tokens_per_step / (seq_len*micro_batch*world)
    // [optim]
    double lr, min_lr, weight_decay, beta1, beta2, eps, grad_clip;
    int warmup_steps;
    lg_lr_schedule schedule;
    // [memory]
    int zero_stage;                // 0, 1, 2
    int recompute;                 // per-layer activation recompute
    int mlp_chunk, loss_chunk;     // sequence chunk sizes (tokens) for the MLP and the loss
    char nan_policy[16];           // skip|stop
    // [checkpoint]
    int ckpt_every, ckpt_keep;
    // [export]
    int export_hf, export_gguf;
    char export_dir[LG_PATH_MAX];
    char export_dtype[16];         // bf16|f16|f32
    char tokenizer_dir[LG_PATH_MAX];  // where tokenizer files are copied from (default: init_from)
    // provenance
    char config_path[LG_PATH_MAX];
} lg_config;

// Parse `path` (INI) then apply overrides ("section.key=value"). Dies with "file:line: key: expected ..." on error.
void lg_config_load(lg_config *c, const char *path, int n_overrides, char **overrides);
// Read [model]/[rope] fields from a HF config.json (called by load when init_from is a dir).
void lg_config_apply_hf(lg_config *c, const char *hf_dir);
// Resolve the per-layer layout from full_layers + sparse params; checks ranges. Called by load.
void lg_config_resolve_layout(lg_config *c);
// Print the resolved config as an INI that lg_config_load accepts back.
void lg_config_print(const lg_config *c, FILE *f);
