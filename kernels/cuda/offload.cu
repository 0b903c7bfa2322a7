// offload.cu: page-locked host memory and a copy stream for activation offload (memory.offload_activations).
// A copy is queued on the copy stream after an event on the compute stream, so it reads what the compute work
// queued so far wrote; copy_wait(slot) makes later compute work wait for that copy. The copy engines run
// beside the kernels: at ~25-50 GB/s per direction a 1 GiB layer input moves in 20-40 ms, far less than the
// second or so a layer takes at 128K.
#include "kernels/cuda/ops_cuda.h"

#define LG_COPY_SLOTS 8

static cudaStream_t g_copy_stream;
static cudaEvent_t g_before[LG_COPY_SLOTS], g_done[LG_COPY_SLOTS];

static void copy_init(void) {
    if (g_copy_stream) return;
    cudaCheck(cudaStreamCreateWithFlags(&g_copy_stream, cudaStreamNonBlocking));
    for (int i = 0; i < LG_COPY_SLOTS; i++) {
        cudaCheck(cudaEventCreateWithFlags(&g_before[i], cudaEventDisableTiming));
        cudaCheck(cudaEventCreateWithFlags(&g_done[i], cudaEventDisableTiming));
    }
}

void *lg_cu_host_alloc(size_t bytes) {
    void *p = NULL;
    cudaError_t e = cudaHostAlloc(&p, bytes ? bytes : 1, cudaHostAllocDefault);
    if (e != cudaSuccess)
        lg_cu_die("cudaHostAlloc of %.2f GiB of page-locked host memory failed: %s. The activation offload keeps every "
                  "layer input in host memory; free host memory or set memory.offload_activations = false",
                  (double)bytes / (1024.0 * 1024.0 * 1024.0), cudaGetErrorString(e));
    return p;
}

void lg_cu_host_free(void *p) {
    if (p) cudaCheck(cudaFreeHost(p));
}

void lg_cu_copy_async(void *dst, const void *src, size_t bytes, int slot) {
    if (slot < 0 || slot >= LG_COPY_SLOTS) lg_cu_die("copy_async: slot %d outside [0, %d)", slot, LG_COPY_SLOTS);
    copy_init();
    cudaCheck(cudaEventRecord(g_before[slot], LG_CU_STREAM));
    cudaCheck(cudaStreamWaitEvent(g_copy_stream, g_before[slot], 0));
    cudaCheck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, g_copy_stream));
    cudaCheck(cudaEventRecord(g_done[slot], g_copy_stream));
}

void lg_cu_copy_wait(int slot) {
    if (slot < 0 || slot >= LG_COPY_SLOTS) lg_cu_die("copy_wait: slot %d outside [0, %d)", slot, LG_COPY_SLOTS);
    if (!g_copy_stream) return;
    cudaCheck(cudaStreamWaitEvent(LG_CU_STREAM, g_done[slot], 0));
}

void lg_cu_copy_release(void) {
    if (!g_copy_stream) return;
    cudaCheck(cudaStreamSynchronize(g_copy_stream));
    for (int i = 0; i < LG_COPY_SLOTS; i++) {
        cudaCheck(cudaEventDestroy(g_before[i]));
        cudaCheck(cudaEventDestroy(g_done[i]));
    }
    cudaCheck(cudaStreamDestroy(g_copy_stream));
    g_copy_stream = NULL;
}
