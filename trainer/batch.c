// batch.c: see batch.h.
#include "batch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#ifdef LG_HAVE_HDF5
#if __has_include("../data/loader.h")
#include "../data/loader.h"
#include "../data/tokenizer.h"
#define LG_BATCH_LOADER 1
#endif
#endif

struct lg_batch_source {
    int synthetic;
    uint64_t seed, pos;  // synthetic: global sequence counter
    int rank, world, S, V, bos;
#ifdef LG_BATCH_LOADER
    lg_loader *loader;
#endif
};

static uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void lg_synthetic_sequence(uint64_t seed, uint64_t idx, int S, int V, int bos, int32_t *seq) {
    // Zipf(1) over ids [3, V): inverse-CDF on a precomputed harmonic table would cost V floats per call;
    // use the continuous approximation id = 3 + floor((V-3)^u) - 1, which is Zipf-like and cheap.
    int half = S / 2;
    seq[0] = bos;
    double lv = log((double)(V - 3));
    for (int i = 1; i < S; i++) {
        if (i > half) { seq[i] = seq[i - half]; continue; }
        uint64_t r = splitmix64(seed * 0x100000001b3ull ^ splitmix64(idx * 1315423911ull + (uint64_t)i));
        double u = (r >> 11) * (1.0 / 9007199254740992.0);
        int id = 3 + (int)floor(exp(u * lv)) - 1;
        seq[i] = id < 3 ? 3 : id >= V ? V - 1 : id;
    }
}

lg_batch_source *lg_batch_open(const lg_config *c, const char *spec, int rank, int world) {
    lg_batch_source *b = lg_calloc(1, sizeof *b);
    b->rank = rank;
    b->world = world;
    b->S = c->seq_len;
    b->V = c->model.vocab_size;
    b->bos = c->model.bos_id;
    b->seed = c->seed;
    if (!strcmp(spec, "synthetic")) {
        b->synthetic = 1;
        return b;
    }
#ifdef LG_BATCH_LOADER
    // The tokenizer the model was trained with, when we know it: shards made with another one are refused.
    uint64_t tok_hash = 0;
    const char *dirs[] = {c->tokenizer_dir, strcmp(c->init_from, "random") ? c->init_from : ""};
    for (int i = 0; i < 2 && !tok_hash; i++) {
        if (!dirs[i][0]) continue;
        char *p = lg_path_join(dirs[i], "tokenizer.model");
        if (lg_file_exists(p)) tok_hash = lg_tok_file_hash(p);
        free(p);
    }
    b->loader = lg_loader_open(spec, c->seq_len, c->model.vocab_size, tok_hash, rank, world, c->seed, 2);
    return b;
#else
    lg_die("data.train = %s: this lgtrain was built without HDF5/zstd shard support (install libhdf5-dev and "
           "libzstd-dev and rebuild), or use data.train = synthetic", spec);
#endif
}

uint64_t lg_batch_n_sequences(const lg_batch_source *b) {
#ifdef LG_BATCH_LOADER
    if (b->loader) return lg_loader_n_sequences(b->loader);
#endif
    (void)b;
    return 0;
}

void lg_batch_next(lg_batch_source *b, int32_t *seq) {
    if (b->synthetic) {
        // Ranks take interleaved global indices, so the global order does not depend on the world size.
        lg_synthetic_sequence(b->seed, b->pos + (uint64_t)b->rank, b->S, b->V, b->bos, seq);
        b->pos += (uint64_t)b->world;
        return;
    }
#ifdef LG_BATCH_LOADER
    lg_loader_next(b->loader, seq);
#endif
}

void lg_batch_get_cursor(const lg_batch_source *b, uint64_t *epoch, uint64_t *pos) {
    if (b->synthetic) { *epoch = 0; *pos = b->pos; return; }
#ifdef LG_BATCH_LOADER
    lg_data_cursor cur = lg_loader_cursor(b->loader);
    *epoch = cur.epoch;
    *pos = cur.position;
#endif
}

void lg_batch_set_cursor(lg_batch_source *b, uint64_t epoch, uint64_t pos) {
    if (b->synthetic) { b->pos = pos; (void)epoch; return; }
#ifdef LG_BATCH_LOADER
    lg_data_cursor cur = {epoch, pos};
    lg_loader_seek(b->loader, cur);
#endif
}

void lg_batch_close(lg_batch_source *b) {
#ifdef LG_BATCH_LOADER
    if (b->loader) lg_loader_close(b->loader);
#endif
    free(b);
}
