/* CRC-32 (the IEEE 802.3 / zlib polynomial) for checking spool records. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Continues a CRC over more bytes: start with crc = 0, feed pieces in order. The result for a
 * whole buffer equals hg_crc32(buffer). */
uint32_t hg_crc32_update(uint32_t crc, const void *data, size_t len);

/* The CRC-32 of one buffer; "123456789" gives 0xCBF43926. */
uint32_t hg_crc32(const void *data, size_t len);
