/* fuzz_build — `m64c build` end to end on a mutated GGUF: the input is written to a file
 * and compiled by m64c_build_with, the real pipeline (read, plan, tokenizer blob, codegen,
 * bundle writer, hashes, commit), with clang-19 replaced by a step that checks the
 * generated model.c and writes a fixed minimal wasm module (compiling C per input would
 * make the fuzzer ~1000x slower; the toolchain is covered by the e2e tests).
 *
 * Checked for every input: no crash/UB/leak; an error leaves no output and no temp files;
 * a success gives a bundle that opens, verifies, and whose metadata and model.c carry
 * nothing from the GGUF that could escape its place (a newline or comment end). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compiler_internal.h"

static char g_dir[512], g_in[600], g_out[600];

/* model.c opens with a three-line comment naming the model: the first comment end must
 * be where that comment ends, whatever the GGUF's general.name holds. */
static int check_model_c(const m64c_workdir *w, int variants, int verbose, m64_err *e) {
  (void)verbose;
  char path[600];
  snprintf(path, sizeof path, "%s/model.c", w->path);
  uint8_t *src = NULL;
  size_t n = 0;
  if (m64c_read_file(path, &src, &n, e)) abort();
  const uint8_t *end = NULL;
  for (size_t i = 0; i + 1 < n && !end; i++)
    if (src[i] == '*' && src[i + 1] == '/') end = src + i;
  if (!end || end - src < 2 || end[-1] != ' ' || end[-2] != '\n') abort();
  int lines = 0;
  for (const uint8_t *p = src; p < end; p++) {
    if (*p == '\n') lines++;
    else if (*p < 0x20 || *p == 0x7f) abort(); /* control characters in the comment */
  }
  if (lines != 3) abort();
  free(src);
  /* the smallest valid module: magic and version */
  static const uint8_t wasm[8] = {0, 'a', 's', 'm', 1, 0, 0, 0};
  for (int v = M64C_WASM_SIMD128; v <= M64C_WASM_RELAXED; v <<= 1) {
    if (!(variants & v)) continue;
    snprintf(path, sizeof path, "%s/%s", w->path, v == M64C_WASM_RELAXED ? "module.relaxed.wasm" : "module.wasm");
    if (m64c_write_file(path, wasm, sizeof wasm, e)) return -1;
  }
  return 0;
}

static int no_native(const m64c_workdir *w, const char *target, int verbose, m64_err *e) {
  (void)w, (void)target, (void)verbose;
  abort(); /* the harness builds with no_aot */
  return m64_fail(e, M64_EUNSUPPORTED, "unreachable");
}

/* Every key of the metadata once; values free of control characters. */
static void check_bundle(void) {
  m64_bundle *b = NULL;
  m64_err e;
  if (m64_bundle_open(g_out, &b, &e) != 0 || m64_bundle_verify_all(b, &e) != 0) {
    fprintf(stderr, "fuzz_build: the bundle m64c wrote does not verify: %s\n", e.msg);
    abort();
  }
  const m64_section *m = m64_bundle_find_section(b, M64_SEC_METADATA, NULL);
  if (!m) abort();
  const char *p = (const char *)m->data, *end = p + m->size;
  char keys[64][64];
  int n_keys = 0;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p)), *le = nl ? nl : end;
    const char *eq = memchr(p, '=', (size_t)(le - p));
    if (!eq || eq - p < 2 || eq - p > 63 || n_keys == 64) abort();
    memcpy(keys[n_keys], p, (size_t)(eq - p - 1));
    keys[n_keys][eq - p - 1] = 0;
    for (int k = 0; k < n_keys; k++)
      if (!strcmp(keys[k], keys[n_keys])) abort(); /* a value forged a second key */
    n_keys++;
    for (const char *c = p; c < le; c++)
      if ((unsigned char)*c < 0x20 || *c == 0x7f) abort();
    p = le + 1;
  }
  m64_bundle_close(b);
}

/* Nothing but the input may remain in the directory. */
static void check_clean(int built) {
  DIR *d = opendir(g_dir);
  if (!d) abort();
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    const char *n = de->d_name;
    if (!strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, "in.gguf")) continue;
    if (built && !strcmp(n, "out.m64")) continue;
    fprintf(stderr, "fuzz_build: %s/%s left behind\n", g_dir, n);
    abort();
  }
  closedir(d);
}

static void remove_dir(void) {
  unlink(g_in);
  unlink(g_out);
  rmdir(g_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  const char *tmp = getenv("TMPDIR");
  snprintf(g_dir, sizeof g_dir, "%s/m64-fuzz-build.XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(g_dir)) abort();
  /* m64c's own temp directories go here too, so check_clean sees them */
  setenv("TMPDIR", g_dir, 1);
  snprintf(g_in, sizeof g_in, "%s/in.gguf", g_dir);
  snprintf(g_out, sizeof g_out, "%s/out.m64", g_dir);
  atexit(remove_dir);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!g_dir[0]) LLVMFuzzerInitialize(NULL, NULL);
  m64_err e;
  if (m64c_write_file(g_in, data, size, &e)) abort();
  m64c_options o = {.input = g_in, .output = g_out, .no_aot = 1};
  static const m64c_tools tools = {check_model_c, no_native};
  int rc = m64c_build_with(&o, &tools, &e);
  if (rc == 0) check_bundle();
  else if (!e.msg[0]) abort();
  check_clean(rc == 0);
  unlink(g_out);
  unlink(g_in);
  return 0;
}
