// The `large` label: a model over 4 GiB runs in a wasm32 workspace of at most 4 GiB by
// paging, its logits agree with the F32 oracle, and m64run's resident set stays bounded
// by the workspace, not the model.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "m64_formats.h"
#include "m64_runtime.h"
#include "oracle.h"

namespace {

const std::string kDir = std::string(M64_BINARY_DIR) + "/test/large/model";

bool exists(const std::string &p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0;
}

TEST(Large, PagedLogitsOfAModelOver4GiBMatchTheOracle) {
  const std::string bundle = kDir + "/large.m64", gguf = kDir + "/large.gguf";
  if (!exists(bundle)) GTEST_SKIP() << bundle << " missing: run through ctest (fixture build_large.sh)";
  m64_bundle *b = nullptr;
  m64_err e{};
  ASSERT_EQ(m64_bundle_open(bundle.c_str(), &b, &e), 0) << e.msg;
  uint64_t weights = 0;
  for (uint32_t l = 0; l < m64_bundle_n_layers(b); l++) weights += m64_bundle_layer(b, l)->size;
  m64_bundle_close(b);
  ASSERT_GT(weights, 4ull << 30) << "the model must not fit a wasm32 memory";

  const std::vector<int32_t> tokens = {1, 4096, 777};
  std::vector<std::vector<float>> got;
  {
    m64_session_options o{};
    o.n_ctx = 16;
    o.verify_layers = 1;
    o.page_mode = 1;
    o.n_threads = 2;
    m64_session *s = nullptr;
    ASSERT_EQ(m64_session_open(bundle.c_str(), &o, &s, &e), 0) << e.msg;
    for (uint32_t i = 0; i < tokens.size(); i++) {
      const float *l;
      ASSERT_EQ(m64_session_eval(s, tokens[i], i, &l, &e), 0) << e.msg;
      got.emplace_back(l, l + m64_session_n_vocab(s));
    }
    m64_session_stats st;
    m64_session_stats_get(s, &st);
    EXPECT_GT(st.evictions, 0u);
    EXPECT_LE(st.workspace_bytes, 4ull << 30);
    std::printf("large: %.2f GiB of weights, workspace %.2f GiB, %llu page-ins (%.1f GiB) for %zu tokens\n",
                weights / 1073741824.0, st.workspace_bytes / 1073741824.0,
                (unsigned long long)st.layer_page_ins, st.bytes_paged / 1073741824.0, tokens.size());
    m64_session_close(s);
  }

  m64_oracle *o = nullptr;
  ASSERT_EQ(m64_oracle_open(gguf.c_str(), 16, &o, &e), 0) << e.msg;
  double worst = 0;
  for (uint32_t i = 0; i < tokens.size(); i++) {
    const float *want = m64_oracle_forward(o, tokens[i], (int)i);
    ASSERT_NE(want, nullptr);
    double range = 0;
    for (size_t j = 0; j < got[i].size(); j++) range = std::max(range, (double)std::fabs(want[j]));
    for (size_t j = 0; j < got[i].size(); j++) worst = std::max(worst, std::fabs(got[i][j] - want[j]) / range);
  }
  m64_oracle_close(o);
  std::printf("large: worst logit difference %.2e of the logit range (tolerance 3e-2, Q8_0)\n", worst);
  EXPECT_LE(worst, 3e-2);
}

// m64run's maximum resident set with a 1 GiB workspace: bounded by that, not by 4.5 GiB.
TEST(Large, ResidentSetIsBoundedByTheWorkspace) {
  const std::string bundle = kDir + "/large.m64";
  if (!exists(bundle)) GTEST_SKIP() << bundle << " missing: run through ctest (fixture build_large.sh)";
  const std::string log = kDir + "/rss.log";
  const std::string cmd = "/usr/bin/time -v " + std::string(M64_BINARY_DIR) + "/cmd/m64run " + bundle +
                          " -p hello -n 4 --temp 0 -c 64 -t 2 --workspace 1G --no-verify > /dev/null 2> " + log;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "see " << log;
  FILE *f = fopen(log.c_str(), "r");
  ASSERT_NE(f, nullptr);
  char line[512];
  long rss_kb = -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, " Maximum resident set size (kbytes): %ld", &rss_kb) == 1) break;
  fclose(f);
  ASSERT_GT(rss_kb, 0);
  std::printf("large: m64run max RSS %.0f MiB with --workspace 1G (model %s)\n", rss_kb / 1024.0, bundle.c_str());
  EXPECT_LT(rss_kb * 1024.0, (1ull << 30) + (160ull << 20)) << "RSS beyond workspace + 160 MiB";
}

}  // namespace
