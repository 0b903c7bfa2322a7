// norm.cu: RMSNorm (HF LlamaRMSNorm): y = x / sqrt(mean(x^2) + eps) * w, bf16 in/out, fp32 math.
// One block per row holds the row in registers: each thread owns up to NG groups of 8 columns (16-byte loads),
// so the row is read once (fwd) and x, dy read once (bwd). Rows up to NG * 8 * 1024 = 32768 columns.
#include "kernels/cuda/ops_cuda.h"

#define NG 4
enum { BWD_BLOCKS = 512 };  // fixed, so the dw partial sums (and the result) do not depend on the GPU

static int row_threads(int C, const char *op) {
    int groups = (C + 7) / 8;
    int nt = (groups + NG - 1) / NG;
    nt = (nt + 31) / 32 * 32;
    if (nt > 1024) lg_cu_die("%s: dim %d exceeds the %d columns one block handles", op, C, NG * 8 * 1024);
    return nt;
}

// out (T,C), rstd (T), inp (T,C), w (C)
__global__ void rmsnorm_fwd_kernel(bf16 *__restrict__ out, float *__restrict__ rstd, const bf16 *__restrict__ inp,
                                   const bf16 *__restrict__ w, int C, float eps, int vec) {
    __shared__ float sh[32];
    int64_t t = blockIdx.x;
    const bf16 *x = inp + t * C;
    bf16 *o = out + t * C;
    float xv[NG][8];
    float ss = 0.0f;
#pragma unroll
    for (int g = 0; g < NG; g++) {
        int c = (threadIdx.x + g * blockDim.x) * 8;
        int n = C - c < 8 ? C - c : 8;
        if (n > 0) {
            lg_ld8n(x + c, n, vec, xv[g]);
        } else {
#pragma unroll
            for (int i = 0; i < 8; i++) xv[g][i] = 0.0f;
        }
#pragma unroll
        for (int i = 0; i < 8; i++) ss += xv[g][i] * xv[g][i];
    }
    ss = lg_block_sum(ss, sh);
    float r = (float)(1.0 / sqrt((double)ss / C + (double)eps));
    if (threadIdx.x == 0) rstd[t] = r;
#pragma unroll
    for (int g = 0; g < NG; g++) {
        int c = (threadIdx.x + g * blockDim.x) * 8;
        int n = C - c < 8 ? C - c : 8;
        if (n <= 0) continue;
        float wv[8], y[8];
        lg_ld8n(w + c, n, vec, wv);
#pragma unroll
        for (int i = 0; i < 8; i++) y[i] = (xv[g][i] * r) * wv[i];
        lg_st8n(o + c, n, vec, y);
    }
}

void lg_cu_rmsnorm_fwd(void *out, float *rstd, const void *inp, const void *w, int64_t T, int C, float eps) {
    if (T <= 0) return;
    if (T > 2147483647) lg_cu_die("rmsnorm_fwd: %lld rows exceed the grid limit", (long long)T);
    int nt = row_threads(C, "rmsnorm_fwd");
    int vec = C % 8 == 0 && lg_cu_al16(out) && lg_cu_al16(inp) && lg_cu_al16(w);
    rmsnorm_fwd_kernel<<<(unsigned)T, nt, 0, LG_CU_STREAM>>>((bf16 *)out, rstd, (const bf16 *)inp, (const bf16 *)w, C,
                                                             eps, vec);
    cudaCheckLaunch("rmsnorm_fwd_kernel");
}

// y_c = x_c r w_c:  dx_c = r w_c dy_c - r^3 x_c / C * sum_j w_j dy_j x_j ;  dw_c = sum_t dy_c x_c r
// Block b takes rows b, b + nb, ... ; dinp (T,C) += ; its dw sums go to part (nb, C), reduced by the next kernel.
__global__ void rmsnorm_bwd_kernel(bf16 *__restrict__ dinp, float *__restrict__ part, const bf16 *__restrict__ dout,
                                   const bf16 *__restrict__ inp, const bf16 *__restrict__ w,
                                   const float *__restrict__ rstd, int64_t T, int C, int vec) {
    __shared__ float sh[32];
    float wv[NG][8], dw[NG][8];
#pragma unroll
    for (int g = 0; g < NG; g++) {
        int c = (threadIdx.x + g * blockDim.x) * 8;
        int n = C - c < 8 ? C - c : 8;
        if (n > 0) {
            lg_ld8n(w + c, n, vec, wv[g]);
        } else {
#pragma unroll
            for (int i = 0; i < 8; i++) wv[g][i] = 0.0f;
        }
#pragma unroll
        for (int i = 0; i < 8; i++) dw[g][i] = 0.0f;
    }
    for (int64_t t = blockIdx.x; t < T; t += gridDim.x) {
        const bf16 *x = inp + t * C, *dy = dout + t * C;
        bf16 *dx = dinp + t * C;
        float xv[NG][8], gv[NG][8];
        float dot = 0.0f;
#pragma unroll
        for (int g = 0; g < NG; g++) {
            int c = (threadIdx.x + g * blockDim.x) * 8;
            int n = C - c < 8 ? C - c : 8;
            if (n > 0) {
                lg_ld8n(x + c, n, vec, xv[g]);
                lg_ld8n(dy + c, n, vec, gv[g]);
            } else {
#pragma unroll
                for (int i = 0; i < 8; i++) xv[g][i] = gv[g][i] = 0.0f;
            }
#pragma unroll
            for (int i = 0; i < 8; i++) dot += wv[g][i] * gv[g][i] * xv[g][i];
        }
        dot = lg_block_sum(dot, sh);
        float r = rstd[t];
        float k = (float)((double)r * r * r * dot / C);
#pragma unroll
        for (int g = 0; g < NG; g++) {
            int c = (threadIdx.x + g * blockDim.x) * 8;
            int n = C - c < 8 ? C - c : 8;
            if (n <= 0) continue;
            float d[8];
            lg_ld8n(dx + c, n, vec, d);
#pragma unroll
            for (int i = 0; i < 8; i++) {
                d[i] += r * wv[g][i] * gv[g][i] - k * xv[g][i];
                dw[g][i] += gv[g][i] * xv[g][i] * r;
            }
            lg_st8n(dx + c, n, vec, d);
        }
    }
    float *p = part + (int64_t)blockIdx.x * C;
#pragma unroll
    for (int g = 0; g < NG; g++) {
        int c = (threadIdx.x + g * blockDim.x) * 8;
#pragma unroll
        for (int i = 0; i < 8; i++)
            if (c + i < C) p[c + i] = dw[g][i];
    }
}

// dw (C) += sum over the nb partial rows, in block order.
__global__ void rmsnorm_dw_kernel(float *__restrict__ dw, const float *__restrict__ part, int nb, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float s = 0.0f;
    for (int b = 0; b < nb; b++) s += part[(int64_t)b * C + c];
    dw[c] += s;
}

void lg_cu_rmsnorm_bwd(void *dinp, float *dw, const void *dout, const void *inp, const void *w, const float *rstd,
                       int64_t T, int C) {
    if (T <= 0) return;
    int nt = row_threads(C, "rmsnorm_bwd");
    int nb = T < BWD_BLOCKS ? (int)T : BWD_BLOCKS;
    float *part = (float *)lg_cu_scratch(LG_CU_SCRATCH_NORM, (size_t)nb * C * sizeof(float));
    int vec = C % 8 == 0 && lg_cu_al16(dinp) && lg_cu_al16(dout) && lg_cu_al16(inp) && lg_cu_al16(w);
    rmsnorm_bwd_kernel<<<nb, nt, 0, LG_CU_STREAM>>>((bf16 *)dinp, part, (const bf16 *)dout, (const bf16 *)inp,
                                                    (const bf16 *)w, rstd, T, C, vec);
    cudaCheckLaunch("rmsnorm_bwd_kernel");
    if (!dw) return;
    rmsnorm_dw_kernel<<<(C + 255) / 256, 256, 0, LG_CU_STREAM>>>(dw, part, nb, C);
    cudaCheckLaunch("rmsnorm_dw_kernel");
}
