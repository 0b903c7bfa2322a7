// crc32.c: slicing-by-8 CRC-32 so that checking every sequence a loader reads stays far above decode speed.
#include "crc32.h"

#include <pthread.h>
#include <string.h>

static uint32_t g_tab[8][256];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void build_tables(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        g_tab[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++) g_tab[t][i] = (g_tab[t - 1][i] >> 8) ^ g_tab[0][g_tab[t - 1][i] & 0xff];
}

uint32_t lg_crc32(uint32_t crc, const void *buf, size_t n) {
    pthread_once(&g_once, build_tables);
    const uint8_t *p = buf;
    uint32_t c = ~crc;
    while (n >= 8) {  // little-endian hosts only (x86-64, aarch64): the words are read in memory order
        uint32_t a, b;
        memcpy(&a, p, 4);
        memcpy(&b, p + 4, 4);
        a ^= c;
        c = g_tab[7][a & 0xff] ^ g_tab[6][(a >> 8) & 0xff] ^ g_tab[5][(a >> 16) & 0xff] ^ g_tab[4][a >> 24] ^
            g_tab[3][b & 0xff] ^ g_tab[2][(b >> 8) & 0xff] ^ g_tab[1][(b >> 16) & 0xff] ^ g_tab[0][b >> 24];
        p += 8;
        n -= 8;
    }
    while (n--) c = g_tab[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    return ~c;
}
