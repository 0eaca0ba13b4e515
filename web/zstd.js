// zstd.js — mirrors the page's use of libzstd (as formats/bundle/compress.c uses it): zstd's own decompressor compiled to wasm (web/zstd/), since Chromium's DecompressionStream has no zstd.
import { fail } from './common.js';
import { fetchWhole } from './http_range.js';

const PAGE = 65536;

// One decoder per Worker: a frame area (the stored bytes being decoded, copied in once)
// and an output area after it, in the decoder module's own memory.
export class Zstd {
  static async load(url, timeoutMs) {
    const bytes = await fetchWhole(url, 'the zstd decoder', timeoutMs).catch((e) => {
      fail(`the bundle is compressed and the zstd decoder could not be loaded (${e.message}): serve zstd_decoder.wasm ` +
           '(built into build/web/ by cmake) beside m64.js, or run `m64c decompress` on the bundle');
    });
    let x;
    try {
      x = (await WebAssembly.instantiate(bytes, {})).instance.exports;
    } catch (e) { fail(`the zstd decoder does not instantiate: ${e.message}`); }
    if (x.zd_init() !== 0) fail('the zstd decoder could not set up its context');
    const z = new Zstd();
    z.x = x;
    z.in = x.zd_in();
    z.n = 0;
    z.out = z.in;
    return z;
  }

  // Makes room for n input bytes and an output of up to outMax bytes.
  reserve(n, outMax) {
    const out = Math.ceil((this.in + n) / 16) * 16, need = out + outMax, mem = this.x.memory;
    if (need > 2 ** 32 - PAGE) fail(`a frame area of ${n} bytes does not fit the zstd decoder's memory`);
    if (need > mem.buffer.byteLength) mem.grow(Math.ceil((need - mem.buffer.byteLength) / PAGE));
    this.out = out;
    this.outMax = outMax;
  }

  // Copies the stored bytes in: what the calls below read, at positions inside them.
  setInput(bytes, outMax) {
    this.reserve(bytes.length, outMax);
    new Uint8Array(this.x.memory.buffer, this.in, bytes.length).set(bytes);
    this.n = bytes.length;
  }

  // The content size the frame at pos declares, or -1 (not a zstd frame, or no size).
  contentSize(pos) { return this.x.zd_content_size(this.in + pos, this.n - pos); }

  // The bytes the frame at pos spans, or -1 (truncated).
  frameSize(pos) { return this.x.zd_frame_size(this.in + pos, this.n - pos); }

  // Decodes the frame [pos, pos + size) into exactly want bytes: a view of the output
  // area (valid until the next call), or the error's text.
  decompress(pos, size, want) {
    if (want > this.outMax) fail(`a zstd frame of ${want} bytes is larger than the decoder's output area`);
    const r = this.x.zd_decompress(this.out, want, this.in + pos, size);
    if (r !== want) return r < 0 ? this.error() : 'short output';
    return new Uint8Array(this.x.memory.buffer, this.out, want);
  }

  error() {
    const u8 = new Uint8Array(this.x.memory.buffer), at = this.x.zd_error();
    let end = at;
    while (end < u8.length && u8[end]) end++;
    return new TextDecoder().decode(u8.subarray(at, end));
  }

  // A compressed section: one frame declaring exactly rawSize bytes and spanning all of
  // stored (formats/bundle/compress.c m64__z_decompress_section). A copy.
  section(stored, rawSize, name) {
    this.setInput(stored, rawSize);
    const cs = this.contentSize(0);
    if (cs < 0) fail(`section ${name}: not a zstd frame of declared size`);
    if (cs !== rawSize) fail(`section ${name}: its frame declares ${cs} bytes, its record ${rawSize}`);
    if (this.frameSize(0) !== stored.length) fail(`section ${name}: the zstd frame does not span the section`);
    const out = this.decompress(0, stored.length, rawSize);
    if (typeof out === 'string') fail(`section ${name}: zstd: ${out}`);
    return out.slice();
  }
}
