/* kernels_kquants.h — kernels for K-quants Q2_K..Q6_K and IQ4_XS (Q8_K activations).
 * Included by kernels.h after the F32/F16/Q8_0/Q4_0 families and their helpers.
 *
 * Weight layouts are ggml's (ggml-common.h), 256 elements per super-block, f16 fields
 * little-endian:
 *   Q2_K   84 B: scales[16] (lo nibble scale, hi nibble min, per 16), qs[64], d, dmin
 *   Q3_K  110 B: hmask[32], qs[64], scales[12] (16 x 6 bits, biased by 32), d
 *   Q4_K  144 B: d, dmin, scales[12] (8 x 6-bit scale + 8 x 6-bit min, per 32), qs[128]
 *   Q5_K  176 B: d, dmin, scales[12], qh[32], qs[128]
 *   Q6_K  210 B: ql[128], qh[64], int8 scales[16], d
 *   IQ4_XS 136 B: d, scales_h (u16), scales_l[4], qs[128] (indices into kvalues_iq4nl)
 *
 * Numerics follow llama.cpp's ggml_vec_dot_*_q8_K: the activation is quantized once per
 * matvec to Q8_K (per 256: d = max/-127 of the signed largest-|x| element, q = round-half-
 * even(x/d) clamped to 127, bsums = sums of 16 consecutive q), each weight block gives an
 * integer sum of scale_j * dot(q_w, q_x) over its sub-blocks, scaled by d_w * d_x, minus
 * dmin_w * d_x * sum_j min_j * bsum_j where the format has mins.
 *
 * Scratch layout (an expanded Q8_K, same numbers): per 256-block KQ8_BYTES bytes:
 *   +0 f32 d | +16 i16 bsums[16] (per 16) | +48 i16 bsums32[8] (per 32) |
 *   +64 i16 q[256], each group of 16 stored as its 8 even elements then its 8 odd ones.
 * Keeping q as i16 spares every row the i8->i16 widening of the activation; the
 * even/odd order matches how weight bytes split into i16 lanes (and 0xff / shr 8), so
 * one i32x4.dot_i16x8_s (pmaddwd) takes 8 weights with no widening shuffles.
 *
 * Unsigned weights: Q3_K (q+4*hbit-4), Q6_K (q-32) and IQ4_XS (table+128) are dotted as
 * unsigned values and corrected per block with the bsums (offset * sum_j sc_j * bsum_j).
 * Scales are applied by narrowing two sub-blocks' partial sums to i16 and one more
 * dot_i16x8 against [sc_a x4, sc_b x4] (partials fit i16 for every type but IQ4_XS,
 * which multiplies i32 lanes instead). Each block's integer sums are reduced exactly
 * before the f32 scaling. Rows go two per pass so the activation loads are shared, and
 * the f16 scales come from kernels.h's f16 table. Block pointers go through KQ_OPAQUE so
 * loads keep immediate offsets in the wasm (measured: fewer instructions per load after
 * AOT). Q4_K's matvec rewrites the odds of the layout above (see Q4_K below).
 * dequant_row_* (embedding lookups, not hot) are scalar, in llama.cpp's operation order,
 * so they match dequantize_row_* exactly.
 */
#ifndef M64_KERNELS_KQUANTS_H
#define M64_KERNELS_KQUANTS_H

#define KQ_QK 256
#define Q2_K_BYTES 84
#define Q3_K_BYTES 110
#define Q4_K_BYTES 144
#define Q5_K_BYTES 176
#define Q6_K_BYTES 210
#define IQ4_XS_BYTES 136
#define KQ8_BYTES 576 /* one expanded Q8_K block in scratch: 2.25 bytes per column */
#define KQ8_BS16 16
#define KQ8_BS32 48
#define KQ8_Q 64
#define KQ8I_BYTES 320 /* the i8 layout: d, bsums16, bsums32 as above, then i8 q[256] in order */

M64_INLINE uint32_t kq_load_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

M64_INLINE float kq_load_f32(const uint8_t *p) {
  float f;
  __builtin_memcpy(&f, p, 4);
  return f;
}

/* Per-lane sums of four i32x4 vectors, transposed: [sum t0, sum t1, sum t2, sum t3]. */
M64_INLINE v128_t kq_hsum4(v128_t t0, v128_t t1, v128_t t2, v128_t t3) {
  v128_t s01 = wasm_i32x4_add(wasm_i32x4_shuffle(t0, t1, 0, 4, 1, 5), wasm_i32x4_shuffle(t0, t1, 2, 6, 3, 7));
  v128_t s23 = wasm_i32x4_add(wasm_i32x4_shuffle(t2, t3, 0, 4, 1, 5), wasm_i32x4_shuffle(t2, t3, 2, 6, 3, 7));
  return wasm_i32x4_add(wasm_i32x4_shuffle(s01, s23, 0, 1, 4, 5), wasm_i32x4_shuffle(s01, s23, 2, 3, 6, 7));
}

/* ------------------------------------------------------------------ Q8_K activations */
/* Quantizes x (n a multiple of 256) into expanded Q8_K blocks (layout above), or with i8
 * set into the i8 layout (KQ8I_BYTES a block: q as i8 in element order at +64). */
M64_INLINE void kq_quantize(uint8_t *xq, const float *x, uint32_t n, int i8) {
  const v128_t ones = wasm_i16x8_splat(1);
  const uint32_t block_bytes = i8 ? KQ8I_BYTES : KQ8_BYTES;
  for (uint32_t b = 0; b < n / KQ_QK; b++) {
    const float *v = x + (uint64_t)b * KQ_QK;
    uint8_t *blk = xq + (uint64_t)b * block_bytes;
    v128_t m0 = wasm_f32x4_splat(0), m1 = m0, m2 = m0, m3 = m0;
    for (int j = 0; j < KQ_QK; j += 16) {
      m0 = wasm_f32x4_max(m0, wasm_f32x4_abs(wasm_v128_load(v + j)));
      m1 = wasm_f32x4_max(m1, wasm_f32x4_abs(wasm_v128_load(v + j + 4)));
      m2 = wasm_f32x4_max(m2, wasm_f32x4_abs(wasm_v128_load(v + j + 8)));
      m3 = wasm_f32x4_max(m3, wasm_f32x4_abs(wasm_v128_load(v + j + 12)));
    }
    v128_t m = wasm_f32x4_max(wasm_f32x4_max(m0, m1), wasm_f32x4_max(m2, m3));
    m = wasm_f32x4_max(m, wasm_i32x4_shuffle(m, m, 2, 3, 0, 1));
    m = wasm_f32x4_max(m, wasm_i32x4_shuffle(m, m, 1, 0, 3, 2));
    const float amax = wasm_f32x4_extract_lane(m, 0);
    if (amax == 0.0f) { /* d = 0, q = 0, bsums = 0 */
      const v128_t z = wasm_i32x4_splat(0);
      for (uint32_t j = 0; j < block_bytes; j += 16) wasm_v128_store(blk + j, z);
      continue;
    }
    /* the first element of largest magnitude, with its sign (llama.cpp's `max`) */
    float mx = amax;
    for (int j = 0; j < KQ_QK; j += 4) {
      v128_t hit = wasm_f32x4_eq(wasm_f32x4_abs(wasm_v128_load(v + j)), m);
      if (wasm_v128_any_true(hit)) {
        mx = v[j + __builtin_ctz((unsigned)wasm_i32x4_bitmask(hit))];
        break;
      }
    }
    const float iscale = -127.f / mx;
    const float d = 1.0f / iscale;
    const v128_t vis = wasm_f32x4_splat(iscale);
    int16_t *q = (int16_t *)(blk + KQ8_Q);
    v128_t t[4], r[4]; /* t: per-group i32 partials; r[k]: bsums of groups 4k..4k+3 */
    for (int g = 0; g < 16; g++) {
      const float *vg = v + 16 * g;
      v128_t i0 = wasm_i32x4_trunc_sat_f32x4(wasm_f32x4_nearest(wasm_f32x4_mul(wasm_v128_load(vg), vis)));
      v128_t i1 = wasm_i32x4_trunc_sat_f32x4(wasm_f32x4_nearest(wasm_f32x4_mul(wasm_v128_load(vg + 4), vis)));
      v128_t i2 = wasm_i32x4_trunc_sat_f32x4(wasm_f32x4_nearest(wasm_f32x4_mul(wasm_v128_load(vg + 8), vis)));
      v128_t i3 = wasm_i32x4_trunc_sat_f32x4(wasm_f32x4_nearest(wasm_f32x4_mul(wasm_v128_load(vg + 12), vis)));
      /* |q| <= 127 by construction; clamp as llama.cpp does (min 127) */
      const v128_t hi = wasm_i16x8_splat(127);
      v128_t a = wasm_i16x8_min(wasm_i16x8_narrow_i32x4(i0, i1), hi); /* elements 0..7 */
      v128_t c = wasm_i16x8_min(wasm_i16x8_narrow_i32x4(i2, i3), hi); /* elements 8..15 */
      if (i8) {
        wasm_v128_store(blk + KQ8_Q + 16 * g, wasm_i8x16_narrow_i16x8(a, c));
      } else {
        wasm_v128_store(q + 16 * g, wasm_i16x8_shuffle(a, c, 0, 2, 4, 6, 8, 10, 12, 14));
        wasm_v128_store(q + 16 * g + 8, wasm_i16x8_shuffle(a, c, 1, 3, 5, 7, 9, 11, 13, 15));
      }
      t[g & 3] = wasm_i32x4_dot_i16x8(wasm_i16x8_add(a, c), ones);
      if ((g & 3) == 3) r[g >> 2] = kq_hsum4(t[0], t[1], t[2], t[3]);
    }
    const v128_t bs16[2] = {wasm_i16x8_narrow_i32x4(r[0], r[1]), wasm_i16x8_narrow_i32x4(r[2], r[3])};
    wasm_v128_store(blk, wasm_f32x4_make(d, 0, 0, 0));
    wasm_v128_store(blk + KQ8_BS16, bs16[0]);
    wasm_v128_store(blk + KQ8_BS16 + 16, bs16[1]);
    wasm_v128_store(blk + KQ8_BS32, wasm_i16x8_narrow_i32x4(wasm_i32x4_dot_i16x8(bs16[0], ones),
                                                            wasm_i32x4_dot_i16x8(bs16[1], ones)));
  }
}
M64_INLINE void quantize_q8_K(uint8_t *xq, const float *x, uint32_t n) { kq_quantize(xq, x, n, 0); }
M64_INLINE void quantize_q8_K_i8(uint8_t *xq, const float *x, uint32_t n) { kq_quantize(xq, x, n, 1); }

/* ------------------------------------------------------------------ the i8 dot
 * M64_KERNELS_DOT_I8(acc, a, b): acc + per i32 lane the sum of its four products a (i8)
 * times b (u8, every byte < 128): relaxed SIMD's i32x4.relaxed_dot_i8x16_i7x16_add_s where
 * its result is exact. One VNNI/SDOT instruction natively, but wasm2c 1.0.39 rejects
 * relaxed SIMD, so the module imports it (m64.dot_i8): the AOT build defines it inline
 * (native_dot.h); a host without it answers 0 to m64.has_dot_i8 (M64_KERNELS_HAS_DOT_I8)
 * and the kernels keep their i16 path. Elsewhere (tests, bench natively) the plain SIMD128
 * version below, with a switch so tests run both paths. */
M64_INLINE v128_t kq_dot_i8_plain(v128_t acc, v128_t a, v128_t b) {
  const v128_t lo = wasm_i32x4_dot_i16x8(wasm_i16x8_extend_low_i8x16(a), wasm_u16x8_extend_low_u8x16(b));
  const v128_t hi = wasm_i32x4_dot_i16x8(wasm_i16x8_extend_high_i8x16(a), wasm_u16x8_extend_high_u8x16(b));
  return wasm_i32x4_add(acc, wasm_i32x4_add(wasm_i32x4_shuffle(lo, hi, 0, 2, 4, 6), wasm_i32x4_shuffle(lo, hi, 1, 3, 5, 7)));
}
#ifndef M64_KERNELS_DOT_I8
#define M64_KERNELS_DOT_I8 kq_dot_i8_plain
static int kq_dot_i8_enabled = 1; /* tests turn it off to run the i16 path */
#define M64_KERNELS_HAS_DOT_I8() kq_dot_i8_enabled
#endif
#define KQ_DOT M64_KERNELS_DOT_I8
/* M64_KERNELS_KQ_ROWS(type, out, w, xq, rows, nb, pairs): a host's own Q4_K/Q5_K/Q6_K rows over
 * the i8 activation (m64_module.h's m64.kq_rows), where M64_KERNELS_HAS_KQ_ROWS() says so;
 * elsewhere none. (Prefill keeps the module's i16 tiles: measured, bench/kernels n = 32,
 * they match a 256-bit per-row-and-input product on Q4_K and beat it on Q6_K.) */
#ifndef M64_KERNELS_KQ_ROWS
#define M64_KERNELS_HAS_KQ_ROWS() 0
#define M64_KERNELS_KQ_ROWS(type, out, w, xq, rows, nb, pairs) ((void)0)
#endif

/* ------------------------------------------------------------------ shared pieces */
/* 16 weights as bytes (unsigned, element l in byte l) dotted with one 16-group of the
 * expanded activation (8 evens, 8 odds): i32x4 partial sums, 4 products per lane. */
M64_INLINE v128_t kq_dot16(v128_t wb, const int16_t *xg) {
  v128_t even = wasm_v128_and(wb, wasm_i16x8_splat(0x00ff));
  v128_t odd = wasm_u16x8_shr(wb, 8);
  return wasm_i32x4_add(wasm_i32x4_dot_i16x8(even, wasm_v128_load(xg)),
                        wasm_i32x4_dot_i16x8(odd, wasm_v128_load(xg + 8)));
}

/* sa, sb: partial sums of two sub-blocks (each lane fits i16); sc: i16 lanes
 * [sc_a x4, sc_b x4]. Returns i32x4 lanes summing to sc_a * sum(sa) + sc_b * sum(sb). */
M64_INLINE v128_t kq_scale2(v128_t sa, v128_t sb, v128_t sc) {
  return wasm_i32x4_dot_i16x8(wasm_i16x8_narrow_i32x4(sa, sb), sc);
}

/* i16 lanes [s[a] x4, s[a+1] x4] for a = 0, 2, 4, 6 of the i16x8 s. */
#define KQ_PAIRS(p, s)                                             \
  do {                                                             \
    (p)[0] = wasm_i16x8_shuffle((s), (s), 0, 0, 0, 0, 1, 1, 1, 1); \
    (p)[1] = wasm_i16x8_shuffle((s), (s), 2, 2, 2, 2, 3, 3, 3, 3); \
    (p)[2] = wasm_i16x8_shuffle((s), (s), 4, 4, 4, 4, 5, 5, 5, 5); \
    (p)[3] = wasm_i16x8_shuffle((s), (s), 6, 6, 6, 6, 7, 7, 7, 7); \
  } while (0)

/* Full unrolling where loop indices pick shuffle patterns (clang leaves a long loop body
 * rolled otherwise). */
#if defined(__clang__)
#define KQ_UNROLL _Pragma("clang loop unroll(full)")
#else
#define KQ_UNROLL
#endif

/* Byte-packed bits moved within each byte by an i16 shift (callers mask the result so
 * no bit crosses between the two bytes of a lane): bit `from` to bit `to`. */
M64_INLINE v128_t kq_move_bits(v128_t v, int from, int to) {
  return from > to ? wasm_u16x8_shr(v, (uint32_t)(from - to))
       : from < to ? wasm_i16x8_shl(v, (uint32_t)(to - from)) : v;
}

/* One block's contribution d * sum(isum) - dmin * sum(imin): both integer sums are
 * reduced exactly before the f32 scaling (as llama.cpp's scalar Q2_K sums). Separate
 * statements keep native builds from contracting into an fma wasm does not have. */
M64_INLINE float kq_block2(v128_t isum, float d, v128_t imin, float dmin) {
  v128_t s = wasm_i32x4_add(wasm_i32x4_shuffle(isum, imin, 0, 4, 1, 5), wasm_i32x4_shuffle(isum, imin, 2, 6, 3, 7));
  s = wasm_i32x4_add(s, wasm_i32x4_shuffle(s, s, 2, 3, 0, 1));
  const float a = (float)wasm_i32x4_extract_lane(s, 0) * d;
  const float m = (float)wasm_i32x4_extract_lane(s, 1) * dmin;
  return a - m;
}

M64_INLINE float kq_block1(v128_t isum, float d) {
  v128_t s = wasm_i32x4_add(isum, wasm_i32x4_shuffle(isum, isum, 2, 3, 0, 1));
  s = wasm_i32x4_add(s, wasm_i32x4_shuffle(s, s, 1, 0, 3, 2));
  return (float)wasm_i32x4_extract_lane(s, 0) * d;
}

/* Where row r of a K-quant matrix of `rows` rows starts and how far apart its blocks are
 * (*step), in ggml's row layout or, with pairs set, the row-pair one (m64_formats.h: rows
 * 2p and 2p + 1 interleaved block by block; an odd last row as it is). */
M64_INLINE const uint8_t *kq_row_at(const uint8_t *w, uint32_t r, uint32_t rows, size_t row_bytes,
                                    uint32_t bytes, int pairs, size_t *step) {
  if (pairs && (r | 1u) < rows) {
    *step = 2 * (size_t)bytes;
    return w + (size_t)(r & ~1u) * row_bytes + (r & 1u) * bytes;
  }
  *step = bytes;
  return w + (size_t)r * row_bytes;
}

/* One row's dot product with the expanded activation: kq_blk_<sfx> per block (blocks
 * `step` bytes apart), summed in f32 in block order (the rows a matvec does not pair, and
 * the prefill's other K-quants). */
#define KQ_ROW(sfx, XBYTES)                                                                     \
  M64_INLINE float kq_row_##sfx(const uint8_t *wb, size_t step, const uint8_t *xq,              \
                                const uint8_t *xq_end) {                                        \
    float acc = 0;                                                                              \
    for (const uint8_t *xb = xq; xb != xq_end; xb += (XBYTES), wb += step) {                    \
      const uint8_t *xo = xb, *wo = wb;                                                         \
      KQ_OPAQUE(xo);                                                                            \
      KQ_OPAQUE(wo);                                                                            \
      acc += kq_blk_##sfx(wo, xo);                                                              \
    }                                                                                           \
    return acc;                                                                                 \
  }

/* Two rows per pass: the activation loads of one block are shared by both rows (in the
 * AOT-compiled wasm every load costs an address computation and a base reload). In the
 * row-pair layout (matvec_<sfx>_pairs) the pass reads one sequential stream; in ggml's
 * rows (matvec_<sfx>), two. Measured on a 7B Q4_K matrix from memory (bench/kernels,
 * 1 thread): the one stream ~17% faster. (Four rows per pass, tried for Q4_K, did less
 * work per block but read four streams: two rows decode ~13% faster on 2 threads.)
 * ACT prepares the activation (quantize_q8_K, or Q4_K's variant of its layout). */
#define KQ_MATVEC_IMPL(sfx, BYTES, ACT, XBYTES)                                                  \
  KQ_ROW(sfx, XBYTES)                                                                           \
  M64_INLINE void kq_matvec_##sfx(float *out, const uint8_t *w, const float *x, uint8_t *xq,    \
                                  uint32_t rows, uint32_t cols, int pairs) {                    \
    f16_table_init();                                                                           \
    ACT(xq, x, cols);                                                                           \
    const uint32_t nb = cols / KQ_QK;                                                           \
    const size_t row_bytes = (size_t)nb * (BYTES), step = pairs ? 2 * (BYTES) : (BYTES);        \
    const uint8_t *const xq_end = xq + (size_t)nb * (XBYTES);                                   \
    uint32_t r = 0;                                                                             \
    for (; r + 2 <= rows; r += 2) {                                                             \
      const uint8_t *w0 = w + r * row_bytes, *w1 = w0 + (pairs ? (BYTES) : row_bytes);          \
      float acc0 = 0, acc1 = 0;                                                                 \
      for (const uint8_t *xb = xq; xb != xq_end; xb += (XBYTES)) {                              \
        KQ_READ_AHEAD(w0, w1, pairs, (BYTES));                                                  \
        const uint8_t *xo = xb, *wo0 = w0, *wo1 = w1;                                           \
        KQ_OPAQUE(xo);                                                                          \
        KQ_OPAQUE(wo0);                                                                         \
        KQ_OPAQUE(wo1);                                                                         \
        acc0 += kq_blk_##sfx(wo0, xo);                                                          \
        acc1 += kq_blk_##sfx(wo1, xo);                                                          \
        w0 += step;                                                                             \
        w1 += step;                                                                             \
      }                                                                                         \
      out[r] = acc0;                                                                            \
      out[r + 1] = acc1;                                                                        \
    }                                                                                           \
    if (r < rows) out[r] = kq_row_##sfx(w + r * row_bytes, (BYTES), xq, xq_end);                \
  }
/* The public matvec_<sfx> and matvec_<sfx>_pairs: the i16 kernels above, or, for the types
 * that have them (KQ_MATVEC_I8), the i8 ones where the host has the i8 dot. */
#define KQ_MATVEC_API(sfx, PICK)                                                                \
  M64_INLINE void matvec_##sfx(float *out, const uint8_t *w, const float *x, uint8_t *xq,       \
                               uint32_t rows, uint32_t cols) {                                  \
    PICK(sfx)(out, w, x, xq, rows, cols, 0);                                                    \
  }                                                                                             \
  M64_INLINE void matvec_##sfx##_pairs(float *out, const uint8_t *w, const float *x,            \
                                       uint8_t *xq, uint32_t rows, uint32_t cols) {             \
    PICK(sfx)(out, w, x, xq, rows, cols, 1);                                                    \
  }
#define KQ_PICK_I16(sfx) kq_matvec_##sfx
/* The f16 scales of two blocks w0, w1 (d at byte off; with mins the f16 min follows) as
 * f32 [d0, dmin0, d1, dmin1], or [d0, 0, d1, 0]: F16_SCALE's values, in one SIMD step.
 * Whole 16-byte loads inside each block (ending at the scale when it is the block's last
 * field): the lane loads cost explicit bounds checks once AOT-compiled. */
M64_INLINE v128_t kq_scales2(const uint8_t *w0, const uint8_t *w1, uint32_t off, int mins) {
  v128_t h, lo, hi;
  if (mins) {
    h = wasm_i8x16_shuffle(wasm_v128_load(w0 + off), wasm_v128_load(w1 + off), 0, 1, 2, 3, 16, 17, 18, 19, 0, 0,
                           0, 0, 0, 0, 0, 0);
  } else {
    h = wasm_i8x16_shuffle(wasm_v128_load(w0 + off - 14), wasm_v128_load(w1 + off - 14), 14, 15, 14, 15, 30, 31,
                           30, 31, 0, 0, 0, 0, 0, 0, 0, 0);
    h = wasm_v128_and(h, wasm_i32x4_make(0xffff, 0xffff, 0, 0));
  }
  f16x8_to_f32(h, &lo, &hi);
  return lo;
}

/* A type with i8 kernels beside its i16 ones: kq_ib_<sfx>(wb, xb, &isum, &imin) gives a
 * block's integer sums over the i8 activation (KQ8I_BYTES a block; imin 0 without mins),
 * the f16 d at byte DOFF (and dmin after it where MINS). Two rows per pass, as KQ_MATVEC,
 * but their f32 scaling in one vector: lanes [S0, M0, S1, M1] times [d0, dmin0, d1, dmin1]
 * (each times dx), then a - m into the accumulator's lanes 0 and 2: per row the very
 * operations of kq_block2 / kq_block1 (a - 0 is a), so the floats are the i16 kernels'.
 * The host picks the path (M64_KERNELS_HAS_DOT_I8). */
#define KQ_PICK_DOT(sfx) kq_matvec_##sfx##_pick
#define KQ_MATVEC_DOT(sfx, BYTES, DOFF, MINS, ROWS_TYPE)                                          \
  M64_INLINE float kq_blk_##sfx##_i8(const uint8_t *wb, const uint8_t *xb) {                      \
    v128_t s, m;                                                                                  \
    kq_ib_##sfx(wb, xb, &s, &m);                                                                  \
    const float dx = kq_load_f32(xb);                                                             \
    return (MINS) ? kq_block2(s, F16_SCALE(wb + (DOFF)) * dx, m, F16_SCALE(wb + (DOFF) + 2) * dx) \
                  : kq_block1(s, F16_SCALE(wb + (DOFF)) * dx);                                    \
  }                                                                                               \
  KQ_ROW(sfx##_i8, KQ8I_BYTES)                                                                    \
  M64_INLINE void kq_matvec_##sfx##_i8(float *out, const uint8_t *w, const float *x, uint8_t *xq, \
                                       uint32_t rows, uint32_t cols, int pairs) {                 \
    f16_table_init();                                                                             \
    quantize_q8_K_i8(xq, x, cols);                                                                \
    const uint32_t nb = cols / KQ_QK;                                                             \
    const size_t row_bytes = (size_t)nb * (BYTES), step = pairs ? 2 * (BYTES) : (BYTES);          \
    const uint8_t *const xq_end = xq + (size_t)nb * KQ8I_BYTES;                                   \
    uint32_t r = 0;                                                                               \
    for (; r + 2 <= rows; r += 2) {                                                               \
      const uint8_t *w0 = w + r * row_bytes, *w1 = w0 + (pairs ? (BYTES) : row_bytes);            \
      v128_t acc = wasm_f32x4_splat(0);                                                           \
      for (const uint8_t *xb = xq; xb != xq_end; xb += KQ8I_BYTES) {                              \
        KQ_READ_AHEAD(w0, w1, pairs, (BYTES));                                                    \
        const uint8_t *xo = xb, *wo0 = w0, *wo1 = w1;                                             \
        KQ_OPAQUE(xo);                                                                            \
        KQ_OPAQUE(wo0);                                                                           \
        KQ_OPAQUE(wo1);                                                                           \
        v128_t s0, m0, s1, m1;                                                                    \
        kq_ib_##sfx(wo0, xo, &s0, &m0);                                                           \
        kq_ib_##sfx(wo1, xo, &s1, &m1);                                                           \
        const v128_t dv = wasm_f32x4_mul(kq_scales2(wo0, wo1, (DOFF), (MINS)),                    \
                                         wasm_f32x4_splat(kq_load_f32(xo)));                      \
        const v128_t v = wasm_f32x4_mul(wasm_f32x4_convert_i32x4(kq_hsum4(s0, m0, s1, m1)), dv);  \
        acc = wasm_f32x4_add(acc, wasm_f32x4_sub(v, wasm_i32x4_shuffle(v, v, 1, 1, 3, 3)));       \
        w0 += step;                                                                               \
        w1 += step;                                                                               \
      }                                                                                           \
      out[r] = wasm_f32x4_extract_lane(acc, 0);                                                   \
      out[r + 1] = wasm_f32x4_extract_lane(acc, 2);                                               \
    }                                                                                             \
    if (r < rows) out[r] = kq_row_##sfx##_i8(w + r * row_bytes, (BYTES), xq, xq_end);             \
  }                                                                                               \
  M64_INLINE void kq_matvec_##sfx##_pick(float *out, const uint8_t *w, const float *x,            \
                                         uint8_t *xq, uint32_t rows, uint32_t cols, int pairs) {  \
    if ((ROWS_TYPE) && M64_KERNELS_HAS_KQ_ROWS()) {                                               \
      quantize_q8_K_i8(xq, x, cols);                                                              \
      M64_KERNELS_KQ_ROWS((ROWS_TYPE), out, w, xq, rows, cols / KQ_QK, (uint32_t)pairs);          \
    } else if (M64_KERNELS_HAS_DOT_I8())                                                          \
      kq_matvec_##sfx##_i8(out, w, x, xq, rows, cols, pairs);                                     \
    else                                                                                          \
      kq_matvec_##sfx(out, w, x, xq, rows, cols, pairs);                                          \
  }                                                                                               \
  KQ_MATVEC_API(sfx, KQ_PICK_DOT)
#define KQ_MATVEC(sfx, BYTES, ACT)            \
  KQ_MATVEC_IMPL(sfx, BYTES, ACT, KQ8_BYTES) \
  KQ_MATVEC_API(sfx, KQ_PICK_I16)

/* Read-ahead for the weights' stream, KQ_AHEAD bytes before the pass reaches them: in the
 * module the host's prefetch hint (m64_module.h; model.h names it M64_KERNELS_PREFETCH;
 * bench/kernels imports it too), elsewhere (tests) nothing. The CPU's own prefetcher starts
 * over at every 4 KiB page. Measured (bench/kernels' Q4_K 32768x4096 natively with
 * __builtin_prefetch, 1 thread, row pairs, a 10 GB/s Intel): 5.25 -> 5.8 GB/s at 2 KiB ahead
 * (512: 5.7; 1 KiB: 5.75); on a 27 GB/s AMD EPYC (Zen 5; the i8 kernels, two rows, best of
 * 5, other work running) Q4_K 13.1 / 15.6 / 16.5 / 13.7 GB/s at 2 / 4 / 8 / 12 KiB, Q6_K
 * 7.2 / 9.1 / 7.6 / 8.6: 4 KiB. */
#define KQ_AHEAD 4096u
#ifdef M64_KERNELS_PREFETCH
#define KQ_READ_AHEAD(w0, w1, pairs, bytes)                                            \
  do {                                                                                 \
    if (pairs) {                                                                       \
      M64_KERNELS_PREFETCH((w0) + KQ_AHEAD, 2 * (bytes));                              \
    } else {                                                                           \
      M64_KERNELS_PREFETCH((w0) + KQ_AHEAD, (bytes));                                  \
      M64_KERNELS_PREFETCH((w1) + KQ_AHEAD, (bytes));                                  \
    }                                                                                  \
  } while (0)
#else
#define KQ_READ_AHEAD(w0, w1, pairs, bytes) ((void)0)
#endif

/* Hides a pointer's origin from the optimizer: loads at constant offsets from it then
 * compile to wasm loads with immediate offsets (one x86 instruction each once AOT-compiled)
 * instead of loop-strength-reduced i32 address arithmetic per load. Emits no code. */
#define KQ_OPAQUE(p) __asm__("" : "+r"(p))

/* ------------------------------------------------------------------ Q2_K */
/* One weight block (wb) against one expanded Q8_K block (xb). */
M64_INLINE float kq_blk_q2_K(const uint8_t *wb, const uint8_t *xb) {
  const v128_t m2 = wasm_i8x16_splat(3), m4 = wasm_i8x16_splat(0x0f);
  const int16_t *xv = (const int16_t *)(xb + KQ8_Q);
  const float dx = kq_load_f32(xb);
  const float d = F16_SCALE(wb + 80) * dx, dmin = F16_SCALE(wb + 82) * dx;
  const v128_t raw = wasm_v128_load(wb);
  const v128_t sc = wasm_v128_and(raw, m4), mn = wasm_v128_and(wasm_u16x8_shr(raw, 4), m4);
  const v128_t sch[2] = {wasm_u16x8_extend_low_u8x16(sc), wasm_u16x8_extend_high_u8x16(sc)};
  v128_t imin = wasm_i32x4_add(
      wasm_i32x4_dot_i16x8(wasm_u16x8_extend_low_u8x16(mn), wasm_v128_load(xb + KQ8_BS16)),
      wasm_i32x4_dot_i16x8(wasm_u16x8_extend_high_u8x16(mn), wasm_v128_load(xb + KQ8_BS16 + 16)));
  v128_t isum = wasm_i32x4_splat(0);
  for (int h = 0; h < 2; h++) {
    v128_t ps[4];
    KQ_PAIRS(ps, sch[h]);
    const v128_t v0 = wasm_v128_load(wb + 16 + 32 * h), v1 = wasm_v128_load(wb + 32 + 32 * h);
    const int16_t *xh = xv + 128 * h;
    for (int j = 0; j < 4; j++) { /* elements 128h + 32j + (0..15 | 16..31) */
      v128_t sa = kq_dot16(wasm_v128_and(wasm_u16x8_shr(v0, 2 * j), m2), xh + 32 * j);
      v128_t sb = kq_dot16(wasm_v128_and(wasm_u16x8_shr(v1, 2 * j), m2), xh + 32 * j + 16);
      isum = wasm_i32x4_add(isum, kq_scale2(sa, sb, ps[j]));
    }
  }
  return kq_block2(isum, d, imin, dmin);
}
KQ_MATVEC(q2_K, Q2_K_BYTES, quantize_q8_K)

M64_INLINE void dequant_row_q2_K(float *out, const uint8_t *row, uint32_t n) {
  for (uint32_t b = 0; b < n / KQ_QK; b++) {
    const uint8_t *blk = row + (uint64_t)b * Q2_K_BYTES;
    const float d = f16_to_f32(load_u16(blk + 80)), dmin = f16_to_f32(load_u16(blk + 82));
    float *y = out + (uint64_t)b * KQ_QK;
    for (int i = 0; i < KQ_QK; i++) {
      const int h = i / 128, j = (i % 128) / 32, l = i % 32, sc = blk[i / 16];
      const float dl = d * (float)(sc & 15), ml = dmin * (float)(sc >> 4);
      const float p = dl * (float)((blk[16 + 32 * h + l] >> (2 * j)) & 3);
      y[i] = p - ml;
    }
  }
}

/* ------------------------------------------------------------------ Q3_K */
/* The 16 6-bit scales (minus 32) as signed bytes. */
M64_INLINE v128_t kq_q3_scales(const uint8_t *s) {
  const uint32_t k1 = 0x03030303u, k2 = 0x0f0f0f0fu;
  const uint32_t a0 = kq_load_u32(s), a1 = kq_load_u32(s + 4), a2 = kq_load_u32(s + 8);
  v128_t v = wasm_i32x4_make((int32_t)((a0 & k2) | ((a2 & k1) << 4)),
                             (int32_t)((a1 & k2) | (((a2 >> 2) & k1) << 4)),
                             (int32_t)(((a0 >> 4) & k2) | (((a2 >> 4) & k1) << 4)),
                             (int32_t)(((a1 >> 4) & k2) | (((a2 >> 6) & k1) << 4)));
  return wasm_i8x16_sub(v, wasm_i8x16_splat(32));
}

/* One weight block (wb) against one expanded Q8_K block (xb). */
M64_INLINE float kq_blk_q3_K(const uint8_t *wb, const uint8_t *xb) {
  const v128_t m2 = wasm_i8x16_splat(3), b2 = wasm_i8x16_splat(4);
  const int16_t *xv = (const int16_t *)(xb + KQ8_Q);
  const float d = F16_SCALE(wb + 108) * kq_load_f32(xb);
  const v128_t s8 = kq_q3_scales(wb + 96);
  const v128_t sch[2] = {wasm_i16x8_extend_low_i8x16(s8), wasm_i16x8_extend_high_i8x16(s8)};
  const v128_t hm0 = wasm_v128_load(wb), hm1 = wasm_v128_load(wb + 16);
  /* weights dotted as q2 + 4*hbit in 0..7; the true value is that minus 4 */
  v128_t isum = wasm_i32x4_mul(
      wasm_i32x4_add(wasm_i32x4_dot_i16x8(sch[0], wasm_v128_load(xb + KQ8_BS16)),
                     wasm_i32x4_dot_i16x8(sch[1], wasm_v128_load(xb + KQ8_BS16 + 16))),
      wasm_i32x4_splat(-4));
  for (int h = 0; h < 2; h++) {
    v128_t ps[4];
    KQ_PAIRS(ps, sch[h]);
    const v128_t v0 = wasm_v128_load(wb + 32 + 32 * h), v1 = wasm_v128_load(wb + 48 + 32 * h);
    const int16_t *xh = xv + 128 * h;
    for (int j = 0; j < 4; j++) {
      const int k = 4 * h + j; /* hmask bit */
      v128_t qa = wasm_v128_or(wasm_v128_and(wasm_u16x8_shr(v0, 2 * j), m2),
                               wasm_v128_and(kq_move_bits(hm0, k, 2), b2));
      v128_t qb = wasm_v128_or(wasm_v128_and(wasm_u16x8_shr(v1, 2 * j), m2),
                               wasm_v128_and(kq_move_bits(hm1, k, 2), b2));
      isum = wasm_i32x4_add(isum, kq_scale2(kq_dot16(qa, xh + 32 * j), kq_dot16(qb, xh + 32 * j + 16), ps[j]));
    }
  }
  return kq_block1(isum, d);
}
KQ_MATVEC(q3_K, Q3_K_BYTES, quantize_q8_K)

M64_INLINE void dequant_row_q3_K(float *out, const uint8_t *row, uint32_t n) {
  for (uint32_t b = 0; b < n / KQ_QK; b++) {
    const uint8_t *blk = row + (uint64_t)b * Q3_K_BYTES;
    const float d = f16_to_f32(load_u16(blk + 108));
    int8_t sc[16];
    wasm_v128_store(sc, kq_q3_scales(blk + 96));
    float *y = out + (uint64_t)b * KQ_QK;
    for (int i = 0; i < KQ_QK; i++) {
      const int h = i / 128, j = (i % 128) / 32, l = i % 32;
      const float dl = d * (float)sc[i / 16];
      const int q = ((blk[32 + 32 * h + l] >> (2 * j)) & 3) - ((blk[l] >> (4 * h + j)) & 1 ? 0 : 4);
      y[i] = dl * (float)q;
    }
  }
}

/* ------------------------------------------------------------------ Q4_K / Q5_K */
/* 8 6-bit scales (bytes 0..7) and 8 6-bit mins (bytes 8..15) from the 12 packed bytes. */
M64_INLINE v128_t kq_scale_min_k4(const uint8_t *s) {
  const uint32_t a0 = kq_load_u32(s), a1 = kq_load_u32(s + 4), a2 = kq_load_u32(s + 8);
  const uint32_t k6 = 0x3f3f3f3fu, k4 = 0x0f0f0f0fu, k2 = 0x03030303u;
  return wasm_i32x4_make((int32_t)(a0 & k6), (int32_t)((a2 & k4) | (((a0 >> 6) & k2) << 4)),
                         (int32_t)(a1 & k6), (int32_t)(((a2 >> 4) & k4) | (((a1 >> 6) & k2) << 4)));
}

/* Q4_K's matvec reads each 16-group of the expanded activation as its 8 evens x_e and, in
 * place of the odds x_o, the coefficients x_o - 256 x_e (|.| <= 32639: still i16). A byte
 * pair's two low nibbles (n_e, n_o) then go into one i16 lane as n_e + 256 n_o with a
 * single AND, and n_o alone is that lane's high byte, moved down by a byte shuffle:
 *   n_e x_e + n_o x_o = (n_e + 256 n_o) x_e + n_o (x_o - 256 x_e),
 * the same integer sums, per 16 bytes two byte shuffles in place of two bit shifts and an
 * AND. The shuffle's mask is read from memory so that the AOT compiler keeps it a byte
 * shuffle (port 5 on x86, which the shifts and dots leave idle) instead of turning it back
 * into a shift. */
M64_INLINE void kq_odd_coefs(uint8_t *xq, uint32_t nb) {
  for (uint32_t b = 0; b < nb; b++) {
    int16_t *q = (int16_t *)(xq + (size_t)b * KQ8_BYTES + KQ8_Q);
    for (int g = 0; g < 16; g++) {
      const v128_t e = wasm_v128_load(q + 16 * g), o = wasm_v128_load(q + 16 * g + 8);
      wasm_v128_store(q + 16 * g + 8, wasm_i16x8_sub(o, wasm_i16x8_shl(e, 8)));
    }
  }
}

/* Byte 2i + 1 of each lane to byte 2i, zero above: a swizzle index of 16 gives 0. */
static const uint8_t kq_high_byte_down[16] __attribute__((aligned(16))) = {1, 16, 3, 16, 5, 16, 7, 16,
                                                                           9, 16, 11, 16, 13, 16, 15, 16};
M64_INLINE v128_t kq_high_byte_mask(void) {
  const uint8_t *p = kq_high_byte_down;
  KQ_OPAQUE(p); /* a load the compiler cannot fold into a constant */
  return wasm_v128_load(p);
}

/* 16 bytes of Q4_K nibbles (32 weights) against their activation (xlo: the 16-group of the
 * low nibbles' elements, xhi: the high nibbles'; layout above): partial sums of the two
 * sub-blocks, i32x4 each. */
M64_INLINE void kq_q4_dot16(v128_t v, const int16_t *xlo, const int16_t *xhi, v128_t hb, v128_t *sa, v128_t *sb) {
  const v128_t m4 = wasm_i8x16_splat(0x0f);
  const v128_t lo = wasm_v128_and(v, m4), hi = wasm_v128_and(wasm_u16x8_shr(v, 4), m4);
  *sa = wasm_i32x4_add(wasm_i32x4_dot_i16x8(lo, wasm_v128_load(xlo)),
                       wasm_i32x4_dot_i16x8(wasm_i8x16_swizzle(lo, hb), wasm_v128_load(xlo + 8)));
  *sb = wasm_i32x4_add(wasm_i32x4_dot_i16x8(hi, wasm_v128_load(xhi)),
                       wasm_i32x4_dot_i16x8(wasm_i8x16_swizzle(hi, hb), wasm_v128_load(xhi + 8)));
}

/* One weight block (wb) against one expanded Q8_K block (xb) in the layout above. */
M64_INLINE float kq_blk_q4_K(const uint8_t *wb, const uint8_t *xb) {
  const int16_t *xv = (const int16_t *)(xb + KQ8_Q);
  const v128_t hb = kq_high_byte_mask();
  const float dx = kq_load_f32(xb);
  const float d = F16_SCALE(wb) * dx, dmin = F16_SCALE(wb + 2) * dx;
  const v128_t sm = kq_scale_min_k4(wb + 4);
  v128_t ps[4];
  KQ_PAIRS(ps, wasm_u16x8_extend_low_u8x16(sm));
  const v128_t imin = wasm_i32x4_dot_i16x8(wasm_u16x8_extend_high_u8x16(sm), wasm_v128_load(xb + KQ8_BS32));
  v128_t isum = wasm_i32x4_splat(0);
  for (int c = 0; c < 4; c++) { /* elements 64c + (0..31 low nibbles | 32..63 high) */
    const int16_t *xc = xv + 64 * c;
    v128_t sa0, sb0, sa1, sb1;
    kq_q4_dot16(wasm_v128_load(wb + 16 + 32 * c), xc, xc + 32, hb, &sa0, &sb0);
    kq_q4_dot16(wasm_v128_load(wb + 32 + 32 * c), xc + 16, xc + 48, hb, &sa1, &sb1);
    isum = wasm_i32x4_add(isum, kq_scale2(wasm_i32x4_add(sa0, sa1), wasm_i32x4_add(sb0, sb1), ps[c]));
  }
  return kq_block2(isum, d, imin, dmin);
}

/* Scales (bytes 0..7) and mins (8..15) of a Q4_K/Q5_K block from its first 16 bytes
 * (d, dmin, 12 packed bytes s0..s11): kq_scale_min_k4 in SIMD. */
M64_INLINE v128_t kq_scale_min_k4_v(v128_t hdr) {
  /* low bits: [s0..3 & 63, s8..11 & 15, s4..7 & 63, s8..11 >> 4] */
  v128_t lo = wasm_i8x16_shuffle(hdr, wasm_u16x8_shr(hdr, 4), 4, 5, 6, 7, 12, 13, 14, 15, 8, 9, 10, 11, 28, 29, 30, 31);
  lo = wasm_v128_and(lo, wasm_i8x16_make(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 15, 15, 15, 15));
  /* bits 4..5 of scales/mins 4..7: bits 6..7 of s0..3 / s4..7 */
  v128_t hi = wasm_i8x16_shuffle(hdr, hdr, 4, 5, 6, 7, 4, 5, 6, 7, 8, 9, 10, 11, 8, 9, 10, 11);
  hi = wasm_v128_and(wasm_u16x8_shr(hi, 2), wasm_i32x4_make(0, 0x30303030, 0, 0x30303030));
  return wasm_v128_or(lo, hi);
}

/* The expanded Q8_K activation in the layout Q4_K's dots read (above). */
M64_INLINE void kq_act_q4_K(uint8_t *xq, const float *x, uint32_t cols) {
  quantize_q8_K(xq, x, cols);
  kq_odd_coefs(xq, cols / KQ_QK);
}
KQ_MATVEC_IMPL(q4_K, Q4_K_BYTES, kq_act_q4_K, KQ8_BYTES)

/* The same block over the i8 activation (KQ8I_BYTES): each 16 bytes of nibbles give two
 * i8 dots, low nibbles against elements 64c + l, high ones against 64c + 32 + l. A lane
 * sums 8 products of at most 15 * 127, so the sub-block sums still narrow to i16 exactly
 * and the block's integer sums are the ones above. */
M64_INLINE void kq_ib_q4_K(const uint8_t *wb, const uint8_t *xb, v128_t *isum_out, v128_t *imin) {
  const int8_t *xv = (const int8_t *)(xb + KQ8_Q);
  const v128_t m4 = wasm_i8x16_splat(0x0f), z = wasm_i32x4_splat(0);
  const v128_t sm = kq_scale_min_k4_v(wasm_v128_load(wb));
  v128_t ps[4];
  KQ_PAIRS(ps, wasm_u16x8_extend_low_u8x16(sm));
  *imin = wasm_i32x4_dot_i16x8(wasm_u16x8_extend_high_u8x16(sm), wasm_v128_load(xb + KQ8_BS32));
  v128_t isum = z;
  KQ_UNROLL
  for (int c = 0; c < 4; c++) {
    const v128_t v0 = wasm_v128_load(wb + 16 + 32 * c), v1 = wasm_v128_load(wb + 32 + 32 * c);
    const int8_t *xc = xv + 64 * c;
    v128_t sa = KQ_DOT(z, wasm_v128_load(xc), wasm_v128_and(v0, m4));
    sa = KQ_DOT(sa, wasm_v128_load(xc + 16), wasm_v128_and(v1, m4));
    v128_t sb = KQ_DOT(z, wasm_v128_load(xc + 32), wasm_v128_and(wasm_u16x8_shr(v0, 4), m4));
    sb = KQ_DOT(sb, wasm_v128_load(xc + 48), wasm_v128_and(wasm_u16x8_shr(v1, 4), m4));
    isum = wasm_i32x4_add(isum, kq_scale2(sa, sb, ps[c]));
  }
  *isum_out = isum;
}
KQ_MATVEC_DOT(q4_K, Q4_K_BYTES, 0, 1, 12)

/* One weight block (wb) against one expanded Q8_K block (xb). */
/* Q5_K's quants 64c.. of a block (0..31, element order): a0/a1 the low nibbles of v0/v1
 * (elements 64c + 0..15 / 16..31) with bit 2c of qh (h0/h1), c0/c1 the high nibbles
 * (64c + 32..63) with bit 2c + 1. */
M64_INLINE void kq_q5_quants(v128_t v0, v128_t v1, v128_t h0, v128_t h1, int c, v128_t *a0, v128_t *a1,
                             v128_t *c0, v128_t *c1) {
  const v128_t m4 = wasm_i8x16_splat(0x0f), b4 = wasm_i8x16_splat(0x10);
  *a0 = wasm_v128_or(wasm_v128_and(v0, m4), wasm_v128_and(kq_move_bits(h0, 2 * c, 4), b4));
  *a1 = wasm_v128_or(wasm_v128_and(v1, m4), wasm_v128_and(kq_move_bits(h1, 2 * c, 4), b4));
  *c0 = wasm_v128_or(wasm_v128_and(wasm_u16x8_shr(v0, 4), m4), wasm_v128_and(kq_move_bits(h0, 2 * c + 1, 4), b4));
  *c1 = wasm_v128_or(wasm_v128_and(wasm_u16x8_shr(v1, 4), m4), wasm_v128_and(kq_move_bits(h1, 2 * c + 1, 4), b4));
}

M64_INLINE float kq_blk_q5_K(const uint8_t *wb, const uint8_t *xb) {
  const int16_t *xv = (const int16_t *)(xb + KQ8_Q);
  const float dx = kq_load_f32(xb);
  const float d = F16_SCALE(wb) * dx, dmin = F16_SCALE(wb + 2) * dx;
  const v128_t sm = kq_scale_min_k4(wb + 4);
  v128_t ps[4];
  KQ_PAIRS(ps, wasm_u16x8_extend_low_u8x16(sm));
  const v128_t imin = wasm_i32x4_dot_i16x8(wasm_u16x8_extend_high_u8x16(sm), wasm_v128_load(xb + KQ8_BS32));
  const v128_t h0 = wasm_v128_load(wb + 16), h1 = wasm_v128_load(wb + 32);
  v128_t isum = wasm_i32x4_splat(0);
  for (int c = 0; c < 4; c++) {
    const v128_t v0 = wasm_v128_load(wb + 48 + 32 * c), v1 = wasm_v128_load(wb + 64 + 32 * c);
    const int16_t *xc = xv + 64 * c;
    v128_t a0, a1, c0, c1;
    kq_q5_quants(v0, v1, h0, h1, c, &a0, &a1, &c0, &c1);
    v128_t sa = wasm_i32x4_add(kq_dot16(a0, xc), kq_dot16(a1, xc + 16));
    v128_t sb = wasm_i32x4_add(kq_dot16(c0, xc + 32), kq_dot16(c1, xc + 48));
    isum = wasm_i32x4_add(isum, kq_scale2(sa, sb, ps[c]));
  }
  return kq_block2(isum, d, imin, dmin);
}
KQ_MATVEC_IMPL(q5_K, Q5_K_BYTES, quantize_q8_K, KQ8_BYTES)

/* The same block over the i8 activation (lanes of 8 products of at most 31 * 127 narrow
 * to i16 exactly). */
M64_INLINE void kq_ib_q5_K(const uint8_t *wb, const uint8_t *xb, v128_t *isum_out, v128_t *imin) {
  const v128_t z = wasm_i32x4_splat(0);
  const int8_t *xv = (const int8_t *)(xb + KQ8_Q);
  const v128_t sm = kq_scale_min_k4_v(wasm_v128_load(wb));
  v128_t ps[4];
  KQ_PAIRS(ps, wasm_u16x8_extend_low_u8x16(sm));
  *imin = wasm_i32x4_dot_i16x8(wasm_u16x8_extend_high_u8x16(sm), wasm_v128_load(xb + KQ8_BS32));
  const v128_t h0 = wasm_v128_load(wb + 16), h1 = wasm_v128_load(wb + 32);
  v128_t isum = z;
  KQ_UNROLL
  for (int c = 0; c < 4; c++) {
    const v128_t v0 = wasm_v128_load(wb + 48 + 32 * c), v1 = wasm_v128_load(wb + 64 + 32 * c);
    const int8_t *xc = xv + 64 * c;
    v128_t a0, a1, c0, c1;
    kq_q5_quants(v0, v1, h0, h1, c, &a0, &a1, &c0, &c1);
    v128_t sa = KQ_DOT(KQ_DOT(z, wasm_v128_load(xc), a0), wasm_v128_load(xc + 16), a1);
    v128_t sb = KQ_DOT(KQ_DOT(z, wasm_v128_load(xc + 32), c0), wasm_v128_load(xc + 48), c1);
    isum = wasm_i32x4_add(isum, kq_scale2(sa, sb, ps[c]));
  }
  *isum_out = isum;
}
KQ_MATVEC_DOT(q5_K, Q5_K_BYTES, 0, 1, 13)

/* Q4_K (qh == NULL) and Q5_K rows. */
M64_INLINE void kq_dequant_k45(float *out, const uint8_t *row, uint32_t n, int five) {
  const uint32_t bytes = five ? Q5_K_BYTES : Q4_K_BYTES;
  for (uint32_t b = 0; b < n / KQ_QK; b++) {
    const uint8_t *blk = row + (uint64_t)b * bytes, *qs = blk + (five ? 48 : 16);
    const float d = f16_to_f32(load_u16(blk)), dmin = f16_to_f32(load_u16(blk + 2));
    uint8_t sm[16];
    wasm_v128_store(sm, kq_scale_min_k4(blk + 4));
    float *y = out + (uint64_t)b * KQ_QK;
    for (int i = 0; i < KQ_QK; i++) {
      const int s = i / 32, c = i / 64, l = i % 32;
      int q = s & 1 ? qs[32 * c + l] >> 4 : qs[32 * c + l] & 15;
      if (five && (blk[16 + l] >> s & 1)) q += 16;
      const float dl = d * (float)sm[s], ml = dmin * (float)sm[8 + s];
      const float p = dl * (float)q;
      y[i] = p - ml;
    }
  }
}

M64_INLINE void dequant_row_q4_K(float *out, const uint8_t *row, uint32_t n) { kq_dequant_k45(out, row, n, 0); }
M64_INLINE void dequant_row_q5_K(float *out, const uint8_t *row, uint32_t n) { kq_dequant_k45(out, row, n, 1); }

/* ------------------------------------------------------------------ Q6_K */
/* One weight block (wb) against one expanded Q8_K block (xb). */
M64_INLINE float kq_blk_q6_K(const uint8_t *wb, const uint8_t *xb) {
  const v128_t m4 = wasm_i8x16_splat(0x0f), m30 = wasm_i8x16_splat(0x30);
  const int16_t *xv = (const int16_t *)(xb + KQ8_Q);
  const float d = F16_SCALE(wb + 208) * kq_load_f32(xb);
  const v128_t s8 = wasm_v128_load(wb + 192);
  const v128_t sch[2] = {wasm_i16x8_extend_low_i8x16(s8), wasm_i16x8_extend_high_i8x16(s8)};
  /* weights dotted unsigned (0..63); the true value is that minus 32 */
  v128_t isum = wasm_i32x4_shl(
      wasm_i32x4_add(wasm_i32x4_dot_i16x8(sch[0], wasm_v128_load(xb + KQ8_BS16)),
                     wasm_i32x4_dot_i16x8(sch[1], wasm_v128_load(xb + KQ8_BS16 + 16))),
      5);
  isum = wasm_i32x4_sub(wasm_i32x4_splat(0), isum);
  for (int h = 0; h < 2; h++) {
    v128_t ps[4];
    KQ_PAIRS(ps, sch[h]);
    const uint8_t *ql = wb + 64 * h, *qh = wb + 128 + 32 * h;
    const int16_t *xh = xv + 128 * h;
    v128_t q[4][2]; /* q[k][r]: elements 128h + 32k + 16r + (0..15), scale 8h + 2k + r */
    for (int r = 0; r < 2; r++) {
      const v128_t la = wasm_v128_load(ql + 16 * r), lb = wasm_v128_load(ql + 32 + 16 * r);
      const v128_t hb = wasm_v128_load(qh + 16 * r);
      q[0][r] = wasm_v128_or(wasm_v128_and(la, m4), wasm_v128_and(wasm_i16x8_shl(hb, 4), m30));
      q[1][r] = wasm_v128_or(wasm_v128_and(lb, m4), wasm_v128_and(wasm_i16x8_shl(hb, 2), m30));
      q[2][r] = wasm_v128_or(wasm_v128_and(wasm_u16x8_shr(la, 4), m4), wasm_v128_and(hb, m30));
      q[3][r] = wasm_v128_or(wasm_v128_and(wasm_u16x8_shr(lb, 4), m4), wasm_v128_and(wasm_u16x8_shr(hb, 2), m30));
    }
    for (int k = 0; k < 4; k++)
      isum = wasm_i32x4_add(isum, kq_scale2(kq_dot16(q[k][0], xh + 32 * k), kq_dot16(q[k][1], xh + 32 * k + 16), ps[k]));
  }
  return kq_block1(isum, d);
}

KQ_MATVEC_IMPL(q6_K, Q6_K_BYTES, quantize_q8_K, KQ8_BYTES)

/* The same block over the i8 activation: one i8 dot per 16 weights (lanes of 4 products
 * of at most 63 * 127 narrow to i16 exactly). */
M64_INLINE void kq_ib_q6_K(const uint8_t *wb, const uint8_t *xb, v128_t *isum_out, v128_t *imin) {
  const v128_t m4 = wasm_i8x16_splat(0x0f), m30 = wasm_i8x16_splat(0x30), z = wasm_i32x4_splat(0);
  const int8_t *xv = (const int8_t *)(xb + KQ8_Q);
  const v128_t s8 = wasm_v128_load(wb + 192);
  const v128_t sch[2] = {wasm_i16x8_extend_low_i8x16(s8), wasm_i16x8_extend_high_i8x16(s8)};
  v128_t isum = wasm_i32x4_shl(
      wasm_i32x4_add(wasm_i32x4_dot_i16x8(sch[0], wasm_v128_load(xb + KQ8_BS16)),
                     wasm_i32x4_dot_i16x8(sch[1], wasm_v128_load(xb + KQ8_BS16 + 16))),
      5);
  isum = wasm_i32x4_sub(z, isum);
  for (int h = 0; h < 2; h++) {
    v128_t ps[4];
    KQ_PAIRS(ps, sch[h]);
    const uint8_t *ql = wb + 64 * h, *qh = wb + 128 + 32 * h;
    const int8_t *xh = xv + 128 * h;
    /* quants as kq_blk_q6_K's q[k][r], each made where it is dotted: the wasm keeps the
     * source's order, and making all eight first spilled registers once AOT-compiled */
    KQ_UNROLL
    for (int k = 0; k < 4; k++) {
      v128_t s[2];
      for (int r = 0; r < 2; r++) {
        const v128_t l = wasm_v128_load(ql + 32 * (k & 1) + 16 * r), hb = wasm_v128_load(qh + 16 * r);
        const v128_t lo = k < 2 ? wasm_v128_and(l, m4) : wasm_v128_and(wasm_u16x8_shr(l, 4), m4);
        const v128_t hi = wasm_v128_and(kq_move_bits(hb, 2 * k, 4), m30);
        s[r] = KQ_DOT(z, wasm_v128_load(xh + 32 * k + 16 * r), wasm_v128_or(lo, hi));
      }
      isum = wasm_i32x4_add(isum, kq_scale2(s[0], s[1], ps[k]));
    }
  }
  *isum_out = isum;
  *imin = z;
}
KQ_MATVEC_DOT(q6_K, Q6_K_BYTES, 208, 0, 14)

M64_INLINE void dequant_row_q6_K(float *out, const uint8_t *row, uint32_t n) {
  for (uint32_t b = 0; b < n / KQ_QK; b++) {
    const uint8_t *blk = row + (uint64_t)b * Q6_K_BYTES;
    const float d = f16_to_f32(load_u16(blk + 208));
    float *y = out + (uint64_t)b * KQ_QK;
    for (int i = 0; i < KQ_QK; i++) {
      const int h = i / 128, k = (i % 128) / 32, l = i % 32;
      const uint8_t lo = blk[64 * h + l + (k & 1) * 32], hi = blk[128 + 32 * h + l];
      const int q = ((k & 2 ? lo >> 4 : lo & 15) | ((hi >> (2 * k)) & 3) << 4) - 32;
      const float ds = d * (float)(int8_t)blk[192 + i / 16];
      y[i] = ds * (float)q;
    }
  }
}

/* ------------------------------------------------------------------ IQ4_XS */
/* kvalues_iq4nl + 128, so table values are unsigned bytes; corrected with the bsums. */
#define KQ_IQ4_TABLE_U8 \
  wasm_i8x16_make(1, 24, 45, 63, 79, 93, 106, 118, (int8_t)129, (int8_t)141, (int8_t)153, (int8_t)166, \
                  (int8_t)181, (int8_t)197, (int8_t)217, (int8_t)241)

/* The 8 sub-block scales ls - 32 (ls: 4 low bits from scales_l, 2 high from scales_h), i16. */
M64_INLINE v128_t kq_iq4xs_scales(const uint8_t *blk) {
  const v128_t sl = wasm_i32x4_splat((int32_t)kq_load_u32(blk + 4));
  /* lanes [l0, l0, l1, l1, l2, l2, l3, l3] as u16, even lanes take the low nibble */
  v128_t lo = wasm_i8x16_shuffle(sl, wasm_i32x4_splat(0), 0, 16, 0, 16, 1, 16, 1, 16, 2, 16, 2, 16, 3, 16, 3, 16);
  lo = wasm_v128_and(wasm_u16x8_shr(wasm_i16x8_mul(lo, wasm_i16x8_make(16, 1, 16, 1, 16, 1, 16, 1)), 4),
                     wasm_i16x8_splat(15));
  /* bits 2ib..2ib+1 of scales_h to bits 14..15 (multiply wraps), then down to 4..5 */
  v128_t hi = wasm_i16x8_mul(wasm_i16x8_splat((int16_t)load_u16(blk + 2)),
                             wasm_i16x8_make(1 << 14, 1 << 12, 1 << 10, 1 << 8, 1 << 6, 1 << 4, 1 << 2, 1));
  hi = wasm_v128_and(wasm_u16x8_shr(hi, 10), wasm_i16x8_splat(0x30));
  return wasm_i16x8_sub(wasm_v128_or(lo, hi), wasm_i16x8_splat(32));
}

/* One weight block (wb) against one expanded Q8_K block (xb). */
M64_INLINE float kq_blk_iq4_xs(const uint8_t *wb, const uint8_t *xb) {
  const v128_t m4 = wasm_i8x16_splat(0x0f), table = KQ_IQ4_TABLE_U8;
  const int16_t *xv = (const int16_t *)(xb + KQ8_Q);
  const float d = F16_SCALE(wb) * kq_load_f32(xb);
  const v128_t ls = kq_iq4xs_scales(wb);
  const v128_t l0 = wasm_i32x4_extend_low_i16x8(ls), l1 = wasm_i32x4_extend_high_i16x8(ls);
  const v128_t sp[8] = {
      wasm_i32x4_shuffle(l0, l0, 0, 0, 0, 0), wasm_i32x4_shuffle(l0, l0, 1, 1, 1, 1),
      wasm_i32x4_shuffle(l0, l0, 2, 2, 2, 2), wasm_i32x4_shuffle(l0, l0, 3, 3, 3, 3),
      wasm_i32x4_shuffle(l1, l1, 0, 0, 0, 0), wasm_i32x4_shuffle(l1, l1, 1, 1, 1, 1),
      wasm_i32x4_shuffle(l1, l1, 2, 2, 2, 2), wasm_i32x4_shuffle(l1, l1, 3, 3, 3, 3)};
  v128_t isum = wasm_i32x4_shl(wasm_i32x4_dot_i16x8(ls, wasm_v128_load(xb + KQ8_BS32)), 7);
  isum = wasm_i32x4_sub(wasm_i32x4_splat(0), isum);
  for (int ib = 0; ib < 8; ib++) {
    const v128_t v = wasm_v128_load(wb + 8 + 16 * ib);
    const v128_t lo = wasm_i8x16_swizzle(table, wasm_v128_and(v, m4));
    const v128_t hi = wasm_i8x16_swizzle(table, wasm_v128_and(wasm_u16x8_shr(v, 4), m4));
    const v128_t s = wasm_i32x4_add(kq_dot16(lo, xv + 32 * ib), kq_dot16(hi, xv + 32 * ib + 16));
    isum = wasm_i32x4_add(isum, wasm_i32x4_mul(s, sp[ib]));
  }
  return kq_block1(isum, d);
}
KQ_MATVEC(iq4_xs, IQ4_XS_BYTES, quantize_q8_K)

M64_INLINE void dequant_row_iq4_xs(float *out, const uint8_t *row, uint32_t n) {
  static const int8_t kv[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
  for (uint32_t b = 0; b < n / KQ_QK; b++) {
    const uint8_t *blk = row + (uint64_t)b * IQ4_XS_BYTES;
    const float d = f16_to_f32(load_u16(blk));
    int16_t ls[8];
    wasm_v128_store(ls, kq_iq4xs_scales(blk));
    float *y = out + (uint64_t)b * KQ_QK;
    for (int i = 0; i < KQ_QK; i++) {
      const int ib = i / 32, j = i % 16;
      const uint8_t q = blk[8 + 16 * ib + j];
      const float dl = d * (float)ls[ib];
      y[i] = dl * (float)kv[i % 32 < 16 ? q & 15 : q >> 4];
    }
  }
}

#undef KQ_MATVEC
#undef KQ_MATVEC_DOT

#endif
