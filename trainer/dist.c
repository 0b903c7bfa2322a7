// dist.c: see dist.h.
#include "dist.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef LG_HAVE_MPI
#include <mpi.h>
#endif
#if defined(LG_HAVE_CUDA)
#include <cuda_runtime_api.h>
#endif
#if defined(LG_HAVE_NCCL) && defined(LG_HAVE_CUDA) && defined(LG_HAVE_MPI)
#include <nccl.h>
#define LG_DIST_NCCL 1
#endif

static lg_dist g_dist = {.rank = 0, .world = 1, .local_rank = 0, .local_world = 1, .backend = "single"};

// A launcher sets these; a plain `lgtrain` run has none, so it never pays for (or depends on) MPI.
static const char *launcher_var(void) {
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return vars[i];
    return NULL;
}

#ifdef LG_HAVE_MPI
static void mpi_fail(const char *call, int rc, const char *file, int line) {
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, s, &len) != MPI_SUCCESS) snprintf(s, sizeof s, "MPI error %d", rc);
    lg_die("%s failed: %s (%s:%d). If another rank died, its message above says why.", call, s, file, line);
}
#define MPI_CHECK(call)                                          \
    do {                                                         \
        int rc_ = (call);                                        \
        if (rc_ != MPI_SUCCESS) mpi_fail(#call, rc_, __FILE__, __LINE__); \
    } while (0)

static void die_hook(int code) {
    // lg_die has printed "[rank r/W]: error: ..." already; take every other rank down with us.
    int up = 0, down = 0;
    MPI_Initialized(&up);
    MPI_Finalized(&down);
    if (up && !down) MPI_Abort(MPI_COMM_WORLD, code);
}
#endif

lg_dist *lg_dist_init(int *argc, char ***argv) {
    lg_dist *d = &g_dist;
    const char *var = launcher_var();
    d->chunk = 1 << 20;  // 4 MiB per peer per round: bounds the scratch buffer, big enough for full bandwidth
    const char *ch = getenv("LG_DIST_CHUNK");  // tests: many rounds on a tiny model
    if (ch && atoll(ch) > 0) d->chunk = atoll(ch) < (1 << 28) ? atoll(ch) : (1 << 28);  // MPI counts are int
    if (!var) return d;
#ifdef LG_HAVE_MPI
    int provided = 0;
    // FUNNELED: OpenMP threads compute, only the main thread calls MPI.
    MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
    d->mpi = 1;
    lg_set_die_hook(die_hook);
    MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &d->rank));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &d->world));
    MPI_Comm node;
    MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &node));
    MPI_CHECK(MPI_Comm_rank(node, &d->local_rank));
    MPI_CHECK(MPI_Comm_size(node, &d->local_world));
    MPI_CHECK(MPI_Comm_free(&node));
    d->backend = d->world > 1 ? "mpi" : "single";
    lg_set_rank_for_messages(d->rank, d->world);
#else
    (void)argc;
    (void)argv;
    const char *n = getenv("OMPI_COMM_WORLD_SIZE") ? getenv("OMPI_COMM_WORLD_SIZE") : getenv("PMI_SIZE");
    if (n && atoi(n) > 1)
        lg_die("started by a launcher with %s ranks (%s is set), but this lgtrain was built without MPI: install "
               "an MPI (e.g. libopenmpi-dev) and rebuild, or run one process without mpirun", n, var);
#endif
    return d;
}

void lg_dist_finalize(lg_dist *d) {
#ifdef LG_DIST_NCCL
    if (d->nccl_comm) {
        ncclCommDestroy((ncclComm_t)d->nccl_comm);
        cudaStreamDestroy((cudaStream_t)d->nccl_stream);
        if (d->nccl_event) cudaEventDestroy((cudaEvent_t)d->nccl_event);
        if (d->nccl_done_event) cudaEventDestroy((cudaEvent_t)d->nccl_done_event);
        d->nccl_comm = d->nccl_stream = d->nccl_event = d->nccl_done_event = NULL;
    }
#endif
    free(d->scratch);
    d->scratch = NULL;
#ifdef LG_HAVE_MPI
    if (d->mpi) {
        lg_dist_barrier(d);
        MPI_CHECK(MPI_Finalize());
        d->mpi = 0;
        lg_set_die_hook(NULL);
    }
#endif
}

void lg_dist_select_device(lg_dist *d) {
#ifdef LG_HAVE_CUDA
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
        cudaGetLastError();  // no GPU: leave it to the backend to say so
        return;
    }
    if (d->local_world > n)
        lg_warn("%d ranks on this node share %d GPU(s): rank %d uses GPU %d", d->local_world, n, d->rank,
                d->local_rank % n);
    cudaError_t e = cudaSetDevice(d->local_rank % n);
    if (e != cudaSuccess)
        lg_die("cudaSetDevice(%d) failed: %s (node-local rank %d)", d->local_rank % n, cudaGetErrorString(e),
               d->local_rank);
#else
    (void)d;
#endif
}

#ifdef LG_DIST_NCCL
#define CUDA_CHECK(call)                                                                                 \
    do {                                                                                                 \
        cudaError_t e_ = (call);                                                                         \
        if (e_ != cudaSuccess) lg_die("%s failed: %s (%s:%d)", #call, cudaGetErrorString(e_), __FILE__, __LINE__); \
    } while (0)
#define NCCL_CHECK(d, call)                                                                              \
    do {                                                                                                 \
        ncclResult_t r_ = (call);                                                                        \
        if (r_ != ncclSuccess) nccl_fail((d), #call, r_, __FILE__, __LINE__);                            \
    } while (0)

static void nccl_fail(lg_dist *d, const char *call, ncclResult_t r, const char *file, int line) {
    const char *last = d->nccl_comm ? ncclGetLastError((ncclComm_t)d->nccl_comm) : "";
    lg_die("%s failed: %s%s%s (%s:%d). If another rank died, its message above says why; NCCL_DEBUG=WARN shows more.",
           call, ncclGetErrorString(r), last && *last ? ": " : "", last ? last : "", file, line);
}

// Wait for the collective just enqueued, polling NCCL's async error so that a dead or failed peer ends the
// job in milliseconds rather than after a watchdog's minutes. LG_NCCL_TIMEOUT_S bounds a silent stall.
static void nccl_wait(lg_dist *d, const char *what) {
    cudaStream_t s = (cudaStream_t)d->nccl_stream;
    ncclComm_t comm = (ncclComm_t)d->nccl_comm;
    const char *to = getenv("LG_NCCL_TIMEOUT_S");
    double limit = to && atof(to) > 0 ? atof(to) : 1800.0, t0 = lg_now_seconds();
    for (unsigned spin = 0;; spin++) {
        cudaError_t e = cudaStreamQuery(s);
        if (e == cudaSuccess) return;
        if (e != cudaErrorNotReady) lg_die("%s: cudaStreamQuery failed: %s", what, cudaGetErrorString(e));
        ncclResult_t ae = ncclSuccess;
        NCCL_CHECK(d, ncclCommGetAsyncError(comm, &ae));
        if (ae != ncclSuccess) {
            const char *last = ncclGetLastError(comm);
            ncclCommAbort(comm);
            d->nccl_comm = NULL;
            lg_die("NCCL %s failed on this rank: %s%s%s. A peer rank probably died; its message above says why.",
                   what, ncclGetErrorString(ae), last && *last ? ": " : "", last ? last : "");
        }
        if ((spin & 1023) == 0 && lg_now_seconds() - t0 > limit) {
            ncclCommAbort(comm);
            d->nccl_comm = NULL;
            lg_die("NCCL %s did not complete in %.0f s (LG_NCCL_TIMEOUT_S): a peer rank is stuck or gone", what, limit);
        }
        if (spin > 4096) sched_yield();
    }
}
#endif

void lg_dist_attach_backend(lg_dist *d, const lg_ops *ops) {
    if (strcmp(ops->name, "cuda") || d->world == 1) return;
#ifdef LG_DIST_NCCL
    ncclUniqueId id;
    if (d->rank == 0) NCCL_CHECK(d, ncclGetUniqueId(&id));
    lg_dist_bcast(d, &id, sizeof id, 0);
    cudaStream_t s;
    CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    d->nccl_stream = s;
    ncclComm_t comm;
    NCCL_CHECK(d, ncclCommInitRank(&comm, d->world, id, d->rank));
    d->nccl_comm = comm;
    d->nccl = 1;
    d->backend = "nccl";
    int v = 0;
    ncclGetVersion(&v);
    lg_info("NCCL %d.%d.%d: %d ranks", v / 10000, (v / 100) % 100, v % 100, d->world);
#else
    lg_die("run.device = cuda with %d ranks needs NCCL, and this lgtrain was built without it (libnccl not found at "
           "cmake time): install NCCL and rebuild", d->world);
#endif
}

void lg_dist_shard(int64_t n, int world, int r, int64_t *lo, int64_t *hi) {
    int64_t s = n / world;
    if (s >= 64) s -= s % 64;  // 256-byte aligned shard starts
    *lo = (int64_t)r * s;
    *hi = r == world - 1 ? n : *lo + s;
}

#ifdef LG_HAVE_MPI
static int64_t clamp_count(int64_t left, int64_t k) { return left <= 0 ? 0 : left < k ? left : k; }

// Reduce-scatter: every rank sends each peer that peer's segment, then sums the W contributions to its own
// segment in rank order. Rounds of `chunk` elements per peer keep the scratch buffer at W x chunk floats.
static void mpi_reduce_scatter(lg_dist *d, float *x, int64_t n) {
    int W = d->world, me = d->rank;
    int64_t K = d->chunk, mlo, mhi, s0lo, s0hi;
    lg_dist_shard(n, W, me, &mlo, &mhi);
    lg_dist_shard(n, W, W - 1, &s0lo, &s0hi);
    int64_t longest = s0hi - s0lo;  // the last shard is the longest
    if (!d->scratch) d->scratch = lg_malloc(sizeof(float) * (size_t)(W * K));
    MPI_Request *req = lg_malloc(sizeof(MPI_Request) * (size_t)(2 * W));
    for (int64_t off = 0; off < longest; off += K) {
        int nr = 0;
        int64_t cme = clamp_count(mhi - mlo - off, K);
        for (int r = 0; r < W; r++) {
            if (r == me) continue;
            if (cme > 0)
                MPI_CHECK(MPI_Irecv(d->scratch + (int64_t)r * K, (int)cme, MPI_FLOAT, r, 101, MPI_COMM_WORLD, &req[nr++]));
            int64_t rlo, rhi;
            lg_dist_shard(n, W, r, &rlo, &rhi);
            int64_t cr = clamp_count(rhi - rlo - off, K);
            if (cr > 0) MPI_CHECK(MPI_Isend(x + rlo + off, (int)cr, MPI_FLOAT, r, 101, MPI_COMM_WORLD, &req[nr++]));
        }
        MPI_CHECK(MPI_Waitall(nr, req, MPI_STATUSES_IGNORE));
        float *dst = x + mlo + off;
        const float *sc = d->scratch;
#pragma omp parallel for schedule(static) if (cme > 65536)
        for (int64_t i = 0; i < cme; i++) {
            float acc = me == 0 ? dst[i] : sc[i];
            for (int r = 1; r < W; r++) acc += r == me ? dst[i] : sc[(int64_t)r * K + i];
            dst[i] = acc;
        }
    }
    free(req);
}

// All-gather in place: each rank sends its segment to every peer and receives theirs where they belong.
static void mpi_allgather(lg_dist *d, float *x, int64_t n) {
    int W = d->world, me = d->rank;
    int64_t K = d->chunk, mlo, mhi, s0lo, s0hi;
    lg_dist_shard(n, W, me, &mlo, &mhi);
    lg_dist_shard(n, W, W - 1, &s0lo, &s0hi);
    int64_t longest = s0hi - s0lo;
    MPI_Request *req = lg_malloc(sizeof(MPI_Request) * (size_t)(2 * W));
    for (int64_t off = 0; off < longest; off += K) {
        int nr = 0;
        int64_t cme = clamp_count(mhi - mlo - off, K);
        for (int r = 0; r < W; r++) {
            if (r == me) continue;
            int64_t rlo, rhi;
            lg_dist_shard(n, W, r, &rlo, &rhi);
            int64_t cr = clamp_count(rhi - rlo - off, K);
            if (cr > 0) MPI_CHECK(MPI_Irecv(x + rlo + off, (int)cr, MPI_FLOAT, r, 102, MPI_COMM_WORLD, &req[nr++]));
            if (cme > 0) MPI_CHECK(MPI_Isend(x + mlo + off, (int)cme, MPI_FLOAT, r, 102, MPI_COMM_WORLD, &req[nr++]));
        }
        MPI_CHECK(MPI_Waitall(nr, req, MPI_STATUSES_IGNORE));
    }
    free(req);
}
#endif

#ifdef LG_DIST_NCCL
// NCCL wants equal counts: the first W*s elements go through the ring collective (s = the common shard
// size), the short tail of the last shard through a reduce/broadcast rooted at the last rank.
static void nccl_split(const lg_dist *d, int64_t n, int64_t *s, int64_t *tail) {
    int64_t lo, hi;
    lg_dist_shard(n, d->world, 0, &lo, &hi);
    *s = hi - lo;
    *tail = n - *s * d->world;
}

// In-place all-gather of n elements of `elem` bytes (NCCL type t) in the shards of lg_dist_shard(n).
static void nccl_allgather(lg_dist *d, void *x, int64_t n, size_t elem, ncclDataType_t t, const char *what) {
    int64_t s, tail;
    nccl_split(d, n, &s, &tail);
    ncclComm_t c = (ncclComm_t)d->nccl_comm;
    cudaStream_t st = (cudaStream_t)d->nccl_stream;
    char *b = x, *last = b + (size_t)(s * d->world) * elem;
    CUDA_CHECK(cudaDeviceSynchronize());
    NCCL_CHECK(d, ncclGroupStart());
    if (s > 0) NCCL_CHECK(d, ncclAllGather(b + (size_t)((int64_t)d->rank * s) * elem, b, (size_t)s, t, c, st));
    if (tail > 0) NCCL_CHECK(d, ncclBroadcast(last, last, (size_t)tail, t, d->world - 1, c, st));
    NCCL_CHECK(d, ncclGroupEnd());
    nccl_wait(d, what);
}
#endif

void lg_dist_reduce_scatter_sum(lg_dist *d, float *x, int64_t n) {
    if (d->world == 1) return;
#ifdef LG_DIST_NCCL
    if (d->nccl) {
        int64_t s, tail;
        nccl_split(d, n, &s, &tail);
        ncclComm_t c = (ncclComm_t)d->nccl_comm;
        cudaStream_t st = (cudaStream_t)d->nccl_stream;
        CUDA_CHECK(cudaDeviceSynchronize());  // the backward that produced x is done
        NCCL_CHECK(d, ncclGroupStart());
        if (s > 0) NCCL_CHECK(d, ncclReduceScatter(x, x + (int64_t)d->rank * s, (size_t)s, ncclFloat, ncclSum, c, st));
        if (tail > 0)
            NCCL_CHECK(d, ncclReduce(x + s * d->world, x + s * d->world, (size_t)tail, ncclFloat, ncclSum, d->world - 1, c, st));
        NCCL_CHECK(d, ncclGroupEnd());
        nccl_wait(d, "reduce-scatter of the gradients");
        return;
    }
#endif
#ifdef LG_HAVE_MPI
    mpi_reduce_scatter(d, x, n);
#else
    (void)x;
    (void)n;
#endif
}

void lg_dist_allgather(lg_dist *d, float *x, int64_t n) {
    if (d->world == 1) return;
#ifdef LG_DIST_NCCL
    if (d->nccl) {
        nccl_allgather(d, x, n, 4, ncclFloat, "all-gather of the weights");
        return;
    }
#endif
#ifdef LG_HAVE_MPI
    mpi_allgather(d, x, n);
#else
    (void)x;
    (void)n;
#endif
}

void lg_dist_allgather_elems(lg_dist *d, void *x, int64_t n, size_t elem_size) {
    if (elem_size == 4) {
        lg_dist_allgather(d, (float *)x, n);
        return;
    }
    if (d->world == 1) return;
#ifdef LG_DIST_NCCL
    if (d->nccl && elem_size == 2) {
        nccl_allgather(d, x, n, 2, ncclBfloat16, "all-gather of the bf16 weights");
        return;
    }
#endif
    lg_die("all-gather of %zu-byte elements is only implemented for fp32 and, on NCCL, bf16", elem_size);
}

void lg_dist_gather_host(lg_dist *d, float *x, int64_t n, int root) {
    if (d->world == 1) return;
#ifdef LG_HAVE_MPI
    int64_t K = d->chunk;
    for (int r = 0; r < d->world; r++) {
        if (r == root) continue;
        int64_t a, b;
        lg_dist_shard(n, d->world, r, &a, &b);
        for (int64_t off = a; off < b; off += K) {
            int cnt = (int)clamp_count(b - off, K);
            if (d->rank == r) MPI_CHECK(MPI_Send(x + off, cnt, MPI_FLOAT, root, 104, MPI_COMM_WORLD));
            else if (d->rank == root)
                MPI_CHECK(MPI_Recv(x + off, cnt, MPI_FLOAT, r, 104, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
        }
    }
#else
    (void)x; (void)n; (void)root;
#endif
}

#ifdef LG_DIST_NCCL
// Make the communication stream wait for the compute stream's work queued so far: an event, not a device sync,
// so the collective queued next overlaps with whatever the compute stream is given afterwards.
static void nccl_after_compute(lg_dist *d) {
    cudaEvent_t ev = (cudaEvent_t)d->nccl_event;
    if (!ev) {
        CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
        d->nccl_event = ev;
    }
    CUDA_CHECK(cudaEventRecord(ev, 0));
    CUDA_CHECK(cudaStreamWaitEvent((cudaStream_t)d->nccl_stream, ev, 0));
}
#endif

void lg_dist_allreduce_sum_start(lg_dist *d, float *x, int64_t n) {
    if (d->world == 1 || n <= 0) return;
#ifdef LG_DIST_NCCL
    if (d->nccl) {
        nccl_after_compute(d);
        NCCL_CHECK(d, ncclAllReduce(x, x, (size_t)n, ncclFloat, ncclSum, (ncclComm_t)d->nccl_comm,
                                    (cudaStream_t)d->nccl_stream));
        d->pending++;
        return;
    }
#endif
    lg_dist_allreduce_sum(d, x, n);
}

#ifdef LG_HAVE_MPI
// Blocking reduce of buf ([lo, hi) of the flat buffer) onto the owners: for each owner in rank order, the
// others send it their part of its shard, and it sums the W contributions in rank order (same bits as
// mpi_reduce_scatter would give for those elements).
static void mpi_reduce_owned(lg_dist *d, float *buf, int64_t lo, int64_t hi, int64_t n_total) {
    int W = d->world, me = d->rank;
    int64_t K = d->chunk;
    if (!d->scratch) d->scratch = lg_malloc(sizeof(float) * (size_t)(W * K));
    MPI_Request *req = lg_malloc(sizeof(MPI_Request) * (size_t)W);
    for (int r = 0; r < W; r++) {
        int64_t a, b;
        lg_dist_shard(n_total, W, r, &a, &b);
        if (a < lo) a = lo;
        if (b > hi) b = hi;
        for (int64_t off = a; off < b; off += K) {
            int64_t cnt = clamp_count(b - off, K);
            float *part = buf + (off - lo);
            if (me != r) {
                MPI_CHECK(MPI_Send(part, (int)cnt, MPI_FLOAT, r, 103, MPI_COMM_WORLD));
                continue;
            }
            int nr = 0;
            for (int p = 0; p < W; p++)
                if (p != me)
                    MPI_CHECK(MPI_Irecv(d->scratch + (int64_t)p * K, (int)cnt, MPI_FLOAT, p, 103, MPI_COMM_WORLD, &req[nr++]));
            MPI_CHECK(MPI_Waitall(nr, req, MPI_STATUSES_IGNORE));
            const float *sc = d->scratch;
#pragma omp parallel for schedule(static) if (cnt > 65536)
            for (int64_t i = 0; i < cnt; i++) {
                float acc = me == 0 ? part[i] : sc[i];
                for (int p = 1; p < W; p++) acc += p == me ? part[i] : sc[(int64_t)p * K + i];
                part[i] = acc;
            }
        }
    }
    free(req);
}
#endif

void lg_dist_reduce_owned_start(lg_dist *d, float *buf, int64_t lo, int64_t hi, int64_t n_total) {
    if (d->world == 1 || hi <= lo) return;
#ifdef LG_DIST_NCCL
    if (d->nccl) {
        nccl_after_compute(d);
        NCCL_CHECK(d, ncclGroupStart());
        for (int r = 0; r < d->world; r++) {
            int64_t a, b;
            lg_dist_shard(n_total, d->world, r, &a, &b);
            if (a < lo) a = lo;
            if (b > hi) b = hi;
            if (a < b)
                NCCL_CHECK(d, ncclReduce(buf + (a - lo), buf + (a - lo), (size_t)(b - a), ncclFloat, ncclSum, r,
                                         (ncclComm_t)d->nccl_comm, (cudaStream_t)d->nccl_stream));
        }
        NCCL_CHECK(d, ncclGroupEnd());
        d->pending++;
        return;
    }
#endif
#ifdef LG_HAVE_MPI
    mpi_reduce_owned(d, buf, lo, hi, n_total);
#else
    (void)buf; (void)n_total;
#endif
}

void lg_dist_compute_waits(lg_dist *d) {
#ifdef LG_DIST_NCCL
    if (d->nccl && d->pending) {
        cudaEvent_t ev = (cudaEvent_t)d->nccl_done_event;
        if (!ev) {
            CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
            d->nccl_done_event = ev;
        }
        CUDA_CHECK(cudaEventRecord(ev, (cudaStream_t)d->nccl_stream));
        CUDA_CHECK(cudaStreamWaitEvent(0, ev, 0));
    }
#else
    (void)d;
#endif
}

void lg_dist_wait(lg_dist *d) {
#ifdef LG_DIST_NCCL
    if (d->nccl && d->pending) nccl_wait(d, "all-reduce of the gradients (overlapped with the backward)");
#endif
    d->pending = 0;
}

void lg_dist_allreduce_sum(lg_dist *d, float *x, int64_t n) {
    if (d->world == 1) return;
#ifdef LG_DIST_NCCL
    if (d->nccl) {
        CUDA_CHECK(cudaDeviceSynchronize());
        NCCL_CHECK(d, ncclAllReduce(x, x, (size_t)n, ncclFloat, ncclSum, (ncclComm_t)d->nccl_comm,
                                    (cudaStream_t)d->nccl_stream));
        nccl_wait(d, "all-reduce of the gradients");
        return;
    }
#endif
    // reduce-scatter + all-gather: the same sums (same bits) as ZeRO-2's reduce-scatter.
    lg_dist_reduce_scatter_sum(d, x, n);
    lg_dist_allgather(d, x, n);
}

void lg_dist_allgather_f64(lg_dist *d, double v, double *all) {
    if (d->world == 1) { all[0] = v; return; }
#ifdef LG_HAVE_MPI
    MPI_CHECK(MPI_Allgather(&v, 1, MPI_DOUBLE, all, 1, MPI_DOUBLE, MPI_COMM_WORLD));
#endif
}

double lg_dist_sum_f64(lg_dist *d, double v) {
    if (d->world == 1) return v;
    double *all = lg_malloc(sizeof(double) * (size_t)d->world);
    lg_dist_allgather_f64(d, v, all);
    double s = 0;
    for (int r = 0; r < d->world; r++) s += all[r];
    free(all);
    return s;
}

int lg_dist_any(lg_dist *d, int flag) {
    int out = flag != 0;
    if (d->world == 1) return out;
#ifdef LG_HAVE_MPI
    int in = out;
    MPI_CHECK(MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
#endif
    return out;
}

void lg_dist_bcast(lg_dist *d, void *buf, size_t bytes, int root) {
    if (d->world == 1) return;
#ifdef LG_HAVE_MPI
    for (size_t off = 0; off < bytes; off += (size_t)INT_MAX) {
        size_t k = bytes - off < (size_t)INT_MAX ? bytes - off : (size_t)INT_MAX;
        MPI_CHECK(MPI_Bcast((char *)buf + off, (int)k, MPI_BYTE, root, MPI_COMM_WORLD));
    }
#else
    (void)buf;
    (void)bytes;
    (void)root;
#endif
}

void lg_dist_barrier(lg_dist *d) {
    if (d->world == 1) return;
#ifdef LG_HAVE_MPI
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
#endif
}

void lg_dist_abort(lg_dist *d, int code) {
    fflush(stdout);
    fflush(stderr);
#ifdef LG_HAVE_MPI
    if (d->mpi) MPI_Abort(MPI_COMM_WORLD, code);
#else
    (void)d;
#endif
    exit(code);
}
