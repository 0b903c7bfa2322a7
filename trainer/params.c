// params.c: see params.h.
#include "params.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static void add(lg_param_table *t, int *cap, lg_param_kind kind, int layer, const char *name, int64_t d0, int64_t d1) {
    if (t->n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        t->p = lg_realloc(t->p, sizeof(lg_param) * (size_t)*cap);
    }
    lg_param *p = &t->p[t->n];
    memset(p, 0, sizeof *p);
    if ((size_t)snprintf(p->name, sizeof p->name, "%s", name) >= sizeof p->name) lg_die("parameter name too long: %s", name);
    p->kind = kind;
    p->layer = layer;
    p->ndim = d1 > 0 ? 2 : 1;
    p->shape[0] = d0;
    p->shape[1] = d1 > 0 ? d1 : 0;
    p->numel = d1 > 0 ? d0 * d1 : d0;
    p->offset = t->total;
    p->decay = p->ndim == 2;  // matrices decay; norm gains do not
    t->total += p->numel;
    t->index[layer + 1][kind] = t->n;
    t->n++;
}

void lg_params_build(lg_param_table *t, const lg_model_cfg *m) {
    memset(t, 0, sizeof *t);
    for (int r = 0; r < LG_MAX_LAYERS + 2; r++)
        for (int k = 0; k < LG_P_NKINDS; k++) t->index[r][k] = -1;
    if (m->n_layers < 1 || m->n_layers > LG_MAX_LAYERS) lg_die("params: n_layers %d outside 1..%d", m->n_layers, LG_MAX_LAYERS);
    if (m->dim < 1 || m->vocab_size < 1 || m->n_heads < 1 || m->n_kv_heads < 1 || m->head_dim < 1 || m->ffn_dim < 1)
        lg_die("params: model dimensions must be positive (dim %d, vocab %d, heads %d, kv heads %d, head_dim %d, ffn %d)",
               m->dim, m->vocab_size, m->n_heads, m->n_kv_heads, m->head_dim, m->ffn_dim);
    int cap = 0;
    int64_t C = m->dim, V = m->vocab_size, F = m->ffn_dim;
    int64_t QD = (int64_t)m->n_heads * m->head_dim, KD = (int64_t)m->n_kv_heads * m->head_dim;
    char name[96];
    add(t, &cap, LG_P_EMBED, -1, "model.embed_tokens.weight", V, C);
    for (int l = 0; l < m->n_layers; l++) {
#define NM(fmt) (snprintf(name, sizeof name, "model.layers.%d." fmt, l), name)
        add(t, &cap, LG_P_ATTN_NORM, l, NM("input_layernorm.weight"), C, 0);
        add(t, &cap, LG_P_WQ, l, NM("self_attn.q_proj.weight"), QD, C);
        add(t, &cap, LG_P_WK, l, NM("self_attn.k_proj.weight"), KD, C);
        add(t, &cap, LG_P_WV, l, NM("self_attn.v_proj.weight"), KD, C);
        add(t, &cap, LG_P_WO, l, NM("self_attn.o_proj.weight"), C, QD);
        add(t, &cap, LG_P_FFN_NORM, l, NM("post_attention_layernorm.weight"), C, 0);
        add(t, &cap, LG_P_WGATE, l, NM("mlp.gate_proj.weight"), F, C);
        add(t, &cap, LG_P_WUP, l, NM("mlp.up_proj.weight"), F, C);
        add(t, &cap, LG_P_WDOWN, l, NM("mlp.down_proj.weight"), C, F);
#undef NM
    }
    add(t, &cap, LG_P_NORM, -1, "model.norm.weight", C, 0);
    if (!m->tie_embeddings) add(t, &cap, LG_P_LM_HEAD, -1, "lm_head.weight", V, C);
}

void lg_params_free(lg_param_table *t) {
    free(t->p);
    t->p = NULL;
    t->n = 0;
    t->total = 0;
}

const lg_param *lg_params_find(const lg_param_table *t, const char *name) {
    for (int i = 0; i < t->n; i++)
        if (!strcmp(t->p[i].name, name)) return &t->p[i];
    return NULL;
}

const lg_param *lg_params_get(const lg_param_table *t, lg_param_kind kind, int layer) {
    int non_layer = kind == LG_P_EMBED || kind == LG_P_NORM || kind == LG_P_LM_HEAD;
    int row = non_layer ? 0 : layer + 1;
    if ((int)kind < 0 || kind >= LG_P_NKINDS || row < 0 || row > LG_MAX_LAYERS) return NULL;
    int i = t->index[row][kind];
    return i < 0 ? NULL : &t->p[i];
}

// splitmix64: a tiny, well-mixed generator; the same integers on every machine.
static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void lg_params_init_random(const lg_param_table *t, float *master, const lg_model_cfg *m, uint64_t seed) {
    // Every (tensor, chunk of 64K elements) has its own stream derived from the seed, so the result does not
    // depend on the thread count. Box-Muller in double, rounded to float: libm differences in the last
    // double ulp almost never change the float.
    const int64_t CH = 1 << 16;
    const double two_pi = 6.283185307179586476925287;
    double std = m->init_std;
    for (int i = 0; i < t->n; i++) {
        const lg_param *p = &t->p[i];
        float *w = master + p->offset;
        if (p->ndim == 1) {
            for (int64_t k = 0; k < p->numel; k++) w[k] = 1.0f;  // RMSNorm gains start at one
            continue;
        }
        int64_t nch = (p->numel + CH - 1) / CH;
#pragma omp parallel for schedule(static)
        for (int64_t c = 0; c < nch; c++) {
            uint64_t s = seed ^ 0x6C67747261696E00ULL;  // "lgtrain\0"
            uint64_t a = (uint64_t)i + 1, b = (uint64_t)c + 1;
            s = splitmix64(&s) ^ (a * 0xD1B54A32D192ED03ULL);
            s = splitmix64(&s) ^ (b * 0xABC98388FB8FAC03ULL);
            int64_t lo = c * CH, hi = lo + CH < p->numel ? lo + CH : p->numel;
            for (int64_t k = lo; k < hi; k += 2) {
                double u1 = ((splitmix64(&s) >> 11) + 1) * 0x1.0p-53;  // (0, 1]: log is finite
                double u2 = (splitmix64(&s) >> 11) * 0x1.0p-53;        // [0, 1)
                double r = sqrt(-2.0 * log(u1)) * std;
                w[k] = (float)(r * cos(two_pi * u2));
                if (k + 1 < hi) w[k + 1] = (float)(r * sin(two_pi * u2));
            }
        }
    }
}
