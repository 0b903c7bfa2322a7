// tokenizer.h: the Llama-2 tokenizer: a sentencepiece BPE model read from tokenizer.model (the protobuf is
// parsed here). Encoding follows sentencepiece exactly: identity normalizer (' ' -> U+2581 "▁", dummy prefix,
// optional removal of extra spaces, invalid UTF-8 -> U+FFFD), characters as initial symbols, user-defined
// pieces kept whole, highest-score merge first and leftmost on ties (a binary heap: O(n log n) for an
// n-byte text), unused pieces re-split, unknown pieces to <0xXX> byte pieces when byte_fallback is on.
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef enum {
    LG_PIECE_NORMAL = 1,
    LG_PIECE_UNKNOWN = 2,
    LG_PIECE_CONTROL = 3,
    LG_PIECE_USER_DEFINED = 4,
    LG_PIECE_UNUSED = 5,
    LG_PIECE_BYTE = 6,
} lg_piece_type;

typedef struct lg_tokenizer lg_tokenizer;

// Load tokenizer.model; dies naming the file and the field for anything unsupported
// (model types other than BPE, normalizers other than identity, treat_whitespace_as_suffix).
lg_tokenizer *lg_tok_load(const char *path);
void lg_tok_free(lg_tokenizer *t);

int lg_tok_vocab_size(const lg_tokenizer *t);
int lg_tok_bos_id(const lg_tokenizer *t);  // -1 when the model has none
int lg_tok_eos_id(const lg_tokenizer *t);
int lg_tok_unk_id(const lg_tokenizer *t);
// Hash of the model file's bytes (FNV-1a 64): what shards record as tokenizer_hash.
uint64_t lg_tok_hash(const lg_tokenizer *t);
uint64_t lg_tok_file_hash(const char *path);
uint64_t lg_fnv1a64(const void *p, size_t n);
// Piece text (not NUL-terminated; *len bytes), score and type of an id.
const char *lg_tok_piece(const lg_tokenizer *t, int id, int *len);
float lg_tok_score(const lg_tokenizer *t, int id);
lg_piece_type lg_tok_type(const lg_tokenizer *t, int id);

// Encode len bytes of text. Appends the ids to *ids (grown with realloc; *cap is its capacity) and
// returns how many. Prepends BOS / appends EOS when asked. Uses scratch space inside t: one thread per tokenizer.
size_t lg_tok_encode(lg_tokenizer *t, const char *text, size_t len, int add_bos, int add_eos, int32_t **ids,
                     size_t *cap);
// Decode ids to text as sentencepiece's DecodeIds does. Returns a NUL-terminated heap string; *len its length.
char *lg_tok_decode(const lg_tokenizer *t, const int32_t *ids, size_t n, size_t *len);
