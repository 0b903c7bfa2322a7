// util.c: see util.h.
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int g_rank = 0, g_world = 1;
static void (*g_die_hook)(int) = NULL;
static const char *g_prog = "lgtrain";

void lg_set_rank_for_messages(int rank, int world) { g_rank = rank; g_world = world; }
void lg_set_die_hook(void (*hook)(int)) { g_die_hook = hook; }
void lg_set_progname(const char *name) { g_prog = name; }

static void vmsg(const char *kind, const char *fmt, va_list ap) {
    char buf[4096];
    vsnprintf(buf, sizeof buf, fmt, ap);
    if (g_world > 1) fprintf(stderr, "%s [rank %d/%d]: %s%s\n", g_prog, g_rank, g_world, kind, buf);
    else fprintf(stderr, "%s: %s%s\n", g_prog, kind, buf);
    fflush(stderr);
}

void lg_die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vmsg("error: ", fmt, ap);
    va_end(ap);
    fflush(stdout);
    if (g_die_hook) g_die_hook(1);
    exit(1);
}

void lg_warn(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vmsg("warning: ", fmt, ap);
    va_end(ap);
}

void lg_info(const char *fmt, ...) {
    if (g_rank != 0) return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

void *lg_malloc_(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) lg_die("out of host memory: malloc(%zu) at %s:%d", n, file, line);
    return p;
}
void *lg_calloc_(size_t n, size_t sz, const char *file, int line) {
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p) lg_die("out of host memory: calloc(%zu, %zu) at %s:%d", n, sz, file, line);
    return p;
}
void *lg_realloc_(void *p, size_t n, const char *file, int line) {
    void *q = realloc(p, n ? n : 1);
    if (!q) lg_die("out of host memory: realloc(%zu) at %s:%d", n, file, line);
    return q;
}
FILE *lg_fopen_(const char *path, const char *mode, const char *file, int line) {
    FILE *f = fopen(path, mode);
    if (!f) lg_die("%s: cannot open (mode %s): %s (%s:%d)", path, mode, strerror(errno), file, line);
    return f;
}
void lg_fread_(void *p, size_t sz, size_t n, FILE *f, const char *path, const char *file, int line) {
    if (n == 0) return;
    size_t got = fread(p, sz, n, f);
    if (got != n) {
        if (feof(f)) lg_die("%s: file is truncated: wanted %zu items of %zu bytes, got %zu (%s:%d)", path, n, sz, got, file, line);
        lg_die("%s: read failed: %s (%s:%d)", path, strerror(errno), file, line);
    }
}
void lg_fwrite_(const void *p, size_t sz, size_t n, FILE *f, const char *path, const char *file, int line) {
    if (n == 0) return;
    if (fwrite(p, sz, n, f) != n) lg_die("%s: write failed: %s (disk full?) (%s:%d)", path, strerror(errno), file, line);
}
void lg_fclose_(FILE *f, const char *path, const char *file, int line) {
    if (fclose(f) != 0) lg_die("%s: close failed: %s (%s:%d)", path, strerror(errno), file, line);
}

char *lg_read_file(const char *path, size_t *len) {
    FILE *f = lg_fopen(path, "rb");
    if (fseek(f, 0, SEEK_END) != 0) lg_die("%s: seek failed: %s", path, strerror(errno));
    long n = ftell(f);
    if (n < 0) lg_die("%s: ftell failed: %s", path, strerror(errno));
    rewind(f);
    char *buf = lg_malloc((size_t)n + 1);
    lg_fread(buf, 1, (size_t)n, f, path);
    buf[n] = 0;
    lg_fclose(f, path);
    if (len) *len = (size_t)n;
    return buf;
}

void lg_fsync_dir(const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    if (fd < 0) lg_die("%s: cannot open directory to fsync: %s", path, strerror(errno));
    if (fsync(fd) != 0 && errno != EINVAL) lg_die("%s: fsync failed: %s", path, strerror(errno));
    close(fd);
}

void lg_write_file_atomic(const char *path, const void *data, size_t len) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = lg_fopen(tmp, "wb");
    lg_fwrite(data, 1, len, f, tmp);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) lg_die("%s: flush/fsync failed: %s", tmp, strerror(errno));
    lg_fclose(f, tmp);
    if (rename(tmp, path) != 0) lg_die("rename %s -> %s failed: %s", tmp, path, strerror(errno));
}

int lg_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}
int lg_dir_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

void lg_mkdirs(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    size_t n = strlen(buf);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == 0) {
            char c = buf[i];
            buf[i] = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) lg_die("%s: cannot create directory: %s", buf, strerror(errno));
            buf[i] = c;
        }
    }
    if (!lg_dir_exists(path)) lg_die("%s: exists but is not a directory", path);
}

int lg_rmtree(const char *path) {
    DIR *d = opendir(path);
    if (!d) return unlink(path);
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *p = lg_path_join(path, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) rc |= lg_rmtree(p);
        else rc |= unlink(p);
        free(p);
    }
    closedir(d);
    return rc | rmdir(path);
}

char *lg_strdup(const char *s) {
    size_t n = strlen(s);
    char *p = lg_malloc(n + 1);
    memcpy(p, s, n + 1);
    return p;
}

char *lg_path_join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = lg_malloc(n);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

double lg_now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void lg_format_duration(double s, char *buf, size_t n) {
    if (s < 0 || s != s) { snprintf(buf, n, "?"); return; }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ldh%02ldm%02lds", t / 3600, (t / 60) % 60, t % 60);
    else if (t >= 60) snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, n, "%.1fs", s);
}

void lg_format_bytes(double b, char *buf, size_t n) {
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (b >= 1024 && i < 4) { b /= 1024; i++; }
    snprintf(buf, n, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}
