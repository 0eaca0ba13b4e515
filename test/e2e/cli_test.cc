// The command lines check what they are told (issue 23, list 3): an output that is the
// input, strict numbers naming their flag, a random seed for --seed -1, exit 130 on Ctrl-C,
// outputs in missing directories, --version and per-command help, options that would be
// silently dropped, warnings for a context past training and a double BOS, sizes in units
// that fit. Bundles come from the e2e fixture (build_bundles.sh).
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "../support/run_cmd.h"

namespace {

using m64test::CmdResult;
using m64test::sh;
using m64test::exists;
using m64test::has;

const std::string kBin = M64_BINARY_DIR;
const std::string kShared = M64_SHARED_MODELS;
const std::string kOut = std::string(M64_BINARY_DIR) + "/test/e2e/bundles";
const std::string kM64c = kBin + "/cmd/m64c";
const std::string kM64run = kBin + "/cmd/m64run";

std::string slurp(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::string json_tokens(const std::string &j) {
  const size_t at = j.find("\"tokens\"");
  return at == std::string::npos ? "(no tokens in: " + j + ")" : j.substr(at, j.find("\"text\"") - at);
}

struct TempDir {
  std::string path;
  TempDir() {
    char t[] = "/tmp/m64cli.XXXXXX";
    path = mkdtemp(t);
  }
  ~TempDir() { sh("rm -rf " + path); }
};

// ---------------------------------------------------------------- outputs
TEST(CliOutput, BuildRefusesAnOutputThatIsItsInput) {
  NEED_FILE(kOut + "/synth-F32.gguf");
  TempDir d;
  const std::string src = d.path + "/same.gguf";
  ASSERT_EQ(sh("cp " + kOut + "/synth-F32.gguf " + src).code, 0);
  const std::string before = slurp(src);
  // the same path, a hard link and a symlink to it: all one inode
  ASSERT_EQ(sh("ln " + src + " " + d.path + "/hard.gguf && ln -s same.gguf " + d.path + "/soft.gguf").code, 0);
  for (const char *out : {"/same.gguf", "/hard.gguf", "/soft.gguf", "/./same.gguf"}) {
    CmdResult r = sh(kM64c + " build -q " + src + " -o " + d.path + out);
    EXPECT_EQ(r.code, 1) << out << ": " << r.out;
    EXPECT_TRUE(has(r.out, "is the input file")) << r.out;
    EXPECT_EQ(slurp(src), before) << "the input changed through " << out;
  }
  EXPECT_EQ(sh("ls -A " + d.path).out, "hard.gguf\nsame.gguf\nsoft.gguf\n") << "no temp files";
}

TEST(CliOutput, AnUnwritableOutputFailsBeforeAnyWorkNamingThePathGiven) {
  NEED_FILE(kOut + "/synth-F32.gguf");
  TempDir d;
  const std::string out = d.path + "/nonexist/dir/x.m64";
  // --keep would create its directory at once if the output check came after the work started
  CmdResult r = sh(kM64c + " build " + kOut + "/synth-F32.gguf -o " + out + " --keep " + d.path + "/kept");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(has(r.out, "m64c: error: cannot write " + out + ": directory " + d.path + "/nonexist/dir does not exist"))
      << r.out;
  EXPECT_FALSE(has(r.out, "[1/")) << "work started: " << r.out;
  EXPECT_FALSE(exists(d.path + "/kept"));
  // a directory as the output; a read-only directory
  r = sh(kM64c + " build -q " + kOut + "/synth-F32.gguf -o " + d.path);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(has(r.out, "is a directory")) << r.out;
  if (geteuid() != 0) {  // root writes anywhere
    ASSERT_EQ(sh("mkdir " + d.path + "/ro && chmod 555 " + d.path + "/ro").code, 0);
    r = sh(kM64c + " compress -q " + kOut + "/synth-F32.m64 -o " + d.path + "/ro/x.m64");
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_TRUE(has(r.out, "cannot write " + d.path + "/ro/x.m64: directory " + d.path + "/ro is not writable"))
        << r.out;
  }
  // the rewriting commands may name their input: that is their in-place mode
  ASSERT_EQ(sh("cp " + kOut + "/synth-F32.m64 " + d.path + "/b.m64").code, 0);
  r = sh(kM64c + " compress -q " + d.path + "/b.m64 -o " + d.path + "/b.m64");
  EXPECT_EQ(r.code, 0) << r.out;
}

// ---------------------------------------------------------------- numbers
TEST(CliNumbers, EveryNumberIsParsedStrictlyNamingItsFlag) {
  NEED_FILE(kOut + "/synth-F32.m64");
  const std::string m = kOut + "/synth-F32.m64";
  const struct { const char *args, *flag, *text; } bad[] = {
      {"--temp abc", "--temp", "abc"},      {"-n abc", "-n", "abc"},           {"-t 2x", "-t", "2x"},
      {"--top-k -5", "--top-k", "-5"},      {"--top-p 5", "--top-p", "5"},     {"--temp nan", "--temp", "nan"},
      {"--temp -1", "--temp", "-1"},        {"-n 12.5", "-n", "12.5"},         {"-c 0", "-c", "0"},
      {"-c 4k", "-c", "4k"},                {"-t 0", "-t", "0"},               {"--seed 12x", "--seed", "12x"},
      {"--seed -2", "--seed", "-2"},        {"--seed ''", "--seed", ""},       {"--top-p ''", "--top-p", ""},
      {"--workspace 12Q", "--workspace", "12Q"}, {"-n 99999999999999999999", "-n", "99999999999999999999"},
  };
  for (const auto &b : bad) {
    CmdResult r = sh(kM64run + " " + m + " -p hi " + b.args);
    EXPECT_EQ(r.code, 1) << b.args << ": " << r.out;
    EXPECT_TRUE(has(r.out, std::string("m64run: ") + b.flag + " takes ")) << b.args << ": " << r.out;
    EXPECT_TRUE(has(r.out, std::string("not '") + b.text + "'")) << b.args << ": " << r.out;
  }
  const struct { const char *args, *flag; } bad_c[] = {
      {"--segment-max 12Q", "--segment-max"}, {"--min-gain 99", "--min-gain"}, {"--min-gain 3x", "--min-gain"},
      {"--long 5", "--long"},                 {"--compress=0", "--compress=LEVEL"}, {"--chunk 0", "--chunk"},
  };
  TempDir d;
  for (const auto &b : bad_c) {
    CmdResult r = sh(kM64c + " build -q " + kOut + "/synth-F32.gguf -o " + d.path + "/x.m64 " + b.args);
    EXPECT_EQ(r.code, 1) << b.args << ": " << r.out;
    EXPECT_TRUE(has(r.out, std::string("m64c: ") + b.flag + " takes ")) << b.args << ": " << r.out;
  }
  EXPECT_EQ(sh("ls -A " + d.path).out, "");
  // the good forms still run
  CmdResult r = sh(kM64run + " " + m + " -p hi -n 3 -t 1 --temp 0.5 --top-k 0 --top-p 1 --seed 7 -c 64 --workspace 64M");
  EXPECT_EQ(r.code, 0) << r.out;
}

TEST(CliNumbers, SeedMinusOneAndTheDefaultAreRandomAndReproducible) {
  NEED_FILE(kOut + "/synth-F32.m64");
  const std::string run = kM64run + " " + kOut + "/synth-F32.m64 -p hi -n 24 --temp 1.5 --top-k 0 --top-p 1 --json -v";
  auto seed_of = [](const std::string &out) {
    const size_t at = out.find("m64run: seed ");
    return at == std::string::npos ? std::string("(none)") : out.substr(at + 13, out.find(' ', at + 13) - at - 13);
  };
  CmdResult a = sh(run + " --seed -1"), b = sh(run + " --seed -1"), c = sh(run);
  ASSERT_EQ(a.code, 0) << a.out;
  ASSERT_EQ(b.code, 0) << b.out;
  ASSERT_EQ(c.code, 0) << c.out;
  EXPECT_TRUE(has(a.out, " (random)")) << a.out;
  EXPECT_TRUE(has(c.out, " (random)")) << c.out;
  EXPECT_NE(seed_of(a.out), seed_of(b.out));
  EXPECT_NE(seed_of(a.out), seed_of(c.out));
  EXPECT_NE(json_tokens(a.out), json_tokens(b.out)) << "two random seeds sampled the same 24 tokens";
  // the seed shown reproduces the run
  CmdResult again = sh(run + " --seed " + seed_of(a.out));
  ASSERT_EQ(again.code, 0) << again.out;
  EXPECT_EQ(json_tokens(again.out), json_tokens(a.out));
  EXPECT_FALSE(has(again.out, "(random)"));
}

// ---------------------------------------------------------------- Ctrl-C
TEST(CliSignals, CtrlCStopsGenerationWithExit130) {
  NEED_FILE(kOut + "/synth-8layer.m64");
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    dup2(out[1], 2);
    close(out[0]);
    // far more tokens than run in the test's time: only Ctrl-C ends it
    execl(kM64run.c_str(), "m64run", (kOut + "/synth-8layer.m64").c_str(), "-p", "hi", "-n", "-1", "-c", "65536",
          "--temp", "0", "-t", "1", (char *)nullptr);
    _exit(127);
  }
  close(out[1]);
  std::string text;
  char buf[4096];
  ssize_t n = read(out[0], buf, sizeof buf);  // the prompt's echo: generation has begun
  if (n > 0) text.append(buf, (size_t)n);
  usleep(300 * 1000);
  kill(pid, SIGINT);
  while ((n = read(out[0], buf, sizeof buf)) > 0) text.append(buf, (size_t)n);
  close(out[0]);
  int st;
  waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFEXITED(st)) << text;
  EXPECT_EQ(WEXITSTATUS(st), 130) << text;
  EXPECT_TRUE(has(text, "m64run: interrupted: ")) << text;  // the stats so far, then 130
}

// ---------------------------------------------------------------- help and versions
TEST(CliHelp, VersionsCommandHelpAndUnknownCommands) {
  CmdResult r = sh(kM64c + " --version");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.rfind("m64c 0.", 0), 0u) << r.out;
  EXPECT_TRUE(has(r.out, "bundle format 1, host target ")) << r.out;
  r = sh(kM64run + " --version");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.rfind("m64run 0.", 0), 0u) << r.out;

  for (const std::string cmd : {"help build", "build --help", "build -h"}) {
    r = sh(kM64c + " " + cmd);
    EXPECT_EQ(r.code, 0) << cmd << ": " << r.out;
    EXPECT_EQ(r.out.rfind("usage: m64c build MODEL.gguf -o MODEL.m64", 0), 0u) << cmd << ": " << r.out;
    EXPECT_TRUE(has(r.out, "--segment-max")) << r.out;
    EXPECT_FALSE(has(r.out, "keygen")) << "another command's help: " << r.out;
    EXPECT_FALSE(has(r.out, "--name")) << "another command's option: " << r.out;
  }
  r = sh(kM64c + " help info");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.rfind("usage: m64c info MODEL.m64", 0), 0u) << r.out;
  EXPECT_FALSE(has(r.out, "--target")) << r.out;
  r = sh(kM64c + " help");
  EXPECT_EQ(r.code, 0) << r.out;
  for (const char *c : {"build", "aot", "compress", "decompress", "info", "verify", "sign", "keygen", "trust"})
    EXPECT_TRUE(has(r.out, std::string("m64c ") + c + " ")) << c;

  for (const std::string cmd : {"frob x.m64", "help frob", "biuld model.gguf -o x.m64"}) {
    r = sh(kM64c + " " + cmd);
    EXPECT_EQ(r.code, 1) << cmd << ": " << r.out;
    EXPECT_TRUE(has(r.out, "m64c: unknown command '")) << cmd << ": " << r.out;
  }
  // an option of another command is refused by name, not ignored
  r = sh(kM64c + " info x.m64 --no-aot");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(has(r.out, "m64c: info does not take --no-aot")) << r.out;
}

// ---------------------------------------------------------------- nothing silently dropped
TEST(CliChecks, OptionsThatWouldBeDroppedAreErrors) {
  NEED_FILE(kOut + "/synth-F32.m64");
  const std::string m = kM64run + " " + kOut + "/synth-F32.m64 ";
  TempDir d;
  std::ofstream(d.path + "/p.txt") << "hello";
  const struct { std::string args, msg; } bad[] = {
      {"--system 'be brief' -p hi", "--system is the chat's system message: it needs -i"},
      {"-p hi -f " + d.path + "/p.txt", "-p and -f both give the prompt: give one"},
      {"-i -p hi", "-i reads the messages from stdin"},
      {"--chat-template chatml -p hi", "--chat-template chooses the chat's format: it needs -i"},
  };
  for (const auto &b : bad) {
    CmdResult r = sh(m + b.args + " </dev/null");
    EXPECT_EQ(r.code, 1) << b.args << ": " << r.out;
    EXPECT_TRUE(has(r.out, "m64run: " + b.msg)) << b.args << ": " << r.out;
  }
}

TEST(CliChecks, ContextBeyondTrainingWarns) {
  NEED_FILE(kBin + "/test/support/m64-synth");
  TempDir d;
  // a one-block model trained with a context of 64
  CmdResult r = sh(kBin + "/test/support/m64-synth --shape tiny --layers 1 --ctx 64 --type F32 --seed 3 -o " + d.path +
                   "/one.gguf && " + kM64c + " build " + d.path + "/one.gguf -o " + d.path + "/one.m64");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(has(r.out, ": 1 block, dim ")) << r.out;
  r = sh(kM64run + " " + d.path + "/one.m64 -p hi -n 2 -c 128");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "m64run: warning: -c 128 is beyond the context of 64 the model was trained with")) << r.out;
  r = sh(kM64run + " " + d.path + "/one.m64 -p hi -n 2 -c 64");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_FALSE(has(r.out, "warning")) << r.out;
  EXPECT_TRUE(has(r.out, " in 2 slots;")) << r.out;
}

TEST(CliChecks, ADoubleBosWarns) {
  NEED_FILE(kOut + "/stories260K.m64");
  const std::string m = kM64run + " " + kOut + "/stories260K.m64 -n 1 --temp 0 ";
  CmdResult r = sh(m + "--special -p '<s>Once'");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "m64run: warning: the prompt starts with a BOS token and the model adds one too")) << r.out;
  r = sh(m + "-p '<s>Once'");  // without --special the text is text: one BOS
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_FALSE(has(r.out, "warning")) << r.out;
}

TEST(CliChecks, SmallWorkspacesAreReportedInUnitsThatFit) {
  NEED_FILE(kOut + "/synth-F32.m64");
  CmdResult r = sh(kM64run + " " + kOut + "/synth-F32.m64 -p hi -n 2 --workspace 1K");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(has(r.out, "m64run: error: workspace of 1.0 KiB is too small")) << r.out;
  EXPECT_FALSE(has(r.out, "0.0 MiB")) << r.out;
}

}  // namespace
