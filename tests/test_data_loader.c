// test_data_loader.c: the shard loader against the data it was given (no HDF5 reader in between but ours):
// every epoch is a permutation of all sequences, ranks are disjoint and cover it for 1, 2, 3 ranks, the next
// epoch is reshuffled, a saved cursor resumes exactly (same and different world size, with and without
// prefetch), and each misuse dies with its message.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "data/loader.h"
#include "data/shard.h"
#include "trainer/util.h"

#ifndef LG_HAVE_HDF5
int main(void) { printf("SKIP: built without HDF5\n"); return 77; }
#else

#define S 24
#define V 5000
static int fails = 0;
#define CHECK(c, ...) do { if (!(c)) { fails++; fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); fprintf(stderr, __VA_ARGS__); fprintf(stderr, "\n"); } } while (0)

// Row `g` (global id) of the test data: ids 0..V-1 that encode g in the first two positions.
static void row_of(uint64_t g, uint32_t *t) {
    t[0] = 3 + (uint32_t)(g % 4000);
    t[1] = 3 + (uint32_t)(g / 4000);
    uint64_t x = g * 0x9e3779b97f4a7c15ull + 1;
    for (int i = 2; i < S; i++) { x ^= x >> 29; x *= 0xbf58476d1ce4e5b9ull; t[i] = (uint32_t)(x % V); }
}
static uint64_t id_of(const int32_t *t) { return (uint64_t)(t[0] - 3) + 4000ull * (uint64_t)(t[1] - 3); }

static char dir[256];
static const uint64_t rows_per_file[] = {37, 50, 13};  // N = 100, blocks of 8 rows (chunk_rows) and ragged ends
#define N 100

static void make_shards(void) {
    uint64_t g = 0;
    for (int f = 0; f < 3; f++) {
        char path[512];
        snprintf(path, sizeof path, "%s/part-%d.h5", dir, f);
        lg_shard_meta m;
        memset(&m, 0, sizeof m);
        m.vocab_size = V; m.bos_id = 1; m.eos_id = 2; m.seq_len = S; m.tokenizer_hash = 0x1234; m.zstd_level = 3;
        m.chunk_rows = 8;
        lg_shard_writer *w = lg_shard_writer_open(path, &m);
        for (uint64_t r = 0; r < rows_per_file[f]; r++) {
            uint32_t t[S];
            row_of(g++, t);
            lg_shard_writer_append(w, t);
        }
        lg_shard_writer_close(w);
    }
}

// Read `count` sequences on each rank of `world` starting at cursor c; record ids in order (ids[r][k]).
static void read_ranks(int world, lg_data_cursor c, int count, int prefetch, uint64_t seed, uint64_t *ids, lg_data_cursor *after) {
    for (int r = 0; r < world; r++) {
        lg_loader *L = lg_loader_open(dir, S, V, 0x1234, r, world, seed, prefetch);
        lg_loader_seek(L, c);
        for (int k = 0; k < count; k++) {
            int32_t t[S];
            lg_loader_next(L, t);
            uint64_t g = id_of(t);
            uint32_t want[S];
            row_of(g, want);
            int same = 1;
            for (int i = 0; i < S; i++) same &= (uint32_t)t[i] == want[i];
            CHECK(g < N && same, "world %d rank %d item %d: sequence content does not match row %llu", world, r, k, (unsigned long long)g);
            ids[(size_t)r * (size_t)count + (size_t)k] = g;
        }
        lg_data_cursor a = lg_loader_cursor(L);
        if (r == 0) *after = a;
        CHECK(a.epoch == after->epoch && a.position == after->position, "ranks disagree on the cursor");
        lg_loader_close(L);
    }
}

// Expect a child running fn to exit non-zero with `want` in its stderr.
static void expect_death(const char *what, void (*fn)(void), const char *want) {
    int p[2];
    if (pipe(p) != 0) { perror("pipe"); exit(1); }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 2);
        close(p[0]);
        fn();
        _exit(0);
    }
    close(p[1]);
    char buf[4096];
    size_t n = 0;
    ssize_t k;
    while ((k = read(p[0], buf + n, sizeof buf - 1 - n)) > 0) n += (size_t)k;
    buf[n] = 0;
    close(p[0]);
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) != 0, "%s: expected failure, got status %d", what, st);
    CHECK(strstr(buf, want) != NULL, "%s: message lacks '%s': %s", what, want, buf);
}

static void bad_seq_len(void) { lg_loader_open(dir, S + 1, V, 0, 0, 1, 0, 0); }
static void bad_hash(void) { lg_loader_open(dir, S, V, 0x9999, 0, 1, 0, 0); }
static void bad_vocab(void) { lg_loader_open(dir, S, V - 1, 0, 0, 1, 0, 0); }
static void bad_missing(void) {
    char spec[600];
    snprintf(spec, sizeof spec, "%s/part-0.h5,%s/part-7.h5", dir, dir);
    lg_loader_open(spec, S, V, 0, 0, 1, 0, 0);
}
static void bad_glob(void) {
    char spec[600];
    snprintf(spec, sizeof spec, "%s/nothing-*.h5", dir);
    lg_loader_open(spec, S, V, 0, 0, 1, 0, 0);
}
static void bad_cursor(void) {
    lg_loader *L = lg_loader_open(dir, S, V, 0, 0, 1, 0, 2);
    lg_data_cursor c = {0, N};
    lg_loader_seek(L, c);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/lg_test_data_loader.%d", (int)getpid());
    lg_mkdirs(dir);
    make_shards();

    lg_data_meta m;
    lg_data_describe(dir, &m);
    CHECK(m.n_files == 3 && m.n_sequences == N && m.seq_len == S && m.vocab_size == V && m.tokenizer_hash == 0x1234 &&
          m.token_bytes == 2, "describe: files %d seqs %llu", m.n_files, (unsigned long long)m.n_sequences);

    // One epoch over 1, 2, 3 ranks: disjoint and complete; the global order does not depend on the world size.
    uint64_t order1[N];
    for (int world = 1; world <= 3; world++) {
        int per = N / world;  // items every rank gets within the epoch (remainder checked below)
        uint64_t ids[N + 3];
        lg_data_cursor c0 = {0, 0}, after;
        read_ranks(world, c0, per, world == 2 ? 0 : 3, 42, ids, &after);
        CHECK(after.epoch * N + after.position == (uint64_t)(per * world), "world %d: cursor %llu:%llu", world,
              (unsigned long long)after.epoch, (unsigned long long)after.position);
        int seen[N] = {0};
        for (int r = 0; r < world; r++)
            for (int k = 0; k < per; k++) {
                uint64_t g = ids[r * per + k];
                if (g < N) seen[g]++;
                if (world == 1) order1[k] = g;
                else CHECK(g == order1[(size_t)k * world + r], "world %d rank %d item %d is not global item %d", world, r, k, k * world + r);
            }
        int dup = 0, cover = 0;
        for (int g = 0; g < N; g++) { dup += seen[g] > 1; cover += seen[g] == 1; }
        CHECK(dup == 0 && cover == per * world, "world %d: %d duplicates, %d covered of %d", world, dup, cover, per * world);
    }
    int identity = 1;
    for (int k = 0; k < N; k++) identity &= order1[k] == (uint64_t)k;
    CHECK(!identity, "epoch 0 is not shuffled");

    // Epoch 1 is another permutation; the stream crosses the epoch boundary without a gap.
    {
        lg_loader *L = lg_loader_open(dir, S, V, 0x1234, 0, 1, 42, 4);
        int seen[N] = {0}, differ = 0;
        for (int k = 0; k < 2 * N; k++) {
            int32_t t[S];
            lg_loader_next(L, t);
            uint64_t g = id_of(t);
            if (k >= N) { seen[g]++; differ += g != order1[k - N]; }
        }
        int cover = 0;
        for (int g = 0; g < N; g++) cover += seen[g] == 1;
        CHECK(cover == N, "epoch 1 covers %d of %d", cover, N);
        CHECK(differ > N / 2, "epoch 1 order equals epoch 0 in %d places", N - differ);
        lg_data_cursor c = lg_loader_cursor(L);
        CHECK(c.epoch == 2 && c.position == 0, "after two epochs the cursor is %llu:%llu", (unsigned long long)c.epoch, (unsigned long long)c.position);
        lg_loader_close(L);
        // A different seed gives a different order.
        L = lg_loader_open(dir, S, V, 0x1234, 0, 1, 43, 0);
        int same = 0;
        for (int k = 0; k < N; k++) { int32_t t[S]; lg_loader_next(L, t); same += id_of(t) == order1[k]; }
        CHECK(same < N / 2, "seed 43 repeats seed 42's order in %d places", same);
        lg_loader_close(L);
    }

    // Resume: 2 ranks take 17 each (cursor 34), then 3 ranks continue from the cursor through epoch 1;
    // epoch 0 is covered exactly once, and a straight run with one rank gives the same global order.
    {
        uint64_t a[2 * 17], b[3 * 40];
        lg_data_cursor c0 = {0, 0}, c1, c2;
        read_ranks(2, c0, 17, 3, 42, a, &c1);
        CHECK(c1.epoch == 0 && c1.position == 34, "cursor after 2x17: %llu:%llu", (unsigned long long)c1.epoch, (unsigned long long)c1.position);
        read_ranks(3, c1, 40, 2, 42, b, &c2);
        CHECK(c2.epoch == 1 && c2.position == 34 + 120 - N, "cursor after 3x40: %llu:%llu", (unsigned long long)c2.epoch, (unsigned long long)c2.position);
        uint64_t global[34 + 120];
        for (int k = 0; k < 17; k++) for (int r = 0; r < 2; r++) global[k * 2 + r] = a[r * 17 + k];
        for (int k = 0; k < 40; k++) for (int r = 0; r < 3; r++) global[34 + k * 3 + r] = b[r * 40 + k];
        int seen[N] = {0};
        for (int k = 0; k < N; k++) seen[global[k]]++;
        int cover = 0;
        for (int g = 0; g < N; g++) cover += seen[g] == 1;
        CHECK(cover == N, "resumed epoch 0 covers %d of %d exactly once", cover, N);
        lg_loader *L = lg_loader_open(dir, S, V, 0x1234, 0, 1, 42, 0);
        int match = 0;
        for (int k = 0; k < 34 + 120; k++) { int32_t t[S]; lg_loader_next(L, t); match += id_of(t) == global[k]; }
        CHECK(match == 34 + 120, "resumed stream differs from the straight stream in %d places", 34 + 120 - match);
        // Seeking a loader mid-prefetch (after reading ahead) restarts exactly at the cursor.
        lg_data_cursor back = {0, 34};
        lg_loader_seek(L, back);
        for (int k = 0; k < 10; k++) { int32_t t[S]; lg_loader_next(L, t); CHECK(id_of(t) == global[34 + k], "after seek item %d differs", k); }
        lg_loader_close(L);
        L = lg_loader_open(dir, S, V, 0x1234, 0, 1, 42, 5);
        for (int k = 0; k < 7; k++) { int32_t t[S]; lg_loader_next(L, t); }
        usleep(20000);  // let the worker fill its ring
        lg_loader_seek(L, back);
        for (int k = 0; k < 10; k++) { int32_t t[S]; lg_loader_next(L, t); CHECK(id_of(t) == global[34 + k], "after prefetch seek item %d differs", k); }
        lg_loader_close(L);
    }

    expect_death("seq_len", bad_seq_len, "seq_len is 24, the run wants 25");
    expect_death("tokenizer", bad_hash, "tokenizer_hash is 0x0000000000001234");
    expect_death("vocab", bad_vocab, "vocab_size is 5000, larger than the model's 4999");
    expect_death("missing", bad_missing, "part-7.h5: no such shard file");
    expect_death("glob", bad_glob, "matches no file");
    expect_death("cursor", bad_cursor, "cursor position 100 is not below the 100 sequences");

    lg_rmtree(dir);
    if (fails) { printf("%d checks failed\n", fails); return 1; }
    printf("test_data_loader: all checks passed\n");
    return 0;
}
#endif
