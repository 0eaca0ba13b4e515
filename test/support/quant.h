/*
 * quant.h — reference (scalar, readable) conversions between F32 and the ggml tensor
 * types the synthetic generator writes and the oracle reads. One table row per type, so
 * adding Q4_K / Q6_K later means adding two functions and one row.
 *
 * Layouts follow ggml:
 *   F16   IEEE binary16, round-to-nearest-even on the way in.
 *   Q8_0  blocks of 32: f16 d, int8 q[32];            x = q * d,       d = amax / 127.
 *   Q4_0  blocks of 32: f16 d, uint8 nibbles[16];     x = (q - 8) * d, d = max / -8
 *         (max = the element of largest magnitude, sign kept); byte j holds element j in
 *         its low nibble and element j + 16 in its high nibble.
 */
#ifndef M64_SUPPORT_QUANT_H
#define M64_SUPPORT_QUANT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

uint16_t m64_ref_f32_to_f16(float f);
float m64_ref_f16_to_f32(uint16_t h);

/* 1 if the type can be quantized and dequantized by the functions below. */
int m64_ref_type_supported(uint32_t type);
/* Bytes of n elements of the type (n a multiple of the block size); 0 if unsupported
 * or n is not a whole number of blocks. */
uint64_t m64_ref_row_bytes(uint32_t type, uint64_t n);
/* Converts n floats (n a multiple of the type's block size) into the type's bytes. */
int m64_ref_quantize_row(uint32_t type, const float *x, void *out, uint64_t n);
/* Converts n elements of the type back to floats. */
int m64_ref_dequantize_row(uint32_t type, const void *in, float *y, uint64_t n);

#ifdef __cplusplus
}
#endif
#endif /* M64_SUPPORT_QUANT_H */
