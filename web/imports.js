// imports.js — mirrors the import table of runtime/session.c (what the module may call, and its memory's limits): a JS twin because the page's imports are JS functions.
import { fail } from './common.js';

// The workspace import's limits from the module's import section (the JS API does not
// expose them): {min, max, shared, i64} in pages, and flagAt, the offset of its flags byte.
export function memoryImport(wasm) {
  let p = 8;
  const leb = () => {
    let r = 0, mul = 1, b;
    do {
      if (p >= wasm.length) fail('the wasm module is malformed');
      b = wasm[p++];
      r += (b & 0x7f) * mul;
      mul *= 128;
    } while (b & 0x80);
    return r;
  };
  const name = () => { const n = leb(); const s = new TextDecoder().decode(wasm.subarray(p, p + n)); p += n; return s; };
  const limits = () => {
    const flagAt = p, f = wasm[p++], min = leb(), max = f & 1 ? leb() : null;
    return { min, max, shared: !!(f & 2), i64: !!(f & 4), flagAt };
  };
  while (p < wasm.length) {
    const id = wasm[p++], size = leb(), end = p + size;
    if (id === 2) {
      for (let n = leb(); n > 0; n--) {
        const mod = name(), field = name(), kind = wasm[p++];
        if (kind === 0) leb();
        else if (kind === 1) { p++; limits(); }
        else if (kind === 2) { const l = limits(); if (mod === 'm64' && field === 'memory') return l; }
        else if (kind === 3) p += 2;
        else if (kind === 4) { p++; leb(); }
        else fail('the wasm module has an import of unknown kind');
      }
      break;
    }
    p = end;
  }
  fail('the wasm module does not import m64.memory (bundle built for module ABI 1? rebuild it with m64c build)');
}

// m64.log: the module's message at [ptr, ptr + len) of memory, posted as a log line.
export const logImport = (memory, post) => (ptr, len) =>
  post({ type: 'log', text: new TextDecoder().decode(new Uint8Array(memory.buffer, ptr >>> 0, len >>> 0).slice()) });

// m64.prefetch(addr, bytes), a read-ahead hint the kernels give per block: wasm cannot
// prefetch, so a no-op — a wasm function, which the module calls without leaving wasm (a JS
// function would cost a boundary crossing per block). (module (func (export "f") (param i32 i32)))
export const noPrefetch = new WebAssembly.Instance(new WebAssembly.Module(new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x06, 0x01, 0x60, 0x02, 0x7f, 0x7f, 0x00,
  0x03, 0x02, 0x01, 0x00, 0x07, 0x05, 0x01, 0x01, 0x66, 0x00, 0x00, 0x0a, 0x04, 0x01, 0x02, 0x00,
  0x0b]))).exports.f;

// m64.has_dot_i8 answers 0 (notHere): the kernels keep their plain SIMD128 path here, since the i8
// dot (relaxed SIMD, which a native host inlines as one instruction) would be a call to
// another instance per 16 bytes. m64.dot_i8 is then never called; a JS function cannot
// take its v128 arguments anyway, so one that is called throws.
export const notHere = () => 0;
export const dotI8Unused = () => { throw new Error('m64.dot_i8 was called though has_dot_i8 answered 0'); };
// m64.kq_rows and m64.kq_mat (a native host's wider K-quant rows, and their prefill)
// likewise: has_kq_rows and has_kq_mat answer 0.
export const kqRowsUnused = () => { throw new Error('m64.kq_rows was called though has_kq_rows answered 0'); };
export const kqMatUnused = () => { throw new Error('m64.kq_mat was called though has_kq_mat answered 0'); };
// m64.f16_* (one-instruction f16 steps) likewise: has_f16 answers 0; JS cannot take v128.
export const f16Unused = () => { throw new Error('m64.f16_* was called though has_f16 answered 0'); };

// The imports of an extra instance: the shared workspace; paging and parallel() belong
// to the main instance only.
export function threadImports(mod, memory, post) {
  const m64 = {};
  for (const imp of WebAssembly.Module.imports(mod)) {
    if (imp.module !== 'm64') continue;
    if (imp.kind === 'memory') m64[imp.name] = memory;
    else if (imp.name === 'log') m64.log = logImport(memory, post);
    else if (imp.name === 'prefetch') m64.prefetch = noPrefetch;
    else if (imp.name === 'has_dot_i8' || imp.name === 'has_kq_rows' || imp.name === 'has_kq_mat' || imp.name === 'has_f16') m64[imp.name] = notHere;
    else if (imp.kind === 'function') m64[imp.name] = () => { throw new Error(`m64.${imp.name} was called on a worker thread`); };
  }
  return { m64 };
}

