// shard.c: see shard.h and FORMAT.md.
#include "shard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../trainer/util.h"
#include "crc32.h"

#ifndef LG_HAVE_HDF5
#define NOHDF5 lg_die("this build has no HDF5/zstd support (install libhdf5-dev and libzstd-dev, then re-run cmake)")
lg_shard *lg_shard_open(const char *path) { (void)path; NOHDF5; }
const lg_shard_meta *lg_shard_get_meta(const lg_shard *s) { (void)s; NOHDF5; }
const char *lg_shard_path(const lg_shard *s) { (void)s; NOHDF5; }
uint64_t lg_shard_chunk_rows(const lg_shard *s) { (void)s; NOHDF5; }
void lg_shard_describe(const lg_shard *s, char *buf, int n) { (void)s; (void)buf; (void)n; NOHDF5; }
int lg_shard_read_rows(lg_shard *s, uint64_t r, uint64_t n, void *b, uint32_t *c) { (void)s; (void)r; (void)n; (void)b; (void)c; NOHDF5; }
void lg_shard_check_row(const lg_shard *s, uint64_t r, const void *raw, int h, uint32_t c, int32_t *o) { (void)s; (void)r; (void)raw; (void)h; (void)c; (void)o; NOHDF5; }
uint64_t *lg_shard_read_doc_starts(lg_shard *s, uint64_t *n) { (void)s; (void)n; NOHDF5; }
void lg_shard_close(lg_shard *s) { (void)s; }
lg_shard_writer *lg_shard_writer_open(const char *p, const lg_shard_meta *m) { (void)p; (void)m; NOHDF5; }
void lg_shard_writer_doc_start(lg_shard_writer *w, uint64_t o) { (void)w; (void)o; NOHDF5; }
void lg_shard_writer_append(lg_shard_writer *w, const uint32_t *t) { (void)w; (void)t; NOHDF5; }
uint64_t lg_shard_writer_rows(const lg_shard_writer *w) { (void)w; NOHDF5; }
void lg_shard_writer_close(lg_shard_writer *w) { (void)w; NOHDF5; }
#else
#include "h5util.h"
#include "zstd_filter.h"

static const char *HINT_CORRUPT = "The shard is corrupted or truncated: run `lgdata verify` on it and re-create it with `lgdata pack`";

struct lg_shard {
    char *path;
    hid_t file, tokens, crc, docs;  // crc, docs: -1 when absent
    lg_shard_meta meta;
    uint64_t chunk_rows;
};

static hid_t open_dataset(hid_t file, const char *name, const char *path, int required) {
    htri_t ex = H5Lexists(file, name, H5P_DEFAULT);
    LG_H5CHECK(ex, path, name, "H5Lexists", HINT_CORRUPT);
    if (!ex) {
        if (required) lg_die("%s: missing dataset '/%s' (not an lgtrain shard? see data/FORMAT.md)", path, name);
        return -1;
    }
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    LG_H5CHECK(d, path, name, "H5Dopen2", HINT_CORRUPT);
    return d;
}

// Dimensions of a dataset; dies unless it has `rank` dimensions.
static void dataset_dims(hid_t d, const char *path, const char *name, int rank, hsize_t *dims) {
    hid_t sp = H5Dget_space(d);
    LG_H5CHECK(sp, path, name, "H5Dget_space", HINT_CORRUPT);
    int r = H5Sget_simple_extent_ndims(sp);
    LG_H5CHECK(r, path, name, "H5Sget_simple_extent_ndims", HINT_CORRUPT);
    if (r != rank) lg_die("%s: dataset '/%s' has %d dimensions, expected %d (see data/FORMAT.md)", path, name, r, rank);
    LG_H5CHECK(H5Sget_simple_extent_dims(sp, dims, NULL), path, name, "H5Sget_simple_extent_dims", HINT_CORRUPT);
    LG_H5CHECK(H5Sclose(sp), path, name, "H5Sclose", NULL);
}

// Unsigned integer element size of a dataset (dies unless unsigned integer of one of the allowed sizes).
static int dataset_uint_size(hid_t d, const char *path, const char *name, int allow2, int allow4, int allow8) {
    hid_t t = H5Dget_type(d);
    LG_H5CHECK(t, path, name, "H5Dget_type", HINT_CORRUPT);
    int ok = H5Tget_class(t) == H5T_INTEGER && H5Tget_sign(t) == H5T_SGN_NONE;
    int sz = (int)H5Tget_size(t);
    LG_H5CHECK(H5Tclose(t), path, name, "H5Tclose", NULL);
    if (ok && ((sz == 2 && allow2) || (sz == 4 && allow4) || (sz == 8 && allow8))) return sz;
    lg_die("%s: dataset '/%s' has element type %s%d-byte, expected %s", path, name, ok ? "unsigned " : "non-unsigned ",
           sz, allow2 ? "uint16 or uint32" : allow4 ? "uint32" : "uint64");
}

static void check_filters(hid_t d, const char *path, const char *name, uint64_t *chunk_rows, hsize_t row_len, int tb) {
    hid_t dcpl = H5Dget_create_plist(d);
    LG_H5CHECK(dcpl, path, name, "H5Dget_create_plist", HINT_CORRUPT);
    H5D_layout_t lay = H5Pget_layout(dcpl);
    LG_H5CHECK(lay, path, name, "H5Pget_layout", HINT_CORRUPT);
    if (chunk_rows) {
        *chunk_rows = 0;
        if (lay == H5D_CHUNKED) {
            hsize_t cd[2];
            LG_H5CHECK(H5Pget_chunk(dcpl, 2, cd), path, name, "H5Pget_chunk", HINT_CORRUPT);
            *chunk_rows = cd[0];
        }
        if (*chunk_rows == 0) {  // contiguous/compact: read ~256 KiB at a time
            uint64_t r = LG_SHARD_CHUNK_BYTES / (row_len * (hsize_t)tb);
            *chunk_rows = r ? r : 1;
        }
    }
    int nf = H5Pget_nfilters(dcpl);
    LG_H5CHECK(nf, path, name, "H5Pget_nfilters", HINT_CORRUPT);
    for (int i = 0; i < nf; i++) {
        unsigned flags, cd[8];
        size_t ncd = 8;
        char fname[64] = "";
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cd, sizeof fname, fname, NULL);
        LG_H5CHECK(id, path, name, "H5Pget_filter2", HINT_CORRUPT);
        htri_t av = H5Zfilter_avail(id);
        LG_H5CHECK(av, path, name, "H5Zfilter_avail", NULL);
        if (!av)
            lg_die("%s: dataset '/%s' uses HDF5 filter id %d ('%s') which this build cannot decode; lgtrain reads zstd "
                   "(32015), gzip and shuffle; re-pack with `lgdata pack` or h5py + hdf5plugin.Zstd()",
                   path, name, (int)id, fname);
    }
    LG_H5CHECK(H5Pclose(dcpl), path, name, "H5Pclose", NULL);
}

lg_shard *lg_shard_open(const char *path) {
    if (!lg_file_exists(path)) lg_die("%s: no such shard file", path);
    lg_h5_lock();
    lg_shard *s = lg_calloc(1, sizeof *s);
    s->path = lg_strdup(path);
    s->crc = s->docs = -1;
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0) {
        char why[512];
        lg_h5_reason(why, sizeof why);
        lg_die("%s: not an HDF5 file (truncated, corrupted, or another format)%s%s", path, why[0] ? ": " : "", why);
    }
    s->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (s->file < 0) {
        char why[512];
        lg_h5_reason(why, sizeof why);
        lg_die("%s: H5Fopen (read-only) failed: %s. The file may be truncated or corrupted (re-create it with `lgdata "
               "pack`); on file systems without locking set HDF5_USE_FILE_LOCKING=FALSE",
               path, why);
    }
    char fmt[64];
    lg_h5_attr_get_str(s->file, "format", path, fmt, sizeof fmt);
    if (strcmp(fmt, LG_SHARD_FORMAT) != 0)
        lg_die("%s: attribute 'format' is '%s', expected '%s' (see data/FORMAT.md)", path, fmt, LG_SHARD_FORMAT);
    lg_shard_meta *m = &s->meta;
    int64_t ver = lg_h5_attr_get_i64(s->file, "format_version", path);
    if (ver != LG_SHARD_VERSION)
        lg_die("%s: attribute 'format_version' is %lld, this build reads version %d (re-pack the data with this "
               "build's `lgdata pack`, or use the lgtrain that wrote it)",
               path, (long long)ver, LG_SHARD_VERSION);
    m->format_version = (int)ver;
    m->vocab_size = lg_h5_attr_get_i64(s->file, "vocab_size", path);
    m->bos_id = lg_h5_attr_get_i64(s->file, "bos_id", path);
    m->eos_id = lg_h5_attr_get_i64(s->file, "eos_id", path);
    m->seq_len = lg_h5_attr_get_i64(s->file, "seq_len", path);
    m->n_sequences = lg_h5_attr_get_u64(s->file, "n_sequences", path);
    m->n_tokens = lg_h5_attr_get_u64(s->file, "n_tokens", path);
    m->n_docs = lg_h5_attr_get_u64(s->file, "n_docs", path);
    m->tokenizer_hash = lg_h5_attr_get_u64(s->file, "tokenizer_hash", path);
    if (m->vocab_size <= 0 || m->vocab_size > (1ll << 31))
        lg_die("%s: attribute 'vocab_size' is %lld, expected 1..2^31", path, (long long)m->vocab_size);
    if (m->seq_len <= 0 || m->seq_len > (1ll << 30))
        lg_die("%s: attribute 'seq_len' is %lld, expected 1..2^30", path, (long long)m->seq_len);
    if (m->bos_id < -1 || m->bos_id >= m->vocab_size)
        lg_die("%s: attribute 'bos_id' is %lld, expected -1 or 0..vocab_size-1 (%lld)", path, (long long)m->bos_id,
               (long long)m->vocab_size - 1);
    if (m->eos_id < -1 || m->eos_id >= m->vocab_size)
        lg_die("%s: attribute 'eos_id' is %lld, expected -1 or 0..vocab_size-1 (%lld)", path, (long long)m->eos_id,
               (long long)m->vocab_size - 1);
    if (m->n_tokens != m->n_sequences * (uint64_t)m->seq_len)
        lg_die("%s: attribute 'n_tokens' is %llu, expected n_sequences * seq_len = %llu", path,
               (unsigned long long)m->n_tokens, (unsigned long long)(m->n_sequences * (uint64_t)m->seq_len));

    s->tokens = open_dataset(s->file, "tokens", path, 1);
    hsize_t dims[2];
    dataset_dims(s->tokens, path, "tokens", 2, dims);
    if (dims[0] != m->n_sequences || dims[1] != (hsize_t)m->seq_len)
        lg_die("%s: dataset '/tokens' has shape (%llu, %llu), the attributes say (n_sequences=%llu, seq_len=%lld): the "
               "file was not closed properly; re-create it",
               path, (unsigned long long)dims[0], (unsigned long long)dims[1], (unsigned long long)m->n_sequences,
               (long long)m->seq_len);
    m->token_bytes = dataset_uint_size(s->tokens, path, "tokens", 1, 1, 0);
    if (m->token_bytes == 2 && m->vocab_size > 65536)
        lg_die("%s: '/tokens' is uint16 but vocab_size is %lld (> 65536): ids would not fit", path,
               (long long)m->vocab_size);
    check_filters(s->tokens, path, "tokens", &s->chunk_rows, dims[1], m->token_bytes);
    m->chunk_rows = s->chunk_rows;

    s->crc = open_dataset(s->file, "seq_crc32", path, 0);
    if (s->crc >= 0) {
        hsize_t cd[1];
        dataset_dims(s->crc, path, "seq_crc32", 1, cd);
        if (cd[0] != m->n_sequences)
            lg_die("%s: dataset '/seq_crc32' has %llu entries, expected n_sequences = %llu", path,
                   (unsigned long long)cd[0], (unsigned long long)m->n_sequences);
        dataset_uint_size(s->crc, path, "seq_crc32", 0, 1, 0);
        check_filters(s->crc, path, "seq_crc32", NULL, 1, 4);
    }
    s->docs = open_dataset(s->file, "doc_starts", path, m->n_docs > 0);
    if (s->docs >= 0) {
        hsize_t dd[1];
        dataset_dims(s->docs, path, "doc_starts", 1, dd);
        if (dd[0] != m->n_docs)
            lg_die("%s: dataset '/doc_starts' has %llu entries, attribute 'n_docs' says %llu", path,
                   (unsigned long long)dd[0], (unsigned long long)m->n_docs);
        dataset_uint_size(s->docs, path, "doc_starts", 0, 0, 1);
        check_filters(s->docs, path, "doc_starts", NULL, 1, 8);
    }
    lg_h5_unlock();
    return s;
}

const lg_shard_meta *lg_shard_get_meta(const lg_shard *s) { return &s->meta; }
const char *lg_shard_path(const lg_shard *s) { return s->path; }
uint64_t lg_shard_chunk_rows(const lg_shard *s) { return s->chunk_rows; }

void lg_shard_describe(const lg_shard *s, char *buf, int n) {
    lg_h5_lock();
    hid_t dcpl = H5Dget_create_plist(s->tokens);
    LG_H5CHECK(dcpl, s->path, "tokens", "H5Dget_create_plist", NULL);
    int off = 0;
    if (H5Pget_layout(dcpl) == H5D_CHUNKED) {
        hsize_t cd[2];
        LG_H5CHECK(H5Pget_chunk(dcpl, 2, cd), s->path, "tokens", "H5Pget_chunk", NULL);
        off += snprintf(buf + off, n - off, "chunks (%llu, %llu)", (unsigned long long)cd[0], (unsigned long long)cd[1]);
    } else {
        off += snprintf(buf + off, n - off, "not chunked");
    }
    int nf = H5Pget_nfilters(dcpl);
    for (int i = 0; i < nf && off < n; i++) {
        unsigned flags, cd[8];
        size_t ncd = 8;
        char fname[64] = "";
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cd, sizeof fname, fname, NULL);
        LG_H5CHECK(id, s->path, "tokens", "H5Pget_filter2", NULL);
        off += snprintf(buf + off, n - off, ", filter %d", (int)id);
        if (id == LG_H5Z_ZSTD && ncd > 0) off += snprintf(buf + off, n - off, " (zstd level %u)", cd[0]);
    }
    LG_H5CHECK(H5Pclose(dcpl), s->path, "tokens", "H5Pclose", NULL);
    hsize_t stored = H5Dget_storage_size(s->tokens);
    double raw = (double)s->meta.n_tokens * s->meta.token_bytes;
    char a[32], b[32];
    lg_format_bytes((double)stored, a, sizeof a);
    lg_format_bytes(raw, b, sizeof b);
    if (off < n) snprintf(buf + off, n - off, ", stored %s of %s (ratio %.2f)", a, b, stored ? raw / (double)stored : 0.0);
    lg_h5_unlock();
}

// Rows [row0, row0+nrows) of a dataset with `cols` columns (cols = 0 for 1-D) into buf.
static void read_slab(hid_t d, const char *path, const char *name, hid_t memtype, uint64_t row0, uint64_t nrows,
                      uint64_t cols, void *buf) {
    hid_t fs = H5Dget_space(d);
    LG_H5CHECK(fs, path, name, "H5Dget_space", HINT_CORRUPT);
    hsize_t start[2] = {row0, 0}, count[2] = {nrows, cols};
    int rank = cols ? 2 : 1;
    LG_H5CHECK(H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL), path, name, "H5Sselect_hyperslab",
               "row range outside the dataset");
    hid_t ms = H5Screate_simple(rank, count, NULL);
    LG_H5CHECK(ms, path, name, "H5Screate_simple", NULL);
    char what[96];
    snprintf(what, sizeof what, "/%s rows %llu..%llu", name, (unsigned long long)row0,
             (unsigned long long)(row0 + nrows - 1));
    LG_H5CHECK(H5Dread(d, memtype, ms, fs, H5P_DEFAULT, buf), path, what, "H5Dread", HINT_CORRUPT);
    LG_H5CHECK(H5Sclose(ms), path, name, "H5Sclose", NULL);
    LG_H5CHECK(H5Sclose(fs), path, name, "H5Sclose", NULL);
}

int lg_shard_read_rows(lg_shard *s, uint64_t row0, uint64_t nrows, void *buf, uint32_t *crc) {
    if (nrows == 0) return 0;
    if (row0 + nrows > s->meta.n_sequences)
        lg_die("%s: read of rows %llu..%llu past n_sequences %llu (internal error)", s->path, (unsigned long long)row0,
               (unsigned long long)(row0 + nrows - 1), (unsigned long long)s->meta.n_sequences);
    lg_h5_lock();
    read_slab(s->tokens, s->path, "tokens", s->meta.token_bytes == 2 ? H5T_NATIVE_UINT16 : H5T_NATIVE_UINT32, row0,
              nrows, (uint64_t)s->meta.seq_len, buf);
    int has = 0;
    if (crc && s->crc >= 0) {
        read_slab(s->crc, s->path, "seq_crc32", H5T_NATIVE_UINT32, row0, nrows, 0, crc);
        has = 1;
    }
    lg_h5_unlock();
    return has;
}

void lg_shard_check_row(const lg_shard *s, uint64_t row, const void *raw, int has_crc, uint32_t crc, int32_t *out) {
    const lg_shard_meta *m = &s->meta;
    size_t n = (size_t)m->seq_len;
    if (has_crc) {
        uint32_t got = lg_crc32(0, raw, n * (size_t)m->token_bytes);
        if (got != crc)
            lg_die("%s: /tokens row %llu: CRC-32 0x%08x does not match /seq_crc32 (0x%08x): the shard is corrupted; "
                   "re-create it with `lgdata pack`",
                   s->path, (unsigned long long)row, got, crc);
    }
    uint32_t mx = 0;
    if (m->token_bytes == 2) {
        const uint16_t *t = raw;
        for (size_t i = 0; i < n; i++) { out[i] = t[i]; mx = t[i] > mx ? t[i] : mx; }
    } else {
        const uint32_t *t = raw;
        for (size_t i = 0; i < n; i++) { out[i] = (int32_t)t[i]; mx = t[i] > mx ? t[i] : mx; }
    }
    if ((int64_t)mx >= m->vocab_size) {
        size_t i = 0;
        while ((uint32_t)out[i] != mx) i++;
        lg_die("%s: /tokens row %llu position %zu: token id %u >= vocab_size %lld (the shard's ids do not fit its "
               "vocabulary: corrupted, or packed with the wrong --vocab)",
               s->path, (unsigned long long)row, i, mx, (long long)m->vocab_size);
    }
}

uint64_t *lg_shard_read_doc_starts(lg_shard *s, uint64_t *n) {
    *n = s->meta.n_docs;
    uint64_t *d = lg_malloc((s->meta.n_docs ? s->meta.n_docs : 1) * sizeof *d);
    if (s->meta.n_docs) {
        lg_h5_lock();
        read_slab(s->docs, s->path, "doc_starts", H5T_NATIVE_UINT64, 0, s->meta.n_docs, 0, d);
        lg_h5_unlock();
    }
    return d;
}

void lg_shard_close(lg_shard *s) {
    if (!s) return;
    lg_h5_lock();
    if (s->docs >= 0) LG_H5CHECK(H5Dclose(s->docs), s->path, "doc_starts", "H5Dclose", NULL);
    if (s->crc >= 0) LG_H5CHECK(H5Dclose(s->crc), s->path, "seq_crc32", "H5Dclose", NULL);
    LG_H5CHECK(H5Dclose(s->tokens), s->path, "tokens", "H5Dclose", NULL);
    LG_H5CHECK(H5Fclose(s->file), s->path, "file", "H5Fclose", NULL);
    lg_h5_unlock();
    free(s->path);
    free(s);
}

// ---- writer ----

struct lg_shard_writer {
    char *path, *tmp;
    lg_shard_meta m;
    hid_t file, tokens, crc, docs;
    uint64_t rows_per_chunk;
    uint64_t rows;          // rows written to the file
    uint64_t buffered;      // rows waiting in buf
    uint8_t *buf;           // (rows_per_chunk, seq_len) token_bytes each
    uint32_t *crcbuf;       // (rows_per_chunk)
    uint64_t *doc, n_doc, cap_doc;
};

static hid_t create_extendible(hid_t file, const char *tmp, const char *name, int rank, hsize_t cols, hsize_t chunk0,
                               hid_t ftype, int level) {
    hsize_t dims[2] = {0, cols}, maxd[2] = {H5S_UNLIMITED, cols}, ch[2] = {chunk0, cols};
    hid_t sp = H5Screate_simple(rank, dims, maxd);
    LG_H5CHECK(sp, tmp, name, "H5Screate_simple", NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    LG_H5CHECK(dcpl, tmp, name, "H5Pcreate", NULL);
    LG_H5CHECK(H5Pset_chunk(dcpl, rank, ch), tmp, name, "H5Pset_chunk", NULL);
    if (level > 0) {
        unsigned cd[1] = {(unsigned)level};
        LG_H5CHECK(H5Pset_filter(dcpl, LG_H5Z_ZSTD, H5Z_FLAG_MANDATORY, 1, cd), tmp, name, "H5Pset_filter(zstd)", NULL);
    }
    hid_t d = H5Dcreate2(file, name, ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    LG_H5CHECK(d, tmp, name, "H5Dcreate2", "is the disk full or the directory read-only?");
    LG_H5CHECK(H5Pclose(dcpl), tmp, name, "H5Pclose", NULL);
    LG_H5CHECK(H5Sclose(sp), tmp, name, "H5Sclose", NULL);
    return d;
}

static void append_slab(hid_t d, const char *tmp, const char *name, hid_t memtype, uint64_t row0, uint64_t nrows,
                        uint64_t cols, const void *buf) {
    if (nrows == 0) return;
    hsize_t nd[2] = {row0 + nrows, cols};
    LG_H5CHECK(H5Dset_extent(d, nd), tmp, name, "H5Dset_extent", NULL);
    hid_t fs = H5Dget_space(d);
    LG_H5CHECK(fs, tmp, name, "H5Dget_space", NULL);
    hsize_t start[2] = {row0, 0}, count[2] = {nrows, cols};
    LG_H5CHECK(H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL), tmp, name, "H5Sselect_hyperslab", NULL);
    hid_t ms = H5Screate_simple(cols ? 2 : 1, count, NULL);
    LG_H5CHECK(ms, tmp, name, "H5Screate_simple", NULL);
    LG_H5CHECK(H5Dwrite(d, memtype, ms, fs, H5P_DEFAULT, buf), tmp, name, "H5Dwrite", "is the disk full?");
    LG_H5CHECK(H5Sclose(ms), tmp, name, "H5Sclose", NULL);
    LG_H5CHECK(H5Sclose(fs), tmp, name, "H5Sclose", NULL);
}

lg_shard_writer *lg_shard_writer_open(const char *path, const lg_shard_meta *m) {
    if (m->seq_len <= 0 || m->vocab_size <= 0) lg_die("%s: writer needs seq_len > 0 and vocab_size > 0", path);
    lg_h5_lock();
    lg_shard_writer *w = lg_calloc(1, sizeof *w);
    w->m = *m;
    if (!w->m.token_bytes) w->m.token_bytes = m->vocab_size <= 65536 ? 2 : 4;
    if (w->m.token_bytes == 2 && m->vocab_size > 65536) lg_die("%s: vocab_size %lld needs uint32 ids", path, (long long)m->vocab_size);
    w->path = lg_strdup(path);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    w->tmp = lg_strdup(tmp);
    w->file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    LG_H5CHECK(w->file, tmp, "file", "H5Fcreate", "is the directory writable?");
    uint64_t row_bytes = (uint64_t)m->seq_len * w->m.token_bytes;
    w->rows_per_chunk = m->chunk_rows ? m->chunk_rows : LG_SHARD_CHUNK_BYTES / row_bytes;
    if (w->rows_per_chunk == 0) w->rows_per_chunk = 1;
    hid_t tt = w->m.token_bytes == 2 ? H5T_STD_U16LE : H5T_STD_U32LE;
    w->tokens = create_extendible(w->file, tmp, "tokens", 2, (hsize_t)m->seq_len, w->rows_per_chunk, tt, m->zstd_level);
    w->crc = create_extendible(w->file, tmp, "seq_crc32", 1, 0, 65536, H5T_STD_U32LE, m->zstd_level);
    w->buf = lg_malloc(w->rows_per_chunk * row_bytes);
    w->crcbuf = lg_malloc(w->rows_per_chunk * sizeof(uint32_t));
    lg_h5_unlock();
    return w;
}

void lg_shard_writer_doc_start(lg_shard_writer *w, uint64_t off) {
    if (w->n_doc && off <= w->doc[w->n_doc - 1]) lg_die("%s: document starts must increase (internal error)", w->path);
    if (w->n_doc == w->cap_doc) {
        w->cap_doc = w->cap_doc ? 2 * w->cap_doc : 1024;
        w->doc = lg_realloc(w->doc, w->cap_doc * sizeof *w->doc);
    }
    w->doc[w->n_doc++] = off;
}

static void flush_rows(lg_shard_writer *w) {
    if (!w->buffered) return;
    lg_h5_lock();
    append_slab(w->tokens, w->tmp, "tokens", w->m.token_bytes == 2 ? H5T_NATIVE_UINT16 : H5T_NATIVE_UINT32, w->rows,
                w->buffered, (uint64_t)w->m.seq_len, w->buf);
    append_slab(w->crc, w->tmp, "seq_crc32", H5T_NATIVE_UINT32, w->rows, w->buffered, 0, w->crcbuf);
    lg_h5_unlock();
    w->rows += w->buffered;
    w->buffered = 0;
}

void lg_shard_writer_append(lg_shard_writer *w, const uint32_t *t) {
    size_t n = (size_t)w->m.seq_len;
    uint8_t *dst = w->buf + w->buffered * n * w->m.token_bytes;
    for (size_t i = 0; i < n; i++)
        if ((int64_t)t[i] >= w->m.vocab_size)
            lg_die("%s: row %llu position %zu: token id %u >= vocab_size %lld", w->path,
                   (unsigned long long)(w->rows + w->buffered), i, t[i], (long long)w->m.vocab_size);
    if (w->m.token_bytes == 2) {
        uint16_t *d = (uint16_t *)dst;
        for (size_t i = 0; i < n; i++) d[i] = (uint16_t)t[i];
    } else {
        memcpy(dst, t, n * 4);
    }
    w->crcbuf[w->buffered] = lg_crc32(0, dst, n * w->m.token_bytes);
    if (++w->buffered == w->rows_per_chunk) flush_rows(w);
}

uint64_t lg_shard_writer_rows(const lg_shard_writer *w) { return w->rows + w->buffered; }

void lg_shard_writer_close(lg_shard_writer *w) {
    flush_rows(w);
    lg_h5_lock();
    uint64_t ntok = w->rows * (uint64_t)w->m.seq_len;
    if (w->n_doc && w->doc[w->n_doc - 1] >= ntok) {
        // Documents that start in the dropped tail (no full sequence) are not recorded.
        while (w->n_doc && w->doc[w->n_doc - 1] >= ntok) w->n_doc--;
    }
    w->docs = create_extendible(w->file, w->tmp, "doc_starts", 1, 0, 8192, H5T_STD_U64LE, w->m.zstd_level);
    append_slab(w->docs, w->tmp, "doc_starts", H5T_NATIVE_UINT64, 0, w->n_doc, 0, w->doc);
    hid_t f = w->file;
    const char *p = w->tmp;
    lg_h5_attr_set_str(f, "format", LG_SHARD_FORMAT, p);
    lg_h5_attr_set_i64(f, "format_version", LG_SHARD_VERSION, p);
    lg_h5_attr_set_i64(f, "vocab_size", w->m.vocab_size, p);
    lg_h5_attr_set_i64(f, "bos_id", w->m.bos_id, p);
    lg_h5_attr_set_i64(f, "eos_id", w->m.eos_id, p);
    lg_h5_attr_set_i64(f, "seq_len", w->m.seq_len, p);
    lg_h5_attr_set_u64(f, "n_sequences", w->rows, p);
    lg_h5_attr_set_u64(f, "n_tokens", ntok, p);
    lg_h5_attr_set_u64(f, "n_docs", w->n_doc, p);
    lg_h5_attr_set_u64(f, "tokenizer_hash", w->m.tokenizer_hash, p);
    lg_h5_attr_set_i64(f, "zstd_level", w->m.zstd_level, p);
    lg_h5_attr_set_str(f, "created_by", "lgdata (lgtrain)", p);
    LG_H5CHECK(H5Dclose(w->docs), w->tmp, "doc_starts", "H5Dclose", NULL);
    LG_H5CHECK(H5Dclose(w->crc), w->tmp, "seq_crc32", "H5Dclose", NULL);
    LG_H5CHECK(H5Dclose(w->tokens), w->tmp, "tokens", "H5Dclose", NULL);
    LG_H5CHECK(H5Fclose(w->file), w->tmp, "file", "H5Fclose", "is the disk full?");
    lg_h5_unlock();
    if (rename(w->tmp, w->path) != 0) lg_die("rename %s -> %s failed", w->tmp, w->path);
    free(w->buf);
    free(w->crcbuf);
    free(w->doc);
    free(w->path);
    free(w->tmp);
    free(w);
}
#endif
