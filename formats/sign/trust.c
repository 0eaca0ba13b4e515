/* trust.c — the user's trust ring (m64_sign.h): one NAME.pub per publisher key whose
 * signed bundles may run their native code here. Whoever can write to the ring can make
 * this user run their code, so the directory and each file must be this user's and not
 * writable by anyone else; a file that is not is ignored (and named when it matters). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sign_internal.h"

int m64_trust_dir(const char *dir_override, char *out, size_t cap, m64_err *e) {
  const char *env = getenv("M64_TRUST_DIR"), *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
  int n;
  if (dir_override && *dir_override) n = snprintf(out, cap, "%s", dir_override);
  else if (env && *env) n = snprintf(out, cap, "%s", env);
  else if (xdg && *xdg) n = snprintf(out, cap, "%s/m64/trusted", xdg);
  else if (home && *home) n = snprintf(out, cap, "%s/.config/m64/trusted", home);
  else return m64_fail(e, M64_EIO, "no place for the trust ring: set HOME or M64_TRUST_DIR");
  if (n < 0 || (size_t)n >= cap) return m64_fail(e, M64_ELIMIT, "trust ring path too long");
  while (n > 1 && out[n - 1] == '/') out[--n] = 0;
  return 0;
}

/* The ring's directory, checked (and with create, made, each missing level 0700). */
static int open_ring(const char *dir_override, int create, char *dir, size_t cap, m64_err *e) {
  int rc = m64_trust_dir(dir_override, dir, cap, e);
  if (rc) return rc;
  struct stat st;
  if (stat(dir, &st) != 0) {
    if (errno != ENOENT) return m64_fail(e, M64_EIO, "cannot stat the trust ring %s: %s", dir, strerror(errno));
    if (!create) return m64_fail(e, M64_ENOTFOUND, "your trust ring %s does not exist (m64c trust add KEY.pub)", dir);
    char p[4096];
    snprintf(p, sizeof p, "%s", dir);
    for (char *s = p + 1;; s++) {
      const int end = *s == 0;
      if (*s == '/' || end) {
        *s = 0;
        if (mkdir(p, 0700) != 0 && errno != EEXIST)
          return m64_fail(e, M64_EIO, "cannot create %s: %s", p, strerror(errno));
        if (end) break;
        *s = '/';
      }
    }
    if (stat(dir, &st) != 0) return m64_fail(e, M64_EIO, "cannot stat %s: %s", dir, strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) return m64_fail(e, M64_EIO, "the trust ring %s is not a directory", dir);
  if (st.st_uid != geteuid() || (st.st_mode & 022))
    return m64_fail(e, M64_EIO, "the trust ring %s must be a directory of yours that no one else can write (chmod 700): "
                                "its keys are not trusted", dir);
  return 0;
}

/* One ring entry: its key, and why it is ignored ("" when it is not). */
typedef struct entry { char name[M64_SIGN_NAME_MAX]; m64_pubkey key; char ignored[160]; int parsed; } entry;

/* Reads NAME.pub in the open directory dfd. */
static void read_entry(int dfd, const char *file, entry *out) {
  memset(out, 0, sizeof *out);
  snprintf(out->name, sizeof out->name, "%.*s", (int)(strlen(file) - 4), file);
  int fd = openat(dfd, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  struct stat st;
  if (fd < 0) {
    snprintf(out->ignored, sizeof out->ignored, "cannot open it: %s", strerror(errno));
    return;
  }
  char buf[1100];
  ssize_t n = -1;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size < (off_t)sizeof buf) n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n < 0) {
    snprintf(out->ignored, sizeof out->ignored, "not a small regular file");
    return;
  }
  buf[n] = 0;
  out->parsed = m64__parse_public(buf, file, &out->key, NULL) == 0;
  if (!out->parsed) snprintf(out->ignored, sizeof out->ignored, "not an m64 public key");
  else if (!m64_sign_valid_name(out->name)) snprintf(out->ignored, sizeof out->ignored, "its name is not a key name");
  else if (st.st_uid != geteuid()) snprintf(out->ignored, sizeof out->ignored, "it belongs to another user");
  else if (st.st_mode & 022) snprintf(out->ignored, sizeof out->ignored, "others can write it (chmod 644)");
}

/* Calls fn for every NAME.pub of the ring, in name order; stops when fn returns nonzero. */
static int each_entry(const char *dir, int (*fn)(const entry *, void *), void *ctx, m64_err *e) {
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return m64_fail(e, M64_EIO, "cannot open the trust ring %s: %s", dir, strerror(errno));
  struct dirent **names = NULL;
  int n = scandir(dir, &names, NULL, alphasort);
  if (n < 0) {
    close(dfd);
    return m64_fail(e, M64_EIO, "cannot list the trust ring %s: %s", dir, strerror(errno));
  }
  int stop = 0;
  for (int i = 0; i < n; i++) {
    const char *f = names[i]->d_name;
    const size_t len = strlen(f);
    if (!stop && f[0] != '.' && len > 4 && len - 4 < M64_SIGN_NAME_MAX && !strcmp(f + len - 4, ".pub")) {
      entry en;
      read_entry(dfd, f, &en);
      stop = fn(&en, ctx);
    }
    free(names[i]);
  }
  free(names);
  close(dfd);
  return 0;
}

typedef struct find_ctx {
  const uint8_t *key;
  char name[M64_SIGN_NAME_MAX];
  char ignored_file[M64_SIGN_NAME_MAX], ignored_why[160];
  int found;
} find_ctx;

static int find_fn(const entry *en, void *p) {
  find_ctx *c = p;
  if (!en->parsed || memcmp(en->key.key, c->key, M64_SIGN_PUBLIC_BYTES) != 0) return 0;
  if (en->ignored[0]) { /* the key is there, but in a file that cannot be trusted: say so */
    snprintf(c->ignored_file, sizeof c->ignored_file, "%s", en->name);
    snprintf(c->ignored_why, sizeof c->ignored_why, "%s", en->ignored);
    return 0;
  }
  snprintf(c->name, sizeof c->name, "%s", en->name);
  c->found = 1;
  return 1;
}

/* Messages complete "a key that is ...", without paths: they end up inside m64run's one
 * line of refusal, which has little room left. */
int m64_trust_find(const char *dir_override, const uint8_t key[M64_SIGN_PUBLIC_BYTES], char *name,
                   size_t cap, m64_err *e) {
  char dir[4096];
  int rc = open_ring(dir_override, 0, dir, sizeof dir, e);
  if (rc == M64_ENOTFOUND) return m64_fail(e, M64_ENOTFOUND, "not in your trust ring");
  if (rc == M64_EIO && e && strstr(e->msg, "no one else can write"))
    return m64_fail(e, rc, "not trusted: others can write your trust ring (chmod 700)");
  if (rc) {
    char why[sizeof e->msg];
    snprintf(why, sizeof why, "%s", e ? e->msg : "");
    return m64_fail(e, rc, "not trusted: %s", why);
  }
  find_ctx c = {.key = key};
  if ((rc = each_entry(dir, find_fn, &c, e))) return rc;
  if (c.found) {
    if (name) snprintf(name, cap, "%s", c.name);
    return 0;
  }
  if (c.ignored_file[0])
    return m64_fail(e, M64_EIO, "in your trust ring only as %s.pub, which is ignored: %s", c.ignored_file, c.ignored_why);
  return m64_fail(e, M64_ENOTFOUND, "not in your trust ring");
}

typedef struct list_ctx { FILE *out; int n; } list_ctx;
static int list_fn(const entry *en, void *p) {
  list_ctx *c = p;
  char fp[M64_SIGN_FINGERPRINT_CHARS];
  if (en->parsed) m64_sign_fingerprint(en->key.key, fp);
  if (en->ignored[0])
    fprintf(c->out, "%-24s %s  IGNORED: %s\n", en->name, en->parsed ? fp : "?", en->ignored);
  else
    fprintf(c->out, "%-24s %s\n", en->name, fp);
  c->n++;
  return 0;
}

int m64_trust_list(const char *dir_override, FILE *out, m64_err *e) {
  char dir[4096];
  int rc = open_ring(dir_override, 0, dir, sizeof dir, e);
  if (rc == M64_ENOTFOUND) {
    fprintf(out, "no trusted keys (%s does not exist)\n", dir);
    return 0;
  }
  if (rc) return rc;
  list_ctx c = {out, 0};
  if ((rc = each_entry(dir, list_fn, &c, e))) return rc;
  if (!c.n) fprintf(out, "no trusted keys (%s is empty)\n", dir);
  return 0;
}

typedef struct same_ctx { const uint8_t *key; const char *name; char same_key[M64_SIGN_NAME_MAX]; int name_taken; } same_ctx;
static int same_fn(const entry *en, void *p) {
  same_ctx *c = p;
  if (en->parsed && !en->ignored[0] && !memcmp(en->key.key, c->key, M64_SIGN_PUBLIC_BYTES) && !c->same_key[0])
    snprintf(c->same_key, sizeof c->same_key, "%s", en->name);
  if (!strcmp(en->name, c->name)) c->name_taken = 1;
  return 0;
}

int m64_trust_add(const char *dir_override, const char *pubfile, const char *name, char *added_as,
                  size_t cap, int *already, m64_err *e) {
  m64_pubkey k;
  *already = 0;
  int rc = m64_sign_read_public(pubfile, &k, e);
  if (rc) return rc;
  char nm[M64_SIGN_NAME_MAX] = "";
  if (name) {
    if (!m64_sign_valid_name(name))
      return m64_fail(e, M64_EFORMAT, "key name '%.60s' must be 1..%u of [A-Za-z0-9._@+-]", name, M64_SIGN_NAME_MAX - 1);
    snprintf(nm, sizeof nm, "%s", name);
  } else if (k.name[0]) {
    snprintf(nm, sizeof nm, "%s", k.name);
  } else { /* the file's base name without .pub */
    const char *b = strrchr(pubfile, '/');
    b = b ? b + 1 : pubfile;
    size_t len = strlen(b);
    if (len > 4 && !strcmp(b + len - 4, ".pub")) len -= 4;
    snprintf(nm, sizeof nm, "%.*s", (int)(len < sizeof nm - 1 ? len : sizeof nm - 1), b);
    if (!m64_sign_valid_name(nm)) return m64_fail(e, M64_EFORMAT, "%s names no key name: give --name NAME", pubfile);
  }
  char dir[4096];
  if ((rc = open_ring(dir_override, 1, dir, sizeof dir, e))) return rc;
  same_ctx c = {.key = k.key, .name = nm};
  if ((rc = each_entry(dir, same_fn, &c, e))) return rc;
  if (c.same_key[0]) {
    *already = 1;
    snprintf(added_as, cap, "%s", c.same_key);
    return 0;
  }
  if (c.name_taken)
    return m64_fail(e, M64_EIO, "another key is already trusted as '%s' (%s/%s.pub): remove it first, or give --name NAME",
                    nm, dir, nm);
  char path[4200], tmp[4300], line[200];
  snprintf(path, sizeof path, "%s/%s.pub", dir, nm);
  snprintf(tmp, sizeof tmp, "%s/.%s.pub.%ld.tmp", dir, nm, (long)getpid());
  m64__public_line(&k, nm, line, sizeof line);
  unlink(tmp);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return m64_fail(e, M64_EIO, "cannot create %s: %s", tmp, strerror(errno));
  int ok = write(fd, line, strlen(line)) == (ssize_t)strlen(line) && fsync(fd) == 0;
  if (close(fd) != 0) ok = 0;
  /* link, not rename: a NAME.pub that appeared meanwhile is never replaced */
  if (ok && link(tmp, path) != 0) {
    const int err = errno;
    unlink(tmp);
    return m64_fail(e, M64_EIO, "cannot add %s: %s", path, strerror(err));
  }
  unlink(tmp);
  if (!ok) return m64_fail(e, M64_EIO, "cannot write %s", tmp);
  snprintf(added_as, cap, "%s", nm);
  return 0;
}

typedef struct rm_ctx { const char *what; const uint8_t *key; char match[M64_SIGN_NAME_MAX]; int n; } rm_ctx;
static int rm_fn(const entry *en, void *p) {
  rm_ctx *c = p;
  char fp[M64_SIGN_FINGERPRINT_CHARS] = "";
  if (en->parsed) m64_sign_fingerprint(en->key.key, fp);
  const int hit = c->key ? en->parsed && !memcmp(en->key.key, c->key, M64_SIGN_PUBLIC_BYTES)
                         : !strcmp(en->name, c->what) || (fp[0] && (!strcmp(fp, c->what) || !strcmp(fp + 8, c->what)));
  if (hit) {
    if (!c->n) snprintf(c->match, sizeof c->match, "%s", en->name);
    c->n++;
  }
  return 0;
}

int m64_trust_remove(const char *dir_override, const char *what, char *removed, size_t cap, m64_err *e) {
  char dir[4096];
  int rc = open_ring(dir_override, 0, dir, sizeof dir, e);
  if (rc == M64_ENOTFOUND) return m64_fail(e, M64_ENOTFOUND, "'%s' is not in your trust ring (%s does not exist)", what, dir);
  if (rc) return rc;
  m64_pubkey k;
  rm_ctx c = {.what = what};
  struct stat st;
  /* a .pub file given by path: matched by its key, whatever it is called in the ring */
  if (strchr(what, '/') || (stat(what, &st) == 0 && S_ISREG(st.st_mode))) {
    if ((rc = m64_sign_read_public(what, &k, e))) return rc;
    c.key = k.key;
  }
  if ((rc = each_entry(dir, rm_fn, &c, e))) return rc;
  if (!c.n) return m64_fail(e, M64_ENOTFOUND, "'%s' is not in your trust ring (%s; see m64c trust list)", what, dir);
  if (c.n > 1 && !c.key)
    return m64_fail(e, M64_EFORMAT, "'%s' matches %d keys of your trust ring: give its name", what, c.n);
  char path[4200];
  snprintf(path, sizeof path, "%s/%s.pub", dir, c.match);
  if (unlink(path) != 0) return m64_fail(e, M64_EIO, "cannot remove %s: %s", path, strerror(errno));
  snprintf(removed, cap, "%s", c.match);
  return 0;
}
