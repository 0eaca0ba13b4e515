/*
 * server_openai.h — the OpenAI API's JSON for `m64run --server`: requests parsed and checked
 * (jansson), responses, stream chunks and error objects written. No HTTP and no model here:
 * server.c moves the bytes, server_gen.c runs the model.
 *
 * A request is checked whole before any work: malformed JSON, a body that is not an object,
 * a field of the wrong type or out of range, a field this API does not have, and one it has
 * that this server does not implement (tools, n > 1, ...) are each a 400 with an OpenAI
 * error object {"error": {"message", "type", "param", "code"}} naming the field.
 */
#ifndef M64_SERVER_OPENAI_H
#define M64_SERVER_OPENAI_H

#include <stddef.h>
#include <stdint.h>

typedef enum { SRV_COMPLETION, SRV_CHAT } srv_kind;

/* OpenAI allows at most four stop sequences. */
#define SRV_MAX_STOP 4

typedef struct srv_msg {
  char role; /* 's'ystem, 'u'ser, 'a'ssistant */
  char *text;
  size_t len;
} srv_msg;

/* What a request may leave out: the server's command line gives these. */
typedef struct srv_defaults {
  long max_tokens; /* < 0: until end of text or a full context */
  float temp, top_p;
  int32_t top_k;
  int has_seed; /* 0: a random seed per request */
  uint64_t seed;
} srv_defaults;

typedef struct srv_request {
  srv_kind kind;
  char *prompt; /* SRV_COMPLETION, text form */
  size_t prompt_len;
  int32_t *prompt_ids; /* SRV_COMPLETION given as token ids (then prompt is NULL) */
  uint32_t n_prompt_ids;
  srv_msg *msgs; /* SRV_CHAT */
  size_t n_msgs;
  long max_tokens; /* < 0: until end of text or a full context */
  float temp, top_p;
  int32_t top_k;
  int has_seed;
  uint64_t seed;
  char *stop[SRV_MAX_STOP];
  size_t stop_len[SRV_MAX_STOP];
  int n_stop;
  int stream, include_usage;
} srv_request;

/* An HTTP status with its OpenAI error object (malloc'ed JSON text). */
typedef struct srv_error {
  int status;
  char *body;
} srv_error;

/* Fills *err (status, body) and returns -1. type: "invalid_request_error", "server_error"... */
int srv_fail(srv_error *err, int status, const char *type, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void srv_error_free(srv_error *err);

/* Parses and checks a request body for kind; n_vocab bounds token-id prompts. Returns 0,
 * or -1 with *err set (a 400). *out is freed with srv_request_free either way. */
int srv_parse_request(srv_kind kind, const char *body, size_t len, uint32_t n_vocab, const srv_defaults *d,
                      srv_request *out, srv_error *err);
void srv_request_free(srv_request *r);

/* The responses. text must be valid UTF-8 (srv_utf8_clean); finish is "stop", "length"
 * or NULL (a chunk in the middle of a stream). Each returns malloc'ed JSON text, or NULL
 * when out of memory. */
typedef struct srv_reply_ctx {
  srv_kind kind;
  const char *id, *model;
  long long created;
} srv_reply_ctx;
char *srv_reply_json(const srv_reply_ctx *c, const char *text, size_t len, const char *finish,
                     uint32_t prompt_tokens, uint32_t completion_tokens);
/* One stream chunk: role_only (chat's first chunk) carries {"role":"assistant"}. */
char *srv_chunk_json(const srv_reply_ctx *c, const char *text, size_t len, const char *finish, int role_only);
/* The last chunk of a stream with stream_options.include_usage: no choices, the usage. */
char *srv_usage_chunk_json(const srv_reply_ctx *c, uint32_t prompt_tokens, uint32_t completion_tokens);
char *srv_models_json(const char *model, long long created, uint32_t n_ctx);

/* A copy of s with every byte that is not part of a well-formed UTF-8 character replaced
 * by U+FFFD (a model may emit any bytes; JSON text must be UTF-8). NUL-terminated,
 * *out_len its length; NULL when out of memory. */
char *srv_utf8_clean(const char *s, size_t n, size_t *out_len);

#endif
