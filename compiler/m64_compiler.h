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
 * marked as compiled here by this user (runtime/native/local_mark.h; the key is created
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

/* Checks every section's and every layer's SHA-256 (m64run checks layers lazily, at first
 * use); the error names the section or layer that does not match. */
int m64c_verify(const char *bundle, FILE *out, m64_err *e);

/* The native target this host would get from AOT compilation, e.g. "x86_64-v3-linux". */
const char *m64c_host_target(void);

/* Installs SIGINT/SIGTERM handlers that remove in-progress output before exiting. */
void m64c_install_signal_cleanup(void);

#ifdef __cplusplus
}
#endif
#endif
