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

#define NKQ_INLINE_EARLY static inline __attribute__((always_inline))
enum { NKQ_Q4_K = 12, NKQ_Q5_K = 13, NKQ_Q6_K = 14 }; /* ggml type ids */
/* Q4_K and Q5_K share their header (d, dmin, 12 bytes of scales and mins) and their sums */
#define NKQ_K45(type) ((type) != NKQ_Q6_K)
#define NKQ_ACT_BYTES 320u            /* KQ8I_BYTES: f32 d | i16 bsums16[16] | i16 bsums32[8] | i8 q[256] */
#ifndef NKQ_AHEAD
#define NKQ_AHEAD 4096 /* bytes of weights read ahead */
#endif

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

/* A Q4_K block's first 16 bytes (d, dmin, the 12 packed bytes) -> its 8 scales (bytes
 * 0..7) and 8 mins (bytes 8..15), in a 128-bit lane. */
NKQ_INLINE_EARLY __m128i nkq_q4_K_scales1(__m128i h) {
  const __m128i x = _mm_shuffle_epi32(h, _MM_SHUFFLE(3, 2, 3, 1)); /* a0 a2 a1 a2 */
  const __m128i lo = _mm_and_si128(_mm_srlv_epi32(x, _mm_setr_epi32(0, 0, 0, 4)),
                                   _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f));
  const __m128i z = _mm_shuffle_epi32(h, _MM_SHUFFLE(2, 2, 1, 1)); /* a0 a0 a1 a1 */
  const __m128i hi = _mm_slli_epi32(_mm_and_si128(_mm_srli_epi32(z, 6), _mm_set1_epi32(0x03030303)), 4);
  return _mm_or_si128(lo, _mm_and_si128(hi, _mm_setr_epi32(0, -1, 0, -1)));
}

/* Q5_K's fifth bits for the 32 quants of sub-block k (bit k of each qh byte) at bit 4. */
#define NKQ_Q5_BIT(qh, k, SHL, SHR, AND, SET1) \
  AND((k) < 4 ? SHL(qh, 4 - (k)) : SHR(qh, (k) - 4), SET1(0x10))

/* The integer part of one Q4_K (five: Q5_K) block against one i8 activation block: *q's
 * lanes sum to sum(scale * q * x), *m's to sum(min * bsum). */
NKQ_INLINE_EARLY void nkq_ints_k45(const uint8_t *wb, const uint8_t *xb, __m256i *q, __m256i *m, int five) {
  const __m128i s = nkq_q4_K_scales1(_mm_loadu_si128((const __m128i *)wb));
  const __m128i mins = _mm_cvtepu8_epi16(_mm_unpackhi_epi64(s, s));
  *m = _mm256_zextsi128_si256(_mm_madd_epi16(mins, _mm_loadu_si128((const __m128i *)(xb + 48))));
  const __m256i sw = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(s)); /* the 8 scales as words */
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  __m256i acc = _mm256_setzero_si256();
  const __m256i qh = five ? _mm256_loadu_si256((const __m256i *)(wb + 16)) : _mm256_setzero_si256();
  for (int c = 0; c < 4; c++) { /* low nibbles: sub-block 2c, high: 2c + 1 */
    const __m256i w = _mm256_loadu_si256((const __m256i *)(wb + (five ? 48 : 16) + 32 * c));
    __m256i lo = _mm256_and_si256(w, m4), hi = _mm256_and_si256(_mm256_srli_epi16(w, 4), m4);
    if (five) {
      lo = _mm256_or_si256(lo, NKQ_Q5_BIT(qh, 2 * c, _mm256_slli_epi16, _mm256_srli_epi16, _mm256_and_si256, _mm256_set1_epi8));
      hi = _mm256_or_si256(hi, NKQ_Q5_BIT(qh, 2 * c + 1, _mm256_slli_epi16, _mm256_srli_epi16, _mm256_and_si256, _mm256_set1_epi8));
    }
    const __m256i plo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(xb + 64 + 64 * c)));
    const __m256i phi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(xb + 96 + 64 * c)));
    const __m256i slo = _mm256_shuffle_epi8(sw, _mm256_set1_epi16((short)(0x0100 + 0x0202 * (2 * c))));
    const __m256i shi = _mm256_shuffle_epi8(sw, _mm256_set1_epi16((short)(0x0100 + 0x0202 * (2 * c + 1))));
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(plo, slo));
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(phi, shi));
  }
  *q = acc;
}

/* One Q4_K (five: Q5_K) block against one i8 activation block: the f32 term its row adds. */
NKQ_INLINE_EARLY float nkq_block_k45(const uint8_t *wb, const uint8_t *xb, int five) {
  __m256i q, m;
  nkq_ints_k45(wb, xb, &q, &m, five);
  float dx;
  memcpy(&dx, xb, 4);
  const float d = nkq_f16(wb) * dx, dmin = nkq_f16(wb + 2) * dx;
  const float a = (float)nkq_hsum256(q) * d; /* kq_block2's operations */
  const float mm = (float)nkq_hsum256(m) * dmin;
  return a - mm;
}

/* The integer part of one Q6_K block: *q's lanes sum to sum(scale * q * x) with q from 0
 * to 63, *o's to sum(scale * bsum16), which the caller takes 32 times off. */
NKQ_INLINE_EARLY void nkq_ints_q6_K(const uint8_t *wb, const uint8_t *xb, __m256i *q, __m256i *o) {
  const int8_t *sc = (const int8_t *)(wb + 192);
  const __m128i s8 = _mm_loadu_si128((const __m128i *)sc);
  *o = _mm256_madd_epi16(_mm256_cvtepi8_epi16(s8), _mm256_loadu_si256((const __m256i *)(xb + 16)));
  const __m256i sw0 = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(s8));                   /* scales 0..7 */
  const __m256i sw1 = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(_mm_srli_si128(s8, 8))); /* 8..15 */
  const __m256i m4 = _mm256_set1_epi8(0x0f), m30 = _mm256_set1_epi8(0x30);
  __m256i acc = _mm256_setzero_si256();
  for (int h = 0; h < 2; h++) {
    const __m256i la = _mm256_loadu_si256((const __m256i *)(wb + 64 * h));
    const __m256i lb = _mm256_loadu_si256((const __m256i *)(wb + 64 * h + 32));
    const __m256i hb = _mm256_loadu_si256((const __m256i *)(wb + 128 + 32 * h));
    const __m256i qs[4] = {
        _mm256_or_si256(_mm256_and_si256(la, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), m30)),
        _mm256_or_si256(_mm256_and_si256(lb, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 2), m30)),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(la, 4), m4), _mm256_and_si256(hb, m30)),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lb, 4), m4),
                        _mm256_and_si256(_mm256_srli_epi16(hb, 2), m30))};
    const __m256i sw = h ? sw1 : sw0;
    for (int k = 0; k < 4; k++) { /* elements 128h + 32k + (0..31), scales 8h + 2k, 8h + 2k + 1 */
      const __m256i p = _mm256_maddubs_epi16(qs[k], _mm256_loadu_si256((const __m256i *)(xb + 64 + 128 * h + 32 * k)));
      /* words 0..7 scale 2k, 8..15 scale 2k + 1 (the halves of the 32 elements) */
      const __m256i s = _mm256_shuffle_epi8(sw, _mm256_setr_epi8(
          4 * k, 4 * k + 1, 4 * k, 4 * k + 1, 4 * k, 4 * k + 1, 4 * k, 4 * k + 1, 4 * k, 4 * k + 1, 4 * k, 4 * k + 1, 4 * k,
          4 * k + 1, 4 * k, 4 * k + 1, 4 * k + 2, 4 * k + 3, 4 * k + 2, 4 * k + 3, 4 * k + 2, 4 * k + 3, 4 * k + 2, 4 * k + 3,
          4 * k + 2, 4 * k + 3, 4 * k + 2, 4 * k + 3, 4 * k + 2, 4 * k + 3, 4 * k + 2, 4 * k + 3));
      acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, s));
    }
  }
  *q = acc;
}

/* One Q6_K block likewise. */
NKQ_INLINE_EARLY float nkq_block_q6_K(const uint8_t *wb, const uint8_t *xb) {
  __m256i q, o;
  nkq_ints_q6_K(wb, xb, &q, &o);
  float dx;
  memcpy(&dx, xb, 4);
  const float d = nkq_f16(wb + 208) * dx;
  return (float)(nkq_hsum256(q) - 32 * nkq_hsum256(o)) * d; /* kq_block1's */
}

/* Eight i32 vectors -> their eight sums, in order. */
NKQ_INLINE_EARLY __m256i nkq_sums8(const __m256i v[8]) {
  const __m256i a = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
  const __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
  return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
}

/* The eight rows of four row pairs from w (the row-pair layout: a pair's blocks alternate). */
NKQ_INLINE_EARLY void nkq_group_rows(const uint8_t *p[8], const uint8_t *w, size_t row_bytes, size_t bytes) {
  for (int k = 0; k < 4; k++) p[2 * k] = w + (size_t)(2 * k) * row_bytes, p[2 * k + 1] = p[2 * k] + bytes;
}
/* The four pairs read four places of one stretch at once, which the hardware prefetcher
 * follows poorly: while a group reads its block b, the group two on is read into L2 at the
 * same pace (measured on the EPYC: one group ahead into L1, 12 GB/s; two into L2, 22). */
NKQ_INLINE_EARLY void nkq_group_ahead(const uint8_t *w, size_t row_bytes, size_t o, size_t step) {
  for (size_t f = 0; f < 4 * step; f += 64) _mm_prefetch((const char *)w + 16 * row_bytes + 4 * o + f, _MM_HINT_T1);
}

/* Block o (bytes into each row's stream) of eight rows p[0..7] against activation block xb
 * (dx its scale), 256 bits at a time: each row's integer sums as nkq_block_*'s, then the
 * eight rows' reductions and f32 terms together, lane r row r, each lane the same
 * operations as nkq_block_* (so the same floats). */
NKQ_INLINE_EARLY __m256 nkq_terms8_avx2(uint32_t type, const uint8_t *const p[8], size_t o, const uint8_t *xb, __m256 dx) {
  __m256i q[8], m[8];
  uint32_t dd[8];
  for (int r = 0; r < 8; r++) {
    if (NKQ_K45(type)) nkq_ints_k45(p[r] + o, xb, &q[r], &m[r], type == NKQ_Q5_K);
    else nkq_ints_q6_K(p[r] + o, xb, &q[r], &m[r]);
    uint16_t h[2] = {0, 0};
    memcpy(h, p[r] + o + (NKQ_K45(type) ? 0 : 208), NKQ_K45(type) ? 4 : 2);
    dd[r] = h[0] | (NKQ_K45(type) ? (uint32_t)h[1] << 16 : 0);
  }
  const __m256i d2 = _mm256_loadu_si256((const __m256i *)dd), lo = _mm256_set1_epi32(0xffff);
  const __m128i dh = _mm_packus_epi32(_mm256_castsi256_si128(_mm256_and_si256(d2, lo)),
                                      _mm256_extracti128_si256(_mm256_and_si256(d2, lo), 1));
  const __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(dh), dx);
  __m256 t;
  if (NKQ_K45(type)) {
    const __m256i d2h = _mm256_srli_epi32(d2, 16);
    const __m128i mh = _mm_packus_epi32(_mm256_castsi256_si128(d2h), _mm256_extracti128_si256(d2h, 1));
    const __m256 dmin = _mm256_mul_ps(_mm256_cvtph_ps(mh), dx);
    t = _mm256_sub_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(nkq_sums8(q)), d),
                      _mm256_mul_ps(_mm256_cvtepi32_ps(nkq_sums8(m)), dmin));
  } else {
    const __m256i is = _mm256_sub_epi32(nkq_sums8(q), _mm256_slli_epi32(nkq_sums8(m), 5));
    t = _mm256_mul_ps(_mm256_cvtepi32_ps(is), d);
  }
  return t;
}

static inline size_t nkq_block_bytes(uint32_t type) { return type == NKQ_Q4_K ? 144 : type == NKQ_Q5_K ? 176 : 210; }

#define NKQ_INLINE static inline __attribute__((always_inline))

/* Rows r, r + 1 of `type` from w0, w1 (their first blocks) against the nb activation
 * blocks at xq, into out[0], out[1]: two 256-bit blocks at a time, each row's terms summed
 * in block order. `step` is the distance from one block of a row to its next. */
NKQ_INLINE void nkq_rows2_avx2(uint32_t type, float *out, const uint8_t *w0, const uint8_t *w1, const uint8_t *xq,
                               uint32_t nb, size_t step, int one_stream) {
  float acc0 = 0, acc1 = 0;
  for (uint32_t b = 0; b < nb; b++, w0 += step, w1 += step) {
    for (size_t o = 0; o < step; o += 64) _mm_prefetch((const char *)w0 + NKQ_AHEAD + o, _MM_HINT_T0);
    if (!one_stream)
      for (size_t o = 0; o < step; o += 64) _mm_prefetch((const char *)w1 + NKQ_AHEAD + o, _MM_HINT_T0);
    const uint8_t *xb = xq + (size_t)b * NKQ_ACT_BYTES;
    if (NKQ_K45(type)) {
      acc0 += nkq_block_k45(w0, xb, type == NKQ_Q5_K);
      acc1 += nkq_block_k45(w1, xb, type == NKQ_Q5_K);
    } else {
      acc0 += nkq_block_q6_K(w0, xb);
      acc1 += nkq_block_q6_K(w1, xb);
    }
  }
  out[0] = acc0;
  out[1] = acc1;
}

#if defined(__AVX512BW__) && defined(__AVX512VL__)
#define M64_NATIVE_KQ512 1
/* With AVX-512 a row pair goes through one 512-bit vector: row r's block in the low half,
 * row r + 1's in the high half, the activation broadcast to both. Half the instructions per
 * byte of the 256-bit code; the integer sums, and so every float after them, are the same. */

/* Two i32 vectors' [low-half sum, high-half sum] pairs: {sum a.lo, sum a.hi, sum b.lo, sum b.hi}. */
NKQ_INLINE __m128i nkq_halves_sums(__m512i a, __m256i b) {
  /* a: lanes 0..7 row 0, 8..15 row 1. b: lanes 0..3 row 0, 4..7 row 1. */
  const __m256i alo = _mm512_castsi512_si256(a), ahi = _mm512_extracti64x4_epi64(a, 1);
  const __m256i h = _mm256_hadd_epi32(alo, ahi); /* [r0 r0 r1 r1 | r0 r0 r1 r1] */
  const __m128i s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1)); /* r0 r0 r1 r1 */
  const __m128i m = _mm_hadd_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1)); /* m0 m0 m1 m1 */
  return _mm_hadd_epi32(s, m); /* r0 r1 m0 m1 */
}

/* The 512-bit vector of two rows' 32-byte pieces at the same place. */
NKQ_INLINE __m512i nkq_two(const uint8_t *p0, const uint8_t *p1) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)p0)),
                            _mm256_loadu_si256((const __m256i *)p1), 1);
}
/* acc + the pairwise i16 products of p and s summed into i32 lanes: vpdpwssd with VNNI. */
NKQ_INLINE __m512i nkq_madd_add(__m512i acc, __m512i p, __m512i s) {
#if defined(__AVX512VNNI__)
  return _mm512_dpwssd_epi32(acc, p, s);
#else
  return _mm512_add_epi32(acc, _mm512_madd_epi16(p, s));
#endif
}
NKQ_INLINE __m512i nkq_bcast(const uint8_t *p) { return _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)p)); }

/* Word indices for vpermw: words 0..15 take word i, 16..31 word j (or, with four, per 8). */
NKQ_INLINE __m512i nkq_idx2(int i, int j) {
  return _mm512_mask_blend_epi16(0xFFFF0000u, _mm512_set1_epi16((short)i), _mm512_set1_epi16((short)j));
}
NKQ_INLINE __m512i nkq_idx4(int i, int j, int k, int l) {
  return _mm512_mask_blend_epi16(0xFF00FF00u, _mm512_mask_blend_epi16(0xFFFF0000u, _mm512_set1_epi16((short)i), _mm512_set1_epi16((short)k)),
                                 _mm512_mask_blend_epi16(0xFFFF0000u, _mm512_set1_epi16((short)j), _mm512_set1_epi16((short)l)));
}

/* A Q4_K block's 8 scales and 8 mins, unpacked from its 12 bytes (as nkq_block_q4_K). */
NKQ_INLINE __m128i nkq_q4_K_scales(const uint8_t *wb) {
  const uint32_t a0 = nkq_u32(wb + 4), a1 = nkq_u32(wb + 8), a2 = nkq_u32(wb + 12);
  const uint32_t k6 = 0x3f3f3f3fu, k4 = 0x0f0f0f0fu, k2 = 0x03030303u;
  return _mm_setr_epi32((int)(a0 & k6), (int)((a2 & k4) | (((a0 >> 6) & k2) << 4)), (int)(a1 & k6),
                        (int)(((a2 >> 4) & k4) | (((a1 >> 6) & k2) << 4)));
}

/* The quants' part of a Q4_K (five: Q5_K) block of two rows: per i32 lane (0..7 row 0, 8..15 row 1) a
 * share of sum(scale * q * x). sc holds the scales as words, row 1's from word `row1` on. */
NKQ_INLINE __m512i nkq_qdot_k45(const uint8_t *w0, const uint8_t *w1, const uint8_t *xb, __m512i sc, int row1,
                                 int five) {
  const __m512i m4 = _mm512_set1_epi8(0x0f);
  const __m512i qh = five ? nkq_two(w0 + 16, w1 + 16) : _mm512_setzero_si512();
  __m512i acc = _mm512_setzero_si512(), acc2 = _mm512_setzero_si512(); /* two chains */
  for (int c = 0; c < 4; c++) {
    const __m512i q = nkq_two(w0 + (five ? 48 : 16) + 32 * c, w1 + (five ? 48 : 16) + 32 * c);
    __m512i lo = _mm512_and_si512(q, m4), hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
    if (five) {
      lo = _mm512_or_si512(lo, NKQ_Q5_BIT(qh, 2 * c, _mm512_slli_epi16, _mm512_srli_epi16, _mm512_and_si512, _mm512_set1_epi8));
      hi = _mm512_or_si512(hi, NKQ_Q5_BIT(qh, 2 * c + 1, _mm512_slli_epi16, _mm512_srli_epi16, _mm512_and_si512, _mm512_set1_epi8));
    }
    const __m512i plo = _mm512_maddubs_epi16(lo, nkq_bcast(xb + 64 + 64 * c));
    const __m512i phi = _mm512_maddubs_epi16(hi, nkq_bcast(xb + 96 + 64 * c));
    acc = nkq_madd_add(acc, plo, _mm512_permutexvar_epi16(nkq_idx2(2 * c, row1 + 2 * c), sc));
    acc2 = nkq_madd_add(acc2, phi, _mm512_permutexvar_epi16(nkq_idx2(2 * c + 1, row1 + 1 + 2 * c), sc));
  }
  return _mm512_add_epi32(acc, acc2);
}

/* One Q4_K (five: Q5_K) block of two rows: their f32 terms into t[0], t[1], as nkq_block_k45's. */
NKQ_INLINE void nkq_pair_k45(const uint8_t *w0, const uint8_t *w1, const uint8_t *xb, float t[2], int five) {
  const __m128i s0 = nkq_q4_K_scales(w0), s1 = nkq_q4_K_scales(w1);
  /* words 0..7 row 0's scales, 8..15 row 1's; the mins likewise in a 256-bit vector */
  const __m512i sc = _mm512_cvtepu8_epi16(_mm256_zextsi128_si256(_mm_unpacklo_epi64(s0, s1)));
  const __m256i mins = _mm256_cvtepu8_epi16(_mm_unpackhi_epi64(s0, s1));
  const __m256i pm = _mm256_madd_epi16(mins, _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(xb + 48))));
  const __m128i r = nkq_halves_sums(nkq_qdot_k45(w0, w1, xb, sc, 8, five), pm);
  float dx;
  memcpy(&dx, xb, 4);
  const float d0 = nkq_f16(w0) * dx, dmin0 = nkq_f16(w0 + 2) * dx;
  const float d1 = nkq_f16(w1) * dx, dmin1 = nkq_f16(w1 + 2) * dx;
  const float a0 = (float)_mm_cvtsi128_si32(r) * d0, m0 = (float)_mm_extract_epi32(r, 2) * dmin0;
  const float a1 = (float)_mm_extract_epi32(r, 1) * d1, m1 = (float)_mm_extract_epi32(r, 3) * dmin1;
  t[0] = a0 - m0;
  t[1] = a1 - m1;
}

/* The quants' part of a Q6_K block of two rows (q from 0 to 63, the -32 left to the caller):
 * per i32 lane (0..7 row 0, 8..15 row 1) a share of sum(scale * q * x). sc: the scales as
 * words, 0..15 row 0's, 16..31 row 1's. */
NKQ_INLINE __m512i nkq_qdot_q6_K(const uint8_t *w0, const uint8_t *w1, const uint8_t *xb, __m512i sc) {
  const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
  __m512i acc[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()}; /* two chains */
  for (int h = 0; h < 2; h++) {
    const __m512i la = nkq_two(w0 + 64 * h, w1 + 64 * h);
    const __m512i lb = nkq_two(w0 + 64 * h + 32, w1 + 64 * h + 32);
    const __m512i hb = nkq_two(w0 + 128 + 32 * h, w1 + 128 + 32 * h);
    const __m512i q[4] = {
        _mm512_or_si512(_mm512_and_si512(la, m4), _mm512_and_si512(_mm512_slli_epi16(hb, 4), m30)),
        _mm512_or_si512(_mm512_and_si512(lb, m4), _mm512_and_si512(_mm512_slli_epi16(hb, 2), m30)),
        _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(la, 4), m4), _mm512_and_si512(hb, m30)),
        _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(lb, 4), m4),
                        _mm512_and_si512(_mm512_srli_epi16(hb, 2), m30))};
    for (int k = 0; k < 4; k++) {
      const int j = 8 * h + 2 * k;
      const __m512i p = _mm512_maddubs_epi16(q[k], nkq_bcast(xb + 64 + 128 * h + 32 * k));
      acc[k & 1] = nkq_madd_add(acc[k & 1], p, _mm512_permutexvar_epi16(nkq_idx4(j, j + 1, 16 + j, 17 + j), sc));
    }
  }
  return _mm512_add_epi32(acc[0], acc[1]);
}

/* One Q6_K block of two rows likewise (nkq_block_q6_K). */
NKQ_INLINE void nkq_pair_q6_K(const uint8_t *w0, const uint8_t *w1, const uint8_t *xb, float t[2]) {
  /* words 0..15 row 0's 16 scales, 16..31 row 1's */
  const __m512i sc = _mm512_cvtepi8_epi16(_mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(w0 + 192))), _mm_loadu_si128((const __m128i *)(w1 + 192)), 1));
  const __m512i poff = _mm512_madd_epi16(sc, nkq_bcast(xb + 16)); /* lanes 0..7 row 0, 8..15 row 1 */
  const __m256i offs = _mm256_hadd_epi32(_mm512_castsi512_si256(poff), _mm512_extracti64x4_epi64(poff, 1));
  /* offs: [o0 o0 o1 o1 | o0 o0 o1 o1] -> 4 lanes per row as nkq_halves_sums wants */
  const __m256i offs4 = _mm256_permutevar8x32_epi32(offs, _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7));
  const __m128i r = nkq_halves_sums(nkq_qdot_q6_K(w0, w1, xb, sc), offs4);
  float dx;
  memcpy(&dx, xb, 4);
  const float d0 = nkq_f16(w0 + 208) * dx, d1 = nkq_f16(w1 + 208) * dx;
  t[0] = (float)(_mm_cvtsi128_si32(r) - 32 * _mm_extract_epi32(r, 2)) * d0;
  t[1] = (float)(_mm_extract_epi32(r, 1) - 32 * _mm_extract_epi32(r, 3)) * d1;
}

NKQ_INLINE void nkq_rows2_avx512(uint32_t type, float *out, const uint8_t *w0, const uint8_t *w1, const uint8_t *xq,
                                 uint32_t nb, size_t step, int one_stream) {
  float acc0 = 0, acc1 = 0, t[2];
  for (uint32_t b = 0; b < nb; b++, w0 += step, w1 += step) {
    for (size_t o = 0; o < step; o += 64) _mm_prefetch((const char *)w0 + NKQ_AHEAD + o, _MM_HINT_T0);
    if (!one_stream)
      for (size_t o = 0; o < step; o += 64) _mm_prefetch((const char *)w1 + NKQ_AHEAD + o, _MM_HINT_T0);
    const uint8_t *xb = xq + (size_t)b * NKQ_ACT_BYTES;
    if (NKQ_K45(type)) nkq_pair_k45(w0, w1, xb, t, type == NKQ_Q5_K);
    else nkq_pair_q6_K(w0, w1, xb, t);
    acc0 += t[0];
    acc1 += t[1];
  }
  out[0] = acc0;
  out[1] = acc1;
}

/* ---- four row pairs at a time (decode) ----
 * A pair's integer sums are the same vectors as above; what four pairs share is what
 * follows them. Their sums are reduced together (one transpose instead of four horizontal
 * adds), the scales of eight rows unpacked in one vector, and the f32 terms computed in the
 * eight lanes of one vector: per lane the operations, and their order, of nkq_pair_*, so
 * each row's result is the same to the bit. Measured on an AVX-512 EPYC (1 thread, Q4_K
 * 4096 columns): 19.3 GB/s -> 23.5 in cache, 19.2 -> 22 from memory with the read-ahead below. */

/* 16 bytes of each of four rows, one per 128-bit lane. */
NKQ_INLINE __m512i nkq_four(const uint8_t *p0, const uint8_t *p1, const uint8_t *p2, const uint8_t *p3) {
  __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)p0));
  v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)p1), 1);
  v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)p2), 2);
  return _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)p3), 3);
}

/* Per 128-bit lane, a Q4_K block's first 16 bytes (d, dmin, the 12 packed bytes) -> its 8
 * scales (bytes 0..7) and 8 mins (bytes 8..15): nkq_q4_K_scales on four rows at once. */
NKQ_INLINE __m512i nkq_q4_K_scales4(__m512i h) {
  const __m512i x = _mm512_shuffle_epi32(h, _MM_SHUFFLE(3, 2, 3, 1)); /* a0 a2 a1 a2 */
  const __m512i lo = _mm512_and_si512(_mm512_srlv_epi32(x, _mm512_set4_epi32(4, 0, 0, 0)),
                                      _mm512_set4_epi32(0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f));
  const __m512i z = _mm512_shuffle_epi32(h, _MM_SHUFFLE(2, 2, 1, 1)); /* a0 a0 a1 a1 */
  const __m512i hi = _mm512_maskz_slli_epi32(0xAAAA, _mm512_and_si512(_mm512_srli_epi32(z, 6), _mm512_set1_epi32(0x03030303)), 4);
  return _mm512_or_si512(lo, hi);
}

/* Four pairs' i32 vectors (each: lanes 0..7 its first row, 8..15 its second) -> the eight
 * row sums: lanes 0..3 the pairs' first rows, 4..7 their second rows. */
NKQ_INLINE __m256i nkq_sums4(__m512i a, __m512i b, __m512i c, __m512i d) {
  const __m512i ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
  const __m512i cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
  const __m512i s = _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
  return _mm512_castsi512_si256(_mm512_add_epi32(_mm512_shuffle_i64x2(s, s, 0x08), _mm512_shuffle_i64x2(s, s, 0x0D)));
}

/* nkq_terms8_avx2 with a row pair per 512-bit vector; the lanes: 0..3 the pairs' first
 * rows (p[0], p[2], p[4], p[6]), 4..7 their second rows. */
NKQ_INLINE __m256 nkq_terms8_512(uint32_t type, const uint8_t *const p[8], size_t o, const uint8_t *xb, __m256 dx) {
  __m512i q[4], m[4];
  __m256 t;
  if (NKQ_K45(type)) {
    const __m512i h01 = nkq_four(p[0] + o, p[1] + o, p[2] + o, p[3] + o);
    const __m512i h23 = nkq_four(p[4] + o, p[5] + o, p[6] + o, p[7] + o);
    const __m512i s01 = nkq_q4_K_scales4(h01), s23 = nkq_q4_K_scales4(h23);
    /* per pair, words 0..7 row 0's scales, 8..15 its mins, 16..31 row 1's likewise */
    const __m512i sc[4] = {_mm512_cvtepu8_epi16(_mm512_castsi512_si256(s01)),
                           _mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64(s01, 1)),
                           _mm512_cvtepu8_epi16(_mm512_castsi512_si256(s23)),
                           _mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64(s23, 1))};
    const __m512i xm = _mm512_maskz_broadcast_i32x4(0xF0F0, _mm_loadu_si128((const __m128i *)(xb + 48)));
    for (int k = 0; k < 4; k++) {
      q[k] = nkq_qdot_k45(p[2 * k] + o, p[2 * k + 1] + o, xb, sc[k], 16, type == NKQ_Q5_K);
      m[k] = _mm512_madd_epi16(sc[k], xm); /* the mins' words only */
    }
    /* d and dmin of the eight rows, in the sums' lane order */
    const __m256i dd = _mm512_castsi512_si256(_mm512_permutex2var_epi32(
        h01, _mm512_setr_epi32(0, 8, 16, 24, 4, 12, 20, 28, 0, 0, 0, 0, 0, 0, 0, 0), h23));
    const __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(_mm256_cvtepi32_epi16(dd)), dx);
    const __m256 dmin = _mm256_mul_ps(_mm256_cvtph_ps(_mm256_cvtepi32_epi16(_mm256_srli_epi32(dd, 16))), dx);
    const __m256 a = _mm256_mul_ps(_mm256_cvtepi32_ps(nkq_sums4(q[0], q[1], q[2], q[3])), d);
    t = _mm256_sub_ps(a, _mm256_mul_ps(_mm256_cvtepi32_ps(nkq_sums4(m[0], m[1], m[2], m[3])), dmin));
  } else {
    const __m512i xs = nkq_bcast(xb + 16);
    uint16_t dh[8];
    for (int k = 0; k < 4; k++) {
      const uint8_t *w0 = p[2 * k] + o, *w1 = p[2 * k + 1] + o;
      const __m512i sc = _mm512_cvtepi8_epi16(_mm256_inserti128_si256(
          _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(w0 + 192))), _mm_loadu_si128((const __m128i *)(w1 + 192)), 1));
      q[k] = nkq_qdot_q6_K(w0, w1, xb, sc);
      m[k] = _mm512_madd_epi16(sc, xs);
      memcpy(&dh[k], w0 + 208, 2);
      memcpy(&dh[4 + k], w1 + 208, 2);
    }
    const __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)dh)), dx);
    const __m256i is = _mm256_sub_epi32(nkq_sums4(q[0], q[1], q[2], q[3]),
                                        _mm256_slli_epi32(nkq_sums4(m[0], m[1], m[2], m[3]), 5));
    t = _mm256_mul_ps(_mm256_cvtepi32_ps(is), d);
  }
  return t;
}

/* ---- m64.kq_mat: the same rows for n inputs (prefill) ----
 * Each block pair is unpacked once (nibbles, scale vectors) and then dotted with every
 * input's activation block, so the per-input cost is the dot alone: about a quarter of the
 * row pass's instructions. Per (row, input) the terms and their order are nkq_rows', so
 * each output equals the matvec's for that input bit for bit. */
typedef struct nkq_dec {
  __m512i q[8], s[8]; /* the pair's quants (u8) and, per dot, its scale words */
  __m512i sc6;        /* Q6_K: both rows' 16 scales as words, for the bsums offset */
  __m256i mins;       /* Q4_K: both rows' 8 mins as words */
  float d[2], dmin[2];
} nkq_dec;

NKQ_INLINE void nkq_unpack_k45(const uint8_t *w0, const uint8_t *w1, nkq_dec *k, int five) {
  const __m128i s0 = nkq_q4_K_scales(w0), s1 = nkq_q4_K_scales(w1);
  const __m512i sc = _mm512_cvtepu8_epi16(_mm256_zextsi128_si256(_mm_unpacklo_epi64(s0, s1)));
  k->mins = _mm256_cvtepu8_epi16(_mm_unpackhi_epi64(s0, s1));
  const __m512i m4 = _mm512_set1_epi8(0x0f);
  const __m512i qh = five ? nkq_two(w0 + 16, w1 + 16) : _mm512_setzero_si512();
  for (int c = 0; c < 4; c++) {
    const __m512i q = nkq_two(w0 + (five ? 48 : 16) + 32 * c, w1 + (five ? 48 : 16) + 32 * c);
    k->q[2 * c] = _mm512_and_si512(q, m4);
    k->q[2 * c + 1] = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
    if (five) {
      k->q[2 * c] = _mm512_or_si512(k->q[2 * c], NKQ_Q5_BIT(qh, 2 * c, _mm512_slli_epi16, _mm512_srli_epi16, _mm512_and_si512, _mm512_set1_epi8));
      k->q[2 * c + 1] = _mm512_or_si512(k->q[2 * c + 1], NKQ_Q5_BIT(qh, 2 * c + 1, _mm512_slli_epi16, _mm512_srli_epi16, _mm512_and_si512, _mm512_set1_epi8));
    }
    k->s[2 * c] = _mm512_permutexvar_epi16(nkq_idx2(2 * c, 8 + 2 * c), sc);
    k->s[2 * c + 1] = _mm512_permutexvar_epi16(nkq_idx2(2 * c + 1, 9 + 2 * c), sc);
  }
  k->d[0] = nkq_f16(w0), k->dmin[0] = nkq_f16(w0 + 2);
  k->d[1] = nkq_f16(w1), k->dmin[1] = nkq_f16(w1 + 2);
}

/* A decoded Q4_K pair against one input: the quants' i32 lanes (0..7 row 0, 8..15 row 1)
 * and the mins' (lanes 0..3 row 0, 4..7 row 1). */
NKQ_INLINE __m512i nkq_dint_q4_K(const nkq_dec *k, const uint8_t *xb, __m256i *pm) {
  __m512i acc = _mm512_setzero_si512(), acc2 = _mm512_setzero_si512();
  for (int c = 0; c < 4; c++) {
    acc = nkq_madd_add(acc, _mm512_maddubs_epi16(k->q[2 * c], nkq_bcast(xb + 64 + 64 * c)), k->s[2 * c]);
    acc2 = nkq_madd_add(acc2, _mm512_maddubs_epi16(k->q[2 * c + 1], nkq_bcast(xb + 96 + 64 * c)), k->s[2 * c + 1]);
  }
  *pm = _mm256_madd_epi16(k->mins, _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(xb + 48))));
  return _mm512_add_epi32(acc, acc2);
}

NKQ_INLINE void nkq_dot_q4_K(const nkq_dec *k, const uint8_t *xb, float t[2]) {
  __m256i pm;
  const __m512i q = nkq_dint_q4_K(k, xb, &pm);
  const __m128i r = nkq_halves_sums(q, pm);
  float dx;
  memcpy(&dx, xb, 4);
  const float d0 = k->d[0] * dx, dmin0 = k->dmin[0] * dx, d1 = k->d[1] * dx, dmin1 = k->dmin[1] * dx;
  const float a0 = (float)_mm_cvtsi128_si32(r) * d0, m0 = (float)_mm_extract_epi32(r, 2) * dmin0;
  const float a1 = (float)_mm_extract_epi32(r, 1) * d1, m1 = (float)_mm_extract_epi32(r, 3) * dmin1;
  t[0] = a0 - m0;
  t[1] = a1 - m1;
}

NKQ_INLINE void nkq_unpack_q6_K(const uint8_t *w0, const uint8_t *w1, nkq_dec *k) {
  k->sc6 = _mm512_cvtepi8_epi16(_mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(w0 + 192))), _mm_loadu_si128((const __m128i *)(w1 + 192)), 1));
  const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
  for (int h = 0; h < 2; h++) {
    const __m512i la = nkq_two(w0 + 64 * h, w1 + 64 * h);
    const __m512i lb = nkq_two(w0 + 64 * h + 32, w1 + 64 * h + 32);
    const __m512i hb = nkq_two(w0 + 128 + 32 * h, w1 + 128 + 32 * h);
    k->q[4 * h] = _mm512_or_si512(_mm512_and_si512(la, m4), _mm512_and_si512(_mm512_slli_epi16(hb, 4), m30));
    k->q[4 * h + 1] = _mm512_or_si512(_mm512_and_si512(lb, m4), _mm512_and_si512(_mm512_slli_epi16(hb, 2), m30));
    k->q[4 * h + 2] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(la, 4), m4), _mm512_and_si512(hb, m30));
    k->q[4 * h + 3] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(lb, 4), m4),
                                      _mm512_and_si512(_mm512_srli_epi16(hb, 2), m30));
    for (int kk = 0; kk < 4; kk++) {
      const int j = 8 * h + 2 * kk;
      k->s[4 * h + kk] = _mm512_permutexvar_epi16(nkq_idx4(j, j + 1, 16 + j, 17 + j), k->sc6);
    }
  }
  k->d[0] = nkq_f16(w0 + 208), k->d[1] = nkq_f16(w1 + 208);
}

/* A decoded Q6_K pair against one input: the quants' i32 lanes (0..7 row 0, 8..15 row 1)
 * and the offsets' (likewise), which count 32 times. */
NKQ_INLINE __m512i nkq_dint_q6_K(const nkq_dec *k, const uint8_t *xb, __m512i *poff) {
  __m512i acc[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
  for (int i = 0; i < 8; i++) /* quants 128 (i / 4) + 32 (i % 4) + (0..31) */
    acc[i & 1] = nkq_madd_add(acc[i & 1], _mm512_maddubs_epi16(k->q[i], nkq_bcast(xb + 64 + 32 * i)), k->s[i]);
  *poff = _mm512_madd_epi16(k->sc6, nkq_bcast(xb + 16));
  return _mm512_add_epi32(acc[0], acc[1]);
}

NKQ_INLINE void nkq_dot_q6_K(const nkq_dec *k, const uint8_t *xb, float t[2]) {
  __m512i poff;
  const __m512i q6 = nkq_dint_q6_K(k, xb, &poff);
  const __m256i offs = _mm256_hadd_epi32(_mm512_castsi512_si256(poff), _mm512_extracti64x4_epi64(poff, 1));
  const __m256i offs4 = _mm256_permutevar8x32_epi32(offs, _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7));
  const __m128i r = nkq_halves_sums(q6, offs4);
  float dx;
  memcpy(&dx, xb, 4);
  const float d0 = k->d[0] * dx, d1 = k->d[1] * dx;
  t[0] = (float)(_mm_cvtsi128_si32(r) - 32 * _mm_extract_epi32(r, 2)) * d0;
  t[1] = (float)(_mm_extract_epi32(r, 1) - 32 * _mm_extract_epi32(r, 3)) * d1;
}

/* A decoded pair against four inputs xq_stride apart: the f32 terms, lanes 0..3 row 0 of
 * inputs 0..3, lanes 4..7 row 1 of them; per lane nkq_dot_*'s operations in their order,
 * the four inputs' sums reduced together (nkq_sums4) instead of one by one. */
NKQ_INLINE __m256 nkq_terms4(uint32_t type, const nkq_dec *k, const uint8_t *xb, uint32_t xq_stride) {
  __m512i q[4], m[4];
  float dxs[4];
  for (int j = 0; j < 4; j++) {
    const uint8_t *x = xb + (size_t)j * xq_stride;
    memcpy(&dxs[j], x, 4);
    if (NKQ_K45(type)) {
      __m256i pm;
      q[j] = nkq_dint_q4_K(k, x, &pm); /* mins: rows' lanes into the halves nkq_sums4 reads */
      m[j] = _mm512_inserti32x4(_mm512_zextsi128_si512(_mm256_castsi256_si128(pm)), _mm256_extracti128_si256(pm, 1), 2);
    } else {
      q[j] = nkq_dint_q6_K(k, x, &m[j]);
    }
  }
  const __m128 dx4 = _mm_loadu_ps(dxs);
  const __m256 dx = _mm256_setr_m128(dx4, dx4);
  const __m256 d = _mm256_mul_ps(_mm256_setr_m128(_mm_set1_ps(k->d[0]), _mm_set1_ps(k->d[1])), dx);
  const __m256i is = nkq_sums4(q[0], q[1], q[2], q[3]), im = nkq_sums4(m[0], m[1], m[2], m[3]);
  if (NKQ_K45(type)) {
    const __m256 dmin = _mm256_mul_ps(_mm256_setr_m128(_mm_set1_ps(k->dmin[0]), _mm_set1_ps(k->dmin[1])), dx);
    return _mm256_sub_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(is), d), _mm256_mul_ps(_mm256_cvtepi32_ps(im), dmin));
  }
  return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(is, _mm256_slli_epi32(im, 5))), d);
}

#define NKQ_MAT_T 32u /* inputs per pass over a row pair's blocks: their sums stay on the stack */

/* out[t * out_stride + r] for t < n, r < rows: rows of w against the n activations at xq,
 * xq_stride bytes apart. */
NKQ_INLINE void nkq_mat_type(uint32_t type, float *out, uint32_t out_stride, const uint8_t *w, const uint8_t *xq,
                             uint32_t xq_stride, uint32_t rows, uint32_t nb, uint32_t n, int pairs) {
  const size_t bytes = nkq_block_bytes(type), row_bytes = nb * bytes, step = pairs ? 2 * bytes : bytes;
  for (uint32_t t0 = 0; t0 < n; t0 += NKQ_MAT_T) {
    const uint32_t nt = n - t0 < NKQ_MAT_T ? n - t0 : NKQ_MAT_T;
    const uint8_t *x0 = xq + (size_t)t0 * xq_stride;
    uint32_t r = 0;
    for (; r + 2 <= rows; r += 2) {
      const uint8_t *w0 = w + r * row_bytes, *w1 = w0 + (pairs ? bytes : row_bytes);
      float acc[NKQ_MAT_T][2] = {{0}};
      __m256 accv[NKQ_MAT_T / 4]; /* inputs 4g..4g+3: lanes 0..3 row r, 4..7 row r + 1 */
      for (uint32_t g = 0; g < NKQ_MAT_T / 4; g++) accv[g] = _mm256_setzero_ps();
      for (uint32_t b = 0; b < nb; b++, w0 += step, w1 += step) {
        for (size_t o = 0; o < step; o += 64) _mm_prefetch((const char *)w0 + NKQ_AHEAD + o, _MM_HINT_T0);
        if (!pairs)
          for (size_t o = 0; o < step; o += 64) _mm_prefetch((const char *)w1 + NKQ_AHEAD + o, _MM_HINT_T0);
        nkq_dec k;
        if (NKQ_K45(type)) nkq_unpack_k45(w0, w1, &k, type == NKQ_Q5_K);
        else nkq_unpack_q6_K(w0, w1, &k);
        const uint8_t *xb = x0 + (size_t)b * NKQ_ACT_BYTES;
        uint32_t t = 0;
        for (; t + 4 <= nt; t += 4, xb += 4 * (size_t)xq_stride)
          accv[t / 4] = _mm256_add_ps(accv[t / 4], nkq_terms4(type, &k, xb, xq_stride));
        for (; t < nt; t++, xb += xq_stride) {
          float term[2];
          if (NKQ_K45(type)) nkq_dot_q4_K(&k, xb, term);
          else nkq_dot_q6_K(&k, xb, term);
          acc[t][0] += term[0];
          acc[t][1] += term[1];
        }
      }
      for (uint32_t t = 0; t + 4 <= nt; t += 4) {
        float v[8];
        _mm256_storeu_ps(v, accv[t / 4]);
        for (uint32_t j = 0; j < 4; j++) acc[t + j][0] = v[j], acc[t + j][1] = v[4 + j];
      }
      for (uint32_t t = 0; t < nt; t++) {
        out[(size_t)(t0 + t) * out_stride + r] = acc[t][0];
        out[(size_t)(t0 + t) * out_stride + r + 1] = acc[t][1];
      }
    }
    if (r < rows) /* an odd last row: the row pass's one-row code, per input */
      for (uint32_t t = 0; t < nt; t++) {
        const uint8_t *wb = w + r * row_bytes, *xt = x0 + (size_t)t * xq_stride;
        float a = 0;
        for (uint32_t b = 0; b < nb; b++)
          a += NKQ_K45(type) ? nkq_block_k45(wb + b * bytes, xt + (size_t)b * NKQ_ACT_BYTES, type == NKQ_Q5_K)
                                : nkq_block_q6_K(wb + b * bytes, xt + (size_t)b * NKQ_ACT_BYTES);
        out[(size_t)(t0 + t) * out_stride + r] = a;
      }
  }
}

NKQ_INLINE void m64_native_kq_mat(uint32_t type, float *out, uint32_t out_stride, const uint8_t *w, const uint8_t *xq,
                                  uint32_t xq_stride, uint32_t rows, uint32_t nb, uint32_t n, int pairs) {
  if (type == NKQ_Q4_K) nkq_mat_type(NKQ_Q4_K, out, out_stride, w, xq, xq_stride, rows, nb, n, pairs);
  else if (type == NKQ_Q5_K) nkq_mat_type(NKQ_Q5_K, out, out_stride, w, xq, xq_stride, rows, nb, n, pairs);
  else nkq_mat_type(NKQ_Q6_K, out, out_stride, w, xq, xq_stride, rows, nb, n, pairs);
}
#endif /* __AVX512BW__ && __AVX512VL__ */

/* Eight rows (four row pairs) in the row-pair layout from w into out[0..7], each row's
 * blocks summed in order; wide: 512-bit vectors (this build has them) or 256-bit. */
NKQ_INLINE void nkq_rows8(uint32_t type, float *out, const uint8_t *w, const uint8_t *xq, uint32_t nb,
                          size_t row_bytes, int wide) {
  const size_t bytes = nkq_block_bytes(type), step = 2 * bytes;
  const uint8_t *p[8];
  nkq_group_rows(p, w, row_bytes, bytes);
  __m256 acc = _mm256_setzero_ps();
  for (uint32_t b = 0; b < nb; b++) {
    const size_t o = (size_t)b * step;
    nkq_group_ahead(w, row_bytes, o, step);
    const uint8_t *xb = xq + (size_t)b * NKQ_ACT_BYTES;
    const __m256 dx = _mm256_broadcast_ss((const float *)xb);
#if defined(M64_NATIVE_KQ512)
    if (wide) {
      acc = _mm256_add_ps(acc, nkq_terms8_512(type, p, o, xb, dx));
      continue;
    }
#endif
    acc = _mm256_add_ps(acc, nkq_terms8_avx2(type, p, o, xb, dx));
  }
#if defined(M64_NATIVE_KQ512)
  if (wide) acc = _mm256_permutevar8x32_ps(acc, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)); /* lanes -> rows */
#endif
  (void)wide;
  _mm256_storeu_ps(out, acc);
}

/* out[r] for r < rows: row r of w (ggml's rows, or with pairs the row-pair layout) against
 * the nb i8 activation blocks at xq, each row's blocks summed in order. In the row-pair
 * layout eight rows go per pass (nkq_rows8*), the rest two per pass, as the module's
 * kernels do (one sequential stream, read ahead 4 KiB). `wide`: 1 the widest this build
 * has (m64run's), 0 256 bits, 2 512 bits a pair at a time; the tests check each path on an
 * AVX-512 CPU, bench/kernels/rows times them. */
NKQ_INLINE void nkq_rows(uint32_t type, float *out, const uint8_t *w, const uint8_t *xq, uint32_t rows, uint32_t nb,
                         int pairs, int wide) {
  const size_t bytes = nkq_block_bytes(type), row_bytes = nb * bytes, step = pairs ? 2 * bytes : bytes;
  uint32_t r = 0;
  if (pairs && wide != 2) /* 2: the 512-bit pairs alone (tests, bench/kernels/rows) */
    for (; r + 8 <= rows; r += 8) nkq_rows8(type, out + r, w + r * row_bytes, xq, nb, row_bytes, wide);
  for (; r + 2 <= rows; r += 2) {
    const uint8_t *w0 = w + r * row_bytes, *w1 = w0 + (pairs ? bytes : row_bytes);
#if defined(M64_NATIVE_KQ512)
    if (wide) {
      nkq_rows2_avx512(type, out + r, w0, w1, xq, nb, step, pairs);
      continue;
    }
#endif
    (void)wide;
    nkq_rows2_avx2(type, out + r, w0, w1, xq, nb, step, pairs);
  }
  if (r < rows) { /* an odd last row, as it is in either layout */
    const uint8_t *wb = w + r * row_bytes;
    float acc = 0;
    for (uint32_t b = 0; b < nb; b++)
      acc += NKQ_K45(type) ? nkq_block_k45(wb + b * bytes, xq + (size_t)b * NKQ_ACT_BYTES, type == NKQ_Q5_K)
                              : nkq_block_q6_K(wb + b * bytes, xq + (size_t)b * NKQ_ACT_BYTES);
    out[r] = acc;
  }
}

/* The widest this build has; each type its own loop. */
NKQ_INLINE void m64_native_kq_rows_width(uint32_t type, float *out, const uint8_t *w, const uint8_t *xq,
                                        uint32_t rows, uint32_t nb, int pairs, int wide) {
  if (type == NKQ_Q4_K) nkq_rows(NKQ_Q4_K, out, w, xq, rows, nb, pairs, wide);
  else if (type == NKQ_Q5_K) nkq_rows(NKQ_Q5_K, out, w, xq, rows, nb, pairs, wide);
  else nkq_rows(NKQ_Q6_K, out, w, xq, rows, nb, pairs, wide);
}
NKQ_INLINE void m64_native_kq_rows(uint32_t type, float *out, const uint8_t *w, const uint8_t *xq, uint32_t rows,
                                      uint32_t nb, int pairs) {
  m64_native_kq_rows_width(type, out, w, xq, rows, nb, pairs, 1);
}
#endif /* __AVX2__ && __F16C__ */

#endif
