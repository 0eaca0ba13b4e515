/*
 * native_abi.h — the one symbol an AOT-compiled module .so exports to m64run.
 *
 * m64c runs wasm2c on the bundle's module with `-n m64mod` and compiles the output together
 * with module/native_glue.c into a shared object. wasm2c's own entry points are
 * named after the module and take a typed instance pointer; the glue hides that behind this
 * table of plain function pointers so the runtime never depends on generated headers:
 *
 *     const m64_native_abi *abi = m64_native_sym(so, M64_NATIVE_ABI_SYMBOL);
 *     check abi->abi_version == M64_NATIVE_ABI_VERSION and module_abi_version
 *     void *inst = calloc(1, abi->instance_size);              (must be zeroed)
 *     m64_wasm_call(thunk calling abi->instantiate(inst, host));   (may trap)
 *     m64_wasm_call(thunk calling abi->m64_forward(inst, tok, pos)) ...
 *     abi->free(inst); free(inst);                              (also after a trapped
 *                                                                instantiate)
 *
 * Every export call (and instantiate, which allocates memory and may trap) must run inside
 * m64_wasm_call. instantiate calls wasm_rt_init() itself (idempotent).
 *
 * Types are the wasm types: i32 -> uint32_t (the caller reinterprets signed results such
 * as m64_init's -1 as int32_t), f32 -> float. Pointers into module memory are uint32_t
 * offsets into memory(inst)->data. `struct w2c_m64` is the host's import instance: the
 * imports are plain C functions the executable defines (w2c_m64_layer_acquire(struct
 * w2c_m64 *, uint32_t) etc., see module/m64_module.h) and receive this pointer.
 */
#ifndef M64_NATIVE_ABI_H
#define M64_NATIVE_ABI_H

#include <stdint.h>

#include "exports.h"
#include "wasm-rt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 3 appended m64_tok_find and m64_tok_is_eog, 4 m64_sample_ex and the chat exports, 5 the cache
 * policy's (which the runtime does not call: it links module/cache.c); a host may still run
 * version 2 to 4 code (without them). */
#define M64_NATIVE_ABI_VERSION 5u
/* The module ABI versions (m64_module.h's M64_ABI_VERSION) this host runs: 2 lacks only
 * imports a newer module may call. native_glue.c checks that NEWEST is the module's. */
#define M64_MODULE_ABI_OLDEST 2u
#define M64_MODULE_ABI_NEWEST 5u
#define M64_NATIVE_ABI_SYMBOL "M64_NATIVE_ABI"

struct w2c_m64;

typedef struct m64_native_abi {
  uint32_t abi_version;        /* M64_NATIVE_ABI_VERSION (layout of this struct) */
  uint32_t module_abi_version; /* M64_ABI_VERSION of m64_module.h the module was built with */
  uint64_t instance_size;      /* bytes of the wasm2c instance struct to calloc */
  /* the imported memory's declared page limits */
  void (*memory_limits)(uint64_t *min_pages, uint64_t *max_pages);
  void (*instantiate)(void *inst, struct w2c_m64 *host);
  void (*free)(void *inst);
  wasm_rt_memory_t *(*memory)(void *inst);
  uint32_t *(*stack_pointer)(void *inst); /* the exported __stack_pointer global */

  /* The exports, module/exports.h's table in its order (later versions append): each a
   * wasm2c entry point with the instance first and the wasm types. */
#define M64_ABI_MEMBER_(name, since, ret, wret, n, params) M64_WTYPE_##wret (*name)(void *inst M64_WPARAMS(n, params));
  M64_EXPORTS(M64_ABI_MEMBER_)
#undef M64_ABI_MEMBER_
} m64_native_abi;

#ifdef __cplusplus
}
#endif

#endif /* M64_NATIVE_ABI_H */
