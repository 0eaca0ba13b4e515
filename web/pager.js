// pager.js — mirrors runtime/pager.c (which slot a layer goes to, and what is evicted): a JS twin because the page copies layers with TypedArray.set between memories C cannot reach.
import { align64k, fail } from './common.js';

// runtime/pager.c's policy: the globals layer pinned, blocks in equal slots; when they do
// not all fit, evict the block whose next use is farthest away in the fixed cycle.
export class Pager {
  constructor(layers, cacheOff, cacheSize) {
    this.layers = layers;
    const n = layers.length;
    this.slotOf = new Int32Array(n).fill(-1);
    this.slots = [];
    this.st = { acquires: 0, hits: 0, pageIns: 0, bytesPaged: 0, evictions: 0, pageSeconds: 0, stallSeconds: 0 };
    let at = cacheOff;
    if (fullCache(layers) <= cacheSize) {
      this.shared = false;
      for (const L of layers) { this.slots.push({ addr: at, layer: -1, inUse: 0 }); at += align64k(L.size); }
    } else {
      const g = align64k(layers[0].size), blk = maxBlock(layers);
      if (cacheSize < g + blk) fail(`layer cache of ${cacheSize} bytes cannot hold the globals and one block (${g + blk})`);
      this.shared = true;
      const k = Math.min(Math.floor((cacheSize - g) / blk), n - 1);
      this.slots.push({ addr: at, layer: -1, inUse: 0 });
      at += g;
      for (let s = 0; s < k; s++, at += blk) this.slots.push({ addr: at, layer: -1, inUse: 0 });
    }
    this.cursor = n - 2; // as if the last block had just run
  }

  distance(layer) {
    const n = this.layers.length - 1;
    return (layer - 1 + n - this.cursor) % n;
  }

  chooseSlot(layer) {
    if (!this.shared) return layer;
    if (layer === 0) return 0;
    let best = -1, bestD = 0;
    for (let s = 1; s < this.slots.length; s++) {
      const x = this.slots[s];
      if (x.inUse) continue;
      if (x.layer < 0) return s;
      const d = this.distance(x.layer);
      if (best < 0 || d > bestD) { best = s; bestD = d; }
    }
    return best;
  }
}

export function fullCache(layers) { return layers.reduce((a, L) => a + align64k(L.size), 0); }
export function maxBlock(layers) { return layers.slice(1).reduce((a, L) => Math.max(a, align64k(L.size)), 0); }

// The module's layer_acquire and layer_release, installed on the Worker's Host (session.js).
export class Paging {
  /* ---- the module's imports ---- */
  acquire(layer) {
    const p = this.pager;
    if (layer >= this.layers.length) fail(`module asked for layer ${layer} of ${this.layers.length}`);
    p.st.acquires++;
    if (layer > 0) p.cursor = layer - 1;
    const s = p.slotOf[layer];
    if (s >= 0) {
      p.st.hits++;
      p.slots[s].inUse++;
      return p.slots[s].addr;
    }
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

  place(layer) {
    const p = this.pager, t0 = performance.now();
    const s = p.chooseSlot(layer);
    if (s < 0) fail(`workspace too small: no free slot for layer ${this.layers[layer].name}`);
    const x = p.slots[s];
    if (x.layer >= 0 && x.layer !== layer) { p.slotOf[x.layer] = -1; p.st.evictions++; }
    x.layer = layer;
    p.slotOf[layer] = s;
    const L = this.layers[layer];
    this.bytes(x.addr, L.size).set(this.storage.view(layer));
    x.inUse++;
    p.st.pageIns++;
    p.st.bytesPaged += L.size;
    p.st.pageSeconds += (performance.now() - t0) / 1e3;
    return x.addr;
  }

  release(layer) {
    const s = this.pager.slotOf[layer];
    if (s >= 0 && this.pager.slots[s].inUse) this.pager.slots[s].inUse--;
  }
}
