/* m64run — run a .m64 bundle: a thin client of m64_runtime.h, in llama.cpp's CLI spirit. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "m64_formats.h"
#include "m64_runtime.h"
#include "m64run_chat.h"
#include "m64run_gguf.h"
#include "server.h"

static volatile sig_atomic_t g_stop;
/* The first Ctrl-C ends generation after the current token (the stats are printed); a
 * second one, e.g. while a module never returns, ends the process at once. */
static void on_sigint(int sig) {
  g_stop = 1;
  signal(sig, SIG_DFL);
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: m64run MODEL.m64|MODEL.gguf [options]\n"
          "  a GGUF model is compiled once into your bundle cache ($M64_CACHE_DIR, else\n"
          "  $XDG_CACHE_HOME/m64/bundles, ~/.cache/m64/bundles; m64c cache list) and run from it\n"
          "  --no-cache          GGUF: compile into a temporary bundle, deleted after the run\n"
          "  -p, --prompt TEXT   prompt (default: empty, BOS only)\n"
          "  -f, --file FILE     read the prompt from FILE\n"
          "  -n, --n-predict N   tokens to generate (default 128; stops early at end of text)\n"
          "  -c, --ctx-size N    context length (default: the model's, at most 4096)\n"
          "  -t, --threads N     threads sharing each matrix-vector product (default: all cores)\n"
          "  -e, --escape        process escapes (\\n \\t \\\\ \\\" \\xHH ...) in the prompt, -r and\n"
          "                      --system\n"
          "sampling, in llama.cpp's order (penalties, top-k, top-p, min-p, temperature):\n"
          "  --temp T            temperature, 0 = greedy (default 0.8)\n"
          "  --top-k K           keep the K most likely tokens, 0 = all (default 40)\n"
          "  --top-p P           nucleus sampling threshold, 1 = off (default 0.95)\n"
          "  --min-p P           drop tokens less likely than P times the top one, 0 = off\n"
          "                      (default 0.05)\n"
          "  --repeat-penalty F  divide the logits of the last N tokens by F, 1 = off (default 1)\n"
          "  --repeat-last-n N   the N of the penalties, 0 = off, -1 = the context (default 64)\n"
          "  --presence-penalty F   subtract F from each of those tokens' logits (default 0)\n"
          "  --frequency-penalty F  subtract F times each one's count (default 0)\n"
          "  --ignore-eos        never choose an end-of-generation token; run all -n tokens\n"
          "  -r, --reverse-prompt TEXT\n"
          "                      stop when the output shows TEXT (printed); with -i, end the\n"
          "                      reply there; may be given up to 16 times\n"
          "  --seed S            sampler seed; -1 (the default): a random one from the\n"
          "                      kernel's entropy source (shown with -v)\n"
          "  --workspace SIZE    bound on the wasm32 workspace, e.g. 512M, 4G (default: the whole\n"
          "                      model if it fits in 4 GiB); smaller models page layers in and out\n"
          "  --paging MODE       how layers reach the workspace: map: the bundle's pages mapped\n"
          "                      there (no copy; weights read-only to the module); read: read\n"
          "                      from the file (a copy, but no mapping changes per token); copy:\n"
          "                      copied from the bundle's mapping; map-read: map each slot's\n"
          "                      first layer, read where blocks stream through; auto (default):\n"
          "                      map, or map-read where layers page every token and a fresh\n"
          "                      mapping is slow here\n"
          "  --no-prefetch       page layers on demand only (no background thread)\n"
          "  --no-verify         skip the SHA-256 check of each layer at its first page-in\n"
          "                      (also skipped when an earlier run checked every layer of\n"
          "                      this unchanged file: see ~/.cache/m64/verified)\n"
          "  --reverify          check the layers even so\n"
          "  --trust-bundle-native\n"
          "                      also run native code you did not compile here (a bundle as\n"
          "                      shipped): it runs with all your rights, so only if you trust\n"
          "                      whoever built the bundle. Without it, m64run loads only code\n"
          "                      `m64c build` or `m64c aot` compiled here for you; for a bundle\n"
          "                      from someone else, `m64c aot MODEL.m64` is the safe way\n"
          "                      (SECURITY.md)\n"
          "  --local-native-only that default, stated (kept for old scripts; no effect)\n"
          "  --special           special-token text in the prompt (e.g. <|eot_id|>) becomes that\n"
          "                      token; without it such text is plain text\n"
          "  -i, --chat          interactive chat in the model's chat format: one line of\n"
          "                      stdin is one message (on a terminal: line editing, history,\n"
          "                      /help, /clear, /system TEXT, /exit); Ctrl-C stops a reply,\n"
          "                      Ctrl-C at an empty prompt (exit 130), Ctrl-D or /exit ends\n"
          "  --system TEXT       system message for the chat\n"
          "  --chat-template T   chat format (llama3, chatml, llama2, mistral, zephyr, gemma, phi3) instead\n"
          "                      of the one m64c recognised in the model\n"
          "  --chat-template-file FILE\n"
          "                      the same from a file: one of those names, or a template\n"
          "                      (e.g. a GGUF's Jinja chat_template) that prints their markers\n"
          "  --json              print one JSON object at the end instead of streaming text\n"
          "  --server            serve the OpenAI HTTP API instead of running a prompt:\n"
          "                      POST /v1/completions, /v1/chat/completions (\"stream\": true for\n"
          "                      server-sent events), GET /v1/models, /health. -n, --temp,\n"
          "                      --top-k, --top-p and --seed are the defaults of a request\n"
          "                      that leaves them out (no -n: until end of text); SIGINT or\n"
          "                      SIGTERM stops it (exit 0)\n"
          "  --host ADDR         --server: the address to listen on (default 127.0.0.1, this\n"
          "                      machine only; 0.0.0.0 opens it to the network, unauthenticated)\n"
          "  --port N            --server: the TCP port (default 8080; 0: any free one, printed)\n"
          "  --parallel N        --server: N slots, each its own session and KV cache, run\n"
          "                      requests side by side (default 1; more wait in a queue)\n"
          "  --max-body SIZE     --server: largest request body; larger ones get 413 (default 1M)\n"
          "  -v, --verbose       paging decisions and details on stderr\n"
          "  -h, --help          this text\n"
          "  --version           version, bundle format and host target\n"
          "Exit status: 0, 1 on an error, 130 when Ctrl-C stopped generation.\n");
}

/* Appends s as a JSON string body (escaped) to f. */
static void json_string(FILE *f, const char *s, size_t n) {
  fputc('"', f);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
    else if (c == '\n') fputs("\\n", f);
    else if (c == '\t') fputs("\\t", f);
    else if (c == '\r') fputs("\\r", f);
    else if (c < 0x20) fprintf(f, "\\u%04x", c);
    else fputc(c, f);
  }
  fputc('"', f);
}

static void json_ids(FILE *f, const int32_t *ids, uint32_t n) {
  fputc('[', f);
  for (uint32_t i = 0; i < n; i++) fprintf(f, "%s%d", i ? "," : "", ids[i]);
  fputc(']', f);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* name is one of m64_chat_known_templates()'s comma-separated names */
static int known_template(const char *name) {
  const size_t n = strlen(name);
  for (const char *p = m64_chat_known_templates(); *p; p += strspn(p, ", ")) {
    const size_t k = strcspn(p, ", ");
    if (k == n && !strncmp(p, name, n)) return 1;
    p += k;
  }
  return 0;
}

/* --server --no-cache: the temporary bundle goes once the slots hold it open */
static const char *g_temp_bundle;
static void remove_temp_bundle(void) {
  if (g_temp_bundle) m64run_temp_remove(g_temp_bundle);
  g_temp_bundle = NULL;
}

static char *read_text_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  size_t got;
  while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
    n += got;
    if (n == cap) {
      char *nb = (cap < (1u << 30)) ? realloc(buf, cap *= 2) : NULL;
      if (!nb) { free(buf); buf = NULL; }
      else buf = nb;
    }
  }
  fclose(f);
  *len = n;
  return buf;
}

int main(int argc, char **argv) {
  /* defaults */
  const char *model = NULL, *prompt = "", *prompt_file = NULL;
  long n_predict = 128;            /* tokens to generate */
  m64_sampling samp; /* llama.cpp's sampling defaults */
  m64_sampling_init(&samp);
  long top_k = samp.top_k, repeat_last_n = 64;
  enum { MAX_STOPS = 16 };
  char *stops[MAX_STOPS];
  size_t stop_len[MAX_STOPS];
  int n_stops = 0, escape = 0;
  uint64_t seed = 0;
  int random_seed = 1; /* --seed -1, the default: from getrandom(2), as llama.cpp's default seed */
  int json = 0, special = 0, chat = 0, n_predict_given = 0, prompt_given = 0, reverify = 0, local_only = 0;
  int no_cache = 0; /* a GGUF: into a temporary bundle, not the cache */
  int server = 0;   /* --server: the OpenAI HTTP API (server.c) */
  const char *host = NULL;
  long port = -1, parallel = 0;
  uint64_t max_body = 0;
  const char *system_msg = NULL, *chat_template = NULL, *chat_template_file = NULL;
  char chat_template_named[16];
  m64_session_options opt = {.verify_layers = 1, .page_mode = 3};
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  opt.n_threads = cores > 0 && cores <= 64 ? (uint32_t)cores : 1; /* -t: all cores */

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(short_, long_) ((!strcmp(a, short_) || !strcmp(a, long_)) && v && ++i)
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
    else if (!strcmp(a, "--version")) { m64_print_version("m64run"); return 0; }
    else if (ARG("-p", "--prompt")) prompt = v, prompt_given = 1;
    else if (ARG("-f", "--file")) prompt_file = v;
    else if (ARG("-n", "--n-predict")) { /* -1: until the context is full, as llama.cpp */
      if (m64_arg_long("m64run", a, v, -1, 1l << 20, &n_predict)) return 1;
      n_predict_given = 1;
    } else if (ARG("-c", "--ctx-size")) {
      long c; /* docs/FORMAT.md, limits */
      if (m64_arg_long("m64run", a, v, 1, 1l << 20, &c)) return 1;
      opt.n_ctx = (uint32_t)c;
    } else if (ARG("-t", "--threads")) {
      long t;
      if (m64_arg_long("m64run", a, v, 1, 64, &t)) return 1;
      opt.n_threads = (uint32_t)t;
    } else if (ARG("--temp", "--temperature")) {
      if (m64_arg_float("m64run", a, v, 0, 100, &samp.temp)) return 1;
    } else if (ARG("--top-k", "--top-k")) {
      if (m64_arg_long("m64run", a, v, 0, INT32_MAX, &top_k)) return 1;
    } else if (ARG("--top-p", "--top-p")) {
      if (m64_arg_float("m64run", a, v, 0, 1, &samp.top_p)) return 1;
    } else if (ARG("--min-p", "--min-p")) {
      if (m64_arg_float("m64run", a, v, 0, 1, &samp.min_p)) return 1;
    } else if (ARG("--repeat-penalty", "--repeat-penalty")) { /* 0 would divide by zero */
      if (m64_arg_float("m64run", a, v, 0.01, 100, &samp.repeat_penalty)) return 1;
    } else if (ARG("--repeat-last-n", "--repeat-last-n")) {
      if (m64_arg_long("m64run", a, v, -1, 1l << 20, &repeat_last_n)) return 1;
    } else if (ARG("--presence-penalty", "--presence-penalty")) {
      if (m64_arg_float("m64run", a, v, -100, 100, &samp.presence_penalty)) return 1;
    } else if (ARG("--frequency-penalty", "--frequency-penalty")) {
      if (m64_arg_float("m64run", a, v, -100, 100, &samp.frequency_penalty)) return 1;
    } else if (ARG("-r", "--reverse-prompt")) {
      if (n_stops == MAX_STOPS) {
        fprintf(stderr, "m64run: at most %d -r strings\n", MAX_STOPS);
        return 1;
      }
      if (!*v) {
        fprintf(stderr, "m64run: %s takes a non-empty text\n", a);
        return 1;
      }
      stops[n_stops++] = (char *)v; /* copied below, after -e is known */
    } else if (ARG("--seed", "-s")) {
      if (m64_arg_seed("m64run", a, v, &seed, &random_seed)) return 1;
    } else if (ARG("--workspace", "-w")) {
      if (m64_arg_size("m64run", a, v, 1, &opt.workspace_bytes)) return 1;
    } else if (ARG("--paging", "--paging")) {
      if (!strcmp(v, "copy")) opt.page_mode = 0;
      else if (!strcmp(v, "map")) opt.page_mode = 1;
      else if (!strcmp(v, "read")) opt.page_mode = 2;
      else if (!strcmp(v, "auto")) opt.page_mode = 3;
      else if (!strcmp(v, "map-read")) opt.page_mode = 4;
      else {
        fprintf(stderr, "m64run: --paging takes auto, map, read, map-read or copy, not '%s'\n", v);
        return 1;
      }
    } else if (!strcmp(a, "--no-prefetch")) opt.no_prefetch = 1;
    else if (!strcmp(a, "--no-verify")) opt.verify_layers = 0;
    else if (!strcmp(a, "--ignore-eos")) samp.no_eog = 1;
    else if (!strcmp(a, "-e") || !strcmp(a, "--escape")) escape = 1;
    else if (!strcmp(a, "--reverify")) reverify = 1;
    else if (!strcmp(a, "--no-cache")) no_cache = 1;
    else if (!strcmp(a, "--trust-bundle-native")) opt.trust_bundle_native = 1;
    else if (!strcmp(a, "--local-native-only")) local_only = 1; /* the default since the mark */
    else if (!strcmp(a, "--json")) json = 1;
    else if (!strcmp(a, "--server")) server = 1;
    else if (ARG("--host", "--host")) host = v;
    else if (ARG("--port", "--port")) {
      if (m64_arg_long("m64run", a, v, 0, 65535, &port)) return 1;
    } else if (ARG("--parallel", "-np")) {
      if (m64_arg_long("m64run", a, v, 1, 16, &parallel)) return 1;
    } else if (ARG("--max-body", "--max-body")) {
      if (m64_arg_size("m64run", a, v, 1024, &max_body)) return 1;
    }
    else if (!strcmp(a, "--special")) special = 1;
    else if (!strcmp(a, "-i") || !strcmp(a, "--chat")) chat = 1;
    else if (ARG("--system", "--system")) system_msg = v;
    else if (ARG("--chat-template", "--chat-template")) chat_template = v;
    else if (ARG("--chat-template-file", "--chat-template-file")) chat_template_file = v;
    else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) opt.verbose = 1;
    else if (a[0] == '-') {
      fprintf(stderr, "m64run: unknown option or missing value: '%s' (see m64run --help)\n", a);
      return 1;
    } else if (!model) model = a;
    else {
      fprintf(stderr, "m64run: unexpected argument '%s'\n", a);
      return 1;
    }
#undef ARG
  }
  if (!model) {
    usage(stderr);
    return 1;
  }
  if (local_only && opt.trust_bundle_native) {
    fprintf(stderr, "m64run: --local-native-only and --trust-bundle-native contradict each other: give one\n");
    return 1;
  }
  /* Options that would have no effect are errors, not silently dropped. */
  const char *clash = prompt_given && prompt_file ? "-p and -f both give the prompt: give one"
                      : chat && (prompt_given || prompt_file)
                          ? "-i reads the messages from stdin: -p and -f have no effect there (use --system for "
                            "an instruction)"
                      : chat && json             ? "--json has no effect with -i"
                      : server && (chat || json || prompt_given || prompt_file)
                          ? "--server takes its prompts from HTTP requests: -i, --json, -p and -f have no effect "
                            "there"
                      : server && system_msg     ? "--system has no effect with --server: a request gives its own"
                      : !server && (host || port >= 0 || parallel || max_body)
                          ? "--host, --port, --parallel and --max-body are for --server"
                      : !chat && system_msg      ? "--system is the chat's system message: it needs -i"
                      : !chat && !server && chat_template
                          ? "--chat-template chooses the chat's format: it needs -i or --server"
                      : !chat && chat_template_file ? "--chat-template-file chooses the chat's format: it needs -i"
                      : chat_template && chat_template_file ? "--chat-template and --chat-template-file both name "
                                                              "the format: give one"
                                                 : NULL;
  if (clash) {
    fprintf(stderr, "m64run: %s\n", clash);
    return 1;
  }
  if (chat_template_file) { /* a name, or a template (Jinja) whose markers name a known format */
    size_t n;
    char *t = read_text_file(chat_template_file, &n);
    if (!t) {
      fprintf(stderr, "m64run: cannot read the chat template file %s\n", chat_template_file);
      return 1;
    }
    size_t a = 0, b = n;
    while (a < b && strchr(" \t\r\n", t[a])) a++;
    while (b > a && strchr(" \t\r\n", t[b - 1])) b--;
    const char *known = m64_chat_known_templates(), *name = NULL;
    for (const char *k = known; *k && !name;) { /* is the whole text one of the names? */
      size_t kl = strcspn(k, ", ");
      if (kl == b - a && !memcmp(k, t + a, kl)) snprintf(chat_template_named, sizeof chat_template_named, "%.*s",
                                                         (int)kl, k), name = chat_template_named;
      k += kl;
      k += strspn(k, ", ");
    }
    if (!name) {
      const char *d = m64_chat_template_detect(t, n);
      if (strcmp(d, "none")) name = d;
    }
    free(t);
    if (!name) {
      fprintf(stderr, "m64run: %s is not a chat template m64 knows: neither one of the names (%s) nor a template "
                      "that prints their markers\n", chat_template_file, known);
      return 1;
    }
    chat_template = name;
  }
  if (random_seed && m64_random_seed(&seed)) {
    fprintf(stderr, "m64run: error: the kernel gave no random bytes for the seed (getrandom); give --seed N\n");
    return 1;
  }
  samp.top_k = (int32_t)top_k;
  char *file_text = NULL, *system_copy = NULL;
  size_t prompt_len = strlen(prompt);
  if (prompt_file) {
    if (!(file_text = read_text_file(prompt_file, &prompt_len))) {
      fprintf(stderr, "m64run: cannot read prompt file %s\n", prompt_file);
      return 1;
    }
    prompt = file_text;
  } else if (escape && !(file_text = strdup(prompt))) {
    fprintf(stderr, "m64run: out of memory\n");
    return 1;
  } else if (escape) {
    prompt = file_text;
  }
  if (escape) {
    m64_unescape(file_text, &prompt_len);
    if (system_msg && (system_copy = strdup(system_msg))) {
      size_t n = strlen(system_copy);
      m64_unescape(system_copy, &n);
      system_msg = system_copy;
    }
  }
  for (int k = 0; k < n_stops; k++) { /* -e applies to the stop strings too, as llama.cpp's */
    if (!(stops[k] = strdup(stops[k]))) {
      fprintf(stderr, "m64run: out of memory\n");
      return 1;
    }
    stop_len[k] = strlen(stops[k]);
    if (escape) m64_unescape(stops[k], &stop_len[k]);
    if (!stop_len[k]) {
      fprintf(stderr, "m64run: -r text is empty after -e\n");
      return 1;
    }
  }

  m64_err e = {{0}};
  m64_session *s = NULL;
  int32_t *prompt_ids = NULL, *out_ids = NULL, *hist = NULL;
  char *text = NULL;
  size_t text_len = 0, text_cap = 0, printed = 0;
  uint32_t n_prompt = 0, n_out = 0;
  int rc = 0;
  double t_start = now(), t_prefill = 0, t_decode = 0;

  /* a GGUF runs from its bundle in the cache, compiled on first use (m64run_gguf.c) */
  char bundle_path[4096];
  int temp_bundle = 0;
  if ((rc = m64run_resolve_model(model, no_cache, opt.verbose, bundle_path, sizeof bundle_path, &temp_bundle, &e)))
    goto fail;
  const char *model_arg = model;
  model = bundle_path;
  if (temp_bundle && !reverify) opt.verify_layers = 0; /* built and hashed just now, by us */

  /* the verified-bundle stamps decide whether layers are hashed (the session's policy) */
  opt.verify_stamps = !reverify;
  if (server) {
    const char *slash = strrchr(model_arg, '/');
    if (chat_template && !known_template(chat_template)) {
      rc = m64_fail(&e, M64_EUNSUPPORTED, "--chat-template %s is not one m64 knows (known: %s)", chat_template,
                    m64_chat_known_templates());
      goto fail;
    }
    g_temp_bundle = temp_bundle ? bundle_path : NULL;
    const m64run_server_opts so = {
        .bundle_path = bundle_path,
        .model_name = slash ? slash + 1 : model_arg,
        .session = &opt,
        .host = host ? host : "127.0.0.1",
        .port = port >= 0 ? (unsigned)port : 8080,
        .parallel = parallel ? (unsigned)parallel : 1,
        .max_body = max_body ? (size_t)max_body : M64_SERVER_MAX_BODY,
        .defaults = {n_predict_given ? n_predict : -1, samp.temp, samp.top_p, (int32_t)top_k, !random_seed, seed},
        .gen = {chat_template, special},
        .after_open = remove_temp_bundle,
    };
    rc = m64run_server(&so, &e);
    if (temp_bundle) remove_temp_bundle();
    if (rc) goto fail;
    free(file_text);
    return 0;
  }
  rc = m64_session_open(model, &opt, &s, &e);
  if (temp_bundle) m64run_temp_remove(model); /* the session holds what it needs open */
  if (rc) goto fail;
  m64_session_seed(s, seed);
  if (opt.verbose) fprintf(stderr, "m64run: seed %llu%s\n", (unsigned long long)seed, random_seed ? " (random)" : "");
  const uint32_t ctx_train = m64_session_n_ctx_train(s);
  if (opt.n_ctx && ctx_train && opt.n_ctx > ctx_train)
    fprintf(stderr, "m64run: warning: -c %u is beyond the context of %u the model was trained with; text past "
                    "that point may degrade\n", opt.n_ctx, ctx_train);
  if (chat) {
    const m64run_chat_opts co = {chat_template, system_msg, samp, repeat_last_n, (const char *const *)stops,
                                 stop_len, n_stops, n_predict_given ? n_predict : -1, opt.verbose};
    int interrupted = 0;
    if ((rc = m64run_chat(s, &co, &interrupted, &e))) goto fail;
    m64_session_close(s);
    free(file_text);
    free(system_copy);
    for (int k = 0; k < n_stops; k++) free(stops[k]);
    return interrupted ? 130 : 0;
  }
  const int tok_flags = M64_TOKENIZE_ADD_BOS | (special ? M64_TOKENIZE_SPECIAL : 0);
  if ((rc = m64_session_tokenize(s, prompt, prompt_len, tok_flags, &prompt_ids, &n_prompt, &e))) goto fail;
  if (n_prompt == 0) { /* a vocabulary without BOS (e.g. Qwen 2) needs some text to start from */
    rc = m64_fail(&e, M64_EFORMAT, "the prompt is empty and this vocabulary adds no BOS: give -p or -f");
    goto fail;
  }
  if (n_prompt >= 2 && prompt_ids[0] == m64_session_bos(s) && prompt_ids[1] == prompt_ids[0])
    fprintf(stderr, "m64run: warning: the prompt starts with a BOS token and the model adds one too: two BOS tokens "
                    "(drop it from the prompt)\n");
  const uint32_t n_ctx = m64_session_n_ctx(s);
  if (n_prompt >= n_ctx) {
    rc = m64_fail(&e, M64_ELIMIT, "prompt of %u tokens does not fit the context of %u (-c)", n_prompt, n_ctx);
    goto fail;
  }
  if (opt.verbose) {
    fprintf(stderr, "m64run: native code %s, %s; %u threads, context %u, prompt tokens ",
            m64_session_native_target(s), m64_session_native_source(s), m64_session_n_threads(s), n_ctx);
    json_ids(stderr, prompt_ids, n_prompt);
    fputc('\n', stderr);
  }
  if (n_predict < 0 || (uint64_t)n_predict > n_ctx - n_prompt) n_predict = n_ctx - n_prompt;
  /* the context so far (prompt, then output), whose last N tokens the penalties count, as
   * llama.cpp's CLI feeds its sampler the prompt too */
  hist = malloc(((size_t)n_prompt + (size_t)n_predict + 1) * sizeof *hist);
  out_ids = hist ? hist + n_prompt : NULL;
  if (!hist) {
    rc = m64_fail(&e, M64_ENOMEM, "out of memory");
    goto fail;
  }
  memcpy(hist, prompt_ids, (size_t)n_prompt * sizeof *hist);
  const uint32_t last_n = repeat_last_n < 0 ? n_ctx : (uint32_t)repeat_last_n;
  signal(SIGINT, on_sigint);

  if (!json) { /* echo the prompt as llama.cpp does */
    fwrite(prompt, 1, prompt_len, stdout);
    fflush(stdout);
  }

  /* prefill: the prompt through the model in batches; the last logits pick the first token */
  double t0 = now();
  if ((rc = m64_session_eval_batch(s, prompt_ids, n_prompt, 0, NULL, &e))) goto fail;
  t_prefill = now() - t0;

  /* decode: its rate counts the forward passes timed (the first token comes from the
   * prefill's logits, so n generated tokens take n - 1 passes, or n when an end token
   * stops the loop), as llama.cpp's (generated - 1) / (first to last token) */
  t0 = now();
  uint32_t n_passes = 0;
  int32_t prev = prompt_ids[n_prompt - 1];
  for (uint32_t pos = n_prompt; n_out < (uint32_t)n_predict && !g_stop; pos++) {
    int32_t id;
    const uint32_t n_hist = n_prompt + n_out, n_last = n_hist < last_n ? n_hist : last_n;
    if ((rc = m64_session_sample_ex(s, &samp, hist + n_hist - n_last, n_last, &id, &e))) goto fail;
    int eog;
    if ((rc = m64_session_is_eog(s, id, &eog, &e))) goto fail;
    if (eog) break; /* EOS, <|eot_id|>, <|im_end|> ... */
    out_ids[n_out++] = id;
    char piece[1024];
    size_t n;
    if ((rc = m64_session_piece(s, prev, id, piece, sizeof piece, &n, &e))) goto fail;
    if (text_len + n + 1 > text_cap) {
      text_cap = (text_len + n + 1) * 2;
      char *nt = realloc(text, text_cap);
      if (!nt) { rc = m64_fail(&e, M64_ENOMEM, "out of memory"); goto fail; }
      text = nt;
    }
    memcpy(text + text_len, piece, n);
    text_len += n;
    /* -r: a stop string that ends in this piece ends the output right after it */
    int stopped = 0;
    for (int k = 0; k < n_stops && !stopped; k++) {
      const size_t from = text_len > n + stop_len[k] - 1 ? text_len - n - stop_len[k] + 1 : 0;
      for (size_t at = from; at + stop_len[k] <= text_len; at++)
        if (!memcmp(text + at, stops[k], stop_len[k])) {
          text_len = at + stop_len[k];
          stopped = 1;
          break;
        }
    }
    if (!json) { /* whole UTF-8 characters only: a token may end inside one */
      size_t ready = m64_utf8_complete(text + printed, text_len - printed);
      fwrite(text + printed, 1, ready, stdout);
      fflush(stdout);
      printed += ready;
    }
    prev = id;
    if (stopped || n_out == (uint32_t)n_predict || pos + 1 >= n_ctx) break;
    if ((rc = m64_session_eval(s, id, pos, NULL, &e))) goto fail;
    n_passes++;
  }
  t_decode = now() - t0;

  m64_session_stats st;
  m64_session_stats_get(s, &st);
  const double prefill_tps = t_prefill > 0 ? n_prompt / t_prefill : 0;
  const double decode_tps = t_decode > 0 && n_passes ? n_passes / t_decode : 0;
  if (!json) {
    if (text) fwrite(text + printed, 1, text_len - printed, stdout); /* a held-back partial character */
    fputc('\n', stdout);
  }
  const uint32_t n_tokens = n_prompt + n_out;
  fprintf(stderr,
          "\nm64run: %s%u prompt tokens in %.3f s (%.1f tok/s), %u generated in %.3f s (%.1f tok/s)\n"
          "m64run: paging: %llu of %llu layer requests served without waiting, %llu page-ins "
          "(%.1f MiB, %.1f MiB per token), %llu evictions, %.3f s placing, %.3f s stalled\n"
          "m64run: workspace %.1f MiB, layer cache %.1f MiB in %u slot%s; total %.3f s\n",
          g_stop ? "interrupted: " : "", n_prompt, t_prefill, prefill_tps, n_out, t_decode, decode_tps,
          (unsigned long long)st.layer_hits, (unsigned long long)st.layer_acquires,
          (unsigned long long)st.layer_page_ins, st.bytes_paged / 1048576.0,
          n_tokens ? st.bytes_paged / 1048576.0 / n_tokens : 0.0, (unsigned long long)st.evictions,
          st.page_seconds, st.stall_seconds, st.workspace_bytes / 1048576.0, st.cache_bytes / 1048576.0,
          st.cache_slots, st.cache_slots == 1 ? "" : "s", now() - t_start);
  if (st.expert_acquires) {
    const uint64_t cached = st.expert_acquires - (st.expert_page_ins < st.expert_acquires ? st.expert_page_ins : st.expert_acquires);
    fprintf(stderr,
            "m64run: experts: %llu requests (%.1f per token), %llu found in the cache (%.1f%%), %llu paged in; "
            "%llu served without waiting\n",
            (unsigned long long)st.expert_acquires, n_tokens ? (double)st.expert_acquires / n_tokens : 0.0,
            (unsigned long long)cached, 100.0 * (double)cached / (double)st.expert_acquires,
            (unsigned long long)st.expert_page_ins, (unsigned long long)st.expert_hits);
  }
  if (json) {
    printf("{\"prompt_tokens\":");
    json_ids(stdout, prompt_ids, n_prompt);
    printf(",\"tokens\":");
    json_ids(stdout, out_ids, n_out);
    printf(",\"text\":");
    json_string(stdout, text ? text : "", text_len);
    printf(",\"prefill_tok_s\":%.3f,\"decode_tok_s\":%.3f,\"layer_requests\":%llu,"
           "\"layer_hits\":%llu,\"layer_page_ins\":%llu,\"bytes_paged\":%llu,\"evictions\":%llu,"
           "\"stall_s\":%.4f,\"workspace_bytes\":%llu,\"cache_slots\":%u,\"expert_requests\":%llu,"
           "\"expert_hits\":%llu,\"expert_page_ins\":%llu}\n",
           prefill_tps, decode_tps, (unsigned long long)st.layer_acquires,
           (unsigned long long)st.layer_hits, (unsigned long long)st.layer_page_ins,
           (unsigned long long)st.bytes_paged, (unsigned long long)st.evictions, st.stall_seconds,
           (unsigned long long)st.workspace_bytes, st.cache_slots, (unsigned long long)st.expert_acquires,
           (unsigned long long)st.expert_hits, (unsigned long long)st.expert_page_ins);
  }
  m64_session_close(s);
  free(prompt_ids);
  free(hist);
  free(text);
  free(file_text);
  free(system_copy);
  for (int k = 0; k < n_stops; k++) free(stops[k]);
  return g_stop ? 130 : 0; /* as a shell reports a process that SIGINT ended: 128 + 2 */

fail:
  fflush(stdout);
  fprintf(stderr, "m64run: error: %s\n", e.msg[0] ? e.msg : "failed");
  m64_session_close(s);
  free(prompt_ids);
  free(hist);
  free(text);
  free(file_text);
  free(system_copy);
  for (int k = 0; k < n_stops; k++) free(stops[k]);
  return 1;
}
