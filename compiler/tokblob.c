/* tokblob.c — GGUF tokenizer.ggml.* -> the module's tokenizer blob (tokblob.h). */
#include "tokblob.h"

#include <stdlib.h>
#include <string.h>

#include "module/tokenizer.h"

static void put_u32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

/* A special-token id: absent -> fallback; stored negative (e.g. -1 as i32) -> none.
 * Required ids (bos/eos) must be in range; others out of range become "none", as
 * converters sometimes write an out-of-vocabulary padding id. */
static int special_id(const m64_gguf *g, const char *key, int32_t fallback, uint32_t n_vocab,
                      int required, int32_t *out, m64_err *e) {
  uint32_t u;
  int32_t i;
  int64_t v;
  int rc = m64_gguf_get_u32(g, key, &u);
  if (rc == M64_OK) v = u;
  else if (rc == M64_ENOTFOUND) v = fallback;
  else if (m64_gguf_get_i32(g, key, &i) == M64_OK) v = i;
  else return m64_fail(e, M64_ETYPE, "%s is not an integer id", key);
  if (v < 0 || v >= n_vocab) {
    if (required && v >= 0)
      return m64_fail(e, M64_EFORMAT, "%s = %lld is outside the vocabulary (%u tokens)", key,
                      (long long)v, n_vocab);
    v = -1;
  }
  *out = (int32_t)v;
  return M64_OK;
}

static int flag(const m64_gguf *g, const char *key, int fallback, int *out, m64_err *e) {
  int rc = m64_gguf_get_bool(g, key, out);
  if (rc == M64_ENOTFOUND) { *out = fallback; return M64_OK; }
  if (rc != M64_OK) return m64_fail(e, M64_ETYPE, "%s is not a bool", key);
  return M64_OK;
}

/* An optional per-token array: absent is fine, otherwise it must match the tokens. */
static int optional_array(const m64_gguf *g, const char *key, m64_gguf_vtype want,
                          uint64_t n_vocab, int *present, m64_err *e) {
  m64_gguf_vtype elem;
  uint64_t n;
  int rc = m64_gguf_get_arr(g, key, &elem, &n);
  *present = 0;
  if (rc == M64_ENOTFOUND) return M64_OK;
  if (rc != M64_OK) return m64_fail(e, M64_ETYPE, "%s is not an array", key);
  if (elem != want)
    return m64_fail(e, M64_ETYPE, "%s has elements of GGUF type %d, expected %d", key,
                    (int)elem, (int)want);
  if (n != n_vocab)
    return m64_fail(e, M64_EFORMAT, "%s has %llu entries but tokenizer.ggml.tokens has %llu",
                    key, (unsigned long long)n, (unsigned long long)n_vocab);
  *present = 1;
  return M64_OK;
}

int m64_tokblob_build(const m64_gguf *g, uint8_t **blob, size_t *size, m64_err *e) {
  *blob = NULL;
  *size = 0;
  m64_str model;
  int rc = m64_gguf_get_str(g, "tokenizer.ggml.model", &model);
  if (rc == M64_ENOTFOUND)
    return m64_fail(e, M64_ENOTFOUND,
                    "the GGUF has no vocabulary (tokenizer.ggml.model is missing)");
  if (rc != M64_OK) return m64_fail(e, M64_ETYPE, "tokenizer.ggml.model is not a string");
  if (!(model.len == 5 && memcmp(model.ptr, "llama", 5) == 0)) {
    int shown = model.len > 64 ? 64 : (int)model.len;
    const char *kind = model.len == 4 && memcmp(model.ptr, "gpt2", 4) == 0 ? " (BPE)" : "";
    return m64_fail(e, M64_EUNSUPPORTED,
                    "tokenizer model '%.*s'%s is not supported yet; supported: llama "
                    "(SentencePiece)", shown, model.ptr, kind);
  }

  m64_gguf_vtype elem;
  uint64_t n64;
  rc = m64_gguf_get_arr(g, "tokenizer.ggml.tokens", &elem, &n64);
  if (rc == M64_ENOTFOUND)
    return m64_fail(e, M64_ENOTFOUND,
                    "the GGUF has no vocabulary (tokenizer.ggml.tokens is missing)");
  if (rc != M64_OK || elem != M64_GGUF_STRING)
    return m64_fail(e, M64_ETYPE, "tokenizer.ggml.tokens is not an array of strings");
  if (n64 == 0) return m64_fail(e, M64_EFORMAT, "tokenizer.ggml.tokens is empty");
  if (n64 > TOK_MAX_VOCAB)
    return m64_fail(e, M64_ELIMIT, "vocabulary of %llu tokens exceeds the cap of %u",
                    (unsigned long long)n64, TOK_MAX_VOCAB);
  uint32_t n = (uint32_t)n64;
  int has_scores, has_types;
  rc = optional_array(g, "tokenizer.ggml.scores", M64_GGUF_F32, n, &has_scores, e);
  if (rc) return rc;
  rc = optional_array(g, "tokenizer.ggml.token_type", M64_GGUF_I32, n, &has_types, e);
  if (rc) return rc;

  /* llama.cpp's SentencePiece defaults when the ids are absent */
  int32_t bos, eos, unk, pad;
  if ((rc = special_id(g, "tokenizer.ggml.bos_token_id", 1, n, 1, &bos, e))) return rc;
  if ((rc = special_id(g, "tokenizer.ggml.eos_token_id", 2, n, 1, &eos, e))) return rc;
  if ((rc = special_id(g, "tokenizer.ggml.unknown_token_id", 0, n, 0, &unk, e))) return rc;
  if ((rc = special_id(g, "tokenizer.ggml.padding_token_id", -1, n, 0, &pad, e))) return rc;
  int add_bos, add_space;
  if ((rc = flag(g, "tokenizer.ggml.add_bos_token", 1, &add_bos, e))) return rc;
  if ((rc = flag(g, "tokenizer.ggml.add_space_prefix", 1, &add_space, e))) return rc;

  /* pass 1: validate and size */
  uint64_t total = TOK_HEADER_BYTES;
  for (uint32_t i = 0; i < n; i++) {
    m64_str s;
    if (m64_gguf_arr_str(g, "tokenizer.ggml.tokens", i, &s) != M64_OK)
      return m64_fail(e, M64_EFORMAT, "tokenizer.ggml.tokens[%u] cannot be read", i);
    if (s.len > TOK_MAX_TOKEN_LEN)
      return m64_fail(e, M64_ELIMIT, "token %u is %llu bytes long; the cap is %u", i,
                      (unsigned long long)s.len, TOK_MAX_TOKEN_LEN);
    if (has_types) {
      int32_t t;
      if (m64_gguf_arr_i32(g, "tokenizer.ggml.token_type", i, &t) != M64_OK)
        return m64_fail(e, M64_EFORMAT, "tokenizer.ggml.token_type[%u] cannot be read", i);
      if (t < TOK_TYPE_NORMAL || t > TOK_TYPE_BYTE)
        return m64_fail(e, M64_EFORMAT,
                        "tokenizer.ggml.token_type[%u] = %d is not a known type (1..6)", i,
                        (int)t);
    }
    if (has_scores) {
      float f;
      if (m64_gguf_arr_f32(g, "tokenizer.ggml.scores", i, &f) != M64_OK)
        return m64_fail(e, M64_EFORMAT, "tokenizer.ggml.scores[%u] cannot be read", i);
      if (f != f) return m64_fail(e, M64_EFORMAT, "tokenizer.ggml.scores[%u] is NaN", i);
    }
    total += 9 + s.len;
  }
  if (total > 0xFFFFFFFFull)
    return m64_fail(e, M64_ELIMIT, "tokenizer blob would be %llu bytes (over 4 GiB)",
                    (unsigned long long)total);

  uint8_t *b = (uint8_t *)malloc((size_t)total);
  if (!b) return m64_fail(e, M64_ENOMEM, "out of memory for a %llu-byte tokenizer blob",
                          (unsigned long long)total);
  memcpy(b, TOK_BLOB_MAGIC, 4);
  put_u32(b + 4, TOK_BLOB_VERSION);
  put_u32(b + 8, TOK_MODEL_SPM);
  put_u32(b + 12, n);
  put_u32(b + 16, (uint32_t)bos);
  put_u32(b + 20, (uint32_t)eos);
  put_u32(b + 24, (uint32_t)unk);
  put_u32(b + 28, (uint32_t)pad);
  put_u32(b + 32, (add_bos ? TOK_FLAG_ADD_BOS : 0) | (add_space ? TOK_FLAG_ADD_SPACE_PREFIX : 0));
  put_u32(b + 36, 0);
  /* pass 2: records (every read succeeded in pass 1) */
  uint8_t *p = b + TOK_HEADER_BYTES;
  for (uint32_t i = 0; i < n; i++) {
    m64_str s;
    float score = 0.0f;
    int32_t type = TOK_TYPE_NORMAL;
    uint32_t bits;
    m64_gguf_arr_str(g, "tokenizer.ggml.tokens", i, &s);
    if (has_scores) m64_gguf_arr_f32(g, "tokenizer.ggml.scores", i, &score);
    if (has_types) m64_gguf_arr_i32(g, "tokenizer.ggml.token_type", i, &type);
    memcpy(&bits, &score, 4);
    put_u32(p, bits);
    p[4] = (uint8_t)type;
    put_u32(p + 5, (uint32_t)s.len);
    if (s.len) memcpy(p + 9, s.ptr, (size_t)s.len);
    p += 9 + s.len;
  }
  *blob = b;
  *size = (size_t)total;
  return M64_OK;
}
