/*
 * dispatch.c — the one place the runtime calls the module's exports (through the native
 * code's M64_NATIVE_ABI table, native_abi.h), each inside m64_wasm_call so that a trap
 * comes back as an error, never a crash.
 */
#include "session_internal.h"

/* Export k's arguments from call.a, in the wasm types (module/exports.h's table). */
static inline float f32_arg(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}
#define ARG_u32(k) c->a[k]
#define ARG_f32(k) f32_arg(c->a[k])
#define ARG_(k, p) , ARG_T_(M64_P_WTYPE p, k)
#define ARG_T_(w, k) ARG_W_(w, k)
#define ARG_W_(w, k) ARG_##w(k)
#define RET_u32 c->ret =
#define RET_void

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
#define CASE_(name, since, ret, wret, n, params) \
  case OP_##name: RET_##wret abi->name(i M64_EACH(n, ARG_, params)); break;
      M64_EXPORTS(CASE_)
#undef CASE_
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
