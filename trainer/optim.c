// optim.c: see optim.h.
#include "optim.h"

#include <math.h>
#include <stdlib.h>

#include "util.h"

void lg_adamw_init(lg_adamw *o, const lg_ops *ops, int64_t n) {
    o->ops = ops;
    o->n = n;
    o->m = ops->alloc((size_t)n * sizeof(float));
    o->v = ops->alloc((size_t)n * sizeof(float));
    ops->zero(o->m, (size_t)n * sizeof(float));
    ops->zero(o->v, (size_t)n * sizeof(float));
}

void lg_adamw_free(lg_adamw *o) {
    o->ops->free(o->m);
    o->ops->free(o->v);
}

void lg_adamw_step(lg_adamw *o, const lg_config *c, const lg_param_table *pt, float *master, const float *grad,
                   float lr, int t) {
    for (int i = 0; i < pt->n; i++) {
        const lg_param *p = &pt->p[i];
        float wd = p->decay ? (float)c->weight_decay : 0.0f;  // no decay on norm weights
        o->ops->adamw(master + p->offset, grad + p->offset, o->m + p->offset, o->v + p->offset, p->numel, lr,
                      (float)c->beta1, (float)c->beta2, (float)c->eps, wd, t);
    }
}

double lg_lr_at(const lg_config *c, int t) {
    if (c->warmup_steps > 0 && t <= c->warmup_steps) return c->lr * t / c->warmup_steps;
    if (c->schedule == LG_LR_CONSTANT) return c->lr;
    int span = c->steps - c->warmup_steps;
    if (span <= 0) return c->lr;
    double frac = (double)(t - c->warmup_steps) / span;
    if (frac > 1) frac = 1;
    return c->min_lr + 0.5 * (c->lr - c->min_lr) * (1 + cos(M_PI * frac));
}
