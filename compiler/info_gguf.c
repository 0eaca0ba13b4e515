/* info_gguf.c — `m64c info MODEL.gguf`: what `m64c build` would make of a GGUF, for
 * someone arriving from llama.cpp with a file in hand. It names every reason the build
 * would stop (each unsupported architecture, tensor type, tokenizer), where the build
 * itself stops at the first; when none of those applies, it runs the build's own checks
 * (m64c_check_gguf) and reports their message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler_internal.h"
#include "tokblob.h"

#define MAX_PROBLEMS 48

typedef struct bad_row {
  char first_bad[M64_MAX_NAME + 1]; /* the first tensor of this type the module cannot take */
  int bad_vector;       /* the first bad one is a norm vector (must be F32) */
} bad_row;

typedef struct gguf_facts {
  m64c_summary sum;     /* what info_summary.c prints, the same for a bundle */
  bad_row bad[M64_GGML_TYPE_COUNT];
  char problems[MAX_PROBLEMS][600];
  int n_problems;
} gguf_facts;

static void add_problem(gguf_facts *f, const char *msg) {
  if (f->n_problems < MAX_PROBLEMS) snprintf(f->problems[f->n_problems++], sizeof f->problems[0], "%s", msg);
}

/* A GGUF string as printable text: control characters become '?', at most cap - 1 bytes. */
static void copy_str(char *out, size_t cap, m64_str s) {
  size_t n = s.len < cap - 1 ? (size_t)s.len : cap - 1;
  for (size_t i = 0; i < n; i++) out[i] = (unsigned char)s.ptr[i] < 0x20 || s.ptr[i] == 0x7f ? '?' : s.ptr[i];
  out[n] = 0;
}

static int arch_key(const m64_gguf *g, const char *arch, const char *key, uint32_t *v) {
  char full[160];
  snprintf(full, sizeof full, "%s.%s", arch, key);
  return m64_gguf_get_u32(g, full, v) == 0;
}

static void gather(const m64_gguf *g, gguf_facts *ff) {
  m64_str s;
  char msg[600];
  m64c_summary *f = &ff->sum;
  gguf_facts *const problems = ff;
  if (m64_gguf_get_str(g, "general.architecture", &s) == 0) {
    copy_str(f->arch, sizeof f->arch, s);
    f->arch_ok = m64c_arch_supported(s.ptr, s.len);
    if (!f->arch_ok) {
      snprintf(msg, sizeof msg, "architecture '%s' is not supported (supported: %s)", f->arch, m64c_supported_archs());
      add_problem(problems, msg);
    }
  } else {
    snprintf(f->arch, sizeof f->arch, "(none)");
    add_problem(problems, "missing metadata key 'general.architecture'");
  }
  if (m64_gguf_get_str(g, "general.name", &s) == 0) copy_str(f->name, sizeof f->name, s);
  f->have_ctx = arch_key(g, f->arch, "context_length", &f->ctx);
  f->have_blocks = arch_key(g, f->arch, "block_count", &f->blocks);
  f->have_dim = arch_key(g, f->arch, "embedding_length", &f->dim);
  f->have_heads = arch_key(g, f->arch, "attention.head_count", &f->heads);
  f->have_kv_heads = arch_key(g, f->arch, "attention.head_count_kv", &f->kv_heads);
  f->have_ffn = arch_key(g, f->arch, "feed_forward_length", &f->ffn);
  if (!arch_key(g, f->arch, "expert_count", &f->experts) || !arch_key(g, f->arch, "expert_used_count", &f->experts_used))
    f->experts = f->experts_used = 0;

  f->n_tensors = m64_gguf_n_tensors(g);
  for (uint64_t i = 0; i < f->n_tensors; i++) {
    const m64_gguf_tensor *t = m64_gguf_tensor_at(g, i);
    if (t->type >= M64_GGML_TYPE_COUNT) continue; /* the reader accepts known types only */
    m64c_type_count *r = &f->types[t->type];
    r->tensors++;
    r->bytes += t->nbytes;
    f->params += t->n_elems;
    if (strstr(t->name, "_exps.")) f->expert_bytes += t->nbytes;
    if (!strcmp(t->name, "rope_freqs.weight")) continue; /* constants of model.c, checked by the plan */
    const int vector = t->n_dims == 1;
    if (vector ? t->type == M64_GGML_F32 : m64c_type_supported(t->type)) continue;
    if (!r->bad++) {
      snprintf(ff->bad[t->type].first_bad, sizeof ff->bad[0].first_bad, "%s", t->name);
      ff->bad[t->type].bad_vector = vector;
    }
  }
  for (uint32_t t = 0; t < M64_GGML_TYPE_COUNT; t++) {
    const m64c_type_count *r = &f->types[t];
    if (!r->bad) continue;
    const char *name = m64_ggml_type_info(t).name;
    if (ff->bad[t].bad_vector)
      snprintf(msg, sizeof msg, "tensor type %s on norm weights (%llu, e.g. '%s'): norm weights must be F32", name,
               (unsigned long long)r->bad, ff->bad[t].first_bad);
    else
      snprintf(msg, sizeof msg, "tensor type %s (%llu tensor%s, e.g. '%s') has no kernel in m64 (supported: %s)",
               name, (unsigned long long)r->bad, r->bad == 1 ? "" : "s", ff->bad[t].first_bad, m64c_supported_types());
    add_problem(problems, msg);
  }

  m64_gguf_vtype elem;
  if (m64_gguf_get_arr(g, "tokenizer.ggml.tokens", &elem, &f->vocab)) f->vocab = 0;
  snprintf(f->tok_model, sizeof f->tok_model, "(none)");
  if (m64_gguf_get_str(g, "tokenizer.ggml.model", &s) == 0) copy_str(f->tok_model, sizeof f->tok_model, s);
  if (m64_gguf_get_str(g, "tokenizer.ggml.pre", &s) == 0) copy_str(f->pre, sizeof f->pre, s);
  /* the tokenizer as the build converts it: its message names what it cannot take */
  uint8_t *blob = NULL;
  size_t blob_size = 0;
  m64_err te = {{0}};
  if (m64_tokblob_build(g, &blob, &blob_size, &te)) add_problem(problems, te.msg);
  free(blob);

  f->has_template = m64_gguf_find_kv(g, "tokenizer.chat_template") >= 0;
  snprintf(f->chat, sizeof f->chat, "%s", m64c_chat_template_name(g));
  uint32_t ftype;
  if (m64_gguf_get_u32(g, "general.file_type", &ftype) == 0) {
    const char *fname = m64c_ftype_name(ftype);
    if (fname) snprintf(f->file_type, sizeof f->file_type, "%s", fname);
    else snprintf(f->file_type, sizeof f->file_type, "file type %u", ftype);
  }
  m64c_summary_finish(f);

  /* Nothing named so far: the build's own checks have the last word (shapes, unknown
   * tensors, hyperparameters), with the message m64c build would give. */
  if (!ff->n_problems) {
    m64c_plan plan;
    m64_err pe = {{0}};
    if (m64c_plan_model(g, 0, &plan, &pe)) add_problem(problems, pe.msg);
    else m64c_plan_free(&plan);
  }
}

static const char *base_name(const char *p) {
  const char *b = strrchr(p, '/');
  return b ? b + 1 : p;
}

static void print_text(const char *path, const m64_gguf *g, const gguf_facts *f, FILE *out) {
  char size[32];
  m64c_size_text(m64_gguf_file_size(g), size, sizeof size);
  fprintf(out, "%s: GGUF v%u model, %llu bytes (%s), %llu tensors, %llu metadata keys\n", path, m64_gguf_version(g),
          (unsigned long long)m64_gguf_file_size(g), size, (unsigned long long)f->sum.n_tensors,
          (unsigned long long)m64_gguf_n_kv(g));
  m64c_summary_text(&f->sum, out);
  if (!f->n_problems) {
    fprintf(out, "verdict: supported: `m64run %s` runs it (compiled once into the bundle cache), "
                 "`m64c build %s -o %.*s.m64` makes a bundle to ship\n",
            path, path, (int)(strlen(base_name(path)) - (strstr(base_name(path), ".gguf") ? 5 : 0)), base_name(path));
    return;
  }
  fprintf(out, "verdict: NOT supported: m64c build would stop:\n");
  for (int i = 0; i < f->n_problems; i++) fprintf(out, "  - %s\n", f->problems[i]);
}

static void print_json(const char *path, const m64_gguf *g, const gguf_facts *f, FILE *out) {
  fprintf(out, "{\"file\":");
  m64c_json_str(out, path);
  fprintf(out, ",\"format\":\"gguf\",\"gguf_version\":%u,\"file_size\":%llu", m64_gguf_version(g),
          (unsigned long long)m64_gguf_file_size(g));
  fputc(',', out);
  m64c_summary_json(&f->sum, out);
  fprintf(out, ",\"supported\":%s,\"problems\":[", f->n_problems ? "false" : "true");
  for (int i = 0; i < f->n_problems; i++) {
    if (i) fputc(',', out);
    m64c_json_str(out, f->problems[i]);
  }
  fprintf(out, "]}\n");
}

int m64c_info_gguf(const char *path, FILE *out, int json, int *supported, m64_err *e) {
  m64_gguf *g = NULL;
  int rc = m64_gguf_open(path, &g, e);
  if (rc) return rc;
  gguf_facts *f = calloc(1, sizeof *f);
  if (!f) {
    m64_gguf_close(g);
    return m64_fail(e, M64_ENOMEM, "out of memory");
  }
  gather(g, f);
  if (json) print_json(path, g, f, out);
  else print_text(path, g, f, out);
  if (supported) *supported = f->n_problems == 0;
  free(f);
  m64_gguf_close(g);
  return 0;
}
