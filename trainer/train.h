// train.h: the training run: model + data + optimizer + collectives + checkpoints + logging + export.
#pragma once
#include "config.h"
#include "dist.h"

// Run the whole job described by c on this rank of d (lg_dist_init). Resumes from a checkpoint when
// c->resume says so. Returns 0 on success, also when stopped by a signal after saving a checkpoint.
int lg_train(const lg_config *c, lg_dist *d);
// Validation loss of the config's starting model (init_from) on data.val (or data.train when val is empty),
// without training: `lgtrain --eval`. Prints it and returns 0.
int lg_train_eval_only(const lg_config *c, lg_dist *d);
