// plan.c: see plan.h. Bytes and FLOPs are counted from the parameter table, the layout and the model's own
// buffer-size function; nothing here allocates.
#include "plan.h"

#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "model.h"
#include "params.h"
#include "util.h"

#define GIB (1024.0 * 1024.0 * 1024.0)

void lg_plan_compute(const lg_config *c, int world, const char *backend, lg_plan *p) {
    memset(p, 0, sizeof *p);
    const lg_model_cfg *m = &c->model;
    int cuda = !strcmp(backend, "cuda");
    p->world = world;
    lg_param_table pt;
    lg_params_build(&pt, m);
    double P = (double)pt.total;
    p->params = pt.total;
    int64_t per = (int64_t)c->seq_len * c->micro_batch * world;
    p->accum = per > 0 ? c->tokens_per_step / per : 0;
    p->tokens_per_step = (double)c->tokens_per_step;

    // What the run allocates (trainer/model.c, optim.c). ZeRO >= 1: AdamW moments of this rank's shard, and on
    // GPUs the fp32 master of that shard too (bf16 weights all-gathered after each update). ZeRO-2 on several
    // ranks: the fp32 gradient shard plus two alternating buckets of the largest unit and the embedding's.
    int64_t slo, shi;
    lg_dist_shard(pt.total, world, world - 1, &slo, &shi);  // the last rank's shard is the largest
    double shard = (double)(shi - slo);
    int many = world > 1;
    if (cuda) {
        p->weights = 2 * P;  // bf16 copy the kernels read
        p->master = 4 * (many && c->zero_stage >= 1 ? shard : P);
    } else {
        p->weights = 4 * P;  // the cpu ops read the fp32 master itself
        p->master = 0;
    }
    if (many && c->zero_stage >= 2) {
        p->grads = 4 * (shard + 2 * (double)lg_model_bucket_elems(&pt, m->n_layers) +
                        (double)lg_params_get(&pt, LG_P_EMBED, -1)->numel);
    } else {
        p->grads = 4 * P;
    }
    p->optim = 8 * (c->zero_stage >= 1 ? shard : P);
    p->host_master = 4 * P;  // rank 0's copy (checkpoints, exports); other ranks keep their shard after init

    int64_t kept = 0, katt = 0;
    double acts = (double)lg_model_buffer_bytes(c, cuda ? 2 : 4, c->micro_batch, c->seq_len, &kept, &katt);
    p->kept_acts = (double)kept;
    p->kept_att = (double)katt;
    p->kept_att_layers = lg_keep_attn_layers(c);
    for (int l = 0; l < m->n_layers; l++) p->full_layers += c->layout.layer[l].kind == LG_ATTN_FULL;
    p->working = acts - (double)kept - (double)katt;
    if (c->offload_activations)
        p->host_acts = (double)m->n_layers * c->micro_batch * c->seq_len * m->dim * (cuda ? 2 : 4);
    p->workspace = cuda ? 1.5 * GIB : 0;  // cuBLASLt/attention workspaces and the CUDA context, reserved
    // cuDNN's attention backward accumulates dQ in fp32 (B, H, S, D) plus a (B, H, S) sum, for full and
    // sink+window layers unless the native kernels are forced (or deterministic mode forces them).
    int cudnn_layers = 0;
    for (int l = 0; l < m->n_layers; l++)
        cudnn_layers += c->layout.layer[l].kind != LG_ATTN_BLOCK_SPARSE;
    if (cuda && cudnn_layers && strcmp(c->layout.attention_backend, "native") && !c->deterministic)
        p->attn_scratch = 4.0 * c->micro_batch * m->n_heads * (double)c->seq_len * (m->head_dim + 2);
    p->total = p->weights + p->master + p->grads + p->optim + p->kept_acts + p->kept_att + p->working + p->workspace +
               p->attn_scratch;

    // FLOPs: matmuls 2 per multiply-add; backward = 2x forward. Attention per query head and kept pair:
    // forward 4*D (QK^T, PV), backward 8*D (dV, dP, dQ, dK).
    double C = m->dim, F = m->ffn_dim, V = m->vocab_size, D = m->head_dim;
    double QD = (double)m->n_heads * D, KD = (double)m->n_kv_heads * D;
    double attn_proj = C * QD + 2 * C * KD + QD * C, mlp = 3 * C * F;
    double tokens = (double)c->tokens_per_step, seqs = tokens / c->seq_len;
    double fwd_tok = 2 * (m->n_layers * (attn_proj + mlp) + C * V);
    double pairs_fwd = 0;  // sum over layers and query heads of 4*D*pairs, one sequence
    int group = m->n_heads / m->n_kv_heads;
    for (int l = 0; l < m->n_layers; l++)
        for (int h = 0; h < m->n_kv_heads; h++)
            pairs_fwd += 4 * D * group * (double)lg_attn_pairs(&c->layout.layer[l], m->n_kv_heads, h, c->seq_len);
    p->flops_attention = 3 * pairs_fwd * seqs;
    p->flops_model = 3 * fwd_tok * tokens + p->flops_attention;
    // Backward recomputes each layer's attention half (projections + attention forward) and the MLP's
    // gate/up projections (the down projection's output is not needed again).
    p->flops_recompute = 2 * m->n_layers * (attn_proj + 2 * C * F) * tokens + pairs_fwd * seqs;
    lg_params_free(&pt);
}

void lg_plan_resolve(lg_config *c, int world, const char *backend) {
    c->keep_attn_limit = -1;
    const char *t = getenv("LG_TEST_KEEP_ATTN");  // test hook: keep exactly this many (any backend)
    if (t && *t) {
        c->keep_attn_limit = atoi(t);
        return;
    }
    if (strcmp(c->keep_full_attention, "auto") || strcmp(backend, "cuda")) return;
    double budget = (c->device_gib - 4.0) * GIB;
    lg_plan p;
    lg_plan_compute(c, world, backend, &p);
    int keep = p.kept_att_layers;
    // each kept layer costs the same: drop them one at a time until the plan fits (or none is left)
    while (p.total > budget && keep > 0) {
        c->keep_attn_limit = --keep;
        lg_plan_compute(c, world, backend, &p);
    }
}

static void row(FILE *f, const char *what, double bytes, const char *note) {
    char b[32];
    lg_format_bytes(bytes, b, sizeof b);
    fprintf(f, "  %-34s %12s   %s\n", what, b, note);
}

int lg_plan_print(const lg_config *c, const lg_plan *p, const char *backend, FILE *f) {
    char z[64];
    snprintf(z, sizeof z, "ZeRO-%d over %d rank%s", c->zero_stage, p->world, p->world > 1 ? "s" : "");
    fprintf(f, "plan for %s: %.3fB parameters, %d layers, seq_len %d, micro_batch %d, %lld micro-batch%s per rank "
               "per step, backend %s, %s\n",
            c->config_path, p->params / 1e9, c->model.n_layers, c->seq_len, c->micro_batch, (long long)p->accum,
            p->accum == 1 ? "" : "es", backend, z);
    fprintf(f, "memory per rank:\n");
    int many = p->world > 1, gpu = !strcmp(backend, "cuda");
    row(f, "weights", p->weights, gpu ? "bf16, replicated" : "fp32 master, replicated");
    if (p->master > 0)
        row(f, "master weights (fp32)", p->master, many && c->zero_stage >= 1 ? "this rank's shard" : "replicated");
    row(f, "gradients (fp32)", p->grads,
        many && c->zero_stage >= 2 ? "this rank's shard + 2 layer buckets + embedding bucket" : "whole buffer");
    row(f, "AdamW m, v (fp32)", p->optim, c->zero_stage >= 1 ? "this rank's shard" : "replicated");
    row(f, "kept layer inputs (recompute)", p->kept_acts,
        c->offload_activations ? "2 device slots (the rest offloaded to host)" : "(layers+1) x tokens x dim");
    if (p->full_layers > 0 && strcmp(c->keep_full_attention, "false")) {
        char note[96];
        snprintf(note, sizeof note, "%d of %d full layers (memory.keep_full_attention = %s)", p->kept_att_layers,
                 p->full_layers, c->keep_full_attention);
        row(f, "kept full-layer attention outputs", p->kept_att, note);
    }
    row(f, "largest working set", p->working, "one layer recomputed + MLP/loss chunks");
    if (p->workspace > 0) row(f, "workspace + CUDA context (reserve)", p->workspace, "cuBLASLt, attention");
    if (p->attn_scratch > 0) row(f, "attention backward scratch", p->attn_scratch, "cuDNN dQ accumulator (fp32)");
    row(f, "total", p->total, "");
    fprintf(f, "activations: %.0f bytes (kept + working set, as allocated by the run)\n",
            p->kept_acts + p->kept_att + p->working);
    {
        char hm[32], ha[32];
        lg_format_bytes(p->host_master, hm, sizeof hm);
        lg_format_bytes(p->host_acts, ha, sizeof ha);
        fprintf(f, "host memory per rank: %s fp32 master copy (checkpoint and export I/O; with a sharded master, "
                   "ranks other than 0 keep only their shard after init)", hm);
        if (p->host_acts > 0) fprintf(f, " + %s page-locked layer inputs (memory.offload_activations)", ha);
        fprintf(f, "\n");
    }
    // KV cache an inference engine needs after seq_len tokens (bf16 K and V), hybrid vs every layer full.
    {
        const lg_model_cfg *m = &c->model;
        double kv = 0, kv_full = 0, per_tok = 2.0 * 2 * m->n_kv_heads * m->head_dim;
        for (int l = 0; l < m->n_layers; l++) {
            kv += per_tok * (double)lg_attn_kv_cache_tokens(&c->layout.layer[l], m->n_kv_heads, c->seq_len);
            kv_full += per_tok * c->seq_len;
        }
        char a[32], b[32];
        lg_format_bytes(kv, a, sizeof a);
        lg_format_bytes(kv_full, b, sizeof b);
        fprintf(f, "KV cache for one %d-token sequence (bf16): %s with this layout, %s all-full (%.1f%% less)\n",
                c->seq_len, a, b, 100 * (1 - kv / kv_full));
    }
    double budget = c->device_gib * GIB;
    double ceil_s = (p->flops_model + p->flops_recompute) / p->world / 775e12;
    fprintf(f, "FLOPs per step: %.3e model (%.1f%% attention) + %.3e recompute; %.0f tokens per step\n",
            p->flops_model, 100 * p->flops_attention / p->flops_model, p->flops_recompute, p->tokens_per_step);
    fprintf(f, "at the H100 bf16 GEMM ceiling (775 TFLOP/s): %.2f s per step per rank, %.0f tokens/s/GPU\n", ceil_s,
            p->tokens_per_step / p->world / ceil_s);
    if (strcmp(backend, "cuda") != 0) {
        fprintf(f, "(cpu backend: host memory; memory.device_gib = %.0f is checked only for cuda)\n", c->device_gib);
        return 0;
    }
    char need[32], have[32];
    lg_format_bytes(p->total, need, sizeof need);
    lg_format_bytes(budget, have, sizeof have);
    if (p->total <= budget) {
        fprintf(f, "fits: %s of %s (memory.device_gib)\n", need, have);
        return 0;
    }
    if (p->weights + p->workspace > budget) {  // no knob helps: say what is missing
        char wb[32];
        lg_format_bytes(p->weights, wb, sizeof wb);
        fprintf(f, "DOES NOT FIT: %s needed per rank, %s available (memory.device_gib). The replicated weights alone are\n"
                   "%s per GPU: this model needs its weights sharded across GPUs (ZeRO-3 or tensor parallelism), which\n"
                   "lgtrain does not have yet.\n", need, have, wb);
        return 1;
    }
    fprintf(f, "DOES NOT FIT: %s needed per rank, %s available (memory.device_gib). Try, in this order:\n", need, have);
    if (c->zero_stage < 1) fprintf(f, "  - memory.zero_stage = 1 (shards the AdamW moments)\n");
    if (p->world > 1 && c->zero_stage < 2)
        fprintf(f, "  - memory.zero_stage = 2 (shards the fp32 gradients)\n");
    if (p->world < 8) fprintf(f, "  - more ranks (mpirun -np N): the sharded master, gradients and moments shrink as 1/N\n");
    if (p->kept_att_layers > 0)
        fprintf(f, "  - memory.keep_full_attention = false (full layers recompute their attention in the backward)\n");
    if (!c->offload_activations)
        fprintf(f, "  - memory.offload_activations = true (layer inputs to page-locked host memory)\n");
    if (c->micro_batch > 1) fprintf(f, "  - data.micro_batch = 1 (and more accumulation steps)\n");
    if (c->mlp_chunk == 0 || c->mlp_chunk > 16384) fprintf(f, "  - memory.mlp_chunk = 8192 and memory.loss_chunk = 8192\n");
    fprintf(f, "  - a shorter data.seq_len (kept layer inputs grow linearly with it)\n");
    return 1;
}
