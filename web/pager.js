// pager.js — mirrors runtime/pager.c (which slot a layer goes to, and what is evicted): a JS twin because the page copies layers with TypedArray.set between memories C cannot reach.
import { align64k, fail } from './common.js';

// runtime/pager.c's policy: the globals layer pinned, blocks in equal slots; when they do
// not all fit, evict the block whose next use is farthest away in the fixed cycle. An MoE
// model's experts (layers after the nBlocks blocks) get slots of their own size after the
// blocks' (the blocks stay whole if they fit beside 2 expert slots per block), and a slot
// goes to the expert used least often lately (ties: least recently).
const AGE_EVERY = 4096; // expert acquires between halvings of the use counts

export class Pager {
  constructor(layers, cacheOff, cacheSize, nBlocks = layers.length - 1) {
    this.layers = layers;
    this.nBlocks = nBlocks;
    const n = layers.length, nExperts = n - 1 - nBlocks;
    this.slotOf = new Int32Array(n).fill(-1);
    this.uses = new Uint32Array(nExperts);
    this.lastUse = new Float64Array(nExperts);
    this.slots = [];
    this.st = { acquires: 0, hits: 0, pageIns: 0, bytesPaged: 0, evictions: 0, pageSeconds: 0, stallSeconds: 0,
      expertAcquires: 0, expertHits: 0, expertPageIns: 0 };
    this.shared = false;
    this.expertsShared = false;
    let at = cacheOff;
    const slot = (size) => { this.slots.push({ addr: at, layer: -1, inUse: 0 }); at += size; };
    if (fullCache(layers) <= cacheSize) {
      for (const L of layers) slot(align64k(L.size));
    } else {
      const g = align64k(layers[0].size), blk = maxBlock(layers, nBlocks), xs = maxExpert(layers, nBlocks);
      if (cacheSize < g + blk + xs)
        fail(`layer cache of ${cacheSize} bytes cannot hold the globals, one block${xs ? ' and one expert' : ''} (${g + blk + xs})`);
      slot(g);
      const room = cacheSize - g;
      const blocksWhole = layers.slice(1, 1 + nBlocks).reduce((a, L) => a + align64k(L.size), 0);
      if (nExperts && blocksWhole + 2 * nBlocks * xs <= room) {
        for (let l = 1; l <= nBlocks; l++) slot(align64k(layers[l].size));
      } else {
        this.shared = true;
        const k = Math.max(1, Math.min(Math.floor((nExperts ? Math.floor(room / 2) : room) / blk), nBlocks));
        for (let s = 0; s < k; s++) slot(blk);
      }
      this.blkEnd = this.expLo = this.slots.length;
      if (nExperts) {
        this.expertsShared = true;
        const k = Math.min(Math.floor((cacheOff + cacheSize - at) / xs), nExperts);
        for (let s = 0; s < k; s++) slot(xs);
      }
    }
    this.cursor = nBlocks - 1; // as if the last block had just run
  }

  distance(layer) {
    const n = this.nBlocks;
    return (layer - 1 + n - this.cursor) % n;
  }

  isExpert(layer) { return layer > this.nBlocks; }

  // an acquire of expert layer l: its use count and when (pager.c expert_used)
  expertUsed(l) {
    const e = l - 1 - this.nBlocks;
    this.uses[e]++;
    this.lastUse[e] = ++this.st.expertAcquires;
    if (this.st.expertAcquires % AGE_EVERY === 0) for (let i = 0; i < this.uses.length; i++) this.uses[i] >>>= 1;
  }

  chooseExpertSlot() {
    let best = -1;
    for (let s = this.expLo; s < this.slots.length; s++) {
      const x = this.slots[s];
      if (x.inUse) continue;
      if (x.layer < 0) return s;
      const e = x.layer - 1 - this.nBlocks, b = best < 0 ? 0 : this.slots[best].layer - 1 - this.nBlocks;
      if (best < 0 || this.uses[e] < this.uses[b] || (this.uses[e] === this.uses[b] && this.lastUse[e] < this.lastUse[b])) best = s;
    }
    return best;
  }

  chooseSlot(layer) {
    if (this.isExpert(layer)) return this.expertsShared ? this.chooseExpertSlot() : layer;
    if (!this.shared) return layer;
    if (layer === 0) return 0;
    let best = -1, bestD = 0;
    for (let s = 1; s < this.blkEnd; s++) {
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
const maxOf = (layers) => layers.reduce((a, L) => Math.max(a, align64k(L.size)), 0);
export function maxBlock(layers, nBlocks = layers.length - 1) { return maxOf(layers.slice(1, 1 + nBlocks)); }
export function maxExpert(layers, nBlocks = layers.length - 1) { return maxOf(layers.slice(1 + nBlocks)); }

// The module's layer_acquire and layer_release, installed on the Worker's Host (session.js).
export class Paging {
  /* ---- the module's imports ---- */
  acquire(layer) {
    const p = this.pager;
    if (layer >= this.layers.length) fail(`module asked for layer ${layer} of ${this.layers.length}`);
    p.st.acquires++;
    const expert = p.isExpert(layer);
    if (expert) p.expertUsed(layer);
    else if (layer > 0) p.cursor = layer - 1;
    const s = p.slotOf[layer];
    if (s >= 0) {
      p.st.hits++;
      if (expert) p.st.expertHits++;
      p.slots[s].inUse++;
      return p.slots[s].addr;
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
    const s = p.chooseSlot(layer);
    if (s < 0) fail(`workspace too small: no free slot for layer ${this.layers[layer].name}`);
    const x = p.slots[s];
    if (x.layer >= 0 && x.layer !== layer) { p.slotOf[x.layer] = -1; p.st.evictions++; }
    x.layer = layer;
    p.slotOf[layer] = s;
    const L = this.layers[layer];
    this.bytes(x.addr, L.size).set(bytes);
    x.inUse++;
    p.st.pageIns++;
    if (p.isExpert(layer)) p.st.expertPageIns++;
    p.st.bytesPaged += L.size;
    p.st.pageSeconds += (performance.now() - t0) / 1e3;
    return x.addr;
  }

  release(layer) {
    const s = this.pager.slotOf[layer];
    if (s >= 0 && this.pager.slots[s].inUse) this.pager.slots[s].inUse--;
  }
}
