// m64c info's summary helpers and the progress bar of long writes (issue 23, item 6).
#include <gtest/gtest.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <string>

extern "C" {
#include "compiler_internal.h"
}

namespace {

TEST(InfoSummary, FileTypeNamesAreLlamaCpps) {
  EXPECT_STREQ(m64c_ftype_name(0), "F32");
  EXPECT_STREQ(m64c_ftype_name(1), "F16");
  EXPECT_STREQ(m64c_ftype_name(7), "Q8_0");
  EXPECT_STREQ(m64c_ftype_name(15), "Q4_K_M");
  EXPECT_STREQ(m64c_ftype_name(18), "Q6_K");
  EXPECT_STREQ(m64c_ftype_name(32), "BF16");
  EXPECT_EQ(m64c_ftype_name(4), nullptr);  // retired in llama.cpp
  EXPECT_EQ(m64c_ftype_name(1000), nullptr);
}

TEST(InfoSummary, SizesAndCountsInUnitsThatFit) {
  char b[32];
  m64c_size_text(512, b, sizeof b);
  EXPECT_STREQ(b, "512 bytes");
  m64c_size_text(1536, b, sizeof b);
  EXPECT_STREQ(b, "1.5 KiB");
  m64c_size_text(1572864, b, sizeof b);
  EXPECT_STREQ(b, "1.5 MiB");
  m64c_size_text(4100000000ull, b, sizeof b);
  EXPECT_STREQ(b, "3.82 GiB");
  m64c_count_text(292800, b, sizeof b);
  EXPECT_STREQ(b, "292.8K");
  m64c_count_text(7241732096ull, b, sizeof b);
  EXPECT_STREQ(b, "7.24B");
}

TEST(InfoSummary, WithoutAFileTypeTheMixIsNamedByItsLargestType) {
  m64c_summary s{};
  s.types[M64_GGML_F32] = {10, 1000, 0};
  s.types[M64_GGML_Q4_K] = {20, 90000, 0};
  s.types[M64_GGML_Q6_K] = {1, 20000, 0};
  m64c_summary_finish(&s);
  EXPECT_STREQ(s.file_type, "mostly Q4_K");
  snprintf(s.file_type, sizeof s.file_type, "Q4_K_M");  // a GGUF's general.file_type stays
  m64c_summary_finish(&s);
  EXPECT_STREQ(s.file_type, "Q4_K_M");
}

// Runs f with stderr sent to a file (not a tty); returns what was written there.
template <typename F>
std::string Stderr(F f) {
  char path[] = "/tmp/m64bar.XXXXXX";
  const int fd = mkstemp(path);
  fflush(stderr);
  const int saved = dup(2);
  dup2(fd, 2);
  f();
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  std::string out;
  FILE *r = fopen(path, "rb");
  char buf[4096];
  size_t n;
  while (r && (n = fread(buf, 1, sizeof buf, r)) > 0) out.append(buf, n);
  if (r) fclose(r);
  close(fd);
  unlink(path);
  return out;
}

TEST(ProgressBar, NotATtyALinePerQuarterOfLargeWorkOnly) {
  const uint64_t big = 1ull << 30, small = 10ull << 20;
  std::string out = Stderr([&] {
    m64c_bar bar;
    m64c_bar_init(&bar, 1);
    for (uint64_t d = 0; d <= big; d += 16ull << 20) m64c_bar_cb(&bar, "writing", d, big);
    for (uint64_t d = 0; d <= small; d += 1ull << 20) m64c_bar_cb(&bar, "hashing", d, small);
    m64c_bar_done(&bar);
  });
  EXPECT_EQ(out.find('\r'), std::string::npos) << out;
  for (const char *want : {"m64c: writing  25% (256.0 of 1024.0 MiB, ", "m64c: writing  50% (512.0 of 1024.0 MiB, ",
                           "m64c: writing  75% (768.0 of 1024.0 MiB, ", "m64c: writing 100% (1024.0 of 1024.0 MiB, "})
    EXPECT_NE(out.find(want), std::string::npos) << want << " in " << out;
  EXPECT_NE(out.find(" MiB/s)\n"), std::string::npos) << out;
  size_t lines = 0;
  for (char c : out) lines += c == '\n';
  EXPECT_EQ(lines, 4u) << out;  // nothing for the small hashing
  EXPECT_EQ(out.find("hashing"), std::string::npos) << out;
  // -q: nothing at all
  out = Stderr([&] {
    m64c_bar bar;
    m64c_bar_init(&bar, 0);
    for (uint64_t d = 0; d <= big; d += 16ull << 20) m64c_bar_cb(&bar, "writing", d, big);
    m64c_bar_done(&bar);
  });
  EXPECT_EQ(out, "");
}

}  // namespace
