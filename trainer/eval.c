// eval.c: see eval.h.
#include "eval.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

void lg_eval(lg_model *M, const lg_config *c, const char *spec, int max_seqs, int rank, int world, double *loss_sum,
             int64_t *n_targets) {
    int B = M->B, S = M->S;
    int64_t T = (int64_t)B * S;
    *loss_sum = 0;
    *n_targets = 0;
    lg_config vc = *c;
    vc.seed = c->seed + 0x5eed;  // synthetic validation must not be the training sequences
    lg_batch_source *src = lg_batch_open(&vc, spec, 0, 1);
    uint64_t n = lg_batch_n_sequences(src);
    if (n == 0 && max_seqs <= 0) lg_die("evaluation on %s needs a number of sequences", spec);
    if (max_seqs > 0 && (n == 0 || (uint64_t)max_seqs < n)) n = (uint64_t)max_seqs;
    int32_t *seq = lg_malloc(sizeof(int32_t) * (size_t)S);
    int32_t *tok = lg_malloc(sizeof(int32_t) * (size_t)T), *tgt = lg_malloc(sizeof(int32_t) * (size_t)T);
    // Read the global order 0..n-1 on every rank and keep this rank's share: the split does not depend on
    // shard boundaries, and n is small next to training.
    int fill = 0;
    for (uint64_t g = 0; g < n; g++) {
        lg_batch_next(src, seq);
        if ((int)(g % (uint64_t)world) != rank) continue;
        for (int s = 0; s < S; s++) {
            tok[(int64_t)fill * S + s] = seq[s];
            tgt[(int64_t)fill * S + s] = s + 1 < S ? seq[s + 1] : -1;
        }
        if (++fill == B || g + (uint64_t)world >= n) {
            for (int b = fill; b < B; b++)  // pad a partial micro-batch with ignored targets
                for (int s = 0; s < S; s++) tok[(int64_t)b * S + s] = tok[s], tgt[(int64_t)b * S + s] = -1;
            *loss_sum += lg_model_forward(M, tok, tgt, NULL);
            *n_targets += (int64_t)fill * (S - 1);
            fill = 0;
        }
    }
    free(seq);
    free(tok);
    free(tgt);
    lg_batch_close(src);
}
