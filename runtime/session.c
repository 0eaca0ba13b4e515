/*
 * session.c — one running bundle: native code, the module instance, and its imports,
 * which hand layer requests to the pager (pager.h).
 */
#include <errno.h>
#include <pthread.h>
#include <sys/stat.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "m64_runtime.h"
#include "m64_wasm.h"
#include "native.h"
#include "m64_module.h" /* M64_TOK_MAX_IDS */
#include "native_abi.h"
#include "local_mark.h"
#include "m64_sign.h"
#include "pager.h"

#define WASM_PAGE 65536ull
#define IO_BYTES (64u * 1024) /* text in, ids out, pieces */
/* Room left outside the layer cache for the tokenizer's scratch, which grows with the
 * longest text encoded (about 85 bytes per byte of text; BPE up to about 130). */
#define HEADROOM (2u << 20)
#define WORKER_STACK (256u * 1024) /* shadow stack of each extra thread's instance */
/* How long a waiting pool thread polls before it sleeps (see spin_until). */
#define SPIN_NS 2000000ull       /* a thread per core */
#define SPIN_NS_SHARED 20000ull  /* more threads than cores: the polls would take a core's time */

struct w2c_m64 { struct m64_session *s; };

struct m64_session {
  m64_bundle *bundle;
  m64_native *native;
  const m64_native_abi *abi;
  void *inst;               /* == insts[0], the one the session calls */
  void **insts;             /* one instance per thread, all over `memory` */
  uint32_t n_threads;
  struct w2c_m64 host;
  wasm_rt_memory_t memory;  /* the workspace: the modules' imported memory */
  int memory_ready;
  wasm_rt_memory_t *mem;    /* &memory once allocated */

  /* the thread pool that runs m64_worker shares (threads 1..n-1) */
  pthread_t *threads;
  uint32_t n_started;
  pthread_mutex_t pool_mu;
  pthread_cond_t pool_go, pool_done;
  _Atomic uint64_t pool_gen;
  _Atomic uint32_t pool_pending;
  _Atomic uint32_t next_share;  /* the next share of the job a thread may claim */
  uint32_t n_shares;            /* shares per job: a few per thread (see run_shares) */
  _Atomic int pool_stop;
  _Atomic int pool_failed;
  uint64_t spin_ns;             /* SPIN_NS or SPIN_NS_SHARED */
  char pool_error[512];
  char target[48];
  char native_source[160];  /* why the loaded code was accepted, for people */
  m64_sig_info sig;         /* the bundle's signature, checked at open */
  m64_session_options opt;

  uint32_t n_vocab, n_layers, n_ctx, n_ctx_train, max_batch;
  int32_t bos, eos;
  uint32_t io;          /* IO_BYTES of scratch inside the workspace */
  uint32_t logits;      /* address of the last logits */

  struct call *pool_calls;
  char *path;
  struct stat file_st;  /* the bundle as opened (verify_stamps: what a stamp records) */
  int stamp_state;      /* 0: none; 1: spared by a stamp; 2: recorded; -1: watching (record once all hashed) */
  m64_pager *pager;
  uint64_t cache_size;
  m64_session_stats st;
};


/* ------------------------------------------------------------ calling the module */
enum op { OP_ALLOCATE_MEMORY, OP_INSTANTIATE, OP_WORKER, OP_THREADS, OP_ABI, OP_ALLOC, OP_STATE_BYTES, OP_INIT, OP_N_VOCAB, OP_N_LAYERS,
          OP_N_CTX_TRAIN, OP_FORWARD_BATCH, OP_MAX_BATCH, OP_TOK_LOAD, OP_TOK_ENCODE, OP_TOK_PIECE, OP_BOS, OP_EOS,
          OP_SEED, OP_SAMPLE, OP_TOK_FIND, OP_TOK_IS_EOG };

typedef struct call {
  m64_session *s;
  enum op op;
  uint32_t a[5];
  float f[2];
  uint32_t ret;
  void *inst; /* NULL: the session's instance */
} call;

static void call_thunk(void *p) {
  call *c = p;
  const m64_native_abi *abi = c->s->abi;
  void *i = c->inst ? c->inst : c->s->inst;
  switch (c->op) {
    case OP_ALLOCATE_MEMORY: /* traps (host) if the memory cannot be reserved */
      wasm_rt_allocate_memory(&c->s->memory, c->a[0], c->a[1], false, 65536);
      c->s->memory_ready = 1;
      break;
    case OP_INSTANTIATE: abi->instantiate(i, &c->s->host); break;
    case OP_WORKER: abi->m64_worker(i, c->a[0], c->a[1]); break;
    case OP_THREADS: c->ret = abi->m64_threads(i, c->a[0]); break;
    case OP_ABI: c->ret = abi->m64_abi_version(i); break;
    case OP_ALLOC: c->ret = abi->m64_alloc(i, c->a[0]); break;
    case OP_STATE_BYTES: c->ret = abi->m64_state_bytes(i, c->a[0]); break;
    case OP_INIT: c->ret = abi->m64_init(i, c->a[0]); break;
    case OP_N_VOCAB: c->ret = abi->m64_n_vocab(i); break;
    case OP_N_LAYERS: c->ret = abi->m64_n_layers(i); break;
    case OP_N_CTX_TRAIN: c->ret = abi->m64_n_ctx_train(i); break;
    case OP_FORWARD_BATCH: c->ret = abi->m64_forward_batch(i, c->a[0], c->a[1], c->a[2]); break;
    case OP_MAX_BATCH: c->ret = abi->m64_max_batch(i); break;
    case OP_TOK_LOAD: c->ret = abi->m64_tok_load(i, c->a[0], c->a[1]); break;
    case OP_TOK_ENCODE: c->ret = abi->m64_tok_encode(i, c->a[0], c->a[1], c->a[2], c->a[3], c->a[4]); break;
    case OP_TOK_PIECE: c->ret = abi->m64_tok_piece(i, c->a[0], c->a[1], c->a[2], c->a[3]); break;
    case OP_BOS: c->ret = abi->m64_tok_bos(i); break;
    case OP_EOS: c->ret = abi->m64_tok_eos(i); break;
    case OP_TOK_FIND: c->ret = abi->m64_tok_find(i, c->a[0], c->a[1]); break;
    case OP_TOK_IS_EOG: c->ret = abi->m64_tok_is_eog(i, c->a[0]); break;
    case OP_SEED: abi->m64_sampler_seed(i, c->a[0], c->a[1]); break;
    case OP_SAMPLE: c->ret = abi->m64_sample(i, c->a[0], c->f[0], c->a[1], c->f[1]); break;
  }
}

/* Runs one export; a trap becomes M64_ETRAP with the trap's name (and the host's reason
 * when the host itself aborted the call). */
static int invoke(m64_session *s, call *c, m64_err *e) {
  c->s = s;
  wasm_rt_trap_t t = m64_wasm_call(call_thunk, c);
  if (t == WASM_RT_TRAP_NONE) return 0;
  if (t == WASM_RT_TRAP_HOST) return m64_fail(e, M64_ETRAP, "%s", m64_wasm_last_host_message());
  return m64_fail(e, M64_ETRAP, "wasm trap in the model module: %s", m64_wasm_trap_name(t));
}

static int invoke0(m64_session *s, enum op op, uint32_t *ret, m64_err *e) {
  call c = {.op = op};
  int rc = invoke(s, &c, e);
  if (ret) *ret = c.ret;
  return rc;
}
static int invoke1(m64_session *s, enum op op, uint32_t a0, uint32_t *ret, m64_err *e) {
  call c = {.op = op, .a = {a0}};
  int rc = invoke(s, &c, e);
  if (ret) *ret = c.ret;
  return rc;
}

/* Bounds-checked pointer into the workspace. */
static uint8_t *ws(m64_session *s, uint32_t addr, uint64_t len) {
  if ((uint64_t)addr + len > s->mem->size) return NULL;
  return s->mem->data + addr;
}

/* ------------------------------------------------------------ imports */
uint32_t w2c_m64_layer_acquire(struct w2c_m64 *h, uint32_t layer) {
  return m64_pager_acquire(h->s->pager, layer);
}
void w2c_m64_layer_release(struct w2c_m64 *h, uint32_t layer) { m64_pager_release(h->s->pager, layer); }
void w2c_m64_layer_prefetch(struct w2c_m64 *h, uint32_t layer) { m64_pager_prefetch(h->s->pager, layer); }

wasm_rt_memory_t *w2c_m64_memory(struct w2c_m64 *h) { return &h->s->memory; }

/* ---- threads: m64.parallel runs m64_worker(i, n) for every share i, then returns ----
 * A job is cut into a few shares per thread and threads claim them in turn: on a shared,
 * noisy machine a thread that is descheduled for a while no longer holds up half the job.
 * Which thread runs a share does not change its result (each share is computed alike). */
#define SHARES_PER_THREAD 4u

/* Runs shares until none is left; a trap ends this thread's part, and no thread claims
 * a share after it (the job is lost anyway). */
static wasm_rt_trap_t run_shares(m64_session *s, call *c) {
  for (;;) {
    const uint32_t share = atomic_fetch_add(&s->next_share, 1);
    if (share >= s->n_shares) return WASM_RT_TRAP_NONE;
    c->a[0] = share;
    c->a[1] = s->n_shares;
    wasm_rt_trap_t t = m64_wasm_call(call_thunk, c);
    if (t != WASM_RT_TRAP_NONE) {
      atomic_store(&s->next_share, s->n_shares);
      return t;
    }
  }
}

/* The error text of a trap in share `share` on thread `thread`: a host error (a failed
 * page-in, say) as it is, a wasm trap named as one. */
static void share_trap_text(char *out, size_t n, wasm_rt_trap_t t, uint32_t thread, uint32_t share) {
  if (t == WASM_RT_TRAP_HOST)
    snprintf(out, n, "%s", m64_wasm_last_host_message());
  else
    snprintf(out, n, "wasm trap in the model module: %s (thread %u, share %u)", m64_wasm_trap_name(t), thread, share);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause(); /* leaves the core's ports to its other hyperthread meanwhile */
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* Polls until done(s) holds or s->spin_ns have passed; returns done(s). A decode step is a
 * few hundred products with microseconds of one-thread work between them; a thread that
 * sleeps there is woken through a futex and, on a VM, an interrupt to a halted vCPU, which
 * can cost more than the product. Measured (7B Q4_K_M, 2 threads, 11 decode passes, five
 * alternating pairs): 20000 bare polls (~20 us) before sleeping 4.68-6.27 s (median 5.67),
 * polling up to 2 ms 4.02-5.55 s (median 4.55); context switches of a 200-token run of a
 * small model 5866 -> 389. */
static int spin_until(m64_session *s, int (*done)(m64_session *)) {
  uint64_t start = 0;
  for (uint32_t i = 0;; i++) {
    if (done(s)) return 1;
    cpu_relax();
    if ((i & 63) == 63) { /* the clock now and then: one poll costs far less */
      const uint64_t t = now_ns();
      if (!start) start = t;
      else if (t - start > s->spin_ns) return done(s);
    }
  }
}

static _Thread_local uint64_t g_seen_gen; /* the last job this pool thread took */
static int new_job_or_stop(m64_session *s) {
  return atomic_load(&s->pool_gen) != g_seen_gen || atomic_load(&s->pool_stop);
}
static int job_done(m64_session *s) { return atomic_load(&s->pool_pending) == 0; }

static void *pool_thread(void *arg) {
  call *c = arg; /* one per thread, owned by the session */
  m64_session *s = c->s;
  g_seen_gen = 0;
  for (;;) {
    if (!spin_until(s, new_job_or_stop)) {
      pthread_mutex_lock(&s->pool_mu);
      while (!new_job_or_stop(s)) pthread_cond_wait(&s->pool_go, &s->pool_mu);
      pthread_mutex_unlock(&s->pool_mu);
    }
    if (atomic_load(&s->pool_stop)) break;
    g_seen_gen = atomic_load(&s->pool_gen);
    wasm_rt_trap_t t = run_shares(s, c);
    if (t != WASM_RT_TRAP_NONE && !atomic_exchange(&s->pool_failed, 1))
      share_trap_text(s->pool_error, sizeof s->pool_error, t, (uint32_t)(c - s->pool_calls), c->a[0]);
    if (atomic_fetch_sub(&s->pool_pending, 1) == 1) {
      pthread_mutex_lock(&s->pool_mu);
      pthread_cond_signal(&s->pool_done);
      pthread_mutex_unlock(&s->pool_mu);
    }
  }
  return NULL;
}

void w2c_m64_parallel(struct w2c_m64 *h) {
  m64_session *s = h->s;
  const uint32_t n = s->n_started + 1;
  atomic_store(&s->pool_pending, n - 1);
  atomic_store(&s->next_share, 0);
  pthread_mutex_lock(&s->pool_mu);
  atomic_fetch_add(&s->pool_gen, 1);
  pthread_cond_broadcast(&s->pool_go);
  pthread_mutex_unlock(&s->pool_mu);

  /* this thread's share, with its own trap recovery so the others are always joined */
  call c0 = {.s = s, .op = OP_WORKER, .inst = s->insts[0]};
  wasm_rt_trap_t t = run_shares(s, &c0);
  if (!spin_until(s, job_done)) {
    pthread_mutex_lock(&s->pool_mu);
    while (!job_done(s)) pthread_cond_wait(&s->pool_done, &s->pool_mu);
    pthread_mutex_unlock(&s->pool_mu);
  }
  if (t != WASM_RT_TRAP_NONE) {
    char text[sizeof s->pool_error];
    share_trap_text(text, sizeof text, t, 0, c0.a[0]);
    m64_wasm_host_trap(text);
  }
  if (atomic_load(&s->pool_failed)) m64_wasm_host_trap(s->pool_error);
}

static void stop_pool(m64_session *s) {
  if (!s->n_started) return;
  pthread_mutex_lock(&s->pool_mu);
  atomic_store(&s->pool_stop, 1);
  pthread_cond_broadcast(&s->pool_go);
  pthread_mutex_unlock(&s->pool_mu);
  for (uint32_t k = 0; k < s->n_started; k++) pthread_join(s->threads[k], NULL);
  s->n_started = 0;
}

/* Gives instances 1..n-1 their own stacks inside the workspace and starts their threads. */
static int start_pool(m64_session *s, m64_err *e) {
  if (s->n_threads <= 1) return 0;
  const long cores = sysconf(_SC_NPROCESSORS_ONLN);
  s->spin_ns = cores > 0 && s->n_threads > (uint32_t)cores ? SPIN_NS_SHARED : SPIN_NS;
  s->threads = calloc(s->n_threads, sizeof *s->threads);
  call *cs = calloc(s->n_threads, sizeof *cs);
  if (!s->threads || !cs) {
    free(cs);
    return m64_fail(e, M64_ENOMEM, "out of memory");
  }
  s->pool_calls = cs;
  for (uint32_t k = 1; k < s->n_threads; k++) {
    uint32_t stack;
    int rc = invoke1(s, OP_ALLOC, WORKER_STACK, &stack, e);
    if (rc) return rc;
    if (!stack) return m64_fail(e, M64_ELIMIT, "workspace too small for %u threads' stacks", s->n_threads);
    *s->abi->stack_pointer(s->insts[k]) = (stack + WORKER_STACK) & ~15u;
    cs[k] = (call){.s = s, .op = OP_WORKER, .a = {k, s->n_threads}, .inst = s->insts[k]};
    if (pthread_create(&s->threads[s->n_started], NULL, pool_thread, &cs[k]))
      return m64_fail(e, M64_EIO, "cannot start thread %u", k);
    s->n_started++;
  }
  return 0;
}

void w2c_m64_log(struct w2c_m64 *h, uint32_t msg, uint32_t len) {
  const uint8_t *p = ws(h->s, msg, len);
  if (p) fprintf(stderr, "m64 module: %.*s\n", (int)len, (const char *)p);
}

/* ------------------------------------------------------------ opening */
/* Whether this user accepts running the native code in sec (a private copy of the NATIVE
 * section rec, for target). The one place that decides (SECURITY.md): until it says yes,
 * only the section's 64-byte header and hashes over its bytes have been looked at; nothing
 * of the code is parsed, mapped or run. *why says why not. */
static int native_accepted(m64_session *s, const m64_section *rec, const uint8_t *sec, uint64_t size,
                           const char *target, int *why_rc, m64_err *why) {
  if (s->opt.trust_bundle_native) { /* the user's explicit choice for this run */
    snprintf(s->native_source, sizeof s->native_source, "as shipped (--trust-bundle-native)");
    return 1;
  }
  /* Rule 1: compiled here by this user (m64c build / m64c aot marked it with their key). */
  *why_rc = m64_native_section_check_mark(sec, size, target, why);
  if (*why_rc == 0) {
    snprintf(s->native_source, sizeof s->native_source, "compiled here (your local mark)");
    return 1;
  }
  /* Rule 2: signed by a publisher this user trusts. The signature (checked at open) covers
   * the table, so rec->sha256; the copy must hash to it, since the file may have changed
   * since the open checked it and only the copy is loaded. */
  if (s->sig.status == M64_SIG_TRUSTED) {
    uint8_t d[32];
    m64_sha256 h;
    m64_sha256_init(&h);
    m64_sha256_update(&h, sec, (size_t)size);
    m64_sha256_final(&h, d);
    if (memcmp(d, rec->sha256, 32) == 0) {
      snprintf(s->native_source, sizeof s->native_source, "signed by %s (%s), whom you trust", s->sig.signer,
               s->sig.fingerprint);
      return 1;
    }
    *why_rc = M64_EIO;
    m64_fail(why, M64_EIO, "its bytes changed after the bundle was opened, so the signature does not cover them");
  }
  return 0;
}

/* path as a shell word, for a command the user can paste */
static void shell_word(char *out, size_t cap, const char *path) {
  if (!path[strspn(path, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./+-=:,@%")]) {
    snprintf(out, cap, "%s", path);
    return;
  }
  size_t n = 0;
  out[n++] = '\'';
  for (const char *p = path; *p && n + 6 < cap; p++) {
    if (*p == '\'') {
      memcpy(out + n, "'\\''", 4);
      n += 4;
    } else {
      out[n++] = *p;
    }
  }
  out[n++] = '\'';
  out[n] = 0;
}

/* Picks the native code to run: among the NATIVE sections built from this bundle's module
 * for a target this CPU runs, the best target (m64_target_rank: v4vnni > v3 > v2 > x86_64)
 * that the user accepts (native_accepted); a refused one gives way to the next best. */
static int load_native(m64_session *s, m64_err *e) {
  const m64_section *wasm = m64_bundle_find_section(s->bundle, M64_SEC_MODULE_WASM, NULL);
  if (!wasm) return m64_fail(e, M64_EFORMAT, "bundle has no wasm module");
  const m64_section *pick = NULL;
  uint8_t *copy = NULL; /* the picked section, copied: the bytes checked are the bytes loaded,
                           whatever happens to the file meanwhile */
  m64_native_section code = {0};
  int stale = 0, refused_rc = 0, rc = 0;
  m64_err refused = {{0}}; /* why the best refused candidate was not accepted */
  char refused_target[48] = "", others[160] = ""; /* others: stored targets this CPU cannot run */
  const m64_section *cand[M64_MAX_SECTIONS];
  int rank[M64_MAX_SECTIONS], n = 0;
  for (uint32_t i = 0; i < m64_bundle_n_sections(s->bundle) && n < (int)M64_MAX_SECTIONS; i++) {
    const m64_section *sec = m64_bundle_section_at(s->bundle, i);
    if (sec->kind != M64_SEC_NATIVE) continue;
    const int r = m64_target_rank(sec->name);
    if (!r) {
      const size_t used = strlen(others);
      snprintf(others + used, sizeof others - used, "%s%s", used ? ", " : "", sec->name);
      continue;
    }
    m64_native_section ns; /* the header only */
    if (m64_native_section_parse(sec->data, sec->size, &ns, NULL))
      return m64_fail(e, M64_EFORMAT, "native section '%s' is malformed", sec->name);
    if (memcmp(ns.wasm_sha256, wasm->sha256, 32) != 0) {
      stale = 1;
      continue;
    }
    int k = n++; /* insertion: best rank first, the bundle's order among equals */
    for (; k > 0 && rank[k - 1] < r; k--) {
      cand[k] = cand[k - 1];
      rank[k] = rank[k - 1];
    }
    cand[k] = sec;
    rank[k] = r;
  }
  for (int k = 0; k < n && !rc && !pick; k++) {
    const m64_section *sec = cand[k];
    m64_native_section ns;
    uint8_t *c = malloc(sec->size ? sec->size : 1);
    if (!c) {
      rc = m64_fail(e, M64_ENOMEM, "out of memory for native code");
      break;
    }
    memcpy(c, sec->data, sec->size);
    int why_rc = 0;
    m64_err why = {{0}};
    /* again on the copy, whose code is what gets loaded */
    if (m64_native_section_parse(c, sec->size, &ns, NULL) || memcmp(ns.wasm_sha256, wasm->sha256, 32) != 0) {
      rc = m64_fail(e, M64_EIO, "native section '%s' changed while it was read", sec->name);
    } else if (native_accepted(s, sec, c, sec->size, sec->name, &why_rc, &why)) {
      copy = c;
      pick = sec;
      code = ns;
      continue;
    } else if (!refused_target[0]) {
      snprintf(refused_target, sizeof refused_target, "%s", sec->name);
      refused = why;
      refused_rc = why_rc;
    }
    free(c);
  }
  if (!rc && !pick && refused_target[0]) {
    char cmd[600];
    shell_word(cmd, sizeof cmd, s->path);
    /* one line: what was refused, why, and the two ways on */
    if (s->sig.status == M64_SIG_UNKNOWN_SIGNER) /* a signer the user could trust is a third way on */
      rc = m64_fail(e, M64_EUNTRUSTED,
                    "not loading the bundle's native code for %s: it was not compiled here by you, and it is signed "
                    "by %s, a key that is %s. `m64c trust add` that key's .pub if you trust its publisher, run "
                    "`m64c aot %s` to compile the bundle's own wasm module here, or pass --trust-bundle-native to run "
                    "it anyway, with all your rights (SECURITY.md)",
                    refused_target, s->sig.fingerprint, s->sig.why, cmd);
    else
      rc = m64_fail(e, M64_EUNTRUSTED,
                    "not loading the bundle's native code for %s: %s%s. Run `m64c aot %s` to compile the "
                    "bundle's own wasm module here, or pass --trust-bundle-native to run it anyway, with all "
                    "your rights, if you trust whoever built the bundle (SECURITY.md)",
                    refused_target, refused.msg, refused_rc == M64_EIO ? "" : ", so it was not compiled here by you",
                    cmd);
  }
  if (!rc && !pick) {
    char cmd[600];
    shell_word(cmd, sizeof cmd, s->path);
    if (stale)
      rc = m64_fail(e, M64_EUNSUPPORTED,
                    "the bundle's native code was built from another module; run `m64c aot %s` to compile its own "
                    "wasm module here", cmd);
    else
      rc = m64_fail(e, M64_EUNSUPPORTED,
                    "the bundle has no native code this CPU runs (this host is %s; the bundle has %s); run `m64c aot "
                    "%s` to compile its wasm module for this host",
                    m64_host_target(), others[0] ? others : "none", cmd);
  }
  if (rc) {
    free(copy);
    return rc;
  }
  snprintf(s->target, sizeof s->target, "%s", pick->name);
  rc = m64_native_load(code.code, code.code_size, &s->native, e);
  free(copy); /* the loader wrote it to its own sealed file */
  if (rc) return rc;
  if ((rc = m64_native_abi_table(s->native, &s->abi, e))) return rc;
  /* version 2 code lacks only the token lookups appended in 3 (see m64_session_is_eog) */
  if ((s->abi->abi_version != M64_NATIVE_ABI_VERSION && s->abi->abi_version != 2) ||
      s->abi->module_abi_version < M64_MODULE_ABI_OLDEST || s->abi->module_abi_version > M64_MODULE_ABI_NEWEST)
    return m64_fail(e, M64_EUNSUPPORTED, "native code has ABI %u/%u, this m64run speaks %u/%u..%u (rebuild the bundle)",
                    s->abi->abi_version, s->abi->module_abi_version, M64_NATIVE_ABI_VERSION, M64_MODULE_ABI_OLDEST,
                    M64_MODULE_ABI_NEWEST);
  if (s->abi->instance_size == 0 || s->abi->instance_size > (64u << 20))
    return m64_fail(e, M64_EFORMAT, "native code declares an instance of %llu bytes",
                    (unsigned long long)s->abi->instance_size);
  return 0;
}

/* Bytes the module needs besides the layer cache: its static data, run state, IO. */
static int setup_state(m64_session *s, m64_err *e) {
  uint32_t v;
  int rc;
  if ((rc = invoke0(s, OP_ABI, &v, e))) return rc;
  if (v < M64_MODULE_ABI_OLDEST || v > M64_MODULE_ABI_NEWEST)
    return m64_fail(e, M64_EUNSUPPORTED, "module ABI version %u (this m64run runs %u..%u)", v, M64_MODULE_ABI_OLDEST,
                    M64_MODULE_ABI_NEWEST);
  if ((rc = invoke0(s, OP_N_VOCAB, &s->n_vocab, e))) return rc;
  if ((rc = invoke0(s, OP_N_LAYERS, &s->n_layers, e))) return rc;
  if (s->n_layers != m64_bundle_n_layers(s->bundle))
    return m64_fail(e, M64_EFORMAT, "module expects %u layers, the image has %u", s->n_layers,
                    m64_bundle_n_layers(s->bundle));
  uint32_t ctx_train;
  if ((rc = invoke0(s, OP_N_CTX_TRAIN, &ctx_train, e))) return rc;
  s->n_ctx_train = ctx_train;
  if ((rc = invoke0(s, OP_MAX_BATCH, &s->max_batch, e))) return rc;
  if (s->max_batch == 0 || s->max_batch > 4096) return m64_fail(e, M64_EFORMAT, "module declares a batch of %u", s->max_batch);
  s->n_ctx = s->opt.n_ctx ? s->opt.n_ctx : (ctx_train < 4096 ? ctx_train : 4096);
  if (s->n_ctx == 0) s->n_ctx = 2048;

  const uint64_t layers_total = m64_pager_full_cache(s->bundle);
  const uint64_t largest = m64_pager_min_cache(s->bundle); /* globals + the largest block */
  /* The user's workspace caps everything from here on; by default the cap is 4 GiB until
   * the fixed part is known, then what the whole model needs. */
  const uint64_t max_ws = 65536ull * WASM_PAGE;
  const uint64_t cap = s->opt.workspace_bytes && s->opt.workspace_bytes < max_ws ? s->opt.workspace_bytes : max_ws;
  m64_wasm_memory_set_cap(s->mem, cap / WASM_PAGE);
  uint32_t state_bytes;
  if ((rc = invoke1(s, OP_STATE_BYTES, s->n_ctx, &state_bytes, e))) return rc;

  int32_t init;
  if ((rc = invoke1(s, OP_INIT, s->n_ctx, (uint32_t *)&init, e))) return rc;
  char cap_h[32], need_h[32];
  if (init == -1)
    return m64_fail(e, M64_ELIMIT, "workspace of %s is too small for the run state of a context of %u (%s; try a smaller -c)",
                    m64_format_size(cap, cap_h, sizeof cap_h), s->n_ctx,
                    m64_format_size(state_bytes, need_h, sizeof need_h));
  if (init == -2)
    return m64_fail(e, M64_ELIMIT, "a context of %u does not fit a 4 GiB workspace (its run state would be %.1f MiB); use a smaller -c",
                    s->n_ctx, state_bytes / 1048576.0);
  if (init != 0) return m64_fail(e, M64_ELIMIT, "the module could not allocate its state (%d)", init);
  int32_t threads_rc; /* the module keeps scratch per share */
  s->n_shares = s->n_threads > 1 ? s->n_threads * SHARES_PER_THREAD : 1;
  if (s->n_shares > 64) s->n_shares = 64; /* the module's MAX_THREADS */
  if ((rc = invoke1(s, OP_THREADS, s->n_shares, (uint32_t *)&threads_rc, e))) return rc;
  if (threads_rc != 0) return m64_fail(e, M64_ELIMIT, "workspace too small for %u threads (%d)", s->n_threads, threads_rc);
  if ((rc = start_pool(s, e))) return rc;
  if ((rc = invoke1(s, OP_ALLOC, IO_BYTES, &s->io, e))) return rc;
  if (!s->io) return m64_fail(e, M64_ELIMIT, "workspace too small for I/O buffers");

  /* The layer cache takes the rest of the workspace, up to the whole image. */
  const uint64_t used = s->mem->size + HEADROOM + WASM_PAGE;
  uint64_t want = s->opt.workspace_bytes ? cap : used + layers_total;
  if (want > max_ws) want = max_ws;
  const uint64_t room = want > used ? want - used : 0;
  s->cache_size = (room < layers_total ? room : layers_total) & ~(WASM_PAGE - 1);
  if (s->cache_size < largest) {
    char used_h[32];
    return m64_fail(e, M64_ELIMIT,
                    "workspace of %s is too small: the run state (context %u, %u thread%s) takes %s "
                    "and the globals plus the largest block need %s (try --workspace %lluM or a smaller -c)",
                    m64_format_size(want, cap_h, sizeof cap_h), s->n_ctx, s->n_threads, s->n_threads == 1 ? "" : "s",
                    m64_format_size(used, used_h, sizeof used_h), m64_format_size(largest, need_h, sizeof need_h),
                    (unsigned long long)((used + largest) / 1048576 + 1));
  }
  m64_wasm_memory_set_cap(s->mem, want / WASM_PAGE);
  uint32_t base;
  if ((rc = invoke1(s, OP_ALLOC, (uint32_t)(s->cache_size + WASM_PAGE), &base, e))) return rc;
  if (!base) return m64_fail(e, M64_ELIMIT, "could not reserve a layer cache of %llu bytes",
                             (unsigned long long)s->cache_size);
  const uint32_t cache_off = (uint32_t)(((uint64_t)base + WASM_PAGE - 1) & ~(WASM_PAGE - 1));
  s->st.cache_bytes = s->cache_size;
  m64_pager_options po = {.mode = s->opt.page_mode == 1 ? M64_PAGE_MAP : M64_PAGE_COPY,
                          .verify = s->opt.verify_layers, .verbose = s->opt.verbose,
                          .prefetch = !s->opt.no_prefetch};
  return m64_pager_open(&s->pager, s->bundle, s->path, s->mem->data, cache_off, s->cache_size, &po, e);
}

static int load_tokenizer(m64_session *s, m64_err *e) {
  const m64_section *t = m64_bundle_find_section(s->bundle, M64_SEC_TOKENIZER, NULL);
  if (!t) return m64_fail(e, M64_EFORMAT, "bundle has no tokenizer section");
  if (t->size > 0x7fffffffu) return m64_fail(e, M64_ELIMIT, "tokenizer section too large");
  uint32_t addr;
  int rc = invoke1(s, OP_ALLOC, (uint32_t)t->size, &addr, e);
  if (rc) return rc;
  uint8_t *dst = addr ? ws(s, addr, t->size) : NULL;
  if (!dst) return m64_fail(e, M64_ELIMIT, "workspace too small for the tokenizer (%llu bytes)",
                            (unsigned long long)t->size);
  memcpy(dst, t->data, t->size);
  call c = {.op = OP_TOK_LOAD, .a = {addr, (uint32_t)t->size}};
  if ((rc = invoke(s, &c, e))) return rc;
  if ((int32_t)c.ret != 0) return m64_fail(e, M64_EFORMAT, "the tokenizer section is invalid (%d)", (int32_t)c.ret);
  uint32_t v;
  if ((rc = invoke0(s, OP_BOS, &v, e))) return rc;
  s->bos = (int32_t)v;
  if ((rc = invoke0(s, OP_EOS, &v, e))) return rc;
  s->eos = (int32_t)v;
  return 0;
}

int m64_session_open(const char *path, const m64_session_options *o, m64_session **out,
                     m64_err *e) {
  *out = NULL;
  m64_session *s = calloc(1, sizeof *s);
  if (!s) return m64_fail(e, M64_ENOMEM, "out of memory");
  if (o) s->opt = *o;
  s->host.s = s;
  pthread_mutex_init(&s->pool_mu, NULL);
  pthread_cond_init(&s->pool_go, NULL);
  pthread_cond_init(&s->pool_done, NULL);
  s->path = strdup(path);
  if (!s->path) {
    free(s);
    return m64_fail(e, M64_ENOMEM, "out of memory");
  }
  /* The verify-stamp policy: the file as it is now; a stamp of an earlier run, m64c build
   * or m64c verify spares the layer hashes */
  if (s->opt.verify_layers && s->opt.verify_stamps && stat(path, &s->file_st) == 0) {
    if (m64_stamp_matches(&s->file_st)) {
      s->opt.verify_layers = 0;
      s->stamp_state = 1;
      if (s->opt.verbose)
        fprintf(stderr, "m64run: every layer of this unchanged bundle was hashed before (by a run, m64c build or "
                        "m64c verify): not hashed again (--reverify to hash them)\n");
    } else s->stamp_state = -1;
  }
  int rc = m64_bundle_open(path, &s->bundle, e);
  /* A signature that does not verify means the bundle changed after its publisher signed
   * it: nothing of it runs, whatever the options (SECURITY.md). */
  if (!rc && m64_signature_check(s->bundle, s->opt.trust_dir, &s->sig) == M64_SIG_INVALID)
    rc = m64_fail(e, M64_EUNTRUSTED,
                  "the bundle's signature is invalid: %s. Not running it: get the bundle again from its "
                  "publisher (SECURITY.md)", s->sig.why);
  if (!rc) rc = load_native(s, e);
  if (!rc) {
    /* the workspace: the memory every instance imports, at its declared minimum for now;
     * its cap is its own (m64_wasm_memory_set_cap below), never another session's */
    uint64_t min_pages, max_pages;
    s->abi->memory_limits(&min_pages, &max_pages);
    if (min_pages > 65536 || max_pages > 65536 || min_pages > max_pages)
      rc = m64_fail(e, M64_EFORMAT, "module declares a memory of %llu..%llu pages",
                    (unsigned long long)min_pages, (unsigned long long)max_pages);
    call c = {.op = OP_ALLOCATE_MEMORY, .a = {(uint32_t)min_pages, (uint32_t)max_pages}};
    if (!rc) rc = invoke(s, &c, e);
  }
  if (!rc) {
    s->mem = &s->memory;
    /* one instance per thread, all before any export runs: instantiation re-applies the
     * module's data segments to the shared memory */
    s->n_threads = s->opt.n_threads ? s->opt.n_threads : 1;
    if (s->n_threads > 64) s->n_threads = 64;
    s->insts = calloc(s->n_threads, sizeof *s->insts);
    if (!s->insts) rc = m64_fail(e, M64_ENOMEM, "out of memory");
    for (uint32_t k = 0; k < s->n_threads && !rc; k++) {
      if (!(s->insts[k] = calloc(1, s->abi->instance_size))) {
        rc = m64_fail(e, M64_ENOMEM, "out of memory");
        break;
      }
      call c = {.op = OP_INSTANTIATE, .inst = s->insts[k]};
      rc = invoke(s, &c, e);
    }
    s->inst = s->insts ? s->insts[0] : NULL;
  }
  if (!rc) {
    rc = load_tokenizer(s, e); /* first: its tables are part of the module's fixed memory */
  }
  if (!rc) rc = setup_state(s, e);
  if (rc) {
    m64_session_close(s);
    return rc;
  }
  *out = s;
  return 0;
}

void m64_session_close(m64_session *s) {
  if (!s) return;
  stop_pool(s);
  m64_pager_close(s->pager); /* before the memory goes: its thread writes into the workspace */
  for (uint32_t k = 0; s->insts && k < s->n_threads; k++) {
    if (s->insts[k]) s->abi->free(s->insts[k]); /* frees tables; the memory is the host's */
    free(s->insts[k]);
  }
  free(s->insts);
  if (s->memory_ready) wasm_rt_free_memory(&s->memory);
  free(s->threads);
  free(s->pool_calls);
  free(s->path);
  pthread_mutex_destroy(&s->pool_mu);
  pthread_cond_destroy(&s->pool_go);
  pthread_cond_destroy(&s->pool_done);
  m64_native_unload(s->native);
  m64_bundle_close(s->bundle);
  free(s);
}

const char *m64_session_native_source(const m64_session *s) { return s->native_source; }
uint32_t m64_session_n_vocab(const m64_session *s) { return s->n_vocab; }
uint32_t m64_session_n_ctx(const m64_session *s) { return s->n_ctx; }
uint32_t m64_session_n_ctx_train(const m64_session *s) { return s->n_ctx_train; }
uint32_t m64_session_n_threads(const m64_session *s) { return s->n_threads; }
int32_t m64_session_bos(const m64_session *s) { return s->bos; }
int32_t m64_session_eos(const m64_session *s) { return s->eos; }
const char *m64_session_native_target(const m64_session *s) { return s->target; }

int m64_session_meta(const m64_session *s, const char *key, char *out, size_t out_size) {
  return m64_bundle_meta(s->bundle, key, out, out_size);
}

/* ------------------------------------------------------------ running */
int m64_session_tokenize(m64_session *s, const char *text, size_t len, int flags,
                         int32_t **ids, uint32_t *n_ids, m64_err *e) {
  *ids = NULL;
  *n_ids = 0;
  /* text and ids share one buffer: as many ids as the worst case (m64_module.h) */
  const uint64_t max_ids = M64_TOK_MAX_IDS(len);
  uint64_t need = len + 4 + 4 * max_ids;
  uint32_t buf = s->io;
  if (need > IO_BYTES) {
    if (need > 0x40000000ull) return m64_fail(e, M64_ELIMIT, "prompt of %zu bytes is too long", len);
    int rc = invoke1(s, OP_ALLOC, (uint32_t)need, &buf, e);
    if (rc) return rc;
    if (!buf) return m64_fail(e, M64_ELIMIT, "workspace too small for a prompt of %zu bytes", len);
  }
  const uint32_t out = (uint32_t)((buf + len + 3) & ~3u), max = (uint32_t)max_ids;
  memcpy(ws(s, buf, len), text, len);
  call c = {.op = OP_TOK_ENCODE, .a = {buf, (uint32_t)len, (uint32_t)flags & (M64_TOKENIZE_ADD_BOS | M64_TOKENIZE_SPECIAL), out, max}};
  int rc = invoke(s, &c, e);
  if (rc) return rc;
  int32_t n = (int32_t)c.ret;
  if (n < 0 || (uint32_t)n > max) return m64_fail(e, M64_EFORMAT, "tokenizer failed (%d)", n);
  int32_t *r = malloc((n ? n : 1) * sizeof *r);
  if (!r) return m64_fail(e, M64_ENOMEM, "out of memory");
  memcpy(r, ws(s, out, (uint64_t)n * 4), (size_t)n * 4);
  *ids = r;
  *n_ids = (uint32_t)n;
  return 0;
}

int m64_session_eval(m64_session *s, int32_t token, uint32_t pos, const float **logits, m64_err *e) {
  return m64_session_eval_batch(s, &token, 1, pos, logits, e);
}

int m64_session_sample(m64_session *s, float temp, int32_t top_k, float top_p, int32_t *id, m64_err *e) {
  if (!s->logits) return m64_fail(e, M64_EFORMAT, "sample before any eval");
  call c = {.op = OP_SAMPLE, .a = {s->logits, (uint32_t)top_k}, .f = {temp, top_p}};
  int rc = invoke(s, &c, e);
  if (rc) return rc;
  if ((int32_t)c.ret < 0 || c.ret >= s->n_vocab) return m64_fail(e, M64_EFORMAT, "sampler returned %d", (int32_t)c.ret);
  *id = (int32_t)c.ret;
  return 0;
}

/* verify_stamps: once every layer has been hashed (a pass placed them all), the file as
 * it was at open is recorded, so that the next session need not hash it again. Best
 * effort, like the cache directory it writes to. */
static void record_if_all_hashed(m64_session *s) {
  m64_session_stats st;
  m64_session_stats_get(s, &st);
  if (!st.layers || st.layers_verified != st.layers) return;
  char where[3200];
  s->stamp_state = 2;
  if (m64_stamp_write(&s->file_st, where, sizeof where) == 0 && s->opt.verbose)
    fprintf(stderr, "m64run: every layer hashed: recorded in %s\n", where);
}

int m64_session_stamped(const m64_session *s) { return s->stamp_state > 0 ? s->stamp_state : 0; }

int m64_session_eval_batch(m64_session *s, const int32_t *tokens, uint32_t n, uint32_t pos0,
                           const float **logits, m64_err *e) {
  for (uint32_t done = 0; done < n;) {
    const uint32_t k = n - done < s->max_batch ? n - done : s->max_batch;
    for (uint32_t i = 0; i < k; i++)
      if (tokens[done + i] < 0 || (uint32_t)tokens[done + i] >= s->n_vocab)
        return m64_fail(e, M64_EFORMAT, "token %d outside the vocabulary of %u", tokens[done + i], s->n_vocab);
    if ((uint64_t)pos0 + done + k > s->n_ctx)
      return m64_fail(e, M64_ELIMIT, "positions up to %llu beyond the context of %u",
                      (unsigned long long)pos0 + done + k, s->n_ctx);
    memcpy(ws(s, s->io, (uint64_t)k * 4), tokens + done, (size_t)k * 4);
    call c = {.op = OP_FORWARD_BATCH, .a = {s->io, k, pos0 + done}};
    int rc = invoke(s, &c, e);
    if (rc) return rc;
    const uint8_t *p = ws(s, c.ret, (uint64_t)s->n_vocab * 4);
    if (!p) return m64_fail(e, M64_EFORMAT, "module returned logits outside its memory");
    s->logits = c.ret;
    if (logits) *logits = (const float *)p;
    done += k;
  }
  if (s->stamp_state == -1) record_if_all_hashed(s);
  return 0;
}

void m64_session_seed(m64_session *s, uint64_t seed) {
  call c = {.op = OP_SEED, .a = {(uint32_t)seed, (uint32_t)(seed >> 32)}};
  m64_err e;
  invoke(s, &c, &e);
}

int m64_session_piece(m64_session *s, int32_t prev, int32_t id, char *buf, size_t cap, size_t *n,
                      m64_err *e) {
  const uint32_t max = 1024; /* the module's longest piece (TOK_MAX_TOKEN_LEN) */
  call c = {.op = OP_TOK_PIECE, .a = {(uint32_t)prev, (uint32_t)id, s->io, max}};
  int rc = invoke(s, &c, e);
  if (rc) return rc;
  int32_t len = (int32_t)c.ret;
  if (len < 0) return m64_fail(e, M64_EFORMAT, "token %d has no text", id);
  if ((uint32_t)len > max) len = (int32_t)max;
  size_t k = (size_t)len < cap ? (size_t)len : cap;
  memcpy(buf, ws(s, s->io, max), k);
  *n = k;
  return 0;
}

void m64_session_stats_get(const m64_session *s, m64_session_stats *st) {
  *st = s->st;
  st->workspace_bytes = s->mem ? s->mem->size : 0;
  if (s->pager) {
    m64_pager_stats p;
    m64_pager_stats_get(s->pager, &p);
    st->layer_acquires = p.acquires;
    st->layer_hits = p.hits;
    st->layer_page_ins = p.page_ins;
    st->bytes_paged = p.bytes_paged;
    st->evictions = p.evictions;
    st->page_seconds = p.page_seconds;
    st->stall_seconds = p.stall_seconds;
    st->layers_resident = p.resident;
    st->cache_slots = p.slots;
    st->layers = p.layers;
    st->layers_verified = p.verified;
  }
}

int m64_session_is_eog(m64_session *s, int32_t id, int *eog, m64_err *e) {
  *eog = id >= 0 && id == s->eos;
  if (id < 0 || s->abi->abi_version < 3) return 0; /* older native code: EOS only */
  call c = {.op = OP_TOK_IS_EOG, .a = {(uint32_t)id}};
  int rc = invoke(s, &c, e);
  if (!rc) *eog = c.ret == 1;
  return rc;
}

int m64_session_find_token(m64_session *s, const char *text, size_t len, int32_t *id,
                           m64_err *e) {
  *id = -1;
  if (s->abi->abi_version < 3)
    return m64_fail(e, M64_EUNSUPPORTED, "the bundle's native code predates token lookup; run `m64c aot` on it");
  if (len > IO_BYTES) return 0; /* longer than any token */
  if (len) memcpy(ws(s, s->io, len), text, len);
  call c = {.op = OP_TOK_FIND, .a = {s->io, (uint32_t)len}};
  int rc = invoke(s, &c, e);
  if (!rc) *id = (int32_t)c.ret;
  return rc;
}

size_t m64_utf8_complete(const char *buf, size_t n) {
  /* look back over at most 3 continuation bytes for the lead byte of the last character */
  size_t i = n, back = 0;
  while (i > 0 && back < 3 && ((unsigned char)buf[i - 1] & 0xC0) == 0x80) i--, back++;
  if (i == 0) return n; /* only continuation bytes: nothing to wait for */
  unsigned char lead = (unsigned char)buf[i - 1];
  size_t need = lead >= 0xF0 && lead < 0xF8 ? 4 : lead >= 0xE0 && lead < 0xF0 ? 3
              : lead >= 0xC0 && lead < 0xE0 ? 2 : 1;
  return need > back + 1 ? i - 1 : n; /* an unfinished character waits for the next piece */
}
