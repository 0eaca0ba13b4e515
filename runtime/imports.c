/*
 * imports.c — the functions the module imports from the host (module `m64`,
 * module/m64_module.h): layers from the pager, the workspace memory, parallel jobs on the
 * session's threads, and log lines. The native code binds to these symbols at load.
 */
#include <stdio.h>

#include "session_internal.h"

uint32_t w2c_m64_layer_acquire(struct w2c_m64 *h, uint32_t layer) {
  return m64_pager_acquire(h->s->pager, layer);
}
void w2c_m64_layer_release(struct w2c_m64 *h, uint32_t layer) { m64_pager_release(h->s->pager, layer); }
void w2c_m64_layer_prefetch(struct w2c_m64 *h, uint32_t layer) { m64_pager_prefetch(h->s->pager, layer); }

wasm_rt_memory_t *w2c_m64_memory(struct w2c_m64 *h) { return &h->s->memory; }

void w2c_m64_log(struct w2c_m64 *h, uint32_t msg, uint32_t len) {
  const uint8_t *p = m64_session_ws(h->s, msg, len);
  if (p) fprintf(stderr, "m64 module: %.*s\n", (int)len, (const char *)p);
}

/* ---- m64.parallel: m64_worker(share, n_shares) for every share, on every thread ---- */

/* One share on `thread`'s own instance (thread_pool.h's m64_pool_share_fn). A host error
 * (a failed page-in, say) keeps its text; a wasm trap is named as one. */
static int run_share(void *ctx, uint32_t thread, uint32_t share, uint32_t n_shares, char *err, size_t cap) {
  m64_session *s = ctx;
  call c = {.op = OP_m64_worker, .a = {share, n_shares}, .inst = s->insts[thread]};
  const wasm_rt_trap_t t = m64_session_call(s, &c);
  if (t == WASM_RT_TRAP_NONE) return 0;
  if (t == WASM_RT_TRAP_HOST)
    snprintf(err, cap, "%s", m64_wasm_last_host_message());
  else
    snprintf(err, cap, "wasm trap in the model module: %s (thread %u, share %u)", m64_wasm_trap_name(t), thread,
             share);
  return 1;
}

void w2c_m64_parallel(struct w2c_m64 *h) {
  char err[512];
  if (m64_pool_run(h->s->pool, err, sizeof err)) m64_wasm_host_trap(err);
}

/* Gives instances 1..n-1 their own stacks inside the workspace, then starts the pool. */
int m64_session_start_threads(m64_session *s, m64_err *e) {
  for (uint32_t k = 1; k < s->n_threads; k++) {
    uint32_t stack;
    int rc = m64_session_invoke1(s, OP_m64_alloc, WORKER_STACK, &stack, e);
    if (rc) return rc;
    if (!stack) return m64_fail(e, M64_ELIMIT, "workspace too small for %u threads' stacks", s->n_threads);
    *s->abi->stack_pointer(s->insts[k]) = (stack + WORKER_STACK) & ~15u;
  }
  return m64_pool_start(&s->pool, s->n_threads, s->n_shares, run_share, s, e);
}
