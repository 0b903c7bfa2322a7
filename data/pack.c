// pack.c: see pack.h.
#include "pack.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../trainer/util.h"
#include "progress.h"
#include "shard.h"
#include "tokstream.h"

void lg_pack_defaults(lg_pack_opts *o) {
    memset(o, 0, sizeof *o);
    o->shuffle = 1;
    o->zstd_level = 3;
    o->short_keep = 1.0;
    o->vocab_size = o->bos_id = o->eos_id = -1;
    o->doc_sep = -1;
}

static uint64_t smix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
// Deterministic uniform [0,1) from (seed, salt, source, doc).
static double unit(uint64_t seed, uint64_t salt, uint64_t src, uint64_t doc) {
    uint64_t h = smix(smix(smix(seed ^ salt) ^ src) ^ doc);
    return (double)(h >> 11) * (1.0 / 9007199254740992.0);
}

typedef struct { uint32_t src; uint64_t doc; } docref;

typedef struct {
    const lg_pack_opts *o;
    const char *dir;
    lg_shard_meta meta;
    lg_shard_writer *w;
    int shard_idx;
    uint32_t *seq;       // (seq_len) the sequence being filled
    int64_t fill;
    int64_t pend[64];    // columns of document starts inside the current sequence
    int n_pend, pend_overflow;
    uint64_t rows, shard_rows_total, dropped;
    uint64_t n_shards;
    uint64_t per_shard;
    uint64_t *pend_big;  // when a sequence holds more than 64 document starts
    size_t pend_big_cap;
} packer;

static void pend_add(packer *p, int64_t col) {
    if (p->n_pend < 64) { p->pend[p->n_pend++] = col; return; }
    if ((size_t)(p->n_pend - 64) >= p->pend_big_cap) {
        p->pend_big_cap = p->pend_big_cap ? 2 * p->pend_big_cap : 1024;
        p->pend_big = lg_realloc(p->pend_big, p->pend_big_cap * sizeof *p->pend_big);
    }
    p->pend_big[p->n_pend - 64] = (uint64_t)col;
    p->n_pend++;
}

static void emit_seq(packer *p) {
    if (!p->w) {
        char name[64];
        snprintf(name, sizeof name, "shard-%05d.h5", p->shard_idx++);
        char *path = lg_path_join(p->dir, name);
        p->w = lg_shard_writer_open(path, &p->meta);
        free(path);
        p->n_shards++;
    }
    uint64_t row = lg_shard_writer_rows(p->w);
    for (int i = 0; i < p->n_pend; i++) {
        uint64_t col = i < 64 ? (uint64_t)p->pend[i] : p->pend_big[i - 64];
        lg_shard_writer_doc_start(p->w, row * (uint64_t)p->meta.seq_len + col);
    }
    p->n_pend = 0;
    lg_shard_writer_append(p->w, p->seq);
    p->rows++;
    p->fill = 0;
    if (lg_shard_writer_rows(p->w) == p->per_shard) {
        lg_shard_writer_close(p->w);
        p->w = NULL;
    }
}

static void put(packer *p, uint32_t tok) {
    p->seq[p->fill++] = tok;
    if (p->fill == p->meta.seq_len) emit_seq(p);
}

// Remove earlier shards in dir (with --force) or refuse, so that old files never mix into a new set.
static void prepare_dir(const char *dir, int force) {
    lg_mkdirs(dir);
    DIR *d = opendir(dir);
    if (!d) lg_die("%s: cannot list directory", dir);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 3 || strcmp(e->d_name + n - 3, ".h5")) continue;
        char *p = lg_path_join(dir, e->d_name);
        if (!force) lg_die("%s: output directory already holds shards (%s); remove them or pass --force", dir, p);
        if (unlink(p) != 0) lg_die("%s: cannot remove old shard", p);
        free(p);
    }
    closedir(d);
}

static void write_split(const lg_pack_opts *o, const lg_shard_meta *meta, const char *dir, lg_tokstream **src,
                        docref *docs, uint64_t n_docs, const char *name, lg_progress *pr, double *done) {
    packer p;
    memset(&p, 0, sizeof p);
    p.o = o;
    p.dir = dir;
    p.meta = *meta;
    p.seq = lg_malloc((size_t)meta->seq_len * sizeof *p.seq);
    p.per_shard = o->shard_seqs ? o->shard_seqs : ((1ull << 28) / (uint64_t)meta->seq_len ? (1ull << 28) / (uint64_t)meta->seq_len : 1);
    uint64_t tokens_in = 0;
    for (uint64_t i = 0; i < n_docs; i++) {
        const lg_tokstream *s = src[docs[i].src];
        uint64_t a = s->doc_start[docs[i].doc], b = s->doc_end[docs[i].doc];
        pend_add(&p, p.fill);
        put(&p, (uint32_t)meta->bos_id);
        for (uint64_t k = a; k < b; k++) put(&p, (uint32_t)lg_tokstream_get(s, k));
        if (o->add_eos) put(&p, (uint32_t)meta->eos_id);
        tokens_in += b - a + 1 + (o->add_eos ? 1 : 0);
        *done += (double)(b - a);
        lg_progress_update(pr, *done);
    }
    p.dropped = (uint64_t)p.fill;
    p.n_pend = 0;
    if (p.w) lg_shard_writer_close(p.w);
    if (!o->quiet)
        fprintf(stderr, "pack: %s: %llu documents -> %llu sequences of %lld tokens in %llu shard(s) under %s (%llu tail tokens dropped)\n",
                name, (unsigned long long)n_docs, (unsigned long long)p.rows, (long long)meta->seq_len,
                (unsigned long long)p.n_shards, dir, (unsigned long long)p.dropped);
    if (n_docs && !p.rows)
        lg_warn("pack: %s: %llu tokens do not fill one sequence of %lld: no %s shard written", name,
                (unsigned long long)tokens_in, (long long)meta->seq_len, name);
    free(p.seq);
    free(p.pend_big);
}

static void shuffle(docref *d, uint64_t n, uint64_t seed) {
    uint64_t s = smix(seed ^ 0xD0C5u);
    for (uint64_t i = n; i > 1; i--) {
        s = smix(s);
        uint64_t j = (uint64_t)(((unsigned __int128)s * i) >> 64);
        docref t = d[i - 1];
        d[i - 1] = d[j];
        d[j] = t;
    }
}

void lg_pack(const lg_pack_opts *o, int n_in, char **in) {
    if (o->seq_len < 2) lg_die("pack: --seq-len must be at least 2 (got %lld)", (long long)o->seq_len);
    if (o->val_frac < 0 || o->val_frac >= 1) lg_die("pack: --val-frac must be in [0, 1) (got %g)", o->val_frac);
    if (o->short_keep < 0 || o->short_keep > 1) lg_die("pack: --short-keep must be in [0, 1] (got %g)", o->short_keep);
    if (o->zstd_level < 0 || o->zstd_level > 22) lg_die("pack: --level must be 0..22 (got %d)", o->zstd_level);
    if (n_in < 1) lg_die("pack: no input token streams");
    int64_t vocab = o->vocab_size, bos = o->bos_id, eos = o->eos_id;
    uint64_t hash = o->tokenizer_hash;
    const char *meta_from = "the command line";
    // .lgt headers first: they fix the metadata that raw streams are split with.
    lg_tokstream **src = lg_calloc((size_t)n_in, sizeof *src);
    for (int i = 0; i < n_in; i++) {
        size_t l = strlen(in[i]);
        if (l < 4 || strcmp(in[i] + l - 4, ".lgt")) continue;
        lg_tokstream *s = src[i] = lg_tokstream_open(in[i], NULL, -2);
#define AGREE(opt, field, name)                                                                                \
    if (opt >= 0 && s->field != opt)                                                                           \
        lg_die("%s: %s is %lld but %s says %lld: the inputs come from different tokenizers", in[i], name,     \
               (long long)s->field, meta_from, (long long)opt);                                               \
    opt = s->field;
        AGREE(vocab, vocab_size, "vocab_size")
        AGREE(bos, bos_id, "bos_id")
        AGREE(eos, eos_id, "eos_id")
#undef AGREE
        if (hash && s->tokenizer_hash != hash)
            lg_die("%s: tokenizer hash 0x%016llx but %s says 0x%016llx: the inputs come from different tokenizers", in[i],
                   (unsigned long long)s->tokenizer_hash, meta_from, (unsigned long long)hash);
        hash = s->tokenizer_hash;
        meta_from = in[i];
    }
    if (vocab < 1) lg_die("pack: raw token inputs need --vocab V and --bos ID (or --tokenizer tokenizer.model)");
    if (bos < 0 || bos >= vocab) lg_die("pack: documents are joined with BOS: needs --bos ID in 0..%lld (got %lld)", (long long)vocab - 1, (long long)bos);
    if (o->add_eos && (eos < 0 || eos >= vocab)) lg_die("pack: --eos needs an EOS id in 0..%lld (got %lld)", (long long)vocab - 1, (long long)eos);
    int64_t sep = o->doc_sep == -1 ? bos : o->doc_sep;
    for (int i = 0; i < n_in; i++)
        if (!src[i]) src[i] = lg_tokstream_open(in[i], o->raw_dtype, sep < 0 ? -1 : sep);

    // Check every id, choose documents.
    uint64_t total_docs = 0, total_tok = 0;
    for (int i = 0; i < n_in; i++) { total_docs += src[i]->n_docs; total_tok += src[i]->n_tokens; }
    docref *train = lg_malloc((total_docs ? total_docs : 1) * sizeof *train);
    docref *val = lg_malloc((total_docs ? total_docs : 1) * sizeof *val);
    uint64_t n_train = 0, n_val = 0;
    lg_progress pr;
    lg_progress_start(&pr, "pack: check ids", "tokens", (double)total_tok, o->quiet);
    double done = 0;
    for (int i = 0; i < n_in; i++) {
        lg_tokstream *s = src[i];
        for (uint64_t k = 0; k < s->n_tokens; k++) {
            uint64_t v = lg_tokstream_get(s, k);
            if (v >= (uint64_t)vocab)
                lg_die("%s: token %llu is %lld, not below vocab_size %lld (wrong --vocab or --dtype, or another tokenizer)",
                       in[i], (unsigned long long)k, (long long)(int64_t)v, (long long)vocab);
            if ((k & 0xFFFFF) == 0) lg_progress_update(&pr, done + (double)k);
        }
        done += (double)s->n_tokens;
        uint64_t kept = 0, kept_tok = 0, short_dropped = 0, n_long = 0;
        for (uint64_t d = 0; d < s->n_docs; d++) {
            uint64_t len = s->doc_end[d] - s->doc_start[d];
            if (len == 0) continue;
            int is_long = (int64_t)len >= o->long_min;
            n_long += is_long;
            if (!is_long && unit(o->seed, 0x5407, (uint64_t)i, d) >= o->short_keep) { short_dropped++; continue; }
            docref r = {(uint32_t)i, d};
            if (o->val_frac > 0 && unit(o->seed, 0x7A1, (uint64_t)i, d) < o->val_frac) val[n_val++] = r;
            else train[n_train++] = r;
            kept++;
            kept_tok += len;
        }
        if (!o->quiet)
            fprintf(stderr, "pack: %s: %llu of %llu documents kept (%llu long >= %lld tokens, %llu short dropped), %llu tokens\n",
                    in[i], (unsigned long long)kept, (unsigned long long)s->n_docs, (unsigned long long)n_long,
                    (long long)o->long_min, (unsigned long long)short_dropped, (unsigned long long)kept_tok);
    }
    lg_progress_finish(&pr, done);
    if (o->shuffle) {
        shuffle(train, n_train, o->seed);
        shuffle(val, n_val, o->seed + 1);
    }
    lg_shard_meta meta;
    memset(&meta, 0, sizeof meta);
    meta.vocab_size = vocab;
    meta.bos_id = bos;
    meta.eos_id = eos;
    meta.seq_len = o->seq_len;
    meta.tokenizer_hash = hash;
    meta.zstd_level = o->zstd_level;
    char *tdir = lg_path_join(o->out_dir, "train"), *vdir = lg_path_join(o->out_dir, "val");
    prepare_dir(tdir, o->force);
    if (n_val) prepare_dir(vdir, o->force);
    lg_progress_start(&pr, "pack: write", "tokens", (double)total_tok, o->quiet);
    done = 0;
    write_split(o, &meta, tdir, src, train, n_train, "train", &pr, &done);
    if (n_val) write_split(o, &meta, vdir, src, val, n_val, "val", &pr, &done);
    lg_progress_finish(&pr, done);
    free(tdir);
    free(vdir);
    free(train);
    free(val);
    for (int i = 0; i < n_in; i++) lg_tokstream_close(src[i]);
    free(src);
}
