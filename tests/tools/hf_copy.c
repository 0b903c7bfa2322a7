// hf_copy: import a HF Llama directory and export it again, without the trainer. Used by
// tests/py/test_hf_io.py to check checkpoints/hf_import.c and hf_export.c against transformers.
//   hf_copy <src_hf_dir> <out_dir> [--dtype bf16|f16|f32] [--shard-bytes N] [--random SEED] [--no-src]
//           [--rope none|linear|dynamic|yarn|llama3] [--theta X] [--factor F] [--max-pos N] [--orig-max-pos N]
//           [--beta-fast X] [--beta-slow X] [--attn-factor X] [--low-freq X] [--high-freq X]
//           [--full-layers auto|all|none|RANGES] [--sparse sink_window|block_sparse] [--tokenizer-dir D]
// --random SEED: lg_params_init_random instead of reading the weights (the model shape still comes from
// config.json); --no-src: export without the source config.json and tokenizer files.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoints/hf_export.h"
#include "checkpoints/hf_import.h"
#include "trainer/config.h"
#include "trainer/params.h"
#include "trainer/util.h"

static lg_rope_type rope_type(const char *s) {
    const char *names[] = {"none", "linear", "dynamic", "yarn", "llama3"};
    for (int i = 0; i < 5; i++)
        if (!strcmp(s, names[i])) return (lg_rope_type)i;
    lg_die("--rope: expected none|linear|dynamic|yarn|llama3, got %s", s);
}

int main(int argc, char **argv) {
    lg_set_progname("hf_copy");
    if (argc < 3) {
        fprintf(stderr, "usage: hf_copy <src_hf_dir> <out_dir> [options] (see tests/tools/hf_copy.c)\n");
        return 2;
    }
    const char *src = argv[1], *out = argv[2], *dtype = "bf16";
    unsigned long long shard = 0, seed = 0;
    int random = 0, no_src = 0;
    static lg_config c;
    memset(&c, 0, sizeof c);
    lg_json *j = lg_hf_read_config_json(src);  // a clear message when config.json is missing or invalid
    lg_json_free(j);
    lg_config_apply_hf(&c, src);
    snprintf(c.layout.full_layers, sizeof c.layout.full_layers, "auto");
    c.layout.sparse_kind = LG_ATTN_SINK_WINDOW;
    c.layout.sink = 4;
    c.layout.window = 16;
    c.layout.block = 16;
    c.layout.local_blocks = 2;
    c.layout.vert_stride = 4;
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v && strcmp(a, "--no-src")) lg_die("%s: missing value", a);
        if (!strcmp(a, "--dtype")) dtype = v;
        else if (!strcmp(a, "--shard-bytes")) shard = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--random")) random = 1, seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--no-src")) { no_src = 1; continue; }
        else if (!strcmp(a, "--rope")) c.rope.type = rope_type(v);
        else if (!strcmp(a, "--theta")) c.rope.theta = atof(v);
        else if (!strcmp(a, "--factor")) c.rope.factor = atof(v);
        else if (!strcmp(a, "--max-pos")) c.rope.max_pos = atoi(v);
        else if (!strcmp(a, "--orig-max-pos")) c.rope.original_max_pos = atoi(v);
        else if (!strcmp(a, "--beta-fast")) c.rope.beta_fast = atof(v);
        else if (!strcmp(a, "--beta-slow")) c.rope.beta_slow = atof(v);
        else if (!strcmp(a, "--attn-factor")) c.rope.attention_factor = atof(v);
        else if (!strcmp(a, "--low-freq")) c.rope.low_freq_factor = atof(v);
        else if (!strcmp(a, "--high-freq")) c.rope.high_freq_factor = atof(v);
        else if (!strcmp(a, "--full-layers")) snprintf(c.layout.full_layers, sizeof c.layout.full_layers, "%s", v);
        else if (!strcmp(a, "--sparse")) c.layout.sparse_kind = !strcmp(v, "block_sparse") ? LG_ATTN_BLOCK_SPARSE : LG_ATTN_SINK_WINDOW;
        else if (!strcmp(a, "--tokenizer-dir")) snprintf(c.tokenizer_dir, sizeof c.tokenizer_dir, "%s", v);
        else lg_die("unknown option %s", a);
        i++;
    }
    lg_config_resolve_layout(&c);

    lg_param_table t;
    lg_params_build(&t, &c.model);
    float *master = lg_calloc((size_t)t.total, sizeof(float));
    if (random) lg_params_init_random(&t, master, &c.model, seed);
    else lg_hf_import(src, &t, master);
    lg_hf_export_ex(out, &c, &t, master, no_src ? NULL : src, dtype, shard);
    free(master);
    lg_params_free(&t);
    return 0;
}
