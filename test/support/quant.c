/* quant.c — reference scalar quantizers; see quant.h for the layouts. */
#include "quant.h"

#include <math.h>
#include <string.h>

#include "m64_formats.h"

#define QK 32 /* elements per block for Q8_0 and Q4_0 */

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
    {M64_GGML_Q8_0, QK, 2 + QK, q8_0_quantize, q8_0_dequantize},
    {M64_GGML_Q4_0, QK, 2 + QK / 2, q4_0_quantize, q4_0_dequantize},
};

static const ref_type *find_type(uint32_t type) {
  for (size_t i = 0; i < sizeof ref_types / sizeof ref_types[0]; i++)
    if (ref_types[i].type == type) return &ref_types[i];
  return NULL;
}

int m64_ref_type_supported(uint32_t type) { return find_type(type) != NULL; }

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
