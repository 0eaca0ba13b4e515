/* internal.h — helpers shared by the formats/ sources; not part of the public API. */
#ifndef M64_FORMATS_INTERNAL_H
#define M64_FORMATS_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include "m64_formats.h"

/* File bytes are read through these, never through struct casts: no alignment or
 * endianness assumptions about the mapping. */
static inline uint16_t m64__rd_u16(const uint8_t *p) {
  return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t m64__rd_u32(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
         ((uint32_t)p[3] << 24);
}
static inline uint64_t m64__rd_u64(const uint8_t *p) {
  return (uint64_t)m64__rd_u32(p) | ((uint64_t)m64__rd_u32(p + 4) << 32);
}
static inline void m64__wr_u32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline void m64__wr_u64(uint8_t *p, uint64_t v) {
  m64__wr_u32(p, (uint32_t)v);
  m64__wr_u32(p + 4, (uint32_t)(v >> 32));
}

/* Overflow-checked arithmetic: return nonzero on overflow. */
static inline int m64__add_ovf(uint64_t a, uint64_t b, uint64_t *r) { return __builtin_add_overflow(a, b, r); }
static inline int m64__mul_ovf(uint64_t a, uint64_t b, uint64_t *r) { return __builtin_mul_overflow(a, b, r); }

/* Rounds v up to a multiple of the power of two a; nonzero on overflow. */
static inline int m64__align_up(uint64_t v, uint64_t a, uint64_t *r) {
  uint64_t t;
  if (m64__add_ovf(v, a - 1, &t)) return 1;
  *r = t & ~(a - 1);
  return 0;
}
static inline int m64__is_pow2(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

/* ---- file I/O (common/io.c). All report errno text; ENOSPC/EDQUOT become M64_ENOSPC. */
int m64__errno_code(int err);
/* Maps a whole regular file read-only. A 0-byte file is an M64_EFORMAT error. */
int m64__map_file(const char *path, const uint8_t **base, size_t *size, m64_err *e);
void m64__unmap_file(const uint8_t *base, size_t size);
int m64__pwrite_all(int fd, const void *buf, size_t n, uint64_t off, const char *path, m64_err *e);
int m64__pread_all(int fd, void *buf, size_t n, uint64_t off, const char *path, m64_err *e);
/* "<path>.tmp.<pid>" in a fresh malloc'd string, or NULL. */
char *m64__temp_path(const char *path);
/* fsync(fd), then rename(tmp, path), then fsync of the directory (best effort). */
int m64__sync_and_rename(int fd, const char *tmp, const char *path, m64_err *e);

/* ---- hashing of names for lookup tables */
static inline uint64_t m64__fnv1a(const void *p, size_t n) {
  const uint8_t *b = (const uint8_t *)p;
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

#endif
