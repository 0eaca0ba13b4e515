/* compiler_internal.h — what the passes of m64c hand to each other. */
#ifndef M64_COMPILER_INTERNAL_H
#define M64_COMPILER_INTERNAL_H

#include "m64_compiler.h"

/* The model as the passes see it: hyperparameters, then the image layout
 * (layer 0 = globals, layer 1 + l = blk.l), each tensor with its GGUF source. */
typedef struct m64c_plan {
  char arch[32];
  char name[128];
  uint32_t n_vocab, dim, n_blocks, n_heads, n_kv_heads, head_dim, kv_dim, ffn, n_ctx_train;
  uint32_t q_dim;                     /* n_heads * head_dim: dim, unless the GGUF gives a head size */
  float rms_eps, rope_base;
  int tied_output;                    /* no output.weight: logits use token_embd */
  int qkv_bias;                       /* blocks carry attn_q/k/v biases (qwen2) */
  int rope_neox;                      /* RoPE pairs (i, i + head_dim/2) (qwen2) */
  int qk_norm;                        /* per-head RMSNorm of q and k before RoPE (qwen3) */
  int fused;                          /* q/k/v and gate/up may come fused in one tensor (phi3) */
  int gemma;                          /* 2, 3: Gemma 2/3's embedding scale, post-norms, GELU
                                         FFN, query scale and sliding-window layers; else 0 */
  float embed_scale;                  /* gemma: sqrtf(dim), times every token embedding */
  float q_scale;                      /* gemma: q is multiplied by it (attention then
                                         scales by 1) */
  uint32_t sliding_window;            /* gemma3: a sliding layer's token sees this many
                                         positions, its own included; 0 = none */
  uint32_t swa_period;                /* layer l slides unless l % period == period - 1 */
  float rope_base_swa;                /* RoPE base of the sliding layers */
  float rope_scale;                   /* RoPE angle factor of the other layers: 1 / linear
                                         rope scaling factor (1 = none) */
  float rope_scale_swa;               /* and of the sliding layers (gemma3: 1) */
  float attn_softcap, final_softcap;  /* gemma2: score = c tanh(score / c), and the logits
                                         likewise; 0 = none */
  uint32_t n_expert, n_expert_used;   /* Mixture of Experts: each block's FFN is K = n_expert_used
                                         of n_expert experts, each of ffn rows (0: dense FFN);
                                         expert x of block l is layer 1 + n_blocks + l * E + x */
  float *rope_freqs;                  /* head_dim/2 divisors of rope_freqs.weight, or NULL */
  const m64_gguf_tensor *rope_freqs_source;

  m64_layer_entry *layers;            /* n_blocks * (1 + n_expert) + 1 */
  uint32_t n_layers;
  m64_tensor_entry *tensors;
  const m64_gguf_tensor **sources;    /* per tensor */
  m64_gguf_tensor *parts;             /* row runs of fused tensors that sources point at */
  const m64_gguf_tensor **part_of;    /* per part: the fused GGUF tensor it is rows of */
  uint32_t n_parts;
  uint32_t n_tensors;
  uint32_t n_segments;
  uint64_t segment_sizes[M64_MAX_SECTIONS];
  uint64_t total_bytes;               /* weight bytes */
} m64c_plan;

/* plan.c */
int m64c_plan_model(const m64_gguf *g, uint64_t segment_max, m64c_plan *p, m64_err *e);
void m64c_plan_free(m64c_plan *p);
/* Makes text from a model file safe to place in a C comment or a metadata line: control
 * characters and the '/' of a comment end become '?'. */
void m64c_plain_text(char *s);
/* What plan.c accepts (m64c info on a GGUF names everything else): an architecture, a
 * matrix type with kernels; the lists as text. */
int m64c_arch_supported(const char *name, size_t len);
int m64c_type_supported(uint32_t type);
const char *m64c_supported_archs(void);
const char *m64c_supported_types(void);
/* Index of tensor `name` inside layer `layer`, or -1. */
int m64c_plan_find(const m64c_plan *p, uint32_t layer, const char *name);

/* chat_template.c: the chat format tokenizer.chat_template uses ("llama3", "chatml",
 * "llama2", "mistral", "zephyr"), or "none". */
const char *m64c_chat_template_name(const m64_gguf *g);

/* codegen.c: writes model.c for the plan. */
int m64c_emit_model_c(const m64c_plan *p, const char *gguf_name, FILE *out, m64_err *e);
/* The specialized matvec kernels model.c gets ("mv_q4_k_4096x4096 ..."); returns how many. */
size_t m64c_kernel_list(const m64c_plan *p, char *buf, size_t cap);

/* toolchain.c */
typedef struct m64c_workdir { char path[512]; int keep; } m64c_workdir;
/* The only files a build creates in its work directory: removed when done (m64c_workdir_close)
 * or when a signal stops m64c (cleanup.c). */
#define M64C_N_WORK_FILES 8
extern const char *const M64C_WORK_FILES[M64C_N_WORK_FILES];
int m64c_workdir_open(m64c_workdir *w, const char *keep_dir, m64_err *e);
void m64c_workdir_close(m64c_workdir *w);
/* Compiles <dir>/model.c with the module sources into <dir>/module.wasm (variants bit
 * M64C_WASM_SIMD128) and <dir>/module.relaxed.wasm (M64C_WASM_RELAXED: the browsers' variant
 * with relaxed SIMD's i8 dot), both at once when both are asked for: two clang runs that
 * share nothing, on two cores. */
#define M64C_WASM_SIMD128 1
#define M64C_WASM_RELAXED 2
int m64c_compile_wasm(const m64c_workdir *w, int variants, int verbose, m64_err *e);
/* 0 if the module sources (and, aot != 0, wasm2c) are where m64c looks for them, else an
 * error naming the place and the variable that moves it (toolchain.c's header). */
int m64c_check_toolchain(int aot, m64_err *e);
/* 0 if this host's clang builds native code for target, else an error naming the known ones. */
int m64c_check_target(const char *target, m64_err *e);
/* build.c: --target's comma-separated list (NULL: this host's target) into t[0..*n): known
 * names only, each once, at most M64C_MAX_TARGETS; M64_EUNSUPPORTED naming the bad item. */
#define M64C_MAX_TARGETS 8
#define M64C_TARGET_NAME 48
int m64c_parse_targets(const char *list, char t[][M64C_TARGET_NAME], int *n, m64_err *e);
/* wasm2c + clang: <dir>/module.wasm -> <dir>/module.so, for target. */
int m64c_compile_native(const m64c_workdir *w, const char *target, int verbose, m64_err *e);
/* Reads a whole file into a malloc'ed buffer. */
int m64c_read_file(const char *path, uint8_t **data, size_t *size, m64_err *e);
int m64c_write_file(const char *path, const void *data, size_t size, m64_err *e);

/* build.c: the external tools m64c_build drives (clang-19, wasm2c). The fuzz harness
 * substitutes its own so the rest of the pipeline runs fast on mutated models. */
typedef struct m64c_tools {
  int (*compile_wasm)(const m64c_workdir *w, int variants, int verbose, m64_err *e);
  int (*compile_native)(const m64c_workdir *w, const char *target, int verbose, m64_err *e);
} m64c_tools;
int m64c_build_with(const m64c_options *o, const m64c_tools *tools, m64_err *e);

/* cleanup.c: the SIGINT/SIGTERM cleanup removes bw's temp file and wd's work directory
 * (either may be NULL; both NULL: forget them). */
void m64c_track_temp(const m64_bundle_writer *bw, const m64c_workdir *wd);

/* rewrite.c: sets bw's layout to b's raw layout and writes every tensor of b, decoding
 * compressed layers; each layer is checked against its hashes first, so corruption is not
 * baked into new hashes. */
int m64c_copy_layers(const m64_bundle *b, m64_bundle_writer *bw, int progress, m64_err *e);

/* build.c: adds the NATIVE section for target from the module.so in wd (compiled from
 * wasm), marked as compiled here by this user. */
int m64c_add_native(m64_bundle_writer *bw, const m64c_workdir *wd, const char *target, const uint8_t *wasm,
                    size_t wasm_size, m64_err *e);

/* info.c: a bundle's signature status in one line (m64c info, verify, sign). */
struct m64_sig_info;
void m64c_print_signature(const struct m64_sig_info *sig, FILE *out);

/* cleanup.c: the SIGINT/SIGTERM cleanup removes this temp file (NULL: forget it). */
void m64c_track_temp_file(const char *path);

/* info_summary.c: what `m64c info` says first about a model, GGUF or bundle. */
typedef struct m64c_type_count {
  uint64_t tensors, bytes;
  uint64_t bad; /* GGUF: tensors of this type the module cannot take in their role */
} m64c_type_count;
typedef struct m64c_summary {
  char name[128], arch[72], tok_model[72], pre[72], chat[16];
  char file_type[48];   /* llama.cpp's name ("Q4_K_M"), else "mostly T" (m64c_summary_finish) */
  int arch_ok;
  int has_template;     /* the GGUF holds a chat template: 1, 0; -1 unknown (a bundle) */
  uint64_t params, n_tensors, vocab;
  uint32_t ctx, blocks, dim, heads, kv_heads, ffn;
  int have_ctx, have_blocks, have_dim, have_heads, have_kv_heads, have_ffn;
  uint32_t experts, experts_used; /* Mixture of Experts (0: dense) */
  uint64_t expert_bytes;          /* every block's experts' weights */
  m64c_type_count types[M64_GGML_TYPE_COUNT];
} m64c_summary;
const char *m64c_ftype_name(uint32_t ftype); /* NULL if unknown */
void m64c_summary_finish(m64c_summary *s);
/* "  name: ..." lines, one per fact. */
void m64c_summary_text(const m64c_summary *s, FILE *out);
/* "\"name\":...,\"architecture\":..." : the facts as JSON members, no braces. */
void m64c_summary_json(const m64c_summary *s, FILE *out);
void m64c_json_str(FILE *out, const char *s); /* s as a JSON string, quoted and escaped */
void m64c_count_text(uint64_t n, char *out, size_t cap); /* 1.2K, 3.4M, 7.24B */
void m64c_size_text(uint64_t bytes, char *out, size_t cap); /* 512 bytes, 3.2 KiB, 1.5 MiB, 3.82 GiB */

/* progress.c: a progress bar for long writes and hashes, as an m64_progress_fn. On a tty
 * it is redrawn in place (stage, bar, percent, MiB done and MiB/s); otherwise a plain line
 * per quarter, for work of at least M64C_BAR_PLAIN_MIN bytes; disabled: nothing (-q). */
#define M64C_BAR_PLAIN_MIN (256ull << 20)
typedef struct m64c_bar {
  int mode; /* 0 off, 1 tty, 2 plain lines */
  char what[24];
  double t0, last;
  int step, open;
} m64c_bar;
void m64c_bar_init(m64c_bar *b, int enabled);
void m64c_bar_cb(void *bar, const char *what, uint64_t done, uint64_t total);
void m64c_bar_done(m64c_bar *b); /* ends the bar's line */

/* Progress line on stderr ("[3/6] compiling wasm ..."). */
void m64c_progress(int enabled, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
