// Tokenizer, sampler and tokenizer-blob tests: the module sources built natively.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

extern "C" {
#include "sampler.h"
#include "synth.h"
#include "tokblob.h"
#include "tokenizer.h"
#include "chat.h"

// base.c logs through the host import; natively the test is the host.
void m64_host_log(const char *msg, uint32_t len) { fprintf(stderr, "%.*s\n", (int)len, msg); }

// mm_alloc never frees by design (module memory lives as long as the instance), so a
// sanitizer build would report every reload as a leak.
const char *__asan_default_options(void) { return "detect_leaks=0"; }
}

namespace {

// ---- a small JSON reader for the reference lines: {"text": s, "ids": [n...], "detok": s}

struct RefLine {
  std::string text, detok;
  std::vector<int32_t> ids;
};

class Json {
 public:
  explicit Json(const std::string &s) : s_(s) {}

  bool ParseLine(RefLine *out) {
    if (!Eat('{')) return false;
    for (;;) {
      std::string key;
      if (!String(&key) || !Eat(':')) return false;
      if (key == "ids") {
        if (!Ints(&out->ids)) return false;
      } else if (key == "text" || key == "detok") {
        if (!String(key == "text" ? &out->text : &out->detok)) return false;
      } else {
        return false;
      }
      if (Eat(',')) continue;
      return Eat('}');
    }
  }

 private:
  void Space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\r')) i_++;
  }
  bool Eat(char c) {
    Space();
    if (i_ < s_.size() && s_[i_] == c) {
      i_++;
      return true;
    }
    return false;
  }
  bool Hex4(uint32_t *v) {
    if (i_ + 4 > s_.size()) return false;
    *v = 0;
    for (int k = 0; k < 4; k++) {
      char c = s_[i_++];
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (d < 0) return false;
      *v = *v << 4 | (uint32_t)d;
    }
    return true;
  }
  static void Utf8(uint32_t cp, std::string *out) {
    if (cp < 0x80) {
      out->push_back((char)cp);
    } else if (cp < 0x800) {
      out->push_back((char)(0xC0 | cp >> 6));
      out->push_back((char)(0x80 | (cp & 63)));
    } else if (cp < 0x10000) {
      out->push_back((char)(0xE0 | cp >> 12));
      out->push_back((char)(0x80 | (cp >> 6 & 63)));
      out->push_back((char)(0x80 | (cp & 63)));
    } else {
      out->push_back((char)(0xF0 | cp >> 18));
      out->push_back((char)(0x80 | (cp >> 12 & 63)));
      out->push_back((char)(0x80 | (cp >> 6 & 63)));
      out->push_back((char)(0x80 | (cp & 63)));
    }
  }
  bool String(std::string *out) {
    if (!Eat('"')) return false;
    out->clear();
    while (i_ < s_.size()) {
      char c = s_[i_++];
      if (c == '"') return true;
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (i_ >= s_.size()) return false;
      char esc = s_[i_++];
      uint32_t cp;
      switch (esc) {
        case 'n': out->push_back('\n'); break;
        case 't': out->push_back('\t'); break;
        case 'r': out->push_back('\r'); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case '"': case '\\': case '/': out->push_back(esc); break;
        case 'u':
          if (!Hex4(&cp)) return false;
          if (cp >= 0xD800 && cp < 0xDC00) {  // high surrogate: a low one must follow
            uint32_t lo;
            if (i_ + 2 > s_.size() || s_[i_] != '\\' || s_[i_ + 1] != 'u') return false;
            i_ += 2;
            if (!Hex4(&lo) || lo < 0xDC00 || lo >= 0xE000) return false;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          Utf8(cp, out);
          break;
        default: return false;
      }
    }
    return false;
  }
  bool Ints(std::vector<int32_t> *out) {
    if (!Eat('[')) return false;
    if (Eat(']')) return true;
    for (;;) {
      Space();
      size_t start = i_;
      if (i_ < s_.size() && s_[i_] == '-') i_++;
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') i_++;
      if (i_ == start) return false;
      out->push_back((int32_t)std::stol(s_.substr(start, i_ - start)));
      if (Eat(',')) continue;
      return Eat(']');
    }
  }

  const std::string &s_;
  size_t i_ = 0;
};

TEST(JsonReader, EscapesAndSurrogates) {
  RefLine r;
  std::string line = R"({"text":"a\n\t\"\\\u00e9\ud83e\udd99","ids":[1, 23,-4],"detok":""})";
  ASSERT_TRUE(Json(line).ParseLine(&r));
  EXPECT_EQ(r.text, "a\n\t\"\\\xC3\xA9\xF0\x9F\xA6\x99");
  EXPECT_EQ(r.ids, (std::vector<int32_t>{1, 23, -4}));
}

// ---- models

std::string SharedModels() {
#ifdef M64_SHARED_MODELS
  return M64_SHARED_MODELS;
#else
  return "";
#endif
}

bool Exists(const std::string &path) { return std::ifstream(path).good(); }

#define REQUIRE_SHARED(file)                                                              \
  do {                                                                                     \
    if (!Exists(SharedModels() + "/" + (file)))                                            \
      GTEST_SKIP() << "shared models not found at " << SharedModels() << " (" << (file) << ")"; \
  } while (0)

struct GgufCloser {
  void operator()(m64_gguf *g) const { m64_gguf_close(g); }
};
using GgufPtr = std::unique_ptr<m64_gguf, GgufCloser>;

// Blob of a shared model, built once; tok_load keeps pointers into it, so it lives on.
const std::vector<uint8_t> &ModelBlob(const std::string &gguf) {
  static std::map<std::string, std::vector<uint8_t>> cache;
  auto it = cache.find(gguf);
  if (it != cache.end()) return it->second;
  m64_err e{};
  m64_gguf *g = nullptr;
  std::vector<uint8_t> blob;
  int rc = m64_gguf_open((SharedModels() + "/" + gguf).c_str(), &g, &e);
  EXPECT_EQ(rc, M64_OK) << e.msg;
  if (rc == M64_OK) {
    GgufPtr owner(g);
    uint8_t *b = nullptr;
    size_t n = 0;
    rc = m64_tokblob_build(g, &b, &n, &e);
    EXPECT_EQ(rc, M64_OK) << e.msg;
    if (rc == M64_OK) blob.assign(b, b + n);
    free(b);
  }
  return cache[gguf] = blob;
}

bool LoadModel(const std::string &gguf) {
  const std::vector<uint8_t> &blob = ModelBlob(gguf);
  if (blob.empty()) return false;
  int32_t rc = tok_load(blob.data(), (uint32_t)blob.size());
  EXPECT_EQ(rc, 0);
  return rc == 0;
}

std::vector<int32_t> Encode(const std::string &text, bool bos) {
  std::vector<int32_t> out(text.size() * 4 + 8);
  int32_t n = tok_encode(text.data(), (uint32_t)text.size(), bos ? 1 : 0, out.data(),
                         (uint32_t)out.size());
  EXPECT_GE(n, 0);
  out.resize(n < 0 ? 0 : (size_t)n);
  return out;
}

std::string Decode(const std::vector<int32_t> &ids, int32_t prev = -1) {
  std::string s;
  char buf[TOK_MAX_TOKEN_LEN];
  for (int32_t id : ids) {
    int32_t n = tok_piece(prev, id, buf, sizeof buf);
    EXPECT_GE(n, 0) << "id " << id;
    if (n > 0) s.append(buf, (size_t)n);
    prev = id;
  }
  return s;
}

std::string Show(const std::vector<int32_t> &v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); i++) s += (i ? "," : "") + std::to_string(v[i]);
  return s + "]";
}

void CheckReference(const std::string &gguf, const std::string &jsonl, int min_lines = 23) {
  REQUIRE_SHARED(gguf);
  REQUIRE_SHARED("tokenizer/" + jsonl);
  ASSERT_TRUE(LoadModel(gguf));
  std::ifstream in(SharedModels() + "/tokenizer/" + jsonl);
  std::string line;
  int n_lines = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    RefLine ref;
    ASSERT_TRUE(Json(line).ParseLine(&ref)) << "unparsable line: " << line;
    n_lines++;
    std::vector<int32_t> ids = Encode(ref.text, false);
    EXPECT_EQ(Show(ids), Show(ref.ids)) << "text: \"" << ref.text << "\"";
    EXPECT_EQ(Decode(ref.ids), ref.detok) << "ids " << Show(ref.ids);
  }
  EXPECT_GE(n_lines, min_lines);
}

TEST(Tokenizer, ReferenceStories260K) { CheckReference("stories260K.gguf", "stories260K.jsonl"); }
TEST(Tokenizer, ReferenceLlama2Vocab) {
  CheckReference("llama-2-tiny-random.gguf", "llama-2-tiny-random.jsonl");
}

// The real Llama 3 vocabulary (128,256 tokens, 280,147 merges, llama-bpe): llama.cpp's ids
// for 83 strings (23 short ones, 60 paragraphs of prose), and decoding gives the input back.
TEST(Tokenizer, ReferenceLlama3Bpe) {
  CheckReference("llama3-bpe-tiny.gguf", "llama3-bpe-tiny.jsonl", 83);
  std::ifstream in(SharedModels() + "/tokenizer/llama3-bpe-tiny.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    RefLine ref;
    if (line.empty() || !Json(line).ParseLine(&ref)) continue;
    EXPECT_EQ(Decode(ref.ids), ref.text) << "ids " << Show(ref.ids);
  }
}

TEST(Tokenizer, PromptWithBos) {
  REQUIRE_SHARED("stories260K.gguf");
  ASSERT_TRUE(LoadModel("stories260K.gguf"));
  EXPECT_EQ(tok_n_vocab(), 512u);
  EXPECT_EQ(tok_bos(), 1);
  EXPECT_EQ(tok_eos(), 2);
  EXPECT_EQ(tok_add_bos(), 1);
  EXPECT_EQ(Show(Encode("Once upon a time", true)), "[1,403,407,261,378]");
  EXPECT_EQ(Show(Encode("", true)), "[1]");
  EXPECT_EQ(Show(Encode("", false)), "[]");
  // The piece after BOS loses the space encode added; later pieces keep theirs.
  std::vector<int32_t> ids = Encode("Once upon a time", true);
  EXPECT_EQ(Decode(std::vector<int32_t>(ids.begin() + 1, ids.end()), 1), "Once upon a time");
  EXPECT_EQ(Decode(ids), "Once upon a time");
  char buf[64];
  int32_t n = tok_piece(403, 407, buf, sizeof buf);
  ASSERT_GT(n, 0);
  EXPECT_EQ(buf[0], ' ');
}

TEST(Tokenizer, BufferLimitsAndBadIds) {
  REQUIRE_SHARED("stories260K.gguf");
  ASSERT_TRUE(LoadModel("stories260K.gguf"));
  int32_t out[5];
  EXPECT_EQ(tok_encode("Once upon a time", 16, 1, out, 5), 5);
  EXPECT_EQ(tok_encode("Once upon a time", 16, 1, out, 4), -1);
  EXPECT_EQ(tok_encode("Once upon a time", 16, 1, out, 0), -1);
  EXPECT_EQ(tok_encode("", 0, 1, out, 0), -1);
  EXPECT_EQ(tok_encode("", 0, 0, nullptr, 0), 0);
  char buf[TOK_MAX_TOKEN_LEN];
  EXPECT_EQ(tok_piece(-1, -1, buf, sizeof buf), -1);
  EXPECT_EQ(tok_piece(-1, 512, buf, sizeof buf), -1);
  EXPECT_EQ(tok_piece(-1, 1, buf, sizeof buf), 0);  // BOS (control) has no text
  EXPECT_EQ(tok_piece(-1, 2, buf, sizeof buf), 0);  // EOS
  EXPECT_EQ(tok_piece(-1, 0, buf, sizeof buf), 0);  // unk
  EXPECT_EQ(tok_piece(-1, 13, buf, sizeof buf), 1); // <0x0A>
  EXPECT_EQ(buf[0], '\n');
  EXPECT_EQ(tok_piece(261, 403, buf, 1), -2);       // " Once" does not fit in 1 byte
}

TEST(Tokenizer, RoundTripsArbitraryBytes) {
  REQUIRE_SHARED("llama-2-tiny-random.gguf");
  ASSERT_TRUE(LoadModel("llama-2-tiny-random.gguf"));
  std::mt19937 rng(1234);
  const char *pieces[] = {"a", "b", " ", "  ", "the", "\xE2\x96\x81", "\xC3\xA9",
                          "\xF0\x9F\xA6\x99",
                          "\x80", "\xFF", "\xE2\x96", "\n", "<s>", "<0x41>", "0"};
  for (int round = 0; round < 300; round++) {
    std::string text;
    int n = (int)(rng() % 40);
    for (int i = 0; i < n; i++) {
      if (rng() % 4 == 0) text.push_back((char)(rng() & 0xFF));
      else text += pieces[rng() % (sizeof pieces / sizeof *pieces)];
    }
    std::vector<int32_t> ids = Encode(text, false);
    for (int32_t id : ids) {
      EXPECT_NE(id, 1) << "BOS from text";
      EXPECT_NE(id, 0) << "unk: the vocab has every byte";
    }
    // The escape maps "▁" and " " to the same token text: compare with both spelled " ".
    auto spaces = [](std::string s) {
      for (size_t p; (p = s.find("\xE2\x96\x81")) != std::string::npos;) s.replace(p, 3, " ");
      return s;
    };
    EXPECT_EQ(spaces(Decode(ids)), spaces(text)) << Show(ids);
  }
}

TEST(Tokenizer, LongTextScales) {
  REQUIRE_SHARED("llama-2-tiny-random.gguf");
  ASSERT_TRUE(LoadModel("llama-2-tiny-random.gguf"));
  std::string text;
  while (text.size() < (1u << 20)) text += "Once upon a time, there was a little girl named Lily. ";
  std::vector<int32_t> ids = Encode(text, true);
  ASSERT_GT(ids.size(), 1000u);
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ(Decode(ids), text);
  // the same text twice gives the same ids (the scratch is reused, not stale)
  EXPECT_EQ(Encode(text, true), ids);
  EXPECT_EQ(Show(Encode("a", false)), "[263]");
}

// ---- hand-built GGUF files (the formats library reads them from memory)

class GgufBuilder {
 public:
  void Str(const std::string &key, const std::string &v) { Key(key, 8); String(v); n_kv_++; }
  void U32(const std::string &key, uint32_t v) { Key(key, 4); Put(&v, 4); n_kv_++; }
  void I32(const std::string &key, int32_t v) { Key(key, 5); Put(&v, 4); n_kv_++; }
  void Bool(const std::string &key, bool v) { Key(key, 7); uint8_t b = v; Put(&b, 1); n_kv_++; }
  void Strs(const std::string &key, const std::vector<std::string> &v) {
    Key(key, 9); uint32_t t = 8; Put(&t, 4); uint64_t n = v.size(); Put(&n, 8);
    for (auto &s : v) String(s);
    n_kv_++;
  }
  void F32s(const std::string &key, const std::vector<float> &v) {
    Key(key, 9); uint32_t t = 6; Put(&t, 4); uint64_t n = v.size(); Put(&n, 8);
    Put(v.data(), v.size() * 4);
    n_kv_++;
  }
  void I32s(const std::string &key, const std::vector<int32_t> &v) {
    Key(key, 9); uint32_t t = 5; Put(&t, 4); uint64_t n = v.size(); Put(&n, 8);
    Put(v.data(), v.size() * 4);
    n_kv_++;
  }
  std::vector<uint8_t> Bytes() const {
    std::vector<uint8_t> f = {'G', 'G', 'U', 'F', 3, 0, 0, 0};
    uint64_t n_tensors = 0;
    f.insert(f.end(), (const uint8_t *)&n_tensors, (const uint8_t *)&n_tensors + 8);
    f.insert(f.end(), (const uint8_t *)&n_kv_, (const uint8_t *)&n_kv_ + 8);
    f.insert(f.end(), kv_.begin(), kv_.end());
    while (f.size() % 32) f.push_back(0);
    return f;
  }

 private:
  void Put(const void *p, size_t n) {
    kv_.insert(kv_.end(), (const uint8_t *)p, (const uint8_t *)p + n);
  }
  void String(const std::string &s) { uint64_t n = s.size(); Put(&n, 8); Put(s.data(), s.size()); }
  void Key(const std::string &key, uint32_t type) { String(key); Put(&type, 4); }
  std::vector<uint8_t> kv_;
  uint64_t n_kv_ = 0;
};

struct Built {
  int rc;
  std::string msg;
  std::vector<uint8_t> blob;
};

Built BuildFrom(const GgufBuilder &b) {
  static std::vector<std::vector<uint8_t>> files;  // kept alive: the reader may map them
  files.push_back(b.Bytes());
  Built out{};
  m64_err e{};
  m64_gguf *g = nullptr;
  int rc = m64_gguf_open_memory(files.back().data(), files.back().size(), &g, &e);
  EXPECT_EQ(rc, M64_OK) << e.msg;
  if (rc) return {rc, e.msg, {}};
  GgufPtr owner(g);
  uint8_t *blob = nullptr;
  size_t n = 0;
  out.rc = m64_tokblob_build(g, &blob, &n, &e);
  out.msg = out.rc ? e.msg : "";
  if (out.rc == M64_OK) {
    out.blob.assign(blob, blob + n);
  } else {
    EXPECT_EQ(blob, nullptr);
  }
  free(blob);
  return out;
}

// A toy SentencePiece vocabulary: unk, control, a few bytes, merges with chosen scores.
// A SentencePiece ("llama") vocabulary of these tokens, then the 256 byte tokens if asked;
// <unk> 0, <s> 1, </s> 2.
GgufBuilder SpmVocab(std::vector<std::string> tokens, std::vector<float> scores, std::vector<int32_t> types,
                     bool with_bytes) {
  if (with_bytes) {
    for (int b = 0; b < 256; b++) {
      char name[8];
      snprintf(name, sizeof name, "<0x%02X>", b);
      tokens.push_back(name);
      scores.push_back(0);
      types.push_back(6);
    }
  }
  GgufBuilder g;
  g.Str("general.architecture", "llama");
  g.Str("tokenizer.ggml.model", "llama");
  g.Strs("tokenizer.ggml.tokens", tokens);
  g.F32s("tokenizer.ggml.scores", scores);
  g.I32s("tokenizer.ggml.token_type", types);
  g.U32("tokenizer.ggml.bos_token_id", 1);
  g.U32("tokenizer.ggml.eos_token_id", 2);
  g.U32("tokenizer.ggml.unknown_token_id", 0);
  return g;
}

GgufBuilder ToyVocab(bool with_bytes = true) {
  return SpmVocab({"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a", "b", "c", "ab", "bc", "abc", "\xE2\x96\x81" "a", "<x>"},
                  {0, 0, 0, -1, -2, -2, -2, -5, -3, -4, -6, 0}, {2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 4}, with_bytes);
}

std::vector<uint8_t> &Keep(std::vector<uint8_t> blob) {
  static std::vector<std::unique_ptr<std::vector<uint8_t>>> kept;
  kept.push_back(std::make_unique<std::vector<uint8_t>>(std::move(blob)));
  return *kept.back();
}

TEST(TokBlob, ToyVocabularyMergesByScore) {
  Built b = BuildFrom(ToyVocab());
  ASSERT_EQ(b.rc, M64_OK) << b.msg;
  std::vector<uint8_t> &blob = Keep(b.blob);
  ASSERT_EQ(tok_load(blob.data(), (uint32_t)blob.size()), 0);
  EXPECT_EQ(tok_n_vocab(), 12u + 256u);
  // "▁abc": bc (-3) beats ab (-5) and ▁a (-6); then ▁ + a stays apart since "abc"
  // needs a+bc: a+bc = "abc" (-4) merges next.
  EXPECT_EQ(Show(Encode("abc", false)), "[3,9]");
  // "ab": ▁a (-6) vs ab (-5): ab first, leaving ▁ alone.
  EXPECT_EQ(Show(Encode("ab", false)), "[3,7]");
  // "d" is no token: byte fallback <0x64> = 12 + 0x64.
  EXPECT_EQ(Show(Encode("d", false)), "[3," + std::to_string(12 + 0x64) + "]");
  // Control and user-defined text: control "<s>" is never matched; bytes instead.
  std::vector<int32_t> ids = Encode("<s>", false);
  for (int32_t id : ids) EXPECT_NE(id, 1);
  EXPECT_EQ(Decode(ids), "<s>");
  char buf[16];
  EXPECT_EQ(tok_piece(-1, 11, buf, sizeof buf), 3);  // user-defined: text as is
  EXPECT_EQ(std::string(buf, 3), "<x>");
  EXPECT_EQ(tok_piece(-1, 10, buf, sizeof buf), 1);  // "▁a" at the start: space dropped
  EXPECT_EQ(tok_piece(4, 10, buf, sizeof buf), 2);   // after another token: kept
  EXPECT_EQ(std::string(buf, 2), " a");
}

TEST(TokBlob, NoByteTokensFallsBackToUnk) {
  Built b = BuildFrom(ToyVocab(false));
  ASSERT_EQ(b.rc, M64_OK) << b.msg;
  std::vector<uint8_t> &blob = Keep(b.blob);
  ASSERT_EQ(tok_load(blob.data(), (uint32_t)blob.size()), 0);
  EXPECT_EQ(Show(Encode("d\xC3\xA9", false)), "[3,0,0,0]");
}

TEST(TokBlob, DefaultsWhenKeysAbsent) {
  GgufBuilder g;
  g.Str("tokenizer.ggml.model", "llama");
  g.Strs("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "\xE2\x96\x81x"});
  Built b = BuildFrom(g);
  ASSERT_EQ(b.rc, M64_OK) << b.msg;
  std::vector<uint8_t> &blob = Keep(b.blob);
  ASSERT_EQ(tok_load(blob.data(), (uint32_t)blob.size()), 0);
  EXPECT_EQ(tok_bos(), 1);
  EXPECT_EQ(tok_eos(), 2);
  EXPECT_EQ(tok_add_bos(), 1);
  // all types default to normal, so "<s>" is matchable text here: it is a plain token
  EXPECT_EQ(Show(Encode("x", true)), "[1,3]");
}

TEST(TokBlob, FlagsFromMetadata) {
  GgufBuilder g = ToyVocab();
  g.Bool("tokenizer.ggml.add_bos_token", false);
  g.Bool("tokenizer.ggml.add_space_prefix", false);
  Built b = BuildFrom(g);
  ASSERT_EQ(b.rc, M64_OK) << b.msg;
  std::vector<uint8_t> &blob = Keep(b.blob);
  ASSERT_EQ(tok_load(blob.data(), (uint32_t)blob.size()), 0);
  EXPECT_EQ(tok_add_bos(), 0);
  EXPECT_EQ(Show(Encode("abc", false)), "[9]");  // no "▁" in front
}

TEST(TokBlob, Llama3VocabularyFacts) {
  REQUIRE_SHARED("llama3-bpe-tiny.gguf");
  ASSERT_TRUE(LoadModel("llama3-bpe-tiny.gguf"));
  EXPECT_EQ(tok_n_vocab(), 128256u);
  EXPECT_EQ(tok_bos(), 128000);
  EXPECT_EQ(tok_eos(), 128009);
  EXPECT_EQ(tok_add_bos(), 1);
  EXPECT_EQ(Show(Encode("Hello world", true)), "[128000,9906,1917]");
  EXPECT_EQ(tok_find("<|eot_id|>", 10), 128009);
  EXPECT_EQ(tok_find("<|start_header_id|>", 19), 128006);
  EXPECT_EQ(tok_find("Hello", 5), 9906);
  EXPECT_EQ(tok_find("\xC4\xA0world", 7), 1917);  // " world" in GPT-2 characters
  EXPECT_EQ(tok_find("no such token", 13), -1);
  // end of generation: EOS, <|end_of_text|>, <|eom_id|>; not BOS or text
  EXPECT_EQ(tok_is_eog(128009), 1);
  EXPECT_EQ(tok_is_eog(128001), 1);
  EXPECT_EQ(tok_is_eog(128008), 1);
  EXPECT_EQ(tok_is_eog(128000), 0);
  EXPECT_EQ(tok_is_eog(9906), 0);
  EXPECT_EQ(tok_is_eog(-1), 0);
  EXPECT_EQ(tok_is_eog(128256), 0);
}

TEST(TokBlob, RejectsBadVocabularies) {
  {
    GgufBuilder g;
    g.Str("general.architecture", "llama");
    Built b = BuildFrom(g);
    EXPECT_EQ(b.rc, M64_ENOTFOUND);
    EXPECT_NE(b.msg.find("tokenizer.ggml.model"), std::string::npos) << b.msg;
  }
  {
    GgufBuilder g;
    g.Str("tokenizer.ggml.model", "llama");
    Built b = BuildFrom(g);
    EXPECT_EQ(b.rc, M64_ENOTFOUND);
    EXPECT_NE(b.msg.find("tokenizer.ggml.tokens"), std::string::npos) << b.msg;
  }
  {
    GgufBuilder g;
    g.Str("tokenizer.ggml.model", "t5");
    Built b = BuildFrom(g);
    EXPECT_EQ(b.rc, M64_EUNSUPPORTED);
    EXPECT_NE(b.msg.find("'t5'"), std::string::npos) << b.msg;
  }
  {
    GgufBuilder g;
    g.Str("tokenizer.ggml.model", "llama");
    g.Strs("tokenizer.ggml.tokens", {"a", "b", "c"});
    g.F32s("tokenizer.ggml.scores", {0, 0});
    Built b = BuildFrom(g);
    EXPECT_EQ(b.rc, M64_EFORMAT);
    EXPECT_NE(b.msg.find("tokenizer.ggml.scores"), std::string::npos) << b.msg;
  }
  {
    GgufBuilder g;
    g.Str("tokenizer.ggml.model", "llama");
    g.Strs("tokenizer.ggml.tokens", {"a", "b", "c"});
    g.I32s("tokenizer.ggml.token_type", {1, 9, 1});
    Built b = BuildFrom(g);
    EXPECT_EQ(b.rc, M64_EFORMAT);
    EXPECT_NE(b.msg.find("token_type[1]"), std::string::npos) << b.msg;
  }
  {
    GgufBuilder g;
    g.Str("tokenizer.ggml.model", "llama");
    g.Strs("tokenizer.ggml.tokens", {"a", std::string(TOK_MAX_TOKEN_LEN + 1, 'x'), "c"});
    Built b = BuildFrom(g);
    EXPECT_EQ(b.rc, M64_ELIMIT);
  }
  {
    GgufBuilder g;
    g.Str("tokenizer.ggml.model", "llama");
    g.Strs("tokenizer.ggml.tokens", {"a", "b", "c"});
    g.U32("tokenizer.ggml.bos_token_id", 7);
    Built b = BuildFrom(g);
    EXPECT_EQ(b.rc, M64_EFORMAT);
    EXPECT_NE(b.msg.find("bos_token_id"), std::string::npos) << b.msg;
  }
  {
    GgufBuilder g;
    g.Str("tokenizer.ggml.model", "llama");
    g.Strs("tokenizer.ggml.tokens", {});
    Built b = BuildFrom(g);
    EXPECT_EQ(b.rc, M64_EFORMAT);
  }
  {  // an out-of-range padding id is dropped, not fatal; a negative unk means none
    GgufBuilder g;
    g.Str("tokenizer.ggml.model", "llama");
    g.Strs("tokenizer.ggml.tokens", {"a", "b", "c"});
    g.U32("tokenizer.ggml.padding_token_id", 99);
    g.I32("tokenizer.ggml.unknown_token_id", -1);
    Built b = BuildFrom(g);
    EXPECT_EQ(b.rc, M64_OK) << b.msg;
  }
}

// ---- hostile blobs

void PutU32(std::vector<uint8_t> *b, size_t off, uint32_t v) {
  for (int i = 0; i < 4; i++) (*b)[off + i] = (uint8_t)(v >> (8 * i));
}

TEST(TokLoad, RejectsMalformedHeaders) {
  Built built = BuildFrom(ToyVocab());
  ASSERT_EQ(built.rc, M64_OK) << built.msg;
  const std::vector<uint8_t> good = built.blob;
  auto load = [](std::vector<uint8_t> b) {
    std::vector<uint8_t> &kept = Keep(std::move(b));
    return tok_load(kept.data(), (uint32_t)kept.size());
  };
  EXPECT_EQ(load(good), 0);
  EXPECT_EQ(tok_load(nullptr, 0), TOK_ETRUNCATED);
  EXPECT_EQ(tok_n_vocab(), 0u) << "a failed load leaves nothing loaded";
  int32_t out[4];
  EXPECT_EQ(tok_encode("a", 1, 0, out, 4), TOK_ENOTLOADED);
  char buf[4];
  EXPECT_EQ(tok_piece(-1, 0, buf, 4), TOK_ENOTLOADED);
  std::vector<uint8_t> b;
  b = good; b[0] = 'X'; EXPECT_EQ(load(b), TOK_EFORMAT);
  b = good; PutU32(&b, 4, 2); EXPECT_EQ(load(b), TOK_EFORMAT);
  b = good; PutU32(&b, 8, TOK_MODEL_BPE); EXPECT_EQ(load(b), TOK_EFORMAT);  // pre-tokenizer 0
  b = good; PutU32(&b, 8, 7); EXPECT_EQ(load(b), TOK_EFORMAT);
  b = good; PutU32(&b, 12, 0); EXPECT_EQ(load(b), TOK_EFORMAT);
  b = good; PutU32(&b, 12, TOK_MAX_VOCAB + 1); EXPECT_EQ(load(b), TOK_ELIMIT);
  b = good; PutU32(&b, 12, TOK_MAX_VOCAB); EXPECT_EQ(load(b), TOK_ETRUNCATED);
  b = good; PutU32(&b, 12, 0xFFFFFFFFu); EXPECT_EQ(load(b), TOK_ELIMIT);
  b = good; PutU32(&b, 16, 268); EXPECT_EQ(load(b), TOK_EFORMAT);        // bos == n_vocab
  b = good; PutU32(&b, 24, 0xFFFFFFFEu); EXPECT_EQ(load(b), TOK_EFORMAT); // unk = -2
  b = good; PutU32(&b, 32, 4); EXPECT_EQ(load(b), TOK_EFORMAT);
  b = good; PutU32(&b, 36, 1); EXPECT_EQ(load(b), TOK_EFORMAT);
  b = good; b[40 + 4] = 0; EXPECT_EQ(load(b), TOK_EFORMAT);              // token type 0
  b = good; b[40 + 4] = 7; EXPECT_EQ(load(b), TOK_EFORMAT);
  b = good; PutU32(&b, 40, 0x7FC00000u); EXPECT_EQ(load(b), TOK_EFORMAT); // NaN score
  b = good; PutU32(&b, 45, TOK_MAX_TOKEN_LEN + 1); EXPECT_EQ(load(b), TOK_ELIMIT);
  b = good; PutU32(&b, 45, 0xFFFFFFF0u); EXPECT_EQ(load(b), TOK_ELIMIT);
  b = good; PutU32(&b, 45, 1000); EXPECT_LT(load(b), 0);                // misframes the records
  b = good; b.push_back(0); EXPECT_EQ(load(b), TOK_EFORMAT);            // trailing byte
  // the last token's text runs past the end
  b = good; PutU32(&b, b.size() - 10, 7); EXPECT_EQ(load(b), TOK_ETRUNCATED);
  EXPECT_EQ(load(good), 0);
}

TEST(TokLoad, EveryTruncationIsRejected) {
  REQUIRE_SHARED("stories260K.gguf");
  const std::vector<uint8_t> &good = ModelBlob("stories260K.gguf");
  ASSERT_FALSE(good.empty());
  for (size_t n = 0; n < good.size(); n++) {
    // a fresh exact-size copy so ASan sees any read past the end
    std::unique_ptr<uint8_t[]> copy(new uint8_t[n ? n : 1]);
    memcpy(copy.get(), good.data(), n);
    ASSERT_LT(tok_load(copy.get(), (uint32_t)n), 0) << "prefix of " << n << " bytes";
  }
}

TEST(TokLoad, CorruptedBlobsNeverCrash) {
  REQUIRE_SHARED("stories260K.gguf");
  const std::vector<uint8_t> &good = ModelBlob("stories260K.gguf");
  ASSERT_FALSE(good.empty());
  std::mt19937 rng(42);
  int loaded = 0;
  for (int round = 0; round < 400; round++) {
    std::vector<uint8_t> &b = Keep(good);
    int flips = 1 + (int)(rng() % 8);
    for (int i = 0; i < flips; i++) {
      size_t at = rng() % b.size();
      b[at] = (round & 1) ? (uint8_t)rng() : (uint8_t)(b[at] ^ (1u << (rng() % 8)));
    }
    if (tok_load(b.data(), (uint32_t)b.size()) != 0) continue;
    loaded++;
    // whatever survived validation must encode and decode without faults
    std::vector<int32_t> ids = Encode("Once upon a time \xF0\x9F\xA6\x99 <s>\n", true);
    for (int32_t id : ids) {
      EXPECT_GE(id, 0);
      EXPECT_LT((uint32_t)id, tok_n_vocab());
    }
    Decode(ids);
  }
  EXPECT_GT(loaded, 0) << "some corruptions (scores, text bytes) stay loadable";
  std::vector<uint8_t> garbage(4096);
  for (int round = 0; round < 200; round++) {
    for (auto &x : garbage) x = (uint8_t)rng();
    if (round % 2) memcpy(garbage.data(), "M64T\x01\0\0\0\x01\0\0\0", 12);
    EXPECT_LT(tok_load(garbage.data(), (uint32_t)(rng() % garbage.size())), 0);
  }
}

// ---- byte-level BPE on hand-built vocabularies

// GPT-2's printable character for byte b, as UTF-8.
std::string Gpt2Char(uint8_t b) {
  uint32_t cp = b;
  bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
  if (!printable) {
    uint32_t n = 0;
    for (uint32_t x = 0; x < b; x++)
      if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE)) n++;
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80) s.push_back((char)cp);
  else { s.push_back((char)(0xC0 | cp >> 6)); s.push_back((char)(0x80 | (cp & 63))); }
  return s;
}

std::string Gpt2(const std::string &plain) {
  std::string s;
  for (unsigned char c : plain) s += Gpt2Char(c);
  return s;
}

// A BPE vocabulary: the 256 byte characters (ids 0..255), then `extra` tokens (plain text,
// stored in GPT-2 form unless marked special: types 3/4 keep their text), then the merges'
// results; merges are plain-text pairs in rank order.
struct ToyBpe {
  std::string pre = "gpt2";
  std::vector<std::pair<std::string, int32_t>> extra;  // text, type
  std::vector<std::pair<std::string, std::string>> merges;
  GgufBuilder Build(bool with_pre = true) const {
    std::vector<std::string> tokens;
    std::vector<int32_t> types;
    for (int b = 0; b < 256; b++) tokens.push_back(Gpt2Char((uint8_t)b)), types.push_back(1);
    auto add = [&](const std::string &t, int32_t type) {
      for (auto &x : tokens)
        if (x == t) return;
      tokens.push_back(t);
      types.push_back(type);
    };
    for (auto &x : extra) add(x.second == 1 ? Gpt2(x.first) : x.first, x.second);
    std::vector<std::string> m;
    for (auto &x : merges) {
      add(Gpt2(x.first + x.second), 1);
      m.push_back(Gpt2(x.first) + " " + Gpt2(x.second));
    }
    GgufBuilder g;
    g.Str("general.architecture", "llama");
    g.Str("tokenizer.ggml.model", "gpt2");
    if (with_pre) g.Str("tokenizer.ggml.pre", pre);
    g.Strs("tokenizer.ggml.tokens", tokens);
    g.I32s("tokenizer.ggml.token_type", types);
    g.Strs("tokenizer.ggml.merges", m);
    g.U32("tokenizer.ggml.bos_token_id", 0);
    g.U32("tokenizer.ggml.eos_token_id", 0);
    return g;
  }
};

// Builds and loads a toy vocabulary; returns its blob (kept alive).
std::vector<uint8_t> &LoadToy(const ToyBpe &t) {
  Built b = BuildFrom(t.Build());
  EXPECT_EQ(b.rc, M64_OK) << b.msg;
  std::vector<uint8_t> &blob = Keep(b.blob);
  EXPECT_EQ(tok_load(blob.data(), (uint32_t)blob.size()), 0);
  return blob;
}

// The pre-tokenizer's words.
std::vector<std::string> Split(const std::string &text) {
  std::vector<uint32_t> ends(text.size() + 1);
  int32_t n = tok_split(text.data(), (uint32_t)text.size(), ends.data(), (uint32_t)ends.size());
  EXPECT_GE(n, 0);
  std::vector<std::string> words;
  uint32_t from = 0;
  for (int32_t i = 0; i < n; i++) {
    words.push_back(text.substr(from, ends[i] - from));
    from = ends[i];
  }
  EXPECT_EQ(from, text.size());
  return words;
}

using Words = std::vector<std::string>;

// Tricky strings for every pre-tokenizer. The llama-bpe expectations are llama.cpp's
// behaviour (its reference ids above cover prose; these cover the corners). For qwen2,
// smollm and gpt2 there is no llama.cpp reference here: the expected words are derived by
// hand from the regexes llama.cpp uses (tokenizer.c quotes them) and were checked with
// Python's `regex` module.
struct SplitCase {
  std::string text;
  Words llama3, qwen2, gpt2, smollm;
};

const std::vector<SplitCase> &SplitCases() {
  static const std::vector<SplitCase> cases = {
      {"Hello world", {"Hello", " world"}, {"Hello", " world"}, {"Hello", " world"},
       {"Hello", " world"}},
      // contractions: any case for llama-bpe and qwen2, lower case only for gpt2 and smollm
      {"don't I'M we'VE 'S",
       {"don", "'t", " I", "'M", " we", "'VE", " '", "S"},
       {"don", "'t", " I", "'M", " we", "'VE", " '", "S"},
       {"don", "'t", " I", "'", "M", " we", "'", "VE", " '", "S"},
       {"don", "'t", " I", "'", "M", " we", "'", "VE", " '", "S"}},
      // digit runs: threes, ones, whole runs with a space, ones
      {"1234567 89", {"123", "456", "7", " ", "89"},
       {"1", "2", "3", "4", "5", "6", "7", " ", "8", "9"}, {"1234567", " 89"},
       {"1", "2", "3", "4", "5", "6", "7", " ", "8", "9"}},
      // numbers beyond ASCII: superscript two, one half (No), Arabic-Indic three (Nd)
      {"x\xC2\xB2\xC2\xBD \xD9\xA3" "4", {"x", "\xC2\xB2\xC2\xBD", " ", "\xD9\xA3" "4"},
       {"x", "\xC2\xB2", "\xC2\xBD", " ", "\xD9\xA3", "4"},
       {"x", "\xC2\xB2\xC2\xBD", " \xD9\xA3" "4"},
       {"x", "\xC2\xB2", "\xC2\xBD", " ", "\xD9\xA3", "4"}},
      // CJK letters are one word; emoji are punctuation-like
      {"\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xAE", {"\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xAE"},
       {"\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xAE"}, {"\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xAE"},
       {"\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xAE"}},
      {"emoji \xF0\x9F\xA6\x99\xF0\x9F\x9A\x80 done",
       {"emoji", " \xF0\x9F\xA6\x99\xF0\x9F\x9A\x80", " done"},
       {"emoji", " \xF0\x9F\xA6\x99\xF0\x9F\x9A\x80", " done"},
       {"emoji", " \xF0\x9F\xA6\x99\xF0\x9F\x9A\x80", " done"},
       {"emoji", " \xF0\x9F\xA6\x99\xF0\x9F\x9A\x80", " done"}},
      // newlines and the spaces around them
      {"line one\nline two\n\n  line",
       {"line", " one", "\n", "line", " two", "\n\n", " ", " line"},
       {"line", " one", "\n", "line", " two", "\n\n", " ", " line"},
       {"line", " one", "\n", "line", " two", "\n\n ", " line"},
       {"line", " one", "\n", "line", " two", "\n\n ", " line"}},
      {"\r\n\r\nok", {"\r\n\r\n", "ok"}, {"\r\n\r\n", "ok"}, {"\r\n\r", "\n", "ok"},
       {"\r\n\r", "\n", "ok"}},
      {" \n x", {" \n", " x"}, {" \n", " x"}, {" \n", " x"}, {" \n", " x"}},
      // trailing and repeated white space; a tab before a letter
      {"trailing spaces   ", {"trailing", " spaces", "   "}, {"trailing", " spaces", "   "},
       {"trailing", " spaces", "   "}, {"trailing", " spaces", "   "}},
      {"a  b\t\tc", {"a", " ", " b", "\t", "\tc"}, {"a", " ", " b", "\t", "\tc"},
       {"a", " ", " b", "\t", "\t", "c"}, {"a", " ", " b", "\t", "\t", "c"}},
      {"   ", {"   "}, {"   "}, {"   "}, {"   "}},
      // punctuation runs take trailing newlines in llama-bpe and qwen2
      {"$100,000.50!!\n\n", {"$", "100", ",", "000", ".", "50", "!!\n\n"},
       {"$", "1", "0", "0", ",", "0", "0", "0", ".", "5", "0", "!!\n\n"},
       {"$", "100", ",", "000", ".", "50", "!!", "\n\n"},
       {"$", "1", "0", "0", ",", "0", "0", "0", ".", "5", "0", "!!", "\n\n"}},
      // a combining mark (Mn) is neither letter nor number
      {"cafe\xCC\x81 na\xC3\xAFve", {"cafe", "\xCC\x81", " na\xC3\xAFve"},
       {"cafe", "\xCC\x81", " na\xC3\xAFve"}, {"cafe", "\xCC\x81", " na\xC3\xAFve"},
       {"cafe", "\xCC\x81", " na\xC3\xAFve"}},
  };
  return cases;
}

void CheckSplits(const std::string &pre, Words SplitCase::*want) {
  ToyBpe t;
  t.pre = pre;
  LoadToy(t);
  for (const SplitCase &c : SplitCases()) EXPECT_EQ(Split(c.text), c.*want) << pre << ": " << c.text;
}

TEST(BpePreTokenizer, LlamaBpe) { CheckSplits("llama-bpe", &SplitCase::llama3); }
TEST(BpePreTokenizer, Qwen2) { CheckSplits("qwen2", &SplitCase::qwen2); }
TEST(BpePreTokenizer, Gpt2) { CheckSplits("gpt-2", &SplitCase::gpt2); }
TEST(BpePreTokenizer, SmolLM) { CheckSplits("smollm", &SplitCase::smollm); }

TEST(BpePreTokenizer, InvalidUtf8BecomesReplacementCharacters) {
  ToyBpe t;
  LoadToy(t);
  // as llama.cpp: a stray byte is U+FFFD (3 bytes) in the words and the ids
  std::vector<uint32_t> ends(8);
  ASSERT_EQ(tok_split("a\x80", 2, ends.data(), 8), 2);
  EXPECT_EQ(ends[0], 1u);
  EXPECT_EQ(ends[1], 4u);
  EXPECT_EQ(Decode(Encode("a\x80", false)), "a\xEF\xBF\xBD");
  EXPECT_EQ(tok_split("abc def", 7, ends.data(), 1), -1);  // too small for two words
}

TEST(BpeMerges, LowestRankFirstThenLeftmost) {
  ToyBpe t;
  t.merges = {{"b", "c"}, {"a", "b"}, {"a", "bc"}};
  LoadToy(t);
  int32_t abc = tok_find(Gpt2("abc").data(), 3), ab = tok_find(Gpt2("ab").data(), 2);
  ASSERT_GE(abc, 0);
  ASSERT_GE(ab, 0);
  EXPECT_EQ(Show(Encode("abc", false)), "[" + std::to_string(abc) + "]");  // b+c, then a+bc
  EXPECT_EQ(Show(Encode("ab", false)), "[" + std::to_string(ab) + "]");
  // "abab": both a+b pairs have rank 1; the leftmost goes first, then the second
  EXPECT_EQ(Show(Encode("abab", false)), "[" + std::to_string(ab) + "," + std::to_string(ab) + "]");
  // no merge makes "ba": separate bytes
  EXPECT_EQ(Show(Encode("ba", false)), "[98,97]");
  EXPECT_EQ(Decode(Encode(" a\nb\xC3\xA9", false)), " a\nb\xC3\xA9");

  ToyBpe u;  // the other order: a+b first, and "ab"+"c" is no merge
  u.merges = {{"a", "b"}, {"b", "c"}};
  LoadToy(u);
  ab = tok_find(Gpt2("ab").data(), 2);
  EXPECT_EQ(Show(Encode("abc", false)), "[" + std::to_string(ab) + ",99]");
}

TEST(BpeMerges, LlamaBpeTakesWholeWordsThatAreTokens) {
  ToyBpe t;  // "xyz" is a token but no merges make it
  t.extra = {{"xyz", 1}};
  t.pre = "llama-bpe";
  LoadToy(t);
  EXPECT_EQ(Show(Encode("xyz", false)), "[256]");  // ignore_merges
  t.pre = "qwen2";
  LoadToy(t);
  EXPECT_EQ(Show(Encode("xyz", false)), "[120,121,122]");
}

TEST(BpeSpecial, ControlTextOnlyWithTheFlagUserDefinedAlways) {
  ToyBpe t;
  t.extra = {{"<|x|>", 3}, {"|x|", 4}};
  LoadToy(t);
  const int32_t ctl = 256, user = 257;
  const std::string text = "<|x|>|x|";
  std::vector<int32_t> out(32);
  // with the flag the longer control token goes first, then the user-defined one
  int32_t n = tok_encode(text.data(), (uint32_t)text.size(), TOK_ENCODE_SPECIAL, out.data(), 32);
  ASSERT_EQ(n, 2);
  EXPECT_EQ(out[0], ctl);
  EXPECT_EQ(out[1], user);
  // without it only the user-defined token is parsed: "<", |x|, ">", |x|
  EXPECT_EQ(Show(Encode(text, false)),
            "[60," + std::to_string(user) + ",62," + std::to_string(user) + "]");
  char buf[16];
  EXPECT_EQ(tok_piece(-1, ctl, buf, sizeof buf), 0);  // control: no text
  EXPECT_EQ(tok_piece(-1, user, buf, sizeof buf), 3); // user-defined: its text
  EXPECT_EQ(std::string(buf, 3), "|x|");
}

TEST(BpeSpecial, EndOfGenerationTokensAreMarkedAndBecomeControl) {
  ToyBpe t;  // a normal-typed "<|im_end|>": m64c makes it control and end-of-generation
  t.extra = {{"<|im_end|>", 3}, {"<|fim_pad|>", 3}, {"<|fim_prefix|>", 3}};
  GgufBuilder g = t.Build();
  Built b = BuildFrom(g);
  ASSERT_EQ(b.rc, M64_OK) << b.msg;
  std::vector<uint8_t> &blob = Keep(b.blob);
  ASSERT_EQ(tok_load(blob.data(), (uint32_t)blob.size()), 0);
  EXPECT_EQ(tok_is_eog(256), 1);  // <|im_end|>
  EXPECT_EQ(tok_is_eog(257), 1);  // <|fim_pad|>
  EXPECT_EQ(tok_is_eog(258), 0);  // <|fim_prefix|>: control, not end of generation
  EXPECT_EQ(tok_is_eog(0), 1);    // EOS (id 0 here)
  EXPECT_EQ(tok_is_eog(65), 0);
  EXPECT_EQ(tok_find("<|im_end|>", 10), 256);
}

TEST(Llama3Special, BeginOfTextParsedOnlyWithTheFlag) {
  REQUIRE_SHARED("llama3-bpe-tiny.gguf");
  ASSERT_TRUE(LoadModel("llama3-bpe-tiny.gguf"));
  const std::string text = "<|begin_of_text|>Hi<|eot_id|>";
  std::vector<int32_t> out(64);
  int32_t n = tok_encode(text.data(), (uint32_t)text.size(),
                         TOK_ENCODE_ADD_BOS | TOK_ENCODE_SPECIAL, out.data(), 64);
  std::vector<int32_t> hi = Encode("Hi", false);
  ASSERT_EQ(hi.size(), 1u);
  EXPECT_EQ(Show(std::vector<int32_t>(out.begin(), out.begin() + (n < 0 ? 0 : n))),
            "[128000,128000," + std::to_string(hi[0]) + ",128009]");
  std::vector<int32_t> plain = Encode(text, false);
  for (int32_t id : plain) EXPECT_LT(id, 128000) << "special token from plain text";
  EXPECT_EQ(Decode(plain), text);
  // special-token text mid-word splits the word around it
  n = tok_encode("a<|eot_id|>b", 12, TOK_ENCODE_SPECIAL, out.data(), 64);
  EXPECT_EQ(Show(std::vector<int32_t>(out.begin(), out.begin() + (n < 0 ? 0 : n))),
            "[64,128009,65]");
}

TEST(Llama3, LoadTimeAndLongText) {
  REQUIRE_SHARED("llama3-bpe-tiny.gguf");
  const std::vector<uint8_t> &blob = ModelBlob("llama3-bpe-tiny.gguf");
  ASSERT_FALSE(blob.empty());
  double best = 1e9;
  for (int i = 0; i < 3; i++) {
    auto t0 = std::chrono::steady_clock::now();
    ASSERT_EQ(tok_load(blob.data(), (uint32_t)blob.size()), 0);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  printf("tok_load of the Llama 3 vocabulary (%zu-byte blob): %.1f ms\n", blob.size(), best * 1e3);
  EXPECT_LT(best, 2.0);  // a loose bound: natively it is tens of milliseconds
  std::string text;
  while (text.size() < (1u << 20)) text += "Once upon a time, there were 12345 llamas \xF0\x9F\xA6\x99 in Lima.\n";
  std::vector<int32_t> ids = Encode(text, false);
  EXPECT_GT(ids.size(), 100000u);
  EXPECT_EQ(Decode(ids), text);
}

// The synthetic generator's BPE vocabulary (m64-synth --vocab-kind bpe): words it spells
// with merges come out as one token each, the rest as letters; text round-trips.
TEST(SynthBpe, MergesSpellTheGeneratorsWords) {
  m64_synth_spec spec;
  m64_synth_default(&spec);
  spec.n_vocab = 2048;
  spec.vocab_kind = M64_SYNTH_VOCAB_BPE;
  char path[] = "/tmp/m64synthbpe.XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  m64_err e{};
  ASSERT_EQ(m64_synth_write(&spec, path, &e), 0) << e.msg;
  m64_gguf *g = nullptr;
  ASSERT_EQ(m64_gguf_open(path, &g, &e), 0) << e.msg;
  GgufPtr owner(g);
  uint8_t *b = nullptr;
  size_t n = 0;
  ASSERT_EQ(m64_tokblob_build(g, &b, &n, &e), 0) << e.msg;
  std::vector<uint8_t> &blob = Keep(std::vector<uint8_t>(b, b + n));
  free(b);
  unlink(path);
  ASSERT_EQ(tok_load(blob.data(), (uint32_t)blob.size()), 0);
  EXPECT_EQ(tok_n_vocab(), 2048u);
  EXPECT_EQ(tok_bos(), 256);
  auto id = [](const std::string &plain) { return tok_find(Gpt2(plain).data(), (uint32_t)Gpt2(plain).size()); };
  std::vector<int32_t> want = {256, id("the"), id(" quick"), id(" brown"), id(" fox"), id(" jumps")};
  for (int32_t x : want) ASSERT_GE(x, 0);
  EXPECT_EQ(Show(Encode("the quick brown fox jumps", true)), Show(want));
  EXPECT_EQ(tok_is_eog(257), 1);  // <|end_of_text|>
  EXPECT_EQ(tok_is_eog(258), 1);  // <|eot_id|>
  const std::string text = "Once upon a time, 42 llamas \xF0\x9F\xA6\x99 said: \"hello!\"\n";
  EXPECT_EQ(Decode(Encode(text, false)), text);
}

// Random text through the real Llama 3 vocabulary: valid UTF-8 decodes to itself; a stray
// byte comes back as U+FFFD (llama.cpp reads it so).
TEST(Llama3, RandomTextRoundTrips) {
  REQUIRE_SHARED("llama3-bpe-tiny.gguf");
  ASSERT_TRUE(LoadModel("llama3-bpe-tiny.gguf"));
  std::mt19937 rng(99);
  const char *pieces[] = {"a", "Z", " ", "  ", "\t", "\n", "\r\n", "'s", "'LL", "123", "4567", ".", "!!",
                          "\xC3\xA9", "\xE6\x97\xA5", "\xF0\x9F\xA6\x99", "\xC2\xA0", "\xE3\x80\x80",
                          "\xCC\x81", "\xC2\xB2", "<|eot_id|>", "<|begin_of_text|>", "the", " world"};
  for (int round = 0; round < 500; round++) {
    std::string text, want;
    for (int i = 0, n = (int)(rng() % 30); i < n; i++) {
      if (rng() % 10 == 0) text.push_back((char)0xFF);  // never part of a character
      else text += pieces[rng() % (sizeof pieces / sizeof *pieces)];
    }
    for (char c : text) want += c == (char)0xFF ? std::string("\xEF\xBF\xBD") : std::string(1, c);
    std::vector<int32_t> ids = Encode(text, false);
    for (int32_t id : ids) EXPECT_LT(id, 128000) << "special token from plain text";
    EXPECT_EQ(Decode(ids), want) << Show(ids);
  }
}

// ---- hostile BPE blobs and GGUFs

std::vector<uint8_t> ToyBlob() {
  ToyBpe t;
  t.extra = {{"<|x|>", 3}};
  t.merges = {{"a", "b"}, {"ab", "c"}};
  Built b = BuildFrom(t.Build());
  EXPECT_EQ(b.rc, M64_OK) << b.msg;
  return b.blob;
}

TEST(TokLoadBpe, RejectsMalformedBlobs) {
  const std::vector<uint8_t> good = ToyBlob();
  ASSERT_FALSE(good.empty());
  auto load = [](std::vector<uint8_t> b) {
    std::vector<uint8_t> &kept = Keep(std::move(b));
    return tok_load(kept.data(), (uint32_t)kept.size());
  };
  ASSERT_EQ(load(good), 0);
  const size_t merges = good.size() - 2 * TOK_MERGE_BYTES;  // the two merges at the end
  std::vector<uint8_t> b;
  b = good; PutU32(&b, 40, 0); EXPECT_EQ(load(b), TOK_EFORMAT);           // pre-tokenizer
  b = good; PutU32(&b, 40, 5); EXPECT_EQ(load(b), TOK_EFORMAT);
  b = good; PutU32(&b, 44, TOK_MAX_MERGES + 1); EXPECT_EQ(load(b), TOK_ELIMIT);
  b = good; PutU32(&b, 44, 0xFFFFFFFFu); EXPECT_EQ(load(b), TOK_ELIMIT);
  b = good; PutU32(&b, 44, 3); EXPECT_EQ(load(b), TOK_ETRUNCATED);       // one merge short
  b = good; PutU32(&b, 44, 1); EXPECT_EQ(load(b), TOK_EFORMAT);          // 12 bytes left over
  b = good; PutU32(&b, 32, TOK_FLAG_ADD_SPACE_PREFIX); EXPECT_EQ(load(b), TOK_EFORMAT);
  b = good; PutU32(&b, merges, 260); EXPECT_EQ(load(b), TOK_EFORMAT);    // id out of range
  b = good; PutU32(&b, merges + 4, 0xFFFFFFFFu); EXPECT_EQ(load(b), TOK_EFORMAT);
  b = good; PutU32(&b, merges + 8, 'x'); EXPECT_EQ(load(b), TOK_EFORMAT); // "a"+"b" makes 2 bytes
  b = good; PutU32(&b, merges + 8, 259); EXPECT_EQ(load(b), TOK_EFORMAT); // out of range
  // tokens 0 and 1 are U+0100 and U+0101 (2 bytes each): make the first the second
  b = good; b[TOK_BPE_HEADER_BYTES + 10] = b[TOK_BPE_HEADER_BYTES + 11 + 10];
  EXPECT_EQ(load(b), TOK_EFORMAT);                                         // repeated text
  b = good; b.push_back(0); EXPECT_EQ(load(b), TOK_EFORMAT);
  for (size_t n = 0; n < good.size(); n++) {
    std::unique_ptr<uint8_t[]> copy(new uint8_t[n ? n : 1]);
    memcpy(copy.get(), good.data(), n);
    ASSERT_LT(tok_load(copy.get(), (uint32_t)n), 0) << "prefix of " << n << " bytes";
  }
  std::mt19937 rng(7);
  for (int round = 0; round < 300; round++) {
    std::vector<uint8_t> &c = Keep(good);
    for (int i = 0, flips = 1 + (int)(rng() % 6); i < flips; i++) c[rng() % c.size()] ^= (uint8_t)(1u << (rng() % 8));
    if (tok_load(c.data(), (uint32_t)c.size()) != 0) continue;
    std::vector<int32_t> ids(256);
    const char text[] = "abc <|x|> \xF0\x9F\xA6\x99 12 \x80";
    int32_t n = tok_encode(text, sizeof text - 1, 3, ids.data(), 256);
    for (int32_t i = 0; i < n; i++) ASSERT_LT((uint32_t)ids[i], tok_n_vocab());
    Decode(std::vector<int32_t>(ids.begin(), ids.begin() + (n < 0 ? 0 : n)));
  }
  ASSERT_EQ(load(good), 0);
}

TEST(TokBlobBpe, RejectsUnsupportedOrBrokenVocabularies) {
  {
    ToyBpe t;
    t.pre = "falcon";
    Built b = BuildFrom(t.Build());
    EXPECT_EQ(b.rc, M64_EUNSUPPORTED);
    EXPECT_EQ(b.msg, "BPE pre-tokenizer 'falcon' is not supported; supported: llama-bpe "
                     "(llama3, llama-v3), qwen2 (deepseek-r1-qwen), smollm, gpt2 (gpt-2)");
  }
  {
    Built b = BuildFrom(ToyBpe().Build(false));
    EXPECT_EQ(b.rc, M64_EUNSUPPORTED);
    EXPECT_NE(b.msg.find("tokenizer.ggml.pre is missing"), std::string::npos) << b.msg;
  }
  {
    ToyBpe t;
    GgufBuilder g = t.Build();
    g.Str("tokenizer.ggml.model", "t5");  // a later key with the same name is not read: use a fresh one
    GgufBuilder h;
    h.Str("tokenizer.ggml.model", "bert");
    Built b = BuildFrom(h);
    EXPECT_EQ(b.rc, M64_EUNSUPPORTED);
    EXPECT_EQ(b.msg, "tokenizer model 'bert' is not supported; supported: llama (SentencePiece), "
                     "gpt2 (byte-level BPE)");
  }
  {
    GgufBuilder g;
    g.Str("tokenizer.ggml.model", "gpt2");
    g.Str("tokenizer.ggml.pre", "qwen2");
    g.Strs("tokenizer.ggml.tokens", {"a", "b", "ab"});
    Built b = BuildFrom(g);
    EXPECT_EQ(b.rc, M64_ENOTFOUND);
    EXPECT_NE(b.msg.find("tokenizer.ggml.merges"), std::string::npos) << b.msg;
    g.Strs("tokenizer.ggml.merges", {"a b", "a c"});
    b = BuildFrom(g);
    EXPECT_EQ(b.rc, M64_EFORMAT);
    EXPECT_EQ(b.msg, "tokenizer.ggml.merges[1] ('a c') has a right side, which is not in the vocabulary");
  }
  {
    GgufBuilder g;
    g.Str("tokenizer.ggml.model", "gpt2");
    g.Str("tokenizer.ggml.pre", "qwen2");
    g.Strs("tokenizer.ggml.tokens", {"a", "b", "a"});
    g.Strs("tokenizer.ggml.merges", {});
    Built b = BuildFrom(g);
    EXPECT_EQ(b.rc, M64_EFORMAT);
    EXPECT_NE(b.msg.find("repeats"), std::string::npos) << b.msg;
  }
}

// ---- sampler

TEST(Sampler, GreedyPicksArgmaxLowestIndexOnTies) {
  const float logits[] = {0.5f, 3.0f, -1.0f, 3.0f, 2.9f};
  EXPECT_EQ(sampler_sample(logits, 5, 0.0f, 0, 1.0f), 1);
  EXPECT_EQ(sampler_sample(logits, 5, -1.0f, 40, 0.9f), 1);
  const float nan_first[] = {NAN, -5.0f, -4.0f};
  EXPECT_EQ(sampler_sample(nan_first, 3, 0.0f, 0, 1.0f), 2);
  EXPECT_EQ(sampler_sample(logits, 0, 0.0f, 0, 1.0f), -1);
  EXPECT_EQ(sampler_sample(nullptr, 5, 1.0f, 0, 1.0f), -1);
}

TEST(Sampler, TopK1IsGreedyAtAnyTemperature) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  std::vector<float> logits(1000);
  sampler_seed(99);
  for (int round = 0; round < 50; round++) {
    for (float &x : logits) x = nd(rng);
    int32_t greedy = sampler_sample(logits.data(), 1000, 0.0f, 0, 1.0f);
    for (float t : {0.1f, 1.0f, 5.0f, 100.0f})
      EXPECT_EQ(sampler_sample(logits.data(), 1000, t, 1, 1.0f), greedy);
    // a tiny top_p keeps only the most likely id as well
    EXPECT_EQ(sampler_sample(logits.data(), 1000, 1.0f, 0, 1e-9f), greedy);
  }
}

TEST(Sampler, SeededRunsRepeat) {
  std::vector<float> logits(300);
  for (size_t i = 0; i < logits.size(); i++) logits[i] = (float)std::sin((double)i) * 2.0f;
  auto run = [&](uint64_t seed, float temp, int32_t k, float p) {
    sampler_seed(seed);
    std::vector<int32_t> got;
    for (int i = 0; i < 64; i++) got.push_back(sampler_sample(logits.data(), 300, temp, k, p));
    return got;
  };
  EXPECT_EQ(run(5, 0.8f, 40, 0.95f), run(5, 0.8f, 40, 0.95f));
  EXPECT_EQ(run(5, 1.0f, 0, 1.0f), run(5, 1.0f, 0, 1.0f));
  EXPECT_NE(run(5, 1.0f, 0, 1.0f), run(6, 1.0f, 0, 1.0f));
  sampler_seed(5);
  uint64_t a = sampler_next_u64();
  sampler_seed(5);
  EXPECT_EQ(sampler_next_u64(), a);
}

// Draw counts against expected probabilities: every id within 5 standard deviations.
void ExpectFrequencies(const std::vector<float> &logits, float temp, int32_t k, float p,
                       const std::vector<double> &want) {
  const int draws = 200000;
  std::vector<int> count(logits.size());
  sampler_seed(2024);
  for (int i = 0; i < draws; i++) {
    int32_t id = sampler_sample(logits.data(), (uint32_t)logits.size(), temp, k, p);
    ASSERT_GE(id, 0);
    ASSERT_LT((size_t)id, logits.size());
    count[(size_t)id]++;
  }
  for (size_t i = 0; i < logits.size(); i++) {
    double expect = want[i] * draws;
    double sd = std::sqrt(draws * want[i] * (1 - want[i]));
    if (want[i] == 0) {
      EXPECT_EQ(count[i], 0) << "id " << i << " is outside the kept set";
    } else {
      EXPECT_NEAR(count[i], expect, 5 * sd + 1) << "id " << i;
    }
  }
}

std::vector<double> Softmax(const std::vector<float> &l, float temp, size_t keep) {
  std::vector<double> p(l.size());
  double sum = 0;
  for (size_t i = 0; i < keep; i++) sum += (p[i] = std::exp(l[i] / temp));
  for (size_t i = 0; i < keep; i++) p[i] /= sum;
  return p;
}

TEST(Sampler, FrequenciesMatchSoftmax) {
  // sorted descending so "keep the first n" is the top-k / top-p set
  const std::vector<float> l = {2.0f, 1.5f, 1.0f, 0.0f, -1.0f, -3.0f};
  ExpectFrequencies(l, 1.0f, 0, 1.0f, Softmax(l, 1.0f, 6));
  ExpectFrequencies(l, 0.7f, 0, 1.0f, Softmax(l, 0.7f, 6));
  ExpectFrequencies(l, 1.0f, 3, 1.0f, Softmax(l, 1.0f, 3));
  // top_p: softmax(T=1) = .43 .26 .16 .06 .02 .003 -> 0.8 needs the first three
  ExpectFrequencies(l, 1.0f, 0, 0.8f, Softmax(l, 1.0f, 3));
  // top_k then top_p over the renormalised top-4: .47 .28 .17 .06 -> 0.7 needs two
  ExpectFrequencies(l, 1.0f, 4, 0.7f, Softmax(l, 1.0f, 2));
  // shuffled order gives the same per-id frequencies
  const std::vector<float> s = {-1.0f, 2.0f, -3.0f, 1.0f, 1.5f, 0.0f};
  std::vector<double> base = Softmax(l, 1.0f, 3);
  ExpectFrequencies(s, 1.0f, 3, 1.0f, {0, base[0], 0, base[2], base[1], 0});
}


// ---- chat formats (module/chat.c): each kind's turn and reply end as llama.cpp's built-in
// templates write them: markers that are tokens become those tokens, the text between two
// of them is one run tokenized as a whole, and BOS opens the first turn only.
namespace chat {

// A vocabulary with every format's markers as control tokens, and the byte pieces.
void LoadMarkerVocab() {
  static bool loaded = false;
  static std::vector<uint8_t> *blob;
  if (!loaded) {
    std::vector<std::string> tokens = {"<unk>", "<s>", "</s>", "\xE2\x96\x81"};
    for (const char *m : {"<start_of_turn>", "<end_of_turn>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>",
                          "<|im_start|>", "<|im_end|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"})
      tokens.push_back(m);
    std::vector<float> scores(tokens.size(), 0.0f);
    std::vector<int32_t> types(tokens.size(), 3);
    types[0] = 2, types[3] = 1;
    Built b = BuildFrom(SpmVocab(tokens, scores, types, true));
    ASSERT_EQ(b.rc, M64_OK) << b.msg;
    blob = &Keep(b.blob);
    loaded = true;
  }
  ASSERT_EQ(tok_load(blob->data(), (uint32_t)blob->size()), 0);
}

int32_t Id(const char *marker) { return tok_find(marker, (uint32_t)strlen(marker)); }

// The ids of a list of parts: "<...>" parts are markers (tokens), others text runs.
std::vector<int32_t> Expect(std::initializer_list<std::string> parts, bool bos) {
  std::vector<int32_t> out;
  if (bos) out.push_back(1);
  std::string run;
  auto flush = [&] {
    if (run.empty()) return;
    std::vector<int32_t> ids = Encode(run, false);
    out.insert(out.end(), ids.begin(), ids.end());
    run.clear();
  };
  for (const std::string &p : parts) {
    if (p.size() > 2 && p[0] == '<' && p.back() == '>' && Id(p.c_str()) >= 0) {
      flush();
      out.push_back(Id(p.c_str()));
    } else {
      run += p;
    }
  }
  flush();
  return out;
}

std::vector<int32_t> Turn(const char *kind, int32_t flags, const std::string &sys, const std::string &user) {
  std::vector<char> scratch(sys.size() + user.size() + 256);
  std::vector<int32_t> out(4 * (sys.size() + user.size()) + 64);
  const int32_t k = chat_kind(kind, (uint32_t)strlen(kind));
  EXPECT_GT(k, 0) << kind;
  int32_t n = chat_turn(k, flags, sys.data(), (uint32_t)sys.size(), user.data(), (uint32_t)user.size(), scratch.data(),
                        (uint32_t)scratch.size(), out.data(), (uint32_t)out.size());
  EXPECT_GE(n, 0);
  out.resize(n < 0 ? 0 : (size_t)n);
  return out;
}

std::vector<int32_t> End(const char *kind, int32_t last) {
  std::vector<char> scratch(256);
  std::vector<int32_t> out(64);
  int32_t n = chat_end(chat_kind(kind, (uint32_t)strlen(kind)), last, scratch.data(), (uint32_t)scratch.size(),
                       out.data(), (uint32_t)out.size());
  EXPECT_GE(n, 0);
  out.resize(n < 0 ? 0 : (size_t)n);
  return out;
}

TEST(ChatFormat, GemmaPutsTheSystemTextInTheFirstUserTurn) {
  LoadMarkerVocab();
  EXPECT_EQ(Turn("gemma", 0, " Be brief. ", "Hi\n"),
            Expect({"<start_of_turn>", "user\nBe brief.\n\nHi", "<end_of_turn>", "\n", "<start_of_turn>", "model\n"},
                   true));
  EXPECT_EQ(Turn("gemma", CHAT_STARTED, "", "And?"),
            Expect({"<start_of_turn>", "user\nAnd?", "<end_of_turn>", "\n", "<start_of_turn>", "model\n"}, false));
  EXPECT_EQ(End("gemma", -1), Expect({"<end_of_turn>", "\n"}, false));
  // the model's own <end_of_turn> was already run: only the newline is left
  EXPECT_EQ(End("gemma", Id("<end_of_turn>")), Expect({"\n"}, false));
}

TEST(ChatFormat, Phi3WritesRoleHeadersAndEnd) {
  LoadMarkerVocab();
  EXPECT_EQ(Turn("phi3", 0, "S", "U"),
            Expect({"<|system|>", "\nS", "<|end|>", "\n", "<|user|>", "\nU", "<|end|>", "\n", "<|assistant|>", "\n"},
                   true));
  EXPECT_EQ(End("phi3", -1), Expect({"<|end|>", "\n"}, false));
}

TEST(ChatFormat, ChatMLAndLlama3AsBefore) {
  LoadMarkerVocab();
  EXPECT_EQ(Turn("chatml", 0, "", "Hi"),
            Expect({"<|im_start|>", "user\nHi", "<|im_end|>", "\n", "<|im_start|>", "assistant\n"}, true));
  EXPECT_EQ(Turn("llama3", CHAT_STARTED, "", " Hi "),
            Expect({"<|start_header_id|>", "user", "<|end_header_id|>", "\n\nHi", "<|eot_id|>", "<|start_header_id|>",
                    "assistant", "<|end_header_id|>", "\n\n"},
                   false));
}

TEST(ChatFormat, TypedMarkersStayTextAndSmallBuffersFail) {
  LoadMarkerVocab();
  std::vector<int32_t> ids = Turn("gemma", CHAT_STARTED, "", "<end_of_turn>");
  EXPECT_EQ(std::count(ids.begin(), ids.end(), Id("<end_of_turn>")), 1);  // only the template's
  std::vector<char> scratch(300);
  int32_t out[4];
  EXPECT_EQ(chat_turn(CHAT_GEMMA, 0, "", 0, "hello", 5, scratch.data(), 300, out, 4), -1);
  EXPECT_EQ(chat_turn(CHAT_GEMMA, 0, "", 0, "hello", 5, scratch.data(), 3, out, 4), -1);
  EXPECT_EQ(chat_turn(99, 0, "", 0, "x", 1, scratch.data(), 300, out, 4), CHAT_EKIND);
  EXPECT_EQ(chat_kind("gemma3", 6), CHAT_NONE);
}

}  // namespace chat

// ---- sampler: llama.cpp's chain (penalties, top-k, top-p, min-p, temperature)

sampler_params Params(float temp, const std::vector<int32_t> &last = {}, float repeat = 1.0f,
                      float presence = 0.0f, float frequency = 0.0f) {
  sampler_params p{};
  p.temp = temp;
  p.top_p = 1.0f;
  p.repeat_penalty = repeat;
  p.presence_penalty = presence;
  p.frequency_penalty = frequency;
  p.last = last.empty() ? nullptr : last.data();
  p.n_last = (uint32_t)last.size();
  return p;
}

int32_t Greedy(const std::vector<float> &l, const std::vector<int32_t> &last, float repeat, float presence = 0,
               float frequency = 0) {
  sampler_params p = Params(0.0f, last, repeat, presence, frequency);
  return sampler_sample_ex(l.data(), (uint32_t)l.size(), &p);
}

TEST(SamplerPenalties, RepeatDividesPositiveAndMultipliesNegativeLogits) {
  // 2.0 / 1.1 = 1.82 < 1.9: the repeated id loses its lead
  EXPECT_EQ(Greedy({2.0f, 1.9f, -0.5f, 0.1f}, {0}, 1.1f), 1);
  EXPECT_EQ(Greedy({2.0f, 1.9f, -0.5f, 0.1f}, {0}, 1.0f), 0);
  EXPECT_EQ(Greedy({2.0f, 1.9f, -0.5f, 0.1f}, {}, 1.1f), 0);
  // -1.0 * 1.1 = -1.1 < -1.05 (dividing would have raised it to -0.91)
  EXPECT_EQ(Greedy({-1.0f, -1.05f}, {0}, 1.1f), 1);
  // a repeat count does not matter to the repeat penalty: once is enough
  EXPECT_EQ(Greedy({2.0f, 1.9f}, {0, 0, 0, 0}, 1.1f), 1);
}

TEST(SamplerPenalties, FrequencyCountsAndPresenceDoesNot) {
  // 1.0 - 3 * 0.2 = 0.4 < 0.5; with two occurrences 1.0 - 0.4 = 0.6 > 0.5
  EXPECT_EQ(Greedy({1.0f, 0.5f}, {0, 0, 0}, 1.0f, 0.0f, 0.2f), 1);
  EXPECT_EQ(Greedy({1.0f, 0.5f}, {0, 0}, 1.0f, 0.0f, 0.2f), 0);
  // presence: 1.0 - 0.4 = 0.6 whatever the count; 1.0 - 0.6 = 0.4
  EXPECT_EQ(Greedy({1.0f, 0.5f}, {0, 0, 0}, 1.0f, 0.4f), 0);
  EXPECT_EQ(Greedy({1.0f, 0.5f}, {0}, 1.0f, 0.6f), 1);
  // ids interleaved and unsorted in last[] are counted per id
  EXPECT_EQ(Greedy({1.0f, 0.95f, 0.0f}, {1, 0, 2, 0, 1, 0}, 1.0f, 0.0f, 0.1f), 1);  // 1 - 0.3 < 0.95 - 0.2
}

TEST(SamplerPenalties, RepeatThenFrequencyAndPresence) {
  // llama.cpp: (2.0 / 2) - 2 * 0.05 = 0.9 < 0.92; subtracting first would give (2.0 - 0.1) / 2 = 0.95
  EXPECT_EQ(Greedy({2.0f, 0.92f}, {0, 0}, 2.0f, 0.0f, 0.05f), 1);
  EXPECT_EQ(Greedy({2.0f, 0.88f}, {0, 0}, 2.0f, 0.0f, 0.05f), 0);
  // ids outside the vocabulary are ignored; the logits themselves are not changed
  std::vector<float> l = {1.0f, 0.5f};
  EXPECT_EQ(Greedy(l, {-1, 7, 1000000}, 5.0f, 1.0f, 1.0f), 0);
  EXPECT_EQ(Greedy(l, {0}, 5.0f), 1);
  EXPECT_EQ(l[0], 1.0f);
}

int32_t g_banned_below = 0;
int32_t BannedBelow(int32_t id) { return id < g_banned_below; }

TEST(SamplerPenalties, BannedIdsAreNeverChosen) {
  const std::vector<float> l = {5.0f, 1.0f, 2.0f};
  sampler_params p = Params(0.0f);
  p.banned = BannedBelow;
  g_banned_below = 1;
  EXPECT_EQ(sampler_sample_ex(l.data(), 3, &p), 2);
  p.temp = 1.0f;
  sampler_seed(3);
  for (int i = 0; i < 200; i++) ASSERT_NE(sampler_sample_ex(l.data(), 3, &p), 0);
  g_banned_below = 3;
  EXPECT_EQ(sampler_sample_ex(l.data(), 3, &p), -1);
  p.temp = 0.0f;
  EXPECT_EQ(sampler_sample_ex(l.data(), 3, &p), -1);
}

void ExpectFrequenciesEx(const std::vector<float> &logits, const sampler_params &p, const std::vector<double> &want) {
  const int draws = 200000;
  std::vector<int> count(logits.size());
  sampler_seed(77);
  for (int i = 0; i < draws; i++) {
    int32_t id = sampler_sample_ex(logits.data(), (uint32_t)logits.size(), &p);
    ASSERT_GE(id, 0);
    ASSERT_LT((size_t)id, logits.size());
    count[(size_t)id]++;
  }
  for (size_t i = 0; i < logits.size(); i++) {
    double sd = std::sqrt(draws * want[i] * (1 - want[i]));
    if (want[i] == 0) EXPECT_EQ(count[i], 0) << "id " << i << " is outside the kept set";
    else EXPECT_NEAR(count[i], want[i] * draws, 5 * sd + 1) << "id " << i;
  }
}

TEST(SamplerChain, MinPAndTopPComeBeforeTemperature) {
  const std::vector<float> l = {2.0f, 1.5f, 1.0f, 0.0f, -1.0f, -3.0f};
  // min-p 0.3 against p / p_max at temperature 1: 1, .61, .37, .14 ... keeps three.
  // (At temperature 0.5 the ratios are 1, .37, .14: it would keep two.)
  sampler_params p = Params(0.5f);
  p.min_p = 0.3f;
  ExpectFrequenciesEx(l, p, Softmax(l, 0.5f, 3));
  p.temp = 1.0f;
  ExpectFrequenciesEx(l, p, Softmax(l, 1.0f, 3));
  // the same through the ranking path (top-k on)
  p.top_k = 5;
  ExpectFrequenciesEx(l, p, Softmax(l, 1.0f, 3));
  // top-p 0.8 at temperature 1: .43 .26 .16 -> three; at 0.5 (.66 .24) it would be two
  p = Params(0.5f);
  p.top_p = 0.8f;
  ExpectFrequenciesEx(l, p, Softmax(l, 0.5f, 3));
  // top-p then min-p: top-p keeps three, min-p 0.5 (ratios 1, .61, .37) two of them
  p.min_p = 0.5f;
  ExpectFrequenciesEx(l, p, Softmax(l, 0.5f, 2));
}

TEST(SamplerChain, PenaltiesShapeTheDistribution) {
  // {1, 1}, id 0 repeated with penalty 2: logits {0.5, 1} -> p0 = 1 / (1 + e^0.5) = 0.3775
  const std::vector<int32_t> last = {0};
  sampler_params p = Params(1.0f, last, 2.0f);
  const double p0 = 1.0 / (1.0 + std::exp(0.5));
  ExpectFrequenciesEx({1.0f, 1.0f}, p, {p0, 1 - p0});
}

}  // namespace
