// ops_select.c: pick a backend. The CUDA table lives in kernels/cuda (lg_ops_cuda_impl) when built with CUDA.
#include "ops.h"

#ifdef LG_HAVE_CUDA
const lg_ops *lg_ops_cuda_impl(const char **why);  // kernels/cuda/ops_cuda.cu
const lg_ops *lg_ops_cuda(const char **why) { return lg_ops_cuda_impl(why); }
#else
const lg_ops *lg_ops_cuda(const char **why) {
    if (why) *why = "this lgtrain was built without CUDA (nvcc not found at cmake time, or -DLG_CUDA=OFF)";
    return 0;
}
#endif
