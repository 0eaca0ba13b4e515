/* fuzz_gguf — the GGUF reader on arbitrary bytes: open, then every accessor over everything
 * the reader accepted (keys, typed getters, array elements, tensors and their data). A
 * crash, an ASan/UBSan report, a leak or a hang is a bug; a clean error is not. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "m64_formats.h"

/* Touches every byte a tensor claims, so a data pointer outside the input is caught. */
static volatile uint8_t g_sink;

static void walk_kv(const m64_gguf *g, uint64_t i) {
  m64_str k = m64_gguf_kv_key(g, i);
  char key[256];
  if (k.len >= sizeof key || memchr(k.ptr, 0, k.len)) return; /* not addressable by name */
  memcpy(key, k.ptr, k.len);
  key[k.len] = 0;
  if (m64_gguf_find_kv(g, key) != (int64_t)i) abort(); /* keys are unique and findable */
  uint32_t u32;
  uint64_t u64;
  int32_t i32;
  int64_t i64;
  float f;
  double d;
  int b;
  m64_str s;
  m64_gguf_get_u32(g, key, &u32);
  m64_gguf_get_u64(g, key, &u64);
  m64_gguf_get_i32(g, key, &i32);
  m64_gguf_get_i64(g, key, &i64);
  m64_gguf_get_f32(g, key, &f);
  m64_gguf_get_f64(g, key, &d);
  m64_gguf_get_bool(g, key, &b);
  if (m64_gguf_get_str(g, key, &s) == 0)
    for (uint64_t j = 0; j < s.len; j++) g_sink ^= (uint8_t)s.ptr[j];
  m64_gguf_vtype elem;
  uint64_t n;
  if (m64_gguf_get_arr(g, key, &elem, &n) != 0) return;
  /* every element (capped: the reader allows 2^24), then one past the end */
  const uint64_t cap = n < 4096 ? n : 4096;
  for (uint64_t j = 0; j < cap; j++) {
    if (m64_gguf_arr_str(g, key, j, &s) == 0)
      for (uint64_t c = 0; c < s.len; c++) g_sink ^= (uint8_t)s.ptr[c];
    m64_gguf_arr_f32(g, key, j, &f);
    m64_gguf_arr_i32(g, key, j, &i32);
  }
  if (m64_gguf_arr_str(g, key, n, &s) == 0 || m64_gguf_arr_f32(g, key, n, &f) == 0 ||
      m64_gguf_arr_i32(g, key, n, &i32) == 0)
    abort(); /* an index past the end must be refused */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  m64_gguf *g = NULL;
  m64_err e;
  if (m64_gguf_open_memory(data, size, &g, &e) != 0) {
    if (g != NULL || !e.msg[0]) abort(); /* an error leaves no object and says why */
    return 0;
  }
  const uint32_t align = m64_gguf_alignment(g);
  if (align == 0 || (align & (align - 1)) || align > M64_MAX_ALIGNMENT) abort();
  /* (the data section may start past the end when no tensor has bytes) */
  if (m64_gguf_data_offset(g) % align) abort();
  for (uint64_t i = 0; i < m64_gguf_n_kv(g); i++) walk_kv(g, i);
  m64_gguf_find_kv(g, "general.architecture");
  for (uint64_t i = 0; i < m64_gguf_n_tensors(g); i++) {
    const m64_gguf_tensor *t = m64_gguf_tensor_at(g, i);
    if (!t || t->n_dims < 1 || t->n_dims > M64_MAX_DIMS) abort();
    if (m64_gguf_find_tensor(g, t->name) != t) abort();
    if (t->nbytes && (t->data < data || t->data + t->nbytes > data + size)) abort();
    if (t->nbytes) g_sink ^= t->data[0] ^ t->data[t->nbytes - 1];
  }
  if (m64_gguf_tensor_at(g, m64_gguf_n_tensors(g)) != NULL) abort();
  m64_gguf_close(g);
  return 0;
}
