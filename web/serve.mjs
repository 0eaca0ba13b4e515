#!/usr/bin/env node
// serve.mjs — a small static server for the demo page: honours Range requests (the host
// reads bundles by range) and sends the headers that make the page cross-origin isolated
// (COOP/COEP, needed for shared memory and so for threads). Node's standard library only.
//
//   node web/serve.mjs [--port N] [--host ADDR] [PREFIX=DIR | DIR]...
//
// Each PREFIX=DIR serves DIR under the URL prefix (longest prefix wins; several DIRs at one
// prefix are tried in the order given, e.g. `/=web /=build/web` for the page and the zstd
// decoder the build makes); a bare DIR is "/=DIR". Default: the folder of this file and
// build/web/ at /, and the current directory at /files/.
// --port 0 picks a free port. The first line printed is "serving http://HOST:PORT/".
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css', '.json': 'application/json', '.wasm': 'application/wasm', '.png': 'image/png', '.svg': 'image/svg+xml',
  '.txt': 'text/plain; charset=utf-8', '.md': 'text/plain; charset=utf-8' };

function parseArgs(argv) {
  const o = { port: 8064, host: '127.0.0.1', mounts: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--port' && i + 1 < argv.length) o.port = Number(argv[++i]);
    else if (a === '--host' && i + 1 < argv.length) o.host = argv[++i];
    else if (a === '-h' || a === '--help') {
      console.log('usage: node web/serve.mjs [--port N] [--host ADDR] [PREFIX=DIR | DIR]...');
      process.exit(0);
    } else if (a.startsWith('-')) {
      console.error(`serve: unknown option ${a}`);
      process.exit(1);
    } else {
      const eq = a.indexOf('=');
      const prefix = eq > 0 ? a.slice(0, eq) : '/', dir = eq > 0 ? a.slice(eq + 1) : a;
      o.mounts.push({ prefix: prefix.endsWith('/') ? prefix : prefix + '/', dir: path.resolve(dir) });
    }
  }
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) {
    console.error('serve: --port takes 0..65535');
    process.exit(1);
  }
  if (!o.mounts.length) {
    const web = path.dirname(fileURLToPath(import.meta.url));
    o.mounts.push({ prefix: '/', dir: web });
    o.mounts.push({ prefix: '/', dir: path.resolve(web, '../build/web') });
    o.mounts.push({ prefix: '/files/', dir: process.cwd() });
  }
  o.mounts.sort((a, b) => b.prefix.length - a.prefix.length); // stable: one prefix's DIRs keep their order
  return o;
}

// The files a URL path may name, in the order to try: under the longest matching prefix,
// in each of its DIRs (none when outside every mount, or escaping one).
function resolve(mounts, urlPath) {
  let p;
  try { p = decodeURIComponent(urlPath); } catch { return []; }
  if (p.includes('\0')) return [];
  const files = [];
  for (const m of mounts) {
    if (!(p + '/').startsWith(m.prefix) && p !== m.prefix.slice(0, -1)) continue;
    if (files.length && m.prefix !== files.prefix) break; // a shorter prefix: not this one's
    const rel = p.slice(m.prefix.length);
    const file = path.resolve(m.dir, '.' + path.posix.normalize('/' + rel));
    if (file !== m.dir && !file.startsWith(m.dir + path.sep)) return [];
    files.push(file);
    files.prefix = m.prefix;
  }
  return files;
}

// One "bytes=" range against size: [start, end] inclusive, 'bad' if unsatisfiable, null if absent.
function parseRange(h, size) {
  if (!h) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(h.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null; // multi-range or malformed: whole file
  let start, end;
  if (m[1] === '') { start = Math.max(0, size - Number(m[2])); end = size - 1; }
  else { start = Number(m[1]); end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1); }
  if (start >= size || start > end) return 'bad';
  return [start, end];
}

function serve(o) {
  const server = http.createServer((req, res) => {
    res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
    res.setHeader('Cross-Origin-Embedder-Policy', 'require-corp');
    res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
    res.setHeader('Cache-Control', 'no-cache');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return;
    }
    let file = null, st = null;
    for (const f of resolve(o.mounts, new URL(req.url, 'http://x').pathname)) {
      try {
        file = f;
        st = fs.statSync(file);
        if (st.isDirectory()) { file = path.join(file, 'index.html'); st = fs.statSync(file); }
        if (st.isFile()) break;
      } catch { st = null; }
    }
    if (!st || !st.isFile()) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
      return;
    }
    const size = st.size, type = TYPES[path.extname(file)] || 'application/octet-stream';
    const r = parseRange(req.headers.range, size);
    if (r === 'bad') {
      res.writeHead(416, { 'Content-Range': `bytes */${size}`, 'Accept-Ranges': 'bytes' }).end();
      return;
    }
    const [start, end] = r || [0, size - 1];
    const headers = { 'Content-Type': type, 'Accept-Ranges': 'bytes', 'Content-Length': size ? end - start + 1 : 0 };
    if (r) headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
    res.writeHead(r ? 206 : 200, headers);
    if (req.method === 'HEAD' || size === 0) {
      res.end();
      return;
    }
    const stream = fs.createReadStream(file, { start, end });
    stream.on('error', () => res.destroy());
    stream.pipe(res);
  });
  server.listen(o.port, o.host, () => {
    const { port } = server.address();
    console.log(`serving http://${o.host}:${port}/`);
    for (const m of o.mounts) console.log(`  ${m.prefix} -> ${m.dir}`);
  });
  const stop = () => { server.close(() => process.exit(0)); server.closeAllConnections(); };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

serve(parseArgs(process.argv.slice(2)));
