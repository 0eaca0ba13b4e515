// m64.js — mirrors runtime/m64_runtime.h (the host's public API): the page imports it and calls M64.open(url);
// a module Worker (worker.js) does the work, so the page never freezes. In the worker the host:
//   - reads the bundle's header, section table and small sections with HTTP Range requests
//     and checks their SHA-256 (docs/FORMAT.md);
//   - streams each image segment into a memory64 WebAssembly.Memory (one per <= 16 GiB
//     segment; plain ArrayBuffers per layer where memory64 is missing), hashing each
//     layer as its last byte arrives;
//   - instantiates the bundle's wasm module over a wasm32 workspace it creates, and
//     implements the module's imports as runtime/session.c and runtime/pager.c do:
//     layer_acquire copies a layer from storage into a slot of the workspace's layer
//     cache, evicting the block whose next use is farthest away in the layer cycle.
// The model's math, tokenizer and sampler stay in the module (compiler/module/m64_module.h);
// this file only moves bytes and reports.
//
// Where the browser has JS Promise Integration (WebAssembly.Suspending), layer_acquire may
// suspend the forward pass until a layer's bytes have arrived, so generation starts while
// later layers still stream in. Without it, the whole image is downloaded first.
// Plain ES modules, no framework, no bundler; each file says which C file it mirrors.
export { sha256Js } from './sha256.js';
export { bundleSignature, checkSignature } from './signature.js';


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
  // layer's SHA-256, default true), forceArrayBuffers (storage without memory64, for tests),
  // noRelaxed (run the SIMD128 module even where the relaxed-SIMD one would run), stream
  // (true: hold no image, read each layer from the server when the module needs it and the
  // workspace's cache lacks it, for models larger than the page may hold; false: hold the
  // image; unset: stream when the image is more than half of navigator.deviceMemory, or of
  // holdLimit bytes x 2 where given, and the browser has JSPI),
  // timeoutMs (how long a read waits for the server before the open fails, default 30000).
  // Resolves when generation can start (possibly before every layer has arrived).
  // onprogress, onlog and onerror (a failure outside a request, e.g. of the download)
  // may be given here too.
  static open(url, options = {}) {
    const { onprogress, onlog, onerror, ...rest } = options;
    const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: 'm64' });
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
  // topK (40), topP (0.95), minP (0.05), repeatPenalty (1 = off), repeatLastN (64; -1 = the
  // context), presencePenalty (0), frequencyPenalty (0), ignoreEos (false): llama.cpp's
  // sampler chain as m64run's; seed; onToken(text) receives the text as it is produced.
  // Resolves with {text, tokens, promptTokens, stopped (by stop()), prefillTokS, decodeTokS, firstTokenMs,
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

  // Ends the generation or chat turn that runs now after its current token; it resolves
  // as usual, with stopped: true. Nothing to stop: nothing happens.
  stop() { if (this.pending && !this.failed) this.worker.postMessage({ type: 'stop' }); }

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
