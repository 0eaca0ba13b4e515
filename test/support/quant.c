/* quant.c — reference scalar quantizers; see quant.h for the layouts (each function
 * restates its own type's layout). Layouts follow ggml's ggml-common.h / ggml-quants.c. */
#include "quant.h"

#include <math.h>
#include <string.h>

#include "m64_formats.h"

#define QK 32 /* elements per block of the legacy types (Q4_0 .. Q8_0) and IQ4_NL */

uint16_t m64_ref_f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, sizeof x);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t exp = (x >> 23) & 0xffu;
  uint32_t mant = x & 0x7fffffu;
  if (exp == 0xffu) /* inf stays inf; NaN stays a (quiet) NaN */
    return (uint16_t)(sign | 0x7c00u | (mant ? 0x200u | (mant >> 13) : 0));
  int e = (int)exp - 127 + 15; /* the half-precision biased exponent */
  if (e >= 31) return (uint16_t)(sign | 0x7c00u);
  if (e <= 0) {
    /* Half subnormal: value = m * 2^-24. Below 2^-25 everything rounds to zero. */
    if (e < -10) return (uint16_t)sign;
    uint32_t full = mant | 0x800000u;
    uint32_t shift = (uint32_t)(14 - e);
    uint32_t m = full >> shift;
    uint32_t rem = full & ((1u << shift) - 1);
    uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (m & 1))) m++; /* a carry into 0x400 is right */
    return (uint16_t)(sign | m);
  }
  uint32_t h = sign | ((uint32_t)e << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++; /* a carry into inf is right */
  return (uint16_t)h;
}

float m64_ref_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    float v = ldexpf((float)mant, -24);
    return sign ? -v : v;
  }
  uint32_t bits = exp == 31 ? sign | 0x7f800000u | (mant << 13)
                            : sign | ((exp + 112) << 23) | (mant << 13);
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

/* ---------------------------------------------------------------- per-type rows */

static void f32_quantize(const float *x, void *out, uint64_t n) { memcpy(out, x, n * sizeof *x); }
static void f32_dequantize(const void *in, float *y, uint64_t n) { memcpy(y, in, n * sizeof *y); }

static void f16_quantize(const float *x, void *out, uint64_t n) {
  uint8_t *o = out;
  for (uint64_t i = 0; i < n; i++) {
    uint16_t h = m64_ref_f32_to_f16(x[i]);
    o[2 * i] = (uint8_t)h; /* little-endian regardless of the host */
    o[2 * i + 1] = (uint8_t)(h >> 8);
  }
}
static void f16_dequantize(const void *in, float *y, uint64_t n) {
  const uint8_t *p = in;
  for (uint64_t i = 0; i < n; i++) y[i] = m64_ref_f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
}

static void put_f16(uint8_t *p, float v) {
  uint16_t h = m64_ref_f32_to_f16(v);
  p[0] = (uint8_t)h;
  p[1] = (uint8_t)(h >> 8);
}
static float get_f16(const uint8_t *p) { return m64_ref_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

static void q8_0_quantize(const float *x, void *out, uint64_t n) {
  uint8_t *block = out;
  for (uint64_t b = 0; b < n / QK; b++, x += QK, block += 2 + QK) {
    float amax = 0;
    for (int i = 0; i < QK; i++) amax = fmaxf(amax, fabsf(x[i]));
    float d = amax / 127.0f;
    float id = d != 0 ? 1.0f / d : 0.0f; /* ggml rounds with the unrounded scale */
    put_f16(block, d);
    for (int i = 0; i < QK; i++) block[2 + i] = (uint8_t)(int8_t)roundf(x[i] * id);
  }
}
static void q8_0_dequantize(const void *in, float *y, uint64_t n) {
  const uint8_t *block = in;
  for (uint64_t b = 0; b < n / QK; b++, block += 2 + QK) {
    float d = get_f16(block);
    for (int i = 0; i < QK; i++) *y++ = (float)(int8_t)block[2 + i] * d;
  }
}

static void q4_0_quantize(const float *x, void *out, uint64_t n) {
  uint8_t *block = out;
  for (uint64_t b = 0; b < n / QK; b++, x += QK, block += 2 + QK / 2) {
    /* The element of largest magnitude maps to -8 exactly, so the grid's extra negative
     * step is used on the side where the block's extreme value lies. */
    float amax = 0, max = 0;
    for (int i = 0; i < QK; i++)
      if (fabsf(x[i]) > amax) { amax = fabsf(x[i]); max = x[i]; }
    float d = max / -8.0f;
    float id = d != 0 ? 1.0f / d : 0.0f;
    put_f16(block, d);
    for (int j = 0; j < QK / 2; j++) {
      int lo = (int)(x[j] * id + 8.5f), hi = (int)(x[j + QK / 2] * id + 8.5f);
      lo = lo < 0 ? 0 : lo > 15 ? 15 : lo;
      hi = hi < 0 ? 0 : hi > 15 ? 15 : hi;
      block[2 + j] = (uint8_t)(lo | hi << 4);
    }
  }
}
static void q4_0_dequantize(const void *in, float *y, uint64_t n) {
  const uint8_t *block = in;
  for (uint64_t b = 0; b < n / QK; b++, block += 2 + QK / 2, y += QK) {
    float d = get_f16(block);
    for (int j = 0; j < QK / 2; j++) {
      y[j] = (float)((block[2 + j] & 0x0f) - 8) * d;
      y[j + QK / 2] = (float)((block[2 + j] >> 4) - 8) * d;
    }
  }
}

/* ---------------------------------------------------------------- shared helpers */

#define QK_K 256 /* elements per K-quant (and IQ4_XS) super-block */

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }
/* Nearest integer, ties to even (the default rounding mode). */
static int nearest(float v) { return (int)lrintf(v); }

/* Stores v as f16 rounded away from zero (|stored| >= |v|), so that codes computed as
 * ideal / stored never exceed the grid the super-block scale was chosen for. */
static void put_f16_away(uint8_t *p, float v) {
  uint16_t h = m64_ref_f32_to_f16(v);
  if (fabsf(m64_ref_f16_to_f32(h)) < fabsf(v) && (h & 0x7fffu) < 0x7bffu) h++;
  p[0] = (uint8_t)h;
  p[1] = (uint8_t)(h >> 8);
}

static void put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The element of largest magnitude, sign kept (0 for an all-zero run). */
static float signed_absmax(const float *x, int n) {
  float amax = 0, max = 0;
  for (int i = 0; i < n; i++)
    if (fabsf(x[i]) > amax) { amax = fabsf(x[i]); max = x[i]; }
  return max;
}
static void min_max(const float *x, int n, float *mn, float *mx) {
  *mn = *mx = x[0];
  for (int i = 1; i < n; i++) {
    if (x[i] < *mn) *mn = x[i];
    if (x[i] > *mx) *mx = x[i];
  }
}

/* ---------------------------------------------------------------- BF16 */

static void bf16_quantize(const float *x, void *out, uint64_t n) {
  uint8_t *o = out;
  for (uint64_t i = 0; i < n; i++) {
    uint32_t u;
    memcpy(&u, &x[i], sizeof u);
    uint32_t upper = u >> 16, rest = u & 0xffffu;
    if ((u & 0x7fffffffu) > 0x7f800000u) {
      upper |= 0x40u; /* NaN: keep it a quiet NaN */
    } else if (rest > 0x8000u || (rest == 0x8000u && (upper & 1))) {
      upper++; /* round to nearest even; a carry into the exponent (or inf) is right */
    }
    o[2 * i] = (uint8_t)upper;
    o[2 * i + 1] = (uint8_t)(upper >> 8);
  }
}
static void bf16_dequantize(const void *in, float *y, uint64_t n) {
  const uint8_t *p = in;
  for (uint64_t i = 0; i < n; i++) {
    uint32_t u = (uint32_t)(p[2 * i] | p[2 * i + 1] << 8) << 16;
    memcpy(&y[i], &u, sizeof u);
  }
}

/* ---------------------------------------------------------------- Q4_1, Q5_0, Q5_1 */

/* Q4_1: f16 d, f16 m, nibbles[16]; x = d * q + m, q in 0..15, m = the block minimum. */
static void q4_1_quantize(const float *x, void *out, uint64_t n) {
  uint8_t *b = out;
  for (uint64_t blk = 0; blk < n / QK; blk++, x += QK, b += 20) {
    float mn, mx;
    min_max(x, QK, &mn, &mx);
    put_f16(b, (mx - mn) / 15.0f);
    put_f16(b + 2, mn);
    float d = get_f16(b), m = get_f16(b + 2);
    float id = d != 0 ? 1.0f / d : 0.0f;
    for (int j = 0; j < QK / 2; j++) {
      int lo = clampi(nearest((x[j] - m) * id), 0, 15);
      int hi = clampi(nearest((x[j + QK / 2] - m) * id), 0, 15);
      b[4 + j] = (uint8_t)(lo | hi << 4);
    }
  }
}
static void q4_1_dequantize(const void *in, float *y, uint64_t n) {
  const uint8_t *b = in;
  for (uint64_t blk = 0; blk < n / QK; blk++, b += 20, y += QK) {
    float d = get_f16(b), m = get_f16(b + 2);
    for (int j = 0; j < QK / 2; j++) {
      y[j] = d * (float)(b[4 + j] & 15) + m;
      y[j + QK / 2] = d * (float)(b[4 + j] >> 4) + m;
    }
  }
}

/* Q5_0: f16 d, u32 qh (bit j = 5th bit of element j), nibbles[16]; x = d * (q - 16).
 * As Q4_0: the element of largest magnitude maps to q = 0 (-16) exactly. */
static void q5_0_quantize(const float *x, void *out, uint64_t n) {
  uint8_t *b = out;
  for (uint64_t blk = 0; blk < n / QK; blk++, x += QK, b += 22) {
    put_f16(b, signed_absmax(x, QK) / -16.0f);
    float d = get_f16(b), id = d != 0 ? 1.0f / d : 0.0f;
    uint32_t qh = 0;
    for (int j = 0; j < QK / 2; j++) {
      int q0 = clampi(nearest(x[j] * id) + 16, 0, 31);
      int q1 = clampi(nearest(x[j + QK / 2] * id) + 16, 0, 31);
      b[6 + j] = (uint8_t)((q0 & 15) | (q1 & 15) << 4);
      qh |= (uint32_t)(q0 >> 4) << j;
      qh |= (uint32_t)(q1 >> 4) << (j + 16);
    }
    put_u32(b + 2, qh);
  }
}
static void q5_0_dequantize(const void *in, float *y, uint64_t n) {
  const uint8_t *b = in;
  for (uint64_t blk = 0; blk < n / QK; blk++, b += 22, y += QK) {
    float d = get_f16(b);
    uint32_t qh = get_u32(b + 2);
    for (int j = 0; j < QK / 2; j++) {
      int q0 = (b[6 + j] & 15) | (int)((qh >> j) & 1) << 4;
      int q1 = (b[6 + j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
      y[j] = d * (float)(q0 - 16);
      y[j + QK / 2] = d * (float)(q1 - 16);
    }
  }
}

/* Q5_1: f16 d, f16 m, u32 qh, nibbles[16]; x = d * q + m, q in 0..31. */
static void q5_1_quantize(const float *x, void *out, uint64_t n) {
  uint8_t *b = out;
  for (uint64_t blk = 0; blk < n / QK; blk++, x += QK, b += 24) {
    float mn, mx;
    min_max(x, QK, &mn, &mx);
    put_f16(b, (mx - mn) / 31.0f);
    put_f16(b + 2, mn);
    float d = get_f16(b), m = get_f16(b + 2);
    float id = d != 0 ? 1.0f / d : 0.0f;
    uint32_t qh = 0;
    for (int j = 0; j < QK / 2; j++) {
      int q0 = clampi(nearest((x[j] - m) * id), 0, 31);
      int q1 = clampi(nearest((x[j + QK / 2] - m) * id), 0, 31);
      b[8 + j] = (uint8_t)((q0 & 15) | (q1 & 15) << 4);
      qh |= (uint32_t)(q0 >> 4) << j;
      qh |= (uint32_t)(q1 >> 4) << (j + 16);
    }
    put_u32(b + 4, qh);
  }
}
static void q5_1_dequantize(const void *in, float *y, uint64_t n) {
  const uint8_t *b = in;
  for (uint64_t blk = 0; blk < n / QK; blk++, b += 24, y += QK) {
    float d = get_f16(b), m = get_f16(b + 2);
    uint32_t qh = get_u32(b + 4);
    for (int j = 0; j < QK / 2; j++) {
      int q0 = (b[8 + j] & 15) | (int)((qh >> j) & 1) << 4;
      int q1 = (b[8 + j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
      y[j] = d * (float)q0 + m;
      y[j + QK / 2] = d * (float)q1 + m;
    }
  }
}

/* ---------------------------------------------------------------- IQ4_NL, IQ4_XS */

/* The 16 non-uniform levels both IQ4 types index with a nibble. */
static const int8_t iq4_levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                      1,    13,   25,  38,  53,  69,  89,  113};

static int iq4_nearest(float v) {
  int best = 0;
  for (int i = 1; i < 16; i++)
    if (fabsf(v - iq4_levels[i]) < fabsf(v - iq4_levels[best])) best = i;
  return best;
}

/* IQ4_NL: f16 d, nibbles[16]; x = d * level[nibble]. The element of largest magnitude
 * maps to level -127 exactly; every other element takes the nearest level. */
static void iq4_nl_quantize(const float *x, void *out, uint64_t n) {
  uint8_t *b = out;
  for (uint64_t blk = 0; blk < n / QK; blk++, x += QK, b += 18) {
    put_f16(b, signed_absmax(x, QK) / -127.0f);
    float d = get_f16(b), id = d != 0 ? 1.0f / d : 0.0f;
    for (int j = 0; j < QK / 2; j++)
      b[2 + j] = (uint8_t)(iq4_nearest(x[j] * id) | iq4_nearest(x[j + QK / 2] * id) << 4);
  }
}
static void iq4_nl_dequantize(const void *in, float *y, uint64_t n) {
  const uint8_t *b = in;
  for (uint64_t blk = 0; blk < n / QK; blk++, b += 18, y += QK) {
    float d = get_f16(b);
    for (int j = 0; j < QK / 2; j++) {
      y[j] = d * (float)iq4_levels[b[2 + j] & 15];
      y[j + QK / 2] = d * (float)iq4_levels[b[2 + j] >> 4];
    }
  }
}

/* IQ4_XS: f16 d, u16 scales_h, u8 scales_l[4], nibbles[128]. Sub-block ib (32 elements)
 * has a 6-bit scale ls (low 4 bits in scales_l[ib/2] at 4*(ib%2), high 2 bits in scales_h
 * at 2*ib); x = d * (ls - 32) * level[nibble]. Each sub-block's ideal scale maps its
 * largest element to -127; d maps the largest ideal scale to -32. */
static void iq4_xs_quantize(const float *x, void *out, uint64_t n) {
  uint8_t *b = out;
  for (uint64_t blk = 0; blk < n / QK_K; blk++, x += QK_K, b += 136) {
    float ideal[8];
    for (int ib = 0; ib < 8; ib++) ideal[ib] = signed_absmax(x + 32 * ib, 32) / -127.0f;
    put_f16_away(b, signed_absmax(ideal, 8) / -32.0f);
    float d = get_f16(b);
    uint16_t scales_h = 0;
    memset(b + 4, 0, 4 + 128);
    for (int ib = 0; ib < 8; ib++) {
      int l = d != 0 ? clampi(nearest(ideal[ib] / d), -32, 31) : 0;
      int ls = l + 32;
      b[4 + ib / 2] |= (uint8_t)((ls & 15) << (4 * (ib % 2)));
      scales_h |= (uint16_t)((ls >> 4) << (2 * ib));
      float step = d * (float)l, is = step != 0 ? 1.0f / step : 0.0f;
      const float *xs = x + 32 * ib;
      for (int j = 0; j < 16; j++)
        b[8 + 16 * ib + j] =
            (uint8_t)(iq4_nearest(xs[j] * is) | iq4_nearest(xs[j + 16] * is) << 4);
    }
    b[2] = (uint8_t)scales_h;
    b[3] = (uint8_t)(scales_h >> 8);
  }
}
static void iq4_xs_dequantize(const void *in, float *y, uint64_t n) {
  const uint8_t *b = in;
  for (uint64_t blk = 0; blk < n / QK_K; blk++, b += 136, y += QK_K) {
    float d = get_f16(b);
    unsigned scales_h = b[2] | b[3] << 8;
    for (int ib = 0; ib < 8; ib++) {
      int ls = ((b[4 + ib / 2] >> (4 * (ib % 2))) & 15) | ((scales_h >> (2 * ib)) & 3) << 4;
      float dl = d * (float)(ls - 32);
      const uint8_t *qs = b + 8 + 16 * ib;
      for (int j = 0; j < 16; j++) {
        y[32 * ib + j] = dl * (float)iq4_levels[qs[j] & 15];
        y[32 * ib + 16 + j] = dl * (float)iq4_levels[qs[j] >> 4];
      }
    }
  }
}

/* ---------------------------------------------------------------- K-quants
 *
 * The K-quant encoders below are deliberately simple (not llama.cpp's searches): each
 * sub-block gets the scale (and, for the "x = d*q - m" types, the minimum) that spans its
 * values, those are rounded onto the type's 4/6/8-bit grid relative to the f16 super-block
 * scale(s) (stored rounded away from zero, see put_f16_away), and each element takes the
 * nearest quant under the scale actually stored. */

/* Q2_K / Q4_K / Q5_K style sub-block range: x in [-min, -min + levels * scale], with
 * min >= 0 (the stored minimum is subtracted, and it is unsigned). */
static void span(const float *x, int n, int levels, float *scale, float *min) {
  float mn, mx;
  min_max(x, n, &mn, &mx);
  if (mn > 0) mn = 0;
  *scale = (mx - mn) / (float)levels;
  *min = -mn;
}

static float max_of(const float *v, int n) {
  float m = 0;
  for (int i = 0; i < n; i++) m = fmaxf(m, v[i]);
  return m;
}

/* Q2_K: scales[16] (low nibble scale, high nibble min of each 16 elements), qs[64] (2-bit
 * quants: element 128h + 32j + l at qs[32h + l] bits 2j), f16 d, f16 dmin.
 * x = d * sc * q - dmin * m. */
static void q2_k_quantize(const float *x, void *out, uint64_t n) {
  uint8_t *b = out;
  for (uint64_t blk = 0; blk < n / QK_K; blk++, x += QK_K, b += 84) {
    float scale[16], min[16];
    for (int s = 0; s < 16; s++) span(x + 16 * s, 16, 3, &scale[s], &min[s]);
    put_f16_away(b + 80, max_of(scale, 16) / 15.0f);
    put_f16_away(b + 82, max_of(min, 16) / 15.0f);
    float d = get_f16(b + 80), dmin = get_f16(b + 82);
    memset(b + 16, 0, 64);
    for (int s = 0; s < 16; s++) {
      int sc = d > 0 ? clampi(nearest(scale[s] / d), 0, 15) : 0;
      int m = dmin > 0 ? clampi(nearest(min[s] / dmin), 0, 15) : 0;
      b[s] = (uint8_t)(sc | m << 4);
      float step = d * (float)sc, off = dmin * (float)m;
      for (int i = 0; i < 16; i++) {
        int e = 16 * s + i;
        int q = step > 0 ? clampi(nearest((x[e] + off) / step), 0, 3) : 0;
        b[16 + 32 * (e / 128) + e % 32] |= (uint8_t)(q << (2 * ((e % 128) / 32)));
      }
    }
  }
}
static void q2_k_dequantize(const void *in, float *y, uint64_t n) {
  const uint8_t *b = in;
  for (uint64_t blk = 0; blk < n / QK_K; blk++, b += 84, y += QK_K) {
    float d = get_f16(b + 80), dmin = get_f16(b + 82);
    for (int e = 0; e < QK_K; e++) {
      uint8_t sc = b[e / 16];
      int q = (b[16 + 32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
      y[e] = d * (float)(sc & 15) * (float)q - dmin * (float)(sc >> 4);
    }
  }
}

/* Q3_K: hmask[32] (element e's high bit is bit e/32 of hmask[e%32]), qs[64] (low 2 bits,
 * placed as in Q2_K), scales[12] (16 six-bit scales, biased by 32), f16 d.
 * x = d * (scale - 32) * (low2 - (high ? 0 : 4)), i.e. a signed quant in -4..3.
 * Scale j: low 4 bits in scales[j] (j < 8) or the high nibble of scales[j - 8]; high 2 bits
 * at bit 2*(j/4) of scales[8 + j%4]. */
static int q3_k_scale(const uint8_t *sc12, int j) {
  int low = j < 8 ? sc12[j] & 15 : sc12[j - 8] >> 4;
  int high = (sc12[8 + j % 4] >> (2 * (j / 4))) & 3;
  return (low | high << 4) - 32;
}
static void q3_k_quantize(const float *x, void *out, uint64_t n) {
  uint8_t *b = out;
  for (uint64_t blk = 0; blk < n / QK_K; blk++, x += QK_K, b += 110) {
    float ideal[16]; /* each sub-block's largest element maps to -4 */
    for (int s = 0; s < 16; s++) ideal[s] = signed_absmax(x + 16 * s, 16) / -4.0f;
    put_f16_away(b + 108, signed_absmax(ideal, 16) / -32.0f);
    float d = get_f16(b + 108);
    memset(b, 0, 108);
    uint8_t *hmask = b, *qs = b + 32, *sc12 = b + 96;
    for (int s = 0; s < 16; s++) {
      int l = d != 0 ? clampi(nearest(ideal[s] / d), -32, 31) : 0;
      int u = l + 32;
      if (s < 8) sc12[s] |= (uint8_t)(u & 15);
      else sc12[s - 8] |= (uint8_t)((u & 15) << 4);
      sc12[8 + s % 4] |= (uint8_t)((u >> 4) << (2 * (s / 4)));
      float step = d * (float)l;
      for (int i = 0; i < 16; i++) {
        int e = 16 * s + i;
        int q = step != 0 ? clampi(nearest(x[e] / step), -4, 3) : 0;
        int biased = q + 4; /* 0..7: high bit set means "no -4" */
        if (biased & 4) hmask[e % 32] |= (uint8_t)(1 << (e / 32));
        qs[32 * (e / 128) + e % 32] |= (uint8_t)((biased & 3) << (2 * ((e % 128) / 32)));
      }
    }
  }
}
static void q3_k_dequantize(const void *in, float *y, uint64_t n) {
  const uint8_t *b = in;
  for (uint64_t blk = 0; blk < n / QK_K; blk++, b += 110, y += QK_K) {
    const uint8_t *hmask = b, *qs = b + 32, *sc12 = b + 96;
    float d = get_f16(b + 108);
    for (int e = 0; e < QK_K; e++) {
      int low = (qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
      int high = (hmask[e % 32] >> (e / 32)) & 1;
      y[e] = d * (float)q3_k_scale(sc12, e / 16) * (float)(low - (high ? 0 : 4));
    }
  }
}

/* Q4_K and Q5_K: 8 sub-blocks of 32, each with a 6-bit scale and a 6-bit min packed into
 * 12 bytes: j < 4: scale = s[j] & 63, min = s[j+4] & 63; j >= 4: scale = (s[j+4] & 15) |
 * (s[j-4] >> 6) << 4, min = (s[j+4] >> 4) | (s[j] >> 6) << 4. */
static void k4_get(const uint8_t *s, int j, int *sc, int *m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else {
    *sc = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
    *m = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
  }
}
static void k4_put(uint8_t *s, int j, int sc, int m) { /* s zeroed first */
  if (j < 4) {
    s[j] |= (uint8_t)sc;
    s[j + 4] |= (uint8_t)m;
  } else {
    s[j + 4] = (uint8_t)((sc & 15) | (m & 15) << 4);
    s[j - 4] |= (uint8_t)((sc >> 4) << 6);
    s[j] |= (uint8_t)((m >> 4) << 6);
  }
}

/* Shared by Q4_K (levels 15) and Q5_K (levels 31): fills d, dmin, scales and returns the
 * quants in q[256]. Header: f16 d at b, f16 dmin at b + 2, scales at b + 4. */
static void k_minmax_encode(const float *x, uint8_t *b, int levels, uint8_t *q) {
  float scale[8], min[8];
  for (int s = 0; s < 8; s++) span(x + 32 * s, 32, levels, &scale[s], &min[s]);
  put_f16_away(b, max_of(scale, 8) / 63.0f);
  put_f16_away(b + 2, max_of(min, 8) / 63.0f);
  float d = get_f16(b), dmin = get_f16(b + 2);
  memset(b + 4, 0, 12);
  for (int s = 0; s < 8; s++) {
    int sc = d > 0 ? clampi(nearest(scale[s] / d), 0, 63) : 0;
    int m = dmin > 0 ? clampi(nearest(min[s] / dmin), 0, 63) : 0;
    k4_put(b + 4, s, sc, m);
    float step = d * (float)sc, off = dmin * (float)m;
    for (int i = 0; i < 32; i++) {
      int e = 32 * s + i;
      q[e] = (uint8_t)(step > 0 ? clampi(nearest((x[e] + off) / step), 0, levels) : 0);
    }
  }
}

/* Q4_K: f16 d, f16 dmin, scales[12], qs[128]: chunk c (64 elements) uses qs[32c + l],
 * low nibble = element 64c + l (sub-block 2c), high nibble = 64c + 32 + l (sub-block 2c+1).
 * x = d * sc * q - dmin * m. */
static void q4_k_quantize(const float *x, void *out, uint64_t n) {
  uint8_t *b = out, q[QK_K];
  for (uint64_t blk = 0; blk < n / QK_K; blk++, x += QK_K, b += 144) {
    k_minmax_encode(x, b, 15, q);
    for (int c = 0; c < 4; c++)
      for (int l = 0; l < 32; l++)
        b[16 + 32 * c + l] = (uint8_t)(q[64 * c + l] | q[64 * c + 32 + l] << 4);
  }
}
static void q4_k_dequantize(const void *in, float *y, uint64_t n) {
  const uint8_t *b = in;
  for (uint64_t blk = 0; blk < n / QK_K; blk++, b += 144, y += QK_K) {
    float d = get_f16(b), dmin = get_f16(b + 2);
    for (int c = 0; c < 4; c++) {
      int sc1, m1, sc2, m2;
      k4_get(b + 4, 2 * c, &sc1, &m1);
      k4_get(b + 4, 2 * c + 1, &sc2, &m2);
      const uint8_t *qs = b + 16 + 32 * c;
      for (int l = 0; l < 32; l++) {
        y[64 * c + l] = d * (float)sc1 * (float)(qs[l] & 15) - dmin * (float)m1;
        y[64 * c + 32 + l] = d * (float)sc2 * (float)(qs[l] >> 4) - dmin * (float)m2;
      }
    }
  }
}

/* Q5_K: f16 d, f16 dmin, scales[12], qh[32], qs[128]; as Q4_K plus a fifth bit: element
 * 64c + l has it at bit 2c of qh[l], element 64c + 32 + l at bit 2c + 1. */
static void q5_k_quantize(const float *x, void *out, uint64_t n) {
  uint8_t *b = out, q[QK_K];
  for (uint64_t blk = 0; blk < n / QK_K; blk++, x += QK_K, b += 176) {
    k_minmax_encode(x, b, 31, q);
    uint8_t *qh = b + 16, *qs = b + 48;
    memset(qh, 0, 32);
    for (int c = 0; c < 4; c++)
      for (int l = 0; l < 32; l++) {
        int lo = q[64 * c + l], hi = q[64 * c + 32 + l];
        qs[32 * c + l] = (uint8_t)((lo & 15) | (hi & 15) << 4);
        qh[l] |= (uint8_t)((lo >> 4) << (2 * c) | (hi >> 4) << (2 * c + 1));
      }
  }
}
static void q5_k_dequantize(const void *in, float *y, uint64_t n) {
  const uint8_t *b = in;
  for (uint64_t blk = 0; blk < n / QK_K; blk++, b += 176, y += QK_K) {
    float d = get_f16(b), dmin = get_f16(b + 2);
    const uint8_t *qh = b + 16;
    for (int c = 0; c < 4; c++) {
      int sc1, m1, sc2, m2;
      k4_get(b + 4, 2 * c, &sc1, &m1);
      k4_get(b + 4, 2 * c + 1, &sc2, &m2);
      const uint8_t *qs = b + 48 + 32 * c;
      for (int l = 0; l < 32; l++) {
        int lo = (qs[l] & 15) | ((qh[l] >> (2 * c)) & 1) << 4;
        int hi = (qs[l] >> 4) | ((qh[l] >> (2 * c + 1)) & 1) << 4;
        y[64 * c + l] = d * (float)sc1 * (float)lo - dmin * (float)m1;
        y[64 * c + 32 + l] = d * (float)sc2 * (float)hi - dmin * (float)m2;
      }
    }
  }
}

/* Q6_K: ql[128], qh[64], int8 scales[16], f16 d; x = d * scale[e/16] * (q - 32), q in
 * 0..63. Element e = 128h + 32k + l (k < 4, l < 32): low 4 bits in ql[64h + 32(k&1) + l]
 * at bit 4(k>>1), high 2 bits in qh[32h + l] at bit 2k. */
static void q6_k_quantize(const float *x, void *out, uint64_t n) {
  uint8_t *b = out;
  for (uint64_t blk = 0; blk < n / QK_K; blk++, x += QK_K, b += 210) {
    float ideal[16]; /* each sub-block's largest element maps to -32 */
    for (int s = 0; s < 16; s++) ideal[s] = signed_absmax(x + 16 * s, 16) / -32.0f;
    put_f16_away(b + 208, signed_absmax(ideal, 16) / -128.0f);
    float d = get_f16(b + 208);
    memset(b, 0, 208);
    uint8_t *ql = b, *qh = b + 128;
    for (int s = 0; s < 16; s++) {
      int l = d != 0 ? clampi(nearest(ideal[s] / d), -128, 127) : 0;
      b[192 + s] = (uint8_t)(int8_t)l;
      float step = d * (float)l;
      for (int i = 0; i < 16; i++) {
        int e = 16 * s + i;
        int q = (step != 0 ? clampi(nearest(x[e] / step), -32, 31) : 0) + 32;
        int h = e / 128, k = (e % 128) / 32, lane = e % 32;
        ql[64 * h + 32 * (k & 1) + lane] |= (uint8_t)((q & 15) << (4 * (k >> 1)));
        qh[32 * h + lane] |= (uint8_t)((q >> 4) << (2 * k));
      }
    }
  }
}
static void q6_k_dequantize(const void *in, float *y, uint64_t n) {
  const uint8_t *b = in;
  for (uint64_t blk = 0; blk < n / QK_K; blk++, b += 210, y += QK_K) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *scales = (const int8_t *)(b + 192);
    float d = get_f16(b + 208);
    for (int e = 0; e < QK_K; e++) {
      int h = e / 128, k = (e % 128) / 32, lane = e % 32;
      int q = ((ql[64 * h + 32 * (k & 1) + lane] >> (4 * (k >> 1))) & 15) |
              ((qh[32 * h + lane] >> (2 * k)) & 3) << 4;
      y[e] = d * (float)scales[e / 16] * (float)(q - 32);
    }
  }
}

/* ---------------------------------------------------------------- the table */

typedef struct ref_type {
  uint32_t type;
  uint32_t block_elems;
  uint32_t block_bytes;
  void (*quantize)(const float *x, void *out, uint64_t n);
  void (*dequantize)(const void *in, float *y, uint64_t n);
} ref_type;

static const ref_type ref_types[] = {
    {M64_GGML_F32, 1, 4, f32_quantize, f32_dequantize},
    {M64_GGML_F16, 1, 2, f16_quantize, f16_dequantize},
    {M64_GGML_BF16, 1, 2, bf16_quantize, bf16_dequantize},
    {M64_GGML_Q8_0, QK, 2 + QK, q8_0_quantize, q8_0_dequantize},
    {M64_GGML_Q4_0, QK, 2 + QK / 2, q4_0_quantize, q4_0_dequantize},
    {M64_GGML_Q4_1, QK, 20, q4_1_quantize, q4_1_dequantize},
    {M64_GGML_Q5_0, QK, 22, q5_0_quantize, q5_0_dequantize},
    {M64_GGML_Q5_1, QK, 24, q5_1_quantize, q5_1_dequantize},
    {M64_GGML_IQ4_NL, QK, 18, iq4_nl_quantize, iq4_nl_dequantize},
    {M64_GGML_Q2_K, QK_K, 84, q2_k_quantize, q2_k_dequantize},
    {M64_GGML_Q3_K, QK_K, 110, q3_k_quantize, q3_k_dequantize},
    {M64_GGML_Q4_K, QK_K, 144, q4_k_quantize, q4_k_dequantize},
    {M64_GGML_Q5_K, QK_K, 176, q5_k_quantize, q5_k_dequantize},
    {M64_GGML_Q6_K, QK_K, 210, q6_k_quantize, q6_k_dequantize},
    {M64_GGML_IQ4_XS, QK_K, 136, iq4_xs_quantize, iq4_xs_dequantize},
};

static const ref_type *find_type(uint32_t type) {
  for (size_t i = 0; i < sizeof ref_types / sizeof ref_types[0]; i++)
    if (ref_types[i].type == type) return &ref_types[i];
  return NULL;
}

int m64_ref_type_supported(uint32_t type) { return find_type(type) != NULL; }

uint32_t m64_ref_block_elems(uint32_t type) {
  const ref_type *t = find_type(type);
  return t ? t->block_elems : 0;
}

uint32_t m64_ref_n_types(void) { return (uint32_t)(sizeof ref_types / sizeof ref_types[0]); }

uint32_t m64_ref_type_at(uint32_t i) {
  return i < m64_ref_n_types() ? ref_types[i].type : M64_GGML_TYPE_COUNT;
}

uint64_t m64_ref_row_bytes(uint32_t type, uint64_t n) {
  const ref_type *t = find_type(type);
  if (!t || n % t->block_elems) return 0;
  return n / t->block_elems * t->block_bytes;
}

int m64_ref_quantize_row(uint32_t type, const float *x, void *out, uint64_t n) {
  const ref_type *t = find_type(type);
  if (!t) return M64_EUNSUPPORTED;
  if (n % t->block_elems) return M64_EFORMAT;
  t->quantize(x, out, n);
  return M64_OK;
}

int m64_ref_dequantize_row(uint32_t type, const void *in, float *y, uint64_t n) {
  const ref_type *t = find_type(type);
  if (!t) return M64_EUNSUPPORTED;
  if (n % t->block_elems) return M64_EFORMAT;
  t->dequantize(in, y, n);
  return M64_OK;
}
