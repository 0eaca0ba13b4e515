/*
 * native_kq.h — the module's m64.kq_rows import as an AVX2 native host defines it: rows of
 * a Q4_K or Q6_K matrix-vector product over the i8 activation the module prepared, 256
 * bits at a time. The module's own kernels are 128-bit (SIMD128); on a CPU whose memory
 * outruns them (measured: ~22 GB/s of Q4_K per thread in wasm against 27 GB/s of memory)
 * the host's wider vectors are the way to the memory's speed.
 *
 * The results are the module's kernels' to the bit (kernels_kquants.h, KQ_MATVEC_DOT): the
 * same integer block sums, then per block and row the same f32 operations in the same order.
 * Included by native_glue.c (which bounds-checks the module's addresses before calling it)
 * and by the kernel tests, which compare it with the module's kernels.
 */
#ifndef M64_NATIVE_KQ_H
#define M64_NATIVE_KQ_H

#include <stdint.h>
#include <string.h>

#if defined(__AVX2__) && defined(__F16C__)
#include <immintrin.h>
#define M64_NATIVE_KQ 1

enum { NKQ_Q4_K = 12, NKQ_Q6_K = 14 }; /* ggml type ids */
#define NKQ_ACT_BYTES 320u            /* KQ8I_BYTES: f32 d | i16 bsums16[16] | i16 bsums32[8] | i8 q[256] */

static inline uint32_t nkq_u32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}
static inline float nkq_f16(const uint8_t *p) {
  uint16_t h;
  memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}
static inline int32_t nkq_hsum256(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}
static inline int32_t nkq_hsum128(__m128i s) {
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

/* One Q4_K block against one i8 activation block: the f32 term its row adds. */
static inline float nkq_block_q4_K(const uint8_t *wb, const uint8_t *xb) {
  const uint32_t a0 = nkq_u32(wb + 4), a1 = nkq_u32(wb + 8), a2 = nkq_u32(wb + 12);
  const uint32_t k6 = 0x3f3f3f3fu, k4 = 0x0f0f0f0fu, k2 = 0x03030303u;
  const uint32_t sm[4] = {a0 & k6, (a2 & k4) | (((a0 >> 6) & k2) << 4), a1 & k6,
                          ((a2 >> 4) & k4) | (((a1 >> 6) & k2) << 4)};
  uint8_t s[16];
  memcpy(s, sm, 16); /* scales 0..7, mins 0..7 */
  const __m128i mins = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)(s + 8)));
  const int32_t imin = nkq_hsum128(_mm_madd_epi16(mins, _mm_loadu_si128((const __m128i *)(xb + 48))));
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  __m256i acc = _mm256_setzero_si256();
  for (int c = 0; c < 4; c++) { /* low nibbles: sub-block 2c, high: 2c + 1 */
    const __m256i q = _mm256_loadu_si256((const __m256i *)(wb + 16 + 32 * c));
    const __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
    const __m256i plo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(xb + 64 + 64 * c)));
    const __m256i phi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(xb + 96 + 64 * c)));
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(plo, _mm256_set1_epi16(s[2 * c])));
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(phi, _mm256_set1_epi16(s[2 * c + 1])));
  }
  float dx;
  memcpy(&dx, xb, 4);
  const float d = nkq_f16(wb) * dx, dmin = nkq_f16(wb + 2) * dx;
  const float a = (float)nkq_hsum256(acc) * d; /* kq_block2's operations */
  const float m = (float)imin * dmin;
  return a - m;
}

/* One Q6_K block likewise. */
static inline float nkq_block_q6_K(const uint8_t *wb, const uint8_t *xb) {
  const int8_t *sc = (const int8_t *)(wb + 192);
  const __m128i s16a = _mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)sc));
  const __m128i s16b = _mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(sc + 8)));
  /* the quants are dotted unsigned (0..63): less 32 times the scaled bsums */
  const int32_t off = nkq_hsum128(_mm_add_epi32(_mm_madd_epi16(s16a, _mm_loadu_si128((const __m128i *)(xb + 16))),
                                                _mm_madd_epi16(s16b, _mm_loadu_si128((const __m128i *)(xb + 32)))));
  const __m256i m4 = _mm256_set1_epi8(0x0f), m30 = _mm256_set1_epi8(0x30);
  __m256i acc = _mm256_setzero_si256();
  for (int h = 0; h < 2; h++) {
    const __m256i la = _mm256_loadu_si256((const __m256i *)(wb + 64 * h));
    const __m256i lb = _mm256_loadu_si256((const __m256i *)(wb + 64 * h + 32));
    const __m256i hb = _mm256_loadu_si256((const __m256i *)(wb + 128 + 32 * h));
    const __m256i q[4] = {
        _mm256_or_si256(_mm256_and_si256(la, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), m30)),
        _mm256_or_si256(_mm256_and_si256(lb, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 2), m30)),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(la, 4), m4), _mm256_and_si256(hb, m30)),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lb, 4), m4),
                        _mm256_and_si256(_mm256_srli_epi16(hb, 2), m30))};
    for (int k = 0; k < 4; k++) { /* elements 128h + 32k + (0..31), scales 8h + 2k, 8h + 2k + 1 */
      const __m256i p = _mm256_maddubs_epi16(q[k], _mm256_loadu_si256((const __m256i *)(xb + 64 + 128 * h + 32 * k)));
      const __m256i s = _mm256_setr_m128i(_mm_set1_epi16(sc[8 * h + 2 * k]), _mm_set1_epi16(sc[8 * h + 2 * k + 1]));
      acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, s));
    }
  }
  float dx;
  memcpy(&dx, xb, 4);
  const float d = nkq_f16(wb + 208) * dx;
  return (float)(nkq_hsum256(acc) - 32 * off) * d; /* kq_block1's */
}

static inline float nkq_block(uint32_t type, const uint8_t *wb, const uint8_t *xb) {
  return type == NKQ_Q4_K ? nkq_block_q4_K(wb, xb) : nkq_block_q6_K(wb, xb);
}

static inline size_t nkq_block_bytes(uint32_t type) { return type == NKQ_Q4_K ? 144 : 210; }

/* out[r] for r < rows: row r of w (ggml's rows, or with pairs the row-pair layout) against
 * the nb i8 activation blocks at xq, each row's blocks summed in order. Rows go two per
 * pass, as the module's kernels do: in the row-pair layout one sequential stream, read
 * ahead 4 KiB; the activation's loads are shared. */
static inline void m64_native_kq_rows(uint32_t type, float *out, const uint8_t *w, const uint8_t *xq, uint32_t rows,
                                      uint32_t nb, int pairs) {
  const size_t bytes = nkq_block_bytes(type), row_bytes = nb * bytes, step = pairs ? 2 * bytes : bytes;
  uint32_t r = 0;
  for (; r + 2 <= rows; r += 2) {
    const uint8_t *w0 = w + r * row_bytes, *w1 = w0 + (pairs ? bytes : row_bytes);
    float acc0 = 0, acc1 = 0;
    for (uint32_t b = 0; b < nb; b++, w0 += step, w1 += step) {
      for (size_t o = 0; o < step; o += 64) _mm_prefetch((const char *)w0 + 4096 + o, _MM_HINT_T0);
      if (!pairs)
        for (size_t o = 0; o < step; o += 64) _mm_prefetch((const char *)w1 + 4096 + o, _MM_HINT_T0);
      const uint8_t *xb = xq + (size_t)b * NKQ_ACT_BYTES;
      acc0 += nkq_block(type, w0, xb);
      acc1 += nkq_block(type, w1, xb);
    }
    out[r] = acc0;
    out[r + 1] = acc1;
  }
  if (r < rows) { /* an odd last row, as it is in either layout */
    const uint8_t *wb = w + r * row_bytes;
    float acc = 0;
    for (uint32_t b = 0; b < nb; b++) acc += nkq_block(type, wb + b * bytes, xq + (size_t)b * NKQ_ACT_BYTES);
    out[r] = acc;
  }
}
#endif /* __AVX2__ && __F16C__ */

#endif
