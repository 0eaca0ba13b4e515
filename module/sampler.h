/*
 * sampler.h — next-token sampling over the module's logits (freestanding; see base.h).
 *
 * temp <= 0 (or top_k == 1): greedy argmax, the lowest id winning ties. Otherwise the
 * distribution is softmax(logits / temp); top_k > 0 keeps the k most likely ids (ties:
 * lower id first); top_p < 1 then keeps the smallest most-likely-first prefix whose
 * probability (renormalised over the top-k set) reaches top_p; one id is drawn from what
 * is left with a xorshift64* generator. NaN logits count as -infinity.
 * State (RNG, scratch) lives in file-level statics: one sampler per module instance.
 */
#ifndef M64_MODULE_SAMPLER_H
#define M64_MODULE_SAMPLER_H

#include <stdint.h>

/* Seeds the RNG (the seed is mixed, so nearby seeds give unrelated streams). Without a
 * call the RNG starts as if seeded with 0. */
void sampler_seed(uint64_t seed);
/* Returns the chosen id in [0, n_vocab); -1 if n_vocab is 0 or logits is NULL; -2 if the
 * scratch (8 bytes per id, mm_alloc'ed on first use, regrown only for a larger n_vocab)
 * cannot be allocated. Greedy calls never allocate. */
int32_t sampler_sample(const float *logits, uint32_t n_vocab, float temp, int32_t top_k,
                       float top_p);
/* The next raw RNG output (for tests and for hosts that want the same stream). */
uint64_t sampler_next_u64(void);

#endif
