// optim.h: AdamW over the parameter table (decoupled weight decay, none on norms), the LR schedule.
// The optimizer owns the moments of one contiguous range [lo, hi) of the flat parameter buffer: the whole
// buffer (one rank, ZeRO-0) or this rank's ZeRO shard. AdamW is elementwise, so updating shards on
// different ranks gives the same bits as updating the whole buffer on one.
#pragma once
#include "../kernels/ops.h"
#include "config.h"
#include "params.h"

typedef struct {
    const lg_ops *ops;
    int64_t lo, hi;   // the range of the flat buffer this optimizer updates
    float *m, *v;     // (hi - lo) first and second moments, backend memory, zero-initialized
} lg_adamw;

void lg_adamw_init(lg_adamw *o, const lg_ops *ops, int64_t lo, int64_t hi);
void lg_adamw_free(lg_adamw *o);
// One step (t is 1-based) on the optimizer's range [lo, hi): master and grad point at flat index lo of
// buffers in backend memory holding at least that range (a whole buffer + lo, or a ZeRO shard). Weight decay
// follows each tensor's decay flag; a tensor cut by the range boundary is updated on its part inside it.
void lg_adamw_step(lg_adamw *o, const lg_config *c, const lg_param_table *pt, float *master, const float *grad,
                   float lr, int t);
// Moments of [lo, hi) (inside the optimizer's range) -> host fp32 arrays of hi - lo elements (checkpoints).
void lg_adamw_download(const lg_adamw *o, int64_t lo, int64_t hi, float *m, float *v);
// Host fp32 arrays of the optimizer's whole range -> its moments (resume).
void lg_adamw_upload(lg_adamw *o, const float *m, const float *v);
// LR at 1-based step t: linear warmup from lr/warmup to lr, then constant or cosine down to min_lr at `steps`.
double lg_lr_at(const lg_config *c, int t);
