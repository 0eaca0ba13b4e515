/*
 * m64_module.h — the host ABI of a generated m64 module (M64_ABI_VERSION, below).
 *
 * Every bundle carries one WebAssembly module (wasm32 + SIMD128 + bulk memory) made by
 * m64c from the sources in this folder plus one generated file (model.c: shapes, layer
 * layout, forward pass). The module owns all of the model's math, the tokenizer and the
 * sampler, so each host (m64run natively through wasm2c, web/m64.js in a browser) only
 * pages layers and moves bytes. This header is compiled into the module; hosts implement
 * the imports and call the exports. docs/ARCHITECTURE.md explains the design.
 *
 * Memory: the module's one linear memory (imported as m64.memory, below) is the workspace.
 * The module bump-allocates its state from it with memory.grow; the host reserves its layer
 * cache from the same allocator through m64_alloc, so the workspace limit (the memory's
 * maximum) bounds everything.
 *
 * Paging: before touching layer L's weights the module calls m64.layer_acquire(L); the
 * host makes the layer's bytes (exactly the image range the layer index names) resident
 * at a 64-byte aligned workspace address and returns it. The address stays valid until
 * m64.layer_release(L). A host that cannot page the layer traps (native: wasm_rt_trap;
 * browser: throws), so acquire never returns an invalid pointer.
 * m64.layer_prefetch(L) is a hint that L will be acquired soon (may be ignored), and
 * m64.prefetch(addr, bytes) one that those workspace bytes will be read soon (the AOT
 * object's glue issues CPU prefetches; a browser host passes a no-op).
 *
 * Memory and threads (ABI 2): the module imports its memory as m64.memory (the host
 * creates it, at least the module's declared minimum size) and exports __stack_pointer.
 * A host with N threads instantiates N instances over the same memory, right after the
 * first one and before any export runs (each instantiation re-writes the data segments),
 * and gives each extra instance its own stack by setting its __stack_pointer. The module
 * parallelizes by publishing a job in memory and calling m64.parallel(); the host then
 * calls m64_worker(i, n) for i = 0..n-1, one per thread (any instance), and returns when
 * all are done. A host with one thread simply calls m64_worker(0, 1).
 */
#ifndef M64_MODULE_H
#define M64_MODULE_H

#include <stdint.h>

/* 3: the module imports kq_mat, has_kq_mat, f16_round, f16_widen_lo/hi and has_f16 too
 * (below; a host without them answers has_* 0). Hosts still run version 2 modules, which
 * import none of them (module/native_abi.h: M64_MODULE_ABI_OLDEST).
 * 4: the module exports m64_sample_ex (penalties, min-p, banned end tokens) and the chat
 * formats (m64_chat_*); a host runs older modules with m64_sample alone and no chat. */
#define M64_ABI_VERSION 4

#if defined(__wasm__)
#define M64_IMPORT(name) __attribute__((import_module("m64"), import_name(name)))
#define M64_EXPORT(name) __attribute__((export_name(name), visibility("default")))
#else /* native builds of the module sources (tests, bench): plain C functions */
#define M64_IMPORT(name)
#define M64_EXPORT(name)
#endif

/* ---- imports (module "m64") ---- */
M64_IMPORT("layer_acquire") uint32_t m64_host_layer_acquire(uint32_t layer);
M64_IMPORT("layer_release") void m64_host_layer_release(uint32_t layer);
M64_IMPORT("layer_prefetch") void m64_host_layer_prefetch(uint32_t layer);
M64_IMPORT("log") void m64_host_log(const char *msg, uint32_t len);
M64_IMPORT("parallel") void m64_host_parallel(void);
/* A hint: the module reads [addr, addr + bytes) soon. wasm has no prefetch instruction; a
 * native host issues the CPU's prefetches (an AOT build inlines them), a browser host passes
 * a no-op. Called per block of the matrix-vector products, a few KiB ahead of the reads. */
M64_IMPORT("prefetch") void m64_host_prefetch(const void *addr, uint32_t bytes);
#if defined(__wasm__)
#include <wasm_simd128.h>
/* acc + per i32 lane the sum of four products a (i8) x b (u8 below 128): relaxed SIMD's
 * i32x4.relaxed_dot_i8x16_i7x16_add_s, which wasm2c 1.0.39 rejects. A native host inlines
 * one instruction (VNNI, SDOT; module/native_dot.h). A pure function of its
 * arguments: it reads and writes no memory, so the sandbox is the same with it. */
M64_IMPORT("dot_i8") v128_t m64_host_dot_i8(v128_t acc, v128_t a, v128_t b);
/* 1 if the kernels should use dot_i8 (it is fast here), 0 to keep the plain SIMD128 ones
 * (a browser host, whose import would be a call across instances per 16 bytes). */
M64_IMPORT("has_dot_i8") uint32_t m64_host_has_dot_i8(void);
/* f16 steps as F16C (x86) or FCVT (Arm) do them in one instruction: f16_round gives four
 * f32 lanes rounded to f16 (to nearest, ties to even) and back; f16_widen_lo/hi the f32
 * values of the low or high four of eight f16 lanes. For every value that is not a NaN
 * they equal the module's own integer sequences (kernels.h) bit for bit; pure functions of
 * their arguments, like dot_i8. has_f16: 1 where they are single instructions (the module
 * asks once, in m64_init; a browser host answers 0). */
M64_IMPORT("f16_round") v128_t m64_host_f16_round(v128_t x);
M64_IMPORT("f16_widen_lo") v128_t m64_host_f16_widen_lo(v128_t h);
M64_IMPORT("f16_widen_hi") v128_t m64_host_f16_widen_hi(v128_t h);
M64_IMPORT("has_f16") uint32_t m64_host_has_f16(void);
#endif
/* out[r] = row r of a Q4_K (type 12) or Q6_K (14) matrix at w (rows of nb 256-blocks; with
 * pairs the row-pair layout) times the i8 activation blocks at xq (kernels_kquants.h's
 * KQ8I layout), r < rows: what the module's own K-quant matvec computes, bit for bit, in a
 * native host's wider vectors (module/native_kq.h). The host checks that every
 * byte it reads and writes lies inside the memory, and traps otherwise, as a wasm load
 * would. has_kq_rows: 1 where the host has it (else the module's kernels run). */
M64_IMPORT("kq_rows") void m64_host_kq_rows(uint32_t type, float *out, const uint8_t *w, const uint8_t *xq,
                                            uint32_t rows, uint32_t nb, uint32_t pairs);
M64_IMPORT("has_kq_rows") uint32_t m64_host_has_kq_rows(void);
/* The same for n inputs (prefill): out[t * out_stride + r] = row r times the activation at
 * xq + t * xq_stride, for t < n, r < rows, each equal bit for bit to what kq_rows gives for
 * that input alone. Checked by the host as kq_rows is. has_kq_mat: 1 where the host has it
 * (AVX-512 CPUs: the unpacked weights of a row pair stay in 32 vector registers). */
M64_IMPORT("kq_mat") void m64_host_kq_mat(uint32_t type, float *out, uint32_t out_stride, const uint8_t *w,
                                          const uint8_t *xq, uint32_t xq_stride, uint32_t rows, uint32_t nb,
                                          uint32_t n, uint32_t pairs);
M64_IMPORT("has_kq_mat") uint32_t m64_host_has_kq_mat(void);

/* ---- exports ---- */
/* ABI version implemented by this module (M64_ABI_VERSION). */
M64_EXPORT("m64_abi_version") int32_t m64_abi_version(void);
/* Allocates n bytes (64-byte aligned) from the workspace; 0 when the memory cannot grow. */
M64_EXPORT("m64_alloc") uint32_t m64_alloc(uint32_t n);
/* Bytes the forward pass needs for a context of n_ctx tokens (activations + KV cache). */
M64_EXPORT("m64_state_bytes") uint32_t m64_state_bytes(uint32_t n_ctx);
/* Allocates the run state for n_ctx tokens. 0 ok; -1 out of workspace; -2 bad n_ctx. */
M64_EXPORT("m64_init") int32_t m64_init(uint32_t n_ctx);
/* Model facts the host needs. */
M64_EXPORT("m64_n_vocab") uint32_t m64_n_vocab(void);
M64_EXPORT("m64_n_layers") uint32_t m64_n_layers(void);   /* layer-index entries, globals included */
M64_EXPORT("m64_n_ctx_train") uint32_t m64_n_ctx_train(void);
/* Prepares for the host's n threads (per-thread scratch); call after m64_init.
 * 0 ok, -1 out of workspace, -2 bad n. */
M64_EXPORT("m64_threads") int32_t m64_threads(uint32_t n);
/* Runs share i of n of the job the module published before calling m64.parallel(). */
M64_EXPORT("m64_worker") void m64_worker(uint32_t i, uint32_t n);
/* Runs one token at position pos through the model; returns the address of n_vocab f32
 * logits (owned by the module, valid until the next call). */
M64_EXPORT("m64_forward") uint32_t m64_forward(int32_t token, int32_t pos);
/* Runs n tokens (1..m64_max_batch()) at positions pos0.. pos0+n-1 in one pass: each
 * weight matrix is read once for all of them (prompt processing). Returns the address of
 * the last token's logits, as m64_forward does. */
M64_EXPORT("m64_forward_batch") uint32_t m64_forward_batch(const int32_t *tokens, uint32_t n,
                                                           int32_t pos0);
M64_EXPORT("m64_max_batch") uint32_t m64_max_batch(void);

/* The most ids m64_tok_encode can write for len bytes of text, whatever the vocabulary:
 * a SentencePiece vocabulary without U+2581 ("▁") spells each space as that character's 3
 * byte tokens, and every stretch of text between special tokens (each at least a byte
 * long, one id) gets a leading space: 3 * text + 4 * specials + 3 + BOS <= 4 * len + 4.
 * Hosts size their id buffers with it (a cap of len + 2 failed on ' a': issue 22). */
#define M64_TOK_MAX_IDS(len) (4 * (uint64_t)(len) + 4)

/* Tokenizer: the host copies the bundle's TOKENIZER section into m64_alloc'ed memory. */
M64_EXPORT("m64_tok_load") int32_t m64_tok_load(const uint8_t *blob, uint32_t size);
/* Encodes text (UTF-8, len bytes) into out (max ids). add_bos holds flags: bit 0 puts BOS
 * first when the vocabulary asks for it (tokenizer.ggml.add_bos_token); bit 1 parses
 * special-token text such as "<|eot_id|>" into its id (else it is plain text). Returns
 * the number of ids, or -1 if out is too small. M64_TOK_MAX_IDS(len) ids always fit. */
M64_EXPORT("m64_tok_encode") int32_t m64_tok_encode(const char *text, uint32_t len,
                                                    int32_t add_bos, int32_t *out, uint32_t max);
/* Writes the bytes token id stands for (after prev) into out; returns their count. */
M64_EXPORT("m64_tok_piece") int32_t m64_tok_piece(int32_t prev, int32_t id, char *out,
                                                  uint32_t max);
M64_EXPORT("m64_tok_bos") int32_t m64_tok_bos(void);
M64_EXPORT("m64_tok_eos") int32_t m64_tok_eos(void);
/* The id of the token whose text is exactly these bytes (any type), -1 if none: chat
 * templates find "<|eot_id|>", "<|im_start|>" ... this way. */
M64_EXPORT("m64_tok_find") int32_t m64_tok_find(const char *text, uint32_t len);
/* 1 if id ends generation: EOS, EOT, EOM and the tokens llama.cpp treats so by their text
 * ("<|eot_id|>", "<|im_end|>", "<|end_of_text|>", ...), as m64c marked them; else 0. */
M64_EXPORT("m64_tok_is_eog") int32_t m64_tok_is_eog(int32_t id);

/* Sampler over the last logits: temperature (0 = greedy), top-k (0 = off), top-p (1 = off).
 * The RNG is xorshift64* seeded by m64_sampler_seed. */
M64_EXPORT("m64_sampler_seed") void m64_sampler_seed(uint32_t lo, uint32_t hi);
M64_EXPORT("m64_sample") int32_t m64_sample(const float *logits, float temp, int32_t top_k,
                                            float top_p);
/* (ABI 4) The same with llama.cpp's other steps, in its order (module/sampler.h):
 * penalties over the n_last ids at last (the context's last N tokens; repeat 1, presence 0,
 * frequency 0 = off), then top-k, top-p, min-p (0 = off), temperature. flags bit 0
 * (M64_SAMPLE_NO_EOG): end-of-generation tokens (m64_tok_is_eog) are never chosen.
 * Returns the id, or -1 (nothing can be chosen) / -2 (out of workspace). */
#define M64_SAMPLE_NO_EOG 1u
M64_EXPORT("m64_sample_ex") int32_t m64_sample_ex(const float *logits, float temp, int32_t top_k,
                                                  float top_p, float min_p, float repeat_penalty,
                                                  float presence_penalty, float frequency_penalty,
                                                  const int32_t *last, uint32_t n_last,
                                                  uint32_t flags);

/* Chat formats (version 4; module/chat.h): the kind named by the bundle's chat.template
 * (0: unknown); a user turn (text = the system message's sys_len bytes, then the user's
 * user_len; flags bit 0: not the first turn) and the end of the assistant's reply, as ids
 * in out (max). scratch: sys_len + user_len + 256 bytes. -1: out or scratch too small. */
M64_EXPORT("m64_chat_kind") int32_t m64_chat_kind(const char *name, uint32_t len);
M64_EXPORT("m64_chat_turn") int32_t m64_chat_turn(int32_t kind, int32_t flags, const char *text, uint32_t sys_len,
                                                  uint32_t user_len, char *scratch, uint32_t scratch_cap,
                                                  int32_t *out, uint32_t max);
M64_EXPORT("m64_chat_end") int32_t m64_chat_end(int32_t kind, int32_t last, char *scratch, uint32_t scratch_cap,
                                                int32_t *out, uint32_t max);

#endif /* M64_MODULE_H */
