/*
 * server.h — `m64run MODEL --server`: the OpenAI HTTP API on libmicrohttpd.
 *
 *   POST /v1/completions, /v1/chat/completions   (stream: server-sent events)
 *   GET  /v1/models, /health                      (also without the /v1 prefix)
 *
 * `parallel` slots, each one session (its own workspace and KV cache) and one thread,
 * take requests from one queue in arrival order; a request waits in the queue until a slot
 * is free. A client that goes away, while queued or mid-reply, frees its slot at the next
 * token. SIGINT/SIGTERM stop the server: running replies end, the sessions close, 0.
 */
#ifndef M64_SERVER_H
#define M64_SERVER_H

#include <stddef.h>

#include "m64_runtime.h"
#include "server_gen.h"
#include "server_openai.h"

/* The default bound on a request body; --max-body changes it. */
#define M64_SERVER_MAX_BODY (1u << 20)

typedef struct m64run_server_opts {
  const char *bundle_path;             /* opened once per slot */
  const char *model_name;              /* "model" in responses and /v1/models */
  const m64_session_options *session;
  const char *host;                    /* address to bind: 127.0.0.1 unless told */
  unsigned port;                       /* 0: a free port, printed */
  unsigned parallel;                   /* slots */
  size_t max_body;                     /* larger bodies get 413 */
  srv_defaults defaults;               /* what a request leaves out */
  srv_gen_config gen;
  void (*after_open)(void);            /* called once the sessions are open (a temp bundle may go) */
} m64run_server_opts;

/* Serves until SIGINT or SIGTERM. 0 on a clean stop, else an M64_E* code with *e. */
int m64run_server(const m64run_server_opts *o, m64_err *e);

#endif
