/*
 * chat.c — a conversation with the model in its chat format. The format itself is the
 * module's (module/chat.h: m64_chat_turn / m64_chat_end), shared with the page; this
 * file keeps the conversation's state (the pending system message, whether BOS is out)
 * and moves bytes in and ids out.
 */
#include <stdlib.h>
#include <string.h>

#include "session_internal.h"

const char *m64_chat_known_templates(void) { return "llama3, chatml, llama2, mistral, zephyr, gemma, phi3"; }

struct m64_chat {
  m64_session *s;
  int32_t kind;      /* the module's CHAT_* */
  char *system;      /* pending system message (NULL once sent, or none) */
  int started;       /* BOS and the first message are out */
  int32_t *ids;      /* the ids of the last m64_chat_user / m64_chat_end_reply */
  uint32_t cap;
};

/* Workspace for a call over n bytes of text: the text, the module's scratch for runs of
 * text (n + 256) and up to `max` ids. A text byte becomes at most 3 ids (an unmergeable
 * byte of a SentencePiece vocabulary without byte pieces of its own); markers add a few. */
typedef struct span { uint32_t text, scratch, scratch_cap, out, max; } span;

static int reserve(m64_chat *c, uint64_t n, span *sp, m64_err *e) {
  m64_session *s = c->s;
  const uint64_t scratch_cap = n + 256, max = 3 * n + 64;
  const uint64_t need = ((n + 3) & ~3ull) + ((scratch_cap + 3) & ~3ull) + 4 * max;
  uint32_t base = s->io;
  if (need > IO_BYTES) {
    if (need > 0x40000000ull) return m64_fail(e, M64_ELIMIT, "a chat message of %llu bytes is too long", (unsigned long long)n);
    int rc = m64_session_invoke1(s, OP_m64_alloc, (uint32_t)need, &base, e);
    if (rc) return rc;
    if (!base) return m64_fail(e, M64_ELIMIT, "workspace too small for a chat message of %llu bytes", (unsigned long long)n);
  }
  sp->text = base;
  sp->scratch = base + (uint32_t)((n + 3) & ~3ull);
  sp->scratch_cap = (uint32_t)scratch_cap;
  sp->out = sp->scratch + (uint32_t)((scratch_cap + 3) & ~3ull);
  sp->max = (uint32_t)max;
  if (sp->max > c->cap) {
    int32_t *p = realloc(c->ids, sp->max * sizeof *p);
    if (!p) return m64_fail(e, M64_ENOMEM, "out of memory");
    c->ids = p, c->cap = sp->max;
  }
  return 0;
}

/* The ids the module wrote (ret of the call), copied out. */
static int take_ids(m64_chat *c, const span *sp, uint32_t ret, const int32_t **ids, uint32_t *n, m64_err *e) {
  const int32_t k = (int32_t)ret;
  if (k < 0 || (uint32_t)k > sp->max) return m64_fail(e, M64_EFORMAT, "the module's chat format failed (%d)", k);
  memcpy(c->ids, m64_session_ws(c->s, sp->out, (uint64_t)k * 4), (size_t)k * 4);
  *ids = c->ids;
  *n = (uint32_t)k;
  return 0;
}

int m64_chat_open(m64_session *s, const char *template_name, const char *system, m64_chat **out, m64_err *e) {
  *out = NULL;
  const char *name = template_name ? template_name : "";
  if (s->abi->abi_version < 4)
    return m64_fail(e, M64_EUNSUPPORTED,
                    "this bundle's module predates chat formats in the module: rebuild it with `m64c build`");
  const size_t len = strlen(name);
  if (len > 64) return m64_fail(e, M64_EUNSUPPORTED, "chat template '%.64s...' is not one m64 knows (known: %s)", name,
                                m64_chat_known_templates());
  memcpy(m64_session_ws(s, s->io, len), name, len);
  call k = {.op = OP_m64_chat_kind, .a = {s->io, (uint32_t)len}};
  int rc = m64_session_invoke(s, &k, e);
  if (rc) return rc;
  if ((int32_t)k.ret <= 0)
    return m64_fail(e, M64_EUNSUPPORTED, "chat template '%s' is not one m64 knows (known: %s)", name,
                    m64_chat_known_templates());
  m64_chat *c = calloc(1, sizeof *c);
  if (!c) return m64_fail(e, M64_ENOMEM, "out of memory");
  c->s = s;
  c->kind = (int32_t)k.ret;
  if (system && *system && !(c->system = strdup(system))) {
    m64_chat_close(c);
    return m64_fail(e, M64_ENOMEM, "out of memory");
  }
  *out = c;
  return 0;
}

void m64_chat_close(m64_chat *c) {
  if (!c) return;
  free(c->system);
  free(c->ids);
  free(c);
}

int m64_chat_user(m64_chat *c, const char *t, size_t len, const int32_t **ids, uint32_t *n, m64_err *e) {
  const size_t sys_len = c->system ? strlen(c->system) : 0;
  span sp = {0};
  int rc = reserve(c, (uint64_t)sys_len + len, &sp, e);
  if (rc) return rc;
  uint8_t *text = m64_session_ws(c->s, sp.text, sys_len + len);
  if (sys_len) memcpy(text, c->system, sys_len);
  if (len) memcpy(text + sys_len, t, len);
  call k = {.op = OP_m64_chat_turn,
            .a = {(uint32_t)c->kind, c->started ? 1u : 0u, sp.text, (uint32_t)sys_len, (uint32_t)len, sp.scratch,
                  sp.scratch_cap, sp.out, sp.max}};
  if ((rc = m64_session_invoke(c->s, &k, e)) || (rc = take_ids(c, &sp, k.ret, ids, n, e))) return rc;
  free(c->system);
  c->system = NULL;
  c->started = 1;
  return 0;
}

int m64_chat_end_reply(m64_chat *c, int32_t last, const int32_t **ids, uint32_t *n, m64_err *e) {
  span sp = {0};
  int rc = reserve(c, 0, &sp, e);
  if (rc) return rc;
  call k = {.op = OP_m64_chat_end, .a = {(uint32_t)c->kind, (uint32_t)last, sp.scratch, sp.scratch_cap, sp.out, sp.max}};
  if ((rc = m64_session_invoke(c->s, &k, e))) return rc;
  return take_ids(c, &sp, k.ret, ids, n, e);
}
