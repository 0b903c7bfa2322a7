// data_tokenizer.c: C tokenizer throughput. Encodes every document of a JSONL file (field "text") `reps`
// times on one thread; prints bytes, tokens, seconds and MB/s as one JSON line (bench/data_bench.py reads it).
// usage: bench_data_tokenizer tokenizer.model corpus.jsonl [reps]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/jsonl.h"
#include "data/tokenizer.h"
#include "trainer/util.h"

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s tokenizer.model corpus.jsonl [reps]\n", argv[0]); return 2; }
    int reps = argc > 3 ? atoi(argv[3]) : 3;
    lg_tokenizer *t = lg_tok_load(argv[1]);
    size_t n;
    char *buf = lg_read_file(argv[2], &n);
    // decode the documents once (JSON parsing is not the tokenizer's cost)
    size_t nd = 0, cap = 64;
    char **doc = lg_malloc(cap * sizeof *doc);
    size_t *len = lg_malloc(cap * sizeof *len);
    for (char *p = buf; p < buf + n;) {
        char *e = memchr(p, '\n', (size_t)(buf + n - p));
        if (!e) e = buf + n;
        if (e > p) {
            char *out = NULL;
            size_t oc = 0;
            const char *err;
            long l = lg_jsonl_field(p, (size_t)(e - p), "text", &out, &oc, &err);
            if (l < 0) lg_die("%s: bad line", argv[2]);
            if (nd == cap) { cap *= 2; doc = lg_realloc(doc, cap * sizeof *doc); len = lg_realloc(len, cap * sizeof *len); }
            doc[nd] = out;
            len[nd++] = (size_t)l;
        }
        p = e + 1;
    }
    int32_t *ids = NULL;
    size_t icap = 0, bytes = 0, tokens = 0;
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = lg_now_seconds();
        size_t tk = 0, by = 0;
        for (size_t i = 0; i < nd; i++) { tk += lg_tok_encode(t, doc[i], len[i], 0, 0, &ids, &icap); by += len[i]; }
        double dt = lg_now_seconds() - t0;
        if (dt < best) best = dt;
        tokens = tk;
        bytes = by;
    }
    printf("{\"docs\": %zu, \"bytes\": %zu, \"tokens\": %zu, \"seconds\": %.6f, \"MBps\": %.3f}\n", nd, bytes, tokens, best,
           bytes / best / 1e6);
    for (size_t i = 0; i < nd; i++) free(doc[i]);
    free(doc); free(len); free(ids); free(buf);
    lg_tok_free(t);
    return 0;
}
