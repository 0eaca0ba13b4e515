/*
 * thread_pool.c — see thread_pool.h. Waiting threads poll for a while before they sleep
 * (spin_until): a decode step is hundreds of small jobs.
 */
#include "thread_pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "os.h"

/* How long a waiting thread polls before it sleeps (see spin_until). */
#define SPIN_NS 2000000ull       /* a thread per core */
#define SPIN_NS_SHARED 20000ull  /* more threads than cores: the polls would take a core's time */

typedef struct worker {
  struct m64_pool *p;
  uint32_t thread;
  uint64_t seen_gen; /* the last job this thread took */
} worker;

struct m64_pool {
  m64_pool_share_fn fn;
  void *ctx;
  uint32_t n_threads, n_shares, n_started;
  m64_os_thread *threads;
  worker *workers;
  pthread_mutex_t mu;
  pthread_cond_t go, done;
  _Atomic uint64_t gen;
  _Atomic uint32_t pending;    /* pool threads still in the current job */
  _Atomic uint32_t next_share; /* the next share a thread may claim */
  _Atomic int stop, failed;
  uint64_t spin_ns;
  char error[512];
};

/* Runs shares until none is left; a failure ends every thread's claiming. */
static int run_shares(m64_pool *p, uint32_t thread, char *err, size_t cap) {
  for (;;) {
    const uint32_t share = atomic_fetch_add(&p->next_share, 1);
    if (share >= p->n_shares) return 0;
    if (p->fn(p->ctx, thread, share, p->n_shares, err, cap)) {
      atomic_store(&p->next_share, p->n_shares);
      return 1;
    }
  }
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause(); /* leaves the core's ports to its other hyperthread meanwhile */
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* Polls until done(p, w) holds or p->spin_ns have passed; returns done(p, w). A decode
 * step is a few hundred products with microseconds of one-thread work between them; a
 * thread that sleeps there is woken through a futex and, on a VM, an interrupt to a halted
 * vCPU, which can cost more than the product. Measured (7B Q4_K_M, 2 threads, 11 decode
 * passes, five alternating pairs): 20000 bare polls (~20 us) before sleeping 4.68-6.27 s
 * (median 5.67), polling up to 2 ms 4.02-5.55 s (median 4.55); context switches of a
 * 200-token run of a small model 5866 -> 389. */
static int spin_until(m64_pool *p, const worker *w, int (*done)(m64_pool *, const worker *)) {
  uint64_t start = 0;
  for (uint32_t i = 0;; i++) {
    if (done(p, w)) return 1;
    cpu_relax();
    if ((i & 63) == 63) { /* the clock now and then: one poll costs far less */
      const uint64_t t = m64_os_now_ns();
      if (!start) start = t;
      else if (t - start > p->spin_ns) return done(p, w);
    }
  }
}

static int new_job_or_stop(m64_pool *p, const worker *w) {
  return atomic_load(&p->gen) != w->seen_gen || atomic_load(&p->stop);
}
static int job_done(m64_pool *p, const worker *w) {
  (void)w;
  return atomic_load(&p->pending) == 0;
}

static void *pool_thread(void *arg) {
  worker *w = arg;
  m64_pool *p = w->p;
  for (;;) {
    if (!spin_until(p, w, new_job_or_stop)) {
      pthread_mutex_lock(&p->mu);
      while (!new_job_or_stop(p, w)) pthread_cond_wait(&p->go, &p->mu);
      pthread_mutex_unlock(&p->mu);
    }
    if (atomic_load(&p->stop)) break;
    w->seen_gen = atomic_load(&p->gen);
    char err[sizeof p->error];
    if (run_shares(p, w->thread, err, sizeof err) && !atomic_exchange(&p->failed, 1))
      snprintf(p->error, sizeof p->error, "%s", err);
    if (atomic_fetch_sub(&p->pending, 1) == 1) {
      pthread_mutex_lock(&p->mu);
      pthread_cond_signal(&p->done);
      pthread_mutex_unlock(&p->mu);
    }
  }
  return NULL;
}

int m64_pool_run(m64_pool *p, char *err, size_t err_cap) {
  atomic_store(&p->failed, 0);
  atomic_store(&p->pending, p->n_started);
  atomic_store(&p->next_share, 0);
  pthread_mutex_lock(&p->mu);
  atomic_fetch_add(&p->gen, 1);
  pthread_cond_broadcast(&p->go);
  pthread_mutex_unlock(&p->mu);

  /* this thread's shares; the others are always waited for, whatever happens here */
  const int failed_here = run_shares(p, 0, err, err_cap);
  const worker self = {.p = p};
  if (!spin_until(p, &self, job_done)) {
    pthread_mutex_lock(&p->mu);
    while (!job_done(p, &self)) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
  }
  if (failed_here) return 1;
  if (atomic_load(&p->failed)) {
    snprintf(err, err_cap, "%s", p->error);
    return 1;
  }
  return 0;
}

static uint64_t spin_for(uint32_t threads) {
  const uint32_t cores = m64_os_cores();
  return cores && threads > cores ? SPIN_NS_SHARED : SPIN_NS;
}

void m64_pool_add_company(m64_pool *p, uint32_t n) {
  if (p) p->spin_ns = spin_for(p->n_threads + n);
}

int m64_pool_start(m64_pool **out, uint32_t n_threads, uint32_t n_shares, m64_pool_share_fn fn, void *ctx,
                   m64_err *e) {
  *out = NULL;
  m64_pool *p = calloc(1, sizeof *p);
  if (!p) return m64_fail(e, M64_ENOMEM, "out of memory");
  p->fn = fn, p->ctx = ctx, p->n_threads = n_threads ? n_threads : 1, p->n_shares = n_shares ? n_shares : 1;
  p->spin_ns = spin_for(p->n_threads);
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->go, NULL);
  pthread_cond_init(&p->done, NULL);
  p->threads = calloc(p->n_threads, sizeof *p->threads);
  p->workers = calloc(p->n_threads, sizeof *p->workers);
  if (!p->threads || !p->workers) {
    m64_pool_stop(p);
    return m64_fail(e, M64_ENOMEM, "out of memory");
  }
  for (uint32_t k = 1; k < p->n_threads; k++) {
    p->workers[k] = (worker){.p = p, .thread = k};
    if (m64_os_thread_start(&p->threads[p->n_started], pool_thread, &p->workers[k])) {
      m64_pool_stop(p);
      return m64_fail(e, M64_EIO, "cannot start thread %u", k);
    }
    p->n_started++;
  }
  *out = p;
  return 0;
}

void m64_pool_stop(m64_pool *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  atomic_store(&p->stop, 1);
  pthread_cond_broadcast(&p->go);
  pthread_mutex_unlock(&p->mu);
  for (uint32_t k = 0; k < p->n_started; k++) m64_os_thread_join(p->threads[k]);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->go);
  pthread_cond_destroy(&p->done);
  free(p->threads);
  free(p->workers);
  free(p);
}
