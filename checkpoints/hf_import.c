// hf_import.c: see hf_import.h.
#include "hf_import.h"

#include <stdlib.h>
#include <string.h>

#include "../trainer/util.h"
#include "safetensors.h"

lg_json *lg_hf_read_config_json(const char *dir) {
    if (!lg_dir_exists(dir)) lg_die("%s: not a directory (expected a HF model directory with config.json)", dir);
    char *path = lg_path_join(dir, "config.json");
    if (!lg_file_exists(path))
        lg_die("%s: config.json is missing (expected a HF Llama directory: config.json + model.safetensors)", dir);
    lg_json *j = lg_json_parse_file(path);
    if (j->type != LG_JSON_OBJECT) lg_die("%s: expected a JSON object at the top level", path);
    free(path);
    return j;
}

// The config.json fields a tensor's shape follows from, for shape-mismatch messages.
static void shape_hint(const lg_param *p, char *buf, size_t n) {
    long long a = (long long)p->shape[0], b = (long long)p->shape[1];
    switch (p->kind) {
    case LG_P_EMBED:
    case LG_P_LM_HEAD: snprintf(buf, n, "vocab_size=%lld, hidden_size=%lld", a, b); break;
    case LG_P_ATTN_NORM:
    case LG_P_FFN_NORM:
    case LG_P_NORM: snprintf(buf, n, "hidden_size=%lld", a); break;
    case LG_P_WQ: snprintf(buf, n, "num_attention_heads*head_dim=%lld, hidden_size=%lld", a, b); break;
    case LG_P_WK:
    case LG_P_WV: snprintf(buf, n, "num_key_value_heads*head_dim=%lld, hidden_size=%lld", a, b); break;
    case LG_P_WO: snprintf(buf, n, "hidden_size=%lld, num_attention_heads*head_dim=%lld", a, b); break;
    case LG_P_WGATE:
    case LG_P_WUP: snprintf(buf, n, "intermediate_size=%lld, hidden_size=%lld", a, b); break;
    case LG_P_WDOWN: snprintf(buf, n, "hidden_size=%lld, intermediate_size=%lld", a, b); break;
    default: snprintf(buf, n, "?");
    }
}

static void fmt_shape(const int64_t *s, int nd, char *buf, size_t n) {
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < nd && o < n; d++) o += (size_t)snprintf(buf + o, n - o, "%s%lld", d ? "," : "", (long long)s[d]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

static int n_layers_of(const lg_param_table *t) {
    int n = 0;
    for (int i = 0; i < t->n; i++)
        if (t->p[i].layer + 1 > n) n = t->p[i].layer + 1;
    return n;
}

void lg_hf_import(const char *dir, const lg_param_table *t, float *master) {
    if (!lg_dir_exists(dir)) lg_die("%s: not a directory (expected a HF model directory)", dir);
    // Which files: transformers prefers a single model.safetensors over an index; so do we.
    char *single = lg_path_join(dir, "model.safetensors");
    char *index_path = lg_path_join(dir, "model.safetensors.index.json");
    lg_json *index = NULL, *wm = NULL;
    char **files = NULL;
    int nfiles = 0;
    if (lg_file_exists(single)) {
        files = lg_malloc(sizeof(char *));
        files[nfiles++] = lg_strdup("model.safetensors");
    } else if (lg_file_exists(index_path)) {
        index = lg_json_parse_file(index_path);
        wm = lg_json_get(index, "weight_map");
        if (!wm || wm->type != LG_JSON_OBJECT || wm->n == 0)
            lg_die("%s: \"weight_map\" missing or empty (expected {\"tensor name\": \"file.safetensors\", ...})", index_path);
        files = lg_malloc(sizeof(char *) * (size_t)wm->n);
        for (int i = 0; i < wm->n; i++) {
            const lg_json *v = wm->items[i];
            if (v->type != LG_JSON_STRING)
                lg_die("%s: weight_map \"%s\": expected a file name (a string)", index_path, v->key);
            if (strchr(v->str, '/') || !strcmp(v->str, "..") || !v->str[0])
                lg_die("%s: weight_map \"%s\": file \"%s\" must be a plain file name inside %s", index_path, v->key, v->str, dir);
            int have = 0;
            for (int k = 0; k < nfiles; k++) have |= !strcmp(files[k], v->str);
            if (!have) files[nfiles++] = lg_strdup(v->str);
        }
    } else {
        char *bin = lg_path_join(dir, "pytorch_model.bin"), *bin_idx = lg_path_join(dir, "pytorch_model.bin.index.json");
        int has_bin = lg_file_exists(bin) || lg_file_exists(bin_idx);
        lg_die("%s: no model.safetensors or model.safetensors.index.json%s", dir,
               has_bin ? " (found pytorch_model.bin: convert it to safetensors first, e.g. with transformers' "
                         "save_pretrained(..., safe_serialization=True))"
                       : "");
    }

    // Searched-files list for "missing" messages.
    size_t sl = 1;
    for (int k = 0; k < nfiles; k++) sl += strlen(files[k]) + 2;
    char *searched = lg_malloc(sl);
    searched[0] = 0;
    for (int k = 0; k < nfiles; k++) {
        if (k) strcat(searched, ", ");
        strcat(searched, files[k]);
    }

    int *seen_in = lg_malloc(sizeof(int) * (size_t)(t->n ? t->n : 1));  // file index + 1, 0 = not yet
    for (int i = 0; i < t->n; i++) seen_in[i] = 0;
    int nl = n_layers_of(t);
    int has_lm_head = lg_params_get(t, LG_P_LM_HEAD, -1) != NULL;

    for (int k = 0; k < nfiles; k++) {
        char *path = lg_path_join(dir, files[k]);
        if (!lg_file_exists(path))
            lg_die("%s: file %s is listed in model.safetensors.index.json but does not exist", dir, files[k]);
        lg_st_file f;
        lg_st_open(&f, path);
        for (int i = 0; i < f.n; i++) {
            const lg_st_tensor *st = &f.t[i];
            if (ends_with(st->name, ".rotary_emb.inv_freq")) continue;  // a buffer recomputed from rope_theta
            const lg_param *p = lg_params_find(t, st->name);
            if (!p) {
                if (!strcmp(st->name, "lm_head.weight") && !has_lm_head) {
                    lg_warn("%s: tensor lm_head.weight ignored: config.json has tie_word_embeddings=true, so the output "
                            "layer uses model.embed_tokens.weight",
                            path);
                    continue;
                }
                int layer;
                if (sscanf(st->name, "model.layers.%d.", &layer) == 1 && layer >= nl)
                    lg_die("%s: tensor %s: layer %d, but config.json says num_hidden_layers=%d", path, st->name, layer, nl);
                lg_die("%s: tensor %s: unknown tensor (not a Llama weight lgtrain knows: expected names like "
                       "model.layers.N.self_attn.q_proj.weight; biases and other architectures are not supported)",
                       path, st->name);
            }
            int pi = (int)(p - t->p);
            if (seen_in[pi])
                lg_die("%s: tensor %s appears twice: in %s and in %s", dir, st->name, files[seen_in[pi] - 1], files[k]);
            if (wm) {
                const char *want = lg_json_str_or(wm, st->name, NULL, index_path);
                if (want && strcmp(want, files[k]))
                    lg_die("%s: tensor %s is in %s but model.safetensors.index.json maps it to %s", dir, st->name, files[k], want);
            }
            if (st->ndim != p->ndim || st->shape[0] != p->shape[0] || (p->ndim == 2 && st->shape[1] != p->shape[1])) {
                char got[128], want[64], hint[160];
                fmt_shape(st->shape, st->ndim, got, sizeof got);
                fmt_shape(p->shape, p->ndim, want, sizeof want);
                shape_hint(p, hint, sizeof hint);
                lg_die("%s: tensor %s: shape %s, expected %s (config.json says %s)", path, st->name, got, want, hint);
            }
            lg_st_read_f32(&f, st, master + p->offset);
            seen_in[pi] = k + 1;
        }
        lg_st_close(&f);
        free(path);
    }

    for (int i = 0; i < t->n; i++) {
        if (seen_in[i]) continue;
        const char *listed = wm ? lg_json_str_or(wm, t->p[i].name, NULL, index_path) : NULL;
        if (listed)
            lg_die("%s: tensor %s is missing: model.safetensors.index.json maps it to %s, which does not contain it", dir,
                   t->p[i].name, listed);
        lg_die("%s: tensor %s is missing (searched %s)%s", dir, t->p[i].name, searched,
               t->p[i].kind == LG_P_LM_HEAD ? "; if the model ties its output layer to the embeddings, config.json "
                                              "should say tie_word_embeddings=true"
                                            : "");
    }
    free(seen_in);
    free(searched);
    for (int k = 0; k < nfiles; k++) free(files[k]);
    free(files);
    lg_json_free(index);
    free(single);
    free(index_path);
}
