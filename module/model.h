/*
 * model.h — what a generated model.c builds on: the weight tables' types and the
 * transformer's small ops (rmsnorm, softmax, rope, silu). model.c defines the shapes as
 * constants, instantiates kernels.h per (type, shape), fills the weight tables, and then
 * includes the architecture's forward pass (forward_llama.h).
 */
#ifndef M64_MODEL_H
#define M64_MODEL_H

#include "base.h"
#include "m64_module.h"
#define M64_KERNELS_PREFETCH m64_host_prefetch /* the kernels' read-ahead hint (below) */
#if defined(__wasm_relaxed_simd__)
/* The browsers' variant (module.relaxed, built with -mrelaxed-simd; wasm2c cannot read it):
 * the i8 dot is relaxed SIMD's own instruction. Its second operand is below 128 in every
 * kernel that calls it, where the instruction's result is exact on every engine, so the
 * sums are the other variants' to the bit. */
static inline __attribute__((always_inline)) v128_t m64_relaxed_dot_i8(v128_t acc, v128_t a, v128_t b) {
  return wasm_i32x4_relaxed_dot_i8x16_i7x16_add(a, b, acc);
}
#define M64_KERNELS_DOT_I8 m64_relaxed_dot_i8
#define M64_KERNELS_HAS_DOT_I8() 1
#else
#define M64_KERNELS_DOT_I8 m64_host_dot_i8      /* the i8 dot and whether to use it */
#define M64_KERNELS_HAS_DOT_I8 m64_host_has_dot_i8
#endif
#define M64_KERNELS_F16_ROUND m64_host_f16_round /* one-instruction f16 steps, where the host has them */
#define M64_KERNELS_F16_WIDEN_LO m64_host_f16_widen_lo
#define M64_KERNELS_F16_WIDEN_HI m64_host_f16_widen_hi
#define M64_KERNELS_HAS_F16 m64_host_has_f16
#define M64_KERNELS_KQ_ROWS m64_host_kq_rows        /* the host's wider K-quant rows, where it has them */
#define M64_KERNELS_HAS_KQ_ROWS m64_host_has_kq_rows
#define M64_KERNELS_KQ_MAT m64_host_kq_mat          /* and their prefill, where the host has it */
#define M64_KERNELS_HAS_KQ_MAT m64_host_has_kq_mat
#include "kernels.h"

/* A matrix inside a layer: byte offset from the layer's base and its specialized kernel,
 * which multiplies it with n input vectors (x: n rows of cols) into n outputs (out: n
 * rows of rows); n = 1 is a matrix-vector product. */
typedef void (*matmul_fn)(float *out, const uint8_t *w, const float *x, uint32_t n);
typedef void (*row_fn)(float *out, const uint8_t *row);
typedef struct Matrix { uint32_t offset; matmul_fn matmul; } Matrix;
/* An F32 vector (norm weights) inside a layer. */
typedef struct Vector { uint32_t offset; } Vector;

/* Layer 0 of the image: embeddings, final norm, output projection. */
typedef struct GlobalWeights {
  uint32_t token_embd;       /* (vocab, dim) rows of row_bytes */
  uint32_t token_row_bytes;
  row_fn embed_row;          /* dequantizes one embedding row to f32 */
  Vector output_norm;        /* (dim) */
  Matrix output;             /* (vocab, dim); token_embd itself when the output is tied */
} GlobalWeights;

/* A block's attention where it differs between blocks (gemma3's LAYER_ATTN table): the
 * positions a token sees (its own and the window - 1 before it; 0 = all), the RoPE base,
 * and a factor on the RoPE angles (linear rope scaling). */
typedef struct LayerAttention { uint32_t window; float rope_base, rope_scale; } LayerAttention;

/* Layers 1..N: one transformer block each. */
typedef struct BlockWeights {
  Vector attn_norm;                 /* (dim) */
  Matrix wq, wk, wv, wo;            /* (q_dim, dim), (kv_dim, dim) x2, (dim, q_dim) */
  Vector ffn_norm;                  /* (dim) */
  Matrix w_gate, w_up, w_down;      /* (ffn, dim) x2, (dim, ffn) */
  Vector bq, bk, bv;                /* (q_dim), (kv_dim) x2: only where QKV_BIAS (qwen2) */
  Vector q_norm, k_norm;            /* (head_dim) x2: only where QK_NORM (qwen3) */
  Vector post_attn_norm, post_ffw_norm; /* (dim) x2: only where POST_NORMS (gemma) */
  Matrix router;                    /* (n_expert, dim): only where N_EXPERT (in place of w_*) */
} BlockWeights;

/* Mixture of Experts: one expert's FFN, offsets inside its own layer (every expert of a
 * block alike). */
typedef struct ExpertWeights {
  Matrix gate, up, down;            /* (ffn, dim) x2, (dim, ffn) */
} ExpertWeights;

/* ---- products split across the host's threads ----
 * A slice runs one kernel family on `rows` consecutive rows: `vec` for one input vector,
 * `mat` for n inputs whose activations `act` prepared (kernels_batch.h). Every thread has
 * its own scratch for the activations as the weights' dot product consumes them (rounded
 * to f16, quantized to Q8_0 blocks, ...), which each thread prepares itself, once per
 * product: O(n * cols), against O(rows * cols * n) for its rows. With several inputs
 * (prefill), rows go in chunks of about 256 KiB of weights, each chunk used for every
 * input while it is in the cache: the weights come from memory once per batch, not once
 * per token. */
typedef struct Slice {
  void (*vec)(float *out, const uint8_t *w, const float *x, uint8_t *scratch, uint32_t rows);
  void (*act)(uint8_t *xq, const float *x);
  void (*mat)(float *out, uint32_t out_stride, const uint8_t *w, const uint8_t *xq, uint32_t rows,
              uint32_t n);
} Slice;
typedef struct MatmulJob {
  const Slice *slice;
  float *out;
  const uint8_t *w;
  const float *x;
  uint32_t rows, row_bytes, cols, n;
} MatmulJob;

#define MAX_THREADS 64u
#define MAX_BATCH M64_MAX_BATCH
#define MAX_GROUP 3u /* q, k and v */
/* The products of one parallel job: one, or a group (products_begin .. products_run). */
static MatmulJob g_jobs[MAX_GROUP];
static uint32_t g_n_jobs, g_grouping;
/* Run by each share on its rows [r0, r1) once the group's products have them (swiglu). */
static void (*g_epilogue)(uint32_t r0, uint32_t r1, uint32_t n);
static uint8_t *g_scratch[MAX_THREADS];
static uint32_t g_threads = 1;
/* Below this many weight bytes a job runs on the calling thread: waking the others
 * costs more than it saves. */
#define PARALLEL_MIN_BYTES (256u * 1024u)
#define CHUNK_BYTES (256u * 1024u)

/* Rows [r0, r1) of the job for every input, chunk by chunk; `prepared`: scratch already
 * holds the inputs' activations in this slice's form (the group's previous product read
 * the same x through the same act). */
static void matmul_rows(const MatmulJob *j, uint32_t r0, uint32_t r1, uint8_t *scratch, int prepared) {
  if (j->n == 1) {
    j->slice->vec(j->out + r0, j->w + (uint64_t)r0 * j->row_bytes, j->x, scratch, r1 - r0);
    return;
  }
  if (!prepared)
    for (uint32_t t = 0; t < j->n; t++)
      j->slice->act(scratch + (uint64_t)t * M64_ACT_STRIDE(j->cols), j->x + (uint64_t)t * j->cols);
  uint32_t chunk = (CHUNK_BYTES / j->row_bytes) & ~3u;
  if (chunk < 4) chunk = 4;
  for (uint32_t c0 = r0; c0 < r1; c0 += chunk) {
    const uint32_t c1 = c0 + chunk < r1 ? c0 + chunk : r1;
    j->slice->mat(j->out + c0, j->rows, j->w + (uint64_t)c0 * j->row_bytes, scratch, c1 - c0, j->n);
  }
}

/* Share i of n: its rows of every product of the job (shares of a multiple of 4 rows:
 * kernels process rows in pairs), then the epilogue on the first product's rows. */
static void job_share(uint32_t i, uint32_t n, uint8_t *scratch) {
  uint32_t e0 = 0, e1 = 0;
  const MatmulJob *in_scratch = 0; /* whose activations scratch holds */
  for (uint32_t k = 0; k < g_n_jobs; k++) {
    const MatmulJob *j = &g_jobs[k];
    const uint32_t per = ((j->rows + n - 1) / n + 3u) & ~3u;
    const uint32_t r0 = i * per, r1 = r0 + per < j->rows ? r0 + per : j->rows;
    if (k == 0) e0 = r0, e1 = r1;
    if (r0 >= r1) continue;
    matmul_rows(j, r0, r1, scratch, in_scratch && j->x == in_scratch->x && j->slice->act == in_scratch->slice->act);
    in_scratch = j;
  }
  if (g_epilogue && e0 < e1) g_epilogue(e0, e1, g_jobs[0].n);
}

/* The other kind of job: items [0, n_items) cut into the host's shares (attention's
 * (head, token) pairs), run by g_items when it is set. Every m64.parallel call sets the
 * kind it publishes, so a trap in one job cannot leave the next one the wrong kind. */
static void (*g_items)(uint32_t i0, uint32_t i1);
static uint32_t g_n_items;

void m64_worker(uint32_t i, uint32_t n) {
  if (i >= n || i >= g_threads) return;
  if (g_items) {
    const uint32_t per = (g_n_items + n - 1) / n, i0 = i * per, i1 = i0 + per < g_n_items ? i0 + per : g_n_items;
    if (i0 < i1) g_items(i0, i1);
    return;
  }
  job_share(i, n, g_scratch[i]);
}

/* Runs the products in g_jobs, then the epilogue, on the threads when they are worth it. */
static void run_jobs(void (*epilogue)(uint32_t, uint32_t, uint32_t)) {
  uint64_t bytes = 0;
  for (uint32_t k = 0; k < g_n_jobs; k++) bytes += (uint64_t)g_jobs[k].rows * g_jobs[k].row_bytes;
  g_epilogue = epilogue;
  if (g_threads == 1 || bytes < PARALLEL_MIN_BYTES) {
    job_share(0, 1, g_scratch[0]);
  } else {
    g_items = 0;
    m64_host_parallel();
  }
  g_n_jobs = 0;
  g_epilogue = 0;
}

static void run_matmul(const Slice *slice, float *out, const uint8_t *w, const float *x,
                       uint32_t rows, uint32_t row_bytes, uint32_t cols, uint32_t n) {
  if (g_n_jobs >= MAX_GROUP) __builtin_trap();
  g_jobs[g_n_jobs++] = (MatmulJob){slice, out, w, x, rows, row_bytes, cols, n};
  if (!g_grouping) run_jobs(0);
}

/* Products between products_begin() and products_run(epilogue) run as one parallel job
 * (one wake-up and one wait of the threads instead of one per product); products of one
 * group share each thread's activations when they read the same input. The epilogue
 * (may be 0) gets each share's rows of the first product, all products of the group
 * done for those rows (its products must have equal rows then). */
static void products_begin(void) { g_grouping = 1; }
static void products_run(void (*epilogue)(uint32_t r0, uint32_t r1, uint32_t n)) {
  g_grouping = 0;
  run_jobs(epilogue);
}

/* fn over items [0, n_items), split across the threads when `parallel` (and there are). */
static void run_items(void (*fn)(uint32_t, uint32_t), uint32_t n_items, int parallel) {
  if (g_threads == 1 || !parallel) {
    fn(0, n_items);
    return;
  }
  g_items = fn;
  g_n_items = n_items;
  m64_host_parallel();
}

#define AT(base, off, type) ((type)((base) + (off)))

/* ---- ops: these follow llama.cpp's CPU ops closely (see kernels.h on numerics) ---- */

/* out = x / sqrt(mean(x^2) + eps) * w; the sum of squares in double, as ggml does. */
static inline void rmsnorm(float *out, const float *x, const float *w, uint32_t n, float eps) {
  double ss = 0;
  for (uint32_t i = 0; i < n; i++) ss += (double)(x[i] * x[i]);
  float scale = 1.0f / mm_sqrtf((float)(ss / n) + eps);
  for (uint32_t i = 0; i < n; i++) out[i] = (x[i] * scale) * w[i];
}

/* In-place softmax of x[0..n). */
static inline void softmax(float *x, uint32_t n) {
  float max = x[0];
  for (uint32_t i = 1; i < n; i++) max = x[i] > max ? x[i] : max;
  double sum = 0;
  for (uint32_t i = 0; i < n; i++) {
    x[i] = mm_expf(x[i] - max);
    sum += x[i];
  }
  float inv = (float)(1.0 / sum);
  for (uint32_t i = 0; i < n; i++) x[i] *= inv;
}

/* RoPE over n_heads heads of HEAD_DIM: rotates pairs of each head by theta_i = pos *
 * base^(-2i/HEAD_DIM) (divided by ROPE_FACTOR[i] where the model has frequency factors).
 * The pairs are adjacent (2i, 2i+1) in LLaMA's "normal" mode and (i, i + HEAD_DIM/2) in
 * "neox" mode (ROPE_NEOX: Qwen2). The angles are times scale (1 / a linear rope scaling
 * factor; 1, which changes nothing, without one). theta advances by repeated multiplication in float, as
 * ggml computes it. The angles are the same for every head: their sines and cosines are
 * computed once per call (the double sincos per head cost ~1% of a 7B decode, on the
 * thread that the others wait for). */
static inline void rope(float *v, uint32_t n_heads, int32_t pos, float base, float scale) {
  const float theta_scale = (float)mm_pow(base, -2.0 / HEAD_DIM);
  const uint32_t half = HEAD_DIM / 2;
  float cs[HEAD_DIM / 2], sn[HEAD_DIM / 2];
  float theta = (float)pos;
  for (uint32_t i = 0; i < half; i++) {
    float th = theta;
#ifdef ROPE_FREQ_FACTORS
    th = theta / ROPE_FACTOR[i];
#endif
    th *= scale; /* linear rope scaling (gemma3's global layers); 1 exactly elsewhere */
    double s, c;
    mm_sincos(th, &s, &c);
    cs[i] = (float)c, sn[i] = (float)s;
    theta *= theta_scale;
  }
  for (uint32_t h = 0; h < n_heads; h++) {
    float *x = v + h * HEAD_DIM;
    for (uint32_t i = 0; i < half; i++) {
      const uint32_t a = ROPE_NEOX ? i : 2 * i, b = ROPE_NEOX ? i + half : 2 * i + 1;
      const float x0 = x[a], x1 = x[b];
      x[a] = x0 * cs[i] - x1 * sn[i];
      x[b] = x0 * sn[i] + x1 * cs[i];
    }
  }
}

/* x += bias */
static inline void add_vector(float *x, const float *bias, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) x[i] += bias[i];
}

static inline float silu(float x) { return x / (1.0f + mm_expf(-x)); }

/* GELU with the tanh approximation, as ggml's CPU op computes it: x rounded to f16 and
 * the result too (ggml looks it up in a table of f16 values made by this formula in
 * float), 0 at or below -10 and x at or above 10. */
static inline float gelu(float x) {
  if (x <= -10.0f) return 0.0f;
  if (x >= 10.0f) return x;
  const float h = f16_to_f32(f32_to_f16(x));
  const float t = mm_tanhf(0.79788456080286535587989211986876f * h * (1.0f + 0.044715f * h * h));
  return f16_to_f32(f32_to_f16(0.5f * h * (1.0f + t)));
}

#endif
