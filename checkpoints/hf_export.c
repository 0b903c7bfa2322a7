// hf_export.c: see hf_export.h.
//
// What config.json says about RoPE, and why (DESIGN.md "Formats"): three readers must agree with training.
//   rope_theta                   the base, as trained.
//   rope_scaling                 null for no scaling, else {"rope_type", "factor", ...} with only the keys that
//                                type takes (transformers warns about others): yarn adds
//                                original_max_position_embeddings, beta_fast, beta_slow (and attention_factor when
//                                set); llama3 adds original_max_position_embeddings, low/high_freq_factor.
//   rope_parameters              transformers >= 5 keeps RoPE here ({"rope_type", "rope_theta", ...}) and prefers it
//                                over rope_theta when rope_scaling is null, so a stale copy from the source config
//                                would silently undo the new theta: it is always rewritten to match.
//   max_position_embeddings      the trained context (rope max_pos), except for linear scaling: vLLM derives its
//                                maximum length as max_position_embeddings * factor for linear (and dynamic), so
//                                for linear we write ceil(max_pos / factor) (the HF convention of linearly scaled
//                                models, e.g. 4096 with factor 4 for 16K) and transformers ignores the value there.
//                                Dynamic keeps max_pos: transformers (and lgtrain's rope.c) use it as the length
//                                where NTK scaling starts, which must match training exactly; vLLM then allows
//                                max_pos * factor. yarn: vLLM uses original_max_position_embeddings * factor.
//                                llama.cpp's converter copies the value as the training context.
//   lgtrain_export.context_length  the trained context, whatever the above says, and the marker that lets a
//                                later export replace this directory.
#include "hf_export.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../trainer/util.h"
#include "hf_import.h"
#include "json.h"
#include "safetensors.h"

static const char *TOKENIZER_FILES[] = {"tokenizer.model", "tokenizer.json", "tokenizer_config.json",
                                        "special_tokens_map.json", "added_tokens.json", "generation_config.json"};
#define N_TOKENIZER_FILES (sizeof TOKENIZER_FILES / sizeof TOKENIZER_FILES[0])

// ---------------------------------------------------------------------------------------------------------
// config.json fields; an unchanged value keeps its source node (and so its exact text)

static void set_int(lg_json *o, const char *key, int64_t v) {
    const lg_json *e = lg_json_get(o, key);
    if (e && e->type == LG_JSON_NUMBER && e->num_text && !strpbrk(e->num_text, ".eE") && e->num == (double)v) return;
    lg_json_set(o, key, lg_json_new_int(v));
}

static void set_f64(lg_json *o, const char *key, double v) {
    const lg_json *e = lg_json_get(o, key);
    if (e && e->type == LG_JSON_NUMBER && e->num == v) return;
    lg_json_set(o, key, lg_json_new_num(v));
}

// A float32 value written as its shortest decimal (1e-05, not 9.999999747378752e-06), as Python writes it.
static double short_f32(float v) {
    char buf[32];
    for (int p = 0; p < 10; p++) {
        snprintf(buf, sizeof buf, "%.*e", p, (double)v);
        if ((float)strtod(buf, NULL) == v) return strtod(buf, NULL);
    }
    return (double)v;
}

static void set_f32(lg_json *o, const char *key, float v) {
    const lg_json *e = lg_json_get(o, key);
    if (e && e->type == LG_JSON_NUMBER && (float)e->num == v) return;
    lg_json_set(o, key, lg_json_new_num(short_f32(v)));
}

static void set_str(lg_json *o, const char *key, const char *v) {
    const lg_json *e = lg_json_get(o, key);
    if (e && e->type == LG_JSON_STRING && !strcmp(e->str, v)) return;
    lg_json_set(o, key, lg_json_new_str(v));
}

static void set_bool(lg_json *o, const char *key, int v) {
    const lg_json *e = lg_json_get(o, key);
    if (e && e->type == LG_JSON_BOOL && (e->num != 0) == (v != 0)) return;
    lg_json_set(o, key, lg_json_new_bool(v));
}

// bos/eos: Llama-3 style lists are kept when they contain the id lgtrain uses.
static void set_token_id(lg_json *o, const char *key, int v) {
    const lg_json *e = lg_json_get(o, key);
    if (e && e->type == LG_JSON_ARRAY)
        for (int i = 0; i < e->n; i++)
            if (e->items[i]->type == LG_JSON_NUMBER && e->items[i]->num == v) return;
    set_int(o, key, v);
}

static const char *rope_type_hf(lg_rope_type t) {
    switch (t) {
    case LG_ROPE_LINEAR: return "linear";
    case LG_ROPE_DYNAMIC: return "dynamic";
    case LG_ROPE_YARN: return "yarn";
    case LG_ROPE_LLAMA3: return "llama3";
    default: return "default";
    }
}

// The scaling parameters of one type (without rope_theta); NULL for no scaling.
static lg_json *rope_scaling_obj(const lg_rope_cfg *r) {
    if (r->type == LG_ROPE_DEFAULT) return NULL;
    lg_json *s = lg_json_new(LG_JSON_OBJECT);
    lg_json_set(s, "rope_type", lg_json_new_str(rope_type_hf(r->type)));
    lg_json_set(s, "factor", lg_json_new_num(r->factor));
    if (r->type == LG_ROPE_YARN) {
        lg_json_set(s, "original_max_position_embeddings", lg_json_new_int(r->original_max_pos));
        lg_json_set(s, "beta_fast", lg_json_new_num(r->beta_fast > 0 ? r->beta_fast : 32));
        lg_json_set(s, "beta_slow", lg_json_new_num(r->beta_slow > 0 ? r->beta_slow : 1));
        if (r->attention_factor > 0) lg_json_set(s, "attention_factor", lg_json_new_num(r->attention_factor));
    } else if (r->type == LG_ROPE_LLAMA3) {
        lg_json_set(s, "original_max_position_embeddings", lg_json_new_int(r->original_max_pos));
        lg_json_set(s, "low_freq_factor", lg_json_new_num(r->low_freq_factor));
        lg_json_set(s, "high_freq_factor", lg_json_new_num(r->high_freq_factor));
    }
    return s;
}

static int64_t exported_max_pos(const lg_rope_cfg *r) {
    if (r->type == LG_ROPE_LINEAR && r->factor > 0) return (int64_t)ceil(r->max_pos / r->factor - 1e-9);
    return r->max_pos;
}

static lg_json *layout_obj(const lg_config *c) {
    const lg_layout_cfg *y = &c->layout;
    int n = c->model.n_layers;
    lg_json *o = lg_json_new(LG_JSON_OBJECT);
    lg_json *full = lg_json_new(LG_JSON_ARRAY), *per = lg_json_new(LG_JSON_ARRAY);
    for (int i = 0; i < n; i++) {
        if (y->layer[i].kind == LG_ATTN_FULL) lg_json_append(full, lg_json_new_int(i));
        lg_json_append(per, lg_json_new_str(lg_attn_kind_name(y->layer[i].kind)));
    }
    lg_json *sp = lg_json_new(LG_JSON_OBJECT);
    if (y->sparse_kind == LG_ATTN_BLOCK_SPARSE) {
        lg_json_set(sp, "kind", lg_json_new_str("block_sparse"));
        lg_json_set(sp, "block", lg_json_new_int(y->block));
        lg_json_set(sp, "local_blocks", lg_json_new_int(y->local_blocks));
        lg_json_set(sp, "vert_stride", lg_json_new_int(y->vert_stride));
    } else {
        lg_json_set(sp, "kind", lg_json_new_str("sink_window"));
        lg_json_set(sp, "sink", lg_json_new_int(y->sink));
        lg_json_set(sp, "window", lg_json_new_int(y->window));
    }
    lg_json_set(o, "full_layers", full);
    lg_json_set(o, "sparse", sp);
    lg_json_set(o, "per_layer", per);
    return o;
}

static const char *torch_dtype_name(lg_st_dtype d) {
    return d == LG_ST_F32 ? "float32" : d == LG_ST_F16 ? "float16" : "bfloat16";
}

// The new config.json: the source's (every field, in order) or a fresh one, with lgtrain's values set.
static lg_json *build_config(const lg_config *c, const char *src, lg_st_dtype dt) {
    lg_json *j = NULL;
    if (src) {
        char *p = lg_path_join(src, "config.json");
        if (lg_file_exists(p)) j = lg_hf_read_config_json(src);
        free(p);
    }
    if (!j) j = lg_json_new(LG_JSON_OBJECT);
    const lg_model_cfg *m = &c->model;
    const lg_rope_cfg *r = &c->rope;
    lg_json *arch = lg_json_new(LG_JSON_ARRAY);
    lg_json_append(arch, lg_json_new_str("LlamaForCausalLM"));
    lg_json_set(j, "architectures", arch);
    set_str(j, "model_type", "llama");
    set_int(j, "hidden_size", m->dim);
    set_int(j, "intermediate_size", m->ffn_dim);
    set_int(j, "num_hidden_layers", m->n_layers);
    set_int(j, "num_attention_heads", m->n_heads);
    set_int(j, "num_key_value_heads", m->n_kv_heads);
    set_int(j, "head_dim", m->head_dim);
    set_int(j, "vocab_size", m->vocab_size);
    if (!lg_json_get(j, "hidden_act")) set_str(j, "hidden_act", "silu");
    set_f32(j, "rms_norm_eps", m->norm_eps);
    if (!lg_json_get(j, "initializer_range")) set_f32(j, "initializer_range", m->init_std > 0 ? m->init_std : 0.02f);
    set_int(j, "max_position_embeddings", exported_max_pos(r));
    set_f64(j, "rope_theta", r->theta);
    lg_json *rs = rope_scaling_obj(r);
    lg_json_set(j, "rope_scaling", rs ? rs : lg_json_new(LG_JSON_NULL));
    // rope_parameters: the same, in transformers >= 5 form (see the header comment)
    lg_json *rp = rope_scaling_obj(r);
    if (!rp) {
        rp = lg_json_new(LG_JSON_OBJECT);
        lg_json_set(rp, "rope_type", lg_json_new_str("default"));
    }
    lg_json_set(rp, "rope_theta", lg_json_new_num(r->theta));
    lg_json_set(j, "rope_parameters", rp);
    // Phi-3-style top-level copy: transformers prefers it over the one in rope_scaling
    if (lg_json_get(j, "original_max_position_embeddings")) set_int(j, "original_max_position_embeddings", r->original_max_pos);
    set_bool(j, "tie_word_embeddings", m->tie_embeddings);
    set_token_id(j, "bos_token_id", m->bos_id);
    set_token_id(j, "eos_token_id", m->eos_id);
    if (!lg_json_get(j, "attention_bias")) set_bool(j, "attention_bias", 0);
    if (!lg_json_get(j, "mlp_bias")) set_bool(j, "mlp_bias", 0);
    set_str(j, "torch_dtype", torch_dtype_name(dt));
    if (lg_json_get(j, "dtype")) set_str(j, "dtype", torch_dtype_name(dt));  // transformers >= 5 spelling
    lg_json_set(j, "longgen_layout", layout_obj(c));
    lg_json *mark = lg_json_new(LG_JSON_OBJECT);
    lg_json_set(mark, "version", lg_json_new_int(1));
    lg_json_set(mark, "dtype", lg_json_new_str(torch_dtype_name(dt)));
    lg_json_set(mark, "context_length", lg_json_new_int(r->max_pos));
    lg_json_set(j, "lgtrain_export", mark);
    return j;
}

static void write_json(const char *path, const lg_json *j) {
    char *text = lg_json_dump(j, 2);
    size_t n = strlen(text);
    text = lg_realloc(text, n + 2);
    text[n++] = '\n';
    lg_write_file_atomic(path, text, n);
    free(text);
}

// ---------------------------------------------------------------------------------------------------------
// tokenizer and generation files

// Raise a context-length field that still holds the old context (Llama-2's generation_config max_length 4096).
static void raise_len(lg_json *j, const char *key, int64_t ctx) {
    const lg_json *e = lg_json_get(j, key);
    if (e && e->type == LG_JSON_NUMBER && e->num < (double)ctx) lg_json_set(j, key, lg_json_new_int(ctx));
}

static void copy_tokenizer_files(const char *tok_src, const char *dst, const lg_config *c) {
    int have_gen = 0;
    for (size_t i = 0; tok_src && i < N_TOKENIZER_FILES; i++) {
        char *sp = lg_path_join(tok_src, TOKENIZER_FILES[i]);
        if (!lg_file_exists(sp)) {
            free(sp);
            continue;
        }
        char *dp = lg_path_join(dst, TOKENIZER_FILES[i]);
        if (!strcmp(TOKENIZER_FILES[i], "generation_config.json") || !strcmp(TOKENIZER_FILES[i], "tokenizer_config.json")) {
            lg_json *j = lg_json_parse_file(sp);
            if (j->type != LG_JSON_OBJECT) lg_die("%s: expected a JSON object at the top level", sp);
            raise_len(j, !strcmp(TOKENIZER_FILES[i], "generation_config.json") ? "max_length" : "model_max_length",
                      c->rope.max_pos);
            write_json(dp, j);
            lg_json_free(j);
            have_gen |= !strcmp(TOKENIZER_FILES[i], "generation_config.json");
        } else {
            size_t n;
            char *data = lg_read_file(sp, &n);
            lg_write_file_atomic(dp, data, n);
            free(data);
        }
        free(sp);
        free(dp);
    }
    if (!have_gen) {
        lg_json *g = lg_json_new(LG_JSON_OBJECT);
        lg_json_set(g, "_from_model_config", lg_json_new_bool(1));
        lg_json_set(g, "bos_token_id", lg_json_new_int(c->model.bos_id));
        lg_json_set(g, "eos_token_id", lg_json_new_int(c->model.eos_id));
        char *dp = lg_path_join(dst, "generation_config.json");
        write_json(dp, g);
        free(dp);
        lg_json_free(g);
    }
}

// ---------------------------------------------------------------------------------------------------------
// safe replacement of the output directory

// Is `name` a file an export writes (so removing it loses nothing that cannot be re-exported)?
static int export_file_name(const char *name) {
    static const char *fixed[] = {"config.json", "model.safetensors", "model.safetensors.index.json"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (!strcmp(name, fixed[i])) return 1;
    for (size_t i = 0; i < N_TOKENIZER_FILES; i++)
        if (!strcmp(name, TOKENIZER_FILES[i])) return 1;
    int a, b, n = 0;
    if (sscanf(name, "model-%5d-of-%5d.safetensors%n", &a, &b, &n) == 2 && n > 0 && name[n] == 0) return 1;
    return strstr(name, ".tmp.") != NULL;  // a partial file of an interrupted export
}

// NULL if every entry of dir is an export file, else the first foreign entry (heap string).
static char *foreign_entry(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) lg_die("%s: cannot list directory: %s", dir, strerror(errno));
    struct dirent *e;
    char *bad = NULL;
    while (!bad && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *p = lg_path_join(dir, e->d_name);
        if (!lg_file_exists(p) || !export_file_name(e->d_name)) bad = lg_strdup(e->d_name);
        free(p);
    }
    closedir(d);
    return bad;
}

static int dir_is_empty(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int empty = 1;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = 0;
    closedir(d);
    return empty;
}

// An existing out_dir may be replaced only when it is an earlier lgtrain export holding nothing else.
static void check_replaceable(const char *out) {
    struct stat st;
    if (stat(out, &st) != 0) return;  // does not exist
    if (!S_ISDIR(st.st_mode)) lg_die("export: %s exists and is not a directory; refusing to overwrite it", out);
    if (dir_is_empty(out)) return;
    char *cp = lg_path_join(out, "config.json");
    int ours = 0;
    if (lg_file_exists(cp)) {
        size_t n;
        char *text = lg_read_file(cp, &n);
        char err[256];
        lg_json *j = lg_json_parse(text, n, err, sizeof err);
        ours = j && lg_json_get(j, "lgtrain_export") != NULL;
        lg_json_free(j);
        free(text);
    }
    free(cp);
    if (!ours)
        lg_die("export: %s exists and was not written by lgtrain (its config.json has no \"lgtrain_export\" field); "
               "refusing to overwrite it: choose another export directory or remove it yourself",
               out);
    char *bad = foreign_entry(out);
    if (bad)
        lg_die("export: %s is an earlier lgtrain export but also holds \"%s\", which an export does not write; "
               "refusing to replace it: move that file away or choose another export directory",
               out, bad);
}

static char *parent_of(const char *path) {
    char *d = lg_strdup(path);
    char *s = strrchr(d, '/');
    if (!s) strcpy(d, ".");
    else if (s == d) s[1] = 0;
    else *s = 0;
    return d;
}

// Put tmp at out. With an existing out: swap both atomically (renameat2 RENAME_EXCHANGE) and delete the old
// copy; where the filesystem cannot swap, move the old one aside first (a crash then leaves it at "<out>.old").
static void install(const char *tmp, const char *out) {
    struct stat st;
    if (stat(out, &st) != 0) {
        if (rename(tmp, out) != 0) lg_die("export: rename %s -> %s failed: %s", tmp, out, strerror(errno));
        return;
    }
#ifdef RENAME_EXCHANGE
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, out, RENAME_EXCHANGE) == 0) {
        if (lg_rmtree(tmp) != 0) lg_warn("export: could not remove the previous export, now at %s", tmp);
        return;
    }
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP && errno != EPERM)
        lg_die("export: swapping %s and %s failed: %s", tmp, out, strerror(errno));
#endif
    size_t n = strlen(out) + 8;
    char *old = lg_malloc(n);
    snprintf(old, n, "%s.old", out);
    if (lg_dir_exists(old) && lg_rmtree(old) != 0) lg_die("export: cannot remove stale %s", old);
    if (rename(out, old) != 0) lg_die("export: rename %s -> %s failed: %s", out, old, strerror(errno));
    if (rename(tmp, out) != 0) lg_die("export: rename %s -> %s failed: %s (the previous export is at %s)", tmp, out, strerror(errno), old);
    if (lg_rmtree(old) != 0) lg_warn("export: could not remove the previous export at %s", old);
    free(old);
}

// ---------------------------------------------------------------------------------------------------------

void lg_hf_export_ex(const char *out_dir, const lg_config *c, const lg_param_table *t, const float *master,
                     const char *src, const char *dtype, uint64_t max_shard_bytes) {
    lg_st_dtype dt = LG_ST_BF16;
    if (dtype && dtype[0] && !lg_st_dtype_parse(dtype, &dt))
        lg_die("export: dtype: expected bf16, f16 or f32, got \"%s\"", dtype);
    if (!out_dir || !out_dir[0]) lg_die("export: no output directory given");
    // normalise: no trailing slashes (the temporary is a sibling "<out>.tmp")
    char *out = lg_strdup(out_dir);
    for (size_t n = strlen(out); n > 1 && out[n - 1] == '/'; n--) out[n - 1] = 0;
    if (src && !lg_dir_exists(src)) lg_die("export: source directory %s does not exist", src);

    check_replaceable(out);
    size_t tl = strlen(out) + 8;
    char *tmp = lg_malloc(tl);
    snprintf(tmp, tl, "%s.tmp", out);
    if (lg_dir_exists(tmp)) {
        // left by an interrupted export: remove it only if it holds nothing but export files
        char *bad = foreign_entry(tmp);
        if (bad) lg_die("export: %s exists and holds \"%s\", which an export does not write; remove it yourself", tmp, bad);
        if (lg_rmtree(tmp) != 0) lg_die("export: cannot remove the stale %s: %s", tmp, strerror(errno));
    } else if (lg_file_exists(tmp)) {
        lg_die("export: %s exists and is a file; remove it yourself", tmp);
    }
    lg_mkdirs(tmp);

    // weights
    lg_st_out *ts = lg_malloc(sizeof(lg_st_out) * (size_t)t->n);
    uint64_t bytes = 0;
    for (int i = 0; i < t->n; i++) {
        const lg_param *p = &t->p[i];
        ts[i] = (lg_st_out){.name = p->name, .dtype = dt, .ndim = p->ndim, .data = master + p->offset};
        ts[i].shape[0] = p->shape[0];
        ts[i].shape[1] = p->shape[1];
        bytes += lg_st_out_bytes(&ts[i]);
    }
    int nfiles = lg_st_write_sharded(tmp, ts, t->n, max_shard_bytes);
    free(ts);

    // config.json
    lg_json *cfg = build_config(c, src, dt);
    char *cp = lg_path_join(tmp, "config.json");
    write_json(cp, cfg);
    free(cp);
    lg_json_free(cfg);

    // tokenizer + generation config
    const char *tok = c->tokenizer_dir[0] ? c->tokenizer_dir : src;
    if (tok && !lg_dir_exists(tok)) lg_die("export: tokenizer directory %s does not exist", tok);
    copy_tokenizer_files(tok, tmp, c);

    lg_fsync_dir(tmp);
    install(tmp, out);
    char *parent = parent_of(out);
    lg_fsync_dir(parent);
    free(parent);
    char hb[32];
    lg_format_bytes((double)bytes, hb, sizeof hb);
    lg_info("export: %s: %d tensors, %s %s in %d safetensors file%s", out, t->n, hb, lg_st_dtype_name(dt), nfiles,
            nfiles > 1 ? "s + index" : "");
    free(tmp);
    free(out);
}

void lg_hf_export(const char *out_dir, const lg_config *c, const lg_param_table *t, const float *master,
                  const char *src_dir_or_null, const char *dtype) {
    lg_hf_export_ex(out_dir, c, t, master, src_dir_or_null, dtype, 0);
}
