// batch.h: where training sequences come from: HDF5 shards through data/loader, or a synthetic task
// ("synthetic": Zipf-distributed tokens whose second half repeats the first, so unigram statistics and
// long-range copying are both learnable). Sequences are addressed by a global index, so every rank count
// and every resume sees the same data.
#pragma once
#include <stdint.h>

#include "config.h"

typedef struct lg_batch_source lg_batch_source;

// spec: shards (dir, glob or list; checked against seq_len, vocab and, when the tokenizer is known — the
// tokenizer.model in export.tokenizer_dir or in the init_from dir — its hash) or "synthetic".
lg_batch_source *lg_batch_open(const lg_config *c, const char *spec, int rank, int world);
// Sequences in one epoch (0 for synthetic: unbounded).
uint64_t lg_batch_n_sequences(const lg_batch_source *b);
// Next sequence of seq_len tokens for this rank.
void lg_batch_next(lg_batch_source *b, int32_t *seq);
// Cursor: (epoch, global position) shared by all ranks at a step boundary.
void lg_batch_get_cursor(const lg_batch_source *b, uint64_t *epoch, uint64_t *pos);
void lg_batch_set_cursor(lg_batch_source *b, uint64_t epoch, uint64_t pos);
void lg_batch_close(lg_batch_source *b);
// Synthetic sequence number idx (for tests).
void lg_synthetic_sequence(uint64_t seed, uint64_t idx, int S, int V, int bos, int32_t *seq);
