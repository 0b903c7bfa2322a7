// model.h: the hybrid Llama (GQA, RMSNorm, half-split RoPE, SwiGLU, per-layer attention layout) on top of
// the op interface. Forward/backward with per-layer recompute: only each layer's input is kept; the layer
// is recomputed during backward. The MLP and the loss run in sequence chunks (never a T x vocab tensor).
#pragma once
#include <stdint.h>

#include "../kernels/ops.h"
#include "config.h"
#include "params.h"

struct lg_dist_s;

typedef struct {
    const lg_config *cfg;
    const lg_model_cfg *m;
    const lg_ops *ops;
    lg_param_table pt;
    int B, S;                 // micro-batch shape the buffers are sized for
    int64_t T;                // B * S
    int mlp_chunk, loss_chunk;

    float *master;            // (pt.total) fp32 master weights on the host: import/export/checkpoint I/O
    float *dmaster;           // fp32 master weights [mlo, mhi) in backend memory: the optimizer updates these
                              // (cpu: aliases master, whole; cuda: a device buffer, the rank's ZeRO shard when
                              // master_sharded, else whole)
    int64_t mlo, mhi;
    int master_sharded;
    void *w;                  // (pt.total) weights in the backend's param dtype (cpu: aliases master)
    float *grad;              // fp32 gradients [glo, ghi) in backend memory, accumulated over micro-batches:
                              // the whole table, or the rank's shard under ZeRO-2 (grads_sharded)
    int64_t glo, ghi;
    int grads_sharded;
    // ZeRO-2 buckets (grads_sharded): the backward of each unit (final norm + LM head, each layer) adds into
    // one of two alternating buckets; when the unit is done the bucket is reduced onto its owners, and the
    // owned part is added into grad just before the bucket is reused (so the reduction overlaps the next
    // unit's backward) or when the backward ends. The embedding has a bucket of its own (a tied LM head adds
    // into it first).
    float *bucket[2];
    int64_t bucket_lo[2], bucket_hi[2];
    int bucket_pending[2], cur_bucket;
    float *gembed;
    int64_t embed_lo, embed_hi;
    struct lg_dist_s *dist;   // the collectives of the sharded modes (NULL: one replica, nothing sharded)

    // activations, backend memory
    void *xs;                 // (L+1, T, C) input of each layer; xs[L] = final hidden state
                              // (offload: (2, T, C) device slots; the inputs of layers 0..L-1 in xs_host)
    int offload;              // memory.offload_activations
    void *xs_host;            // (L, T, C) page-locked host memory (offload)
    int64_t host_bytes;       // its size
    void *h;                  // (T, C) normed input
    float *rstd1, *rstd2;     // (T)
    void *q, *att;            // (T, H*D)
    void *k, *v;              // (T, KVH*D)
    float *lse;               // (B, H, S)
    void **att_keep;          // per layer: the full layers' attention output (T, H*D) kept for the backward
    float **lse_keep;         // (B, H, S) their LSE (memory.keep_full_attention; NULL entries elsewhere)
    void *x2;                 // (T, C) residual after attention
    void *h2;                 // (T, C) normed x2
    void *g, *u, *a;          // (mlp_chunk, F)
    void *mo;                 // (mlp_chunk, C)
    void *logits;             // (loss_chunk, V)
    float *rstdf;             // (T)
    // gradients of activations
    void *dres;               // (T, C) gradient of the residual stream
    void *dh;                 // (T, C)
    void *dq, *datt;          // (T, H*D)
    void *dk, *dv;            // (T, KVH*D)
    void *dg, *du, *da;       // (mlp_chunk, F)
    float *rope_cos, *rope_sin;  // (S, D/2) fp32 in backend memory
    int32_t *tokens;          // (T) backend memory
    int32_t *targets;         // (T) backend memory, -1 = no target
    // Called by lg_model_fwd_bwd as soon as grad[lo, hi) holds its final value for this micro-batch (the LM
    // head and final norm first, then each layer from the top, the embedding last; the ranges tile the
    // buffer), so the trainer can start reducing them while the backward of the layers below runs.
    void (*grads_ready)(void *ctx, int64_t lo, int64_t hi);
    void *grads_ready_ctx;
    void *arena;              // every activation buffer above, carved from one allocation
    int64_t arena_bytes;
    size_t arena_used;
    int64_t act_bytes;        // bytes of all activation buffers (what --plan predicts)
    int64_t kept_bytes;       // of which the kept layer inputs xs
    int64_t keep_att_bytes;   // of which the kept attention outputs + LSE of full layers
    size_t act_size;
    int plan_only;            // count buffers without allocating (lg_model_buffer_bytes)
} lg_model;

// Build the parameter table, allocate weights/grads/activations for micro-batches of B x S; every buffer
// whole (one replica).
void lg_model_init(lg_model *M, const lg_config *cfg, const lg_ops *ops, int B, int S);
// Data-parallel rank under cfg->zero_stage with dist: ZeRO >= 1 on a device backend keeps only this rank's
// shard of the fp32 master (the weights are all-gathered in bf16 after each update); ZeRO-2 also keeps only
// the shard of the gradients (buckets, above). One rank, or dist NULL: as lg_model_init.
void lg_model_init_dist(lg_model *M, const lg_config *cfg, const lg_ops *ops, int B, int S, struct lg_dist_s *dist);
void lg_model_free(lg_model *M);
// Cast dmaster (fp32, backend) into the weights the ops use (cuda: bf16); sharded master: cast the shard and
// all-gather the weights (collective). Call after each optimizer step (after the fp32 all-gather of a whole
// master updated by shards) and after loading the master.
void lg_model_sync_weights(lg_model *M);
// Host master [mlo, mhi) -> dmaster (after import / checkpoint load). No-op on cpu (one buffer).
void lg_model_master_from_host(lg_model *M);
// dmaster -> host master (before export / save). Collective when the master is sharded: on return rank 0
// holds the whole master, the other ranks their shard.
void lg_model_master_to_host(lg_model *M);
// Sharded master, keep_whole == 0: release the host copy's pages outside this rank's shard (only rank 0 needs the
// whole copy, to write checkpoints and exports). Call after the master is on the device.
void lg_model_trim_host_master(lg_model *M, int keep_whole);
// Pointers at flat index i of the master and gradient buffers (i must be inside [mlo, mhi) / [glo, ghi)).
float *lg_model_master_at(const lg_model *M, int64_t i);
float *lg_model_grad_at(const lg_model *M, int64_t i);
void lg_model_zero_grad(lg_model *M);

// Forward + backward on one micro-batch. tokens, targets: (B*S) host arrays; target < 0 is ignored.
// Gradients are ADDED into M->grad scaled by dscale (1 / number of target tokens in the whole step).
// Returns the SUM of the per-token losses of this micro-batch.
double lg_model_fwd_bwd(lg_model *M, const int32_t *tokens, const int32_t *targets, float dscale);
// Bytes lg_model_init allocates for activations (and, in *kept_bytes, of which the kept layer inputs; in
// *keep_att_bytes, the kept attention outputs of full layers),
// without allocating: the planner's figure.
int64_t lg_model_buffer_bytes(const lg_config *cfg, size_t act_size, int B, int S, int64_t *kept_bytes,
                              int64_t *keep_att_bytes);
// How many full layers keep their attention output (memory.keep_full_attention, capped by keep_attn_limit).
int lg_keep_attn_layers(const lg_config *c);
// Elements of one ZeRO-2 gradient bucket: the largest unit (a layer, or the final norm + untied LM head).
int64_t lg_model_bucket_elems(const lg_param_table *pt, int n_layers);
// Forward only. Writes logits (B*S, V) fp32 to the host array when logits != NULL, and returns the loss sum.
double lg_model_forward(lg_model *M, const int32_t *tokens, const int32_t *targets, float *logits);
