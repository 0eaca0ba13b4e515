/* trap_module.c — a module implementing the host ABI (m64_module.h) whose tokenizer
 * misbehaves on request, so tests can provoke every kind of trap through m64run:
 *   prompt "oob"          reads past the end of the memory (guard page)
 *   prompt "unreachable"  executes `unreachable`
 *   prompt "stack"        recurses without bound (call stack exhausted)
 *   prompt "div"          divides by zero
 *   prompt "slow"         works normally, but every forward takes ~20 ms (for Ctrl-C tests)
 *   prompt "hang"         never returns from forward
 *   prompt "worker"       every forward calls m64.parallel(), and every share traps
 *                         (`unreachable`) on whichever thread runs it
 *   prompt "kqw" / "kqo"  asks the host's m64.kq_rows to read rows / write outputs past the
 *                         end of the memory (where the host has it; elsewhere "oob")
 * Any other prompt: one token per byte, each forward returns logits favouring 'a'+pos%26. */
#include "m64_module.h"

static uint32_t g_top, g_mode;
extern unsigned char __heap_base[];
static float *g_logits;

int32_t m64_abi_version(void) { return M64_ABI_VERSION; }
uint32_t m64_alloc(uint32_t n) {
  if (g_top == 0) g_top = ((uint32_t)(uintptr_t)__heap_base + 63u) & ~63u;
  uint64_t p = g_top, end = (p + n + 63u) & ~63ull;
  uint64_t have = (uint64_t)__builtin_wasm_memory_size(0) * 65536u;
  if (end > 0xffffffffull) return 0;
  if (end > have && __builtin_wasm_memory_grow(0, (uint32_t)((end - have + 65535u) / 65536u)) == (__SIZE_TYPE__)-1)
    return 0;
  g_top = (uint32_t)end;
  return (uint32_t)p;
}
uint32_t m64_state_bytes(uint32_t n_ctx) { return 256u * 4 + n_ctx; }
int32_t m64_init(uint32_t n_ctx) {
  (void)n_ctx;
  g_logits = (float *)(uintptr_t)m64_alloc(256u * 4);
  return g_logits ? 0 : -1;
}
uint32_t m64_n_vocab(void) { return 256; }
uint32_t m64_n_layers(void) { return 2; }
uint32_t m64_n_ctx_train(void) { return 2048; }
int32_t m64_threads(uint32_t n) { (void)n; return 0; }
void m64_worker(uint32_t i, uint32_t n) {
  (void)i, (void)n;
  if (g_mode == 7) __builtin_trap();
}

static volatile uint32_t g_sink;
/* Called through a volatile pointer so the compiler can neither inline it nor make it a
 * loop; no address-taken locals, so the frames are wasm frames (the call depth runs out),
 * not shadow-stack memory. */
static uint32_t recurse(uint32_t d);
static uint32_t (*volatile g_recurse)(uint32_t) = recurse;
static uint32_t recurse(uint32_t d) { return d == 0xffffffffu ? 0 : g_recurse(d + 1) + (d & 1); }

uint32_t m64_forward(int32_t token, int32_t pos) {
  if (g_mode == 6) for (;;) g_sink++;
  if (g_mode == 7) m64_host_parallel();
  if (g_mode == 5) for (uint32_t i = 0; i < 40000000u; i++) g_sink += i;
  const float *w = (const float *)(uintptr_t)m64_host_layer_acquire(0);
  for (int i = 0; i < 256; i++) g_logits[i] = 0.0f;
  g_logits['a' + (pos + 1) % 26] = 1.0f + w[0] * 0.0f + (float)(token & 0);
  m64_host_layer_release(0);
  return (uint32_t)(uintptr_t)g_logits;
}
uint32_t m64_forward_batch(const int32_t *tokens, uint32_t n, int32_t pos0) {
  uint32_t r = 0;
  for (uint32_t i = 0; i < n; i++) r = m64_forward(tokens[i], pos0 + (int32_t)i);
  return r;
}
uint32_t m64_max_batch(void) { return 8; }

int32_t m64_tok_load(const uint8_t *blob, uint32_t size) { return blob && size ? 0 : -1; }

static int is(const char *t, uint32_t len, const char *w) {
  uint32_t i = 0;
  for (; i < len && w[i]; i++) if (t[i] != w[i]) return 0;
  return i == len && !w[i];
}

int32_t m64_tok_encode(const char *text, uint32_t len, int32_t add_bos, int32_t *out, uint32_t max) {
  if (is(text, len, "oob")) return (int32_t)*(volatile uint32_t *)(uintptr_t)0xfffffff0u;
  if ((is(text, len, "kqw") || is(text, len, "kqo")) && m64_host_has_kq_rows()) {
    /* in bounds but for the one range named: 64 rows of 16 Q4_K blocks from near the top
     * of the 4 GiB space, or outputs written there */
    const int w_out = is(text, len, "kqw");
    uint8_t *xq = (uint8_t *)(uintptr_t)m64_alloc(16 * 320);
    m64_host_kq_rows(12, w_out ? g_logits : (float *)(uintptr_t)0xffffff00u,
                     w_out ? (const uint8_t *)(uintptr_t)0xfff00000u : xq, xq, 64, 16, 0);
    return 0;
  }
  if ((is(text, len, "kmx") || is(text, len, "kmo")) && m64_host_has_kq_mat()) {
    /* m64.kq_mat: 5 inputs whose last activation lies past 4 GiB (a stride of 1 GiB), or
     * outputs 4 MiB apart from near the top */
    const int x_out = is(text, len, "kmx");
    uint8_t *xq = (uint8_t *)(uintptr_t)m64_alloc(16 * 320);
    uint8_t *w = (uint8_t *)(uintptr_t)m64_alloc(4 * 144);
    m64_host_kq_mat(12, x_out ? g_logits : (float *)(uintptr_t)0xfffff000u, x_out ? 4 : 0x100000u, w, xq,
                    x_out ? 0x40000000u : 320, 4, 1, x_out ? 5 : 4, 0);
    return 0;
  }
  if (is(text, len, "kqw") || is(text, len, "kqo") || is(text, len, "kmx") || is(text, len, "kmo"))
    return (int32_t)*(volatile uint32_t *)(uintptr_t)0xfffffff0u;
  if (is(text, len, "unreachable")) __builtin_trap(); /* the wasm `unreachable` instruction */
  if (is(text, len, "stack")) return (int32_t)g_recurse(0);
  if (is(text, len, "div")) {
    volatile uint32_t zero = 0;
    return (int32_t)(len / zero);
  }
  g_mode = is(text, len, "slow") ? 5 : is(text, len, "hang") ? 6 : is(text, len, "worker") ? 7 : 0;
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
int32_t m64_tok_find(const char *text, uint32_t len) { return len == 1 ? (unsigned char)text[0] : -1; }
int32_t m64_tok_is_eog(int32_t id) { return id == 2; }
/* no chat formats: every kind is unknown */
int32_t m64_chat_kind(const char *name, uint32_t len) { return (void)name, (void)len, 0; }
int32_t m64_chat_turn(int32_t kind, int32_t flags, const char *text, uint32_t sys_len, uint32_t user_len,
                      char *scratch, uint32_t scratch_cap, int32_t *out, uint32_t max) {
  return (void)kind, (void)flags, (void)text, (void)sys_len, (void)user_len, (void)scratch, (void)scratch_cap,
         (void)out, (void)max, -2;
}
int32_t m64_chat_end(int32_t kind, int32_t last, char *scratch, uint32_t scratch_cap, int32_t *out, uint32_t max) {
  return (void)kind, (void)last, (void)scratch, (void)scratch_cap, (void)out, (void)max, -2;
}
int32_t m64_tok_bos(void) { return 1; }
int32_t m64_tok_eos(void) { return 2; }
void m64_sampler_seed(uint32_t lo, uint32_t hi) { (void)lo, (void)hi; }
int32_t m64_sample(const float *logits, float temp, int32_t top_k, float top_p) {
  (void)temp, (void)top_k, (void)top_p;
  int32_t best = 0;
  for (int32_t i = 1; i < 256; i++) if (logits[i] > logits[best]) best = i;
  return best;
}
int32_t m64_sample_ex(const float *logits, float temp, int32_t top_k, float top_p, float min_p, float repeat_penalty,
                      float presence_penalty, float frequency_penalty, const int32_t *last, uint32_t n_last,
                      uint32_t flags) {
  (void)min_p, (void)repeat_penalty, (void)presence_penalty, (void)frequency_penalty, (void)last, (void)n_last,
      (void)flags;
  return m64_sample(logits, temp, top_k, top_p);
}

/* ABI 5: the cache policy's exports, which only the page calls (m64run links module/cache.c):
 * here they trap, so a host that called them would fail the security tests. */
static int32_t never(void) { __builtin_trap(); }
uint32_t m64_cache_open(const uint32_t *pages, uint32_t n_layers, uint32_t n_blocks, uint32_t cap_pages,
                        uint32_t capped, uint32_t *out) {
  (void)pages, (void)n_layers, (void)n_blocks, (void)cap_pages, (void)capped, (void)out;
  return (uint32_t)never();
}
int32_t m64_cache_acquire(uint32_t c, uint32_t l) { return (void)c, (void)l, never(); }
int32_t m64_cache_place(uint32_t c, uint32_t l) { return (void)c, (void)l, never(); }
void m64_cache_release(uint32_t c, uint32_t l) { (void)c, (void)l, never(); }
int32_t m64_cache_slot_of(uint32_t c, uint32_t l) { return (void)c, (void)l, never(); }
uint32_t m64_cache_slot_addr(uint32_t c, uint32_t s) { return (void)c, (void)s, (uint32_t)never(); }
uint32_t m64_cache_slots(uint32_t c) { return (void)c, (uint32_t)never(); }
uint32_t m64_cache_evictions(uint32_t c) { return (void)c, (uint32_t)never(); }
uint32_t m64_tok_max_ids(uint32_t len) { return 4 * len + 4; }
