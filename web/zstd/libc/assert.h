/* assert.h for the page's zstd decoder (zstd_decoder.c): assertions off, as in a release
 * libzstd (NDEBUG); there is no libc in it. */
#ifndef M64_ZSTD_ASSERT_H
#define M64_ZSTD_ASSERT_H
#define assert(x) ((void)0)
#endif
