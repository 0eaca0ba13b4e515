/* kernels_batch.h — matrix-matrix products for prefill: n inputs (tokens) at once.
 * Included by kernels.h after every family's matvec.
 *
 * For every kernel type (kernel_types.h):
 *   act_<sfx>(xq, x, cols)   one input's activation as the dot consumes it (the matvec's
 *                            own preparation: f16/bf16 rounding, Q8_0, Q8_1, Q8_K blocks)
 *   matmat_<sfx>(out, out_stride, w, xq, rows, cols, n)
 *                            out[t * out_stride + r] = dot(row r, input t) for t < n, over
 *                            n activations M64_ACT_STRIDE(cols) bytes apart in xq.
 * The caller prepares each input once per product, not once per chunk of rows.
 *
 * Every output is bit-equal to what matvec_<sfx> gives for that input: the same integer
 * block sums and the same f32 operations per (row, input), in the same order.
 *
 * The K-quants (Q2_K..Q6_K, IQ4_XS) have real matrix-matrix kernels: a weight block is
 * unpacked once to i16 lanes, multiplied by its sub-block scales (|q * scale| <= 945 for
 * Q4_K, 1953 for Q5_K, 4096 for Q6_K's q - 32, 4064 for IQ4_XS, so i16 holds it and the
 * block sum stays far from i32 overflow: the same integer as the matvec's sum of scaled
 * sub-block sums), in the expanded Q8_K's even/odd order, and then dotted in tiles of 2
 * rows x KB_T inputs: one i32x4.dot_i16x8_s per 8 weights per (row, input), 2 weight and
 * 4 activation loads per 8 dots, 8 i32x4 accumulators (no spills with 16 xmm after AOT).
 * The inputs of a tile are the f32x4 lanes of the block's scaling, each lane doing what
 * kq_block2 / kq_block1 do for one row of the matvec. Rows go in groups of KB_ROWS per
 * pass over the blocks, so one block of every input's activation (n * 576 bytes) stays in
 * L1 for the group while the weights stream through once (M64_ACT_STRIDE keeps those
 * blocks out of each other's cache sets). Measured (bench/kernels, M64_BENCH_BATCH=32,
 * wasm AOT with VNNI, 1 thread): per token 12.2 GB/s (Q4_K, 11008x4096) and 16.5 (Q6_K,
 * 4096x11008), 2.6x and 3.4x their matvecs' 4.7 and 4.9. Q4_K and Q6_K unpack straight
 * from their bits; the others go through signed bytes in element order (kb_finish), and
 * below KB_T inputs run the matvec's rows per input instead (KB_MATMAT_KR).
 * The float types and the 32-element block types are in kernels_batch_small.h.
 */
#ifndef M64_KERNELS_BATCH_H
#define M64_KERNELS_BATCH_H

#define KB_T 4     /* inputs per tile: the lanes of one f32x4 */
#define KB_ROWS 16 /* rows per pass over the blocks (measured: 4..32 within noise) */

/* Weight vectors per step of the dot loop, each dot with an accumulator of its own (2 x
 * KB_STEP x KB_T). Measured (bench/kernels, Q4_K, n = 32, per token, GB/s, 4096 / 11008
 * rows): 1 step 12.2 / 12.2 with VNNI, 8.8 / 9.4 on x86-64-v3; 2 steps 12.7 / 12.7 and
 * 7.9 / 8.2 (16 accumulators spill with 16 vector registers: AVX2, and V8 in a browser). */
#define KB_STEP 1

#define KB_KQ_ACT(sfx)                                                                                  \
  M64_INLINE void act_##sfx(uint8_t *xq, const float *x, uint32_t cols) { quantize_q8_K(xq, x, cols); } \
  M64_INLINE void act_##sfx##_pairs(uint8_t *xq, const float *x, uint32_t cols) { quantize_q8_K(xq, x, cols); }

/* M64_KERNELS_KQ_MAT(type, out, out_stride, w, xq, xq_stride, rows, nb, n, pairs): a host's
 * own Q4_K/Q5_K/Q6_K matrix-matrix product over the i8 activation (m64_module.h's m64.kq_mat),
 * where M64_KERNELS_HAS_KQ_MAT() says so; there act_q4_K/_q5_K/_q6_K prepare that layout. */
#ifndef M64_KERNELS_KQ_MAT
#define M64_KERNELS_HAS_KQ_MAT() 0
#define M64_KERNELS_KQ_MAT(type, out, out_stride, w, xq, xq_stride, rows, nb, n, pairs) ((void)0)
#endif
#define KB_KQ_ACT_MAT(sfx)                                                               \
  M64_INLINE void act_##sfx(uint8_t *xq, const float *x, uint32_t cols) {                \
    if (M64_KERNELS_HAS_KQ_MAT()) quantize_q8_K_i8(xq, x, cols);                         \
    else quantize_q8_K(xq, x, cols);                                                     \
  }                                                                                      \
  M64_INLINE void act_##sfx##_pairs(uint8_t *xq, const float *x, uint32_t cols) { act_##sfx(xq, x, cols); }

KB_KQ_ACT(q2_K)
KB_KQ_ACT(q3_K)
KB_KQ_ACT_MAT(q4_K)
KB_KQ_ACT_MAT(q5_K)
KB_KQ_ACT_MAT(q6_K)
KB_KQ_ACT(iq4_xs)

/* ------------------------------------------------------------------ K-quant tiles */
/* A block unpacked: 256 quants times their sub-block scale, i16, in the expanded Q8_K
 * order (each 16-group as 8 evens then 8 odds), so weight vector k pairs with activation
 * vector k; plus what the f32 scaling of the block needs. */
typedef struct kb_block {
  int16_t q[KQ_QK] __attribute__((aligned(16)));
  v128_t mins[2]; /* Q4_K/Q5_K: 8 mins (i16) for bsums32; Q2_K: 16 mins for bsums16 */
  float d, dmin;
} kb_block;

/* The K-quants' tile kernels, and how each scales a block sum S (as its matvec does):
 * Q4_K, Q5_K, Q2_K as kq_block2, S * (d * dx) - M * (dmin * dx), M = mins . bsums;
 * Q6_K, Q3_K, IQ4_XS as kq_block1, S * (d * dx). */
enum { KB_Q4_K, KB_Q5_K, KB_Q6_K, KB_Q2_K, KB_Q3_K, KB_IQ4_XS };
M64_INLINE int kb_min_kind(int type) { /* 0: no mins, 1: 8 mins per 32, 2: 16 per 16 */
  return type == KB_Q4_K || type == KB_Q5_K ? 1 : type == KB_Q2_K ? 2 : 0;
}

/* The other K-quants come as signed quants in element order (qn) and one i16 scale per
 * 16-group (sc): each group is reordered to its 8 evens and 8 odds and scaled here (the
 * matvecs' unsigned quants and bsum offsets give the same integer sums). */
M64_INLINE void kb_finish(const int8_t *qn, const int16_t *sc, kb_block *o) {
  KQ_UNROLL for (int g = 0; g < 16; g++) {
    const v128_t v = wasm_v128_load(qn + 16 * g), s = wasm_i16x8_splat(sc[g]);
    const v128_t eo = wasm_i8x16_shuffle(v, v, 0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    wasm_v128_store(o->q + 16 * g, wasm_i16x8_mul(wasm_i16x8_extend_low_i8x16(eo), s));
    wasm_v128_store(o->q + 16 * g + 8, wasm_i16x8_mul(wasm_i16x8_extend_high_i8x16(eo), s));
  }
}

/* Q5_K: Q4_K's nibbles plus a fifth bit, bit 2c (low nibbles) or 2c + 1 (high) of qh. */
M64_INLINE void kb_unpack_q5_K(const uint8_t *wb, kb_block *o) {
  const v128_t m4 = wasm_i8x16_splat(0x0f), b4 = wasm_i8x16_splat(0x10);
  int8_t qn[KQ_QK] __attribute__((aligned(16)));
  uint8_t s8[16];
  int16_t sc[16];
  const v128_t sm = kq_scale_min_k4(wb + 4);
  wasm_v128_store(s8, sm);
  for (int g = 0; g < 16; g++) sc[g] = s8[g / 2];
  o->mins[0] = wasm_u16x8_extend_high_u8x16(sm);
  o->d = F16_SCALE(wb);
  o->dmin = F16_SCALE(wb + 2);
  KQ_UNROLL for (int c = 0; c < 4; c++)
    for (int r = 0; r < 2; r++) {
      const v128_t v = wasm_v128_load(wb + 48 + 32 * c + 16 * r), hb = wasm_v128_load(wb + 16 + 16 * r);
      wasm_v128_store(qn + 64 * c + 16 * r,
                      wasm_v128_or(wasm_v128_and(v, m4), wasm_v128_and(kq_move_bits(hb, 2 * c, 4), b4)));
      wasm_v128_store(qn + 64 * c + 32 + 16 * r, wasm_v128_or(wasm_v128_and(wasm_u16x8_shr(v, 4), m4),
                                                              wasm_v128_and(kq_move_bits(hb, 2 * c + 1, 4), b4)));
    }
  kb_finish(qn, sc, o);
}

/* Q2_K: 2-bit quants, a 4-bit scale and a 4-bit min per 16. */
M64_INLINE void kb_unpack_q2_K(const uint8_t *wb, kb_block *o) {
  const v128_t m2 = wasm_i8x16_splat(3), m4 = wasm_i8x16_splat(0x0f);
  int8_t qn[KQ_QK] __attribute__((aligned(16)));
  int16_t sc[16];
  const v128_t raw = wasm_v128_load(wb), s4 = wasm_v128_and(raw, m4), mn = wasm_v128_and(wasm_u16x8_shr(raw, 4), m4);
  wasm_v128_store(sc, wasm_u16x8_extend_low_u8x16(s4));
  wasm_v128_store(sc + 8, wasm_u16x8_extend_high_u8x16(s4));
  o->mins[0] = wasm_u16x8_extend_low_u8x16(mn);
  o->mins[1] = wasm_u16x8_extend_high_u8x16(mn);
  o->d = F16_SCALE(wb + 80);
  o->dmin = F16_SCALE(wb + 82);
  KQ_UNROLL for (int h = 0; h < 2; h++)
    for (int r = 0; r < 2; r++) {
      const v128_t v = wasm_v128_load(wb + 16 + 32 * h + 16 * r);
      for (int j = 0; j < 4; j++)
        wasm_v128_store(qn + 128 * h + 32 * j + 16 * r, wasm_v128_and(wasm_u16x8_shr(v, 2 * j), m2));
    }
  kb_finish(qn, sc, o);
}

/* Q3_K: 2-bit quants plus hmask bit 4h + j (4 when set), minus 4; signed 6-bit scales. */
M64_INLINE void kb_unpack_q3_K(const uint8_t *wb, kb_block *o) {
  const v128_t m2 = wasm_i8x16_splat(3), b2 = wasm_i8x16_splat(4);
  int8_t qn[KQ_QK] __attribute__((aligned(16)));
  int8_t s8[16];
  int16_t sc[16];
  wasm_v128_store(s8, kq_q3_scales(wb + 96));
  for (int g = 0; g < 16; g++) sc[g] = s8[g];
  o->d = F16_SCALE(wb + 108);
  KQ_UNROLL for (int h = 0; h < 2; h++)
    for (int r = 0; r < 2; r++) {
      const v128_t v = wasm_v128_load(wb + 32 + 32 * h + 16 * r), hm = wasm_v128_load(wb + 16 * r);
      for (int j = 0; j < 4; j++) {
        const v128_t q = wasm_v128_or(wasm_v128_and(wasm_u16x8_shr(v, 2 * j), m2),
                                      wasm_v128_and(kq_move_bits(hm, 4 * h + j, 2), b2));
        wasm_v128_store(qn + 128 * h + 32 * j + 16 * r, wasm_i8x16_sub(q, b2));
      }
    }
  kb_finish(qn, sc, o);
}

/* IQ4_XS: 4-bit indices into kvalues_iq4nl, a 6-bit scale (minus 32) per 32. */
M64_INLINE void kb_unpack_iq4_xs(const uint8_t *wb, kb_block *o) {
  const v128_t m4 = wasm_i8x16_splat(0x0f);
  const v128_t table = wasm_i8x16_make(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);
  int8_t qn[KQ_QK] __attribute__((aligned(16)));
  int16_t ls[8], sc[16];
  wasm_v128_store(ls, kq_iq4xs_scales(wb));
  for (int g = 0; g < 16; g++) sc[g] = ls[g / 2];
  o->d = F16_SCALE(wb);
  KQ_UNROLL for (int ib = 0; ib < 8; ib++) {
    const v128_t v = wasm_v128_load(wb + 8 + 16 * ib);
    wasm_v128_store(qn + 32 * ib, wasm_i8x16_swizzle(table, wasm_v128_and(v, m4)));
    wasm_v128_store(qn + 32 * ib + 16, wasm_i8x16_swizzle(table, wasm_v128_and(wasm_u16x8_shr(v, 4), m4)));
  }
  kb_finish(qn, sc, o);
}

/* Q4_K: element order and scales as kq_blk_q4_K (low nibbles of 32c.. are sub-block 2c,
 * high nibbles sub-block 2c + 1; i16 lanes split a byte pair into even/odd elements). */
M64_INLINE void kb_unpack_q4_K(const uint8_t *wb, kb_block *o) {
  const v128_t m4 = wasm_i16x8_splat(0x000f);
  const v128_t sm = kq_scale_min_k4_v(wasm_v128_load(wb));
  uint8_t sc[16];
  wasm_v128_store(sc, sm);
  o->mins[0] = wasm_u16x8_extend_high_u8x16(sm);
  o->d = F16_SCALE(wb);
  o->dmin = F16_SCALE(wb + 2);
  KQ_UNROLL for (int c = 0; c < 4; c++) {
    const v128_t sa = wasm_i16x8_splat(sc[2 * c]), sb = wasm_i16x8_splat(sc[2 * c + 1]);
    int16_t *q = o->q + 64 * c;
    for (int h = 0; h < 2; h++) {
      const v128_t v = wasm_v128_load(wb + 16 + 32 * c + 16 * h);
      wasm_v128_store(q + 16 * h, wasm_i16x8_mul(wasm_v128_and(v, m4), sa));
      wasm_v128_store(q + 16 * h + 8, wasm_i16x8_mul(wasm_v128_and(wasm_u16x8_shr(v, 8), m4), sa));
      wasm_v128_store(q + 32 + 16 * h, wasm_i16x8_mul(wasm_v128_and(wasm_u16x8_shr(v, 4), m4), sb));
      wasm_v128_store(q + 40 + 16 * h, wasm_i16x8_mul(wasm_u16x8_shr(v, 12), sb));
    }
  }
}

/* Q6_K: element order and scales as kq_blk_q6_K; quants made signed (q - 32) before the
 * scale, which is the matvec's sum less its 32 * sum(sc * bsum) correction. */
M64_INLINE void kb_unpack_q6_K(const uint8_t *wb, kb_block *o) {
  const v128_t m4 = wasm_i8x16_splat(0x0f), m30 = wasm_i8x16_splat(0x30);
  const v128_t lo8 = wasm_i16x8_splat(0x00ff), k32 = wasm_i16x8_splat(32);
  const int8_t *sc = (const int8_t *)(wb + 192);
  o->d = F16_SCALE(wb + 208);
  KQ_UNROLL for (int h = 0; h < 2; h++) {
    const uint8_t *ql = wb + 64 * h, *qh = wb + 128 + 32 * h;
    for (int r = 0; r < 2; r++) {
      const v128_t la = wasm_v128_load(ql + 16 * r), lb = wasm_v128_load(ql + 32 + 16 * r);
      const v128_t hb = wasm_v128_load(qh + 16 * r);
      v128_t q[4]; /* q[k]: elements 128h + 32k + 16r + (0..15), scale 8h + 2k + r */
      q[0] = wasm_v128_or(wasm_v128_and(la, m4), wasm_v128_and(wasm_i16x8_shl(hb, 4), m30));
      q[1] = wasm_v128_or(wasm_v128_and(lb, m4), wasm_v128_and(wasm_i16x8_shl(hb, 2), m30));
      q[2] = wasm_v128_or(wasm_v128_and(wasm_u16x8_shr(la, 4), m4), wasm_v128_and(hb, m30));
      q[3] = wasm_v128_or(wasm_v128_and(wasm_u16x8_shr(lb, 4), m4), wasm_v128_and(wasm_u16x8_shr(hb, 2), m30));
      for (int k = 0; k < 4; k++) {
        const v128_t s = wasm_i16x8_splat(sc[8 * h + 2 * k + r]);
        int16_t *g = o->q + 128 * h + 32 * k + 16 * r;
        wasm_v128_store(g, wasm_i16x8_mul(wasm_i16x8_sub(wasm_v128_and(q[k], lo8), k32), s));
        wasm_v128_store(g + 8, wasm_i16x8_mul(wasm_i16x8_sub(wasm_u16x8_shr(q[k], 8), k32), s));
      }
    }
  }
}

/* The exact integer block sums of two unpacked blocks (rows blk[0], blk[1]) against nt <=
 * KB_T inputs' blocks, input i's at x0 + i * stride: lane i of s[j] = sum over the block of
 * (q_j * scale) * x_i (lanes from nt on: 0). A 2 x nt tile: per 8 weights, 2 + nt loads
 * feed 2 nt dots. Each dot adds into an accumulator of its own, so with VNNI each becomes
 * one fused dot-and-add after AOT (two dots into one accumulator were reassociated into
 * dot + dot + add). The loads hang off two pointers at immediate offsets (the stride is a
 * constant of the specialized product): two addresses a step, not 2 + nt. Measured
 * (bench/kernels, Q4_K, n = 32, 1 thread, per token, with VNNI): 9.0 -> 12.2 GB/s; on
 * x86-64-v3 7.8 -> 8.8. Called with a constant nt, so each width compiles to its own
 * loop: a batch's last inputs (n not a multiple of KB_T) cost their own dots only. */
M64_INLINE void kb_dot_tile(const kb_block blk[2], const uint8_t *x0, const size_t stride, const int nt,
                            v128_t s[2]) {
  const int16_t *q = blk[0].q;
  const size_t q1 = sizeof(kb_block) / sizeof(int16_t); /* blk[1].q, a constant away */
  const uint8_t *xi = x0 + KQ8_Q;
  v128_t a[KB_STEP][KB_T], b[KB_STEP][KB_T];
  KQ_UNROLL for (int j = 0; j < KB_STEP; j++)
    KQ_UNROLL for (int i = 0; i < KB_T; i++) a[j][i] = b[j][i] = wasm_i32x4_splat(0);
  for (int k = 0; k < KQ_QK / 8; k += KB_STEP) {
    /* opaque each step: loads at immediate offsets, none hoisted out of the loop over tiles */
    KQ_OPAQUE(q);
    KQ_OPAQUE(xi);
    KQ_UNROLL for (int j = 0; j < KB_STEP; j++) {
      const v128_t wa = wasm_v128_load(q + 8 * j), wb = wasm_v128_load(q + q1 + 8 * j);
      KQ_UNROLL for (int i = 0; i < nt; i++) {
        const v128_t v = wasm_v128_load(xi + i * stride + 16 * j);
        a[j][i] = wasm_i32x4_add(a[j][i], wasm_i32x4_dot_i16x8(wa, v));
        b[j][i] = wasm_i32x4_add(b[j][i], wasm_i32x4_dot_i16x8(wb, v));
      }
    }
    q += 8 * KB_STEP;
    xi += 16 * KB_STEP;
  }
  KQ_UNROLL for (int j = 1; j < KB_STEP; j++)
    KQ_UNROLL for (int i = 0; i < nt; i++) {
      a[0][i] = wasm_i32x4_add(a[0][i], a[j][i]);
      b[0][i] = wasm_i32x4_add(b[0][i], b[j][i]);
    }
  s[0] = kq_hsum4(a[0][0], a[0][1], a[0][2], a[0][3]);
  s[1] = kq_hsum4(b[0][0], b[0][1], b[0][2], b[0][3]);
}

/* One row's block sums s into the f32 accumulator of a tile (lanes = inputs), with the
 * matvec's operations per lane (kb_min_kind above). */
M64_INLINE v128_t kb_scale_block(int type, v128_t acc, v128_t s, const kb_block *b, const uint8_t *const x[KB_T],
                                 v128_t dx) {
  const v128_t a = wasm_f32x4_mul(wasm_f32x4_convert_i32x4(s), wasm_f32x4_mul(wasm_f32x4_splat(b->d), dx));
  const int kind = kb_min_kind(type);
  if (!kind) return wasm_f32x4_add(acc, a);
  v128_t t[KB_T];
  for (int i = 0; i < KB_T; i++)
    t[i] = kind == 1 ? wasm_i32x4_dot_i16x8(b->mins[0], wasm_v128_load(x[i] + KQ8_BS32))
                     : wasm_i32x4_add(wasm_i32x4_dot_i16x8(b->mins[0], wasm_v128_load(x[i] + KQ8_BS16)),
                                      wasm_i32x4_dot_i16x8(b->mins[1], wasm_v128_load(x[i] + KQ8_BS16 + 16)));
  const v128_t m = kq_hsum4(t[0], t[1], t[2], t[3]);
  const v128_t mm = wasm_f32x4_mul(wasm_f32x4_convert_i32x4(m), wasm_f32x4_mul(wasm_f32x4_splat(b->dmin), dx));
  return wasm_f32x4_add(acc, wasm_f32x4_sub(a, mm));
}

M64_INLINE uint32_t kb_block_bytes(int type) {
  switch (type) {
    case KB_Q4_K: return Q4_K_BYTES;
    case KB_Q5_K: return Q5_K_BYTES;
    case KB_Q6_K: return Q6_K_BYTES;
    case KB_Q2_K: return Q2_K_BYTES;
    case KB_Q3_K: return Q3_K_BYTES;
    default: return IQ4_XS_BYTES;
  }
}

M64_INLINE void kb_unpack(int type, const uint8_t *wb, kb_block *o) {
  switch (type) {
    case KB_Q4_K: kb_unpack_q4_K(wb, o); break;
    case KB_Q5_K: kb_unpack_q5_K(wb, o); break;
    case KB_Q6_K: kb_unpack_q6_K(wb, o); break;
    case KB_Q2_K: kb_unpack_q2_K(wb, o); break;
    case KB_Q3_K: kb_unpack_q3_K(wb, o); break;
    default: kb_unpack_iq4_xs(wb, o); break;
  }
}

/* Rows in groups of KB_ROWS, blocks in order; per block, rows in pairs (an odd last row
 * paired with itself), each (row, block) unpacked once and run against every tile of KB_T
 * inputs; a short last tile dots only its own inputs (its other lanes' scaling repeats
 * its last input and is not stored). */
M64_INLINE void kb_matmat_k(int type, int pairs, float *out, uint32_t out_stride, const uint8_t *w,
                            const uint8_t *xq, uint32_t rows, uint32_t cols, uint32_t n) {
  f16_table_init();
  const uint32_t nb = cols / KQ_QK, bytes = kb_block_bytes(type);
  const size_t row_bytes = (size_t)nb * bytes, stride = M64_ACT_STRIDE(cols);
  for (uint32_t t0 = 0; t0 < n; t0 += M64_MAX_BATCH) {
    const uint32_t nt = n - t0 < M64_MAX_BATCH ? n - t0 : M64_MAX_BATCH;
    const uint32_t tiles = (nt + KB_T - 1) / KB_T;
    const uint8_t *xt[M64_MAX_BATCH]; /* input i's activation, the tail padded */
    for (uint32_t i = 0; i < tiles * KB_T; i++) xt[i] = xq + (t0 + (i < nt ? i : nt - 1)) * stride;
    for (uint32_t r0 = 0; r0 < rows; r0 += KB_ROWS) {
      const uint32_t nr = rows - r0 < KB_ROWS ? rows - r0 : KB_ROWS;
      v128_t acc[KB_ROWS][M64_MAX_BATCH / KB_T];
      for (uint32_t r = 0; r < nr; r++)
        for (uint32_t i = 0; i < tiles; i++) acc[r][i] = wasm_f32x4_splat(0);
      for (uint32_t b = 0; b < nb; b++) {
        const size_t xo = (size_t)b * KQ8_BYTES;
        for (uint32_t r = 0; r < nr; r += 2) {
          const int pair = r + 1 < nr;
          kb_block blk[2];
          for (int k = 0; k < 2; k++) {
            size_t step;
            const uint8_t *wb = kq_row_at(w, r0 + r + (k && pair), rows, row_bytes, bytes, pairs, &step);
            wb += (size_t)b * step;
            kb_unpack(type, wb, &blk[k]);
          }
          for (uint32_t i = 0; i < tiles; i++) {
            const uint8_t *x[KB_T];
            for (int k = 0; k < KB_T; k++) x[k] = xt[KB_T * i + k] + xo;
            const v128_t dx = wasm_f32x4_make(kq_load_f32(x[0]), kq_load_f32(x[1]), kq_load_f32(x[2]), kq_load_f32(x[3]));
            v128_t s[2];
            switch (nt - KB_T * i < KB_T ? nt - KB_T * i : KB_T) { /* inputs in this tile */
            case 1: kb_dot_tile(blk, x[0], stride, 1, s); break;
            case 2: kb_dot_tile(blk, x[0], stride, 2, s); break;
            case 3: kb_dot_tile(blk, x[0], stride, 3, s); break;
            default: kb_dot_tile(blk, x[0], stride, KB_T, s); break;
            }
            acc[r][i] = kb_scale_block(type, acc[r][i], s[0], &blk[0], x, dx);
            if (pair) acc[r + 1][i] = kb_scale_block(type, acc[r + 1][i], s[1], &blk[1], x, dx);
          }
        }
      }
      for (uint32_t r = 0; r < nr; r++)
        for (uint32_t i = 0; i < tiles; i++) {
          float lanes[KB_T];
          wasm_v128_store(lanes, acc[r][i]);
          for (uint32_t k = 0; k < KB_T && KB_T * i + k < nt; k++)
            out[(size_t)(t0 + KB_T * i + k) * out_stride + r0 + r] = lanes[k];
        }
    }
  }
}

/* matmat_<K-quant>[_pairs]: ggml's rows, or the row-pair layout. */
#define KB_MATMAT_K(sfx, type, ggml_type)                                                                 \
  M64_INLINE void kb_matmat_##sfx(int pairs, float *out, uint32_t out_stride, const uint8_t *w,           \
                                  const uint8_t *xq, uint32_t rows, uint32_t cols, uint32_t n) {          \
    if (M64_KERNELS_HAS_KQ_MAT())                                                                         \
      M64_KERNELS_KQ_MAT(ggml_type, out, out_stride, w, xq, M64_ACT_STRIDE(cols), rows, cols / KQ_QK, n,  \
                         (uint32_t)pairs);                                                                \
    else                                                                                                  \
      kb_matmat_k(type, pairs, out, out_stride, w, xq, rows, cols, n);                                    \
  }                                                                                                       \
  M64_INLINE void matmat_##sfx(float *out, uint32_t out_stride, const uint8_t *w, const uint8_t *xq,      \
                               uint32_t rows, uint32_t cols, uint32_t n) {                                \
    kb_matmat_##sfx(0, out, out_stride, w, xq, rows, cols, n);                                            \
  }                                                                                                       \
  M64_INLINE void matmat_##sfx##_pairs(float *out, uint32_t out_stride, const uint8_t *w,                 \
                                       const uint8_t *xq, uint32_t rows, uint32_t cols, uint32_t n) {     \
    kb_matmat_##sfx(1, out, out_stride, w, xq, rows, cols, n);                                            \
  }
KB_MATMAT_K(q4_K, KB_Q4_K, 12)
KB_MATMAT_K(q6_K, KB_Q6_K, 14)

/* The K-quants unpacked through kb_finish cost more per block than the matvec's dot of one
 * input: below a full tile of inputs each runs the matvec's rows (kq_row_<sfx>) instead.
 * Measured (bench/kernels, 11008x4096, per token, rows / tiles): Q2_K n = 2 2.3-2.7 / 1.3
 * GB/s, Q3_K n = 2 3.4-3.5 / 2.2; from n = 4 on the tiles are as fast or faster (n = 32:
 * Q2_K 3.5 / 5.2, Q3_K 3.6 / 7.3, Q5_K 5.8 / 10.3, IQ4_XS 4.3 / 9.4). */
#define KB_MATMAT_KR(sfx, BYTES, type, ggml_type)                                                         \
  M64_INLINE void kb_matmat_##sfx(int pairs, float *out, uint32_t out_stride, const uint8_t *w,           \
                                  const uint8_t *xq, uint32_t rows, uint32_t cols, uint32_t n) {          \
    if ((ggml_type) && M64_KERNELS_HAS_KQ_MAT()) { /* Q5_K: a host's own, as Q4_K's */                  \
      M64_KERNELS_KQ_MAT(ggml_type, out, out_stride, w, xq, M64_ACT_STRIDE(cols), rows, cols / KQ_QK, n,  \
                         (uint32_t)pairs);                                                                \
      return;                                                                                             \
    }                                                                                                     \
    if (n >= KB_T) {                                                                                      \
      kb_matmat_k(type, pairs, out, out_stride, w, xq, rows, cols, n);                                    \
      return;                                                                                             \
    }                                                                                                     \
    f16_table_init();                                                                                     \
    const uint32_t nb = cols / KQ_QK;                                                                     \
    for (uint32_t t = 0; t < n; t++) {                                                                    \
      const uint8_t *x = xq + (size_t)t * M64_ACT_STRIDE(cols);                                           \
      for (uint32_t r = 0; r < rows; r++) {                                                               \
        size_t step;                                                                                      \
        const uint8_t *wr = kq_row_at(w, r, rows, (size_t)nb * (BYTES), (BYTES), pairs, &step);           \
        out[(size_t)t * out_stride + r] = kq_row_##sfx(wr, step, x, x + (size_t)nb * KQ8_BYTES);          \
      }                                                                                                   \
    }                                                                                                     \
  }                                                                                                       \
  M64_INLINE void matmat_##sfx(float *out, uint32_t out_stride, const uint8_t *w, const uint8_t *xq,      \
                               uint32_t rows, uint32_t cols, uint32_t n) {                                \
    kb_matmat_##sfx(0, out, out_stride, w, xq, rows, cols, n);                                            \
  }                                                                                                       \
  M64_INLINE void matmat_##sfx##_pairs(float *out, uint32_t out_stride, const uint8_t *w,                 \
                                       const uint8_t *xq, uint32_t rows, uint32_t cols, uint32_t n) {     \
    kb_matmat_##sfx(1, out, out_stride, w, xq, rows, cols, n);                                            \
  }
KB_MATMAT_KR(q5_K, Q5_K_BYTES, KB_Q5_K, 13)
KB_MATMAT_KR(q2_K, Q2_K_BYTES, KB_Q2_K, 0)
KB_MATMAT_KR(q3_K, Q3_K_BYTES, KB_Q3_K, 0)
KB_MATMAT_KR(iq4_xs, IQ4_XS_BYTES, KB_IQ4_XS, 0)

#undef KB_KQ_ACT
#undef KB_MATMAT_K
#undef KB_MATMAT_KR

#include "kernels_batch_small.h" /* F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL */

#endif /* M64_KERNELS_BATCH_H */
