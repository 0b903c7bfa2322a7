// test_safetensors: dtype conversions (exhaustive for F16/BF16 widening, brute-force nearest-value reference
// and the compiler's _Float16 for narrowing), write/read round-trips with the exact byte layout, sharding,
// and every malformed-file check with its message (each run in a child process since errors exit).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkpoints/json.h"
#include "checkpoints/safetensors.h"
#include "trainer/util.h"

static int fails = 0;
#define CHECK(cond, ...)                                \
    do {                                                \
        if (!(cond)) {                                  \
            if (fails < 30) {                           \
                printf("FAIL %s:%d: ", __FILE__, __LINE__); \
                printf(__VA_ARGS__);                    \
                printf("\n");                           \
            }                                           \
            fails++;                                    \
        }                                               \
    } while (0)

static uint32_t bits(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}
static float fbits(uint32_t u) {
    float x;
    memcpy(&x, &u, 4);
    return x;
}

static uint64_t rng = 0x1234567;
static uint32_t rnd32(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

// Reference f16 value of bits h from the definition (sign, exponent, mantissa), in double.
static double f16_ref(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 0) v = ldexp(m, -24);
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

static void test_f16(void) {
    // widening: all 65536 patterns against the definition
    for (uint32_t h = 0; h < 65536; h++) {
        float got = lg_f16_to_f32((uint16_t)h);
        double want = f16_ref((uint16_t)h);
        if (isnan(want)) CHECK(isnan(got), "f16 %04x should be NaN", h);
        else CHECK((double)got == want && !signbit(got) == !signbit(want), "f16 %04x -> %g, want %g", h, got, want);
        if (!isnan(want)) CHECK(lg_f32_to_f16(got) == h, "f16 %04x does not round-trip: %04x", h, lg_f32_to_f16(got));
    }
    // narrowing: nearest representable f16 (ties to even mantissa) by search over the sorted positive values
    static double pos[31745];  // 0x0000..0x7c00 (inf last)
    for (int h = 0; h <= 0x7c00; h++) pos[h] = f16_ref((uint16_t)h);
    for (int it = 0; it < 2000000; it++) {
        float x;
        uint32_t r = rnd32();
        if (it < 1000000) x = fbits(r);  // any bit pattern
        else {
            // concentrate near f16's range, including subnormals, ties and the overflow edge
            int e = (int)(r % 48) - 30;
            x = (float)ldexp(1.0 + (rnd32() % 8192) / 8192.0, e);
            if (r & 0x80000000u) x = -x;
        }
        if (isnan(x)) {
            CHECK((lg_f32_to_f16(x) & 0x7c00) == 0x7c00 && (lg_f32_to_f16(x) & 0x3ff), "NaN -> %04x", lg_f32_to_f16(x));
            continue;
        }
        double a = fabs((double)x);
        int want;
        if (a >= 65520.0) want = 0x7c00;  // half-way between 65504 and 65536 rounds to even = inf
        else {
            int lo = 0, hi = 0x7bff;  // largest pos[k] <= a
            while (lo < hi) {
                int mid = (lo + hi + 1) / 2;
                if (pos[mid] <= a) lo = mid;
                else hi = mid - 1;
            }
            want = lo;
            if (lo < 0x7bff) {
                double dl = a - pos[lo], dh = pos[lo + 1] - a;
                if (dh < dl || (dh == dl && (lo & 1))) want = lo + 1;
            }
        }
        if (signbit(x)) want |= 0x8000;
        uint16_t got = lg_f32_to_f16(x);
        CHECK(got == want, "f32 %a (%08x) -> f16 %04x, want %04x", x, bits(x), got, want);
#ifdef __FLT16_MAX__
        _Float16 c = (_Float16)x;  // the compiler's conversion, an independent implementation
        uint16_t cb;
        memcpy(&cb, &c, 2);
        CHECK(got == cb, "f32 %a -> %04x, _Float16 gives %04x", x, got, cb);
#endif
        if (fails > 20) return;
    }
}

static void test_bf16(void) {
    for (uint32_t h = 0; h < 65536; h++) {
        float got = lg_bf16_to_f32((uint16_t)h);
        CHECK(bits(got) == h << 16, "bf16 %04x widening", h);
        if (!isnan(got)) CHECK(lg_f32_to_bf16(got) == h, "bf16 %04x round-trip", h);
    }
    for (int it = 0; it < 2000000; it++) {
        float x = fbits(rnd32() ^ (it & 1 ? 0 : 0x8000));  // odd iterations: many exact ties (low 16 bits 0x8000)
        if (it & 2) x = fbits((bits(x) & 0xffff0000u) | 0x8000u);
        if (isnan(x)) {
            uint16_t g = lg_f32_to_bf16(x);
            CHECK((g & 0x7f80) == 0x7f80 && (g & 0x7f), "NaN -> bf16 %04x", g);
            continue;
        }
        // reference: the two bf16 neighbours in double; nearest, ties to the even one
        uint32_t lo = bits(x) & 0xffff0000u;
        double vl = fbits(lo), vh;
        uint32_t hi = lo + 0x10000u;
        vh = ((hi & 0x7f800000u) == 0x7f800000u) ? (signbit(x) ? -1 : 1) * ldexp(1, 128) : fbits(hi);  // past max -> inf
        double dl = fabs((double)x - vl), dh = fabs(vh - (double)x);
        uint32_t want = (dh < dl || (dh == dl && ((lo >> 16) & 1))) ? hi : lo;
        uint16_t got = lg_f32_to_bf16(x);
        CHECK(got == (uint16_t)(want >> 16), "f32 %a (%08x) -> bf16 %04x, want %04x", x, bits(x), got, want >> 16);
        if (fails > 20) return;
    }
}

// ---------------------------------------------------------------------------------------------------------

static char tmpdir[256];

static char *tpath(const char *name) { return lg_path_join(tmpdir, name); }

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(p, 1, n, f);
    fclose(f);
}

// A file from a raw header string and data size (for malformed cases).
static void write_raw(const char *path, uint64_t header_len_field, const char *header, size_t data_bytes) {
    FILE *f = fopen(path, "wb");
    uint8_t l[8];
    for (int i = 0; i < 8; i++) l[i] = (uint8_t)(header_len_field >> (8 * i));
    fwrite(l, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    for (size_t i = 0; i < data_bytes; i++) fputc(0, f);
    fclose(f);
}

// Run fn(arg) in a child; it must exit non-zero with stderr containing want (want NULL: must exit 0).
static void expect_death(void (*fn)(const char *), const char *arg, const char *want) {
    int pfd[2];
    if (pipe(pfd) != 0) { perror("pipe"); exit(2); }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pfd[1], 2);
        close(pfd[0]);
        fn(arg);
        _exit(0);
    }
    close(pfd[1]);
    char buf[4096];
    size_t n = 0;
    ssize_t r;
    while ((r = read(pfd[0], buf + n, sizeof buf - 1 - n)) > 0) n += (size_t)r;
    buf[n] = 0;
    close(pfd[0]);
    int st;
    waitpid(pid, &st, 0);
    if (!want) {
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "expected %s to be read fine, got: %s", arg, buf);
        return;
    }
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) != 0, "expected failure for %s (%s)", arg, want);
    CHECK(strstr(buf, want) != NULL, "message for %s:\n  got:  %s  want: %s", arg, buf, want);
}

static void open_and_read_all(const char *path) {
    lg_st_file f;
    lg_st_open(&f, path);
    for (int i = 0; i < f.n; i++) {
        float *o = malloc(sizeof(float) * (size_t)(f.t[i].numel + 1));
        lg_st_read_f32(&f, &f.t[i], o);
        free(o);
    }
    lg_st_close(&f);
}

static void test_roundtrip(void) {
    // three tensors, one per dtype, odd sizes so the header needs padding
    float a[6] = {1.0f, -2.5f, 3.14159265f, 1e-8f, 65504.0f, -0.0f};  // (2, 3)
    float b[5] = {0.1f, 1.0f / 3.0f, -7.75f, 1e20f, 6e-8f};             // (5)
    float c[4] = {1.00390625f, 1.005859375f, -300.0f, 3.0e38f};          // (2, 2)
    lg_st_out ts[3] = {
        {"w.a\"quoted", LG_ST_F32, 2, {2, 3}, a},
        {"w.b", LG_ST_F16, 1, {5}, b},
        {"w.c", LG_ST_BF16, 2, {2, 2}, c},
    };
    char *p = tpath("one.safetensors");
    lg_st_write(p, ts, 3);
    struct stat st;
    CHECK(stat(p, &st) == 0, "file written");
    size_t len;
    char *raw = lg_read_file(p, &len);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | (uint8_t)raw[i];
    CHECK((8 + hl) % 8 == 0, "data area aligned to 8: header %llu", (unsigned long long)hl);
    CHECK(len == 8 + hl + 24 + 10 + 8, "exact file size %zu", len);
    CHECK(raw[8 + hl - 1] == ' ' || raw[8 + hl - 1] == '}', "padding is spaces");
    CHECK(strstr(raw + 8, "\"__metadata__\": {\"format\": \"pt\"}") != NULL, "metadata format pt");
    // F32 bytes are the floats verbatim
    CHECK(memcmp(raw + 8 + hl, a, 24) == 0, "F32 data verbatim");
    free(raw);

    lg_st_file f;
    lg_st_open(&f, p);
    CHECK(f.n == 3, "3 tensors, metadata skipped (%d)", f.n);
    const lg_st_tensor *ta = lg_st_find(&f, "w.a\"quoted"), *tb = lg_st_find(&f, "w.b"), *tc = lg_st_find(&f, "w.c");
    CHECK(ta && tb && tc && !lg_st_find(&f, "__metadata__"), "find");
    if (ta && tb && tc) {
        CHECK(ta->ndim == 2 && ta->shape[0] == 2 && ta->shape[1] == 3 && ta->dtype == LG_ST_F32, "a meta");
        CHECK(tb->ndim == 1 && tb->shape[0] == 5 && tb->dtype == LG_ST_F16 && tb->begin == 24 && tb->end == 34, "b meta");
        CHECK(tc->dtype == LG_ST_BF16 && tc->begin == 34 && tc->end == 42, "c meta");
        float o[6];
        lg_st_read_f32(&f, ta, o);
        for (int i = 0; i < 6; i++) CHECK(bits(o[i]) == bits(a[i]), "a[%d]", i);
        lg_st_read_f32(&f, tb, o);
        for (int i = 0; i < 5; i++)
            CHECK(bits(o[i]) == bits(lg_f16_to_f32(lg_f32_to_f16(b[i]))), "b[%d] = %g", i, o[i]);
        CHECK(isinf(o[3]) && o[4] == (float)ldexp(1, -24), "f16 overflow -> inf, 6e-8 -> 2^-24 (%g %g)", o[3], o[4]);
        lg_st_read_f32(&f, tc, o);
        // 1.00390625 = 1 + 2^-8 is a tie between 1 and 1+2^-7: even -> 1.0; 1.005859375 = 1 + 1.5*2^-7 -> 1 + 2^-6
        CHECK(o[0] == 1.0f && o[1] == 1.0078125f && o[2] == -300.0f, "bf16 ties: %.9g %.9g %g", o[0], o[1], o[2]);
        CHECK(o[3] == fbits(lg_f32_to_bf16(3.0e38f) << 16), "bf16 large");
    }
    lg_st_close(&f);
    free(p);
}

static void test_sharded(void) {
    // 7 tensors of 40 bytes (F32, 10 elements) with a 100-byte limit: 2 per shard -> 4 shards
    float d[7][10];
    lg_st_out ts[7];
    char names[7][32];
    for (int i = 0; i < 7; i++) {
        for (int k = 0; k < 10; k++) d[i][k] = (float)(i * 100 + k);
        snprintf(names[i], sizeof names[i], "t.%d", i);
        ts[i] = (lg_st_out){names[i], LG_ST_F32, 1, {10}, d[i]};
    }
    char *dir = tpath("sharded");
    lg_mkdirs(dir);
    int ns = lg_st_write_sharded(dir, ts, 7, 100);
    CHECK(ns == 4, "4 shards, got %d", ns);
    char *ip = lg_path_join(dir, "model.safetensors.index.json");
    lg_json *idx = lg_json_parse_file(ip);
    CHECK(lg_json_int(lg_json_get(idx, "metadata"), "total_size", "index") == 280, "total_size");
    lg_json *wm = lg_json_get(idx, "weight_map");
    CHECK(wm && wm->n == 7, "weight_map has 7");
    const char *want[7] = {"model-00001-of-00004.safetensors", "model-00001-of-00004.safetensors",
                           "model-00002-of-00004.safetensors", "model-00002-of-00004.safetensors",
                           "model-00003-of-00004.safetensors", "model-00003-of-00004.safetensors",
                           "model-00004-of-00004.safetensors"};
    for (int i = 0; i < 7; i++) {
        const char *file = lg_json_str(wm, names[i], "index");
        CHECK(!strcmp(file, want[i]), "%s in %s, want %s", names[i], file, want[i]);
        char *sp = lg_path_join(dir, file);
        lg_st_file f;
        lg_st_open(&f, sp);
        const lg_st_tensor *t = lg_st_find(&f, names[i]);
        CHECK(t != NULL, "%s present in its shard", names[i]);
        if (t) {
            float o[10];
            lg_st_read_f32(&f, t, o);
            CHECK(!memcmp(o, d[i], 40), "%s data", names[i]);
        }
        lg_st_close(&f);
        free(sp);
    }
    lg_json_free(idx);
    free(ip);
    // under the limit: one model.safetensors, no index
    char *dir2 = tpath("single");
    lg_mkdirs(dir2);
    CHECK(lg_st_write_sharded(dir2, ts, 7, 1000) == 1, "single file");
    char *sp = lg_path_join(dir2, "model.safetensors"), *ip2 = lg_path_join(dir2, "model.safetensors.index.json");
    CHECK(lg_file_exists(sp) && !lg_file_exists(ip2), "single file, no index");
    free(sp);
    free(ip2);
    free(dir2);
    free(dir);
}

static void test_malformed(void) {
    char *p;
#define SL 0  // header length field = strlen(header)
#define CASE(name, hlen, header, data, want)                               \
    p = tpath(name);                                                       \
    write_raw(p, (hlen) ? (hlen) : strlen(header), (header), (data));      \
    expect_death(open_and_read_all, p, (want));         \
    free(p);
    const char *ok = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    size_t okl = strlen(ok);
    CASE("good.st", okl, ok, 8, NULL);  // the well-formed base of the cases below is accepted
    CASE("trunc.st", okl, ok, 5, "trunc.st: file is truncated: tensor x ends at byte 8 of the data area, which holds only 5 bytes");
    CASE("trail.st", okl, ok, 12, "trail.st: 4 bytes after the last tensor");
    CASE("hugelen.st", 0x4141414141414141ULL, ok, 8, "hugelen.st: header length 4702111234474983745 (first 8 bytes, little-endian) is larger than the 100 MB limit");
    CASE("pastend.st", 5000, ok, 8, "pastend.st: header length 5000 (first 8 bytes) runs past the end of the");
    CASE("notjson.st", 10, "{\"x\": nope", 0, "notjson.st: safetensors header is not valid JSON: line 1 col 7: expected a value");
    CASE("notobj.st", 3, "[1]", 0, "notobj.st: header does not start with '{'");
    CASE("i8.st", SL, "{\"q\":{\"dtype\":\"I8\",\"shape\":[3],\"data_offsets\":[0,3]}}", 3,
         "i8.st: tensor q: dtype I8 is not supported (expected F32, F16 or BF16)");
    CASE("q4.st", SL, "{\"q\":{\"dtype\":\"Q4\",\"shape\":[3],\"data_offsets\":[0,3]}}", 3,
         "q4.st: tensor q: unknown dtype \"Q4\" (expected F32, F16 or BF16)");
    CASE("size.st", SL, "{\"q\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
         "size.st: tensor q: data_offsets [0, 8] hold 8 bytes but dtype F16 with 3 elements needs 6");
    CASE("gap.st", SL, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12,
         "gap.st: tensor b: data_offsets begin at 8 but the previous tensor ends at 4 (tensors must be contiguous)");
    CASE("overlap.st", SL, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
         "overlap.st: tensor b: data_offsets [4, 8] overlap the previous tensor (which ends at 8)");
    CASE("negshape.st", SL, "{\"q\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
         "negshape.st: tensor q: shape must hold non-negative integers");
    CASE("noff.st", SL, "{\"q\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4,
         "noff.st: tensor q: \"data_offsets\" missing or not [begin, end]");
#undef CASE
#undef SL
    p = tpath("short.st");
    write_bytes(p, "\x10\x00\x00", 3);
    expect_death(open_and_read_all, p, "short.st: file is 3 bytes, too short for a safetensors file");
    free(p);
    p = tpath("missing.st");
    expect_death(open_and_read_all, p, "missing.st: cannot open: No such file or directory");
    free(p);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lg_test_safetensors.%d", (int)getpid());
    lg_mkdirs(tmpdir);
    test_f16();
    test_bf16();
    test_roundtrip();
    test_sharded();
    test_malformed();
    lg_rmtree(tmpdir);
    if (fails) {
        printf("test_safetensors: %d failures\n", fails);
        return 1;
    }
    printf("test_safetensors: ok\n");
    return 0;
}
