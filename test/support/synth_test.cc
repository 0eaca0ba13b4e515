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
#include "quant_bounds.h"
#include "synth.h"

namespace {

using m64test::BoundBlock;
using m64test::ElemBound;
using m64test::RmsBound;

std::string TempPath(const std::string &name) {
  return ::testing::TempDir() + "m64_synth_" + std::to_string(getpid()) + "_" + name;
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
  s.type_default = M64_GGML_Q4_K;  // tiny rows of 64 are not whole 256-element blocks
  EXPECT_EQ(m64_synth_validate(&s, &e), M64_EFORMAT);
  EXPECT_NE(std::string(e.msg).find("token_embd.weight"), std::string::npos) << e.msg;
  EXPECT_NE(std::string(e.msg).find("Q4_K blocks of 256"), std::string::npos) << e.msg;
  EXPECT_NE(std::string(e.msg).find("--shape small"), std::string::npos) << e.msg;
  ASSERT_EQ(m64_synth_preset(&s, "small", &e), 0);
  s.type_default = M64_GGML_Q4_K;
  EXPECT_EQ(m64_synth_validate(&s, &e), 0) << e.msg;
  s.ffn = 640;  // ffn_down rows of 640
  EXPECT_EQ(m64_synth_validate(&s, &e), M64_EFORMAT);
  EXPECT_NE(std::string(e.msg).find("blk.0.ffn_down.weight"), std::string::npos) << e.msg;
  m64_synth_default(&s);
  s.type_default = M64_GGML_IQ2_XXS;
  EXPECT_EQ(m64_synth_validate(&s, &e), M64_EUNSUPPORTED);
  m64_synth_default(&s);
  s.mix = M64_SYNTH_MIX_COUNT;
  EXPECT_EQ(m64_synth_validate(&s, &e), M64_EUNSUPPORTED);
  m64_synth_default(&s);
  s.mix = M64_SYNTH_MIX_Q4_K_M;  // a K-quant mix on tiny rows
  EXPECT_EQ(m64_synth_validate(&s, &e), M64_EFORMAT);
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

void CheckTensors(const m64_synth_spec &s, const m64_gguf *g);

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
  CheckTensors(s, g);
  m64_gguf_close(g);
}

// Every tensor as the spec describes it, its bytes the quantized originals.
void CheckTensors(const m64_synth_spec &s, const m64_gguf *g) {
  m64_err e;
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
    EXPECT_EQ(t->ne[2], want.ne[2]) << want.name;
    EXPECT_EQ(t->nbytes, want.nbytes) << want.name;
    if (strstr(want.name, "norm")) {
      EXPECT_EQ(t->type, (uint32_t)M64_GGML_F32);
    }

    // Dequantized values stay within the type's error of the regenerated originals.
    uint64_t count = want.ne[0] * want.ne[1] * want.ne[2];
    std::vector<float> orig(count), got(count);
    ASSERT_EQ(m64_synth_tensor_values(&s, i, orig.data(), &e), 0);
    ASSERT_EQ(m64_ref_dequantize_row(t->type, t->data, got.data(), count), 0);
    std::vector<uint8_t> quantized(want.nbytes);
    ASSERT_EQ(m64_ref_quantize_row(t->type, orig.data(), quantized.data(), count), 0);
    ASSERT_EQ(memcmp(quantized.data(), t->data, want.nbytes), 0) << want.name;
    uint64_t block = BoundBlock(t->type);
    double sq_err = 0, sq_val = 0;
    for (uint64_t b = 0; b < count; b += block) {
      double amax = 0;
      for (uint64_t k = b; k < b + block; k++) amax = std::max(amax, (double)std::fabs(orig[k]));
      for (uint64_t k = b; k < b + block; k++) {
        double err = std::fabs((double)got[k] - orig[k]);
        ASSERT_LE(err, ElemBound(t->type, amax, orig[k])) << want.name << " element " << k;
        sq_err += err * err;
        sq_val += (double)orig[k] * orig[k];
      }
    }
    if (!strstr(want.name, "norm")) {
      EXPECT_LE(std::sqrt(sq_err / sq_val), RmsBound(t->type)) << want.name;
    }
  }
}

class SynthTypes : public ::testing::TestWithParam<uint32_t> {};

// Every type on the small shape (256-wide rows), and the 32-block ones on tiny too.
TEST_P(SynthTypes, WritesReadableModel) {
  m64_synth_spec s;
  m64_err e;
  ASSERT_EQ(m64_synth_preset(&s, "small", &e), 0);
  s.type_default = GetParam();
  s.seed = 7;
  std::string small = TempPath(std::string("small_") + m64_ggml_type_info(GetParam()).name + ".gguf");
  ASSERT_EQ(m64_synth_write(&s, small.c_str(), &e), 0) << e.msg;
  CheckFile(s, small);
  unlink(small.c_str());
  if (m64_ref_block_elems(GetParam()) > 32) return;
  m64_synth_default(&s);
  s.type_default = GetParam();
  s.seed = 7;
  std::string path = TempPath(std::string("model_") + m64_ggml_type_info(GetParam()).name + ".gguf");
  ASSERT_EQ(m64_synth_write(&s, path.c_str(), &e), 0) << e.msg;
  CheckFile(s, path);
  unlink(path.c_str());
}

INSTANTIATE_TEST_SUITE_P(AllTypes, SynthTypes,
                         ::testing::Values(M64_GGML_F32, M64_GGML_F16, M64_GGML_BF16,
                                           M64_GGML_Q8_0, M64_GGML_Q4_0, M64_GGML_Q4_1,
                                           M64_GGML_Q5_0, M64_GGML_Q5_1, M64_GGML_IQ4_NL,
                                           M64_GGML_Q2_K, M64_GGML_Q3_K, M64_GGML_Q4_K,
                                           M64_GGML_Q5_K, M64_GGML_Q6_K, M64_GGML_IQ4_XS),
                         [](const ::testing::TestParamInfo<uint32_t> &info) {
                           return std::string(m64_ggml_type_info(info.param).name);
                         });

// ------------------------------------------------------------------ mixes

TEST(SynthMix, Names) {
  m64_err e;
  uint32_t mix = 99;
  ASSERT_EQ(m64_synth_mix_parse("q4_k_m", &mix, &e), 0);
  EXPECT_EQ(mix, (uint32_t)M64_SYNTH_MIX_Q4_K_M);
  ASSERT_EQ(m64_synth_mix_parse("Q2_K", &mix, &e), 0);
  EXPECT_EQ(mix, (uint32_t)M64_SYNTH_MIX_Q2_K);
  ASSERT_EQ(m64_synth_mix_parse("q3_K_M", &mix, &e), 0);
  EXPECT_EQ(mix, (uint32_t)M64_SYNTH_MIX_Q3_K_M);
  ASSERT_EQ(m64_synth_mix_parse("q5_k_m", &mix, &e), 0);
  EXPECT_EQ(mix, (uint32_t)M64_SYNTH_MIX_Q5_K_M);
  ASSERT_EQ(m64_synth_mix_parse("none", &mix, &e), 0);
  EXPECT_EQ(mix, (uint32_t)M64_SYNTH_MIX_NONE);
  EXPECT_EQ(m64_synth_mix_parse("q4_k", &mix, &e), M64_ENOTFOUND);
  EXPECT_EQ(m64_synth_mix_parse("q4_k_m_", &mix, &e), M64_ENOTFOUND);
  EXPECT_STREQ(m64_synth_mix_name(M64_SYNTH_MIX_Q3_K_M), "q3_k_m");
  EXPECT_EQ(m64_synth_mix_name(M64_SYNTH_MIX_COUNT), nullptr);
}

// Type of one tensor of a spec, by name.
uint32_t TypeOf(const m64_synth_spec &s, const std::string &name) {
  m64_err e;
  for (uint32_t i = 0; i < m64_synth_n_tensors(&s); i++) {
    m64_synth_tensor t;
    EXPECT_EQ(m64_synth_tensor_info(&s, i, &t, &e), 0);
    if (name == t.name) return t.type;
  }
  ADD_FAILURE() << "no tensor " << name;
  return M64_GGML_TYPE_COUNT;
}

std::string Blk(uint32_t layer, const char *what) {
  return "blk." + std::to_string(layer) + "." + what + ".weight";
}

// llama.cpp's use_more_bits for 8 layers: i < 1 || i >= 7 || (i - 1) % 3 == 2: 0, 3, 6, 7.
const bool kMoreBits8[8] = {true, false, false, true, false, false, true, true};

TEST(SynthMix, Q4_K_M_and_Q5_K_M) {
  for (uint32_t mix : {M64_SYNTH_MIX_Q4_K_M, M64_SYNTH_MIX_Q5_K_M}) {
    const uint32_t base = mix == M64_SYNTH_MIX_Q4_K_M ? M64_GGML_Q4_K : M64_GGML_Q5_K;
    m64_synth_spec s;
    m64_err e;
    ASSERT_EQ(m64_synth_preset(&s, "small", &e), 0);
    s.mix = mix;
    s.n_layers = 8;
    ASSERT_EQ(m64_synth_validate(&s, &e), 0) << e.msg;
    EXPECT_EQ(TypeOf(s, "token_embd.weight"), base);
    EXPECT_EQ(TypeOf(s, "output.weight"), (uint32_t)M64_GGML_Q6_K);
    EXPECT_EQ(TypeOf(s, "output_norm.weight"), (uint32_t)M64_GGML_F32);
    for (uint32_t l = 0; l < 8; l++) {
      uint32_t more = kMoreBits8[l] ? (uint32_t)M64_GGML_Q6_K : base;
      EXPECT_EQ(TypeOf(s, Blk(l, "attn_v")), more) << l;
      EXPECT_EQ(TypeOf(s, Blk(l, "ffn_down")), more) << l;
      for (const char *other : {"attn_q", "attn_k", "attn_output", "ffn_gate", "ffn_up"})
        EXPECT_EQ(TypeOf(s, Blk(l, other)), base) << l << " " << other;
      EXPECT_EQ(TypeOf(s, Blk(l, "attn_norm")), (uint32_t)M64_GGML_F32);
      EXPECT_EQ(TypeOf(s, Blk(l, "ffn_norm")), (uint32_t)M64_GGML_F32);
    }
    // Tied output: token_embd takes output's type (llama.cpp quantizes it as the output).
    s.tied_output = 1;
    EXPECT_EQ(TypeOf(s, "token_embd.weight"), (uint32_t)M64_GGML_Q6_K);
    // Explicit per-tensor types still win.
    s.type_embd = M64_GGML_Q8_0;
    s.type_attn_v = M64_GGML_Q5_0;
    EXPECT_EQ(TypeOf(s, "token_embd.weight"), (uint32_t)M64_GGML_Q8_0);
    EXPECT_EQ(TypeOf(s, Blk(0, "attn_v")), (uint32_t)M64_GGML_Q5_0);
    EXPECT_EQ(TypeOf(s, Blk(0, "ffn_down")), (uint32_t)M64_GGML_Q6_K);
  }
  // Two layers (the small preset): n/8 = 0 and 7n/8 = 1, so only layer 1 gets more bits.
  m64_synth_spec s;
  m64_err e;
  ASSERT_EQ(m64_synth_preset(&s, "small", &e), 0);
  s.mix = M64_SYNTH_MIX_Q4_K_M;
  EXPECT_EQ(TypeOf(s, Blk(0, "attn_v")), (uint32_t)M64_GGML_Q4_K);  // 0 < 0 fails, (0-0)%3 != 2
  EXPECT_EQ(TypeOf(s, Blk(1, "attn_v")), (uint32_t)M64_GGML_Q6_K);  // 1 >= 7*2/8 = 1
}

TEST(SynthMix, Q3_K_M) {
  m64_synth_spec s;
  m64_err e;
  ASSERT_EQ(m64_synth_preset(&s, "small", &e), 0);
  s.mix = M64_SYNTH_MIX_Q3_K_M;
  s.n_layers = 32;
  ASSERT_EQ(m64_synth_validate(&s, &e), 0) << e.msg;
  EXPECT_EQ(TypeOf(s, "token_embd.weight"), (uint32_t)M64_GGML_Q3_K);
  EXPECT_EQ(TypeOf(s, "output.weight"), (uint32_t)M64_GGML_Q6_K);
  for (uint32_t l : {0u, 1u, 2u, 17u, 31u}) {
    EXPECT_EQ(TypeOf(s, Blk(l, "attn_v")), l < 2 ? (uint32_t)M64_GGML_Q5_K : (uint32_t)M64_GGML_Q4_K);
    EXPECT_EQ(TypeOf(s, Blk(l, "ffn_down")), l < 2 ? (uint32_t)M64_GGML_Q5_K : (uint32_t)M64_GGML_Q4_K);
    EXPECT_EQ(TypeOf(s, Blk(l, "attn_output")), (uint32_t)M64_GGML_Q4_K);
    for (const char *other : {"attn_q", "attn_k", "ffn_gate", "ffn_up"})
      EXPECT_EQ(TypeOf(s, Blk(l, other)), (uint32_t)M64_GGML_Q3_K) << l << " " << other;
  }
}

TEST(SynthMix, Q2_K) {
  m64_synth_spec s;
  m64_err e;
  ASSERT_EQ(m64_synth_preset(&s, "small", &e), 0);
  s.mix = M64_SYNTH_MIX_Q2_K;
  ASSERT_EQ(m64_synth_validate(&s, &e), 0) << e.msg;
  EXPECT_EQ(TypeOf(s, "token_embd.weight"), (uint32_t)M64_GGML_Q2_K);
  EXPECT_EQ(TypeOf(s, "output.weight"), (uint32_t)M64_GGML_Q6_K);
  EXPECT_EQ(TypeOf(s, Blk(1, "attn_v")), (uint32_t)M64_GGML_Q3_K);  // gqa 2
  EXPECT_EQ(TypeOf(s, Blk(1, "ffn_down")), (uint32_t)M64_GGML_Q3_K);
  EXPECT_EQ(TypeOf(s, Blk(1, "attn_output")), (uint32_t)M64_GGML_Q3_K);
  EXPECT_EQ(TypeOf(s, Blk(1, "attn_q")), (uint32_t)M64_GGML_Q2_K);
  EXPECT_EQ(TypeOf(s, Blk(1, "ffn_up")), (uint32_t)M64_GGML_Q2_K);
  s.n_kv_heads = 1;  // gqa 4
  EXPECT_EQ(TypeOf(s, Blk(1, "attn_v")), (uint32_t)M64_GGML_Q4_K);
}

// A mixed file written and read back: types, sizes and values as the spec says.
TEST(SynthMix, WritesEveryMix) {
  for (uint32_t mix = 1; mix < M64_SYNTH_MIX_COUNT; mix++) {
    m64_synth_spec s;
    m64_err e;
    ASSERT_EQ(m64_synth_preset(&s, "small", &e), 0);
    s.mix = mix;
    s.n_layers = 3;
    s.seed = 5;
    std::string path = TempPath(std::string("mix_") + m64_synth_mix_name(mix) + ".gguf");
    ASSERT_EQ(m64_synth_write(&s, path.c_str(), &e), 0) << e.msg;
    CheckFile(s, path);
    unlink(path.c_str());
  }
}

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

// The same spec writes the same bytes twice; another seed, other bytes.
void ExpectDeterministic(m64_synth_spec s, const std::string &stem) {
  std::string a = TempPath(stem + "_a.gguf"), b = TempPath(stem + "_b.gguf"), c = TempPath(stem + "_c.gguf");
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

TEST(Synth, DeterministicFromSeed) {
  m64_synth_spec s;
  m64_synth_default(&s);
  s.type_default = M64_GGML_Q8_0;
  ExpectDeterministic(s, "seed");
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

// ------------------------------------------------------------------ experts

// qwen3moe in the Q4_K_M mix: the router F32, gate/up experts the base type, down experts
// ffn_down's more-bits rule; no dense FFN tensors; qwen3's q/k norms.
TEST(SynthMoe, Qwen3MoeTensorsAndTypes) {
  m64_synth_spec s;
  m64_err e;
  ASSERT_EQ(m64_synth_preset(&s, "small-moe", &e), 0);
  EXPECT_EQ(s.arch, (uint32_t)M64_SYNTH_ARCH_QWEN3MOE);
  EXPECT_STREQ(m64_synth_arch_name(M64_SYNTH_ARCH_QWEN3MOE), "qwen3moe");
  s.mix = M64_SYNTH_MIX_Q4_K_M;
  s.n_layers = 8;
  ASSERT_EQ(m64_synth_validate(&s, &e), 0) << e.msg;
  ASSERT_EQ(m64_synth_n_tensors(&s), 3u + 8 * 12);
  std::set<std::string> names;
  for (uint32_t i = 0; i < m64_synth_n_tensors(&s); i++) {
    m64_synth_tensor t;
    ASSERT_EQ(m64_synth_tensor_info(&s, i, &t, &e), 0);
    names.insert(t.name);
    EXPECT_EQ(strstr(t.name, "ffn_gate.weight"), nullptr) << t.name;
    EXPECT_EQ(strstr(t.name, "ffn_up.weight"), nullptr) << t.name;
    EXPECT_EQ(strstr(t.name, "ffn_down.weight"), nullptr) << t.name;
  }
  for (uint32_t l = 0; l < 8; l++) {
    for (const char *what : {"attn_q_norm", "attn_k_norm", "ffn_norm", "ffn_gate_inp", "ffn_gate_exps",
                             "ffn_up_exps", "ffn_down_exps"})
      EXPECT_TRUE(names.count(Blk(l, what))) << l << " " << what;
    EXPECT_EQ(TypeOf(s, Blk(l, "ffn_gate_inp")), (uint32_t)M64_GGML_F32) << l;
    EXPECT_EQ(TypeOf(s, Blk(l, "ffn_gate_exps")), (uint32_t)M64_GGML_Q4_K) << l;
    EXPECT_EQ(TypeOf(s, Blk(l, "ffn_up_exps")), (uint32_t)M64_GGML_Q4_K) << l;
    EXPECT_EQ(TypeOf(s, Blk(l, "ffn_down_exps")), kMoreBits8[l] ? (uint32_t)M64_GGML_Q6_K : (uint32_t)M64_GGML_Q4_K)
        << l;
  }
  // Shapes: router [dim, E]; gate/up [dim, F, E]; down [F, dim, E].
  for (uint32_t i = 0; i < m64_synth_n_tensors(&s); i++) {
    m64_synth_tensor t;
    ASSERT_EQ(m64_synth_tensor_info(&s, i, &t, &e), 0);
    const std::string n = t.name;
    if (n == Blk(3, "ffn_gate_inp")) {
      EXPECT_EQ(t.n_dims, 2u);
      EXPECT_EQ(t.ne[0], 256u); EXPECT_EQ(t.ne[1], 8u); EXPECT_EQ(t.ne[2], 1u);
      EXPECT_EQ(t.nbytes, 256u * 8 * 4);
    } else if (n == Blk(3, "ffn_up_exps") || n == Blk(3, "ffn_gate_exps")) {
      EXPECT_EQ(t.n_dims, 3u);
      EXPECT_EQ(t.ne[0], 256u); EXPECT_EQ(t.ne[1], 256u); EXPECT_EQ(t.ne[2], 8u);
      EXPECT_EQ(t.nbytes, 256u / 256 * 144 * 256 * 8);
    } else if (n == Blk(3, "ffn_down_exps")) {  // layer 3 uses more bits: Q6_K
      EXPECT_EQ(t.n_dims, 3u);
      EXPECT_EQ(t.ne[0], 256u); EXPECT_EQ(t.ne[1], 256u); EXPECT_EQ(t.ne[2], 8u);
      EXPECT_EQ(t.nbytes, 210u * 256 * 8);
    }
  }
  // The down experts take the ffn_down override; the router stays F32 whatever the types.
  s.type_ffn_down = M64_GGML_Q8_0;
  s.mix = M64_SYNTH_MIX_NONE;
  s.type_default = M64_GGML_Q5_0;
  EXPECT_EQ(TypeOf(s, Blk(1, "ffn_down_exps")), (uint32_t)M64_GGML_Q8_0);
  EXPECT_EQ(TypeOf(s, Blk(1, "ffn_up_exps")), (uint32_t)M64_GGML_Q5_0);
  EXPECT_EQ(TypeOf(s, Blk(1, "ffn_gate_inp")), (uint32_t)M64_GGML_F32);
}

// Written and read back by the formats reader: keys, 3-D tensors, their bytes.
TEST(SynthMoe, Qwen3MoeWritesReadableFile) {
  m64_synth_spec s;
  m64_err e;
  ASSERT_EQ(m64_synth_preset(&s, "small-moe", &e), 0);
  s.mix = M64_SYNTH_MIX_Q4_K_M;
  s.n_layers = 3;
  s.head_dim = 128;  // qwen3's explicit head size: q is 512 wide
  s.seed = 9;
  std::string path = TempPath("qwen3moe.gguf");
  ASSERT_EQ(m64_synth_write(&s, path.c_str(), &e), 0) << e.msg;
  m64_gguf *g = nullptr;
  ASSERT_EQ(m64_gguf_open(path.c_str(), &g, &e), 0) << e.msg;
  EXPECT_EQ(GetStr(g, "general.architecture"), "qwen3moe");
  EXPECT_EQ(GetU32(g, "qwen3moe.expert_count"), 8u);
  EXPECT_EQ(GetU32(g, "qwen3moe.expert_used_count"), 2u);
  EXPECT_EQ(GetU32(g, "qwen3moe.expert_feed_forward_length"), 256u);
  EXPECT_EQ(GetU32(g, "qwen3moe.feed_forward_length"), 512u);
  EXPECT_EQ(GetU32(g, "qwen3moe.attention.key_length"), 128u);
  EXPECT_EQ(GetU32(g, "qwen3moe.attention.value_length"), 128u);
  EXPECT_EQ(GetU32(g, "qwen3moe.block_count"), 3u);
  const m64_gguf_tensor *down = m64_gguf_find_tensor(g, "blk.2.ffn_down_exps.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->n_dims, 3u);
  EXPECT_EQ(down->ne[0], 256u); EXPECT_EQ(down->ne[1], 256u); EXPECT_EQ(down->ne[2], 8u);
  EXPECT_EQ(down->n_elems, 256u * 256 * 8);
  const m64_gguf_tensor *q = m64_gguf_find_tensor(g, "blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->ne[1], 512u);
  CheckTensors(s, g);
  m64_gguf_close(g);
  unlink(path.c_str());
}

// Mixtral-style llama: expert_count and expert_used_count, no expert_feed_forward_length
// (llama.cpp takes the expert size from feed_forward_length).
TEST(SynthMoe, LlamaWithExperts) {
  m64_synth_spec s;
  m64_err e;
  m64_synth_default(&s);
  s.type_default = M64_GGML_Q8_0;
  s.n_expert = 4;
  s.n_layers = 3;
  uint32_t n_expert, n_used, expert_ffn;
  m64_synth_experts(&s, &n_expert, &n_used, &expert_ffn);
  EXPECT_EQ(n_expert, 4u);
  EXPECT_EQ(n_used, 2u);
  EXPECT_EQ(expert_ffn, s.ffn);
  ASSERT_EQ(m64_synth_n_tensors(&s), 3u + 3 * 10);
  std::string path = TempPath("llama_moe.gguf");
  ASSERT_EQ(m64_synth_write(&s, path.c_str(), &e), 0) << e.msg;
  CheckFile(s, path);
  m64_gguf *g = nullptr;
  ASSERT_EQ(m64_gguf_open(path.c_str(), &g, &e), 0) << e.msg;
  EXPECT_EQ(GetU32(g, "llama.expert_count"), 4u);
  EXPECT_EQ(GetU32(g, "llama.expert_used_count"), 2u);
  EXPECT_EQ(m64_gguf_find_kv(g, "llama.expert_feed_forward_length"), -1);
  EXPECT_EQ(m64_gguf_find_tensor(g, "blk.0.ffn_gate.weight"), nullptr);
  const m64_gguf_tensor *router = m64_gguf_find_tensor(g, "blk.1.ffn_gate_inp.weight");
  ASSERT_NE(router, nullptr);
  EXPECT_EQ(router->type, (uint32_t)M64_GGML_F32);  // not Q8_0: llama.cpp keeps it F32
  EXPECT_EQ(router->ne[0], 64u); EXPECT_EQ(router->ne[1], 4u);
  const m64_gguf_tensor *gate = m64_gguf_find_tensor(g, "blk.1.ffn_gate_exps.weight");
  ASSERT_NE(gate, nullptr);
  EXPECT_EQ(gate->type, (uint32_t)M64_GGML_Q8_0);
  EXPECT_EQ(gate->n_dims, 3u);
  EXPECT_EQ(gate->ne[0], 64u); EXPECT_EQ(gate->ne[1], 160u); EXPECT_EQ(gate->ne[2], 4u);
  // Routing is not degenerate: router rows differ, no two logits tie on a random input.
  std::vector<float> r(64 * 4);
  for (uint32_t i = 0; i < m64_synth_n_tensors(&s); i++) {
    m64_synth_tensor t;
    ASSERT_EQ(m64_synth_tensor_info(&s, i, &t, &e), 0);
    if (!strcmp(t.name, "blk.1.ffn_gate_inp.weight")) {
      ASSERT_EQ(m64_synth_tensor_values(&s, i, r.data(), &e), 0);
    }
  }
  std::set<float> logits;
  for (int x = 0; x < 4; x++) {
    double sum = 0;
    for (int j = 0; j < 64; j++) sum += r[x * 64 + j] * (j % 3 - 1.0);
    logits.insert((float)sum);
  }
  EXPECT_EQ(logits.size(), 4u);
  m64_gguf_close(g);
  unlink(path.c_str());
}

TEST(SynthMoe, ValidateRejectsBadExperts) {
  m64_synth_spec s;
  m64_err e;
  m64_synth_default(&s);
  s.n_expert = 4;
  EXPECT_EQ(m64_synth_validate(&s, &e), 0) << e.msg;
  s.n_expert_used = 5;  // K > E
  EXPECT_EQ(m64_synth_validate(&s, &e), M64_EFORMAT);
  s.n_expert_used = 4;  // K = E is fine
  EXPECT_EQ(m64_synth_validate(&s, &e), 0) << e.msg;
  s.n_expert = 257, s.n_expert_used = 2;
  EXPECT_EQ(m64_synth_validate(&s, &e), M64_ELIMIT);
  s.n_expert = 4, s.expert_ffn = 96;  // llama's experts are ffn wide
  EXPECT_EQ(m64_synth_validate(&s, &e), M64_EFORMAT);
  EXPECT_NE(std::string(e.msg).find("feed_forward_length"), std::string::npos) << e.msg;
  m64_synth_default(&s);
  s.n_expert_used = 2;  // without experts
  EXPECT_NE(m64_synth_validate(&s, &e), 0);
  m64_synth_default(&s);
  s.arch = M64_SYNTH_ARCH_QWEN2;
  s.n_expert = 4;
  EXPECT_EQ(m64_synth_validate(&s, &e), M64_EUNSUPPORTED);
  // qwen3moe without experts given: 8 of them, 2 used, ffn wide.
  m64_synth_default(&s);
  s.arch = M64_SYNTH_ARCH_QWEN3MOE;
  EXPECT_EQ(m64_synth_validate(&s, &e), 0) << e.msg;
  uint32_t n_expert, n_used, expert_ffn;
  m64_synth_experts(&s, &n_expert, &n_used, &expert_ffn);
  EXPECT_EQ(n_expert, 8u); EXPECT_EQ(n_used, 2u); EXPECT_EQ(expert_ffn, s.ffn);
  // Expert rows must be whole blocks too: down experts of 320 in Q4_K.
  ASSERT_EQ(m64_synth_preset(&s, "small-moe", &e), 0);
  s.type_default = M64_GGML_Q4_K;
  EXPECT_EQ(m64_synth_validate(&s, &e), 0) << e.msg;
  s.expert_ffn = 320;
  EXPECT_EQ(m64_synth_validate(&s, &e), M64_EFORMAT);
  EXPECT_NE(std::string(e.msg).find("blk.0.ffn_down_exps.weight"), std::string::npos) << e.msg;
}

TEST(SynthMoe, Qwen3_30B_A3B_Shape) {
  m64_synth_spec s;
  m64_err e;
  ASSERT_EQ(m64_synth_preset(&s, "30b-a3b", &e), 0);
  s.mix = M64_SYNTH_MIX_Q4_K_M;
  ASSERT_EQ(m64_synth_validate(&s, &e), 0) << e.msg;
  ASSERT_EQ(m64_synth_n_tensors(&s), 3u + 48 * 12);
  EXPECT_EQ(TypeOf(s, Blk(0, "ffn_down_exps")), (uint32_t)M64_GGML_Q6_K);  // 0 < 48/8
  EXPECT_EQ(TypeOf(s, Blk(6, "ffn_down_exps")), (uint32_t)M64_GGML_Q4_K);
  EXPECT_EQ(TypeOf(s, Blk(8, "ffn_down_exps")), (uint32_t)M64_GGML_Q6_K);  // (8 - 6) % 3 == 2
  m64_synth_tensor t;
  ASSERT_EQ(m64_synth_tensor_info(&s, 3 + 47 * 12 + 9, &t, &e), 0);
  EXPECT_STREQ(t.name, "blk.47.ffn_down_exps.weight");
  EXPECT_EQ(t.ne[0], 768u); EXPECT_EQ(t.ne[1], 2048u); EXPECT_EQ(t.ne[2], 128u);
  EXPECT_EQ(t.type, (uint32_t)M64_GGML_Q6_K);
  ASSERT_EQ(m64_synth_tensor_info(&s, 3 + 5 * 12 + 1, &t, &e), 0);
  EXPECT_STREQ(t.name, "blk.5.attn_q.weight");
  EXPECT_EQ(t.ne[0], 2048u); EXPECT_EQ(t.ne[1], 32u * 128);
  // 30.5e9 parameters: 18.55 GB as Q4_K_M (llama.cpp's Qwen3-30B-A3B-Q4_K_M: 18.6 GB).
  double gb = (double)m64_synth_data_bytes(&s) / 1e9;
  EXPECT_GT(gb, 18.5);
  EXPECT_LT(gb, 18.6);
}

TEST(SynthMoe, DeterministicFromSeed) {
  m64_synth_spec s;
  m64_err e;
  ASSERT_EQ(m64_synth_preset(&s, "small-moe", &e), 0);
  s.type_default = M64_GGML_Q8_0;
  ExpectDeterministic(s, "moe");
}

}  // namespace
