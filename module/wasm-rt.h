/*
 * wasm-rt.h — m64's own implementation of the runtime interface that wasm2c output needs.
 *
 * wasm2c (wabt 1.0.39) turns the bundle's wasm module into C that includes this header by
 * name. The generated code is the specification: it names the types, macros, globals and
 * functions below, and reads some struct fields directly (memory .data/.pages/.size,
 * table .data/.size, funcref .func/.func_type/.module_instance). Everything else here is
 * ours. The implementation lives in m64_wasm.c (runtime library, linked into m64run and
 * exported with -rdynamic so the AOT-compiled module .so resolves these symbols from the
 * executable); the host-facing API (calling with trap recovery, workspace cap) is in
 * m64_wasm.h.
 *
 * Supported: wasm32 + memory64 linear memories, SIMD128 (via simde), bulk memory,
 * reference types (funcref/externref tables), multi-value, and tail calls in the generated
 * C. Not supported: exception handling (--enable-exceptions), threads/shared memory, Segue.
 *
 * Linux (x86-64 / aarch64), C11 or C++.
 */
#ifndef WASM_RT_H_
#define WASM_RT_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ configuration */
/* These are baked into the AOT-compiled module; the runtime implements exactly this
 * configuration, so they are fixed (not overridable with -D). */

/* 32-bit, 64 KiB-page memories are reserved as 4 GiB + 4 GiB (+64 KiB) of PROT_NONE
 * address space; only [0, size) is read/write. Any wasm32 address + offset (both < 2^32)
 * therefore lands inside the reservation, and an access past `size` faults; the fault
 * handler turns it into WASM_RT_TRAP_OOB. So the generated MEMCHECK_DEFAULT32 is empty.
 * memory64 and custom-page-size memories use the generated MEMCHECK_GENERAL (explicit
 * RANGE_CHECK against .size) regardless of this flag, so both kinds are correct. */
#define WASM_RT_MEMCHECK_GUARD_PAGES 1

/* Segue (x86 %gs-relative memory base) is off: it needs a single memory and wrgsbase. */
#define WASM_RT_USE_SEGUE 0
#define WASM_RT_SEGUE_FREE_SEGMENT 0
#define WASM_RT_SANITY_CHECKS 0

/* Stack exhaustion is detected by counting: every generated function increments the
 * thread-local wasm_rt_call_stack_depth in its prologue and traps with
 * WASM_RT_TRAP_EXHAUSTION above the maximum. 10000 frames keep the C stack use well
 * inside an 8 MiB thread stack for any sane frame size (~800 bytes per level budget). */
#define WASM_RT_STACK_DEPTH_COUNT 1
#define WASM_RT_MAX_CALL_STACK_DEPTH 10000u

/* The one 32-bit default page size, and the address-space reservation for such memories. */
#define WASM_RT_PAGE_SIZE 65536u
#define WASM_RT_GUARD_RESERVATION ((uint64_t)8 << 30) /* 4 GiB memory + 4 GiB guard */

/* ------------------------------------------------------------------ compiler helpers */
#if defined(__GNUC__) || defined(__clang__)
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define LIKELY(x) (x)
#define UNLIKELY(x) (x)
#endif

/* The generated code moves every load/store through this (no aliasing assumptions). */
#define wasm_rt_memcpy memcpy

#ifdef __cplusplus
#define WASM_RT_THREAD_LOCAL thread_local
#define WASM_RT_NO_RETURN [[noreturn]]
#else
#define WASM_RT_THREAD_LOCAL _Thread_local
#define WASM_RT_NO_RETURN _Noreturn
#endif

/* ------------------------------------------------------------------ traps */
/* Trap codes. wasm2c writes TRAP(X) for WASM_RT_TRAP_X. WASM_RT_TRAP_HOST is m64's: a host
 * import that cannot continue (m64_wasm_host_trap). Values are stable (they travel
 * through siglongjmp and appear in logs). */
typedef enum {
  WASM_RT_TRAP_NONE = 0,           /* no trap */
  WASM_RT_TRAP_OOB = 1,            /* out of bounds memory / table access */
  WASM_RT_TRAP_INT_OVERFLOW = 2,   /* INT_MIN / -1, or float->int out of range */
  WASM_RT_TRAP_DIV_BY_ZERO = 3,    /* integer division or remainder by zero */
  WASM_RT_TRAP_INVALID_CONVERSION = 4, /* float->int of a NaN */
  WASM_RT_TRAP_UNREACHABLE = 5,    /* `unreachable` (e.g. __builtin_trap, abort) */
  WASM_RT_TRAP_CALL_INDIRECT = 6,  /* call_indirect: null, out of table or wrong type */
  WASM_RT_TRAP_UNCAUGHT_EXCEPTION = 7,
  WASM_RT_TRAP_UNALIGNED = 8,      /* unaligned atomic (threads; unused by m64) */
  WASM_RT_TRAP_EXHAUSTION = 9,     /* call depth above WASM_RT_MAX_CALL_STACK_DEPTH */
  WASM_RT_TRAP_NULL_REF = 10,      /* null function reference (function-references) */
  WASM_RT_TRAP_HOST = 11,          /* a host import gave up (m64_wasm_host_trap) */
  WASM_RT_TRAP_COUNT_ = 12
} wasm_rt_trap_t;

/* Aborts the current wasm call: siglongjmps to the innermost m64_wasm_call on this thread,
 * which returns `code`. With no call active it prints the trap and aborts the process
 * (a trap must never be silently lost). */
WASM_RT_NO_RETURN void wasm_rt_trap(wasm_rt_trap_t code);

/* A short English description of a trap code (same strings as m64_wasm_trap_name). */
const char *wasm_rt_strerror(wasm_rt_trap_t code);

/* ------------------------------------------------------------------ life cycle */
/* Installs the process-wide SIGSEGV/SIGBUS handler. Idempotent and thread-safe; the
 * generated instantiate asserts it was called, and native_glue's instantiate calls it. */
void wasm_rt_init(void);
bool wasm_rt_is_initialized(void);
/* Nothing to tear down process-wide (handlers stay installed); kept for API symmetry. */
void wasm_rt_free(void);

/* Call depth of the current thread (see WASM_RT_STACK_DEPTH_COUNT). initial-exec TLS: the
 * variable lives in the executable's static TLS block, so the dlopen'ed module reaches it
 * with one %fs-relative access instead of a __tls_get_addr call per function entry. */
extern WASM_RT_THREAD_LOCAL uint32_t wasm_rt_call_stack_depth
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((tls_model("initial-exec")))
#endif
    ;

/* ------------------------------------------------------------------ value types */
/* Used by the generated wasm2c_<mod>_get_func_type(param_count, result_count, ...). */
typedef enum {
  WASM_RT_I32,
  WASM_RT_I64,
  WASM_RT_F32,
  WASM_RT_F64,
  WASM_RT_V128,
  WASM_RT_FUNCREF,
  WASM_RT_EXTERNREF,
  WASM_RT_EXNREF,
} wasm_rt_type_t;

/* A function signature: a pointer to a 32-byte hash the generated code compares with
 * memcmp (func_types_eq), so equal signatures across modules compare equal. */
typedef const char *wasm_rt_func_type_t;

/* Any function pointer; call sites cast it back to the exact type. */
typedef void (*wasm_rt_function_ptr_t)(void);

/* Tail-call trampoline entry (only generated with --enable-tail-call). */
typedef struct wasm_rt_tailcallee_t {
  void (*fn)(void **instance_ptr, void *tail_call_stack, struct wasm_rt_tailcallee_t *next);
} wasm_rt_tailcallee_t;

/* A funcref: field order matters, the generated code brace-initialises it. */
typedef struct {
  wasm_rt_func_type_t func_type;        /* NULL for a null reference */
  wasm_rt_function_ptr_t func;          /* NULL for a null reference */
  wasm_rt_tailcallee_t func_tailcallee;
  void *module_instance;                /* first argument when called */
} wasm_rt_funcref_t;

/* An externref is an opaque host pointer. */
typedef void *wasm_rt_externref_t;

#ifdef __cplusplus
#define wasm_rt_funcref_null_value (wasm_rt_funcref_t{NULL, NULL, {NULL}, NULL})
#else
#define wasm_rt_funcref_null_value ((wasm_rt_funcref_t){NULL, NULL, {NULL}, NULL})
#endif
#define wasm_rt_externref_null_value ((wasm_rt_externref_t)NULL)

/* ------------------------------------------------------------------ memories */
/* One linear memory. The generated code reads data, size and pages directly and never
 * writes them; only wasm_rt_allocate/grow/free_memory do. A memory must start zeroed
 * (the instance is calloc'ed) so that freeing a never-allocated memory is a no-op. */
typedef struct {
  uint8_t *data;       /* base address; stable for guard-page memories, may move otherwise */
  uint64_t pages;      /* current size in pages (memory.size) */
  uint64_t max_pages;  /* declared maximum (clamped to the index type's limit) */
  uint64_t size;       /* pages * page_size, in bytes */
  bool is64;           /* memory64 (i64 addresses) */
  /* ---- private to the runtime ---- */
  bool guarded;        /* reserved with guard pages (32-bit, 64 KiB pages) */
  uint32_t page_size;  /* 65536, or 1 with custom-page-sizes */
  uint64_t mapped;     /* bytes of address space mapped at data */
  uint64_t cap_pages;  /* this memory's own bound below max_pages (the workspace; 0 = none):
                          m64_wasm_memory_set_cap. Last, so that code compiled against the
                          fields above keeps their offsets */
} wasm_rt_memory_t;

/* Allocates a memory of initial_pages (zero-filled). Fails (by trapping
 * WASM_RT_TRAP_HOST with a message; see m64_wasm_host_trap) if the address space cannot
 * be reserved or initial_pages exceeds the declared maximum or the calling thread's
 * allocation cap (m64_wasm_set_alloc_cap), which becomes the memory's own cap. */
void wasm_rt_allocate_memory(wasm_rt_memory_t *mem, uint64_t initial_pages,
                             uint64_t max_pages, bool is64, uint32_t page_size);
/* memory.grow: returns the previous page count, or (uint64_t)-1 (the generated code
 * truncates to (u32)-1 for wasm32) if the result would exceed max_pages or the host cap,
 * or the pages cannot be committed. New pages read as zero. */
uint64_t wasm_rt_grow_memory(wasm_rt_memory_t *mem, uint64_t delta);
/* Releases the memory's address space; leaves *mem zeroed. Safe on a zeroed memory. */
void wasm_rt_free_memory(wasm_rt_memory_t *mem);

/* ------------------------------------------------------------------ tables */
typedef struct {
  wasm_rt_funcref_t *data;
  uint32_t max_size;
  uint32_t size;
} wasm_rt_funcref_table_t;

typedef struct {
  wasm_rt_externref_t *data;
  uint32_t max_size;
  uint32_t size;
} wasm_rt_externref_table_t;

/* Allocate `elements` null entries (traps WASM_RT_TRAP_HOST if out of memory). */
void wasm_rt_allocate_funcref_table(wasm_rt_funcref_table_t *table, uint32_t elements,
                                    uint32_t max_elements);
void wasm_rt_free_funcref_table(wasm_rt_funcref_table_t *table);
/* table.grow: previous size, or (uint32_t)-1 when it would exceed max_size / no memory. */
uint32_t wasm_rt_grow_funcref_table(wasm_rt_funcref_table_t *table, uint32_t delta,
                                    wasm_rt_funcref_t init);

void wasm_rt_allocate_externref_table(wasm_rt_externref_table_t *table, uint32_t elements,
                                      uint32_t max_elements);
void wasm_rt_free_externref_table(wasm_rt_externref_table_t *table);
uint32_t wasm_rt_grow_externref_table(wasm_rt_externref_table_t *table, uint32_t delta,
                                      wasm_rt_externref_t init);

#ifdef __cplusplus
}
#endif

#endif /* WASM_RT_H_ */
