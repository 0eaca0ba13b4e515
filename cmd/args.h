/*
 * args.h — what m64c and m64run share on their command lines: numbers parsed strictly
 * (the whole text, in range, or a message naming the flag), the output-path checks made
 * before any work, a seed from the kernel's entropy source, and the version line.
 *
 * Each parser returns 0 with *out set, or -1 after printing one line
 * "PROG: FLAG takes ..., not 'TEXT'" to stderr.
 */
#ifndef M64_CMD_ARGS_H
#define M64_CMD_ARGS_H

#include <stddef.h>
#include <stdint.h>

int m64_arg_long(const char *prog, const char *flag, const char *text, long min, long max, long *out);
/* A finite decimal number in [min, max] ("1e-3" is fine; "nan", "inf", "0.5x" are not). */
int m64_arg_float(const char *prog, const char *flag, const char *text, double min, double max, float *out);
/* A size such as 512M or 4G (m64_parse_size), at least min bytes. */
int m64_arg_size(const char *prog, const char *flag, const char *text, uint64_t min, uint64_t *out);
/* --seed: 0..2^64-1, or -1 for a random one (*random_seed = 1, *out untouched). */
int m64_arg_seed(const char *prog, const char *flag, const char *text, uint64_t *out, int *random_seed);

/* A seed from getrandom(2) (the kernel's entropy pool), never the clock; -1 if the kernel
 * gives none. */
int m64_random_seed(uint64_t *out);

/* Checks, before any work, that PATH can be written as an output: its directory exists
 * and is writable, PATH is not a directory, and (input != NULL) it is not the input
 * file itself (same device and inode: a hard link or a symlink to it counts). Returns 0,
 * or -1 after printing "PROG: error: ..." naming PATH. */
int m64_check_output(const char *prog, const char *path, const char *input);

/* -e: turns C-style escapes in s[0..*len) into the bytes they name, in place, as llama.cpp's
 * -e does: \n \r \t \a \b \f \v \\ \' \" \? \xHH (one or two hex digits) and \0..\377
 * (octal, up to three digits). Anything else after a backslash is kept as it was.
 * Updates *len (the text never grows) and keeps s NUL-terminated. */
void m64_unescape(char *s, size_t *len);

/* "PROG VERSION (bundle format N, host target T)" on stdout. */
void m64_print_version(const char *prog);

#endif
