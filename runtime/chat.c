/*
 * chat.c — conversations in a model's chat format, turned into token ids.
 *
 * m64c recognises the GGUF's tokenizer.chat_template (a Jinja program) by its markers and
 * records a name in the bundle (metadata `chat.template`); here each known name is a few
 * lines saying where the markers go. This is not a Jinja engine: templates of other shapes
 * are "none", and m64run falls back to plain completion with a warning.
 *
 * A turn is written as text and markers ("<|eot_id|>", "</s>" ...). A marker that is a
 * token of the vocabulary becomes that token; everything between two such tokens is one
 * run of plain text, tokenized as a whole without parsing special-token text — as
 * llama.cpp tokenizes the formatted conversation, except that what the user typed can
 * never turn into a control token (a user who types "<|eot_id|>" cannot end a turn).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "m64_runtime.h"

typedef enum { CHAT_NONE, CHAT_LLAMA3, CHAT_CHATML, CHAT_LLAMA2, CHAT_MISTRAL, CHAT_ZEPHYR } chat_kind;

static const struct { const char *name; chat_kind kind; } KINDS[] = {
    {"llama3", CHAT_LLAMA3}, {"chatml", CHAT_CHATML}, {"llama2", CHAT_LLAMA2},
    {"mistral", CHAT_MISTRAL}, {"zephyr", CHAT_ZEPHYR},
};

const char *m64_chat_known_templates(void) { return "llama3, chatml, llama2, mistral, zephyr"; }

struct m64_chat {
  m64_session *s;
  chat_kind kind;
  char *system;      /* pending system message (NULL once sent, or none) */
  int started;       /* BOS and the first message are out */
  int32_t *ids;      /* the ids of the last m64_chat_user / m64_chat_end_reply */
  uint32_t n, cap;
  char *run;         /* plain text waiting to be tokenized as one piece */
  size_t run_len, run_cap;
  char zephyr_end[16];
};

/* ---- building an id list: runs of plain text between special tokens ---- */
static int push_ids(m64_chat *c, const int32_t *ids, uint32_t n, m64_err *e) {
  if (c->n + n > c->cap) {
    uint32_t cap = (c->n + n) * 2 + 16;
    int32_t *p = realloc(c->ids, cap * sizeof *p);
    if (!p) return m64_fail(e, M64_ENOMEM, "out of memory");
    c->ids = p, c->cap = cap;
  }
  memcpy(c->ids + c->n, ids, n * sizeof *ids);
  c->n += n;
  return 0;
}

/* Appends the ids of text tokenized with flags (M64_TOKENIZE_*). */
static int push_text(m64_chat *c, const char *t, size_t len, int flags, m64_err *e) {
  int32_t *ids = NULL;
  uint32_t n = 0;
  int rc = m64_session_tokenize(c->s, t, len, flags, &ids, &n, e);
  if (!rc) rc = push_ids(c, ids, n, e);
  free(ids);
  return rc;
}

/* Tokenizes the pending run of text (plain: special-token text stays text). */
static int flush(m64_chat *c, m64_err *e) {
  if (!c->run_len) return 0;
  int rc = push_text(c, c->run, c->run_len, 0, e);
  c->run_len = 0;
  return rc;
}

static int text(m64_chat *c, const char *t, size_t len, m64_err *e) {
  if (c->run_len + len + 1 > c->run_cap) {
    size_t cap = (c->run_len + len + 1) * 2;
    char *p = realloc(c->run, cap);
    if (!p) return m64_fail(e, M64_ENOMEM, "out of memory");
    c->run = p, c->run_cap = cap;
  }
  memcpy(c->run + c->run_len, t, len);
  c->run_len += len;
  return 0;
}
static int str(m64_chat *c, const char *t, m64_err *e) { return text(c, t, strlen(t), e); }

/* A template marker: its token where the vocabulary has one, else plain text. */
static int marker(m64_chat *c, const char *m, m64_err *e) {
  int32_t id = -1;
  int rc = m64_session_find_token(c->s, m, strlen(m), &id, e);
  if (rc) return rc;
  if (id < 0) return str(c, m, e);
  if ((rc = flush(c, e))) return rc;
  return push_ids(c, &id, 1, e);
}

/* BOS alone, where the vocabulary asks for one. */
static int bos(m64_chat *c, m64_err *e) { return push_text(c, "", 0, M64_TOKENIZE_ADD_BOS, e); }

/* llama.cpp trims Llama 3 messages: no spaces or newlines at either end. */
static void trim(const char **text, size_t *len) {
  while (*len && strchr(" \t\r\n", (*text)[0])) (*text)++, (*len)--;
  while (*len && strchr(" \t\r\n", (*text)[*len - 1])) (*len)--;
}

/* One message of `role` in the ChatML / Llama 3 / Zephyr shape: header, text, end. */
static int message(m64_chat *c, const char *role, const char *t, size_t len, m64_err *e) {
  int rc = 0;
  switch (c->kind) {
    case CHAT_LLAMA3: /* <|start_header_id|>ROLE<|end_header_id|>\n\nTEXT<|eot_id|> */
      trim(&t, &len);
      if (!rc) rc = marker(c, "<|start_header_id|>", e);
      if (!rc) rc = str(c, role, e);
      if (!rc) rc = marker(c, "<|end_header_id|>", e);
      if (!rc) rc = str(c, "\n\n", e);
      if (!rc) rc = text(c, t, len, e);
      if (!rc) rc = marker(c, "<|eot_id|>", e);
      return rc;
    case CHAT_CHATML: /* <|im_start|>ROLE\nTEXT<|im_end|>\n */
      if (!rc) rc = marker(c, "<|im_start|>", e);
      if (!rc) rc = str(c, role, e);
      if (!rc) rc = str(c, "\n", e);
      if (!rc) rc = text(c, t, len, e);
      if (!rc) rc = marker(c, "<|im_end|>", e);
      if (!rc) rc = str(c, "\n", e);
      return rc;
    default: { /* CHAT_ZEPHYR: <|ROLE|>\nTEXT</s>\n */
      char head[32];
      snprintf(head, sizeof head, "<|%s|>", role);
      if (!rc) rc = marker(c, head, e);
      if (!rc) rc = str(c, "\n", e);
      if (!rc) rc = text(c, t, len, e);
      if (!rc) rc = marker(c, c->zephyr_end, e);
      if (!rc) rc = str(c, "\n", e);
      return rc;
    }
  }
}

static int assistant_prefix(m64_chat *c, m64_err *e) {
  int rc = 0;
  switch (c->kind) {
    case CHAT_LLAMA3:
      if (!rc) rc = marker(c, "<|start_header_id|>", e);
      if (!rc) rc = str(c, "assistant", e);
      if (!rc) rc = marker(c, "<|end_header_id|>", e);
      if (!rc) rc = str(c, "\n\n", e);
      return rc;
    case CHAT_CHATML:
      if (!rc) rc = marker(c, "<|im_start|>", e);
      if (!rc) rc = str(c, "assistant\n", e);
      return rc;
    case CHAT_ZEPHYR:
      if (!rc) rc = marker(c, "<|assistant|>", e);
      if (!rc) rc = str(c, "\n", e);
      return rc;
    default: return 0; /* [INST] formats: the reply follows [/INST] directly */
  }
}

/* ---- the API ---- */
int m64_chat_open(m64_session *s, const char *template_name, const char *system, m64_chat **out,
                  m64_err *e) {
  *out = NULL;
  chat_kind kind = CHAT_NONE;
  const char *name = template_name ? template_name : "";
  for (size_t i = 0; i < sizeof KINDS / sizeof KINDS[0]; i++)
    if (!strcmp(name, KINDS[i].name)) kind = KINDS[i].kind;
  if (kind == CHAT_NONE)
    return m64_fail(e, M64_EUNSUPPORTED, "chat template '%s' is not one m64 knows (known: %s)",
                    name, m64_chat_known_templates());
  m64_chat *c = calloc(1, sizeof *c);
  if (!c) return m64_fail(e, M64_ENOMEM, "out of memory");
  c->s = s;
  c->kind = kind;
  /* Zephyr-style models end a message with EOS "</s>", or "<|endoftext|>" where that is a token */
  int32_t id = -1;
  int rc = m64_session_find_token(s, "<|endoftext|>", 13, &id, e);
  snprintf(c->zephyr_end, sizeof c->zephyr_end, "%s", !rc && id >= 0 ? "<|endoftext|>" : "</s>");
  if (!rc && system && *system && !(c->system = strdup(system)))
    rc = m64_fail(e, M64_ENOMEM, "out of memory");
  if (rc) {
    m64_chat_close(c);
    return rc;
  }
  *out = c;
  return 0;
}

void m64_chat_close(m64_chat *c) {
  if (!c) return;
  free(c->system);
  free(c->ids);
  free(c->run);
  free(c);
}

int m64_chat_user(m64_chat *c, const char *t, size_t len, const int32_t **ids, uint32_t *n,
                  m64_err *e) {
  c->n = 0;
  c->run_len = 0;
  int rc = 0;
  if (!c->started && (rc = bos(c, e))) return rc;
  const char *sys = c->system;
  switch (c->kind) {
    case CHAT_LLAMA3: case CHAT_CHATML: case CHAT_ZEPHYR:
      if (sys) rc = message(c, "system", sys, strlen(sys), e);
      if (!rc) rc = message(c, "user", t, len, e);
      if (!rc) rc = assistant_prefix(c, e);
      break;
    case CHAT_LLAMA2: /* [INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST]; later turns start with <s> */
      if (c->started) rc = marker(c, "<s>", e);
      if (!rc) rc = str(c, "[INST] ", e);
      if (!rc && sys) {
        rc = str(c, "<<SYS>>\n", e);
        if (!rc) rc = str(c, sys, e);
        if (!rc) rc = str(c, "\n<</SYS>>\n\n", e);
      }
      if (!rc) rc = text(c, t, len, e);
      if (!rc) rc = str(c, " [/INST]", e);
      break;
    default: /* CHAT_MISTRAL: [INST] S\n\nU [/INST] */
      rc = str(c, "[INST] ", e);
      if (!rc && sys) {
        rc = str(c, sys, e);
        if (!rc) rc = str(c, "\n\n", e);
      }
      if (!rc) rc = text(c, t, len, e);
      if (!rc) rc = str(c, " [/INST]", e);
      break;
  }
  if (!rc) rc = flush(c, e);
  if (rc) return rc;
  free(c->system);
  c->system = NULL;
  c->started = 1;
  *ids = c->ids;
  *n = c->n;
  return 0;
}

int m64_chat_end_reply(m64_chat *c, int32_t last, const int32_t **ids, uint32_t *n, m64_err *e) {
  c->n = 0;
  c->run_len = 0;
  int rc;
  switch (c->kind) {
    case CHAT_LLAMA3: rc = marker(c, "<|eot_id|>", e); break;
    case CHAT_CHATML:
      rc = marker(c, "<|im_end|>", e);
      if (!rc) rc = str(c, "\n", e);
      break;
    case CHAT_ZEPHYR:
      rc = marker(c, c->zephyr_end, e);
      if (!rc) rc = str(c, "\n", e);
      break;
    default: rc = marker(c, "</s>", e); break; /* the [INST] formats */
  }
  if (!rc) rc = flush(c, e);
  if (rc) return rc;
  /* The model usually ended the reply with the closing marker itself: the caller has
   * already run that token, so only what follows it is left. */
  uint32_t skip = c->n && c->ids[0] == last ? 1 : 0;
  *ids = c->ids + skip;
  *n = c->n - skip;
  return 0;
}
