// targets_test — native code for several targets in one bundle (m64c build --target LIST):
//   m64run (m64_session_open) runs the best target this CPU runs, whatever the order in the
//   bundle; a bundle with no code for this CPU fails with a message saying what to run;
//   m64c info lists every target and whether this host runs it.
// The bundles come from build_bundles.sh (ctest fixture targets_bundles).
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include "compiler_internal.h" /* m64c_copy_layers */
#include "m64_formats.h"
#include "m64_runtime.h"
}

namespace {

const std::string kDir = M64_TARGETS_BUNDLES;
const std::string kBin = M64_BINARY_DIR;

bool HaveAarch64() { return access((kDir + "/no-aarch64").c_str(), F_OK) != 0; }

// The target m64_session_open loads for a bundle, or "error: <message>".
std::string Picked(const std::string &name, int *rc_out = nullptr) {
  m64_session_options o{};
  o.no_prefetch = 1;
  m64_session *s = nullptr;
  m64_err e{};
  const int rc = m64_session_open((kDir + "/" + name).c_str(), &o, &s, &e);
  if (rc_out) *rc_out = rc;
  if (rc) return std::string("error: ") + e.msg;
  std::string t = m64_session_native_target(s);
  m64_session_close(s);
  return t;
}

// What a host of this CPU should pick out of {v4vnni, v3}: the better one it runs.
std::string BestX86() {
  return m64_target_runnable("x86_64-v4vnni-linux") ? "x86_64-v4vnni-linux" : "x86_64-v3-linux";
}

std::string Shell(const std::string &cmd, int *status) {
  std::string out;
  FILE *p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  *status = pclose(p);
  return out;
}


// Copies bundle `from` to `to` with the local mark of the NATIVE sections named in `spoil`
// changed (as code marked by another key would be): m64run must refuse those.
bool SpoilMarks(const std::string &from, const std::string &to, const std::vector<std::string> &spoil) {
  m64_bundle *b = nullptr;
  m64_bundle_writer *bw = nullptr;
  m64_err e{};
  if (m64_bundle_open(from.c_str(), &b, &e) || m64_bw_open(to.c_str(), &bw, &e)) {
    ADD_FAILURE() << e.msg;
    m64_bundle_close(b);
    return false;
  }
  int rc = 0;
  for (uint32_t i = 0; i < m64_bundle_n_sections(b) && !rc; i++) {
    const m64_section *s = m64_bundle_section_at(b, i);
    if (s->kind == M64_SEC_SEGMENT || s->kind == M64_SEC_LAYER_INDEX) continue;
    std::vector<uint8_t> bytes(s->data, s->data + s->size);
    for (const std::string &t : spoil)
      if (s->kind == M64_SEC_NATIVE && t == s->name) bytes.back() ^= 1; /* the mark's last byte */
    rc = m64_bw_add_section(bw, s->kind, s->name, bytes.data(), bytes.size(), &e);
  }
  if (!rc) rc = m64c_copy_layers(b, bw, 0, &e);
  if (!rc) rc = m64_bw_commit(bw, &e);
  else m64_bw_abort(bw);
  m64_bundle_close(b);
  EXPECT_EQ(rc, 0) << e.msg;
  return rc == 0;
}

#if defined(__x86_64__)
TEST(Targets, PicksTheBestTargetThisCpuRuns) {
  if (!m64_target_runnable("x86_64-v3-linux")) GTEST_SKIP() << "this CPU runs neither v3 nor v4vnni code";
  EXPECT_EQ(Picked("three.m64"), BestX86());
  EXPECT_EQ(Picked("three-rev.m64"), BestX86()) << "the pick must not depend on the sections' order";
  EXPECT_EQ(Picked("v3.m64"), "x86_64-v3-linux") << "v3 beats the baseline";
}

TEST(Targets, ARefusedTargetGivesWayToTheNextBest) {
  if (!m64_target_runnable("x86_64-v4vnni-linux")) GTEST_SKIP() << "needs a CPU that runs v4vnni and v3 code";
  const std::string d = kDir + "/spoiled-" + std::to_string(getpid());
  ASSERT_EQ(system(("mkdir -p " + d).c_str()), 0);
  ASSERT_TRUE(SpoilMarks(kDir + "/three.m64", d + "/best-spoiled.m64", {"x86_64-v4vnni-linux"}));
  ASSERT_TRUE(SpoilMarks(kDir + "/three.m64", d + "/all-spoiled.m64", {"x86_64-v4vnni-linux", "x86_64-v3-linux"}));
  m64_session_options o{};
  o.no_prefetch = 1;
  m64_session *s = nullptr;
  m64_err e{};
  ASSERT_EQ(m64_session_open((d + "/best-spoiled.m64").c_str(), &o, &s, &e), 0) << e.msg;
  EXPECT_STREQ(m64_session_native_target(s), "x86_64-v3-linux");
  m64_session_close(s);
  s = nullptr;
  // none accepted: the refusal names the best target and why
  EXPECT_EQ(m64_session_open((d + "/all-spoiled.m64").c_str(), &o, &s, &e), M64_EUNTRUSTED);
  EXPECT_NE(strstr(e.msg, "native code for x86_64-v4vnni-linux"), nullptr) << e.msg;
  EXPECT_NE(strstr(e.msg, "another key"), nullptr) << e.msg;
  EXPECT_NE(strstr(e.msg, "m64c aot"), nullptr) << e.msg;
  m64_session_close(s);
  (void)!system(("rm -rf " + d).c_str());
}

TEST(Targets, NoCodeForThisCpuSaysWhatToRun) {
  if (!HaveAarch64()) GTEST_SKIP() << "no arm64 C headers: no aarch64-only bundle to test with";
  int rc = 0;
  const std::string got = Picked("arm.m64", &rc);
  EXPECT_EQ(rc, M64_EUNSUPPORTED) << got;
  EXPECT_NE(got.find("no native code this CPU runs"), std::string::npos) << got;
  EXPECT_NE(got.find(m64_host_target()), std::string::npos) << got;
  EXPECT_NE(got.find("the bundle has aarch64-linux"), std::string::npos) << got;
  EXPECT_NE(got.find("m64c aot " + kDir + "/arm.m64"), std::string::npos) << got;

  // the command line: one error line, exit 1
  int status = 0;
  const std::string out = Shell(kBin + "/cmd/m64run " + kDir + "/arm.m64 -p hi -n 1", &status);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << out;
  EXPECT_NE(out.find("m64run: error: the bundle has no native code this CPU runs"), std::string::npos) << out;
}
#endif

TEST(Targets, InfoListsEveryTargetAndWhetherThisHostRunsIt) {
  int status = 0;
  const std::string out = Shell(kBin + "/cmd/m64c info " + kDir + "/three.m64", &status);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  const size_t at = out.find("native targets:");
  ASSERT_NE(at, std::string::npos) << out;
  const std::string list = out.substr(at);
  std::vector<std::string> names = {"x86_64-v4vnni-linux", "x86_64-v3-linux"};
  if (HaveAarch64()) names.push_back("aarch64-linux");
  for (const std::string &t : names) {
    const size_t line = list.find("\n  " + t + " ");
    ASSERT_NE(line, std::string::npos) << t << " missing from:\n" << list;
    const std::string text = list.substr(line + 1, list.find('\n', line + 1) - line - 1);
    EXPECT_EQ(text.find(", runs on this host") != std::string::npos, m64_target_runnable(t.c_str()) != 0) << text;
    EXPECT_EQ(text.find("does not run on this host") != std::string::npos, m64_target_runnable(t.c_str()) == 0) << text;
#if defined(__x86_64__)
    EXPECT_EQ(text.find("m64run's pick") != std::string::npos, t == BestX86()) << text;
#endif
    EXPECT_NE(text.find("built from this module"), std::string::npos) << text;
    EXPECT_NE(text.find("marked here"), std::string::npos) << text;
  }
}

}  // namespace
