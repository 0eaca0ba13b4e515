/*
 * codegen.c — pass 2: write model.c, the model-specific half of the module.
 *
 * Precondition: a plan from m64c_plan_model (types and shapes already checked).
 * model.c reads top to bottom as: the shapes as constants; one kernel per
 * (quant type, rows x cols) the model uses; the weight tables (where each tensor sits
 * inside its layer, and which kernel multiplies it); then the architecture's forward
 * pass (module/forward_llama.h), compiled against those constants.
 */
#include <stdio.h>
#include <string.h>

#include "compiler_internal.h"
#include "module/kernel_types.h"

/* Lower-case type name used in kernel identifiers ("q8_0"), from kernel_types.h. */
static const char *kernel_suffix(uint32_t type) {
#define X(id, sfx, name, act) if (type == id) return #sfx;
  M64_KERNEL_TYPES(X)
#undef X
  return "unsupported";
}

typedef struct kernel_use { uint32_t type, layout; uint64_t rows, cols; } kernel_use;

/* The kernel family of a type in a block layout: "q4_K", or "q4_K_pairs" for the
 * row-pair layout (kernels_kquants.h). */
typedef struct family { char s[32]; } family;
static family kernel_family(uint32_t type, uint32_t layout) {
  family f;
  snprintf(f.s, sizeof f.s, "%s%s", kernel_suffix(type), layout == M64_LAYOUT_PAIRS ? "_pairs" : "");
  return f;
}

static void kernel_name(char *buf, size_t n, const kernel_use *k) {
  snprintf(buf, n, "mm_%s_%llux%llu", kernel_family(k->type, k->layout).s, (unsigned long long)k->rows,
           (unsigned long long)k->cols);
}

/* The distinct matrix kernels of the plan, in tensor order: keyed by (type, rows, cols)
 * with per_shape set, else by (type, cols) (the slices). Returns how many (<= cap). */
static size_t distinct_kernels(const m64c_plan *p, int per_shape, kernel_use *out, size_t cap) {
  size_t n = 0;
  for (uint32_t i = 0; i < p->n_tensors && n < cap; i++) {
    const m64_tensor_entry *t = &p->tensors[i];
    if (t->n_dims != 2) continue;
    kernel_use k = {t->type, t->layout, per_shape ? t->ne[1] : 0, t->ne[0]};
    int dup = 0;
    for (size_t j = 0; j < n && !dup; j++)
      dup = out[j].type == k.type && out[j].layout == k.layout && out[j].rows == k.rows && out[j].cols == k.cols;
    if (!dup) out[n++] = k;
  }
  return n;
}

/* Emits each distinct (type, cols) slice and (type, rows, cols) product once. A slice
 * runs the kernel family on some rows (any thread) for one input or, with its prepared
 * activations, for several (kernels_batch.h); a product splits its rows across threads
 * through run_matmul (model.h). */
static void emit_kernels(const m64c_plan *p, FILE *out) {
  kernel_use k[64];
  fprintf(out, "/* ---- kernels: one per (quant type, rows x cols) in this model ---- */\n");
  const size_t n_slices = distinct_kernels(p, 0, k, sizeof k / sizeof k[0]);
  for (size_t i = 0; i < n_slices; i++) {
    const family f = kernel_family(k[i].type, k[i].layout);
    const char *s = f.s;
    const unsigned long long c = (unsigned long long)k[i].cols;
    fprintf(out,
            "static void vec_%s_%llu(float *out, const uint8_t *w, const float *x, uint8_t *scratch,\n"
            "    uint32_t rows) {\n  matvec_%s(out, w, x, scratch, rows, %lluu);\n}\n"
            "static void act_%s_%llu(uint8_t *xq, const float *x) { act_%s(xq, x, %lluu); }\n"
            "static void mat_%s_%llu(float *out, uint32_t out_stride, const uint8_t *w, const uint8_t *xq,\n"
            "    uint32_t rows, uint32_t n) {\n  matmat_%s(out, out_stride, w, xq, rows, %lluu, n);\n}\n"
            "static const Slice slice_%s_%llu = {vec_%s_%llu, act_%s_%llu, mat_%s_%llu};\n",
            s, c, s, c, s, c, s, c, s, c, s, c, s, c, s, c, s, c, s, c);
  }
  const size_t n_products = distinct_kernels(p, 1, k, sizeof k / sizeof k[0]);
  for (size_t i = 0; i < n_products; i++) {
    char name[64];
    uint64_t row_bytes = 0;
    m64_ggml_row_bytes(k[i].type, k[i].cols, &row_bytes);
    kernel_name(name, sizeof name, &k[i]);
    fprintf(out,
            "static void %s(float *out, const uint8_t *w, const float *x, uint32_t n) {\n"
            "  run_matmul(&slice_%s_%llu, out, w, x, %lluu, %lluu, %lluu, n);\n}\n",
            name, kernel_family(k[i].type, k[i].layout).s, (unsigned long long)k[i].cols, (unsigned long long)k[i].rows,
            (unsigned long long)row_bytes, (unsigned long long)k[i].cols);
  }
  const m64_tensor_entry *embd = &p->tensors[m64c_plan_find(p, 0, "token_embd.weight")];
  fprintf(out,
          "static void embed_row(float *out, const uint8_t *row) { dequant_row_%s(out, row, DIM); }\n\n",
          kernel_suffix(embd->type));
}

size_t m64c_kernel_list(const m64c_plan *p, char *buf, size_t cap) {
  kernel_use k[64];
  const size_t n = distinct_kernels(p, 1, k, sizeof k / sizeof k[0]);
  size_t len = 0;
  buf[0] = 0;
  for (size_t i = 0; i < n; i++) {
    char name[64];
    kernel_name(name, sizeof name, &k[i]);
    int w = snprintf(buf + len, cap - len, "%s%s", len ? " " : "", name);
    if (w < 0 || (size_t)w >= cap - len) break;
    len += (size_t)w;
  }
  return n;
}

static void emit_matrix(const m64c_plan *p, FILE *out, const char *field, int idx) {
  const m64_tensor_entry *t = &p->tensors[idx];
  char name[64];
  const kernel_use k = {t->type, t->layout, t->ne[1], t->ne[0]};
  kernel_name(name, sizeof name, &k);
  fprintf(out, "    .%s = {%llu, %s},\n", field, (unsigned long long)t->offset, name);
}

int m64c_emit_model_c(const m64c_plan *p, const char *gguf_name, FILE *out, m64_err *e) {
  fprintf(out,
          "/*\n * model.c — generated by m64c from %s. Do not edit; regenerate instead.\n"
          " * %s: %s, %u blocks, dim %u, %u heads (%u kv), ffn %u, vocab %u.\n */\n",
          gguf_name, p->name[0] ? p->name : "(unnamed)", p->arch, p->n_blocks, p->dim, p->n_heads,
          p->n_kv_heads, p->ffn, p->n_vocab);
  uint32_t max_cols = p->dim > p->ffn ? p->dim : p->ffn; /* the widest matrix row */
  if (p->q_dim > max_cols) max_cols = p->q_dim;
  fprintf(out,
          "#define DIM %uu\n#define N_LAYERS %uu\n#define N_HEADS %uu\n#define N_KV_HEADS %uu\n"
          "#define HEAD_DIM %uu\n#define Q_DIM %uu\n#define KV_DIM %uu\n#define FFN %uu\n#define VOCAB %u\n"
          "#define MAX_COLS %uu\n#define N_CTX_TRAIN %uu\n"
          "#define RMS_EPS %af /* %g, exact as a hex float */\n"
          "#define ROPE_BASE %af /* %g */\n"
          "#define QKV_BIAS %d  /* q, k, v projections add F32 biases */\n"
          "#define ROPE_NEOX %d /* RoPE rotates (i, i + HEAD_DIM/2), not (2i, 2i + 1) */\n"
          "#define QK_NORM %d   /* each q and k head is RMS-normed before RoPE */\n",
          p->dim, p->n_blocks, p->n_heads, p->n_kv_heads, p->head_dim, p->q_dim, p->kv_dim, p->ffn,
          p->n_vocab, max_cols, p->n_ctx_train, (double)p->rms_eps,
          (double)p->rms_eps, (double)p->rope_base, (double)p->rope_base, p->qkv_bias, p->rope_neox,
          p->qk_norm);
  if (p->gemma) /* Gemma: switches read by forward_llama.h only where defined */
    fprintf(out,
            "#define EMBED_SCALE %af /* %g: token embeddings times sqrt(DIM) */\n"
            "#define Q_SCALE %af /* %g: q times this, attention scores unscaled */\n"
            "#define POST_NORMS 1 /* attention and FFN outputs RMS-normed before the residual add */\n"
            "#define FFN_GELU 1   /* gelu(gate) * up (tanh approximation), not silu */\n",
            (double)p->embed_scale, (double)p->embed_scale, (double)p->q_scale, (double)p->q_scale);
  if (p->attn_softcap > 0.0f)
    fprintf(out, "#define ATTN_SOFTCAP %af /* %g: scores c tanh(s / c) */\n"
                 "#define FINAL_SOFTCAP %af /* %g: logits likewise */\n",
            (double)p->attn_softcap, (double)p->attn_softcap, (double)p->final_softcap, (double)p->final_softcap);
  if (p->n_expert) /* Mixture of Experts: FFN is each expert's size */
    fprintf(out,
            "#define N_EXPERT %uu      /* experts per block, each a layer of its own */\n"
            "#define N_EXPERT_USED %uu /* experts the router picks per token */\n",
            p->n_expert, p->n_expert_used);
  if (p->rope_freqs) { /* Llama 3.1+ frequency scaling: theta_i / factor_i */
    fprintf(out, "#define ROPE_FREQ_FACTORS 1\nstatic const float ROPE_FACTOR[HEAD_DIM / 2] = {");
    for (uint32_t i = 0; i < p->head_dim / 2; i++)
      fprintf(out, "%s%s%af", i ? "," : "", i % 4 ? " " : "\n    ", (double)p->rope_freqs[i]);
    fprintf(out, "};\n");
  }
  fprintf(out, "\n#include \"model.h\"\n\n");
  if (p->sliding_window) { /* per layer: window (0 = all positions), RoPE base and angle factor */
    fprintf(out, "#define SLIDING_WINDOW %uu\n", p->sliding_window);
    fprintf(out, "static const LayerAttention LAYER_ATTN[N_LAYERS] = {\n");
    for (uint32_t l = 0; l < p->n_blocks; l++) {
      const int slides = l % p->swa_period < p->swa_period - 1;
      fprintf(out, "    {%uu, %af, %af}, /* blk.%u: %s */\n", slides ? p->sliding_window : 0,
              (double)(slides ? p->rope_base_swa : p->rope_base), (double)(slides ? p->rope_scale_swa : p->rope_scale),
              l, slides ? "sliding" : "global");
    }
    fprintf(out, "};\n\n");
  }

  emit_kernels(p, out);

  const int embd = m64c_plan_find(p, 0, "token_embd.weight");
  const int onorm = m64c_plan_find(p, 0, "output_norm.weight");
  const int output = p->tied_output ? embd : m64c_plan_find(p, 0, "output.weight");
  if (embd < 0 || onorm < 0 || output < 0)
    return m64_fail(e, M64_EFORMAT, "internal: globals missing from the plan");
  uint64_t row_bytes;
  if (m64_ggml_row_bytes(p->tensors[embd].type, p->dim, &row_bytes))
    return m64_fail(e, M64_EFORMAT, "token_embd.weight: bad row size");

  fprintf(out, "/* ---- weights: offsets inside each layer of the image ---- */\n");
  fprintf(out, "static const GlobalWeights GLOBALS = {\n    .token_embd = %llu,\n"
               "    .token_row_bytes = %llu,\n    .embed_row = embed_row,\n"
               "    .output_norm = {%llu},\n",
          (unsigned long long)p->tensors[embd].offset, (unsigned long long)row_bytes,
          (unsigned long long)p->tensors[onorm].offset);
  if (p->tied_output) fprintf(out, "    /* output tied to token_embd */\n");
  emit_matrix(p, out, "output", output);
  fprintf(out, "};\n\nstatic const BlockWeights BLOCKS[N_LAYERS] = {\n");

  /* need: 0 every architecture, 1 with q/k/v biases, 2 with q/k norms, 3 gemma's post-norms,
   * 4 an MoE block's router */
  static const struct { const char *field, *tensor; int matrix, need; } fields[] = {
      {"attn_norm", "attn_norm.weight", 0, 0}, {"wq", "attn_q.weight", 1, 0},
      {"wk", "attn_k.weight", 1, 0},           {"wv", "attn_v.weight", 1, 0},
      {"wo", "attn_output.weight", 1, 0},      {"ffn_norm", "ffn_norm.weight", 0, 0},
      {"w_gate", "ffn_gate.weight", 1, 0},     {"w_up", "ffn_up.weight", 1, 0},
      {"w_down", "ffn_down.weight", 1, 0},     {"bq", "attn_q.bias", 0, 1},
      {"bk", "attn_k.bias", 0, 1},             {"bv", "attn_v.bias", 0, 1},
      {"q_norm", "attn_q_norm.weight", 0, 2},  {"k_norm", "attn_k_norm.weight", 0, 2},
      {"post_attn_norm", "post_attention_norm.weight", 0, 3},
      {"post_ffw_norm", "post_ffw_norm.weight", 0, 3},
      {"router", "ffn_gate_inp.weight", 1, 4},
  };
  const size_t n_fields = sizeof fields / sizeof fields[0];
  for (uint32_t l = 0; l < p->n_blocks; l++) {
    fprintf(out, "  { /* blk.%u */\n", l);
    for (size_t f = 0; f < n_fields; f++) {
      if ((fields[f].need == 1 && !p->qkv_bias) || (fields[f].need == 2 && !p->qk_norm) ||
          (fields[f].need == 3 && !p->gemma) || (fields[f].need == 4 && !p->n_expert) ||
          (p->n_expert && fields[f].field[0] == 'w' && fields[f].field[1] == '_')) /* w_gate/up/down: experts */
        continue;
      char name[M64_MAX_NAME + 1];
      snprintf(name, sizeof name, "blk.%u.%s", l, fields[f].tensor);
      int idx = m64c_plan_find(p, 1 + l, name);
      if (idx < 0) return m64_fail(e, M64_EFORMAT, "internal: %s missing from the plan", name);
      if (fields[f].matrix)
        emit_matrix(p, out, fields[f].field, idx);
      else
        fprintf(out, "    .%s = {%llu},\n", fields[f].field,
                (unsigned long long)p->tensors[idx].offset);
    }
    fprintf(out, "  },\n");
  }
  fprintf(out, "};\n\n");
  if (p->n_expert) { /* a block's experts share types and offsets: one entry per block */
    fprintf(out, "/* offsets inside each of a block's expert layers (blk.N.exp.X) */\n"
                 "static const ExpertWeights EXPERTS[N_LAYERS] = {\n");
    static const char *const kinds[3] = {"gate", "up", "down"};
    for (uint32_t l = 0; l < p->n_blocks; l++) {
      fprintf(out, "  { /* blk.%u.exp.* */\n", l);
      for (int k = 0; k < 3; k++) {
        char name[M64_MAX_NAME + 1];
        snprintf(name, sizeof name, "blk.%u.ffn_%s.0.weight", l, kinds[k]);
        const int idx = m64c_plan_find(p, 1 + p->n_blocks + l * p->n_expert, name);
        if (idx < 0) return m64_fail(e, M64_EFORMAT, "internal: %s missing from the plan", name);
        for (uint32_t x = 1; x < p->n_expert; x++) { /* the layout gives every expert the same */
          const m64_layer_entry *L = &p->layers[1 + p->n_blocks + l * p->n_expert + x];
          if (p->tensors[L->first_tensor + k].offset != p->tensors[idx].offset)
            return m64_fail(e, M64_EFORMAT, "internal: blk.%u's experts are laid out differently", l);
        }
        emit_matrix(p, out, kinds[k], idx);
      }
      fprintf(out, "  },\n");
    }
    fprintf(out, "};\n\n");
  }
  /* every supported architecture is LLaMA with the switches above */
  fprintf(out, "/* ---- the forward pass ---- */\n#include \"forward_llama.h\"\n");
  if (ferror(out)) return m64_fail(e, M64_EIO, "writing model.c failed");
  return 0;
}
