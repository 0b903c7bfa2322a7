// tokstream.h: token streams, the input of `lgdata pack`: documents of token ids from
//   .lgt  written by `lgdata tokenize` (header, tokens, document offsets; see FORMAT.md),
//   .bin  raw little-endian uint16/uint32 ids (dtype given by the user),
//   .npy  a 1-D NumPy array of uint16/uint32/int32/int64/uint64 ids.
// Raw streams (.bin, .npy) are split into documents at a separator id (dropped), or are one document.
#pragma once
#include <stdint.h>
#include <stdio.h>

#define LG_LGT_MAGIC "LGTOKS1"  // 8 bytes with the NUL
#define LG_LGT_HEADER 64

typedef struct {
    char *path;
    void *map;                      // read-only mmap of the file
    size_t map_len;
    const uint8_t *tokens;          // first token
    int elem_bytes;                 // 2, 4 or 8
    int elem_signed;
    uint64_t n_tokens, n_docs;
    uint64_t *doc_start, *doc_end;  // (n_docs) token index ranges [start, end)
    int has_meta;                   // .lgt: the next four fields are known
    uint64_t tokenizer_hash;
    int64_t vocab_size, bos_id, eos_id;
} lg_tokstream;

// raw_dtype: "u16" or "u32" for .bin (ignored otherwise); doc_sep: separator id for raw streams, -1 = none.
lg_tokstream *lg_tokstream_open(const char *path, const char *raw_dtype, int64_t doc_sep);
// Token i as uint64 (callers check it against the vocabulary).
static inline uint64_t lg_tokstream_get(const lg_tokstream *s, uint64_t i) {
    const uint8_t *p = s->tokens + i * (uint64_t)s->elem_bytes;
    if (s->elem_bytes == 2) return (uint64_t)(p[0] | (p[1] << 8));
    if (s->elem_bytes == 4) {
        uint32_t v = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
        return s->elem_signed ? (uint64_t)(int64_t)(int32_t)v : v;
    }
    uint64_t v = 0;
    for (int k = 7; k >= 0; k--) v = (v << 8) | p[k];
    return v;
}
void lg_tokstream_close(lg_tokstream *s);

// .lgt writer: documents are appended one at a time; the file appears (renamed from a temporary) on close.
typedef struct lg_lgt_writer lg_lgt_writer;
lg_lgt_writer *lg_lgt_writer_open(const char *path, uint64_t tokenizer_hash, int64_t vocab_size, int64_t bos_id,
                                  int64_t eos_id);
void lg_lgt_writer_doc(lg_lgt_writer *w, const int32_t *ids, size_t n);
uint64_t lg_lgt_writer_tokens(const lg_lgt_writer *w);
void lg_lgt_writer_close(lg_lgt_writer *w);
