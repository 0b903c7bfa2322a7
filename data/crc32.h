// crc32.h: CRC-32 (IEEE 802.3, reflected 0xEDB88320, the one zlib.crc32 computes): per-sequence shard checksums.
#pragma once
#include <stddef.h>
#include <stdint.h>

// crc = lg_crc32(0, p, n) for a whole buffer; pass the previous result to continue over more bytes.
uint32_t lg_crc32(uint32_t crc, const void *p, size_t n);
