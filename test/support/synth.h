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

/* Type mixes after llama.cpp's file types (llama-quant.cpp, LLaMA architecture, no
 * experts; n = layers, i = layer, use_more_bits(i) = i < n/8 || i >= 7n/8 ||
 * (i - n/8) % 3 == 2, gqa = heads / kv heads). Norms stay F32 in every mix.
 *   Q4_K_M  Q4_K; output Q6_K; attn_v and ffn_down Q6_K where use_more_bits(i).
 *   Q5_K_M  as Q4_K_M with Q5_K in place of Q4_K.
 *   Q3_K_M  Q3_K; output Q6_K; attn_v Q5_K for i < 2 else Q4_K; attn_output Q4_K;
 *           ffn_down Q5_K for i < n/16 else Q4_K.
 *   Q2_K    Q2_K; output Q6_K; attn_v Q4_K if gqa >= 4 else Q3_K; attn_output Q3_K;
 *           ffn_down Q3_K.
 * token_embd takes the mix's base type, or output's Q6_K when the output is tied to it
 * (as llama.cpp does). Unlike llama.cpp there is no fallback for rows that are not whole
 * 256-element blocks: m64_synth_validate rejects them. */
typedef enum m64_synth_mix {
  M64_SYNTH_MIX_NONE = 0, /* type_default everywhere */
  M64_SYNTH_MIX_Q2_K,
  M64_SYNTH_MIX_Q3_K_M,
  M64_SYNTH_MIX_Q4_K_M,
  M64_SYNTH_MIX_Q5_K_M,
  M64_SYNTH_MIX_COUNT
} m64_synth_mix;

/* Architectures: llama, qwen2 (llama + q/k/v biases + neox RoPE; keys "qwen2.*"),
 * qwen3 (llama + neox RoPE + per-head q/k RMSNorm weights attn_q_norm/attn_k_norm, and
 * attention.key_length/value_length: head_dim, which may differ from dim / heads), or
 * phi3 (llama + neox RoPE, with q/k/v fused in attn_qkv.weight and gate/up fused in
 * ffn_up.weight, gate rows first; attention.sliding_window = context - 1),
 * gemma3 (qwen3's tensors + post_attention_norm/post_ffw_norm per block, and
 * attention.sliding_window, with attention.sliding_window_pattern where swa_period is set),
 * gemma2 (gemma3 without the q/k norms and the pattern key, plus attn_logit_softcapping
 * and final_logit_softcapping), or qwen3moe (qwen3's attention with a Mixture-of-Experts
 * FFN in every block).
 *
 * Mixture of Experts (qwen3moe always, llama when n_expert > 0: Mixtral-style), as
 * llama.cpp's GGUFs have it: instead of ffn_gate/ffn_up/ffn_down each block has the router
 * ffn_gate_inp.weight (F32 in every mix and override, as llama.cpp never quantizes it),
 * ne [dim, E], and the 3-D ffn_gate_exps, ffn_up_exps [dim, F, E] and ffn_down_exps
 * [F, dim, E] (expert e = rows e*ne[1] .. (e+1)*ne[1]-1 of the [ne[0], ne[1]*E] view),
 * typed by the roles of ffn_gate, ffn_up and ffn_down (so type_ffn_down and the mixes'
 * ffn_down rule apply to ffn_down_exps; llama.cpp's extra rules for 8-expert models are
 * not modelled). Keys <arch>.expert_count = E and <arch>.expert_used_count = K; qwen3moe
 * also writes expert_feed_forward_length = F (its feed_forward_length, ffn, is unused),
 * while llama.cpp reads a llama model's expert size from feed_forward_length, so there F
 * must equal ffn. */
enum { M64_SYNTH_ARCH_LLAMA = 0, M64_SYNTH_ARCH_QWEN2 = 1, M64_SYNTH_ARCH_QWEN3 = 2, M64_SYNTH_ARCH_PHI3 = 3,
       M64_SYNTH_ARCH_GEMMA3 = 4, M64_SYNTH_ARCH_GEMMA2 = 5, M64_SYNTH_ARCH_QWEN3MOE = 6 };
/* "llama", "qwen2", "qwen3", "phi3", "gemma3", "gemma2", "qwen3moe"; NULL if unknown */
const char *m64_synth_arch_name(uint32_t arch);

typedef struct m64_synth_spec {
  uint32_t n_vocab, dim, n_layers, n_heads, n_kv_heads, ffn, n_ctx;
  float rope_base, norm_eps;
  uint32_t seed;
  int tied_output;        /* no output.weight: logits use token_embd */
  uint32_t type_default;  /* ggml type of the 2D matrices (ignored when mix is set) */
  /* Per-tensor types, or M64_SYNTH_SAME; they win over the mix when set. */
  uint32_t type_embd, type_output, type_ffn_down, type_attn_v;
  const char *name;       /* general.name; NULL = "m64-synth" */
  uint32_t mix;           /* m64_synth_mix; M64_SYNTH_MIX_NONE by default */
  uint32_t arch;          /* M64_SYNTH_ARCH_*; llama by default */
  int rope_freqs;         /* write rope_freqs.weight (Llama 3.1-style frequency divisors) */
  uint32_t vocab_kind;    /* M64_SYNTH_VOCAB_*; SentencePiece by default */
  uint32_t head_dim;      /* qwen3, gemma3: the head size; 0 = dim / heads */
  int qkv_apart;          /* phi3 only: attn_q/k/v as separate tensors, not one attn_qkv */
  uint32_t sliding_window; /* gemma3: attention.sliding_window (0: 4096) */
  uint32_t swa_period;    /* gemma3: attention.sliding_window_pattern; 0 = not written */
  float attn_softcap, final_softcap; /* gemma2: the soft-capping keys (0: 50 and 30) */
  float rope_scaling;     /* gemma2/3: rope.scaling.type "linear" with this factor; 0 = none */
  /* Experts (llama, qwen3moe; see above): E, K and F. 0 = the default: E 8 for qwen3moe
   * (none for llama), K 2 (E if smaller), F = ffn. */
  uint32_t n_expert, n_expert_used, expert_ffn;
} m64_synth_spec;

/* The expert counts and size a spec stands for, defaults applied; all 0 without experts. */
void m64_synth_experts(const m64_synth_spec *s, uint32_t *n_expert, uint32_t *n_used, uint32_t *ffn);

/* Vocabularies: SentencePiece ("llama"), or byte-level BPE ("gpt2", pre-tokenizer
 * llama-bpe): the 256 GPT-2 byte characters, three control tokens (<|begin_of_text|> BOS,
 * <|end_of_text|> EOS, <|eot_id|>), then merges that spell common words, with and without
 * a leading space, and fill the rest with letter pairs. */
enum { M64_SYNTH_VOCAB_SPM = 0, M64_SYNTH_VOCAB_BPE = 1, M64_SYNTH_VOCAB_SPM_NO_SPACE = 2 };

/* Tiny: vocab 512, dim 64, 2 layers, 4 heads, 2 kv heads, ffn 160, ctx 256, F32, seed 1. */
void m64_synth_default(m64_synth_spec *s);
/* Presets "tiny", "small" (as tiny but dim 256 and ffn 512, so every row is whole
 * 256-element blocks and every type, K-quants included, can be generated), "3b", "7b",
 * "13b" (LLaMA shapes, vocab 32000), "small-moe" (small as qwen3moe: 8 experts of 256,
 * 2 used) and "30b-a3b" (Qwen3-30B-A3B: qwen3moe, dim 2048, 48 blocks, 32 heads of 128,
 * 4 kv heads, 128 experts of 768, 8 used, ffn 6144, vocab 151936, context 4096, RoPE base
 * 1e6, eps 1e-6; as --mix q4_k_m 18.55 GB, written in ~3 CPU minutes); other fields as
 * default.
 * Returns M64_ENOTFOUND for an unknown name. */
int m64_synth_preset(m64_synth_spec *s, const char *shape, m64_err *e);
/* Mix names "q2_k", "q3_k_m", "q4_k_m", "q5_k_m" (any case) and "none".
 * M64_ENOTFOUND for an unknown name. */
int m64_synth_mix_parse(const char *name, uint32_t *mix, m64_err *e);
const char *m64_synth_mix_name(uint32_t mix); /* "q4_k_m", ...; NULL if unknown */
/* Checks the spec (divisibility, block sizes, supported types, vocab >= 259). */
int m64_synth_validate(const m64_synth_spec *s, m64_err *e);

/* One tensor of the model, in file order. */
typedef struct m64_synth_tensor {
  char name[64];
  uint32_t type;      /* resolved ggml type */
  uint32_t n_dims;    /* 1, 2, or 3 (experts) */
  uint64_t ne[3];     /* ne[0] = row length = input size; ne[1] * ne[2] rows; unused dims 1 */
  uint64_t nbytes;
} m64_synth_tensor;

uint32_t m64_synth_n_tensors(const m64_synth_spec *s);
/* Fills *out for tensor i (0 <= i < n_tensors). Spec must be valid. */
int m64_synth_tensor_info(const m64_synth_spec *s, uint32_t i, m64_synth_tensor *out,
                          m64_err *e);
/* The tensor's F32 values before quantization (ne[0] * ne[1] * ne[2] floats). */
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
  char **merges; /* BPE only: "left right" in rank order */
  uint32_t n_merges;
} m64_synth_vocab;
int m64_synth_vocab_build(uint32_t n_vocab, m64_synth_vocab *v, m64_err *e);
/* The SentencePiece vocabulary without the bare "▁" token (M64_SYNTH_VOCAB_SPM_NO_SPACE):
 * ids 0..258 as above, then "a".. "Z", "▁a".. "▁Z", ... */
int m64_synth_spm_nospace_vocab_build(uint32_t n_vocab, m64_synth_vocab *v, m64_err *e);
/* The BPE vocabulary (M64_SYNTH_VOCAB_BPE), n_vocab >= 259 tokens. */
int m64_synth_bpe_vocab_build(uint32_t n_vocab, m64_synth_vocab *v, m64_err *e);
void m64_synth_vocab_free(m64_synth_vocab *v);

/* Writes the GGUF with the formats library's writer (atomically: temp file then rename).
 * Tensor bytes are generated while the file is written, a chunk at a time, so memory use
 * stays at a few MiB whatever the model's size. */
int m64_synth_write(const m64_synth_spec *s, const char *path, m64_err *e);

#ifdef __cplusplus
}
#endif
#endif /* M64_SUPPORT_SYNTH_H */
