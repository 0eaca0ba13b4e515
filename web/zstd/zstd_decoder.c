/*
 * zstd_decoder.c — the page's zstd decoder: zstd's own decompressor (Debian's libzstd
 * sources, lib/common + lib/decompress, compiled with clang --target=wasm32 by
 * web/zstd/CMakeLists.txt) behind four exports that web/layer_decoder.js calls, as
 * formats/bundle/compress.c calls libzstd. Chromium's DecompressionStream has no zstd.
 *
 * Memory: the module's own linear memory. The decompression context lives in a static
 * buffer (ZSTD_initStaticDCtx), so zstd never allocates; the JS side copies a frame in
 * at zd_in(), has it decoded to zd_out(), after growing the memory to zd_in() + what it
 * needs (the exported memory).
 */
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_initStaticDCtx, ZSTD_estimateDCtxSize */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>

#include "zstd.h"

#define EXPORT(name) __attribute__((export_name(#name)))

/* What ZSTD_estimateDCtxSize() says for 1.5.x (about 160 KiB) with room to spare;
 * zd_init checks it. */
static _Alignas(64) uint8_t dctx_space[256 * 1024];
static ZSTD_DCtx *dctx;
extern uint8_t __heap_base; /* the linker's end of static data: the I/O area starts here */

/* The C library calls zstd's decompressor makes; nothing else is linked. */
void *memcpy(void *dst, const void *src, size_t n) { return __builtin_memcpy(dst, src, n); }
void *memmove(void *dst, const void *src, size_t n) { return __builtin_memmove(dst, src, n); }
void *memset(void *dst, int c, size_t n) { return __builtin_memset(dst, c, n); }
int memcmp(const void *a, const void *b, size_t n) {
  const uint8_t *p = a, *q = b;
  for (size_t i = 0; i < n; i++)
    if (p[i] != q[i]) return p[i] < q[i] ? -1 : 1;
  return 0;
}
/* zstd allocates only for contexts it creates itself and for streaming, neither of
 * which this decoder uses: an allocation here is refused, and zstd reports it as an error. */
void *malloc(size_t n) { (void)n; return NULL; }
void *calloc(size_t n, size_t size) { (void)n; (void)size; return NULL; }
void free(void *p) { (void)p; }

/* 0, or -1 when the static context does not fit its buffer. */
EXPORT(zd_init) int zd_init(void) {
  if (ZSTD_estimateDCtxSize() > sizeof dctx_space) return -1;
  dctx = ZSTD_initStaticDCtx(dctx_space, sizeof dctx_space);
  if (!dctx) return -1;
  /* the writer's window (formats/bundle/compress.c Z_WINDOW_LOG_MAX is 27 at most) */
  return ZSTD_isError(ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax, 27)) ? -1 : 0;
}

/* Where the JS side puts a frame. */
EXPORT(zd_in) uint32_t zd_in(void) { return (uint32_t)(uintptr_t)&__heap_base; }

/* The content size the frame at src (n bytes available) declares; -1: not a zstd frame
 * or no declared size (the caller rejects both, as compress.c does). */
EXPORT(zd_content_size) double zd_content_size(const void *src, uint32_t n) {
  unsigned long long cs = ZSTD_getFrameContentSize(src, n);
  if (cs == ZSTD_CONTENTSIZE_ERROR || cs == ZSTD_CONTENTSIZE_UNKNOWN) return -1;
  return (double)cs;
}

/* The bytes the frame at src spans, or -1 when it is truncated. */
EXPORT(zd_frame_size) double zd_frame_size(const void *src, uint32_t n) {
  size_t r = ZSTD_findFrameCompressedSize(src, n);
  return ZSTD_isError(r) ? -1 : (double)r;
}

/* Decodes the frame at src (n bytes) into dst (capacity cap): the bytes written, or -1
 * (zd_error names why). */
static const char *last_error = "";
EXPORT(zd_decompress) double zd_decompress(void *dst, uint32_t cap, const void *src, uint32_t n) {
  size_t r = ZSTD_decompressDCtx(dctx, dst, cap, src, n);
  if (ZSTD_isError(r)) {
    last_error = ZSTD_getErrorName(r);
    return -1;
  }
  return (double)r;
}

/* The last error's name, NUL-terminated, in the module's memory. */
EXPORT(zd_error) uint32_t zd_error(void) { return (uint32_t)(uintptr_t)last_error; }
