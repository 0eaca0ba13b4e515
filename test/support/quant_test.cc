// Tests of the reference quantizers (quant.c): hand-built blocks of every type, laid out
// from the ggml block definitions, and round trips with per-type error bounds.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "m64_formats.h"
#include "quant.h"
#include "quant_bounds.h"

namespace {

using m64test::BoundBlock;
using m64test::ElemBound;
using m64test::RmsBound;

// ------------------------------------------------------------------ F16

TEST(RefQuant, F16KnownValues) {
  EXPECT_EQ(m64_ref_f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(m64_ref_f32_to_f16(-2.0f), 0xc000);
  EXPECT_EQ(m64_ref_f32_to_f16(0.0f), 0x0000);
  EXPECT_EQ(m64_ref_f32_to_f16(-0.0f), 0x8000);
  EXPECT_EQ(m64_ref_f32_to_f16(65504.0f), 0x7bff);                  // largest half
  EXPECT_EQ(m64_ref_f32_to_f16(65520.0f), 0x7c00);                  // rounds up to inf
  EXPECT_EQ(m64_ref_f32_to_f16(1e10f), 0x7c00);
  EXPECT_EQ(m64_ref_f32_to_f16(ldexpf(1.0f, -24)), 0x0001);         // smallest subnormal
  EXPECT_EQ(m64_ref_f32_to_f16(ldexpf(1.0f, -25)), 0x0000);         // tie -> even (0)
  EXPECT_EQ(m64_ref_f32_to_f16(ldexpf(1.5f, -25)), 0x0001);
  EXPECT_EQ(m64_ref_f32_to_f16(ldexpf(3.0f, -25)), 0x0002);         // 1.5 ulp tie -> even
  EXPECT_EQ(m64_ref_f32_to_f16(1.0f + ldexpf(1.0f, -11)), 0x3c00);  // tie -> even
  EXPECT_EQ(m64_ref_f32_to_f16(1.0f + ldexpf(3.0f, -11)), 0x3c02);  // tie -> even (up)
  EXPECT_EQ(m64_ref_f32_to_f16(1.0f + ldexpf(1.0f, -11) + ldexpf(1.0f, -20)), 0x3c01);
  EXPECT_EQ(m64_ref_f32_to_f16(ldexpf(1023.5f, -24)), 0x0400);      // subnormal carries to normal
  EXPECT_EQ(m64_ref_f32_to_f16(INFINITY), 0x7c00);
  uint16_t nan = m64_ref_f32_to_f16(NAN);
  EXPECT_EQ(nan & 0x7c00, 0x7c00);
  EXPECT_NE(nan & 0x03ff, 0);
}

TEST(RefQuant, F16RoundTripsEveryHalf) {
  for (uint32_t h = 0; h < 65536; h++) {
    float f = m64_ref_f16_to_f32((uint16_t)h);
    if (std::isnan(f)) continue;
    ASSERT_EQ(m64_ref_f32_to_f16(f), h) << "half 0x" << std::hex << h;
  }
  EXPECT_EQ(m64_ref_f16_to_f32(0x3555), 0.333251953125f);
  EXPECT_EQ(m64_ref_f16_to_f32(0x0001), ldexpf(1.0f, -24));
}

// ------------------------------------------------------------------ Q8_0 / Q4_0 layouts

TEST(RefQuant, Q8_0Layout) {
  float x[32];
  for (int i = 0; i < 32; i++) x[i] = (float)(i - 10) * 0.5f;  // amax 10.5 at i = 31
  uint8_t block[34];
  ASSERT_EQ(m64_ref_quantize_row(M64_GGML_Q8_0, x, block, 32), 0);
  EXPECT_EQ(m64_ref_row_bytes(M64_GGML_Q8_0, 64), 68u);
  float d = m64_ref_f16_to_f32((uint16_t)(block[0] | block[1] << 8));
  EXPECT_EQ(d, m64_ref_f16_to_f32(m64_ref_f32_to_f16(10.5f / 127)));  // scale stored as f16
  EXPECT_EQ((int8_t)block[2 + 31], 127);
  EXPECT_EQ((int8_t)block[2 + 10], 0);
  EXPECT_EQ((int8_t)block[2 + 0], (int8_t)std::lround(-5.0f / (10.5f / 127)));
  float y[32];
  ASSERT_EQ(m64_ref_dequantize_row(M64_GGML_Q8_0, block, y, 32), 0);
  for (int i = 0; i < 32; i++) EXPECT_NEAR(y[i], x[i], 0.5f * 10.5f / 127 + 0.01f);
  EXPECT_EQ(m64_ref_quantize_row(M64_GGML_Q8_0, x, block, 31), M64_EFORMAT);
}

TEST(RefQuant, Q4_0Layout) {
  float x[32];
  for (int i = 0; i < 32; i++) x[i] = (float)(i - 16);  // max |x| is -16 at i = 0
  uint8_t block[18];
  ASSERT_EQ(m64_ref_quantize_row(M64_GGML_Q4_0, x, block, 32), 0);
  EXPECT_EQ(m64_ref_row_bytes(M64_GGML_Q4_0, 64), 36u);
  // d = max / -8 = 2
  EXPECT_EQ(block[0] | block[1] << 8, 0x4000);
  // byte 0: element 0 (-16 -> q 0) low, element 16 (0 -> q 8) high
  EXPECT_EQ(block[2], 0x80);
  // byte 15: element 15 (-1 -> -0.5+8 rounds to 8) low, element 31 (15 -> 15.5 clamps 15) high
  EXPECT_EQ(block[2 + 15], 0xf8);
  float y[32];
  ASSERT_EQ(m64_ref_dequantize_row(M64_GGML_Q4_0, block, y, 32), 0);
  EXPECT_EQ(y[0], -16.0f);
  EXPECT_EQ(y[16], 0.0f);
  EXPECT_EQ(y[31], 14.0f);
  for (int i = 0; i < 32; i++) EXPECT_LE(std::fabs(y[i] - x[i]), 1.0f + 1e-6f) << i;
}

TEST(RefQuant, UnknownTypes) {
  EXPECT_FALSE(m64_ref_type_supported(M64_GGML_IQ2_XXS));
  EXPECT_FALSE(m64_ref_type_supported(M64_GGML_Q8_K));
  EXPECT_EQ(m64_ref_block_elems(M64_GGML_IQ2_XXS), 0u);
  float x[256] = {0};
  uint8_t out[1024];
  EXPECT_EQ(m64_ref_quantize_row(M64_GGML_IQ2_XXS, x, out, 256), M64_EUNSUPPORTED);
  EXPECT_EQ(m64_ref_dequantize_row(M64_GGML_IQ2_XXS, out, x, 256), M64_EUNSUPPORTED);
  EXPECT_EQ(m64_ref_row_bytes(M64_GGML_IQ2_XXS, 256), 0u);
  EXPECT_EQ(m64_ref_type_at(m64_ref_n_types()), (uint32_t)M64_GGML_TYPE_COUNT);
}

// ------------------------------------------------------------------ the table

// Every supported type, and its geometry agrees with the formats library's type table.
TEST(RefQuant, TableMatchesFormatsTypes) {
  const uint32_t want[] = {M64_GGML_F32,  M64_GGML_F16,  M64_GGML_BF16, M64_GGML_Q8_0,
                           M64_GGML_Q4_0, M64_GGML_Q4_1, M64_GGML_Q5_0, M64_GGML_Q5_1,
                           M64_GGML_IQ4_NL, M64_GGML_Q2_K, M64_GGML_Q3_K, M64_GGML_Q4_K,
                           M64_GGML_Q5_K, M64_GGML_Q6_K, M64_GGML_IQ4_XS};
  ASSERT_EQ(m64_ref_n_types(), sizeof want / sizeof want[0]);
  for (uint32_t i = 0; i < m64_ref_n_types(); i++) {
    uint32_t t = m64_ref_type_at(i);
    EXPECT_EQ(t, want[i]);
    m64_type_info info = m64_ggml_type_info(t);
    ASSERT_NE(info.name, nullptr);
    EXPECT_EQ(m64_ref_block_elems(t), info.block_elems) << info.name;
    EXPECT_EQ(m64_ref_row_bytes(t, info.block_elems * 3), 3ull * info.block_bytes) << info.name;
    if (info.block_elems > 1) {
      EXPECT_EQ(m64_ref_row_bytes(t, info.block_elems + 1), 0u) << info.name;
      std::vector<float> x(info.block_elems + 1);
      std::vector<uint8_t> out(4 * x.size());
      EXPECT_EQ(m64_ref_quantize_row(t, x.data(), out.data(), x.size()), M64_EFORMAT);
    }
  }
}

// ------------------------------------------------------------------ hand-built blocks
//
// Each block is assembled byte by byte from the ggml layout (ggml-common.h), and the
// expected values are computed the way ggml's dequantizers state them, which is written
// differently from quant.c (so a shared misreading would have to be made twice).
// Scales are powers of two and quants small integers, so every value is exact.

void PutF16(uint8_t *p, uint16_t h) {
  p[0] = (uint8_t)h;
  p[1] = (uint8_t)(h >> 8);
}
const uint16_t kHalf = 0x3800, kQuarter = 0x3400, kEighth = 0x3000, kSixteenth = 0x2c00,
               kOne = 0x3c00, kTwo = 0x4000, kMinusOne = 0xbc00;
const int kLevels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

std::vector<float> Dequant(uint32_t type, const std::vector<uint8_t> &bytes, size_t n) {
  std::vector<float> y(n, NAN);
  EXPECT_EQ(m64_ref_row_bytes(type, n), bytes.size());
  EXPECT_EQ(m64_ref_dequantize_row(type, bytes.data(), y.data(), n), 0);
  return y;
}

void ExpectSame(const std::vector<float> &got, const std::vector<float> &want, const char *what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); i++) ASSERT_EQ(got[i], want[i]) << what << " element " << i;
}

TEST(RefLayout, BF16) {
  std::vector<uint8_t> b = {0x80, 0x3f, 0xc0, 0xc0, 0x49, 0x40, 0x80, 0xff};
  std::vector<float> y = Dequant(M64_GGML_BF16, b, 4);
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[1], -6.0f);
  EXPECT_EQ(y[2], 3.140625f);
  EXPECT_EQ(y[3], -INFINITY);
  auto bf16 = [](float f) {
    uint8_t o[2];
    m64_ref_quantize_row(M64_GGML_BF16, &f, o, 1);
    return (uint16_t)(o[0] | o[1] << 8);
  };
  EXPECT_EQ(bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);                         // tie -> even
  EXPECT_EQ(bf16(1.0f + std::ldexp(3.0f, -8)), 0x3f82);                         // tie -> even
  EXPECT_EQ(bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)), 0x3f81);  // above tie
  EXPECT_EQ(bf16(-2.0f), 0xc000);
  EXPECT_EQ(bf16(3.4e38f), 0x7f80);  // rounds up to inf
  EXPECT_EQ(bf16(INFINITY), 0x7f80);
  EXPECT_EQ(bf16(std::ldexp(1.0f, -130)), 0x0008);  // subnormals kept: 8 * 2^-133
  uint16_t nan = bf16(NAN);
  EXPECT_EQ(nan & 0x7f80, 0x7f80);
  EXPECT_NE(nan & 0x007f, 0);
}

TEST(RefLayout, Q4_1) {
  std::vector<uint8_t> b(20);
  PutF16(&b[0], kHalf);      // d
  PutF16(&b[2], kMinusOne);  // m
  for (int j = 0; j < 16; j++) b[4 + j] = (uint8_t)(j | (15 - j) << 4);
  std::vector<float> want(32);
  for (int j = 0; j < 16; j++) {
    want[j] = 0.5f * j - 1;
    want[j + 16] = 0.5f * (15 - j) - 1;
  }
  ExpectSame(Dequant(M64_GGML_Q4_1, b, 32), want, "Q4_1");
}

// qh = 0x80010005: fifth bits of elements 0, 2 (bits 0, 2), 16 (bit 16) and 31 (bit 31).
const uint8_t kQh[4] = {0x05, 0x00, 0x01, 0x80};
int FifthBit(int e) { return e == 0 || e == 2 || e == 16 || e == 31; }

TEST(RefLayout, Q5_0) {
  std::vector<uint8_t> b(22);
  PutF16(&b[0], kQuarter);
  memcpy(&b[2], kQh, 4);
  for (int j = 0; j < 16; j++) b[6 + j] = (uint8_t)(j | ((3 * j) & 15) << 4);
  std::vector<float> want(32);
  for (int j = 0; j < 16; j++) {
    want[j] = 0.25f * ((j | FifthBit(j) << 4) - 16);
    want[j + 16] = 0.25f * ((((3 * j) & 15) | FifthBit(j + 16) << 4) - 16);
  }
  std::vector<float> y = Dequant(M64_GGML_Q5_0, b, 32);
  ExpectSame(y, want, "Q5_0");
  EXPECT_EQ(y[0], 0.0f);    // q = 0 | 16
  EXPECT_EQ(y[1], -3.75f);  // q = 1
  EXPECT_EQ(y[31], 3.25f);  // q = (45 & 15) | 16 = 29
}

TEST(RefLayout, Q5_1) {
  std::vector<uint8_t> b(24);
  PutF16(&b[0], kOne);   // d
  PutF16(&b[2], kHalf);  // m
  memcpy(&b[4], kQh, 4);
  for (int j = 0; j < 16; j++) b[8 + j] = (uint8_t)(j | ((3 * j) & 15) << 4);
  std::vector<float> want(32);
  for (int j = 0; j < 16; j++) {
    want[j] = (float)(j | FifthBit(j) << 4) + 0.5f;
    want[j + 16] = (float)(((3 * j) & 15) | FifthBit(j + 16) << 4) + 0.5f;
  }
  std::vector<float> y = Dequant(M64_GGML_Q5_1, b, 32);
  ExpectSame(y, want, "Q5_1");
  EXPECT_EQ(y[16], 16.5f);
}

TEST(RefLayout, IQ4_NL) {
  std::vector<uint8_t> b(18);
  PutF16(&b[0], kTwo);
  for (int j = 0; j < 16; j++) b[2 + j] = (uint8_t)(j | (15 - j) << 4);
  std::vector<float> want(32);
  for (int j = 0; j < 16; j++) {
    want[j] = 2.0f * kLevels[j];
    want[j + 16] = 2.0f * kLevels[15 - j];
  }
  std::vector<float> y = Dequant(M64_GGML_IQ4_NL, b, 32);
  ExpectSame(y, want, "IQ4_NL");
  EXPECT_EQ(y[0], -254.0f);
  EXPECT_EQ(y[16], 226.0f);
}

// Q2_K: scales[16] @0, qs[64] @16, d @80, dmin @82.
TEST(RefLayout, Q2_K) {
  std::vector<uint8_t> b(84);
  for (int i = 0; i < 16; i++) b[i] = (uint8_t)(((i + 1) & 15) | (i % 4) << 4);
  for (int k = 0; k < 64; k++) b[16 + k] = (uint8_t)(k * 37 + 5);
  PutF16(&b[80], kHalf);
  PutF16(&b[82], kQuarter);
  const float d = 0.5f, dmin = 0.25f;
  const uint8_t *scales = &b[0];
  std::vector<float> want;
  int is = 0;
  for (int h = 0; h < 2; h++) {
    const uint8_t *q = &b[16 + 32 * h];
    for (int j = 0; j < 4; j++) {
      int shift = 2 * j;
      uint8_t sc = scales[is++];
      for (int l = 0; l < 16; l++)
        want.push_back(d * (sc & 15) * ((q[l] >> shift) & 3) - dmin * (sc >> 4));
      sc = scales[is++];
      for (int l = 0; l < 16; l++)
        want.push_back(d * (sc & 15) * ((q[l + 16] >> shift) & 3) - dmin * (sc >> 4));
    }
  }
  std::vector<float> y = Dequant(M64_GGML_Q2_K, b, 256);
  ExpectSame(y, want, "Q2_K");
  // Element 0: scale byte 0x01 (scale 1, min 0), qs[0] = 5 -> low 2 bits 1 -> 0.5.
  EXPECT_EQ(y[0], 0.5f);
  // Element 32 + 16 (half 0, j 1, second group): scales[3] = 0x34, q = (qs[16] >> 2) & 3.
  EXPECT_EQ(y[48], 0.5f * 4 * (((16 * 37 + 5) & 255) >> 2 & 3) - 0.25f * 3);
}

// Q3_K: hmask[32] @0, qs[64] @32, scales[12] @96, d @108.
TEST(RefLayout, Q3_K) {
  std::vector<uint8_t> b(110);
  for (int k = 0; k < 32; k++) b[k] = (uint8_t)(k * 13 + 1);
  for (int k = 0; k < 64; k++) b[32 + k] = (uint8_t)(k * 29 + 7);
  const uint8_t sc12[12] = {0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x1b, 0x2c, 0x3d, 0x4e};
  memcpy(&b[96], sc12, 12);
  PutF16(&b[108], kEighth);
  // The 16 scales as ggml unpacks them: three little-endian u32 words.
  auto word = [&](int i) {
    return (uint32_t)sc12[4 * i] | (uint32_t)sc12[4 * i + 1] << 8 |
           (uint32_t)sc12[4 * i + 2] << 16 | (uint32_t)sc12[4 * i + 3] << 24;
  };
  uint32_t a0 = word(0), a1 = word(1), tmp = word(2), k1 = 0x03030303, k2 = 0x0f0f0f0f;
  uint32_t s[4] = {(a0 & k2) | (((tmp >> 0) & k1) << 4), (a1 & k2) | (((tmp >> 2) & k1) << 4),
                   ((a0 >> 4) & k2) | (((tmp >> 4) & k1) << 4),
                   ((a1 >> 4) & k2) | (((tmp >> 6) & k1) << 4)};
  int scale[16];
  for (int i = 0; i < 16; i++) scale[i] = (int)((s[i / 4] >> (8 * (i % 4))) & 0xff) - 32;
  const float d = 0.125f;
  const uint8_t *hmask = &b[0];
  std::vector<float> want;
  int is = 0;
  uint8_t m = 1;
  for (int h = 0; h < 2; h++) {
    const uint8_t *q = &b[32 + 32 * h];
    for (int j = 0; j < 4; j++) {
      int shift = 2 * j;
      float dl = d * scale[is++];
      for (int l = 0; l < 16; l++)
        want.push_back(dl * (((q[l] >> shift) & 3) - ((hmask[l] & m) ? 0 : 4)));
      dl = d * scale[is++];
      for (int l = 0; l < 16; l++)
        want.push_back(dl * (((q[l + 16] >> shift) & 3) - ((hmask[l + 16] & m) ? 0 : 4)));
      m <<= 1;
    }
  }
  std::vector<float> y = Dequant(M64_GGML_Q3_K, b, 256);
  ExpectSame(y, want, "Q3_K");
  // Scale 0: low nibble of byte 0 (2) | (byte 8 & 3) << 4 (3 << 4) = 50 -> 18.
  // Element 0: qs[0] = 7 -> low 2 bits 3; hmask[0] = 1 has bit 0 -> no -4: 0.125*18*3.
  EXPECT_EQ(scale[0], 18);
  EXPECT_EQ(y[0], 0.125f * 18 * 3);
}

void Q4KScaleMin(int j, const uint8_t *s, int *sc, int *m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else {
    *sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
    *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

const uint8_t kScales12[12] = {0xc5, 0x4a, 0x8f, 0x13, 0x6e, 0xd2, 0x37, 0xa9, 0x5c, 0xe1, 0x28, 0x74};

// Q4_K: d @0, dmin @2, scales[12] @4, qs[128] @16.
TEST(RefLayout, Q4_K) {
  std::vector<uint8_t> b(144);
  PutF16(&b[0], kHalf);
  PutF16(&b[2], kEighth);
  memcpy(&b[4], kScales12, 12);
  for (int k = 0; k < 128; k++) b[16 + k] = (uint8_t)(k * 53 + 11);
  std::vector<float> want(256);
  for (int c = 0; c < 4; c++) {
    const uint8_t *q = &b[16 + 32 * c];
    int sc1, m1, sc2, m2;
    Q4KScaleMin(2 * c, kScales12, &sc1, &m1);
    Q4KScaleMin(2 * c + 1, kScales12, &sc2, &m2);
    for (int l = 0; l < 32; l++) {
      want[64 * c + l] = 0.5f * sc1 * (q[l] & 15) - 0.125f * m1;
      want[64 * c + 32 + l] = 0.5f * sc2 * (q[l] >> 4) - 0.125f * m2;
    }
  }
  std::vector<float> y = Dequant(M64_GGML_Q4_K, b, 256);
  ExpectSame(y, want, "Q4_K");
  // Sub-block 0: scale 0xc5 & 63 = 5, min 0x6e & 63 = 46; qs[0] = 11.
  EXPECT_EQ(y[0], 0.5f * 5 * 11 - 0.125f * 46);
  // Sub-block 4: scale (0x5c & 15) | (0xc5 >> 6) << 4 = 12 | 48 = 60,
  //              min (0x5c >> 4) | (0x6e >> 6) << 4 = 5 | 16 = 21; qs[64] low nibble.
  EXPECT_EQ(y[128], 0.5f * 60 * ((64 * 53 + 11) & 15) - 0.125f * 21);
}

// Q5_K: d @0, dmin @2, scales[12] @4, qh[32] @16, qs[128] @48.
TEST(RefLayout, Q5_K) {
  std::vector<uint8_t> b(176);
  PutF16(&b[0], kQuarter);
  PutF16(&b[2], kHalf);
  memcpy(&b[4], kScales12, 12);
  for (int k = 0; k < 32; k++) b[16 + k] = (uint8_t)(k * 71 + 3);
  for (int k = 0; k < 128; k++) b[48 + k] = (uint8_t)(k * 53 + 11);
  const uint8_t *qh = &b[16];
  std::vector<float> want(256);
  for (int c = 0; c < 4; c++) {
    const uint8_t *q = &b[48 + 32 * c];
    int sc1, m1, sc2, m2;
    Q4KScaleMin(2 * c, kScales12, &sc1, &m1);
    Q4KScaleMin(2 * c + 1, kScales12, &sc2, &m2);
    uint8_t u1 = (uint8_t)(1 << (2 * c)), u2 = (uint8_t)(2 << (2 * c));
    for (int l = 0; l < 32; l++) {
      want[64 * c + l] = 0.25f * sc1 * ((q[l] & 15) + (qh[l] & u1 ? 16 : 0)) - 0.5f * m1;
      want[64 * c + 32 + l] = 0.25f * sc2 * ((q[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - 0.5f * m2;
    }
  }
  std::vector<float> y = Dequant(M64_GGML_Q5_K, b, 256);
  ExpectSame(y, want, "Q5_K");
  // Element 0: qh[0] = 3 has bit 0 -> q = 11 + 16.
  EXPECT_EQ(y[0], 0.25f * 5 * 27 - 0.5f * 46);
}

// Q6_K: ql[128] @0, qh[64] @128, int8 scales[16] @192, d @208.
TEST(RefLayout, Q6_K) {
  std::vector<uint8_t> b(210);
  for (int k = 0; k < 128; k++) b[k] = (uint8_t)(k * 23 + 5);
  for (int k = 0; k < 64; k++) b[128 + k] = (uint8_t)(k * 41 + 9);
  for (int i = 0; i < 16; i++) b[192 + i] = (uint8_t)(int8_t)(i * 17 - 100);
  PutF16(&b[208], kSixteenth);
  const float d = 0.0625f;
  std::vector<float> want(256);
  for (int h = 0; h < 2; h++) {
    const uint8_t *ql = &b[64 * h], *qh = &b[128 + 32 * h];
    const int8_t *sc = (const int8_t *)&b[192 + 8 * h];
    for (int l = 0; l < 32; l++) {
      int is = l / 16;
      int q1 = ((ql[l] & 15) | (((qh[l] >> 0) & 3) << 4)) - 32;
      int q2 = ((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) - 32;
      int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      want[128 * h + l] = d * sc[is] * q1;
      want[128 * h + l + 32] = d * sc[is + 2] * q2;
      want[128 * h + l + 64] = d * sc[is + 4] * q3;
      want[128 * h + l + 96] = d * sc[is + 6] * q4;
    }
  }
  std::vector<float> y = Dequant(M64_GGML_Q6_K, b, 256);
  ExpectSame(y, want, "Q6_K");
  // Element 0: ql[0] = 5, qh[0] = 9 -> low 2 bits 1: q = 5 | 16 = 21 - 32 = -11; scale -100.
  EXPECT_EQ(y[0], 0.0625f * -100 * -11);
}

// IQ4_XS: d @0, u16 scales_h @2, scales_l[4] @4, qs[128] @8.
TEST(RefLayout, IQ4_XS) {
  std::vector<uint8_t> b(136);
  PutF16(&b[0], kHalf);
  const uint16_t scales_h = 0xa5c3;
  PutF16(&b[2], scales_h);
  const uint8_t scales_l[4] = {0x1f, 0xe2, 0x73, 0x48};
  memcpy(&b[4], scales_l, 4);
  for (int k = 0; k < 128; k++) b[8 + k] = (uint8_t)(k * 19 + 2);
  std::vector<float> want(256);
  for (int ib = 0; ib < 8; ib++) {
    int ls = ((scales_l[ib / 2] >> 4 * (ib % 2)) & 15) | (((scales_h >> 2 * ib) & 3) << 4);
    float dl = 0.5f * (ls - 32);
    const uint8_t *qs = &b[8 + 16 * ib];
    for (int j = 0; j < 16; j++) {
      want[32 * ib + j] = dl * kLevels[qs[j] & 15];
      want[32 * ib + 16 + j] = dl * kLevels[qs[j] >> 4];
    }
  }
  std::vector<float> y = Dequant(M64_GGML_IQ4_XS, b, 256);
  ExpectSame(y, want, "IQ4_XS");
  // Sub-block 0: ls = 0xf | (0xc3 & 3) << 4 = 63 -> dl = 15.5; qs[0] = 2 -> level -83.
  EXPECT_EQ(y[0], 15.5f * -83);
}

// ------------------------------------------------------------------ round trips

// Rows of 256 elements (one super-block, eight 32-blocks) of several kinds.
std::vector<float> TestRows(int *n_bell_rows) {
  std::vector<float> x;
  uint64_t state = 0x1234567;
  auto uniform = [&state]() {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((state >> 40) + 0.5) / 16777216.0f;
  };
  auto bell = [&]() { return (uniform() + uniform() + uniform() + uniform() - 2.0f) * 1.7320508f; };
  const float scales[] = {0.06f, 0.02f, 0.2f, 1.0f, 10.0f, 1e-3f};
  for (float s : scales)  // bell-shaped, like the generator's weights, at several scales
    for (int r = 0; r < 8; r++)
      for (int i = 0; i < 256; i++) x.push_back(bell() * s);
  *n_bell_rows = (int)(x.size() / 256);
  for (int i = 0; i < 256; i++) x.push_back(bell() * (i < 128 ? 0.001f : 1.0f));  // mixed scales
  for (int i = 0; i < 256; i++) x.push_back(std::fabs(bell()) * 0.1f);  // all positive
  for (int i = 0; i < 256; i++) x.push_back(-std::fabs(bell()) * 0.1f);  // all negative
  for (int i = 0; i < 256; i++) x.push_back(0.37f);                     // constant
  for (int i = 0; i < 256; i++) x.push_back(-0.37f);
  for (int i = 0; i < 256; i++) x.push_back(i == 77 ? -3.0f : 0.0f);    // one spike
  for (int i = 0; i < 256; i++) x.push_back(bell() * 0.05f * (i == 200 ? 40.0f : 1.0f));  // outlier
  for (int i = 0; i < 256; i++) x.push_back((float)(i % 16) - 7.5f);    // a staircase
  for (int i = 0; i < 256; i++) x.push_back(0.0f);                      // zeros (last)
  return x;
}

class RefRoundTrip : public ::testing::TestWithParam<uint32_t> {};

TEST_P(RefRoundTrip, WithinBounds) {
  const uint32_t type = GetParam();
  int n_bell = 0;
  std::vector<float> x = TestRows(&n_bell);
  const size_t n = x.size();
  std::vector<uint8_t> bytes(m64_ref_row_bytes(type, n));
  ASSERT_FALSE(bytes.empty());
  ASSERT_EQ(m64_ref_quantize_row(type, x.data(), bytes.data(), n), 0);
  std::vector<float> y(n, NAN);
  ASSERT_EQ(m64_ref_dequantize_row(type, bytes.data(), y.data(), n), 0);

  const uint32_t block = BoundBlock(type);
  double worst = 0;  // largest error as a fraction of its bound
  for (size_t b = 0; b < n; b += block) {
    double amax = 0;
    for (size_t k = b; k < b + block; k++) amax = std::max(amax, (double)std::fabs(x[k]));
    for (size_t k = b; k < b + block; k++) {
      ASSERT_TRUE(std::isfinite(y[k])) << "element " << k;
      double err = std::fabs((double)y[k] - x[k]), bound = ElemBound(type, amax, x[k]);
      ASSERT_LE(err, bound) << "element " << k << " x " << x[k] << " y " << y[k];
      if (bound > 0) worst = std::max(worst, err / bound);
    }
  }
  // Bell-shaped rows: relative RMS error, row by row (the scales differ by 10^4).
  double rel_sum = 0;
  for (int r = 0; r < n_bell; r++) {
    double e2 = 0, v2 = 0;
    for (size_t k = 256 * (size_t)r; k < 256 * (size_t)(r + 1); k++) {
      e2 += ((double)y[k] - x[k]) * ((double)y[k] - x[k]);
      v2 += (double)x[k] * x[k];
    }
    rel_sum += e2 / v2;
  }
  double rel_rms = std::sqrt(rel_sum / n_bell);
  printf("%-7s relative RMS error %.4f (bound %.4f); worst element at %.2f of its bound\n",
         m64_ggml_type_info(type).name, rel_rms, RmsBound(type), worst);
  EXPECT_LE(rel_rms, RmsBound(type));
  // All-zero input comes back as exact zeros.
  for (size_t k = n - 256; k < n; k++) ASSERT_EQ(y[k], 0.0f) << "zero block element " << k;
  // Quantizing is deterministic.
  std::vector<uint8_t> again(bytes.size());
  ASSERT_EQ(m64_ref_quantize_row(type, x.data(), again.data(), n), 0);
  EXPECT_EQ(again, bytes);
}

INSTANTIATE_TEST_SUITE_P(AllTypes, RefRoundTrip,
                         ::testing::Values(M64_GGML_F32, M64_GGML_F16, M64_GGML_BF16,
                                           M64_GGML_Q8_0, M64_GGML_Q4_0, M64_GGML_Q4_1,
                                           M64_GGML_Q5_0, M64_GGML_Q5_1, M64_GGML_IQ4_NL,
                                           M64_GGML_Q2_K, M64_GGML_Q3_K, M64_GGML_Q4_K,
                                           M64_GGML_Q5_K, M64_GGML_Q6_K, M64_GGML_IQ4_XS),
                         [](const ::testing::TestParamInfo<uint32_t> &info) {
                           return std::string(m64_ggml_type_info(info.param).name);
                         });

}  // namespace
