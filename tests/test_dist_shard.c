// test_dist_shard: ZeRO shards tile the flat buffer (contiguous, 64-aligned, the last takes the rest), and
// AdamW run shard by shard (tensors cut at shard boundaries, decay per tensor) gives the same bits as AdamW
// on the whole buffer; single-process collectives leave data alone.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/config.h"
#include "trainer/dist.h"
#include "trainer/optim.h"
#include "trainer/params.h"
#include "trainer/util.h"

static int fails = 0;
#define CHECK(c, ...)                                            \
    do {                                                         \
        if (!(c)) {                                              \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                        \
            fprintf(stderr, "\n");                               \
            fails++;                                             \
        }                                                        \
    } while (0)

int main(void) {
    const int64_t ns[] = {1, 7, 63, 64, 100, 1000, 4096, 36064, 1000003, 7000000001LL};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        for (int w = 1; w <= 9; w++) {
            int64_t n = ns[i], at = 0, s0 = -1;
            if (n < w) continue;
            for (int r = 0; r < w; r++) {
                int64_t lo, hi;
                lg_dist_shard(n, w, r, &lo, &hi);
                CHECK(lo == at && hi >= lo, "n=%lld w=%d r=%d: [%lld, %lld) does not continue at %lld", (long long)n, w, r,
                      (long long)lo, (long long)hi, (long long)at);
                if (r == 0) s0 = hi - lo;
                if (r < w - 1) CHECK(hi - lo == s0, "n=%lld w=%d r=%d: size %lld != %lld", (long long)n, w, r, (long long)(hi - lo), (long long)s0);
                else CHECK(hi - lo >= s0 && hi - lo - s0 < 64 * w + w, "n=%lld w=%d: last shard %lld vs %lld", (long long)n, w, (long long)(hi - lo), (long long)s0);
                if (n >= 64 * w) CHECK(lo % 64 == 0, "n=%lld w=%d r=%d: start %lld not 64-aligned", (long long)n, w, r, (long long)lo);
                at = hi;
            }
            CHECK(at == n, "n=%lld w=%d: shards end at %lld", (long long)n, w, (long long)at);
        }

    // AdamW shard by shard == whole buffer, on the tiny model's table (norms without decay)
    lg_config c;
    memset(&c, 0, sizeof c);
    c.model = (lg_model_cfg){.vocab_size = 50, .dim = 24, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .head_dim = 6,
                             .ffn_dim = 40, .norm_eps = 1e-5f, .bos_id = 1, .eos_id = 2, .init_std = 0.02f};
    c.weight_decay = 0.1;
    c.beta1 = 0.9;
    c.beta2 = 0.95;
    c.eps = 1e-8;
    lg_param_table pt;
    lg_params_build(&pt, &c.model);
    const lg_ops *ops = lg_ops_cpu();
    int64_t n = pt.total;
    float *w0 = malloc(sizeof(float) * n), *g = malloc(sizeof(float) * n), *wa = malloc(sizeof(float) * n),
          *wb = malloc(sizeof(float) * n);
    lg_params_init_random(&pt, w0, &c.model, 3);
    for (int64_t i = 0; i < n; i++) g[i] = sinf((float)i * 0.37f) * 0.01f;
    memcpy(wa, w0, sizeof(float) * n);
    lg_adamw full;
    lg_adamw_init(&full, ops, 0, n);
    for (int t = 1; t <= 3; t++) lg_adamw_step(&full, &c, &pt, wa, g, 1e-2f, t);
    for (int w = 2; w <= 5; w++) {
        memcpy(wb, w0, sizeof(float) * n);
        for (int r = 0; r < w; r++) {
            int64_t lo, hi;
            lg_dist_shard(n, w, r, &lo, &hi);
            lg_adamw sh;
            lg_adamw_init(&sh, ops, lo, hi);
            for (int t = 1; t <= 3; t++) lg_adamw_step(&sh, &c, &pt, wb + lo, g + lo, 1e-2f, t);
            float *m = malloc(sizeof(float) * (hi - lo + 1)), *v = malloc(sizeof(float) * (hi - lo + 1));
            lg_adamw_download(&sh, lo, hi, m, v);
            CHECK(!memcmp(m, full.m + lo, sizeof(float) * (hi - lo)) && !memcmp(v, full.v + lo, sizeof(float) * (hi - lo)),
                  "w=%d r=%d: moments differ from the whole-buffer optimizer", w, r);
            free(m);
            free(v);
            lg_adamw_free(&sh);
        }
        CHECK(!memcmp(wa, wb, sizeof(float) * n), "w=%d: sharded AdamW differs from whole-buffer AdamW", w);
    }
    // the comparison is not vacuous: three steps moved most weights
    int64_t changed = 0;
    for (int64_t i = 0; i < n; i++) changed += wa[i] != w0[i];
    CHECK(changed > n / 2, "AdamW changed only %lld of %lld weights", (long long)changed, (long long)n);

    // one process: world 1, collectives are no-ops, sums are the value itself
    int argc = 1;
    char *argv0[] = {"test_dist_shard", NULL}, **argv = argv0;
    lg_dist *d = lg_dist_init(&argc, &argv);
    CHECK(d->world == 1 && d->rank == 0 && !strcmp(d->backend, "single"), "single process: world %d backend %s", d->world, d->backend);
    memcpy(wb, wa, sizeof(float) * n);
    lg_dist_allreduce_sum(d, wb, n);
    lg_dist_reduce_scatter_sum(d, wb, n);
    lg_dist_allgather(d, wb, n);
    CHECK(!memcmp(wa, wb, sizeof(float) * n) && lg_dist_sum_f64(d, 2.5) == 2.5 && lg_dist_any(d, 3) == 1 && lg_dist_any(d, 0) == 0,
          "single-process collectives must not change data");
    lg_dist_finalize(d);
    lg_adamw_free(&full);
    lg_params_free(&pt);
    free(w0); free(g); free(wa); free(wb);
    if (fails) { fprintf(stderr, "test_dist_shard: %d FAILED\n", fails); return 1; }
    printf("test_dist_shard: all checks passed\n");
    return 0;
}
