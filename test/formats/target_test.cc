// target_test.cc — native code target names (formats/common/target.c): the host's own
// target runs here, every lower x86-64 level does, and the VNNI level is chosen exactly
// when the CPU has what its AOT flags (-march=x86-64-v4 -mavx512vnni) let clang use.
#include <gtest/gtest.h>

#include <cstring>

#include "m64_formats.h"

namespace {

TEST(Targets, TheHostRunsItsOwnTarget) {
  EXPECT_TRUE(m64_target_runnable(m64_host_target())) << m64_host_target();
  EXPECT_FALSE(m64_target_runnable("no-such-target"));
  EXPECT_FALSE(m64_target_runnable(""));
}

#if defined(__x86_64__) && defined(__linux__)
TEST(Targets, X86LevelsFollowTheCpu) {
  __builtin_cpu_init();
  const bool v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2");
  const bool vnni = v3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                    __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                    __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512vnni");
  const char *host = m64_host_target();
  if (vnni) {
    EXPECT_STREQ(host, "x86_64-v4vnni-linux");
  } else if (v3) {
    EXPECT_STREQ(host, "x86_64-v3-linux");
  }
  EXPECT_TRUE(m64_target_runnable("x86_64-linux"));
  EXPECT_EQ(m64_target_runnable("x86_64-v3-linux"), v3);
  EXPECT_EQ(m64_target_runnable("x86_64-v4vnni-linux"), vnni);
  // a VNNI host still runs bundles whose code was compiled for v3 elsewhere
  if (vnni) {
    EXPECT_TRUE(m64_target_runnable("x86_64-v3-linux"));
  }
}
#endif

}  // namespace
