/* info.c — `m64c info`: what is inside a bundle, for people. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler_internal.h"
#include "local_mark.h"
#include "m64_sign.h"

static const char *kind_name(uint32_t k) {
  switch (k) {
    case M64_SEC_METADATA: return "metadata";
    case M64_SEC_TOKENIZER: return "tokenizer";
    case M64_SEC_LAYER_INDEX: return "layer-index";
    case M64_SEC_MODULE_WASM: return "module-wasm";
    case M64_SEC_NATIVE: return "native";
    case M64_SEC_SEGMENT: return "segment";
    case M64_SEC_SIGNATURE: return "signature";
    default: return "unknown";
  }
}

/* Reads a LEB128 u32; returns bytes used, 0 on overflow/end. */
static size_t leb_u32(const uint8_t *p, const uint8_t *end, uint32_t *out) {
  uint32_t v = 0;
  for (size_t i = 0; i < 5 && p + i < end; i++) {
    v |= (uint32_t)(p[i] & 0x7f) << (7 * i);
    if (!(p[i] & 0x80)) {
      *out = v;
      return i + 1;
    }
  }
  return 0;
}

/* Lists the export (kind 0x00 = function, 0x02 = memory) names of a wasm module. */
static void print_exports(const uint8_t *w, uint64_t size, FILE *out) {
  const uint8_t *p = w + 8, *end = w + size;
  if (size < 8 || memcmp(w, "\0asm", 4) != 0) {
    fprintf(out, "  (not a wasm module)\n");
    return;
  }
  while (p < end) {
    uint8_t id = *p++;
    uint32_t len, n;
    size_t k = leb_u32(p, end, &len);
    if (!k || len > (uint64_t)(end - p - k)) break;
    p += k;
    const uint8_t *sec_end = p + len;
    if (id == 7) { /* export section */
      const uint8_t *q = p;
      if (!(k = leb_u32(q, sec_end, &n))) return;
      q += k;
      fprintf(out, "  exports (%u):", n);
      for (uint32_t i = 0; i < n; i++) {
        uint32_t nl, idx;
        if (!(k = leb_u32(q, sec_end, &nl)) || nl > (uint64_t)(sec_end - q - k)) break;
        q += k;
        fprintf(out, "%s%.*s", i % 6 ? " " : "\n    ", (int)nl, (const char *)q);
        q += nl;
        if (q >= sec_end) break;
        q++; /* kind */
        if (!(k = leb_u32(q, sec_end, &idx))) break;
        q += k;
      }
      fputc('\n', out);
      return;
    }
    p = sec_end;
  }
}

/* ---- the summary (info_summary.c), from the bundle's metadata, layer index and tokenizer ---- */

static uint32_t meta_u32(const m64_bundle *b, const char *key, int *have) {
  char v[64];
  if (m64_bundle_meta(b, key, v, sizeof v)) return *have = 0;
  char *end;
  const unsigned long x = strtoul(v, &end, 10);
  *have = end != v && !*end && x <= UINT32_MAX;
  return *have ? (uint32_t)x : 0;
}

static uint32_t le32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

typedef struct bundle_sizes {
  uint64_t file, weights, weights_stored, module, native;
} bundle_sizes;

static void bundle_summary(const m64_bundle *b, m64c_summary *s, bundle_sizes *z) {
  memset(s, 0, sizeof *s);
  memset(z, 0, sizeof *z);
  if (m64_bundle_meta(b, "general.name", s->name, sizeof s->name)) s->name[0] = 0;
  if (!strcmp(s->name, "(unnamed)")) s->name[0] = 0;
  if (m64_bundle_meta(b, "general.architecture", s->arch, sizeof s->arch)) snprintf(s->arch, sizeof s->arch, "?");
  if (m64_bundle_meta(b, "chat.template", s->chat, sizeof s->chat)) snprintf(s->chat, sizeof s->chat, "none");
  if (m64_bundle_meta(b, "general.file_type", s->file_type, sizeof s->file_type)) s->file_type[0] = 0;
  s->arch_ok = 1; /* m64c built it */
  s->has_template = -1;
  s->blocks = meta_u32(b, "model.n_blocks", &s->have_blocks);
  s->dim = meta_u32(b, "model.dim", &s->have_dim);
  s->heads = meta_u32(b, "model.n_heads", &s->have_heads);
  s->kv_heads = meta_u32(b, "model.n_kv_heads", &s->have_kv_heads);
  s->ffn = meta_u32(b, "model.ffn", &s->have_ffn);
  s->ctx = meta_u32(b, "model.n_ctx_train", &s->have_ctx);
  int have;
  s->experts = meta_u32(b, "model.n_experts", &have);
  s->experts_used = meta_u32(b, "model.n_experts_used", &have);
  int have_vocab;
  s->vocab = meta_u32(b, "model.n_vocab", &have_vocab);
  for (uint32_t l = 0; l < m64_bundle_n_layers(b); l++) {
    const m64_layer_entry *L = m64_bundle_layer(b, l);
    z->weights += L->size;
    if (l > m64_bundle_n_blocks(b)) s->expert_bytes += L->size;
    z->weights_stored += L->stored_size;
    for (uint32_t t = 0; t < L->n_tensors; t++) {
      const m64_tensor_entry *T = m64_bundle_tensor(b, L->first_tensor + t);
      if (T->type >= M64_GGML_TYPE_COUNT) continue;
      s->types[T->type].tensors++;
      s->types[T->type].bytes += T->nbytes;
      s->params += T->ne[0] * T->ne[1] * T->ne[2] * T->ne[3];
      s->n_tensors++;
    }
  }
  /* the tokenizer blob's header (module/tokenizer.h): kind, vocabulary, BPE pre-tokenizer */
  snprintf(s->tok_model, sizeof s->tok_model, "(none)");
  const m64_section *tok = m64_bundle_find_section(b, M64_SEC_TOKENIZER, NULL);
  if (tok && tok->size >= 44 && !memcmp(tok->data, "M64T", 4)) {
    const uint32_t kind = le32(tok->data + 8);
    snprintf(s->tok_model, sizeof s->tok_model, "%s", kind == 1 ? "llama" : kind == 2 ? "gpt2" : "?");
    if (!have_vocab) s->vocab = le32(tok->data + 12);
    static const char *const pre[] = {NULL, "llama-bpe", "qwen2", "smollm", "gpt2"};
    const uint32_t p = le32(tok->data + 40);
    if (kind == 2 && p < 5 && pre[p]) snprintf(s->pre, sizeof s->pre, "%s", pre[p]);
  }
  m64c_summary_finish(s);
  z->file = m64_bundle_file_size(b);
  for (uint32_t i = 0; i < m64_bundle_n_sections(b); i++) {
    const m64_section *x = m64_bundle_section_at(b, i);
    if (x->kind == M64_SEC_MODULE_WASM) z->module += x->size;
    if (x->kind == M64_SEC_NATIVE) z->native += x->size;
  }
}

static void print_summary(const m64_bundle *b, const m64_sig_info *sig, FILE *out) {
  m64c_summary s;
  bundle_sizes z;
  bundle_summary(b, &s, &z);
  m64c_summary_text(&s, out);
  fprintf(out, "  signer:         ");
  switch (sig->status) {
    case M64_SIG_UNSIGNED: fprintf(out, "none (unsigned)\n"); break;
    case M64_SIG_TRUSTED: fprintf(out, "%s (%s), in your trust ring\n", sig->signer, sig->fingerprint); break;
    case M64_SIG_UNKNOWN_SIGNER: fprintf(out, "%s, not in your trust ring\n", sig->fingerprint); break;
    case M64_SIG_INVALID: fprintf(out, "INVALID signature (m64run refuses this bundle)\n"); break;
  }
  char f[32], w[32], ws[32], m[32], n[32];
  m64c_size_text(z.file, f, sizeof f);
  m64c_size_text(z.weights, w, sizeof w);
  m64c_size_text(z.weights_stored, ws, sizeof ws);
  m64c_size_text(z.module, m, sizeof m);
  m64c_size_text(z.native, n, sizeof n);
  fprintf(out, "  sizes:          file %s; weights %s", f, w);
  if (m64_bundle_compressed(b)) fprintf(out, " (stored in %s)", ws);
  fprintf(out, "; module %s of wasm, %s of native code\n", m, n);
}

int m64c_info(const char *path, FILE *out, m64_err *e) {
  m64_bundle *b;
  int rc = m64_bundle_open(path, &b, e);
  if (rc) return rc;
  const int z = m64_bundle_compressed(b);
  fprintf(out, "%s: m64 bundle v%u%s, %llu bytes\n", path, m64_bundle_version(b),
          z ? " (compressed: zstd)" : "", (unsigned long long)m64_bundle_file_size(b));
  m64_sig_info sig;
  m64_signature_check(b, NULL, &sig); /* reads the trust ring, never changes it */
  print_summary(b, &sig, out);
  fputc('\n', out);
  fprintf(out, "signature: ");
  m64c_print_signature(&sig, out);

  const m64_section *meta = m64_bundle_find_section(b, M64_SEC_METADATA, NULL);
  if (meta) {
    fprintf(out, "\nmetadata:\n");
    const char *p = (const char *)meta->data, *end = p + meta->size;
    while (p < end) {
      const char *nl = memchr(p, '\n', (size_t)(end - p));
      const char *stop = nl ? nl : end;
      fprintf(out, "  %.*s\n", (int)(stop - p), p);
      p = stop + 1;
    }
  }

  uint64_t raw_total = 0, stored_total = 0;
  fprintf(out, "\nsections (%u):\n", m64_bundle_n_sections(b));
  for (uint32_t i = 0; i < m64_bundle_n_sections(b); i++) {
    const m64_section *s = m64_bundle_section_at(b, i);
    char hex[65];
    m64_sha256_hex(s->sha256, hex);
    fprintf(out, "  %-12s %-18s offset %12llu size %12llu sha256 %.16s", kind_name(s->kind),
            s->name, (unsigned long long)s->offset, (unsigned long long)s->stored_size,
            s->kind == M64_SEC_SEGMENT ? "(per layer)" : hex);
    if (z && s->kind != M64_SEC_SEGMENT)
      fprintf(out, " raw %12llu (%s%.2fx)", (unsigned long long)s->size,
              s->codec ? "zstd " : "stored ", s->stored_size ? (double)s->size / s->stored_size : 1.0);
    fputc('\n', out);
    if (s->kind != M64_SEC_SEGMENT) raw_total += s->size, stored_total += s->stored_size;
  }

  fprintf(out, "\nsegments: %u (each at most 16 GiB, one memory64 memory in a browser)\n",
          m64_bundle_n_segments(b));
  fprintf(out, "\nlayers (%u):\n", m64_bundle_n_layers(b));
  for (uint32_t l = 0; l < m64_bundle_n_layers(b); l++) {
    const m64_layer_entry *L = m64_bundle_layer(b, l);
    char hex[65];
    m64_sha256_hex(L->sha256, hex);
    fprintf(out, "  %-8s segment %u offset %12llu size %12llu sha256 %.16s", L->name, L->segment,
            (unsigned long long)L->offset, (unsigned long long)L->size, hex);
    if (z)
      fprintf(out, " compressed %12llu at +%llu (%.2fx, %s, %u KiB chunks)",
              (unsigned long long)L->stored_size, (unsigned long long)L->stored_offset,
              L->stored_size ? (double)L->size / L->stored_size : 1.0,
              L->filter ? "fields split" : "as is", L->chunk_size >> 10);
    fputc('\n', out);
    raw_total += L->size;
    stored_total += L->stored_size;
    for (uint32_t t = 0; t < L->n_tensors; t++) {
      const m64_tensor_entry *T = m64_bundle_tensor(b, L->first_tensor + t);
      m64_type_info ti = m64_ggml_type_info(T->type);
      fprintf(out, "    %-28s %-5s [%llu x %llu] at +%llu, %llu bytes%s\n", T->name,
              ti.name ? ti.name : "?", (unsigned long long)T->ne[0], (unsigned long long)T->ne[1],
              (unsigned long long)T->offset, (unsigned long long)T->nbytes,
              T->layout == M64_LAYOUT_PAIRS ? ", row pairs" : "");
    }
  }

  if (z)
    fprintf(out, "\ncompression: %llu bytes of sections and layers stored in %llu (%.3fx, %.1f%% smaller)\n",
            (unsigned long long)raw_total, (unsigned long long)stored_total,
            stored_total ? (double)raw_total / stored_total : 1.0,
            raw_total ? 100.0 * (1.0 - (double)stored_total / raw_total) : 0.0);

  const m64_section *wasm = m64_bundle_find_section(b, M64_SEC_MODULE_WASM, NULL);
  fprintf(out, "\nmodule: %llu bytes of wasm32 + SIMD128\n", wasm ? (unsigned long long)wasm->size : 0ull);
  const m64_section *relaxed = m64_bundle_find_section(b, M64_SEC_MODULE_WASM, M64_RELAXED_MODULE);
  if (relaxed)
    fprintf(out, "  and module.relaxed: %llu bytes with relaxed SIMD (what browsers that have it run)\n",
            (unsigned long long)relaxed->size);
  if (wasm) print_exports(wasm->data, wasm->size, out);

  fprintf(out, "\nnative targets:");
  /* m64run's choice (runtime/session.c load_native): the best-ranked target this CPU runs
   * among those built from this module (then the user's acceptance, shown per line) */
  int any = 0, best = 0;
  for (uint32_t i = 0; i < m64_bundle_n_sections(b); i++) {
    const m64_section *s = m64_bundle_section_at(b, i);
    m64_native_section ns;
    if (s->kind == M64_SEC_NATIVE && wasm && m64_native_section_parse(s->data, s->size, &ns, NULL) == 0 &&
        memcmp(ns.wasm_sha256, wasm->sha256, 32) == 0 && m64_target_rank(s->name) > best)
      best = m64_target_rank(s->name);
  }
  for (uint32_t i = 0; i < m64_bundle_n_sections(b); i++) {
    const m64_section *s = m64_bundle_section_at(b, i);
    if (s->kind != M64_SEC_NATIVE) continue;
    any = 1;
    m64_native_section ns;
    if (m64_native_section_parse(s->data, s->size, &ns, NULL)) {
      fprintf(out, "\n  %-18s malformed (%llu bytes)", s->name, (unsigned long long)s->size);
      continue;
    }
    const int current = wasm && memcmp(ns.wasm_sha256, wasm->sha256, 32) == 0;
    /* what m64run decides by default (formats/sign/local_mark.h): reads the key, never creates it */
    const int mark = ns.mark ? m64_native_section_check_mark(s->data, s->size, s->name, NULL) : 1;
    fprintf(out, "\n  %-18s %llu bytes of code, built from %s%s, %s", s->name, (unsigned long long)ns.code_size,
            current ? "this module" : "ANOTHER module (stale: run m64c aot)",
            !m64_target_runnable(s->name)         ? ", does not run on this host"
            : current && m64_target_rank(s->name) == best ? ", runs on this host (the best here: m64run's pick)"
                                                          : ", runs on this host",
            mark == 0 ? "marked here (by you, on this machine)"
            : sig.status == M64_SIG_TRUSTED ? "signed by a key you trust (m64run runs it)"
            : sig.status == M64_SIG_INVALID ? "under an INVALID signature (m64run refuses the bundle)"
            : mark == 1 ? "not marked (m64run needs m64c aot or --trust-bundle-native)"
            : mark == M64_EHASH ? "marked with another key (m64run needs m64c aot or --trust-bundle-native)"
            : mark == M64_ENOTFOUND ? "marked, but you have no local key to check it"
                                    : "marked; your local key cannot be read");
  }
  fprintf(out, "%s\n", any ? "" : " none (run `m64c aot` to add code for this host)");
  m64_bundle_close(b);
  return 0;
}

int m64c_verify(const char *path, FILE *out, m64_err *e) {
  m64_bundle *b;
  int rc = m64_bundle_open(path, &b, e); /* checks the header and every small section */
  if (rc) return rc;
  /* The signature first: it says whether the hashes below are the publisher's at all. */
  m64_sig_info sig;
  if (m64_signature_check(b, NULL, &sig) == M64_SIG_INVALID)
    rc = m64_fail(e, M64_EUNTRUSTED, "%s: the signature is invalid: %s", path, sig.why);
  if (!rc) rc = m64_bundle_verify_all(b, e); /* and every layer of the image */
  if (!rc) {
    uint64_t bytes = 0;
    for (uint32_t l = 0; l < m64_bundle_n_layers(b); l++) bytes += m64_bundle_layer(b, l)->size;
    fprintf(out, "%s: OK: %u sections and %u layers (%.1f MiB of weights) match their SHA-256\n", path,
            m64_bundle_n_sections(b), m64_bundle_n_layers(b), bytes / 1048576.0);
    fprintf(out, "%s: signature: ", path);
    m64c_print_signature(&sig, out);
  }
  m64_bundle_close(b);
  return rc;
}

void m64c_print_signature(const m64_sig_info *sig, FILE *out) {
  char ring[4096];
  if (m64_trust_dir(NULL, ring, sizeof ring, NULL)) snprintf(ring, sizeof ring, "no trust ring");
  switch (sig->status) {
    case M64_SIG_UNSIGNED: fprintf(out, "unsigned\n"); break;
    case M64_SIG_TRUSTED:
      fprintf(out, "valid, signer %s (%s), in your trust ring: m64run runs its native code\n", sig->signer,
              sig->fingerprint);
      break;
    case M64_SIG_UNKNOWN_SIGNER:
      fprintf(out, "unknown signer %s: the signature is valid, by a key that is %s (%s); `m64c trust add KEY.pub` "
                   "if you trust its publisher\n", sig->fingerprint, sig->why, ring);
      break;
    case M64_SIG_INVALID:
      fprintf(out, "invalid%s%s%s: %s; m64run refuses this bundle\n", sig->fingerprint[0] ? " (signer " : "",
              sig->fingerprint, sig->fingerprint[0] ? ")" : "", sig->why);
      break;
  }
}

/* ---- m64c info --json: the same facts as one JSON object ---- */

static void json_text(FILE *out, const char *s, size_t n) {
  fputc('"', out);
  for (size_t i = 0; i < n; i++) {
    const unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') fprintf(out, "\\%c", c);
    else if (c < 0x20) fprintf(out, "\\u%04x", c);
    else fputc(c, out);
  }
  fputc('"', out);
}
static void json_cstr(FILE *out, const char *s) { json_text(out, s, strlen(s)); }

int m64c_info_json(const char *path, FILE *out, m64_err *e) {
  m64_bundle *b;
  int rc = m64_bundle_open(path, &b, e);
  if (rc) return rc;
  m64_sig_info sig;
  m64_signature_check(b, NULL, &sig);
  fprintf(out, "{\"file\":");
  json_cstr(out, path);
  fprintf(out, ",\"format\":\"m64\",\"version\":%u,\"compressed\":%s,\"file_size\":%llu,\"signature\":{\"status\":\"%s\"",
          m64_bundle_version(b), m64_bundle_compressed(b) ? "true" : "false",
          (unsigned long long)m64_bundle_file_size(b), m64_sig_status_name(sig.status));
  if (sig.fingerprint[0]) fprintf(out, ",\"fingerprint\":\"%s\"", sig.fingerprint);
  if (sig.status == M64_SIG_TRUSTED) {
    fprintf(out, ",\"signer\":");
    json_cstr(out, sig.signer);
  }
  m64c_summary sum;
  bundle_sizes z;
  bundle_summary(b, &sum, &z);
  fprintf(out, "},\"summary\":{");
  m64c_summary_json(&sum, out);
  fprintf(out, ",\"sizes\":{\"file\":%llu,\"weights\":%llu,\"weights_stored\":%llu,\"module\":%llu,\"native\":%llu}",
          (unsigned long long)z.file, (unsigned long long)z.weights, (unsigned long long)z.weights_stored,
          (unsigned long long)z.module, (unsigned long long)z.native);
  fprintf(out, "},\"metadata\":{");
  const m64_section *meta = m64_bundle_find_section(b, M64_SEC_METADATA, NULL);
  if (meta) { /* "key = value" lines */
    const char *p = (const char *)meta->data, *end = p + meta->size;
    int first = 1;
    while (p < end) {
      const char *nl = memchr(p, '\n', (size_t)(end - p)), *stop = nl ? nl : end;
      const char *eq = memchr(p, '=', (size_t)(stop - p));
      if (eq && eq > p && eq[-1] == ' ' && eq + 1 < stop && eq[1] == ' ') {
        fputs(first ? "" : ",", out);
        json_text(out, p, (size_t)(eq - 1 - p));
        fputc(':', out);
        json_text(out, eq + 2, (size_t)(stop - eq - 2));
        first = 0;
      }
      p = stop + 1;
    }
  }
  fprintf(out, "},\"sections\":[");
  for (uint32_t i = 0; i < m64_bundle_n_sections(b); i++) {
    const m64_section *s = m64_bundle_section_at(b, i);
    char hex[65];
    m64_sha256_hex(s->sha256, hex);
    fprintf(out, "%s{\"kind\":\"%s\",\"name\":", i ? "," : "", kind_name(s->kind));
    json_cstr(out, s->name);
    fprintf(out, ",\"offset\":%llu,\"size\":%llu,\"stored_size\":%llu", (unsigned long long)s->offset,
            (unsigned long long)s->size, (unsigned long long)s->stored_size);
    if (s->kind != M64_SEC_SEGMENT) fprintf(out, ",\"sha256\":\"%s\"", hex);
    fputc('}', out);
  }
  fprintf(out, "],\"layers\":[");
  for (uint32_t l = 0; l < m64_bundle_n_layers(b); l++) {
    const m64_layer_entry *L = m64_bundle_layer(b, l);
    char hex[65];
    m64_sha256_hex(L->sha256, hex);
    fprintf(out, "%s{\"name\":", l ? "," : "");
    json_cstr(out, L->name);
    fprintf(out, ",\"segment\":%u,\"offset\":%llu,\"size\":%llu,\"stored_size\":%llu,\"sha256\":\"%s\",\"tensors\":[",
            L->segment, (unsigned long long)L->offset, (unsigned long long)L->size,
            (unsigned long long)L->stored_size, hex);
    for (uint32_t t = 0; t < L->n_tensors; t++) {
      const m64_tensor_entry *T = m64_bundle_tensor(b, L->first_tensor + t);
      const m64_type_info ti = m64_ggml_type_info(T->type);
      fprintf(out, "%s{\"name\":", t ? "," : "");
      json_cstr(out, T->name);
      fprintf(out, ",\"type\":\"%s\",\"ne\":[%llu,%llu],\"offset\":%llu,\"bytes\":%llu,\"layout\":\"%s\"}",
              ti.name ? ti.name : "?", (unsigned long long)T->ne[0], (unsigned long long)T->ne[1],
              (unsigned long long)T->offset, (unsigned long long)T->nbytes,
              T->layout == M64_LAYOUT_PAIRS ? "row pairs" : "rows");
    }
    fprintf(out, "]}");
  }
  const m64_section *wasm = m64_bundle_find_section(b, M64_SEC_MODULE_WASM, NULL);
  const m64_section *relaxed = m64_bundle_find_section(b, M64_SEC_MODULE_WASM, M64_RELAXED_MODULE);
  fprintf(out, "],\"module_bytes\":%llu,\"relaxed_module_bytes\":%llu,\"native\":[",
          wasm ? (unsigned long long)wasm->size : 0ull, relaxed ? (unsigned long long)relaxed->size : 0ull);
  int any = 0;
  for (uint32_t i = 0; i < m64_bundle_n_sections(b); i++) {
    const m64_section *s = m64_bundle_section_at(b, i);
    if (s->kind != M64_SEC_NATIVE) continue;
    m64_native_section ns;
    fprintf(out, "%s{\"target\":", any ? "," : "");
    json_cstr(out, s->name);
    any = 1;
    if (m64_native_section_parse(s->data, s->size, &ns, NULL)) {
      fprintf(out, ",\"malformed\":true}");
      continue;
    }
    const int current = wasm && memcmp(ns.wasm_sha256, wasm->sha256, 32) == 0;
    const int mark = ns.mark ? m64_native_section_check_mark(s->data, s->size, s->name, NULL) : 1;
    /* what m64run decides by default, as the text form says it */
    const char *loads = mark == 0 ? "marked here" : sig.status == M64_SIG_TRUSTED ? "signed by a key you trust"
                      : sig.status == M64_SIG_INVALID ? "invalid signature" : mark == 1 ? "not marked"
                      : mark == M64_EHASH ? "marked with another key" : mark == M64_ENOTFOUND ? "no local key"
                                                                                           : "local key unreadable";
    fprintf(out, ",\"code_bytes\":%llu,\"from_this_module\":%s,\"runs_on_this_host\":%s,\"trust\":\"%s\","
                 "\"m64run_loads_it\":%s}",
            (unsigned long long)ns.code_size, current ? "true" : "false", m64_target_runnable(s->name) ? "true" : "false",
            loads, m64_target_runnable(s->name) && current && sig.status != M64_SIG_INVALID &&
                           (mark == 0 || sig.status == M64_SIG_TRUSTED) ? "true" : "false");
  }
  fprintf(out, "]}\n");
  m64_bundle_close(b);
  return 0;
}
