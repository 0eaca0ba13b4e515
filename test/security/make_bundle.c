/* m64-test-bundle MODULE.wasm OUT.m64 — a wasm-only bundle around a hand-written module
 * (trap_module.c): metadata, a tokenizer blob the module accepts, the module, and an image
 * of one layer with one F32 tensor. `m64c aot` then adds native code as for any bundle. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "m64_formats.h"

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: m64-test-bundle MODULE.wasm OUT.m64\n");
    return 1;
  }
  FILE *f = fopen(argv[1], "rb");
  static uint8_t wasm[1 << 20];
  size_t n = f ? fread(wasm, 1, sizeof wasm, f) : 0;
  if (f) fclose(f);
  if (n == 0 || n == sizeof wasm) {
    fprintf(stderr, "m64-test-bundle: cannot read %s\n", argv[1]);
    return 1;
  }
  /* globals and one block: the pager wants at least one block */
  m64_layer_entry layer[2] = {{.name = "globals", .first_tensor = 0, .n_tensors = 1},
                              {.name = "blk.0", .first_tensor = 1, .n_tensors = 1}};
  m64_tensor_entry t[2] = {
      {.name = "w", .type = M64_GGML_F32, .n_dims = 1, .ne = {16, 1, 1, 1}, .nbytes = 64},
      {.name = "blk.0.w", .type = M64_GGML_F32, .n_dims = 1, .ne = {16, 1, 1, 1}, .nbytes = 64}};
  uint32_t n_segments;
  static uint64_t seg[M64_MAX_SECTIONS];
  static const char meta[] = "general.architecture = test\ngeneral.name = trap module\n";
  static const float w[16] = {1.0f};
  m64_err e;
  m64_bundle_writer *bw = NULL;
  int rc = m64_plan_layout(layer, 2, t, 2, 0, &n_segments, seg, &e);
  if (!rc) rc = m64_bw_open(argv[2], &bw, &e);
  if (!rc) rc = m64_bw_add_section(bw, M64_SEC_METADATA, "metadata", meta, sizeof meta - 1, &e);
  if (!rc) rc = m64_bw_add_section(bw, M64_SEC_TOKENIZER, "tokenizer", "any", 3, &e);
  if (!rc) rc = m64_bw_add_section(bw, M64_SEC_MODULE_WASM, "module", wasm, n, &e);
  if (!rc) rc = m64_bw_set_layout(bw, layer, 2, t, 2, &e);
  if (!rc) rc = m64_bw_write_tensor(bw, 0, w, &e);
  if (!rc) rc = m64_bw_write_tensor(bw, 1, w, &e);
  if (!rc) rc = m64_bw_commit(bw, &e);
  if (rc) {
    m64_bw_abort(bw);
    fprintf(stderr, "m64-test-bundle: %s\n", e.msg);
    return 1;
  }
  return 0;
}
