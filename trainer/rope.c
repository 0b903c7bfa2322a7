// rope.c: see rope.h. Formulas follow transformers' _compute_*_parameters; comments name the differences.
#include "rope.h"

#include <math.h>
#include <stdlib.h>

#include "util.h"

const char *lg_rope_type_name(lg_rope_type t) {
    switch (t) {
    case LG_ROPE_DEFAULT: return "none";
    case LG_ROPE_LINEAR: return "linear";
    case LG_ROPE_DYNAMIC: return "dynamic";
    case LG_ROPE_YARN: return "yarn";
    case LG_ROPE_LLAMA3: return "llama3";
    }
    return "?";
}

static double yarn_correction_dim(double rot, int dim, double base, double max_pos) {
    return (dim * log(max_pos / (rot * 2 * M_PI))) / (2 * log(base));
}

void lg_rope_inv_freq(const lg_rope_cfg *r, int dim, int64_t seq_len, double *inv, double *attn_scale) {
    int half = dim / 2;
    double base = r->theta;
    *attn_scale = 1.0;
    if (r->type == LG_ROPE_DYNAMIC) {
        // NTK-aware: the base grows once the sequence passes max_position_embeddings (transformers uses the
        // config's max_position_embeddings here, not the original one).
        double mpe = r->max_pos;
        double s = seq_len > mpe ? (double)seq_len : mpe;
        base = base * pow(r->factor * s / mpe - (r->factor - 1), (double)dim / (dim - 2));
    }
    for (int i = 0; i < half; i++) inv[i] = 1.0 / pow(base, (2.0 * i) / dim);
    switch (r->type) {
    case LG_ROPE_DEFAULT:
    case LG_ROPE_DYNAMIC: break;
    case LG_ROPE_LINEAR:
        for (int i = 0; i < half; i++) inv[i] /= r->factor;
        break;
    case LG_ROPE_YARN: {
        double f = r->factor;
        double af = r->attention_factor;
        if (af <= 0) af = f <= 1 ? 1.0 : 0.1 * log(f) + 1.0;
        *attn_scale = af;
        double bf = r->beta_fast > 0 ? r->beta_fast : 32, bs = r->beta_slow > 0 ? r->beta_slow : 1;
        double lo = floor(yarn_correction_dim(bf, dim, base, r->original_max_pos));  // truncate = True
        double hi = ceil(yarn_correction_dim(bs, dim, base, r->original_max_pos));
        if (lo < 0) lo = 0;
        if (hi > dim - 1) hi = dim - 1;
        if (lo == hi) hi += 0.001;
        for (int i = 0; i < half; i++) {
            double ramp = (i - lo) / (hi - lo);
            ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
            double extra = 1 - ramp;  // weight of extrapolation (the unscaled frequency)
            double interp = inv[i] / f;
            inv[i] = interp * (1 - extra) + inv[i] * extra;
        }
        break;
    }
    case LG_ROPE_LLAMA3: {
        double f = r->factor, lf = r->low_freq_factor, hf = r->high_freq_factor, old = r->original_max_pos;
        double low_wl = old / lf, high_wl = old / hf;
        for (int i = 0; i < half; i++) {
            double wl = 2 * M_PI / inv[i];
            double v = wl > low_wl ? inv[i] / f : inv[i];
            if (!(wl < high_wl) && !(wl > low_wl)) {
                double s = (old / wl - lf) / (hf - lf);
                v = (1 - s) * v / f + s * v;
            }
            inv[i] = v;
        }
        break;
    }
    }
}

void lg_rope_tables(const lg_rope_cfg *r, int dim, int S, float *cos_t, float *sin_t) {
    int half = dim / 2;
    double *inv = lg_malloc(sizeof(double) * half), scale;
    lg_rope_inv_freq(r, dim, S, inv, &scale);
    for (int64_t p = 0; p < S; p++)
        for (int i = 0; i < half; i++) {
            double a = (double)p * inv[i];  // fp64: at 128K an fp32 angle loses ~1e-2 rad
            cos_t[p * half + i] = (float)(cos(a) * scale);
            sin_t[p * half + i] = (float)(sin(a) * scale);
        }
    free(inv);
}
