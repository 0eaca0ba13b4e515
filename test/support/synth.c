/* synth.c — the synthetic LLaMA GGUF generator; see synth.h. */
#include "synth.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"

/* ---------------------------------------------------------------- specs */

void m64_synth_default(m64_synth_spec *s) {
  memset(s, 0, sizeof *s);
  s->n_vocab = 512;
  s->dim = 64;
  s->n_layers = 2;
  s->n_heads = 4;
  s->n_kv_heads = 2;
  s->ffn = 160;
  s->n_ctx = 256;
  s->rope_base = 10000.0f;
  s->norm_eps = 1e-5f;
  s->seed = 1;
  s->tied_output = 0;
  s->type_default = M64_GGML_F32;
  s->type_embd = s->type_output = s->type_ffn_down = s->type_attn_v = M64_SYNTH_SAME;
  s->name = NULL;
  s->mix = M64_SYNTH_MIX_NONE;
}

int m64_synth_preset(m64_synth_spec *s, const char *shape, m64_err *e) {
  m64_synth_default(s);
  if (!strcmp(shape, "tiny")) return M64_OK;
  if (!strcmp(shape, "small")) { /* tiny with every row a whole number of 256-blocks */
    s->dim = 256, s->ffn = 512;
    return M64_OK;
  }
  if (!strcmp(shape, "small-moe")) { /* small with experts, for tests of every type */
    s->dim = 256, s->ffn = 512;
    s->arch = M64_SYNTH_ARCH_QWEN3MOE;
    s->n_expert = 8, s->n_expert_used = 2, s->expert_ffn = 256;
    return M64_OK;
  }
  s->n_vocab = 32000;
  s->n_ctx = 4096;
  if (!strcmp(shape, "3b")) { /* open_llama_3b */
    s->dim = 3200, s->n_layers = 26, s->n_heads = s->n_kv_heads = 32, s->ffn = 8640;
    s->n_ctx = 2048;
  } else if (!strcmp(shape, "7b")) {
    s->dim = 4096, s->n_layers = 32, s->n_heads = s->n_kv_heads = 32, s->ffn = 11008;
  } else if (!strcmp(shape, "13b")) {
    s->dim = 5120, s->n_layers = 40, s->n_heads = s->n_kv_heads = 40, s->ffn = 13824;
  } else if (!strcmp(shape, "30b-a3b")) { /* Qwen3-30B-A3B, the MoE model we benchmark */
    s->arch = M64_SYNTH_ARCH_QWEN3MOE;
    s->n_vocab = 151936, s->dim = 2048, s->n_layers = 48, s->n_heads = 32, s->n_kv_heads = 4;
    s->head_dim = 128, s->ffn = 6144;
    s->n_expert = 128, s->n_expert_used = 8, s->expert_ffn = 768;
    s->rope_base = 1000000.0f, s->norm_eps = 1e-6f;
  } else {
    m64_synth_default(s);
    return m64_fail(e, M64_ENOTFOUND,
                    "unknown shape '%s' (tiny, small, small-moe, 3b, 7b, 13b, 30b-a3b)", shape);
  }
  return M64_OK;
}

static const char *const mix_names[M64_SYNTH_MIX_COUNT] = {"none", "q2_k", "q3_k_m", "q4_k_m",
                                                           "q5_k_m"};

const char *m64_synth_mix_name(uint32_t mix) {
  return mix < M64_SYNTH_MIX_COUNT ? mix_names[mix] : NULL;
}

int m64_synth_mix_parse(const char *name, uint32_t *mix, m64_err *e) {
  for (uint32_t m = 0; m < M64_SYNTH_MIX_COUNT; m++) {
    size_t k = 0;
    while (name[k] && tolower((unsigned char)name[k]) == mix_names[m][k]) k++;
    if (!name[k] && !mix_names[m][k]) {
      *mix = m;
      return M64_OK;
    }
  }
  return m64_fail(e, M64_ENOTFOUND, "unknown mix '%s' (q2_k, q3_k_m, q4_k_m, q5_k_m, none)",
                  name);
}

#define MAX_SYNTH_VOCAB (1u << 20)

/* Tensor kinds, in file order: globals first, then 9 per layer. */
enum { T_EMBD, T_OUT_NORM, T_OUTPUT, T_ROPE_FREQS };
/* Per layer: 9 tensors, then qwen2's three biases, or qwen3's two q/k norms (and gemma3's
 * two post-norms after them); phi3 has 6: its q, k, v rows in one attn_qkv and its gate
 * and up rows in one ffn_up (gate first). */
enum { L_ATTN_NORM, L_Q, L_K, L_V, L_O, L_FFN_NORM, L_GATE, L_UP, L_DOWN, L_BQ, L_BK, L_BV, L_QN, L_KN,
       L_PAN, L_PFN, L_QKV, L_GATE_UP, L_GATE_INP, L_GATE_EXPS, L_UP_EXPS, L_DOWN_EXPS };
static const char *const layer_tensor_names[] = {
    "attn_norm.weight", "attn_q.weight",   "attn_k.weight", "attn_v.weight",
    "attn_output.weight", "ffn_norm.weight", "ffn_gate.weight", "ffn_up.weight",
    "ffn_down.weight",  "attn_q.bias",     "attn_k.bias",   "attn_v.bias",
    "attn_q_norm.weight", "attn_k_norm.weight", "post_attention_norm.weight", "post_ffw_norm.weight",
    "attn_qkv.weight", "ffn_up.weight", "ffn_gate_inp.weight", "ffn_gate_exps.weight",
    "ffn_up_exps.weight", "ffn_down_exps.weight"};
static const uint32_t phi3_layer[] = {L_ATTN_NORM, L_QKV, L_O, L_FFN_NORM, L_GATE_UP, L_DOWN};
static const uint32_t phi3_apart_layer[] = {L_ATTN_NORM, L_Q, L_K, L_V, L_O, L_FFN_NORM, L_GATE_UP, L_DOWN};
/* Experts: the router and the three expert tensors where the dense FFN's three were;
 * qwen3moe then has qwen3's q/k norms. */
static const uint32_t moe_layer[] = {L_ATTN_NORM, L_Q,        L_K,         L_V,         L_O,  L_FFN_NORM,
                                     L_GATE_INP,  L_GATE_EXPS, L_UP_EXPS, L_DOWN_EXPS, L_QN, L_KN};

void m64_synth_experts(const m64_synth_spec *s, uint32_t *n_expert, uint32_t *n_used, uint32_t *ffn) {
  uint32_t e = s->n_expert ? s->n_expert : s->arch == M64_SYNTH_ARCH_QWEN3MOE ? 8 : 0;
  *n_expert = e;
  *n_used = !e ? 0 : s->n_expert_used ? s->n_expert_used : e < 2 ? e : 2;
  *ffn = !e ? 0 : s->expert_ffn ? s->expert_ffn : s->ffn;
}
static int has_experts(const m64_synth_spec *s) {
  return s->arch == M64_SYNTH_ARCH_QWEN3MOE || s->n_expert;
}

static uint32_t n_globals(const m64_synth_spec *s) {
  return 2 + !s->tied_output + !!s->rope_freqs;
}
static uint32_t per_layer(const m64_synth_spec *s) {
  return s->arch == M64_SYNTH_ARCH_QWEN3MOE ? 12
         : has_experts(s)                   ? 10 /* llama */
         : s->arch == M64_SYNTH_ARCH_QWEN2  ? 12
         : s->arch == M64_SYNTH_ARCH_QWEN3  ? 11
         : s->arch == M64_SYNTH_ARCH_PHI3   ? (s->qkv_apart ? 8 : 6)
         : s->arch == M64_SYNTH_ARCH_GEMMA3 ? 13
         : s->arch == M64_SYNTH_ARCH_GEMMA2 ? 11
                                            : 9;
}
const char *m64_synth_arch_name(uint32_t arch) {
  return arch == M64_SYNTH_ARCH_QWEN2    ? "qwen2"
         : arch == M64_SYNTH_ARCH_QWEN3  ? "qwen3"
         : arch == M64_SYNTH_ARCH_PHI3   ? "phi3"
         : arch == M64_SYNTH_ARCH_GEMMA3 ? "gemma3"
         : arch == M64_SYNTH_ARCH_GEMMA2 ? "gemma2"
         : arch == M64_SYNTH_ARCH_QWEN3MOE ? "qwen3moe"
         : arch == M64_SYNTH_ARCH_LLAMA ? "llama"
                                        : NULL;
}
/* The head size: head_dim when set (qwen3's explicit key_length), else dim / heads. */
static uint64_t head_size(const m64_synth_spec *s) {
  return s->head_dim ? s->head_dim : s->n_heads ? s->dim / s->n_heads : 0;
}

/* The quantizable matrices, by role. */
enum { R_EMBD, R_OUTPUT, R_Q, R_K, R_V, R_O, R_GATE, R_UP, R_DOWN };

/* llama.cpp's "use more bits" layers of the _M mixes. */
static int use_more_bits(uint32_t i, uint32_t n) {
  return i < n / 8 || i >= 7 * n / 8 || (int)(i - n / 8) % 3 == 2;
}

/* The type a mix gives a matrix of a role in layer i (see synth.h). */
static uint32_t mix_type(const m64_synth_spec *s, int role, uint32_t i) {
  uint32_t n = s->n_layers, mix = s->mix;
  uint32_t base = mix == M64_SYNTH_MIX_Q2_K     ? M64_GGML_Q2_K
                  : mix == M64_SYNTH_MIX_Q3_K_M ? M64_GGML_Q3_K
                  : mix == M64_SYNTH_MIX_Q4_K_M ? M64_GGML_Q4_K
                                                : M64_GGML_Q5_K;
  int more = use_more_bits(i, n);
  switch (role) {
    case R_OUTPUT: return M64_GGML_Q6_K;
    case R_EMBD: return s->tied_output ? M64_GGML_Q6_K : base;
    case R_V:
      if (mix == M64_SYNTH_MIX_Q2_K)
        return s->n_kv_heads && s->n_heads / s->n_kv_heads >= 4 ? M64_GGML_Q4_K : M64_GGML_Q3_K;
      if (mix == M64_SYNTH_MIX_Q3_K_M) return i < 2 ? M64_GGML_Q5_K : M64_GGML_Q4_K;
      return more ? M64_GGML_Q6_K : base;
    case R_DOWN:
      if (mix == M64_SYNTH_MIX_Q2_K) return M64_GGML_Q3_K;
      if (mix == M64_SYNTH_MIX_Q3_K_M) return i < n / 16 ? M64_GGML_Q5_K : M64_GGML_Q4_K;
      return more ? M64_GGML_Q6_K : base;
    case R_O:
      if (mix == M64_SYNTH_MIX_Q2_K) return M64_GGML_Q3_K;
      if (mix == M64_SYNTH_MIX_Q3_K_M) return M64_GGML_Q4_K;
      return base;
    default: return base;
  }
}

/* Explicit per-tensor types first, then the mix, then type_default. */
static uint32_t weight_type(const m64_synth_spec *s, int role, uint32_t layer) {
  uint32_t override = role == R_EMBD     ? s->type_embd
                      : role == R_OUTPUT ? s->type_output
                      : role == R_V      ? s->type_attn_v
                      : role == R_DOWN   ? s->type_ffn_down
                                         : M64_SYNTH_SAME;
  if (override != M64_SYNTH_SAME) return override;
  if (s->mix != M64_SYNTH_MIX_NONE && s->mix < M64_SYNTH_MIX_COUNT) return mix_type(s, role, layer);
  return s->type_default;
}

/* Describes tensor i without validating the spec; is_norm tells the value distribution
 * (0: weights and biases, 1: norms near 1, 2: rope frequency divisors). */
static void describe(const m64_synth_spec *s, uint32_t i, m64_synth_tensor *t, int *is_norm) {
  uint64_t hd = head_size(s), kv_dim = hd * s->n_kv_heads, q_dim = hd * s->n_heads;
  uint32_t n_expert, n_used, expert_ffn;
  m64_synth_experts(s, &n_expert, &n_used, &expert_ffn);
  memset(t, 0, sizeof *t);
  t->n_dims = 2;
  t->ne[2] = 1;
  *is_norm = 0;
  if (i < n_globals(s)) {
    const uint32_t kind = s->tied_output && i >= T_OUTPUT ? i + 1 : i; /* no T_OUTPUT when tied */
    switch (kind) {
      case T_EMBD:
        snprintf(t->name, sizeof t->name, "token_embd.weight");
        t->type = weight_type(s, R_EMBD, 0);
        t->ne[0] = s->dim, t->ne[1] = s->n_vocab;
        break;
      case T_OUT_NORM:
        snprintf(t->name, sizeof t->name, "output_norm.weight");
        t->type = M64_GGML_F32, t->n_dims = 1, t->ne[0] = s->dim, t->ne[1] = 1;
        *is_norm = 1;
        break;
      case T_OUTPUT:
        snprintf(t->name, sizeof t->name, "output.weight");
        t->type = weight_type(s, R_OUTPUT, 0);
        t->ne[0] = s->dim, t->ne[1] = s->n_vocab;
        break;
      default: /* T_ROPE_FREQS: one divisor per rotated pair */
        snprintf(t->name, sizeof t->name, "rope_freqs.weight");
        t->type = M64_GGML_F32, t->n_dims = 1, t->ne[0] = hd / 2, t->ne[1] = 1;
        *is_norm = 2;
        break;
    }
  } else {
    uint32_t layer = (i - n_globals(s)) / per_layer(s), kind = (i - n_globals(s)) % per_layer(s);
    if ((s->arch == M64_SYNTH_ARCH_QWEN3 || s->arch == M64_SYNTH_ARCH_GEMMA3) && kind >= L_BQ)
      kind += L_QN - L_BQ; /* no biases */
    else if (s->arch == M64_SYNTH_ARCH_GEMMA2 && kind >= L_BQ)
      kind += L_PAN - L_BQ; /* no biases, no q/k norms */
    if (s->arch == M64_SYNTH_ARCH_PHI3) kind = s->qkv_apart ? phi3_apart_layer[kind] : phi3_layer[kind];
    if (has_experts(s)) kind = moe_layer[kind];
    snprintf(t->name, sizeof t->name, "blk.%u.%s", layer, layer_tensor_names[kind]);
    switch (kind) {
      case L_BQ: case L_BK: case L_BV: /* biases: F32 vectors, drawn like weights */
        t->type = M64_GGML_F32, t->n_dims = 1, t->ne[1] = 1;
        t->ne[0] = kind == L_BQ ? q_dim : kv_dim;
        break;
      case L_QN: case L_KN: /* one weight per head dimension */
        t->type = M64_GGML_F32, t->n_dims = 1, t->ne[0] = hd, t->ne[1] = 1;
        *is_norm = 1;
        break;
      case L_ATTN_NORM: case L_FFN_NORM: case L_PAN: case L_PFN:
        t->type = M64_GGML_F32, t->n_dims = 1, t->ne[0] = s->dim, t->ne[1] = 1;
        *is_norm = 1;
        break;
      case L_Q:
        t->type = weight_type(s, R_Q, layer), t->ne[0] = s->dim, t->ne[1] = q_dim;
        break;
      case L_O:
        t->type = weight_type(s, R_O, layer), t->ne[0] = q_dim, t->ne[1] = s->dim;
        break;
      case L_K:
        t->type = weight_type(s, R_K, layer), t->ne[0] = s->dim, t->ne[1] = kv_dim;
        break;
      case L_V:
        t->type = weight_type(s, R_V, layer), t->ne[0] = s->dim, t->ne[1] = kv_dim;
        break;
      case L_QKV: /* q rows, then k rows, then v rows */
        t->type = weight_type(s, R_Q, layer), t->ne[0] = s->dim, t->ne[1] = q_dim + 2 * kv_dim;
        break;
      case L_GATE_UP: /* gate rows, then up rows */
        t->type = weight_type(s, R_UP, layer), t->ne[0] = s->dim, t->ne[1] = 2 * (uint64_t)s->ffn;
        break;
      case L_GATE:
        t->type = weight_type(s, R_GATE, layer), t->ne[0] = s->dim, t->ne[1] = s->ffn;
        break;
      case L_UP:
        t->type = weight_type(s, R_UP, layer), t->ne[0] = s->dim, t->ne[1] = s->ffn;
        break;
      case L_GATE_INP: /* the router: one row of logits per expert */
        t->type = M64_GGML_F32, t->ne[0] = s->dim, t->ne[1] = n_expert;
        break;
      case L_GATE_EXPS: case L_UP_EXPS:
        t->type = weight_type(s, kind == L_GATE_EXPS ? R_GATE : R_UP, layer), t->n_dims = 3;
        t->ne[0] = s->dim, t->ne[1] = expert_ffn, t->ne[2] = n_expert;
        break;
      case L_DOWN_EXPS:
        t->type = weight_type(s, R_DOWN, layer), t->n_dims = 3;
        t->ne[0] = expert_ffn, t->ne[1] = s->dim, t->ne[2] = n_expert;
        break;
      default: /* L_DOWN */
        t->type = weight_type(s, R_DOWN, layer), t->ne[0] = s->ffn, t->ne[1] = s->dim;
        break;
    }
  }
  t->nbytes = m64_ref_row_bytes(t->type, t->ne[0]) * t->ne[1] * t->ne[2];
}

uint32_t m64_synth_n_tensors(const m64_synth_spec *s) {
  return n_globals(s) + s->n_layers * per_layer(s);
}

static const char *type_name(uint32_t type) {
  const char *n = m64_ggml_type_info(type).name;
  return n ? n : "unknown";
}

int m64_synth_validate(const m64_synth_spec *s, m64_err *e) {
  if (s->n_vocab < 259 || s->n_vocab > MAX_SYNTH_VOCAB)
    return m64_fail(e, M64_ELIMIT, "n_vocab %u: need 259 (3 special + 256 byte tokens) .. %u",
                    s->n_vocab, MAX_SYNTH_VOCAB);
  if (!s->dim || !s->n_layers || !s->n_heads || !s->n_kv_heads || !s->ffn || !s->n_ctx)
    return m64_fail(e, M64_EFORMAT, "dim, layers, heads, kv heads, ffn and ctx must be > 0");
  if (s->n_layers > M64_MAX_LAYERS)
    return m64_fail(e, M64_ELIMIT, "%u layers > %u", s->n_layers, M64_MAX_LAYERS);
  if ((!s->head_dim && s->dim % s->n_heads) || head_size(s) % 2)
    return m64_fail(e, M64_EFORMAT, "dim %u must split into %u heads of even size", s->dim,
                    s->n_heads);
  const int gemma = s->arch == M64_SYNTH_ARCH_GEMMA3 || s->arch == M64_SYNTH_ARCH_GEMMA2;
  if (s->head_dim && s->arch != M64_SYNTH_ARCH_QWEN3 && s->arch != M64_SYNTH_ARCH_QWEN3MOE && !gemma)
    return m64_fail(e, M64_EUNSUPPORTED, "an explicit head size is for --arch qwen3, qwen3moe, gemma2 or gemma3");
  if ((s->n_expert || s->n_expert_used || s->expert_ffn) && s->arch != M64_SYNTH_ARCH_LLAMA &&
      s->arch != M64_SYNTH_ARCH_QWEN3MOE)
    return m64_fail(e, M64_EUNSUPPORTED, "experts are for --arch llama or qwen3moe");
  if ((s->n_expert_used || s->expert_ffn) && !has_experts(s))
    return m64_fail(e, M64_EFORMAT, "--experts-used and --expert-ffn need --experts");
  if (has_experts(s)) {
    uint32_t n_expert, n_used, expert_ffn;
    m64_synth_experts(s, &n_expert, &n_used, &expert_ffn);
    if (n_expert > 256) /* llama.cpp's limit (LLAMA_MAX_EXPERTS) */
      return m64_fail(e, M64_ELIMIT, "%u experts > 256", n_expert);
    if (!n_used || n_used > n_expert)
      return m64_fail(e, M64_EFORMAT, "%u experts used of %u: need 1 .. %u", n_used, n_expert, n_expert);
    if (s->arch == M64_SYNTH_ARCH_LLAMA && expert_ffn != s->ffn) /* no key holds it apart */
      return m64_fail(e, M64_EFORMAT, "llama experts are ffn wide (feed_forward_length): "
                      "expert ffn %u != ffn %u", expert_ffn, s->ffn);
  }
  if ((s->sliding_window && !gemma) || (s->swa_period && s->arch != M64_SYNTH_ARCH_GEMMA3))
    return m64_fail(e, M64_EUNSUPPORTED, "a sliding window is for --arch gemma2 or gemma3 (a period for gemma3)");
  if (s->rope_scaling && !gemma)
    return m64_fail(e, M64_EUNSUPPORTED, "linear rope scaling is for --arch gemma2 or gemma3");
  if ((s->attn_softcap || s->final_softcap) && s->arch != M64_SYNTH_ARCH_GEMMA2)
    return m64_fail(e, M64_EUNSUPPORTED, "soft-capping is for --arch gemma2");
  if (s->qkv_apart && s->arch != M64_SYNTH_ARCH_PHI3)
    return m64_fail(e, M64_EUNSUPPORTED, "--qkv-apart is for --arch phi3");
  if (s->n_heads % s->n_kv_heads)
    return m64_fail(e, M64_EFORMAT, "heads %u not a multiple of kv heads %u", s->n_heads,
                    s->n_kv_heads);
  if (!(s->rope_base > 0) || !(s->norm_eps > 0))
    return m64_fail(e, M64_EFORMAT, "rope_base and norm_eps must be > 0");
  if (!m64_synth_arch_name(s->arch))
    return m64_fail(e, M64_EUNSUPPORTED, "arch %u is not a known architecture", s->arch);
  if (s->mix >= M64_SYNTH_MIX_COUNT)
    return m64_fail(e, M64_EUNSUPPORTED, "mix %u is not a known mix", s->mix);
  for (uint32_t i = 0; i < m64_synth_n_tensors(s); i++) {
    m64_synth_tensor t;
    int is_norm;
    describe(s, i, &t, &is_norm);
    if (!m64_ref_type_supported(t.type))
      return m64_fail(e, M64_EUNSUPPORTED, "%s: type %u (%s) cannot be generated", t.name,
                      t.type, type_name(t.type));
    if (!t.nbytes) {
      uint32_t block = m64_ref_block_elems(t.type);
      return m64_fail(e, M64_EFORMAT,
                      "%s: rows of %llu elements are not whole %s blocks of %u elements%s",
                      t.name, (unsigned long long)t.ne[0], type_name(t.type), block,
                      block == 256 ? " (K-quants and IQ4_XS need dim and ffn multiples of "
                                     "256: try --shape small)"
                                   : "");
    }
  }
  return M64_OK;
}

int m64_synth_tensor_info(const m64_synth_spec *s, uint32_t i, m64_synth_tensor *out,
                          m64_err *e) {
  if (i >= m64_synth_n_tensors(s))
    return m64_fail(e, M64_ENOTFOUND, "tensor %u of %u", i, m64_synth_n_tensors(s));
  int is_norm;
  describe(s, i, out, &is_norm);
  return M64_OK;
}

uint64_t m64_synth_data_bytes(const m64_synth_spec *s) {
  uint64_t total = 0;
  for (uint32_t i = 0; i < m64_synth_n_tensors(s); i++) {
    m64_synth_tensor t;
    int is_norm;
    describe(s, i, &t, &is_norm);
    total += t.nbytes;
  }
  return total;
}

/* ---------------------------------------------------------------- values */

/* splitmix64: tiny, fast, and good enough to make weights look random. */
static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* A sequential generator of one tensor's values, so big tensors can be produced in
 * chunks that concatenate to exactly what m64_synth_tensor_values returns. */
typedef struct value_stream {
  uint64_t rng;
  int is_norm;
  float scale; /* standard deviation of matrix entries: 1/sqrt(fan_in) */
} value_stream;

static void value_stream_init(value_stream *v, const m64_synth_spec *s, uint32_t i) {
  m64_synth_tensor t;
  describe(s, i, &t, &v->is_norm);
  uint64_t mix = ((uint64_t)s->seed << 32) ^ (0x5851f42d4c957f2dull * (i + 1));
  v->rng = splitmix64(&mix);
  v->scale = 1.0f / sqrtf((float)t.ne[0]);
}

static void value_stream_next(value_stream *v, float *out, uint64_t n) {
  for (uint64_t k = 0; k < n; k++) {
    uint64_t r = splitmix64(&v->rng);
    if (v->is_norm == 1) { /* norms near 1: uniform in [0.9, 1.1) */
      out[k] = 0.9f + 0.2f * (float)(r >> 40) * (1.0f / 16777216.0f);
      continue;
    }
    if (v->is_norm == 2) { /* rope frequency divisors, uniform in [1, 8) like Llama 3.1's */
      out[k] = 1.0f + 7.0f * (float)(r >> 40) * (1.0f / 16777216.0f);
      continue;
    }
    /* Sum of four uniforms (Irwin-Hall): bell-shaped, bounded by 3.46 sigma, one RNG call. */
    float sum = 0;
    for (int j = 0; j < 4; j++) sum += ((float)((r >> (16 * j)) & 0xffff) + 0.5f) / 65536.0f;
    out[k] = (sum - 2.0f) * 1.7320508f * v->scale; /* var(sum) = 1/3 */
  }
}

int m64_synth_tensor_values(const m64_synth_spec *s, uint32_t i, float *out, m64_err *e) {
  m64_synth_tensor t;
  int rc = m64_synth_tensor_info(s, i, &t, e);
  if (rc) return rc;
  value_stream v;
  value_stream_init(&v, s, i);
  value_stream_next(&v, out, t.ne[0] * t.ne[1] * t.ne[2]);
  return M64_OK;
}

/* Produces one tensor's bytes for the writer's fill callback: the writer asks for them in
 * order, in chunks of its own size; we quantize whole rows, up to CHUNK_ELEMS values at a
 * time, and hand the bytes out. Buffers live only while the tensor is being written. */
#define CHUNK_ELEMS (1u << 20)

typedef struct tensor_filler {
  const m64_synth_spec *spec;
  uint32_t index;
  m64_synth_tensor info;
  value_stream values;
  uint64_t row_bytes, rows_per_chunk, rows_done;
  float *vals;
  uint8_t *bytes;
  uint64_t have, used; /* bytes quantized into `bytes`, and how many were handed out */
  uint64_t offset;     /* tensor offset of the next byte to hand out */
} tensor_filler;

static void filler_release(tensor_filler *f) {
  free(f->vals);
  free(f->bytes);
  f->vals = NULL, f->bytes = NULL;
}

static int filler_restart(tensor_filler *f) {
  filler_release(f);
  uint64_t ne0 = f->info.ne[0];
  f->row_bytes = m64_ref_row_bytes(f->info.type, ne0);
  f->rows_per_chunk = ne0 >= CHUNK_ELEMS ? 1 : CHUNK_ELEMS / ne0;
  if (f->rows_per_chunk > f->info.ne[1] * f->info.ne[2]) f->rows_per_chunk = f->info.ne[1] * f->info.ne[2];
  f->vals = malloc(f->rows_per_chunk * ne0 * sizeof *f->vals);
  f->bytes = malloc(f->rows_per_chunk * f->row_bytes);
  if (!f->vals || !f->bytes) {
    filler_release(f);
    return M64_ENOMEM;
  }
  value_stream_init(&f->values, f->spec, f->index);
  f->rows_done = f->have = f->used = f->offset = 0;
  return M64_OK;
}

/* Quantizes the next rows into f->bytes. */
static void filler_next_rows(tensor_filler *f) {
  uint64_t ne0 = f->info.ne[0], left = f->info.ne[1] * f->info.ne[2] - f->rows_done;
  uint64_t rows = left < f->rows_per_chunk ? left : f->rows_per_chunk;
  value_stream_next(&f->values, f->vals, rows * ne0);
  for (uint64_t r = 0; r < rows; r++)
    m64_ref_quantize_row(f->info.type, f->vals + r * ne0, f->bytes + r * f->row_bytes, ne0);
  f->rows_done += rows;
  f->have = rows * f->row_bytes;
  f->used = 0;
}

static int fill_tensor(void *ctx, uint64_t offset, void *buf, size_t n) {
  tensor_filler *f = ctx;
  if (offset + n > f->info.nbytes) return M64_EFORMAT;
  /* A request out of order (not expected) is served by regenerating from the start. */
  if (!f->bytes || offset < f->offset) {
    int rc = filler_restart(f);
    if (rc) return rc;
  }
  uint8_t *out = buf;
  while (n) {
    if (f->used == f->have) filler_next_rows(f);
    uint64_t take = f->have - f->used;
    if (f->offset < offset) { /* skipping ahead */
      if (take > offset - f->offset) take = offset - f->offset;
      f->used += take, f->offset += take;
      continue;
    }
    if (take > n) take = n;
    memcpy(out, f->bytes + f->used, take);
    out += take, n -= take;
    f->used += take, f->offset += take;
  }
  if (f->offset == f->info.nbytes) filler_release(f);
  return M64_OK;
}

/* ---------------------------------------------------------------- vocabulary */

/* Words a children's story or a quick test prompt is made of; lowercase, 2+ letters. */
static const char *const common_words[] = {
    "the", "and", "to", "was", "he", "she", "it", "of", "in", "is", "a", "that", "you",
    "they", "her", "his", "with", "for", "on", "said", "we", "at", "be", "not", "had",
    "but", "so", "up", "all", "one", "day", "there", "time", "once", "upon", "little",
    "girl", "boy", "named", "lily", "tim", "ben", "saw", "loved", "play", "played",
    "outside", "park", "big", "very", "happy", "mom", "dad", "friend", "friends", "went",
    "go", "like", "liked", "wanted", "want", "do", "did", "can", "could", "would", "what",
    "when", "then", "them", "their", "were", "are", "have", "has", "from", "this", "an",
    "no", "yes", "out", "see", "look", "looked", "came", "come", "home", "tree", "dog",
    "cat", "bird", "ball", "toy", "red", "blue", "sun", "sky", "water", "fun", "good",
    "bad", "new", "old", "small", "run", "ran", "jump", "help", "helped", "made", "make",
    "found", "find", "very", "too", "after", "because", "felt", "feel", "sad", "scared",
    "together", "learned", "lesson", "always", "never", "how", "who", "why", "where",
    "hello", "world", "capital", "france", "paris", "city", "country", "quick", "brown",
    "fox", "jumps", "over", "lazy", "about", "into", "some", "more", "other", "people",
    "year", "way", "first", "two", "three", "know", "think", "get", "just", "now",
    "only", "also", "back", "our", "your", "my", "me", "him", "if", "or", "by", "as",
    "which", "will", "each", "many", "most", "these", "those", "such", "than", "well",
    "may", "even", "down", "should", "any", "work", "life", "long", "great", "house",
    "night", "morning", "food", "book", "car", "school", "name", "mother", "father",
};

static const char *const punctuation[] = {
    ".", ",", "!", "?", "'", "\"", "-", ":", ";", "(", ")", "0", "1", "2", "3", "4",
    "5", "6", "7", "8", "9", "\n"};

#define SP "\xe2\x96\x81" /* U+2581, SentencePiece's word-start marker */

typedef struct vocab_builder {
  m64_synth_vocab *v;
  uint32_t cap;      /* = n_vocab */
  uint32_t *slots;   /* open-addressing hash set of token indices + 1 (0 = empty) */
  uint32_t n_slots;  /* power of two >= 2 * cap */
} vocab_builder;

static uint64_t fnv1a(const char *s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
  return h;
}

/* Adds a token unless it is already there or the vocabulary is full. -1 on no memory. */
static int vocab_add(vocab_builder *b, const char *text, int32_t type) {
  m64_synth_vocab *v = b->v;
  if (v->n == b->cap) return 0;
  uint32_t slot = (uint32_t)fnv1a(text) & (b->n_slots - 1);
  while (b->slots[slot]) {
    if (!strcmp(v->tokens[b->slots[slot] - 1], text)) return 0;
    slot = (slot + 1) & (b->n_slots - 1);
  }
  char *copy = strdup(text);
  if (!copy) return -1;
  b->slots[slot] = v->n + 1;
  v->tokens[v->n] = copy;
  v->types[v->n] = type;
  v->scores[v->n] = 0;
  if (type == 1) {
    /* Longer pieces score higher (so merges prefer them), earlier ones break ties. */
    uint32_t chars = 0;
    for (const char *p = text; *p; p++) chars += ((uint8_t)*p & 0xc0) != 0x80;
    v->scores[v->n] = (float)chars - 0.5f * (float)v->n / (float)b->cap;
  }
  v->n++;
  return 0;
}

/* Adds "▁word" after each of its prefixes "▁w", "▁wo", ..., so merges can reach it. */
static int vocab_add_word(vocab_builder *b, const char *word) {
  char buf[64];
  size_t len = strlen(word);
  for (size_t k = 1; k <= len && k + sizeof SP < sizeof buf; k++) {
    snprintf(buf, sizeof buf, SP "%.*s", (int)k, word);
    if (vocab_add(b, buf, 1)) return -1;
  }
  return 0;
}

/* Checks n_vocab and allocates v's arrays and b's hash set; non-zero when out of memory
 * (the caller frees what was allocated), *rc set for a bad n_vocab. */
static int vocab_begin(vocab_builder *b, uint32_t n_vocab, m64_synth_vocab *v, int *rc, m64_err *e) {
  memset(v, 0, sizeof *v);
  *rc = 0;
  if (n_vocab < 259 || n_vocab > MAX_SYNTH_VOCAB) {
    *rc = m64_fail(e, M64_ELIMIT, "n_vocab %u: need 259 .. %u", n_vocab, MAX_SYNTH_VOCAB);
    return 1;
  }
  *b = (vocab_builder){v, n_vocab, NULL, 1};
  while (b->n_slots < 2 * n_vocab) b->n_slots *= 2;
  b->slots = calloc(b->n_slots, sizeof *b->slots);
  v->tokens = calloc(n_vocab, sizeof *v->tokens);
  v->scores = calloc(n_vocab, sizeof *v->scores);
  v->types = calloc(n_vocab, sizeof *v->types);
  return !b->slots || !v->tokens || !v->scores || !v->types;
}

/* The SentencePiece vocabulary; with_space = 0 leaves out the bare "▁" token, so that
 * a lone space can only be spelled as its three byte tokens (issue 22). */
static int spm_vocab_build(uint32_t n_vocab, int with_space, m64_synth_vocab *v, m64_err *e) {
  vocab_builder b;
  int rc, bad = vocab_begin(&b, n_vocab, v, &rc, e);
  if (rc) return rc;
  char buf[64];

  bad = bad || vocab_add(&b, "<unk>", 2) || vocab_add(&b, "<s>", 3) || vocab_add(&b, "</s>", 3);
  for (int byte = 0; byte < 256 && !bad; byte++) {
    snprintf(buf, sizeof buf, "<0x%02X>", byte);
    bad = vocab_add(&b, buf, 6);
  }
  if (with_space) bad = bad || vocab_add(&b, SP, 1);
  for (int c = 0; c < 52 && !bad; c++) { /* letters, then word-initial letters */
    snprintf(buf, sizeof buf, "%c", c < 26 ? 'a' + c : 'A' + c - 26);
    bad = vocab_add(&b, buf, 1);
  }
  for (int c = 0; c < 52 && !bad; c++) {
    snprintf(buf, sizeof buf, SP "%c", c < 26 ? 'a' + c : 'A' + c - 26);
    bad = vocab_add(&b, buf, 1);
  }
  for (size_t k = 0; k < sizeof punctuation / sizeof *punctuation && !bad; k++)
    bad = vocab_add(&b, punctuation[k], 1);
  for (size_t k = 0; k < sizeof common_words / sizeof *common_words && !bad; k++)
    bad = vocab_add_word(&b, common_words[k]);
  for (size_t k = 0; k < sizeof common_words / sizeof *common_words && !bad; k++) {
    snprintf(buf, sizeof buf, "%s", common_words[k]); /* sentence-initial: "▁The" */
    buf[0] = (char)(buf[0] - 'a' + 'A');
    bad = vocab_add_word(&b, buf);
  }
  /* Fill: every lowercase string of length 2, 3, ..., bare and word-initial. */
  for (int len = 2; v->n < n_vocab && !bad; len++) {
    uint64_t count = 1;
    for (int k = 0; k < len; k++) count *= 26;
    for (uint64_t idx = 0; idx < count && v->n < n_vocab && !bad; idx++) {
      char piece[16];
      uint64_t rest = idx;
      for (int k = len - 1; k >= 0; k--, rest /= 26) piece[k] = (char)('a' + rest % 26);
      piece[len] = 0;
      snprintf(buf, sizeof buf, SP "%s", piece);
      bad = vocab_add(&b, piece, 1) || vocab_add(&b, buf, 1);
    }
  }
  free(b.slots);
  if (bad) {
    m64_synth_vocab_free(v);
    return m64_fail(e, M64_ENOMEM, "out of memory building a %u-token vocabulary", n_vocab);
  }
  return M64_OK;
}

int m64_synth_vocab_build(uint32_t n_vocab, m64_synth_vocab *v, m64_err *e) {
  return spm_vocab_build(n_vocab, 1, v, e);
}
int m64_synth_spm_nospace_vocab_build(uint32_t n_vocab, m64_synth_vocab *v, m64_err *e) {
  return spm_vocab_build(n_vocab, 0, v, e);
}

void m64_synth_vocab_free(m64_synth_vocab *v) {
  if (v->tokens)
    for (uint32_t i = 0; i < v->n; i++) free(v->tokens[i]);
  free(v->tokens);
  free(v->scores);
  free(v->types);
  if (v->merges)
    for (uint32_t i = 0; i < v->n_merges; i++) free(v->merges[i]);
  free(v->merges);
  memset(v, 0, sizeof *v);
}

/* ---------------------------------------------------------------- BPE vocabulary */

/* GPT-2's printable character for byte b (UTF-8 into out, NUL-terminated; 1-2 bytes). */
static void gpt2_char(uint8_t b, char out[3]) {
  uint32_t cp = b, n = 0;
  int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
  if (!printable) {
    for (uint32_t x = 0; x < b; x++)
      n += !((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE);
    cp = 256 + n;
  }
  if (cp < 0x80) out[0] = (char)cp, out[1] = 0;
  else out[0] = (char)(0xC0 | cp >> 6), out[1] = (char)(0x80 | (cp & 63)), out[2] = 0;
}

/* Adds the merges that spell `plain` left to right ("h e", "he l", ...), each with the token
 * it makes; a prefix some earlier word made is reused. Stops quietly when full. */
static int bpe_add_word(vocab_builder *b, const char *plain) {
  m64_synth_vocab *v = b->v;
  char cur[128], next[3], made[128];
  gpt2_char((uint8_t)plain[0], cur);
  for (size_t k = 1; plain[k]; k++) {
    gpt2_char((uint8_t)plain[k], next);
    size_t lc = strlen(cur), ln = strlen(next);
    if (lc + ln + 1 > sizeof made) return 0;
    memcpy(made, cur, lc);
    memcpy(made + lc, next, ln + 1);
    uint32_t before = v->n;
    if (vocab_add(b, made, 1)) return -1;
    if (v->n > before) { /* a new token: its merge follows the ones that made its parts */
      char *m = malloc(strlen(cur) + strlen(next) + 2);
      if (!m) return -1;
      snprintf(m, strlen(cur) + strlen(next) + 2, "%s %s", cur, next);
      v->merges[v->n_merges++] = m;
    } else if (v->n == b->cap) {
      return 0; /* full (the token was not added) */
    }
    memcpy(cur, made, strlen(made) + 1);
  }
  return 0;
}

int m64_synth_bpe_vocab_build(uint32_t n_vocab, m64_synth_vocab *v, m64_err *e) {
  vocab_builder b;
  int rc, bad = vocab_begin(&b, n_vocab, v, &rc, e);
  if (rc) return rc;
  v->merges = calloc(n_vocab, sizeof *v->merges); /* one merge per token beyond the first 259 */
  bad = bad || !v->merges;
  char buf[64];
  for (int byte = 0; byte < 256 && !bad; byte++) {
    gpt2_char((uint8_t)byte, buf);
    bad = vocab_add(&b, buf, 1);
  }
  bad = bad || vocab_add(&b, "<|begin_of_text|>", 3) || vocab_add(&b, "<|end_of_text|>", 3) ||
        vocab_add(&b, "<|eot_id|>", 3);
  for (size_t k = 0; k < sizeof common_words / sizeof *common_words && !bad; k++) {
    snprintf(buf, sizeof buf, " %s", common_words[k]);
    bad = bpe_add_word(&b, buf) || bpe_add_word(&b, common_words[k]);
  }
  for (int x = 0; x < 26 * 26 && v->n < n_vocab && !bad; x++) {
    snprintf(buf, sizeof buf, "%c%c", 'a' + x / 26, 'a' + x % 26);
    bad = bpe_add_word(&b, buf);
  }
  for (int x = 0; x < 26 * 26 * 26 && v->n < n_vocab && !bad; x++) {
    snprintf(buf, sizeof buf, " %c%c%c", 'a' + x / 676, 'a' + x / 26 % 26, 'a' + x % 26);
    bad = bpe_add_word(&b, buf);
  }
  free(b.slots);
  if (!bad && v->n < n_vocab) {
    m64_synth_vocab_free(v);
    return m64_fail(e, M64_ELIMIT, "a synthetic BPE vocabulary has at most %u tokens", v->n);
  }
  if (bad) {
    m64_synth_vocab_free(v);
    return m64_fail(e, M64_ENOMEM, "out of memory building a %u-token vocabulary", n_vocab);
  }
  return M64_OK;
}

static int write_bpe_tokenizer(m64_gguf_writer *w, const m64_synth_vocab *v) {
  int rc = 0;
  rc = rc ? rc : m64_gguf_w_str(w, "tokenizer.ggml.model", "gpt2");
  rc = rc ? rc : m64_gguf_w_str(w, "tokenizer.ggml.pre", "llama-bpe");
  rc = rc ? rc : m64_gguf_w_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->tokens, v->n);
  rc = rc ? rc : m64_gguf_w_arr_i32(w, "tokenizer.ggml.token_type", v->types, v->n);
  rc = rc ? rc : m64_gguf_w_arr_str(w, "tokenizer.ggml.merges", (const char *const *)v->merges, v->n_merges);
  rc = rc ? rc : m64_gguf_w_u32(w, "tokenizer.ggml.bos_token_id", 256);
  rc = rc ? rc : m64_gguf_w_u32(w, "tokenizer.ggml.eos_token_id", 257);
  rc = rc ? rc : m64_gguf_w_bool(w, "tokenizer.ggml.add_bos_token", 1);
  return rc;
}

/* ---------------------------------------------------------------- writing */

static int write_metadata(m64_gguf_writer *w, const m64_synth_spec *s, const m64_synth_vocab *v) {
  uint32_t head_dim = (uint32_t)head_size(s);
  const char *arch = m64_synth_arch_name(s->arch);
  char key[96];
#define ARCH_KEY(k) (snprintf(key, sizeof key, "%s.%s", arch, k), key)
  int rc = 0;
  rc = rc ? rc : m64_gguf_w_str(w, "general.architecture", arch);
  rc = rc ? rc : m64_gguf_w_str(w, "general.name", s->name ? s->name : "m64-synth");
  rc = rc ? rc : m64_gguf_w_u32(w, ARCH_KEY("vocab_size"), s->n_vocab);
  rc = rc ? rc : m64_gguf_w_u32(w, ARCH_KEY("context_length"), s->n_ctx);
  rc = rc ? rc : m64_gguf_w_u32(w, ARCH_KEY("embedding_length"), s->dim);
  rc = rc ? rc : m64_gguf_w_u32(w, ARCH_KEY("block_count"), s->n_layers);
  rc = rc ? rc : m64_gguf_w_u32(w, ARCH_KEY("feed_forward_length"), s->ffn);
  rc = rc ? rc : m64_gguf_w_u32(w, ARCH_KEY("attention.head_count"), s->n_heads);
  rc = rc ? rc : m64_gguf_w_u32(w, ARCH_KEY("attention.head_count_kv"), s->n_kv_heads);
  rc = rc ? rc : m64_gguf_w_f32(w, ARCH_KEY("rope.freq_base"), s->rope_base);
  rc = rc ? rc : m64_gguf_w_f32(w, ARCH_KEY("attention.layer_norm_rms_epsilon"), s->norm_eps);
  rc = rc ? rc : m64_gguf_w_u32(w, ARCH_KEY("rope.dimension_count"), head_dim);
  if (s->arch == M64_SYNTH_ARCH_QWEN3 || s->arch == M64_SYNTH_ARCH_GEMMA3 ||
      s->arch == M64_SYNTH_ARCH_GEMMA2 || s->arch == M64_SYNTH_ARCH_QWEN3MOE) { /* as llama.cpp's converter writes them */
    rc = rc ? rc : m64_gguf_w_u32(w, ARCH_KEY("attention.key_length"), head_dim);
    rc = rc ? rc : m64_gguf_w_u32(w, ARCH_KEY("attention.value_length"), head_dim);
  }
  if (has_experts(s)) {
    uint32_t n_expert, n_used, expert_ffn;
    m64_synth_experts(s, &n_expert, &n_used, &expert_ffn);
    rc = rc ? rc : m64_gguf_w_u32(w, ARCH_KEY("expert_count"), n_expert);
    rc = rc ? rc : m64_gguf_w_u32(w, ARCH_KEY("expert_used_count"), n_used);
    if (s->arch == M64_SYNTH_ARCH_QWEN3MOE) /* llama.cpp reads the expert size from it */
      rc = rc ? rc : m64_gguf_w_u32(w, ARCH_KEY("expert_feed_forward_length"), expert_ffn);
  }
  if (s->arch == M64_SYNTH_ARCH_PHI3) /* a window one short of the context, as Phi-3-mini-4k's
                                         2047 (llama.cpp ignores it; m64 caps the context) */
    rc = rc ? rc : m64_gguf_w_u32(w, ARCH_KEY("attention.sliding_window"), s->n_ctx - 1);
  if (s->arch == M64_SYNTH_ARCH_GEMMA3) {
    rc = rc ? rc : m64_gguf_w_u32(w, ARCH_KEY("attention.sliding_window"), s->sliding_window ? s->sliding_window : 4096);
    if (s->swa_period) rc = rc ? rc : m64_gguf_w_u32(w, ARCH_KEY("attention.sliding_window_pattern"), s->swa_period);
  }
  if (s->rope_scaling) { /* as llama.cpp's converter writes Gemma 3 4B and larger */
    rc = rc ? rc : m64_gguf_w_str(w, ARCH_KEY("rope.scaling.type"), "linear");
    rc = rc ? rc : m64_gguf_w_f32(w, ARCH_KEY("rope.scaling.factor"), s->rope_scaling);
  }
  if (s->arch == M64_SYNTH_ARCH_GEMMA2) {
    rc = rc ? rc : m64_gguf_w_u32(w, ARCH_KEY("attention.sliding_window"), s->sliding_window ? s->sliding_window : 4096);
    rc = rc ? rc : m64_gguf_w_f32(w, ARCH_KEY("attn_logit_softcapping"), s->attn_softcap ? s->attn_softcap : 50.0f);
    rc = rc ? rc : m64_gguf_w_f32(w, ARCH_KEY("final_logit_softcapping"), s->final_softcap ? s->final_softcap : 30.0f);
  }
#undef ARCH_KEY
  rc = rc ? rc : m64_gguf_w_u32(w, "m64.synth.seed", s->seed);
  if (s->vocab_kind == M64_SYNTH_VOCAB_BPE) return rc ? rc : write_bpe_tokenizer(w, v);
  rc = rc ? rc : m64_gguf_w_str(w, "tokenizer.ggml.model", "llama");
  rc = rc ? rc : m64_gguf_w_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->tokens, v->n);
  rc = rc ? rc : m64_gguf_w_arr_f32(w, "tokenizer.ggml.scores", v->scores, v->n);
  rc = rc ? rc : m64_gguf_w_arr_i32(w, "tokenizer.ggml.token_type", v->types, v->n);
  rc = rc ? rc : m64_gguf_w_u32(w, "tokenizer.ggml.bos_token_id", 1);
  rc = rc ? rc : m64_gguf_w_u32(w, "tokenizer.ggml.eos_token_id", 2);
  rc = rc ? rc : m64_gguf_w_u32(w, "tokenizer.ggml.unknown_token_id", 0);
  rc = rc ? rc : m64_gguf_w_bool(w, "tokenizer.ggml.add_bos_token", 1);
  rc = rc ? rc : m64_gguf_w_bool(w, "tokenizer.ggml.add_eos_token", 0);
  return rc;
}

int m64_synth_write(const m64_synth_spec *s, const char *path, m64_err *e) {
  int rc = m64_synth_validate(s, e);
  if (rc) return rc;
  m64_synth_vocab vocab;
  rc = s->vocab_kind == M64_SYNTH_VOCAB_BPE           ? m64_synth_bpe_vocab_build(s->n_vocab, &vocab, e)
       : s->vocab_kind == M64_SYNTH_VOCAB_SPM_NO_SPACE ? m64_synth_spm_nospace_vocab_build(s->n_vocab, &vocab, e)
                                                       : m64_synth_vocab_build(s->n_vocab, &vocab, e);
  if (rc) return rc;
  uint32_t n_tensors = m64_synth_n_tensors(s);
  tensor_filler *fillers = calloc(n_tensors, sizeof *fillers);
  m64_gguf_writer *w = m64_gguf_writer_new(0);
  if (!fillers || !w) {
    rc = m64_fail(e, M64_ENOMEM, "out of memory for a GGUF writer");
    goto done;
  }
  rc = write_metadata(w, s, &vocab);
  if (rc) {
    m64_fail(e, rc, "GGUF writer refused the metadata (%d)", rc);
    goto done;
  }
  for (uint32_t i = 0; i < n_tensors && !rc; i++) {
    tensor_filler *f = &fillers[i];
    f->spec = s, f->index = i;
    m64_synth_tensor_info(s, i, &f->info, e);
    rc = m64_gguf_w_tensor_fill(w, f->info.name, f->info.type, f->info.n_dims, f->info.ne,
                                fill_tensor, f);
    if (rc) m64_fail(e, rc, "GGUF writer refused tensor %s (%d)", f->info.name, rc);
  }
  /* Tensor bytes are generated while the writer saves, one chunk at a time. */
  if (!rc) rc = m64_gguf_writer_save(w, path, e);
done:
  if (fillers)
    for (uint32_t i = 0; i < n_tensors; i++) filler_release(&fillers[i]);
  free(fillers);
  m64_gguf_writer_free(w);
  m64_synth_vocab_free(&vocab);
  return rc;
}
