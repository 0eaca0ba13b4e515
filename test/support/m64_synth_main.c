/* m64-synth: writes a synthetic LLaMA-architecture GGUF file (see synth.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "quant.h"
#include "synth.h"

static void print_types(FILE *f) {
  for (uint32_t i = 0; i < m64_ref_n_types(); i++)
    fprintf(f, "%s%s", i ? ", " : "", m64_ggml_type_info(m64_ref_type_at(i)).name);
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: m64-synth [--shape tiny|small|small-moe|3b|7b|13b|30b-a3b] [--vocab N] [--dim N]\n"
          "                 [--layers N] [--heads N] [--kv-heads N] [--ffn N] [--ctx N] [--rope-base F]\n"
          "                 [--eps F] [--type T | --mix q2_k|q3_k_m|q4_k_m|q5_k_m]\n"
          "                 [--type-embd T] [--type-output T] [--type-ffn-down T]\n"
          "                 [--type-attn-v T] [--seed N] [--tied] [--name S]\n"
          "                 [--arch llama|qwen2|qwen3|qwen3moe|phi3|gemma2|gemma3] [--qkv-apart] [--head-dim N]\n"
          "                 [--experts E] [--experts-used K] [--expert-ffn F]\n"
          "                 [--sliding-window N] [--swa-period N] [--attn-softcap F] [--final-softcap F]\n"
          "                 [--rope-scaling F] [--rope-freqs] [--vocab-kind spm|spm-nospace|bpe]\n"
          "                 -o out.gguf\n"
          "--shape sets every dimension first; later flags override it. tiny has dim 64, so\n"
          "only 32-element block types fit it; small (dim 256, ffn 512) takes every type.\n"
          "--mix picks per-tensor types as llama.cpp's file types of that name do (see\n"
          "synth.h); --type-* flags still override single tensors.\n"
          "--experts E (llama: Mixtral-style; qwen3moe: 8 when not given) replaces each block's\n"
          "FFN by E experts of which K (default 2) are used, each F wide (default and, for\n"
          "llama, necessarily --ffn). small-moe is small as qwen3moe with 8 experts of 256;\n"
          "30b-a3b is Qwen3-30B-A3B's shape (with --mix q4_k_m: 18.55 GB, ~3 CPU minutes).\nTypes T: ");
  print_types(f);
  fprintf(f, " (any case)\n");
}

static int parse_u32(const char *flag, const char *s, uint32_t *out) {
  char *end;
  unsigned long v = strtoul(s, &end, 10);
  if (!*s || *end || v > 0xffffffffUL) {
    fprintf(stderr, "m64-synth: %s wants a non-negative integer, got '%s'\n", flag, s);
    return -1;
  }
  *out = (uint32_t)v;
  return 0;
}

static int parse_f32(const char *flag, const char *s, float *out) {
  char *end;
  *out = strtof(s, &end);
  if (!*s || *end) {
    fprintf(stderr, "m64-synth: %s wants a number, got '%s'\n", flag, s);
    return -1;
  }
  return 0;
}

static int parse_type(const char *flag, const char *s, uint32_t *out) {
  for (uint32_t i = 0; i < m64_ref_n_types(); i++) {
    uint32_t t = m64_ref_type_at(i);
    if (!strcasecmp(m64_ggml_type_info(t).name, s)) {
      *out = t;
      return 0;
    }
  }
  fprintf(stderr, "m64-synth: %s: unknown or unsupported type '%s' (", flag, s);
  print_types(stderr);
  fprintf(stderr, ")\n");
  return -1;
}

int main(int argc, char **argv) {
  m64_synth_spec spec;
  m64_synth_default(&spec);
  m64_err err = {{0}};
  const char *out = NULL;
  int have_type = 0;

  /* --shape first, wherever it is, so the other flags refine the preset. */
  for (int i = 1; i + 1 < argc; i++)
    if (!strcmp(argv[i], "--shape") && m64_synth_preset(&spec, argv[i + 1], &err)) {
      fprintf(stderr, "m64-synth: %s\n", err.msg);
      return 2;
    }

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return 0;
    }
    if (!strcmp(a, "--tied")) {
      spec.tied_output = 1;
      continue;
    }
    if (!strcmp(a, "--rope-freqs")) {
      spec.rope_freqs = 1;
      continue;
    }
    if (!strcmp(a, "--qkv-apart")) {
      spec.qkv_apart = 1;
      continue;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "m64-synth: %s: missing value or unknown flag\n", a);
      usage(stderr);
      return 2;
    }
    const char *v = argv[++i];
    int bad = 0;
    if (!strcmp(a, "--shape")) continue;
    else if (!strcmp(a, "--arch")) {
      if (!strcmp(v, "llama")) spec.arch = M64_SYNTH_ARCH_LLAMA;
      else if (!strcmp(v, "qwen2")) spec.arch = M64_SYNTH_ARCH_QWEN2;
      else if (!strcmp(v, "qwen3")) spec.arch = M64_SYNTH_ARCH_QWEN3;
      else if (!strcmp(v, "phi3")) spec.arch = M64_SYNTH_ARCH_PHI3;
      else if (!strcmp(v, "gemma3")) spec.arch = M64_SYNTH_ARCH_GEMMA3;
      else if (!strcmp(v, "gemma2")) spec.arch = M64_SYNTH_ARCH_GEMMA2;
      else if (!strcmp(v, "qwen3moe")) spec.arch = M64_SYNTH_ARCH_QWEN3MOE;
      else {
        fprintf(stderr, "m64-synth: --arch %s: unknown (llama, qwen2, qwen3, qwen3moe, phi3, gemma2, gemma3)\n", v);
        return 2;
      }
    }
    else if (!strcmp(a, "--vocab")) bad = parse_u32(a, v, &spec.n_vocab);
    else if (!strcmp(a, "--vocab-kind")) {
      if (!strcmp(v, "spm")) spec.vocab_kind = M64_SYNTH_VOCAB_SPM;
      else if (!strcmp(v, "bpe")) spec.vocab_kind = M64_SYNTH_VOCAB_BPE;
      else if (!strcmp(v, "spm-nospace")) spec.vocab_kind = M64_SYNTH_VOCAB_SPM_NO_SPACE;
      else {
        fprintf(stderr, "m64-synth: --vocab-kind %s: unknown (spm, spm-nospace, bpe)\n", v);
        return 2;
      }
    }
    else if (!strcmp(a, "--dim")) bad = parse_u32(a, v, &spec.dim);
    else if (!strcmp(a, "--layers")) bad = parse_u32(a, v, &spec.n_layers);
    else if (!strcmp(a, "--heads")) bad = parse_u32(a, v, &spec.n_heads);
    else if (!strcmp(a, "--kv-heads")) bad = parse_u32(a, v, &spec.n_kv_heads);
    else if (!strcmp(a, "--ffn")) bad = parse_u32(a, v, &spec.ffn);
    else if (!strcmp(a, "--head-dim")) bad = parse_u32(a, v, &spec.head_dim);
    else if (!strcmp(a, "--experts")) bad = parse_u32(a, v, &spec.n_expert);
    else if (!strcmp(a, "--experts-used")) bad = parse_u32(a, v, &spec.n_expert_used);
    else if (!strcmp(a, "--expert-ffn")) bad = parse_u32(a, v, &spec.expert_ffn);
    else if (!strcmp(a, "--sliding-window")) bad = parse_u32(a, v, &spec.sliding_window);
    else if (!strcmp(a, "--swa-period")) bad = parse_u32(a, v, &spec.swa_period);
    else if (!strcmp(a, "--attn-softcap")) bad = parse_f32(a, v, &spec.attn_softcap);
    else if (!strcmp(a, "--final-softcap")) bad = parse_f32(a, v, &spec.final_softcap);
    else if (!strcmp(a, "--rope-scaling")) bad = parse_f32(a, v, &spec.rope_scaling);
    else if (!strcmp(a, "--ctx")) bad = parse_u32(a, v, &spec.n_ctx);
    else if (!strcmp(a, "--seed")) bad = parse_u32(a, v, &spec.seed);
    else if (!strcmp(a, "--rope-base")) bad = parse_f32(a, v, &spec.rope_base);
    else if (!strcmp(a, "--eps")) bad = parse_f32(a, v, &spec.norm_eps);
    else if (!strcmp(a, "--type")) bad = parse_type(a, v, &spec.type_default), have_type = 1;
    else if (!strcmp(a, "--mix")) {
      if (m64_synth_mix_parse(v, &spec.mix, &err)) {
        fprintf(stderr, "m64-synth: --mix: %s\n", err.msg);
        bad = 1;
      }
    }
    else if (!strcmp(a, "--type-embd")) bad = parse_type(a, v, &spec.type_embd);
    else if (!strcmp(a, "--type-output")) bad = parse_type(a, v, &spec.type_output);
    else if (!strcmp(a, "--type-ffn-down")) bad = parse_type(a, v, &spec.type_ffn_down);
    else if (!strcmp(a, "--type-attn-v")) bad = parse_type(a, v, &spec.type_attn_v);
    else if (!strcmp(a, "--name")) spec.name = v;
    else if (!strcmp(a, "-o")) out = v;
    else {
      fprintf(stderr, "m64-synth: unknown flag %s\n", a);
      usage(stderr);
      return 2;
    }
    if (bad) return 2;
  }
  if (have_type && spec.mix != M64_SYNTH_MIX_NONE) {
    fprintf(stderr, "m64-synth: --type and --mix exclude each other (a mix sets the types)\n");
    return 2;
  }
  if (!out) {
    fprintf(stderr, "m64-synth: -o out.gguf is required\n");
    usage(stderr);
    return 2;
  }
  int rc = m64_synth_write(&spec, out, &err);
  if (rc) {
    fprintf(stderr, "m64-synth: %s\n", err.msg);
    return 1;
  }
  uint32_t n_expert, n_used, expert_ffn;
  m64_synth_experts(&spec, &n_expert, &n_used, &expert_ffn);
  char experts[64] = "";
  if (n_expert) snprintf(experts, sizeof experts, ", %u of %u experts of %u", n_used, n_expert, expert_ffn);
  printf("%s: %u layers, dim %u, vocab %u%s, %llu bytes of tensor data\n", out, spec.n_layers,
         spec.dim, spec.n_vocab, experts, (unsigned long long)m64_synth_data_bytes(&spec));
  return 0;
}
