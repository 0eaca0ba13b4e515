/*
 * server.c — the HTTP side of `m64run --server` (server.h): libmicrohttpd, one thread per
 * connection; slots (sessions) on their own threads; a queue between them.
 *
 * A request's life: the connection thread reads the body (at most max_body bytes, else
 * 413), checks it (server_openai.c, else 400) and queues a job; a slot takes it and runs it
 * (server_gen.c), writing the reply into the job; the connection thread waits for it and
 * sends it — a stream as its chunks come, the rest whole. Both threads hold a reference
 * to the job; the last one frees it. While it waits, the connection thread watches its
 * socket: a client that hung up cancels the job, which its slot sees at the next token.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_FAILED } job_state;

typedef struct job {
  struct job *next;          /* in the queue */
  int refs;                  /* the connection and the slot; under g.mu like all below */
  pthread_cond_t cv;         /* state or out changed */
  job_state state;
  int cancelled;             /* the client is gone */
  srv_request req;
  srv_reply_ctx reply;
  char id[48];
  int fd;                    /* the client's socket, to notice it hang up */
  char *out;                 /* stream: SSE bytes; else the final JSON (JOB_DONE) */
  size_t out_len, out_cap, sent;
  char *text;                /* not streamed: the reply so far */
  size_t text_len, text_cap;
  srv_error err;             /* JOB_FAILED */
  int oom;                   /* out of memory while writing out */
  const char *path;          /* for the log line */
} job;

typedef struct slot {
  pthread_t th;
  m64_session *s;
  unsigned index;
  int busy;
} slot;

static struct {
  pthread_mutex_t mu;
  pthread_cond_t queue_cv;
  job *head, *tail;
  int shutdown;
  const m64run_server_opts *o;
  slot *slots;
  uint32_t n_vocab, n_ctx;
  unsigned n_streams;        /* stream responses not yet freed */
  long long started;
} g = {.mu = PTHREAD_MUTEX_INITIALIZER, .queue_cv = PTHREAD_COND_INITIALIZER};

/* ---------------------------------------------------------------- jobs */
static void job_release(job *j) { /* under g.mu */
  if (--j->refs) return;
  pthread_cond_destroy(&j->cv);
  srv_request_free(&j->req);
  srv_error_free(&j->err);
  free(j->out);
  free(j->text);
  free(j);
}

static int grow(char **buf, size_t *cap, size_t need) {
  if (need <= *cap) return 0;
  size_t c = need * 2;
  char *p = realloc(*buf, c);
  if (!p) return -1;
  *buf = p, *cap = c;
  return 0;
}

/* Appends "data: JSON\n\n" (JSON NULL: out of memory, noted) to the stream; under g.mu. */
static void sse(job *j, char *json) {
  const size_t n = json ? strlen(json) : 0;
  if (!json || grow(&j->out, &j->out_cap, j->out_len + n + 9)) j->oom = 1;
  else j->out_len += (size_t)sprintf(j->out + j->out_len, "data: %s\n\n", json);
  free(json);
  pthread_cond_broadcast(&j->cv);
}

static int peer_gone(int fd);

/* The slot's side of a hang-up: checked at every token, since a fast model may have
 * written its whole reply into the job before the connection thread looks again. */
static int stop_now(job *j) {
  if (!j->cancelled && peer_gone(j->fd)) j->cancelled = 1;
  return j->cancelled || g.shutdown || j->oom;
}

static int on_started(void *ctx, uint32_t n_prompt) {
  job *j = ctx;
  (void)n_prompt;
  pthread_mutex_lock(&g.mu);
  j->state = JOB_RUNNING;
  if (j->req.stream && j->req.kind == SRV_CHAT) sse(j, srv_chunk_json(&j->reply, "", 0, NULL, 1));
  pthread_cond_broadcast(&j->cv);
  const int stop = stop_now(j);
  pthread_mutex_unlock(&g.mu);
  return stop;
}

static int on_text(void *ctx, const char *text, size_t len) {
  job *j = ctx;
  pthread_mutex_lock(&g.mu);
  if (j->req.stream) sse(j, srv_chunk_json(&j->reply, text, len, NULL, 0));
  else if (grow(&j->text, &j->text_cap, j->text_len + len + 1)) j->oom = 1;
  else memcpy(j->text + j->text_len, text, len), j->text_len += len;
  const int stop = stop_now(j);
  pthread_mutex_unlock(&g.mu);
  return stop;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Runs one job on slot sl; the outcome goes into the job. */
static void run_job(slot *sl, job *j) {
  const m64run_server_opts *o = g.o;
  srv_gen_result res = {0};
  srv_error err = {0};
  int m64_rc = 0, rc;
  const double t0 = now();
  if (!sl->s) {
    rc = srv_fail(&err, 503, "server_error", NULL, "slot %u has no model: it failed to reopen after a trap", sl->index);
  } else {
    const srv_gen_io io = {on_started, on_text, j};
    rc = srv_generate(sl->s, &o->gen, &j->req, &io, &res, &err, &m64_rc);
  }
  pthread_mutex_lock(&g.mu);
  if (!rc && j->oom) rc = srv_fail(&err, 500, "server_error", NULL, "out of memory");
  const int streaming = j->req.stream && j->state == JOB_RUNNING;
  if (rc && !streaming) { /* nothing sent yet: an HTTP error */
    j->err = err;
    j->state = JOB_FAILED;
  } else if (rc) { /* mid-stream: an error event ends it, as llama-server does */
    sse(j, err.body ? strdup(err.body) : NULL);
    srv_error_free(&err);
    j->state = JOB_DONE;
  } else if (j->req.stream && res.stopped && g.shutdown) { /* cut short: not a finished reply */
    srv_fail(&err, 503, "server_error", NULL, "the server is stopping: this reply is incomplete");
    sse(j, err.body);
    err.body = NULL;
    j->state = JOB_DONE;
  } else if (j->req.stream) {
    sse(j, srv_chunk_json(&j->reply, "", 0, res.finish, 0));
    if (j->req.include_usage) sse(j, srv_usage_chunk_json(&j->reply, res.n_prompt, res.n_gen));
    const size_t n = 14;
    if (grow(&j->out, &j->out_cap, j->out_len + n + 1)) j->oom = 1;
    else j->out_len += (size_t)sprintf(j->out + j->out_len, "data: [DONE]\n\n");
    j->state = JOB_DONE;
  } else {
    j->out = srv_reply_json(&j->reply, j->text ? j->text : "", j->text_len, res.finish, res.n_prompt, res.n_gen);
    if (j->out) j->out_len = strlen(j->out);
    j->state = j->out ? JOB_DONE : JOB_FAILED;
    if (!j->out) srv_fail(&j->err, 500, "server_error", NULL, "out of memory");
  }
  fprintf(stderr, "m64run: slot %u: %s%s: %u prompt + %u generated tokens in %.2f s, %s%s\n", sl->index, j->path,
          j->req.stream ? " (stream)" : "", res.n_prompt, res.n_gen, now() - t0,
          rc ? "failed: " : res.stopped ? "client gone or server stopping" : res.finish,
          rc ? (j->state == JOB_FAILED && j->err.body ? j->err.body : "error event sent") : "");
  pthread_cond_broadcast(&j->cv);
  pthread_mutex_unlock(&g.mu);

  /* a trap leaves the session unusable (m64_runtime.h): a fresh one for the next request */
  if (m64_rc == M64_ETRAP) {
    m64_err e = {{0}};
    m64_session_close(sl->s);
    sl->s = NULL;
    if (m64_session_open(o->bundle_path, o->session, &sl->s, &e))
      fprintf(stderr, "m64run: slot %u: cannot reopen the model after a trap: %s\n", sl->index, e.msg);
  }
}

static void *slot_main(void *arg) {
  slot *sl = arg;
  pthread_mutex_lock(&g.mu);
  for (;;) {
    while (!g.head && !g.shutdown) pthread_cond_wait(&g.queue_cv, &g.mu);
    if (g.shutdown) break;
    job *j = g.head;
    if (!(g.head = j->next)) g.tail = NULL;
    if (j->cancelled) { /* its client left while it waited */
      job_release(j);
      continue;
    }
    sl->busy = 1;
    pthread_mutex_unlock(&g.mu);
    run_job(sl, j);
    pthread_mutex_lock(&g.mu);
    sl->busy = 0;
    job_release(j);
  }
  pthread_mutex_unlock(&g.mu);
  return NULL;
}

/* ---------------------------------------------------------------- HTTP */
typedef struct conn {
  char *body;
  size_t len, cap;
  int too_big;
  size_t discarded;
} conn;

static int peer_gone(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLRDHUP};
  return fd >= 0 && poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

static enum MHD_Result send_body(struct MHD_Connection *c, unsigned status, char *body) {
  static const char fallback[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,\"code\":null}}";
  struct MHD_Response *r = body ? MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE)
                                : MHD_create_response_from_buffer(sizeof fallback - 1, (void *)fallback,
                                                                  MHD_RESPMEM_PERSISTENT);
  if (!r) {
    free(body);
    return MHD_NO;
  }
  if (!body) status = 500;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
  const enum MHD_Result ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c, const char *method, const char *url, int status,
                                  const char *type, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
static enum MHD_Result send_error(struct MHD_Connection *c, const char *method, const char *url, int status,
                                  const char *type, const char *param, const char *fmt, ...) {
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  srv_error err = {0};
  srv_fail(&err, status, type, param, "%s", msg);
  fprintf(stderr, "m64run: %s %s: %d %s\n", method, url, status, msg);
  return send_body(c, (unsigned)status, err.body);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
  job *j = cls;
  (void)pos;
  pthread_mutex_lock(&g.mu);
  for (;;) {
    if (j->sent < j->out_len) {
      const size_t n = j->out_len - j->sent < max ? j->out_len - j->sent : max;
      memcpy(buf, j->out + j->sent, n);
      j->sent += n;
      pthread_mutex_unlock(&g.mu);
      return (ssize_t)n;
    }
    if (j->state == JOB_DONE || j->state == JOB_FAILED) break;
    /* stopping: a running reply ends at its slot's next token, with an error event */
    if (g.shutdown && j->state != JOB_RUNNING) {
      j->cancelled = 1;
      pthread_mutex_unlock(&g.mu);
      return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 100 * 1000000L;
    if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
    pthread_cond_timedwait(&j->cv, &g.mu, &until);
    if (peer_gone(j->fd)) {
      j->cancelled = 1;
      pthread_mutex_unlock(&g.mu);
      return MHD_CONTENT_READER_END_WITH_ERROR;
    }
  }
  pthread_mutex_unlock(&g.mu);
  return MHD_CONTENT_READER_END_OF_STREAM;
}

/* The response is done with (sent, or the client is gone): the connection's reference. */
static void stream_free(void *cls) {
  job *j = cls;
  pthread_mutex_lock(&g.mu);
  if (j->state != JOB_DONE && j->state != JOB_FAILED) j->cancelled = 1;
  g.n_streams--;
  job_release(j);
  pthread_mutex_unlock(&g.mu);
}

static void random_id(char *out, size_t cap, const char *prefix) {
  unsigned char b[12] = {0};
  if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
    const uint64_t t = (uint64_t)(now() * 1e9);
    memcpy(b, &t, sizeof t);
  }
  int n = snprintf(out, cap, "%s", prefix);
  for (size_t i = 0; i < sizeof b && (size_t)n + 2 < cap; i++) n += snprintf(out + n, cap - (size_t)n, "%02x", b[i]);
}

static enum MHD_Result generate(struct MHD_Connection *c, const char *method, const char *url, srv_kind kind, conn *st) {
  const m64run_server_opts *o = g.o;
  job *j = calloc(1, sizeof *j);
  if (!j) return send_error(c, method, url, 500, "server_error", NULL, "out of memory");
  srv_error err = {0};
  if (srv_parse_request(kind, st->body ? st->body : "", st->len, g.n_vocab, &o->defaults, &j->req, &err)) {
    srv_request_free(&j->req);
    free(j);
    char *body = err.body;
    fprintf(stderr, "m64run: %s %s: %d %s\n", method, url, err.status, body ? body : "");
    return send_body(c, (unsigned)err.status, body);
  }
  pthread_cond_init(&j->cv, NULL);
  j->refs = 2;
  random_id(j->id, sizeof j->id, kind == SRV_CHAT ? "chatcmpl-" : "cmpl-");
  j->reply = (srv_reply_ctx){kind, j->id, o->model_name, (long long)time(NULL)};
  j->path = kind == SRV_CHAT ? "chat/completions" : "completions";
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
  j->fd = ci ? ci->connect_fd : -1;

  pthread_mutex_lock(&g.mu);
  if (g.shutdown) {
    j->refs = 1;
    job_release(j);
    pthread_mutex_unlock(&g.mu);
    return send_error(c, method, url, 503, "server_error", NULL, "the server is stopping");
  }
  if (g.tail) g.tail->next = j;
  else g.head = j;
  g.tail = j;
  pthread_cond_signal(&g.queue_cv);
  /* wait for the slot: a stream until its first bytes are due, the rest until the end */
  while (j->state == JOB_QUEUED || (!j->req.stream && j->state == JOB_RUNNING)) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 100 * 1000000L;
    if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
    pthread_cond_timedwait(&j->cv, &g.mu, &until);
    if (g.shutdown || peer_gone(j->fd)) {
      j->cancelled = 1;
      const int stopping = g.shutdown;
      if (j->state == JOB_QUEUED && stopping) { /* no slot will take it now */
        job *prev = NULL;
        for (job *q = g.head; q; prev = q, q = q->next)
          if (q == j) {
            if (prev) prev->next = q->next;
            else g.head = q->next;
            if (g.tail == q) g.tail = prev;
            j->refs--; /* the queue's; the connection's goes below */
            break;
          }
      }
      job_release(j);
      pthread_mutex_unlock(&g.mu);
      if (stopping) return send_error(c, method, url, 503, "server_error", NULL, "the server is stopping");
      fprintf(stderr, "m64run: %s %s: the client hung up before the reply\n", method, url);
      return MHD_NO; /* the client is gone: close */
    }
  }
  if (j->state == JOB_FAILED) {
    char *body = j->err.body;
    const int status = j->err.status;
    j->err.body = NULL;
    job_release(j);
    pthread_mutex_unlock(&g.mu);
    return send_body(c, (unsigned)status, body);
  }
  if (!j->req.stream) {
    char *body = j->out;
    j->out = NULL;
    job_release(j);
    pthread_mutex_unlock(&g.mu);
    return send_body(c, MHD_HTTP_OK, body);
  }
  g.n_streams++;
  pthread_mutex_unlock(&g.mu);
  /* the stream: its reader takes the connection's reference, stream_free drops it */
  struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, j, stream_free);
  if (!r) {
    stream_free(j);
    return MHD_NO;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
  const enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
  (void)cls, (void)version;
  conn *st = *con_cls;
  const size_t max_body = g.o->max_body;
  if (!st) { /* the headers are in; the body (if any) follows */
    if (!(st = calloc(1, sizeof *st))) return MHD_NO;
    *con_cls = st;
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > max_body) st->too_big = 1;
    return MHD_YES;
  }
  if (*upload_size) { /* more of the body */
    if (!st->too_big && st->len + *upload_size > max_body) st->too_big = 1;
    if (st->too_big) {
      /* read and drop the rest, so that the client sees the 413 rather than a reset; one
       * that keeps sending past 64 MiB (or 16 times the limit) gets it at once, and the
       * connection closes */
      st->discarded += *upload_size;
      *upload_size = 0;
      if (st->discarded > 16 * (uint64_t)max_body && st->discarded > (64u << 20)) {
        srv_error err = {0};
        srv_fail(&err, 413, "invalid_request_error", NULL, "the request body is larger than the server's limit of %zu bytes (--max-body)", max_body);
        return send_body(c, 413, err.body);
      }
      return MHD_YES;
    }
    if (grow(&st->body, &st->cap, st->len + *upload_size + 1)) return MHD_NO;
    memcpy(st->body + st->len, upload, *upload_size);
    st->len += *upload_size;
    *upload_size = 0;
    return MHD_YES;
  }
  /* the whole request is in */
  if (st->too_big)
    return send_error(c, method, url, 413, "invalid_request_error", NULL,
                      "the request body is larger than the server's limit of %zu bytes (--max-body)", max_body);
  const char *path = !strncmp(url, "/v1/", 4) ? url + 3 : url;
  const int post = !strcmp(method, "POST"), get = !strcmp(method, "GET");
  srv_kind kind;
  if (!strcmp(path, "/completions")) kind = SRV_COMPLETION;
  else if (!strcmp(path, "/chat/completions")) kind = SRV_CHAT;
  else if (!strcmp(path, "/models") || !strcmp(url, "/health")) {
    if (!get) return send_error(c, method, url, 405, "invalid_request_error", NULL, "%s takes GET, not %s", url, method);
    if (!strcmp(url, "/health")) {
      unsigned busy = 0;
      pthread_mutex_lock(&g.mu);
      for (unsigned i = 0; i < g.o->parallel; i++) busy += (unsigned)g.slots[i].busy;
      pthread_mutex_unlock(&g.mu);
      char *body = malloc(96);
      if (body)
        snprintf(body, 96, "{\"status\":\"ok\",\"slots_idle\":%u,\"slots_processing\":%u}", g.o->parallel - busy, busy);
      return send_body(c, MHD_HTTP_OK, body);
    }
    return send_body(c, MHD_HTTP_OK, srv_models_json(g.o->model_name, g.started, g.n_ctx));
  } else {
    return send_error(c, method, url, 404, "invalid_request_error", NULL,
                      "no such endpoint: %s (this server has /v1/completions, /v1/chat/completions, /v1/models, /health)",
                      url);
  }
  if (!post) return send_error(c, method, url, 405, "invalid_request_error", NULL, "%s takes POST, not %s", url, method);
  return generate(c, method, url, kind, st);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
  (void)cls, (void)c, (void)toe;
  conn *st = *con_cls;
  if (st) free(st->body), free(st);
  *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  fputs("m64run: http: ", stderr);
  vfprintf(stderr, fmt, ap);
}

/* ---------------------------------------------------------------- the server */
/* SIGINT/SIGTERM: the first one wakes the main thread through a pipe (whichever thread
 * the signal lands on); a second one, e.g. while the model is still loading or a long step
 * runs, ends the process at once. The library's threads wait on condition variables only,
 * which SA_RESTART keeps unaffected. */
static int g_sig_pipe[2] = {-1, -1};
static volatile sig_atomic_t g_sig;
static void on_stop_signal(int sig) {
  if (g_sig) {
    signal(sig, SIG_DFL);
    raise(sig);
    return;
  }
  g_sig = sig;
  const int saved = errno;
  if (write(g_sig_pipe[1], "x", 1) < 0) {} /* the flag is enough if the pipe is full */
  errno = saved;
}

int m64run_server(const m64run_server_opts *o, m64_err *e) {
  g.o = o;
  g.started = (long long)time(NULL);
  if (pipe2(g_sig_pipe, O_CLOEXEC)) return m64_fail(e, M64_EIO, "pipe: %s", strerror(errno));
  struct sigaction sa = {0}, old_int, old_term, old_pipe;
  sa.sa_handler = on_stop_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  /* a client that hangs up must not end the process */
  sa.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &sa, &old_pipe);

  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
  const int gai = getaddrinfo(o->host, NULL, &hints, &ai);
  int rc = 0;
  unsigned n_open = 0, n_threads = 0;
  struct MHD_Daemon *d = NULL;
  if (gai) {
    rc = m64_fail(e, M64_EIO, "--host %s: %s", o->host, gai_strerror(gai));
    goto out;
  }
  struct sockaddr_storage addr;
  memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
  const int v6 = ai->ai_family == AF_INET6;
  freeaddrinfo(ai);
  if (v6) ((struct sockaddr_in6 *)&addr)->sin6_port = htons((uint16_t)o->port);
  else ((struct sockaddr_in *)&addr)->sin_port = htons((uint16_t)o->port);

  if (!(g.slots = calloc(o->parallel, sizeof *g.slots))) {
    rc = m64_fail(e, M64_ENOMEM, "out of memory");
    goto out;
  }
  for (; n_open < o->parallel; n_open++) {
    g.slots[n_open].index = n_open;
    if ((rc = m64_session_open(o->bundle_path, o->session, &g.slots[n_open].s, e))) goto out;
  }
  if (o->after_open) o->after_open();
  if (g_sig) goto stopping; /* stopped while the model loaded */
  g.n_vocab = m64_session_n_vocab(g.slots[0].s);
  g.n_ctx = m64_session_n_ctx(g.slots[0].s);
  for (; n_threads < o->parallel; n_threads++)
    if (pthread_create(&g.slots[n_threads].th, NULL, slot_main, &g.slots[n_threads])) {
      rc = m64_fail(e, M64_ENOMEM, "cannot start a slot thread");
      goto out;
    }

  d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG |
                           (v6 ? MHD_USE_IPv6 : 0),
                       (uint16_t)o->port, NULL, NULL, on_request, NULL, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
                       MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
                       MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                       MHD_OPTION_END);
  if (!d) {
    rc = m64_fail(e, M64_EIO, "cannot listen on %s port %u: %s", o->host, o->port, strerror(errno));
    goto out;
  }
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  const unsigned port = di ? di->port : o->port;
  fprintf(stderr,
          "m64run: serving %s on http://%s%s%s:%u/v1/ (%u slot%s, context %u); /health; Ctrl-C stops\n",
          o->model_name, v6 ? "[" : "", o->host, v6 ? "]" : "", port, o->parallel, o->parallel == 1 ? "" : "s",
          g.n_ctx);
  fflush(stderr);

  while (!g_sig) {
    char c;
    if (read(g_sig_pipe[0], &c, 1) < 0 && errno != EINTR) break;
  }
stopping:
  fprintf(stderr, "m64run: %s: stopping the server\n", g_sig == SIGINT ? "interrupt" : "terminated");

out:
  pthread_mutex_lock(&g.mu);
  g.shutdown = 1;
  pthread_cond_broadcast(&g.queue_cv);
  for (job *j = g.head; j; j = j->next) pthread_cond_broadcast(&j->cv);
  pthread_mutex_unlock(&g.mu);
  /* the slots end their replies at the next token; the streams get to send their last
   * event (for up to 2 s) before the daemon closes every connection */
  for (unsigned i = 0; i < n_threads; i++) pthread_join(g.slots[i].th, NULL);
  for (int k = 0; k < 200; k++) {
    pthread_mutex_lock(&g.mu);
    const unsigned streams = g.n_streams;
    pthread_mutex_unlock(&g.mu);
    if (!streams) break;
    nanosleep(&(struct timespec){0, 10 * 1000000L}, NULL);
  }
  if (d) MHD_stop_daemon(d); /* its connection threads see g.shutdown and end */
  /* jobs a slot never took: their connections are gone with the daemon */
  while (g.head) {
    job *j = g.head;
    g.head = j->next;
    job_release(j);
  }
  for (unsigned i = 0; i < n_open && g.slots; i++) m64_session_close(g.slots[i].s);
  free(g.slots);
  g.slots = NULL;
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);
  sigaction(SIGPIPE, &old_pipe, NULL);
  close(g_sig_pipe[0]), close(g_sig_pipe[1]);
  if (!rc) fprintf(stderr, "m64run: server stopped\n");
  return rc;
}
