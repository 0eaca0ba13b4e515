// signature.js — mirrors formats/sign/signature.c (the check only): a JS twin because the page verifies with WebCrypto's Ed25519, not libsodium.
import { fail, hex } from './common.js';
import { RECORD_SIZE, SEC, parseLayerIndex, readHeader, readSection } from './bundle_reader.js';
import { sha256 } from './sha256.js';

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
  const per = hdr.compressed ? 64 : 32; // a compressed bundle's layers: raw and stored SHA-256
  const m = new Uint8Array(dom.length + 1 + 64 + hdr.table.length + 4 + per * layers.length);
  let o = 0;
  m.set(dom, o); o += dom.length + 1; // with its NUL
  m.set(hdr.head, o); o += 64;
  m.set(hdr.table, o);
  m.fill(0, o + sigIndex * RECORD_SIZE + 72, o + sigIndex * RECORD_SIZE + 104); // the record's own hash
  o += hdr.table.length;
  new DataView(m.buffer).setUint32(o, layers.length, true); o += 4;
  for (const L of layers) {
    m.set(L.sha256, o); o += 32;
    if (hdr.compressed) { m.set(L.storedSha256, o); o += 32; }
  }
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

// The signature of the bundle at url, as the page reports it (for tools and tests); z: a
// zstd decoder (zstd.js), needed for a compressed bundle.
export async function bundleSignature(url, timeoutMs, z) {
  const hdr = await readHeader(url, timeoutMs);
  const idxSec = hdr.sections.find((s) => s.kind === SEC.LAYER_INDEX), sigSec = hdr.sections.find((s) => s.kind === SEC.SIGNATURE);
  if (!idxSec) fail('bundle has no layer index');
  const segments = [];
  for (const s of hdr.sections) if (s.kind === SEC.SEGMENT) segments[Number(s.name.slice(8))] = s;
  const { layers } = parseLayerIndex(await readSection(url, idxSec, timeoutMs, z), segments, hdr.compressed);
  return checkSignature(hdr, sigSec ? await readSection(url, sigSec, timeoutMs, z) : null, layers);
}
