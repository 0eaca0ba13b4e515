/* size.c — human sizes ("512M", "4G") for the command lines of m64c and m64run. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "m64_formats.h"

uint64_t m64_parse_size(const char *s) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || errno || !(v >= 0)) return 0; /* also rejects NaN */
  double mult = 1;
  switch (*end) {
    case 'k': case 'K': mult = 1024.0; end++; break;
    case 'm': case 'M': mult = 1048576.0; end++; break;
    case 'g': case 'G': mult = 1073741824.0; end++; break;
    case 't': case 'T': mult = 1099511627776.0; end++; break;
    default: break;
  }
  if (end[0] == 'i' && end[1] == 'B') end += 2;
  else if (end[0] == 'B') end++;
  if (*end) return 0;
  double bytes = v * mult;
  return bytes < 1.8e19 ? (uint64_t)bytes : 0; /* also rejects infinity */
}

const char *m64_format_size(uint64_t bytes, char *out, size_t out_size) {
  static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
  if (bytes < 1024) {
    snprintf(out, out_size, "%llu byte%s", (unsigned long long)bytes, bytes == 1 ? "" : "s");
    return out;
  }
  double v = bytes / 1024.0;
  size_t u = 0;
  while (v >= 1024 && u + 1 < sizeof units / sizeof *units) v /= 1024, u++;
  snprintf(out, out_size, "%.1f %s", v, units[u]);
  return out;
}
