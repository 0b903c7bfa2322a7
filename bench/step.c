// bench/step.c: time forward+backward of one training step (no optimizer, as the PyTorch peer) on the
// configured backend: step time, tokens/s, MFU (model FLOPs without recompute / 775 TFLOP/s), memory.
//   bench_step <config.ini> [--reps N] [--set s.k=v ...]      (configs/bench-7b-8layer.ini for issue 5)
// Prints one JSON line per run (to stdout) so bench/run_step.sh can tabulate it beside the peer.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/batch.h"
#include "trainer/config.h"
#include "trainer/model.h"
#include "trainer/plan.h"
#include "trainer/util.h"
#ifdef LG_HAVE_CUDA
#include <cuda_runtime.h>
#endif

static double device_used_gib(void) {
#ifdef LG_HAVE_CUDA
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) return -1;
    return (double)(total_b - free_b) / (1 << 30);
#else
    return -1;
#endif
}

int main(int argc, char **argv) {
    lg_set_progname("bench_step");
    if (argc < 2) lg_die("usage: bench_step <config.ini> [--reps N] [--set s.k=v ...]");
    int reps = 3, n_set = 0;
    char **sets = lg_calloc((size_t)argc, sizeof(char *));
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--set") && i + 1 < argc) sets[n_set++] = argv[++i];
        else lg_die("unknown argument %s", argv[i]);
    }
    lg_config c;
    lg_config_load(&c, argv[1], n_set, sets);
    const lg_ops *ops = lg_ops_cpu();
    if (!strcmp(c.device, "cuda")) {
        const char *why = NULL;
        ops = lg_ops_cuda(&why);
        if (!ops) lg_die("run.device = cuda: %s", why);
    }
    int B = c.micro_batch, S = c.seq_len;
    double t0 = lg_now_seconds();
    lg_plan_resolve(&c, 1, ops->name);  // memory.keep_full_attention = auto, as lgtrain decides it
    lg_model M;
    lg_model_init(&M, &c, ops, B, S);
    lg_params_init_random(&M.pt, M.master, &c.model, c.seed);
    lg_model_master_from_host(&M);
    lg_model_sync_weights(&M);
    double base_gib = device_used_gib();
    fprintf(stderr, "bench_step: %.2fB params, init %.1f s, device memory in use %.1f GiB\n", M.pt.total / 1e9,
            lg_now_seconds() - t0, base_gib);

    int64_t T = (int64_t)B * S;
    int32_t *seq = lg_malloc(sizeof(int32_t) * (size_t)S), *tok = lg_malloc(sizeof(int32_t) * (size_t)T),
            *tgt = lg_malloc(sizeof(int32_t) * (size_t)T);
    for (int b = 0; b < B; b++) {
        lg_synthetic_sequence(c.seed, (uint64_t)b, S, c.model.vocab_size, c.model.bos_id, seq);
        for (int s = 0; s < S; s++) {
            tok[(int64_t)b * S + s] = seq[s];
            tgt[(int64_t)b * S + s] = s + 1 < S ? seq[s + 1] : -1;
        }
    }
    float dscale = (float)(1.0 / ((double)B * (S - 1)));
    double loss = lg_model_fwd_bwd(&M, tok, tgt, dscale) / ((double)B * (S - 1));  // warm-up (plans, caches)
    double peak_gib = device_used_gib();
    double best = 1e30, sum = 0;
    for (int r = 0; r < reps; r++) {
        double a = lg_now_seconds();
        lg_model_fwd_bwd(&M, tok, tgt, dscale);  // ends with ops->sync
        double dt = lg_now_seconds() - a;
        sum += dt;
        if (dt < best) best = dt;
        fprintf(stderr, "  rep %d: %.3f s\n", r, dt);
    }
    lg_plan p;
    c.tokens_per_step = T;
    lg_plan_compute(&c, 1, ops->name, &p);
    double med = sum / reps;
    int n_full = 0;
    for (int l = 0; l < c.model.n_layers; l++) n_full += c.layout.layer[l].kind == LG_ATTN_FULL;
    printf("{\"what\": \"lgtrain fwd+bwd step\", \"backend\": \"%s\", \"layers\": %d, \"full_layers\": %d, \"S\": %d, "
           "\"B\": %d, \"step_s_mean\": %.4f, \"step_s_best\": %.4f, \"tok_s\": %.0f, \"mfu\": %.4f, "
           "\"tflops_model\": %.1f, \"loss\": %.4f, \"device_gib_after_warmup\": %.2f, \"act_gib_planned\": %.2f}\n",
           ops->name, c.model.n_layers, n_full, S, B, med, best, T / med, p.flops_model / med / 775e12,
           p.flops_model / med / 1e12, loss, peak_gib, (p.kept_acts + p.kept_att + p.working) / (1 << 30));
    free(seq); free(tok); free(tgt); free(sets);
    lg_model_free(&M);
    return 0;
}
