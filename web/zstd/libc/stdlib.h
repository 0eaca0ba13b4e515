/* stdlib.h for the page's zstd decoder (zstd_decoder.c): zstd's allocation calls, which
 * never run there (its context is static); there is no libc in it. */
#ifndef M64_ZSTD_STDLIB_H
#define M64_ZSTD_STDLIB_H
#include <stddef.h>
void *malloc(size_t n);
void *calloc(size_t n, size_t size);
void free(void *p);
#endif
