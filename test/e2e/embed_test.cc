// libm64 embedded in a host program (include/m64.h): two sessions in one process, each
// with its own workspace bound; the verify-stamp policy as a session option; the
// library's fault handler chaining to one the host installed first.
#include <gtest/gtest.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "m64.h"

#include "../support/run_cmd.h"

namespace {

using m64test::exists;

const std::string kOut = std::string(M64_BINARY_DIR) + "/test/e2e/bundles";

struct Session {
  m64_session *s = nullptr;
  m64_err e{};
  int rc = 0;
  Session(const std::string &path, uint64_t workspace, int verify = 1, int stamps = 0) {
    m64_session_options o{};
    o.workspace_bytes = workspace;
    o.verify_layers = verify;
    o.verify_stamps = stamps;
    o.n_threads = 1;
    rc = m64_session_open(path.c_str(), &o, &s, &e);
  }
  ~Session() { m64_session_close(s); }
  m64_session_stats stats() const {
    m64_session_stats st;
    m64_session_stats_get(s, &st);
    return st;
  }
};

// Greedy generation, one step at a time, so that two sessions can interleave.
struct Greedy {
  Session &s;
  uint32_t pos = 0;
  std::vector<int32_t> out;
  explicit Greedy(Session &session, const std::string &prompt) : s(session) {
    int32_t *ids;
    uint32_t n;
    EXPECT_EQ(m64_session_tokenize(s.s, prompt.data(), prompt.size(), M64_TOKENIZE_ADD_BOS, &ids, &n, &s.e), 0)
        << s.e.msg;
    EXPECT_EQ(m64_session_eval_batch(s.s, ids, n, 0, nullptr, &s.e), 0) << s.e.msg;
    free(ids);
    pos = n;
  }
  void step() {
    int32_t id;
    ASSERT_EQ(m64_session_sample(s.s, 0.0f, 0, 1.0f, &id, &s.e), 0) << s.e.msg;
    out.push_back(id);
    ASSERT_EQ(m64_session_eval(s.s, id, pos++, nullptr, &s.e), 0) << s.e.msg;
  }
};

// Each session keeps its own cap: opened at once on two threads, one paging through a
// small workspace and one holding the whole model, they compute the tokens a lone
// session computes, interleaved token by token.
TEST(Embed, TwoSessionsWithTheirOwnWorkspaceBoundsInOneProcess) {
  const std::string bundle = kOut + "/synth-8layer.m64";
  NEED_FILE(bundle);
  std::vector<int32_t> alone;
  uint64_t whole = 0;
  {
    Session s(bundle, 0);
    ASSERT_EQ(s.rc, 0) << s.e.msg;
    whole = s.stats().workspace_bytes;
    Greedy g(s, "one two three");
    for (int i = 0; i < 16; i++) g.step();
    alone = g.out;
  }
  // the smallest workspace (in 64 KiB steps) the library opens this bundle in: room for the run
  // state, the globals and one block slot, so that it pages
  uint64_t small = 0;
  for (uint64_t w = 1 << 20; w < (64u << 20) && !small; w += 65536) {
    Session probe(bundle, w);
    if (probe.rc == 0) small = w;
  }
  ASSERT_NE(small, 0u) << "no workspace up to 64 MiB opens it";
  for (int round = 0; round < 4; round++) {
    Session *a = nullptr, *b = nullptr;
    std::thread ta([&] { a = new Session(bundle, small); });
    std::thread tb([&] { b = new Session(bundle, 0); });
    ta.join();
    tb.join();
    ASSERT_EQ(a->rc, 0) << a->e.msg;
    ASSERT_EQ(b->rc, 0) << b->e.msg;
    const m64_session_stats sa = a->stats(), sb = b->stats();
    EXPECT_LE(sa.workspace_bytes, small) << "the small session's bound was overwritten";
    EXPECT_LT(sa.cache_slots, sa.layers) << "the small session pages";
    EXPECT_EQ(sb.workspace_bytes, whole) << "the large session's bound was overwritten";
    EXPECT_EQ(sb.cache_slots, sb.layers) << "every layer resident in the large one";
    Greedy ga(*a, "one two three"), gb(*b, "one two three");
    for (int i = 0; i < 16; i++) {
      ga.step();
      gb.step();
    }
    EXPECT_EQ(ga.out, alone);
    EXPECT_EQ(gb.out, alone);
    EXPECT_GT(a->stats().evictions, 0u);
    delete a;
    delete b;
  }
}

// The policy m64run used to apply itself: a session with verify_stamps records a file
// once it has hashed every layer, and the next session on the unchanged file hashes none.
TEST(Embed, VerifyStampPolicyIsASessionOption) {
  NEED_FILE(kOut + "/synth-F32.m64");
  char t[] = "/tmp/m64embed.XXXXXX";
  const std::string d = mkdtemp(t), bundle = d + "/v.m64";
  ASSERT_EQ(system(("cp " + kOut + "/synth-F32.m64 " + bundle).c_str()), 0);
  const char *old_cache = getenv("XDG_CACHE_HOME");
  const std::string saved = old_cache ? old_cache : "";
  setenv("XDG_CACHE_HOME", (d + "/cache").c_str(), 1);
  auto run = [&](int verify, int stamps, int *stamped, uint32_t *hashed, uint32_t *layers) {
    Session s(bundle, 0, verify, stamps);
    ASSERT_EQ(s.rc, 0) << s.e.msg;
    Greedy g(s, "one two");
    g.step();
    *stamped = m64_session_stamped(s.s);
    *hashed = s.stats().layers_verified;
    *layers = s.stats().layers;
  };
  int stamped;
  uint32_t hashed, layers;
  run(1, 0, &stamped, &hashed, &layers);  // no stamps: hashes, records nothing
  EXPECT_EQ(stamped, 0);
  EXPECT_EQ(hashed, layers);
  run(1, 1, &stamped, &hashed, &layers);  // hashes and records
  EXPECT_EQ(stamped, 2);
  EXPECT_EQ(hashed, layers);
  run(1, 1, &stamped, &hashed, &layers);  // spared
  EXPECT_EQ(stamped, 1);
  EXPECT_EQ(hashed, 0u);
  run(1, 0, &stamped, &hashed, &layers);  // --reverify: the stamp is not consulted
  EXPECT_EQ(stamped, 0);
  EXPECT_EQ(hashed, layers);
  struct timeval tv[2] = {{1000000000, 0}, {1000000000, 0}};  // the file changed: hashed again
  ASSERT_EQ(utimes(bundle.c_str(), tv), 0);
  run(1, 1, &stamped, &hashed, &layers);
  EXPECT_EQ(stamped, 2);
  EXPECT_EQ(hashed, layers);
  if (old_cache) setenv("XDG_CACHE_HOME", saved.c_str(), 1);
  else unsetenv("XDG_CACHE_HOME");
  ASSERT_EQ(system(("rm -rf " + d).c_str()), 0);
}

// A host's SIGSEGV handler installed before the first session still gets the faults
// that are not a module's: the library's handler passes them on (include/m64.h).
sigjmp_buf g_host_jmp;
volatile sig_atomic_t g_host_faults;
void host_handler(int, siginfo_t *, void *) {
  g_host_faults = g_host_faults + 1;
  siglongjmp(g_host_jmp, 1);
}

TEST(Embed, HostFaultHandlerInstalledFirstStillGetsItsFaults) {
  NEED_FILE(kOut + "/synth-F32.m64");
  // in a child, so that the handlers this test installs never outlive it
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    struct sigaction sa {};
    sa.sa_sigaction = host_handler;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, nullptr);
    Session s(kOut + "/synth-F32.m64", 0);  // installs the library's handler
    if (s.rc) _exit(2);
    Greedy g(s, "one");
    g.step();
    if (sigsetjmp(g_host_jmp, 1) == 0) {
      volatile uintptr_t bad = 16;  // a host bug, outside any workspace
      *(volatile int *)bad = 1;
      _exit(3);  // not reached
    }
    g.step();  // the session still works after the host's own fault was handled
    _exit(g_host_faults == 1 && g.out.size() == 2 ? 0 : 4);
  }
  int st;
  waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFEXITED(st)) << "signal " << WTERMSIG(st);
  EXPECT_EQ(WEXITSTATUS(st), 0);
}

// A long prompt (past the 64 KiB I/O buffer) takes a tokenizer buffer from the workspace,
// whose allocator never frees: a server tokenizing such prompts request after request
// reuses one buffer, so the workspace does not grow with the number of requests.
TEST(Embed, LongPromptsReuseOneTokenizerBuffer) {
  const std::string path = kOut + "/synth-F32.m64";
  NEED_FILE(path);
  Session s(path, 64ull << 20);
  ASSERT_EQ(s.rc, 0) << s.e.msg;
  std::string text;
  while (text.size() < 40000) text += "the quick brown fox jumps over the lazy dog ";
  uint64_t after_first = 0;
  for (int i = 0; i < 40; i++) {
    int32_t *ids = nullptr;
    uint32_t n = 0;
    ASSERT_EQ(m64_session_tokenize(s.s, text.data(), text.size() - (size_t)i, 0, &ids, &n, &s.e), 0) << s.e.msg;
    EXPECT_GT(n, 0u);
    free(ids);
    if (i == 0) after_first = s.stats().workspace_bytes;
  }
  EXPECT_EQ(s.stats().workspace_bytes, after_first) << "the workspace grew with every long prompt";
}

}  // namespace
