// targets_test.cc — `m64c build --target LIST` (compiler/build.c m64c_parse_targets): a
// comma-separated list of known targets, each once; anything else is refused before any
// work, naming the bad item.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

extern "C" {
#include "compiler_internal.h"
}

namespace {

TEST(TargetList, SplitsAKnownList) {
  char t[M64C_MAX_TARGETS][M64C_TARGET_NAME];
  int n = -1;
  m64_err e;
  ASSERT_EQ(m64c_parse_targets("x86_64-v4vnni-linux,x86_64-v3-linux,aarch64-linux", t, &n, &e), 0) << e.msg;
  ASSERT_EQ(n, 3);
  EXPECT_STREQ(t[0], "x86_64-v4vnni-linux");
  EXPECT_STREQ(t[1], "x86_64-v3-linux");
  EXPECT_STREQ(t[2], "aarch64-linux");
  ASSERT_EQ(m64c_parse_targets("aarch64-linux", t, &n, &e), 0) << e.msg;
  ASSERT_EQ(n, 1);
  EXPECT_STREQ(t[0], "aarch64-linux");
}

TEST(TargetList, NoListMeansThisHost) {
  char t[M64C_MAX_TARGETS][M64C_TARGET_NAME];
  int n = 0;
  m64_err e;
  ASSERT_EQ(m64c_parse_targets(nullptr, t, &n, &e), 0) << e.msg;
  ASSERT_EQ(n, 1);
  EXPECT_STREQ(t[0], m64c_host_target());
}

TEST(TargetList, RefusesBadListsNamingTheItem) {
  char t[M64C_MAX_TARGETS][M64C_TARGET_NAME];
  int n = 0;
  m64_err e;
  struct Case {
    const char *list, *says;
  } cases[] = {
      {"x86_64-v3-linux,x86_64-v3-linux", "twice"},
      {"x86_64-v3-linux,", "empty"},
      {",aarch64-linux", "empty"},
      {"x86_64-v3-linux,,aarch64-linux", "empty"},
      {"", "empty"},
      {"riscv64-linux", "riscv64-linux"},
      {"x86_64-v3-linux,arm64", "arm64"},
      {"x86_64-v3-linux x86_64-v2-linux", "x86_64-v3-linux x86_64-v2-linux"},
      {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "too long"},
      {"x86_64-linux,x86_64-v2-linux,x86_64-v3-linux,x86_64-v4vnni-linux,aarch64-linux,x86_64-linux,"
       "x86_64-linux,x86_64-linux,x86_64-linux",
       "twice"},
  };
  for (const Case &c : cases) {
    EXPECT_NE(m64c_parse_targets(c.list, t, &n, &e), 0) << c.list;
    EXPECT_NE(strstr(e.msg, c.says), nullptr) << c.list << ": " << e.msg;
  }
}

}  // namespace
