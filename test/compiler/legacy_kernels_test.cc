// legacy_kernels_test.cc — the Q4_1, Q5_0, Q5_1, IQ4_NL and BF16 kernels against scalar
// references written here from the ggml layouts: dequantization bit-exact, and matvec
// against llama.cpp's formulas on the activation as the type consumes it (Q8_0 blocks for
// Q5_0/IQ4_NL, Q8_1 blocks for Q4_1/Q5_1, bf16-rounded floats for BF16).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels_native.h"
#include "half_ref.h"
#include "m64_formats.h"

namespace {

// ---------------------------------------------------------------- scalar references
uint32_t u32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
float bits_f32(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
uint32_t f32_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }

// a*b + c with the product rounded first (no FMA contraction, as the wasm kernels compute)
float mul_add(float a, float b, float c) {
  volatile float p = a * b;
  return p + c;
}

const int kIq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

struct TypeDesc { uint32_t type; uint32_t block_bytes; bool has_min; const char *name; };
const TypeDesc kQuantTypes[] = {
    {M64_GGML_Q4_1, 20, true, "Q4_1"},
    {M64_GGML_Q5_0, 22, false, "Q5_0"},
    {M64_GGML_Q5_1, 24, true, "Q5_1"},
    {M64_GGML_IQ4_NL, 18, false, "IQ4_NL"},
};
const TypeDesc &desc(uint32_t type) {
  for (const auto &d : kQuantTypes)
    if (d.type == type) return d;
  static const TypeDesc bf16{M64_GGML_BF16, 2, false, "BF16"};
  return bf16;
}

// Block scale, min and element j's quant value (offsets and tables applied), from the bytes.
float blk_d(const uint8_t *b) { return half_ref(rd16(b)); }
float blk_m(uint32_t type, const uint8_t *b) { return desc(type).has_min ? half_ref(rd16(b + 2)) : 0.f; }
int blk_q(uint32_t type, const uint8_t *b, int j) {
  switch (type) {
    case M64_GGML_Q4_1: { uint8_t byte = b[4 + j % 16]; return j < 16 ? byte & 15 : byte >> 4; }
    case M64_GGML_IQ4_NL: { uint8_t byte = b[2 + j % 16]; return kIq4nl[j < 16 ? byte & 15 : byte >> 4]; }
    case M64_GGML_Q5_0:
    case M64_GGML_Q5_1: {
      const uint8_t *qh = b + (type == M64_GGML_Q5_0 ? 2 : 4), *qs = qh + 4;
      uint8_t byte = qs[j % 16];
      int q = (j < 16 ? byte & 15 : byte >> 4) | (int)((u32(qh) >> j) & 1) << 4;
      return type == M64_GGML_Q5_0 ? q - 16 : q;
    }
  }
  ADD_FAILURE() << "type " << type;
  return 0;
}

std::vector<float> dequant_ref(uint32_t type, const uint8_t *w, size_t n) {
  std::vector<float> out(n);
  if (type == M64_GGML_BF16) {
    for (size_t i = 0; i < n; i++) out[i] = bits_f32((uint32_t)rd16(w + 2 * i) << 16);
    return out;
  }
  const TypeDesc &t = desc(type);
  for (size_t b = 0; b < n / 32; b++) {
    const uint8_t *blk = w + b * t.block_bytes;
    for (int j = 0; j < 32; j++) {
      float v = blk_d(blk) * (float)blk_q(type, blk, j);
      out[b * 32 + j] = t.has_min ? mul_add(blk_d(blk), (float)blk_q(type, blk, j), blk_m(type, blk)) : v;
    }
  }
  return out;
}

// llama.cpp's fp32 -> bf16: round to nearest even, NaN made quiet.
float round_bf16(float f) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7fffffff) > 0x7f800000) return bits_f32((u | 0x00400000) & 0xffff0000u);
  return bits_f32(((u + 0x7fff + ((u >> 16) & 1)) >> 16) << 16);
}

// Q8_0 / Q8_1 activation blocks: d = amax/127 (f32), q = round-half-even(x / d),
// stored d = f16(d); Q8_1 adds s = f16(d * sum(q)) with the f32 d.
struct Q8Block { float d, s; int q[32]; };
std::vector<Q8Block> quantize_q8_ref(const std::vector<float> &x) {
  std::vector<Q8Block> out(x.size() / 32);
  for (size_t b = 0; b < out.size(); b++) {
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    int sum = 0;
    for (int j = 0; j < 32; j++) {
      float v = x[b * 32 + j] * id;
      out[b].q[j] = (int)std::nearbyint(v);
      sum += out[b].q[j];
    }
    out[b].d = half_ref(kn_f32_to_f16(d));
    out[b].s = half_ref(kn_f32_to_f16((float)sum * d));
  }
  return out;
}

// Reference matvec row: llama.cpp's vec_dot on the consumed activation, in double, and the
// sum of the magnitudes of its terms (the scale of f32 rounding).
struct RefDot { double v, mag; };
RefDot dot_ref(uint32_t type, const uint8_t *row, const std::vector<float> &x, const std::vector<float> &xbf,
               const std::vector<Q8Block> &xq, uint32_t cols) {
  RefDot r{0, 0};
  if (type == M64_GGML_BF16) {
    std::vector<float> w = dequant_ref(type, row, cols);
    for (uint32_t j = 0; j < cols; j++) {
      double t = (double)w[j] * xbf[j];
      r.v += t, r.mag += std::fabs(t);
    }
    return r;
  }
  (void)x;
  const TypeDesc &t = desc(type);
  for (uint32_t b = 0; b < cols / 32; b++) {
    const uint8_t *blk = row + b * t.block_bytes;
    double dd = (double)blk_d(blk) * xq[b].d;
    for (int j = 0; j < 32; j++) {
      double term = dd * blk_q(type, blk, j) * xq[b].q[j];
      r.v += term, r.mag += std::fabs(term);
    }
    if (t.has_min) {
      double term = (double)blk_m(type, blk) * xq[b].s;
      r.v += term, r.mag += std::fabs(term);
    }
  }
  return r;
}

// ---------------------------------------------------------------- random data
const float kScales[] = {0.f, 1e-6f, 3e-3f, 0.02f, 0.7f, 1.f, 60000.f};
float scales_pick(std::mt19937 &rng) {
  float v = kScales[rng() % 7];
  return rng() & 1 ? -v : v;
}

std::vector<uint8_t> random_weights(uint32_t type, size_t n, std::mt19937 &rng) {
  if (type == M64_GGML_BF16) {
    std::vector<uint8_t> w(2 * n);
    std::normal_distribution<float> g(0.f, 1.f);
    for (size_t i = 0; i < n; i++) {
      float v = g(rng) * std::ldexp(1.0f, (int)(rng() % 41) - 20);
      if (i % 29 == 7) v = 0.f;
      if (i % 31 == 11) v = std::ldexp(1.0f, -130);  // a subnormal
      uint16_t h = (uint16_t)(f32_bits(round_bf16(v)) >> 16);
      w[2 * i] = (uint8_t)h, w[2 * i + 1] = (uint8_t)(h >> 8);
    }
    return w;
  }
  const TypeDesc &t = desc(type);
  std::vector<uint8_t> w(n / 32 * t.block_bytes);
  for (size_t b = 0; b < n / 32; b++) {
    uint8_t *blk = &w[b * t.block_bytes];
    for (uint32_t k = 0; k < t.block_bytes; k++) blk[k] = (uint8_t)rng();
    float d = scales_pick(rng);
    uint16_t dh = kn_f32_to_f16(d);
    blk[0] = (uint8_t)dh, blk[1] = (uint8_t)(dh >> 8);
    if (t.has_min) {
      uint16_t mh = kn_f32_to_f16(scales_pick(rng));
      blk[2] = (uint8_t)mh, blk[3] = (uint8_t)(mh >> 8);
    }
    if (b % 11 == 5) std::memset(blk + (t.has_min ? 4 : 2), 0, t.block_bytes - (t.has_min ? 4 : 2));
    if (b % 13 == 9) std::memset(blk, 0, t.block_bytes);
  }
  return w;
}

std::vector<float> random_activation(uint32_t cols, std::mt19937 &rng) {
  std::normal_distribution<float> g(0.f, 1.f);
  std::vector<float> x(cols);
  for (auto &v : x) v = g(rng);
  x[0] = 0.f;
  if (cols >= 64) std::fill(x.begin() + 32, x.begin() + 64, 0.f);      // an all-zero block
  if (cols >= 96) for (int j = 64; j < 96; j++) x[j] *= 1e-3f;          // a small block
  if (cols >= 128) for (int j = 96; j < 128; j++) x[j] *= 300.f;        // a large block
  if (cols >= 160) x[130] = 40.f;                                       // one dominant value
  return x;
}

std::string type_name(uint32_t type) { return desc(type).name; }

// ---------------------------------------------------------------- tests
const uint32_t kAllTypes[] = {M64_GGML_Q4_1, M64_GGML_Q5_0, M64_GGML_Q5_1, M64_GGML_IQ4_NL, M64_GGML_BF16};

TEST(LegacyKernels, TypesAreInTheKernelTable) {
  for (uint32_t t : kAllTypes) EXPECT_TRUE(kn_supported(t)) << type_name(t);
}

TEST(LegacyKernels, BlockSizesMatchFormats) {
  for (uint32_t t : kAllTypes) {
    m64_type_info ti = m64_ggml_type_info(t);
    EXPECT_EQ(ti.block_bytes, desc(t).block_bytes) << type_name(t);
    EXPECT_EQ(ti.block_elems, t == M64_GGML_BF16 ? 1u : 32u) << type_name(t);
  }
}

TEST(LegacyKernels, DequantRowsMatchReferenceExactly) {
  std::mt19937 rng(11);
  for (uint32_t t : kAllTypes) {
    for (uint32_t n : {32u, 256u, 4096u}) {
      std::vector<uint8_t> w = random_weights(t, n, rng);
      std::vector<float> got(n, -1.f), ref = dequant_ref(t, w.data(), n);
      kn_dequant_row(t, got.data(), w.data(), n);
      for (uint32_t i = 0; i < n; i++)
        ASSERT_EQ(f32_bits(got[i]), f32_bits(ref[i])) << type_name(t) << " n=" << n << " i=" << i << ": " << got[i] << " vs " << ref[i];
    }
  }
  // BF16 rows of any length (no blocks)
  for (uint32_t n : {1u, 7u, 13u, 100u}) {
    std::vector<uint8_t> w = random_weights(M64_GGML_BF16, n, rng);
    std::vector<float> got(n), ref = dequant_ref(M64_GGML_BF16, w.data(), n);
    kn_dequant_row(M64_GGML_BF16, got.data(), w.data(), n);
    for (uint32_t i = 0; i < n; i++) ASSERT_EQ(f32_bits(got[i]), f32_bits(ref[i])) << n << " " << i;
  }
}

// Every value of a nibble / 5-bit quant decodes to its own level, in every position.
TEST(LegacyKernels, DequantCoversEveryQuantInEveryPosition) {
  for (uint32_t t : {M64_GGML_Q4_1, M64_GGML_Q5_0, M64_GGML_Q5_1, M64_GGML_IQ4_NL}) {
    const TypeDesc &d = desc(t);
    const int levels = (t == M64_GGML_Q5_0 || t == M64_GGML_Q5_1) ? 32 : 16;
    for (int shift = 0; shift < levels; shift++) {
      std::vector<uint8_t> blk(d.block_bytes, 0);
      blk[0] = 0x00, blk[1] = 0x3c;                    // d = 1
      if (d.has_min) blk[2] = 0x00, blk[3] = 0xc0;     // m = -2
      uint32_t qh = 0;
      uint8_t *qs = blk.data() + (d.has_min ? 4 : 2) + (levels == 32 ? 4 : 0);
      for (int j = 0; j < 32; j++) {
        int q = (j + shift) % levels;
        qs[j % 16] |= (uint8_t)((q & 15) << (j < 16 ? 0 : 4));
        qh |= (uint32_t)(q >> 4) << j;
      }
      if (levels == 32) std::memcpy(qs - 4, &qh, 4);
      float got[32];
      kn_dequant_row(t, got, blk.data(), 32);
      for (int j = 0; j < 32; j++) {
        int q = (j + shift) % levels;
        float want = t == M64_GGML_IQ4_NL ? (float)kIq4nl[q] : t == M64_GGML_Q5_0 ? (float)(q - 16)
                   : (float)q - 2.f;
        ASSERT_EQ(got[j], want) << type_name(t) << " j=" << j << " q=" << q;
      }
    }
  }
}

// The scalar Q8 reference agrees with the module's Q8_0 quantizer byte for byte.
TEST(LegacyKernels, ReferenceQ8MatchesModuleQuantizer) {
  std::mt19937 rng(5);
  std::vector<float> x = random_activation(4096, rng);
  std::vector<Q8Block> ref = quantize_q8_ref(x);
  std::vector<uint8_t> xq(4096 / 32 * 34);
  kn_quantize_q8_0(xq.data(), x.data(), 4096);
  for (size_t b = 0; b < ref.size(); b++) {
    ASSERT_EQ(half_ref(rd16(&xq[34 * b])), ref[b].d) << b;
    for (int j = 0; j < 32; j++) ASSERT_EQ((int)(int8_t)xq[34 * b + 2 + j], ref[b].q[j]) << b << " " << j;
  }
}

struct LegacyCase { uint32_t type, rows, cols; };

class LegacyMatvec : public ::testing::TestWithParam<LegacyCase> {};

TEST_P(LegacyMatvec, MatchesLlamaCppFormulaOnConsumedActivation) {
  const LegacyCase c = GetParam();
  std::mt19937 rng(c.type * 7919 + c.rows * 31 + c.cols);
  std::vector<uint8_t> w = random_weights(c.type, (size_t)c.rows * c.cols, rng);
  std::vector<float> x = random_activation(c.cols, rng), out(c.rows, NAN);
  kn_matvec(c.type, out.data(), w.data(), x.data(), c.rows, c.cols);
  std::vector<float> xbf(x);
  for (auto &v : xbf) v = round_bf16(v);
  std::vector<Q8Block> xq;
  if (c.type != M64_GGML_BF16) xq = quantize_q8_ref(x);
  const size_t row_bytes = c.type == M64_GGML_BF16 ? 2 * c.cols : c.cols / 32 * desc(c.type).block_bytes;
  for (uint32_t r = 0; r < c.rows; r++) {
    RefDot ref = dot_ref(c.type, w.data() + r * row_bytes, x, xbf, xq, c.cols);
    ASSERT_NEAR(out[r], ref.v, 1e-5 * ref.mag + 1e-30) << type_name(c.type) << " row " << r;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Legacy, LegacyMatvec,
    ::testing::Values(
        LegacyCase{M64_GGML_Q4_1, 7, 64}, LegacyCase{M64_GGML_Q4_1, 5, 96}, LegacyCase{M64_GGML_Q4_1, 3, 32},
        LegacyCase{M64_GGML_Q4_1, 16, 4096}, LegacyCase{M64_GGML_Q4_1, 3, 11008},
        LegacyCase{M64_GGML_Q5_0, 7, 64}, LegacyCase{M64_GGML_Q5_0, 5, 96}, LegacyCase{M64_GGML_Q5_0, 3, 32},
        LegacyCase{M64_GGML_Q5_0, 16, 4096}, LegacyCase{M64_GGML_Q5_0, 3, 11008},
        LegacyCase{M64_GGML_Q5_1, 7, 64}, LegacyCase{M64_GGML_Q5_1, 5, 96}, LegacyCase{M64_GGML_Q5_1, 3, 32},
        LegacyCase{M64_GGML_Q5_1, 16, 4096}, LegacyCase{M64_GGML_Q5_1, 3, 11008},
        LegacyCase{M64_GGML_IQ4_NL, 7, 64}, LegacyCase{M64_GGML_IQ4_NL, 5, 96}, LegacyCase{M64_GGML_IQ4_NL, 3, 32},
        LegacyCase{M64_GGML_IQ4_NL, 16, 4096}, LegacyCase{M64_GGML_IQ4_NL, 3, 11008},
        LegacyCase{M64_GGML_BF16, 7, 64}, LegacyCase{M64_GGML_BF16, 5, 13}, LegacyCase{M64_GGML_BF16, 4, 100},
        LegacyCase{M64_GGML_BF16, 16, 4096}, LegacyCase{M64_GGML_BF16, 3, 11008}),
    [](const ::testing::TestParamInfo<LegacyCase> &i) {
      return type_name(i.param.type) + "_" + std::to_string(i.param.rows) + "x" + std::to_string(i.param.cols);
    });

// Q8_1's s term: with d_w = 0 and m_w = 1 a row's dot is the sum of the activation blocks'
// s = f16(d * sum(q)) from the f32 d (not the f16 d, which would differ in the low bits).
TEST(LegacyKernels, MinTermUsesQ8_1BlockSums) {
  std::mt19937 rng(17);
  const uint32_t cols = 4096;
  std::vector<float> x = random_activation(cols, rng);
  for (auto &v : x) v += 0.3f;  // sums of q far from zero
  std::vector<Q8Block> xq = quantize_q8_ref(x);
  for (uint32_t t : {M64_GGML_Q4_1, M64_GGML_Q5_1}) {
    const TypeDesc &d = desc(t);
    std::vector<uint8_t> w(cols / 32 * d.block_bytes);
    for (size_t b = 0; b < cols / 32; b++) {
      uint8_t *blk = &w[b * d.block_bytes];
      for (uint32_t k = 4; k < d.block_bytes; k++) blk[k] = (uint8_t)rng();
      blk[0] = blk[1] = 0, blk[2] = 0x00, blk[3] = 0x3c;  // d = 0, m = 1
    }
    float out = NAN;
    kn_matvec(t, &out, w.data(), x.data(), 1, cols);
    double want = 0, mag = 0;
    for (const auto &blk : xq) want += blk.s, mag += std::fabs(blk.s);
    EXPECT_NEAR(out, want, 2e-7 * mag) << type_name(t);
  }
}

// BF16 activations round to nearest even with quiet NaNs: with all-ones weights and one
// nonzero activation element the output is exactly that element rounded (through the
// vector rounding in lanes 0..7 and the scalar tail at 8).
TEST(LegacyKernels, Bf16ActivationRoundsToNearestEven) {
  const float specials[] = {bits_f32(0x3f808000), bits_f32(0x3f818000), bits_f32(0x3f808001), bits_f32(0xbf807fff),
                            bits_f32(0x7f7fffff), bits_f32(0x00018000), bits_f32(0x80008000), 1.0f / 3, -2.5e-30f,
                            bits_f32(0x7fa00000), INFINITY, -INFINITY, -0.f, 65504.f, 3.0e38f, bits_f32(0x40490fdb)};
  const uint32_t cols = 9;
  std::vector<uint8_t> w(2 * cols);
  for (uint32_t j = 0; j < cols; j++) w[2 * j] = 0x80, w[2 * j + 1] = 0x3f;  // 1.0
  int k = 0;
  for (float s : specials) {
    for (uint32_t pos = 0; pos < cols; pos++, k++) {
      std::vector<float> x(cols, 0.f);
      x[pos] = s;
      float out = 0;
      kn_matvec(M64_GGML_BF16, &out, w.data(), x.data(), 1, cols);
      float want = round_bf16(s);
      if (std::isnan(want)) {
        EXPECT_TRUE(std::isnan(out)) << s << " at " << pos;
        continue;
      }
      EXPECT_EQ(f32_bits(out) & 0x7fffffffu, f32_bits(want) & 0x7fffffffu) << s << " at " << pos;
    }
  }
  // and the reference rounding itself: ties go to the even mantissa, overflow to Inf
  EXPECT_EQ(f32_bits(round_bf16(bits_f32(0x3f808000))), 0x3f800000u);
  EXPECT_EQ(f32_bits(round_bf16(bits_f32(0x3f818000))), 0x3f820000u);
  EXPECT_EQ(f32_bits(round_bf16(bits_f32(0x7f7fffff))), 0x7f800000u);
  EXPECT_EQ(f32_bits(round_bf16(bits_f32(0x7fa00000))), 0x7fe00000u);
}

}  // namespace
