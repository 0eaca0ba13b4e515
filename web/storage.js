// storage.js — mirrors the segment mapping of formats/bundle/reader.c: a JS twin because the page holds the image in memory64 memories (or ArrayBuffers) filled by download, not an mmap.
import { WASM_PAGE, fail } from './common.js';

const SEGMENT_MAX = 16 * 2 ** 30;

// A tiny module importing an i64-indexed memory: instantiating it with a memory proves the
// memory really is memory64 (an engine without it ignores the descriptor's address field).
const MEMORY64_PROBE = new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 2, 8, 1, 1, 0x6d, 1, 0x6d, 2, 4, 0]);

function newMemory64(pages) {
  for (const key of ['address', 'index']) {
    try {
      const m = new WebAssembly.Memory({ initial: BigInt(pages), maximum: BigInt(pages), [key]: 'i64' });
      new WebAssembly.Instance(new WebAssembly.Module(MEMORY64_PROBE), { m: { m } });
      return m;
    } catch { /* try the next spelling, then give up */ }
  }
  return null;
}

// The image: one memory64 memory per segment, or one ArrayBuffer per layer.
export class Storage {
  constructor(segments, layers, forceArrayBuffers) {
    this.layers = layers;
    this.memory64 = false;
    this.reason = '';
    if (!forceArrayBuffers && WebAssembly.validate(MEMORY64_PROBE)) {
      const mems = [];
      for (const s of segments) {
        if (s.rawSize > SEGMENT_MAX) fail(`segment ${s.name} is larger than 16 GiB`);
        const m = newMemory64(Math.max(1, Math.ceil(s.rawSize / WASM_PAGE))); // the raw layout, also of a compressed bundle
        if (!m) break;
        mems.push(m);
      }
      if (mems.length === segments.length) {
        this.mems = mems;
        this.memory64 = true;
      } else this.reason = mems.length ? 'could not reserve a memory64 memory per segment' : 'this browser lacks memory64';
    } else this.reason = forceArrayBuffers ? 'memory64 turned off' : 'this browser lacks memory64';
    if (!this.memory64) {
      this.mems = null;
      this.buffers = layers.map((L) => new Uint8Array(L.size));
    }
    this.bytes = 0; // filled so far
  }

  // Writes bytes that belong at offset `at` of segment seg.
  write(seg, at, chunk, layersOfSeg) {
    this.bytes += chunk.length;
    if (this.memory64) {
      new Uint8Array(this.mems[seg].buffer, at, chunk.length).set(chunk);
      return;
    }
    const end = at + chunk.length;
    for (const l of layersOfSeg) {
      const L = this.layers[l];
      const lo = Math.max(at, L.offset), hi = Math.min(end, L.offset + L.size);
      if (lo < hi) this.buffers[l].set(chunk.subarray(lo - at, hi - at), lo - L.offset);
    }
  }

  view(l) {
    const L = this.layers[l];
    return this.memory64 ? new Uint8Array(this.mems[L.segment].buffer, L.offset, L.size) : this.buffers[l];
  }

  reserved() {
    return this.memory64 ? this.mems.reduce((a, m) => a + m.buffer.byteLength, 0) : this.buffers.reduce((a, b) => a + b.length, 0);
  }
}
