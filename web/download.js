// download.js — the image's arrival (natively the file is mapped, formats/bundle/reader.c): each segment by one Range response streamed into storage, each layer hashed as it completes.
import { BundleError, fail } from './common.js';
import { sameHash, sha256 } from './sha256.js';

// Installed on the Worker's Host (session.js).
export class Downloading {
  /* ---- download: segments in order, each by one Range request, streamed into storage ---- */
  async download() {
    let lastPost = 0;
    for (let si = 0; si < this.segments.length; si++) {
      const seg = this.segments[si];
      const mine = this.layers.map((L, l) => l).filter((l) => this.layers[l].segment === si).sort((a, b) => this.layers[a].offset - this.layers[b].offset);
      let next = 0, at = 0;
      let res;
      try {
        res = await fetch(this.url, { headers: { Range: `bytes=${seg.offset}-${seg.offset + seg.size - 1}` } });
      } catch (e) { fail(`downloading ${seg.name}: ${e.message}`); }
      if (res.status === 416) fail(`${seg.name} lies beyond the end of the file: the bundle is truncated`);
      if (res.status !== 206) fail(`downloading ${seg.name}: HTTP ${res.status} (the server must honour Range requests)`);
      const reader = res.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        let chunk = value;
        if (at + chunk.length > seg.size) chunk = chunk.subarray(0, seg.size - at);
        this.storage.write(si, at, chunk, mine);
        at += chunk.length;
        this.received += chunk.length;
        while (next < mine.length && this.layers[mine[next]].offset + this.layers[mine[next]].size <= at) await this.layerArrived(mine[next++]);
        const now = performance.now();
        if (now - lastPost > 100) { lastPost = now; this.progress(); }
      }
      if (at < seg.size) fail(`${seg.name}: the download ended after ${at} of ${seg.size} bytes: the bundle is truncated`);
    }
    this.progress();
  }

  async layerArrived(l) {
    const L = this.layers[l];
    if (this.verify) {
      const d = await sha256(this.storage.view(l));
      if (!sameHash(d, L.sha256)) fail(`layer ${L.name}: SHA-256 mismatch (the bundle is corrupt)`);
    }
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
