/*
 * cleanup.c — what m64c removes when SIGINT, SIGTERM or SIGHUP stops it halfway: the
 * bundle writer's temp file and the work directory of the module being compiled, so a
 * stopped build leaves nothing behind (the output path is only ever renamed into).
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "compiler_internal.h"

/* ---- cleanup on SIGINT/SIGTERM: only async-signal-safe calls ---- */
static volatile sig_atomic_t g_have_temp;
static char g_temp_bundle[1024];
static char g_temp_dir[600];

static void on_signal(int sig) {
  if (g_have_temp) {
    unlink(g_temp_bundle);
    if (g_temp_dir[0]) {
      const char *const *files = M64C_WORK_FILES;
      char p[700];
      for (size_t i = 0; i < M64C_N_WORK_FILES; i++) {
        size_t n = 0;
        for (const char *s = g_temp_dir; *s && n < sizeof p - 32; s++) p[n++] = *s;
        p[n++] = '/';
        for (const char *s = files[i]; *s; s++) p[n++] = *s;
        p[n] = 0;
        unlink(p);
      }
      rmdir(g_temp_dir);
    }
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

void m64c_install_signal_cleanup(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
}

void m64c_track_temp(const m64_bundle_writer *bw, const m64c_workdir *wd) {
  if (!bw && !wd) {
    g_have_temp = 0;
    return;
  }
  g_have_temp = 0;
  snprintf(g_temp_bundle, sizeof g_temp_bundle, "%s", bw ? m64_bw_temp_path(bw) : "");
  snprintf(g_temp_dir, sizeof g_temp_dir, "%s", wd && !wd->keep ? wd->path : "");
  g_have_temp = 1;
}
void m64c_track_temp_file(const char *path) {
  g_have_temp = 0;
  if (!path) return;
  snprintf(g_temp_bundle, sizeof g_temp_bundle, "%s", path);
  g_temp_dir[0] = 0;
  g_have_temp = 1;
}
