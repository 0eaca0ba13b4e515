/* layout.c — placing layers and tensors inside image segments, and the LAYER_INDEX codec. */
#include <stdlib.h>
#include <string.h>

#include "bundle_internal.h"

typedef struct span { uint32_t segment, layer; uint64_t start, end; } span;

static int span_cmp(const void *a, const void *b) {
  const span *x = (const span *)a, *y = (const span *)b;
  if (x->segment != y->segment) return x->segment < y->segment ? -1 : 1;
  if (x->start != y->start) return x->start < y->start ? -1 : 1;
  return x->layer < y->layer ? -1 : x->layer > y->layer;
}

/* Names label layers and tensors in every message and in m64c info: two alike would make
 * an error name the wrong one. Sorted copies of the name pointers find duplicates. */
static int name_cmp(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}
static int check_unique(const char *what, const char *names, size_t stride, uint32_t n, m64_err *e) {
  if (n < 2) return 0;
  const char **v = (const char **)malloc(n * sizeof *v);
  if (!v) return m64_fail(e, M64_ENOMEM, "out of memory");
  for (uint32_t i = 0; i < n; i++) v[i] = names + (size_t)i * stride;
  qsort(v, n, sizeof *v, name_cmp);
  int rc = 0;
  for (uint32_t i = 1; i < n && !rc; i++)
    if (strcmp(v[i - 1], v[i]) == 0) rc = m64_fail(e, M64_EFORMAT, "two %ss are named '%s'", what, v[i]);
  free(v);
  return rc;
}

/* A tensor's byte size follows from its type and shape; the module reads exactly that
 * many bytes, so a record that says otherwise is rejected. */
static int check_nbytes(uint32_t t, const m64_tensor_entry *te, m64_err *e) {
  const m64_type_info ti = m64_ggml_type_info(te->type);
  uint64_t row = 0, rows = 1, want = 0;
  if (!ti.name || ti.block_elems == 0)
    return m64_fail(e, M64_EFORMAT, "tensor %u '%s': unknown type %u", t, te->name, te->type);
  if (m64_ggml_row_bytes(te->type, te->ne[0], &row))
    return m64_fail(e, M64_EFORMAT, "tensor %u '%s': row length ne[0] = %llu is not a multiple of the %s block (%u)",
                    t, te->name, (unsigned long long)te->ne[0], ti.name, ti.block_elems);
  for (int d = 1; d < 4; d++)
    if (m64__mul_ovf(rows, te->ne[d], &rows)) rows = UINT64_MAX;
  if (rows == UINT64_MAX || m64__mul_ovf(row, rows, &want))
    return m64_fail(e, M64_EFORMAT, "tensor %u '%s': shape [%llu, %llu, %llu, %llu] overflows", t, te->name,
                    (unsigned long long)te->ne[0], (unsigned long long)te->ne[1],
                    (unsigned long long)te->ne[2], (unsigned long long)te->ne[3]);
  if (te->nbytes != want)
    return m64_fail(e, M64_EFORMAT, "tensor %u '%s': nbytes %llu, but type %s and shape [%llu, %llu, %llu, %llu] make %llu bytes",
                    t, te->name, (unsigned long long)te->nbytes, ti.name, (unsigned long long)te->ne[0],
                    (unsigned long long)te->ne[1], (unsigned long long)te->ne[2],
                    (unsigned long long)te->ne[3], (unsigned long long)want);
  return 0;
}

/* Every tensor must belong to exactly one layer. */
static int check_ownership(const m64_layer_entry *layers, uint32_t n_layers, uint32_t n_tensors,
                           m64_err *e) {
  uint8_t *owned = (uint8_t *)calloc(n_tensors ? n_tensors : 1, 1);
  if (!owned) return m64_fail(e, M64_ENOMEM, "out of memory");
  int rc = 0;
  for (uint32_t i = 0; i < n_layers && !rc; i++) {
    const m64_layer_entry *l = &layers[i];
    if (l->first_tensor > n_tensors || l->n_tensors > n_tensors - l->first_tensor) {
      rc = m64_fail(e, M64_EFORMAT, "layer %u: tensors [%u, +%u) outside the tensor table (%u)", i,
                    l->first_tensor, l->n_tensors, n_tensors);
      break;
    }
    for (uint32_t t = l->first_tensor; t < l->first_tensor + l->n_tensors; t++) {
      if (owned[t]) {
        rc = m64_fail(e, M64_EFORMAT, "tensor %u belongs to two layers (second: layer %u)", t, i);
        break;
      }
      owned[t] = 1;
    }
  }
  for (uint32_t t = 0; t < n_tensors && !rc; t++)
    if (!owned[t]) rc = m64_fail(e, M64_EFORMAT, "tensor %u belongs to no layer", t);
  free(owned);
  return rc;
}

int m64__check_layout(const m64_layer_entry *layers, uint32_t n_layers,
                      const m64_tensor_entry *tensors, uint32_t n_tensors, uint32_t n_segments,
                      const uint64_t *segment_sizes, m64_err *e) {
  if (n_layers > M64_MAX_LAYERS)
    return m64_fail(e, M64_ELIMIT, "%u layers exceed the limit of %u", n_layers, M64_MAX_LAYERS);
  if (n_tensors > M64_MAX_TENSORS)
    return m64_fail(e, M64_ELIMIT, "%u tensors exceed the limit of %u", n_tensors, M64_MAX_TENSORS);
  if (n_segments > M64_MAX_SECTIONS)
    return m64_fail(e, M64_ELIMIT, "%u segments exceed the limit of %u", n_segments, M64_MAX_SECTIONS);
  int rc = check_ownership(layers, n_layers, n_tensors, e);
  if (rc) return rc;
  for (uint32_t t = 0; t < n_tensors; t++) {
    const m64_tensor_entry *te = &tensors[t];
    if (!memchr(te->name, 0, sizeof te->name) || te->name[0] == 0)
      return m64_fail(e, M64_EFORMAT, "tensor %u: name empty or not NUL-terminated", t);
    if (te->n_dims == 0 || te->n_dims > M64_MAX_DIMS)
      return m64_fail(e, M64_EFORMAT, "tensor %u '%s': n_dims %u not in 1..%u", t, te->name,
                      te->n_dims, M64_MAX_DIMS);
    for (uint32_t d = te->n_dims; d < 4; d++)
      if (te->ne[d] != 1)
        return m64_fail(e, M64_EFORMAT, "tensor %u '%s': unused dimension %u is %llu, not 1", t,
                        te->name, d, (unsigned long long)te->ne[d]);
    if (te->layout > M64_LAYOUT_PAIRS)
      return m64_fail(e, M64_EFORMAT, "tensor %u '%s': unknown block layout %u", t, te->name, te->layout);
    if (te->layout == M64_LAYOUT_PAIRS && te->n_dims != 2)
      return m64_fail(e, M64_EFORMAT, "tensor %u '%s': a row-pair layout needs a matrix, not %u dims", t,
                      te->name, te->n_dims);
    if (te->offset % M64_TENSOR_ALIGN)
      return m64_fail(e, M64_EFORMAT, "tensor %u '%s': offset %llu not %u-byte aligned", t,
                      te->name, (unsigned long long)te->offset, M64_TENSOR_ALIGN);
    if ((rc = check_nbytes(t, te, e))) return rc;
  }
  for (uint32_t i = 0; i < n_layers; i++)
    if (!memchr(layers[i].name, 0, sizeof layers[i].name) || layers[i].name[0] == 0)
      return m64_fail(e, M64_EFORMAT, "layer %u: name empty or not NUL-terminated", i);
  if ((n_layers > 1 && (rc = check_unique("layer", layers[0].name, sizeof *layers, n_layers, e))) ||
      (n_tensors > 1 && (rc = check_unique("tensor", tensors[0].name, sizeof *tensors, n_tensors, e))))
    return rc;
  span *spans = (span *)malloc((n_layers ? n_layers : 1) * sizeof *spans);
  /* where the next layer of each segment belongs: layers are placed in order, each at the
   * previous one's end rounded up to M64_LAYER_ALIGN, so no byte of a segment is both
   * outside every layer and inside the span the layers claim */
  uint64_t *next = (uint64_t *)calloc(n_segments ? n_segments : 1, sizeof *next);
  if (!spans || !next) {
    free(spans);
    free(next);
    return m64_fail(e, M64_ENOMEM, "out of memory");
  }
  for (uint32_t i = 0; i < n_layers && !rc; i++) {
    const m64_layer_entry *l = &layers[i];
    uint64_t end, prev_end = 0;
    if (l->segment >= n_segments)
      rc = m64_fail(e, M64_EFORMAT, "layer %u '%s': segment %u does not exist (%u segments)", i,
                    l->name, l->segment, n_segments);
    else if (l->offset % M64_LAYER_ALIGN)
      rc = m64_fail(e, M64_EFORMAT, "layer %u '%s': offset %llu not %u-byte aligned", i, l->name,
                    (unsigned long long)l->offset, M64_LAYER_ALIGN);
    else if (l->offset != next[l->segment])
      rc = m64_fail(e, M64_EFORMAT, "layer %u '%s': offset %llu in segment %u, but it belongs at %llu (%s)", i,
                    l->name, (unsigned long long)l->offset, l->segment, (unsigned long long)next[l->segment],
                    next[l->segment] ? "the previous layer's end there, 64 KiB-aligned" : "the segment's start");
    else if (m64__add_ovf(l->offset, l->size, &end) || end > segment_sizes[l->segment] ||
             m64__align_up(end, M64_LAYER_ALIGN, &next[l->segment]))
      rc = m64_fail(e, M64_EFORMAT, "layer %u '%s': size %llu at offset %llu goes beyond its segment %u (%llu bytes)",
                    i, l->name, (unsigned long long)l->size, (unsigned long long)l->offset,
                    l->segment, (unsigned long long)segment_sizes[l->segment]);
    /* Tensors sit where the planner puts them: the first at 0, each next one at the end of
     * the one before rounded up to M64_TENSOR_ALIGN; the layer ends where its last tensor
     * does. So the bytes the layer hash covers are exactly the tensors and their padding. */
    for (uint32_t t = l->first_tensor; t < l->first_tensor + l->n_tensors && !rc; t++) {
      const m64_tensor_entry *te = &tensors[t];
      uint64_t tend, want = 0;
      if (t > l->first_tensor && m64__align_up(prev_end, M64_TENSOR_ALIGN, &want))
        want = UINT64_MAX;
      if (te->offset != want)
        rc = m64_fail(e, M64_EFORMAT, "tensor %u '%s': offset %llu in layer '%s', but it belongs at %llu (%s)",
                      t, te->name, (unsigned long long)te->offset, l->name, (unsigned long long)want,
                      t > l->first_tensor ? "the previous tensor's end, 64-byte aligned" : "the layer's start");
      else if (m64__add_ovf(te->offset, te->nbytes, &tend) || tend > l->size)
        rc = m64_fail(e, M64_EFORMAT, "tensor %u '%s': [%llu, +%llu) outside layer '%s' (size %llu)",
                      t, te->name, (unsigned long long)te->offset, (unsigned long long)te->nbytes,
                      l->name, (unsigned long long)l->size);
      else
        prev_end = tend;
    }
    if (!rc && l->size != prev_end)
      rc = m64_fail(e, M64_EFORMAT, "layer %u '%s': recorded size %llu but its tensors end at %llu; its hash covers %llu bytes, so the record is inconsistent",
                    i, l->name, (unsigned long long)l->size, (unsigned long long)prev_end,
                    (unsigned long long)l->size);
    spans[i] = (span){l->segment, i, l->offset, l->offset + l->size};
  }
  if (!rc && n_layers > 1) {
    qsort(spans, n_layers, sizeof *spans, span_cmp);
    for (uint32_t i = 1; i < n_layers && !rc; i++)
      if (spans[i].segment == spans[i - 1].segment && spans[i].start < spans[i - 1].end)
        rc = m64_fail(e, M64_EFORMAT, "layers '%s' and '%s' overlap in segment %u",
                      layers[spans[i - 1].layer].name, layers[spans[i].layer].name, spans[i].segment);
  }
  free(spans);
  free(next);
  return rc;
}

int m64_plan_layout(m64_layer_entry *layers, uint32_t n_layers, m64_tensor_entry *tensors,
                    uint32_t n_tensors, uint64_t segment_max, uint32_t *n_segments,
                    uint64_t *segment_sizes, m64_err *e) {
  if (segment_max == 0) segment_max = M64_SEGMENT_MAX;
  *n_segments = 0;
  if (n_layers > M64_MAX_LAYERS)
    return m64_fail(e, M64_ELIMIT, "%u layers exceed the limit of %u", n_layers, M64_MAX_LAYERS);
  if (n_tensors > M64_MAX_TENSORS)
    return m64_fail(e, M64_ELIMIT, "%u tensors exceed the limit of %u", n_tensors, M64_MAX_TENSORS);
  int rc = check_ownership(layers, n_layers, n_tensors, e);
  if (rc) return rc;
  uint32_t seg = 0;
  uint64_t cur = 0;
  int seg_used = 0;
  for (uint32_t i = 0; i < n_layers; i++) {
    m64_layer_entry *l = &layers[i];
    uint64_t off = 0, start, end;
    for (uint32_t t = l->first_tensor; t < l->first_tensor + l->n_tensors; t++) {
      if (m64__align_up(off, M64_TENSOR_ALIGN, &off) || m64__add_ovf(off, tensors[t].nbytes, &end))
        return m64_fail(e, M64_ELIMIT, "layer %u '%.32s': size overflows", i, l->name);
      tensors[t].offset = off;
      off = end;
    }
    l->size = off;
    memset(l->sha256, 0, sizeof l->sha256);
    if (l->size > segment_max)
      return m64_fail(e, M64_ELIMIT,
                      "layer %u '%.32s' is %llu bytes, larger than the segment maximum of %llu", i,
                      l->name, (unsigned long long)l->size, (unsigned long long)segment_max);
    if (m64__align_up(cur, M64_LAYER_ALIGN, &start) || m64__add_ovf(start, l->size, &end) ||
        end > segment_max) {
      if (seg_used) {
        if (++seg >= M64_MAX_SECTIONS)
          return m64_fail(e, M64_ELIMIT, "more than %u segments needed", M64_MAX_SECTIONS);
        seg_used = 0;
      }
      start = 0;
      end = l->size;
    }
    l->segment = seg;
    l->offset = start;
    cur = end;
    segment_sizes[seg] = cur;
    seg_used = 1;
  }
  uint32_t nseg = n_layers ? seg + 1 : 0;
  rc = m64__check_layout(layers, n_layers, tensors, n_tensors, nseg, segment_sizes, e);
  if (rc) return rc;
  *n_segments = nseg;
  return 0;
}

uint64_t m64__layer_index_size(uint32_t n_layers, uint32_t n_tensors, int compressed) {
  return LI_HEADER_SIZE + (uint64_t)n_layers * (compressed ? LR_SIZE_Z : LR_SIZE) +
         (uint64_t)n_tensors * TR_SIZE;
}

void m64__encode_layer_index(uint8_t *out, const m64_layer_entry *layers, uint32_t n_layers,
                             const m64_tensor_entry *tensors, uint32_t n_tensors,
                             uint32_t n_segments, int compressed) {
  const uint32_t lr = compressed ? LR_SIZE_Z : LR_SIZE;
  memset(out, 0, m64__layer_index_size(n_layers, n_tensors, compressed));
  m64__wr_u32(out + LI_N_LAYERS, n_layers);
  m64__wr_u32(out + LI_N_TENSORS, n_tensors);
  m64__wr_u32(out + LI_N_SEGMENTS, n_segments);
  m64__wr_u32(out + LI_LAYER_SIZE_F, lr);
  m64__wr_u32(out + LI_TENSOR_SIZE_F, TR_SIZE);
  uint8_t *p = out + LI_HEADER_SIZE;
  for (uint32_t i = 0; i < n_layers; i++, p += lr) {
    const m64_layer_entry *l = &layers[i];
    memcpy(p + LR_NAME, l->name, strnlen(l->name, sizeof l->name - 1));
    m64__wr_u32(p + LR_SEGMENT, l->segment);
    m64__wr_u32(p + LR_FIRST_TENSOR, l->first_tensor);
    m64__wr_u32(p + LR_N_TENSORS, l->n_tensors);
    m64__wr_u64(p + LR_OFFSET, l->offset);
    m64__wr_u64(p + LR_SIZE_FIELD, l->size);
    memcpy(p + LR_SHA256, l->sha256, 32);
    if (compressed) {
      m64__wr_u64(p + LR_STORED_OFFSET, l->stored_offset);
      m64__wr_u64(p + LR_STORED_SIZE, l->stored_size);
      memcpy(p + LR_STORED_SHA256, l->stored_sha256, 32);
      m64__wr_u32(p + LR_CODEC, l->codec);
      m64__wr_u32(p + LR_FILTER, l->filter);
      m64__wr_u32(p + LR_CHUNK_SIZE, l->chunk_size);
    }
  }
  for (uint32_t i = 0; i < n_tensors; i++, p += TR_SIZE) {
    const m64_tensor_entry *t = &tensors[i];
    memcpy(p + TR_NAME, t->name, strnlen(t->name, sizeof t->name - 1));
    m64__wr_u32(p + TR_TYPE, t->type);
    m64__wr_u32(p + TR_N_DIMS, t->n_dims);
    for (int d = 0; d < 4; d++) m64__wr_u64(p + TR_NE + 8 * d, t->ne[d]);
    m64__wr_u64(p + TR_OFFSET, t->offset);
    m64__wr_u64(p + TR_NBYTES, t->nbytes);
    m64__wr_u32(p + TR_LAYOUT, t->layout);
  }
}
