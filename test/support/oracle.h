/*
 * oracle.h — a plain reference forward pass for LLaMA- and Qwen2-architecture GGUF
 * models, written to be read top to bottom and trusted: every weight is dequantized to
 * F32 at load, the math follows llama.cpp (RMSNorm, RoPE — "normal" interleaved pairs for
 * llama, "neox" half-split pairs and q/k/v biases for qwen2, rope_freqs divisors where
 * present —, grouped-query attention, SwiGLU feed-forward), dot products in double.
 * qwen3 adds per-head q/k norms; phi3 computes q, k, v as one product of attn_qkv and
 * gate, up as one product of ffn_up (gate first), each then split, and attends within
 * its sliding window.
 * Mixture of Experts (qwen3moe: qwen3's attention; llama with expert_count: Mixtral) as
 * llama.cpp's build_moe_ffn: router logits (ffn_gate_inp), softmax, the expert_used_count
 * most probable experts (ties to the lower index), their probabilities normalized to sum
 * 1, and the weighted sum, in selection order, of each one's SwiGLU FFN (expert e = the
 * e-th block of rows of ffn_{gate,up,down}_exps); the expert size is qwen3moe's
 * expert_feed_forward_length or llama's feed_forward_length.
 * It is the yardstick the compiled runtime is compared against; speed is no goal.
 */
#ifndef M64_SUPPORT_ORACLE_H
#define M64_SUPPORT_ORACLE_H

#include <stdint.h>

#include "m64_formats.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct m64_oracle m64_oracle;

/* Loads the model. n_ctx = positions the KV cache holds; 0 = the file's context length.
 * Weight types: every type quant.h supports (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0,
 * Q5_1, IQ4_NL, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS), dequantized through quant.c;
 * others fail naming the tensor and its type. */
int m64_oracle_open(const char *gguf_path, uint32_t n_ctx, m64_oracle **out, m64_err *e);
void m64_oracle_close(m64_oracle *o); /* accepts NULL */

uint32_t m64_oracle_n_vocab(const m64_oracle *o);
uint32_t m64_oracle_n_ctx(const m64_oracle *o);

/* Runs token at position pos (0 <= pos < n_ctx; positions 0..pos-1 must have been run
 * before, in order, since the last time pos 0 was run) and returns n_vocab logits, valid
 * until the next call. NULL if token or pos is out of range. */
const float *m64_oracle_forward(m64_oracle *o, int token, int pos);

#ifdef __cplusplus
}
#endif
#endif /* M64_SUPPORT_ORACLE_H */
