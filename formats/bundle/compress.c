/* compress.c — the zstd codec of compressed bundles (docs/FORMAT.md, "Compressed bundles").
 *
 * A layer is stored tensor by tensor, each cut into chunks of whole blocks. A chunk's
 * blocks are split into streams, one per block field and byte of that field's element (all
 * f16 scales' low bytes, then their high bytes, then all 4-bit quants, ...), and each
 * stream is one frame: fields of one kind look alike and compress together, each with its
 * own entropy tables, where interleaved they do not. A stream that does not compress by at
 * least the writer's min_gain is stored as is, in a zstd skippable frame (magic, size, the
 * raw bytes), so paging it in is a copy. Decoding never writes past a stream: every frame
 * must declare exactly its stream's size and is decoded into exactly that capacity. */
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "bundle_internal.h"

/* ---- block fields per ggml type (offset, length, element size in bytes) */
typedef struct field { uint16_t off, len, elem; } field;
typedef struct block_fields { uint32_t block_bytes, n; field f[5]; } block_fields;

/* Returns 0 when the type has no field table (then chunks are compressed as they are). */
static int fields_of(uint32_t type, block_fields *bf) {
  static const struct { uint32_t type; block_fields bf; } table[] = {
      {M64_GGML_F32, {4, 1, {{0, 4, 4}}}},
      {M64_GGML_F16, {2, 1, {{0, 2, 2}}}},
      {M64_GGML_BF16, {2, 1, {{0, 2, 2}}}},
      {M64_GGML_Q4_0, {18, 2, {{0, 2, 2}, {2, 16, 1}}}},
      {M64_GGML_Q4_1, {20, 3, {{0, 2, 2}, {2, 2, 2}, {4, 16, 1}}}},
      {M64_GGML_Q5_0, {22, 3, {{0, 2, 2}, {2, 4, 1}, {6, 16, 1}}}},
      {M64_GGML_Q5_1, {24, 4, {{0, 2, 2}, {2, 2, 2}, {4, 4, 1}, {8, 16, 1}}}},
      {M64_GGML_Q8_0, {34, 2, {{0, 2, 2}, {2, 32, 1}}}},
      {M64_GGML_IQ4_NL, {18, 2, {{0, 2, 2}, {2, 16, 1}}}},
      {M64_GGML_Q2_K, {84, 4, {{0, 16, 1}, {16, 64, 1}, {80, 2, 2}, {82, 2, 2}}}},
      {M64_GGML_Q3_K, {110, 4, {{0, 32, 1}, {32, 64, 1}, {96, 12, 1}, {108, 2, 2}}}},
      {M64_GGML_Q4_K, {144, 4, {{0, 2, 2}, {2, 2, 2}, {4, 12, 1}, {16, 128, 1}}}},
      {M64_GGML_Q5_K, {176, 5, {{0, 2, 2}, {2, 2, 2}, {4, 12, 1}, {16, 32, 1}, {48, 128, 1}}}},
      {M64_GGML_Q6_K, {210, 4, {{0, 128, 1}, {128, 64, 1}, {192, 16, 1}, {208, 2, 2}}}},
      {M64_GGML_IQ4_XS, {136, 4, {{0, 2, 2}, {2, 2, 2}, {4, 4, 1}, {8, 128, 1}}}},
  };
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    if (table[i].type == type) {
      *bf = table[i].bf;
      return 1;
    }
  return 0;
}

/* Bytes of raw data per frame for a tensor of this type: whole blocks, at least one. */
static uint64_t chunk_bytes(uint32_t type, uint32_t chunk_size) {
  block_fields bf;
  uint32_t bb = fields_of(type, &bf) ? bf.block_bytes : 1;
  uint64_t c = (uint64_t)chunk_size / bb * bb;
  return c ? c : bb;
}

/* Splits n bytes of blocks into streams (dir > 0) or joins them back (dir < 0). A tail
 * shorter than a block is kept as is, after the streams. */
static void transform(const block_fields *bf, const uint8_t *in, uint8_t *out, size_t n, int dir) {
  const size_t bb = bf->block_bytes, nb = n / bb;
  size_t s = 0; /* position in the streams */
  for (uint32_t fi = 0; fi < bf->n; fi++) {
    const field f = bf->f[fi];
    if (f.elem == 1) {
      for (size_t k = 0; k < nb; k++, s += f.len) {
        if (dir > 0) memcpy(out + s, in + k * bb + f.off, f.len);
        else memcpy(out + k * bb + f.off, in + s, f.len);
      }
      continue;
    }
    /* Byte b of element j (block k, element x of the field) is stream byte
     * s + b * n_elems + j. Element sizes 2 and 4 get their own loops: this runs on every
     * page-in, and a constant stride lets the compiler vectorize it. */
    const size_t per = f.len / f.elem, ne = nb * per;
    const uint8_t *sp = in + s;
    uint8_t *sq = out + s;
    if (f.elem == 2 && dir < 0) {
      for (size_t k = 0, j = 0; k < nb; k++)
        for (size_t x = 0; x < per; x++, j++) {
          uint8_t *o = out + k * bb + f.off + 2 * x;
          o[0] = sp[j];
          o[1] = sp[ne + j];
        }
    } else if (f.elem == 4 && dir < 0) {
      for (size_t k = 0, j = 0; k < nb; k++)
        for (size_t x = 0; x < per; x++, j++) {
          uint8_t *o = out + k * bb + f.off + 4 * x;
          o[0] = sp[j];
          o[1] = sp[ne + j];
          o[2] = sp[2 * ne + j];
          o[3] = sp[3 * ne + j];
        }
    } else {
      for (size_t k = 0, j = 0; k < nb; k++)
        for (size_t x = 0; x < per; x++, j++)
          for (size_t b = 0; b < f.elem; b++) {
            const size_t at = k * bb + f.off + x * f.elem + b;
            if (dir > 0) sq[b * ne + j] = in[at];
            else out[at] = sp[b * ne + j];
          }
    }
    s += ne * f.elem;
  }
  if (dir > 0) memcpy(out + s, in + nb * bb, n - nb * bb);
  else memcpy(out + nb * bb, in + s, n - nb * bb);
}

/* The streams a chunk of n bytes is stored as, one frame each: with fields, one per field
 * and byte of its element, then the tail shorter than a block; without, the whole chunk.
 * Returns how many (some may be empty: they get no frame). */
#define MAX_STREAMS 32
static uint32_t chunk_streams(const block_fields *bf, size_t n, size_t *lens) {
  if (!bf) {
    lens[0] = n;
    return 1;
  }
  const size_t nb = n / bf->block_bytes;
  uint32_t k = 0;
  for (uint32_t fi = 0; fi < bf->n; fi++)
    for (uint32_t b = 0; b < bf->f[fi].elem; b++) lens[k++] = nb * (bf->f[fi].len / bf->f[fi].elem);
  lens[k++] = n - nb * bf->block_bytes;
  return k;
}

/* A raw chunk: zstd's first skippable-frame magic, a u32 size, the bytes. */
#define RAW_MAGIC 0x184D2A50u
#define RAW_HEADER 8u

/* ---- sections: one frame each */
static int set_cctx(ZSTD_CCtx *c, int level, int long_window, m64_err *e) {
  size_t r = ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level);
  if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 0); /* SHA-256 covers it */
  if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 1);
  if (!ZSTD_isError(r) && long_window) {
    r = ZSTD_CCtx_setParameter(c, ZSTD_c_enableLongDistanceMatching, 1);
    if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, long_window);
  }
  return ZSTD_isError(r) ? m64_fail(e, M64_EFORMAT, "zstd: %s", ZSTD_getErrorName(r)) : 0;
}

int m64__z_compress(const void *src, size_t n, int level, int long_window, uint8_t **out,
                    size_t *out_n, m64_err *e) {
  *out = NULL;
  ZSTD_CCtx *c = ZSTD_createCCtx();
  uint8_t *buf = malloc(ZSTD_compressBound(n));
  int rc = !c || !buf ? m64_fail(e, M64_ENOMEM, "out of memory") : set_cctx(c, level, long_window, e);
  if (!rc) {
    size_t r = ZSTD_compress2(c, buf, ZSTD_compressBound(n), src, n);
    if (ZSTD_isError(r)) rc = m64_fail(e, M64_EFORMAT, "zstd: %s", ZSTD_getErrorName(r));
    else *out_n = r;
  }
  ZSTD_freeCCtx(c);
  if (rc) free(buf);
  else *out = buf;
  return rc;
}

static ZSTD_DCtx *new_dctx(void) {
  ZSTD_DCtx *d = ZSTD_createDCtx();
  /* A frame asking for a larger window (more decoder memory) is refused. */
  if (d) ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, Z_WINDOW_LOG_MAX);
  return d;
}

int m64__z_decompress_section(const uint8_t *src, size_t n, uint64_t raw_size, uint8_t **out,
                              m64_err *e) {
  *out = NULL;
  unsigned long long cs = ZSTD_getFrameContentSize(src, n);
  if (cs == ZSTD_CONTENTSIZE_ERROR) return m64_fail(e, M64_EFORMAT, "not a zstd frame");
  if (cs == ZSTD_CONTENTSIZE_UNKNOWN) return m64_fail(e, M64_EFORMAT, "zstd frame does not declare its size");
  if (cs != raw_size)
    return m64_fail(e, M64_EFORMAT, "zstd frame claims %llu bytes, the record says %llu", cs,
                    (unsigned long long)raw_size);
  size_t fsz = ZSTD_findFrameCompressedSize(src, n);
  if (ZSTD_isError(fsz) || fsz != n)
    return m64_fail(e, M64_EFORMAT, "zstd frame does not span the section's %zu bytes", n);
  uint8_t *buf = malloc(raw_size ? (size_t)raw_size : 1);
  ZSTD_DCtx *d = new_dctx();
  int rc = 0;
  if (!buf || !d) {
    rc = m64_fail(e, M64_ENOMEM, "out of memory");
  } else {
    size_t r = ZSTD_decompressDCtx(d, buf, (size_t)raw_size, src, n);
    if (ZSTD_isError(r)) rc = m64_fail(e, M64_EFORMAT, "zstd: %s", ZSTD_getErrorName(r));
    else if (r != raw_size)
      rc = m64_fail(e, M64_EFORMAT, "zstd frame yields %zu bytes, the record says %llu", r,
                    (unsigned long long)raw_size);
  }
  ZSTD_freeDCtx(d);
  if (rc) free(buf);
  else *out = buf;
  return rc;
}

/* ---- layers */
int m64__z_compress_layer(m64_layer_entry *l, const m64_tensor_entry *tensors, const uint8_t *raw,
                          const m64_compress_options *o, uint8_t **out, size_t *out_n, m64_err *e) {
  const uint32_t chunk = o->chunk_size ? o->chunk_size : Z_CHUNK_DEFAULT;
  const int split = !o->no_split;
  *out = NULL;
  /* Bound of the whole output: the sum of every frame's bound (a raw frame included). */
  uint64_t cap = 0;
  for (uint32_t t = l->first_tensor; t < l->first_tensor + l->n_tensors; t++) {
    block_fields bf = {0, 0, {{0, 0, 0}}};
    const int has = split && fields_of(tensors[t].type, &bf);
    const uint64_t cb = chunk_bytes(tensors[t].type, chunk);
    for (uint64_t off = 0; off < tensors[t].nbytes; off += cb) {
      size_t lens[MAX_STREAMS];
      const uint32_t ns = chunk_streams(has ? &bf : NULL,
                                        (size_t)(tensors[t].nbytes - off < cb ? tensors[t].nbytes - off : cb), lens);
      for (uint32_t k = 0; k < ns; k++) cap += ZSTD_compressBound(lens[k]) + RAW_HEADER;
    }
  }
  ZSTD_CCtx *c = ZSTD_createCCtx();
  uint8_t *buf = malloc(cap ? (size_t)cap : 1), *scratch = split ? malloc(chunk) : NULL;
  int rc = !c || !buf || (split && !scratch) ? m64_fail(e, M64_ENOMEM, "out of memory")
                                             : set_cctx(c, o->level ? o->level : 3, o->long_window, e);
  size_t pos = 0;
  for (uint32_t t = l->first_tensor; !rc && t < l->first_tensor + l->n_tensors; t++) {
    const m64_tensor_entry *te = &tensors[t];
    block_fields bf = {0, 0, {{0, 0, 0}}};
    const int has = split && fields_of(te->type, &bf);
    const uint64_t cb = chunk_bytes(te->type, chunk);
    for (uint64_t off = 0; !rc && off < te->nbytes; off += cb) {
      const size_t len = (size_t)(te->nbytes - off < cb ? te->nbytes - off : cb);
      const uint8_t *src = raw + te->offset + off;
      if (has) {
        transform(&bf, src, scratch, len, 1);
        src = scratch;
      }
      size_t lens[MAX_STREAMS];
      const uint32_t ns = chunk_streams(has ? &bf : NULL, len, lens);
      for (uint32_t k = 0; !rc && k < ns; src += lens[k], k++) {
        if (lens[k] == 0) continue;
        size_t r = ZSTD_compress2(c, buf + pos, (size_t)cap - pos, src, lens[k]);
        if (ZSTD_isError(r)) {
          rc = m64_fail(e, M64_EFORMAT, "layer '%s': zstd: %s", l->name, ZSTD_getErrorName(r));
        } else if ((double)r > (double)lens[k] * (1.0 - o->min_gain / 100.0)) {
          /* not worth decoding at every page-in: the stream as is (the bound has room) */
          m64__wr_u32(buf + pos, RAW_MAGIC);
          m64__wr_u32(buf + pos + 4, (uint32_t)lens[k]);
          memcpy(buf + pos + RAW_HEADER, src, lens[k]);
          pos += RAW_HEADER + lens[k];
        } else {
          pos += r;
        }
      }
    }
  }
  ZSTD_freeCCtx(c);
  free(scratch);
  if (rc) {
    free(buf);
    return rc;
  }
  l->codec = CODEC_ZSTD;
  l->filter = split ? FILTER_SPLIT : FILTER_NONE;
  l->chunk_size = chunk;
  l->stored_size = pos;
  *out = buf;
  *out_n = pos;
  return 0;
}

struct m64_layer_decoder {
  ZSTD_DCtx *dctx;
  uint8_t *scratch, *joined; /* one chunk each */
  size_t cap;
};

int m64_layer_decoder_new(m64_layer_decoder **out, m64_err *e) {
  *out = NULL;
  m64_layer_decoder *d = calloc(1, sizeof *d);
  if (!d || !(d->dctx = new_dctx())) {
    free(d);
    return m64_fail(e, M64_ENOMEM, "out of memory");
  }
  *out = d;
  return 0;
}

void m64_layer_decoder_free(m64_layer_decoder *d) {
  if (!d) return;
  ZSTD_freeDCtx(d->dctx);
  free(d->scratch);
  free(d->joined);
  free(d);
}

static int reserve(m64_layer_decoder *d, size_t n, m64_err *e) {
  if (d->cap >= n) return 0;
  free(d->scratch);
  free(d->joined);
  d->scratch = malloc(n);
  d->joined = malloc(n);
  d->cap = d->scratch && d->joined ? n : 0;
  return d->cap ? 0 : m64_fail(e, M64_ENOMEM, "out of memory");
}

static const uint8_t zeros[4096];

static void hash_zeros(m64_sha256 *h, uint64_t n) {
  while (n) {
    size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
    m64_sha256_update(h, zeros, k);
    n -= k;
  }
}

/* Decodes every frame of a layer in order, into dst (raw layout) or into the hash h; with
 * neither, only reads the frame headers (d may then be NULL). */
static int walk(const m64_layer_entry *l, const m64_tensor_entry *tensors, const uint8_t *stored,
                m64_layer_decoder *d, uint8_t *dst, m64_sha256 *h, m64_err *e) {
  if (l->codec != CODEC_ZSTD)
    return m64_fail(e, M64_EFORMAT, "layer '%s': unknown codec %u", l->name, l->codec);
  if (l->filter > FILTER_SPLIT)
    return m64_fail(e, M64_EFORMAT, "layer '%s': unknown filter %u", l->name, l->filter);
  if (l->chunk_size < Z_CHUNK_MIN || l->chunk_size > Z_CHUNK_MAX || !m64__is_pow2(l->chunk_size))
    return m64_fail(e, M64_EFORMAT, "layer '%s': chunk size %u is not a power of two in [%u, %u]",
                    l->name, l->chunk_size, Z_CHUNK_MIN, Z_CHUNK_MAX);
  const int headers_only = !dst && !h;
  /* Scratch for the largest chunk this layer really has (not what chunk_size claims). */
  uint64_t need = 1;
  for (uint32_t t = l->first_tensor; t < l->first_tensor + l->n_tensors; t++) {
    const uint64_t c = chunk_bytes(tensors[t].type, l->chunk_size);
    const uint64_t n = tensors[t].nbytes < c ? tensors[t].nbytes : c;
    if (n > need) need = n;
  }
  int rc = headers_only ? 0 : reserve(d, (size_t)need, e);
  if (rc) return rc;
  uint64_t pos = 0, raw_at = 0;
  for (uint32_t t = l->first_tensor; t < l->first_tensor + l->n_tensors; t++) {
    const m64_tensor_entry *te = &tensors[t];
    block_fields bf = {0, 0, {{0, 0, 0}}};
    const int split = l->filter == FILTER_SPLIT && fields_of(te->type, &bf);
    const uint64_t cb = chunk_bytes(te->type, l->chunk_size);
    if (dst) memset(dst + raw_at, 0, (size_t)(te->offset - raw_at));
    else if (h) hash_zeros(h, te->offset - raw_at);
    for (uint64_t off = 0; off < te->nbytes; off += cb) {
      const size_t len = (size_t)(te->nbytes - off < cb ? te->nbytes - off : cb);
      size_t lens[MAX_STREAMS];
      const uint32_t ns = chunk_streams(split ? &bf : NULL, len, lens);
      /* streams go to the scratch buffer when they must be joined or hashed */
      uint8_t *const base = headers_only ? NULL : dst && !split ? dst + te->offset + off : d->scratch;
      size_t at = 0;
      for (uint32_t k = 0; k < ns; at += lens[k], k++) {
        const size_t want = lens[k];
        if (want == 0) continue;
        const size_t rem = (size_t)(l->stored_size - pos);
        const uint8_t *f = stored + pos;
        if (rem >= RAW_HEADER && m64__rd_u32(f) == RAW_MAGIC) { /* stored as is */
          if (m64__rd_u32(f + 4) != want || rem - RAW_HEADER < want)
            return m64_fail(e, M64_EFORMAT, "layer '%s': raw chunk at stored +%llu claims %u bytes, its stream of '%s' has %zu (%zu left)",
                            l->name, (unsigned long long)pos, m64__rd_u32(f + 4), te->name, want, rem);
          if (base) memcpy(base + at, f + RAW_HEADER, want);
          pos += RAW_HEADER + want;
          continue;
        }
        if (rem == 0)
          return m64_fail(e, M64_EFORMAT, "layer '%s': frames end before tensor '%s' at +%llu",
                          l->name, te->name, (unsigned long long)off);
        unsigned long long cs = ZSTD_getFrameContentSize(f, rem);
        if (cs == ZSTD_CONTENTSIZE_ERROR || cs == ZSTD_CONTENTSIZE_UNKNOWN)
          return m64_fail(e, M64_EFORMAT, "layer '%s': no zstd frame of declared size at stored +%llu",
                          l->name, (unsigned long long)pos);
        if (cs != want)
          return m64_fail(e, M64_EFORMAT, "layer '%s': frame at stored +%llu claims %llu bytes, its stream of '%s' has %zu",
                          l->name, (unsigned long long)pos, cs, te->name, want);
        const size_t fsz = ZSTD_findFrameCompressedSize(f, rem);
        if (ZSTD_isError(fsz))
          return m64_fail(e, M64_EFORMAT, "layer '%s': truncated zstd frame at stored +%llu", l->name,
                          (unsigned long long)pos);
        if (headers_only) {
          pos += fsz;
          continue;
        }
        const size_t r = ZSTD_decompressDCtx(d->dctx, base + at, want, f, fsz);
        if (ZSTD_isError(r) || r != want)
          return m64_fail(e, M64_EFORMAT, "layer '%s': frame at stored +%llu: %s", l->name,
                          (unsigned long long)pos, ZSTD_isError(r) ? ZSTD_getErrorName(r) : "short output");
        pos += fsz;
      }
      if (headers_only) continue;
      const uint8_t *done = base;
      if (split) {
        uint8_t *to = dst ? dst + te->offset + off : d->joined;
        transform(&bf, d->scratch, to, len, -1);
        done = to;
      }
      if (h) m64_sha256_update(h, done, len);
    }
    raw_at = te->offset + te->nbytes;
  }
  if (dst) memset(dst + raw_at, 0, (size_t)(l->size - raw_at));
  else if (h) hash_zeros(h, l->size - raw_at);
  if (pos != l->stored_size)
    return m64_fail(e, M64_EFORMAT, "layer '%s': %llu stored bytes after its last frame", l->name,
                    (unsigned long long)(l->stored_size - pos));
  return 0;
}

int m64_layer_decode(const m64_layer_entry *l, const m64_tensor_entry *tensors,
                     const uint8_t *stored, m64_layer_decoder *d, uint8_t *dst, m64_err *e) {
  return walk(l, tensors, stored, d, dst, NULL, e);
}

int m64__z_hash_layer(const m64_layer_entry *l, const m64_tensor_entry *tensors,
                      const uint8_t *stored, m64_layer_decoder *d, uint8_t out[32], m64_err *e) {
  m64_sha256 h;
  m64_sha256_init(&h);
  int rc = walk(l, tensors, stored, d, NULL, &h, e);
  if (!rc) m64_sha256_final(&h, out);
  return rc;
}

int m64__z_check_frames(const m64_layer_entry *l, const m64_tensor_entry *tensors,
                        const uint8_t *stored, m64_err *e) {
  return walk(l, tensors, stored, NULL, NULL, NULL, e);
}
