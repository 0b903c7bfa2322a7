// safetensors.h: read and write the safetensors format (HF weights), single file or sharded with an index.
// Format (DESIGN.md "Formats"): u64 little-endian header length N; N bytes of JSON
//   {"__metadata__": {...}, "<name>": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, ...}
// padded with spaces; then the data area. Offsets are relative to the data area; tensors are contiguous,
// non-overlapping, and the last one ends exactly at the end of the file.
// The reader validates all of that when a file is opened and dies naming the file and the tensor.
#pragma once
#include <stddef.h>
#include <stdint.h>

// Dtypes we convert to/from fp32. Other safetensors dtypes are recognised (their sizes are needed to
// validate offsets) but reading one is an error naming the file, the tensor and the dtype.
typedef enum { LG_ST_F32 = 0, LG_ST_F16, LG_ST_BF16, LG_ST_OTHER } lg_st_dtype;

#define LG_ST_MAX_DIMS 8
#define LG_ST_DEFAULT_SHARD_BYTES 5000000000ULL  // HF's max_shard_size default "5GB" (decimal)

typedef struct {
    char *name;
    char dtype_name[16];      // as written in the header ("BF16", "I8", ...)
    lg_st_dtype dtype;
    int elem_bytes;
    int ndim;
    int64_t shape[LG_ST_MAX_DIMS];
    int64_t numel;
    uint64_t begin, end;      // byte offsets relative to the data area
} lg_st_tensor;

typedef struct {
    char *path;
    int fd;
    const uint8_t *map;       // the whole file, mapped read-only
    size_t size;              // file size in bytes
    uint64_t header_len;
    const uint8_t *data;      // map + 8 + header_len
    lg_st_tensor *t;          // in header order
    int n;
} lg_st_file;

// Open and validate a file; dies with "<path>: <what is wrong>" on any format error.
void lg_st_open(lg_st_file *f, const char *path);
void lg_st_close(lg_st_file *f);
const lg_st_tensor *lg_st_find(const lg_st_file *f, const char *name);  // NULL if absent
// Convert one tensor to fp32 into out (numel floats). Dies naming file, tensor and dtype if unsupported.
void lg_st_read_f32(const lg_st_file *f, const lg_st_tensor *t, float *out);

// Conversions: widening is exact; narrowing rounds to nearest, ties to even (NaN stays NaN, overflow -> inf).
float lg_bf16_to_f32(uint16_t h);
uint16_t lg_f32_to_bf16(float x);
float lg_f16_to_f32(uint16_t h);
uint16_t lg_f32_to_f16(float x);

const char *lg_st_dtype_name(lg_st_dtype d);  // "F32", "F16", "BF16"
int lg_st_dtype_bytes(lg_st_dtype d);
// Parse an export dtype: "bf16"|"f16"|"f32" (also "bfloat16", "float16", "float32"); returns 0 if unknown.
int lg_st_dtype_parse(const char *s, lg_st_dtype *out);

// One tensor to write: fp32 data converted to dtype on the way out.
typedef struct {
    const char *name;
    lg_st_dtype dtype;
    int ndim;
    int64_t shape[LG_ST_MAX_DIMS];
    const float *data;        // numel floats
} lg_st_out;

// Bytes a tensor occupies in the file.
uint64_t lg_st_out_bytes(const lg_st_out *t);
// Write one file: written to "<path>.tmp.<pid>", fsynced, renamed over path. __metadata__ = {"format": "pt"}.
void lg_st_write(const char *path, const lg_st_out *ts, int n);
// Write ts into dir: one "model.safetensors" when the data fits in max_shard_bytes, else
// "model-0000k-of-0000n.safetensors" (a new shard starts when the next tensor would pass the limit; a tensor
// bigger than the limit gets a shard of its own) plus "model.safetensors.index.json" with
// {"metadata": {"total_size": N}, "weight_map": {name: file}}. Returns the number of files written.
int lg_st_write_sharded(const char *dir, const lg_st_out *ts, int n, uint64_t max_shard_bytes);
