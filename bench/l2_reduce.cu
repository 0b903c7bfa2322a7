// l2_reduce.cu: the ceiling of fp32 reductions into L2 in the access pattern of an atomic (non-deterministic)
// dQ inside the dK/dV pass of sink_window attention: CTA (head h, key tile j) adds one 64 x 128 fp32 tile
// (32 KB) into each of the dQ tiles j .. j + 32 (+ kpc - 1) of its head, in ascending order. Measures what the
// fused-dQ design must fit under before it is built (METHOD.md: the ceiling first).
//   l2_reduce [heads=32] [key_tiles=2048] [delay_clk=0]
// Modes: bulk = one thread issues cp.reduce.async.bulk .add.f32 of the 32 KB smem tile (the TMA unit does the
// read-modify-write, asynchronously); red4 / red2 = every thread red.global.add.v4/.v2.f32 from registers
// (session 3's v5 used .v2); store = cp.async.bulk without reduction (the write ceiling). Orders: tiles-major
// (a head's key tiles side by side: the accumulator tiles in flight stay few) or heads-major (the dK/dV grid's).
// kpc = key tiles per CTA: 2 sums two key tiles' contributions first (a 128-key CTA), halving the bytes.
// delay_clk spins that many SM clocks per step (simulated MMA work) to see whether reductions overlap it.
// Every run checks the accumulator against the count of contributions (the tile holds 1.0f).
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define cudaCheck(x) cuda_check((x), #x, __FILE__, __LINE__)
static void cuda_check(cudaError_t e, const char *what, const char *file, int line) {
    if (e != cudaSuccess) {
        fprintf(stderr, "%s:%d: %s: %s\n", file, line, what, cudaGetErrorString(e));
        exit(1);
    }
}

enum { TILE_F = 64 * 128, TILE_B = TILE_F * 4, THREADS = 128, WINDOW_TILES = 33 };
enum { M_BULK, M_RED4, M_RED2, M_STORE };

__global__ void __launch_bounds__(THREADS) reduce_kernel(float *acc, int H, int nkt, int kpc, int mode,
                                                         int heads_major, long long delay) {
    extern __shared__ __align__(128) float tile[];  // [2][TILE_F]
    const int ncta_h = (nkt + kpc - 1) / kpc;
    int h, c;
    if (heads_major) h = blockIdx.x % H, c = blockIdx.x / H;
    else h = blockIdx.x / ncta_h, c = blockIdx.x % ncta_h;
    const int j0 = c * kpc;
    for (int i = threadIdx.x; i < 2 * TILE_F; i += THREADS) tile[i] = 1.0f * kpc;
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");  // generic-proxy writes seen by the TMA unit
    __syncthreads();
    const int last = min(nkt - 1, j0 + kpc - 1 + WINDOW_TILES - 1);
    for (int i = j0, step = 0; i <= last; i++, step++) {
        float *dst = acc + ((size_t)h * nkt + i) * TILE_F;
        if (delay) {
            long long t0 = clock64();
            while (clock64() - t0 < delay) {
            }
        }
        if (mode == M_BULK || mode == M_STORE) {
            if (threadIdx.x == 0) {
                const uint32_t src = (uint32_t)__cvta_generic_to_shared(tile + (step & 1) * TILE_F);
                // the buffer reused two steps later must have been read: at most one group in flight
                asm volatile("cp.async.bulk.wait_group.read 1;\n" ::: "memory");
                if (mode == M_BULK)
                    asm volatile("cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%0], [%1], %2;\n" ::"l"(
                                     dst),
                                 "r"(src), "r"((uint32_t)TILE_B)
                                 : "memory");
                else
                    asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;\n" ::"l"(dst), "r"(src),
                                 "r"((uint32_t)TILE_B)
                                 : "memory");
                asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
            }
        } else if (mode == M_RED4) {
            // a warp instruction covers 512 contiguous bytes
            for (int x = threadIdx.x * 4; x < TILE_F; x += THREADS * 4)
                asm volatile("red.global.add.v4.f32 [%0], {%1, %2, %3, %4};\n" ::"l"(dst + x), "f"(1.0f * kpc),
                             "f"(1.0f * kpc), "f"(1.0f * kpc), "f"(1.0f * kpc)
                             : "memory");
        } else {
            for (int x = threadIdx.x * 2; x < TILE_F; x += THREADS * 2)
                asm volatile("red.global.add.v2.f32 [%0], {%1, %2};\n" ::"l"(dst + x), "f"(1.0f * kpc), "f"(1.0f * kpc)
                             : "memory");
        }
        __syncthreads();
    }
    if ((mode == M_BULK || mode == M_STORE) && threadIdx.x == 0) asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory");
}

// expected value of element 0 of dQ tile i: the number of key tiles j <= i with i - j <= 32 + (kpc-1 slack)
static double expect(int i, int nkt, int kpc, int mode) {
    double s = 0;
    for (int c = 0; c * kpc < nkt; c++) {
        int j0 = c * kpc, last = j0 + kpc - 1 + WINDOW_TILES - 1;
        if (last > nkt - 1) last = nkt - 1;
        if (i >= j0 && i <= last) s += mode == M_STORE ? 0 : kpc;
    }
    return s;
}

int main(int argc, char **argv) {
    const int H = argc > 1 ? atoi(argv[1]) : 32, nkt = argc > 2 ? atoi(argv[2]) : 2048;
    const long long delay = argc > 3 ? atoll(argv[3]) : 0;
    const size_t n = (size_t)H * nkt * TILE_F;
    cudaDeviceProp prop;
    cudaCheck(cudaGetDeviceProperties(&prop, 0));
    const double slots = 2.0 * prop.multiProcessorCount;  // resident CTAs: two per SM (the smem request)
    float *acc;
    cudaCheck(cudaMalloc(&acc, n * sizeof(float)));
    const size_t smem = 100 * 1024;  // two CTAs per SM, as the dK/dV kernel
    cudaCheck(cudaFuncSetAttribute(reduce_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    cudaEvent_t a, b;
    cudaCheck(cudaEventCreate(&a));
    cudaCheck(cudaEventCreate(&b));
    const char *mname[] = {"bulk", "red4", "red2", "store"};
    printf("%s (%d SMs): heads %d, key tiles %d, window %d tiles, 32 KB fp32 per contribution, delay %lld clk/step, smem %zu KB/CTA\n",
           prop.name, prop.multiProcessorCount, H, nkt, WINDOW_TILES, delay, smem / 1024);
    printf("| mode | kpc | order | GB moved | ms | TB/s | us per CTA step | check |\n|---|---|---|---|---|---|---|---|\n");
    for (int mode = 0; mode < 4; mode++)
        for (int kpc = 1; kpc <= 2; kpc++)
            for (int hm = 0; hm < 2; hm++) {
                if (mode == M_RED2 && kpc == 2) continue;
                const int ncta = H * ((nkt + kpc - 1) / kpc);
                double bytes = 0;
                for (int c = 0; c * kpc < nkt; c++) {
                    int last = c * kpc + kpc - 1 + WINDOW_TILES - 1;
                    if (last > nkt - 1) last = nkt - 1;
                    bytes += (double)(last - c * kpc + 1) * TILE_B;
                }
                bytes *= H;
                float best = 1e30f;
                for (int rep = 0; rep < 3; rep++) {
                    cudaCheck(cudaMemset(acc, 0, n * sizeof(float)));
                    cudaCheck(cudaEventRecord(a));
                    reduce_kernel<<<ncta, THREADS, smem>>>(acc, H, nkt, kpc, mode, hm, delay);
                    cudaCheck(cudaGetLastError());
                    cudaCheck(cudaEventRecord(b));
                    cudaCheck(cudaEventSynchronize(b));
                    float ms;
                    cudaCheck(cudaEventElapsedTime(&ms, a, b));
                    if (ms < best) best = ms;
                }
                // check element 0 (and the last) of a few tiles of head H-1
                int bad = 0;
                const int probe[] = {0, 1, 31, 32, 33, nkt / 2, nkt - 1};
                for (int p = 0; p < 7; p++) {
                    int i = probe[p] < nkt ? probe[p] : nkt - 1;
                    float v[2];
                    size_t at = ((size_t)(H - 1) * nkt + i) * TILE_F;
                    cudaCheck(cudaMemcpy(&v[0], acc + at, 4, cudaMemcpyDeviceToHost));
                    cudaCheck(cudaMemcpy(&v[1], acc + at + TILE_F - 1, 4, cudaMemcpyDeviceToHost));
                    double e = mode == M_STORE ? 1.0 * kpc : expect(i, nkt, kpc, mode);
                    if (v[0] != e || v[1] != e) bad++;
                }
                double steps_per_cta = bytes / TILE_B / ncta;
                printf("| %s | %d | %s | %.1f | %.2f | %.2f | %.2f | %s |\n", mname[mode], kpc,
                       hm ? "heads-major" : "tiles-major", bytes / 1e9, best, bytes / best / 1e9,
                       1e3 * best / (steps_per_cta * ncta / slots), bad ? "FAIL" : "ok");
            }
    cudaCheck(cudaFree(acc));
    return 0;
}
