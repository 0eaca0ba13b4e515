/*
 * native.c — see native.h. memfd + dlopen("/proc/self/fd/N"), temp-file fallback.
 *
 * glibc recognises an already-loaded object by its path string before anything else, and
 * fd numbers are reused; so the memfd stays open while the object is loaded (no two live
 * objects share a path), and before dlopen we probe the path with RTLD_NOLOAD and move the
 * fd to another number if some earlier object (e.g. one dlclose could not unload) still
 * owns that name.
 *
 * Before any of that the bytes pass m64_elf_check (elf_check.h): the loader maps and
 * dereferences what the object's headers say, so a truncated or corrupt object must be
 * an error here, not a SIGBUS or SIGSEGV inside dlopen. After it, the ABI table and the
 * functions it points to must lie in the object's own image (m64_native_abi_table).
 *
 * Environment: M64_NATIVE_NO_MEMFD=1 forces the temp-file path (for tests).
 */
#include "native.h"

#include "elf_check.h"
#include "native_abi.h"
#include "os.h" /* memfd, temp file and the loader's calls */

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct m64_native {
  void *handle;
  int fd; /* the memfd, kept open while loaded; -1 for the temp-file path */
  m64_elf_image img; /* its segments, as checked before dlopen */
};

/* Local formatter (same contract as m64_fail) so this file does not need the formats
 * library at link time. */
static int fail(m64_err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(m64_err *e, int code, const char *fmt, ...) {
  if (e != NULL) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
  }
  return code;
}

static int write_all(int fd, const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static void *open_by_fd(int *fd, m64_err *e, int *code) {
  char path[64];
  for (int tries = 0; tries < 64; tries++) {
    m64_os_fd_path(*fd, path, sizeof path);
    if (!m64_os_lib_loaded(path)) break;
    /* name taken by a still-resident object: use another fd number */
    int nfd = fcntl(*fd, F_DUPFD_CLOEXEC, *fd + 1);
    if (nfd < 0) {
      *code = fail(e, M64_EIO, "native code: fcntl(F_DUPFD): %s", strerror(errno));
      return NULL;
    }
    close(*fd);
    *fd = nfd;
  }
  void *h = m64_os_lib_open(path);
  if (h == NULL) {
    const char *err = m64_os_lib_error();
    *code = fail(e, M64_EFORMAT, "native code: dlopen failed: %s", err ? err : "unknown error");
  }
  return h;
}

static int load_memfd(const uint8_t *b, size_t n, m64_native *nat, m64_err *e) {
  int fd = m64_os_memfd("m64-native");
  if (fd < 0) return 1; /* unavailable: caller falls back */
  if (write_all(fd, b, n) != 0) {
    int err = errno;
    close(fd);
    return fail(e, M64_EIO, "native code: writing memfd: %s", strerror(err));
  }
  /* The code is immutable from now on (best effort). */
  m64_os_seal(fd);
  /* The checked sizes assume the file holds every byte: one shorter would fault when mapped. */
  struct stat st = {0};
  if (fstat(fd, &st) != 0 || (uint64_t)st.st_size != n) {
    close(fd);
    return fail(e, M64_EIO, "native code: the memfd holds %lld bytes, not %zu", (long long)st.st_size, n);
  }
  int code = 0;
  void *h = open_by_fd(&fd, e, &code);
  if (h == NULL) {
    close(fd);
    return code;
  }
  nat->handle = h;
  nat->fd = fd;
  return 0;
}

static int load_tempfile(const uint8_t *b, size_t n, m64_native *nat, m64_err *e) {
  const char *dir = getenv("TMPDIR");
  if (dir == NULL || dir[0] == '\0') dir = "/tmp";
  char path[4096];
  if (snprintf(path, sizeof path, "%s/m64-native-XXXXXX", dir) >= (int)sizeof path)
    return fail(e, M64_EIO, "native code: TMPDIR path too long");
  int fd = m64_os_tempfile(path);
  if (fd < 0) return fail(e, M64_EIO, "native code: mkostemp in %s: %s", dir, strerror(errno));
  if (write_all(fd, b, n) != 0) {
    int err = errno;
    close(fd);
    unlink(path);
    return fail(e, M64_EIO, "native code: writing %s: %s", path, strerror(err));
  }
  struct stat st;
  const int short_file = stat(path, &st) != 0 || (uint64_t)st.st_size != n;
  close(fd);
  if (short_file) {
    unlink(path);
    return fail(e, M64_EIO, "native code: %s does not hold the %zu bytes written", path, n);
  }
  if (m64_os_lib_loaded(path)) { /* a stale object under this reused name; practically impossible */
    unlink(path);
    return fail(e, M64_EIO, "native code: temp name %s already loaded", path);
  }
  void *h = m64_os_lib_open(path);
  const char *err = h ? NULL : m64_os_lib_error();
  unlink(path);
  if (h == NULL)
    return fail(e, M64_EFORMAT, "native code: dlopen failed: %s", err ? err : "unknown error");
  nat->handle = h;
  nat->fd = -1;
  return 0;
}

int m64_native_load(const void *so_bytes, size_t n, m64_native **out, m64_err *e) {
  *out = NULL;
  if (so_bytes == NULL) return fail(e, M64_EFORMAT, "native code: no bytes");
  m64_elf_image img;
  int rc = m64_elf_check(so_bytes, n, &img, e);
  if (rc != 0) return rc;
  m64_native *nat = calloc(1, sizeof *nat);
  if (nat == NULL) return fail(e, M64_ENOMEM, "native code: out of memory");
  nat->img = img;
  const char *no_memfd = getenv("M64_NATIVE_NO_MEMFD");
  rc = 1;
  if (no_memfd == NULL || no_memfd[0] == '\0' || no_memfd[0] == '0')
    rc = load_memfd(so_bytes, n, nat, e);
  if (rc == 1) rc = load_tempfile(so_bytes, n, nat, e);
  if (rc != 0) {
    free(nat);
    return rc;
  }
  *out = nat;
  return 0;
}

void *m64_native_sym(m64_native *n, const char *name) {
  if (n == NULL || name == NULL) return NULL;
  return m64_os_lib_sym(n->handle, name);
}

/* [p, p + len) inside one of the object's segments with all of flags. */
static int in_image(const m64_native *n, uintptr_t base, const void *p, size_t len, uint32_t flags) {
  const uintptr_t a = (uintptr_t)p;
  for (uint32_t i = 0; i < n->img.n_loads; i++) {
    const uintptr_t start = base + (uintptr_t)n->img.load[i].vaddr, size = (uintptr_t)n->img.load[i].memsz;
    if ((n->img.load[i].flags & flags) == flags && a >= start && a - start <= size && len <= size - (a - start))
      return 1;
  }
  return 0;
}

int m64_native_abi_table(m64_native *n, const m64_native_abi **out, m64_err *e) {
  *out = NULL;
  uintptr_t base = 0;
  if (m64_os_lib_base(n->handle, &base) != 0) return fail(e, M64_EFORMAT, "native code: dlinfo failed");
  const m64_native_abi *abi = m64_os_lib_sym(n->handle, M64_NATIVE_ABI_SYMBOL);
  if (abi == NULL) return fail(e, M64_EFORMAT, "native code lacks the %s table", M64_NATIVE_ABI_SYMBOL);
  if (!in_image(n, base, abi, offsetof(m64_native_abi, memory_limits), PF_R))
    return fail(e, M64_EFORMAT, "native code: the %s table lies outside the object", M64_NATIVE_ABI_SYMBOL);
  /* version 2 ends before m64_tok_find, 3 before m64_sample_ex, 4 before m64_cache_open; a
   * later version is refused by the caller, after the fields both share */
  const size_t size = abi->abi_version == 2   ? offsetof(m64_native_abi, m64_tok_find)
                      : abi->abi_version == 3 ? offsetof(m64_native_abi, m64_sample_ex)
                      : abi->abi_version == 4 ? offsetof(m64_native_abi, m64_cache_open)
                                              : sizeof *abi;
  if (!in_image(n, base, abi, size, PF_R))
    return fail(e, M64_EFORMAT, "native code: the %s table (%zu bytes) lies outside the object", M64_NATIVE_ABI_SYMBOL, size);
  const char *p = (const char *)abi;
  for (size_t at = offsetof(m64_native_abi, memory_limits); at < size; at += sizeof(void (*)(void))) {
    void (*fn)(void);
    memcpy(&fn, p + at, sizeof fn);
    const void *code;
    memcpy(&code, &fn, sizeof code);
    if (!in_image(n, base, code, 1, PF_X))
      return fail(e, M64_EFORMAT, "native code: entry %zu of the %s table points outside the object's code",
                  (at - offsetof(m64_native_abi, memory_limits)) / sizeof fn, M64_NATIVE_ABI_SYMBOL);
  }
  *out = abi;
  return 0;
}

void m64_native_unload(m64_native *n) {
  if (n == NULL) return;
  m64_os_lib_close(n->handle);
  if (n->fd >= 0) close(n->fd);
  free(n);
}
