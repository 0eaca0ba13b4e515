/* kind.c — what a file is, from its first bytes: a GGUF model, a plain or compressed .m64
 * bundle, or neither. The commands use it to say what they were given and what to run
 * instead, before any reader reports a bad magic number. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../bundle/bundle_internal.h"
#include "internal.h"

int m64_file_kind(const char *path, m64_err *e) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return m64_fail(e, M64_EIO, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    close(fd);
    return m64_fail(e, M64_EIO, "%s: cannot stat: %s", path, strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return m64_fail(e, M64_EIO, "%s: %s", path, S_ISDIR(st.st_mode) ? "is a directory, not a model file"
                                                                    : "not a regular file");
  }
  if (st.st_size == 0) {
    close(fd);
    return m64_fail(e, M64_EFORMAT, "%s: empty file (0 bytes)", path);
  }
  uint8_t h[BH_FLAGS + 4];
  size_t got = 0;
  while (got < sizeof h) {
    const ssize_t n = read(fd, h + got, sizeof h - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
  }
  close(fd);
  if (got >= 4 && memcmp(h, "GGUF", 4) == 0) return M64_KIND_GGUF;
  if (got >= 8 && memcmp(h, M64_BUNDLE_MAGIC, 8) == 0)
    return got == sizeof h && (m64__rd_u32(h + BH_FLAGS) & BH_F_COMPRESSED) ? M64_KIND_BUNDLE_COMPRESSED
                                                                             : M64_KIND_BUNDLE;
  return M64_KIND_OTHER;
}

const char *m64_file_kind_name(int kind) {
  switch (kind) {
    case M64_KIND_GGUF: return "a GGUF model";
    case M64_KIND_BUNDLE: return "an m64 bundle";
    case M64_KIND_BUNDLE_COMPRESSED: return "a compressed m64 bundle";
    default: return "neither a GGUF model nor an m64 bundle";
  }
}
