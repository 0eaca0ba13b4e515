/*
 * forward_llama.h — the LLaMA forward pass (LLaMA 1/2/3, Mistral, TinyLlama, Qwen2,
 * which adds q/k/v biases and neox RoPE, and Qwen3, which has neox RoPE, its own head size
 * and a per-head RMSNorm of q and k; Phi-3/Phi-4, whose fused q/k/v and gate/up tensors the
 * compiler splits into these matrices; Gemma 3, which adds to Qwen3's an embedding scale,
 * RMSNorms of the attention and FFN outputs, a GELU FFN, a query scale and sliding-window
 * layers, and Gemma 2: Gemma 3 without Q/K norms, with soft-capped attention scores and
 * logits; Mixture-of-Experts FFNs, where N_EXPERT is defined: Qwen3-MoE, Mixtral; grouped-query
 * attention). Included once by a
 * generated model.c, after it has defined the shapes (DIM, N_LAYERS, N_HEADS, N_KV_HEADS,
 * HEAD_DIM, Q_DIM, KV_DIM, FFN, VOCAB, MAX_COLS, RMS_EPS, ROPE_BASE, N_CTX_TRAIN), the
 * architecture's switches (QKV_BIAS, ROPE_NEOX, QK_NORM, optional ROPE_FREQ_FACTORS, and
 * Gemma's EMBED_SCALE, Q_SCALE, POST_NORMS, FFN_GELU, SLIDING_WINDOW with its LAYER_ATTN
 * table, ATTN_SOFTCAP, FINAL_SOFTCAP) and the weight tables GLOBALS and BLOCKS[N_LAYERS].
 * Every shape is a compile-time constant, so each loop below is specialized to the model.
 *
 * Layers are paged: m64_host_layer_acquire(L) returns where layer L's weights are in the
 * workspace right now; layer 0 is GLOBALS, layer 1 + l is block l, and in an MoE model
 * layer 1 + N_LAYERS + l * N_EXPERT + x is block l's expert x (EXPERTS[l] gives its offsets).
 *
 * The pass runs n tokens at consecutive positions at once (n = 1 when decoding; up to
 * MAX_BATCH for a prompt), so that each weight matrix is read once for all n tokens.
 */

#ifndef POST_NORMS
#define POST_NORMS 0
#endif
#ifndef FFN_GELU
#define FFN_GELU 0
#endif
#ifdef ATTN_SOFTCAP /* gemma2: q arrives scaled; the score s becomes c tanh(s / c) */
#define ATTN_SCALE (1.0f / ATTN_SOFTCAP)
#elif defined Q_SCALE /* q arrives scaled (gemma): the scores are not scaled again */
#define ATTN_SCALE 1.0f
#else
#define ATTN_SCALE (1.0f / mm_sqrtf((float)HEAD_DIM))
#endif
/* Per block: the positions a token attends to (0: all up to its own), RoPE base and
 * angle factor; the same for every block unless the model has sliding-window layers. */
#ifdef SLIDING_WINDOW
#define LAYER_WINDOW(l) LAYER_ATTN[l].window
#define LAYER_ROPE_BASE(l) LAYER_ATTN[l].rope_base
#define LAYER_ROPE_SCALE(l) LAYER_ATTN[l].rope_scale
#else
#define LAYER_WINDOW(l) 0u
#define LAYER_ROPE_BASE(l) ROPE_BASE
#define LAYER_ROPE_SCALE(l) 1.0f
#endif

/* The mutable state: activations of up to MAX_BATCH tokens (one row each) and the KV
 * cache (f16, as llama.cpp's default). */
typedef struct RunState {
  uint32_t n_ctx;
  float *x;       /* (batch, dim) the residual stream */
  float *xb;      /* (batch, dim) normed input of a sub-block */
  float *xb2;     /* (batch, q_dim) attention output before wo */
  float *hb;      /* (batch, ffn) gate, then silu(gate) * up */
  float *hb2;     /* (batch, ffn) up */
  float *q;       /* (batch, q_dim): n_heads heads of HEAD_DIM (Q_DIM = DIM unless the
                     GGUF gives the head size: qwen3) */
  float *k, *v;   /* (batch, kv_dim) these positions' keys and values */
  float *logits;  /* (vocab) of the last token */
  uint16_t *key_cache, *value_cache; /* (layer, n_ctx, kv_dim) */
#ifdef N_EXPERT
  float *router;  /* (batch, n_expert) the router's logits, then probabilities */
  uint32_t *chosen; /* (batch, n_expert_used) the experts each token takes, best first */
  float *weight;  /* (batch, n_expert_used) and their weights */
  float *xe, *ye; /* (batch, dim) one expert's inputs (its tokens' xb rows) and outputs */
  float *moe;     /* (batch, n_expert_used, dim) each token's weighted expert outputs */
#endif
} RunState;

static RunState state;

#define GLOBALS_LAYER 0u
#define BLOCK_LAYER(l) (1u + (uint32_t)(l))

/* A thread's scratch: MAX_BATCH prepared activations (prefill), or one matvec's. */
#define THREAD_SCRATCH_BYTES                                                          \
  (M64_BATCH_SCRATCH_BYTES(MAX_COLS) > M64_SCRATCH_BYTES(MAX_COLS) ? M64_BATCH_SCRATCH_BYTES(MAX_COLS) \
                                                                    : M64_SCRATCH_BYTES(MAX_COLS))

#ifdef N_EXPERT
#define EXPERT_LAYER(l, x) (1u + N_LAYERS + (uint32_t)(l) * N_EXPERT + (uint32_t)(x))
#define MOE_FLOATS (MAX_BATCH * ((uint64_t)N_EXPERT + 2 * N_EXPERT_USED + 2 * (uint64_t)DIM + (uint64_t)N_EXPERT_USED * DIM))
#else
#define MOE_FLOATS 0
#endif

static uint64_t state_bytes_for(uint64_t n_ctx) {
  uint64_t f = MAX_BATCH * (2 * (uint64_t)DIM + 2 * (uint64_t)Q_DIM + 2 * (uint64_t)FFN + 2 * (uint64_t)KV_DIM) + VOCAB +
               MOE_FLOATS;
  uint64_t kv = 2 * (uint64_t)N_LAYERS * n_ctx * KV_DIM * sizeof(uint16_t);
  /* + thread 0's scratch (m64_threads adds one per further thread) + alignment slack */
  return f * sizeof(float) + kv + THREAD_SCRATCH_BYTES + 16 * 64;
}

uint32_t m64_state_bytes(uint32_t n_ctx) {
  uint64_t b = state_bytes_for(n_ctx);
  return b > 0xFFFFFFFFull ? 0xFFFFFFFFu : (uint32_t)b;
}

int32_t m64_init(uint32_t n_ctx) {
  if (n_ctx == 0 || state_bytes_for(n_ctx) > 0xF0000000ull) return -2;
  RunState *s = &state;
  s->n_ctx = n_ctx;
  s->x = mm_alloc(MAX_BATCH * DIM * 4);
  s->xb = mm_alloc(MAX_BATCH * DIM * 4);
  s->xb2 = mm_alloc(MAX_BATCH * Q_DIM * 4);
  s->hb = mm_alloc(MAX_BATCH * FFN * 4);
  s->hb2 = mm_alloc(MAX_BATCH * FFN * 4);
  s->q = mm_alloc(MAX_BATCH * Q_DIM * 4);
  s->k = mm_alloc(MAX_BATCH * KV_DIM * 4);
  s->v = mm_alloc(MAX_BATCH * KV_DIM * 4);
  s->logits = mm_alloc(VOCAB * 4);
  s->key_cache = mm_alloc((uint32_t)((uint64_t)N_LAYERS * n_ctx * KV_DIM * 2));
  s->value_cache = mm_alloc((uint32_t)((uint64_t)N_LAYERS * n_ctx * KV_DIM * 2));
  g_scratch[0] = mm_alloc(THREAD_SCRATCH_BYTES);
  kernels_init(); /* tables the kernels read, built before any thread runs them */
  if (!s->x || !s->xb || !s->xb2 || !s->hb || !s->hb2 || !s->q || !s->k || !s->v ||
      !s->logits || !s->key_cache || !s->value_cache || !g_scratch[0])
    return -1;
#ifdef N_EXPERT
  s->router = mm_alloc(MAX_BATCH * N_EXPERT * 4);
  s->chosen = mm_alloc(MAX_BATCH * N_EXPERT_USED * 4);
  s->weight = mm_alloc(MAX_BATCH * N_EXPERT_USED * 4);
  s->xe = mm_alloc(MAX_BATCH * DIM * 4);
  s->ye = mm_alloc(MAX_BATCH * DIM * 4);
  s->moe = mm_alloc((uint32_t)((uint64_t)MAX_BATCH * N_EXPERT_USED * DIM * 4));
  if (!s->router || !s->chosen || !s->weight || !s->xe || !s->ye || !s->moe) return -1;
#endif
  return 0;
}

int32_t m64_threads(uint32_t n) {
  if (n == 0 || n > MAX_THREADS) return -2;
  for (uint32_t i = 1; i < n; i++)
    if (!g_scratch[i] && !(g_scratch[i] = mm_alloc(THREAD_SCRATCH_BYTES))) return -1;
  g_threads = n;
  return 0;
}

uint32_t m64_max_batch(void) { return MAX_BATCH; }
uint32_t m64_n_vocab(void) { return VOCAB; }
#ifdef N_EXPERT
uint32_t m64_n_layers(void) { return 1 + N_LAYERS + N_LAYERS * N_EXPERT; }
#else
uint32_t m64_n_layers(void) { return 1 + N_LAYERS; }
#endif
uint32_t m64_n_ctx_train(void) { return N_CTX_TRAIN; }

#define HD_VEC (HEAD_DIM & ~7u) /* head dimensions done 8 at a time; the rest one by one */

/* q . k over HEAD_DIM: the products 8 at a time (exact: q and k hold f16 values), summed
 * one by one in order. That order is what this module summed before attention was SIMD
 * (the last bits of every logit stay as they were); summed in 8 lanes instead, a near-tie
 * of a 3B-shape model flipped at the 4th token and the greedy ids agreed with llama.cpp's
 * for 3 of 16 tokens instead of 12. */
static float dot_f16_in_order(const float *q, const uint16_t *k) {
  float p[HEAD_DIM] __attribute__((aligned(16)));
  v128_t lo, hi;
  uint32_t i = 0;
  for (; i < HD_VEC; i += 8) {
    f16x8_to_f32(wasm_v128_load(k + i), &lo, &hi);
    wasm_v128_store(p + i, wasm_f32x4_mul(wasm_v128_load(q + i), lo));
    wasm_v128_store(p + i + 4, wasm_f32x4_mul(wasm_v128_load(q + i + 4), hi));
  }
  for (; i < HEAD_DIM; i++) p[i] = q[i] * f16_to_f32(k[i]);
  float s = 0.0f;
  for (i = 0; i < HEAD_DIM; i++) s += p[i];
  return s;
}

/* dot_f16_in_order for four keys at once: the same products and the same in-order sums,
 * as four independent chains (one chain of HEAD_DIM dependent adds per key waits on the
 * add latency; four interleaved keep the adder busy). */
static void dot4_f16_in_order(const float *q, const uint16_t *k0, const uint16_t *k1, const uint16_t *k2,
                              const uint16_t *k3, float out[4]) {
  float p[4][HEAD_DIM] __attribute__((aligned(16)));
  const uint16_t *ks[4] = {k0, k1, k2, k3};
  v128_t lo, hi;
  for (uint32_t j = 0; j < 4; j++) {
    uint32_t i = 0;
    for (; i < HD_VEC; i += 8) {
      f16x8_to_f32(wasm_v128_load(ks[j] + i), &lo, &hi);
      wasm_v128_store(p[j] + i, wasm_f32x4_mul(wasm_v128_load(q + i), lo));
      wasm_v128_store(p[j] + i + 4, wasm_f32x4_mul(wasm_v128_load(q + i + 4), hi));
    }
    for (; i < HEAD_DIM; i++) p[j][i] = q[i] * f16_to_f32(ks[j][i]);
  }
  float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
  for (uint32_t i = 0; i < HEAD_DIM; i++) {
    s0 += p[0][i];
    s1 += p[1][i];
    s2 += p[2][i];
    s3 += p[3][i];
  }
  out[0] = s0, out[1] = s1, out[2] = s2, out[3] = s3;
}

/* One query head's attention: q (HEAD_DIM) at position pos over the cached keys and
 * values kc, vc (its kv head's slice at position 0, rows KV_DIM apart), into out; with a
 * window w > 0, over positions pos - w + 1 .. pos only (llama.cpp's sliding-window mask). As
 * llama.cpp's CPU flash attention does with an f16 cache: q rounded to f16, an online
 * softmax, and the value sum kept in f16, here as f32 lanes that hold f16 values (every
 * update rounded through f16: f32x4_round_f16), SIMD over the head's dimensions (HD_VEC). */
static void attend_head(const float *q, float *out, const uint16_t *kc, const uint16_t *vc, int32_t pos,
                        uint32_t window) {
  const float scale = ATTN_SCALE;
  const int32_t t0 = window && (uint32_t)pos >= window ? pos - (int32_t)window + 1 : 0;
  float qh[HEAD_DIM] __attribute__((aligned(16))), acc[HEAD_DIM] __attribute__((aligned(16)));
  round_f16_n(qh, q, HEAD_DIM);
  mm_memset(acc, 0, sizeof acc);
  uint32_t i;
  float max = -__builtin_inff(), sum = 0.0f;
  float dots[4];
  for (int32_t t = t0; t <= pos; t++) {
    const uint16_t *k = kc + (uint64_t)t * KV_DIM, *v = vc + (uint64_t)t * KV_DIM;
    const int four = (t & ~3) >= t0 && (t & ~3) + 3 <= pos; /* t's group of four is all in view */
    if ((t & 3) == 0 && four) /* the next four keys' products together */
      dot4_f16_in_order(qh, k, k + KV_DIM, k + 2 * KV_DIM, k + 3 * KV_DIM, dots);
#ifdef ATTN_SOFTCAP
    const float score = ATTN_SOFTCAP * mm_tanhf(four ? dots[t & 3] * scale : dot_f16_in_order(qh, k) * scale);
#else
    const float score = four ? dots[t & 3] * scale : dot_f16_in_order(qh, k) * scale;
#endif
    v128_t lo, hi;
    float ms = 1.0f, vs = 1.0f;
    if (score > max) { /* new maximum: rescale what was summed so far */
      ms = mm_expf(max - score);
      max = score;
      const v128_t m = wasm_f32x4_splat(ms);
      for (i = 0; i + 4 <= HEAD_DIM; i += 4)
        wasm_v128_store(acc + i, f32x4_round_f16(wasm_f32x4_mul(wasm_v128_load(acc + i), m)));
      for (; i < HEAD_DIM; i++) acc[i] = f16_to_f32(f32_to_f16(acc[i] * ms));
    } else {
      vs = mm_expf(score - max);
    }
    const v128_t w = wasm_f32x4_splat(vs);
    for (i = 0; i < HD_VEC; i += 8) {
      f16x8_to_f32(wasm_v128_load(v + i), &lo, &hi);
      wasm_v128_store(acc + i, f32x4_round_f16(wasm_f32x4_add(wasm_v128_load(acc + i), wasm_f32x4_mul(lo, w))));
      wasm_v128_store(acc + i + 4, f32x4_round_f16(wasm_f32x4_add(wasm_v128_load(acc + i + 4), wasm_f32x4_mul(hi, w))));
    }
    for (; i < HEAD_DIM; i++) acc[i] = f16_to_f32(f32_to_f16(acc[i] + f16_to_f32(v[i]) * vs));
    sum = sum * ms + vs;
  }
  const float inv = sum == 0.0f ? 0.0f : 1.0f / sum;
  for (i = 0; i < HEAD_DIM; i++) out[i] = acc[i] * inv;
}

/* The attention job of a forward pass: n tokens from position pos0 in layer l. */
static struct { uint32_t l, n, window; int32_t pos0; } g_attn;

/* Items [i0, i1) of it: item k is head k / n of token k % n (causal: token t sees the
 * positions up to its own), so a share holds whole heads over all the tokens alike. */
static void attention_items(uint32_t i0, uint32_t i1) {
  const RunState *s = &state;
  const uint32_t group = N_HEADS / N_KV_HEADS, n = g_attn.n; /* query heads per kv head */
  const uint16_t *kc = s->key_cache + (uint64_t)g_attn.l * s->n_ctx * KV_DIM;
  const uint16_t *vc = s->value_cache + (uint64_t)g_attn.l * s->n_ctx * KV_DIM;
  for (uint32_t k = i0; k < i1; k++) {
    const uint32_t h = k / n, t = k % n, kv = (h / group) * HEAD_DIM;
    attend_head(s->q + t * Q_DIM + h * HEAD_DIM, s->xb2 + t * Q_DIM + h * HEAD_DIM, kc + kv, vc + kv,
                g_attn.pos0 + (int32_t)t, g_attn.window);
  }
}

/* Below this many query-key products, attention runs on the calling thread: waking the
 * others costs more than they save (decoding below 64 positions in a 7B). */
#define ATTN_PARALLEL_MIN (1u << 18)

/* Attention of the n tokens at pos0.. in layer l: s->q into s->xb2. Each (head, token) is
 * computed alike on whichever thread, so results do not depend on the thread count. */
static void attention(uint32_t l, uint32_t n, int32_t pos0) {
  g_attn.l = l, g_attn.n = n, g_attn.pos0 = pos0, g_attn.window = LAYER_WINDOW(l);
  const uint64_t products = (uint64_t)n * N_HEADS * HEAD_DIM * ((uint64_t)pos0 + n);
  run_items(attention_items, n * N_HEADS, products >= ATTN_PARALLEL_MIN);
}

/* hb = silu(hb) * hb2 (gelu in gemma) on rows [r0, r1) of each of the n tokens: the
 * epilogue of the gate and up products, on the thread that computed those rows. */
static void swiglu_rows(uint32_t r0, uint32_t r1, uint32_t n) {
  RunState *s = &state;
  for (uint32_t t = 0; t < n; t++)
    for (uint32_t r = t * FFN + r0; r < t * FFN + r1; r++)
      s->hb[r] = (FFN_GELU ? gelu(s->hb[r]) : silu(s->hb[r])) * s->hb2[r];
}

#ifdef N_EXPERT
/* The Mixture-of-Experts FFN of block l (its layer at b) for the n tokens whose normed
 * inputs are in s->xb, into s->xb; as llama.cpp's build_moe_ffn computes it: the router's
 * softmax, each token's N_EXPERT_USED most probable experts, their probabilities
 * normalized to sum 1, silu(gate) * up then down per expert, times its weight, and the
 * weighted outputs added in the order of the choice. The experts run one at a time, in
 * order, each on the tokens that chose it: each is paged in (m64.layer_acquire) only when
 * some token chose it, and read once for all of them. */
static void moe_ffn(uint32_t l, const uint8_t *b, uint32_t n) {
  RunState *s = &state;
  const BlockWeights *w = &BLOCKS[l];
  const ExpertWeights *xw = &EXPERTS[l];
  w->router.matmul(s->router, b + w->router.offset, s->xb, n);
  for (uint32_t t = 0; t < n; t++) {
    float *p = s->router + t * N_EXPERT;
    softmax(p, N_EXPERT);
    uint32_t *chosen = s->chosen + t * N_EXPERT_USED;
    float *wt = s->weight + t * N_EXPERT_USED;
    uint64_t taken[(N_EXPERT + 63) / 64] = {0};
    double sum = 0;
    for (uint32_t k = 0; k < N_EXPERT_USED; k++) { /* the most probable not yet taken; ties: lower id */
      uint32_t best = 0;
      float best_p = -1.0f;
      for (uint32_t x = 0; x < N_EXPERT; x++)
        if (!(taken[x / 64] >> (x % 64) & 1) && p[x] > best_p) best = x, best_p = p[x];
      taken[best / 64] |= 1ull << (best % 64);
      chosen[k] = best, wt[k] = best_p;
      sum += best_p;
    }
    const float total = (float)sum < 6.103515625e-5f ? 6.103515625e-5f : (float)sum;
    for (uint32_t k = 0; k < N_EXPERT_USED; k++) wt[k] /= total;
  }
  /* the experts chosen, in id order, and for each the (token, rank) pairs that chose it */
  int32_t next_used[N_EXPERT];
  int32_t last = -1;
  for (int32_t x = N_EXPERT - 1; x >= 0; x--) {
    next_used[x] = last;
    for (uint32_t i = 0; i < n * N_EXPERT_USED && last != x; i++)
      if (s->chosen[i] == (uint32_t)x) last = x;
  }
  for (int32_t x = last; x >= 0; x = next_used[x]) {
    const uint8_t *eb = (const uint8_t *)(uintptr_t)m64_host_layer_acquire(EXPERT_LAYER(l, x));
    if (next_used[x] >= 0) m64_host_layer_prefetch(EXPERT_LAYER(l, next_used[x]));
    uint32_t m = 0, picks[MAX_BATCH];
    for (uint32_t i = 0; i < n * N_EXPERT_USED; i++)
      if (s->chosen[i] == (uint32_t)x) {
        picks[m] = i;
        mm_memcpy(s->xe + m * DIM, s->xb + (i / N_EXPERT_USED) * DIM, DIM * 4);
        m++;
      }
    products_begin(); /* gate and up, then silu(gate) * up, as one job */
    xw->gate.matmul(s->hb, eb + xw->gate.offset, s->xe, m);
    xw->up.matmul(s->hb2, eb + xw->up.offset, s->xe, m);
    products_run(swiglu_rows);
    xw->down.matmul(s->ye, eb + xw->down.offset, s->hb, m);
    m64_host_layer_release(EXPERT_LAYER(l, x));
    for (uint32_t j = 0; j < m; j++) {
      float *out = s->moe + (uint64_t)picks[j] * DIM;
      const float wj = s->weight[picks[j]];
      for (uint32_t i = 0; i < DIM; i++) out[i] = s->ye[j * DIM + i] * wj;
    }
  }
  for (uint32_t t = 0; t < n; t++) {
    float *y = s->xb + t * DIM;
    const float *e = s->moe + (uint64_t)t * N_EXPERT_USED * DIM;
    mm_memcpy(y, e, DIM * 4);
    for (uint32_t k = 1; k < N_EXPERT_USED; k++)
      for (uint32_t i = 0; i < DIM; i++) y[i] += e[k * DIM + i];
  }
}
#endif

/* n tokens at positions pos0..pos0+n-1; returns the last token's logits. */
static uint32_t forward(const int32_t *tokens, uint32_t n, int32_t pos0) {
  RunState *s = &state;
  if (n == 0 || n > MAX_BATCH || pos0 < 0 || (uint64_t)pos0 + n > s->n_ctx) __builtin_trap();
  for (uint32_t t = 0; t < n; t++)
    if (tokens[t] < 0 || tokens[t] >= VOCAB) __builtin_trap();

  /* token embeddings */
  const uint8_t *g = (const uint8_t *)(uintptr_t)m64_host_layer_acquire(GLOBALS_LAYER);
  m64_host_layer_prefetch(BLOCK_LAYER(0));
  for (uint32_t t = 0; t < n; t++)
    GLOBALS.embed_row(s->x + t * DIM, g + GLOBALS.token_embd + (uint64_t)tokens[t] * GLOBALS.token_row_bytes);
  m64_host_layer_release(GLOBALS_LAYER);
#ifdef EMBED_SCALE
  for (uint32_t i = 0; i < n * DIM; i++) s->x[i] *= EMBED_SCALE;
#endif

  for (uint32_t l = 0; l < N_LAYERS; l++) {
    const BlockWeights *w = &BLOCKS[l];
    const uint8_t *b = (const uint8_t *)(uintptr_t)m64_host_layer_acquire(BLOCK_LAYER(l));
    /* while this block computes, the host may page in the next one */
    m64_host_layer_prefetch(l + 1 < N_LAYERS ? BLOCK_LAYER(l + 1) : GLOBALS_LAYER);

    /* attention: q, k, v projections, rope, cache k/v, attend, project back */
    for (uint32_t t = 0; t < n; t++)
      rmsnorm(s->xb + t * DIM, s->x + t * DIM, AT(b, w->attn_norm.offset, const float *), DIM, RMS_EPS);
    products_begin(); /* q, k and v: one parallel job */
    w->wq.matmul(s->q, b + w->wq.offset, s->xb, n);
    w->wk.matmul(s->k, b + w->wk.offset, s->xb, n);
    w->wv.matmul(s->v, b + w->wv.offset, s->xb, n);
    products_run(0);
    if (QKV_BIAS)
      for (uint32_t t = 0; t < n; t++) {
        add_vector(s->q + t * Q_DIM, AT(b, w->bq.offset, const float *), Q_DIM);
        add_vector(s->k + t * KV_DIM, AT(b, w->bk.offset, const float *), KV_DIM);
        add_vector(s->v + t * KV_DIM, AT(b, w->bv.offset, const float *), KV_DIM);
      }
    if (QK_NORM) /* qwen3: every head of q and k RMS-normed on its own, before RoPE */
      for (uint32_t t = 0; t < n; t++) {
        for (uint32_t h = 0; h < N_HEADS; h++) {
          float *x = s->q + t * Q_DIM + h * HEAD_DIM;
          rmsnorm(x, x, AT(b, w->q_norm.offset, const float *), HEAD_DIM, RMS_EPS);
        }
        for (uint32_t h = 0; h < N_KV_HEADS; h++) {
          float *x = s->k + t * KV_DIM + h * HEAD_DIM;
          rmsnorm(x, x, AT(b, w->k_norm.offset, const float *), HEAD_DIM, RMS_EPS);
        }
      }
    for (uint32_t t = 0; t < n; t++) {
      const int32_t pos = pos0 + (int32_t)t;
      rope(s->q + t * Q_DIM, N_HEADS, pos, LAYER_ROPE_BASE(l), LAYER_ROPE_SCALE(l));
      rope(s->k + t * KV_DIM, N_KV_HEADS, pos, LAYER_ROPE_BASE(l), LAYER_ROPE_SCALE(l));
#ifdef Q_SCALE
      for (uint32_t i = 0; i < Q_DIM; i++) s->q[t * Q_DIM + i] *= Q_SCALE;
#endif
      uint16_t *kc = s->key_cache + ((uint64_t)l * s->n_ctx + pos) * KV_DIM;
      uint16_t *vc = s->value_cache + ((uint64_t)l * s->n_ctx + pos) * KV_DIM;
      for (uint32_t i = 0; i < KV_DIM; i++) {
        kc[i] = f32_to_f16(s->k[t * KV_DIM + i]);
        vc[i] = f32_to_f16(s->v[t * KV_DIM + i]);
      }
    }
    attention(l, n, pos0);
    w->wo.matmul(s->xb, b + w->wo.offset, s->xb2, n);
    if (POST_NORMS) /* gemma: the sub-block's output RMS-normed before it is added */
      for (uint32_t t = 0; t < n; t++)
        rmsnorm(s->xb + t * DIM, s->xb + t * DIM, AT(b, w->post_attn_norm.offset, const float *), DIM, RMS_EPS);
    for (uint32_t i = 0; i < n * DIM; i++) s->x[i] += s->xb[i];

    /* feed-forward: w_down(silu(w_gate x) * w_up x), gelu in place of silu in gemma */
    for (uint32_t t = 0; t < n; t++)
      rmsnorm(s->xb + t * DIM, s->x + t * DIM, AT(b, w->ffn_norm.offset, const float *), DIM, RMS_EPS);
#ifdef N_EXPERT
    moe_ffn(l, b, n);
#else
    products_begin(); /* gate and up, then silu(gate) * up (gelu in gemma), as one job */
    w->w_gate.matmul(s->hb, b + w->w_gate.offset, s->xb, n);
    w->w_up.matmul(s->hb2, b + w->w_up.offset, s->xb, n);
    products_run(swiglu_rows);
    w->w_down.matmul(s->xb, b + w->w_down.offset, s->hb, n);
#endif
    if (POST_NORMS)
      for (uint32_t t = 0; t < n; t++)
        rmsnorm(s->xb + t * DIM, s->xb + t * DIM, AT(b, w->post_ffw_norm.offset, const float *), DIM, RMS_EPS);
    for (uint32_t i = 0; i < n * DIM; i++) s->x[i] += s->xb[i];

    m64_host_layer_release(BLOCK_LAYER(l));
  }

  /* final norm and logits, for the last token only */
  float *last = s->x + (n - 1) * DIM;
  g = (const uint8_t *)(uintptr_t)m64_host_layer_acquire(GLOBALS_LAYER);
  m64_host_layer_prefetch(BLOCK_LAYER(0)); /* the next token starts there */
  rmsnorm(last, last, AT(g, GLOBALS.output_norm.offset, const float *), DIM, RMS_EPS);
  GLOBALS.output.matmul(s->logits, g + GLOBALS.output.offset, last, 1);
#ifdef FINAL_SOFTCAP /* gemma2: logits c tanh(x / c) */
  for (uint32_t i = 0; i < VOCAB; i++) s->logits[i] = mm_tanhf(s->logits[i] * (1.0f / FINAL_SOFTCAP)) * FINAL_SOFTCAP;
#endif
  m64_host_layer_release(GLOBALS_LAYER);
  return (uint32_t)(uintptr_t)s->logits;
}

uint32_t m64_forward(int32_t token, int32_t pos) { return forward(&token, 1, pos); }

uint32_t m64_forward_batch(const int32_t *tokens, uint32_t n, int32_t pos0) {
  return forward(tokens, n, pos0);
}
