/*
 * build.c — the m64c pipeline, written out as one function (m64c_build).
 *
 *   plan (plan.c) -> model.c (codegen.c) -> module.wasm -> module.so (toolchain.c)
 *   -> bundle: METADATA, TOKENIZER, MODULE_WASM ("module", and "module.relaxed" for browsers
 *      with relaxed SIMD), NATIVE (one per target), LAYER_INDEX, SEGMENTs
 *
 * The bundle is written through m64_bundle_writer: a temp file renamed into place at
 * the end, so an error or a signal leaves nothing at the output path.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compiler_internal.h"
#include "module/m64_module.h" /* M64_ABI_VERSION: the module m64c builds */
#include "local_mark.h"
#include "tokblob.h"

/* ---- METADATA: "key = value" lines ---- */
static char *metadata_text(const m64c_plan *p, const char *source, const m64_gguf *g) {
  size_t cap = 8192;
  char *s = malloc(cap);
  if (!s) return NULL;
  uint32_t bos = 1, eos = 2;
  m64_gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &bos);
  m64_gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &eos);
  const char *base = strrchr(source, '/');
  snprintf(s, cap,
           "m64.abi_version = %d\ngeneral.architecture = %s\ngeneral.name = %s\nsource.file = %s\n"
           "model.n_vocab = %u\nmodel.dim = %u\nmodel.n_blocks = %u\nmodel.n_heads = %u\n"
           "model.n_kv_heads = %u\nmodel.head_dim = %u\nmodel.ffn = %u\nmodel.n_ctx_train = %u\n"
           "model.rms_eps = %g\nmodel.rope_base = %g\nmodel.tied_output = %d\n"
           "model.weight_bytes = %llu\ntokenizer.bos = %u\ntokenizer.eos = %u\n",
           M64_ABI_VERSION, p->arch, p->name[0] ? p->name : "(unnamed)", base ? base + 1 : source, p->n_vocab, p->dim,
           p->n_blocks, p->n_heads, p->n_kv_heads, p->head_dim, p->ffn, p->n_ctx_train,
           (double)p->rms_eps, (double)p->rope_base, p->tied_output,
           (unsigned long long)p->total_bytes, bos, eos);
  /* per-tensor types are in the layer index; here, what the module was specialized to */
  char kernels[3072];
  size_t n = m64c_kernel_list(p, kernels, sizeof kernels);
  size_t used = strlen(s);
  snprintf(s + used, cap - used, "module.kernels = %zu: %s\nchat.template = %s\n", n, kernels,
           m64c_chat_template_name(g));
  /* the GGUF's quantization by llama.cpp's name (m64c info's summary) */
  uint32_t ftype;
  const char *fname = m64_gguf_get_u32(g, "general.file_type", &ftype) == 0 ? m64c_ftype_name(ftype) : NULL;
  used = strlen(s);
  if (fname) snprintf(s + used, cap - used, "general.file_type = %s\n", fname);
  used = strlen(s);
  if (p->n_expert) /* the layer index's expert layers (m64_formats.h) */
    snprintf(s + used, cap - used, "model.n_experts = %u\nmodel.n_experts_used = %u\n", p->n_expert, p->n_expert_used);
  return s;
}

/* Writes a tensor's GGUF bytes in the block order the plan chose (m64_formats.h): a
 * row-pair matrix goes through a reordered copy, one tensor at a time. */
static int write_tensor(m64_bundle_writer *bw, uint32_t i, const m64_tensor_entry *t, const uint8_t *src,
                        m64_err *e) {
  if (t->layout != M64_LAYOUT_PAIRS) return m64_bw_write_tensor(bw, i, src, e);
  const uint64_t bb = m64_ggml_type_info(t->type).block_bytes;
  uint64_t row_bytes = 0;
  if (m64_ggml_row_bytes(t->type, t->ne[0], &row_bytes) || !bb || row_bytes * t->ne[1] != t->nbytes)
    return m64_fail(e, M64_EFORMAT, "internal: tensor '%s' does not split into rows", t->name);
  uint8_t *dst = malloc(t->nbytes);
  if (!dst) return m64_fail(e, M64_ENOMEM, "out of memory for tensor '%s' (%llu bytes)", t->name,
                            (unsigned long long)t->nbytes);
  const uint64_t nb = row_bytes / bb;
  for (uint64_t r = 0; r + 1 < t->ne[1]; r += 2) {
    const uint8_t *r0 = src + r * row_bytes, *r1 = r0 + row_bytes;
    uint8_t *d = dst + r * row_bytes;
    for (uint64_t b = 0; b < nb; b++, d += 2 * bb) {
      memcpy(d, r0 + b * bb, bb);
      memcpy(d + bb, r1 + b * bb, bb);
    }
  }
  if (t->ne[1] % 2) /* the odd last row, as it is */
    memcpy(dst + (t->ne[1] - 1) * row_bytes, src + (t->ne[1] - 1) * row_bytes, row_bytes);
  const int rc = m64_bw_write_tensor(bw, i, dst, e);
  free(dst);
  return rc;
}

/* The native section for the module.so in the work dir, compiled from wasm, marked as
 * compiled here by this user (formats/sign/local_mark.h): m64run loads no other native
 * code by default. The mark is deterministic, so a build stays reproducible for one key. */
static int native_section(const m64c_workdir *wd, const char *target, const uint8_t *wasm, size_t wasm_size,
                          uint8_t **sec, size_t *sec_size, m64_err *e) {
  uint8_t sha[32], *so = NULL;
  size_t so_size = 0;
  m64_sha256 h;
  m64_sha256_init(&h);
  m64_sha256_update(&h, wasm, wasm_size);
  m64_sha256_final(&h, sha);
  char path[600];
  snprintf(path, sizeof path, "%s/module.so", wd->path);
  int rc = m64c_read_file(path, &so, &so_size, e);
  if (!rc) rc = m64_native_section_write(sha, so, so_size, sec, sec_size, e);
  if (!rc) rc = m64_native_section_add_mark(sec, sec_size, target, e);
  free(so);
  return rc;
}

int m64c_add_native(m64_bundle_writer *bw, const m64c_workdir *wd, const char *target, const uint8_t *wasm,
                      size_t wasm_size, m64_err *e) {
  uint8_t *sec = NULL;
  size_t sec_size = 0;
  int rc = native_section(wd, target, wasm, wasm_size, &sec, &sec_size, e);
  if (!rc) rc = m64_bw_add_section(bw, M64_SEC_NATIVE, target, sec, sec_size, e);
  free(sec);
  return rc;
}

/* --target's comma-separated list (NULL: this host's target) into t[0..*n): known names
 * only, each once, at most M64C_MAX_TARGETS. */
int m64c_parse_targets(const char *list, char t[][M64C_TARGET_NAME], int *n, m64_err *e) {
  *n = 0;
  if (!list) list = m64c_host_target();
  for (const char *p = list;; p++) {
    const size_t len = strcspn(p, ",");
    if (len == 0) return m64_fail(e, M64_EUNSUPPORTED, "--target '%s': an empty name in the list", list);
    if (*n == M64C_MAX_TARGETS)
      return m64_fail(e, M64_EUNSUPPORTED, "--target '%s': more than %d targets", list, M64C_MAX_TARGETS);
    if (len >= M64C_TARGET_NAME) return m64_fail(e, M64_EUNSUPPORTED, "--target: '%.*s' is too long", (int)len, p);
    memcpy(t[*n], p, len);
    t[*n][len] = 0;
    int rc = m64c_check_target(t[*n], e);
    if (rc) return rc;
    for (int i = 0; i < *n; i++)
      if (strcmp(t[i], t[*n]) == 0) return m64_fail(e, M64_EUNSUPPORTED, "--target '%s' names %s twice", list, t[i]);
    ++*n;
    p += len;
    if (!*p) return 0;
  }
}

int m64c_build(const m64c_options *o, m64_err *e) {
  static const m64c_tools tools = {m64c_compile_wasm, m64c_compile_native};
  const int rc = m64c_check_toolchain(!o->no_aot, e); /* before any work */
  return rc ? rc : m64c_build_with(o, &tools, e);
}

int m64c_build_with(const m64c_options *o, const m64c_tools *tools, m64_err *e) {
  m64_gguf *g = NULL;
  m64c_plan plan = {0};
  m64c_workdir wd = {0};
  m64_bundle_writer *bw = NULL;
  uint8_t *tok = NULL, *wasm = NULL, *relaxed = NULL;
  size_t tok_size = 0, wasm_size = 0, relaxed_size = 0;
  char *meta = NULL;
  FILE *f = NULL;
  int rc;
  m64c_bar bar = {0}; /* off until step 5 */
  char targets[M64C_MAX_TARGETS][M64C_TARGET_NAME];
  uint8_t *natives[M64C_MAX_TARGETS] = {0};
  size_t native_sizes[M64C_MAX_TARGETS] = {0};
  int n_targets = 0;
  if (!o->no_aot && (rc = m64c_parse_targets(o->target, targets, &n_targets, e))) return rc; /* before any work */

  m64c_progress(o->progress, "[1/6] reading %s", o->input);
  if ((rc = m64_gguf_open(o->input, &g, e))) goto done;
  if ((rc = m64c_plan_model(g, o->segment_max, &plan, e))) goto done;
  if ((rc = m64_tokblob_build(g, &tok, &tok_size, e))) goto done;
  m64c_progress(o->progress, "      %s: %u block%s, dim %u, vocab %u, %.1f MiB of weights in %u layers",
                plan.arch, plan.n_blocks, plan.n_blocks == 1 ? "" : "s", plan.dim, plan.n_vocab, plan.total_bytes / 1048576.0,
                plan.n_layers);

  /* the file's name goes into model.c and the metadata: plain text only */
  char src_name[256];
  const char *base = strrchr(o->input, '/');
  snprintf(src_name, sizeof src_name, "%s", base ? base + 1 : o->input);
  m64c_plain_text(src_name);

  m64c_progress(o->progress, "[2/6] generating model.c");
  if ((rc = m64c_workdir_open(&wd, o->keep_dir, e))) goto done;
  m64c_track_temp(NULL, &wd);
  char path[600];
  snprintf(path, sizeof path, "%s/model.c", wd.path);
  if (!(f = fopen(path, "w"))) {
    rc = m64_fail(e, M64_EIO, "cannot create %s", path);
    goto done;
  }
  rc = m64c_emit_model_c(&plan, src_name, f, e);
  if (fclose(f) && !rc) rc = m64_fail(e, M64_EIO, "cannot write %s", path);
  f = NULL;
  if (rc) goto done;

  m64c_progress(o->progress, "[3/6] compiling the module (clang-19, wasm32 + SIMD128%s)",
                o->no_relaxed ? "" : "; again with relaxed SIMD for browsers");
  if ((rc = tools->compile_wasm(&wd, M64C_WASM_SIMD128 | (o->no_relaxed ? 0 : M64C_WASM_RELAXED), o->verbose, e)))
    goto done;
  snprintf(path, sizeof path, "%s/module.wasm", wd.path);
  if ((rc = m64c_read_file(path, &wasm, &wasm_size, e))) goto done;
  if (!o->no_relaxed) {
    snprintf(path, sizeof path, "%s/module.relaxed.wasm", wd.path);
    if ((rc = m64c_read_file(path, &relaxed, &relaxed_size, e))) goto done;
  }

  if (!o->no_aot) {
    /* one object per target, each kept in memory as its marked section until the bundle is written */
    for (int t = 0; t < n_targets; t++) {
      m64c_progress(o->progress, "[4/6] AOT-compiling for %s (wasm2c, clang-19 -O3)", targets[t]);
      if ((rc = tools->compile_native(&wd, targets[t], o->verbose, e))) goto done;
      if ((rc = native_section(&wd, targets[t], wasm, wasm_size, &natives[t], &native_sizes[t], e))) goto done;
    }
  } else {
    m64c_progress(o->progress, "[4/6] skipping AOT (--no-aot)");
  }

  m64c_progress(o->progress, "[5/6] writing %s", o->output);
  m64c_bar_init(&bar, o->progress);
  if ((rc = m64_bw_open(o->output, &bw, e))) goto done;
  m64c_track_temp(bw, &wd);
  if (o->compress && (rc = m64_bw_set_compression(bw, o->compress, e))) goto done;
  if (!(meta = metadata_text(&plan, src_name, g))) {
    rc = m64_fail(e, M64_ENOMEM, "out of memory");
    goto done;
  }
  if ((rc = m64_bw_add_section(bw, M64_SEC_METADATA, "metadata", meta, strlen(meta), e))) goto done;
  if ((rc = m64_bw_add_section(bw, M64_SEC_TOKENIZER, "tokenizer", tok, tok_size, e))) goto done;
  if ((rc = m64_bw_add_section(bw, M64_SEC_MODULE_WASM, "module", wasm, wasm_size, e))) goto done;
  if (relaxed && (rc = m64_bw_add_section(bw, M64_SEC_MODULE_WASM, M64_RELAXED_MODULE, relaxed, relaxed_size, e)))
    goto done;
  for (int t = 0; t < n_targets; t++)
    if ((rc = m64_bw_add_section(bw, M64_SEC_NATIVE, targets[t], natives[t], native_sizes[t], e))) goto done;
  if ((rc = m64_bw_set_layout(bw, plan.layers, plan.n_layers, plan.tensors, plan.n_tensors, e)))
    goto done;
  m64_bw_set_progress(bw, m64c_bar_cb, &bar);
  for (uint32_t i = 0; i < plan.n_tensors; i++)
    if ((rc = write_tensor(bw, i, &plan.tensors[i], plan.sources[i]->data, e))) goto done;
  m64c_bar_done(&bar);
  m64c_progress(o->progress, "[6/6] hashing layers and committing");
  rc = m64_bw_commit(bw, e);
  m64c_bar_done(&bar);
  if (rc == 0) bw = NULL; /* a successful commit frees the writer; after a failed one, abort does */

done:
  m64c_bar_done(&bar);
  if (bw) m64_bw_abort(bw);
  m64c_track_temp(NULL, NULL);
  m64c_workdir_close(&wd);
  free(meta);
  free(tok);
  free(wasm);
  free(relaxed);
  for (int t = 0; t < n_targets; t++) free(natives[t]);
  m64c_plan_free(&plan);
  m64_gguf_close(g);
  return rc;
}
