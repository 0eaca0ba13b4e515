/*
 * m64_runtime.h — the m64run library: run a .m64 bundle.
 *
 * A session maps the bundle, loads the module's native code (checked against the
 * bundle's wasm, and only when this user accepts it: trust_bundle_native), instantiates
 * it with a wasm32 linear memory bounded by the workspace size, and serves the module's
 * layer requests from the 64-bit image: a layer is mapped (or, compressed, decompressed)
 * into a cache region of the workspace the first time it is needed, and evicted, never
 * while in use, when room is needed: the pager (pager.h) keeps the layers the forward
 * pass's fixed cycle needs soonest (not the least recently used: that would evict the one
 * needed next) and prefetches the next one on a background thread. Everything the model computes — tokenizer, forward pass, sampler — runs in the module;
 * this library only moves bytes and reports.
 *
 * Errors: every call returns 0 or a negative M64_E* code with one line in *e. A wasm trap
 * (out-of-bounds access, unreachable, stack exhaustion, a layer that cannot be paged) is
 * returned as M64_ETRAP naming the trap; the session must then be closed.
 * One session per thread at a time.
 */
#ifndef M64_RUNTIME_H
#define M64_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "m64_formats.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct m64_session_options {
  uint64_t workspace_bytes; /* bound on the wasm32 memory; 0 = what the model needs, max 4 GiB */
  uint32_t n_ctx;           /* context length; 0 = the model's training context, max 4096 */
  int verify_layers;        /* check each layer's SHA-256 the first time it is paged in */
  int verify_stamps;        /* with verify_layers: the verified-bundle stamps (m64_formats.h,
                               ~/.cache/m64/verified) decide. A file that a stamp records as
                               fully hashed before, unchanged since, is not hashed again; and
                               once this session has hashed every layer, it records the file
                               (m64_session_stamped says which happened). 0: hash as
                               verify_layers says, and record nothing */
  int verbose;              /* page-ins and cache decisions on stderr */
  int page_mode;            /* 0: copy layers into the workspace; 1: map the file's pages there;
                               2: read them in (pread); 3: map, or 4 where blocks stream
                               through the workspace and a fresh mapping costs per page (a
                               probe at open: a VM's shadow page tables); 4: map each slot's
                               first layer, read in the slots blocks stream through */
  int no_prefetch;          /* page on demand only (no background thread) */
  uint32_t n_threads;       /* threads that share each matvec; 0 = 1 */
  int trust_bundle_native;  /* 0 (the default): load only native code compiled here by this
                               user (`m64c build`/`m64c aot`: its local mark,
                               formats/sign/local_mark.h), else fail with M64_EUNTRUSTED;
                               1: also run whatever native code the bundle ships, with this
                               process's rights (trusting whoever built it; SECURITY.md).
                               Either way, code under a valid signature by a key in the
                               trust ring also loads (trust_dir), and a bundle whose
                               signature does not verify is refused outright */
  const char *trust_dir;    /* the trust ring of publisher keys (formats/sign/m64_sign.h);
                               NULL: $M64_TRUST_DIR, else $XDG_CONFIG_HOME/m64/trusted, else
                               ~/.config/m64/trusted */
} m64_session_options;

typedef struct m64_session_stats {
  uint64_t layer_acquires;  /* requests from the module */
  uint64_t layer_hits;      /* requests served without waiting */
  uint64_t layer_page_ins;  /* layers placed into the workspace (copied or mapped) */
  uint64_t bytes_paged;     /* bytes of those layers */
  uint64_t evictions;
  double page_seconds;      /* time spent placing (and verifying) layers, any thread */
  double stall_seconds;     /* time the module waited for a layer */
  uint32_t cache_slots;
  uint64_t workspace_bytes; /* the memory's size now */
  uint64_t cache_bytes;     /* the layer cache inside it */
  uint32_t layers_resident; /* layers in the cache now */
  uint32_t layers;          /* the bundle's layers */
  uint32_t layers_verified; /* how many have had their SHA-256 checked so far (verify_layers) */
  uint64_t expert_acquires; /* Mixture of Experts: requests for experts (part of layer_acquires) */
  uint64_t expert_hits;     /* of those, served without waiting (resident, or prefetched in time) */
  uint64_t expert_page_ins; /* experts placed: expert_acquires - expert_page_ins were cache hits */
} m64_session_stats;

typedef struct m64_session m64_session;

int m64_session_open(const char *bundle_path, const m64_session_options *o, m64_session **out,
                     m64_err *e);
void m64_session_close(m64_session *s); /* accepts NULL */

uint32_t m64_session_n_vocab(const m64_session *s);
uint32_t m64_session_n_ctx(const m64_session *s);
/* The context the model was trained with (its GGUF's context_length), 0 if unknown. */
uint32_t m64_session_n_ctx_train(const m64_session *s);
uint32_t m64_session_n_threads(const m64_session *s);
int32_t m64_session_bos(const m64_session *s);
int32_t m64_session_eos(const m64_session *s);
const char *m64_session_native_target(const m64_session *s);
/* Why its native code was accepted: "compiled here (your local mark)", "signed by NAME
 * (FINGERPRINT), whom you trust" or "as shipped (--trust-bundle-native)". */
const char *m64_session_native_source(const m64_session *s);

/* Tokenizes text with the module's tokenizer; *ids is malloc'ed (caller frees). flags:
 * M64_TOKENIZE_ADD_BOS puts BOS first when the vocabulary asks for it (so 1 keeps meaning
 * "a prompt"); M64_TOKENIZE_SPECIAL turns special-token text ("<|eot_id|>") into its id. */
enum { M64_TOKENIZE_ADD_BOS = 1, M64_TOKENIZE_SPECIAL = 2 };
int m64_session_tokenize(m64_session *s, const char *text, size_t len, int flags,
                         int32_t **ids, uint32_t *n_ids, m64_err *e);
/* *eog = 1 if id ends generation (EOS, EOT, "<|eot_id|>", "<|im_end|>" ... as llama.cpp
 * decides; native code older than ABI 3: EOS only). */
int m64_session_is_eog(m64_session *s, int32_t id, int *eog, m64_err *e);
/* *id = the token whose text is exactly these bytes, -1 if none. */
int m64_session_find_token(m64_session *s, const char *text, size_t len, int32_t *id,
                           m64_err *e);
/* Length of the longest prefix of buf that does not end inside a UTF-8 character (what a
 * streaming printer may write now; the rest waits for the next piece). */
size_t m64_utf8_complete(const char *buf, size_t n);
/* Runs token at position pos; *logits points at n_vocab floats inside the workspace,
 * valid until the next call. */
int m64_session_eval(m64_session *s, int32_t token, uint32_t pos, const float **logits,
                     m64_err *e);
/* Runs n tokens at positions pos0..pos0+n-1 in batches (each weight read once per
 * batch); *logits are the last token's. For prompts. */
int m64_session_eval_batch(m64_session *s, const int32_t *tokens, uint32_t n, uint32_t pos0,
                           const float **logits, m64_err *e);
/* Samples from the last eval's logits (temp 0 = greedy). */
int m64_session_sample(m64_session *s, float temp, int32_t top_k, float top_p, int32_t *id,
                       m64_err *e);
void m64_session_seed(m64_session *s, uint64_t seed);
/* llama.cpp's sampler chain (module/sampler.h): penalties over the caller's last
 * tokens, then top-k, top-p, min-p, temperature. */
typedef struct m64_sampling {
  float temp;              /* 0 = greedy (after penalties) */
  int32_t top_k;           /* 0 = off */
  float top_p;             /* 1 = off */
  float min_p;             /* 0 = off */
  float repeat_penalty;    /* 1 = off */
  float presence_penalty;  /* 0 = off */
  float frequency_penalty; /* 0 = off */
  int no_eog;              /* end-of-generation tokens are never chosen (--ignore-eos) */
} m64_sampling;
/* llama-cli's defaults: temp 0.8, top-k 40, top-p 0.95, min-p 0.05, penalties off. */
void m64_sampling_init(m64_sampling *p);
/* Samples from the last eval's logits with p; last[0..n_last) are the ids the penalties
 * count (the context's last N tokens, oldest first; at most the last 16K are used).
 * A bundle built before module ABI 4 samples only with temp/top-k/top-p: asking it for
 * more is M64_EUNSUPPORTED (rebuild the bundle). */
int m64_session_sample_ex(m64_session *s, const m64_sampling *p, const int32_t *last,
                          uint32_t n_last, int32_t *id, m64_err *e);
/* The bytes of token id following prev; *n bytes written to buf (at most cap). */
int m64_session_piece(m64_session *s, int32_t prev, int32_t id, char *buf, size_t cap,
                      size_t *n, m64_err *e);

void m64_session_stats_get(const m64_session *s, m64_session_stats *st);
/* verify_stamps: 1 when a stamp spared this session the layer hashes, 2 when this session
 * hashed every layer and recorded the file, 0 otherwise. */
int m64_session_stamped(const m64_session *s);


/* ---- chat (runtime/chat.c) ----
 * A conversation in the model's chat format. The bundle names the format (metadata
 * `chat.template`, recognised by m64c from the GGUF's template; read it with
 * m64_session_meta). Templates: m64_chat_known_templates(). */
typedef struct m64_chat m64_chat;
const char *m64_chat_known_templates(void);
/* Value of a bundle metadata key ("chat.template", ...) into out; M64_ENOTFOUND if absent. */
int m64_session_meta(const m64_session *s, const char *key, char *out, size_t out_size);
/* system may be NULL; M64_EUNSUPPORTED names the known templates for an unknown name. */
int m64_chat_open(m64_session *s, const char *template_name, const char *system, m64_chat **out,
                  m64_err *e);
void m64_chat_close(m64_chat *c); /* accepts NULL */
/* The ids to run for the user's next message: BOS (first turn only, where the vocabulary
 * has one), any pending system message, the message with the template around it, and the
 * start of the assistant's reply. *ids stays valid until the next call on c. */
int m64_chat_user(m64_chat *c, const char *text, size_t len, const int32_t **ids, uint32_t *n,
                  m64_err *e);
/* The ids that close the assistant's reply, given the last token already run (the model's
 * own end-of-turn token is not repeated). */
int m64_chat_end_reply(m64_chat *c, int32_t last, const int32_t **ids, uint32_t *n, m64_err *e);

#ifdef __cplusplus
}
#endif
#endif
