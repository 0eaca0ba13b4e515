/* kernels_native.c — see kernels_native.h. */
#include "kernels_native.h"

#include <stdlib.h>

#include "kernels.h"
#include "m64_formats.h"

void kn_matvec(uint32_t type, float *out, const uint8_t *w, const float *x, uint32_t rows,
               uint32_t cols) {
  float *xr = malloc(cols * sizeof(float));
  uint8_t *xq = malloc((cols / 32 + 1) * 34);
  switch (type) {
    case M64_GGML_F32: matvec_f32(out, w, x, rows, cols); break;
    case M64_GGML_F16: matvec_f16(out, w, x, xr, rows, cols); break;
    case M64_GGML_Q8_0: matvec_q8_0(out, w, x, xq, rows, cols); break;
    case M64_GGML_Q4_0: matvec_q4_0(out, w, x, xq, rows, cols); break;
    default: abort();
  }
  free(xr);
  free(xq);
}

void kn_dequant_row(uint32_t type, float *out, const uint8_t *row, uint32_t n) {
  switch (type) {
    case M64_GGML_F32: dequant_row_f32(out, row, n); break;
    case M64_GGML_F16: dequant_row_f16(out, row, n); break;
    case M64_GGML_Q8_0: dequant_row_q8_0(out, row, n); break;
    case M64_GGML_Q4_0: dequant_row_q4_0(out, row, n); break;
    default: abort();
  }
}

float kn_f16_to_f32(uint16_t h) { return f16_to_f32(h); }
uint16_t kn_f32_to_f16(float f) { return f32_to_f16(f); }
void kn_quantize_q8_0(uint8_t *xq, const float *x, uint32_t n) { quantize_q8_0(xq, x, n); }
