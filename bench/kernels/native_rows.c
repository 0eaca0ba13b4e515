/*
 * native_rows.c — single-thread GB/s of a native host's Q4_K/Q5_K/Q6_K rows (module/native_kq.h,
 * m64.kq_rows) called directly, without the wasm module around them: the row-pair layout a
 * bundle stores, one path at a time. Built by bench/kernels/rows.
 *   native_rows TYPE(12|13|14) ROWS COLS PATH [SECONDS]
 * PATH: 1 the widest this build has (m64run's), 0 the 256-bit one, 2 the 512-bit one row
 * pair at a time (without the groups of four pairs). Prints "<type> <rows>x<cols> path <p> <GB/s>".
 */
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "native_kq.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
#if defined(M64_NATIVE_KQ)
  if (argc < 5) {
    fprintf(stderr, "usage: native_rows TYPE(12|13|14) ROWS COLS PATH [SECONDS]\n");
    return 2;
  }
  const uint32_t type = (uint32_t)atoi(argv[1]), rows = (uint32_t)atoi(argv[2]), cols = (uint32_t)atoi(argv[3]);
  const int path = atoi(argv[4]);
  const double secs = argc > 5 ? atof(argv[5]) : 0.5;
  if (type < 12 || type > 14 || rows < 2 || cols < 256 || cols % 256) {
    fprintf(stderr, "native_rows: TYPE 12 (Q4_K), 13 (Q5_K) or 14 (Q6_K), ROWS >= 2, COLS a multiple of 256\n");
    return 2;
  }
  const uint32_t nb = cols / 256;
  const size_t bytes = type == 12 ? 144 : type == 13 ? 176 : 210, total = (size_t)rows * nb * bytes;
  uint8_t *w = malloc(total), *xq = malloc((size_t)nb * NKQ_ACT_BYTES);
  float *out = malloc(rows * sizeof(float));
  if (!w || !xq || !out) return 1;
  uint64_t s = 88172645463325252ull;
  for (size_t i = 0; i < total; i++) s ^= s << 13, s ^= s >> 7, s ^= s << 17, w[i] = (uint8_t)(s >> 24);
  for (size_t i = 0; i < total; i += bytes) { /* ordinary small f16 scales, not NaNs */
    const uint16_t h = (uint16_t)(0x2000 | w[i + 1]);
    memcpy(w + i + (type == 14 ? 208 : 0), &h, 2);
    if (type != 14) memcpy(w + i + 2, &h, 2);
  }
  for (size_t i = 0; i < (size_t)nb * NKQ_ACT_BYTES; i++) s ^= s << 13, s ^= s >> 7, s ^= s << 17, xq[i] = (uint8_t)((s >> 24) & 0x7f);
  for (uint32_t b = 0; b < nb; b++) {
    const float d = 0.01f;
    memcpy(xq + (size_t)b * NKQ_ACT_BYTES, &d, 4);
  }
  double best = 0;
  for (int round = 0; round < 3; round++) {
    const double t0 = now();
    long it = 0;
    do {
      m64_native_kq_rows_width(type, out, w, xq, rows, nb, 1, path);
      __asm__ volatile("" ::"r"(out) : "memory"); /* each pass's results are used */
      it++;
    } while (now() - t0 < secs);
    const double gbs = (double)total * it / (now() - t0) / 1e9;
    if (gbs > best) best = gbs;
  }
  printf("%s %ux%u path %d %.2f\n", type == 12 ? "Q4_K" : type == 13 ? "Q5_K" : "Q6_K", rows, cols, path, best);
  return 0;
#else
  (void)argc, (void)argv;
  fprintf(stderr, "native_rows: this build has no native rows (needs AVX2 and F16C)\n");
  return 1;
#endif
}
