/*
 * server_gen.h — one request of `m64run --server` run on one session: the prompt (plain, or
 * the chat in the model's format, runtime/chat.c), then sampling until end of text,
 * max_tokens, a stop sequence or a full context, the text handed out in pieces that are
 * safe to send (whole UTF-8 characters, never the start of a stop sequence that may yet
 * complete).
 *
 * Every request starts from position 0: the KV cache of the session holds only the request
 * it runs, so requests queued one after another never see each other's state.
 */
#ifndef M64_SERVER_GEN_H
#define M64_SERVER_GEN_H

#include "m64_runtime.h"
#include "server_openai.h"

typedef struct srv_gen_io {
  /* The prompt was accepted (tokenized, fits the context): n_prompt tokens. Nonzero: stop. */
  int (*started)(void *ctx, uint32_t n_prompt);
  /* More text of the reply, valid UTF-8, in order. Nonzero: stop (the client is gone). */
  int (*text)(void *ctx, const char *text, size_t len);
  void *ctx;
} srv_gen_io;

typedef struct srv_gen_config {
  const char *chat_template; /* NULL: the bundle's */
  int special;               /* special-token text in a completion prompt becomes the token */
} srv_gen_config;

typedef struct srv_gen_result {
  uint32_t n_prompt, n_gen;
  const char *finish; /* "stop" or "length" */
  int stopped;        /* a callback asked to stop */
} srv_gen_result;

/* Runs r on s. 0, or -1 with *err: a 400 for a prompt the model cannot take (too long, no
 * chat format), a 500 for a failure of the model (*m64_rc is then its M64_E* code). */
int srv_generate(m64_session *s, const srv_gen_config *cfg, const srv_request *r, const srv_gen_io *io,
                 srv_gen_result *res, srv_error *err, int *m64_rc);

/* Stop-sequence scan on text[0..len): the index of the earliest stop sequence that starts
 * at or after `from` (-1 if none), and in *hold the length of the longest tail of text
 * that is a proper prefix of some stop sequence (to keep back while more may come). */
long srv_find_stop(const char *text, size_t len, size_t from, char *const *stop, const size_t *stop_len, int n_stop,
                   size_t *hold);

#endif
