// safetensors.c: see safetensors.h.
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../trainer/util.h"
#include "json.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this reader assumes a little-endian host"
#endif

// The reference implementation refuses headers over 100 MB; a larger length means a corrupt or foreign file.
#define ST_MAX_HEADER (100ULL * 1000 * 1000)

// ---------------------------------------------------------------------------------------------------------
// dtype conversions

static uint32_t f32_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}
static float bits_f32(uint32_t u) {
    float x;
    memcpy(&x, &u, 4);
    return x;
}

float lg_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t lg_f32_to_bf16(float x) {
    uint32_t u = f32_bits(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040);  // NaN: keep sign, force quiet
    // round to nearest even: add 0x7fff plus the lowest kept bit; a carry may reach the exponent (-> inf)
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float lg_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    if (exp == 0) {
        if (mant == 0) return bits_f32(sign);
        // subnormal: mant * 2^-24, exact in fp32; normalize the mantissa
        int e = -1;
        do {
            mant <<= 1;
            e++;
        } while (!(mant & 0x400));
        mant &= 0x3ff;
        return bits_f32(sign | ((uint32_t)(127 - 15 - e) << 23) | (mant << 13));
    }
    if (exp == 31) return bits_f32(sign | 0x7f800000u | (mant << 13));  // inf / NaN (payload kept)
    return bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t lg_f32_to_f16(float x) {
    uint32_t u = f32_bits(x);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00 | ((a >> 13) & 0x3ff));  // NaN stays NaN (quiet)
    if (a >= 0x47800000u) return (uint16_t)(sign | 0x7c00);                        // >= 65536 (or inf) -> inf
    if (a >= 0x38800000u) {
        // normal f16 range [2^-14, 65536): rebias the exponent, round the 13 dropped mantissa bits
        uint32_t h = ((a >> 23) - 112) << 10 | ((a >> 13) & 0x3ff);
        uint32_t rem = a & 0x1fff;
        if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;  // carry into the exponent is right (65520 -> inf)
        return (uint16_t)(sign | h);
    }
    if (a <= 0x33000000u) return sign;  // <= 2^-25: rounds to zero (2^-25 is a tie, zero is even)
    // subnormal f16: units of 2^-24; value = m * 2^(e-150), so units = m >> (126 - e)
    uint32_t e = a >> 23, m = (a & 0x7fffff) | 0x800000;
    uint32_t shift = 126 - e;  // 14..24
    uint32_t h = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) h++;  // may become 0x400: the smallest normal, correctly encoded
    return (uint16_t)(sign | h);
}

const char *lg_st_dtype_name(lg_st_dtype d) {
    switch (d) {
    case LG_ST_F32: return "F32";
    case LG_ST_F16: return "F16";
    case LG_ST_BF16: return "BF16";
    default: return "?";
    }
}

int lg_st_dtype_bytes(lg_st_dtype d) { return d == LG_ST_F32 ? 4 : d == LG_ST_OTHER ? 0 : 2; }

int lg_st_dtype_parse(const char *s, lg_st_dtype *out) {
    if (!strcmp(s, "bf16") || !strcmp(s, "bfloat16") || !strcmp(s, "BF16")) *out = LG_ST_BF16;
    else if (!strcmp(s, "f16") || !strcmp(s, "float16") || !strcmp(s, "fp16") || !strcmp(s, "F16")) *out = LG_ST_F16;
    else if (!strcmp(s, "f32") || !strcmp(s, "float32") || !strcmp(s, "fp32") || !strcmp(s, "F32")) *out = LG_ST_F32;
    else return 0;
    return 1;
}

// Element size of every byte-addressable safetensors dtype; 0 for names that are not safetensors dtypes.
static int header_dtype(const char *s, lg_st_dtype *d) {
    static const struct { const char *name; int bytes; } other[] = {
        {"BOOL", 1}, {"U8", 1}, {"I8", 1}, {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"F8_E8M0", 1}, {"I16", 2}, {"U16", 2},
        {"I32", 4}, {"U32", 4}, {"F64", 8}, {"I64", 8}, {"U64", 8}, {"C64", 8},
    };
    if (!strcmp(s, "F32")) { *d = LG_ST_F32; return 4; }
    if (!strcmp(s, "F16")) { *d = LG_ST_F16; return 2; }
    if (!strcmp(s, "BF16")) { *d = LG_ST_BF16; return 2; }
    *d = LG_ST_OTHER;
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
        if (!strcmp(s, other[i].name)) return other[i].bytes;
    return 0;
}

// ---------------------------------------------------------------------------------------------------------
// reader

static uint64_t get_u64(const lg_json *v, const char *path, const char *tname, const char *field) {
    if (v->type != LG_JSON_NUMBER || !v->num_text || strpbrk(v->num_text, ".eE-") || v->num_text[0] == 'I' ||
        v->num_text[0] == 'N')
        lg_die("%s: tensor %s: %s must hold non-negative integers (corrupt header)", path, tname, field);
    errno = 0;
    unsigned long long x = strtoull(v->num_text, NULL, 10);
    if (errno == ERANGE) lg_die("%s: tensor %s: %s value %s is out of range (corrupt header)", path, tname, field, v->num_text);
    return (uint64_t)x;
}

static const lg_st_file *g_sort_file;
static int cmp_begin(const void *a, const void *b) {
    const lg_st_tensor *x = &g_sort_file->t[*(const int *)a], *y = &g_sort_file->t[*(const int *)b];
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}

static void parse_header(lg_st_file *f, const char *text, size_t len) {
    const char *path = f->path;
    char err[512];
    lg_json *h = lg_json_parse(text, len, err, sizeof err);
    if (!h) lg_die("%s: safetensors header is not valid JSON: %s", path, err);
    if (h->type != LG_JSON_OBJECT) lg_die("%s: safetensors header must be a JSON object", path);
    f->t = lg_calloc((size_t)(h->n ? h->n : 1), sizeof(lg_st_tensor));
    f->n = 0;
    for (int i = 0; i < h->n; i++) {
        const lg_json *e = h->items[i];
        if (!strcmp(e->key, "__metadata__")) continue;  // free-form string map; nothing we need
        if (e->type != LG_JSON_OBJECT) lg_die("%s: tensor %s: header entry must be an object", path, e->key);
        lg_st_tensor *t = &f->t[f->n];
        t->name = lg_strdup(e->key);
        const lg_json *dt = lg_json_get(e, "dtype"), *sh = lg_json_get(e, "shape"), *off = lg_json_get(e, "data_offsets");
        if (!dt || dt->type != LG_JSON_STRING) lg_die("%s: tensor %s: \"dtype\" missing or not a string", path, e->key);
        if (!sh || sh->type != LG_JSON_ARRAY) lg_die("%s: tensor %s: \"shape\" missing or not an array", path, e->key);
        if (!off || off->type != LG_JSON_ARRAY || off->n != 2)
            lg_die("%s: tensor %s: \"data_offsets\" missing or not [begin, end]", path, e->key);
        snprintf(t->dtype_name, sizeof t->dtype_name, "%s", dt->str);
        t->elem_bytes = header_dtype(dt->str, &t->dtype);
        if (!t->elem_bytes)
            lg_die("%s: tensor %s: unknown dtype \"%s\" (expected F32, F16 or BF16)", path, e->key, dt->str);
        if (sh->n > LG_ST_MAX_DIMS) lg_die("%s: tensor %s: %d dimensions (at most %d supported)", path, e->key, sh->n, LG_ST_MAX_DIMS);
        t->ndim = sh->n;
        uint64_t numel = 1;
        for (int d = 0; d < sh->n; d++) {
            uint64_t s = get_u64(sh->items[d], path, e->key, "shape");
            if (s > (uint64_t)INT64_MAX || (s && numel > (uint64_t)INT64_MAX / s))
                lg_die("%s: tensor %s: shape is too large (corrupt header)", path, e->key);
            t->shape[d] = (int64_t)s;
            numel *= s;
        }
        t->numel = (int64_t)numel;
        t->begin = get_u64(off->items[0], path, e->key, "data_offsets");
        t->end = get_u64(off->items[1], path, e->key, "data_offsets");
        if (t->end < t->begin)
            lg_die("%s: tensor %s: data_offsets [%llu, %llu] end before they begin", path, e->key,
                   (unsigned long long)t->begin, (unsigned long long)t->end);
        if (numel > UINT64_MAX / (uint64_t)t->elem_bytes || t->end - t->begin != numel * (uint64_t)t->elem_bytes)
            lg_die("%s: tensor %s: data_offsets [%llu, %llu] hold %llu bytes but dtype %s with %llu elements needs %llu",
                   path, e->key, (unsigned long long)t->begin, (unsigned long long)t->end,
                   (unsigned long long)(t->end - t->begin), t->dtype_name, (unsigned long long)numel,
                   (unsigned long long)(numel * (uint64_t)t->elem_bytes));
        f->n++;
    }
    lg_json_free(h);

    // The data area must be covered exactly: sorted by begin, each tensor starts where the previous ended,
    // the first at 0, the last at the end of the file.
    uint64_t data_size = f->size - 8 - f->header_len;
    int *ord = lg_malloc(sizeof(int) * (size_t)(f->n ? f->n : 1));
    for (int i = 0; i < f->n; i++) ord[i] = i;
    g_sort_file = f;
    qsort(ord, (size_t)f->n, sizeof(int), cmp_begin);
    uint64_t at = 0;
    for (int k = 0; k < f->n; k++) {
        const lg_st_tensor *t = &f->t[ord[k]];
        if (t->begin != at) {
            if (t->begin < at)
                lg_die("%s: tensor %s: data_offsets [%llu, %llu] overlap the previous tensor (which ends at %llu)", path,
                       t->name, (unsigned long long)t->begin, (unsigned long long)t->end, (unsigned long long)at);
            lg_die("%s: tensor %s: data_offsets begin at %llu but the previous tensor ends at %llu (tensors must be contiguous)",
                   path, t->name, (unsigned long long)t->begin, (unsigned long long)at);
        }
        if (t->end > data_size)
            lg_die("%s: file is truncated: tensor %s ends at byte %llu of the data area, which holds only %llu bytes "
                   "(file size %zu, header %llu bytes)",
                   path, t->name, (unsigned long long)t->end, (unsigned long long)data_size, f->size,
                   (unsigned long long)f->header_len);
        at = t->end;
    }
    free(ord);
    if (at != data_size)
        lg_die("%s: %llu bytes after the last tensor (data area %llu bytes, tensors end at %llu): not a valid safetensors file",
               path, (unsigned long long)(data_size - at), (unsigned long long)data_size, (unsigned long long)at);
}

void lg_st_open(lg_st_file *f, const char *path) {
    memset(f, 0, sizeof *f);
    f->fd = -1;
    f->path = lg_strdup(path);
    int fd = open(path, O_RDONLY);
    if (fd < 0) lg_die("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) lg_die("%s: fstat failed: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) lg_die("%s: not a regular file", path);
    f->size = (size_t)st.st_size;
    if (f->size < 8)
        lg_die("%s: file is %zu bytes, too short for a safetensors file (8-byte header length first): truncated?", path, f->size);
    void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) lg_die("%s: mmap of %zu bytes failed: %s", path, f->size, strerror(errno));
    f->fd = fd;
    f->map = m;
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | f->map[i];
    f->header_len = hl;
    if (hl > ST_MAX_HEADER)
        lg_die("%s: header length %llu (first 8 bytes, little-endian) is larger than the 100 MB limit: corrupt or not a "
               "safetensors file",
               path, (unsigned long long)hl);
    if (hl > f->size - 8)
        lg_die("%s: header length %llu (first 8 bytes) runs past the end of the %zu-byte file: truncated or not a "
               "safetensors file",
               path, (unsigned long long)hl, f->size);
    if (hl < 2 || f->map[8] != '{')
        lg_die("%s: header does not start with '{' (header length %llu): not a safetensors file", path, (unsigned long long)hl);
    f->data = f->map + 8 + hl;
    parse_header(f, (const char *)f->map + 8, (size_t)hl);
}

void lg_st_close(lg_st_file *f) {
    if (f->map) munmap((void *)f->map, f->size);
    if (f->fd >= 0) close(f->fd);
    for (int i = 0; i < f->n; i++) free(f->t[i].name);
    free(f->t);
    free(f->path);
    memset(f, 0, sizeof *f);
    f->fd = -1;
}

const lg_st_tensor *lg_st_find(const lg_st_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->t[i].name, name)) return &f->t[i];
    return NULL;
}

void lg_st_read_f32(const lg_st_file *f, const lg_st_tensor *t, float *out) {
    const uint8_t *src = f->data + t->begin;  // may be unaligned: copy bytes, never dereference wider types
    int64_t n = t->numel;
    switch (t->dtype) {
    case LG_ST_F32: memcpy(out, src, (size_t)n * 4); break;
    case LG_ST_BF16:
#pragma omp parallel for schedule(static) if (n > (1 << 20))
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            out[i] = lg_bf16_to_f32(h);
        }
        break;
    case LG_ST_F16:
#pragma omp parallel for schedule(static) if (n > (1 << 20))
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            out[i] = lg_f16_to_f32(h);
        }
        break;
    default:
        lg_die("%s: tensor %s: dtype %s is not supported (expected F32, F16 or BF16)", f->path, t->name, t->dtype_name);
    }
}

// ---------------------------------------------------------------------------------------------------------
// writer

static int64_t out_numel(const lg_st_out *t) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

uint64_t lg_st_out_bytes(const lg_st_out *t) { return (uint64_t)out_numel(t) * (uint64_t)lg_st_dtype_bytes(t->dtype); }

static void fsync_parent(const char *path) {
    char *dir = lg_strdup(path);
    char *slash = strrchr(dir, '/');
    if (slash == dir) slash[1] = 0;
    else if (slash) *slash = 0;
    else strcpy(dir, ".");
    lg_fsync_dir(dir);
    free(dir);
}

void lg_st_write(const char *path, const lg_st_out *ts, int n) {
    // header: metadata first, then tensors in the given order with increasing offsets
    lg_json *h = lg_json_new(LG_JSON_OBJECT);
    lg_json *meta = lg_json_new(LG_JSON_OBJECT);
    lg_json_set(meta, "format", lg_json_new_str("pt"));
    lg_json_set(h, "__metadata__", meta);
    uint64_t at = 0;
    for (int i = 0; i < n; i++) {
        const lg_st_out *t = &ts[i];
        if (t->dtype == LG_ST_OTHER) lg_die("%s: tensor %s: cannot write dtype other than F32/F16/BF16", path, t->name);
        if (lg_json_get(h, t->name)) lg_die("%s: tensor %s written twice", path, t->name);
        lg_json *e = lg_json_new(LG_JSON_OBJECT);
        lg_json_set(e, "dtype", lg_json_new_str(lg_st_dtype_name(t->dtype)));
        lg_json *shape = lg_json_new(LG_JSON_ARRAY);
        for (int d = 0; d < t->ndim; d++) lg_json_append(shape, lg_json_new_int(t->shape[d]));
        lg_json_set(e, "shape", shape);
        uint64_t bytes = lg_st_out_bytes(t);
        lg_json *off = lg_json_new(LG_JSON_ARRAY);
        lg_json_append(off, lg_json_new_int((int64_t)at));
        lg_json_append(off, lg_json_new_int((int64_t)(at + bytes)));
        lg_json_set(e, "data_offsets", off);
        lg_json_set(h, t->name, e);
        at += bytes;
    }
    char *text = lg_json_dump(h, -1);
    lg_json_free(h);
    size_t hl = strlen(text);
    size_t padded = (8 + hl + 7) / 8 * 8 - 8;  // spaces so that the data area starts 8-byte aligned
    text = lg_realloc(text, padded + 1);
    memset(text + hl, ' ', padded - hl);

    char *tmp = lg_malloc(strlen(path) + 32);
    sprintf(tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *fp = lg_fopen(tmp, "wb");
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    lg_fwrite(len8, 1, 8, fp, tmp);
    lg_fwrite(text, 1, padded, fp, tmp);
    free(text);
    enum { CHUNK = 1 << 20 };
    uint16_t *buf = lg_malloc(sizeof(uint16_t) * CHUNK);
    for (int i = 0; i < n; i++) {
        const lg_st_out *t = &ts[i];
        int64_t numel = out_numel(t);
        if (t->dtype == LG_ST_F32) {
            lg_fwrite(t->data, 4, (size_t)numel, fp, tmp);
            continue;
        }
        for (int64_t s = 0; s < numel; s += CHUNK) {
            int64_t m = numel - s < CHUNK ? numel - s : CHUNK;
            const float *x = t->data + s;
            int bf = t->dtype == LG_ST_BF16;
#pragma omp parallel for schedule(static) if (m > (1 << 16))
            for (int64_t k = 0; k < m; k++) buf[k] = bf ? lg_f32_to_bf16(x[k]) : lg_f32_to_f16(x[k]);
            lg_fwrite(buf, 2, (size_t)m, fp, tmp);
        }
    }
    free(buf);
    if (fflush(fp) != 0 || fsync(fileno(fp)) != 0) lg_die("%s: flush/fsync failed: %s (disk full?)", tmp, strerror(errno));
    lg_fclose(fp, tmp);
    if (rename(tmp, path) != 0) lg_die("rename %s -> %s failed: %s", tmp, path, strerror(errno));
    fsync_parent(path);
    free(tmp);
}

int lg_st_write_sharded(const char *dir, const lg_st_out *ts, int n, uint64_t max_shard_bytes) {
    if (max_shard_bytes == 0) max_shard_bytes = LG_ST_DEFAULT_SHARD_BYTES;
    uint64_t total = 0;
    for (int i = 0; i < n; i++) total += lg_st_out_bytes(&ts[i]);
    if (total <= max_shard_bytes) {
        char *p = lg_path_join(dir, "model.safetensors");
        lg_st_write(p, ts, n);
        free(p);
        return 1;
    }
    // assign shards: shard_of[i]; a new shard when adding the tensor would pass the limit
    int *first = lg_malloc(sizeof(int) * (size_t)(n + 1));
    int nshards = 0;
    uint64_t cur = 0;
    for (int i = 0; i < n; i++) {
        uint64_t b = lg_st_out_bytes(&ts[i]);
        if (i == 0 || (cur > 0 && cur + b > max_shard_bytes)) {
            first[nshards++] = i;
            cur = 0;
        }
        cur += b;
    }
    first[nshards] = n;
    if (nshards > 99999) lg_die("%s: %d shards exceed the 5-digit shard names; raise the shard size", dir, nshards);
    lg_json *index = lg_json_new(LG_JSON_OBJECT);
    lg_json *meta = lg_json_new(LG_JSON_OBJECT);
    lg_json_set(meta, "total_size", lg_json_new_int((int64_t)total));
    lg_json_set(index, "metadata", meta);
    lg_json *wm = lg_json_new(LG_JSON_OBJECT);
    for (int s = 0; s < nshards; s++) {
        char name[64];
        snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", s + 1, nshards);
        char *p = lg_path_join(dir, name);
        lg_st_write(p, ts + first[s], first[s + 1] - first[s]);
        free(p);
        for (int i = first[s]; i < first[s + 1]; i++) lg_json_set(wm, ts[i].name, lg_json_new_str(name));
    }
    lg_json_set(index, "weight_map", wm);
    char *text = lg_json_dump(index, 2);
    lg_json_free(index);
    size_t len = strlen(text);
    text = lg_realloc(text, len + 2);
    text[len++] = '\n';
    char *ip = lg_path_join(dir, "model.safetensors.index.json");
    lg_write_file_atomic(ip, text, len);
    fsync_parent(ip);
    free(ip);
    free(text);
    free(first);
    return nshards;
}
