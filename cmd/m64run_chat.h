/* m64run_chat.h — the interactive chat mode of m64run (-i). */
#ifndef M64RUN_CHAT_H
#define M64RUN_CHAT_H

#include "m64_runtime.h"

typedef struct m64run_chat_opts {
  const char *template_name; /* NULL: the bundle's chat.template */
  const char *system;        /* NULL: none */
  m64_sampling sampling;
  long repeat_last_n;        /* the penalties' N; -1: the whole context */
  const char *const *stops;  /* -r: a reply ends right after one of these */
  const size_t *stop_len;
  int n_stops;
  long n_predict;            /* per reply; < 0: until end of turn or a full context */
  int verbose;               /* the ids of every turn on stderr */
} m64run_chat_opts;

/* Reads user messages from stdin until end of input (or /exit) and streams the replies;
 * *interrupted = 1 when Ctrl-C at an empty prompt ended it. */
int m64run_chat(m64_session *s, const m64run_chat_opts *o, int *interrupted, m64_err *e);

#endif
