/* stamp.c — verified-bundle stamps.
 * Hashing every layer at its first page-in keeps a damaged bundle from being used, but on
 * a 7B model it costs ~24 s before the first token. Once every layer of a bundle file has
 * been hashed (m64run's first forward pass, m64c build as it writes them, m64c verify), its
 * identity is recorded: device, inode, size, modification and change times to the
 * nanosecond, in $XDG_CACHE_HOME/m64/verified/ (default ~/.cache). m64run skips the hashes
 * of a file whose stamp matches. Any write to the file sets its change time, which an
 * unprivileged user cannot set back, so a bundle changed since is hashed again. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "m64_formats.h"

/* The stamp file of st's device and inode; with make_dirs, its directories are made. */
static int stamp_path(char *buf, size_t cap, const struct stat *st, int make_dirs) {
  const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
  char dir[3072];
  if (xdg && xdg[0] == '/') snprintf(dir, sizeof dir, "%s", xdg);
  else if (home && home[0] == '/') snprintf(dir, sizeof dir, "%s/.cache", home);
  else return -1;
  if (strlen(dir) > 3000 || (make_dirs && mkdir(dir, 0700) != 0 && errno != EEXIST)) return -1;
  for (const char *sub = "/m64\0/verified\0"; *sub; sub += strlen(sub) + 1) {
    strcat(dir, sub);
    if (make_dirs && mkdir(dir, 0700) != 0 && errno != EEXIST) return -1;
  }
  const int n = snprintf(buf, cap, "%s/%llx-%llx", dir, (unsigned long long)st->st_dev,
                         (unsigned long long)st->st_ino);
  return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static void stamp_text(char *buf, size_t cap, const struct stat *st) {
  snprintf(buf, cap, "m64 layers verified: size %lld mtime %lld.%09ld ctime %lld.%09ld\n", (long long)st->st_size,
           (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec, (long long)st->st_ctim.tv_sec, st->st_ctim.tv_nsec);
}

int m64_stamp_matches(const struct stat *st) {
  char path[3200], want[160], have[160] = "";
  if (stamp_path(path, sizeof path, st, 0)) return 0;
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  const int ok = fgets(have, sizeof have, f) != NULL;
  fclose(f);
  stamp_text(want, sizeof want, st);
  return ok && strcmp(have, want) == 0;
}

int m64_stamp_write(const struct stat *st, char *where, size_t where_cap) {
  char path[3200], tmp[3300], text[160];
  if (stamp_path(path, sizeof path, st, 1)) return -1;
  snprintf(tmp, sizeof tmp, "%s.%ld", path, (long)getpid());
  stamp_text(text, sizeof text, st);
  FILE *f = fopen(tmp, "w");
  if (!f) return -1;
  const int ok = fputs(text, f) >= 0;
  if (fclose(f) != 0 || !ok || rename(tmp, path) != 0) {
    unlink(tmp);
    return -1;
  }
  if (where && where_cap) snprintf(where, where_cap, "%s", path);
  return 0;
}
