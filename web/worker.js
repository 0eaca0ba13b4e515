// worker.js — the compute Worker's entry (as cmd/m64run.c's main for m64run): requests from the page in, results out, one at a time; a Worker so that the page never freezes.
import { BundleError } from './common.js';
import { Host } from './session.js';

const post = (m) => postMessage(m);
const host = new Host(post);
let opened = false, dead = false;
let queue = Promise.resolve();
onmessage = (ev) => {
  const d = ev.data;
  // not queued: it must reach the generation that runs now (session.js stopAsked)
  if (d.type === 'stop') { host.stopRequested = true; return; }
  queue = queue.then(async () => {
    if (dead) return;
    try {
      if (d.type === 'open' && !opened) {
        opened = true;
        post({ type: 'done', result: await host.open(d.url, d.options || {}) });
      } else if (d.type === 'generate' && opened) {
        post({ type: 'done', result: await host.generate(String(d.prompt), d.options || {}) });
      } else if (d.type === 'chat' && opened) {
        post({ type: 'done', result: await host.chat(String(d.message), d.options || {}) });
      } else post({ type: 'error', message: `unexpected request ${d.type}` });
    } catch (e) {
      // A trap or a failed open leaves the instance unusable, as natively.
      dead = true;
      const msg = e instanceof BundleError ? e.message
        : e instanceof WebAssembly.RuntimeError ? `wasm trap in the model module: ${e.message}` : String(e?.message || e);
      post({ type: 'error', message: msg, fatal: true });
    }
  });
};
