// target_test.cc — native code target names (formats/common/target.c): the host's own
// target runs here, every lower x86-64 level does, and the VNNI level is chosen exactly
// when the CPU has what its AOT flags (-march=x86-64-v4 -mavx512vnni) let clang use.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <vector>

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

// Which stored target m64run picks on a CPU: rank_on is 0 when that CPU cannot run the code,
// otherwise higher for the faster target of the same architecture.
namespace {

TEST(Targets, RankOnOrdersX86LevelsAndKeepsArchitecturesApart) {
  const char *x86[] = {"x86_64-linux", "x86_64-v2-linux", "x86_64-v3-linux", "x86_64-v4vnni-linux"};
  for (int h = 0; h < 4; h++)
    for (int t = 0; t < 4; t++) {
      const int r = m64_target_rank_on(x86[t], x86[h]);
      if (t > h) {
        EXPECT_EQ(r, 0) << x86[t] << " on " << x86[h];
      } else {
        EXPECT_GT(r, 0) << x86[t] << " on " << x86[h];
      }
      if (t > 0 && t <= h) {
        EXPECT_GT(r, m64_target_rank_on(x86[t - 1], x86[h])) << x86[t];
      }
    }
  EXPECT_EQ(m64_target_rank_on("aarch64-linux", "x86_64-v4vnni-linux"), 0);
  EXPECT_EQ(m64_target_rank_on("x86_64-linux", "aarch64-linux"), 0);
  EXPECT_GT(m64_target_rank_on("aarch64-linux", "aarch64-linux"), 0);
  EXPECT_EQ(m64_target_rank_on("aarch64-linux", "unknown"), 0);
  EXPECT_EQ(m64_target_rank_on("x86_64-v3-linux-extra", "x86_64-v4vnni-linux"), 0);
  EXPECT_EQ(m64_target_rank_on(nullptr, "x86_64-v3-linux"), 0);
  for (const char *t : {"x86_64-linux", "x86_64-v2-linux", "x86_64-v3-linux", "x86_64-v4vnni-linux", "aarch64-linux"})
    EXPECT_TRUE(m64_target_known(t)) << t;
  EXPECT_FALSE(m64_target_known("aarch64"));
  EXPECT_FALSE(m64_target_known("x86_64-v4-linux"));
}

TEST(Targets, TheHostRanksItsOwnTargetBest) {
  const char *host = m64_host_target();
  const int own = m64_target_rank(host);
  ASSERT_GT(own, 0) << host;
  for (const char *t : {"x86_64-linux", "x86_64-v2-linux", "x86_64-v3-linux", "x86_64-v4vnni-linux", "aarch64-linux"})
    EXPECT_LE(m64_target_rank(t), own) << t;
}

// The NATIVE section's one writer and one parser (formats/bundle/native_section.c).
TEST(NativeSection, WriteParseAndMarkRoundTrip) {
  uint8_t sha[32], code[100];
  for (int i = 0; i < 32; i++) sha[i] = (uint8_t)(i * 7);
  for (int i = 0; i < 100; i++) code[i] = (uint8_t)(255 - i);
  uint8_t *sec = nullptr;
  size_t size = 0;
  m64_err e;
  ASSERT_EQ(m64_native_section_write(sha, code, sizeof code, &sec, &size, &e), 0) << e.msg;
  ASSERT_EQ(size, M64_NATIVE_HEADER_BYTES + sizeof code);
  EXPECT_EQ(memcmp(sec, M64_NATIVE_MAGIC, 8), 0);
  m64_native_section ns;
  ASSERT_EQ(m64_native_section_parse(sec, size, &ns, &e), 0) << e.msg;
  EXPECT_EQ(ns.code_size, sizeof code);
  EXPECT_EQ(memcmp(ns.code, code, sizeof code), 0);
  EXPECT_EQ(memcmp(ns.wasm_sha256, sha, 32), 0);
  EXPECT_EQ(ns.mark, nullptr);
  EXPECT_EQ(ns.flags, 0u);

  uint8_t *mark = nullptr;
  ASSERT_EQ(m64_native_section_reserve_mark(&sec, &size, &mark, &e), 0) << e.msg;
  ASSERT_EQ(size, M64_NATIVE_HEADER_BYTES + sizeof code + M64_NATIVE_MARK_BYTES);
  memset(mark, 0xab, M64_NATIVE_MARK_BYTES);
  ASSERT_EQ(m64_native_section_parse(sec, size, &ns, &e), 0) << e.msg;
  EXPECT_EQ(ns.flags, M64_NATIVE_FLAG_LOCAL_MARK);
  ASSERT_NE(ns.mark, nullptr);
  EXPECT_EQ(ns.mark[0], 0xab);
  EXPECT_EQ(ns.code_size, sizeof code);
  EXPECT_NE(m64_native_section_reserve_mark(&sec, &size, &mark, &e), 0) << "marked twice";
  free(sec);
}

TEST(NativeSection, ParseRefusesEveryBadHeaderField) {
  uint8_t sha[32] = {0}, code[40] = {1};
  uint8_t *sec = nullptr;
  size_t size = 0;
  m64_err e;
  ASSERT_EQ(m64_native_section_write(sha, code, sizeof code, &sec, &size, &e), 0);
  const std::vector<uint8_t> good(sec, sec + size);
  free(sec);
  m64_native_section ns;
  struct Case {
    const char *what;
    size_t at;
    uint8_t value;
  } cases[] = {{"magic", 3, 'x'},          {"header size", 8, 65},      {"unknown flag", 12, 2},
               {"mark flag without a mark", 12, 1}, {"reserved byte 56", 56, 1}, {"reserved byte 63", 63, 0x80},
               {"code size", 48, 39}};
  for (const Case &c : cases) {
    std::vector<uint8_t> b = good;
    b[c.at] = c.value;
    EXPECT_EQ(m64_native_section_parse(b.data(), b.size(), &ns, &e), M64_EFORMAT) << c.what;
  }
  EXPECT_EQ(m64_native_section_parse(good.data(), 63, &ns, &e), M64_EFORMAT) << "shorter than the header";
  EXPECT_NE(strstr(e.msg, "header"), nullptr) << e.msg;
  EXPECT_EQ(m64_native_section_parse(good.data(), good.size() - 1, &ns, &e), M64_EFORMAT) << "a byte short";
  EXPECT_EQ(m64_native_section_parse(good.data(), good.size(), &ns, &e), 0) << e.msg;
}

}  // namespace
