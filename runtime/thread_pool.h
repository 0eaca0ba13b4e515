/*
 * thread_pool.h — the threads behind the module's m64.parallel import.
 *
 * A job is cut into shares (a few per thread) that threads claim in turn: on a shared,
 * noisy machine a thread that is descheduled for a while no longer holds up half the job.
 * What a share computes does not depend on the thread that runs it. The pool knows nothing
 * of wasm: the session gives it a function that runs one share.
 */
#ifndef M64_THREAD_POOL_H
#define M64_THREAD_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "m64_formats.h" /* m64_err */

#ifdef __cplusplus
extern "C" {
#endif

typedef struct m64_pool m64_pool;

/* Runs share `share` of `n_shares` on thread `thread` (0 is the thread that called
 * m64_pool_run). Returns 0, or non-zero after writing why into err: it runs on that
 * thread, so thread-local error text is still at hand. */
typedef int (*m64_pool_share_fn)(void *ctx, uint32_t thread, uint32_t share, uint32_t n_shares, char *err,
                                 size_t err_cap);

/* Starts n_threads - 1 threads (the caller of m64_pool_run is the n-th). */
int m64_pool_start(m64_pool **out, uint32_t n_threads, uint32_t n_shares, m64_pool_share_fn fn, void *ctx,
                   m64_err *e);
/* One job: every share once. After a failure no share is claimed any more (the job is
 * lost anyway); every thread is waited for before it returns. Returns 0, or non-zero with
 * the first failure's text in err. */
int m64_pool_run(m64_pool *p, char *err, size_t err_cap);
/* Tells the pool that `n` threads outside it keep a core busy while jobs run (the pager's
 * streaming thread): with more threads than cores, waiting threads poll briefly, then sleep,
 * so that they do not take the core the others need. Call before the first job. */
void m64_pool_add_company(m64_pool *p, uint32_t n);
/* Stops and joins the threads; NULL is fine. */
void m64_pool_stop(m64_pool *p);

#ifdef __cplusplus
}
#endif

#endif /* M64_THREAD_POOL_H */
