/* pager.c — see pager.h for the policy. */
#include "pager.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache.h" /* the policy: module/cache.h */
#include "m64_wasm.h"
#include "os.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14; older kernels say EINVAL and get MAP_POPULATE */
#endif

#define ALIGN64K(x) (((x) + 65535ull) & ~65535ull)
/* Huge-page placement. Read from the page cache, a bundle's pages often sit in 2 MiB
 * folios; mmap maps such a folio with one PMD entry (no 512 PTEs to fill at page-in and
 * to tear down at eviction, one TLB entry while computing) only where the layer's
 * address and file offset agree modulo 2 MiB. So when blocks are large enough that it
 * costs little (<= 1/16 of a block), a layer is placed at such an address: slots get
 * HUGE of room for the shift, and the whole-model layout shifts a layer only where the
 * file's layers stop being contiguous (and once at the start). */
#define HUGE (2ull << 20)
#define HUGE_MIN_BLOCK (16 * HUGE)

typedef enum { SLOT_EMPTY, SLOT_LOADING, SLOT_READY, SLOT_FAILED } slot_state;

/* What the pager keeps of a slot besides the policy's (m64_cache_slot, same index). */
typedef struct slot {
  uint32_t addr;   /* start of the slot (the policy's) */
  uint32_t at;     /* where its layer starts (addr, or shifted for huge-page placement) */
  uint64_t size;
  slot_state state;
  int mapped;      /* holds a file mapping (MAP_READ: the slot's first layer) */
  int via_map;     /* this placement maps (set by assign) */
  int remap;       /* this placement first makes the slot plain memory again (set by assign) */
} slot;

struct m64_pager {
  const m64_bundle *b;
  m64_pager_options o;
  int fd;
  uint8_t *base;
  uint32_t n_layers;
  uint64_t *file_off;
  uint8_t *verified;
  m64_cache c;       /* which layer is where, and which goes (under mu) */
  void *cache_mem;   /* c's arrays */
  uint32_t *pages;   /* per layer: its size in 64 KiB pages */
  slot *slots;       /* c.n_slots */
  uint32_t n_blocks; /* layers 1..n_blocks are blocks; after them, experts (MoE) */
  int huge;          /* huge-page placement (see HUGE) */

  m64_os_thread thread;
  int thread_running;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stop;
  int32_t job;       /* slot the thread should fill, -1 none */
  char error[512];   /* first failure of a placement */
  m64_pager_stats st;
  /* Compressed bundle: layers are decompressed into their slot, one decoder per thread
   * that places layers (0: prefetch thread, 1: the module's thread on a miss). */
  int compressed;
  m64_layer_decoder *dec[2];
  int folios_checked; /* see recache_whole() */
  /* The read the pager's thread is doing (READ mode), in CHUNK pieces that a thread waiting
   * for that layer claims too (see read_pieces): on a machine with as many compute threads
   * as cores the pager's thread gets a core only now and then, while the waiting thread's
   * core would idle. */
  struct {
    int active;                 /* under mu */
    uint32_t layer;
    uint8_t *to;
    uint64_t size;
    _Atomic uint64_t next;      /* first byte not yet claimed */
    _Atomic uint32_t busy;      /* helpers inside read_pieces */
    _Atomic int failed;         /* errno of a failed piece, or -1 for a short file */
  } rd;
};

static double now(void) { return m64_os_now_ns() * 1e-9; }

static int is_expert(const m64_pager *p, uint32_t layer) { return layer > p->n_blocks; }
#define EXPERT_MAPS 4 /* MAP_READ: an expert slot's placements that map (see assign) */

/* What placing a layer does, for -v lines: by mode (how the pager was opened), and by how
 * one placement went (copy, map or read). */
static const char *const PLACES[] = {"copy", "map", "read", "auto", "map, then read in the slots layers stream through"};
static const char *placing(const m64_pager *p) { return p->compressed ? "decompress" : PLACES[p->o.mode]; }

static uint64_t layer_size(const m64_bundle *b, uint32_t l) { return m64_bundle_layer(b, l)->size; }

/* The largest of layers [lo, hi), 64 KiB-aligned. */
static uint64_t max_layer(const m64_bundle *b, uint32_t lo, uint32_t hi) {
  uint64_t m = 0;
  for (uint32_t l = lo; l < hi; l++)
    if (ALIGN64K(layer_size(b, l)) > m) m = ALIGN64K(layer_size(b, l));
  return m;
}
static uint64_t max_block(const m64_bundle *b) { return max_layer(b, 1, 1 + m64_bundle_n_blocks(b)); }
/* The segment section holding layer l (its name in name), or NULL. */
static const m64_section *layer_segment(const m64_bundle *b, uint32_t l, char name[32]) {
  snprintf(name, 32, "segment.%u", m64_bundle_layer(b, l)->segment);
  return m64_bundle_find_section(b, M64_SEC_SEGMENT, name);
}

/* File offset of layer l: its segment section's offset plus its offset inside it; 0 when
 * the segment is missing (m64_pager_open reports that). */
static uint64_t file_offset(const m64_bundle *b, uint32_t l) {
  char name[32];
  const m64_section *s = layer_segment(b, l, name);
  return s ? s->offset + m64_bundle_layer(b, l)->offset : 0;
}

/* Huge-page placement pays (see HUGE): file pages can be mapped, and blocks are large. */
static int use_huge(const m64_bundle *b) { return !m64_bundle_compressed(b) && max_block(b) >= HUGE_MIN_BLOCK; }

/* Bytes from address a up to the first address congruent to file offset off (mod HUGE). */
static uint64_t huge_shift(uint64_t a, uint64_t off) { return (off - a) & (HUGE - 1); }

/* Pages of room a slot shared by blocks needs beyond its block: with huge-page placement
 * the layer may start up to HUGE - 4 KiB into it (file offsets are 64 KiB multiples, the
 * workspace's host address a page multiple). */
static uint32_t slot_extra(int huge) { return huge ? (uint32_t)(HUGE / M64_CACHE_PAGE) : 0; }

static uint32_t pages_of(uint64_t size) {
  const uint64_t n = ALIGN64K(size) / M64_CACHE_PAGE;
  return n < UINT32_MAX ? (uint32_t)n : UINT32_MAX;
}

/* Every layer at once, in pages. With huge-page placement the layout shifts a layer by
 * less than HUGE where it does not follow the previous one in the file, and once at the
 * start. */
static uint64_t own_total(const m64_bundle *b, int huge) {
  uint64_t t = 0, next = 0; /* where the file's next layer would start if contiguous */
  for (uint32_t l = 0; l < m64_bundle_n_layers(b); l++) {
    const uint64_t off = file_offset(b, l);
    const int follows = l > 0 && off == next;
    t += pages_of(layer_size(b, l)) + (huge && !follows ? slot_extra(huge) : 0);
    next = off + ALIGN64K(layer_size(b, l));
  }
  return t;
}

/* Each layer's size in pages (malloc'ed), NULL when out of memory. */
static uint32_t *layer_pages(const m64_bundle *b) {
  const uint32_t n = m64_bundle_n_layers(b);
  uint32_t *pages = malloc((n ? n : 1) * sizeof *pages);
  for (uint32_t l = 0; pages && l < n; l++) pages[l] = pages_of(layer_size(b, l));
  return pages;
}

m64_cache_need m64_pager_needs(const m64_bundle *b) {
  const int huge = use_huge(b);
  uint32_t *pages = layer_pages(b);
  const m64_cache_need n = pages ? m64_cache_needs(pages, m64_bundle_n_layers(b), m64_bundle_n_blocks(b), slot_extra(huge),
                                                   own_total(b, huge))
                                 : (m64_cache_need){UINT64_MAX / M64_CACHE_PAGE, UINT64_MAX / M64_CACHE_PAGE};
  free(pages);
  return n;
}
uint64_t m64_pager_min_cache(const m64_bundle *b) { return m64_pager_needs(b).least * M64_CACHE_PAGE; }
uint64_t m64_pager_full_cache(const m64_bundle *b) { return m64_pager_needs(b).own_total * M64_CACHE_PAGE; }

/* File offset of each layer: its segment section's offset plus its offset inside it. */
static int layer_offsets(m64_pager *p, m64_err *e) {
  for (uint32_t l = 0; l < p->n_layers; l++) {
    char name[32];
    if (!layer_segment(p->b, l, name))
      return m64_fail(e, M64_EFORMAT, "layer %s: %s missing", m64_bundle_layer(p->b, l)->name, name);
    p->file_off[l] = file_offset(p->b, l);
  }
  return 0;
}

/* Drops pages of the bundle's own mapping from this process (they stay in the page
 * cache), so the resident set is the workspace, not the model. */
static void drop_pages(const uint8_t *a, uint64_t size) { m64_os_discard(a, size); }

/* Bytes of the mapping that contains `a` which the kernel maps with PMD entries
 * (FilePmdMapped in /proc/self/smaps), or -1 if that cannot be read. */
static long long pmd_mapped(const void *a) {
  FILE *f = fopen("/proc/self/smaps", "re");
  if (!f) return -1;
  char line[512];
  int inside = 0;
  long long kib = -1;
  while (fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) { /* a mapping's first line; fields read "Name: value" */
      inside = (uintptr_t)a >= lo && (uintptr_t)a < hi;
      continue;
    }
    if (inside && sscanf(line, "FilePmdMapped: %lld kB", &kib) == 1) break;
  }
  fclose(f);
  return kib < 0 ? -1 : kib * 1024;
}

/* Maps the file pages of layer l at `to` (len bytes), page tables filled in one call
 * (populate), not by faults while computing. With huge-page placement the mapping is
 * marked MADV_HUGEPAGE first, so that pages the populate has to read from disk come into
 * the page cache as 2 MiB folios (mapped with one entry each, now and at every later
 * page-in of this layer). */
static int map_layer(const m64_pager *p, uint32_t l, uint8_t *to, size_t len) {
  return m64_os_map_file_at(to, len, p->fd, p->file_off[l], p->huge);
}

/* A bundle just written (m64c) or copied sits in the page cache as 4 KiB pages, and stays
 * so while cached: then every page-in fills, and every eviction clears, 512 entries per
 * 2 MiB (measured on a 7B model paging through a 2G workspace: 2.0 s of system time in a
 * 12-token run instead of 0.1 s, decode 17% slower). Read back from disk through a
 * MADV_HUGEPAGE mapping the same pages come in 2 MiB folios. So when layers stream
 * through shared slots and the first large one mapped is not mapped whole, the pager
 * writes back and drops the bundle's cached pages once (pages mapped right now stay);
 * this layer is mapped again at once, the others as they come. */
static int recache_whole(m64_pager *p, uint32_t l, uint8_t *to, size_t len) {
  if (!p->c.shared || !p->huge || len < 2 * HUGE || __atomic_exchange_n(&p->folios_checked, 1, __ATOMIC_ACQ_REL))
    return 0;
  if (pmd_mapped(to) != 0) return 0; /* mapped whole already (or unknown: leave it) */
  if (m64_os_guard_at(to, len)) return -1;
  (void)fdatasync(p->fd); /* dirty pages cannot be dropped */
  (void)posix_fadvise(p->fd, 0, 0, POSIX_FADV_DONTNEED);
  if (p->o.verbose)
    fprintf(stderr, "m64run: the bundle's pages were cached in 4 KiB pages; dropped them from the page cache "
                    "so that layers come back from disk in 2 MiB folios\n");
  return map_layer(p, l, to, len);
}

/* Reads bytes [from, from + n) of layer l from the file to `to` + from. Returns 0, or an
 * errno (-1: the file ended early). The kernel copies from the page cache through its own
 * mapping, so no page table of this process changes. */
static int read_piece(const m64_pager *p, uint32_t l, uint8_t *to, uint64_t from, uint64_t n) {
  for (uint64_t done = 0; done < n;) {
    const ssize_t k = pread(p->fd, to + from + done, n - done, (off_t)(p->file_off[l] + from + done));
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return k == 0 ? -1 : errno;
    done += (uint64_t)k;
  }
  return 0;
}

#define CHUNK (2ull << 20)

/* Claims and reads pieces of the pager's current read until none is left. A helper counts
 * itself in rd.busy under mu, while rd.active holds, so the owner waits for its pieces. */
static void read_pieces(m64_pager *p) {
  for (;;) {
    const uint64_t from = atomic_fetch_add(&p->rd.next, CHUNK);
    if (from >= p->rd.size) break;
    const uint64_t n = p->rd.size - from < CHUNK ? p->rd.size - from : CHUNK;
    const int rc = read_piece(p, p->rd.layer, p->rd.to, from, n);
    if (rc) atomic_store(&p->rd.failed, rc);
  }
}

/* Reads layer l into `to`: on the pager's thread (who 0) with help from a thread that waits
 * for it; on a miss (who 1) alone. Returns 0 or -1 with errno set (0: the file ended). */
static int read_layer(m64_pager *p, uint32_t l, uint8_t *to, uint64_t size, int who) {
  int rc;
  if (who != 0) {
    rc = read_piece(p, l, to, 0, size);
  } else {
    pthread_mutex_lock(&p->mu);
    p->rd.layer = l, p->rd.to = to, p->rd.size = size;
    atomic_store(&p->rd.next, 0);
    atomic_store(&p->rd.failed, 0);
    p->rd.active = 1;
    pthread_cond_broadcast(&p->cv); /* a thread already waiting for l may help */
    pthread_mutex_unlock(&p->mu);
    read_pieces(p);
    pthread_mutex_lock(&p->mu);
    p->rd.active = 0; /* no new helper; those counted finish their pieces */
    pthread_mutex_unlock(&p->mu);
    while (atomic_load(&p->rd.busy)) sched_yield();
    rc = atomic_load(&p->rd.failed);
  }
  if (rc) errno = rc < 0 ? 0 : rc;
  return rc ? -1 : 0;
}

/* Places layer l into slot s (no lock held; s is LOADING and owned by the caller). `who`
 * picks the decoder of the calling thread. */
static int place(m64_pager *p, uint32_t l, const slot *s, int who, char *err, size_t errlen) {
  const double t0 = now();
  const uint64_t size = layer_size(p->b, l);
  m64_err e;
  const int verify = p->o.verify && !p->verified[l];
  const m64_page_mode how = s->via_map ? M64_PAGE_MAP : p->o.mode == M64_PAGE_MAP_READ ? M64_PAGE_READ : p->o.mode;
  if (s->remap && m64_os_anon_at(p->base + s->addr, s->size)) { /* plain memory again, once */
    snprintf(err, errlen, "reading layer %s: cannot remap its slot: %s", m64_bundle_layer(p->b, l)->name, strerror(errno));
    return -1;
  }
  if (p->compressed) {
    /* Straight from the frames into the slot; hashes (stored, then raw) at first use. */
    if (m64_bundle_read_layer(p->b, l, p->dec[who], p->base + s->at, verify, &e)) {
      snprintf(err, errlen, "%s", e.msg);
      return -1;
    }
    if (verify) p->verified[l] = 1;
    drop_pages(m64_bundle_layer_stored(p->b, l), m64_bundle_layer(p->b, l)->stored_size);
  } else if (how == M64_PAGE_READ) {
    /* Hashed where it now lies: the bytes the module will use, not an earlier read. */
    if (read_layer(p, l, p->base + s->at, size, who)) {
      snprintf(err, errlen, "reading layer %s: %s", m64_bundle_layer(p->b, l)->name,
               errno ? strerror(errno) : "the file ended early");
      return -1;
    }
    if (verify) {
      if (m64_bundle_check_layer_bytes(p->b, l, p->base + s->at, &e)) {
        snprintf(err, errlen, "%s", e.msg);
        return -1;
      }
      p->verified[l] = 1;
    }
  } else {
    if (verify) {
      if (m64_bundle_verify_layer(p->b, l, &e)) {
        snprintf(err, errlen, "%s", e.msg);
        return -1;
      }
      p->verified[l] = 1;
    }
    if (how == M64_PAGE_MAP) {
      uint8_t *const to = p->base + s->at;
      const size_t len = (size + 4095) & ~(size_t)4095;
      if (map_layer(p, l, to, len) || (p->o.mode == M64_PAGE_MAP && recache_whole(p, l, to, len))) {
        snprintf(err, errlen, "mapping layer %s: %s", m64_bundle_layer(p->b, l)->name, strerror(errno));
        return -1;
      }
    } else {
      memcpy(p->base + s->at, m64_bundle_layer_data(p->b, l), size);
    }
    /* The bundle's own mapping was read (hash, copy): drop those pages. */
    if (verify || how == M64_PAGE_COPY) drop_pages(m64_bundle_layer_data(p->b, l), size);
  }
  const double dt = now() - t0;
  pthread_mutex_lock(&p->mu);
  p->st.page_seconds += dt;
  p->st.page_ins++;
  p->st.expert_page_ins += (uint64_t)is_expert(p, l);
  if (verify) p->st.verified++; /* once per layer: verified[l] is set now */
  p->st.bytes_paged += size;
  pthread_mutex_unlock(&p->mu);
  if (p->o.verbose)
    fprintf(stderr, "m64run: %s %s (%llu bytes) at %u in %.2f ms\n",
            p->compressed ? "decompress" : PLACES[how],
            m64_bundle_layer(p->b, l)->name,
            (unsigned long long)size, s->at, dt * 1e3);
  return 0;
}

/* Gives slot s to layer (lock held): the policy's bookkeeping, then how this placement
 * moves bytes. The slot becomes LOADING. */
static void assign(m64_pager *p, int32_t s, uint32_t layer) {
  slot *x = &p->slots[s];
  const uint32_t used = p->c.slots[s].used; /* placements before this one */
  m64_cache_assign(&p->c, s, layer);
  x->state = SLOT_LOADING;
  /* MAP_READ: a slot's first layer is mapped; one that gets another layer after that
   * is a slot blocks stream through, and becomes plain memory to read into (place).
   * An expert slot is mapped for its first EXPERT_MAPS experts: where most experts stay
   * (a large cache) few slots get that far, and a slot made plain memory costs ~15 us a
   * page to fault in on a PVM guest (11 ms for a 3 MiB expert); where experts stream, each
   * mapping's teardown costs the compute threads (TLB shootdowns), and reading into plain
   * memory pays. Qwen3-30B-A3B shape, 2 threads, decode tok/s: 4G remapped at the first
   * reuse 1.6-2.0, mapped always 10.2; 2G mapped always 2.5, read always 6.9 */
  const uint32_t maps = is_expert(p, layer) ? EXPERT_MAPS : 1; /* placements mapped before reads */
  x->via_map = p->o.mode == M64_PAGE_MAP_READ && used < maps;
  x->remap = p->o.mode == M64_PAGE_MAP_READ && used >= maps && x->mapped;
  p->st.remaps += (uint64_t)x->remap;
  x->mapped = x->via_map || (x->mapped && !x->remap);
  x->at = x->addr + (p->huge && !is_expert(p, layer) ? (uint32_t)huge_shift((uintptr_t)p->base + x->addr, p->file_off[layer]) : 0);
}

static void finish(m64_pager *p, int32_t s, int ok, const char *err) {
  pthread_mutex_lock(&p->mu);
  p->slots[s].state = ok ? SLOT_READY : SLOT_FAILED;
  m64_cache_loaded(&p->c, s);
  if (!ok && !p->error[0]) snprintf(p->error, sizeof p->error, "%s", err);
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
}

/* When blocks share slots, the thread does not wait to be asked for the next block only:
 * it places the LOOK_AHEAD blocks after it, in the order the module will use them, where
 * a slot is free or holds a block needed later (lock held). Returns whether it gave itself
 * a job. Not further: each block placed ahead keeps a slot streaming that could have held
 * a block for good (with K slots for N blocks in a cycle, N - K + 1 + LOOK_AHEAD page-ins
 * per token, not N - K + 1), and one block of slack is what a page-in slower than a
 * block's compute needs. */
#define LOOK_AHEAD 2
static int look_ahead(m64_pager *p) {
  if (!p->c.shared) return 0;
  const uint32_t n = p->n_blocks;
  for (uint32_t d = 1; d <= LOOK_AHEAD && d < n; d++) {
    const uint32_t layer = 1 + (p->c.cursor + d) % n;
    if (p->c.slot_of[layer] >= 0) continue;
    const int32_t s = m64_cache_choose(&p->c, layer, 0);
    if (s < 0) return 0;
    assign(p, s, layer);
    p->job = s;
    return 1;
  }
  return 0;
}

/* Extra nanoseconds per 4 KiB page that the first read of freshly mapped file pages costs
 * over a second read, page tables filled (populate) both times. On bare metal or under
 * nested paging that is about nothing; under a hypervisor's shadow page tables (a PVM
 * guest) each page's first touch traps to the host: measured 360-1100 ns per page on an
 * AMD EPYC guest where the bundle sat in 4 KiB page-cache pages (~100 ms per token for a
 * 3B model paging 970 MiB, on the compute threads), 17-95 ns where in 2 MiB folios; a
 * pread() of the same bytes costs the pager's thread ~70 ms instead. The page cache mixes
 * folio sizes along a file, so the probe maps PROBE_CHUNKS pieces spread over the blocks,
 * each into slot 1 (where that block would sit), best of two tries per piece, and gives
 * the slot back as plain memory. Returns -1 if nothing could be probed, -2 if the slot
 * could not be given back. */
#define PROBE_CHUNKS 8
#define PROBE_BYTES (4ull << 20)
static double first_touch_ns(m64_pager *p) {
  const uint32_t n_blocks = p->n_blocks;
  uint64_t first = 0, second = 0, pages = 0;
  for (uint32_t c = 0; c < PROBE_CHUNKS; c++) {
    const uint32_t l = 1 + (uint32_t)((uint64_t)c * n_blocks / PROBE_CHUNKS);
    if (c > 0 && l == 1 + (uint32_t)((uint64_t)(c - 1) * n_blocks / PROBE_CHUNKS)) continue; /* few blocks */
    const uint64_t size = layer_size(p->b, l);
    if (size < 2 * PROBE_BYTES) continue;
    /* from the middle of the block, 2 MiB-aligned within it (as placed, the file offset and
     * the address agree modulo 2 MiB, so the pieces map as whole layers do) */
    const uint64_t in = (size / 2) & ~(HUGE - 1);
    const slot *s = &p->slots[1];
    uint8_t *const to = p->base + s->addr + (p->huge ? huge_shift((uintptr_t)p->base + s->addr, p->file_off[l]) : 0) + in;
    uint64_t best1 = UINT64_MAX, best2 = UINT64_MAX;
    for (int rep = 0; rep < 2; rep++) {
      if (m64_os_map_file_at(to, PROBE_BYTES, p->fd, p->file_off[l] + in, p->huge)) break;
      volatile uint8_t sink = 0;
      uint64_t t[3];
      for (int pass = 0; pass < 2; pass++) {
        t[pass] = m64_os_now_ns();
        for (uint64_t off = 0; off < PROBE_BYTES; off += 4096) sink ^= to[off];
      }
      t[2] = m64_os_now_ns();
      (void)sink;
      if (t[1] - t[0] < best1) best1 = t[1] - t[0];
      if (t[2] - t[1] < best2) best2 = t[2] - t[1];
    }
    if (m64_os_anon_at(to, PROBE_BYTES)) return -2;
    if (best1 == UINT64_MAX) continue;
    first += best1, second += best2, pages += PROBE_BYTES / 4096;
  }
  if (!pages) return -1;
  return first > second ? (double)(first - second) / (double)pages : 0.0;
}
#define FIRST_TOUCH_READ_NS 40.0 /* above it, AUTO is MAP_READ (slots layers stream through read) */

static void *prefetch_thread(void *arg) {
  m64_pager *p = arg;
  char err[512];
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->stop && p->job < 0 && !look_ahead(p)) pthread_cond_wait(&p->cv, &p->mu);
    if (p->stop) break;
    const int32_t s = p->job;
    const uint32_t layer = (uint32_t)p->c.slots[s].layer;
    const slot copy = p->slots[s];
    pthread_mutex_unlock(&p->mu);
    int ok = place(p, layer, &copy, 0, err, sizeof err) == 0;
    pthread_mutex_lock(&p->mu);
    p->job = -1;
    pthread_mutex_unlock(&p->mu);
    finish(p, s, ok, err);
    pthread_mutex_lock(&p->mu);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

/* Where a layer that gets a place of its own starts, at or after `at`: congruent to its
 * file offset under huge-page placement (no shift where it follows its file neighbour). */
static uint32_t own_at(void *ctx, uint32_t at, uint32_t layer) {
  const m64_pager *p = ctx;
  return p->huge ? at + (uint32_t)huge_shift((uintptr_t)p->base + at, p->file_off[layer]) : at;
}

int m64_pager_open(m64_pager **out, const m64_bundle *b, const char *path, uint8_t *base,
                   uint32_t cache_off, uint64_t cache_size, const m64_pager_options *o,
                   m64_err *e) {
  *out = NULL;
  m64_pager *p = calloc(1, sizeof *p);
  if (!p) return m64_fail(e, M64_ENOMEM, "out of memory");
  p->b = b;
  p->o = *o;
  p->fd = -1;
  p->base = base;
  p->job = -1;
  p->n_layers = m64_bundle_n_layers(b);
  p->n_blocks = m64_bundle_n_blocks(b);
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  int rc = 0;
  if (p->n_layers < 2) rc = m64_fail(e, M64_EFORMAT, "bundle has %u layers", p->n_layers);
  p->file_off = calloc(p->n_layers, sizeof *p->file_off);
  p->verified = calloc(p->n_layers, 1);
  p->slots = calloc(p->n_layers ? p->n_layers : 1, sizeof *p->slots);
  p->pages = layer_pages(b);
  p->cache_mem = calloc(1, m64_cache_mem_bytes(p->n_layers, p->n_blocks));
  if (!rc && (!p->file_off || !p->verified || !p->slots || !p->pages || !p->cache_mem))
    rc = m64_fail(e, M64_ENOMEM, "out of memory");
  if (!rc) rc = layer_offsets(p, e);
  /* A compressed layer has no file pages to map: it is always decompressed into place. */
  p->compressed = m64_bundle_compressed(b);
  if (p->compressed) p->o.mode = M64_PAGE_COPY;
  for (int i = 0; i < 2 && !rc && p->compressed; i++) rc = m64_layer_decoder_new(&p->dec[i], e);
  if (!rc && p->o.mode != M64_PAGE_COPY && (p->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
    rc = m64_fail(e, M64_EIO, "cannot open %s: %s", path, strerror(errno));
  if (rc) {
    m64_pager_close(p);
    return rc;
  }
  /* Lay out the slots (module/cache.c): one per layer if all fit; else globals, blocks
   * (each its own place if they fit beside a few experts' slots, else K shared slots), then
   * the experts' slots. */
  p->huge = use_huge(b) && ((uintptr_t)base & 4095) == 0;
  const m64_cache_need need = m64_cache_needs(p->pages, p->n_layers, p->n_blocks, slot_extra(p->huge), own_total(b, p->huge));
  if (m64_cache_init(&p->c, p->cache_mem, p->pages, p->n_layers, p->n_blocks, slot_extra(p->huge), &need, cache_off,
                     cache_size, own_at, p)) {
    const int experts = p->n_layers > p->n_blocks + 1;
    m64_pager_close(p);
    return m64_fail(e, M64_ELIMIT, "layer cache of %llu bytes cannot hold the globals, one block%s (%llu)",
                    (unsigned long long)cache_size, experts ? " and one expert" : "",
                    (unsigned long long)(need.least * M64_CACHE_PAGE));
  }
  p->c.prefer_streamed = p->o.mode == M64_PAGE_MAP_READ;
  for (uint32_t s = 0; s < p->c.n_slots; s++)
    p->slots[s] = (slot){.addr = p->c.slots[s].addr, .at = p->c.slots[s].addr,
                         .size = (uint64_t)p->c.slots[s].pages * M64_CACHE_PAGE};
  if (p->o.mode == M64_PAGE_AUTO) {
    p->o.mode = M64_PAGE_MAP;
    if (m64_cache_streams(&p->c)) {
      const double ns = first_touch_ns(p);
      if (ns == -2) {
        m64_pager_close(p);
        return m64_fail(e, M64_ENOMEM, "cannot give the workspace back its memory after the paging probe: %s", strerror(errno));
      }
      if (ns >= FIRST_TOUCH_READ_NS) p->o.mode = M64_PAGE_MAP_READ;
      p->c.prefer_streamed = p->o.mode == M64_PAGE_MAP_READ;
      if (o->verbose)
        fprintf(stderr, "m64run: pager: the first read of a freshly mapped page costs %.0f ns more than the next here: %s\n",
                ns, p->o.mode == M64_PAGE_MAP_READ ? "reading layers into the slots they stream through (--paging map-read)" : "mapping them (--paging map)");
    }
  }
  p->st.slots = p->c.n_slots;
  p->st.layers = p->n_layers;
  if (o->prefetch) {
    if (m64_os_thread_start(&p->thread, prefetch_thread, p) == 0) p->thread_running = 1;
  }
  if (o->verbose)
    fprintf(stderr, "m64run: pager: %u slots (%s%s), layers placed by %s, prefetch %s\n", p->c.n_slots,
            p->c.shared ? "blocks share slots" : p->c.experts_shared ? "blocks resident" : "every layer resident",
            p->c.experts_shared ? ", experts share the rest" : "", placing(p), p->thread_running ? "on" : "off");
  *out = p;
  return 0;
}

void m64_pager_close(m64_pager *p) {
  if (!p) return;
  if (p->thread_running) {
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    m64_os_thread_join(p->thread);
  }
  if (p->fd >= 0) close(p->fd);
  m64_layer_decoder_free(p->dec[0]);
  m64_layer_decoder_free(p->dec[1]);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
  free(p->file_off);
  free(p->verified);
  free(p->slots);
  free(p->pages);
  free(p->cache_mem);
  free(p);
}

uint32_t m64_pager_acquire(m64_pager *p, uint32_t layer) {
  char err[512];
  if (layer >= p->n_layers) m64_wasm_host_trapf("module asked for layer %u of %u", layer, p->n_layers);
  pthread_mutex_lock(&p->mu);
  p->st.acquires++;
  const int expert = is_expert(p, layer);
  int32_t s = m64_cache_touch(&p->c, layer);
  if (s >= 0) {
    if (p->slots[s].state == SLOT_LOADING) {
      const double t0 = now();
      while (p->slots[s].state == SLOT_LOADING) {
        if (p->rd.active && p->rd.layer == layer && atomic_load(&p->rd.next) < p->rd.size) {
          atomic_fetch_add(&p->rd.busy, 1); /* help the pager's thread read it */
          pthread_mutex_unlock(&p->mu);
          read_pieces(p);
          atomic_fetch_sub(&p->rd.busy, 1);
          pthread_mutex_lock(&p->mu);
          p->st.helped++;
          continue;
        }
        pthread_cond_wait(&p->cv, &p->mu);
      }
      p->st.stall_seconds += now() - t0;
    } else if (p->slots[s].state == SLOT_READY) {
      p->st.hits++;
    }
    p->st.expert_hits += (uint64_t)(expert && p->slots[s].state == SLOT_READY);
    if (p->slots[s].state != SLOT_READY) {
      snprintf(err, sizeof err, "%s", p->error[0] ? p->error : "layer could not be paged in");
      pthread_mutex_unlock(&p->mu);
      m64_wasm_host_trap(err);
    }
    p->c.slots[s].in_use++;
    const uint32_t addr = p->slots[s].at;
    pthread_mutex_unlock(&p->mu);
    return addr;
  }
  /* Not resident: place it now, on this thread. */
  s = m64_cache_choose(&p->c, layer, 1);
  if (s < 0) {
    pthread_mutex_unlock(&p->mu);
    m64_wasm_host_trapf("workspace too small: no free slot for layer %s", m64_bundle_layer(p->b, layer)->name);
  }
  assign(p, s, layer);
  p->c.slots[s].in_use++;
  const slot copy = p->slots[s];
  pthread_mutex_unlock(&p->mu);
  const double t0 = now();
  const int ok = place(p, layer, &copy, 1, err, sizeof err) == 0;
  finish(p, s, ok, err);
  pthread_mutex_lock(&p->mu);
  p->st.stall_seconds += now() - t0;
  pthread_mutex_unlock(&p->mu);
  if (!ok) m64_wasm_host_trap(err);
  return copy.at;
}

void m64_pager_release(m64_pager *p, uint32_t layer) {
  if (layer >= p->n_layers) return;
  pthread_mutex_lock(&p->mu);
  const int32_t s = p->c.slot_of[layer];
  if (s >= 0 && p->c.slots[s].in_use && --p->c.slots[s].in_use == 0 && m64_cache_streams(&p->c) && p->thread_running)
    pthread_cond_broadcast(&p->cv); /* its slot may now take a block placed ahead (look_ahead) */
  pthread_mutex_unlock(&p->mu);
}

void m64_pager_prefetch(m64_pager *p, uint32_t layer) {
  if (!p->thread_running || layer >= p->n_layers) return;
  pthread_mutex_lock(&p->mu);
  if (p->c.slot_of[layer] < 0 && p->job < 0) {
    int32_t s = m64_cache_choose(&p->c, layer, 0);
    if (s >= 0) {
      assign(p, s, layer);
      p->job = s;
      pthread_cond_broadcast(&p->cv);
    }
  }
  pthread_mutex_unlock(&p->mu);
}

int m64_pager_streams(const m64_pager *p) { return m64_cache_streams(&p->c) && p->thread_running; }
m64_page_mode m64_pager_mode(const m64_pager *p) { return p->o.mode; }

void m64_pager_stats_get(m64_pager *p, m64_pager_stats *st) {
  pthread_mutex_lock(&p->mu);
  *st = p->st;
  st->evictions = p->c.evictions;
  st->resident = p->c.resident;
  st->expert_acquires = p->c.expert_acquires;
  pthread_mutex_unlock(&p->mu);
}
