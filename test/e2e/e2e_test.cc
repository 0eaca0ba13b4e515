// End to end: bundles compiled by the real m64c (fixture build_bundles.sh) run through
// the runtime library and the m64run command line, compared with llama.cpp's reference
// output (../shared/models) and with the project's F32 oracle (synthetic models).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "m64_formats.h"
#include "m64_runtime.h"
#include "oracle.h"

#include "../support/run_cmd.h"

namespace {

using m64test::CmdResult;
using m64test::sh;
using m64test::exists;

const std::string kBin = M64_BINARY_DIR;
const std::string kShared = M64_SHARED_MODELS;
const std::string kOut = std::string(M64_BINARY_DIR) + "/test/e2e/bundles";

// Runs a shell command; stdout only (stderr discarded).
CmdResult sh_stdout(const std::string &cmd) { return sh("(" + cmd + " 2>/dev/null)"); }

// The "tokens" field of m64run --json output (what two runs that must agree compare).
std::string json_tokens(const std::string &j) {
  const size_t at = j.find("\"tokens\"");
  return at == std::string::npos ? "(no tokens in: " + j + ")" : j.substr(at, j.find("\"text\"") - at);
}

std::string tmpdir() {
  char t[] = "/tmp/m64e2e.XXXXXX";
  return mkdtemp(t);
}

// ---- the runtime library ----
struct Session {
  m64_session *s = nullptr;
  m64_err e{};
  explicit Session(const std::string &path, uint64_t workspace = 0, uint32_t n_ctx = 0) {
    m64_session_options o{};
    o.workspace_bytes = workspace;
    o.n_ctx = n_ctx;
    o.verify_layers = 1;
    if (m64_session_open(path.c_str(), &o, &s, &e)) s = nullptr;
  }
  ~Session() { m64_session_close(s); }
  std::vector<int32_t> tokenize(const std::string &text) {
    int32_t *ids;
    uint32_t n;
    EXPECT_EQ(m64_session_tokenize(s, text.data(), text.size(), 1, &ids, &n, &e), 0) << e.msg;
    std::vector<int32_t> v(ids, ids + n);
    free(ids);
    return v;
  }
  std::vector<float> eval(int32_t tok, uint32_t pos) {
    const float *l;
    EXPECT_EQ(m64_session_eval(s, tok, pos, &l, &e), 0) << e.msg;
    return std::vector<float>(l, l + m64_session_n_vocab(s));
  }
  std::string piece(int32_t prev, int32_t id) {
    char buf[256];
    size_t n;
    EXPECT_EQ(m64_session_piece(s, prev, id, buf, sizeof buf, &n, &e), 0) << e.msg;
    return std::string(buf, n);
  }
};

int argmax(const std::vector<float> &v) {
  int best = 0;
  for (size_t i = 1; i < v.size(); i++)
    if (v[i] > v[best]) best = (int)i;
  return best;
}

std::vector<double> softmax(const std::vector<float> &l) {
  double m = l[argmax(l)], sum = 0;
  std::vector<double> p(l.size());
  for (size_t i = 0; i < l.size(); i++) sum += p[i] = std::exp((double)l[i] - m);
  for (auto &x : p) x /= sum;
  return p;
}

// One line of a reference *.probs.jsonl file.
struct RefPos { int pos = -1, greedy = -1; std::vector<std::pair<int, double>> top; };

std::vector<RefPos> read_probs(const std::string &path) {
  std::vector<RefPos> out;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    RefPos r;
    const char *s = line.c_str();
    if (const char *p = strstr(s, "\"pos\":")) r.pos = atoi(p + 6);
    if (const char *p = strstr(s, "\"greedy\":")) r.greedy = atoi(p + 9);
    if (const char *p = strstr(s, "\"top\":[")) {
      p += 7;
      while (*p == '[') {
        char *end;
        int id = (int)strtol(p + 1, &end, 10);
        double prob = strtod(end + 1, &end);
        r.top.push_back({id, prob});
        p = end + 1;  // past ']'
        if (*p == ',') p++;
      }
    }
    out.push_back(r);
  }
  return out;
}

// ---------------------------------------------------------------- stories260K
TEST(Stories260K, PromptTokensMatchLlamaCpp) {
  NEED_FILE(kOut + "/stories260K.m64");
  Session s(kOut + "/stories260K.m64");
  ASSERT_TRUE(s.s) << s.e.msg;
  EXPECT_EQ(s.tokenize("Once upon a time"), (std::vector<int32_t>{1, 403, 407, 261, 378}));
}

TEST(Stories260K, GreedyTokensAndProbabilitiesMatchLlamaCpp) {
  NEED_FILE(kOut + "/stories260K.m64");
  const std::string ref_path = kShared + "/reference/stories260K-once-upon-a-time.probs.jsonl";
  NEED_FILE(ref_path);
  std::vector<RefPos> ref = read_probs(ref_path);
  ASSERT_EQ(ref.size(), 32u);
  Session s(kOut + "/stories260K.m64");
  ASSERT_TRUE(s.s) << s.e.msg;
  std::vector<int32_t> ids = s.tokenize("Once upon a time");
  std::vector<float> logits;
  for (size_t i = 0; i < ids.size(); i++) logits = s.eval(ids[i], (uint32_t)i);
  std::string text;
  int32_t prev = ids.back();
  double worst = 0;
  for (const RefPos &r : ref) {
    ASSERT_EQ(r.pos, (int)ids.size()) << "reference positions are consecutive";
    std::vector<double> p = softmax(logits);
    ASSERT_EQ(argmax(logits), r.greedy) << "greedy token at position " << r.pos;
    for (auto &t : r.top) {
      worst = std::max(worst, std::fabs(p[t.first] - t.second));
      EXPECT_NEAR(p[t.first], t.second, 5e-4) << "P(" << t.first << ") at position " << r.pos;
    }
    text += s.piece(prev, r.greedy);
    prev = r.greedy;
    ids.push_back(r.greedy);
    logits = s.eval(r.greedy, (uint32_t)ids.size() - 1);
  }
  std::printf("stories260K: 32 greedy tokens match llama.cpp; largest top-5 probability difference %.2e\n", worst);
  EXPECT_EQ(text.rfind(", there was a little girl named Lily. She loved to play outside in the park. One day, she saw", 0), 0u)
      << text;
}

// A workspace too small for the whole model pages layers in and out and must give the
// same tokens as one that holds everything.
TEST(Stories260K, PagingWithASmallWorkspaceGivesTheSameTokens) {
  NEED_FILE(kOut + "/stories260K.m64");
  auto greedy = [](Session &s, int n, m64_session_stats *st) {
    std::vector<int32_t> ids = s.tokenize("Once upon a time");
    std::vector<float> l;
    for (size_t i = 0; i < ids.size(); i++) l = s.eval(ids[i], (uint32_t)i);
    for (int i = 0; i < n; i++) {
      ids.push_back(argmax(l));
      l = s.eval(ids.back(), (uint32_t)ids.size() - 1);
    }
    m64_session_stats_get(s.s, st);
    return ids;
  };
  m64_session_stats big_st, small_st;
  Session big(kOut + "/stories260K.m64", 0, 64);
  ASSERT_TRUE(big.s) << big.e.msg;
  std::vector<int32_t> a = greedy(big, 24, &big_st);
  EXPECT_EQ(big_st.evictions, 0u);

  // Find the smallest workspace that opens: state + the largest layer.
  Session *small = nullptr;
  uint64_t ws = 0;
  for (ws = 1u << 20; ws < (64u << 20); ws += 64 * 1024) {
    small = new Session(kOut + "/stories260K.m64", ws, 64);
    if (small->s) break;
    delete small;
    small = nullptr;
  }
  ASSERT_TRUE(small) << "no workspace under 64 MiB opened";
  std::vector<int32_t> b = greedy(*small, 24, &small_st);
  delete small;
  EXPECT_EQ(a, b);
  EXPECT_GT(small_st.evictions, 0u) << "workspace " << ws << " did not force paging";
  EXPECT_GT(small_st.layer_page_ins, big_st.layer_page_ins);
  EXPECT_LT(small_st.workspace_bytes, big_st.workspace_bytes);
  std::printf("stories260K paging: workspace %llu vs %llu bytes, %llu vs %llu page-ins, same 24 tokens\n",
              (unsigned long long)small_st.workspace_bytes, (unsigned long long)big_st.workspace_bytes,
              (unsigned long long)small_st.layer_page_ins, (unsigned long long)big_st.layer_page_ins);
}

TEST(Stories260K, CommandLineStreamsLlamaCppText) {
  NEED_FILE(kOut + "/stories260K.m64");
  CmdResult r = sh_stdout(kBin + "/cmd/m64run " + kOut + "/stories260K.m64 -p 'Once upon a time' -n 32 --temp 0");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.rfind("Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw", 0), 0u)
      << r.out;
}

TEST(Stories260K, JsonOutput) {
  NEED_FILE(kOut + "/stories260K.m64");
  CmdResult r = sh_stdout(kBin + "/cmd/m64run " + kOut + "/stories260K.m64 -p 'Once upon a time' -n 8 --temp 0 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.rfind("{\"prompt_tokens\":[1,403,407,261,378],\"tokens\":[", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("\"text\":\", there was a little girl"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"decode_tok_s\":"), std::string::npos);
}

TEST(Stories260K, InfoDescribesTheBundle) {
  NEED_FILE(kOut + "/stories260K.m64");
  CmdResult r = sh(kBin + "/cmd/m64c info " + kOut + "/stories260K.m64");
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char *want : {"m64 bundle v1", "general.architecture = llama", "layers (6)", "globals",
                           "blk.4", "token_embd.weight", "F32", "m64_forward", "native targets:",
                           "built from this module", "segments: 1", "module.kernels = 5: mm_f32_",
                           "m64.abi_version = 5"})  // m64_module.h's M64_ABI_VERSION (m64c wrote 1)
    EXPECT_NE(r.out.find(want), std::string::npos) << "missing '" << want << "' in:\n" << r.out;
}

// Sampling: the same seed gives the same text, another seed (almost surely) another.
TEST(Stories260K, SeededSamplingIsReproducible) {
  NEED_FILE(kOut + "/stories260K.m64");
  auto run = [](const char *seed) {
    return sh_stdout(kBin + "/cmd/m64run " + kOut + "/stories260K.m64 -p 'Once upon a time' -n 48 --temp 1.0 "
                     "--top-k 40 --top-p 0.95 --json --seed " + seed).out;
  };
  std::string a = run("42"), b = run("42"), c = run("43");
  auto tokens = [](const std::string &j) { return j.substr(0, j.find("\"text\"")); };
  EXPECT_EQ(tokens(a), tokens(b));
  EXPECT_NE(tokens(a), tokens(c));
}

// A bundle whose image is split into many segments (no layer crossing one) runs the same.
TEST(Stories260K, MultiSegmentImageGivesTheSameText) {
  NEED_FILE(kShared + "/stories260K.gguf");
  NEED_FILE(kOut + "/stories260K.m64");
  std::string d = tmpdir();
  CmdResult r = sh(kBin + "/cmd/m64c build -q --segment-max 320K " + kShared + "/stories260K.gguf -o " + d + "/seg.m64");
  ASSERT_EQ(r.code, 0) << r.out;
  r = sh(kBin + "/cmd/m64c info " + d + "/seg.m64");
  EXPECT_NE(r.out.find("segments: 6"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("segment.5"), std::string::npos) << r.out;
  CmdResult a = sh_stdout(kBin + "/cmd/m64run " + d + "/seg.m64 -p 'Once upon a time' -n 32 --temp 0");
  CmdResult b = sh_stdout(kBin + "/cmd/m64run " + kOut + "/stories260K.m64 -p 'Once upon a time' -n 32 --temp 0");
  EXPECT_EQ(a.code, 0);
  EXPECT_EQ(a.out, b.out);
  // a layer larger than the segment cap cannot be laid out
  r = sh(kBin + "/cmd/m64c build -q --segment-max 64K " + kShared + "/stories260K.gguf -o " + d + "/bad.m64");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_FALSE(exists(d + "/bad.m64"));
  sh("rm -rf " + d);
}

// ---------------------------------------------------------------- the pager
struct Gen { std::string tokens; unsigned long long page_ins, requests, evictions, slots; };

Gen gen_json(const std::string &bundle, const std::string &flags) {
  CmdResult r = sh_stdout(kBin + "/cmd/m64run " + bundle + " -p 'one two three' -n 24 --temp 0 -c 64 --json " + flags);
  Gen g{};
  if (r.code != 0) return g;  // e.g. a workspace too small: the caller decides
  size_t t = r.out.find("\"tokens\""), x = r.out.find("\"text\"");
  if (t == std::string::npos || x == std::string::npos) return g;
  g.tokens = r.out.substr(t, x - t);
  auto num = [&](const char *key) {
    size_t k = r.out.find(std::string("\"") + key + "\":");
    return k == std::string::npos ? 0ull : std::strtoull(r.out.c_str() + k + strlen(key) + 3, nullptr, 10);
  };
  g.page_ins = num("layer_page_ins");
  g.requests = num("layer_requests");
  g.evictions = num("evictions");
  g.slots = num("cache_slots");
  return g;
}

// Every way of paging gives the same tokens; with shared slots the cyclic policy keeps
// all but three slots' worth of blocks resident (LRU would page in every block every token).
TEST(Pager, CopyMapPrefetchAndWorkspaceSizesAgree) {
  NEED_FILE(kOut + "/synth-8layer.m64");
  const std::string b = kOut + "/synth-8layer.m64";
  Gen full = gen_json(b, "");
  ASSERT_FALSE(full.tokens.empty());
  EXPECT_EQ(full.evictions, 0u);
  EXPECT_EQ(full.page_ins, 9u) << "globals + 8 blocks, each placed once";
  // Find the workspace that gives 5 slots (globals + 4 block slots).
  for (const char *mode : {"copy", "map", "read"}) {
    for (const char *pf : {"", "--no-prefetch"}) {
      bool found = false;
      for (int kib = 1024; kib < 64 * 1024 && !found; kib += 64) {
        Gen g = gen_json(b, "--workspace " + std::to_string(kib) + "K --paging " + mode + " " + pf);
        if (g.tokens.empty() || g.slots != 5) continue;
        found = true;
        EXPECT_EQ(g.tokens, full.tokens) << mode << " " << pf;
        // 24 + 3 prompt-ish tokens: per token at most 8 - (4 - 3) = 7 block page-ins once warm
        // (3 slots stream: the block in use and the two the pager's thread places ahead)
        const unsigned long long tokens = g.requests / 10;  // 10 requests per token: 2 globals + 8 blocks
        EXPECT_LE(g.page_ins, 9 + tokens * 7) << mode << " " << pf << ": " << g.page_ins << " page-ins for " << tokens << " tokens";
        EXPECT_GE(g.page_ins, 9 + (tokens - 1) * 4) << "fewer page-ins than the slots allow: " << g.page_ins;
        std::printf("pager %s %s: %llu page-ins for %llu tokens with 4 block slots of 8 blocks\n", mode, pf,
                    g.page_ins, tokens);
      }
      EXPECT_TRUE(found) << "no workspace gave 5 slots";
    }
  }
}

// Threads split every matvec by rows; each row is computed by the same code whatever the
// split, so any thread count gives bit-identical logits, hence identical tokens.
TEST(Threads, AnyThreadCountGivesIdenticalTokens) {
  NEED_FILE(kOut + "/synth-mid-Q4_K.m64");
  for (const char *model : {"synth-mid-Q4_K.m64", "synth-mid-F32.m64", "synth-q4_k_m.m64", "synth-qwen3moe-q4_k_m.m64",
                            "synth-qwen3moe.m64"}) {
    const std::string b = kOut + "/" + model;
    Gen one = gen_json(b, "-t 1");
    ASSERT_FALSE(one.tokens.empty()) << model;
    for (const char *t : {"-t 2", "-t 3", "-t 5"}) EXPECT_EQ(gen_json(b, t).tokens, one.tokens) << model << " " << t;
  }
  // and the small-matvec path (everything under the parallel threshold) on stories260K
  NEED_FILE(kOut + "/stories260K.m64");
  CmdResult a = sh_stdout(kBin + "/cmd/m64run " + kOut + "/stories260K.m64 -p 'Once upon a time' -n 32 --temp 0 -t 1");
  CmdResult b = sh_stdout(kBin + "/cmd/m64run " + kOut + "/stories260K.m64 -p 'Once upon a time' -n 32 --temp 0 -t 2");
  EXPECT_EQ(a.out, b.out);
}

// Prompt processing in batches reads each matrix once for many tokens; every row is still
// computed by the same kernel on the same activation, so the logits are bit-identical to
// feeding the tokens one at a time.
TEST(Batch, PrefillLogitsEqualTokenByToken) {
  NEED_FILE(kOut + "/synth-mid-Q4_K.m64");
  for (const char *model : {"synth-mid-Q4_K.m64", "synth-mid-F32.m64", "synth-q4_k_m.m64", "synth-qwen3moe-q4_k_m.m64",
                            "synth-qwen3moe.m64"}) {
    std::vector<int32_t> ids;
    for (int i = 0; i < 45; i++) ids.push_back((int32_t)(1 + (i * 37) % 500));  // > one batch of 32
    std::vector<float> one, many;
    {
      Session s(kOut + "/" + model, 0, 64);
      ASSERT_TRUE(s.s) << s.e.msg;
      for (size_t i = 0; i < ids.size(); i++) one = s.eval(ids[i], (uint32_t)i);
    }
    {
      Session s(kOut + "/" + model, 0, 64);
      ASSERT_TRUE(s.s) << s.e.msg;
      const float *l = nullptr;
      ASSERT_EQ(m64_session_eval_batch(s.s, ids.data(), (uint32_t)ids.size(), 0, &l, &s.e), 0) << s.e.msg;
      many.assign(l, l + m64_session_n_vocab(s.s));
      // and decoding continues from there exactly as after token-by-token
      many.push_back(0);
      std::vector<float> next = s.eval(7, (uint32_t)ids.size());
      Session t(kOut + "/" + model, 0, 64);
      for (size_t i = 0; i < ids.size(); i++) t.eval(ids[i], (uint32_t)i);
      EXPECT_EQ(next, t.eval(7, (uint32_t)ids.size())) << model;
      many.pop_back();
    }
    EXPECT_EQ(one, many) << model;
  }
}

// Attention splits its (head, token) pairs across the threads once it has enough
// query-key products (a 32-token batch of synth-mid: 32 x 512 x 32 and more): every pair is
// computed alike on any thread, so the logits do not depend on the thread count, for the
// prompt and for decoding after it.
TEST(Threads, SplitAttentionGivesIdenticalLogits) {
  NEED_FILE(kOut + "/synth-mid-Q4_K.m64");
  std::vector<int32_t> ids;
  for (int i = 0; i < 80; i++) ids.push_back((int32_t)(1 + (i * 53) % 500));
  std::vector<std::vector<float>> runs;
  for (uint32_t threads : {1u, 2u, 3u}) {
    m64_session_options o{};
    o.n_ctx = 128;
    o.n_threads = threads;
    m64_session *s = nullptr;
    m64_err e{};
    ASSERT_EQ(m64_session_open((kOut + "/synth-mid-Q4_K.m64").c_str(), &o, &s, &e), 0) << e.msg;
    std::vector<float> logits;
    const float *l = nullptr;
    for (uint32_t at = 0; at < ids.size(); at += 32) {  // batches at later positions too
      const uint32_t n = ids.size() - at < 32 ? (uint32_t)(ids.size() - at) : 32;
      ASSERT_EQ(m64_session_eval_batch(s, ids.data() + at, n, at, &l, &e), 0) << e.msg;
      logits.insert(logits.end(), l, l + m64_session_n_vocab(s));
    }
    ASSERT_EQ(m64_session_eval(s, 7, (uint32_t)ids.size(), &l, &e), 0) << e.msg;
    logits.insert(logits.end(), l, l + m64_session_n_vocab(s));
    m64_session_close(s);
    runs.push_back(logits);
  }
  EXPECT_EQ(runs[0], runs[1]);
  EXPECT_EQ(runs[0], runs[2]);
}

// A flipped byte inside a layer is caught by that layer's SHA-256 at its first page-in.
TEST(Pager, CorruptLayerIsNamedNotUsed) {
  NEED_FILE(kOut + "/synth-F32.m64");
  std::string d = tmpdir();
  sh("cp " + kOut + "/synth-F32.m64 " + d + "/c.m64");
  // the image is at the end of the file: flip a byte 100 KiB before the end
  CmdResult r = sh("size=$(stat -c %s " + d + "/c.m64); printf '\\x5a' | dd of=" + d +
                   "/c.m64 bs=1 seek=$((size - 102400)) conv=notrunc status=none");
  ASSERT_EQ(r.code, 0) << r.out;
  r = sh(kBin + "/cmd/m64run " + d + "/c.m64 -p 'one two' -n 4 --temp 0");
  EXPECT_EQ(r.code, 1) << r.out;
  // m64c verify checks everything up front and names the same layer
  CmdResult v = sh(kBin + "/cmd/m64c verify " + d + "/c.m64");
  EXPECT_EQ(v.code, 1) << v.out;
  EXPECT_NE(v.out.find("'blk.1'"), std::string::npos) << v.out;
  v = sh(kBin + "/cmd/m64c verify " + kOut + "/synth-F32.m64");
  EXPECT_EQ(v.code, 0) << v.out;
  EXPECT_NE(v.out.find(": OK: "), std::string::npos) << v.out;
  EXPECT_NE(r.out.find("SHA-256 mismatch"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("'blk.1'"), std::string::npos) << r.out;
  sh("rm -rf " + d);
}

// Hashing every layer at each start costs a 7B model ~24 s: m64run records a bundle whose
// layers it has all hashed and skips the hashes while the file stays unchanged.
TEST(Pager, AVerifiedBundleIsHashedAgainOnlyOnceItChanges) {
  NEED_FILE(kOut + "/synth-F32.m64");
  const std::string d = tmpdir(), bundle = d + "/v.m64";
  sh("cp " + kOut + "/synth-F32.m64 " + bundle);
  const std::string run = "XDG_CACHE_HOME=" + d + "/cache " + kBin + "/cmd/m64run " + bundle + " -p 'one two' -n 4 --temp 0 -v";
  CmdResult r = sh(run + " --no-verify");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.find("recorded in"), std::string::npos) << "nothing hashed, nothing to record:\n" << r.out;
  r = sh(run);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("every layer hashed: recorded in " + d + "/cache/m64/verified/"), std::string::npos) << r.out;
  CmdResult again = sh(run);
  ASSERT_EQ(again.code, 0) << again.out;
  EXPECT_NE(again.out.find("not hashed again"), std::string::npos) << again.out;
  EXPECT_EQ(sh_stdout(run).out, sh_stdout(run + " --reverify").out) << "same text with and without the hashes";
  EXPECT_EQ(sh(run + " --reverify").out.find("not hashed again"), std::string::npos);
  // a changed file is hashed again: the damage is found, not skipped
  r = sh("size=$(stat -c %s " + bundle + "); printf '\\x5a' | dd of=" + bundle +
         " bs=1 seek=$((size - 102400)) conv=notrunc status=none");
  ASSERT_EQ(r.code, 0) << r.out;
  r = sh(run);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("SHA-256 mismatch"), std::string::npos) << r.out;
  sh("rm -rf " + d);
}

// m64c build hashes every layer as it writes it, and m64c verify hashes them all: both
// record the bundle, so its first m64run does not hash the layers again (a 7B: ~24 s). A
// stamp is best effort: an unwritable cache directory fails nothing.
TEST(Pager, BuildAndVerifyRecordTheBundleTheyHashed) {
  const std::string gguf = kOut + "/synth-F32.gguf";
  NEED_FILE(gguf);
  const std::string d = tmpdir(), env = "XDG_CACHE_HOME=" + d + "/cache ";
  CmdResult r = sh(env + kBin + "/cmd/m64c build -v " + gguf + " -o " + d + "/b.m64");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("every layer hashed: recorded in " + d + "/cache/m64/verified/"), std::string::npos) << r.out;
  const std::string run = " -p 'one two' -n 4 --temp 0 -v";
  r = sh(env + kBin + "/cmd/m64run " + d + "/b.m64" + run);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("not hashed again"), std::string::npos) << r.out;
  // a copy is another file: hashed at its first run, unless m64c verify checked it first
  sh("cp " + d + "/b.m64 " + d + "/c.m64");
  r = sh(env + kBin + "/cmd/m64c verify -v " + d + "/c.m64");
  ASSERT_EQ(r.code, 0) << r.out;
  r = sh(env + kBin + "/cmd/m64run " + d + "/c.m64" + run);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("not hashed again"), std::string::npos) << r.out;
  // a failed verify records nothing: the damage is found at the next run too
  sh("cp " + d + "/b.m64 " + d + "/bad.m64");
  r = sh("size=$(stat -c %s " + d + "/bad.m64); printf '\\x5a' | dd of=" + d +
         "/bad.m64 bs=1 seek=$((size - 102400)) conv=notrunc status=none");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(sh(env + kBin + "/cmd/m64c verify " + d + "/bad.m64").code, 1);
  r = sh(env + kBin + "/cmd/m64run " + d + "/bad.m64" + run);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("SHA-256 mismatch"), std::string::npos) << r.out;
  // nowhere to record: the build still succeeds, and the run hashes
  r = sh("XDG_CACHE_HOME=/proc/m64-none " + kBin + "/cmd/m64c build -v " + gguf + " -o " + d + "/n.m64");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.find("recorded in"), std::string::npos) << r.out;
  sh("rm -rf " + d);
}

// A SentencePiece vocabulary without "▁" spells a space as its 3 UTF-8 byte tokens, so a
// prompt can have more ids than bytes (issue 22: ' a' failed with "tokenizer failed (-1)"
// when the id buffer was capped at the text length + 2). Ids: <0xE2> 229, <0x96> 153,
// <0x81> 132, "▁a" 311; llama.cpp gives the same shape ([1, 229, 153, 132, "▁a"]).
TEST(SpmNoSpace, SpacesFitTheIdBuffer) {
  const std::string bundle = kOut + "/synth-nospace.m64";
  NEED_FILE(bundle);
  Session s(bundle);
  ASSERT_TRUE(s.s) << s.e.msg;
  EXPECT_EQ(s.tokenize(" a"), (std::vector<int32_t>{1, 229, 153, 132, 311}));
  // the worst case: every byte a space (and the leading space the vocabulary adds)
  for (size_t n : {1, 2, 3, 17, 1000}) {
    std::vector<int32_t> ids = s.tokenize(std::string(n, ' '));
    ASSERT_EQ(ids.size(), 1 + 3 * (n + 1)) << n << " spaces";
    const int32_t space[3] = {229, 153, 132};
    for (size_t i = 1; i < ids.size(); i++) ASSERT_EQ(ids[i], space[(i - 1) % 3]) << i;
  }
  CmdResult r = sh_stdout(kBin + "/cmd/m64run " + bundle + " -p ' a' -n 1 --temp 0 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("\"prompt_tokens\":[1,229,153,132,311]"), std::string::npos) << r.out;
}

// ---------------------------------------------------------------- llama-2-tiny-random
// ---------------------------------------------------------------- llama3-bpe-tiny (BPE)
// The reference lines: {"text": s, "ids": [...], "detok": s} (JSON strings with escapes).
struct BpeRef { std::string text; std::vector<int32_t> ids; };

bool json_string_at(const std::string &l, size_t i, std::string *out) {
  if (i >= l.size() || l[i] != '"') return false;
  out->clear();
  auto put = [&](uint32_t cp) {
    if (cp < 0x80) { out->push_back((char)cp); return; }
    if (cp < 0x800) { out->push_back((char)(0xC0 | cp >> 6)); }
    else if (cp < 0x10000) { out->push_back((char)(0xE0 | cp >> 12)); out->push_back((char)(0x80 | (cp >> 6 & 63))); }
    else { out->push_back((char)(0xF0 | cp >> 18)); out->push_back((char)(0x80 | (cp >> 12 & 63))); out->push_back((char)(0x80 | (cp >> 6 & 63))); }
    out->push_back((char)(0x80 | (cp & 63)));
  };
  for (i++; i < l.size(); i++) {
    char c = l[i];
    if (c == '"') return true;
    if (c != '\\') { out->push_back(c); continue; }
    char x = l[++i];
    if (x == 'n') out->push_back('\n');
    else if (x == 't') out->push_back('\t');
    else if (x == 'r') out->push_back('\r');
    else if (x == 'u') {
      uint32_t cp = (uint32_t)std::stoul(l.substr(i + 1, 4), nullptr, 16);
      i += 4;
      if (cp >= 0xD800 && cp < 0xDC00 && l.compare(i + 1, 2, "\\u") == 0) {
        uint32_t lo = (uint32_t)std::stoul(l.substr(i + 3, 4), nullptr, 16);
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        i += 6;
      }
      put(cp);
    } else out->push_back(x);  // \" \\ \/
  }
  return false;
}

std::vector<BpeRef> read_bpe_refs(const std::string &path) {
  std::vector<BpeRef> refs;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    BpeRef r;
    size_t t = line.find("\"text\":"), ids = line.find("\"ids\":[");
    if (t == std::string::npos || ids == std::string::npos || !json_string_at(line, t + 7, &r.text)) continue;
    for (const char *p = line.c_str() + ids + 7; *p && *p != ']';) {
      char *end;
      r.ids.push_back((int32_t)strtol(p, &end, 10));
      p = *end == ',' ? end + 1 : end;
    }
    refs.push_back(r);
  }
  return refs;
}

std::string ids_json(const std::vector<int32_t> &ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); i++) s += (i ? "," : "") + std::to_string(ids[i]);
  return s + "]";
}

// Every reference string: BOS 128000 then llama.cpp's ids; the pieces give the text back.
TEST(Llama3Bpe, PromptTokensMatchLlamaCpp) {
  const std::string bundle = kOut + "/llama3-bpe-tiny.m64";
  NEED_FILE(bundle);
  std::vector<BpeRef> refs = read_bpe_refs(kShared + "/tokenizer/llama3-bpe-tiny.jsonl");
  ASSERT_EQ(refs.size(), 83u);
  Session s(bundle, 0, 64);
  ASSERT_TRUE(s.s) << s.e.msg;
  for (const BpeRef &r : refs) {
    std::vector<int32_t> want = {128000};
    want.insert(want.end(), r.ids.begin(), r.ids.end());
    std::vector<int32_t> got = s.tokenize(r.text);
    EXPECT_EQ(ids_json(got), ids_json(want)) << r.text;
    std::string text;
    for (size_t i = 1; i < got.size(); i++) text += s.piece(got[i - 1], got[i]);
    EXPECT_EQ(text, r.text);
  }
}

// m64run --json prints the same prompt ids; --special turns special-token text into ids;
// generation stops at end-of-generation tokens and streams whole UTF-8 characters.
TEST(Llama3Bpe, CommandLinePromptTokensAndSpecial) {
  const std::string bundle = kOut + "/llama3-bpe-tiny.m64";
  NEED_FILE(bundle);
  std::vector<BpeRef> refs = read_bpe_refs(kShared + "/tokenizer/llama3-bpe-tiny.jsonl");
  ASSERT_GE(refs.size(), 25u);
  const std::string dir = tmpdir();
  const BpeRef &para = refs[24];  // a paragraph with quotes, commas and newlines
  { std::ofstream(dir + "/prompt.txt") << para.text; }
  std::vector<int32_t> want = {128000};
  want.insert(want.end(), para.ids.begin(), para.ids.end());
  const std::string run = kBin + "/cmd/m64run " + bundle + " -n 2 --temp 0 -t 1 --json ";
  CmdResult r = sh_stdout(run + "-f " + dir + "/prompt.txt");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("\"prompt_tokens\":" + ids_json(want) + ","), std::string::npos) << r.out;
  { std::ofstream(dir + "/special.txt") << "<|begin_of_text|>Hi<|eot_id|>"; }
  r = sh_stdout(run + "--special -f " + dir + "/special.txt");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("\"prompt_tokens\":[128000,128000,13347,128009],"), std::string::npos) << r.out;
  r = sh_stdout(run + "-f " + dir + "/special.txt");
  ASSERT_EQ(r.code, 0) << r.out;
  // without --special the markers are plain text: BOS is the only special id
  size_t at = r.out.find("\"prompt_tokens\":[128000,");
  ASSERT_NE(at, std::string::npos) << r.out;
  std::vector<int32_t> plain;
  for (const char *p = r.out.c_str() + at + 17; *p && *p != ']';) {
    char *end;
    plain.push_back((int32_t)strtol(p, &end, 10));
    p = *end == ',' ? end + 1 : end;
  }
  ASSERT_GT(plain.size(), 4u);
  for (size_t i = 1; i < plain.size(); i++) EXPECT_LT(plain[i], 128000) << ids_json(plain);
  sh("rm -rf " + dir);
}

TEST(Llama3Bpe, Utf8StreamingHoldsBackPartialCharacters) {
  // "🦙" is F0 9F A6 99; Llama 3 spells " 🦙" as three tokens that split it
  EXPECT_EQ(m64_utf8_complete("ab", 2), 2u);
  EXPECT_EQ(m64_utf8_complete(" \xF0\x9F", 3), 1u);
  EXPECT_EQ(m64_utf8_complete(" \xF0\x9F\xA6", 4), 1u);
  EXPECT_EQ(m64_utf8_complete(" \xF0\x9F\xA6\x99", 5), 5u);
  EXPECT_EQ(m64_utf8_complete("\xC3", 1), 0u);
  EXPECT_EQ(m64_utf8_complete("\xC3\xA9", 2), 2u);
  EXPECT_EQ(m64_utf8_complete("\xE2\x96", 2), 0u);
  EXPECT_EQ(m64_utf8_complete("\x80\x80", 2), 2u);  // stray continuation bytes: nothing to wait for
  EXPECT_EQ(m64_utf8_complete("a\xFF", 2), 2u);     // not a lead byte either
  EXPECT_EQ(m64_utf8_complete("", 0), 0u);
  const std::string bundle = kOut + "/llama3-bpe-tiny.m64";
  NEED_FILE(bundle);
  Session s(bundle, 0, 64);
  ASSERT_TRUE(s.s) << s.e.msg;
  std::vector<int32_t> ids = s.tokenize(" \xF0\x9F\xA6\x99");
  ASSERT_EQ(ids_json(ids), "[128000,11410,99,247]");
  std::string streamed, shown;
  for (size_t i = 1; i < ids.size(); i++) {
    streamed += s.piece(ids[i - 1], ids[i]);
    size_t ready = m64_utf8_complete(streamed.data() + shown.size(), streamed.size() - shown.size());
    shown += streamed.substr(shown.size(), ready);
    EXPECT_EQ(shown, i + 1 < ids.size() ? " " : " \xF0\x9F\xA6\x99") << "after token " << i;
  }
  int eog = -1;
  EXPECT_EQ(m64_session_is_eog(s.s, 128009, &eog, &s.e), 0) << s.e.msg;
  EXPECT_EQ(eog, 1);
  EXPECT_EQ(m64_session_is_eog(s.s, 128001, &eog, &s.e), 0);
  EXPECT_EQ(eog, 1);
  EXPECT_EQ(m64_session_is_eog(s.s, 128000, &eog, &s.e), 0);
  EXPECT_EQ(eog, 0);
  int32_t id = -2;
  EXPECT_EQ(m64_session_find_token(s.s, "<|eot_id|>", 10, &id, &s.e), 0) << s.e.msg;
  EXPECT_EQ(id, 128009);
}

TEST(TinyRandomF16, ProbabilitiesMatchLlamaCpp) {
  NEED_FILE(kOut + "/llama-2-tiny-random.m64");
  const std::string ref_path = kShared + "/reference/llama-2-tiny-random-capital.probs.jsonl";
  NEED_FILE(ref_path);
  std::vector<RefPos> ref = read_probs(ref_path);
  Session s(kOut + "/llama-2-tiny-random.m64");
  ASSERT_TRUE(s.s) << s.e.msg;
  std::vector<int32_t> ids = s.tokenize("The capital of France is");
  ASSERT_EQ((int)ids.size(), ref[0].pos) << "prompt length differs from llama.cpp's";
  std::vector<float> l;
  for (size_t i = 0; i < ids.size(); i++) l = s.eval(ids[i], (uint32_t)i);
  int flips = 0;
  double worst = 0;
  for (const RefPos &r : ref) {
    std::vector<double> p = softmax(l);
    // The reference prints 6 decimals (about 1% of these ~3.9e-5 probabilities), so the
    // tolerance is its rounding (5e-7) plus 0.1% relative.
    for (auto &t : r.top) {
      worst = std::max(worst, std::fabs(p[t.first] - t.second));
      EXPECT_NEAR(p[t.first], t.second, 5e-7 + t.second * 1e-3) << "P(" << t.first << ") at " << r.pos;
    }
    if (argmax(l) != r.greedy) {
      flips++;  // only legitimate between near-ties: our P(llama.cpp's pick) ~ our max P
      EXPECT_NEAR(p[r.greedy], p[argmax(l)], 1e-3 * p[argmax(l)]) << "argmax flip at " << r.pos;
    }
    ids.push_back(r.greedy);  // follow llama.cpp's path
    l = s.eval(r.greedy, (uint32_t)ids.size() - 1);
  }
  std::printf("llama-2-tiny-random: %zu positions, largest probability difference %.2e, %d argmax flips\n",
              ref.size(), worst, flips);
}

// ---------------------------------------------------------------- chat (m64run -i)
struct ChatTurn { uint32_t pos; std::vector<int32_t> prompt, end; uint32_t reply = 0; };

// Parses m64run -i -v's "turn N: prompt|reply|end of reply" lines.
std::vector<ChatTurn> chat_turns(const std::string &log) {
  std::vector<ChatTurn> turns;
  std::istringstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    unsigned turn = 0, n = 0, a = 0, b = 0;
    char what[32] = "";
    if (std::sscanf(line.c_str(), "m64run: turn %u: %31[a-z ]: %u tokens at positions %u..%u", &turn, what, &n, &a, &b) == 5) {
      if (turns.size() < turn) turns.resize(turn);
      std::vector<int32_t> ids;
      const size_t lb = line.find('[');
      std::istringstream list(line.substr(lb + 1));
      int32_t id;
      char sep;
      while (list >> id) {
        ids.push_back(id);
        if (!(list >> sep) || sep != ',') break;
      }
      if (std::string(what) == "prompt") turns[turn - 1].pos = a, turns[turn - 1].prompt = ids;
      else turns[turn - 1].end = ids;
    } else if (std::sscanf(line.c_str(), "m64run: turn %u: reply: %u tokens", &turn, &n) == 2 && turn <= turns.size()) {
      turns[turn - 1].reply = n;
    }
  }
  return turns;
}

std::vector<int32_t> concat(std::initializer_list<std::vector<int32_t>> parts) {
  std::vector<int32_t> v;
  for (auto &p : parts) v.insert(v.end(), p.begin(), p.end());
  return v;
}

TEST(Chat, Llama3TwoTurnsThroughAPipe) {
  const std::string bundle = kOut + "/llama3-bpe-tiny.m64";
  NEED_FILE(bundle);
  CmdResult r = sh("printf 'Hello there\\nWhat is 2+2?\\n' | " + kBin + "/cmd/m64run " + bundle +
                   " -i --temp 0 -n 5 -v --system 'Be brief.'");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("chat template llama3"), std::string::npos) << r.out;
  std::vector<ChatTurn> t = chat_turns(r.out);
  ASSERT_EQ(t.size(), 2u) << r.out;
  // Llama 3's template as llama.cpp renders it: BOS once, then
  // <|start_header_id|>ROLE<|end_header_id|>\n\nTEXT<|eot_id|> per message, then the
  // assistant header. 128000 BOS, 128006/128007 header markers, 128009 <|eot_id|>;
  // "system" 9125, "user" 882, "assistant" 78191, "\n\n" 271 in the Llama 3 vocabulary.
  Session s(bundle);
  ASSERT_TRUE(s.s) << s.e.msg;
  auto plain = [&](const std::string &text) {
    int32_t *ids;
    uint32_t n;
    EXPECT_EQ(m64_session_tokenize(s.s, text.data(), text.size(), 0, &ids, &n, &s.e), 0);
    std::vector<int32_t> v(ids, ids + n);
    free(ids);
    return v;
  };
  const std::vector<int32_t> head_user = {128006, 882, 128007, 271}, head_asst = {128006, 78191, 128007, 271};
  EXPECT_EQ(plain("Hello there"), (std::vector<int32_t>{9906, 1070}));  // as llama.cpp (reference jsonl)
  EXPECT_EQ(t[0].pos, 0u);
  EXPECT_EQ(t[0].prompt, concat({{128000, 128006, 9125, 128007, 271}, plain("Be brief."), {128009}, head_user,
                                 plain("Hello there"), {128009}, head_asst}));
  EXPECT_EQ(t[0].reply, 5u);
  EXPECT_EQ(t[0].end, (std::vector<int32_t>{128009}));  // the reply is closed with <|eot_id|>
  // The second turn runs only its own tokens, right after the first turn's: no BOS, no
  // system message, no re-run of turn 1.
  EXPECT_EQ(t[1].pos, t[0].prompt.size() + t[0].reply + t[0].end.size());
  EXPECT_EQ(t[1].prompt, concat({head_user, plain("What is 2+2?"), {128009}, head_asst}));
}

TEST(Chat, TypedSpecialTokenTextStaysText) {
  const std::string bundle = kOut + "/llama3-bpe-tiny.m64";
  NEED_FILE(bundle);
  CmdResult r = sh("printf 'a <|eot_id|> b\\n' | " + kBin + "/cmd/m64run " + bundle + " -i --temp 0 -n 1 -v");
  ASSERT_EQ(r.code, 0) << r.out;
  std::vector<ChatTurn> t = chat_turns(r.out);
  ASSERT_EQ(t.size(), 1u) << r.out;
  // <|eot_id|> only where the template puts it: after the message, never inside it
  EXPECT_EQ(std::count(t[0].prompt.begin(), t[0].prompt.end(), 128009), 1) << r.out;
}

TEST(Chat, InstFormatsOnASentencePieceModel) {
  const std::string bundle = kOut + "/stories260K.m64";
  NEED_FILE(bundle);
  for (const char *tmpl : {"llama2", "mistral", "chatml", "zephyr"}) {
    CmdResult r = sh("printf 'Hi\\nMore\\n' | " + kBin + "/cmd/m64run " + bundle + " -i --chat-template " + tmpl +
                     " --temp 0 -n 2 -v");
    ASSERT_EQ(r.code, 0) << tmpl << ": " << r.out;
    std::vector<ChatTurn> t = chat_turns(r.out);
    ASSERT_EQ(t.size(), 2u) << tmpl << ": " << r.out;
    EXPECT_EQ(t[0].prompt.at(0), 1) << tmpl;                 // BOS once ...
    EXPECT_EQ(std::count(t[1].prompt.begin(), t[1].prompt.end(), 1), std::string(tmpl) == "llama2" ? 1 : 0)
        << tmpl;                                              // ... except Llama 2's <s> per turn
    EXPECT_EQ(t[1].pos, t[0].prompt.size() + t[0].reply + t[0].end.size()) << tmpl;
    if (std::string(tmpl) == "llama2" || std::string(tmpl) == "mistral") {
      EXPECT_EQ(t[0].end, (std::vector<int32_t>{2})) << tmpl;  // "</s>" is EOS
    }
  }
}

// A chat's first turn hashes every layer as a prompt's first pass does: it records the
// bundle too (it did not before), and a chat that ends before any turn records nothing.
TEST(Chat, AChatThatHashedEveryLayerRecordsTheBundle) {
  NEED_FILE(kOut + "/stories260K.m64");
  const std::string d = tmpdir(), env = "XDG_CACHE_HOME=" + d + "/cache ";
  sh("cp " + kOut + "/stories260K.m64 " + d + "/s.m64");
  const std::string chat = kBin + "/cmd/m64run " + d + "/s.m64 -i --chat-template chatml --temp 0 -n 2 -v";
  CmdResult r = sh("printf '' | " + env + chat);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.find("recorded in"), std::string::npos) << "no turn, nothing hashed:\n" << r.out;
  r = sh("printf 'Hi\\n' | " + env + chat);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("every layer hashed: recorded in " + d + "/cache/m64/verified/"), std::string::npos) << r.out;
  r = sh(env + kBin + "/cmd/m64run " + d + "/s.m64 -p 'Once' -n 2 --temp 0 -v");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("not hashed again"), std::string::npos) << r.out;
  sh("rm -rf " + d);
}

// The session counts the layers it has hashed: none before a pass, all after one, none
// with verification off.
TEST(Pager, SessionCountsTheLayersItHashed) {
  NEED_FILE(kOut + "/synth-F32.m64");
  for (int verify : {1, 0}) {
    m64_session_options o{};
    o.verify_layers = verify;
    m64_session *s = nullptr;
    m64_err e{};
    ASSERT_EQ(m64_session_open((kOut + "/synth-F32.m64").c_str(), &o, &s, &e), 0) << e.msg;
    m64_session_stats st;
    m64_session_stats_get(s, &st);
    EXPECT_GE(st.layers, 2u);
    EXPECT_EQ(st.layers_verified, 0u);
    const float *l = nullptr;
    ASSERT_EQ(m64_session_eval(s, 1, 0, &l, &e), 0) << e.msg;
    m64_session_stats_get(s, &st);
    EXPECT_EQ(st.layers_verified, verify ? st.layers : 0u) << verify;
    ASSERT_EQ(m64_session_eval(s, 2, 1, &l, &e), 0) << e.msg;  // hashed once each, not again
    m64_session_stats_get(s, &st);
    EXPECT_EQ(st.layers_verified, verify ? st.layers : 0u) << verify;
    m64_session_close(s);
  }
}

TEST(Chat, UnknownTemplateIsAClearError) {
  const std::string bundle = kOut + "/stories260K.m64";
  NEED_FILE(bundle);
  CmdResult r = sh("printf 'Hi\\n' | " + kBin + "/cmd/m64run " + bundle + " -i");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("chat template is not one m64 recognises (known: llama3, chatml, llama2, mistral, zephyr, gemma, phi3)"),
            std::string::npos) << r.out;
  r = sh("printf 'Hi\\n' | " + kBin + "/cmd/m64run " + bundle + " -i --chat-template vicuna");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("chat template 'vicuna' is not one m64 knows"), std::string::npos) << r.out;
}

// ---------------------------------------------------------------- synthetic models vs oracle
class Synthetic : public ::testing::TestWithParam<const char *> {};

TEST_P(Synthetic, LogitsMatchTheF32Oracle) {
  const std::string name = GetParam();
  const std::string gguf = kOut + "/synth-" + name + ".gguf", bundle = kOut + "/synth-" + name + ".m64";
  NEED_FILE(bundle);
  m64_oracle *o = nullptr;
  m64_err e{};
  ASSERT_EQ(m64_oracle_open(gguf.c_str(), 64, &o, &e), 0) << e.msg;
  Session s(bundle, 0, 64);
  ASSERT_TRUE(s.s) << s.e.msg;
  // Quantized types feed the kernels a quantized (Q8_0) or rounded (F16) activation, as
  // llama.cpp does; the oracle computes in F32 from the dequantized weights.
  // Attention runs as llama.cpp's does (f16 KV cache, f16 value sums), so even F32 weights
  // differ from the all-F32 oracle by ~1e-3 of the logit range; BF16 also rounds the
  // activation to bf16; the quantized types quantize it to 8 bits: Q8_0/Q8_1 (a scale per
  // 32 values) for the 32-blocks, Q8_K (one scale per 256) for K-quants and IQ4_XS, whose
  // error is larger; the mixes run 8 layers instead of 2.
  const bool q8k = name.find("_K") != std::string::npos || name.find("_k") != std::string::npos ||
                   name == "IQ4_XS";
  const bool f32 = name == "F32" || name == "F16" || name == "qwen2" || name == "qwen2-tied" ||
                   name == "ropefreqs" || name == "bpe" || name == "qwen3" || name == "phi3" ||
                   name == "phi3-apart" || name == "gemma3" || name == "gemma3-ropescale" || name == "gemma2" ||
                   name == "qwen3moe" || name == "mixtral-tied";
  const double tol = f32 ? 3e-3 : name == "BF16" ? 1.5e-2 : q8k ? 6e-2 : 3e-2;
  std::vector<int32_t> ids = s.tokenize("one two three");
  double worst = 0;
  for (uint32_t pos = 0; pos < 24; pos++) {
    int32_t tok = pos < ids.size() ? ids[pos] : (int32_t)(pos * 7 % m64_session_n_vocab(s.s));
    std::vector<float> got = s.eval(tok, pos);
    const float *want = m64_oracle_forward(o, tok, (int)pos);
    double scale = 0;
    for (size_t i = 0; i < got.size(); i++) scale = std::max(scale, (double)std::fabs(want[i]));
    for (size_t i = 0; i < got.size(); i++) {
      double d = std::fabs(got[i] - want[i]) / (scale + 1e-9);
      worst = std::max(worst, d);
      ASSERT_LE(d, tol) << name << " logit " << i << " at pos " << pos << ": " << got[i] << " vs " << want[i];
    }
  }
  std::printf("synthetic %s: worst logit difference %.2e of the logit range (tolerance %.1e)\n", name.c_str(), worst, tol);
  m64_oracle_close(o);
}

INSTANTIATE_TEST_SUITE_P(Types, Synthetic,
                         ::testing::Values("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1",
                                           "IQ4_NL", "tied", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K",
                                           "IQ4_XS", "q4_k_m", "q2_k", "tied-Q4_K", "qwen2", "qwen2-tied",
                                           "ropefreqs", "bpe", "qwen3", "qwen3-q4_k_m", "phi3",
                                           "phi3-tied-Q8_0", "phi3-Q4_K", "phi3-apart", "gemma3",
                                           "gemma3-q4_k_m", "gemma3-ropescale", "gemma2", "qwen3moe",
                                           "qwen3moe-q4_k_m", "mixtral-tied"));

std::vector<int32_t> greedy_tokens(const std::string &bundle, uint64_t workspace, int n, m64_session_stats *st);

// A Mixture-of-Experts model's experts are layers of their own (blk.L.exp.X, after the
// blocks), each with its three matrices as rows of the GGUF's 3-D tensors.
TEST(Moe, EachExpertIsAPagingUnit) {
  NEED_FILE(kOut + "/synth-qwen3moe-q4_k_m.m64");
  CmdResult r = sh(kBin + "/cmd/m64c info " + kOut + "/synth-qwen3moe-q4_k_m.m64");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("model.n_experts = 8\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("model.n_experts_used = 2\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("experts:        8 per block, 2 used per token ("), std::string::npos) << r.out;
  for (const char *name : {"blk.0.exp.0", "blk.1.exp.7", "blk.1.ffn_down.7.weight", "blk.0.ffn_gate_inp.weight"})
    EXPECT_NE(r.out.find(name), std::string::npos) << name << "\n" << r.out;
  EXPECT_EQ(r.out.find("ffn_gate_exps"), std::string::npos) << r.out;
}

// A workspace that holds the blocks and a few experts only: experts page in as the router
// picks them, some from the cache, and the tokens are those of the whole model resident;
// a prompt's batch (each expert read once for all the tokens that chose it) gives the
// logits of token-by-token runs.
TEST(Moe, PagedExpertsGiveTheSameTokens) {
  const std::string bundle = kOut + "/synth-qwen3moe-q4_k_m.m64";
  NEED_FILE(bundle);
  m64_session_stats whole_st, paged_st;
  std::vector<int32_t> whole = greedy_tokens(bundle, 0, 24, &whole_st);
  EXPECT_EQ(whole_st.evictions, 0u);
  EXPECT_GT(whole_st.expert_acquires, 0u);
  uint64_t ws = 1u << 20;
  for (; ws < (64u << 20); ws += 64 * 1024) {
    Session probe(bundle, ws, 64);
    if (probe.s) break;
  }
  // the smallest has one expert slot (every expert request misses): give it 6 (of 16 experts)
  m64_session_stats min_st;
  EXPECT_EQ(greedy_tokens(bundle, ws, 24, &min_st), whole);
  EXPECT_EQ(min_st.expert_hits, 0u);
  ws += 6 * 128 * 1024;  // an expert of this model: 3 Q4_K/Q6_K matrices of 256 x 256, < 128 KiB
  std::vector<int32_t> paged = greedy_tokens(bundle, ws, 24, &paged_st);
  EXPECT_EQ(whole, paged);
  EXPECT_GT(paged_st.evictions, 0u) << "workspace " << ws << " did not force paging";
  EXPECT_EQ(paged_st.expert_acquires, whole_st.expert_acquires);
  EXPECT_LT(paged_st.expert_hits, paged_st.expert_acquires);
  EXPECT_GT(paged_st.expert_hits, 0u);
  std::printf("qwen3moe paging: workspace %llu vs %llu bytes, expert hits %llu of %llu, same 24 tokens\n",
              (unsigned long long)paged_st.workspace_bytes, (unsigned long long)whole_st.workspace_bytes,
              (unsigned long long)paged_st.expert_hits, (unsigned long long)paged_st.expert_acquires);
  // the command line reports the experts
  CmdResult r = sh(kBin + "/cmd/m64run " + bundle + " -p 'one two three' -n 4 --temp 0");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("found in the cache ("), std::string::npos) << r.out;
}

// phi3's fused attn_qkv and ffn_up are stored as llama's q, k, v, gate and up: runs of
// their rows, each a matrix (K-quants in row pairs, as any other); and its sliding window
// (synth: one short of the context) caps the context the bundle declares.
TEST(Phi3, FusedTensorsBecomeRowRunsAndTheWindowCapsTheContext) {
  NEED_FILE(kOut + "/synth-phi3-Q4_K.m64");
  CmdResult r = sh(kBin + "/cmd/m64c info " + kOut + "/synth-phi3-Q4_K.m64");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("model.n_ctx_train = 255\n"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("attn_qkv"), std::string::npos) << r.out;
  const struct { const char *name, *shape; } runs[] = {{"blk.1.attn_q.weight", "[256 x 256]"},
                                                      {"blk.1.attn_k.weight", "[256 x 128]"},
                                                      {"blk.1.attn_v.weight", "[256 x 128]"},
                                                      {"blk.1.ffn_gate.weight", "[256 x 512]"},
                                                      {"blk.1.ffn_up.weight", "[256 x 512]"}};
  for (const auto &run : runs) {
    size_t at = r.out.find(std::string(run.name) + " ");
    ASSERT_NE(at, std::string::npos) << run.name << "\n" << r.out;
    const std::string line = r.out.substr(at, r.out.find('\n', at) - at);
    EXPECT_NE(line.find(run.shape), std::string::npos) << line;
    EXPECT_NE(line.find("row pairs"), std::string::npos) << line;
  }
}

// Gemma's window is computed per layer, not a cap on the context: the phi3 cap once applied
// to every architecture with a window, so m64run stopped a gemma3 run at 8 positions (the
// synthetic window), 4 tokens after a 4-token prompt.
TEST(Gemma3, TheSlidingWindowDoesNotCapTheContext) {
  NEED_FILE(kOut + "/synth-gemma3.m64");
  CmdResult r = sh(kBin + "/cmd/m64c info " + kOut + "/synth-gemma3.m64");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.find("model.n_ctx_train = 8\n"), std::string::npos) << r.out;
  r = sh_stdout(kBin + "/cmd/m64run " + kOut + "/synth-gemma3.m64 -p 'one two three' -n 20 --temp 0 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string all = json_tokens(r.out), ids = all.substr(0, all.find(']'));
  EXPECT_EQ(std::count(ids.begin(), ids.end(), ','), 19) << "20 tokens, past the window of 8: " << all;
}

// K-quant matrices are written as row pairs (docs/FORMAT.md), token_embd in rows: it is read
// a row at a time, and as the tied output through the row kernels (Synthetic/tied-Q4_K).
TEST(Layout, KQuantMatricesAreRowPairsAndTokenEmbdStaysInRows) {
  for (const char *m : {"synth-q4_k_m", "synth-tied-Q4_K"}) {
    NEED_FILE(kOut + "/" + m + ".m64");
    CmdResult r = sh(kBin + "/cmd/m64c info " + kOut + "/" + m + ".m64");
    ASSERT_EQ(r.code, 0) << r.out;
    std::istringstream lines(r.out);
    int pairs = 0;
    for (std::string line; std::getline(lines, line);) {
      if (line.find("token_embd.weight") != std::string::npos || line.find("_norm") != std::string::npos) {
        EXPECT_EQ(line.find("row pairs"), std::string::npos) << m << ": " << line;
      }
      if (line.find("blk.") != std::string::npos && line.find(".weight") != std::string::npos &&
          line.find("_norm") == std::string::npos) {
        EXPECT_NE(line.find("row pairs"), std::string::npos) << m << ": " << line;
        pairs++;
      }
    }
    EXPECT_GE(pairs, 7) << r.out;
  }
  NEED_FILE(kOut + "/synth-F16.m64");  // rows for the types without the layout
  CmdResult r = sh(kBin + "/cmd/m64c info " + kOut + "/synth-F16.m64");
  EXPECT_EQ(r.out.find("row pairs"), std::string::npos) << r.out;
}

// ---------------------------------------------------------------- bad input, clear errors
TEST(Errors, RunOnMissingTruncatedOrForeignFilesFailsCleanly) {
  std::string d = tmpdir();
  CmdResult r = sh(kBin + "/cmd/m64run " + d + "/nope.m64 -p hi");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("m64run: error:"), std::string::npos) << r.out;

  NEED_FILE(kOut + "/synth-F32.m64");
  // truncated: a range of cut points, each one clean error line and exit code 1
  std::ifstream in(kOut + "/synth-F32.m64", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  for (size_t cut : {size_t(0), size_t(7), size_t(100), bytes.size() / 3, bytes.size() / 2, bytes.size() - 1}) {
    std::ofstream(d + "/cut.m64", std::ios::binary).write(bytes.data(), (std::streamsize)cut);
    r = sh(kBin + "/cmd/m64run " + d + "/cut.m64 -p hi -n 2 --temp 0");
    EXPECT_EQ(r.code, 1) << "cut at " << cut << ": " << r.out;
    EXPECT_NE(r.out.find("m64run: error:"), std::string::npos) << r.out;
  }
  // foreign: neither a bundle nor a GGUF (a GGUF runs through the bundle cache since
  // issue 26: test/cache), named as such
  std::ofstream(d + "/notes.txt") << "not a model\n";
  r = sh(kBin + "/cmd/m64run " + d + "/notes.txt -p hi");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("is neither a GGUF model nor an m64 bundle"), std::string::npos) << r.out;
  sh("rm -rf " + d);
}

// Writes a GGUF like synth-F32 but with one key or tensor changed.
TEST(Errors, BuildRejectsUnsupportedModelsByName) {
  std::string d = tmpdir();
  m64_gguf_writer *w = m64_gguf_writer_new(0);
  m64_gguf_w_str(w, "general.architecture", "gpt2");
  m64_err e{};
  ASSERT_EQ(m64_gguf_writer_save(w, (d + "/gpt2.gguf").c_str(), &e), 0) << e.msg;
  m64_gguf_writer_free(w);
  CmdResult r = sh(kBin + "/cmd/m64c build -q " + d + "/gpt2.gguf -o " + d + "/out.m64");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("architecture 'gpt2' is not supported (supported: llama (with or without experts), qwen2, qwen3, "
                       "qwen3moe, phi3, gemma2, gemma3)"),
            std::string::npos)
      << r.out;
  EXPECT_FALSE(exists(d + "/out.m64"));

  // qwen3 with value heads of another size than key heads: refused by name, not run wrong
  NEED_FILE(kOut + "/synth-qwen3.gguf");
  {
    std::ifstream in(kOut + "/synth-qwen3.gguf", std::ios::binary);
    std::string g((std::istreambuf_iterator<char>(in)), {});
    const std::string key = "qwen3.attention.value_length";
    size_t at = g.find(key);
    ASSERT_NE(at, std::string::npos);
    const uint32_t v = 16;  // key_length is 32
    std::memcpy(&g[at + key.size() + 4], &v, 4);
    std::ofstream(d + "/kv.gguf", std::ios::binary).write(g.data(), (std::streamsize)g.size());
  }
  r = sh(kBin + "/cmd/m64c build -q " + d + "/kv.gguf -o " + d + "/out.m64");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("key head size 32 and value head size 16 differ"), std::string::npos) << r.out;
  // and without its q/k norms it is not the qwen3 m64 computes
  {
    std::ifstream in(kOut + "/synth-qwen3.gguf", std::ios::binary);
    std::string g((std::istreambuf_iterator<char>(in)), {});
    const std::string name = "blk.1.attn_k_norm.weight";
    size_t at = g.find(name);
    ASSERT_NE(at, std::string::npos);
    g[at + 10] = 'X';  // blk.1.attn_X_norm.weight
    std::ofstream(d + "/nonorm.gguf", std::ios::binary).write(g.data(), (std::streamsize)g.size());
  }
  r = sh(kBin + "/cmd/m64c build -q " + d + "/nonorm.gguf -o " + d + "/out.m64");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("tensor 'blk.1.attn_k_norm.weight' is missing"), std::string::npos) << r.out;

  // qwen3moe with more experts used than it has, or none: refused by name
  NEED_FILE(kOut + "/synth-qwen3moe.gguf");
  for (const auto &c : {std::pair<std::string, uint32_t>{"qwen3moe.expert_used_count", 9},
                        std::pair<std::string, uint32_t>{"qwen3moe.expert_count", 0}}) {
    std::ifstream in(kOut + "/synth-qwen3moe.gguf", std::ios::binary);
    std::string g((std::istreambuf_iterator<char>(in)), {});
    size_t at = g.find(c.first);
    ASSERT_NE(at, std::string::npos) << c.first;
    std::memcpy(&g[at + c.first.size() + 4], &c.second, 4);  // after the key, its u32 type, then the value
    std::ofstream(d + "/moe.gguf", std::ios::binary).write(g.data(), (std::streamsize)g.size());
    r = sh(kBin + "/cmd/m64c build -q " + d + "/moe.gguf -o " + d + "/out.m64");
    EXPECT_EQ(r.code, 1) << c.first;
    EXPECT_NE(r.out.find(c.second ? "8 experts, 9 used per token: m64 takes 1 <= used <= experts <= 256"
                                  : "qwen3moe without experts ('qwen3moe.expert_count' missing or 0)"),
              std::string::npos)
        << r.out;
    EXPECT_FALSE(exists(d + "/out.m64"));
  }

  // phi3 with LongRoPE factors (its 128k models): refused by name. blk.0.attn_output.weight
  // becomes rope_factors_long.weight (the same length) in a copy.
  NEED_FILE(kOut + "/synth-phi3.gguf");
  {
    std::ifstream in(kOut + "/synth-phi3.gguf", std::ios::binary);
    std::string g((std::istreambuf_iterator<char>(in)), {});
    const std::string name = "blk.0.attn_output.weight", long_name = "rope_factors_long.weight";
    size_t at = g.find(name);
    ASSERT_NE(at, std::string::npos);
    g.replace(at, name.size(), long_name);
    std::ofstream(d + "/longrope.gguf", std::ios::binary).write(g.data(), (std::streamsize)g.size());
  }
  r = sh(kBin + "/cmd/m64c build -q " + d + "/longrope.gguf -o " + d + "/out.m64");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("phi3 with LongRoPE factors (rope_factors_long/short.weight: a 128k context model) is not "
                       "supported yet"), std::string::npos) << r.out;
  // and a fused ffn_up of the wrong height (not 2 * ffn rows) is named with its shape
  {
    std::ifstream in(kOut + "/synth-phi3.gguf", std::ios::binary);
    std::string g((std::istreambuf_iterator<char>(in)), {});
    const std::string key = "phi3.feed_forward_length";
    size_t at = g.find(key);
    ASSERT_NE(at, std::string::npos);
    const uint32_t ffn = 80;  // the file's ffn_up has 2 * 160 rows
    std::memcpy(&g[at + key.size() + 4], &ffn, 4);
    std::ofstream(d + "/ffn.gguf", std::ios::binary).write(g.data(), (std::streamsize)g.size());
  }
  r = sh(kBin + "/cmd/m64c build -q " + d + "/ffn.gguf -o " + d + "/out.m64");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("tensor 'blk.0.ffn_up.weight' has shape [64, 320, 1, 1], expected [64, 160]"),
            std::string::npos) << r.out;
  // gemma3 without its sliding window is the variant llama.cpp soft-caps the logits of,
  // which m64 does not: refused by name; and a missing post-norm is missing by name
  NEED_FILE(kOut + "/synth-gemma3.gguf");
  const auto patched_gemma3 = [&](const std::string &find, size_t at_char, char c, const std::string &to) {
    std::ifstream in(kOut + "/synth-gemma3.gguf", std::ios::binary);
    std::string g((std::istreambuf_iterator<char>(in)), {});
    size_t at = g.find(find);
    ASSERT_NE(at, std::string::npos) << find;
    g[at + at_char] = c;
    std::ofstream(d + "/" + to, std::ios::binary).write(g.data(), (std::streamsize)g.size());
  };
  patched_gemma3("gemma3.attention.sliding_window", 30, 'X', "noswa.gguf");  // ..._windoX
  r = sh(kBin + "/cmd/m64c build -q " + d + "/noswa.gguf -o " + d + "/out.m64");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("gemma3 without a sliding window ('gemma3.attention.sliding_window' missing) is not "
                       "supported (its final-logit soft-capping is not implemented)"),
            std::string::npos)
      << r.out;
  // rope scaling other than linear (yarn, ...) is not the one m64 computes
  NEED_FILE(kOut + "/synth-gemma3-ropescale.gguf");
  {
    std::ifstream in(kOut + "/synth-gemma3-ropescale.gguf", std::ios::binary);
    std::string g((std::istreambuf_iterator<char>(in)), {});
    size_t at = g.find("linear");
    ASSERT_NE(at, std::string::npos);
    g.replace(at, 6, "yarn__");
    std::ofstream(d + "/yarn.gguf", std::ios::binary).write(g.data(), (std::streamsize)g.size());
  }
  r = sh(kBin + "/cmd/m64c build -q " + d + "/yarn.gguf -o " + d + "/out.m64");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("rope scaling 'yarn__' (factor 8) is not supported for gemma3"), std::string::npos) << r.out;
  patched_gemma3("blk.2.post_ffw_norm.weight", 13, 'X', "nopost.gguf");  // blk.2.post_ffX_norm
  r = sh(kBin + "/cmd/m64c build -q " + d + "/nopost.gguf -o " + d + "/out.m64");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("tensor 'blk.2.post_ffw_norm.weight' is missing"), std::string::npos) << r.out;

  // A tensor type without a kernel (Q8_1 is a valid ggml type, never a weight type m64
  // computes with): patch blk.0.attn_q.weight's type in a copy of the F32 model. Q8_1
  // rows are smaller than F32 rows, so the tensor still lies inside the file.
  NEED_FILE(kOut + "/synth-F32.gguf");
  {
    std::ifstream in(kOut + "/synth-F32.gguf", std::ios::binary);
    std::string g((std::istreambuf_iterator<char>(in)), {});
    const std::string name = "blk.0.attn_q.weight";
    size_t at = g.find(name);
    ASSERT_NE(at, std::string::npos);
    at += name.size();
    uint32_t n_dims;
    std::memcpy(&n_dims, &g[at], 4);
    ASSERT_EQ(n_dims, 2u);
    const uint32_t q8_1 = 9;
    std::memcpy(&g[at + 4 + 8 * n_dims], &q8_1, 4);
    std::ofstream(d + "/q81.gguf", std::ios::binary).write(g.data(), (std::streamsize)g.size());
  }
  r = sh(kBin + "/cmd/m64c build -q " + d + "/q81.gguf -o " + d + "/out.m64");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("tensor 'blk.0.attn_q.weight' has type Q8_1, which m64 does not support yet"),
            std::string::npos) << r.out;
  EXPECT_FALSE(exists(d + "/out.m64"));
  r = sh("ls -A " + d + " | grep -c tmp || true");
  EXPECT_EQ(r.out, "0\n") << "temp files left behind";
  sh("rm -rf " + d);
}

TEST(Errors, InterruptedBuildLeavesNothingBehind) {
  NEED_FILE(kOut + "/synth-Q8_0.gguf");
  std::string d = tmpdir();
  for (int delay_ms : {50, 400, 1500}) {
    pid_t pid = fork();
    if (pid == 0) {
      std::string out = d + "/x.m64";
      execl((kBin + "/cmd/m64c").c_str(), "m64c", "build", "-q", (kOut + "/synth-Q8_0.gguf").c_str(), "-o",
            out.c_str(), (char *)nullptr);
      _exit(127);
    }
    usleep(delay_ms * 1000);
    kill(pid, SIGINT);
    int st;
    waitpid(pid, &st, 0);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
      unlink((d + "/x.m64").c_str());  // finished before the signal: nothing to check
      continue;
    }
    EXPECT_FALSE(exists(d + "/x.m64")) << "partial output after SIGINT at " << delay_ms << " ms";
    CmdResult r = sh("ls -A " + d);
    EXPECT_EQ(r.out, "") << "left behind after SIGINT at " << delay_ms << " ms";
  }
  sh("rm -rf " + d);
}

// Builds kOut/<model>.gguf with --keep d/work; returns the generated wasm2c C (m64mod.c),
// or "" with a test failure when the build fails.
std::string kept_build_c(const std::string &model, const std::string &d) {
  CmdResult r = sh(kBin + "/cmd/m64c build -q --keep " + d + "/work " + kOut + "/" + model + ".gguf -o " + d + "/x.m64");
  EXPECT_EQ(r.code, 0) << r.out;
  std::ifstream f(d + "/work/m64mod.c");
  std::stringstream c;
  c << f.rdbuf();
  return r.code ? "" : c.str();
}

// The AOT C has no forced-read asm (compiler/toolchain.c drop_forced_reads): with it,
// clang reloads the memory base after every load and the kernels lose their speed.
TEST(Aot, GeneratedCKeepsNoForcedReads) {
  NEED_FILE(kOut + "/synth-Q8_0.gguf");
  std::string d = tmpdir();
  const std::string text = kept_build_c("synth-Q8_0", d);
  ASSERT_NE(text.find("#define SIMD_FORCE_READ(var)"), std::string::npos) << "not wasm2c's output?";
  EXPECT_EQ(text.find("__asm__(\"\" ::"), std::string::npos) << "a forced read is left in m64mod.c";
  sh("rm -rf " + d);
}

// The K-quant matvec's read-ahead hint (m64.prefetch) becomes CPU prefetches inside the
// AOT object: the module calls the import, the glue defines it (the host does not), and on
// x86-64 the object holds prefetch instructions.
TEST(Aot, KQuantPrefetchHintBecomesCpuPrefetches) {
  NEED_FILE(kOut + "/synth-Q4_K.gguf");
  std::string d = tmpdir();
  const std::string text = kept_build_c("synth-Q4_K", d);
  ASSERT_NE(text.find("w2c_m64_prefetch(instance->w2c_m64_instance"), std::string::npos)
      << "the module does not call m64.prefetch";
  CmdResult r = sh("nm -D " + d + "/work/module.so | grep -c ' U w2c_m64_prefetch'");
  EXPECT_EQ(r.out.substr(0, 1), "0") << r.out;  // not left to the host
#if defined(__x86_64__)
  r = sh("objdump -d " + d + "/work/module.so | grep -c prefetcht0");
  EXPECT_GT(std::atoi(r.out.c_str()), 0) << r.out;
#endif
  sh("rm -rf " + d);
}

// m64run's decode rate counts the forward passes it timed: n generated tokens take n - 1
// (the first comes from the prefill's logits), as llama.cpp's (generated - 1) / time. With
// one token there is no decode pass, so no rate (it was n / time: 1 / ~0 s here).
TEST(Cli, DecodeRateCountsForwardPassesNotTokens) {
  NEED_FILE(kOut + "/synth-F32.m64");
  auto rate = [](const std::string &j) {
    const size_t at = j.find("\"decode_tok_s\":");
    return at == std::string::npos ? -1.0 : std::atof(j.c_str() + at + 15);
  };
  CmdResult one = sh_stdout(kBin + "/cmd/m64run " + kOut + "/synth-F32.m64 -p 'one two' -n 1 --temp 0 --json");
  ASSERT_EQ(one.code, 0) << one.out;
  EXPECT_EQ(rate(one.out), 0.0) << one.out;
  CmdResult two = sh_stdout(kBin + "/cmd/m64run " + kOut + "/synth-F32.m64 -p 'one two' -n 2 --temp 0 --json");
  ASSERT_EQ(two.code, 0) << two.out;
  EXPECT_GT(rate(two.out), 0.0) << two.out;
}

TEST(Errors, WasmOnlyBundleNeedsAotThenRuns) {
  NEED_FILE(kOut + "/synth-F32.gguf");
  std::string d = tmpdir();
  CmdResult r = sh(kBin + "/cmd/m64c build -q --no-aot " + kOut + "/synth-F32.gguf -o " + d + "/w.m64");
  ASSERT_EQ(r.code, 0) << r.out;
  r = sh(kBin + "/cmd/m64run " + d + "/w.m64 -n 2 --temp 0");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("m64c aot"), std::string::npos) << r.out;
  r = sh(kBin + "/cmd/m64c aot -q " + d + "/w.m64");
  ASSERT_EQ(r.code, 0) << r.out;
  r = sh_stdout(kBin + "/cmd/m64run " + d + "/w.m64 -p 'one two' -n 4 --temp 0 --json");
  EXPECT_EQ(r.code, 0) << r.out;
  CmdResult ref = sh_stdout(kBin + "/cmd/m64run " + kOut + "/synth-F32.m64 -p 'one two' -n 4 --temp 0 --json");
  EXPECT_EQ(json_tokens(r.out), json_tokens(ref.out));
  // the browsers' relaxed-SIMD module stays beside the module the native code came from
  r = sh(kBin + "/cmd/m64c info " + d + "/w.m64");
  EXPECT_NE(r.out.find("  and module.relaxed: "), std::string::npos) << r.out;
  sh("rm -rf " + d);
}

// m64c build writes the module twice: plain SIMD128 (native code and browsers without
// relaxed SIMD) and module.relaxed (relaxed SIMD's i8 dot; the browser test runs it);
// --no-relaxed leaves the second out, as the bundles `m64run MODEL.gguf` caches do.
TEST(Errors, TheRelaxedModuleIsBuiltUnlessLeftOut) {
  NEED_FILE(kOut + "/synth-F32.gguf");
  std::string d = tmpdir();
  CmdResult r = sh(kBin + "/cmd/m64c build -q --no-aot " + kOut + "/synth-F32.gguf -o " + d + "/r.m64");
  ASSERT_EQ(r.code, 0) << r.out;
  r = sh(kBin + "/cmd/m64c build -q --no-aot --no-relaxed " + kOut + "/synth-F32.gguf -o " + d + "/p.m64");
  ASSERT_EQ(r.code, 0) << r.out;
  auto relaxed_bytes = [&](const std::string &bundle) {
    CmdResult j = sh_stdout(kBin + "/cmd/m64c info --json " + bundle);
    const size_t at = j.out.find("\"relaxed_module_bytes\":");
    return at == std::string::npos ? -1L : std::atol(j.out.c_str() + at + 23);
  };
  EXPECT_GT(relaxed_bytes(d + "/r.m64"), 1000L);
  EXPECT_EQ(relaxed_bytes(d + "/p.m64"), 0L);
  sh("rm -rf " + d);
}

// --target: native code for another x86-64 level than the host's (a bundle built on an
// AVX-512 VNNI machine that must also run on AVX2-only ones), marked as compiled here like
// the host's, so it runs with no extra step; a target m64c cannot build is refused before
// any work, and no output appears.
TEST(Errors, NativeCodeForAnotherTargetOrAClearRefusal) {
  NEED_FILE(kOut + "/synth-F32.gguf");
  std::string d = tmpdir();
  CmdResult r = sh(kBin + "/cmd/m64c build -q --target riscv64-linux " + kOut + "/synth-F32.gguf -o " + d + "/bad.m64");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("target 'riscv64-linux'"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("x86_64-v3-linux"), std::string::npos) << r.out;
  EXPECT_NE(sh("test -e " + d + "/bad.m64").code, 0) << "a refused build left its output";
#if defined(__x86_64__)
  r = sh(kBin + "/cmd/m64c build -q --target x86_64-v3-linux " + kOut + "/synth-F32.gguf -o " + d + "/v3.m64");
  ASSERT_EQ(r.code, 0) << r.out;
  r = sh(kBin + "/cmd/m64c info " + d + "/v3.m64");
  EXPECT_NE(r.out.find("x86_64-v3-linux"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("marked here"), std::string::npos) << r.out;
  r = sh_stdout(kBin + "/cmd/m64run " + d + "/v3.m64 -p 'one two' -n 4 --temp 0 --json");
  EXPECT_EQ(r.code, 0) << r.out;
  CmdResult ref = sh_stdout(kBin + "/cmd/m64run " + kOut + "/synth-F32.m64 -p 'one two' -n 4 --temp 0 --json");
  EXPECT_EQ(json_tokens(r.out), json_tokens(ref.out));
#endif
  sh("rm -rf " + d);
}

// ---------------------------------------------------------------- compressed bundles
std::vector<int32_t> greedy_tokens(const std::string &bundle, uint64_t workspace, int n,
                                   m64_session_stats *st) {
  Session s(bundle, workspace, 64);
  EXPECT_TRUE(s.s) << s.e.msg;
  if (!s.s) return {};
  std::vector<int32_t> ids = s.tokenize("Once upon a time");
  std::vector<float> l;
  for (size_t i = 0; i < ids.size(); i++) l = s.eval(ids[i], (uint32_t)i);
  for (int i = 0; i < n; i++) {
    ids.push_back(argmax(l));
    l = s.eval(ids.back(), (uint32_t)ids.size() - 1);
  }
  m64_session_stats_get(s.s, st);
  return ids;
}

TEST(Compressed, Stories260KGivesTheSameTokensWholeAndPaged) {
  NEED_FILE(kOut + "/stories260K-z.m64");
  m64_session_stats plain_st, whole_st, paged_st;
  std::vector<int32_t> ref = greedy_tokens(kOut + "/stories260K.m64", 0, 24, &plain_st);
  std::vector<int32_t> whole = greedy_tokens(kOut + "/stories260K-z.m64", 0, 24, &whole_st);
  EXPECT_EQ(ref, whole);
  EXPECT_EQ(whole_st.evictions, 0u);  // decompressed once, then resident
  EXPECT_EQ(whole_st.layer_page_ins, plain_st.layer_page_ins);
  // The smallest workspace that opens pages blocks in and out (decompressing each time).
  uint64_t ws = 1u << 20;
  for (; ws < (64u << 20); ws += 64 * 1024) {
    Session probe(kOut + "/stories260K-z.m64", ws, 64);
    if (probe.s) break;
  }
  std::vector<int32_t> paged = greedy_tokens(kOut + "/stories260K-z.m64", ws, 24, &paged_st);
  EXPECT_EQ(ref, paged);
  EXPECT_GT(paged_st.evictions, 0u) << "workspace " << ws << " did not force paging";
  // The command line, with map paging asked for (a compressed layer is decompressed instead).
  CmdResult r = sh_stdout(kBin + "/cmd/m64run " + kOut + "/stories260K-z.m64 -p 'Once upon a time' -n 32 --temp 0 --paging map");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.rfind("Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw", 0), 0u)
      << r.out;
}

TEST(Compressed, DecompressGivesTheOriginalBundleBackByteForByte) {
  NEED_FILE(kOut + "/stories260K-z.m64");
  std::string d = tmpdir();
  CmdResult r = sh(kBin + "/cmd/m64c decompress -q " + kOut + "/stories260K-z.m64 -o " + d + "/back.m64");
  ASSERT_EQ(r.code, 0) << r.out;
  r = sh("cmp " + kOut + "/stories260K.m64 " + d + "/back.m64");
  EXPECT_EQ(r.code, 0) << r.out;
  // and compressing again gives the same compressed bundle (the writer is deterministic)
  r = sh(kBin + "/cmd/m64c compress -q " + d + "/back.m64 && cmp " + d + "/back.m64 " + kOut + "/stories260K-z.m64");
  EXPECT_EQ(r.code, 0) << r.out;
  // the compressed bundle is smaller, and m64c info says by how much
  struct stat a, b;
  ASSERT_EQ(stat((kOut + "/stories260K.m64").c_str(), &a), 0);
  ASSERT_EQ(stat((kOut + "/stories260K-z.m64").c_str(), &b), 0);
  EXPECT_LT(double(b.st_size), 0.85 * double(a.st_size));
  r = sh(kBin + "/cmd/m64c info " + kOut + "/stories260K-z.m64");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("(compressed: zstd)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("compression: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" compressed "), std::string::npos) << r.out;  // per layer
  sh("rm -rf " + d);
}

TEST(Compressed, KQuantMixGivesTheSameTokens) {
  NEED_FILE(kOut + "/synth-q4_k_m-z.m64");
  const std::string run = kBin + "/cmd/m64run ";
  const std::string args = " -p 'one two three' -n 8 --temp 0 -t 2 --json";
  CmdResult a = sh_stdout(run + kOut + "/synth-q4_k_m.m64" + args);
  CmdResult b = sh_stdout(run + kOut + "/synth-q4_k_m-z.m64" + args);
  ASSERT_EQ(a.code, 0) << a.out;
  ASSERT_EQ(b.code, 0) << b.out;
  EXPECT_EQ(json_tokens(a.out), json_tokens(b.out));
  CmdResult v = sh(kBin + "/cmd/m64c verify " + kOut + "/synth-q4_k_m-z.m64");
  EXPECT_EQ(v.code, 0) << v.out;
}

TEST(Compressed, FlippedByteInALayerIsNamedNotUsed) {
  NEED_FILE(kOut + "/stories260K-z.m64");
  std::string d = tmpdir();
  sh("cp " + kOut + "/stories260K-z.m64 " + d + "/c.m64");
  uint64_t at = 0;
  {
    m64_bundle *b = nullptr;
    m64_err e;
    ASSERT_EQ(m64_bundle_open((d + "/c.m64").c_str(), &b, &e), 0) << e.msg;
    const m64_layer_entry *l = m64_bundle_layer(b, 2);  // blk.1
    const m64_section *seg = m64_bundle_find_section(b, M64_SEC_SEGMENT, "segment.0");
    at = seg->offset + l->stored_offset + l->stored_size / 2;
    m64_bundle_close(b);
  }
  CmdResult r = sh("printf '\\x5a' | dd of=" + d + "/c.m64 bs=1 seek=" + std::to_string(at) +
                   " conv=notrunc status=none");
  ASSERT_EQ(r.code, 0) << r.out;
  r = sh(kBin + "/cmd/m64run " + d + "/c.m64 -p 'Once' -n 4 --temp 0");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("'blk.1'"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("SHA-256"), std::string::npos) << r.out;
  r = sh(kBin + "/cmd/m64c verify " + d + "/c.m64");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("'blk.1'"), std::string::npos) << r.out;
  // and a compressed bundle with a damaged layer is not decompressed into a "valid" one
  r = sh(kBin + "/cmd/m64c decompress -q " + d + "/c.m64 -o " + d + "/out.m64");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_FALSE(exists(d + "/out.m64"));
  sh("rm -rf " + d);
}

}  // namespace
