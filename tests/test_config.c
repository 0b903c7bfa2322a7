// test_config: the INI configuration. Every shipped config parses and resolves to the values its comments
// promise (HF dirs replaced by temporary config.json files with the real Llama-2 7B/70B fields); print ->
// load gives back the identical struct; every bad input stops with the exact "file:line: section.key:
// expected ..." message (checked in a child process, since lg_die exits); configs/README.md holds the key
// table that lg_config_print_keys generates.
//   test_config                         run the tests (LG_SRC = source dir)
//   test_config FILE.ini [sec.key=v...]  print the resolved config (a debugging aid)
//   test_config --keys                  print the key table for configs/README.md
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "trainer/config.h"
#include "trainer/util.h"

static int fails = 0;
#define CHECK(cond, ...)                                        \
    do {                                                        \
        if (!(cond)) {                                          \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);         \
            printf(__VA_ARGS__);                                \
            printf("\n");                                       \
            fails++;                                            \
        }                                                       \
    } while (0)

static char tmp[256];

static char *tpath(const char *name) {
    static char bufs[8][512];
    static int k = 0;
    char *b = bufs[k++ % 8];
    snprintf(b, 512, "%s/%s", tmp, name);
    return b;
}

static void write_text(const char *path, const char *text) {
    FILE *f = lg_fopen(path, "w");
    fputs(text, f);
    lg_fclose(f, path);
}

// A HF dir holding only config.json.
static const char *make_hf(const char *name, const char *json) {
    const char *d = tpath(name);
    lg_mkdirs(d);
    char *p = lg_path_join(d, "config.json");
    write_text(p, json);
    free(p);
    return d;
}

// Load in a child: returns its exit code (0 = loaded) and its stderr in err.
static int load_in_child(const char *path, int n, const char **sets, char *err, size_t errn) {
    int fd[2];
    if (pipe(fd)) { perror("pipe"); exit(1); }
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); exit(1); }
    if (pid == 0) {
        close(fd[0]);
        dup2(fd[1], 2);
        lg_config *c = malloc(sizeof *c);
        lg_config_load(c, path, n, (char **)sets);
        _exit(0);
    }
    close(fd[1]);
    size_t got = 0;
    ssize_t r;
    while ((r = read(fd[0], err + got, errn - 1 - got)) > 0) got += (size_t)r;
    err[got] = 0;
    close(fd[0]);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void expect_err_(int line, const char *path, int n, const char **sets, const char *want_msg) {
    char err[8192], want[8192];
    int rc = load_in_child(path, n, sets, err, sizeof err);
    snprintf(want, sizeof want, "lgtrain: error: %s\n", want_msg);
    if (rc != 1 || strcmp(err, want)) {
        printf("FAIL test_config.c:%d: exit %d\n  got:  %s  want: %s", line, rc, err, want);
        fails++;
    }
}
#define expect_err(path, n, sets, ...)                           \
    do {                                                         \
        const char *path_ = (path); /* before P is formatted */ \
        char w_[4096];                                           \
        snprintf(w_, sizeof w_, __VA_ARGS__);                    \
        expect_err_(__LINE__, path_, n, sets, w_);               \
    } while (0)

// One INI per error case: BASE with a replacement or an extra line.
static const char *BASE =
    "# a minimal valid config\n"     // 1
    "[run]\n"                        // 2
    "init_from = random\n"           // 3
    "steps = 10\n"                   // 4
    "\n"                             // 5
    "[model]\n"                      // 6
    "vocab_size = 64\n"              // 7
    "dim = 16\n"                     // 8
    "n_layers = 6\n"                 // 9
    "n_heads = 2\n"                  // 10
    "ffn_dim = 32\n"                 // 11
    "[data]\n"                       // 12
    "train = synthetic\n"            // 13
    "seq_len = 32\n"                 // 14
    "[optim]\n"                      // 15
    "lr = 1e-3\n";                   // 16

// BASE with line `lineno` replaced by `repl` (NULL: deleted), plus `extra` appended; written to name.
static const char *variant(const char *name, int lineno, const char *repl, const char *extra) {
    char out[8192] = "";
    const char *p = BASE;
    for (int ln = 1; *p; ln++) {
        const char *nl = strchr(p, '\n');
        size_t len = (size_t)(nl - p) + 1;
        if (ln == lineno) {
            if (repl) { strcat(out, repl); strcat(out, "\n"); }
        } else {
            strncat(out, p, len);
        }
        p += len;
    }
    if (extra) strcat(out, extra);
    const char *path = tpath(name);
    write_text(path, out);
    return path;
}

static lg_config *load(const char *path, int n, const char **sets) {
    lg_config *c = calloc(1, sizeof *c);
    lg_config_load(c, path, n, (char **)sets);
    return c;
}

// print -> load gives the identical struct, and printing that gives the identical text.
static void round_trip(const lg_config *c, const char *tag) {
    char p1[512];
    snprintf(p1, sizeof p1, "%s/rt-%s.ini", tmp, tag);
    FILE *f = lg_fopen(p1, "w");
    lg_config_print(c, f);
    lg_fclose(f, p1);
    lg_config *d = load(p1, 0, NULL);
    lg_config *e = malloc(sizeof *e);
    memcpy(e, d, sizeof *e);
    memcpy(e->config_path, c->config_path, sizeof e->config_path);  // provenance differs by design
    CHECK(!memcmp(e, c, sizeof *e), "%s: print -> load changed the config (%s)", tag, p1);
    if (memcmp(e, c, sizeof *e)) {
        const unsigned char *a = (const void *)c, *b = (const void *)e;
        for (size_t i = 0; i < sizeof *e; i++)
            if (a[i] != b[i]) { printf("  first difference at byte %zu\n", i); break; }
    }
    char *t1 = lg_read_file(p1, NULL);
    char p2[600];
    snprintf(p2, sizeof p2, "%s.2", p1);
    f = lg_fopen(p2, "w");
    lg_config_print(d, f);
    lg_fclose(f, p2);
    char *t2 = lg_read_file(p2, NULL);
    // the first line names the source file; the rest must be equal
    CHECK(!strcmp(strchr(t1, '\n'), strchr(t2, '\n')), "%s: second print differs", tag);
    free(t1); free(t2); free(d); free(e);
}

// Full layers as a bitmask string "..FFFF.." for compact assertions.
static void full_mask(const lg_config *c, char *buf) {
    int n = c->model.n_layers;
    for (int i = 0; i < n; i++) buf[i] = c->layout.layer[i].kind == LG_ATTN_FULL ? 'F' : '.';
    buf[n] = 0;
}
static void mask_of(int n, int first, int last, char *buf) {
    for (int i = 0; i < n; i++) buf[i] = (i >= first && i <= last) ? 'F' : '.';
    buf[n] = 0;
}

// Real config.json fields of the Llama-2 checkpoints (meta-llama/Llama-2-{7b,70b}-hf).
static const char *LLAMA2_7B =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"bos_token_id\": 1, \"eos_token_id\": 2, \"hidden_act\": \"silu\","
    " \"hidden_size\": 4096, \"initializer_range\": 0.02, \"intermediate_size\": 11008, \"max_position_embeddings\": 4096,"
    " \"model_type\": \"llama\", \"num_attention_heads\": 32, \"num_hidden_layers\": 32, \"num_key_value_heads\": 32,"
    " \"pretraining_tp\": 1, \"rms_norm_eps\": 1e-05, \"rope_scaling\": null, \"tie_word_embeddings\": false,"
    " \"torch_dtype\": \"float16\", \"transformers_version\": \"4.31.0.dev0\", \"use_cache\": true, \"vocab_size\": 32000}";
static const char *LLAMA2_70B =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"bos_token_id\": 1, \"eos_token_id\": 2, \"hidden_act\": \"silu\","
    " \"hidden_size\": 8192, \"initializer_range\": 0.02, \"intermediate_size\": 28672, \"max_position_embeddings\": 4096,"
    " \"model_type\": \"llama\", \"num_attention_heads\": 64, \"num_hidden_layers\": 80, \"num_key_value_heads\": 8,"
    " \"pretraining_tp\": 1, \"rms_norm_eps\": 1e-05, \"rope_scaling\": null, \"tie_word_embeddings\": false,"
    " \"torch_dtype\": \"float16\", \"vocab_size\": 32000}";

static void test_shipped(const char *src) {
    char path[1024], set[1100], mask[LG_MAX_LAYERS + 1], want[LG_MAX_LAYERS + 1];
    const char *d7 = make_hf("Llama-2-7b-hf", LLAMA2_7B);
    const char *d70 = make_hf("Llama-2-70b-hf", LLAMA2_70B);
    const char *sets[1] = {set};

    // 7b-128k: the recipe
    snprintf(path, sizeof path, "%s/configs/7b-128k.ini", src);
    snprintf(set, sizeof set, "run.init_from=%s", d7);
    lg_config *c = load(path, 1, sets);
    CHECK(!strcmp(c->name, "7b-128k") && !strcmp(c->out_dir, "runs/7b-128k") && !strcmp(c->device, "cuda"), "7b run");
    CHECK(c->model.vocab_size == 32000 && c->model.dim == 4096 && c->model.n_layers == 32 && c->model.n_heads == 32 &&
              c->model.n_kv_heads == 32 && c->model.head_dim == 128 && c->model.ffn_dim == 11008 &&
              c->model.norm_eps == 1e-5f && !c->model.tie_embeddings && c->model.bos_id == 1 && c->model.eos_id == 2,
          "7b model from config.json");
    CHECK(c->rope.type == LG_ROPE_DEFAULT && c->rope.theta == 1e7 && c->rope.original_max_pos == 4096 &&
              c->rope.max_pos == 131072, "7b rope: type %d theta %g orig %d max %d", c->rope.type, c->rope.theta,
          c->rope.original_max_pos, c->rope.max_pos);
    full_mask(c, mask);
    mask_of(32, 10, 21, want);
    CHECK(!strcmp(mask, want), "7b layout %s", mask);
    CHECK(c->layout.layer[0].kind == LG_ATTN_SINK_WINDOW && c->layout.layer[0].sink == 64 &&
              c->layout.layer[0].window == 2048 && c->layout.layer[31].kind == LG_ATTN_SINK_WINDOW, "7b sparse layers");
    CHECK(c->seq_len == 131072 && c->micro_batch == 1 && c->tokens_per_step == 4194304, "7b data");
    CHECK(c->lr == 2e-5 && c->schedule == LG_LR_CONSTANT && c->warmup_steps == 20, "7b optim");
    CHECK(c->zero_stage == 2 && c->recompute && c->export_hf && c->export_gguf && !strcmp(c->export_dtype, "bf16"),
          "7b memory/export");
    CHECK(!strcmp(c->tokenizer_dir, d7) && !strcmp(c->export_dir, "runs/7b-128k/export"), "7b derived dirs");
    round_trip(c, "7b");
    free(c);

    snprintf(path, sizeof path, "%s/configs/7b-128k-full.ini", src);
    c = load(path, 1, sets);
    full_mask(c, mask);
    mask_of(32, 0, 31, want);
    CHECK(!strcmp(mask, want) && !strcmp(c->name, "7b-128k-full") && c->rope.theta == 1e7 && c->seq_len == 131072,
          "7b-full layout %s", mask);
    round_trip(c, "7b-full");
    free(c);

    snprintf(path, sizeof path, "%s/configs/70b-128k.ini", src);
    snprintf(set, sizeof set, "run.init_from=%s", d70);
    c = load(path, 1, sets);
    full_mask(c, mask);
    mask_of(80, 26, 53, want);
    CHECK(!strcmp(mask, want), "70b layout %s", mask);
    CHECK(c->model.n_layers == 80 && c->model.n_heads == 64 && c->model.n_kv_heads == 8 && c->model.head_dim == 128 &&
              c->model.ffn_dim == 28672, "70b model");
    round_trip(c, "70b");
    free(c);

    snprintf(path, sizeof path, "%s/configs/tiny-pretrain.ini", src);
    c = load(path, 0, NULL);
    full_mask(c, mask);
    CHECK(!strcmp(mask, "FFFF"), "tiny-pretrain layout %s", mask);
    CHECK(c->model.vocab_size == 1024 && c->model.dim == 128 && c->model.n_layers == 4 && c->model.n_heads == 4 &&
              c->model.n_kv_heads == 2 && c->model.head_dim == 32 && c->model.ffn_dim == 352 && c->seq_len == 256 &&
              c->schedule == LG_LR_COSINE && c->lr == 1e-3 && c->steps == 300 && !strcmp(c->device, "cpu") &&
              c->rope.max_pos == 256 && c->rope.original_max_pos == 256,
          "tiny-pretrain values");
    round_trip(c, "tiny-pretrain");
    free(c);

    // tiny-longgen starts from tiny-pretrain's export: a config.json with its dims
    const char *dt = make_hf("tiny-export",
                             "{\"model_type\": \"llama\", \"vocab_size\": 1024, \"hidden_size\": 128, \"num_hidden_layers\": 4,"
                             " \"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"intermediate_size\": 352,"
                             " \"rms_norm_eps\": 1e-05, \"max_position_embeddings\": 256, \"rope_theta\": 10000.0,"
                             " \"tie_word_embeddings\": false, \"bos_token_id\": 1, \"eos_token_id\": 2}");
    snprintf(path, sizeof path, "%s/configs/tiny-longgen.ini", src);
    snprintf(set, sizeof set, "run.init_from=%s", dt);
    c = load(path, 1, sets);
    full_mask(c, mask);
    CHECK(!strcmp(mask, ".FF."), "tiny-longgen layout %s", mask);
    CHECK(c->layout.layer[0].sink == 16 && c->layout.layer[0].window == 256 && c->seq_len == 2048 &&
              c->rope.theta == 500000 && c->rope.original_max_pos == 256 && c->rope.max_pos == 2048 &&
              c->model.head_dim == 32 && c->export_gguf,
          "tiny-longgen values: theta %g orig %d max %d", c->rope.theta, c->rope.original_max_pos, c->rope.max_pos);
    round_trip(c, "tiny-longgen");
    free(c);

    snprintf(path, sizeof path, "%s/configs/tiny-test.ini", src);
    c = load(path, 0, NULL);
    full_mask(c, mask);
    CHECK(!strcmp(mask, ".F.") && !strcmp(c->data_train, "synthetic") && c->tokens_per_step == 256 &&
              c->layout.layer[2].window == 16 && c->deterministic && c->threads == 1,
          "tiny-test values %s", mask);
    round_trip(c, "tiny-test");
    free(c);
}

static void test_defaults_and_syntax(void) {
    const char *p = variant("base.ini", 0, NULL, NULL);
    lg_config *c = load(p, 0, NULL);
    char mask[LG_MAX_LAYERS + 1];
    full_mask(c, mask);
    // the documented defaults (configs/README.md)
    CHECK(!strcmp(c->name, "base") && !strcmp(c->out_dir, "runs/base") && !strcmp(c->device, "cpu") && c->seed == 1 &&
              c->log_every == 1 && !c->deterministic && c->threads == 0, "run defaults");
    CHECK(c->model.n_kv_heads == 2 && c->model.head_dim == 8 && c->model.norm_eps == 1e-5f && !c->model.tie_embeddings &&
              c->model.bos_id == 1 && c->model.eos_id == 2 && c->model.init_std == 0.02f, "model defaults");
    CHECK(c->rope.type == LG_ROPE_DEFAULT && c->rope.theta == 10000 && c->rope.factor == 1 && c->rope.original_max_pos == 32 &&
              c->rope.max_pos == 32 && c->rope.beta_fast == 32 && c->rope.beta_slow == 1 && c->rope.attention_factor == 0 &&
              c->rope.low_freq_factor == 1 && c->rope.high_freq_factor == 4, "rope defaults");
    CHECK(!strcmp(mask, "..FF..") && c->layout.sparse_kind == LG_ATTN_SINK_WINDOW && c->layout.sink == 64 &&
              c->layout.window == 2048 && c->layout.block == 64 && c->layout.local_blocks == 16 && c->layout.vert_stride == 64 &&
              !strcmp(c->layout.attention_backend, "auto") && !strcmp(c->layout.full_layers, "auto"), "layout defaults %s", mask);
    CHECK(!strcmp(c->data_val, "") && c->micro_batch == 1 && c->tokens_per_step == 32, "data defaults");
    CHECK(c->min_lr == 0 && c->weight_decay == 0 && c->beta1 == 0.9 && c->beta2 == 0.95 && c->eps == 1e-8 && c->grad_clip == 1 &&
              c->warmup_steps == 0 && c->schedule == LG_LR_CONSTANT, "optim defaults");
    CHECK(c->zero_stage == 1 && c->recompute && c->device_gib == 79 && c->mlp_chunk == 0 && c->loss_chunk == 0 && !strcmp(c->nan_policy, "stop") &&
              c->ckpt_every == 0 && c->ckpt_keep == 2 && !strcmp(c->ckpt_dir, "runs/base/checkpoints") && !strcmp(c->resume, "auto"),
          "memory/checkpoint defaults");
    CHECK(c->export_hf && !c->export_gguf && !strcmp(c->export_dir, "runs/base/export") && !strcmp(c->export_dtype, "bf16") &&
              !strcmp(c->tokenizer_dir, ""), "export defaults");
    round_trip(c, "base");
    free(c);

    // comments, quotes, spacing; --set replaces the file's value and adds keys
    p = variant("syntax.ini", 13, "train = data/a#b;c   ; trailing comment",
                "[run]\n  name   =   \"my run # 1\"   # quoted, with a hash\n"
                "[layout]\nfull_layers = 0-1, 4 ,5   ; ranges with spaces\nsparse = block_sparse\nblock = 32\n"
                "[export]\ntokenizer_dir = \"\"\n[rope]\nscaling = yarn\nfactor = 4\n"
                "[model]\nnorm_eps = 1.2345678e-6\ninit_std = 0.0123456\n");
    const char *sets[] = {"optim.lr=3.3333333333333333e-4", "optim.schedule = cosine", "run.out_dir=\"/tmp/x y\""};
    c = load(p, 3, sets);
    full_mask(c, mask);
    CHECK(!strcmp(c->data_train, "data/a#b;c") && !strcmp(c->name, "my run # 1") && c->lr == 3.3333333333333333e-4 &&
              c->model.norm_eps == 1.2345678e-6f && c->model.init_std == 0.0123456f &&
              c->schedule == LG_LR_COSINE && !strcmp(c->out_dir, "/tmp/x y") && !strcmp(c->export_dir, "/tmp/x y/export"),
          "syntax: train '%s' name '%s' lr %g out '%s'", c->data_train, c->name, c->lr, c->out_dir);
    CHECK(!strcmp(mask, "FF..FF") && c->layout.layer[2].kind == LG_ATTN_BLOCK_SPARSE && c->layout.layer[2].block == 32 &&
              c->layout.layer[2].local_blocks == 16 && c->layout.layer[2].vert_stride == 64, "block_sparse layout %s", mask);
    // yarn: max_position_embeddings defaults to factor x original (4 x seq_len 32)
    CHECK(c->rope.type == LG_ROPE_YARN && c->rope.max_pos == 128, "yarn max_pos %d", c->rope.max_pos);
    round_trip(c, "syntax");
    free(c);

    // the public layout resolver: the middle third for several depths (the paper: 12 of 32 = 10..21)
    static const int depth[][3] = {{32, 10, 21}, {80, 26, 53}, {12, 4, 7}, {3, 1, 1}, {1, 0, 0}, {2, 0, 1}, {24, 8, 15}};
    for (int i = 0; i < 7; i++) {
        lg_config *d = calloc(1, sizeof *d);
        d->model.n_layers = depth[i][0];
        strcpy(d->layout.full_layers, "auto");
        d->layout.sparse_kind = LG_ATTN_SINK_WINDOW;
        d->layout.block = 64;
        lg_config_resolve_layout(d);
        char want[LG_MAX_LAYERS + 1];
        full_mask(d, mask);
        mask_of(depth[i][0], depth[i][1], depth[i][2], want);
        CHECK(!strcmp(mask, want), "auto layout for %d layers: %s", depth[i][0], mask);
        free(d);
    }
}

static void test_hf(void) {
    // A Llama-3.1-like source: GQA, no head_dim, eos list, llama3 rope_scaling with "rope_type".
    const char *d = make_hf("llama31",
                            "{\"model_type\": \"llama\", \"vocab_size\": 500, \"hidden_size\": 64, \"num_hidden_layers\": 5,"
                            " \"num_attention_heads\": 8, \"num_key_value_heads\": 2, \"intermediate_size\": 96,"
                            " \"rms_norm_eps\": 1e-05, \"max_position_embeddings\": 1024, \"rope_theta\": 500000.0,"
                            " \"rope_scaling\": {\"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0,"
                            " \"original_max_position_embeddings\": 128, \"rope_type\": \"llama3\"},"
                            " \"tie_word_embeddings\": true, \"bos_token_id\": 7, \"eos_token_id\": [9, 10, 11],"
                            " \"initializer_range\": 0.01}");
    lg_config *c = calloc(1, sizeof *c);
    lg_config_apply_hf(c, d);
    CHECK(c->model.vocab_size == 500 && c->model.dim == 64 && c->model.n_layers == 5 && c->model.n_heads == 8 &&
              c->model.n_kv_heads == 2 && c->model.head_dim == 8 && c->model.ffn_dim == 96 && c->model.norm_eps == 1e-5f &&
              c->model.tie_embeddings == 1 && c->model.bos_id == 7 && c->model.eos_id == 9 && c->model.init_std == 0.01f,
          "apply_hf model");
    CHECK(c->rope.type == LG_ROPE_LLAMA3 && c->rope.theta == 500000 && c->rope.factor == 8 && c->rope.original_max_pos == 128 &&
              c->rope.max_pos == 1024 && c->rope.low_freq_factor == 1 && c->rope.high_freq_factor == 4, "apply_hf rope");
    free(c);

    // through load: [model] keys that agree are accepted; [rope] keys override the source's
    const char *p = tpath("hf.ini");
    char text[2048];
    snprintf(text, sizeof text,
             "[run]\ninit_from = %s\nsteps = 3\n[model]\nn_kv_heads = 2\nnorm_eps = 1e-5\ntie_embeddings = true\n"
             "[rope]\nhigh_freq_factor = 8\n[data]\ntrain = synthetic\nseq_len = 256\n[optim]\nlr = 1\n", d);
    write_text(p, text);
    c = load(p, 0, NULL);
    CHECK(c->rope.type == LG_ROPE_LLAMA3 && c->rope.high_freq_factor == 8 && c->rope.original_max_pos == 128 &&
              c->rope.max_pos == 1024 && !strcmp(c->tokenizer_dir, d),
          "hf load: type %d high %g orig %d max %d", c->rope.type, c->rope.high_freq_factor, c->rope.original_max_pos,
          c->rope.max_pos);
    round_trip(c, "hf");
    free(c);
    // old-style "type" key; a source without rope_scaling gets [rope] scaling from the INI
    d = make_hf("linear", "{\"model_type\": \"llama\", \"vocab_size\": 50, \"hidden_size\": 16, \"num_hidden_layers\": 2,"
                          " \"num_attention_heads\": 2, \"intermediate_size\": 8, \"max_position_embeddings\": 64,"
                          " \"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}}");
    c = calloc(1, sizeof *c);
    lg_config_apply_hf(c, d);
    CHECK(c->rope.type == LG_ROPE_LINEAR && c->rope.factor == 2 && c->rope.original_max_pos == 64 && c->rope.theta == 10000 &&
              c->model.n_kv_heads == 2 && c->model.norm_eps == 1e-6f && c->model.bos_id == 1 && c->model.eos_id == 2,
          "apply_hf linear/defaults");
    free(c);
}

static void test_errors(void) {
    char P[600];
    const char *p;
#define V(name, line, repl, extra) (p = variant(name, line, repl, extra), snprintf(P, sizeof P, "%s", p), p)
    expect_err(V("e1.ini", 0, NULL, "[foo]\nx = 1\n"), 0, NULL,
               "%s:17: [foo]: unknown section, expected one of [run] [model] [rope] [layout] [data] [optim] [memory] [checkpoint] [export]", P);
    expect_err(V("e2.ini", 0, NULL, "lrr = 1\n"), 0, NULL,
               "%s:17: optim.lrr: unknown key, expected one of lr, min_lr, weight_decay, beta1, beta2, eps, grad_clip, warmup_steps, schedule", P);
    expect_err(V("e3.ini", 16, "lr = abc   # oops", NULL), 0, NULL, "%s:16: optim.lr: expected a positive number, got \"abc\"", P);
    expect_err(V("e4.ini", 4, "steps = 1.5", NULL), 0, NULL, "%s:4: run.steps: expected an integer >= 1, got \"1.5\"", P);
    expect_err(V("e5.ini", 0, NULL, "schedule = linear\n"), 0, NULL,
               "%s:17: optim.schedule: expected one of constant|cosine, got \"linear\"", P);
    expect_err(V("e6.ini", 0, NULL, "[memory]\nrecompute = maybe\n"), 0, NULL,
               "%s:18: memory.recompute: expected true or false, got \"maybe\"", P);
    expect_err(V("e7.ini", 0, NULL, "[memory]\nzero_stage = 3\n"), 0, NULL,
               "%s:18: memory.zero_stage: expected an integer in [0, 2], got \"3\"", P);
    expect_err(V("e8.ini", 0, NULL, "beta2 = 1\n"), 0, NULL, "%s:17: optim.beta2: expected a number in [0, 1), got \"1\"", P);
    expect_err(V("e9.ini", 14, NULL, NULL), 0, NULL,
               "%s:12: data.seq_len: expected an integer >= 1 (required, no default), none given", P);
    expect_err(V("e10.ini", 8, NULL, NULL), 0, NULL,
               "%s:6: model.dim: expected an integer >= 1 (required when run.init_from = random), none given", P);
    expect_err(V("e11.ini", 3, "", NULL), 0, NULL,
               "%s:2: run.init_from: expected a non-empty string (required, no default), none given", P);
    expect_err(V("e12.ini", 0, NULL, "lr = 2e-3\n"), 0, NULL,
               "%s:17: optim.lr: expected each key once per file, already set at line 16", P);
    expect_err(V("e13.ini", 1, "lr = 1", NULL), 0, NULL, "%s:1: lr: expected a [section] header before the first key", P);
    expect_err(V("e14.ini", 5, "just words", NULL), 0, NULL,
               "%s:5: expected \"key = value\", a [section] header or a comment, got \"just words\"", P);
    expect_err(V("e15.ini", 0, NULL, "[layout]\nfull_layers = 2-6\n"), 0, NULL,
               "%s:18: layout.full_layers: expected layers in 0..5 (model.n_layers = 6), got 6", P);
    expect_err(V("e16.ini", 0, NULL, "[layout]\nfull_layers = middle\n"), 0, NULL,
               "%s:18: layout.full_layers: expected auto, all, none or layer ranges like 10-21,30, got \"middle\"", P);
    expect_err(V("e17.ini", 0, NULL, "[layout]\nfull_layers = 4-2\n"), 0, NULL,
               "%s:18: layout.full_layers: expected ascending ranges like 10-21, got 4-2", P);
    expect_err(V("e18.ini", 0, NULL, "[layout]\nsparse = block_sparse\nblock = 40\n"), 0, NULL,
               "%s:19: layout.block: expected a multiple of 16 (>= 16), got 40", P);
    expect_err(V("e19.ini", 0, NULL, "[layout]\nblock = 8\n"), 0, NULL, "%s:18: layout.block: expected an integer >= 16, got \"8\"", P);
    expect_err(V("e20.ini", 0, NULL, "[layout]\nsparse = dense\n"), 0, NULL,
               "%s:18: layout.sparse: expected one of sink_window|block_sparse, got \"dense\"", P);
    expect_err(V("e21.ini", 0, NULL, "[data]\ntokens_per_step = 48\n"), 0, NULL,
               "%s:18: data.tokens_per_step: expected a multiple of data.seq_len x data.micro_batch (32), got 48", P);
    expect_err(V("e22.ini", 0, NULL, "[model]\nn_kv_heads = 3\n"), 0, NULL,
               "%s:18: model.n_kv_heads: expected a divisor of model.n_heads (2), got 3", P);
    // a fresh [model] section repeats keys of the first one: duplicates across sections of the same name
    expect_err(V("e23.ini", 0, NULL, "[model]\ndim = 16\n"), 0, NULL,
               "%s:18: model.dim: expected each key once per file, already set at line 8", P);
    expect_err(V("e24.ini", 0, NULL, "[rope]\nmax_position_embeddings = 16\n"), 0, NULL,
               "%s:18: rope.max_position_embeddings: expected an integer >= data.seq_len (32), got 16", P);
    expect_err(V("e25.ini", 0, NULL, "[rope]\nscaling = llama3\nfactor = 8\nhigh_freq_factor = 1\n"), 0, NULL,
               "%s:20: rope.high_freq_factor: expected a number > rope.low_freq_factor (1), got 1", P);
    expect_err(V("e26.ini", 0, NULL, "[run]\ndevice = tpu\n"), 0, NULL, "%s:18: run.device: expected one of cpu|cuda, got \"tpu\"", P);
    expect_err(V("e27.ini", 0, NULL, "[model]\nhead_dim = 7\n"), 0, NULL,
               "%s:18: model.head_dim: expected an even number (RoPE rotates pairs), got 7", P);
    expect_err(V("e28.ini", 0, NULL, "[model]\neos_id = 64\n"), 0, NULL,
               "%s:18: model.eos_id: expected an id < model.vocab_size (64), got 64", P);
    expect_err(V("e29.ini", 0, NULL, "[run]\nname = \"unterminated\n"), 0, NULL,
               "%s:18: run.name: expected a value with matching quotes and nothing after but a comment", P);

    // --set
    p = variant("s.ini", 0, NULL, NULL);
    const char *s1[] = {"optim.lr"};
    expect_err(p, 1, s1, "--set optim.lr: expected section.key=value");
    const char *s2[] = {"lr=1"};
    expect_err(p, 1, s2, "--set lr=1: expected section.key=value");
    const char *s3[] = {"optim.lr=-1"};
    expect_err(p, 1, s3, "--set optim.lr: expected a positive number, got \"-1\"");
    const char *s4[] = {"optim.lrr=1"};
    expect_err(p, 1, s4,
               "--set optim.lrr: unknown key, expected one of lr, min_lr, weight_decay, beta1, beta2, eps, grad_clip, warmup_steps, schedule");
    const char *s5[] = {"optimizer.lr=1"};
    expect_err(p, 1, s5,
               "--set optimizer.lr: unknown section [optimizer], expected one of [run] [model] [rope] [layout] [data] [optim] [memory] [checkpoint] [export]");
    const char *s6[] = {"layout.full_layers=0-9"};
    expect_err(p, 1, s6, "--set layout.full_layers: expected layers in 0..5 (model.n_layers = 6), got 9");
    const char *s7[] = {"run.init_from=random", "data.seq_len=x"};
    expect_err(p, 2, s7, "--set data.seq_len: expected an integer >= 1, got \"x\"");

    // HF dirs
    const char *d = make_hf("hf7b", LLAMA2_7B);
    char text[2048];
    snprintf(text, sizeof text,
             "[run]\ninit_from = %s\nsteps = 3\n[model]\nn_layers = 32\ndim = 2048\n[data]\ntrain = synthetic\nseq_len = 64\n"
             "[optim]\nlr = 1\n", d);
    snprintf(P, sizeof P, "%s", tpath("hf-disagree.ini"));
    write_text(P, text);
    expect_err(P, 0, NULL, "%s:6: model.dim: expected 4096 as in %s/config.json (hidden_size), got \"2048\"", P, d);
    const char *s8[] = {"model.norm_eps=1e-6"};
    expect_err(P, 1, s8, "%s:6: model.dim: expected 4096 as in %s/config.json (hidden_size), got \"2048\"", P, d);
    char set[1024];
    const char *s9[] = {"model.dim=4096", set};
    snprintf(set, sizeof set, "model.norm_eps=1e-6");
    expect_err(P, 2, s9, "--set model.norm_eps: expected 1e-05 as in %s/config.json (rms_norm_eps), got \"1e-6\"", d);
    // the remaining HF cases start from a config without [model]
    snprintf(P, sizeof P, "%s", tpath("hfbase.ini"));
    write_text(P, "[run]\ninit_from = random\nsteps = 3\n[data]\ntrain = synthetic\nseq_len = 64\n[optim]\nlr = 1\n");
    p = P;
    const char *dm = make_hf("mistral", "{\"model_type\": \"mistral\", \"vocab_size\": 50}");
    snprintf(set, sizeof set, "run.init_from=%s", dm);
    const char *s10[] = {set};
    expect_err(p, 1, s10, "%s/config.json: model_type: expected \"llama\", got \"mistral\"", dm);
    const char *dn = make_hf("notype", "{\"vocab_size\": 50}");
    snprintf(set, sizeof set, "run.init_from=%s", dn);
    expect_err(p, 1, s10, "%s/config.json: model_type: expected \"llama\", got nothing", dn);
    const char *dr = make_hf("longrope", "{\"model_type\": \"llama\", \"vocab_size\": 50, \"hidden_size\": 16,"
                                         " \"num_hidden_layers\": 2, \"num_attention_heads\": 2, \"intermediate_size\": 8,"
                                         " \"rope_scaling\": {\"rope_type\": \"longrope\", \"factor\": 2}}");
    snprintf(set, sizeof set, "run.init_from=%s", dr);
    expect_err(p, 1, s10, "%s/config.json: rope_scaling.rope_type: expected one of default|linear|dynamic|yarn|llama3, got \"longrope\"", dr);
    snprintf(set, sizeof set, "run.init_from=%s/nowhere", tmp);
    expect_err(p, 1, s10,
               "--set run.init_from: expected \"random\" or a HF model directory with config.json, got \"%s/nowhere\" (%s/nowhere/config.json not found)",
               tmp, tmp);
    // values that come from config.json are checked there: 32 heads, 5 KV heads
    const char *dg = make_hf("badgqa", "{\"model_type\": \"llama\", \"vocab_size\": 50, \"hidden_size\": 64, \"num_hidden_layers\": 2,"
                                       " \"num_attention_heads\": 8, \"num_key_value_heads\": 3, \"intermediate_size\": 8}");
    snprintf(set, sizeof set, "run.init_from=%s", dg);
    expect_err(p, 1, s10, "%s/config.json: model.n_kv_heads: expected a divisor of model.n_heads (8), got 3", dg);
#undef V
}

// configs/README.md carries the generated key table verbatim.
static void test_readme(const char *src) {
    char path[1024];
    snprintf(path, sizeof path, "%s/configs/README.md", src);
    if (!lg_file_exists(path)) {
        CHECK(0, "%s missing", path);
        return;
    }
    char *readme = lg_read_file(path, NULL);
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    lg_config_print_keys(f);
    fclose(f);
    CHECK(strstr(readme, buf) != NULL, "configs/README.md does not hold the current key table; regenerate it:\n%s", buf);
    free(buf);
    free(readme);
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "--keys")) {
        lg_config_print_keys(stdout);
        return 0;
    }
    if (argc >= 2) {
        lg_config c;
        lg_config_load(&c, argv[1], argc - 2, argv + 2);
        lg_config_print(&c, stdout);
        return 0;
    }
    const char *src = getenv("LG_SRC");
    if (!src) src = "..";
    snprintf(tmp, sizeof tmp, "/tmp/lg_test_config.XXXXXX");
    if (!mkdtemp(tmp)) { perror("mkdtemp"); return 1; }
    test_defaults_and_syntax();
    test_hf();
    test_shipped(src);
    test_errors();
    test_readme(src);
    lg_rmtree(tmp);
    if (fails) { printf("test_config: %d FAILED\n", fails); return 1; }
    printf("test_config: all passed\n");
    return 0;
}
