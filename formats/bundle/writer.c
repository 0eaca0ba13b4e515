/* writer.c — streaming .m64 writer: small sections first, then the reserved LAYER_INDEX,
 * then 64 KiB-aligned segments; header and section table last, then fsync + rename.
 * Compressed bundles: small sections, then each segment's layers compressed in layer
 * order as they complete, then the LAYER_INDEX (its records need the stored sizes). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bundle_internal.h"

#define HASH_CHUNK (4u << 20)

struct m64_bundle_writer {
  int fd;                 /* -1 once closed */
  char *path, *tmp;
  m64_section sec[M64_MAX_SECTIONS];
  uint32_t n_sec;
  uint64_t end;           /* first free byte */
  int layout_set;
  uint32_t n_layers, n_tensors, n_segments;
  m64_layer_entry *layers;
  m64_tensor_entry *tensors;
  uint32_t *tensor_layer; /* owning layer of each tensor */
  uint8_t *written;       /* per tensor: bytes were given */
  uint32_t index_sec, first_seg_sec;
  /* compressed bundles */
  int z;
  m64_compress_options zo;
  uint64_t raw_size[M64_MAX_SECTIONS]; /* content size of each section */
  uint8_t **pending;      /* per layer: raw bytes until the layer is complete */
  uint32_t *missing;      /* per layer: tensors not written yet */
  uint32_t next_flush;    /* layers before it are compressed and written */
  int32_t seg_sec[M64_MAX_SECTIONS]; /* section of segment i, -1 until its first layer */
  m64_progress_fn progress; /* m64_bw_set_progress */
  void *progress_ctx;
  uint64_t written_bytes, tensor_bytes, hashed_bytes, layer_bytes;
};

void m64_bw_set_progress(m64_bundle_writer *w, m64_progress_fn fn, void *ctx) {
  if (!w) return;
  w->progress = fn;
  w->progress_ctx = ctx;
}

/* after tensor ti's bytes went in: the running total for the progress callback */
static void report_written(m64_bundle_writer *w, uint32_t ti) {
  if (!w->progress) return;
  if (!w->tensor_bytes)
    for (uint32_t t = 0; t < w->n_tensors; t++) w->tensor_bytes += w->tensors[t].nbytes;
  w->written_bytes += w->tensors[ti].nbytes;
  w->progress(w->progress_ctx, "writing", w->written_bytes, w->tensor_bytes);
}

static void close_and_unlink(m64_bundle_writer *w) {
  if (w->fd >= 0) {
    close(w->fd);
    w->fd = -1;
    unlink(w->tmp);
  }
}

int m64_bw_open(const char *path, m64_bundle_writer **out, m64_err *e) {
  *out = NULL;
  m64_bundle_writer *w = (m64_bundle_writer *)calloc(1, sizeof *w);
  if (!w || !(w->path = strdup(path)) || !(w->tmp = m64__temp_path(path))) {
    if (w) free(w->path);
    free(w);
    return m64_fail(e, M64_ENOMEM, "out of memory");
  }
  w->fd = open(w->tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (w->fd < 0) {
    int code = m64__errno_code(errno);
    m64_fail(e, code, "%s: cannot create: %s", w->tmp, strerror(errno));
    free(w->tmp);
    free(w->path);
    free(w);
    return code;
  }
  w->end = BUNDLE_FIRST_SECTION;
  *out = w;
  return 0;
}

const char *m64_bw_temp_path(const m64_bundle_writer *w) { return w ? w->tmp : NULL; }

static int check_alive(m64_bundle_writer *w, m64_err *e) {
  return w->fd < 0 ? m64_fail(e, M64_EIO, "%s: writer already failed or committed", w->path) : 0;
}

/* Claims the next section slot at an aligned offset past everything written so far. */
static int new_section(m64_bundle_writer *w, uint32_t kind, const char *name, uint64_t size,
                       uint64_t align, m64_section **out, m64_err *e) {
  size_t len = strlen(name);
  if (len == 0 || len >= sizeof w->sec[0].name)
    return m64_fail(e, M64_ELIMIT, "section name '%.60s' must be 1..%zu bytes", name,
                    sizeof w->sec[0].name - 1);
  if (w->n_sec >= M64_MAX_SECTIONS)
    return m64_fail(e, M64_ELIMIT, "more than %u sections", M64_MAX_SECTIONS);
  for (uint32_t i = 0; i < w->n_sec; i++)
    if (w->sec[i].kind == kind && strcmp(w->sec[i].name, name) == 0)
      return m64_fail(e, M64_EFORMAT, "duplicate section kind %u name '%s'", kind, name);
  m64_section *s = &w->sec[w->n_sec];
  memset(s, 0, sizeof *s);
  s->kind = kind;
  memcpy(s->name, name, len);
  if (m64__align_up(w->end, align, &s->offset) || m64__add_ovf(s->offset, size, &w->end))
    return m64_fail(e, M64_ELIMIT, "section '%s': file offset overflows", name);
  s->size = size;
  w->n_sec++;
  *out = s;
  return 0;
}

/* Writes a section at the end; compressed bundles store it as one zstd frame when that
 * is smaller (the table keeps the content's size and SHA-256). */
static int put_section(m64_bundle_writer *w, uint32_t kind, const char *name, const void *data,
                       uint64_t size, m64_err *e) {
  uint8_t *packed = NULL;
  size_t packed_n = 0;
  int rc = 0;
  if (w->z && (rc = m64__z_compress(data, (size_t)size, w->zo.level ? w->zo.level : 3, 0, &packed,
                                    &packed_n, e)))
    return rc;
  const int use = packed && packed_n < size;
  m64_section *s;
  if ((rc = new_section(w, kind, name, use ? packed_n : size, SECTION_ALIGN, &s, e))) {
    free(packed);
    return rc;
  }
  w->raw_size[s - w->sec] = size;
  s->codec = use ? CODEC_ZSTD : CODEC_NONE;
  m64_sha256 h;
  m64_sha256_init(&h);
  m64_sha256_update(&h, data, (size_t)size);
  m64_sha256_final(&h, s->sha256);
  rc = use ? m64__pwrite_all(w->fd, packed, packed_n, s->offset, w->tmp, e)
           : m64__pwrite_all(w->fd, data, (size_t)size, s->offset, w->tmp, e);
  free(packed);
  if (rc) close_and_unlink(w);
  return rc;
}

int m64_bw_set_compression(m64_bundle_writer *w, const m64_compress_options *o, m64_err *e) {
  int rc = check_alive(w, e);
  if (rc) return rc;
  if (w->n_sec || w->layout_set)
    return m64_fail(e, M64_EFORMAT, "set_compression must come before any section");
  m64_compress_options z = *o;
  if (z.level == 0) z.level = 3;
  if (z.chunk_size == 0) z.chunk_size = Z_CHUNK_DEFAULT;
  if (z.level < 1 || z.level > 19)
    return m64_fail(e, M64_ELIMIT, "zstd level %d is not in 1..19", z.level);
  if (z.chunk_size < Z_CHUNK_MIN || z.chunk_size > Z_CHUNK_MAX || !m64__is_pow2(z.chunk_size))
    return m64_fail(e, M64_ELIMIT, "chunk size %u is not a power of two in [%u, %u]", z.chunk_size,
                    Z_CHUNK_MIN, Z_CHUNK_MAX);
  if (z.long_window && (z.long_window < 10 || z.long_window > Z_WINDOW_LOG_MAX))
    return m64_fail(e, M64_ELIMIT, "long-distance window log %d is not in 10..%d", z.long_window,
                    Z_WINDOW_LOG_MAX);
  if (!(z.min_gain >= 0 && z.min_gain <= 50))
    return m64_fail(e, M64_ELIMIT, "minimum gain %g%% is not in 0..50", z.min_gain);
  w->z = 1;
  w->zo = z;
  return 0;
}

int m64_bw_add_section(m64_bundle_writer *w, uint32_t kind, const char *name, const void *data,
                       uint64_t size, m64_err *e) {
  int rc = check_alive(w, e);
  if (rc) return rc;
  if (kind == M64_SEC_LAYER_INDEX || kind == M64_SEC_SEGMENT)
    return m64_fail(e, M64_EFORMAT, "section kind %u is written by the writer itself", kind);
  if (kind == M64_SEC_SIGNATURE) /* it signs the finished file, so it comes after commit */
    return m64_fail(e, M64_EFORMAT, "a signature section is added by m64_sign_bundle, after commit");
  if (kind < M64_SEC_METADATA || kind > M64_SEC_SEGMENT)
    return m64_fail(e, M64_EFORMAT, "unknown section kind %u", kind);
  if (size > SIZE_MAX) return m64_fail(e, M64_ELIMIT, "section '%s' too large", name);
  if (w->z && w->layout_set)
    return m64_fail(e, M64_EUNSUPPORTED, "section '%s': a compressed bundle takes sections only before the layout", name);
  return put_section(w, kind, name, data, size, e);
}

static int flush_ready(m64_bundle_writer *w, m64_err *e);

/* Compressed bundles: layers are written in layer order, so a segment's layers must come
 * in segment order to keep each segment one contiguous run of bytes. */
static int set_layout_z(m64_bundle_writer *w, m64_err *e) {
  for (uint32_t i = 1; i < w->n_layers; i++)
    if (w->layers[i].segment < w->layers[i - 1].segment)
      return m64_fail(e, M64_EUNSUPPORTED, "layer %u '%s' goes back to segment %u: a compressed bundle needs segments in layer order",
                      i, w->layers[i].name, w->layers[i].segment);
  w->pending = (uint8_t **)calloc(w->n_layers ? w->n_layers : 1, sizeof *w->pending);
  w->missing = (uint32_t *)calloc(w->n_layers ? w->n_layers : 1, sizeof *w->missing);
  if (!w->pending || !w->missing) return m64_fail(e, M64_ENOMEM, "out of memory");
  for (uint32_t i = 0; i < w->n_layers; i++) {
    w->missing[i] = w->layers[i].n_tensors;
    w->layers[i].codec = CODEC_ZSTD;
  }
  for (uint32_t i = 0; i < M64_MAX_SECTIONS; i++) w->seg_sec[i] = -1;
  w->layout_set = 1;
  return flush_ready(w, e);
}

static int set_layout(m64_bundle_writer *w, const m64_layer_entry *layers, uint32_t n_layers,
                      const m64_tensor_entry *tensors, uint32_t n_tensors, m64_err *e) {
  int rc = check_alive(w, e);
  if (rc) return rc;
  if (w->layout_set) return m64_fail(e, M64_EFORMAT, "set_layout called twice");
  if (n_layers > M64_MAX_LAYERS || n_tensors > M64_MAX_TENSORS)
    return m64_fail(e, M64_ELIMIT, "%u layers / %u tensors exceed the limits (%u / %u)", n_layers,
                    n_tensors, M64_MAX_LAYERS, M64_MAX_TENSORS);
  /* Segments are as large as their furthest layer ends. */
  uint64_t seg_size[M64_MAX_SECTIONS] = {0};
  uint32_t n_seg = 0;
  for (uint32_t i = 0; i < n_layers; i++) {
    if (layers[i].segment >= M64_MAX_SECTIONS)
      return m64_fail(e, M64_ELIMIT, "layer %u: segment %u exceeds the limit", i, layers[i].segment);
    uint64_t end;
    if (m64__add_ovf(layers[i].offset, layers[i].size, &end))
      return m64_fail(e, M64_EFORMAT, "layer %u: extent overflows", i);
    if (layers[i].segment + 1 > n_seg) n_seg = layers[i].segment + 1;
    if (end > seg_size[layers[i].segment]) seg_size[layers[i].segment] = end;
  }
  if ((rc = m64__check_layout(layers, n_layers, tensors, n_tensors, n_seg, seg_size, e))) return rc;
  if (w->n_sec + 1 + n_seg > M64_MAX_SECTIONS)
    return m64_fail(e, M64_ELIMIT, "%u sections + layer index + %u segments exceed %u sections",
                    w->n_sec, n_seg, M64_MAX_SECTIONS);
  w->layers = (m64_layer_entry *)malloc((n_layers ? n_layers : 1) * sizeof *w->layers);
  w->tensors = (m64_tensor_entry *)malloc((n_tensors ? n_tensors : 1) * sizeof *w->tensors);
  w->tensor_layer = (uint32_t *)malloc((n_tensors ? n_tensors : 1) * sizeof *w->tensor_layer);
  w->written = (uint8_t *)calloc(n_tensors ? n_tensors : 1, 1);
  if (!w->layers || !w->tensors || !w->tensor_layer || !w->written)
    return m64_fail(e, M64_ENOMEM, "out of memory");
  memcpy(w->layers, layers, n_layers * sizeof *layers);
  memcpy(w->tensors, tensors, n_tensors * sizeof *tensors);
  for (uint32_t i = 0; i < n_layers; i++)
    for (uint32_t t = layers[i].first_tensor; t < layers[i].first_tensor + layers[i].n_tensors; t++)
      w->tensor_layer[t] = i;
  w->n_layers = n_layers;
  w->n_tensors = n_tensors;
  w->n_segments = n_seg;
  if (w->z) return set_layout_z(w, e);
  /* The index's place is fixed now and filled at commit, when the layer hashes are known. */
  m64_section *s;
  w->index_sec = w->n_sec;
  if ((rc = new_section(w, M64_SEC_LAYER_INDEX, "layers", m64__layer_index_size(n_layers, n_tensors, 0),
                        SECTION_ALIGN, &s, e)))
    return rc;
  w->first_seg_sec = w->n_sec;
  for (uint32_t i = 0; i < n_seg; i++) {
    char name[48];
    snprintf(name, sizeof name, "segment.%u", i);
    if ((rc = new_section(w, M64_SEC_SEGMENT, name, seg_size[i], M64_LAYER_ALIGN, &s, e))) return rc;
    /* Whole 64 KiB pages of every segment lie inside the file, so a runtime can map them. */
    if (m64__align_up(w->end, M64_LAYER_ALIGN, &w->end))
      return m64_fail(e, M64_ELIMIT, "file size overflows");
  }
  w->layout_set = 1;
  return 0;
}

int m64_bw_set_layout(m64_bundle_writer *w, const m64_layer_entry *layers, uint32_t n_layers,
                      const m64_tensor_entry *tensors, uint32_t n_tensors, m64_err *e) {
  uint32_t n_sec = w->n_sec;
  uint64_t end = w->end;
  int rc = set_layout(w, layers, n_layers, tensors, n_tensors, e);
  if (rc && !w->layout_set) { /* a rejected layout leaves the writer as it was */
    w->n_sec = n_sec;
    w->end = end;
    free(w->layers); free(w->tensors); free(w->tensor_layer); free(w->written);
    free(w->pending); free(w->missing);
    w->layers = NULL; w->tensors = NULL; w->tensor_layer = NULL; w->written = NULL;
    w->pending = NULL; w->missing = NULL;
  }
  return rc;
}

/* Compresses layer i (complete) and appends it to its segment. */
static int flush_layer(m64_bundle_writer *w, uint32_t i, m64_err *e) {
  static const uint8_t none[1];
  m64_layer_entry *l = &w->layers[i];
  const uint8_t *raw = w->pending[i] ? w->pending[i] : none;
  m64_sha256 h;
  m64_sha256_init(&h);
  m64_sha256_update(&h, raw, (size_t)l->size);
  m64_sha256_final(&h, l->sha256);
  uint8_t *packed = NULL;
  size_t n = 0;
  int rc = m64__z_compress_layer(l, w->tensors, raw, &w->zo, &packed, &n, e);
  free(w->pending[i]);
  w->pending[i] = NULL;
  if (rc) return rc;
  m64_sha256_init(&h);
  m64_sha256_update(&h, packed, n);
  m64_sha256_final(&h, l->stored_sha256);
  if (w->seg_sec[l->segment] < 0) {
    char name[48];
    snprintf(name, sizeof name, "segment.%u", l->segment);
    m64_section *s;
    if ((rc = new_section(w, M64_SEC_SEGMENT, name, 0, SECTION_ALIGN, &s, e))) {
      free(packed);
      return rc;
    }
    w->seg_sec[l->segment] = (int32_t)(s - w->sec);
  }
  m64_section *seg = &w->sec[w->seg_sec[l->segment]];
  l->stored_offset = seg->size;
  rc = m64__pwrite_all(w->fd, packed, n, seg->offset + seg->size, w->tmp, e);
  free(packed);
  if (rc) return rc;
  seg->size += n;
  w->end = seg->offset + seg->size;
  w->raw_size[seg - w->sec] = seg->size;
  return 0;
}

static int flush_ready(m64_bundle_writer *w, m64_err *e) {
  while (w->next_flush < w->n_layers && w->missing[w->next_flush] == 0) {
    int rc = flush_layer(w, w->next_flush, e);
    if (rc) {
      close_and_unlink(w);
      return rc;
    }
    w->next_flush++;
  }
  return 0;
}

static int write_tensor_z(m64_bundle_writer *w, uint32_t ti, const void *data, m64_err *e) {
  const m64_tensor_entry *t = &w->tensors[ti];
  const uint32_t li = w->tensor_layer[ti];
  const m64_layer_entry *l = &w->layers[li];
  if (li < w->next_flush)
    return m64_fail(e, M64_EFORMAT, "tensor '%s': its layer '%s' is already compressed", t->name, l->name);
  if (l->size > SIZE_MAX) return m64_fail(e, M64_ELIMIT, "layer '%s' too large", l->name);
  if (!w->pending[li] && !(w->pending[li] = (uint8_t *)calloc(1, (size_t)l->size)))
    return m64_fail(e, M64_ENOMEM, "out of memory (layer '%s', %llu bytes)", l->name,
                    (unsigned long long)l->size);
  memcpy(w->pending[li] + t->offset, data, (size_t)t->nbytes);
  if (!w->written[ti]) w->missing[li]--;
  w->written[ti] = 1;
  return flush_ready(w, e);
}

int m64_bw_write_tensor(m64_bundle_writer *w, uint32_t tensor_index, const void *data, m64_err *e) {
  int rc = check_alive(w, e);
  if (rc) return rc;
  if (!w->layout_set) return m64_fail(e, M64_EFORMAT, "write_tensor before set_layout");
  if (tensor_index >= w->n_tensors)
    return m64_fail(e, M64_ENOTFOUND, "tensor index %u out of range (%u tensors)", tensor_index,
                    w->n_tensors);
  const m64_tensor_entry *t = &w->tensors[tensor_index];
  if (w->z) {
    rc = write_tensor_z(w, tensor_index, data, e);
    if (!rc) report_written(w, tensor_index);
    return rc;
  }
  const m64_layer_entry *l = &w->layers[w->tensor_layer[tensor_index]];
  const m64_section *seg = &w->sec[w->first_seg_sec + l->segment];
  if (t->nbytes > SIZE_MAX) return m64_fail(e, M64_ELIMIT, "tensor '%s' too large", t->name);
  if ((rc = m64__pwrite_all(w->fd, data, (size_t)t->nbytes, seg->offset + l->offset + t->offset,
                            w->tmp, e))) {
    close_and_unlink(w);
    return rc;
  }
  w->written[tensor_index] = 1;
  report_written(w, tensor_index);
  return 0;
}

/* Streams a layer's bytes back from the file: layers can be many GB, so never in memory. */
static int hash_layer(m64_bundle_writer *w, m64_layer_entry *l, uint64_t file_off,
                      uint8_t *buf, m64_err *e) {
  m64_sha256 h;
  m64_sha256_init(&h);
  for (uint64_t done = 0; done < l->size;) {
    size_t n = l->size - done < HASH_CHUNK ? (size_t)(l->size - done) : HASH_CHUNK;
    int rc = m64__pread_all(w->fd, buf, n, file_off + done, w->tmp, e);
    if (rc) return rc;
    m64_sha256_update(&h, buf, n);
    done += n;
    if (w->progress) {
      if (!w->layer_bytes)
        for (uint32_t i = 0; i < w->n_layers; i++) w->layer_bytes += w->layers[i].size;
      w->hashed_bytes += n;
      w->progress(w->progress_ctx, "hashing", w->hashed_bytes, w->layer_bytes);
    }
  }
  m64_sha256_final(&h, l->sha256);
  return 0;
}

static int finish_index_z(m64_bundle_writer *w, m64_err *e);
static int write_header(m64_bundle_writer *w, m64_err *e);

static int finish(m64_bundle_writer *w, m64_err *e) {
  int rc;
  if (!w->layout_set) return m64_fail(e, M64_EFORMAT, "commit before set_layout");
  for (uint32_t t = 0; t < w->n_tensors; t++)
    if (!w->written[t])
      return m64_fail(e, M64_EFORMAT, "tensor %u '%s' was never written", t, w->tensors[t].name);
  if (w->z) {
    if ((rc = finish_index_z(w, e))) return rc;
    return write_header(w, e);
  }
  uint8_t *buf = (uint8_t *)malloc(HASH_CHUNK);
  if (!buf) return m64_fail(e, M64_ENOMEM, "out of memory");
  for (uint32_t i = 0; i < w->n_layers; i++) {
    m64_layer_entry *l = &w->layers[i];
    if ((rc = hash_layer(w, l, w->sec[w->first_seg_sec + l->segment].offset + l->offset, buf, e))) {
      free(buf);
      return rc;
    }
  }
  free(buf);

  m64_section *idx = &w->sec[w->index_sec];
  uint8_t *li = (uint8_t *)malloc(idx->size);
  if (!li) return m64_fail(e, M64_ENOMEM, "out of memory");
  m64__encode_layer_index(li, w->layers, w->n_layers, w->tensors, w->n_tensors, w->n_segments, 0);
  m64_sha256 h;
  m64_sha256_init(&h);
  m64_sha256_update(&h, li, idx->size);
  m64_sha256_final(&h, idx->sha256);
  rc = m64__pwrite_all(w->fd, li, idx->size, idx->offset, w->tmp, e);
  free(li);
  if (rc) return rc;

  return write_header(w, e);
}

/* Compressed bundles: segments without layers get empty sections; then the index. */
static int finish_index_z(m64_bundle_writer *w, m64_err *e) {
  for (uint32_t i = 0; i < w->n_segments; i++) {
    if (w->seg_sec[i] >= 0) continue;
    char name[48];
    snprintf(name, sizeof name, "segment.%u", i);
    m64_section *s;
    int rc = new_section(w, M64_SEC_SEGMENT, name, 0, SECTION_ALIGN, &s, e);
    if (rc) return rc;
    w->seg_sec[i] = (int32_t)(s - w->sec);
  }
  const uint64_t n = m64__layer_index_size(w->n_layers, w->n_tensors, 1);
  uint8_t *li = (uint8_t *)malloc((size_t)n);
  if (!li) return m64_fail(e, M64_ENOMEM, "out of memory");
  m64__encode_layer_index(li, w->layers, w->n_layers, w->tensors, w->n_tensors, w->n_segments, 1);
  int rc = put_section(w, M64_SEC_LAYER_INDEX, "layers", li, n, e);
  free(li);
  return rc;
}

static int write_header(m64_bundle_writer *w, m64_err *e) {
  int rc;
  m64_sha256 h;
  /* Extend to the final size first: segments' trailing pages may not be written yet. */
  if (ftruncate(w->fd, (off_t)w->end) != 0) {
    int code = m64__errno_code(errno);
    return m64_fail(e, code, "%s: cannot extend to %llu bytes: %s", w->tmp,
                    (unsigned long long)w->end, code == M64_ENOSPC ? "disk full" : strerror(errno));
  }

  size_t hdr_len = BH_SIZE + (size_t)w->n_sec * SR_SIZE;
  uint8_t *hdr = (uint8_t *)calloc(1, hdr_len);
  if (!hdr) return m64_fail(e, M64_ENOMEM, "out of memory");
  memcpy(hdr + BH_MAGIC, M64_BUNDLE_MAGIC, 8);
  m64__wr_u32(hdr + BH_VERSION, M64_BUNDLE_VERSION);
  m64__wr_u32(hdr + BH_FLAGS, w->z ? BH_F_COMPRESSED : 0);
  m64__wr_u32(hdr + BH_N_SECTIONS, w->n_sec);
  m64__wr_u32(hdr + BH_HEADER_SIZE, BH_SIZE);
  m64__wr_u32(hdr + BH_RECORD_SIZE, SR_SIZE);
  m64__wr_u64(hdr + BH_TABLE_OFFSET, BH_SIZE);
  m64__wr_u64(hdr + BH_FILE_SIZE, w->end);
  for (uint32_t i = 0; i < w->n_sec; i++) {
    uint8_t *r = hdr + BH_SIZE + (size_t)i * SR_SIZE;
    m64__wr_u32(r + SR_KIND, w->sec[i].kind);
    memcpy(r + SR_NAME, w->sec[i].name, strlen(w->sec[i].name));
    m64__wr_u64(r + SR_OFFSET, w->sec[i].offset);
    m64__wr_u64(r + SR_SIZE_FIELD, w->sec[i].size);
    memcpy(r + SR_SHA256, w->sec[i].sha256, 32);
    if (w->z) {
      m64__wr_u32(r + SR_CODEC, w->sec[i].codec);
      m64__wr_u64(r + SR_RAW_SIZE, w->raw_size[i]);
    }
  }
  m64_sha256_init(&h);
  m64_sha256_update(&h, hdr, BH_SHA256);
  m64_sha256_update(&h, hdr + BH_SIZE, hdr_len - BH_SIZE);
  m64_sha256_final(&h, hdr + BH_SHA256);
  rc = m64__pwrite_all(w->fd, hdr, hdr_len, 0, w->tmp, e);
  free(hdr);
  if (rc) return rc;
  return m64__sync_and_rename(w->fd, w->tmp, w->path, e);
}

static void free_writer(m64_bundle_writer *w) {
  if (w->pending)
    for (uint32_t i = 0; i < w->n_layers; i++) free(w->pending[i]);
  free(w->pending);
  free(w->missing);
  free(w->layers);
  free(w->tensors);
  free(w->tensor_layer);
  free(w->written);
  free(w->tmp);
  free(w->path);
  free(w);
}

int m64_bw_commit(m64_bundle_writer *w, m64_err *e) {
  int rc = check_alive(w, e);
  if (rc) return rc;
  rc = finish(w, e);
  if (rc) {
    /* The temp file goes now; the caller still owns w and frees it with m64_bw_abort. */
    close_and_unlink(w);
    return rc;
  }
  close(w->fd);
  free_writer(w);
  return 0;
}

void m64_bw_abort(m64_bundle_writer *w) {
  if (!w) return;
  close_and_unlink(w);
  free_writer(w);
}
