/* oracle.c — the reference LLaMA forward pass; see oracle.h. */
#include "oracle.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"

/* ---------------------------------------------------------------- the model */

typedef struct hyperparams {
  uint32_t n_vocab, dim, n_layers, n_heads, n_kv_heads, head_dim, kv_dim, ffn, n_ctx;
  uint32_t q_dim;   /* n_heads * head_dim (qwen3's head size need not be dim / n_heads) */
  uint32_t n_rot;   /* leading dimensions of each head that RoPE rotates */
  float rope_base, norm_eps;
  int qkv_bias;     /* qwen2: q, k, v projections add biases */
  int rope_neox;    /* qwen2, qwen3, phi3: RoPE rotates (i, i + n_rot/2) instead of (2i, 2i+1) */
  int qk_norm;      /* qwen3, gemma3: each q and k head RMS-normed (its own weights) before RoPE */
  int fused;        /* phi3: one product for q, k, v (attn_qkv), one for gate and up (ffn_up) */
  /* gemma3: embeddings times sqrt(dim); q times q_scale (and scores not scaled); the
   * attention and FFN outputs RMS-normed before the residual adds; FFN gelu(gate) * up;
   * in every layer but each period-th (counting from 1) a position sees only itself and
   * the window - 1 before it, under RoPE base rope_base_swa, the others under rope_base
   * with the angles times rope_scale (1 / a linear scaling factor). */
  int gemma3;
  /* gemma2: as gemma3 without q/k norms, every 2nd layer global, one RoPE for all, and
   * attention scores and logits soft-capped: c tanh(x / c) */
  int gemma2;
  float attn_softcap, final_softcap;
  uint32_t window;  /* phi3: every layer's, gemma: the sliding layers' window; 0 = all */
  uint32_t period;
  float rope_base_swa, rope_scale, q_scale;
  /* Mixture of Experts (qwen3moe; llama with expert_count): n_expert experts of expert_ffn,
   * n_expert_used of them run per token; 0 = a dense FFN */
  uint32_t n_expert, n_expert_used, expert_ffn;
  char arch[16];    /* "llama", "qwen2", "qwen3", "phi3", "gemma2" or "gemma3": the prefix of every hyperparameter key */
} hyperparams;

/* Matrices are row-major [out][in]: GGUF's ne[0] = in (the row), ne[1] = out. */
/* A weight matrix left as stored in the (mapped) GGUF: rows are dequantized to F32 one
 * at a time as the math needs them, so the oracle's memory does not grow with the model
 * (it checks models larger than this machine's RAM would hold in F32). */
typedef struct matrix {
  const uint8_t *data;
  uint32_t type;
  uint64_t row_bytes;
} matrix;

typedef struct layer_weights {
  float *attn_norm;               /* [dim] */
  matrix wq, wk, wv, wo;          /* [dim][dim], [kv_dim][dim], [kv_dim][dim], [dim][dim] */
  float *ffn_norm;                /* [dim] */
  matrix w_gate, w_up, w_down;    /* [ffn][dim], [ffn][dim], [dim][ffn] */
  float *bq, *bk, *bv;            /* [q_dim], [kv_dim], [kv_dim]; NULL without biases */
  float *q_norm, *k_norm;         /* [head_dim] each; NULL without q/k norms */
  matrix wqkv;                    /* phi3: [q_dim + 2 kv_dim][dim], q rows then k then v; data
                                     NULL where the file has attn_q/k/v apart */
  matrix w_gate_up;               /* phi3: [2 ffn][dim], gate rows then up (no ffn_gate) */
  float *post_attn_norm, *post_ffw_norm; /* [dim] each; gemma3 only */
  matrix router;                  /* experts: [n_expert][dim] (ffn_gate_inp) */
  /* experts: all of them, each a block of rows: [E][expert_ffn][dim], [E][expert_ffn][dim],
   * [E][dim][expert_ffn] (the 3-D ffn_{gate,up,down}_exps) */
  matrix gate_exps, up_exps, down_exps;
} layer_weights;

typedef struct weights {
  matrix token_embd;   /* [n_vocab][dim] */
  float *output_norm;  /* [dim] */
  matrix output;       /* [n_vocab][dim]; token_embd when the model ties them */
  float *rope_freqs;   /* [n_rot/2] divisors of the rotation angles, or NULL (Llama 3.1+) */
  layer_weights *layers;
} weights;

/* Activations for one position, and the KV cache for all of them. */
typedef struct run_state {
  float *x;           /* [dim] the residual stream */
  float *xb, *xb2;    /* [dim] normalized input / attention output */
  float *q, *k, *v;   /* [dim], [kv_dim], [kv_dim] */
  float *att;         /* [n_ctx] scores of one head */
  float *gate, *up;   /* [ffn] */
  float *qkv;         /* phi3: [q_dim + 2 kv_dim] the fused product, before it is split */
  float *gate_up;     /* phi3: [2 ffn] likewise */
  float *probs;       /* experts: [n_expert] the router's softmax */
  float *moe_out, *expert_out; /* experts: [dim] the weighted sum, one expert's output */
  float *logits;      /* [n_vocab] */
  float *key_cache, *value_cache; /* [n_layers][n_ctx][kv_dim] */
} run_state;

struct m64_oracle {
  hyperparams hp;
  m64_gguf *g;  /* kept open: the matrices point into its mapping */
  weights w;
  run_state s;
  float *row;   /* [max(dim, ffn)] one dequantized row */
};

/* ---------------------------------------------------------------- loading */

static int get_u32_or(const m64_gguf *g, const char *key, uint32_t dflt, uint32_t *out,
                      m64_err *e) {
  int rc = m64_gguf_get_u32(g, key, out);
  if (rc == M64_ENOTFOUND) *out = dflt, rc = M64_OK;
  if (rc) return m64_fail(e, rc, "metadata %s: not a u32 (%d)", key, rc);
  return M64_OK;
}

static int get_f32_or(const m64_gguf *g, const char *key, float dflt, float *out, m64_err *e) {
  int rc = m64_gguf_get_f32(g, key, out);
  if (rc == M64_ENOTFOUND) *out = dflt, rc = M64_OK;
  if (rc) return m64_fail(e, rc, "metadata %s: not an f32 (%d)", key, rc);
  return M64_OK;
}

/* "<arch>.<key>" */
static const char *arch_key(const hyperparams *hp, const char *key) {
  static char full[128];
  snprintf(full, sizeof full, "%s.%s", hp->arch, key);
  return full;
}

static int read_hyperparams(const m64_gguf *g, uint32_t n_ctx, hyperparams *hp, m64_err *e) {
  m64_str arch;
  if (m64_gguf_get_str(g, "general.architecture", &arch))
    return m64_fail(e, M64_EUNSUPPORTED, "general.architecture is missing");
  if (arch.len == 5 && !memcmp(arch.ptr, "llama", 5)) {
    snprintf(hp->arch, sizeof hp->arch, "llama");
  } else if (arch.len == 5 && !memcmp(arch.ptr, "qwen2", 5)) {
    snprintf(hp->arch, sizeof hp->arch, "qwen2");
    hp->qkv_bias = hp->rope_neox = 1;
  } else if (arch.len == 5 && !memcmp(arch.ptr, "qwen3", 5)) {
    snprintf(hp->arch, sizeof hp->arch, "qwen3");
    hp->qk_norm = hp->rope_neox = 1;
  } else if (arch.len == 4 && !memcmp(arch.ptr, "phi3", 4)) {
    snprintf(hp->arch, sizeof hp->arch, "phi3");
    hp->fused = hp->rope_neox = 1;
  } else if (arch.len == 6 && !memcmp(arch.ptr, "gemma3", 6)) {
    snprintf(hp->arch, sizeof hp->arch, "gemma3");
    hp->qk_norm = hp->rope_neox = hp->gemma3 = 1;
  } else if (arch.len == 6 && !memcmp(arch.ptr, "gemma2", 6)) {
    snprintf(hp->arch, sizeof hp->arch, "gemma2");
    hp->rope_neox = hp->gemma2 = 1;
  } else if (arch.len == 8 && !memcmp(arch.ptr, "qwen3moe", 8)) {
    snprintf(hp->arch, sizeof hp->arch, "qwen3moe");
    hp->qk_norm = hp->rope_neox = 1;
  } else {
    return m64_fail(e, M64_EUNSUPPORTED,
                    "general.architecture is not llama, qwen2, qwen3, qwen3moe, phi3, gemma2 or gemma3");
  }
  int rc = 0;
  rc = rc ? rc : get_u32_or(g, arch_key(hp, "embedding_length"), 0, &hp->dim, e);
  rc = rc ? rc : get_u32_or(g, arch_key(hp, "block_count"), 0, &hp->n_layers, e);
  rc = rc ? rc : get_u32_or(g, arch_key(hp, "feed_forward_length"), 0, &hp->ffn, e);
  rc = rc ? rc : get_u32_or(g, arch_key(hp, "attention.head_count"), 0, &hp->n_heads, e);
  rc = rc ? rc : get_u32_or(g, arch_key(hp, "attention.head_count_kv"), hp->n_heads, &hp->n_kv_heads, e);
  rc = rc ? rc : get_u32_or(g, arch_key(hp, "context_length"), 2048, &hp->n_ctx, e);
  rc = rc ? rc : get_f32_or(g, arch_key(hp, "rope.freq_base"), 10000.0f, &hp->rope_base, e);
  rc = rc ? rc : get_f32_or(g, arch_key(hp, "attention.layer_norm_rms_epsilon"), 1e-5f, &hp->norm_eps, e);
  rc = rc ? rc : get_u32_or(g, arch_key(hp, "attention.sliding_window"), 0, &hp->window, e);
  if (rc) return rc;
  if (m64_gguf_find_tensor(g, "rope_factors_long.weight"))
    return m64_fail(e, M64_EUNSUPPORTED, "LongRoPE factors are not implemented");
  if (!hp->dim || !hp->n_layers || !hp->ffn || !hp->n_heads || !hp->n_kv_heads ||
      hp->n_heads % hp->n_kv_heads || hp->n_layers > M64_MAX_LAYERS)
    return m64_fail(e, M64_EFORMAT,
                    "bad hyperparameters: dim %u, layers %u, ffn %u, heads %u, kv heads %u",
                    hp->dim, hp->n_layers, hp->ffn, hp->n_heads, hp->n_kv_heads);
  /* the head size: attention.key_length where given, else dim / heads */
  rc = get_u32_or(g, arch_key(hp, "attention.key_length"), hp->dim % hp->n_heads ? 0 : hp->dim / hp->n_heads,
                  &hp->head_dim, e);
  if (rc) return rc;
  uint32_t value_len;
  rc = get_u32_or(g, arch_key(hp, "attention.value_length"), hp->head_dim, &value_len, e);
  if (rc) return rc;
  if (!hp->head_dim || hp->head_dim > 4096 || value_len != hp->head_dim)
    return m64_fail(e, M64_EFORMAT, "head size: keys %u, values %u (dim %u, heads %u)", hp->head_dim,
                    value_len, hp->dim, hp->n_heads);
  hp->q_dim = hp->head_dim * hp->n_heads;
  hp->kv_dim = hp->head_dim * hp->n_kv_heads;
  rc = get_u32_or(g, arch_key(hp, "rope.dimension_count"), hp->head_dim, &hp->n_rot, e);
  if (rc) return rc;
  if (hp->n_rot > hp->head_dim || hp->n_rot % 2)
    return m64_fail(e, M64_EFORMAT, "rope dimension count %u with head size %u", hp->n_rot,
                    hp->head_dim);
  hp->rope_scale = 1.0f;
  if (hp->gemma3) {
    float factor;
    rc = get_u32_or(g, arch_key(hp, "attention.sliding_window"), 0, &hp->window, e);
    rc = rc ? rc : get_u32_or(g, arch_key(hp, "attention.sliding_window_pattern"), 6, &hp->period, e);
    rc = rc ? rc : get_f32_or(g, arch_key(hp, "rope.freq_base_swa"), 10000.0f, &hp->rope_base_swa, e);
    rc = rc ? rc : get_f32_or(g, arch_key(hp, "rope.scaling.factor"), 1.0f, &factor, e);
    if (rc) return rc;
    if (!hp->window) return m64_fail(e, M64_EUNSUPPORTED, "gemma3 without a sliding window");
    if (!hp->period) hp->period = 1;
    if (factor != 0.0f) hp->rope_scale = 1.0f / factor;
    /* 1/sqrt(head size); 1/sqrt(dim / heads) in Gemma 3 27B (62 blocks) */
    hp->q_scale = (float)(1.0 / sqrt(hp->n_layers == 62 ? (double)(hp->dim / hp->n_heads) : (double)hp->head_dim));
  }
  if (hp->gemma2) {
    float factor;
    rc = get_u32_or(g, arch_key(hp, "attention.sliding_window"), 4096, &hp->window, e);
    rc = rc ? rc : get_f32_or(g, arch_key(hp, "attn_logit_softcapping"), 50.0f, &hp->attn_softcap, e);
    rc = rc ? rc : get_f32_or(g, arch_key(hp, "final_logit_softcapping"), 30.0f, &hp->final_softcap, e);
    rc = rc ? rc : get_f32_or(g, arch_key(hp, "rope.scaling.factor"), 1.0f, &factor, e);
    if (rc) return rc;
    hp->period = 2;
    if (factor != 0.0f) hp->rope_scale = 1.0f / factor;
    /* 1/sqrt(head size); 1/sqrt(dim / heads) in Gemma 2 27B (46 blocks) */
    hp->q_scale = (float)(1.0 / sqrt(hp->n_layers == 46 ? (double)(hp->dim / hp->n_heads) : (double)hp->head_dim));
    hp->gemma3 = 1; /* everything else as gemma3 */
  }
  const int qwen3moe = !strcmp(hp->arch, "qwen3moe");
  if (qwen3moe || !strcmp(hp->arch, "llama")) {
    rc = get_u32_or(g, arch_key(hp, "expert_count"), 0, &hp->n_expert, e);
    rc = rc ? rc : get_u32_or(g, arch_key(hp, "expert_used_count"), 0, &hp->n_expert_used, e);
    /* llama.cpp reads qwen3moe's expert size from its own key, a llama model's from
     * feed_forward_length */
    rc = rc ? rc : get_u32_or(g, arch_key(hp, "expert_feed_forward_length"), 0, &hp->expert_ffn, e);
    if (rc) return rc;
    if (!qwen3moe) hp->expert_ffn = hp->ffn;
    if (qwen3moe && (!hp->n_expert || !hp->expert_ffn))
      return m64_fail(e, M64_EFORMAT, "qwen3moe without expert_count or expert_feed_forward_length");
    if (hp->n_expert && (hp->n_expert > 256 || !hp->n_expert_used || hp->n_expert_used > hp->n_expert))
      return m64_fail(e, M64_EFORMAT, "%u experts used of %u (need 1 .. experts, at most 256)",
                      hp->n_expert_used, hp->n_expert);
    if (!hp->n_expert) hp->n_expert_used = hp->expert_ffn = 0;
  }
  if (n_ctx) hp->n_ctx = n_ctx;
  const m64_gguf_tensor *embd = m64_gguf_find_tensor(g, "token_embd.weight");
  if (!embd) return m64_fail(e, M64_ENOTFOUND, "tensor token_embd.weight is missing");
  hp->n_vocab = (uint32_t)embd->ne[1];
  return M64_OK;
}

/* Finds a tensor and checks its shape [ne0, ne1], type and size. */
static int find_tensor(const m64_gguf *g, const char *name, uint64_t ne0, uint64_t ne1,
                       const m64_gguf_tensor **out, uint64_t *row_bytes, m64_err *e) {
  const m64_gguf_tensor *t = m64_gguf_find_tensor(g, name);
  if (!t) return m64_fail(e, M64_ENOTFOUND, "tensor %s is missing", name);
  if (t->ne[0] != ne0 || t->n_elems != ne0 * ne1)
    return m64_fail(e, M64_EFORMAT, "tensor %s: shape [%llu, %llu], expected [%llu, %llu]",
                    name, (unsigned long long)t->ne[0],
                    (unsigned long long)(t->ne[0] ? t->n_elems / t->ne[0] : 0),
                    (unsigned long long)ne0, (unsigned long long)ne1);
  if (!m64_ref_type_supported(t->type)) {
    const char *type_name = m64_ggml_type_info(t->type).name;
    return m64_fail(e, M64_EUNSUPPORTED, "tensor %s: type %s (%u) is not supported", name,
                    type_name ? type_name : "unknown", t->type);
  }
  *row_bytes = m64_ref_row_bytes(t->type, ne0);
  if (*row_bytes * ne1 > t->nbytes)
    return m64_fail(e, M64_EFORMAT, "tensor %s: %llu bytes, expected %llu", name,
                    (unsigned long long)t->nbytes, (unsigned long long)(*row_bytes * ne1));
  *out = t;
  return M64_OK;
}

/* A matrix, left quantized in the mapping. */
static int load_matrix(const m64_gguf *g, const char *name, uint64_t ne0, uint64_t ne1,
                       matrix *out, m64_err *e) {
  const m64_gguf_tensor *t = NULL;
  uint64_t row_bytes = 0;
  int rc = find_tensor(g, name, ne0, ne1, &t, &row_bytes, e);
  if (rc) return rc;
  *out = (matrix){t->data, t->type, row_bytes};
  return M64_OK;
}

/* The experts of a 3-D tensor [cols, rows, n_expert]: one matrix of n_expert * rows rows,
 * expert e's the rows e * rows .. (e + 1) * rows - 1. */
static int load_experts(const m64_gguf *g, const char *name, uint64_t cols, uint64_t rows,
                        uint64_t n_expert, matrix *out, m64_err *e) {
  int rc = load_matrix(g, name, cols, rows * n_expert, out, e);
  if (rc) return rc;
  const m64_gguf_tensor *t = m64_gguf_find_tensor(g, name);
  if (t->ne[1] != rows || t->ne[2] != n_expert)
    return m64_fail(e, M64_EFORMAT, "tensor %s: shape [%llu, %llu, %llu], expected [%llu, %llu, %llu]", name,
                    (unsigned long long)t->ne[0], (unsigned long long)t->ne[1], (unsigned long long)t->ne[2],
                    (unsigned long long)cols, (unsigned long long)rows, (unsigned long long)n_expert);
  return M64_OK;
}

/* Expert e of a load_experts matrix of `rows` rows per expert. */
static matrix expert(const matrix *m, uint32_t e, uint32_t rows) {
  return (matrix){m->data + (uint64_t)e * rows * m->row_bytes, m->type, m->row_bytes};
}

/* A vector (norm weights), dequantized to F32. */
static int load_vector(const m64_gguf *g, const char *name, uint64_t n, float **out, m64_err *e) {
  *out = NULL;
  const m64_gguf_tensor *t = NULL;
  uint64_t row_bytes = 0;
  int rc = find_tensor(g, name, n, 1, &t, &row_bytes, e);
  if (rc) return rc;
  float *f = malloc(n * sizeof *f);
  if (!f) return m64_fail(e, M64_ENOMEM, "tensor %s: out of memory", name);
  m64_ref_dequantize_row(t->type, t->data, f, n);
  *out = f;
  return M64_OK;
}

static int load_weights(const m64_gguf *g, const hyperparams *hp, m64_oracle *o, m64_err *e) {
  weights *w = &o->w;
  w->layers = calloc(hp->n_layers, sizeof *w->layers);
  if (!w->layers) return m64_fail(e, M64_ENOMEM, "out of memory");
  int rc = 0;
  rc = rc ? rc : load_matrix(g, "token_embd.weight", hp->dim, hp->n_vocab, &w->token_embd, e);
  rc = rc ? rc : load_vector(g, "output_norm.weight", hp->dim, &w->output_norm, e);
  if (!rc && m64_gguf_find_tensor(g, "output.weight"))
    rc = load_matrix(g, "output.weight", hp->dim, hp->n_vocab, &w->output, e);
  else if (!rc)
    w->output = w->token_embd; /* tied embeddings */
  if (!rc && m64_gguf_find_tensor(g, "rope_freqs.weight"))
    rc = load_vector(g, "rope_freqs.weight", hp->n_rot / 2, &w->rope_freqs, e);
  for (uint32_t l = 0; l < hp->n_layers && !rc; l++) {
    layer_weights *lw = &w->layers[l];
    char name[M64_MAX_NAME + 1];
    snprintf(name, sizeof name, "blk.%u.attn_norm.weight", l);
    rc = load_vector(g, name, hp->dim, &lw->attn_norm, e);
    snprintf(name, sizeof name, "blk.%u.ffn_norm.weight", l);
    rc = rc ? rc : load_vector(g, name, hp->dim, &lw->ffn_norm, e);
    struct { const char *name; uint64_t ne0, ne1; matrix *dst; } parts[] = {
        {"attn_q", hp->dim, hp->q_dim, &lw->wq},
        {"attn_k", hp->dim, hp->kv_dim, &lw->wk},
        {"attn_v", hp->dim, hp->kv_dim, &lw->wv},
        {"attn_output", hp->q_dim, hp->dim, &lw->wo},
        {"ffn_gate", hp->dim, hp->ffn, &lw->w_gate},
        {"ffn_up", hp->dim, hp->ffn, &lw->w_up},
        {"ffn_down", hp->ffn, hp->dim, &lw->w_down},
    };
    if (hp->fused && !rc) { /* phi3: ffn_up holds gate and up; attn_qkv, if there, q, k, v */
      snprintf(name, sizeof name, "blk.%u.ffn_up.weight", l);
      rc = load_matrix(g, name, hp->dim, 2 * (uint64_t)hp->ffn, &lw->w_gate_up, e);
      parts[4].name = parts[5].name = NULL;
      snprintf(name, sizeof name, "blk.%u.attn_qkv.weight", l);
      if (!rc && m64_gguf_find_tensor(g, name)) {
        rc = load_matrix(g, name, hp->dim, hp->q_dim + 2 * (uint64_t)hp->kv_dim, &lw->wqkv, e);
        parts[0].name = parts[1].name = parts[2].name = NULL;
      }
    }
    if (hp->n_expert && !rc) { /* the router and the experts in place of the dense FFN */
      parts[4].name = parts[5].name = parts[6].name = NULL;
      snprintf(name, sizeof name, "blk.%u.ffn_gate_inp.weight", l);
      rc = load_matrix(g, name, hp->dim, hp->n_expert, &lw->router, e);
      snprintf(name, sizeof name, "blk.%u.ffn_gate_exps.weight", l);
      rc = rc ? rc : load_experts(g, name, hp->dim, hp->expert_ffn, hp->n_expert, &lw->gate_exps, e);
      snprintf(name, sizeof name, "blk.%u.ffn_up_exps.weight", l);
      rc = rc ? rc : load_experts(g, name, hp->dim, hp->expert_ffn, hp->n_expert, &lw->up_exps, e);
      snprintf(name, sizeof name, "blk.%u.ffn_down_exps.weight", l);
      rc = rc ? rc : load_experts(g, name, hp->expert_ffn, hp->dim, hp->n_expert, &lw->down_exps, e);
    }
    for (size_t p = 0; p < sizeof parts / sizeof parts[0] && !rc; p++) {
      if (!parts[p].name) continue;
      snprintf(name, sizeof name, "blk.%u.%s.weight", l, parts[p].name);
      rc = load_matrix(g, name, parts[p].ne0, parts[p].ne1, parts[p].dst, e);
    }
    struct { const char *name; uint64_t n; float **dst; } biases[] = {
        {"attn_q", hp->q_dim, &lw->bq}, {"attn_k", hp->kv_dim, &lw->bk}, {"attn_v", hp->kv_dim, &lw->bv}};
    for (size_t b = 0; hp->qkv_bias && b < 3 && !rc; b++) {
      snprintf(name, sizeof name, "blk.%u.%s.bias", l, biases[b].name);
      rc = load_vector(g, name, biases[b].n, biases[b].dst, e);
    }
    if (hp->qk_norm && !rc) {
      snprintf(name, sizeof name, "blk.%u.attn_q_norm.weight", l);
      rc = load_vector(g, name, hp->head_dim, &lw->q_norm, e);
      snprintf(name, sizeof name, "blk.%u.attn_k_norm.weight", l);
      rc = rc ? rc : load_vector(g, name, hp->head_dim, &lw->k_norm, e);
    }
    if (hp->gemma3 && !rc) {
      snprintf(name, sizeof name, "blk.%u.post_attention_norm.weight", l);
      rc = load_vector(g, name, hp->dim, &lw->post_attn_norm, e);
      snprintf(name, sizeof name, "blk.%u.post_ffw_norm.weight", l);
      rc = rc ? rc : load_vector(g, name, hp->dim, &lw->post_ffw_norm, e);
    }
  }
  return rc;
}

static int alloc_state(const hyperparams *hp, run_state *s, m64_err *e) {
  uint64_t cache = (uint64_t)hp->n_layers * hp->n_ctx * hp->kv_dim;
  const uint32_t ffn = hp->ffn > hp->expert_ffn ? hp->ffn : hp->expert_ffn;
  s->x = calloc(hp->dim, sizeof(float));
  s->xb = calloc(hp->dim, sizeof(float));
  s->xb2 = calloc(hp->q_dim, sizeof(float));
  s->q = calloc(hp->q_dim, sizeof(float));
  s->k = calloc(hp->kv_dim, sizeof(float));
  s->v = calloc(hp->kv_dim, sizeof(float));
  s->att = calloc(hp->n_ctx, sizeof(float));
  s->gate = calloc(ffn, sizeof(float));
  s->up = calloc(ffn, sizeof(float));
  s->probs = calloc(hp->n_expert + 1, sizeof(float));
  s->moe_out = calloc(hp->dim, sizeof(float));
  s->expert_out = calloc(hp->dim, sizeof(float));
  s->qkv = calloc(hp->q_dim + 2 * (uint64_t)hp->kv_dim, sizeof(float));
  s->gate_up = calloc(2 * (uint64_t)hp->ffn, sizeof(float));
  s->logits = calloc(hp->n_vocab, sizeof(float));
  s->key_cache = calloc(cache, sizeof(float));
  s->value_cache = calloc(cache, sizeof(float));
  if (!s->x || !s->xb || !s->xb2 || !s->q || !s->k || !s->v || !s->att || !s->gate ||
      !s->up || !s->qkv || !s->gate_up || !s->logits || !s->key_cache || !s->value_cache ||
      !s->probs || !s->moe_out || !s->expert_out)
    return m64_fail(e, M64_ENOMEM, "out of memory for activations and a %u-position cache",
                    hp->n_ctx);
  return M64_OK;
}

int m64_oracle_open(const char *gguf_path, uint32_t n_ctx, m64_oracle **out, m64_err *e) {
  *out = NULL;
  m64_gguf *g = NULL;
  int rc = m64_gguf_open(gguf_path, &g, e);
  if (rc) return rc;
  m64_oracle *o = calloc(1, sizeof *o);
  if (!o) {
    m64_gguf_close(g);
    return m64_fail(e, M64_ENOMEM, "out of memory");
  }
  rc = read_hyperparams(g, n_ctx, &o->hp, e);
  o->g = g;
  if (!rc) rc = load_weights(g, &o->hp, o, e);
  if (!rc) rc = alloc_state(&o->hp, &o->s, e);
  uint32_t widest = o->hp.dim > o->hp.ffn ? o->hp.dim : o->hp.ffn;
  if (widest < o->hp.expert_ffn) widest = o->hp.expert_ffn;
  if (!rc && !(o->row = malloc((widest > o->hp.q_dim ? widest : o->hp.q_dim) * sizeof(float))))
    rc = m64_fail(e, M64_ENOMEM, "out of memory");
  if (rc) {
    m64_oracle_close(o);
    return rc;
  }
  *out = o;
  return M64_OK;
}

void m64_oracle_close(m64_oracle *o) {
  if (!o) return;
  weights *w = &o->w;
  if (w->layers)
    for (uint32_t l = 0; l < o->hp.n_layers; l++) {
      free(w->layers[l].attn_norm);
      free(w->layers[l].ffn_norm);
      free(w->layers[l].bq), free(w->layers[l].bk), free(w->layers[l].bv);
      free(w->layers[l].q_norm), free(w->layers[l].k_norm);
      free(w->layers[l].post_attn_norm), free(w->layers[l].post_ffw_norm);
    }
  free(w->rope_freqs);
  free(w->layers);
  free(w->output_norm);
  free(o->row);
  m64_gguf_close(o->g);
  run_state *s = &o->s;
  free(s->x), free(s->xb), free(s->xb2), free(s->q), free(s->k), free(s->v), free(s->att);
  free(s->gate), free(s->up), free(s->qkv), free(s->gate_up), free(s->logits), free(s->key_cache), free(s->value_cache);
  free(s->probs), free(s->moe_out), free(s->expert_out);
  free(o);
}

uint32_t m64_oracle_n_vocab(const m64_oracle *o) { return o->hp.n_vocab; }
uint32_t m64_oracle_n_ctx(const m64_oracle *o) { return o->hp.n_ctx; }

/* ---------------------------------------------------------------- the math */

/* out = x / sqrt(mean(x^2) + eps) * weight */
static void rmsnorm(float *out, const float *x, const float *weight, uint32_t n, float eps) {
  double sum_sq = 0;
  for (uint32_t i = 0; i < n; i++) sum_sq += (double)x[i] * x[i];
  float scale = (float)(1.0 / sqrt(sum_sq / n + eps));
  for (uint32_t i = 0; i < n; i++) out[i] = x[i] * scale * weight[i];
}

/* out[i] = sum_j W[i][j] * x[j] for W of n_out rows of n_in; each row dequantized into
 * `row` first. */
static void matvec(float *out, const matrix *W, const float *x, uint32_t n_in, uint32_t n_out,
                   float *row) {
  for (uint32_t i = 0; i < n_out; i++) {
    m64_ref_dequantize_row(W->type, W->data + (uint64_t)i * W->row_bytes, row, n_in);
    double sum = 0;
    for (uint32_t j = 0; j < n_in; j++) sum += (double)row[j] * x[j];
    out[i] = (float)sum;
  }
}

/* Rotates pair i of each head by pos * base^(-2i/n_rot) (divided by rope_freqs[i] where
 * the model has them, times scale): pairs (2i, 2i+1) in "normal" RoPE, (i, i + n_rot/2) in "neox". */
static void rope(float *vec, uint32_t n_heads, const hyperparams *hp, const float *freqs, int pos,
                 double base, double scale) {
  const uint32_t half = hp->n_rot / 2;
  for (uint32_t h = 0; h < n_heads; h++) {
    float *head = vec + h * hp->head_dim;
    for (uint32_t i = 0; i < half; i++) {
      double theta = pos * pow(base, -2.0 * i / hp->n_rot);
      if (freqs) theta /= freqs[i];
      theta *= scale;
      double c = cos(theta), s = sin(theta);
      uint32_t a = hp->rope_neox ? i : 2 * i, b = hp->rope_neox ? i + half : 2 * i + 1;
      float x0 = head[a], x1 = head[b];
      head[a] = (float)(x0 * c - x1 * s);
      head[b] = (float)(x0 * s + x1 * c);
    }
  }
}

static void softmax(float *x, uint32_t n) {
  float max = x[0];
  for (uint32_t i = 1; i < n; i++) max = fmaxf(max, x[i]);
  double sum = 0;
  for (uint32_t i = 0; i < n; i++) {
    x[i] = expf(x[i] - max);
    sum += x[i];
  }
  for (uint32_t i = 0; i < n; i++) x[i] = (float)(x[i] / sum);
}

static float silu(float x) { return x / (1.0f + expf(-x)); }

/* GELU, tanh approximation: x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
static float gelu(float x) {
  const double d = x;
  return (float)(0.5 * d * (1.0 + tanh(sqrt(2.0 / 3.14159265358979323846) * (d + 0.044715 * d * d * d))));
}

/* gemma2/3: does layer l attend through the sliding window? */
static int sliding(const hyperparams *hp, uint32_t l) {
  return hp->gemma3 && (l + 1) % hp->period != 0;
}

/* xb2 = multi-head attention of q over the cached keys/values of positions 0..pos (the
 * last `window` of them where window > 0). */
static void attention(m64_oracle *o, uint32_t layer, int pos, uint32_t window) {
  const hyperparams *hp = &o->hp;
  run_state *s = &o->s;
  uint64_t layer_base = (uint64_t)layer * hp->n_ctx * hp->kv_dim;
  uint32_t heads_per_kv = hp->n_heads / hp->n_kv_heads;
  float inv_sqrt_hd = hp->gemma3 ? 1.0f : 1.0f / sqrtf((float)hp->head_dim); /* gemma3: q is scaled */
  const int first = window && (uint32_t)pos >= window ? pos - (int)window + 1 : 0;
  for (uint32_t h = 0; h < hp->n_heads; h++) {
    const float *q = s->q + h * hp->head_dim;
    uint32_t kv_head_offset = (h / heads_per_kv) * hp->head_dim;
    for (int t = first; t <= pos; t++) {
      const float *k = s->key_cache + layer_base + (uint64_t)t * hp->kv_dim + kv_head_offset;
      double dot = 0;
      for (uint32_t i = 0; i < hp->head_dim; i++) dot += (double)q[i] * k[i];
      s->att[t - first] = (float)dot * inv_sqrt_hd;
      if (hp->gemma2) s->att[t - first] = (float)(hp->attn_softcap * tanh(s->att[t - first] / hp->attn_softcap));
    }
    softmax(s->att, (uint32_t)(pos - first) + 1);
    float *out = s->xb2 + h * hp->head_dim;
    for (uint32_t i = 0; i < hp->head_dim; i++) {
      double sum = 0;
      for (int t = first; t <= pos; t++)
        sum += (double)s->att[t - first] *
               s->value_cache[layer_base + (uint64_t)t * hp->kv_dim + kv_head_offset + i];
      out[i] = (float)sum;
    }
  }
}

/* xb = the Mixture-of-Experts FFN of xb, as llama.cpp's build_moe_ffn computes it for
 * llama and qwen3moe (softmax gating, weights normalized, silu): the router's softmax over
 * the experts, the n_expert_used most probable (ties to the lower index) in descending
 * order, their probabilities divided by their sum (at least 2^-14), and the sum, in that
 * order, of each one's SwiGLU FFN output times its weight. */
static void moe_ffn(m64_oracle *o, const layer_weights *lw) {
  const hyperparams *hp = &o->hp;
  run_state *s = &o->s;
  const uint32_t n_exp = hp->n_expert, k_used = hp->n_expert_used, f = hp->expert_ffn;
  matvec(s->probs, &lw->router, s->xb, hp->dim, n_exp, o->row);
  softmax(s->probs, n_exp);
  uint32_t chosen[256];
  float weight[256], sum = 0;
  for (uint32_t k = 0; k < k_used; k++) { /* selection: the best of those not yet taken */
    uint32_t best = n_exp;
    for (uint32_t x = 0; x < n_exp; x++) {
      int taken = 0;
      for (uint32_t j = 0; j < k; j++) taken |= chosen[j] == x;
      if (!taken && (best == n_exp || s->probs[x] > s->probs[best])) best = x;
    }
    chosen[k] = best;
    weight[k] = s->probs[best];
    sum += weight[k];
  }
  if (sum < 6.103515625e-5f) sum = 6.103515625e-5f; /* llama.cpp's clamp: no division by ~0 */
  memset(s->moe_out, 0, hp->dim * sizeof(float));
  for (uint32_t k = 0; k < k_used; k++) {
    const matrix gate = expert(&lw->gate_exps, chosen[k], f), up = expert(&lw->up_exps, chosen[k], f),
                 down = expert(&lw->down_exps, chosen[k], hp->dim);
    matvec(s->gate, &gate, s->xb, hp->dim, f, o->row);
    matvec(s->up, &up, s->xb, hp->dim, f, o->row);
    for (uint32_t i = 0; i < f; i++) s->gate[i] = silu(s->gate[i]) * s->up[i];
    matvec(s->expert_out, &down, s->gate, f, hp->dim, o->row);
    const float w = weight[k] / sum;
    for (uint32_t i = 0; i < hp->dim; i++) s->moe_out[i] += s->expert_out[i] * w;
  }
  memcpy(s->xb, s->moe_out, hp->dim * sizeof(float));
}

const float *m64_oracle_forward(m64_oracle *o, int token, int pos) {
  const hyperparams *hp = &o->hp;
  const weights *w = &o->w;
  run_state *s = &o->s;
  if (token < 0 || (uint32_t)token >= hp->n_vocab || pos < 0 || (uint32_t)pos >= hp->n_ctx)
    return NULL;

  m64_ref_dequantize_row(w->token_embd.type, w->token_embd.data + (uint64_t)token * w->token_embd.row_bytes,
                         s->x, hp->dim);
  if (hp->gemma3)
    for (uint32_t i = 0; i < hp->dim; i++) s->x[i] *= sqrtf((float)hp->dim);

  for (uint32_t l = 0; l < hp->n_layers; l++) {
    const layer_weights *lw = &w->layers[l];

    /* attention block */
    rmsnorm(s->xb, s->x, lw->attn_norm, hp->dim, hp->norm_eps);
    if (lw->wqkv.data) { /* phi3: one product, then its q, k and v parts */
      matvec(s->qkv, &lw->wqkv, s->xb, hp->dim, hp->q_dim + 2 * hp->kv_dim, o->row);
      memcpy(s->q, s->qkv, hp->q_dim * sizeof(float));
      memcpy(s->k, s->qkv + hp->q_dim, hp->kv_dim * sizeof(float));
      memcpy(s->v, s->qkv + hp->q_dim + hp->kv_dim, hp->kv_dim * sizeof(float));
    } else {
      matvec(s->q, &lw->wq, s->xb, hp->dim, hp->q_dim, o->row);
      matvec(s->k, &lw->wk, s->xb, hp->dim, hp->kv_dim, o->row);
      matvec(s->v, &lw->wv, s->xb, hp->dim, hp->kv_dim, o->row);
    }
    if (hp->qkv_bias) {
      for (uint32_t i = 0; i < hp->q_dim; i++) s->q[i] += lw->bq[i];
      for (uint32_t i = 0; i < hp->kv_dim; i++) s->k[i] += lw->bk[i], s->v[i] += lw->bv[i];
    }
    if (hp->qk_norm) { /* per head, in place: each head's own mean square */
      for (uint32_t h = 0; h < hp->n_heads; h++)
        rmsnorm(s->q + h * hp->head_dim, s->q + h * hp->head_dim, lw->q_norm, hp->head_dim, hp->norm_eps);
      for (uint32_t h = 0; h < hp->n_kv_heads; h++)
        rmsnorm(s->k + h * hp->head_dim, s->k + h * hp->head_dim, lw->k_norm, hp->head_dim, hp->norm_eps);
    }
    const int slides = sliding(hp, l);
    const double base = slides && !hp->gemma2 ? hp->rope_base_swa : hp->rope_base;
    const double scale = slides && !hp->gemma2 ? 1.0 : hp->rope_scale;
    rope(s->q, hp->n_heads, hp, w->rope_freqs, pos, base, scale);
    rope(s->k, hp->n_kv_heads, hp, w->rope_freqs, pos, base, scale);
    if (hp->gemma3)
      for (uint32_t i = 0; i < hp->q_dim; i++) s->q[i] *= hp->q_scale;
    uint64_t slot = ((uint64_t)l * hp->n_ctx + (uint64_t)pos) * hp->kv_dim;
    memcpy(s->key_cache + slot, s->k, hp->kv_dim * sizeof(float));
    memcpy(s->value_cache + slot, s->v, hp->kv_dim * sizeof(float));
    attention(o, l, pos, hp->gemma2 || hp->gemma3 ? (slides ? hp->window : 0) : hp->window);
    matvec(s->xb, &lw->wo, s->xb2, hp->q_dim, hp->dim, o->row);
    if (hp->gemma3) rmsnorm(s->xb, s->xb, lw->post_attn_norm, hp->dim, hp->norm_eps);
    for (uint32_t i = 0; i < hp->dim; i++) s->x[i] += s->xb[i];

    /* feed-forward block: x += W_down (silu(W_gate xb) * W_up xb) */
    rmsnorm(s->xb, s->x, lw->ffn_norm, hp->dim, hp->norm_eps);
    if (hp->n_expert) {
      moe_ffn(o, lw);
      for (uint32_t i = 0; i < hp->dim; i++) s->x[i] += s->xb[i];
      continue;
    }
    if (hp->fused) { /* phi3: one product of 2 ffn rows, the gate's first */
      matvec(s->gate_up, &lw->w_gate_up, s->xb, hp->dim, 2 * hp->ffn, o->row);
      memcpy(s->gate, s->gate_up, hp->ffn * sizeof(float));
      memcpy(s->up, s->gate_up + hp->ffn, hp->ffn * sizeof(float));
    } else {
      matvec(s->gate, &lw->w_gate, s->xb, hp->dim, hp->ffn, o->row);
      matvec(s->up, &lw->w_up, s->xb, hp->dim, hp->ffn, o->row);
    }
    for (uint32_t i = 0; i < hp->ffn; i++)
      s->gate[i] = (hp->gemma3 ? gelu(s->gate[i]) : silu(s->gate[i])) * s->up[i];
    matvec(s->xb, &lw->w_down, s->gate, hp->ffn, hp->dim, o->row);
    if (hp->gemma3) rmsnorm(s->xb, s->xb, lw->post_ffw_norm, hp->dim, hp->norm_eps);
    for (uint32_t i = 0; i < hp->dim; i++) s->x[i] += s->xb[i];
  }

  rmsnorm(s->xb, s->x, w->output_norm, hp->dim, hp->norm_eps);
  matvec(s->logits, &w->output, s->xb, hp->dim, hp->n_vocab, o->row);
  if (hp->gemma2)
    for (uint32_t i = 0; i < hp->n_vocab; i++)
      s->logits[i] = (float)(hp->final_softcap * tanh(s->logits[i] / hp->final_softcap));
  return s->logits;
}
