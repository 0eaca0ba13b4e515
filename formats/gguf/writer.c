/* writer.c — builds a GGUF v3 file in memory (metadata) and streams it to disk. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/internal.h"

#define DEFAULT_ALIGNMENT 32u
#define CHUNK (1u << 20)

typedef struct bytes { uint8_t *p; size_t n, cap; } bytes;

static int put(bytes *b, const void *src, size_t n) {
  if (b->cap - b->n < n) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->n < n) {
      if (cap > SIZE_MAX / 2) return M64_ENOMEM;
      cap *= 2;
    }
    uint8_t *p = (uint8_t *)realloc(b->p, cap);
    if (!p) return M64_ENOMEM;
    b->p = p;
    b->cap = cap;
  }
  if (n) memcpy(b->p + b->n, src, n);
  b->n += n;
  return 0;
}
static int put_u32(bytes *b, uint32_t v) { uint8_t t[4]; m64__wr_u32(t, v); return put(b, t, 4); }
static int put_u64(bytes *b, uint64_t v) { uint8_t t[8]; m64__wr_u64(t, v); return put(b, t, 8); }
static int put_str(bytes *b, const char *s, size_t n) {
  int rc = put_u64(b, n);
  return rc ? rc : put(b, s, n);
}

typedef struct wtensor {
  char name[M64_MAX_NAME + 1];
  uint32_t type, n_dims;
  uint64_t ne[4], nbytes;
  uint8_t *data;          /* copied bytes, or NULL with fill set */
  m64_gguf_fill_fn fill;
  void *fill_ctx;
} wtensor;

struct m64_gguf_writer {
  uint32_t alignment;
  int have_alignment_kv;
  bytes kvs;              /* serialized kvs in call order */
  uint64_t n_kv;
  char **keys;            /* for duplicate detection */
  wtensor *tensors;
  uint64_t n_tensors, cap_tensors;
  int err;                /* first failed w_* call: save reports it */
  m64_err err_msg;
};

static int defer(m64_gguf_writer *w, int code, const char *fmt, const char *arg) {
  if (!w->err) {
    w->err = code;
    m64_fail(&w->err_msg, code, fmt, arg);
  }
  return code;
}

m64_gguf_writer *m64_gguf_writer_new(uint32_t alignment) {
  if (alignment == 0) alignment = DEFAULT_ALIGNMENT;
  if (!m64__is_pow2(alignment) || alignment > M64_MAX_ALIGNMENT) return NULL;
  m64_gguf_writer *w = (m64_gguf_writer *)calloc(1, sizeof *w);
  if (w) w->alignment = alignment;
  return w;
}

void m64_gguf_writer_free(m64_gguf_writer *w) {
  if (!w) return;
  for (uint64_t i = 0; i < w->n_kv; i++) free(w->keys[i]);
  free(w->keys);
  for (uint64_t i = 0; i < w->n_tensors; i++) free(w->tensors[i].data);
  free(w->tensors);
  free(w->kvs.p);
  free(w);
}

/* Validates and records a key, then serializes key + value type. */
static int begin_kv(m64_gguf_writer *w, const char *key, uint32_t type) {
  size_t len = strlen(key);
  if (len == 0 || len > M64_MAX_STRING) return defer(w, M64_ELIMIT, "bad key length: '%.80s'", key);
  if (w->n_kv >= M64_MAX_KV) return defer(w, M64_ELIMIT, "too many kvs at '%.80s'", key);
  for (uint64_t i = 0; i < w->n_kv; i++)
    if (strcmp(w->keys[i], key) == 0) return defer(w, M64_EFORMAT, "duplicate key '%.80s'", key);
  if (strcmp(key, "general.alignment") == 0) {
    if (type != M64_GGUF_U32)
      return defer(w, M64_ETYPE, "%.80s must be a u32", key);
    w->have_alignment_kv = 1;
  }
  char **keys = (char **)realloc(w->keys, (w->n_kv + 1) * sizeof *keys);
  if (!keys) return defer(w, M64_ENOMEM, "out of memory at key '%.80s'", key);
  w->keys = keys;
  if (!(keys[w->n_kv] = strdup(key))) return defer(w, M64_ENOMEM, "out of memory at key '%.80s'", key);
  w->n_kv++;
  if (put_str(&w->kvs, key, len) || put_u32(&w->kvs, type))
    return defer(w, M64_ENOMEM, "out of memory at key '%.80s'", key);
  return 0;
}

static uint32_t scalar_size(uint32_t t) {
  static const uint8_t sz[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
  return t < 13 ? sz[t] : 0;
}

/* Appends n native values of fixed-size type t as little-endian bytes. */
static int put_native(bytes *b, uint32_t t, const void *v, uint64_t n) {
  uint32_t sz = scalar_size(t);
  const uint8_t *p = (const uint8_t *)v;
  for (uint64_t i = 0; i < n; i++, p += sz) {
    uint8_t le[8];
    uint64_t x = 0;
    switch (sz) {
    case 1: x = p[0]; break;
    case 2: { uint16_t y; memcpy(&y, p, 2); x = y; break; }
    case 4: { uint32_t y; memcpy(&y, p, 4); x = y; break; }
    default: memcpy(&x, p, 8); break;
    }
    for (uint32_t k = 0; k < sz; k++) le[k] = (uint8_t)(x >> (8 * k));
    if (put(b, le, sz)) return M64_ENOMEM;
  }
  return 0;
}

int m64_gguf_w_scalar(m64_gguf_writer *w, const char *key, m64_gguf_vtype type, const void *v) {
  if (scalar_size(type) == 0) return defer(w, M64_ETYPE, "kv '%.80s': not a scalar type", key);
  if (strcmp(key, "general.alignment") == 0 && type == M64_GGUF_U32) {
    uint32_t a;
    memcpy(&a, v, 4);
    if (a != w->alignment)
      return defer(w, M64_EFORMAT, "%.80s differs from the writer's alignment", key);
  }
  int rc = begin_kv(w, key, type);
  if (rc) return rc;
  if (put_native(&w->kvs, type, v, 1)) return defer(w, M64_ENOMEM, "out of memory at '%.80s'", key);
  return 0;
}
int m64_gguf_w_u32(m64_gguf_writer *w, const char *key, uint32_t v) {
  return m64_gguf_w_scalar(w, key, M64_GGUF_U32, &v);
}
int m64_gguf_w_i32(m64_gguf_writer *w, const char *key, int32_t v) {
  return m64_gguf_w_scalar(w, key, M64_GGUF_I32, &v);
}
int m64_gguf_w_f32(m64_gguf_writer *w, const char *key, float v) {
  return m64_gguf_w_scalar(w, key, M64_GGUF_F32, &v);
}
int m64_gguf_w_bool(m64_gguf_writer *w, const char *key, int v) {
  uint8_t b = v != 0;
  return m64_gguf_w_scalar(w, key, M64_GGUF_BOOL, &b);
}
int m64_gguf_w_str(m64_gguf_writer *w, const char *key, const char *v) {
  size_t n = strlen(v);
  if (n > M64_MAX_STRING) return defer(w, M64_ELIMIT, "kv '%.80s': string too long", key);
  int rc = begin_kv(w, key, M64_GGUF_STRING);
  if (rc) return rc;
  if (put_str(&w->kvs, v, n)) return defer(w, M64_ENOMEM, "out of memory at '%.80s'", key);
  return 0;
}

static int begin_arr(m64_gguf_writer *w, const char *key, uint32_t elem, uint64_t n) {
  if (n > M64_MAX_ARRAY) return defer(w, M64_ELIMIT, "kv '%.80s': array too long", key);
  int rc = begin_kv(w, key, M64_GGUF_ARRAY);
  if (rc) return rc;
  if (put_u32(&w->kvs, elem) || put_u64(&w->kvs, n))
    return defer(w, M64_ENOMEM, "out of memory at '%.80s'", key);
  return 0;
}
int m64_gguf_w_arr(m64_gguf_writer *w, const char *key, m64_gguf_vtype elem, const void *v,
                   uint64_t n) {
  if (scalar_size(elem) == 0) return defer(w, M64_ETYPE, "kv '%.80s': not a fixed-size element type", key);
  int rc = begin_arr(w, key, elem, n);
  if (rc) return rc;
  if (put_native(&w->kvs, elem, v, n)) return defer(w, M64_ENOMEM, "out of memory at '%.80s'", key);
  return 0;
}
int m64_gguf_w_arr_str(m64_gguf_writer *w, const char *key, const char *const *v, uint64_t n) {
  for (uint64_t i = 0; i < n; i++)
    if (strlen(v[i]) > M64_MAX_STRING) return defer(w, M64_ELIMIT, "kv '%.80s': string too long", key);
  int rc = begin_arr(w, key, M64_GGUF_STRING, n);
  if (rc) return rc;
  for (uint64_t i = 0; i < n; i++)
    if (put_str(&w->kvs, v[i], strlen(v[i]))) return defer(w, M64_ENOMEM, "out of memory at '%.80s'", key);
  return 0;
}
int m64_gguf_w_arr_f32(m64_gguf_writer *w, const char *key, const float *v, uint64_t n) {
  return m64_gguf_w_arr(w, key, M64_GGUF_F32, v, n);
}
int m64_gguf_w_arr_i32(m64_gguf_writer *w, const char *key, const int32_t *v, uint64_t n) {
  return m64_gguf_w_arr(w, key, M64_GGUF_I32, v, n);
}

static int add_tensor(m64_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                      const uint64_t *ne, wtensor **out) {
  size_t len = strlen(name);
  if (len == 0 || len > M64_MAX_NAME) return defer(w, M64_ELIMIT, "tensor '%.80s': bad name length", name);
  if (n_dims == 0 || n_dims > M64_MAX_DIMS) return defer(w, M64_ELIMIT, "tensor '%.80s': bad n_dims", name);
  if (w->n_tensors >= M64_MAX_TENSORS) return defer(w, M64_ELIMIT, "tensor '%.80s': too many tensors", name);
  for (uint64_t i = 0; i < w->n_tensors; i++)
    if (strcmp(w->tensors[i].name, name) == 0) return defer(w, M64_EFORMAT, "duplicate tensor '%.80s'", name);
  wtensor t;
  memset(&t, 0, sizeof t);
  memcpy(t.name, name, len + 1);
  t.type = type;
  t.n_dims = n_dims;
  uint64_t rows = 1;
  for (uint32_t d = 0; d < 4; d++) {
    t.ne[d] = d < n_dims ? ne[d] : 1;
    if (d > 0 && m64__mul_ovf(rows, t.ne[d], &rows)) return defer(w, M64_EFORMAT, "tensor '%.80s': size overflows", name);
  }
  uint64_t row;
  if (m64_ggml_row_bytes(type, t.ne[0], &row) || m64__mul_ovf(row, rows, &t.nbytes))
    return defer(w, M64_EFORMAT, "tensor '%.80s': unknown type or row length not a multiple of its block", name);
  if (w->n_tensors == w->cap_tensors) {
    uint64_t cap = w->cap_tensors ? w->cap_tensors * 2 : 16;
    wtensor *p = (wtensor *)realloc(w->tensors, cap * sizeof *p);
    if (!p) return defer(w, M64_ENOMEM, "out of memory at tensor '%.80s'", name);
    w->tensors = p;
    w->cap_tensors = cap;
  }
  w->tensors[w->n_tensors] = t;
  *out = &w->tensors[w->n_tensors];
  return 0;
}

int m64_gguf_w_tensor(m64_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                      const uint64_t *ne, const void *data) {
  wtensor *t;
  int rc = add_tensor(w, name, type, n_dims, ne, &t);
  if (rc) return rc;
  if (t->nbytes > SIZE_MAX || !(t->data = (uint8_t *)malloc(t->nbytes ? t->nbytes : 1)))
    return defer(w, M64_ENOMEM, "out of memory for tensor '%.80s'", name);
  if (t->nbytes) memcpy(t->data, data, t->nbytes);
  w->n_tensors++;
  return 0;
}

int m64_gguf_w_tensor_fill(m64_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                           const uint64_t *ne, m64_gguf_fill_fn fill, void *ctx) {
  wtensor *t;
  int rc = add_tensor(w, name, type, n_dims, ne, &t);
  if (rc) return rc;
  t->fill = fill;
  t->fill_ctx = ctx;
  w->n_tensors++;
  return 0;
}

/* Sequential output through a buffer; reports ENOSPC as M64_ENOSPC. */
typedef struct out { int fd; const char *path; uint64_t off; bytes buf; m64_err *e; } out;
static int flush(out *o) {
  int rc = m64__pwrite_all(o->fd, o->buf.p, o->buf.n, o->off, o->path, o->e);
  o->off += o->buf.n;
  o->buf.n = 0;
  return rc;
}
static int emit(out *o, const void *p, size_t n) {
  if (o->buf.n + n > CHUNK && o->buf.n) {
    int rc = flush(o);
    if (rc) return rc;
  }
  if (n > CHUNK) {
    int rc = m64__pwrite_all(o->fd, p, n, o->off, o->path, o->e);
    o->off += n;
    return rc;
  }
  return put(&o->buf, p, n) ? m64_fail(o->e, M64_ENOMEM, "out of memory") : 0;
}
static uint64_t pos(const out *o) { return o->off + o->buf.n; }
static int pad_to(out *o, uint32_t align) {
  static const uint8_t zeros[M64_MAX_ALIGNMENT];
  uint64_t p = pos(o), target = p;
  (void)m64__align_up(p, align, &target);
  return emit(o, zeros, (size_t)(target - p));
}

static int write_all(m64_gguf_writer *w, out *o) {
  int rc;
  int auto_align = w->alignment != DEFAULT_ALIGNMENT && !w->have_alignment_kv;
  bytes hdr = {0};
  uint8_t tmp[8];
  rc = put(&hdr, "GGUF", 4) || put_u32(&hdr, 3) || put_u64(&hdr, w->n_tensors) ||
       put_u64(&hdr, w->n_kv + (uint64_t)auto_align);
  if (!rc && auto_align) {
    static const char key[] = "general.alignment";
    rc = put_str(&hdr, key, sizeof key - 1) || put_u32(&hdr, M64_GGUF_U32) || put_u32(&hdr, w->alignment);
  }
  if (rc) {
    free(hdr.p);
    return m64_fail(o->e, M64_ENOMEM, "out of memory");
  }
  rc = emit(o, hdr.p, hdr.n);
  free(hdr.p);
  if (rc || (rc = emit(o, w->kvs.p, w->kvs.n))) return rc;
  uint64_t data_off = 0;
  for (uint64_t i = 0; i < w->n_tensors; i++) {
    const wtensor *t = &w->tensors[i];
    uint64_t len = strlen(t->name);
    m64__wr_u64(tmp, len);
    if ((rc = emit(o, tmp, 8)) || (rc = emit(o, t->name, len))) return rc;
    m64__wr_u32(tmp, t->n_dims);
    if ((rc = emit(o, tmp, 4))) return rc;
    for (uint32_t d = 0; d < t->n_dims; d++) {
      m64__wr_u64(tmp, t->ne[d]);
      if ((rc = emit(o, tmp, 8))) return rc;
    }
    m64__wr_u32(tmp, t->type);
    if ((rc = emit(o, tmp, 4))) return rc;
    (void)m64__align_up(data_off, w->alignment, &data_off);
    m64__wr_u64(tmp, data_off);
    if ((rc = emit(o, tmp, 8))) return rc;
    data_off += t->nbytes;
  }
  for (uint64_t i = 0; i < w->n_tensors; i++) {
    const wtensor *t = &w->tensors[i];
    if ((rc = pad_to(o, w->alignment))) return rc;
    if (t->data) {
      if ((rc = emit(o, t->data, (size_t)t->nbytes))) return rc;
      continue;
    }
    uint8_t *chunk = (uint8_t *)malloc(CHUNK);
    if (!chunk) return m64_fail(o->e, M64_ENOMEM, "out of memory");
    for (uint64_t off = 0; off < t->nbytes && !rc; off += CHUNK) {
      size_t n = t->nbytes - off < CHUNK ? (size_t)(t->nbytes - off) : CHUNK;
      rc = t->fill(t->fill_ctx, off, chunk, n);
      if (rc) rc = m64_fail(o->e, rc, "tensor '%s': fill callback failed (%d)", t->name, rc);
      else rc = emit(o, chunk, n);
    }
    free(chunk);
    if (rc) return rc;
  }
  /* A file without tensors ends at the header; with tensors it ends at the last byte. */
  return flush(o);
}

int m64_gguf_writer_save(m64_gguf_writer *w, const char *path, m64_err *e) {
  if (w->err) return m64_fail(e, w->err, "%s", w->err_msg.msg);
  char *tmp = m64__temp_path(path);
  if (!tmp) return m64_fail(e, M64_ENOMEM, "out of memory");
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    int rc = m64_fail(e, m64__errno_code(errno), "%s: cannot create: %s", tmp, strerror(errno));
    free(tmp);
    return rc;
  }
  out o = {fd, tmp, 0, {0}, e};
  int rc = write_all(w, &o);
  free(o.buf.p);
  if (!rc) rc = m64__sync_and_rename(fd, tmp, path, e);
  close(fd);
  if (rc) unlink(tmp);
  free(tmp);
  return rc;
}
