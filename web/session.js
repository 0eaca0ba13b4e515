// session.js — mirrors runtime/session.c (open a bundle, instantiate its module over a workspace, size that workspace, generate as cmd/m64run.c does): a JS twin because the page's module is instantiated by the browser in a Worker.
import { WASM_PAGE, fail, mib, mixin, perSecond } from './common.js';
import { SEC, parseLayerIndex, parseMetadata, readHeader, readSection } from './bundle_reader.js';
import { Chat } from './chat.js';
import { Downloading } from './download.js';
import { PAGE_ABI, REQUIRED_EXPORTS } from './exports.js';
import { dotI8Unused, f16Unused, kqMatUnused, kqRowsUnused, logImport, memoryImport, noPrefetch, notHere } from './imports.js';
import { Pager, Paging } from './pager.js';
import { DEFAULT_TIMEOUT_MS } from './http_range.js';
import { hashInJs } from './sha256.js';
import { checkSignature } from './signature.js';
import { Storage } from './storage.js';
import { Streaming, checkStreaming } from './stream.js';
import { Zstd } from './zstd.js';
import { MAX_SHARES, MAX_THREADS, SHARES_PER_THREAD, ThreadPool, WORKER_STACK, withSharedMemory } from './threads.js';

const IO_BYTES = 64 * 1024; // text in, ids out, pieces (as runtime/session.c)
const MAX_WS_PAGES = 65536; // 4 GiB: the whole wasm32 address space
const RELAXED_MODULE = 'module.relaxed'; // m64_formats.h's M64_RELAXED_MODULE
// A module whose one function is i32x4.relaxed_dot_i8x16_i7x16_add_s of three zero vectors:
// it validates where the browser has relaxed SIMD.
const RELAXED_SIMD_PROBE = new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 1, 5, 1, 0x60, 0, 1, 0x7b, 3, 2, 1, 0,
  10, 61, 1, 59, 0, ...[0, 1, 2].flatMap(() => [0xfd, 0x0c, ...new Array(16).fill(0)]), 0xfd, 0x93, 0x02, 0x0b]);
const YIELD_MS = 50; // how often generation looks for a Stop: a few % of a 1 ms token at most

export class Host {
  constructor(post) {
    this.post = post;
    this.openedAt = performance.now();
  }

  async open(url, o) {
    this.url = url;
    this.timeoutMs = o.timeoutMs > 0 ? o.timeoutMs : DEFAULT_TIMEOUT_MS;
    const hdr = await readHeader(url, this.timeoutMs);
    const find = (kind, name) => hdr.sections.find((s) => s.kind === kind && (name == null || s.name === name));
    const plainSec = find(SEC.MODULE_WASM), tokSec = find(SEC.TOKENIZER), idxSec = find(SEC.LAYER_INDEX, 'layers');
    if (!plainSec) fail('bundle has no wasm module');
    // The module's relaxed-SIMD variant (its i8 dot is one instruction: VNNI, SDOT) where
    // this browser has relaxed SIMD and the bundle carries it; the SIMD128 module otherwise.
    const relaxedSec = find(SEC.MODULE_WASM, RELAXED_MODULE);
    const relaxedHere = WebAssembly.validate(RELAXED_SIMD_PROBE);
    const wasmSec = relaxedSec && relaxedHere && !o.noRelaxed ? relaxedSec : plainSec;
    this.moduleNote = wasmSec === relaxedSec ? 'relaxed SIMD (i8 dot product)'
      : `SIMD128 (${o.noRelaxed ? 'relaxed SIMD turned off' : !relaxedSec ? 'the bundle has no relaxed-SIMD module' : 'this browser lacks relaxed SIMD'})`;
    if (!tokSec) fail('bundle has no tokenizer section');
    if (!idxSec) fail('bundle has no layer index');
    const segments = [];
    for (const s of hdr.sections) if (s.kind === SEC.SEGMENT) segments[Number(s.name.slice(8))] = s;
    for (let i = 0; i < segments.length; i++) if (!segments[i]) fail(`segment.${i} is missing`);

    // A compressed bundle's sections and layers are decoded by zstd's own decompressor,
    // compiled to wasm (zstd.js); o.zstdUrl says where it is served.
    this.compressed = hdr.compressed;
    const z = this.compressed ? (this.zstd = await Zstd.load(o.zstdUrl || new URL('./zstd_decoder.wasm', import.meta.url).href, this.timeoutMs)) : null;
    const read = (sec) => readSection(url, sec, this.timeoutMs, z);
    // one at a time when they share the decoder's memory
    const [meta, tok, idx, wasm] = z
      ? [find(SEC.METADATA) ? await read(find(SEC.METADATA)) : new Uint8Array(0), await read(tokSec), await read(idxSec), await read(wasmSec)]
      : await Promise.all([find(SEC.METADATA) ? read(find(SEC.METADATA)) : new Uint8Array(0), read(tokSec), read(idxSec), read(wasmSec)]);
    this.meta = parseMetadata(meta);
    ({ layers: this.layers, tensors: this.tensors } = parseLayerIndex(idx, segments, this.compressed));
    const sigSec = find(SEC.SIGNATURE);
    this.signature = await checkSignature(hdr, sigSec ? await read(sigSec) : null, this.layers);
    this.post({ type: 'log', text: this.signature.text });
    this.segments = segments;
    this.verify = o.verify !== false;
    this.ready = new Uint8Array(this.layers.length); // 1 once downloaded and verified
    this.nReady = 0;
    this.imageCompleteMs = 0;
    this.waiters = new Map();
    this.downloadError = null;
    this.received = 0;
    this.totalImage = segments.reduce((a, s) => a + s.size, 0);
    this.jspi = typeof WebAssembly.Suspending === 'function' && typeof WebAssembly.promising === 'function' && !o.noStreaming;
    // stream: no image in the page; each layer is read from the server when the module asks
    // for it and is not cached (stream.js). Otherwise the download runs alongside
    // everything below; layer_acquire waits for a layer that has not arrived yet (JSPI), or
    // generation waits for all of them. Unless asked either way (stream true or false), the
    // page streams when holding the image would take more than half of this device's memory
    // (navigator.deviceMemory; o.holdLimit in bytes instead, for tests): a tab that commits
    // that much is the one the system kills first (bench/web/limits.mjs: reserving is free,
    // every byte written is resident).
    const rawImage = (this.rawImage = segments.reduce((a, sg) => a + sg.rawSize, 0));
    const holdLimit = o.holdLimit || (navigator.deviceMemory ? navigator.deviceMemory * 2 ** 30 / 2 : Infinity);
    this.streaming = o.stream === true || (o.stream === undefined && this.jspi && rawImage > holdLimit);
    this.streamReason = o.stream === true ? 'asked for' : this.streaming
      ? `the image (${(rawImage / 2 ** 30).toFixed(2)} GiB) is more than half of this device's memory (${(holdLimit * 2 / 2 ** 30).toFixed(2)} GiB)` : '';
    this.layerReads = 0;
    if (this.streaming) {
      checkStreaming(this.jspi);
      this.storage = null;
      this.inFlight = new Map();
      this.downloaded = Promise.resolve();
    } else {
      this.storage = new Storage(segments, this.layers, !!o.forceArrayBuffers);
      this.downloaded = this.download().catch((e) => this.downloadFailed(e));
    }

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
    // before the exports: a module of another ABI lacks some (or has others)
    const abi = this.x.m64_abi_version();
    if (abi !== PAGE_ABI)
      fail(`module ABI version ${abi}: this page runs ${PAGE_ABI} (its module keeps the layer cache's policy); rebuild the bundle with \`m64c build\``);
    for (const f of REQUIRED_EXPORTS)
      if (typeof this.x[f] !== 'function') fail(`the module does not export ${f}`);
    this.forwardBatch = this.jspi ? WebAssembly.promising(this.x.m64_forward_batch) : this.x.m64_forward_batch;

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

    // as formats/bundle/reader.c checks: globals, the blocks, then each block's experts
    const nBlocks = Number(this.meta['model.n_blocks'] || this.layers.length - 1), nExperts = Number(this.meta['model.n_experts'] || 0);
    if (!Number.isInteger(nBlocks) || !Number.isInteger(nExperts) || nExperts > 256 || nBlocks * (1 + nExperts) + 1 !== this.layers.length)
      fail(`metadata model.n_blocks = ${this.meta['model.n_blocks']} and model.n_experts = ${nExperts}, but the layer index has ${this.layers.length} layers`);
    // The module sizes its layer cache and cuts it into slots (module/cache.h), as m64run's
    // pager does with the same code; it reads each layer's size in pages from here.
    const n = this.layers.length, bytes = n * 4 + 20;
    const buf = bytes <= IO_BYTES ? this.io : this.alloc(bytes);
    if (!buf) fail(`workspace too small for the layer index (${n} layers)`);
    new Uint32Array(this.memory.buffer, buf, n).set(this.layers.map((L) => Math.min(Math.ceil(L.size / WASM_PAGE), 0xffffffff)));
    const cache = x.m64_cache_open(buf, n, nBlocks, capPages, o.workspace ? 1 : 0, buf + n * 4) >>> 0;
    const [want, taken, least, suggest, cachePages] = new Uint32Array(this.memory.buffer, buf + n * 4, 5); // after any growth
    if (!cache && suggest)
      fail(`workspace of ${mib(want * WASM_PAGE)} MiB is too small: the run state (context ${this.nCtx}) takes ${mib(taken * WASM_PAGE)} MiB ` +
           `and the globals plus the largest block need ${mib(least * WASM_PAGE)} MiB (try a workspace of ${suggest} MiB or a smaller context)`);
    if (!cache) fail(`could not reserve a layer cache of ${mib(cachePages * WASM_PAGE)} MiB`);
    this.cacheSize = cachePages * WASM_PAGE;
    this.pager = new Pager(x, cache, nBlocks);
  }

  describe() {
    return {
      name: this.meta['general.name'] || '', architecture: this.meta['general.architecture'] || '',
      nLayers: this.layers.length, nVocab: this.nVocab, nCtx: this.nCtx, imageBytes: this.totalImage, rawImageBytes: this.rawImage,
      memory64: !!this.storage?.memory64, streamed: this.streaming,
      storageNote: this.streaming ? `no image held (${this.streamReason}); each layer is read from the server when the module needs it and the cache lacks it`
        : this.storage.memory64 ? `${this.segments.length} memory64 memor${this.segments.length > 1 ? 'ies' : 'y'}` : `ArrayBuffer per layer (${this.storage.reason})`,
      threads: this.threads, threadNote: this.threadNote, crossOriginIsolated: !!globalThis.crossOriginIsolated,
      relaxedSimd: this.moduleNote.startsWith('relaxed'), moduleNote: this.moduleNote,
      streaming: this.jspi, verify: this.verify, compressed: this.compressed, hashInJs: hashInJs(), cacheBytes: this.cacheSize, cacheSlots: this.pager.nSlots,
      signature: this.signature,
      openMs: performance.now() - this.openedAt,
    };
  }


  progress() {
    this.post({ type: 'progress', received: this.received, total: this.totalImage, layersReady: this.nReady, nLayers: this.layers.length,
                memoryBytes: this.memoryBytes() });
  }

  // The download reports progress from its first chunk, which may come before the
  // workspace exists (the module is still compiling).
  memoryBytes() {
    return (this.memory ? this.memory.buffer.byteLength : 0) + (this.streaming ? this.streamedBytes() : this.storage.bytes);
  }

  /* ---- generation, as cmd/m64run.c does it ---- */
  tokenize(text, flags = 1) {
    const enc = new TextEncoder().encode(text);
    // ids: the module's M64_TOK_MAX_IDS (a space can be 3 byte tokens, issue 22)
    const len = enc.length, maxIds = this.x.m64_tok_max_ids(len) >>> 0, need = len + 4 + 4 * maxIds;
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

  // End of generation: EOS, <|eot_id|>, <|im_end|> ...
  isEog(id) { return this.x.m64_tok_is_eog(id) !== 0; }

  // The next id from logits with the options' sampling (m64run's flags), the penalties over
  // the last repeatLastN ids of hist (the context so far).
  sample(logits, o, hist) {
    const temp = o.temp ?? 0.8, topK = o.topK ?? 40, topP = o.topP ?? 0.95, minP = o.minP ?? 0.05;
    const rep = o.repeatPenalty ?? 1, pres = o.presencePenalty ?? 0, freq = o.frequencyPenalty ?? 0;
    const lastN = o.repeatLastN ?? 64, noEog = o.ignoreEos ? 1 : 0;
    const penal = lastN !== 0 && (rep !== 1 || pres !== 0 || freq !== 0);
    const n = !penal ? 0 : Math.min(hist.length, lastN < 0 ? hist.length : lastN, IO_BYTES / 4);
    if (n) new Int32Array(this.memory.buffer, this.io, n).set(hist.slice(hist.length - n));
    const id = this.x.m64_sample_ex(logits, temp, topK, topP, minP, rep, pres, freq, this.io, n, noEog);
    if (id < 0 || id >= this.nVocab) fail(`sampler returned ${id}`);
    return id;
  }

  // The bytes of token id after prev (a copy).
  piece(prev, id) {
    const len = this.x.m64_tok_piece(prev, id, this.io, 1024);
    if (len < 0) fail(`token ${id} has no text`);
    return this.bytes(this.io, Math.min(len, 1024)).slice();
  }

  // The id of the token spelled exactly text, or -1.
  findToken(text) {
    const enc = new TextEncoder().encode(text);
    this.bytes(this.io, enc.length).set(enc);
    return this.x.m64_tok_find(this.io, enc.length);
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

  // Stop (M64.stop): the Worker's message handler sets stopRequested, but only runs when
  // generation lets the event loop turn, which stopAsked does every YIELD_MS.
  startStoppable() {
    this.stopRequested = false;
    this.lastYield = performance.now();
  }

  async stopAsked() {
    if (performance.now() - this.lastYield >= YIELD_MS) {
      await new Promise((resolve) => setTimeout(resolve, 0));
      this.lastYield = performance.now();
    }
    return this.stopRequested;
  }

  async generate(prompt, o) {
    if (this.downloadError) throw this.downloadError;
    const n = o.n ?? 128;
    const seed = BigInt.asUintN(64, BigInt(o.seed ?? Date.now()));
    this.x.m64_sampler_seed(Number(seed & 0xffffffffn), Number(seed >> 32n));
    this.startStoppable();
    const t0 = performance.now();
    const ids = this.tokenize(prompt);
    if (ids.length >= this.nCtx) fail(`prompt of ${ids.length} tokens does not fit the context of ${this.nCtx}`);
    const nPredict = n < 0 || n > this.nCtx - ids.length ? this.nCtx - ids.length : n;
    let logits = await this.evalBatch(ids, 0);
    const tPrefill = performance.now() - t0;

    const t1 = performance.now(), out = [], dec = new TextDecoder('utf-8');
    // decode rate: forward passes / time (n tokens take n - 1: the first comes from the prefill)
    let text = '', prev = ids[ids.length - 1], firstTokenMs = 0, firstTokenSinceOpenMs = 0, passes = 0, stopped = false;
    for (let pos = ids.length; out.length < nPredict; pos++) {
      const id = this.sample(logits, o, out.length ? ids.concat(out) : ids);
      if (out.length === 0) { firstTokenMs = performance.now() - t0; firstTokenSinceOpenMs = performance.now() - this.openedAt; }
      if (this.isEog(id)) break;
      out.push(id);
      const piece = dec.decode(this.piece(prev, id), { stream: true });
      text += piece;
      if (piece) this.post({ type: 'token', text: piece });
      prev = id;
      if (out.length === nPredict || pos + 1 >= this.nCtx) break;
      if (await this.stopAsked()) { stopped = true; break; }
      logits = await this.evalBatch([id], pos);
      passes++;
    }
    const tail = dec.decode();
    if (tail) { text += tail; this.post({ type: 'token', text: tail }); }
    const tDecode = performance.now() - t1;
    this.progress();
    return {
      text, tokens: out, promptTokens: ids, stopped,
      prefillTokS: perSecond(ids.length, tPrefill),
      decodeTokS: perSecond(passes, tDecode),
      firstTokenMs, firstTokenSinceOpenMs, imageCompleteMs: this.imageCompleteMs,
      stats: { ...this.pager.st, layerReads: this.layerReads, cacheSlots: this.pager.nSlots, workspaceBytes: this.memory.buffer.byteLength,
               memoryBytes: this.memoryBytes(), downloadedBytes: this.received },
    };
  }
}

mixin(Host, Downloading, Paging, Streaming, Chat);
