/*
 * native_glue.c — compiled INTO the module's AOT shared object, next to the wasm2c output.
 *
 * m64c generates the C with `wasm2c -n m64mod` and compiles, e.g.:
 *   clang-19 -shared -fPIC -O2 -fvisibility=hidden -DM64_MODULE_HEADER='"/abs/m64mod.h"'
 *     -I module -I <simde> m64mod.c native_glue.c
 * The only symbol the runtime looks up is M64_NATIVE_ABI (module/native_abi.h): a
 * table of wrappers that turn the typed wasm2c entry points into void*-instance function
 * pointers, so m64run never needs the generated header. Undefined symbols (wasm_rt_*,
 * w2c_m64_* imports) resolve from the m64run executable at dlopen time.
 */
#include <stdint.h>

#include "m64_module.h" /* M64_ABI_VERSION */
#include "native_abi.h"

#ifndef M64_MODULE_HEADER
#error "define M64_MODULE_HEADER as the quoted path of the wasm2c header (-n m64mod)"
#endif
#include M64_MODULE_HEADER
/* The wasm2c C itself, in this translation unit, so that the m64.prefetch import below
 * inlines into the kernels' loops (a call per block would cost what the prefetch saves). */
#ifdef M64_MODULE_SOURCE
#include M64_MODULE_SOURCE
#endif

#define INST(p) ((w2c_m64mod *)(p))
_Static_assert(M64_ABI_VERSION == M64_MODULE_ABI_NEWEST, "native_abi.h's module ABI range is behind m64_module.h");

/* m64.prefetch(addr, bytes): the CPU's prefetch of each cache line. It gets the host's
 * import instance, not the module's, so the memory is the one the last instantiate saw
 * (one module instance per loaded object in m64run); a prefetch never faults, so even a
 * stale address costs nothing but the hint. */
static wasm_rt_memory_t *g_memory;
void w2c_m64_prefetch(struct w2c_m64 *host, u32 addr, u32 bytes) {
  (void)host;
  const uint8_t *p = g_memory->data + addr;
  for (u32 off = 0; off < bytes; off += 64) __builtin_prefetch(p + off);
}

/* m64.dot_i8 and m64.has_dot_i8: defined here, in the module's translation unit, so the
 * dot inlines into the kernels as one instruction and has_dot_i8's constant prunes the
 * kernels' plain SIMD128 path. */
#ifndef WASM_RT_SIMD_TYPE_DEFINED /* a module without SIMD: wasm2c declared no v128 */
#define WASM_RT_SIMD_TYPE_DEFINED
#include <simde/wasm/simd128.h>
typedef simde_v128_t v128;
#endif
#include "native_dot.h"
v128 w2c_m64_dot_i8(struct w2c_m64 *host, v128 acc, v128 a, v128 b) {
  (void)host;
  return m64_native_dot_i8(acc, a, b);
}
u32 w2c_m64_has_dot_i8(struct w2c_m64 *host) {
  (void)host;
  return 1;
}
/* m64.f16_round, f16_widen_lo/hi and has_f16: F16C or FCVT, inlined likewise. */
v128 w2c_m64_f16_round(struct w2c_m64 *host, v128 x) {
  (void)host;
#if defined(M64_NATIVE_F16)
  return m64_native_f16_round(x);
#else
  return x; /* never called: has_f16 answers 0 */
#endif
}
v128 w2c_m64_f16_widen_lo(struct w2c_m64 *host, v128 h) {
  (void)host;
#if defined(M64_NATIVE_F16)
  return m64_native_f16_widen_lo(h);
#else
  return h;
#endif
}
v128 w2c_m64_f16_widen_hi(struct w2c_m64 *host, v128 h) {
  (void)host;
#if defined(M64_NATIVE_F16)
  return m64_native_f16_widen_hi(h);
#else
  return h;
#endif
}
u32 w2c_m64_has_f16(struct w2c_m64 *host) {
  (void)host;
#if defined(M64_NATIVE_F16)
  return 1;
#else
  return 0;
#endif
}

/* m64.kq_rows and m64.has_kq_rows (m64_module.h): Q4_K/Q6_K rows in the host's 256-bit
 * vectors (native_kq.h) where this target has AVX2, else has_kq_rows answers 0 and the
 * module's own kernels run. The module passes addresses: every byte read (the rows, the
 * activation) and written (the outputs) is checked against the memory's size first, and
 * a range outside it traps as a wasm access would, so the sandbox holds. */
#include "native_kq.h"
void w2c_m64_kq_rows(struct w2c_m64 *host, u32 type, u32 out, u32 w, u32 xq, u32 rows, u32 nb, u32 pairs) {
  (void)host;
#if defined(M64_NATIVE_KQ)
  const uint64_t bytes = type == NKQ_Q4_K ? 144 : type == NKQ_Q6_K ? 210 : 0;
  if (!bytes) wasm_rt_trap(WASM_RT_TRAP_UNREACHABLE);
  const uint64_t size = g_memory->size;
  if ((uint64_t)w + (uint64_t)rows * nb * bytes > size || (uint64_t)xq + (uint64_t)nb * NKQ_ACT_BYTES > size ||
      (uint64_t)out + (uint64_t)rows * 4 > size)
    wasm_rt_trap(WASM_RT_TRAP_OOB);
  uint8_t *const mem = g_memory->data;
  m64_native_kq_rows(type, (float *)(mem + out), mem + w, mem + xq, rows, nb, (int)pairs);
#else
  (void)type, (void)out, (void)w, (void)xq, (void)rows, (void)nb, (void)pairs;
  wasm_rt_trap(WASM_RT_TRAP_UNREACHABLE); /* has_kq_rows said 0 */
#endif
}
/* m64.kq_mat and m64.has_kq_mat: the same for n inputs (prefill) where this target has
 * AVX-512 (native_kq.h), checked alike: the rows, every input's activation blocks and
 * every output written lie inside the memory, or the call traps. */
void w2c_m64_kq_mat(struct w2c_m64 *host, u32 type, u32 out, u32 out_stride, u32 w, u32 xq, u32 xq_stride, u32 rows,
                    u32 nb, u32 n, u32 pairs) {
  (void)host;
#if defined(M64_NATIVE_KQ512)
  const uint64_t bytes = type == NKQ_Q4_K ? 144 : type == NKQ_Q6_K ? 210 : 0;
  if (!bytes || !n || !rows || out_stride < rows) wasm_rt_trap(WASM_RT_TRAP_UNREACHABLE);
  const uint64_t size = g_memory->size;
  if ((uint64_t)w + (uint64_t)rows * nb * bytes > size ||
      (uint64_t)xq + (uint64_t)(n - 1) * xq_stride + (uint64_t)nb * NKQ_ACT_BYTES > size ||
      (uint64_t)out + ((uint64_t)(n - 1) * out_stride + rows) * 4 > size)
    wasm_rt_trap(WASM_RT_TRAP_OOB);
  uint8_t *const mem = g_memory->data;
  m64_native_kq_mat(type, (float *)(mem + out), out_stride, mem + w, mem + xq, xq_stride, rows, nb, n, (int)pairs);
#else
  (void)type, (void)out, (void)out_stride, (void)w, (void)xq, (void)xq_stride, (void)rows, (void)nb, (void)n,
      (void)pairs;
  wasm_rt_trap(WASM_RT_TRAP_UNREACHABLE); /* has_kq_mat said 0 */
#endif
}
u32 w2c_m64_has_kq_mat(struct w2c_m64 *host) {
  (void)host;
#if defined(M64_NATIVE_KQ512)
  return 1;
#else
  return 0;
#endif
}
u32 w2c_m64_has_kq_rows(struct w2c_m64 *host) {
  (void)host;
#if defined(M64_NATIVE_KQ)
  return 1;
#else
  return 0;
#endif
}

static void glue_instantiate(void *inst, struct w2c_m64 *host) {
  wasm_rt_init(); /* idempotent; the generated instantiate asserts it */
  wasm2c_m64mod_instantiate(INST(inst), host);
  g_memory = INST(inst)->w2c_m64_memory;
}
static void glue_free(void *inst) { wasm2c_m64mod_free(INST(inst)); }
static wasm_rt_memory_t *glue_memory(void *inst) { return INST(inst)->w2c_m64_memory; }
static void glue_memory_limits(uint64_t *min_pages, uint64_t *max_pages) {
  *min_pages = wasm2c_m64mod_min_m64_memory;
  *max_pages = wasm2c_m64mod_max_m64_memory;
}
static uint32_t *glue_stack_pointer(void *inst) { return w2c_m64mod_0x5F_stack_pointer(INST(inst)); }
static uint32_t glue_threads(void *i, uint32_t n) { return w2c_m64mod_m64_threads(INST(i), n); }
static void glue_worker(void *i, uint32_t k, uint32_t n) { w2c_m64mod_m64_worker(INST(i), k, n); }
static uint32_t glue_forward_batch(void *i, uint32_t tokens, uint32_t n, uint32_t pos0) {
  return w2c_m64mod_m64_forward_batch(INST(i), tokens, n, pos0);
}
static uint32_t glue_max_batch(void *i) { return w2c_m64mod_m64_max_batch(INST(i)); }

static uint32_t glue_abi_version(void *i) { return w2c_m64mod_m64_abi_version(INST(i)); }
static uint32_t glue_alloc(void *i, uint32_t n) { return w2c_m64mod_m64_alloc(INST(i), n); }
static uint32_t glue_state_bytes(void *i, uint32_t n_ctx) {
  return w2c_m64mod_m64_state_bytes(INST(i), n_ctx);
}
static uint32_t glue_init(void *i, uint32_t n_ctx) { return w2c_m64mod_m64_init(INST(i), n_ctx); }
static uint32_t glue_n_vocab(void *i) { return w2c_m64mod_m64_n_vocab(INST(i)); }
static uint32_t glue_n_layers(void *i) { return w2c_m64mod_m64_n_layers(INST(i)); }
static uint32_t glue_n_ctx_train(void *i) { return w2c_m64mod_m64_n_ctx_train(INST(i)); }
static uint32_t glue_forward(void *i, uint32_t token, uint32_t pos) {
  return w2c_m64mod_m64_forward(INST(i), token, pos);
}
static uint32_t glue_tok_load(void *i, uint32_t blob, uint32_t size) {
  return w2c_m64mod_m64_tok_load(INST(i), blob, size);
}
static uint32_t glue_tok_encode(void *i, uint32_t text, uint32_t len, uint32_t add_bos,
                                uint32_t out, uint32_t max) {
  return w2c_m64mod_m64_tok_encode(INST(i), text, len, add_bos, out, max);
}
static uint32_t glue_tok_piece(void *i, uint32_t prev, uint32_t id, uint32_t out,
                               uint32_t max) {
  return w2c_m64mod_m64_tok_piece(INST(i), prev, id, out, max);
}
static uint32_t glue_tok_bos(void *i) { return w2c_m64mod_m64_tok_bos(INST(i)); }
static uint32_t glue_tok_eos(void *i) { return w2c_m64mod_m64_tok_eos(INST(i)); }
static uint32_t glue_tok_find(void *i, uint32_t text, uint32_t len) {
  return w2c_m64mod_m64_tok_find(INST(i), text, len);
}
static uint32_t glue_tok_is_eog(void *i, uint32_t id) { return w2c_m64mod_m64_tok_is_eog(INST(i), id); }
static uint32_t glue_chat_kind(void *i, uint32_t name, uint32_t len) {
  return w2c_m64mod_m64_chat_kind(INST(i), name, len);
}
static uint32_t glue_chat_turn(void *i, uint32_t kind, uint32_t flags, uint32_t text, uint32_t sys_len,
                               uint32_t user_len, uint32_t scratch, uint32_t scratch_cap, uint32_t out, uint32_t max) {
  return w2c_m64mod_m64_chat_turn(INST(i), kind, flags, text, sys_len, user_len, scratch, scratch_cap, out, max);
}
static uint32_t glue_chat_end(void *i, uint32_t kind, uint32_t last, uint32_t scratch, uint32_t scratch_cap,
                              uint32_t out, uint32_t max) {
  return w2c_m64mod_m64_chat_end(INST(i), kind, last, scratch, scratch_cap, out, max);
}
static void glue_sampler_seed(void *i, uint32_t lo, uint32_t hi) {
  w2c_m64mod_m64_sampler_seed(INST(i), lo, hi);
}
static uint32_t glue_sample(void *i, uint32_t logits, float temp, uint32_t top_k,
                            float top_p) {
  return w2c_m64mod_m64_sample(INST(i), logits, temp, top_k, top_p);
}

static uint32_t glue_sample_ex(void *i, uint32_t logits, float temp, uint32_t top_k, float top_p,
                               float min_p, float repeat_penalty, float presence_penalty,
                               float frequency_penalty, uint32_t last, uint32_t n_last, uint32_t flags) {
  return w2c_m64mod_m64_sample_ex(INST(i), logits, temp, top_k, top_p, min_p, repeat_penalty,
                                  presence_penalty, frequency_penalty, last, n_last, flags);
}

__attribute__((visibility("default"))) const m64_native_abi M64_NATIVE_ABI = {
    .abi_version = M64_NATIVE_ABI_VERSION,
    .module_abi_version = M64_ABI_VERSION,
    .instance_size = sizeof(w2c_m64mod),
    .memory_limits = glue_memory_limits,
    .instantiate = glue_instantiate,
    .free = glue_free,
    .memory = glue_memory,
    .stack_pointer = glue_stack_pointer,
    .m64_threads = glue_threads,
    .m64_worker = glue_worker,
    .m64_abi_version = glue_abi_version,
    .m64_alloc = glue_alloc,
    .m64_state_bytes = glue_state_bytes,
    .m64_init = glue_init,
    .m64_n_vocab = glue_n_vocab,
    .m64_n_layers = glue_n_layers,
    .m64_n_ctx_train = glue_n_ctx_train,
    .m64_forward = glue_forward,
    .m64_forward_batch = glue_forward_batch,
    .m64_max_batch = glue_max_batch,
    .m64_tok_load = glue_tok_load,
    .m64_tok_encode = glue_tok_encode,
    .m64_tok_piece = glue_tok_piece,
    .m64_tok_bos = glue_tok_bos,
    .m64_tok_eos = glue_tok_eos,
    .m64_sampler_seed = glue_sampler_seed,
    .m64_sample = glue_sample,
    .m64_tok_find = glue_tok_find,
    .m64_tok_is_eog = glue_tok_is_eog,
    .m64_chat_kind = glue_chat_kind,
    .m64_chat_turn = glue_chat_turn,
    .m64_chat_end = glue_chat_end,
    .m64_sample_ex = glue_sample_ex,
};
