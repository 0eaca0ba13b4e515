/*
 * module.c — the module's fixed exports (m64_module.h) that do not depend on the model:
 * ABI version, workspace allocation, and thin wrappers over the tokenizer and sampler.
 * The model-dependent exports (m64_init, m64_forward, ...) come from the generated model.c.
 */
#include "m64_module.h"
#include "base.h"
#include "chat.h"
#include "sampler.h"
#include "tokenizer.h"

int32_t m64_abi_version(void) { return M64_ABI_VERSION; }

uint32_t m64_alloc(uint32_t n) { return (uint32_t)(uintptr_t)mm_alloc(n); }

int32_t m64_tok_load(const uint8_t *blob, uint32_t size) { return tok_load(blob, size); }
int32_t m64_tok_encode(const char *text, uint32_t len, int32_t add_bos, int32_t *out, uint32_t max) {
  return tok_encode(text, len, add_bos, out, max);
}
int32_t m64_tok_piece(int32_t prev, int32_t id, char *out, uint32_t max) {
  return tok_piece(prev, id, out, max);
}
int32_t m64_tok_bos(void) { return tok_bos(); }
int32_t m64_tok_eos(void) { return tok_eos(); }
int32_t m64_tok_find(const char *text, uint32_t len) { return tok_find(text, len); }
int32_t m64_tok_is_eog(int32_t id) { return tok_is_eog(id); }

int32_t m64_chat_kind(const char *name, uint32_t len) { return chat_kind(name, len); }
int32_t m64_chat_turn(int32_t kind, int32_t flags, const char *text, uint32_t sys_len, uint32_t user_len,
                      char *scratch, uint32_t scratch_cap, int32_t *out, uint32_t max) {
  return chat_turn(kind, flags, text, sys_len, text + sys_len, user_len, scratch, scratch_cap, out, max);
}
int32_t m64_chat_end(int32_t kind, int32_t last, char *scratch, uint32_t scratch_cap, int32_t *out, uint32_t max) {
  return chat_end(kind, last, scratch, scratch_cap, out, max);
}

void m64_sampler_seed(uint32_t lo, uint32_t hi) { sampler_seed(((uint64_t)hi << 32) | lo); }
int32_t m64_sample(const float *logits, float temp, int32_t top_k, float top_p) {
  return sampler_sample(logits, m64_n_vocab(), temp, top_k, top_p);
}
int32_t m64_sample_ex(const float *logits, float temp, int32_t top_k, float top_p, float min_p,
                      float repeat_penalty, float presence_penalty, float frequency_penalty,
                      const int32_t *last, uint32_t n_last, uint32_t flags) {
  const sampler_params p = {temp, top_k, top_p, min_p, repeat_penalty, presence_penalty,
                            frequency_penalty, last, n_last,
                            (flags & M64_SAMPLE_NO_EOG) ? tok_is_eog : 0};
  return sampler_sample_ex(logits, m64_n_vocab(), &p);
}
