/*
 * m64_formats.h — the file formats m64 reads and writes, shared by m64c and m64run.
 *
 *   1. Errors        every fallible call returns int (0 = ok, negative = M64_E*) and
 *                    writes one human-readable line into a caller-supplied m64_err.
 *   2. ggml types    block sizes and names of the tensor types GGUF files carry.
 *   3. GGUF reader   untrusted input: every count, length and offset is checked against
 *                    the file size and the caps below before use; nothing is allocated
 *                    from an unchecked header field.
 *   4. GGUF writer   used by the synthetic-model generator and the tests.
 *   5. .m64 bundle   layout planning, a streaming writer (temp file + rename), and a
 *                    mapped reader. The byte format is specified in docs/FORMAT.md.
 *   6. SHA-256       used for section and layer hashes.
 *
 * All multi-byte fields in both formats are little-endian. Not thread-safe per object;
 * distinct objects may be used from distinct threads.
 */
#ifndef M64_FORMATS_H
#define M64_FORMATS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- 1. Errors */
enum {
  M64_OK = 0,
  M64_EIO = -1,       /* open/read/write/mmap failed (errno text in the message) */
  M64_EFORMAT = -2,   /* the bytes are not a valid file of that format */
  M64_ELIMIT = -3,    /* a field exceeds a documented cap (M64_MAX_*) */
  M64_ENOMEM = -4,    /* allocation failed */
  M64_ENOTFOUND = -5, /* a key / tensor / section is absent */
  M64_ETYPE = -6,     /* a value has another type than asked for */
  M64_EHASH = -7,     /* a SHA-256 does not match */
  M64_EUNSUPPORTED = -8,
  M64_EINTERRUPTED = -9,
  M64_ENOSPC = -10,   /* disk full while writing */
  M64_ETRAP = -11,    /* the wasm module trapped (runtime) */
  M64_EUNTRUSTED = -12, /* native code this user has not accepted to run (runtime; SECURITY.md) */
};
typedef struct m64_err { char msg[512]; } m64_err;
/* Formats msg into *e (if e != NULL) and returns code; for use in `return m64_fail(...)`. */
int m64_fail(m64_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Caps enforced by the readers (documented in docs/FORMAT.md). */
#define M64_MAX_TENSORS      65536u
#define M64_MAX_KV           65536u
#define M64_MAX_DIMS         4u
#define M64_MAX_NAME         63u            /* tensor name length (GGUF allows 64 incl. NUL) */
#define M64_MAX_STRING       (1u << 20)     /* any one GGUF string: 1 MiB */
#define M64_MAX_ARRAY        (1u << 24)     /* elements in one GGUF array */
#define M64_MAX_ALIGNMENT    (1u << 16)     /* general.alignment: power of two <= 64 KiB */
#define M64_MAX_SECTIONS     256u
#define M64_MAX_LAYERS       16384u         /* MoE: globals + blocks + every block's experts */
#define M64_MAX_EXPERTS      256u

/* ---------------------------------------------------------------- 2. ggml types */
typedef enum m64_ggml_type {
  M64_GGML_F32 = 0, M64_GGML_F16 = 1, M64_GGML_Q4_0 = 2, M64_GGML_Q4_1 = 3,
  M64_GGML_Q5_0 = 6, M64_GGML_Q5_1 = 7, M64_GGML_Q8_0 = 8, M64_GGML_Q8_1 = 9,
  M64_GGML_Q2_K = 10, M64_GGML_Q3_K = 11, M64_GGML_Q4_K = 12, M64_GGML_Q5_K = 13,
  M64_GGML_Q6_K = 14, M64_GGML_Q8_K = 15, M64_GGML_IQ2_XXS = 16, M64_GGML_IQ2_XS = 17,
  M64_GGML_IQ3_XXS = 18, M64_GGML_IQ1_S = 19, M64_GGML_IQ4_NL = 20, M64_GGML_IQ3_S = 21,
  M64_GGML_IQ2_S = 22, M64_GGML_IQ4_XS = 23, M64_GGML_I8 = 24, M64_GGML_I16 = 25,
  M64_GGML_I32 = 26, M64_GGML_I64 = 27, M64_GGML_F64 = 28, M64_GGML_IQ1_M = 29,
  M64_GGML_BF16 = 30, M64_GGML_TYPE_COUNT = 40
} m64_ggml_type;

typedef struct m64_type_info {
  const char *name;     /* "F32", "Q4_0", ... ; NULL for an unknown id */
  uint32_t block_elems; /* elements per block (1 for F32/F16) */
  uint32_t block_bytes; /* bytes per block */
} m64_type_info;
/* Info for a type id; .name == NULL when the id is not a known ggml type. */
m64_type_info m64_ggml_type_info(uint32_t type);
/* Bytes of a row of n elements; returns M64_EFORMAT if n is not a multiple of the block. */
int m64_ggml_row_bytes(uint32_t type, uint64_t n, uint64_t *out);

/* ---------------------------------------------------------------- 3. GGUF reader */
typedef enum m64_gguf_vtype {
  M64_GGUF_U8 = 0, M64_GGUF_I8 = 1, M64_GGUF_U16 = 2, M64_GGUF_I16 = 3,
  M64_GGUF_U32 = 4, M64_GGUF_I32 = 5, M64_GGUF_F32 = 6, M64_GGUF_BOOL = 7,
  M64_GGUF_STRING = 8, M64_GGUF_ARRAY = 9, M64_GGUF_U64 = 10, M64_GGUF_I64 = 11,
  M64_GGUF_F64 = 12
} m64_gguf_vtype;

/* A string inside the mapped file: NOT NUL-terminated. */
typedef struct m64_str { const char *ptr; uint64_t len; } m64_str;

typedef struct m64_gguf_tensor {
  char name[M64_MAX_NAME + 1];
  uint32_t type;            /* m64_ggml_type, validated as known */
  uint32_t n_dims;          /* 1..4 */
  uint64_t ne[4];           /* ne[0] = row length (fastest); unused dims are 1 */
  uint64_t n_elems;
  uint64_t offset;          /* relative to the data section, aligned */
  uint64_t nbytes;
  const uint8_t *data;      /* points into the mapping; in range */
} m64_gguf_tensor;

typedef struct m64_gguf m64_gguf;

/* Maps and parses a GGUF v2/v3 file. On error *out is NULL and e says what is wrong. */
int m64_gguf_open(const char *path, m64_gguf **out, m64_err *e);
/* Same over caller memory (kept alive by the caller until close). For tests and fuzzing. */
int m64_gguf_open_memory(const void *data, size_t size, m64_gguf **out, m64_err *e);
void m64_gguf_close(m64_gguf *g);  /* accepts NULL */

uint32_t m64_gguf_version(const m64_gguf *g);
uint32_t m64_gguf_alignment(const m64_gguf *g);
uint64_t m64_gguf_data_offset(const m64_gguf *g);
uint64_t m64_gguf_file_size(const m64_gguf *g);

/* Metadata. Keys are looked up by exact name. */
uint64_t m64_gguf_n_kv(const m64_gguf *g);
m64_str m64_gguf_kv_key(const m64_gguf *g, uint64_t i);
m64_gguf_vtype m64_gguf_kv_type(const m64_gguf *g, uint64_t i);
int64_t m64_gguf_find_kv(const m64_gguf *g, const char *key); /* index, or -1 */
/* Typed getters: M64_ENOTFOUND if absent, M64_ETYPE if the stored type does not convert
 * (integers convert between widths when the value fits; f32 accepts f32/f64). */
int m64_gguf_get_u32(const m64_gguf *g, const char *key, uint32_t *out);
int m64_gguf_get_u64(const m64_gguf *g, const char *key, uint64_t *out);
int m64_gguf_get_i32(const m64_gguf *g, const char *key, int32_t *out);
int m64_gguf_get_f32(const m64_gguf *g, const char *key, float *out);
int m64_gguf_get_bool(const m64_gguf *g, const char *key, int *out);
int m64_gguf_get_str(const m64_gguf *g, const char *key, m64_str *out);
/* The chat format (runtime/chat.c's: "llama3", "chatml", "llama2", "mistral", "zephyr")
 * whose markers a chat template's text (a GGUF's tokenizer.chat_template, Jinja) prints,
 * or "none" (formats/common/chat_template.c). */
const char *m64_chat_template_detect(const char *text, size_t len);
/* Arrays: element type and count; then element access (index is bounds-checked). */
int m64_gguf_get_arr(const m64_gguf *g, const char *key, m64_gguf_vtype *elem, uint64_t *n);
int m64_gguf_arr_str(const m64_gguf *g, const char *key, uint64_t i, m64_str *out);
int m64_gguf_arr_f32(const m64_gguf *g, const char *key, uint64_t i, float *out);
int m64_gguf_arr_i32(const m64_gguf *g, const char *key, uint64_t i, int32_t *out);
/* Added: 64-bit getters (same conversion rules; f64 accepts f32/f64). An array index out of
 * range gives M64_ENOTFOUND; elements of nested arrays are not accessible (M64_ETYPE). */
int m64_gguf_get_i64(const m64_gguf *g, const char *key, int64_t *out);
int m64_gguf_get_f64(const m64_gguf *g, const char *key, double *out);

/* Tensors, in file order. */
uint64_t m64_gguf_n_tensors(const m64_gguf *g);
const m64_gguf_tensor *m64_gguf_tensor_at(const m64_gguf *g, uint64_t i);
const m64_gguf_tensor *m64_gguf_find_tensor(const m64_gguf *g, const char *name); /* or NULL */

/* ---------------------------------------------------------------- 4. GGUF writer */
typedef struct m64_gguf_writer m64_gguf_writer;
m64_gguf_writer *m64_gguf_writer_new(uint32_t alignment); /* 0 = default 32 */
void m64_gguf_writer_free(m64_gguf_writer *w);
/* Metadata (key and string bytes are copied). */
int m64_gguf_w_u32(m64_gguf_writer *w, const char *key, uint32_t v);
int m64_gguf_w_i32(m64_gguf_writer *w, const char *key, int32_t v);
int m64_gguf_w_f32(m64_gguf_writer *w, const char *key, float v);
int m64_gguf_w_bool(m64_gguf_writer *w, const char *key, int v);
int m64_gguf_w_str(m64_gguf_writer *w, const char *key, const char *v);
int m64_gguf_w_arr_str(m64_gguf_writer *w, const char *key, const char *const *v, uint64_t n);
int m64_gguf_w_arr_f32(m64_gguf_writer *w, const char *key, const float *v, uint64_t n);
int m64_gguf_w_arr_i32(m64_gguf_writer *w, const char *key, const int32_t *v, uint64_t n);
/* A tensor; data (nbytes per type and dims) is copied. ne[0] is the row length. */
int m64_gguf_w_tensor(m64_gguf_writer *w, const char *name, uint32_t type,
                      uint32_t n_dims, const uint64_t *ne, const void *data);
/* Added: any scalar type (v points to a native uint8_t/int8_t/.../double; BOOL is a uint8_t),
 * and arrays of any fixed-size element type (v is a native array of n elements). */
int m64_gguf_w_scalar(m64_gguf_writer *w, const char *key, m64_gguf_vtype type, const void *v);
int m64_gguf_w_arr(m64_gguf_writer *w, const char *key, m64_gguf_vtype elem, const void *v,
                   uint64_t n);
/* Added: a tensor whose bytes are produced at save time, in order, in chunks (so a
 * multi-GB synthetic model needs no memory for its data). fill returns 0 or an M64_E*
 * code, which aborts the save. */
typedef int (*m64_gguf_fill_fn)(void *ctx, uint64_t offset, void *buf, size_t n);
int m64_gguf_w_tensor_fill(m64_gguf_writer *w, const char *name, uint32_t type,
                           uint32_t n_dims, const uint64_t *ne, m64_gguf_fill_fn fill, void *ctx);
/* Writes a GGUF v3 file (atomically: temp file then rename). A w_* call that failed makes
 * save fail with that call's message. If alignment != 32, general.alignment is written. */
int m64_gguf_writer_save(m64_gguf_writer *w, const char *path, m64_err *e);

/* ---------------------------------------------------------------- 5. .m64 bundle */
#define M64_BUNDLE_MAGIC "M64BNDL\0"    /* 8 bytes at offset 0 */
#define M64_BUNDLE_VERSION 1u
#define M64_LAYER_ALIGN   65536u        /* every layer starts on a 64 KiB boundary */
#define M64_TENSOR_ALIGN  64u           /* every tensor inside a layer: 64-byte aligned */
#define M64_SEGMENT_MAX   (16ull << 30) /* one memory64 memory in a browser */

typedef enum m64_section_kind {
  M64_SEC_METADATA = 1,    /* UTF-8 text, one "key = value" per line */
  M64_SEC_TOKENIZER = 2,   /* the module's tokenizer blob (module/tokenizer.h) */
  M64_SEC_LAYER_INDEX = 3, /* layers + tensors, binary, see docs/FORMAT.md */
  M64_SEC_MODULE_WASM = 4, /* the generated WebAssembly module (the first one: native code is
                              compiled from it), then optionally its relaxed-SIMD variant
                              named M64_RELAXED_MODULE, for browsers that have relaxed SIMD */
  M64_SEC_NATIVE = 5,      /* AOT native code for one target (name = target triple) */
  M64_SEC_SEGMENT = 6,     /* one image segment; name = "segment.N"; hashed per layer */
  M64_SEC_SIGNATURE = 7,   /* a publisher's Ed25519 signature over the bundle (formats/sign) */
} m64_section_kind;

#define M64_RELAXED_MODULE "module.relaxed"

typedef struct m64_section {
  uint32_t kind;
  char name[48];           /* NUL-terminated; unique per kind */
  uint64_t offset;         /* in the file; segments are 64 KiB-aligned */
  uint64_t size;
  uint8_t sha256[32];      /* of the section bytes; all-zero for SEGMENT sections */
  const uint8_t *data;     /* reader: points into the mapping */
  /* Compressed bundles: codec 1 (zstd) means the file holds stored_size bytes at offset,
   * and the reader hands out the decompressed content (data, size; sha256 is of the
   * content). codec 0: stored as is, stored_size == size. Always set by the reader. */
  uint32_t codec;
  uint64_t stored_size;
} m64_section;

typedef struct m64_tensor_entry {
  char name[M64_MAX_NAME + 1];
  uint32_t type;
  uint32_t n_dims;
  uint64_t ne[4];
  uint64_t offset;         /* byte offset inside its layer, multiple of M64_TENSOR_ALIGN */
  uint64_t nbytes;
  uint32_t layout;         /* M64_LAYOUT_ROWS or M64_LAYOUT_PAIRS: how the blocks are ordered */
} m64_tensor_entry;

/* A tensor's block order in the image. ROWS: ggml's (row after row, as in the GGUF).
 * PAIRS (2-D block-quantized matrices): rows 2p and 2p+1 interleaved block by block,
 * r0b0 r1b0 r0b1 r1b1 ..., in the same 2 * row_bytes; an odd last row stays as it is. A
 * matrix-vector product over two rows then reads one sequential stream. */
#define M64_LAYOUT_ROWS 0u
#define M64_LAYOUT_PAIRS 1u

typedef struct m64_layer_entry {
  char name[32];           /* "globals", "blk.0", ... */
  uint32_t segment;        /* image segment index */
  uint64_t offset;         /* inside the segment, multiple of M64_LAYER_ALIGN */
  uint64_t size;           /* bytes used by the layer's tensors (padding excluded) */
  uint8_t sha256[32];      /* of those size bytes */
  uint32_t first_tensor;   /* into the tensor table */
  uint32_t n_tensors;
  /* Compressed bundles only (codec 1 = zstd): the layer is stored as frames (zstd, or
   * raw in a skippable frame), one per stream of each chunk of each tensor, at
   * stored_offset inside its segment section. The fields above keep describing the raw
   * (decompressed) layout. */
  uint32_t codec;          /* 0 = stored raw (uncompressed bundle), 1 = zstd */
  uint32_t filter;         /* 0 = none, 1 = each chunk's block fields split into streams */
  uint32_t chunk_size;     /* raw bytes per chunk (rounded down to whole blocks) */
  uint64_t stored_offset, stored_size;
  uint8_t stored_sha256[32];
} m64_layer_entry;

/* Layout planning: given layers with name/first_tensor/n_tensors set and tensors with
 * name/type/dims/nbytes set, assigns each tensor's offset inside its layer, each layer's
 * size, segment and offset (no layer crosses a segment; segments <= segment_max bytes),
 * and returns the number of segments and each segment's size. segment_max = 0 means
 * M64_SEGMENT_MAX. Fails (M64_ELIMIT) if one layer is larger than segment_max. */
int m64_plan_layout(m64_layer_entry *layers, uint32_t n_layers,
                    m64_tensor_entry *tensors, uint32_t n_tensors, uint64_t segment_max,
                    uint32_t *n_segments, uint64_t *segment_sizes /* [M64_MAX_SECTIONS] */,
                    m64_err *e);

/* Streaming writer. Writes to "<path>.tmp.<pid>" and renames on commit, so an error or
 * a signal never leaves a partial bundle at path; abort (or free without commit)
 * removes the temp file. */
typedef struct m64_bundle_writer m64_bundle_writer;
int m64_bw_open(const char *path, m64_bundle_writer **out, m64_err *e);
/* A small section, copied. Order of calls = order in the file. */
int m64_bw_add_section(m64_bundle_writer *w, uint32_t kind, const char *name,
                       const void *data, uint64_t size, m64_err *e);
/* The planned layout (from m64_plan_layout); writes the LAYER_INDEX section itself. */
int m64_bw_set_layout(m64_bundle_writer *w, const m64_layer_entry *layers, uint32_t n_layers,
                      const m64_tensor_entry *tensors, uint32_t n_tensors, m64_err *e);
/* Tensor bytes, given per tensor in any order; each must be exactly nbytes. Layer hashes
 * are computed at commit from what was written. */
int m64_bw_write_tensor(m64_bundle_writer *w, uint32_t tensor_index, const void *data,
                        m64_err *e);
/* Compression (docs/FORMAT.md, "Compressed bundles"): call right after m64_bw_open. Every
 * section is then zstd-compressed, and each layer is compressed as soon as its last
 * tensor arrives (layers are stored in layer order; tensors of a layer are held in memory
 * until the layer is complete). Sections cannot be added after set_layout. */
typedef struct m64_compress_options {
  int level;               /* zstd level 1..19 (0 = 3) */
  uint32_t chunk_size;     /* raw bytes per chunk, power of two in [4 KiB, 64 MiB] (0 = 1 MiB) */
  int no_split;            /* keep each block's fields interleaved (for measurement) */
  int long_window;         /* 0, or zstd long-distance matching with this window log (for measurement) */
  double min_gain;         /* percent: a stream whose frame saves less is stored as is (0..50) */
} m64_compress_options;
int m64_bw_set_compression(m64_bundle_writer *w, const m64_compress_options *o, m64_err *e);
/* Finalizes hashes, section table and header, fsyncs, renames into place. */
int m64_bw_commit(m64_bundle_writer *w, m64_err *e);
/* Progress of long work, for a bar: what ("writing", "hashing", "verifying") and the bytes
 * done of total so far; called often (per tensor, per hashed chunk), cheap to ignore. */
typedef void (*m64_progress_fn)(void *ctx, const char *what, uint64_t done, uint64_t total);
/* The writer reports the tensor bytes written and, at commit, the layer bytes hashed. */
void m64_bw_set_progress(m64_bundle_writer *w, m64_progress_fn fn, void *ctx);
/* (On success commit frees w. On failure the temp file is already removed and w must still
 * be freed with m64_bw_abort. Sections may also be added after set_layout: they go after
 * the segments.) */
void m64_bw_abort(m64_bundle_writer *w); /* removes the temp file, frees; accepts NULL */
/* Path of the temp file being written (so a signal handler can unlink it). */
const char *m64_bw_temp_path(const m64_bundle_writer *w);

/* Reader: maps the file read-only and validates header, section table and layer index
 * (bounds, overlaps, alignment, caps) and the hashes of every non-segment section.
 * Layer data is checked lazily with m64_bundle_verify_layer. */
typedef struct m64_bundle m64_bundle;
int m64_bundle_open(const char *path, m64_bundle **out, m64_err *e);
int m64_bundle_open_memory(const void *data, size_t size, m64_bundle **out, m64_err *e);
void m64_bundle_close(m64_bundle *b);   /* accepts NULL */
uint32_t m64_bundle_version(const m64_bundle *b);
uint64_t m64_bundle_file_size(const m64_bundle *b);
uint32_t m64_bundle_n_sections(const m64_bundle *b);
const m64_section *m64_bundle_section_at(const m64_bundle *b, uint32_t i);
/* First section of that kind and name (name NULL = any). NULL when absent. */
const m64_section *m64_bundle_find_section(const m64_bundle *b, uint32_t kind, const char *name);
uint32_t m64_bundle_n_layers(const m64_bundle *b);
/* Layer 0 is the globals, layers 1..n_blocks the transformer blocks; in a Mixture-of-Experts
 * model, layer 1 + n_blocks + l * n_experts + x is block l's expert x (its gate, up and down
 * matrices: a paging unit of its own). From the metadata; n_experts 0 for a dense model. */
uint32_t m64_bundle_n_blocks(const m64_bundle *b);
uint32_t m64_bundle_n_experts(const m64_bundle *b);
const m64_layer_entry *m64_bundle_layer(const m64_bundle *b, uint32_t i);
uint32_t m64_bundle_n_tensors(const m64_bundle *b);
const m64_tensor_entry *m64_bundle_tensor(const m64_bundle *b, uint32_t i);
uint32_t m64_bundle_n_segments(const m64_bundle *b);
/* Pointer to a layer's bytes inside the mapping (size = layer->size); NULL when the layer
 * is compressed (read it with m64_bundle_read_layer). */
const uint8_t *m64_bundle_layer_data(const m64_bundle *b, uint32_t i);
/* Nonzero for a compressed bundle (header flag 1). */
int m64_bundle_compressed(const m64_bundle *b);
/* The layer's bytes as stored in the file (compressed frames, or the raw bytes). */
const uint8_t *m64_bundle_layer_stored(const m64_bundle *b, uint32_t i);
/* Decompression state (zstd context and a chunk-sized scratch buffer); one per thread. */
typedef struct m64_layer_decoder m64_layer_decoder;
int m64_layer_decoder_new(m64_layer_decoder **out, m64_err *e);
void m64_layer_decoder_free(m64_layer_decoder *d); /* accepts NULL */
/* Writes layer i's size raw bytes to dst (gaps between tensors are zeroed): decompresses a
 * compressed layer (never writing past dst + size: a frame that claims or yields another
 * size than its stream is M64_EFORMAT naming the layer), copies a raw one. With verify,
 * the stored bytes' SHA-256 is checked before decoding and the raw bytes' after. */
int m64_bundle_read_layer(const m64_bundle *b, uint32_t i, m64_layer_decoder *d, uint8_t *dst,
                          int verify, m64_err *e);
/* The same decoding for a layer record and stored bytes given directly (for tests). */
int m64_layer_decode(const m64_layer_entry *l, const m64_tensor_entry *tensors,
                     const uint8_t *stored, m64_layer_decoder *d, uint8_t *dst, m64_err *e);
/* Recomputes a layer's SHA-256 (compressed: of the stored bytes, then of the decoded raw
 * bytes, streamed); M64_EHASH naming the layer on mismatch. */
int m64_bundle_verify_layer(const m64_bundle *b, uint32_t i, m64_err *e);
/* Checks that `data` (the layer's raw size bytes, wherever they were put: a copy read from
 * the file) has layer i's raw SHA-256; M64_EHASH naming the layer on mismatch. */
int m64_bundle_check_layer_bytes(const m64_bundle *b, uint32_t i, const uint8_t *data, m64_err *e);
/* Added: checks the hash of every section and every layer (M64_EHASH names the first bad). */
int m64_bundle_verify_all(const m64_bundle *b, m64_err *e);
/* The same, reporting the layer bytes checked ("verifying") to fn (NULL: none). */
int m64_bundle_verify_all_progress(const m64_bundle *b, m64_progress_fn fn, void *ctx, m64_err *e);
/* The header and section table as they are in the file (96 + 128 * n_sections bytes at
 * the start of the mapping), for the signature check (formats/sign): a view of the file,
 * so copy it before relying on it. */
const uint8_t *m64_bundle_header_bytes(const m64_bundle *b, size_t *len);
/* Metadata section lookup: copies the value of "key = value" into out (NUL-terminated). */
int m64_bundle_meta(const m64_bundle *b, const char *key, char *out, size_t out_size);

/* ---- NATIVE sections (formats/bundle/native_section.c; docs/FORMAT.md) ----
 * A 64-byte header (magic, wasm hash, code size), the code (a shared object), then, when
 * flag bit 0 is set, a 32-byte local mark (formats/sign/local_mark.h says what it is). */
#define M64_NATIVE_MAGIC "M64NATIV"
#define M64_NATIVE_HEADER_BYTES 64u
#define M64_NATIVE_FLAG_LOCAL_MARK 1u
#define M64_NATIVE_MARK_BYTES 32u

typedef struct m64_native_section {
  const uint8_t *wasm_sha256; /* 32 bytes: the MODULE_WASM the code was compiled from */
  const uint8_t *code;        /* the shared object */
  uint64_t code_size;
  uint32_t flags;
  const uint8_t *mark;        /* M64_NATIVE_MARK_BYTES, or NULL when unmarked */
} m64_native_section;

/* Splits a NATIVE section into its parts (pointers into data); M64_EFORMAT for a bad
 * magic or header size, unknown flags, non-zero reserved bytes, or sizes that do not add up. */
int m64_native_section_parse(const uint8_t *data, uint64_t size, m64_native_section *out,
                             m64_err *e);
/* An unmarked section for code compiled from the wasm whose SHA-256 is given: *out is
 * malloc'ed (*out_size bytes). */
int m64_native_section_write(const uint8_t wasm_sha256[32], const uint8_t *code, size_t code_size,
                             uint8_t **out, size_t *out_size, m64_err *e);
/* Grows an unmarked section (*sec, malloc'ed, *size bytes; both replaced) by a zeroed mark,
 * sets the mark flag, and points *mark at the mark's 32 bytes for the caller to fill. */
int m64_native_section_reserve_mark(uint8_t **sec, size_t *size, uint8_t **mark, m64_err *e);

/* ---- native code targets (formats/common/target.c) ----
 * A target is "<arch>[-<level>]-<os>": x86_64-linux, x86_64-v2-linux, x86_64-v3-linux,
 * x86_64-v4vnni-linux, aarch64-linux. m64_host_target: the best one this host runs (the
 * name its own AOT code gets). m64_target_rank_on: 0 when a CPU of target `host` cannot run
 * code built for `target` (or either is unknown), else how good a pick it is there (higher
 * is faster: v4vnni > v3 > v2 > x86_64). m64_target_rank and m64_target_runnable ask it
 * about this host. m64_target_known: 1 for the names above. */
const char *m64_host_target(void);
int m64_target_known(const char *target);
int m64_target_rank_on(const char *target, const char *host);
int m64_target_rank(const char *target);
int m64_target_runnable(const char *target);

/* What a file is, from its first bytes (formats/common/kind.c): M64_KIND_* >= 0, or a
 * negative M64_E* when it cannot be read (a directory, a missing file). The commands name
 * the kind when given a file they cannot take, and say what to run instead. */
enum {
  M64_KIND_OTHER = 0,             /* neither of the below */
  M64_KIND_GGUF = 1,              /* starts with "GGUF": a model for m64c build */
  M64_KIND_BUNDLE = 2,            /* an .m64 bundle, plain (mmap-friendly) */
  M64_KIND_BUNDLE_COMPRESSED = 3, /* an .m64 bundle with header flag 1 (zstd) */
};
int m64_file_kind(const char *path, m64_err *e);
/* "a GGUF model", "an m64 bundle", "a compressed m64 bundle", "neither a GGUF model nor an
 * m64 bundle". */
const char *m64_file_kind_name(int kind);

/* Parses a size such as "512M", "4G", "1.5G", "65536" (K/M/G/T are powers of 1024, an
 * optional "iB" or "B" may follow) into bytes; 0 for a malformed size. */
uint64_t m64_parse_size(const char *s);
/* A byte count for people: "512 bytes", "1.0 KiB", "300.0 KiB", "1.4 MiB", "3.5 GiB" (the
 * largest unit that keeps the number at least 1), into out; returns out. */
const char *m64_format_size(uint64_t bytes, char *out, size_t out_size);

/* Verified-bundle stamps (formats/common/stamp.c): a record, per user, that every layer of
 * a bundle file as it is now (st: its stat) has been hashed, so that m64run need not hash
 * them again. m64_stamp_matches: 1 when a stamp records this very file, unchanged.
 * m64_stamp_write: records it (best effort: -1 when the cache directory cannot be
 * written); where (may be NULL) receives the stamp's path. */
struct stat;
int m64_stamp_matches(const struct stat *st);
int m64_stamp_write(const struct stat *st, char *where, size_t where_cap);

/* ---------------------------------------------------------------- 6. SHA-256 */
typedef struct m64_sha256 { uint32_t h[8]; uint64_t len; uint8_t buf[64]; uint32_t n; } m64_sha256;
void m64_sha256_init(m64_sha256 *s);
void m64_sha256_update(m64_sha256 *s, const void *data, size_t len);
void m64_sha256_final(m64_sha256 *s, uint8_t out[32]);
void m64_sha256_hex(const uint8_t digest[32], char out[65]);

#ifdef __cplusplus
}
#endif
#endif /* M64_FORMATS_H */
