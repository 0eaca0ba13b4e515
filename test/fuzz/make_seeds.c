/* m64-fuzz-seeds OUT_DIR [REAL_MODELS_DIR] — writes the seed corpora of the harnesses:
 *   OUT_DIR/gguf, OUT_DIR/build   small synthetic GGUFs (several types, tied and untied),
 *                                 plus the real models under 2 MiB when the folder exists;
 *   OUT_DIR/bundle                .m64 bundles m64c builds from them (wasm only), and, with
 *                                 $M64_FUZZ_NATIVE_SO (a small shared object, see
 *                                 native_seed.c), a model of three layers in three segments
 *                                 with two NATIVE sections (marked and not), stored as is
 *                                 and compressed, so that fuzzing reaches native sections,
 *                                 segments and layer records;
 *   OUT_DIR/tokenizer             texts (first byte 0) and tokenizer blobs (first byte 1).
 * Everything is generated, so no model file is ever committed. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "compiler_internal.h"
#include "synth.h"

static int fail(const char *what, const m64_err *e) {
  fprintf(stderr, "m64-fuzz-seeds: %s: %s\n", what, e ? e->msg : strerror(errno));
  return 1;
}

static int mkdirs(const char *out) {
  static const char *const sub[] = {"", "/gguf", "/build", "/bundle", "/tokenizer"};
  char p[1024];
  for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++) {
    snprintf(p, sizeof p, "%s%s", out, sub[i]);
    if (mkdir(p, 0755) && errno != EEXIST) return fail(p, NULL);
  }
  return 0;
}

static int copy_file(const char *from, const char *to) {
  uint8_t *d = NULL;
  size_t n = 0;
  m64_err e;
  if (m64c_read_file(from, &d, &n, &e) || m64c_write_file(to, d, n, &e)) {
    free(d);
    return fail(from, &e);
  }
  free(d);
  return 0;
}

/* A prefix byte then the payload. */
static int write_tagged(const char *path, uint8_t tag, const void *p, size_t n) {
  uint8_t *b = malloc(n + 1);
  m64_err e;
  if (!b) return fail(path, NULL);
  b[0] = tag;
  memcpy(b + 1, p, n);
  int rc = m64c_write_file(path, b, n + 1, &e);
  free(b);
  return rc ? fail(path, &e) : 0;
}

typedef struct variant { const char *name; uint32_t type; int tied; uint32_t n_vocab; } variant;

/* A NATIVE section (docs/FORMAT.md) around code, for the module whose hash is wasm_sha256;
 * marked: the mark flag and 32 bytes of mark (zeros: it checks out for nobody). */
static uint8_t *native_section(const uint8_t *code, size_t n, const uint8_t wasm_sha256[32], int marked,
                               size_t *size) {
  *size = 64 + n + (marked ? 32 : 0);
  uint8_t *s = calloc(1, *size);
  if (!s) return NULL;
  memcpy(s, "M64NATIV", 8);
  s[8] = 64;
  s[12] = (uint8_t)(marked != 0);
  memcpy(s + 16, wasm_sha256, 32);
  for (int i = 0; i < 8; i++) s[48 + i] = (uint8_t)((uint64_t)n >> (8 * i));
  memcpy(s + 64, code, n);
  return s;
}

/* The bundle at from rewritten with two NATIVE sections holding so (one marked), then
 * compressed: OUT/bundle/native_segments.m64 and native_segments_z.m64. */
static int native_seeds(const char *out, const char *from, const char *so) {
  char path[1024], zpath[1024];
  uint8_t *code = NULL, *a = NULL, *b2 = NULL;
  size_t n = 0, na = 0, nb = 0;
  m64_err e;
  m64_bundle *b = NULL;
  m64_bundle_writer *bw = NULL;
  snprintf(path, sizeof path, "%s/bundle/native_segments.m64", out);
  snprintf(zpath, sizeof zpath, "%s/bundle/native_segments_z.m64", out);
  int rc = m64c_read_file(so, &code, &n, &e);
  if (!rc) rc = m64_bundle_open(from, &b, &e);
  const m64_section *wasm = rc ? NULL : m64_bundle_find_section(b, M64_SEC_MODULE_WASM, NULL);
  if (!rc && !wasm) rc = m64_fail(&e, M64_EFORMAT, "no module");
  if (!rc && (!(a = native_section(code, n, wasm->sha256, 1, &na)) || !(b2 = native_section(code, n, wasm->sha256, 0, &nb))))
    rc = m64_fail(&e, M64_ENOMEM, "out of memory");
  if (!rc) rc = m64_bw_open(path, &bw, &e);
  for (uint32_t i = 0; !rc && i < m64_bundle_n_sections(b); i++) {
    const m64_section *s = m64_bundle_section_at(b, i);
    if (s->kind != M64_SEC_SEGMENT && s->kind != M64_SEC_LAYER_INDEX)
      rc = m64_bw_add_section(bw, s->kind, s->name, s->data, s->size, &e);
  }
  if (!rc) rc = m64_bw_add_section(bw, M64_SEC_NATIVE, "x86_64-v3-linux", a, na, &e);
  if (!rc) rc = m64_bw_add_section(bw, M64_SEC_NATIVE, "x86_64-linux", b2, nb, &e);
  if (!rc) rc = m64c_copy_layers(b, bw, 0, &e);
  if (!rc) rc = m64_bw_commit(bw, &e);
  else m64_bw_abort(bw);
  m64_bundle_close(b);
  free(code);
  free(a);
  free(b2);
  const m64_compress_options z = {.level = 1, .chunk_size = 4096};
  if (!rc) rc = m64c_recode(path, zpath, &z, 0, &e);
  return rc ? fail(path, &e) : 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: m64-fuzz-seeds OUT_DIR [REAL_MODELS_DIR]\n");
    return 1;
  }
  const char *out = argv[1];
  if (mkdirs(out)) return 1;
  /* As small as the generator allows (vocab >= 259 for the byte tokens), so mutations
   * stay cheap; one variant per family of type. */
  static const variant vs[] = {
      {"f32", M64_GGML_F32, 0, 259},   {"q8_0_tied", M64_GGML_Q8_0, 1, 260},
      {"f16", M64_GGML_F16, 0, 259},   {"q4_0", M64_GGML_Q4_0, 0, 259},
  };
  char path[1024], bundle[1024];
  m64_err e;
  for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) {
    m64_synth_spec s;
    m64_synth_default(&s);
    s.n_vocab = vs[i].n_vocab;
    s.dim = 32;
    s.n_layers = 1;
    s.n_heads = 2;
    s.n_kv_heads = 1;
    s.ffn = 64;
    s.n_ctx = 64;
    s.type_default = vs[i].type;
    s.tied_output = vs[i].tied;
    s.seed = 7 + (uint32_t)i;
    snprintf(path, sizeof path, "%s/gguf/synth_%s.gguf", out, vs[i].name);
    if (m64_synth_write(&s, path, &e)) return fail(path, &e);
    snprintf(bundle, sizeof bundle, "%s/build/synth_%s.gguf", out, vs[i].name);
    if (copy_file(path, bundle)) return 1;
    if (i >= 2) continue; /* two bundles are enough: they differ only in the image */
    snprintf(bundle, sizeof bundle, "%s/bundle/synth_%s.m64", out, vs[i].name);
    m64c_options o = {.input = path, .output = bundle, .no_aot = 1};
    if (m64c_build(&o, &e)) return fail(bundle, &e);
    m64_bundle *b = NULL;
    if (m64_bundle_open(bundle, &b, &e)) return fail(bundle, &e);
    const m64_section *tok = m64_bundle_find_section(b, M64_SEC_TOKENIZER, NULL);
    snprintf(path, sizeof path, "%s/tokenizer/blob_%s", out, vs[i].name);
    int rc = tok ? write_tagged(path, 1, tok->data, tok->size) : fail(bundle, NULL);
    m64_bundle_close(b);
    if (rc) return 1;
  }
  /* three layers in three segments (64 KiB-aligned segments of at most 96 KiB) */
  const char *so = getenv("M64_FUZZ_NATIVE_SO");
  if (so && *so) {
    m64_synth_spec s;
    m64_synth_default(&s);
    s.n_vocab = 259;
    s.dim = 32;
    s.n_layers = 2;
    s.n_heads = 2;
    s.n_kv_heads = 1;
    s.ffn = 64;
    s.n_ctx = 64;
    s.seed = 11;
    snprintf(path, sizeof path, "%s/segments.gguf", out);
    snprintf(bundle, sizeof bundle, "%s/segments.m64", out);
    m64c_options o = {.input = path, .output = bundle, .no_aot = 1, .segment_max = 96 << 10};
    if (m64_synth_write(&s, path, &e)) return fail(path, &e);
    if (m64c_build(&o, &e)) return fail(bundle, &e);
    if (native_seeds(out, bundle, so)) return 1;
    remove(path);
    remove(bundle);
  }
  static const char *const texts[] = {
      "Once upon a time, there was a little girl named Lily.",
      "  two leading spaces, tabs\tand\nnewlines  ",
      "\xc3\xa9t\xc3\xa9 \xe2\x96\x81 \xf0\x9f\x98\x80 <s> </s> <0x41> \xff\xfe\x80\xc3",
      "",
  };
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    snprintf(path, sizeof path, "%s/tokenizer/text_%zu", out, i);
    if (write_tagged(path, 0, texts[i], strlen(texts[i]))) return 1;
  }
  /* real models small enough to mutate */
  if (argc > 2) {
    DIR *d = opendir(argv[2]);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
      size_t len = strlen(de->d_name);
      if (len < 6 || strcmp(de->d_name + len - 5, ".gguf")) continue;
      char from[1024];
      snprintf(from, sizeof from, "%s/%s", argv[2], de->d_name);
      struct stat st;
      if (stat(from, &st) || st.st_size > (2 << 20)) continue;
      snprintf(path, sizeof path, "%s/gguf/real_%s", out, de->d_name);
      if (copy_file(from, path)) return 1;
    }
    if (d) closedir(d);
  }
  printf("m64-fuzz-seeds: wrote the seed corpora under %s\n", out);
  return 0;
}
