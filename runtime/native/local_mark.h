/*
 * local_mark.h — native code marked as made on this machine.
 *
 * A bundle's native code is as trusted as whoever built the bundle (SECURITY.md). A user
 * who got a bundle from someone else runs `m64c aot` to compile the bundle's wasm to native
 * code locally; that code carries a mark, HMAC-SHA256 under a key only this user can read,
 * and `m64run --local-native-only` loads nothing else.
 *
 * NATIVE section (docs/FORMAT.md): 64-byte header, code, then, when header flag bit 0 is
 * set, a 32-byte mark = HMAC-SHA256(key, "m64 local native v1\0" || target name padded
 * to 48 bytes with NULs || the 64 header bytes || the code). The header holds the wasm
 * hash and the code size, so the mark binds the code to the bundle's module and target.
 *
 * The key: 32 random bytes in $M64_LOCAL_KEY if set, else $XDG_CONFIG_HOME/m64/local-native.key,
 * else ~/.config/m64/local-native.key; created by the first `m64c aot` (directory 0700, file
 * 0600) and refused when other users could read or write it.
 */
#ifndef M64_LOCAL_MARK_H
#define M64_LOCAL_MARK_H

#include <stddef.h>
#include <stdint.h>

#include "m64_formats.h"

#ifdef __cplusplus
extern "C" {
#endif

#define M64_NATIVE_SEC_MAGIC "M64NATIV"
#define M64_NATIVE_SEC_HEADER 64u
#define M64_NATIVE_FLAG_LOCAL_MARK 1u
#define M64_NATIVE_MARK_BYTES 32u

typedef struct m64_native_section {
  const uint8_t *wasm_sha256; /* 32 bytes: the MODULE_WASM the code was compiled from */
  const uint8_t *code;        /* the shared object */
  uint64_t code_size;
  uint32_t flags;
  const uint8_t *mark;        /* M64_NATIVE_MARK_BYTES, or NULL when unmarked */
} m64_native_section;

/* Splits a NATIVE section into its parts; M64_EFORMAT when the sizes do not add up. */
int m64_native_section_parse(const uint8_t *data, uint64_t size, m64_native_section *out,
                             m64_err *e);

/* Appends this user's mark to an unmarked section (*sec, malloc'ed, *size bytes; both are
 * replaced) for target, creating the key if there is none yet. */
int m64_native_section_add_mark(uint8_t **sec, size_t *size, const char *target, m64_err *e);

/* 0 when the section carries a mark made with this user's key for target; otherwise
 * M64_EHASH (no mark, or a mark made elsewhere) or M64_EIO (no usable key), with e naming
 * what is missing. */
int m64_native_section_check_mark(const uint8_t *data, uint64_t size, const char *target,
                                  m64_err *e);

/* HMAC-SHA256 (RFC 2104) over the concatenation of n parts. */
void m64_hmac_sha256(const uint8_t *key, size_t key_len, const void *const *parts,
                     const size_t *lens, size_t n, uint8_t out[32]);

#ifdef __cplusplus
}
#endif
#endif
