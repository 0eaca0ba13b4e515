/* bundle_internal.h — .m64 v1 byte layout constants (docs/FORMAT.md) and helpers shared by
 * the bundle writer, reader and layout planner. */
#ifndef M64_BUNDLE_INTERNAL_H
#define M64_BUNDLE_INTERNAL_H

#include "../common/internal.h"

/* File header (offset 0). */
#define BH_SIZE 96u
#define BH_MAGIC 0          /* 8 bytes */
#define BH_VERSION 8        /* u32 */
#define BH_FLAGS 12         /* u32, 0 in v1 */
#define BH_N_SECTIONS 16    /* u32 */
#define BH_HEADER_SIZE 20   /* u32 = BH_SIZE */
#define BH_RECORD_SIZE 24   /* u32 = SR_SIZE */
#define BH_RESERVED0 28     /* u32, 0 */
#define BH_TABLE_OFFSET 32  /* u64 = BH_SIZE */
#define BH_FILE_SIZE 40     /* u64 */
#define BH_RESERVED1 48     /* 16 bytes, 0 */
#define BH_SHA256 64        /* 32 bytes: SHA-256 of bytes [0, 64) then the section table */
#define BH_F_COMPRESSED 1u  /* flags bit 0: compressed bundle (sections and layers, zstd) */

/* Section record, SR_SIZE bytes each, at BH_TABLE_OFFSET. */
#define SR_SIZE 128u
#define SR_KIND 0           /* u32 */
#define SR_NAME 4           /* 48 bytes, NUL-terminated, zero-padded */
#define SR_RESERVED0 52     /* u32, 0 */
#define SR_OFFSET 56        /* u64 */
#define SR_SIZE_FIELD 64    /* u64 */
#define SR_SHA256 72        /* 32 bytes */
#define SR_RESERVED1 104    /* 24 bytes, 0 (uncompressed bundles) */
/* Compressed bundles reuse two reserved fields of the record. */
#define SR_CODEC 52         /* u32: 0 stored as is, 1 zstd (one frame) */
#define SR_RAW_SIZE 104     /* u64: content size (= size when codec is 0) */
#define CODEC_NONE 0u
#define CODEC_ZSTD 1u
#define FILTER_NONE 0u
#define FILTER_SPLIT 1u
/* Bounds on what a compressed header field can make a reader allocate or decode. */
#define Z_MAX_RATIO 256u               /* raw size <= 256 x stored size + Z_SLACK */
#define Z_SLACK (64u << 10)
#define Z_MAX_SECTION_RAW (1ull << 30) /* a decompressed small section: 1 GiB */
#define Z_CHUNK_MIN (4u << 10)
#define Z_CHUNK_MAX (64u << 20)
#define Z_CHUNK_DEFAULT (1u << 20)
#define Z_WINDOW_LOG_MAX 27            /* decoder window cap (128 MiB) */

/* The writer reserves room for a full table so small sections can be written before the
 * section count is known; the first section starts here. */
#define BUNDLE_FIRST_SECTION (BH_SIZE + M64_MAX_SECTIONS * SR_SIZE)
#define SECTION_ALIGN 64u   /* non-segment sections start 64-byte aligned */

/* LAYER_INDEX section: header, then layer records, then tensor records. */
#define LI_HEADER_SIZE 32u
#define LI_N_LAYERS 0       /* u32 */
#define LI_N_TENSORS 4      /* u32 */
#define LI_N_SEGMENTS 8     /* u32 */
#define LI_LAYER_SIZE_F 12  /* u32 = LR_SIZE */
#define LI_TENSOR_SIZE_F 16 /* u32 = TR_SIZE */
/* 20..32 reserved, 0 */

#define LR_SIZE 96u
#define LR_NAME 0           /* 32 bytes */
#define LR_SEGMENT 32       /* u32 */
#define LR_FIRST_TENSOR 36  /* u32 */
#define LR_N_TENSORS 40     /* u32 */
#define LR_RESERVED 44      /* u32, 0 */
#define LR_OFFSET 48        /* u64 */
#define LR_SIZE_FIELD 56    /* u64 */
#define LR_SHA256 64        /* 32 bytes */
/* Compressed bundles: layer records are LR_SIZE_Z bytes, the v1 record followed by: */
#define LR_SIZE_Z 160u
#define LR_STORED_OFFSET 96 /* u64, inside the segment section */
#define LR_STORED_SIZE 104  /* u64 */
#define LR_STORED_SHA256 112 /* 32 bytes */
#define LR_CODEC 144        /* u32 = CODEC_ZSTD */
#define LR_FILTER 148       /* u32: FILTER_NONE or FILTER_SPLIT */
#define LR_CHUNK_SIZE 152   /* u32 */
/* 156..160 reserved, 0 */

#define TR_SIZE 128u
#define TR_NAME 0           /* 64 bytes */
#define TR_TYPE 64          /* u32 */
#define TR_N_DIMS 68        /* u32 */
#define TR_NE 72            /* 4 x u64 */
#define TR_OFFSET 104       /* u64 */
#define TR_NBYTES 112       /* u64 */
#define TR_LAYOUT 120       /* u32 */
/* 120..128 reserved, 0 */

/* Checks a layout's internal consistency: caps, names, tensor ownership, alignment, tensors
 * inside their layer and not overlapping, layers inside their segment and not overlapping.
 * segment_sizes has n_segments entries. */
int m64__check_layout(const m64_layer_entry *layers, uint32_t n_layers,
                      const m64_tensor_entry *tensors, uint32_t n_tensors, uint32_t n_segments,
                      const uint64_t *segment_sizes, m64_err *e);

uint64_t m64__layer_index_size(uint32_t n_layers, uint32_t n_tensors, int compressed);
void m64__encode_layer_index(uint8_t *out, const m64_layer_entry *layers, uint32_t n_layers,
                             const m64_tensor_entry *tensors, uint32_t n_tensors,
                             uint32_t n_segments, int compressed);

/* ---- compress.c: the zstd codec of compressed bundles */
/* One zstd frame of src (level, long-distance window log or 0); *out is malloc'd. */
int m64__z_compress(const void *src, size_t n, int level, int long_window, uint8_t **out,
                    size_t *out_n, m64_err *e);
/* Decodes a one-frame section: the frame must declare exactly raw_size bytes and span
 * exactly n bytes. *out is malloc'd (raw_size bytes). */
int m64__z_decompress_section(const uint8_t *src, size_t n, uint64_t raw_size, uint8_t **out,
                              m64_err *e);
/* Compresses a complete raw layer (l->size bytes at raw; tensor records give the chunks)
 * into *out (malloc'd), filling l's codec, filter, chunk_size and stored_size. */
int m64__z_compress_layer(m64_layer_entry *l, const m64_tensor_entry *tensors, const uint8_t *raw,
                          const m64_compress_options *o, uint8_t **out, size_t *out_n, m64_err *e);
/* Reads the frame headers of a compressed layer (nothing is decompressed): each frame must
 * declare exactly its stream's size and fit, and the frames must fill stored_size. */
int m64__z_check_frames(const m64_layer_entry *l, const m64_tensor_entry *tensors,
                        const uint8_t *stored, m64_err *e);
/* Streams a compressed layer's raw bytes (gaps as zeros) into a SHA-256. */
int m64__z_hash_layer(const m64_layer_entry *l, const m64_tensor_entry *tensors,
                      const uint8_t *stored, m64_layer_decoder *d, uint8_t out[32], m64_err *e);

#endif
