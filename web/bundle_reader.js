// bundle_reader.js — mirrors formats/bundle/reader.c (header, section table, layer index, metadata): a JS twin because the page reads the bundle by Range requests, not from a mapped file.
import { WASM_PAGE, cstr, fail, u32, u64 } from './common.js';
import { fetchRange } from './http_range.js';
import { sameHash, sha256 } from './sha256.js';

export const HEADER_SIZE = 96;
export const RECORD_SIZE = 128;
const MAX_SECTIONS = 256;
export const SEC = { METADATA: 1, TOKENIZER: 2, LAYER_INDEX: 3, MODULE_WASM: 4, NATIVE: 5, SEGMENT: 6, SIGNATURE: 7 };
const MAX_LAYERS = 16384; // MoE: globals, blocks and every block's experts
const MAX_TENSORS = 65536;
const SMALL_SECTION_MAX = 256 << 20;
const SEGMENT_RAW_MAX = 16 * 2 ** 30; // a segment's raw layout, one memory64 memory

// Header and section table (docs/FORMAT.md), validated as formats/bundle/reader.c does.
export async function readHeader(url, timeoutMs) {
  const first = await fetchRange(url, 0, HEADER_SIZE, 'the header', timeoutMs);
  const h = first.bytes, dv = new DataView(h.buffer);
  const magic = new TextDecoder().decode(h.subarray(0, 7));
  if (h.length >= 4 && new TextDecoder().decode(h.subarray(0, 4)) === 'GGUF')
    fail(`${url} is a GGUF model, not an .m64 bundle: the page runs bundles; compile it with ` +
         '`m64c build MODEL.gguf -o MODEL.m64` and serve the bundle');
  if (magic !== 'M64BNDL' || h[7] !== 0) fail(`${url} is not an .m64 bundle (bad magic)`);
  const version = u32(dv, 8), flags = u32(dv, 12), nSections = u32(dv, 16);
  if (version !== 1) fail(`bundle version ${version} is not supported (this host reads version 1)`);
  if (flags & ~1) fail(`the bundle uses features this browser host does not read (flags 0x${flags.toString(16)})`);
  const compressed = (flags & 1) !== 0; // zstd sections and layers (docs/FORMAT.md "Compressed bundles")
  if (u32(dv, 20) !== HEADER_SIZE || u32(dv, 24) !== RECORD_SIZE || u64(dv, 32) !== HEADER_SIZE)
    fail('bundle header has unexpected sizes');
  if (nSections === 0 || nSections > MAX_SECTIONS) fail(`bundle declares ${nSections} sections`);
  const fileSize = u64(dv, 40);
  const total = first.total;
  if (total >= 0 && total !== fileSize)
    fail(`the bundle is truncated: the server has ${total} bytes, its header says ${fileSize}`);
  const tableLen = nSections * RECORD_SIZE;
  const table = (await fetchRange(url, HEADER_SIZE, tableLen, 'the section table', timeoutMs)).bytes;
  const hashed = new Uint8Array(64 + tableLen);
  hashed.set(h.subarray(0, 64));
  hashed.set(table, 64);
  const digest = await sha256(hashed);
  if (!sameHash(digest, h.subarray(64, 96))) fail('bundle header or section table is corrupt (SHA-256 mismatch)');

  const tdv = new DataView(table.buffer), sections = [];
  const dataStart = HEADER_SIZE + tableLen;
  for (let i = 0; i < nSections; i++) {
    const o = i * RECORD_SIZE;
    const s = { kind: u32(tdv, o), name: cstr(table, o + 4, 48), offset: u64(tdv, o + 56), size: u64(tdv, o + 64),
                sha256: table.slice(o + 72, o + 104), codec: u32(tdv, o + 52), rawSize: u64(tdv, o + 104) };
    if (s.kind < 1 || s.kind > 7 || !s.name) fail(`section ${i} is malformed`);
    if (s.codec > (compressed && s.kind !== SEC.SEGMENT ? 1 : 0)) fail(`section ${s.name} has codec ${s.codec}`);
    if (!compressed) s.rawSize = s.size; // reserved bytes there
    else if (s.codec === 0 && s.rawSize !== s.size) fail(`section ${s.name} is stored as is but claims ${s.rawSize} raw bytes`);
    if (s.offset < dataStart || s.offset + s.size > fileSize) fail(`section ${s.name} lies outside the file`);
    if (sections.some((t) => t.kind === s.kind && t.name === s.name)) fail(`section ${s.name} appears twice`);
    sections.push(s);
  }
  const sorted = [...sections].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++)
    if (sorted[i].offset < sorted[i - 1].offset + sorted[i - 1].size) fail(`sections ${sorted[i - 1].name} and ${sorted[i].name} overlap`);
  return { fileSize, sections, compressed, head: h.slice(0, 64), table }; // the bytes the signature covers
}

// A section's content, its SHA-256 checked; a zstd section decoded first by z (zstd.js).
export async function readSection(url, sec, timeoutMs, z) {
  // Real metadata, tokenizer, index and module sections are KiBs to a few MiB; a header
  // claiming more must not make the page allocate it.
  if (sec.rawSize > SMALL_SECTION_MAX) fail(`section ${sec.name} claims ${sec.rawSize} bytes (more than ${SMALL_SECTION_MAX >> 20} MiB)`);
  if (sec.codec === 1 && sec.rawSize > 256 * sec.size + 65536) fail(`section ${sec.name} claims ${sec.rawSize} raw bytes from ${sec.size} stored`);
  let { bytes } = await fetchRange(url, sec.offset, sec.size, `section ${sec.name}`, timeoutMs);
  if (sec.codec === 1) {
    if (!z) fail(`section ${sec.name} is compressed and no zstd decoder was given`);
    bytes = z.section(bytes, sec.rawSize, sec.name);
  }
  const d = await sha256(bytes);
  if (!sameHash(d, sec.sha256)) fail(`section ${sec.name} is corrupt (SHA-256 mismatch)`);
  return bytes;
}

// The LAYER_INDEX section: layers with their file ranges (and, in a compressed bundle,
// where their frames are stored and the tensors the frames are cut along). Sets each
// segment's rawSize, the bytes its layers take once decoded.
export function parseLayerIndex(u8, segments, compressed = false) {
  const dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  if (u8.length < 32) fail('layer index is too short');
  const nl = u32(dv, 0), nt = u32(dv, 4), ns = u32(dv, 8), lrec = compressed ? 160 : 96;
  if (nl < 2 || nl > MAX_LAYERS || nt > MAX_TENSORS || ns > MAX_SECTIONS) fail(`layer index declares ${nl} layers, ${nt} tensors, ${ns} segments`);
  if (u32(dv, 12) !== lrec || u32(dv, 16) !== 128) fail('layer index has unexpected record sizes');
  if (u8.length !== 32 + lrec * nl + 128 * nt) fail('layer index size does not match its counts');
  if (segments.length !== ns) fail(`layer index names ${ns} segments, the bundle has ${segments.length}`);
  const tensors = [];
  for (let t = 0, o = 32 + lrec * nl; t < nt; t++, o += 128)
    tensors.push({ name: cstr(u8, o, 64), type: u32(dv, o + 64), offset: u64(dv, o + 104), nbytes: u64(dv, o + 112) });
  const layers = [], storedEnd = new Array(ns).fill(0);
  for (const seg of segments) seg.rawSize = compressed ? 0 : seg.size;
  for (let l = 0; l < nl; l++) {
    const o = 32 + lrec * l;
    const L = { name: cstr(u8, o, 32), segment: u32(dv, o + 32), firstTensor: u32(dv, o + 36), nTensors: u32(dv, o + 40),
                offset: u64(dv, o + 48), size: u64(dv, o + 56), sha256: u8.slice(o + 64, o + 96) };
    if (L.segment >= ns) fail(`layer ${L.name} is in segment ${L.segment} of ${ns}`);
    const seg = segments[L.segment];
    if (L.size === 0 || L.size > 4 * 2 ** 30) fail(`layer ${L.name} has ${L.size} bytes`);
    if (L.offset % WASM_PAGE || L.offset + L.size > (compressed ? SEGMENT_RAW_MAX : seg.size)) fail(`layer ${L.name} lies outside its segment`);
    if (compressed) {
      Object.assign(L, { storedOffset: u64(dv, o + 96), storedSize: u64(dv, o + 104), storedSha256: u8.slice(o + 112, o + 144),
                         codec: u32(dv, o + 144), filter: u32(dv, o + 148), chunkSize: u32(dv, o + 152) });
      // frames back to back in layer order inside the segment; a bounded expansion
      if (L.storedOffset < storedEnd[L.segment] || L.storedSize === 0 || L.storedOffset + L.storedSize > seg.size)
        fail(`layer ${L.name}: its frames lie outside its segment or out of order`);
      if (L.size > 256 * L.storedSize + 65536) fail(`layer ${L.name} claims ${L.size} raw bytes from ${L.storedSize} stored`);
      storedEnd[L.segment] = L.storedOffset + L.storedSize;
      seg.rawSize = Math.max(seg.rawSize, L.offset + L.size);
      if (L.firstTensor > nt || L.nTensors > nt - L.firstTensor) fail(`layer ${L.name} names tensors past the index`);
      for (let t = L.firstTensor, end = 0; t < L.firstTensor + L.nTensors; t++) {
        const te = tensors[t];
        if (te.offset < end || te.offset + te.nbytes > L.size) fail(`tensor ${te.name} lies outside its layer ${L.name}`);
        end = te.offset + te.nbytes;
      }
      L.fileOffset = seg.offset + L.storedOffset;
    } else L.fileOffset = seg.offset + L.offset;
    layers.push(L);
  }
  return { layers, tensors };
}

export function parseMetadata(bytes) {
  const meta = {};
  for (const line of new TextDecoder().decode(bytes).split('\n')) {
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const k = line.slice(0, eq).trim();
    if (!(k in meta)) meta[k] = line.slice(eq + 1).trim();
  }
  return meta;
}

