// m64run's sampling as llama-cli's (issue 23, item 4): the penalties against llama.cpp's own
// (token ids recorded from node-llama-cpp 3.21.1: bench/llamacpp/greedy.mjs, whose greedy
// chain is llama.cpp's penalties sampler then greedy; bench/peercheck reruns the check),
// min-p, --ignore-eos, stop strings (-r) and -e. Bundles come from the e2e fixture.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "../support/run_cmd.h"

namespace {

using m64test::CmdResult;
using m64test::exists;
using m64test::has;
using m64test::sh;

const std::string kOut = std::string(M64_BINARY_DIR) + "/test/e2e/bundles";
const std::string kM64run = std::string(M64_BINARY_DIR) + "/cmd/m64run";
const std::string kStories = kOut + "/stories260K.m64";

// The value of "key":[...] or "key":"..." in m64run's --json line, as text.
std::string field(const std::string &out, const std::string &key) {
  const size_t at = out.rfind("{\"prompt_tokens\"");
  if (at == std::string::npos) return "(no json in: " + out + ")";
  const std::string j = out.substr(at);
  const size_t k = j.find("\"" + key + "\":");
  if (k == std::string::npos) return "(no " + key + ")";
  const size_t v = k + key.size() + 3;
  if (j[v] == '[') return j.substr(v, j.find(']', v) - v + 1);
  size_t e = v + 1;
  while (e < j.size() && j[e] != '"') e += j[e] == '\\' ? 2 : 1;
  return j.substr(v, e - v + 1);
}

CmdResult run(const std::string &args) {
  return sh("(" + kM64run + " " + kStories + " -t 1 --json " + args + " 2>/dev/null)");
}

TEST(Sampling, GreedyPenaltiesMatchLlamaCpp) {
  NEED_FILE(kStories);
  const std::string p = "-p 'Once upon a time' -n 32 --temp 0 ";
  const std::string plain = field(run(p).out, "tokens");
  struct Case {
    const char *flags, *llama_cpp;
  } cases[] = {
      {"--repeat-penalty 1.5",
       "[432,383,286,261,376,298,315,421,395,317,426,338,401,396,267,337,410,408,419,292,411,322,265,282,295,433,335,"
       "311,374,419,269,279]"},
      {"--repeat-penalty 1.2 --frequency-penalty 0.3 --presence-penalty 0.2 --repeat-last-n 32",
       "[432,383,286,261,376,298,315,421,395,317,426,338,401,396,267,337,410,408,419,292,411,322,265,282,295,433,335,"
       "311,374,419,426,385]"},
  };
  for (const Case &c : cases) {
    CmdResult r = run(p + c.flags);
    ASSERT_EQ(r.code, 0) << c.flags << ": " << r.out;
    EXPECT_EQ(field(r.out, "tokens"), c.llama_cpp) << c.flags;
    EXPECT_NE(field(r.out, "tokens"), plain) << c.flags << " changed nothing";
  }
  // --repeat-last-n 0 turns the penalties off
  EXPECT_EQ(field(run(p + "--repeat-penalty 1.5 --repeat-last-n 0").out, "tokens"), plain);
}

TEST(Sampling, MinPOneKeepsOnlyTheTopToken) {
  NEED_FILE(kStories);
  const std::string p = "-p 'Once upon a time' -n 24 ";
  const std::string greedy = field(run(p + "--temp 0").out, "tokens");
  // at temperature 2 the draws differ from greedy; min-p 1 leaves only the most likely id
  EXPECT_NE(field(run(p + "--temp 2 --top-k 0 --top-p 1 --min-p 0 --seed 7").out, "tokens"), greedy);
  EXPECT_EQ(field(run(p + "--temp 2 --top-k 0 --top-p 1 --min-p 1 --seed 7").out, "tokens"), greedy);
  EXPECT_EQ(field(run(p + "--temp 2 --top-k 10 --min-p 1 --seed 8").out, "tokens"), greedy);
}

TEST(Sampling, IgnoreEosNeverChoosesAnEndToken) {
  NEED_FILE(kStories);
  // the prompt ends with </s> (--special); a presence penalty of -100 over the last token
  // makes it the argmax, so without --ignore-eos generation ends at once
  const std::string p = "-p 'Once</s>' --special -n 12 --temp 0 --presence-penalty -100 --repeat-last-n 1 ";
  CmdResult a = run(p);
  ASSERT_EQ(a.code, 0) << a.out;
  EXPECT_EQ(field(a.out, "prompt_tokens"), "[1,403,2]");
  EXPECT_EQ(field(a.out, "tokens"), "[]");
  CmdResult b = run(p + "--ignore-eos");
  ASSERT_EQ(b.code, 0) << b.out;
  const std::string t = field(b.out, "tokens");
  EXPECT_EQ(std::count(t.begin(), t.end(), ','), 11) << t;  // all 12
  EXPECT_FALSE(has(t, "[2,") || has(t, ",2,") || has(t, ",2]")) << t;
}

TEST(Sampling, StopStringsEndTheOutputRightAfterThem) {
  NEED_FILE(kStories);
  const std::string p = "-p 'Once upon a time' -n 64 --temp 0 ";
  const std::string full = field(run(p).out, "text");
  ASSERT_TRUE(has(full, "named Lily. She")) << full;
  CmdResult r = run(p + "-r 'Lily'");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(field(r.out, "text"), full.substr(0, full.find("Lily") + 4) + "\"");
  // several: whichever shows first; a string inside one token ends there too
  EXPECT_EQ(field(run(p + "-r 'zzz' -r 'little' -r 'Lily'").out, "text"),
            full.substr(0, full.find("little") + 6) + "\"");
  EXPECT_EQ(field(run(p + "-r 'ittl'").out, "text"), full.substr(0, full.find("ittl") + 4) + "\"");
  // streamed text stops at the same place
  CmdResult s = sh("(" + kM64run + " " + kStories + " -t 1 " + p + "-r 'Lily' 2>/dev/null)");
  EXPECT_EQ(s.out, "Once upon a time" + full.substr(1, full.find("Lily") + 3) + "\n");
}

TEST(Sampling, EscapesInThePromptAndStopStrings) {
  NEED_FILE(kStories);
  char dir[] = "/tmp/m64samp.XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string f = std::string(dir) + "/p.txt";
  {
    std::ofstream o(f, std::ios::binary);
    o << "Once upon\ta time\n\"she\" said \\ \x41";
  }
  const std::string from_file = field(run("-f " + f + " -n 1 --temp 0").out, "prompt_tokens");
  const std::string escaped = field(run("-e -p 'Once upon\\ta time\\n\\\"she\\\" said \\\\ \\x41' -n 1 --temp 0").out,
                                    "prompt_tokens");
  EXPECT_EQ(escaped, from_file);
  const std::string raw =
      field(run("-p 'Once upon\\ta time\\n\\\"she\\\" said \\\\ \\x41' -n 1 --temp 0").out, "prompt_tokens");
  EXPECT_NE(raw, from_file) << "without -e the backslashes stay";
  // -e applies to -r: "\x4cily" is "Lily"
  const std::string p = "-p 'Once upon a time' -n 64 --temp 0 ";
  EXPECT_EQ(field(run(p + "-e -r '\\x4cily'").out, "text"), field(run(p + "-r Lily").out, "text"));
  sh(std::string("rm -rf ") + dir);
}

TEST(Sampling, BadValuesNameTheirFlag) {
  NEED_FILE(kStories);
  struct Bad {
    const char *args, *msg;
  } bad[] = {
      {"--min-p 1.5", "--min-p takes a number in 0..1"},
      {"--min-p x", "--min-p takes a number"},
      {"--repeat-penalty 0", "--repeat-penalty takes a number in 0.01..100"},
      {"--repeat-last-n -2", "--repeat-last-n takes a whole number in -1.."},
      {"--presence-penalty nan", "--presence-penalty takes a number"},
      {"--frequency-penalty 1e9", "--frequency-penalty takes a number"},
      {"-r ''", "-r takes a non-empty text"},
      {"-e -r '\\\\'", ""},  // fine: a backslash
  };
  for (const Bad &b : bad) {
    CmdResult r = sh(kM64run + " " + kStories + " -n 2 --temp 0 " + b.args);
    if (!*b.msg) {
      EXPECT_EQ(r.code, 0) << b.args << ": " << r.out;
      continue;
    }
    EXPECT_EQ(r.code, 1) << b.args << ": " << r.out;
    EXPECT_TRUE(has(r.out, b.msg)) << b.args << ": " << r.out;
  }
}

}  // namespace
