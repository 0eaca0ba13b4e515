// stream.js — layers read from the server when the module asks for them (option stream): no
// image is held in the page, so a model larger than the page may hold runs in bounded memory:
// the workspace, the layer being read and the one read ahead. Natively the file is mapped
// and nothing like this is needed (formats/bundle/reader.c); this is the page's own.
import { fail } from './common.js';
import { fetchRange } from './http_range.js';

// Layers the page holds outside the workspace at once: the one the module waits for and
// the next block, read while the module computes.
const IN_FLIGHT = 2;

// Installed on the Worker's Host (session.js) when it streams.
export class Streaming {
  // Layer l's bytes (a Promise): by one Range request, then checked (and decoded) as the
  // download checks every layer.
  streamLayer(l) {
    let p = this.inFlight.get(l);
    if (!p) {
      p = this.readLayer(l);
      p.catch(() => {}); // a read ahead nobody waits for must not be an unhandled rejection
      this.inFlight.set(l, p);
    }
    return p;
  }

  async readLayer(l) {
    const L = this.layers[l], seg = this.segments[L.segment];
    const at = this.compressed ? L.storedOffset : L.offset, len = this.compressed ? L.storedSize : L.size;
    if (at + len > seg.size) fail(`layer ${L.name} lies outside ${seg.name}`);
    const { bytes } = await fetchRange(this.url, seg.offset + at, len, `layer ${L.name}`, this.timeoutMs);
    this.received += len;
    this.layerReads++;
    return this.checkedLayer(l, bytes, this.compressed ? new Uint8Array(L.size) : null); // download.js
  }

  // The module asked for layer l and it is not in the cache: read it (or take the read
  // ahead), place it, and start reading the block after it if that one is not cached.
  async streamIn(l) {
    const t0 = performance.now();
    const bytes = await this.streamLayer(l);
    this.inFlight.delete(l);
    this.pager.st.stallSeconds += (performance.now() - t0) / 1e3;
    const addr = this.place(l, bytes);
    this.readAhead(l);
    return addr;
  }

  // Blocks run in a fixed cycle (globals, blocks 1..n); experts are not predictable.
  readAhead(l) {
    const n = this.pager.nBlocks;
    if (l < 1 || l > n) return;
    const next = l === n ? 1 : l + 1;
    for (const k of this.inFlight.keys()) if (k !== next) this.inFlight.delete(k); // only the next one is kept
    if (this.pager.slotOf(next) < 0 && this.inFlight.size < IN_FLIGHT) this.streamLayer(next);
  }

  streamedBytes() { return this.layers.reduce((a, L) => Math.max(a, L.size), 0) * IN_FLIGHT; }
}

export function checkStreaming(jspi) {
  if (!jspi) fail('streaming layers needs JSPI (WebAssembly.Suspending), which this browser lacks');
}
