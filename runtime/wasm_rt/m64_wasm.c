/*
 * m64_wasm.c — implementation of wasm-rt.h and m64_wasm.h (see those headers for the
 * contract). Kept as ONE translation unit on purpose: the module .so needs every wasm_rt_*
 * symbol from the executable, and a static archive only links objects something in the
 * executable references; m64_wasm_call (which m64run always uses) pulls all of this in.
 *
 * Pieces:
 *   - trap recovery: a thread-local sigjmp_buf pointer set by m64_wasm_call;
 *   - fault handler: SIGSEGV/SIGBUS inside a registered guard reservation while a call is
 *     active -> siglongjmp with WASM_RT_TRAP_OOB; anything else is chained to the previous
 *     handler or re-delivered with the default action (a real crash stays a crash);
 *   - memories: guarded 8 GiB reservations for wasm32, grown maps otherwise;
 *   - the system calls behind these are os.h's;
 *   - tables: plain heap arrays.
 */
#include "m64_wasm.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "os.h"

/* ------------------------------------------------------------------ thread state */
/* The handler reads these, so they use the initial-exec model (plain %fs access, no
 * allocation on first touch): this file is always part of the executable. */
#define M64_TLS _Thread_local __attribute__((tls_model("initial-exec")))

_Thread_local uint32_t wasm_rt_call_stack_depth __attribute__((tls_model("initial-exec")));
static M64_TLS sigjmp_buf *t_jmp;        /* innermost active m64_wasm_call, or NULL */
static M64_TLS int t_trap_from_fault;    /* the trap jumped out of the fault handler */
static M64_TLS char t_host_msg[512];     /* last m64_wasm_host_trap message */
static M64_TLS int t_altstack_ready;     /* this thread has a sigaltstack */

/* ------------------------------------------------------------------ trap names */
static const char *const k_trap_names[WASM_RT_TRAP_COUNT_] = {
    [WASM_RT_TRAP_NONE] = "no trap",
    [WASM_RT_TRAP_OOB] = "out of bounds memory access",
    [WASM_RT_TRAP_INT_OVERFLOW] = "integer overflow",
    [WASM_RT_TRAP_DIV_BY_ZERO] = "integer divide by zero",
    [WASM_RT_TRAP_INVALID_CONVERSION] = "invalid conversion to integer",
    [WASM_RT_TRAP_UNREACHABLE] = "unreachable executed",
    [WASM_RT_TRAP_CALL_INDIRECT] = "indirect call to null or mismatched function",
    [WASM_RT_TRAP_UNCAUGHT_EXCEPTION] = "uncaught exception",
    [WASM_RT_TRAP_UNALIGNED] = "unaligned atomic access",
    [WASM_RT_TRAP_EXHAUSTION] = "call stack exhausted",
    [WASM_RT_TRAP_NULL_REF] = "null reference",
    [WASM_RT_TRAP_HOST] = "host import failed",
};

const char *m64_wasm_trap_name(wasm_rt_trap_t t) {
  if ((int)t < 0 || (int)t >= WASM_RT_TRAP_COUNT_) return "unknown trap";
  return k_trap_names[t];
}

const char *wasm_rt_strerror(wasm_rt_trap_t code) { return m64_wasm_trap_name(code); }

/* ------------------------------------------------------------------ guard reservations */
/* Lock-free for the signal handler: slots are published by storing hi then lo (release);
 * the handler loads lo (acquire) then hi. Writers serialise on g_res_lock. */
#define M64_MAX_RESERVATIONS 256
static struct {
  _Atomic uintptr_t lo, hi;
} g_res[M64_MAX_RESERVATIONS];
static pthread_mutex_t g_res_lock = PTHREAD_MUTEX_INITIALIZER;

static int res_add(void *base, size_t len) {
  int ok = 0;
  pthread_mutex_lock(&g_res_lock);
  for (int i = 0; i < M64_MAX_RESERVATIONS; i++) {
    if (atomic_load_explicit(&g_res[i].lo, memory_order_relaxed) == 0) {
      atomic_store_explicit(&g_res[i].hi, (uintptr_t)base + len, memory_order_relaxed);
      atomic_store_explicit(&g_res[i].lo, (uintptr_t)base, memory_order_release);
      ok = 1;
      break;
    }
  }
  pthread_mutex_unlock(&g_res_lock);
  return ok;
}

static void res_remove(void *base) {
  pthread_mutex_lock(&g_res_lock);
  for (int i = 0; i < M64_MAX_RESERVATIONS; i++) {
    if (atomic_load_explicit(&g_res[i].lo, memory_order_relaxed) == (uintptr_t)base) {
      atomic_store_explicit(&g_res[i].lo, 0, memory_order_release);
      atomic_store_explicit(&g_res[i].hi, 0, memory_order_relaxed);
      break;
    }
  }
  pthread_mutex_unlock(&g_res_lock);
}

static int res_contains(uintptr_t a) {
  for (int i = 0; i < M64_MAX_RESERVATIONS; i++) {
    uintptr_t lo = atomic_load_explicit(&g_res[i].lo, memory_order_acquire);
    if (lo == 0) continue;
    uintptr_t hi = atomic_load_explicit(&g_res[i].hi, memory_order_relaxed);
    if (a >= lo && a < hi) return 1;
  }
  return 0;
}

/* ------------------------------------------------------------------ fault handler */
static pthread_once_t g_init_once = PTHREAD_ONCE_INIT;
static atomic_int g_initialized;
static pthread_key_t g_altstack_key;

static void fault_handler(int sig, siginfo_t *si, void *uctx) {
  /* si_code > 0: raised by the kernel for a real access (not kill/raise). */
  if (t_jmp != NULL && si->si_code > 0 && res_contains((uintptr_t)si->si_addr)) {
    t_trap_from_fault = 1; /* the landing unblocks the signal (see m64_wasm_call) */
    siglongjmp(*t_jmp, (int)WASM_RT_TRAP_OOB);
  }

  m64_os_pass_fault(sig, si, uctx); /* not ours */
}

static void init_once(void) {
  if (m64_os_catch_faults(fault_handler) != 0) {
    fprintf(stderr, "m64: cannot install the wasm fault handler: %s\n", strerror(errno));
    abort();
  }
  if (pthread_key_create(&g_altstack_key, m64_os_altstack_free) != 0) {
    fprintf(stderr, "m64: pthread_key_create failed\n");
    abort();
  }
  atomic_store(&g_initialized, 1);
}

void wasm_rt_init(void) { pthread_once(&g_init_once, init_once); }

bool wasm_rt_is_initialized(void) { return atomic_load(&g_initialized) != 0; }

void wasm_rt_free(void) {}

/* The fault handler must not run on the (possibly exhausted) thread stack: give each
 * calling thread an alternate signal stack unless it already has one. */
static void ensure_thread_ready(void) {
  if (t_altstack_ready) return;
  wasm_rt_init();
  stack_t *mine = m64_os_altstack_ensure();
  if (mine) pthread_setspecific(g_altstack_key, mine); /* freed at thread exit */
  t_altstack_ready = 1;
}

/* ------------------------------------------------------------------ calls and traps */
wasm_rt_trap_t m64_wasm_call(m64_wasm_thunk fn, void *ctx) {
  ensure_thread_ready();
  sigjmp_buf jb;
  sigjmp_buf *const prev = t_jmp;
  /* Outermost call: start from zero whatever happened before (nested calls keep counting
   * on top of the outer wasm frames, which are really on the C stack). */
  if (prev == NULL) wasm_rt_call_stack_depth = 0;
  const uint32_t depth = wasm_rt_call_stack_depth;
  /* savemask=0: saving the mask is a syscall, and a decode step makes thousands of calls
   * (one per share of every product). The one thing a trap can leave changed is the
   * faulting signal, blocked while the fault handler ran: the landing unblocks it. */
  int code = sigsetjmp(jb, 0);
  if (code == 0) {
    t_jmp = &jb;
    fn(ctx);
    t_jmp = prev;
    wasm_rt_call_stack_depth = depth;
    return WASM_RT_TRAP_NONE;
  }
  t_jmp = prev;
  wasm_rt_call_stack_depth = depth; /* the trapped frames never ran their epilogues */
  if (t_trap_from_fault) {
    t_trap_from_fault = 0;
    m64_os_unblock_faults();
  }
  return (wasm_rt_trap_t)code;
}

int m64_wasm_in_call(void) { return t_jmp != NULL; }

void wasm_rt_trap(wasm_rt_trap_t code) {
  if ((int)code <= 0 || (int)code >= WASM_RT_TRAP_COUNT_) code = WASM_RT_TRAP_UNREACHABLE;
  sigjmp_buf *j = t_jmp;
  if (j == NULL) {
    fprintf(stderr, "m64: wasm trap outside m64_wasm_call: %s%s%s\n", m64_wasm_trap_name(code),
            code == WASM_RT_TRAP_HOST ? ": " : "", code == WASM_RT_TRAP_HOST ? t_host_msg : "");
    abort();
  }
  siglongjmp(*j, (int)code);
}

void m64_wasm_host_trap(const char *msg) {
  snprintf(t_host_msg, sizeof t_host_msg, "%s", msg ? msg : "");
  wasm_rt_trap(WASM_RT_TRAP_HOST);
}

void m64_wasm_host_trapf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t_host_msg, sizeof t_host_msg, fmt, ap);
  va_end(ap);
  wasm_rt_trap(WASM_RT_TRAP_HOST);
}

const char *m64_wasm_last_host_message(void) { return t_host_msg; }

uint32_t m64_wasm_max_call_depth(void) { return WASM_RT_MAX_CALL_STACK_DEPTH; }

/* ------------------------------------------------------------------ workspace caps */
/* Each memory carries its own cap (two sessions in one process bound their workspaces
 * apart); memories a module allocates itself take the allocating thread's cap. */
static _Thread_local uint64_t t_alloc_cap_pages; /* 0: none */

void m64_wasm_set_alloc_cap(uint64_t pages) { t_alloc_cap_pages = pages == UINT64_MAX ? 0 : pages; }
uint64_t m64_wasm_alloc_cap(void) { return t_alloc_cap_pages ? t_alloc_cap_pages : UINT64_MAX; }

void m64_wasm_memory_set_cap(wasm_rt_memory_t *mem, uint64_t pages) { mem->cap_pages = pages == UINT64_MAX ? 0 : pages; }
uint64_t m64_wasm_memory_cap(const wasm_rt_memory_t *mem) { return mem->cap_pages ? mem->cap_pages : UINT64_MAX; }

/* A cap counts 64 KiB pages; memories with another page size compare in bytes. */
static uint64_t cap_bytes(uint64_t pages) {
  return !pages || pages >= ((uint64_t)1 << 48) ? UINT64_MAX : pages * WASM_RT_PAGE_SIZE;
}

/* ------------------------------------------------------------------ memories */

static uint64_t round_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

void wasm_rt_allocate_memory(wasm_rt_memory_t *mem, uint64_t initial_pages,
                             uint64_t max_pages, bool is64, uint32_t page_size) {
  memset(mem, 0, sizeof *mem);
  if (page_size == 0) page_size = WASM_RT_PAGE_SIZE;
  /* The index type bounds the byte size: 2^32 (wasm32) or 2^64 (memory64). */
  uint64_t limit = is64 ? UINT64_MAX / page_size : ((uint64_t)1 << 32) / page_size;
  if (max_pages > limit) max_pages = limit;
  if (initial_pages > max_pages)
    m64_wasm_host_trapf("wasm memory: %llu initial pages exceed the maximum %llu",
                        (unsigned long long)initial_pages, (unsigned long long)max_pages);
  uint64_t bytes = initial_pages * page_size;
  const uint64_t cap = t_alloc_cap_pages;
  if (bytes > cap_bytes(cap))
    m64_wasm_host_trapf("wasm memory: %llu initial pages exceed the workspace cap of %llu",
                        (unsigned long long)initial_pages, (unsigned long long)cap);

  bool guarded = !is64 && page_size == WASM_RT_PAGE_SIZE;
  uint8_t *data;
  uint64_t mapped;
  if (guarded) {
    /* +64 KiB: the widest access (v128 at address 2^32-1 + offset 2^32-1) ends there. */
    mapped = WASM_RT_GUARD_RESERVATION + WASM_RT_PAGE_SIZE;
    void *p = m64_os_reserve(mapped);
    if (p == NULL)
      m64_wasm_host_trapf("wasm memory: cannot reserve 8 GiB of address space: %s",
                          strerror(errno));
    if (bytes && m64_os_commit(p, bytes) != 0) {
      int err = errno;
      m64_os_release(p, mapped);
      m64_wasm_host_trapf("wasm memory: cannot commit %llu bytes: %s",
                          (unsigned long long)bytes, strerror(err));
    }
    if (!res_add(p, mapped)) {
      m64_os_release(p, mapped);
      m64_wasm_host_trapf("wasm memory: more than %d live memories", M64_MAX_RESERVATIONS);
    }
    data = p;
  } else {
    /* Explicitly bounds-checked: map just what is used (at least one OS page so data is
     * never NULL); grow may move it with mremap. */
    mapped = round_up(bytes ? bytes : 1, m64_os_page_size());
    if (mapped > SIZE_MAX / 2)
      m64_wasm_host_trapf("wasm memory: %llu bytes is too large", (unsigned long long)bytes);
    void *p = m64_os_alloc((size_t)mapped);
    if (p == NULL)
      m64_wasm_host_trapf("wasm memory: cannot map %llu bytes: %s", (unsigned long long)mapped,
                          strerror(errno));
    data = p;
  }
  mem->data = data;
  mem->pages = initial_pages;
  mem->max_pages = max_pages;
  mem->size = bytes;
  mem->is64 = is64;
  mem->guarded = guarded;
  mem->page_size = page_size;
  mem->mapped = mapped;
  mem->cap_pages = cap;
}

uint64_t wasm_rt_grow_memory(wasm_rt_memory_t *mem, uint64_t delta) {
  const uint64_t old = mem->pages;
  if (delta == 0) return old;
  if (mem->data == NULL || delta > mem->max_pages - old) return (uint64_t)-1;
  const uint64_t new_pages = old + delta;
  const uint64_t new_bytes = new_pages * mem->page_size;
  if (new_bytes > cap_bytes(mem->cap_pages)) return (uint64_t)-1;
  if (mem->guarded) {
    if (m64_os_commit(mem->data + mem->size, new_bytes - mem->size) != 0)
      return (uint64_t)-1;
  } else if (new_bytes > mem->mapped) {
    uint64_t want = round_up(new_bytes, m64_os_page_size());
    if (want > SIZE_MAX / 2) return (uint64_t)-1;
    void *p = m64_os_grow(mem->data, (size_t)mem->mapped, (size_t)want);
    if (p == NULL) return (uint64_t)-1;
    mem->data = p;
    mem->mapped = want;
  }
  mem->pages = new_pages;
  mem->size = new_bytes;
  return old;
}

void wasm_rt_free_memory(wasm_rt_memory_t *mem) {
  if (mem->data != NULL) {
    if (mem->guarded) res_remove(mem->data);
    m64_os_release(mem->data, (size_t)mem->mapped);
  }
  memset(mem, 0, sizeof *mem);
}

/* ------------------------------------------------------------------ tables */
/* One implementation for both element types (they differ only in element size). */
static void *table_alloc(uint32_t elements, size_t elem_size) {
  void *p = calloc(elements ? elements : 1, elem_size);
  if (p == NULL) m64_wasm_host_trapf("wasm table: cannot allocate %u elements", elements);
  return p;
}

static int table_check_grow(uint32_t size, uint32_t max_size, uint32_t delta) {
  return delta <= max_size && size <= max_size - delta;
}

/* The funcref and externref tables' functions: alike but for the element type. A new
 * table's elements are null; grown ones are `init`. */
#define M64_TABLE_FUNCS(kind)                                                                          \
  void wasm_rt_allocate_##kind##_table(wasm_rt_##kind##_table_t *table, uint32_t elements,             \
                                       uint32_t max_elements) {                                        \
    if (elements > max_elements)                                                                       \
      m64_wasm_host_trapf("wasm table: %u initial elements exceed the maximum %u", elements,          \
                          max_elements);                                                               \
    table->data = table_alloc(elements, sizeof(wasm_rt_##kind##_t));                                  \
    for (uint32_t i = 0; i < elements; i++) table->data[i] = wasm_rt_##kind##_null_value;              \
    table->size = elements;                                                                            \
    table->max_size = max_elements;                                                                    \
  }                                                                                                    \
  void wasm_rt_free_##kind##_table(wasm_rt_##kind##_table_t *table) {                                  \
    free(table->data);                                                                                 \
    memset(table, 0, sizeof *table);                                                                   \
  }                                                                                                    \
  uint32_t wasm_rt_grow_##kind##_table(wasm_rt_##kind##_table_t *table, uint32_t delta,                \
                                       wasm_rt_##kind##_t init) {                                      \
    const uint32_t old = table->size;                                                                  \
    if (!table_check_grow(old, table->max_size, delta)) return (uint32_t)-1;                           \
    if (delta == 0) return old;                                                                        \
    wasm_rt_##kind##_t *p = realloc(table->data, (size_t)(old + delta) * sizeof *p);                   \
    if (p == NULL) return (uint32_t)-1;                                                                \
    for (uint32_t i = old; i < old + delta; i++) p[i] = init;                                          \
    table->data = p;                                                                                   \
    table->size = old + delta;                                                                         \
    return old;                                                                                        \
  }
M64_TABLE_FUNCS(funcref)
M64_TABLE_FUNCS(externref)
#undef M64_TABLE_FUNCS
