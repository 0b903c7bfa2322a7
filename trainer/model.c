// model.c: see model.h. The forward/backward pairs of one layer, the chunked MLP and the chunked loss.
#include "model.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dist.h"
#include "rope.h"
#include "util.h"

// Byte offset helpers: activations are act_size bytes each, weights param_size bytes.
#define ACT(M, p, i) ((void *)((char *)(p) + (size_t)(i) * (M)->ops->act_size))

static void *W(const lg_model *M, lg_param_kind k, int layer) {
    if (k == LG_P_LM_HEAD && M->m->tie_embeddings) k = LG_P_EMBED, layer = -1;
    const lg_param *p = lg_params_get(&M->pt, k, layer);
    return (char *)M->w + (size_t)p->offset * M->ops->param_size;
}
// Gradient of a weight: in the whole buffer, or (ZeRO-2) in the embedding's bucket or the bucket of the unit
// whose backward is running.
static float *G(const lg_model *M, lg_param_kind k, int layer) {
    if (k == LG_P_LM_HEAD && M->m->tie_embeddings) k = LG_P_EMBED, layer = -1;
    const lg_param *p = lg_params_get(&M->pt, k, layer);
    if (!M->grads_sharded) return M->grad + (p->offset - M->glo);
    if (k == LG_P_EMBED) return M->gembed + (p->offset - M->embed_lo);
    int b = M->cur_bucket;
    if (p->offset < M->bucket_lo[b] || p->offset + p->numel > M->bucket_hi[b])
        lg_die("internal: gradient of %s written outside the current bucket [%lld, %lld)", p->name,
               (long long)M->bucket_lo[b], (long long)M->bucket_hi[b]);
    return M->bucket[b] + (p->offset - M->bucket_lo[b]);
}

// Every activation buffer goes through here, so lg_model_buffer_bytes (the planner) counts exactly what
// lg_model_init allocates: the buffers are carved, 256-byte aligned, out of one arena of that size.
static void *balloc(lg_model *M, size_t bytes) {
    size_t r = (bytes + 255) & ~(size_t)255;
    M->act_bytes += (int64_t)r;
    if (M->plan_only) return NULL;
    if ((int64_t)(M->arena_used + r) > M->arena_bytes)
        lg_die("internal: activation arena of %lld bytes overflows", (long long)M->arena_bytes);
    void *p = (char *)M->arena + M->arena_used;
    M->arena_used += r;
    return p;
}

static void alloc_activations(lg_model *M) {
    const lg_model_cfg *m = M->m;
    int B = M->B, S = M->S;
    int64_t T = M->T, C = m->dim, L = m->n_layers, F = m->ffn_dim, V = m->vocab_size;
    int64_t QD = (int64_t)m->n_heads * m->head_dim, KD = (int64_t)m->n_kv_heads * m->head_dim;
    size_t a = M->act_size;
    int64_t mc = M->mlp_chunk, lc = M->loss_chunk;
    if (M->cfg->offload_activations) {
        // Layer inputs live in page-locked host memory; the device keeps two T x C slots (the input and the
        // output of the layer at work), see xdev.
        M->offload = 1;
        M->xs = balloc(M, (size_t)(2 * T * C) * a);
        M->host_bytes = (int64_t)(L * T * C) * (int64_t)a;
        M->xs_host = M->plan_only ? NULL : M->ops->host_alloc((size_t)M->host_bytes);
    } else {
        M->xs = balloc(M, (size_t)((L + 1) * T * C) * a);
    }
    M->h = balloc(M, (size_t)(T * C) * a);
    M->rstd1 = balloc(M, (size_t)T * 4);
    M->rstd2 = balloc(M, (size_t)T * 4);
    M->rstdf = balloc(M, (size_t)T * 4);
    M->q = balloc(M, (size_t)(T * QD) * a);
    M->att = balloc(M, (size_t)(T * QD) * a);
    M->k = balloc(M, (size_t)(T * KD) * a);
    M->v = balloc(M, (size_t)(T * KD) * a);
    M->lse = balloc(M, (size_t)((int64_t)B * m->n_heads * S) * 4);
    // memory.keep_full_attention: full layers keep their attention output and LSE from the forward, so the
    // backward's recompute skips their O(S^2) attention forward (the projections are still recomputed)
    int keep = lg_keep_attn_layers(M->cfg);
    if (keep > 0) {
        M->att_keep = M->plan_only ? NULL : lg_calloc((size_t)L, sizeof(void *));
        M->lse_keep = M->plan_only ? NULL : lg_calloc((size_t)L, sizeof(float *));
        for (int l = 0, kept = 0; l < L && kept < keep; l++) {
            if (M->cfg->layout.layer[l].kind != LG_ATTN_FULL) continue;
            kept++;
            void *ak = balloc(M, (size_t)(T * QD) * a);
            void *lk = balloc(M, (size_t)((int64_t)B * m->n_heads * S) * 4);
            M->keep_att_bytes += (int64_t)(T * QD) * (int64_t)a + (int64_t)B * m->n_heads * S * 4;
            if (!M->plan_only) M->att_keep[l] = ak, M->lse_keep[l] = lk;
        }
    }
    M->x2 = balloc(M, (size_t)(T * C) * a);
    M->g = balloc(M, (size_t)(mc * F) * a);
    M->u = balloc(M, (size_t)(mc * F) * a);
    M->a = balloc(M, (size_t)(mc * F) * a);
    M->dres = balloc(M, (size_t)(T * C) * a);
    M->dk = balloc(M, (size_t)(T * KD) * a);
    M->dv = balloc(M, (size_t)(T * KD) * a);
    // Buffers whose lives do not overlap share memory (the working set at 128K is what limits the 7B run):
    //   h2 / dq     h2 dies with the MLP backward; dq is born in the attention backward that follows it
    //   dh / datt   dh (MLP backward) is consumed by the norm backward before datt is written; datt is consumed
    //               by the attention backward before dh is written again
    //   dg,du,da / logits   MLP chunk gradients inside a layer; the loss chunk only in the head
    int64_t tq = T * (QD > C ? QD : C);
    M->dq = balloc(M, (size_t)tq * a);
    M->h2 = M->dq;
    M->dh = balloc(M, (size_t)tq * a);
    M->datt = M->dh;
    size_t mlp3 = (size_t)(3 * mc * F) * a, lbytes = (size_t)(lc * V) * (a > 4 ? a : 4);
    M->dg = balloc(M, mlp3 > lbytes ? mlp3 : lbytes);
    M->du = M->plan_only ? NULL : (char *)M->dg + (size_t)(mc * F) * a;
    M->da = M->plan_only ? NULL : (char *)M->dg + (size_t)(2 * mc * F) * a;
    M->logits = M->dg;
    M->tokens = balloc(M, (size_t)T * 4);
    M->targets = balloc(M, (size_t)T * 4);
    int half = m->head_dim / 2;
    M->rope_cos = balloc(M, (size_t)S * half * 4);
    M->rope_sin = balloc(M, (size_t)S * half * 4);
    M->kept_bytes = (int64_t)((M->offload ? 2 : L + 1) * T * C) * (int64_t)a;
}

int lg_keep_attn_layers(const lg_config *c) {
    int n_full = 0;
    for (int l = 0; l < c->model.n_layers; l++) n_full += c->layout.layer[l].kind == LG_ATTN_FULL;
    if (!strcmp(c->keep_full_attention, "false")) return 0;
    return c->keep_attn_limit >= 0 && c->keep_attn_limit < n_full ? c->keep_attn_limit : n_full;
}

int64_t lg_model_bucket_elems(const lg_param_table *pt, int n_layers) {
    int64_t cap = pt->total - lg_params_get(pt, LG_P_NORM, -1)->offset;  // final norm + untied LM head
    for (int l = 0; l < n_layers; l++) {
        int64_t lo = lg_params_get(pt, LG_P_ATTN_NORM, l)->offset;
        const lg_param *last = lg_params_get(pt, LG_P_WDOWN, l);
        if (last->offset + last->numel - lo > cap) cap = last->offset + last->numel - lo;
    }
    return cap;
}

void lg_model_init_dist(lg_model *M, const lg_config *cfg, const lg_ops *ops, int B, int S, lg_dist *d) {
    memset(M, 0, sizeof *M);
    M->cfg = cfg;
    M->m = &cfg->model;
    M->ops = ops;
    M->B = B;
    M->S = S;
    M->T = (int64_t)B * S;
    M->act_size = ops->act_size;
    const lg_model_cfg *m = M->m;
    lg_params_build(&M->pt, m);
    M->mlp_chunk = cfg->mlp_chunk > 0 && cfg->mlp_chunk < M->T ? cfg->mlp_chunk : (int)M->T;
    M->loss_chunk = cfg->loss_chunk > 0 && cfg->loss_chunk < M->T ? cfg->loss_chunk : (int)M->T;
    if (ops->attention_options) {  // [layout] attention_backend and [run] deterministic (cuda)
        const char *ab = cfg->layout.attention_backend;
        int be = !strcmp(ab, "cudnn") ? LG_ATTN_BACKEND_CUDNN : !strcmp(ab, "native") ? LG_ATTN_BACKEND_NATIVE
                                                                                       : LG_ATTN_BACKEND_AUTO;
        ops->attention_options(be, cfg->deterministic);
    }
    const int64_t total = M->pt.total;
    int many = d && d->world > 1;
    M->dist = many ? d : NULL;
    int64_t slo = 0, shi = total;
    if (many) lg_dist_shard(total, d->world, d->rank, &slo, &shi);

    M->master = lg_calloc((size_t)total, sizeof(float));
    int host = !strcmp(ops->name, "cpu");
    // The cpu backend computes on the fp32 master itself, so it stays whole there; a device backend keeps only
    // the shard its optimizer updates (ZeRO >= 1) and all-gathers the bf16 weights made from it.
    M->master_sharded = many && !host && cfg->zero_stage >= 1;
    M->mlo = M->master_sharded ? slo : 0;
    M->mhi = M->master_sharded ? shi : total;
    M->dmaster = host ? M->master : ops->alloc((size_t)(M->mhi - M->mlo) * sizeof(float));
    if (host && ops->param_size == sizeof(float)) M->w = M->master;  // cpu computes on the master itself
    else M->w = ops->alloc((size_t)total * ops->param_size);

    M->grads_sharded = many && cfg->zero_stage >= 2;
    M->glo = M->grads_sharded ? slo : 0;
    M->ghi = M->grads_sharded ? shi : total;
    M->grad = ops->alloc((size_t)(M->ghi - M->glo) * sizeof(float));
    ops->zero(M->grad, (size_t)(M->ghi - M->glo) * sizeof(float));
    if (M->grads_sharded) {
        const lg_param *e = lg_params_get(&M->pt, LG_P_EMBED, -1);
        M->embed_lo = e->offset;
        M->embed_hi = e->offset + e->numel;
        int64_t cap = lg_model_bucket_elems(&M->pt, m->n_layers);
        M->gembed = ops->alloc((size_t)e->numel * sizeof(float));
        for (int b = 0; b < 2; b++) M->bucket[b] = ops->alloc((size_t)cap * sizeof(float));
    }

    // one arena for every activation buffer, sized by the same function the planner uses
    M->arena_bytes = lg_model_buffer_bytes(cfg, ops->act_size, B, S, NULL, NULL);
    M->arena = ops->alloc((size_t)M->arena_bytes);
    alloc_activations(M);
    if ((int64_t)M->arena_used != M->arena_bytes || M->act_bytes != M->arena_bytes)
        lg_die("internal: activation arena planned %lld bytes, carved %lld", (long long)M->arena_bytes,
               (long long)M->arena_used);
    int half = m->head_dim / 2;
    float *c = lg_malloc(sizeof(float) * (size_t)S * half), *s = lg_malloc(sizeof(float) * (size_t)S * half);
    lg_rope_tables(&cfg->rope, m->head_dim, S, c, s);
    ops->upload(M->rope_cos, c, (size_t)S * half, 4);
    ops->upload(M->rope_sin, s, (size_t)S * half, 4);
    free(c);
    free(s);
}

void lg_model_init(lg_model *M, const lg_config *cfg, const lg_ops *ops, int B, int S) {
    lg_model_init_dist(M, cfg, ops, B, S, NULL);
}

void lg_model_free(lg_model *M) {
    const lg_ops *o = M->ops;
    void *bufs[] = {M->arena, M->grad, M->gembed, M->bucket[0], M->bucket[1]};  // activations: all in the arena
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) o->free(bufs[i]);
    if (M->xs_host) o->host_free(M->xs_host);
    free(M->att_keep);
    free(M->lse_keep);
    if (M->w != M->master) o->free(M->w);
    if (M->dmaster != M->master) o->free(M->dmaster);
    free(M->master);
    lg_params_free(&M->pt);
    memset(M, 0, sizeof *M);
}

float *lg_model_master_at(const lg_model *M, int64_t i) {
    if (i < M->mlo || i > M->mhi) lg_die("internal: master index %lld outside [%lld, %lld]", (long long)i, (long long)M->mlo, (long long)M->mhi);
    return M->dmaster + (M->dmaster == M->master ? i : i - M->mlo);
}

float *lg_model_grad_at(const lg_model *M, int64_t i) {
    if (i < M->glo || i > M->ghi) lg_die("internal: gradient index %lld outside [%lld, %lld]", (long long)i, (long long)M->glo, (long long)M->ghi);
    return M->grad + (i - M->glo);
}

void lg_model_sync_weights(lg_model *M) {
    if (M->w == M->dmaster) return;  // cpu: the ops read the master itself
    int64_t n = M->mhi - M->mlo;
    M->ops->cast_params((char *)M->w + (size_t)M->mlo * M->ops->param_size, M->dmaster, n);
    if (M->master_sharded) lg_dist_allgather_elems(M->dist, M->w, M->pt.total, M->ops->param_size);
}

void lg_model_master_from_host(lg_model *M) {
    if (M->dmaster != M->master)
        M->ops->upload(M->dmaster, M->master + M->mlo, (size_t)(M->mhi - M->mlo), sizeof(float));
}

void lg_model_master_to_host(lg_model *M) {
    if (M->dmaster == M->master) return;
    M->ops->download(M->master + M->mlo, M->dmaster, (size_t)(M->mhi - M->mlo), sizeof(float));
    if (M->master_sharded) lg_dist_gather_host(M->dist, M->master, M->pt.total, 0);
}

void lg_model_trim_host_master(lg_model *M, int keep_whole) {
    if (!M->master_sharded || keep_whole) return;
    // Give the pages outside [mlo, mhi) back to the OS (the block is a private anonymous mapping: touched again
    // they read as zeros). Only whole pages strictly inside each range are released.
    long pg = sysconf(_SC_PAGESIZE);
    uintptr_t base = (uintptr_t)M->master, lo = (uintptr_t)(M->master + M->mlo), hi = (uintptr_t)(M->master + M->mhi),
              end = (uintptr_t)(M->master + M->pt.total);
    uintptr_t r[2][2] = {{base, lo}, {hi, end}};
    for (int i = 0; i < 2; i++) {
        uintptr_t a = (r[i][0] + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1), b = r[i][1] & ~((uintptr_t)pg - 1);
        if (b > a && madvise((void *)a, b - a, MADV_DONTNEED) != 0)
            lg_warn("madvise(MADV_DONTNEED) on the host master copy failed: %s (host memory stays in use)", strerror(errno));
    }
}

void lg_model_zero_grad(lg_model *M) { M->ops->zero(M->grad, (size_t)(M->ghi - M->glo) * sizeof(float)); }

// --- ZeRO-2 buckets -------------------------------------------------------------------------------------------
// Add the owned part of a reduced bucket holding [lo, hi) into the gradient shard, once the reduction is done.
static void bucket_fold(lg_model *M, float *buf, int64_t lo, int64_t hi) {
    int64_t a = lo > M->glo ? lo : M->glo, b = hi < M->ghi ? hi : M->ghi;
    lg_dist_compute_waits(M->dist);
    if (a < b) M->ops->add_f32(M->grad + (a - M->glo), buf + (a - lo), b - a);
}

// The backward of the unit [lo, hi) starts: its gradients go into the next bucket, emptied first.
static void unit_begin(lg_model *M, int64_t lo, int64_t hi) {
    if (!M->grads_sharded) return;
    int b = M->cur_bucket ^ 1;
    if (M->bucket_pending[b]) bucket_fold(M, M->bucket[b], M->bucket_lo[b], M->bucket_hi[b]);
    M->bucket_pending[b] = 0;
    M->ops->zero(M->bucket[b], (size_t)(hi - lo) * sizeof(float));
    M->bucket_lo[b] = lo;
    M->bucket_hi[b] = hi;
    M->cur_bucket = b;
}

// The unit's gradients for this micro-batch are complete: reduce them onto their owners (ZeRO-2), or tell the
// trainer (whole buffer: it all-reduces them in the last micro-batch).
static void unit_end(lg_model *M, int64_t lo, int64_t hi) {
    if (!M->grads_sharded) {
        if (M->grads_ready) M->grads_ready(M->grads_ready_ctx, lo, hi);
        return;
    }
    int b = M->cur_bucket;
    lg_dist_reduce_owned_start(M->dist, M->bucket[b], lo, hi, M->pt.total);
    M->bucket_pending[b] = 1;
}

// Device buffer of layer input l (l = n_layers: the final hidden state). Offload: slot l & 1 of two.
static void *xdev(const lg_model *M, int l) {
    int64_t TC = M->T * M->m->dim;
    return ACT(M, M->xs, (M->offload ? (l & 1) : l) * TC);
}

// Offload: start copying layer input l to the host (the copy waits for the compute that writes it).
static void offload_input(lg_model *M, int l) {
    if (!M->offload) return;
    size_t bytes = (size_t)(M->T * M->m->dim) * M->act_size;
    M->ops->copy_async((char *)M->xs_host + (size_t)l * bytes, xdev(M, l), bytes, l & 1);
}

// Attention half of layer l on x (T,C): leaves h, rstd1, q, k (roped), v, att, lse, and x2 = x + att Wo^T.
// Attention output and LSE of layer l: kept per full layer (keep_full_attention) or the shared buffers.
static void *ATT(const lg_model *M, int l) { return M->att_keep && M->att_keep[l] ? M->att_keep[l] : M->att; }
static float *LSE(const lg_model *M, int l) { return M->lse_keep && M->lse_keep[l] ? M->lse_keep[l] : M->lse; }

// recompute != 0 (backward): a layer whose attention output was kept skips the attention forward.
static void attn_forward(lg_model *M, int l, const void *x, int recompute) {
    const lg_ops *o = M->ops;
    const lg_model_cfg *m = M->m;
    int64_t T = M->T;
    int C = m->dim, H = m->n_heads, KVH = m->n_kv_heads, D = m->head_dim;
    o->rmsnorm_fwd(M->h, M->rstd1, x, W(M, LG_P_ATTN_NORM, l), T, C, m->norm_eps);
    o->matmul_fwd(M->q, M->h, W(M, LG_P_WQ, l), T, C, H * D);
    o->matmul_fwd(M->k, M->h, W(M, LG_P_WK, l), T, C, KVH * D);
    o->matmul_fwd(M->v, M->h, W(M, LG_P_WV, l), T, C, KVH * D);
    o->rope_fwd(M->q, M->rope_cos, M->rope_sin, T, M->S, H, D);
    o->rope_fwd(M->k, M->rope_cos, M->rope_sin, T, M->S, KVH, D);
    if (!(recompute && ATT(M, l) != M->att))
        o->attention_fwd(ATT(M, l), LSE(M, l), M->q, M->k, M->v, M->B, M->S, H, KVH, D, &M->cfg->layout.layer[l]);
    o->matmul_fwd(M->x2, ATT(M, l), W(M, LG_P_WO, l), T, H * D, C);
    o->add_inplace(M->x2, x, T * C);
}

// MLP half: h2 = norm(x2); out = x2 + down(silu(gate h2) * up h2), in sequence chunks.
static void mlp_forward(lg_model *M, int l, void *out) {
    const lg_ops *o = M->ops;
    const lg_model_cfg *m = M->m;
    int64_t T = M->T;
    int C = m->dim, F = m->ffn_dim;
    o->rmsnorm_fwd(M->h2, M->rstd2, M->x2, W(M, LG_P_FFN_NORM, l), T, C, m->norm_eps);
    for (int64_t t0 = 0; t0 < T; t0 += M->mlp_chunk) {
        int64_t n = T - t0 < M->mlp_chunk ? T - t0 : M->mlp_chunk;
        void *h2 = ACT(M, M->h2, t0 * C), *y = ACT(M, out, t0 * C);
        o->matmul_fwd(M->g, h2, W(M, LG_P_WGATE, l), n, C, F);
        o->matmul_fwd(M->u, h2, W(M, LG_P_WUP, l), n, C, F);
        o->swiglu_fwd(M->a, M->g, M->u, n, F);
        o->matmul_fwd(y, M->a, W(M, LG_P_WDOWN, l), n, F, C);
        o->add_inplace(y, ACT(M, M->x2, t0 * C), n * C);
    }
}

// Backward of the MLP half: dres holds d(out) on entry and d(x2) on exit. Needs x2 (from attn_forward).
static void mlp_backward(lg_model *M, int l) {
    const lg_ops *o = M->ops;
    const lg_model_cfg *m = M->m;
    int64_t T = M->T;
    int C = m->dim, F = m->ffn_dim;
    o->rmsnorm_fwd(M->h2, M->rstd2, M->x2, W(M, LG_P_FFN_NORM, l), T, C, m->norm_eps);
    for (int64_t t0 = 0; t0 < T; t0 += M->mlp_chunk) {
        int64_t n = T - t0 < M->mlp_chunk ? T - t0 : M->mlp_chunk;
        void *h2 = ACT(M, M->h2, t0 * C), *dy = ACT(M, M->dres, t0 * C), *dh = ACT(M, M->dh, t0 * C);
        o->matmul_fwd(M->g, h2, W(M, LG_P_WGATE, l), n, C, F);  // recompute this chunk
        o->matmul_fwd(M->u, h2, W(M, LG_P_WUP, l), n, C, F);
        o->swiglu_fwd(M->a, M->g, M->u, n, F);
        o->matmul_bwd(M->da, G(M, LG_P_WDOWN, l), dy, M->a, W(M, LG_P_WDOWN, l), n, F, C, 0);
        o->swiglu_bwd(M->dg, M->du, M->da, M->g, M->u, n, F);
        o->matmul_bwd(dh, G(M, LG_P_WGATE, l), M->dg, h2, W(M, LG_P_WGATE, l), n, C, F, 0);
        o->matmul_bwd(dh, G(M, LG_P_WUP, l), M->du, h2, W(M, LG_P_WUP, l), n, C, F, 1);
    }
    o->rmsnorm_bwd(M->dres, G(M, LG_P_FFN_NORM, l), M->dh, M->x2, W(M, LG_P_FFN_NORM, l), M->rstd2, T, C);
}

// Backward of the attention half: dres holds d(x2) on entry and d(x) on exit.
static void attn_backward(lg_model *M, int l, const void *x) {
    const lg_ops *o = M->ops;
    const lg_model_cfg *m = M->m;
    int64_t T = M->T;
    int C = m->dim, H = m->n_heads, KVH = m->n_kv_heads, D = m->head_dim;
    o->matmul_bwd(M->datt, G(M, LG_P_WO, l), M->dres, ATT(M, l), W(M, LG_P_WO, l), T, H * D, C, 0);
    o->attention_bwd(M->dq, M->dk, M->dv, M->datt, M->q, M->k, M->v, ATT(M, l), LSE(M, l), M->B, M->S, H, KVH, D,
                     &M->cfg->layout.layer[l]);
    o->rope_bwd(M->dq, M->rope_cos, M->rope_sin, T, M->S, H, D);
    o->rope_bwd(M->dk, M->rope_cos, M->rope_sin, T, M->S, KVH, D);
    o->matmul_bwd(M->dh, G(M, LG_P_WQ, l), M->dq, M->h, W(M, LG_P_WQ, l), T, C, H * D, 0);
    o->matmul_bwd(M->dh, G(M, LG_P_WK, l), M->dk, M->h, W(M, LG_P_WK, l), T, C, KVH * D, 1);
    o->matmul_bwd(M->dh, G(M, LG_P_WV, l), M->dv, M->h, W(M, LG_P_WV, l), T, C, KVH * D, 1);
    o->rmsnorm_bwd(M->dres, G(M, LG_P_ATTN_NORM, l), M->dh, x, W(M, LG_P_ATTN_NORM, l), M->rstd1, T, C);
}

// Final norm + LM head + cross-entropy in chunks. With backward, leaves d(final hidden) in dres.
static double head_loss(lg_model *M, float dscale, int backward, float *logits_out) {
    const lg_ops *o = M->ops;
    const lg_model_cfg *m = M->m;
    int64_t T = M->T;
    int C = m->dim, V = m->vocab_size;
    void *xL = xdev(M, m->n_layers);
    o->rmsnorm_fwd(M->h, M->rstdf, xL, W(M, LG_P_NORM, -1), T, C, m->norm_eps);
    double loss = 0;
    for (int64_t t0 = 0; t0 < T; t0 += M->loss_chunk) {
        int64_t n = T - t0 < M->loss_chunk ? T - t0 : M->loss_chunk;
        void *hn = ACT(M, M->h, t0 * C);
        o->matmul_fwd(M->logits, hn, W(M, LG_P_LM_HEAD, -1), n, C, V);
        if (logits_out) o->download(logits_out + t0 * V, M->logits, (size_t)(n * V), o->act_size);
        loss += o->cross_entropy(M->logits, M->targets + t0, n, V, dscale);
        if (backward)
            o->matmul_bwd(ACT(M, M->dh, t0 * C), G(M, LG_P_LM_HEAD, -1), M->logits, hn, W(M, LG_P_LM_HEAD, -1), n,
                          C, V, 0);
    }
    if (backward) {
        o->zero(M->dres, (size_t)(T * C) * o->act_size);
        o->rmsnorm_bwd(M->dres, G(M, LG_P_NORM, -1), M->dh, xL, W(M, LG_P_NORM, -1), M->rstdf, T, C);
    }
    return loss;
}

static double forward_all(lg_model *M, const int32_t *tokens, const int32_t *targets) {
    const lg_ops *o = M->ops;
    int64_t T = M->T, C = M->m->dim;
    for (int64_t i = 0; i < T; i++)
        if (tokens[i] < 0 || tokens[i] >= M->m->vocab_size)
            lg_die("token id %d at position %lld is outside the vocabulary [0, %d)", tokens[i], (long long)i,
                   M->m->vocab_size);
    o->upload_i32(M->tokens, tokens, (size_t)T);
    o->upload_i32(M->targets, targets, (size_t)T);
    int L = M->m->n_layers;
    o->embedding_fwd(xdev(M, 0), M->tokens, W(M, LG_P_EMBED, -1), T, (int)C);
    offload_input(M, 0);
    for (int l = 0; l < L; l++) {
        // the slot layer l writes held input l-1, whose copy to the host must be done
        if (M->offload) o->copy_wait((l + 1) & 1);
        attn_forward(M, l, xdev(M, l), 0);
        mlp_forward(M, l, xdev(M, l + 1));
        if (l + 1 < L) offload_input(M, l + 1);  // the final hidden state is used by the head right away
    }
    return 0;
}

double lg_model_forward(lg_model *M, const int32_t *tokens, const int32_t *targets, float *logits) {
    forward_all(M, tokens, targets);
    double loss = head_loss(M, 0.0f, 0, logits);
    M->ops->sync();
    return loss;
}

double lg_model_fwd_bwd(lg_model *M, const int32_t *tokens, const int32_t *targets, float dscale) {
    const lg_param_table *pt = &M->pt;
    if (M->grads_sharded) M->ops->zero(M->gembed, (size_t)(M->embed_hi - M->embed_lo) * sizeof(float));
    forward_all(M, tokens, targets);
    // final norm (+ untied LM head): the table's tail after the last layer
    int64_t tail = lg_params_get(pt, LG_P_NORM, -1)->offset;
    unit_begin(M, tail, pt->total);
    double loss = head_loss(M, dscale, 1, NULL);
    unit_end(M, tail, pt->total);
    int64_t T = M->T, C = M->m->dim;
    for (int l = M->m->n_layers - 1; l >= 0; l--) {
        if (M->offload) {
            // input l is in slot l & 1: left there by the forward (top layer) or prefetched during layer l+1;
            // prefetch input l-1 into the other slot while this layer runs
            if (l < M->m->n_layers - 1) M->ops->copy_wait(l & 1);
            if (l > 0)
                M->ops->copy_async(xdev(M, l - 1), (char *)M->xs_host + (size_t)((l - 1) * T * C) * M->act_size,
                                   (size_t)(T * C) * M->act_size, (l - 1) & 1);
        }
        void *x = xdev(M, l);
        int64_t lo = lg_params_get(pt, LG_P_ATTN_NORM, l)->offset;
        const lg_param *last = lg_params_get(pt, LG_P_WDOWN, l);
        unit_begin(M, lo, last->offset + last->numel);
        attn_forward(M, l, x, 1);  // recompute: only the layer input (and a full layer's attention) was kept
        mlp_backward(M, l);
        attn_backward(M, l, x);
        unit_end(M, lo, last->offset + last->numel);
    }
    M->ops->embedding_bwd(G(M, LG_P_EMBED, -1), M->dres, M->tokens, T, (int)C);
    if (M->grads_sharded) {
        lg_dist_reduce_owned_start(M->dist, M->gembed, M->embed_lo, M->embed_hi, pt->total);
        for (int b = 0; b < 2; b++)
            if (M->bucket_pending[b]) bucket_fold(M, M->bucket[b], M->bucket_lo[b], M->bucket_hi[b]);
        M->bucket_pending[0] = M->bucket_pending[1] = 0;
        bucket_fold(M, M->gembed, M->embed_lo, M->embed_hi);
    } else {
        const lg_param *e = lg_params_get(pt, LG_P_EMBED, -1);
        unit_end(M, e->offset, e->offset + e->numel);
    }
    M->ops->sync();
    return loss;
}

int64_t lg_model_buffer_bytes(const lg_config *cfg, size_t act_size, int B, int S, int64_t *kept_bytes,
                              int64_t *keep_att_bytes) {
    lg_model M;
    memset(&M, 0, sizeof M);
    M.cfg = cfg;
    M.m = &cfg->model;
    M.B = B;
    M.S = S;
    M.T = (int64_t)B * S;
    M.act_size = act_size;
    M.plan_only = 1;
    M.mlp_chunk = cfg->mlp_chunk > 0 && cfg->mlp_chunk < M.T ? cfg->mlp_chunk : (int)M.T;
    M.loss_chunk = cfg->loss_chunk > 0 && cfg->loss_chunk < M.T ? cfg->loss_chunk : (int)M.T;
    alloc_activations(&M);
    if (kept_bytes) *kept_bytes = M.kept_bytes;
    if (keep_att_bytes) *keep_att_bytes = M.keep_att_bytes;
    return M.act_bytes;
}
