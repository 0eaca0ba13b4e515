/*
 * m64run_chat.c — `m64run -i`: a conversation on stdin/stdout in the model's chat format.
 *
 * One line of input is one user message. The KV cache carries over: each turn runs only
 * its own tokens (template, message, and the start of the reply) at the positions after
 * the previous turn, then the reply, then the tokens that close it. Ctrl-C stops the
 * current reply; Ctrl-D (end of input) ends the session.
 */
#include "m64run_chat.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t g_stop_reply;
static void on_sigint(int sig) {
  (void)sig;
  g_stop_reply = 1;
}

static void print_ids(const char *what, uint32_t turn, const int32_t *ids, uint32_t n, uint32_t pos) {
  fprintf(stderr, "m64run: turn %u: %s: %u tokens at positions %u..%u: [", turn, what, n, pos,
          n ? pos + n - 1 : pos);
  for (uint32_t i = 0; i < n; i++) fprintf(stderr, "%s%d", i ? "," : "", ids[i]);
  fprintf(stderr, "]\n");
}

/* Every id run so far, by position: the penalties count its last N. */
static int32_t *g_hist;

/* Runs ids at *pos (as one batch) and advances it. */
static int feed(m64_session *s, const int32_t *ids, uint32_t n, uint32_t *pos, m64_err *e) {
  if (!n) return 0;
  if ((uint64_t)*pos + n > m64_session_n_ctx(s))
    return m64_fail(e, M64_ELIMIT, "the conversation filled the context of %u tokens (-c)",
                    m64_session_n_ctx(s));
  const float *logits;
  int rc = m64_session_eval_batch(s, ids, n, *pos, &logits, e);
  if (rc) return rc;
  memcpy(g_hist + *pos, ids, (size_t)n * sizeof *ids);
  *pos += n;
  return 0;
}

/* Samples and prints the reply until end of turn, n_predict tokens, Ctrl-C or a full
 * context; *last = the last token run (-1 if none). */
static int reply(m64_session *s, const m64run_chat_opts *o, uint32_t *pos, int32_t *last,
                 m64_err *e) {
  char *text = NULL, piece[1024];
  size_t len = 0, cap = 0, printed = 0;
  int32_t prev = -1;
  int rc = 0;
  *last = -1;
  for (long k = 0; (o->n_predict < 0 || k < o->n_predict) && !g_stop_reply; k++) {
    int32_t id;
    int eog;
    const uint32_t last_n = o->repeat_last_n < 0 ? *pos : (uint32_t)o->repeat_last_n;
    const uint32_t n_last = *pos < last_n ? *pos : last_n;
    if ((rc = m64_session_sample_ex(s, &o->sampling, g_hist + *pos - n_last, n_last, &id, e))) break;
    if ((rc = m64_session_is_eog(s, id, &eog, e))) break;
    if (*pos >= m64_session_n_ctx(s)) {
      fprintf(stderr, "\nm64run: the context of %u tokens is full\n", m64_session_n_ctx(s));
      break;
    }
    if ((rc = feed(s, &id, 1, pos, e))) break; /* the reply becomes part of the history */
    *last = id;
    if (eog) break;
    size_t n;
    if ((rc = m64_session_piece(s, prev, id, piece, sizeof piece, &n, e))) break;
    prev = id;
    if (len + n > cap) {
      cap = (len + n) * 2;
      char *t = realloc(text, cap);
      if (!t) {
        rc = m64_fail(e, M64_ENOMEM, "out of memory");
        break;
      }
      text = t;
    }
    memcpy(text + len, piece, n);
    len += n;
    int stopped = 0; /* -r: the reply ends right after a stop string */
    for (int k = 0; k < o->n_stops && !stopped; k++) {
      const size_t sl = o->stop_len[k], from = len > n + sl - 1 ? len - n - sl + 1 : 0;
      for (size_t at = from; at + sl <= len; at++)
        if (!memcmp(text + at, o->stops[k], sl)) {
          len = at + sl;
          stopped = 1;
          break;
        }
    }
    size_t ready = m64_utf8_complete(text + printed, len - printed); /* whole characters */
    fwrite(text + printed, 1, ready, stdout);
    printed += ready;
    fflush(stdout);
    if (stopped) break;
  }
  if (text) fwrite(text + printed, 1, len - printed, stdout);
  fputc('\n', stdout);
  fflush(stdout);
  free(text);
  return rc;
}

int m64run_chat(m64_session *s, const m64run_chat_opts *o, m64_err *e) {
  char name[64] = "";
  if (o->template_name) snprintf(name, sizeof name, "%s", o->template_name);
  else if (m64_session_meta(s, "chat.template", name, sizeof name)) snprintf(name, sizeof name, "none");
  if (!strcmp(name, "none"))
    return m64_fail(e, M64_EUNSUPPORTED,
                    "this model's chat template is not one m64 recognises (known: %s); name one "
                    "with --chat-template, or run without -i for plain completion",
                    m64_chat_known_templates());
  m64_chat *c = NULL;
  if (!(g_hist = malloc((size_t)m64_session_n_ctx(s) * sizeof *g_hist)))
    return m64_fail(e, M64_ENOMEM, "out of memory");
  int rc = m64_chat_open(s, name, o->system, &c, e);
  if (rc) {
    free(g_hist);
    return rc;
  }
  const int tty = isatty(STDIN_FILENO);
  if (o->verbose) fprintf(stderr, "m64run: chat template %s\n", name);

  struct sigaction sa = {0}, old;
  sa.sa_handler = on_sigint; /* no SA_RESTART: Ctrl-C interrupts a blocked read */
  sigaction(SIGINT, &sa, &old);
  uint32_t pos = 0, turn = 0;
  char *line = NULL;
  size_t line_cap = 0;
  for (;;) {
    if (tty) {
      fputs("> ", stdout);
      fflush(stdout);
    }
    g_stop_reply = 0;
    ssize_t got = getline(&line, &line_cap, stdin);
    if (got < 0) {
      if (g_stop_reply && !feof(stdin)) { /* Ctrl-C at the prompt: a fresh prompt */
        clearerr(stdin);
        fputc('\n', stdout);
        continue;
      }
      break; /* Ctrl-D or end of the piped input */
    }
    size_t len = (size_t)got;
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
    if (!len) continue;
    turn++;
    const int32_t *ids;
    uint32_t n;
    int32_t last;
    if ((rc = m64_chat_user(c, line, len, &ids, &n, e))) break;
    if (o->verbose) print_ids("prompt", turn, ids, n, pos);
    if ((rc = feed(s, ids, n, &pos, e))) break;
    const uint32_t reply_pos = pos;
    if ((rc = reply(s, o, &pos, &last, e))) break;
    if (o->verbose) fprintf(stderr, "m64run: turn %u: reply: %u tokens\n", turn, pos - reply_pos);
    if ((rc = m64_chat_end_reply(c, last, &ids, &n, e))) break;
    if (o->verbose) print_ids("end of reply", turn, ids, n, pos);
    if ((rc = feed(s, ids, n, &pos, e))) break;
  }
  sigaction(SIGINT, &old, NULL);
  free(line);
  free(g_hist);
  g_hist = NULL;
  m64_chat_close(c);
  return rc;
}
