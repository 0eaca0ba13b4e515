// threads.js — mirrors runtime/session.c's thread pool (run_shares): a JS twin because browser threads are Workers woken through a SharedArrayBuffer.
import { threadImports } from './imports.js';

// More threads are more instances of the module over one shared workspace, each in its own
// Worker (m64_module.h, "Memory and threads"). The module never uses atomics: it publishes
// a job in memory and calls m64.parallel(); the host wakes the threads through control
// words in a SharedArrayBuffer, every thread claims shares of the job in turn (as
// runtime/session.c run_shares does), and parallel() returns when all are done.
// A browser shares a memory between Workers only if the module's import says `shared`, so
// the page compiles a copy of the module whose m64.memory import has the shared flag set:
// the same code and data (plain loads and stores are valid on a shared memory).

export const THREAD_WORKER = 'm64-thread';
export const WORKER_STACK = 256 * 1024;               // each extra instance's shadow stack
export const SHARES_PER_THREAD = 4, MAX_SHARES = 64;  // as runtime/session.c; the module's MAX_THREADS
export const MAX_THREADS = MAX_SHARES / SHARES_PER_THREAD;
const SPIN = 5000;                             // polls before a waiting thread sleeps
const CTL = { GEN: 0, NEXT: 1, SHARES: 2, PENDING: 3, FAILED: 4 };
const CTL_BYTES = 32, ERR_BYTES = 1024;

// A copy of the module's bytes whose m64.memory import is declared shared (it must have a
// maximum, as every m64c module's has).
export function withSharedMemory(wasm, lim) {
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
export class ThreadPool {
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

// This file is also the thread Workers' entry (ThreadPool.start starts it by its own URL).
if (typeof WorkerGlobalScope !== 'undefined' && globalThis instanceof WorkerGlobalScope && globalThis.name === THREAD_WORKER) threadWorker();
