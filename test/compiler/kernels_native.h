/* kernels_native.h — the module's kernels (compiler/module/kernels.h) compiled natively
 * through simde, behind plain functions the C++ tests can call. */
#ifndef M64_KERNELS_NATIVE_H
#define M64_KERNELS_NATIVE_H
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
int kn_supported(uint32_t type);
void kn_matvec(uint32_t type, float *out, const uint8_t *w, const float *x, uint32_t rows,
               uint32_t cols);
/* The batch path (kernels_batch.h): each of the n inputs x[t * cols..] prepared once by
 * act_<sfx>, then out[t * rows + r] for every row r through matmat_<sfx>. */
void kn_matmat(uint32_t type, float *out, const uint8_t *w, const float *x, uint32_t rows,
               uint32_t cols, uint32_t n);
/* The K-quants' row-pair layout (m64_formats.h): matvec_<sfx>_pairs / act + matmat_<sfx>_pairs
 * over a matrix stored as row pairs. Returns 0 for a type without that layout. */
int kn_matvec_pairs(uint32_t type, float *out, const uint8_t *w, const float *x, uint32_t rows,
                    uint32_t cols);
int kn_matmat_pairs(uint32_t type, float *out, const uint8_t *w, const float *x, uint32_t rows,
                    uint32_t cols, uint32_t n);
void kn_dequant_row(uint32_t type, float *out, const uint8_t *row, uint32_t n);
float kn_f16_to_f32(uint16_t h);
uint16_t kn_f32_to_f16(float f);
/* f32x4_round_f16: four floats through f16 and back, the SIMD way (attention's f16 sums). */
void kn_round_f16x4(float out[4], const float x[4]);
void kn_quantize_q8_0(uint8_t *xq, const float *x, uint32_t n);
#ifdef __cplusplus
}
#endif
#endif
