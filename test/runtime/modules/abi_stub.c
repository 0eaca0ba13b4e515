/* abi_stub.c — a trivial implementation of every export in module/m64_module.h,
 * used to check module/native_glue.c end to end (values are arbitrary but fixed). */
#include "m64_module.h"

static uint32_t g_top = 0;
extern unsigned char __heap_base[];

int32_t m64_abi_version(void) { return M64_ABI_VERSION; }
uint32_t m64_alloc(uint32_t n) {
  if (g_top == 0) g_top = ((uint32_t)(uintptr_t)__heap_base + 63u) & ~63u;
  uint32_t p = g_top, end = (p + n + 63u) & ~63u;
  uint32_t have = (uint32_t)__builtin_wasm_memory_size(0) * 65536u;
  if (end > have && __builtin_wasm_memory_grow(0, (end - have + 65535u) / 65536u) == (__SIZE_TYPE__)-1)
    return 0;
  g_top = end;
  return p;
}
uint32_t m64_state_bytes(uint32_t n_ctx) { return n_ctx * 1000u; }
int32_t m64_init(uint32_t n_ctx) { return n_ctx == 0 ? -2 : (m64_alloc(m64_state_bytes(n_ctx)) ? 0 : -1); }
uint32_t m64_n_vocab(void) { return 32000; }
uint32_t m64_n_layers(void) { return 5; }
uint32_t m64_n_ctx_train(void) { return 2048; }
uint32_t m64_forward(int32_t token, int32_t pos) {
  uint32_t addr = m64_host_layer_acquire((uint32_t)pos);
  m64_host_layer_release((uint32_t)pos);
  return addr + (uint32_t)token;
}
int32_t m64_tok_load(const uint8_t *blob, uint32_t size) { return blob && size ? 0 : -1; }
int32_t m64_tok_encode(const char *text, uint32_t len, int32_t add_bos, int32_t *out, uint32_t max) {
  uint32_t n = 0;
  if (add_bos) { if (n >= max) return -1; out[n++] = 1; }
  for (uint32_t i = 0; i < len; i++) { if (n >= max) return -1; out[n++] = (unsigned char)text[i]; }
  return (int32_t)n;
}
int32_t m64_tok_piece(int32_t prev, int32_t id, char *out, uint32_t max) {
  (void)prev;
  if (max < 1) return 0;
  out[0] = (char)id;
  return 1;
}
int32_t m64_tok_bos(void) { return 1; }
int32_t m64_tok_eos(void) { return 2; }
int32_t m64_tok_find(const char *text, uint32_t len) { return len ? (int32_t)text[0] : -1; }
int32_t m64_tok_is_eog(int32_t id) { return id == 2; }
/* chat: kind = name length; a turn = (kind, flags, sys_len, user_len, the text's first
 * byte) in out; the end = (kind, last) */
int32_t m64_chat_kind(const char *name, uint32_t len) { return len ? (int32_t)len : (int32_t)name[0] * 0; }
int32_t m64_chat_turn(int32_t kind, int32_t flags, const char *text, uint32_t sys_len, uint32_t user_len,
                      char *scratch, uint32_t scratch_cap, int32_t *out, uint32_t max) {
  (void)scratch, (void)scratch_cap;
  if (max < 5) return -1;
  out[0] = kind, out[1] = flags, out[2] = (int32_t)sys_len, out[3] = (int32_t)user_len, out[4] = text[0];
  return 5;
}
int32_t m64_chat_end(int32_t kind, int32_t last, char *scratch, uint32_t scratch_cap, int32_t *out, uint32_t max) {
  (void)scratch, (void)scratch_cap;
  if (max < 2) return -1;
  out[0] = kind, out[1] = last;
  return 2;
}
static uint64_t g_seed;
void m64_sampler_seed(uint32_t lo, uint32_t hi) { g_seed = ((uint64_t)hi << 32) | lo; }
int32_t m64_sample(const float *logits, float temp, int32_t top_k, float top_p) {
  (void)top_p;
  int32_t best = 0;
  for (int32_t i = 1; i < top_k; i++) if (logits[i] > logits[best]) best = i;
  return best + (temp > 0.0f ? (int32_t)(g_seed & 1) : 0);
}
/* the full sampler's arguments reach the module: a value made of them (checked by runtime_test) */
int32_t m64_sample_ex(const float *logits, float temp, int32_t top_k, float top_p, float min_p, float repeat_penalty,
                      float presence_penalty, float frequency_penalty, const int32_t *last, uint32_t n_last,
                      uint32_t flags) {
  (void)logits, (void)temp, (void)top_p;
  int32_t sum = 0;
  for (uint32_t i = 0; i < n_last; i++) sum += last[i];
  return top_k + (int32_t)(min_p * 10) + (int32_t)(repeat_penalty * 100) + (int32_t)(presence_penalty * 1000) +
         (int32_t)(frequency_penalty * 10000) + sum * 100000 + (int32_t)flags * 1000000;
}

/* threads: m64_threads records n; m64_worker asks the host to run the shares (once). */
static uint32_t g_threads;
int32_t m64_threads(uint32_t n) {
  g_threads = n;
  m64_host_parallel();
  return 0;
}
void m64_worker(uint32_t i, uint32_t n) { (void)i, (void)n; }
uint32_t m64_forward_batch(const int32_t *tokens, uint32_t n, int32_t pos0) {
  return m64_forward(tokens[n - 1], pos0 + (int32_t)n - 1);
}
uint32_t m64_max_batch(void) { return 8; }

/* ABI 5: the cache policy's exports (the page calls them; m64run links module/cache.c) */
uint32_t m64_cache_open(const uint32_t *pages, uint32_t n_layers, uint32_t n_blocks, uint32_t cap_pages,
                        uint32_t capped, uint32_t *out) {
  (void)pages, (void)n_blocks, (void)capped, (void)out;
  return n_layers + cap_pages;
}
int32_t m64_cache_acquire(uint32_t cache, uint32_t layer) { return (int32_t)(cache + layer); }
int32_t m64_cache_place(uint32_t cache, uint32_t layer) { return (int32_t)(cache - layer); }
void m64_cache_release(uint32_t cache, uint32_t layer) { (void)cache, (void)layer; }
int32_t m64_cache_slot_of(uint32_t cache, uint32_t layer) { return (int32_t)(cache * layer); }
uint32_t m64_cache_slot_addr(uint32_t cache, uint32_t slot) { return cache ^ slot; }
uint32_t m64_cache_slots(uint32_t cache) { return cache; }
uint32_t m64_cache_evictions(uint32_t cache) { return cache + 1; }
uint32_t m64_tok_max_ids(uint32_t len) { return 4 * len + 4; }
