/*
 * cache.h — the layer cache's policy, one copy for both hosts: how large the cache is in a
 * workspace, how its region is cut into slots, which slot a layer goes to and so which
 * layer it evicts. The hosts only move bytes: runtime/pager.c (its thread, mappings, huge
 * pages) compiles this file natively; the page calls the same code as the module's
 * m64_cache_* exports (module.c), its state in the workspace.
 *
 * Layers: 0 is the globals (pinned: used at the start and the end of every token),
 * 1..n_blocks the blocks, then a Mixture-of-Experts model's experts. Sizes are in 64 KiB
 * pages (everything in the image is 64 KiB aligned); addresses are workspace bytes.
 *
 * When every layer fits, each gets its own place and is paged in once. Otherwise blocks
 * share K equal slots, each as large as the largest block. Blocks are used in a fixed
 * cycle (0..N-1 every token), which defeats LRU (it evicts exactly the block needed
 * next); the block whose next use is farthest away in that cycle goes (Belady's choice,
 * exact for a known cycle), so K-1 blocks stay resident and the rest stream through.
 * Experts get slots of their own size after the blocks' (the blocks then stay resident
 * if they fit beside 2 expert slots per block), and a slot goes to the expert used least
 * often lately (counts that halve now and then; ties: the least recently used): routers
 * favour some experts, and the blocks' cycle does not exist for experts.
 *
 * Plain C with no library calls: it builds freestanding in the module and natively in
 * the runtime. Not thread-safe: the runtime's pager holds its lock around every call.
 */
#ifndef M64_CACHE_H
#define M64_CACHE_H

#include <stdint.h>

#define M64_CACHE_PAGE 65536u
/* Workspace left outside the module's state and the cache: the tokenizer's scratch, which
 * grows with the longest text encoded (about 85 bytes per byte of text; BPE up to 130). */
#define M64_CACHE_HEADROOM (2u << 20)
/* Expert acquires between two halvings of the experts' use counts. */
#define M64_CACHE_AGE_EVERY 4096u

typedef struct m64_cache_slot {
  uint32_t addr;    /* workspace byte offset of the slot */
  uint32_t pages;   /* its size */
  int32_t layer;    /* the layer it holds or is receiving, -1: none */
  uint32_t in_use;  /* acquires not yet released */
  uint32_t used;    /* layers it has held */
  uint32_t loading; /* its layer is being placed: not a candidate to evict */
} m64_cache_slot;

typedef struct m64_cache {
  uint32_t n_layers, n_blocks, n_experts;
  uint32_t n_slots;
  uint32_t shared;         /* blocks share slots [1, blk_end) (slot 0: the globals) */
  uint32_t blk_end;
  uint32_t experts_shared; /* experts share slots [exp_lo, n_slots) */
  uint32_t exp_lo;
  uint32_t prefer_streamed; /* evict among slots already streamed through first (see choose) */
  uint32_t cursor;         /* index of the block last acquired */
  uint32_t resident;       /* layers in the cache */
  uint64_t evictions;
  uint64_t expert_acquires;
  m64_cache_slot *slots;   /* n_layers of room; n_slots used */
  int32_t *slot_of;        /* per layer, -1: not in the cache */
  uint32_t *uses;          /* per expert: acquires, halved every M64_CACHE_AGE_EVERY */
  uint64_t *last_use;      /* per expert: expert_acquires at its last acquire */
} m64_cache;

/* What the cache needs of a workspace. pages[l]: layer l's size; extra: pages a slot
 * shared by blocks needs beyond its block (the runtime's huge-page placement; 0 in the
 * page); own_total: pages that hold every layer in its own place (the sum of pages[], or
 * more where the host shifts layers, as the runtime does). least: the globals and the
 * largest block (and expert) side by side, the smallest cache that runs the model. */
typedef struct m64_cache_need { uint64_t own_total, least; } m64_cache_need;
m64_cache_need m64_cache_needs(const uint32_t *pages, uint32_t n_layers, uint32_t n_blocks, uint32_t extra,
                               uint64_t own_total);

/* The cache's share of a workspace: the module has used `used` bytes; the workspace is
 * `cap` bytes where the user set it (capped = 1), else it grows to what the whole model
 * needs, up to `cap` (4 GiB). */
typedef struct m64_cache_fit {
  uint64_t want;    /* the workspace's size */
  uint64_t taken;   /* bytes before the cache: state, I/O, headroom */
  uint64_t bytes;   /* the cache, a multiple of M64_CACHE_PAGE (0 if too small) */
  uint64_t suggest; /* bytes < least: the smallest workspace that would do, in MiB */
} m64_cache_fit;
m64_cache_fit m64_cache_fit_in(uint64_t used, uint64_t cap, int capped, const m64_cache_need *need);

/* Bytes of memory m64_cache_init carves its arrays from. */
uint64_t m64_cache_mem_bytes(uint32_t n_layers, uint32_t n_blocks);
/* Cuts the cache [off, off + bytes) into slots. mem: m64_cache_mem_bytes zeroed bytes,
 * 8-byte aligned. own_at(ctx, at, layer): where a layer that gets its own place starts at
 * or after `at` (NULL: at). Returns 0, or -1 when bytes < least (nothing is set up). */
int m64_cache_init(m64_cache *c, void *mem, const uint32_t *pages, uint32_t n_layers, uint32_t n_blocks,
                   uint32_t extra, const m64_cache_need *need, uint32_t off, uint64_t bytes,
                   uint32_t (*own_at)(void *ctx, uint32_t at, uint32_t layer), void *ctx);

/* The module acquires `layer`: advances the blocks' cycle or counts the expert's use.
 * Returns its slot, or -1 when it is not in the cache. */
int32_t m64_cache_touch(m64_cache *c, uint32_t layer);
/* The slot `layer` should go to: an empty one, else the one whose layer is needed last.
 * With must clear, -1 when every candidate is needed sooner than `layer` itself (placing
 * it ahead would make things worse); with must set, -1 only when every slot is in use. */
int32_t m64_cache_choose(m64_cache *c, uint32_t layer, int must);
/* Gives slot s to layer (evicting the one it held); the slot is loading until
 * m64_cache_loaded. */
void m64_cache_assign(m64_cache *c, int32_t s, uint32_t layer);
void m64_cache_loaded(m64_cache *c, int32_t s);
/* Whether blocks (or experts) stream through shared slots. */
static inline int m64_cache_streams(const m64_cache *c) { return c->shared || c->experts_shared; }
static inline int m64_cache_is_expert(const m64_cache *c, uint32_t layer) { return layer > c->n_blocks; }

#endif
