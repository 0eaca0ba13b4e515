/*
 * session_internal.h — what the session's files share (not an API):
 *   session.c         opening a bundle, the workspace and the m64_session_* calls
 *   dispatch.c        the one place that calls the module's exports (traps -> errors)
 *   imports.c         the m64.* functions the module imports (layers, threads, log)
 *   thread_pool.c     the threads behind m64.parallel
 *   native/select.c   which of the bundle's native code to run, and whether to
 */
#ifndef M64_SESSION_INTERNAL_H
#define M64_SESSION_INTERNAL_H

#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "m64_runtime.h"
#include "m64_sign.h"
#include "m64_wasm.h"
#include "native.h"
#include "native_abi.h"
#include "pager.h"
#include "thread_pool.h"

#define WASM_PAGE 65536ull
#define IO_BYTES (64u * 1024) /* text in, ids out, pieces */
#define M64_SAMPLE_NO_EOG_FLAG 1u /* m64_module.h's M64_SAMPLE_NO_EOG */
#define WORKER_STACK (256u * 1024) /* shadow stack of each extra thread's instance */
#define SHARES_PER_THREAD 4u       /* a parallel job's shares per thread (thread_pool.h) */

struct w2c_m64 { struct m64_session *s; }; /* what the imports receive */

struct m64_session {
  m64_bundle *bundle;
  m64_native *native;
  const m64_native_abi *abi;
  void *inst;               /* == insts[0], the one the session calls */
  void **insts;             /* one instance per thread, all over `memory` */
  uint32_t n_threads;
  uint32_t n_shares;        /* shares per parallel job */
  m64_pool *pool;           /* runs m64_worker shares on threads 1..n-1 and the caller */
  struct w2c_m64 host;
  wasm_rt_memory_t memory;  /* the workspace: the modules' imported memory */
  int memory_ready;
  wasm_rt_memory_t *mem;    /* &memory once allocated */
  char target[48];
  char native_source[160];  /* why the loaded code was accepted, for people */
  m64_sig_info sig;         /* the bundle's signature, checked at open */
  m64_session_options opt;

  uint32_t n_vocab, n_layers, n_ctx, n_ctx_train, max_batch;
  int32_t bos, eos;
  uint32_t io;          /* IO_BYTES of scratch inside the workspace */
  uint32_t tok_buf, tok_cap; /* a longer prompt's tokenizer buffer, kept for the next one: the
                                module's allocator never frees, so a fresh one per call would
                                use up the workspace over a server's many requests */
  uint32_t logits;      /* address of the last logits */

  char *path;
  struct stat file_st;  /* the bundle as opened (verify_stamps: what a stamp records) */
  int stamp_state;      /* 0: none; 1: spared by a stamp; 2: recorded; -1: watching (record once all hashed) */
  m64_pager *pager;
  uint64_t cache_size;
  m64_session_stats st;
};

/* ---- dispatch.c: every export the host calls, by name */
/* What a call does: the two host steps, then one op per export of module/exports.h,
 * named after it (OP_m64_alloc ...). */
#define M64_OP_(name, since, ret, wret, n, params) OP_##name,
enum op { OP_ALLOCATE_MEMORY, OP_INSTANTIATE, M64_EXPORTS(M64_OP_) };
#undef M64_OP_

typedef struct call {
  m64_session *s;
  enum op op;
  uint32_t a[11]; /* the export's arguments in order, as wasm sees them: floats as their bits */
  uint32_t ret;
  void *inst; /* NULL: the session's instance */
} call;

/* A float argument's bits, for call.a. */
static inline uint32_t m64_f32_arg(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

/* Runs c->op on c->inst (or the session's instance) inside trap recovery: the raw trap. */
wasm_rt_trap_t m64_session_call(m64_session *s, call *c);
/* The same, a trap turned into M64_ETRAP with the trap's name (or the host's reason). */
int m64_session_invoke(m64_session *s, call *c, m64_err *e);
int m64_session_invoke0(m64_session *s, enum op op, uint32_t *ret, m64_err *e);
int m64_session_invoke1(m64_session *s, enum op op, uint32_t a0, uint32_t *ret, m64_err *e);
/* Bounds-checked pointer into the workspace; NULL outside it. */
uint8_t *m64_session_ws(m64_session *s, uint32_t addr, uint64_t len);

/* ---- imports.c: threads for the module's parallel jobs */
int m64_session_start_threads(m64_session *s, m64_err *e);

/* ---- native/select.c */
/* Picks and loads the native code to run (the best target this CPU runs whose code the
 * user accepts: SECURITY.md) into s->native, s->abi, s->target and s->native_source. */
int m64_session_load_native(m64_session *s, m64_err *e);

#endif /* M64_SESSION_INTERNAL_H */
