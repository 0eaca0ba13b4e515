/* reader.c — GGUF v2/v3 parser over an untrusted byte range.
 *
 * Rule: every count, length, dimension and offset read from the file is checked against
 * the M64_MAX_* caps and against the bytes remaining before it is used to size an
 * allocation, index memory or drive a loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/internal.h"

#define GGUF_HEADER_BYTES 24u     /* magic, version, n_tensors, n_kv */
#define GGUF_MIN_KV_BYTES 13u     /* empty key (8) + value type (4) + 1-byte value */
#define GGUF_MIN_TENSOR_BYTES 32u /* empty name (8) + n_dims (4) + one ne (8) + type (4) + offset (8) */
#define GGUF_MAX_NESTING 8        /* arrays of arrays deeper than this are rejected */
#define GGUF_DEFAULT_ALIGNMENT 32u

typedef struct gguf_kv {
  m64_str key;
  uint32_t type;
  const uint8_t *val;  /* scalar: its bytes; string: see str */
  m64_str str;
  uint32_t elem;       /* arrays: element type, count, first element */
  uint64_t count;
  const uint8_t *arr;
  uint64_t *str_offs;  /* string arrays: file offset of each element's length prefix */
} gguf_kv;

struct m64_gguf {
  const uint8_t *base;
  size_t size;
  int mapped;
  uint32_t version, alignment;
  uint64_t data_offset;
  uint64_t n_kv, n_tensors;
  gguf_kv *kvs;
  m64_gguf_tensor *tensors;
  uint32_t *kv_tab, *t_tab; /* open-addressing tables of index+1 (0 = empty) */
  uint64_t kv_mask, t_mask;
};

/* Bytes of one scalar value, 0 for string/array/unknown. */
static uint32_t scalar_size(uint32_t t) {
  static const uint8_t sz[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
  return t < 13 ? sz[t] : 0;
}
static int vtype_known(uint32_t t) { return t <= M64_GGUF_F64; }

typedef struct cur {
  const uint8_t *b;
  uint64_t size, pos; /* invariant: pos <= size */
  m64_err *e;
  const char *ctx;    /* "kv 3 'name'" or "tensor 2 'x'": prefixes messages */
} cur;

static int truncated(cur *c, const char *field, uint64_t need) {
  return m64_fail(c->e, M64_EFORMAT,
                  "%s: %s needs %llu bytes at offset %llu, past end of file (size %llu)", c->ctx,
                  field, (unsigned long long)need, (unsigned long long)c->pos,
                  (unsigned long long)c->size);
}
static int have(const cur *c, uint64_t n) { return n <= c->size - c->pos; }

static int rd32(cur *c, uint32_t *v, const char *field) {
  if (!have(c, 4)) return truncated(c, field, 4);
  *v = m64__rd_u32(c->b + c->pos);
  c->pos += 4;
  return 0;
}
static int rd64(cur *c, uint64_t *v, const char *field) {
  if (!have(c, 8)) return truncated(c, field, 8);
  *v = m64__rd_u64(c->b + c->pos);
  c->pos += 8;
  return 0;
}
static int rdstr(cur *c, m64_str *s, const char *field) {
  uint64_t len = 0;
  int rc = rd64(c, &len, field);
  if (rc) return rc;
  if (len > M64_MAX_STRING)
    return m64_fail(c->e, M64_ELIMIT, "%s: %s length %llu exceeds the limit of %u bytes", c->ctx,
                    field, (unsigned long long)len, M64_MAX_STRING);
  if (!have(c, len)) return truncated(c, field, len);
  s->ptr = (const char *)c->b + c->pos;
  s->len = len;
  c->pos += len;
  return 0;
}

/* Parses an array header and body at c->pos. offs (may be NULL) receives the offsets
 * table of a string array. Nested arrays are walked and validated, not indexed. */
static int parse_array(cur *c, int depth, uint32_t *elem, uint64_t *count, const uint8_t **first,
                       uint64_t **offs) {
  int rc;
  uint32_t et = 0;
  uint64_t n = 0;
  if ((rc = rd32(c, &et, "array element type")) || (rc = rd64(c, &n, "array count"))) return rc;
  if (!vtype_known(et))
    return m64_fail(c->e, M64_EFORMAT, "%s: unknown array element type %u", c->ctx, et);
  if (n > M64_MAX_ARRAY)
    return m64_fail(c->e, M64_ELIMIT, "%s: array count %llu exceeds the limit of %u", c->ctx,
                    (unsigned long long)n, M64_MAX_ARRAY);
  uint64_t min_elem = et == M64_GGUF_STRING ? 8 : et == M64_GGUF_ARRAY ? 12 : scalar_size(et);
  if (n * min_elem > c->size - c->pos) /* n <= 2^24, min_elem <= 12: no overflow */
    return m64_fail(c->e, M64_EFORMAT,
                    "%s: array of %llu elements needs at least %llu bytes at offset %llu, past end "
                    "of file (size %llu)",
                    c->ctx, (unsigned long long)n, (unsigned long long)(n * min_elem),
                    (unsigned long long)c->pos, (unsigned long long)c->size);
  *elem = et;
  *count = n;
  *first = c->b + c->pos;
  if (et == M64_GGUF_STRING) {
    uint64_t *o = NULL;
    if (offs && n) {
      o = (uint64_t *)malloc(n * sizeof *o);
      if (!o) return m64_fail(c->e, M64_ENOMEM, "%s: out of memory for %llu string offsets",
                              c->ctx, (unsigned long long)n);
      *offs = o;
    }
    for (uint64_t i = 0; i < n; i++) {
      m64_str s;
      if (o) o[i] = c->pos;
      if ((rc = rdstr(c, &s, "array string"))) return rc;
    }
  } else if (et == M64_GGUF_ARRAY) {
    if (depth + 1 > GGUF_MAX_NESTING)
      return m64_fail(c->e, M64_EUNSUPPORTED, "%s: arrays nested deeper than %d levels", c->ctx,
                      GGUF_MAX_NESTING);
    for (uint64_t i = 0; i < n; i++) {
      uint32_t ie = 0;
      uint64_t in = 0;
      const uint8_t *ifirst;
      if ((rc = parse_array(c, depth + 1, &ie, &in, &ifirst, NULL))) return rc;
    }
  } else {
    c->pos += n * min_elem;
  }
  return 0;
}

/* ---- name lookup tables */
static m64_str kv_name(const m64_gguf *g, uint32_t i) { return g->kvs[i].key; }
static m64_str t_name(const m64_gguf *g, uint32_t i) {
  m64_str s = {g->tensors[i].name, strlen(g->tensors[i].name)};
  return s;
}
typedef m64_str (*name_fn)(const m64_gguf *, uint32_t);

static uint32_t *table_new(uint64_t n, uint64_t *mask) {
  uint64_t cap = 16;
  while (cap < 2 * n) cap <<= 1;
  *mask = cap - 1;
  return (uint32_t *)calloc(cap, sizeof(uint32_t));
}
/* Index of the entry named (p, n), or -1; with insert_idx >= 0, inserts it when absent. */
static int64_t table_find(const m64_gguf *g, uint32_t *tab, uint64_t mask, name_fn name,
                          const char *p, uint64_t n, int64_t insert_idx) {
  if (!tab) return -1;
  for (uint64_t h = m64__fnv1a(p, n) & mask;; h = (h + 1) & mask) {
    if (tab[h] == 0) {
      if (insert_idx >= 0) tab[h] = (uint32_t)insert_idx + 1;
      return -1;
    }
    m64_str s = name(g, tab[h] - 1);
    if (s.len == n && memcmp(s.ptr, p, n) == 0) return tab[h] - 1;
  }
}

static int clip(uint64_t len) { return len > 80 ? 80 : (int)len; }

static int parse_kvs(m64_gguf *g, cur *c) {
  char ctx[160];
  int rc;
  for (uint64_t i = 0; i < g->n_kv; i++) {
    gguf_kv *kv = &g->kvs[i];
    snprintf(ctx, sizeof ctx, "kv %llu", (unsigned long long)i);
    c->ctx = ctx;
    if ((rc = rdstr(c, &kv->key, "key"))) return rc;
    snprintf(ctx, sizeof ctx, "kv %llu '%.*s'", (unsigned long long)i, clip(kv->key.len),
             kv->key.ptr);
    if (kv->key.len == 0) return m64_fail(c->e, M64_EFORMAT, "%s: empty key", ctx);
    int64_t dup = table_find(g, g->kv_tab, g->kv_mask, kv_name, kv->key.ptr, kv->key.len, (int64_t)i);
    if (dup >= 0)
      return m64_fail(c->e, M64_EFORMAT, "%s: duplicate key (also kv %lld)", ctx, (long long)dup);
    if ((rc = rd32(c, &kv->type, "value type"))) return rc;
    if (!vtype_known(kv->type))
      return m64_fail(c->e, M64_EFORMAT, "%s: unknown value type %u", ctx, kv->type);
    if (kv->type == M64_GGUF_STRING) {
      if ((rc = rdstr(c, &kv->str, "string value"))) return rc;
    } else if (kv->type == M64_GGUF_ARRAY) {
      if ((rc = parse_array(c, 0, &kv->elem, &kv->count, &kv->arr, &kv->str_offs))) return rc;
    } else {
      uint32_t n = scalar_size(kv->type);
      if (!have(c, n)) return truncated(c, "value", n);
      kv->val = c->b + c->pos;
      c->pos += n;
    }
  }
  return 0;
}

static int parse_tensor_infos(m64_gguf *g, cur *c) {
  char ctx[160];
  int rc;
  for (uint64_t i = 0; i < g->n_tensors; i++) {
    m64_gguf_tensor *t = &g->tensors[i];
    m64_str name;
    snprintf(ctx, sizeof ctx, "tensor %llu", (unsigned long long)i);
    c->ctx = ctx;
    if ((rc = rd64(c, &name.len, "name"))) return rc;
    if (name.len > M64_MAX_NAME)
      return m64_fail(c->e, M64_ELIMIT, "%s: name length %llu exceeds the limit of %u", ctx,
                      (unsigned long long)name.len, M64_MAX_NAME);
    if (!have(c, name.len)) return truncated(c, "name", name.len);
    name.ptr = (const char *)c->b + c->pos;
    c->pos += name.len;
    if (name.len == 0 || memchr(name.ptr, 0, name.len))
      return m64_fail(c->e, M64_EFORMAT, "%s: name is empty or contains a NUL byte", ctx);
    memcpy(t->name, name.ptr, name.len);
    t->name[name.len] = 0;
    snprintf(ctx, sizeof ctx, "tensor %llu '%s'", (unsigned long long)i, t->name);
    int64_t dup = table_find(g, g->t_tab, g->t_mask, t_name, t->name, name.len, (int64_t)i);
    if (dup >= 0)
      return m64_fail(c->e, M64_EFORMAT, "%s: duplicate tensor name (also tensor %lld)", ctx,
                      (long long)dup);
    if ((rc = rd32(c, &t->n_dims, "n_dims"))) return rc;
    if (t->n_dims == 0) return m64_fail(c->e, M64_EFORMAT, "%s: n_dims is 0", ctx);
    if (t->n_dims > M64_MAX_DIMS)
      return m64_fail(c->e, M64_ELIMIT, "%s: n_dims %u exceeds the limit of %u", ctx, t->n_dims,
                      M64_MAX_DIMS);
    uint64_t n_elems = 1;
    for (uint32_t d = 0; d < 4; d++) {
      t->ne[d] = 1;
      if (d >= t->n_dims) continue;
      if ((rc = rd64(c, &t->ne[d], "dimension"))) return rc;
      if (t->ne[d] > (uint64_t)INT64_MAX || m64__mul_ovf(n_elems, t->ne[d], &n_elems))
        return m64_fail(c->e, M64_EFORMAT, "%s: element count overflows at dimension %u (ne=%llu)",
                        ctx, d, (unsigned long long)t->ne[d]);
    }
    if (n_elems > (uint64_t)INT64_MAX)
      return m64_fail(c->e, M64_EFORMAT, "%s: element count %llu too large", ctx,
                      (unsigned long long)n_elems);
    t->n_elems = n_elems;
    if ((rc = rd32(c, &t->type, "type"))) return rc;
    m64_type_info ti = m64_ggml_type_info(t->type);
    if (!ti.name || ti.block_elems == 0)
      return m64_fail(c->e, M64_EUNSUPPORTED, "%s: unknown ggml type %u", ctx, t->type);
    uint64_t row, nbytes = 0;
    if (m64_ggml_row_bytes(t->type, t->ne[0], &row))
      return m64_fail(c->e, M64_EFORMAT, "%s: row length %llu is not a multiple of the %s block (%u)",
                      ctx, (unsigned long long)t->ne[0], ti.name, ti.block_elems);
    uint64_t rows = t->ne[0] ? n_elems / t->ne[0] : 0;
    if (m64__mul_ovf(row, rows, &nbytes))
      return m64_fail(c->e, M64_EFORMAT, "%s: byte size overflows", ctx);
    t->nbytes = nbytes;
    if ((rc = rd64(c, &t->offset, "data offset"))) return rc;
  }
  return 0;
}

static int place_tensors(m64_gguf *g, m64_err *e) {
  for (uint64_t i = 0; i < g->n_tensors; i++) {
    m64_gguf_tensor *t = &g->tensors[i];
    uint64_t start, end;
    if (t->offset % g->alignment)
      return m64_fail(e, M64_EFORMAT, "tensor %llu '%s': data offset %llu is not a multiple of the alignment %u",
                      (unsigned long long)i, t->name, (unsigned long long)t->offset, g->alignment);
    if (m64__add_ovf(g->data_offset, t->offset, &start) || m64__add_ovf(start, t->nbytes, &end))
      return m64_fail(e, M64_EFORMAT, "tensor %llu '%s': data offset %llu overflows", (unsigned long long)i,
                      t->name, (unsigned long long)t->offset);
    if (end > g->size)
      return m64_fail(e, M64_EFORMAT, "tensor %llu '%s': data [%llu, %llu) past end of file (size %llu)",
                      (unsigned long long)i, t->name, (unsigned long long)start,
                      (unsigned long long)end, (unsigned long long)g->size);
    t->data = g->base + start;
  }
  return 0;
}

static int parse(m64_gguf *g, m64_err *e) {
  cur c = {g->base, g->size, 0, e, "header"};
  int rc;
  if (g->size == 0) return m64_fail(e, M64_EFORMAT, "empty file (0 bytes)");
  if (g->size < 4 || memcmp(g->base, "GGUF", 4) != 0)
    return m64_fail(e, M64_EFORMAT, "not a GGUF file (bad magic)");
  if (g->size < GGUF_HEADER_BYTES)
    return m64_fail(e, M64_EFORMAT, "file of %zu bytes is too small for a GGUF header (%u bytes)",
                    g->size, GGUF_HEADER_BYTES);
  c.pos = 4;
  uint64_t n_tensors = 0, n_kv = 0;
  (void)rd32(&c, &g->version, "version");
  (void)rd64(&c, &n_tensors, "n_tensors");
  (void)rd64(&c, &n_kv, "n_kv");
  if (g->version == 1)
    return m64_fail(e, M64_EUNSUPPORTED, "GGUF version 1 is not supported (only v2 and v3)");
  if (g->version != 2 && g->version != 3)
    return m64_fail(e, M64_EUNSUPPORTED, "unsupported GGUF version %u%s", g->version,
                    (g->version & 0xffff) == 0 ? " (a big-endian file?)" : "");
  if (n_tensors > M64_MAX_TENSORS)
    return m64_fail(e, M64_ELIMIT, "header: n_tensors %llu exceeds the limit of %u",
                    (unsigned long long)n_tensors, M64_MAX_TENSORS);
  if (n_kv > M64_MAX_KV)
    return m64_fail(e, M64_ELIMIT, "header: n_kv %llu exceeds the limit of %u",
                    (unsigned long long)n_kv, M64_MAX_KV);
  uint64_t min_bytes = n_tensors * GGUF_MIN_TENSOR_BYTES + n_kv * GGUF_MIN_KV_BYTES;
  if (min_bytes > g->size - c.pos)
    return m64_fail(e, M64_EFORMAT,
                    "header: %llu tensors and %llu kvs need at least %llu more bytes, file has %llu",
                    (unsigned long long)n_tensors, (unsigned long long)n_kv,
                    (unsigned long long)min_bytes, (unsigned long long)(g->size - c.pos));
  g->n_kv = n_kv;
  g->n_tensors = n_tensors;
  g->kvs = (gguf_kv *)calloc(n_kv ? n_kv : 1, sizeof *g->kvs);
  g->tensors = (m64_gguf_tensor *)calloc(n_tensors ? n_tensors : 1, sizeof *g->tensors);
  g->kv_tab = table_new(n_kv, &g->kv_mask);
  g->t_tab = table_new(n_tensors, &g->t_mask);
  if (!g->kvs || !g->tensors || !g->kv_tab || !g->t_tab)
    return m64_fail(e, M64_ENOMEM, "out of memory for %llu kvs and %llu tensors",
                    (unsigned long long)n_kv, (unsigned long long)n_tensors);
  if ((rc = parse_kvs(g, &c)) || (rc = parse_tensor_infos(g, &c))) return rc;

  g->alignment = GGUF_DEFAULT_ALIGNMENT;
  int64_t ai = m64_gguf_find_kv(g, "general.alignment");
  if (ai >= 0) {
    uint32_t a;
    if (m64_gguf_get_u32(g, "general.alignment", &a))
      return m64_fail(e, M64_EFORMAT, "general.alignment is not an unsigned 32-bit integer");
    if (!m64__is_pow2(a))
      return m64_fail(e, M64_EFORMAT, "general.alignment %u is not a power of two", a);
    if (a > M64_MAX_ALIGNMENT)
      return m64_fail(e, M64_ELIMIT, "general.alignment %u exceeds the limit of %u", a,
                      M64_MAX_ALIGNMENT);
    g->alignment = a;
  }
  if (m64__align_up(c.pos, g->alignment, &g->data_offset))
    return m64_fail(e, M64_EFORMAT, "data offset overflows");
  if (g->n_tensors && g->data_offset > g->size)
    return m64_fail(e, M64_EFORMAT, "data section starts at %llu, past end of file (size %llu)",
                    (unsigned long long)g->data_offset, (unsigned long long)g->size);
  return place_tensors(g, e);
}

static int open_common(const uint8_t *base, size_t size, int mapped, m64_gguf **out, m64_err *e) {
  m64_gguf *g = (m64_gguf *)calloc(1, sizeof *g);
  if (!g) {
    if (mapped) m64__unmap_file(base, size);
    return m64_fail(e, M64_ENOMEM, "out of memory");
  }
  g->base = base;
  g->size = size;
  g->mapped = mapped;
  int rc = parse(g, e);
  if (rc) {
    m64_gguf_close(g);
    return rc;
  }
  *out = g;
  return 0;
}

int m64_gguf_open(const char *path, m64_gguf **out, m64_err *e) {
  const uint8_t *base;
  size_t size;
  *out = NULL;
  int rc = m64__map_file(path, &base, &size, e);
  if (rc) return rc;
  rc = open_common(base, size, 1, out, e);
  if (rc && e) { /* prefix the path so the message stands alone */
    char tmp[sizeof e->msg];
    snprintf(tmp, sizeof tmp, "%s", e->msg);
    m64_fail(e, rc, "%s: %s", path, tmp);
  }
  return rc;
}

int m64_gguf_open_memory(const void *data, size_t size, m64_gguf **out, m64_err *e) {
  *out = NULL;
  if (!data && size) return m64_fail(e, M64_EIO, "NULL buffer");
  return open_common((const uint8_t *)data, size, 0, out, e);
}

void m64_gguf_close(m64_gguf *g) {
  if (!g) return;
  if (g->kvs)
    for (uint64_t i = 0; i < g->n_kv; i++) free(g->kvs[i].str_offs);
  free(g->kvs);
  free(g->tensors);
  free(g->kv_tab);
  free(g->t_tab);
  if (g->mapped) m64__unmap_file(g->base, g->size);
  free(g);
}

uint32_t m64_gguf_version(const m64_gguf *g) { return g->version; }
uint32_t m64_gguf_alignment(const m64_gguf *g) { return g->alignment; }
uint64_t m64_gguf_data_offset(const m64_gguf *g) { return g->data_offset; }
uint64_t m64_gguf_file_size(const m64_gguf *g) { return g->size; }
uint64_t m64_gguf_n_kv(const m64_gguf *g) { return g->n_kv; }

m64_str m64_gguf_kv_key(const m64_gguf *g, uint64_t i) {
  m64_str none = {NULL, 0};
  return i < g->n_kv ? g->kvs[i].key : none;
}
m64_gguf_vtype m64_gguf_kv_type(const m64_gguf *g, uint64_t i) {
  return i < g->n_kv ? (m64_gguf_vtype)g->kvs[i].type : (m64_gguf_vtype)-1;
}
int64_t m64_gguf_find_kv(const m64_gguf *g, const char *key) {
  return table_find(g, g->kv_tab, g->kv_mask, kv_name, key, strlen(key), -1);
}

static const gguf_kv *kv_of(const m64_gguf *g, const char *key) {
  int64_t i = m64_gguf_find_kv(g, key);
  return i < 0 ? NULL : &g->kvs[i];
}

/* An integer value of any width as sign + magnitude, so range checks are exact. */
static int int_of(uint32_t type, const uint8_t *p, int *neg, uint64_t *mag) {
  int64_t s;
  *neg = 0;
  switch (type) {
  case M64_GGUF_U8: *mag = p[0]; return 0;
  case M64_GGUF_U16: *mag = m64__rd_u16(p); return 0;
  case M64_GGUF_U32: *mag = m64__rd_u32(p); return 0;
  case M64_GGUF_U64: *mag = m64__rd_u64(p); return 0;
  case M64_GGUF_I8: s = (int8_t)p[0]; break;
  case M64_GGUF_I16: s = (int16_t)m64__rd_u16(p); break;
  case M64_GGUF_I32: s = (int32_t)m64__rd_u32(p); break;
  case M64_GGUF_I64: s = (int64_t)m64__rd_u64(p); break;
  default: return M64_ETYPE;
  }
  *neg = s < 0;
  *mag = s < 0 ? 0 - (uint64_t)s : (uint64_t)s;
  return 0;
}
static int to_i64(int neg, uint64_t mag, int64_t *out) {
  if (neg) {
    if (mag > (uint64_t)INT64_MAX + 1) return M64_ETYPE;
    *out = mag == 0 ? 0 : -(int64_t)(mag - 1) - 1;
  } else {
    if (mag > (uint64_t)INT64_MAX) return M64_ETYPE;
    *out = (int64_t)mag;
  }
  return 0;
}
static int float_of(uint32_t type, const uint8_t *p, float *out) {
  if (type == M64_GGUF_F32) {
    uint32_t u = m64__rd_u32(p);
    memcpy(out, &u, 4);
    return 0;
  }
  if (type == M64_GGUF_F64) {
    uint64_t u = m64__rd_u64(p);
    double d;
    memcpy(&d, &u, 8);
    *out = (float)d;
    return 0;
  }
  return M64_ETYPE;
}

static int scalar_int(const m64_gguf *g, const char *key, int *neg, uint64_t *mag) {
  const gguf_kv *kv = kv_of(g, key);
  if (!kv) return M64_ENOTFOUND;
  return int_of(kv->type, kv->val, neg, mag);
}

int m64_gguf_get_u32(const m64_gguf *g, const char *key, uint32_t *out) {
  int neg, rc;
  uint64_t mag;
  if ((rc = scalar_int(g, key, &neg, &mag))) return rc;
  if (neg || mag > UINT32_MAX) return M64_ETYPE;
  *out = (uint32_t)mag;
  return 0;
}
int m64_gguf_get_u64(const m64_gguf *g, const char *key, uint64_t *out) {
  int neg, rc;
  uint64_t mag;
  if ((rc = scalar_int(g, key, &neg, &mag))) return rc;
  if (neg) return M64_ETYPE;
  *out = mag;
  return 0;
}
int m64_gguf_get_i64(const m64_gguf *g, const char *key, int64_t *out) {
  int neg, rc;
  uint64_t mag;
  if ((rc = scalar_int(g, key, &neg, &mag))) return rc;
  return to_i64(neg, mag, out);
}
int m64_gguf_get_i32(const m64_gguf *g, const char *key, int32_t *out) {
  int64_t v;
  int rc = m64_gguf_get_i64(g, key, &v);
  if (rc) return rc;
  if (v < INT32_MIN || v > INT32_MAX) return M64_ETYPE;
  *out = (int32_t)v;
  return 0;
}
int m64_gguf_get_f32(const m64_gguf *g, const char *key, float *out) {
  const gguf_kv *kv = kv_of(g, key);
  if (!kv) return M64_ENOTFOUND;
  return float_of(kv->type, kv->val, out);
}
int m64_gguf_get_f64(const m64_gguf *g, const char *key, double *out) {
  const gguf_kv *kv = kv_of(g, key);
  if (!kv) return M64_ENOTFOUND;
  if (kv->type == M64_GGUF_F64) {
    uint64_t u = m64__rd_u64(kv->val);
    memcpy(out, &u, 8);
    return 0;
  }
  float f;
  int rc = float_of(kv->type, kv->val, &f);
  if (!rc) *out = f;
  return rc;
}
int m64_gguf_get_bool(const m64_gguf *g, const char *key, int *out) {
  const gguf_kv *kv = kv_of(g, key);
  if (!kv) return M64_ENOTFOUND;
  if (kv->type != M64_GGUF_BOOL) return M64_ETYPE;
  *out = kv->val[0] != 0;
  return 0;
}
int m64_gguf_get_str(const m64_gguf *g, const char *key, m64_str *out) {
  const gguf_kv *kv = kv_of(g, key);
  if (!kv) return M64_ENOTFOUND;
  if (kv->type != M64_GGUF_STRING) return M64_ETYPE;
  *out = kv->str;
  return 0;
}

int m64_gguf_get_arr(const m64_gguf *g, const char *key, m64_gguf_vtype *elem, uint64_t *n) {
  const gguf_kv *kv = kv_of(g, key);
  if (!kv) return M64_ENOTFOUND;
  if (kv->type != M64_GGUF_ARRAY) return M64_ETYPE;
  if (elem) *elem = (m64_gguf_vtype)kv->elem;
  if (n) *n = kv->count;
  return 0;
}

/* The array element i of a fixed-size element type, or an error code. */
static int arr_elem(const m64_gguf *g, const char *key, uint64_t i, const gguf_kv **kv_out,
                    const uint8_t **p) {
  const gguf_kv *kv = kv_of(g, key);
  if (!kv) return M64_ENOTFOUND;
  if (kv->type != M64_GGUF_ARRAY) return M64_ETYPE;
  if (i >= kv->count) return M64_ENOTFOUND;
  *kv_out = kv;
  uint32_t sz = scalar_size(kv->elem);
  if (sz == 0) return M64_ETYPE;
  *p = kv->arr + i * sz;
  return 0;
}

int m64_gguf_arr_str(const m64_gguf *g, const char *key, uint64_t i, m64_str *out) {
  const gguf_kv *kv = kv_of(g, key);
  if (!kv) return M64_ENOTFOUND;
  if (kv->type != M64_GGUF_ARRAY || kv->elem != M64_GGUF_STRING) return M64_ETYPE;
  if (i >= kv->count) return M64_ENOTFOUND;
  const uint8_t *p = g->base + kv->str_offs[i];
  out->len = m64__rd_u64(p);
  out->ptr = (const char *)p + 8;
  return 0;
}
int m64_gguf_arr_f32(const m64_gguf *g, const char *key, uint64_t i, float *out) {
  const gguf_kv *kv;
  const uint8_t *p;
  int rc = arr_elem(g, key, i, &kv, &p);
  return rc ? rc : float_of(kv->elem, p, out);
}
int m64_gguf_arr_i32(const m64_gguf *g, const char *key, uint64_t i, int32_t *out) {
  const gguf_kv *kv;
  const uint8_t *p;
  int neg;
  uint64_t mag;
  int64_t v;
  int rc = arr_elem(g, key, i, &kv, &p);
  if (rc || (rc = int_of(kv->elem, p, &neg, &mag)) || (rc = to_i64(neg, mag, &v))) return rc;
  if (v < INT32_MIN || v > INT32_MAX) return M64_ETYPE;
  *out = (int32_t)v;
  return 0;
}

uint64_t m64_gguf_n_tensors(const m64_gguf *g) { return g->n_tensors; }
const m64_gguf_tensor *m64_gguf_tensor_at(const m64_gguf *g, uint64_t i) {
  return i < g->n_tensors ? &g->tensors[i] : NULL;
}
const m64_gguf_tensor *m64_gguf_find_tensor(const m64_gguf *g, const char *name) {
  int64_t i = table_find(g, g->t_tab, g->t_mask, t_name, name, strlen(name), -1);
  return i < 0 ? NULL : &g->tensors[i];
}
