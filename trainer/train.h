// train.h: the training run: model + data + optimizer + logging + export.
#pragma once
#include "config.h"

// Run the whole job described by c (one rank for now). Returns 0 on success.
int lg_train(const lg_config *c);
