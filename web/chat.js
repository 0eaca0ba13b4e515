// chat.js — mirrors runtime/chat.c (a turn in the model's chat format, as token ids): a JS twin until the templates move into the module (issue 19).
import { fail, perSecond } from './common.js';

// Installed on the Worker's Host (session.js).
export class Chat {
  // A turn as ids: text runs between special tokens are tokenized whole and plain (typed
  // special-token text stays text); a template marker is its token where there is one.
  chatIds(parts) {
    const ids = [];
    let run = '';
    const flush = () => { if (run) ids.push(...this.tokenize(run, 0)); run = ''; };
    for (const p of parts) {
      if (p.bos) ids.push(...this.tokenize('', 1));
      else if (p.marker !== undefined) {
        const id = this.findToken(p.marker);
        if (id < 0) run += p.marker;
        else { flush(); ids.push(id); }
      } else run += p.text;
    }
    flush();
    return ids;
  }

  chatTurn(kind, c, message, system) {
    const M = (m) => ({ marker: m }), T = (t) => ({ text: t });
    const parts = c.started ? [] : [{ bos: true }];
    const zEnd = c.zephyrEnd;
    const msg = (role, text) => kind === 'llama3' ? [M('<|start_header_id|>'), T(role), M('<|end_header_id|>'), T('\n\n' + text.trim()), M('<|eot_id|>')]
      : kind === 'chatml' ? [M('<|im_start|>'), T(role + '\n' + text), M('<|im_end|>'), T('\n')]
      : [M(`<|${role}|>`), T('\n' + text), M(zEnd), T('\n')];
    if (kind === 'llama3' || kind === 'chatml' || kind === 'zephyr') {
      if (system) parts.push(...msg('system', system));
      parts.push(...msg('user', message));
      parts.push(...(kind === 'llama3' ? [M('<|start_header_id|>'), T('assistant'), M('<|end_header_id|>'), T('\n\n')]
        : kind === 'chatml' ? [M('<|im_start|>'), T('assistant\n')] : [M('<|assistant|>'), T('\n')]));
    } else if (kind === 'llama2') {
      if (c.started) parts.push(M('<s>'));
      parts.push(T('[INST] ' + (system ? `<<SYS>>\n${system}\n<</SYS>>\n\n` : '') + message + ' [/INST]'));
    } else { // mistral
      parts.push(T('[INST] ' + (system ? system + '\n\n' : '') + message + ' [/INST]'));
    }
    return this.chatIds(parts);
  }

  chatEnd(kind, zEnd) {
    const M = (m) => ({ marker: m }), T = (t) => ({ text: t });
    return this.chatIds(kind === 'llama3' ? [M('<|eot_id|>')] : kind === 'chatml' ? [M('<|im_end|>'), T('\n')]
      : kind === 'zephyr' ? [M(zEnd), T('\n')] : [M('</s>')]);
  }

  async chat(message, o) {
    if (this.downloadError) throw this.downloadError;
    const kind = o.template || this.meta['chat.template'] || 'none';
    if (!['llama3', 'chatml', 'llama2', 'mistral', 'zephyr'].includes(kind))
      fail(`this model's chat template (${kind}) is not one m64 knows (known: llama3, chatml, llama2, mistral, zephyr)`);
    // Zephyr-style messages end with EOS "</s>", or "<|endoftext|>" where that is a token
    const c = this.chatState ||
      (this.chatState = { started: false, pos: 0, zephyrEnd: this.findToken('<|endoftext|>') >= 0 ? '<|endoftext|>' : '</s>' });
    const n = o.n ?? -1, temp = o.temp ?? 0.8, topK = o.topK ?? 40, topP = o.topP ?? 0.95;
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
    c.started = true;
    const tPrefill = performance.now() - t0, t1 = performance.now(), out = [], dec = new TextDecoder('utf-8');
    let text = '', prev = -1, last = -1, firstTokenMs = 0, passes = 0, stopped = false; // decode rate: forward passes / time
    while ((n < 0 || out.length < n) && c.pos < this.nCtx) {
      if (passes && await this.stopAsked()) { stopped = true; break; } // the turn is closed below all the same
      const id = this.x.m64_sample(logits, temp, topK, topP);
      if (id < 0 || id >= this.nVocab) fail(`sampler returned ${id}`);
      if (!firstTokenMs) firstTokenMs = performance.now() - t0;
      logits = await this.evalBatch([id], c.pos); // the reply becomes part of the history
      c.pos++;
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
    let end = this.chatEnd(kind, c.zephyrEnd);
    if (end.length && end[0] === last) end = end.slice(1); // the model closed the turn itself
    if (end.length && c.pos + end.length <= this.nCtx) { await this.evalBatch(end, c.pos); c.pos += end.length; }
    this.progress();
    return {
      text, tokens: out, turnTokens: ids, stopped, pos: pos0, endTokens: end, template: kind,
      prefillTokS: perSecond(ids.length, tPrefill),
      decodeTokS: perSecond(passes, tDecode), firstTokenMs,
      stats: { ...this.pager.st, cacheSlots: this.pager.slots.length, workspaceBytes: this.memory.buffer.byteLength,
               memoryBytes: this.memoryBytes(), downloadedBytes: this.received },
    };
  }
}
