/* kb_glue.c — the bench module's wasm2c output and its m64 imports (the i8 dot, the read-ahead
 * hint) in one translation unit, as compiler/module/native_glue.c builds a model's module, so
 * they inline. */
#include "kb.c"
#include "native_dot.h"

v128 w2c_m64_dot_i8(struct w2c_m64 *host, v128 acc, v128 a, v128 b) {
  (void)host;
  return m64_native_dot_i8(acc, a, b);
}
u32 w2c_m64_has_dot_i8(struct w2c_m64 *host) {
  (void)host;
  return M64_BENCH_HAS_DOT_I8;
}
uint8_t *kb_memory_base; /* driver.c sets it once the memory exists */
void w2c_m64_prefetch(struct w2c_m64 *host, u32 addr, u32 bytes) {
  (void)host;
  for (u32 off = 0; off < bytes; off += 64) __builtin_prefetch(kb_memory_base + addr + off);
}
