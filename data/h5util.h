// h5util.h: what every HDF5 call in data/ goes through: one process-wide lock (the system HDF5 is not
// built thread-safe, and the loader decodes on a background thread), errors that name the file, the
// object and the call, plus HDF5's own innermost reason, and typed attribute helpers.
#pragma once
#ifdef LG_HAVE_HDF5
#include <hdf5.h>
#include <stdint.h>

// Silences HDF5's own stack printing and registers the zstd filter (id 32015). Idempotent, thread-safe.
void lg_h5_init(void);
void lg_h5_lock(void);    // recursive
void lg_h5_unlock(void);

// HDF5's innermost error descriptions of the last failed call (empty when none), then clears the stack.
const char *lg_h5_reason(char *buf, size_t n);

// Die with "<file>: <object>: <call> failed: <reason>. <hint>" when rc < 0 (herr_t / hid_t results).
#define LG_H5CHECK(rc, file, obj, call, hint)                                                        \
    do {                                                                                             \
        if ((int64_t)(rc) < 0) lg_h5_fail((file), (obj), (call), (hint), __FILE__, __LINE__);       \
    } while (0)
void lg_h5_fail(const char *file, const char *obj, const char *call, const char *hint, const char *src, int line)
    __attribute__((noreturn));

// Attributes on an object. `has` returns 0/1. Getters die naming file + attribute when missing or unreadable.
int lg_h5_attr_has(hid_t obj, const char *name, const char *file);
int64_t lg_h5_attr_get_i64(hid_t obj, const char *name, const char *file);
uint64_t lg_h5_attr_get_u64(hid_t obj, const char *name, const char *file);
// Fixed-length or variable-length string attribute into buf (NUL-terminated, truncated to n-1).
void lg_h5_attr_get_str(hid_t obj, const char *name, const char *file, char *buf, size_t n);
void lg_h5_attr_set_i64(hid_t obj, const char *name, int64_t v, const char *file);
void lg_h5_attr_set_u64(hid_t obj, const char *name, uint64_t v, const char *file);
void lg_h5_attr_set_str(hid_t obj, const char *name, const char *v, const char *file);
#endif
