/* error.c — the single place error messages are formatted. */
#include <stdarg.h>
#include <stdio.h>

#include "m64_formats.h"

int m64_fail(m64_err *e, int code, const char *fmt, ...) {
  if (e) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    if (n < 0) snprintf(e->msg, sizeof e->msg, "error %d (message could not be formatted)", code);
  }
  return code;
}
