// `m64c info BUNDLE` opens with a summary shared with `m64c info GGUF` (info_summary.c),
// as text and --json; long writes and hashes show a progress bar on a tty (issue 23,
// item 6). Bundles come from the e2e fixture.
#include <gtest/gtest.h>

#include <string>

#include "../support/run_cmd.h"

namespace {

using m64test::CmdResult;
using m64test::exists;
using m64test::has;
using m64test::sh;

const std::string kBin = M64_BINARY_DIR;
const std::string kShared = M64_SHARED_MODELS;
const std::string kOut = kBin + "/test/e2e/bundles";
const std::string kM64c = kBin + "/cmd/m64c";

// The line of text that starts with prefix (without its newline).
std::string line_of(const std::string &s, const std::string &prefix) {
  const size_t at = s.find("\n" + prefix);
  if (at == std::string::npos) return "(no line " + prefix + ")";
  return s.substr(at + 1, s.find('\n', at + 1) - at - 1);
}

TEST(InfoSummary, ABundleOpensWithTheSummaryItsGgufHas) {
  NEED_FILE(kOut + "/stories260K.m64");
  NEED_FILE(kShared + "/stories260K.gguf");
  CmdResult b = sh(kM64c + " info " + kOut + "/stories260K.m64");
  ASSERT_EQ(b.code, 0) << b.out;
  CmdResult g = sh(kM64c + " info " + kShared + "/stories260K.gguf");
  ASSERT_EQ(g.code, 0) << g.out;
  // the summary comes first, before the sections and layers
  const size_t sig = b.out.find("\nsignature:");
  ASSERT_NE(sig, std::string::npos) << b.out;
  for (const char *want : {"  name:", "  parameters:", "  shape:", "  context length:", "  file type:",
                           "  tokenizer:", "  pre-tokenizer:"}) {
    EXPECT_LT(b.out.find(want), sig) << want << " in\n" << b.out;
    EXPECT_EQ(line_of(b.out, want), line_of(g.out, want)) << "the bundle and its GGUF differ";
  }
  for (const char *want : {"  parameters:     292.8K (292800)", "  file type:      mostly F32",
                           "    F32         48 tensors        1171200 bytes     1.1 MiB (100.0%)",
                           "  tokenizer:      llama (SentencePiece), 512 tokens", "  signer:         none (unsigned)",
                           "  sizes:          file 1.6 MiB; weights 1.1 MiB; module "})
    EXPECT_TRUE(has(b.out, want)) << want << " in\n" << b.out;
  EXPECT_LT(b.out.find("  sizes:"), sig);
}

TEST(InfoSummary, ByteLevelBpeAndAChatTemplate) {
  NEED_FILE(kOut + "/llama3-bpe-tiny.m64");
  CmdResult r = sh(kM64c + " info " + kOut + "/llama3-bpe-tiny.m64");
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char *want : {"  tokenizer:      gpt2 (byte-level BPE), 128256 tokens", "  pre-tokenizer:  llama-bpe",
                           "  chat template:  llama3", "  file type:      mostly Q8_0", "    Q8_0        16 tensors"})
    EXPECT_TRUE(has(r.out, want)) << want << " in\n" << r.out;
}

TEST(InfoSummary, JsonHasTheSummaryToo) {
  NEED_FILE(kOut + "/stories260K.m64");
  NEED_FILE(kShared + "/stories260K.gguf");
  CmdResult r = sh(kM64c + " info --json " + kOut + "/stories260K.m64");
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char *want :
       {"\"summary\":{\"name\":\"llama\",\"architecture\":\"llama\",\"architecture_supported\":true,"
        "\"parameters\":292800,\"tensors\":48,\"blocks\":5,\"dim\":64,\"context_length\":2048,\"file_type\":"
        "\"mostly F32\",\"types\":[{\"type\":\"F32\",\"tensors\":48,\"bytes\":1171200,\"supported\":true}],"
        "\"tokenizer\":\"llama\",\"pre_tokenizer\":null,\"vocab\":512,\"chat_template\":\"none\",\"sizes\":{\"file\":",
        "\"weights\":1171200,\"weights_stored\":1171200,"})
    EXPECT_TRUE(has(r.out, want)) << want << " in\n" << r.out;
  // the GGUF's JSON: the same members, at the top level
  CmdResult g = sh(kM64c + " info --json " + kShared + "/stories260K.gguf");
  EXPECT_TRUE(has(g.out, "\"parameters\":292800,\"tensors\":48,\"blocks\":5,\"dim\":64,\"context_length\":2048,"
                         "\"file_type\":\"mostly F32\"")) << g.out;
}

TEST(ProgressBar, BuildSignAndCompressDrawABarOnATtyOnly) {
  NEED_FILE(kShared + "/stories260K.gguf");
  if (sh("command -v script").code != 0) GTEST_SKIP() << "script(1) (bsdutils) not installed";
  char dir[] = "/tmp/m64bar.XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string d = dir, gguf = kShared + "/stories260K.gguf";
  // script(1) gives the command a pseudo-terminal, as a person's shell would
  auto tty = [](const std::string &cmd) { return sh("script -qec '" + cmd + "' /dev/null"); };
  CmdResult r = tty(kM64c + " build --no-aot " + gguf + " -o " + d + "/a.m64");
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char *want : {"\rm64c: writing   [##############################] 100%  1.1 / 1.1 MiB  ",
                           "\rm64c: hashing   [##############################] 100%  1.1 / 1.1 MiB  ", " MiB/s"})
    EXPECT_TRUE(has(r.out, want)) << want << " in\n" << r.out;
  // -q: no bar; not a tty: plain lines, and none for a model this small
  r = tty(kM64c + " build -q --no-aot " + gguf + " -o " + d + "/b.m64");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_FALSE(has(r.out, "MiB/s")) << r.out;
  r = sh(kM64c + " build --no-aot " + gguf + " -o " + d + "/c.m64");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_FALSE(has(r.out, "\r") || has(r.out, "MiB/s")) << r.out;
  // signing checks every layer's hash first; compressing writes every layer again
  ASSERT_EQ(sh(kM64c + " keygen -o " + d + "/k").code, 0);
  r = tty(kM64c + " sign " + d + "/a.m64 --key " + d + "/k.key -o " + d + "/s.m64");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "\rm64c: verifying [##############################] 100%")) << r.out;
  r = tty(kM64c + " compress " + d + "/a.m64 -o " + d + "/z.m64");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "\rm64c: writing   [##############################] 100%")) << r.out;
  // the summary names the signer
  r = sh(kM64c + " info " + d + "/s.m64");
  EXPECT_TRUE(has(line_of(r.out, "  signer:"), ", not in your trust ring")) << r.out;
  sh("rm -rf " + d);
}

}  // namespace
