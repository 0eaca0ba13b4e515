/*
 * dispatch.c — the one place the runtime calls the module's exports (through the native
 * code's M64_NATIVE_ABI table, native_abi.h), each inside m64_wasm_call so that a trap
 * comes back as an error, never a crash.
 */
#include "session_internal.h"

static void call_thunk(void *p) {
  call *c = p;
  const m64_native_abi *abi = c->s->abi;
  void *i = c->inst ? c->inst : c->s->inst;
  switch (c->op) {
    case OP_ALLOCATE_MEMORY: /* traps (host) if the memory cannot be reserved */
      wasm_rt_allocate_memory(&c->s->memory, c->a[0], c->a[1], false, 65536);
      c->s->memory_ready = 1;
      break;
    case OP_INSTANTIATE: abi->instantiate(i, &c->s->host); break;
    case OP_WORKER: abi->m64_worker(i, c->a[0], c->a[1]); break;
    case OP_THREADS: c->ret = abi->m64_threads(i, c->a[0]); break;
    case OP_ABI: c->ret = abi->m64_abi_version(i); break;
    case OP_ALLOC: c->ret = abi->m64_alloc(i, c->a[0]); break;
    case OP_STATE_BYTES: c->ret = abi->m64_state_bytes(i, c->a[0]); break;
    case OP_INIT: c->ret = abi->m64_init(i, c->a[0]); break;
    case OP_N_VOCAB: c->ret = abi->m64_n_vocab(i); break;
    case OP_N_LAYERS: c->ret = abi->m64_n_layers(i); break;
    case OP_N_CTX_TRAIN: c->ret = abi->m64_n_ctx_train(i); break;
    case OP_FORWARD_BATCH: c->ret = abi->m64_forward_batch(i, c->a[0], c->a[1], c->a[2]); break;
    case OP_MAX_BATCH: c->ret = abi->m64_max_batch(i); break;
    case OP_TOK_LOAD: c->ret = abi->m64_tok_load(i, c->a[0], c->a[1]); break;
    case OP_TOK_ENCODE: c->ret = abi->m64_tok_encode(i, c->a[0], c->a[1], c->a[2], c->a[3], c->a[4]); break;
    case OP_TOK_PIECE: c->ret = abi->m64_tok_piece(i, c->a[0], c->a[1], c->a[2], c->a[3]); break;
    case OP_BOS: c->ret = abi->m64_tok_bos(i); break;
    case OP_EOS: c->ret = abi->m64_tok_eos(i); break;
    case OP_TOK_FIND: c->ret = abi->m64_tok_find(i, c->a[0], c->a[1]); break;
    case OP_TOK_IS_EOG: c->ret = abi->m64_tok_is_eog(i, c->a[0]); break;
    case OP_CHAT_KIND: c->ret = abi->m64_chat_kind(i, c->a[0], c->a[1]); break;
    case OP_CHAT_TURN:
      c->ret = abi->m64_chat_turn(i, c->a[0], c->a[1], c->a[2], c->a[3], c->a[4], c->a[5], c->a[6], c->a[7], c->a[8]);
      break;
    case OP_CHAT_END: c->ret = abi->m64_chat_end(i, c->a[0], c->a[1], c->a[2], c->a[3], c->a[4], c->a[5]); break;
    case OP_SEED: abi->m64_sampler_seed(i, c->a[0], c->a[1]); break;
    case OP_SAMPLE: c->ret = abi->m64_sample(i, c->a[0], c->f[0], c->a[1], c->f[1]); break;
    case OP_SAMPLE_EX:
      c->ret = abi->m64_sample_ex(i, c->a[0], c->f[0], c->a[1], c->f[1], c->f[2], c->f[3], c->f[4], c->f[5], c->a[2],
                                  c->a[3], c->a[4]);
      break;
  }
}

wasm_rt_trap_t m64_session_call(m64_session *s, call *c) {
  c->s = s;
  return m64_wasm_call(call_thunk, c);
}

/* A trap becomes M64_ETRAP with the trap's name (and the host's reason when the host
 * itself aborted the call). */
int m64_session_invoke(m64_session *s, call *c, m64_err *e) {
  wasm_rt_trap_t t = m64_session_call(s, c);
  if (t == WASM_RT_TRAP_NONE) return 0;
  if (t == WASM_RT_TRAP_HOST) return m64_fail(e, M64_ETRAP, "%s", m64_wasm_last_host_message());
  return m64_fail(e, M64_ETRAP, "wasm trap in the model module: %s", m64_wasm_trap_name(t));
}

int m64_session_invoke0(m64_session *s, enum op op, uint32_t *ret, m64_err *e) {
  call c = {.op = op};
  int rc = m64_session_invoke(s, &c, e);
  if (ret) *ret = c.ret;
  return rc;
}
int m64_session_invoke1(m64_session *s, enum op op, uint32_t a0, uint32_t *ret, m64_err *e) {
  call c = {.op = op, .a = {a0}};
  int rc = m64_session_invoke(s, &c, e);
  if (ret) *ret = c.ret;
  return rc;
}

uint8_t *m64_session_ws(m64_session *s, uint32_t addr, uint64_t len) {
  if ((uint64_t)addr + len > s->mem->size) return NULL;
  return s->mem->data + addr;
}
