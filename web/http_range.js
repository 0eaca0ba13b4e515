// http_range.js — mirrors formats/common/io.c (reading a file's bytes): a JS twin because the page reads the bundle over HTTP Range requests.
import { fail } from './common.js';

// Total size from a Content-Range header ("bytes a-b/total"), or -1.
function rangeTotal(res) {
  const m = /\/(\d+)\s*$/.exec(res.headers.get('Content-Range') || '');
  return m ? Number(m[1]) : -1;
}

// Bytes [start, start + len) of url. The server must honour Range requests.
export async function fetchRange(url, start, len, what) {
  let res;
  try {
    res = await fetch(url, { headers: { Range: `bytes=${start}-${start + len - 1}` } });
  } catch (e) {
    fail(`cannot read ${what} from ${url}: ${e.message}`);
  }
  if (res.status === 416) fail(`${url} ends before ${what} (byte ${start}): the bundle is truncated`);
  if (res.status !== 206) {
    if (res.ok) fail(`the server answered ${res.status} to a Range request: it must honour Range (serve with web/serve.mjs)`);
    fail(`cannot read ${url}: HTTP ${res.status} ${res.statusText}`);
  }
  const buf = new Uint8Array(await res.arrayBuffer());
  if (buf.length !== len) fail(`${what}: got ${buf.length} of ${len} bytes: the bundle is truncated`);
  return { bytes: buf, total: rangeTotal(res) };
}

