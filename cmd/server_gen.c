/* server_gen.c — one request run on one session (server_gen.h). */
#include "server_gen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"

typedef struct ids {
  int32_t *v;
  uint32_t n, cap;
} ids;

static int push(ids *a, const int32_t *v, uint32_t n, m64_err *e) {
  if ((uint64_t)a->n + n > (1u << 24)) return m64_fail(e, M64_ELIMIT, "prompt too long");
  if (a->n + n > a->cap) {
    const uint32_t cap = (a->n + n) * 2 + 64;
    int32_t *p = realloc(a->v, cap * sizeof *p);
    if (!p) return m64_fail(e, M64_ENOMEM, "out of memory");
    a->v = p, a->cap = cap;
  }
  memcpy(a->v + a->n, v, n * sizeof *v);
  a->n += n;
  return 0;
}

/* The chat in the model's format: the system message goes to m64_chat_open; each user
 * message is a turn (with the start of the assistant's reply), each assistant message is
 * its text, plain, and the tokens that close it. */
static int chat_prompt(m64_session *s, const srv_gen_config *cfg, const srv_request *r, ids *out, srv_error *err,
                       m64_err *e) {
  char name[64] = "";
  if (cfg->chat_template) snprintf(name, sizeof name, "%s", cfg->chat_template);
  else if (m64_session_meta(s, "chat.template", name, sizeof name)) snprintf(name, sizeof name, "none");
  if (!strcmp(name, "none"))
    return srv_fail(err, 400, "invalid_request_error", "messages",
                    "this model's chat template is not one m64 recognises (known: %s): use /v1/completions, or "
                    "start the server with --chat-template NAME",
                    m64_chat_known_templates());
  size_t i = 0;
  const char *system = r->msgs[0].role == 's' ? r->msgs[i++].text : NULL;
  m64_chat *c = NULL;
  int rc = m64_chat_open(s, name, system, &c, e);
  for (; !rc && i < r->n_msgs; i++) {
    const srv_msg *m = &r->msgs[i];
    const int32_t *turn;
    uint32_t n;
    if (m->role == 'u') {
      if (!(rc = m64_chat_user(c, m->text, m->len, &turn, &n, e))) rc = push(out, turn, n, e);
      continue;
    }
    int32_t *reply = NULL; /* an earlier assistant reply: its text, then the end of its turn */
    uint32_t nr = 0;
    rc = m64_session_tokenize(s, m->text, m->len, 0, &reply, &nr, e);
    if (!rc) rc = push(out, reply, nr, e);
    if (!rc) rc = m64_chat_end_reply(c, nr ? reply[nr - 1] : -1, &turn, &n, e);
    if (!rc) rc = push(out, turn, n, e);
    free(reply);
  }
  m64_chat_close(c);
  if (rc == M64_ELIMIT || rc == M64_EUNSUPPORTED) /* too long for the workspace; a format the model cannot take */
    return srv_fail(err, 400, "invalid_request_error", "messages", "%s", e->msg);
  return rc ? srv_fail(err, 500, "server_error", NULL, "%s", e->msg) : 0;
}

long srv_find_stop(const char *text, size_t len, size_t from, char *const *stop, const size_t *stop_len, int n_stop,
                   size_t *hold) {
  long best = -1;
  *hold = 0;
  for (int i = 0; i < n_stop; i++) {
    if (from < len && stop_len[i] <= len - from) {
      const char *p = memmem(text + from, len - from, stop[i], stop_len[i]);
      if (p && (best < 0 || p - text < best)) best = p - text;
    }
    /* the longest tail of text that the stop sequence starts with */
    for (size_t l = stop_len[i] - 1 < len ? stop_len[i] - 1 : len; l > *hold; l--)
      if (!memcmp(text + len - l, stop[i], l)) {
        *hold = l;
        break;
      }
  }
  return best;
}

/* Hands text[from..to) out, cleaned to valid UTF-8. */
static int emit(const srv_gen_io *io, const char *text, size_t from, size_t to, srv_error *err) {
  if (to <= from) return 0;
  size_t n;
  char *clean = srv_utf8_clean(text + from, to - from, &n);
  if (!clean) return srv_fail(err, 500, "server_error", NULL, "out of memory");
  const int stop = io->text(io->ctx, clean, n);
  free(clean);
  return stop ? 1 : 0;
}

int srv_generate(m64_session *s, const srv_gen_config *cfg, const srv_request *r, const srv_gen_io *io,
                 srv_gen_result *res, srv_error *err, int *m64_rc) {
  memset(res, 0, sizeof *res);
  res->finish = "length";
  *m64_rc = 0;
  m64_err e = {{0}};
  ids p = {0};
  char *text = NULL;
  size_t len = 0, cap = 0, sent = 0, max_stop = 0;
  int rc = 0, out = 0; /* out: 1 a callback asked to stop, -1 *err is set */

  if (r->kind == SRV_CHAT) {
    if (chat_prompt(s, cfg, r, &p, err, &e)) {
      free(p.v);
      return -1;
    }
  } else if (r->prompt_ids) {
    rc = push(&p, r->prompt_ids, r->n_prompt_ids, &e);
  } else {
    int32_t *v = NULL;
    const int flags = M64_TOKENIZE_ADD_BOS | (cfg->special ? M64_TOKENIZE_SPECIAL : 0);
    if (!(rc = m64_session_tokenize(s, r->prompt, r->prompt_len, flags, &v, &p.n, &e))) p.v = v, p.cap = p.n;
  }
  if (rc == M64_ELIMIT) { /* longer than the workspace can tokenize: the client's to shorten */
    free(p.v);
    return srv_fail(err, 400, "invalid_request_error", "prompt", "the prompt is too long for this server: %s", e.msg);
  }
  if (rc) goto model_error;
  const uint32_t n_ctx = m64_session_n_ctx(s);
  res->n_prompt = p.n;
  if (!p.n) {
    free(p.v);
    return srv_fail(err, 400, "invalid_request_error", "prompt", "the prompt is empty and this vocabulary adds no BOS");
  }
  if (p.n >= n_ctx) {
    free(p.v);
    return srv_fail(err, 400, "invalid_request_error", r->kind == SRV_CHAT ? "messages" : "prompt",
                    "This model's maximum context length is %u tokens. However, your prompt has %u tokens, which "
                    "leaves no room for a reply.",
                    n_ctx, p.n);
  }
  for (int i = 0; i < r->n_stop; i++)
    if (r->stop_len[i] > max_stop) max_stop = r->stop_len[i];

  uint64_t seed = r->seed; /* no seed: a fresh random one for each request, as llama-server */
  if (!r->has_seed && m64_random_seed(&seed)) {
    free(p.v);
    return srv_fail(err, 500, "server_error", NULL, "the kernel gave no random bytes for the seed (getrandom)");
  }
  m64_session_seed(s, seed);
  if ((rc = m64_session_eval_batch(s, p.v, p.n, 0, NULL, &e))) goto model_error;
  if (io->started(io->ctx, p.n)) {
    res->stopped = 1;
    goto done;
  }
  /* the last token sampled is not run: n_prompt + max fits the context */
  const uint32_t room = n_ctx - p.n;
  const uint32_t max = r->max_tokens < 0 || (uint64_t)r->max_tokens > room ? room : (uint32_t)r->max_tokens;
  int32_t prev = p.v[p.n - 1];
  for (uint32_t k = 0; k < max; k++) {
    int32_t id;
    int eog;
    if ((rc = m64_session_sample(s, r->temp, r->top_k, r->top_p, &id, &e)) ||
        (rc = m64_session_is_eog(s, id, &eog, &e)))
      goto model_error;
    if (eog) {
      res->finish = "stop";
      break;
    }
    res->n_gen++;
    char piece[1024];
    size_t n;
    if ((rc = m64_session_piece(s, prev, id, piece, sizeof piece, &n, &e))) goto model_error;
    prev = id;
    if (len + n + 1 > cap) {
      cap = (len + n + 1) * 2;
      char *t = realloc(text, cap);
      if (!t) {
        out = srv_fail(err, 500, "server_error", NULL, "out of memory");
        goto done;
      }
      text = t;
    }
    const size_t before = len;
    memcpy(text + len, piece, n);
    len += n;
    size_t hold = 0;
    if (r->n_stop) { /* a stop sequence may begin in the last max_stop - 1 bytes before this piece */
      const size_t from = before + 1 > max_stop ? before + 1 - max_stop : 0;
      const long at = srv_find_stop(text, len, from, r->stop, r->stop_len, r->n_stop, &hold);
      if (at >= 0) {
        len = (size_t)at < sent ? sent : (size_t)at; /* the stop sequence is not part of the reply */
        res->finish = "stop";
        break;
      }
    }
    const size_t ready = sent + m64_utf8_complete(text + sent, len - hold - sent);
    if ((out = emit(io, text, sent, ready, err))) goto done;
    sent = ready;
    if (k + 1 == max) break;
    if ((rc = m64_session_eval(s, id, p.n + k, NULL, &e))) goto model_error;
  }
  out = emit(io, text, sent, len, err); /* what was held back */
done:
  if (out > 0) res->stopped = 1;
  free(p.v);
  free(text);
  return out < 0 ? -1 : 0;
model_error:
  free(p.v);
  free(text);
  *m64_rc = rc;
  return srv_fail(err, 500, "server_error", NULL, "%s", e.msg[0] ? e.msg : "the model failed");
}
