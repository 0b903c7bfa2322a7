// optim.c: see optim.h.
#include "optim.h"

#include <math.h>
#include <stdlib.h>

#include "util.h"

void lg_adamw_init(lg_adamw *o, const lg_ops *ops, int64_t lo, int64_t hi) {
    if (lo < 0 || hi < lo) lg_die("adamw: bad range [%lld, %lld)", (long long)lo, (long long)hi);
    o->ops = ops;
    o->lo = lo;
    o->hi = hi;
    size_t bytes = (size_t)(hi - lo) * sizeof(float);
    o->m = ops->alloc(bytes);
    o->v = ops->alloc(bytes);
    ops->zero(o->m, bytes);
    ops->zero(o->v, bytes);
}

void lg_adamw_free(lg_adamw *o) {
    o->ops->free(o->m);
    o->ops->free(o->v);
    o->m = o->v = NULL;
}

void lg_adamw_step(lg_adamw *o, const lg_config *c, const lg_param_table *pt, float *master, const float *grad,
                   float lr, int t) {
    for (int i = 0; i < pt->n; i++) {
        const lg_param *p = &pt->p[i];
        int64_t a = p->offset > o->lo ? p->offset : o->lo;
        int64_t b = p->offset + p->numel < o->hi ? p->offset + p->numel : o->hi;
        if (a >= b) continue;  // tensor outside this optimizer's range
        float wd = p->decay ? (float)c->weight_decay : 0.0f;  // no decay on norm weights
        o->ops->adamw(master + (a - o->lo), grad + (a - o->lo), o->m + (a - o->lo), o->v + (a - o->lo), b - a, lr, (float)c->beta1,
                      (float)c->beta2, (float)c->eps, wd, t);
    }
}

void lg_adamw_download(const lg_adamw *o, int64_t lo, int64_t hi, float *m, float *v) {
    if (lo < o->lo || hi > o->hi || hi < lo)
        lg_die("adamw: range [%lld, %lld) is outside the optimizer's [%lld, %lld)", (long long)lo, (long long)hi,
               (long long)o->lo, (long long)o->hi);
    o->ops->download(m, o->m + (lo - o->lo), (size_t)(hi - lo), sizeof(float));
    o->ops->download(v, o->v + (lo - o->lo), (size_t)(hi - lo), sizeof(float));
}

void lg_adamw_upload(lg_adamw *o, const float *m, const float *v) {
    o->ops->upload(o->m, m, (size_t)(o->hi - o->lo), sizeof(float));
    o->ops->upload(o->v, v, (size_t)(o->hi - o->lo), sizeof(float));
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
