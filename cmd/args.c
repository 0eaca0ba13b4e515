/* args.c — strict numbers, output checks, seeds and the version line (args.h). */
#include "args.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "m64_formats.h"
#include "m64_version.h"

int m64_arg_long(const char *prog, const char *flag, const char *text, long min, long max, long *out) {
  char *end;
  errno = 0;
  const long v = strtol(text, &end, 10);
  if (end == text || *end || errno || v < min || v > max) {
    fprintf(stderr, "%s: %s takes a whole number in %ld..%ld, not '%s'\n", prog, flag, min, max, text);
    return -1;
  }
  *out = v;
  return 0;
}

int m64_arg_float(const char *prog, const char *flag, const char *text, double min, double max, float *out) {
  char *end;
  errno = 0;
  const double v = strtod(text, &end);
  /* strtod also reads "nan", "inf" and hex floats: only finite values in range pass */
  if (end == text || *end || errno || !isfinite(v) || v < min || v > max) {
    fprintf(stderr, "%s: %s takes a number in %g..%g, not '%s'\n", prog, flag, min, max, text);
    return -1;
  }
  *out = (float)v;
  return 0;
}

int m64_arg_size(const char *prog, const char *flag, const char *text, uint64_t min, uint64_t *out) {
  const uint64_t v = m64_parse_size(text);
  if (!v || v < min) {
    fprintf(stderr, "%s: %s takes a size of at least %llu bytes such as 512M or 4G, not '%s'\n", prog, flag,
            (unsigned long long)min, text);
    return -1;
  }
  *out = v;
  return 0;
}

int m64_arg_seed(const char *prog, const char *flag, const char *text, uint64_t *out, int *random_seed) {
  if (!strcmp(text, "-1")) {
    *random_seed = 1;
    return 0;
  }
  char *end;
  errno = 0;
  const unsigned long long v = strtoull(text, &end, 10);
  /* strtoull accepts a sign ("-5" wraps around): digits only */
  if (text[0] < '0' || text[0] > '9' || *end || errno) {
    fprintf(stderr, "%s: %s takes a whole number in 0..%llu, or -1 for a random seed, not '%s'\n", prog, flag,
            ULLONG_MAX, text);
    return -1;
  }
  *out = v;
  *random_seed = 0;
  return 0;
}

int m64_random_seed(uint64_t *out) {
  uint64_t v;
  size_t got = 0;
  while (got < sizeof v) {
    const ssize_t n = getrandom((char *)&v + got, sizeof v - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    got += (size_t)n;
  }
  *out = v;
  return 0;
}

int m64_check_output(const char *prog, const char *path, const char *input) {
  struct stat out_st, in_st;
  if (stat(path, &out_st) == 0) {
    if (S_ISDIR(out_st.st_mode)) {
      fprintf(stderr, "%s: error: output %s is a directory; give a file name\n", prog, path);
      return -1;
    }
    if (input && stat(input, &in_st) == 0 && in_st.st_dev == out_st.st_dev && in_st.st_ino == out_st.st_ino) {
      fprintf(stderr, "%s: error: output %s is the input file %s: it would be replaced; give another -o\n", prog,
              path, input);
      return -1;
    }
  }
  /* the directory the file will be created in (the writer renames a temp file there) */
  char dir[4096];
  const char *slash = strrchr(path, '/');
  if (!slash) snprintf(dir, sizeof dir, ".");
  else if (slash == path) snprintf(dir, sizeof dir, "/");
  else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
  struct stat dst;
  if (stat(dir, &dst) != 0 || !S_ISDIR(dst.st_mode)) {
    fprintf(stderr, "%s: error: cannot write %s: directory %s does not exist\n", prog, path, dir);
    return -1;
  }
  if (access(dir, W_OK | X_OK) != 0) {
    fprintf(stderr, "%s: error: cannot write %s: directory %s is not writable (%s)\n", prog, path, dir,
            strerror(errno));
    return -1;
  }
  return 0;
}

static int hex_digit(char c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

void m64_unescape(char *s, size_t *len) {
  size_t r = 0, w = 0, n = *len;
  while (r < n) {
    if (s[r] != '\\' || r + 1 >= n) {
      s[w++] = s[r++];
      continue;
    }
    const char c = s[r + 1];
    const char *simple = strchr("nrtabfv\\'\"?", c);
    if (c && simple) {
      static const char from[] = "nrtabfv\\'\"?", to[] = "\n\r\t\a\b\f\v\\'\"?";
      s[w++] = to[strchr(from, c) - from];
      r += 2;
    } else if (c == 'x' && r + 2 < n && hex_digit(s[r + 2]) >= 0) {
      int v = hex_digit(s[r + 2]);
      r += 3;
      if (r < n && hex_digit(s[r]) >= 0) v = v * 16 + hex_digit(s[r++]);
      s[w++] = (char)v;
    } else if (c >= '0' && c <= '7') {
      int v = 0, k = 0;
      r++;
      while (k < 3 && r < n && s[r] >= '0' && s[r] <= '7' && v * 8 + (s[r] - '0') <= 0377) v = v * 8 + (s[r++] - '0'), k++;
      s[w++] = (char)v;
    } else {
      s[w++] = s[r++]; /* unknown escape: the backslash stays, the next byte follows as is */
    }
  }
  s[w] = 0;
  *len = w;
}

void m64_print_version(const char *prog) {
  printf("%s %s (bundle format %u, host target %s)\n", prog, M64_VERSION_STRING, M64_BUNDLE_VERSION,
         m64_host_target());
}
