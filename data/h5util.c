// h5util.c: see h5util.h.
#ifdef LG_HAVE_HDF5
#include "h5util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../trainer/util.h"
#include "zstd_filter.h"

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t g_lock;

static void init_once(void) {
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&g_lock, &a);
    pthread_mutexattr_destroy(&a);
    if (H5open() < 0) lg_die("H5open failed: the HDF5 library could not initialize");
    // Our messages carry the reason; HDF5's default multi-line stack dump would bury it.
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    lg_h5z_zstd_register();
}

void lg_h5_init(void) { pthread_once(&g_once, init_once); }
void lg_h5_lock(void) { lg_h5_init(); pthread_mutex_lock(&g_lock); }
void lg_h5_unlock(void) { pthread_mutex_unlock(&g_lock); }

typedef struct { char *buf; size_t n; int count; } walk_ctx;

static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *data) {
    (void)n;
    walk_ctx *w = data;
    // Innermost first (walked upward): keep the two deepest descriptions, they say what went wrong.
    if (w->count >= 2 || !e->desc || !e->desc[0]) return 0;
    size_t len = strlen(w->buf);
    snprintf(w->buf + len, w->n - len, "%s%s", w->count ? "; " : "", e->desc);
    w->count++;
    return 0;
}

const char *lg_h5_reason(char *buf, size_t n) {
    buf[0] = 0;
    walk_ctx w = {buf, n, 0};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, &w);
    const char *z = lg_h5z_zstd_last_error();
    if (z[0]) {
        size_t len = strlen(buf);
        snprintf(buf + len, n - len, "%szstd: %s", len ? "; " : "", z);
    }
    H5Eclear2(H5E_DEFAULT);
    return buf;
}

void lg_h5_fail(const char *file, const char *obj, const char *call, const char *hint, const char *src, int line) {
    char why[1024];
    lg_h5_reason(why, sizeof why);
    lg_die("%s: %s: %s failed%s%s%s%s (%s:%d)", file, obj, call, why[0] ? ": " : "", why, hint && hint[0] ? ". " : "",
           hint ? hint : "", src, line);
}

int lg_h5_attr_has(hid_t obj, const char *name, const char *file) {
    htri_t r = H5Aexists(obj, name);
    LG_H5CHECK(r, file, name, "H5Aexists", NULL);
    return r > 0;
}

static hid_t open_attr(hid_t obj, const char *name, const char *file) {
    if (!lg_h5_attr_has(obj, name, file))
        lg_die("%s: missing attribute '%s' (not an lgtrain shard, or written by another tool? see data/FORMAT.md)", file,
               name);
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    LG_H5CHECK(a, file, name, "H5Aopen", NULL);
    return a;
}

static void read_scalar(hid_t obj, const char *name, const char *file, hid_t memtype, void *out) {
    hid_t a = open_attr(obj, name, file);
    hid_t sp = H5Aget_space(a);
    LG_H5CHECK(sp, file, name, "H5Aget_space", NULL);
    hssize_t np = H5Sget_simple_extent_npoints(sp);
    if (np != 1) lg_die("%s: attribute '%s' has %lld values, expected one number", file, name, (long long)np);
    hid_t t = H5Aget_type(a);
    LG_H5CHECK(t, file, name, "H5Aget_type", NULL);
    if (H5Tget_class(t) != H5T_INTEGER) lg_die("%s: attribute '%s' is not an integer", file, name);
    LG_H5CHECK(H5Aread(a, memtype, out), file, name, "H5Aread", "the value may not fit a 64-bit integer");
    LG_H5CHECK(H5Tclose(t), file, name, "H5Tclose", NULL);
    LG_H5CHECK(H5Sclose(sp), file, name, "H5Sclose", NULL);
    LG_H5CHECK(H5Aclose(a), file, name, "H5Aclose", NULL);
}

int64_t lg_h5_attr_get_i64(hid_t obj, const char *name, const char *file) {
    int64_t v = 0;
    read_scalar(obj, name, file, H5T_NATIVE_INT64, &v);
    return v;
}
uint64_t lg_h5_attr_get_u64(hid_t obj, const char *name, const char *file) {
    uint64_t v = 0;
    read_scalar(obj, name, file, H5T_NATIVE_UINT64, &v);
    return v;
}

void lg_h5_attr_get_str(hid_t obj, const char *name, const char *file, char *buf, size_t n) {
    hid_t a = open_attr(obj, name, file);
    hid_t t = H5Aget_type(a);
    LG_H5CHECK(t, file, name, "H5Aget_type", NULL);
    if (H5Tget_class(t) != H5T_STRING) lg_die("%s: attribute '%s' is not a string", file, name);
    htri_t vl = H5Tis_variable_str(t);
    LG_H5CHECK(vl, file, name, "H5Tis_variable_str", NULL);
    hid_t mt = H5Tcopy(H5T_C_S1);
    LG_H5CHECK(mt, file, name, "H5Tcopy", NULL);
    if (vl) {
        LG_H5CHECK(H5Tset_size(mt, H5T_VARIABLE), file, name, "H5Tset_size", NULL);
        LG_H5CHECK(H5Tset_cset(mt, H5Tget_cset(t)), file, name, "H5Tset_cset", NULL);
        char *s = NULL;
        LG_H5CHECK(H5Aread(a, mt, &s), file, name, "H5Aread", NULL);
        snprintf(buf, n, "%s", s ? s : "");
        H5free_memory(s);
    } else {
        size_t sz = H5Tget_size(t);
        char *tmp = lg_calloc(sz + 1, 1);
        LG_H5CHECK(H5Tset_size(mt, sz + 1), file, name, "H5Tset_size", NULL);
        LG_H5CHECK(H5Tset_strpad(mt, H5T_STR_NULLTERM), file, name, "H5Tset_strpad", NULL);
        LG_H5CHECK(H5Aread(a, mt, tmp), file, name, "H5Aread", NULL);
        snprintf(buf, n, "%s", tmp);
        free(tmp);
    }
    LG_H5CHECK(H5Tclose(mt), file, name, "H5Tclose", NULL);
    LG_H5CHECK(H5Tclose(t), file, name, "H5Tclose", NULL);
    LG_H5CHECK(H5Aclose(a), file, name, "H5Aclose", NULL);
}

static void write_scalar(hid_t obj, const char *name, hid_t filetype, hid_t memtype, const void *v, const char *file) {
    hid_t sp = H5Screate(H5S_SCALAR);
    LG_H5CHECK(sp, file, name, "H5Screate", NULL);
    hid_t a = H5Acreate2(obj, name, filetype, sp, H5P_DEFAULT, H5P_DEFAULT);
    LG_H5CHECK(a, file, name, "H5Acreate2", NULL);
    LG_H5CHECK(H5Awrite(a, memtype, v), file, name, "H5Awrite", NULL);
    LG_H5CHECK(H5Aclose(a), file, name, "H5Aclose", NULL);
    LG_H5CHECK(H5Sclose(sp), file, name, "H5Sclose", NULL);
}

void lg_h5_attr_set_i64(hid_t obj, const char *name, int64_t v, const char *file) {
    write_scalar(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v, file);
}
void lg_h5_attr_set_u64(hid_t obj, const char *name, uint64_t v, const char *file) {
    write_scalar(obj, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &v, file);
}
void lg_h5_attr_set_str(hid_t obj, const char *name, const char *v, const char *file) {
    hid_t t = H5Tcopy(H5T_C_S1);
    LG_H5CHECK(t, file, name, "H5Tcopy", NULL);
    LG_H5CHECK(H5Tset_size(t, strlen(v) + 1), file, name, "H5Tset_size", NULL);
    LG_H5CHECK(H5Tset_strpad(t, H5T_STR_NULLTERM), file, name, "H5Tset_strpad", NULL);
    write_scalar(obj, name, t, t, v, file);
    LG_H5CHECK(H5Tclose(t), file, name, "H5Tclose", NULL);
}
#endif
