// run.mjs — m64's page (web/index.html + web/m64.js) against wllama (llama.cpp compiled to
// wasm, npm @wllama/wllama) in the same headless Chromium, on the same GGUF (m64 on its
// bundle of it), same prompt, greedy. Started by bench/web/run, which installs the peer.
//
//   node bench/web/run.mjs --model GGUF [--prompt TEXT] [-n N] [--threads "1 2"] [--runs R]
//                          [--ctx C] [--verify] [--workspace SIZE] [--sides LIST] [--js-flags FLAGS]
//                          [--stream]
//
// Sides (--sides, default all four): m64 (the page; relaxed-SIMD module where Chromium has
// it), m64-simd128 (the page with relaxed=0: the SIMD128 module), wllama, and m64run (the
// native host on the same bundle, for the page-vs-native ratio). For each thread count and
// run, a fresh browser context (empty HTTP cache) loads each page side from the local
// server and reports: load time (until generation can start), time to first token since
// the load began, decode tok/s (generated tokens / decode time, as each side measures it),
// and for m64 when the whole image had arrived. Medians printed.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const build = process.env.M64_BUILD_DIR || path.join(root, 'build');
const outDir = path.join(root, 'bench/out/web');
const require = createRequire(path.join(root, 'test/web/'));
const { chromium } = require('playwright-core');

const a = { prompt: 'Once upon a time', n: '32', threads: '1 2', runs: '1', ctx: '256', sides: 'm64 m64-simd128 wllama m64run' };
for (let i = 2; i < process.argv.length; i++) {
  const k = process.argv[i];
  if (k === '--verify') a.verify = '1';
  else if (k === '--stream') a.stream = '1'; // the page holds no image: layers read on demand
  else if (k === '--only' && i + 1 < process.argv.length) a.sides = process.argv[++i]; // the older spelling
  else if (['--model', '--prompt', '-n', '--threads', '--runs', '--ctx', '--workspace', '--sides', '--js-flags'].includes(k) && i + 1 < process.argv.length) a[k.replace(/^-+/, '')] = process.argv[++i];
  else { console.error(`bench/web: unknown argument ${k}`); process.exit(2); }
}
if (!a.model || !fs.existsSync(a.model)) { console.error('bench/web: --model GGUF is required (and must exist)'); process.exit(2); }
const threads = a.threads.split(/\s+/).filter(Boolean).map(Number);
const runs = Number(a.runs), n = Number(a.n);
const SIDES = ['m64', 'm64-simd128', 'wllama', 'm64run'];
const sides = a.sides.split(/\s+/).filter(Boolean);
for (const x of sides) if (!SIDES.includes(x)) { console.error(`bench/web: unknown side ${x} (${SIDES.join(', ')})`); process.exit(2); }

// The bundle, rebuilt when older than the GGUF or m64c.
fs.mkdirSync(outDir, { recursive: true });
const gguf = path.resolve(a.model), name = path.basename(gguf, '.gguf');
const bundle = path.join(outDir, `${name}.m64`);
const m64c = path.join(build, 'cmd/m64c');
const mtime = (f) => (fs.existsSync(f) ? fs.statSync(f).mtimeMs : 0);
if (mtime(bundle) < Math.max(mtime(gguf), mtime(m64c))) {
  console.log(`bench/web: m64c build ${gguf} -> ${bundle}`);
  execFileSync(m64c, ['build', '-q', gguf, '-o', bundle], { stdio: 'inherit' }); // with native code: m64run's side
}

const server = spawn(process.execPath, [path.join(root, 'web/serve.mjs'), '--port', '0',
  `/=${path.join(root, 'web')}`, `/bench/=${here}`, `/wllama/=${path.join(here, 'node_modules/@wllama/wllama')}`,
  `/gguf/=${path.dirname(gguf)}`, `/m64/=${outDir}`], { stdio: ['ignore', 'pipe', 'inherit'] });
const base = await new Promise((resolve, reject) => {
  let buf = '';
  server.stdout.on('data', (d) => { buf += d; const m = /serving (\S+)/.exec(buf); if (m) resolve(m[1]); });
  server.on('exit', (c) => reject(new Error(`serve.mjs exited (${c})`)));
});
// --js-flags passes V8 flags (e.g. --no-liftoff: TurboFan from the start) for diagnosis.
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: a['js-flags'] ? [`--js-flags=${a['js-flags']}`] : [] });

async function inPage(url, ready, read, timeoutMs) {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  page.on('pageerror', (e) => console.error(`  page error: ${e}`));
  try {
    await page.goto(url);
    await page.waitForFunction(ready, null, { timeout: timeoutMs });
    return await page.evaluate(read);
  } finally {
    await ctx.close();
  }
}

const timeout = 30 * 60 * 1000;
async function runM64(t, relaxed) {
  const q = new URLSearchParams({ bundle: `/m64/${name}.m64`, prompt: a.prompt, n: String(n), temp: '0', ctx: a.ctx, threads: String(t),
                                  verify: a.verify ? '1' : '0', run: '1', workspace: a.workspace || '', stream: a.stream ? '1' : '0', ...(relaxed ? {} : { relaxed: '0' }) });
  const r = await inPage(`${base}index.html?${q}`, () => ['done', 'error'].includes(window.m64page?.state),
    () => ({ state: m64page.state, error: m64page.error, info: m64page.info, result: m64page.result,
             ttft: m64page.firstTokenSinceOpenMs }), timeout);
  if (r.state !== 'done') throw new Error(`m64 page: ${r.error}`);
  return { threads: r.info.threads, loadMs: r.info.openedMs, ttftMs: r.ttft, downloadedMs: r.result.imageCompleteMs,
           decode: r.result.decodeTokS, tokens: r.result.tokens.length, text: r.result.text, ids: r.result.tokens, memory64: r.info.memory64,
           streaming: r.info.streaming, imageBytes: r.info.imageBytes, workspaceBytes: r.result.stats.workspaceBytes,
           pageIns: r.result.stats.pageIns, layerReads: r.result.stats.layerReads, streamed: r.info.streamed, evictions: r.result.stats.evictions, moduleNote: r.info.moduleNote };
}
function runNative(t) {
  const out = execFileSync(path.join(build, 'cmd/m64run'), [bundle, '-p', a.prompt, '-n', String(n), '--temp', '0', '--ctx-size', a.ctx,
    '-t', String(t), '--json', ...(a.workspace ? ['--workspace', a.workspace] : [])], { stdio: ['ignore', 'pipe', 'inherit'] });
  const j = JSON.parse(String(out).trim().split('\n').pop());
  return { threads: t, loadMs: NaN, ttftMs: NaN, decode: j.decode_tok_s, tokens: j.tokens.length, ids: j.tokens };
}
async function runWllama(t) {
  const q = new URLSearchParams({ model: `/gguf/${path.basename(gguf)}`, prompt: a.prompt, n: String(n), threads: String(t), ctx: a.ctx });
  const r = await inPage(`${base}bench/wllama.html?${q}`, () => ['done', 'error'].includes(window.peer?.state),
    () => window.peer, timeout);
  if (r.state !== 'done') throw new Error(`wllama page: ${r.error}`);
  return { threads: r.threads, loadMs: r.loadMs, ttftMs: r.firstTokenSinceOpenMs, decode: r.timings?.predicted_per_second ?? NaN,
           tokens: r.timings?.predicted_n ?? NaN, text: r.text };
}

const median = (xs) => { const s = [...xs].sort((x, y) => x - y); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const results = [];
try {
  console.log(`bench/web: ${gguf} (${(fs.statSync(gguf).size / 2 ** 30).toFixed(2)} GiB), prompt ${JSON.stringify(a.prompt)}, -n ${n}, ctx ${a.ctx}, ` +
              `layer hashes ${a.verify ? 'checked' : 'not checked'} by m64; Chromium ${browser.version()}; ` +
              `load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} on ${os.cpus().length} cores`);
  for (const t of threads) {
    for (let r = 0; r < runs; r++) {
      // alternate which side goes first
      // rotate which side goes first
      const order = sides.map((_, i) => sides[(i + r) % sides.length]);
      for (const who of order) {
        const x = who === 'm64' ? await runM64(t, true) : who === 'm64-simd128' ? await runM64(t, false)
          : who === 'wllama' ? await runWllama(t) : runNative(t);
        x.who = who; x.asked = t;
        results.push(x);
        console.log(`  ${who.padEnd(11)} threads ${t} (used ${x.threads}): ` +
          (who === 'm64run' ? '' : `load ${(x.loadMs / 1e3).toFixed(2)} s, first token ${(x.ttftMs / 1e3).toFixed(2)} s, `) +
          (x.downloadedMs ? `image complete ${(x.downloadedMs / 1e3).toFixed(2)} s, ` : '') + `decode ${x.decode.toFixed(2)} tok/s (${x.tokens} tokens)` +
          (x.moduleNote ? `; module ${x.moduleNote}; image ${(x.imageBytes / 2 ** 30).toFixed(2)} GiB ${x.streamed ? `not held (streamed: ${x.layerReads} layer reads)` : `in ${x.memory64 ? 'memory64' : 'ArrayBuffers'}`}, workspace ${(x.workspaceBytes / 2 ** 30).toFixed(2)} GiB, ${x.pageIns} page-ins` : ''));
      }
    }
  }
  const dec = (who, t) => { const xs = results.filter((x) => x.who === who && x.asked === t); return xs.length ? median(xs.map((x) => x.decode)) : NaN; };
  const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : '–');
  console.log('\ndecode tok/s, medians (m64 = the page with its relaxed-SIMD module where Chromium has it)\n');
  console.log('| threads | m64 | m64 SIMD128 | wllama | m64run | **m64 / wllama** | m64 SIMD128 / wllama | m64 / m64run | m64 first token s | wllama first token s |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const t of threads) {
    const ttft = (who) => { const xs = results.filter((x) => x.who === who && x.asked === t); return xs.length ? median(xs.map((x) => x.ttftMs)) / 1e3 : NaN; };
    console.log(`| ${t} | ${f2(dec('m64', t))} | ${f2(dec('m64-simd128', t))} | ${f2(dec('wllama', t))} | ${f2(dec('m64run', t))} | ` +
      `**${f2(dec('m64', t) / dec('wllama', t))}** | ${f2(dec('m64-simd128', t) / dec('wllama', t))} | ${f2(dec('m64', t) / dec('m64run', t))} | ${f2(ttft('m64'))} | ${f2(ttft('wllama'))} |`);
  }
  if (threads.includes(1) && threads.includes(2))
    console.log(`\n2-thread scaling (2 / 1 threads): m64 ${f2(dec('m64', 2) / dec('m64', 1))}, m64 SIMD128 ${f2(dec('m64-simd128', 2) / dec('m64-simd128', 1))}, ` +
                `wllama ${f2(dec('wllama', 2) / dec('wllama', 1))}, m64run ${f2(dec('m64run', 2) / dec('m64run', 1))}`);
  const pageTexts = results.filter((x) => x.text !== undefined).map((x) => x.text);
  const m64Ids = results.filter((x) => x.ids).map((x) => JSON.stringify(x.ids));
  console.log(`\ngenerated text identical across the page runs (m64 and wllama): ${pageTexts.length && pageTexts.every((x) => x === pageTexts[0]) ? 'yes' : 'no'}` +
              `${m64Ids.length ? `; m64's ids the same in every page and m64run run: ${m64Ids.every((x) => x === m64Ids[0]) ? 'yes' : 'no'}` : ''}` +
              `; load average now ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  fs.writeFileSync(path.join(outDir, `web-${Date.now()}.json`), JSON.stringify({ args: a, results }, null, 1));
} finally {
  await browser.close();
  server.kill();
}
