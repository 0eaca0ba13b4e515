/* m64c — the m64 compiler's command line: a thin client of m64_compiler.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "m64_compiler.h"
#include "m64_formats.h"
#include "m64_sign.h"

/* ---- help: one entry per command, shown by `m64c --help`, `m64c help CMD`, `m64c CMD --help` ---- */
enum { C_BUILD = 1, C_AOT = 2, C_COMPRESS = 4, C_DECOMPRESS = 8, C_INFO = 16, C_VERIFY = 32, C_SIGN = 64,
       C_KEYGEN = 128, C_TRUST = 256, C_CACHE = 512 };

typedef struct command {
  const char *name, *synopsis, *what;
  int bit;
} command;

static const command COMMANDS[] = {
    {"build", "build MODEL.gguf -o MODEL.m64 [--no-aot | --target T[,T...]] [--no-relaxed] [--keep DIR] [--segment-max SIZE] "
              "[--compress[=LEVEL]] [--key KEY] [-v] [-q]",
     "compile a GGUF model into a bundle: layer-indexed image + wasm module + native code", C_BUILD},
    {"aot", "aot MODEL.m64 [-o OUT.m64] [--key KEY] [-v] [-q]",
     "(re)compile the bundle's wasm module to native code for this host (%s)", C_AOT},
    {"compress", "compress MODEL.m64 [-o OUT.m64] [--compress=LEVEL] [--min-gain PCT] [--key KEY] [-q]",
     "rewrite a bundle with every section and layer zstd-compressed (for shipping)", C_COMPRESS},
    {"decompress", "decompress MODEL.m64 [-o OUT.m64] [--key KEY] [-q]",
     "rewrite a compressed bundle back to the plain, mmap-friendly form", C_DECOMPRESS},
    {"info", "info MODEL.m64 | MODEL.gguf [--json]",
     "a bundle: header, sections, segments, layers, tensors, module exports, native targets;\n"
     "      a GGUF: what m64c build would make of it (architecture, parameters, tensor types,\n"
     "      tokenizer, chat template, context length) and whether m64 supports it", C_INFO},
    {"verify", "verify MODEL.m64 [-v]",
     "check the SHA-256 of every section and every layer up front, and the signature", C_VERIFY},
    {"sign", "sign MODEL.m64 --key KEY [-o OUT.m64] [-q]",
     "sign the bundle with your publisher key (replaces an older signature)", C_SIGN},
    {"keygen", "keygen -o NAME", "make a publisher key pair: NAME.key (secret, 0600) and NAME.pub (to hand out)",
     C_KEYGEN},
    {"trust", "trust add KEY.pub [--name NAME] | trust list | trust remove NAME|FINGERPRINT|KEY.pub",
     "the keys whose signed bundles m64run runs as shipped (your trust ring)", C_TRUST},
    {"cache", "cache list | cache rm KEY|--all",
     "the bundles `m64run MODEL.gguf` compiled (source, size, last use), or remove some", C_CACHE},
};
#define N_COMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

/* Every option, with the commands that take it and whether it takes a value (arg; one
 * that starts with '[' is written in the option itself: --compress=LEVEL). */
typedef struct option {
  const char *name, *arg, *help;
  int commands;
} option;

static const option OPTIONS[] = {
    {"-o", "OUT.m64", "the bundle to write (required)", C_BUILD},
    {"-o", "OUT.m64", "write the result there instead of rewriting MODEL.m64 in place",
     C_AOT | C_COMPRESS | C_DECOMPRESS | C_SIGN},
    {"-o", "NAME", "write NAME.key and NAME.pub", C_KEYGEN},
    {"--no-aot", NULL, "write a wasm-only bundle (add native code later with m64c aot)", C_BUILD},
    {"--no-relaxed", NULL, "leave out the module's relaxed-SIMD variant (what browsers with\n"
                           "                     relaxed SIMD run; m64run never does)", C_BUILD},
    {"--target", "LIST", "native code for each target in the comma-separated LIST instead of\n"
                         "                     this host's: x86_64-v4vnni-linux, x86_64-v3-linux (AVX2),\n"
                         "                     x86_64-v2-linux, x86_64-linux, aarch64-linux (cross-compiled);\n"
                         "                     m64run picks the best one the CPU it runs on can run",
     C_BUILD},
    {"--json", NULL, "one JSON object instead of text", C_INFO},
    {"--keep", "DIR", "keep the generated model.c, module.wasm and native code in DIR", C_BUILD},
    {"--segment-max", "SIZE", "largest image segment (default 16G, a browser's memory64 limit)", C_BUILD},
    {"--compress", "[=LEVEL]", "write a compressed bundle; zstd LEVEL 1..19 (default 3)", C_BUILD | C_COMPRESS},
    {"--chunk", "SIZE", "raw bytes per compressed chunk (default 1M, at most 64M)", C_BUILD | C_COMPRESS},
    {"--no-split", NULL, "keep block fields interleaved when compressing", C_BUILD | C_COMPRESS},
    {"--long", "WLOG", "zstd long-distance matching with window log 10..31 (for measuring)", C_BUILD | C_COMPRESS},
    {"--min-gain", "PCT", "store a stream as is unless zstd saves PCT% of it (0..50, default 0)",
     C_BUILD | C_COMPRESS},
    {"--key", "KEY", "sign the output with the secret key file KEY; without it, aot/compress/\n"
                     "                     decompress drop a signature, since the bundle changes",
     C_BUILD | C_AOT | C_COMPRESS | C_DECOMPRESS | C_SIGN},
    {"--name", "NAME", "the name a trusted key is listed under (trust add)", C_TRUST},
    {"-v", NULL, "print each tool invocation (verify: where the bundle is recorded)", C_BUILD | C_AOT | C_VERIFY},
    {"-q", NULL, "no progress lines", C_BUILD | C_AOT | C_COMPRESS | C_DECOMPRESS | C_SIGN},
};
#define N_OPTIONS (sizeof OPTIONS / sizeof OPTIONS[0])

static const command *find_command(const char *name) {
  for (size_t i = 0; i < N_COMMANDS; i++)
    if (!strcmp(COMMANDS[i].name, name)) return &COMMANDS[i];
  return NULL;
}

static void print_options(FILE *f, int commands) {
  fprintf(f, "\noptions:\n");
  for (size_t i = 0; i < N_OPTIONS; i++) {
    const option *o = &OPTIONS[i];
    if (!(o->commands & commands)) continue;
    char head[40];
    const int joined = o->arg && o->arg[0] == '[';
    snprintf(head, sizeof head, "%s%s%s", o->name, o->arg && !joined ? " " : "", o->arg ? o->arg : "");
    fprintf(f, "  %-18s %s\n", head, o->help);
  }
}

static void usage(FILE *f) {
  fprintf(f, "usage:\n");
  for (size_t i = 0; i < N_COMMANDS; i++) {
    fprintf(f, "  m64c %s\n      ", COMMANDS[i].synopsis);
    fprintf(f, COMMANDS[i].what, m64c_host_target());
    fputc('\n', f);
  }
  fprintf(f, "  m64c help [COMMAND]   this text, or one command's\n  m64c --version\n");
  print_options(f, ~0);
}

static void command_usage(FILE *f, const command *c) {
  fprintf(f, "usage: m64c %s\n  ", c->synopsis);
  fprintf(f, c->what, m64c_host_target());
  fputc('\n', f);
  print_options(f, c->bit);
}

static int unknown_command(const char *name) {
  fprintf(stderr, "m64c: unknown command '%s' (commands:", name);
  for (size_t i = 0; i < N_COMMANDS; i++) fprintf(stderr, " %s", COMMANDS[i].name);
  fprintf(stderr, "; see m64c help)\n");
  return 1;
}

/* 0 if command c takes option name (with its argument when it needs one); else a message.
 * An option may have one entry per group of commands (-o). */
static int check_option(const command *c, const char *name, int has_value) {
  int known = 0;
  for (size_t i = 0; i < N_OPTIONS; i++) {
    const option *o = &OPTIONS[i];
    if (strcmp(o->name, name)) continue;
    known = 1;
    if (!(o->commands & c->bit)) continue;
    if (o->arg && o->arg[0] != '[' && !has_value) {
      fprintf(stderr, "m64c: %s needs a value: %s %s\n", name, name, o->arg);
      return -1;
    }
    return 0;
  }
  if (known) fprintf(stderr, "m64c: %s does not take %s (see m64c %s --help)\n", c->name, name, c->name);
  else fprintf(stderr, "m64c: unknown option '%s' for %s (see m64c %s --help)\n", name, c->name, c->name);
  return -1;
}

/* Verified-bundle stamps (m64_formats.h): a bundle whose every layer was just hashed needs
 * no hashing at m64run's start while the file stays unchanged. Best effort, like m64run's. */
static void stamp_record(const struct stat *st, int verbose) {
  char where[3200];
  if (m64_stamp_write(st, where, sizeof where) == 0 && verbose)
    fprintf(stderr, "m64c: every layer hashed: recorded in %s\n", where);
}

static void stamp_hashed(const char *path, int verbose) {
  struct stat st;
  if (stat(path, &st) == 0) stamp_record(&st, verbose);
}

/* Who signed path (fingerprint into fp), or 0 when it is unsigned or unreadable. */
static int signed_by(const char *path, char fp[M64_SIGN_FINGERPRINT_CHARS]) {
  m64_bundle *b = NULL;
  if (m64_bundle_open(path, &b, NULL)) return 0;
  m64_sig_info sig;
  const int any = m64_signature_verify(b, &sig) != M64_SIG_UNSIGNED;
  snprintf(fp, M64_SIGN_FINGERPRINT_CHARS, "%s", sig.fingerprint[0] ? sig.fingerprint : "an unreadable key");
  m64_bundle_close(b);
  return any;
}

/* After a command that rewrote a bundle: sign it again with --key, or say that the
 * signature it had is gone (it covered the bundle as it was). */
static int resign_or_drop(const char *out, const char *key, int was_signed, const char *fp, int progress,
                          m64_err *e) {
  if (key) return m64c_sign(out, NULL, key, progress, e);
  if (was_signed)
    fprintf(stderr, "m64c: note: the signature by %s was dropped, since the bundle changed; sign it again with "
                    "`m64c sign %s --key KEY`\n", fp, out);
  return 0;
}

/* The file a command was given, when it cannot take it: what it is, and what to run
 * instead (m64_file_kind). want_gguf: build; otherwise the bundle commands. */
static int check_input_kind(const char *cmd, const char *path, int want_gguf) {
  m64_err e = {{0}};
  const int kind = m64_file_kind(path, &e);
  if (kind < 0) {
    fprintf(stderr, "m64c: error: %s\n", e.msg);
    return 1;
  }
  const int bundle = kind == M64_KIND_BUNDLE || kind == M64_KIND_BUNDLE_COMPRESSED;
  if (want_gguf ? kind == M64_KIND_GGUF : bundle) return 0;
  if (want_gguf && bundle)
    fprintf(stderr, "m64c: error: %s is %s (already compiled), not a GGUF model: run it with `m64run %s`, or "
                    "look inside with `m64c info %s`\n", path, m64_file_kind_name(kind), path, path);
  else if (want_gguf)
    fprintf(stderr, "m64c: error: %s is %s: `m64c build` takes a GGUF model (llama.cpp's format)\n", path,
            m64_file_kind_name(kind));
  else if (kind == M64_KIND_GGUF)
    fprintf(stderr, "m64c: error: %s is a GGUF model, not an m64 bundle: `m64c %s` works on bundles. Compile it with "
                    "`m64c build %s -o MODEL.m64`, run it as it is with `m64run %s`, or describe it with "
                    "`m64c info %s`\n", path, cmd, path, path, path);
  else
    fprintf(stderr, "m64c: error: %s is %s: `m64c %s` takes a bundle made by `m64c build` from a GGUF model\n",
            path, m64_file_kind_name(kind), cmd);
  return 1;
}

/* m64c cache list | rm KEY | rm --all: the bundles m64run compiled from GGUF files. */
static int cache_main(int argc, char **argv) {
  const char *sub = argc > 2 ? argv[2] : NULL, *key = argc > 3 ? argv[3] : NULL;
  m64_err e = {{0}};
  int rc;
  if (sub && !strcmp(sub, "list") && argc == 3) rc = m64c_cache_list(NULL, stdout, &e);
  else if (sub && (!strcmp(sub, "rm") || !strcmp(sub, "remove")) && key && argc == 4)
    rc = m64c_cache_remove(NULL, strcmp(key, "--all") ? key : NULL, stdout, &e);
  else {
    fprintf(stderr, "m64c: cache list | cache rm KEY|--all\n");
    return 1;
  }
  if (rc) {
    fprintf(stderr, "m64c: error: %s\n", e.msg[0] ? e.msg : "failed");
    return 1;
  }
  return 0;
}

/* m64c keygen -o NAME, m64c trust add|list|remove: keys, not bundles. */
static int keys_main(int argc, char **argv) {
  const char *cmd = argv[1], *out = NULL, *name = NULL, *args[2] = {NULL, NULL};
  int n_args = 0;
  const command *c = find_command(cmd);
  for (int i = 2; i < argc; i++) {
    if (argv[i][0] == '-' && argv[i][1] && check_option(c, argv[i], i + 1 < argc)) return 1;
    if (!strcmp(argv[i], "-o")) out = argv[++i];
    else if (!strcmp(argv[i], "--name")) name = argv[++i];
    else if (n_args < 2) args[n_args++] = argv[i];
    else {
      fprintf(stderr, "m64c: unexpected argument '%s'\n", argv[i]);
      return 1;
    }
  }
  m64_err e = {{0}};
  int rc = 0;
  if (!strcmp(cmd, "keygen")) {
    if (!out || n_args) {
      fprintf(stderr, "m64c: keygen needs -o NAME (writes NAME.key and NAME.pub)\n");
      return 1;
    }
    char key_path[4096];
    snprintf(key_path, sizeof key_path, "%s.key", out);
    if (m64_check_output("m64c", key_path, NULL)) return 1;
    m64_pubkey k;
    if (!(rc = m64_sign_keygen(out, &k, &e))) {
      char fp[M64_SIGN_FINGERPRINT_CHARS];
      m64_sign_fingerprint(k.key, fp);
      printf("%s.key: your secret key '%s' (keep it private: anyone who has it signs as you)\n", out, k.name);
      printf("%s.pub: its public key %s, for the users of your bundles (m64c trust add %s.pub)\n", out, fp, out);
    }
  } else {
    const char *sub = args[0];
    if (!sub || (strcmp(sub, "list") && !args[1]) || (!strcmp(sub, "list") && args[1])) {
      fprintf(stderr, "m64c: trust add KEY.pub [--name NAME] | trust list | trust remove NAME|FINGERPRINT|KEY.pub\n");
      return 1;
    }
    char dir[4096], what[M64_SIGN_NAME_MAX];
    if (!strcmp(sub, "list")) {
      if (!(rc = m64_trust_dir(NULL, dir, sizeof dir, &e))) printf("trust ring %s:\n", dir);
      if (!rc) rc = m64_trust_list(NULL, stdout, &e);
    } else if (!strcmp(sub, "add")) {
      int already = 0;
      if (!(rc = m64_trust_add(NULL, args[1], name, what, sizeof what, &already, &e))) {
        m64_pubkey k;
        char fp[M64_SIGN_FINGERPRINT_CHARS] = "";
        if (!m64_sign_read_public(args[1], &k, NULL)) m64_sign_fingerprint(k.key, fp);
        printf(already ? "%s (%s) was already trusted\n"
                       : "trusted %s (%s): m64run now runs native code in bundles it signed\n", what, fp);
      }
    } else if (!strcmp(sub, "remove")) {
      if (!(rc = m64_trust_remove(NULL, args[1], what, sizeof what, &e))) printf("removed %s from your trust ring\n", what);
    } else {
      fprintf(stderr, "m64c: unknown trust command '%s' (add, list, remove)\n", sub);
      return 1;
    }
  }
  if (rc) {
    fprintf(stderr, "m64c: error: %s\n", e.msg[0] ? e.msg : "failed");
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 1;
  }
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
    if (argc > 2 && strcmp(argv[1], "help") == 0) { /* m64c help CMD */
      const command *c = find_command(argv[2]);
      if (!c) return unknown_command(argv[2]);
      command_usage(stdout, c);
    } else usage(stdout);
    return 0;
  }
  if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
    /* the release plus a digest of the compiler's sources: part of every cache key */
    printf("m64c %s (bundle format %u, host target %s)\n", m64c_version(), (unsigned)M64_BUNDLE_VERSION,
           m64c_host_target());
    return 0;
  }
  const command *c = find_command(argv[1]);
  if (!c) return argv[1][0] == '-' ? (fprintf(stderr, "m64c: '%s' before a command (see m64c help)\n", argv[1]), 1)
                                   : unknown_command(argv[1]);
  for (int i = 2; i < argc; i++)
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      command_usage(stdout, c);
      return 0;
    }
  if (c->bit & (C_KEYGEN | C_TRUST)) return keys_main(argc, argv);
  if (c->bit & C_CACHE) return cache_main(argc, argv);
  const char *cmd = argv[1], *input = NULL, *key = NULL;
  m64c_options o = {.progress = 1};
  m64_compress_options z = {0, 0, 0, 0, 0};
  int compress = 0, json = 0;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] == '-' && a[1]) {
      const int level = !strncmp(a, "--compress=", 11);
      if (check_option(c, level ? "--compress" : a, i + 1 < argc)) return 1;
      if (level) {
        long lv;
        if (m64_arg_long("m64c", "--compress=LEVEL", a + 11, 1, 19, &lv)) return 1;
        z.level = (int)lv;
        compress = 1;
        continue;
      }
    }
    if (!strcmp(a, "-o")) o.output = argv[++i];
    else if (!strcmp(a, "--no-aot")) o.no_aot = 1;
    else if (!strcmp(a, "--no-relaxed")) o.no_relaxed = 1;
    else if (!strcmp(a, "--target")) o.target = argv[++i];
    else if (!strcmp(a, "--keep")) o.keep_dir = argv[++i];
    else if (!strcmp(a, "--segment-max")) {
      if (m64_arg_size("m64c", a, argv[++i], 65536, &o.segment_max)) return 1;
    } else if (!strcmp(a, "--compress")) compress = 1;
    else if (!strcmp(a, "--chunk")) {
      uint64_t chunk;
      if (m64_arg_size("m64c", a, argv[++i], 1, &chunk)) return 1;
      if (chunk > (64u << 20)) {
        fprintf(stderr, "m64c: --chunk takes at most 64M, not '%s'\n", argv[i]);
        return 1;
      }
      z.chunk_size = (uint32_t)chunk;
    } else if (!strcmp(a, "--min-gain")) {
      float g;
      if (m64_arg_float("m64c", a, argv[++i], 0, 50, &g)) return 1;
      z.min_gain = g;
    } else if (!strcmp(a, "--no-split")) z.no_split = 1;
    else if (!strcmp(a, "--long")) {
      long w;
      if (m64_arg_long("m64c", a, argv[++i], 10, 31, &w)) return 1;
      z.long_window = (int)w;
    } else if (!strcmp(a, "--key")) key = argv[++i];
    else if (!strcmp(a, "--json")) json = 1;
    else if (!strcmp(a, "-v")) o.verbose = 1;
    else if (!strcmp(a, "-q")) o.progress = 0;
    else if (!input) input = a;
    else {
      fprintf(stderr, "m64c: unexpected argument '%s'\n", a);
      return 1;
    }
  }
  if (!input) {
    fprintf(stderr, "m64c: %s needs an input file (see m64c %s --help)\n", cmd, cmd);
    return 1;
  }
  if (!strcmp(cmd, "build") && !o.output) {
    fprintf(stderr, "m64c: build needs -o OUTPUT.m64\n");
    return 1;
  }
  /* Before any work: an output that cannot be written fails now, naming the path given,
   * not after a long compile naming a temp file. build never writes over its input; the
   * rewriting commands do so by design (no -o, or -o naming the input). */
  if (o.output && m64_check_output("m64c", o.output, !strcmp(cmd, "build") ? input : NULL)) return 1;
  if (!o.output && (c->bit & (C_AOT | C_COMPRESS | C_DECOMPRESS | C_SIGN)) && m64_check_output("m64c", input, NULL))
    return 1;

  static const char *const known[] = {"build", "aot", "compress", "decompress", "sign", "info", "verify"};
  int is_known = 0;
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) is_known |= !strcmp(cmd, known[i]);
  int input_kind = M64_KIND_OTHER;
  if (is_known) { /* what the file is decides what the command can do with it */
    m64_err ke = {{0}};
    input_kind = m64_file_kind(input, &ke);
    if (!strcmp(cmd, "info") ? input_kind != M64_KIND_GGUF && check_input_kind(cmd, input, 0)
                             : check_input_kind(cmd, input, !strcmp(cmd, "build")))
      return 1;
  }
  if (json && strcmp(cmd, "info")) {
    fprintf(stderr, "m64c: --json is an option of m64c info\n");
    return 1;
  }
  m64c_install_signal_cleanup();
  m64_err e = {{0}};
  int rc;
  char fp[M64_SIGN_FINGERPRINT_CHARS] = "";
  const int rewrites = !strcmp(cmd, "aot") || !strcmp(cmd, "compress") || !strcmp(cmd, "decompress");
  const int was_signed = rewrites && signed_by(input, fp);
  m64_pubkey signer;
  if (key && (rc = m64_sign_check_key(key, &signer, &e))) { /* before the work, not after it */
    fprintf(stderr, "m64c: error: %s\n", e.msg);
    return 1;
  }
  if (!strcmp(cmd, "build")) {
    o.input = input;
    if (compress) o.compress = &z;
    rc = m64c_build(&o, &e);
    if (!rc && o.progress) fprintf(stderr, "m64c: wrote %s\n", o.output);
    if (!rc) stamp_hashed(o.output, o.verbose); /* it hashed every layer it wrote */
    if (!rc && key) rc = m64c_sign(o.output, NULL, key, o.progress, &e);
  } else if (!strcmp(cmd, "aot")) {
    rc = m64c_aot(input, o.output, o.verbose, &e);
    if (!rc && o.progress) fprintf(stderr, "m64c: native code for %s added to %s\n", m64c_host_target(),
                                   o.output ? o.output : input);
    if (!rc) rc = resign_or_drop(o.output ? o.output : input, key, was_signed, fp, o.progress, &e);
  } else if (!strcmp(cmd, "compress") || !strcmp(cmd, "decompress")) {
    const int on = cmd[0] == 'c';
    rc = m64c_recode(input, o.output, on ? &z : NULL, o.progress, &e);
    if (!rc && o.progress) fprintf(stderr, "m64c: wrote %s (%s)\n", o.output ? o.output : input,
                                   on ? "compressed" : "uncompressed");
    if (!rc) rc = resign_or_drop(o.output ? o.output : input, key, was_signed, fp, o.progress, &e);
  } else if (!strcmp(cmd, "sign")) {
    if (!key) {
      fprintf(stderr, "m64c: sign needs --key KEY (a secret key from m64c keygen)\n");
      return 1;
    }
    rc = m64c_sign(input, o.output, key, o.progress, &e);
  } else if (!strcmp(cmd, "info")) {
    if (input_kind == M64_KIND_GGUF) rc = m64c_info_gguf(input, stdout, json, NULL, &e);
    else rc = json ? m64c_info_json(input, stdout, &e) : m64c_info(input, stdout, &e);
  } else if (!strcmp(cmd, "verify")) {
    struct stat st; /* the file as verified: a change meanwhile leaves a stamp that no longer matches */
    const int have_st = stat(input, &st) == 0;
    rc = m64c_verify(input, stdout, &e);
    if (!rc && have_st) stamp_record(&st, o.verbose);
  } else {
    return unknown_command(cmd); /* a COMMANDS entry without a branch here */
  }
  if (rc) {
    fprintf(stderr, "m64c: error: %s\n", e.msg[0] ? e.msg : "failed");
    return 1;
  }
  return 0;
}
