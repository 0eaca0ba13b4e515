#!/usr/bin/env node
// browser_test.mjs — the browser host (web/m64.js) in Debian's headless Chromium, driven
// through playwright-core (never a downloaded browser). It serves a stories260K bundle with
// web/serve.mjs and checks, against m64run on the same bundle:
//   0. greedy with repetition and frequency penalties gives m64run's tokens (m64_sample_ex);
//   1. greedy generation of 32 tokens in the page gives m64run's text, on one thread and on
//      two (two thread Workers' instances sharing the workspace: the page says so);
//   2. with a workspace small enough to force paging, on two threads, the same text and the
//      same paging counters (page-ins, evictions) as m64run -t 2 with that workspace and no
//      prefetch;
//   3. with the image in ArrayBuffers instead of memory64 (the fallback), the same text,
//      and the page says memory64 is not in use;
//   4. a truncated bundle shows an error in the page instead of hanging, and a GGUF an
//      error naming it and what to run instead;
//   5. a wasm trap in a share of a parallel job (test/security's trap module), on one
//      thread and on two, ends in an error naming the trap instead of a hang;
//   6. sha256Js (the page's SHA-256 where WebCrypto is missing) equals node's on many
//      lengths, and a page on a non-secure origin (no WebCrypto, not cross-origin
//      isolated) checks every layer with it, runs one thread, says both, and gives the
//      same text;
//   8. on a SentencePiece vocabulary without "▁" (a space is 3 byte tokens), the prompt ' a'
//      tokenizes in the page to m64run's ids (issue 22: the id buffer was too small);
//   9. qwen3, phi3 and gemma3 bundles generate m64run's greedy ids, and an
//      MoE bundle too, whole and with its experts paged through a few slots; a Q4_K_M
//      bundle runs its relaxed-SIMD module (relaxed SIMD's i8 dot) and, asked to, the
//      SIMD128 one, both with m64run's ids;
//   7. a two-turn chat with llama3-bpe-tiny (Llama 3 template) runs, turn by turn, the same
//      token ids at the same positions as `m64run -i` on the same bundle;
//   8. a server that accepts and never answers, and one that stalls in the middle of a
//      segment, end in a timeout error in the page (not a pending open), and the status
//      line leaves "loading…";
//   9. the Stop button ends a long generation early, with the greedy ids so far;
//  10. top-k and seed from the form sample the same ids as m64run --top-k --seed;
//  11. a compressed bundle runs with m64run's ids (whole, and paged on 2 threads), and a
//      bundle of 2 segments (--segment-max), plain and compressed, from 2 memory64 memories;
//  12. a signed bundle shows its signer's fingerprint in the page's signature row;
//  13. with stream=1 (no image held: each page-in reads its layer from the server), plain
//      and compressed 2-segment bundles give m64run's text and paging counters.
// Usage: node browser_test.mjs --bin BUILD_DIR --models SHARED_MODELS [--trap TRAP_M64] [--signed SIGNED_M64]
//        [--screenshot PNG] [--only REGEX]
// Exits 77 (ctest: skipped) when the shared models are absent.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const webDir = path.resolve(here, '../../web');
const args = {};
for (let i = 2; i + 1 < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const bin = args.bin, models = args.models;
if (!bin || !models) {
  console.error('usage: node browser_test.mjs --bin BUILD_DIR --models SHARED_MODELS [--screenshot PNG]');
  process.exit(2);
}
const gguf = path.join(models, 'stories260K.gguf');
if (!fs.existsSync(gguf)) {
  console.log(`web: SKIP: ${gguf} absent (the shared test models live beside the project)`);
  process.exit(77);
}
let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch {
  console.error('web: playwright-core is not installed in test/web (run cmd/setup.sh)');
  process.exit(1);
}
const browserPath = '/usr/bin/chromium';
if (!fs.existsSync(browserPath)) {
  console.error(`web: ${browserPath} absent (Debian package chromium; run cmd/setup.sh)`);
  process.exit(1);
}

const PROMPT = 'Once upon a time', N = 32, PAGING_WORKSPACE = '5600K';
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'm64-web-'));
const bundle = path.join(work, 'stories260K.m64');
execFileSync(path.join(bin, 'cmd/m64c'), ['build', '-q', gguf, '-o', bundle], { stdio: 'inherit' });
const l3gguf = path.join(models, 'llama3-bpe-tiny.gguf'), l3 = path.join(work, 'llama3.m64');
if (fs.existsSync(l3gguf)) execFileSync(path.join(bin, 'cmd/m64c'), ['build', '-q', l3gguf, '-o', l3], { stdio: 'inherit' });
const nospace = path.join(work, 'nospace.m64');
execFileSync(path.join(bin, 'test/support/m64-synth'), ['--shape', 'tiny', '--type', 'F32', '--seed', '19', '--vocab-kind', 'spm-nospace',
  '-o', path.join(work, 'nospace.gguf')], { stdio: 'ignore' });
execFileSync(path.join(bin, 'cmd/m64c'), ['build', '-q', path.join(work, 'nospace.gguf'), '-o', nospace], { stdio: 'inherit' });
// the architectures beside llama: qwen3 (q/k norms, its own head size), phi3 (fused q/k/v
// and gate/up), gemma3 (sliding-window layers, post-norms, GELU); m64run gives the ids to match
const archs = { qwen3: ['--arch', 'qwen3', '--head-dim', '32', '--type', 'Q8_0', '--seed', '21'],
  phi3: ['--arch', 'phi3', '--type', 'Q8_0', '--seed', '23'],
  gemma3: ['--arch', 'gemma3', '--head-dim', '32', '--layers', '3', '--sliding-window', '8', '--swa-period', '2',
    '--rope-base', '1000000', '--type', 'F32', '--seed', '23'] };
for (const [name, flags] of Object.entries(archs)) {
  execFileSync(path.join(bin, 'test/support/m64-synth'), ['--shape', 'tiny', ...flags, '-o', path.join(work, `${name}.gguf`)], { stdio: 'ignore' });
  execFileSync(path.join(bin, 'cmd/m64c'), ['build', '-q', path.join(work, `${name}.gguf`), '-o', path.join(work, `${name}.m64`)], { stdio: 'inherit' });
}
// K-quants (Q4_K, Q6_K): their decode kernels use the i8 dot, relaxed SIMD's in module.relaxed
const kq = path.join(work, 'kq.m64');
execFileSync(path.join(bin, 'test/support/m64-synth'), ['--shape', 'small', '--layers', '2', '--mix', 'q4_k_m', '--seed', '29',
  '-o', path.join(work, 'kq.gguf')], { stdio: 'ignore' });
execFileSync(path.join(bin, 'cmd/m64c'), ['build', '-q', path.join(work, 'kq.gguf'), '-o', kq], { stdio: 'inherit' });
// qwen3moe: 2 of 8 experts per token, each expert a layer the module asks for
const moe = path.join(work, 'moe.m64');
execFileSync(path.join(bin, 'test/support/m64-synth'), ['--shape', 'tiny', '--arch', 'qwen3moe', '--head-dim', '32', '--experts', '8',
  '--experts-used', '2', '--expert-ffn', '64', '--type', 'Q8_0', '--seed', '28', '-o', path.join(work, 'moe.gguf')], { stdio: 'ignore' });
execFileSync(path.join(bin, 'cmd/m64c'), ['build', '-q', path.join(work, 'moe.gguf'), '-o', moe], { stdio: 'inherit' });
const whole = fs.readFileSync(bundle);
fs.writeFileSync(path.join(work, 'truncated.m64'), whole.subarray(0, Math.floor(whole.length / 2)));
if (args.trap) fs.copyFileSync(args.trap, path.join(work, 'trap.m64'));
if (args.signed) fs.copyFileSync(args.signed, path.join(work, 'signed.m64'));
fs.copyFileSync(gguf, path.join(work, 'model.gguf')); // files the page cannot take: named, with what to run
execFileSync(path.join(bin, 'cmd/m64c'), ['compress', '-q', bundle, '-o', path.join(work, 'compressed.m64')], { stdio: 'inherit' });
// two image segments (one memory64 memory each in the page), and the same compressed
execFileSync(path.join(bin, 'cmd/m64c'), ['build', '-q', gguf, '--segment-max', '1M', '-o', path.join(work, 'seg2.m64')], { stdio: 'inherit' });
execFileSync(path.join(bin, 'cmd/m64c'), ['compress', '-q', path.join(work, 'seg2.m64'), '-o', path.join(work, 'seg2z.m64')], { stdio: 'inherit' });

function m64run(extra) {
  const out = execFileSync(path.join(bin, 'cmd/m64run'),
    [bundle, '-p', PROMPT, '-n', String(N), '--temp', '0', '--json', ...extra], { stdio: ['ignore', 'pipe', 'ignore'] });
  return JSON.parse(String(out).trim().split('\n').pop());
}
// The page ignores prefetch hints, so its paging is m64run's without prefetch; with a few
// block slots, a policy other than the pager's would page differently, and a workspace
// laid out otherwise (threads' stacks and scratch) would have another number of slots.
const penalised = m64run(['-t', '1', '--repeat-penalty', '1.5', '--frequency-penalty', '0.2', '--repeat-last-n', '16']);
const native = m64run(['-t', '1']), nativePaged = m64run(['-t', '2', '--workspace', PAGING_WORKSPACE, '--no-prefetch']);

// The server, on a free port.
// the page, and beside it the zstd decoder the build made (build/web/zstd_decoder.wasm)
const server = spawn(process.execPath, [path.join(webDir, 'serve.mjs'), '--port', '0', `/=${webDir}`, `/=${path.join(bin, 'web')}`, `/files/=${work}`],
  { stdio: ['ignore', 'pipe', 'inherit'] });
const base = await new Promise((resolve, reject) => {
  let buf = '';
  server.stdout.on('data', (d) => {
    buf += d;
    const m = /serving (\S+)/.exec(buf);
    if (m) resolve(m[1]);
  });
  server.on('exit', (code) => reject(new Error(`serve.mjs exited (${code})`)));
  setTimeout(() => reject(new Error('serve.mjs did not start')), 10000);
});

// A server that accepts connections and never answers, and one that answers the small
// reads of the bundle but stalls after the first 64 KiB of a segment (CORS: the page is
// on another port).
const sockets = [];
const silent = net.createServer((c) => sockets.push(c)).listen(0, '127.0.0.1');
const stalling = http.createServer((req, res) => {
  const m = /bytes=(\d+)-(\d+)/.exec(req.headers.range || '');
  const cors = { 'Access-Control-Allow-Origin': '*', 'Access-Control-Expose-Headers': 'Content-Range', 'Cross-Origin-Resource-Policy': 'cross-origin' };
  if (!m) { res.writeHead(416, cors).end(); return; }
  const a = Number(m[1]), b = Math.min(Number(m[2]), whole.length - 1);
  res.writeHead(206, { ...cors, 'Content-Range': `bytes ${a}-${b}/${whole.length}`, 'Content-Length': b - a + 1 });
  if (b - a + 1 <= 1 << 20) res.end(whole.subarray(a, b + 1));
  else { res.write(whole.subarray(a, a + 65536)); sockets.push(res.socket); } // then nothing
}).listen(0, '127.0.0.1');
await Promise.all([silent, stalling].map((srv) => new Promise((r) => srv.listening ? r() : srv.on('listening', r))));

// m64.test resolves to this machine but is not a secure origin (unlike 127.0.0.1)
const browser = await chromium.launch({ executablePath: browserPath, args: ['--host-resolver-rules=MAP m64.test 127.0.0.1'] });
let passed = 0, failed = 0;

// Opens the demo page with query params and waits until it is done or shows an error.
async function runPage(query, { screenshot, origin = base } = {}) {
  const page = await browser.newPage({ viewport: { width: 1000, height: 640 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`${origin}index.html?${new URLSearchParams({ run: '1', ...query })}`);
  await page.waitForFunction(() => ['done', 'error'].includes(window.m64page?.state), null, { timeout: 60000 });
  const r = await page.evaluate(() => ({
    state: m64page.state, error: m64page.error, info: m64page.info, result: m64page.result,
    shownError: document.getElementById('error').textContent, shownText: document.getElementById('generated')?.textContent ?? '',
    storage: document.getElementById('storage').textContent, threads: document.getElementById('threads').textContent,
    cache: document.getElementById('cache').textContent, speed: document.getElementById('speed').textContent,
  }));
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  await page.close();
  r.pageErrors = errors;
  return r;
}

async function check(name, fn) {
  if (args.only && !new RegExp(args.only).test(name)) return; // --only REGEX: a few checks, while working on them
  try {
    await fn();
    passed++;
    console.log(`ok   ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.message}`);
  }
}
function expect(cond, msg) { if (!cond) throw new Error(msg); }
function expectDone(r) {
  expect(r.state === 'done', `page ended in state ${r.state}: ${r.error}`);
  expect(!r.pageErrors.length, `page errors: ${r.pageErrors.join('; ')}`);
}

try {
  const greedy = { bundle: 'files/stories260K.m64', prompt: PROMPT, n: String(N), temp: '0', threads: '1' };
  await check('greedy with penalties in the page equals m64run (module ABI 4: m64_sample_ex)', async () => {
    const r = await runPage({ ...greedy, repeat: '1.5', frequency: '0.2', lastn: '16' });
    expectDone(r);
    expect(JSON.stringify(r.result.tokens) === JSON.stringify(penalised.tokens),
      `page: ${JSON.stringify(r.result.tokens)}\nm64run: ${JSON.stringify(penalised.tokens)}`);
    expect(JSON.stringify(penalised.tokens) !== JSON.stringify(native.tokens), 'the penalties changed nothing');
  });
  await check('greedy generation in the page equals m64run', async () => {
    const r = await runPage(greedy);
    expectDone(r);
    expect(r.result.text === native.text, `page: ${JSON.stringify(r.result.text)}\nm64run: ${JSON.stringify(native.text)}`);
    expect(r.shownText === native.text, `page shows ${JSON.stringify(r.shownText)}`);
    expect(JSON.stringify(r.result.tokens) === JSON.stringify(native.tokens), 'token ids differ');
    expect(r.info.memory64 && /memory64 active/.test(r.storage), `storage: ${r.storage}`);
    expect(r.result.stats.evictions === 0, `${r.result.stats.evictions} evictions with the whole model resident`);
    console.log(`     ${r.result.tokens.length} tokens, decode ${r.result.decodeTokS.toFixed(0)} tok/s in the page (m64run -t 1: ${native.decode_tok_s.toFixed(0)})`);
  });
  await check('two threads (Workers sharing the workspace) give the same text', async () => {
    const r = await runPage({ ...greedy, threads: '2' }, { screenshot: args.screenshot });
    expectDone(r);
    expect(r.info.crossOriginIsolated, 'the page is not cross-origin isolated (serve.mjs sends COOP/COEP)');
    expect(r.info.threads === 2 && /2 \(2 Workers share the workspace\)/.test(r.threads), `threads: ${r.info.threads}, page shows ${JSON.stringify(r.threads)}`);
    expect(r.result.text === native.text, `page: ${JSON.stringify(r.result.text)}\nm64run: ${JSON.stringify(native.text)}`);
    expect(JSON.stringify(r.result.tokens) === JSON.stringify(native.tokens), 'token ids differ');
    console.log(`     decode ${r.result.decodeTokS.toFixed(0)} tok/s on 2 threads in the page`);
  });
  await check(`paging (workspace ${PAGING_WORKSPACE}, 2 threads) gives the same text and counters as m64run`, async () => {
    expect(nativePaged.evictions > 0, `m64run did not page with --workspace ${PAGING_WORKSPACE}: the test needs a smaller one`);
    const r = await runPage({ ...greedy, threads: '2', workspace: PAGING_WORKSPACE });
    expectDone(r);
    expect(r.result.text === native.text, `page: ${JSON.stringify(r.result.text)}`);
    const s = r.result.stats;
    expect(s.evictions > 0, 'the page did not evict any layer');
    expect(s.pageIns === nativePaged.layer_page_ins && s.evictions === nativePaged.evictions && s.cacheSlots === nativePaged.cache_slots,
      `page: ${s.pageIns} page-ins, ${s.evictions} evictions, ${s.cacheSlots} slots; m64run: ${nativePaged.layer_page_ins}, ${nativePaged.evictions}, ${nativePaged.cache_slots}`);
  });
  // stream=1: no image in the page; a page-in reads the layer from the server
  for (const [file, what] of [['stories260K.m64', ''], ['seg2z.m64', ', compressed, 2 segments']])
    await check(`layers streamed from the server (stream=1${what}, workspace ${PAGING_WORKSPACE}, 2 threads) give m64run's text and counters`, async () => {
      const r = await runPage({ ...greedy, bundle: `files/${file}`, threads: '2', workspace: PAGING_WORKSPACE, stream: '1' });
      expectDone(r);
      expect(r.result.text === native.text, `page: ${JSON.stringify(r.result.text)}`);
      expect(r.info.streamed && /^streamed: no image held \(asked for\); each layer is read from the server/.test(r.storage), `storage: ${r.storage}`);
      const s = r.result.stats;
      expect(s.pageIns === nativePaged.layer_page_ins && s.evictions === nativePaged.evictions,
        `page: ${s.pageIns} page-ins, ${s.evictions} evictions; m64run: ${nativePaged.layer_page_ins}, ${nativePaged.evictions}`);
      // each page-in read once, plus at most one read ahead per token that was not used
      expect(s.layerReads >= s.pageIns && s.layerReads <= s.pageIns + N + 1, `${s.layerReads} layer reads for ${s.pageIns} page-ins`);
      console.log(`     ${s.pageIns} page-ins, ${s.layerReads} layer reads, ${(s.stallSeconds * 1e3).toFixed(0)} ms waiting for them`);
    });
  await check('an image larger than half the device\'s memory (hold=) streams by itself and says why; stream=0 holds it anyway', async () => {
    const r = await runPage({ ...greedy, threads: '2', workspace: PAGING_WORKSPACE, hold: '65536' });
    expectDone(r);
    expect(r.result.text === native.text, `page: ${JSON.stringify(r.result.text)}`);
    expect(r.info.streamed && /^streamed: no image held \(the image \([0-9.]+ GiB\) is more than half of this device's memory \(0\.00 GiB\)\)/.test(r.storage), `storage: ${r.storage}`);
    expect(r.result.stats.pageIns === nativePaged.layer_page_ins && r.result.stats.layerReads >= r.result.stats.pageIns, `${r.result.stats.pageIns} page-ins, ${r.result.stats.layerReads} reads`);
    const held = await runPage({ ...greedy, threads: '2', workspace: PAGING_WORKSPACE, hold: '65536', stream: '0' });
    expectDone(held);
    expect(held.result.text === native.text && !held.info.streamed && /memory64/.test(held.storage), `stream=0: ${held.storage}`);
    const plain = await runPage({ ...greedy, threads: '2', workspace: PAGING_WORKSPACE });
    expect(!plain.info.streamed, `a ${(plain.info.rawImageBytes / 2 ** 20).toFixed(1)} MiB image streamed by default: ${plain.storage}`);
  });
  await check('ArrayBuffer storage (no memory64) gives the same text and says so', async () => {
    const r = await runPage({ ...greedy, workspace: PAGING_WORKSPACE, arraybuffers: '1' });
    expectDone(r);
    expect(r.result.text === native.text, `page: ${JSON.stringify(r.result.text)}`);
    expect(!r.info.memory64 && /no memory64/.test(r.storage), `storage: ${r.storage}`);
  });
  await check('a truncated bundle shows an error in the page', async () => {
    const t0 = Date.now();
    const r = await runPage({ bundle: 'files/truncated.m64', prompt: PROMPT, n: String(N) });
    expect(r.state === 'error', `page ended in state ${r.state}`);
    expect(/truncated/.test(r.shownError), `page shows: ${JSON.stringify(r.shownError)}`);
    console.log(`     after ${Date.now() - t0} ms: ${r.shownError}`);
  });
  await check('a GGUF is named, with what to run instead', async () => {
    const r = await runPage({ bundle: 'files/model.gguf', prompt: PROMPT, n: String(N) });
    expect(r.state === 'error', `GGUF: page ended in state ${r.state}`);
    expect(/is a GGUF model, not an \.m64 bundle.*m64c build/.test(r.shownError), `page shows: ${JSON.stringify(r.shownError)}`);
  });
  await check('a compressed bundle (m64c compress) runs in the page with m64run\'s ids, paged on 2 threads too', async () => {
    if (!fs.existsSync(path.join(bin, 'web/zstd_decoder.wasm'))) throw new Error(`${bin}/web/zstd_decoder.wasm was not built (run web/zstd/fetch_source.sh, then cmake)`);
    for (const q of [{ threads: '1' }, { threads: '2', workspace: PAGING_WORKSPACE }]) {
      const r = await runPage({ ...greedy, bundle: 'files/compressed.m64', ...q });
      expectDone(r);
      expect(r.info.compressed, 'the page does not say the bundle is compressed');
      expect(JSON.stringify(r.result.tokens) === JSON.stringify(native.tokens), `${JSON.stringify(q)}: page ${JSON.stringify(r.result.tokens)}, m64run ${JSON.stringify(native.tokens)}`);
      console.log(`     ${JSON.stringify(q)}: ${r.result.tokens.length} tokens as m64run; ${r.result.stats.downloadedBytes} bytes downloaded for an image of ${r.info.imageBytes}`);
    }
  });
  await check('a trap in a worker share is an error on one thread and on two', async () => {
    if (!args.trap) { console.log('     skipped: no --trap bundle'); return; }
    for (const threads of ['1', '2']) {
      const r = await runPage({ bundle: 'files/trap.m64', prompt: 'worker', n: '2', threads });
      expect(r.state === 'error', `${threads} thread(s): page ended in state ${r.state}`);
      expect(/wasm trap in the model module: unreachable/.test(r.shownError), `${threads} thread(s): page shows ${JSON.stringify(r.shownError)}`);
      console.log(`     ${threads} thread(s): ${r.shownError}`);
    }
  });
  await check('SHA-256 in JS equals node\'s; a non-secure page checks layers with it on one thread', async () => {
    const { sha256Js } = await import(path.join(webDir, 'm64.js'));
    const { createHash, randomBytes } = await import('node:crypto');
    const lengths = [...Array(200).keys(), 1000, 4095, 65536, 1 << 20];
    for (const n of lengths) {
      const b = randomBytes(n);
      const want = createHash('sha256').update(b).digest('hex');
      const got = Buffer.from(sha256Js(new Uint8Array(b.buffer, b.byteOffset, n))).toString('hex');
      expect(got === want, `length ${n}: ${got} != ${want}`);
    }
    const r = await runPage({ ...greedy, threads: '2' }, { origin: base.replace('127.0.0.1', 'm64.test') });
    expectDone(r);
    expect(r.info.hashInJs && r.info.verify && /in JS: no WebCrypto/.test(r.cache), `page: hashInJs ${r.info.hashInJs}, shows ${JSON.stringify(r.cache)}`);
    expect(!r.info.crossOriginIsolated && r.info.threads === 1 && /not cross-origin isolated, so memory cannot be shared/.test(r.threads), `threads: ${JSON.stringify(r.threads)}`);
    expect(r.result.text === native.text, `page: ${JSON.stringify(r.result.text)}`);
    console.log(`     ${lengths.length} lengths; page: ${r.threads}`);
  });
  await check('spaces on a vocabulary without "▁" tokenize as in m64run', async () => {
    const want = JSON.parse(String(execFileSync(path.join(bin, 'cmd/m64run'), [nospace, '-p', ' a', '-n', '1', '--temp', '0', '--json'],
      { stdio: ['ignore', 'pipe', 'ignore'] })).trim().split('\n').pop());
    expect(want.prompt_tokens.length === 5, `m64run: ${JSON.stringify(want.prompt_tokens)}`);
    const r = await runPage({ bundle: 'files/nospace.m64', prompt: ' a', n: '1', temp: '0', threads: '1' });
    expectDone(r);
    expect(JSON.stringify(r.result.promptTokens) === JSON.stringify(want.prompt_tokens),
      `page: ${JSON.stringify(r.result.promptTokens)}, m64run: ${JSON.stringify(want.prompt_tokens)}`);
  });
  for (const name of Object.keys(archs))
    await check(`a ${name} bundle generates the same ids as m64run`, async () => {
      const want = JSON.parse(String(execFileSync(path.join(bin, 'cmd/m64run'), [path.join(work, `${name}.m64`), '-p', 'one two three', '-n', '16',
        '--temp', '0', '-t', '1', '--json'], { stdio: ['ignore', 'pipe', 'ignore'] })).trim().split('\n').pop());
      const r = await runPage({ bundle: `files/${name}.m64`, prompt: 'one two three', n: '16', temp: '0', threads: '1' });
      expectDone(r);
      expect(JSON.stringify(r.result.promptTokens) === JSON.stringify(want.prompt_tokens), `prompt: page ${JSON.stringify(r.result.promptTokens)}`);
      expect(want.tokens.length > 0 && JSON.stringify(r.result.tokens) === JSON.stringify(want.tokens),
        `page: ${JSON.stringify(r.result.tokens)}, m64run: ${JSON.stringify(want.tokens)}`);
    });
  await check('a Q4_K_M bundle runs the relaxed-SIMD module with m64run\'s ids, and the SIMD128 one with relaxed=0', async () => {
    const want = JSON.parse(String(execFileSync(path.join(bin, 'cmd/m64run'), [kq, '-p', 'one two three', '-n', '16',
      '--temp', '0', '-t', '2', '--json'], { stdio: ['ignore', 'pipe', 'ignore'] })).trim().split('\n').pop());
    for (const relaxed of [true, false]) {
      const r = await runPage({ bundle: 'files/kq.m64', prompt: 'one two three', n: '16', temp: '0', threads: '2', ...(relaxed ? {} : { relaxed: '0' }) });
      expectDone(r);
      expect(r.info.relaxedSimd === relaxed, `module: ${r.info.moduleNote}`);
      expect(r.threads.endsWith(`module: ${r.info.moduleNote}`), `the page shows ${JSON.stringify(r.threads)}`);
      expect(want.tokens.length > 0 && JSON.stringify(r.result.tokens) === JSON.stringify(want.tokens),
        `${r.info.moduleNote}: page ${JSON.stringify(r.result.tokens)}, m64run ${JSON.stringify(want.tokens)}`);
    }
  });
  // whole, and in a workspace where experts stream through a few slots (page and pager.c
  // choose the same: the same page-ins, evictions and expert hits as m64run without prefetch)
  for (const ws of ['', '4700K']) {
    await check(`an MoE bundle generates the same ids as m64run${ws ? ` (workspace ${ws}: experts paged)` : ''}`, async () => {
      const want = JSON.parse(String(execFileSync(path.join(bin, 'cmd/m64run'), [moe, '-p', 'one two three', '-n', '16', '--temp', '0',
        '-t', '2', '--json', ...(ws ? ['--workspace', ws, '--no-prefetch'] : [])], { stdio: ['ignore', 'pipe', 'ignore'] })).trim().split('\n').pop());
      const r = await runPage({ bundle: 'files/moe.m64', prompt: 'one two three', n: '16', temp: '0', threads: '2', ...(ws ? { workspace: ws } : {}) });
      expectDone(r);
      expect(want.tokens.length > 0 && JSON.stringify(r.result.tokens) === JSON.stringify(want.tokens),
        `page: ${JSON.stringify(r.result.tokens)}, m64run: ${JSON.stringify(want.tokens)}`);
      const s = r.result.stats;
      expect(s.expertAcquires === want.expert_requests, `expert requests: page ${s.expertAcquires}, m64run ${want.expert_requests}`);
      if (ws) { // (whole, m64run's prefetch thread turns first uses into hits; the page has none)
        expect(s.expertHits === want.expert_hits && s.expertPageIns === want.expert_page_ins,
          `expert hits, page-ins: page ${s.expertHits}, ${s.expertPageIns}; m64run ${want.expert_hits}, ${want.expert_page_ins}`);
        expect(want.evictions > 0 && want.expert_hits < want.expert_requests, `m64run did not page experts with --workspace ${ws}`);
        expect(s.pageIns === want.layer_page_ins && s.evictions === want.evictions && s.cacheSlots === want.cache_slots,
          `page: ${s.pageIns} page-ins, ${s.evictions} evictions, ${s.cacheSlots} slots; m64run: ${want.layer_page_ins}, ${want.evictions}, ${want.cache_slots}`);
      }
    });
  }
  await check('a two-turn chat runs the same ids as m64run -i', async () => {
    if (!fs.existsSync(l3)) { console.log('     skipped: llama3-bpe-tiny.gguf absent'); return; }
    const turns = ['Hello there', 'What is 2+2?'];
    // m64run -i -v prints each turn's ids on stderr
    const native = [...String(execFileSync('sh', ['-c', `printf '%s\\n' "$@" | "${path.join(bin, 'cmd/m64run')}" "${l3}" -i --temp 0 -n 4 -t 1 -v --system 'Be brief.' 2>&1 >/dev/null`, 'sh', ...turns]))
      .matchAll(/turn (\d+): prompt: \d+ tokens at positions (\d+)\.\.\d+: \[([0-9,]*)\]/g)].map((m) => ({ pos: Number(m[2]), ids: m[3] }));
    expect(native.length === 2, `m64run -i gave ${native.length} turns`);
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`${base}index.html?${new URLSearchParams({ bundle: 'files/llama3.m64', chat: '1', n: '4', temp: '0', system: 'Be brief.' })}`);
    for (let t = 0; t < 2; t++) {
      await page.fill('#prompt', turns[t]);
      await page.click('#go');
      await page.waitForFunction((k) => (window.m64page?.turns?.length === k && window.m64page.state === 'done') || window.m64page?.state === 'error', t + 1, { timeout: 60000 });
    }
    const got = await page.evaluate(() => ({ state: m64page.state, error: m64page.error, turns: (m64page.turns || []).map((r) => ({ pos: r.pos, ids: r.turnTokens.join(','), template: r.template })) }));
    await page.close();
    expect(got.state === 'done' && !errors.length, `page: ${got.state} ${got.error} ${errors.join('; ')}`);
    expect(got.turns.length === 2 && got.turns[0].template === 'llama3', `page turns: ${JSON.stringify(got.turns)}`);
    for (let t = 0; t < 2; t++)
      expect(got.turns[t].pos === native[t].pos && got.turns[t].ids === native[t].ids,
        `turn ${t + 1}: page ${JSON.stringify(got.turns[t])}, m64run ${JSON.stringify(native[t])}`);
    console.log(`     turn 2 starts at position ${got.turns[1].pos} in both, ${native[1].ids.split(',').length} tokens`);
  });
  await check('a 2-segment bundle (--segment-max) runs from 2 memory64 memories with m64run\'s ids, compressed too', async () => {
    const n2 = JSON.parse(String(execFileSync(path.join(bin, 'cmd/m64run'), [path.join(work, 'seg2.m64'), '-p', PROMPT, '-n', String(N), '--temp', '0', '--json', '-t', '1'],
      { stdio: ['ignore', 'pipe', 'ignore'] })).trim().split('\n').pop());
    expect(JSON.stringify(n2.tokens) === JSON.stringify(native.tokens), 'm64run gives other ids for the 2-segment bundle');
    for (const b of ['seg2.m64', 'seg2z.m64']) {
      const r = await runPage({ ...greedy, bundle: `files/${b}` });
      expectDone(r);
      expect(/memory64 active \(2 memory64 memories\)/.test(r.storage), `${b}: storage ${JSON.stringify(r.storage)}`);
      expect(JSON.stringify(r.result.tokens) === JSON.stringify(n2.tokens), `${b}: page ${JSON.stringify(r.result.tokens)}, m64run ${JSON.stringify(n2.tokens)}`);
      console.log(`     ${b}: ${r.storage}; ${r.result.tokens.length} tokens as m64run`);
    }
  });
  await check('a signed bundle shows its signer in the page', async () => {
    if (!args.signed) { console.log('     skipped: no --signed bundle'); return; }
    const page = await browser.newPage();
    await page.goto(`${base}index.html?${new URLSearchParams({ bundle: 'files/signed.m64', prompt: 'a', n: '2', temp: '0', run: '1' })}`);
    await page.waitForFunction(() => ['done', 'error'].includes(window.m64page?.state), null, { timeout: 60000 });
    const r = await page.evaluate(() => ({ state: m64page.state, error: m64page.error, sig: document.getElementById('signature').textContent }));
    await page.close();
    expect(r.state === 'done', `page: ${r.state} ${r.error}`);
    expect(/^valid, signer ed25519:[0-9a-f]{32} /.test(r.sig), `the signature row shows ${JSON.stringify(r.sig)}`);
    console.log(`     ${r.sig}`);
  });
  await check('a server that never answers, or stalls mid-segment, is a timeout error, not a pending open', async () => {
    for (const [what, port, needle] of [['silent', silent.address().port, /no answer from .* within 2 s while reading the header/],
      ['stalling', stalling.address().port, /no answer from .* within 2 s while reading segment\.0/]]) {
      const t0 = Date.now();
      const r = await runPage({ ...greedy, bundle: `http://127.0.0.1:${port}/stories260K.m64`, timeout: '2' });
      const ms = Date.now() - t0;
      expect(r.state === 'error', `${what}: page ended in state ${r.state}`);
      expect(needle.test(r.shownError), `${what}: page shows ${JSON.stringify(r.shownError)}`);
      expect(!/loading/.test(r.speed), `${what}: the status line still says ${JSON.stringify(r.speed)}`);
      console.log(`     ${what}: after ${ms} ms: ${r.shownError}`);
    }
  });
  await check('Stop ends a long generation early with the greedy ids so far', async () => {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    // paged on one thread: slow enough that the generation is still running when Stop is pressed
    await page.goto(`${base}index.html?${new URLSearchParams({ ...greedy, n: '100000', workspace: PAGING_WORKSPACE, run: '1' })}`);
    await page.waitForFunction(() => (document.getElementById('generated')?.textContent.length > 0) || window.m64page?.state === 'error', null, { timeout: 60000 });
    await page.click('#stop');
    await page.waitForFunction(() => ['done', 'error'].includes(window.m64page?.state), null, { timeout: 60000 });
    const r = await page.evaluate(() => ({ state: m64page.state, error: m64page.error, result: m64page.result, nCtx: m64page.info?.nCtx,
      speed: document.getElementById('speed').textContent, stopDisabled: document.getElementById('stop').disabled }));
    await page.close();
    expect(r.state === 'done' && !errors.length, `page: ${r.state} ${r.error} ${errors.join('; ')}`);
    const all = r.nCtx - r.result.promptTokens.length;
    expect(r.result.stopped && r.result.tokens.length < all, `stopped ${r.result.stopped} after ${r.result.tokens.length} of ${all} tokens`);
    const k = Math.min(r.result.tokens.length, native.tokens.length);
    expect(JSON.stringify(r.result.tokens.slice(0, k)) === JSON.stringify(native.tokens.slice(0, k)), 'the ids before Stop are not m64run\'s');
    expect(/stopped/.test(r.speed) && r.stopDisabled, `status ${JSON.stringify(r.speed)}, Stop button disabled: ${r.stopDisabled}`);
    console.log(`     stopped after ${r.result.tokens.length} of ${all} tokens`);
  });
  await check('top-k and seed from the form sample as m64run --top-k --seed', async () => {
    const sampled = (k) => m64run(['-t', '1', '--temp', '0.9', '--top-k', k, '--seed', '4242']);
    const k2 = sampled('2'), k40 = sampled('40');
    expect(JSON.stringify(k2.tokens) !== JSON.stringify(k40.tokens), 'top-k 2 and 40 sample the same ids with this seed: the test needs another');
    for (const [k, want] of [['2', k2], ['40', k40]]) {
      const r = await runPage({ ...greedy, temp: '0.9', topk: k, seed: '4242' });
      expectDone(r);
      expect(JSON.stringify(r.result.tokens) === JSON.stringify(want.tokens), `top-k ${k}: page ${JSON.stringify(r.result.tokens)}, m64run ${JSON.stringify(want.tokens)}`);
    }
  });
} finally {
  for (const c of sockets) c.destroy();
  silent.close();
  stalling.close();
  await browser.close();
  server.kill();
  fs.rmSync(work, { recursive: true, force: true });
}
console.log(`web: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
