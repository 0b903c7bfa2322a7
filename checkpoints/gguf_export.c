// gguf_export.c: see gguf_export.h. Format facts (GGUF v3, little-endian):
//   header: "GGUF", u32 version 3, u64 tensor count, u64 metadata count; metadata: string key, u32 type, value;
//   tensor infos: string name, u32 n_dims, u64 dims[n_dims] (innermost first), u32 ggml type, u64 offset
//   (relative to the aligned data start, itself aligned); strings: u64 length + bytes (no NUL).
#include "gguf_export.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../data/tokenizer.h"
#include "../trainer/rope.h"
#include "../trainer/util.h"
#include "safetensors.h"

enum { GT_U8 = 0, GT_I8, GT_U16, GT_I16, GT_U32, GT_I32, GT_F32, GT_BOOL, GT_STRING, GT_ARRAY, GT_U64, GT_I64, GT_F64 };
enum { GGML_F32 = 0, GGML_F16 = 1, GGML_BF16 = 30 };
#define GGUF_ALIGN 32

typedef struct {
    FILE *f;
    const char *path;
    uint64_t pos;
} wr;

static void put(wr *w, const void *p, size_t n) {
    lg_fwrite(p, 1, n, w->f, w->path);
    w->pos += n;
}
static void put_u32(wr *w, uint32_t v) { put(w, &v, 4); }
static void put_i32(wr *w, int32_t v) { put(w, &v, 4); }
static void put_u64(wr *w, uint64_t v) { put(w, &v, 8); }
static void put_f32(wr *w, float v) { put(w, &v, 4); }
static void put_str(wr *w, const char *s, size_t n) {
    put_u64(w, n);
    put(w, s, n);
}
static void put_key(wr *w, const char *k, uint32_t type) {
    put_str(w, k, strlen(k));
    put_u32(w, type);
}
static void kv_u32(wr *w, const char *k, uint32_t v) { put_key(w, k, GT_U32); put_u32(w, v); }
static void kv_f32(wr *w, const char *k, float v) { put_key(w, k, GT_F32); put_f32(w, v); }
static void kv_bool(wr *w, const char *k, int v) { uint8_t b = (uint8_t)(v != 0); put_key(w, k, GT_BOOL); put(w, &b, 1); }
static void kv_str(wr *w, const char *k, const char *v) { put_key(w, k, GT_STRING); put_str(w, v, strlen(v)); }
static void pad(wr *w) {
    static const char z[GGUF_ALIGN] = {0};
    size_t n = (size_t)((GGUF_ALIGN - w->pos % GGUF_ALIGN) % GGUF_ALIGN);
    put(w, z, n);
}

// llama.cpp's tensor name for a parameter.
static void gguf_name(const lg_param *p, char *out, size_t n) {
    static const char *layer_names[] = {
        [LG_P_ATTN_NORM] = "attn_norm", [LG_P_WQ] = "attn_q",     [LG_P_WK] = "attn_k",   [LG_P_WV] = "attn_v",
        [LG_P_WO] = "attn_output",      [LG_P_FFN_NORM] = "ffn_norm", [LG_P_WGATE] = "ffn_gate",
        [LG_P_WUP] = "ffn_up",          [LG_P_WDOWN] = "ffn_down"};
    switch (p->kind) {
    case LG_P_EMBED: snprintf(out, n, "token_embd.weight"); break;
    case LG_P_NORM: snprintf(out, n, "output_norm.weight"); break;
    case LG_P_LM_HEAD: snprintf(out, n, "output.weight"); break;
    default: snprintf(out, n, "blk.%d.%s.weight", p->layer, layer_names[p->kind]); break;
    }
}

// HF stores each head's Q/K rows in half-split order (rotate_half); llama.cpp rotates interleaved pairs:
// GGUF row h*D + 2i + p = HF row h*D + p*D/2 + i.
static void unpermute_rows(const float *src, float *dst, int heads, int D, int64_t cols) {
    for (int h = 0; h < heads; h++)
        for (int i = 0; i < D / 2; i++)
            for (int p = 0; p < 2; p++)
                memcpy(dst + ((int64_t)h * D + 2 * i + p) * cols, src + ((int64_t)h * D + p * D / 2 + i) * cols,
                       sizeof(float) * (size_t)cols);
}

static int type_bytes(int ggml) { return ggml == GGML_F32 ? 4 : 2; }

char *lg_gguf_find_tokenizer(const lg_config *c) {
    const char *dirs[] = {c->tokenizer_dir, strcmp(c->init_from, "random") ? c->init_from : ""};
    for (int i = 0; i < 2; i++) {
        if (!dirs[i][0]) continue;
        char *p = lg_path_join(dirs[i], "tokenizer.model");
        if (lg_file_exists(p)) return p;
        free(p);
    }
    return NULL;
}

void lg_gguf_export(const char *path, const lg_config *c, const lg_param_table *t, const float *master,
                    const char *tokenizer_model, const char *dtype) {
    const lg_model_cfg *m = &c->model;
    const lg_rope_cfg *r = &c->rope;
    int mat_type = !dtype || !strcmp(dtype, "bf16") ? GGML_BF16 : !strcmp(dtype, "f16") ? GGML_F16
                   : !strcmp(dtype, "f32") ? GGML_F32 : -1;
    if (mat_type < 0) lg_die("export.dtype = %s: expected bf16, f16 or f32 for GGUF", dtype);
    if (r->type == LG_ROPE_DYNAMIC)
        lg_die("export.gguf: rope.scaling = dynamic has no llama.cpp equivalent (llama.cpp would use other positions "
               "than the ones trained); export HF only (export.gguf = false) or train with linear/yarn/llama3 scaling");
    if (!tokenizer_model || !lg_file_exists(tokenizer_model))
        lg_die("export.gguf: llama.cpp needs the vocabulary, but %s does not exist; set export.tokenizer_dir to the "
               "directory holding the source model's tokenizer.model", tokenizer_model ? tokenizer_model : "(no tokenizer.model)");
    lg_tokenizer *tok = lg_tok_load(tokenizer_model);
    int nv = lg_tok_vocab_size(tok);
    if (nv > m->vocab_size)
        lg_die("%s: %d pieces, but the model's vocab_size is %d", tokenizer_model, nv, m->vocab_size);
    if (nv < m->vocab_size)
        lg_warn("%s: %d pieces for a vocab_size of %d: the missing ids are written as <pad_N> pieces (unused)",
                tokenizer_model, nv, m->vocab_size);

    // llama3 scaling is stored as per-frequency factors (rope_freqs.weight), as llama.cpp's converter does.
    int half = m->head_dim / 2, rope_freqs = r->type == LG_ROPE_LLAMA3;
    float *freq_factors = NULL;
    if (rope_freqs) {
        double *base = lg_malloc(sizeof(double) * half), *scaled = lg_malloc(sizeof(double) * half), s;
        lg_rope_cfg plain = *r;
        plain.type = LG_ROPE_DEFAULT;
        lg_rope_inv_freq(&plain, m->head_dim, r->max_pos, base, &s);
        lg_rope_inv_freq(r, m->head_dim, r->max_pos, scaled, &s);
        freq_factors = lg_malloc(sizeof(float) * half);
        for (int i = 0; i < half; i++) freq_factors[i] = (float)(base[i] / scaled[i]);
        free(base);
        free(scaled);
    }

    char tmp[LG_PATH_MAX + 16];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    wr w = {lg_fopen(tmp, "wb"), tmp, 0};
    int n_tensors = t->n + rope_freqs;
    int n_kv = 0;
    // --- header (the metadata count is patched at the end) ---
    put(&w, "GGUF", 4);
    put_u32(&w, 3);
    put_u64(&w, (uint64_t)n_tensors);
    long kv_count_at = (long)w.pos;
    put_u64(&w, 0);
#define KV(call) (call, n_kv++)
    KV(kv_str(&w, "general.architecture", "llama"));
    KV(kv_str(&w, "general.name", c->name[0] ? c->name : "lgtrain"));
    KV(kv_u32(&w, "general.alignment", GGUF_ALIGN));
    KV(kv_u32(&w, "general.file_type", mat_type == GGML_F32 ? 0 : mat_type == GGML_F16 ? 1 : 32));
    KV(kv_u32(&w, "llama.context_length", (uint32_t)r->max_pos));
    KV(kv_u32(&w, "llama.embedding_length", (uint32_t)m->dim));
    KV(kv_u32(&w, "llama.block_count", (uint32_t)m->n_layers));
    KV(kv_u32(&w, "llama.feed_forward_length", (uint32_t)m->ffn_dim));
    KV(kv_u32(&w, "llama.rope.dimension_count", (uint32_t)m->head_dim));
    KV(kv_u32(&w, "llama.attention.head_count", (uint32_t)m->n_heads));
    KV(kv_u32(&w, "llama.attention.head_count_kv", (uint32_t)m->n_kv_heads));
    KV(kv_u32(&w, "llama.attention.key_length", (uint32_t)m->head_dim));
    KV(kv_u32(&w, "llama.attention.value_length", (uint32_t)m->head_dim));
    KV(kv_f32(&w, "llama.attention.layer_norm_rms_epsilon", m->norm_eps));
    KV(kv_f32(&w, "llama.rope.freq_base", (float)r->theta));
    KV(kv_u32(&w, "llama.vocab_size", (uint32_t)m->vocab_size));
    if (r->type == LG_ROPE_LINEAR || r->type == LG_ROPE_YARN) {
        KV(kv_str(&w, "llama.rope.scaling.type", r->type == LG_ROPE_LINEAR ? "linear" : "yarn"));
        KV(kv_f32(&w, "llama.rope.scaling.factor", (float)r->factor));
        KV(kv_u32(&w, "llama.rope.scaling.original_context_length", (uint32_t)r->original_max_pos));
    }
    // The LongGen layout, for tools that know it (llama.cpp ignores unknown keys and attends fully).
    {
        char buf[8192];
        int o = 0;
        for (int l = 0; l < m->n_layers && o < (int)sizeof buf - 128; l++) {
            char d[96];
            lg_attn_describe(&c->layout.layer[l], d, sizeof d);
            o += snprintf(buf + o, sizeof buf - o, "%s%s", l ? ";" : "", d);
        }
        KV(kv_str(&w, "longgen.layout", buf));
        KV(kv_str(&w, "longgen.writer", "lgtrain"));
    }
    // tokenizer
    KV(kv_str(&w, "tokenizer.ggml.model", "llama"));
    put_key(&w, "tokenizer.ggml.tokens", GT_ARRAY);
    put_u32(&w, GT_STRING);
    put_u64(&w, (uint64_t)m->vocab_size);
    for (int i = 0; i < m->vocab_size; i++) {
        if (i < nv) {
            int len;
            const char *p = lg_tok_piece(tok, i, &len);
            put_str(&w, p, (size_t)len);
        } else {
            char p[32];
            snprintf(p, sizeof p, "<pad_%d>", i);
            put_str(&w, p, strlen(p));
        }
    }
    n_kv++;
    put_key(&w, "tokenizer.ggml.scores", GT_ARRAY);
    put_u32(&w, GT_F32);
    put_u64(&w, (uint64_t)m->vocab_size);
    for (int i = 0; i < m->vocab_size; i++) put_f32(&w, i < nv ? lg_tok_score(tok, i) : -1e9f);
    n_kv++;
    put_key(&w, "tokenizer.ggml.token_type", GT_ARRAY);
    put_u32(&w, GT_I32);
    put_u64(&w, (uint64_t)m->vocab_size);
    for (int i = 0; i < m->vocab_size; i++) put_i32(&w, i < nv ? (int32_t)lg_tok_type(tok, i) : LG_PIECE_UNUSED);
    n_kv++;
    if (lg_tok_bos_id(tok) >= 0) KV(kv_u32(&w, "tokenizer.ggml.bos_token_id", (uint32_t)lg_tok_bos_id(tok)));
    if (lg_tok_eos_id(tok) >= 0) KV(kv_u32(&w, "tokenizer.ggml.eos_token_id", (uint32_t)lg_tok_eos_id(tok)));
    if (lg_tok_unk_id(tok) >= 0) KV(kv_u32(&w, "tokenizer.ggml.unknown_token_id", (uint32_t)lg_tok_unk_id(tok)));
    KV(kv_bool(&w, "tokenizer.ggml.add_bos_token", 1));
    KV(kv_bool(&w, "tokenizer.ggml.add_eos_token", 0));
#undef KV

    // --- tensor infos ---
    uint64_t off = 0;
    int64_t max_numel = half;
    for (int i = 0; i < t->n; i++) {
        const lg_param *p = &t->p[i];
        char name[96];
        gguf_name(p, name, sizeof name);
        int ty = p->ndim == 1 ? GGML_F32 : mat_type;
        put_str(&w, name, strlen(name));
        put_u32(&w, (uint32_t)p->ndim);
        for (int d = p->ndim - 1; d >= 0; d--) put_u64(&w, (uint64_t)p->shape[d]);  // innermost first
        put_u32(&w, (uint32_t)ty);
        put_u64(&w, off);
        off += (uint64_t)p->numel * type_bytes(ty);
        off = (off + GGUF_ALIGN - 1) / GGUF_ALIGN * GGUF_ALIGN;
        if (p->numel > max_numel) max_numel = p->numel;
    }
    if (rope_freqs) {
        put_str(&w, "rope_freqs.weight", strlen("rope_freqs.weight"));
        put_u32(&w, 1);
        put_u64(&w, (uint64_t)half);
        put_u32(&w, GGML_F32);
        put_u64(&w, off);
    }
    pad(&w);

    // --- data ---
    float *perm = lg_malloc(sizeof(float) * (size_t)max_numel);
    uint16_t *half_buf = lg_malloc(sizeof(uint16_t) * (size_t)max_numel);
    for (int i = 0; i < t->n; i++) {
        const lg_param *p = &t->p[i];
        const float *src = master + p->offset;
        if (p->kind == LG_P_WQ || p->kind == LG_P_WK) {
            unpermute_rows(src, perm, p->kind == LG_P_WQ ? m->n_heads : m->n_kv_heads, m->head_dim, p->shape[1]);
            src = perm;
        }
        int ty = p->ndim == 1 ? GGML_F32 : mat_type;
        if (ty == GGML_F32) {
            put(&w, src, sizeof(float) * (size_t)p->numel);
        } else {
            for (int64_t j = 0; j < p->numel; j++)
                half_buf[j] = ty == GGML_BF16 ? lg_f32_to_bf16(src[j]) : lg_f32_to_f16(src[j]);
            put(&w, half_buf, 2 * (size_t)p->numel);
        }
        pad(&w);
    }
    if (rope_freqs) {
        put(&w, freq_factors, sizeof(float) * half);
        pad(&w);
    }
    // patch the metadata count, flush, fsync, rename
    if (fseek(w.f, kv_count_at, SEEK_SET) != 0) lg_die("%s: seek failed", tmp);
    uint64_t nkv = (uint64_t)n_kv;
    lg_fwrite(&nkv, 8, 1, w.f, tmp);
    if (fflush(w.f) != 0 || fsync(fileno(w.f)) != 0) lg_die("%s: flush/fsync failed (disk full?)", tmp);
    lg_fclose(w.f, tmp);
    if (lg_file_exists(path)) {
        // Replace only our own earlier export: never a file the user made.
        FILE *f = lg_fopen(path, "rb");
        char *head = lg_malloc(65536);  // the metadata keys sit at the start of the file
        size_t got = fread(head, 1, 65536, f);
        fclose(f);
        int ours = got >= 4 && !memcmp(head, "GGUF", 4) && memmem(head, got, "longgen.writer", 14) != NULL;
        free(head);
        if (!ours) {
            unlink(tmp);
            lg_die("%s exists and was not written by lgtrain: refusing to overwrite it; choose another export.dir",
                   path);
        }
    }
    if (rename(tmp, path) != 0) lg_die("rename %s -> %s failed", tmp, path);
    free(perm);
    free(half_buf);
    free(freq_factors);
    lg_tok_free(tok);
}
