/*
 * os.c — see os.h. Linux/POSIX.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mremap, MAP_NORESERVE, MADV_POPULATE_READ, memfd_create, mkostemp, dlinfo */
#endif
#include "os.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14; older kernels answer EINVAL */
#endif

uint64_t m64_os_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint32_t m64_os_cores(void) {
  const long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (uint32_t)n : 0;
}

uint64_t m64_os_page_size(void) {
  const long v = sysconf(_SC_PAGESIZE);
  return v > 0 ? (uint64_t)v : 4096;
}

int m64_os_thread_start(m64_os_thread *t, void *(*fn)(void *), void *arg) {
  return pthread_create(t, NULL, fn, arg) == 0 ? 0 : -1;
}
void m64_os_thread_join(m64_os_thread t) { pthread_join(t, NULL); }

void *m64_os_reserve(size_t len) {
  void *p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}
void *m64_os_alloc(size_t len) {
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}
int m64_os_commit(void *p, size_t len) { return mprotect(p, len, PROT_READ | PROT_WRITE); }
void *m64_os_grow(void *p, size_t old_len, size_t new_len) {
  void *q = mremap(p, old_len, new_len, MREMAP_MAYMOVE);
  return q == MAP_FAILED ? NULL : q;
}
void m64_os_release(void *p, size_t len) { munmap(p, len); }

int m64_os_map_file_at(void *to, size_t len, int fd, uint64_t off, int huge) {
  void *at = mmap(to, len, PROT_READ, MAP_PRIVATE | MAP_FIXED | (huge ? 0 : MAP_POPULATE), fd, (off_t)off);
  if (at != MAP_FAILED && huge) {
    (void)madvise(to, len, MADV_HUGEPAGE); /* a hint: without THP it changes nothing */
    if (madvise(to, len, MADV_POPULATE_READ) != 0 && (errno == EINVAL || errno == ENOSYS))
      at = mmap(to, len, PROT_READ, MAP_PRIVATE | MAP_FIXED | MAP_POPULATE, fd, (off_t)off);
  }
  return at == MAP_FAILED ? -1 : 0;
}

int m64_os_guard_at(void *to, size_t len) {
  return mmap(to, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED ? -1 : 0;
}

void m64_os_discard(const void *p, size_t len) {
  const uintptr_t lo = (uintptr_t)p & ~(uintptr_t)4095, hi = ((uintptr_t)p + len) & ~(uintptr_t)4095;
  if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

int m64_os_anon_at(void *to, size_t len) {
  void *at = mmap(to, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  return at == MAP_FAILED ? -1 : 0;
}

/* ---- loading code */
int m64_os_memfd(const char *name) { return memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING); }
void m64_os_seal(int fd) { (void)fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL); }
int m64_os_tempfile(char *path_template) { return mkostemp(path_template, O_CLOEXEC); }
void m64_os_fd_path(int fd, char *buf, size_t cap) { snprintf(buf, cap, "/proc/self/fd/%d", fd); }

void *m64_os_lib_open(const char *path) { return dlopen(path, RTLD_NOW | RTLD_LOCAL); }
int m64_os_lib_loaded(const char *path) {
  void *old = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
  if (old == NULL) return 0;
  dlclose(old); /* drops the reference the probe took */
  return 1;
}
const char *m64_os_lib_error(void) { return dlerror(); }
void *m64_os_lib_sym(void *lib, const char *name) { return dlsym(lib, name); }
int m64_os_lib_base(void *lib, uintptr_t *base) {
  struct link_map *lm = NULL;
  if (dlinfo(lib, RTLD_DI_LINKMAP, &lm) != 0 || lm == NULL) return -1;
  *base = (uintptr_t)lm->l_addr;
  return 0;
}
void m64_os_lib_close(void *lib) { dlclose(lib); }

/* ---- signals */
static struct sigaction g_old_segv, g_old_bus;

int m64_os_catch_faults(void (*handler)(int, siginfo_t *, void *)) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = handler;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  return sigaction(SIGSEGV, &sa, &g_old_segv) != 0 || sigaction(SIGBUS, &sa, &g_old_bus) != 0 ? -1 : 0;
}

void m64_os_unblock_faults(void) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGSEGV);
  sigaddset(&set, SIGBUS);
  pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

void m64_os_pass_fault(int sig, siginfo_t *si, void *uctx) {
  struct sigaction *old = sig == SIGSEGV ? &g_old_segv : &g_old_bus;
  if ((old->sa_flags & SA_SIGINFO) && old->sa_sigaction != NULL) {
    old->sa_sigaction(sig, si, uctx);
    return;
  }
  if (!(old->sa_flags & SA_SIGINFO) && old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
    old->sa_handler(sig);
    return;
  }
  /* Default action: reinstall it; returning re-executes the faulting access, which now
   * kills the process with the usual signal (core dump included). A signal sent by
   * kill/raise is not re-triggered by returning, so re-raise it (it stays blocked until
   * the handler returns, then gets the default action). */
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(sig, &dfl, NULL);
  if (si->si_code <= 0) raise(sig);
}

stack_t *m64_os_altstack_ensure(void) {
  stack_t cur;
  if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE)) return NULL; /* someone else's; keep it */
  size_t size = 64 * 1024;
#ifdef _SC_SIGSTKSZ
  const long min = sysconf(_SC_SIGSTKSZ);
  if (min > 0) size += (size_t)min;
#endif
  void *sp = m64_os_alloc(size);
  stack_t *mine = malloc(sizeof *mine);
  if (sp == NULL || mine == NULL) {
    fprintf(stderr, "m64: cannot allocate a signal stack\n");
    abort();
  }
  memset(mine, 0, sizeof *mine);
  mine->ss_sp = sp;
  mine->ss_size = size;
  if (sigaltstack(mine, NULL) != 0) {
    fprintf(stderr, "m64: sigaltstack failed: %s\n", strerror(errno));
    abort();
  }
  return mine;
}

void m64_os_altstack_free(void *p) {
  stack_t ss;
  memset(&ss, 0, sizeof ss);
  ss.ss_flags = SS_DISABLE;
  sigaltstack(&ss, NULL);
  stack_t *mine = p;
  m64_os_release(mine->ss_sp, mine->ss_size);
  free(mine);
}
