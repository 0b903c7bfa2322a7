// lgexport: turn a training checkpoint into a HuggingFace directory, at any time, without the trainer.
//   lgexport <checkpoint dir | run dir | checkpoints dir> --format hf|gguf [--out PATH] [--dtype bf16|f16|f32]
//            [--tokenizer tokenizer.model]
// A run dir or a checkpoints dir means its newest usable checkpoint. The checkpoint is verified (sizes and
// CRC-32 of every file) before anything is written; the export is written to "<out>.tmp" and renamed.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../trainer/config.h"
#include "../trainer/dist.h"
#include "../trainer/params.h"
#include "../trainer/util.h"
#include "checkpoint.h"
#include "gguf_export.h"
#include "hf_export.h"
#include "safetensors.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: lgexport CHECKPOINT --format hf|gguf [--out PATH] [--dtype bf16|f16|f32] [--tokenizer FILE]\n"
            "  CHECKPOINT       a step-NNNNNN checkpoint directory, or a run directory / checkpoints directory\n"
            "                   (its newest usable checkpoint is used)\n"
            "  --format hf      HuggingFace directory: config.json (RoPE + layout) + model.safetensors\n"
            "  --format gguf    one GGUF file for llama.cpp (needs the source's tokenizer.model)\n"
            "  --out PATH       where to write (default <run dir>/export-step-NNNNNN[.gguf] next to checkpoints/)\n"
            "  --tokenizer F    tokenizer.model for gguf (default: export.tokenizer_dir, else init_from's)\n"
            "  --dtype T        weight dtype (default: the run's export.dtype)\n");
}

// The run's config.ini names init_from; when that HF directory is gone the model keys in config.ini still
// define the model (they are all written out), so the export goes on from "random" without the source's
// extra config.json fields and tokenizer files.
static int source_missing(const char *cfg_path, char *src, size_t n) {
    char *text = lg_read_file(cfg_path, NULL);
    const char *p = strstr(text, "\ninit_from = ");
    int missing = 0;
    src[0] = 0;
    if (p) {
        p += strlen("\ninit_from = ");
        size_t len = strcspn(p, "\n");
        if (len >= n) len = n - 1;
        memcpy(src, p, len);
        src[len] = 0;
        missing = strcmp(src, "random") != 0 && !lg_dir_exists(src);
    }
    free(text);
    return missing;
}

static char *dirname_of(const char *path) {
    char *s = lg_strdup(path);
    size_t n = strlen(s);
    while (n > 1 && s[n - 1] == '/') s[--n] = 0;
    char *slash = strrchr(s, '/');
    if (!slash) { free(s); return lg_strdup("."); }
    if (slash == s) slash[1] = 0;
    else *slash = 0;
    return s;
}

static const char *basename_of(const char *path, char *buf, size_t n) {
    snprintf(buf, n, "%s", path);
    size_t l = strlen(buf);
    while (l > 1 && buf[l - 1] == '/') buf[--l] = 0;
    char *slash = strrchr(buf, '/');
    return slash ? slash + 1 : buf;
}

int main(int argc, char **argv) {
    lg_set_progname("lgexport");
    lg_dist *d = lg_dist_init(&argc, &argv);
    const char *ckpt = NULL, *format = NULL, *out = NULL, *dtype = NULL, *tokenizer = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--format") && i + 1 < argc) format = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc) dtype = argv[++i];
        else if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc) tokenizer = argv[++i];
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { usage(stdout); return 0; }
        else if (argv[i][0] != '-' && !ckpt) ckpt = argv[i];
        else { usage(stderr); lg_die("unknown argument '%s'", argv[i]); }
    }
    if (!ckpt) { usage(stderr); lg_die("a checkpoint directory is required"); }
    if (!format) { usage(stderr); lg_die("--format is required (hf or gguf)"); }
    int gguf = !strcmp(format, "gguf");
    if (!gguf && strcmp(format, "hf")) lg_die("--format %s: expected hf or gguf", format);
    if (d->world > 1) lg_die("lgexport runs as one process; start it without mpirun");
    if (!lg_dir_exists(ckpt)) lg_die("%s: not a directory (expected a step-NNNNNN checkpoint or a run directory)", ckpt);

    // checkpoint dir, or a directory holding checkpoints
    char *dir = NULL, *state = lg_path_join(ckpt, "state.json"), *sub = lg_path_join(ckpt, "checkpoints");
    if (lg_file_exists(state)) {
        char *why;
        if (!lg_ckpt_validate(d, ckpt, &why)) lg_die("%s: this checkpoint is unusable: %s", ckpt, why);
        dir = lg_strdup(ckpt);
    } else {
        dir = lg_ckpt_find_latest(d, lg_dir_exists(sub) ? sub : ckpt);
        if (!dir) lg_die("%s: no checkpoint here (no state.json, no step-NNNNNN directories)", ckpt);
    }
    free(state);
    free(sub);

    char *cfg_path = lg_path_join(dir, "config.ini");
    char src[LG_PATH_MAX];
    char *sets[1];
    int nset = 0;
    if (source_missing(cfg_path, src, sizeof src)) {
        lg_warn("the run started from %s, which is gone: config.json is built from the checkpoint's config.ini alone "
                "(no extra fields of the source) and no tokenizer files are copied", src);
        sets[nset++] = "run.init_from=random";
    }
    lg_config c;
    lg_config_load(&c, cfg_path, nset, sets);
    lg_ckpt_state st;
    lg_ckpt_read_state(dir, &st);
    lg_param_table pt;
    lg_params_build(&pt, &c.model);
    if (pt.total != st.param_total)
        lg_die("%s: config.ini describes %lld parameters, state.json %lld", dir, (long long)pt.total, (long long)st.param_total);
    float *master = lg_malloc(sizeof(float) * (size_t)pt.total);
    lg_ckpt_load_master(dir, &pt, master, 0, pt.total);

    char *def_out = NULL;
    if (!out) {
        char b[LG_PATH_MAX], name[64];
        char *parent = dirname_of(dir);
        snprintf(name, sizeof name, "export-step-%06lld%s", (long long)st.step, gguf ? ".gguf" : "");
        if (!strcmp(basename_of(parent, b, sizeof b), "checkpoints")) {
            char *run = dirname_of(parent);
            def_out = lg_path_join(run, name);
            free(run);
        } else {
            def_out = lg_malloc(strlen(dir) + 8);
            sprintf(def_out, "%s-%s", dir, gguf ? "gguf" : "hf");
        }
        free(parent);
        out = def_out;
    }
    const char *dt = dtype ? dtype : c.export_dtype;
    lg_st_dtype parsed;
    if (!lg_st_dtype_parse(dt, &parsed)) lg_die("--dtype %s: expected bf16, f16 or f32", dt);
    lg_info("exporting %s (step %lld, %.2fM parameters) to %s as %s", dir, (long long)st.step, pt.total / 1e6, out, dt);
    if (gguf) {
        char *tok = tokenizer ? lg_strdup(tokenizer) : lg_gguf_find_tokenizer(&c);
        lg_gguf_export(out, &c, &pt, master, tok, dt);
        free(tok);
    } else {
        lg_hf_export(out, &c, &pt, master, strcmp(c.init_from, "random") ? c.init_from : NULL, dt);
    }
    lg_info("done: %s", out);
    free(def_out);
    free(master);
    lg_params_free(&pt);
    free(cfg_path);
    free(dir);
    lg_dist_finalize(d);
    return 0;
}
