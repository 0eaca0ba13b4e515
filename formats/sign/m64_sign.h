/*
 * m64_sign.h — signed bundles: publisher keys, the user's trust ring, and the SIGNATURE
 * section (docs/FORMAT.md "Signature", SECURITY.md "Signed bundles").
 *
 * A publisher signs a bundle with an Ed25519 key (libsodium); one signature covers the
 * header, the whole section table (so every section's SHA-256) and every layer's SHA-256,
 * so it covers every byte the runtime uses. A user who put the publisher's public key in
 * their trust ring runs the bundle's native code as shipped (runtime/session.c,
 * native_accepted, rule 2); a signature that does not verify makes m64run refuse the
 * bundle outright.
 *
 *   keys     m64c keygen: NAME.key (secret seed, 0600) and NAME.pub, both one text line
 *   trust    the ring: one NAME.pub per trusted key in $M64_TRUST_DIR, else
 *            $XDG_CONFIG_HOME/m64/trusted, else ~/.config/m64/trusted (0700; files others
 *            can write are ignored)
 *   bundles  check a bundle's signature; sign a bundle file (atomically: temp + rename)
 *
 * Every fallible call returns 0 or a negative M64_E* code with one line in *e.
 */
#ifndef M64_SIGN_H
#define M64_SIGN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "m64_formats.h"

#ifdef __cplusplus
extern "C" {
#endif

#define M64_SIGN_PUBLIC_BYTES 32u
#define M64_SIGN_SIG_BYTES 64u
#define M64_SIGN_SECTION_BYTES 128u      /* the SIGNATURE section's content */
#define M64_SIGN_SECTION_NAME "signature"
#define M64_SIGN_NAME_MAX 48u            /* key names: [A-Za-z0-9._@+-], 1..47 bytes */
#define M64_SIGN_FINGERPRINT_CHARS 41u   /* "ed25519:" + 32 hex digits + NUL */

typedef struct m64_pubkey {
  uint8_t key[M64_SIGN_PUBLIC_BYTES];
  char name[M64_SIGN_NAME_MAX];          /* from the key file; may be empty */
} m64_pubkey;

/* ---- keys */
/* Writes base.key (the secret, mode 0600, never over an existing file) and base.pub; the
 * key's name is base's last path component. */
int m64_sign_keygen(const char *base, m64_pubkey *out, m64_err *e);
/* Reads a public key file ("m64-ed25519 BASE64 NAME"). */
int m64_sign_read_public(const char *path, m64_pubkey *out, m64_err *e);
/* "ed25519:" and the first 16 bytes of SHA-256(key) in hex. */
void m64_sign_fingerprint(const uint8_t key[M64_SIGN_PUBLIC_BYTES], char out[M64_SIGN_FINGERPRINT_CHARS]);
/* Reads a secret key file as signing would (refused when others can read or write it)
 * and returns its public half: to check a key before long work. */
int m64_sign_check_key(const char *keyfile, m64_pubkey *pub, m64_err *e);
/* Whether s names a usable key name. */
int m64_sign_valid_name(const char *s);

/* ---- the trust ring */
/* The ring's directory: dir_override if given, else as above. */
int m64_trust_dir(const char *dir_override, char *out, size_t cap, m64_err *e);
/* Adds the key in pubfile under name (NULL: the file's own name, else its base name).
 * *already is set when the same key was trusted before (then nothing changes). */
int m64_trust_add(const char *dir_override, const char *pubfile, const char *name, char *added_as,
                  size_t cap, int *already, m64_err *e);
/* Removes the key named what: a name in the ring, a fingerprint, or a .pub file. */
int m64_trust_remove(const char *dir_override, const char *what, char *removed, size_t cap,
                     m64_err *e);
/* One line per trusted key: "NAME  FINGERPRINT", and files that are ignored, with why. */
int m64_trust_list(const char *dir_override, FILE *out, m64_err *e);
/* 0 when key is in the ring (name receives its name), M64_ENOTFOUND when it is not, or
 * M64_EIO when the ring or the key's file cannot be trusted; e completes "a key that is
 * ...", briefly: "not in your trust ring", "in your trust ring only as NAME.pub, which is
 * ignored: ...", "not trusted: ...". */
int m64_trust_find(const char *dir_override, const uint8_t key[M64_SIGN_PUBLIC_BYTES], char *name,
                   size_t cap, m64_err *e);

/* ---- bundles */
typedef enum m64_sig_status {
  M64_SIG_UNSIGNED = 0,      /* no SIGNATURE section */
  M64_SIG_TRUSTED = 1,       /* valid, by a key in the trust ring */
  M64_SIG_UNKNOWN_SIGNER = 2,/* valid, by a key not in the ring (or the ring is unusable) */
  M64_SIG_INVALID = 3,       /* malformed, or does not verify over this bundle */
} m64_sig_status;

typedef struct m64_sig_info {
  m64_sig_status status;
  uint8_t key[M64_SIGN_PUBLIC_BYTES];    /* the signer's key (not for UNSIGNED) */
  char fingerprint[M64_SIGN_FINGERPRINT_CHARS];
  char signer[M64_SIGN_NAME_MAX];        /* its name in the ring (TRUSTED only) */
  char why[512];                         /* INVALID: what failed; UNKNOWN_SIGNER: why the key is
                                            not trusted, as m64_trust_find says it */
} m64_sig_info;

/* Checks b's signature against b's header, table and layer hashes as this m64_bundle
 * parsed them (a copy of the header bytes is cross-checked against the parsed records, so
 * what verifies is what the runtime uses), then looks the signer up in the ring
 * (trust_dir NULL: the default ring). Returns info->status. */
m64_sig_status m64_signature_check(const m64_bundle *b, const char *trust_dir, m64_sig_info *info);
/* The same without the ring: UNSIGNED, INVALID, or UNKNOWN_SIGNER for a valid signature. */
m64_sig_status m64_signature_verify(const m64_bundle *b, m64_sig_info *info);
/* A status in words: "unsigned", "valid", "unknown signer", "invalid". */
const char *m64_sig_status_name(m64_sig_status s);

/* Signs the bundle at in with the secret key file keyfile (refused when others can read
 * or write it) and writes the result to out (may equal in; temp file + rename). Every
 * section and layer hash is verified first, so a damaged bundle is never signed. An
 * existing signature is replaced. on_temp (may be NULL) is told the temp path while it
 * exists (NULL after), for a signal handler. signer receives the key used. */
int m64_sign_bundle(const char *in, const char *out, const char *keyfile, m64_pubkey *signer,
                    void (*on_temp)(const char *tmp), m64_err *e);
/* The same, reporting the hashing of every layer before signing to progress (a bar). */
int m64_sign_bundle_progress(const char *in, const char *out, const char *keyfile, m64_pubkey *signer,
                             void (*on_temp)(const char *tmp), m64_progress_fn progress, void *ctx,
                             m64_err *e);

#ifdef __cplusplus
}
#endif
#endif
