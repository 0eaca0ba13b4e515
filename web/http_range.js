// http_range.js — mirrors formats/common/io.c (reading a file's bytes): a JS twin because the page reads the bundle over HTTP Range requests.
import { fail } from './common.js';

// How long a read may wait for the server: for a small range, the whole answer; for a
// streamed segment, each next chunk. A server that accepts and never answers must end
// M64.open with an error, not leave it pending forever.
export const DEFAULT_TIMEOUT_MS = 30000;

// Total size from a Content-Range header ("bytes a-b/total"), or -1.
function rangeTotal(res) {
  const m = /\/(\d+)\s*$/.exec(res.headers.get('Content-Range') || '');
  return m ? Number(m[1]) : -1;
}

// An AbortController whose timer aborts the request when it runs out; arm() restarts it.
function watchdog(timeoutMs) {
  const ctl = new AbortController();
  let timer = 0;
  const w = {
    signal: ctl.signal,
    timedOut: false,
    arm() {
      clearTimeout(timer);
      timer = setTimeout(() => { w.timedOut = true; ctl.abort(); }, timeoutMs);
    },
    done() { clearTimeout(timer); },
  };
  w.arm();
  return w;
}

const seconds = (ms) => `${+(ms / 1000).toFixed(3)} s`;

// Runs step (a fetch, or a read of its body); a timeout or a network error becomes a BundleError naming what was read.
async function guarded(w, step, url, what, timeoutMs) {
  try {
    return await step();
  } catch (e) {
    w.done();
    if (w.timedOut) fail(`no answer from ${new URL(url).host} within ${seconds(timeoutMs)} while reading ${what} of ${url}: the server is not answering (timeout)`);
    fail(`cannot read ${what} from ${url}: ${e.message}`);
  }
}

// The response to a Range request for bytes [start, start + len), checked to be a 206.
async function rangeResponse(url, start, len, what, w, timeoutMs) {
  const res = await guarded(w, () => fetch(url, { headers: { Range: `bytes=${start}-${start + len - 1}` }, signal: w.signal }), url, what, timeoutMs);
  if (res.status === 206) return res;
  w.done();
  if (res.status === 416) fail(`${url} ends before ${what} (byte ${start}): the bundle is truncated`);
  if (res.ok) fail(`the server answered ${res.status} to a Range request: it must honour Range (serve with web/serve.mjs)`);
  fail(`cannot read ${url}: HTTP ${res.status} ${res.statusText}`);
}

// Bytes [start, start + len) of url. The server must honour Range requests.
export async function fetchRange(url, start, len, what, timeoutMs = DEFAULT_TIMEOUT_MS) {
  const w = watchdog(timeoutMs);
  const res = await rangeResponse(url, start, len, what, w, timeoutMs);
  const buf = new Uint8Array(await guarded(w, () => res.arrayBuffer(), url, what, timeoutMs));
  w.done();
  if (buf.length !== len) fail(`${what}: got ${buf.length} of ${len} bytes: the bundle is truncated`);
  return { bytes: buf, total: rangeTotal(res) };
}

// Bytes [start, start + len) of url as they arrive: an async iterator of chunks. The
// timer restarts with every chunk, so a slow but moving download of gigabytes goes on
// while a stalled one ends.
export async function* streamRange(url, start, len, what, timeoutMs = DEFAULT_TIMEOUT_MS) {
  const w = watchdog(timeoutMs);
  const res = await rangeResponse(url, start, len, what, w, timeoutMs);
  const reader = res.body.getReader();
  try {
    for (;;) {
      w.arm();
      const { done, value } = await guarded(w, () => reader.read(), url, what, timeoutMs);
      w.done(); // the consumer's time (hashing, copying) is not the server's
      if (done) return;
      yield value;
    }
  } finally {
    w.done();
    reader.cancel().catch(() => {});
  }
}

// The whole of url (a small file such as the zstd decoder's wasm), with the same timeout.
export async function fetchWhole(url, what, timeoutMs = DEFAULT_TIMEOUT_MS) {
  const w = watchdog(timeoutMs);
  const res = await guarded(w, () => fetch(url, { signal: w.signal }), url, what, timeoutMs);
  if (!res.ok) { w.done(); fail(`cannot read ${what} from ${url}: HTTP ${res.status} ${res.statusText}`); }
  const buf = new Uint8Array(await guarded(w, () => res.arrayBuffer(), url, what, timeoutMs));
  w.done();
  return buf;
}
