/*
 * toolchain.c — pass 3: turn model.c into a wasm module, and a wasm module into native
 * code for this host.
 *
 *   model.c + the sources in module --clang-19 wasm32+SIMD128--> module.wasm
 *                                   (and, + relaxed SIMD, module.relaxed.wasm for browsers)
 *   module.wasm --wasm2c--> m64mod.c --clang-19 -O3 -shared--> module.so
 *
 * Where the tools and the module sources are, first found wins:
 *   module sources  $M64_SOURCE_DIR; <m64c's folder>/../share/m64 (an installed m64c, from
 *                   `cmake --install`); the checkout m64c was built from
 *   wasm2c          $M64_WASM2C; <m64c's folder>/../share/m64/toolchain/wasm2c; the checkout's
 *                   npm wabt
 *   clang           $M64_CLANG; the clang-19 found at configure time; clang-19 on PATH
 * (README.md, "Installing").
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "compiler_internal.h"

extern char **environ;

/* <folder of the running executable>/../share/m64/rel into buf if that exists, else NULL. */
static const char *installed(const char *rel, char *buf, size_t cap) {
  char exe[4096];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return NULL;
  exe[n] = 0;
  char *slash = strrchr(exe, '/');
  if (!slash) return NULL;
  *slash = 0;
  struct stat st;
  if ((size_t)snprintf(buf, cap, "%s/../share/m64/%s", exe, rel) >= cap || stat(buf, &st) != 0) return NULL;
  return buf;
}

static const char *clang_path(void) {
  const char *v = getenv("M64_CLANG");
  if (v && *v) return v;
  return access(M64_CLANG_PATH, X_OK) == 0 ? M64_CLANG_PATH : "clang-19"; /* PATH, as posix_spawnp does */
}
static const char *wasm2c_path(void) {
  static _Thread_local char buf[4200];
  const char *v = getenv("M64_WASM2C");
  if (v && *v) return v;
  return installed("toolchain/wasm2c", buf, sizeof buf) ? buf : M64_WASM2C_PATH;
}
static const char *source_dir(void) {
  static _Thread_local char buf[4200];
  const char *v = getenv("M64_SOURCE_DIR");
  if (v && *v) return v;
  if (installed("module/module.c", buf, sizeof buf)) {
    buf[strlen(buf) - strlen("/module/module.c")] = 0; /* <prefix>/share/m64 */
    return buf;
  }
  return M64_SOURCE_DIR_PATH;
}

int m64c_check_toolchain(int aot, m64_err *e) {
  char p[4300];
  snprintf(p, sizeof p, "%s/module/module.c", source_dir());
  if (access(p, R_OK) != 0)
    return m64_fail(e, M64_EIO, "the module sources are not in %s (no module/module.c): set M64_SOURCE_DIR "
                                "to an install's share/m64 or to a checkout", source_dir());
  if (aot && access(wasm2c_path(), X_OK) != 0)
    return m64_fail(e, M64_EIO, "wasm2c not found at %s: set M64_WASM2C, or run cmd/setup.sh in a checkout",
                    wasm2c_path());
  return 0;
}

void m64c_progress(int enabled, const char *fmt, ...) {
  if (!enabled) return;
  va_list ap;
  va_start(ap, fmt);
  fputs("m64c: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

int m64c_read_file(const char *path, uint8_t **data, size_t *size, m64_err *e) {
  *data = NULL;
  *size = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return m64_fail(e, M64_EIO, "cannot open %s: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fileno(f), &st) || st.st_size < 0) {
    fclose(f);
    return m64_fail(e, M64_EIO, "cannot stat %s", path);
  }
  uint8_t *buf = malloc(st.st_size ? (size_t)st.st_size : 1);
  if (!buf) {
    fclose(f);
    return m64_fail(e, M64_ENOMEM, "out of memory reading %s", path);
  }
  size_t got = fread(buf, 1, (size_t)st.st_size, f);
  fclose(f);
  if (got != (size_t)st.st_size) {
    free(buf);
    return m64_fail(e, M64_EIO, "short read on %s", path);
  }
  *data = buf;
  *size = got;
  return 0;
}

int m64c_write_file(const char *path, const void *data, size_t size, m64_err *e) {
  FILE *f = fopen(path, "wb");
  if (!f) return m64_fail(e, M64_EIO, "cannot create %s: %s", path, strerror(errno));
  size_t put = fwrite(data, 1, size, f);
  if (fclose(f) != 0 || put != size) return m64_fail(e, M64_EIO, "cannot write %s", path);
  return 0;
}

/* ---- the work directory ---- */
int m64c_workdir_open(m64c_workdir *w, const char *keep_dir, m64_err *e) {
  memset(w, 0, sizeof *w);
  if (keep_dir) {
    if (mkdir(keep_dir, 0755) && errno != EEXIST)
      return m64_fail(e, M64_EIO, "cannot create %s: %s", keep_dir, strerror(errno));
    snprintf(w->path, sizeof w->path, "%s", keep_dir);
    w->keep = 1;
    return 0;
  }
  const char *tmp = getenv("TMPDIR");
  snprintf(w->path, sizeof w->path, "%s/m64c.XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(w->path)) return m64_fail(e, M64_EIO, "cannot create a temp directory: %s", strerror(errno));
  return 0;
}

const char *const M64C_WORK_FILES[M64C_N_WORK_FILES] = {"model.c",  "module.wasm", "module.relaxed.wasm", "m64mod.c",
                                                         "m64mod.h", "module.so",   "build.log",           "build-relaxed.log"};

void m64c_workdir_close(m64c_workdir *w) {
  if (!w->path[0] || w->keep) return;
  char p[600];
  for (size_t i = 0; i < M64C_N_WORK_FILES; i++) {
    snprintf(p, sizeof p, "%s/%s", w->path, M64C_WORK_FILES[i]);
    unlink(p);
  }
  rmdir(w->path);
  w->path[0] = 0;
}

/* Starts argv with stdout+stderr in <dir>/<log>; finish() waits for it. */
static int start(const m64c_workdir *w, char *const argv[], const char *log, int verbose, pid_t *pid, m64_err *e) {
  char log_path[600];
  snprintf(log_path, sizeof log_path, "%s/%s", w->path, log);
  if (verbose) {
    fputs("m64c: $", stderr);
    for (int i = 0; argv[i]; i++) fprintf(stderr, " %s", argv[i]);
    fputc('\n', stderr);
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  int rc = posix_spawnp(pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc) return m64_fail(e, M64_EIO, "cannot run %s: %s", argv[0], strerror(rc));
  return 0;
}

/* Waits for what start() ran; on failure the message holds the command's name and the
 * first lines of its output. */
static int finish(const m64c_workdir *w, pid_t pid, const char *name, const char *log, m64_err *e) {
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return m64_fail(e, M64_EIO, "waitpid: %s", strerror(errno));
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;

  char log_path[600], out[360] = "";
  snprintf(log_path, sizeof log_path, "%s/%s", w->path, log);
  FILE *f = fopen(log_path, "r");
  if (f) {
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = 0;
    fclose(f);
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
    return m64_fail(e, M64_EIO, "%s not found (run cmd/setup.sh)", name);
  return m64_fail(e, M64_EIO, "%s failed (%s %d): %s", name,
                  WIFEXITED(status) ? "exit" : "signal",
                  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), out);
}

/* Runs argv to the end, its output in <dir>/build.log. */
static int run(const m64c_workdir *w, char *const argv[], int verbose, m64_err *e) {
  pid_t pid;
  const int rc = start(w, argv, "build.log", verbose, &pid, e);
  return rc ? rc : finish(w, pid, argv[0], "build.log", e);
}

int m64c_compile_wasm(const m64c_workdir *w, int variants, int verbose, m64_err *e) {
  static const char *const logs[2] = {"build.log", "build-relaxed.log"};
  pid_t pids[2];
  int started[2] = {0, 0}, rc = 0;
  for (int relaxed = 0; relaxed < 2 && !rc; relaxed++) {
    if (!(variants & (relaxed ? M64C_WASM_RELAXED : M64C_WASM_SIMD128))) continue;
    char inc_mod[600], inc_work[600], out[600], model[600], srcs[6][600];
    snprintf(inc_mod, sizeof inc_mod, "-I%s/module", source_dir());
    snprintf(inc_work, sizeof inc_work, "-I%s", w->path);
    snprintf(out, sizeof out, "%s/%s", w->path, relaxed ? "module.relaxed.wasm" : "module.wasm");
    snprintf(model, sizeof model, "%s/model.c", w->path);
    const char *fixed[6] = {"module.c", "base.c", "tokenizer.c", "sampler.c", "chat.c", "cache.c"};
    for (int i = 0; i < 6; i++) snprintf(srcs[i], sizeof srcs[i], "%s/module/%s", source_dir(), fixed[i]);
    /* The relaxed variant adds only the i8 dot (model.h); contraction stays off in both, so
     * neither has an instruction whose rounding an engine may choose (relaxed_madd). */
    char *argv[] = {(char *)clang_path(), "--target=wasm32", "-msimd128", "-mbulk-memory",
                    "-mnontrapping-fptoint", "-ffp-contract=off", "-O3", "-ffreestanding", "-nostdlib", "-std=c11",
                    "-Wall", "-Wno-unused-function", inc_mod, inc_work,
                    "-Wl,--no-entry", "-Wl,-z,stack-size=1048576", "-Wl,--max-memory=4294967296",
                    /* ABI 2: the host owns the memory and gives each thread's instance a stack */
                    "-Xlinker", "--import-memory=m64,memory", "-Xlinker", "--export=__stack_pointer",
                    "-Wl,--strip-debug", "-o", out, model, srcs[0], srcs[1], srcs[2], srcs[3], srcs[4], srcs[5],
                    relaxed ? "-mrelaxed-simd" : NULL, NULL};
    if (!(rc = start(w, argv, logs[relaxed], verbose, &pids[relaxed], e))) started[relaxed] = 1;
  }
  /* both are waited for, even after a failure: no clang outlives m64c's work directory */
  for (int relaxed = 0; relaxed < 2; relaxed++) {
    if (!started[relaxed]) continue;
    m64_err later; /* the first failure's message stands */
    const int done = finish(w, pids[relaxed], clang_path(), logs[relaxed], rc ? &later : e);
    if (!rc) rc = done;
  }
  return rc;
}

/* clang flags for a target (m64_formats.h's names), NULL-terminated; NULL for a target m64c
 * does not build. Each names its triple, so any host's clang-19 cross-compiles any of them.
 * The VNNI level is also tuned for Cascade Lake, its first CPU: llvm-mca on the Q6_K loop
 * (bench/kernels/mca) gives 113 cycles per pass against 129 with the default tuning.
 * aarch64-linux is plain ARMv8.0-A (the module's portable paths; SDOT needs the dotprod
 * extension, which not every arm64 CPU has). Its object is linked by lld with no C library
 * at all: what it calls (memcpy, the wasm_rt_* functions, the m64 imports) binds to the
 * m64run process at dlopen, and -mno-outline-atomics keeps libgcc's helpers out. Only the
 * C library's headers are needed (Debian: libc6-dev-arm64-cross). */
static const char *const *target_flags(const char *t) {
  static const char *const vnni[] = {"--target=x86_64-linux-gnu", "-march=x86-64-v4", "-mavx512vnni",
                                     "-mtune=cascadelake", NULL};
  static const char *const v3[] = {"--target=x86_64-linux-gnu", "-march=x86-64-v3", NULL};
  static const char *const v2[] = {"--target=x86_64-linux-gnu", "-march=x86-64-v2", NULL};
  static const char *const v1[] = {"--target=x86_64-linux-gnu", "-march=x86-64", NULL};
  static const char *const arm[] = {"--target=aarch64-linux-gnu", "-march=armv8-a", "-mno-outline-atomics",
                                    "-nostdlib", "-fuse-ld=lld", NULL};
  return strcmp(t, "x86_64-v4vnni-linux") == 0 ? vnni
       : strcmp(t, "x86_64-v3-linux") == 0     ? v3
       : strcmp(t, "x86_64-v2-linux") == 0     ? v2
       : strcmp(t, "x86_64-linux") == 0        ? v1
       : strcmp(t, "aarch64-linux") == 0       ? arm
                                               : NULL;
}

int m64c_check_target(const char *target, m64_err *e) {
  if (target_flags(target)) return 0;
  return m64_fail(e, M64_EUNSUPPORTED,
                  "unknown native target '%s' (m64c builds x86_64-v4vnni-linux, x86_64-v3-linux, "
                  "x86_64-v2-linux, x86_64-linux and aarch64-linux)", target);
}

/* wasm2c keeps every load alive with an empty volatile asm taking the loaded value, so
 * that a load whose value is unused still traps when out of bounds. clang treats such asm
 * as touching memory: after each one it reloads the memory's base pointer and it keeps
 * values in stack slots, which costs the SIMD kernels much of their speed. The kernels use
 * every value they load, so without the asm only an unused out-of-bounds load would not
 * trap; memory safety is untouched (a load that is not executed reads nothing). The
 * prelude of the pinned wasm2c (wabt 1.0.39) defines the three macros, once per host
 * architecture; each definition keeps its name and loses its asm. If one of the three is
 * not found, wasm2c is not the one m64c knows: an error, not a silently slower module. */
static int drop_forced_reads(const char *c_path, m64_err *e) {
  static const char *const macros[] = {"#define FORCE_READ_INT(var) __asm__(",
                                       "#define FORCE_READ_FLOAT(var) __asm__(",
                                       "#define SIMD_FORCE_READ(var) __asm__("};
  uint8_t *src;
  size_t n;
  int rc = m64c_read_file(c_path, &src, &n, e);
  if (rc) return rc;
  char *text = realloc(src, n + 1);
  if (!text) {
    free(src);
    return m64_fail(e, M64_ENOMEM, "out of memory");
  }
  text[n] = 0;
  for (size_t i = 0; i < sizeof macros / sizeof *macros; i++) {
    int found = 0;
    for (char *at = strstr(text, macros[i]); at; at = strstr(at + 1, macros[i]), found++) {
      /* "#define NAME(var)" stays; the asm up to the line's end becomes spaces */
      char *body = strchr(at, ')') + 1;
      memset(body, ' ', strcspn(body, "\n"));
    }
    if (!found) {
      free(text);
      return m64_fail(e, M64_EUNSUPPORTED, "wasm2c's output is not the one m64c knows (wabt 1.0.39): no '%.*s'",
                      (int)strcspn(macros[i], "("), macros[i]);
    }
  }
  rc = m64c_write_file(c_path, text, n, e);
  free(text);
  return rc;
}

int m64c_compile_native(const m64c_workdir *w, const char *target, int verbose, m64_err *e) {
  const char *const *march = target_flags(target);
  if (!march) return m64c_check_target(target, e);
  char wasm[600], c_out[600], so[600], inc_mod[600], inc_work[600],
      glue[600];
  snprintf(wasm, sizeof wasm, "%s/module.wasm", w->path);
  snprintf(c_out, sizeof c_out, "%s/m64mod.c", w->path);
  char *w2c[] = {(char *)wasm2c_path(), wasm, "-n", "m64mod", "-o", c_out, NULL};
  int rc = run(w, w2c, verbose, e);
  if (!rc) rc = drop_forced_reads(c_out, e);
  if (rc) return rc;

  snprintf(so, sizeof so, "%s/module.so", w->path);
  snprintf(inc_mod, sizeof inc_mod, "-I%s/module", source_dir());
  snprintf(inc_work, sizeof inc_work, "-I%s", w->path);
  snprintf(glue, sizeof glue, "%s/module/native_glue.c", source_dir());
  /* The work directory's random name must not reach the object (file symbols, build id):
   * the same bundle has to come out byte for byte (-s drops .symtab; dlsym uses .dynsym). */
  char prefix_map[620];
  snprintf(prefix_map, sizeof prefix_map, "-ffile-prefix-map=%s=.", w->path);
  char *cc[32] = {(char *)clang_path(), "-O3", "-fPIC", "-shared", "-w", "-s", prefix_map,
                  "-fno-strict-aliasing", "-ffp-contract=off", "-fvisibility=hidden",
                  /* after the target's own C headers: simde's folder is /usr/include on Debian,
                     whose glibc headers are the host's, not a cross target's */
                  "-idirafter", M64_SIMDE_INCLUDE_PATH, inc_mod, inc_work,
                  "-DM64_MODULE_HEADER=\"m64mod.h\"", "-DM64_MODULE_SOURCE=\"m64mod.c\"", "-o", so, glue};
  size_t n = 0;
  int libc = 1;
  while (cc[n]) n++;
  for (const char *const *f = march; *f; f++) {
    libc &= strcmp(*f, "-nostdlib") != 0;
    cc[n++] = (char *)*f;
  }
  if (libc) cc[n++] = "-lm"; /* the rest stays NULL */
  rc = run(w, cc, verbose, e);
  if (rc && e && strncmp(target, "aarch64", 7) == 0) {
    m64_err why = *e;
    return m64_fail(e, rc, "%s (cross-compiling for %s needs the arm64 C headers: Debian's libc6-dev-arm64-cross)",
                    why.msg, target);
  }
  return rc;
}

const char *m64c_host_target(void) { return m64_host_target(); }
