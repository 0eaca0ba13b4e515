/*
 * pager.h — moves layers from the bundle's 64-bit image into the wasm32 workspace.
 *
 * The cache region of the workspace holds the globals layer and either every layer in a
 * place of its own or slots that blocks (and an MoE model's experts) share. Which layer
 * goes where, and which one it evicts, is module/cache.h's policy, the same code the page
 * runs: this file moves the bytes.
 *
 * Prefetch: m64.layer_prefetch(L) hands L to a background thread that places it while
 * the module computes; acquire waits only if that thread is late (the wait is counted).
 *
 * Two ways to place a layer: copy (memcpy from the read-only mapping of the bundle) or
 * map (mmap the file's pages for that layer straight into the workspace, read-only,
 * MAP_FIXED over the slot; no copy, and the module cannot write to weights).
 * Where blocks are large (>= 32 MiB) and the bundle is uncompressed, each layer starts
 * where its address and file offset agree modulo 2 MiB (slots get 2 MiB of room for
 * that): the kernel can then map the page cache's 2 MiB folios with one entry each,
 * which makes a page-in and an eviction several times cheaper in CPU time. A bundle
 * cached in 4 KiB pages (just written or copied) is dropped from the page cache once
 * when its layers start streaming, so that they come back from disk in 2 MiB folios.
 *
 * acquire/release/prefetch run on the module's thread inside a wasm call; failures abort
 * the call through m64_wasm_host_trap.
 */
#ifndef M64_PAGER_H
#define M64_PAGER_H

#include <stdint.h>

#include "cache.h" /* module/cache.h: the policy */
#include "m64_formats.h"

/* COPY: memcpy from the bundle's mapping; MAP: the file's pages mapped into the slot; READ:
 * pread() from the file into the slot (anonymous memory that stays mapped); MAP_READ: a
 * slot's first layer mapped, READ in the slots blocks stream through, which become plain
 * memory at their first reuse: the first pass touches the file's pages as MAP does instead
 * of faulting in a fresh workspace (on a PVM guest ~15 us a 4 KiB page: seconds for a 7B
 * model), and most slots keep their first block for good (m64_cache_choose streams the others
 * through the same few slots; an expert slot maps its first 4 experts, then reads: see
 * assign); AUTO: MAP, but MAP_READ where blocks stream through shared
 * slots and a fresh mapping costs per page (see m64_pager_open). */
typedef enum m64_page_mode {
  M64_PAGE_COPY = 0,
  M64_PAGE_MAP = 1,
  M64_PAGE_READ = 2,
  M64_PAGE_AUTO = 3,
  M64_PAGE_MAP_READ = 4
} m64_page_mode;

typedef struct m64_pager_options {
  m64_page_mode mode;
  int verify;   /* SHA-256 of each layer the first time it is placed */
  int verbose;  /* decisions on stderr */
  int prefetch; /* background thread (0: page on demand only) */
} m64_pager_options;

typedef struct m64_pager_stats {
  uint64_t acquires, hits;  /* hits: resident (or prefetched in time) when acquired */
  uint64_t page_ins, bytes_paged, evictions;
  double stall_seconds;     /* time acquire waited for a layer */
  uint64_t helped;          /* waits spent reading pieces of the layer beside the pager's thread */
  uint64_t remaps;          /* MAP_READ: mapped slots made plain memory to stream blocks through */
  double page_seconds;      /* time spent placing layers (either thread) */
  uint64_t expert_acquires, expert_hits; /* MoE: of the acquires, those of experts (hits as above) */
  uint64_t expert_page_ins;  /* of the page-ins, experts': the module hints only experts it will
                                ask for, so acquires - page_ins found their expert in the cache */
  uint32_t slots, resident;
  uint32_t layers, verified; /* the bundle's layers; how many of them have been hashed */
} m64_pager_stats;

typedef struct m64_pager m64_pager;

/* What the cache needs of a workspace (module/cache.h), with this pager's placement. */
m64_cache_need m64_pager_needs(const m64_bundle *b);
/* Bytes of cache the bundle needs at least: globals + one slot (the largest block). */
uint64_t m64_pager_min_cache(const m64_bundle *b);
/* Bytes that hold every layer at once (then nothing is ever evicted). */
uint64_t m64_pager_full_cache(const m64_bundle *b);

/* cache: [base + cache_off, base + cache_off + cache_size) inside the workspace, 64 KiB
 * aligned. path is the bundle's file (for MAP mode). */
int m64_pager_open(m64_pager **out, const m64_bundle *b, const char *path, uint8_t *base,
                   uint32_t cache_off, uint64_t cache_size, const m64_pager_options *o,
                   m64_err *e);
void m64_pager_close(m64_pager *p);

uint32_t m64_pager_acquire(m64_pager *p, uint32_t layer);
void m64_pager_release(m64_pager *p, uint32_t layer);
void m64_pager_prefetch(m64_pager *p, uint32_t layer);
void m64_pager_stats_get(m64_pager *p, m64_pager_stats *st);
/* Whether a background thread streams blocks through shared slots (it takes a core's time
 * on every token). */
int m64_pager_streams(const m64_pager *p);
/* The mode in use (AUTO resolved). */
m64_page_mode m64_pager_mode(const m64_pager *p);

#endif
