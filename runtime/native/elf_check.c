/*
 * elf_check.c — see elf_check.h.
 *
 * Follows what glibc's loader reads while it maps, relocates and initialises a shared
 * object (dl-load, get-dynamic-info, dl-lookup, dl-version, dl-reloc, dl-init) and checks
 * that each of those reads and writes lands inside the object's file or its mapped image,
 * and that what glibc only asserts (record sizes, hash table shapes) holds. Every table is
 * walked with bounds taken from the object's own size, so a hostile object cannot make the
 * check itself slow or read out of bounds.
 */
#include "elf_check.h"

#include <elf.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#if defined(__x86_64__)
#define HOST_MACHINE EM_X86_64
#define HOST_MACHINE_NAME "x86-64"
#elif defined(__aarch64__)
#define HOST_MACHINE EM_AARCH64
#define HOST_MACHINE_NAME "AArch64"
#else
#define HOST_MACHINE EM_NONE
#define HOST_MACHINE_NAME "this host"
#endif

/* RELR relocations (glibc 2.36): named here when older headers lack them. */
#ifndef DT_RELR
#define DT_RELRSZ 35
#define DT_RELR 36
#define DT_RELRENT 37
typedef uint64_t Elf64_Relr;
#endif
#define N_TAGS 38 /* the standard tags below DT_NUM, RELR's included */

#define MAX_PHDRS 64u
#define MAX_SPAN (1ull << 30)     /* the image the loader reserves: ours are ~1-10 MiB */
#define MAX_TLS (64ull << 20)
#define MAX_STR_REFS 64u          /* DT_NEEDED and friends */
#define MAX_INIT_SLOTS 1024u      /* entries of one init/fini array */
#define MAX_VERSION_RECORDS 4096u

typedef struct slots { uint64_t va; uint32_t n; uint8_t ok[MAX_INIT_SLOTS]; } slots;

/* Sections that restate a dynamic entry: when the object has section headers, both must
 * agree (a linker writes them together; one changed alone is a damaged file). */
enum { S_DYNAMIC, S_DYNSTR, S_DYNSYM, S_GNU_HASH, S_HASH, S_VERSYM, S_VERNEED, S_VERDEF, S_RELA,
       S_JMPREL, S_INIT, S_FINI, S_INIT_ARRAY, S_FINI_ARRAY, S_PREINIT_ARRAY, S_GOT_PLT, N_NAMED };
static const char *const NAMED[N_NAMED] = {
    ".dynamic", ".dynstr", ".dynsym", ".gnu.hash", ".hash", ".gnu.version", ".gnu.version_r", ".gnu.version_d",
    ".rela.dyn", ".rela.plt", ".init", ".fini", ".init_array", ".fini_array", ".preinit_array", ".got.plt"};

typedef struct ctx {
  const uint8_t *b;
  size_t n;
  m64_err *e;
  uint32_t n_loads;
  Elf64_Phdr load[M64_ELF_MAX_LOADS];
  /* the dynamic section: the last entry of each tag, as glibc keeps it */
  uint64_t val[N_TAGS];
  uint8_t has[N_TAGS];
  uint64_t gnu_hash, versym, verneed, verdef;
  uint8_t has_gnu_hash, has_versym, has_verneed, has_verdef, has_relacount;
  uint64_t relacount; /* leading RELA entries glibc applies as RELATIVE without looking */
  uint64_t str_ref[MAX_STR_REFS], needed[MAX_STR_REFS];
  uint32_t n_str_ref, n_needed;
  uint64_t strtab, strsz, nsyms;
  uint32_t ndx_high; /* highest version index the version tables define */
  slots init[3];     /* DT_INIT_ARRAY, DT_FINI_ARRAY, DT_PREINIT_ARRAY */
  uint16_t shnum;    /* section headers (0: none, nothing to cross-check) */
  struct named { uint8_t present; uint64_t addr, size; } sec[N_NAMED];
} ctx;

/* A local formatter (m64_fail's contract), so that like native.c this file needs nothing
 * of the formats library at link time. */
static int efail(m64_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int efail(m64_err *e, const char *fmt, ...) {
  if (e != NULL) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
  }
  return M64_EFORMAT;
}
#define FAIL(c, ...) efail((c)->e, "native code: " __VA_ARGS__)
#define ULL(x) ((unsigned long long)(x))

static int add_ovf(uint64_t a, uint64_t b, uint64_t *r) { return __builtin_add_overflow(a, b, r); }

/* File offset of [va, va + len) when a readable loadable segment maps it from the file. */
static int va_file(const ctx *c, uint64_t va, uint64_t len, uint64_t *off) {
  for (uint32_t i = 0; i < c->n_loads; i++) {
    const Elf64_Phdr *p = &c->load[i];
    if (!(p->p_flags & PF_R)) continue; /* the loader reads these bytes through the mapping */
    if (va < p->p_vaddr || va - p->p_vaddr > p->p_filesz || len > p->p_filesz - (va - p->p_vaddr)) continue;
    *off = p->p_offset + (va - p->p_vaddr);
    return 1;
  }
  return 0;
}

/* [va, va + len) inside one loadable segment's memory whose flags include all of want. */
static int va_mem(const ctx *c, uint64_t va, uint64_t len, uint32_t want) {
  for (uint32_t i = 0; i < c->n_loads; i++) {
    const Elf64_Phdr *p = &c->load[i];
    if ((p->p_flags & want) != want) continue;
    if (va >= p->p_vaddr && va - p->p_vaddr <= p->p_memsz && len <= p->p_memsz - (va - p->p_vaddr)) return 1;
  }
  return 0;
}
static int is_code(const ctx *c, uint64_t va) { return va_mem(c, va, 1, PF_X); }

static void get(const ctx *c, uint64_t off, void *dst, size_t len) { memcpy(dst, c->b + off, len); }
static uint32_t get32(const ctx *c, uint64_t off) {
  uint32_t v;
  get(c, off, &v, 4);
  return v;
}

static int check_header(ctx *c, Elf64_Ehdr *h) {
  if (c->n < sizeof *h || memcmp(c->b, ELFMAG, SELFMAG) != 0)
    return FAIL(c, "not an ELF object (%zu bytes)", c->n);
  if (c->b[EI_CLASS] != ELFCLASS64) return FAIL(c, "not a 64-bit ELF object (EI_CLASS %u)", c->b[EI_CLASS]);
  if (c->b[EI_DATA] != ELFDATA2LSB) return FAIL(c, "not a little-endian ELF object (EI_DATA %u)", c->b[EI_DATA]);
  if (c->b[EI_VERSION] != EV_CURRENT) return FAIL(c, "ELF version %u", c->b[EI_VERSION]);
  get(c, 0, h, sizeof *h);
  if (h->e_type != ET_DYN) return FAIL(c, "not a shared object (e_type %u)", h->e_type);
  if (h->e_machine != HOST_MACHINE)
    return FAIL(c, "e_machine %u is not this host's (%s, %u)", h->e_machine, HOST_MACHINE_NAME, HOST_MACHINE);
  if (h->e_version != EV_CURRENT) return FAIL(c, "e_version %u", h->e_version);
  if (h->e_ehsize != sizeof *h || h->e_phentsize != sizeof(Elf64_Phdr))
    return FAIL(c, "e_ehsize %u / e_phentsize %u are not those of ELF64 (%zu / %zu)", h->e_ehsize,
                h->e_phentsize, sizeof *h, sizeof(Elf64_Phdr));
  if (h->e_phnum == 0 || h->e_phnum > MAX_PHDRS)
    return FAIL(c, "e_phnum %u (1..%u program headers expected)", h->e_phnum, MAX_PHDRS);
  if (h->e_phoff > c->n || (uint64_t)h->e_phnum * sizeof(Elf64_Phdr) > c->n - h->e_phoff)
    return FAIL(c, "program headers at e_phoff %llu (%u of them) run past the object's %zu bytes",
                ULL(h->e_phoff), h->e_phnum, c->n);
  return 0;
}

/* Section headers: the loader does not read them, but they restate where every part of
 * the image is and what it holds. So, when there are any, they must lie in the object,
 * every allocated section must be where a PT_LOAD maps it (from the same file bytes, with
 * the permissions its flags need), and the named sections are kept to be checked against
 * the dynamic section (check_named). Runs after the segments, whose message says more
 * about a truncated object. */
static int check_sections(ctx *c, const Elf64_Ehdr *h) {
  if (!h->e_shnum) return 0;
  if (h->e_shentsize != sizeof(Elf64_Shdr) || h->e_shoff > c->n ||
      (uint64_t)h->e_shnum * sizeof(Elf64_Shdr) > c->n - h->e_shoff)
    return FAIL(c, "section headers at e_shoff %llu (%u of %u bytes) run past the object's %zu bytes",
                ULL(h->e_shoff), h->e_shnum, h->e_shentsize, c->n);
  c->shnum = h->e_shnum;
  Elf64_Shdr names = {0};
  uint64_t end;
  if (h->e_shstrndx != SHN_UNDEF) {
    if (h->e_shstrndx >= h->e_shnum) return FAIL(c, "e_shstrndx %u is not a section (%u)", h->e_shstrndx, h->e_shnum);
    get(c, h->e_shoff + (uint64_t)h->e_shstrndx * sizeof names, &names, sizeof names);
    if (names.sh_size == 0 || add_ovf(names.sh_offset, names.sh_size, &end) || end > c->n ||
        c->b[end - 1] != 0)
      return FAIL(c, "the section name table is outside the object or does not end with a NUL");
  }
  for (uint32_t i = 1; i < h->e_shnum; i++) {
    Elf64_Shdr sh;
    get(c, h->e_shoff + (uint64_t)i * sizeof sh, &sh, sizeof sh);
    if (sh.sh_type == SHT_NULL) continue;
    const char *name = names.sh_size && sh.sh_name < names.sh_size ? (const char *)c->b + names.sh_offset + sh.sh_name : "";
    uint64_t off;
    if (sh.sh_type != SHT_NOBITS && (add_ovf(sh.sh_offset, sh.sh_size, &end) || end > c->n))
      return FAIL(c, "section %u (%s): file bytes [%llu, +%llu) run past the object's %zu bytes", i, name,
                  ULL(sh.sh_offset), ULL(sh.sh_size), c->n);
    if (!(sh.sh_flags & SHF_ALLOC) || sh.sh_size == 0) continue;
    if (sh.sh_type == SHT_NOBITS && (sh.sh_flags & SHF_TLS)) continue; /* in the TLS image only */
    const uint32_t want = (sh.sh_flags & SHF_EXECINSTR ? PF_X : 0) | (sh.sh_flags & SHF_WRITE ? PF_W : 0);
    if (sh.sh_type == SHT_NOBITS ? !va_mem(c, sh.sh_addr, sh.sh_size, want)
                                 : !va_file(c, sh.sh_addr, sh.sh_size, &off) || off != sh.sh_offset ||
                                       !va_mem(c, sh.sh_addr, sh.sh_size, want))
      return FAIL(c, "section %u (%s) at %llu (%llu bytes, file offset %llu) is not where a %sPT_LOAD maps it", i,
                  name, ULL(sh.sh_addr), ULL(sh.sh_size), ULL(sh.sh_offset),
                  want & PF_X ? "executable " : want & PF_W ? "writable " : "");
    for (int k = 0; k < N_NAMED; k++) {
      if (strcmp(name, NAMED[k]) != 0) continue;
      if (c->sec[k].present) return FAIL(c, "two sections named %s", name);
      c->sec[k] = (struct named){1, sh.sh_addr, sh.sh_size};
    }
  }
  return 0;
}

/* A dynamic entry (address tag, and size tag or 0) against the section of that name. */
static int match(ctx *c, int k, int has, uint64_t addr, int has_size, uint64_t size, const char *tag) {
  const struct named *s = &c->sec[k];
  if (!s->present) return 0;
  if (!has) return FAIL(c, "section %s exists but the dynamic section has no %s", NAMED[k], tag);
  if (addr != s->addr || (has_size && size != s->size))
    return FAIL(c, "%s says %llu (%llu bytes) but section %s is at %llu (%llu bytes)", tag, ULL(addr),
                ULL(has_size ? size : s->size), NAMED[k], ULL(s->addr), ULL(s->size));
  return 0;
}

static int check_named(ctx *c, const Elf64_Phdr *dyn) {
  if (!c->shnum) return 0;
  const uint64_t *v = c->val;
  const uint8_t *h = c->has;
  return match(c, S_DYNAMIC, 1, dyn->p_vaddr, 1, dyn->p_filesz, "PT_DYNAMIC") ||
         match(c, S_DYNSTR, h[DT_STRTAB], v[DT_STRTAB], 1, v[DT_STRSZ], "DT_STRTAB") ||
         match(c, S_DYNSYM, h[DT_SYMTAB], v[DT_SYMTAB], 0, 0, "DT_SYMTAB") ||
         match(c, S_GNU_HASH, c->has_gnu_hash, c->gnu_hash, 0, 0, "DT_GNU_HASH") ||
         match(c, S_HASH, h[DT_HASH], v[DT_HASH], 0, 0, "DT_HASH") ||
         match(c, S_VERSYM, c->has_versym, c->versym, 0, 0, "DT_VERSYM") ||
         match(c, S_VERNEED, c->has_verneed, c->verneed, 0, 0, "DT_VERNEED") ||
         match(c, S_VERDEF, c->has_verdef, c->verdef, 0, 0, "DT_VERDEF") ||
         match(c, S_RELA, h[DT_RELA], v[DT_RELA], 1, v[DT_RELASZ], "DT_RELA") ||
         match(c, S_JMPREL, h[DT_JMPREL], v[DT_JMPREL], 1, v[DT_PLTRELSZ], "DT_JMPREL") ||
         match(c, S_INIT_ARRAY, h[DT_INIT_ARRAY], v[DT_INIT_ARRAY], 1, v[DT_INIT_ARRAYSZ], "DT_INIT_ARRAY") ||
         match(c, S_FINI_ARRAY, h[DT_FINI_ARRAY], v[DT_FINI_ARRAY], 1, v[DT_FINI_ARRAYSZ], "DT_FINI_ARRAY") ||
         match(c, S_PREINIT_ARRAY, h[DT_PREINIT_ARRAY], v[DT_PREINIT_ARRAY], 1, v[DT_PREINIT_ARRAYSZ], "DT_PREINIT_ARRAY") ||
         match(c, S_GOT_PLT, h[DT_PLTGOT], v[DT_PLTGOT], 0, 0, "DT_PLTGOT")
             ? M64_EFORMAT
             : 0;
}

static int in_file(const ctx *c, const Elf64_Phdr *p) {
  uint64_t end;
  return !add_ovf(p->p_offset, p->p_filesz, &end) && end <= c->n;
}

/* Notes are walked by the loader (GNU properties): each one inside its segment. */
static int check_notes(const ctx *c, uint32_t i, const Elf64_Phdr *p) {
  const uint64_t align = p->p_align == 8 ? 8 : 4;
  uint64_t at = p->p_offset, end = p->p_offset + p->p_filesz;
  while (end - at >= sizeof(Elf64_Nhdr)) {
    Elf64_Nhdr nh;
    get(c, at, &nh, sizeof nh);
    /* the name follows the 12-byte header, the descriptor and the next note start aligned */
    const uint64_t desc = (sizeof nh + (uint64_t)nh.n_namesz + align - 1) & ~(align - 1);
    const uint64_t len = (desc + nh.n_descsz + align - 1) & ~(align - 1);
    if (len > end - at)
      return FAIL(c, "program header %u (note): a note at file offset %llu runs past its segment", i, ULL(at));
    at += len;
  }
  return 0;
}

static int check_phdrs(ctx *c, const Elf64_Ehdr *h, Elf64_Phdr *dyn) {
  Elf64_Phdr ph[MAX_PHDRS];
  get(c, h->e_phoff, ph, (size_t)h->e_phnum * sizeof *ph);
  uint32_t n_dyn = 0;
  for (uint32_t i = 0; i < h->e_phnum; i++) {
    const Elf64_Phdr *p = &ph[i];
    if (p->p_type != PT_LOAD) continue;
    uint64_t end;
    if (c->n_loads == M64_ELF_MAX_LOADS)
      return FAIL(c, "more than %u PT_LOAD program headers", M64_ELF_MAX_LOADS);
    if (!in_file(c, p))
      return FAIL(c, "program header %u (PT_LOAD) maps file bytes [%llu, +%llu) past the object's end (%zu bytes): truncated?",
                  i, ULL(p->p_offset), ULL(p->p_filesz), c->n);
    if (p->p_filesz > p->p_memsz)
      return FAIL(c, "program header %u (PT_LOAD): p_filesz %llu > p_memsz %llu", i, ULL(p->p_filesz), ULL(p->p_memsz));
    if (p->p_align > 1 && ((p->p_align & (p->p_align - 1)) || (p->p_vaddr - p->p_offset) % p->p_align))
      return FAIL(c, "program header %u (PT_LOAD): p_align %llu is not a power of two dividing p_vaddr - p_offset",
                  i, ULL(p->p_align));
    if (add_ovf(p->p_vaddr, p->p_memsz, &end))
      return FAIL(c, "program header %u (PT_LOAD): p_vaddr + p_memsz overflows", i);
    /* The loader reserves [first start, last end) and maps each segment into it. */
    if (c->n_loads) {
      const Elf64_Phdr *q = &c->load[c->n_loads - 1];
      if (p->p_vaddr < q->p_vaddr + q->p_memsz)
        return FAIL(c, "program header %u (PT_LOAD) at p_vaddr %llu is not after the previous one (ends at %llu)",
                    i, ULL(p->p_vaddr), ULL(q->p_vaddr + q->p_memsz));
      if (p->p_filesz && q->p_filesz && p->p_offset < q->p_offset + q->p_filesz)
        return FAIL(c, "program header %u (PT_LOAD) maps file bytes from %llu, inside the previous one's (to %llu)",
                    i, ULL(p->p_offset), ULL(q->p_offset + q->p_filesz));
      if (end - c->load[0].p_vaddr > MAX_SPAN)
        return FAIL(c, "program header %u (PT_LOAD): the image spans more than %llu bytes", i, ULL(MAX_SPAN));
    } else if (p->p_memsz > MAX_SPAN) {
      return FAIL(c, "program header %u (PT_LOAD): p_memsz %llu is too large", i, ULL(p->p_memsz));
    }
    c->load[c->n_loads++] = *p;
  }
  if (!c->n_loads) return FAIL(c, "no PT_LOAD program header");
  for (uint32_t i = 0; i < h->e_phnum; i++) {
    const Elf64_Phdr *p = &ph[i];
    uint64_t off;
    switch (p->p_type) {
      case PT_DYNAMIC:
        n_dyn++;
        *dyn = *p;
        if (!in_file(c, p) || p->p_filesz < sizeof(Elf64_Dyn) || !va_file(c, p->p_vaddr, p->p_filesz, &off) ||
            off != p->p_offset)
          return FAIL(c, "program header %u (PT_DYNAMIC): [%llu, +%llu) is not inside a PT_LOAD's file bytes",
                      i, ULL(p->p_vaddr), ULL(p->p_filesz));
        break;
      case PT_PHDR:
        if (p->p_offset != h->e_phoff || p->p_filesz != (uint64_t)h->e_phnum * sizeof *ph ||
            !va_file(c, p->p_vaddr, p->p_filesz, &off) || off != p->p_offset)
          return FAIL(c, "program header %u (PT_PHDR) does not describe the program headers where a PT_LOAD maps them", i);
        break;
      case PT_NOTE:
      case PT_GNU_PROPERTY:
        if (!in_file(c, p) || !va_file(c, p->p_vaddr, p->p_filesz, &off) || off != p->p_offset)
          return FAIL(c, "program header %u (notes): [%llu, +%llu) is not inside a PT_LOAD's file bytes", i,
                      ULL(p->p_vaddr), ULL(p->p_filesz));
        if (check_notes(c, i, p)) return M64_EFORMAT;
        break;
      case PT_GNU_EH_FRAME:
        if (!va_file(c, p->p_vaddr, p->p_filesz, &off))
          return FAIL(c, "program header %u (PT_GNU_EH_FRAME) is not inside a PT_LOAD's file bytes", i);
        break;
      case PT_GNU_RELRO:
        if (!va_mem(c, p->p_vaddr, p->p_memsz, PF_W))
          return FAIL(c, "program header %u (PT_GNU_RELRO): [%llu, +%llu) is not inside a writable PT_LOAD", i,
                      ULL(p->p_vaddr), ULL(p->p_memsz));
        break;
      case PT_TLS:
        if (p->p_filesz > p->p_memsz || p->p_memsz > MAX_TLS || !va_mem(c, p->p_vaddr, p->p_filesz, 0) ||
            (p->p_align > 1 && (p->p_align & (p->p_align - 1))))
          return FAIL(c, "program header %u (PT_TLS): its initial image [%llu, +%llu) of %llu bytes is not inside a PT_LOAD",
                      i, ULL(p->p_vaddr), ULL(p->p_filesz), ULL(p->p_memsz));
        break;
      default:
        break;
    }
  }
  if (n_dyn != 1) return FAIL(c, "%u PT_DYNAMIC program headers (one expected)", n_dyn);
  return 0;
}

static int read_dynamic(ctx *c, const Elf64_Phdr *dyn) {
  const uint64_t n = dyn->p_filesz / sizeof(Elf64_Dyn);
  for (uint64_t i = 0; i < n; i++) {
    Elf64_Dyn d;
    get(c, dyn->p_offset + i * sizeof d, &d, sizeof d);
    const int64_t tag = d.d_tag;
    if (tag == DT_NULL) return 0;
    switch (tag) {
      case DT_NEEDED:
      case DT_SONAME:
      case DT_RPATH:
      case DT_RUNPATH:
      case DT_AUXILIARY:
      case DT_FILTER:
        if (c->n_str_ref == MAX_STR_REFS) return FAIL(c, "more than %u library names in the dynamic section", MAX_STR_REFS);
        c->str_ref[c->n_str_ref++] = d.d_un.d_val;
        if (tag == DT_NEEDED) c->needed[c->n_needed++] = d.d_un.d_val;
        break;
      case DT_GNU_HASH: c->gnu_hash = d.d_un.d_ptr, c->has_gnu_hash = 1; break;
      case DT_VERSYM: c->versym = d.d_un.d_ptr, c->has_versym = 1; break;
      case DT_VERNEED: c->verneed = d.d_un.d_ptr, c->has_verneed = 1; break;
      case DT_VERDEF: c->verdef = d.d_un.d_ptr, c->has_verdef = 1; break;
      case DT_RELACOUNT: c->relacount = d.d_un.d_val, c->has_relacount = 1; break;
      default:
        if (tag >= 0 && tag < N_TAGS) {
          c->val[tag] = d.d_un.d_val;
          c->has[tag] = 1;
        }
        break;
    }
  }
  return FAIL(c, "the dynamic section (%llu entries) has no DT_NULL", ULL(n));
}

/* What get-dynamic-info asserts or dereferences unchecked, and the string table. */
static int check_dynamic(ctx *c) {
  static const int need[] = {DT_STRTAB, DT_STRSZ, DT_SYMTAB};
  static const char *const need_name[] = {"DT_STRTAB", "DT_STRSZ", "DT_SYMTAB"};
  for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
    if (!c->has[need[i]]) return FAIL(c, "the dynamic section has no %s", need_name[i]);
  if (!c->has_gnu_hash && !c->has[DT_HASH]) return FAIL(c, "the dynamic section has no symbol hash table");
  if (c->has[DT_SYMENT] && c->val[DT_SYMENT] != sizeof(Elf64_Sym))
    return FAIL(c, "DT_SYMENT %llu (expected %zu)", ULL(c->val[DT_SYMENT]), sizeof(Elf64_Sym));
  if (c->has[DT_RELA] && (!c->has[DT_RELASZ] || !c->has[DT_RELAENT] || c->val[DT_RELAENT] != sizeof(Elf64_Rela)))
    return FAIL(c, "DT_RELA without DT_RELASZ and DT_RELAENT = %zu", sizeof(Elf64_Rela));
  /* glibc reads DT_PLTREL for every JMPREL table, and DT_VERSYM once versions exist */
  if (c->has[DT_JMPREL] != c->has[DT_PLTRELSZ] || (c->has[DT_JMPREL] && !c->has[DT_PLTREL]))
    return FAIL(c, "DT_JMPREL, DT_PLTRELSZ and DT_PLTREL do not come together");
  if (c->has[DT_PLTREL] && c->val[DT_PLTREL] != DT_RELA)
    return FAIL(c, "DT_PLTREL %llu: this host uses RELA relocations", ULL(c->val[DT_PLTREL]));
  if ((c->has_verneed || c->has_verdef) && !c->has_versym)
    return FAIL(c, "DT_VERNEED or DT_VERDEF without DT_VERSYM");
  if (c->has[DT_REL] || c->has[DT_RELSZ] || c->has[DT_RELENT])
    return FAIL(c, "DT_REL relocations: this host uses RELA relocations");
  if (c->has[DT_RELR] && (!c->has[DT_RELRSZ] || !c->has[DT_RELRENT] || c->val[DT_RELRENT] != sizeof(Elf64_Relr)))
    return FAIL(c, "DT_RELR without DT_RELRSZ and DT_RELRENT = %zu", sizeof(Elf64_Relr));
  if (c->has[DT_TEXTREL] || (c->has[DT_FLAGS] && (c->val[DT_FLAGS] & DF_TEXTREL)))
    return FAIL(c, "text relocations (DT_TEXTREL)");
  c->strtab = c->val[DT_STRTAB];
  c->strsz = c->val[DT_STRSZ];
  uint64_t off;
  if (c->strsz == 0 || !va_file(c, c->strtab, c->strsz, &off))
    return FAIL(c, "DT_STRTAB [%llu, +%llu) is not inside a PT_LOAD's file bytes", ULL(c->strtab), ULL(c->strsz));
  if (c->b[off + c->strsz - 1] != 0) return FAIL(c, "the string table does not end with a NUL");
  c->strtab = off; /* a file offset from here on */
  for (uint32_t i = 0; i < c->n_str_ref; i++)
    if (c->str_ref[i] >= c->strsz)
      return FAIL(c, "a library name at string offset %llu is past DT_STRSZ %llu", ULL(c->str_ref[i]), ULL(c->strsz));
  if (c->has[DT_INIT] && !is_code(c, c->val[DT_INIT]))
    return FAIL(c, "DT_INIT %llu is not in an executable PT_LOAD", ULL(c->val[DT_INIT]));
  if (c->has[DT_FINI] && !is_code(c, c->val[DT_FINI]))
    return FAIL(c, "DT_FINI %llu is not in an executable PT_LOAD", ULL(c->val[DT_FINI]));
  if (c->has[DT_PLTGOT] && !va_mem(c, c->val[DT_PLTGOT], 3 * 8, PF_W))
    return FAIL(c, "DT_PLTGOT %llu is not in a writable PT_LOAD", ULL(c->val[DT_PLTGOT]));
  static const int arr[3][2] = {{DT_INIT_ARRAY, DT_INIT_ARRAYSZ}, {DT_FINI_ARRAY, DT_FINI_ARRAYSZ},
                                {DT_PREINIT_ARRAY, DT_PREINIT_ARRAYSZ}};
  static const char *const arr_name[3] = {"DT_INIT_ARRAY", "DT_FINI_ARRAY", "DT_PREINIT_ARRAY"};
  for (int k = 0; k < 3; k++) {
    if (!c->has[arr[k][0]] && !c->has[arr[k][1]]) continue;
    const uint64_t va = c->val[arr[k][0]], sz = c->val[arr[k][1]];
    if (!c->has[arr[k][0]] || !c->has[arr[k][1]] || sz % 8 || sz / 8 > MAX_INIT_SLOTS || !va_mem(c, va, sz, PF_R))
      return FAIL(c, "%s [%llu, +%llu) is not an array of at most %u pointers inside a PT_LOAD", arr_name[k],
                  ULL(va), ULL(sz), MAX_INIT_SLOTS);
    c->init[k].va = va;
    c->init[k].n = (uint32_t)(sz / 8);
  }
  return 0;
}

/* The number of dynamic symbols, from the hash table(s) glibc uses to look them up. */
static int count_symbols(ctx *c) {
  uint64_t off, nsyms = 0;
  if (c->has_gnu_hash) {
    if (!va_file(c, c->gnu_hash, 16, &off)) return FAIL(c, "DT_GNU_HASH %llu is not inside a PT_LOAD's file bytes", ULL(c->gnu_hash));
    const uint32_t nbuckets = get32(c, off), symoffset = get32(c, off + 4), bloom = get32(c, off + 8),
                   shift = get32(c, off + 12);
    /* glibc divides by nbuckets and asserts a power-of-two bloom filter */
    if (nbuckets == 0 || bloom == 0 || (bloom & (bloom - 1)) || shift >= 64)
      return FAIL(c, "DT_GNU_HASH header (%u buckets, bloom %u words, shift %u) is malformed", nbuckets, bloom, shift);
    const uint64_t head = 16 + (uint64_t)bloom * 8 + (uint64_t)nbuckets * 4;
    uint64_t chain_va, toff;
    if (!va_file(c, c->gnu_hash, head, &toff) || add_ovf(c->gnu_hash, head, &chain_va))
      return FAIL(c, "DT_GNU_HASH: its %u buckets run past its segment", nbuckets);
    /* Chains are runs of consecutive symbols, one per bucket, in bucket order: each walk
     * starts after the previous one ends, so all of them together read each entry once. */
    uint64_t next = symoffset;
    for (uint32_t k = 0; k < nbuckets; k++) {
      const uint32_t start = get32(c, toff + 16 + (uint64_t)bloom * 8 + (uint64_t)k * 4);
      if (start == 0) continue;
      if (start < next)
        return FAIL(c, "DT_GNU_HASH: bucket %u starts at symbol %u, inside an earlier chain or before symoffset %u",
                    k, start, symoffset);
      for (uint64_t s = start;; s++) {
        uint64_t coff;
        if (!va_file(c, chain_va + (s - symoffset) * 4, 4, &coff))
          return FAIL(c, "DT_GNU_HASH: the chain of bucket %u runs past its segment", k);
        if (get32(c, coff) & 1) {
          next = s + 1;
          break;
        }
      }
    }
    nsyms = next;
  }
  if (c->has[DT_HASH]) {
    if (!va_file(c, c->val[DT_HASH], 8, &off)) return FAIL(c, "DT_HASH %llu is not inside a PT_LOAD's file bytes", ULL(c->val[DT_HASH]));
    const uint32_t nbucket = get32(c, off), nchain = get32(c, off + 4);
    const uint64_t size = 8 + 4 * ((uint64_t)nbucket + nchain);
    if (nbucket == 0 || !va_file(c, c->val[DT_HASH], size, &off))
      return FAIL(c, "DT_HASH (%u buckets, %u chains) is empty or runs past its segment", nbucket, nchain);
    for (uint64_t k = 0; k < (uint64_t)nbucket + nchain; k++)
      if (get32(c, off + 8 + 4 * k) >= nchain) return FAIL(c, "DT_HASH: entry %llu is not a symbol index", ULL(k));
    if (nchain > nsyms) nsyms = nchain;
  }
  /* The hash tables reach the defined symbols; undefined ones may lie past them, so
   * each symbol a relocation names is checked on its own (check_sym). Symbol 0 at least:
   * glibc reads it for relocations that name none. */
  c->nsyms = nsyms ? nsyms : 1;
  return 0;
}

/* Symbol i as the loader reads it: the record, its name, its DT_VERSYM entry. */
static int check_sym(ctx *c, uint64_t i, Elf64_Sym *out) {
  uint64_t off;
  Elf64_Sym s;
  if (!va_file(c, c->val[DT_SYMTAB] + i * sizeof s, sizeof s, &off))
    return FAIL(c, "symbol %llu: its DT_SYMTAB record is not inside a PT_LOAD's file bytes", ULL(i));
  get(c, off, &s, sizeof s);
  if (s.st_name >= c->strsz)
    return FAIL(c, "symbol %llu: st_name %u is past DT_STRSZ %llu", ULL(i), s.st_name, ULL(c->strsz));
  const unsigned bind = ELF64_ST_BIND(s.st_info), type = ELF64_ST_TYPE(s.st_info);
  if ((bind != STB_LOCAL && bind != STB_GLOBAL && bind != STB_WEAK && bind != STB_GNU_UNIQUE) ||
      (type > STT_TLS && type != STT_GNU_IFUNC) || (i && s.st_shndx == SHN_UNDEF && bind == STB_LOCAL))
    return FAIL(c, "symbol %llu: binding %u / type %u (an undefined symbol must be global or weak)", ULL(i), bind, type);
  if (c->shnum && s.st_shndx != SHN_UNDEF && s.st_shndx < SHN_LORESERVE && s.st_shndx >= c->shnum)
    return FAIL(c, "symbol %llu: st_shndx %u is not a section (%u)", ULL(i), s.st_shndx, c->shnum);
  /* what a relocation or dlsym turns into an address is inside the image: functions in
   * code (the loader itself calls IFUNC resolvers), data in a segment */
  const int defined = s.st_shndx != SHN_UNDEF && s.st_shndx != SHN_ABS && s.st_shndx != SHN_COMMON;
  if (defined && (type == STT_FUNC || type == STT_GNU_IFUNC) && !is_code(c, s.st_value))
    return FAIL(c, "symbol %llu (function): st_value %llu is not in an executable PT_LOAD", ULL(i), ULL(s.st_value));
  if (defined && type == STT_OBJECT && !va_mem(c, s.st_value, s.st_size, PF_R))
    return FAIL(c, "symbol %llu (object): [%llu, +%llu) is not inside a PT_LOAD", ULL(i), ULL(s.st_value), ULL(s.st_size));
  if (c->has_versym) {
    /* glibc indexes its version array (ndx_high + 1 entries) with the symbol's entry */
    uint16_t v;
    if (!va_file(c, c->versym + 2 * i, 2, &off))
      return FAIL(c, "symbol %llu: its DT_VERSYM entry is not inside a PT_LOAD's file bytes", ULL(i));
    get(c, off, &v, 2);
    if ((v & 0x7fffu) > c->ndx_high)
      return FAIL(c, "symbol %llu: DT_VERSYM says version %u, the version records define up to %u", ULL(i),
                  v & 0x7fffu, c->ndx_high);
  }
  if (out) *out = s;
  return 0;
}

static int check_symbols(ctx *c) {
  if (c->has_versym && !c->ndx_high) return FAIL(c, "DT_VERSYM without DT_VERNEED or DT_VERDEF");
  /* DT_INIT and DT_FINI, which the loader calls: the .init/.fini sections, or a function
   * the object exports (ld -init/-fini on a local function, which m64c's toolchain never
   * does, is refused: a changed DT_INIT would otherwise run any byte of code) */
  static const struct { int tag, sec; const char *name; } entry[] = {{DT_INIT, S_INIT, "DT_INIT"},
                                                                    {DT_FINI, S_FINI, "DT_FINI"}};
  int found[2] = {0, 0};
  for (int k = 0; k < 2; k++)
    found[k] = !c->has[entry[k].tag] || !c->shnum ||
               (c->sec[entry[k].sec].present && c->sec[entry[k].sec].addr == c->val[entry[k].tag]);
  for (uint64_t i = 0; i < c->nsyms; i++) {
    Elf64_Sym s;
    if (check_sym(c, i, &s)) return M64_EFORMAT;
    for (int k = 0; k < 2; k++)
      found[k] |= ELF64_ST_TYPE(s.st_info) == STT_FUNC && s.st_shndx != SHN_UNDEF && s.st_value == c->val[entry[k].tag];
  }
  for (int k = 0; k < 2; k++)
    if (!found[k])
      return FAIL(c, "%s %llu is neither section %s nor a function of the object", entry[k].name,
                  ULL(c->val[entry[k].tag]), NAMED[entry[k].sec]);
  return 0;
}

/* Version records, walked as glibc walks them: by their next offsets until one is 0. */
static int check_versions(ctx *c) {
  uint64_t off;
  if (c->has_verneed) {
    uint64_t va = c->verneed;
    for (uint32_t k = 0;; k++) {
      Elf64_Verneed vn;
      if (k == MAX_VERSION_RECORDS || !va_file(c, va, sizeof vn, &off))
        return FAIL(c, "DT_VERNEED record %u at %llu is not inside a PT_LOAD's file bytes", k, ULL(va));
      get(c, off, &vn, sizeof vn);
      if (vn.vn_version != 1 || vn.vn_file >= c->strsz)
        return FAIL(c, "DT_VERNEED record %u: version %u, file name at %u (of %llu)", k, vn.vn_version, vn.vn_file,
                    ULL(c->strsz));
      /* glibc asserts that it names a library the object needs */
      int named = 0;
      for (uint32_t q = 0; q < c->n_needed && !named; q++)
        named = strcmp((const char *)c->b + c->strtab + vn.vn_file, (const char *)c->b + c->strtab + c->needed[q]) == 0;
      if (!named) return FAIL(c, "DT_VERNEED record %u names a library that is not DT_NEEDED", k);
      uint64_t ava = va;
      uint32_t next = vn.vn_aux;
      for (uint32_t a = 0; next || a == 0; a++) {
        Elf64_Vernaux aux;
        if (a == MAX_VERSION_RECORDS || add_ovf(ava, next, &ava) || !va_file(c, ava, sizeof aux, &off))
          return FAIL(c, "DT_VERNEED record %u: auxiliary record %u is not inside a PT_LOAD's file bytes", k, a);
        get(c, off, &aux, sizeof aux);
        if (aux.vna_name >= c->strsz) return FAIL(c, "DT_VERNEED record %u: a version name is past DT_STRSZ", k);
        if ((aux.vna_other & 0x7fffu) > c->ndx_high) c->ndx_high = aux.vna_other & 0x7fffu;
        next = aux.vna_next;
      }
      if (!vn.vn_next) break;
      if (add_ovf(va, vn.vn_next, &va)) return FAIL(c, "DT_VERNEED record %u: vn_next overflows", k);
    }
  }
  if (c->has_verdef) {
    uint64_t va = c->verdef;
    for (uint32_t k = 0;; k++) {
      Elf64_Verdef vd;
      Elf64_Verdaux aux;
      uint64_t ava;
      if (k == MAX_VERSION_RECORDS || !va_file(c, va, sizeof vd, &off))
        return FAIL(c, "DT_VERDEF record %u at %llu is not inside a PT_LOAD's file bytes", k, ULL(va));
      get(c, off, &vd, sizeof vd);
      if (vd.vd_version != 1 || add_ovf(va, vd.vd_aux, &ava) || !va_file(c, ava, sizeof aux, &off))
        return FAIL(c, "DT_VERDEF record %u: version %u, or its name record is outside the object", k, vd.vd_version);
      get(c, off, &aux, sizeof aux);
      if (aux.vda_name >= c->strsz) return FAIL(c, "DT_VERDEF record %u: its name is past DT_STRSZ", k);
      if ((vd.vd_ndx & 0x7fffu) > c->ndx_high) c->ndx_high = vd.vd_ndx & 0x7fffu;
      if (!vd.vd_next) break;
      if (add_ovf(va, vd.vd_next, &va)) return FAIL(c, "DT_VERDEF record %u: vd_next overflows", k);
    }
  }
  return 0;
}

/* Relocation types this host's loader applies to a shared object, the bytes each writes,
 * and which ones take a code address from their addend. */
#if defined(__aarch64__)
#define R_RELATIVE R_AARCH64_RELATIVE
#define R_IRELATIVE R_AARCH64_IRELATIVE
#define R_ABS64 R_AARCH64_ABS64
#define R_JUMP_SLOT R_AARCH64_JUMP_SLOT
#define R_GLOB_DAT R_AARCH64_GLOB_DAT
#define R_TLSDESC R_AARCH64_TLSDESC
static uint32_t reloc_width(uint32_t t) {
  switch (t) {
    case R_AARCH64_ABS64: case R_AARCH64_GLOB_DAT: case R_AARCH64_JUMP_SLOT: case R_AARCH64_RELATIVE:
    case R_AARCH64_TLS_DTPMOD: case R_AARCH64_TLS_DTPREL: case R_AARCH64_TLS_TPREL: case R_AARCH64_IRELATIVE:
      return 8;
    case R_AARCH64_TLSDESC: return 16;
    default: return 0;
  }
}
#else
#define R_RELATIVE R_X86_64_RELATIVE
#define R_IRELATIVE R_X86_64_IRELATIVE
#define R_ABS64 R_X86_64_64
#define R_JUMP_SLOT R_X86_64_JUMP_SLOT
#define R_GLOB_DAT R_X86_64_GLOB_DAT
#define R_TLSDESC R_X86_64_TLSDESC
static uint32_t reloc_width(uint32_t t) {
  switch (t) {
    case R_X86_64_64: case R_X86_64_GLOB_DAT: case R_X86_64_JUMP_SLOT: case R_X86_64_RELATIVE:
    case R_X86_64_DTPMOD64: case R_X86_64_DTPOFF64: case R_X86_64_TPOFF64: case R_X86_64_IRELATIVE:
      return 8;
    case R_X86_64_TLSDESC: return 16;
    default: return 0;
  }
}
#endif

/* A relocation wrote a pointer to va: if va is an init/fini array slot, record whether
 * that pointer is into this object's code. */
static void mark_slot(ctx *c, uint64_t va, int to_code) {
  for (int k = 0; k < 3; k++) {
    slots *s = &c->init[k];
    if (s->n && va >= s->va && va - s->va < (uint64_t)s->n * 8 && (va - s->va) % 8 == 0)
      s->ok[(va - s->va) / 8] = (uint8_t)(to_code != 0);
  }
}

static int check_rela(ctx *c, const char *what, uint64_t va, uint64_t size) {
  uint64_t off;
  if (size % sizeof(Elf64_Rela) || !va_file(c, va, size, &off))
    return FAIL(c, "%s [%llu, +%llu) is not a table of relocations inside a PT_LOAD's file bytes", what, ULL(va), ULL(size));
  if (strcmp(what, "DT_RELA") == 0 && c->has_relacount && c->relacount > size / sizeof(Elf64_Rela))
    return FAIL(c, "DT_RELACOUNT %llu is more than DT_RELA's %llu entries", ULL(c->relacount),
                ULL(size / sizeof(Elf64_Rela)));
  for (uint64_t i = 0; i < size / sizeof(Elf64_Rela); i++) {
    Elf64_Rela r;
    get(c, off + i * sizeof r, &r, sizeof r);
    const uint32_t type = (uint32_t)ELF64_R_TYPE(r.r_info), sym = (uint32_t)ELF64_R_SYM(r.r_info);
    /* the PLT's slots are bound by JUMP_SLOT (or IRELATIVE, TLSDESC) entries only */
    const int plt = strcmp(what, "DT_JMPREL") == 0;
    if (plt && type != R_JUMP_SLOT && type != R_IRELATIVE && type != R_TLSDESC)
      return FAIL(c, "%s entry %llu: relocation type %u in the PLT's table", what, ULL(i), type);
    if (type == 0 && !(c->has_relacount && i < c->relacount)) continue; /* R_*_NONE */
    const uint32_t width = reloc_width(type);
    if (!width) return FAIL(c, "%s entry %llu: relocation type %u is not one the loader applies here", what, ULL(i), type);
    Elf64_Sym s;
    if (check_sym(c, sym, &s)) return M64_EFORMAT; /* "symbol N: ..." says which */
    /* GOT slots are aligned, and glibc applies the first DT_RELACOUNT entries as RELATIVE
     * without looking at their type */
    if ((type == R_JUMP_SLOT || type == R_GLOB_DAT) && r.r_offset % 8)
      return FAIL(c, "%s entry %llu: r_offset %llu of a GOT slot is not 8-byte aligned", what, ULL(i), ULL(r.r_offset));
    if (type == R_JUMP_SLOT && c->sec[S_GOT_PLT].present &&
        (r.r_offset < c->sec[S_GOT_PLT].addr || r.r_offset - c->sec[S_GOT_PLT].addr >= c->sec[S_GOT_PLT].size))
      return FAIL(c, "%s entry %llu: r_offset %llu is not in .got.plt", what, ULL(i), ULL(r.r_offset));
    if (!plt && c->has_relacount && i < c->relacount && type != R_RELATIVE)
      return FAIL(c, "DT_RELA entry %llu is inside DT_RELACOUNT (%llu) but not RELATIVE", ULL(i), ULL(c->relacount));
    if (!va_mem(c, r.r_offset, width, PF_W))
      return FAIL(c, "%s entry %llu: r_offset %llu is not in a writable PT_LOAD", what, ULL(i), ULL(r.r_offset));
    if (type == R_IRELATIVE && !is_code(c, (uint64_t)r.r_addend))
      return FAIL(c, "%s entry %llu: the IRELATIVE resolver %llu is not in an executable PT_LOAD", what, ULL(i),
                  ULL(r.r_addend));
    int to_code = 0;
    if (type == R_RELATIVE) {
      to_code = is_code(c, (uint64_t)r.r_addend);
    } else if (type == R_ABS64 && sym) {
      to_code = s.st_shndx == SHN_UNDEF || is_code(c, s.st_value + (uint64_t)r.r_addend);
    }
    mark_slot(c, r.r_offset, to_code);
  }
  return 0;
}

/* RELR: even entries are addresses, odd ones bitmaps of the 63 words after the last. */
static int check_relr(ctx *c) {
  const uint64_t va = c->val[DT_RELR], size = c->val[DT_RELRSZ];
  uint64_t off, where = 0;
  if (size % 8 || !va_file(c, va, size, &off))
    return FAIL(c, "DT_RELR [%llu, +%llu) is not inside a PT_LOAD's file bytes", ULL(va), ULL(size));
  for (uint64_t i = 0; i < size / 8; i++) {
    uint64_t w;
    get(c, off + 8 * i, &w, 8);
    for (uint32_t bit = 0; bit < 64; bit++) {
      uint64_t at, foff, value = 0;
      if ((w & 1) == 0) {
        if (bit) break;
        at = w;
      } else {
        if (bit == 0) continue;
        if (!((w >> bit) & 1)) continue;
        at = where + (uint64_t)(bit - 1) * 8;
      }
      if (!va_mem(c, at, 8, PF_W)) return FAIL(c, "DT_RELR entry %llu relocates %llu, not in a writable PT_LOAD", ULL(i), ULL(at));
      if (va_file(c, at, 8, &foff)) get(c, foff, &value, 8);
      mark_slot(c, at, is_code(c, value));
    }
    where = (w & 1) == 0 ? w + 8 : where + 63 * 8;
  }
  return 0;
}

static int check_relocs(ctx *c) {
  int rc = 0;
  if (c->has[DT_RELA]) rc = check_rela(c, "DT_RELA", c->val[DT_RELA], c->val[DT_RELASZ]);
  if (!rc && c->has[DT_JMPREL]) rc = check_rela(c, "DT_JMPREL", c->val[DT_JMPREL], c->val[DT_PLTRELSZ]);
  if (!rc && c->has[DT_RELR]) rc = check_relr(c);
  static const char *const arr_name[3] = {"DT_INIT_ARRAY", "DT_FINI_ARRAY", "DT_PREINIT_ARRAY"};
  /* the loader calls every entry: each must be relocated to a function of this object */
  for (int k = 0; k < 3 && !rc; k++)
    for (uint32_t i = 0; i < c->init[k].n && !rc; i++)
      if (!c->init[k].ok[i])
        rc = FAIL(c, "%s[%u] is not relocated to a function in an executable PT_LOAD", arr_name[k], i);
  return rc;
}

int m64_elf_check(const uint8_t *b, size_t n, m64_elf_image *img, m64_err *e) {
  ctx *c = &(ctx){0}; /* ~4 KiB, on the stack: no allocation to fail */
  c->b = b;
  c->n = b ? n : 0;
  c->e = e;
  Elf64_Ehdr h;
  Elf64_Phdr dyn = {0};
  int rc = check_header(c, &h);
  if (!rc) rc = check_phdrs(c, &h, &dyn);
  if (!rc) rc = check_sections(c, &h);
  if (!rc) rc = read_dynamic(c, &dyn);
  if (!rc) rc = check_dynamic(c);
  if (!rc) rc = check_named(c, &dyn);
  if (!rc) rc = count_symbols(c);
  if (!rc) rc = check_versions(c);
  if (!rc) rc = check_symbols(c);
  if (!rc) rc = check_relocs(c);
  if (rc || !img) return rc;
  img->n_loads = c->n_loads;
  for (uint32_t i = 0; i < c->n_loads; i++) {
    img->load[i].vaddr = c->load[i].p_vaddr;
    img->load[i].memsz = c->load[i].p_memsz;
    img->load[i].flags = c->load[i].p_flags;
  }
  return 0;
}
