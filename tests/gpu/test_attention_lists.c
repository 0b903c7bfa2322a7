// test_attention_lists.c: the v10 forward's triple union lists (kernels/cuda/attention_wg3.cuh) against the
// per-tile key lists they are built from, for every layout kind, GQA head counts and lengths that end inside a
// tile, inside a triple and at 128K. Host code only: it needs the CUDA build (the lists live in liblgcuda) but
// no device, so unlike the other tests in this folder it runs in CI.
// The per-tile lists themselves come from lg_attn_key_tiles, checked against lg_attn_allows by test_layout.
#include <stdio.h>

#include "kernels/cuda/attention.h"

int main(void) {
    const lg_attn masks[] = {
        {LG_ATTN_FULL, 0, 0, 0, 0, 0},
        {LG_ATTN_SINK_WINDOW, 4, 40, 0, 0, 0},
        {LG_ATTN_SINK_WINDOW, 64, 2048, 0, 0, 0},
        {LG_ATTN_SINK_WINDOW, 1, 1, 0, 0, 0},
        {LG_ATTN_BLOCK_SPARSE, 0, 0, 64, 2, 3},
        {LG_ATTN_BLOCK_SPARSE, 0, 0, 128, 2, 3},
        {LG_ATTN_BLOCK_SPARSE, 0, 0, 64, 16, 64},
        {LG_ATTN_BLOCK_SPARSE, 0, 0, 64, 0, 5},
        {LG_ATTN_BLOCK_SPARSE, 0, 0, 256, 1, 2},
    };
    const int lengths[] = {1, 63, 64, 65, 128, 191, 192, 193, 300, 1000, 4096, 5000, 131072};
    const int kvheads[] = {1, 2, 8};
    int runs = 0, fails = 0;
    for (size_t m = 0; m < sizeof masks / sizeof masks[0]; m++)
        for (size_t l = 0; l < sizeof lengths / sizeof lengths[0]; l++)
            for (size_t k = 0; k < sizeof kvheads / sizeof kvheads[0]; k++) {
                char err[256] = "", desc[96];
                runs++;
                if (!lg_cuda_attention_check_lists(&masks[m], kvheads[k], lengths[l], err, sizeof err)) {
                    lg_attn_describe(&masks[m], desc, sizeof desc);
                    printf("FAIL %s S=%d KVH=%d: %s\n", desc, lengths[l], kvheads[k], err);
                    fails++;
                }
            }
    printf("test_attention_lists: %d of %d (mask, length, KV heads) cases failed\n", fails, runs);
    return fails ? 1 : 0;
}
