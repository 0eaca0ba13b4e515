// Tests of the reference oracle: against llama.cpp's recorded probabilities on the real
// models in ../shared/models, and on synthetic models of every supported type.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
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

// ------------------------------------------------------------------ experts

// A synthetic model's tensors as F32 originals, to be edited and written back by hand.
struct Tensor {
  std::string name;
  uint32_t n_dims = 1;
  uint64_t ne[3] = {1, 1, 1};
  std::vector<float> v;
};

std::vector<Tensor> SynthTensors(const m64_synth_spec &s) {
  std::vector<Tensor> out;
  m64_err e;
  for (uint32_t i = 0; i < m64_synth_n_tensors(&s); i++) {
    m64_synth_tensor t;
    EXPECT_EQ(m64_synth_tensor_info(&s, i, &t, &e), 0);
    Tensor x;
    x.name = t.name, x.n_dims = t.n_dims;
    for (int d = 0; d < 3; d++) x.ne[d] = t.ne[d];
    x.v.resize(t.ne[0] * t.ne[1] * t.ne[2]);
    EXPECT_EQ(m64_synth_tensor_values(&s, i, x.v.data(), &e), 0);
    out.push_back(x);
  }
  return out;
}

Tensor *Find(std::vector<Tensor> &ts, const std::string &name) {
  for (Tensor &t : ts)
    if (t.name == name) return &t;
  ADD_FAILURE() << "no tensor " << name;
  static Tensor none;
  return &none;
}

std::string BlkName(uint32_t l, const char *what) { return "blk." + std::to_string(l) + "." + what + ".weight"; }

// The hyperparameters the oracle reads, for an architecture and a dense or expert FFN.
struct Shape {
  std::string arch;
  uint32_t dim, layers, heads, kv_heads, head_dim, ffn, n_expert, n_used, expert_ffn;
};

Shape ShapeOf(const m64_synth_spec &s, const char *arch) {
  Shape h{arch, s.dim, s.n_layers, s.n_heads, s.n_kv_heads, s.head_dim ? s.head_dim : s.dim / s.n_heads, s.ffn, 0, 0, 0};
  m64_synth_experts(&s, &h.n_expert, &h.n_used, &h.expert_ffn);
  return h;
}

// Writes the tensors as F32 with the keys the oracle needs.
void WriteF32(const std::string &path, const Shape &h, const std::vector<Tensor> &ts) {
  m64_gguf_writer *w = m64_gguf_writer_new(0);
  ASSERT_NE(w, nullptr);
  auto key = [&](const char *k) { return h.arch + "." + k; };
  m64_gguf_w_str(w, "general.architecture", h.arch.c_str());
  m64_gguf_w_u32(w, key("embedding_length").c_str(), h.dim);
  m64_gguf_w_u32(w, key("block_count").c_str(), h.layers);
  m64_gguf_w_u32(w, key("feed_forward_length").c_str(), h.ffn);
  m64_gguf_w_u32(w, key("attention.head_count").c_str(), h.heads);
  m64_gguf_w_u32(w, key("attention.head_count_kv").c_str(), h.kv_heads);
  m64_gguf_w_u32(w, key("attention.key_length").c_str(), h.head_dim);
  m64_gguf_w_u32(w, key("attention.value_length").c_str(), h.head_dim);
  m64_gguf_w_u32(w, key("context_length").c_str(), 64);
  if (h.n_expert) {
    m64_gguf_w_u32(w, key("expert_count").c_str(), h.n_expert);
    m64_gguf_w_u32(w, key("expert_used_count").c_str(), h.n_used);
    if (h.arch == "qwen3moe") m64_gguf_w_u32(w, key("expert_feed_forward_length").c_str(), h.expert_ffn);
  }
  for (const Tensor &t : ts) ASSERT_EQ(m64_gguf_w_tensor(w, t.name.c_str(), M64_GGML_F32, t.n_dims, t.ne, t.v.data()), 0) << t.name;
  m64_err e;
  ASSERT_EQ(m64_gguf_writer_save(w, path.c_str(), &e), 0) << e.msg;
  m64_gguf_writer_free(w);
}

std::vector<std::vector<float>> RunFile(const std::string &path, int n_pos) {
  std::vector<std::vector<float>> out;
  m64_oracle *o = nullptr;
  m64_err e;
  EXPECT_EQ(m64_oracle_open(path.c_str(), 0, &o, &e), 0) << e.msg;
  if (!o) return out;
  const int tokens[] = {1, 300, 301, 302, 400, 450, 500, 2, 17, 260};
  for (int pos = 0; pos < n_pos; pos++) {
    const float *logits = m64_oracle_forward(o, tokens[pos % 10], pos);
    EXPECT_NE(logits, nullptr);
    if (!logits) break;
    out.emplace_back(logits, logits + m64_oracle_n_vocab(o));
  }
  m64_oracle_close(o);
  return out;
}

// Expert e's block of a 3-D tensor, as a 2-D tensor of its own.
Tensor ExpertOf(const Tensor &t, uint32_t e, const char *name) {
  Tensor x;
  x.name = name, x.n_dims = 2, x.ne[0] = t.ne[0], x.ne[1] = t.ne[1];
  const uint64_t n = t.ne[0] * t.ne[1];
  x.v.assign(t.v.begin() + e * n, t.v.begin() + (e + 1) * n);
  return x;
}

// The dense model whose FFN in each layer is made by `ffn` from the expert tensors.
template <typename F>
std::vector<Tensor> Densify(const std::vector<Tensor> &moe, uint32_t layers, F ffn) {
  std::vector<Tensor> dense;
  for (const Tensor &t : moe)
    if (t.name.find("_exps.") == std::string::npos && t.name.find("ffn_gate_inp") == std::string::npos)
      dense.push_back(t);
  for (uint32_t l = 0; l < layers; l++) {
    std::vector<Tensor> m(moe);
    auto add = ffn(*Find(m, BlkName(l, "ffn_gate_exps")), *Find(m, BlkName(l, "ffn_up_exps")),
                   *Find(m, BlkName(l, "ffn_down_exps")), l);
    dense.insert(dense.end(), add.begin(), add.end());
  }
  return dense;
}

// With K = E and identical experts the routing weights sum to 1 whatever the router says:
// the model is the dense one whose FFN is that expert. qwen3moe's experts are narrower
// than its feed_forward_length, so the expert size must come from its own key.
TEST(OracleMoe, AllExpertsAlikeIsTheDenseModel) {
  for (const char *arch : {"llama", "qwen3moe"}) {
    m64_synth_spec s;
    m64_synth_default(&s);
    s.arch = !strcmp(arch, "llama") ? M64_SYNTH_ARCH_LLAMA : M64_SYNTH_ARCH_QWEN3MOE;
    s.n_expert = 4, s.n_expert_used = 4, s.seed = 3;
    if (s.arch == M64_SYNTH_ARCH_QWEN3MOE) s.expert_ffn = 96;
    std::vector<Tensor> ts = SynthTensors(s);
    for (uint32_t l = 0; l < s.n_layers; l++)
      for (const char *what : {"ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"}) {
        Tensor *t = Find(ts, BlkName(l, what));
        const uint64_t n = t->ne[0] * t->ne[1];
        for (uint64_t e = 1; e < t->ne[2]; e++) std::copy(t->v.begin(), t->v.begin() + n, t->v.begin() + e * n);
      }
    Shape moe = ShapeOf(s, arch);
    std::string moe_path = TempPath(std::string(arch) + "_moe_alike.gguf");
    WriteF32(moe_path, moe, ts);
    Shape dense = moe;
    dense.arch = s.arch == M64_SYNTH_ARCH_LLAMA ? "llama" : "qwen3";
    dense.n_expert = dense.n_used = dense.expert_ffn = 0;
    dense.ffn = moe.expert_ffn;
    std::string dense_path = TempPath(std::string(arch) + "_dense.gguf");
    WriteF32(dense_path, dense, Densify(ts, s.n_layers, [](const Tensor &g, const Tensor &u, const Tensor &d, uint32_t l) {
               return std::vector<Tensor>{ExpertOf(g, 0, BlkName(l, "ffn_gate").c_str()),
                                          ExpertOf(u, 0, BlkName(l, "ffn_up").c_str()),
                                          ExpertOf(d, 0, BlkName(l, "ffn_down").c_str())};
             }));
    auto a = RunFile(moe_path, 6), b = RunFile(dense_path, 6);
    ASSERT_EQ(a.size(), 6u) << arch;
    ASSERT_EQ(b.size(), 6u) << arch;
    ExpectFiniteAndSpread(a, arch);
    double d = RelRmsDiff(b, a);
    printf("%s, 4 of 4 identical experts vs the dense model: relative RMS logit difference %.2e\n", arch, d);
    EXPECT_LT(d, 1e-5) << arch;
    unlink(moe_path.c_str());
    unlink(dense_path.c_str());
  }
}

// A router of zeros ties every expert: the first K by index are taken, each weighing 1/K
// after normalization (1/E before), so 2 of 6 experts are the dense FFN that holds both
// side by side with their down projections halved.
TEST(OracleMoe, TiedRouterTakesTheLowestIndices) {
  m64_synth_spec s;
  m64_synth_default(&s);
  s.n_expert = 6, s.n_expert_used = 2, s.seed = 4;
  std::vector<Tensor> ts = SynthTensors(s);
  for (uint32_t l = 0; l < s.n_layers; l++) {
    std::vector<float> &router = Find(ts, BlkName(l, "ffn_gate_inp"))->v;
    std::fill(router.begin(), router.end(), 0.0f);
  }
  Shape moe = ShapeOf(s, "llama");
  std::string moe_path = TempPath("llama_moe_tied.gguf");
  WriteF32(moe_path, moe, ts);
  Shape dense = moe;
  dense.n_expert = dense.n_used = dense.expert_ffn = 0;
  dense.ffn = 2 * s.ffn;
  const uint64_t dim = s.dim, f = s.ffn;
  auto both = [&](const Tensor &g, const Tensor &u, const Tensor &d, uint32_t l) {
    Tensor gate = ExpertOf(g, 0, BlkName(l, "ffn_gate").c_str()), up = ExpertOf(u, 0, BlkName(l, "ffn_up").c_str());
    Tensor g1 = ExpertOf(g, 1, ""), u1 = ExpertOf(u, 1, "");
    gate.v.insert(gate.v.end(), g1.v.begin(), g1.v.end()), gate.ne[1] = 2 * f;
    up.v.insert(up.v.end(), u1.v.begin(), u1.v.end()), up.ne[1] = 2 * f;
    Tensor down;
    down.name = BlkName(l, "ffn_down"), down.n_dims = 2, down.ne[0] = 2 * f, down.ne[1] = dim;
    for (uint64_t r = 0; r < dim; r++)
      for (uint64_t e = 0; e < 2; e++)
        for (uint64_t c = 0; c < f; c++) down.v.push_back(0.5f * d.v[(e * dim + r) * f + c]);
    return std::vector<Tensor>{gate, up, down};
  };
  std::string dense_path = TempPath("llama_dense_first2.gguf");
  WriteF32(dense_path, dense, Densify(ts, s.n_layers, both));
  auto a = RunFile(moe_path, 6), b = RunFile(dense_path, 6);
  ASSERT_EQ(a.size(), 6u);
  ASSERT_EQ(b.size(), 6u);
  double d = RelRmsDiff(b, a);
  printf("zero router, experts 0 and 1 at 1/2 each vs their dense sum: relative RMS logit difference %.2e\n", d);
  EXPECT_LT(d, 1e-5);
  unlink(moe_path.c_str());
  unlink(dense_path.c_str());
}

// One Q8_0 layer at position 0, computed here step by step from the synthetic originals
// (quantized and dequantized as the file holds them): attention is v through the output
// projection, then the router's top 2 of 8. Different tokens must pick different experts.
TEST(OracleMoe, MatchesHandComputedFirstPosition) {
  m64_synth_spec s;
  m64_synth_default(&s);
  s.n_layers = 1, s.n_expert = 8, s.n_expert_used = 2, s.seed = 6;
  s.type_default = M64_GGML_Q8_0;
  m64_err e;
  std::string path = TempPath("llama_moe_q8.gguf");
  ASSERT_EQ(m64_synth_write(&s, path.c_str(), &e), 0) << e.msg;
  std::vector<Tensor> ts = SynthTensors(s);
  for (uint32_t i = 0; i < m64_synth_n_tensors(&s); i++) {  // as the file holds them
    m64_synth_tensor t;
    ASSERT_EQ(m64_synth_tensor_info(&s, i, &t, &e), 0);
    std::vector<uint8_t> q(t.nbytes);
    ASSERT_EQ(m64_ref_quantize_row(t.type, ts[i].v.data(), q.data(), ts[i].v.size()), 0);
    ASSERT_EQ(m64_ref_dequantize_row(t.type, q.data(), ts[i].v.data(), ts[i].v.size()), 0);
  }
  const uint32_t dim = s.dim, f = s.ffn, hd = dim / s.n_heads, kv = hd * s.n_kv_heads, E = 8, K = 2;
  auto matvec = [](const std::vector<float> &W, const std::vector<float> &x, uint64_t off, uint32_t rows) {
    std::vector<float> y(rows);
    for (uint32_t r = 0; r < rows; r++) {
      double sum = 0;
      for (size_t c = 0; c < x.size(); c++) sum += (double)W[off + r * x.size() + c] * x[c];
      y[r] = (float)sum;
    }
    return y;
  };
  auto rmsnorm = [&](const std::vector<float> &x, const std::vector<float> &w) {
    double ss = 0;
    for (float v : x) ss += (double)v * v;
    std::vector<float> y(x.size());
    for (size_t i = 0; i < x.size(); i++) y[i] = (float)(x[i] / std::sqrt(ss / x.size() + s.norm_eps) * w[i]);
    return y;
  };
  m64_oracle *o = nullptr;
  ASSERT_EQ(m64_oracle_open(path.c_str(), 0, &o, &e), 0) << e.msg;
  std::set<std::vector<uint32_t>> picks;
  for (int token : {1, 5, 77, 260, 300, 333, 401, 450, 499, 511}) {
    const Tensor &embd = *Find(ts, "token_embd.weight");
    std::vector<float> x(embd.v.begin() + token * dim, embd.v.begin() + (token + 1) * dim);
    std::vector<float> v = matvec(Find(ts, BlkName(0, "attn_v"))->v, rmsnorm(x, Find(ts, BlkName(0, "attn_norm"))->v), 0, kv);
    std::vector<float> heads(dim);  // one position: each head's output is its kv head's v
    for (uint32_t h = 0; h < s.n_heads; h++)
      for (uint32_t i = 0; i < hd; i++) heads[h * hd + i] = v[(h / (s.n_heads / s.n_kv_heads)) * hd + i];
    std::vector<float> att = matvec(Find(ts, BlkName(0, "attn_output"))->v, heads, 0, dim);
    for (uint32_t i = 0; i < dim; i++) x[i] += att[i];
    std::vector<float> xb = rmsnorm(x, Find(ts, BlkName(0, "ffn_norm"))->v);
    std::vector<float> logit = matvec(Find(ts, BlkName(0, "ffn_gate_inp"))->v, xb, 0, E);
    double mx = *std::max_element(logit.begin(), logit.end()), z = 0;
    std::vector<double> p(E);
    for (uint32_t i = 0; i < E; i++) z += p[i] = std::exp(logit[i] - mx);
    std::vector<uint32_t> order(E);
    for (uint32_t i = 0; i < E; i++) order[i] = i, p[i] /= z;
    // most probable first, ties to the lower index (std::sort with the index as tie-break:
    // libstdc++ 12's stable_sort uses an API clang's -Werror calls deprecated)
    std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
    std::vector<uint32_t> chosen(order.begin(), order.begin() + K);
    picks.insert(chosen);
    const double wsum = p[chosen[0]] + p[chosen[1]];
    for (uint32_t k = 0; k < K; k++) {
      const uint32_t ex = chosen[k];
      std::vector<float> g = matvec(Find(ts, BlkName(0, "ffn_gate_exps"))->v, xb, (uint64_t)ex * f * dim, f);
      std::vector<float> u = matvec(Find(ts, BlkName(0, "ffn_up_exps"))->v, xb, (uint64_t)ex * f * dim, f);
      for (uint32_t i = 0; i < f; i++) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
      std::vector<float> y = matvec(Find(ts, BlkName(0, "ffn_down_exps"))->v, g, (uint64_t)ex * dim * f, dim);
      for (uint32_t i = 0; i < dim; i++) x[i] += (float)(y[i] * (p[ex] / wsum));
    }
    std::vector<float> want = matvec(Find(ts, "output.weight")->v, rmsnorm(x, Find(ts, "output_norm.weight")->v), 0, s.n_vocab);
    const float *got = m64_oracle_forward(o, token, 0);
    ASSERT_NE(got, nullptr);
    double diff = 0, scale = 0;
    for (uint32_t i = 0; i < s.n_vocab; i++) diff += (got[i] - want[i]) * (got[i] - want[i]), scale += want[i] * want[i];
    EXPECT_LT(std::sqrt(diff / scale), 1e-5) << "token " << token << ": experts " << chosen[0] << ", " << chosen[1];
  }
  m64_oracle_close(o);
  printf("10 tokens chose %zu different pairs of the 8 experts\n", picks.size());
  EXPECT_GE(picks.size(), 4u) << "routing should depend on the token";
  unlink(path.c_str());
}

// qwen3moe in a K-quant mix stays near its F32 model, like the dense architectures.
TEST(OracleMoe, SmallMoeMixNearF32) {
  m64_synth_spec s;
  m64_err e;
  ASSERT_EQ(m64_synth_preset(&s, "small-moe", &e), 0);
  s.seed = 8;
  std::string f32 = TempPath("small_moe_f32.gguf"), mix = TempPath("small_moe_q4km.gguf");
  ASSERT_EQ(m64_synth_write(&s, f32.c_str(), &e), 0) << e.msg;
  s.mix = M64_SYNTH_MIX_Q4_K_M;
  ASSERT_EQ(m64_synth_write(&s, mix.c_str(), &e), 0) << e.msg;
  auto a = RunFile(f32, 6), b = RunFile(mix, 6);
  ASSERT_EQ(a.size(), 6u);
  ASSERT_EQ(b.size(), 6u);
  ExpectFiniteAndSpread(a, "small-moe F32");
  double d = RelRmsDiff(a, b);
  printf("small-moe q4_k_m relative RMS logit difference vs F32 %.3e\n", d);
  EXPECT_LT(d, LogitTolerance(M64_GGML_Q4_K));
  unlink(f32.c_str());
  unlink(mix.c_str());
}

TEST(OracleMoe, RejectsBadExpertCounts) {
  m64_synth_spec s;
  m64_synth_default(&s);
  s.n_expert = 4, s.n_expert_used = 2;
  std::vector<Tensor> ts = SynthTensors(s);
  Shape h = ShapeOf(s, "llama");
  h.n_used = 5;
  std::string path = TempPath("llama_moe_bad.gguf");
  WriteF32(path, h, ts);
  m64_oracle *o = nullptr;
  m64_err e;
  EXPECT_EQ(m64_oracle_open(path.c_str(), 16, &o, &e), M64_EFORMAT);
  EXPECT_EQ(o, nullptr);
  h.n_used = 2, h.n_expert = 3;  // the tensors hold 4
  WriteF32(path, h, ts);
  EXPECT_EQ(m64_oracle_open(path.c_str(), 16, &o, &e), M64_EFORMAT);
  EXPECT_NE(std::string(e.msg).find("ffn_gate_inp"), std::string::npos) << e.msg;
  unlink(path.c_str());
}

}  // namespace
