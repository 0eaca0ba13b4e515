// m64run -i as a chat (issue 23, item 5): the commands (/help, /clear, /system, /exit,
// //TEXT), --chat-template-file, and on a terminal (a pseudo-terminal from script(1)) line
// editing, history and Ctrl-C. Bundles come from the e2e fixture.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "../support/run_cmd.h"

namespace {

using m64test::CmdResult;
using m64test::exists;
using m64test::has;
using m64test::sh;

const std::string kBin = M64_BINARY_DIR;
const std::string kOut = kBin + "/test/e2e/bundles";
const std::string kM64run = kBin + "/cmd/m64run";
const std::string kLlama3 = kOut + "/llama3-bpe-tiny.m64";  // chat template llama3

// The -v lines "m64run: turn N: prompt: ..." in order.
std::vector<std::string> prompts(const std::string &out) {
  std::vector<std::string> r;
  for (size_t at = 0; (at = out.find("m64run: turn ", at)) != std::string::npos; at++) {
    const size_t end = out.find('\n', at);
    std::string line = out.substr(at, end - at);
    if (!line.empty() && line.back() == '\r') line.pop_back();  // a terminal's line end
    if (has(line, ": prompt: ")) r.push_back(line);
  }
  return r;
}

struct TempDir {
  std::string path;
  TempDir() {
    char t[] = "/tmp/m64chat.XXXXXX";
    path = mkdtemp(t);
  }
  ~TempDir() { sh("rm -rf " + path); }
};

CmdResult chat(const std::string &input, const std::string &flags = "") {
  return sh("printf '" + input + "' | " + kM64run + " " + kLlama3 + " -i -n 4 --temp 0 -t 1 -v " + flags);
}

TEST(Chat, CommandsClearSystemExitAndUnknown) {
  NEED_FILE(kLlama3);
  CmdResult r = chat("hello\\n/clear\\nhello\\n/system Be brief.\\nhello\\n/nope\\n//x\\n/exit\\nhello again\\n");
  ASSERT_EQ(r.code, 0) << r.out;
  const std::vector<std::string> p = prompts(r.out);
  ASSERT_EQ(p.size(), 4u) << r.out;  // "hello again" comes after /exit: never sent
  // /clear: the same first turn at position 0 again (BOS, no trace of the old one)
  EXPECT_EQ(p[0], p[1]);
  EXPECT_TRUE(has(p[0], "turn 1: prompt: 11 tokens at positions 0..10: [128000,")) << p[0];
  EXPECT_TRUE(has(r.out, "m64run: the conversation starts over\n")) << r.out;
  // /system TEXT: over again, the system message first (role "system" = 9125)
  EXPECT_TRUE(has(p[2], "turn 1: prompt: 19 tokens at positions 0..18: [128000,128006,9125,128007,")) << p[2];
  EXPECT_TRUE(has(r.out, "starts over with that system message")) << r.out;
  // unknown commands are said so, not sent; //x sends "/x" as turn 2
  EXPECT_TRUE(has(r.out, "unknown command /nope: /help lists the commands")) << r.out;
  EXPECT_TRUE(has(p[3], "turn 2: prompt: ")) << p[3];
  // /help lists every command
  r = chat("/help\\n");
  for (const char *want : {"/help", "/clear", "/system TEXT", "/exit", "//TEXT"})
    EXPECT_TRUE(has(r.out, want)) << want << " in " << r.out;
  EXPECT_TRUE(prompts(r.out).empty()) << r.out;
}

TEST(Chat, TemplateFileNamesOrHoldsATemplate) {
  NEED_FILE(kLlama3);
  TempDir d;
  auto write = [&](const std::string &name, const std::string &text) {
    std::ofstream(d.path + "/" + name) << text;
    return d.path + "/" + name;
  };
  // a name
  CmdResult r = chat("hi\\n", "--chat-template-file " + write("name.txt", "chatml\n"));
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "m64run: chat template chatml")) << r.out;
  // a Jinja template, recognised by its markers (as m64c does a GGUF's)
  const std::string jinja =
      "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
      "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
  r = chat("hi\\n", "--chat-template-file " + write("t.jinja", jinja));
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "m64run: chat template chatml")) << r.out;
  // anything else is an error naming the file and the known formats
  r = chat("hi\\n", "--chat-template-file " + write("bad.jinja", "{{ messages }}"));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(has(r.out, "bad.jinja is not a chat template m64 knows")) << r.out;
  EXPECT_TRUE(has(r.out, "llama3, chatml, llama2, mistral, zephyr")) << r.out;
  r = chat("hi\\n", "--chat-template-file " + d.path + "/missing");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(has(r.out, "cannot read the chat template file")) << r.out;
  r = chat("hi\\n", "--chat-template llama3 --chat-template-file " + d.path + "/name.txt");
  EXPECT_EQ(r.code, 1) << r.out;
  r = sh(kM64run + " " + kLlama3 + " -p hi --chat-template-file " + d.path + "/name.txt");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(has(r.out, "it needs -i")) << r.out;
}

// Keys typed on a terminal: script(1) runs m64run on a pseudo-terminal fed from a pipe.
// script runs the command through $SHELL -c; exec makes m64run that process, or a shell
// that does not exec by itself (dash, CI's /bin/sh) gets the Ctrl-C too, dies of it, and
// script reports 130 while m64run still runs.
CmdResult on_tty(const std::string &keys, const std::string &flags) {
  return sh("(" + keys + ") | script -qefc 'exec " + kM64run + " " + flags + "' /dev/null");
}

TEST(Chat, LineEditingHistoryAndCtrlCOnATerminal) {
  NEED_FILE(kLlama3);
  if (sh("command -v script").code != 0) GTEST_SKIP() << "script(1) (bsdutils) not installed";
  const std::string flags = kLlama3 + " -i -n 4 --temp 0 -t 1 -v";
  // what piped lines give: "hello" twice
  const std::vector<std::string> want = prompts(chat("hello\\nhello\\n").out);
  ASSERT_EQ(want.size(), 2u);
  // typed: "helo", Left, "l" (-> hello), Enter; Up (history), Enter; "junk" and Ctrl-C
  // (the line is dropped, a fresh prompt); Ctrl-C at the empty prompt ends with 130
  CmdResult r = on_tty("sleep 2; printf 'helo\\033[Dl\\r'; sleep 2; printf '\\033[A\\r'; sleep 2; printf 'junk';"
                       " sleep 1; printf '\\003'; sleep 1; printf '\\003'; sleep 2",
                       flags);
  EXPECT_EQ(r.code, 130) << r.out;
  EXPECT_EQ(prompts(r.out), want) << r.out;
  EXPECT_TRUE(has(r.out, "/help lists the commands")) << r.out;
  // Ctrl-D ends with 0
  r = on_tty("sleep 2; printf '\\004'; sleep 2", flags);
  EXPECT_EQ(r.code, 0) << r.out;
}

TEST(Chat, CtrlCStopsAReplyOnATerminal) {
  NEED_FILE(kLlama3);
  if (sh("command -v script").code != 0) GTEST_SKIP() << "script(1) (bsdutils) not installed";
  // --ignore-eos and no -n: only Ctrl-C (or the end of the context) ends the reply; 32768
  // positions take minutes (attention grows with the position), far beyond the test's 3 s.
  CmdResult r = on_tty("sleep 2; printf 'hello\\r'; sleep 3; printf '\\003'; sleep 2; printf '/exit\\r'; sleep 2",
                       kLlama3 + " -i --ignore-eos -c 32768 --temp 0 -t 1 -v");
  EXPECT_EQ(r.code, 0) << r.out;  // /exit after the stopped reply
  const size_t at = r.out.find("turn 1: reply: ");
  ASSERT_NE(at, std::string::npos) << r.out;
  const int n = atoi(r.out.c_str() + at + 15);
  EXPECT_GT(n, 0) << r.out;
  EXPECT_LT(n, 32000) << "the reply ran to the end of the context: " << r.out;
}

}  // namespace
