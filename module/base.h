/*
 * base.h — what module code uses instead of libc. The module is freestanding wasm32:
 * no libc, no malloc. The same sources also compile natively (tests, kernel benchmarks),
 * where these map onto libc.
 */
#ifndef M64_MODULE_BASE_H
#define M64_MODULE_BASE_H

#include <stddef.h>
#include <stdint.h>

/* Workspace allocation: 64-byte aligned, never freed (the module's state lives as long as
 * the instance). Returns NULL when the memory cannot grow (the workspace limit). */
void *mm_alloc(uint32_t n);
/* Bytes allocated so far (the module's heap top), for m64_state_bytes accounting. */
uint32_t mm_heap_top(void);

#define mm_memcpy(d, s, n) __builtin_memcpy((d), (s), (n))
#define mm_memset(d, c, n) __builtin_memset((d), (c), (n))
#define mm_memmove(d, s, n) __builtin_memmove((d), (s), (n))
static inline int mm_memcmp(const void *a, const void *b, size_t n) {
  const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;
  for (size_t i = 0; i < n; i++)
    if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
  return 0;
}
static inline size_t mm_strlen(const char *s) {
  size_t n = 0;
  while (s[n]) n++;
  return n;
}

/* Math: sqrt is a wasm instruction; exp/sin/cos/pow are implemented in base.c so that
 * the wasm and native builds compute the same values. */
#define mm_sqrtf(x) __builtin_sqrtf(x)
#define mm_fabsf(x) __builtin_fabsf(x)
float mm_expf(float x);
float mm_tanhf(float x);
double mm_exp(double x);
double mm_log(double x);
double mm_pow(double x, double y);
void mm_sincos(double x, double *s, double *c);

/* Log a message through the host (m64.log). */
void mm_log_str(const char *msg);

#endif
