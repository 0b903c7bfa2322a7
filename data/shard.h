// shard.h: tokenized shards (HDF5 + zstd filter 32015), reading and writing. The format is in data/FORMAT.md:
// root attributes (format, format_version, vocab_size, bos_id, eos_id, seq_len, n_sequences, n_tokens, n_docs,
// tokenizer_hash, ...), /tokens (n_sequences, seq_len) uint16|uint32, /seq_crc32 (n_sequences) uint32,
// /doc_starts (n_docs) uint64. Readers open files read-only; every failure names the file and what is wrong.
#pragma once
#include <stdint.h>

#define LG_SHARD_FORMAT "lgtrain-shard"
#define LG_SHARD_VERSION 1
#define LG_SHARD_CHUNK_BYTES (256 * 1024)  // target uncompressed chunk size: one chunk per sequence or per ~256 KiB

typedef struct {
    int format_version;
    int64_t vocab_size;       // token ids are < vocab_size
    int64_t bos_id, eos_id;   // -1 = none
    int64_t seq_len;          // tokens per sequence (row of /tokens)
    uint64_t n_sequences;
    uint64_t n_tokens;        // n_sequences * seq_len
    uint64_t n_docs;          // documents that START in this shard (entries of /doc_starts)
    uint64_t tokenizer_hash;  // lg_tok_file_hash of the tokenizer.model the ids came from; 0 = unknown
    int token_bytes;          // 2 (uint16) or 4 (uint32)
    int zstd_level;           // writer only: level for filter 32015; 0 = no compression
    uint64_t chunk_rows;      // writer: rows per chunk (0 = one chunk per sequence or per ~256 KiB)
} lg_shard_meta;

typedef struct lg_shard lg_shard;

// Open read-only and validate the attributes against the datasets. Dies naming the file and the field.
lg_shard *lg_shard_open(const char *path);
const lg_shard_meta *lg_shard_get_meta(const lg_shard *s);
const char *lg_shard_path(const lg_shard *s);
// Rows per chunk of /tokens: the unit that is decompressed at once (readers read whole chunks).
uint64_t lg_shard_chunk_rows(const lg_shard *s);
// Short description of /tokens storage for `lgdata info`: chunk shape, filters, stored bytes.
void lg_shard_describe(const lg_shard *s, char *buf, int n);
// Rows [row0, row0+nrows) of /tokens into buf (nrows * seq_len * token_bytes, little-endian as stored),
// and their CRCs into crc (nrows) when crc != NULL and the shard has /seq_crc32 (returns 1, else 0).
int lg_shard_read_rows(lg_shard *s, uint64_t row0, uint64_t nrows, void *buf, uint32_t *crc);
// Check one row read by lg_shard_read_rows: CRC (when has_crc) and every id < vocab_size; converts to int32.
// Dies with "<file>: /tokens row R ..." on a mismatch.
void lg_shard_check_row(const lg_shard *s, uint64_t row, const void *raw, int has_crc, uint32_t crc, int32_t *out);
// /doc_starts into a new array (caller frees); *n = n_docs.
uint64_t *lg_shard_read_doc_starts(lg_shard *s, uint64_t *n);
void lg_shard_close(lg_shard *s);

typedef struct lg_shard_writer lg_shard_writer;
// Writes "<path>.tmp.<pid>" and renames it to path on close. Uses vocab_size, bos_id, eos_id, seq_len,
// tokenizer_hash, token_bytes (0 = pick 2 when vocab_size <= 65536, else 4) and zstd_level from m.
lg_shard_writer *lg_shard_writer_open(const char *path, const lg_shard_meta *m);
// A document starts (its BOS) at this offset of the shard's flattened tokens (row * seq_len + col).
void lg_shard_writer_doc_start(lg_shard_writer *w, uint64_t token_offset);
void lg_shard_writer_append(lg_shard_writer *w, const uint32_t *tokens /* (seq_len) */);
uint64_t lg_shard_writer_rows(const lg_shard_writer *w);
void lg_shard_writer_close(lg_shard_writer *w);
