/* target.c — names of native code targets in a bundle's NATIVE sections, and which of
 * them this host can run. A target is "<arch>[-<level>]-<os>", e.g. "x86_64-v3-linux". */
#include <stdio.h>
#include <string.h>

#include "m64_formats.h"

#if defined(__x86_64__)
/* Level 4 here is x86-64-v4 plus AVX512-VNNI: with it clang fuses the kernels' pmaddwd +
 * paddd pairs into vpdpwssd (same wrapping sums); plain v4 measured no faster than v3. */
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

int m64_target_runnable(const char *target) {
#if defined(__x86_64__) && defined(__linux__)
  if (strcmp(target, "x86_64-linux") == 0) return 1;
  if (strcmp(target, "x86_64-v2-linux") == 0) return x86_level() >= 2;
  if (strcmp(target, "x86_64-v3-linux") == 0) return x86_level() >= 3;
  if (strcmp(target, "x86_64-v4vnni-linux") == 0) return x86_level() >= 4;
  return 0;
#else
  return strcmp(target, m64_host_target()) == 0;
#endif
}
