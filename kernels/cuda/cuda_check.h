// cuda_check.h: checked CUDA runtime calls. A failure names the call, the file and the line, and the
// CUDA error, then exits: a GPU error leaves the context unusable, so there is nothing to recover.
#pragma once
#include <stdio.h>
#include <stdlib.h>

#include <cuda_runtime.h>

static inline void lg_cuda_check_(cudaError_t e, const char *what, const char *file, int line) {
    if (e == cudaSuccess) return;
    fprintf(stderr, "lgtrain: error: %s:%d: %s failed: %s (%s)\n", file, line, what, cudaGetErrorString(e),
            cudaGetErrorName(e));
    fflush(stderr);
    exit(1);
}
// cudaCheck(cudaMalloc(&p, n));
#define cudaCheck(call) lg_cuda_check_((call), #call, __FILE__, __LINE__)
// After a kernel launch: catches bad launch configurations (the kernel's own faults surface at the next sync).
#define cudaCheckLaunch(name) lg_cuda_check_(cudaGetLastError(), "launch of " name, __FILE__, __LINE__)

// cublasCheck(cublasLtMatmul(...)) / cublasCheck(cublasGemmEx(...)): status 0 is CUBLAS_STATUS_SUCCESS. Takes the
// status as an int so this header needs no cuBLAS include.
static inline void lg_cublas_check_(int s, const char *what, const char *file, int line) {
    if (s == 0) return;
    const char *name = s == 1 ? "NOT_INITIALIZED" : s == 3 ? "ALLOC_FAILED" : s == 7 ? "INVALID_VALUE"
                     : s == 8 ? "ARCH_MISMATCH" : s == 11 ? "MAPPING_ERROR" : s == 13 ? "EXECUTION_FAILED"
                     : s == 14 ? "INTERNAL_ERROR" : s == 15 ? "NOT_SUPPORTED" : "unknown";
    fprintf(stderr,
            "lgtrain: error: %s:%d: %s failed: cuBLAS status %d (CUBLAS_STATUS_%s); ALLOC_FAILED means the GPU is out "
            "of memory (lower micro_batch, seq_len or mlp_chunk/loss_chunk), EXECUTION_FAILED an earlier kernel fault "
            "(rerun with CUDA_LAUNCH_BLOCKING=1 or under compute-sanitizer)\n",
            file, line, what, s, name);
    fflush(stderr);
    exit(1);
}
#define cublasCheck(call) lg_cublas_check_((int)(call), #call, __FILE__, __LINE__)
