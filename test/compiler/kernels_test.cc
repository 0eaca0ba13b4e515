// Every module kernel against a scalar dequantize-then-dot reference written here
// independently (ldexp-based half floats, plain loops), on random blocks including
// extreme scales and all-zero blocks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "half_ref.h"
#include "kernels_native.h"
#include "m64_formats.h"

namespace {


uint16_t put_half(std::vector<uint8_t> &buf, size_t at, uint16_t h) {
  buf[at] = (uint8_t)h;
  buf[at + 1] = (uint8_t)(h >> 8);
  return h;
}

TEST(Half, AllHalvesConvertExactlyAndRoundTrip) {
  for (uint32_t h = 0; h < 65536; h++) {
    float ref = half_ref((uint16_t)h), got = kn_f16_to_f32((uint16_t)h);
    if (std::isnan(ref)) {
      EXPECT_TRUE(std::isnan(got)) << h;
      continue;
    }
    ASSERT_EQ(std::memcmp(&ref, &got, 4), 0) << "half " << h;
    ASSERT_EQ(kn_f32_to_f16(got), h) << "round trip of half " << h;
  }
}

TEST(Half, FloatToHalfRoundsToNearestEven) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> mag(-30.f, 17.f);
  for (int i = 0; i < 200000; i++) {
    float x = std::ldexp(1.0f + (rng() & 0xffffff) / 16777216.0f, (int)mag(rng)) * (rng() & 1 ? -1 : 1);
    uint16_t h = kn_f32_to_f16(x);
    float y = half_ref(h);
    if (std::fabs(x) >= 65520.f) {
      EXPECT_TRUE(std::isinf(y)) << x;
      continue;
    }
    // no other half is closer (ties: the even mantissa)
    for (int d = -1; d <= 1; d += 2) {
      uint16_t n = (uint16_t)(h + d);
      if ((n & 0x7c00) == 0x7c00 || ((h & 0x7fff) == 0 && d < 0)) continue;
      float z = half_ref(n);
      float ey = std::fabs(y - x), ez = std::fabs(z - x);
      ASSERT_TRUE(ey < ez || (ey == ez && (h & 1) == 0)) << x << " -> " << y << " vs " << z;
    }
  }
}

// The SIMD rounding through f16 (attention's value sums) against the scalar conversions,
// bit for bit: every exponent with random mantissas, both signs, and the edges (the
// subnormal and overflow thresholds, infinities, NaNs).
TEST(Half, SimdRoundThroughHalfEqualsScalar) {
  std::mt19937 rng(11);
  std::vector<uint32_t> bits = {0u, 0x80000000u, 0x38800000u, 0x387fffffu, 0x33000000u, 0x33000001u,
                                0x32ffffffu, 0x477ff000u, 0x477fefffu, 0x477fe000u, 0x7f800000u,
                                0xff800000u, 0x7f800001u, 0x7fc00000u, 0xffc12345u, 0x7fffffffu};
  for (uint32_t e = 0; e < 256; e++)
    for (int i = 0; i < 4000; i++) {
      const uint32_t m = rng() & 0x7fffff, tie = (i & 3) == 0 ? (m & ~0x1fffu) | 0x1000u : m;
      bits.push_back(e << 23 | tie | (rng() & 1u) << 31);
    }
  // the module's integer sequence, and a native host's m64.f16_round (F16C/FCVT), which
  // equals it for every value but NaNs (there: a NaN too)
  for (int native : {0, 1}) {
    if (native && !kn_set_f16_native(1)) break;
    for (size_t i = 0; i + 4 <= bits.size(); i += 4) {
      float x[4], got[4];
      std::memcpy(x, &bits[i], 16);
      kn_round_f16x4(got, x);
      for (int k = 0; k < 4; k++) {
        const float want = kn_f16_to_f32(kn_f32_to_f16(x[k]));
        if (native && std::isnan(want)) {
          ASSERT_TRUE(std::isnan(got[k])) << std::hex << "bits 0x" << bits[i + k];
          continue;
        }
        ASSERT_EQ(std::memcmp(&want, &got[k], 4), 0) << std::hex << "bits 0x" << bits[i + k] << " native " << native;
      }
    }
  }
  kn_set_f16_native(0);
}

// Every f16 value widened eight at a time: the integer sequence and m64.f16_widen_lo/hi
// give the scalar table's f32 (NaNs: a NaN).
TEST(Half, SimdWidenEqualsScalarForEveryHalf) {
  for (int native : {0, 1}) {
    if (native && !kn_set_f16_native(1)) break;
    for (uint32_t h0 = 0; h0 < 65536; h0 += 8) {
      uint16_t h[8];
      float got[8];
      for (int k = 0; k < 8; k++) h[k] = (uint16_t)(h0 + k);
      kn_f16x8_to_f32x8(got, h);
      for (int k = 0; k < 8; k++) {
        const float want = kn_f16_to_f32(h[k]);
        if (std::isnan(want)) {
          ASSERT_TRUE(std::isnan(got[k])) << std::hex << "0x" << h[k];
          continue;
        }
        ASSERT_EQ(std::memcmp(&want, &got[k], 4), 0) << std::hex << "0x" << h[k] << " native " << native;
      }
    }
  }
  kn_set_f16_native(0);
}

// Reference dequantization, block by block, straight from the ggml layouts.
std::vector<float> dequant_ref(uint32_t type, const std::vector<uint8_t> &w, size_t n) {
  std::vector<float> out(n);
  for (size_t i = 0; i < n; i++) {
    switch (type) {
      case M64_GGML_F32: std::memcpy(&out[i], &w[4 * i], 4); break;
      case M64_GGML_F16: out[i] = half_ref((uint16_t)(w[2 * i] | w[2 * i + 1] << 8)); break;
      case M64_GGML_Q8_0: {
        size_t b = i / 32, j = i % 32;
        float d = half_ref((uint16_t)(w[34 * b] | w[34 * b + 1] << 8));
        out[i] = d * (float)(int8_t)w[34 * b + 2 + j];
        break;
      }
      case M64_GGML_Q4_0: {
        size_t b = i / 32, j = i % 32;
        float d = half_ref((uint16_t)(w[18 * b] | w[18 * b + 1] << 8));
        uint8_t byte = w[18 * b + 2 + (j % 16)];
        int q = j < 16 ? (byte & 15) : (byte >> 4);
        out[i] = d * (float)(q - 8);
        break;
      }
    }
  }
  return out;
}

struct Case { uint32_t type; uint32_t rows, cols; };

// Random weights of `type`: random quants, scales from tiny to large, some zero blocks.
std::vector<uint8_t> random_weights(uint32_t type, size_t n, std::mt19937 &rng) {
  m64_type_info ti = m64_ggml_type_info(type);
  size_t blocks = n / ti.block_elems;
  std::vector<uint8_t> w(blocks * ti.block_bytes);
  std::normal_distribution<float> g(0.f, 1.f);
  if (type == M64_GGML_F32) {
    for (size_t i = 0; i < n; i++) { float v = g(rng); std::memcpy(&w[4 * i], &v, 4); }
    return w;
  }
  if (type == M64_GGML_F16) {
    for (size_t i = 0; i < n; i++) put_half(w, 2 * i, kn_f32_to_f16(g(rng)));
    return w;
  }
  static const float scales[] = {0.f, 1e-6f, 3e-3f, 0.02f, 1.f, 60000.f};
  for (size_t b = 0; b < blocks; b++) {
    uint8_t *blk = &w[b * ti.block_bytes];
    for (uint32_t k = 2; k < ti.block_bytes; k++) blk[k] = (uint8_t)rng();
    float d = b % 7 == 3 ? 0.f : scales[rng() % 6] * (rng() & 1 ? -1.f : 1.f);
    put_half(w, b * ti.block_bytes, kn_f32_to_f16(d));
    if (b % 11 == 5) std::memset(blk + 2, type == M64_GGML_Q4_0 ? 0x88 : 0, ti.block_bytes - 2);
  }
  return w;
}

class Kernels : public ::testing::TestWithParam<Case> {};

TEST_P(Kernels, MatvecMatchesScalarReference) {
  const Case c = GetParam();
  std::mt19937 rng(c.type * 1000 + c.rows);
  std::vector<uint8_t> w = random_weights(c.type, (size_t)c.rows * c.cols, rng);
  std::vector<float> x(c.cols), out(c.rows);
  std::normal_distribution<float> g(0.f, 1.f);
  for (auto &v : x) v = g(rng);
  x[0] = 0.f;  // an exact zero, and one all-zero activation block below
  if (c.cols >= 64) std::fill(x.begin() + 32, x.begin() + 64, 0.f);
  kn_matvec(c.type, out.data(), w.data(), x.data(), c.rows, c.cols);

  // The activation as the kernel's type consumes it (llama.cpp's scheme):
  std::vector<float> xa(x);
  if (c.type == M64_GGML_F16)
    for (auto &v : xa) v = half_ref(kn_f32_to_f16(v));
  if (c.type == M64_GGML_Q8_0 || c.type == M64_GGML_Q4_0) {
    std::vector<uint8_t> xq(c.cols / 32 * 34);
    kn_quantize_q8_0(xq.data(), x.data(), c.cols);
    xa = dequant_ref(M64_GGML_Q8_0, xq, c.cols);
    // and the quantized activation is within half a step of x
    for (uint32_t i = 0; i < c.cols; i++) {
      float amax = 0;
      for (uint32_t j = i / 32 * 32; j < i / 32 * 32 + 32; j++) amax = std::max(amax, std::fabs(x[j]));
      ASSERT_LE(std::fabs(xa[i] - x[i]), amax / 127.f * 0.5f + amax * 1e-3f) << i;
    }
  }
  std::vector<float> wd = dequant_ref(c.type, w, (size_t)c.rows * c.cols);
  for (uint32_t r = 0; r < c.rows; r++) {
    double ref = 0, mag = 0;
    for (uint32_t j = 0; j < c.cols; j++) {
      ref += (double)wd[(size_t)r * c.cols + j] * xa[j];
      mag += std::fabs((double)wd[(size_t)r * c.cols + j] * xa[j]);
    }
    // f32 accumulation over cols terms: relative to the sum of magnitudes
    ASSERT_NEAR(out[r], ref, 1e-5 * mag + 1e-30) << "row " << r;
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllTypes, Kernels,
    ::testing::Values(Case{M64_GGML_F32, 17, 64}, Case{M64_GGML_F32, 8, 37}, Case{M64_GGML_F32, 64, 288},
                      Case{M64_GGML_F16, 16, 64}, Case{M64_GGML_F16, 5, 13}, Case{M64_GGML_F16, 32, 768},
                      Case{M64_GGML_Q8_0, 16, 64}, Case{M64_GGML_Q8_0, 33, 4096},
                      Case{M64_GGML_Q4_0, 16, 64}, Case{M64_GGML_Q4_0, 33, 4096}),
    [](const ::testing::TestParamInfo<Case> &i) {
      return std::string(m64_ggml_type_info(i.param.type).name) + "_" + std::to_string(i.param.rows) +
             "x" + std::to_string(i.param.cols);
    });

TEST(Kernels, DequantRowsMatchReference) {
  std::mt19937 rng(3);
  for (uint32_t type : {M64_GGML_F32, M64_GGML_F16, M64_GGML_Q8_0, M64_GGML_Q4_0}) {
    std::vector<uint8_t> w = random_weights(type, 256, rng);
    std::vector<float> got(256), ref = dequant_ref(type, w, 256);
    kn_dequant_row(type, got.data(), w.data(), 256);
    for (int i = 0; i < 256; i++) ASSERT_EQ(got[i], ref[i]) << m64_ggml_type_info(type).name << " " << i;
  }
}

}  // namespace
