/* m64-hostile OUT_DIR BUNDLE... — writes a corpus of hostile variants of real bundles,
 * for test/fuzz/hostile_corpus.sh (issue 21: no crash, no false success):
 *
 *   truncations at many offsets (with and without a header that agrees);
 *   every header and section-table field set to boundary values;
 *   every LAYER_INDEX header, layer and tensor field (a sample of tensors) likewise;
 *   the targeted ones: a segment one byte longer or shorter than its layers, a layer shrunk
 *   with its old hash kept (with and without its last tensor shrunk to match), a tensor
 *   moved inside its layer;
 *   the NATIVE section's header, and its ELF object (first bundle): truncated at many sizes, ELF header,
 *   every program header, every dynamic entry, symbols, relocations, hash and version
 *   tables set to wild values.
 *
 * Hashes are recomputed after each change (sections stored as is, the header), so the
 * structural checks behind them are what sees it. A compressed bundle's LAYER_INDEX is
 * first rewritten stored as is at the end of the file, so its records can be changed.
 *
 * Writes OUT_DIR/NNNNN.m64 and OUT_DIR/manifest: "file<TAB>expect<TAB>what" per line,
 * expect = "fail" when the bundle is inconsistent or corrupt (every run must fail with an
 * error), "any" when it may still run (a label changed, or an ELF byte the loader may
 * tolerate: only crashes and hangs count). */
#include <elf.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bundle/bundle_internal.h"
#include "m64_formats.h"

typedef struct buf { uint8_t *p; size_t n; } buf;

static const char *g_out;
static FILE *g_manifest;
static unsigned g_count;
static int g_z; /* the base is a compressed bundle */

static buf copy(const buf *b) {
  buf c = {malloc(b->n ? b->n : 1), b->n};
  if (!c.p) abort();
  memcpy(c.p, b->p, b->n);
  return c;
}

static void sha(const uint8_t *p, size_t n, uint8_t out[32]) {
  m64_sha256 h;
  m64_sha256_init(&h);
  m64_sha256_update(&h, p, n);
  m64_sha256_final(&h, out);
}

/* Hashes of every section stored as is (content = file bytes) and of the header, as far
 * as the records let them be computed. */
static void rehash(buf *b) {
  if (b->n < BH_SIZE) return;
  uint32_t n = m64__rd_u32(b->p + BH_N_SECTIONS);
  if (n > M64_MAX_SECTIONS || BH_SIZE + (uint64_t)n * SR_SIZE > b->n) return;
  for (uint32_t i = 0; i < n; i++) {
    uint8_t *r = b->p + BH_SIZE + (size_t)i * SR_SIZE;
    const uint64_t off = m64__rd_u64(r + SR_OFFSET), len = m64__rd_u64(r + SR_SIZE_FIELD);
    if (m64__rd_u32(r + SR_KIND) == M64_SEC_SEGMENT || (g_z && m64__rd_u32(r + SR_CODEC) != 0)) continue;
    if (off > b->n || len > b->n - off) continue;
    sha(b->p + off, (size_t)len, r + SR_SHA256);
  }
  m64_sha256 h;
  m64_sha256_init(&h);
  m64_sha256_update(&h, b->p, BH_SHA256);
  m64_sha256_update(&h, b->p + BH_SIZE, (size_t)n * SR_SIZE);
  m64_sha256_final(&h, b->p + BH_SHA256);
}

static void rehash_header(buf *b) {
  const uint32_t n = m64__rd_u32(b->p + BH_N_SECTIONS);
  m64_sha256 h;
  m64_sha256_init(&h);
  m64_sha256_update(&h, b->p, BH_SHA256);
  m64_sha256_update(&h, b->p + BH_SIZE, (size_t)n * SR_SIZE);
  m64_sha256_final(&h, b->p + BH_SHA256);
}

static void emit(const buf *b, const char *expect, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void emit(const buf *b, const char *expect, const char *fmt, ...) {
  char name[64], path[4096], what[512];
  snprintf(name, sizeof name, "%05u.m64", g_count++);
  snprintf(path, sizeof path, "%s/%s", g_out, name);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(b->p, 1, b->n, f) != b->n || fclose(f)) {
    fprintf(stderr, "m64-hostile: cannot write %s\n", path);
    exit(1);
  }
  fprintf(g_manifest, "%s\t%s\t%s\n", name, expect, what);
}

static uint64_t rd(const uint8_t *p, int w) { return w == 8 ? m64__rd_u64(p) : w == 4 ? m64__rd_u32(p) : m64__rd_u16(p); }
static void wr(uint8_t *p, int w, uint64_t v) {
  if (w == 8) m64__wr_u64(p, v);
  else if (w == 4) m64__wr_u32(p, (uint32_t)v);
  else p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8);
}

/* Boundary values for a field that holds o: FEW for the many tensor and ELF fields, MANY
 * for the header, table and layer records. */
enum { FEW, SOME, MANY };
static int values(uint64_t o, int w, int many, uint64_t file_size, uint64_t *v) {
  const uint64_t max = w == 8 ? UINT64_MAX : w == 4 ? UINT32_MAX : 0xffff;
  int k = 0;
  v[k++] = 0;
  v[k++] = o + 1;
  v[k++] = o - 1;
  v[k++] = max;
  if (many >= SOME) {
    v[k++] = o + 65536;
    v[k++] = 0x7fff00000000ull;
  }
  if (many == MANY) {
    v[k++] = 1;
    v[k++] = o + 64;
    v[k++] = o + 65536;
    v[k++] = o * 2;
    v[k++] = max / 2 + 1;
    v[k++] = file_size;
  }
  int out = 0;
  for (int i = 0; i < k; i++) {
    const uint64_t x = v[i] & max;
    int dup = x == o;
    for (int j = 0; j < out && !dup; j++) dup = v[j] == x;
    if (!dup) v[out++] = x;
  }
  return out;
}

/* Every boundary value in the w-byte field at pos, hashes fixed. */
static void field(const buf *base, size_t pos, int w, int many, const char *expect, const char *what) {
  uint64_t v[16];
  const int n = values(rd(base->p + pos, w), w, many, base->n, v);
  for (int i = 0; i < n; i++) {
    buf b = copy(base);
    wr(b.p + pos, w, v[i]);
    rehash(&b);
    emit(&b, expect, "%s = %llu", what, (unsigned long long)v[i]);
    free(b.p);
  }
}

static void truncations(const buf *base, const char *tag, int full) {
  size_t cuts[512], n = 0;
  for (size_t c = 0; c < 160 && c < base->n; c += full ? 8 : 40) cuts[n++] = c;
  const uint32_t ns = m64__rd_u32(base->p + BH_N_SECTIONS);
  for (uint32_t i = 0; i < ns; i++) { /* at each section's start, middle and end */
    const uint8_t *r = base->p + BH_SIZE + (size_t)i * SR_SIZE;
    const uint64_t off = m64__rd_u64(r + SR_OFFSET), len = m64__rd_u64(r + SR_SIZE_FIELD);
    const uint64_t at[] = {off, off + len / 2, off + len - 1, off + len};
    for (int k = 0; k < 4; k++)
      if (at[k] > 0 && at[k] < base->n) cuts[n++] = (size_t)at[k];
  }
  for (size_t c = 4096; c < base->n && n < 400; c += base->n / (full ? 40 : 8)) cuts[n++] = c;
  cuts[n++] = base->n - 1;
  for (size_t i = 0; i < n; i++) {
    buf b = copy(base);
    b.n = cuts[i];
    emit(&b, "fail", "%s: truncated to %zu bytes", tag, b.n);
    if (b.n >= BH_SIZE) { /* a header that agrees with the shorter file */
      m64__wr_u64(b.p + BH_FILE_SIZE, b.n);
      rehash(&b);
      emit(&b, "fail", "%s: truncated to %zu bytes, file_size and hashes made to agree", tag, b.n);
    }
    free(b.p);
  }
}

static void header_fields(const buf *base, const char *tag) {
  static const struct { size_t at; int w; const char *name; } f[] = {
      {BH_VERSION, 4, "version"}, {BH_FLAGS, 4, "flags"}, {BH_N_SECTIONS, 4, "n_sections"},
      {BH_HEADER_SIZE, 4, "header_size"}, {BH_RECORD_SIZE, 4, "record_size"}, {BH_RESERVED0, 4, "reserved0"},
      {BH_TABLE_OFFSET, 8, "table_offset"}, {BH_FILE_SIZE, 8, "file_size"}, {BH_RESERVED1, 8, "reserved1"},
      {BH_RESERVED1 + 8, 8, "reserved1+8"}};
  char what[128];
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
    snprintf(what, sizeof what, "%s: header %s", tag, f[i].name);
    field(base, f[i].at, f[i].w, MANY, "fail", what);
  }
}

static void section_fields(const buf *base, const m64_bundle *mb, const char *tag) {
  char what[160];
  for (uint32_t i = 0; i < m64_bundle_n_sections(mb); i++) {
    const m64_section *s = m64_bundle_section_at(mb, i);
    const size_t r = BH_SIZE + (size_t)i * SR_SIZE;
    const int label = s->kind != M64_SEC_SEGMENT && s->kind != M64_SEC_NATIVE;
    /* Text sections moved or resized with their hash recomputed are other, consistent
     * sections: whether they still make a model is the runtime's business. */
    const int free_text = s->kind == M64_SEC_METADATA || s->kind == M64_SEC_TOKENIZER;
    static const struct { size_t at; int w; const char *name; } f[] = {
        {SR_KIND, 4, "kind"}, {SR_CODEC, 4, "codec/reserved"}, {SR_OFFSET, 8, "offset"},
        {SR_SIZE_FIELD, 8, "size"}, {SR_RAW_SIZE, 8, "raw_size/reserved"}, {SR_RAW_SIZE + 8, 8, "reserved"}};
    for (size_t k = 0; k < sizeof f / sizeof f[0]; k++) {
      snprintf(what, sizeof what, "%s: section %u '%s' %s", tag, i, s->name, f[k].name);
      const int moved = f[k].at == SR_OFFSET || f[k].at == SR_SIZE_FIELD;
      field(base, r + f[k].at, f[k].w, MANY, free_text && moved && !(g_z && s->codec) ? "any" : "fail", what);
    }
    buf b = copy(base); /* a label: the name's first byte */
    b.p[r + SR_NAME] ^= 0x01;
    rehash(&b);
    emit(&b, label ? "any" : "fail", "%s: section %u '%s' name changed", tag, i, s->name);
    free(b.p);
    b = copy(base); /* a byte after the name's NUL */
    b.p[r + SR_NAME + 47] = 'x';
    rehash(&b);
    emit(&b, "fail", "%s: section %u '%s' name padding not zero", tag, i, s->name);
    free(b.p);
    if (s->kind != M64_SEC_SEGMENT) {
      b = copy(base); /* the hash field, the header hash made to agree */
      b.p[r + SR_SHA256] ^= 0x01;
      rehash_header(&b);
      emit(&b, "fail", "%s: section %u '%s' sha256 wrong", tag, i, s->name);
      free(b.p);
    }
    if (s->kind == M64_SEC_SEGMENT) /* the off-by-one segments, both ways */
      for (int d = -1; d <= 1; d += 2) {
        b = copy(base);
        m64__wr_u64(b.p + r + SR_SIZE_FIELD, s->stored_size + (uint64_t)(int64_t)d);
        if (g_z) m64__wr_u64(b.p + r + SR_RAW_SIZE, s->stored_size + (uint64_t)(int64_t)d);
        rehash(&b);
        emit(&b, "fail", "%s: segment '%s' recorded size %+d", tag, s->name, d);
        free(b.p);
      }
  }
}

/* The LAYER_INDEX section's file offset (stored as is). */
static size_t index_at(const m64_bundle *mb) {
  return (size_t)m64_bundle_find_section(mb, M64_SEC_LAYER_INDEX, NULL)->offset;
}

static void index_fields(const buf *base, const m64_bundle *mb, const char *tag) {
  const size_t li = index_at(mb);
  const uint32_t nl = m64_bundle_n_layers(mb), nt = m64_bundle_n_tensors(mb);
  const uint32_t lr = g_z ? LR_SIZE_Z : LR_SIZE;
  char what[200];
  static const struct { size_t at; int w; const char *name; } hf[] = {
      {LI_N_LAYERS, 4, "n_layers"}, {LI_N_TENSORS, 4, "n_tensors"}, {LI_N_SEGMENTS, 4, "n_segments"},
      {LI_LAYER_SIZE_F, 4, "layer_record_size"}, {LI_TENSOR_SIZE_F, 4, "tensor_record_size"},
      {20, 4, "reserved"}};
  for (size_t k = 0; k < sizeof hf / sizeof hf[0]; k++) {
    snprintf(what, sizeof what, "%s: LAYER_INDEX %s", tag, hf[k].name);
    field(base, li + hf[k].at, hf[k].w, MANY, "fail", what);
  }
  for (uint32_t i = 0; i < nl; i++) {
    const size_t r = li + LI_HEADER_SIZE + (size_t)i * lr;
    const m64_layer_entry *l = m64_bundle_layer(mb, i);
    static const struct { size_t at; int w; const char *name; } f[] = {
        {LR_SEGMENT, 4, "segment"}, {LR_FIRST_TENSOR, 4, "first_tensor"}, {LR_N_TENSORS, 4, "n_tensors"},
        {LR_RESERVED, 4, "reserved"}, {LR_OFFSET, 8, "offset"}, {LR_SIZE_FIELD, 8, "size"},
        {LR_STORED_OFFSET, 8, "stored_offset"}, {LR_STORED_SIZE, 8, "stored_size"},
        {LR_CODEC, 4, "codec"}, {LR_FILTER, 4, "filter"}, {LR_CHUNK_SIZE, 4, "chunk_size"}, {156, 4, "reserved_z"}};
    for (size_t k = 0; k < sizeof f / sizeof f[0]; k++) {
      if (!g_z && f[k].at >= LR_SIZE) continue;
      snprintf(what, sizeof what, "%s: layer %u '%s' %s", tag, i, l->name, f[k].name);
      /* another power-of-two chunk size cuts tensors smaller than both alike: the same
       * frames, a consistent record */
      field(base, r + f[k].at, f[k].w, MANY, f[k].at == LR_CHUNK_SIZE ? "any" : "fail", what);
    }
    buf b = copy(base);
    b.p[r + LR_SHA256] ^= 1; /* caught at first use (every run here checks layer hashes) */
    rehash(&b);
    emit(&b, "fail", "%s: layer %u '%s' sha256 wrong", tag, i, l->name);
    free(b.p);
    b = copy(base);
    b.p[r + LR_NAME] ^= 1;
    rehash(&b);
    emit(&b, "any", "%s: layer %u '%s' renamed", tag, i, l->name);
    free(b.p);
    /* shrunk, old hash kept: the layer alone, or with its last tensor shrunk to match
     * (bytes, then whole rows so that the tensor itself is consistent) */
    const uint32_t last = l->first_tensor + l->n_tensors - 1;
    const size_t tr = li + LI_HEADER_SIZE + (size_t)nl * lr + (size_t)last * TR_SIZE;
    const m64_tensor_entry *t = m64_bundle_tensor(mb, last);
    const uint64_t row = t->ne[1] ? t->nbytes / t->ne[1] : 0;
    const uint64_t shrink[] = {1, 4, 64, row};
    for (int k = 0; k < 4; k++) {
      if (!l->n_tensors || !shrink[k] || shrink[k] > t->nbytes) continue;
      for (int with_tensor = 0; with_tensor <= 1; with_tensor++) {
        b = copy(base);
        m64__wr_u64(b.p + r + LR_SIZE_FIELD, l->size - shrink[k]);
        if (with_tensor) {
          m64__wr_u64(b.p + tr + TR_NBYTES, t->nbytes - shrink[k]);
          if (k == 3) m64__wr_u64(b.p + tr + TR_NE + 8, t->ne[1] - 1);
        }
        rehash(&b);
        emit(&b, "fail", "%s: layer %u '%s' shrunk by %llu bytes%s, old hash kept", tag, i, l->name,
             (unsigned long long)shrink[k], !with_tensor ? "" : k == 3 ? " with its last tensor's rows" : " with its last tensor");
        free(b.p);
      }
    }
    if (l->n_tensors) { /* the first tensor moved by 64 bytes, the layer grown to match */
      const size_t t0 = li + LI_HEADER_SIZE + (size_t)nl * lr + (size_t)l->first_tensor * TR_SIZE;
      b = copy(base);
      for (uint32_t k = 0; k < l->n_tensors; k++)
        m64__wr_u64(b.p + t0 + k * TR_SIZE + TR_OFFSET, m64__rd_u64(b.p + t0 + k * TR_SIZE + TR_OFFSET) + 64);
      m64__wr_u64(b.p + r + LR_SIZE_FIELD, l->size + 64);
      rehash(&b);
      emit(&b, "fail", "%s: layer %u '%s' tensors moved by 64 bytes, old hash kept", tag, i, l->name);
      free(b.p);
    }
  }
  /* tensors: the first and last of each layer */
  for (uint32_t i = 0; i < nt; i++) {
    int pick = 0;
    for (uint32_t k = 0; k < nl; k++) {
      const m64_layer_entry *l = m64_bundle_layer(mb, k);
      pick |= i == l->first_tensor || i + 1 == l->first_tensor + l->n_tensors;
    }
    if (!pick) continue;
    const m64_tensor_entry *t = m64_bundle_tensor(mb, i);
    const size_t r = li + LI_HEADER_SIZE + (size_t)nl * lr + (size_t)i * TR_SIZE;
    static const struct { size_t at; int w; const char *name; } f[] = {
        {TR_TYPE, 4, "type"}, {TR_N_DIMS, 4, "n_dims"}, {TR_NE, 8, "ne[0]"}, {TR_NE + 8, 8, "ne[1]"},
        {TR_NE + 16, 8, "ne[2]"}, {TR_OFFSET, 8, "offset"}, {TR_NBYTES, 8, "nbytes"}, {TR_LAYOUT, 4, "layout"},
        {TR_LAYOUT + 4, 4, "reserved"}};
    for (size_t k = 0; k < sizeof f / sizeof f[0]; k++) {
      snprintf(what, sizeof what, "%s: tensor %u '%s' %s", tag, i, t->name, f[k].name);
      /* a matrix may say 3 dims with ne[2] = 1, or row pairs: other, consistent records
       * (the module has its shapes and layouts built in) */
      const int free_field = f[k].at == TR_N_DIMS || f[k].at == TR_LAYOUT;
      field(base, r + f[k].at, f[k].w, FEW, free_field ? "any" : "fail", what);
    }
    buf b = copy(base);
    b.p[r + TR_NAME] ^= 1;
    rehash(&b);
    emit(&b, "any", "%s: tensor %u '%s' renamed", tag, i, t->name);
    free(b.p);
  }
}

/* ---- the NATIVE section's ELF object */
typedef struct elf { size_t at, n; } elf; /* file offset of the object, its size */

static int elf_va_off(const buf *b, const elf *o, uint64_t va, size_t *off) {
  Elf64_Ehdr h;
  memcpy(&h, b->p + o->at, sizeof h);
  for (unsigned i = 0; i < h.e_phnum; i++) {
    Elf64_Phdr p;
    memcpy(&p, b->p + o->at + h.e_phoff + i * sizeof p, sizeof p);
    if (p.p_type == PT_LOAD && va >= p.p_vaddr && va < p.p_vaddr + p.p_filesz) {
      *off = o->at + p.p_offset + (va - p.p_vaddr);
      return 1;
    }
  }
  return 0;
}

static void elf_mutants(const buf *base, const m64_bundle *mb, const char *tag) {
  const m64_section *nat = m64_bundle_find_section(mb, M64_SEC_NATIVE, NULL);
  if (!nat || nat->codec) return;
  const size_t sec = (size_t)nat->offset, rec = BH_SIZE + (size_t)(nat - m64_bundle_section_at(mb, 0)) * SR_SIZE;
  char what[200];
  /* its 64-byte header */
  static const struct { size_t at; int w; const char *name; } nh[] = {
      {0, 8, "magic"}, {8, 4, "header size"}, {12, 4, "flags"}, {48, 8, "code size"}, {56, 8, "reserved"}};
  for (size_t k = 0; k < sizeof nh / sizeof nh[0]; k++) {
    snprintf(what, sizeof what, "%s: native header %s", tag, nh[k].name);
    field(base, sec + nh[k].at, nh[k].w, MANY, "fail", what);
  }
  const elf o = {sec + 64, (size_t)m64__rd_u64(base->p + sec + 48)};
  /* truncated objects: the section shrunk to match (no mark), the tail a gap in the file */
  size_t cuts[80], nc = 0;
  const size_t fixed[] = {1, 63, 64, 120, 0x100, 0x238, 0x1000, 0x2000};
  for (size_t k = 0; k < sizeof fixed / sizeof fixed[0]; k++) cuts[nc++] = fixed[k];
  for (size_t c = o.n / 48; c < o.n; c += o.n / 48) cuts[nc++] = c;
  cuts[nc++] = o.n - 4096;
  cuts[nc++] = o.n - 64;
  cuts[nc++] = o.n - 1;
  for (size_t i = 0; i < nc; i++) {
    if (cuts[i] >= o.n) continue;
    buf b = copy(base);
    m64__wr_u32(b.p + sec + 12, 0);
    m64__wr_u64(b.p + sec + 48, cuts[i]);
    m64__wr_u64(b.p + rec + SR_SIZE_FIELD, 64 + cuts[i]);
    rehash(&b);
    emit(&b, "fail", "%s: native object truncated to %zu of %zu bytes", tag, cuts[i], o.n);
    free(b.p);
  }
  /* ELF header */
  static const struct { size_t at; int w; const char *name; } eh[] = {
      {16, 2, "e_type"}, {18, 2, "e_machine"}, {20, 4, "e_version"}, {32, 8, "e_phoff"}, {40, 8, "e_shoff"},
      {52, 2, "e_ehsize"}, {54, 2, "e_phentsize"}, {56, 2, "e_phnum"}, {58, 2, "e_shentsize"},
      {60, 2, "e_shnum"}, {62, 2, "e_shstrndx"}};
  for (size_t k = 0; k < sizeof eh / sizeof eh[0]; k++) {
    snprintf(what, sizeof what, "%s: ELF %s", tag, eh[k].name);
    field(base, o.at + eh[k].at, eh[k].w, SOME, "any", what);
  }
  Elf64_Ehdr h;
  memcpy(&h, base->p + o.at, sizeof h);
  static const char *const pf[] = {"p_type", "p_flags", "p_offset", "p_vaddr", "p_paddr", "p_filesz", "p_memsz", "p_align"};
  static const size_t pat[] = {0, 4, 8, 16, 24, 32, 40, 48};
  size_t dyn_off = 0, dyn_n = 0;
  for (unsigned i = 0; i < h.e_phnum; i++) {
    const size_t ph = o.at + h.e_phoff + i * sizeof(Elf64_Phdr);
    Elf64_Phdr p;
    memcpy(&p, base->p + ph, sizeof p);
    if (p.p_type == PT_DYNAMIC) dyn_off = o.at + p.p_offset, dyn_n = p.p_filesz / sizeof(Elf64_Dyn);
    for (int k = 0; k < 8; k++) {
      if (k == 4) continue; /* p_paddr: unused */
      snprintf(what, sizeof what, "%s: ELF program header %u (type %u) %s", tag, i, p.p_type, pf[k]);
      field(base, ph + pat[k], k < 2 ? 4 : 8, p.p_type == PT_LOAD || p.p_type == PT_DYNAMIC ? SOME : FEW, "any", what);
    }
  }
  /* every dynamic entry's value, and the tables they point to */
  uint64_t symtab = 0, rela = 0, relasz = 0, jmprel = 0, gnu_hash = 0, verneed = 0;
  for (size_t i = 0; i < dyn_n; i++) {
    Elf64_Dyn d;
    memcpy(&d, base->p + dyn_off + i * sizeof d, sizeof d);
    if (d.d_tag == DT_NULL) break;
    if (d.d_tag == DT_SYMTAB) symtab = d.d_un.d_ptr;
    if (d.d_tag == DT_RELA) rela = d.d_un.d_ptr;
    if (d.d_tag == DT_RELASZ) relasz = d.d_un.d_val;
    if (d.d_tag == DT_JMPREL) jmprel = d.d_un.d_ptr;
    if (d.d_tag == DT_GNU_HASH) gnu_hash = d.d_un.d_ptr;
    if (d.d_tag == DT_VERNEED) verneed = d.d_un.d_ptr;
    snprintf(what, sizeof what, "%s: ELF dynamic entry %zu (tag 0x%llx) value", tag, i, (unsigned long long)d.d_tag);
    field(base, dyn_off + i * sizeof d + 8, 8, SOME, "any", what);
    snprintf(what, sizeof what, "%s: ELF dynamic entry %zu tag", tag, i);
    field(base, dyn_off + i * sizeof d, 8, FEW, "any", what);
  }
  size_t at;
  for (unsigned k = 1; k < 6 && symtab && elf_va_off(base, &o, symtab + k * sizeof(Elf64_Sym), &at); k++) {
    snprintf(what, sizeof what, "%s: ELF symbol %u st_name", tag, k);
    field(base, at, 4, FEW, "any", what);
    snprintf(what, sizeof what, "%s: ELF symbol %u st_info and st_other", tag, k);
    field(base, at + 4, 2, FEW, "any", what);
    snprintf(what, sizeof what, "%s: ELF symbol %u st_value", tag, k);
    field(base, at + 8, 8, SOME, "any", what);
  }
  const struct { uint64_t va; const char *name; } rels[] = {{rela, "RELA"}, {jmprel, "JMPREL"}};
  for (int t = 0; t < 2; t++)
    for (unsigned k = 0; k < 4 && rels[t].va && elf_va_off(base, &o, rels[t].va + k * sizeof(Elf64_Rela), &at); k++) {
      if (t == 0 && k * sizeof(Elf64_Rela) >= relasz) break;
      snprintf(what, sizeof what, "%s: ELF %s entry %u r_offset", tag, rels[t].name, k);
      field(base, at, 8, SOME, "any", what);
      snprintf(what, sizeof what, "%s: ELF %s entry %u r_info", tag, rels[t].name, k);
      field(base, at + 8, 8, SOME, "any", what);
      snprintf(what, sizeof what, "%s: ELF %s entry %u r_addend", tag, rels[t].name, k);
      field(base, at + 16, 8, FEW, "any", what);
    }
  if (gnu_hash && elf_va_off(base, &o, gnu_hash, &at))
    for (int k = 0; k < 4; k++) {
      snprintf(what, sizeof what, "%s: ELF GNU hash header word %d", tag, k);
      field(base, at + 4 * k, 4, SOME, "any", what);
    }
  if (verneed && elf_va_off(base, &o, verneed, &at)) {
    static const struct { size_t at; int w; const char *name; } vf[] = {
        {0, 2, "vn_version"}, {2, 2, "vn_cnt"}, {4, 4, "vn_file"}, {8, 4, "vn_aux"}, {12, 4, "vn_next"}};
    for (size_t k = 0; k < sizeof vf / sizeof vf[0]; k++) {
      snprintf(what, sizeof what, "%s: ELF verneed %s", tag, vf[k].name);
      field(base, at + vf[k].at, vf[k].w, SOME, "any", what);
    }
  }
}

/* A compressed bundle's LAYER_INDEX, stored as is at the end of the file (codec 0), so
 * its records can be edited; the old bytes stay behind as a gap. */
static int raw_index(buf *b, const m64_bundle *mb) {
  const m64_section *li = m64_bundle_find_section(mb, M64_SEC_LAYER_INDEX, NULL);
  const size_t r = BH_SIZE + (size_t)(li - m64_bundle_section_at(mb, 0)) * SR_SIZE;
  const size_t at = (b->n + 63) & ~(size_t)63;
  uint8_t *p = realloc(b->p, at + li->size);
  if (!p) return -1;
  memset(p + b->n, 0, at - b->n);
  memcpy(p + at, li->data, (size_t)li->size);
  b->p = p;
  b->n = at + (size_t)li->size;
  m64__wr_u32(p + r + SR_CODEC, 0);
  m64__wr_u64(p + r + SR_OFFSET, at);
  m64__wr_u64(p + r + SR_SIZE_FIELD, li->size);
  m64__wr_u64(p + r + SR_RAW_SIZE, li->size);
  m64__wr_u64(p + BH_FILE_SIZE, b->n);
  rehash(b);
  return 0;
}

static int load(const char *path, buf *b) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  b->n = n > 0 ? (size_t)n : 0;
  b->p = malloc(b->n ? b->n : 1);
  const int ok = b->p && fread(b->p, 1, b->n, f) == b->n;
  fclose(f);
  return ok ? 0 : -1;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: m64-hostile OUT_DIR BUNDLE...\n");
    return 2;
  }
  g_out = argv[1];
  char path[4096];
  snprintf(path, sizeof path, "%s/manifest", g_out);
  if (!(g_manifest = fopen(path, "w"))) {
    fprintf(stderr, "m64-hostile: cannot write %s\n", path);
    return 1;
  }
  for (int a = 2; a < argc; a++) {
    buf base;
    m64_bundle *mb = NULL;
    m64_err e;
    const char *tag = strrchr(argv[a], '/') ? strrchr(argv[a], '/') + 1 : argv[a];
    if (load(argv[a], &base) || m64_bundle_open_memory(base.p, base.n, &mb, &e)) {
      fprintf(stderr, "m64-hostile: %s: %s\n", argv[a], mb ? "" : e.msg);
      return 1;
    }
    g_z = m64_bundle_compressed(mb);
    const int full = a == 2; /* the first bundle gets every mutation, the others a sample */
    emit(&base, "any", "%s: as built", tag);
    truncations(&base, tag, full);
    if (g_z) { /* from here on the index is stored as is */
      if (raw_index(&base, mb)) return 1;
      m64_bundle_close(mb);
      if (m64_bundle_open_memory(base.p, base.n, &mb, &e)) {
        fprintf(stderr, "m64-hostile: %s with its index stored as is: %s\n", tag, e.msg);
        return 1;
      }
      emit(&base, "any", "%s: index stored as is", tag);
    }
    header_fields(&base, tag);
    section_fields(&base, mb, tag);
    index_fields(&base, mb, tag);
    if (full) elf_mutants(&base, mb, tag);
    m64_bundle_close(mb);
    free(base.p);
  }
  fclose(g_manifest);
  printf("m64-hostile: %u variants in %s\n", g_count, g_out);
  return 0;
}
