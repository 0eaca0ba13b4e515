// security_test — what SECURITY.md promises, checked through the real binaries:
//   traps in the module are errors naming the trap (exit 1, no crash, no core);
//   Ctrl-C stops generation and prints the stats so far;
//   native code runs only when this user compiled it here (`m64c build`/`m64c aot` mark
//   it), or with --trust-bundle-native (the C API: trust_bundle_native), never by default;
//   a flipped byte anywhere in a bundle is named (section or layer) or changes nothing;
//   the same GGUF gives the same bundle, byte for byte;
//   signed bundles: a stranger's code runs once its publisher's key is trusted, a bundle
//   changed after signing is refused outright, keys and the trust ring must be private.
// The bundles come from build_artifacts.sh (ctest fixture security_artifacts).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern "C" {
#include "bundle/bundle_internal.h"
#include "local_mark.h"
#include "m64_formats.h"
#include "m64_runtime.h"
#include "m64_sign.h"
}

namespace {

const std::string kArt = M64_SECURITY_ARTIFACTS;
const std::string kBin = M64_BINARY_DIR;
const std::string kRun = kBin + "/cmd/m64run", kC = kBin + "/cmd/m64c";

std::string ReadFile(const std::string &p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}
void WriteFile(const std::string &p, const std::string &s) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << s;
}

// A private directory per test (in the build tree, removed at the end).
struct TempDir {
  std::string path;
  TempDir() {
    std::string t = kBin + "/test/security/tmp-XXXXXX";
    std::vector<char> b(t.begin(), t.end());
    b.push_back(0);
    path = mkdtemp(b.data()) ? b.data() : "";
  }
  ~TempDir() {
    if (!path.empty()) (void)!system(("rm -rf '" + path + "'").c_str());
  }
};

struct Result {
  int status;
  std::string out, err;
  bool exited(int code) const { return WIFEXITED(status) && WEXITSTATUS(status) == code; }
};

// Runs a shell command in dir with core dumps allowed (so a crash would leave one).
Result Sh(const std::string &dir, const std::string &cmd) {
  const std::string o = dir + "/.out", e = dir + "/.err";
  std::string full = "cd '" + dir + "' && ulimit -c unlimited && exec " + cmd + " >'" + o +
                     "' 2>'" + e + "'";
  Result r;
  r.status = system(full.c_str());
  r.out = ReadFile(o);
  r.err = ReadFile(e);
  unlink(o.c_str());
  unlink(e.c_str());
  return r;
}

bool HasCore(const std::string &dir) {
  Result r = Sh(dir, "sh -c 'ls | grep -c ^core || true'");
  return r.out.size() && r.out[0] != '0';
}

std::string Key() { return "M64_LOCAL_KEY='" + kArt + "/local.key' "; }
// The fixture's key for this process too (the C API in Generate and the native-trust tests).
[[maybe_unused]] const int kKeySet = setenv("M64_LOCAL_KEY", (kArt + "/local.key").c_str(), 1);

// ---------------------------------------------------------------- traps
TEST(Traps, EveryTrapThroughM64runIsOneErrorLineAndExitCode1) {
  TempDir d;
  const struct { const char *prompt, *name; } cases[] = {
      {"oob", "out of bounds memory access"},
      {"unreachable", "unreachable executed"},
      {"stack", "call stack exhausted"},
      {"div", "integer divide by zero"},
      // the host's native rows (m64.kq_rows) check the module's addresses as a load would
      {"kqw", "out of bounds memory access"},
      {"kqo", "out of bounds memory access"},
      {"kmx", "out of bounds memory access"},  // and their prefill (m64.kq_mat) alike
      {"kmo", "out of bounds memory access"},
  };
  for (const auto &c : cases) {
    Result r = Sh(d.path, "env " + Key() + kRun + " " + kArt + "/trap.m64 -p " + c.prompt + " -n 4");
    EXPECT_TRUE(r.exited(1)) << c.prompt << ": status " << r.status << "\n" << r.err;
    EXPECT_NE(r.err.find(std::string("m64run: error: wasm trap in the model module: ") + c.name),
              std::string::npos)
        << c.prompt << ":\n" << r.err;
    EXPECT_FALSE(HasCore(d.path)) << c.prompt;
  }
  // and the same module runs normally otherwise
  Result ok = Sh(d.path, "env " + Key() + kRun + " " + kArt + "/trap.m64 -p hi -n 3 --temp 0");
  EXPECT_TRUE(ok.exited(0)) << ok.err;
  EXPECT_EQ(ok.out, "hidef\n");
}

// A trap inside a share of a parallel job, on one thread or on the pool's: the job is
// joined (no hang), the run ends with one error naming the trap.
TEST(Traps, ATrapInAWorkerShareIsAnErrorOnAnyNumberOfThreads) {
  TempDir d;
  for (const char *t : {"1", "2", "3"}) {
    Result r = Sh(d.path, "env " + Key() + "timeout 60 " + kRun + " " + kArt + "/trap.m64 -p worker -n 2 -t " + t);
    EXPECT_TRUE(r.exited(1)) << "-t " << t << ": status " << r.status << "\n" << r.err;
    EXPECT_NE(r.err.find("m64run: error: wasm trap in the model module: unreachable executed (thread "), std::string::npos)
        << "-t " << t << ":\n" << r.err;
    EXPECT_FALSE(HasCore(d.path)) << t;
  }
}

// ---------------------------------------------------------------- Ctrl-C
pid_t Spawn(const std::string &dir, const std::vector<std::string> &args) {
  pid_t pid = fork();
  if (pid == 0) {
    int o = open((dir + "/out").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = open((dir + "/err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(o, 1);
    dup2(e, 2);
    setenv("M64_LOCAL_KEY", (kArt + "/local.key").c_str(), 1);
    std::vector<char *> argv;
    for (const auto &a : args) argv.push_back(const_cast<char *>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

// Waits up to seconds; true when the child ended (status set).
bool WaitFor(pid_t pid, double seconds, int *status) {
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (waitpid(pid, status, WNOHANG) == pid) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

TEST(Interrupt, CtrlCStopsGenerationAndPrintsTheStats) {
  TempDir d;
  pid_t pid = Spawn(d.path, {kRun, kArt + "/trap.m64", "-p", "slow", "-n", "1000", "--temp", "0"});
  // interrupt once a few tokens are out (each takes ~20 ms; start-up time varies)
  for (int i = 0; i < 1000 && ReadFile(d.path + "/out").size() < 4 + 3; i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  kill(pid, SIGINT);
  int status = 0;
  ASSERT_TRUE(WaitFor(pid, 20, &status)) << "m64run did not stop after Ctrl-C";
  const std::string err = ReadFile(d.path + "/err"), out = ReadFile(d.path + "/out");
  // the stats, then exit 130 as a shell reports a process SIGINT ended (issue 23)
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 130) << status << "\n" << err;
  EXPECT_NE(err.find("m64run: interrupted: "), std::string::npos) << err;
  EXPECT_NE(err.find("generated in"), std::string::npos) << err;
  EXPECT_NE(err.find("paging:"), std::string::npos) << err;
  EXPECT_GE(out.size(), 4u + 3u) << "the prompt and some tokens before the interrupt";
  EXPECT_LT(out.size(), 4u + 1000u) << "but not all of them";
}

TEST(Interrupt, SecondCtrlCEndsAModuleThatNeverReturns) {
  TempDir d;
  pid_t pid = Spawn(d.path, {kRun, kArt + "/trap.m64", "-p", "hang", "-n", "5"});
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  kill(pid, SIGINT);
  int status = 0;
  EXPECT_FALSE(WaitFor(pid, 0.5, &status)) << "the module is still looping";
  kill(pid, SIGINT);
  ASSERT_TRUE(WaitFor(pid, 10, &status)) << "m64run ignored the second Ctrl-C";
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGINT) << status;
}

// ---------------------------------------------------------------- native-code trust
int CountNative(const std::string &path, int *marked) {
  m64_bundle *b = nullptr;
  m64_err e{};
  if (m64_bundle_open(path.c_str(), &b, &e)) return -1;
  int n = 0;
  *marked = 0;
  for (uint32_t i = 0; i < m64_bundle_n_sections(b); i++) {
    const m64_section *s = m64_bundle_section_at(b, i);
    if (s->kind != M64_SEC_NATIVE) continue;
    n++;
    m64_native_section ns;
    if (m64_native_section_parse(s->data, s->size, &ns, &e) == 0 && ns.mark) (*marked)++;
  }
  m64_bundle_close(b);
  return n;
}

// Rewrites the hashes of a modified bundle so that only the mark can notice.
void RehashSections(std::string &b) {
  auto *p = reinterpret_cast<uint8_t *>(&b[0]);
  const uint32_t n = m64__rd_u32(p + BH_N_SECTIONS);
  for (uint32_t i = 0; i < n; i++) {
    uint8_t *r = p + BH_SIZE + (size_t)i * SR_SIZE;
    if (m64__rd_u32(r + SR_KIND) == M64_SEC_SEGMENT) continue;
    m64_sha256 h;
    m64_sha256_init(&h);
    m64_sha256_update(&h, p + m64__rd_u64(r + SR_OFFSET), (size_t)m64__rd_u64(r + SR_SIZE_FIELD));
    m64_sha256_final(&h, r + SR_SHA256);
  }
  m64_sha256 h;
  m64_sha256_init(&h);
  m64_sha256_update(&h, p, BH_SHA256);
  m64_sha256_update(&h, p + BH_SIZE, (size_t)n * SR_SIZE);
  m64_sha256_final(&h, p + BH_SHA256);
}

// Where the (only) NATIVE section of bundle bytes b starts, and its size.
void FindNative(const std::string &b, uint64_t *at, uint64_t *size) {
  m64_bundle *mb = nullptr;
  m64_err e{};
  *at = *size = 0;
  ASSERT_EQ(m64_bundle_open_memory(b.data(), b.size(), &mb, &e), 0) << e.msg;
  const m64_section *nat = m64_bundle_find_section(mb, M64_SEC_NATIVE, nullptr);
  ASSERT_NE(nat, nullptr);
  *at = nat->offset;
  *size = nat->size;
  m64_bundle_close(mb);
}

// The bundle as m64c built it before native code was marked: the mark flag cleared and
// its 32 bytes left after the code as part of it (the ELF loader ignores trailing bytes),
// every hash made to match. A consistent bundle whose native code carries no mark.
std::string Unmarked(std::string b) {
  uint64_t at = 0, size = 0;
  FindNative(b, &at, &size);
  auto *h = reinterpret_cast<uint8_t *>(&b[at]);
  EXPECT_EQ(h[12] & M64_NATIVE_FLAG_LOCAL_MARK, 1) << "the fixture's code should be marked";
  h[12] &= (uint8_t)~M64_NATIVE_FLAG_LOCAL_MARK;
  const uint64_t code = size - M64_NATIVE_HEADER_BYTES;
  for (int i = 0; i < 8; i++) h[48 + i] = (uint8_t)(code >> (8 * i));
  RehashSections(b);
  return b;
}

// m64run's refusal: one line, exit 1, naming both ways on for this path.
void ExpectRefused(const Result &r, const std::string &path, const std::string &why) {
  EXPECT_TRUE(r.exited(1)) << "status " << r.status << "\n" << r.err;
  EXPECT_EQ(r.err.rfind("m64run: error: not loading the bundle's native code for ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line:\n" << r.err;
  EXPECT_NE(r.err.find(why), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("`m64c aot " + path + "`"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--trust-bundle-native"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "") << "nothing ran";
}

std::string Info(const std::string &dir, const std::string &env, const std::string &path) {
  Result r = Sh(dir, "env " + env + kC + " info " + path);
  EXPECT_TRUE(r.exited(0)) << r.err;
  const size_t at = r.out.find("native targets:");
  return at == std::string::npos ? r.out : r.out.substr(at);
}

// What `m64c build` compiles here for this user runs with no flag: its code is marked.
TEST(NativeTrust, AFreshBuildRunsWithNoFlag) {
  TempDir d;
  const std::string tiny = kArt + "/tiny_a.m64"; // `m64c build` under the fixture's key
  int marked = 0;
  EXPECT_EQ(CountNative(tiny, &marked), 1);
  EXPECT_EQ(marked, 1) << "m64c build marks the native code it compiles";
  Result r = Sh(d.path, "env " + Key() + kRun + " " + tiny + " -p hi -n 2");
  EXPECT_TRUE(r.exited(0)) << r.err;
  EXPECT_NE(Info(d.path, Key(), tiny).find("marked here"), std::string::npos);
  // --local-native-only, the old way to ask for this, is still accepted
  r = Sh(d.path, "env " + Key() + kRun + " " + tiny + " -p hi -n 2 --local-native-only");
  EXPECT_TRUE(r.exited(0)) << r.err;
  r = Sh(d.path, "env " + Key() + kRun + " " + tiny + " -p hi -n 2 --local-native-only --trust-bundle-native");
  EXPECT_TRUE(r.exited(1)) << r.err;
  EXPECT_NE(r.err.find("contradict"), std::string::npos) << r.err;
}

// Native code without a mark (as shipped by older m64c, or with the mark stripped) is
// refused by default; --trust-bundle-native runs it; after `m64c aot` it runs with no flag.
TEST(NativeTrust, UnmarkedCodeIsRefusedUntilAotOrTrusted) {
  TempDir d;
  const std::string path = d.path + "/unmarked.m64";
  WriteFile(path, Unmarked(ReadFile(kArt + "/tiny_a.m64")));
  int marked = 0;
  ASSERT_EQ(CountNative(path, &marked), 1);
  ASSERT_EQ(marked, 0);
  EXPECT_NE(Info(d.path, Key(), path).find("not marked"), std::string::npos);

  ExpectRefused(Sh(d.path, "env " + Key() + kRun + " " + path + " -p hi -n 2"), path, "it carries no local mark");
  ExpectRefused(Sh(d.path, "env " + Key() + kRun + " " + path + " -p hi -n 2 --local-native-only"), path,
                "it carries no local mark");
  Result r = Sh(d.path, "env " + Key() + kRun + " " + path + " -p hi -n 2 --trust-bundle-native");
  EXPECT_TRUE(r.exited(0)) << r.err;
  EXPECT_EQ(r.out.rfind("hi", 0), 0u) << r.out;

  r = Sh(d.path, "env " + Key() + kC + " aot " + path + " -q");
  ASSERT_TRUE(r.exited(0)) << r.err;
  EXPECT_EQ(CountNative(path, &marked), 1);
  EXPECT_EQ(marked, 1);
  r = Sh(d.path, "env " + Key() + kRun + " " + path + " -p hi -n 2");
  EXPECT_TRUE(r.exited(0)) << r.err;
  EXPECT_NE(Info(d.path, Key(), path).find("marked here"), std::string::npos);
}

// A stranger's bundle: built by m64c elsewhere, so marked with another user's key.
TEST(NativeTrust, AStrangersBundleIsRefusedUntilAotOrTrusted) {
  TempDir d;
  const std::string path = d.path + "/stranger's model.m64"; // a path that needs quoting
  const std::string q = "'" + d.path + "/stranger'\\''s model.m64'";
  WriteFile(path, ReadFile(kArt + "/tiny_other.m64"));
  EXPECT_NE(Info(d.path, Key(), q).find("marked with another key"), std::string::npos);
  ExpectRefused(Sh(d.path, "env " + Key() + kRun + " " + q + " -p hi -n 2"), q, "marked with another key");
  Result r = Sh(d.path, "env " + Key() + kRun + " " + q + " -p hi -n 2 --trust-bundle-native");
  EXPECT_TRUE(r.exited(0)) << r.err;
  // the advice, followed word for word
  r = Sh(d.path, "env " + Key() + kC + " aot " + q + " -q");
  ASSERT_TRUE(r.exited(0)) << r.err;
  r = Sh(d.path, "env " + Key() + kRun + " " + q + " -p hi -n 2");
  EXPECT_TRUE(r.exited(0)) << r.err;
  // and the stranger cannot run what was compiled here, with their key
  ExpectRefused(Sh(d.path, "env M64_LOCAL_KEY=" + kArt + "/other.key " + kRun + " " + q + " -p hi -n 2"), q,
                "marked with another key");
}

// A fresh machine or account: no key yet. Refused with the same advice, and m64run does
// not create a key (only m64c does, when it compiles).
TEST(NativeTrust, NoKeyYetIsRefusedWithTheSameAdvice) {
  TempDir d;
  const std::string none = "M64_LOCAL_KEY=" + d.path + "/cfg/none.key ";
  const std::string tiny = kArt + "/tiny_a.m64";
  ExpectRefused(Sh(d.path, "env " + none + kRun + " " + tiny + " -p hi -n 2"), tiny, "you have no local key yet");
  EXPECT_NE(Info(d.path, none, tiny).find("no local key"), std::string::npos);
  Result r = Sh(d.path, "env " + none + kRun + " " + tiny + " -p hi -n 2 --trust-bundle-native");
  EXPECT_TRUE(r.exited(0)) << r.err;
  EXPECT_NE(access((d.path + "/cfg").c_str(), F_OK), 0) << "m64run or m64c info created a key";
}

TEST(NativeTrust, AnotherUsersKeyDoesNotAcceptIt) {
  TempDir d;
  const std::string tiny = kArt + "/tiny_a.m64";
  std::string other(32, '\0');
  for (size_t i = 0; i < other.size(); i++) other[i] = (char)(i * 37 + 11);
  WriteFile(d.path + "/other.key", other);
  chmod((d.path + "/other.key").c_str(), 0600);
  const std::string env = "M64_LOCAL_KEY=" + d.path + "/other.key ";
  ExpectRefused(Sh(d.path, "env " + env + kRun + " " + tiny + " -p hi -n 2"), tiny, "marked with another key");
  EXPECT_NE(Info(d.path, env, tiny).find("marked with another key"), std::string::npos);
  // a key others can read is not a key
  chmod((d.path + "/other.key").c_str(), 0644);
  ExpectRefused(Sh(d.path, "env " + env + kRun + " " + tiny + " -p hi -n 2"), tiny, "chmod 600");
}

TEST(NativeTrust, ChangedCodeLosesTheMark) {
  TempDir d;
  std::string b = ReadFile(kArt + "/trap.m64");
  uint64_t at = 0, size = 0;
  FindNative(b, &at, &size);
  b[at + M64_NATIVE_HEADER_BYTES + 200] ^= 0x40; // inside the ELF code
  RehashSections(b);
  const std::string path = d.path + "/tampered.m64";
  WriteFile(path, b);
  ExpectRefused(Sh(d.path, "env " + Key() + kRun + " " + path + " -p hi -n 2"), path, "another key");
}

// The decision comes before anything reads the code: code that is not even an ELF object
// is refused for its missing mark, and only an explicit trust gets as far as the loader.
TEST(NativeTrust, NothingOfTheCodeIsReadBeforeTheCheck) {
  TempDir d;
  std::string b = Unmarked(ReadFile(kArt + "/tiny_a.m64"));
  uint64_t at = 0, size = 0;
  FindNative(b, &at, &size);
  b[at + M64_NATIVE_HEADER_BYTES + 1] = 'X'; // "\x7fELF" -> "\x7fXLF"
  RehashSections(b);
  const std::string path = d.path + "/notelf.m64";
  WriteFile(path, b);
  ExpectRefused(Sh(d.path, "env " + Key() + kRun + " " + path + " -p hi -n 2"), path, "no local mark");
  Result r = Sh(d.path, "env " + Key() + kRun + " " + path + " -p hi -n 2 --trust-bundle-native");
  EXPECT_TRUE(r.exited(1)) << r.err;
  EXPECT_NE(r.err.find("not an ELF object"), std::string::npos) << r.err;
}

// The C API: zeroed (or no) options mean deny; trust_bundle_native = 1 loads.
TEST(NativeTrust, TheCApiRefusesUnlessTrusted) {
  TempDir d;
  const std::string path = d.path + "/unmarked.m64";
  WriteFile(path, Unmarked(ReadFile(kArt + "/tiny_a.m64")));
  m64_session_options o{};
  m64_session *s = nullptr;
  m64_err e{};
  EXPECT_EQ(m64_session_open(path.c_str(), &o, &s, &e), M64_EUNTRUSTED) << e.msg;
  EXPECT_EQ(s, nullptr);
  EXPECT_NE(std::string(e.msg).find("m64c aot"), std::string::npos) << e.msg;
  EXPECT_NE(std::string(e.msg).find("--trust-bundle-native"), std::string::npos) << e.msg;
  e = m64_err{};
  EXPECT_EQ(m64_session_open(path.c_str(), nullptr, &s, &e), M64_EUNTRUSTED) << e.msg;
  EXPECT_EQ(s, nullptr);
  EXPECT_EQ(m64_session_open((kArt + "/tiny_other.m64").c_str(), &o, &s, &e), M64_EUNTRUSTED) << e.msg;
  EXPECT_EQ(s, nullptr);

  o.trust_bundle_native = 1;
  ASSERT_EQ(m64_session_open(path.c_str(), &o, &s, &e), 0) << e.msg;
  m64_session_close(s);
  s = nullptr;
  o = m64_session_options{}; // code compiled here needs no trust
  ASSERT_EQ(m64_session_open((kArt + "/tiny_a.m64").c_str(), &o, &s, &e), 0) << e.msg;
  m64_session_close(s);
}

TEST(NativeTrust, AotRefusesACorruptedLayerInsteadOfRehashingIt) {
  TempDir d;
  std::string b = ReadFile(kArt + "/tiny_a.m64");
  m64_bundle *mb = nullptr;
  m64_err e{};
  ASSERT_EQ(m64_bundle_open_memory(b.data(), b.size(), &mb, &e), 0) << e.msg;
  ASSERT_GE(m64_bundle_n_layers(mb), 2u);
  const uint64_t at = (uint64_t)(m64_bundle_layer_data(mb, 1) - (const uint8_t *)b.data()) + 100;
  const std::string layer = m64_bundle_layer(mb, 1)->name;
  m64_bundle_close(mb);
  b[at] ^= 0x01;
  const std::string path = d.path + "/corrupt.m64";
  WriteFile(path, b);
  Result r = Sh(d.path, "env " + Key() + kC + " aot " + path + " -q");
  EXPECT_TRUE(r.exited(1)) << r.err;
  EXPECT_NE(r.err.find("'" + layer + "'"), std::string::npos) << r.err;
  EXPECT_EQ(ReadFile(path), b) << "the bundle must be left as it was";
}

// ---------------------------------------------------------------- nothing lost
TEST(NothingLost, DiskFullIsReportedAndLeavesNoFiles) {
  TempDir d;
  mkdir((d.path + "/tmp").c_str(), 0755);
  // the bundle is ~0.9 MB; the disk fills up after 300 kB of it
  Result r = Sh(d.path, "env TMPDIR=" + d.path + "/tmp M64_TEST_ENOSPC_AFTER=300000 LD_PRELOAD=" +
                            M64_ENOSPC_SHIM + " " + kC + " build " + kArt + "/tiny.gguf -o " + d.path +
                            "/out.m64 --no-aot -q");
  EXPECT_TRUE(r.exited(1)) << r.err;
  EXPECT_NE(r.err.find("disk full"), std::string::npos) << r.err;
  Result ls = Sh(d.path, "sh -c 'ls -A tmp; ls -A . | grep -vx -e .out -e .err -e tmp; true'");
  EXPECT_EQ(ls.out, "") << "left behind";
}

// ---------------------------------------------------------------- reproducibility
// Two builds by the same user (the same key: the mark is an HMAC, deterministic), native
// code and its mark included.
TEST(Reproducible, SameGgufOptionsAndKeyGiveTheSameBytes) {
  const std::string a = ReadFile(kArt + "/tiny_a.m64"), b = ReadFile(kArt + "/tiny_b.m64");
  ASSERT_GT(a.size(), 0u);
  int marked = 0;
  ASSERT_EQ(CountNative(kArt + "/tiny_a.m64", &marked), 1);
  ASSERT_EQ(marked, 1) << "the comparison covers marked native code";
  ASSERT_EQ(a.size(), b.size());
  size_t first = 0;
  while (first < a.size() && a[first] == b[first]) first++;
  EXPECT_EQ(first, a.size()) << "the two builds differ first at byte " << first;
}

// Two users building the same GGUF get bundles that differ only in the mark on the native
// code and the hashes over it (the NATIVE section's and the header's): so a shipped bundle
// can still be checked against one's own build, mark aside (SECURITY.md).
TEST(Reproducible, AnotherUsersBuildDiffersOnlyInTheMark) {
  const std::string a = ReadFile(kArt + "/tiny_a.m64"), o = ReadFile(kArt + "/tiny_other.m64");
  ASSERT_EQ(a.size(), o.size());
  uint64_t at = 0, size = 0;
  FindNative(a, &at, &size);
  m64_bundle *mb = nullptr;
  m64_err e{};
  ASSERT_EQ(m64_bundle_open_memory(a.data(), a.size(), &mb, &e), 0) << e.msg;
  uint64_t record = 0;
  for (uint32_t i = 0; i < m64_bundle_n_sections(mb); i++)
    if (m64_bundle_section_at(mb, i)->kind == M64_SEC_NATIVE) record = BH_SIZE + (uint64_t)i * SR_SIZE + SR_SHA256;
  m64_bundle_close(mb);
  const struct { uint64_t lo, hi; } allowed[] = {
      {at + size - M64_NATIVE_MARK_BYTES, at + size}, {record, record + 32}, {BH_SHA256, BH_SHA256 + 32}};
  size_t differ = 0;
  for (size_t i = 0; i < a.size(); i++) {
    if (a[i] == o[i]) continue;
    differ++;
    bool ok = false;
    for (const auto &r : allowed) ok |= i >= r.lo && i < r.hi;
    ASSERT_TRUE(ok) << "byte " << i << " differs outside the mark and the hashes over it";
  }
  EXPECT_GT(differ, 0u) << "the two keys gave the same mark";
}

// ---------------------------------------------------------------- integrity
struct GenResult {
  int rc;
  std::string msg;
  std::vector<int32_t> tokens;
};

GenResult Generate(const std::string &path, int page_mode) {
  GenResult out{};
  m64_session_options o{};
  o.verify_layers = 1;
  o.page_mode = page_mode;
  o.no_prefetch = 1;
  o.n_threads = 1;
  o.n_ctx = 64;
  m64_session *s = nullptr;
  m64_err e{};
  int32_t *ids = nullptr;
  uint32_t n = 0;
  out.rc = m64_session_open(path.c_str(), &o, &s, &e);
  if (!out.rc) out.rc = m64_session_tokenize(s, "hello", 5, 1, &ids, &n, &e);
  if (!out.rc) out.rc = m64_session_eval_batch(s, ids, n, 0, nullptr, &e);
  for (uint32_t pos = n; !out.rc && pos < n + 4; pos++) {
    int32_t id;
    out.rc = m64_session_sample(s, 0.0f, 1, 1.0f, &id, &e);
    if (!out.rc) out.tokens.push_back(id);
    if (!out.rc) out.rc = m64_session_eval(s, id, pos, nullptr, &e);
  }
  free(ids);
  m64_session_close(s);
  out.msg = e.msg;
  return out;
}

TEST(Integrity, AFlippedByteIsNamedOrChangesNothing) {
  TempDir d;
  const std::string orig = ReadFile(kArt + "/tiny_a.m64");
  const GenResult base = Generate(kArt + "/tiny_a.m64", 1);
  ASSERT_EQ(base.rc, 0) << base.msg;
  ASSERT_EQ(base.tokens.size(), 4u);

  // what each byte belongs to: header/table, a section, or a layer of the image
  m64_bundle *b = nullptr;
  m64_err e{};
  ASSERT_EQ(m64_bundle_open_memory(orig.data(), orig.size(), &b, &e), 0) << e.msg;
  struct Range { uint64_t lo, hi; std::string name; };
  std::vector<Range> ranges;
  const uint64_t table_end = BH_SIZE + (uint64_t)m64_bundle_n_sections(b) * SR_SIZE;
  ranges.push_back({0, table_end, "header"});
  for (uint32_t i = 0; i < m64_bundle_n_sections(b); i++) {
    const m64_section *s = m64_bundle_section_at(b, i);
    if (s->kind != M64_SEC_SEGMENT && s->size) ranges.push_back({s->offset, s->offset + s->size, s->name});
  }
  for (uint32_t i = 0; i < m64_bundle_n_layers(b); i++) {
    const m64_layer_entry *l = m64_bundle_layer(b, i);
    const uint64_t at = (uint64_t)(m64_bundle_layer_data(b, i) - (const uint8_t *)orig.data());
    ranges.push_back({at, at + l->size, l->name});
  }
  m64_bundle_close(b);
  std::vector<uint64_t> spots;
  for (const Range &r : ranges) {
    spots.push_back(r.lo);
    spots.push_back(r.lo + (r.hi - r.lo) / 2);
    spots.push_back(r.hi - 1);
  }
  uint64_t x = 88172645463325252ull; // plus bytes anywhere, padding included
  for (int i = 0; i < 40; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    spots.push_back(x % orig.size());
  }

  const std::string path = d.path + "/flipped.m64";
  int named = 0, harmless = 0;
  for (size_t k = 0; k < spots.size(); k++) {
    const uint64_t at = spots[k];
    std::string f = orig;
    f[at] = (char)(f[at] ^ 0x10);
    WriteFile(path, f);
    const Range *owner = nullptr;
    for (const Range &r : ranges)
      if (at >= r.lo && at < r.hi) owner = &r;
    static const int modes[] = {0, 1, 2, 4};  // copy, map, read and map-read paging in turn
    const GenResult got = Generate(path, modes[k % 4]);
    if (got.rc == 0) {
      EXPECT_EQ(got.tokens, base.tokens) << "a flipped byte at " << at << " changed the output silently";
      EXPECT_EQ(owner, nullptr) << "byte " << at << " of '" << (owner ? owner->name : "") << "' flipped unnoticed";
      harmless++;
      continue;
    }
    named++;
    if (owner && owner->name != "header")
      EXPECT_NE(got.msg.find("'" + owner->name + "'"), std::string::npos)
          << "byte " << at << " of '" << owner->name << "': " << got.msg;
    else
      EXPECT_FALSE(got.msg.empty()) << "byte " << at;
  }
  EXPECT_GT(named, (int)ranges.size() * 3 - 1);
  printf("flipped %zu bytes: %d named, %d in padding changed nothing\n", spots.size(), named, harmless);
}


// ---------------------------------------------------------------- signed bundles
// Every command here names its trust ring (M64_TRUST_DIR) and local key: never the user's.
std::string Ring(const std::string &dir) { return "M64_TRUST_DIR='" + dir + "' "; }
std::string Env(const std::string &ring) { return "env " + Key() + Ring(ring); }
const std::string kSigned = kArt + "/tiny_signed.m64";  // tiny_other.m64 (a stranger's build), signed
const std::string kPublisher = kArt + "/publisher";     // its publisher's key pair

std::string Fingerprint(const std::string &pubfile) {
  m64_pubkey k;
  m64_err e{};
  EXPECT_EQ(m64_sign_read_public(pubfile.c_str(), &k, &e), 0) << e.msg;
  char fp[M64_SIGN_FINGERPRINT_CHARS];
  m64_sign_fingerprint(k.key, fp);
  return fp;
}

// The signature as the C API sees it, against trust ring `ring`.
m64_sig_info Signature(const std::string &path, const std::string &ring) {
  m64_sig_info info{};
  m64_bundle *b = nullptr;
  m64_err e{};
  EXPECT_EQ(m64_bundle_open(path.c_str(), &b, &e), 0) << e.msg;
  if (b) m64_signature_check(b, ring.c_str(), &info);
  m64_bundle_close(b);
  return info;
}

int CountSignatures(const std::string &path) {
  m64_bundle *b = nullptr;
  m64_err e{};
  if (m64_bundle_open(path.c_str(), &b, &e)) return -1;
  int n = 0;
  for (uint32_t i = 0; i < m64_bundle_n_sections(b); i++) n += m64_bundle_section_at(b, i)->kind == M64_SEC_SIGNATURE;
  m64_bundle_close(b);
  return n;
}

// m64_session_open as a program would call it, with trust ring `ring`.
int OpenSession(const std::string &path, const std::string &ring, std::string *msg, int trust_native = 0) {
  m64_session_options o{};
  o.trust_dir = ring.c_str();
  o.trust_bundle_native = trust_native;
  m64_session *s = nullptr;
  m64_err e{};
  const int rc = m64_session_open(path.c_str(), &o, &s, &e);
  if (msg) *msg = e.msg;
  m64_session_close(s);
  return rc;
}

TEST(Signatures, KeygenSignVerifyRoundTrip) {
  TempDir d;
  const std::string ring = d.path + "/ring";
  Result r = Sh(d.path, kC + " keygen -o " + d.path + "/alice");
  ASSERT_TRUE(r.exited(0)) << r.err;
  struct stat st;
  ASSERT_EQ(stat((d.path + "/alice.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "the secret key is private";
  ASSERT_EQ(stat((d.path + "/alice.pub").c_str(), &st), 0);
  EXPECT_EQ(ReadFile(d.path + "/alice.pub").rfind("m64-ed25519 ", 0), 0u);
  const std::string key_before = ReadFile(d.path + "/alice.key");
  r = Sh(d.path, kC + " keygen -o " + d.path + "/alice");
  EXPECT_TRUE(r.exited(1)) << "keygen must never overwrite a key";
  EXPECT_EQ(ReadFile(d.path + "/alice.key"), key_before);

  const std::string path = d.path + "/model.m64";
  WriteFile(path, ReadFile(kArt + "/tiny_a.m64"));
  EXPECT_EQ(Signature(path, ring).status, M64_SIG_UNSIGNED);
  r = Sh(d.path, Env(ring) + kC + " sign " + path + " --key " + d.path + "/alice.key");
  ASSERT_TRUE(r.exited(0)) << r.err;
  const std::string fp = Fingerprint(d.path + "/alice.pub");
  EXPECT_NE(r.err.find(fp), std::string::npos) << r.err;
  EXPECT_EQ(CountSignatures(path), 1);
  m64_sig_info sig = Signature(path, ring);
  EXPECT_EQ(sig.status, M64_SIG_UNKNOWN_SIGNER) << sig.why; // valid, but nobody trusts alice yet
  EXPECT_EQ(std::string(sig.fingerprint), fp);
  r = Sh(d.path, Env(ring) + kC + " verify " + path);
  EXPECT_TRUE(r.exited(0)) << r.err;
  EXPECT_NE(r.out.find("signature: unknown signer " + fp), std::string::npos) << r.out;

  ASSERT_TRUE(Sh(d.path, Env(ring) + kC + " trust add " + d.path + "/alice.pub").exited(0));
  sig = Signature(path, ring);
  EXPECT_EQ(sig.status, M64_SIG_TRUSTED) << sig.why;
  EXPECT_STREQ(sig.signer, "alice");
  r = Sh(d.path, Env(ring) + kC + " verify " + path);
  EXPECT_TRUE(r.exited(0)) << r.err;
  EXPECT_NE(r.out.find("signature: valid, signer alice (" + fp + ")"), std::string::npos) << r.out;

  // signing again with another key replaces the signature: still one, now bob's
  ASSERT_TRUE(Sh(d.path, kC + " keygen -o " + d.path + "/bob").exited(0));
  const std::string size_before = std::to_string(ReadFile(path).size());
  r = Sh(d.path, Env(ring) + kC + " sign " + path + " --key " + d.path + "/bob.key -q");
  ASSERT_TRUE(r.exited(0)) << r.err;
  EXPECT_EQ(CountSignatures(path), 1);
  EXPECT_EQ(std::to_string(ReadFile(path).size()), size_before) << "re-signing reuses the signature's place";
  sig = Signature(path, ring);
  EXPECT_EQ(sig.status, M64_SIG_UNKNOWN_SIGNER);
  EXPECT_EQ(std::string(sig.fingerprint), Fingerprint(d.path + "/bob.pub"));
  // a signed bundle of one's own still runs as before (the local mark)
  EXPECT_TRUE(Sh(d.path, Env(ring) + kRun + " " + path + " -p hi -n 2").exited(0));
}

// A stranger's build (marked with their key, not ours), signed by its publisher: refused
// while the publisher is unknown here, run with no flag once their key is trusted.
TEST(Signatures, AStrangersSignedBundleRunsOnceItsSignerIsTrusted) {
  TempDir d;
  const std::string ring = d.path + "/ring", path = d.path + "/signed.m64";
  WriteFile(path, ReadFile(kSigned));
  const std::string fp = Fingerprint(kPublisher + ".pub");
  Result r = Sh(d.path, Env(ring) + kRun + " " + path + " -p hi -n 2");
  ExpectRefused(r, path, "it was not compiled here by you, and it is signed by " + fp + ", a key that is not in your trust ring");
  EXPECT_NE(r.err.find("`m64c trust add`"), std::string::npos) << r.err;
  std::string msg;
  EXPECT_EQ(OpenSession(path, ring, &msg), M64_EUNTRUSTED) << msg;

  r = Sh(d.path, Env(ring) + kC + " trust add " + kPublisher + ".pub");
  ASSERT_TRUE(r.exited(0)) << r.err;
  r = Sh(d.path, Env(ring) + kRun + " " + path + " -p hi -n 2 -v");
  EXPECT_TRUE(r.exited(0)) << r.err;
  EXPECT_EQ(r.out.rfind("hi", 0), 0u) << r.out;
  EXPECT_NE(r.err.find("signed by publisher (" + fp + "), whom you trust"), std::string::npos) << r.err;
  EXPECT_EQ(OpenSession(path, ring, &msg), 0) << msg; // the C API, trust_dir
  // the ring is where M64_TRUST_DIR says: with another (empty) one, refused again
  EXPECT_EQ(OpenSession(path, d.path + "/other-ring", &msg), M64_EUNTRUSTED) << msg;

  r = Sh(d.path, Env(ring) + kC + " trust remove publisher");
  ASSERT_TRUE(r.exited(0)) << r.err;
  ExpectRefused(Sh(d.path, Env(ring) + kRun + " " + path + " -p hi -n 2"), path, "not in your trust ring");
}

// Any byte the signature covers, changed after signing (and every SHA-256 over it made to
// match, as someone who meant it would): the signature fails and nothing runs, even with
// --trust-bundle-native.
TEST(Signatures, AChangeAnywhereCoveredInvalidatesTheSignature) {
  TempDir d;
  const std::string ring = d.path + "/ring", path = d.path + "/tampered.m64";
  ASSERT_TRUE(Sh(d.path, Env(ring) + kC + " trust add " + kPublisher + ".pub").exited(0));
  const std::string orig = ReadFile(kSigned);
  ASSERT_EQ(OpenSession(kSigned, ring, nullptr), 0) << "the untouched bundle runs";

  // A change is a function of the bytes; `reaches` when the bundle still parses, so that
  // only the signature can notice (others, reserved bytes, the reader may refuse first).
  struct Change { std::string what; bool reaches; std::function<void(std::string &)> apply; };
  auto flip = [](uint64_t at) { return [at](std::string &f) { f[at] ^= 0x20; }; };
  std::vector<Change> changes = {{"header reserved bytes", false, flip(BH_RESERVED1 + 3)}};
  m64_bundle *b = nullptr;
  m64_err e{};
  ASSERT_EQ(m64_bundle_open_memory(orig.data(), orig.size(), &b, &e), 0) << e.msg;
  uint64_t index_at = 0;
  for (uint32_t i = 0; i < m64_bundle_n_sections(b); i++) {
    const m64_section *s = m64_bundle_section_at(b, i);
    const uint64_t rec = BH_SIZE + (uint64_t)i * SR_SIZE;
    changes.push_back({std::string("reserved bytes of the record of ") + s->name, false, flip(rec + SR_SIZE - 3)});
    if (s->kind == M64_SEC_LAYER_INDEX) index_at = s->offset;
    if (s->kind == M64_SEC_NATIVE) {
      changes.push_back({"the native section's name in the table", true, flip(rec + SR_NAME + 1)});
      changes.push_back({"the native code", true, flip(s->offset + s->size / 2)});
    }
    if (s->kind == M64_SEC_MODULE_WASM) changes.push_back({"the wasm module", true, flip(s->offset + s->size / 2)});
    if (s->kind == M64_SEC_TOKENIZER) changes.push_back({"the tokenizer", true, flip(s->offset + s->size / 2)});
    if (s->kind == M64_SEC_METADATA) changes.push_back({"the metadata", false, flip(s->offset + 3)});
    if (s->kind == M64_SEC_SIGNATURE) {
      changes.push_back({"the signer's key", true, flip(s->offset + 16 + 5)});
      changes.push_back({"the signature", true, flip(s->offset + 48 + 20)});
    }
  }
  // the table in another order: every record as it was
  changes.push_back({"two records swapped in the table", true, [](std::string &f) {
                       std::swap_ranges(f.begin() + BH_SIZE, f.begin() + BH_SIZE + SR_SIZE, f.begin() + BH_SIZE + SR_SIZE);
                     }});
  for (uint32_t l = 0; l < m64_bundle_n_layers(b); l++)
    changes.push_back({std::string("the hash of layer ") + m64_bundle_layer(b, l)->name, true,
                       flip(index_at + LI_HEADER_SIZE + (uint64_t)l * LR_SIZE + LR_SHA256 + 7)});
  m64_bundle_close(b);
  ASSERT_GT(index_at, 0u);

  int reached = 0;
  for (size_t k = 0; k < changes.size(); k++) {
    std::string f = orig;
    changes[k].apply(f);
    RehashSections(f); // every section hash and the header hash match the change
    WriteFile(path, f);
    std::string msg;
    const int rc = OpenSession(path, ring, &msg, (int)(k % 2)); // with --trust-bundle-native every other time
    EXPECT_NE(rc, 0) << changes[k].what << " ran";
    const bool parses = m64_bundle_open(path.c_str(), &b, &e) == 0;
    m64_bundle_close(b);
    if (changes[k].reaches) {
      EXPECT_TRUE(parses) << changes[k].what << ": " << e.msg;
    }
    if (!parses) continue;
    reached++;
    EXPECT_EQ(rc, M64_EUNTRUSTED) << changes[k].what << ": " << msg;
    EXPECT_NE(msg.find("the bundle's signature is invalid"), std::string::npos) << changes[k].what << ": " << msg;
    EXPECT_EQ(Signature(path, ring).status, M64_SIG_INVALID) << changes[k].what;
  }
  EXPECT_GE(reached, 9);
  // through the commands, for one of them: m64run refuses, verify fails, info says so
  std::string f = orig;
  changes.back().apply(f); // a layer's hash
  RehashSections(f);
  WriteFile(path, f);
  Result r = Sh(d.path, Env(ring) + kRun + " " + path + " -p hi -n 2 --trust-bundle-native");
  EXPECT_TRUE(r.exited(1)) << r.err;
  EXPECT_EQ(r.err.rfind("m64run: error: the bundle's signature is invalid: ", 0), 0u) << r.err;
  EXPECT_EQ(r.out, "") << "nothing ran";
  r = Sh(d.path, Env(ring) + kC + " verify " + path);
  EXPECT_TRUE(r.exited(1)) << r.out;
  EXPECT_NE(r.err.find("the signature is invalid"), std::string::npos) << r.err;
  r = Sh(d.path, Env(ring) + kC + " info " + path);
  EXPECT_NE(r.out.find("\nsignature: invalid (signer " + Fingerprint(kPublisher + ".pub") + "): "), std::string::npos)
      << r.out;
  // and a plain flip (hashes not fixed) is refused too, by the hash that no longer matches
  f = orig;
  f[orig.size() - 10] ^= 0x01; // inside the signature section, the file's last bytes
  WriteFile(path, f);
  EXPECT_NE(OpenSession(path, ring, nullptr), 0);
}

TEST(Signatures, TrustAddListRemove) {
  TempDir d;
  const std::string ring = d.path + "/cfg/m64/trusted", env = Env(ring);
  Result r = Sh(d.path, env + kC + " trust list");
  EXPECT_TRUE(r.exited(0)) << r.err;
  EXPECT_NE(r.out.find("no trusted keys"), std::string::npos) << r.out;
  const std::string fp = Fingerprint(kPublisher + ".pub");
  r = Sh(d.path, env + kC + " trust add " + kPublisher + ".pub");
  ASSERT_TRUE(r.exited(0)) << r.err;
  struct stat st;
  ASSERT_EQ(stat(ring.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u) << "the ring's directory is private";
  r = Sh(d.path, env + kC + " trust list");
  EXPECT_NE(r.out.find("publisher"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(fp), std::string::npos) << r.out;
  r = Sh(d.path, env + kC + " trust add " + kPublisher + ".pub");
  EXPECT_TRUE(r.exited(0)) << r.err;
  EXPECT_NE(r.out.find("already trusted"), std::string::npos) << r.out;
  // another key under a name already taken: refused; under its own name: added
  ASSERT_TRUE(Sh(d.path, kC + " keygen -o " + d.path + "/publisher").exited(0));
  r = Sh(d.path, env + kC + " trust add " + d.path + "/publisher.pub");
  EXPECT_TRUE(r.exited(1)) << r.out;
  EXPECT_NE(r.err.find("already trusted as 'publisher'"), std::string::npos) << r.err;
  r = Sh(d.path, env + kC + " trust add " + d.path + "/publisher.pub --name carol");
  EXPECT_TRUE(r.exited(0)) << r.err;
  const std::string fp2 = Fingerprint(d.path + "/publisher.pub");
  // the C API finds each by its key
  m64_pubkey k;
  m64_err e{};
  char name[M64_SIGN_NAME_MAX];
  ASSERT_EQ(m64_sign_read_public((d.path + "/publisher.pub").c_str(), &k, &e), 0);
  EXPECT_EQ(m64_trust_find(ring.c_str(), k.key, name, sizeof name, &e), 0) << e.msg;
  EXPECT_STREQ(name, "carol");
  // removed by fingerprint, by name, by .pub file
  EXPECT_TRUE(Sh(d.path, env + kC + " trust remove " + fp2).exited(0));
  EXPECT_EQ(m64_trust_find(ring.c_str(), k.key, name, sizeof name, &e), M64_ENOTFOUND);
  r = Sh(d.path, env + kC + " trust remove " + kPublisher + ".pub");
  EXPECT_TRUE(r.exited(0)) << r.err;
  r = Sh(d.path, env + kC + " trust list");
  EXPECT_NE(r.out.find("no trusted keys"), std::string::npos) << r.out;
  r = Sh(d.path, env + kC + " trust remove publisher");
  EXPECT_TRUE(r.exited(1));
  EXPECT_NE(r.err.find("not in your trust ring"), std::string::npos) << r.err;
}

// A secret key others can read signs nothing; a ring others can write trusts nothing.
TEST(Signatures, KeyFilesWithBadPermissionsAreRefused) {
  TempDir d;
  const std::string ring = d.path + "/ring", path = d.path + "/model.m64";
  WriteFile(path, ReadFile(kArt + "/tiny_a.m64"));
  ASSERT_TRUE(Sh(d.path, kC + " keygen -o " + d.path + "/k").exited(0));
  chmod((d.path + "/k.key").c_str(), 0640);
  Result r = Sh(d.path, Env(ring) + kC + " sign " + path + " --key " + d.path + "/k.key");
  EXPECT_TRUE(r.exited(1));
  EXPECT_NE(r.err.find("chmod 600"), std::string::npos) << r.err;
  EXPECT_EQ(CountSignatures(path), 0) << "nothing was signed";
  // --key is checked before the work, not after it
  r = Sh(d.path, Env(ring) + kC + " aot " + path + " -q --key " + d.path + "/k.key");
  EXPECT_TRUE(r.exited(1));
  EXPECT_NE(r.err.find("chmod 600"), std::string::npos) << r.err;
  chmod((d.path + "/k.key").c_str(), 0600);

  const std::string signed_path = d.path + "/signed.m64";
  WriteFile(signed_path, ReadFile(kSigned));
  ASSERT_TRUE(Sh(d.path, Env(ring) + kC + " trust add " + kPublisher + ".pub").exited(0));
  ASSERT_EQ(OpenSession(signed_path, ring, nullptr), 0);
  // a key file in the ring that others can write: ignored, and the refusal says why
  chmod((ring + "/publisher.pub").c_str(), 0666);
  r = Sh(d.path, Env(ring) + kRun + " " + signed_path + " -p hi -n 2");
  ExpectRefused(r, signed_path, "a key that is in your trust ring only as publisher.pub, which is ignored: others can write it");
  r = Sh(d.path, Env(ring) + kC + " trust list");
  EXPECT_NE(r.out.find("IGNORED: others can write it"), std::string::npos) << r.out;
  chmod((ring + "/publisher.pub").c_str(), 0644);
  ASSERT_EQ(OpenSession(signed_path, ring, nullptr), 0);
  // a ring directory others can write: none of its keys count
  chmod(ring.c_str(), 0777);
  std::string msg;
  EXPECT_EQ(OpenSession(signed_path, ring, &msg), M64_EUNTRUSTED);
  EXPECT_NE(msg.find("others can write your trust ring"), std::string::npos) << msg;
  r = Sh(d.path, Env(ring) + kC + " trust add " + d.path + "/k.pub");
  EXPECT_TRUE(r.exited(1)) << "nothing is added to a ring others can write";
  chmod(ring.c_str(), 0700);
  EXPECT_EQ(OpenSession(signed_path, ring, nullptr), 0);
}

TEST(Signatures, InfoShowsSignerAndStatus) {
  TempDir d;
  const std::string ring = d.path + "/ring", fp = Fingerprint(kPublisher + ".pub");
  Result r = Sh(d.path, Env(ring) + kC + " info " + kArt + "/tiny_a.m64");
  EXPECT_NE(r.out.find("\nsignature: unsigned\n"), std::string::npos) << r.out;
  r = Sh(d.path, Env(ring) + kC + " info " + kSigned);
  EXPECT_TRUE(r.exited(0)) << r.err;
  EXPECT_NE(r.out.find("\nsignature: unknown signer " + fp + ": the signature is valid, by a key that is not in your trust ring (" + ring + ")"),
            std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  signature    signature "), std::string::npos) << "the section is listed:\n" << r.out;
  EXPECT_NE(r.out.find("marked with another key"), std::string::npos) << r.out;
  ASSERT_TRUE(Sh(d.path, Env(ring) + kC + " trust add " + kPublisher + ".pub").exited(0));
  r = Sh(d.path, Env(ring) + kC + " info " + kSigned);
  EXPECT_NE(r.out.find("\nsignature: valid, signer publisher (" + fp + "), in your trust ring"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("signed by a key you trust (m64run runs it)"), std::string::npos) << r.out;
}

// Changing a signed bundle drops its signature, saying so, or signs it again with --key;
// decompressing what was compressed and signed again gives back the signed original.
TEST(Signatures, AotAndCompressDropTheSignatureOrSignAgain) {
  TempDir d;
  const std::string ring = d.path + "/ring";
  const std::string a = d.path + "/a.m64", c = d.path + "/c.m64", u = d.path + "/u.m64";
  WriteFile(a, ReadFile(kSigned));
  Result r = Sh(d.path, Env(ring) + kC + " compress " + a + " -o " + c + " -q");
  ASSERT_TRUE(r.exited(0)) << r.err;
  EXPECT_NE(r.err.find("the signature by " + Fingerprint(kPublisher + ".pub") + " was dropped"), std::string::npos)
      << r.err;
  EXPECT_EQ(CountSignatures(c), 0);
  r = Sh(d.path, Env(ring) + kC + " compress " + a + " -o " + c + " -q --key " + kPublisher + ".key");
  ASSERT_TRUE(r.exited(0)) << r.err;
  EXPECT_EQ(Signature(c, ring).status, M64_SIG_UNKNOWN_SIGNER) << Signature(c, ring).why;
  r = Sh(d.path, Env(ring) + kC + " decompress " + c + " -o " + u + " -q --key " + kPublisher + ".key");
  ASSERT_TRUE(r.exited(0)) << r.err;
  EXPECT_TRUE(ReadFile(u) == ReadFile(kSigned)) << "decompress + sign gives the signed original, byte for byte";
  // a compressed signed bundle runs for whoever trusts its signer, as an uncompressed one
  ASSERT_TRUE(Sh(d.path, Env(ring) + kC + " trust add " + kPublisher + ".pub").exited(0));
  std::string msg;
  EXPECT_EQ(OpenSession(c, ring, &msg), 0) << msg;
  // aot replaces the code the signature vouched for: the signature goes, the mark comes
  r = Sh(d.path, Env(ring) + kC + " aot " + a + " -q");
  ASSERT_TRUE(r.exited(0)) << r.err;
  EXPECT_NE(r.err.find("was dropped"), std::string::npos) << r.err;
  EXPECT_EQ(CountSignatures(a), 0);
  EXPECT_EQ(OpenSession(a, d.path + "/empty-ring", &msg), 0) << msg;
}

}  // namespace
