// dist.h: the distributed layer. Ranks, ZeRO shards and the few collectives the trainer needs, behind one
// small interface with three backends:
//   single  one process started without a launcher: world = 1, every collective is a no-op.
//   mpi     CPU ranks under mpirun/srun: collectives act on host buffers. The reductions are our own
//           (point-to-point exchange, then a sum in rank order 0, 1, ..., W-1), so a result is bitwise the
//           same on every rank, for every run with the same world size, whatever algorithm MPI would pick.
//   nccl    GPU ranks (CUDA builds with NCCL): the fp32 collectives act on device buffers on a stream of
//           their own; MPI bootstraps NCCL (the unique id is broadcast over MPI) and carries host scalars.
// A rank that dies through lg_die takes the whole job down (MPI_Abort) with its rank in the message, and a
// NCCL collective whose peer died fails within seconds (async error polling) instead of hanging.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "../kernels/ops.h"
#include "util.h"

typedef struct lg_dist_s {
    int rank, world;              // global rank and number of ranks
    int local_rank, local_world;  // rank among the ranks of this node (picks the GPU)
    int mpi;                      // 1 when lg_dist_init called MPI_Init (so finalize must be called)
    int nccl;                     // 1 when the fp32 collectives run through NCCL on device buffers
    const char *backend;          // "single", "mpi" or "nccl"
    void *nccl_comm, *nccl_stream;  // ncclComm_t, cudaStream_t (opaque here: the header stays C-only)
    void *nccl_event;               // cudaEvent_t: the compute stream's progress the next collective waits for
    void *nccl_done_event;          // cudaEvent_t: the communication stream's progress compute waits for
    int pending;                    // collectives started and not yet waited for
    float *scratch;               // mpi: receive buffer of the reduce-scatter (world x chunk floats)
    int64_t chunk;                // mpi: elements exchanged per peer per round
} lg_dist;

// Start: MPI_Init when a launcher started us (OpenMPI/PMIx/PMI environment variables), else a single
// process. Sets the message prefix "[rank r/W]" and the die hook that aborts all ranks. Returns a global.
lg_dist *lg_dist_init(int *argc, char ***argv);
// MPI_Finalize (after a barrier) when MPI was initialized; releases NCCL.
void lg_dist_finalize(lg_dist *d);
// GPU ranks: cudaSetDevice(local_rank % device count). Call before the CUDA backend allocates anything.
void lg_dist_select_device(lg_dist *d);
// Tell the layer where the fp32 collectives' buffers live: ops->name "cuda" -> NCCL (dies when this build
// has no NCCL and world > 1), "cpu" -> MPI on host buffers.
void lg_dist_attach_backend(lg_dist *d, const lg_ops *ops);

// ZeRO shard of a flat buffer of n elements owned by rank r: [lo, hi). Contiguous; ranks 0..W-2 get the
// same size s (a multiple of 64 elements = 256 bytes when n >= 64 W), the last rank gets the rest (>= s).
void lg_dist_shard(int64_t n, int world, int r, int64_t *lo, int64_t *hi);

// fp32 collectives on buffers of n elements in backend memory; every rank calls them in the same order.
// Sums are elementwise over ranks, in rank order on the mpi backend.
void lg_dist_allreduce_sum(lg_dist *d, float *x, int64_t n);       // x = sum over ranks
// Start x = sum over ranks without waiting (NCCL: on the communication stream, after the work already queued
// on the compute stream, so it overlaps with what is queued next); lg_dist_wait finishes every started one.
// On MPI ranks it completes before returning. Elementwise sums are in rank order, as lg_dist_allreduce_sum.
void lg_dist_allreduce_sum_start(lg_dist *d, float *x, int64_t n);
void lg_dist_wait(lg_dist *d);
// ZeRO-2, one gradient bucket at a time: buf holds elements [lo, hi) of a flat buffer of n_total elements
// whose shards are lg_dist_shard(n_total). Start summing buf over ranks onto the owners: afterwards the part
// of buf inside this rank's shard holds the sum (rank order on mpi); the rest of buf is undefined. NCCL:
// grouped in-place reduces on the communication stream after the compute work queued so far (returns at
// once; lg_dist_compute_waits orders later compute after it); mpi: done on return; single: nothing to do.
void lg_dist_reduce_owned_start(lg_dist *d, float *buf, int64_t lo, int64_t hi, int64_t n_total);
// Compute work queued after this call waits for every collective started so far (NCCL: a stream event,
// the host does not block). No-op on the other backends, whose collectives finish before returning.
void lg_dist_compute_waits(lg_dist *d);
void lg_dist_reduce_scatter_sum(lg_dist *d, float *x, int64_t n);  // x[this rank's shard] = sum; rest undefined
void lg_dist_allgather(lg_dist *d, float *x, int64_t n);           // x[shard of r] from rank r, for every r
// The same in place on elements of elem_size bytes (4: fp32; 2: the bf16 weights, NCCL only), shards of
// lg_dist_shard(n).
void lg_dist_allgather_elems(lg_dist *d, void *x, int64_t n, size_t elem_size);
// Host fp32 buffer of n elements: rank r's shard of lg_dist_shard(n) is sent to root, which receives every
// shard where it belongs (checkpoints and exports written by rank 0 from sharded master weights). MPI; no-op
// for one rank.
void lg_dist_gather_host(lg_dist *d, float *x, int64_t n, int root);

// Host values.
void lg_dist_allgather_f64(lg_dist *d, double v, double *all);     // all (world) = v of each rank
double lg_dist_sum_f64(lg_dist *d, double v);                      // sum in rank order (same bits everywhere)
int lg_dist_any(lg_dist *d, int flag);                             // 1 if any rank passes non-zero
void lg_dist_bcast(lg_dist *d, void *buf, size_t bytes, int root);
void lg_dist_barrier(lg_dist *d);
// Kill every rank with exit code `code` (MPI_Abort), or exit(code) on a single process.
LG_NORETURN void lg_dist_abort(lg_dist *d, int code);
