/*
 * cache.c — the layer cache's policy (cache.h says what and why).
 */
#include "cache.h"

#define PAGE ((uint64_t)M64_CACHE_PAGE)

static uint32_t n_experts_of(uint32_t n_layers, uint32_t n_blocks) {
  return n_layers > n_blocks + 1 ? n_layers - 1 - n_blocks : 0;
}

/* The largest of layers [lo, hi), in pages. */
static uint32_t largest(const uint32_t *pages, uint32_t lo, uint32_t hi) {
  uint32_t m = 0;
  for (uint32_t l = lo; l < hi; l++)
    if (pages[l] > m) m = pages[l];
  return m;
}

/* The slots' sizes when not every layer has its own place: globals, a block, an expert
 * (experts get no extra: they are a few MiB, and many). */
static uint64_t globals_slot(const uint32_t *pages, uint32_t extra) { return (uint64_t)pages[0] + extra; }
static uint64_t block_slot(const uint32_t *pages, uint32_t n_blocks, uint32_t extra) {
  return (uint64_t)largest(pages, 1, 1 + n_blocks) + extra;
}
static uint64_t expert_slot(const uint32_t *pages, uint32_t n_layers, uint32_t n_blocks) {
  return largest(pages, 1 + n_blocks, n_layers);
}

m64_cache_need m64_cache_needs(const uint32_t *pages, uint32_t n_layers, uint32_t n_blocks, uint32_t extra,
                               uint64_t own_total) {
  m64_cache_need n = {own_total, 0};
  if (n_layers == 0) return n;
  n.least = globals_slot(pages, extra) + block_slot(pages, n_blocks, extra) + expert_slot(pages, n_layers, n_blocks);
  return n;
}

m64_cache_fit m64_cache_fit_in(uint64_t used, uint64_t cap, int capped, const m64_cache_need *need) {
  m64_cache_fit f = {0, used + M64_CACHE_HEADROOM + PAGE, 0, 0};
  const uint64_t total = need->own_total * PAGE;
  f.want = capped ? cap : f.taken + total < cap ? f.taken + total : cap;
  const uint64_t room = f.want > f.taken ? f.want - f.taken : 0;
  f.bytes = (room < total ? room : total) & ~(PAGE - 1);
  if (f.bytes < need->least * PAGE) {
    f.bytes = 0;
    f.suggest = (f.taken + need->least * PAGE) / 1048576 + 1;
  }
  return f;
}

uint64_t m64_cache_mem_bytes(uint32_t n_layers, uint32_t n_blocks) {
  const uint64_t e = n_experts_of(n_layers, n_blocks);
  return e * sizeof(uint64_t) + (uint64_t)n_layers * (sizeof(m64_cache_slot) + sizeof(int32_t)) + e * sizeof(uint32_t);
}

/* Layers [lo, hi) each in a slot of its own from `at` on; returns where they end. */
static uint64_t own_places(m64_cache *c, const uint32_t *pages, uint64_t at, uint32_t lo, uint32_t hi,
                           uint32_t (*own_at)(void *, uint32_t, uint32_t), void *ctx) {
  for (uint32_t l = lo; l < hi; l++) {
    if (own_at) at = own_at(ctx, (uint32_t)at, l);
    c->slots[l] = (m64_cache_slot){.addr = (uint32_t)at, .pages = pages[l], .layer = -1};
    at += pages[l] * PAGE;
  }
  return at;
}

/* k equal slots of `size` pages from `at` on, after the n_slots there are. */
static uint64_t equal_slots(m64_cache *c, uint64_t at, uint64_t k, uint64_t size) {
  for (uint64_t i = 0; i < k; i++, at += size * PAGE)
    c->slots[c->n_slots++] = (m64_cache_slot){.addr = (uint32_t)at, .pages = (uint32_t)size, .layer = -1};
  return at;
}

int m64_cache_init(m64_cache *c, void *mem, const uint32_t *pages, uint32_t n_layers, uint32_t n_blocks,
                   uint32_t extra, const m64_cache_need *need, uint32_t off, uint64_t bytes,
                   uint32_t (*own_at)(void *ctx, uint32_t at, uint32_t layer), void *ctx) {
  const uint32_t n_experts = n_experts_of(n_layers, n_blocks);
  *c = (m64_cache){.n_layers = n_layers, .n_blocks = n_blocks, .n_experts = n_experts};
  if (n_layers < 2 || bytes < need->least * PAGE) return -1;
  uint8_t *m = mem;
  c->last_use = (uint64_t *)m, m += n_experts * sizeof(uint64_t);
  c->slots = (m64_cache_slot *)m, m += n_layers * sizeof(m64_cache_slot);
  c->slot_of = (int32_t *)m, m += n_layers * sizeof(int32_t);
  c->uses = (uint32_t *)m;
  for (uint32_t l = 0; l < n_layers; l++) c->slot_of[l] = -1;
  c->cursor = n_blocks ? n_blocks - 1 : 0; /* as if the last block had just run: block 0 comes next */

  uint64_t at = off;
  if (need->own_total * PAGE <= bytes) {
    c->n_slots = n_layers;
    own_places(c, pages, at, 0, n_layers, own_at, ctx);
    return 0;
  }
  const uint64_t g = globals_slot(pages, extra), blk = block_slot(pages, n_blocks, extra);
  const uint64_t xs = expert_slot(pages, n_layers, n_blocks);
  at = equal_slots(c, at, 1, g);
  /* blocks: all of them, one place each, where that leaves room for 2 experts per block's
   * worth of slots (a token's experts stream through them); else shared slots in at most
   * half of what the experts leave */
  uint64_t blocks_whole = 0;
  for (uint32_t l = 1; l <= n_blocks; l++) blocks_whole += (uint64_t)pages[l] + extra;
  const uint64_t room = bytes - g * PAGE;
  if (n_experts && (blocks_whole + 2ull * n_blocks * xs) * PAGE <= room) {
    at = own_places(c, pages, at, 1, 1 + n_blocks, own_at, ctx);
    c->n_slots = c->blk_end = 1 + n_blocks;
  } else {
    c->shared = 1;
    uint64_t k = blk ? (n_experts ? room / 2 : room) / (blk * PAGE) : n_blocks;
    if (k < 1) k = 1;
    if (k > n_blocks) k = n_blocks;
    at = equal_slots(c, at, k, blk);
    c->blk_end = c->n_slots;
  }
  c->exp_lo = c->blk_end;
  if (n_experts) {
    const uint64_t size = xs ? xs : 1;
    uint64_t k = (off + bytes - at) / (size * PAGE);
    if (k > n_experts) k = n_experts;
    c->experts_shared = 1;
    equal_slots(c, at, k, size);
  }
  return 0;
}

/* Steps until block `layer` is next used, seen from the block at the cursor. */
static uint32_t distance(const m64_cache *c, uint32_t layer) {
  const uint32_t n = c->n_blocks, j = layer - 1;
  return (j + n - c->cursor) % n;
}

int32_t m64_cache_touch(m64_cache *c, uint32_t layer) {
  if (m64_cache_is_expert(c, layer)) {
    const uint32_t e = layer - 1 - c->n_blocks;
    c->uses[e]++;
    c->last_use[e] = ++c->expert_acquires;
    if (c->expert_acquires % M64_CACHE_AGE_EVERY == 0) /* experts a run stopped choosing lose their places */
      for (uint32_t i = 0; i < c->n_experts; i++) c->uses[i] /= 2;
  } else if (layer > 0) {
    c->cursor = layer - 1;
  }
  return c->slot_of[layer];
}

/* An expert's slot: an empty one, else the one whose expert was used least often lately
 * (ties: longest ago). Gives a slot not in use: the module asks only for experts a router
 * has just chosen. */
static int32_t choose_expert_slot(const m64_cache *c) {
  int32_t best = -1;
  for (uint32_t s = c->exp_lo; s < c->n_slots; s++) {
    const m64_cache_slot *x = &c->slots[s];
    if (x->in_use || x->loading) continue;
    if (x->layer < 0) return (int32_t)s;
    const uint32_t e = (uint32_t)x->layer - 1 - c->n_blocks, b = best < 0 ? 0 : (uint32_t)c->slots[best].layer - 1 - c->n_blocks;
    if (best < 0 || c->uses[e] < c->uses[b] || (c->uses[e] == c->uses[b] && c->last_use[e] < c->last_use[b]))
      best = (int32_t)s;
  }
  return best;
}

int32_t m64_cache_choose(m64_cache *c, uint32_t layer, int must) {
  if (m64_cache_is_expert(c, layer)) return c->experts_shared ? choose_expert_slot(c) : (int32_t)layer;
  if (!c->shared) return (int32_t)layer;
  if (layer == 0) return 0;
  int32_t best = -1, best_streamed = -1;
  uint32_t best_d = 0, best_streamed_d = 0;
  for (uint32_t s = 1; s < c->blk_end; s++) {
    const m64_cache_slot *x = &c->slots[s];
    if (x->in_use || x->loading) continue;
    if (x->layer < 0) return (int32_t)s;
    const uint32_t d = distance(c, (uint32_t)x->layer);
    if (best < 0 || d > best_d) best = (int32_t)s, best_d = d;
    if (x->used >= 2 && (best_streamed < 0 || d > best_streamed_d)) best_streamed = (int32_t)s, best_streamed_d = d;
  }
  /* prefer_streamed: a slot blocks already stream through before one that has held a
   * single block, which keeps it for good (the runtime's MAP_READ: such a slot is still a
   * file mapping, which would become plain memory, ~15 us a page to fault in on a PVM
   * guest); the same few slots then take the rest each token */
  if (c->prefer_streamed && best_streamed >= 0 && (must || best_streamed_d >= distance(c, layer)))
    best = best_streamed, best_d = best_streamed_d;
  if (best >= 0 && !must && best_d < distance(c, layer)) return -1;
  return best;
}

void m64_cache_assign(m64_cache *c, int32_t s, uint32_t layer) {
  m64_cache_slot *x = &c->slots[s];
  if (x->layer >= 0 && (uint32_t)x->layer != layer) {
    c->slot_of[x->layer] = -1;
    c->evictions++;
    c->resident--;
  }
  if (x->layer != (int32_t)layer) c->resident++;
  x->layer = (int32_t)layer;
  x->loading = 1;
  x->used++;
  c->slot_of[layer] = s;
}

void m64_cache_loaded(m64_cache *c, int32_t s) { c->slots[s].loading = 0; }
