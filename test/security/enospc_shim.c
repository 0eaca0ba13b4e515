/* enospc_shim.so — LD_PRELOAD'ed by the disk-full test: once a process has written
 * $M64_TEST_ENOSPC_AFTER bytes with pwrite, every further pwrite fails with ENOSPC, as on
 * a full disk (no root needed, unlike a small tmpfs). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_NEXT */
#endif
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

static unsigned long long g_written;

static ssize_t limited(int fd, const void *buf, size_t n, off_t off, const char *name) {
  static ssize_t (*real)(int, const void *, size_t, off_t);
  if (!real) real = (ssize_t(*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, name);
  const char *lim = getenv("M64_TEST_ENOSPC_AFTER");
  if (lim && g_written + n > strtoull(lim, NULL, 10)) {
    errno = ENOSPC;
    return -1;
  }
  g_written += n;
  return real(fd, buf, n, off);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) { return limited(fd, buf, n, off, "pwrite"); }
ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) { return limited(fd, buf, n, off, "pwrite64"); }
