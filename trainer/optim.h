// optim.h: AdamW over the parameter table (decoupled weight decay, none on norms), the LR schedule,
// and global-norm gradient clipping.
#pragma once
#include "../kernels/ops.h"
#include "config.h"
#include "params.h"

typedef struct {
    const lg_ops *ops;
    float *m, *v;     // (n) first and second moments, backend memory
    int64_t n;
} lg_adamw;

void lg_adamw_init(lg_adamw *o, const lg_ops *ops, int64_t n);
void lg_adamw_free(lg_adamw *o);
// One step (t is 1-based) on `master` using `grad`, both (table total) backend memory.
void lg_adamw_step(lg_adamw *o, const lg_config *c, const lg_param_table *pt, float *master, const float *grad,
                   float lr, int t);
// LR at 1-based step t: linear warmup from lr/warmup to lr, then constant or cosine down to min_lr at `steps`.
double lg_lr_at(const lg_config *c, int t);
