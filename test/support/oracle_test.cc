// Tests of the reference oracle: against llama.cpp's recorded probabilities on the real
// models in ../shared/models, and on synthetic models of every supported type.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

#include "m64_formats.h"
#include "oracle.h"
#include "quant.h"
#include "synth.h"

namespace {

const std::string kModels = M64_SHARED_MODELS;

bool Exists(const std::string &path) { return access(path.c_str(), R_OK) == 0; }

std::string TempPath(const std::string &name) {
  return ::testing::TempDir() + "m64_oracle_" + std::to_string(getpid()) + "_" + name;
}

// One line of a reference/*.probs.jsonl file.
struct RefStep {
  int pos = -1;
  int greedy = -1;
  std::vector<std::pair<int, double>> top;
};

// Reads {"pos":P,"sampled":S,"greedy":G,"top":[[id,p],...]} lines (our files only).
std::vector<RefStep> ReadProbs(const std::string &path) {
  std::vector<RefStep> steps;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    RefStep s;
    size_t p = line.find("\"pos\":");
    size_t g = line.find("\"greedy\":");
    size_t t = line.find("\"top\":");
    if (p == std::string::npos || g == std::string::npos || t == std::string::npos) continue;
    s.pos = atoi(line.c_str() + p + 6);
    s.greedy = atoi(line.c_str() + g + 9);
    const char *c = line.c_str() + t + 6;
    while ((c = strchr(c, '[')) != nullptr) {
      if (c[1] == '[') { c++; continue; }
      char *end;
      int id = (int)strtol(c + 1, &end, 10);
      double prob = strtod(end + 1, &end);
      s.top.emplace_back(id, prob);
      c = end;
    }
    steps.push_back(s);
  }
  return steps;
}

std::vector<double> Softmax(const float *logits, uint32_t n) {
  double max = logits[0];
  for (uint32_t i = 1; i < n; i++) max = std::max(max, (double)logits[i]);
  std::vector<double> p(n);
  double sum = 0;
  for (uint32_t i = 0; i < n; i++) sum += p[i] = std::exp((double)logits[i] - max);
  for (double &v : p) v /= sum;
  return p;
}

// Feeds the prompt, then the reference's greedy tokens (teacher forcing, so one early
// disagreement cannot derail every later position), and checks each position's
// distribution. abs_tol bounds every top-5 probability; argmax may differ from the
// reference only where our probabilities of the two tokens are within abs_tol.
void CompareWithReference(const std::string &model, const std::vector<int> &prompt,
                          const std::string &probs, double abs_tol, size_t want_steps) {
  std::vector<RefStep> ref = ReadProbs(probs);
  ASSERT_EQ(ref.size(), want_steps) << probs;
  ASSERT_EQ(ref[0].pos, (int)prompt.size()) << "reference starts after the prompt";
  m64_oracle *o = nullptr;
  m64_err e;
  ASSERT_EQ(m64_oracle_open(model.c_str(), 0, &o, &e), 0) << e.msg;
  const float *logits = nullptr;
  int pos = 0;
  for (int tok : prompt) logits = m64_oracle_forward(o, tok, pos++);
  int exact_argmax = 0;
  for (const RefStep &step : ref) {
    ASSERT_NE(logits, nullptr);
    ASSERT_EQ(step.pos, pos);
    uint32_t n = m64_oracle_n_vocab(o);
    std::vector<double> p = Softmax(logits, n);
    int argmax = (int)(std::max_element(p.begin(), p.end()) - p.begin());
    if (argmax == step.greedy) {
      exact_argmax++;
    } else {
      EXPECT_LE(p[argmax] - p[step.greedy], abs_tol)
          << "pos " << pos << ": argmax " << argmax << " (p " << p[argmax] << "), reference "
          << step.greedy << " (p " << p[step.greedy] << ")";
    }
    ASSERT_EQ(step.top.size(), 5u);
    for (const auto &[id, prob] : step.top)
      EXPECT_NEAR(p[id], prob, abs_tol) << "pos " << pos << " token " << id;
    logits = m64_oracle_forward(o, step.greedy, pos++);
  }
  printf("%s: argmax equal to the reference at %d of %zu positions\n", model.c_str(),
         exact_argmax, ref.size());
  m64_oracle_close(o);
}

TEST(Oracle, Stories260KMatchesLlamaCpp) {
  std::string model = kModels + "/stories260K.gguf";
  std::string probs = kModels + "/reference/stories260K-once-upon-a-time.probs.jsonl";
  if (!Exists(model) || !Exists(probs))
    GTEST_SKIP() << "needs " << model << " and " << probs << " (../shared/models absent)";
  std::vector<RefStep> ref = ReadProbs(probs);
  CompareWithReference(model, {1, 403, 407, 261, 378}, probs, 1e-3, 32);
  // Here every greedy id must match exactly (the distribution is peaked).
  m64_oracle *o = nullptr;
  m64_err e;
  ASSERT_EQ(m64_oracle_open(model.c_str(), 64, &o, &e), 0) << e.msg;
  EXPECT_EQ(m64_oracle_n_vocab(o), 512u);
  EXPECT_EQ(m64_oracle_n_ctx(o), 64u);
  std::vector<int> tokens = {1, 403, 407, 261, 378};
  const float *logits = nullptr;
  for (size_t i = 0; i < tokens.size(); i++) logits = m64_oracle_forward(o, tokens[i], (int)i);
  for (const RefStep &step : ref) {  // free-running greedy decoding this time
    int argmax = (int)(std::max_element(logits, logits + 512) - logits);
    ASSERT_EQ(argmax, step.greedy) << "pos " << step.pos;
    logits = m64_oracle_forward(o, argmax, step.pos);
  }
  EXPECT_EQ(m64_oracle_forward(o, 512, 0), nullptr);
  EXPECT_EQ(m64_oracle_forward(o, 1, 64), nullptr);
  m64_oracle_close(o);
}

// "The capital of France is" as LLaMA-2's SentencePiece gives it: each word is one piece
// of the vocabulary, so the ids are found by looking the pieces up in the model itself.
std::vector<int> CapitalPrompt(const std::string &model) {
  std::vector<int> ids = {1};
  m64_gguf *g = nullptr;
  m64_err e;
  if (m64_gguf_open(model.c_str(), &g, &e)) return {};
  const char *words[] = {"The", "capital", "of", "France", "is"};
  m64_gguf_vtype type;
  uint64_t n = 0;
  m64_gguf_get_arr(g, "tokenizer.ggml.tokens", &type, &n);
  for (const char *w : words) {
    std::string piece = std::string("\xe2\x96\x81") + w;
    int found = -1;
    for (uint64_t i = 0; i < n && found < 0; i++) {
      m64_str s;
      if (!m64_gguf_arr_str(g, "tokenizer.ggml.tokens", i, &s) && s.len == piece.size() &&
          !memcmp(s.ptr, piece.data(), s.len))
        found = (int)i;
    }
    if (found < 0) ids.clear();
    if (found < 0) break;
    ids.push_back(found);
  }
  m64_gguf_close(g);
  return ids;
}

TEST(Oracle, LlamaTinyRandomF16MatchesLlamaCpp) {
  std::string model = kModels + "/llama-2-tiny-random.gguf";
  std::string probs = kModels + "/reference/llama-2-tiny-random-capital.probs.jsonl";
  if (!Exists(model) || !Exists(probs))
    GTEST_SKIP() << "needs " << model << " and " << probs << " (../shared/models absent)";
  std::vector<int> prompt = CapitalPrompt(model);
  ASSERT_EQ(prompt.size(), 6u) << "a prompt word is not a single vocabulary piece";
  // The well-known LLaMA-2 ids of these pieces.
  EXPECT_EQ(prompt, (std::vector<int>{1, 450, 7483, 310, 3444, 338}));
  // Probabilities are ~3.9e-5 and printed with 6 decimals: compare to 1.5e-6 (about 4%
  // relative), i.e. half a printed unit of rounding plus float noise.
  CompareWithReference(model, prompt, probs, 1.5e-6, 16);
}

// ------------------------------------------------------------------ synthetic models

// Runs the oracle on a synthetic model (shape "tiny" or "small"; mix overrides type).
std::vector<std::vector<float>> RunSynth(uint32_t type, int tied, int n_pos,
                                         const char *shape = "tiny",
                                         uint32_t mix = M64_SYNTH_MIX_NONE) {
  m64_synth_spec s;
  m64_err e;
  EXPECT_EQ(m64_synth_preset(&s, shape, &e), 0) << e.msg;
  s.type_default = type;
  s.mix = mix;
  s.tied_output = tied;
  s.seed = 42;
  std::string path = TempPath(std::string(shape) + "_" + m64_ggml_type_info(type).name +
                              (mix ? std::string("_") + m64_synth_mix_name(mix) : "") +
                              (tied ? "_tied" : "") + ".gguf");
  std::vector<std::vector<float>> out;
  EXPECT_EQ(m64_synth_write(&s, path.c_str(), &e), 0) << e.msg;
  m64_oracle *o = nullptr;
  EXPECT_EQ(m64_oracle_open(path.c_str(), 0, &o, &e), 0) << e.msg;
  unlink(path.c_str());
  if (!o) return out;
  EXPECT_EQ(m64_oracle_n_vocab(o), s.n_vocab);
  EXPECT_EQ(m64_oracle_n_ctx(o), s.n_ctx);
  int tokens[] = {1, 300, 301, 302, 400, 450, 500, 2, 17, 260};
  for (int pos = 0; pos < n_pos; pos++) {
    const float *logits = m64_oracle_forward(o, tokens[pos % 10], pos);
    EXPECT_NE(logits, nullptr);
    if (!logits) break;
    out.emplace_back(logits, logits + s.n_vocab);
  }
  m64_oracle_close(o);
  return out;
}

// RMS of (a - b) over all positions, relative to the RMS of a.
double RelRmsDiff(const std::vector<std::vector<float>> &a,
                  const std::vector<std::vector<float>> &b) {
  double diff = 0, scale = 0;
  for (size_t p = 0; p < a.size(); p++)
    for (size_t i = 0; i < a[p].size(); i++) {
      diff += ((double)a[p][i] - b[p][i]) * ((double)a[p][i] - b[p][i]);
      scale += (double)a[p][i] * a[p][i];
    }
  return std::sqrt(diff / scale);
}

// Positions where both runs pick the same next token.
int SameArgmax(const std::vector<std::vector<float>> &a, const std::vector<std::vector<float>> &b) {
  int same = 0;
  for (size_t p = 0; p < a.size(); p++)
    same += std::max_element(a[p].begin(), a[p].end()) - a[p].begin() ==
            std::max_element(b[p].begin(), b[p].end()) - b[p].begin();
  return same;
}

TEST(Oracle, SyntheticModelsOfEveryType) {
  const int n_pos = 12;
  auto f32 = RunSynth(M64_GGML_F32, 0, n_pos);
  auto f16 = RunSynth(M64_GGML_F16, 0, n_pos);
  auto q8 = RunSynth(M64_GGML_Q8_0, 0, n_pos);
  auto q4 = RunSynth(M64_GGML_Q4_0, 0, n_pos);
  for (auto *run : {&f32, &f16, &q8, &q4}) {
    ASSERT_EQ(run->size(), (size_t)n_pos);
    double spread = 0;
    for (const auto &logits : *run)
      for (float v : logits) {
        ASSERT_TRUE(std::isfinite(v));
        spread = std::max(spread, (double)std::fabs(v));
      }
    EXPECT_GT(spread, 0.5) << "logits should not be flat";
  }
  // Same seed, so the same underlying weights: the error grows with coarser types.
  // Tolerances: RMS logit difference relative to the RMS of the F32 logits. Each weight's
  // relative RMS error (F16 ~3e-4, Q8_0 ~6e-3, Q4_0 ~9e-2) adds up in quadrature over the
  // ~16 matrices on the path (about x4), which is what these bounds allow, with margin.
  double d16 = RelRmsDiff(f32, f16), d8 = RelRmsDiff(f32, q8), d4 = RelRmsDiff(f32, q4);
  printf("relative RMS logit difference vs F32: F16 %.2e, Q8_0 %.2e, Q4_0 %.2e; "
         "same argmax at %d, %d, %d of %d positions\n",
         d16, d8, d4, SameArgmax(f32, f16), SameArgmax(f32, q8), SameArgmax(f32, q4), n_pos);
  EXPECT_LT(d16, 2e-3);
  EXPECT_LT(d8, 4e-2);
  EXPECT_LT(d4, 0.6);
  EXPECT_LT(d16, d8);
  EXPECT_LT(d8, d4);
  EXPECT_EQ(SameArgmax(f32, f16), n_pos);
  EXPECT_GE(SameArgmax(f32, q8), n_pos - 1);
}

// Largest relative RMS logit difference from the F32 model (RMS of the difference over
// RMS of the F32 logits) allowed for a small-shape model of a type (seed 42, 6 positions).
// The difference comes out at about 3.2x the type's relative RMS weight error (quadrature
// over the ~16 quantized matrices on the path): F16 8e-4, BF16 6e-3, Q8_0 1.8e-2, Q6_K
// 7e-2, the 5-bit types 0.12-0.14, the 4-bit ones 0.25-0.28, Q3_K 0.52, Q2_K 1.04. The
// tolerances are about twice that. Q2_K's logits hardly track the F32 ones any more
// (unrelated logits of the same size would give ~1.4): its bound only catches gross errors.
double LogitTolerance(uint32_t type) {
  switch (type) {
    case M64_GGML_F32: return 0;
    case M64_GGML_F16: return 2e-3;
    case M64_GGML_BF16: return 1.5e-2;
    case M64_GGML_Q8_0: return 4e-2;
    case M64_GGML_Q6_K: return 0.15;
    case M64_GGML_Q5_0: case M64_GGML_Q5_1: case M64_GGML_Q5_K: return 0.3;
    case M64_GGML_Q3_K: return 1.0;
    case M64_GGML_Q2_K: return 1.3;
    default: return 0.55;  // the 4-bit types: Q4_0, Q4_1, Q4_K, IQ4_NL, IQ4_XS
  }
}

void ExpectFiniteAndSpread(const std::vector<std::vector<float>> &run, const std::string &what) {
  double spread = 0;
  for (const auto &logits : run)
    for (float v : logits) {
      ASSERT_TRUE(std::isfinite(v)) << what;
      spread = std::max(spread, (double)std::fabs(v));
    }
  EXPECT_GT(spread, 0.5) << what << ": logits should not be flat";
}

// The small shape (dim 256, ffn 512) takes every type; the oracle dequantizes each
// through quant.c and must stay close to the F32 model of the same weights.
TEST(Oracle, SmallModelsOfEveryType) {
  const int n_pos = 6;
  auto f32 = RunSynth(M64_GGML_F32, 0, n_pos, "small");
  ASSERT_EQ(f32.size(), (size_t)n_pos);
  ExpectFiniteAndSpread(f32, "F32");
  const uint32_t types[] = {M64_GGML_F16,  M64_GGML_BF16,   M64_GGML_Q8_0, M64_GGML_Q4_0,
                            M64_GGML_Q4_1, M64_GGML_Q5_0,   M64_GGML_Q5_1, M64_GGML_IQ4_NL,
                            M64_GGML_Q2_K, M64_GGML_Q3_K,   M64_GGML_Q4_K, M64_GGML_Q5_K,
                            M64_GGML_Q6_K, M64_GGML_IQ4_XS};
  std::vector<double> diff(M64_GGML_TYPE_COUNT, -1);
  for (uint32_t type : types) {
    const char *name = m64_ggml_type_info(type).name;
    auto run = RunSynth(type, 0, n_pos, "small");
    ASSERT_EQ(run.size(), (size_t)n_pos) << name;
    ExpectFiniteAndSpread(run, name);
    double d = diff[type] = RelRmsDiff(f32, run);
    printf("small %-7s relative RMS logit difference vs F32 %.3e (tolerance %.1e), same argmax "
           "at %d of %d positions\n", name, d, LogitTolerance(type), SameArgmax(f32, run), n_pos);
    EXPECT_LT(d, LogitTolerance(type)) << name;
  }
  // More bits, less error.
  EXPECT_LT(diff[M64_GGML_F16], diff[M64_GGML_BF16]);
  EXPECT_LT(diff[M64_GGML_BF16], diff[M64_GGML_Q8_0]);
  EXPECT_LT(diff[M64_GGML_Q8_0], diff[M64_GGML_Q6_K]);
  EXPECT_LT(diff[M64_GGML_Q6_K], diff[M64_GGML_Q5_K]);
  EXPECT_LT(diff[M64_GGML_Q5_K], diff[M64_GGML_Q4_K]);
  EXPECT_LT(diff[M64_GGML_Q4_K], diff[M64_GGML_Q3_K]);
  EXPECT_LT(diff[M64_GGML_Q3_K], diff[M64_GGML_Q2_K]);
  EXPECT_LT(diff[M64_GGML_Q5_1], diff[M64_GGML_Q4_1]);
  EXPECT_LT(diff[M64_GGML_Q5_0], diff[M64_GGML_Q4_0]);
  // The mixes sit between their base type and Q6_K.
  for (uint32_t mix = 1; mix < M64_SYNTH_MIX_COUNT; mix++) {
    auto run = RunSynth(M64_GGML_F32, 0, n_pos, "small", mix);
    ASSERT_EQ(run.size(), (size_t)n_pos) << m64_synth_mix_name(mix);
    ExpectFiniteAndSpread(run, m64_synth_mix_name(mix));
    uint32_t base = mix == M64_SYNTH_MIX_Q2_K     ? M64_GGML_Q2_K
                    : mix == M64_SYNTH_MIX_Q3_K_M ? M64_GGML_Q3_K
                    : mix == M64_SYNTH_MIX_Q4_K_M ? M64_GGML_Q4_K
                                                  : M64_GGML_Q5_K;
    double d = RelRmsDiff(f32, run);
    printf("small mix %-7s relative RMS logit difference vs F32 %.3e (tolerance %.1e)\n",
           m64_synth_mix_name(mix), d, LogitTolerance(base));
    EXPECT_LT(d, LogitTolerance(base)) << m64_synth_mix_name(mix);
  }
}

TEST(Oracle, TiedOutputUsesEmbeddings) {
  auto tied = RunSynth(M64_GGML_Q8_0, 1, 3);
  ASSERT_EQ(tied.size(), 3u);
  for (const auto &logits : tied)
    for (float v : logits) ASSERT_TRUE(std::isfinite(v));
}

TEST(Oracle, RejectsUnsupportedTypeNamingTheTensor) {
  // A model whose blk.0.ffn_up is IQ2_XXS: written by hand with the formats writer.
  m64_synth_spec s;
  m64_synth_default(&s);
  s.dim = 256, s.ffn = 256, s.n_layers = 1, s.n_vocab = 259;
  m64_err e;
  m64_gguf_writer *w = m64_gguf_writer_new(0);
  ASSERT_NE(w, nullptr);
  m64_gguf_w_str(w, "general.architecture", "llama");
  m64_gguf_w_u32(w, "llama.embedding_length", s.dim);
  m64_gguf_w_u32(w, "llama.block_count", s.n_layers);
  m64_gguf_w_u32(w, "llama.feed_forward_length", s.ffn);
  m64_gguf_w_u32(w, "llama.attention.head_count", s.n_heads);
  m64_gguf_w_u32(w, "llama.attention.head_count_kv", s.n_kv_heads);
  for (uint32_t i = 0; i < m64_synth_n_tensors(&s); i++) {
    m64_synth_tensor t;
    ASSERT_EQ(m64_synth_tensor_info(&s, i, &t, &e), 0);
    std::vector<float> v(t.ne[0] * t.ne[1]);
    ASSERT_EQ(m64_synth_tensor_values(&s, i, v.data(), &e), 0);
    if (!strcmp(t.name, "blk.0.ffn_up.weight")) {
      uint64_t row = 0;
      ASSERT_EQ(m64_ggml_row_bytes(M64_GGML_IQ2_XXS, t.ne[0], &row), 0);
      std::vector<uint8_t> zeros(row * t.ne[1]);
      ASSERT_EQ(m64_gguf_w_tensor(w, t.name, M64_GGML_IQ2_XXS, t.n_dims, t.ne, zeros.data()), 0);
    } else {
      ASSERT_EQ(m64_gguf_w_tensor(w, t.name, M64_GGML_F32, t.n_dims, t.ne, v.data()), 0);
    }
  }
  std::string path = TempPath("iq2xxs.gguf");
  ASSERT_EQ(m64_gguf_writer_save(w, path.c_str(), &e), 0) << e.msg;
  m64_gguf_writer_free(w);
  m64_oracle *o = nullptr;
  EXPECT_EQ(m64_oracle_open(path.c_str(), 16, &o, &e), M64_EUNSUPPORTED);
  EXPECT_EQ(o, nullptr);
  EXPECT_NE(std::string(e.msg).find("blk.0.ffn_up.weight"), std::string::npos) << e.msg;
  EXPECT_NE(std::string(e.msg).find("IQ2_XXS"), std::string::npos) << e.msg;
  unlink(path.c_str());
}

}  // namespace
