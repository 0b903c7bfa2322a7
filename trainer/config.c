// config.c: see config.h. One table (KEYS) defines every INI key: its field, type, range, default and
// meaning. Parsing, --set overrides, defaults, --print-config and the key reference (configs/README.md)
// all walk that table, so the documentation cannot drift from the parser.
//
// Order of resolution (lg_config_load):
//   1. table defaults;  2. the file's entries, then --set entries (a later --set replaces the file's value);
//   3. run.init_from: a HF dir fills [model] and [rope] from config.json (lg_config_apply_hf);
//   4. every other entry: [model] entries must agree with config.json, all others are set;
//   5. required keys, derived defaults, cross-field checks, layout resolution.
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "../checkpoints/json.h"
#include "util.h"

_Static_assert(sizeof(lg_rope_type) == sizeof(int), "enum fields are stored as int");
_Static_assert(sizeof(lg_attn_kind) == sizeof(int), "enum fields are stored as int");
_Static_assert(sizeof(lg_lr_schedule) == sizeof(int), "enum fields are stored as int");

typedef enum { K_INT, K_I64, K_U64, K_F64, K_F32, K_BOOL, K_STR, K_ENUM, K_CHOICE } ktype;

enum {
    F_REQ = 1,          // no default: must be given
    F_REQ_RANDOM = 2,   // must be given when run.init_from = random (else it comes from config.json)
    F_DERIVED = 4,      // default computed from other keys (dflt_doc says how)
    F_EMPTY_OK = 8,     // a string that may be empty ("" = none)
    F_LO_OPEN = 16,     // numeric lower bound is exclusive
    F_HI_OPEN = 32,     // numeric upper bound is exclusive
};

typedef struct {
    const char *sec, *key;
    ktype type;
    size_t off, size;       // field offset in lg_config; size for K_STR / K_CHOICE buffers
    double lo, hi;          // numeric range (hi = INFINITY: none)
    int flags;
    const char *choices;    // K_ENUM / K_CHOICE: "a|b|c"
    const int *vals;        // K_ENUM: value of each choice (NULL: its index)
    const char *dflt;       // default as INI text (NULL with F_REQ / F_DERIVED)
    const char *dflt_doc;   // default as documented when derived
    const char *hf;         // [model]: the config.json field it mirrors
    const char *doc;
} key_def;

#define OFF(f) offsetof(lg_config, f)
#define SZ(f) sizeof(((lg_config *)0)->f)
#define INF INFINITY
static const int SPARSE_VALS[] = {LG_ATTN_SINK_WINDOW, LG_ATTN_BLOCK_SPARSE};

static const key_def KEYS[] = {
    // [run]
    {"run", "name", K_STR, OFF(name), SZ(name), 0, 0, F_DERIVED, 0, 0, 0, "config file name without .ini", 0,
     "run name; names the run directory"},
    {"run", "out_dir", K_STR, OFF(out_dir), SZ(out_dir), 0, 0, F_DERIVED, 0, 0, 0, "runs/<name>", 0,
     "run directory: logs, checkpoints, export"},
    {"run", "device", K_CHOICE, OFF(device), SZ(device), 0, 0, 0, "cpu|cuda", 0, "cpu", 0, 0,
     "backend: cpu (fp32 reference) or cuda (bf16)"},
    {"run", "init_from", K_STR, OFF(init_from), SZ(init_from), 0, 0, F_REQ, 0, 0, 0, 0, 0,
     "HF Llama directory (config.json + safetensors) to start from, or random"},
    {"run", "seed", K_U64, OFF(seed), 0, 0, 0, 0, 0, 0, "1", 0, 0, "seed for init and data order"},
    {"run", "steps", K_INT, OFF(steps), 0, 1, INF, F_REQ, 0, 0, 0, 0, 0, "optimizer steps"},
    {"run", "log_every", K_INT, OFF(log_every), 0, 1, INF, 0, 0, 0, "1", 0, 0, "progress line every N steps"},
    {"run", "eval_every", K_INT, OFF(eval_every), 0, 0, INF, 0, 0, 0, "0", 0, 0,
     "validation loss on data.val every N steps (and before the first and after the last); 0 = first/last only"},
    {"run", "eval_seqs", K_INT, OFF(eval_seqs), 0, 0, INF, 0, 0, 0, "64", 0, 0,
     "validation sequences per evaluation; 0 = all of data.val"},
    {"run", "deterministic", K_BOOL, OFF(deterministic), 0, 0, 0, 0, 0, 0, "false", 0, 0,
     "bitwise-reproducible gradients (cuda: native attention kernels, no cuDNN; slower)"},
    {"run", "threads", K_INT, OFF(threads), 0, 0, INF, 0, 0, 0, "0", 0, 0, "OpenMP threads (cpu); 0 = all cores"},
    // [model]
    {"model", "vocab_size", K_INT, OFF(model.vocab_size), 0, 2, INF, F_REQ_RANDOM, 0, 0, 0, 0, "vocab_size",
     "vocabulary size"},
    {"model", "dim", K_INT, OFF(model.dim), 0, 1, INF, F_REQ_RANDOM, 0, 0, 0, 0, "hidden_size", "model width"},
    {"model", "n_layers", K_INT, OFF(model.n_layers), 0, 1, LG_MAX_LAYERS, F_REQ_RANDOM, 0, 0, 0, 0,
     "num_hidden_layers", "transformer layers"},
    {"model", "n_heads", K_INT, OFF(model.n_heads), 0, 1, INF, F_REQ_RANDOM, 0, 0, 0, 0, "num_attention_heads",
     "query heads"},
    {"model", "n_kv_heads", K_INT, OFF(model.n_kv_heads), 0, 1, INF, F_DERIVED, 0, 0, 0, "n_heads",
     "num_key_value_heads", "key/value heads (GQA when < n_heads; must divide n_heads)"},
    {"model", "head_dim", K_INT, OFF(model.head_dim), 0, 2, INF, F_DERIVED, 0, 0, 0, "dim / n_heads", "head_dim",
     "per-head width (even)"},
    {"model", "ffn_dim", K_INT, OFF(model.ffn_dim), 0, 1, INF, F_REQ_RANDOM, 0, 0, 0, 0, "intermediate_size",
     "SwiGLU hidden width"},
    {"model", "norm_eps", K_F32, OFF(model.norm_eps), 0, 0, INF, F_LO_OPEN, 0, 0, "1e-05", 0, "rms_norm_eps",
     "RMSNorm epsilon"},
    {"model", "tie_embeddings", K_BOOL, OFF(model.tie_embeddings), 0, 0, 0, 0, 0, 0, "false", 0,
     "tie_word_embeddings", "LM head shares the embedding matrix"},
    {"model", "bos_id", K_INT, OFF(model.bos_id), 0, 0, INF, 0, 0, 0, "1", 0, "bos_token_id",
     "BOS token id (< vocab_size)"},
    {"model", "eos_id", K_INT, OFF(model.eos_id), 0, 0, INF, 0, 0, 0, "2", 0, "eos_token_id",
     "EOS token id (< vocab_size)"},
    {"model", "init_std", K_F32, OFF(model.init_std), 0, 0, INF, F_LO_OPEN, 0, 0, "0.02", 0, "initializer_range",
     "std of the normal init (init_from = random)"},
    // [rope]
    {"rope", "theta", K_F64, OFF(rope.theta), 0, 0, INF, F_LO_OPEN, 0, 0, "10000", 0, 0,
     "RoPE base (HF dir: its rope_theta unless set)"},
    {"rope", "scaling", K_ENUM, OFF(rope.type), 0, 0, 0, 0, "none|linear|dynamic|yarn|llama3", 0, "none", 0, 0,
     "HF rope_scaling type (HF dir: its rope_scaling unless set)"},
    {"rope", "factor", K_F64, OFF(rope.factor), 0, 1, INF, 0, 0, 0, "1", 0, 0,
     "scaling factor (linear, dynamic, yarn, llama3)"},
    {"rope", "original_max_position_embeddings", K_INT, OFF(rope.original_max_pos), 0, 1, INF, F_DERIVED, 0, 0, 0,
     "HF dir: its max_position_embeddings (or rope_scaling's); random: data.seq_len", 0,
     "pretrained context the scaling starts from"},
    {"rope", "max_position_embeddings", K_INT, OFF(rope.max_pos), 0, 1, INF, F_DERIVED, 0, 0, 0,
     "max(seq_len, source max_position_embeddings, factor x original when scaled); dynamic: original", 0,
     "max_position_embeddings written on export"},
    {"rope", "beta_fast", K_F64, OFF(rope.beta_fast), 0, 0, INF, F_LO_OPEN, 0, 0, "32", 0, 0, "yarn beta_fast"},
    {"rope", "beta_slow", K_F64, OFF(rope.beta_slow), 0, 0, INF, F_LO_OPEN, 0, 0, "1", 0, 0, "yarn beta_slow"},
    {"rope", "attention_factor", K_F64, OFF(rope.attention_factor), 0, 0, INF, 0, 0, 0, "0", 0, 0,
     "yarn attention factor; 0 = 0.1 ln(factor) + 1 as transformers"},
    {"rope", "low_freq_factor", K_F64, OFF(rope.low_freq_factor), 0, 0, INF, F_LO_OPEN, 0, 0, "1", 0, 0,
     "llama3 low_freq_factor"},
    {"rope", "high_freq_factor", K_F64, OFF(rope.high_freq_factor), 0, 0, INF, F_LO_OPEN, 0, 0, "4", 0, 0,
     "llama3 high_freq_factor (> low_freq_factor)"},
    // [layout]
    {"layout", "full_layers", K_STR, OFF(layout.full_layers), SZ(layout.full_layers), 0, 0, 0, 0, 0, "auto", 0, 0,
     "full-attention layers: auto = the middle third (floor(n/3) .. n-1-floor(n/3)), all, none, or ranges"},
    {"layout", "sparse", K_ENUM, OFF(layout.sparse_kind), 0, 0, 0, 0, "sink_window|block_sparse", SPARSE_VALS,
     "sink_window", 0, 0, "attention of the other layers"},
    {"layout", "sink", K_INT, OFF(layout.sink), 0, 0, INF, 0, 0, 0, "64", 0, 0, "sink_window: first tokens kept"},
    {"layout", "window", K_INT, OFF(layout.window), 0, 1, INF, 0, 0, 0, "2048", 0, 0,
     "sink_window: last tokens kept"},
    {"layout", "block", K_INT, OFF(layout.block), 0, 16, INF, 0, 0, 0, "64", 0, 0,
     "block_sparse: block size in tokens (multiple of 16)"},
    {"layout", "local_blocks", K_INT, OFF(layout.local_blocks), 0, 1, INF, 0, 0, 0, "16", 0, 0,
     "block_sparse: local blocks kept"},
    {"layout", "vert_stride", K_INT, OFF(layout.vert_stride), 0, 1, INF, 0, 0, 0, "64", 0, 0,
     "block_sparse: every vert_stride-th block kept"},
    {"layout", "attention_backend", K_CHOICE, OFF(layout.attention_backend), SZ(layout.attention_backend), 0, 0, 0,
     "auto|cudnn|native", 0, "auto", 0, 0,
     "cuda attention: auto = cuDNN for full and sink_window layers, native for block_sparse"},
    // [data]
    {"data", "train", K_STR, OFF(data_train), SZ(data_train), 0, 0, F_REQ, 0, 0, 0, 0, 0,
     "training shards (dir or glob), or synthetic"},
    {"data", "val", K_STR, OFF(data_val), SZ(data_val), 0, 0, F_EMPTY_OK, 0, 0, "\"\"", 0, 0,
     "validation shards; empty = none"},
    {"data", "seq_len", K_INT, OFF(seq_len), 0, 1, INF, F_REQ, 0, 0, 0, 0, 0, "tokens per sequence"},
    {"data", "micro_batch", K_INT, OFF(micro_batch), 0, 1, INF, 0, 0, 0, "1", 0, 0,
     "sequences per micro-batch per rank"},
    {"data", "tokens_per_step", K_I64, OFF(tokens_per_step), 0, 1, INF, F_DERIVED, 0, 0, 0, "seq_len x micro_batch",
     0, "global batch in tokens (multiple of seq_len x micro_batch; the trainer divides by world size)"},
    // [optim]
    {"optim", "lr", K_F64, OFF(lr), 0, 0, INF, F_REQ | F_LO_OPEN, 0, 0, 0, 0, 0, "peak learning rate"},
    {"optim", "min_lr", K_F64, OFF(min_lr), 0, 0, INF, 0, 0, 0, "0", 0, 0, "cosine floor (<= lr)"},
    {"optim", "weight_decay", K_F64, OFF(weight_decay), 0, 0, INF, 0, 0, 0, "0", 0, 0, "AdamW decoupled decay"},
    {"optim", "beta1", K_F64, OFF(beta1), 0, 0, 1, F_HI_OPEN, 0, 0, "0.9", 0, 0, "AdamW beta1"},
    {"optim", "beta2", K_F64, OFF(beta2), 0, 0, 1, F_HI_OPEN, 0, 0, "0.95", 0, 0, "AdamW beta2"},
    {"optim", "eps", K_F64, OFF(eps), 0, 0, INF, F_LO_OPEN, 0, 0, "1e-08", 0, 0, "AdamW epsilon"},
    {"optim", "grad_clip", K_F64, OFF(grad_clip), 0, 0, INF, 0, 0, 0, "1", 0, 0, "global-norm clip; 0 = off"},
    {"optim", "warmup_steps", K_INT, OFF(warmup_steps), 0, 0, INF, 0, 0, 0, "0", 0, 0, "linear warmup steps"},
    {"optim", "schedule", K_ENUM, OFF(schedule), 0, 0, 0, 0, "constant|cosine", 0, "constant", 0, 0,
     "LR after warmup"},
    // [memory]
    {"memory", "zero_stage", K_INT, OFF(zero_stage), 0, 0, 2, 0, 0, 0, "1", 0, 0,
     "0 replicate, 1 shard optimizer state (+ fp32 master on GPUs), 2 also gradients"},
    {"memory", "recompute", K_BOOL, OFF(recompute), 0, 0, 0, 0, 0, 0, "true", 0, 0,
     "keep only layer inputs; recompute in backward (false is not implemented yet)"},
    {"memory", "offload_activations", K_BOOL, OFF(offload_activations), 0, 0, 0, 0, 0, 0, "false", 0, 0,
     "keep each layer's input in page-locked host memory (copied while other layers compute)"},
    {"memory", "keep_full_attention", K_CHOICE, OFF(keep_full_attention), SZ(keep_full_attention), 0, 0, 0,
     "auto|true|false", 0, "auto", 0, 0,
     "full layers keep their attention output for the backward (no O(S^2) recompute); auto: as many as fit"},
    {"memory", "device_gib", K_F64, OFF(device_gib), 0, 0, INF, F_LO_OPEN, 0, 0, "79", 0, 0,
     "memory per device (GiB) that --plan checks the plan against (H100 80GB: 79)"},
    {"memory", "mlp_chunk", K_INT, OFF(mlp_chunk), 0, 0, INF, 0, 0, 0, "0", 0, 0,
     "MLP sequence chunk in tokens; 0 = whole micro-batch"},
    {"memory", "loss_chunk", K_INT, OFF(loss_chunk), 0, 0, INF, 0, 0, 0, "0", 0, 0,
     "loss sequence chunk in tokens; 0 = whole micro-batch"},
    {"memory", "nan_policy", K_CHOICE, OFF(nan_policy), SZ(nan_policy), 0, 0, 0, "skip|stop", 0, "stop", 0, 0,
     "non-finite loss/grad: skip the step or stop"},
    // [checkpoint]
    {"checkpoint", "every", K_INT, OFF(ckpt_every), 0, 0, INF, 0, 0, 0, "0", 0, 0,
     "save every N steps; 0 = only at the end"},
    {"checkpoint", "keep", K_INT, OFF(ckpt_keep), 0, 1, INF, 0, 0, 0, "2", 0, 0, "checkpoints kept"},
    {"checkpoint", "dir", K_STR, OFF(ckpt_dir), SZ(ckpt_dir), 0, 0, F_DERIVED, 0, 0, 0, "<out_dir>/checkpoints", 0,
     "where the step-NNNNNN checkpoint directories go"},
    {"checkpoint", "resume", K_STR, OFF(resume), SZ(resume), 0, 0, 0, 0, 0, "auto", 0, 0,
     "auto = newest valid checkpoint in checkpoint.dir (if any), none = start fresh, or a step directory"},
    // [export]
    {"export", "hf", K_BOOL, OFF(export_hf), 0, 0, 0, 0, 0, 0, "true", 0, 0, "write a HF directory at the end"},
    {"export", "gguf", K_BOOL, OFF(export_gguf), 0, 0, 0, 0, 0, 0, "false", 0, 0, "also write a GGUF file"},
    {"export", "dir", K_STR, OFF(export_dir), SZ(export_dir), 0, 0, F_DERIVED, 0, 0, 0, "<out_dir>/export", 0,
     "export directory"},
    {"export", "dtype", K_CHOICE, OFF(export_dtype), SZ(export_dtype), 0, 0, 0, "bf16|f16|f32", 0, "bf16", 0, 0,
     "exported weight dtype"},
    {"export", "tokenizer_dir", K_STR, OFF(tokenizer_dir), SZ(tokenizer_dir), 0, 0, F_DERIVED | F_EMPTY_OK, 0, 0, 0,
     "init_from when a HF dir, else none", 0, "tokenizer files copied into the export"},
};
#define NKEYS ((int)(sizeof KEYS / sizeof KEYS[0]))
static const char *SECTIONS[] = {"run", "model", "rope", "layout", "data", "optim", "memory", "checkpoint", "export"};
#define NSEC ((int)(sizeof SECTIONS / sizeof SECTIONS[0]))

// ---------------------------------------------------------------------------------------------------------
// loader state

typedef struct {
    const key_def *k;
    char *val;
    char where[LG_PATH_MAX + 32];  // "file:line: " or "--set "
    int line;                      // file line, 0 for --set
} entry;

typedef struct {
    const char *path;   // NULL: overrides only
    entry e[NKEYS];     // at most one entry per key
    int n;
    int sec_line[NSEC]; // first header line of each section, 0 if absent
    int nlines;
    int hf;             // init_from is a HF dir
    char hf_json[LG_PATH_MAX + 16];
} loader;

static int sec_index(const char *s) {
    for (int i = 0; i < NSEC; i++)
        if (!strcmp(SECTIONS[i], s)) return i;
    return -1;
}

static const key_def *find_key(const char *sec, const char *key) {
    for (int i = 0; i < NKEYS; i++)
        if (!strcmp(KEYS[i].sec, sec) && !strcmp(KEYS[i].key, key)) return &KEYS[i];
    return NULL;
}

static entry *find_entry(loader *L, const key_def *k) {
    for (int i = 0; L && i < L->n; i++)
        if (L->e[i].k == k) return &L->e[i];
    return NULL;
}

// "lr, min_lr, ..." for messages.
static void section_keys(const char *sec, char *buf, size_t n) {
    buf[0] = 0;
    for (int i = 0; i < NKEYS; i++) {
        if (strcmp(KEYS[i].sec, sec)) continue;
        size_t l = strlen(buf);
        snprintf(buf + l, n - l, "%s%s", l ? ", " : "", KEYS[i].key);
    }
}

static void section_list(char *buf, size_t n) {
    buf[0] = 0;
    for (int i = 0; i < NSEC; i++) {
        size_t l = strlen(buf);
        snprintf(buf + l, n - l, "%s[%s]", l ? " " : "", SECTIONS[i]);
    }
}

// Where to blame a key: its entry, else config.json for [model] from a HF dir, else the file.
static void where_of(const loader *L, const lg_config *c, const key_def *k, char *buf, size_t n) {
    for (int i = 0; L && i < L->n; i++)
        if (L->e[i].k == k) {
            snprintf(buf, n, "%s", L->e[i].where);
            return;
        }
    if (L && L->hf && !strcmp(k->sec, "model")) snprintf(buf, n, "%s: ", L->hf_json);
    else if (L && L->path) snprintf(buf, n, "%s: ", L->path);
    else if (c->config_path[0]) snprintf(buf, n, "%s: ", c->config_path);
    else buf[0] = 0;
}

static LG_NORETURN LG_PRINTF(4, 5) void key_die(const loader *L, const lg_config *c, const key_def *k, const char *fmt, ...) {
    char where[LG_PATH_MAX + 64], msg[2048];
    where_of(L, c, k, where, sizeof where);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    lg_die("%s%s.%s: %s", where, k->sec, k->key, msg);
}

// ---------------------------------------------------------------------------------------------------------
// values

static void expected_text(const key_def *k, char *buf, size_t n) {
    int integer = k->type == K_INT || k->type == K_I64;
    const char *what = integer ? "an integer" : "a number";
    switch (k->type) {
    case K_U64: snprintf(buf, n, "an integer in [0, 18446744073709551615]"); return;
    case K_BOOL: snprintf(buf, n, "true or false"); return;
    case K_ENUM:
    case K_CHOICE: snprintf(buf, n, "one of %s", k->choices); return;
    case K_STR: snprintf(buf, n, "%s", (k->flags & F_EMPTY_OK) ? "a string" : "a non-empty string"); return;
    default: break;
    }
    if (isinf(k->hi)) {
        if (!integer && k->lo == 0 && (k->flags & F_LO_OPEN)) snprintf(buf, n, "a positive number");
        else snprintf(buf, n, "%s %s %g", what, (k->flags & F_LO_OPEN) ? ">" : ">=", k->lo);
    } else {
        snprintf(buf, n, "%s in %c%g, %g%c", what, (k->flags & F_LO_OPEN) ? '(' : '[', k->lo, k->hi,
                 (k->flags & F_HI_OPEN) ? ')' : ']');
    }
}

static int in_range(const key_def *k, double v) {
    if ((k->flags & F_LO_OPEN) ? !(v > k->lo) : !(v >= k->lo)) return 0;
    if (!isinf(k->hi) && ((k->flags & F_HI_OPEN) ? !(v < k->hi) : !(v <= k->hi))) return 0;
    return 1;
}

// Parse text into the key's field of c. Returns NULL on success, else writes "expected ..., got ..." to err.
static const char *set_value(lg_config *c, const key_def *k, const char *v, char *err, size_t errn) {
    char *p = (char *)c + k->off, *end;
    char exp[256];
    expected_text(k, exp, sizeof exp);
    errno = 0;
    switch (k->type) {
    case K_INT:
    case K_I64: {
        long long x = strtoll(v, &end, 10);
        if (!*v || *end || errno || !in_range(k, (double)x) || (k->type == K_INT && (x > 2147483647LL || x < -2147483647LL)))
            goto bad;
        if (k->type == K_INT) *(int *)p = (int)x;
        else *(int64_t *)p = (int64_t)x;
        return NULL;
    }
    case K_U64: {
        if (!*v || *v == '-' || *v == '+') goto bad;
        unsigned long long x = strtoull(v, &end, 10);
        if (*end || errno) goto bad;
        *(uint64_t *)p = (uint64_t)x;
        return NULL;
    }
    case K_F64:
    case K_F32: {
        double x = strtod(v, &end);
        if (!*v || *end || errno == ERANGE || !isfinite(x) || !in_range(k, x)) goto bad;
        if (k->type == K_F32) {
            float f = (float)x;
            if (!isfinite(f) || (x != 0 && f == 0)) goto bad;
            *(float *)p = f;
        } else {
            *(double *)p = x;
        }
        return NULL;
    }
    case K_BOOL: {
        static const char *T[] = {"true", "yes", "on", "1"}, *F[] = {"false", "no", "off", "0"};
        for (int i = 0; i < 4; i++) {
            if (!strcmp(v, T[i])) { *(int *)p = 1; return NULL; }
            if (!strcmp(v, F[i])) { *(int *)p = 0; return NULL; }
        }
        goto bad;
    }
    case K_ENUM:
    case K_CHOICE: {
        const char *s = k->choices;
        for (int i = 0; *s; i++) {
            const char *bar = strchr(s, '|');
            size_t len = bar ? (size_t)(bar - s) : strlen(s);
            if (strlen(v) == len && !strncmp(v, s, len)) {
                if (k->type == K_ENUM) *(int *)p = k->vals ? k->vals[i] : i;
                else { memset(p, 0, k->size); memcpy(p, v, len); }
                return NULL;
            }
            s += len + (bar ? 1 : 0);
        }
        goto bad;
    }
    case K_STR:
        if (!*v && !(k->flags & F_EMPTY_OK)) goto bad;
        if (strlen(v) >= k->size) {
            snprintf(err, errn, "expected at most %zu characters, got %zu", k->size - 1, strlen(v));
            return err;
        }
        memset(p, 0, k->size);  // no stale bytes: the round-trip test compares whole structs
        memcpy(p, v, strlen(v));
        return NULL;
    }
bad:
    snprintf(err, errn, "expected %s, got \"%s\"", exp, v);
    return err;
}

// Shortest text that parses back to the same value.
static void fmt_double(double x, char *buf, size_t n) {
    if (x == floor(x) && fabs(x) < 1e15) {  // theta = 10000000 reads better than 1e+07
        snprintf(buf, n, "%.0f", x);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) return;
    }
}
static void fmt_float(float x, char *buf, size_t n) {
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, n, "%.*g", prec, (double)x);
        if ((float)strtod(buf, NULL) == x) return;
    }
}

static int needs_quotes(const char *s) {
    if (!*s || *s == '"') return 1;
    for (const char *p = s; *p; p++)
        if (isspace((unsigned char)*p) || *p == '#' || *p == ';') return 1;
    return 0;
}

// The field as INI text.
static void fmt_value(const lg_config *c, const key_def *k, char *buf, size_t n) {
    const char *p = (const char *)c + k->off;
    switch (k->type) {
    case K_INT: snprintf(buf, n, "%d", *(const int *)p); return;
    case K_I64: snprintf(buf, n, "%lld", (long long)*(const int64_t *)p); return;
    case K_U64: snprintf(buf, n, "%llu", (unsigned long long)*(const uint64_t *)p); return;
    case K_F64: fmt_double(*(const double *)p, buf, n); return;
    case K_F32: fmt_float(*(const float *)p, buf, n); return;
    case K_BOOL: snprintf(buf, n, "%s", *(const int *)p ? "true" : "false"); return;
    case K_CHOICE: snprintf(buf, n, "%s", p); return;
    case K_STR: snprintf(buf, n, needs_quotes(p) ? "\"%s\"" : "%s", p); return;
    case K_ENUM: {
        int v = *(const int *)p;
        const char *s = k->choices;
        for (int i = 0; *s; i++) {
            const char *bar = strchr(s, '|');
            size_t len = bar ? (size_t)(bar - s) : strlen(s);
            if ((k->vals ? k->vals[i] : i) == v) {
                snprintf(buf, n, "%.*s", (int)len, s);
                return;
            }
            s += len + (bar ? 1 : 0);
        }
        snprintf(buf, n, "?%d", v);
        return;
    }
    }
}

static size_t field_size(const key_def *k) {
    switch (k->type) {
    case K_I64:
    case K_U64: return 8;
    case K_F64: return sizeof(double);
    case K_F32: return sizeof(float);
    case K_STR:
    case K_CHOICE: return k->size;
    default: return sizeof(int);
    }
}

// ---------------------------------------------------------------------------------------------------------
// reading entries

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
    return s;
}

// Strip a trailing comment (# or ; after whitespace) and optional quotes. Returns NULL on a bad quote.
static char *clean_value(char *v) {
    v = trim(v);
    if (*v == '"') {
        char *q = strchr(v + 1, '"');
        if (!q) return NULL;
        char *rest = trim(q + 1);
        if (*rest && *rest != '#' && *rest != ';') return NULL;
        *q = 0;
        return v + 1;
    }
    if (*v == '#' || *v == ';') return v + strlen(v);  // "key = # comment": empty value
    for (char *p = v + 1; *p; p++)
        if ((*p == '#' || *p == ';') && isspace((unsigned char)p[-1])) {
            *p = 0;
            break;
        }
    return trim(v);
}

static void add_entry(loader *L, const key_def *k, const char *val, const char *where, int line) {
    entry *e = find_entry(L, k);
    if (e) {
        if (line > 0 && e->line > 0)
            lg_die("%s%s.%s: expected each key once per file, already set at line %d", where, k->sec, k->key, e->line);
        free(e->val);  // --set replaces the file's value
    } else {
        e = &L->e[L->n++];
    }
    e->k = k;
    e->val = lg_strdup(val);
    e->line = line;
    snprintf(e->where, sizeof e->where, "%s", where);
}

static void read_ini(loader *L, const char *path) {
    char *text = lg_read_file(path, NULL);
    char sec[64] = "";
    int lineno = 0;
    char *save = text;
    for (char *line = text; line; line = save) {
        char *nl = strchr(line, '\n');
        save = nl ? nl + 1 : NULL;
        if (nl) *nl = 0;
        lineno++;
        char where[LG_PATH_MAX + 32];
        snprintf(where, sizeof where, "%s:%d: ", path, lineno);
        char *s = trim(line);
        if (!*s || *s == '#' || *s == ';') continue;
        if (*s == '[') {
            char *close = strchr(s, ']');
            char *rest = close ? trim(close + 1) : NULL;
            if (!close || (*rest && *rest != '#' && *rest != ';'))
                lg_die("%sexpected a section header like [optim], got \"%s\"", where, s);
            *close = 0;
            char *name = trim(s + 1);
            int si = sec_index(name);
            if (si < 0) {
                char list[256];
                section_list(list, sizeof list);
                lg_die("%s[%s]: unknown section, expected one of %s", where, name, list);
            }
            if (!L->sec_line[si]) L->sec_line[si] = lineno;
            snprintf(sec, sizeof sec, "%s", name);
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) lg_die("%sexpected \"key = value\", a [section] header or a comment, got \"%s\"", where, s);
        *eq = 0;
        char *key = trim(s);
        char *val = clean_value(eq + 1);
        if (!*sec) lg_die("%s%s: expected a [section] header before the first key", where, key);
        const key_def *k = find_key(sec, key);
        if (!k) {
            char keys[1024];
            section_keys(sec, keys, sizeof keys);
            lg_die("%s%s.%s: unknown key, expected one of %s", where, sec, key, keys);
        }
        if (!val) lg_die("%s%s.%s: expected a value with matching quotes and nothing after but a comment", where, sec, key);
        add_entry(L, k, val, where, lineno);
    }
    L->nlines = lineno;
    free(text);
}

static void add_override(loader *L, const char *ov) {
    char *s = lg_strdup(ov);
    char *eq = strchr(s, '=');
    char *lhs = eq ? (*eq = 0, trim(s)) : trim(s);
    char *dot = strchr(lhs, '.');
    if (!eq || !dot || dot == lhs || !dot[1]) lg_die("--set %s: expected section.key=value", ov);
    *dot = 0;
    const char *sec = lhs, *key = dot + 1;
    if (sec_index(sec) < 0) {
        char list[256];
        section_list(list, sizeof list);
        lg_die("--set %s.%s: unknown section [%s], expected one of %s", sec, key, sec, list);
    }
    const key_def *k = find_key(sec, key);
    if (!k) {
        char keys[1024];
        section_keys(sec, keys, sizeof keys);
        lg_die("--set %s.%s: unknown key, expected one of %s", sec, key, keys);
    }
    char *val = trim(eq + 1);
    size_t n = strlen(val);
    if (n >= 2 && val[0] == '"' && val[n - 1] == '"') {
        val[n - 1] = 0;
        val++;
    }
    add_entry(L, k, val, "--set ", 0);
    free(s);
}

// ---------------------------------------------------------------------------------------------------------
// HF config.json

static int hf_int(const lg_json *j, const char *key, int has_dflt, int64_t dflt, int64_t lo, int64_t hi, const char *path) {
    int64_t v = has_dflt ? lg_json_int_or(j, key, dflt, path) : lg_json_int(j, key, path);
    if (v < lo || v > hi) lg_die("%s: %s: expected an integer in [%lld, %lld], got %lld", path, key, (long long)lo, (long long)hi, (long long)v);
    return (int)v;
}

// bos/eos ids: a number, null (default) or a list (Llama-3 lists several eos ids; the first is the main one).
static int hf_token_id(const lg_json *j, const char *key, int dflt, const char *path) {
    const lg_json *n = lg_json_get(j, key);
    if (!n || n->type == LG_JSON_NULL) return dflt;
    if (n->type == LG_JSON_ARRAY && n->n > 0 && n->items[0]->type == LG_JSON_NUMBER) n = n->items[0];
    if (n->type != LG_JSON_NUMBER || n->num < 0 || n->num != floor(n->num) || n->num > 2147483647.0)
        lg_die("%s: %s: expected a token id (integer >= 0, or a list of them)", path, key);
    return (int)n->num;
}

void lg_config_apply_hf(lg_config *c, const char *hf_dir) {
    char *path = lg_path_join(hf_dir, "config.json");
    lg_json *j = lg_json_parse_file(path);
    if (j->type != LG_JSON_OBJECT) lg_die("%s: expected a JSON object at the top level", path);
    const char *mt = lg_json_str_or(j, "model_type", NULL, path);
    if (!mt || strcmp(mt, "llama"))
        lg_die("%s: model_type: expected \"llama\", got %s%s%s", path, mt ? "\"" : "", mt ? mt : "nothing", mt ? "\"" : "");
    const char *act = lg_json_str_or(j, "hidden_act", "silu", path);
    if (strcmp(act, "silu")) lg_die("%s: hidden_act: expected \"silu\" (SwiGLU), got \"%s\"", path, act);
    if (lg_json_bool_or(j, "attention_bias", 0, path))
        lg_die("%s: attention_bias: expected false (lgtrain's attention has no biases)", path);
    if (lg_json_bool_or(j, "mlp_bias", 0, path)) lg_die("%s: mlp_bias: expected false (lgtrain's MLP has no biases)", path);

    lg_model_cfg *m = &c->model;
    m->vocab_size = hf_int(j, "vocab_size", 0, 0, 2, 2147483647, path);
    m->dim = hf_int(j, "hidden_size", 0, 0, 1, 2147483647, path);
    m->n_layers = hf_int(j, "num_hidden_layers", 0, 0, 1, LG_MAX_LAYERS, path);
    m->n_heads = hf_int(j, "num_attention_heads", 0, 0, 1, 2147483647, path);
    m->n_kv_heads = hf_int(j, "num_key_value_heads", 1, m->n_heads, 1, 2147483647, path);
    if (!lg_json_get(j, "head_dim") && m->dim % m->n_heads)
        lg_die("%s: head_dim: expected a head_dim field when hidden_size (%d) is not a multiple of num_attention_heads (%d)",
               path, m->dim, m->n_heads);
    m->head_dim = hf_int(j, "head_dim", 1, m->dim / m->n_heads, 2, 2147483647, path);
    m->ffn_dim = hf_int(j, "intermediate_size", 0, 0, 1, 2147483647, path);
    m->norm_eps = (float)lg_json_num_or(j, "rms_norm_eps", 1e-6, path);  // transformers' LlamaConfig default
    m->tie_embeddings = lg_json_bool_or(j, "tie_word_embeddings", 0, path);
    m->bos_id = hf_token_id(j, "bos_token_id", 1, path);
    m->eos_id = hf_token_id(j, "eos_token_id", 2, path);
    m->init_std = (float)lg_json_num_or(j, "initializer_range", 0.02, path);

    // The source's RoPE is the starting point; [rope] keys override it field by field.
    lg_rope_cfg *r = &c->rope;
    r->theta = lg_json_num_or(j, "rope_theta", 10000.0, path);
    r->max_pos = hf_int(j, "max_position_embeddings", 1, 2048, 1, 2147483647, path);
    r->original_max_pos = r->max_pos;
    r->type = LG_ROPE_DEFAULT;
    r->factor = 1;
    r->beta_fast = 32;
    r->beta_slow = 1;
    r->attention_factor = 0;
    r->low_freq_factor = 1;
    r->high_freq_factor = 4;
    const lg_json *rs = lg_json_get(j, "rope_scaling");
    // transformers >= 5 writes "rope_parameters" {rope_type, rope_theta, ...} instead of rope_theta/rope_scaling.
    const lg_json *rp = lg_json_get(j, "rope_parameters");
    if (rp && rp->type == LG_JSON_OBJECT) {
        r->theta = lg_json_num_or(rp, "rope_theta", r->theta, path);
        if (!rs || rs->type == LG_JSON_NULL) rs = rp;
    }
    if (rs && rs->type == LG_JSON_OBJECT) {
        const char *t = lg_json_str_or(rs, "rope_type", NULL, path);
        if (!t) t = lg_json_str_or(rs, "type", "default", path);
        static const char *names[] = {"default", "linear", "dynamic", "yarn", "llama3"};
        int ti = -1;
        for (int i = 0; i < 5; i++)
            if (!strcmp(t, names[i])) ti = i;
        if (ti < 0) lg_die("%s: rope_scaling.rope_type: expected one of default|linear|dynamic|yarn|llama3, got \"%s\"", path, t);
        r->type = (lg_rope_type)ti;
        r->factor = lg_json_num_or(rs, "factor", 1.0, path);
        r->original_max_pos = (int)lg_json_int_or(rs, "original_max_position_embeddings", r->max_pos, path);
        r->beta_fast = lg_json_num_or(rs, "beta_fast", 32, path);
        r->beta_slow = lg_json_num_or(rs, "beta_slow", 1, path);
        r->attention_factor = lg_json_num_or(rs, "attention_factor", 0, path);
        r->low_freq_factor = lg_json_num_or(rs, "low_freq_factor", 1, path);
        r->high_freq_factor = lg_json_num_or(rs, "high_freq_factor", 4, path);
    } else if (rs && rs->type != LG_JSON_NULL) {
        lg_die("%s: rope_scaling: expected an object or null", path);
    }
    // Our own exports write max_position_embeddings as vLLM reads it (divided by a linear factor); the trained
    // context is kept in lgtrain_export.context_length, so a re-import does not shrink it.
    const lg_json *ex = lg_json_get(j, "lgtrain_export");
    if (ex && ex->type == LG_JSON_OBJECT) {
        int64_t ctx = lg_json_int_or(ex, "context_length", 0, path);
        if (ctx > r->max_pos) r->max_pos = (int)ctx;
    }
    lg_json_free(j);
    free(path);
}

// ---------------------------------------------------------------------------------------------------------
// layout

static void resolve_layout_at(lg_config *c, const loader *L) {
    lg_layout_cfg *y = &c->layout;
    int n = c->model.n_layers;
    const key_def *kf = find_key("layout", "full_layers");
    if (n < 1 || n > LG_MAX_LAYERS) key_die(L, c, find_key("model", "n_layers"), "expected an integer in [1, %d], got %d", LG_MAX_LAYERS, n);
    char full[LG_MAX_LAYERS] = {0};
    const char *s = y->full_layers;
    if (!strcmp(s, "auto")) {
        // The paper's placement: one contiguous block in the middle, a third of the stack (32 -> 10..21).
        int first = n / 3, last = n - 1 - first;
        for (int i = first; i <= last; i++) full[i] = 1;
    } else if (!strcmp(s, "all")) {
        memset(full, 1, n);
    } else if (strcmp(s, "none")) {
        const char *p = s;
        for (;;) {
            while (*p == ' ') p++;
            char *end;
            if (!isdigit((unsigned char)*p)) goto syntax;
            long a = strtol(p, &end, 10), b = a;
            p = end;
            while (*p == ' ') p++;
            if (*p == '-') {
                p++;
                while (*p == ' ') p++;
                if (!isdigit((unsigned char)*p)) goto syntax;
                b = strtol(p, &end, 10);
                p = end;
                while (*p == ' ') p++;
            }
            if (a > b) key_die(L, c, kf, "expected ascending ranges like 10-21, got %ld-%ld", a, b);
            if (b >= n) key_die(L, c, kf, "expected layers in 0..%d (model.n_layers = %d), got %ld", n - 1, n, b);
            for (long i = a; i <= b; i++) full[i] = 1;
            if (!*p) break;
            if (*p++ != ',') goto syntax;
        }
    }
    if (y->block % 16) key_die(L, c, find_key("layout", "block"), "expected a multiple of 16 (>= 16), got %d", y->block);
    memset(y->layer, 0, sizeof y->layer);
    for (int i = 0; i < n; i++) {
        lg_attn *a = &y->layer[i];
        if (full[i]) {
            a->kind = LG_ATTN_FULL;
        } else if (y->sparse_kind == LG_ATTN_BLOCK_SPARSE) {
            a->kind = LG_ATTN_BLOCK_SPARSE;
            a->block = y->block;
            a->local_blocks = y->local_blocks;
            a->vert_stride = y->vert_stride;
        } else {
            a->kind = LG_ATTN_SINK_WINDOW;
            a->sink = y->sink;
            a->window = y->window;
        }
    }
    return;
syntax:
    key_die(L, c, kf, "expected auto, all, none or layer ranges like 10-21,30, got \"%s\"", s);
}

void lg_config_resolve_layout(lg_config *c) { resolve_layout_at(c, NULL); }

// ---------------------------------------------------------------------------------------------------------
// load

static const key_def *K(const char *sec, const char *key) {
    const key_def *k = find_key(sec, key);
    if (!k) lg_die("internal: no config key %s.%s", sec, key);
    return k;
}

static int given(loader *L, const char *sec, const char *key) { return find_entry(L, K(sec, key)) != NULL; }

static void check_missing(loader *L, const key_def *k, const char *why) {
    if (find_entry(L, k)) return;
    int si = sec_index(k->sec);
    char where[LG_PATH_MAX + 32];
    if (L->path) snprintf(where, sizeof where, "%s:%d: ", L->path, L->sec_line[si] ? L->sec_line[si] : L->nlines);
    else snprintf(where, sizeof where, "--set ");
    char exp[256];
    expected_text(k, exp, sizeof exp);
    lg_die("%s%s.%s: expected %s (%s), none given", where, k->sec, k->key, exp, why);
}

static void validate(lg_config *c, loader *L) {
    lg_model_cfg *m = &c->model;
    if (m->n_heads % m->n_kv_heads)
        key_die(L, c, K("model", "n_kv_heads"), "expected a divisor of model.n_heads (%d), got %d", m->n_heads, m->n_kv_heads);
    if (m->head_dim % 2) key_die(L, c, K("model", "head_dim"), "expected an even number (RoPE rotates pairs), got %d", m->head_dim);
    if (m->bos_id >= m->vocab_size)
        key_die(L, c, K("model", "bos_id"), "expected an id < model.vocab_size (%d), got %d", m->vocab_size, m->bos_id);
    if (m->eos_id >= m->vocab_size)
        key_die(L, c, K("model", "eos_id"), "expected an id < model.vocab_size (%d), got %d", m->vocab_size, m->eos_id);
    lg_rope_cfg *r = &c->rope;
    if (r->type == LG_ROPE_LLAMA3 && !(r->low_freq_factor < r->high_freq_factor))
        key_die(L, c, K("rope", "high_freq_factor"), "expected a number > rope.low_freq_factor (%g), got %g", r->low_freq_factor,
                r->high_freq_factor);
    if (r->type != LG_ROPE_DYNAMIC && r->max_pos < c->seq_len)
        key_die(L, c, K("rope", "max_position_embeddings"), "expected an integer >= data.seq_len (%d), got %d", c->seq_len, r->max_pos);
    int64_t unit = (int64_t)c->seq_len * c->micro_batch;
    if (c->tokens_per_step % unit)
        key_die(L, c, K("data", "tokens_per_step"), "expected a multiple of data.seq_len x data.micro_batch (%lld), got %lld",
                (long long)unit, (long long)c->tokens_per_step);
    if (c->min_lr > c->lr) key_die(L, c, K("optim", "min_lr"), "expected a number <= optim.lr (%g), got %g", c->lr, c->min_lr);
}

void lg_config_load(lg_config *c, const char *path, int n_overrides, char **overrides) {
    loader *L = lg_calloc(1, sizeof *L);
    memset(c, 0, sizeof *c);  // padding and string tails zero: resolved configs compare with memcmp
    c->keep_attn_limit = -1;  // every full layer, until lg_plan_resolve says otherwise
    L->path = path;
    if (path) snprintf(c->config_path, sizeof c->config_path, "%s", path);
    char err[2048];
    for (int i = 0; i < NKEYS; i++)
        if (KEYS[i].dflt && set_value(c, &KEYS[i], strcmp(KEYS[i].dflt, "\"\"") ? KEYS[i].dflt : "", err, sizeof err))
            lg_die("internal: default of %s.%s: %s", KEYS[i].sec, KEYS[i].key, err);
    if (path) read_ini(L, path);
    for (int i = 0; i < n_overrides; i++) add_override(L, overrides[i]);

    // init_from first: a HF dir supplies [model] and the starting [rope].
    const key_def *kinit = K("run", "init_from");
    check_missing(L, kinit, "required, no default");
    entry *ei = find_entry(L, kinit);
    if (set_value(c, kinit, ei->val, err, sizeof err)) lg_die("%srun.init_from: %s", ei->where, err);
    L->hf = strcmp(c->init_from, "random") != 0;
    int src_max_pos = 0;
    if (L->hf) {
        snprintf(L->hf_json, sizeof L->hf_json, "%s/config.json", c->init_from);
        if (!lg_file_exists(L->hf_json))
            lg_die("%srun.init_from: expected \"random\" or a HF model directory with config.json, got \"%s\" (%s not found)",
                   ei->where, c->init_from, L->hf_json);
        lg_config_apply_hf(c, c->init_from);
        src_max_pos = c->rope.max_pos;
    }
    for (int i = 0; i < L->n; i++) {
        entry *e = &L->e[i];
        if (e->k == kinit) continue;
        if (L->hf && !strcmp(e->k->sec, "model")) {
            // [model] with a HF dir: the value must agree with config.json.
            lg_config *t = lg_malloc(sizeof *t);
            memcpy(t, c, sizeof *t);
            if (set_value(t, e->k, e->val, err, sizeof err)) lg_die("%s%s.%s: %s", e->where, e->k->sec, e->k->key, err);
            if (memcmp((char *)t + e->k->off, (char *)c + e->k->off, field_size(e->k))) {
                char hv[64];
                fmt_value(c, e->k, hv, sizeof hv);
                lg_die("%s%s.%s: expected %s as in %s (%s), got \"%s\"", e->where, e->k->sec, e->k->key, hv, L->hf_json,
                       e->k->hf, e->val);
            }
            free(t);
            continue;
        }
        if (set_value(c, e->k, e->val, err, sizeof err)) lg_die("%s%s.%s: %s", e->where, e->k->sec, e->k->key, err);
    }

    // required keys, in table order
    for (int i = 0; i < NKEYS; i++) {
        if (KEYS[i].flags & F_REQ) check_missing(L, &KEYS[i], "required, no default");
        if ((KEYS[i].flags & F_REQ_RANDOM) && !L->hf) check_missing(L, &KEYS[i], "required when run.init_from = random");
    }

    // derived defaults
    if (!given(L, "run", "name")) {
        const char *b = path ? strrchr(path, '/') : NULL;
        b = b ? b + 1 : path ? path : "run";
        size_t len = strlen(b);
        if (len > 4 && !strcmp(b + len - 4, ".ini")) len -= 4;
        if (len >= sizeof c->name) len = sizeof c->name - 1;
        memcpy(c->name, b, len);
    }
    if (!given(L, "run", "out_dir")) snprintf(c->out_dir, sizeof c->out_dir, "runs/%s", c->name);
    lg_model_cfg *m = &c->model;
    if (!L->hf) {
        if (!given(L, "model", "n_kv_heads")) m->n_kv_heads = m->n_heads;
        if (!given(L, "model", "head_dim")) {
            if (m->dim % m->n_heads)
                key_die(L, c, K("model", "head_dim"), "expected a value: model.dim (%d) is not a multiple of model.n_heads (%d)",
                        m->dim, m->n_heads);
            m->head_dim = m->dim / m->n_heads;
        }
        if (!given(L, "rope", "original_max_position_embeddings")) c->rope.original_max_pos = c->seq_len;
    }
    lg_rope_cfg *r = &c->rope;
    if (!given(L, "rope", "max_position_embeddings")) {
        if (r->type == LG_ROPE_DYNAMIC) {
            r->max_pos = r->original_max_pos;  // transformers' dynamic NTK grows the base past max_position_embeddings
        } else {
            int64_t mp = c->seq_len;
            if (src_max_pos > mp) mp = src_max_pos;
            if (r->type != LG_ROPE_DEFAULT) {
                int64_t s = (int64_t)llround(r->factor * r->original_max_pos);
                if (s > mp) mp = s;
            }
            if (mp > 2147483647) mp = 2147483647;
            r->max_pos = (int)mp;
        }
    }
    if (!given(L, "data", "tokens_per_step")) c->tokens_per_step = (int64_t)c->seq_len * c->micro_batch;
    if (!given(L, "export", "dir") &&
        snprintf(c->export_dir, sizeof c->export_dir, "%s/export", c->out_dir) >= (int)sizeof c->export_dir)
        key_die(L, c, K("export", "dir"), "expected a value: <out_dir>/export is longer than %zu characters", sizeof c->export_dir - 1);
    if (!given(L, "checkpoint", "dir") &&
        snprintf(c->ckpt_dir, sizeof c->ckpt_dir, "%s/checkpoints", c->out_dir) >= (int)sizeof c->ckpt_dir)
        key_die(L, c, K("checkpoint", "dir"), "expected a value: <out_dir>/checkpoints is longer than %zu characters",
                sizeof c->ckpt_dir - 1);
    if (!given(L, "export", "tokenizer_dir") && L->hf) snprintf(c->tokenizer_dir, sizeof c->tokenizer_dir, "%s", c->init_from);

    validate(c, L);
    resolve_layout_at(c, L);
    for (int i = 0; i < L->n; i++) free(L->e[i].val);
    free(L);
}

// ---------------------------------------------------------------------------------------------------------
// printing

void lg_config_print(const lg_config *c, FILE *f) {
    fprintf(f, "# lgtrain resolved config%s%s (every key explicit; lgtrain --config reads it back)\n",
            c->config_path[0] ? " from " : "", c->config_path);
    const char *sec = "";
    char v[LG_PATH_MAX + 8];
    for (int i = 0; i < NKEYS; i++) {
        const key_def *k = &KEYS[i];
        if (strcmp(sec, k->sec)) {
            sec = k->sec;
            fprintf(f, "\n[%s]\n", sec);
            if (!strcmp(sec, "layout")) {
                // per-layer summary, runs of equal layers merged
                int n = c->model.n_layers;
                for (int a = 0; a < n;) {
                    char d[96], d2[96];
                    lg_attn_describe(&c->layout.layer[a], d, sizeof d);
                    int b = a;
                    while (b + 1 < n) {
                        lg_attn_describe(&c->layout.layer[b + 1], d2, sizeof d2);
                        if (strcmp(d, d2)) break;
                        b++;
                    }
                    if (a == b) fprintf(f, "# layer %d: %s\n", a, d);
                    else fprintf(f, "# layers %d-%d: %s\n", a, b, d);
                    a = b + 1;
                }
            }
        }
        fmt_value(c, k, v, sizeof v);
        fprintf(f, "%s = %s\n", k->key, v);
    }
}

void lg_config_print_keys(FILE *f) {
    fprintf(f, "| key | default | allowed | meaning |\n|---|---|---|---|\n");
    for (int i = 0; i < NKEYS; i++) {
        const key_def *k = &KEYS[i];
        char exp[256], dflt[256];
        expected_text(k, exp, sizeof exp);
        // string keys with a narrower meaning than "a string"
        if (!strcmp(k->key, "init_from")) snprintf(exp, sizeof exp, "random, or a directory with config.json");
        if (!strcmp(k->key, "full_layers")) snprintf(exp, sizeof exp, "auto, all, none, or ranges like 10-21,30");
        if (!strcmp(k->key, "train")) snprintf(exp, sizeof exp, "a path, or synthetic");
        if (k->flags & F_REQ) snprintf(dflt, sizeof dflt, "required");
        else if (k->flags & F_REQ_RANDOM)
            snprintf(dflt, sizeof dflt, "required when init_from = random");
        else  // code span: "<name>" would be an HTML tag in plain markdown
            snprintf(dflt, sizeof dflt, "`%s`", (k->flags & F_DERIVED) ? k->dflt_doc : k->dflt);
        char hf[96] = "";
        if (k->hf) {
            snprintf(hf, sizeof hf, "; HF dir: %s from config.json, must agree", k->hf);
            if (k->flags & (F_DERIVED)) snprintf(dflt + strlen(dflt), sizeof dflt - strlen(dflt), " (random)");
        }
        // "|" inside a markdown cell must be escaped
        char allowed[300], *o = allowed;
        for (const char *p = exp; *p && o < allowed + sizeof allowed - 3; p++) {
            if (*p == '|') *o++ = '\\';
            *o++ = *p;
        }
        *o = 0;
        fprintf(f, "| `%s.%s` | %s | %s | %s%s |\n", k->sec, k->key, dflt, allowed, k->doc, hf);
    }
}
