/* sampler.c — greedy / temperature / top-k / top-p sampling (sampler.h). */
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

int32_t sampler_sample(const float *logits, uint32_t n, float temp, int32_t top_k, float top_p) {
  if (!logits || n == 0) return -1;
  if (!(temp > 0) || top_k == 1) return argmax(logits, n);
  int32_t best = argmax(logits, n);
  float max = key_of(logits[best]);
  /* +inf, or nothing finite: the distribution degenerates to the argmax */
  if (max == __builtin_inff() || max == -__builtin_inff()) return best;
  float inv_temp = 1.0f / temp;
  if (!(inv_temp < __builtin_inff())) return best; /* temp so small it is greedy */

  uint32_t k = (top_k <= 0 || (uint32_t)top_k >= n) ? n : (uint32_t)top_k;
  int use_top_p = top_p < 1.0f; /* NaN top_p: off */

  if (k == n && !use_top_p) { /* plain softmax sampling: no ranking needed */
    double sum = 0;
    for (uint32_t i = 0; i < n; i++) sum += mm_expf((key_of(logits[i]) - max) * inv_temp);
    double r = next_unit() * sum, acc = 0;
    for (uint32_t i = 0; i < n; i++) {
      float p = mm_expf((key_of(logits[i]) - max) * inv_temp);
      acc += p;
      if (p > 0 && r < acc) return (int32_t)i;
    }
    return best; /* rounding left r at the very end */
  }

  if (n > scratch_n) {
    if ((uint64_t)n * sizeof(cand) > 0xFFFFFFF0ull) return -2;
    cand *p = (cand *)mm_alloc(n * (uint32_t)sizeof(cand));
    if (!p) return -2;
    scratch = p;
    scratch_n = n;
  }
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

  double sum = 0;
  for (uint32_t i = 0; i < k; i++) {
    c[i].v = mm_expf((c[i].v - max) * inv_temp);
    sum += c[i].v;
  }
  uint32_t keep = k;
  if (use_top_p) {
    double acc = 0, target = (double)top_p * sum;
    for (keep = 0; keep < k;) {
      acc += c[keep++].v;
      if (acc >= target) break;
    }
    sum = acc;
  }
  double r = next_unit() * sum, acc = 0;
  for (uint32_t i = 0; i < keep; i++) {
    acc += c[i].v;
    if (c[i].v > 0 && r < acc) return (int32_t)c[i].id;
  }
  return (int32_t)c[0].id;
}
