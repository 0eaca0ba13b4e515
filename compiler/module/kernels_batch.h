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
 * Q4_K and Q6_K (the bulk of a Q4_K_M model) have real matrix-matrix kernels: a weight
 * block is unpacked once to i16 lanes, multiplied by its sub-block scales (|q * scale| <=
 * 945 for Q4_K, 4096 for Q6_K's q - 32, so i16 holds it and the block sum stays far from
 * i32 overflow: the same integer as the matvec's sum of scaled sub-block sums), in the
 * expanded Q8_K's even/odd order, and then dotted in tiles of 2 rows x KB_T inputs: one
 * i32x4.dot_i16x8_s per 8 weights per (row, input), 2 weight and 4 activation loads per
 * 8 dots, 8 i32x4 accumulators (no spills with 16 xmm after AOT). The inputs of a tile
 * are the f32x4 lanes of the block's scaling, each lane doing what kq_block2 / kq_block1
 * do for one row of the matvec. Rows go in groups of KB_ROWS per pass over the blocks, so
 * one block of every input's activation (n * 576 bytes) stays in L1 for the group while
 * the weights stream through once. Measured (bench/kernels, M64_BENCH_BATCH=32, wasm
 * AOT): per token 1.7x (Q4_K) and 2.2x (Q6_K) the matvec's throughput from memory.
 * The other types run their matvec's rows_<sfx> (or, for the other K-quants, the per-row
 * kq_blk_<sfx>) once per input on the prepared activation.
 */
#ifndef M64_KERNELS_BATCH_H
#define M64_KERNELS_BATCH_H

#define KB_T 4     /* inputs per tile: the lanes of one f32x4 */
#define KB_ROWS 16 /* rows per pass over the blocks (measured: 4..32 within noise) */

/* Weight vectors per step of the dot loop. Fully unrolled, clang reassociates each
 * accumulator's adds into one tree, which keeps every loaded vector live at once (spills
 * after AOT); measured: 2 as fast as 4, either 1.3x the fully unrolled loop. */
#define KB_STEP 2

/* ------------------------------------------------------------------ generic: rows per input */
#define KB_MATMAT_PER_INPUT(sfx)                                                                        \
  M64_INLINE void matmat_##sfx(float *out, uint32_t out_stride, const uint8_t *w, const uint8_t *xq,    \
                               uint32_t rows, uint32_t cols, uint32_t n) {                              \
    for (uint32_t t = 0; t < n; t++)                                                                    \
      rows_##sfx(out + (size_t)t * out_stride, w, xq + (size_t)t * M64_ACT_STRIDE(cols), rows, cols);   \
  }

/* The other K-quants: each row as the matvec's unpaired rows (kq_row_<sfx>), which is also
 * what its paired rows compute; in ggml's rows (rows_<sfx>) or row pairs (rows_<sfx>_pairs). */
#define KB_KQ_ROWS(sfx, BYTES)                                                                          \
  M64_INLINE void kb_rows_##sfx(float *out, const uint8_t *w, const uint8_t *xq, uint32_t rows,          \
                                uint32_t cols, int pairs) {                                             \
    f16_table_init();                                                                                   \
    const uint32_t nb = cols / KQ_QK;                                                                   \
    for (uint32_t r = 0; r < rows; r++) {                                                               \
      size_t step;                                                                                      \
      const uint8_t *wr = kq_row_at(w, r, rows, (size_t)nb * (BYTES), (BYTES), pairs, &step);           \
      out[r] = kq_row_##sfx(wr, step, xq, xq + (size_t)nb * KQ8_BYTES);                                 \
    }                                                                                                   \
  }                                                                                                     \
  M64_INLINE void rows_##sfx(float *out, const uint8_t *w, const uint8_t *xq, uint32_t rows,             \
                             uint32_t cols) {                                                           \
    kb_rows_##sfx(out, w, xq, rows, cols, 0);                                                           \
  }                                                                                                     \
  M64_INLINE void rows_##sfx##_pairs(float *out, const uint8_t *w, const uint8_t *xq, uint32_t rows,     \
                                     uint32_t cols) {                                                   \
    kb_rows_##sfx(out, w, xq, rows, cols, 1);                                                           \
  }

#define KB_KQ_ACT(sfx)                                                                                  \
  M64_INLINE void act_##sfx(uint8_t *xq, const float *x, uint32_t cols) { quantize_q8_K(xq, x, cols); } \
  M64_INLINE void act_##sfx##_pairs(uint8_t *xq, const float *x, uint32_t cols) { quantize_q8_K(xq, x, cols); }

KB_KQ_ACT(q2_K)
KB_KQ_ACT(q3_K)
KB_KQ_ACT(q4_K)
KB_KQ_ACT(q5_K)
KB_KQ_ACT(q6_K)
KB_KQ_ACT(iq4_xs)
KB_KQ_ROWS(q2_K, Q2_K_BYTES)
KB_KQ_ROWS(q3_K, Q3_K_BYTES)
KB_KQ_ROWS(q5_K, Q5_K_BYTES)
KB_KQ_ROWS(iq4_xs, IQ4_XS_BYTES)

KB_MATMAT_PER_INPUT(f32)
KB_MATMAT_PER_INPUT(f16)
KB_MATMAT_PER_INPUT(bf16)
KB_MATMAT_PER_INPUT(q8_0)
KB_MATMAT_PER_INPUT(q4_0)
KB_MATMAT_PER_INPUT(q4_1)
KB_MATMAT_PER_INPUT(q5_0)
KB_MATMAT_PER_INPUT(q5_1)
KB_MATMAT_PER_INPUT(iq4_nl)
KB_MATMAT_PER_INPUT(q2_K)
KB_MATMAT_PER_INPUT(q3_K)
KB_MATMAT_PER_INPUT(q5_K)
KB_MATMAT_PER_INPUT(iq4_xs)
KB_MATMAT_PER_INPUT(q2_K_pairs)
KB_MATMAT_PER_INPUT(q3_K_pairs)
KB_MATMAT_PER_INPUT(q5_K_pairs)
KB_MATMAT_PER_INPUT(iq4_xs_pairs)

/* ------------------------------------------------------------------ Q4_K / Q6_K tiles */
/* A block unpacked: 256 quants times their sub-block scale, i16, in the expanded Q8_K
 * order (each 16-group as 8 evens then 8 odds), so weight vector k pairs with activation
 * vector k; plus what the f32 scaling of the block needs. */
typedef struct kb_block {
  int16_t q[KQ_QK] __attribute__((aligned(16)));
  v128_t mins; /* Q4_K: the 8 mins as i16, dotted with bsums32 */
  float d, dmin;
} kb_block;

/* Q4_K: element order and scales as kq_blk_q4_K (low nibbles of 32c.. are sub-block 2c,
 * high nibbles sub-block 2c + 1; i16 lanes split a byte pair into even/odd elements). */
M64_INLINE void kb_unpack_q4_K(const uint8_t *wb, kb_block *o) {
  const v128_t m4 = wasm_i16x8_splat(0x000f);
  const v128_t sm = kq_scale_min_k4_v(wasm_v128_load(wb));
  uint8_t sc[16];
  wasm_v128_store(sc, sm);
  o->mins = wasm_u16x8_extend_high_u8x16(sm);
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

/* The exact integer block sums of two unpacked blocks (rows) against nt <= KB_T inputs'
 * blocks x[i]: lane i of s[j] = sum over the block of (q_j * scale) * x_i (lanes from nt
 * on: 0). A 2 x nt tile of accumulators: per 8 weights, 2 + nt loads feed 2 nt dots (16
 * xmm hold the 2 x 4 tile after AOT). Called with a constant nt, so each width compiles to
 * its own loop: a batch's last inputs (n not a multiple of KB_T) cost their own dots only,
 * not a full tile's. */
M64_INLINE void kb_dot_tile(const int16_t *q0, const int16_t *q1, const uint8_t *const x[KB_T], const int nt,
                            v128_t s[2]) {
  const uint8_t *xi[KB_T];
  v128_t a[KB_T], b[KB_T];
  KQ_UNROLL for (int i = 0; i < KB_T; i++) {
    xi[i] = x[i] + KQ8_Q;
    a[i] = b[i] = wasm_i32x4_splat(0);
  }
  for (int k = 0; k < KQ_QK / 8; k += KB_STEP) {
    /* opaque each step: loads at immediate offsets, none hoisted out of the loop over tiles */
    KQ_OPAQUE(q0);
    KQ_OPAQUE(q1);
    KQ_UNROLL for (int i = 0; i < nt; i++) KQ_OPAQUE(xi[i]);
    KQ_UNROLL for (int j = 0; j < KB_STEP; j++) {
      const v128_t wa = wasm_v128_load(q0 + 8 * j), wb = wasm_v128_load(q1 + 8 * j);
      KQ_UNROLL for (int i = 0; i < nt; i++) {
        const v128_t v = wasm_v128_load(xi[i] + 16 * j);
        a[i] = wasm_i32x4_add(a[i], wasm_i32x4_dot_i16x8(wa, v));
        b[i] = wasm_i32x4_add(b[i], wasm_i32x4_dot_i16x8(wb, v));
      }
    }
    q0 += 8 * KB_STEP, q1 += 8 * KB_STEP;
    KQ_UNROLL for (int i = 0; i < nt; i++) xi[i] += 16 * KB_STEP;
  }
  s[0] = kq_hsum4(a[0], a[1], a[2], a[3]);
  s[1] = kq_hsum4(b[0], b[1], b[2], b[3]);
}

/* One row's block sums s into the f32 accumulator of a tile (lanes = inputs), with the
 * matvec's operations per lane: Q4_K as kq_block2, acc += S * (d * dx) -
 * M * (dmin * dx); Q6_K as kq_block1, acc += S * (d * dx). */
M64_INLINE v128_t kb_scale_block(int q6, v128_t acc, v128_t s, const kb_block *b, const uint8_t *const x[KB_T],
                                 v128_t dx) {
  const v128_t a = wasm_f32x4_mul(wasm_f32x4_convert_i32x4(s), wasm_f32x4_mul(wasm_f32x4_splat(b->d), dx));
  if (q6) return wasm_f32x4_add(acc, a);
  const v128_t m = kq_hsum4(wasm_i32x4_dot_i16x8(b->mins, wasm_v128_load(x[0] + KQ8_BS32)),
                            wasm_i32x4_dot_i16x8(b->mins, wasm_v128_load(x[1] + KQ8_BS32)),
                            wasm_i32x4_dot_i16x8(b->mins, wasm_v128_load(x[2] + KQ8_BS32)),
                            wasm_i32x4_dot_i16x8(b->mins, wasm_v128_load(x[3] + KQ8_BS32)));
  const v128_t mm = wasm_f32x4_mul(wasm_f32x4_convert_i32x4(m), wasm_f32x4_mul(wasm_f32x4_splat(b->dmin), dx));
  return wasm_f32x4_add(acc, wasm_f32x4_sub(a, mm));
}

/* Rows in groups of KB_ROWS, blocks in order; per block, rows in pairs (an odd last row
 * paired with itself), each (row, block) unpacked once and run against every tile of KB_T
 * inputs; a short last tile dots only its own inputs (its other lanes' scaling repeats
 * its last input and is not stored). */
M64_INLINE void kb_matmat_k(int q6, int pairs, float *out, uint32_t out_stride, const uint8_t *w,
                            const uint8_t *xq, uint32_t rows, uint32_t cols, uint32_t n) {
  f16_table_init();
  const uint32_t nb = cols / KQ_QK, bytes = q6 ? Q6_K_BYTES : Q4_K_BYTES;
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
            if (q6) kb_unpack_q6_K(wb, &blk[k]);
            else kb_unpack_q4_K(wb, &blk[k]);
          }
          for (uint32_t i = 0; i < tiles; i++) {
            const uint8_t *x[KB_T];
            for (int k = 0; k < KB_T; k++) x[k] = xt[KB_T * i + k] + xo;
            const v128_t dx = wasm_f32x4_make(kq_load_f32(x[0]), kq_load_f32(x[1]), kq_load_f32(x[2]), kq_load_f32(x[3]));
            v128_t s[2];
            switch (nt - KB_T * i < KB_T ? nt - KB_T * i : KB_T) { /* inputs in this tile */
            case 1: kb_dot_tile(blk[0].q, blk[1].q, x, 1, s); break;
            case 2: kb_dot_tile(blk[0].q, blk[1].q, x, 2, s); break;
            case 3: kb_dot_tile(blk[0].q, blk[1].q, x, 3, s); break;
            default: kb_dot_tile(blk[0].q, blk[1].q, x, KB_T, s); break;
            }
            acc[r][i] = kb_scale_block(q6, acc[r][i], s[0], &blk[0], x, dx);
            if (pair) acc[r + 1][i] = kb_scale_block(q6, acc[r + 1][i], s[1], &blk[1], x, dx);
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

/* matmat_<q4_K|q6_K>[_pairs]: ggml's rows, or the row-pair layout. */
#define KB_MATMAT_K(sfx, q6)                                                                              \
  M64_INLINE void matmat_##sfx(float *out, uint32_t out_stride, const uint8_t *w, const uint8_t *xq,      \
                               uint32_t rows, uint32_t cols, uint32_t n) {                                \
    kb_matmat_k(q6, 0, out, out_stride, w, xq, rows, cols, n);                                            \
  }                                                                                                       \
  M64_INLINE void matmat_##sfx##_pairs(float *out, uint32_t out_stride, const uint8_t *w,                 \
                                       const uint8_t *xq, uint32_t rows, uint32_t cols, uint32_t n) {     \
    kb_matmat_k(q6, 1, out, out_stride, w, xq, rows, cols, n);                                            \
  }
KB_MATMAT_K(q4_K, 0)
KB_MATMAT_K(q6_K, 1)

#undef KB_MATMAT_PER_INPUT
#undef KB_KQ_ROWS
#undef KB_KQ_ACT
#undef KB_MATMAT_K

#endif /* M64_KERNELS_BATCH_H */
