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
"  tokenize -m tokenizer.model -o out.lgt [--format auto|text|jsonl] [--field text] [--split file|line] [-q] INPUT...\n"
"           text or JSONL files -> token stream (.lgt); one document per file (text), per line (--split line)\n"
"           or per JSONL record\n"
"  pack     -o OUTDIR --seq-len N [--val-frac F] [--seed S] [--level L] [--shard-seqs N] [--no-shuffle] [--eos]\n"
"           [--long-min TOKENS --short-keep P] [--tokenizer MODEL | --vocab V --bos ID [--eos-id ID]]\n"
"           [--dtype u16|u32] [--doc-sep ID] [-q] INPUT...\n"
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

static int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *out = NULL, *format = "auto", *field = "text", *split = "file";
    int quiet = 0;
    char **inputs = lg_malloc((size_t)argc * sizeof *inputs);
    int n_in = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) { NEED_ARG(); model = argv[++i]; }
        else if (!strcmp(argv[i], "-o")) { NEED_ARG(); out = argv[++i]; }
        else if (!strcmp(argv[i], "--format")) { NEED_ARG(); format = argv[++i]; }
        else if (!strcmp(argv[i], "--field")) { NEED_ARG(); field = argv[++i]; }
        else if (!strcmp(argv[i], "--split")) { NEED_ARG(); split = argv[++i]; }
        else if (!strcmp(argv[i], "-q")) quiet = 1;
        else if (argv[i][0] == '-' && argv[i][1]) lg_die("tokenize: unknown option %s", argv[i]);
        else inputs[n_in++] = argv[i];
    }
    if (!model || !out || !n_in) lg_die("tokenize: needs -m tokenizer.model, -o out.lgt and at least one input");
    if (!ends_with(out, ".lgt")) lg_die("tokenize: -o %s: the output name must end in .lgt", out);
    if (strcmp(split, "file") && strcmp(split, "line")) lg_die("--split: expected file or line, got '%s'", split);
    if (strcmp(format, "auto") && strcmp(format, "text") && strcmp(format, "jsonl"))
        lg_die("--format: expected auto, text or jsonl, got '%s'", format);
    lg_tokenizer *tok = lg_tok_load(model);
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
    int32_t *ids = NULL;
    size_t cap = 0;
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
            size_t m = lg_tok_encode(tok, b, n, 0, 0, &ids, &cap);
            lg_lgt_writer_doc(w, ids, m);
            n_docs++;
        } else {
            size_t lineno = 0;
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
                        size_t m = lg_tok_encode(tok, txt, (size_t)tl, 0, 0, &ids, &cap);
                        lg_lgt_writer_doc(w, ids, m);
                    } else {
                        size_t m = lg_tok_encode(tok, b + p, le - p, 0, 0, &ids, &cap);
                        lg_lgt_writer_doc(w, ids, m);
                    }
                    n_docs++;
                }
                p = e + 1;
                lg_progress_update(&pr, done + (double)p);
            }
        }
        done += (double)n;
        lg_progress_update(&pr, done);
        if (map) munmap(map, n);
    }
    uint64_t ntok = lg_lgt_writer_tokens(w);
    lg_lgt_writer_close(w);
    lg_progress_finish(&pr, done);
    if (!quiet)
        fprintf(stderr, "tokenize: %s: %llu documents, %llu tokens (%.2f bytes/token)\n", out, (unsigned long long)n_docs,
                (unsigned long long)ntok, ntok ? done / (double)ntok : 0.0);
    free(ids);
    free(txt);
    free(inputs);
    lg_tok_free(tok);
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

int main(int argc, char **argv) {
    lg_set_progname("lgdata");
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) usage();
    const char *c = argv[1];
    if (!strcmp(c, "tokenize")) return cmd_tokenize(argc - 2, argv + 2);
    if (!strcmp(c, "encode")) return cmd_encode(argc - 2, argv + 2);
    if (!strcmp(c, "decode")) return cmd_decode(argc - 2, argv + 2);
    fprintf(stderr, "lgdata: unknown command '%s'\n", c);
    usage();
}
