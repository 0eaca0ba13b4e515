/* keys.c — publisher key files (m64_sign.h). Both are one text line, so a public key can
 * be pasted into a web page or a mail:
 *   NAME.pub  "m64-ed25519 BASE64(32-byte public key) NAME"
 *   NAME.key  "m64-ed25519-secret BASE64(32-byte seed) NAME", mode 0600 */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sign_internal.h"

#define PUB_TAG "m64-ed25519"
#define SECRET_TAG "m64-ed25519-secret"
#define LINE_MAX_BYTES 1024

int m64__sodium_ready(m64_err *e) {
  if (sodium_init() < 0) return m64_fail(e, M64_EIO, "libsodium could not be initialised");
  return 0;
}

int m64_sign_valid_name(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n >= M64_SIGN_NAME_MAX || s[0] == '.' || s[0] == '-') return 0;
  return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._@+-") == n;
}

void m64_sign_fingerprint(const uint8_t key[M64_SIGN_PUBLIC_BYTES], char out[M64_SIGN_FINGERPRINT_CHARS]) {
  uint8_t d[32];
  m64_sha256 h;
  m64_sha256_init(&h);
  m64_sha256_update(&h, key, M64_SIGN_PUBLIC_BYTES);
  m64_sha256_final(&h, d);
  static const char hexd[] = "0123456789abcdef";
  memcpy(out, "ed25519:", 8);
  for (int i = 0; i < 16; i++) {
    out[8 + 2 * i] = hexd[d[i] >> 4];
    out[9 + 2 * i] = hexd[d[i] & 15];
  }
  out[40] = 0;
}

/* "TAG BASE64 [NAME]" -> 32 bytes and the name. */
static int parse_line(const char *text, const char *tag, uint8_t bin[32], char *name, m64_err *e,
                      const char *path) {
  char buf[LINE_MAX_BYTES + 1];
  snprintf(buf, sizeof buf, "%s", text);
  buf[strcspn(buf, "\r\n")] = 0;
  char *save = NULL, *t = strtok_r(buf, " \t", &save), *b64 = strtok_r(NULL, " \t", &save),
       *nm = strtok_r(NULL, " \t", &save);
  if (!t || strcmp(t, tag) != 0 || !b64 || strtok_r(NULL, " \t", &save))
    return m64_fail(e, M64_EFORMAT, "%s is not an m64 %s key (expected one line \"%s BASE64 NAME\")", path,
                    strcmp(tag, PUB_TAG) ? "secret" : "public", tag);
  size_t n = 0;
  if (sodium_base642bin(bin, 32, b64, strlen(b64), NULL, &n, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
      n != 32)
    return m64_fail(e, M64_EFORMAT, "%s: the key is not 32 bytes of base64", path);
  name[0] = 0;
  if (nm) {
    if (!m64_sign_valid_name(nm))
      return m64_fail(e, M64_EFORMAT, "%s: key name '%.60s' is not [A-Za-z0-9._@+-], 1..%u bytes", path, nm,
                      M64_SIGN_NAME_MAX - 1);
    snprintf(name, M64_SIGN_NAME_MAX, "%s", nm);
  }
  return 0;
}

/* Reads a small text file through fd (already open) into buf. */
static int read_small(int fd, char *buf, size_t cap, const char *path, m64_err *e) {
  size_t got = 0;
  for (;;) {
    ssize_t n = read(fd, buf + got, cap - 1 - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return m64_fail(e, M64_EIO, "cannot read %s: %s", path, strerror(errno));
    if (n == 0) break;
    got += (size_t)n;
    if (got == cap - 1) return m64_fail(e, M64_EFORMAT, "%s is too large for a key file", path);
  }
  buf[got] = 0;
  return 0;
}

int m64__parse_public(const char *text, const char *path, m64_pubkey *out, m64_err *e) {
  memset(out, 0, sizeof *out);
  return parse_line(text, PUB_TAG, out->key, out->name, e, path);
}

int m64_sign_read_public(const char *path, m64_pubkey *out, m64_err *e) {
  int rc = m64__sodium_ready(e);
  if (rc) return rc;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return m64_fail(e, M64_EIO, "cannot open %s: %s", path, strerror(errno));
  char buf[LINE_MAX_BYTES + 1];
  rc = read_small(fd, buf, sizeof buf, path, e);
  close(fd);
  return rc ? rc : m64__parse_public(buf, path, out, e);
}

/* The secret seed and the public key it gives; refused unless only this user can read the
 * file (as ssh does: a key others can read is no longer a secret). */
int m64__read_secret(const char *path, uint8_t sk[64], m64_pubkey *pub, m64_err *e) {
  int rc = m64__sodium_ready(e);
  if (rc) return rc;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return m64_fail(e, M64_EIO, "cannot open the secret key %s: %s", path, strerror(errno));
  struct stat st;
  char buf[LINE_MAX_BYTES + 1];
  if (fstat(fd, &st) != 0) rc = m64_fail(e, M64_EIO, "cannot stat %s: %s", path, strerror(errno));
  else if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077))
    rc = m64_fail(e, M64_EIO, "the secret key %s must be a regular file of yours that only you can read and write (chmod 600)",
                  path);
  else rc = read_small(fd, buf, sizeof buf, path, e);
  close(fd);
  uint8_t seed[32];
  memset(pub, 0, sizeof *pub);
  if (!rc) rc = parse_line(buf, SECRET_TAG, seed, pub->name, e, path);
  sodium_memzero(buf, sizeof buf);
  if (!rc && crypto_sign_seed_keypair(pub->key, sk, seed) != 0)
    rc = m64_fail(e, M64_EIO, "%s: cannot derive the key pair", path);
  sodium_memzero(seed, sizeof seed);
  return rc;
}

/* Creates path with exactly text (never over an existing file); removes it on failure. */
static int write_new(const char *path, const char *text, mode_t mode, m64_err *e) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0)
    return m64_fail(e, M64_EIO, "cannot create %s: %s", path,
                    errno == EEXIST ? "it exists already (m64c keygen never overwrites a key)" : strerror(errno));
  const size_t n = strlen(text);
  int ok = write(fd, text, n) == (ssize_t)n && fsync(fd) == 0;
  if (close(fd) != 0) ok = 0;
  if (!ok) {
    unlink(path);
    return m64_fail(e, M64_EIO, "cannot write %s", path);
  }
  return 0;
}

int m64_sign_keygen(const char *base, m64_pubkey *out, m64_err *e) {
  int rc = m64__sodium_ready(e);
  if (rc) return rc;
  const char *slash = strrchr(base, '/');
  const char *name = slash ? slash + 1 : base;
  if (!m64_sign_valid_name(name))
    return m64_fail(e, M64_EFORMAT, "key name '%.60s' must be 1..%u of [A-Za-z0-9._@+-], not starting with '.' or '-'",
                    name, M64_SIGN_NAME_MAX - 1);
  char key_path[4096], pub_path[4096];
  if ((size_t)snprintf(key_path, sizeof key_path, "%s.key", base) >= sizeof key_path ||
      (size_t)snprintf(pub_path, sizeof pub_path, "%s.pub", base) >= sizeof pub_path)
    return m64_fail(e, M64_ELIMIT, "key path too long");
  if (access(pub_path, F_OK) == 0 || access(key_path, F_OK) == 0)
    return m64_fail(e, M64_EIO, "%s.key or %s.pub exists already (m64c keygen never overwrites a key)", base, base);
  uint8_t pk[32], sk[64];
  crypto_sign_keypair(pk, sk);
  char b64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)];
  char line[LINE_MAX_BYTES];
  sodium_bin2base64(b64, sizeof b64, sk, 32, sodium_base64_VARIANT_ORIGINAL); /* the seed */
  snprintf(line, sizeof line, "%s %s %s\n", SECRET_TAG, b64, name);
  sodium_memzero(sk, sizeof sk);
  rc = write_new(key_path, line, 0600, e);
  sodium_memzero(line, sizeof line);
  sodium_memzero(b64, sizeof b64);
  if (rc) return rc;
  sodium_bin2base64(b64, sizeof b64, pk, 32, sodium_base64_VARIANT_ORIGINAL);
  snprintf(line, sizeof line, "%s %s %s\n", PUB_TAG, b64, name);
  if ((rc = write_new(pub_path, line, 0644, e))) {
    unlink(key_path);
    return rc;
  }
  if (out) {
    memset(out, 0, sizeof *out);
    memcpy(out->key, pk, 32);
    snprintf(out->name, sizeof out->name, "%s", name);
  }
  return 0;
}

void m64__public_line(const m64_pubkey *k, const char *name, char *out, size_t cap) {
  char b64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)];
  sodium_bin2base64(b64, sizeof b64, k->key, 32, sodium_base64_VARIANT_ORIGINAL);
  snprintf(out, cap, "%s %s %s\n", PUB_TAG, b64, name);
}

int m64_sign_check_key(const char *keyfile, m64_pubkey *pub, m64_err *e) {
  uint8_t sk[64];
  int rc = m64__read_secret(keyfile, sk, pub, e);
  sodium_memzero(sk, sizeof sk);
  return rc;
}
