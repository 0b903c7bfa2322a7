// loader.c: see loader.h.
#include "loader.h"

#include <dirent.h>
#include <glob.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../trainer/util.h"

typedef struct {
    uint64_t row0;   // first row in its shard
    uint32_t shard;
    uint32_t nrows;
} block;

struct lg_loader {
    char *spec;
    int n_files;
    lg_shard **sh;
    lg_data_meta meta;
    int S, rank, world, prefetch;
    int64_t vocab;
    uint64_t seed, N;
    block *blocks;
    uint64_t n_blocks;
    // Touched only by the decoding thread (the worker, or the caller when prefetch == 0):
    int tab_valid;
    uint64_t tab_epoch;
    uint64_t *order;         // (n_blocks) block ids in this epoch's order
    uint64_t *start;         // (n_blocks + 1) first epoch position of each ordered block
    int64_t cache_block;     // block whose rows are in cache_raw (-1 none)
    uint8_t *cache_raw;      // (max block rows, S) as stored
    uint32_t *cache_crc;     // (max block rows)
    int cache_has_crc;
    int64_t perm_block;      // (block, epoch) whose row permutation is in perm
    uint64_t perm_epoch;
    uint32_t *perm;          // (max block rows)
    // Shared with the worker under mu:
    uint64_t base;           // G0: stream position this rank started from
    uint64_t k_cons, k_prod; // sequences returned / decoded since base
    uint64_t gen;            // bumped by seek: stale decodes are dropped
    int stop, has_thread;
    int32_t *ring;           // (prefetch, S)
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv_data, cv_space;
};

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static uint64_t mix3(uint64_t a, uint64_t b, uint64_t c) {
    uint64_t s = a;
    uint64_t x = splitmix64(&s) ^ b;
    s = x;
    x = splitmix64(&s) ^ c;
    s = x;
    return splitmix64(&s);
}
// Uniform-enough integer in [0, n) (multiply-shift; the bias is < n / 2^64).
static uint64_t below(uint64_t *s, uint64_t n) { return (uint64_t)(((unsigned __int128)splitmix64(s) * n) >> 64); }

// ---- spec -> files ----
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int is_h5(const char *name) {
    size_t n = strlen(name);
    return n > 3 && !strcmp(name + n - 3, ".h5");
}

char **lg_data_list_files(const char *spec, int *n_out) {
    int n = 0, cap = 16;
    char **v = lg_malloc((size_t)cap * sizeof *v);
    if (!spec || !spec[0]) lg_die("data spec is empty: give a directory, a glob, or a comma-separated list of .h5 shards");
    if (strchr(spec, ',')) {
        char *s = lg_strdup(spec), *save = NULL;
        for (char *t = strtok_r(s, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            while (*t == ' ') t++;
            if (!*t) continue;
            if (!lg_file_exists(t)) lg_die("%s: no such shard file (listed in data spec '%s')", t, spec);
            if (n == cap) { cap *= 2; v = lg_realloc(v, (size_t)cap * sizeof *v); }
            v[n++] = lg_strdup(t);
        }
        free(s);
    } else if (lg_dir_exists(spec)) {
        DIR *d = opendir(spec);
        if (!d) lg_die("%s: cannot list directory", spec);
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!is_h5(e->d_name)) continue;
            if (n == cap) { cap *= 2; v = lg_realloc(v, (size_t)cap * sizeof *v); }
            v[n++] = lg_path_join(spec, e->d_name);
        }
        closedir(d);
        if (!n) lg_die("%s: directory has no *.h5 shards (make them with `lgdata pack`)", spec);
        qsort(v, (size_t)n, sizeof *v, cmp_str);
    } else if (strpbrk(spec, "*?[")) {
        glob_t g;
        int rc = glob(spec, 0, NULL, &g);
        if (rc == GLOB_NOMATCH || (rc == 0 && g.gl_pathc == 0)) lg_die("data spec '%s' matches no file", spec);
        if (rc != 0) lg_die("data spec '%s': glob failed (%d)", spec, rc);
        for (size_t i = 0; i < g.gl_pathc; i++) {
            if (n == cap) { cap *= 2; v = lg_realloc(v, (size_t)cap * sizeof *v); }
            v[n++] = lg_strdup(g.gl_pathv[i]);
        }
        globfree(&g);
        qsort(v, (size_t)n, sizeof *v, cmp_str);
    } else {
        if (!lg_file_exists(spec)) lg_die("%s: no such shard file or directory", spec);
        v[n++] = lg_strdup(spec);
    }
    if (!n) lg_die("data spec '%s' names no file", spec);
    *n_out = n;
    return v;
}

// Add one shard's attributes to the summary; the first shard sets what the others must agree with.
static void meta_add(lg_data_meta *m, const lg_shard_meta *s, const char *path, const char *first) {
    if (m->n_files == 0) {
        m->vocab_size = s->vocab_size; m->bos_id = s->bos_id; m->eos_id = s->eos_id;
        m->seq_len = s->seq_len; m->tokenizer_hash = s->tokenizer_hash; m->token_bytes = s->token_bytes;
    } else {
#define AGREE(f, name)                                                                                            \
    if (s->f != m->f)                                                                                             \
        lg_die("%s: %s is %lld but %s has %lld: all shards of one data spec must agree", path, name,              \
               (long long)s->f, first, (long long)m->f);
        AGREE(seq_len, "seq_len")
        AGREE(vocab_size, "vocab_size")
        AGREE(bos_id, "bos_id")
        AGREE(eos_id, "eos_id")
#undef AGREE
        if (s->tokenizer_hash != m->tokenizer_hash)
            lg_die("%s: tokenizer_hash 0x%016llx but %s has 0x%016llx: the shards come from different tokenizers", path,
                   (unsigned long long)s->tokenizer_hash, first, (unsigned long long)m->tokenizer_hash);
        if (s->token_bytes > m->token_bytes) m->token_bytes = s->token_bytes;
    }
    m->n_files++;
    m->n_sequences += s->n_sequences;
    m->n_tokens += s->n_tokens;
    m->n_docs += s->n_docs;
}

void lg_data_describe(const char *spec, lg_data_meta *out) {
    memset(out, 0, sizeof *out);
    int n;
    char **files = lg_data_list_files(spec, &n);
    for (int i = 0; i < n; i++) {
        lg_shard *s = lg_shard_open(files[i]);
        meta_add(out, lg_shard_get_meta(s), files[i], files[0]);
        lg_shard_close(s);
    }
    for (int i = 0; i < n; i++) free(files[i]);
    free(files);
}

// ---- order ----
static void ensure_epoch(lg_loader *L, uint64_t e) {
    if (L->tab_valid && L->tab_epoch == e) return;
    for (uint64_t i = 0; i < L->n_blocks; i++) L->order[i] = i;
    uint64_t s = mix3(L->seed, e, 0xB10C5EEDull);
    for (uint64_t i = L->n_blocks; i > 1; i--) {  // Fisher-Yates
        uint64_t j = below(&s, i), t = L->order[i - 1];
        L->order[i - 1] = L->order[j];
        L->order[j] = t;
    }
    L->start[0] = 0;
    for (uint64_t i = 0; i < L->n_blocks; i++) L->start[i + 1] = L->start[i] + L->blocks[L->order[i]].nrows;
    L->tab_epoch = e;
    L->tab_valid = 1;
}

// Stream item g -> (block id, row inside the block).
static void locate(lg_loader *L, uint64_t g, uint64_t *blk, uint32_t *inner) {
    uint64_t e = g / L->N, p = g % L->N;
    ensure_epoch(L, e);
    uint64_t lo = 0, hi = L->n_blocks;  // largest i with start[i] <= p
    while (hi - lo > 1) {
        uint64_t mid = (lo + hi) / 2;
        if (L->start[mid] <= p) lo = mid; else hi = mid;
    }
    uint64_t b = L->order[lo];
    uint32_t o = (uint32_t)(p - L->start[lo]), n = L->blocks[b].nrows;
    if (L->perm_block != (int64_t)b || L->perm_epoch != e) {
        for (uint32_t i = 0; i < n; i++) L->perm[i] = i;
        uint64_t s = mix3(L->seed ^ 0x5EEDF00Dull, e, b);
        for (uint32_t i = n; i > 1; i--) {
            uint32_t j = (uint32_t)below(&s, i), t = L->perm[i - 1];
            L->perm[i - 1] = L->perm[j];
            L->perm[j] = t;
        }
        L->perm_block = (int64_t)b;
        L->perm_epoch = e;
    }
    *blk = b;
    *inner = L->perm[o];
}

static void decode(lg_loader *L, uint64_t g, int32_t *out) {
    uint64_t b;
    uint32_t inner;
    locate(L, g, &b, &inner);
    const block *B = &L->blocks[b];
    lg_shard *sh = L->sh[B->shard];
    int tb = lg_shard_get_meta(sh)->token_bytes;
    if (L->cache_block != (int64_t)b) {
        L->cache_block = -1;
        L->cache_has_crc = lg_shard_read_rows(sh, B->row0, B->nrows, L->cache_raw, L->cache_crc);
        L->cache_block = (int64_t)b;
    }
    const uint8_t *raw = L->cache_raw + (size_t)inner * (size_t)L->S * (size_t)tb;
    lg_shard_check_row(sh, B->row0 + inner, raw, L->cache_has_crc, L->cache_has_crc ? L->cache_crc[inner] : 0, out);
}

static void *worker(void *arg) {
    lg_loader *L = arg;
    pthread_mutex_lock(&L->mu);
    for (;;) {
        while (!L->stop && L->k_prod - L->k_cons >= (uint64_t)L->prefetch) pthread_cond_wait(&L->cv_space, &L->mu);
        if (L->stop) break;
        uint64_t gen = L->gen, k = L->k_prod;
        uint64_t g = L->base + (uint64_t)L->rank + k * (uint64_t)L->world;
        int32_t *slot = L->ring + (size_t)(k % (uint64_t)L->prefetch) * (size_t)L->S;
        pthread_mutex_unlock(&L->mu);
        decode(L, g, slot);
        pthread_mutex_lock(&L->mu);
        if (gen == L->gen) {
            L->k_prod++;
            pthread_cond_broadcast(&L->cv_data);
        }
    }
    pthread_mutex_unlock(&L->mu);
    return NULL;
}

lg_loader *lg_loader_open(const char *spec, int seq_len, int vocab_size, uint64_t tok_hash, int rank, int world,
                          uint64_t seed, int prefetch) {
    if (world < 1 || rank < 0 || rank >= world) lg_die("data loader: rank %d of world %d is invalid", rank, world);
    if (seq_len < 1 || vocab_size < 1) lg_die("data loader: seq_len %d / vocab_size %d must be positive", seq_len, vocab_size);
    if (prefetch < 0) prefetch = 0;
    lg_loader *L = lg_calloc(1, sizeof *L);
    L->spec = lg_strdup(spec);
    L->S = seq_len;
    L->vocab = vocab_size;
    L->rank = rank;
    L->world = world;
    L->seed = seed;
    L->prefetch = prefetch;
    char **files = lg_data_list_files(spec, &L->n_files);
    L->sh = lg_malloc((size_t)L->n_files * sizeof *L->sh);
    uint64_t max_rows = 1, cap_blocks = 0;
    for (int i = 0; i < L->n_files; i++) {
        lg_shard *s = L->sh[i] = lg_shard_open(files[i]);
        const lg_shard_meta *m = lg_shard_get_meta(s);
        if (m->seq_len != seq_len)
            lg_die("%s: seq_len is %lld, the run wants %d (data.seq_len): re-pack with `lgdata pack --seq-len %d`", files[i],
                   (long long)m->seq_len, seq_len, seq_len);
        if (m->vocab_size > vocab_size)
            lg_die("%s: vocab_size is %lld, larger than the model's %d: the shard was made with another tokenizer",
                   files[i], (long long)m->vocab_size, vocab_size);
        if (tok_hash && m->tokenizer_hash != tok_hash)
            lg_die("%s: tokenizer_hash is 0x%016llx, the run's tokenizer.model hashes to 0x%016llx: the shard was made "
                   "with another tokenizer (0 = unknown: packed from raw ids without --tokenizer)",
                   files[i], (unsigned long long)m->tokenizer_hash, (unsigned long long)tok_hash);
        meta_add(&L->meta, m, files[i], files[0]);
        uint64_t cr = lg_shard_chunk_rows(s);
        if (cr > 0xFFFFFFFFull) cr = 0xFFFFFFFFull;
        cap_blocks += (m->n_sequences + cr - 1) / cr;
    }
    L->N = L->meta.n_sequences;
    if (L->N == 0) lg_die("data spec '%s': the shards hold no sequences", spec);
    L->blocks = lg_malloc(cap_blocks * sizeof *L->blocks);
    for (int i = 0; i < L->n_files; i++) {
        const lg_shard_meta *m = lg_shard_get_meta(L->sh[i]);
        uint64_t cr = lg_shard_chunk_rows(L->sh[i]);
        if (cr > 0xFFFFFFFFull) cr = 0xFFFFFFFFull;
        for (uint64_t r = 0; r < m->n_sequences; r += cr) {
            uint64_t n = m->n_sequences - r < cr ? m->n_sequences - r : cr;
            block b = {r, (uint32_t)i, (uint32_t)n};
            L->blocks[L->n_blocks++] = b;
            if (n > max_rows) max_rows = n;
        }
    }
    for (int i = 0; i < L->n_files; i++) free(files[i]);
    free(files);
    L->order = lg_malloc(L->n_blocks * sizeof *L->order);
    L->start = lg_malloc((L->n_blocks + 1) * sizeof *L->start);
    L->cache_block = L->perm_block = -1;
    L->cache_raw = lg_malloc(max_rows * (size_t)seq_len * (size_t)L->meta.token_bytes);
    L->cache_crc = lg_malloc(max_rows * sizeof *L->cache_crc);
    L->perm = lg_malloc(max_rows * sizeof *L->perm);
    if (prefetch > 0) {
        L->ring = lg_malloc((size_t)prefetch * (size_t)seq_len * sizeof *L->ring);
        pthread_mutex_init(&L->mu, NULL);
        pthread_cond_init(&L->cv_data, NULL);
        pthread_cond_init(&L->cv_space, NULL);
        if (pthread_create(&L->th, NULL, worker, L) != 0) lg_die("data loader: pthread_create failed");
        L->has_thread = 1;
    }
    return L;
}

void lg_loader_next(lg_loader *L, int32_t *tokens) {
    if (!L->has_thread) {
        decode(L, L->base + (uint64_t)L->rank + L->k_cons * (uint64_t)L->world, tokens);
        L->k_cons++;
        return;
    }
    pthread_mutex_lock(&L->mu);
    while (L->k_prod == L->k_cons) pthread_cond_wait(&L->cv_data, &L->mu);
    memcpy(tokens, L->ring + (size_t)(L->k_cons % (uint64_t)L->prefetch) * (size_t)L->S, (size_t)L->S * sizeof *tokens);
    L->k_cons++;
    pthread_cond_signal(&L->cv_space);
    pthread_mutex_unlock(&L->mu);
}

lg_data_cursor lg_loader_cursor(const lg_loader *L) {
    uint64_t g = L->base + L->k_cons * (uint64_t)L->world;
    lg_data_cursor c = {g / L->N, g % L->N};
    return c;
}

void lg_loader_seek(lg_loader *L, lg_data_cursor c) {
    if (c.position >= L->N)
        lg_die("data cursor position %llu is not below the %llu sequences of '%s': the data changed since the checkpoint "
               "was written (resume needs the same shards)",
               (unsigned long long)c.position, (unsigned long long)L->N, L->spec);
    if (c.epoch > UINT64_MAX / L->N - 1) lg_die("data cursor epoch %llu is out of range", (unsigned long long)c.epoch);
    uint64_t g = c.epoch * L->N + c.position;
    if (!L->has_thread) {
        L->base = g;
        L->k_cons = 0;
        return;
    }
    pthread_mutex_lock(&L->mu);
    L->gen++;
    L->base = g;
    L->k_cons = L->k_prod = 0;
    pthread_cond_broadcast(&L->cv_space);
    pthread_mutex_unlock(&L->mu);
}

uint64_t lg_loader_n_sequences(const lg_loader *L) { return L->N; }
const lg_data_meta *lg_loader_meta(const lg_loader *L) { return &L->meta; }

void lg_loader_close(lg_loader *L) {
    if (!L) return;
    if (L->has_thread) {
        pthread_mutex_lock(&L->mu);
        L->stop = 1;
        pthread_cond_broadcast(&L->cv_space);
        pthread_mutex_unlock(&L->mu);
        pthread_join(L->th, NULL);
        pthread_mutex_destroy(&L->mu);
        pthread_cond_destroy(&L->cv_data);
        pthread_cond_destroy(&L->cv_space);
    }
    for (int i = 0; i < L->n_files; i++) lg_shard_close(L->sh[i]);
    free(L->sh); free(L->blocks); free(L->order); free(L->start);
    free(L->cache_raw); free(L->cache_crc); free(L->perm); free(L->ring); free(L->spec);
    free(L);
}
