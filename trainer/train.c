// train.c: see train.h. One optimizer step = grad_accum micro-batches of micro_batch x seq_len tokens.
#include "train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../checkpoints/hf_export.h"
#include "../checkpoints/hf_import.h"
#include "batch.h"
#include "model.h"
#include "optim.h"
#include "util.h"

static const lg_ops *pick_backend(const lg_config *c) {
    if (!strcmp(c->device, "cpu")) return lg_ops_cpu();
    const char *why = NULL;
    const lg_ops *o = lg_ops_cuda(&why);
    if (!o) lg_die("%s: run.device = cuda, but %s. Use --set run.device=cpu to train on the CPU.", c->config_path, why);
    return o;
}

static int64_t grad_accum_steps(const lg_config *c, int world) {
    int64_t per = (int64_t)c->seq_len * c->micro_batch * world;
    if (c->tokens_per_step % per != 0)
        lg_die("%s: data.tokens_per_step = %lld is not a multiple of seq_len x micro_batch x ranks = %d x %d x %d = %lld",
               c->config_path, (long long)c->tokens_per_step, c->seq_len, c->micro_batch, world, (long long)per);
    return c->tokens_per_step / per;
}

int lg_train(const lg_config *c) {
    const int rank = 0, world = 1;
    const lg_ops *ops = pick_backend(c);
    int64_t accum = grad_accum_steps(c, world);
    int B = c->micro_batch, S = c->seq_len;
    int64_t T = (int64_t)B * S;

    lg_mkdirs(c->out_dir);
    char *cfg_path = lg_path_join(c->out_dir, "config.ini");
    {
        char *tmp = lg_path_join(c->out_dir, "config.ini.tmp");
        FILE *f = lg_fopen(tmp, "w");
        lg_config_print(c, f);
        lg_fclose(f, tmp);
        if (rename(tmp, cfg_path) != 0) lg_die("cannot rename %s -> %s", tmp, cfg_path);
        free(tmp);
    }

    lg_model M;
    lg_model_init(&M, c, ops, B, S);
    if (!strcmp(c->init_from, "random")) {
        lg_params_init_random(&M.pt, M.master, &c->model, c->seed);
    } else {
        lg_info("importing %s", c->init_from);
        lg_hf_import(c->init_from, &M.pt, M.master);
    }
    lg_model_master_from_host(&M);
    lg_model_sync_weights(&M);
    lg_adamw opt;
    lg_adamw_init(&opt, ops, M.pt.total);
    lg_batch_source *data = lg_batch_open(c, c->data_train, rank, world);

    char buf[64];
    lg_format_bytes((double)M.pt.total * 4 * 4 + (double)M.act_bytes, buf, sizeof buf);
    lg_info("model: %d layers, dim %d, %d heads (%d kv), ffn %d, vocab %d: %.2fM parameters; backend %s", c->model.n_layers,
            c->model.dim, c->model.n_heads, c->model.n_kv_heads, c->model.ffn_dim, c->model.vocab_size,
            M.pt.total / 1e6, ops->name);
    for (int l = 0; l < c->model.n_layers; l++) {
        char d[96];
        lg_attn_describe(&c->layout.layer[l], d, sizeof d);
        if (l == 0 || memcmp(&c->layout.layer[l], &c->layout.layer[l - 1], sizeof(lg_attn)) != 0) {
            int e = l;
            while (e + 1 < c->model.n_layers && !memcmp(&c->layout.layer[e + 1], &c->layout.layer[l], sizeof(lg_attn))) e++;
            lg_info("  layers %d-%d: %s", l, e, d);
        }
    }
    lg_info("step: %lld tokens = %lld micro-batches of %d x %d on %d rank(s); memory ~%s; run dir %s",
            (long long)c->tokens_per_step, (long long)accum, B, S, world, buf, c->out_dir);
    lg_info("activations allocated: %lld bytes (lgtrain --plan predicts the same)", (long long)M.act_bytes);

    char *log_path = lg_path_join(c->out_dir, "train_log.jsonl");
    FILE *logf = lg_fopen(log_path, "w");
    int32_t *seq = lg_malloc(sizeof(int32_t) * (size_t)S);
    int32_t *tok = lg_malloc(sizeof(int32_t) * (size_t)T), *tgt = lg_malloc(sizeof(int32_t) * (size_t)T);
    double t_start = lg_now_seconds();
    int64_t targets_per_step = (int64_t)B * (S - 1) * accum * world;
    float dscale = (float)(1.0 / (double)targets_per_step);
    int rc = 0;
    for (int step = 1; step <= c->steps; step++) {
        double t0 = lg_now_seconds();
        lg_model_zero_grad(&M);
        double loss_sum = 0;
        for (int64_t a = 0; a < accum; a++) {
            for (int b = 0; b < B; b++) {
                lg_batch_next(data, seq);
                for (int s = 0; s < S; s++) {
                    tok[(int64_t)b * S + s] = seq[s];
                    tgt[(int64_t)b * S + s] = s + 1 < S ? seq[s + 1] : -1;  // last position has no next token
                }
            }
            loss_sum += lg_model_fwd_bwd(&M, tok, tgt, dscale);
        }
        double loss = loss_sum / (double)targets_per_step;
        double gnorm = sqrt(ops->sumsq(M.grad, M.pt.total));
        if (!isfinite(loss) || !isfinite(gnorm)) {
            if (!strcmp(c->nan_policy, "stop")) {
                lg_warn("step %d: loss %g, grad norm %g is not finite; stopping (memory.nan_policy = stop). "
                        "Try a lower optim.lr or more warmup.", step, loss, gnorm);
                rc = 2;
                break;
            }
            lg_warn("step %d: loss %g, grad norm %g is not finite; step skipped (memory.nan_policy = skip)", step, loss,
                    gnorm);
            continue;
        }
        if (c->grad_clip > 0 && gnorm > c->grad_clip) ops->scale(M.grad, M.pt.total, (float)(c->grad_clip / gnorm));
        double lr = lg_lr_at(c, step);
        lg_adamw_step(&opt, c, &M.pt, M.dmaster, M.grad, (float)lr, step);
        lg_model_sync_weights(&M);

        double now = lg_now_seconds(), dt = now - t0, el = now - t_start;
        double tps = (double)c->tokens_per_step / dt;
        char els[32], eta[32];
        lg_format_duration(el, els, sizeof els);
        lg_format_duration(el / step * (c->steps - step), eta, sizeof eta);
        if (step == 1 || step == c->steps || step % c->log_every == 0)
            lg_info("step %5d/%d | loss %.4f | lr %.3e | grad norm %.3f | %.0f tok/s | elapsed %s | ETA %s", step,
                    c->steps, loss, lr, gnorm, tps, els, eta);
        fprintf(logf,
                "{\"step\": %d, \"loss\": %.6f, \"lr\": %.6e, \"grad_norm\": %.6f, \"tokens\": %lld, \"tok_per_s\": %.1f, "
                "\"step_s\": %.4f, \"elapsed_s\": %.3f}\n",
                step, loss, lr, gnorm, (long long)c->tokens_per_step * step, tps, dt, el);
        fflush(logf);
    }
    lg_fclose(logf, log_path);

    if (rc == 0 && c->export_hf) {
        const char *src = strcmp(c->init_from, "random") ? c->init_from : NULL;
        lg_info("exporting HF model to %s (%s)", c->export_dir, c->export_dtype);
        lg_model_master_to_host(&M);
        lg_hf_export(c->export_dir, c, &M.pt, M.master, src, c->export_dtype);
    }
    lg_info("done: log %s", log_path);
    free(seq); free(tok); free(tgt); free(log_path); free(cfg_path);
    lg_batch_close(data);
    lg_adamw_free(&opt);
    lg_model_free(&M);
    return rc;
}
