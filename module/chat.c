/*
 * chat.c — see chat.h.
 */
#include "chat.h"

#include "base.h"
#include "tokenizer.h"

static const struct {
  const char *name;
  int32_t kind;
} KINDS[] = {
    {"llama3", CHAT_LLAMA3}, {"chatml", CHAT_CHATML}, {"llama2", CHAT_LLAMA2}, {"mistral", CHAT_MISTRAL},
    {"zephyr", CHAT_ZEPHYR}, {"gemma", CHAT_GEMMA},   {"phi3", CHAT_PHI3},
};

int32_t chat_kind(const char *name, uint32_t len) {
  for (uint32_t i = 0; i < sizeof KINDS / sizeof KINDS[0]; i++)
    if (mm_strlen(KINDS[i].name) == len && mm_memcmp(KINDS[i].name, name, len) == 0) return KINDS[i].kind;
  return CHAT_NONE;
}

/* ---- an id list: runs of plain text between special tokens ---- */
typedef struct ids {
  int32_t *out;
  uint32_t n, max;
  char *run; /* plain text waiting to be tokenized as one piece */
  uint32_t run_len, run_cap;
  int32_t err;
} ids;

static void push(ids *b, int32_t id) {
  if (b->err) return;
  if (b->n >= b->max) b->err = -1;
  else b->out[b->n++] = id;
}

/* Tokenizes the pending run (plain: special-token text stays text). */
static void flush(ids *b) {
  if (b->err || !b->run_len) return;
  const int32_t k = tok_encode(b->run, b->run_len, 0, b->out + b->n, b->max - b->n);
  if (k < 0) b->err = k == -1 ? -1 : CHAT_ETOKENIZER;
  else b->n += (uint32_t)k;
  b->run_len = 0;
}

static void text(ids *b, const char *t, uint32_t len) {
  if (b->err) return;
  if (b->run_len + len > b->run_cap) {
    b->err = -1;
    return;
  }
  mm_memcpy(b->run + b->run_len, t, len);
  b->run_len += len;
}
static void str(ids *b, const char *t) { text(b, t, (uint32_t)mm_strlen(t)); }

/* A template marker: its token where the vocabulary has one, else plain text. */
static void marker(ids *b, const char *m) {
  const int32_t id = tok_find(m, (uint32_t)mm_strlen(m));
  if (id < 0) {
    str(b, m);
    return;
  }
  flush(b);
  push(b, id);
}

/* BOS alone, where the vocabulary asks for one. */
static void bos(ids *b) {
  if (b->err) return;
  const int32_t k = tok_encode("", 0, TOK_ENCODE_ADD_BOS, b->out + b->n, b->max - b->n);
  if (k < 0) b->err = k == -1 ? -1 : CHAT_ETOKENIZER;
  else b->n += (uint32_t)k;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
/* llama.cpp trims Llama 3 and Gemma messages: no spaces or newlines at either end. */
static void trim(const char **t, uint32_t *len) {
  while (*len && is_space((*t)[0])) (*t)++, (*len)--;
  while (*len && is_space((*t)[*len - 1])) (*len)--;
}

/* Zephyr-style models end a message with EOS "</s>", or "<|endoftext|>" where that is a token. */
static const char *zephyr_end(void) { return tok_find("<|endoftext|>", 13) >= 0 ? "<|endoftext|>" : "</s>"; }

/* One message of `role` in the header-text-end shapes. */
static void message(ids *b, int32_t kind, const char *role, const char *t, uint32_t len) {
  switch (kind) {
    case CHAT_LLAMA3: /* <|start_header_id|>ROLE<|end_header_id|>\n\nTEXT<|eot_id|> */
      trim(&t, &len);
      marker(b, "<|start_header_id|>"), str(b, role), marker(b, "<|end_header_id|>"), str(b, "\n\n");
      text(b, t, len), marker(b, "<|eot_id|>");
      return;
    case CHAT_CHATML: /* <|im_start|>ROLE\nTEXT<|im_end|>\n */
      marker(b, "<|im_start|>"), str(b, role), str(b, "\n"), text(b, t, len), marker(b, "<|im_end|>"), str(b, "\n");
      return;
    case CHAT_PHI3: { /* <|ROLE|>\nTEXT<|end|>\n */
      char head[32];
      const uint32_t r = (uint32_t)mm_strlen(role);
      mm_memcpy(head, "<|", 2), mm_memcpy(head + 2, role, r), mm_memcpy(head + 2 + r, "|>", 3);
      marker(b, head), str(b, "\n"), text(b, t, len), marker(b, "<|end|>"), str(b, "\n");
      return;
    }
    default: { /* CHAT_ZEPHYR: <|ROLE|>\nTEXT</s>\n */
      char head[32];
      const uint32_t r = (uint32_t)mm_strlen(role);
      mm_memcpy(head, "<|", 2), mm_memcpy(head + 2, role, r), mm_memcpy(head + 2 + r, "|>", 3);
      marker(b, head), str(b, "\n"), text(b, t, len), marker(b, zephyr_end()), str(b, "\n");
      return;
    }
  }
}

int32_t chat_turn(int32_t kind, int32_t flags, const char *sys, uint32_t sys_len, const char *user,
                  uint32_t user_len, char *scratch, uint32_t scratch_cap, int32_t *out, uint32_t max) {
  if (kind <= CHAT_NONE || kind > CHAT_PHI3) return CHAT_EKIND;
  ids b = {.out = out, .max = max, .run = scratch, .run_cap = scratch_cap};
  const int started = flags & CHAT_STARTED;
  if (!started) bos(&b);
  switch (kind) {
    case CHAT_LLAMA3: case CHAT_CHATML: case CHAT_ZEPHYR: case CHAT_PHI3:
      if (sys_len) message(&b, kind, "system", sys, sys_len);
      message(&b, kind, "user", user, user_len);
      if (kind == CHAT_LLAMA3)
        marker(&b, "<|start_header_id|>"), str(&b, "assistant"), marker(&b, "<|end_header_id|>"), str(&b, "\n\n");
      else if (kind == CHAT_CHATML)
        marker(&b, "<|im_start|>"), str(&b, "assistant\n");
      else
        marker(&b, "<|assistant|>"), str(&b, "\n");
      break;
    case CHAT_GEMMA: /* no system role: the system text opens the first user message */
      trim(&sys, &sys_len);
      trim(&user, &user_len);
      marker(&b, "<start_of_turn>"), str(&b, "user\n");
      if (sys_len) text(&b, sys, sys_len), str(&b, "\n\n");
      text(&b, user, user_len), marker(&b, "<end_of_turn>"), str(&b, "\n");
      marker(&b, "<start_of_turn>"), str(&b, "model\n");
      break;
    case CHAT_LLAMA2: /* [INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST]; later turns start with <s> */
      if (started) marker(&b, "<s>");
      str(&b, "[INST] ");
      if (sys_len) str(&b, "<<SYS>>\n"), text(&b, sys, sys_len), str(&b, "\n<</SYS>>\n\n");
      text(&b, user, user_len), str(&b, " [/INST]");
      break;
    default: /* CHAT_MISTRAL: [INST] S\n\nU [/INST] */
      str(&b, "[INST] ");
      if (sys_len) text(&b, sys, sys_len), str(&b, "\n\n");
      text(&b, user, user_len), str(&b, " [/INST]");
      break;
  }
  flush(&b);
  return b.err ? b.err : (int32_t)b.n;
}

int32_t chat_end(int32_t kind, int32_t last, char *scratch, uint32_t scratch_cap, int32_t *out, uint32_t max) {
  if (kind <= CHAT_NONE || kind > CHAT_PHI3) return CHAT_EKIND;
  ids b = {.out = out, .max = max, .run = scratch, .run_cap = scratch_cap};
  switch (kind) {
    case CHAT_LLAMA3: marker(&b, "<|eot_id|>"); break;
    case CHAT_CHATML: marker(&b, "<|im_end|>"), str(&b, "\n"); break;
    case CHAT_ZEPHYR: marker(&b, zephyr_end()), str(&b, "\n"); break;
    case CHAT_GEMMA: marker(&b, "<end_of_turn>"), str(&b, "\n"); break;
    case CHAT_PHI3: marker(&b, "<|end|>"), str(&b, "\n"); break;
    default: marker(&b, "</s>"); break; /* the [INST] formats */
  }
  flush(&b);
  if (b.err) return b.err;
  if (b.n && out[0] == last) { /* already run: only what follows it is left */
    for (uint32_t i = 1; i < b.n; i++) out[i - 1] = out[i];
    b.n--;
  }
  return (int32_t)b.n;
}
