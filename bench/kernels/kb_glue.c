/* kb_glue.c — the bench module's wasm2c output and its m64 imports (the i8 dot, the read-ahead
 * hint) in one translation unit, as module/native_glue.c builds a model's module, so
 * they inline. */
#include "kb.c"
#include "native_dot.h"

v128 w2c_m64_dot_i8(struct w2c_m64 *host, v128 acc, v128 a, v128 b) {
  (void)host;
  return m64_native_dot_i8(acc, a, b);
}
/* M64_BENCH_HAS_DOT_I8: 0 the kernels' SIMD128 path, 1 the i8 dot, 2 also m64.kq_rows */
u32 w2c_m64_has_dot_i8(struct w2c_m64 *host) {
  (void)host;
  return M64_BENCH_HAS_DOT_I8 >= 1;
}
uint8_t *kb_memory_base; /* driver.c sets it once the memory exists */
void w2c_m64_prefetch(struct w2c_m64 *host, u32 addr, u32 bytes) {
  (void)host;
  for (u32 off = 0; off < bytes; off += 64) __builtin_prefetch(kb_memory_base + addr + off);
}

#include "native_kq.h"
u32 w2c_m64_has_kq_rows(struct w2c_m64 *host) {
  (void)host;
#if defined(M64_NATIVE_KQ)
  return M64_BENCH_HAS_DOT_I8 == 2;
#else
  return 0;
#endif
}
void w2c_m64_kq_rows(struct w2c_m64 *host, u32 type, u32 out, u32 w, u32 xq, u32 rows, u32 nb, u32 pairs) {
  (void)host;
#if defined(M64_NATIVE_KQ) /* the bench's addresses are its own: no bounds checks here */
  m64_native_kq_rows(type, (float *)(kb_memory_base + out), kb_memory_base + w, kb_memory_base + xq, rows, nb, (int)pairs);
#else
  (void)type, (void)out, (void)w, (void)xq, (void)rows, (void)nb, (void)pairs;
#endif
}
u32 w2c_m64_has_kq_mat(struct w2c_m64 *host) {
  (void)host;
#if defined(M64_NATIVE_KQ512)
  return M64_BENCH_HAS_DOT_I8 == 2;
#else
  return 0;
#endif
}
void w2c_m64_kq_mat(struct w2c_m64 *host, u32 type, u32 out, u32 out_stride, u32 w, u32 xq, u32 xq_stride, u32 rows,
                    u32 nb, u32 n, u32 pairs) {
  (void)host;
#if defined(M64_NATIVE_KQ512)
  m64_native_kq_mat(type, (float *)(kb_memory_base + out), out_stride, kb_memory_base + w, kb_memory_base + xq,
                    xq_stride, rows, nb, n, (int)pairs);
#else
  (void)type, (void)out, (void)out_stride, (void)w, (void)xq, (void)xq_stride, (void)rows, (void)nb, (void)n,
      (void)pairs;
#endif
}
