// plan.h: memory per rank and FLOPs per step for a config and world size, before anything is allocated
// (`lgtrain --plan`). The activation figures come from the same size function the model allocates with
// (lg_model_buffer_bytes), so plan and run agree by construction.
#pragma once
#include <stdio.h>

#include "config.h"

typedef struct {
    int world;
    int64_t params;                 // parameter count
    int64_t accum;                  // micro-batches per rank per step
    // bytes per rank
    double weights;                 // the weights the ops read (cuda: bf16 copy; cpu: the master itself)
    double grads;                   // fp32 gradient accumulators
    double master;                  // fp32 master weights owned by this rank
    double optim;                   // AdamW m and v owned by this rank
    double kept_acts;               // layer inputs kept for recompute: (L+1) x B x S x C
    double kept_att;                // attention output + LSE kept per full layer (memory.keep_full_attention)
    int kept_att_layers, full_layers;  // how many full layers keep it, of how many
    double working;                 // one layer's recompute working set + chunked MLP/loss buffers
    double workspace;               // library workspaces (cuBLASLt), tokens, RoPE tables
    double attn_scratch;            // cuDNN attention backward scratch (dQ accumulator), 0 when unused
    double host_acts;               // page-locked host memory of offloaded layer inputs (not in total)
    double host_master;             // host fp32 master copy (import/checkpoint I/O; not in total)
    double total;
    // FLOPs per optimizer step, all ranks together
    double flops_model;             // forward + backward without recompute (the MFU numerator)
    double flops_recompute;         // the extra forward work of per-layer recompute
    double flops_attention;         // the attention part of flops_model (kept pairs only)
    double tokens_per_step;
} lg_plan;

// backend "cpu" (fp32 everything, weights == master) or "cuda" (bf16 weights and activations).
void lg_plan_compute(const lg_config *c, int world, const char *backend, lg_plan *p);
// memory.keep_full_attention = auto on cuda: sets c->keep_attn_limit to the most full layers whose kept attention
// output fits with the rest of the plan in memory.device_gib minus 4 GiB of headroom (all of them when they fit;
// true/false and the cpu backend leave it at -1). Call before lg_plan_compute and before the model is built.
void lg_plan_resolve(lg_config *c, int world, const char *backend);
// Print the plan; returns 0 when it fits in c->device_gib per rank, else 1 after saying what to change.
int lg_plan_print(const lg_config *c, const lg_plan *p, const char *backend, FILE *f);
