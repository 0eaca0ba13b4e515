/*
 * quant.h — reference (scalar, readable) conversions between F32 and the ggml tensor
 * types the synthetic generator writes and the oracle reads. One table row per type in
 * quant.c: a quantize and a dequantize function.
 *
 * Layouts follow ggml (ggml-common.h / ggml-quants.c); all multi-byte fields little-endian,
 * "f16" an IEEE binary16 scale. x is the dequantized value, q the stored quant.
 *   F32, F16, BF16  one element each; F16 and BF16 round to nearest even on the way in.
 *   Q8_0   32: f16 d, i8 q[32];                      x = d * q
 *   Q4_0   32: f16 d, u8 qs[16];                     x = d * (q - 8)
 *   Q4_1   32: f16 d, f16 m, u8 qs[16];              x = d * q + m
 *   Q5_0   32: f16 d, u32 qh, u8 qs[16];             x = d * (q - 16)
 *   Q5_1   32: f16 d, f16 m, u32 qh, u8 qs[16];      x = d * q + m
 *   IQ4_NL 32: f16 d, u8 qs[16];                     x = d * level[q]
 *          (32-element types: byte j holds element j in its low nibble and element j + 16
 *          in its high nibble; qh bit j is element j's fifth bit)
 *   Q2_K  256 (84 B), Q3_K 256 (110 B), Q4_K 256 (144 B), Q5_K 256 (176 B),
 *   Q6_K  256 (210 B), IQ4_XS 256 (136 B): see the functions in quant.c.
 * level[] = {-127,-104,-83,-65,-49,-35,-22,-10,1,13,25,38,53,69,89,113}.
 *
 * The encoders are simple, not llama.cpp's search-based ones: the largest element of a
 * block (or sub-block) fixes its scale, scales are rounded onto the type's grid, each
 * element takes the nearest quant. Any valid bytes dequantize identically either way.
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
/* Elements per block of the type (1 for F32/F16/BF16); 0 if unsupported. */
uint32_t m64_ref_block_elems(uint32_t type);
/* The supported types, in table order: m64_ref_type_at(i) for i < m64_ref_n_types(). */
uint32_t m64_ref_n_types(void);
uint32_t m64_ref_type_at(uint32_t i);
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
