/* fuzz_bundle — the .m64 reader on arbitrary bytes: header, section table, layer index,
 * segments, compressed frames, metadata lookup, layer data and hashes, and the NATIVE
 * sections' ELF objects through the check that precedes dlopen (elf_check.h).
 *
 * Every input runs twice: as given (nearly always stopped by the header SHA-256), and as a
 * copy whose file size, section hashes and header hash the harness has recomputed, so
 * mutations reach the structural checks behind the hashes. A bundle that opens must be
 * consistent (segment sizes, layer sizes, tensor sizes, native sizes, file end: recomputed
 * here independently of the reader): anything else aborts, as a false success.
 *
 * Under libFuzzer a structure-aware mutator (LLVMFuzzerCustomMutator) sets one field the
 * format or the ELF object defines (header, section record, layer and tensor records,
 * native header, ELF header, program and dynamic entries) to a boundary value, and fixes
 * the hashes, half of the time. */
#include <elf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bundle/bundle_internal.h"
#include "elf_check.h"
#include "m64_formats.h"

static volatile uint8_t g_sink;

static void sha(const uint8_t *p, size_t n, uint8_t out[32]) {
  m64_sha256 h;
  m64_sha256_init(&h);
  m64_sha256_update(&h, p, n);
  m64_sha256_final(&h, out);
}

/* Makes the copy's hashes and size field agree with its bytes (where it has room). Sections
 * stored as is only: a compressed section's hash is of its content. */
static void fix_hashes(uint8_t *b, size_t size) {
  if (size < BH_SIZE) return;
  m64__wr_u64(b + BH_FILE_SIZE, size);
  const int z = (m64__rd_u32(b + BH_FLAGS) & BH_F_COMPRESSED) != 0;
  uint32_t n = m64__rd_u32(b + BH_N_SECTIONS);
  if (n > M64_MAX_SECTIONS || BH_SIZE + (uint64_t)n * SR_SIZE > size) return;
  for (uint32_t i = 0; i < n; i++) {
    uint8_t *r = b + BH_SIZE + (size_t)i * SR_SIZE;
    uint64_t off = m64__rd_u64(r + SR_OFFSET), len = m64__rd_u64(r + SR_SIZE_FIELD);
    if (m64__rd_u32(r + SR_KIND) == M64_SEC_SEGMENT || (z && m64__rd_u32(r + SR_CODEC)) || off > size ||
        len > size - off)
      continue;
    sha(b + off, (size_t)len, r + SR_SHA256);
  }
  m64_sha256 h;
  m64_sha256_init(&h);
  m64_sha256_update(&h, b, BH_SHA256);
  m64_sha256_update(&h, b + BH_SIZE, (size_t)n * SR_SIZE);
  m64_sha256_final(&h, b + BH_SHA256);
}

/* What an opened bundle must satisfy, recomputed from the accessors (docs/FORMAT.md,
 * "Consistency rules checked at open"). */
static void check_consistent(const m64_bundle *b, size_t size) {
  const uint32_t ns = m64_bundle_n_sections(b), nl = m64_bundle_n_layers(b);
  const int z = m64_bundle_compressed(b);
  uint64_t last_end = 0;
  for (uint32_t i = 0; i < ns; i++) {
    const m64_section *s = m64_bundle_section_at(b, i);
    uint64_t end = s->offset + s->stored_size;
    if (s->kind == M64_SEC_SEGMENT && !z) end = (end + M64_LAYER_ALIGN - 1) & ~(uint64_t)(M64_LAYER_ALIGN - 1);
    if (end > last_end) last_end = end;
    if (s->offset % 64) abort();
    if (s->kind == M64_SEC_NATIVE) {
      if (s->size < 64) abort();
      const uint64_t code = m64__rd_u64(s->data + 48), mark = m64__rd_u32(s->data + 12) & 1 ? 32 : 0;
      if (64 + code + mark != s->size) abort();
      m64_err e;
      g_sink ^= (uint8_t)m64_elf_check(s->data + 64, (size_t)code, NULL, &e); /* never crashes */
    }
  }
  if (last_end != size) abort();
  for (uint32_t g = 0; g < m64_bundle_n_segments(b); g++) {
    uint64_t end = 0, stored = 0; /* the furthest raw layer end; the frames, back to back */
    for (uint32_t i = 0; i < nl; i++) {
      const m64_layer_entry *l = m64_bundle_layer(b, i);
      if (l->segment != g) continue;
      if (l->offset + l->size > end) end = l->offset + l->size;
      if (z && l->stored_offset != stored) abort();
      stored += l->stored_size;
    }
    char name[48];
    snprintf(name, sizeof name, "segment.%u", g);
    const m64_section *s = m64_bundle_find_section(b, M64_SEC_SEGMENT, name);
    if (!s || s->size != (z ? stored : end)) abort();
  }
  uint64_t total = 0;
  for (uint32_t i = 0; i < nl; i++) {
    const m64_layer_entry *l = m64_bundle_layer(b, i);
    uint64_t end = 0;
    if (z && (l->codec != 1 || l->filter > 1 || l->chunk_size < 4096 || l->chunk_size > (64u << 20) ||
              (l->chunk_size & (l->chunk_size - 1))))
      abort();
    for (uint32_t t = l->first_tensor; t < l->first_tensor + l->n_tensors; t++) {
      const m64_tensor_entry *te = m64_bundle_tensor(b, t);
      const m64_type_info ti = m64_ggml_type_info(te->type);
      uint64_t bytes = te->ne[0] / (ti.block_elems ? ti.block_elems : 1);
      if (!ti.name || !ti.block_elems || te->ne[0] % ti.block_elems || __builtin_mul_overflow(bytes, ti.block_bytes, &bytes) ||
          __builtin_mul_overflow(bytes, te->ne[1], &bytes) || __builtin_mul_overflow(bytes, te->ne[2], &bytes) ||
          __builtin_mul_overflow(bytes, te->ne[3], &bytes) || bytes != te->nbytes)
        abort();
      if (te->offset != ((end + 63) & ~(uint64_t)63)) abort();
      end = te->offset + te->nbytes;
      total += te->nbytes;
    }
    if (l->size != end) abort();
  }
  char v[32];
  if (m64_bundle_meta(b, "model.weight_bytes", v, sizeof v) == 0 && strtoull(v, NULL, 10) != total) abort();
  if (m64_bundle_meta(b, "model.n_blocks", v, sizeof v) == 0 && strtoull(v, NULL, 10) + 1 != nl) abort();
}

static void walk(const uint8_t *data, size_t size) {
  m64_bundle *b = NULL;
  m64_err e;
  if (m64_bundle_open_memory(data, size, &b, &e) != 0) {
    if (b != NULL || !e.msg[0]) abort();
    return;
  }
  check_consistent(b, size);
  const int z = m64_bundle_compressed(b);
  for (uint32_t i = 0; i < m64_bundle_n_sections(b); i++) {
    const m64_section *s = m64_bundle_section_at(b, i);
    if (s->offset > size || s->stored_size > size - s->offset) abort();
    if (!z && s->data != data + s->offset) abort();
    if (s->size) g_sink ^= s->data[0] ^ s->data[s->size - 1];
    if (m64_bundle_find_section(b, s->kind, s->name) == NULL) abort();
  }
  if (m64_bundle_section_at(b, m64_bundle_n_sections(b)) != NULL) abort();
  m64_layer_decoder *d = NULL;
  if (z && m64_layer_decoder_new(&d, &e)) abort();
  for (uint32_t i = 0; i < m64_bundle_n_layers(b); i++) {
    const m64_layer_entry *l = m64_bundle_layer(b, i);
    const uint8_t *p = m64_bundle_layer_data(b, i);
    uint8_t *raw = NULL;
    if (!l) abort();
    if (z) {
      if (p) abort();
      if (l->size > (16u << 20)) continue; /* bounded by 256x its stored bytes; keep runs fast */
      raw = malloc(l->size ? (size_t)l->size : 1);
      if (!raw) continue;
      if (m64_bundle_read_layer(b, i, d, raw, i & 1, &e) == 0) p = raw;
    } else if (!p || p < data || l->size > (uint64_t)(data + size - p)) {
      abort();
    }
    if (l->first_tensor + (uint64_t)l->n_tensors > m64_bundle_n_tensors(b)) abort();
    for (uint32_t t = 0; p && t < l->n_tensors; t++) {
      const m64_tensor_entry *te = m64_bundle_tensor(b, l->first_tensor + t);
      if (te->offset > l->size || te->nbytes > l->size - te->offset) abort();
      if (te->nbytes) g_sink ^= p[te->offset] ^ p[te->offset + te->nbytes - 1];
    }
    free(raw);
    if (l->size <= (16u << 20)) m64_bundle_verify_layer(b, i, &e);
  }
  m64_layer_decoder_free(d);
  if (m64_bundle_layer_data(b, m64_bundle_n_layers(b)) != NULL) abort();
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

#ifdef M64_LIBFUZZER
/* ---- structure-aware mutation: fields, not bytes */
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

typedef struct fld { size_t at; int w; } fld;

static uint64_t next(unsigned *seed) {
  *seed = *seed * 1103515245u + 12345u;
  return *seed >> 8;
}

/* Appends the field [pos, pos + width) when it lies in the input and there is room. */
static void add(fld *f, size_t *k, size_t cap, size_t n, uint64_t pos, int width) {
  if (*k < cap && pos <= n && (uint64_t)width <= n - pos) f[(*k)++] = (fld){(size_t)pos, width};
}

/* The fields of the bundle in data as far as its bytes describe them (no validation: the
 * point is to break them), up to cap of them. */
static size_t fields(const uint8_t *b, size_t n, fld *f, size_t cap) {
  size_t k = 0;
#define ADD(pos, width) add(f, &k, cap, n, (uint64_t)(pos), (width))
  if (n < BH_SIZE) return 0;
  static const fld hdr[] = {{BH_VERSION, 4}, {BH_FLAGS, 4}, {BH_N_SECTIONS, 4}, {BH_RESERVED0, 4},
                            {BH_TABLE_OFFSET, 8}, {BH_FILE_SIZE, 8}, {BH_RESERVED1, 8}};
  for (size_t i = 0; i < sizeof hdr / sizeof hdr[0]; i++) ADD(hdr[i].at, hdr[i].w);
  uint32_t ns = m64__rd_u32(b + BH_N_SECTIONS);
  if (ns > M64_MAX_SECTIONS) ns = M64_MAX_SECTIONS;
  const int z = (m64__rd_u32(b + BH_FLAGS) & BH_F_COMPRESSED) != 0;
  for (uint32_t i = 0; i < ns && BH_SIZE + (size_t)(i + 1) * SR_SIZE <= n; i++) {
    const size_t r = BH_SIZE + (size_t)i * SR_SIZE;
    ADD(r + SR_KIND, 4), ADD(r + SR_CODEC, 4), ADD(r + SR_OFFSET, 8), ADD(r + SR_SIZE_FIELD, 8);
    ADD(r + SR_RAW_SIZE, 8), ADD(r + SR_NAME + 47, 1);
    const uint32_t kind = m64__rd_u32(b + r + SR_KIND);
    const uint64_t off = m64__rd_u64(b + r + SR_OFFSET), len = m64__rd_u64(b + r + SR_SIZE_FIELD);
    if (off > n || len > n - off || (z && m64__rd_u32(b + r + SR_CODEC))) continue;
    if (kind == M64_SEC_LAYER_INDEX && len >= LI_HEADER_SIZE) {
      const uint32_t nl = m64__rd_u32(b + off + LI_N_LAYERS), lr = z ? LR_SIZE_Z : LR_SIZE;
      for (int j = 0; j < 6; j++) ADD(off + 4 * j, 4);
      for (uint64_t p = off + LI_HEADER_SIZE, l = 0; l < nl && p + lr <= off + len; p += lr, l++) {
        ADD(p + LR_SEGMENT, 4), ADD(p + LR_FIRST_TENSOR, 4), ADD(p + LR_N_TENSORS, 4), ADD(p + LR_OFFSET, 8);
        ADD(p + LR_SIZE_FIELD, 8), ADD(p + LR_RESERVED, 4);
        if (z) ADD(p + LR_STORED_OFFSET, 8), ADD(p + LR_STORED_SIZE, 8), ADD(p + LR_CHUNK_SIZE, 4), ADD(p + LR_FILTER, 4);
      }
      for (uint64_t p = off + LI_HEADER_SIZE + (uint64_t)nl * lr; p + TR_SIZE <= off + len; p += TR_SIZE) {
        ADD(p + TR_TYPE, 4), ADD(p + TR_N_DIMS, 4), ADD(p + TR_NE, 8), ADD(p + TR_NE + 8, 8);
        ADD(p + TR_OFFSET, 8), ADD(p + TR_NBYTES, 8), ADD(p + TR_LAYOUT, 4);
      }
    }
    if (kind == M64_SEC_NATIVE && len >= 64 + sizeof(Elf64_Ehdr)) {
      ADD(off + 8, 4), ADD(off + 12, 4), ADD(off + 48, 8), ADD(off + 56, 8);
      const uint64_t o = off + 64, end = off + len;
      Elf64_Ehdr h;
      memcpy(&h, b + o, sizeof h);
      static const fld eh[] = {{16, 2}, {18, 2}, {32, 8}, {40, 8}, {54, 2}, {56, 2}, {60, 2}};
      for (size_t j = 0; j < sizeof eh / sizeof eh[0]; j++) ADD(o + eh[j].at, eh[j].w);
      for (uint32_t j = 0; j < h.e_phnum && j < 64 && h.e_phoff < end - o &&
                           o + h.e_phoff + (j + 1) * sizeof(Elf64_Phdr) <= end; j++) {
        const uint64_t ph = o + h.e_phoff + j * sizeof(Elf64_Phdr);
        Elf64_Phdr p;
        memcpy(&p, b + ph, sizeof p);
        ADD(ph, 4), ADD(ph + 4, 4); /* p_type, p_flags */
        for (int q = 1; q < 7; q++) ADD(ph + 8 * q, 8); /* p_offset .. p_align */
        if (p.p_type == PT_DYNAMIC && p.p_offset < end - o)
          for (uint64_t dd = o + p.p_offset; dd + 16 <= end && dd < o + p.p_offset + p.p_filesz; dd += 16)
            ADD(dd, 8), ADD(dd + 8, 8);
      }
    }
  }
#undef ADD
  return k;
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed) {
  if (seed & 1) return LLVMFuzzerMutate(data, size, max_size);
  static fld f[65536];
  const size_t k = fields(data, size, f, sizeof f / sizeof f[0]);
  if (!k) return LLVMFuzzerMutate(data, size, max_size);
  unsigned s = seed;
  const fld x = f[next(&s) % k];
  uint64_t v = 0;
  for (int i = x.w - 1; i >= 0; i--) v = v << 8 | data[x.at + (size_t)i];
  switch (next(&s) % 10) {
    case 0: v = 0; break;
    case 1: v += 1; break;
    case 2: v -= 1; break;
    case 3: v = ~0ull; break;
    case 4: v += 64; break;
    case 5: v += 65536; break;
    case 6: v = size; break;
    case 7: v = 0x7fff00000000ull; break;
    case 8: v ^= 1ull << (next(&s) % (unsigned)(8 * x.w)); break;
    default: v = next(&s); break;
  }
  for (int i = 0; i < x.w; i++) data[x.at + (size_t)i] = (uint8_t)(v >> (8 * i));
  if (next(&s) & 1) fix_hashes(data, size);
  return size;
}
#endif
