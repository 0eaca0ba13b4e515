/* kernels_batch_small.h — prefill's matrix-matrix products for the float types (F32, F16,
 * BF16) and the 32-element block types (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL).
 * Included by kernels_batch.h, which says what act_<sfx> and matmat_<sfx> do.
 *
 * Their matvecs convert every weight for every input (f16 and bf16 to f32, nibbles and fifth
 * bits to i16), so n inputs paid for n conversions. Here each row is converted once per batch,
 * KS_CHUNK elements at a time, and the converted chunk is dotted against the inputs in tiles
 * of KS_T, each weight vector loaded once per tile. Rows go KS_ROWS at a time so one chunk of
 * every input's activation is read from L2 once per group, not once per row.
 * Measured (bench/kernels, 11008x4096, wasm AOT with AVX-512, 1 thread, per token, GB/s,
 * the per-input kernels before -> these; n = 32 and n = 5): F16 4.7 -> 17.6 and 4.6 -> 10.5,
 * Q5_0 4.6 -> 12.7 and 4.4 -> 8.5, IQ4_NL 5.3 -> 10.4, Q4_1 6.7 -> 10.7, Q4_0 6.8 -> 9.7 and
 * 6.1 -> 7.1, Q8_0 16.0 -> 18.2 and 13.5 -> 12.9 (noise: 11.8-13.9 across chunk sizes), F32
 * 27.8 -> 39.3, BF16 17.5 -> 20.7. KS_ROWS 4..16 and KS_CHUNK 128..512 were within noise.
 *
 * Every (row, input) keeps the matvec's own f32 accumulators (in memory between chunks) and
 * adds into them what the matvec adds, in its order; the vector loops' remainders and scalar
 * tails run at the end as the matvec runs them. So each output is bit for bit matvec_<sfx>'s
 * for that input (tested by BatchKernels.*).
 */
#ifndef M64_KERNELS_BATCH_SMALL_H
#define M64_KERNELS_BATCH_SMALL_H

enum { KS_F32, KS_F16, KS_BF16, KS_Q8_0, KS_Q4_0, KS_Q4_1, KS_Q5_0, KS_Q5_1, KS_IQ4_NL };

#define KS_ROWS 8     /* rows converted per pass over the inputs */
#define KS_CHUNK 256  /* elements of a row converted at a time: 8 blocks, 16 f32 steps */
#define KS_T 4        /* inputs per tile (2 for F32 and BF16, ks_width) */
#define KS_ACCS 4     /* at most this many f32x4 accumulators per (row, input) */

M64_INLINE int ks_float(int k) { return k <= KS_BF16; }
/* Q4_1, Q5_0, Q5_1, IQ4_NL sum their blocks four at a time (dot_legacy_rows); Q8_0 and
 * Q4_0 scale each block's lanes (rows_q8_0, rows_q4_0). */
M64_INLINE int ks_grouped(int k) { return k >= KS_Q4_1; }
M64_INLINE int ks_legacy(int k) {
  return k == KS_Q4_1 ? M64_LK_Q4_1 : k == KS_Q5_0 ? M64_LK_Q5_0 : k == KS_Q5_1 ? M64_LK_Q5_1 : M64_LK_IQ4_NL;
}
M64_INLINE int ks_has_min(int k) { return ks_grouped(k) && legacy_has_min(ks_legacy(k)); }

/* F32 and BF16 keep four accumulators per (row, input): four inputs' 16 and the weights spill
 * with 16 vector registers (x86-64-v3, V8). Measured (bench/kernels, 11008x4096, n = 32, per
 * token, GB/s, x86-64-v3 / with AVX-512): BF16 4 inputs 16.2 / 19.9, 2 inputs 18.5 / 20.7;
 * F32 31.9 / 38.1 and 36.2 / 39.3. */
M64_INLINE uint32_t ks_width(int k) { return k == KS_F32 || k == KS_BF16 ? 2 : KS_T; }

M64_INLINE size_t ks_row_bytes(int k, uint32_t cols) {
  switch (k) {
    case KS_F32: return (size_t)cols * 4;
    case KS_F16: case KS_BF16: return (size_t)cols * 2;
    case KS_Q8_0: return (size_t)(cols / QK8_0) * Q8_0_BYTES;
    case KS_Q4_0: return (size_t)(cols / QK8_0) * Q4_0_BYTES;
    default: return (size_t)(cols / QK8_0) * legacy_block_bytes(ks_legacy(k));
  }
}

/* How many leading elements the matvec's main vector loop covers: dot_f32 and dot_bf16 step
 * by 16, dot_f16 by 8, dot_legacy_rows by 4 blocks; rows_q8_0 and rows_q4_0 have no tail. */
M64_INLINE uint32_t ks_main(int k, uint32_t cols) {
  if (k == KS_F16) return cols & ~7u;
  if (ks_float(k)) return cols & ~15u;
  if (ks_grouped(k)) return ((cols / QK8_0) & ~3u) * QK8_0;
  return cols / QK8_0 * QK8_0;
}

/* A chunk of a row as the dots consume it: f32 weights, or i16 quants in element order with
 * each block's f32 scale (and min). */
typedef struct ks_chunk {
  union {
    float f[KS_CHUNK];
    int16_t q[KS_CHUNK];
  } __attribute__((aligned(16)));
  float d[KS_CHUNK / QK8_0] __attribute__((aligned(16)));
  float m[KS_CHUNK / QK8_0] __attribute__((aligned(16)));
} ks_chunk;

M64_INLINE void ks_store_i8(int16_t *q, v128_t lo, v128_t hi) {
  wasm_v128_store(q, wasm_i16x8_extend_low_i8x16(lo));
  wasm_v128_store(q + 8, wasm_i16x8_extend_high_i8x16(lo));
  wasm_v128_store(q + 16, wasm_i16x8_extend_low_i8x16(hi));
  wasm_v128_store(q + 24, wasm_i16x8_extend_high_i8x16(hi));
}

/* Elements [e0, e0 + len) of row wr converted into c; len is a multiple of the main loop's
 * step (for the grouped types, of 4 blocks). The scales come from where the matvec takes
 * them: F16_SCALE for Q8_0/Q4_0, legacy_scales4 for the grouped types. */
M64_INLINE void ks_convert(int k, const uint8_t *wr, uint32_t e0, uint32_t len, ks_chunk *c) {
  if (k == KS_F32) {
    __builtin_memcpy(c->f, wr + (size_t)e0 * 4, (size_t)len * 4);
    return;
  }
  if (k == KS_F16 || k == KS_BF16) {
    for (uint32_t i = 0; i < len; i += 8) {
      v128_t lo, hi;
      const v128_t h = wasm_v128_load(wr + (size_t)(e0 + i) * 2);
      if (k == KS_F16) f16x8_to_f32(h, &lo, &hi);
      else bf16x8_to_f32(h, &lo, &hi);
      wasm_v128_store(c->f + i, lo);
      wasm_v128_store(c->f + i + 4, hi);
    }
    return;
  }
  const uint32_t bytes = (uint32_t)(ks_row_bytes(k, QK8_0)), b0 = e0 / QK8_0;
  for (uint32_t j = 0; j < len / QK8_0; j++) {
    const uint8_t *wb = wr + (size_t)(b0 + j) * bytes;
    v128_t lo, hi;
    if (!ks_grouped(k)) {
      q8_block_quants(k == KS_Q4_0, wb, &lo, &hi);
      c->d[j] = F16_SCALE(wb);
    } else {
      legacy_unpack(ks_legacy(k), wb, &lo, &hi);
      if (j % 4 == 0) {
        v128_t d, m;
        legacy_scales4(ks_legacy(k), wb, &d, &m);
        wasm_v128_store(c->d + j, d);
        wasm_v128_store(c->m + j, m);
      }
    }
    ks_store_i8(c->q + QK8_0 * j, lo, hi);
  }
}

/* The i32 lanes of one block's dot as dot_i8x32_i16 and legacy_block_dot form them (lane l:
 * the sum of lane l of the four i16 dots; exact integers, so any order). */
M64_INLINE v128_t ks_block_dot(const int16_t *q, const int16_t *x) {
  v128_t s = wasm_i32x4_dot_i16x8(wasm_v128_load(q), wasm_v128_load(x));
  s = wasm_i32x4_add(s, wasm_i32x4_dot_i16x8(wasm_v128_load(q + 8), wasm_v128_load(x + 8)));
  s = wasm_i32x4_add(s, wasm_i32x4_dot_i16x8(wasm_v128_load(q + 16), wasm_v128_load(x + 16)));
  return wasm_i32x4_add(s, wasm_i32x4_dot_i16x8(wasm_v128_load(q + 24), wasm_v128_load(x + 24)));
}

/* One converted chunk (elements [e0, e0 + len)) of one row against nt inputs (input i's
 * activation at x0 + i * stride), adding into their accumulators acc[i][..]. nt is a
 * constant at every call, so each width compiles to its own loop. */
M64_INLINE void ks_tile(int k, const ks_chunk *c, const uint8_t *x0, size_t stride, uint32_t cols, uint32_t e0,
                        uint32_t len, const int nt, v128_t acc[][KS_ACCS]) {
  v128_t a[KS_T][KS_ACCS];
  KQ_UNROLL for (int i = 0; i < nt; i++)
    KQ_UNROLL for (int j = 0; j < KS_ACCS; j++) a[i][j] = acc[i][j];
  if (k == KS_F16) { /* dot_f16: lanes 0..3 of each 8 into a0, 4..7 into a1 */
    for (uint32_t e = 0; e < len; e += 8) {
      const v128_t w0 = wasm_v128_load(c->f + e), w1 = wasm_v128_load(c->f + e + 4);
      KQ_UNROLL for (int i = 0; i < nt; i++) {
        const float *x = (const float *)(x0 + i * stride) + e0 + e;
        a[i][0] = wasm_f32x4_add(a[i][0], wasm_f32x4_mul(w0, wasm_v128_load(x)));
        a[i][1] = wasm_f32x4_add(a[i][1], wasm_f32x4_mul(w1, wasm_v128_load(x + 4)));
      }
    }
  } else if (ks_float(k)) { /* dot_f32, dot_bf16: four accumulators over each 16 */
    for (uint32_t e = 0; e < len; e += 16) {
      v128_t w[4];
      KQ_UNROLL for (int j = 0; j < 4; j++) w[j] = wasm_v128_load(c->f + e + 4 * j);
      KQ_UNROLL for (int i = 0; i < nt; i++) {
        const float *x = (const float *)(x0 + i * stride) + e0 + e;
        KQ_UNROLL for (int j = 0; j < 4; j++)
          a[i][j] = wasm_f32x4_add(a[i][j], wasm_f32x4_mul(w[j], wasm_v128_load(x + 4 * j)));
      }
    }
  } else if (!ks_grouped(k)) { /* rows_q8_0, rows_q4_0: acc += lanes * (d_w * d_x) per block */
    const uint32_t b0 = e0 / QK8_0;
    for (uint32_t j = 0; j < len / QK8_0; j++)
      KQ_UNROLL for (int i = 0; i < nt; i++) {
        const act_q8 x = act_q8_view(x0 + i * stride, cols);
        const v128_t s = ks_block_dot(c->q + QK8_0 * j, x.q + (size_t)(b0 + j) * QK8_0);
        a[i][0] = fma_block(a[i][0], s, c->d[j], x.d[b0 + j]);
      }
  } else { /* dot_legacy_rows: four blocks' sums, scaled together; mins beside */
    const uint32_t b0 = e0 / QK8_0, nb = cols / QK8_0;
    for (uint32_t j = 0; j < len / QK8_0; j += 4)
      KQ_UNROLL for (int i = 0; i < nt; i++) {
        const act_q8 x = act_q8_view(x0 + i * stride, cols);
        const int16_t *xq = x.q + (size_t)(b0 + j) * QK8_0;
        const v128_t s = transpose_add_i32x4(
            ks_block_dot(c->q + QK8_0 * j, xq), ks_block_dot(c->q + QK8_0 * (j + 1), xq + QK8_0),
            ks_block_dot(c->q + QK8_0 * (j + 2), xq + 2 * QK8_0), ks_block_dot(c->q + QK8_0 * (j + 3), xq + 3 * QK8_0));
        const v128_t dx = wasm_v128_load(x.d + b0 + j);
        a[i][0] = wasm_f32x4_add(a[i][0], wasm_f32x4_mul(wasm_f32x4_convert_i32x4(s),
                                                         wasm_f32x4_mul(wasm_v128_load(c->d + j), dx)));
        if (ks_has_min(k))
          a[i][1] = wasm_f32x4_add(a[i][1], wasm_f32x4_mul(wasm_v128_load(c->m + j),
                                                           wasm_v128_load(x.d + nb + b0 + j)));
      }
  }
  KQ_UNROLL for (int i = 0; i < nt; i++)
    KQ_UNROLL for (int j = 0; j < KS_ACCS; j++) acc[i][j] = a[i][j];
}

/* A (row, input)'s output from its accumulators: the matvec's remainder loop, reduction and
 * scalar tail, on the raw row wr. */
M64_INLINE float ks_finish(int k, v128_t a[KS_ACCS], const uint8_t *wr, const uint8_t *xq, uint32_t cols) {
  uint32_t i = ks_main(k, cols);
  if (ks_float(k)) {
    const float *x = (const float *)xq;
    if (k == KS_F16) {
      float s = hsum_f32x4(wasm_f32x4_add(a[0], a[1]));
      for (; i < cols; i++) s += f16_to_f32(load_u16(wr + 2 * i)) * x[i];
      return s;
    }
    if (k == KS_F32)
      for (; i + 4 <= cols; i += 4)
        a[0] = wasm_f32x4_add(a[0], wasm_f32x4_mul(wasm_v128_load(wr + 4 * i), wasm_v128_load(x + i)));
    else
      for (; i + 8 <= cols; i += 8) {
        v128_t lo, hi;
        bf16x8_to_f32(wasm_v128_load(wr + 2 * i), &lo, &hi);
        a[0] = wasm_f32x4_add(a[0], wasm_f32x4_mul(lo, wasm_v128_load(x + i)));
        a[1] = wasm_f32x4_add(a[1], wasm_f32x4_mul(hi, wasm_v128_load(x + i + 4)));
      }
    float s = hsum_f32x4(wasm_f32x4_add(wasm_f32x4_add(a[0], a[1]), wasm_f32x4_add(a[2], a[3])));
    for (; i < cols; i++)
      s += (k == KS_F32 ? kq_load_f32(wr + 4 * i) : bf16_to_f32(load_u16(wr + 2 * i))) * x[i];
    return s;
  }
  if (!ks_grouped(k)) return hsum_f32x4(a[0]);
  const uint32_t nb = cols / QK8_0;
  const act_q8 x = act_q8_view(xq, cols);
  return legacy_tail(ks_legacy(k), hsum_f32x4(wasm_f32x4_add(a[0], a[1])), wr, x.q, x.d, x.d + nb, i / QK8_0, nb);
}

/* Rows in groups of KS_ROWS; per group, each row's chunks converted once and dotted against
 * every tile of inputs. */
M64_INLINE void ks_matmat(int k, float *out, uint32_t out_stride, const uint8_t *w, const uint8_t *xq,
                          uint32_t rows, uint32_t cols, uint32_t n) {
  f16_table_init();
  const size_t stride = M64_ACT_STRIDE(cols), row_bytes = ks_row_bytes(k, cols);
  const uint32_t main = ks_main(k, cols);
  for (uint32_t t0 = 0; t0 < n; t0 += M64_MAX_BATCH) {
    const uint32_t nt = n - t0 < M64_MAX_BATCH ? n - t0 : M64_MAX_BATCH;
    const uint8_t *xt = xq + (size_t)t0 * stride;
    for (uint32_t r0 = 0; r0 < rows; r0 += KS_ROWS) {
      const uint32_t nr = rows - r0 < KS_ROWS ? rows - r0 : KS_ROWS;
      v128_t acc[KS_ROWS][M64_MAX_BATCH][KS_ACCS];
      for (uint32_t r = 0; r < nr; r++)
        for (uint32_t i = 0; i < nt; i++)
          for (int j = 0; j < KS_ACCS; j++) acc[r][i][j] = wasm_f32x4_splat(0);
      for (uint32_t e0 = 0; e0 < main; e0 += KS_CHUNK) {
        const uint32_t len = main - e0 < KS_CHUNK ? main - e0 : KS_CHUNK;
        ks_chunk c[KS_ROWS];
        for (uint32_t r = 0; r < nr; r++) ks_convert(k, w + (size_t)(r0 + r) * row_bytes, e0, len, &c[r]);
        for (uint32_t i = 0; i < nt; i += ks_width(k)) {
          const uint8_t *x0 = xt + (size_t)i * stride;
          for (uint32_t r = 0; r < nr; r++) switch (nt - i < ks_width(k) ? nt - i : ks_width(k)) { /* this tile's inputs */
            case 1: ks_tile(k, &c[r], x0, stride, cols, e0, len, 1, &acc[r][i]); break;
            case 2: ks_tile(k, &c[r], x0, stride, cols, e0, len, 2, &acc[r][i]); break;
            case 3: ks_tile(k, &c[r], x0, stride, cols, e0, len, 3, &acc[r][i]); break;
            default: ks_tile(k, &c[r], x0, stride, cols, e0, len, KS_T, &acc[r][i]); break;
          }
        }
      }
      for (uint32_t r = 0; r < nr; r++)
        for (uint32_t i = 0; i < nt; i++)
          out[(size_t)(t0 + i) * out_stride + r0 + r] =
              ks_finish(k, acc[r][i], w + (size_t)(r0 + r) * row_bytes, xt + (size_t)i * stride, cols);
    }
  }
}

#define KS_MATMAT(sfx, kind)                                                                          \
  M64_INLINE void matmat_##sfx(float *out, uint32_t out_stride, const uint8_t *w, const uint8_t *xq,  \
                               uint32_t rows, uint32_t cols, uint32_t n) {                            \
    ks_matmat(kind, out, out_stride, w, xq, rows, cols, n);                                           \
  }
KS_MATMAT(f32, KS_F32)
KS_MATMAT(f16, KS_F16)
KS_MATMAT(bf16, KS_BF16)
KS_MATMAT(q8_0, KS_Q8_0)
KS_MATMAT(q4_0, KS_Q4_0)
KS_MATMAT(q4_1, KS_Q4_1)
KS_MATMAT(q5_0, KS_Q5_0)
KS_MATMAT(q5_1, KS_Q5_1)
KS_MATMAT(iq4_nl, KS_IQ4_NL)
#undef KS_MATMAT

#endif /* M64_KERNELS_BATCH_SMALL_H */
