/* progress.c — the progress bar of m64c's long writes and hashes (compiler_internal.h). */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "compiler_internal.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void m64c_bar_init(m64c_bar *b, int enabled) {
  memset(b, 0, sizeof *b);
  b->mode = !enabled ? 0 : isatty(STDERR_FILENO) ? 1 : 2;
}

static void line_end(m64c_bar *b) {
  if (b->mode == 1 && b->open) fputc('\n', stderr);
  b->open = 0;
}

static void draw(m64c_bar *b, uint64_t done, uint64_t total) {
  const double t = now_s() - b->t0;
  const double mib = done / 1048576.0, rate = t > 0 ? mib / t : 0;
  const double frac = total ? (double)done / total : 1.0;
  if (b->mode == 1) {
    char bar[31];
    const int fill = (int)(frac * 30);
    for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '-';
    bar[30] = 0;
    fprintf(stderr, "\rm64c: %-9s [%s] %3.0f%%  %.1f / %.1f MiB  %.1f MiB/s   ", b->what, bar, 100 * frac, mib,
            total / 1048576.0, rate);
    b->open = 1;
  } else {
    fprintf(stderr, "m64c: %s %3.0f%% (%.1f of %.1f MiB, %.1f MiB/s)\n", b->what, 100 * frac, mib,
            total / 1048576.0, rate);
  }
  fflush(stderr);
}

void m64c_bar_cb(void *ctx, const char *what, uint64_t done, uint64_t total) {
  m64c_bar *b = ctx;
  if (!b || !b->mode) return;
  if (strcmp(b->what, what)) { /* a new stage: a new line, a new clock */
    line_end(b);
    snprintf(b->what, sizeof b->what, "%s", what);
    b->t0 = b->last = now_s(); /* the first drawing after 0.1 s: a rate worth showing */
    b->step = 0;
  }
  if (b->mode == 1) { /* a tty: redrawn ten times a second, and at the end */
    const double t = now_s();
    if (done < total && t - b->last < 0.1) return;
    b->last = t;
    draw(b, done, total);
  } else if (total >= M64C_BAR_PLAIN_MIN) { /* a pipe or a log: a line per quarter, large work only */
    const int q = total ? (int)(4 * (double)done / total) : 4;
    if (q > b->step) {
      b->step = q;
      draw(b, done, total);
    }
  }
}

void m64c_bar_done(m64c_bar *b) { line_end(b); }
