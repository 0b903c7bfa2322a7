// lgdata.c: the data tool. Subcommands:
//   tokenize  text / JSONL -> .lgt token stream (C Llama-2 sentencepiece BPE tokenizer)
//   pack      token streams (.lgt, .bin, .npy) -> HDF5 shards of fixed-length sequences (train/ and val/)
//   info      what shards hold;  verify: checksums, decode and id range of every chunk
//   sample    the sequences the training loader gives a rank (for checks and debugging)
//   encode / decode   one text <-> ids with a tokenizer.model
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "../trainer/util.h"
#include "jsonl.h"
#include "loader.h"
#include "pack.h"
#include "progress.h"
#include "shard.h"
#include "tokenizer.h"
#include "tokstream.h"

static void usage(void) {
    fprintf(stderr,
"usage: lgdata <command> [options]\n"
"  tokenize -m tokenizer.model -o out.lgt [--format auto|text|jsonl] [--field text] [--split file|line] [-j THREADS] [-q] INPUT...\n"
"           text or JSONL files -> token stream (.lgt); one document per file (text), per line (--split line)\n"
"           or per JSONL record\n"
"  pack     -o OUTDIR --seq-len N [--val-frac F] [--seed S] [--level L] [--shard-seqs N] [--no-shuffle] [--eos]\n"
"           [--long-min TOKENS --short-keep P] [--tokenizer MODEL | --vocab V --bos ID [--eos-id ID]]\n"
"           [--dtype u16|u32] [--doc-sep ID|none] [--force] [-q] INPUT...\n"
"           .lgt/.bin/.npy token streams -> OUTDIR/train/shard-NNNNN.h5 and OUTDIR/val/shard-NNNNN.h5:\n"
"           documents (shuffled by --seed) concatenated with BOS before each, cut into --seq-len sequences\n"
"  info     [--docs] [--show N -m MODEL] SHARD.h5...     attributes, storage, first tokens (decoded with -m)\n"
"  verify   [-q] SHARD.h5...                            decode every chunk; check CRCs, id range, documents\n"
"  sample   SPEC --seq-len N [--vocab V] [--rank R --world W --seed S --cursor EPOCH:POS -n COUNT]\n"
"           [--tokenizer-hash H] [--prefetch K] [-o out.npy]   the loader's next COUNT sequences for a rank\n"
"  encode   -m MODEL [--bos] [--eos] [TEXT]    ids of TEXT (or stdin)\n"
"  decode   -m MODEL ID...                     text of ids (or ids read from stdin)\n");
    exit(2);
}

static int64_t parse_i64(const char *s, const char *opt) {
    char *e;
    errno = 0;
    long long v = strtoll(s, &e, 0);
    if (errno || *e || e == s) lg_die("%s: expected an integer, got '%s'", opt, s);
    return v;
}
static uint64_t parse_u64(const char *s, const char *opt) {
    char *e;
    errno = 0;
    unsigned long long v = strtoull(s, &e, 0);
    if (errno || *e || e == s || s[0] == '-') lg_die("%s: expected a non-negative integer, got '%s'", opt, s);
    return v;
}
static double parse_f64(const char *s, const char *opt) {
    char *e;
    double v = strtod(s, &e);
    if (*e || e == s) lg_die("%s: expected a number, got '%s'", opt, s);
    return v;
}

#define NEED_ARG() do { if (i + 1 >= argc) lg_die("%s: missing value", argv[i]); } while (0)

// ---- tokenize ----
static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

// Documents waiting to be encoded: encoded in parallel (one tokenizer per thread), written in input order,
// so the output does not depend on the number of threads.
typedef struct {
    int n, cap;
    const char **text;
    size_t *len;
    char **owned;      // heap copies (JSONL strings) to free after encoding, else NULL
    int32_t **ids;     // per slot, reused across batches
    size_t *n_ids, *ids_cap;
    size_t bytes;
} tok_batch;

static void batch_add(tok_batch *b, const char *t, size_t len, char *owned) {
    if (b->n == b->cap) {
        int c = b->cap ? 2 * b->cap : 256;
        b->text = lg_realloc(b->text, (size_t)c * sizeof *b->text);
        b->len = lg_realloc(b->len, (size_t)c * sizeof *b->len);
        b->owned = lg_realloc(b->owned, (size_t)c * sizeof *b->owned);
        b->ids = lg_realloc(b->ids, (size_t)c * sizeof *b->ids);
        b->n_ids = lg_realloc(b->n_ids, (size_t)c * sizeof *b->n_ids);
        b->ids_cap = lg_realloc(b->ids_cap, (size_t)c * sizeof *b->ids_cap);
        for (int i = b->cap; i < c; i++) { b->ids[i] = NULL; b->ids_cap[i] = 0; }
        b->cap = c;
    }
    b->text[b->n] = t;
    b->len[b->n] = len;
    b->owned[b->n] = owned;
    b->n++;
    b->bytes += len;
}

static void batch_flush(tok_batch *b, lg_tokenizer **toks, int nt, lg_lgt_writer *w) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int i = 0; i < b->n; i++) {
        int th = 0;
#ifdef _OPENMP
        th = omp_get_thread_num();
#endif
        b->n_ids[i] = lg_tok_encode(toks[th], b->text[i], b->len[i], 0, 0, &b->ids[i], &b->ids_cap[i]);
    }
    for (int i = 0; i < b->n; i++) {
        lg_lgt_writer_doc(w, b->ids[i], b->n_ids[i]);
        free(b->owned[i]);
    }
    b->n = 0;
    b->bytes = 0;
}

static int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *out = NULL, *format = "auto", *field = "text", *split = "file";
    int quiet = 0, nt = 1;
#ifdef _OPENMP
    nt = omp_get_max_threads();
#endif
    char **inputs = lg_malloc((size_t)argc * sizeof *inputs);
    int n_in = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) { NEED_ARG(); model = argv[++i]; }
        else if (!strcmp(argv[i], "-o")) { NEED_ARG(); out = argv[++i]; }
        else if (!strcmp(argv[i], "--format")) { NEED_ARG(); format = argv[++i]; }
        else if (!strcmp(argv[i], "--field")) { NEED_ARG(); field = argv[++i]; }
        else if (!strcmp(argv[i], "--split")) { NEED_ARG(); split = argv[++i]; }
        else if (!strcmp(argv[i], "-j")) { NEED_ARG(); nt = (int)parse_i64(argv[++i], "-j"); if (nt < 1) lg_die("-j: expected >= 1"); }
        else if (!strcmp(argv[i], "-q")) quiet = 1;
        else if (argv[i][0] == '-' && argv[i][1]) lg_die("tokenize: unknown option %s", argv[i]);
        else inputs[n_in++] = argv[i];
    }
    if (!model || !out || !n_in) lg_die("tokenize: needs -m tokenizer.model, -o out.lgt and at least one input");
    if (!ends_with(out, ".lgt")) lg_die("tokenize: -o %s: the output name must end in .lgt", out);
    if (strcmp(split, "file") && strcmp(split, "line")) lg_die("--split: expected file or line, got '%s'", split);
    if (strcmp(format, "auto") && strcmp(format, "text") && strcmp(format, "jsonl"))
        lg_die("--format: expected auto, text or jsonl, got '%s'", format);
    lg_tokenizer **toks = lg_malloc((size_t)nt * sizeof *toks);
    for (int i = 0; i < nt; i++) toks[i] = lg_tok_load(model);
    lg_tokenizer *tok = toks[0];
    lg_lgt_writer *w = lg_lgt_writer_open(out, lg_tok_hash(tok), lg_tok_vocab_size(tok), lg_tok_bos_id(tok),
                                          lg_tok_eos_id(tok));
    double total = 0;
    for (int k = 0; k < n_in; k++) {
        struct stat st;
        if (stat(inputs[k], &st) != 0) lg_die("%s: cannot open input: %s", inputs[k], strerror(errno));
        total += (double)st.st_size;
    }
    lg_progress pr;
    lg_progress_start(&pr, "tokenize", "B", total, quiet);
    tok_batch batch;
    memset(&batch, 0, sizeof batch);
    const size_t batch_bytes = (size_t)8 << 20;
    char *txt = NULL;
    size_t tcap = 0;
    double done = 0;
    uint64_t n_docs = 0;
    for (int k = 0; k < n_in; k++) {
        const char *path = inputs[k];
        int jsonl = !strcmp(format, "jsonl") || (!strcmp(format, "auto") && (ends_with(path, ".jsonl") || ends_with(path, ".json")));
        int fd = open(path, O_RDONLY);
        if (fd < 0) lg_die("%s: cannot open input: %s", path, strerror(errno));
        struct stat st;
        if (fstat(fd, &st) != 0) lg_die("%s: stat failed: %s", path, strerror(errno));
        size_t n = (size_t)st.st_size;
        const char *b = "";
        void *map = NULL;
        if (n) {
            map = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
            if (map == MAP_FAILED) lg_die("%s: mmap failed: %s", path, strerror(errno));
            b = map;
        }
        close(fd);
        if (!jsonl && !strcmp(split, "file")) {
            batch_add(&batch, b, n, NULL);
            n_docs++;
        } else {
            size_t lineno = 0, flushed = 0;
            for (size_t p = 0; p < n;) {
                const char *nl = memchr(b + p, '\n', n - p);
                size_t e = nl ? (size_t)(nl - b) : n;
                lineno++;
                size_t le = e;
                if (le > p && b[le - 1] == '\r') le--;
                if (le > p) {
                    if (jsonl) {
                        const char *err = NULL;
                        long tl = lg_jsonl_field(b + p, le - p, field, &txt, &tcap, &err);
                        if (tl == -2) lg_die("%s:%zu: bad JSON: %s", path, lineno, err);
                        if (tl == -1) lg_die("%s:%zu: the record has no \"%s\" field (choose it with --field)", path, lineno, field);
                        batch_add(&batch, txt, (size_t)tl, txt);
                        txt = NULL;
                        tcap = 0;
                    } else {
                        batch_add(&batch, b + p, le - p, NULL);
                    }
                    n_docs++;
                }
                p = e + 1;
                if (batch.bytes >= batch_bytes) {
                    batch_flush(&batch, toks, nt, w);
                    flushed = p;
                    lg_progress_update(&pr, done + (double)flushed);
                }
            }
        }
        batch_flush(&batch, toks, nt, w);  // before the file's mapping goes away
        done += (double)n;
        lg_progress_update(&pr, done);
        if (map) munmap(map, n);
    }
    uint64_t ntok = lg_lgt_writer_tokens(w);
    lg_lgt_writer_close(w);
    lg_progress_finish(&pr, done);
    if (!quiet)
        fprintf(stderr, "tokenize: %s: %llu documents, %llu tokens (%.2f bytes/token), %d thread(s)\n", out,
                (unsigned long long)n_docs, (unsigned long long)ntok, ntok ? done / (double)ntok : 0.0, nt);
    for (int i = 0; i < batch.cap; i++) free(batch.ids[i]);
    free(batch.text); free(batch.len); free(batch.owned); free(batch.ids); free(batch.n_ids); free(batch.ids_cap);
    free(txt);
    free(inputs);
    for (int i = 0; i < nt; i++) lg_tok_free(toks[i]);
    free(toks);
    return 0;
}

// ---- encode / decode ----
static char *read_stdin(size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *b = lg_malloc(cap);
    size_t got;
    while ((got = fread(b + n, 1, cap - n, stdin)) > 0) {
        n += got;
        if (n == cap) { cap *= 2; b = lg_realloc(b, cap); }
    }
    if (ferror(stdin)) lg_die("stdin: read failed");
    *len = n;
    return b;
}

static int cmd_encode(int argc, char **argv) {
    const char *model = NULL, *text = NULL;
    int bos = 0, eos = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-m")) { NEED_ARG(); model = argv[++i]; }
        else if (!strcmp(argv[i], "--bos")) bos = 1;
        else if (!strcmp(argv[i], "--eos")) eos = 1;
        else if (text) lg_die("encode: one TEXT argument (quote it), or none to read stdin");
        else text = argv[i];
    }
    if (!model) lg_die("encode: needs -m tokenizer.model");
    lg_tokenizer *tok = lg_tok_load(model);
    size_t len;
    char *buf = text ? lg_strdup(text) : read_stdin(&len);
    if (text) len = strlen(text);
    int32_t *ids = NULL;
    size_t cap = 0, n = lg_tok_encode(tok, buf, len, bos, eos, &ids, &cap);
    for (size_t i = 0; i < n; i++) printf("%s%d", i ? " " : "", ids[i]);
    printf("\n");
    free(ids);
    free(buf);
    lg_tok_free(tok);
    return 0;
}

static int cmd_decode(int argc, char **argv) {
    const char *model = NULL;
    size_t n = 0, cap = 16;
    int32_t *ids = lg_malloc(cap * sizeof *ids);
    int from_args = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-m")) { NEED_ARG(); model = argv[++i]; continue; }
        from_args = 1;
        if (n == cap) { cap *= 2; ids = lg_realloc(ids, cap * sizeof *ids); }
        ids[n++] = (int32_t)parse_i64(argv[i], "decode: id");
    }
    if (!model) lg_die("decode: needs -m tokenizer.model");
    if (!from_args) {
        long long v;
        while (scanf("%lld", &v) == 1) {
            if (n == cap) { cap *= 2; ids = lg_realloc(ids, cap * sizeof *ids); }
            ids[n++] = (int32_t)v;
        }
    }
    lg_tokenizer *tok = lg_tok_load(model);
    size_t len;
    char *s = lg_tok_decode(tok, ids, n, &len);
    fwrite(s, 1, len, stdout);
    free(s);
    free(ids);
    lg_tok_free(tok);
    return 0;
}

// ---- pack ----
static int cmd_pack(int argc, char **argv) {
    lg_pack_opts o;
    lg_pack_defaults(&o);
    char **inputs = lg_malloc((size_t)argc * sizeof *inputs);
    int n_in = 0;
    const char *tok_model = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-o")) { NEED_ARG(); o.out_dir = argv[++i]; }
        else if (!strcmp(a, "--seq-len")) { NEED_ARG(); o.seq_len = parse_i64(argv[++i], a); }
        else if (!strcmp(a, "--val-frac")) { NEED_ARG(); o.val_frac = parse_f64(argv[++i], a); }
        else if (!strcmp(a, "--seed")) { NEED_ARG(); o.seed = parse_u64(argv[++i], a); }
        else if (!strcmp(a, "--level")) { NEED_ARG(); o.zstd_level = (int)parse_i64(argv[++i], a); }
        else if (!strcmp(a, "--shard-seqs")) { NEED_ARG(); o.shard_seqs = parse_u64(argv[++i], a); }
        else if (!strcmp(a, "--no-shuffle")) o.shuffle = 0;
        else if (!strcmp(a, "--eos")) o.add_eos = 1;
        else if (!strcmp(a, "--long-min")) { NEED_ARG(); o.long_min = parse_i64(argv[++i], a); }
        else if (!strcmp(a, "--short-keep")) { NEED_ARG(); o.short_keep = parse_f64(argv[++i], a); }
        else if (!strcmp(a, "--tokenizer")) { NEED_ARG(); tok_model = argv[++i]; }
        else if (!strcmp(a, "--vocab")) { NEED_ARG(); o.vocab_size = parse_i64(argv[++i], a); }
        else if (!strcmp(a, "--bos")) { NEED_ARG(); o.bos_id = parse_i64(argv[++i], a); }
        else if (!strcmp(a, "--eos-id")) { NEED_ARG(); o.eos_id = parse_i64(argv[++i], a); }
        else if (!strcmp(a, "--tokenizer-hash")) { NEED_ARG(); o.tokenizer_hash = parse_u64(argv[++i], a); }
        else if (!strcmp(a, "--dtype")) { NEED_ARG(); o.raw_dtype = argv[++i]; }
        else if (!strcmp(a, "--doc-sep")) { NEED_ARG(); i++; o.doc_sep = !strcmp(argv[i], "none") ? -2 : parse_i64(argv[i], a); if (o.doc_sep < -2) lg_die("--doc-sep: expected an id or none"); }
        else if (!strcmp(a, "--force")) o.force = 1;
        else if (!strcmp(a, "-q")) o.quiet = 1;
        else if (a[0] == '-' && a[1]) lg_die("pack: unknown option %s", a);
        else inputs[n_in++] = argv[i];
    }
    if (!o.out_dir || !o.seq_len) lg_die("pack: needs -o OUTDIR and --seq-len N");
    if (tok_model) {
        lg_tokenizer *t = lg_tok_load(tok_model);
        if (o.vocab_size >= 0 && o.vocab_size != lg_tok_vocab_size(t))
            lg_die("--vocab %lld disagrees with %s (vocab %d)", (long long)o.vocab_size, tok_model, lg_tok_vocab_size(t));
        o.vocab_size = lg_tok_vocab_size(t);
        if (o.bos_id < 0) o.bos_id = lg_tok_bos_id(t);
        if (o.eos_id < 0) o.eos_id = lg_tok_eos_id(t);
        o.tokenizer_hash = lg_tok_hash(t);
        lg_tok_free(t);
    }
    lg_pack(&o, n_in, inputs);
    free(inputs);
    return 0;
}

// ---- info / verify ----
static int cmd_info(int argc, char **argv) {
    int docs = 0;
    int64_t show = 0;
    const char *model = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--docs")) { docs = 1; continue; }
        if (!strcmp(argv[i], "--show")) { NEED_ARG(); show = parse_i64(argv[++i], "--show"); continue; }
        if (!strcmp(argv[i], "-m")) { NEED_ARG(); model = argv[++i]; continue; }
        if (argv[i][0] == '-') lg_die("info: unknown option %s", argv[i]);
        lg_shard *s = lg_shard_open(argv[i]);
        const lg_shard_meta *m = lg_shard_get_meta(s);
        char d[512];
        lg_shard_describe(s, d, sizeof d);
        printf("%s:\n  format lgtrain-shard v%d, tokens uint%d, %s\n", argv[i], m->format_version, 8 * m->token_bytes, d);
        printf("  vocab_size %lld  bos_id %lld  eos_id %lld  tokenizer_hash 0x%016llx\n", (long long)m->vocab_size,
               (long long)m->bos_id, (long long)m->eos_id, (unsigned long long)m->tokenizer_hash);
        printf("  seq_len %lld  n_sequences %llu  n_tokens %llu  n_docs %llu\n", (long long)m->seq_len,
               (unsigned long long)m->n_sequences, (unsigned long long)m->n_tokens, (unsigned long long)m->n_docs);
        if (docs) {
            uint64_t n;
            uint64_t *ds = lg_shard_read_doc_starts(s, &n);
            printf("  doc_starts:");
            for (uint64_t k = 0; k < n && k < 32; k++) printf(" %llu", (unsigned long long)ds[k]);
            printf("%s\n", n > 32 ? " ..." : "");
            free(ds);
        }
        if (show > 0 && m->n_sequences > 0) {
            int64_t S = m->seq_len, k = show < S ? show : S;
            void *raw = lg_malloc((size_t)S * (size_t)m->token_bytes);
            int32_t *ids = lg_malloc((size_t)S * sizeof *ids);
            uint32_t crc;
            int has = lg_shard_read_rows(s, 0, 1, raw, &crc);
            lg_shard_check_row(s, 0, raw, has, crc, ids);
            printf("  row 0, first %lld ids:", (long long)k);
            for (int64_t j = 0; j < k; j++) printf(" %d", ids[j]);
            printf("\n");
            if (model) {
                lg_tokenizer *t = lg_tok_load(model);
                if (lg_tok_hash(t) != m->tokenizer_hash)
                    lg_warn("%s: hash 0x%016llx differs from the shard's tokenizer_hash", model, (unsigned long long)lg_tok_hash(t));
                size_t len;
                char *txt = lg_tok_decode(t, ids, (size_t)k, &len);
                printf("  decoded: %s\n", txt);
                free(txt);
                lg_tok_free(t);
            }
            free(raw);
            free(ids);
        }
        lg_shard_close(s);
    }
    return 0;
}

static int cmd_verify(int argc, char **argv) {
    int quiet = 0, n_files = 0;
    for (int i = 0; i < argc; i++) if (!strcmp(argv[i], "-q")) quiet = 1;
    for (int i = 0; i < argc; i++) {
        if (argv[i][0] == '-') { if (strcmp(argv[i], "-q")) lg_die("verify: unknown option %s", argv[i]); continue; }
        const char *path = argv[i];
        lg_shard *s = lg_shard_open(path);
        const lg_shard_meta *m = lg_shard_get_meta(s);
        uint64_t cr = lg_shard_chunk_rows(s), S = (uint64_t)m->seq_len;
        void *raw = lg_malloc(cr * S * (uint64_t)m->token_bytes);
        uint32_t *crc = lg_malloc(cr * sizeof *crc);
        int32_t *ids = lg_malloc(S * sizeof *ids);
        lg_progress pr;
        lg_progress_start(&pr, "verify", "tokens", (double)m->n_tokens, quiet);
        int has = 0;
        uint64_t nbos = 0;
        for (uint64_t r0 = 0; r0 < m->n_sequences; r0 += cr) {
            uint64_t n = m->n_sequences - r0 < cr ? m->n_sequences - r0 : cr;
            has = lg_shard_read_rows(s, r0, n, raw, crc);
            for (uint64_t r = 0; r < n; r++) {
                lg_shard_check_row(s, r0 + r, (uint8_t *)raw + r * S * (uint64_t)m->token_bytes, has, has ? crc[r] : 0, ids);
                for (uint64_t k = 0; k < S; k++) nbos += ids[k] == m->bos_id;
            }
            lg_progress_update(&pr, (double)((r0 + n) * S));
        }
        uint64_t nd;
        uint64_t *ds = lg_shard_read_doc_starts(s, &nd);
        for (uint64_t k = 0; k < nd; k++) {
            if (ds[k] >= m->n_tokens) lg_die("%s: /doc_starts[%llu] = %llu is past n_tokens %llu", path, (unsigned long long)k, (unsigned long long)ds[k], (unsigned long long)m->n_tokens);
            if (k && ds[k] <= ds[k - 1]) lg_die("%s: /doc_starts is not increasing at entry %llu", path, (unsigned long long)k);
            uint32_t c1;
            void *one = lg_malloc(S * (uint64_t)m->token_bytes);
            int h1 = lg_shard_read_rows(s, ds[k] / S, 1, one, &c1);
            lg_shard_check_row(s, ds[k] / S, one, h1, c1, ids);
            free(one);
            if (ids[ds[k] % S] != m->bos_id)
                lg_die("%s: /doc_starts[%llu] = %llu points at id %d, not BOS %lld", path, (unsigned long long)k,
                       (unsigned long long)ds[k], ids[ds[k] % S], (long long)m->bos_id);
        }
        if (nd > nbos) lg_die("%s: %llu documents but only %llu BOS tokens", path, (unsigned long long)nd, (unsigned long long)nbos);
        if (!quiet) lg_progress_finish(&pr, (double)m->n_tokens);
        printf("OK %s: %llu sequences x %lld tokens, %llu documents%s\n", path, (unsigned long long)m->n_sequences,
               (long long)m->seq_len, (unsigned long long)nd, has || !m->n_sequences ? ", CRC-32 checked" : ", no /seq_crc32 (ids and decoding checked only)");
        free(ds); free(raw); free(crc); free(ids);
        lg_shard_close(s);
        n_files++;
    }
    if (!n_files) lg_die("verify: no shard files given");
    return 0;
}

// ---- sample ----
static void write_npy_i32(const char *path, const int32_t *v, uint64_t rows, uint64_t cols) {
    char hdr[256];
    int n = snprintf(hdr, sizeof hdr, "{'descr': '<i4', 'fortran_order': False, 'shape': (%llu, %llu), }",
                     (unsigned long long)rows, (unsigned long long)cols);
    int total = 10 + n + 1;
    int pad = (64 - total % 64) % 64;
    FILE *f = lg_fopen(path, "wb");
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0};
    uint16_t hl = (uint16_t)(n + pad + 1);
    memcpy(pre + 8, &hl, 2);
    lg_fwrite(pre, 1, 10, f, path);
    lg_fwrite(hdr, 1, (size_t)n, f, path);
    for (int i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
    lg_fwrite(v, 4, rows * cols, f, path);
    lg_fclose(f, path);
}

static int cmd_sample(int argc, char **argv) {
    const char *spec = NULL, *out = NULL;
    int64_t S = 0, vocab = 0, rank = 0, world = 1, count = 1, prefetch = 2;
    uint64_t seed = 0, hash = 0;
    lg_data_cursor cur = {0, 0};
    int seek = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--seq-len")) { NEED_ARG(); S = parse_i64(argv[++i], a); }
        else if (!strcmp(a, "--vocab")) { NEED_ARG(); vocab = parse_i64(argv[++i], a); }
        else if (!strcmp(a, "--rank")) { NEED_ARG(); rank = parse_i64(argv[++i], a); }
        else if (!strcmp(a, "--world")) { NEED_ARG(); world = parse_i64(argv[++i], a); }
        else if (!strcmp(a, "--seed")) { NEED_ARG(); seed = parse_u64(argv[++i], a); }
        else if (!strcmp(a, "--tokenizer-hash")) { NEED_ARG(); hash = parse_u64(argv[++i], a); }
        else if (!strcmp(a, "-n")) { NEED_ARG(); count = parse_i64(argv[++i], a); }
        else if (!strcmp(a, "--prefetch")) { NEED_ARG(); prefetch = parse_i64(argv[++i], a); }
        else if (!strcmp(a, "-o")) { NEED_ARG(); out = argv[++i]; }
        else if (!strcmp(a, "--cursor")) {
            NEED_ARG();
            unsigned long long e, p;
            if (sscanf(argv[++i], "%llu:%llu", &e, &p) != 2) lg_die("--cursor: expected EPOCH:POSITION, got '%s'", argv[i]);
            cur.epoch = e; cur.position = p; seek = 1;
        }
        else if (a[0] == '-') lg_die("sample: unknown option %s", a);
        else spec = a;
    }
    if (!spec || S <= 0) lg_die("sample: needs SPEC and --seq-len N");
    if (count < 0) lg_die("-n: expected >= 0");
    if (!vocab) { lg_data_meta m; lg_data_describe(spec, &m); vocab = m.vocab_size; }
    lg_loader *L = lg_loader_open(spec, (int)S, (int)vocab, hash, (int)rank, (int)world, seed, (int)prefetch);
    if (seek) lg_loader_seek(L, cur);
    int32_t *v = lg_malloc((size_t)(count ? count : 1) * (size_t)S * sizeof *v);
    for (int64_t k = 0; k < count; k++) lg_loader_next(L, v + (size_t)k * (size_t)S);
    lg_data_cursor c = lg_loader_cursor(L);
    if (out) write_npy_i32(out, v, (uint64_t)count, (uint64_t)S);
    else
        for (int64_t k = 0; k < count; k++) {
            printf("seq %lld:", (long long)k);
            for (int64_t j = 0; j < S && j < 16; j++) printf(" %d", v[(size_t)k * (size_t)S + (size_t)j]);
            printf("%s\n", S > 16 ? " ..." : "");
        }
    printf("cursor %llu:%llu of %llu sequences\n", (unsigned long long)c.epoch, (unsigned long long)c.position,
           (unsigned long long)lg_loader_n_sequences(L));
    free(v);
    lg_loader_close(L);
    return 0;
}

int main(int argc, char **argv) {
    lg_set_progname("lgdata");
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) usage();
    const char *c = argv[1];
    if (!strcmp(c, "tokenize")) return cmd_tokenize(argc - 2, argv + 2);
    if (!strcmp(c, "pack")) return cmd_pack(argc - 2, argv + 2);
    if (!strcmp(c, "info")) return cmd_info(argc - 2, argv + 2);
    if (!strcmp(c, "verify")) return cmd_verify(argc - 2, argv + 2);
    if (!strcmp(c, "sample")) return cmd_sample(argc - 2, argv + 2);
    if (!strcmp(c, "encode")) return cmd_encode(argc - 2, argv + 2);
    if (!strcmp(c, "decode")) return cmd_decode(argc - 2, argv + 2);
    fprintf(stderr, "lgdata: unknown command '%s'\n", c);
    usage();
}
