// checkpoint.h: training checkpoints: atomic save by all ranks, validation by checksums, resume (also onto
// a different number of ranks), pruning.
//
// Layout of one checkpoint, <checkpoint.dir>/step-000123/:
//   model.safetensors                     fp32 master weights under their HF names (split into
//                                         model-0000k-of-0000n.safetensors + index past 5 GB)
//   optim-rank00001-of-00004.safetensors  AdamW moments of rank 1's ZeRO shard: "exp_avg", "exp_avg_sq",
//                                         F32 (hi - lo); __metadata__ holds rank, world, lo, hi, total
//   config.ini                            the resolved configuration of the run that wrote it
//   state.json                            written last: step, tokens seen, LR, data cursor (epoch, global
//                                         position), world size, ZeRO stage, the shard ranges, the config
//                                         text, and the size + CRC-32 of every other file
// Saving: rank 0 creates step-000123.tmp-<tag>; every rank writes and fsyncs its files there; after a
// barrier rank 0 writes state.json, fsyncs it and the directory, renames the directory to step-000123 and
// fsyncs the parent; then it removes all but the newest checkpoint.keep. A crash at any point leaves the
// previous checkpoints as they were (a .tmp- directory is never read, and is removed by the next save).
#pragma once
#include <stdint.h>

#include "../trainer/config.h"
#include "../trainer/dist.h"
#include "../trainer/params.h"

typedef struct {
    int64_t step;               // optimizer steps done (the LR schedule position)
    int64_t tokens_seen;        // tokens trained on so far
    double lr;                  // LR of the last step
    uint64_t data_epoch, data_pos;  // data cursor at the step boundary (lg_batch_get_cursor)
    int world, zero_stage;      // of the run that saved
    int64_t param_total;        // flat buffer length (model shape check)
} lg_ckpt_state;

// Save a checkpoint (collective: every rank calls it). master: fp32 host weights, full length, used on
// rank 0. m, v: host fp32 moments of this rank's shard [lo, hi) (lg_dist_shard). Returns the final
// directory (heap string, same on every rank).
char *lg_ckpt_save(lg_dist *d, const lg_config *c, const lg_param_table *pt, const float *master, const float *m,
                   const float *v, int64_t lo, int64_t hi, const lg_ckpt_state *st);

// The newest usable checkpoint under root (collective), or NULL when root holds none. Each unusable one
// (missing/short file, CRC mismatch, bad state.json) is skipped with a warning naming the file; dies when
// checkpoints exist but none is usable.
char *lg_ckpt_find_latest(lg_dist *d, const char *root);
// Check one checkpoint directory (collective): 1 if usable, else 0 and *why (heap) names the file and the
// problem. Every file is size-checked; the CRCs are split over the ranks.
int lg_ckpt_validate(lg_dist *d, const char *dir, char **why);
// state.json of a validated checkpoint.
void lg_ckpt_read_state(const char *dir, lg_ckpt_state *st);
// Compare the checkpoint's config.ini with the current configuration and print what differs: [model] and
// [layout] must match (dies listing the differences); other keys warn (e.g. optim.lr, run.steps).
void lg_ckpt_check_config(const char *dir, const lg_config *c);
// master[lo, hi) (host fp32, table layout) from the checkpoint's model files; tensors outside are untouched.
void lg_ckpt_load_master(const char *dir, const lg_param_table *pt, float *master, int64_t lo, int64_t hi);
// Moments of [lo, hi) (host fp32, hi - lo each) assembled from whichever saved shards overlap the range,
// so a checkpoint written by W ranks loads onto any number of ranks.
void lg_ckpt_load_optim(const char *dir, float *m, float *v, int64_t lo, int64_t hi);

// Test hook: LG_TEST_CRASH_AT=<phase> (begin, model, optim_partial, optim, state, rename), with
// LG_TEST_CRASH_STEP (any step when unset) and LG_TEST_CRASH_RANK (default 0): raise(SIGKILL) there.
void lg_ckpt_crash_point(const char *phase, int rank, int64_t step);
