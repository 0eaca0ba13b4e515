// download.js — the image's arrival (natively the file is mapped, formats/bundle/reader.c): each segment by one Range response streamed into storage, each layer decoded (compressed bundles) and hashed as it completes.
import { BundleError, fail } from './common.js';
import { streamRange } from './http_range.js';
import { decodeLayer } from './layer_decoder.js';
import { sameHash, sha256 } from './sha256.js';

// Installed on the Worker's Host (session.js).
export class Downloading {
  /* ---- download: segments in order, each by one Range request, streamed into storage ---- */
  async download() {
    let lastPost = 0;
    for (let si = 0; si < this.segments.length; si++) {
      const seg = this.segments[si];
      const where = (l) => (this.compressed ? this.layers[l].storedOffset : this.layers[l].offset);
      const mine = this.layers.map((L, l) => l).filter((l) => this.layers[l].segment === si).sort((a, b) => where(a) - where(b));
      let next = 0, at = 0, part = null, filled = 0;
      for await (const value of streamRange(this.url, seg.offset, seg.size, seg.name, this.timeoutMs)) {
        let chunk = value;
        if (at + chunk.length > seg.size) chunk = chunk.subarray(0, seg.size - at);
        if (this.compressed) {
          // a layer's frames gathered from the chunks they span; each complete layer decoded
          for (let c = 0; c < chunk.length && next < mine.length;) {
            const L = this.layers[mine[next]];
            if (at + c < L.storedOffset) { c = Math.min(chunk.length, L.storedOffset - at); continue; }
            if (!part) { part = new Uint8Array(L.storedSize); filled = 0; }
            const k = Math.min(chunk.length - c, L.storedSize - filled);
            part.set(chunk.subarray(c, c + k), filled);
            filled += k;
            c += k;
            if (filled === L.storedSize) { await this.layerStored(mine[next++], part); part = null; }
          }
          at += chunk.length;
        } else {
          this.storage.write(si, at, chunk, mine);
          at += chunk.length;
          while (next < mine.length && this.layers[mine[next]].offset + this.layers[mine[next]].size <= at) await this.layerArrived(mine[next++]);
        }
        this.received += chunk.length;
        const now = performance.now();
        if (now - lastPost > 100) { lastPost = now; this.progress(); }
      }
      if (at < seg.size) fail(`${seg.name}: the download ended after ${at} of ${seg.size} bytes: the bundle is truncated`);
    }
    this.progress();
  }

  // Layer l's bytes as the bundle stores them, checked, and for a compressed bundle decoded
  // into `into`: the stored hash first (as m64run checks it before its first decode), then
  // the layer's own. Returns the layer's bytes. The download's and streaming's (stream.js).
  async checkedLayer(l, bytes, into) {
    const L = this.layers[l];
    let raw = bytes;
    if (this.compressed) {
      if (this.verify && !sameHash(await sha256(bytes), L.storedSha256)) fail(`layer ${L.name}: stored SHA-256 mismatch (the bundle is corrupt)`);
      raw = into;
      decodeLayer(this.zstd, L, this.tensors, bytes, raw);
    }
    if (this.verify && !sameHash(await sha256(raw), L.sha256)) fail(`layer ${L.name}: SHA-256 mismatch (the bundle is corrupt)`);
    return raw;
  }

  // A compressed layer's frames, all here: checked and decoded into the layer's place.
  async layerStored(l, stored) {
    await this.checkedLayer(l, stored, this.storage.view(l));
    this.storage.bytes += this.layers[l].size;
    this.layerReady(l);
  }

  async layerArrived(l) {
    await this.checkedLayer(l, this.storage.view(l));
    this.layerReady(l);
  }

  layerReady(l) {
    this.ready[l] = 1;
    // Timed here: the end of the download loop may run seconds later, after a token.
    if (++this.nReady === this.layers.length) this.imageCompleteMs = performance.now() - this.openedAt;
    const w = this.waiters.get(l);
    if (w) { this.waiters.delete(l); w.resolve(); }
  }

  downloadFailed(e) {
    this.downloadError = e instanceof BundleError ? e : new BundleError(String(e.message || e));
    for (const w of this.waiters.values()) w.reject(this.downloadError);
    this.waiters.clear();
    this.post({ type: 'error', message: this.downloadError.message, fatal: true });
  }
}
