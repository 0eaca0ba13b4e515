// run.mjs — m64's page (web/index.html + web/m64.js) against wllama (llama.cpp compiled to
// wasm, npm @wllama/wllama) in the same headless Chromium, on the same GGUF (m64 on its
// bundle of it), same prompt, greedy. Started by bench/web/run, which installs the peer.
//
//   node bench/web/run.mjs --model GGUF [--prompt TEXT] [-n N] [--threads "1 2"] [--runs R]
//                          [--ctx C] [--verify] [--workspace SIZE] [--only m64|wllama]
//
// For each thread count and run, a fresh browser context (empty HTTP cache) loads each
// side from the local server and reports: load time (until generation can start), time
// to first token since the load began, decode tok/s (generated tokens / decode time, as
// each side measures it), and for m64 when the whole image had arrived. Medians printed.
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

const a = { prompt: 'Once upon a time', n: '32', threads: '1 2', runs: '1', ctx: '256' };
for (let i = 2; i < process.argv.length; i++) {
  const k = process.argv[i];
  if (k === '--verify') a.verify = '1';
  else if (['--model', '--prompt', '-n', '--threads', '--runs', '--ctx', '--workspace', '--only'].includes(k) && i + 1 < process.argv.length) a[k.replace(/^-+/, '')] = process.argv[++i];
  else { console.error(`bench/web: unknown argument ${k}`); process.exit(2); }
}
if (!a.model || !fs.existsSync(a.model)) { console.error('bench/web: --model GGUF is required (and must exist)'); process.exit(2); }
const threads = a.threads.split(/\s+/).filter(Boolean).map(Number);
const runs = Number(a.runs), n = Number(a.n);

// The bundle, rebuilt when older than the GGUF or m64c.
fs.mkdirSync(outDir, { recursive: true });
const gguf = path.resolve(a.model), name = path.basename(gguf, '.gguf');
const bundle = path.join(outDir, `${name}.m64`);
const m64c = path.join(build, 'cmd/m64c');
const mtime = (f) => (fs.existsSync(f) ? fs.statSync(f).mtimeMs : 0);
if (mtime(bundle) < Math.max(mtime(gguf), mtime(m64c))) {
  console.log(`bench/web: m64c build ${gguf} -> ${bundle}`);
  execFileSync(m64c, ['build', '-q', '--no-aot', gguf, '-o', bundle], { stdio: 'inherit' });
}

const server = spawn(process.execPath, [path.join(root, 'web/serve.mjs'), '--port', '0',
  `/=${path.join(root, 'web')}`, `/bench/=${here}`, `/wllama/=${path.join(here, 'node_modules/@wllama/wllama')}`,
  `/gguf/=${path.dirname(gguf)}`, `/m64/=${outDir}`], { stdio: ['ignore', 'pipe', 'inherit'] });
const base = await new Promise((resolve, reject) => {
  let buf = '';
  server.stdout.on('data', (d) => { buf += d; const m = /serving (\S+)/.exec(buf); if (m) resolve(m[1]); });
  server.on('exit', (c) => reject(new Error(`serve.mjs exited (${c})`)));
});
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium' });

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
async function runM64(t) {
  const q = new URLSearchParams({ bundle: `/m64/${name}.m64`, prompt: a.prompt, n: String(n), temp: '0', ctx: a.ctx, threads: String(t),
                                  verify: a.verify ? '1' : '0', run: '1', workspace: a.workspace || '' });
  const r = await inPage(`${base}index.html?${q}`, () => ['done', 'error'].includes(window.m64page?.state),
    () => ({ state: m64page.state, error: m64page.error, info: m64page.info, result: m64page.result,
             ttft: m64page.firstTokenSinceOpenMs }), timeout);
  if (r.state !== 'done') throw new Error(`m64 page: ${r.error}`);
  return { threads: r.info.threads, loadMs: r.info.openedMs, ttftMs: r.ttft, downloadedMs: r.result.imageCompleteMs,
           decode: r.result.decodeTokS, tokens: r.result.tokens.length, text: r.result.text, memory64: r.info.memory64,
           streaming: r.info.streaming, imageBytes: r.info.imageBytes, workspaceBytes: r.result.stats.workspaceBytes,
           pageIns: r.result.stats.pageIns, evictions: r.result.stats.evictions };
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
      const order = (r % 2 ? ['wllama', 'm64'] : ['m64', 'wllama']).filter((w) => !a.only || w === a.only);
      for (const who of order) {
        const x = who === 'm64' ? await runM64(t) : await runWllama(t);
        x.who = who; x.asked = t;
        results.push(x);
        console.log(`  ${who.padEnd(6)} threads ${t} (used ${x.threads}): load ${(x.loadMs / 1e3).toFixed(2)} s, first token ${(x.ttftMs / 1e3).toFixed(2)} s` +
          (x.downloadedMs ? `, image complete ${(x.downloadedMs / 1e3).toFixed(2)} s` : '') + `, decode ${x.decode.toFixed(2)} tok/s (${x.tokens} tokens)` +
          (who === 'm64' ? `; image ${(x.imageBytes / 2 ** 30).toFixed(2)} GiB in ${x.memory64 ? 'memory64' : 'ArrayBuffers'}, workspace ${(x.workspaceBytes / 2 ** 30).toFixed(2)} GiB, ${x.pageIns} page-ins` : ''));
      }
    }
  }
  console.log('\n| threads | m64 decode tok/s | wllama decode tok/s | ratio | m64 first token s | m64 image complete s | wllama load s | wllama first token s |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const t of threads) {
    const m = results.filter((x) => x.who === 'm64' && x.asked === t), w = results.filter((x) => x.who === 'wllama' && x.asked === t);
    if (!m.length || !w.length) continue;
    const md = median(m.map((x) => x.decode)), wd = median(w.map((x) => x.decode));
    console.log(`| ${t} (m64 uses ${m[0].threads}) | ${md.toFixed(2)} | ${wd.toFixed(2)} | ${(md / wd).toFixed(2)} | ${(median(m.map((x) => x.ttftMs)) / 1e3).toFixed(2)} | ` +
      `${(median(m.map((x) => x.downloadedMs)) / 1e3).toFixed(2)} | ${(median(w.map((x) => x.loadMs)) / 1e3).toFixed(2)} | ${(median(w.map((x) => x.ttftMs)) / 1e3).toFixed(2)} |`);
  }
  const same = a.only ? 'not compared' : results.filter((x) => x.who === 'wllama').every((x) => x.text === results.find((y) => y.who === 'm64').text);
  console.log(`\ngenerated text identical between m64 and wllama: ${same === true ? 'yes' : same || 'no'}; load average now ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  fs.writeFileSync(path.join(outDir, `web-${Date.now()}.json`), JSON.stringify({ args: a, results }, null, 1));
} finally {
  await browser.close();
  server.kill();
}
