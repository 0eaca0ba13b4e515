/* local_mark.c — see local_mark.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "local_mark.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_BYTES 32u
static const char DOMAIN[] = "m64 local native v1"; /* its NUL is part of the message */

void m64_hmac_sha256(const uint8_t *key, size_t key_len, const void *const *parts,
                     const size_t *lens, size_t n, uint8_t out[32]) {
  uint8_t k[64] = {0}, pad[64], inner[32];
  if (key_len > 64) {
    m64_sha256 h;
    m64_sha256_init(&h);
    m64_sha256_update(&h, key, key_len);
    m64_sha256_final(&h, k);
  } else {
    memcpy(k, key, key_len);
  }
  m64_sha256 h;
  for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x36;
  m64_sha256_init(&h);
  m64_sha256_update(&h, pad, 64);
  for (size_t i = 0; i < n; i++) m64_sha256_update(&h, parts[i], lens[i]);
  m64_sha256_final(&h, inner);
  for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x5c;
  m64_sha256_init(&h);
  m64_sha256_update(&h, pad, 64);
  m64_sha256_update(&h, inner, 32);
  m64_sha256_final(&h, out);
}

/* ---- the key ---- */
static int key_path(char *out, size_t cap, char *dir, size_t dcap, m64_err *e) {
  const char *env = getenv("M64_LOCAL_KEY");
  if (env && *env) {
    snprintf(out, cap, "%s", env);
    snprintf(dir, dcap, "%s", env);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, dcap, ".");
    return 0;
  }
  const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
  if (xdg && *xdg) snprintf(dir, dcap, "%s/m64", xdg);
  else if (home && *home) snprintf(dir, dcap, "%s/.config/m64", home);
  else return m64_fail(e, M64_EIO, "no place for the local key: set HOME or M64_LOCAL_KEY");
  if ((size_t)snprintf(out, cap, "%s/local-native.key", dir) >= cap)
    return m64_fail(e, M64_EIO, "local key path too long");
  return 0;
}

/* Reads the key; M64_ENOTFOUND when the file does not exist. */
static int read_key(const char *path, uint8_t key[KEY_BYTES], m64_err *e) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return m64_fail(e, M64_ENOTFOUND, "you have no local key yet (none at %s)", path);
    return m64_fail(e, M64_EIO, "cannot open the local key %s: %s", path, strerror(errno));
  }
  struct stat st;
  int rc = 0;
  if (fstat(fd, &st) != 0) rc = m64_fail(e, M64_EIO, "cannot stat %s: %s", path, strerror(errno));
  else if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077))
    rc = m64_fail(e, M64_EIO, "the local key %s must be a regular file of yours that only you can read (chmod 600)", path);
  else if (st.st_size != KEY_BYTES || read(fd, key, KEY_BYTES) != (ssize_t)KEY_BYTES)
    rc = m64_fail(e, M64_EIO, "the local key %s is not %u bytes", path, KEY_BYTES);
  close(fd);
  return rc;
}

static int create_key(const char *path, const char *dir, uint8_t key[KEY_BYTES], m64_err *e) {
  /* the directory chain: only the last level is ours to create */
  char parent[4096];
  snprintf(parent, sizeof parent, "%s", dir);
  char *slash = strrchr(parent, '/');
  if (slash && slash != parent) {
    *slash = 0;
    if (mkdir(parent, 0700) != 0 && errno != EEXIST)
      return m64_fail(e, M64_EIO, "cannot create %s: %s", parent, strerror(errno));
  }
  if (mkdir(dir, 0700) != 0 && errno != EEXIST)
    return m64_fail(e, M64_EIO, "cannot create %s: %s", dir, strerror(errno));
  for (size_t got = 0; got < KEY_BYTES;) {
    ssize_t n = getrandom(key + got, KEY_BYTES - got, 0);
    if (n < 0 && errno != EINTR) return m64_fail(e, M64_EIO, "getrandom: %s", strerror(errno));
    if (n > 0) got += (size_t)n;
  }
  /* Written whole under a temp name, then linked into place: a reader never sees a short
   * key, and when two builds create it at once, one key wins and both use it. */
  char tmp[4200];
  if ((size_t)snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid()) >= sizeof tmp)
    return m64_fail(e, M64_EIO, "local key path too long");
  unlink(tmp); /* a crashed m64c's leftover; O_EXCL: never write into a file someone else made */
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return m64_fail(e, M64_EIO, "cannot create the local key %s: %s", path, strerror(errno));
  int ok = write(fd, key, KEY_BYTES) == (ssize_t)KEY_BYTES && fsync(fd) == 0;
  if (close(fd) != 0) ok = 0;
  if (!ok) {
    unlink(tmp);
    return m64_fail(e, M64_EIO, "cannot write the local key %s", path);
  }
  int linked = link(tmp, path) == 0, err = errno;
  if (!linked && err != EEXIST && access(path, F_OK) != 0) { /* no hard links here (some FUSE) */
    linked = rename(tmp, path) == 0;
    err = errno;
  }
  unlink(tmp);
  if (!linked && err == EEXIST) return read_key(path, key, e); /* another m64c made it first */
  if (!linked) return m64_fail(e, M64_EIO, "cannot create the local key %s: %s", path, strerror(err));
  return 0;
}

static int load_key(int create, uint8_t key[KEY_BYTES], m64_err *e) {
  char path[4096], dir[4096];
  int rc = key_path(path, sizeof path, dir, sizeof dir, e);
  if (rc) return rc;
  rc = read_key(path, key, e);
  if (rc == M64_ENOTFOUND && create) rc = create_key(path, dir, key, e);
  return rc;
}

static void compute(const uint8_t key[KEY_BYTES], const char *target, const uint8_t *header,
                    const uint8_t *code, uint64_t code_size, uint8_t out[32]) {
  char name[48] = {0};
  snprintf(name, sizeof name, "%s", target);
  const void *parts[4] = {DOMAIN, name, header, code};
  const size_t lens[4] = {sizeof DOMAIN, sizeof name, M64_NATIVE_HEADER_BYTES, (size_t)code_size};
  m64_hmac_sha256(key, KEY_BYTES, parts, lens, 4, out);
}

int m64_native_section_add_mark(uint8_t **sec, size_t *size, const char *target, m64_err *e) {
  m64_native_section ns;
  int rc = m64_native_section_parse(*sec, *size, &ns, e);
  if (rc) return rc;
  if (ns.mark) return m64_fail(e, M64_EFORMAT, "native section is already marked");
  uint8_t key[KEY_BYTES], *mark;
  if ((rc = load_key(1, key, e))) return rc;
  const uint64_t code_size = ns.code_size;
  if (!(rc = m64_native_section_reserve_mark(sec, size, &mark, e)))
    compute(key, target, *sec, *sec + M64_NATIVE_HEADER_BYTES, code_size, mark); /* over the flagged header */
  memset(key, 0, sizeof key);
  return rc;
}

int m64_native_section_check_mark(const uint8_t *data, uint64_t size, const char *target,
                                  m64_err *e) {
  m64_native_section ns;
  int rc = m64_native_section_parse(data, size, &ns, e);
  if (rc) return rc;
  if (!ns.mark) return m64_fail(e, M64_EHASH, "it carries no local mark");
  uint8_t key[KEY_BYTES], want[32];
  if ((rc = load_key(0, key, e))) return rc;
  compute(key, target, data, ns.code, ns.code_size, want);
  memset(key, 0, sizeof key);
  uint8_t diff = 0; /* constant time: the mark is a MAC */
  for (int i = 0; i < 32; i++) diff |= (uint8_t)(want[i] ^ ns.mark[i]);
  if (diff)
    return m64_fail(e, M64_EHASH, "it was marked with another key (another user or machine, or changed since)");
  return 0;
}
