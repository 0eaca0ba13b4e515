/*
 * local_mark.h — native code marked as made on this machine.
 *
 * A bundle's native code is as trusted as whoever built the bundle (SECURITY.md), and it
 * runs unsandboxed with the user's rights. So m64run (and m64_session_open) load only
 * native code that carries this user's mark, HMAC-SHA256 under a key only this user can
 * read: code that `m64c build` or `m64c aot` compiled here, for this user. Anything else
 * needs `m64c aot` (compile the bundle's own wasm here) or an explicit
 * `m64run --trust-bundle-native`.
 *
 * NATIVE section (docs/FORMAT.md, formats/bundle/native_section.c): 64-byte header, code, then, when header flag bit 0 is
 * set, a 32-byte mark = HMAC-SHA256(key, "m64 local native v1\0" || target name padded
 * to 48 bytes with NULs || the 64 header bytes || the code). The header holds the wasm
 * hash and the code size, so the mark binds the code to the bundle's module and target.
 *
 * The key: 32 random bytes in $M64_LOCAL_KEY if set, else $XDG_CONFIG_HOME/m64/local-native.key,
 * else ~/.config/m64/local-native.key; created by the first `m64c build` or `m64c aot` that
 * compiles native code (directory 0700, file 0600), never by m64run, and refused when other
 * users could read or write it.
 */
#ifndef M64_LOCAL_MARK_H
#define M64_LOCAL_MARK_H

#include <stddef.h>
#include <stdint.h>

#include "m64_formats.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The section's layout (header, code, mark) is formats/bundle/native_section.c's:
 * m64_native_section_parse and friends in m64_formats.h. */

/* Appends this user's mark to an unmarked section (*sec, malloc'ed, *size bytes; both are
 * replaced) for target, creating the key if there is none yet. */
int m64_native_section_add_mark(uint8_t **sec, size_t *size, const char *target, m64_err *e);

/* 0 when the section carries a mark made with this user's key for target. Otherwise, with
 * e saying why in a clause ("it carries no local mark", ...): M64_EHASH (no mark, or a
 * mark made with another key, or changed code), M64_ENOTFOUND (this user has no key yet;
 * e names where it would be) or M64_EIO (a key that cannot be used). Reads the key, never
 * creates it; looks at nothing but the 64-byte header and the bytes the MAC covers. */
int m64_native_section_check_mark(const uint8_t *data, uint64_t size, const char *target,
                                  m64_err *e);

/* HMAC-SHA256 (RFC 2104) over the concatenation of n parts. */
void m64_hmac_sha256(const uint8_t *key, size_t key_len, const void *const *parts,
                     const size_t *lens, size_t n, uint8_t out[32]);

#ifdef __cplusplus
}
#endif
#endif
