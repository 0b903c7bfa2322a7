// loss.c: softmax cross-entropy over the vocabulary, fused with its gradient (logits overwritten in place).
#include <math.h>
#include <stdlib.h>

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/ops_cpu.h"
#include "trainer/util.h"

// logits (T,V) -> dlogits = (softmax - onehot(target)) * dscale ; returns sum over kept tokens of
// logsumexp(logits) - logits[target]. target < 0: ignored (loss 0, zero gradient row).
double lg_cpu_cross_entropy(void *logits, const int32_t *targets, int64_t T, int V, float dscale) {
    float *x = (float *)logits;
    for (int64_t t = 0; t < T; t++)
        if (targets[t] >= V)
            lg_die("cross_entropy: target %d at position %lld is outside the vocabulary [0, %d)", targets[t],
                   (long long)t, V);
    double *row_loss = lg_malloc((size_t)(T > 0 ? T : 1) * sizeof(double));
#pragma omp parallel for schedule(static) if (T * (int64_t)V > 65536)
    for (int64_t t = 0; t < T; t++) {
        float *r = x + t * (int64_t)V;  // 64-bit: T*V passes 2^31 at long context
        int32_t y = targets[t];
        if (y < 0) {
            for (int j = 0; j < V; j++) r[j] = 0.0f;
            row_loss[t] = 0.0;
            continue;
        }
        float mx = lg_cpu_max_row(r, V);
        double xy = r[y];
        double sum = lg_cpu_exp_row(r, V, mx);  // r now holds exp(x - max)
        row_loss[t] = log(sum) + mx - xy;
        float k = (float)(dscale / sum);
        for (int j = 0; j < V; j++) r[j] *= k;
        r[y] -= dscale;
    }
    double s = 0;
    for (int64_t t = 0; t < T; t++) s += row_loss[t];  // in order: independent of the thread count
    free(row_loss);
    return s;
}
