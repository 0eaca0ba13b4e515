/*
 * m64.h — libm64, the library behind m64run: run a .m64 bundle from your own program.
 *
 *   #include <m64.h>          cc prog.c $(pkg-config --cflags --libs m64)
 *
 * The API itself is m64_runtime.h (sessions: open a bundle, tokenize, eval, sample,
 * pieces, stats; chat formats) over m64_formats.h (errors: every call returns 0 or a
 * negative M64_E* code with one line in an m64_err). examples/stream.c is a complete
 * program in about twenty lines. Version: m64_version.h (M64_VERSION_STRING).
 *
 * Embedding, what a host program must know:
 *
 *  Sessions.  Any number of sessions may be open in one process, on one bundle or on
 *    several; each has its own workspace (a wasm32 linear memory bounded by its own
 *    options.workspace_bytes: nothing about one session's bound is process-wide), its
 *    own threads and its own KV cache. One session is used by one thread at a time;
 *    distinct sessions may run on distinct threads at once.
 *
 *  Signals.  A workspace is an 8 GiB reservation whose guard pages turn a wasm
 *    out-of-bounds access into a trap (M64_ETRAP) instead of a crash. The first session
 *    installs a SIGSEGV and a SIGBUS handler (SA_SIGINFO | SA_ONSTACK) once per process.
 *    It takes only faults at addresses inside a live workspace reservation while that
 *    thread is inside a module call; every other fault is passed to the handler that
 *    was installed before it (a crash reporter, a language runtime), or, if there was
 *    none, gets the default action (the process dies with the signal, core included).
 *    So: install your own SIGSEGV/SIGBUS handlers before the first m64_session_open,
 *    or, if you install them later, chain to the previous handler (sigaction's oldact)
 *    for faults you do not own. The library installs no other handler: SIGINT, SIGTERM,
 *    SIGPIPE and the rest stay yours (m64run's Ctrl-C handling is in m64run, not here).
 *    Each thread that calls into a session gets a 64 KiB alternate signal stack, unless
 *    it already has one (yours is kept); it is freed when the thread exits.
 *
 *  Linking.  With the shared libm64 nothing else is needed. A bundle's native code is a
 *    shared object that binds to the library's wasm_rt_* symbols at load time, so a
 *    program linked with the static libm64.a must export its symbols: link with
 *    -rdynamic (pkg-config --static --libs m64 adds it).
 *
 *  Trust.  By default a session loads only native code compiled on this machine for this
 *    user (m64c build / m64c aot) or signed by a key in the user's trust ring; see
 *    m64_session_options.trust_bundle_native and SECURITY.md.
 *
 *  Verification.  options.verify_layers checks each layer's SHA-256 at its first use;
 *    options.verify_stamps lets the per-user verified-bundle stamps
 *    (~/.cache/m64/verified) spare those checks for a file hashed before, as m64run does.
 */
#ifndef M64_H
#define M64_H

#include "m64_version.h"
#include "m64_formats.h"
#include "m64_runtime.h"

#endif
