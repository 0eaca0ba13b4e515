/* compress.c — `m64c compress` / `m64c decompress`: rewrites a bundle with every section
 * and layer zstd-compressed, or back to the plain, mmap-friendly form. The layout (layer
 * and tensor records, segments) and every section's content are kept, so decompressing a
 * compressed bundle gives back the original file byte for byte. */
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
  (void)progress; /* the writer reports (m64_bw_set_progress): m64c_recode's bar */
  m64_layer_decoder_free(d);
  free(buf);
  free(layers);
  free(tensors);
  return rc;
}

int m64c_recode(const char *input, const char *output, const m64_compress_options *z, int progress,
                m64_err *e) {
  m64_bundle *b = NULL;
  m64_bundle_writer *bw = NULL;
  const char *out = output ? output : input;
  int rc = m64_bundle_open(input, &b, e);
  if (rc) return rc;
  if ((rc = m64_bw_open(out, &bw, e))) goto done;
  m64c_track_bundle_temp(bw);
  if (z && (rc = m64_bw_set_compression(bw, z, e))) goto done;
  /* Sections keep their order; the writer places the index and the segments itself. */
  for (uint32_t i = 0; i < m64_bundle_n_sections(b) && !rc; i++) {
    const m64_section *s = m64_bundle_section_at(b, i);
    /* a signature covers the file as it was, not the recoded one: it goes (m64c signs
     * again with --key) */
    if (s->kind == M64_SEC_SEGMENT || s->kind == M64_SEC_LAYER_INDEX || s->kind == M64_SEC_SIGNATURE) continue;
    rc = m64_bw_add_section(bw, s->kind, s->name, s->data, s->size, e);
  }
  m64c_bar bar;
  m64c_bar_init(&bar, progress);
  m64_bw_set_progress(bw, m64c_bar_cb, &bar); /* writing (decoding, compressing), then hashing */
  if (!rc) rc = m64c_copy_layers(b, bw, progress, e);
  if (rc) {
    m64c_bar_done(&bar);
    goto done;
  }
  /* The source may be the destination: unmap it before the rename replaces it. */
  m64_bundle_close(b);
  b = NULL;
  rc = m64_bw_commit(bw, e);
  m64c_bar_done(&bar);
  if (rc == 0) bw = NULL;
done:
  if (bw) m64_bw_abort(bw);
  m64c_track_bundle_temp(NULL);
  m64_bundle_close(b);
  return rc;
}
