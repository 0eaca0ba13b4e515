/* kernels_native.c — see kernels_native.h. Dispatches over every row of kernel_types.h. */
#include "kernels_native.h"

#include <stdlib.h>

#include "kernels.h"

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
