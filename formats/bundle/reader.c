/* reader.c — maps and validates a .m64 bundle. Everything but layer bytes is checked at
 * open (structure and hashes), so later accessors can trust what they return. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bundle_internal.h"

struct m64_bundle {
  const uint8_t *base;
  size_t size;
  int mapped;
  uint32_t version;
  uint32_t n_sections, n_layers, n_tensors, n_segments;
  uint32_t n_blocks, n_experts; /* from the metadata (check_metadata) */
  m64_section *sections;
  m64_layer_entry *layers;
  m64_tensor_entry *tensors;
  uint32_t *segment_sec; /* section index of segment i */
  int compressed;        /* header flag BH_F_COMPRESSED */
  uint8_t **content;     /* per section: decompressed bytes (compressed sections only) */
};

static int all_zero(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i]) return 0;
  return 1;
}

/* A name field: NUL-terminated, every byte after the NUL zero (as the writer leaves it). */
static int padded_name(const uint8_t *p, size_t n) {
  const uint8_t *nul = (const uint8_t *)memchr(p, 0, n);
  return nul && all_zero(nul, n - (size_t)(nul - p));
}

typedef struct sorted { uint64_t start, end; uint32_t idx; } sorted;
static int sorted_cmp(const void *a, const void *b) {
  const sorted *x = (const sorted *)a, *y = (const sorted *)b;
  if (x->start != y->start) return x->start < y->start ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1; /* empty sections first */
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* What the section checks in parse_header_and_table leave to the record: every byte of it
 * is a field or zero, and its offset is aligned. *end becomes where the section's bytes
 * end in the file: an uncompressed segment is mapped in whole 64 KiB pages (already
 * checked to lie in the file), so its padding belongs to it. */
static int check_record(const m64_bundle *b, const uint8_t *r, const m64_section *s, uint32_t i,
                        uint64_t *end, m64_err *e) {
  const size_t name_len = strlen(s->name);
  const uint32_t reserved = b->compressed ? SR_RAW_SIZE + 8 : SR_RESERVED1;
  if (!all_zero(r + SR_NAME + name_len, sizeof s->name - name_len))
    return m64_fail(e, M64_EFORMAT, "section %u '%s': bytes after the name's NUL are not zero", i, s->name);
  if (!all_zero(r + reserved, SR_SIZE - reserved))
    return m64_fail(e, M64_EFORMAT, "section %u '%s': reserved bytes %u..%u are not zero", i, s->name,
                    reserved, SR_SIZE);
  if (s->offset % SECTION_ALIGN)
    return m64_fail(e, M64_EFORMAT, "section %u '%s': offset %llu not %u-byte aligned", i, s->name,
                    (unsigned long long)s->offset, SECTION_ALIGN);
  if (s->kind == M64_SEC_SEGMENT && !b->compressed) (void)m64__align_up(*end, M64_LAYER_ALIGN, end);
  return 0;
}

/* Sections a bundle has one of at most: readers take the first, so a second would be
 * ignored by one tool and used by another. */
static int check_kinds(const m64_bundle *b, m64_err *e) {
  static const struct { uint32_t kind; const char *what; } once[] = {
      {M64_SEC_METADATA, "METADATA"}, {M64_SEC_TOKENIZER, "TOKENIZER"},
      {M64_SEC_LAYER_INDEX, "LAYER_INDEX"}, {M64_SEC_MODULE_WASM, "MODULE_WASM"}};
  for (size_t k = 0; k < sizeof once / sizeof once[0]; k++) {
    uint32_t n = 0;
    for (uint32_t i = 0; i < b->n_sections; i++) n += b->sections[i].kind == once[k].kind;
    /* MODULE_WASM: the module, then optionally its relaxed-SIMD variant for browsers */
    const int relaxed = once[k].kind == M64_SEC_MODULE_WASM && m64_bundle_find_section(b, M64_SEC_MODULE_WASM, M64_RELAXED_MODULE);
    if (n > 1 + (uint32_t)relaxed)
      return m64_fail(e, M64_EFORMAT, "%u %s sections; a bundle has one at most%s", n, once[k].what,
                      relaxed ? " beside its " M64_RELAXED_MODULE : "");
  }
  const m64_section *wasm = m64_bundle_find_section(b, M64_SEC_MODULE_WASM, NULL);
  if (wasm && !strcmp(wasm->name, M64_RELAXED_MODULE)) /* what native code is compiled from comes first */
    return m64_fail(e, M64_EFORMAT, "the " M64_RELAXED_MODULE " section comes before the module it is a variant of");
  return 0;
}

/* A NATIVE section's 64-byte header (docs/FORMAT.md) against the section's size. The code
 * itself is not looked at here: nothing parses it before the runtime accepts it. */
static int check_native(const m64_section *s, uint32_t i, m64_err *e) {
  m64_native_section ns;
  m64_err why;
  if (m64_native_section_parse(s->data, s->size, &ns, &why) == 0) return 0;
  return m64_fail(e, M64_EFORMAT, "section %u '%s', %s", i, s->name, why.msg);
}

static int parse_header_and_table(m64_bundle *b, m64_err *e) {
  const uint8_t *p = b->base;
  if (b->size == 0) return m64_fail(e, M64_EFORMAT, "empty file (0 bytes)");
  if (b->size >= 4 && memcmp(p, "GGUF", 4) == 0) /* the llama.cpp user's first file: say what it is */
    return m64_fail(e, M64_EFORMAT, "not an .m64 bundle (bad magic): it is a GGUF model; compile it with "
                                    "`m64c build MODEL.gguf -o MODEL.m64`, or run it as it is with `m64run MODEL.gguf`");
  if (b->size < 8 || memcmp(p, M64_BUNDLE_MAGIC, 8) != 0)
    return m64_fail(e, M64_EFORMAT, "not an .m64 bundle (bad magic)");
  if (b->size < BH_SIZE)
    return m64_fail(e, M64_EFORMAT, "file of %zu bytes is too small for the %u-byte header",
                    b->size, BH_SIZE);
  b->version = m64__rd_u32(p + BH_VERSION);
  if (b->version != M64_BUNDLE_VERSION)
    return m64_fail(e, M64_EUNSUPPORTED, "bundle version %u is not supported (expected %u)",
                    b->version, M64_BUNDLE_VERSION);
  uint32_t flags = m64__rd_u32(p + BH_FLAGS);
  if (flags & ~BH_F_COMPRESSED) return m64_fail(e, M64_EUNSUPPORTED, "unknown header flags 0x%x", flags);
  b->compressed = (flags & BH_F_COMPRESSED) != 0;
  if (m64__rd_u32(p + BH_HEADER_SIZE) != BH_SIZE || m64__rd_u32(p + BH_RECORD_SIZE) != SR_SIZE ||
      m64__rd_u64(p + BH_TABLE_OFFSET) != BH_SIZE)
    return m64_fail(e, M64_EFORMAT, "header size %u / record size %u / table offset %llu differ from v1 (%u / %u / %u)",
                    m64__rd_u32(p + BH_HEADER_SIZE), m64__rd_u32(p + BH_RECORD_SIZE),
                    (unsigned long long)m64__rd_u64(p + BH_TABLE_OFFSET), BH_SIZE, SR_SIZE, BH_SIZE);
  uint64_t file_size = m64__rd_u64(p + BH_FILE_SIZE);
  if (file_size != b->size)
    return m64_fail(e, M64_EFORMAT, "header says the file is %llu bytes, it is %zu (truncated or extended?)",
                    (unsigned long long)file_size, b->size);
  uint32_t n = m64__rd_u32(p + BH_N_SECTIONS);
  if (n > M64_MAX_SECTIONS)
    return m64_fail(e, M64_ELIMIT, "%u sections exceed the limit of %u", n, M64_MAX_SECTIONS);
  uint64_t table_end = BH_SIZE + (uint64_t)n * SR_SIZE;
  if (table_end > b->size)
    return m64_fail(e, M64_EFORMAT, "section table [%u, %llu) past end of file (size %zu)", BH_SIZE,
                    (unsigned long long)table_end, b->size);
  uint8_t digest[32];
  m64_sha256 h;
  m64_sha256_init(&h);
  m64_sha256_update(&h, p, BH_SHA256);
  m64_sha256_update(&h, p + BH_SIZE, (size_t)(table_end - BH_SIZE));
  m64_sha256_final(&h, digest);
  if (memcmp(digest, p + BH_SHA256, 32) != 0)
    return m64_fail(e, M64_EHASH, "header/section table SHA-256 mismatch");
  /* Reserved bytes are zero: a reader must not silently ignore a field it does not know. */
  if (m64__rd_u32(p + BH_RESERVED0) || !all_zero(p + BH_RESERVED1, BH_SHA256 - BH_RESERVED1))
    return m64_fail(e, M64_EFORMAT, "header: reserved bytes (at %u and %u..%u) are not zero", BH_RESERVED0,
                    BH_RESERVED1, BH_SHA256);

  b->n_sections = n;
  b->sections = (m64_section *)calloc(n ? n : 1, sizeof *b->sections);
  b->content = (uint8_t **)calloc(n ? n : 1, sizeof *b->content);
  sorted *order = (sorted *)malloc((n ? n : 1) * sizeof *order);
  if (!b->sections || !b->content || !order) {
    free(order);
    return m64_fail(e, M64_ENOMEM, "out of memory");
  }
  int rc = 0;
  for (uint32_t i = 0; i < n && !rc; i++) {
    const uint8_t *r = p + BH_SIZE + (size_t)i * SR_SIZE;
    m64_section *s = &b->sections[i];
    uint64_t end = 0;
    s->kind = m64__rd_u32(r + SR_KIND);
    memcpy(s->name, r + SR_NAME, sizeof s->name);
    s->offset = m64__rd_u64(r + SR_OFFSET);
    s->size = m64__rd_u64(r + SR_SIZE_FIELD);
    memcpy(s->sha256, r + SR_SHA256, 32);
    s->codec = m64__rd_u32(r + SR_CODEC);
    s->stored_size = s->size;
    const uint64_t raw_size = b->compressed ? m64__rd_u64(r + SR_RAW_SIZE) : s->size;
    if (!memchr(s->name, 0, sizeof s->name) || s->name[0] == 0) {
      rc = m64_fail(e, M64_EFORMAT, "section %u: name empty or not NUL-terminated", i);
    } else if (s->kind < M64_SEC_METADATA || s->kind > M64_SEC_SIGNATURE) {
      rc = m64_fail(e, M64_EFORMAT, "section %u '%s': unknown kind %u", i, s->name, s->kind);
    } else if (s->offset < table_end || m64__add_ovf(s->offset, s->size, &end) || end > b->size) {
      rc = m64_fail(e, M64_EFORMAT, "section %u '%s': [%llu, +%llu) outside the file body [%llu, %zu)",
                    i, s->name, (unsigned long long)s->offset, (unsigned long long)s->size,
                    (unsigned long long)table_end, b->size);
    } else if (s->codec > (b->compressed ? CODEC_ZSTD : CODEC_NONE) ||
               (s->kind == M64_SEC_SEGMENT && s->codec != CODEC_NONE)) {
      rc = m64_fail(e, M64_EFORMAT, "section %u '%s': codec %u not allowed here", i, s->name, s->codec);
    } else if (s->codec == CODEC_NONE && raw_size != s->size) {
      rc = m64_fail(e, M64_EFORMAT, "section %u '%s': stored as is, but content size %llu != size %llu",
                    i, s->name, (unsigned long long)raw_size, (unsigned long long)s->size);
    } else if (s->codec == CODEC_ZSTD &&
               (raw_size > Z_MAX_SECTION_RAW || raw_size > s->size * Z_MAX_RATIO + Z_SLACK)) {
      rc = m64_fail(e, M64_ELIMIT, "section %u '%s': content size %llu for %llu compressed bytes exceeds the limits (1 GiB, %ux)",
                    i, s->name, (unsigned long long)raw_size, (unsigned long long)s->size, Z_MAX_RATIO);
    } else if (s->kind == M64_SEC_SEGMENT && b->compressed) {
      if (s->offset % SECTION_ALIGN)
        rc = m64_fail(e, M64_EFORMAT, "section %u '%s': segment offset %llu not %u-byte aligned", i,
                      s->name, (unsigned long long)s->offset, SECTION_ALIGN);
      else if (!all_zero(s->sha256, 32))
        rc = m64_fail(e, M64_EFORMAT, "section %u '%s': segment hash field must be zero", i, s->name);
    } else if (s->kind == M64_SEC_SEGMENT) {
      uint64_t page_end = 0;
      if (s->offset % M64_LAYER_ALIGN)
        rc = m64_fail(e, M64_EFORMAT, "section %u '%s': segment offset %llu not %u-byte aligned", i,
                      s->name, (unsigned long long)s->offset, M64_LAYER_ALIGN);
      else if (m64__align_up(end, M64_LAYER_ALIGN, &page_end) || page_end > b->size)
        rc = m64_fail(e, M64_EFORMAT, "section %u '%s': segment pages end at %llu, past end of file (size %zu)",
                      i, s->name, (unsigned long long)(page_end), b->size);
      else if (!all_zero(s->sha256, 32))
        rc = m64_fail(e, M64_EFORMAT, "section %u '%s': segment hash field must be zero", i, s->name);
    }
    if (rc || (rc = check_record(b, r, s, i, &end, e))) break;
    s->data = p + s->offset;
    s->stored_size = raw_size; /* swapped below: size becomes the content's, stored_size the file's */
    for (uint32_t j = 0; j < i; j++)
      if (b->sections[j].kind == s->kind && strcmp(b->sections[j].name, s->name) == 0) {
        rc = m64_fail(e, M64_EFORMAT, "section %u '%s': duplicate of section %u", i, s->name, j);
        break;
      }
    order[i] = (sorted){s->offset, end, i};
  }
  if (!rc && n > 1) {
    qsort(order, n, sizeof *order, sorted_cmp);
    for (uint32_t i = 1; i < n && !rc; i++)
      if (order[i].start < order[i - 1].end)
        rc = m64_fail(e, M64_EFORMAT, "sections '%s' and '%s' overlap",
                      b->sections[order[i - 1].idx].name, b->sections[order[i].idx].name);
  }
  /* The file ends where its last section does: bytes past it would be covered by no hash
   * and read by nothing (sections do not overlap, so the last in order ends last). */
  if (!rc && n > 0 && order[n - 1].end != b->size)
    rc = m64_fail(e, M64_EFORMAT, "header file_size %zu, but the last section ('%s') ends at %llu",
                  b->size, b->sections[order[n - 1].idx].name, (unsigned long long)order[n - 1].end);
  free(order);
  if (!rc) rc = check_kinds(b, e);
  if (rc) return rc;
  for (uint32_t i = 0; i < n; i++) {
    m64_section *s = &b->sections[i];
    const uint64_t raw_size = s->stored_size;
    s->stored_size = s->size;
    if (s->codec == CODEC_ZSTD) {
      if ((rc = m64__z_decompress_section(s->data, (size_t)s->size, raw_size, &b->content[i], e))) {
        char tmp[sizeof e->msg];
        snprintf(tmp, sizeof tmp, "%s", e ? e->msg : "");
        return m64_fail(e, rc, "section %u '%s': %s", i, s->name, tmp);
      }
      s->data = b->content[i];
      s->size = raw_size;
    }
    if (s->kind == M64_SEC_SEGMENT) continue;
    m64_sha256_init(&h);
    m64_sha256_update(&h, s->data, (size_t)s->size);
    m64_sha256_final(&h, digest);
    if (memcmp(digest, s->sha256, 32) != 0)
      return m64_fail(e, M64_EHASH, "section %u '%s': SHA-256 mismatch", i, s->name);
    if (s->kind == M64_SEC_NATIVE && (rc = check_native(s, i, e))) return rc;
  }
  return 0;
}

/* Compressed bundles: each layer's frames fill its segment section back to back, in layer
 * order, from the section's first byte to its last; its codec fields are ones the decoder
 * knows, and its raw size is bounded by what its frames can decode to. On success seg_size
 * holds the raw segment sizes (the furthest raw layer end) for check_layout. */
static int check_stored(m64_bundle *b, uint64_t *seg_size, m64_err *e) {
  uint64_t *stored_end = (uint64_t *)calloc(b->n_segments ? b->n_segments : 1, sizeof *stored_end);
  if (!stored_end) return m64_fail(e, M64_ENOMEM, "out of memory");
  int rc = 0;
  for (uint32_t i = 0; i < b->n_layers && !rc; i++) {
    const m64_layer_entry *l = &b->layers[i];
    uint64_t end;
    if (l->segment >= b->n_segments)
      rc = m64_fail(e, M64_EFORMAT, "layer %u: segment %u does not exist (%u segments)", i, l->segment,
                    b->n_segments);
    else if (l->codec != CODEC_ZSTD)
      rc = m64_fail(e, M64_EFORMAT, "layer %u: codec %u is not zstd (1)", i, l->codec);
    else if (l->filter > FILTER_SPLIT)
      rc = m64_fail(e, M64_EFORMAT, "layer %u: unknown filter %u", i, l->filter);
    else if (l->chunk_size < Z_CHUNK_MIN || l->chunk_size > Z_CHUNK_MAX || !m64__is_pow2(l->chunk_size))
      rc = m64_fail(e, M64_EFORMAT, "layer %u: chunk_size %u is not a power of two in [%u, %u]", i,
                    l->chunk_size, Z_CHUNK_MIN, Z_CHUNK_MAX);
    else if (l->stored_offset != stored_end[l->segment])
      rc = m64_fail(e, M64_EFORMAT, "layer %u: stored_offset %llu, but the previous layer's frames in segment %u end at %llu",
                    i, (unsigned long long)l->stored_offset, l->segment,
                    (unsigned long long)stored_end[l->segment]);
    else if (m64__add_ovf(l->stored_offset, l->stored_size, &end) ||
             end > b->sections[b->segment_sec[l->segment]].size)
      rc = m64_fail(e, M64_EFORMAT, "layer %u: stored_size %llu at %llu goes beyond its segment 'segment.%u' (%llu bytes)",
                    i, (unsigned long long)l->stored_size, (unsigned long long)l->stored_offset, l->segment,
                    (unsigned long long)b->sections[b->segment_sec[l->segment]].size);
    else if (l->size > l->stored_size * Z_MAX_RATIO + Z_SLACK)
      rc = m64_fail(e, M64_ELIMIT, "layer %u: %llu raw bytes from %llu stored exceed the %ux limit", i,
                    (unsigned long long)l->size, (unsigned long long)l->stored_size, Z_MAX_RATIO);
    else
      stored_end[l->segment] = end;
  }
  for (uint32_t g = 0; g < b->n_segments && !rc; g++)
    if (stored_end[g] != b->sections[b->segment_sec[g]].size)
      rc = m64_fail(e, M64_EFORMAT, "segment 'segment.%u': section size %llu, but its layers' frames end at %llu",
                    g, (unsigned long long)b->sections[b->segment_sec[g]].size,
                    (unsigned long long)stored_end[g]);
  free(stored_end);
  /* Raw segment sizes are implied by the layers (no file bytes back them). */
  for (uint32_t s = 0; s < b->n_segments; s++) seg_size[s] = 0;
  for (uint32_t i = 0; i < b->n_layers && !rc; i++) {
    const m64_layer_entry *l = &b->layers[i];
    uint64_t end;
    if (m64__add_ovf(l->offset, l->size, &end))
      return m64_fail(e, M64_EFORMAT, "layer %u: extent overflows", i);
    if (end > seg_size[l->segment]) seg_size[l->segment] = end;
  }
  return rc;
}

/* Uncompressed bundles: a segment ends where its furthest layer does. A longer section
 * would hold bytes no layer hash covers, a shorter one is caught by check_layout. */
static int check_segment_sizes(const m64_bundle *b, m64_err *e) {
  uint64_t *end = (uint64_t *)calloc(b->n_segments ? b->n_segments : 1, sizeof *end);
  if (!end) return m64_fail(e, M64_ENOMEM, "out of memory");
  for (uint32_t i = 0; i < b->n_layers; i++) {
    const m64_layer_entry *l = &b->layers[i];
    if (l->offset + l->size > end[l->segment]) end[l->segment] = l->offset + l->size; /* checked: no overflow */
  }
  int rc = 0;
  for (uint32_t g = 0; g < b->n_segments && !rc; g++) {
    const m64_section *s = &b->sections[b->segment_sec[g]];
    if (s->size != end[g])
      rc = m64_fail(e, M64_EFORMAT, "segment '%s': recorded size %llu, but its layers end at %llu", s->name,
                    (unsigned long long)s->size, (unsigned long long)end[g]);
  }
  free(end);
  return rc;
}

/* Compressed bundles: the frame headers of every layer against the streams its tensor
 * records imply (declared sizes, frame lengths, nothing after the last frame), without
 * decompressing anything. */
static int check_frames(const m64_bundle *b, m64_err *e) {
  for (uint32_t i = 0; i < b->n_layers; i++) {
    int rc = m64__z_check_frames(&b->layers[i], b->tensors, m64_bundle_layer_stored(b, i), e);
    if (rc) return rc;
  }
  return 0;
}

/* Metadata that restates the layer index (written by m64c build) must agree with it. */
static int meta_u64(const m64_bundle *b, const char *key, uint64_t *v, int *present, m64_err *e) {
  char text[32], *end = NULL;
  *present = 0;
  const int rc = m64_bundle_meta(b, key, text, sizeof text);
  if (rc == M64_ENOTFOUND) return 0;
  if (rc == 0 && text[0] >= '0' && text[0] <= '9') {
    errno = 0;
    *v = strtoull(text, &end, 10);
    if (errno == 0 && end && *end == 0) {
      *present = 1;
      return 0;
    }
  }
  return m64_fail(e, M64_EFORMAT, "metadata '%s' = '%s' is not a number", key, rc ? "(too long)" : text);
}

static int check_metadata(m64_bundle *b, m64_err *e) {
  uint64_t v = 0, total = 0;
  int present = 0, rc;
  uint64_t experts = 0;
  int has_experts = 0;
  if ((rc = meta_u64(b, "model.n_experts", &experts, &has_experts, e))) return rc;
  if (experts > M64_MAX_EXPERTS)
    return m64_fail(e, M64_EFORMAT, "metadata model.n_experts = %llu exceeds %u", (unsigned long long)experts,
                    M64_MAX_EXPERTS);
  if ((rc = meta_u64(b, "model.n_blocks", &v, &present, e))) return rc;
  /* globals, the blocks, then each block's experts (an MoE model's paging units) */
  if (present && (v >= M64_MAX_LAYERS || v * (1 + experts) + 1 != b->n_layers))
    return m64_fail(e, M64_EFORMAT,
                    "metadata model.n_blocks = %llu and model.n_experts = %llu, but the layer index has %u layers "
                    "(globals + blocks + experts)",
                    (unsigned long long)v, (unsigned long long)experts, b->n_layers);
  if (!present && has_experts) return m64_fail(e, M64_EFORMAT, "metadata model.n_experts without model.n_blocks");
  b->n_blocks = present ? (uint32_t)v : b->n_layers - 1;
  b->n_experts = (uint32_t)experts;
  if ((rc = meta_u64(b, "model.weight_bytes", &v, &present, e))) return rc;
  /* no overflow: tensors lie in their layers, which do not overlap in their segments */
  for (uint32_t t = 0; t < b->n_tensors; t++) total += b->tensors[t].nbytes;
  if (present && v != total)
    return m64_fail(e, M64_EFORMAT, "metadata model.weight_bytes = %llu, but the layer index's tensors hold %llu bytes",
                    (unsigned long long)v, (unsigned long long)total);
  return 0;
}

static int parse_layer_index(m64_bundle *b, m64_err *e) {
  const m64_section *idx = m64_bundle_find_section(b, M64_SEC_LAYER_INDEX, NULL);
  if (!idx) return m64_fail(e, M64_EFORMAT, "no LAYER_INDEX section");
  for (uint32_t i = 0; i < b->n_sections; i++)
    if (b->sections[i].kind == M64_SEC_LAYER_INDEX && &b->sections[i] != idx)
      return m64_fail(e, M64_EFORMAT, "more than one LAYER_INDEX section");
  const uint8_t *p = idx->data;
  if (idx->size < LI_HEADER_SIZE)
    return m64_fail(e, M64_EFORMAT, "LAYER_INDEX of %llu bytes is smaller than its header",
                    (unsigned long long)idx->size);
  uint32_t nl = m64__rd_u32(p + LI_N_LAYERS), nt = m64__rd_u32(p + LI_N_TENSORS),
           ns = m64__rd_u32(p + LI_N_SEGMENTS);
  const uint32_t lr = b->compressed ? LR_SIZE_Z : LR_SIZE;
  if (m64__rd_u32(p + LI_LAYER_SIZE_F) != lr || m64__rd_u32(p + LI_TENSOR_SIZE_F) != TR_SIZE)
    return m64_fail(e, M64_EFORMAT, "LAYER_INDEX record sizes %u / %u differ from %s (%u / %u)",
                    m64__rd_u32(p + LI_LAYER_SIZE_F), m64__rd_u32(p + LI_TENSOR_SIZE_F),
                    b->compressed ? "a compressed bundle's" : "v1", lr, TR_SIZE);
  if (!all_zero(p + LI_TENSOR_SIZE_F + 4, LI_HEADER_SIZE - LI_TENSOR_SIZE_F - 4))
    return m64_fail(e, M64_EFORMAT, "LAYER_INDEX header: reserved bytes are not zero");
  if (nl > M64_MAX_LAYERS || nt > M64_MAX_TENSORS || ns > M64_MAX_SECTIONS)
    return m64_fail(e, M64_ELIMIT, "LAYER_INDEX counts %u layers / %u tensors / %u segments exceed the limits (%u / %u / %u)",
                    nl, nt, ns, M64_MAX_LAYERS, M64_MAX_TENSORS, M64_MAX_SECTIONS);
  if (idx->size != m64__layer_index_size(nl, nt, b->compressed))
    return m64_fail(e, M64_EFORMAT, "LAYER_INDEX is %llu bytes, %u layers and %u tensors need %llu",
                    (unsigned long long)idx->size, nl, nt,
                    (unsigned long long)m64__layer_index_size(nl, nt, b->compressed));
  /* Segment i is the SEGMENT section named "segment.i"; there must be exactly ns of them. */
  uint32_t n_seg_sections = 0;
  for (uint32_t i = 0; i < b->n_sections; i++) n_seg_sections += b->sections[i].kind == M64_SEC_SEGMENT;
  if (n_seg_sections != ns)
    return m64_fail(e, M64_EFORMAT, "LAYER_INDEX names %u segments, the file has %u", ns, n_seg_sections);
  b->segment_sec = (uint32_t *)malloc((ns ? ns : 1) * sizeof *b->segment_sec);
  b->layers = (m64_layer_entry *)calloc(nl ? nl : 1, sizeof *b->layers);
  b->tensors = (m64_tensor_entry *)calloc(nt ? nt : 1, sizeof *b->tensors);
  uint64_t *seg_size = (uint64_t *)malloc((ns ? ns : 1) * sizeof *seg_size);
  if (!b->segment_sec || !b->layers || !b->tensors || !seg_size) {
    free(seg_size);
    return m64_fail(e, M64_ENOMEM, "out of memory");
  }
  for (uint32_t i = 0; i < ns; i++) {
    char name[48];
    snprintf(name, sizeof name, "segment.%u", i);
    const m64_section *s = m64_bundle_find_section(b, M64_SEC_SEGMENT, name);
    if (!s) {
      free(seg_size);
      return m64_fail(e, M64_EFORMAT, "segment section '%s' is missing", name);
    }
    b->segment_sec[i] = (uint32_t)(s - b->sections);
    seg_size[i] = s->size;
  }
  const uint8_t *r = p + LI_HEADER_SIZE;
  for (uint32_t i = 0; i < nl; i++, r += lr) {
    m64_layer_entry *l = &b->layers[i];
    memcpy(l->name, r + LR_NAME, sizeof l->name);
    l->segment = m64__rd_u32(r + LR_SEGMENT);
    l->first_tensor = m64__rd_u32(r + LR_FIRST_TENSOR);
    l->n_tensors = m64__rd_u32(r + LR_N_TENSORS);
    l->offset = m64__rd_u64(r + LR_OFFSET);
    l->size = m64__rd_u64(r + LR_SIZE_FIELD);
    memcpy(l->sha256, r + LR_SHA256, 32);
    if (!padded_name(r + LR_NAME, sizeof l->name) || m64__rd_u32(r + LR_RESERVED) ||
        (b->compressed && m64__rd_u32(r + LR_CHUNK_SIZE + 4))) {
      free(seg_size);
      return m64_fail(e, M64_EFORMAT, "layer %u: name not NUL-terminated and zero-padded, or reserved bytes not zero", i);
    }
    if (b->compressed) {
      l->stored_offset = m64__rd_u64(r + LR_STORED_OFFSET);
      l->stored_size = m64__rd_u64(r + LR_STORED_SIZE);
      memcpy(l->stored_sha256, r + LR_STORED_SHA256, 32);
      l->codec = m64__rd_u32(r + LR_CODEC);
      l->filter = m64__rd_u32(r + LR_FILTER);
      l->chunk_size = m64__rd_u32(r + LR_CHUNK_SIZE);
    } else {
      l->stored_offset = l->offset;
      l->stored_size = l->size;
      memcpy(l->stored_sha256, l->sha256, 32);
    }
  }
  for (uint32_t i = 0; i < nt; i++, r += TR_SIZE) {
    m64_tensor_entry *t = &b->tensors[i];
    memcpy(t->name, r + TR_NAME, sizeof t->name);
    t->type = m64__rd_u32(r + TR_TYPE);
    t->n_dims = m64__rd_u32(r + TR_N_DIMS);
    for (int d = 0; d < 4; d++) t->ne[d] = m64__rd_u64(r + TR_NE + 8 * d);
    t->offset = m64__rd_u64(r + TR_OFFSET);
    t->nbytes = m64__rd_u64(r + TR_NBYTES);
    t->layout = m64__rd_u32(r + TR_LAYOUT);
    if (!padded_name(r + TR_NAME, sizeof t->name) || m64__rd_u32(r + TR_LAYOUT + 4)) {
      free(seg_size);
      return m64_fail(e, M64_EFORMAT, "tensor %u: name not NUL-terminated and zero-padded, or reserved bytes not zero", i);
    }
  }
  b->n_layers = nl;
  b->n_tensors = nt;
  b->n_segments = ns;
  int rc = b->compressed ? check_stored(b, seg_size, e) : 0;
  if (!rc) rc = m64__check_layout(b->layers, nl, b->tensors, nt, ns, seg_size, e);
  free(seg_size);
  if (!rc) rc = b->compressed ? check_frames(b, e) : check_segment_sizes(b, e);
  if (!rc) rc = check_metadata(b, e);
  return rc;
}

static int open_common(const uint8_t *base, size_t size, int mapped, m64_bundle **out, m64_err *e) {
  m64_bundle *b = (m64_bundle *)calloc(1, sizeof *b);
  if (!b) {
    if (mapped) m64__unmap_file(base, size);
    return m64_fail(e, M64_ENOMEM, "out of memory");
  }
  b->base = base;
  b->size = size;
  b->mapped = mapped;
  int rc = parse_header_and_table(b, e);
  if (!rc) rc = parse_layer_index(b, e);
  if (rc) {
    m64_bundle_close(b);
    return rc;
  }
  *out = b;
  return 0;
}

int m64_bundle_open(const char *path, m64_bundle **out, m64_err *e) {
  const uint8_t *base;
  size_t size;
  *out = NULL;
  int rc = m64__map_file(path, &base, &size, e);
  if (rc) return rc;
  rc = open_common(base, size, 1, out, e);
  if (rc && e) {
    char tmp[sizeof e->msg];
    snprintf(tmp, sizeof tmp, "%s", e->msg);
    m64_fail(e, rc, "%s: %s", path, tmp);
  }
  return rc;
}

int m64_bundle_open_memory(const void *data, size_t size, m64_bundle **out, m64_err *e) {
  *out = NULL;
  if (!data && size) return m64_fail(e, M64_EIO, "NULL buffer");
  return open_common((const uint8_t *)data, size, 0, out, e);
}

void m64_bundle_close(m64_bundle *b) {
  if (!b) return;
  free(b->sections);
  free(b->layers);
  free(b->tensors);
  free(b->segment_sec);
  if (b->content)
    for (uint32_t i = 0; i < b->n_sections; i++) free(b->content[i]);
  free(b->content);
  if (b->mapped) m64__unmap_file(b->base, b->size);
  free(b);
}

uint32_t m64_bundle_version(const m64_bundle *b) { return b->version; }
uint64_t m64_bundle_file_size(const m64_bundle *b) { return b->size; }
uint32_t m64_bundle_n_sections(const m64_bundle *b) { return b->n_sections; }
const m64_section *m64_bundle_section_at(const m64_bundle *b, uint32_t i) {
  return i < b->n_sections ? &b->sections[i] : NULL;
}
const m64_section *m64_bundle_find_section(const m64_bundle *b, uint32_t kind, const char *name) {
  for (uint32_t i = 0; i < b->n_sections; i++)
    if (b->sections[i].kind == kind && (!name || strcmp(b->sections[i].name, name) == 0))
      return &b->sections[i];
  return NULL;
}
uint32_t m64_bundle_n_layers(const m64_bundle *b) { return b->n_layers; }
uint32_t m64_bundle_n_blocks(const m64_bundle *b) { return b->n_blocks; }
uint32_t m64_bundle_n_experts(const m64_bundle *b) { return b->n_experts; }
const m64_layer_entry *m64_bundle_layer(const m64_bundle *b, uint32_t i) {
  return i < b->n_layers ? &b->layers[i] : NULL;
}
uint32_t m64_bundle_n_tensors(const m64_bundle *b) { return b->n_tensors; }
const m64_tensor_entry *m64_bundle_tensor(const m64_bundle *b, uint32_t i) {
  return i < b->n_tensors ? &b->tensors[i] : NULL;
}
uint32_t m64_bundle_n_segments(const m64_bundle *b) { return b->n_segments; }

const uint8_t *m64_bundle_header_bytes(const m64_bundle *b, size_t *len) {
  *len = BH_SIZE + (size_t)b->n_sections * SR_SIZE;
  return b->base;
}

const uint8_t *m64_bundle_layer_data(const m64_bundle *b, uint32_t i) {
  if (i >= b->n_layers || b->compressed) return NULL;
  const m64_layer_entry *l = &b->layers[i];
  return b->sections[b->segment_sec[l->segment]].data + l->offset;
}

int m64_bundle_compressed(const m64_bundle *b) { return b->compressed; }

const uint8_t *m64_bundle_layer_stored(const m64_bundle *b, uint32_t i) {
  if (i >= b->n_layers) return NULL;
  const m64_layer_entry *l = &b->layers[i];
  return b->sections[b->segment_sec[l->segment]].data + l->stored_offset;
}

static int check_stored_hash(const m64_bundle *b, uint32_t i, m64_err *e) {
  const m64_layer_entry *l = &b->layers[i];
  uint8_t digest[32];
  m64_sha256 h;
  m64_sha256_init(&h);
  m64_sha256_update(&h, m64_bundle_layer_stored(b, i), (size_t)l->stored_size);
  m64_sha256_final(&h, digest);
  if (memcmp(digest, l->stored_sha256, 32) == 0) return 0;
  char want[65], got[65];
  m64_sha256_hex(l->stored_sha256, want);
  m64_sha256_hex(digest, got);
  return m64_fail(e, M64_EHASH, "layer %u '%s': SHA-256 of its compressed bytes mismatch (expected %s, got %s)",
                  i, l->name, want, got);
}

static int check_raw_hash(const m64_layer_entry *l, uint32_t i, const uint8_t digest[32], m64_err *e) {
  if (memcmp(digest, l->sha256, 32) == 0) return 0;
  char want[65], got[65];
  m64_sha256_hex(l->sha256, want);
  m64_sha256_hex(digest, got);
  return m64_fail(e, M64_EHASH, "layer %u '%s': SHA-256 mismatch (expected %s, got %s)", i, l->name,
                  want, got);
}

int m64_bundle_read_layer(const m64_bundle *b, uint32_t i, m64_layer_decoder *d, uint8_t *dst,
                          int verify, m64_err *e) {
  if (i >= b->n_layers)
    return m64_fail(e, M64_ENOTFOUND, "layer %u out of range (%u layers)", i, b->n_layers);
  const m64_layer_entry *l = &b->layers[i];
  int rc;
  if (!b->compressed) {
    if (verify && (rc = m64_bundle_verify_layer(b, i, e))) return rc;
    memcpy(dst, m64_bundle_layer_data(b, i), (size_t)l->size);
    return 0;
  }
  if (verify && (rc = check_stored_hash(b, i, e))) return rc;
  if ((rc = m64_layer_decode(l, b->tensors, m64_bundle_layer_stored(b, i), d, dst, e))) return rc;
  if (!verify) return 0;
  uint8_t digest[32];
  m64_sha256 h;
  m64_sha256_init(&h);
  m64_sha256_update(&h, dst, (size_t)l->size);
  m64_sha256_final(&h, digest);
  return check_raw_hash(l, i, digest, e);
}

int m64_bundle_verify_layer(const m64_bundle *b, uint32_t i, m64_err *e) {
  if (i >= b->n_layers)
    return m64_fail(e, M64_ENOTFOUND, "layer %u out of range (%u layers)", i, b->n_layers);
  const m64_layer_entry *l = &b->layers[i];
  uint8_t digest[32];
  if (b->compressed) {
    int rc = check_stored_hash(b, i, e);
    if (rc) return rc;
    m64_layer_decoder *d;
    if ((rc = m64_layer_decoder_new(&d, e))) return rc;
    rc = m64__z_hash_layer(l, b->tensors, m64_bundle_layer_stored(b, i), d, digest, e);
    m64_layer_decoder_free(d);
    return rc ? rc : check_raw_hash(l, i, digest, e);
  }
  return m64_bundle_check_layer_bytes(b, i, m64_bundle_layer_data(b, i), e);
}

int m64_bundle_check_layer_bytes(const m64_bundle *b, uint32_t i, const uint8_t *data, m64_err *e) {
  if (i >= b->n_layers)
    return m64_fail(e, M64_ENOTFOUND, "layer %u out of range (%u layers)", i, b->n_layers);
  const m64_layer_entry *l = &b->layers[i];
  uint8_t digest[32];
  m64_sha256 h;
  m64_sha256_init(&h);
  m64_sha256_update(&h, data, (size_t)l->size);
  m64_sha256_final(&h, digest);
  return check_raw_hash(l, i, digest, e);
}

int m64_bundle_verify_all(const m64_bundle *b, m64_err *e) {
  return m64_bundle_verify_all_progress(b, NULL, NULL, e);
}

int m64_bundle_verify_all_progress(const m64_bundle *b, m64_progress_fn fn, void *ctx, m64_err *e) {
  uint8_t digest[32];
  uint64_t total = 0, done = 0;
  for (uint32_t i = 0; i < b->n_layers; i++) total += b->layers[i].size;
  for (uint32_t i = 0; i < b->n_sections; i++) {
    const m64_section *s = &b->sections[i];
    if (s->kind == M64_SEC_SEGMENT) continue;
    m64_sha256 h;
    m64_sha256_init(&h);
    m64_sha256_update(&h, s->data, (size_t)s->size);
    m64_sha256_final(&h, digest);
    if (memcmp(digest, s->sha256, 32) != 0)
      return m64_fail(e, M64_EHASH, "section %u '%s': SHA-256 mismatch", i, s->name);
  }
  for (uint32_t i = 0; i < b->n_layers; i++) {
    int rc = m64_bundle_verify_layer(b, i, e);
    if (rc) return rc;
    done += b->layers[i].size;
    if (fn) fn(ctx, "verifying", done, total);
  }
  return 0;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

int m64_bundle_meta(const m64_bundle *b, const char *key, char *out, size_t out_size) {
  const m64_section *s = m64_bundle_find_section(b, M64_SEC_METADATA, NULL);
  if (!s) return M64_ENOTFOUND;
  const char *p = (const char *)s->data, *end = p + s->size;
  size_t klen = strlen(key);
  while (p < end) {
    const char *nl = (const char *)memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    const char *eq = (const char *)memchr(p, '=', (size_t)(le - p));
    if (eq) {
      const char *ks = p, *ke = eq;
      while (ks < ke && is_space(*ks)) ks++;
      while (ke > ks && is_space(ke[-1])) ke--;
      if ((size_t)(ke - ks) == klen && memcmp(ks, key, klen) == 0) {
        const char *vs = eq + 1, *ve = le;
        while (vs < ve && is_space(*vs)) vs++;
        while (ve > vs && is_space(ve[-1])) ve--;
        size_t n = (size_t)(ve - vs);
        if (!out || out_size == 0) return M64_ELIMIT;
        if (n >= out_size) {
          memcpy(out, vs, out_size - 1);
          out[out_size - 1] = 0;
          return M64_ELIMIT;
        }
        memcpy(out, vs, n);
        out[n] = 0;
        return 0;
      }
    }
    p = le + 1;
  }
  return M64_ENOTFOUND;
}
