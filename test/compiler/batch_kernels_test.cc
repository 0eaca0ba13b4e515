// batch_kernels_test.cc — the prefill path (kernels_batch.h: each input's activation
// prepared once, then matmat over n inputs) against the matvec of each input: every
// (row, input) output bit for bit, for every kernel type, with input counts that leave
// short tiles and row counts that leave short row groups.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernel_types.h"
#include "kernels_native.h"
#include "m64_formats.h"

namespace {

struct BType {
  uint32_t id;
  const char *name;
  uint32_t block;            // elements per block
  std::vector<int> f16_at;   // byte offsets of f16 scales inside a block (quant types)
};

const std::vector<BType> &btypes() {
  static const std::vector<BType> t = {
      {M64_GGML_F32, "F32", 1, {}},           {M64_GGML_F16, "F16", 1, {}},
      {M64_GGML_BF16, "BF16", 1, {}},         {M64_GGML_Q8_0, "Q8_0", 32, {0}},
      {M64_GGML_Q4_0, "Q4_0", 32, {0}},       {M64_GGML_Q4_1, "Q4_1", 32, {0, 2}},
      {M64_GGML_Q5_0, "Q5_0", 32, {0}},       {M64_GGML_Q5_1, "Q5_1", 32, {0, 2}},
      {M64_GGML_IQ4_NL, "IQ4_NL", 32, {0}},   {M64_GGML_Q2_K, "Q2_K", 256, {80, 82}},
      {M64_GGML_Q3_K, "Q3_K", 256, {108}},    {M64_GGML_Q4_K, "Q4_K", 256, {0, 2}},
      {M64_GGML_Q5_K, "Q5_K", 256, {0, 2}},   {M64_GGML_Q6_K, "Q6_K", 256, {208}},
      {M64_GGML_IQ4_XS, "IQ4_XS", 256, {0}},
  };
  return t;
}

uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Random weights of `rows` rows: random bytes with every f16 field (scales, or whole
// elements for F16/BF16/F32) a finite value of a realistic size.
std::vector<uint8_t> random_weights(const BType &t, uint32_t rows, uint32_t cols, std::mt19937 &rng) {
  uint64_t row_bytes = 0;
  EXPECT_EQ(m64_ggml_row_bytes(t.id, cols, &row_bytes), 0);
  std::vector<uint8_t> w(row_bytes * rows);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> val(-1.0f, 1.0f);
  for (auto &b : w) b = (uint8_t)byte(rng);
  const size_t n = (size_t)rows * cols;
  if (t.id == M64_GGML_F32) {
    for (size_t i = 0; i < n; i++) {
      float f = val(rng);
      std::memcpy(&w[4 * i], &f, 4);
    }
  } else if (t.id == M64_GGML_F16 || t.id == M64_GGML_BF16) {
    for (size_t i = 0; i < n; i++) {
      const float f = val(rng);
      const uint16_t h = t.id == M64_GGML_F16 ? kn_f32_to_f16(f) : (uint16_t)(f32_bits(f) >> 16);
      w[2 * i] = (uint8_t)h;
      w[2 * i + 1] = (uint8_t)(h >> 8);
    }
  } else {
    const uint64_t block_bytes = row_bytes / (cols / t.block);
    for (size_t b = 0; b < n / t.block; b++)
      for (int at : t.f16_at) {
        const uint16_t h = kn_f32_to_f16(val(rng) * 0.05f);
        w[b * block_bytes + at] = (uint8_t)h;
        w[b * block_bytes + at + 1] = (uint8_t)(h >> 8);
      }
  }
  return w;
}

// matmat of the n inputs x against the matvec of each: bit for bit.
void compare(const BType &t, const std::vector<uint8_t> &w, const std::vector<float> &x, uint32_t rows,
             uint32_t cols, uint32_t n) {
  std::vector<float> got((size_t)n * rows, -1.0f), want((size_t)n * rows, -2.0f);
  kn_matmat(t.id, got.data(), w.data(), x.data(), rows, cols, n);
  for (uint32_t i = 0; i < n; i++)
    kn_matvec(t.id, want.data() + (size_t)i * rows, w.data(), x.data() + (size_t)i * cols, rows, cols);
  for (uint32_t i = 0; i < n; i++)
    for (uint32_t r = 0; r < rows; r++) {
      const float a = got[(size_t)i * rows + r], b = want[(size_t)i * rows + r];
      ASSERT_EQ(f32_bits(a), f32_bits(b)) << t.name << " rows " << rows << " cols " << cols << " n " << n
                                          << ": input " << i << " row " << r << ": batch " << a
                                          << ", matvec " << b;
    }
}

void check(const BType &t, uint32_t rows, uint32_t cols, uint32_t n, std::mt19937 &rng) {
  const std::vector<uint8_t> w = random_weights(t, rows, cols, rng);
  std::vector<float> x((size_t)n * cols);
  std::normal_distribution<float> g(0.0f, 1.0f);
  for (auto &v : x) v = g(rng);
  if (n > 1)  // an all-zero stretch: the quantizers' d = 0 path
    for (uint32_t i = 0; i < 256 && i < cols; i++) x[cols + i] = 0.0f;
  compare(t, w, x, rows, cols, n);
}

TEST(BatchKernels, EqualsMatvecBitForBit) {
  std::mt19937 rng(20261126);
  const uint32_t ns[] = {1, 2, 3, 5, 6, 7, 8, 32};
  for (const BType &t : btypes()) {
    ASSERT_TRUE(kn_supported(t.id)) << t.name;
    // The float types' columns leave every remainder their dots have (steps of 16 or 8,
    // then 4 or 8, then one by one); the 32-element blocks' leave groups of 4 blocks short,
    // and (800) a row several chunks long with a partial last chunk and a tail.
    const std::vector<uint32_t> cols = t.block == 256 ? std::vector<uint32_t>{256, 512, 4096}
                                     : t.block == 1   ? std::vector<uint32_t>{3, 45, 100, 264, 1000, 4096}
                                                      : std::vector<uint32_t>{32, 96, 160, 800, 4096};
    for (uint32_t c : cols)
      for (uint32_t rows : {1u, 4u, 6u, 13u, 37u})
        for (uint32_t n : ns) {
          if (c == 4096 && rows > 13 && n > 8) continue;  // keep the run short
          check(t, rows, c, n, rng);
          if (HasFatalFailure()) return;
        }
  }
}

// Q4_K's matvec reads odd activations as x_o - 256 x_e (kernels_kquants.h): at its limits,
// quants of +-127 alternating in sign (|x_o - 256 x_e| = 32639) against nibbles of 15 and
// 0 with the largest scales and mins, its integer sums must still be the batch kernel's,
// which reads plain x_o.
TEST(BatchKernels, Q4KAtTheActivationLayoutsLimits) {
  const BType &t = btypes()[11];
  ASSERT_EQ(t.id, (uint32_t)M64_GGML_Q4_K);
  const uint32_t rows = 8, cols = 512;
  std::vector<uint8_t> w((size_t)rows * 2 * 144);
  for (size_t b = 0; b < w.size() / 144; b++) {
    uint8_t *blk = &w[b * 144];
    const uint16_t d = kn_f32_to_f16(0.01f), dmin = kn_f32_to_f16(0.02f);
    blk[0] = (uint8_t)d, blk[1] = (uint8_t)(d >> 8), blk[2] = (uint8_t)dmin, blk[3] = (uint8_t)(dmin >> 8);
    std::memset(blk + 4, 0xff, 12);  // every 6-bit scale and min 63
    for (int i = 0; i < 128; i++) blk[16 + i] = (uint8_t)(b % 3 == 0 ? 0xff : b % 3 == 1 ? 0x0f : (i & 1 ? 0xf0 : 0xff));
  }
  std::vector<float> x(2 * cols);
  for (uint32_t i = 0; i < cols; i++) x[i] = i & 1 ? -3.0f : 3.0f;  // odd -127, even +127
  for (uint32_t i = 0; i < cols; i++) x[cols + i] = i & 1 ? 3.0f : -3.0f;
  compare(t, w, x, rows, cols, 2);
}

// More inputs than one batch (the kernels take any n; the module passes at most 32).
TEST(BatchKernels, MoreInputsThanABatch) {
  std::mt19937 rng(7);
  for (const BType &t : btypes()) {
    check(t, 21, t.block == 256 ? 512 : 96, 37, rng);
    if (HasFatalFailure()) return;
  }
}

// The inputs' activations lie M64_ACT_STRIDE(cols) apart. A multiple of 4 KiB (it was 16
// KiB at 4096 columns) put block b of all 32 inputs in the same L1 sets, and the tile
// kernels read them from L2: a 7B model's Q4_K products of 4096 columns cost 27% more per
// weight in prefill than those of 11008.
TEST(BatchKernels, InputStrideIsNotAMultipleOfTheCacheWay) {
  for (uint32_t cols = 1; cols <= 65536; cols += cols < 512 ? 1 : 256) {
    const uint32_t s = M64_ACT_STRIDE(cols);
    EXPECT_GE(s, cols * 4) << cols;  // every act_ fits
    EXPECT_EQ(s % 64, 0u) << cols;
    if (cols * 4 > 15 * 64) {
      EXPECT_EQ(s / 64 % 16, 9u) << cols;             // 9 lines past a multiple of 16 lines
      EXPECT_LT(s, cols * 4 + 16 * 64 + 64) << cols;  // and no more room than that takes
    } else {
      EXPECT_LT(s, cols * 4 + 64) << cols;  // small: back to back
    }
    EXPECT_EQ(M64_BATCH_SCRATCH_BYTES(cols), M64_MAX_BATCH * s) << cols;
  }
}

// A native host's Q4_K, Q5_K and Q6_K prefill (m64.kq_mat, native_kq.h: AVX-512) against the
// matvec of each input on the module's own i16 path: bit for bit, in ggml's rows and in
// the row-pair layout, with odd row counts (the one-row tail) and more inputs than its
// pass holds (32).
TEST(BatchKernels, NativeKqMatEqualsTheModulesMatvec) {
  if (!kn_has_kq_mat()) GTEST_SKIP() << "no AVX-512 here: m64.kq_mat is not compiled for this CPU";
  std::mt19937 rng(99);
  for (const BType &t : btypes()) {
    if (t.id != M64_GGML_Q4_K && t.id != M64_GGML_Q5_K && t.id != M64_GGML_Q6_K) continue;
    for (uint32_t cols : {256u, 768u, 4096u})
      for (uint32_t rows : {1u, 2u, 7u, 16u, 37u})
        for (uint32_t n : {1u, 2u, 5u, 32u, 33u}) {
          if (cols == 4096 && rows > 16 && n > 5) continue;  // keep the run short
          const std::vector<uint8_t> w = random_weights(t, rows, cols, rng);
          std::vector<float> x((size_t)n * cols);
          std::normal_distribution<float> g(0.0f, 2.0f);
          for (auto &v : x) v = g(rng);
          std::vector<float> want((size_t)n * rows), got((size_t)n * rows, NAN);
          kn_set_dot_i8(KN_DOT_I16);
          for (uint32_t i = 0; i < n; i++)
            kn_matvec(t.id, want.data() + (size_t)i * rows, w.data(), x.data() + (size_t)i * cols, rows, cols);
          kn_set_dot_i8(KN_DOT_ROWS);
          kn_matmat(t.id, got.data(), w.data(), x.data(), rows, cols, n);
          // the row-pair layout of the same matrix (its rows 2k, 2k + 1 interleaved per block)
          const uint32_t nb = cols / 256, bytes = t.id == M64_GGML_Q4_K ? 144 : t.id == M64_GGML_Q5_K ? 176 : 210;
          std::vector<uint8_t> wp(w.size());
          for (uint32_t r = 0; r < rows; r++)
            for (uint32_t b = 0; b < nb; b++) {
              const size_t to = r + 1 < rows || rows % 2 == 0
                                    ? ((size_t)(r & ~1u) * nb + 2 * b + (r & 1)) * bytes
                                    : ((size_t)r * nb + b) * bytes;
              std::memcpy(&wp[to], &w[((size_t)r * nb + b) * bytes], bytes);
            }
          std::vector<float> gotp((size_t)n * rows, NAN);
          kn_matmat_pairs(t.id, gotp.data(), wp.data(), x.data(), rows, cols, n);
          kn_set_dot_i8(KN_DOT_NATIVE);
          for (size_t i = 0; i < want.size(); i++) {
            ASSERT_EQ(f32_bits(want[i]), f32_bits(got[i])) << t.name << " " << rows << "x" << cols << " n " << n << " at " << i;
            ASSERT_EQ(f32_bits(want[i]), f32_bits(gotp[i])) << t.name << " pairs " << rows << "x" << cols << " n " << n << " at " << i;
          }
        }
  }
}

}  // namespace
