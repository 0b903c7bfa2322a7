// model_check: run the CPU model once on given tokens and dump logits, loss and every parameter gradient,
// so tests/py/test_model_hf.py can compare them with HF transformers.
//   model_check <config.ini> <tokens.i32> <B> <S> <outdir> [--set section.key=value ...]
// Writes outdir/logits.f32 (B*S, V), outdir/loss.txt (mean over targets), outdir/grad/<hf name>.f32.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoints/hf_import.h"
#include "trainer/config.h"
#include "trainer/model.h"
#include "trainer/params.h"
#include "trainer/util.h"

static void write_f32(const char *dir, const char *name, const float *x, size_t n) {
    char *p = lg_path_join(dir, name);
    FILE *f = lg_fopen(p, "wb");
    lg_fwrite(x, sizeof(float), n, f, p);
    lg_fclose(f, p);
    free(p);
}

int main(int argc, char **argv) {
    lg_set_progname("model_check");
    if (argc < 6) lg_die("usage: model_check <config.ini> <tokens.i32> <B> <S> <outdir> [--set s.k=v ...]");
    int B = atoi(argv[3]), S = atoi(argv[4]);
    const char *out = argv[5];
    char **sets = lg_calloc((size_t)argc, sizeof(char *));
    int n_set = 0;
    for (int i = 6; i < argc; i++)
        if (!strcmp(argv[i], "--set") && i + 1 < argc) sets[n_set++] = argv[++i];
    lg_config c;
    lg_config_load(&c, argv[1], n_set, sets);
    lg_model M;
    lg_model_init(&M, &c, lg_ops_cpu(), B, S);
    if (!strcmp(c.init_from, "random")) lg_params_init_random(&M.pt, M.master, &c.model, c.seed);
    else lg_hf_import(c.init_from, &M.pt, M.master);
    lg_model_master_from_host(&M);
    lg_model_sync_weights(&M);

    int64_t T = (int64_t)B * S, V = c.model.vocab_size;
    size_t len;
    char *raw = lg_read_file(argv[2], &len);
    if (len != (size_t)T * 4) lg_die("%s: %zu bytes, expected B*S*4 = %lld", argv[2], len, (long long)(T * 4));
    int32_t *tok = (int32_t *)raw, *tgt = lg_malloc(sizeof(int32_t) * (size_t)T);
    int64_t ntgt = 0;
    for (int64_t i = 0; i < T; i++) {
        int s = (int)(i % S);
        tgt[i] = s + 1 < S ? tok[i + 1] : -1;
        ntgt += tgt[i] >= 0;
    }
    lg_mkdirs(out);
    float *logits = lg_malloc(sizeof(float) * (size_t)(T * V));
    double loss = lg_model_forward(&M, tok, tgt, logits);
    write_f32(out, "logits.f32", logits, (size_t)(T * V));
    lg_model_zero_grad(&M);
    double loss2 = lg_model_fwd_bwd(&M, tok, tgt, (float)(1.0 / ntgt));
    char *lp = lg_path_join(out, "loss.txt");
    FILE *f = lg_fopen(lp, "w");
    fprintf(f, "%.9g %.9g\n", loss / ntgt, loss2 / ntgt);
    lg_fclose(f, lp);
    char *gdir = lg_path_join(out, "grad");
    lg_mkdirs(gdir);
    float *g = lg_malloc(sizeof(float) * (size_t)M.pt.total);
    M.ops->download(g, M.grad, (size_t)M.pt.total, 4);
    for (int i = 0; i < M.pt.n; i++) {
        char name[128];
        snprintf(name, sizeof name, "%s.f32", M.pt.p[i].name);
        write_f32(gdir, name, g + M.pt.p[i].offset, (size_t)M.pt.p[i].numel);
    }
    printf("model_check: loss %.6f, %d gradients written to %s\n", loss / ntgt, M.pt.n, gdir);
    free(g); free(gdir); free(lp); free(logits); free(tgt); free(raw); free(sets);
    lg_model_free(&M);
    return 0;
}
