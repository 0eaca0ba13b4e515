/* target.c — names of native code targets in a bundle's NATIVE sections, and which of
 * them a CPU can run. A target is "<arch>[-<level>]-<os>", e.g. "x86_64-v3-linux". */
#include <stdio.h>
#include <string.h>

#include "m64_formats.h"

/* Every target m64 knows, each with its architecture and its rank within it: code of
 * rank r runs on any CPU of the same architecture whose own target has rank >= r, and of
 * two runnable targets the higher rank is the faster. Level 4 here is x86-64-v4 plus
 * AVX512-VNNI: with it clang fuses the kernels' pmaddwd + paddd pairs into vpdpwssd (same
 * wrapping sums); plain v4 measured no faster than v3. */
static const struct {
  const char *name, *arch;
  int rank;
} TARGETS[] = {
    {"x86_64-linux", "x86_64", 1},    {"x86_64-v2-linux", "x86_64", 2},
    {"x86_64-v3-linux", "x86_64", 3}, {"x86_64-v4vnni-linux", "x86_64", 4},
    {"aarch64-linux", "aarch64", 1},
};
#define N_TARGETS (sizeof TARGETS / sizeof TARGETS[0])

static int find(const char *target) {
  for (size_t i = 0; target && i < N_TARGETS; i++)
    if (strcmp(target, TARGETS[i].name) == 0) return (int)i;
  return -1;
}

#if defined(__x86_64__)
static int x86_level(void) {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512vnni") &&
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2"))
    return 4;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("bmi2"))
    return 3;
  if (__builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("popcnt")) return 2;
  return 1;
}
#endif

const char *m64_host_target(void) {
#if defined(__x86_64__) && defined(__linux__)
  static const char *const names[] = {"x86_64-linux", "x86_64-linux", "x86_64-v2-linux",
                                      "x86_64-v3-linux", "x86_64-v4vnni-linux"};
  return names[x86_level()];
#elif defined(__aarch64__) && defined(__linux__)
  return "aarch64-linux";
#else
  return "unknown";
#endif
}

int m64_target_known(const char *target) { return find(target) >= 0; }

int m64_target_rank_on(const char *target, const char *host) {
  const int t = find(target), h = find(host);
  if (t < 0 || h < 0 || strcmp(TARGETS[t].arch, TARGETS[h].arch) != 0) return 0;
  return TARGETS[t].rank <= TARGETS[h].rank ? TARGETS[t].rank : 0;
}

int m64_target_rank(const char *target) { return m64_target_rank_on(target, m64_host_target()); }

int m64_target_runnable(const char *target) { return m64_target_rank(target) > 0; }
