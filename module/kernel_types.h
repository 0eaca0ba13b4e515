/*
 * kernel_types.h — the quant types the module has kernels for, as one X-macro table.
 * Included by the compiler (to accept and dispatch types) and by the module (to
 * instantiate kernels); it must stay free of intrinsics.
 *
 *   X(ggml type id, kernel suffix, name, activation scheme)
 *
 * For each row the module defines, in kernels*.h:
 *   matvec_<suffix>(float *out, const uint8_t *w, const float *x, uint8_t *scratch,
 *                   uint32_t rows, uint32_t cols)
 *   dequant_row_<suffix>(float *out, const uint8_t *row, uint32_t n)
 * scratch holds at least M64_SCRATCH_BYTES(cols) bytes (the activation converted to
 * what the weights' dot product consumes, as llama.cpp's vec_dot_type).
 * For several inputs (prefill) kernels_batch.h adds
 *   act_<suffix>(uint8_t *xq, const float *x, uint32_t cols)      one input's activation
 *   matmat_<suffix>(float *out, uint32_t out_stride, const uint8_t *w, const uint8_t *xq,
 *                   uint32_t rows, uint32_t cols, uint32_t n)      n inputs at once
 * where xq holds n activations M64_ACT_STRIDE(cols) bytes apart: at most
 * M64_BATCH_SCRATCH_BYTES(cols) for n <= M64_MAX_BATCH.
 */
#ifndef M64_KERNEL_TYPES_H
#define M64_KERNEL_TYPES_H

#define M64_SCRATCH_BYTES(cols) ((cols) * 4u + 1024u)
#define M64_MAX_BATCH 32u /* tokens a forward pass takes at once */
/* Inputs lie M64_ACT_STRIDE(cols) bytes apart: room for 4 bytes a column (every act_ fits),
 * in 64-byte lines; from 16 lines on, rounded up to 9 lines past a multiple of 16. The
 * tile kernels read block b of every input in turn; a stride of a multiple of 4 KiB (it
 * was 16 KiB at 4096 columns) put all those blocks in the same L1 sets, more of them than
 * a set holds. An odd number of lines other than 64k +- 1 spreads them over the sets;
 * below 16 lines, 32 inputs lie back to back in fewer lines than L1 has (512). */
#define M64_ACT_LINES0(cols) (((cols) * 4u + 63u) / 64u)
#define M64_ACT_LINES(l0) ((l0) < 16u ? (l0) : (l0) + (25u - (l0) % 16u) % 16u)
#define M64_ACT_STRIDE(cols) (M64_ACT_LINES(M64_ACT_LINES0(cols)) * 64u)
#define M64_BATCH_SCRATCH_BYTES(cols) (M64_MAX_BATCH * M64_ACT_STRIDE(cols))

#define M64_KERNEL_TYPES(X)                \
  X(0, f32, "F32", "f32")                  \
  X(1, f16, "F16", "f16")                  \
  X(8, q8_0, "Q8_0", "q8_0")               \
  X(2, q4_0, "Q4_0", "q8_0")               \
  X(3, q4_1, "Q4_1", "q8_1")               \
  X(6, q5_0, "Q5_0", "q8_0")               \
  X(7, q5_1, "Q5_1", "q8_1")               \
  X(20, iq4_nl, "IQ4_NL", "q8_0")          \
  X(30, bf16, "BF16", "bf16")              \
  X(10, q2_K, "Q2_K", "q8_K")              \
  X(11, q3_K, "Q3_K", "q8_K")              \
  X(12, q4_K, "Q4_K", "q8_K")              \
  X(13, q5_K, "Q5_K", "q8_K")              \
  X(14, q6_K, "Q6_K", "q8_K")              \
  X(23, iq4_xs, "IQ4_XS", "q8_K")

#endif
