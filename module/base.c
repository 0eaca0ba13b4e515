/* base.c — freestanding allocator and math for the module (see base.h). */
#include "base.h"
#include "m64_module.h"

/* ---- allocation ---- */
#if defined(__wasm__)
extern unsigned char __heap_base;
static uintptr_t heap_top;

void *mm_alloc(uint32_t n) {
  if (!heap_top) heap_top = (uintptr_t)&__heap_base;
  /* 64-bit arithmetic: a full 4 GiB memory's size does not fit in 32 bits */
  uint64_t p = ((uint64_t)heap_top + 63) & ~(uint64_t)63;
  uint64_t end = p + n;
  if (end > 0xFFFFFFFFull) return NULL;
  uint64_t have = (uint64_t)__builtin_wasm_memory_size(0) * 65536ull;
  if (end > have) {
    size_t pages = (size_t)((end - have + 65535) / 65536);
    if (__builtin_wasm_memory_grow(0, pages) == (size_t)-1) return NULL;
  }
  heap_top = (uintptr_t)end;
  return (void *)p;
}
uint32_t mm_heap_top(void) {
  return (uint32_t)(heap_top ? heap_top : (uintptr_t)&__heap_base);
}

/* clang may still emit calls to these for struct copies and large loops. */
void *memcpy(void *d, const void *s, size_t n) { return __builtin_memcpy(d, s, n); }
void *memset(void *d, int c, size_t n) { return __builtin_memset(d, c, n); }
void *memmove(void *d, const void *s, size_t n) { return __builtin_memmove(d, s, n); }
#else
#include <stdlib.h>
static uint64_t native_allocated;
void *mm_alloc(uint32_t n) {
  void *p = NULL;
  if (posix_memalign(&p, 64, n ? n : 64)) return NULL;
  native_allocated += n;
  return p;
}
uint32_t mm_heap_top(void) { return (uint32_t)native_allocated; }
#endif

void mm_log_str(const char *msg) { m64_host_log(msg, (uint32_t)mm_strlen(msg)); }

/* ---- math ----
 * exp: range reduction x = k ln2 + r, |r| <= ln2/2, then a degree-11 Taylor polynomial
 * in double, accurate to about 1 ulp of float; enough that softmax/SiLU match libm. */
double mm_exp(double x) {
  if (x != x) return x;
  if (x > 709.0) return __builtin_inf();
  if (x < -745.0) return 0.0;
  const double ln2 = 0.69314718055994530942;
  double kf = __builtin_floor(x / ln2 + 0.5);
  double r = x - kf * ln2;
  double p = 1.0, term = 1.0;
  for (int i = 1; i <= 13; i++) {
    term *= r / i;
    p += term;
  }
  int k = (int)kf;
  /* scale by 2^k in two steps so subnormal results stay representable */
  int k1 = k / 2, k2 = k - k1;
  union { double d; uint64_t u; } s1 = {0}, s2 = {0};
  s1.u = (uint64_t)(k1 + 1023) << 52;
  s2.u = (uint64_t)(k2 + 1023) << 52;
  return p * s1.d * s2.d;
}
float mm_expf(float x) { return (float)mm_exp((double)x); }
/* tanh in double from exp, rounded once to float (near 0, its series: e^2x - 1 cancels). */
float mm_tanhf(float x) {
  const double d = x;
  if (d > 20.0) return 1.0f;
  if (d < -20.0) return -1.0f;
  if (__builtin_fabs(d) < 1e-3) return (float)(d - d * d * d / 3.0);
  const double e = mm_exp(2.0 * d);
  return (float)((e - 1.0) / (e + 1.0));
}

double mm_log(double x) {
  if (x < 0 || x != x) return __builtin_nan("");
  if (x == 0) return -__builtin_inf();
  if (x == __builtin_inf()) return x;
  union { double d; uint64_t u; } v = {x};
  int e = (int)((v.u >> 52) & 0x7ff);
  if (e == 0) { /* subnormal: normalise */
    v.d = x * 18014398509481984.0; /* 2^54 */
    e = (int)((v.u >> 52) & 0x7ff) - 54;
  }
  e -= 1023;
  v.u = (v.u & 0x000fffffffffffffull) | 0x3ff0000000000000ull; /* m in [1,2) */
  double m = v.d;
  if (m > 1.41421356237309504880) { m *= 0.5; e++; }
  /* log(m) = 2 atanh(t), t = (m-1)/(m+1), |t| < 0.172 */
  double t = (m - 1) / (m + 1), t2 = t * t, sum = 0, pw = t;
  for (int i = 1; i < 40; i += 2) {
    sum += pw / i;
    pw *= t2;
  }
  return 2 * sum + e * 0.69314718055994530942;
}
double mm_pow(double x, double y) {
  if (y == 0) return 1.0;
  if (x == 0) return y > 0 ? 0.0 : __builtin_inf();
  return mm_exp(y * mm_log(x));
}

/* sin/cos: reduce to [-pi/4, pi/4] by quadrant (Cody-Waite with a split pi/2), then
 * Taylor series in double. Positions * frequencies stay far below 2^30, where this is
 * accurate to double rounding. */
void mm_sincos(double x, double *s, double *c) {
  const double pio2_hi = 1.57079632673412561417e+00;
  const double pio2_lo = 6.07710050650619224932e-11;
  double kf = __builtin_floor(x / 1.57079632679489661923 + 0.5);
  double r = (x - kf * pio2_hi) - kf * pio2_lo;
  double r2 = r * r;
  double sn = r, cs = 1.0, ts = r, tc = 1.0;
  for (int i = 1; i <= 12; i++) {
    ts *= -r2 / ((2 * i) * (2 * i + 1));
    tc *= -r2 / ((2 * i - 1) * (2 * i));
    sn += ts;
    cs += tc;
  }
  long long q = (long long)kf & 3;
  if (kf < 0) q = ((long long)kf % 4 + 4) & 3;
  switch (q) {
    case 0: *s = sn; *c = cs; break;
    case 1: *s = cs; *c = -sn; break;
    case 2: *s = -sn; *c = -cs; break;
    default: *s = -cs; *c = sn; break;
  }
}
