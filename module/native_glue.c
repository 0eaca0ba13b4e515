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

/* m64.kq_rows and m64.has_kq_rows (m64_module.h): Q4_K/Q5_K/Q6_K rows in the host's 256-bit
 * vectors (native_kq.h) where this target has AVX2, else has_kq_rows answers 0 and the
 * module's own kernels run. The module passes addresses: every byte read (the rows, the
 * activation) and written (the outputs) is checked against the memory's size first, and
 * a range outside it traps as a wasm access would, so the sandbox holds. */
#include "native_kq.h"
void w2c_m64_kq_rows(struct w2c_m64 *host, u32 type, u32 out, u32 w, u32 xq, u32 rows, u32 nb, u32 pairs) {
  (void)host;
#if defined(M64_NATIVE_KQ)
  const uint64_t bytes = type == NKQ_Q4_K ? 144 : type == NKQ_Q5_K ? 176 : type == NKQ_Q6_K ? 210 : 0;
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
  const uint64_t bytes = type == NKQ_Q4_K ? 144 : type == NKQ_Q5_K ? 176 : type == NKQ_Q6_K ? 210 : 0;
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

/* One wrapper per export (module/exports.h): the void* instance made the typed one. The
 * assert holds the table's wasm types to wasm2c's prototype, which the call alone would
 * not (a float passed where the table says u32 converts silently). */
#define M64_RETURN_u32 return
#define M64_RETURN_void
#define M64_GLUE_(name, since, ret, wret, n, params)                                                   \
  _Static_assert(_Generic(&w2c_m64mod_##name, M64_WTYPE_##wret (*)(w2c_m64mod * M64_WPARAMS(n, params)): 1, \
                          default: 0),                                                                 \
                 #name ": module/exports.h's wasm types are not the module's");                         \
  static M64_WTYPE_##wret glue_##name(void *inst M64_WPARAMS(n, params)) {                              \
    M64_RETURN_##wret w2c_m64mod_##name(INST(inst) M64_ARGS(n, params));                                \
  }
M64_EXPORTS(M64_GLUE_)
#undef M64_GLUE_

__attribute__((visibility("default"))) const m64_native_abi M64_NATIVE_ABI = {
    .abi_version = M64_NATIVE_ABI_VERSION,
    .module_abi_version = M64_ABI_VERSION,
    .instance_size = sizeof(w2c_m64mod),
    .memory_limits = glue_memory_limits,
    .instantiate = glue_instantiate,
    .free = glue_free,
    .memory = glue_memory,
    .stack_pointer = glue_stack_pointer,
#define M64_GLUE_ENTRY_(name, since, ret, wret, n, params) .name = glue_##name,
    M64_EXPORTS(M64_GLUE_ENTRY_)
#undef M64_GLUE_ENTRY_
};
