// layout.c: see layout.h. Pure integer logic, shared by the CPU and CUDA backends.
#include "layout.h"

#include <stdio.h>

const char *lg_attn_kind_name(lg_attn_kind k) {
    switch (k) {
    case LG_ATTN_FULL: return "full";
    case LG_ATTN_SINK_WINDOW: return "sink_window";
    case LG_ATTN_BLOCK_SPARSE: return "block_sparse";
    }
    return "?";
}

void lg_attn_describe(const lg_attn *a, char *buf, int n) {
    switch (a->kind) {
    case LG_ATTN_FULL: snprintf(buf, n, "full"); break;
    case LG_ATTN_SINK_WINDOW: snprintf(buf, n, "sink_window(sink=%d,window=%d)", a->sink, a->window); break;
    case LG_ATTN_BLOCK_SPARSE:
        snprintf(buf, n, "block_sparse(block=%d,local=%d,stride=%d)", a->block, a->local_blocks, a->vert_stride);
        break;
    }
}

static int bs_step(const lg_attn *a, int n_kv_heads) {
    int s = a->vert_stride / (n_kv_heads > 0 ? n_kv_heads : 1);
    return s < 1 ? 1 : s;
}

static int bs_block_kept(const lg_attn *a, int n_kv_heads, int h, int64_t qb, int64_t kb) {
    if (kb > qb) return 0;
    if (qb - kb < a->local_blocks) return 1;
    return ((kb + (int64_t)h * bs_step(a, n_kv_heads)) % a->vert_stride) == 0;
}

int lg_attn_allows(const lg_attn *a, int n_kv_heads, int h, int64_t q, int64_t k) {
    if (k > q || k < 0) return 0;
    switch (a->kind) {
    case LG_ATTN_FULL: return 1;
    case LG_ATTN_SINK_WINDOW: return k < a->sink || q - k < a->window;
    case LG_ATTN_BLOCK_SPARSE: return bs_block_kept(a, n_kv_heads, h, q / a->block, k / a->block);
    }
    return 0;
}

int lg_attn_key_tiles(const lg_attn *a, int n_kv_heads, int h, int tile, int64_t T, int64_t qt, int32_t *kt) {
    int64_t q0 = qt * tile, q1 = q0 + tile - 1;
    if (q1 >= T) q1 = T - 1;
    int n = 0;
    switch (a->kind) {
    case LG_ATTN_FULL:
        for (int64_t t = 0; t <= qt; t++) kt[n++] = (int32_t)t;
        break;
    case LG_ATTN_SINK_WINDOW: {
        // Keys in [0, sink) and in [q0 - window + 1, q1]: tiles touching either range.
        int64_t sink_tiles = (a->sink + tile - 1) / tile;
        int64_t w0 = q0 - a->window + 1;
        if (w0 < 0) w0 = 0;
        int64_t wt0 = w0 / tile;
        for (int64_t t = 0; t <= qt; t++)
            if (t < sink_tiles || t >= wt0) kt[n++] = (int32_t)t;
        break;
    }
    case LG_ATTN_BLOCK_SPARSE: {
        int per = a->block / tile;  // tiles per block (tile divides block)
        int64_t qb = q0 / a->block;
        for (int64_t t = 0; t <= qt; t++)
            if (bs_block_kept(a, n_kv_heads, h, qb, (t * tile) / a->block)) kt[n++] = (int32_t)t;
        (void)per;
        break;
    }
    }
    return n;
}

int64_t lg_attn_pairs(const lg_attn *a, int n_kv_heads, int h, int64_t T) {
    int64_t n = 0;
    switch (a->kind) {
    case LG_ATTN_FULL: return T * (T + 1) / 2;
    case LG_ATTN_SINK_WINDOW:
        for (int64_t q = 0; q < T; q++) {
            int64_t win = q + 1 < a->window ? q + 1 : a->window;           // keys in (q-window, q]
            int64_t lo = q - win + 1;                                       // first window key
            int64_t sink = a->sink < lo ? a->sink : lo;                     // sink keys before the window
            n += win + (sink > 0 ? sink : 0);
        }
        return n;
    case LG_ATTN_BLOCK_SPARSE: {
        int64_t B = a->block, nb = (T + B - 1) / B;
        for (int64_t qb = 0; qb < nb; qb++) {
            int64_t qlen = (qb + 1) * B <= T ? B : T - qb * B;
            for (int64_t kb = 0; kb < qb; kb++)
                if (bs_block_kept(a, n_kv_heads, h, qb, kb)) n += qlen * B;
            n += qlen * (qlen + 1) / 2;  // diagonal block, causal
        }
        return n;
    }
    }
    return n;
}

int64_t lg_attn_kv_cache_tokens(const lg_attn *a, int n_kv_heads, int64_t T) {
    switch (a->kind) {
    case LG_ATTN_FULL: return T;
    case LG_ATTN_SINK_WINDOW: {
        int64_t k = (int64_t)a->sink + a->window;
        return k < T ? k : T;
    }
    case LG_ATTN_BLOCK_SPARSE: {
        // A decoder at position T-1 needs the local blocks plus every strided block, for the worst head.
        int64_t best = 0, B = a->block, qb = (T - 1) / B;
        for (int h = 0; h < n_kv_heads; h++) {
            int64_t keep = 0;
            for (int64_t kb = 0; kb <= qb; kb++)
                if (bs_block_kept(a, n_kv_heads, h, qb, kb)) keep += B;
            if (keep > T) keep = T;
            if (keep > best) best = keep;
        }
        return best;
    }
    }
    return T;
}
