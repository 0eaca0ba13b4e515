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

static int str_is(m64_str s, const char *lit) {
  size_t n = strlen(lit);
  return s.len == n && memcmp(s.ptr, lit, n) == 0;
}

/* A special-token id: absent -> fallback (dropped if outside the vocabulary, as llama.cpp
 * does with its defaults); stored negative (e.g. -1 as i32) -> none. A present required id
 * (bos/eos) must be in range; others out of range become "none", as converters sometimes
 * write an out-of-vocabulary padding id. */
static int special_id(const m64_gguf *g, const char *key, int32_t fallback, uint32_t n_vocab,
                      int required, int32_t *out, m64_err *e) {
  uint32_t u;
  int32_t i;
  int64_t v;
  int rc = m64_gguf_get_u32(g, key, &u);
  if (rc == M64_OK) v = u;
  else if (rc == M64_ENOTFOUND) v = fallback, required = 0;
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

/* ---- BPE pre-tokenizers: tokenizer.ggml.pre names (llama.cpp's) -> TOK_PRE_* ---- */

static const struct pre_name {
  const char *name;
  uint32_t pre;
  int llama3; /* llama.cpp sets ignore_merges and add_bos for these */
} PRE_NAMES[] = {
    {"llama-bpe", TOK_PRE_LLAMA3, 1}, {"llama3", TOK_PRE_LLAMA3, 1},
    {"llama-v3", TOK_PRE_LLAMA3, 1},  {"qwen2", TOK_PRE_QWEN2, 0},
    {"deepseek-r1-qwen", TOK_PRE_QWEN2, 0}, {"smollm", TOK_PRE_SMOLLM, 0},
    {"gpt-2", TOK_PRE_GPT2, 0},       {"gpt2", TOK_PRE_GPT2, 0},
};
#define SUPPORTED_PRE "llama-bpe (llama3, llama-v3), qwen2 (deepseek-r1-qwen), smollm, gpt2 (gpt-2)"

/* ---- llama.cpp's text-based special-token rules ---- */

/* Token texts that end generation (llama.cpp's special_eog_ids) and become control tokens. */
static const char *const EOG_TEXTS[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>", "[e~[", NULL};

/* Fill-in-the-middle roles: found by text when their id key is absent; they become control
 * tokens, and pad/repo/file-separator tokens also end generation. */
static const struct fim_role {
  const char *key;
  int eog;
  const char *const texts[9];
} FIM_ROLES[] = {
    {"tokenizer.ggml.fim_pre_token_id", 0,
     {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "begin\xEF\xBD\x9C>",
      "<PRE>", "\xE2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>", NULL}},
    {"tokenizer.ggml.fim_suf_token_id", 0,
     {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81hole\xEF\xBD\x9C>",
      "<SUF>", "\xE2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>", NULL}},
    {"tokenizer.ggml.fim_mid_token_id", 0,
     {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "end\xEF\xBD\x9C>",
      "<MID>", "\xE2\x96\x81<MID>", "<|code_middle|>", "<|middle|>", NULL}},
    {"tokenizer.ggml.fim_pad_token_id", 1,
     {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", NULL}},
    {"tokenizer.ggml.fim_rep_token_id", 1,
     {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", NULL}},
    {"tokenizer.ggml.fim_sep_token_id", 1, {"<|file_sep|>", NULL}},
};

static int in_list(m64_str s, const char *const *list) {
  for (; *list; list++)
    if (str_is(s, *list)) return 1;
  return 0;
}

/* ---- a text -> id table over the GGUF's strings (host side) ---- */

typedef struct text_table {
  const m64_str *texts;
  uint32_t *slots; /* id + 1, 0 = empty */
  uint32_t mask;
} text_table;

static uint32_t hash_text(const char *s, uint64_t n) {
  uint32_t h = 2166136261u;
  for (uint64_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
  return h;
}

/* -1 if absent. */
static int64_t table_find(const text_table *t, const char *s, uint64_t n) {
  for (uint32_t i = hash_text(s, n) & t->mask;; i = (i + 1) & t->mask) {
    uint32_t slot = t->slots[i];
    if (!slot) return -1;
    m64_str o = t->texts[slot - 1];
    if (o.len == n && memcmp(o.ptr, s, n) == 0) return slot - 1;
  }
}

/* Builds the table; *dup is the first id whose text repeats an earlier one, or -1. */
static int table_build(text_table *t, const m64_str *texts, uint32_t n, int64_t *dup) {
  uint32_t cap = 16;
  while (cap < 2 * (uint64_t)n) cap <<= 1;
  t->texts = texts;
  t->slots = calloc(cap, sizeof *t->slots);
  t->mask = cap - 1;
  *dup = -1;
  if (!t->slots) return M64_ENOMEM;
  for (uint32_t id = 0; id < n; id++) {
    for (uint32_t i = hash_text(texts[id].ptr, texts[id].len) & t->mask;; i = (i + 1) & t->mask) {
      uint32_t slot = t->slots[i];
      if (!slot) {
        t->slots[i] = id + 1;
        break;
      }
      m64_str o = texts[slot - 1];
      if (o.len == texts[id].len && memcmp(o.ptr, texts[id].ptr, o.len) == 0) {
        if (*dup < 0) *dup = id;
        t->slots[i] = id + 1; /* last wins, as the module's SentencePiece table */
        break;
      }
    }
  }
  return M64_OK;
}

/* llama.cpp's end-of-generation set and its control-type overrides, on types[] (which gain
 * TOK_TYPE_EOG). eos/eot/eom and the FIM keys come from the GGUF. */
static int mark_special_tokens(const m64_gguf *g, const m64_str *texts, uint8_t *types,
                               uint32_t n, int32_t eos, m64_err *e) {
  int rc;
  int32_t id;
  for (uint32_t i = 0; i < n; i++)
    if (in_list(texts[i], EOG_TEXTS)) types[i] = TOK_TYPE_CONTROL | TOK_TYPE_EOG;
  for (size_t r = 0; r < sizeof FIM_ROLES / sizeof FIM_ROLES[0]; r++) {
    const struct fim_role *role = &FIM_ROLES[r];
    if (m64_gguf_find_kv(g, role->key) >= 0) {
      if ((rc = special_id(g, role->key, -1, n, 0, &id, e))) return rc;
      if (id >= 0 && role->eog) types[id] |= TOK_TYPE_EOG;
      continue;
    }
    for (uint32_t i = 0; i < n; i++) {
      if (!in_list(texts[i], role->texts)) continue;
      if ((types[i] & 0x7f) != TOK_TYPE_CONTROL) types[i] = (uint8_t)(TOK_TYPE_CONTROL | (types[i] & TOK_TYPE_EOG));
      if (role->eog) types[i] |= TOK_TYPE_EOG;
    }
  }
  if (eos >= 0) types[eos] |= TOK_TYPE_EOG;
  if ((rc = special_id(g, "tokenizer.ggml.eot_token_id", -1, n, 0, &id, e))) return rc;
  if (id >= 0) types[id] |= TOK_TYPE_EOG;
  if ((rc = special_id(g, "tokenizer.ggml.eom_token_id", -1, n, 0, &id, e))) return rc;
  if (id >= 0) types[id] |= TOK_TYPE_EOG;

  /* llama.cpp's two workarounds: with <|return|> and <|call|> (or <|calls|> and <|flush|>)
   * "<|end|>" is no EOG but user-defined; with "<|tool_response>", "</s>" is normal text */
  int64_t ret = -1, call = -1, calls = -1, flush = -1, end = -1, tool = -1, s_end = -1;
  for (uint32_t i = 0; i < n; i++) {
    if (!(types[i] & TOK_TYPE_EOG)) continue;
    if (str_is(texts[i], "<|return|>")) ret = i;
    else if (str_is(texts[i], "<|call|>")) call = i;
    else if (str_is(texts[i], "<|calls|>")) calls = i;
    else if (str_is(texts[i], "<|flush|>")) flush = i;
    else if (str_is(texts[i], "<|end|>")) end = i;
    else if (str_is(texts[i], "<|tool_response>")) tool = i;
    else if (str_is(texts[i], "</s>")) s_end = i;
  }
  if (end >= 0 && (call >= 0 || calls >= 0) && (ret >= 0 || flush >= 0))
    types[end] = TOK_TYPE_USER_DEFINED;
  if (tool >= 0 && s_end >= 0) types[s_end] = TOK_TYPE_NORMAL;
  return M64_OK;
}

/* The merges as (left, right, result) ids; each side and their concatenation are tokens. */
static int read_merges(const m64_gguf *g, const text_table *t, uint32_t **out, uint32_t *n_out,
                       m64_err *e) {
  m64_gguf_vtype elem;
  uint64_t n;
  int rc = m64_gguf_get_arr(g, "tokenizer.ggml.merges", &elem, &n);
  if (rc == M64_ENOTFOUND)
    return m64_fail(e, M64_ENOTFOUND, "BPE vocabulary without merges (tokenizer.ggml.merges is missing)");
  if (rc != M64_OK || elem != M64_GGUF_STRING)
    return m64_fail(e, M64_ETYPE, "tokenizer.ggml.merges is not an array of strings");
  if (n > TOK_MAX_MERGES)
    return m64_fail(e, M64_ELIMIT, "%llu merges exceed the cap of %u", (unsigned long long)n,
                    TOK_MAX_MERGES);
  uint32_t *pairs = malloc((n ? n : 1) * TOK_MERGE_BYTES);
  char *both = malloc(2 * TOK_MAX_TOKEN_LEN + 1);
  if (!pairs || !both) {
    free(pairs);
    free(both);
    return m64_fail(e, M64_ENOMEM, "out of memory for %llu merges", (unsigned long long)n);
  }
  for (uint64_t r = 0; r < n; r++) {
    m64_str m;
    if (m64_gguf_arr_str(g, "tokenizer.ggml.merges", r, &m) != M64_OK) {
      rc = m64_fail(e, M64_EFORMAT, "tokenizer.ggml.merges[%llu] cannot be read", (unsigned long long)r);
      break;
    }
    /* "left right", split at the first space after the first byte (as llama.cpp) */
    const char *sp = m.len > 1 ? memchr(m.ptr + 1, ' ', m.len - 1) : NULL;
    int shown = m.len > 64 ? 64 : (int)m.len;
    if (!sp) {
      rc = m64_fail(e, M64_EFORMAT, "tokenizer.ggml.merges[%llu] ('%.*s') is not two tokens",
                    (unsigned long long)r, shown, m.ptr);
      break;
    }
    uint64_t ll = (uint64_t)(sp - m.ptr), rl = m.len - ll - 1;
    int64_t a = table_find(t, m.ptr, ll), b = table_find(t, sp + 1, rl);
    int64_t ab = -1;
    if (a >= 0 && b >= 0 && ll + rl <= 2 * TOK_MAX_TOKEN_LEN) {
      memcpy(both, m.ptr, ll);
      memcpy(both + ll, sp + 1, rl);
      ab = table_find(t, both, ll + rl);
    }
    if (a < 0 || b < 0 || ab < 0) {
      rc = m64_fail(e, M64_EFORMAT,
                    "tokenizer.ggml.merges[%llu] ('%.*s') %s, which is not in the vocabulary",
                    (unsigned long long)r, shown, m.ptr,
                    a < 0 ? "has a left side" : b < 0 ? "has a right side" : "makes a token");
      break;
    }
    pairs[3 * r] = (uint32_t)a;
    pairs[3 * r + 1] = (uint32_t)b;
    pairs[3 * r + 2] = (uint32_t)ab;
  }
  free(both);
  if (rc) {
    free(pairs);
    return rc;
  }
  *out = pairs;
  *n_out = (uint32_t)n;
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
  const int bpe = str_is(model, "gpt2");
  if (!bpe && !str_is(model, "llama")) {
    int shown = model.len > 64 ? 64 : (int)model.len;
    return m64_fail(e, M64_EUNSUPPORTED,
                    "tokenizer model '%.*s' is not supported; supported: llama (SentencePiece), "
                    "gpt2 (byte-level BPE)", shown, model.ptr);
  }
  const struct pre_name *pre = NULL;
  if (bpe) {
    m64_str name = {"", 0};
    rc = m64_gguf_get_str(g, "tokenizer.ggml.pre", &name);
    if (rc != M64_OK && rc != M64_ENOTFOUND)
      return m64_fail(e, M64_ETYPE, "tokenizer.ggml.pre is not a string");
    for (size_t i = 0; i < sizeof PRE_NAMES / sizeof PRE_NAMES[0] && !pre; i++)
      if (str_is(name, PRE_NAMES[i].name)) pre = &PRE_NAMES[i];
    int shown = name.len > 64 ? 64 : (int)name.len;
    if (!pre && rc == M64_ENOTFOUND)
      return m64_fail(e, M64_EUNSUPPORTED, "BPE vocabulary without a pre-tokenizer "
                      "(tokenizer.ggml.pre is missing); supported: " SUPPORTED_PRE);
    if (!pre)
      return m64_fail(e, M64_EUNSUPPORTED, "BPE pre-tokenizer '%.*s' is not supported; "
                      "supported: " SUPPORTED_PRE, shown, name.ptr);
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

  /* llama.cpp's defaults when the ids are absent (SentencePiece 1/2/0; BPE 11/11) */
  int32_t bos, eos, unk, pad;
  if ((rc = special_id(g, "tokenizer.ggml.bos_token_id", bpe ? 11 : 1, n, 1, &bos, e))) return rc;
  if ((rc = special_id(g, "tokenizer.ggml.eos_token_id", bpe ? 11 : 2, n, 1, &eos, e))) return rc;
  if ((rc = special_id(g, "tokenizer.ggml.unknown_token_id", bpe ? -1 : 0, n, 0, &unk, e))) return rc;
  if ((rc = special_id(g, "tokenizer.ggml.padding_token_id", -1, n, 0, &pad, e))) return rc;
  int add_bos, add_space;
  if ((rc = flag(g, "tokenizer.ggml.add_bos_token", bpe ? pre->llama3 : 1, &add_bos, e))) return rc;
  if ((rc = flag(g, "tokenizer.ggml.add_space_prefix", !bpe, &add_space, e))) return rc;
  if (bpe) add_space = 0; /* llama.cpp's BPE tokenizer never uses it */

  m64_str *texts = calloc(n, sizeof *texts);
  uint8_t *types = calloc(n, 1);
  float *scores = calloc(n, sizeof *scores);
  uint32_t *merges = NULL, n_merges = 0;
  text_table table = {0};
  uint8_t *b = NULL;
  if (!texts || !types || !scores) {
    rc = m64_fail(e, M64_ENOMEM, "out of memory for a %u-token vocabulary", n);
    goto done;
  }
  /* pass 1: read, validate and size */
  uint64_t total = bpe ? TOK_BPE_HEADER_BYTES : TOK_HEADER_BYTES;
  for (uint32_t i = 0; i < n; i++) {
    m64_str s;
    if (m64_gguf_arr_str(g, "tokenizer.ggml.tokens", i, &s) != M64_OK) {
      rc = m64_fail(e, M64_EFORMAT, "tokenizer.ggml.tokens[%u] cannot be read", i);
      goto done;
    }
    if (s.len > TOK_MAX_TOKEN_LEN) {
      rc = m64_fail(e, M64_ELIMIT, "token %u is %llu bytes long; the cap is %u", i,
                    (unsigned long long)s.len, TOK_MAX_TOKEN_LEN);
      goto done;
    }
    texts[i] = s;
    int32_t t = TOK_TYPE_NORMAL;
    if (has_types) {
      if (m64_gguf_arr_i32(g, "tokenizer.ggml.token_type", i, &t) != M64_OK) {
        rc = m64_fail(e, M64_EFORMAT, "tokenizer.ggml.token_type[%u] cannot be read", i);
        goto done;
      }
      if (t < TOK_TYPE_NORMAL || t > TOK_TYPE_BYTE) {
        rc = m64_fail(e, M64_EFORMAT,
                      "tokenizer.ggml.token_type[%u] = %d is not a known type (1..6)", i, (int)t);
        goto done;
      }
    }
    types[i] = (uint8_t)t;
    if (has_scores) {
      if (m64_gguf_arr_f32(g, "tokenizer.ggml.scores", i, &scores[i]) != M64_OK) {
        rc = m64_fail(e, M64_EFORMAT, "tokenizer.ggml.scores[%u] cannot be read", i);
        goto done;
      }
      if (scores[i] != scores[i]) {
        rc = m64_fail(e, M64_EFORMAT, "tokenizer.ggml.scores[%u] is NaN", i);
        goto done;
      }
    }
    total += 9 + s.len;
  }
  if ((rc = mark_special_tokens(g, texts, types, n, eos, e))) goto done;
  if (bpe) {
    int64_t dup;
    if ((rc = table_build(&table, texts, n, &dup))) {
      rc = m64_fail(e, rc, "out of memory for a %u-token vocabulary", n);
      goto done;
    }
    if (dup >= 0) {
      int shown = texts[dup].len > 64 ? 64 : (int)texts[dup].len;
      rc = m64_fail(e, M64_EFORMAT, "token %lld ('%.*s') repeats an earlier token's text",
                    (long long)dup, shown, texts[dup].ptr);
      goto done;
    }
    if ((rc = read_merges(g, &table, &merges, &n_merges, e))) goto done;
    total += TOK_MERGE_BYTES * (uint64_t)n_merges;
  }
  if (total > 0xFFFFFFFFull) {
    rc = m64_fail(e, M64_ELIMIT, "tokenizer blob would be %llu bytes (over 4 GiB)",
                  (unsigned long long)total);
    goto done;
  }

  b = (uint8_t *)malloc((size_t)total);
  if (!b) {
    rc = m64_fail(e, M64_ENOMEM, "out of memory for a %llu-byte tokenizer blob",
                  (unsigned long long)total);
    goto done;
  }
  memcpy(b, TOK_BLOB_MAGIC, 4);
  put_u32(b + 4, TOK_BLOB_VERSION);
  put_u32(b + 8, bpe ? TOK_MODEL_BPE : TOK_MODEL_SPM);
  put_u32(b + 12, n);
  put_u32(b + 16, (uint32_t)bos);
  put_u32(b + 20, (uint32_t)eos);
  put_u32(b + 24, (uint32_t)unk);
  put_u32(b + 28, (uint32_t)pad);
  put_u32(b + 32, (add_bos ? TOK_FLAG_ADD_BOS : 0) | (add_space ? TOK_FLAG_ADD_SPACE_PREFIX : 0) |
                      (bpe && pre->llama3 ? TOK_FLAG_IGNORE_MERGES : 0));
  put_u32(b + 36, 0);
  uint8_t *p = b + TOK_HEADER_BYTES;
  if (bpe) {
    put_u32(b + 40, pre->pre);
    put_u32(b + 44, n_merges);
    p = b + TOK_BPE_HEADER_BYTES;
  }
  /* pass 2: records, then merges */
  for (uint32_t i = 0; i < n; i++) {
    uint32_t bits;
    memcpy(&bits, &scores[i], 4);
    put_u32(p, bits);
    p[4] = types[i];
    put_u32(p + 5, (uint32_t)texts[i].len);
    if (texts[i].len) memcpy(p + 9, texts[i].ptr, (size_t)texts[i].len);
    p += 9 + texts[i].len;
  }
  for (uint32_t r = 0; r < n_merges; r++, p += TOK_MERGE_BYTES) {
    put_u32(p, merges[3 * r]);
    put_u32(p + 4, merges[3 * r + 1]);
    put_u32(p + 8, merges[3 * r + 2]);
  }
  *blob = b;
  *size = (size_t)total;
  rc = M64_OK;
done:
  free(texts);
  free(types);
  free(scores);
  free(merges);
  free(table.slots);
  return rc;
}
