/*
 * native.h — load an AOT-compiled module shared object from bytes held in memory.
 *
 * The bundle carries the module's native code as an ELF shared object (see native_abi.h
 * for what it exports). It is loaded without ever writing it under a stable name: the
 * bytes go into an anonymous memfd and are dlopen'ed through /proc/self/fd/N
 * (RTLD_NOW | RTLD_LOCAL). Where memfd_create is unavailable, a temp file in $TMPDIR (or
 * /tmp) is used and unlinked right after dlopen. The .so's undefined symbols (wasm_rt_*,
 * the w2c_m64_* imports) resolve from the executable, which must be linked with
 * -rdynamic (CMake: ENABLE_EXPORTS).
 *
 * Trust: dlopen runs the object's initialisers, so only load code the user accepted
 * (SECURITY.md). Garbage, truncated or corrupt objects give M64_EFORMAT naming the field
 * (elf_check.h), never a crash in the loader; code that passes can still do anything.
 */
#ifndef M64_NATIVE_H
#define M64_NATIVE_H

#include <stddef.h>

#include "m64_formats.h" /* m64_err, M64_E* */

#ifdef __cplusplus
extern "C" {
#endif

typedef struct m64_native m64_native;

/* Loads the shared object in so_bytes[0..n). On success *out owns it (0 returned); on
 * failure returns M64_EFORMAT (not an ELF object / dlopen refused it: the dlerror text is
 * in e), M64_EIO (memfd/temp file), or M64_ENOMEM, and *out is NULL. The bytes may be
 * freed after the call. */
int m64_native_load(const void *so_bytes, size_t n, m64_native **out, m64_err *e);

/* The object's M64_NATIVE_ABI table (native_abi.h), once it and every function pointer
 * in it (as many as its abi_version has) are known to lie in the object's own image and
 * code; M64_EFORMAT otherwise. The versions are for the caller to check. */
struct m64_native_abi;
int m64_native_abi_table(m64_native *n, const struct m64_native_abi **out, m64_err *e);

/* dlsym in this object only; NULL if absent. */
void *m64_native_sym(m64_native *n, const char *name);

/* dlclose + release. All instances made from it must be freed first. NULL is a no-op. */
void m64_native_unload(m64_native *n);

#ifdef __cplusplus
}
#endif

#endif /* M64_NATIVE_H */
