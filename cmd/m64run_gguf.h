/* m64run_gguf.h — what m64run does with the file it is given (m64run_gguf.c): a bundle runs
 * as it is; a GGUF model is compiled once into the bundle cache (m64_compiler.h) and the
 * cached bundle runs; anything else is refused, naming what it is. */
#ifndef M64RUN_GGUF_H
#define M64RUN_GGUF_H

#include <stddef.h>

#include "m64_formats.h"

/* Puts the bundle to open for model into bundle (cap bytes). With no_cache, a GGUF is
 * compiled into a temporary bundle instead and *temp is set: the caller removes it with
 * m64run_temp_remove once the session holds it open. Progress of a build goes to stderr. */
int m64run_resolve_model(const char *model, int no_cache, int verbose, char *bundle, size_t cap, int *temp,
                         m64_err *e);
/* Removes a temporary bundle made by m64run_resolve_model (and its directory). */
void m64run_temp_remove(const char *bundle);

#endif
