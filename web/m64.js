// m64.js — the browser host of a .m64 bundle: a plain ES module, no framework, no bundler.
//
// The page imports it and calls M64.open(url); the same file then runs as a module Worker
// that does the work, so the page never freezes. In the worker it:
//   - reads the bundle's header, section table and small sections with HTTP Range requests
//     and checks their SHA-256 (docs/FORMAT.md);
//   - streams each image segment into a memory64 WebAssembly.Memory (one per <= 16 GiB
//     segment; plain ArrayBuffers per layer where memory64 is missing), hashing each
//     layer as its last byte arrives;
//   - instantiates the bundle's wasm module over a wasm32 workspace it creates, and
//     implements the module's imports as runtime/session.c and runtime/pager.c do:
//     layer_acquire copies a layer from storage into a slot of the workspace's layer
//     cache, evicting the block whose next use is farthest away in the layer cycle.
// The model's math, tokenizer and sampler stay in the module (module/m64_module.h);
// this file only moves bytes and reports.
//
// Where the browser has JS Promise Integration (WebAssembly.Suspending), layer_acquire may
// suspend the forward pass until a layer's bytes have arrived, so generation starts while
// later layers still stream in. Without it, the whole image is downloaded first.

const WASM_PAGE = 65536;
const HEADER_SIZE = 96;
const RECORD_SIZE = 128;
const MAX_SECTIONS = 256;
const SEC = { METADATA: 1, TOKENIZER: 2, LAYER_INDEX: 3, MODULE_WASM: 4, NATIVE: 5, SEGMENT: 6, SIGNATURE: 7 };
const MAX_LAYERS = 4096;
const MAX_TENSORS = 65536;
const SEGMENT_MAX = 16 * 2 ** 30;
const IO_BYTES = 64 * 1024; // text in, ids out, pieces (as runtime/session.c)
const HEADROOM = 2 << 20;   // the tokenizer's scratch outside the layer cache
const MAX_WS_PAGES = 65536; // 4 GiB: the whole wasm32 address space
// The module ABI versions (m64_module.h) this page runs; 3 adds imports it answers with has_* 0.
const ABI_OLDEST = 2, ABI_NEWEST = 3;
const SMALL_SECTION_MAX = 256 << 20;

const align64k = (x) => Math.ceil(x / WASM_PAGE) * WASM_PAGE;
const hex = (u8) => Array.from(u8, (b) => b.toString(16).padStart(2, '0')).join('');
const mib = (n) => (n / 1048576).toFixed(1);

class BundleError extends Error {}
const fail = (msg) => { throw new BundleError(msg); };

/* ------------------------------------------------------------------ page side */

// A bundle opened in a Worker. Events: onprogress({received, total, layersReady, nLayers,
// memoryBytes}), onlog(text), onerror(message).
export class M64 {
  constructor(worker) {
    this.worker = worker;
    this.info = null;
    this.onprogress = null;
    this.onlog = null;
    this.onerror = null;
    this.pending = null; // {resolve, reject, onToken}
    this.failed = null;
    worker.onmessage = (ev) => this.#message(ev.data);
    worker.onerror = (ev) => {
      ev.preventDefault?.();
      this.#fail(`worker failed: ${ev.message || 'could not start the worker'}`);
    };
    worker.onmessageerror = () => this.#fail('worker sent a message that could not be read');
  }

  // Opens the bundle at url. Options: workspace (bytes bound on the wasm32 workspace,
  // 0 = what the model needs), nCtx (0 = the model's, at most 4096), verify (check each
  // layer's SHA-256, default true), forceArrayBuffers (storage without memory64, for tests).
  // Resolves when generation can start (possibly before every layer has arrived).
  // onprogress, onlog and onerror (a failure outside a request, e.g. of the download)
  // may be given here too.
  static open(url, options = {}) {
    const { onprogress, onlog, onerror, ...rest } = options;
    const worker = new Worker(import.meta.url, { type: 'module', name: 'm64' });
    const m = new M64(worker);
    Object.assign(m, { onprogress: onprogress || null, onlog: onlog || null, onerror: onerror || null });
    const abs = new URL(url, globalThis.location?.href).href;
    return m.#request({ type: 'open', url: abs, options: rest }).then((info) => {
      m.info = info;
      return m;
    }, (e) => {
      worker.terminate();
      throw e;
    });
  }

  // Generates from prompt. Options: n (tokens, default 128), temp (default 0.8; 0 = greedy),
  // topK (40), topP (0.95), seed; onToken(text) receives the text as it is produced.
  // Resolves with {text, tokens, promptTokens, prefillTokS, decodeTokS, firstTokenMs,
  // firstTokenSinceOpenMs, stats}.
  generate(prompt, options = {}) {
    const { onToken, ...rest } = options;
    return this.#request({ type: 'generate', prompt, options: rest }, onToken);
  }

  // One user message of a conversation in the model's chat format (the bundle's
  // chat.template, or options.template); the KV cache carries over between calls, so a
  // turn runs only its own tokens. Options as generate (n defaults to -1: until the end
  // of the turn) plus system (first call only). Resolves like generate, plus turnTokens
  // (the ids this turn ran before the reply) and pos (where the turn started).
  chat(message, options = {}) {
    const { onToken, ...rest } = options;
    return this.#request({ type: 'chat', message, options: rest }, onToken);
  }

  close() { this.worker.terminate(); }

  #request(msg, onToken) {
    if (this.failed) return Promise.reject(new Error(this.failed));
    if (this.pending) return Promise.reject(new Error('m64: one request at a time'));
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject, onToken };
      this.worker.postMessage(msg);
    });
  }

  #fail(message) {
    this.failed = message;
    const p = this.pending;
    this.pending = null;
    if (p) p.reject(new Error(message));
    else if (this.onerror) this.onerror(message);
  }

  #message(d) {
    switch (d.type) {
      case 'progress': if (this.onprogress) this.onprogress(d); break;
      case 'log': if (this.onlog) this.onlog(d.text); break;
      case 'token': if (this.pending?.onToken) this.pending.onToken(d.text); break;
      case 'done': { const p = this.pending; this.pending = null; p?.resolve(d.result); break; }
      case 'error':
        if (d.fatal) this.#fail(d.message);
        else { const p = this.pending; this.pending = null; p?.reject(new Error(d.message)); }
        break;
    }
  }
}

/* ------------------------------------------------------------------ reading bytes */

const u32 = (dv, o) => dv.getUint32(o, true);
const u64 = (dv, o) => {
  const v = dv.getBigUint64(o, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`a 64-bit field at ${o} is too large (${v})`);
  return Number(v);
};
const cstr = (u8, o, n) => {
  const end = u8.subarray(o, o + n).indexOf(0);
  if (end < 0) fail('a name is not NUL-terminated');
  return new TextDecoder().decode(u8.subarray(o, o + end));
};

// Total size from a Content-Range header ("bytes a-b/total"), or -1.
function rangeTotal(res) {
  const m = /\/(\d+)\s*$/.exec(res.headers.get('Content-Range') || '');
  return m ? Number(m[1]) : -1;
}

// Bytes [start, start + len) of url. The server must honour Range requests.
async function fetchRange(url, start, len, what) {
  let res;
  try {
    res = await fetch(url, { headers: { Range: `bytes=${start}-${start + len - 1}` } });
  } catch (e) {
    fail(`cannot read ${what} from ${url}: ${e.message}`);
  }
  if (res.status === 416) fail(`${url} ends before ${what} (byte ${start}): the bundle is truncated`);
  if (res.status !== 206) {
    if (res.ok) fail(`the server answered ${res.status} to a Range request: it must honour Range (serve with web/serve.mjs)`);
    fail(`cannot read ${url}: HTTP ${res.status} ${res.statusText}`);
  }
  const buf = new Uint8Array(await res.arrayBuffer());
  if (buf.length !== len) fail(`${what}: got ${buf.length} of ${len} bytes: the bundle is truncated`);
  return { bytes: buf, total: rangeTotal(res) };
}

// SHA-256 of view: WebCrypto where the page has it (secure contexts only), else sha256Js.
async function sha256(view) {
  if (!globalThis.crypto?.subtle) return sha256Js(view);
  return new Uint8Array(await crypto.subtle.digest('SHA-256', view));
}
const hashInJs = () => !globalThis.crypto?.subtle;

// SHA-256 (FIPS 180-4) in plain JS for pages without WebCrypto (plain HTTP from another
// host): slower, but a layer is still checked before it is used.
const K256 = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2]);

export function sha256Js(view) {
  const h = new Int32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const w = new Int32Array(64);
  const rotr = (x, n) => (x >>> n) | (x << (32 - n));
  const block = (b, o) => { // the 64 bytes of b at o
    for (let i = 0; i < 16; i++, o += 4) w[i] = (b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3];
    for (let i = 16; i < 64; i++) {
      const x = w[i - 15], y = w[i - 2];
      w[i] = (w[i - 16] + (rotr(x, 7) ^ rotr(x, 18) ^ (x >>> 3)) + w[i - 7] + (rotr(y, 17) ^ rotr(y, 19) ^ (y >>> 10))) | 0;
    }
    let [a, b1, c, d, e, f, g, k] = h;
    for (let i = 0; i < 64; i++) {
      const t1 = (k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i]) | 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b1) ^ (a & c) ^ (b1 & c))) | 0;
      k = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b1; b1 = a; a = (t1 + t2) | 0;
    }
    h[0] += a; h[1] += b1; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += k;
  };
  const n = view.length, full = n - (n % 64);
  for (let o = 0; o < full; o += 64) block(view, o);
  // the tail, 0x80, zeros, and the length in bits (big-endian) in one or two blocks
  const tail = new Uint8Array(n % 64 < 56 ? 64 : 128);
  tail.set(view.subarray(full));
  tail[n % 64] = 0x80;
  const bits = n * 8, dv = new DataView(tail.buffer);
  dv.setUint32(tail.length - 8, Math.floor(bits / 2 ** 32));
  dv.setUint32(tail.length - 4, bits >>> 0);
  for (let o = 0; o < tail.length; o += 64) block(tail, o);
  const out = new Uint8Array(32), odv = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) odv.setInt32(4 * i, h[i]);
  return out;
}

function sameHash(a, b) {
  for (let i = 0; i < 32; i++) if (a[i] !== b[i]) return false;
  return true;
}

/* ------------------------------------------------------------------ the bundle */

// Header and section table (docs/FORMAT.md), validated as formats/bundle/reader.c does.
async function readHeader(url) {
  const first = await fetchRange(url, 0, HEADER_SIZE, 'the header');
  const h = first.bytes, dv = new DataView(h.buffer);
  const magic = new TextDecoder().decode(h.subarray(0, 7));
  if (h.length >= 4 && new TextDecoder().decode(h.subarray(0, 4)) === 'GGUF')
    fail(`${url} is a GGUF model, not an .m64 bundle: the page runs bundles; compile it with ` +
         '`m64c build MODEL.gguf -o MODEL.m64` and serve the bundle');
  if (magic !== 'M64BNDL' || h[7] !== 0) fail(`${url} is not an .m64 bundle (bad magic)`);
  const version = u32(dv, 8), flags = u32(dv, 12), nSections = u32(dv, 16);
  if (version !== 1) fail(`bundle version ${version} is not supported (this host reads version 1)`);
  if (flags & 1)
    fail('the bundle is compressed (zstd) and the browser host reads only uncompressed bundles: ' +
         'run `m64c decompress` on it and serve the result');
  if (flags !== 0) fail(`the bundle uses features this browser host does not read (flags 0x${flags.toString(16)})`);
  if (u32(dv, 20) !== HEADER_SIZE || u32(dv, 24) !== RECORD_SIZE || u64(dv, 32) !== HEADER_SIZE)
    fail('bundle header has unexpected sizes');
  if (nSections === 0 || nSections > MAX_SECTIONS) fail(`bundle declares ${nSections} sections`);
  const fileSize = u64(dv, 40);
  const total = first.total;
  if (total >= 0 && total !== fileSize)
    fail(`the bundle is truncated: the server has ${total} bytes, its header says ${fileSize}`);
  const tableLen = nSections * RECORD_SIZE;
  const table = (await fetchRange(url, HEADER_SIZE, tableLen, 'the section table')).bytes;
  const hashed = new Uint8Array(64 + tableLen);
  hashed.set(h.subarray(0, 64));
  hashed.set(table, 64);
  const digest = await sha256(hashed);
  if (!sameHash(digest, h.subarray(64, 96))) fail('bundle header or section table is corrupt (SHA-256 mismatch)');

  const tdv = new DataView(table.buffer), sections = [];
  const dataStart = HEADER_SIZE + tableLen;
  for (let i = 0; i < nSections; i++) {
    const o = i * RECORD_SIZE;
    const s = { kind: u32(tdv, o), name: cstr(table, o + 4, 48), offset: u64(tdv, o + 56), size: u64(tdv, o + 64),
                sha256: table.slice(o + 72, o + 104) };
    if (s.kind < 1 || s.kind > 7 || !s.name) fail(`section ${i} is malformed`);
    if (s.offset < dataStart || s.offset + s.size > fileSize) fail(`section ${s.name} lies outside the file`);
    if (sections.some((t) => t.kind === s.kind && t.name === s.name)) fail(`section ${s.name} appears twice`);
    sections.push(s);
  }
  const sorted = [...sections].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++)
    if (sorted[i].offset < sorted[i - 1].offset + sorted[i - 1].size) fail(`sections ${sorted[i - 1].name} and ${sorted[i].name} overlap`);
  return { fileSize, sections, head: h.slice(0, 64), table }; // the bytes the signature covers
}

async function readSection(url, sec) {
  // Real metadata, tokenizer, index and module sections are KiBs to a few MiB; a header
  // claiming more must not make the page allocate it.
  if (sec.size > SMALL_SECTION_MAX) fail(`section ${sec.name} claims ${sec.size} bytes (more than ${SMALL_SECTION_MAX >> 20} MiB)`);
  const { bytes } = await fetchRange(url, sec.offset, sec.size, `section ${sec.name}`);
  const d = await sha256(bytes);
  if (!sameHash(d, sec.sha256)) fail(`section ${sec.name} is corrupt (SHA-256 mismatch)`);
  return bytes;
}

// The LAYER_INDEX section: layers with their file ranges.
function parseLayerIndex(u8, segments) {
  const dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  if (u8.length < 32) fail('layer index is too short');
  const nl = u32(dv, 0), nt = u32(dv, 4), ns = u32(dv, 8);
  if (nl < 2 || nl > MAX_LAYERS || nt > MAX_TENSORS || ns > MAX_SECTIONS) fail(`layer index declares ${nl} layers, ${nt} tensors, ${ns} segments`);
  if (u32(dv, 12) !== 96 || u32(dv, 16) !== 128) fail('layer index has unexpected record sizes');
  if (u8.length !== 32 + 96 * nl + 128 * nt) fail('layer index size does not match its counts');
  if (segments.length !== ns) fail(`layer index names ${ns} segments, the bundle has ${segments.length}`);
  const layers = [];
  for (let l = 0; l < nl; l++) {
    const o = 32 + 96 * l;
    const L = { name: cstr(u8, o, 32), segment: u32(dv, o + 32), firstTensor: u32(dv, o + 36), nTensors: u32(dv, o + 40),
                offset: u64(dv, o + 48), size: u64(dv, o + 56), sha256: u8.slice(o + 64, o + 96) };
    if (L.segment >= ns) fail(`layer ${L.name} is in segment ${L.segment} of ${ns}`);
    const seg = segments[L.segment];
    if (L.offset % WASM_PAGE || L.offset + L.size > seg.size) fail(`layer ${L.name} lies outside its segment`);
    if (L.size === 0 || L.size > 4 * 2 ** 30) fail(`layer ${L.name} has ${L.size} bytes`);
    L.fileOffset = seg.offset + L.offset;
    layers.push(L);
  }
  return layers;
}

/* ------------------------------------------------------------------ the signature */
// A publisher's signature (docs/FORMAT.md "Signature"), checked as m64c and m64run check
// it: Ed25519 over "m64 bundle signature v1\0", header bytes [0, 64), the section table with
// the SIGNATURE record's hash zeroed, the layer count (u32) and every layer's SHA-256.
// This page runs only the sandboxed wasm module, never native code, so the result only
// informs: who signed the bundle, and whether it is as they signed it. There is no trust
// ring here; m64run is where a signature decides what runs.
const SIG_DOMAIN = 'm64 bundle signature v1';
const NO_ED25519 = 'signature not checked (no Ed25519 in this browser)';
const INFORMATIONAL = 'informational here: the page runs only the sandboxed wasm module, never native code';

async function keyFingerprint(key) { return 'ed25519:' + hex((await sha256(key)).subarray(0, 16)); }

function signedMessage(hdr, sigIndex, layers) {
  const dom = new TextEncoder().encode(SIG_DOMAIN);
  const m = new Uint8Array(dom.length + 1 + 64 + hdr.table.length + 4 + 32 * layers.length);
  let o = 0;
  m.set(dom, o); o += dom.length + 1; // with its NUL
  m.set(hdr.head, o); o += 64;
  m.set(hdr.table, o);
  m.fill(0, o + sigIndex * RECORD_SIZE + 72, o + sigIndex * RECORD_SIZE + 104); // the record's own hash
  o += hdr.table.length;
  new DataView(m.buffer).setUint32(o, layers.length, true); o += 4;
  for (const L of layers) { m.set(L.sha256, o); o += 32; } // (the page reads uncompressed bundles only)
  return m;
}

// {status: 'unsigned' | 'valid' | 'invalid' | 'unchecked', fingerprint, text}; sigBytes is
// the SIGNATURE section's content (its SHA-256 already checked), layers the parsed index.
export async function checkSignature(hdr, sigBytes, layers) {
  const idx = hdr.sections.findIndex((s) => s.kind === SEC.SIGNATURE);
  if (idx < 0) return { status: 'unsigned', fingerprint: '', text: 'signature: unsigned' };
  const result = (status, fingerprint, why) => ({ status, fingerprint, text:
      status === 'valid' ? `signature: valid, signer ${fingerprint} (${INFORMATIONAL})`
    : status === 'unchecked' ? `${NO_ED25519}; signer ${fingerprint} (${INFORMATIONAL})`
    : `signature: INVALID${fingerprint ? ` (signer ${fingerprint})` : ''}: ${why} (${INFORMATIONAL}; m64run refuses this bundle)` });
  if (hdr.sections.filter((s) => s.kind === SEC.SIGNATURE).length > 1) return result('invalid', '', 'the bundle has more than one signature section');
  const u8 = sigBytes, dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  if (u8.length !== 128) return result('invalid', '', 'the signature section has the wrong size');
  const key = u8.slice(16, 48), sig = u8.slice(48, 112), fp = await keyFingerprint(key);
  if (new TextDecoder().decode(u8.subarray(0, 8)) !== 'M64SIGN\0' || hdr.sections[idx].name !== 'signature')
    return result('invalid', fp, 'the signature section is malformed');
  if (dv.getUint32(8, true) !== 1 || dv.getUint32(12, true) !== 1 || u8.subarray(112).some((b) => b))
    return result('invalid', fp, 'the signature has a version or algorithm this page does not know');
  let pub;
  try {
    if (!globalThis.crypto?.subtle) return result('unchecked', fp);
    pub = await crypto.subtle.importKey('raw', key, { name: 'Ed25519' }, false, ['verify']);
  } catch (e) {
    if (e?.name === 'NotSupportedError') return result('unchecked', fp);
    return result('invalid', fp, `its key is not an Ed25519 key (${e?.message || e})`);
  }
  const ok = await crypto.subtle.verify({ name: 'Ed25519' }, pub, sig, signedMessage(hdr, idx, layers)).catch(() => false);
  return ok ? result('valid', fp) : result('invalid', fp, `the signature by ${fp} does not match the bundle: it was changed after it was signed`);
}

// The signature of the bundle at url, as the page reports it (for tools and tests).
export async function bundleSignature(url) {
  const hdr = await readHeader(url);
  const idxSec = hdr.sections.find((s) => s.kind === SEC.LAYER_INDEX), sigSec = hdr.sections.find((s) => s.kind === SEC.SIGNATURE);
  if (!idxSec) fail('bundle has no layer index');
  const segments = [];
  for (const s of hdr.sections) if (s.kind === SEC.SEGMENT) segments[Number(s.name.slice(8))] = s;
  const layers = parseLayerIndex(await readSection(url, idxSec), segments);
  return checkSignature(hdr, sigSec ? await readSection(url, sigSec) : null, layers);
}

function parseMetadata(bytes) {
  const meta = {};
  for (const line of new TextDecoder().decode(bytes).split('\n')) {
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const k = line.slice(0, eq).trim();
    if (!(k in meta)) meta[k] = line.slice(eq + 1).trim();
  }
  return meta;
}

// The workspace import's limits from the module's import section (the JS API does not
// expose them): {min, max, shared, i64} in pages, and flagAt, the offset of its flags byte.
function memoryImport(wasm) {
  let p = 8;
  const leb = () => {
    let r = 0, mul = 1, b;
    do {
      if (p >= wasm.length) fail('the wasm module is malformed');
      b = wasm[p++];
      r += (b & 0x7f) * mul;
      mul *= 128;
    } while (b & 0x80);
    return r;
  };
  const name = () => { const n = leb(); const s = new TextDecoder().decode(wasm.subarray(p, p + n)); p += n; return s; };
  const limits = () => {
    const flagAt = p, f = wasm[p++], min = leb(), max = f & 1 ? leb() : null;
    return { min, max, shared: !!(f & 2), i64: !!(f & 4), flagAt };
  };
  while (p < wasm.length) {
    const id = wasm[p++], size = leb(), end = p + size;
    if (id === 2) {
      for (let n = leb(); n > 0; n--) {
        const mod = name(), field = name(), kind = wasm[p++];
        if (kind === 0) leb();
        else if (kind === 1) { p++; limits(); }
        else if (kind === 2) { const l = limits(); if (mod === 'm64' && field === 'memory') return l; }
        else if (kind === 3) p += 2;
        else if (kind === 4) { p++; leb(); }
        else fail('the wasm module has an import of unknown kind');
      }
      break;
    }
    p = end;
  }
  fail('the wasm module does not import m64.memory (bundle built for module ABI 1? rebuild it with m64c build)');
}

/* ------------------------------------------------------------------ storage */

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
class Storage {
  constructor(segments, layers, forceArrayBuffers) {
    this.layers = layers;
    this.memory64 = false;
    this.reason = '';
    if (!forceArrayBuffers && WebAssembly.validate(MEMORY64_PROBE)) {
      const mems = [];
      for (const s of segments) {
        if (s.size > SEGMENT_MAX) fail(`segment ${s.name} is larger than 16 GiB`);
        const m = newMemory64(Math.max(1, Math.ceil(s.size / WASM_PAGE)));
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

/* ------------------------------------------------------------------ the pager */

// runtime/pager.c's policy: the globals layer pinned, blocks in equal slots; when they do
// not all fit, evict the block whose next use is farthest away in the fixed cycle.
class Pager {
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

function fullCache(layers) { return layers.reduce((a, L) => a + align64k(L.size), 0); }
function maxBlock(layers) { return layers.slice(1).reduce((a, L) => Math.max(a, align64k(L.size)), 0); }

/* ------------------------------------------------------------------ threads */
// More threads are more instances of the module over one shared workspace, each in its own
// Worker (m64_module.h, "Memory and threads"). The module never uses atomics: it publishes
// a job in memory and calls m64.parallel(); the host wakes the threads through control
// words in a SharedArrayBuffer, every thread claims shares of the job in turn (as
// runtime/session.c run_shares does), and parallel() returns when all are done.
// A browser shares a memory between Workers only if the module's import says `shared`, so
// the page compiles a copy of the module whose m64.memory import has the shared flag set:
// the same code and data (plain loads and stores are valid on a shared memory).

const THREAD_WORKER = 'm64-thread';
const WORKER_STACK = 256 * 1024;               // each extra instance's shadow stack
const SHARES_PER_THREAD = 4, MAX_SHARES = 64;  // as runtime/session.c; the module's MAX_THREADS
const MAX_THREADS = MAX_SHARES / SHARES_PER_THREAD;
const SPIN = 5000;                             // polls before a waiting thread sleeps
const CTL = { GEN: 0, NEXT: 1, SHARES: 2, PENDING: 3, FAILED: 4 };
const CTL_BYTES = 32, ERR_BYTES = 1024;

// A copy of the module's bytes whose m64.memory import is declared shared (it must have a
// maximum, as every m64c module's has).
function withSharedMemory(wasm, lim) {
  const copy = wasm.slice();
  copy[lim.flagAt] |= 2;
  return copy;
}

// Claims shares of the current job until none is left.
function runShares(x, c) {
  const n = Atomics.load(c, CTL.SHARES);
  for (let s; (s = Atomics.add(c, CTL.NEXT, 1)) < n;) x.m64_worker(s, n);
}

// The first failure of a job (kind 1: a trap, 2: another error) and its text for the
// caller; no share is claimed after it.
function recordFailure(c, errBytes, kind, text) {
  Atomics.store(c, CTL.NEXT, Atomics.load(c, CTL.SHARES));
  if (Atomics.compareExchange(c, CTL.FAILED, 0, kind) !== 0) return;
  const b = new TextEncoder().encode(text).subarray(0, ERR_BYTES - 4);
  new DataView(errBytes.buffer, errBytes.byteOffset).setUint32(0, b.length, true);
  errBytes.set(b, 4);
}

// Waits until c[i] != v: a short spin (a job is often a millisecond), then a sleep.
function waitWhile(c, i, v) {
  for (let k = 0; Atomics.load(c, i) === v; k++) if (k >= SPIN) Atomics.wait(c, i, v);
}

// The compute worker's side: starts the thread Workers and runs jobs with them.
class ThreadPool {
  // Resolves once n - 1 thread Workers have each instantiated mod over memory (before any
  // export runs: an instantiation re-writes the data segments).
  static async start(n, mod, memory, onLog) {
    const pool = new ThreadPool();
    pool.n = n;
    pool.sab = new SharedArrayBuffer(CTL_BYTES + ERR_BYTES);
    pool.ctl = new Int32Array(pool.sab, 0, CTL_BYTES / 4);
    pool.err = new Uint8Array(pool.sab, CTL_BYTES, ERR_BYTES);
    pool.workers = [];
    try {
      await Promise.all(Array.from({ length: n - 1 }, (_, i) => new Promise((resolve, reject) => {
        const w = new Worker(import.meta.url, { type: 'module', name: THREAD_WORKER });
        pool.workers.push(w);
        w.onmessage = (ev) => {
          const d = ev.data;
          if (d.type === 'ready') resolve();
          else if (d.type === 'log') onLog(d.text);
          else if (d.type === 'error') reject(new Error(d.message));
        };
        w.onerror = (ev) => { ev.preventDefault?.(); reject(new Error(ev.message || 'a thread worker could not start')); };
        w.postMessage({ type: 'thread', k: i + 1, module: mod, memory, sab: pool.sab });
      })));
    } catch (e) {
      pool.close();
      throw e;
    }
    return pool;
  }

  // Gives thread k (1..n-1) the stack whose top is top, and starts its loop.
  startThread(k, top) { this.workers[k - 1].postMessage({ type: 'start', stackTop: top, gen: Atomics.load(this.ctl, CTL.GEN) }); }

  // m64.parallel: every share of the published job, on this thread and the others.
  run(x, shares) {
    const c = this.ctl;
    Atomics.store(c, CTL.SHARES, shares);
    Atomics.store(c, CTL.NEXT, 0);
    Atomics.store(c, CTL.FAILED, 0);
    Atomics.store(c, CTL.PENDING, this.n - 1);
    Atomics.add(c, CTL.GEN, 1);
    Atomics.notify(c, CTL.GEN);
    let mine = null;
    try {
      runShares(x, c);
    } catch (e) {
      mine = e;
      Atomics.store(c, CTL.NEXT, shares);
    }
    for (let v; (v = Atomics.load(c, CTL.PENDING)) !== 0;) waitWhile(c, CTL.PENDING, v);
    if (mine) throw mine;
    const failed = Atomics.load(c, CTL.FAILED);
    if (failed) {
      const len = new DataView(this.sab, CTL_BYTES).getUint32(0, true);
      const text = new TextDecoder().decode(this.err.slice(4, 4 + len));
      throw failed === 1 ? new WebAssembly.RuntimeError(text) : new Error(text);
    }
  }

  close() { for (const w of this.workers) w.terminate(); }
}

// m64.log: the module's message at [ptr, ptr + len) of memory, posted as a log line.
const logImport = (memory, post) => (ptr, len) =>
  post({ type: 'log', text: new TextDecoder().decode(new Uint8Array(memory.buffer, ptr >>> 0, len >>> 0).slice()) });

// m64.prefetch(addr, bytes), a read-ahead hint the kernels give per block: wasm cannot
// prefetch, so a no-op — a wasm function, which the module calls without leaving wasm (a JS
// function would cost a boundary crossing per block). (module (func (export "f") (param i32 i32)))
const noPrefetch = new WebAssembly.Instance(new WebAssembly.Module(new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x06, 0x01, 0x60, 0x02, 0x7f, 0x7f, 0x00,
  0x03, 0x02, 0x01, 0x00, 0x07, 0x05, 0x01, 0x01, 0x66, 0x00, 0x00, 0x0a, 0x04, 0x01, 0x02, 0x00,
  0x0b]))).exports.f;

// m64.has_dot_i8 answers 0 (notHere): the kernels keep their plain SIMD128 path here, since the i8
// dot (relaxed SIMD, which a native host inlines as one instruction) would be a call to
// another instance per 16 bytes. m64.dot_i8 is then never called; a JS function cannot
// take its v128 arguments anyway, so one that is called throws.
const notHere = () => 0;
const dotI8Unused = () => { throw new Error('m64.dot_i8 was called though has_dot_i8 answered 0'); };
// m64.kq_rows and m64.kq_mat (a native host's wider K-quant rows, and their prefill)
// likewise: has_kq_rows and has_kq_mat answer 0.
const kqRowsUnused = () => { throw new Error('m64.kq_rows was called though has_kq_rows answered 0'); };
const kqMatUnused = () => { throw new Error('m64.kq_mat was called though has_kq_mat answered 0'); };
// m64.f16_* (one-instruction f16 steps) likewise: has_f16 answers 0; JS cannot take v128.
const f16Unused = () => { throw new Error('m64.f16_* was called though has_f16 answered 0'); };

// n events in ms milliseconds, per second (0 when there was no event or no time).
const perSecond = (n, ms) => (ms > 0 && n ? n / (ms / 1e3) : 0);

// The imports of an extra instance: the shared workspace; paging and parallel() belong
// to the main instance only.
function threadImports(mod, memory, post) {
  const m64 = {};
  for (const imp of WebAssembly.Module.imports(mod)) {
    if (imp.module !== 'm64') continue;
    if (imp.kind === 'memory') m64[imp.name] = memory;
    else if (imp.name === 'log') m64.log = logImport(memory, post);
    else if (imp.name === 'prefetch') m64.prefetch = noPrefetch;
    else if (imp.name === 'has_dot_i8' || imp.name === 'has_kq_rows' || imp.name === 'has_kq_mat' || imp.name === 'has_f16') m64[imp.name] = notHere;
    else if (imp.kind === 'function') m64[imp.name] = () => { throw new Error(`m64.${imp.name} was called on a worker thread`); };
  }
  return { m64 };
}

// A thread Worker: its own instance over the shared workspace, running shares of every
// job until the compute worker ends.
function threadWorker() {
  let x = null, c = null, errBytes = null, k = 0;
  onmessage = async (ev) => {
    const d = ev.data;
    if (d.type === 'thread') {
      k = d.k;
      c = new Int32Array(d.sab, 0, CTL_BYTES / 4);
      errBytes = new Uint8Array(d.sab, CTL_BYTES, ERR_BYTES);
      try {
        x = (await WebAssembly.instantiate(d.module, threadImports(d.module, d.memory, postMessage))).exports;
        if (!(x.__stack_pointer instanceof WebAssembly.Global)) throw new Error('the module does not export __stack_pointer');
        postMessage({ type: 'ready' });
      } catch (e) {
        postMessage({ type: 'error', message: `thread ${k}: ${e.message || e}` });
      }
    } else if (d.type === 'start') {
      x.__stack_pointer.value = d.stackTop;
      for (let gen = d.gen; ;) { // never returns: the worker ends with the compute worker
        waitWhile(c, CTL.GEN, gen);
        gen = Atomics.load(c, CTL.GEN);
        try {
          runShares(x, c);
        } catch (e) {
          recordFailure(c, errBytes, e instanceof WebAssembly.RuntimeError ? 1 : 2, `${e.message || e} (thread ${k})`);
        }
        if (Atomics.sub(c, CTL.PENDING, 1) === 1) Atomics.notify(c, CTL.PENDING);
      }
    }
  };
}

/* ------------------------------------------------------------------ worker side */

class Host {
  constructor(post) {
    this.post = post;
    this.openedAt = performance.now();
  }

  async open(url, o) {
    this.url = url;
    const hdr = await readHeader(url);
    const find = (kind, name) => hdr.sections.find((s) => s.kind === kind && (name == null || s.name === name));
    const wasmSec = find(SEC.MODULE_WASM), tokSec = find(SEC.TOKENIZER), idxSec = find(SEC.LAYER_INDEX, 'layers');
    if (!wasmSec) fail('bundle has no wasm module');
    if (!tokSec) fail('bundle has no tokenizer section');
    if (!idxSec) fail('bundle has no layer index');
    const segments = [];
    for (const s of hdr.sections) if (s.kind === SEC.SEGMENT) segments[Number(s.name.slice(8))] = s;
    for (let i = 0; i < segments.length; i++) if (!segments[i]) fail(`segment.${i} is missing`);

    const [meta, tok, idx, wasm] = await Promise.all([
      find(SEC.METADATA) ? readSection(url, find(SEC.METADATA)) : new Uint8Array(0),
      readSection(url, tokSec), readSection(url, idxSec), readSection(url, wasmSec)]);
    this.meta = parseMetadata(meta);
    this.layers = parseLayerIndex(idx, segments);
    const sigSec = find(SEC.SIGNATURE);
    this.signature = await checkSignature(hdr, sigSec ? await readSection(url, sigSec) : null, this.layers);
    this.post({ type: 'log', text: this.signature.text });
    this.segments = segments;
    this.verify = o.verify !== false;
    this.storage = new Storage(segments, this.layers, !!o.forceArrayBuffers);
    this.ready = new Uint8Array(this.layers.length); // 1 once downloaded and verified
    this.nReady = 0;
    this.imageCompleteMs = 0;
    this.waiters = new Map();
    this.downloadError = null;
    this.received = 0;
    this.totalImage = segments.reduce((a, s) => a + s.size, 0);
    this.jspi = typeof WebAssembly.Suspending === 'function' && typeof WebAssembly.promising === 'function' && !o.noStreaming;

    // The download runs alongside everything below; layer_acquire waits for a layer
    // that has not arrived yet (JSPI), or generation waits for all of them.
    this.downloaded = this.download().catch((e) => this.downloadFailed(e));

    const lim = memoryImport(wasm);
    if (lim.i64) fail('the module imports a memory64 workspace; this host expects wasm32');
    const cores = Math.max(1, Math.min(navigator.hardwareConcurrency || 1, MAX_THREADS));
    const asked = Math.min(Math.max(1, Math.floor(o.threads) || cores), MAX_THREADS);
    this.threads = 1;
    if (asked === 1) this.threadNote = 'one thread asked for';
    else if (!globalThis.crossOriginIsolated) this.threadNote = 'the page is not cross-origin isolated, so memory cannot be shared';
    else if (lim.max === null) this.threadNote = 'the module\'s memory has no maximum, so it cannot be shared';
    else this.threads = asked;
    const shared = lim.shared || this.threads > 1;
    const mod = await WebAssembly.compile(shared && !lim.shared ? withSharedMemory(wasm, lim) : wasm)
      .catch((e) => fail(`the bundle's wasm module does not compile here: ${e.message}`));
    const capPages = Math.min(MAX_WS_PAGES, lim.max ?? MAX_WS_PAGES,
      o.workspace ? Math.floor(o.workspace / WASM_PAGE) : MAX_WS_PAGES);
    if (capPages < lim.min) fail(`workspace of ${mib(o.workspace)} MiB is smaller than the module's static data (${mib(lim.min * WASM_PAGE)} MiB)`);
    this.memory = new WebAssembly.Memory({ initial: lim.min, maximum: capPages, ...(shared ? { shared: true } : {}) });

    const acquire = (l) => this.acquire(l);
    const imports = { m64: {
      memory: this.memory,
      layer_acquire: this.jspi ? new WebAssembly.Suspending(acquire) : acquire,
      layer_release: (l) => this.release(l),
      layer_prefetch: () => {}, // nothing can page ahead while the compute worker runs the module
      prefetch: noPrefetch,
      has_dot_i8: notHere,
      dot_i8: dotI8Unused,
      has_kq_rows: notHere,
      kq_rows: kqRowsUnused,
      has_kq_mat: notHere,
      kq_mat: kqMatUnused,
      has_f16: notHere,
      f16_round: f16Unused,
      f16_widen_lo: f16Unused,
      f16_widen_hi: f16Unused,
      log: logImport(this.memory, this.post),
      parallel: () => (this.pool ? this.pool.run(this.x, this.shares) : this.x.m64_worker(0, 1)),
    } };
    const inst = await WebAssembly.instantiate(mod, imports).catch((e) => fail(`cannot instantiate the module: ${e.message}`));
    this.x = inst.exports;
    if (this.threads > 1) {
      try {
        this.pool = await ThreadPool.start(this.threads, mod, this.memory, (text) => this.post({ type: 'log', text }));
        this.threadNote = `${this.threads} Workers share the workspace`;
      } catch (e) {
        this.threadNote = `thread Workers failed to start (${e.message})`;
        this.threads = 1;
      }
    }
    for (const f of ['m64_abi_version', 'm64_alloc', 'm64_init', 'm64_threads', 'm64_worker', 'm64_forward_batch',
      'm64_max_batch', 'm64_tok_load', 'm64_tok_encode', 'm64_tok_piece', 'm64_sample', 'm64_sampler_seed'])
      if (typeof this.x[f] !== 'function') fail(`the module does not export ${f}`);
    this.forwardBatch = this.jspi ? WebAssembly.promising(this.x.m64_forward_batch) : this.x.m64_forward_batch;

    const abi = this.x.m64_abi_version();
    if (abi < ABI_OLDEST || abi > ABI_NEWEST) fail(`module ABI version ${abi} (this page runs ${ABI_OLDEST}..${ABI_NEWEST})`);
    this.loadTokenizer(tok);
    this.setupState(o, capPages);
    if (!this.jspi) await this.downloaded;
    if (this.downloadError) throw this.downloadError;
    return this.describe();
  }

  alloc(n) { return this.x.m64_alloc(n) >>> 0; }
  bytes(addr, len) { return new Uint8Array(this.memory.buffer, addr, len); }

  loadTokenizer(tok) {
    const addr = this.alloc(tok.length);
    if (!addr) fail(`workspace too small for the tokenizer (${tok.length} bytes)`);
    this.bytes(addr, tok.length).set(tok);
    const rc = this.x.m64_tok_load(addr, tok.length);
    if (rc !== 0) fail(`the tokenizer section is invalid (${rc})`);
    this.bos = this.x.m64_tok_bos();
    this.eos = this.x.m64_tok_eos();
  }

  // As runtime/session.c setup_state: run state, one thread's scratch, I/O, then the
  // layer cache takes the rest of the workspace, up to the whole image.
  setupState(o, capPages) {
    const x = this.x;
    this.nVocab = x.m64_n_vocab() >>> 0;
    const nl = x.m64_n_layers() >>> 0;
    if (nl !== this.layers.length) fail(`module expects ${nl} layers, the image has ${this.layers.length}`);
    const ctxTrain = x.m64_n_ctx_train() >>> 0;
    this.maxBatch = x.m64_max_batch() >>> 0;
    if (this.maxBatch === 0 || this.maxBatch > 4096) fail(`module declares a batch of ${this.maxBatch}`);
    this.nCtx = o.nCtx || Math.min(ctxTrain, 4096) || 2048;
    const cap = capPages * WASM_PAGE;
    const init = x.m64_init(this.nCtx);
    if (init === -1)
      fail(`workspace of ${mib(cap)} MiB is too small for the run state of a context of ${this.nCtx} ` +
           `(${mib(x.m64_state_bytes(this.nCtx) >>> 0)} MiB; try a smaller context)`);
    if (init !== 0) fail(`the module could not allocate its state (${init})`);
    this.shares = this.threads > 1 ? Math.min(this.threads * SHARES_PER_THREAD, MAX_SHARES) : 1;
    if (x.m64_threads(this.shares) !== 0) fail(`workspace too small for ${this.threads} threads`);
    for (let k = 1; k < this.threads; k++) {
      const stack = this.alloc(WORKER_STACK);
      if (!stack) fail(`workspace too small for ${this.threads} threads' stacks`);
      this.pool.startThread(k, (stack + WORKER_STACK) & ~15);
    }
    this.io = this.alloc(IO_BYTES);
    if (!this.io) fail('workspace too small for I/O buffers');

    const layersTotal = fullCache(this.layers), largest = align64k(this.layers[0].size) + maxBlock(this.layers);
    const used = this.memory.buffer.byteLength + HEADROOM + WASM_PAGE;
    const want = Math.min(o.workspace ? cap : used + layersTotal, MAX_WS_PAGES * WASM_PAGE, cap);
    const room = Math.max(0, want - used);
    const cacheSize = Math.floor(Math.min(room, layersTotal) / WASM_PAGE) * WASM_PAGE;
    if (cacheSize < largest)
      fail(`workspace of ${mib(want)} MiB is too small: the run state (context ${this.nCtx}) takes ${mib(used)} MiB ` +
           `and the globals plus the largest block need ${mib(largest)} MiB (try a workspace of ${Math.ceil((used + largest) / 1048576) + 1} MiB or a smaller context)`);
    const base = this.alloc(cacheSize + WASM_PAGE);
    if (!base) fail(`could not reserve a layer cache of ${cacheSize} bytes`);
    this.cacheSize = cacheSize;
    this.pager = new Pager(this.layers, align64k(base), cacheSize);
  }

  describe() {
    return {
      name: this.meta['general.name'] || '', architecture: this.meta['general.architecture'] || '',
      nLayers: this.layers.length, nVocab: this.nVocab, nCtx: this.nCtx, imageBytes: this.totalImage,
      memory64: this.storage.memory64, storageNote: this.storage.memory64 ? `${this.segments.length} memory64 memor${this.segments.length > 1 ? 'ies' : 'y'}` : `ArrayBuffer per layer (${this.storage.reason})`,
      threads: this.threads, threadNote: this.threadNote, crossOriginIsolated: !!globalThis.crossOriginIsolated,
      streaming: this.jspi, verify: this.verify, hashInJs: hashInJs(), cacheBytes: this.cacheSize, cacheSlots: this.pager.slots.length,
      signature: this.signature,
      openMs: performance.now() - this.openedAt,
    };
  }

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

  progress() {
    this.post({ type: 'progress', received: this.received, total: this.totalImage, layersReady: this.nReady, nLayers: this.layers.length,
                memoryBytes: this.memoryBytes() });
  }

  // The download reports progress from its first chunk, which may come before the
  // workspace exists (the module is still compiling).
  memoryBytes() { return (this.memory ? this.memory.buffer.byteLength : 0) + this.storage.bytes; }

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

  /* ---- generation, as cmd/m64run.c does it ---- */
  tokenize(text, flags = 1) {
    const enc = new TextEncoder().encode(text);
    // ids: M64_TOK_MAX_IDS of m64_module.h (a space can be 3 byte tokens, issue 22)
    const len = enc.length, maxIds = 4 * len + 4, need = len + 4 + 4 * maxIds;
    let buf = this.io;
    if (need > IO_BYTES) {
      if (need > 0x40000000) fail(`prompt of ${len} bytes is too long`);
      buf = this.alloc(need);
      if (!buf) fail(`workspace too small for a prompt of ${len} bytes`);
    }
    const out = (buf + len + 3) & ~3, max = maxIds;
    this.bytes(buf, len).set(enc);
    const n = this.x.m64_tok_encode(buf, len, flags, out, max);
    if (n < 0 || n > max) fail(`tokenizer failed (${n})`);
    return Array.from(new Int32Array(this.memory.buffer, out, n));
  }

  // End of generation: EOS, <|eot_id|>, <|im_end|> ... (modules before m64_tok_is_eog: EOS).
  isEog(id) { return this.x.m64_tok_is_eog ? this.x.m64_tok_is_eog(id) !== 0 : id === this.eos; }

  // The bytes of token id after prev (a copy).
  piece(prev, id) {
    const len = this.x.m64_tok_piece(prev, id, this.io, 1024);
    if (len < 0) fail(`token ${id} has no text`);
    return this.bytes(this.io, Math.min(len, 1024)).slice();
  }

  // The id of the token spelled exactly text, or -1.
  findToken(text) {
    if (!this.x.m64_tok_find) return -1;
    const enc = new TextEncoder().encode(text);
    this.bytes(this.io, enc.length).set(enc);
    return this.x.m64_tok_find(this.io, enc.length);
  }

  /* ---- chat: the formats of runtime/chat.c, written the same way ---- */
  // A turn as ids: text runs between special tokens are tokenized whole and plain (typed
  // special-token text stays text); a template marker is its token where there is one.
  chatIds(parts) {
    const ids = [];
    let run = '';
    const flush = () => { if (run) ids.push(...this.tokenize(run, 0)); run = ''; };
    for (const p of parts) {
      if (p.bos) ids.push(...this.tokenize('', 1));
      else if (p.marker !== undefined) {
        const id = this.findToken(p.marker);
        if (id < 0) run += p.marker;
        else { flush(); ids.push(id); }
      } else run += p.text;
    }
    flush();
    return ids;
  }

  chatTurn(kind, c, message, system) {
    const M = (m) => ({ marker: m }), T = (t) => ({ text: t });
    const parts = c.started ? [] : [{ bos: true }];
    const zEnd = c.zephyrEnd;
    const msg = (role, text) => kind === 'llama3' ? [M('<|start_header_id|>'), T(role), M('<|end_header_id|>'), T('\n\n' + text.trim()), M('<|eot_id|>')]
      : kind === 'chatml' ? [M('<|im_start|>'), T(role + '\n' + text), M('<|im_end|>'), T('\n')]
      : [M(`<|${role}|>`), T('\n' + text), M(zEnd), T('\n')];
    if (kind === 'llama3' || kind === 'chatml' || kind === 'zephyr') {
      if (system) parts.push(...msg('system', system));
      parts.push(...msg('user', message));
      parts.push(...(kind === 'llama3' ? [M('<|start_header_id|>'), T('assistant'), M('<|end_header_id|>'), T('\n\n')]
        : kind === 'chatml' ? [M('<|im_start|>'), T('assistant\n')] : [M('<|assistant|>'), T('\n')]));
    } else if (kind === 'llama2') {
      if (c.started) parts.push(M('<s>'));
      parts.push(T('[INST] ' + (system ? `<<SYS>>\n${system}\n<</SYS>>\n\n` : '') + message + ' [/INST]'));
    } else { // mistral
      parts.push(T('[INST] ' + (system ? system + '\n\n' : '') + message + ' [/INST]'));
    }
    return this.chatIds(parts);
  }

  chatEnd(kind, zEnd) {
    const M = (m) => ({ marker: m }), T = (t) => ({ text: t });
    return this.chatIds(kind === 'llama3' ? [M('<|eot_id|>')] : kind === 'chatml' ? [M('<|im_end|>'), T('\n')]
      : kind === 'zephyr' ? [M(zEnd), T('\n')] : [M('</s>')]);
  }

  async chat(message, o) {
    if (this.downloadError) throw this.downloadError;
    const kind = o.template || this.meta['chat.template'] || 'none';
    if (!['llama3', 'chatml', 'llama2', 'mistral', 'zephyr'].includes(kind))
      fail(`this model's chat template (${kind}) is not one m64 knows (known: llama3, chatml, llama2, mistral, zephyr)`);
    // Zephyr-style messages end with EOS "</s>", or "<|endoftext|>" where that is a token
    const c = this.chatState ||
      (this.chatState = { started: false, pos: 0, zephyrEnd: this.findToken('<|endoftext|>') >= 0 ? '<|endoftext|>' : '</s>' });
    const n = o.n ?? -1, temp = o.temp ?? 0.8, topK = o.topK ?? 40, topP = o.topP ?? 0.95;
    if (!c.started) {
      const seed = BigInt.asUintN(64, BigInt(o.seed ?? Date.now()));
      this.x.m64_sampler_seed(Number(seed & 0xffffffffn), Number(seed >> 32n));
    }
    const t0 = performance.now(), pos0 = c.pos;
    const ids = this.chatTurn(kind, c, String(message), c.started ? '' : (o.system || ''));
    if (c.pos + ids.length >= this.nCtx) fail(`the conversation filled the context of ${this.nCtx} tokens`);
    let logits = await this.evalBatch(ids, c.pos);
    c.pos += ids.length;
    c.started = true;
    const tPrefill = performance.now() - t0, t1 = performance.now(), out = [], dec = new TextDecoder('utf-8');
    let text = '', prev = -1, last = -1, firstTokenMs = 0, passes = 0; // decode rate: forward passes / time
    while ((n < 0 || out.length < n) && c.pos < this.nCtx) {
      const id = this.x.m64_sample(logits, temp, topK, topP);
      if (id < 0 || id >= this.nVocab) fail(`sampler returned ${id}`);
      if (!firstTokenMs) firstTokenMs = performance.now() - t0;
      logits = await this.evalBatch([id], c.pos); // the reply becomes part of the history
      c.pos++;
      passes++;
      last = id;
      if (this.isEog(id)) break;
      out.push(id);
      const piece = dec.decode(this.piece(prev, id), { stream: true });
      prev = id;
      text += piece;
      if (piece) this.post({ type: 'token', text: piece });
    }
    const tail = dec.decode();
    if (tail) { text += tail; this.post({ type: 'token', text: tail }); }
    const tDecode = performance.now() - t1;
    let end = this.chatEnd(kind, c.zephyrEnd);
    if (end.length && end[0] === last) end = end.slice(1); // the model closed the turn itself
    if (end.length && c.pos + end.length <= this.nCtx) { await this.evalBatch(end, c.pos); c.pos += end.length; }
    this.progress();
    return {
      text, tokens: out, turnTokens: ids, pos: pos0, endTokens: end, template: kind,
      prefillTokS: perSecond(ids.length, tPrefill),
      decodeTokS: perSecond(passes, tDecode), firstTokenMs,
      stats: { ...this.pager.st, cacheSlots: this.pager.slots.length, workspaceBytes: this.memory.buffer.byteLength,
               memoryBytes: this.memoryBytes(), downloadedBytes: this.received },
    };
  }

  async evalBatch(tokens, pos0) {
    let logits = 0;
    for (let done = 0; done < tokens.length;) {
      const k = Math.min(tokens.length - done, this.maxBatch);
      for (let i = 0; i < k; i++)
        if (tokens[done + i] < 0 || tokens[done + i] >= this.nVocab) fail(`token ${tokens[done + i]} outside the vocabulary of ${this.nVocab}`);
      if (pos0 + done + k > this.nCtx) fail(`positions up to ${pos0 + done + k} beyond the context of ${this.nCtx}`);
      new Int32Array(this.memory.buffer, this.io, k).set(tokens.slice(done, done + k));
      logits = (await this.forwardBatch(this.io, k, pos0 + done)) >>> 0;
      if (logits + 4 * this.nVocab > this.memory.buffer.byteLength) fail('module returned logits outside its memory');
      done += k;
    }
    return logits;
  }

  async generate(prompt, o) {
    if (this.downloadError) throw this.downloadError;
    const n = o.n ?? 128, temp = o.temp ?? 0.8, topK = o.topK ?? 40, topP = o.topP ?? 0.95;
    const seed = BigInt.asUintN(64, BigInt(o.seed ?? Date.now()));
    this.x.m64_sampler_seed(Number(seed & 0xffffffffn), Number(seed >> 32n));
    const t0 = performance.now();
    const ids = this.tokenize(prompt);
    if (ids.length >= this.nCtx) fail(`prompt of ${ids.length} tokens does not fit the context of ${this.nCtx}`);
    const nPredict = n < 0 || n > this.nCtx - ids.length ? this.nCtx - ids.length : n;
    let logits = await this.evalBatch(ids, 0);
    const tPrefill = performance.now() - t0;

    const t1 = performance.now(), out = [], dec = new TextDecoder('utf-8');
    // decode rate: forward passes / time (n tokens take n - 1: the first comes from the prefill)
    let text = '', prev = ids[ids.length - 1], firstTokenMs = 0, firstTokenSinceOpenMs = 0, passes = 0;
    for (let pos = ids.length; out.length < nPredict; pos++) {
      const id = this.x.m64_sample(logits, temp, topK, topP);
      if (id < 0 || id >= this.nVocab) fail(`sampler returned ${id}`);
      if (out.length === 0) { firstTokenMs = performance.now() - t0; firstTokenSinceOpenMs = performance.now() - this.openedAt; }
      if (this.isEog(id)) break;
      out.push(id);
      const piece = dec.decode(this.piece(prev, id), { stream: true });
      text += piece;
      if (piece) this.post({ type: 'token', text: piece });
      prev = id;
      if (out.length === nPredict || pos + 1 >= this.nCtx) break;
      logits = await this.evalBatch([id], pos);
      passes++;
    }
    const tail = dec.decode();
    if (tail) { text += tail; this.post({ type: 'token', text: tail }); }
    const tDecode = performance.now() - t1;
    this.progress();
    return {
      text, tokens: out, promptTokens: ids,
      prefillTokS: perSecond(ids.length, tPrefill),
      decodeTokS: perSecond(passes, tDecode),
      firstTokenMs, firstTokenSinceOpenMs, imageCompleteMs: this.imageCompleteMs,
      stats: { ...this.pager.st, cacheSlots: this.pager.slots.length, workspaceBytes: this.memory.buffer.byteLength,
               memoryBytes: this.memoryBytes(), downloadedBytes: this.received },
    };
  }
}

// Worker entry: a thread Worker, or the compute worker (one host; requests are answered in order).
if (typeof WorkerGlobalScope !== 'undefined' && globalThis instanceof WorkerGlobalScope && globalThis.name === THREAD_WORKER) {
  threadWorker();
} else if (typeof WorkerGlobalScope !== 'undefined' && globalThis instanceof WorkerGlobalScope) {
  const post = (m) => postMessage(m);
  const host = new Host(post);
  let opened = false, dead = false;
  let queue = Promise.resolve();
  onmessage = (ev) => {
    const d = ev.data;
    queue = queue.then(async () => {
      if (dead) return;
      try {
        if (d.type === 'open' && !opened) {
          opened = true;
          post({ type: 'done', result: await host.open(d.url, d.options || {}) });
        } else if (d.type === 'generate' && opened) {
          post({ type: 'done', result: await host.generate(String(d.prompt), d.options || {}) });
        } else if (d.type === 'chat' && opened) {
          post({ type: 'done', result: await host.chat(String(d.message), d.options || {}) });
        } else post({ type: 'error', message: `unexpected request ${d.type}` });
      } catch (e) {
        // A trap or a failed open leaves the instance unusable, as natively.
        dead = true;
        const msg = e instanceof BundleError ? e.message
          : e instanceof WebAssembly.RuntimeError ? `wasm trap in the model module: ${e.message}` : String(e?.message || e);
        post({ type: 'error', message: msg, fatal: true });
      }
    });
  };
}
