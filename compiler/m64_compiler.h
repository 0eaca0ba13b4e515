/*
 * m64_compiler.h — the m64c library: GGUF model -> .m64 bundle.
 *
 * The pipeline (m64c_build, build.c) is a few passes, each a file:
 *   plan.c      read the GGUF, check architecture/types/shapes, lay out the image
 *   codegen.c   emit model.c: shapes as constants, kernels per (type, shape), weight tables
 *   toolchain.c clang-19 -> wasm32+SIMD128 module; wasm2c + clang -> native code (AOT)
 *   build.c     write the bundle (sections, weights per layer, hashes), atomically
 *   info.c      describe a bundle
 *   sign.c      a publisher's signature over a finished bundle
 * Every function returns 0 or a negative M64_E* code with a message in *e.
 */
#ifndef M64_COMPILER_H
#define M64_COMPILER_H

#include <stdint.h>
#include <stdio.h>

#include "m64_formats.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct m64c_options {
  const char *input;       /* GGUF path */
  const char *output;      /* .m64 path */
  int no_aot;              /* write a wasm-only bundle */
  int no_relaxed;          /* leave out "module.relaxed", the browsers' relaxed-SIMD module */
  const char *target;      /* native code targets, comma-separated, one NATIVE section each;
                              NULL = this host's (m64c_host_target). E.g.
                              "x86_64-v4vnni-linux,x86_64-v3-linux,aarch64-linux": m64run
                              picks the best one its CPU runs */
  int verbose;             /* print each tool invocation */
  int progress;            /* progress lines on stderr */
  const char *keep_dir;    /* if set, keep the generated sources and artifacts here */
  uint64_t segment_max;    /* image segment cap in bytes; 0 = M64_SEGMENT_MAX (16 GiB) */
  const m64_compress_options *compress; /* non-NULL: write a compressed bundle (zstd) */
} m64c_options;

/* GGUF -> bundle. The output appears only when everything succeeded. Native code is
 * marked as compiled here by this user (formats/sign/local_mark.h; the key is created
 * if there is none yet), so m64run runs it with no extra step. */
int m64c_build(const m64c_options *o, m64_err *e);

/* Replaces all native code in an existing bundle with this host's, compiled from the
 * bundle's own wasm module and marked as compiled here by this user. output NULL =
 * rewrite in place (atomically). */
int m64c_aot(const char *bundle, const char *output, int verbose, m64_err *e);

/* Rewrites a bundle compressed with z (every section and layer, zstd), or, with z NULL,
 * uncompressed (mmap-friendly). Layout and contents are kept: decompressing what was
 * compressed gives the original file back. output NULL = in place (atomically). */
int m64c_recode(const char *bundle, const char *output, const m64_compress_options *z, int progress,
                m64_err *e);

/* Signs a bundle with a publisher's secret key file (formats/sign/m64_sign.h): every
 * section and layer hash is checked first, an existing signature is replaced. output NULL
 * = in place (atomically). Users who trust the key run the bundle's native code as is. */
int m64c_sign(const char *bundle, const char *output, const char *keyfile, int progress, m64_err *e);

/* Human-readable description: header, sections, segments, layers, tensors, module
 * exports, native targets (and whether each carries this user's mark). */
int m64c_info(const char *bundle, FILE *out, m64_err *e);
/* The same as one JSON object (m64c info --json): metadata, sections, layers with their
 * tensors, and per native target whether m64run loads it by default. */
int m64c_info_json(const char *bundle, FILE *out, m64_err *e);

/* Checks every section's and every layer's SHA-256 (m64run checks layers lazily, at first
 * use); the error names the section or layer that does not match. */
int m64c_verify(const char *bundle, FILE *out, m64_err *e);

/* Checks that m64c_build would compile this GGUF (architecture, hyperparameters, every
 * tensor's shape and type, the tokenizer) without writing anything; the error is the one
 * m64c_build gives. */
int m64c_check_gguf(const char *gguf, m64_err *e);

/* What `m64c build` would make of a GGUF (info_gguf.c): architecture, parameter count,
 * tensor types with counts and bytes, tokenizer and pre-tokenizer, chat template, context
 * length, and a verdict naming each unsupported architecture, tensor type or tokenizer.
 * json: one JSON object instead of text. Returns 0 when the file was described (supported
 * or not); *supported (may be NULL) says which. */
int m64c_info_gguf(const char *gguf, FILE *out, int json, int *supported, m64_err *e);

/* ---- The bundle cache (cache.c): `m64run MODEL.gguf` ----
 * A per-user directory of bundles compiled from GGUF files: $M64_CACHE_DIR, else
 * $XDG_CACHE_HOME/m64/bundles, else ~/.cache/m64/bundles (0700). An entry's key covers the
 * GGUF's content (SHA-256, remembered with the file's size, inode and times so that an
 * unchanged file is not hashed again), m64c's version and the native target. */
typedef struct m64c_cache_options {
  const char *dir; /* NULL: the default above */
  int progress;    /* the build's progress lines on stderr */
  int verbose;     /* the key, and each tool invocation */
} m64c_cache_options;

/* Puts the path of gguf's bundle in the cache into bundle (cap bytes), compiling it first
 * when there is none: a GGUF m64 cannot compile fails before anything is written to the
 * cache, with m64c_build's message. Concurrent calls for one model compile it once (a
 * lock per entry; the others wait, then use it). An entry whose layers are not known to be
 * intact (no verified stamp for the file as it is) is checked in full, and compiled again
 * when damaged. *built = 1 when this call compiled the model. */
int m64c_cache_get(const char *gguf, const m64c_cache_options *o, char *bundle, size_t cap, int *built,
                   m64_err *e);
/* The cache directory for dir (NULL: the default) into out. */
int m64c_cache_dir(const char *dir, char *out, size_t cap, m64_err *e);
/* One line per entry: key, size, last use, source path (most recently used first). */
int m64c_cache_list(const char *dir, FILE *out, m64_err *e);
/* Removes the entry key (the whole key or a unique prefix of at least 4 digits), or with
 * key NULL every entry and the remembered GGUF hashes. */
int m64c_cache_remove(const char *dir, const char *key, FILE *out, m64_err *e);

/* m64c's version: the release plus a digest of the sources that decide what it writes. */
const char *m64c_version(void);

/* The native target this host would get from AOT compilation, e.g. "x86_64-v3-linux". */
const char *m64c_host_target(void);

/* Installs SIGINT/SIGTERM handlers that remove in-progress output before exiting. */
void m64c_install_signal_cleanup(void);

#ifdef __cplusplus
}
#endif
#endif
