// pack.h: `lgdata pack`: token streams -> shards of fixed-length sequences.
// Documents are selected (optional per-source length upsampling: documents shorter than long_min tokens are
// kept with probability short_keep, long ones always), split into train/val by val_frac, shuffled (seed),
// and concatenated as BOS doc [EOS] BOS doc [EOS] ...; the stream is cut into seq_len sequences (the tail
// that does not fill a sequence is dropped) and written shard_seqs sequences per file. Deterministic given seed.
#pragma once
#include <stdint.h>

typedef struct {
    const char *out_dir;      // writes out_dir/train/shard-00000.h5 ..., out_dir/val/shard-00000.h5 ...
    int64_t seq_len;
    double val_frac;          // fraction of documents (by a seeded hash) that go to val/
    uint64_t seed;
    int shuffle;              // 1 = shuffle documents (default)
    int zstd_level;           // 1..22 (3 default); 0 = no compression
    uint64_t shard_seqs;      // sequences per shard file; 0 = about 2^28 tokens per file
    int add_eos;              // append EOS after each document
    int64_t long_min;         // documents with >= long_min tokens are "long" (0 = every document is long)
    double short_keep;        // keep probability for short documents (per source), 1 = keep all
    // metadata for raw inputs (.bin/.npy); .lgt inputs carry their own and must agree with these when given
    int64_t vocab_size, bos_id, eos_id;  // -1 = not given
    uint64_t tokenizer_hash;             // 0 = not given
    const char *raw_dtype;               // .bin: "u16" or "u32"
    int64_t doc_sep;                     // raw inputs: separator id (-1 = BOS id, -2 = none)
    int force;                           // remove earlier *.h5 in the output folders instead of refusing
    int quiet;
} lg_pack_opts;

void lg_pack_defaults(lg_pack_opts *o);
void lg_pack(const lg_pack_opts *o, int n_inputs, char **inputs);
