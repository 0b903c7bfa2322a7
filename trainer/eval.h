// eval.h: validation loss: mean next-token loss of a model over the first sequences of a data spec.
#pragma once
#include "batch.h"
#include "model.h"

// Loss SUM and target count over the first max_seqs sequences of spec (all of them when max_seqs <= 0 or
// larger; synthetic: max_seqs sequences of another seed than training), this rank's share (r, r+W, ...).
// The caller sums both over ranks. Forward only; M's gradients are untouched.
void lg_eval(lg_model *M, const lg_config *c, const char *spec, int max_seqs, int rank, int world, double *loss_sum,
             int64_t *n_targets);
