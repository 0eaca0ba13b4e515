/* m64run_gguf.c — `m64run MODEL.gguf`: the GGUF a llama.cpp user already has runs as it is.
 *
 * m64run links the compiler library (m64compiler) rather than exec'ing an m64c found
 * beside it: one process, one error path (m64_err, the same message m64c build gives), no
 * output to parse, and the toolchain found exactly as m64c finds it (paths baked in at
 * configure time, M64_CLANG / M64_WASM2C / M64_SOURCE_DIR at run time). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "m64_formats.h"
#include "m64run_gguf.h"

#if defined(M64RUN_NO_COMPILER)
/* A runtime-only m64run (a cross build, M64_RUNTIME_ONLY) has no compiler: it runs bundles,
 * and names a GGUF as one with what to do instead. */
int m64run_resolve_model(const char *model, int no_cache, int verbose, char *bundle, size_t cap, int *temp,
                         m64_err *e) {
  (void)no_cache, (void)verbose;
  *temp = 0;
  const int kind = m64_file_kind(model, e);
  if (kind < 0) return kind;
  if (kind == M64_KIND_GGUF)
    return m64_fail(e, M64_EFORMAT, "%s is a GGUF model, and this m64run was built without the compiler "
                                    "(M64_RUNTIME_ONLY): make a bundle with `m64c build %s -o MODEL.m64` "
                                    "(on a machine with m64c; --target aarch64-linux for native code here)",
                    model, model);
  if (kind != M64_KIND_BUNDLE && kind != M64_KIND_BUNDLE_COMPRESSED)
    return m64_fail(e, M64_EFORMAT, "%s is %s: m64run runs an m64 bundle (made by `m64c build`)", model,
                    m64_file_kind_name(kind));
  if ((size_t)snprintf(bundle, cap, "%s", model) >= cap) return m64_fail(e, M64_ELIMIT, "path too long");
  return 0;
}
void m64run_temp_remove(const char *bundle) { (void)bundle; }
#else
#include "m64_compiler.h"

/* --no-cache: a bundle in a private temp directory, built and hashed just now. */
static int build_temp(const char *model, int verbose, char *bundle, size_t cap, m64_err *e) {
  const char *tmp = getenv("TMPDIR");
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/m64run.XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(dir)) return m64_fail(e, M64_EIO, "cannot create a temp directory in %s", tmp && *tmp ? tmp : "/tmp");
  if ((size_t)snprintf(bundle, cap, "%s/model.m64", dir) >= cap) {
    rmdir(dir);
    return m64_fail(e, M64_ELIMIT, "temp path too long");
  }
  fprintf(stderr, "m64run: compiling %s into a temporary bundle (--no-cache)\n", model);
  /* a cached bundle only ever runs here: no browsers' module */
  m64c_options o = {.input = model, .output = bundle, .progress = 1, .verbose = verbose, .no_relaxed = 1};
  const int rc = m64c_build(&o, e);
  if (rc) rmdir(dir);
  return rc;
}

int m64run_resolve_model(const char *model, int no_cache, int verbose, char *bundle, size_t cap, int *temp,
                         m64_err *e) {
  *temp = 0;
  const int kind = m64_file_kind(model, e);
  if (kind < 0) return kind;
  if (kind == M64_KIND_BUNDLE || kind == M64_KIND_BUNDLE_COMPRESSED) {
    if ((size_t)snprintf(bundle, cap, "%s", model) >= cap) return m64_fail(e, M64_ELIMIT, "path too long");
    return 0;
  }
  if (kind != M64_KIND_GGUF)
    return m64_fail(e, M64_EFORMAT, "%s is %s: m64run runs an m64 bundle (made by `m64c build`) or a GGUF model "
                                    "(llama.cpp's format), which it compiles once into the bundle cache",
                    model, m64_file_kind_name(kind));
  m64c_install_signal_cleanup(); /* Ctrl-C during the build leaves no partial bundle */
  if (no_cache) {
    const int rc = build_temp(model, verbose, bundle, cap, e);
    if (!rc) *temp = 1;
    return rc;
  }
  const m64c_cache_options co = {.dir = NULL, .progress = 1, .verbose = verbose};
  int built = 0;
  const int rc = m64c_cache_get(model, &co, bundle, cap, &built, e);
  if (!rc && verbose) fprintf(stderr, "m64run: %s: bundle %s%s\n", model, bundle, built ? " (compiled now)" : " (cached)");
  return rc;
}

void m64run_temp_remove(const char *bundle) {
  unlink(bundle);
  char dir[1024];
  snprintf(dir, sizeof dir, "%s", bundle);
  char *slash = strrchr(dir, '/');
  if (slash) {
    *slash = 0;
    rmdir(dir);
  }
}
#endif
