/* kernels_native.h — the module's kernels (module/kernels.h) compiled natively
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
/* Which path the K-quant kernels that have an i8 one (Q4_K, Q5_K, Q6_K) take: the i16 one (a
 * host without the i8 dot, e.g. a browser), the i8 one through native_dot.h's dot (an AOT
 * module's), or the i8 one through the plain SIMD128 dot. Default KN_DOT_NATIVE. */
enum { KN_DOT_I16 = 0, KN_DOT_NATIVE = 1, KN_DOT_PLAIN = 2, KN_DOT_ROWS = 3, KN_DOT_ROWS256 = 4 };
/* KN_DOT_ROWS: Q4_K and Q6_K through a native host's m64.kq_rows (native_kq.h; this CPU
 * has it when kn_has_kq_rows()) at the widest this CPU has, the others as KN_DOT_NATIVE;
 * with AVX-512 their matrix-matrix products through m64.kq_mat too;
 * KN_DOT_ROWS256 the same kept to 256 bits (what an AVX2-only CPU runs). */
void kn_set_dot_i8(int mode);
int kn_has_kq_rows(void);
/* The f16 steps (f32x4_round_f16, f16x8_to_f32) through a native host's m64.f16_* imports
 * (on) or the module's integer sequences (off); 0 where this CPU has no such instructions. */
int kn_set_f16_native(int on);
void kn_f16x8_to_f32x8(float out[8], const uint16_t h[8]);
/* 1 where this CPU has AVX-512 and so m64.kq_mat: KN_DOT_ROWS then runs prefill through it. */
int kn_has_kq_mat(void);
/* One i8 dot: out = acc + per lane the sum of four a x b products, by mode's dot. */
void kn_dot_i8(int32_t out[4], const int32_t acc[4], const int8_t a[16], const uint8_t b[16], int mode);
#ifdef __cplusplus
}
#endif
#endif
