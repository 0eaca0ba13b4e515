// K-quant kernels (Q2_K..Q6_K, IQ4_XS over Q8_K activations) against scalar references
// written here independently from the ggml block layouts: dequantization must match
// exactly, matvec must match sum(dequant(w) * dequant(q8_K(x))) to f32 rounding, and the
// Q8_K activation quantizer (observed through probe weights) must match llama.cpp's
// quantize_row_q8_K exactly: every d*q and every bsum.
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

constexpr int QK = 256;


void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }

struct KType { uint32_t id; const char *name; uint32_t bytes; std::vector<int> f16_at; };
const std::vector<KType> &ktypes() {
  static const std::vector<KType> t = {
      {M64_GGML_Q2_K, "Q2_K", 84, {80, 82}},  {M64_GGML_Q3_K, "Q3_K", 110, {108}},
      {M64_GGML_Q4_K, "Q4_K", 144, {0, 2}},   {M64_GGML_Q5_K, "Q5_K", 176, {0, 2}},
      {M64_GGML_Q6_K, "Q6_K", 210, {208}},    {M64_GGML_IQ4_XS, "IQ4_XS", 136, {0}},
  };
  return t;
}
const KType &ktype(uint32_t id) {
  for (const KType &k : ktypes())
    if (k.id == id) return k;
  abort();
}

// One block, dequantized: value[i], and |scale part| + |min part| of it (for tolerances).
// Written from the layouts plainly, element by element.
void dequant_block_ref(uint32_t type, const uint8_t *b, float *y, float *mag) {
  for (int i = 0; i < QK; i++) {
    float sp = 0, mp = 0;  // y = sp - mp
    switch (type) {
      case M64_GGML_Q2_K: {  // scales[16] qs[64] d dmin
        const uint8_t *scales = b, *qs = b + 16;
        float d = half_ref(rd16(b + 80)), dmin = half_ref(rd16(b + 82));
        int half = i / 128, j = (i % 128) / 32, l = i % 32;  // l < 16: sub-block A, else B
        int sc = scales[half * 8 + j * 2 + (l >= 16)];
        int q = (qs[32 * half + l] >> (2 * j)) & 3;
        float dl = d * (float)(sc & 15), ml = dmin * (float)(sc >> 4);
        sp = dl * (float)q;
        mp = ml;
        break;
      }
      case M64_GGML_Q3_K: {  // hmask[32] qs[64] scales[12] d
        const uint8_t *hmask = b, *qs = b + 32, *s = b + 96;
        float d = half_ref(rd16(b + 108));
        uint32_t a[3];
        for (int k = 0; k < 3; k++) a[k] = s[4 * k] | s[4 * k + 1] << 8 | s[4 * k + 2] << 16 | (uint32_t)s[4 * k + 3] << 24;
        const uint32_t km1 = 0x03030303, km2 = 0x0f0f0f0f;
        uint32_t w[4] = {(a[0] & km2) | (((a[2] >> 0) & km1) << 4), (a[1] & km2) | (((a[2] >> 2) & km1) << 4),
                         ((a[0] >> 4) & km2) | (((a[2] >> 4) & km1) << 4), ((a[1] >> 4) & km2) | (((a[2] >> 6) & km1) << 4)};
        uint8_t scale[16];
        for (int k = 0; k < 16; k++) scale[k] = (uint8_t)(w[k / 4] >> (8 * (k % 4)));
        int half = i / 128, j = (i % 128) / 32, l = i % 32;
        int is = half * 8 + j * 2 + (l >= 16);
        int m = 1 << (half * 4 + j);
        int q = ((qs[32 * half + l] >> (2 * j)) & 3) - ((hmask[l] & m) ? 0 : 4);
        float dl = d * (float)(scale[is] - 32);
        sp = dl * (float)q;
        break;
      }
      case M64_GGML_Q4_K:
      case M64_GGML_Q5_K: {  // d dmin scales[12] [qh[32]] qs[128]
        bool five = type == M64_GGML_Q5_K;
        const uint8_t *s = b + 4, *qh = b + 16, *qs = b + (five ? 48 : 16);
        float d = half_ref(rd16(b)), dmin = half_ref(rd16(b + 2));
        int c = i / 64, l = i % 32, hi = (i % 64) >= 32;
        int j = 2 * c + hi;  // sub-block of 32
        int sc, mn;
        if (j < 4) {
          sc = s[j] & 63;
          mn = s[j + 4] & 63;
        } else {
          sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
          mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
        }
        int q = hi ? qs[32 * c + l] >> 4 : qs[32 * c + l] & 15;
        if (five && (qh[l] & (1 << j))) q += 16;
        float d1 = d * (float)sc, m1 = dmin * (float)mn;
        sp = d1 * (float)q;
        mp = m1;
        break;
      }
      case M64_GGML_Q6_K: {  // ql[128] qh[64] scales[16] d
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        float d = half_ref(rd16(b + 208));
        int h = i / 128, k = (i % 128) / 32, l = i % 32;
        const uint8_t *qlh = ql + 64 * h, *qhh = qh + 32 * h;
        int q;
        if (k == 0) q = (qlh[l] & 15) | (((qhh[l] >> 0) & 3) << 4);
        else if (k == 1) q = (qlh[l + 32] & 15) | (((qhh[l] >> 2) & 3) << 4);
        else if (k == 2) q = (qlh[l] >> 4) | (((qhh[l] >> 4) & 3) << 4);
        else q = (qlh[l + 32] >> 4) | (((qhh[l] >> 6) & 3) << 4);
        int is = l / 16;
        float ds = d * (float)sc[8 * h + is + 2 * k];
        sp = ds * (float)(q - 32);
        break;
      }
      case M64_GGML_IQ4_XS: {  // d scales_h scales_l[4] qs[128]
        static const int8_t kv[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
        float d = half_ref(rd16(b));
        uint16_t sh = rd16(b + 2);
        const uint8_t *sl = b + 4, *qs = b + 8;
        int ib = i / 32, j = i % 32;
        int ls = ((sl[ib / 2] >> (4 * (ib % 2))) & 15) | (((sh >> (2 * ib)) & 3) << 4);
        float dl = d * (float)(ls - 32);
        uint8_t q = qs[16 * ib + j % 16];
        sp = dl * (float)kv[j < 16 ? (q & 15) : (q >> 4)];
        break;
      }
      default: abort();
    }
    y[i] = sp - mp;
    if (mag) mag[i] = std::fabs(sp) + std::fabs(mp);
  }
}

void dequant_ref(uint32_t type, const std::vector<uint8_t> &w, size_t n, std::vector<float> &y,
                 std::vector<float> &mag) {
  const uint32_t bytes = ktype(type).bytes;
  y.resize(n);
  mag.resize(n);
  for (size_t b = 0; b < n / QK; b++) dequant_block_ref(type, &w[b * bytes], &y[b * QK], &mag[b * QK]);
}

// llama.cpp's quantize_row_q8_K, plainly.
struct Q8K { float d; int8_t q[QK]; int16_t bsums[16]; };
std::vector<Q8K> quantize_q8_K_ref(const std::vector<float> &x) {
  std::vector<Q8K> out(x.size() / QK);
  for (size_t b = 0; b < out.size(); b++) {
    const float *v = &x[b * QK];
    Q8K &o = out[b];
    float amax = 0, max = 0;
    for (int j = 0; j < QK; j++)
      if (std::fabs(v[j]) > amax) {
        amax = std::fabs(v[j]);
        max = v[j];
      }
    if (amax == 0) {
      o = Q8K{};
      continue;
    }
    const float iscale = -127.f / max;
    for (int j = 0; j < QK; j++) {
      int q = (int)std::nearbyint(iscale * v[j]);  // default rounding: half to even
      o.q[j] = (int8_t)std::min(127, q);
    }
    for (int g = 0; g < 16; g++) {
      int s = 0;
      for (int k = 0; k < 16; k++) s += o.q[16 * g + k];
      o.bsums[g] = (int16_t)s;
    }
    o.d = 1 / iscale;
  }
  return out;
}

std::vector<uint8_t> random_kblocks(uint32_t type, size_t nblocks, std::mt19937 &rng) {
  const KType &kt = ktype(type);
  std::vector<uint8_t> w(nblocks * kt.bytes);
  static const float scales[] = {0.f, 1e-6f, 3e-3f, 0.02f, 0.7f, 60000.f};
  for (size_t b = 0; b < nblocks; b++) {
    uint8_t *blk = &w[b * kt.bytes];
    for (uint32_t k = 0; k < kt.bytes; k++) blk[k] = (uint8_t)rng();
    if (b % 11 == 5) std::memset(blk, 0, kt.bytes);  // quants, scales, hmask all zero
    for (int at : kt.f16_at) {
      float d = b % 7 == 3 ? 0.f : scales[rng() % 6] * (rng() & 1 ? -1.f : 1.f);
      wr16(blk + at, kn_f32_to_f16(d));
    }
  }
  return w;
}

std::string tname(uint32_t type) { return ktype(type).name; }

TEST(KQuants, TableRowsAndBlockSizes) {
  for (const KType &k : ktypes()) {
    ASSERT_TRUE(kn_supported(k.id)) << k.name;
    m64_type_info ti = m64_ggml_type_info(k.id);
    EXPECT_EQ(ti.block_bytes, k.bytes) << k.name;
    EXPECT_EQ(ti.block_elems, (uint32_t)QK) << k.name;
  }
}

TEST(KQuants, DequantRowsMatchReferenceExactly) {
  std::mt19937 rng(11);
  for (const KType &k : ktypes()) {
    const size_t nb = 23;
    std::vector<uint8_t> w = random_kblocks(k.id, nb, rng);
    std::vector<float> ref, mag, got(nb * QK);
    dequant_ref(k.id, w, nb * QK, ref, mag);
    kn_dequant_row(k.id, got.data(), w.data(), nb * QK);
    for (size_t i = 0; i < nb * QK; i++) ASSERT_EQ(got[i], ref[i]) << k.name << " element " << i;
  }
}

struct MvCase { uint32_t type, rows, cols; };

class KQuantMatvec : public ::testing::TestWithParam<MvCase> {};

TEST_P(KQuantMatvec, MatchesReferenceOverQ8K) {
  const MvCase c = GetParam();
  std::mt19937 rng(c.type * 7919 + c.rows * 31 + c.cols);
  const uint32_t nb = c.cols / QK;
  std::vector<uint8_t> w = random_kblocks(c.type, (size_t)c.rows * nb, rng);
  std::vector<float> x(c.cols), out(c.rows, NAN);
  std::normal_distribution<float> g(0.f, 1.f);
  for (auto &v : x) v = g(rng);
  x[3] = 0.f;
  if (nb >= 2) std::fill(x.begin() + QK, x.begin() + 2 * QK, 0.f);  // an all-zero block
  if (nb >= 3) {  // a block whose largest magnitudes tie with opposite signs, scaled up
    for (int j = 0; j < QK; j++) x[2 * QK + j] *= 100.f;
    x[2 * QK + 9] = 1000.f;
    x[2 * QK + 200] = -1000.f;
  }
  std::vector<Q8K> xq = quantize_q8_K_ref(x);
  std::vector<float> xa(c.cols);
  for (uint32_t j = 0; j < c.cols; j++) xa[j] = xq[j / QK].d * (float)xq[j / QK].q[j % QK];
  std::vector<float> wd, wm;
  dequant_ref(c.type, w, (size_t)c.rows * c.cols, wd, wm);
  // every path a host may take: i16, i8 through this CPU's native dot, i8 through plain SIMD128
  for (int mode : {KN_DOT_I16, KN_DOT_NATIVE, KN_DOT_PLAIN, KN_DOT_ROWS, KN_DOT_ROWS256}) {
    kn_set_dot_i8(mode);
    std::fill(out.begin(), out.end(), NAN);
    kn_matvec(c.type, out.data(), w.data(), x.data(), c.rows, c.cols);
    kn_set_dot_i8(KN_DOT_NATIVE);
    for (uint32_t r = 0; r < c.rows; r++) {
      double ref = 0, mag = 0;
      for (uint32_t j = 0; j < c.cols; j++) {
        size_t i = (size_t)r * c.cols + j;
        ref += (double)wd[i] * xa[j];
        mag += (double)wm[i] * std::fabs(xa[j]);
      }
      ASSERT_NEAR(out[r], ref, 1e-5 * mag + 1e-30) << tname(c.type) << " row " << r << " dot mode " << mode;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    KTypes, KQuantMatvec,
    ::testing::ValuesIn([] {
      std::vector<MvCase> v;
      for (const KType &k : ktypes())
        for (auto s : {std::pair<uint32_t, uint32_t>{1, 256}, {7, 256}, {16, 4096}, {3, 11008}})
          v.push_back({k.id, s.first, s.second});
      return v;
    }()),
    [](const ::testing::TestParamInfo<MvCase> &i) {
      return tname(i.param.type) + "_" + std::to_string(i.param.rows) + "x" + std::to_string(i.param.cols);
    });

// The row-pair layout (m64_formats.h, written by m64c build): rows 2p, 2p+1 interleaved
// block by block, an odd last row as it is. What m64c's write_tensor does, written again.
std::vector<uint8_t> to_row_pairs(const std::vector<uint8_t> &w, uint32_t rows, uint32_t nb, uint32_t bb) {
  std::vector<uint8_t> p(w.size());
  const size_t rb = (size_t)nb * bb;
  for (uint32_t r = 0; r < rows; r++)
    for (uint32_t b = 0; b < nb; b++) {
      const size_t to = r + 1 < rows || rows % 2 == 0 ? (r & ~1u) * rb + (2 * b + (r & 1)) * bb : r * rb + b * bb;
      std::memcpy(&p[to], &w[r * rb + b * bb], bb);
    }
  return p;
}

// matvec_<sfx>_pairs and matmat_<sfx>_pairs over the pair layout give exactly the plain
// kernels' floats over ggml's rows (same blocks, same sums, same order), odd row counts
// included.
TEST(KQuantPairs, PairLayoutKernelsEqualTheRowKernelsBitForBit) {
  for (const KType &k : ktypes())
    for (auto s : {std::pair<uint32_t, uint32_t>{2, 512}, {5, 768}, {16, 4096}, {7, 11008}}) {
      const uint32_t rows = s.first, cols = s.second, nb = cols / QK, n = 5;
      std::mt19937 rng(k.id * 131 + rows);
      const std::vector<uint8_t> w = random_kblocks(k.id, (size_t)rows * nb, rng);
      const std::vector<uint8_t> wp = to_row_pairs(w, rows, nb, k.bytes);
      ASSERT_NE(w, wp);
      std::vector<float> x((size_t)n * cols);
      std::normal_distribution<float> g(0.f, 1.f);
      for (auto &v : x) v = g(rng);
      std::vector<float> a(rows), b(rows, NAN), am((size_t)n * rows), bm((size_t)n * rows, NAN);
      kn_matvec(k.id, a.data(), w.data(), x.data(), rows, cols);
      ASSERT_TRUE(kn_matvec_pairs(k.id, b.data(), wp.data(), x.data(), rows, cols)) << k.name;
      EXPECT_EQ(0, std::memcmp(a.data(), b.data(), rows * sizeof(float))) << k.name << " matvec " << rows << "x" << cols;
      kn_matmat(k.id, am.data(), w.data(), x.data(), rows, cols, n);
      ASSERT_TRUE(kn_matmat_pairs(k.id, bm.data(), wp.data(), x.data(), rows, cols, n)) << k.name;
      EXPECT_EQ(0, std::memcmp(am.data(), bm.data(), am.size() * sizeof(float))) << k.name << " matmat " << rows << "x" << cols;
    }
  EXPECT_FALSE(kn_matvec_pairs(M64_GGML_Q8_0, nullptr, nullptr, nullptr, 2, 32));  // rows only
}

// The i8 kernels (Q4_K, Q5_K, Q6_K over m64.dot_i8) and a native host's 256-bit rows (Q4_K,
// Q6_K over m64.kq_rows) compute the i16 kernels' integer sums and f32 steps, so their
// floats are the same bit for bit, in both layouts and with either dot: a browser host
// (i16) and a native one give the same logits.
TEST(KQuantDotI8, ThisCpuHasTheNativeRowsWhereItHasAvx2) {
#if defined(__x86_64__)
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("f16c"))
    GTEST_SKIP() << "no AVX2 here: m64.kq_rows is not compiled for this CPU";
  EXPECT_TRUE(kn_has_kq_rows());  // kernels_native.c is built -march=native
#else
  GTEST_SKIP() << "not x86-64: m64.kq_rows is AVX2 code";
#endif
}

TEST(KQuantDotI8, I8PathsEqualTheI16PathBitForBit) {
  for (const KType &k : ktypes())
    // 19 and 16 rows: the native rows' groups of eight (AVX-512), then a pair and an odd row
    for (auto s : {std::pair<uint32_t, uint32_t>{1, 256}, {6, 768}, {7, 11008}, {19, 768}, {16, 4096}}) {
      const uint32_t rows = s.first, cols = s.second, nb = cols / QK;
      std::mt19937 rng(k.id * 977 + rows);
      const std::vector<uint8_t> w = random_kblocks(k.id, (size_t)rows * nb, rng);
      const std::vector<uint8_t> wp = to_row_pairs(w, rows, nb, k.bytes);
      std::vector<float> x(cols);
      std::normal_distribution<float> g(0.f, 3.f);
      for (auto &v : x) v = g(rng);
      x[5] = 1e4f;  // one large value: most of a block's quants near 0
      std::vector<float> base(rows), got(rows), pbase(rows), pgot(rows);
      kn_set_dot_i8(KN_DOT_I16);
      kn_matvec(k.id, base.data(), w.data(), x.data(), rows, cols);
      kn_matvec_pairs(k.id, pbase.data(), wp.data(), x.data(), rows, cols);
      for (int mode : {KN_DOT_NATIVE, KN_DOT_PLAIN, KN_DOT_ROWS, KN_DOT_ROWS256}) {
        kn_set_dot_i8(mode);
        std::fill(got.begin(), got.end(), NAN);
        std::fill(pgot.begin(), pgot.end(), NAN);
        kn_matvec(k.id, got.data(), w.data(), x.data(), rows, cols);
        kn_matvec_pairs(k.id, pgot.data(), wp.data(), x.data(), rows, cols);
        EXPECT_EQ(0, std::memcmp(base.data(), got.data(), rows * sizeof(float))) << k.name << " mode " << mode << " " << rows << "x" << cols;
        EXPECT_EQ(0, std::memcmp(pbase.data(), pgot.data(), rows * sizeof(float))) << k.name << " pairs, mode " << mode;
      }
      kn_set_dot_i8(KN_DOT_NATIVE);
    }
}

// m64.dot_i8's contract (m64_module.h): acc + per lane the sum of four i8 x u7 products,
// exactly, from this CPU's native instruction and from the plain SIMD128 sequence alike.
TEST(KQuantDotI8, DotIsTheExactSumOfFourProducts) {
  std::mt19937 rng(5);
  for (int it = 0; it < 20000; it++) {
    int8_t a[16];
    uint8_t b[16];
    int32_t acc[4], want[4], got[4];
    for (int i = 0; i < 16; i++) {
      const int kind = it % 4;  // the extremes first: -128 and 127 against 127
      a[i] = kind == 0 ? (int8_t)-128 : kind == 1 ? (int8_t)127 : (int8_t)(rng() & 0xff);
      b[i] = kind < 2 ? (uint8_t)127 : (uint8_t)(rng() & 0x7f);
    }
    for (int l = 0; l < 4; l++) {
      acc[l] = (int32_t)(rng() % 2000001) - 1000000;
      want[l] = acc[l];
      for (int j = 0; j < 4; j++) want[l] += (int32_t)a[4 * l + j] * (int32_t)b[4 * l + j];
    }
    for (int mode : {KN_DOT_NATIVE, KN_DOT_PLAIN}) {
      kn_dot_i8(got, acc, a, b, mode);
      ASSERT_EQ(0, std::memcmp(got, want, sizeof want)) << "mode " << mode << " iteration " << it;
    }
  }
}

// Q6_K block whose dequantized values are exactly q_i - 32 (d = 1, all scales 1).
void put_q6_K_unit(uint8_t *b, const int *q /* 0..63 */) {
  std::memset(b, 0, 210);
  for (int i = 0; i < QK; i++) {
    int h = i / 128, k = (i % 128) / 32, l = i % 32;
    uint8_t *ql = b + 64 * h + l + (k & 1) * 32, *qh = b + 128 + 32 * h + l;
    *ql |= (uint8_t)((q[i] & 15) << (k & 2 ? 4 : 0));
    *qh |= (uint8_t)((q[i] >> 4) << (2 * k));
  }
  for (int s = 0; s < 16; s++) b[192 + s] = 1;
  wr16(b + 208, 0x3c00);  // 1.0
}

// Activations that stress the quantizer: ties at half steps, signed maxima, zero blocks,
// huge and tiny magnitudes.
std::vector<float> probe_activation(std::mt19937 &rng) {
  std::vector<float> x(8 * QK);
  std::normal_distribution<float> g(0.f, 1.f);
  for (auto &v : x) v = g(rng);
  float *b = x.data();
  // block 0: max = -127 -> iscale = 1 exactly, so x = k + 0.5 rounds half to even
  b[0] = -127.f;
  for (int j = 1; j < QK; j++) b[j] = (float)((j % 61) - 30) + 0.5f * (j % 2);
  // block 1: all zero
  std::fill(x.begin() + QK, x.begin() + 2 * QK, 0.f);
  // block 2: opposite-signed equal maxima, positive first
  x[2 * QK + 17] = 9.f, x[2 * QK + 100] = -9.f;
  // block 3: negative first
  x[3 * QK + 5] = -9.f, x[3 * QK + 6] = 9.f;
  // block 4: huge; block 5: tiny; block 6: a single nonzero
  for (int j = 0; j < QK; j++) x[4 * QK + j] *= 1e30f, x[5 * QK + j] *= 1e-30f;
  std::fill(x.begin() + 6 * QK, x.begin() + 7 * QK, 0.f);
  x[6 * QK + 255] = -3e-3f;
  // block 7: max = 127 exactly: iscale = -1
  x[7 * QK + 77] = 127.f;
  for (int j = 0; j < QK; j++)
    if (j != 77) x[7 * QK + j] = std::round(g(rng) * 20.f) + 0.5f;
  return x;
}

TEST(Q8K, QuantizerMatchesReferenceThroughProbeWeights) {
  std::mt19937 rng(5);
  std::vector<float> x = probe_activation(rng);
  const uint32_t cols = (uint32_t)x.size(), nb = cols / QK;
  std::vector<Q8K> ref = quantize_q8_K_ref(x);

  // (a) d * q of every element: row e is a Q6_K row whose only nonzero weight is 1 at e
  {
    std::vector<uint8_t> w((size_t)cols * nb * 210, 0);
    std::vector<int> q(QK);
    for (uint32_t e = 0; e < cols; e++) {
      for (int i = 0; i < QK; i++) q[i] = i == (int)(e % QK) ? 33 : 32;
      uint8_t *row = &w[(size_t)e * nb * 210];
      put_q6_K_unit(row + (e / QK) * 210, q.data());  // other blocks: d = 0
    }
    std::vector<float> out(cols);
    kn_matvec(M64_GGML_Q6_K, out.data(), w.data(), x.data(), cols, cols);
    for (uint32_t e = 0; e < cols; e++) {
      const Q8K &r = ref[e / QK];
      float want = r.d * (float)r.q[e % QK];
      ASSERT_EQ(out[e], want) << "element " << e << " x=" << x[e] << " ref q=" << (int)r.q[e % QK];
    }
  }
  // (b) bsums per 16 via Q2_K mins (d = 0, dmin = 1, only group g has min 1): -d*bsum
  {
    const uint32_t rows = nb * 16;
    std::vector<uint8_t> w((size_t)rows * nb * 84, 0);
    for (uint32_t r = 0; r < rows; r++) {
      uint8_t *blk = &w[((size_t)r * nb + r / 16) * 84];
      blk[r % 16] = 1 << 4;
      wr16(blk + 82, 0x3c00);
    }
    std::vector<float> out(rows);
    kn_matvec(M64_GGML_Q2_K, out.data(), w.data(), x.data(), rows, cols);
    for (uint32_t r = 0; r < rows; r++) {
      const Q8K &q = ref[r / 16];
      ASSERT_EQ(out[r], -(q.d * (float)q.bsums[r % 16])) << "block " << r / 16 << " group " << r % 16;
    }
  }
  // (c) bsums per 32 via Q4_K mins (d = 0, dmin = 1, only sub-block j has min 1)
  {
    const uint32_t rows = nb * 8;
    std::vector<uint8_t> w((size_t)rows * nb * 144, 0);
    for (uint32_t r = 0; r < rows; r++) {
      uint8_t *blk = &w[((size_t)r * nb + r / 8) * 144];
      int j = r % 8;
      if (j < 4) blk[4 + j + 4] = 1;       // m = s[j+4] & 63
      else blk[4 + j + 4] = 1 << 4;        // m = s[j+4] >> 4 | ...
      wr16(blk + 2, 0x3c00);
    }
    std::vector<float> out(rows);
    kn_matvec(M64_GGML_Q4_K, out.data(), w.data(), x.data(), rows, cols);
    for (uint32_t r = 0; r < rows; r++) {
      const Q8K &q = ref[r / 8];
      int j = r % 8;
      ASSERT_EQ(out[r], -(q.d * (float)(q.bsums[2 * j] + q.bsums[2 * j + 1]))) << "block " << r / 8 << " sub " << j;
    }
  }
  // the reference itself: ties went to even, zero blocks have d = 0
  EXPECT_EQ(ref[0].d, 1.f);
  EXPECT_EQ(ref[0].q[1], -28);  // -28.5
  EXPECT_EQ(ref[0].q[3], -26);  // -26.5
  EXPECT_EQ(ref[0].q[0], -127);
  EXPECT_EQ(ref[1].d, 0.f);
  EXPECT_EQ(ref[7].d, -1.f);
}

}  // namespace
