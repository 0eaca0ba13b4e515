/* types.c — ggml tensor type table: names and block geometry. */
#include "internal.h"

static const m64_type_info TYPES[M64_GGML_TYPE_COUNT] = {
    [M64_GGML_F32] = {"F32", 1, 4},          [M64_GGML_F16] = {"F16", 1, 2},
    [M64_GGML_Q4_0] = {"Q4_0", 32, 18},      [M64_GGML_Q4_1] = {"Q4_1", 32, 20},
    [M64_GGML_Q5_0] = {"Q5_0", 32, 22},      [M64_GGML_Q5_1] = {"Q5_1", 32, 24},
    [M64_GGML_Q8_0] = {"Q8_0", 32, 34},      [M64_GGML_Q8_1] = {"Q8_1", 32, 36},
    [M64_GGML_Q2_K] = {"Q2_K", 256, 84},     [M64_GGML_Q3_K] = {"Q3_K", 256, 110},
    [M64_GGML_Q4_K] = {"Q4_K", 256, 144},    [M64_GGML_Q5_K] = {"Q5_K", 256, 176},
    [M64_GGML_Q6_K] = {"Q6_K", 256, 210},    [M64_GGML_Q8_K] = {"Q8_K", 256, 292},
    [M64_GGML_IQ2_XXS] = {"IQ2_XXS", 256, 66}, [M64_GGML_IQ2_XS] = {"IQ2_XS", 256, 74},
    [M64_GGML_IQ3_XXS] = {"IQ3_XXS", 256, 98}, [M64_GGML_IQ1_S] = {"IQ1_S", 256, 50},
    [M64_GGML_IQ4_NL] = {"IQ4_NL", 32, 18},  [M64_GGML_IQ3_S] = {"IQ3_S", 256, 110},
    [M64_GGML_IQ2_S] = {"IQ2_S", 256, 82},   [M64_GGML_IQ4_XS] = {"IQ4_XS", 256, 136},
    [M64_GGML_I8] = {"I8", 1, 1},            [M64_GGML_I16] = {"I16", 1, 2},
    [M64_GGML_I32] = {"I32", 1, 4},          [M64_GGML_I64] = {"I64", 1, 8},
    [M64_GGML_F64] = {"F64", 1, 8},          [M64_GGML_IQ1_M] = {"IQ1_M", 256, 56},
    [M64_GGML_BF16] = {"BF16", 1, 2},
};

m64_type_info m64_ggml_type_info(uint32_t type) {
  m64_type_info none = {NULL, 0, 0};
  return type < M64_GGML_TYPE_COUNT ? TYPES[type] : none;
}

int m64_ggml_row_bytes(uint32_t type, uint64_t n, uint64_t *out) {
  m64_type_info t = m64_ggml_type_info(type);
  if (!t.name || t.block_elems == 0) return M64_EFORMAT;
  if (n % t.block_elems) return M64_EFORMAT;
  uint64_t r;
  if (m64__mul_ovf(n / t.block_elems, t.block_bytes, &r)) return M64_EFORMAT;
  *out = r;
  return 0;
}
