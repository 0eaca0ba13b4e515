// common.js — mirrors formats/common/ (error.c, size.c): one error type and the byte helpers every file of the page uses; JS has no shared C library to call.
export const WASM_PAGE = 65536;
export const hex = (u8) => Array.from(u8, (b) => b.toString(16).padStart(2, '0')).join('');
export const mib = (n) => (n / 1048576).toFixed(1);

// An error the page shows as it is (the bundle, the server or the workspace is at fault).
export class BundleError extends Error {}
export const fail = (msg) => { throw new BundleError(msg); };

export const u32 = (dv, o) => dv.getUint32(o, true);
export const u64 = (dv, o) => {
  const v = dv.getBigUint64(o, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`a 64-bit field at ${o} is too large (${v})`);
  return Number(v);
};
export const cstr = (u8, o, n) => {
  const end = u8.subarray(o, o + n).indexOf(0);
  if (end < 0) fail('a name is not NUL-terminated');
  return new TextDecoder().decode(u8.subarray(o, o + end));
};


// n events in ms milliseconds, per second (0 when there was no event or no time).
export const perSecond = (n, ms) => (ms > 0 && n ? n / (ms / 1e3) : 0);

// Copies the methods of each part onto cls: the Worker's Host is one object whose jobs
// (download, paging, chat) live in the files named after their C counterparts.
export function mixin(cls, ...parts) {
  for (const p of parts)
    for (const name of Object.getOwnPropertyNames(p.prototype))
      if (name !== 'constructor') Object.defineProperty(cls.prototype, name, Object.getOwnPropertyDescriptor(p.prototype, name));
}
