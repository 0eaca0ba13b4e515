/*
 * cache.c — the per-user bundle cache: `m64run MODEL.gguf` compiles a GGUF once into a
 * bundle here and starts every later run from it (m64_compiler.h, "Bundle cache").
 *
 * Layout of the cache directory (0700, the user's own):
 *   KEY.m64     the bundle, written by m64c_build (temp file + rename: never partial)
 *   KEY.info    "key = value" lines: the source GGUF, its SHA-256 and size, m64c's version,
 *               the target, the build time; its modification time is the entry's last use
 *   KEY.lock    flock'ed by whoever checks or builds the entry, so that two first runs of
 *               one model compile it once: the second waits, then uses the first's
 *   sources/DEV-INODE
 *               the SHA-256 of a GGUF file with the size, modification and change times
 *               (ns) it had when hashed, so that an unchanged file is not hashed on every
 *               run; any write to the file changes its change time, so a changed one is
 * KEY is the first 32 hex digits of SHA-256("m64 bundle cache 1", the GGUF's SHA-256,
 * m64c's version, the native target): another model, another m64c or another CPU level
 * gives another entry.
 *
 * An entry is trusted only as far as its layer hashes: a bundle without a verified stamp
 * (formats/common/stamp.c) matching the file as it is now is verified in full before use,
 * and rebuilt when that fails. Its native code carries this user's local mark, as any
 * `m64c build` here does, so m64run runs it with no extra step.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "compiler_internal.h"
#include "m64c_build_id.h"
#include "tokblob.h"

#define KEY_HEX 32 /* hex digits of a cache key */
#define PATH_CAP 4096
#define DIR_CAP 3584 /* the cache directory's path: room for every name under it */

const char *m64c_version(void) { return M64C_VERSION; }

/* ---- the directory ---- */

int m64c_cache_dir(const char *dir, char *out, size_t cap, m64_err *e) {
  const char *env = getenv("M64_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
  int n;
  if (dir && *dir) n = snprintf(out, cap, "%s", dir);
  else if (env && *env) n = snprintf(out, cap, "%s", env);
  else if (xdg && xdg[0] == '/') n = snprintf(out, cap, "%s/m64/bundles", xdg);
  else if (home && home[0] == '/') n = snprintf(out, cap, "%s/.cache/m64/bundles", home);
  else return m64_fail(e, M64_ENOTFOUND, "no bundle cache directory: set M64_CACHE_DIR, XDG_CACHE_HOME or HOME");
  if (n < 0 || (size_t)n >= cap - 64) return m64_fail(e, M64_ELIMIT, "bundle cache directory path too long");
  return 0;
}

/* Creates path and its parents (0700 for what it creates). */
static int make_dirs(const char *path, m64_err *e) {
  char p[PATH_CAP];
  snprintf(p, sizeof p, "%s", path);
  for (char *s = p + 1;; s++) {
    const char c = *s;
    if (c != '/' && c != 0) continue;
    *s = 0;
    if (mkdir(p, 0700) != 0 && errno != EEXIST)
      return m64_fail(e, M64_EIO, "cannot create the bundle cache directory %s: %s", p, strerror(errno));
    *s = c;
    if (!c) return 0;
  }
}

/* Whoever can write the cache could swap a bundle under the user: the directory must be
 * theirs and closed to others (the local mark on native code is the second line). */
static int check_dir_private(const char *dir, m64_err *e) {
  struct stat st;
  if (stat(dir, &st) != 0) return m64_fail(e, M64_EIO, "bundle cache %s: %s", dir, strerror(errno));
  if (!S_ISDIR(st.st_mode)) return m64_fail(e, M64_EIO, "bundle cache %s is not a directory", dir);
  if (st.st_uid != geteuid() || (st.st_mode & 022))
    return m64_fail(e, M64_EUNTRUSTED, "bundle cache %s is %s: not using it (chmod 700 it, or set M64_CACHE_DIR)",
                    dir, st.st_uid != geteuid() ? "another user's" : "writable by other users");
  return 0;
}

static int is_key(const char *s, size_t n) {
  if (n != KEY_HEX) return 0;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
  return 1;
}

static void entry_path(char *out, size_t cap, const char *dir, const char *key, const char *ext) {
  snprintf(out, cap, "%s/%s.%s", dir, key, ext);
}

/* ---- the GGUF's content hash, remembered per file ---- */

static void memo_path(char *out, size_t cap, const char *dir, const struct stat *st) {
  snprintf(out, cap, "%s/sources/%llx-%llx", dir, (unsigned long long)st->st_dev, (unsigned long long)st->st_ino);
}

static void memo_text(char *out, size_t cap, const struct stat *st, const char *hex) {
  snprintf(out, cap, "size %lld mtime %lld.%09ld ctime %lld.%09ld sha256 %s\n", (long long)st->st_size,
           (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec, (long long)st->st_ctim.tv_sec,
           st->st_ctim.tv_nsec, hex);
}

/* 1 and the hash in hex when the memo records this very file, unchanged; else 0. */
static int memo_read(const char *dir, const struct stat *st, char hex[65]) {
  char path[PATH_CAP], have[256] = "", want[256];
  memo_path(path, sizeof path, dir, st);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  const int ok = fgets(have, sizeof have, f) != NULL;
  fclose(f);
  const char *at = ok ? strstr(have, " sha256 ") : NULL;
  if (!at || strlen(at + 8) < 64) return 0;
  memcpy(hex, at + 8, 64);
  hex[64] = 0;
  memo_text(want, sizeof want, st, hex);
  return strcmp(have, want) == 0;
}

/* Best effort: a memo that cannot be written only costs a hash on the next run. */
static void memo_write(const char *dir, const struct stat *st, const char *hex) {
  char path[PATH_CAP], tmp[PATH_CAP + 32], text[256], sub[PATH_CAP];
  snprintf(sub, sizeof sub, "%s/sources", dir);
  if (mkdir(sub, 0700) != 0 && errno != EEXIST) return;
  memo_path(path, sizeof path, dir, st);
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  memo_text(text, sizeof text, st, hex);
  FILE *f = fopen(tmp, "w");
  if (!f) return;
  const int ok = fputs(text, f) >= 0;
  if (fclose(f) != 0 || !ok || rename(tmp, path) != 0) unlink(tmp);
}

static int hash_file(const char *path, uint8_t out[32], m64_err *e) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return m64_fail(e, M64_EIO, "%s: cannot open: %s", path, strerror(errno));
  enum { CHUNK = 4 << 20 };
  uint8_t *buf = malloc(CHUNK);
  if (!buf) {
    close(fd);
    return m64_fail(e, M64_ENOMEM, "out of memory");
  }
  m64_sha256 h;
  m64_sha256_init(&h);
  int rc = 0;
  for (;;) {
    const ssize_t n = read(fd, buf, CHUNK);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      rc = m64_fail(e, M64_EIO, "%s: read failed: %s", path, strerror(errno));
      break;
    }
    if (n == 0) break;
    m64_sha256_update(&h, buf, (size_t)n);
  }
  free(buf);
  close(fd);
  if (!rc) m64_sha256_final(&h, out);
  return rc;
}

static void cache_key(const char *gguf_hex, const char *target, char key[KEY_HEX + 1]) {
  char text[512];
  const int n = snprintf(text, sizeof text, "m64 bundle cache 1\nsource.sha256 %s\nm64c %s\ntarget %s\n",
                         gguf_hex, M64C_VERSION, target);
  uint8_t d[32];
  char hex[65];
  m64_sha256 h;
  m64_sha256_init(&h);
  m64_sha256_update(&h, text, (size_t)n);
  m64_sha256_final(&h, d);
  m64_sha256_hex(d, hex);
  memcpy(key, hex, KEY_HEX);
  key[KEY_HEX] = 0;
}

/* ---- entries ---- */

static int same_file(const struct stat *a, const struct stat *b) {
  return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
         a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
         a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* The entry's description (best effort: the bundle is what counts). */
static void write_info(const char *dir, const char *key, const char *source, const char *hex, const struct stat *st,
                       const char *target) {
  char path[PATH_CAP], tmp[PATH_CAP + 32], when[64];
  entry_path(path, sizeof path, dir, key, "info");
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  const time_t now = time(NULL);
  struct tm tm;
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
  FILE *f = fopen(tmp, "w");
  if (!f) return;
  const int ok = fprintf(f, "source = %s\nsource.sha256 = %s\nsource.size = %lld\nm64c = %s\ntarget = %s\nbuilt = %s\n",
                         source, hex, (long long)st->st_size, M64C_VERSION, target, when) > 0;
  if (fclose(f) != 0 || !ok || rename(tmp, path) != 0) unlink(tmp);
}

/* The entry was used now: its .info file's modification time (never the bundle's, whose
 * change time its verified stamp records). */
static void touch_info(const char *dir, const char *key) {
  char path[PATH_CAP];
  entry_path(path, sizeof path, dir, key, "info");
  utimensat(AT_FDCWD, path, NULL, 0);
}

/* 1 when the entry exists and its verified stamp says every layer of it, as it is now,
 * was hashed (by its build or a full check): usable as is. */
static int entry_stamped(const char *bundle, int *exists) {
  struct stat st;
  *exists = stat(bundle, &st) == 0;
  return *exists && m64_stamp_matches(&st);
}

/* A present entry without a matching stamp: check every section and layer (what a run
 * would check lazily anyway), and stamp it when it is whole. */
static int entry_verify(const char *bundle, m64_err *e) {
  struct stat st;
  if (stat(bundle, &st) != 0) return m64_fail(e, M64_EIO, "%s: %s", bundle, strerror(errno));
  m64_bundle *b = NULL;
  int rc = m64_bundle_open(bundle, &b, e);
  if (!rc) rc = m64_bundle_verify_all(b, e);
  m64_bundle_close(b);
  if (!rc) m64_stamp_write(&st, NULL, 0);
  return rc;
}

int m64c_check_gguf(const char *gguf, m64_err *e) {
  m64_gguf *g = NULL;
  m64c_plan plan = {0};
  uint8_t *tok = NULL;
  size_t tok_size = 0;
  int rc = m64_gguf_open(gguf, &g, e);
  if (!rc) rc = m64c_plan_model(g, 0, &plan, e);
  if (!rc) {
    rc = m64_tokblob_build(g, &tok, &tok_size, e);
    m64c_plan_free(&plan);
  }
  free(tok);
  m64_gguf_close(g);
  return rc;
}

int m64c_cache_get(const char *gguf, const m64c_cache_options *o, char *bundle, size_t cap, int *built,
                   m64_err *e) {
  char dir[DIR_CAP], hex[65], key[KEY_HEX + 1], lock[PATH_CAP], source[PATH_CAP];
  const char *target = m64c_host_target();
  int rc, fd = -1;
  *built = 0;
  if ((rc = m64c_cache_dir(o->dir, dir, sizeof dir, e))) return rc;
  struct stat st;
  if (stat(gguf, &st) != 0) return m64_fail(e, M64_EIO, "%s: cannot open: %s", gguf, strerror(errno));
  if (!realpath(gguf, source)) snprintf(source, sizeof source, "%s", gguf);

  /* the content's hash: remembered for this file as it is, or computed (nothing written yet) */
  const int memo_hit = memo_read(dir, &st, hex);
  if (!memo_hit) {
    if (o->progress && st.st_size > (256 << 20))
      fprintf(stderr, "m64run: hashing %s (%.1f GiB) for the bundle cache\n", gguf, st.st_size / 1073741824.0);
    uint8_t d[32];
    if ((rc = hash_file(gguf, d, e))) return rc;
    m64_sha256_hex(d, hex);
  }
  cache_key(hex, target, key);
  if ((size_t)snprintf(bundle, cap, "%s/%s.m64", dir, key) >= cap)
    return m64_fail(e, M64_ELIMIT, "bundle cache path too long");
  if (o->verbose) fprintf(stderr, "m64run: %s: sha256 %s%s, cache key %s\n", gguf, hex,
                          memo_hit ? " (remembered)" : "", key);

  int exists;
  if (entry_stamped(bundle, &exists)) { /* the common case: an intact entry, no lock needed */
    if ((rc = check_dir_private(dir, e))) return rc;
    touch_info(dir, key);
    if (!memo_hit) memo_write(dir, &st, hex);
    return 0;
  }
  /* A model m64 cannot compile fails here, before anything is written to the cache, with
   * the message `m64c build` gives. */
  if (!exists && (rc = m64c_check_gguf(gguf, e))) return rc;
  if ((rc = m64c_check_target(target, e))) return rc;

  if ((rc = make_dirs(dir, e)) || (rc = check_dir_private(dir, e))) return rc;
  entry_path(lock, sizeof lock, dir, key, "lock");
  if ((fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
    return m64_fail(e, M64_EIO, "cannot create %s: %s", lock, strerror(errno));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (o->progress) fprintf(stderr, "m64run: another process is compiling %s into the cache; waiting for it\n", gguf);
    while (flock(fd, LOCK_EX) != 0)
      if (errno != EINTR) {
        rc = m64_fail(e, M64_EIO, "cannot lock %s: %s", lock, strerror(errno));
        goto done;
      }
  }

  /* Under the lock: the entry as whoever held it left it. */
  if (entry_stamped(bundle, &exists)) goto use;
  if (exists) {
    m64_err why = {{0}};
    if (entry_verify(bundle, &why) == 0) goto use;
    if (o->progress)
      fprintf(stderr, "m64run: the cache entry %s for %s is damaged (%s): compiling it again\n", key, gguf, why.msg);
    if ((rc = m64c_check_gguf(gguf, e))) goto done;
  }
  if (o->progress)
    fprintf(stderr, "m64run: compiling %s into the bundle cache (%s); later runs start from it\n", gguf, dir);
  /* a cached bundle only ever runs in m64run: no browsers' relaxed-SIMD module */
  m64c_options bo = {.input = gguf, .output = bundle, .progress = o->progress, .verbose = o->verbose, .no_relaxed = 1};
  if ((rc = m64c_build(&bo, e))) goto done;
  /* The build read the GGUF after it was hashed: a file changed meanwhile would leave an
   * entry under the wrong key. */
  struct stat now;
  if (stat(gguf, &now) != 0 || !same_file(&st, &now)) {
    unlink(bundle);
    rc = m64_fail(e, M64_EIO, "%s changed while it was compiled: run again", gguf);
    goto done;
  }
  struct stat bst; /* every layer was hashed as it was written: as m64c build does */
  if (stat(bundle, &bst) == 0) m64_stamp_write(&bst, NULL, 0);
  write_info(dir, key, source, hex, &st, target);
  *built = 1;
use:
  if (!*built) {
    char info[PATH_CAP];
    entry_path(info, sizeof info, dir, key, "info");
    if (access(info, F_OK) != 0) write_info(dir, key, source, hex, &st, target);
  }
  touch_info(dir, key);
  memo_write(dir, &st, hex);
done:
  if (fd >= 0) close(fd); /* releases the lock */
  return rc;
}

/* ---- m64c cache list / rm ---- */

typedef struct entry_row {
  char key[KEY_HEX + 1];
  long long size;
  time_t used;
  char source[1200];
} entry_row;

static int by_use(const void *a, const void *b) {
  const entry_row *x = a, *y = b;
  return (x->used < y->used) - (x->used > y->used);
}

/* Every KEY.m64 in dir (an absent directory has none). */
static int list_entries(const char *dir, entry_row **rows, size_t *n, m64_err *e) {
  *rows = NULL;
  *n = 0;
  DIR *d = opendir(dir);
  if (!d) return errno == ENOENT ? 0 : m64_fail(e, M64_EIO, "cannot read %s: %s", dir, strerror(errno));
  size_t cap = 0;
  struct dirent *de;
  int rc = 0;
  while ((de = readdir(d))) {
    const size_t len = strlen(de->d_name);
    if (len != KEY_HEX + 4 || strcmp(de->d_name + KEY_HEX, ".m64") || !is_key(de->d_name, KEY_HEX)) continue;
    if (*n == cap) {
      entry_row *r = realloc(*rows, (cap = cap ? 2 * cap : 16) * sizeof *r);
      if (!r) {
        rc = m64_fail(e, M64_ENOMEM, "out of memory");
        break;
      }
      *rows = r;
    }
    entry_row *r = &(*rows)[*n];
    memset(r, 0, sizeof *r);
    memcpy(r->key, de->d_name, KEY_HEX);
    char path[PATH_CAP];
    struct stat st;
    entry_path(path, sizeof path, dir, r->key, "m64");
    if (stat(path, &st) != 0) continue;
    r->size = (long long)st.st_size;
    r->used = st.st_mtime;
    snprintf(r->source, sizeof r->source, "(unknown source)");
    entry_path(path, sizeof path, dir, r->key, "info");
    if (stat(path, &st) == 0) r->used = st.st_mtime;
    FILE *f = fopen(path, "r");
    char line[1200];
    while (f && fgets(line, sizeof line, f))
      if (!strncmp(line, "source = ", 9)) {
        line[strcspn(line, "\n")] = 0;
        snprintf(r->source, sizeof r->source, "%s", line + 9);
      }
    if (f) fclose(f);
    (*n)++;
  }
  closedir(d);
  if (!rc && *n) qsort(*rows, *n, sizeof **rows, by_use);
  return rc;
}

static void human_size(double b, char *out, size_t cap) {
  const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int i = 0;
  while (b >= 1024 && i < 4) b /= 1024, i++;
  snprintf(out, cap, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

int m64c_cache_list(const char *dir_opt, FILE *out, m64_err *e) {
  char dir[DIR_CAP];
  entry_row *rows;
  size_t n;
  int rc;
  if ((rc = m64c_cache_dir(dir_opt, dir, sizeof dir, e)) || (rc = list_entries(dir, &rows, &n, e))) return rc;
  double total = 0;
  for (size_t i = 0; i < n; i++) total += (double)rows[i].size;
  char tot[32];
  human_size(total, tot, sizeof tot);
  fprintf(out, "bundle cache %s: %zu %s, %s\n", dir, n, n == 1 ? "entry" : "entries", tot);
  if (n) fprintf(out, "%-32s  %10s  %-20s  %s\n", "KEY", "SIZE", "LAST USE (UTC)", "SOURCE");
  for (size_t i = 0; i < n; i++) {
    char sz[32], when[32];
    struct tm tm;
    human_size((double)rows[i].size, sz, sizeof sz);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", gmtime_r(&rows[i].used, &tm));
    fprintf(out, "%-32s  %10s  %-20s  %s\n", rows[i].key, sz, when, rows[i].source);
  }
  free(rows);
  return 0;
}

/* Removes one entry's files, unless a run holds its lock (it is being built or checked). */
static int remove_entry(const char *dir, const char *key, m64_err *e) {
  char path[PATH_CAP];
  entry_path(path, sizeof path, dir, key, "lock");
  int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) != 0) {
    close(fd);
    return m64_fail(e, M64_EIO, "cache entry %s is being compiled or checked by a running m64run: try again later", key);
  }
  entry_path(path, sizeof path, dir, key, "m64");
  if (unlink(path) != 0 && errno != ENOENT) {
    const int err = errno;
    if (fd >= 0) close(fd);
    return m64_fail(e, M64_EIO, "cannot remove %s: %s", path, strerror(err));
  }
  entry_path(path, sizeof path, dir, key, "info");
  unlink(path);
  entry_path(path, sizeof path, dir, key, "lock");
  unlink(path);
  if (fd >= 0) close(fd);
  return 0;
}

int m64c_cache_remove(const char *dir_opt, const char *key, FILE *out, m64_err *e) {
  char dir[DIR_CAP];
  entry_row *rows;
  size_t n;
  int rc;
  if ((rc = m64c_cache_dir(dir_opt, dir, sizeof dir, e)) || (rc = list_entries(dir, &rows, &n, e))) return rc;
  size_t removed = 0, match = n;
  if (key) { /* a whole key, or a prefix of exactly one */
    const size_t kl = strlen(key);
    size_t hits = 0;
    for (size_t i = 0; i < n; i++)
      if (kl >= 4 && kl <= KEY_HEX && !strncmp(rows[i].key, key, kl)) hits++, match = i;
    if (hits > 1)
      rc = m64_fail(e, M64_ENOTFOUND, "'%s' is a prefix of %zu cache keys: give more of it (m64c cache list)", key, hits);
    else if (!hits)
      rc = m64_fail(e, M64_ENOTFOUND, "no cache entry '%s' in %s%s (m64c cache list shows the keys)", key, dir,
                    kl < 4 ? ": give at least 4 hex digits of a key" : "");
    else if (!(rc = remove_entry(dir, rows[match].key, e))) {
      fprintf(out, "removed %s (%s)\n", rows[match].key, rows[match].source);
      removed = 1;
    }
  } else {
    for (size_t i = 0; i < n && !rc; i++)
      if (!(rc = remove_entry(dir, rows[i].key, e))) removed++;
    if (!rc) { /* the remembered GGUF hashes go too */
      char sub[PATH_CAP];
      snprintf(sub, sizeof sub, "%s/sources", dir);
      DIR *d = opendir(sub);
      struct dirent *de;
      while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char p[PATH_CAP + 300];
        snprintf(p, sizeof p, "%s/%s", sub, de->d_name);
        unlink(p);
      }
      if (d) closedir(d);
      rmdir(sub);
      fprintf(out, "removed %zu %s from %s\n", removed, removed == 1 ? "entry" : "entries", dir);
    }
  }
  free(rows);
  return rc;
}
