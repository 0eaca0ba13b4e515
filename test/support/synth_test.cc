// Tests of the reference quantizers and the synthetic GGUF generator.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <unistd.h>
#include <vector>

#include "m64_formats.h"
#include "quant.h"
#include "synth.h"

namespace {

std::string TempPath(const std::string &name) {
  return ::testing::TempDir() + "m64_synth_" + std::to_string(getpid()) + "_" + name;
}

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
  EXPECT_FALSE(m64_ref_type_supported(M64_GGML_Q4_K));
  float x[256] = {0};
  uint8_t out[1024];
  EXPECT_EQ(m64_ref_quantize_row(M64_GGML_Q4_K, x, out, 256), M64_EUNSUPPORTED);
  EXPECT_EQ(m64_ref_row_bytes(M64_GGML_Q4_K, 256), 0u);
}

// ------------------------------------------------------------------ vocabulary

TEST(SynthVocab, LayoutAndUniqueness) {
  for (uint32_t n : {259u, 512u, 32000u}) {
    m64_synth_vocab v;
    m64_err e;
    ASSERT_EQ(m64_synth_vocab_build(n, &v, &e), 0) << e.msg;
    ASSERT_EQ(v.n, n);
    EXPECT_STREQ(v.tokens[0], "<unk>");
    EXPECT_EQ(v.types[0], 2);
    EXPECT_STREQ(v.tokens[1], "<s>");
    EXPECT_EQ(v.types[1], 3);
    EXPECT_STREQ(v.tokens[2], "</s>");
    EXPECT_EQ(v.types[2], 3);
    EXPECT_STREQ(v.tokens[3], "<0x00>");
    EXPECT_STREQ(v.tokens[3 + 0x0a], "<0x0A>");
    EXPECT_STREQ(v.tokens[258], "<0xFF>");
    for (uint32_t i = 3; i < 259; i++) EXPECT_EQ(v.types[i], 6);
    std::set<std::string> seen;
    for (uint32_t i = 0; i < n; i++) {
      EXPECT_TRUE(seen.insert(v.tokens[i]).second) << "duplicate " << v.tokens[i];
      if (i >= 259) {
        EXPECT_EQ(v.types[i], 1);
      }
    }
    if (n >= 512) {
      EXPECT_STREQ(v.tokens[259], "\xe2\x96\x81");
      EXPECT_TRUE(seen.count("\xe2\x96\x81the"));
      EXPECT_TRUE(seen.count("a"));
      // Longer pieces score higher.
      uint32_t the = 0, t = 0;
      for (uint32_t i = 0; i < n; i++) {
        if (!strcmp(v.tokens[i], "\xe2\x96\x81the")) the = i;
        if (!strcmp(v.tokens[i], "\xe2\x96\x81t")) t = i;
      }
      EXPECT_GT(v.scores[the], v.scores[t]);
    }
    if (n == 32000) {
      EXPECT_TRUE(seen.count("\xe2\x96\x81Once"));
    }
    m64_synth_vocab_free(&v);
  }
  m64_synth_vocab v;
  m64_err e;
  EXPECT_EQ(m64_synth_vocab_build(100, &v, &e), M64_ELIMIT);
}

// ------------------------------------------------------------------ specs

TEST(SynthSpec, ValidateRejectsBadShapes) {
  m64_synth_spec s;
  m64_err e;
  m64_synth_default(&s);
  EXPECT_EQ(m64_synth_validate(&s, &e), 0) << e.msg;
  s.n_heads = 3;
  EXPECT_NE(m64_synth_validate(&s, &e), 0);
  m64_synth_default(&s);
  s.n_kv_heads = 3;
  EXPECT_NE(m64_synth_validate(&s, &e), 0);
  m64_synth_default(&s);
  s.type_default = M64_GGML_Q8_0;
  s.ffn = 48;  // ffn_down rows of 48 are not whole Q8_0 blocks
  EXPECT_EQ(m64_synth_validate(&s, &e), M64_EFORMAT);
  EXPECT_NE(std::string(e.msg).find("ffn_down"), std::string::npos) << e.msg;
  m64_synth_default(&s);
  s.type_default = M64_GGML_Q4_K;
  EXPECT_EQ(m64_synth_validate(&s, &e), M64_EUNSUPPORTED);
  m64_synth_default(&s);
  s.n_vocab = 200;
  EXPECT_EQ(m64_synth_validate(&s, &e), M64_ELIMIT);
  EXPECT_EQ(m64_synth_preset(&s, "70x", &e), M64_ENOTFOUND);
}

TEST(SynthSpec, SevenBShape) {
  m64_synth_spec s;
  m64_err e;
  ASSERT_EQ(m64_synth_preset(&s, "7b", &e), 0);
  s.type_default = M64_GGML_Q4_0;
  ASSERT_EQ(m64_synth_validate(&s, &e), 0) << e.msg;
  ASSERT_EQ(m64_synth_n_tensors(&s), 3u + 32 * 9);
  m64_synth_tensor t;
  ASSERT_EQ(m64_synth_tensor_info(&s, m64_synth_n_tensors(&s) - 1, &t, &e), 0);
  EXPECT_STREQ(t.name, "blk.31.ffn_down.weight");
  EXPECT_EQ(t.ne[0], 11008u);
  EXPECT_EQ(t.ne[1], 4096u);
  EXPECT_EQ(t.nbytes, 11008u / 32 * 18 * 4096);
  // 6.74e9 parameters at 4.5 bits, plus F32 norms.
  double gb = (double)m64_synth_data_bytes(&s) / 1e9;
  EXPECT_GT(gb, 3.7);
  EXPECT_LT(gb, 3.9);
  EXPECT_EQ(m64_synth_tensor_info(&s, m64_synth_n_tensors(&s), &t, &e), M64_ENOTFOUND);
}

// ------------------------------------------------------------------ written files

uint32_t GetU32(const m64_gguf *g, const char *key) {
  uint32_t v = 0xdeadbeef;
  EXPECT_EQ(m64_gguf_get_u32(g, key, &v), 0) << key;
  return v;
}

std::string GetStr(const m64_gguf *g, const char *key) {
  m64_str s = {nullptr, 0};
  EXPECT_EQ(m64_gguf_get_str(g, key, &s), 0) << key;
  return std::string(s.ptr ? s.ptr : "", s.len);
}

// Largest |dequantized - original| a type may produce for a block whose largest
// magnitude is amax (f16 scale rounding included).
double QuantBound(uint32_t type, double amax, double x) {
  switch (type) {
    case M64_GGML_F32: return 0;
    case M64_GGML_F16: return std::fabs(x) * ldexp(1.0, -11) + ldexp(1.0, -24);
    case M64_GGML_Q8_0: return amax / 127 * 0.5 + amax * 1e-3 + 1e-7;
    case M64_GGML_Q4_0: return amax / 8 * 1.0 + amax * 1e-3 + 1e-7;  // -max clamps to 7d
    default: return 0;
  }
}

void CheckFile(const m64_synth_spec &s, const std::string &path) {
  m64_err e;
  m64_gguf *g = nullptr;
  ASSERT_EQ(m64_gguf_open(path.c_str(), &g, &e), 0) << e.msg;
  EXPECT_EQ(m64_gguf_version(g), 3u);
  EXPECT_EQ(m64_gguf_alignment(g), 32u);
  EXPECT_EQ(GetStr(g, "general.architecture"), "llama");
  EXPECT_EQ(GetStr(g, "general.name"), s.name ? s.name : "m64-synth");
  EXPECT_EQ(GetU32(g, "llama.context_length"), s.n_ctx);
  EXPECT_EQ(GetU32(g, "llama.embedding_length"), s.dim);
  EXPECT_EQ(GetU32(g, "llama.block_count"), s.n_layers);
  EXPECT_EQ(GetU32(g, "llama.feed_forward_length"), s.ffn);
  EXPECT_EQ(GetU32(g, "llama.attention.head_count"), s.n_heads);
  EXPECT_EQ(GetU32(g, "llama.attention.head_count_kv"), s.n_kv_heads);
  EXPECT_EQ(GetU32(g, "llama.rope.dimension_count"), s.dim / s.n_heads);
  float f = 0;
  EXPECT_EQ(m64_gguf_get_f32(g, "llama.rope.freq_base", &f), 0);
  EXPECT_EQ(f, s.rope_base);
  EXPECT_EQ(m64_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &f), 0);
  EXPECT_EQ(f, s.norm_eps);
  EXPECT_EQ(GetStr(g, "tokenizer.ggml.model"), "llama");
  EXPECT_EQ(GetU32(g, "tokenizer.ggml.bos_token_id"), 1u);
  EXPECT_EQ(GetU32(g, "tokenizer.ggml.eos_token_id"), 2u);
  EXPECT_EQ(GetU32(g, "tokenizer.ggml.unknown_token_id"), 0u);
  m64_gguf_vtype et;
  uint64_t n = 0;
  ASSERT_EQ(m64_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n), 0);
  EXPECT_EQ(et, M64_GGUF_STRING);
  EXPECT_EQ(n, s.n_vocab);
  m64_str tok;
  ASSERT_EQ(m64_gguf_arr_str(g, "tokenizer.ggml.tokens", 1, &tok), 0);
  EXPECT_EQ(std::string(tok.ptr, tok.len), "<s>");
  ASSERT_EQ(m64_gguf_get_arr(g, "tokenizer.ggml.scores", &et, &n), 0);
  EXPECT_EQ(et, M64_GGUF_F32);
  EXPECT_EQ(n, s.n_vocab);
  ASSERT_EQ(m64_gguf_get_arr(g, "tokenizer.ggml.token_type", &et, &n), 0);
  EXPECT_EQ(et, M64_GGUF_I32);
  EXPECT_EQ(n, s.n_vocab);
  int32_t type = 0;
  ASSERT_EQ(m64_gguf_arr_i32(g, "tokenizer.ggml.token_type", 3, &type), 0);
  EXPECT_EQ(type, 6);

  ASSERT_EQ(m64_gguf_n_tensors(g), m64_synth_n_tensors(&s));
  for (uint32_t i = 0; i < m64_synth_n_tensors(&s); i++) {
    m64_synth_tensor want;
    ASSERT_EQ(m64_synth_tensor_info(&s, i, &want, &e), 0);
    const m64_gguf_tensor *t = m64_gguf_tensor_at(g, i);
    ASSERT_STREQ(t->name, want.name);
    EXPECT_EQ(t->type, want.type) << want.name;
    EXPECT_EQ(t->n_dims, want.n_dims) << want.name;
    EXPECT_EQ(t->ne[0], want.ne[0]) << want.name;
    EXPECT_EQ(t->ne[1], want.ne[1]) << want.name;
    EXPECT_EQ(t->nbytes, want.nbytes) << want.name;
    if (strstr(want.name, "norm")) {
      EXPECT_EQ(t->type, (uint32_t)M64_GGML_F32);
    }

    // Dequantized values stay within the type's error of the regenerated originals.
    uint64_t count = want.ne[0] * want.ne[1];
    std::vector<float> orig(count), got(count);
    ASSERT_EQ(m64_synth_tensor_values(&s, i, orig.data(), &e), 0);
    ASSERT_EQ(m64_ref_dequantize_row(t->type, t->data, got.data(), count), 0);
    std::vector<uint8_t> quantized(want.nbytes);
    ASSERT_EQ(m64_ref_quantize_row(t->type, orig.data(), quantized.data(), count), 0);
    ASSERT_EQ(memcmp(quantized.data(), t->data, want.nbytes), 0) << want.name;
    uint64_t block = (t->type == M64_GGML_Q8_0 || t->type == M64_GGML_Q4_0) ? 32 : 1;
    double sq_err = 0, sq_val = 0;
    for (uint64_t b = 0; b < count; b += block) {
      double amax = 0;
      for (uint64_t k = b; k < b + block; k++) amax = std::max(amax, (double)std::fabs(orig[k]));
      for (uint64_t k = b; k < b + block; k++) {
        double err = std::fabs((double)got[k] - orig[k]);
        ASSERT_LE(err, QuantBound(t->type, amax, orig[k])) << want.name << " element " << k;
        sq_err += err * err;
        sq_val += (double)orig[k] * orig[k];
      }
    }
    if (t->type == M64_GGML_Q4_0) {
      EXPECT_LT(std::sqrt(sq_err / sq_val), 0.15) << want.name;
    }
    if (t->type == M64_GGML_Q8_0) {
      EXPECT_LT(std::sqrt(sq_err / sq_val), 0.01) << want.name;
    }
  }
  m64_gguf_close(g);
}

class SynthTypes : public ::testing::TestWithParam<uint32_t> {};

TEST_P(SynthTypes, WritesReadableModel) {
  m64_synth_spec s;
  m64_synth_default(&s);
  s.type_default = GetParam();
  s.seed = 7;
  std::string path = TempPath(std::string("model_") + m64_ggml_type_info(GetParam()).name + ".gguf");
  m64_err e;
  ASSERT_EQ(m64_synth_write(&s, path.c_str(), &e), 0) << e.msg;
  CheckFile(s, path);
  unlink(path.c_str());
}

INSTANTIATE_TEST_SUITE_P(AllTypes, SynthTypes,
                         ::testing::Values(M64_GGML_F32, M64_GGML_F16, M64_GGML_Q8_0,
                                           M64_GGML_Q4_0),
                         [](const ::testing::TestParamInfo<uint32_t> &info) {
                           return std::string(m64_ggml_type_info(info.param).name);
                         });

TEST(Synth, OverridesTiedAndName) {
  m64_synth_spec s;
  m64_synth_default(&s);
  s.type_default = M64_GGML_Q4_0;
  s.type_embd = M64_GGML_Q8_0;
  s.type_ffn_down = M64_GGML_F16;
  s.type_attn_v = M64_GGML_Q8_0;
  s.tied_output = 1;
  s.name = "tied-mixed";
  s.n_layers = 3;
  std::string path = TempPath("mixed.gguf");
  m64_err e;
  ASSERT_EQ(m64_synth_write(&s, path.c_str(), &e), 0) << e.msg;
  CheckFile(s, path);
  m64_gguf *g = nullptr;
  ASSERT_EQ(m64_gguf_open(path.c_str(), &g, &e), 0) << e.msg;
  EXPECT_EQ(m64_gguf_find_tensor(g, "output.weight"), nullptr);
  EXPECT_EQ(m64_gguf_find_tensor(g, "token_embd.weight")->type, (uint32_t)M64_GGML_Q8_0);
  EXPECT_EQ(m64_gguf_find_tensor(g, "blk.2.ffn_down.weight")->type, (uint32_t)M64_GGML_F16);
  EXPECT_EQ(m64_gguf_find_tensor(g, "blk.2.attn_v.weight")->type, (uint32_t)M64_GGML_Q8_0);
  EXPECT_EQ(m64_gguf_find_tensor(g, "blk.2.attn_k.weight")->type, (uint32_t)M64_GGML_Q4_0);
  m64_gguf_close(g);
  unlink(path.c_str());
}

std::vector<uint8_t> ReadAll(const std::string &path) {
  std::vector<uint8_t> bytes;
  FILE *f = fopen(path.c_str(), "rb");
  if (!f) return bytes;
  uint8_t buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) bytes.insert(bytes.end(), buf, buf + n);
  fclose(f);
  return bytes;
}

// Tensors bigger than both the writer's and the generator's chunks, rows that straddle
// chunk boundaries, and every type in one file: the bytes must equal the quantized
// originals exactly (CheckFile compares them).
TEST(Synth, LargeTensorsSpanChunks) {
  m64_synth_spec s;
  m64_synth_default(&s);
  s.n_vocab = 20000;
  s.dim = 96;
  s.n_heads = 4;
  s.n_kv_heads = 4;
  s.ffn = 4000;  // ffn_down rows of 4000: F16 rows of 8000 bytes do not divide 1 MiB
  s.n_layers = 1;
  s.type_default = M64_GGML_Q4_0;
  s.type_embd = M64_GGML_F32;  // 1.92M values, 7.7 MB
  s.type_output = M64_GGML_Q8_0;
  s.type_ffn_down = M64_GGML_F16;
  std::string path = TempPath("large.gguf");
  m64_err e;
  ASSERT_EQ(m64_synth_write(&s, path.c_str(), &e), 0) << e.msg;
  CheckFile(s, path);
  unlink(path.c_str());
}

TEST(Synth, DeterministicFromSeed) {
  m64_synth_spec s;
  m64_synth_default(&s);
  s.type_default = M64_GGML_Q8_0;
  std::string a = TempPath("seed_a.gguf"), b = TempPath("seed_b.gguf"), c = TempPath("seed_c.gguf");
  m64_err e;
  ASSERT_EQ(m64_synth_write(&s, a.c_str(), &e), 0) << e.msg;
  ASSERT_EQ(m64_synth_write(&s, b.c_str(), &e), 0) << e.msg;
  s.seed = 2;
  ASSERT_EQ(m64_synth_write(&s, c.c_str(), &e), 0) << e.msg;
  std::vector<uint8_t> ba = ReadAll(a), bb = ReadAll(b), bc = ReadAll(c);
  EXPECT_FALSE(ba.empty());
  EXPECT_EQ(ba, bb);
  EXPECT_NE(ba, bc);
  unlink(a.c_str());
  unlink(b.c_str());
  unlink(c.c_str());
}

TEST(Synth, WriteFailsCleanlyOnBadPath) {
  m64_synth_spec s;
  m64_synth_default(&s);
  m64_err e;
  EXPECT_NE(m64_synth_write(&s, "/nonexistent-dir/x.gguf", &e), 0);
  EXPECT_NE(std::string(e.msg).find("nonexistent"), std::string::npos) << e.msg;
  s.dim = 63;  // an invalid spec fails before any file is made
  std::string path = TempPath("invalid.gguf");
  EXPECT_EQ(m64_synth_write(&s, path.c_str(), &e), M64_EFORMAT);
  EXPECT_NE(access(path.c_str(), F_OK), 0);
}

}  // namespace
