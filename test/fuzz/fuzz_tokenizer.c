/* fuzz_tokenizer — the module's tokenizer (module/tokenizer.c, built natively) on
 * arbitrary bytes. The first byte picks what the rest is:
 *   even: text, encoded with a fixed vocabulary (the GGUF named by $M64_FUZZ_VOCAB_GGUF,
 *         else a small built-in SentencePiece vocabulary), then decoded id by id;
 *   odd:  a tokenizer blob, loaded, then used to encode and decode a fixed text.
 *
 * The tokenizer is included as source so the harness can be its host: mm_alloc records
 * every block and the harness frees them all (and forgets the encoder's scratch) after each
 * input, so ASan sees any pointer that survives from one input to the next. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../module/tokenizer.c"
#include "m64_formats.h"
#include "tokblob.h"

/* ---- the host side of base.h: allocation with a workspace-like cap ---- */
#define ARENA_CAP (256u << 20)
static void **g_blocks;
static size_t g_n_blocks, g_cap_blocks, g_bytes;

void *mm_alloc(uint32_t n) {
  if (g_bytes + n > ARENA_CAP) return NULL; /* the workspace limit: encode reports ENOMEM */
  if (g_n_blocks == g_cap_blocks) {
    size_t cap = g_cap_blocks ? 2 * g_cap_blocks : 64;
    void **nb = realloc(g_blocks, cap * sizeof *nb);
    if (!nb) return NULL;
    g_blocks = nb;
    g_cap_blocks = cap;
  }
  void *p = NULL;
  if (posix_memalign(&p, 64, n ? n : 64)) return NULL;
  g_blocks[g_n_blocks++] = p;
  g_bytes += n;
  return p;
}
uint32_t mm_heap_top(void) { return (uint32_t)g_bytes; }
void mm_log_str(const char *msg) { (void)msg; }

static void arena_reset(void) {
  for (size_t i = 0; i < g_n_blocks; i++) free(g_blocks[i]);
  g_n_blocks = 0;
  g_bytes = 0;
  scratch = NULL; /* tokenizer.c's encoder scratch lives in the arena */
  scratch_size = 0;
}

/* ---- the fixed vocabulary for text inputs ---- */
static uint8_t *g_vocab;
static size_t g_vocab_size;

static void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* <unk>, <s>, </s>, 256 byte tokens, then a few merges with descending scores. */
static int builtin_vocab(void) {
  static const char *const words[] = {"\xe2\x96\x81" "t", "he", "\xe2\x96\x81the", "in", "er",
                                      "\xe2\x96\x81" "a", "on", "an", "\xe2\x96\x81\xe2\x96\x81",
                                      "\xc3\xa9", "\xe2\x96\x81\xc3\xa9" "t\xc3\xa9", "<s>"};
  const uint32_t n_words = sizeof words / sizeof words[0], n = 3 + 256 + n_words;
  uint8_t *b = calloc(1, TOK_HEADER_BYTES + (size_t)n * (9 + 16));
  if (!b) return -1;
  memcpy(b, TOK_BLOB_MAGIC, 4);
  put32(b + 4, TOK_BLOB_VERSION);
  put32(b + 8, TOK_MODEL_SPM);
  put32(b + 12, n);
  put32(b + 16, 1);
  put32(b + 20, 2);
  put32(b + 24, 0);
  put32(b + 28, 0xffffffffu);
  put32(b + 32, TOK_FLAG_ADD_BOS | TOK_FLAG_ADD_SPACE_PREFIX);
  size_t pos = TOK_HEADER_BYTES;
  for (uint32_t i = 0; i < n; i++) {
    char text[16];
    uint8_t type = TOK_TYPE_NORMAL;
    float score = 0;
    if (i < 3) {
      snprintf(text, sizeof text, "%s", i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>");
      type = i == 0 ? TOK_TYPE_UNKNOWN : TOK_TYPE_CONTROL;
    } else if (i < 259) {
      snprintf(text, sizeof text, "<0x%02X>", i - 3);
      type = TOK_TYPE_BYTE;
    } else {
      snprintf(text, sizeof text, "%s", words[i - 259]);
      score = -(float)(i - 259);
      if (i == n - 1) type = TOK_TYPE_USER_DEFINED;
    }
    uint32_t bits, len = (uint32_t)strlen(text);
    memcpy(&bits, &score, 4);
    put32(b + pos, bits);
    b[pos + 4] = type;
    put32(b + pos + 5, len);
    memcpy(b + pos + 9, text, len);
    pos += 9 + len;
  }
  g_vocab = b;
  g_vocab_size = pos;
  return 0;
}

static int gguf_vocab(const char *path) {
  m64_gguf *g = NULL;
  m64_err e;
  if (m64_gguf_open(path, &g, &e) != 0) {
    fprintf(stderr, "fuzz_tokenizer: %s: %s\n", path, e.msg);
    return -1;
  }
  int rc = m64_tokblob_build(g, &g_vocab, &g_vocab_size, &e);
  if (rc) fprintf(stderr, "fuzz_tokenizer: %s: %s\n", path, e.msg);
  m64_gguf_close(g);
  return rc;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  const char *path = getenv("M64_FUZZ_VOCAB_GGUF");
  if ((path && *path ? gguf_vocab(path) : builtin_vocab()) != 0) abort();
  return 0;
}

/* Encodes text, checks every id, decodes every id. */
static void round_trip(const char *text, uint32_t len) {
  const uint32_t max = len + 2;
  int32_t *ids = malloc((size_t)max * sizeof *ids);
  if (!ids) return;
  int32_t n = tok_encode(text, len, 1, ids, max);
  if (n > (int32_t)max) abort();
  char piece[TOK_MAX_TOKEN_LEN];
  for (int32_t i = 0; i < n; i++) {
    if (ids[i] < 0 || (uint32_t)ids[i] >= tok_n_vocab()) abort();
    int32_t k = tok_piece(i ? ids[i - 1] : -1, ids[i], piece, sizeof piece);
    if (k < 0 || k > (int32_t)TOK_MAX_TOKEN_LEN) abort();
  }
  /* too small an output buffer is reported, never overrun */
  if (len > 0 && tok_encode(text, len, 1, ids, 1) > 1) abort();
  free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0 || size > (1u << 24)) return 0;
  const uint8_t *rest = data + 1;
  const uint32_t n = (uint32_t)(size - 1);
  if ((data[0] & 1) == 0) {
    if (tok_load(g_vocab, (uint32_t)g_vocab_size) != 0) abort(); /* the fixed vocabulary loads */
    round_trip((const char *)rest, n);
  } else if (tok_load(rest, n) == 0) {
    static const char text[] = "Once upon a time, \xc3\xa9t\xc3\xa9 <s> \xff\xfe\x80 end";
    round_trip(text, sizeof text - 1);
    char piece[TOK_MAX_TOKEN_LEN];
    const int32_t nv = (int32_t)tok_n_vocab();
    for (int32_t id = -1; id <= nv && id < 5000; id++) tok_piece(-1, id, piece, sizeof piece);
    tok_piece(tok_bos(), nv - 1, piece, 1);
  }
  arena_reset();
  return 0;
}
