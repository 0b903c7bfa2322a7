// simd.h: 8-wide float vectors (GNU C vector extensions) shared by the CPU kernels, and the attributes that
// compile a hot kernel twice: once for the baseline ISA and once for AVX2+FMA, picked at run time (cpu.h).
// The build uses -O2 -std=c11, where GCC neither auto-vectorizes loops with epilogues nor contracts a*b+c
// into FMA, so hot loops are written on these vector types explicitly.
#pragma once
#include <math.h>
#include <stdint.h>

#ifndef __GNUC__
#error "kernels/cpu needs GNU C vector extensions (gcc or clang)"
#endif

// The helpers below are always inlined, so the 32-byte vector ABI note (-Wpsabi) never matters.
#pragma GCC diagnostic ignored "-Wpsabi"

typedef float lg_v8 __attribute__((vector_size(32)));
typedef int32_t lg_v8i __attribute__((vector_size(32)));
// Same type for unaligned loads/stores through a pointer cast.
typedef float lg_v8u __attribute__((vector_size(32), aligned(4), may_alias));

#if defined(__x86_64__) || defined(__i386__)
#define LG_CPU_X86 1
#if defined(__clang__)
#define LG_AVX2_FN __attribute__((target("avx2,fma")))
#else
// fp-contract=fast: let a*b+c become one FMA in the AVX2 build (ISO C mode turns contraction off).
#define LG_AVX2_FN __attribute__((target("avx2,fma"), optimize("fp-contract=fast")))
#endif
#else
#define LG_CPU_X86 0
#define LG_AVX2_FN
#endif
#define LG_INLINE static inline __attribute__((always_inline))

LG_INLINE lg_v8 lg_ld(const float *p) { return *(const lg_v8u *)p; }
LG_INLINE void lg_st(float *p, lg_v8 v) { *(lg_v8u *)p = v; }
LG_INLINE lg_v8 lg_bc(float x) { return x - (lg_v8){0}; }  // scalar op vector: one broadcast
// Lane select: m ? a : b, with m a comparison result (all ones / zero per lane).
LG_INLINE lg_v8 lg_sel(lg_v8i m, lg_v8 a, lg_v8 b) { return (lg_v8)(((lg_v8i)a & m) | ((lg_v8i)b & ~m)); }
LG_INLINE lg_v8 lg_vmax(lg_v8 a, lg_v8 b) { return lg_sel(a > b, a, b); }
LG_INLINE float lg_hsum(lg_v8 v) { return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7])); }
LG_INLINE float lg_hmax(lg_v8 v) {
    float m = v[0];
    for (int i = 1; i < 8; i++) m = v[i] > m ? v[i] : m;
    return m;
}

// exp(x) per lane, relative error ~2e-7 (Cephes expf polynomial). Inputs are clamped to [-87, 88], so
// exp of a very negative number is ~1e-38, not 0: callers zero masked lanes themselves.
LG_INLINE lg_v8 lg_exp8(lg_v8 x) {
    x = lg_sel(x < lg_bc(-87.0f), lg_bc(-87.0f), x);
    x = lg_sel(x > lg_bc(88.0f), lg_bc(88.0f), x);
    lg_v8 fx = x * lg_bc(1.44269504088896341f) + lg_bc(0.5f);
    lg_v8 n = __builtin_convertvector(__builtin_convertvector(fx, lg_v8i), lg_v8);  // trunc toward 0
    n += __builtin_convertvector(n > fx, lg_v8);  // floor: true lanes are -1
    lg_v8 r = x - n * lg_bc(0.693359375f) - n * lg_bc(-2.12194440e-4f);
    lg_v8 y = lg_bc(1.9875691500e-4f);
    y = y * r + lg_bc(1.3981999507e-3f);
    y = y * r + lg_bc(8.3334519073e-3f);
    y = y * r + lg_bc(4.1665795894e-2f);
    y = y * r + lg_bc(1.6666665459e-1f);
    y = y * r + lg_bc(5.0000001201e-1f);
    y = y * (r * r) + r + lg_bc(1.0f);
    lg_v8i e = (__builtin_convertvector(n, lg_v8i) + 127) << 23;
    return y * (lg_v8)e;
}
