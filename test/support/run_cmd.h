// run_cmd.h — what the tests that drive m64c and m64run as programs share: run a shell
// command and keep its output and exit code, ask whether a file is there (NEED_FILE skips
// a test without it) and whether output has a piece of text.
#ifndef M64_TEST_RUN_CMD_H
#define M64_TEST_RUN_CMD_H

#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace m64test {

struct CmdResult {
  int code;         // exit status, 128 + signal when killed, -1 when it could not start
  std::string out;  // stdout and stderr together
};

// Runs a shell command; stdout and stderr together.
inline CmdResult sh(const std::string &cmd) {
  CmdResult r{-1, ""};
  FILE *p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int st = pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

inline bool exists(const std::string &p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0;
}

inline bool has(const std::string &s, const std::string &what) { return s.find(what) != std::string::npos; }

}  // namespace m64test

// Skips a test whose input file is missing: the shared models are absent, or the e2e_bundles
// fixture (which ctest runs first) did not run.
#define NEED_FILE(p)                                                                        \
  do {                                                                                      \
    if (!m64test::exists(p))                                                                \
      GTEST_SKIP() << (p) << " not found (shared models absent, or the e2e_bundles fixture " \
                   << "did not run: use ctest)";                                            \
  } while (0)

namespace m64test {

}  // namespace m64test

#endif
