/*
 * native_dot.h — the module's m64.dot_i8 import as native code defines it: compiled into
 * the same translation unit as the wasm2c output (native_glue.c, bench/kernels), so each
 * call inlines to one instruction where the target has one. v128 is wasm2c's (simde's)
 * vector type. Semantics (m64_module.h): acc + per i32 lane the sum of four products
 * a (i8) x b (u8 below 128); exact on every path below for such b.
 */
#ifndef M64_NATIVE_DOT_H
#define M64_NATIVE_DOT_H

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>

#endif

static inline __attribute__((always_inline)) simde_v128_t m64_native_dot_i8(simde_v128_t acc, simde_v128_t a,
                                                                            simde_v128_t b) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  /* vpdpbusd: unsigned bytes of its first operand times signed bytes of the second */
  return simde_v128_from_m128i(
      _mm_dpbusd_epi32(simde_v128_to_m128i(acc), simde_v128_to_m128i(b), simde_v128_to_m128i(a)));
#elif defined(__AVXVNNI__)
  return simde_v128_from_m128i(
      _mm_dpbusd_avx_epi32(simde_v128_to_m128i(acc), simde_v128_to_m128i(b), simde_v128_to_m128i(a)));
#elif defined(__SSSE3__)
  /* pmaddubsw pairs: |b x a| <= 127 * 128 twice fits i16, so it never saturates */
  const __m128i pairs = _mm_maddubs_epi16(simde_v128_to_m128i(b), simde_v128_to_m128i(a));
  return simde_v128_from_m128i(
      _mm_add_epi32(simde_v128_to_m128i(acc), _mm_madd_epi16(pairs, _mm_set1_epi16(1))));
#elif defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)
  return simde_v128_from_neon_i32(
      vdotq_s32(simde_v128_to_neon_i32(acc), simde_v128_to_neon_i8(a), simde_v128_to_neon_i8(b)));
#else
  const simde_v128_t lo = simde_wasm_i32x4_dot_i16x8(simde_wasm_i16x8_extend_low_i8x16(a),
                                                     simde_wasm_u16x8_extend_low_u8x16(b));
  const simde_v128_t hi = simde_wasm_i32x4_dot_i16x8(simde_wasm_i16x8_extend_high_i8x16(a),
                                                     simde_wasm_u16x8_extend_high_u8x16(b));
  return simde_wasm_i32x4_add(acc, simde_wasm_i32x4_add(simde_wasm_i32x4_shuffle(lo, hi, 0, 2, 4, 6),
                                                        simde_wasm_i32x4_shuffle(lo, hi, 1, 3, 5, 7)));
#endif
}

/* m64.f16_round / f16_widen_lo / f16_widen_hi (m64_module.h) and whether this target has
 * them as single instructions (M64_NATIVE_F16). */
#if (defined(__x86_64__) || defined(__i386__)) && defined(__F16C__)
#define M64_NATIVE_F16 1
static inline __attribute__((always_inline)) simde_v128_t m64_native_f16_round(simde_v128_t x) {
  return simde_v128_from_m128(_mm_cvtph_ps(_mm_cvtps_ph(simde_v128_to_m128(x), _MM_FROUND_TO_NEAREST_INT)));
}
static inline __attribute__((always_inline)) simde_v128_t m64_native_f16_widen_lo(simde_v128_t h) {
  return simde_v128_from_m128(_mm_cvtph_ps(simde_v128_to_m128i(h)));
}
static inline __attribute__((always_inline)) simde_v128_t m64_native_f16_widen_hi(simde_v128_t h) {
  return simde_v128_from_m128(_mm_cvtph_ps(_mm_unpackhi_epi64(simde_v128_to_m128i(h), simde_v128_to_m128i(h))));
}
#elif defined(__aarch64__)
#define M64_NATIVE_F16 1
static inline __attribute__((always_inline)) simde_v128_t m64_native_f16_round(simde_v128_t x) {
  return simde_v128_from_neon_f32(vcvt_f32_f16(vcvt_f16_f32(simde_v128_to_neon_f32(x))));
}
static inline __attribute__((always_inline)) simde_v128_t m64_native_f16_widen_lo(simde_v128_t h) {
  return simde_v128_from_neon_f32(vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(simde_v128_to_neon_u16(h)))));
}
static inline __attribute__((always_inline)) simde_v128_t m64_native_f16_widen_hi(simde_v128_t h) {
  return simde_v128_from_neon_f32(vcvt_f32_f16(vreinterpret_f16_u16(vget_high_u16(simde_v128_to_neon_u16(h)))));
}
#endif

#endif
