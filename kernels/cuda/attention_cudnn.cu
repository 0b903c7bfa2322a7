// attention_cudnn.cu: cuDNN fused attention through the backend graph API (see attention_cudnn.h for the
// contract). The graphs are the ordinary backend operations (MATMUL, POINTWISE, REDUCTION, RESHAPE) in the
// order that cuDNN's engine recognises as one fused flash-attention kernel (../shared/reference/cudnn-sdpa.md,
// checked on the H100):
//   forward : S = Q K^T ; S *= scale ; mask ; M = max S ; E = exp(S - M) ; L = sum E ; Stats = M + log L ;
//             P = E / L (bf16) ; O = P V
//   backward: dP = dO V^T ; S = Q K^T ; t = dO * O ; K = reshape(K^T) ; S = S * scale - Stats ; mask ;
//             P = exp S ; dV = P^T dO ; softmax_sum = rowsum(t) ; dS = (dP - softmax_sum) * P * scale ;
//             dQ_accum = dS K ; dQ = dQ_accum ; dK = dS^T Q   (GQA: dK, dV per query head, then summed)
// Masks (kept where true): causal row >= col; window col + W > row; sink call row - W >= col (INT32 shift).
// K^T and V^T are K's and V's own memory with the last two strides swapped: no transposes, no copies.
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/attention_cudnn.h"
#include "kernels/cuda/ops_cuda.h"

// ---- merge and add kernels (also built without cuDNN: they are plain CUDA) ------------------------------

// SINK_WINDOW forward merge of call 1 (out, lse) and call 2 (o2, l2) for query rows [W, S) (the only rows
// call 2 can see a key from): L = logaddexp(L1, L2), out = out * exp(L1 - L) + o2 * exp(L2 - L), lse = L.
// D/8 threads per row, 8 elements each; 32 % (D/8) == 0, so one row's threads share a warp, and the row's
// L1 is read by all of them before its leader overwrites it (__syncwarp in between).
__global__ void lg_cudnn_merge_kernel(bf16 *out, float *lse, const bf16 *o2, const float *l2, int S, int H, int D,
                                      int W, int64_t nrows, int vec) {
    const int per = D / 8;
    int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    int64_t row = t / per;
    int part = (int)(t % per);
    int valid = row < nrows;
    float L1 = 0.f, L2 = -INFINITY;
    int64_t li = 0, oi = 0;
    if (valid) {
        int h = (int)(row % H);
        int64_t r = row / H;
        int64_t s = W + r % (S - W), b = r / (S - W);
        li = (b * H + h) * S + s;
        oi = ((b * S + s) * H + h) * D + part * 8;
        L1 = lse[li];
        L2 = l2[li];
    }
    __syncwarp();
    if (!valid || L2 == -INFINITY) return;  // no sink key for this row: call 1 is the answer
    float m = fmaxf(L1, L2);
    float L = m + logf(expf(L1 - m) + expf(L2 - m));
    float w1 = expf(L1 - L), w2 = expf(L2 - L);
    float a[8], c[8];
    lg_ld8n(out + oi, 8, vec, a);
    lg_ld8n(o2 + oi, 8, vec, c);
#pragma unroll
    for (int i = 0; i < 8; i++) a[i] = (L1 == -INFINITY ? 0.f : w1 * a[i]) + w2 * c[i];
    lg_st8n(out + oi, 8, vec, a);
    if (part == 0) lse[li] = L;
}

// y[b*ys + i] += x[b*xs + i] for i < n (n % 8 == 0), b < B; bf16 in and out, fp32 sum.
__global__ void lg_cudnn_add_kernel(bf16 *y, const bf16 *x, int64_t n, int64_t ys, int64_t xs, int B, int vec) {
    int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, per = n / 8;
    if (t >= per * B) return;
    int64_t b = t / per, i = (t % per) * 8;
    float a[8], c[8];
    lg_ld8n(y + b * ys + i, 8, vec, a);
    lg_ld8n(x + b * xs + i, 8, vec, c);
#pragma unroll
    for (int j = 0; j < 8; j++) a[j] += c[j];
    lg_st8n(y + b * ys + i, 8, vec, a);
}

#ifdef LG_HAVE_CUDNN
#include <cudnn.h>

static inline void add_rows(void *y, const void *x, int64_t n, int64_t ys, int64_t xs, int B, cudaStream_t st) {
    if (n <= 0 || B <= 0) return;
    int vec = lg_cu_al16(y) && lg_cu_al16(x) && ys % 8 == 0 && xs % 8 == 0;
    lg_cudnn_add_kernel<<<lg_cu_blocks(n / 8 * B, 256), 256, 0, st>>>((bf16 *)y, (const bf16 *)x, n, ys, xs, B, vec);
    cudaCheckLaunch("lg_cudnn_add_kernel");
}

// ---- checked calls -------------------------------------------------------------------------------------
// Execution-time failures are fatal (the graph was accepted; a failure now is a fault, not a capability gap).
static void lg_cudnn_check_(cudnnStatus_t st, const char *what, const char *file, int line) {
    if (st == CUDNN_STATUS_SUCCESS) return;
    char last[512] = "";
    cudnnGetLastErrorString(last, sizeof last);
    lg_cu_die("%s:%d: %s failed: %s (%s). Set CUDNN_LOGERR_DBG=1 CUDNN_LOGDEST_DBG=stderr for cuDNN's own log, or "
              "[layout] attention_backend = native to run without cuDNN",
              file, line, what, cudnnGetErrorString(st), last[0] ? last : "no detail");
}
#define cudnnCheck(call) lg_cudnn_check_((call), #call, __FILE__, __LINE__)

// ---- graph builder: build-time failures are recorded (first one wins) and make the shape "unsupported" ----
enum { GB_MAX_DESC = 400, GB_MAX_OPS = 64, GB_MAX_CFG = 16 };
typedef struct {
    cudnnBackendDescriptor_t desc[GB_MAX_DESC];  // every descriptor made, destroyed together
    int ndesc;
    cudnnBackendDescriptor_t ops[GB_MAX_OPS];  // operations in graph order
    int nops;
    int64_t next_uid;  // virtual tensors: 100, 101, ...
    int failed;
    char why[768];
} Graph;

static void gb_fail(Graph *g, cudnnStatus_t st, const char *what, long attr, const char *file, int line) {
    if (g->failed) return;
    g->failed = 1;
    char last[384] = "";
    cudnnGetLastErrorString(last, sizeof last);
    char at[48] = "";
    if (attr >= 0) snprintf(at, sizeof at, " (attribute %ld)", attr);
    snprintf(g->why, sizeof g->why, "%s:%d: %s%s: %s%s%s", file, line, what, at, cudnnGetErrorString(st),
             last[0] ? ": " : "", last);
}

static cudnnBackendDescriptor_t gb_new_(Graph *g, cudnnBackendDescriptorType_t t, const char *file, int line) {
    if (g->failed) return NULL;
    if (g->ndesc == GB_MAX_DESC) {
        g->failed = 1;
        snprintf(g->why, sizeof g->why, "%s:%d: more than %d backend descriptors", file, line, GB_MAX_DESC);
        return NULL;
    }
    cudnnBackendDescriptor_t d = NULL;
    cudnnStatus_t st = cudnnBackendCreateDescriptor(t, &d);
    if (st != CUDNN_STATUS_SUCCESS) {
        gb_fail(g, st, "cudnnBackendCreateDescriptor", (long)t, file, line);
        return NULL;
    }
    g->desc[g->ndesc++] = d;
    return d;
}
static void gb_set_(Graph *g, cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t a, const char *aname,
                    cudnnBackendAttributeType_t t, int64_t n, const void *v, const char *file, int line) {
    if (g->failed || !d) return;
    cudnnStatus_t st = cudnnBackendSetAttribute(d, a, t, n, v);
    if (st != CUDNN_STATUS_SUCCESS) {
        char what[160];
        snprintf(what, sizeof what, "cudnnBackendSetAttribute(%s)", aname);
        gb_fail(g, st, what, -1, file, line);
    }
}
static void gb_fin_(Graph *g, cudnnBackendDescriptor_t d, const char *what, const char *file, int line) {
    if (g->failed || !d) return;
    cudnnStatus_t st = cudnnBackendFinalize(d);
    if (st != CUDNN_STATUS_SUCCESS) {
        char w[160];
        snprintf(w, sizeof w, "cudnnBackendFinalize(%s)", what);
        gb_fail(g, st, w, -1, file, line);
    }
}
#define NEW(g, t) gb_new_((g), (t), __FILE__, __LINE__)
#define SET(g, d, a, t, n, v) gb_set_((g), (d), (a), #a, (t), (n), (v), __FILE__, __LINE__)
#define FIN(g, d, what) gb_fin_((g), (d), (what), __FILE__, __LINE__)

static void gb_destroy(Graph *g) {
    for (int i = g->ndesc - 1; i >= 0; i--) cudnnBackendDestroyDescriptor(g->desc[i]);  // teardown: status unused
    g->ndesc = 0;
}

typedef cudnnBackendDescriptor_t Desc;

// Fixed unique ids of the non-virtual tensors (variant pack keys).
enum { UID_Q = 1, UID_K, UID_V, UID_O, UID_STATS, UID_SCALE, UID_NINF, UID_WIN, UID_DO, UID_DQ, UID_DK, UID_DV, UID_ONE,
       UID_SSUM, UID_DQACC, UID_SHIFT, UID_SEQQ, UID_SEQKV };

// uid 0: virtual (a fresh id). stride NULL: packed row-major.
static Desc gb_tensor(Graph *g, cudnnDataType_t dt, const int64_t dim[4], const int64_t *stride, int64_t uid,
                      int by_value) {
    int64_t st[4], align = 16;
    if (stride) {
        memcpy(st, stride, sizeof st);
    } else {
        st[3] = 1;
        for (int j = 2; j >= 0; j--) st[j] = st[j + 1] * dim[j + 1];
    }
    bool yes = true;
    int virt = uid == 0;
    if (virt) uid = g->next_uid++;
    Desc d = NEW(g, CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    SET(g, d, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt);
    SET(g, d, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dim);
    SET(g, d, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, st);
    SET(g, d, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid);
    SET(g, d, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align);
    if (virt) SET(g, d, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &yes);
    if (by_value) SET(g, d, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &yes);
    FIN(g, d, "tensor");
    return d;
}
static Desc gb_virt(Graph *g, cudnnDataType_t dt, const int64_t dim[4]) { return gb_tensor(g, dt, dim, NULL, 0, 0); }
static Desc gb_scalar(Graph *g, cudnnDataType_t dt, int64_t uid) {
    const int64_t one[4] = {1, 1, 1, 1};
    return gb_tensor(g, dt, one, NULL, uid, 1);
}
static void gb_push(Graph *g, Desc op) {
    if (g->failed) return;
    if (g->nops == GB_MAX_OPS) {
        g->failed = 1;
        snprintf(g->why, sizeof g->why, "more than %d operations", GB_MAX_OPS);
        return;
    }
    g->ops[g->nops++] = op;
}

// Pointwise y = mode(x[, b][, t]); prec the math precision; axis >= 0 for GEN_INDEX. Returns y.
static Desc gb_pw(Graph *g, cudnnPointwiseMode_t mode, cudnnDataType_t prec, int64_t axis, Desc x, Desc b, Desc t,
                  Desc y) {
    Desc pw = NEW(g, CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
    SET(g, pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode);
    SET(g, pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec);
    if (axis >= 0) SET(g, pw, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis);
    FIN(g, pw, "pointwise");
    Desc op = NEW(g, CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
    SET(g, op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &pw);
    SET(g, op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
    SET(g, op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
    if (b) SET(g, op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b);
    if (t) SET(g, op, CUDNN_ATTR_OPERATION_POINTWISE_TDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &t);
    FIN(g, op, "pointwise operation");
    gb_push(g, op);
    return y;
}
// c = a b (batched over the first two dims), fp32 accumulation; m/n/k overrides (INT32 per batch) may be NULL.
static Desc gb_mm(Graph *g, Desc a, Desc b, Desc c, Desc mo, Desc no, Desc ko) {
    cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    Desc mm = NEW(g, CUDNN_BACKEND_MATMUL_DESCRIPTOR);
    SET(g, mm, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp);
    FIN(g, mm, "matmul");
    Desc op = NEW(g, CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR);
    SET(g, op, CUDNN_ATTR_OPERATION_MATMUL_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &mm);
    SET(g, op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &a);
    SET(g, op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b);
    SET(g, op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &c);
    if (mo) SET(g, op, CUDNN_ATTR_OPERATION_MATMUL_GEMM_M_OVERRIDE_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &mo);
    if (no) SET(g, op, CUDNN_ATTR_OPERATION_MATMUL_GEMM_N_OVERRIDE_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &no);
    if (ko) SET(g, op, CUDNN_ATTR_OPERATION_MATMUL_GEMM_K_OVERRIDE_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &ko);
    FIN(g, op, "matmul operation");
    gb_push(g, op);
    return c;
}
static Desc gb_red(Graph *g, cudnnReduceTensorOp_t how, Desc x, Desc y) {
    cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    Desc r = NEW(g, CUDNN_BACKEND_REDUCTION_DESCRIPTOR);
    SET(g, r, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &how);
    SET(g, r, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp);
    FIN(g, r, "reduction");
    Desc op = NEW(g, CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR);
    SET(g, op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &r);
    SET(g, op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
    SET(g, op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
    FIN(g, op, "reduction operation");
    gb_push(g, op);
    return y;
}
static Desc gb_reshape(Graph *g, Desc x, Desc y) {
    Desc op = NEW(g, CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR);
    SET(g, op, CUDNN_ATTR_OPERATION_RESHAPE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
    SET(g, op, CUDNN_ATTR_OPERATION_RESHAPE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
    FIN(g, op, "reshape operation");
    gb_push(g, op);
    return y;
}

// ---- shapes and masks --------------------------------------------------------------------------------------
typedef struct {
    int dir;          // 0 forward, 1 backward
    int B, S, H, KVH, D;
    int skv;          // keys seen: S (call 1) or sink (call 2, K/V sliced to their first rows)
    int window;       // > 0: also keep col + window > row (call 1 of SINK_WINDOW)
    int shift;        // > 0: keep row - shift >= col instead of row >= col (call 2 of SINK_WINDOW)
    int pad;          // backward on cuDNN <= 9.15 with skv % 128 != 0: padding mask with the full lengths
} Shape;

typedef struct {
    Desc ninf, win, shift, seqq, seqkv;
} MaskIn;

// Scores x (B,H,S,skv) -> masked scores (entries not kept become -inf).
static Desc gb_mask(Graph *g, const Shape *s, Desc x, const int64_t X[4], const MaskIn *mi) {
    Desc r = gb_pw(g, CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_FLOAT, 2, x, NULL, NULL, gb_virt(g, CUDNN_DATA_INT32, X));
    Desc c = gb_pw(g, CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_FLOAT, 3, x, NULL, NULL, gb_virt(g, CUDNN_DATA_INT32, X));
    if (s->shift)  // an INT32 shift with INT32 math (a FLOAT shift masked everything, per the reference)
        r = gb_pw(g, CUDNN_POINTWISE_ADD, CUDNN_DATA_INT32, -1, r, mi->shift, NULL, gb_virt(g, CUDNN_DATA_INT32, X));
    Desc m = gb_pw(g, CUDNN_POINTWISE_CMP_GE, CUDNN_DATA_BOOLEAN, -1, r, c, NULL, gb_virt(g, CUDNN_DATA_BOOLEAN, X));
    x = gb_pw(g, CUDNN_POINTWISE_BINARY_SELECT, CUDNN_DATA_FLOAT, -1, x, mi->ninf, m, gb_virt(g, CUDNN_DATA_FLOAT, X));
    if (s->window) {
        r = gb_pw(g, CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_FLOAT, 2, x, NULL, NULL, gb_virt(g, CUDNN_DATA_INT32, X));
        c = gb_pw(g, CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_FLOAT, 3, x, NULL, NULL, gb_virt(g, CUDNN_DATA_INT32, X));
        Desc cw = gb_pw(g, CUDNN_POINTWISE_ADD, CUDNN_DATA_FLOAT, -1, c, mi->win, NULL, gb_virt(g, CUDNN_DATA_FLOAT, X));
        m = gb_pw(g, CUDNN_POINTWISE_CMP_GT, CUDNN_DATA_BOOLEAN, -1, cw, r, NULL, gb_virt(g, CUDNN_DATA_BOOLEAN, X));
        x = gb_pw(g, CUDNN_POINTWISE_BINARY_SELECT, CUDNN_DATA_FLOAT, -1, x, mi->ninf, m,
                  gb_virt(g, CUDNN_DATA_FLOAT, X));
    }
    return x;
}
// The padding mask of cuDNN's own workaround for <= 9.15 backward kernels (row < seq_q and col < seq_kv,
// with the full lengths: it keeps everything, but routes the graph to kernels that handle a partial last tile).
static Desc gb_pad(Graph *g, Desc x, const int64_t X[4], const MaskIn *mi) {
    Desc r = gb_pw(g, CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_INT32, 2, x, NULL, NULL, gb_virt(g, CUDNN_DATA_INT32, X));
    Desc c = gb_pw(g, CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_INT32, 3, x, NULL, NULL, gb_virt(g, CUDNN_DATA_INT32, X));
    Desc rm = gb_pw(g, CUDNN_POINTWISE_CMP_LT, CUDNN_DATA_BOOLEAN, -1, r, mi->seqq, NULL, gb_virt(g, CUDNN_DATA_BOOLEAN, X));
    Desc cm = gb_pw(g, CUDNN_POINTWISE_CMP_LT, CUDNN_DATA_BOOLEAN, -1, c, mi->seqkv, NULL, gb_virt(g, CUDNN_DATA_BOOLEAN, X));
    Desc m = gb_pw(g, CUDNN_POINTWISE_LOGICAL_AND, CUDNN_DATA_BOOLEAN, -1, rm, cm, NULL, gb_virt(g, CUDNN_DATA_BOOLEAN, X));
    return gb_pw(g, CUDNN_POINTWISE_BINARY_SELECT, CUDNN_DATA_FLOAT, -1, x, mi->ninf, m, gb_virt(g, CUDNN_DATA_FLOAT, X));
}

static MaskIn mask_inputs(Graph *g, const Shape *s) {
    MaskIn mi = {0, 0, 0, 0, 0};
    mi.ninf = gb_scalar(g, CUDNN_DATA_FLOAT, UID_NINF);
    if (s->window) mi.win = gb_scalar(g, CUDNN_DATA_FLOAT, UID_WIN);
    if (s->shift) mi.shift = gb_scalar(g, CUDNN_DATA_INT32, UID_SHIFT);
    if (s->pad) {
        const int64_t d[4] = {s->B, 1, 1, 1}, st[4] = {1, 1, 1, 1};
        mi.seqq = gb_tensor(g, CUDNN_DATA_INT32, d, st, UID_SEQQ, 0);
        mi.seqkv = gb_tensor(g, CUDNN_DATA_INT32, d, st, UID_SEQKV, 0);
    }
    return mi;
}

// Forward graph. Q, O (B,S,H,D) memory as [B,H,S,D]; K^T [B,KVH,D,skv] and V [B,KVH,skv,D] on K's and V's
// memory (batch stride S*KVH*D even when skv < S); Stats [B,H,S,1] on lse (B,H,S).
static void build_fwd(Graph *g, const Shape *s) {
    const int64_t B = s->B, H = s->H, K = s->KVH, S = s->S, N = s->skv, D = s->D;
    const int64_t dq[4] = {B, H, S, D}, sq[4] = {S * H * D, D, H * D, 1};
    const int64_t dkt[4] = {B, K, D, N}, skt[4] = {S * K * D, D, 1, K * D};
    const int64_t dv[4] = {B, K, N, D}, sv[4] = {S * K * D, D, K * D, 1};
    const int64_t X[4] = {B, H, S, N}, Y[4] = {B, H, S, 1};
    Desc Q = gb_tensor(g, CUDNN_DATA_BFLOAT16, dq, sq, UID_Q, 0);
    Desc Kt = gb_tensor(g, CUDNN_DATA_BFLOAT16, dkt, skt, UID_K, 0);
    Desc V = gb_tensor(g, CUDNN_DATA_BFLOAT16, dv, sv, UID_V, 0);
    Desc O = gb_tensor(g, CUDNN_DATA_BFLOAT16, dq, sq, UID_O, 0);
    Desc St = gb_tensor(g, CUDNN_DATA_FLOAT, Y, NULL, UID_STATS, 0);
    Desc scale = gb_scalar(g, CUDNN_DATA_FLOAT, UID_SCALE);
    MaskIn mi = mask_inputs(g, s);

    Desc x = gb_mm(g, Q, Kt, gb_virt(g, CUDNN_DATA_FLOAT, X), NULL, NULL, NULL);
    x = gb_pw(g, CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, -1, x, scale, NULL, gb_virt(g, CUDNN_DATA_FLOAT, X));
    x = gb_mask(g, s, x, X, &mi);
    Desc mx = gb_red(g, CUDNN_REDUCE_TENSOR_MAX, x, gb_virt(g, CUDNN_DATA_FLOAT, Y));
    Desc e = gb_pw(g, CUDNN_POINTWISE_SUB, CUDNN_DATA_FLOAT, -1, x, mx, NULL, gb_virt(g, CUDNN_DATA_FLOAT, X));
    e = gb_pw(g, CUDNN_POINTWISE_EXP, CUDNN_DATA_FLOAT, -1, e, NULL, NULL, gb_virt(g, CUDNN_DATA_FLOAT, X));
    Desc sm = gb_red(g, CUDNN_REDUCE_TENSOR_ADD, e, gb_virt(g, CUDNN_DATA_FLOAT, Y));
    Desc lg = gb_pw(g, CUDNN_POINTWISE_LOG, CUDNN_DATA_FLOAT, -1, sm, NULL, NULL, gb_virt(g, CUDNN_DATA_FLOAT, Y));
    gb_pw(g, CUDNN_POINTWISE_ADD, CUDNN_DATA_FLOAT, -1, mx, lg, NULL, St);
    Desc p = gb_pw(g, CUDNN_POINTWISE_DIV, CUDNN_DATA_FLOAT, -1, e, sm, NULL, gb_virt(g, CUDNN_DATA_BFLOAT16, X));
    gb_mm(g, p, V, O, NULL, NULL, NULL);
}

// Backward graph; dK, dV [B,KVH,skv,D] with batch stride dkv_bstride (S*KVH*D into the caller's dk/dv, or
// skv*KVH*D into call 2's scratch). softmax_sum [B,H,S,1] and dQ_accum [B,H,S,D] fp32 are packed scratch.
static void build_bwd(Graph *g, const Shape *s, int64_t dkv_bstride) {
    const int64_t B = s->B, H = s->H, K = s->KVH, S = s->S, N = s->skv, D = s->D;
    const int64_t dq[4] = {B, H, S, D}, sq[4] = {S * H * D, D, H * D, 1};
    const int64_t dkt[4] = {B, K, D, N}, skt[4] = {S * K * D, D, 1, K * D};
    const int64_t dkv[4] = {B, K, N, D}, skv[4] = {dkv_bstride, D, K * D, 1};
    const int64_t X[4] = {B, H, S, N}, Y[4] = {B, H, S, 1};
    const int64_t XT[4] = {B, H, N, S}, sXT[4] = {H * S * N, S * N, 1, N};  // P^T, dS^T: same memory, transposed
    const int64_t Kd[4] = {B, K, N, D}, Hd[4] = {B, H, N, D};
    Desc Q = gb_tensor(g, CUDNN_DATA_BFLOAT16, dq, sq, UID_Q, 0);
    Desc Kt = gb_tensor(g, CUDNN_DATA_BFLOAT16, dkt, skt, UID_K, 0);
    Desc Vt = gb_tensor(g, CUDNN_DATA_BFLOAT16, dkt, skt, UID_V, 0);
    Desc O = gb_tensor(g, CUDNN_DATA_BFLOAT16, dq, sq, UID_O, 0);
    Desc dO = gb_tensor(g, CUDNN_DATA_BFLOAT16, dq, sq, UID_DO, 0);
    Desc St = gb_tensor(g, CUDNN_DATA_FLOAT, Y, NULL, UID_STATS, 0);
    Desc dQ = gb_tensor(g, CUDNN_DATA_BFLOAT16, dq, sq, UID_DQ, 0);
    Desc dK = gb_tensor(g, CUDNN_DATA_BFLOAT16, dkv, skv, UID_DK, 0);
    Desc dV = gb_tensor(g, CUDNN_DATA_BFLOAT16, dkv, skv, UID_DV, 0);
    Desc ssum = gb_tensor(g, CUDNN_DATA_FLOAT, Y, NULL, UID_SSUM, 0);
    Desc dqacc = gb_tensor(g, CUDNN_DATA_FLOAT, dq, NULL, UID_DQACC, 0);
    Desc scale = gb_scalar(g, CUDNN_DATA_FLOAT, UID_SCALE);
    Desc one = gb_scalar(g, CUDNN_DATA_FLOAT, UID_ONE);
    MaskIn mi = mask_inputs(g, s);
    Desc sq_ = mi.seqq, skv_ = mi.seqkv;  // matmul size overrides (NULL unless pad)

    Desc dP = gb_mm(g, dO, Vt, gb_virt(g, CUDNN_DATA_FLOAT, X), sq_, skv_, NULL);
    Desc x = gb_mm(g, Q, Kt, gb_virt(g, CUDNN_DATA_FLOAT, X), sq_, skv_, NULL);
    Desc t = gb_pw(g, CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, -1, dO, O, NULL, gb_virt(g, CUDNN_DATA_FLOAT, dq));
    Desc Kr = gb_reshape(g, Kt, gb_virt(g, CUDNN_DATA_FLOAT, Kd));
    x = gb_pw(g, CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, -1, x, scale, NULL, gb_virt(g, CUDNN_DATA_FLOAT, X));
    if (s->pad) x = gb_pad(g, x, X, &mi);
    x = gb_pw(g, CUDNN_POINTWISE_SUB, CUDNN_DATA_FLOAT, -1, x, St, NULL, gb_virt(g, CUDNN_DATA_FLOAT, X));
    x = gb_mask(g, s, x, X, &mi);
    Desc p = gb_pw(g, CUDNN_POINTWISE_EXP, CUDNN_DATA_FLOAT, -1, x, NULL, NULL, gb_virt(g, CUDNN_DATA_FLOAT, X));
    Desc pT = gb_reshape(g, p, gb_tensor(g, CUDNN_DATA_BFLOAT16, XT, sXT, 0, 0));
    Desc dvh = H == K ? dV : gb_virt(g, CUDNN_DATA_BFLOAT16, Hd);
    gb_mm(g, pT, dO, dvh, skv_, NULL, sq_);
    Desc rs = gb_red(g, CUDNN_REDUCE_TENSOR_ADD, t, gb_virt(g, CUDNN_DATA_FLOAT, Y));
    gb_pw(g, CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, -1, rs, one, NULL, ssum);
    Desc ds = gb_pw(g, CUDNN_POINTWISE_SUB, CUDNN_DATA_FLOAT, -1, dP, ssum, NULL, gb_virt(g, CUDNN_DATA_FLOAT, X));
    ds = gb_pw(g, CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, -1, ds, p, NULL, gb_virt(g, CUDNN_DATA_FLOAT, X));
    ds = gb_pw(g, CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, -1, ds, scale, NULL, gb_virt(g, CUDNN_DATA_FLOAT, X));
    gb_mm(g, ds, Kr, dqacc, sq_, NULL, skv_);
    gb_pw(g, CUDNN_POINTWISE_IDENTITY, CUDNN_DATA_FLOAT, -1, dqacc, NULL, NULL, dQ);
    Desc dsT = gb_reshape(g, ds, gb_tensor(g, CUDNN_DATA_BFLOAT16, XT, sXT, 0, 0));
    Desc dkh = H == K ? dK : gb_virt(g, CUDNN_DATA_BFLOAT16, Hd);
    gb_mm(g, dsT, Q, dkh, skv_, NULL, sq_);
    if (H != K) {  // GQA: sum the query heads of each group
        gb_red(g, CUDNN_REDUCE_TENSOR_ADD, dkh, dK);
        gb_red(g, CUDNN_REDUCE_TENSOR_ADD, dvh, dV);
    }
}

// The engine's global index (-1 if cuDNN does not say) and up to max knob choices (type, value) of an engine config.
static int64_t read_cfg(cudnnBackendDescriptor_t cfg, int max, int *types, int64_t *vals, int *nk) {
    cudnnBackendDescriptor_t eng = NULL, kc[16] = {0};
    int64_t cnt = 0, idx = -1, n = 0;
    *nk = 0;
    if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINE_DESCRIPTOR, &eng) == CUDNN_STATUS_SUCCESS) {
        if (cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cnt, &eng) !=
                CUDNN_STATUS_SUCCESS ||
            cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &cnt, &idx) !=
                CUDNN_STATUS_SUCCESS)
            idx = -1;
        cudnnBackendDestroyDescriptor(eng);
    }
    int made = 0;
    while (made < max && made < 16 &&
           cudnnBackendCreateDescriptor(CUDNN_BACKEND_KNOB_CHOICE_DESCRIPTOR, &kc[made]) == CUDNN_STATUS_SUCCESS)
        made++;
    if (cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_KNOB_CHOICES, CUDNN_TYPE_BACKEND_DESCRIPTOR, made, &n, kc) ==
        CUDNN_STATUS_SUCCESS)
        for (int64_t i = 0; i < n && i < made; i++) {
            cudnnBackendKnobType_t t;
            if (cudnnBackendGetAttribute(kc[i], CUDNN_ATTR_KNOB_CHOICE_KNOB_TYPE, CUDNN_TYPE_KNOB_TYPE, 1, &cnt, &t) ==
                    CUDNN_STATUS_SUCCESS &&
                cudnnBackendGetAttribute(kc[i], CUDNN_ATTR_KNOB_CHOICE_KNOB_VALUE, CUDNN_TYPE_INT64, 1, &cnt,
                                         &vals[*nk]) == CUDNN_STATUS_SUCCESS)
                types[(*nk)++] = (int)t;
        }
    for (int i = 0; i < made; i++) cudnnBackendDestroyDescriptor(kc[i]);
    return idx;
}

// Engine config -> "engine E knobs (knob T: lo..hi step s)... T=V ..." for LG_CUDNN_LIST: the ranges the engine
// offers, then the heuristics' choices.
static void describe_cfg(cudnnBackendDescriptor_t cfg, char *b, int n) {
    int types[16], nk = 0;
    int64_t vals[16], cnt = 0;
    const int64_t idx = read_cfg(cfg, 16, types, vals, &nk);
    int o = snprintf(b, n, "engine %lld knobs", (long long)idx);
    cudnnBackendDescriptor_t eng = NULL, ki[16] = {0};
    int mk = 0;
    if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINE_DESCRIPTOR, &eng) == CUDNN_STATUS_SUCCESS) {
        while (mk < 16 &&
               cudnnBackendCreateDescriptor(CUDNN_BACKEND_KNOB_INFO_DESCRIPTOR, &ki[mk]) == CUDNN_STATUS_SUCCESS)
            mk++;
        int64_t nki = 0;
        if (cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cnt, &eng) ==
                CUDNN_STATUS_SUCCESS &&
            cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_KNOB_INFO, CUDNN_TYPE_BACKEND_DESCRIPTOR, mk, &nki, ki) ==
                CUDNN_STATUS_SUCCESS)
            for (int64_t i = 0; i < nki && i < mk && o < n; i++) {
                cudnnBackendKnobType_t t;
                int64_t lo = 0, hi = 0, st = 0;
                if (cudnnBackendGetAttribute(ki[i], CUDNN_ATTR_KNOB_INFO_TYPE, CUDNN_TYPE_KNOB_TYPE, 1, &cnt, &t) ==
                        CUDNN_STATUS_SUCCESS &&
                    cudnnBackendGetAttribute(ki[i], CUDNN_ATTR_KNOB_INFO_MINIMUM_VALUE, CUDNN_TYPE_INT64, 1, &cnt,
                                             &lo) == CUDNN_STATUS_SUCCESS &&
                    cudnnBackendGetAttribute(ki[i], CUDNN_ATTR_KNOB_INFO_MAXIMUM_VALUE, CUDNN_TYPE_INT64, 1, &cnt,
                                             &hi) == CUDNN_STATUS_SUCCESS &&
                    cudnnBackendGetAttribute(ki[i], CUDNN_ATTR_KNOB_INFO_STRIDE, CUDNN_TYPE_INT64, 1, &cnt, &st) ==
                        CUDNN_STATUS_SUCCESS)
                    o += snprintf(b + o, n - o, " (knob %d: %lld..%lld step %lld)", (int)t, (long long)lo,
                                  (long long)hi, (long long)st);
            }
        for (int i = 0; i < mk; i++) cudnnBackendDestroyDescriptor(ki[i]);
        cudnnBackendDestroyDescriptor(eng);
    }
    for (int i = 0; i < nk && o < n; i++) o += snprintf(b + o, n - o, " %d=%lld", types[i], (long long)vals[i]);
}

// LG_CUDNN_KNOB=E:T=V[,T=V...]: when cfg's engine has global index E, a new config of that engine with the
// heuristics' knob choices and knob type T (cudnnBackendKnobType_t) set to V (added when absent); cfg otherwise.
// Benchmarks only: cuDNN's variants of one engine.
static cudnnBackendDescriptor_t knob_override(Graph *g, cudnnBackendDescriptor_t cfg) {
    const char *e = getenv("LG_CUDNN_KNOB");
    long long want_eng = -1;
    int off = 0;
    if (!e || sscanf(e, "%lld:%n", &want_eng, &off) != 1 || !off) return cfg;
    int nt = 0, tt[16];
    int64_t tv[16];
    if (read_cfg(cfg, 8, tt, tv, &nt) != want_eng) return cfg;
    for (const char *q = e + off; *q;) {  // ours over the heuristics' choices
        long long t, v;
        int m = 0, k = 0;
        if (sscanf(q, "%lld=%lld%n", &t, &v, &m) != 2) break;
        while (k < nt && tt[k] != (int)t) k++;
        if (k == nt && nt == 16) break;
        if (k == nt) nt++;
        tt[k] = (int)t, tv[k] = v;
        q += m;
        if (*q == ',') q++;
    }
    Desc eng = NEW(g, CUDNN_BACKEND_ENGINE_DESCRIPTOR), nkc[16];
    int64_t cnt = 0;
    if (g->failed ||
        cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cnt, &eng) !=
            CUDNN_STATUS_SUCCESS)
        return cfg;
    for (int i = 0; i < nt; i++) {
        cudnnBackendKnobType_t t = (cudnnBackendKnobType_t)tt[i];
        nkc[i] = NEW(g, CUDNN_BACKEND_KNOB_CHOICE_DESCRIPTOR);
        SET(g, nkc[i], CUDNN_ATTR_KNOB_CHOICE_KNOB_TYPE, CUDNN_TYPE_KNOB_TYPE, 1, &t);
        SET(g, nkc[i], CUDNN_ATTR_KNOB_CHOICE_KNOB_VALUE, CUDNN_TYPE_INT64, 1, &tv[i]);
        FIN(g, nkc[i], "knob choice (LG_CUDNN_KNOB)");
    }
    Desc c = NEW(g, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
    SET(g, c, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &eng);
    if (nt > 0) SET(g, c, CUDNN_ATTR_ENGINECFG_KNOB_CHOICES, CUDNN_TYPE_BACKEND_DESCRIPTOR, nt, nkc);
    FIN(g, c, "engine config (LG_CUDNN_KNOB)");
    return g->failed ? cfg : c;
}

// Operation graph -> heuristics (mode A) -> the first engine config whose execution plan finalizes.
// Benchmarks only: LG_CUDNN_HEUR=b asks heuristics mode B; LG_CUDNN_ENGINE=k takes the k-th config that
// finalizes (0 = the default); LG_CUDNN_LIST=1 prints every config offered, its knobs' ranges and whether it
// finalized; LG_CUDNN_KNOB=E:T=V,... sets knobs of engine E (knob_override).
static void gb_plan(Graph *g, cudnnHandle_t h, Desc *plan, int64_t *ws) {
    *plan = NULL;
    *ws = 0;
    Desc og = NEW(g, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
    SET(g, og, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &h);
    SET(g, og, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, g->nops, g->ops);
    FIN(g, og, "operation graph");
    const char *hm = getenv("LG_CUDNN_HEUR"), *ek = getenv("LG_CUDNN_ENGINE");
    const int list = getenv("LG_CUDNN_LIST") != NULL, want = ek ? atoi(ek) : 0;
    cudnnBackendHeurMode_t mode = hm && (hm[0] == 'b' || hm[0] == 'B') ? CUDNN_HEUR_MODE_B : CUDNN_HEUR_MODE_A;
    Desc heur = NEW(g, CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    SET(g, heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &og);
    SET(g, heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
    FIN(g, heur, "engine heuristics");
    if (g->failed) return;
    int64_t n = 0;
    cudnnStatus_t st = cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0,
                                                &n, NULL);
    if (st != CUDNN_STATUS_SUCCESS) {
        gb_fail(g, st, "cudnnBackendGetAttribute(CUDNN_ATTR_ENGINEHEUR_RESULTS)", -1, __FILE__, __LINE__);
        return;
    }
    if (n <= 0) {
        g->failed = 1;
        snprintf(g->why, sizeof g->why, "the heuristics offer no engine for this graph");
        return;
    }
    if (n > GB_MAX_CFG) n = GB_MAX_CFG;
    Desc cfg[GB_MAX_CFG];
    for (int64_t i = 0; i < n; i++) cfg[i] = NEW(g, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
    if (g->failed) return;
    int64_t got = 0;
    st = cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, n, &got, cfg);
    if (st != CUDNN_STATUS_SUCCESS) {
        gb_fail(g, st, "cudnnBackendGetAttribute(CUDNN_ATTR_ENGINEHEUR_RESULTS)", -1, __FILE__, __LINE__);
        return;
    }
    char first_why[384] = "";
    int finalized = 0;
    if (list)
        fprintf(stderr, "[cudnn] heuristics mode %c offer %lld engine configs\n", mode == CUDNN_HEUR_MODE_B ? 'B' : 'A',
                (long long)got);
    for (int64_t i = 0; i < got && i < n; i++) {
        Desc p = NEW(g, CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
        SET(g, p, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &h);
        cfg[i] = knob_override(g, cfg[i]);
        SET(g, p, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfg[i]);
        if (g->failed) return;
        st = cudnnBackendFinalize(p);  // a rejected engine config is normal: try the next
        if (list) {
            char d[256];
            describe_cfg(cfg[i], d, sizeof d);
            fprintf(stderr, "[cudnn]   config %lld: %s: %s\n", (long long)i, d,
                    st == CUDNN_STATUS_SUCCESS ? "finalizes" : cudnnGetErrorString(st));
        }
        if (st == CUDNN_STATUS_SUCCESS && finalized++ < want) continue;  // LG_CUDNN_ENGINE: a later one
        if (st == CUDNN_STATUS_SUCCESS) {
            int64_t w = 0, cnt = 0;
            st = cudnnBackendGetAttribute(p, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &cnt, &w);
            if (st != CUDNN_STATUS_SUCCESS) {
                gb_fail(g, st, "cudnnBackendGetAttribute(CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE)", -1, __FILE__,
                        __LINE__);
                return;
            }
            *plan = p;
            *ws = w;
            return;
        }
        if (!first_why[0]) {
            char last[320] = "";
            cudnnGetLastErrorString(last, sizeof last);
            snprintf(first_why, sizeof first_why, "%s%s%s", cudnnGetErrorString(st), last[0] ? ": " : "", last);
        }
    }
    g->failed = 1;
    if (finalized)  // only LG_CUDNN_ENGINE gets here with configs that finalized
        snprintf(g->why, sizeof g->why, "LG_CUDNN_ENGINE=%d, but only %d engine configs finalize", want, finalized);
    else
        snprintf(g->why, sizeof g->why, "no engine config of %lld finalized an execution plan (first: %s)",
                 (long long)got, first_why);
}

// ---- state: handle, plans, scratch ---------------------------------------------------------------------------
typedef struct {
    Shape key;
    int state;  // 1 planned, -1 rejected
    Graph *g;   // owns every descriptor, the plan included
    Desc plan;
    int64_t ws;
    int32_t *seqlens;  // pad: device [seq_q x B, seq_kv x B]
} Plan;

enum { MAX_PLANS = 64 };
static Plan g_plans[MAX_PLANS];
static int g_nplans;
static cudnnHandle_t g_handle;
static int g_usable = -1;  // -1 unknown, 0 no, 1 yes
static char g_unusable_why[512];

typedef struct {
    void *p;
    size_t n;
} Buf;
enum { BUF_WS = 0, BUF_DQACC, BUF_SSUM, BUF_O2, BUF_L2, BUF_DK2, BUF_DV2, BUF_N };
static Buf g_buf[BUF_N];
static const char *const buf_name[BUF_N] = {"workspace", "dQ_accum", "softmax_sum", "sink-call output", "sink-call lse",
                                             "sink-call dK", "sink-call dV"};

static void *buf(int i, size_t n) {
    if (n < 256) n = 256;
    if (n > g_buf[i].n) {
        if (g_buf[i].p) cudaCheck(cudaFree(g_buf[i].p));
        g_buf[i].p = NULL;
        g_buf[i].n = 0;
        cudaError_t e = cudaMalloc(&g_buf[i].p, n);
        if (e != cudaSuccess)
            lg_cu_die("cuDNN attention: cudaMalloc of %zu bytes for its %s failed: %s. The GPU is out of memory: lower "
                      "seq_len or micro_batch, or set [layout] attention_backend = native (needs less scratch)",
                      n, buf_name[i], cudaGetErrorString(e));
        g_buf[i].n = n;
    }
    return g_buf[i].p;
}

static void warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void warn(const char *fmt, ...) {
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "lgtrain: warning: cuDNN attention: %s\n", msg);
    fflush(stderr);
}

static int usable(void) {
    if (g_usable >= 0) return g_usable;
    g_usable = 0;
    size_t v = cudnnGetVersion();
    int maj = (int)(v / 10000), min = (int)(v / 100 % 100), pat = (int)(v % 100);
    int cc = 0, dev = 0;
    if (cudaGetDevice(&dev) == cudaSuccess) cudaDeviceGetAttribute(&cc, cudaDevAttrComputeCapabilityMajor, dev);
    (void)cudaGetLastError();
    if (maj != CUDNN_MAJOR)
        snprintf(g_unusable_why, sizeof g_unusable_why,
                 "the program was built against cuDNN %d but loaded cuDNN %d.%d.%d: put the matching libcudnn.so.%d "
                 "first on LD_LIBRARY_PATH",
                 CUDNN_MAJOR, maj, min, pat, CUDNN_MAJOR);
    else if (v < 90600)
        snprintf(g_unusable_why, sizeof g_unusable_why,
                 "cuDNN %d.%d.%d is older than 9.6 (needed for this fused-attention graph): install cuDNN >= 9.15.1, "
                 "e.g. PyTorch's bundled one (LD_LIBRARY_PATH=<site-packages>/nvidia/cudnn/lib)",
                 maj, min, pat);
    else if (maj == 9 && min == 10)
        snprintf(g_unusable_why, sizeof g_unusable_why,
                 "cuDNN %d.%d.%d: the 9.10 releases have broken fused attention; use another version (>= 9.15.1)", maj,
                 min, pat);
    else if (cc < 8)
        snprintf(g_unusable_why, sizeof g_unusable_why,
                 "the GPU (compute capability %d.x) is older than Ampere, which cuDNN's fused attention needs", cc);
    else {
        cudnnStatus_t st = cudnnCreate(&g_handle);
        if (st != CUDNN_STATUS_SUCCESS)
            snprintf(g_unusable_why, sizeof g_unusable_why, "cudnnCreate failed: %s", cudnnGetErrorString(st));
        else
            g_usable = 1;
    }
    if (!g_usable) warn("%s; using the native attention kernels", g_unusable_why);
    return g_usable;
}

static int same_shape(const Shape *a, const Shape *b) {
    return a->dir == b->dir && a->B == b->B && a->S == b->S && a->H == b->H && a->KVH == b->KVH && a->D == b->D &&
           a->skv == b->skv && a->window == b->window && a->shift == b->shift && a->pad == b->pad;
}

static void describe(const Shape *s, char *b, int n) {
    snprintf(b, n, "%s B=%d S=%d H=%d KVH=%d D=%d keys=%d%s%s", s->dir ? "backward" : "forward", s->B, s->S, s->H,
             s->KVH, s->D, s->skv, s->shift ? " (sink call)" : s->window ? " causal+window" : " causal",
             s->pad ? " +padding workaround" : "");
}

// The plan for s (built and cached on first use); NULL when cuDNN rejects it (warned once per shape).
static Plan *get_plan(const Shape *s) {
    for (int i = 0; i < g_nplans; i++)
        if (same_shape(&g_plans[i].key, s)) return g_plans[i].state == 1 ? &g_plans[i] : NULL;
    if (g_nplans == MAX_PLANS) {
        warn("more than %d attention shapes in one process; the rest use the native kernels", MAX_PLANS);
        return NULL;
    }
    Plan *p = &g_plans[g_nplans++];
    memset(p, 0, sizeof *p);
    p->key = *s;
    Graph *g = (Graph *)calloc(1, sizeof(Graph));
    if (!g) lg_cu_die("cuDNN attention: out of host memory (%zu bytes)", sizeof(Graph));
    g->next_uid = 100;
    if (s->dir == 0)
        build_fwd(g, s);
    else
        build_bwd(g, s, s->shift ? (int64_t)s->skv * s->KVH * s->D : (int64_t)s->S * s->KVH * s->D);
    gb_plan(g, g_handle, &p->plan, &p->ws);
    if (g->failed) {
        char d[160];
        describe(s, d, sizeof d);
        warn("%s: graph rejected: %s. Using the native kernel for this shape. CUDNN_LOGERR_DBG=1 "
             "CUDNN_LOGDEST_DBG=stderr shows cuDNN's reason%s",
             d, g->why,
             cudnnGetVersion() < 91501 ? "; cuDNN >= 9.15.1 (e.g. PyTorch's bundled "
                                         "<site-packages>/nvidia/cudnn/lib on LD_LIBRARY_PATH) accepts more shapes"
                                       : "");
        gb_destroy(g);
        free(g);
        p->state = -1;
        return NULL;
    }
    p->g = g;
    p->state = 1;
    if (s->pad) {  // cuDNN's workaround lengths: the full sizes, one per sequence
        int32_t *h = (int32_t *)malloc(sizeof(int32_t) * 2 * s->B);
        if (!h) lg_cu_die("cuDNN attention: out of host memory");
        for (int b = 0; b < s->B; b++) h[b] = s->S, h[s->B + b] = s->skv;
        cudaCheck(cudaMalloc((void **)&p->seqlens, sizeof(int32_t) * 2 * s->B));
        cudaCheck(cudaMemcpy(p->seqlens, h, sizeof(int32_t) * 2 * s->B, cudaMemcpyHostToDevice));
        free(h);
    }
    return p;
}

// Scalars passed by value (host pointers in the variant pack, read at execute time).
typedef struct {
    float scale, ninf, win, one;
    int32_t shift;
} Scalars;

static void execute(Plan *p, int n, int64_t *uids, void **ptrs, cudaStream_t stream) {
    void *ws = buf(BUF_WS, (size_t)p->ws);
    cudnnBackendDescriptor_t vp;
    cudnnCheck(cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &vp));
    cudnnCheck(cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids));
    cudnnCheck(cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs));
    cudnnCheck(cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws));
    cudnnCheck(cudnnBackendFinalize(vp));
    cudnnCheck(cudnnSetStream(g_handle, stream));
    cudnnCheck(cudnnBackendExecute(g_handle, p->plan, vp));
    cudnnCheck(cudnnBackendDestroyDescriptor(vp));
}

// Appends the mask scalars / lengths of shape s to the variant pack.
static int mask_pack(const Plan *p, Scalars *sc, int n, int64_t *uids, void **ptrs) {
    uids[n] = UID_NINF, ptrs[n++] = &sc->ninf;
    if (p->key.window) uids[n] = UID_WIN, ptrs[n++] = &sc->win;
    if (p->key.shift) uids[n] = UID_SHIFT, ptrs[n++] = &sc->shift;
    if (p->key.pad) {
        uids[n] = UID_SEQQ, ptrs[n++] = p->seqlens;
        uids[n] = UID_SEQKV, ptrs[n++] = p->seqlens + p->key.B;
    }
    return n;
}

// The calls a mask needs: call 1 (always) and call 2 (SINK_WINDOW when some query sees a sink key that its
// window misses). Returns 0 when cuDNN cannot express the mask at all.
typedef struct {
    int window;  // call 1's window (0: plain causal)
    int sink;    // call 2's keys (0: no call 2)
} Calls;
static int split_mask(const lg_attn *m, int S, Calls *c) {
    c->window = c->sink = 0;
    if (m->kind == LG_ATTN_FULL) return 1;
    if (m->kind != LG_ATTN_SINK_WINDOW || m->window < 1 || m->sink < 0) return 0;
    if (m->window >= S) return 1;  // the window holds every earlier key: plain causal
    c->window = m->window;
    c->sink = m->sink < S ? m->sink : S;
    if (c->sink > S - c->window) c->sink = S - c->window;  // keys k <= S-1-window are the only ones call 2 can see
    return 1;
}

static int check_args(const lg_attn *mask, int B, int S, int H, int KVH, int D, const void *const *ptrs, int np) {
    if (mask->kind == LG_ATTN_BLOCK_SPARSE) return 0;  // not expressible on Hopper; no warning (expected)
    if (!usable()) return 0;
    static int warned;
    const char *why = NULL;
    if (B < 1 || S < 1 || H < 1 || KVH < 1 || H % KVH) why = "H must be a multiple of KVH";
    else if (D % 8 || D > 256 || 32 % (D / 8)) why = "head_dim must be 8, 16, 32, 64, 128 or 256";
    else if (mask->kind == LG_ATTN_SINK_WINDOW && mask->window < 1) why = "sink_window needs window >= 1";
    for (int i = 0; i < np && !why; i++)
        if (!lg_cu_al16(ptrs[i])) why = "a tensor is not 16-byte aligned";
    if (why) {
        if (!warned) warn("%s (B=%d S=%d H=%d KVH=%d D=%d); using the native kernel", why, B, S, H, KVH, D);
        warned = 1;
        return 0;
    }
    return 1;
}

// The sink call through the native kernels (attention_sink.cuh) where they take the shape: cuDNN's graph for 64
// keys parallelises its backward over key tiles (one CTA per head) and its merge needs a full-size output.
// LG_ATTN_SINK_CUDNN=1 keeps cuDNN's sink graph (for comparison).
static int native_sink(const Calls *c, int S, int H, int KVH, int D) {
    static int env = -1;
    if (env < 0) {
        const char *e = getenv("LG_ATTN_SINK_CUDNN");
        env = e && *e == '1';
    }
    return c->sink && !env && lg_cuda_attention_sink_supported(S, H, KVH, D, c->sink, c->window);
}

static int fwd_impl(void *out, float *lse, const void *q, const void *k, const void *v, int B, int S, int H, int KVH,
                    int D, const lg_attn *mask, cudaStream_t stream) {
    Calls c;
    split_mask(mask, S, &c);
    const int nat = native_sink(&c, S, H, KVH, D);
    Shape s1 = {0, B, S, H, KVH, D, S, c.window, 0, 0}, s2 = {0, B, S, H, KVH, D, c.sink, 0, c.window, 0};
    Plan *p1 = get_plan(&s1), *p2 = c.sink && !nat ? get_plan(&s2) : NULL;  // planned before any output is touched
    if (!p1 || (c.sink && !nat && !p2)) return LG_CUDNN_UNSUPPORTED;
    Scalars sc = {1.0f / sqrtf((float)D), -INFINITY, (float)c.window, 1.0f, (int32_t)-c.window};
    int64_t uids[16];
    void *pp[16];
    int n = 0;
    uids[n] = UID_Q, pp[n++] = (void *)q;
    uids[n] = UID_K, pp[n++] = (void *)k;
    uids[n] = UID_V, pp[n++] = (void *)v;
    uids[n] = UID_O, pp[n++] = out;
    uids[n] = UID_STATS, pp[n++] = lse;
    uids[n] = UID_SCALE, pp[n++] = &sc.scale;
    execute(p1, mask_pack(p1, &sc, n, uids, pp), uids, pp, stream);
    if (nat) {
        lg_cuda_attention_sink_fwd(out, lse, q, k, v, B, S, H, KVH, D, c.sink, c.window, stream);
    } else if (c.sink) {
        void *o2 = buf(BUF_O2, (size_t)B * S * H * D * 2);
        float *l2 = (float *)buf(BUF_L2, (size_t)B * H * S * 4);
        pp[3] = o2;
        pp[4] = l2;
        execute(p2, mask_pack(p2, &sc, n, uids, pp), uids, pp, stream);
        int64_t nrows = (int64_t)B * (S - c.window) * H;
        lg_cudnn_merge_kernel<<<lg_cu_blocks(nrows * (D / 8), 256), 256, 0, stream>>>(
            (bf16 *)out, lse, (const bf16 *)o2, l2, S, H, D, c.window, nrows, lg_cu_al16(out) && lg_cu_al16(o2));
        cudaCheckLaunch("lg_cudnn_merge_kernel");
    }
    return LG_CUDNN_OK;
}

static int bwd_impl(void *dq, void *dk, void *dv, const void *dout, const void *q, const void *k, const void *v,
                    const void *out, const float *lse, int B, int S, int H, int KVH, int D, const lg_attn *mask,
                    cudaStream_t stream) {
    Calls c;
    split_mask(mask, S, &c);
    const int old = cudnnGetVersion() <= 91500;  // cuDNN's own backward workaround for a partial last key tile
    Shape s1 = {1, B, S, H, KVH, D, S, c.window, 0, old && S % 128 != 0};
    Shape s2 = {1, B, S, H, KVH, D, c.sink, 0, c.window, old && c.sink % 128 != 0};
    const int nat = native_sink(&c, S, H, KVH, D);
    Plan *p1 = get_plan(&s1), *p2 = c.sink && !nat ? get_plan(&s2) : NULL;
    if (!p1 || (c.sink && !nat && !p2)) return LG_CUDNN_UNSUPPORTED;
    Scalars sc = {1.0f / sqrtf((float)D), -INFINITY, (float)c.window, 1.0f, (int32_t)-c.window};
    void *dqacc = buf(BUF_DQACC, (size_t)B * H * S * D * 4), *ssum = buf(BUF_SSUM, (size_t)B * H * S * 4);
    int64_t uids[20];
    void *pp[20];
    int n = 0;
    uids[n] = UID_Q, pp[n++] = (void *)q;
    uids[n] = UID_K, pp[n++] = (void *)k;
    uids[n] = UID_V, pp[n++] = (void *)v;
    uids[n] = UID_O, pp[n++] = (void *)out;
    uids[n] = UID_STATS, pp[n++] = (void *)lse;
    uids[n] = UID_DO, pp[n++] = (void *)dout;
    uids[n] = UID_DQ, pp[n++] = dq;  // [6]
    uids[n] = UID_DK, pp[n++] = dk;  // [7]
    uids[n] = UID_DV, pp[n++] = dv;  // [8]
    uids[n] = UID_SCALE, pp[n++] = &sc.scale;
    uids[n] = UID_ONE, pp[n++] = &sc.one;
    uids[n] = UID_SSUM, pp[n++] = ssum;
    uids[n] = UID_DQACC, pp[n++] = dqacc;
    execute(p1, mask_pack(p1, &sc, n, uids, pp), uids, pp, stream);
    if (nat) {
        lg_cuda_attention_sink_bwd(dq, dk, dv, dout, q, k, v, out, lse, B, S, H, KVH, D, c.sink, c.window, stream);
    } else if (c.sink) {
        // call 2 with the merged O and L: its dQ into scratch (added to rows [window, S), the only rows that see a
        // sink key through it), its dK/dV (B, sink, KVH, D) added into the first `sink` key rows.
        void *dq2 = buf(BUF_O2, (size_t)B * S * H * D * 2);
        void *dk2 = buf(BUF_DK2, (size_t)B * c.sink * KVH * D * 2), *dv2 = buf(BUF_DV2, (size_t)B * c.sink * KVH * D * 2);
        pp[6] = dq2, pp[7] = dk2, pp[8] = dv2;
        execute(p2, mask_pack(p2, &sc, n, uids, pp), uids, pp, stream);
        const int64_t row = (int64_t)H * D, krow = (int64_t)KVH * D, W = c.window;
        add_rows((bf16 *)dq + W * row, (const bf16 *)dq2 + W * row, (S - W) * row, S * row, S * row, B, stream);
        add_rows(dk, dk2, c.sink * krow, S * krow, c.sink * krow, B, stream);
        add_rows(dv, dv2, c.sink * krow, S * krow, c.sink * krow, B, stream);
    }
    return LG_CUDNN_OK;
}

// ---- self-check: a cuDNN release can accept a graph and still compute it wrongly (the 9.10 releases; 9.14.0 with
// windows over > 1024 keys). Before a configuration (kind, window/sink calls, GQA ratio, head_dim) is first used,
// cuDNN and the native kernels run one small random problem of the same structure: 1100 tokens (more than 1024
// keys, a partial last 128-key tile), one KV head; if out, lse, dq, dk or dv differ by more than 2e-2 (relative
// Frobenius; the two agree to ~5e-3), cuDNN is not used for that configuration and a warning says why.
__global__ void lg_cudnn_fill_kernel(bf16 *x, int64_t n, uint32_t seed) {  // uniform in [-1.7, 1.7), hash-based
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    uint32_t h = (uint32_t)i * 2654435761u ^ (seed * 0x9E3779B9u + (uint32_t)(i >> 32));
    h ^= h >> 16, h *= 0x85EBCA6Bu, h ^= h >> 13, h *= 0xC2B2AE35u, h ^= h >> 16;
    x[i] = __float2bfloat16(((h >> 8) * (1.0f / 16777216.0f) - 0.5f) * 3.4f);
}

static double rel_diff(const void *a, const void *b, size_t n, int is_bf16) {
    size_t es = is_bf16 ? 2 : 4;
    unsigned char *x = (unsigned char *)malloc(n * es), *y = (unsigned char *)malloc(n * es);
    if (!x || !y) lg_cu_die("cuDNN attention self-check: out of host memory");
    cudaCheck(cudaMemcpy(x, a, n * es, cudaMemcpyDeviceToHost));
    cudaCheck(cudaMemcpy(y, b, n * es, cudaMemcpyDeviceToHost));
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        float u, v;
        if (is_bf16) {
            uint32_t p = (uint32_t)((const uint16_t *)x)[i] << 16, q = (uint32_t)((const uint16_t *)y)[i] << 16;
            memcpy(&u, &p, 4), memcpy(&v, &q, 4);
        } else {
            u = ((const float *)x)[i], v = ((const float *)y)[i];
        }
        double d = (double)u - v;
        num += d * d, den += (double)v * v;
    }
    free(x), free(y);
    return sqrt(num / (den > 0 ? den : 1));  // NaN stays NaN and fails
}

typedef struct {
    int kind, window, sink, G, D, state;  // window, sink: 0/1 (whether the call exists); state 1 ok, -1 failed
} Verified;
static Verified g_verified[32];
static int g_nverified;

static int selfcheck(const lg_attn *mask, int S_real, int H, int KVH, int D, cudaStream_t stream) {
    if (getenv("LG_CUDNN_NO_SELFCHECK") || (D != 64 && D != 128)) return 1;  // the native kernels need 64 or 128
    Calls rc;
    split_mask(mask, S_real, &rc);
    Verified key = {mask->kind, rc.window > 0, rc.sink > 0, H / KVH, D, 0};
    for (int i = 0; i < g_nverified; i++) {
        const Verified *v = &g_verified[i];
        if (v->kind == key.kind && v->window == key.window && v->sink == key.sink && v->G == key.G && v->D == key.D)
            return v->state == 1;
    }
    const int S = 1100, Hs = key.G, K = 1;
    lg_attn m = *mask;
    if (m.kind == LG_ATTN_SINK_WINDOW) m.window = key.window ? 300 : S + 1, m.sink = key.sink ? 16 : 0;
    const size_t nq = (size_t)S * Hs * D, nk = (size_t)S * K * D, nl = (size_t)Hs * S;
    void *t[13];
    const size_t sz[13] = {2 * nq, 2 * nk, 2 * nk, 2 * nq, 2 * nq, 4 * nl, 2 * nq, 2 * nk, 2 * nk,
                           2 * nq, 4 * nl, 2 * nq, 2 * nk};
    for (int i = 0; i < 13; i++) cudaCheck(cudaMalloc(&t[i], sz[i]));
    void *dv_n;
    cudaCheck(cudaMalloc(&dv_n, 2 * nk));
    // q k v dO | cuDNN: o lse dq dk dv | native: o lse dq dk (dv_n)
    for (int i = 0; i < 4; i++) {
        int64_t n = (int64_t)(sz[i] / 2);
        lg_cudnn_fill_kernel<<<lg_cu_blocks(n, 256), 256, 0, stream>>>((bf16 *)t[i], n, 17u + i);
        cudaCheckLaunch("lg_cudnn_fill_kernel");
    }
    int ok = fwd_impl(t[4], (float *)t[5], t[0], t[1], t[2], 1, S, Hs, K, D, &m, stream) == LG_CUDNN_OK &&
             bwd_impl(t[6], t[7], t[8], t[3], t[0], t[1], t[2], t[4], (float *)t[5], 1, S, Hs, K, D, &m, stream) ==
                 LG_CUDNN_OK;
    double e[5] = {NAN, NAN, NAN, NAN, NAN};
    if (ok) {
        lg_cuda_attention_fwd(t[9], (float *)t[10], t[0], t[1], t[2], 1, S, Hs, K, D, &m, stream);
        lg_cuda_attention_bwd(t[11], t[12], dv_n, t[3], t[0], t[1], t[2], t[9], (float *)t[10], 1, S, Hs, K, D, &m, 1,
                              stream);
        cudaCheck(cudaStreamSynchronize(stream));
        e[0] = rel_diff(t[4], t[9], nq, 1), e[1] = rel_diff(t[5], t[10], nl, 0), e[2] = rel_diff(t[6], t[11], nq, 1);
        e[3] = rel_diff(t[7], t[12], nk, 1), e[4] = rel_diff(t[8], dv_n, nk, 1);
        for (int i = 0; i < 5; i++) ok &= e[i] < 2e-2;
        if (!ok) {
            char d[96];
            lg_attn_describe(&m, d, sizeof d);
            size_t v = cudnnGetVersion();
            warn("cuDNN %d.%d.%d computes %s (S=%d, %d query heads per KV head, head_dim %d) differently from the "
                 "native kernels (relative difference out %.1e lse %.1e dq %.1e dk %.1e dv %.1e, expected < 2e-2): "
                 "using the native kernels for this configuration; try another cuDNN release",
                 (int)(v / 10000), (int)(v / 100 % 100), (int)(v % 100), d, S, key.G, D, e[0], e[1], e[2], e[3],
                 e[4]);
        }
    }
    for (int i = 0; i < 13; i++) cudaCheck(cudaFree(t[i]));
    cudaCheck(cudaFree(dv_n));
    key.state = ok ? 1 : -1;
    if (g_nverified < 32) g_verified[g_nverified++] = key;
    return ok;
}

extern "C" int lg_cuda_attention_cudnn_fwd(void *out, float *lse, const void *q, const void *k, const void *v, int B,
                                           int S, int H, int KVH, int D, const lg_attn *mask, cudaStream_t stream) {
    const void *ptrs[5] = {out, lse, q, k, v};
    if (!check_args(mask, B, S, H, KVH, D, ptrs, 5) || !selfcheck(mask, S, H, KVH, D, stream))
        return LG_CUDNN_UNSUPPORTED;
    return fwd_impl(out, lse, q, k, v, B, S, H, KVH, D, mask, stream);
}

extern "C" int lg_cuda_attention_cudnn_bwd(void *dq, void *dk, void *dv, const void *dout, const void *q,
                                           const void *k, const void *v, const void *out, const float *lse, int B,
                                           int S, int H, int KVH, int D, const lg_attn *mask, cudaStream_t stream) {
    const void *ptrs[9] = {dq, dk, dv, dout, q, k, v, out, lse};
    if (!check_args(mask, B, S, H, KVH, D, ptrs, 9) || !selfcheck(mask, S, H, KVH, D, stream))
        return LG_CUDNN_UNSUPPORTED;
    return bwd_impl(dq, dk, dv, dout, q, k, v, out, lse, B, S, H, KVH, D, mask, stream);
}

extern "C" size_t lg_cuda_attention_cudnn_workspace_bytes(int B, int S, int H, int KVH, int D, const lg_attn *mask) {
    Calls c;
    if (!split_mask(mask, S, &c)) return 0;
    const size_t b = (size_t)B, s = (size_t)S, h = (size_t)H, d = (size_t)D;
    size_t bytes = b * h * s * d * 4 + b * h * s * 4;  // dQ_accum, softmax_sum
    if (native_sink(&c, S, H, KVH, D)) {  // attention_sink.cuh's dK/dV partials: 32 query tiles per chunk
        const size_t nch = ((size_t)(S + 63) / 64 - (size_t)c.window / 64 + 31) / 32;
        bytes += b * h * nch * 2 * 64 * d * 4;
    } else if (c.sink) {
        bytes += b * s * h * d * 2 + b * h * s * 4 + 2 * b * (size_t)c.sink * KVH * d * 2;
    }
    int64_t ws = -1;  // the largest planned workspace of this shape, if planned
    for (int i = 0; i < g_nplans; i++) {
        const Shape *k = &g_plans[i].key;
        if (g_plans[i].state == 1 && k->B == B && k->S == S && k->H == H && k->KVH == KVH && k->D == D &&
            k->window == c.window && g_plans[i].ws > ws)
            ws = g_plans[i].ws;
    }
    bytes += ws >= 0 ? (size_t)ws : ((size_t)64 << 20) + (H != KVH ? b * h * s * d * 4 : 0);
    return bytes;
}

extern "C" int lg_cuda_attention_cudnn_version(void) { return (int)cudnnGetVersion(); }

extern "C" int lg_cuda_attention_cudnn_usable(const char **why) {
    int u = usable();
    if (!u && why) *why = g_unusable_why;
    return u;
}

extern "C" void lg_cuda_attention_cudnn_release(void) {
    for (int i = 0; i < g_nplans; i++) {
        if (g_plans[i].g) {
            gb_destroy(g_plans[i].g);
            free(g_plans[i].g);
        }
        if (g_plans[i].seqlens) cudaCheck(cudaFree(g_plans[i].seqlens));
    }
    memset(g_plans, 0, sizeof g_plans);
    g_nplans = 0;
    g_nverified = 0;
    for (int i = 0; i < BUF_N; i++) {
        if (g_buf[i].p) cudaCheck(cudaFree(g_buf[i].p));
        g_buf[i].p = NULL, g_buf[i].n = 0;
    }
    if (g_handle) cudnnCheck(cudnnDestroy(g_handle));
    g_handle = NULL;
    if (g_usable == 1) g_usable = -1;
}

#else  // built without cuDNN: every call is unsupported (one warning), the native kernels run

static int no_cudnn(const lg_attn *mask) {
    static int warned;
    if (mask->kind != LG_ATTN_BLOCK_SPARSE && !warned) {
        fprintf(stderr, "lgtrain: warning: cuDNN attention: this build has no cuDNN (CMake found no libcudnn); "
                        "using the native attention kernels\n");
        warned = 1;
    }
    return LG_CUDNN_UNSUPPORTED;
}
extern "C" int lg_cuda_attention_cudnn_fwd(void *, float *, const void *, const void *, const void *, int, int, int,
                                           int, int, const lg_attn *mask, cudaStream_t) {
    return no_cudnn(mask);
}
extern "C" int lg_cuda_attention_cudnn_bwd(void *, void *, void *, const void *, const void *, const void *,
                                           const void *, const void *, const float *, int, int, int, int, int,
                                           const lg_attn *mask, cudaStream_t) {
    return no_cudnn(mask);
}
extern "C" size_t lg_cuda_attention_cudnn_workspace_bytes(int, int, int, int, int, const lg_attn *) { return 0; }
extern "C" int lg_cuda_attention_cudnn_version(void) { return 0; }
extern "C" int lg_cuda_attention_cudnn_usable(const char **why) {
    if (why) *why = "this build has no cuDNN (CMake found no libcudnn)";
    return 0;
}
extern "C" void lg_cuda_attention_cudnn_release(void) {}
#endif
