/*
 * kernels.h — matrix-vector kernels, one family per quant type, SIMD128 throughout.
 *
 * The generated model.c instantiates each kernel for every (type, rows, cols) the model
 * uses, with rows and cols as constants, so clang specializes loops and block counts.
 * A weight matrix W has ne[0] = cols (input size) and ne[1] = rows (outputs); row r is
 * stored contiguously: out[r] = dot(W[r, :], x).
 *
 * Numerics follow llama.cpp's CPU backend, so greedy outputs agree with it:
 *  - F32: f32 dot with f32 accumulation (lane order differs: last-bit differences only).
 *  - F16: the activation is rounded to f16 first (llama.cpp converts x to the weight's
 *    vec_dot type), products accumulate in f32.
 *  - Q8_0 / Q4_0: the activation is quantized to Q8_0 blocks (32 values, f16 scale
 *    amax/127), integer dot products per block, scaled by d_w * d_x.
 * Natively (tests, bench) the same code compiles through simde's wasm intrinsics.
 * Each matvec_<sfx> is act_<sfx> (prepare the activation) + its rows, or for K-quants
 * the same in one macro; kernels_batch.h builds the prefill products on the act_ and on
 * the same dots, in the same order.
 */
#ifndef M64_KERNELS_H
#define M64_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "kernel_types.h"

#if defined(__wasm__)
#include <wasm_simd128.h>
#else
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/wasm/simd128.h>
#endif

#define M64_INLINE static inline __attribute__((always_inline))

/* ---- f16 <-> f32 ---- */
M64_INLINE float f16_to_f32(uint16_t h) {
  /* Shift the half's exponent+mantissa into float position and rescale by 2^112:
   * exact for normals and subnormals; Inf/NaN get an all-ones exponent. */
  uint32_t em = (uint32_t)(h & 0x7fff) << 13;
  union { uint32_t u; float f; } v = {em};
  v.f *= 0x1p112f;
  if ((h & 0x7c00) == 0x7c00) v.u |= 0x7f800000u;
  v.u |= (uint32_t)(h & 0x8000) << 16;
  return v.f;
}

M64_INLINE uint16_t f32_to_f16(float f) {
  union { float f; uint32_t u; } v = {f};
  uint32_t sign = (v.u >> 16) & 0x8000;
  uint32_t a = v.u & 0x7fffffff;
  if (a >= 0x7f800000) return (uint16_t)(sign | 0x7c00 | (a > 0x7f800000 ? 0x200 : 0));
  if (a >= 0x477ff000) return (uint16_t)(sign | 0x7c00); /* rounds to >= 65520: Inf */
  if (a < 0x38800000) { /* result is subnormal (or zero): round at 2^-24 granularity */
    union { uint32_t u; float f; } m = {a};
    m.f += 0.5f; /* adding 0.5 puts the half-subnormal mantissa in the low bits, RNE */
    return (uint16_t)(sign | (m.u - 0x3f000000u));
  }
  uint32_t mant_odd = (a >> 13) & 1;
  a += 0xc8000fffu + mant_odd; /* rebias exponent (-112<<23) and round to nearest even */
  return (uint16_t)(sign | (a >> 13));
}

/* 8 halfs -> two f32x4 (SIMD version of f16_to_f32). */
/* A host's one-instruction f16 steps (m64_module.h's m64.f16_*), used where has_f16 said
 * so when kernels_init ran; elsewhere (tests, a browser) the integer sequences below. */
#ifdef M64_KERNELS_F16_ROUND
#define KERNELS_F16_IMPORTED 1
static int kernels_f16_native;
#define KERNELS_F16_NATIVE() kernels_f16_native
#else
#define KERNELS_F16_IMPORTED 0
#define KERNELS_F16_NATIVE() 0
#define M64_KERNELS_F16_ROUND(x) (x)
#define M64_KERNELS_F16_WIDEN_LO(h) (h)
#define M64_KERNELS_F16_WIDEN_HI(h) (h)
#endif

M64_INLINE void f16x8_to_f32(v128_t h, v128_t *lo, v128_t *hi) {
  if (KERNELS_F16_NATIVE()) {
    *lo = M64_KERNELS_F16_WIDEN_LO(h);
    *hi = M64_KERNELS_F16_WIDEN_HI(h);
    return;
  }
  const v128_t em_mask = wasm_i32x4_splat(0x7fff), sign_mask = wasm_i32x4_splat(0x8000);
  const v128_t inf_h = wasm_i32x4_splat(0x7c00), scale = wasm_f32x4_splat(0x1p112f);
  const v128_t inf_f = wasm_i32x4_splat(0x7f800000);
  v128_t parts[2] = {wasm_u32x4_extend_low_u16x8(h), wasm_u32x4_extend_high_u16x8(h)};
  for (int i = 0; i < 2; i++) {
    v128_t x = parts[i];
    v128_t f = wasm_f32x4_mul(wasm_i32x4_shl(wasm_v128_and(x, em_mask), 13), scale);
    v128_t is_inf = wasm_i32x4_eq(wasm_v128_and(x, inf_h), inf_h);
    f = wasm_v128_or(f, wasm_v128_and(is_inf, inf_f));
    parts[i] = wasm_v128_or(f, wasm_i32x4_shl(wasm_v128_and(x, sign_mask), 16));
  }
  *lo = parts[0];
  *hi = parts[1];
}

/* Four lanes rounded to the nearest f16 value (ties to even) and widened back: the SIMD
 * version of f16_to_f32(f32_to_f16(x)) in every case (subnormal halves, overflow to
 * infinity, NaN made the quiet NaN that f16's 0x7e00 widens to). */
M64_INLINE v128_t f32x4_round_f16(v128_t x) {
  if (KERNELS_F16_NATIVE()) return M64_KERNELS_F16_ROUND(x);
  const v128_t sign = wasm_v128_and(x, wasm_i32x4_splat((int32_t)0x80000000u));
  const v128_t a = wasm_v128_and(x, wasm_i32x4_splat(0x7fffffff));
  /* f16 normals: the mantissa rounded to 10 bits (a carry moves into the exponent) */
  const v128_t odd = wasm_v128_and(wasm_u32x4_shr(a, 13), wasm_i32x4_splat(1));
  v128_t r = wasm_v128_and(wasm_i32x4_add(wasm_i32x4_add(a, wasm_i32x4_splat(0xfff)), odd),
                           wasm_i32x4_splat((int32_t)0xffffe000u));
  /* below 2^-14, multiples of 2^-24: adding 0.5 rounds there, subtracting it is exact */
  const v128_t half = wasm_f32x4_splat(0.5f);
  r = wasm_v128_bitselect(wasm_f32x4_sub(wasm_f32x4_add(a, half), half), r,
                          wasm_i32x4_lt(a, wasm_i32x4_splat(0x38800000)));
  r = wasm_v128_bitselect(wasm_i32x4_splat(0x7f800000), r, wasm_i32x4_ge(a, wasm_i32x4_splat(0x477ff000)));
  r = wasm_v128_bitselect(wasm_i32x4_splat(0x7fc00000), r, wasm_i32x4_gt(a, wasm_i32x4_splat(0x7f800000)));
  return wasm_v128_or(r, sign);
}

/* out[i] = x[i] rounded through f16, as f16_to_f32(f32_to_f16(x[i])); out may be x. */
M64_INLINE void round_f16_n(float *out, const float *x, uint32_t n) {
  uint32_t i = 0;
  for (; i + 4 <= n; i += 4) wasm_v128_store(out + i, f32x4_round_f16(wasm_v128_load(x + i)));
  for (; i < n; i++) out[i] = f16_to_f32(f32_to_f16(x[i]));
}

M64_INLINE float hsum_f32x4(v128_t v) {
  return (wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1)) +
         (wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3));
}

M64_INLINE uint16_t load_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

/* ------------------------------------------------------------------ F32 */
M64_INLINE float dot_f32(const float *w, const float *x, uint32_t n) {
  v128_t a0 = wasm_f32x4_splat(0), a1 = a0, a2 = a0, a3 = a0;
  uint32_t i = 0;
  for (; i + 16 <= n; i += 16) {
    a0 = wasm_f32x4_add(a0, wasm_f32x4_mul(wasm_v128_load(w + i), wasm_v128_load(x + i)));
    a1 = wasm_f32x4_add(a1, wasm_f32x4_mul(wasm_v128_load(w + i + 4), wasm_v128_load(x + i + 4)));
    a2 = wasm_f32x4_add(a2, wasm_f32x4_mul(wasm_v128_load(w + i + 8), wasm_v128_load(x + i + 8)));
    a3 = wasm_f32x4_add(a3, wasm_f32x4_mul(wasm_v128_load(w + i + 12), wasm_v128_load(x + i + 12)));
  }
  for (; i + 4 <= n; i += 4)
    a0 = wasm_f32x4_add(a0, wasm_f32x4_mul(wasm_v128_load(w + i), wasm_v128_load(x + i)));
  float s = hsum_f32x4(wasm_f32x4_add(wasm_f32x4_add(a0, a1), wasm_f32x4_add(a2, a3)));
  for (; i < n; i++) s += w[i] * x[i];
  return s;
}

/* Each family's matvec is act_<sfx> (the activation as the dot consumes it, in scratch)
 * then its rows (every row against it); the batch path (kernels_batch.h) runs the act
 * once per token and reuses it for every chunk of rows. */
M64_INLINE void act_f32(uint8_t *xq, const float *x, uint32_t cols) {
  __builtin_memcpy(xq, x, cols * sizeof(float));
}

M64_INLINE void rows_f32(float *out, const uint8_t *w, const uint8_t *xq, uint32_t rows, uint32_t cols) {
  for (uint32_t r = 0; r < rows; r++)
    out[r] = dot_f32((const float *)w + (uint64_t)r * cols, (const float *)xq, cols);
}

M64_INLINE void matvec_f32(float *out, const uint8_t *w, const float *x, uint8_t *scratch,
                           uint32_t rows, uint32_t cols) {
  (void)scratch; /* x is already what the dot consumes */
  rows_f32(out, w, (const uint8_t *)x, rows, cols);
}

M64_INLINE void dequant_row_f32(float *out, const uint8_t *row, uint32_t n) {
  __builtin_memcpy(out, row, n * sizeof(float));
}

/* ------------------------------------------------------------------ F16 */
M64_INLINE float dot_f16(const uint16_t *w, const float *x, uint32_t n) {
  v128_t a0 = wasm_f32x4_splat(0), a1 = a0;
  uint32_t i = 0;
  for (; i + 8 <= n; i += 8) {
    v128_t lo, hi;
    f16x8_to_f32(wasm_v128_load(w + i), &lo, &hi);
    a0 = wasm_f32x4_add(a0, wasm_f32x4_mul(lo, wasm_v128_load(x + i)));
    a1 = wasm_f32x4_add(a1, wasm_f32x4_mul(hi, wasm_v128_load(x + i + 4)));
  }
  float s = hsum_f32x4(wasm_f32x4_add(a0, a1));
  for (; i < n; i++) s += f16_to_f32(w[i]) * x[i];
  return s;
}

/* x rounded to f16 precision, as llama.cpp feeds F16 weights. */
M64_INLINE void act_f16(uint8_t *xq, const float *x, uint32_t cols) { round_f16_n((float *)xq, x, cols); }

M64_INLINE void rows_f16(float *out, const uint8_t *w, const uint8_t *xq, uint32_t rows, uint32_t cols) {
  for (uint32_t r = 0; r < rows; r++)
    out[r] = dot_f16((const uint16_t *)w + (uint64_t)r * cols, (const float *)xq, cols);
}

M64_INLINE void matvec_f16(float *out, const uint8_t *w, const float *x, uint8_t *scratch,
                           uint32_t rows, uint32_t cols) {
  act_f16(scratch, x, cols);
  rows_f16(out, w, scratch, rows, cols);
}

M64_INLINE void dequant_row_f16(float *out, const uint8_t *row, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) out[i] = f16_to_f32(load_u16(row + 2 * i));
}

/* ------------------------------------------------------------------ Q8_0 activations */
#define QK8_0 32
#define Q8_0_BYTES 34 /* f16 d, int8 q[32] */
#define Q4_0_BYTES 18 /* f16 d, uint8 nibbles[16]: element j low, j+16 high */

/* Quantizes x (n multiple of 32) into Q8_0 blocks: xq holds n/32 * 34 bytes. */
M64_INLINE void quantize_q8_0(uint8_t *xq, const float *x, uint32_t n) {
  for (uint32_t b = 0; b < n / QK8_0; b++) {
    const float *v = x + b * QK8_0;
    uint8_t *blk = xq + b * Q8_0_BYTES;
    v128_t m = wasm_f32x4_splat(0);
    for (int j = 0; j < QK8_0; j += 4) m = wasm_f32x4_max(m, wasm_f32x4_abs(wasm_v128_load(v + j)));
    float amax = wasm_f32x4_extract_lane(m, 0);
    for (int l = 1; l < 4; l++) {
      float e = l == 1 ? wasm_f32x4_extract_lane(m, 1)
              : l == 2 ? wasm_f32x4_extract_lane(m, 2) : wasm_f32x4_extract_lane(m, 3);
      amax = e > amax ? e : amax;
    }
    float d = amax / 127.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    uint16_t dh = f32_to_f16(d);
    blk[0] = (uint8_t)dh;
    blk[1] = (uint8_t)(dh >> 8);
    v128_t vid = wasm_f32x4_splat(id);
    for (int j = 0; j < QK8_0; j += 16) {
      v128_t q[4];
      for (int k = 0; k < 4; k++)
        q[k] = wasm_i32x4_trunc_sat_f32x4(wasm_f32x4_nearest(wasm_f32x4_mul(wasm_v128_load(v + j + 4 * k), vid)));
      v128_t s16a = wasm_i16x8_narrow_i32x4(q[0], q[1]);
      v128_t s16b = wasm_i16x8_narrow_i32x4(q[2], q[3]);
      wasm_v128_store(blk + 2 + j, wasm_i8x16_narrow_i16x8(s16a, s16b));
    }
  }
}

/* Integer dot of 16 int8 weights with 16 int8 activations, into i32x4 lanes. */
M64_INLINE v128_t dot_i8x16(v128_t a, v128_t b) {
  v128_t lo = wasm_i32x4_dot_i16x8(wasm_i16x8_extend_low_i8x16(a), wasm_i16x8_extend_low_i8x16(b));
  v128_t hi = wasm_i32x4_dot_i16x8(wasm_i16x8_extend_high_i8x16(a), wasm_i16x8_extend_high_i8x16(b));
  return wasm_i32x4_add(lo, hi);
}

/* Activation prepared for Q8_0-style integer dot products, once per matvec: the int8
 * quants widened to int16 (so each row's inner loop widens only the weights) and the
 * block scales as f32 (already rounded through f16, as llama.cpp stores them). */
typedef struct act_q8 { const int16_t *q; const float *d; } act_q8;

/* Where prepare_act_q8_0 put the quants and scales of n columns. */
M64_INLINE act_q8 act_q8_view(const uint8_t *scratch, uint32_t n) {
  return (act_q8){(const int16_t *)scratch, (const float *)(scratch + (size_t)n * 2)};
}

M64_INLINE act_q8 prepare_act_q8_0(uint8_t *scratch, const float *x, uint32_t n) {
  int16_t *q = (int16_t *)scratch;
  float *d = (float *)(scratch + (size_t)n * 2);
  for (uint32_t b = 0; b < n / QK8_0; b++) {
    const float *v = x + b * QK8_0;
    v128_t m = wasm_f32x4_splat(0);
    for (int j = 0; j < QK8_0; j += 4) m = wasm_f32x4_max(m, wasm_f32x4_abs(wasm_v128_load(v + j)));
    m = wasm_f32x4_max(m, wasm_i32x4_shuffle(m, m, 2, 3, 0, 1));
    m = wasm_f32x4_max(m, wasm_i32x4_shuffle(m, m, 1, 0, 3, 2));
    const float amax = wasm_f32x4_extract_lane(m, 0);
    const float db = amax / 127.0f;
    const v128_t id = wasm_f32x4_splat(db != 0.0f ? 1.0f / db : 0.0f);
    d[b] = f16_to_f32(f32_to_f16(db));
    for (int j = 0; j < QK8_0; j += 8) {
      v128_t lo = wasm_i32x4_trunc_sat_f32x4(wasm_f32x4_nearest(wasm_f32x4_mul(wasm_v128_load(v + j), id)));
      v128_t hi = wasm_i32x4_trunc_sat_f32x4(wasm_f32x4_nearest(wasm_f32x4_mul(wasm_v128_load(v + j + 4), id)));
      wasm_v128_store(q + b * QK8_0 + j, wasm_i16x8_narrow_i32x4(lo, hi));
    }
  }
  return act_q8_view(scratch, n);
}

/* f16 -> f32 by table for the per-block weight scales on the hot path (256 KiB, built on
 * first use; the arithmetic conversion costs more than the block's dot product). */
static float f16_table[65536];
static int f16_table_ready;
M64_INLINE void f16_table_init(void) {
  if (f16_table_ready) return;
  for (uint32_t h = 0; h < 65536; h++) f16_table[h] = f16_to_f32((uint16_t)h);
  f16_table_ready = 1;
}
#define F16_SCALE(p) f16_table[load_u16(p)]

/* Builds every table the kernels read. The module calls it once at init, before threads
 * run kernels; the lazy calls in the kernels then only read the ready flag. */
M64_INLINE void kernels_init(void) {
  f16_table_init();
#if KERNELS_F16_IMPORTED
  kernels_f16_native = M64_KERNELS_HAS_F16() != 0;
#endif
}

/* Sum of 32 int8 weights (two 16-byte halves) times 32 widened activations, in i32 lanes. */
M64_INLINE v128_t dot_i8x32_i16(v128_t w0, v128_t w1, const int16_t *xq) {
  v128_t s = wasm_i32x4_dot_i16x8(wasm_i16x8_extend_low_i8x16(w0), wasm_v128_load(xq));
  s = wasm_i32x4_add(s, wasm_i32x4_dot_i16x8(wasm_i16x8_extend_high_i8x16(w0), wasm_v128_load(xq + 8)));
  s = wasm_i32x4_add(s, wasm_i32x4_dot_i16x8(wasm_i16x8_extend_low_i8x16(w1), wasm_v128_load(xq + 16)));
  return wasm_i32x4_add(s, wasm_i32x4_dot_i16x8(wasm_i16x8_extend_high_i8x16(w1), wasm_v128_load(xq + 24)));
}

/* Accumulates one block: acc += float(isum) * (d_w * d_x). */
M64_INLINE v128_t fma_block(v128_t acc, v128_t isum, float dw, float dx) {
  return wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_f32x4_convert_i32x4(isum), wasm_f32x4_splat(dw * dx)));
}

/* ------------------------------------------------------------------ Q8_0 and Q4_0 weights: one dot */
M64_INLINE void act_q8_0(uint8_t *xq, const float *x, uint32_t cols) { prepare_act_q8_0(xq, x, cols); }

/* Nibbles to int8 in [-8, 7]: low nibbles are elements 0..15, high nibbles 16..31. */
M64_INLINE void unpack_q4_0(const uint8_t *qs, v128_t *lo, v128_t *hi) {
  const v128_t low4 = wasm_i8x16_splat(0x0f), eight = wasm_i8x16_splat(8);
  const v128_t packed = wasm_v128_load(qs);
  *lo = wasm_i8x16_sub(wasm_v128_and(packed, low4), eight);
  *hi = wasm_i8x16_sub(wasm_u8x16_shr(packed, 4), eight);
}

/* One Q8_0 or Q4_0 block's 32 quants as two i8x16 (elements 0..15, 16..31). */
M64_INLINE void q8_block_quants(int q4, const uint8_t *wb, v128_t *lo, v128_t *hi) {
  if (q4) {
    unpack_q4_0(wb + 2, lo, hi);
  } else {
    *lo = wasm_v128_load(wb + 2);
    *hi = wasm_v128_load(wb + 18);
  }
}

/* Q8_0 and Q4_0 rows (q4 a constant at each call): per block acc += lanes * (d_w * d_x);
 * two rows per pass share the activation loads. */
M64_INLINE void rows_q8_or_q4_0(int q4, float *out, const uint8_t *w, const uint8_t *xq, uint32_t rows,
                                uint32_t cols) {
  f16_table_init();
  const act_q8 a = act_q8_view(xq, cols);
  const uint32_t nb = cols / QK8_0, bytes = q4 ? Q4_0_BYTES : Q8_0_BYTES;
  const uint64_t row_bytes = (uint64_t)nb * bytes;
  uint32_t r = 0;
  for (; r + 2 <= rows; r += 2) {
    const uint8_t *w0 = w + r * row_bytes, *w1 = w0 + row_bytes;
    v128_t acc0 = wasm_f32x4_splat(0), acc1 = acc0;
    for (uint32_t b = 0; b < nb; b++) {
      const uint8_t *b0 = w0 + b * bytes, *b1 = w1 + b * bytes;
      const int16_t *xq = a.q + b * QK8_0;
      v128_t lo, hi;
      q8_block_quants(q4, b0, &lo, &hi);
      acc0 = fma_block(acc0, dot_i8x32_i16(lo, hi, xq), F16_SCALE(b0), a.d[b]);
      q8_block_quants(q4, b1, &lo, &hi);
      acc1 = fma_block(acc1, dot_i8x32_i16(lo, hi, xq), F16_SCALE(b1), a.d[b]);
    }
    out[r] = hsum_f32x4(acc0);
    out[r + 1] = hsum_f32x4(acc1);
  }
  for (; r < rows; r++) {
    const uint8_t *w0 = w + r * row_bytes;
    v128_t acc = wasm_f32x4_splat(0);
    for (uint32_t b = 0; b < nb; b++) {
      const uint8_t *b0 = w0 + b * bytes;
      v128_t lo, hi;
      q8_block_quants(q4, b0, &lo, &hi);
      acc = fma_block(acc, dot_i8x32_i16(lo, hi, a.q + b * QK8_0), F16_SCALE(b0), a.d[b]);
    }
    out[r] = hsum_f32x4(acc);
  }
}

M64_INLINE void rows_q8_0(float *out, const uint8_t *w, const uint8_t *xq, uint32_t rows, uint32_t cols) {
  rows_q8_or_q4_0(0, out, w, xq, rows, cols);
}

M64_INLINE void matvec_q8_0(float *out, const uint8_t *w, const float *x, uint8_t *scratch,
                            uint32_t rows, uint32_t cols) {
  act_q8_0(scratch, x, cols);
  rows_q8_0(out, w, scratch, rows, cols);
}

M64_INLINE void dequant_row_q8_0(float *out, const uint8_t *row, uint32_t n) {
  for (uint32_t b = 0; b < n / QK8_0; b++) {
    const uint8_t *blk = row + b * Q8_0_BYTES;
    float d = f16_to_f32(load_u16(blk));
    for (int j = 0; j < QK8_0; j++) out[b * QK8_0 + j] = d * (float)(int8_t)blk[2 + j];
  }
}

/* ------------------------------------------------------------------ Q4_0 weights */
M64_INLINE void act_q4_0(uint8_t *xq, const float *x, uint32_t cols) { prepare_act_q8_0(xq, x, cols); }

M64_INLINE void rows_q4_0(float *out, const uint8_t *w, const uint8_t *xq, uint32_t rows, uint32_t cols) {
  rows_q8_or_q4_0(1, out, w, xq, rows, cols);
}

M64_INLINE void matvec_q4_0(float *out, const uint8_t *w, const float *x, uint8_t *scratch,
                            uint32_t rows, uint32_t cols) {
  act_q4_0(scratch, x, cols);
  rows_q4_0(out, w, scratch, rows, cols);
}

M64_INLINE void dequant_row_q4_0(float *out, const uint8_t *row, uint32_t n) {
  for (uint32_t b = 0; b < n / QK8_0; b++) {
    const uint8_t *blk = row + b * Q4_0_BYTES;
    float d = f16_to_f32(load_u16(blk));
    for (int j = 0; j < 16; j++) {
      out[b * QK8_0 + j] = d * (float)((blk[2 + j] & 0x0f) - 8);
      out[b * QK8_0 + j + 16] = d * (float)((blk[2 + j] >> 4) - 8);
    }
  }
}

/* More families, each adding its rows to kernel_types.h. */
#include "kernels_legacy.h" /* Q4_1, Q5_0, Q5_1, BF16, IQ4_NL */
#include "kernels_kquants.h" /* Q2_K..Q6_K, IQ4_XS over Q8_K activations */
#include "kernels_batch.h"   /* several inputs at once (prefill) */

#endif /* M64_KERNELS_H */
