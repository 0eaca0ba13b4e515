/*
 * module.c — the module's fixed exports (m64_module.h) that do not depend on the model:
 * ABI version, workspace allocation, and thin wrappers over the tokenizer and sampler.
 * The model-dependent exports (m64_init, m64_forward, ...) come from the generated model.c.
 */
#include "m64_module.h"
#include "base.h"
#include "cache.h"
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
uint32_t m64_tok_max_ids(uint32_t len) {
  const uint64_t n = M64_TOK_MAX_IDS(len);
  return n < UINT32_MAX ? (uint32_t)n : UINT32_MAX;
}

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

/* ---- the layer cache's policy for the page (cache.h; the runtime links cache.c) ---- */
static uint64_t memory_bytes(void) {
#if defined(__wasm__)
  return (uint64_t)__builtin_wasm_memory_size(0) * M64_CACHE_PAGE;
#else
  return mm_heap_top();
#endif
}
static uint32_t clamp32(uint64_t v) { return v < UINT32_MAX ? (uint32_t)v : UINT32_MAX; }

uint32_t m64_cache_open(const uint32_t *pages, uint32_t n_layers, uint32_t n_blocks, uint32_t cap_pages,
                        uint32_t capped, uint32_t *out) {
  uint64_t own = 0;
  for (uint32_t l = 0; l < n_layers; l++) own += pages[l];
  const m64_cache_need need = m64_cache_needs(pages, n_layers, n_blocks, 0, own);
  const m64_cache_fit fit = m64_cache_fit_in(memory_bytes(), (uint64_t)cap_pages * M64_CACHE_PAGE, capped != 0, &need);
  out[0] = clamp32(fit.want / M64_CACHE_PAGE);
  out[1] = clamp32((fit.taken + M64_CACHE_PAGE - 1) / M64_CACHE_PAGE);
  out[2] = clamp32(need.least);
  out[3] = clamp32(fit.suggest);
  out[4] = clamp32(fit.bytes / M64_CACHE_PAGE);
  if (!fit.bytes || n_layers < 2 || n_blocks >= n_layers) return 0;
  uint8_t *base = mm_alloc((uint32_t)(fit.bytes + M64_CACHE_PAGE));
  m64_cache *c = mm_alloc(sizeof *c);
  void *mem = mm_alloc((uint32_t)m64_cache_mem_bytes(n_layers, n_blocks));
  if (!base || !c || !mem) return 0;
  const uint32_t off = (uint32_t)(((uintptr_t)base + M64_CACHE_PAGE - 1) & ~(uintptr_t)(M64_CACHE_PAGE - 1));
  if (m64_cache_init(c, mem, pages, n_layers, n_blocks, 0, &need, off, fit.bytes, 0, 0)) return 0;
  return (uint32_t)(uintptr_t)c;
}

static m64_cache *cache_at(uint32_t cache) { return (m64_cache *)(uintptr_t)cache; }

int32_t m64_cache_acquire(uint32_t cache, uint32_t layer) {
  m64_cache *c = cache_at(cache);
  if (layer >= c->n_layers) return -1;
  const int32_t s = m64_cache_touch(c, layer);
  if (s >= 0) c->slots[s].in_use++;
  return s;
}
int32_t m64_cache_place(uint32_t cache, uint32_t layer) {
  m64_cache *c = cache_at(cache);
  if (layer >= c->n_layers) return -1;
  const int32_t s = m64_cache_choose(c, layer, 1);
  if (s < 0) return -1;
  m64_cache_assign(c, s, layer);
  m64_cache_loaded(c, s); /* the page places a layer before it returns to the module */
  c->slots[s].in_use++;
  return s;
}
void m64_cache_release(uint32_t cache, uint32_t layer) {
  m64_cache *c = cache_at(cache);
  const int32_t s = layer < c->n_layers ? c->slot_of[layer] : -1;
  if (s >= 0 && c->slots[s].in_use) c->slots[s].in_use--;
}
int32_t m64_cache_slot_of(uint32_t cache, uint32_t layer) {
  const m64_cache *c = cache_at(cache);
  return layer < c->n_layers ? c->slot_of[layer] : -1;
}
uint32_t m64_cache_slot_addr(uint32_t cache, uint32_t slot) {
  const m64_cache *c = cache_at(cache);
  return slot < c->n_slots ? c->slots[slot].addr : 0;
}
uint32_t m64_cache_slots(uint32_t cache) { return cache_at(cache)->n_slots; }
uint32_t m64_cache_evictions(uint32_t cache) { return (uint32_t)cache_at(cache)->evictions; }
