// limits.mjs — what headless Chromium lets a page do with WebAssembly memories: the largest
// memory64 maximum/initial, how far one memory64 memory grows, how many 16 GiB memories
// (M64_SEGMENT_MAX, the page's segment size) exist at once, how much of one can really be
// written, the wasm32 limits (shared and not), and the largest ArrayBuffer. Each measured
// on a page's main thread and in a dedicated Worker (where m64's page does its work), each
// in a fresh browser context so nothing reserved or written carries over.
//
//   node bench/web/limits.mjs [--fill-gib N]
//
// --fill-gib caps the bytes actually written (one byte per 4 KiB page) in the fill test:
// default 6, at most 8 — it is real RAM, on a machine that may be busy with other work.
// Prints a markdown table; raw results go to bench/out/web/limits-<time>.json.
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const outDir = path.join(root, 'bench/out/web');
const require = createRequire(path.join(root, 'test/web/'));
const { chromium } = require('playwright-core');

let fillGiB = 6;
for (let i = 2; i < process.argv.length; i++) {
  const k = process.argv[i];
  if (k === '--fill-gib' && i + 1 < process.argv.length) fillGiB = Number(process.argv[++i]);
  else { console.error(`bench/web/limits: unknown argument ${k}\nusage: node bench/web/limits.mjs [--fill-gib N]`); process.exit(2); }
}
if (!Number.isInteger(fillGiB) || fillGiB < 1 || fillGiB > 8) { console.error('bench/web/limits: --fill-gib takes 1..8 (GiB of real RAM)'); process.exit(2); }

const GiB = 2 ** 30, PAGE = 65536, PAGES_PER_GIB = GiB / PAGE;
const SEGMENT_PAGES = 16 * PAGES_PER_GIB; // M64_SEGMENT_MAX

// Runs in the page and, verbatim, in the Worker: defines self.probe(name, arg). Returns
// plain JSON (pages as Numbers: all below 2^53); a thrown error is a result, not a failure.
function probes() {
  const MEMORY64_PROBE = new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 2, 8, 1, 1, 0x6d, 1, 0x6d, 2, 4, 0]);
  const GiB = 2 ** 30, PAGES_PER_GIB = GiB / 65536;
  const collect = () => { if (typeof gc === 'function') gc(); }; // drop dead reservations so they don't skew the next try
  const msg = (e) => `${e?.name ?? 'Error'}: ${e?.message ?? e}`;
  let key64 = null; // 'address' (current spelling) or 'index' (older), as web/storage.js tries them

  function mem64(initial, maximum) {
    const d = { initial: BigInt(initial), [key64]: 'i64' };
    if (maximum !== undefined) d.maximum = BigInt(maximum);
    const m = new WebAssembly.Memory(d);
    new WebAssembly.Instance(new WebAssembly.Module(MEMORY64_PROBE), { m: { m } }); // really i64-indexed
    return m;
  }
  function detect64() {
    for (const k of ['address', 'index']) {
      try { key64 = k; mem64(1, 1); return k; } catch { /* next spelling */ }
    }
    key64 = null;
    return null;
  }
  // The largest x in [lo, cap] with ok(x) true, assuming ok is monotone: doubling, then bisection.
  // Records the error of the smallest failing value seen.
  function largest(ok, lo, cap) {
    let firstError = null;
    const t = (x) => { collect(); try { ok(x); return true; } catch (e) { firstError = msg(e); return false; } };
    if (!t(lo)) return { value: 0, error: firstError };
    let good = lo, bad = null;
    while (bad === null) {
      const x = Math.min(good * 2, cap);
      if (x === good) return { value: good, error: null, capped: true };
      if (t(x)) good = x; else bad = x;
    }
    let badError = firstError;
    while (bad - good > 1) {
      const mid = Math.floor((good + bad) / 2);
      if (t(mid)) good = mid; else { bad = mid; badError = firstError; }
    }
    return { value: good, error: badError };
  }

  const P = {
    info() {
      const pm = self.performance?.memory;
      return {
        memory64Key: detect64(), crossOriginIsolated: self.crossOriginIsolated, hardwareConcurrency: navigator.hardwareConcurrency,
        deviceMemory: navigator.deviceMemory ?? null, gcExposed: typeof gc === 'function',
        performanceMemory: pm ? { jsHeapSizeLimit: pm.jsHeapSizeLimit, totalJSHeapSize: pm.totalJSHeapSize, usedJSHeapSize: pm.usedJSHeapSize } : null,
      };
    },
    // 1. maximum with initial 1; initial with maximum = initial (as storage.js asks). The
    // last memory accepted stays alive so the host can read the renderer's RSS.
    max64() { return largest((n) => { self.keep = mem64(1, n); }, 1, 2 ** 48); },
    initial64(cap) { return largest((n) => { self.keep = null; collect(); self.keep = mem64(n, n); }, 1, cap); },
    // 2. No maximum: the engine's own limit applies, as for a memory the page would grow.
    grow64() {
      const m = mem64(1), t0 = performance.now();
      let steps = 0, error = null;
      while (m.buffer.byteLength < 2 ** 40) {
        try { m.grow(BigInt(PAGES_PER_GIB)); steps++; } catch (e) { error = msg(e); break; }
      }
      const bytes = m.buffer.byteLength;
      // then smaller grows (powers of two, largest first), for the exact size grow can reach
      if (error) for (let step = PAGES_PER_GIB / 2; step >= 1; step /= 2) try { m.grow(BigInt(step)); } catch { /* too far: a smaller step */ }
      self.keep = m;
      return { bytes, steps, error, ms: performance.now() - t0, finestBytes: m.buffer.byteLength };
    },
    // 3. As many 16 GiB segments as the engine gives, all alive at once. reserveOnly: initial 1
    // page (address space only) instead of initial = maximum (the page's way).
    count64({ pages, cap, reserveOnly }) {
      self.keep = [];
      let error = null;
      while (self.keep.length < cap) {
        try { self.keep.push(reserveOnly ? mem64(1, pages) : mem64(pages, pages)); } catch (e) { error = msg(e); break; }
      }
      return { count: self.keep.length, bytes: self.keep.reduce((a, m) => a + (reserveOnly ? pages * 65536 : m.buffer.byteLength), 0), error, capped: self.keep.length === cap };
    },
    // 4. One memory of gib GiB, then one GiB at a time touched (called per GiB by the host,
    // which reads RSS in between). Viewed through 1 GiB windows, as storage.js writes.
    fillSetup(gib) {
      try { self.fill = mem64(gib * PAGES_PER_GIB, gib * PAGES_PER_GIB); return { how: 'initial', bytes: self.fill.buffer.byteLength }; } catch (e) {
        try { self.fill = mem64(1); self.fill.grow(gib * PAGES_PER_GIB - 1); return { how: 'grow', bytes: self.fill.buffer.byteLength, initialError: msg(e) }; } catch (e2) {
          return { error: msg(e2) };
        }
      }
    },
    fillStep(k) {
      const t0 = performance.now();
      try {
        const v = new Uint8Array(self.fill.buffer, k * GiB, GiB);
        for (let i = 0; i < GiB; i += 4096) v[i] = 1;
        return { ms: performance.now() - t0 };
      } catch (e) { return { error: msg(e), ms: performance.now() - t0 }; }
    },
    // 5. wasm32: the largest maximum accepted, then from 1 page the largest size reached by
    // growing (powers of two, largest first: exact in ~17 tries).
    max32(shared) { return largest((n) => { new WebAssembly.Memory({ initial: 1, maximum: n, shared }); }, 1, 2 ** 33); },
    grow32({ shared, maximum }) {
      const m = new WebAssembly.Memory({ initial: 1, maximum, shared });
      let pages = 1, error = null;
      for (let step = 2 ** 16; step >= 1; step /= 2) {
        try { m.grow(step); pages += step; } catch (e) { if (!error) error = msg(e); }
      }
      self.keep = m;
      return { pages, bytes: m.buffer.byteLength, firstError: error };
    },
    // 6. For comparison: one plain ArrayBuffer (its pages untouched).
    arrayBuffer() { return largest((n) => { self.keep = null; collect(); self.keep = new ArrayBuffer(n); }, 1, 2 ** 53 - 1); },
  };
  detect64();
  self.probe = async (name, arg) => {
    try { return await P[name](arg); } catch (e) { return { error: msg(e) }; }
  };
}

// COOP/COEP: the page is cross-origin isolated like m64's, so shared memories exist.
const probeSrc = `(${probes})();\n`;
const workerSrc = `${probeSrc}onmessage = async (e) => postMessage({ id: e.data.id, r: await self.probe(e.data.name, e.data.arg) });\n`;
const pageSrc = `<!doctype html><meta charset="utf-8"><title>limits</title><script src="/probe.js"></script><script>
  let next = 0; const waiting = new Map();
  self.worker = new Worker('/worker.js');
  worker.onmessage = (e) => { waiting.get(e.data.id)(e.data.r); waiting.delete(e.data.id); };
  worker.onerror = (e) => { for (const f of waiting.values()) f({ error: 'worker error: ' + e.message }); waiting.clear(); };
  self.inWorker = (name, arg) => new Promise((res) => { const id = next++; waiting.set(id, res); worker.postMessage({ id, name, arg }); });
</script>`;
const server = http.createServer((req, res) => {
  const body = { '/': [pageSrc, 'text/html; charset=utf-8'], '/probe.js': [probeSrc, 'text/javascript'], '/worker.js': [workerSrc, 'text/javascript'] }[req.url];
  if (!body) { res.writeHead(404).end(); return; }
  res.writeHead(200, { 'content-type': body[1], 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp', 'cache-control': 'no-store' });
  res.end(body[0]);
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${server.address().port}/`;

// gc() in the page: dead memories' reservations are dropped at once, not when V8 decides.
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--js-flags=--expose-gc'] });
const cdp = await browser.newBrowserCDPSession();

// The renderers' memory, from /proc: RSS summed over all renderer processes (the page's
// Worker lives in its page's renderer), so a delta against the baseline is what was committed.
const procStatus = (pid, field) => { try { return Number(new RegExp(`${field}:\\s+(\\d+)`).exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024; } catch { return NaN; } };
async function renderers() {
  const ps = (await cdp.send('SystemInfo.getProcessInfo')).processInfo.filter((p) => p.type === 'renderer');
  return { pids: ps.map((p) => p.id), rss: ps.reduce((a, p) => a + (procStatus(p.id, 'VmRSS') || 0), 0),
           vmSizeMax: Math.max(0, ...ps.map((p) => procStatus(p.id, 'VmSize') || 0)) };
}
const IDLE_RSS = 2 * GiB; // idle renderers hold a few hundred MiB together
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// Waits until the renderers hold less than limit bytes: a closed page's memory must be gone
// before the next fill starts, or two fills would add up.
async function settle(limit, ms = 20000) {
  const t0 = Date.now();
  for (;;) {
    const r = await renderers();
    if (r.rss < limit || Date.now() - t0 > ms) return r;
    await sleep(250);
  }
}

// One measurement in a fresh context: fn(call) with call(name, arg) running the probe on
// the chosen side. A renderer crash is that measurement's result.
async function measure(where, fn) {
  const ctx = await browser.newContext();
  let crashed = false;
  try {
    const page = await ctx.newPage();
    page.on('crash', () => { crashed = true; });
    page.on('pageerror', (e) => console.error(`  page error: ${e}`));
    await page.goto(base);
    const call = (name, arg) => (where === 'main'
      ? page.evaluate(([n, a]) => self.probe(n, a), [name, arg])
      : page.evaluate(([n, a]) => self.inWorker(n, a), [name, arg]));
    const before = await renderers();
    const r = await fn(call);
    const after = await renderers();
    return { ...r, rssBefore: before.rss, rssAfter: after.rss };
  } catch (e) {
    return { error: `${crashed ? 'renderer crashed: ' : ''}${e.message.split('\n')[0]}`, crashed };
  } finally {
    await ctx.close().catch(() => {});
  }
}

const results = { chromium: browser.version(), totalmem: os.totalmem(), cpus: os.cpus().length, fillGiB, started: new Date().toISOString(), main: {}, worker: {} };
try {
  for (const where of ['main', 'worker']) {
    const R = results[where];
    const log = (k) => console.error(`limits: ${where} ${k}: ${JSON.stringify(R[k])}`);
    R.info = await measure(where, async (call) => {
      const r = await renderers();
      results.rendererVmSize = r.vmSizeMax; // the V8 sandbox and cages: reserved before anything is asked
      try { results.rendererLimits = fs.readFileSync(`/proc/${r.pids[0]}/limits`, 'utf8').split('\n').filter((l) => /address space|data size|resident/i.test(l)).map((l) => l.replace(/\s+/g, ' ').trim()); } catch { /* gone */ }
      return call('info');
    });
    log('info');
    R.max64 = await measure(where, (call) => call('max64')); log('max64');
    // initial up to one page past the accepted maximum (to see the engine's refusal), no higher:
    // initial = maximum is committed (read/write) address space, so the RSS delta is checked
    R.initial64 = await measure(where, (call) => call('initial64', (R.max64.value || SEGMENT_PAGES) + 1)); log('initial64');
    R.grow64 = await measure(where, (call) => call('grow64')); log('grow64');
    R.count64 = await measure(where, (call) => call('count64', { pages: SEGMENT_PAGES, cap: 64, reserveOnly: false })); log('count64');
    R.count64reserve = await measure(where, (call) => call('count64', { pages: SEGMENT_PAGES, cap: 64, reserveOnly: true })); log('count64reserve');
    R.fill = await measure(where, async (call) => {
      const base = await settle(IDLE_RSS);
      if (base.rss >= IDLE_RSS) return { error: `renderers still hold ${(base.rss / GiB).toFixed(2)} GiB: fill skipped` };
      const setup = await call('fillSetup', fillGiB);
      if (setup.error) return { setup, steps: [] };
      const steps = [];
      for (let k = 0; k < fillGiB; k++) {
        const s = await call('fillStep', k);
        steps.push({ ...s, rss: (await renderers()).rss });
        if (s.error) break;
      }
      return { setup, steps, written: steps.filter((s) => !s.error).length * GiB };
    });
    log('fill');
    await settle(IDLE_RSS); // the filled pages are released before anything else runs
    for (const shared of [false, true]) {
      const k = shared ? 'shared32' : 'plain32';
      R[k] = await measure(where, async (call) => {
        const max = await call('max32', shared);
        return { max, grow: max.value ? await call('grow32', { shared, maximum: max.value }) : null };
      });
      log(k);
    }
    R.arrayBuffer = await measure(where, (call) => call('arrayBuffer')); log('arrayBuffer');
  }
} finally {
  await browser.close().catch(() => {});
  server.close();
}

// The table.
const gib = (b) => (Number.isFinite(b) ? `${(b / GiB).toFixed(b % GiB ? 3 : 0)} GiB` : '–');
const pages = (p) => `${p} pages = ${gib(p * PAGE)}`;
const rssDelta = (r) => { const d = Math.round((r.rssAfter - r.rssBefore) / 2 ** 20); return Number.isFinite(d) ? `; RSS ${d < 0 ? '−' : '+'}${Math.abs(d)} MiB` : ''; };
const err = (e) => (e ? ` (${e.replace(/^(\w*Error): WebAssembly\.Memory\(\): /, '$1: ').slice(0, 90)})` : '');
const cell = {
  max64: (r) => (r.error && !r.value ? `fails${err(r.error)}` : `${pages(r.value)}${r.capped ? ' (search cap)' : ''}${err(r.error)}`),
  initial64: (r) => (r.error && !r.value ? `fails${err(r.error)}` : `${pages(r.value)}${err(r.error)}${rssDelta(r)}`),
  grow64: (r) => (r.bytes === undefined ? `fails${err(r.error)}` : `1 page + ${r.steps} GiB after ${r.steps} grows (${r.ms.toFixed(0)} ms)${err(r.error)}; ${pages(r.finestBytes / PAGE)} with smaller grows${rssDelta(r)}`),
  count64: (r) => (r.count === undefined ? `fails${err(r.error)}` : `${r.count}${r.capped ? ' (cap)' : ''} = ${gib(r.bytes)}${err(r.error)}${rssDelta(r)}`),
  fill: (r) => {
    if (!r.steps) return `fails${err(r.error)}`;
    if (r.setup.error) return `no ${fillGiB} GiB memory${err(r.setup.error)}`;
    const ok = r.steps.filter((s) => !s.error), last = r.steps.at(-1);
    const ms = ok.map((s) => s.ms).sort((x, y) => x - y);
    return `${ok.length} of ${fillGiB} GiB written (${r.setup.how}); ${ms.length ? `median ${(ms[ms.length >> 1] / 1e3).toFixed(2)} s/GiB` : ''}` +
           `${last?.error ? err(last.error) : ''}; RSS ${gib(last?.rss)} at the end (before ${gib(r.rssBefore)})`;
  },
  max32: (r) => (r.max ? `${pages(r.max.value)}${err(r.max.error)}` : `fails${err(r.error)}`),
  grow32: (r) => (r.grow ? `${pages(r.grow.pages)}${err(r.grow.firstError)}` : `fails${err(r.error)}`),
  arrayBuffer: (r) => (r.value ? `${r.value} B = ${gib(r.value)}${err(r.error)}${rssDelta(r)}` : `fails${err(r.error)}`),
};
const rows = [
  ['memory64: largest maximum (initial 1)', (R) => cell.max64(R.max64)],
  ['memory64: largest initial (= maximum)', (R) => cell.initial64(R.initial64)],
  ['memory64: grow from 1 page, 1 GiB steps (to 1 TiB)', (R) => cell.grow64(R.grow64)],
  ['memory64: 16 GiB memories at once (initial = maximum, cap 64)', (R) => cell.count64(R.count64)],
  ['memory64: 16 GiB memories at once (initial 1, cap 64)', (R) => cell.count64(R.count64reserve)],
  [`memory64: written, 1 byte / 4 KiB (cap ${fillGiB} GiB)`, (R) => cell.fill(R.fill)],
  ['wasm32: largest maximum', (R) => cell.max32(R.plain32)],
  ['wasm32: largest size by grow', (R) => cell.grow32(R.plain32)],
  ['wasm32 shared: largest maximum', (R) => cell.max32(R.shared32)],
  ['wasm32 shared: largest size by grow', (R) => cell.grow32(R.shared32)],
  ['largest ArrayBuffer (untouched)', (R) => cell.arrayBuffer(R.arrayBuffer)],
  ['memory64 descriptor key; crossOriginIsolated', (R) => `${R.info.memory64Key ?? 'none'}; ${R.info.crossOriginIsolated}`],
  ['navigator.deviceMemory; hardwareConcurrency', (R) => `${R.info.deviceMemory ?? '–'}; ${R.info.hardwareConcurrency}`],
  ['performance.memory.jsHeapSizeLimit', (R) => (R.info.performanceMemory ? gib(R.info.performanceMemory.jsHeapSizeLimit) : 'absent')],
];
console.log(`\nChromium ${results.chromium} (headless, /usr/bin/chromium); machine RAM ${gib(results.totalmem)}, ${results.cpus} cores; ` +
            `renderer VmSize ${gib(results.rendererVmSize)} before any memory (the V8 sandbox); renderer limits: ${(results.rendererLimits || []).join('; ')}\n`);
console.log('| measurement | main thread | Worker |');
console.log('|---|---|---|');
for (const [name, f] of rows) {
  const c = (R) => { try { return f(R).replace(/\|/g, '\\|'); } catch { return `(no result: ${JSON.stringify(R).slice(0, 80)})`; } };
  console.log(`| ${name} | ${c(results.main)} | ${c(results.worker)} |`);
}
fs.mkdirSync(outDir, { recursive: true });
const out = path.join(outDir, `limits-${Date.now()}.json`);
fs.writeFileSync(out, JSON.stringify(results, null, 1));
console.log(`\nraw results: ${path.relative(root, out)}`);
