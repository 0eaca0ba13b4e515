#!/usr/bin/env node
// signature_test.mjs — the browser host's signature check (web/signature.js checkSignature, as
// M64.open runs it) in Node 20, whose WebCrypto has Ed25519, against bundles m64c signed:
//   1. a signed bundle (test/security's fixture) is 'valid', with the signer fingerprint
//      `m64c info` prints;
//   2. an unsigned bundle is 'unsigned';
//   3. a layer hash changed after signing (every SHA-256 over it made to match) is
//      'invalid', as m64run finds it;
//   4. a signed bundle compressed with the key (m64c compress --key) is 'valid' too: its
//      layers' stored SHA-256 are signed with their raw ones;
//   5. where WebCrypto has no Ed25519, the status is 'unchecked' and the text says
//      "signature not checked (no Ed25519 in this browser)";
//   and every text says the check is informational in the browser.
// Usage: node signature_test.mjs --bin BUILD_DIR --art SECURITY_ARTIFACTS
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
if (!args.bin || !args.art) {
  console.error('usage: node signature_test.mjs --bin BUILD_DIR --art SECURITY_ARTIFACTS');
  process.exit(2);
}
if (!globalThis.crypto?.subtle) {
  console.error('signature: this Node has no WebCrypto (Node 20 or later is needed)');
  process.exit(1);
}
const { bundleSignature } = await import(path.join(webDir, 'm64.js'));

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'm64-sig-'));
const signedPath = path.join(args.art, 'tiny_signed.m64');
fs.copyFileSync(signedPath, path.join(work, 'signed.m64'));
fs.copyFileSync(path.join(args.art, 'tiny_a.m64'), path.join(work, 'unsigned.m64'));
execFileSync(path.join(args.bin, 'cmd/m64c'), ['compress', '-q', signedPath, '-o', path.join(work, 'signedz.m64'), '--key', path.join(args.art, 'publisher.key')]);
const zstdWasm = path.join(args.bin, 'web/zstd_decoder.wasm');
if (fs.existsSync(zstdWasm)) fs.copyFileSync(zstdWasm, path.join(work, 'zstd_decoder.wasm'));

// A layer hash changed, then every section hash and the header hash made to match it: only
// the signature can tell.
{
  const b = fs.readFileSync(signedPath), u32 = (o) => b.readUInt32LE(o), u64 = (o) => Number(b.readBigUInt64LE(o));
  const n = u32(16), sha = (buf) => createHash('sha256').update(buf).digest();
  for (let i = 0; i < n; i++) {
    const r = 96 + 128 * i;
    if (u32(r) === 3) b[u64(r + 56) + 32 + 64 + 5] ^= 0x20; // LAYER_INDEX: layer 0's sha256
  }
  for (let i = 0; i < n; i++) {
    const r = 96 + 128 * i;
    if (u32(r) !== 6) sha(b.subarray(u64(r + 56), u64(r + 56) + u64(r + 64))).copy(b, r + 72);
  }
  sha(Buffer.concat([b.subarray(0, 64), b.subarray(96, 96 + 128 * n)])).copy(b, 64);
  fs.writeFileSync(path.join(work, 'tampered.m64'), b);
}

// The fingerprint m64c prints for the signer (with an empty trust ring: an unknown signer).
const info = execFileSync(path.join(args.bin, 'cmd/m64c'), ['info', signedPath],
  { env: { ...process.env, M64_TRUST_DIR: path.join(work, 'no-ring') } }).toString();
const want = /signature: unknown signer (ed25519:[0-9a-f]{32})/.exec(info)?.[1];

const server = spawn(process.execPath, [path.join(webDir, 'serve.mjs'), '--port', '0', `/files/=${work}`],
  { stdio: ['ignore', 'pipe', 'inherit'] });
let failed = 0;
const check = (ok, what, detail) => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}${ok ? '' : `: ${detail}`}`);
  if (!ok) failed++;
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
  const url = (f) => `${base}files/${f}`;
  check(!!want, 'm64c info names the signer', info);

  const s = await bundleSignature(url('signed.m64'));
  check(s.status === 'valid', 'a bundle m64c signed verifies with WebCrypto Ed25519', JSON.stringify(s));
  check(s.fingerprint === want, 'the page shows the fingerprint m64c shows', `${s.fingerprint} vs ${want}`);
  check(s.text.includes('informational'), 'the page says the check is informational', s.text);

  const { Zstd } = await import(path.join(webDir, 'zstd.js'));
  const z = await Zstd.load(url('zstd_decoder.wasm')); // (built by cmake from Debian's zstd sources)
  const sz = await bundleSignature(url('signedz.m64'), undefined, z);
  check(sz.status === 'valid' && sz.fingerprint === want, 'a signed bundle compressed with the key verifies', JSON.stringify(sz));

  const u = await bundleSignature(url('unsigned.m64'));
  check(u.status === 'unsigned' && u.text === 'signature: unsigned', 'an unsigned bundle is unsigned', JSON.stringify(u));

  const t = await bundleSignature(url('tampered.m64'));
  check(t.status === 'invalid' && t.fingerprint === want, 'a layer hash changed after signing is invalid', JSON.stringify(t));
  check(t.text.includes('INVALID') && t.text.includes('m64run refuses'), 'and the page says so', t.text);

  // a browser whose WebCrypto lacks Ed25519
  const importKey = crypto.subtle.importKey;
  crypto.subtle.importKey = function (format, key, alg, ...rest) {
    if (alg?.name === 'Ed25519') return Promise.reject(new DOMException('Ed25519 is not supported', 'NotSupportedError'));
    return importKey.call(this, format, key, alg, ...rest);
  };
  const n = await bundleSignature(url('signed.m64'));
  crypto.subtle.importKey = importKey;
  check(n.status === 'unchecked' && n.fingerprint === want, 'without Ed25519 the signature is not checked', JSON.stringify(n));
  check(n.text.startsWith('signature not checked (no Ed25519 in this browser)'), 'and the page says so', n.text);
} catch (e) {
  check(false, 'the test ran', e.stack || e);
} finally {
  server.kill();
  fs.rmSync(work, { recursive: true, force: true });
}
console.log(failed ? `signature: ${failed} failed` : 'signature: all passed');
process.exit(failed ? 1 : 0);
