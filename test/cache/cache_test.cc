// `m64run MODEL.gguf` (issue 26): a GGUF is compiled once into the bundle cache, later runs
// start from the cache without compiling; concurrent first runs compile once; a model m64
// cannot compile fails before the cache is touched, with m64c build's message; a changed
// GGUF and a damaged entry are compiled again; `m64c info MODEL.gguf`; what each command
// says about a file it cannot take. Every case works in its own temp directory, with
// M64_CACHE_DIR and XDG_CACHE_HOME inside it.
#include <gtest/gtest.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "m64_formats.h"

#include "../support/run_cmd.h"

namespace {

using m64test::CmdResult;
using m64test::sh;
using m64test::exists;

const std::string kBin = M64_BINARY_DIR;
const std::string kShared = M64_SHARED_MODELS;
const std::string kM64c = kBin + "/cmd/m64c", kM64run = kBin + "/cmd/m64run";
const std::string kSynth = kBin + "/test/support/m64-synth";

std::vector<std::string> files_in(const std::string &dir) {
  std::vector<std::string> v;
  DIR *d = opendir(dir.c_str());
  if (!d) return v;
  while (struct dirent *de = readdir(d))
    if (de->d_name[0] != '.') v.push_back(de->d_name);
  closedir(d);
  return v;
}

std::vector<std::string> entries(const std::string &cache) {
  std::vector<std::string> v;
  for (const auto &f : files_in(cache))
    if (f.size() == 36 && f.compare(32, 4, ".m64") == 0) v.push_back(cache + "/" + f);
  return v;
}

size_t count(const std::string &s, const std::string &what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) n++;
  return n;
}

std::string json_tokens(const std::string &j) {
  const size_t at = j.find("\"tokens\"");
  return at == std::string::npos ? "(no tokens in: " + j + ")" : j.substr(at, j.find("\"text\"") - at);
}

class Cache : public ::testing::Test {
 protected:
  std::string dir, cache, env;
  void SetUp() override {
    char t[] = "/tmp/m64cache.XXXXXX";
    ASSERT_NE(mkdtemp(t), nullptr);
    dir = t;
    cache = dir + "/cache";
    mkdir((dir + "/xdg").c_str(), 0700);
    mkdir((dir + "/tmp").c_str(), 0700);
    env = "env M64_CACHE_DIR=" + cache + " XDG_CACHE_HOME=" + dir + "/xdg TMPDIR=" + dir + "/tmp ";
  }
  void TearDown() override { sh("rm -rf " + dir); }
  std::string synth(const std::string &name, const std::string &args) {
    const std::string out = dir + "/" + name;
    const CmdResult r = sh(kSynth + " --shape tiny --type F32 " + args + " -o " + out);
    EXPECT_EQ(r.code, 0) << r.out;
    return out;
  }
  CmdResult run(const std::string &model, const std::string &extra = "") {
    return sh(env + extra + " " + kM64run + " " + model + " -p 'Once upon a time' -n 6 --temp 0 --json -t 2");
  }
};

// The first run compiles into the cache; the second starts from it and compiles nothing:
// it runs with clang and wasm2c made unreachable, and the entry stays the same file.
TEST_F(Cache, FirstRunCompilesSecondRunStartsFromTheCache) {
  const std::string g = synth("m.gguf", "--seed 21");
  const CmdResult first = run(g);
  ASSERT_EQ(first.code, 0) << first.out;
  EXPECT_NE(first.out.find("compiling " + g + " into the bundle cache"), std::string::npos) << first.out;
  EXPECT_NE(first.out.find("[3/6] compiling the module"), std::string::npos) << first.out;
  auto e = entries(cache);
  ASSERT_EQ(e.size(), 1u) << first.out;
  struct stat before, after;
  ASSERT_EQ(stat(e[0].c_str(), &before), 0);

  const CmdResult second = run(g, "M64_CLANG=/nonexistent/clang M64_WASM2C=/nonexistent/wasm2c");
  ASSERT_EQ(second.code, 0) << second.out;
  EXPECT_EQ(second.out.find("compiling"), std::string::npos) << second.out;
  EXPECT_EQ(second.out.find("[1/6]"), std::string::npos) << second.out;
  EXPECT_EQ(json_tokens(second.out), json_tokens(first.out));
  ASSERT_EQ(stat(e[0].c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino);
  EXPECT_EQ(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);
  EXPECT_EQ(entries(cache).size(), 1u);

  // the GGUF's hash is remembered: -v says so, and nothing was hashed again
  const CmdResult third = sh(env + kM64run + " " + g + " -p hi -n 1 -v");
  ASSERT_EQ(third.code, 0) << third.out;
  EXPECT_NE(third.out.find("(remembered)"), std::string::npos) << third.out;

  // the same tokens as a bundle made by m64c build and run as before
  const std::string b = dir + "/m.m64";
  ASSERT_EQ(sh(env + kM64c + " build -q " + g + " -o " + b).code, 0);
  const CmdResult direct = run(b);
  ASSERT_EQ(direct.code, 0) << direct.out;
  EXPECT_EQ(json_tokens(direct.out), json_tokens(first.out));

  // m64c cache list shows it; rm by a key prefix removes it
  const CmdResult list = sh(env + kM64c + " cache list");
  ASSERT_EQ(list.code, 0) << list.out;
  const std::string key = e[0].substr(cache.size() + 1, 32);
  EXPECT_NE(list.out.find(key), std::string::npos) << list.out;
  EXPECT_NE(list.out.find(g), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("1 entry"), std::string::npos) << list.out;
  const CmdResult rm = sh(env + kM64c + " cache rm " + key.substr(0, 8));
  ASSERT_EQ(rm.code, 0) << rm.out;
  EXPECT_TRUE(entries(cache).empty());
  EXPECT_FALSE(exists(cache + "/" + key + ".info"));
  const CmdResult again = sh(env + kM64c + " cache rm " + key);
  EXPECT_EQ(again.code, 1);
  EXPECT_NE(again.out.find("no cache entry"), std::string::npos) << again.out;
}

// Two first runs at once: both succeed, one compiles, and one good entry is left.
TEST_F(Cache, TwoConcurrentFirstRunsCompileOnce) {
  const std::string g = synth("m.gguf", "--seed 22");
  const std::string cmd = env + kM64run + " " + g + " -p hi -n 4 --temp 0 --json -t 1";
  const CmdResult r = sh("(" + cmd + " > " + dir + "/a.out 2>&1; echo $? > " + dir + "/a.rc) & (" + cmd + " > " + dir +
                         "/b.out 2>&1; echo $? > " + dir + "/b.rc) & wait; cat " + dir + "/a.rc " + dir + "/b.rc " +
                         dir + "/a.out " + dir + "/b.out");
  EXPECT_EQ(r.out.substr(0, 4), "0\n0\n") << r.out;
  EXPECT_EQ(count(r.out, "[3/6] compiling the module"), 1u) << r.out;
  const auto e = entries(cache);
  ASSERT_EQ(e.size(), 1u);
  for (const auto &f : files_in(cache)) EXPECT_EQ(f.find(".tmp."), std::string::npos) << f;
  const CmdResult v = sh(env + kM64c + " verify " + e[0]);
  EXPECT_EQ(v.code, 0) << v.out;
}

// A GGUF m64 cannot compile: the message of m64c build, and nothing in the cache.
TEST_F(Cache, UnsupportedModelFailsBeforeTheCache) {
  const std::string g = dir + "/falcon.gguf";
  m64_gguf_writer *w = m64_gguf_writer_new(0);
  ASSERT_NE(w, nullptr);
  m64_gguf_w_str(w, "general.architecture", "falcon");
  m64_gguf_w_str(w, "general.name", "not a llama");
  m64_gguf_w_u32(w, "falcon.context_length", 2048);
  m64_gguf_w_str(w, "tokenizer.ggml.model", "bert");
  const char *toks[] = {"a", "b"};
  m64_gguf_w_arr_str(w, "tokenizer.ggml.tokens", toks, 2);
  const uint64_t ne_m[2] = {32, 2}, ne_v[1] = {32};
  std::vector<uint8_t> q81(2 * 36, 0), f32(32 * 4, 0);
  m64_gguf_w_tensor(w, "blk.0.attn_q.weight", M64_GGML_Q8_1, 2, ne_m, q81.data());
  m64_gguf_w_tensor(w, "blk.0.attn_norm.weight", M64_GGML_F32, 1, ne_v, f32.data());
  m64_err e{};
  ASSERT_EQ(m64_gguf_writer_save(w, g.c_str(), &e), 0) << e.msg;
  m64_gguf_writer_free(w);

  const CmdResult build = sh(env + kM64c + " build -q " + g + " -o " + dir + "/x.m64");
  ASSERT_EQ(build.code, 1) << build.out;
  const size_t at = build.out.find("error: ");
  ASSERT_NE(at, std::string::npos) << build.out;
  const std::string msg = build.out.substr(at);
  EXPECT_NE(msg.find("architecture 'falcon' is not supported"), std::string::npos) << msg;

  const CmdResult r = run(g);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("m64run: " + msg), std::string::npos) << r.out << "\nexpected: " << msg;
  EXPECT_FALSE(exists(cache)) << "the cache directory was created";

  // m64c info names every reason: the architecture, the tensor type, the tokenizer
  const CmdResult info = sh(env + kM64c + " info " + g);
  ASSERT_EQ(info.code, 0) << info.out;
  EXPECT_NE(info.out.find("verdict: NOT supported"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("architecture 'falcon'"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("tensor type Q8_1"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("tokenizer model 'bert'"), std::string::npos) << info.out;
  const CmdResult json = sh(env + kM64c + " info --json " + g);
  ASSERT_EQ(json.code, 0) << json.out;
  EXPECT_NE(json.out.find("\"supported\":false"), std::string::npos) << json.out;
  EXPECT_NE(json.out.find("{\"type\":\"Q8_1\",\"tensors\":1,\"bytes\":72,\"supported\":false}"), std::string::npos)
      << json.out;
  EXPECT_NE(json.out.find("\"context_length\":2048"), std::string::npos) << json.out;
}

// A GGUF changed in place (same inode, same size, new weights) is hashed again and
// compiled into a new entry; the old one stays until removed.
TEST_F(Cache, ChangedGgufIsCompiledAgain) {
  const std::string g = synth("m.gguf", "--seed 23");
  const std::string other = synth("other.gguf", "--seed 24");
  const CmdResult first = run(g);
  ASSERT_EQ(first.code, 0) << first.out;
  ASSERT_EQ(entries(cache).size(), 1u);
  struct stat a, b;
  ASSERT_EQ(stat(g.c_str(), &a), 0);
  ASSERT_EQ(sh("cat " + other + " > " + g).code, 0);
  ASSERT_EQ(stat(g.c_str(), &b), 0);
  ASSERT_EQ(a.st_ino, b.st_ino);
  ASSERT_EQ(a.st_size, b.st_size);
  const CmdResult second = run(g);
  ASSERT_EQ(second.code, 0) << second.out;
  EXPECT_NE(second.out.find("[3/6] compiling the module"), std::string::npos) << second.out;
  EXPECT_EQ(entries(cache).size(), 2u);
  // and it is the new model that ran: the same tokens as the other file's own entry
  const CmdResult third = run(other, "M64_CLANG=/nonexistent/clang");
  ASSERT_EQ(third.code, 0) << third.out;
  EXPECT_EQ(third.out.find("[1/6]"), std::string::npos) << third.out;
  EXPECT_EQ(json_tokens(third.out), json_tokens(second.out));
  const CmdResult rm = sh(env + kM64c + " cache rm --all");
  ASSERT_EQ(rm.code, 0) << rm.out;
  EXPECT_NE(rm.out.find("removed 2 entries"), std::string::npos) << rm.out;
  EXPECT_TRUE(entries(cache).empty());
}

// A cache entry with a flipped byte in a layer is caught by the layer hashes and compiled
// again, never run as it is.
TEST_F(Cache, DamagedEntryIsCompiledAgain) {
  const std::string g = synth("m.gguf", "--seed 25");
  const CmdResult first = run(g);
  ASSERT_EQ(first.code, 0) << first.out;
  auto e = entries(cache);
  ASSERT_EQ(e.size(), 1u);
  uint64_t at = 0;
  {
    m64_bundle *b = nullptr;
    m64_err err{};
    ASSERT_EQ(m64_bundle_open(e[0].c_str(), &b, &err), 0) << err.msg;
    const m64_layer_entry *L = m64_bundle_layer(b, 1);
    const m64_section *seg = m64_bundle_find_section(b, M64_SEC_SEGMENT, nullptr);
    ASSERT_NE(seg, nullptr);
    at = seg->offset + L->offset + L->size / 2;
    m64_bundle_close(b);
  }
  const int fd = open(e[0].c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  unsigned char c;
  ASSERT_EQ(pread(fd, &c, 1, (off_t)at), 1);
  c ^= 0x10;
  ASSERT_EQ(pwrite(fd, &c, 1, (off_t)at), 1);
  close(fd);
  ASSERT_NE(sh(env + kM64c + " verify " + e[0]).code, 0);

  const CmdResult second = run(g);
  ASSERT_EQ(second.code, 0) << second.out;
  EXPECT_NE(second.out.find("is damaged"), std::string::npos) << second.out;
  EXPECT_NE(second.out.find("blk.0"), std::string::npos) << second.out;
  EXPECT_NE(second.out.find("[3/6] compiling the module"), std::string::npos) << second.out;
  EXPECT_EQ(json_tokens(second.out), json_tokens(first.out));
  EXPECT_EQ(sh(env + kM64c + " verify " + e[0]).code, 0);
}

// --no-cache: a temporary bundle, gone after the run; the cache is not touched.
TEST_F(Cache, NoCacheLeavesNothing) {
  const std::string g = synth("m.gguf", "--seed 26");
  const CmdResult r = run(g, "");
  ASSERT_EQ(r.code, 0) << r.out;
  sh("rm -rf " + cache);
  const CmdResult nc = sh(env + kM64run + " " + g + " --no-cache -p 'Once upon a time' -n 6 --temp 0 --json -t 2");
  ASSERT_EQ(nc.code, 0) << nc.out;
  EXPECT_NE(nc.out.find("temporary bundle"), std::string::npos) << nc.out;
  EXPECT_EQ(json_tokens(nc.out), json_tokens(r.out));
  EXPECT_FALSE(exists(cache));
  EXPECT_TRUE(files_in(dir + "/tmp").empty()) << files_in(dir + "/tmp")[0];
}

// Each command, given a file it cannot take, says what the file is and what to run.
TEST_F(Cache, CommandsNameTheFileTheyWereGiven) {
  const std::string g = synth("m.gguf", "--seed 27");
  const std::string b = dir + "/m.m64", z = dir + "/mz.m64", txt = dir + "/notes.txt";
  ASSERT_EQ(sh(env + kM64c + " build -q " + g + " -o " + b).code, 0);
  ASSERT_EQ(sh(env + kM64c + " compress -q " + b + " -o " + z).code, 0);
  ASSERT_EQ(sh("echo hello > " + txt).code, 0);
  for (const char *cmd : {"aot", "compress", "decompress", "verify", "sign --key k.key"}) {
    const CmdResult r = sh(env + kM64c + " " + cmd + " " + g);
    EXPECT_EQ(r.code, 1) << cmd << ": " << r.out;
    EXPECT_NE(r.out.find("is a GGUF model, not an m64 bundle"), std::string::npos) << cmd << ": " << r.out;
    EXPECT_NE(r.out.find("m64c build " + g), std::string::npos) << cmd << ": " << r.out;
    EXPECT_NE(r.out.find("m64run " + g), std::string::npos) << cmd << ": " << r.out;
  }
  CmdResult r = sh(env + kM64c + " build " + b + " -o " + dir + "/y.m64");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("is an m64 bundle (already compiled), not a GGUF model: run it with `m64run " + b),
            std::string::npos) << r.out;
  r = sh(env + kM64c + " build " + z + " -o " + dir + "/y.m64");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("is a compressed m64 bundle"), std::string::npos) << r.out;
  EXPECT_FALSE(exists(dir + "/y.m64"));
  r = sh(env + kM64c + " build " + txt + " -o " + dir + "/y.m64");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("is neither a GGUF model nor an m64 bundle"), std::string::npos) << r.out;
  r = sh(env + kM64c + " info " + txt);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("is neither a GGUF model nor an m64 bundle"), std::string::npos) << r.out;
  r = sh(env + kM64run + " " + txt + " -p hi");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("m64run: error: " + txt + " is neither a GGUF model nor an m64 bundle"), std::string::npos)
      << r.out;
  EXPECT_FALSE(exists(cache));
  // the bundle reader itself (and so the C API) says what a GGUF is
  m64_bundle *bb = nullptr;
  m64_err e{};
  EXPECT_NE(m64_bundle_open(g.c_str(), &bb, &e), 0);
  EXPECT_NE(std::string(e.msg).find("it is a GGUF model"), std::string::npos) << e.msg;
  // m64c info --json: a bundle as one object too, as for a GGUF
  r = sh(env + kM64c + " info --json " + b);
  EXPECT_EQ(r.code, 0) << r.out;
  for (const char *want : {"\"format\":\"m64\"", "\"compressed\":false", "\"general.architecture\":\"llama\"",
                           "\"name\":\"blk.0\"", "\"kind\":\"module-wasm\"", "\"m64run_loads_it\":true",
                           "\"trust\":\"marked here\"", "\"signature\":{\"status\":\"unsigned\"}"})
    EXPECT_NE(r.out.find(want), std::string::npos) << want << " in " << r.out;
  EXPECT_EQ(r.out.back(), '\n');
  EXPECT_EQ(r.out[r.out.size() - 2], '}');
  r = sh(env + kM64c + " info --json " + z);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("\"compressed\":true"), std::string::npos) << r.out;
  // bundles, plain and compressed, still run as they are (nothing goes to the cache)
  for (const std::string &m : {b, z}) {
    r = sh(env + kM64run + " " + m + " -p hi -n 2 --temp 0");
    EXPECT_EQ(r.code, 0) << r.out;
  }
  EXPECT_FALSE(exists(cache));
}

// m64c info on a supported GGUF: the facts and the verdict, as text and JSON.
TEST_F(Cache, InfoDescribesASupportedGguf) {
  const std::string g = synth("m.gguf", "--seed 28 --vocab-kind bpe --layers 3");
  CmdResult r = sh(env + kM64c + " info " + g);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("architecture:   llama"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("3 blocks, dim 64"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tokenizer:      gpt2 (byte-level BPE)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("pre-tokenizer:  llama-bpe"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("verdict: supported"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("F32"), std::string::npos) << r.out;
  r = sh(env + kM64c + " info --json " + g);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("\"architecture\":\"llama\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"supported\":true,\"problems\":[]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"pre_tokenizer\":\"llama-bpe\""), std::string::npos) << r.out;
  EXPECT_FALSE(exists(cache));
}

TEST_F(Cache, InfoOnStories260K) {
  const std::string g = kShared + "/stories260K.gguf";
  if (!exists(g)) GTEST_SKIP() << g << " not found (shared models absent)";
  const CmdResult r = sh(env + kM64c + " info " + g);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("architecture:   llama"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tokenizer:      llama (SentencePiece), 512 tokens"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("verdict: supported"), std::string::npos) << r.out;
}

}  // namespace
