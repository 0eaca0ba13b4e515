/* sampler.c — penalties, greedy / temperature / top-k / top-p / min-p sampling (sampler.h). */
#include "sampler.h"

#include "base.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull; /* replaced by sampler_seed */
static int rng_seeded;

/* splitmix64: spreads any seed (0 included) over the state so xorshift never starts at 0 */
static uint64_t mix_seed(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  x ^= x >> 31;
  return x ? x : 0x9E3779B97F4A7C15ull;
}

void sampler_seed(uint64_t seed) {
  rng_state = mix_seed(seed);
  rng_seeded = 1;
}

uint64_t sampler_next_u64(void) {
  if (!rng_seeded) sampler_seed(0);
  uint64_t x = rng_state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  rng_state = x;
  return x * 0x2545F4914F6CDD1Dull;
}

/* uniform in [0, 1) with 53 random bits */
static double next_unit(void) {
  return (double)(sampler_next_u64() >> 11) * (1.0 / 9007199254740992.0);
}

typedef struct cand {
  float v; /* logit, later the unnormalised probability */
  uint32_t id;
} cand;

static cand *scratch;
static uint32_t scratch_n;

static float key_of(float x) { return x != x ? -__builtin_inff() : x; }

/* a ranks below b: smaller logit, or equal logit and larger id */
static int worse(const cand *a, const cand *b) {
  return a->v < b->v || (a->v == b->v && a->id > b->id);
}

/* min-heap by `worse`: the root is the weakest candidate */
static void sift_down(cand *h, uint32_t n, uint32_t i) {
  cand x = h[i];
  for (;;) {
    uint32_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && worse(&h[c + 1], &h[c])) c++;
    if (!worse(&h[c], &x)) break;
    h[i] = h[c];
    i = c;
  }
  h[i] = x;
}

static int32_t argmax(const float *logits, uint32_t n) {
  uint32_t best = 0;
  float best_v = key_of(logits[0]);
  for (uint32_t i = 1; i < n; i++) {
    float v = key_of(logits[i]);
    if (v > best_v) { best_v = v; best = i; }
  }
  return (int32_t)best;
}

static int grow(void **buf, uint32_t *have, uint32_t need, uint32_t elem) {
  if (need <= *have) return 0;
  if ((uint64_t)need * elem > 0xFFFFFFF0ull) return -1;
  void *q = mm_alloc(need * elem);
  if (!q) return -1;
  *buf = q;
  *have = need;
  return 0;
}

static float *adj; /* the logits after penalties and bans */
static uint32_t adj_n;
static int32_t *hist; /* the penalised ids, sorted */
static uint32_t hist_n;

/* heap sort, ascending */
static void isift(int32_t *a, uint32_t n, uint32_t i) {
  int32_t x = a[i];
  for (;;) {
    uint32_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && a[c + 1] > a[c]) c++;
    if (a[c] <= x) break;
    a[i] = a[c];
    i = c;
  }
  a[i] = x;
}
static void isort(int32_t *a, uint32_t n) {
  for (uint32_t j = n / 2; j-- > 0;) isift(a, n, j);
  for (uint32_t end = n; end-- > 1;) {
    int32_t t = a[0];
    a[0] = a[end];
    a[end] = t;
    isift(a, end, 0);
  }
}

/* llama.cpp's penalties: per distinct id of last[] with count c, logit / repeat (or
 * * repeat when <= 0), then - c * frequency - presence. */
static int penalise(float *l, uint32_t n, const sampler_params *p) {
  if (grow((void **)&hist, &hist_n, p->n_last, sizeof(int32_t))) return -2;
  mm_memcpy(hist, p->last, (size_t)p->n_last * sizeof(int32_t));
  isort(hist, p->n_last);
  for (uint32_t i = 0; i < p->n_last;) {
    uint32_t j = i;
    while (j < p->n_last && hist[j] == hist[i]) j++;
    const int32_t id = hist[i];
    const float count = (float)(j - i);
    i = j;
    if (id < 0 || (uint32_t)id >= n) continue;
    float v = l[id];
    v = v <= 0 ? v * p->repeat_penalty : v / p->repeat_penalty;
    l[id] = v - count * p->frequency_penalty - p->presence_penalty;
  }
  return 0;
}

int32_t sampler_sample(const float *logits, uint32_t n, float temp, int32_t top_k, float top_p) {
  const sampler_params p = {.temp = temp, .top_k = top_k, .top_p = top_p, .repeat_penalty = 1.0f};
  return sampler_sample_ex(logits, n, &p);
}

int32_t sampler_sample_ex(const float *logits, uint32_t n, const sampler_params *p) {
  if (!logits || n == 0 || !p) return -1;
  /* a repeat penalty that is NaN or not positive would corrupt the logits: off */
  const int penal = p->last && p->n_last &&
                    ((p->repeat_penalty > 0 && p->repeat_penalty != 1.0f) || p->presence_penalty != 0 ||
                     p->frequency_penalty != 0);
  if (penal || p->banned) {
    if (grow((void **)&adj, &adj_n, n, sizeof(float))) return -2;
    for (uint32_t i = 0; i < n; i++) adj[i] = key_of(logits[i]);
    if (penal) {
      sampler_params q = *p;
      if (!(q.repeat_penalty > 0)) q.repeat_penalty = 1.0f;
      if (q.presence_penalty != q.presence_penalty) q.presence_penalty = 0;
      if (q.frequency_penalty != q.frequency_penalty) q.frequency_penalty = 0;
      if (penalise(adj, n, &q)) return -2;
    }
    if (p->banned)
      for (uint32_t i = 0; i < n; i++)
        if (p->banned((int32_t)i)) adj[i] = -__builtin_inff();
    logits = adj;
  }
  int32_t best = argmax(logits, n);
  if (p->banned && p->banned(best)) { /* nothing finite is left: the first id allowed */
    for (uint32_t i = 0; i < n; i++)
      if (!p->banned((int32_t)i)) return (int32_t)i;
    return -1;
  }
  const float temp = p->temp;
  const int32_t top_k = p->top_k;
  if (!(temp > 0) || top_k == 1) return best;
  float max = key_of(logits[best]);
  /* +inf, or nothing finite: the distribution degenerates to the argmax */
  if (max == __builtin_inff() || max == -__builtin_inff()) return best;
  float inv_temp = 1.0f / temp;
  if (!(inv_temp < __builtin_inff())) return best; /* temp so small it is greedy */

  uint32_t k = (top_k <= 0 || (uint32_t)top_k >= n) ? n : (uint32_t)top_k;
  int use_top_p = p->top_p < 1.0f; /* NaN top_p: off */
  /* min-p as a logit threshold: p_i >= min_p * p_max  <=>  l_i >= max + ln(min_p) */
  const float min_logit = p->min_p > 0 && p->min_p <= 1.0f ? max + (float)mm_log((double)p->min_p)
                                                            : -__builtin_inff();

  if (k == n && !use_top_p) { /* no ranking needed */
    double sum = 0;
    for (uint32_t i = 0; i < n; i++) {
      const float v = key_of(logits[i]);
      if (v >= min_logit) sum += mm_expf((v - max) * inv_temp);
    }
    double r = next_unit() * sum, acc = 0;
    for (uint32_t i = 0; i < n; i++) {
      const float v = key_of(logits[i]);
      if (!(v >= min_logit)) continue;
      float w = mm_expf((v - max) * inv_temp);
      acc += w;
      if (w > 0 && r < acc) return (int32_t)i;
    }
    return best; /* rounding left r at the very end */
  }

  if (grow((void **)&scratch, &scratch_n, n, sizeof(cand))) return -2;
  cand *c = scratch;
  /* keep the k best in a min-heap, then heap-sort them best-first */
  for (uint32_t i = 0; i < n; i++) {
    cand x = {key_of(logits[i]), i};
    if (i < k) {
      c[i] = x;
      if (i + 1 == k)
        for (uint32_t j = k / 2; j-- > 0;) sift_down(c, k, j);
    } else if (worse(&c[0], &x)) {
      c[0] = x;
      sift_down(c, k, 0);
    }
  }
  for (uint32_t end = k; end-- > 1;) {
    cand t = c[0];
    c[0] = c[end];
    c[end] = t;
    sift_down(c, end, 0);
  }

  uint32_t keep = k;
  if (use_top_p) { /* over softmax at temperature 1, as llama.cpp's top-p (before temperature) */
    double sum = 0;
    for (uint32_t i = 0; i < k; i++) sum += mm_expf(c[i].v - max);
    double acc = 0, target = (double)p->top_p * sum;
    for (keep = 0; keep < k;) {
      acc += mm_expf(c[keep++].v - max);
      if (acc >= target) break;
    }
  }
  while (keep > 1 && !(c[keep - 1].v >= min_logit)) keep--; /* best-first: a prefix */
  double sum = 0;
  for (uint32_t i = 0; i < keep; i++) {
    c[i].v = mm_expf((c[i].v - max) * inv_temp);
    sum += c[i].v;
  }
  double r = next_unit() * sum, acc = 0;
  for (uint32_t i = 0; i < keep; i++) {
    acc += c[i].v;
    if (c[i].v > 0 && r < acc) return (int32_t)c[i].id;
  }
  return (int32_t)c[0].id;
}
