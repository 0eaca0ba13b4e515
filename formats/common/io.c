/* io.c — POSIX file helpers with errno-carrying messages. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

int m64__errno_code(int err) {
#ifdef EDQUOT
  if (err == EDQUOT) return M64_ENOSPC;
#endif
  return err == ENOSPC ? M64_ENOSPC : M64_EIO;
}

int m64__map_file(const char *path, const uint8_t **base, size_t *size, m64_err *e) {
  *base = NULL;
  *size = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return m64_fail(e, M64_EIO, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    return m64_fail(e, M64_EIO, "%s: cannot stat: %s", path, strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return m64_fail(e, M64_EIO, "%s: not a regular file", path);
  }
  if (st.st_size == 0) {
    close(fd);
    return m64_fail(e, M64_EFORMAT, "%s: empty file (0 bytes)", path);
  }
  if ((uint64_t)st.st_size > (uint64_t)SIZE_MAX) {
    close(fd);
    return m64_fail(e, M64_ELIMIT, "%s: file too large to map", path);
  }
  void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  int err = errno;
  close(fd); /* the mapping keeps the file alive */
  if (p == MAP_FAILED) return m64_fail(e, M64_EIO, "%s: mmap failed: %s", path, strerror(err));
  *base = (const uint8_t *)p;
  *size = (size_t)st.st_size;
  return 0;
}

void m64__unmap_file(const uint8_t *base, size_t size) {
  if (base) munmap((void *)(uintptr_t)base, size);
}

int m64__pwrite_all(int fd, const void *buf, size_t n, uint64_t off, const char *path, m64_err *e) {
  const uint8_t *p = (const uint8_t *)buf;
  while (n > 0) {
    ssize_t w = pwrite(fd, p, n, (off_t)off);
    if (w < 0) {
      if (errno == EINTR) continue;
      int code = m64__errno_code(errno);
      if (code == M64_ENOSPC) return m64_fail(e, code, "%s: disk full", path);
      return m64_fail(e, code, "%s: write failed at offset %llu: %s", path,
                      (unsigned long long)off, strerror(errno));
    }
    if (w == 0) return m64_fail(e, M64_ENOSPC, "%s: disk full (short write)", path);
    p += w;
    n -= (size_t)w;
    off += (uint64_t)w;
  }
  return 0;
}

int m64__pread_all(int fd, void *buf, size_t n, uint64_t off, const char *path, m64_err *e) {
  uint8_t *p = (uint8_t *)buf;
  while (n > 0) {
    ssize_t r = pread(fd, p, n, (off_t)off);
    if (r < 0) {
      if (errno == EINTR) continue;
      return m64_fail(e, M64_EIO, "%s: read failed at offset %llu: %s", path,
                      (unsigned long long)off, strerror(errno));
    }
    if (r == 0) /* a hole past EOF reads as zeros, as it will once the file is extended */
    {
      memset(p, 0, n);
      return 0;
    }
    p += r;
    n -= (size_t)r;
    off += (uint64_t)r;
  }
  return 0;
}

char *m64__temp_path(const char *path) {
  size_t n = strlen(path) + 32;
  char *t = (char *)malloc(n);
  if (t) snprintf(t, n, "%s.tmp.%ld", path, (long)getpid());
  return t;
}

int m64__sync_and_rename(int fd, const char *tmp, const char *path, m64_err *e) {
  if (fsync(fd) != 0) {
    int code = m64__errno_code(errno);
    return m64_fail(e, code, "%s: fsync failed: %s", tmp, code == M64_ENOSPC ? "disk full" : strerror(errno));
  }
  if (rename(tmp, path) != 0)
    return m64_fail(e, M64_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
  /* Make the rename itself durable; failure here is not worth failing the write for. */
  char *dup = strdup(path);
  if (dup) {
    int dfd = open(dirname(dup), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      (void)fsync(dfd);
      close(dfd);
    }
    free(dup);
  }
  return 0;
}
