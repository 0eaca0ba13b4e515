/*
 * m64_wasm.h — how m64run calls into the AOT-compiled module and gets traps back.
 *
 * Every entry into module code (instantiate, each export call, free is optional) must run
 * inside m64_wasm_call: it sets a thread-local recovery point, so a trap anywhere below it
 * (a generated TRAP(...), a guard-page fault, stack exhaustion, or a host import calling
 * m64_wasm_host_trap) unwinds back to it with siglongjmp and is returned as a code. The
 * process keeps running; the module instance stays usable afterwards (its memory is
 * whatever the trapped code left behind, which is what the wasm spec implies too).
 *
 * Threads: calls may run on any thread; each thread gets its own recovery point, call
 * depth and alternate signal stack (installed on the thread's first m64_wasm_call). One
 * instance must not be called from two threads at once (wasm instances are single-threaded).
 *
 * Faults: a SIGSEGV/SIGBUS inside a live guarded memory reservation while a call is active
 * becomes WASM_RT_TRAP_OOB even if host code (an import) made the access; any other fault
 * keeps its normal meaning (the process dies with that signal).
 *
 * Not async-cancel safe: siglongjmp skips C frames, so code that runs inside a call
 * (host imports) must not hold locks or own heap memory across anything that may trap.
 */
#ifndef M64_WASM_H
#define M64_WASM_H

#include <stdint.h>

#include "wasm-rt.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*m64_wasm_thunk)(void *ctx);

/* Runs fn(ctx) with trap recovery. Returns WASM_RT_TRAP_NONE when fn returned normally,
 * else the trap code (fn's remaining work is abandoned). Nestable: a host import may call
 * back into the module through another m64_wasm_call; a trap unwinds only to the
 * innermost one. Calls wasm_rt_init() if nobody has yet. The call depth is restored on
 * return, so a trap never leaks depth into later calls. */
wasm_rt_trap_t m64_wasm_call(m64_wasm_thunk fn, void *ctx);

/* True while the current thread is inside m64_wasm_call. */
int m64_wasm_in_call(void);

/* English description, e.g. "out of bounds memory access", "unreachable executed",
 * "call stack exhausted", "integer divide by zero"; never NULL. */
const char *m64_wasm_trap_name(wasm_rt_trap_t t);

/* For host imports that cannot continue (e.g. a layer cannot be paged in): records msg
 * (copied, truncated to 511 bytes) for m64_wasm_last_host_message and aborts the current
 * wasm call with WASM_RT_TRAP_HOST. Outside any call: prints msg and aborts the process. */
WASM_RT_NO_RETURN void m64_wasm_host_trap(const char *msg);
/* printf-style variant of m64_wasm_host_trap. */
WASM_RT_NO_RETURN void m64_wasm_host_trapf(const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
/* The message of the last WASM_RT_TRAP_HOST on this thread ("" if none yet). Valid until
 * the next host trap on this thread. */
const char *m64_wasm_last_host_message(void);

/* Workspace caps, per memory (no process-wide state: two sessions in one process keep
 * their own bounds). A memory.grow beyond a memory's cap fails (returns -1) even if the
 * module's declared maximum allows more. UINT64_MAX: no cap (the default). */
void m64_wasm_memory_set_cap(wasm_rt_memory_t *mem, uint64_t pages);
uint64_t m64_wasm_memory_cap(const wasm_rt_memory_t *mem);
/* The cap of memories allocated on the calling thread from now on (a module that defines
 * its own memory allocates it while instantiating): an initial size beyond it traps, and
 * the memory keeps it as its own cap. Thread-local; default UINT64_MAX (none). */
void m64_wasm_set_alloc_cap(uint64_t pages);
uint64_t m64_wasm_alloc_cap(void);

/* Maximum call depth before WASM_RT_TRAP_EXHAUSTION (== WASM_RT_MAX_CALL_STACK_DEPTH). */
uint32_t m64_wasm_max_call_depth(void);

#ifdef __cplusplus
}
#endif

#endif /* M64_WASM_H */
