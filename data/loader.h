// loader.h: the training data loader. Each rank reads its own sequences from a set of shards, decoded ahead
// of time on a background thread.
//
// Order. All shards of a spec form one list of N sequences (files sorted by name, rows in order). Epoch e
// visits them in a permutation P_e drawn from (seed, e): the order of the chunk-sized blocks of rows is shuffled,
// then the rows inside each block (a block is what one zstd chunk decodes to, so a rank decodes each chunk once
// per visit). Concatenating the epochs gives one global stream g = 0, 1, 2, ... with sequence P_{g / N}(g % N).
//
// Ranks. Rank r of W, started at global position G0 (0, or a restored cursor), returns the stream items
// G0 + r, G0 + r + W, G0 + r + 2W, ...: the ranks together consume the stream in strides of W, disjoint, with
// nothing skipped, across epoch boundaries too.
//
// Cursor. After rank r has returned k sequences since G0, lg_loader_cursor returns G = G0 + k * W as
// (epoch = G / N, position = G % N): the number of stream items consumed by all ranks together, assuming
// every rank has returned k (true at a step boundary, where all ranks have taken the same number of
// sequences; a checkpoint stores rank 0's cursor). It does not depend on W, so a run may resume with another
// number of ranks: lg_loader_seek(G) on every rank continues at G + r with the new W, and within the epoch
// no sequence is repeated or skipped. Seeking costs no reading: it rebuilds the epoch's block order (O(blocks)
// arithmetic) and restarts the prefetch thread's position.
#pragma once
#include <stdint.h>

#include "shard.h"

typedef struct lg_loader lg_loader;

typedef struct {
    uint64_t epoch, position;  // GLOBAL position in the epoch's permutation: world-size independent
} lg_data_cursor;

// Summary of all shards of a spec, for the trainer's config check (read from the attributes only).
typedef struct {
    int n_files;
    int64_t vocab_size, bos_id, eos_id, seq_len;
    uint64_t tokenizer_hash;  // 0 = unknown
    uint64_t n_sequences, n_tokens, n_docs;
    int token_bytes;
} lg_data_meta;

// train_spec: a directory (every *.h5 in it), a glob ("data/train-*.h5"), or a comma-separated list of .h5 files.
// Dies with the file and the reason when a shard is missing, unreadable, of another format version, or disagrees
// with seq_len, vocab_size (shard ids must fit: shard vocab <= vocab_size) or tokenizer_hash (when not 0),
// or with the other shards (bos/eos, tokenizer). prefetch = sequences decoded ahead (0 = decode in lg_loader_next).
lg_loader *lg_loader_open(const char *train_spec, int seq_len, int vocab_size, uint64_t tokenizer_hash_or_0, int rank,
                          int world, uint64_t seed, int prefetch);
// Next sequence for this rank into tokens (seq_len ids); wraps to the next epoch (reshuffled).
// Every sequence is checked (CRC-32 when the shard has /seq_crc32, ids < vocab) before it is returned.
void lg_loader_next(lg_loader *L, int32_t *tokens);
// Cursor AFTER the last sequence returned by this rank (see above).
lg_data_cursor lg_loader_cursor(const lg_loader *L);
// Continue from a cursor: the next sequence of rank r is stream item epoch * N + position + r. O(blocks), no I/O.
void lg_loader_seek(lg_loader *L, lg_data_cursor c);
uint64_t lg_loader_n_sequences(const lg_loader *L);
const lg_data_meta *lg_loader_meta(const lg_loader *L);
void lg_loader_close(lg_loader *L);

// Read and cross-check the attributes of every shard of a spec, without opening a loader (dies on disagreement).
void lg_data_describe(const char *train_spec, lg_data_meta *out);
// The sorted list of shard files of a spec (dies when none match). Caller frees each string and the array.
char **lg_data_list_files(const char *train_spec, int *n);
