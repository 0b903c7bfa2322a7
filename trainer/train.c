// train.c: see train.h. One optimizer step = grad_accum micro-batches of micro_batch x seq_len tokens on each
// of `world` ranks, then:
//   loss        summed over ranks in rank order (the logged loss is the global mean)
//   gradients   ZeRO-0/1: all-reduce; ZeRO-2: reduce-scatter (each rank keeps its shard's sums)
//   clip        global norm = sqrt(sum over ranks of the sum of squares of each rank's shard)
//   AdamW       ZeRO-0: every rank updates everything; ZeRO-1/2: each rank its shard [lo, hi), then the
//               master weights are all-gathered
//   checkpoint  every checkpoint.every steps, at the end, and when a stop signal arrives
// The model scales each micro-batch's gradient by 1 / (targets in the whole global step), so the sum over
// ranks is already the average.
#include "train.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef LG_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

#include "../checkpoints/checkpoint.h"
#include "../checkpoints/gguf_export.h"
#include "../checkpoints/hf_export.h"
#include "eval.h"
#include "plan.h"
#include "rope.h"
#include "../checkpoints/hf_import.h"
#include "batch.h"
#include "model.h"
#include "optim.h"
#include "util.h"

static volatile sig_atomic_t g_stop_signal = 0;
static void on_stop_signal(int sig) { g_stop_signal = sig; }

// SIGTERM (Slurm, kill), SIGINT (Ctrl-C) and SIGUSR1 (mpirun forwards it to every rank; it turns SIGTERM into
// SIGKILL after one second) all mean: finish this step, save a checkpoint, exit 0.
static void install_stop_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    int sigs[] = {SIGTERM, SIGINT, SIGUSR1};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        if (sigaction(sigs[i], &sa, NULL) != 0) lg_die("sigaction(%d) failed: %s", sigs[i], strerror(errno));
}

static const char *signal_name(int sig) {
    switch (sig) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGUSR1: return "SIGUSR1";
    default: return "a stop signal";
    }
}

// Test hooks: LG_TEST_SIGNAL_AT=<step>[:<rank>] raises SIGTERM on that rank after that step's backward;
// LG_TEST_DIE_AT=<step>[:<rank>] makes that rank fail there (one failing rank must end the whole job).
static int hook_at(const char *var, int64_t step, int rank) {
    const char *e = getenv(var);
    if (!e || !*e) return 0;
    const char *colon = strchr(e, ':');
    return atoll(e) == step && (colon ? atoi(colon + 1) : 0) == rank;
}

static const lg_ops *pick_backend(const lg_config *c) {
    if (!c->recompute)
        lg_die("%s: memory.recompute = false: keeping every layer's activations is not implemented; lgtrain always "
               "keeps only each layer's input and recomputes the rest (remove the key or set it to true)",
               c->config_path);
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

// The log of a resumed run keeps the lines of the steps up to the checkpoint: steps logged after it by the
// run that died are trained again and logged again.
static FILE *open_log(const char *path, int64_t resumed_step) {
    if (resumed_step <= 0 || !lg_file_exists(path)) return lg_fopen(path, "w");
    char *text = lg_read_file(path, NULL);
    char *tmp = lg_malloc(strlen(path) + 8);
    sprintf(tmp, "%s.tmp", path);
    FILE *o = lg_fopen(tmp, "w");
    for (char *line = text, *next; line && *line; line = next) {
        char *nl = strchr(line, '\n');
        next = nl ? nl + 1 : NULL;
        if (nl) *nl = 0;
        long long s;
        if (sscanf(line, "{\"step\": %lld", &s) == 1 && s <= resumed_step) fprintf(o, "%s\n", line);
    }
    lg_fclose(o, tmp);
    if (rename(tmp, path) != 0) lg_die("rename %s -> %s failed: %s", tmp, path, strerror(errno));
    free(tmp);
    free(text);
    return lg_fopen(path, "a");
}

typedef struct {
    lg_dist *d;
    const lg_config *c;
    lg_model *M;
    lg_adamw *opt;
    lg_batch_source *data;
    int64_t slo, shi;  // this rank's shard (what its optimizer file holds)
} run_ctx;

static char *save_checkpoint(run_ctx *r, int64_t step, int64_t tokens, double lr) {
    lg_model_master_to_host(r->M);  // rank 0 writes the model file (collective: gathers a sharded master)
    int64_t n = r->shi - r->slo;
    float *m = lg_malloc(sizeof(float) * (size_t)(n > 0 ? n : 1)), *v = lg_malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    lg_adamw_download(r->opt, r->slo, r->shi, m, v);
    lg_ckpt_state st = {0};
    st.step = step;
    st.tokens_seen = tokens;
    st.lr = lr;
    lg_batch_get_cursor(r->data, &st.data_epoch, &st.data_pos);
    st.world = r->d->world;
    st.zero_stage = r->c->zero_stage;
    st.param_total = r->M->pt.total;
    char *dir = lg_ckpt_save(r->d, r->c, &r->M->pt, r->M->master, m, v, r->slo, r->shi, &st);
    free(m);
    free(v);
    return dir;
}

// Which checkpoint to start from: checkpoint.resume = auto (newest usable one, if any), none, or a directory.
static char *pick_resume(lg_dist *d, const lg_config *c) {
    if (!strcmp(c->resume, "auto")) return lg_ckpt_find_latest(d, c->ckpt_dir);
    if (!strcmp(c->resume, "none")) {
        if (d->rank == 0 && lg_dir_exists(c->ckpt_dir))
            lg_warn("checkpoint.resume = none: starting over; checkpoints already in %s are replaced as this run saves",
                    c->ckpt_dir);
        return NULL;
    }
    char *why = NULL;
    if (!lg_dir_exists(c->resume)) lg_die("--resume %s: not a directory (expected a step-NNNNNN checkpoint)", c->resume);
    if (!lg_ckpt_validate(d, c->resume, &why)) lg_die("--resume %s: this checkpoint is unusable: %s", c->resume, why);
    return lg_strdup(c->resume);
}

// Validation loss over the first run.eval_seqs sequences of spec, summed over ranks; logged to stdout and
// (rank 0) to the JSONL log. Returns the mean loss.
static double validate(lg_dist *d, const lg_config *c, lg_model *M, const char *spec, int64_t step, FILE *logf) {
    double t0 = lg_now_seconds(), sum = 0;
    int64_t n = 0;
    lg_eval(M, c, spec, c->eval_seqs, d->rank, d->world, &sum, &n);
    // Collectives first, on every rank in the same order; only then the rank-0-only output.
    double total_sum = lg_dist_sum_f64(d, sum), total_n = lg_dist_sum_f64(d, (double)n);
    double loss = total_sum / total_n;
    lg_info("val   %5lld/%d | loss %.4f | ppl %.2f | %.0f tokens of %s | %.1fs", (long long)step, c->steps, loss,
            exp(loss), total_n, spec, lg_now_seconds() - t0);
    if (logf) {
        fprintf(logf, "{\"step\": %lld, \"val_loss\": %.17g, \"val_tokens\": %.0f}\n", (long long)step, loss, total_n);
        fflush(logf);
    }
    return loss;
}

// GGUF next to the HF export (<export dir>.gguf), with the tokenizer.model of export.tokenizer_dir or init_from.
static void export_gguf(const lg_config *c, lg_model *M) {
    char *tok = lg_gguf_find_tokenizer(c);
    char path[LG_PATH_MAX + 8];
    snprintf(path, sizeof path, "%s.gguf", c->export_dir);
    lg_info("exporting GGUF to %s (%s)", path, c->export_dtype);
    lg_gguf_export(path, c, &M->pt, M->master, tok, c->export_dtype);
    free(tok);
}

// After the first step every buffer, library workspace and cache exists: what the GPUs hold then is the run's
// footprint. Rank 0 prints the range over ranks next to the plan (cudaMemGetInfo: the whole device, so it
// includes the CUDA context and anything else running on the GPU).
static void report_device_memory(lg_dist *d, double plan_bytes) {
    double used = -1;
#ifdef LG_HAVE_CUDA
    size_t fr = 0, tot = 0;
    if (cudaMemGetInfo(&fr, &tot) == cudaSuccess) used = (double)(tot - fr);
    else (void)cudaGetLastError();
#endif
    double *all = lg_malloc(sizeof(double) * (size_t)d->world);
    lg_dist_allgather_f64(d, used, all);
    double lo = all[0], hi = all[0];
    for (int r = 1; r < d->world; r++) lo = all[r] < lo ? all[r] : lo, hi = all[r] > hi ? all[r] : hi;
    free(all);
    if (d->rank == 0 && lo >= 0) {
        char range[64];
        if (hi > lo) snprintf(range, sizeof range, "%.1f - %.1f GiB", lo / (1 << 30), hi / (1 << 30));
        else snprintf(range, sizeof range, "%.1f GiB", lo / (1 << 30));
        lg_info("GPU memory in use after the first step: %s per GPU over %d rank(s) (lgtrain --plan: %.1f GiB)", range,
                d->world, plan_bytes / (1 << 30));
    }
}

typedef struct {
    lg_dist *d;
    float *grad;
} overlap_ctx;

// Whole gradient buffer (ZeRO-0/1): a unit's gradients are final in the last micro-batch; all-reduce them
// while the units below run their backward.
static void grads_ready(void *ctx, int64_t lo, int64_t hi) {
    overlap_ctx *o = ctx;
    lg_dist_allreduce_sum_start(o->d, o->grad + lo, hi - lo);
}

int lg_train(const lg_config *cfg, lg_dist *d) {
    const int rank = d->rank, world = d->world;
    // the run's own copy, with what the planner decides (memory.keep_full_attention = auto) filled in
    lg_config *resolved = lg_malloc(sizeof *resolved);
    *resolved = *cfg;
    lg_plan_resolve(resolved, world, resolved->device);
    const lg_config *c = resolved;
    lg_plan p;
    memset(&p, 0, sizeof p);
    if (!strcmp(c->device, "cuda")) {
        // Refuse what cannot fit before allocating anything (lgtrain --plan shows the same figures).
        lg_plan_compute(c, world, "cuda", &p);
        if (p.total > c->device_gib * 1024.0 * 1024.0 * 1024.0) {
            if (rank == 0) lg_plan_print(c, &p, "cuda", stderr);
            lg_die("%s: the plan above needs %.1f GiB per GPU, more than memory.device_gib = %.0f", c->config_path,
                   p.total / (1024.0 * 1024.0 * 1024.0), c->device_gib);
        }
    }
    if (!strcmp(c->device, "cuda")) lg_dist_select_device(d);
    const lg_ops *ops = pick_backend(c);
    lg_dist_attach_backend(d, ops);
    int64_t accum = grad_accum_steps(c, world);
    int B = c->micro_batch, S = c->seq_len;
    int64_t T = (int64_t)B * S;

    char *cfg_path = lg_path_join(c->out_dir, "config.ini");
    if (rank == 0) {
        lg_mkdirs(c->out_dir);
        char *tmp = lg_path_join(c->out_dir, "config.ini.tmp");
        FILE *f = lg_fopen(tmp, "w");
        lg_config_print(c, f);
        lg_fclose(f, tmp);
        if (rename(tmp, cfg_path) != 0) lg_die("cannot rename %s -> %s", tmp, cfg_path);
        free(tmp);
    }

    lg_model M;
    lg_model_init_dist(&M, c, ops, B, S, d);
    const int64_t total = M.pt.total;
    // ZeRO: this rank's shard; the optimizer's range is the shard (1, 2) or everything (0)
    int64_t slo, shi;
    lg_dist_shard(total, world, rank, &slo, &shi);
    const int zero = c->zero_stage;
    int64_t olo = zero == 0 ? 0 : slo, ohi = zero == 0 ? total : shi;
    lg_adamw opt;
    lg_adamw_init(&opt, ops, olo, ohi);

    char *resume = pick_resume(d, c);
    lg_ckpt_state st;
    memset(&st, 0, sizeof st);
    if (resume) {
        lg_ckpt_read_state(resume, &st);
        if (rank == 0) lg_ckpt_check_config(resume, c);  // dies (taking the job down) when the model differs
        lg_dist_barrier(d);
        if (st.param_total != total)
            lg_die("%s/state.json: param_total %lld, this model has %lld parameters", resume, (long long)st.param_total,
                   (long long)total);
        // each rank reads its shard of the weights, then one all-gather gives everyone all of them
        lg_ckpt_load_master(resume, &M.pt, M.master, slo, shi);
        lg_model_master_from_host(&M);
        if (!M.master_sharded) {  // a whole master: every rank needs every shard
            lg_dist_allgather(d, M.dmaster, total);
            lg_model_master_to_host(&M);
        }
        float *hm = lg_malloc(sizeof(float) * (size_t)(ohi - olo + 1)), *hv = lg_malloc(sizeof(float) * (size_t)(ohi - olo + 1));
        lg_ckpt_load_optim(resume, hm, hv, olo, ohi);
        lg_adamw_upload(&opt, hm, hv);
        free(hm);
        free(hv);
        lg_info("resuming from %s: step %lld, %lld tokens seen, data position %llu (epoch %llu); saved by %d rank(s) "
                "with ZeRO-%d, now %d rank(s) with ZeRO-%d%s", resume, (long long)st.step, (long long)st.tokens_seen,
                (unsigned long long)st.data_pos, (unsigned long long)st.data_epoch, st.world, st.zero_stage, world, zero,
                st.world != world ? " (optimizer state re-split)" : "");
    } else if (!strcmp(c->init_from, "random")) {
        lg_params_init_random(&M.pt, M.master, &c->model, c->seed);
        lg_model_master_from_host(&M);
    } else {
        lg_info("importing %s", c->init_from);
        lg_hf_import(c->init_from, &M.pt, M.master);
        lg_model_master_from_host(&M);
    }
    lg_model_sync_weights(&M);
    lg_model_trim_host_master(&M, rank == 0);  // sharded master: other ranks keep only their shard on the host
    lg_batch_source *data = lg_batch_open(c, c->data_train, rank, world);
    if (resume) lg_batch_set_cursor(data, st.data_epoch, st.data_pos);

    char buf[64];
    lg_format_bytes((double)(M.mhi - M.mlo) * 4 * (M.dmaster != M.master) + (double)total * ops->param_size +
                        (double)(M.ghi - M.glo) * 4 + (double)(ohi - olo) * 4 * 2 + (double)M.act_bytes, buf, sizeof buf);
    lg_info("model: %d layers, dim %d, %d heads (%d kv), ffn %d, vocab %d: %.2fM parameters; backend %s", c->model.n_layers,
            c->model.dim, c->model.n_heads, c->model.n_kv_heads, c->model.ffn_dim, c->model.vocab_size,
            total / 1e6, ops->name);
    for (int l = 0; l < c->model.n_layers; l++) {
        char dsc[96];
        lg_attn_describe(&c->layout.layer[l], dsc, sizeof dsc);
        if (l == 0 || memcmp(&c->layout.layer[l], &c->layout.layer[l - 1], sizeof(lg_attn)) != 0) {
            int e = l;
            while (e + 1 < c->model.n_layers && !memcmp(&c->layout.layer[e + 1], &c->layout.layer[l], sizeof(lg_attn))) e++;
            lg_info("  layers %d-%d: %s", l, e, dsc);
        }
    }
    lg_info("step: %lld tokens = %lld micro-batches of %d x %d on %d rank(s); memory ~%s per rank; run dir %s",
            (long long)c->tokens_per_step, (long long)accum, B, S, world, buf, c->out_dir);
    lg_info("activations allocated: %lld bytes (lgtrain --plan predicts the same)", (long long)M.act_bytes);
    if (world > 1)
        lg_info("data parallel: %d ranks over %s, ZeRO-%d (%s); rank 0 owns parameters [%lld, %lld) of %lld", world,
                d->backend, zero, zero == 0 ? "replicated optimizer" : zero == 1 ? "optimizer state and master weights sharded"
                                                                                : "optimizer state, master weights and gradients sharded",
                (long long)slo, (long long)shi, (long long)total);

    char *log_path = lg_path_join(c->out_dir, "train_log.jsonl");
    FILE *logf = rank == 0 ? open_log(log_path, resume ? st.step : 0) : NULL;
    int32_t *seq = lg_malloc(sizeof(int32_t) * (size_t)S);
    int32_t *tok = lg_malloc(sizeof(int32_t) * (size_t)T), *tgt = lg_malloc(sizeof(int32_t) * (size_t)T);
    int64_t targets_per_step = (int64_t)B * (S - 1) * accum * world;
    float dscale = (float)(1.0 / (double)targets_per_step);
    run_ctx rc_ctx = {d, c, &M, &opt, data, slo, shi};
    install_stop_handlers();

    // Gradient reduction overlapped with the backward, unit by unit: ZeRO-0/1 all-reduce each unit of the
    // whole buffer in the last micro-batch (LG_NO_OVERLAP=1: one all-reduce after the backward, for
    // comparisons); ZeRO-2 reduces every micro-batch's buckets onto their owners inside the backward.
    const char *no_ov = getenv("LG_NO_OVERLAP");
    int overlap = world > 1 && !M.grads_sharded && !(no_ov && atoi(no_ov));
    overlap_ctx oc = {d, M.grad};
    M.grads_ready_ctx = &oc;
    const int64_t step0 = st.step;
    int64_t tokens_seen = st.tokens_seen;
    double lr = st.lr, t_start = lg_now_seconds();
    int rc = 0, stopped = 0;
    if (step0 >= c->steps) lg_info("the checkpoint is at step %lld >= run.steps = %d: nothing to train", (long long)step0, c->steps);
    if (c->data_val[0] && step0 < c->steps) validate(d, c, &M, c->data_val, step0, logf);
    for (int64_t step = step0 + 1; step <= c->steps; step++) {
        double t0 = lg_now_seconds();
        lg_model_zero_grad(&M);
        double loss_sum = 0;
        for (int64_t a = 0; a < accum; a++) {
            // In the last micro-batch each layer's gradients are final as soon as its backward is done: start
            // their all-reduce then, so it overlaps with the backward of the layers below (ZeRO-0/1).
            M.grads_ready = overlap && a == accum - 1 ? grads_ready : NULL;
            for (int b = 0; b < B; b++) {
                lg_batch_next(data, seq);
                for (int s = 0; s < S; s++) {
                    tok[(int64_t)b * S + s] = seq[s];
                    tgt[(int64_t)b * S + s] = s + 1 < S ? seq[s + 1] : -1;  // last position has no next token
                }
            }
            loss_sum += lg_model_fwd_bwd(&M, tok, tgt, dscale);
        }
        if (hook_at("LG_TEST_DIE_AT", step, rank)) lg_die("test hook LG_TEST_DIE_AT: rank %d fails at step %lld", rank, (long long)step);
        double loss = lg_dist_sum_f64(d, loss_sum) / (double)targets_per_step;
        if (overlap) lg_dist_wait(d);
        else if (!M.grads_sharded) lg_dist_allreduce_sum(d, M.grad, total);
        double gnorm = sqrt(lg_dist_sum_f64(d, ops->sumsq(lg_model_grad_at(&M, slo), shi - slo)));
        const char *nan_at = getenv("LG_TEST_NAN_AT");  // test hook: a non-finite gradient at this step, every rank
        if (nan_at && atoll(nan_at) == step) gnorm = NAN;
        tokens_seen += c->tokens_per_step;
        lr = lg_lr_at(c, (int)step);
        int finite = isfinite(loss) && isfinite(gnorm);  // the same on every rank: both are global sums
        if (!finite && !strcmp(c->nan_policy, "stop")) {
            lg_warn("step %lld: loss %g, grad norm %g is not finite; stopping (memory.nan_policy = stop). "
                    "Try a lower optim.lr or more warmup.", (long long)step, loss, gnorm);
            rc = 2;
            break;
        }
        if (finite) {
            if (c->grad_clip > 0 && gnorm > c->grad_clip)
                ops->scale(lg_model_grad_at(&M, olo), ohi - olo, (float)(c->grad_clip / gnorm));
            lg_adamw_step(&opt, c, &M.pt, lg_model_master_at(&M, olo), lg_model_grad_at(&M, olo), (float)lr, (int)step);
            if (zero > 0 && !M.master_sharded) lg_dist_allgather(d, M.dmaster, total);
            lg_model_sync_weights(&M);  // sharded master: casts the shard, all-gathers the bf16 weights
        } else {
            lg_warn("step %lld: loss %g, grad norm %g is not finite; step skipped (memory.nan_policy = skip)",
                    (long long)step, loss, gnorm);
        }

        double now = lg_now_seconds(), dt = now - t0, el = now - t_start;
        double tps = (double)c->tokens_per_step / dt;
        char els[32], eta[32];
        lg_format_duration(el, els, sizeof els);
        lg_format_duration(el / (double)(step - step0) * (double)(c->steps - step), eta, sizeof eta);
        if (step == step0 + 1 || step == c->steps || step % c->log_every == 0)
            lg_info("step %5lld/%d | loss %.4f | lr %.3e | grad norm %.3f | %.0f tok/s | elapsed %s | ETA %s",
                    (long long)step, c->steps, loss, lr, gnorm, tps, els, eta);
        if (step == step0 + 1 && !strcmp(c->device, "cuda")) report_device_memory(d, p.total);
        if (logf && finite) {
            // %.17g: the exact double, so that resumed runs can be compared bit for bit
            fprintf(logf,
                    "{\"step\": %lld, \"loss\": %.17g, \"lr\": %.6e, \"grad_norm\": %.17g, \"tokens\": %lld, "
                    "\"tok_per_s\": %.1f, \"step_s\": %.4f, \"elapsed_s\": %.3f}\n",
                    (long long)step, loss, lr, gnorm, (long long)tokens_seen, tps, dt, el);
            fflush(logf);
        }

        if (c->data_val[0] && ((c->eval_every > 0 && step % c->eval_every == 0) || step == c->steps))
            validate(d, c, &M, c->data_val, step, logf);
        if (hook_at("LG_TEST_SIGNAL_AT", step, rank)) raise(SIGTERM);
        // every rank learns of a signal that reached any of them, so all stop after the same step
        int stop = lg_dist_any(d, g_stop_signal != 0);
        if ((c->ckpt_every > 0 && step % c->ckpt_every == 0) || step == c->steps || stop) {
            free(save_checkpoint(&rc_ctx, step, tokens_seen, lr));
        }
        if (stop) {
            lg_info("stopped after step %lld on %s: the checkpoint above holds it; run the same command to resume",
                    (long long)step, g_stop_signal ? signal_name(g_stop_signal) : "a stop signal received by another rank");
            stopped = 1;
            break;
        }
    }
    if (logf) lg_fclose(logf, log_path);

    if (rc == 0 && !stopped && (c->export_hf || c->export_gguf)) lg_model_master_to_host(&M);  // collective
    if (rc == 0 && !stopped && c->export_hf && rank == 0) {
        const char *src = strcmp(c->init_from, "random") ? c->init_from : NULL;
        lg_info("exporting HF model to %s (%s)", c->export_dir, c->export_dtype);
        lg_hf_export(c->export_dir, c, &M.pt, M.master, src, c->export_dtype);
    }
    if (rc == 0 && !stopped && c->export_gguf && rank == 0) export_gguf(c, &M);
    lg_dist_barrier(d);
    lg_info("done: log %s", log_path);
    free(seq); free(tok); free(tgt); free(log_path); free(cfg_path); free(resume);
    lg_batch_close(data);
    lg_adamw_free(&opt);
    lg_model_free(&M);
    ops->release();  // the backend's caches (GEMM workspace, tile lists, cuDNN plans): a leak checker sees none
    free(resolved);
    return rc;
}

int lg_train_eval_only(const lg_config *cfg, lg_dist *d) {
    lg_config *fwd = lg_malloc(sizeof *fwd);  // forward only: no layer needs its attention output kept
    *fwd = *cfg;
    fwd->keep_attn_limit = 0;
    const lg_config *c = fwd;
    const lg_ops *ops = pick_backend(c);
    lg_model M;
    lg_model_init(&M, c, ops, c->micro_batch, c->seq_len);
    if (!strcmp(c->init_from, "random")) lg_params_init_random(&M.pt, M.master, &c->model, c->seed);
    else lg_hf_import(c->init_from, &M.pt, M.master);
    lg_model_master_from_host(&M);
    lg_model_sync_weights(&M);
    char lay[64];
    int n_full = 0;
    for (int l = 0; l < c->model.n_layers; l++) n_full += c->layout.layer[l].kind == LG_ATTN_FULL;
    snprintf(lay, sizeof lay, "%d of %d layers full", n_full, c->model.n_layers);
    lg_info("evaluating %s (%s, RoPE theta %g, scaling %s) at seq_len %d", c->init_from, lay, c->rope.theta,
            lg_rope_type_name(c->rope.type), c->seq_len);
    validate(d, c, &M, c->data_val[0] ? c->data_val : c->data_train, 0, NULL);
    lg_model_free(&M);
    ops->release();
    free(fwd);
    return 0;
}
