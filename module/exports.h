/*
 * exports.h — the functions the module exports, as one X-macro table (as kernel_types.h
 * is for quant types). Everything else is generated from it:
 *   m64_module.h   the declarations, with their export_name attributes (the module side)
 *   native_abi.h   the ABI struct's function pointers (wasm types, instance first)
 *   native_glue.c  the wrappers behind those pointers and the M64_NATIVE_ABI table
 *   runtime/       the op codes and the calls of dispatch.c
 * web/exports.js lists the same names; test/web/exports_test.mjs checks that they agree
 * (the page is served from the source tree as is, with no build step to generate it).
 * Macros only, no includes: the module (freestanding wasm32), the AOT glue (compiled by
 * m64c from <prefix>/share/m64) and the hosts all include it.
 *
 *   X(name, since, ret, wret, n, params)
 *
 * name    the C and wasm export name
 * since   the native ABI version that added it (native_abi.h's struct appends in table
 *         order, so the order here is the ABI: never reorder, only append)
 * ret     the C return type in the module
 * wret    its wasm type: u32 (any i32: the host reinterprets signed results) or void
 * n       the number of parameters, 0..11 (M64_EACH below)
 * params  ((C type, name, wasm type u32 or f32), ...); () when n is 0. Pointers are i32
 *         offsets into the workspace, so their wasm type is u32.
 */
#ifndef M64_EXPORTS_H
#define M64_EXPORTS_H

/* clang-format off */
#define M64_EXPORTS(X)                                                                                        \
  /* ABI version implemented by this module (M64_ABI_VERSION). */                                            \
  X(m64_abi_version, 2, int32_t, u32, 0, ())                                                                 \
  /* Allocates n bytes (64-byte aligned) from the workspace; 0 when the memory cannot grow. */              \
  X(m64_alloc, 2, uint32_t, u32, 1, ((uint32_t, n, u32)))                                                    \
  /* Bytes the forward pass needs for a context of n_ctx tokens (activations + KV cache). */                \
  X(m64_state_bytes, 2, uint32_t, u32, 1, ((uint32_t, n_ctx, u32)))                                          \
  /* Allocates the run state for n_ctx tokens. 0 ok; -1 out of workspace; -2 bad n_ctx. */                  \
  X(m64_init, 2, int32_t, u32, 1, ((uint32_t, n_ctx, u32)))                                                  \
  /* Model facts the host needs; n_layers counts layer-index entries, globals included. */                  \
  X(m64_n_vocab, 2, uint32_t, u32, 0, ())                                                                    \
  X(m64_n_layers, 2, uint32_t, u32, 0, ())                                                                   \
  X(m64_n_ctx_train, 2, uint32_t, u32, 0, ())                                                                \
  /* Prepares for the host's n threads (per-thread scratch); call after m64_init.                          \
   * 0 ok, -1 out of workspace, -2 bad n. */                                                                 \
  X(m64_threads, 2, int32_t, u32, 1, ((uint32_t, n, u32)))                                                   \
  /* Runs share i of n of the job the module published before calling m64.parallel(). */                    \
  X(m64_worker, 2, void, void, 2, ((uint32_t, i, u32), (uint32_t, n, u32)))                                  \
  /* Runs one token at position pos through the model; returns the address of n_vocab f32                  \
   * logits (owned by the module, valid until the next call). */                                             \
  X(m64_forward, 2, uint32_t, u32, 2, ((int32_t, token, u32), (int32_t, pos, u32)))                          \
  /* Runs n tokens (1..m64_max_batch()) at positions pos0.. pos0+n-1 in one pass: each                      \
   * weight matrix is read once for all of them (prompt processing). Returns the address of                 \
   * the last token's logits, as m64_forward does. */                                                        \
  X(m64_forward_batch, 2, uint32_t, u32, 3, ((const int32_t *, tokens, u32), (uint32_t, n, u32),             \
                                             (int32_t, pos0, u32)))                                          \
  X(m64_max_batch, 2, uint32_t, u32, 0, ())                                                                  \
  /* Tokenizer: the host copies the bundle's TOKENIZER section into m64_alloc'ed memory. */                  \
  X(m64_tok_load, 2, int32_t, u32, 2, ((const uint8_t *, blob, u32), (uint32_t, size, u32)))                 \
  /* Encodes text (UTF-8, len bytes) into out (max ids). add_bos holds flags: bit 0 puts BOS                \
   * first when the vocabulary asks for it (tokenizer.ggml.add_bos_token); bit 1 parses                      \
   * special-token text such as "<|eot_id|>" into its id (else it is plain text). Returns                    \
   * the number of ids, or -1 if out is too small. M64_TOK_MAX_IDS(len) ids always fit. */                   \
  X(m64_tok_encode, 2, int32_t, u32, 5, ((const char *, text, u32), (uint32_t, len, u32),                    \
                                         (int32_t, add_bos, u32), (int32_t *, out, u32), (uint32_t, max, u32))) \
  /* Writes the bytes token id stands for (after prev) into out; returns their count. */                     \
  X(m64_tok_piece, 2, int32_t, u32, 4, ((int32_t, prev, u32), (int32_t, id, u32), (char *, out, u32),        \
                                        (uint32_t, max, u32)))                                               \
  X(m64_tok_bos, 2, int32_t, u32, 0, ())                                                                     \
  X(m64_tok_eos, 2, int32_t, u32, 0, ())                                                                     \
  /* Sampler over the last logits: temperature (0 = greedy), top-k (0 = off), top-p (1 = off).             \
   * The RNG is xorshift64* seeded by m64_sampler_seed. */                                                   \
  X(m64_sampler_seed, 2, void, void, 2, ((uint32_t, lo, u32), (uint32_t, hi, u32)))                          \
  X(m64_sample, 2, int32_t, u32, 4, ((const float *, logits, u32), (float, temp, f32), (int32_t, top_k, u32), \
                                     (float, top_p, f32)))                                                   \
  /* The id of the token whose text is exactly these bytes (any type), -1 if none: chat                     \
   * templates find "<|eot_id|>", "<|im_start|>" ... this way. */                                            \
  X(m64_tok_find, 3, int32_t, u32, 2, ((const char *, text, u32), (uint32_t, len, u32)))                     \
  /* 1 if id ends generation: EOS, EOT, EOM and the tokens llama.cpp treats so by their text                \
   * ("<|eot_id|>", "<|im_end|>", "<|end_of_text|>", ...), as m64c marked them; else 0. */                   \
  X(m64_tok_is_eog, 3, int32_t, u32, 1, ((int32_t, id, u32)))                                                \
  /* m64_sample with llama.cpp's other steps, in its order (module/sampler.h): penalties over               \
   * the n_last ids at last (the context's last N tokens; repeat 1, presence 0, frequency 0 =                \
   * off), then top-k, top-p, min-p (0 = off), temperature. flags bit 0 (M64_SAMPLE_NO_EOG):                 \
   * end-of-generation tokens (m64_tok_is_eog) are never chosen. Returns the id, or -1                       \
   * (nothing can be chosen) / -2 (out of workspace). */                                                     \
  X(m64_sample_ex, 4, int32_t, u32, 11, ((const float *, logits, u32), (float, temp, f32),                   \
                                         (int32_t, top_k, u32), (float, top_p, f32), (float, min_p, f32),    \
                                         (float, repeat_penalty, f32), (float, presence_penalty, f32),       \
                                         (float, frequency_penalty, f32), (const int32_t *, last, u32),      \
                                         (uint32_t, n_last, u32), (uint32_t, flags, u32)))                   \
  /* Chat formats (module/chat.h): the kind named by the bundle's chat.template (0: unknown);               \
   * a user turn (text = the system message's sys_len bytes, then the user's user_len; flags                 \
   * bit 0: not the first turn) and the end of the assistant's reply, as ids in out (max).                   \
   * scratch: sys_len + user_len + 256 bytes. -1: out or scratch too small. */                               \
  X(m64_chat_kind, 4, int32_t, u32, 2, ((const char *, name, u32), (uint32_t, len, u32)))                    \
  X(m64_chat_turn, 4, int32_t, u32, 9, ((int32_t, kind, u32), (int32_t, flags, u32), (const char *, text, u32), \
                                        (uint32_t, sys_len, u32), (uint32_t, user_len, u32),                 \
                                        (char *, scratch, u32), (uint32_t, scratch_cap, u32),                \
                                        (int32_t *, out, u32), (uint32_t, max, u32)))                        \
  X(m64_chat_end, 4, int32_t, u32, 6, ((int32_t, kind, u32), (int32_t, last, u32), (char *, scratch, u32),   \
                                       (uint32_t, scratch_cap, u32), (int32_t *, out, u32),                  \
                                       (uint32_t, max, u32)))                                                \
  /* The layer cache's policy (module/cache.h) for a host with no copy of its own (the page;                \
   * the runtime links cache.c). m64_cache_open sizes the cache in what the workspace has                    \
   * left (cap_pages: its limit; capped: the user set it), reserves it and cuts it into                      \
   * slots. pages: n_layers u32, each layer's size in 64 KiB pages. out: 5 u32, the workspace                \
   * and the bytes before the cache (64 KiB pages, rounded up), the least cache (pages), the                 \
   * smallest workspace that would do (MiB, 0 unless too small) and the cache (pages, 0 if                   \
   * too small). Returns the cache (a                                                                          \
   * handle), 0 when too small or out of memory. acquire: the layer's slot, held, or -1 if                   \
   * it is not in the cache; place: the slot the layer now has (the host puts its bytes at                   \
   * slot_addr), held, evicting the one it held, or -1 if every slot is held; release lets                   \
   * go of one hold. slot_of: the slot, or -1 (no hold taken). */                                            \
  X(m64_cache_open, 5, uint32_t, u32, 6, ((const uint32_t *, pages, u32), (uint32_t, n_layers, u32),         \
                                          (uint32_t, n_blocks, u32), (uint32_t, cap_pages, u32),             \
                                          (uint32_t, capped, u32), (uint32_t *, out, u32)))                  \
  X(m64_cache_acquire, 5, int32_t, u32, 2, ((uint32_t, cache, u32), (uint32_t, layer, u32)))                 \
  X(m64_cache_place, 5, int32_t, u32, 2, ((uint32_t, cache, u32), (uint32_t, layer, u32)))                   \
  X(m64_cache_release, 5, void, void, 2, ((uint32_t, cache, u32), (uint32_t, layer, u32)))                   \
  X(m64_cache_slot_of, 5, int32_t, u32, 2, ((uint32_t, cache, u32), (uint32_t, layer, u32)))                 \
  X(m64_cache_slot_addr, 5, uint32_t, u32, 2, ((uint32_t, cache, u32), (uint32_t, slot, u32)))               \
  X(m64_cache_slots, 5, uint32_t, u32, 1, ((uint32_t, cache, u32)))                                          \
  X(m64_cache_evictions, 5, uint32_t, u32, 1, ((uint32_t, cache, u32)))                                      \
  /* M64_TOK_MAX_IDS(len), capped at 2^32 - 1: the ids m64_tok_encode may write for len bytes,               \
   * for a host that cannot include m64_module.h (the page). */                                              \
  X(m64_tok_max_ids, 5, uint32_t, u32, 1, ((uint32_t, len, u32)))
/* clang-format on */

/* The wasm types as C types (wasm2c's, and the ABI struct's). */
#define M64_WTYPE_u32 uint32_t
#define M64_WTYPE_f32 float
#define M64_WTYPE_void void

/* M64_EACH(n, m, params) expands m(k, param) for each of the n params, k = 0..n-1. The
 * preprocessor cannot count, hence the n column. */
#define M64_ID(...) __VA_ARGS__
#define M64_EACH(n, m, params) M64_EACH_(M64_EACH_##n, m, M64_ID params)
#define M64_EACH_(each, m, ...) each(m, __VA_ARGS__) /* expands params into arguments first */
#define M64_EACH_0(m, ...)
#define M64_EACH_1(m, a) m(0, a)
#define M64_EACH_2(m, a, b) M64_EACH_1(m, a) m(1, b)
#define M64_EACH_3(m, a, b, c) M64_EACH_2(m, a, b) m(2, c)
#define M64_EACH_4(m, a, b, c, d) M64_EACH_3(m, a, b, c) m(3, d)
#define M64_EACH_5(m, a, b, c, d, e) M64_EACH_4(m, a, b, c, d) m(4, e)
#define M64_EACH_6(m, a, b, c, d, e, f) M64_EACH_5(m, a, b, c, d, e) m(5, f)
#define M64_EACH_7(m, a, b, c, d, e, f, g) M64_EACH_6(m, a, b, c, d, e, f) m(6, g)
#define M64_EACH_8(m, a, b, c, d, e, f, g, h) M64_EACH_7(m, a, b, c, d, e, f, g) m(7, h)
#define M64_EACH_9(m, a, b, c, d, e, f, g, h, i) M64_EACH_8(m, a, b, c, d, e, f, g, h) m(8, i)
#define M64_EACH_10(m, a, b, c, d, e, f, g, h, i, j) M64_EACH_9(m, a, b, c, d, e, f, g, h, i) m(9, j)
#define M64_EACH_11(m, a, b, c, d, e, f, g, h, i, j, k) M64_EACH_10(m, a, b, c, d, e, f, g, h, i, j) m(10, k)

/* Pieces of one param (C type, name, wasm type), used as M64_P_NAME param. */
#define M64_P_CTYPE(ctype, name, wtype) ctype
#define M64_P_NAME(ctype, name, wtype) name
#define M64_P_WTYPE(ctype, name, wtype) wtype

/* The C parameter list: "(void)" or "(T a, U b, ...)". */
#define M64_CPARAMS(n, params) (M64_VOID_##n M64_EACH(n, M64_CPARAM_, params))
#define M64_CPARAM_(k, p) M64_SEP_##k M64_P_CTYPE p M64_P_NAME p
/* The wasm parameters after the instance: ", uint32_t a, float b, ..." (nothing for none). */
#define M64_WPARAMS(n, params) M64_EACH(n, M64_WPARAM_, params)
#define M64_WPARAM_(k, p) , M64_WPARAM_T_(M64_P_WTYPE p) M64_P_NAME p
#define M64_WPARAM_T_(w) M64_WTYPE_(w)
#define M64_WTYPE_(w) M64_WTYPE_##w
/* The argument names after the instance: ", a, b, ..." */
#define M64_ARGS(n, params) M64_EACH(n, M64_ARG_, params)
#define M64_ARG_(k, p) , M64_P_NAME p

#define M64_VOID_0 void
#define M64_VOID_1
#define M64_VOID_2
#define M64_VOID_3
#define M64_VOID_4
#define M64_VOID_5
#define M64_VOID_6
#define M64_VOID_7
#define M64_VOID_8
#define M64_VOID_9
#define M64_VOID_10
#define M64_VOID_11
#define M64_SEP_0
#define M64_SEP_1 ,
#define M64_SEP_2 ,
#define M64_SEP_3 ,
#define M64_SEP_4 ,
#define M64_SEP_5 ,
#define M64_SEP_6 ,
#define M64_SEP_7 ,
#define M64_SEP_8 ,
#define M64_SEP_9 ,
#define M64_SEP_10 ,

#endif /* M64_EXPORTS_H */
