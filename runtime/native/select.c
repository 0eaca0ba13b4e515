/*
 * select.c — which of a bundle's native code a session runs, and whether it may: the one
 * place that decides (SECURITY.md). A bundle may carry code for several targets; the best
 * one this CPU runs that the user accepts is loaded, through native.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "local_mark.h"
#include "session_internal.h"

/* Whether this user accepts running the native code in sec (a private copy of the NATIVE
 * section rec, for target). The one place that decides (SECURITY.md): until it says yes,
 * only the section's 64-byte header and hashes over its bytes have been looked at; nothing
 * of the code is parsed, mapped or run. *why says why not. */
static int native_accepted(m64_session *s, const m64_section *rec, const uint8_t *sec, uint64_t size,
                           const char *target, int *why_rc, m64_err *why) {
  if (s->opt.trust_bundle_native) { /* the user's explicit choice for this run */
    snprintf(s->native_source, sizeof s->native_source, "as shipped (--trust-bundle-native)");
    return 1;
  }
  /* Rule 1: compiled here by this user (m64c build / m64c aot marked it with their key). */
  *why_rc = m64_native_section_check_mark(sec, size, target, why);
  if (*why_rc == 0) {
    snprintf(s->native_source, sizeof s->native_source, "compiled here (your local mark)");
    return 1;
  }
  /* Rule 2: signed by a publisher this user trusts. The signature (checked at open) covers
   * the table, so rec->sha256; the copy must hash to it, since the file may have changed
   * since the open checked it and only the copy is loaded. */
  if (s->sig.status == M64_SIG_TRUSTED) {
    uint8_t d[32];
    m64_sha256 h;
    m64_sha256_init(&h);
    m64_sha256_update(&h, sec, (size_t)size);
    m64_sha256_final(&h, d);
    if (memcmp(d, rec->sha256, 32) == 0) {
      snprintf(s->native_source, sizeof s->native_source, "signed by %s (%s), whom you trust", s->sig.signer,
               s->sig.fingerprint);
      return 1;
    }
    *why_rc = M64_EIO;
    m64_fail(why, M64_EIO, "its bytes changed after the bundle was opened, so the signature does not cover them");
  }
  return 0;
}

/* path as a shell word, for a command the user can paste */
static void shell_word(char *out, size_t cap, const char *path) {
  if (!path[strspn(path, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./+-=:,@%")]) {
    snprintf(out, cap, "%s", path);
    return;
  }
  size_t n = 0;
  out[n++] = '\'';
  for (const char *p = path; *p && n + 6 < cap; p++) {
    if (*p == '\'') {
      memcpy(out + n, "'\\''", 4);
      n += 4;
    } else {
      out[n++] = *p;
    }
  }
  out[n++] = '\'';
  out[n] = 0;
}

/* Picks the native code to run: among the NATIVE sections built from this bundle's module
 * for a target this CPU runs, the best target (m64_target_rank: v4vnni > v3 > v2 > x86_64)
 * that the user accepts (native_accepted); a refused one gives way to the next best. */
int m64_session_load_native(m64_session *s, m64_err *e) {
  const m64_section *wasm = m64_bundle_find_section(s->bundle, M64_SEC_MODULE_WASM, NULL);
  if (!wasm) return m64_fail(e, M64_EFORMAT, "bundle has no wasm module");
  const m64_section *pick = NULL;
  uint8_t *copy = NULL; /* the picked section, copied: the bytes checked are the bytes loaded,
                           whatever happens to the file meanwhile */
  m64_native_section code = {0};
  int stale = 0, refused_rc = 0, rc = 0;
  m64_err refused = {{0}}; /* why the best refused candidate was not accepted */
  char refused_target[48] = "", others[160] = ""; /* others: stored targets this CPU cannot run */
  const m64_section *cand[M64_MAX_SECTIONS];
  int rank[M64_MAX_SECTIONS], n = 0;
  for (uint32_t i = 0; i < m64_bundle_n_sections(s->bundle) && n < (int)M64_MAX_SECTIONS; i++) {
    const m64_section *sec = m64_bundle_section_at(s->bundle, i);
    if (sec->kind != M64_SEC_NATIVE) continue;
    const int r = m64_target_rank(sec->name);
    if (!r) {
      const size_t used = strlen(others);
      snprintf(others + used, sizeof others - used, "%s%s", used ? ", " : "", sec->name);
      continue;
    }
    m64_native_section ns; /* the header only */
    if (m64_native_section_parse(sec->data, sec->size, &ns, NULL))
      return m64_fail(e, M64_EFORMAT, "native section '%s' is malformed", sec->name);
    if (memcmp(ns.wasm_sha256, wasm->sha256, 32) != 0) {
      stale = 1;
      continue;
    }
    int k = n++; /* insertion: best rank first, the bundle's order among equals */
    for (; k > 0 && rank[k - 1] < r; k--) {
      cand[k] = cand[k - 1];
      rank[k] = rank[k - 1];
    }
    cand[k] = sec;
    rank[k] = r;
  }
  for (int k = 0; k < n && !rc && !pick; k++) {
    const m64_section *sec = cand[k];
    m64_native_section ns;
    uint8_t *c = malloc(sec->size ? sec->size : 1);
    if (!c) {
      rc = m64_fail(e, M64_ENOMEM, "out of memory for native code");
      break;
    }
    memcpy(c, sec->data, sec->size);
    int why_rc = 0;
    m64_err why = {{0}};
    /* again on the copy, whose code is what gets loaded */
    if (m64_native_section_parse(c, sec->size, &ns, NULL) || memcmp(ns.wasm_sha256, wasm->sha256, 32) != 0) {
      rc = m64_fail(e, M64_EIO, "native section '%s' changed while it was read", sec->name);
    } else if (native_accepted(s, sec, c, sec->size, sec->name, &why_rc, &why)) {
      copy = c;
      pick = sec;
      code = ns;
      continue;
    } else if (!refused_target[0]) {
      snprintf(refused_target, sizeof refused_target, "%s", sec->name);
      refused = why;
      refused_rc = why_rc;
    }
    free(c);
  }
  if (!rc && !pick && refused_target[0]) {
    char cmd[600];
    shell_word(cmd, sizeof cmd, s->path);
    /* one line: what was refused, why, and the two ways on */
    if (s->sig.status == M64_SIG_UNKNOWN_SIGNER) /* a signer the user could trust is a third way on */
      rc = m64_fail(e, M64_EUNTRUSTED,
                    "not loading the bundle's native code for %s: it was not compiled here by you, and it is signed "
                    "by %s, a key that is %s. `m64c trust add` that key's .pub if you trust its publisher, run "
                    "`m64c aot %s` to compile the bundle's own wasm module here, or pass --trust-bundle-native to run "
                    "it anyway, with all your rights (SECURITY.md)",
                    refused_target, s->sig.fingerprint, s->sig.why, cmd);
    else
      rc = m64_fail(e, M64_EUNTRUSTED,
                    "not loading the bundle's native code for %s: %s%s. Run `m64c aot %s` to compile the "
                    "bundle's own wasm module here, or pass --trust-bundle-native to run it anyway, with all "
                    "your rights, if you trust whoever built the bundle (SECURITY.md)",
                    refused_target, refused.msg, refused_rc == M64_EIO ? "" : ", so it was not compiled here by you",
                    cmd);
  }
  if (!rc && !pick) {
    char cmd[600];
    shell_word(cmd, sizeof cmd, s->path);
    if (stale)
      rc = m64_fail(e, M64_EUNSUPPORTED,
                    "the bundle's native code was built from another module; run `m64c aot %s` to compile its own "
                    "wasm module here", cmd);
    else
      rc = m64_fail(e, M64_EUNSUPPORTED,
                    "the bundle has no native code this CPU runs (this host is %s; the bundle has %s); run `m64c aot "
                    "%s` to compile its wasm module for this host",
                    m64_host_target(), others[0] ? others : "none", cmd);
  }
  if (rc) {
    free(copy);
    return rc;
  }
  snprintf(s->target, sizeof s->target, "%s", pick->name);
  rc = m64_native_load(code.code, code.code_size, &s->native, e);
  free(copy); /* the loader wrote it to its own sealed file */
  if (rc) return rc;
  if ((rc = m64_native_abi_table(s->native, &s->abi, e))) return rc;
  /* older code lacks only what later versions append: the token lookups of 3
   * (m64_session_is_eog), the full sampler (m64_session_sample_ex) and the chat exports
   * (m64_chat_open) of 4 */
  if (s->abi->abi_version < 2 || s->abi->abi_version > M64_NATIVE_ABI_VERSION ||
      s->abi->module_abi_version < M64_MODULE_ABI_OLDEST || s->abi->module_abi_version > M64_MODULE_ABI_NEWEST)
    return m64_fail(e, M64_EUNSUPPORTED, "native code has ABI %u/%u, this m64run speaks %u/%u..%u (rebuild the bundle)",
                    s->abi->abi_version, s->abi->module_abi_version, M64_NATIVE_ABI_VERSION, M64_MODULE_ABI_OLDEST,
                    M64_MODULE_ABI_NEWEST);
  if (s->abi->instance_size == 0 || s->abi->instance_size > (64u << 20))
    return m64_fail(e, M64_EFORMAT, "native code declares an instance of %llu bytes",
                    (unsigned long long)s->abi->instance_size);
  return 0;
}
