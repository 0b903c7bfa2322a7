// embedding.c: token embedding lookup and its scatter-add backward.
#include <string.h>

#include "kernels/cpu/ops_cpu.h"
#include "trainer/util.h"

// out (T,C) = wte[tokens[t]] ; wte (V,C). V is not passed: the model checks token ids against the vocabulary.
void lg_cpu_embedding_fwd(void *out, const int32_t *tokens, const void *wte, int64_t T, int C) {
    float *o = (float *)out;
    const float *w = (const float *)wte;
    for (int64_t t = 0; t < T; t++)
        if (tokens[t] < 0) lg_die("embedding_fwd: token id %d at position %lld is negative", tokens[t], (long long)t);
#pragma omp parallel for schedule(static) if (T * C > 65536)
    for (int64_t t = 0; t < T; t++) memcpy(o + t * C, w + (int64_t)tokens[t] * C, (size_t)C * sizeof(float));
}

// dwte (V,C) += scatter of dout (T,C). Threads own column ranges, so repeated tokens never race and the
// summation order (t ascending) is fixed.
void lg_cpu_embedding_bwd(float *dwte, const void *dout, const int32_t *tokens, int64_t T, int C) {
    const float *g = (const float *)dout;
    for (int64_t t = 0; t < T; t++)
        if (tokens[t] < 0) lg_die("embedding_bwd: token id %d at position %lld is negative", tokens[t], (long long)t);
    enum { CB = 64 };
    int nb = (C + CB - 1) / CB;
#pragma omp parallel for schedule(static) if (T * C > 65536)
    for (int b = 0; b < nb; b++) {
        int c0 = b * CB, c1 = c0 + CB < C ? c0 + CB : C;
        for (int64_t t = 0; t < T; t++) {
            float *d = dwte + (int64_t)tokens[t] * C;
            const float *s = g + t * C;
            for (int c = c0; c < c1; c++) d[c] += s[c];
        }
    }
}
