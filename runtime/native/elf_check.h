/*
 * elf_check.h — a structural check of a native-code shared object before dlopen.
 *
 * The dynamic loader trusts the object it maps: a program header past the end of a
 * truncated file is mapped anyway and faults (SIGBUS) when touched, and a dynamic-section
 * address, symbol index or relocation target outside the mapped image is dereferenced
 * (SIGSEGV) while the object is loaded. So the bytes are checked first, and a corrupt or
 * truncated object is an error naming the field, never a crash in the loader.
 *
 * This does not make hostile code safe: an object that passes is still code that runs with
 * the user's rights (SECURITY.md). It only turns damaged files into errors.
 */
#ifndef M64_ELF_CHECK_H
#define M64_ELF_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "m64_formats.h" /* m64_err, M64_E* */

#ifdef __cplusplus
extern "C" {
#endif

#define M64_ELF_MAX_LOADS 16u

/* The object's loadable segments (virtual addresses relative to its load base). */
typedef struct m64_elf_image {
  uint32_t n_loads;
  struct { uint64_t vaddr, memsz; uint32_t flags; /* PF_R | PF_W | PF_X */ } load[M64_ELF_MAX_LOADS];
} m64_elf_image;

/* 0 when b[0..n) is a 64-bit little-endian shared object for this host whose program
 * headers, dynamic section, symbol, string, hash, version and relocation tables all lie
 * inside the object and its mapped image; M64_EFORMAT naming the first bad field
 * otherwise. On success *img (may be NULL) describes the image. Reads nothing past n. */
int m64_elf_check(const uint8_t *b, size_t n, m64_elf_image *img, m64_err *e);

#ifdef __cplusplus
}
#endif

#endif /* M64_ELF_CHECK_H */
