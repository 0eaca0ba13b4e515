/*
 * plan.c — pass 1: read the GGUF, check that m64 can run it, and lay out the image.
 *
 * Precondition: g was opened by m64_gguf_open (structurally valid).
 * Result: hyperparameters, and every tensor assigned to a layer (globals first, then one
 * layer per transformer block) with its offset inside that layer (m64_plan_layout).
 * Anything m64 cannot run exactly (another architecture, a quant type without a kernel,
 * an unexpected tensor or shape) stops here with a message naming it.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler_internal.h"
#include "module/kernel_types.h"

/* The architectures the forward pass (module/forward_llama.h) implements: LLaMA
 * and the models that differ from it only in these switches. */
typedef struct arch_desc {
  const char *name;
  int qkv_bias;  /* attn_q/k/v carry F32 biases (qwen2) */
  int rope_neox; /* RoPE rotates (i, i + head_dim/2) pairs, not adjacent ones */
  int qk_norm;   /* attn_q_norm/attn_k_norm: RMSNorm of each q and k head before RoPE (qwen3) */
  int fused;     /* gate and up in one ffn_up of 2*ffn rows, q/k/v in attn_qkv or apart (phi3) */
  int gemma;     /* 2, 3: Gemma 2 or 3 (read_gemma below) */
} arch_desc;
static const arch_desc ARCHS[] = {
    {"llama", 0, 0, 0, 0, 0},  {"qwen2", 1, 1, 0, 0, 0},  {"qwen3", 0, 1, 1, 0, 0}, {"phi3", 0, 1, 0, 1, 0},
    {"gemma2", 0, 1, 0, 0, 2}, {"gemma3", 0, 1, 1, 0, 3},  {"qwen3moe", 0, 1, 1, 0, 0}};
static const char *const SUPPORTED_ARCHS = "llama (with or without experts), qwen2, qwen3, qwen3moe, phi3, gemma2, gemma3";
/* Matrix types are those the module has kernels for (module/kernel_types.h). */
int m64c_type_supported(uint32_t t) {
#define X(id, sfx, name, act) if (t == id) return 1;
  M64_KERNEL_TYPES(X)
#undef X
  return 0;
}

/* K-quant matrices (Q8_K activations) are stored as row pairs (m64_formats.h): their
 * matvec takes two rows per pass, which then read one stream. token_embd stays in rows:
 * its rows are looked up one by one (and an output tied to it reads it in rows too). */
static uint32_t matrix_layout(uint32_t t, const char *name, uint64_t rows) {
  int pairs = 0;
#define X(id, sfx, nm, act) if (t == id) pairs = strcmp(act, "q8_K") == 0;
  M64_KERNEL_TYPES(X)
#undef X
  return pairs && rows >= 2 && strcmp(name, "token_embd.weight") ? M64_LAYOUT_PAIRS : M64_LAYOUT_ROWS;
}

int m64c_arch_supported(const char *name, size_t len) {
  for (size_t i = 0; i < sizeof ARCHS / sizeof ARCHS[0]; i++)
    if (len == strlen(ARCHS[i].name) && memcmp(name, ARCHS[i].name, len) == 0) return 1;
  return 0;
}
const char *m64c_supported_archs(void) { return SUPPORTED_ARCHS; }

static const char *supported_type_list(void) {
  static const char *const list = ""
#define X(id, sfx, name, act) name " "
      M64_KERNEL_TYPES(X)
#undef X
      ;
  return list;
}
const char *m64c_supported_types(void) { return supported_type_list(); }

/* Reads a required u32 hyperparameter "<arch>.<key>". */
static int arch_u32(const m64_gguf *g, const char *arch, const char *key, uint32_t *out,
                    m64_err *e) {
  char full[128];
  snprintf(full, sizeof full, "%s.%s", arch, key);
  int rc = m64_gguf_get_u32(g, full, out);
  if (rc == M64_ENOTFOUND) return m64_fail(e, M64_EFORMAT, "missing metadata key '%s'", full);
  if (rc) return m64_fail(e, M64_EFORMAT, "metadata key '%s' is not an unsigned integer", full);
  return 0;
}

/* An optional u32 "<arch>.<key>": 0 if present, else non-zero. */
static int arch_u32_or(const m64_gguf *g, const char *arch, const char *key, uint32_t *out) {
  char full[128];
  snprintf(full, sizeof full, "%s.%s", arch, key);
  return m64_gguf_get_u32(g, full, out);
}

static float arch_f32_or(const m64_gguf *g, const char *arch, const char *key, float dflt) {
  char full[128];
  float v;
  snprintf(full, sizeof full, "%s.%s", arch, key);
  return m64_gguf_get_f32(g, full, &v) == 0 ? v : dflt;
}

/* What a tensor must look like: name pattern, shape, and whether it is a matrix. */
typedef struct expected_tensor {
  const char *name;   /* inside a block: without the "blk.N." prefix */
  uint64_t ne0, ne1;  /* ne1 = 0: a vector */
  int optional;
} expected_tensor;

/* Checks tensor t (named name) against x and, layer != NO_LAYER, adds it to the layer. */
#define NO_LAYER UINT32_MAX
static int add_found(m64c_plan *p, uint32_t layer, const char *name, const m64_gguf_tensor *t,
                     const expected_tensor *x, m64_err *e) {
  const int is_matrix = x->ne1 != 0;
  const uint64_t want1 = is_matrix ? x->ne1 : 1;
  if (t->ne[0] != x->ne0 || t->ne[1] != want1 || t->ne[2] != 1 || t->ne[3] != 1 ||
      (uint32_t)t->n_dims != (is_matrix ? 2u : 1u))
    return m64_fail(e, M64_EFORMAT,
                    "tensor '%s' has shape [%llu, %llu, %llu, %llu], expected [%llu%s%llu]", name,
                    (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
                    (unsigned long long)t->ne[2], (unsigned long long)t->ne[3],
                    (unsigned long long)x->ne0, is_matrix ? ", " : "",
                    is_matrix ? (unsigned long long)x->ne1 : 0ull);
  const m64_type_info ti = m64_ggml_type_info(t->type);
  if (!is_matrix && t->type != M64_GGML_F32)
    return m64_fail(e, M64_EUNSUPPORTED, "tensor '%s' has type %s; norm weights must be F32",
                    name, ti.name ? ti.name : "?");
  if (is_matrix && !m64c_type_supported(t->type))
    return m64_fail(e, M64_EUNSUPPORTED,
                    "tensor '%s' has type %s, which m64 does not support yet (supported: %s)",
                    name, ti.name ? ti.name : "unknown", supported_type_list());
  if (layer == NO_LAYER) return 0;

  m64_tensor_entry *te = &p->tensors[p->n_tensors];
  memset(te, 0, sizeof *te);
  snprintf(te->name, sizeof te->name, "%s", name);
  te->type = t->type;
  te->n_dims = t->n_dims;
  memcpy(te->ne, t->ne, sizeof te->ne);
  te->nbytes = t->nbytes;
  if (is_matrix) te->layout = matrix_layout(t->type, name, t->ne[1]);
  p->sources[p->n_tensors] = t;
  p->layers[layer].n_tensors++;
  p->n_tensors++;
  return 0;
}

static int add_tensor(m64c_plan *p, const m64_gguf *g, uint32_t layer, const char *name,
                      const expected_tensor *x, m64_err *e) {
  const m64_gguf_tensor *t = m64_gguf_find_tensor(g, name);
  if (!t) {
    if (x->optional) return 0;
    return m64_fail(e, M64_EFORMAT, "tensor '%s' is missing", name);
  }
  return add_found(p, layer, name, t, x, e);
}

/* Rows [row0, row0 + x->ne1) of a fused matrix (phi3's attn_qkv, ffn_up), as the tensor
 * x->name of block l. Rows are stored one after another, each of whole quant blocks, so a
 * run of rows is a matrix of its own: the forward pass sees separate q, k, v, gate, up. */
static int add_rows(m64c_plan *p, uint32_t layer, const char *name, const m64_gguf_tensor *whole, uint64_t row0,
                    const expected_tensor *x, m64_err *e) {
  const uint64_t row_bytes = whole->nbytes / (whole->ne[1] * whole->ne[2]); /* ne[2]: experts */
  m64_gguf_tensor *part = &p->parts[p->n_parts];
  *part = *whole;
  snprintf(part->name, sizeof part->name, "%s", name);
  part->n_dims = 2;
  part->ne[1] = x->ne1;
  part->ne[2] = 1;
  part->n_elems = x->ne0 * x->ne1;
  part->offset += row0 * row_bytes;
  part->nbytes = x->ne1 * row_bytes;
  part->data += row0 * row_bytes;
  p->part_of[p->n_parts++] = whole;
  return add_found(p, layer, part->name, part, x, e);
}
static int add_block_rows(m64c_plan *p, uint32_t l, const m64_gguf_tensor *whole, uint64_t row0,
                          const expected_tensor *x, m64_err *e) {
  char name[M64_MAX_NAME + 1];
  snprintf(name, sizeof name, "blk.%u.%s", l, x->name);
  return add_rows(p, 1 + l, name, whole, row0, x, e);
}

/* phi3: a block's q, k, v from attn_qkv (q rows, then k, then v), or from their own
 * tensors where the file has them apart (llama.cpp takes either). */
static int add_qkv(m64c_plan *p, const m64_gguf *g, uint32_t l, m64_err *e) {
  const expected_tensor q = {"attn_q.weight", p->dim, p->q_dim, 0},
                        k = {"attn_k.weight", p->dim, p->kv_dim, 0},
                        v = {"attn_v.weight", p->dim, p->kv_dim, 0};
  char name[M64_MAX_NAME + 1];
  snprintf(name, sizeof name, "blk.%u.attn_qkv.weight", l);
  const m64_gguf_tensor *qkv = m64_gguf_find_tensor(g, name);
  int rc = 0;
  if (!qkv) {
    const expected_tensor *apart[3] = {&q, &k, &v};
    for (int i = 0; i < 3 && rc == 0; i++) {
      snprintf(name, sizeof name, "blk.%u.%s", l, apart[i]->name);
      rc = add_tensor(p, g, 1 + l, name, apart[i], e);
    }
    return rc;
  }
  const expected_tensor whole = {name, p->dim, p->q_dim + 2 * (uint64_t)p->kv_dim, 0};
  rc = add_found(p, NO_LAYER, name, qkv, &whole, e);
  if (rc == 0) rc = add_block_rows(p, l, qkv, 0, &q, e);
  if (rc == 0) rc = add_block_rows(p, l, qkv, p->q_dim, &k, e);
  if (rc == 0) rc = add_block_rows(p, l, qkv, p->q_dim + (uint64_t)p->kv_dim, &v, e);
  return rc;
}

/* phi3: gate and up are the two halves of ffn_up (2*ffn rows, no ffn_gate): the gate is
 * the first half, as llama.cpp's swiglu takes silu(first half) * second half. */
static int add_gate_up(m64c_plan *p, const m64_gguf *g, uint32_t l, m64_err *e) {
  const expected_tensor gate = {"ffn_gate.weight", p->dim, p->ffn, 0}, up = {"ffn_up.weight", p->dim, p->ffn, 0};
  char name[M64_MAX_NAME + 1];
  snprintf(name, sizeof name, "blk.%u.ffn_up.weight", l);
  const m64_gguf_tensor *t = m64_gguf_find_tensor(g, name);
  if (!t) return m64_fail(e, M64_EFORMAT, "tensor '%s' is missing", name);
  const expected_tensor whole = {name, p->dim, 2 * (uint64_t)p->ffn, 0};
  int rc = add_found(p, NO_LAYER, name, t, &whole, e);
  if (rc == 0) rc = add_block_rows(p, l, t, 0, &gate, e);
  if (rc == 0) rc = add_block_rows(p, l, t, p->ffn, &up, e);
  return rc;
}

/* Block l's experts: expert x of each 3-D ffn_{gate,up,down}_exps tensor ([cols, rows, E]:
 * x's rows follow x - 1's) becomes blk.l.ffn_{gate,up,down}.x.weight in layer
 * blk.l.exp.x, so that each expert pages in and out on its own. */
static int add_experts(m64c_plan *p, const m64_gguf *g, uint32_t l, m64_err *e) {
  static const char *const kinds[3] = {"gate", "up", "down"};
  const m64_gguf_tensor *whole[3];
  for (int k = 0; k < 3; k++) {
    const uint64_t cols = k < 2 ? p->dim : p->ffn, rows = k < 2 ? p->ffn : p->dim;
    char name[M64_MAX_NAME + 1];
    snprintf(name, sizeof name, "blk.%u.ffn_%s_exps.weight", l, kinds[k]);
    const m64_gguf_tensor *t = whole[k] = m64_gguf_find_tensor(g, name);
    if (!t) {
      char one[M64_MAX_NAME + 1];
      snprintf(one, sizeof one, "blk.%u.ffn_%s.0.weight", l, kinds[k]);
      if (m64_gguf_find_tensor(g, one))
        return m64_fail(e, M64_EUNSUPPORTED,
                        "tensor '%s': experts stored one tensor each (an older GGUF layout) are not supported; "
                        "convert the model again with a current llama.cpp", one);
      return m64_fail(e, M64_EFORMAT, "tensor '%s' is missing", name);
    }
    if (t->n_dims != 3 || t->ne[0] != cols || t->ne[1] != rows || t->ne[2] != p->n_expert || t->ne[3] != 1)
      return m64_fail(e, M64_EFORMAT, "tensor '%s' has shape [%llu, %llu, %llu, %llu], expected [%llu, %llu, %u]", name,
                      (unsigned long long)t->ne[0], (unsigned long long)t->ne[1], (unsigned long long)t->ne[2],
                      (unsigned long long)t->ne[3], (unsigned long long)cols, (unsigned long long)rows, p->n_expert);
  }
  for (uint32_t x = 0; x < p->n_expert; x++) {
    m64_layer_entry *L = &p->layers[1 + p->n_blocks + l * p->n_expert + x];
    snprintf(L->name, sizeof L->name, "blk.%u.exp.%u", l, x);
    L->first_tensor = p->n_tensors;
    for (int k = 0; k < 3; k++) {
      const uint64_t rows = k < 2 ? p->ffn : p->dim;
      const expected_tensor want = {"", k < 2 ? p->dim : p->ffn, rows, 0};
      char name[M64_MAX_NAME + 1];
      snprintf(name, sizeof name, "blk.%u.ffn_%s.%u.weight", l, kinds[k], x);
      int rc = add_rows(p, 1 + p->n_blocks + l * p->n_expert + x, name, whole[k], x * rows, &want, e);
      if (rc) return rc;
    }
  }
  return 0;
}

int m64c_plan_find(const m64c_plan *p, uint32_t layer, const char *name) {
  const m64_layer_entry *L = &p->layers[layer];
  for (uint32_t i = 0; i < L->n_tensors; i++)
    if (strcmp(p->tensors[L->first_tensor + i].name, name) == 0) return (int)(L->first_tensor + i);
  return -1;
}

void m64c_plain_text(char *s) {
  for (char *c = s; *c; c++)
    if ((unsigned char)*c < 0x20 || *c == 0x7f || (*c == '/' && c > s && c[-1] == '*')) *c = '?';
}

/* Gemma 2 and 3, as llama.cpp reads them: sliding-window layers (every swa_period-th layer,
 * counted from 1, attends to all positions; the others to the last sliding_window
 * positions), q scaled by 1/sqrt(head size) before attention (by 1/sqrt(dim / heads) in
 * the 27Bs, which llama.cpp tells by block count: 46 in Gemma 2, 62 in Gemma 3).
 * Gemma 3: every 6th layer global unless attention.sliding_window_pattern says, the
 * sliding ones with their own RoPE base (rope.freq_base_swa, 10000 when absent) and no
 * rope scaling. Gemma 2: every 2nd layer global (the window 4096 when absent), one RoPE
 * for all, and attention scores and logits soft-capped (c tanh(x / c); c 50 and 30 when
 * absent). */
static int read_gemma(const m64_gguf *g, m64c_plan *p, m64_err *e) {
  const char *a = p->arch;
  char key[128];
  p->embed_scale = sqrtf((float)p->dim);
  p->q_scale = p->n_blocks == (p->gemma == 2 ? 46u : 62u) ? 1.0f / sqrtf((float)(p->dim / p->n_heads))
                                                           : 1.0f / sqrtf((float)p->head_dim);
  if (p->gemma == 2) {
    uint32_t window = 4096;
    arch_u32_or(g, a, "attention.sliding_window", &window);
    p->sliding_window = window ? window : 4096;
    p->swa_period = 2;
    p->rope_base_swa = p->rope_base;
    p->rope_scale_swa = p->rope_scale;
    p->attn_softcap = arch_f32_or(g, a, "attn_logit_softcapping", 50.0f);
    p->final_softcap = arch_f32_or(g, a, "final_logit_softcapping", 30.0f);
    if (!(p->attn_softcap > 0.0f) || !(p->final_softcap > 0.0f))
      return m64_fail(e, M64_EUNSUPPORTED, "gemma2 soft-capping of %g (attention) and %g (logits): must be > 0",
                      (double)p->attn_softcap, (double)p->final_softcap);
    return 0;
  }
  snprintf(key, sizeof key, "%s.attention.sliding_window", a);
  int rc = m64_gguf_get_u32(g, key, &p->sliding_window);
  if (rc || p->sliding_window == 0) /* llama.cpp then soft-caps the logits instead */
    return m64_fail(e, M64_EUNSUPPORTED,
                    "gemma3 without a sliding window ('%s' %s) is not supported (its final-logit "
                    "soft-capping is not implemented)", key, rc ? "missing" : "is 0");
  snprintf(key, sizeof key, "%s.attention.sliding_window_pattern", a);
  rc = m64_gguf_get_u32(g, key, &p->swa_period);
  if (rc == M64_ENOTFOUND) p->swa_period = 6, rc = 0;
  if (rc)
    return m64_fail(e, M64_EUNSUPPORTED,
                    "'%s' is not one unsigned integer (a per-layer pattern is not supported)", key);
  if (p->swa_period == 0) p->swa_period = 1; /* llama.cpp: 0 means every layer slides */
  p->rope_base_swa = arch_f32_or(g, a, "rope.freq_base_swa", 10000.0f);
  p->rope_scale_swa = 1.0f;
  return 0;
}

/* Mixture of Experts (qwen3moe; llama with experts: Mixtral), as llama.cpp reads it:
 * expert_count experts per block, expert_used_count of them per token, each an FFN of
 * expert_feed_forward_length rows (qwen3moe) or feed_forward_length (llama). The expert
 * size becomes the plan's ffn: the blocks have no dense FFN. */
static int read_experts(const m64_gguf *g, m64c_plan *p, int required, m64_err *e) {
  const char *a = p->arch;
  uint32_t n = 0, used = 0, ffn;
  if (arch_u32_or(g, a, "expert_count", &n) || n == 0) {
    if (required) return m64_fail(e, M64_EFORMAT, "%s without experts ('%s.expert_count' missing or 0)", a, a);
    return 0;
  }
  if (strcmp(a, "llama") && !required)
    return m64_fail(e, M64_EUNSUPPORTED, "%s with experts is not supported (experts: llama, qwen3moe)", a);
  int rc = arch_u32(g, a, "expert_used_count", &used, e);
  if (rc) return rc;
  if (n > M64_MAX_EXPERTS || used == 0 || used > n)
    return m64_fail(e, M64_ELIMIT, "%u experts, %u used per token: m64 takes 1 <= used <= experts <= %u", n, used,
                    M64_MAX_EXPERTS);
  if ((uint64_t)p->n_blocks * (1 + n) + 1 > M64_MAX_LAYERS)
    return m64_fail(e, M64_ELIMIT, "%u blocks of %u experts: %llu paging units exceed the limit of %u", p->n_blocks, n,
                    (unsigned long long)p->n_blocks * (1 + n) + 1, M64_MAX_LAYERS);
  if (required) {
    if ((rc = arch_u32(g, a, "expert_feed_forward_length", &ffn, e))) return rc;
    if (ffn == 0 || ffn > 262144) return m64_fail(e, M64_ELIMIT, "implausible expert size %u", ffn);
    p->ffn = ffn;
  }
  uint32_t shared = 0; /* qwen2moe-style shared experts: another graph */
  if (arch_u32_or(g, a, "expert_shared_count", &shared) == 0 && shared)
    return m64_fail(e, M64_EUNSUPPORTED, "%s with %u shared experts is not supported", a, shared);
  p->n_expert = n;
  p->n_expert_used = used;
  return 0;
}

static int read_hparams(const m64_gguf *g, m64c_plan *p, m64_err *e) {
  m64_str arch;
  if (m64_gguf_get_str(g, "general.architecture", &arch))
    return m64_fail(e, M64_EFORMAT, "missing metadata key 'general.architecture'");
  const arch_desc *ad = NULL;
  for (size_t i = 0; i < sizeof ARCHS / sizeof ARCHS[0] && !ad; i++)
    if (arch.len == strlen(ARCHS[i].name) && memcmp(arch.ptr, ARCHS[i].name, arch.len) == 0)
      ad = &ARCHS[i];
  if (!ad)
    return m64_fail(e, M64_EUNSUPPORTED,
                    "architecture '%.*s' is not supported (supported: %s)",
                    (int)(arch.len > 64 ? 64 : arch.len), arch.ptr, SUPPORTED_ARCHS);
  snprintf(p->arch, sizeof p->arch, "%s", ad->name);
  p->qkv_bias = ad->qkv_bias;
  p->rope_neox = ad->rope_neox;
  p->qk_norm = ad->qk_norm;
  p->fused = ad->fused;
  p->gemma = ad->gemma;
  const char *a = p->arch; /* every hyperparameter is "<arch>.<key>" */
  m64_str name;
  if (m64_gguf_get_str(g, "general.name", &name) == 0) {
    snprintf(p->name, sizeof p->name, "%.*s", (int)(name.len > 120 ? 120 : name.len), name.ptr);
    m64c_plain_text(p->name); /* it goes into a comment of model.c and a metadata line */
  }

  int rc;
  if ((rc = arch_u32(g, a, "embedding_length", &p->dim, e))) return rc;
  if ((rc = arch_u32(g, a, "block_count", &p->n_blocks, e))) return rc;
  if ((rc = arch_u32(g, a, "feed_forward_length", &p->ffn, e))) return rc;
  if ((rc = arch_u32(g, a, "attention.head_count", &p->n_heads, e))) return rc;
  if (arch_u32_or(g, a, "attention.head_count_kv", &p->n_kv_heads)) p->n_kv_heads = p->n_heads;
  if (arch_u32_or(g, a, "context_length", &p->n_ctx_train)) p->n_ctx_train = 2048;
  p->rms_eps = arch_f32_or(g, a, "attention.layer_norm_rms_epsilon", 1e-5f);
  p->rope_base = arch_f32_or(g, a, "rope.freq_base", 10000.0f);

  if (p->dim == 0 || p->dim > 65536 || p->n_heads == 0 || p->n_heads > 1024 || p->ffn == 0 ||
      p->ffn > 262144 || p->n_blocks == 0 || p->n_blocks > M64_MAX_LAYERS - 1)
    return m64_fail(e, M64_ELIMIT, "implausible hyperparameters: dim %u, heads %u, ffn %u, blocks %u",
                    p->dim, p->n_heads, p->ffn, p->n_blocks);
  /* The head size is dim / heads unless the file says (qwen3: 128 with dim 1024 and 16
   * heads, so q is wider than the residual stream). */
  uint32_t key_len, value_len;
  const int has_key = arch_u32_or(g, a, "attention.key_length", &key_len) == 0;
  const int has_value = arch_u32_or(g, a, "attention.value_length", &value_len) == 0;
  if (p->n_kv_heads == 0 || p->n_heads % p->n_kv_heads || (!has_key && p->dim % p->n_heads))
    return m64_fail(e, M64_EFORMAT, "dim %u, heads %u, kv heads %u do not divide evenly", p->dim,
                    p->n_heads, p->n_kv_heads);
  p->head_dim = has_key ? key_len : p->dim / p->n_heads;
  if (has_value && value_len != p->head_dim)
    return m64_fail(e, M64_EUNSUPPORTED, "key head size %u and value head size %u differ", p->head_dim,
                    value_len);
  if (p->head_dim == 0 || p->head_dim > 1024 || p->head_dim % 2)
    return m64_fail(e, M64_EFORMAT, "head size %u is not an even number up to 1024", p->head_dim);
  p->q_dim = p->head_dim * p->n_heads;
  p->kv_dim = p->head_dim * p->n_kv_heads;
  if (p->q_dim > 262144)
    return m64_fail(e, M64_ELIMIT, "implausible attention width %u", p->q_dim);
  uint32_t rope_dim;
  if (arch_u32_or(g, a, "rope.dimension_count", &rope_dim) == 0 && rope_dim != p->head_dim)
    return m64_fail(e, M64_EUNSUPPORTED, "partial rotary embeddings (rope dims %u of head size %u) are not supported",
                    rope_dim, p->head_dim);
  const float scale = arch_f32_or(g, a, "rope.scaling.factor", 1.0f); /* 0 also means none */
  p->rope_scale = 1.0f;
  if (scale != 1.0f && scale != 0.0f) {
    /* gemma3's global layers: linear scaling (the type llama.cpp assumes when absent) */
    char key[128];
    m64_str type = {"linear", 6};
    snprintf(key, sizeof key, "%s.rope.scaling.type", a);
    if (m64_gguf_get_str(g, key, &type) == M64_ENOTFOUND) type = (m64_str){"linear", 6};
    const int linear = type.len == 6 && memcmp(type.ptr, "linear", 6) == 0;
    if (!ad->gemma || !linear)
      return m64_fail(e, M64_EUNSUPPORTED, "rope scaling '%.*s' (factor %g) is not supported for %s",
                      (int)(type.len > 32 ? 32 : type.len), type.ptr, (double)scale, a);
    if (!(scale > 0.0f) || scale > 1e6f)
      return m64_fail(e, M64_EFORMAT, "rope scaling factor %g", (double)scale);
    p->rope_scale = 1.0f / scale;
  }
  if (ad->gemma && (rc = read_gemma(g, p, e))) return rc;
  if ((rc = read_experts(g, p, strcmp(a, "qwen3moe") == 0, e))) return rc;

  /* Phi-3's 128k models (and Phi-4-mini) scale RoPE per dimension with LongRoPE: long or
   * short factors chosen by context, and an attention factor. Not implemented. */
  if (m64_gguf_find_tensor(g, "rope_factors_long.weight") || m64_gguf_find_tensor(g, "rope_factors_short.weight"))
    return m64_fail(e, M64_EUNSUPPORTED,
                    "%s with LongRoPE factors (rope_factors_long/short.weight: a 128k context model) is not supported yet",
                    a);
  const float attn_factor = arch_f32_or(g, a, "rope.scaling.attn_factor", 1.0f);
  if (attn_factor != 1.0f)
    return m64_fail(e, M64_EUNSUPPORTED, "rope scaling with an attention factor (%g) is not supported",
                    (double)attn_factor);
  /* A sliding window (Phi-3-mini-4k: 2047 of 4096; Phi-4 writes 0) attends to the last
   * `window` positions only. Up to that many positions it changes nothing, so the context
   * the model declares is capped there (m64run's default context, and its warning past
   * it). llama.cpp ignores phi3's window altogether. Gemma's windows are computed (a
   * layer table), not a cap. */
  uint32_t window;
  if (p->fused && arch_u32_or(g, a, "attention.sliding_window", &window) == 0 && window > 0 &&
      window < p->n_ctx_train)
    p->n_ctx_train = window;

  const m64_gguf_tensor *embd = m64_gguf_find_tensor(g, "token_embd.weight");
  if (!embd) return m64_fail(e, M64_EFORMAT, "tensor 'token_embd.weight' is missing");
  if (embd->ne[1] == 0 || embd->ne[1] > (1u << 20))
    return m64_fail(e, M64_ELIMIT, "vocabulary of %llu tokens", (unsigned long long)embd->ne[1]);
  p->n_vocab = (uint32_t)embd->ne[1];
  p->tied_output = m64_gguf_find_tensor(g, "output.weight") == NULL;
  if (ad->gemma == 2 && !p->tied_output) /* llama.cpp then refuses the file's tensor count */
    return m64_fail(e, M64_EUNSUPPORTED, "gemma2 with its own output.weight is not supported (its output is token_embd)");
  return 0;
}

/* Llama 3.1+ stores its RoPE frequency scaling as rope_freqs.weight: one divisor per
 * rotated pair. It becomes constants of model.c, not part of the image. */
static int read_rope_freqs(const m64_gguf *g, m64c_plan *p, m64_err *e) {
  const m64_gguf_tensor *t = m64_gguf_find_tensor(g, "rope_freqs.weight");
  if (!t) return 0;
  const uint32_t n = p->head_dim / 2;
  if (t->type != M64_GGML_F32 || t->n_dims != 1 || t->ne[0] != n)
    return m64_fail(e, M64_EFORMAT, "tensor 'rope_freqs.weight' must be F32 [%u] (head size / 2)", n);
  p->rope_freqs = malloc(n * sizeof *p->rope_freqs);
  if (!p->rope_freqs) return m64_fail(e, M64_ENOMEM, "out of memory");
  for (uint32_t i = 0; i < n; i++) {
    const uint8_t *b = t->data + 4 * (size_t)i;
    const uint32_t bits = b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    float f;
    memcpy(&f, &bits, 4);
    if (!(f > 0.0f) || f != f || f > 1e30f)
      return m64_fail(e, M64_EFORMAT, "rope_freqs.weight[%u] = %g is not a positive factor", i, (double)f);
    p->rope_freqs[i] = f;
  }
  p->rope_freqs_source = t;
  return 0;
}

int m64c_plan_model(const m64_gguf *g, uint64_t segment_max, m64c_plan *p, m64_err *e) {
  memset(p, 0, sizeof *p);
  int rc = read_hparams(g, p, e);
  if (rc) return rc;

  p->n_layers = p->n_blocks * (1 + p->n_expert) + 1;
  const uint32_t max_tensors = 3 + 16 * p->n_blocks + 3 * p->n_expert * p->n_blocks;
  const size_t max_parts = (5 + 3 * (size_t)p->n_expert) * p->n_blocks;
  p->layers = calloc(p->n_layers, sizeof *p->layers);
  p->tensors = calloc(max_tensors, sizeof *p->tensors);
  p->sources = calloc(max_tensors, sizeof *p->sources);
  p->parts = calloc(max_parts, sizeof *p->parts);
  p->part_of = calloc(max_parts, sizeof *p->part_of);
  if (!p->layers || !p->tensors || !p->sources || !p->parts || !p->part_of) {
    m64c_plan_free(p);
    return m64_fail(e, M64_ENOMEM, "out of memory planning %u layers", p->n_layers);
  }

  /* Layer 0: globals. */
  const expected_tensor globals[] = {
      {"token_embd.weight", p->dim, p->n_vocab, 0},
      {"output_norm.weight", p->dim, 0, 0},
      {"output.weight", p->dim, p->n_vocab, 1},
  };
  snprintf(p->layers[0].name, sizeof p->layers[0].name, "globals");
  for (size_t i = 0; i < 3 && rc == 0; i++) rc = add_tensor(p, g, 0, globals[i].name, &globals[i], e);
  if (rc == 0) rc = read_rope_freqs(g, p, e);

  /* Layers 1..N: transformer blocks (the biases only where the architecture has them). */
  expected_tensor block[16] = {
      {"attn_norm.weight", p->dim, 0, 0},       {"attn_q.weight", p->dim, p->q_dim, 0},
      {"attn_k.weight", p->dim, p->kv_dim, 0},  {"attn_v.weight", p->dim, p->kv_dim, 0},
      {"attn_output.weight", p->q_dim, p->dim, 0}, {"ffn_norm.weight", p->dim, 0, 0},
      {"ffn_gate.weight", p->dim, p->ffn, 0},   {"ffn_up.weight", p->dim, p->ffn, 0},
      {"ffn_down.weight", p->ffn, p->dim, 0},
  };
  uint32_t per_block = 9;
  if (p->qkv_bias) {
    block[per_block++] = (expected_tensor){"attn_q.bias", p->q_dim, 0, 0};
    block[per_block++] = (expected_tensor){"attn_k.bias", p->kv_dim, 0, 0};
    block[per_block++] = (expected_tensor){"attn_v.bias", p->kv_dim, 0, 0};
  }
  if (p->qk_norm) { /* one weight per head dimension, shared by every head */
    block[per_block++] = (expected_tensor){"attn_q_norm.weight", p->head_dim, 0, 0};
    block[per_block++] = (expected_tensor){"attn_k_norm.weight", p->head_dim, 0, 0};
  }
  if (p->gemma) { /* RMSNorms of the attention and feed-forward outputs */
    block[per_block++] = (expected_tensor){"post_attention_norm.weight", p->dim, 0, 0};
    block[per_block++] = (expected_tensor){"post_ffw_norm.weight", p->dim, 0, 0};
  }
  if (p->n_expert) /* the router in place of the dense FFN: its experts are layers of their own */
    block[6] = (expected_tensor){"ffn_gate_inp.weight", p->dim, p->n_expert, 0};
  for (uint32_t l = 0; l < p->n_blocks && rc == 0; l++) {
    m64_layer_entry *L = &p->layers[1 + l];
    snprintf(L->name, sizeof L->name, "blk.%u", l);
    L->first_tensor = p->n_tensors;
    for (uint32_t i = 0; i < per_block && rc == 0; i++) {
      char name[M64_MAX_NAME + 1];
      snprintf(name, sizeof name, "blk.%u.%s", l, block[i].name);
      if (p->fused && i == 1) rc = add_qkv(p, g, l, e);          /* in place of attn_q/k/v */
      else if (p->fused && i == 6) rc = add_gate_up(p, g, l, e); /* of ffn_gate/up */
      else if (p->n_expert && (i == 7 || i == 8)) continue;
      else if (!p->fused || (i != 2 && i != 3 && i != 7)) rc = add_tensor(p, g, 1 + l, name, &block[i], e);
    }
  }
  for (uint32_t l = 0; l < p->n_blocks && p->n_expert && rc == 0; l++) rc = add_experts(p, g, l, e);
  /* Every tensor in the file must be one the forward pass uses: an unknown tensor
   * (rope_freqs, biases, ...) would change the math if silently ignored. */
  for (uint64_t i = 0; i < m64_gguf_n_tensors(g) && rc == 0; i++) {
    const m64_gguf_tensor *t = m64_gguf_tensor_at(g, i);
    int used = 0;
    for (uint32_t j = 0; j < p->n_tensors && !used; j++) used = p->sources[j] == t;
    for (uint32_t j = 0; j < p->n_parts && !used; j++) used = p->part_of[j] == t;
    used = used || t == p->rope_freqs_source;
    if (!used)
      rc = m64_fail(e, M64_EUNSUPPORTED,
                    "tensor '%s' is not part of the %s architecture m64 implements", t->name, p->arch);
  }
  if (rc == 0)
    rc = m64_plan_layout(p->layers, p->n_layers, p->tensors, p->n_tensors, segment_max,
                         &p->n_segments, p->segment_sizes, e);
  if (rc) {
    m64c_plan_free(p);
    return rc;
  }
  for (uint32_t i = 0; i < p->n_tensors; i++) p->total_bytes += p->tensors[i].nbytes;
  return 0;
}

void m64c_plan_free(m64c_plan *p) {
  free(p->rope_freqs);
  p->rope_freqs = NULL;
  free(p->layers);
  free(p->tensors);
  free(p->sources);
  free(p->parts);
  free(p->part_of);
  p->parts = NULL;
  p->part_of = NULL;
  p->layers = NULL;
  p->tensors = NULL;
  p->sources = NULL;
}
