/*
 * m64run_chat.c — `m64run -i`: a conversation on stdin/stdout in the model's chat format.
 *
 * One line of input is one user message. The KV cache carries over: each turn runs only
 * its own tokens (template, message, and the start of the reply) at the positions after
 * the previous turn, then the reply, then the tokens that close it. Ctrl-C stops the
 * current reply, and at an empty prompt ends the session (exit 130); Ctrl-D (end of input)
 * or /exit ends it. On a terminal, libedit gives line editing and history; lines starting
 * with / are commands (/help).
 */
#include "m64run_chat.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef M64_HAVE_LIBEDIT
#include <histedit.h>
#endif

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

static void help(void) {
  printf("  /help          this text\n"
         "  /clear         start the conversation over (the system message stays)\n"
         "  /system TEXT   start over with TEXT as the system message\n"
         "  /exit          end the chat (also Ctrl-D, or Ctrl-C at an empty prompt)\n"
         "  //TEXT         send /TEXT as a message\n"
         "Ctrl-C during a reply stops it. ");
#ifdef M64_HAVE_LIBEDIT
  printf("The arrow keys edit the line and go through the history.\n");
#else
  printf("\n");
#endif
  fflush(stdout);
}

#ifdef M64_HAVE_LIBEDIT
/* libedit's own API (not its readline emulation, which forgets the line a Ctrl-C cut
 * short): emacs keys, a history of this session's messages. */
static EditLine *g_el;
static History *g_history;
static const char *prompt(EditLine *el) {
  (void)el;
  return "> ";
}
static int edit_open(void) {
  HistEvent ev;
  if (!(g_el = el_init("m64run", stdin, stdout, stderr)) || !(g_history = history_init())) return -1;
  history(g_history, &ev, H_SETSIZE, 1000);
  history(g_history, &ev, H_SETUNIQUE, 1);
  el_set(g_el, EL_PROMPT, prompt);
  el_set(g_el, EL_EDITOR, "emacs");
  el_set(g_el, EL_HIST, history, g_history);
  return 0;
}
static void edit_close(void) {
  if (g_history) history_end(g_history);
  if (g_el) el_end(g_el);
  g_history = NULL;
  g_el = NULL;
}
#endif

/* Reads the next message line: 1 with *line (malloc'ed, no newline), 0 at end of input,
 * -1 when Ctrl-C came at an empty prompt (*line NULL). A tty gets a prompt, and with
 * libedit line editing and history; Ctrl-C on a line with text clears it. */
static int read_message(int tty, char **line) {
  *line = NULL;
  for (;;) {
    g_stop_reply = 0;
#ifdef M64_HAVE_LIBEDIT
    if (tty && g_el) {
      int count = 0;
      const char *l = el_gets(g_el, &count);
      if (!l || count <= 0) {
        if (!g_stop_reply) return 0; /* Ctrl-D */
        const LineInfo *li = el_line(g_el);
        const int had_text = li && li->lastchar > li->buffer;
        fputc('\n', stdout);
        if (had_text) continue; /* Ctrl-C on a line with text: a fresh prompt */
        return -1;
      }
      size_t len = strlen(l);
      while (len && (l[len - 1] == '\n' || l[len - 1] == '\r')) len--;
      if (!(*line = strndup(l, len))) return 0;
      if (len) {
        HistEvent ev;
        history(g_history, &ev, H_ENTER, *line);
      }
      return 1;
    }
#endif
    if (tty) {
      fputs("> ", stdout);
      fflush(stdout);
    }
    char *l = NULL;
    size_t cap = 0;
    const ssize_t got = getline(&l, &cap, stdin);
    if (got < 0) {
      free(l);
      if (g_stop_reply && !feof(stdin)) { /* Ctrl-C while waiting for a message */
        clearerr(stdin);
        fputc('\n', stdout);
        return -1;
      }
      return 0; /* Ctrl-D or the end of piped input */
    }
    size_t len = (size_t)got;
    while (len && (l[len - 1] == '\n' || l[len - 1] == '\r')) l[--len] = 0;
    *line = l;
    return 1;
  }
}

/* Starts the conversation over: a new chat state from position 0 (the KV cache past the
 * position in use is never read, so no entry of the old conversation is seen again). */
static int restart(m64_session *s, const char *name, const char *system, m64_chat **c, uint32_t *pos, m64_err *e) {
  m64_chat_close(*c);
  *c = NULL;
  *pos = 0;
  return m64_chat_open(s, name, system, c, e);
}

int m64run_chat(m64_session *s, const m64run_chat_opts *o, int *interrupted, m64_err *e) {
  *interrupted = 0;
  char name[64] = "";
  if (o->template_name) snprintf(name, sizeof name, "%s", o->template_name);
  else if (m64_session_meta(s, "chat.template", name, sizeof name)) snprintf(name, sizeof name, "none");
  if (!strcmp(name, "none"))
    return m64_fail(e, M64_EUNSUPPORTED,
                    "this model's chat template is not one m64 recognises (known: %s); name one "
                    "with --chat-template or --chat-template-file, or run without -i for plain completion",
                    m64_chat_known_templates());
  m64_chat *c = NULL;
  char *system = o->system && *o->system ? strdup(o->system) : NULL;
  if (!(g_hist = malloc((size_t)m64_session_n_ctx(s) * sizeof *g_hist)) || (o->system && *o->system && !system)) {
    free(g_hist);
    free(system);
    return m64_fail(e, M64_ENOMEM, "out of memory");
  }
  int rc = m64_chat_open(s, name, system, &c, e);
  if (rc) {
    free(g_hist);
    free(system);
    return rc;
  }
  const int tty = isatty(STDIN_FILENO);
  if (o->verbose) fprintf(stderr, "m64run: chat template %s\n", name);
  if (tty) {
    printf("m64run: chatting in the %s format; /help lists the commands, Ctrl-D or /exit ends\n", name);
    fflush(stdout);
  }

#ifdef M64_HAVE_LIBEDIT
  if (tty && edit_open()) edit_close(); /* no line editing then: plain lines */
#endif
  struct sigaction sa = {0}, old;
  sa.sa_handler = on_sigint; /* no SA_RESTART: Ctrl-C interrupts a blocked read */
  sigaction(SIGINT, &sa, &old);
  uint32_t pos = 0, turn = 0;
  char *line = NULL;
  for (;;) {
    free(line);
    const int got = read_message(tty, &line);
    if (got < 0) {
      *interrupted = 1;
      break;
    }
    if (got == 0) break;
    const char *msg = line;
    size_t len = strlen(line);
    if (!len) continue;
    if (line[0] == '/' && line[1] != '/') { /* a command */
      char cmd[16];
      size_t k = 0;
      while (line[1 + k] && line[1 + k] != ' ' && k + 1 < sizeof cmd) cmd[k] = line[1 + k], k++;
      cmd[k] = 0;
      const char *arg = line + 1 + k;
      while (*arg == ' ') arg++;
      if (!strcmp(cmd, "exit") || !strcmp(cmd, "quit") || !strcmp(cmd, "bye")) break;
      if (!strcmp(cmd, "help") || !strcmp(cmd, "?")) {
        help();
      } else if (!strcmp(cmd, "clear")) {
        if ((rc = restart(s, name, system, &c, &pos, e))) break;
        turn = 0;
        printf("m64run: the conversation starts over\n");
      } else if (!strcmp(cmd, "system")) {
        char *ns = *arg ? strdup(arg) : NULL;
        if (*arg && !ns) {
          rc = m64_fail(e, M64_ENOMEM, "out of memory");
          break;
        }
        free(system);
        system = ns;
        if ((rc = restart(s, name, system, &c, &pos, e))) break;
        turn = 0;
        printf("m64run: the conversation starts over %s\n",
               system ? "with that system message" : "without a system message");
      } else {
        printf("m64run: unknown command /%s: /help lists the commands (//TEXT sends /TEXT)\n", cmd);
      }
      fflush(stdout);
      continue;
    }
    if (line[0] == '/') msg++, len--; /* "//TEXT": the message /TEXT */
    turn++;
    const int32_t *ids;
    uint32_t n;
    int32_t last;
    if ((rc = m64_chat_user(c, msg, len, &ids, &n, e))) break;
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
#ifdef M64_HAVE_LIBEDIT
  edit_close();
#endif
  free(line);
  free(system);
  free(g_hist);
  g_hist = NULL;
  m64_chat_close(c);
  return rc;
}
