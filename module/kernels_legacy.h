/* kernels_legacy.h — kernels for Q4_1, Q5_0, Q5_1 (Q8_0/Q8_1 activations), BF16, IQ4_NL.
 * Included by kernels.h after the F32/F16/Q8_0/Q4_0 families and their helpers.
 *
 * Block layouts (ggml/GGUF, 32 elements a block, halves little-endian):
 *   Q4_1   20 bytes: f16 d, f16 m, u8 qs[16]            x = d*q + m,        q in 0..15
 *   Q5_0   22 bytes: f16 d, u8 qh[4], u8 qs[16]         x = d*(q - 16),     q in 0..31
 *   Q5_1   24 bytes: f16 d, f16 m, u8 qh[4], u8 qs[16]  x = d*q + m,        q in 0..31
 *   IQ4_NL 18 bytes: f16 d, u8 qs[16]                   x = d*kvalues[q],   q in 0..15
 *   BF16    2 bytes an element: the top half of an f32.
 * In qs, element j (< 16) is the low nibble of qs[j] and element j+16 the high nibble; in
 * the 5-bit types, bit j of the little-endian u32 qh is the fifth bit of element j.
 *
 * Numerics follow llama.cpp's CPU backend (the activation becomes the weight's vec_dot type):
 *  - Q5_0, IQ4_NL: x quantized to Q8_0 blocks; per block d_w*d_x*sum(q_w*q_x).
 *  - Q4_1, Q5_1:   x quantized to Q8_1 blocks (Q8_0 plus s = f16(d * sum(q_x)), with the
 *                  f32 d); per block d_w*d_x*sum(q_w*q_x) + m_w*s_x.
 *  - BF16:         x rounded to bf16 (nearest even, NaN made quiet), dot in f32.
 *
 * Hot loops: the quantized activation is widened once per matvec into int16 (scratch), so a
 * block costs one weight load, the nibble/5th-bit unpacking at byte level, four i16 widenings
 * and four i32x4.dot_i16x8_s. Block sums are reduced four blocks at a time (a 4x4 transpose-add)
 * and scaled with one f32x4 multiply, the four weight scales converted from f16 together.
 */
#ifndef M64_KERNELS_LEGACY_H
#define M64_KERNELS_LEGACY_H

#define Q4_1_BYTES 20
#define Q5_0_BYTES 22
#define Q5_1_BYTES 24
#define IQ4_NL_BYTES 18

/* ------------------------------------------------------------------ helpers */
M64_INLINE uint32_t load_u32(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* Four halfs (the low 16 bits of each u32 lane, upper bits zero) -> f32x4, as f16_to_f32. */
M64_INLINE v128_t f16x4_lanes_to_f32(v128_t x) {
  v128_t f = wasm_f32x4_mul(wasm_i32x4_shl(wasm_v128_and(x, wasm_i32x4_splat(0x7fff)), 13),
                            wasm_f32x4_splat(0x1p112f));
  const v128_t inf_h = wasm_i32x4_splat(0x7c00);
  v128_t is_inf = wasm_i32x4_eq(wasm_v128_and(x, inf_h), inf_h);
  f = wasm_v128_or(f, wasm_v128_and(is_inf, wasm_i32x4_splat(0x7f800000)));
  return wasm_v128_or(f, wasm_i32x4_shl(wasm_v128_and(x, wasm_i32x4_splat(0x8000)), 16));
}

/* Sum of q_w * q_x over a block: weights as two i8x16 (elements 0..15, 16..31), the
 * activation as 32 int16. Returns i32x4 partial sums. */
M64_INLINE v128_t legacy_block_dot(v128_t wlo, v128_t whi, const int16_t *xq) {
  v128_t a = wasm_i32x4_add(
      wasm_i32x4_dot_i16x8(wasm_i16x8_extend_low_i8x16(wlo), wasm_v128_load(xq)),
      wasm_i32x4_dot_i16x8(wasm_i16x8_extend_high_i8x16(wlo), wasm_v128_load(xq + 8)));
  v128_t b = wasm_i32x4_add(
      wasm_i32x4_dot_i16x8(wasm_i16x8_extend_low_i8x16(whi), wasm_v128_load(xq + 16)),
      wasm_i32x4_dot_i16x8(wasm_i16x8_extend_high_i8x16(whi), wasm_v128_load(xq + 24)));
  return wasm_i32x4_add(a, b);
}

/* Lane totals of four i32x4 -> one i32x4 {sum(s0), sum(s1), sum(s2), sum(s3)}. */
M64_INLINE v128_t transpose_add_i32x4(v128_t s0, v128_t s1, v128_t s2, v128_t s3) {
  v128_t t0 = wasm_i32x4_add(wasm_i32x4_shuffle(s0, s1, 0, 4, 2, 6), wasm_i32x4_shuffle(s0, s1, 1, 5, 3, 7));
  v128_t t1 = wasm_i32x4_add(wasm_i32x4_shuffle(s2, s3, 0, 4, 2, 6), wasm_i32x4_shuffle(s2, s3, 1, 5, 3, 7));
  return wasm_i32x4_add(wasm_i32x4_shuffle(t0, t1, 0, 1, 4, 5), wasm_i32x4_shuffle(t0, t1, 2, 3, 6, 7));
}

M64_INLINE int32_t hsum_i32x4(v128_t v) {
  return (wasm_i32x4_extract_lane(v, 0) + wasm_i32x4_extract_lane(v, 1)) +
         (wasm_i32x4_extract_lane(v, 2) + wasm_i32x4_extract_lane(v, 3));
}

/* The fifth bits of a 5-bit block: 0xff in byte lane j of *lo (element j) / *hi (element
 * j+16) when bit j / j+16 of qh is set. Each qh byte is spread over 8 lanes and tested
 * against a per-lane bit. */
M64_INLINE void q5_high_bits(const uint8_t *qh, v128_t *lo, v128_t *hi) {
  const v128_t bits = wasm_i8x16_make(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128);
  v128_t h = wasm_v128_load32_splat(qh);
  v128_t l = wasm_i8x16_shuffle(h, h, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  v128_t u = wasm_i8x16_shuffle(h, h, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  *lo = wasm_i8x16_eq(wasm_v128_and(l, bits), bits);
  *hi = wasm_i8x16_eq(wasm_v128_and(u, bits), bits);
}

/* ------------------------------------------------------------------ weight unpacking */
enum { M64_LK_Q4_1, M64_LK_Q5_0, M64_LK_Q5_1, M64_LK_IQ4_NL };

M64_INLINE uint32_t legacy_block_bytes(int kind) {
  return kind == M64_LK_Q4_1 ? Q4_1_BYTES : kind == M64_LK_Q5_0 ? Q5_0_BYTES
       : kind == M64_LK_Q5_1 ? Q5_1_BYTES : IQ4_NL_BYTES;
}
M64_INLINE int legacy_has_min(int kind) { return kind == M64_LK_Q4_1 || kind == M64_LK_Q5_1; }

/* A block's 32 quants as signed bytes (as the dot consumes them, offsets applied). */
M64_INLINE void legacy_unpack(int kind, const uint8_t *wb, v128_t *lo, v128_t *hi) {
  const v128_t low4 = wasm_i8x16_splat(0x0f);
  if (kind == M64_LK_Q4_1) {
    v128_t p = wasm_v128_load(wb + 4);
    *lo = wasm_v128_and(p, low4);
    *hi = wasm_u8x16_shr(p, 4);
  } else if (kind == M64_LK_IQ4_NL) {
    const v128_t kv = wasm_i8x16_make(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);
    v128_t p = wasm_v128_load(wb + 2);
    *lo = wasm_i8x16_swizzle(kv, wasm_v128_and(p, low4));
    *hi = wasm_i8x16_swizzle(kv, wasm_u8x16_shr(p, 4));
  } else {
    const v128_t b4 = wasm_i8x16_splat(0x10);
    const uint8_t *qh = wb + (kind == M64_LK_Q5_0 ? 2 : 4);
    v128_t p = wasm_v128_load(qh + 4), hl, hh;
    q5_high_bits(qh, &hl, &hh);
    v128_t nl = wasm_v128_and(p, low4), nh = wasm_u8x16_shr(p, 4);
    if (kind == M64_LK_Q5_0) { /* q - 16 = nibble - (bit ? 0 : 16) */
      *lo = wasm_i8x16_sub(nl, wasm_v128_andnot(b4, hl));
      *hi = wasm_i8x16_sub(nh, wasm_v128_andnot(b4, hh));
    } else {
      *lo = wasm_v128_or(nl, wasm_v128_and(b4, hl));
      *hi = wasm_v128_or(nh, wasm_v128_and(b4, hh));
    }
  }
}

/* ------------------------------------------------------------------ activations */
/* Q8_0 activations: prepare_act_q8_0 (kernels.h), numerically quantize_q8_0 widened to
 * int16. Q8_1 activations, the same plus each block's s = f16(d * sum(q)) computed from
 * the f32 d, as llama.cpp's quantize_row_q8_1; kept as f32 (the f16 value widened).
 * Scratch: int16 q[n] | f32 d[n/32] | f32 s[n/32]. */
typedef struct act_q8_1 { const int16_t *q; const float *d, *s; } act_q8_1;

M64_INLINE act_q8_1 prepare_act_q8_1(uint8_t *scratch, const float *x, uint32_t n) {
  const uint32_t nb = n / QK8_0;
  int16_t *q = (int16_t *)scratch;
  float *d = (float *)(scratch + n * 2), *s = d + nb;
  for (uint32_t b = 0; b < nb; b++) {
    const float *v = x + b * QK8_0;
    v128_t m = wasm_f32x4_splat(0);
    for (int j = 0; j < QK8_0; j += 4) m = wasm_f32x4_max(m, wasm_f32x4_abs(wasm_v128_load(v + j)));
    m = wasm_f32x4_max(m, wasm_i32x4_shuffle(m, m, 2, 3, 0, 1));
    m = wasm_f32x4_max(m, wasm_i32x4_shuffle(m, m, 1, 0, 3, 2));
    const float db = wasm_f32x4_extract_lane(m, 0) / 127.0f;
    const v128_t id = wasm_f32x4_splat(db != 0.0f ? 1.0f / db : 0.0f);
    v128_t qsum = wasm_i32x4_splat(0);
    for (int j = 0; j < QK8_0; j += 8) {
      v128_t lo = wasm_i32x4_trunc_sat_f32x4(wasm_f32x4_nearest(wasm_f32x4_mul(wasm_v128_load(v + j), id)));
      v128_t hi = wasm_i32x4_trunc_sat_f32x4(wasm_f32x4_nearest(wasm_f32x4_mul(wasm_v128_load(v + j + 4), id)));
      qsum = wasm_i32x4_add(qsum, wasm_i32x4_add(lo, hi));
      wasm_v128_store(q + b * QK8_0 + j, wasm_i16x8_narrow_i32x4(lo, hi));
    }
    d[b] = f16_to_f32(f32_to_f16(db));
    s[b] = f16_to_f32(f32_to_f16((float)hsum_i32x4(qsum) * db));
  }
  return (act_q8_1){q, d, s};
}

/* ------------------------------------------------------------------ Q4_1 / Q5_x / IQ4_NL dot */
/* Four blocks' weight scales (and mins) as f32x4, converted from f16 together. */
M64_INLINE void legacy_scales4(int kind, const uint8_t *wb, v128_t *d, v128_t *m) {
  const uint32_t bb = legacy_block_bytes(kind);
  if (legacy_has_min(kind)) { /* u32 d | m << 16 */
    v128_t v = wasm_i32x4_make((int32_t)load_u32(wb), (int32_t)load_u32(wb + bb),
                               (int32_t)load_u32(wb + 2 * bb), (int32_t)load_u32(wb + 3 * bb));
    *d = f16x4_lanes_to_f32(wasm_v128_and(v, wasm_i32x4_splat(0xffff)));
    *m = f16x4_lanes_to_f32(wasm_u32x4_shr(v, 16));
  } else {
    v128_t v = wasm_i32x4_make(load_u16(wb), load_u16(wb + bb), load_u16(wb + 2 * bb), load_u16(wb + 3 * bb));
    *d = f16x4_lanes_to_f32(v);
    *m = wasm_f32x4_splat(0);
  }
}

/* A row's sum finished over its blocks [t0, nb) after the last group of four (at most 3),
 * one by one: w the row, xq/xd/xs its activation (xs only for the types with a min). */
M64_INLINE float legacy_tail(int kind, float sum, const uint8_t *w, const int16_t *xq, const float *xd,
                             const float *xs, uint32_t t0, uint32_t nb) {
  for (uint32_t t = t0; t < nb; t++) {
    const uint8_t *wb = w + (size_t)t * legacy_block_bytes(kind);
    v128_t lo, hi;
    legacy_unpack(kind, wb, &lo, &hi);
    const int32_t isum = hsum_i32x4(legacy_block_dot(lo, hi, xq + t * QK8_0));
    sum += f16_to_f32(load_u16(wb)) * xd[t] * (float)isum;
    if (legacy_has_min(kind)) sum += f16_to_f32(load_u16(wb + 2)) * xs[t];
  }
  return sum;
}

/* out[k] = dot(row k, x) for NR (1 or 2) consecutive rows sharing the activation loads.
 * Per block: d_w*d_x*sum(q_w*q_x) (+ m_w*s_x), blocks grouped by four. */
M64_INLINE void dot_legacy_rows(int kind, int nr, float *out, const uint8_t *w, uint64_t row_bytes,
                                const int16_t *xq, const float *xd, const float *xs, uint32_t nb) {
  const uint32_t bb = legacy_block_bytes(kind);
  v128_t acc[2] = {wasm_f32x4_splat(0), wasm_f32x4_splat(0)}, macc[2] = {acc[0], acc[0]};
  uint32_t b = 0;
  for (; b + 4 <= nb; b += 4) {
    const v128_t dx = wasm_v128_load(xd + b);
    for (int k = 0; k < nr; k++) {
      const uint8_t *wb = w + k * row_bytes + b * bb;
      v128_t s[4];
      for (int j = 0; j < 4; j++) {
        v128_t lo, hi;
        legacy_unpack(kind, wb + j * bb, &lo, &hi);
        s[j] = legacy_block_dot(lo, hi, xq + (b + j) * QK8_0);
      }
      v128_t dw, mw;
      legacy_scales4(kind, wb, &dw, &mw);
      acc[k] = wasm_f32x4_add(acc[k], wasm_f32x4_mul(wasm_f32x4_convert_i32x4(transpose_add_i32x4(s[0], s[1], s[2], s[3])),
                                                     wasm_f32x4_mul(dw, dx)));
      if (legacy_has_min(kind)) macc[k] = wasm_f32x4_add(macc[k], wasm_f32x4_mul(mw, wasm_v128_load(xs + b)));
    }
  }
  for (int k = 0; k < nr; k++)
    out[k] = legacy_tail(kind, hsum_f32x4(wasm_f32x4_add(acc[k], macc[k])), w + k * row_bytes, xq, xd, xs, b, nb);
}

/* The activation of one input as `kind` consumes it (scratch layout above). */
M64_INLINE void act_legacy(int kind, uint8_t *xq, const float *x, uint32_t cols) {
  if (legacy_has_min(kind)) prepare_act_q8_1(xq, x, cols);
  else prepare_act_q8_0(xq, x, cols);
}

M64_INLINE void rows_legacy(int kind, float *out, const uint8_t *w, const uint8_t *xq, uint32_t rows,
                            uint32_t cols) {
  const uint32_t nb = cols / QK8_0;
  const act_q8 a = act_q8_view(xq, cols);
  const float *xs = legacy_has_min(kind) ? a.d + nb : 0; /* Q8_1: the sums follow the scales */
  const uint64_t row_bytes = (uint64_t)nb * legacy_block_bytes(kind);
  uint32_t r = 0;
  for (; r + 2 <= rows; r += 2) dot_legacy_rows(kind, 2, out + r, w + r * row_bytes, row_bytes, a.q, a.d, xs, nb);
  if (r < rows) dot_legacy_rows(kind, 1, out + r, w + r * row_bytes, row_bytes, a.q, a.d, xs, nb);
}

M64_INLINE void matvec_legacy(int kind, float *out, const uint8_t *w, const float *x, uint8_t *scratch,
                              uint32_t rows, uint32_t cols) {
  act_legacy(kind, scratch, x, cols);
  rows_legacy(kind, out, w, scratch, rows, cols);
}

/* Dequantizes a row of n (multiple of 32) elements: x = d*q (+ m), one f32 multiply and add. */
M64_INLINE void dequant_legacy(int kind, float *out, const uint8_t *row, uint32_t n) {
  const uint32_t bb = legacy_block_bytes(kind);
  for (uint32_t b = 0; b < n / QK8_0; b++) {
    const uint8_t *wb = row + b * bb;
    v128_t q[2];
    legacy_unpack(kind, wb, &q[0], &q[1]);
    v128_t d = wasm_f32x4_splat(f16_to_f32(load_u16(wb)));
    v128_t m = wasm_f32x4_splat(legacy_has_min(kind) ? f16_to_f32(load_u16(wb + 2)) : 0.0f);
    float *o = out + b * QK8_0;
    for (int h = 0; h < 2; h++) {
      v128_t w16[2] = {wasm_i16x8_extend_low_i8x16(q[h]), wasm_i16x8_extend_high_i8x16(q[h])};
      for (int k = 0; k < 2; k++) {
        v128_t f0 = wasm_f32x4_mul(wasm_f32x4_convert_i32x4(wasm_i32x4_extend_low_i16x8(w16[k])), d);
        v128_t f1 = wasm_f32x4_mul(wasm_f32x4_convert_i32x4(wasm_i32x4_extend_high_i16x8(w16[k])), d);
        if (legacy_has_min(kind)) {
          f0 = wasm_f32x4_add(f0, m);
          f1 = wasm_f32x4_add(f1, m);
        }
        wasm_v128_store(o + 16 * h + 8 * k, f0);
        wasm_v128_store(o + 16 * h + 8 * k + 4, f1);
      }
    }
  }
}

/* matvec_, dequant_row_ and act_ of each type above, over the kind's shared code. */
#define LEGACY_KERNELS(sfx, KIND)                                                                         \
  M64_INLINE void matvec_##sfx(float *out, const uint8_t *w, const float *x, uint8_t *scratch,          \
                               uint32_t rows, uint32_t cols) {                                          \
    matvec_legacy(KIND, out, w, x, scratch, rows, cols);                                                \
  }                                                                                                     \
  M64_INLINE void dequant_row_##sfx(float *out, const uint8_t *row, uint32_t n) {                       \
    dequant_legacy(KIND, out, row, n);                                                                  \
  }                                                                                                     \
  M64_INLINE void act_##sfx(uint8_t *xq, const float *x, uint32_t cols) { act_legacy(KIND, xq, x, cols); }
LEGACY_KERNELS(q4_1, M64_LK_Q4_1)
LEGACY_KERNELS(q5_0, M64_LK_Q5_0)
LEGACY_KERNELS(q5_1, M64_LK_Q5_1)
LEGACY_KERNELS(iq4_nl, M64_LK_IQ4_NL)
#undef LEGACY_KERNELS

/* ------------------------------------------------------------------ BF16 */
/* 8 bf16 -> two f32x4: each half becomes the top of a u32 lane (a zero below it). */
M64_INLINE void bf16x8_to_f32(v128_t h, v128_t *lo, v128_t *hi) {
  const v128_t z = wasm_i16x8_splat(0);
  *lo = wasm_i16x8_shuffle(z, h, 0, 8, 1, 9, 2, 10, 3, 11);
  *hi = wasm_i16x8_shuffle(z, h, 4, 12, 5, 13, 6, 14, 7, 15);
}

M64_INLINE float bf16_to_f32(uint16_t h) {
  union { uint32_t u; float f; } v = {(uint32_t)h << 16};
  return v.f;
}

/* f32 -> bf16 -> f32, as llama.cpp's fp32_to_bf16: round to nearest even, NaN made quiet. */
M64_INLINE float f32_round_bf16(float f) {
  union { float f; uint32_t u; } v = {f};
  if ((v.u & 0x7fffffff) > 0x7f800000) v.u |= 0x00400000;
  else v.u += 0x7fff + ((v.u >> 16) & 1);
  v.u &= 0xffff0000u;
  return v.f;
}

M64_INLINE v128_t f32x4_round_bf16(v128_t u) {
  v128_t is_nan = wasm_i32x4_gt(wasm_v128_and(u, wasm_i32x4_splat(0x7fffffff)), wasm_i32x4_splat(0x7f800000));
  v128_t odd = wasm_v128_and(wasm_u32x4_shr(u, 16), wasm_i32x4_splat(1));
  v128_t r = wasm_i32x4_add(wasm_i32x4_add(u, wasm_i32x4_splat(0x7fff)), odd);
  r = wasm_v128_bitselect(wasm_v128_or(u, wasm_i32x4_splat(0x00400000)), r, is_nan);
  return wasm_v128_and(r, wasm_i32x4_splat((int32_t)0xffff0000u));
}

M64_INLINE float dot_bf16(const uint8_t *w, const float *x, uint32_t n) {
  v128_t a0 = wasm_f32x4_splat(0), a1 = a0, a2 = a0, a3 = a0;
  uint32_t i = 0;
  for (; i + 16 <= n; i += 16) {
    v128_t l0, h0, l1, h1;
    bf16x8_to_f32(wasm_v128_load(w + 2 * i), &l0, &h0);
    bf16x8_to_f32(wasm_v128_load(w + 2 * i + 16), &l1, &h1);
    a0 = wasm_f32x4_add(a0, wasm_f32x4_mul(l0, wasm_v128_load(x + i)));
    a1 = wasm_f32x4_add(a1, wasm_f32x4_mul(h0, wasm_v128_load(x + i + 4)));
    a2 = wasm_f32x4_add(a2, wasm_f32x4_mul(l1, wasm_v128_load(x + i + 8)));
    a3 = wasm_f32x4_add(a3, wasm_f32x4_mul(h1, wasm_v128_load(x + i + 12)));
  }
  for (; i + 8 <= n; i += 8) {
    v128_t l0, h0;
    bf16x8_to_f32(wasm_v128_load(w + 2 * i), &l0, &h0);
    a0 = wasm_f32x4_add(a0, wasm_f32x4_mul(l0, wasm_v128_load(x + i)));
    a1 = wasm_f32x4_add(a1, wasm_f32x4_mul(h0, wasm_v128_load(x + i + 4)));
  }
  float s = hsum_f32x4(wasm_f32x4_add(wasm_f32x4_add(a0, a1), wasm_f32x4_add(a2, a3)));
  for (; i < n; i++) s += bf16_to_f32(load_u16(w + 2 * i)) * x[i];
  return s;
}

/* x rounded to bf16 precision (kept as f32 in scratch), as llama.cpp feeds BF16 weights. */
M64_INLINE void act_bf16(uint8_t *xq, const float *x, uint32_t cols) {
  float *xr = (float *)xq;
  uint32_t i = 0;
  for (; i + 4 <= cols; i += 4) wasm_v128_store(xr + i, f32x4_round_bf16(wasm_v128_load(x + i)));
  for (; i < cols; i++) xr[i] = f32_round_bf16(x[i]);
}

M64_INLINE void rows_bf16(float *out, const uint8_t *w, const uint8_t *xq, uint32_t rows, uint32_t cols) {
  for (uint32_t r = 0; r < rows; r++) out[r] = dot_bf16(w + (uint64_t)r * cols * 2, (const float *)xq, cols);
}

M64_INLINE void matvec_bf16(float *out, const uint8_t *w, const float *x, uint8_t *scratch,
                            uint32_t rows, uint32_t cols) {
  act_bf16(scratch, x, cols);
  rows_bf16(out, w, scratch, rows, cols);
}

M64_INLINE void dequant_row_bf16(float *out, const uint8_t *row, uint32_t n) {
  uint32_t i = 0;
  for (; i + 8 <= n; i += 8) {
    v128_t lo, hi;
    bf16x8_to_f32(wasm_v128_load(row + 2 * i), &lo, &hi);
    wasm_v128_store(out + i, lo);
    wasm_v128_store(out + i + 4, hi);
  }
  for (; i < n; i++) out[i] = bf16_to_f32(load_u16(row + 2 * i));
}

#endif
