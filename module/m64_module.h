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
 * formats (m64_chat_*); a host runs older modules with m64_sample alone and no chat.
 * 5: the module exports the layer cache's policy (m64_cache_*, module/cache.h), which the
 * page calls; the runtime runs older modules (it links the same policy itself). */
#define M64_ABI_VERSION 5

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
/* out[r] = row r of a Q4_K (type 12), Q5_K (13) or Q6_K (14) matrix at w (rows of nb 256-blocks; with
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

/* ---- exports: module/exports.h's table, each with its export_name ---- */
#include "exports.h"
#define M64_DECLARE_(name, since, ret, wret, n, params) M64_EXPORT(#name) ret name M64_CPARAMS(n, params);
M64_EXPORTS(M64_DECLARE_)
#undef M64_DECLARE_

/* The most ids m64_tok_encode can write for len bytes of text, whatever the vocabulary:
 * a SentencePiece vocabulary without U+2581 ("▁") spells each space as that character's 3
 * byte tokens, and every stretch of text between special tokens (each at least a byte
 * long, one id) gets a leading space: 3 * text + 4 * specials + 3 + BOS <= 4 * len + 4.
 * Hosts size their id buffers with it (a cap of len + 2 failed on ' a': issue 22). */
#define M64_TOK_MAX_IDS(len) (4 * (uint64_t)(len) + 4)

/* m64_sample_ex's flags bit 0: end-of-generation tokens are never chosen. */
#define M64_SAMPLE_NO_EOG 1u

#endif /* M64_MODULE_H */
