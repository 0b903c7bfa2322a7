// cpu.h: internals shared by the CPU backend's files (not part of the op interface).
#pragma once
#include <stdint.h>

#include "kernels/layout.h"

// Instruction set used by the hot kernels: 1 = AVX2+FMA, 0 = baseline. Chosen by lg_ops_cpu() from the CPU
// (LG_CPU_SIMD=generic in the environment forces baseline); tests may force either.
extern int lg_cpu_avx2;
void lg_cpu_simd_init(void);
void lg_cpu_set_simd(int avx2);  // dies when asked for AVX2 on a CPU without it

// Micro-kernel: C (m x 16, row stride ldc) = (acc ? C : 0) + A (m x K) B (K x 16), m in 1..6, storing only the
// first n <= 16 columns. A[i][k] = a[i*sai + k*sak]; B[k][j] = b[k*ldb + j] and all 16 columns must be readable.
void lg_cpu_uk(int m, int n, int64_t K, const float *a, int64_t sai, int64_t sak, const float *b, int64_t ldb,
               float *c, int64_t ldc, int acc);
// Blocked, packed, OpenMP-parallel GEMM: C (M,N) (row stride ldc) = (accumulate ? C : 0) + A B with
// A[i][k] = a[i*sai + k*sak], B[k][j] = b[k*sbk + j*sbj]. Deterministic (each C element summed in a fixed order
// by one thread), independent of the thread count.
void lg_cpu_gemm(float *c, int64_t ldc, const float *a, int64_t sai, int64_t sak, const float *b, int64_t sbk,
                 int64_t sbj, int64_t M, int64_t N, int64_t K, int accumulate);

// Row n of x: x[j] = exp(x[j] - mx) for j < n, returns the sum (fp32 lanes, fp64 total). Used by softmaxes.
double lg_cpu_exp_row(float *x, int64_t n, float mx);
float lg_cpu_max_row(const float *x, int64_t n);

// Mask of one query row inside one key tile [k0, k1): the visible keys as at most two half-open intervals
// iv[0..1], iv[2..3] (empty when lo >= hi), equal to lg_attn_allows for every k in [k0, k1) (tests check this).
// For BLOCK_SPARSE the tile must lie inside one key block.
void lg_cpu_mask_row(const lg_attn *a, int n_kv_heads, int h, int64_t q, int64_t k0, int64_t k1, int64_t iv[4]);
// Attention tile size for a layout: 32, or gcd(block, 32) for BLOCK_SPARSE (tiles must divide blocks).
int lg_cpu_attn_tile(const lg_attn *a);
// (query tile, key tile) pairs visited by the last attention_fwd / attention_bwd call, summed over (b, h).
extern int64_t lg_cpu_attn_tiles_fwd, lg_cpu_attn_tiles_bwd;
