// util.h: checked libc calls and fatal errors shared by every lgtrain component.
// Every failure names the call, the file and the line; callers add what the user should do.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __GNUC__
#define LG_NORETURN __attribute__((noreturn))
#define LG_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define LG_NORETURN
#define LG_PRINTF(a, b)
#endif

// Print "lgtrain: error: <msg>" (plus rank when distributed) and exit(1) (or abort the MPI job).
LG_NORETURN void lg_die(const char *fmt, ...) LG_PRINTF(1, 2);
void lg_warn(const char *fmt, ...) LG_PRINTF(1, 2);
void lg_info(const char *fmt, ...) LG_PRINTF(1, 2);
// Set by the distributed layer: the rank shown in messages and a hook that aborts all ranks.
void lg_set_rank_for_messages(int rank, int world);
void lg_set_die_hook(void (*hook)(int code));
// Program name shown in messages ("lgtrain", "lgdata", ...).
void lg_set_progname(const char *name);

void *lg_malloc_(size_t n, const char *file, int line);
void *lg_calloc_(size_t n, size_t sz, const char *file, int line);
void *lg_realloc_(void *p, size_t n, const char *file, int line);
FILE *lg_fopen_(const char *path, const char *mode, const char *file, int line);
void lg_fread_(void *p, size_t sz, size_t n, FILE *f, const char *path, const char *file, int line);
void lg_fwrite_(const void *p, size_t sz, size_t n, FILE *f, const char *path, const char *file, int line);
void lg_fclose_(FILE *f, const char *path, const char *file, int line);
#define lg_malloc(n) lg_malloc_((n), __FILE__, __LINE__)
#define lg_calloc(n, sz) lg_calloc_((n), (sz), __FILE__, __LINE__)
#define lg_realloc(p, n) lg_realloc_((p), (n), __FILE__, __LINE__)
#define lg_fopen(path, mode) lg_fopen_((path), (mode), __FILE__, __LINE__)
#define lg_fread(p, sz, n, f, path) lg_fread_((p), (sz), (n), (f), (path), __FILE__, __LINE__)
#define lg_fwrite(p, sz, n, f, path) lg_fwrite_((p), (sz), (n), (f), (path), __FILE__, __LINE__)
#define lg_fclose(f, path) lg_fclose_((f), (path), __FILE__, __LINE__)

// Whole file into a NUL-terminated heap buffer; dies naming the path on failure.
char *lg_read_file(const char *path, size_t *len);
// Write a file atomically: write "<path>.tmp.<pid>", fsync, rename over path.
void lg_write_file_atomic(const char *path, const void *data, size_t len);
int lg_file_exists(const char *path);
int lg_dir_exists(const char *path);
// mkdir -p; dies on failure.
void lg_mkdirs(const char *path);
// Recursively remove a directory tree (used for temporaries only).
int lg_rmtree(const char *path);
// fsync a directory so a rename inside it is durable.
void lg_fsync_dir(const char *path);
char *lg_strdup(const char *s);
// "%s/%s" into a heap string.
char *lg_path_join(const char *a, const char *b);
double lg_now_seconds(void);  // monotonic
// "1h02m03s" style duration into buf.
void lg_format_duration(double seconds, char *buf, size_t n);
// Human bytes "12.3 GiB".
void lg_format_bytes(double bytes, char *buf, size_t n);
