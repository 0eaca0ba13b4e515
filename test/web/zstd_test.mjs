#!/usr/bin/env node
// zstd_test.mjs — the page's decoding of compressed bundles (web/zstd.js: zstd's own
// decompressor built to wasm from Debian's sources; web/layer_decoder.js: chunks, streams
// and split block fields as formats/bundle/compress.c) in Node, without a browser:
//   1. synthetic models covering every block type the format splits (F32, F16, BF16, Q8_0,
//      Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, IQ4_XS, Q2_K..Q6_K), each compressed by m64c with
//      the default chunking, with 4 KiB chunks (many chunks, short tails), without the
//      field split, and with --min-gain 50 (raw frames): every section's content (but the
//      index, whose layer records grow) and every layer decodes to the raw layout whose SHA-256 the index records, byte for byte the
//      uncompressed bundle's layer;
//   2. damaged frames (a flipped byte, a cut) end in an error naming the layer, never in
//      a crash, a hang or a wrong layer taken for right.
// Usage: node zstd_test.mjs --bin BUILD_DIR
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const webDir = path.resolve(here, '../../web');
const args = {};
for (let i = 2; i + 1 < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
if (!args.bin) {
  console.error('usage: node zstd_test.mjs --bin BUILD_DIR');
  process.exit(2);
}
const wasm = path.join(args.bin, 'web/zstd_decoder.wasm');
if (!fs.existsSync(wasm)) {
  console.error(`zstd: ${wasm} was not built: run web/zstd/fetch_source.sh (cmd/setup.sh does), then cmake`);
  process.exit(1);
}
const { SEC, parseLayerIndex, readHeader, readSection } = await import(path.join(webDir, 'bundle_reader.js'));
const { Zstd } = await import(path.join(webDir, 'zstd.js'));
const { decodeLayer } = await import(path.join(webDir, 'layer_decoder.js'));
const { BundleError } = await import(path.join(webDir, 'common.js'));

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'm64-zstd-'));
const m64c = (...a) => execFileSync(path.join(args.bin, 'cmd/m64c'), a, { stdio: ['ignore', 'ignore', 'inherit'] });
const synth = (...a) => execFileSync(path.join(args.bin, 'test/support/m64-synth'), a, { stdio: ['ignore', 'ignore', 'inherit'] });
const MODELS = {
  k_low: ['--mix', 'q2_k'],
  k_high: ['--mix', 'q5_k_m', '--type-ffn-down', 'q4_k'],
  legacy: ['--type', 'q4_1', '--type-embd', 'q5_0', '--type-output', 'q5_1', '--type-ffn-down', 'iq4_nl', '--type-attn-v', 'iq4_xs'],
  mixed: ['--type', 'q4_0', '--type-embd', 'bf16', '--type-output', 'q8_0', '--type-ffn-down', 'q3_k', '--type-attn-v', 'f16'],
};
const VARIANTS = { default: [], chunk4k: ['--chunk', '4K'], nosplit: ['--no-split'], raw: ['--min-gain', '50'] };

const server = spawn(process.execPath, [path.join(webDir, 'serve.mjs'), '--port', '0', `/=${work}`], { stdio: ['ignore', 'pipe', 'inherit'] });
let failed = 0, passed = 0;
const check = (ok, what, detail) => {
  if (ok) passed++;
  else { failed++; console.log(`FAIL ${what}: ${detail}`); }
};
try {
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
  fs.copyFileSync(wasm, path.join(work, 'zstd_decoder.wasm'));
  let z = null;
  const types = new Set();

  // The layers of a bundle at url: index, tensors, and the raw bytes of each (decoded when compressed).
  async function open(url) {
    const hdr = await readHeader(url);
    const segs = [];
    for (const s of hdr.sections) if (s.kind === SEC.SEGMENT) segs[Number(s.name.slice(8))] = s;
    const contents = {};
    for (const s of hdr.sections) if (s.kind !== SEC.SEGMENT) contents[s.name] = await readSection(url, s, undefined, z);
    const { layers, tensors } = parseLayerIndex(contents.layers, segs, hdr.compressed);
    return { hdr, layers, tensors, contents };
  }

  // every bundle first: node's fetch may reuse a keep-alive socket the server has closed
  // meanwhile, which the seconds of a build would make likely
  for (const [name, flags] of Object.entries(MODELS)) {
    const gguf = path.join(work, `${name}.gguf`), plain = path.join(work, `${name}.m64`);
    synth('--shape', 'small', ...flags, '-o', gguf);
    m64c('build', '-q', '--no-aot', gguf, '-o', plain);
    for (const [variant, vflags] of Object.entries(VARIANTS)) m64c('compress', '-q', plain, '-o', path.join(work, `${name}.${variant}.m64`), ...vflags);
  }
  z = await Zstd.load(`${base}zstd_decoder.wasm`);
  for (const name of Object.keys(MODELS)) {
    const plain = path.join(work, `${name}.m64`);
    const raw = await open(`${base}${name}.m64`), bytes = fs.readFileSync(plain);
    for (const t of raw.tensors) types.add(t.type);
    for (const variant of Object.keys(VARIANTS)) {
      const file = `${name}.${variant}.m64`;
      const c = await open(`${base}${file}`);
      check(c.hdr.compressed, `${file} is compressed`, 'no flag');
      for (const [sec, content] of Object.entries(c.contents))
        if (sec !== 'layers') check(Buffer.compare(Buffer.from(content), Buffer.from(raw.contents[sec])) === 0, `${file}: section ${sec}`, 'differs from the uncompressed bundle\'s');
      const file8 = fs.readFileSync(path.join(work, file));
      for (let l = 0; l < c.layers.length; l++) {
        const L = c.layers[l], R = raw.layers[l];
        const stored = new Uint8Array(file8.buffer, file8.byteOffset + L.fileOffset, L.storedSize);
        check(createHash('sha256').update(stored).digest('hex') === Buffer.from(L.storedSha256).toString('hex'), `${file}: layer ${L.name} stored hash`, 'mismatch');
        const dst = new Uint8Array(L.size).fill(0xa5); // gaps must come out zero
        decodeLayer(z, L, c.tensors, stored, dst);
        check(createHash('sha256').update(dst).digest('hex') === Buffer.from(L.sha256).toString('hex'), `${file}: layer ${L.name} raw hash`, 'the decoded layer is not the one indexed');
        check(Buffer.compare(Buffer.from(dst), bytes.subarray(R.fileOffset, R.fileOffset + R.size)) === 0, `${file}: layer ${L.name}`, 'differs from the uncompressed bundle');
      }
      console.log(`ok   ${file}: ${c.layers.length} layers, ${Object.keys(c.contents).length} sections decoded as ${name}.m64`);
    }
  }
  const want = [0, 1, 30, 8, 2, 3, 6, 7, 20, 23, 10, 11, 12, 13, 14];
  check(want.every((t) => types.has(t)), 'every split block type is covered', `types seen: ${[...types].sort((a, b) => a - b)}`);

  // Damage: a flipped byte in each stored layer of one bundle, and a cut one.
  const c = await open(`${base}k_high.default.m64`), file8 = fs.readFileSync(path.join(work, 'k_high.default.m64'));
  let caught = 0;
  for (const L of c.layers) {
    const stored = file8.slice(L.fileOffset, L.fileOffset + L.storedSize);
    for (const [how, bad] of [['flipped', (() => { const b = Buffer.from(stored); b[b.length >> 1] ^= 0x5a; return b; })()],
      ['cut', stored.subarray(0, stored.length - 7)]]) {
      const dst = new Uint8Array(L.size);
      try {
        decodeLayer(z, L, c.tensors, new Uint8Array(bad), dst);
        // a flip inside a raw or literal run decodes; only the raw hash can tell, as in the page
        check(createHash('sha256').update(dst).digest('hex') !== Buffer.from(L.sha256).toString('hex'), `${how} layer ${L.name}`, 'decoded to the right hash');
      } catch (e) {
        check(e instanceof BundleError && e.message.includes(`layer ${L.name}`), `${how} layer ${L.name}`, `error ${e.stack}`);
        caught++;
      }
    }
  }
  check(caught > 0, 'damaged frames are errors', 'no damage was caught by the decoder itself');
  console.log(`ok   damaged frames: ${caught} of ${2 * c.layers.length} caught by the decoder, the rest by the raw hash`);
} catch (e) {
  check(false, 'the test ran', e.stack || e);
} finally {
  server.kill();
  fs.rmSync(work, { recursive: true, force: true });
}
console.log(`zstd: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
