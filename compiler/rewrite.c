/*
 * rewrite.c — the commands that rewrite a bundle: `m64c compress` / `m64c decompress`
 * (m64c_recode) and `m64c aot` (this host's native code for the bundle's own wasm). Both
 * are one routine (rewrite): every section copied in order but the ones a rewrite
 * replaces, the layout (layer and tensor records, segments) kept exactly, each layer
 * checked and copied. So decompressing a compressed bundle gives back the original file
 * byte for byte. The new file is a temp file renamed over the output at the end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler_internal.h"

int m64c_copy_layers(const m64_bundle *b, m64_bundle_writer *bw, int progress, m64_err *e) {
  const uint32_t nl = m64_bundle_n_layers(b), nt = m64_bundle_n_tensors(b);
  m64_layer_entry *layers = calloc(nl ? nl : 1, sizeof *layers);
  m64_tensor_entry *tensors = calloc(nt ? nt : 1, sizeof *tensors);
  m64_layer_decoder *d = NULL;
  uint8_t *buf = NULL;
  int rc = !layers || !tensors ? m64_fail(e, M64_ENOMEM, "out of memory") : 0;
  if (!rc) rc = m64_layer_decoder_new(&d, e);
  for (uint32_t i = 0; i < nl && !rc; i++) {
    const m64_layer_entry *src = m64_bundle_layer(b, i);
    m64_layer_entry *l = &layers[i];
    memset(l, 0, sizeof *l); /* the raw layout only: the writer fills the stored form */
    memcpy(l->name, src->name, sizeof l->name);
    l->segment = src->segment;
    l->offset = src->offset;
    l->size = src->size;
    l->first_tensor = src->first_tensor;
    l->n_tensors = src->n_tensors;
  }
  for (uint32_t i = 0; i < nt && !rc; i++) tensors[i] = *m64_bundle_tensor(b, i);
  if (!rc) rc = m64_bw_set_layout(bw, layers, nl, tensors, nt, e);
  for (uint32_t i = 0; i < nl && !rc; i++) {
    /* Checked against its hashes on the way, so corruption is not baked into new ones. */
    const uint8_t *data = m64_bundle_layer_data(b, i);
    if (data) {
      rc = m64_bundle_verify_layer(b, i, e);
    } else {
      free(buf);
      if (!(buf = malloc(layers[i].size ? (size_t)layers[i].size : 1))) {
        rc = m64_fail(e, M64_ENOMEM, "out of memory (layer '%s', %llu bytes)", layers[i].name,
                      (unsigned long long)layers[i].size);
        break;
      }
      rc = m64_bundle_read_layer(b, i, d, buf, 1, e);
      data = buf;
    }
    for (uint32_t t = 0; t < layers[i].n_tensors && !rc; t++) {
      const uint32_t ti = layers[i].first_tensor + t;
      rc = m64_bw_write_tensor(bw, ti, data + tensors[ti].offset, e);
    }
  }
  (void)progress; /* the writer reports (m64_bw_set_progress): rewrite()'s bar */
  m64_layer_decoder_free(d);
  free(buf);
  free(layers);
  free(tensors);
  return rc;
}

typedef struct rewrite_opts {
  const m64_compress_options *z; /* NULL: written plain */
  int progress;
  const m64c_workdir *wd;        /* removed too if a signal stops the rewrite */
  /* aot: the shipped native code goes, and this host's follows the wasm module */
  const char *native_target;
  const uint8_t *wasm_sha256;    /* of the wasm the native code was compiled from */
} rewrite_opts;

/* Rewrites the open bundle *b into out (which may be its own path: *b is closed before the
 * rename replaces it). */
static int rewrite(m64_bundle **b, const char *out, const rewrite_opts *r, m64_err *e) {
  m64_bundle_writer *bw = NULL;
  int rc = m64_bw_open(out, &bw, e);
  if (rc) return rc;
  m64c_track_temp(bw, r->wd);
  if (r->z) rc = m64_bw_set_compression(bw, r->z, e);
  /* Sections keep their order; the writer places the index and the segments itself. A
   * signature covers the file as it was (m64c signs again with --key). */
  const m64_section *wasm = m64_bundle_find_section(*b, M64_SEC_MODULE_WASM, NULL);
  for (uint32_t i = 0; i < m64_bundle_n_sections(*b) && !rc; i++) {
    const m64_section *s = m64_bundle_section_at(*b, i);
    if (s->kind == M64_SEC_SEGMENT || s->kind == M64_SEC_LAYER_INDEX || s->kind == M64_SEC_SIGNATURE ||
        (r->native_target && s->kind == M64_SEC_NATIVE))
      continue;
    rc = m64_bw_add_section(bw, s->kind, s->name, s->data, s->size, e);
    /* native code comes from the first module; a browsers' variant (module.relaxed) follows it */
    if (rc || !r->native_target || s != wasm) continue;
    if (memcmp(s->sha256, r->wasm_sha256, 32) != 0)
      rc = m64_fail(e, M64_EIO, "the bundle's wasm module changed while it was compiled");
    else
      rc = m64c_add_native(bw, r->wd, r->native_target, s->data, s->size, e);
  }
  m64c_bar bar;
  m64c_bar_init(&bar, r->progress);
  m64_bw_set_progress(bw, m64c_bar_cb, &bar); /* writing (decoding, compressing), then hashing */
  if (!rc) rc = m64c_copy_layers(*b, bw, r->progress, e);
  if (!rc) {
    m64_bundle_close(*b); /* the source may be the destination: unmap it before the rename */
    *b = NULL;
    rc = m64_bw_commit(bw, e);
    if (!rc) bw = NULL;
  }
  m64c_bar_done(&bar);
  if (bw) m64_bw_abort(bw);
  m64c_track_temp(NULL, NULL);
  return rc;
}

int m64c_recode(const char *input, const char *output, const m64_compress_options *z, int progress,
                m64_err *e) {
  m64_bundle *b = NULL;
  int rc = m64_bundle_open(input, &b, e);
  if (rc) return rc;
  const rewrite_opts r = {.z = z, .progress = progress};
  rc = rewrite(&b, output ? output : input, &r, e);
  m64_bundle_close(b);
  return rc;
}

/* m64c aot: recompiles the bundle's own wasm for this host. Shipped native code (for any
 * target) is replaced by this host's, compiled here and marked as made on this machine. */
int m64c_aot(const char *bundle, const char *output, int verbose, m64_err *e) {
  m64_bundle *b = NULL;
  m64c_workdir wd = {0};
  int rc;
  if ((rc = m64c_check_toolchain(1, e))) return rc;
  if ((rc = m64_bundle_open(bundle, &b, e))) return rc;
  /* Every layer is copied and rehashed: check them first, or a corrupted layer would come
   * out with a fresh, matching hash. */
  if ((rc = m64_bundle_verify_all(b, e))) goto done;
  const m64_section *wasm = m64_bundle_find_section(b, M64_SEC_MODULE_WASM, NULL);
  if (!wasm) {
    rc = m64_fail(e, M64_EFORMAT, "%s has no wasm module section", bundle);
    goto done;
  }
  if ((rc = m64c_workdir_open(&wd, NULL, e))) goto done;
  m64c_track_temp(NULL, &wd);
  char path[600];
  snprintf(path, sizeof path, "%s/module.wasm", wd.path);
  if ((rc = m64c_write_file(path, wasm->data, wasm->size, e))) goto done;
  if ((rc = m64c_compile_native(&wd, m64c_host_target(), verbose, e))) goto done;
  /* A compressed bundle stays compressed (at the default level). */
  static const m64_compress_options zdefault = {0, 0, 0, 0, 0};
  const rewrite_opts r = {.z = m64_bundle_compressed(b) ? &zdefault : NULL, .wd = &wd,
                          .native_target = m64c_host_target(), .wasm_sha256 = wasm->sha256};
  rc = rewrite(&b, output ? output : bundle, &r, e);
done:
  m64c_track_temp(NULL, NULL);
  m64c_workdir_close(&wd);
  m64_bundle_close(b);
  return rc;
}
