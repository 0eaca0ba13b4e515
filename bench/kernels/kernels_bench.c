/*
 * kernels_bench.c — the module's matvec kernels, one entry point per quant type (and one
 * per type for the batch path: n inputs through act_ + matmat_), built
 * twice by bench/kernels: to wasm32+SIMD128 (then wasm2c + clang, as m64run executes
 * it) and natively with clang -O3 -march=native (through simde). Same source, same loop.
 */
#include <stddef.h>
#include <stdint.h>

/* The i8 dot and the read-ahead hint as a model's module has them: imported in the wasm
 * build (kb_glue.c defines them next to the wasm2c output, as native_glue.c does, so they
 * inline), plain inline functions natively. */
#if defined(__wasm__)
#include <wasm_simd128.h>
__attribute__((import_module("m64"), import_name("dot_i8"))) v128_t kb_dot_i8(v128_t acc, v128_t a, v128_t b);
__attribute__((import_module("m64"), import_name("has_dot_i8"))) uint32_t kb_has_dot_i8(void);
__attribute__((import_module("m64"), import_name("prefetch"))) void kb_prefetch(const void *addr, uint32_t bytes);
__attribute__((import_module("m64"), import_name("kq_rows"))) void kb_kq_rows(uint32_t type, float *out,
                                                                            const uint8_t *w, const uint8_t *xq,
                                                                            uint32_t rows, uint32_t nb, uint32_t pairs);
__attribute__((import_module("m64"), import_name("has_kq_rows"))) uint32_t kb_has_kq_rows(void);
__attribute__((import_module("m64"), import_name("kq_mat"))) void kb_kq_mat(uint32_t type, float *out, uint32_t out_stride,
                                                                          const uint8_t *w, const uint8_t *xq,
                                                                          uint32_t xq_stride, uint32_t rows, uint32_t nb,
                                                                          uint32_t n, uint32_t pairs);
__attribute__((import_module("m64"), import_name("has_kq_mat"))) uint32_t kb_has_kq_mat(void);
#define M64_KERNELS_DOT_I8 kb_dot_i8
#define M64_KERNELS_HAS_DOT_I8 kb_has_dot_i8
#define M64_KERNELS_KQ_ROWS kb_kq_rows
#define M64_KERNELS_HAS_KQ_ROWS kb_has_kq_rows
#define M64_KERNELS_KQ_MAT kb_kq_mat
#define M64_KERNELS_HAS_KQ_MAT kb_has_kq_mat
#else
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/wasm/simd128.h>
#include "native_dot.h"
#define M64_KERNELS_DOT_I8 m64_native_dot_i8
#define M64_KERNELS_HAS_DOT_I8() 1
static inline void kb_prefetch(const void *addr, uint32_t bytes) {
  for (uint32_t off = 0; off < bytes; off += 64) __builtin_prefetch((const char *)addr + off);
}
#endif
#define M64_KERNELS_PREFETCH kb_prefetch
#include "kernels.h"
/* The K-quants as a bundle stores them, in row pairs (m64_formats.h): what decode reads,
 * and what a native host's m64.kq_rows takes four pairs at a time. */
#define matvec_q2_K matvec_q2_K_pairs
#define matvec_q3_K matvec_q3_K_pairs
#define matvec_q4_K matvec_q4_K_pairs
#define matvec_q5_K matvec_q5_K_pairs
#define matvec_q6_K matvec_q6_K_pairs

#if defined(__wasm__)
#define BENCH_EXPORT(name) __attribute__((export_name(name)))
#else
#define BENCH_EXPORT(name)
#endif

/* Runs `iters` matvecs of a rows x cols matrix; returns out[0] so nothing is optimized away. */
#define X(id, sfx, name, act)                                                              \
  BENCH_EXPORT("bench_" #sfx)                                                              \
  float bench_##sfx(float *out, const uint8_t *w, const float *x, uint8_t *scratch,        \
                    uint32_t rows, uint32_t cols, uint32_t iters) {                        \
    for (uint32_t i = 0; i < iters; i++) matvec_##sfx(out, w, x, scratch, rows, cols);     \
    return out[0];                                                                         \
  }
M64_KERNEL_TYPES(X)
#undef X

/* The prefill path, as model.h's matmul_rows runs it on one thread: each of n inputs
 * (x: n rows of cols) prepared once, then the rows in chunks of about 256 KiB, each chunk
 * against all n inputs. scratch holds n activations M64_ACT_STRIDE(cols) apart. A model's
 * products have constant cols (the inputs' stride folds into load offsets): the two bench
 * shapes' cols get a copy of their own, as a generated model.c has. */
#define BENCH_BATCH_BODY(sfx, COLS)                                                            \
  for (uint32_t i = 0; i < iters; i++) {                                                       \
    for (uint32_t t = 0; t < n; t++)                                                           \
      act_##sfx(scratch + (size_t)t * M64_ACT_STRIDE(COLS), x + (size_t)t * (COLS), (COLS));   \
    for (uint32_t c0 = 0; c0 < rows; c0 += chunk)                                              \
      matmat_##sfx(out + c0, rows, w + (size_t)c0 * row_bytes, scratch,                        \
                   rows - c0 < chunk ? rows - c0 : chunk, (COLS), n);                          \
  }
#define X(id, sfx, name, act)                                                                  \
  BENCH_EXPORT("bench_batch_" #sfx)                                                            \
  float bench_batch_##sfx(float *out, const uint8_t *w, const float *x, uint8_t *scratch,      \
                          uint32_t rows, uint32_t cols, uint32_t row_bytes, uint32_t n,        \
                          uint32_t iters) {                                                    \
    uint32_t chunk = (256u * 1024u / row_bytes) & ~3u;                                         \
    if (chunk < 4) chunk = 4;                                                                  \
    if (cols == 4096u) {                                                                       \
      BENCH_BATCH_BODY(sfx, 4096u)                                                             \
    } else if (cols == 11008u) {                                                               \
      BENCH_BATCH_BODY(sfx, 11008u)                                                            \
    } else {                                                                                   \
      BENCH_BATCH_BODY(sfx, cols)                                                              \
    }                                                                                          \
    return out[0];                                                                             \
  }
M64_KERNEL_TYPES(X)
#undef X
#undef BENCH_BATCH_BODY

#if defined(__wasm__)
extern unsigned char __heap_base;
/* Grows memory to hold n more bytes at the heap top; returns their address (64-aligned). */
static uintptr_t top;
BENCH_EXPORT("bench_alloc") uint32_t bench_alloc(uint32_t n) {
  if (!top) top = ((uintptr_t)&__heap_base + 63) & ~(uintptr_t)63;
  uint64_t end = (uint64_t)top + n;
  uint64_t have = (uint64_t)__builtin_wasm_memory_size(0) * 65536;
  if (end > have && __builtin_wasm_memory_grow(0, (size_t)((end - have + 65535) / 65536)) == (size_t)-1)
    return 0;
  uint32_t p = (uint32_t)top;
  top = (end + 63) & ~(uint64_t)63;
  return p;
}
void *memcpy(void *d, const void *s, size_t n) { return __builtin_memcpy(d, s, n); }
void *memset(void *d, int c, size_t n) { return __builtin_memset(d, c, n); }
#endif
