/* server_openai.c — the OpenAI API's request checks and response JSON (server_openai.h). */
#include "server_openai.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- errors */
int srv_fail(srv_error *err, int status, const char *type, const char *param, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  /* the message may quote what the client sent: keep it valid UTF-8 for the JSON */
  size_t n;
  char *clean = srv_utf8_clean(msg, strlen(msg), &n);
  json_t *o = json_pack("{s:{s:s?,s:s,s:s?,s:n}}", "error", "message", clean, "type", type, "param", param, "code");
  free(clean);
  srv_error_free(err);
  err->status = status;
  err->body = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  return -1;
}

void srv_error_free(srv_error *err) {
  free(err->body);
  err->body = NULL;
}

static int bad(srv_error *err, const char *param, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(srv_error *err, const char *param, const char *fmt, ...) {
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return srv_fail(err, 400, "invalid_request_error", param, "%s", msg);
}

static const char *type_name(const json_t *v) {
  switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    default: return "null";
  }
}

/* ---------------------------------------------------------------- field checks */
static int get_number(json_t *v, const char *name, double min, double max, float *out, srv_error *err) {
  if (json_is_null(v)) return 0;
  if (!json_is_number(v)) return bad(err, name, "'%s' must be a number, not %s", name, type_name(v));
  const double x = json_number_value(v);
  if (!isfinite(x) || x < min || x > max)
    return bad(err, name, "'%s' must be in %g..%g, not %g", name, min, max, x);
  *out = (float)x;
  return 0;
}

static int get_int(json_t *v, const char *name, long long min, long long max, long long *out, srv_error *err) {
  if (!json_is_integer(v)) return bad(err, name, "'%s' must be an integer, not %s", name, type_name(v));
  const long long x = json_integer_value(v);
  if (x < min || x > max) return bad(err, name, "'%s' must be in %lld..%lld, not %lld", name, min, max, x);
  *out = x;
  return 0;
}

static int get_bool(json_t *v, const char *name, int *out, srv_error *err) {
  if (json_is_null(v)) return 0;
  if (!json_is_boolean(v)) return bad(err, name, "'%s' must be a boolean, not %s", name, type_name(v));
  *out = json_is_true(v);
  return 0;
}

static char *dup_string(json_t *v, size_t *len) {
  const size_t n = json_string_length(v);
  char *s = malloc(n + 1);
  if (!s) return NULL;
  memcpy(s, json_string_value(v), n);
  s[n] = 0;
  *len = n;
  return s;
}

static int oom(srv_error *err) { return srv_fail(err, 500, "server_error", NULL, "out of memory"); }

static int get_stop(json_t *v, srv_request *r, srv_error *err) {
  if (json_is_null(v)) return 0;
  json_t *one[1] = {v};
  json_t **items = one;
  size_t n = 1;
  if (json_is_array(v)) {
    n = json_array_size(v);
    if (n > SRV_MAX_STOP) return bad(err, "stop", "'stop' takes at most %d sequences, not %zu", SRV_MAX_STOP, n);
    items = NULL;
  } else if (!json_is_string(v)) {
    return bad(err, "stop", "'stop' must be a string or an array of strings, not %s", type_name(v));
  }
  for (size_t i = 0; i < n; i++) {
    json_t *s = items ? items[i] : json_array_get(v, i);
    if (!json_is_string(s)) return bad(err, "stop", "'stop' must hold strings, not %s", type_name(s));
    if (!json_string_length(s)) return bad(err, "stop", "'stop' sequences must not be empty");
    if (!(r->stop[r->n_stop] = dup_string(s, &r->stop_len[r->n_stop]))) return oom(err);
    r->n_stop++;
  }
  return 0;
}

/* A message's content: a string, or an array of {"type":"text","text":...} parts (joined). */
static int get_content(json_t *c, size_t i, srv_msg *m, srv_error *err) {
  char param[48];
  snprintf(param, sizeof param, "messages[%zu].content", i);
  if (json_is_string(c)) return (m->text = dup_string(c, &m->len)) ? 0 : oom(err);
  if (json_is_null(c) && m->role == 'a') return (m->text = calloc(1, 1)) ? 0 : oom(err);
  if (!json_is_array(c)) return bad(err, param, "'%s' must be a string or an array of text parts, not %s", param, type_name(c));
  size_t total = 0;
  for (size_t k = 0; k < json_array_size(c); k++) {
    json_t *part = json_array_get(c, k), *type = json_object_get(part, "type"), *text = json_object_get(part, "text");
    if (!json_is_object(part) || !json_is_string(type) || strcmp(json_string_value(type), "text") || !json_is_string(text) ||
        json_object_size(part) != 2)
      return bad(err, param, "'%s' parts must be {\"type\": \"text\", \"text\": STRING}: this server reads text only", param);
    total += json_string_length(text);
  }
  if (!(m->text = malloc(total + 1))) return oom(err);
  m->len = 0;
  for (size_t k = 0; k < json_array_size(c); k++) {
    json_t *text = json_object_get(json_array_get(c, k), "text");
    memcpy(m->text + m->len, json_string_value(text), json_string_length(text));
    m->len += json_string_length(text);
  }
  m->text[m->len] = 0;
  return 0;
}

static int get_messages(json_t *v, srv_request *r, srv_error *err) {
  if (!json_is_array(v) || !json_array_size(v))
    return bad(err, "messages", "'messages' must be a non-empty array of messages");
  const size_t n = json_array_size(v);
  if (!(r->msgs = calloc(n, sizeof *r->msgs))) return oom(err);
  for (size_t i = 0; i < n; i++) {
    json_t *m = json_array_get(v, i);
    char param[48];
    snprintf(param, sizeof param, "messages[%zu]", i);
    if (!json_is_object(m)) return bad(err, param, "'%s' must be an object, not %s", param, type_name(m));
    const char *key;
    json_t *val;
    json_object_foreach(m, key, val) {
      if (strcmp(key, "role") && strcmp(key, "content") && strcmp(key, "name"))
        return bad(err, param, "'%s' has a field this server does not take: '%s'", param, key);
    }
    json_t *role = json_object_get(m, "role"), *name = json_object_get(m, "name");
    if (name && !json_is_string(name)) return bad(err, param, "'%s.name' must be a string", param);
    if (!json_is_string(role)) return bad(err, param, "'%s.role' must be a string", param);
    const char *rs = json_string_value(role);
    char rc = !strcmp(rs, "system") || !strcmp(rs, "developer") ? 's' : !strcmp(rs, "user") ? 'u'
              : !strcmp(rs, "assistant")                         ? 'a' : 0;
    if (!rc) return bad(err, param, "'%s.role' must be system, developer, user or assistant, not '%s'", param, rs);
    /* the chat formats (runtime/chat.c): one optional system message first, then user and
     * assistant in turn, ending with the user's */
    const char want = i == 0 ? (rc == 's' ? 's' : 'u') : r->msgs[i - 1].role == 'u' ? 'a' : 'u';
    if (rc != want)
      return bad(err, param,
                 "'%s' is from the %s: messages must be an optional system message first, then user and "
                 "assistant messages in turn",
                 param, rs);
    r->msgs[i].role = rc;
    r->n_msgs = i + 1;
    json_t *content = json_object_get(m, "content");
    if (!content) return bad(err, param, "'%s' has no 'content'", param);
    if (get_content(content, i, &r->msgs[i], err)) return -1;
  }
  if (r->msgs[n - 1].role != 'u')
    return bad(err, "messages", "the last message must be the user's (the reply is the assistant's)");
  return 0;
}

/* prompt: a string, an array of one string, or an array of token ids. */
static int get_prompt(json_t *v, uint32_t n_vocab, srv_request *r, srv_error *err) {
  if (json_is_string(v)) return (r->prompt = dup_string(v, &r->prompt_len)) ? 0 : oom(err);
  if (json_is_array(v) && json_array_size(v) == 1 && json_is_string(json_array_get(v, 0)))
    return (r->prompt = dup_string(json_array_get(v, 0), &r->prompt_len)) ? 0 : oom(err);
  if (json_is_array(v) && json_array_size(v) > 0 && json_is_integer(json_array_get(v, 0))) {
    const size_t n = json_array_size(v);
    if (!(r->prompt_ids = malloc(n * sizeof *r->prompt_ids))) return oom(err);
    for (size_t i = 0; i < n; i++) {
      json_t *t = json_array_get(v, i);
      if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) >= (json_int_t)n_vocab)
        return bad(err, "prompt", "'prompt' token ids must be integers in 0..%u", n_vocab - 1);
      r->prompt_ids[i] = (int32_t)json_integer_value(t);
    }
    r->n_prompt_ids = (uint32_t)n;
    return 0;
  }
  return bad(err, "prompt",
             "'prompt' must be a string, an array of one string or an array of token ids (one prompt per "
             "request), not %s",
             json_is_array(v) && json_array_size(v) > 1 ? "several prompts" : type_name(v));
}

/* Fields the API has that change nothing at the value given; any other value is a 400. */
static int neutral(const char *key, json_t *v, srv_error *err) {
  int ok;
  if (!strcmp(key, "n") || !strcmp(key, "best_of")) ok = json_is_null(v) || (json_is_integer(v) && json_integer_value(v) == 1);
  else if (!strcmp(key, "presence_penalty") || !strcmp(key, "frequency_penalty"))
    ok = json_is_null(v) || (json_is_number(v) && json_number_value(v) == 0);
  else if (!strcmp(key, "logit_bias")) ok = json_is_null(v) || (json_is_object(v) && !json_object_size(v));
  else if (!strcmp(key, "logprobs"))
    ok = json_is_null(v) || json_is_false(v) || (json_is_integer(v) && json_integer_value(v) == 0);
  else if (!strcmp(key, "top_logprobs") || !strcmp(key, "suffix")) ok = json_is_null(v);
  else if (!strcmp(key, "echo")) ok = json_is_null(v) || json_is_false(v);
  else if (!strcmp(key, "response_format")) {
    json_t *t = json_object_get(v, "type");
    ok = json_is_null(v) || (json_is_object(v) && json_is_string(t) && !strcmp(json_string_value(t), "text"));
  } else return 1; /* not one of these */
  return ok ? 0 : bad(err, key, "'%s' is not supported by this server at that value", key);
}

static int one_of(const char *key, const char *const *names) {
  for (; *names; names++)
    if (!strcmp(key, *names)) return 1;
  return 0;
}

int srv_parse_request(srv_kind kind, const char *body, size_t len, uint32_t n_vocab, const srv_defaults *d,
                      srv_request *r, srv_error *err) {
  memset(r, 0, sizeof *r);
  r->kind = kind;
  r->max_tokens = d->max_tokens;
  r->temp = d->temp, r->top_p = d->top_p, r->top_k = d->top_k;
  r->has_seed = d->has_seed, r->seed = d->seed;
  json_error_t je;
  /* duplicate keys are ambiguous (which one counts?): refused */
  json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
  if (!root) return bad(err, NULL, "the body is not valid JSON: %s (line %d, column %d)", je.text, je.line, je.column);
  int rc = 0;
  if (!json_is_object(root)) {
    rc = bad(err, NULL, "the body must be a JSON object, not %s", type_name(root));
    goto out;
  }
  static const char *const ours[] = {"model", "max_tokens", "temperature", "top_p", "top_k", "seed", "stop",
                                     "stream", "stream_options", "user", NULL};
  static const char *const completion_only[] = {"prompt", "echo", "best_of", "suffix", NULL};
  static const char *const chat_only[] = {"messages", "max_completion_tokens", "top_logprobs", "response_format", NULL};
  static const char *const unsupported[] = {"tools", "tool_choice", "functions", "function_call", "parallel_tool_calls",
                                            "audio", "modalities", "prediction", "reasoning_effort", "web_search_options",
                                            NULL};
  const char *key;
  json_t *v;
  json_object_foreach(root, key, v) {
    const int known = one_of(key, ours) || one_of(key, kind == SRV_CHAT ? chat_only : completion_only) ||
                      !strcmp(key, "n") || !strcmp(key, "presence_penalty") || !strcmp(key, "frequency_penalty") ||
                      !strcmp(key, "logit_bias") || !strcmp(key, "logprobs");
    if (one_of(key, unsupported)) {
      rc = bad(err, key, "'%s' is not supported by this server", key);
      goto out;
    }
    if (!known) {
      rc = bad(err, key, "Unrecognized request argument supplied: %s", key);
      goto out;
    }
    if ((rc = neutral(key, v, err)) <= 0) {
      if (rc < 0) goto out;
      continue;
    }
    rc = 0;
    long long x;
    if (!strcmp(key, "model")) {
      if (!json_is_string(v)) rc = bad(err, key, "'model' must be a string, not %s", type_name(v));
    } else if (!strcmp(key, "user")) {
      if (!json_is_string(v)) rc = bad(err, key, "'user' must be a string, not %s", type_name(v));
    } else if (!strcmp(key, "max_tokens") || !strcmp(key, "max_completion_tokens")) {
      if (!json_is_null(v) && !(rc = get_int(v, key, 0, 1 << 20, &x, err))) r->max_tokens = (long)x;
    } else if (!strcmp(key, "temperature")) {
      rc = get_number(v, key, 0, 2, &r->temp, err);
    } else if (!strcmp(key, "top_p")) {
      rc = get_number(v, key, 0, 1, &r->top_p, err);
    } else if (!strcmp(key, "top_k")) {
      if (!json_is_null(v) && !(rc = get_int(v, key, 0, INT32_MAX, &x, err))) r->top_k = (int32_t)x;
    } else if (!strcmp(key, "seed")) { /* -1: a random one, as llama-server */
      if (!json_is_null(v) && !(rc = get_int(v, key, -1, INT64_MAX, &x, err))) {
        r->has_seed = x >= 0;
        r->seed = (uint64_t)x;
      }
    } else if (!strcmp(key, "stop")) {
      rc = get_stop(v, r, err);
    } else if (!strcmp(key, "stream")) {
      rc = get_bool(v, key, &r->stream, err);
    } else if (!strcmp(key, "stream_options")) {
      if (json_is_null(v)) continue;
      json_t *u = json_object_get(v, "include_usage");
      if (!json_is_object(v) || json_object_size(v) != (u ? 1u : 0u))
        rc = bad(err, key, "'stream_options' must be an object with at most 'include_usage'");
      else if (u) rc = get_bool(u, "stream_options.include_usage", &r->include_usage, err);
    } else if (!strcmp(key, "prompt")) {
      rc = get_prompt(v, n_vocab, r, err);
    } else if (!strcmp(key, "messages")) {
      rc = get_messages(v, r, err);
    }
    if (rc) goto out;
  }
  if (kind == SRV_COMPLETION && !r->prompt && !r->prompt_ids) rc = bad(err, "prompt", "'prompt' is required");
  else if (kind == SRV_CHAT && !r->msgs) rc = bad(err, "messages", "'messages' is required");
  else if (r->include_usage && !r->stream)
    rc = bad(err, "stream_options", "'stream_options' is only allowed when 'stream' is true");
out:
  json_decref(root);
  return rc ? -1 : 0;
}

void srv_request_free(srv_request *r) {
  free(r->prompt);
  free(r->prompt_ids);
  for (size_t i = 0; i < r->n_msgs; i++) free(r->msgs[i].text);
  free(r->msgs);
  for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
  memset(r, 0, sizeof *r);
}

/* ---------------------------------------------------------------- responses */
static char *dump(json_t *o) {
  char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  return s;
}

static json_t *usage(uint32_t p, uint32_t c) {
  return json_pack("{s:I,s:I,s:I}", "prompt_tokens", (json_int_t)p, "completion_tokens", (json_int_t)c, "total_tokens",
                   (json_int_t)p + c);
}

static json_t *envelope(const srv_reply_ctx *c, const char *object) {
  return json_pack("{s:s,s:s,s:I,s:s,s:s}", "id", c->id, "object", object, "created", (json_int_t)c->created, "model",
                   c->model, "system_fingerprint", "m64");
}

char *srv_reply_json(const srv_reply_ctx *c, const char *text, size_t len, const char *finish,
                     uint32_t prompt_tokens, uint32_t completion_tokens) {
  json_t *o = envelope(c, c->kind == SRV_CHAT ? "chat.completion" : "text_completion");
  json_t *choice = c->kind == SRV_CHAT
                       ? json_pack("{s:i,s:{s:s,s:s%},s:n,s:s}", "index", 0, "message", "role", "assistant", "content",
                                   text, len, "logprobs", "finish_reason", finish)
                       : json_pack("{s:i,s:s%,s:n,s:s}", "index", 0, "text", text, len, "logprobs", "finish_reason", finish);
  if (!o || !choice || json_object_set_new(o, "choices", json_pack("[o]", choice)) ||
      json_object_set_new(o, "usage", usage(prompt_tokens, completion_tokens))) {
    json_decref(o);
    return NULL;
  }
  return dump(o);
}

char *srv_chunk_json(const srv_reply_ctx *c, const char *text, size_t len, const char *finish, int role_only) {
  json_t *o = envelope(c, c->kind == SRV_CHAT ? "chat.completion.chunk" : "text_completion");
  json_t *choice;
  if (c->kind == SRV_CHAT) {
    json_t *delta = role_only ? json_pack("{s:s,s:s}", "role", "assistant", "content", "")
                    : finish  ? json_object()
                              : json_pack("{s:s%}", "content", text, len);
    choice = json_pack("{s:i,s:o,s:n,s:s?}", "index", 0, "delta", delta, "logprobs", "finish_reason", finish);
  } else {
    choice = json_pack("{s:i,s:s%,s:n,s:s?}", "index", 0, "text", text, len, "logprobs", "finish_reason", finish);
  }
  if (!o || !choice || json_object_set_new(o, "choices", json_pack("[o]", choice))) {
    json_decref(o);
    return NULL;
  }
  return dump(o);
}

char *srv_usage_chunk_json(const srv_reply_ctx *c, uint32_t prompt_tokens, uint32_t completion_tokens) {
  json_t *o = envelope(c, c->kind == SRV_CHAT ? "chat.completion.chunk" : "text_completion");
  if (!o || json_object_set_new(o, "choices", json_array()) ||
      json_object_set_new(o, "usage", usage(prompt_tokens, completion_tokens))) {
    json_decref(o);
    return NULL;
  }
  return dump(o);
}

char *srv_models_json(const char *model, long long created, uint32_t n_ctx) {
  return dump(json_pack("{s:s,s:[{s:s,s:s,s:I,s:s,s:{s:I}}]}", "object", "list", "data", "id", model, "object", "model",
                        "created", (json_int_t)created, "owned_by", "m64", "meta", "n_ctx", (json_int_t)n_ctx));
}

/* ---------------------------------------------------------------- UTF-8 */
/* Length of the well-formed UTF-8 character at s (RFC 3629: no overlongs, no surrogates,
 * nothing past U+10FFFF), 0 if there is none. */
static size_t utf8_char(const unsigned char *s, size_t n) {
  const unsigned char c = s[0];
  if (c < 0x80) return 1;
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) need = 2;
  else if (c >= 0xE0 && c <= 0xEF) need = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
  else if (c >= 0xF0 && c <= 0xF4) need = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
  else return 0;
  if (n < need || s[1] < lo || s[1] > hi) return 0;
  for (size_t i = 2; i < need; i++)
    if ((s[i] & 0xC0) != 0x80) return 0;
  return need;
}

char *srv_utf8_clean(const char *s, size_t n, size_t *out_len) {
  if (n > (SIZE_MAX - 1) / 3) return NULL;
  char *out = malloc(n * 3 + 1); /* a bad byte becomes three */
  if (!out) return NULL;
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    const size_t k = utf8_char((const unsigned char *)s + i, n - i);
    if (k && !(k == 1 && s[i] == 0)) {
      memcpy(out + o, s + i, k);
      o += k, i += k;
    } else { /* U+FFFD; a NUL too, which JSON strings here never carry */
      memcpy(out + o, "\xEF\xBF\xBD", 3);
      o += 3, i++;
    }
  }
  out[o] = 0;
  *out_len = o;
  return out;
}
