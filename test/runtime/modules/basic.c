/* basic.c — a wasm32 test module exercising every runtime path runtime_test checks.
 * Built at test time: clang-19 --target=wasm32 -> wasm2c -n m64mod -> clang-19 -shared. */
#include <stdint.h>
#include <wasm_simd128.h>

#define EXPORT(name) __attribute__((export_name(name), visibility("default")))
#define IMPORT(name) __attribute__((import_module("m64"), import_name(name)))

IMPORT("test_add") uint32_t host_add(uint32_t a, uint32_t b);
IMPORT("test_fail") void host_fail(uint32_t code);
IMPORT("test_reenter") uint32_t host_reenter(uint32_t n);

static float g_buf[1024] __attribute__((aligned(16)));

/* Sum of 0..n-1 (n a multiple of 4, <= 1024) written to memory then summed with SIMD. */
EXPORT("simd_sum") float simd_sum(uint32_t n) {
  for (uint32_t i = 0; i < n; i++) g_buf[i] = (float)i;
  v128_t acc = wasm_f32x4_splat(0.0f);
  for (uint32_t i = 0; i < n; i += 4) acc = wasm_f32x4_add(acc, wasm_v128_load(&g_buf[i]));
  return wasm_f32x4_extract_lane(acc, 0) + wasm_f32x4_extract_lane(acc, 1) +
         wasm_f32x4_extract_lane(acc, 2) + wasm_f32x4_extract_lane(acc, 3);
}

EXPORT("mem_pages") uint32_t mem_pages(void) { return (uint32_t)__builtin_wasm_memory_size(0); }
/* memory.grow: previous size in pages or (uint32_t)-1. */
EXPORT("mem_grow") uint32_t mem_grow(uint32_t delta) {
  return (uint32_t)__builtin_wasm_memory_grow(0, delta);
}

/* Plain loads/stores at any address (no bounds in C; the runtime must catch them). */
EXPORT("load_u8") uint32_t load_u8(uint32_t addr) {
  return *(volatile uint8_t *)(uintptr_t)addr;
}
EXPORT("load_u32_off") uint32_t load_u32_off(uint32_t addr) {
  /* constant offset folded into the load's memarg */
  return ((volatile uint32_t *)(uintptr_t)addr)[1000];
}
EXPORT("store_u32") void store_u32(uint32_t addr, uint32_t v) {
  *(volatile uint32_t *)(uintptr_t)addr = v;
}
EXPORT("load_v128") float load_v128(uint32_t addr) {
  v128_t v = wasm_v128_load((const void *)(uintptr_t)addr);
  return wasm_f32x4_extract_lane(v, 3);
}
/* memory.fill / memory.copy (explicitly range-checked by the generated code). */
EXPORT("fill") void fill(uint32_t dst, uint32_t val, uint32_t n) {
  __builtin_memset((void *)(uintptr_t)dst, (int)val, n);
}
EXPORT("copy") void copy(uint32_t dst, uint32_t src, uint32_t n) {
  __builtin_memmove((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, n);
}

/* call_indirect through a table of function pointers. */
typedef uint32_t (*unop)(uint32_t);
static uint32_t op_inc(uint32_t x) { return x + 1; }
static uint32_t op_dbl(uint32_t x) { return x * 2; }
static uint32_t op_sq(uint32_t x) { return x * x; }
static unop g_ops[3] = {op_inc, op_dbl, op_sq};
EXPORT("apply") uint32_t apply(uint32_t which, uint32_t x) { return g_ops[which % 3](x); }
/* call_indirect with an arbitrary table index (out of range -> trap). */
EXPORT("apply_raw") uint32_t apply_raw(uint32_t fn_index, uint32_t x) {
  unop f = (unop)(uintptr_t)fn_index;
  return f(x);
}

EXPORT("trap_unreachable") void trap_unreachable(void) { __builtin_trap(); }

EXPORT("div_s") int32_t div_s(int32_t a, int32_t b) { return a / b; }
EXPORT("rem_u") uint32_t rem_u(uint32_t a, uint32_t b) { return a % b; }

/* Trapping float->int (i32.trunc_f32_s): NaN -> invalid conversion, huge -> overflow. */
EXPORT("trunc_f32") int32_t trunc_f32(float x) { return __builtin_wasm_trunc_s_i32_f32(x); }

/* Real recursion: the call goes through a volatile function pointer so clang can neither
 * inline it nor turn it into a loop. (No address-taken locals: those would live on the
 * 64 KiB shadow stack in linear memory, which deep recursion would overflow first.) */
static uint32_t recurse(uint32_t n);
static uint32_t (*volatile g_recurse)(uint32_t) = recurse;
static uint32_t recurse(uint32_t n) {
  if (n == 0) return 0;
  return g_recurse(n - 1) + (n & 1);
}
EXPORT("recurse") uint32_t recurse_export(uint32_t n) { return g_recurse(n); }

/* Host imports. */
EXPORT("call_add") uint32_t call_add(uint32_t a, uint32_t b) { return host_add(a, b) * 10; }
EXPORT("call_fail") uint32_t call_fail(uint32_t code) {
  host_fail(code);
  return 7; /* host_fail may return when code == 0 */
}
EXPORT("call_reenter") uint32_t call_reenter(uint32_t n) { return host_reenter(n) + 1; }
