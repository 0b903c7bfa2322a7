// zstd_filter.c: see zstd_filter.h.
#ifdef LG_HAVE_HDF5
#include "zstd_filter.h"

#include <hdf5.h>
#include <stdio.h>
#include <string.h>
#include <zstd.h>

#include "../trainer/util.h"

static _Thread_local char t_err[256];

const char *lg_h5z_zstd_last_error(void) {
    static _Thread_local char copy[256];
    memcpy(copy, t_err, sizeof copy);
    t_err[0] = 0;
    return copy;
}

// Frames without a recorded content size (other writers' streaming encoders) are decoded by streaming
// into a growing buffer; our own frames and hdf5plugin's always take the one-shot path.
static size_t decode_stream(const void *in, size_t nbytes, void **out_buf, size_t *out_size) {
    ZSTD_DStream *ds = ZSTD_createDStream();
    if (!ds) { snprintf(t_err, sizeof t_err, "out of memory creating a decoder"); return 0; }
    size_t cap = nbytes * 4 + 4096, used = 0;
    char *out = H5allocate_memory(cap, 0);
    ZSTD_inBuffer ib = {in, nbytes, 0};
    for (;;) {
        if (!out) { ZSTD_freeDStream(ds); snprintf(t_err, sizeof t_err, "out of memory"); return 0; }
        ZSTD_outBuffer ob = {out + used, cap - used, 0};
        size_t r = ZSTD_decompressStream(ds, &ob, &ib);
        used += ob.pos;
        if (ZSTD_isError(r)) {
            snprintf(t_err, sizeof t_err, "%s", ZSTD_getErrorName(r));
            H5free_memory(out);
            ZSTD_freeDStream(ds);
            return 0;
        }
        if (r == 0) break;  // frame complete
        if (ib.pos == ib.size && ob.pos < ob.size) {
            snprintf(t_err, sizeof t_err, "truncated frame");
            H5free_memory(out);
            ZSTD_freeDStream(ds);
            return 0;
        }
        if (used == cap) {
            cap *= 2;
            out = H5resize_memory(out, cap);
        }
    }
    ZSTD_freeDStream(ds);
    *out_buf = out;
    *out_size = cap;
    return used;
}

static size_t zstd_filter(unsigned int flags, size_t cd_nelmts, const unsigned int cd_values[], size_t nbytes,
                          size_t *buf_size, void **buf) {
    if (flags & H5Z_FLAG_REVERSE) {
        unsigned long long n = ZSTD_getFrameContentSize(*buf, nbytes);
        if (n == ZSTD_CONTENTSIZE_ERROR) {
            snprintf(t_err, sizeof t_err, "chunk is not a zstd frame (corrupted data)");
            return 0;
        }
        void *out = NULL;
        size_t got, cap;
        if (n == ZSTD_CONTENTSIZE_UNKNOWN) {
            got = decode_stream(*buf, nbytes, &out, &cap);
            if (!got) return 0;
        } else {
            cap = n ? (size_t)n : 1;
            out = H5allocate_memory(cap, 0);
            if (!out) { snprintf(t_err, sizeof t_err, "out of memory (%llu bytes)", n); return 0; }
            got = ZSTD_decompress(out, (size_t)n, *buf, nbytes);
            if (ZSTD_isError(got)) {
                snprintf(t_err, sizeof t_err, "%s", ZSTD_getErrorName(got));
                H5free_memory(out);
                return 0;
            }
            if (got != n) {
                snprintf(t_err, sizeof t_err, "frame decoded to %zu bytes, its header says %llu", got, n);
                H5free_memory(out);
                return 0;
            }
        }
        H5free_memory(*buf);
        *buf = out;
        *buf_size = cap;
        return got;
    }
    int level = cd_nelmts > 0 ? (int)cd_values[0] : 3;
    size_t cap = ZSTD_compressBound(nbytes);
    void *out = H5allocate_memory(cap, 0);
    if (!out) return 0;
    size_t got = ZSTD_compress(out, cap, *buf, nbytes, level);
    if (ZSTD_isError(got)) {
        snprintf(t_err, sizeof t_err, "%s", ZSTD_getErrorName(got));
        H5free_memory(out);
        return 0;
    }
    H5free_memory(*buf);
    *buf = out;
    *buf_size = cap;
    return got;
}

void lg_h5z_zstd_register(void) {
    static const H5Z_class2_t cls = {
        H5Z_CLASS_T_VERS, (H5Z_filter_t)LG_H5Z_ZSTD, 1, 1, "zstd (lgtrain)", NULL, NULL, zstd_filter,
    };
    if (H5Zregister(&cls) < 0) lg_die("H5Zregister(zstd, id %d) failed: HDF5 refused the filter", LG_H5Z_ZSTD);
}
#endif
