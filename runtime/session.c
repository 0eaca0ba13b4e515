/*
 * session.c — one running bundle: it opens the bundle, loads its native code
 * (native/select.c), makes the workspace and one module instance per thread, sizes the run
 * state and the layer cache, and answers the m64_session_* calls. The exports are called
 * in dispatch.c, the imports answered in imports.c (session_internal.h lists the files).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "m64_module.h" /* M64_TOK_MAX_IDS */
#include "session_internal.h"

/* ------------------------------------------------------------ opening */
/* Bytes the module needs besides the layer cache: its static data, run state, IO. */
static int setup_state(m64_session *s, m64_err *e) {
  uint32_t v;
  int rc;
  if ((rc = m64_session_invoke0(s, OP_m64_abi_version, &v, e))) return rc;
  if (v < M64_MODULE_ABI_OLDEST || v > M64_MODULE_ABI_NEWEST)
    return m64_fail(e, M64_EUNSUPPORTED, "module ABI version %u (this m64run runs %u..%u)", v, M64_MODULE_ABI_OLDEST,
                    M64_MODULE_ABI_NEWEST);
  if ((rc = m64_session_invoke0(s, OP_m64_n_vocab, &s->n_vocab, e))) return rc;
  if ((rc = m64_session_invoke0(s, OP_m64_n_layers, &s->n_layers, e))) return rc;
  if (s->n_layers != m64_bundle_n_layers(s->bundle))
    return m64_fail(e, M64_EFORMAT, "module expects %u layers, the image has %u", s->n_layers,
                    m64_bundle_n_layers(s->bundle));
  uint32_t ctx_train;
  if ((rc = m64_session_invoke0(s, OP_m64_n_ctx_train, &ctx_train, e))) return rc;
  s->n_ctx_train = ctx_train;
  if ((rc = m64_session_invoke0(s, OP_m64_max_batch, &s->max_batch, e))) return rc;
  if (s->max_batch == 0 || s->max_batch > 4096) return m64_fail(e, M64_EFORMAT, "module declares a batch of %u", s->max_batch);
  s->n_ctx = s->opt.n_ctx ? s->opt.n_ctx : (ctx_train < 4096 ? ctx_train : 4096);
  if (s->n_ctx == 0) s->n_ctx = 2048;

  const m64_cache_need need = m64_pager_needs(s->bundle);
  /* The user's workspace caps everything from here on; by default the cap is 4 GiB until
   * the fixed part is known, then what the whole model needs. */
  const uint64_t max_ws = 65536ull * WASM_PAGE;
  const uint64_t cap = s->opt.workspace_bytes && s->opt.workspace_bytes < max_ws ? s->opt.workspace_bytes : max_ws;
  m64_wasm_memory_set_cap(s->mem, cap / WASM_PAGE);
  uint32_t state_bytes;
  if ((rc = m64_session_invoke1(s, OP_m64_state_bytes, s->n_ctx, &state_bytes, e))) return rc;

  int32_t init;
  if ((rc = m64_session_invoke1(s, OP_m64_init, s->n_ctx, (uint32_t *)&init, e))) return rc;
  char cap_h[32], need_h[32];
  if (init == -1)
    return m64_fail(e, M64_ELIMIT, "workspace of %s is too small for the run state of a context of %u (%s; try a smaller -c)",
                    m64_format_size(cap, cap_h, sizeof cap_h), s->n_ctx,
                    m64_format_size(state_bytes, need_h, sizeof need_h));
  if (init == -2)
    return m64_fail(e, M64_ELIMIT, "a context of %u does not fit a 4 GiB workspace (its run state would be %.1f MiB); use a smaller -c",
                    s->n_ctx, state_bytes / 1048576.0);
  if (init != 0) return m64_fail(e, M64_ELIMIT, "the module could not allocate its state (%d)", init);
  int32_t threads_rc; /* the module keeps scratch per share */
  s->n_shares = s->n_threads > 1 ? s->n_threads * SHARES_PER_THREAD : 1;
  if (s->n_shares > 64) s->n_shares = 64; /* the module's MAX_THREADS */
  if ((rc = m64_session_invoke1(s, OP_m64_threads, s->n_shares, (uint32_t *)&threads_rc, e))) return rc;
  if (threads_rc != 0) return m64_fail(e, M64_ELIMIT, "workspace too small for %u threads (%d)", s->n_threads, threads_rc);
  if ((rc = m64_session_start_threads(s, e))) return rc;
  if ((rc = m64_session_invoke1(s, OP_m64_alloc, IO_BYTES, &s->io, e))) return rc;
  if (!s->io) return m64_fail(e, M64_ELIMIT, "workspace too small for I/O buffers");

  /* The layer cache takes the rest of the workspace, up to the whole image (module/cache.c). */
  const m64_cache_fit fit = m64_cache_fit_in(s->mem->size, cap, s->opt.workspace_bytes != 0, &need);
  s->cache_size = fit.bytes;
  if (!fit.bytes) {
    char used_h[32];
    return m64_fail(e, M64_ELIMIT,
                    "workspace of %s is too small: the run state (context %u, %u thread%s) takes %s "
                    "and the globals plus the largest block%s need %s (try --workspace %lluM or a smaller -c)",
                    m64_format_size(fit.want, cap_h, sizeof cap_h), s->n_ctx, s->n_threads, s->n_threads == 1 ? "" : "s",
                    m64_bundle_n_experts(s->bundle) ? " and expert" : "",
                    m64_format_size(fit.taken, used_h, sizeof used_h),
                    m64_format_size(need.least * M64_CACHE_PAGE, need_h, sizeof need_h), (unsigned long long)fit.suggest);
  }
  const uint64_t want = fit.want;
  m64_wasm_memory_set_cap(s->mem, want / WASM_PAGE);
  uint32_t base;
  if ((rc = m64_session_invoke1(s, OP_m64_alloc, (uint32_t)(s->cache_size + WASM_PAGE), &base, e))) return rc;
  if (!base) return m64_fail(e, M64_ELIMIT, "could not reserve a layer cache of %llu bytes",
                             (unsigned long long)s->cache_size);
  const uint32_t cache_off = (uint32_t)(((uint64_t)base + WASM_PAGE - 1) & ~(WASM_PAGE - 1));
  s->st.cache_bytes = s->cache_size;
  /* page_mode's numbers are m64_page_mode's (m64_runtime.h documents them) */
  m64_pager_options po = {.mode = s->opt.page_mode >= M64_PAGE_COPY && s->opt.page_mode <= M64_PAGE_MAP_READ
                                      ? (m64_page_mode)s->opt.page_mode : M64_PAGE_COPY,
                          .verify = s->opt.verify_layers, .verbose = s->opt.verbose,
                          .prefetch = !s->opt.no_prefetch};
  const int rc2 = m64_pager_open(&s->pager, s->bundle, s->path, s->mem->data, cache_off, s->cache_size, &po, e);
  if (!rc2 && m64_pager_streams(s->pager)) m64_pool_add_company(s->pool, 1);
  return rc2;
}

static int load_tokenizer(m64_session *s, m64_err *e) {
  const m64_section *t = m64_bundle_find_section(s->bundle, M64_SEC_TOKENIZER, NULL);
  if (!t) return m64_fail(e, M64_EFORMAT, "bundle has no tokenizer section");
  if (t->size > 0x7fffffffu) return m64_fail(e, M64_ELIMIT, "tokenizer section too large");
  uint32_t addr;
  int rc = m64_session_invoke1(s, OP_m64_alloc, (uint32_t)t->size, &addr, e);
  if (rc) return rc;
  uint8_t *dst = addr ? m64_session_ws(s, addr, t->size) : NULL;
  if (!dst) return m64_fail(e, M64_ELIMIT, "workspace too small for the tokenizer (%llu bytes)",
                            (unsigned long long)t->size);
  memcpy(dst, t->data, t->size);
  call c = {.op = OP_m64_tok_load, .a = {addr, (uint32_t)t->size}};
  if ((rc = m64_session_invoke(s, &c, e))) return rc;
  if ((int32_t)c.ret != 0) return m64_fail(e, M64_EFORMAT, "the tokenizer section is invalid (%d)", (int32_t)c.ret);
  uint32_t v;
  if ((rc = m64_session_invoke0(s, OP_m64_tok_bos, &v, e))) return rc;
  s->bos = (int32_t)v;
  if ((rc = m64_session_invoke0(s, OP_m64_tok_eos, &v, e))) return rc;
  s->eos = (int32_t)v;
  return 0;
}

int m64_session_open(const char *path, const m64_session_options *o, m64_session **out,
                     m64_err *e) {
  *out = NULL;
  m64_session *s = calloc(1, sizeof *s);
  if (!s) return m64_fail(e, M64_ENOMEM, "out of memory");
  if (o) s->opt = *o;
  s->host.s = s;
  s->path = strdup(path);
  if (!s->path) {
    free(s);
    return m64_fail(e, M64_ENOMEM, "out of memory");
  }
  /* The verify-stamp policy: the file as it is now; a stamp of an earlier run, m64c build
   * or m64c verify spares the layer hashes */
  if (s->opt.verify_layers && s->opt.verify_stamps && stat(path, &s->file_st) == 0) {
    if (m64_stamp_matches(&s->file_st)) {
      s->opt.verify_layers = 0;
      s->stamp_state = 1;
      if (s->opt.verbose)
        fprintf(stderr, "m64run: every layer of this unchanged bundle was hashed before (by a run, m64c build or "
                        "m64c verify): not hashed again (--reverify to hash them)\n");
    } else s->stamp_state = -1;
  }
  int rc = m64_bundle_open(path, &s->bundle, e);
  /* A signature that does not verify means the bundle changed after its publisher signed
   * it: nothing of it runs, whatever the options (SECURITY.md). */
  if (!rc && m64_signature_check(s->bundle, s->opt.trust_dir, &s->sig) == M64_SIG_INVALID)
    rc = m64_fail(e, M64_EUNTRUSTED,
                  "the bundle's signature is invalid: %s. Not running it: get the bundle again from its "
                  "publisher (SECURITY.md)", s->sig.why);
  if (!rc) rc = m64_session_load_native(s, e);
  if (!rc) {
    /* the workspace: the memory every instance imports, at its declared minimum for now;
     * its cap is its own (m64_wasm_memory_set_cap below), never another session's */
    uint64_t min_pages, max_pages;
    s->abi->memory_limits(&min_pages, &max_pages);
    if (min_pages > 65536 || max_pages > 65536 || min_pages > max_pages)
      rc = m64_fail(e, M64_EFORMAT, "module declares a memory of %llu..%llu pages",
                    (unsigned long long)min_pages, (unsigned long long)max_pages);
    call c = {.op = OP_ALLOCATE_MEMORY, .a = {(uint32_t)min_pages, (uint32_t)max_pages}};
    if (!rc) rc = m64_session_invoke(s, &c, e);
  }
  if (!rc) {
    s->mem = &s->memory;
    /* one instance per thread, all before any export runs: instantiation re-applies the
     * module's data segments to the shared memory */
    s->n_threads = s->opt.n_threads ? s->opt.n_threads : 1;
    if (s->n_threads > 64) s->n_threads = 64;
    s->insts = calloc(s->n_threads, sizeof *s->insts);
    if (!s->insts) rc = m64_fail(e, M64_ENOMEM, "out of memory");
    for (uint32_t k = 0; k < s->n_threads && !rc; k++) {
      if (!(s->insts[k] = calloc(1, s->abi->instance_size))) {
        rc = m64_fail(e, M64_ENOMEM, "out of memory");
        break;
      }
      call c = {.op = OP_INSTANTIATE, .inst = s->insts[k]};
      rc = m64_session_invoke(s, &c, e);
    }
    s->inst = s->insts ? s->insts[0] : NULL;
  }
  if (!rc) {
    rc = load_tokenizer(s, e); /* first: its tables are part of the module's fixed memory */
  }
  if (!rc) rc = setup_state(s, e);
  if (rc) {
    m64_session_close(s);
    return rc;
  }
  *out = s;
  return 0;
}

void m64_session_close(m64_session *s) {
  if (!s) return;
  m64_pool_stop(s->pool); /* first: its threads run the module */
  s->pool = NULL;
  m64_pager_close(s->pager); /* before the memory goes: its thread writes into the workspace */
  for (uint32_t k = 0; s->insts && k < s->n_threads; k++) {
    if (s->insts[k]) s->abi->free(s->insts[k]); /* frees tables; the memory is the host's */
    free(s->insts[k]);
  }
  free(s->insts);
  if (s->memory_ready) wasm_rt_free_memory(&s->memory);
  free(s->path);
  m64_native_unload(s->native);
  m64_bundle_close(s->bundle);
  free(s);
}

const char *m64_session_native_source(const m64_session *s) { return s->native_source; }
uint32_t m64_session_n_vocab(const m64_session *s) { return s->n_vocab; }
uint32_t m64_session_n_ctx(const m64_session *s) { return s->n_ctx; }
uint32_t m64_session_n_ctx_train(const m64_session *s) { return s->n_ctx_train; }
uint32_t m64_session_n_threads(const m64_session *s) { return s->n_threads; }
int32_t m64_session_bos(const m64_session *s) { return s->bos; }
int32_t m64_session_eos(const m64_session *s) { return s->eos; }
const char *m64_session_native_target(const m64_session *s) { return s->target; }

int m64_session_meta(const m64_session *s, const char *key, char *out, size_t out_size) {
  return m64_bundle_meta(s->bundle, key, out, out_size);
}

/* ------------------------------------------------------------ running */
int m64_session_tokenize(m64_session *s, const char *text, size_t len, int flags,
                         int32_t **ids, uint32_t *n_ids, m64_err *e) {
  *ids = NULL;
  *n_ids = 0;
  /* text and ids share one buffer: as many ids as the worst case (m64_module.h) */
  const uint64_t max_ids = M64_TOK_MAX_IDS(len);
  uint64_t need = len + 4 + 4 * max_ids;
  uint32_t buf = s->io;
  if (need > IO_BYTES && need <= s->tok_cap) {
    buf = s->tok_buf;
  } else if (need > IO_BYTES) {
    if (need > 0x40000000ull) return m64_fail(e, M64_ELIMIT, "prompt of %zu bytes is too long", len);
    /* twice the last size at least, so that growing prompts leave little behind */
    uint64_t want = need > 2ull * s->tok_cap ? need : 2ull * s->tok_cap;
    if (want > 0x40000000ull) want = need;
    int rc = m64_session_invoke1(s, OP_m64_alloc, (uint32_t)want, &buf, e);
    if (!rc && !buf && want > need) rc = m64_session_invoke1(s, OP_m64_alloc, (uint32_t)(want = need), &buf, e);
    if (rc) return rc;
    if (!buf) return m64_fail(e, M64_ELIMIT, "workspace too small for a prompt of %zu bytes", len);
    s->tok_buf = buf, s->tok_cap = (uint32_t)want;
  }
  const uint32_t out = (uint32_t)((buf + len + 3) & ~3u), max = (uint32_t)max_ids;
  memcpy(m64_session_ws(s, buf, len), text, len);
  call c = {.op = OP_m64_tok_encode, .a = {buf, (uint32_t)len, (uint32_t)flags & (M64_TOKENIZE_ADD_BOS | M64_TOKENIZE_SPECIAL), out, max}};
  int rc = m64_session_invoke(s, &c, e);
  if (rc) return rc;
  int32_t n = (int32_t)c.ret;
  if (n == -5) /* TOK_ENOMEM: its scratch did not fit the workspace's bound */
    return m64_fail(e, M64_ELIMIT, "the workspace is too small to tokenize a prompt of %zu bytes (--workspace)", len);
  if (n < 0 || (uint32_t)n > max) return m64_fail(e, M64_EFORMAT, "tokenizer failed (%d)", n);
  int32_t *r = malloc((n ? n : 1) * sizeof *r);
  if (!r) return m64_fail(e, M64_ENOMEM, "out of memory");
  memcpy(r, m64_session_ws(s, out, (uint64_t)n * 4), (size_t)n * 4);
  *ids = r;
  *n_ids = (uint32_t)n;
  return 0;
}

int m64_session_eval(m64_session *s, int32_t token, uint32_t pos, const float **logits, m64_err *e) {
  return m64_session_eval_batch(s, &token, 1, pos, logits, e);
}

int m64_session_sample(m64_session *s, float temp, int32_t top_k, float top_p, int32_t *id, m64_err *e) {
  if (!s->logits) return m64_fail(e, M64_EFORMAT, "sample before any eval");
  call c = {.op = OP_m64_sample, .a = {s->logits, m64_f32_arg(temp), (uint32_t)top_k, m64_f32_arg(top_p)}};
  int rc = m64_session_invoke(s, &c, e);
  if (rc) return rc;
  if ((int32_t)c.ret < 0 || c.ret >= s->n_vocab) return m64_fail(e, M64_EFORMAT, "sampler returned %d", (int32_t)c.ret);
  *id = (int32_t)c.ret;
  return 0;
}

void m64_sampling_init(m64_sampling *p) {
  *p = (m64_sampling){.temp = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f, .repeat_penalty = 1.0f};
}

int m64_session_sample_ex(m64_session *s, const m64_sampling *p, const int32_t *last, uint32_t n_last, int32_t *id,
                          m64_err *e) {
  if (!s->logits) return m64_fail(e, M64_EFORMAT, "sample before any eval");
  const int penal = n_last && (p->repeat_penalty != 1.0f || p->presence_penalty != 0 || p->frequency_penalty != 0);
  if (s->abi->abi_version < 4) { /* older code: only what m64_sample does */
    if (penal || p->min_p > 0 || p->no_eog)
      return m64_fail(e, M64_EUNSUPPORTED, "this bundle's module predates the penalties, min-p and ignore-eos "
                                           "(module ABI %u): rebuild it with m64c build",
                      s->abi->module_abi_version);
    return m64_session_sample(s, p->temp, p->top_k, p->top_p, id, e);
  }
  /* the ids go through the I/O buffer: the most recent ones when more are given than fit */
  if (!penal) n_last = 0;
  if (n_last > IO_BYTES / 4) {
    last += n_last - IO_BYTES / 4;
    n_last = IO_BYTES / 4;
  }
  if (n_last) memcpy(m64_session_ws(s, s->io, (uint64_t)n_last * 4), last, (size_t)n_last * 4);
  call c = {.op = OP_m64_sample_ex,
            .a = {s->logits, m64_f32_arg(p->temp), (uint32_t)p->top_k, m64_f32_arg(p->top_p), m64_f32_arg(p->min_p),
                  m64_f32_arg(p->repeat_penalty), m64_f32_arg(p->presence_penalty),
                  m64_f32_arg(p->frequency_penalty), s->io, n_last, p->no_eog ? M64_SAMPLE_NO_EOG_FLAG : 0u}};
  int rc = m64_session_invoke(s, &c, e);
  if (rc) return rc;
  if ((int32_t)c.ret == -1) return m64_fail(e, M64_EFORMAT, "the sampler has no token left to choose");
  if ((int32_t)c.ret < 0 || c.ret >= s->n_vocab)
    return m64_fail(e, M64_EFORMAT, "sampler returned %d", (int32_t)c.ret);
  *id = (int32_t)c.ret;
  return 0;
}

/* verify_stamps: once every layer has been hashed (a pass placed them all), the file as
 * it was at open is recorded, so that the next session need not hash it again. Best
 * effort, like the cache directory it writes to. */
static void record_if_all_hashed(m64_session *s) {
  m64_session_stats st;
  m64_session_stats_get(s, &st);
  if (!st.layers || st.layers_verified != st.layers) return;
  char where[3200];
  s->stamp_state = 2;
  if (m64_stamp_write(&s->file_st, where, sizeof where) == 0 && s->opt.verbose)
    fprintf(stderr, "m64run: every layer hashed: recorded in %s\n", where);
}

int m64_session_stamped(const m64_session *s) { return s->stamp_state > 0 ? s->stamp_state : 0; }

int m64_session_eval_batch(m64_session *s, const int32_t *tokens, uint32_t n, uint32_t pos0,
                           const float **logits, m64_err *e) {
  for (uint32_t done = 0; done < n;) {
    const uint32_t k = n - done < s->max_batch ? n - done : s->max_batch;
    for (uint32_t i = 0; i < k; i++)
      if (tokens[done + i] < 0 || (uint32_t)tokens[done + i] >= s->n_vocab)
        return m64_fail(e, M64_EFORMAT, "token %d outside the vocabulary of %u", tokens[done + i], s->n_vocab);
    if ((uint64_t)pos0 + done + k > s->n_ctx)
      return m64_fail(e, M64_ELIMIT, "positions up to %llu beyond the context of %u",
                      (unsigned long long)pos0 + done + k, s->n_ctx);
    memcpy(m64_session_ws(s, s->io, (uint64_t)k * 4), tokens + done, (size_t)k * 4);
    call c = {.op = OP_m64_forward_batch, .a = {s->io, k, pos0 + done}};
    int rc = m64_session_invoke(s, &c, e);
    if (rc) return rc;
    const uint8_t *p = m64_session_ws(s, c.ret, (uint64_t)s->n_vocab * 4);
    if (!p) return m64_fail(e, M64_EFORMAT, "module returned logits outside its memory");
    s->logits = c.ret;
    if (logits) *logits = (const float *)p;
    done += k;
  }
  if (s->stamp_state == -1) record_if_all_hashed(s);
  return 0;
}

void m64_session_seed(m64_session *s, uint64_t seed) {
  call c = {.op = OP_m64_sampler_seed, .a = {(uint32_t)seed, (uint32_t)(seed >> 32)}};
  m64_err e;
  m64_session_invoke(s, &c, &e);
}

int m64_session_piece(m64_session *s, int32_t prev, int32_t id, char *buf, size_t cap, size_t *n,
                      m64_err *e) {
  const uint32_t max = 1024; /* the module's longest piece (TOK_MAX_TOKEN_LEN) */
  call c = {.op = OP_m64_tok_piece, .a = {(uint32_t)prev, (uint32_t)id, s->io, max}};
  int rc = m64_session_invoke(s, &c, e);
  if (rc) return rc;
  int32_t len = (int32_t)c.ret;
  if (len < 0) return m64_fail(e, M64_EFORMAT, "token %d has no text", id);
  if ((uint32_t)len > max) len = (int32_t)max;
  size_t k = (size_t)len < cap ? (size_t)len : cap;
  memcpy(buf, m64_session_ws(s, s->io, max), k);
  *n = k;
  return 0;
}

void m64_session_stats_get(const m64_session *s, m64_session_stats *st) {
  *st = s->st;
  st->workspace_bytes = s->mem ? s->mem->size : 0;
  if (s->pager) {
    m64_pager_stats p;
    m64_pager_stats_get(s->pager, &p);
    st->layer_acquires = p.acquires;
    st->layer_hits = p.hits;
    st->layer_page_ins = p.page_ins;
    st->bytes_paged = p.bytes_paged;
    st->evictions = p.evictions;
    st->page_seconds = p.page_seconds;
    st->stall_seconds = p.stall_seconds;
    st->layers_resident = p.resident;
    st->cache_slots = p.slots;
    st->layers = p.layers;
    st->layers_verified = p.verified;
    st->expert_acquires = p.expert_acquires;
    st->expert_hits = p.expert_hits;
    st->expert_page_ins = p.expert_page_ins;
  }
}

int m64_session_is_eog(m64_session *s, int32_t id, int *eog, m64_err *e) {
  *eog = id >= 0 && id == s->eos;
  if (id < 0 || s->abi->abi_version < 3) return 0; /* older native code: EOS only */
  call c = {.op = OP_m64_tok_is_eog, .a = {(uint32_t)id}};
  int rc = m64_session_invoke(s, &c, e);
  if (!rc) *eog = c.ret == 1;
  return rc;
}

int m64_session_find_token(m64_session *s, const char *text, size_t len, int32_t *id,
                           m64_err *e) {
  *id = -1;
  if (s->abi->abi_version < 3)
    return m64_fail(e, M64_EUNSUPPORTED, "the bundle's native code predates token lookup; run `m64c aot` on it");
  if (len > IO_BYTES) return 0; /* longer than any token */
  if (len) memcpy(m64_session_ws(s, s->io, len), text, len);
  call c = {.op = OP_m64_tok_find, .a = {s->io, (uint32_t)len}};
  int rc = m64_session_invoke(s, &c, e);
  if (!rc) *id = (int32_t)c.ret;
  return rc;
}

size_t m64_utf8_complete(const char *buf, size_t n) {
  /* look back over at most 3 continuation bytes for the lead byte of the last character */
  size_t i = n, back = 0;
  while (i > 0 && back < 3 && ((unsigned char)buf[i - 1] & 0xC0) == 0x80) i--, back++;
  if (i == 0) return n; /* only continuation bytes: nothing to wait for */
  unsigned char lead = (unsigned char)buf[i - 1];
  size_t need = lead >= 0xF0 && lead < 0xF8 ? 4 : lead >= 0xE0 && lead < 0xF0 ? 3
              : lead >= 0xC0 && lead < 0xE0 ? 2 : 1;
  return need > back + 1 ? i - 1 : n; /* an unfinished character waits for the next piece */
}
