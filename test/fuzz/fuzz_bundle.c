/* fuzz_bundle — the .m64 reader on arbitrary bytes: header, section table, layer index,
 * metadata lookup, layer data and hashes.
 *
 * Every input runs twice: as given (nearly always stopped by the header SHA-256), and as a
 * copy whose file size, section hashes and header hash the harness has recomputed, so
 * mutations reach the structural checks behind the hashes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bundle/bundle_internal.h"
#include "m64_formats.h"

static volatile uint8_t g_sink;

static void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void sha(const uint8_t *p, size_t n, uint8_t out[32]) {
  m64_sha256 h;
  m64_sha256_init(&h);
  m64_sha256_update(&h, p, n);
  m64_sha256_final(&h, out);
}

/* Makes the copy's hashes and size field agree with its bytes (where it has room). */
static void fix_hashes(uint8_t *b, size_t size) {
  if (size < BH_SIZE) return;
  put64(b + BH_FILE_SIZE, size);
  uint32_t n = m64__rd_u32(b + BH_N_SECTIONS);
  if (n > M64_MAX_SECTIONS || BH_SIZE + (uint64_t)n * SR_SIZE > size) return;
  for (uint32_t i = 0; i < n; i++) {
    uint8_t *r = b + BH_SIZE + (size_t)i * SR_SIZE;
    uint64_t off = m64__rd_u64(r + SR_OFFSET), len = m64__rd_u64(r + SR_SIZE_FIELD);
    if (m64__rd_u32(r + SR_KIND) == M64_SEC_SEGMENT || off > size || len > size - off) continue;
    sha(b + off, (size_t)len, r + SR_SHA256);
  }
  m64_sha256 h;
  m64_sha256_init(&h);
  m64_sha256_update(&h, b, BH_SHA256);
  m64_sha256_update(&h, b + BH_SIZE, (size_t)n * SR_SIZE);
  m64_sha256_final(&h, b + BH_SHA256);
}

static void walk(const uint8_t *data, size_t size) {
  m64_bundle *b = NULL;
  m64_err e;
  if (m64_bundle_open_memory(data, size, &b, &e) != 0) {
    if (b != NULL || !e.msg[0]) abort();
    return;
  }
  for (uint32_t i = 0; i < m64_bundle_n_sections(b); i++) {
    const m64_section *s = m64_bundle_section_at(b, i);
    if (s->offset > size || s->size > size - s->offset || s->data != data + s->offset) abort();
    if (s->size) g_sink ^= s->data[0] ^ s->data[s->size - 1];
    if (m64_bundle_find_section(b, s->kind, s->name) == NULL) abort();
  }
  if (m64_bundle_section_at(b, m64_bundle_n_sections(b)) != NULL) abort();
  for (uint32_t i = 0; i < m64_bundle_n_layers(b); i++) {
    const m64_layer_entry *l = m64_bundle_layer(b, i);
    const uint8_t *p = m64_bundle_layer_data(b, i);
    if (!l || !p || p < data || l->size > (uint64_t)(data + size - p)) abort();
    if (l->first_tensor + (uint64_t)l->n_tensors > m64_bundle_n_tensors(b)) abort();
    for (uint32_t t = 0; t < l->n_tensors; t++) {
      const m64_tensor_entry *te = m64_bundle_tensor(b, l->first_tensor + t);
      if (te->offset > l->size || te->nbytes > l->size - te->offset) abort();
      if (te->nbytes) g_sink ^= p[te->offset] ^ p[te->offset + te->nbytes - 1];
    }
    m64_bundle_verify_layer(b, i, &e);
  }
  if (m64_bundle_layer_data(b, m64_bundle_n_layers(b)) != NULL) abort();
  m64_bundle_verify_all(b, &e);
  char v[64];
  m64_bundle_meta(b, "general.architecture", v, sizeof v);
  m64_bundle_meta(b, "model.n_vocab", v, 1);
  m64_bundle_close(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  walk(data, size);
  uint8_t *copy = malloc(size ? size : 1);
  if (!copy) return 0;
  memcpy(copy, data, size);
  fix_hashes(copy, size);
  walk(copy, size);
  free(copy);
  return 0;
}
