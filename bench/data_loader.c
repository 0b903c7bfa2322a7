// data_loader.c: loader decode throughput on one core. Writes shards of synthetic Zipf(1.1) token ids over a
// Llama-sized vocabulary (32000; zstd ratio close to real token streams) at seq_len 131072 (one 256 KiB chunk
// per sequence), or reads the shards given on the command line, then times lg_loader_next over every sequence
// twice: with prefetch 0 (decode + CRC + id check on the calling thread = one core) and prefetch 4 (the
// background thread; the caller's wait is what a training step would see). Prints one JSON line.
// usage: bench_data_loader [SPEC SEQ_LEN VOCAB]
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/loader.h"
#include "data/shard.h"
#include "trainer/util.h"

static uint64_t sm(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int main(int argc, char **argv) {
    const char *spec;
    int S, V;
    char dir[256] = "";
    if (argc >= 4) {
        spec = argv[1]; S = atoi(argv[2]); V = atoi(argv[3]);
    } else {
        S = 131072; V = 32000;
        snprintf(dir, sizeof dir, "/tmp/lg_bench_loader.%d", (int)getpid());
        lg_mkdirs(dir);
        // Zipf(1.1) by inverse CDF over ranks, ranks mapped to ids by a fixed shuffle.
        double *cdf = lg_malloc((size_t)V * sizeof *cdf), z = 0;
        for (int i = 0; i < V; i++) { z += pow(i + 1.0, -1.1); cdf[i] = z; }
        int *perm = lg_malloc((size_t)V * sizeof *perm);
        uint64_t s = 7;
        for (int i = 0; i < V; i++) perm[i] = i;
        for (int i = V - 1; i > 0; i--) { int j = (int)(sm(&s) % (uint64_t)(i + 1)), t = perm[i]; perm[i] = perm[j]; perm[j] = t; }
        uint32_t *seq = lg_malloc((size_t)S * sizeof *seq);
        for (int f = 0; f < 2; f++) {
            char path[512];
            snprintf(path, sizeof path, "%s/shard-%05d.h5", dir, f);
            lg_shard_meta m;
            memset(&m, 0, sizeof m);
            m.vocab_size = V; m.bos_id = 1; m.eos_id = 2; m.seq_len = S; m.zstd_level = 3;
            lg_shard_writer *w = lg_shard_writer_open(path, &m);
            for (int r = 0; r < 32; r++) {
                for (int i = 0; i < S; i++) {
                    double u = (sm(&s) >> 11) * (1.0 / 9007199254740992.0) * z;
                    int lo = 0, hi = V - 1;
                    while (lo < hi) { int mid = (lo + hi) / 2; if (cdf[mid] < u) lo = mid + 1; else hi = mid; }
                    seq[i] = (uint32_t)perm[lo];
                }
                lg_shard_writer_append(w, seq);
            }
            lg_shard_writer_close(w);
        }
        free(cdf); free(perm); free(seq);
        spec = dir;
    }
    lg_data_meta meta;
    lg_data_describe(spec, &meta);
    int32_t *buf = lg_malloc((size_t)S * sizeof *buf);
    double rate[2], wait_max = 0, wait_mean = 0;
    uint64_t n = meta.n_sequences;
    for (int mode = 0; mode < 2; mode++) {
        lg_loader *L = lg_loader_open(spec, S, V, 0, 0, 1, 1, mode ? 4 : 0);
        lg_loader_next(L, buf);  // warm the file cache
        lg_data_cursor c0 = {0, 0};
        lg_loader_seek(L, c0);
        if (mode) usleep(200000);  // let the worker fill its ring, as it would during a training step
        double t0 = lg_now_seconds();
        for (uint64_t k = 0; k < n; k++) {
            double a = lg_now_seconds();
            lg_loader_next(L, buf);
            double w = lg_now_seconds() - a;
            if (mode) { wait_mean += w / (double)n; if (w > wait_max) wait_max = w; }
        }
        rate[mode] = (double)n * S / (lg_now_seconds() - t0);
        lg_loader_close(L);
    }
    char d[512];
    int nf;
    char **files = lg_data_list_files(spec, &nf);
    lg_shard *sh = lg_shard_open(files[0]);
    lg_shard_describe(sh, d, sizeof d);
    lg_shard_close(sh);
    printf("{\"seq_len\": %d, \"vocab\": %d, \"sequences\": %llu, \"tokens_per_s_one_core\": %.0f, "
           "\"tokens_per_s_prefetch4_backtoback\": %.0f, \"decode_ms_per_seq\": %.3f, \"storage\": \"%s\"}\n",
           S, V, (unsigned long long)n, rate[0], rate[1], 1e3 * S / rate[0], d);
    (void)wait_max; (void)wait_mean;
    for (int i = 0; i < nf; i++) free(files[i]);
    free(files);
    free(buf);
    if (dir[0]) lg_rmtree(dir);
    return 0;
}
