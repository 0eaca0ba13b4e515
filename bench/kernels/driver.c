/*
 * driver.c — times kernels_bench.c's entry points. Built twice by bench/kernels:
 *   BENCH_WASM defined: calls the wasm2c-compiled module through our wasm runtime;
 *   otherwise: calls the natively compiled functions directly.
 * Prints one line per (type, shape): "<type> <rows>x<cols> <GB/s of weights>".
 * With M64_BENCH_BATCH=n (2..32) in the environment it times the batch path on n inputs
 * instead and prints the weight bytes per input over the time per input, so the figure
 * compares with the matvec's: n times the weight bytes, read once.
 * Weights are real quantized data (random normal values through the reference
 * quantizers), so scales are ordinary floats, as in a model.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernel_types.h"
#include "m64_formats.h"
#include "quant.h"

#ifdef BENCH_WASM
#include "m64_wasm.h"
#include "kb.h" /* wasm2c output, module name "kb" */
struct w2c_env;
static w2c_kb inst;
extern uint8_t *kb_memory_base; /* kb_glue.c's m64.prefetch reads from it */
static uint8_t *base;
#define PTR(off) (base + (off))
#else
#define X(id, sfx, name, act)                                                                   \
  float bench_##sfx(float *out, const uint8_t *w, const float *x, uint8_t *scratch, uint32_t rows, \
                    uint32_t cols, uint32_t iters);
M64_KERNEL_TYPES(X)
#undef X
#define X(id, sfx, name, act)                                                                         \
  float bench_batch_##sfx(float *out, const uint8_t *w, const float *x, uint8_t *scratch, uint32_t rows, \
                          uint32_t cols, uint32_t row_bytes, uint32_t n, uint32_t iters);
M64_KERNEL_TYPES(X)
#undef X
#endif

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng = 88172645463325252ull;
static float gauss(void) { /* sum of uniforms: cheap and bounded */
  float s = 0;
  for (int i = 0; i < 4; i++) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    s += (float)(rng >> 40) / (float)(1 << 24);
  }
  return (s - 2.0f) * 0.05f;
}

typedef struct job { uint32_t type, rows, cols, row_bytes, n, iters; uint64_t w, x, out, scratch; float r; } job;

static float run(job *j) {
#ifdef BENCH_WASM
#define X(id, sfx, name, act)                                                                                 \
  if (j->type == id && j->n > 1)                                                                             \
    return w2c_kb_bench_batch_##sfx(&inst, (uint32_t)j->out, (uint32_t)j->w, (uint32_t)j->x, (uint32_t)j->scratch, \
                                    j->rows, j->cols, j->row_bytes, j->n, j->iters);                         \
  if (j->type == id) return w2c_kb_bench_##sfx(&inst, (uint32_t)j->out, (uint32_t)j->w, (uint32_t)j->x, (uint32_t)j->scratch, j->rows, j->cols, j->iters);
#else
#define X(id, sfx, name, act)                                                                                 \
  if (j->type == id && j->n > 1)                                                                             \
    return bench_batch_##sfx((float *)j->out, (const uint8_t *)j->w, (const float *)j->x, (uint8_t *)j->scratch, \
                             j->rows, j->cols, j->row_bytes, j->n, j->iters);                                \
  if (j->type == id) return bench_##sfx((float *)j->out, (const uint8_t *)j->w, (const float *)j->x, (uint8_t *)j->scratch, j->rows, j->cols, j->iters);
#endif
  M64_KERNEL_TYPES(X)
#undef X
  return 0;
}

#ifdef BENCH_WASM
static void thunk(void *p) { job *j = p; j->r = run(j); }
static void alloc_thunk(void *p) { uint64_t *a = p; a[1] = w2c_kb_bench_alloc(&inst, (uint32_t)a[0]); }
#endif

static uint64_t alloc_bytes(uint64_t n) {
#ifdef BENCH_WASM
  uint64_t a[2] = {n, 0};
  if (m64_wasm_call(alloc_thunk, a) != WASM_RT_TRAP_NONE || !a[1]) {
    fprintf(stderr, "bench: wasm allocation of %llu bytes failed\n", (unsigned long long)n);
    exit(1);
  }
  base = w2c_kb_memory(&inst)->data;
  kb_memory_base = base;
  return a[1];
#else
  void *p = NULL;
  if (posix_memalign(&p, 64, n)) exit(1);
  return (uint64_t)(uintptr_t)p;
#endif
}
#ifndef BENCH_WASM
#define PTR(off) ((uint8_t *)(uintptr_t)(off))
#endif

int main(int argc, char **argv) {
  const char *only = argc > 1 && strcmp(argv[1], "all") != 0 ? argv[1] : NULL;
  const double min_seconds = argc > 2 ? atof(argv[2]) : 0.6;
  const char *batch = getenv("M64_BENCH_BATCH");
  const uint32_t n = batch && atoi(batch) > 1 ? (uint32_t)atoi(batch) : 1;
  if (n > M64_MAX_BATCH) {
    fprintf(stderr, "bench: M64_BENCH_BATCH above %u\n", M64_MAX_BATCH);
    return 2;
  }
#ifdef BENCH_WASM
  wasm_rt_init();
  wasm2c_kb_instantiate(&inst, NULL); /* the m64 imports (kb_glue.c) ignore their instance */
#endif
  uint32_t shapes[2][2] = {{4096, 4096}, {11008, 4096}};
  size_t nshapes = 2;
  const char *shape = getenv("M64_BENCH_SHAPE"); /* "ROWSxCOLS": one shape instead */
  if (shape) {
    if (sscanf(shape, "%ux%u", &shapes[0][0], &shapes[0][1]) != 2 || !shapes[0][0] || shapes[0][1] % 256) {
      fprintf(stderr, "bench: M64_BENCH_SHAPE wants ROWSxCOLS, cols a multiple of 256\n");
      return 2;
    }
    nshapes = 1;
  }
  static const struct { uint32_t id; const char *name; } types[] = {
#define X(id, sfx, name, act) {id, name},
      M64_KERNEL_TYPES(X)
#undef X
  };
  for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
    if (only && strcmp(only, types[t].name) != 0) continue;
    for (size_t s = 0; s < nshapes; s++) {
      const uint32_t rows = shapes[s][0], cols = shapes[s][1];
      const uint64_t row_bytes = m64_ref_row_bytes(types[t].id, cols);
      if (!row_bytes || !m64_ref_type_supported(types[t].id)) {
        printf("%s %ux%u skipped (no reference quantizer)\n", types[t].name, rows, cols);
        continue;
      }
      job j = {.type = types[t].id, .rows = rows, .cols = cols, .row_bytes = (uint32_t)row_bytes, .n = n};
      j.w = alloc_bytes(row_bytes * rows);
      j.x = alloc_bytes((uint64_t)n * cols * 4);
      j.out = alloc_bytes((uint64_t)n * rows * 4);
      j.scratch = alloc_bytes(n > 1 ? M64_BATCH_SCRATCH_BYTES(cols) : M64_SCRATCH_BYTES(cols));
      float *row = malloc(cols * sizeof(float));
      for (uint32_t r = 0; r < rows; r++) {
        for (uint32_t c = 0; c < cols; c++) row[c] = gauss();
        m64_ref_quantize_row(types[t].id, row, PTR(j.w) + (uint64_t)r * row_bytes, cols);
      }
      for (uint32_t c = 0; c < n * cols; c++) ((float *)PTR(j.x))[c] = gauss() * 20;
      free(row);
      /* warm up, then as many iterations as fill min_seconds; best of 3 */
      j.iters = 1;
#ifdef BENCH_WASM
      m64_wasm_call(thunk, &j);
#else
      run(&j);
#endif
      double best = 1e30;
      for (int rep = 0; rep < 3; rep++) {
        double t0 = now(), dt;
        j.iters = 0;
        uint32_t step = 1;
        do {
          job k = j;
          k.iters = step;
#ifdef BENCH_WASM
          if (m64_wasm_call(thunk, &k) != WASM_RT_TRAP_NONE) { fprintf(stderr, "trap\n"); return 1; }
#else
          run(&k);
#endif
          j.iters += step;
          dt = now() - t0;
          step *= 2;
        } while (dt < min_seconds / 3);
        double per = dt / j.iters;
        if (per < best) best = per;
      }
      printf("%s %ux%u %.2f\n", types[t].name, rows, cols, (double)row_bytes * rows * n / best / 1e9);
      fflush(stdout);
    }
  }
  return 0;
}
