// checkpoint.c: see checkpoint.h.
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../data/crc32.h"
#include "../trainer/util.h"
#include "json.h"
#include "safetensors.h"

#define STATE_FORMAT "lgtrain-checkpoint"
#define STATE_VERSION 1

void lg_ckpt_crash_point(const char *phase, int rank, int64_t step) {
    const char *at = getenv("LG_TEST_CRASH_AT");
    if (!at || strcmp(at, phase)) return;
    const char *s = getenv("LG_TEST_CRASH_STEP"), *r = getenv("LG_TEST_CRASH_RANK");
    if (s && *s && atoll(s) != step) return;
    if ((r && *r ? atoi(r) : 0) != rank) return;
    fprintf(stderr, "lgtrain [rank %d]: test hook LG_TEST_CRASH_AT=%s: SIGKILL while saving step %lld\n", rank, phase,
            (long long)step);
    fflush(stderr);
    raise(SIGKILL);
}

// ---------------------------------------------------------------------------------------------------------
// names and files

static char *step_dir(const char *root, int64_t step) {
    char name[64];
    snprintf(name, sizeof name, "step-%06lld", (long long)step);
    return lg_path_join(root, name);
}

// "step-<digits>" exactly: temporaries ("step-000123.tmp-...") and anything else are not checkpoints.
static int parse_step_name(const char *name, int64_t *step) {
    if (strncmp(name, "step-", 5)) return 0;
    const char *p = name + 5;
    if (!*p) return 0;
    int64_t s = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9' || s > INT64_MAX / 10 - 10) return 0;
        s = s * 10 + (*p - '0');
    }
    *step = s;
    return 1;
}

static char *optim_name(int rank, int world) {
    char *s = lg_malloc(64);
    snprintf(s, 64, "optim-rank%05d-of-%05d.safetensors", rank, world);
    return s;
}

// CRC-32 and size of a file; returns 0 (and errno's text in err) when it cannot be read. Never dies: a
// damaged checkpoint must be reported and skipped, not end the run.
static int file_crc(const char *path, uint32_t *crc, uint64_t *bytes, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) { snprintf(err, errlen, "cannot open: %s", strerror(errno)); return 0; }
    enum { BUF = 8 << 20 };
    unsigned char *buf = lg_malloc(BUF);
    uint32_t c = 0;
    uint64_t n = 0;
    size_t k;
    while ((k = fread(buf, 1, BUF, f)) > 0) {
        c = lg_crc32(c, buf, k);
        n += k;
    }
    int ok = !ferror(f);
    if (!ok) snprintf(err, errlen, "read failed: %s", strerror(errno));
    fclose(f);
    free(buf);
    *crc = c;
    *bytes = n;
    return ok;
}

static void put_u64le(unsigned char *b, uint64_t x) {
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(x >> (8 * i));
}

static lg_json *meta_str_i64(int64_t v) {
    char s[32];
    snprintf(s, sizeof s, "%lld", (long long)v);
    return lg_json_new_str(s);  // safetensors metadata values are strings
}

// One rank's optimizer shard as safetensors, CRC computed on the bytes as they are written; fsynced.
static void write_optim(const char *path, const float *m, const float *v, int rank, int world, int64_t lo, int64_t hi,
                        int64_t total, int64_t step, uint32_t *crc_out, uint64_t *bytes_out) {
    int64_t n = hi - lo;
    uint64_t nb = (uint64_t)n * 4;
    lg_json *h = lg_json_new(LG_JSON_OBJECT), *meta = lg_json_new(LG_JSON_OBJECT);
    lg_json_set(meta, "format", lg_json_new_str("pt"));
    lg_json_set(meta, "content", lg_json_new_str("lgtrain AdamW moments of one ZeRO shard of the flat fp32 buffer"));
    lg_json_set(meta, "rank", meta_str_i64(rank));
    lg_json_set(meta, "world", meta_str_i64(world));
    lg_json_set(meta, "lo", meta_str_i64(lo));
    lg_json_set(meta, "hi", meta_str_i64(hi));
    lg_json_set(meta, "total", meta_str_i64(total));
    lg_json_set(h, "__metadata__", meta);
    const char *names[2] = {"exp_avg", "exp_avg_sq"};
    for (int i = 0; i < 2; i++) {
        lg_json *e = lg_json_new(LG_JSON_OBJECT), *shape = lg_json_new(LG_JSON_ARRAY), *off = lg_json_new(LG_JSON_ARRAY);
        lg_json_set(e, "dtype", lg_json_new_str("F32"));
        lg_json_append(shape, lg_json_new_int(n));
        lg_json_set(e, "shape", shape);
        lg_json_append(off, lg_json_new_int((int64_t)(nb * (uint64_t)i)));
        lg_json_append(off, lg_json_new_int((int64_t)(nb * (uint64_t)(i + 1))));
        lg_json_set(e, "data_offsets", off);
        lg_json_set(h, names[i], e);
    }
    char *js = lg_json_dump(h, -1);
    lg_json_free(h);
    size_t jl = strlen(js), hl = (jl + 7) / 8 * 8;  // header padded with spaces to 8 bytes (alignment of the data)
    unsigned char *head = lg_malloc(8 + hl);
    put_u64le(head, hl);
    memcpy(head + 8, js, jl);
    memset(head + 8 + jl, ' ', hl - jl);
    free(js);

    FILE *f = lg_fopen(path, "wb");
    uint32_t crc = lg_crc32(0, head, 8 + hl);
    lg_fwrite(head, 1, 8 + hl, f, path);
    free(head);
    const float *parts[2] = {m, v};
    for (int i = 0; i < 2; i++) {
        if (n > 0) {
            crc = lg_crc32(crc, parts[i], (size_t)nb);
            lg_fwrite(parts[i], 4, (size_t)n, f, path);
        }
        if (i == 0) {
            if (fflush(f) != 0) lg_die("%s: write failed: %s", path, strerror(errno));
            lg_ckpt_crash_point("optim_partial", rank, step);  // a torn file: header and m only
        }
    }
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) lg_die("%s: flush/fsync failed: %s (disk full?)", path, strerror(errno));
    lg_fclose(f, path);
    *crc_out = crc;
    *bytes_out = 8 + hl + 2 * nb;
}

static char *config_text(const lg_config *c) {
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f) lg_die("open_memstream failed: %s", strerror(errno));
    lg_config_print(c, f);
    if (fclose(f) != 0) lg_die("open_memstream close failed");
    return buf;
}

typedef struct {
    char name[256];
    uint64_t bytes;
    uint32_t crc;
} file_sum;

static int cmp_file_sum(const void *a, const void *b) { return strcmp(((const file_sum *)a)->name, ((const file_sum *)b)->name); }

static int cmp_i64_desc(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

// Step numbers of the complete checkpoints under root, newest first. *n = 0 when root does not exist.
static int64_t *list_steps(const char *root, int *n) {
    *n = 0;
    DIR *dp = opendir(root);
    if (!dp) return NULL;
    int cap = 16;
    int64_t *s = lg_malloc(sizeof(int64_t) * (size_t)cap);
    struct dirent *e;
    while ((e = readdir(dp))) {
        int64_t st;
        if (!parse_step_name(e->d_name, &st)) continue;
        char *p = lg_path_join(root, e->d_name);
        int isdir = lg_dir_exists(p);
        free(p);
        if (!isdir) continue;
        if (*n == cap) s = lg_realloc(s, sizeof(int64_t) * (size_t)(cap *= 2));
        s[(*n)++] = st;
    }
    closedir(dp);
    qsort(s, (size_t)*n, sizeof(int64_t), cmp_i64_desc);
    return s;
}

// After a save (rank 0): drop checkpoints beyond `keep` (never the one just written) and temporaries of
// saves that crashed.
static void prune(const char *root, int keep, int64_t just_saved) {
    DIR *dp = opendir(root);
    if (!dp) lg_die("%s: cannot list checkpoints: %s", root, strerror(errno));
    struct dirent *e;
    while ((e = readdir(dp))) {
        if (strncmp(e->d_name, "step-", 5) || (!strstr(e->d_name, ".tmp-") && !strstr(e->d_name, ".old-"))) continue;
        char *p = lg_path_join(root, e->d_name);
        lg_warn("removing %s (left by a save that did not finish)", p);
        if (lg_rmtree(p) != 0) lg_warn("could not remove all of %s: %s", p, strerror(errno));
        free(p);
    }
    closedir(dp);
    int n;
    int64_t *s = list_steps(root, &n);
    int kept = 1;  // just_saved
    for (int i = 0; i < n; i++) {
        if (s[i] == just_saved) continue;
        if (kept < keep) { kept++; continue; }
        char *p = step_dir(root, s[i]);
        lg_info("removing old checkpoint %s (checkpoint.keep = %d)", p, keep);
        if (lg_rmtree(p) != 0) lg_warn("could not remove all of %s: %s", p, strerror(errno));
        free(p);
    }
    free(s);
}

// ---------------------------------------------------------------------------------------------------------
// save

char *lg_ckpt_save(lg_dist *d, const lg_config *c, const lg_param_table *pt, const float *master, const float *m,
                   const float *v, int64_t lo, int64_t hi, const lg_ckpt_state *st) {
    const char *root = c->ckpt_dir;
    char *final = step_dir(root, st->step);
    double t0 = lg_now_seconds();
    // A tag from rank 0 makes the temporary name unique to this attempt; broadcasting it is also the barrier
    // that orders "rank 0 created the directory" before every rank writes into it.
    int64_t tag = 0;
    char *tmp = NULL;
    if (d->rank == 0) {
        lg_mkdirs(root);
        tag = (int64_t)getpid() * 1000003 + (int64_t)time(NULL) % 1000003;
    }
    lg_dist_bcast(d, &tag, sizeof tag, 0);
    {
        size_t len = strlen(final) + 32;
        tmp = lg_malloc(len);
        snprintf(tmp, len, "%s.tmp-%lld", final, (long long)tag);
    }
    if (d->rank == 0) {
        if (lg_dir_exists(tmp)) lg_rmtree(tmp);
        lg_mkdirs(tmp);
    }
    lg_dist_barrier(d);
    lg_ckpt_crash_point("begin", d->rank, st->step);

    char *cfg = config_text(c);
    if (d->rank == 0) {
        lg_st_out *outs = lg_malloc(sizeof(lg_st_out) * (size_t)pt->n);
        for (int i = 0; i < pt->n; i++) {
            const lg_param *p = &pt->p[i];
            memset(&outs[i], 0, sizeof outs[i]);
            outs[i].name = p->name;
            outs[i].dtype = LG_ST_F32;
            outs[i].ndim = p->ndim;
            outs[i].shape[0] = p->shape[0];
            outs[i].shape[1] = p->shape[1];
            outs[i].data = master + p->offset;
        }
        lg_st_write_sharded(tmp, outs, pt->n, LG_ST_DEFAULT_SHARD_BYTES);  // each file fsynced
        free(outs);
        char *cp = lg_path_join(tmp, "config.ini");
        lg_write_file_atomic(cp, cfg, strlen(cfg));
        free(cp);
    }
    lg_ckpt_crash_point("model", d->rank, st->step);

    char *oname = optim_name(d->rank, d->world);
    char *opath = lg_path_join(tmp, oname);
    uint32_t ocrc;
    uint64_t obytes;
    write_optim(opath, m, v, d->rank, d->world, lo, hi, pt->total, st->step, &ocrc, &obytes);
    lg_ckpt_crash_point("optim", d->rank, st->step);
    // Every rank's file is on disk before rank 0 may declare the checkpoint complete (allgather = barrier).
    double *crcs = lg_malloc(sizeof(double) * (size_t)d->world), *sizes = lg_malloc(sizeof(double) * (size_t)d->world);
    lg_dist_allgather_f64(d, (double)ocrc, crcs);
    lg_dist_allgather_f64(d, (double)obytes, sizes);

    if (d->rank == 0) {
        // model files and config.ini: CRC of what is on disk
        int nf = 0, cap = 16;
        file_sum *fs = lg_malloc(sizeof(file_sum) * (size_t)cap);
        DIR *dp = opendir(tmp);
        if (!dp) lg_die("%s: cannot list: %s", tmp, strerror(errno));
        struct dirent *e;
        while ((e = readdir(dp))) {
            if (e->d_name[0] == '.' || !strncmp(e->d_name, "optim-", 6) || !strcmp(e->d_name, "state.json")) continue;
            if (nf == cap) fs = lg_realloc(fs, sizeof(file_sum) * (size_t)(cap *= 2));
            snprintf(fs[nf].name, sizeof fs[nf].name, "%s", e->d_name);
            char *p = lg_path_join(tmp, e->d_name), err[256];
            if (!file_crc(p, &fs[nf].crc, &fs[nf].bytes, err, sizeof err)) lg_die("%s: %s", p, err);
            free(p);
            nf++;
        }
        closedir(dp);
        qsort(fs, (size_t)nf, sizeof(file_sum), cmp_file_sum);
        for (int r = 0; r < d->world; r++) {
            if (nf == cap) fs = lg_realloc(fs, sizeof(file_sum) * (size_t)(cap *= 2));
            char *on = optim_name(r, d->world);
            snprintf(fs[nf].name, sizeof fs[nf].name, "%s", on);
            free(on);
            fs[nf].crc = (uint32_t)crcs[r];
            fs[nf].bytes = (uint64_t)sizes[r];
            nf++;
        }

        lg_json *j = lg_json_new(LG_JSON_OBJECT);
        lg_json_set(j, "format", lg_json_new_str(STATE_FORMAT));
        lg_json_set(j, "version", lg_json_new_int(STATE_VERSION));
        lg_json_set(j, "step", lg_json_new_int(st->step));
        lg_json_set(j, "tokens_seen", lg_json_new_int(st->tokens_seen));
        lg_json_set(j, "lr", lg_json_new_num(st->lr));
        lg_json *data = lg_json_new(LG_JSON_OBJECT);
        lg_json_set(data, "train", lg_json_new_str(c->data_train));
        lg_json_set(data, "epoch", lg_json_new_int((int64_t)st->data_epoch));
        lg_json_set(data, "position", lg_json_new_int((int64_t)st->data_pos));
        lg_json_set(j, "data", data);
        lg_json_set(j, "rng", lg_json_new_str("none: init and data are pure functions of (run.seed, index)"));
        lg_json_set(j, "world_size", lg_json_new_int(d->world));
        lg_json_set(j, "zero_stage", lg_json_new_int(st->zero_stage));
        lg_json_set(j, "param_total", lg_json_new_int(pt->total));
        lg_json *shards = lg_json_new(LG_JSON_ARRAY);
        for (int r = 0; r < d->world; r++) {
            int64_t a, b;
            lg_dist_shard(pt->total, d->world, r, &a, &b);
            lg_json *o = lg_json_new(LG_JSON_OBJECT);
            char *on = optim_name(r, d->world);
            lg_json_set(o, "file", lg_json_new_str(on));
            free(on);
            lg_json_set(o, "lo", lg_json_new_int(a));
            lg_json_set(o, "hi", lg_json_new_int(b));
            lg_json_append(shards, o);
        }
        lg_json_set(j, "shards", shards);
        lg_json *files = lg_json_new(LG_JSON_ARRAY);
        for (int i = 0; i < nf; i++) {
            lg_json *o = lg_json_new(LG_JSON_OBJECT);
            char hex[16];
            snprintf(hex, sizeof hex, "%08x", fs[i].crc);
            lg_json_set(o, "name", lg_json_new_str(fs[i].name));
            lg_json_set(o, "bytes", lg_json_new_int((int64_t)fs[i].bytes));
            lg_json_set(o, "crc32", lg_json_new_str(hex));
            lg_json_append(files, o);
        }
        lg_json_set(j, "files", files);
        lg_json_set(j, "config", lg_json_new_str(cfg));
        char *text = lg_json_dump(j, 2);
        lg_json_free(j);
        char *sp = lg_path_join(tmp, "state.json");
        lg_write_file_atomic(sp, text, strlen(text));  // write, fsync, rename inside the temporary directory
        free(sp);
        free(text);
        free(fs);
        lg_fsync_dir(tmp);
        lg_ckpt_crash_point("state", d->rank, st->step);

        // A checkpoint of this step may exist (we resumed from an older one because it was damaged):
        // move it aside first, so the name always holds one complete checkpoint or none.
        char *old = NULL;
        if (lg_dir_exists(final)) {
            size_t len = strlen(final) + 32;
            old = lg_malloc(len);
            snprintf(old, len, "%s.old-%lld", final, (long long)tag);
            if (rename(final, old) != 0) lg_die("rename %s -> %s failed: %s", final, old, strerror(errno));
        }
        if (rename(tmp, final) != 0) lg_die("rename %s -> %s failed: %s", tmp, final, strerror(errno));
        lg_fsync_dir(root);
        lg_ckpt_crash_point("rename", d->rank, st->step);
        if (old) {
            lg_rmtree(old);
            free(old);
        }
        prune(root, c->ckpt_keep, st->step);
    }
    lg_dist_barrier(d);
    char took[32];
    lg_format_duration(lg_now_seconds() - t0, took, sizeof took);
    lg_info("checkpoint %s saved (%d rank file(s), %s)", final, d->world, took);
    free(crcs);
    free(sizes);
    free(cfg);
    free(oname);
    free(opath);
    free(tmp);
    return final;
}

// ---------------------------------------------------------------------------------------------------------
// validation and loading

// Non-dying accessors: a damaged state.json makes its checkpoint unusable, not the run fail.
static int j_i64(const lg_json *o, const char *k, int64_t *out) {
    const lg_json *v = lg_json_get(o, k);
    if (!v || v->type != LG_JSON_NUMBER || v->num != (double)(int64_t)v->num) return 0;
    *out = v->num_text ? strtoll(v->num_text, NULL, 10) : (int64_t)v->num;
    return 1;
}
static const char *j_str(const lg_json *o, const char *k) {
    const lg_json *v = lg_json_get(o, k);
    return v && v->type == LG_JSON_STRING ? v->str : NULL;
}

static lg_json *read_state(const char *dir, char *why, size_t n) {
    char *sp = lg_path_join(dir, "state.json");
    if (!lg_file_exists(sp)) {
        snprintf(why, n, "%s: missing (the save did not finish)", sp);
        free(sp);
        return NULL;
    }
    size_t len;
    char *text = lg_read_file(sp, &len);
    char err[256];
    lg_json *j = lg_json_parse(text, len, err, sizeof err);
    free(text);
    if (!j) snprintf(why, n, "%s: not valid JSON: %s", sp, err);
    else if (j->type != LG_JSON_OBJECT || !j_str(j, "format") || strcmp(j_str(j, "format"), STATE_FORMAT)) {
        snprintf(why, n, "%s: not an lgtrain checkpoint state (\"format\": \"%s\" expected)", sp, STATE_FORMAT);
        lg_json_free(j);
        j = NULL;
    }
    free(sp);
    return j;
}

// Structure of state.json: the fields resume needs, shards that tile [0, param_total), every shard file listed.
static int check_state(const char *dir, const lg_json *j, char *why, size_t n) {
    int64_t ver, step, world, total, z;
    const lg_json *files = lg_json_get(j, "files"), *shards = lg_json_get(j, "shards"), *data = lg_json_get(j, "data");
    int64_t ep, pos, tok;
    if (!j_i64(j, "version", &ver) || ver != STATE_VERSION || !j_i64(j, "step", &step) || !j_i64(j, "world_size", &world) ||
        !j_i64(j, "param_total", &total) || !j_i64(j, "zero_stage", &z) || !j_i64(j, "tokens_seen", &tok) || !data ||
        !j_i64(data, "epoch", &ep) || !j_i64(data, "position", &pos) || !files || files->type != LG_JSON_ARRAY ||
        !shards || shards->type != LG_JSON_ARRAY || !lg_json_get(j, "lr")) {
        snprintf(why, n, "%s/state.json: a field is missing or has the wrong type (version %d expects step, tokens_seen, "
                 "lr, data.epoch, data.position, world_size, zero_stage, param_total, shards, files)", dir, STATE_VERSION);
        return 0;
    }
    if (world < 1 || shards->n != world) {
        snprintf(why, n, "%s/state.json: %d shards listed for world_size %lld", dir, shards->n, (long long)world);
        return 0;
    }
    int64_t at = 0;
    for (int r = 0; r < shards->n; r++) {
        const lg_json *s = shards->items[r];
        int64_t lo, hi;
        const char *f = j_str(s, "file");
        if (!f || !j_i64(s, "lo", &lo) || !j_i64(s, "hi", &hi) || lo != at || hi < lo) {
            snprintf(why, n, "%s/state.json: shards[%d] is not {file, lo, hi} continuing at %lld", dir, r, (long long)at);
            return 0;
        }
        int listed = 0;
        for (int i = 0; i < files->n; i++) listed |= j_str(files->items[i], "name") && !strcmp(j_str(files->items[i], "name"), f);
        if (!listed) {
            snprintf(why, n, "%s/state.json: shard file %s has no checksum entry in \"files\"", dir, f);
            return 0;
        }
        at = hi;
    }
    if (at != total) {
        snprintf(why, n, "%s/state.json: shards end at %lld, param_total is %lld", dir, (long long)at, (long long)total);
        return 0;
    }
    for (int i = 0; i < files->n; i++) {
        const lg_json *f = files->items[i];
        int64_t b;
        const char *nm = j_str(f, "name"), *crc = j_str(f, "crc32");
        if (!nm || !crc || strlen(crc) != 8 || !j_i64(f, "bytes", &b) || strchr(nm, '/')) {
            snprintf(why, n, "%s/state.json: files[%d] is not {name, bytes, crc32 (8 hex digits)}", dir, i);
            return 0;
        }
    }
    return 1;
}

int lg_ckpt_validate(lg_dist *d, const char *dir, char **why) {
    char w[2048] = "";
    *why = NULL;
    lg_json *j = read_state(dir, w, sizeof w);
    if (!j || !check_state(dir, j, w, sizeof w)) {
        if (j) lg_json_free(j);
        *why = lg_strdup(w);
        return 0;
    }
    const lg_json *files = lg_json_get(j, "files");
    int nf = files->n, ok = 1;
    // sizes on every rank (cheap, and every rank reaches the same verdict without talking)
    for (int i = 0; i < nf && ok; i++) {
        const lg_json *f = files->items[i];
        int64_t b;
        j_i64(f, "bytes", &b);
        char *p = lg_path_join(dir, j_str(f, "name"));
        struct stat sb;
        if (stat(p, &sb) != 0) {
            snprintf(w, sizeof w, "%s: missing", p);
            ok = 0;
        } else if ((int64_t)sb.st_size != b) {
            snprintf(w, sizeof w, "%s: %lld bytes, state.json says %lld (truncated or replaced)", p, (long long)sb.st_size,
                     (long long)b);
            ok = 0;
        }
        free(p);
    }
    // contents: file i is read by rank i % world; the first mismatch (lowest index) is reported everywhere
    double bad = INT_MAX, got = 0;
    for (int i = d->rank; ok && i < nf; i += d->world) {
        const lg_json *f = files->items[i];
        char *p = lg_path_join(dir, j_str(f, "name")), err[256];
        uint32_t crc;
        uint64_t b;
        unsigned long want = strtoul(j_str(f, "crc32"), NULL, 16);
        if (!file_crc(p, &crc, &b, err, sizeof err) || crc != (uint32_t)want) {
            bad = i;
            got = crc;
            free(p);
            break;
        }
        free(p);
    }
    if (ok) {
        double *all = lg_malloc(sizeof(double) * (size_t)d->world), *gots = lg_malloc(sizeof(double) * (size_t)d->world);
        lg_dist_allgather_f64(d, bad, all);
        lg_dist_allgather_f64(d, got, gots);
        int who = -1;
        for (int r = 0; r < d->world; r++)
            if (all[r] < INT_MAX && (who < 0 || all[r] < all[who])) who = r;
        if (who >= 0) {
            const lg_json *f = files->items[(int)all[who]];
            char *p = lg_path_join(dir, j_str(f, "name"));
            snprintf(w, sizeof w, "%s: CRC-32 %08x does not match %s recorded in state.json (the file is corrupt)", p,
                     (uint32_t)gots[who], j_str(f, "crc32"));
            free(p);
            ok = 0;
        }
        free(all);
        free(gots);
    }
    lg_json_free(j);
    if (!ok) *why = lg_strdup(w);
    return ok;
}

char *lg_ckpt_find_latest(lg_dist *d, const char *root) {
    int n = 0;
    int64_t *steps = NULL;
    if (d->rank == 0) steps = list_steps(root, &n);
    lg_dist_bcast(d, &n, sizeof n, 0);  // rank 0's listing decides, so every rank walks the same candidates
    if (n == 0) {
        free(steps);
        return NULL;
    }
    if (d->rank != 0) steps = lg_malloc(sizeof(int64_t) * (size_t)n);
    lg_dist_bcast(d, steps, sizeof(int64_t) * (size_t)n, 0);
    char *found = NULL;
    for (int i = 0; i < n && !found; i++) {
        char *dir = step_dir(root, steps[i]), *why;
        if (lg_ckpt_validate(d, dir, &why)) {
            found = dir;
        } else {
            if (d->rank == 0)
                lg_warn("checkpoint %s is unusable: %s; %s", dir, why,
                        i + 1 < n ? "falling back to the previous one" : "no older checkpoint left");
            free(why);
            free(dir);
        }
    }
    free(steps);
    if (!found) {
        if (d->rank == 0)
            lg_die("%s: holds %d checkpoint(s) and none is usable (see the warnings above). Move them away, point "
                   "--resume at a good one, or set checkpoint.resume = none to start over", root, n);
        lg_dist_barrier(d);  // rank 0 aborts the job
        exit(1);
    }
    return found;
}

void lg_ckpt_read_state(const char *dir, lg_ckpt_state *st) {
    char why[2048];
    lg_json *j = read_state(dir, why, sizeof why);
    if (!j || !check_state(dir, j, why, sizeof why)) lg_die("%s", why);
    char *what = lg_path_join(dir, "state.json");
    memset(st, 0, sizeof *st);
    st->step = lg_json_int(j, "step", what);
    st->tokens_seen = lg_json_int(j, "tokens_seen", what);
    st->lr = lg_json_num(j, "lr", what);
    const lg_json *data = lg_json_get(j, "data");
    st->data_epoch = (uint64_t)lg_json_int(data, "epoch", what);
    st->data_pos = (uint64_t)lg_json_int(data, "position", what);
    st->world = (int)lg_json_int(j, "world_size", what);
    st->zero_stage = (int)lg_json_int(j, "zero_stage", what);
    st->param_total = lg_json_int(j, "param_total", what);
    free(what);
    lg_json_free(j);
}

// ---------------------------------------------------------------------------------------------------------
// config compatibility

typedef struct {
    char sec[32], key[64], val[LG_PATH_MAX + 64];
} ini_kv;

static void copy_trunc(char *dst, size_t n, const char *src) {
    size_t l = strlen(src);
    if (l >= n) l = n - 1;
    memcpy(dst, src, l);
    dst[l] = 0;
}

// The resolved config as (section, key, value) triples; comments and blank lines dropped.
static ini_kv *ini_parse(const char *text, int *n) {
    int cap = 128;
    ini_kv *kv = lg_malloc(sizeof(ini_kv) * (size_t)cap);
    *n = 0;
    char sec[32] = "";
    const char *p = text;
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char line[LG_PATH_MAX + 160];
        if (len >= sizeof line) len = sizeof line - 1;
        memcpy(line, p, len);
        line[len] = 0;
        p = e ? e + 1 : p + len;
        if (line[0] == '#' || line[0] == 0) continue;
        if (line[0] == '[') {
            char *q = strchr(line, ']');
            if (q) *q = 0;
            copy_trunc(sec, sizeof sec, line + 1);
            continue;
        }
        char *eq = strstr(line, " = ");
        if (!eq) continue;
        *eq = 0;
        if (*n == cap) kv = lg_realloc(kv, sizeof(ini_kv) * (size_t)(cap *= 2));
        copy_trunc(kv[*n].sec, sizeof kv[*n].sec, sec);
        copy_trunc(kv[*n].key, sizeof kv[*n].key, line);
        copy_trunc(kv[*n].val, sizeof kv[*n].val, eq + 3);
        (*n)++;
    }
    return kv;
}

void lg_ckpt_check_config(const char *dir, const lg_config *c) {
    char *cp = lg_path_join(dir, "config.ini");
    char *saved = lg_read_file(cp, NULL);
    char *now = config_text(c);
    int ns, nn;
    ini_kv *a = ini_parse(saved, &ns), *b = ini_parse(now, &nn);
    size_t cap = 4096, len = 0;
    char *errs = lg_malloc(cap);
    errs[0] = 0;
    for (int i = 0; i < nn; i++) {
        // where things go may differ (--resume from another run directory); what is trained may not
        static const char *paths[] = {"run.out_dir", "checkpoint.dir", "checkpoint.resume", "export.dir"};
        char full[128];
        snprintf(full, sizeof full, "%s.%s", b[i].sec, b[i].key);
        int skip = 0;
        for (size_t k = 0; k < sizeof paths / sizeof paths[0]; k++) skip |= !strcmp(full, paths[k]);
        if (skip) continue;
        const ini_kv *old = NULL;
        for (int k = 0; k < ns && !old; k++)
            if (!strcmp(a[k].sec, b[i].sec) && !strcmp(a[k].key, b[i].key)) old = &a[k];
        if (old && !strcmp(old->val, b[i].val)) continue;
        int fatal = !strcmp(b[i].sec, "model") || !strcmp(b[i].sec, "layout");
        char line[2 * LG_PATH_MAX + 256];
        snprintf(line, sizeof line, "%s.%s = %s in the checkpoint, %s now", b[i].sec, b[i].key, old ? old->val : "(absent)",
                 b[i].val);
        if (fatal) {
            size_t l = strlen(line);
            while (len + l + 8 > cap) errs = lg_realloc(errs, cap *= 2);
            len += (size_t)snprintf(errs + len, cap - len, "\n  %s", line);
        } else {
            lg_warn("resuming with a changed setting: %s", line);
        }
    }
    if (len)
        lg_die("%s was written by a run with a different model or layout:%s\nThe model shape and the attention layout "
               "must match to resume; start a new run directory (or init_from an export) instead", cp, errs);
    free(errs);
    free(a);
    free(b);
    free(now);
    free(saved);
    free(cp);
}

// ---------------------------------------------------------------------------------------------------------
// loading

void lg_ckpt_load_master(const char *dir, const lg_param_table *pt, float *master, int64_t lo, int64_t hi) {
    char *single = lg_path_join(dir, "model.safetensors");
    lg_json *index = NULL, *wmap = NULL;
    char *ipath = lg_path_join(dir, "model.safetensors.index.json");
    if (!lg_file_exists(single)) {
        index = lg_json_parse_file(ipath);
        wmap = lg_json_get(index, "weight_map");
        if (!wmap || wmap->type != LG_JSON_OBJECT) lg_die("%s: \"weight_map\" missing or not an object", ipath);
    }
    // files opened on first use (a sharded model has several)
    int nopen = 0;
    lg_st_file *open_f = lg_calloc((size_t)pt->n, sizeof(lg_st_file));
    char **open_name = lg_calloc((size_t)pt->n, sizeof(char *));
    for (int i = 0; i < pt->n; i++) {
        const lg_param *p = &pt->p[i];
        int64_t a = p->offset > lo ? p->offset : lo, b = p->offset + p->numel < hi ? p->offset + p->numel : hi;
        if (a >= b) continue;
        const char *fname = "model.safetensors";
        if (wmap) {
            fname = j_str(wmap, p->name);
            if (!fname) lg_die("%s: tensor %s is not in weight_map", ipath, p->name);
        }
        int k = 0;
        while (k < nopen && strcmp(open_name[k], fname)) k++;
        if (k == nopen) {
            char *fp = lg_path_join(dir, fname);
            lg_st_open(&open_f[k], fp);
            free(fp);
            open_name[k] = lg_strdup(fname);
            nopen++;
        }
        const lg_st_tensor *t = lg_st_find(&open_f[k], p->name);
        if (!t) lg_die("%s: tensor %s missing", open_f[k].path, p->name);
        if (t->dtype != LG_ST_F32 || t->numel != p->numel)
            lg_die("%s: tensor %s is %s with %lld elements; a checkpoint holds F32 with %lld (model.* in config.ini)",
                   open_f[k].path, p->name, t->dtype_name, (long long)t->numel, (long long)p->numel);
        memcpy(master + a, open_f[k].data + t->begin + (uint64_t)(a - p->offset) * 4, (size_t)(b - a) * 4);
    }
    for (int k = 0; k < nopen; k++) {
        lg_st_close(&open_f[k]);
        free(open_name[k]);
    }
    free(open_f);
    free(open_name);
    if (index) lg_json_free(index);
    free(ipath);
    free(single);
}

void lg_ckpt_load_optim(const char *dir, float *m, float *v, int64_t lo, int64_t hi) {
    char why[2048];
    lg_json *j = read_state(dir, why, sizeof why);
    if (!j || !check_state(dir, j, why, sizeof why)) lg_die("%s", why);
    const lg_json *shards = lg_json_get(j, "shards");
    for (int r = 0; r < shards->n; r++) {
        int64_t slo, shi;
        j_i64(shards->items[r], "lo", &slo);
        j_i64(shards->items[r], "hi", &shi);
        int64_t a = slo > lo ? slo : lo, b = shi < hi ? shi : hi;
        if (a >= b) continue;  // this saved shard does not overlap our range
        char *fp = lg_path_join(dir, j_str(shards->items[r], "file"));
        lg_st_file f;
        lg_st_open(&f, fp);
        const char *names[2] = {"exp_avg", "exp_avg_sq"};
        float *dst[2] = {m, v};
        for (int i = 0; i < 2; i++) {
            const lg_st_tensor *t = lg_st_find(&f, names[i]);
            if (!t) lg_die("%s: tensor %s missing", fp, names[i]);
            if (t->dtype != LG_ST_F32 || t->numel != shi - slo)
                lg_die("%s: tensor %s is %s with %lld elements; state.json gives this shard [%lld, %lld) = %lld F32",
                       fp, names[i], t->dtype_name, (long long)t->numel, (long long)slo, (long long)shi,
                       (long long)(shi - slo));
            memcpy(dst[i] + (a - lo), f.data + t->begin + (uint64_t)(a - slo) * 4, (size_t)(b - a) * 4);
        }
        lg_st_close(&f);
        free(fp);
    }
    lg_json_free(j);
}
