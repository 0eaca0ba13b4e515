/* kernels_native.c — see kernels_native.h. Dispatches over every row of kernel_types.h. */
#include "kernels_native.h"

#include <stdlib.h>

/* The K-quants' i8 dot (m64_module.h's m64.dot_i8) as a switch: kn_set_dot_i8 picks the
 * i16 path, the i8 path through native_dot.h (what an AOT module inlines for this CPU:
 * this file is built with -march=native) or through the plain SIMD128 dot. */
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/wasm/simd128.h>
#include "native_dot.h"
static int kn_dot_mode = KN_DOT_NATIVE;
static inline v128_t kq_dot_i8_plain(v128_t acc, v128_t a, v128_t b);
static inline v128_t kn_dot(v128_t acc, v128_t a, v128_t b) {
  return kn_dot_mode == KN_DOT_PLAIN ? kq_dot_i8_plain(acc, a, b) : m64_native_dot_i8(acc, a, b);
}
#define M64_KERNELS_DOT_I8 kn_dot
/* m64.f16_*: a native host's one-instruction f16 steps, where this CPU has them, when
 * kn_set_f16_native(1) (kernels_init reads the switch) */
#if defined(M64_NATIVE_F16)
static int kn_f16_mode;
#define M64_KERNELS_F16_ROUND m64_native_f16_round
#define M64_KERNELS_F16_WIDEN_LO m64_native_f16_widen_lo
#define M64_KERNELS_F16_WIDEN_HI m64_native_f16_widen_hi
#define M64_KERNELS_HAS_F16() kn_f16_mode
#endif
#define M64_KERNELS_HAS_DOT_I8() (kn_dot_mode != KN_DOT_I16)
/* KN_DOT_ROWS: Q4_K/Q6_K through the native host's m64.kq_rows (native_kq.h) */
#include "native_kq.h"
#if defined(M64_NATIVE_KQ)
#define M64_KERNELS_HAS_KQ_ROWS() (kn_dot_mode == KN_DOT_ROWS || kn_dot_mode == KN_DOT_ROWS256)
#define M64_KERNELS_KQ_ROWS(type, out, w, xq, rows, nb, pairs) \
  m64_native_kq_rows_width(type, out, w, xq, rows, nb, pairs, kn_dot_mode == KN_DOT_ROWS)
#endif
#if defined(M64_NATIVE_KQ512) /* and their prefill (m64.kq_mat), with the widest rows */
#define M64_KERNELS_HAS_KQ_MAT() (kn_dot_mode == KN_DOT_ROWS)
#define M64_KERNELS_KQ_MAT m64_native_kq_mat
#endif
int kn_has_kq_mat(void) {
#if defined(M64_NATIVE_KQ512)
  return 1;
#else
  return 0;
#endif
}
int kn_has_kq_rows(void) {
#if defined(M64_NATIVE_KQ)
  return 1;
#else
  return 0;
#endif
}
#include "kernels.h"

void kn_set_dot_i8(int mode) { kn_dot_mode = mode; }
int kn_set_f16_native(int on) {
#if defined(M64_NATIVE_F16)
  kn_f16_mode = on;
  kernels_init();
  return 1;
#else
  (void)on;
  return 0;
#endif
}
void kn_f16x8_to_f32x8(float out[8], const uint16_t h[8]) {
  v128_t lo, hi;
  f16x8_to_f32(wasm_v128_load(h), &lo, &hi);
  wasm_v128_store(out, lo);
  wasm_v128_store(out + 4, hi);
}

void kn_dot_i8(int32_t out[4], const int32_t acc[4], const int8_t a[16], const uint8_t b[16], int mode) {
  const v128_t c = wasm_v128_load(acc), va = wasm_v128_load(a), vb = wasm_v128_load(b);
  wasm_v128_store(out, mode == KN_DOT_PLAIN ? kq_dot_i8_plain(c, va, vb) : m64_native_dot_i8(c, va, vb));
}

int kn_supported(uint32_t type) {
#define X(id, sfx, name, act) if (type == id) return 1;
  M64_KERNEL_TYPES(X)
#undef X
  return 0;
}

void kn_matvec(uint32_t type, float *out, const uint8_t *w, const float *x, uint32_t rows,
               uint32_t cols) {
  uint8_t *scratch = malloc(M64_SCRATCH_BYTES(cols));
#define X(id, sfx, name, act) \
  if (type == id) { matvec_##sfx(out, w, x, scratch, rows, cols); free(scratch); return; }
  M64_KERNEL_TYPES(X)
#undef X
  abort();
}

void kn_matmat(uint32_t type, float *out, const uint8_t *w, const float *x, uint32_t rows,
               uint32_t cols, uint32_t n) {
  const size_t stride = M64_ACT_STRIDE(cols);
  uint8_t *xq = malloc(stride * n);
#define X(id, sfx, name, act)                                                                  \
  if (type == id) {                                                                            \
    for (uint32_t t = 0; t < n; t++) act_##sfx(xq + t * stride, x + (size_t)t * cols, cols); \
    matmat_##sfx(out, rows, w, xq, rows, cols, n);                                             \
    free(xq);                                                                                  \
    return;                                                                                    \
  }
  M64_KERNEL_TYPES(X)
#undef X
  abort();
}

/* The types with a row-pair layout: the K-quants (Q8_K activations). */
#define KN_PAIRS(X) X(10, q2_K) X(11, q3_K) X(12, q4_K) X(13, q5_K) X(14, q6_K) X(23, iq4_xs)

int kn_matvec_pairs(uint32_t type, float *out, const uint8_t *w, const float *x, uint32_t rows,
                    uint32_t cols) {
  uint8_t *scratch = malloc(M64_SCRATCH_BYTES(cols));
#define X(id, sfx) \
  if (type == id) { matvec_##sfx##_pairs(out, w, x, scratch, rows, cols); free(scratch); return 1; }
  KN_PAIRS(X)
#undef X
  free(scratch);
  return 0;
}

int kn_matmat_pairs(uint32_t type, float *out, const uint8_t *w, const float *x, uint32_t rows,
                    uint32_t cols, uint32_t n) {
  const size_t stride = M64_ACT_STRIDE(cols);
  uint8_t *xq = malloc(stride * n);
#define X(id, sfx)                                                                                      \
  if (type == id) {                                                                                     \
    for (uint32_t t = 0; t < n; t++) act_##sfx##_pairs(xq + t * stride, x + (size_t)t * cols, cols);   \
    matmat_##sfx##_pairs(out, rows, w, xq, rows, cols, n);                                              \
    free(xq);                                                                                           \
    return 1;                                                                                           \
  }
  KN_PAIRS(X)
#undef X
  free(xq);
  return 0;
}

void kn_dequant_row(uint32_t type, float *out, const uint8_t *row, uint32_t n) {
#define X(id, sfx, name, act) \
  if (type == id) { dequant_row_##sfx(out, row, n); return; }
  M64_KERNEL_TYPES(X)
#undef X
  abort();
}

float kn_f16_to_f32(uint16_t h) { return f16_to_f32(h); }
uint16_t kn_f32_to_f16(float f) { return f32_to_f16(f); }
void kn_round_f16x4(float out[4], const float x[4]) {
  wasm_v128_store(out, f32x4_round_f16(wasm_v128_load(x)));
}
void kn_quantize_q8_0(uint8_t *xq, const float *x, uint32_t n) { quantize_q8_0(xq, x, n); }
