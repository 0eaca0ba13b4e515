/* info_summary.c — the summary `m64c info` opens with, for a GGUF (info_gguf.c) and a
 * bundle (info.c) alike: one struct, one text form, one JSON form. */
#include <stdio.h>
#include <string.h>

#include "compiler_internal.h"

/* llama.cpp's names for general.file_type (enum llama_ftype), the quantization people ask
 * for by name ("Q4_K_M"); the tensors' own types are the mix below it. */
const char *m64c_ftype_name(uint32_t ftype) {
  static const char *const names[] = {
      [0] = "F32",     [1] = "F16",     [2] = "Q4_0",    [3] = "Q4_1",    [7] = "Q8_0",    [8] = "Q5_0",
      [9] = "Q5_1",    [10] = "Q2_K",   [11] = "Q3_K_S", [12] = "Q3_K_M", [13] = "Q3_K_L", [14] = "Q4_K_S",
      [15] = "Q4_K_M", [16] = "Q5_K_S", [17] = "Q5_K_M", [18] = "Q6_K",   [32] = "BF16",
  };
  return ftype < sizeof names / sizeof names[0] ? names[ftype] : NULL;
}

void m64c_count_text(uint64_t n, char *out, size_t cap) {
  if (n >= 1000000000ull) snprintf(out, cap, "%.2fB", n / 1e9);
  else if (n >= 1000000ull) snprintf(out, cap, "%.1fM", n / 1e6);
  else if (n >= 1000ull) snprintf(out, cap, "%.1fK", n / 1e3);
  else snprintf(out, cap, "%llu", (unsigned long long)n);
}

void m64c_size_text(uint64_t bytes, char *out, size_t cap) {
  if (bytes >= (1ull << 30)) snprintf(out, cap, "%.2f GiB", bytes / 1073741824.0);
  else if (bytes >= (1ull << 20)) snprintf(out, cap, "%.1f MiB", bytes / 1048576.0);
  else if (bytes >= 1024) snprintf(out, cap, "%.1f KiB", bytes / 1024.0);
  else snprintf(out, cap, "%llu bytes", (unsigned long long)bytes);
}

void m64c_summary_finish(m64c_summary *s) {
  if (s->file_type[0]) return;
  /* no general.file_type: name the mix by the matrix type that holds the most bytes */
  uint32_t best = M64_GGML_TYPE_COUNT;
  for (uint32_t t = 0; t < M64_GGML_TYPE_COUNT; t++)
    if (s->types[t].tensors && (best == M64_GGML_TYPE_COUNT || s->types[t].bytes > s->types[best].bytes)) best = t;
  if (best < M64_GGML_TYPE_COUNT) snprintf(s->file_type, sizeof s->file_type, "mostly %s", m64_ggml_type_info(best).name);
}

static const char *tok_note(const char *model) {
  return !strcmp(model, "gpt2") ? " (byte-level BPE)" : !strcmp(model, "llama") ? " (SentencePiece)" : "";
}

void m64c_summary_text(const m64c_summary *s, FILE *out) {
  char n[32];
  m64c_count_text(s->params, n, sizeof n);
  fprintf(out, "  name:           %s\n", s->name[0] ? s->name : "(unnamed)");
  fprintf(out, "  architecture:   %s%s\n", s->arch, s->arch_ok ? "" : " (not supported)");
  fprintf(out, "  parameters:     %s (%llu)\n", n, (unsigned long long)s->params);
  if (s->have_blocks && s->have_dim)
    fprintf(out, "  shape:          %u blocks, dim %u, %u heads (%u kv), ffn %u, vocab %llu\n", s->blocks, s->dim,
            s->heads, s->have_kv_heads ? s->kv_heads : s->heads, s->ffn, (unsigned long long)s->vocab);
  if (s->experts && s->experts_used <= s->experts) {
    char each[32], token[32];
    m64c_size_text(s->expert_bytes / s->experts / (s->have_blocks && s->blocks ? s->blocks : 1), each, sizeof each);
    m64c_size_text(s->expert_bytes / s->experts * s->experts_used, token, sizeof token);
    fprintf(out, "  experts:        %u per block, %u used per token (%s each: %s of experts a token)\n", s->experts,
            s->experts_used, each, token);
  }
  if (s->have_ctx) fprintf(out, "  context length: %u (%s.context_length)\n", s->ctx, s->arch);
  else fprintf(out, "  context length: not given (%s.context_length); m64 assumes 2048\n", s->arch);
  fprintf(out, "  file type:      %s\n", s->file_type[0] ? s->file_type : "(no tensors)");
  fprintf(out, "  tensor types (the quant mix):\n");
  uint64_t total = 0;
  for (uint32_t t = 0; t < M64_GGML_TYPE_COUNT; t++) total += s->types[t].bytes;
  for (uint32_t t = 0; t < M64_GGML_TYPE_COUNT; t++) {
    const m64c_type_count *r = &s->types[t];
    if (!r->tensors) continue;
    char sz[32];
    m64c_size_text(r->bytes, sz, sizeof sz);
    fprintf(out, "    %-7s %6llu tensors %14llu bytes %11s (%5.1f%%)%s\n", m64_ggml_type_info(t).name,
            (unsigned long long)r->tensors, (unsigned long long)r->bytes, sz, total ? 100.0 * r->bytes / total : 0.0,
            r->bad ? "  NOT SUPPORTED here" : "");
  }
  fprintf(out, "  tokenizer:      %s%s, %llu tokens\n", s->tok_model, tok_note(s->tok_model),
          (unsigned long long)s->vocab);
  fprintf(out, "  pre-tokenizer:  %s\n",
          s->pre[0] ? s->pre : !strcmp(s->tok_model, "gpt2") ? "(none given)" : "(none: not a BPE vocabulary)");
  if (s->has_template == 0) fprintf(out, "  chat template:  none in the file (m64run -i needs --chat-template)\n");
  else if (!strcmp(s->chat, "none"))
    fprintf(out, "  chat template:  %s (m64run -i needs --chat-template)\n",
            s->has_template > 0 ? "present, but not one m64 recognises" : "none that m64 recognises");
  else fprintf(out, "  chat template:  %s\n", s->chat);
}

void m64c_json_str(FILE *out, const char *s) {
  fputc('"', out);
  for (; *s; s++) {
    const unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') fprintf(out, "\\%c", c);
    else if (c < 0x20) fprintf(out, "\\u%04x", c);
    else fputc(c, out);
  }
  fputc('"', out);
}

void m64c_summary_json(const m64c_summary *s, FILE *out) {
  fprintf(out, "\"name\":");
  m64c_json_str(out, s->name);
  fprintf(out, ",\"architecture\":");
  m64c_json_str(out, s->arch);
  fprintf(out, ",\"architecture_supported\":%s,\"parameters\":%llu,\"tensors\":%llu", s->arch_ok ? "true" : "false",
          (unsigned long long)s->params, (unsigned long long)s->n_tensors);
  if (s->have_blocks) fprintf(out, ",\"blocks\":%u", s->blocks);
  if (s->have_dim) fprintf(out, ",\"dim\":%u", s->dim);
  if (s->experts)
    fprintf(out, ",\"experts\":%u,\"experts_used\":%u,\"expert_bytes\":%llu", s->experts, s->experts_used,
            (unsigned long long)s->expert_bytes);
  fprintf(out, ",\"context_length\":");
  if (s->have_ctx) fprintf(out, "%u", s->ctx);
  else fprintf(out, "null");
  fprintf(out, ",\"file_type\":");
  m64c_json_str(out, s->file_type);
  fprintf(out, ",\"types\":[");
  int first = 1;
  for (uint32_t t = 0; t < M64_GGML_TYPE_COUNT; t++) {
    const m64c_type_count *r = &s->types[t];
    if (!r->tensors) continue;
    fprintf(out, "%s{\"type\":\"%s\",\"tensors\":%llu,\"bytes\":%llu,\"supported\":%s}", first ? "" : ",",
            m64_ggml_type_info(t).name, (unsigned long long)r->tensors, (unsigned long long)r->bytes,
            r->bad ? "false" : "true");
    first = 0;
  }
  fprintf(out, "],\"tokenizer\":");
  m64c_json_str(out, s->tok_model);
  fprintf(out, ",\"pre_tokenizer\":");
  if (s->pre[0]) m64c_json_str(out, s->pre);
  else fprintf(out, "null");
  fprintf(out, ",\"vocab\":%llu,\"chat_template\":", (unsigned long long)s->vocab);
  m64c_json_str(out, s->chat);
  if (s->has_template >= 0) fprintf(out, ",\"chat_template_in_file\":%s", s->has_template ? "true" : "false");
}
