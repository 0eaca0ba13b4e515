/*
 * sampler.h — next-token sampling over the module's logits (freestanding; see base.h).
 *
 * The steps run in llama.cpp's order (its default sampler chain):
 *   1. penalties over the ids in last[] (the last N tokens of the context): an id seen c > 0
 *      times has its logit divided by repeat_penalty (multiplied when the logit is <= 0),
 *      then frequency_penalty * c + presence_penalty subtracted;
 *   2. banned(id) != 0 (e.g. end-of-generation tokens for --ignore-eos): never chosen;
 *   3. temp <= 0 (or top_k == 1): greedy argmax, the lowest id winning ties. Otherwise
 *   4. top_k > 0 keeps the k largest logits (ties: lower id first);
 *   5. top_p < 1 keeps the smallest most-likely-first prefix whose probability (softmax at
 *      temperature 1, renormalised over what is left) reaches top_p;
 *   6. min_p > 0 keeps the ids whose probability is at least min_p times the top one's;
 *   7. one id is drawn from softmax(logit / temp) over what is left, with xorshift64*.
 * NaN logits count as -infinity. Neutral values: repeat 1, presence 0, frequency 0,
 * top_k 0, top_p 1, min_p 0.
 * State (RNG, scratch) lives in file-level statics: one sampler per module instance.
 */
#ifndef M64_MODULE_SAMPLER_H
#define M64_MODULE_SAMPLER_H

#include <stdint.h>

typedef struct sampler_params {
  float temp;
  int32_t top_k;
  float top_p, min_p;
  float repeat_penalty, presence_penalty, frequency_penalty;
  const int32_t *last; /* the ids penalised (ids outside [0, n_vocab) are ignored) */
  uint32_t n_last;
  int32_t (*banned)(int32_t id); /* NULL: none */
} sampler_params;

/* Seeds the RNG (the seed is mixed, so nearby seeds give unrelated streams). Without a
 * call the RNG starts as if seeded with 0. */
void sampler_seed(uint64_t seed);
/* Returns the chosen id in [0, n_vocab); -1 if n_vocab is 0 or logits is NULL, or every
 * id is banned; -2 if the scratch (mm_alloc'ed on first use, regrown only when a call
 * needs more) cannot be allocated. Greedy calls without penalties or bans never allocate. */
int32_t sampler_sample_ex(const float *logits, uint32_t n_vocab, const sampler_params *p);
/* sampler_sample_ex with temp, top_k and top_p only (the other steps neutral). */
int32_t sampler_sample(const float *logits, uint32_t n_vocab, float temp, int32_t top_k,
                       float top_p);
/* The next raw RNG output (for tests and for hosts that want the same stream). */
uint64_t sampler_next_u64(void);

#endif
