// layer_decoder.js — mirrors formats/bundle/compress.c's layer decoding (walk): a JS twin because the page decodes into memory64 memories C cannot reach; zstd itself is zstd's own code (zstd.js).
import { fail } from './common.js';

// Block fields per ggml type: [block bytes, [offset, length, element size]...] (docs/FORMAT.md).
const FIELDS = new Map([
  [0, [4, [[0, 4, 4]]]], [1, [2, [[0, 2, 2]]]], [30, [2, [[0, 2, 2]]]],
  [2, [18, [[0, 2, 2], [2, 16, 1]]]], [3, [20, [[0, 2, 2], [2, 2, 2], [4, 16, 1]]]],
  [6, [22, [[0, 2, 2], [2, 4, 1], [6, 16, 1]]]], [7, [24, [[0, 2, 2], [2, 2, 2], [4, 4, 1], [8, 16, 1]]]],
  [8, [34, [[0, 2, 2], [2, 32, 1]]]], [20, [18, [[0, 2, 2], [2, 16, 1]]]],
  [10, [84, [[0, 16, 1], [16, 64, 1], [80, 2, 2], [82, 2, 2]]]],
  [11, [110, [[0, 32, 1], [32, 64, 1], [96, 12, 1], [108, 2, 2]]]],
  [12, [144, [[0, 2, 2], [2, 2, 2], [4, 12, 1], [16, 128, 1]]]],
  [13, [176, [[0, 2, 2], [2, 2, 2], [4, 12, 1], [16, 32, 1], [48, 128, 1]]]],
  [14, [210, [[0, 128, 1], [128, 64, 1], [192, 16, 1], [208, 2, 2]]]],
  [23, [136, [[0, 2, 2], [2, 2, 2], [4, 4, 1], [8, 128, 1]]]],
]);
const CHUNK_MIN = 4 << 10, CHUNK_MAX = 64 << 20;
const RAW_MAGIC = 0x184d2a50, RAW_HEADER = 8;

// Raw bytes per frame for a tensor of this type: whole blocks, at least one.
function chunkBytes(type, chunkSize) {
  const bb = FIELDS.has(type) ? FIELDS.get(type)[0] : 1;
  return Math.floor(chunkSize / bb) * bb || bb;
}

// The streams a chunk of n bytes is stored as: per field and byte of its element, then
// the tail shorter than a block; without fields, the whole chunk.
function chunkStreams(bf, n) {
  if (!bf) return [n];
  const nb = Math.floor(n / bf[0]), lens = [];
  for (const [, len, elem] of bf[1]) for (let b = 0; b < elem; b++) lens.push(nb * (len / elem));
  lens.push(n - nb * bf[0]);
  return lens;
}

// Joins the streams in `from` back into n bytes of blocks at `to` (compress.c transform, dir < 0).
function join(bf, from, to, n) {
  const bb = bf[0], nb = Math.floor(n / bb);
  let s = 0;
  for (const [off, len, elem] of bf[1]) {
    if (elem === 1) {
      // a copy per block; for short fields (scales: 4..32 bytes) a loop beats making a view
      if (len >= 64) for (let k = 0; k < nb; k++, s += len) to.set(from.subarray(s, s + len), k * bb + off);
      else for (let k = 0; k < nb; k++) for (let i = 0, o = k * bb + off; i < len; i++) to[o + i] = from[s++];
      continue;
    }
    const per = len / elem, ne = nb * per;
    for (let k = 0, j = 0; k < nb; k++)
      for (let x = 0; x < per; x++, j++) {
        const o = k * bb + off + x * elem;
        for (let b = 0; b < elem; b++) to[o + b] = from[s + b * ne + j];
      }
    s += ne * elem;
  }
  to.set(from.subarray(s, s + n - nb * bb), nb * bb);
}

// Decodes layer L's stored frames (stored: exactly its stored_size bytes) into dst, its raw
// layout (L.size bytes): every frame into exactly its stream's place, gaps zeroed; a
// frame of another size, a truncated frame or bytes after the last one are errors naming the layer.
export function decodeLayer(z, L, tensors, stored, dst) {
  if (L.codec !== 1) fail(`layer ${L.name}: unknown codec ${L.codec}`);
  if (L.filter > 1) fail(`layer ${L.name}: unknown filter ${L.filter}`);
  if (L.chunkSize < CHUNK_MIN || L.chunkSize > CHUNK_MAX || (L.chunkSize & (L.chunkSize - 1)))
    fail(`layer ${L.name}: chunk size ${L.chunkSize} is not a power of two in [${CHUNK_MIN}, ${CHUNK_MAX}]`);
  let need = 1;
  for (let t = L.firstTensor; t < L.firstTensor + L.nTensors; t++)
    need = Math.max(need, Math.min(tensors[t].nbytes, chunkBytes(tensors[t].type, L.chunkSize)));
  z.setInput(stored, need);
  const scratch = new Uint8Array(need), sv = new DataView(stored.buffer, stored.byteOffset, stored.byteLength);
  let pos = 0, rawAt = 0;
  for (let t = L.firstTensor; t < L.firstTensor + L.nTensors; t++) {
    const te = tensors[t];
    const bf = L.filter === 1 ? FIELDS.get(te.type) || null : null;
    const cb = chunkBytes(te.type, L.chunkSize);
    dst.fill(0, rawAt, te.offset);
    for (let off = 0; off < te.nbytes; off += cb) {
      const len = Math.min(te.nbytes - off, cb), lens = chunkStreams(bf, len);
      const base = bf ? scratch : dst.subarray(te.offset + off, te.offset + off + len);
      for (let k = 0, at = 0; k < lens.length; at += lens[k], k++) {
        const want = lens[k];
        if (want === 0) continue;
        const rem = stored.length - pos;
        if (rem >= RAW_HEADER && sv.getUint32(pos, true) === RAW_MAGIC) { // stored as is
          if (sv.getUint32(pos + 4, true) !== want || rem - RAW_HEADER < want)
            fail(`layer ${L.name}: raw chunk at stored +${pos} claims ${sv.getUint32(pos + 4, true)} bytes, its stream of ${te.name} has ${want} (${rem} left)`);
          base.set(stored.subarray(pos + RAW_HEADER, pos + RAW_HEADER + want), at);
          pos += RAW_HEADER + want;
          continue;
        }
        if (rem === 0) fail(`layer ${L.name}: frames end before tensor ${te.name} at +${off}`);
        const cs = z.contentSize(pos);
        if (cs < 0) fail(`layer ${L.name}: no zstd frame of declared size at stored +${pos}`);
        if (cs !== want) fail(`layer ${L.name}: frame at stored +${pos} claims ${cs} bytes, its stream of ${te.name} has ${want}`);
        const fsz = z.frameSize(pos);
        if (fsz < 0) fail(`layer ${L.name}: truncated zstd frame at stored +${pos}`);
        const out = z.decompress(pos, fsz, want);
        if (typeof out === 'string') fail(`layer ${L.name}: frame at stored +${pos}: ${out}`);
        base.set(out, at);
        pos += fsz;
      }
      if (bf) join(bf, scratch, dst.subarray(te.offset + off, te.offset + off + len), len);
    }
    rawAt = te.offset + te.nbytes;
  }
  dst.fill(0, rawAt, L.size);
  if (pos !== stored.length) fail(`layer ${L.name}: ${stored.length - pos} stored bytes after its last frame`);
}
