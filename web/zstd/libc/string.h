/* string.h for the page's zstd decoder (zstd_decoder.c): the four calls zstd's decompressor
 * makes, implemented there with wasm's bulk-memory instructions; there is no libc in it. */
#ifndef M64_ZSTD_STRING_H
#define M64_ZSTD_STRING_H
#include <stddef.h>
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
#endif
