// tokstream.c: see tokstream.h.
#include "tokstream.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../trainer/util.h"

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

static uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

// .npy header: dtype and 1-D shape. Dies naming the file for anything else.
static void parse_npy(lg_tokstream *s, const uint8_t *b, size_t n) {
    if (n < 10 || memcmp(b, "\x93NUMPY", 6) != 0) lg_die("%s: not a .npy file (bad magic)", s->path);
    int major = b[6];
    size_t hl, off;
    if (major == 1) { hl = (size_t)(b[8] | (b[9] << 8)); off = 10; }
    else if (major == 2 || major == 3) {
        if (n < 12) lg_die("%s: truncated .npy header", s->path);
        hl = rd32(b + 8); off = 12;
    } else lg_die("%s: .npy format version %d is not supported (expected 1, 2 or 3)", s->path, major);
    if (off + hl > n) lg_die("%s: truncated .npy header", s->path);
    char *h = lg_malloc(hl + 1);
    memcpy(h, b + off, hl);
    h[hl] = 0;
    const char *d = strstr(h, "'descr'");
    char descr[16] = "";
    if (d) sscanf(d, "'descr': '%15[^']'", descr);
    if (strstr(h, "'fortran_order': True")) lg_die("%s: Fortran-order arrays are not supported", s->path);
    const char *sh = strstr(h, "'shape'");
    unsigned long long dim = 0;
    char rest[8] = "";
    if (!sh || sscanf(sh, "'shape': (%llu%7[,)]", &dim, rest) < 2 || strncmp(rest, ",)", 2) != 0)
        lg_die("%s: .npy array must be 1-D (shape (N,)); header is %s", s->path, h);
    struct { const char *d; int bytes, sgn; } ok[] = {{"<u2", 2, 0}, {"<u4", 4, 0}, {"<i4", 4, 1}, {"<i8", 8, 1}, {"<u8", 8, 0}, {"|u2", 2, 0}};
    int found = 0;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (!strcmp(descr, ok[i].d)) { s->elem_bytes = ok[i].bytes; s->elem_signed = ok[i].sgn; found = 1; }
    if (!found) lg_die("%s: .npy dtype '%s' is not a little-endian integer type lgdata reads (<u2 <u4 <i4 <i8 <u8)", s->path, descr);
    free(h);
    s->tokens = b + off + hl;
    s->n_tokens = dim;
    if ((size_t)(s->tokens - b) + dim * (uint64_t)s->elem_bytes > n)
        lg_die("%s: truncated: header says %llu elements, the file holds fewer", s->path, dim);
}

static void split_docs(lg_tokstream *s, int64_t sep) {
    uint64_t cap = 1024;
    s->doc_start = lg_malloc(cap * 8);
    s->doc_end = lg_malloc(cap * 8);
    uint64_t st = 0;
    for (uint64_t i = 0; i <= s->n_tokens; i++) {
        int at_end = i == s->n_tokens;
        if (!at_end && (sep < 0 || (int64_t)lg_tokstream_get(s, i) != sep)) continue;
        if (i > st) {
            if (s->n_docs == cap) {
                cap *= 2;
                s->doc_start = lg_realloc(s->doc_start, cap * 8);
                s->doc_end = lg_realloc(s->doc_end, cap * 8);
            }
            s->doc_start[s->n_docs] = st;
            s->doc_end[s->n_docs++] = i;
        }
        st = i + 1;
    }
}

lg_tokstream *lg_tokstream_open(const char *path, const char *raw_dtype, int64_t doc_sep) {
    lg_tokstream *s = lg_calloc(1, sizeof *s);
    s->path = lg_strdup(path);
    s->vocab_size = s->bos_id = s->eos_id = -1;
    int fd = open(path, O_RDONLY);
    if (fd < 0) lg_die("%s: cannot open token stream: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) lg_die("%s: stat failed: %s", path, strerror(errno));
    s->map_len = (size_t)st.st_size;
    const uint8_t *b = NULL;
    if (s->map_len) {
        s->map = mmap(NULL, s->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (s->map == MAP_FAILED) lg_die("%s: mmap failed: %s", path, strerror(errno));
        b = s->map;
    }
    close(fd);
    if (ends_with(path, ".lgt")) {
        if (s->map_len < LG_LGT_HEADER || memcmp(b, LG_LGT_MAGIC, 8) != 0)
            lg_die("%s: not an lgdata token stream (bad magic; made by `lgdata tokenize`?)", path);
        uint32_t ver = rd32(b + 8);
        if (ver != 1) lg_die("%s: token stream version %u, this build reads version 1", path, ver);
        s->elem_bytes = (int)rd32(b + 12);
        if (s->elem_bytes != 2 && s->elem_bytes != 4) lg_die("%s: token size %d, expected 2 or 4", path, s->elem_bytes);
        s->has_meta = 1;
        s->tokenizer_hash = rd64(b + 16);
        s->vocab_size = (int64_t)rd64(b + 24);
        s->bos_id = (int64_t)rd64(b + 32);
        s->eos_id = (int64_t)rd64(b + 40);
        s->n_docs = rd64(b + 48);
        s->n_tokens = rd64(b + 56);
        uint64_t need = LG_LGT_HEADER + s->n_tokens * (uint64_t)s->elem_bytes + (s->n_docs + 1) * 8;
        if (need != s->map_len)
            lg_die("%s: file is %zu bytes, the header (%llu docs, %llu tokens) says %llu: truncated or not closed", path,
                   s->map_len, (unsigned long long)s->n_docs, (unsigned long long)s->n_tokens, (unsigned long long)need);
        s->tokens = b + LG_LGT_HEADER;
        const uint8_t *off = s->tokens + s->n_tokens * (uint64_t)s->elem_bytes;
        s->doc_start = lg_malloc((s->n_docs + 1) * 8);
        s->doc_end = lg_malloc((s->n_docs + 1) * 8);
        for (uint64_t i = 0; i < s->n_docs; i++) {
            s->doc_start[i] = rd64(off + 8 * i);
            s->doc_end[i] = rd64(off + 8 * (i + 1));
            if (s->doc_end[i] < s->doc_start[i] || s->doc_end[i] > s->n_tokens)
                lg_die("%s: document %llu has offsets %llu..%llu outside 0..%llu: corrupted", path,
                       (unsigned long long)i, (unsigned long long)s->doc_start[i], (unsigned long long)s->doc_end[i],
                       (unsigned long long)s->n_tokens);
        }
        return s;
    }
    if (ends_with(path, ".npy")) {
        parse_npy(s, b, s->map_len);
    } else if (ends_with(path, ".bin")) {
        if (!raw_dtype || (strcmp(raw_dtype, "u16") && strcmp(raw_dtype, "u32")))
            lg_die("%s: raw .bin token files need --dtype u16 or u32", path);
        s->elem_bytes = strcmp(raw_dtype, "u16") ? 4 : 2;
        if (s->map_len % (size_t)s->elem_bytes)
            lg_die("%s: size %zu is not a multiple of %d bytes (--dtype %s): truncated or wrong dtype", path, s->map_len,
                   s->elem_bytes, raw_dtype);
        s->tokens = b;
        s->n_tokens = s->map_len / (size_t)s->elem_bytes;
    } else {
        lg_die("%s: unknown token stream type: expected .lgt (lgdata tokenize), .bin (raw ids) or .npy", path);
    }
    split_docs(s, doc_sep);
    return s;
}

void lg_tokstream_close(lg_tokstream *s) {
    if (!s) return;
    if (s->map && s->map_len) munmap(s->map, s->map_len);
    free(s->doc_start);
    free(s->doc_end);
    free(s->path);
    free(s);
}

struct lg_lgt_writer {
    char *path, *tmp;
    FILE *f;
    uint8_t head[LG_LGT_HEADER];
    int elem_bytes;
    int64_t vocab;
    uint64_t n_tokens, *off, n_docs, cap;
    uint8_t *buf;
    size_t buf_cap;
};

lg_lgt_writer *lg_lgt_writer_open(const char *path, uint64_t hash, int64_t vocab, int64_t bos, int64_t eos) {
    lg_lgt_writer *w = lg_calloc(1, sizeof *w);
    w->path = lg_strdup(path);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    w->tmp = lg_strdup(tmp);
    w->f = lg_fopen(tmp, "wb");
    w->elem_bytes = vocab <= 65536 ? 2 : 4;
    w->vocab = vocab;
    memcpy(w->head, LG_LGT_MAGIC, 8);
    uint32_t ver = 1, eb = (uint32_t)w->elem_bytes;
    memcpy(w->head + 8, &ver, 4);
    memcpy(w->head + 12, &eb, 4);
    memcpy(w->head + 16, &hash, 8);
    memcpy(w->head + 24, &vocab, 8);
    memcpy(w->head + 32, &bos, 8);
    memcpy(w->head + 40, &eos, 8);
    lg_fwrite(w->head, 1, LG_LGT_HEADER, w->f, tmp);
    w->cap = 1024;
    w->off = lg_malloc(w->cap * 8);
    w->off[0] = 0;
    return w;
}

void lg_lgt_writer_doc(lg_lgt_writer *w, const int32_t *ids, size_t n) {
    if (n * 4 > w->buf_cap) { w->buf_cap = n * 4; w->buf = lg_realloc(w->buf, w->buf_cap); }
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= w->vocab) lg_die("%s: token id %d outside the vocabulary (internal error)", w->path, ids[i]);
        if (w->elem_bytes == 2) { uint16_t v = (uint16_t)ids[i]; memcpy(w->buf + 2 * i, &v, 2); }
        else memcpy(w->buf + 4 * i, &ids[i], 4);
    }
    lg_fwrite(w->buf, (size_t)w->elem_bytes, n, w->f, w->tmp);
    w->n_tokens += n;
    if (w->n_docs + 2 > w->cap) { w->cap *= 2; w->off = lg_realloc(w->off, w->cap * 8); }
    w->off[++w->n_docs] = w->n_tokens;
}

uint64_t lg_lgt_writer_tokens(const lg_lgt_writer *w) { return w->n_tokens; }

void lg_lgt_writer_close(lg_lgt_writer *w) {
    lg_fwrite(w->off, 8, w->n_docs + 1, w->f, w->tmp);
    memcpy(w->head + 48, &w->n_docs, 8);
    memcpy(w->head + 56, &w->n_tokens, 8);
    if (fseek(w->f, 0, SEEK_SET) != 0) lg_die("%s: seek failed: %s", w->tmp, strerror(errno));
    lg_fwrite(w->head, 1, LG_LGT_HEADER, w->f, w->tmp);
    lg_fclose(w->f, w->tmp);
    if (rename(w->tmp, w->path) != 0) lg_die("rename %s -> %s failed: %s", w->tmp, w->path, strerror(errno));
    free(w->off);
    free(w->buf);
    free(w->path);
    free(w->tmp);
    free(w);
}
