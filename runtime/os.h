/*
 * os.h — the runtime's platform boundary: every mmap, thread, clock and signal call the
 * runtime makes goes through here (as WAMR's os_* layer), so a port to another system
 * starts in one file and the platform surface is visible at a glance. POSIX (Linux)
 * today; the functions are thin on purpose: policy stays with the callers.
 */
#ifndef M64_OS_H
#define M64_OS_H

#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- time and CPUs */
uint64_t m64_os_now_ns(void);    /* monotonic */
uint32_t m64_os_cores(void);     /* online CPUs; 0 if unknown */
uint64_t m64_os_page_size(void); /* the OS page (4096 if unknown) */

/* ---- threads */
typedef pthread_t m64_os_thread;
int m64_os_thread_start(m64_os_thread *t, void *(*fn)(void *), void *arg); /* 0 or -1 */
void m64_os_thread_join(m64_os_thread t);

/* ---- memory */
/* Address space only (no access, no commit charge); NULL on failure. */
void *m64_os_reserve(size_t len);
/* Read-write anonymous memory; NULL on failure. */
void *m64_os_alloc(size_t len);
/* Makes [p, p+len) of a reservation read-write; 0 or -1 (errno set). */
int m64_os_commit(void *p, size_t len);
/* Grows an m64_os_alloc block, perhaps moving it; NULL on failure (the old block stays). */
void *m64_os_grow(void *p, size_t old_len, size_t new_len);
void m64_os_release(void *p, size_t len);
/* Maps file bytes [off, off+len) read-only and private at exactly `to`, page tables filled
 * now rather than by faults later; huge: ask for 2 MiB folios (madvise), populate after. */
int m64_os_map_file_at(void *to, size_t len, int fd, uint64_t off, int huge);
/* Replaces [to, to+len) by an inaccessible anonymous range (a guard), keeping the address. */
int m64_os_guard_at(void *to, size_t len);
/* Drops this process's pages from the one holding p up to the last whole page before
 * p+len; pages of a file stay in the page cache. */
void m64_os_discard(const void *p, size_t len);
/* Replaces [to, to + len) with fresh zeroed read-write memory. */
int m64_os_anon_at(void *to, size_t len);

/* ---- loading code (native/native.c: the module's shared object, from bytes) */
/* An anonymous file in memory that can be sealed, so the code runs without touching disk;
 * -1 where the system has none (the caller falls back to a temp file). */
int m64_os_memfd(const char *name);
/* Makes a memfd immutable (no write, grow or shrink, no more seals): best effort. */
void m64_os_seal(int fd);
/* Creates and opens (close-on-exec) a new file named by template, whose XXXXXX it
 * replaces; -1 with errno. */
int m64_os_tempfile(char *path_template);
/* The path under which the loader, which opens objects by path, finds open file fd. */
void m64_os_fd_path(int fd, char *buf, size_t cap);
/* Loads the object at path, symbols bound now and kept local; NULL: m64_os_lib_error(). */
void *m64_os_lib_open(const char *path);
/* 1 if an object of this path is loaded already (the loader matches objects by path before
 * anything else, so a new object under that path would be the old one). */
int m64_os_lib_loaded(const char *path);
const char *m64_os_lib_error(void); /* the last m64_os_lib_open's reason, or NULL */
void *m64_os_lib_sym(void *lib, const char *name);
/* The address its ELF virtual addresses are relative to; 0 or -1. */
int m64_os_lib_base(void *lib, uintptr_t *base);
void m64_os_lib_close(void *lib);

/* ---- signals */
/* Installs handler for SIGSEGV and SIGBUS on the alternate stack, keeping the previous
 * actions for m64_os_pass_fault; 0 or -1. */
int m64_os_catch_faults(void (*handler)(int, siginfo_t *, void *));
/* Unblocks SIGSEGV and SIGBUS for the calling thread: after a jump out of the handler. */
void m64_os_unblock_faults(void);
/* Inside the handler: a fault that is not ours goes to whoever was installed before,
 * or gets the default action (a real crash stays a crash). Async-signal-safe. */
void m64_os_pass_fault(int sig, siginfo_t *si, void *uctx);
/* An alternate signal stack for the calling thread unless it has one; freed by
 * m64_os_altstack_free (a pthread key destructor). Returns the stack to free, or NULL
 * when the thread's own one is kept; aborts when none can be made. */
stack_t *m64_os_altstack_ensure(void);
void m64_os_altstack_free(void *stack);

#ifdef __cplusplus
}
#endif

#endif /* M64_OS_H */
