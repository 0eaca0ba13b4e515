/*
 * synth.h — synthetic LLaMA-architecture GGUF files of any shape, deterministic from a
 * seed. Tensor names, shapes and metadata keys follow llama.cpp's conventions; the
 * tokenizer is a small synthetic SentencePiece ("llama") vocabulary.
 *
 * Every tensor's F32 values come from its own RNG stream (seed, tensor index), so any
 * one tensor can be regenerated without the others: m64_synth_tensor_values gives the
 * originals before quantization, which is what tests compare dequantized weights with.
 */
#ifndef M64_SUPPORT_SYNTH_H
#define M64_SUPPORT_SYNTH_H

#include <stdint.h>

#include "m64_formats.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A per-tensor type override meaning "use type_default". */
#define M64_SYNTH_SAME 0xffffffffu

typedef struct m64_synth_spec {
  uint32_t n_vocab, dim, n_layers, n_heads, n_kv_heads, ffn, n_ctx;
  float rope_base, norm_eps;
  uint32_t seed;
  int tied_output;        /* no output.weight: logits use token_embd */
  uint32_t type_default;  /* ggml type of the 2D matrices */
  uint32_t type_embd, type_output, type_ffn_down, type_attn_v; /* or M64_SYNTH_SAME */
  const char *name;       /* general.name; NULL = "m64-synth" */
} m64_synth_spec;

/* Tiny: vocab 512, dim 64, 2 layers, 4 heads, 2 kv heads, ffn 160, ctx 256, F32, seed 1. */
void m64_synth_default(m64_synth_spec *s);
/* Presets "tiny", "3b", "7b", "13b" (LLaMA shapes, vocab 32000); other fields as default.
 * Returns M64_ENOTFOUND for an unknown name. */
int m64_synth_preset(m64_synth_spec *s, const char *shape, m64_err *e);
/* Checks the spec (divisibility, block sizes, supported types, vocab >= 259). */
int m64_synth_validate(const m64_synth_spec *s, m64_err *e);

/* One tensor of the model, in file order. */
typedef struct m64_synth_tensor {
  char name[64];
  uint32_t type;      /* resolved ggml type */
  uint32_t n_dims;    /* 1 or 2 */
  uint64_t ne[2];     /* ne[0] = row length = input size */
  uint64_t nbytes;
} m64_synth_tensor;

uint32_t m64_synth_n_tensors(const m64_synth_spec *s);
/* Fills *out for tensor i (0 <= i < n_tensors). Spec must be valid. */
int m64_synth_tensor_info(const m64_synth_spec *s, uint32_t i, m64_synth_tensor *out,
                          m64_err *e);
/* The tensor's F32 values before quantization (ne[0] * ne[1] floats). */
int m64_synth_tensor_values(const m64_synth_spec *s, uint32_t i, float *out, m64_err *e);
/* Sum of all tensor bytes (the data section without padding). */
uint64_t m64_synth_data_bytes(const m64_synth_spec *s);

/* The synthetic vocabulary: token i's text (UTF-8, NUL-terminated), score and type
 * (1 normal, 2 unknown, 3 control, 6 byte). Caller frees with m64_synth_vocab_free. */
typedef struct m64_synth_vocab {
  uint32_t n;
  char **tokens;
  float *scores;
  int32_t *types;
} m64_synth_vocab;
int m64_synth_vocab_build(uint32_t n_vocab, m64_synth_vocab *v, m64_err *e);
void m64_synth_vocab_free(m64_synth_vocab *v);

/* Writes the GGUF with the formats library's writer (atomically: temp file then rename).
 * Tensor bytes are generated while the file is written, a chunk at a time, so memory use
 * stays at a few MiB whatever the model's size. */
int m64_synth_write(const m64_synth_spec *s, const char *path, m64_err *e);

#ifdef __cplusplus
}
#endif
#endif /* M64_SUPPORT_SYNTH_H */
