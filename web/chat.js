// chat.js — mirrors runtime/chat.c: a conversation's state; the chat format itself is the module's
// (module/chat.c, m64_chat_turn / m64_chat_end), so both hosts share one copy of it.
import { fail, perSecond } from './common.js';

const IO_BYTES = 64 * 1024; // as session.js
const KNOWN = 'llama3, chatml, llama2, mistral, zephyr, gemma, phi3';

// Installed on the Worker's Host (session.js).
export class Chat {
  // Workspace for a call over n text bytes, laid out as runtime/chat.c does: the text, the
  // module's scratch for text runs (n + 256), up to 3 ids per byte plus the markers.
  chatSpan(n) {
    const scratchCap = n + 256, max = 3 * n + 64;
    const a4 = (x) => (x + 3) & ~3, need = a4(n) + a4(scratchCap) + 4 * max;
    let base = this.io;
    if (need > IO_BYTES) {
      if (need > 0x40000000) fail(`a chat message of ${n} bytes is too long`);
      base = this.alloc(need);
      if (!base) fail(`workspace too small for a chat message of ${n} bytes`);
    }
    const scratch = base + a4(n);
    return { text: base, scratch, scratchCap, out: scratch + a4(scratchCap), max };
  }

  chatIds(sp, k) {
    if (k < 0 || k > sp.max) fail(`the module's chat format failed (${k})`);
    return Array.from(new Int32Array(this.memory.buffer, sp.out, k));
  }

  chatTurn(kind, c, message, system) {
    const enc = new TextEncoder(), sys = enc.encode(system), user = enc.encode(message);
    const sp = this.chatSpan(sys.length + user.length);
    this.bytes(sp.text, sys.length).set(sys);
    this.bytes(sp.text + sys.length, user.length).set(user);
    return this.chatIds(sp, this.x.m64_chat_turn(kind, c.started ? 1 : 0, sp.text, sys.length, user.length,
      sp.scratch, sp.scratchCap, sp.out, sp.max));
  }

  chatEnd(kind, last) {
    const sp = this.chatSpan(0);
    return this.chatIds(sp, this.x.m64_chat_end(kind, last, sp.scratch, sp.scratchCap, sp.out, sp.max));
  }

  chatKind(name) {
    const enc = new TextEncoder().encode(name).slice(0, 64);
    this.bytes(this.io, enc.length).set(enc);
    return this.x.m64_chat_kind(this.io, enc.length);
  }

  async chat(message, o) {
    if (this.downloadError) throw this.downloadError;
    const name = o.template || this.meta['chat.template'] || 'none', kind = this.chatKind(name);
    if (kind <= 0) fail(`this model's chat template (${name}) is not one m64 knows (known: ${KNOWN})`);
    const c = this.chatState || (this.chatState = { started: false, pos: 0, hist: [] });
    const n = o.n ?? -1;
    if (!c.started) {
      const seed = BigInt.asUintN(64, BigInt(o.seed ?? Date.now()));
      this.x.m64_sampler_seed(Number(seed & 0xffffffffn), Number(seed >> 32n));
    }
    this.startStoppable();
    const t0 = performance.now(), pos0 = c.pos;
    const ids = this.chatTurn(kind, c, String(message), c.started ? '' : (o.system || ''));
    if (c.pos + ids.length >= this.nCtx) fail(`the conversation filled the context of ${this.nCtx} tokens`);
    let logits = await this.evalBatch(ids, c.pos);
    c.pos += ids.length;
    c.hist.push(...ids);
    c.started = true;
    const tPrefill = performance.now() - t0, t1 = performance.now(), out = [], dec = new TextDecoder('utf-8');
    let text = '', prev = -1, last = -1, firstTokenMs = 0, passes = 0, stopped = false; // decode rate: forward passes / time
    while ((n < 0 || out.length < n) && c.pos < this.nCtx) {
      if (passes && await this.stopAsked()) { stopped = true; break; } // the turn is closed below all the same
      const id = this.sample(logits, o, c.hist);
      if (!firstTokenMs) firstTokenMs = performance.now() - t0;
      logits = await this.evalBatch([id], c.pos); // the reply becomes part of the history
      c.pos++;
      c.hist.push(id);
      passes++;
      last = id;
      if (this.isEog(id)) break;
      out.push(id);
      const piece = dec.decode(this.piece(prev, id), { stream: true });
      prev = id;
      text += piece;
      if (piece) this.post({ type: 'token', text: piece });
    }
    const tail = dec.decode();
    if (tail) { text += tail; this.post({ type: 'token', text: tail }); }
    const tDecode = performance.now() - t1;
    const end = this.chatEnd(kind, last); // less the closing marker if the model ran it itself
    if (end.length && c.pos + end.length <= this.nCtx) { await this.evalBatch(end, c.pos); c.pos += end.length; c.hist.push(...end); }
    this.progress();
    return {
      text, tokens: out, turnTokens: ids, stopped, pos: pos0, endTokens: end, template: name,
      prefillTokS: perSecond(ids.length, tPrefill),
      decodeTokS: perSecond(passes, tDecode), firstTokenMs,
      stats: { ...this.pager.st, cacheSlots: this.pager.nSlots, workspaceBytes: this.memory.buffer.byteLength,
               memoryBytes: this.memoryBytes(), downloadedBytes: this.received },
    };
  }
}
