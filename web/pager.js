// pager.js — the page's half of runtime/pager.c: it moves layers into the slots the module's
// cache policy chooses (in JS because the page copies layers with TypedArray.set from
// memories the module cannot reach).
import { fail } from './common.js';

// The layer cache's policy is the module's (module/cache.h, the code m64run's pager links):
// which slot a layer goes to and what it evicts. The page moves the bytes (Paging, below).
export class Pager {
  constructor(x, cache, nBlocks) {
    this.x = x;
    this.cache = cache; // the module's handle (m64_cache_open)
    this.nBlocks = nBlocks;
    this.nSlots = x.m64_cache_slots(cache) >>> 0;
    this.st = { acquires: 0, hits: 0, pageIns: 0, bytesPaged: 0, evictions: 0, pageSeconds: 0, stallSeconds: 0,
      expertAcquires: 0, expertHits: 0, expertPageIns: 0 };
  }

  isExpert(layer) { return layer > this.nBlocks; }
  slotOf(layer) { return this.x.m64_cache_slot_of(this.cache, layer); }
  addr(slot) { return this.x.m64_cache_slot_addr(this.cache, slot) >>> 0; }
}

// The module's layer_acquire and layer_release, installed on the Worker's Host (session.js).
export class Paging {
  /* ---- the module's imports ---- */
  acquire(layer) {
    const p = this.pager;
    if (layer >= this.layers.length) fail(`module asked for layer ${layer} of ${this.layers.length}`);
    p.st.acquires++;
    const expert = p.isExpert(layer);
    if (expert) p.st.expertAcquires++;
    const s = p.x.m64_cache_acquire(p.cache, layer);
    if (s >= 0) {
      p.st.hits++;
      if (expert) p.st.expertHits++;
      return p.addr(s);
    }
    if (this.streaming) return this.streamIn(layer);
    if (!this.ready[layer]) {
      if (this.downloadError) throw this.downloadError;
      if (!this.jspi) fail(`layer ${this.layers[layer].name} has not been downloaded`);
      const t0 = performance.now();
      return new Promise((resolve, reject) => this.waiters.set(layer, { resolve, reject })).then(() => {
        p.st.stallSeconds += (performance.now() - t0) / 1e3;
        return this.place(layer);
      });
    }
    return this.place(layer);
  }

  place(layer, bytes = this.storage.view(layer)) {
    const p = this.pager, t0 = performance.now();
    const s = p.x.m64_cache_place(p.cache, layer);
    if (s < 0) fail(`workspace too small: no free slot for layer ${this.layers[layer].name}`);
    p.st.evictions = p.x.m64_cache_evictions(p.cache) >>> 0;
    const L = this.layers[layer], addr = p.addr(s);
    this.bytes(addr, L.size).set(bytes);
    p.st.pageIns++;
    if (p.isExpert(layer)) p.st.expertPageIns++;
    p.st.bytesPaged += L.size;
    p.st.pageSeconds += (performance.now() - t0) / 1e3;
    return addr;
  }

  release(layer) { this.pager.x.m64_cache_release(this.pager.cache, layer); }
}
