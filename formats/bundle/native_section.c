/*
 * native_section.c — the NATIVE section's format (docs/FORMAT.md): one writer and one
 * parser for the 64-byte header, the code and the optional 32-byte local mark.
 *
 *   0  8  magic "M64NATIV"          16 32  SHA-256 of the MODULE_WASM compiled from
 *   8  4  header size (64)          48  8  code size
 *  12  4  flags (bit 0: mark)       56  8  reserved, 0
 *
 * What the mark means and how it is computed is formats/sign/local_mark.c's business;
 * where it sits is this file's.
 */
#include <stdlib.h>
#include <string.h>

#include "m64_formats.h"

static uint64_t rd64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}
static uint32_t rd32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

int m64_native_section_parse(const uint8_t *data, uint64_t size, m64_native_section *out,
                             m64_err *e) {
  memset(out, 0, sizeof *out);
  if (size < M64_NATIVE_HEADER_BYTES)
    return m64_fail(e, M64_EFORMAT, "native code: %llu bytes, smaller than its %u-byte header",
                    (unsigned long long)size, M64_NATIVE_HEADER_BYTES);
  if (memcmp(data, M64_NATIVE_MAGIC, 8) != 0 || rd32(data + 8) != M64_NATIVE_HEADER_BYTES)
    return m64_fail(e, M64_EFORMAT, "native code: bad header magic or header size %u", rd32(data + 8));
  const uint32_t flags = rd32(data + 12);
  if (flags & ~M64_NATIVE_FLAG_LOCAL_MARK)
    return m64_fail(e, M64_EFORMAT, "native code: unknown flags 0x%x", flags);
  if (rd64(data + 56)) return m64_fail(e, M64_EFORMAT, "native code: reserved header bytes are not zero");
  const uint64_t code = rd64(data + 48), trailer = flags & M64_NATIVE_FLAG_LOCAL_MARK ? M64_NATIVE_MARK_BYTES : 0;
  const uint64_t room = size - M64_NATIVE_HEADER_BYTES < trailer ? 0 : size - M64_NATIVE_HEADER_BYTES - trailer;
  if (size - M64_NATIVE_HEADER_BYTES < trailer || code != room)
    return m64_fail(e, M64_EFORMAT, "native code: code size %llu recorded, but the section holds %llu bytes of code",
                    (unsigned long long)code, (unsigned long long)room);
  out->flags = flags;
  out->wasm_sha256 = data + 16;
  out->code = data + M64_NATIVE_HEADER_BYTES;
  out->code_size = code;
  out->mark = trailer ? out->code + code : NULL;
  return 0;
}

int m64_native_section_write(const uint8_t wasm_sha256[32], const uint8_t *code, size_t code_size,
                             uint8_t **out, size_t *out_size, m64_err *e) {
  *out = NULL;
  *out_size = 0;
  uint8_t *buf = calloc(1, M64_NATIVE_HEADER_BYTES + code_size);
  if (!buf) return m64_fail(e, M64_ENOMEM, "out of memory for native code (%zu bytes)", code_size);
  memcpy(buf, M64_NATIVE_MAGIC, 8);
  for (int i = 0; i < 4; i++) buf[8 + i] = (uint8_t)(M64_NATIVE_HEADER_BYTES >> (8 * i));
  memcpy(buf + 16, wasm_sha256, 32);
  for (int i = 0; i < 8; i++) buf[48 + i] = (uint8_t)((uint64_t)code_size >> (8 * i));
  memcpy(buf + M64_NATIVE_HEADER_BYTES, code, code_size);
  *out = buf;
  *out_size = M64_NATIVE_HEADER_BYTES + code_size;
  return 0;
}

int m64_native_section_reserve_mark(uint8_t **sec, size_t *size, uint8_t **mark, m64_err *e) {
  m64_native_section ns;
  int rc = m64_native_section_parse(*sec, *size, &ns, e);
  if (rc) return rc;
  if (ns.mark) return m64_fail(e, M64_EFORMAT, "native section is already marked");
  uint8_t *b = realloc(*sec, *size + M64_NATIVE_MARK_BYTES);
  if (!b) return m64_fail(e, M64_ENOMEM, "out of memory");
  b[12] |= M64_NATIVE_FLAG_LOCAL_MARK; /* flags (u32 LE) */
  memset(b + *size, 0, M64_NATIVE_MARK_BYTES);
  *mark = b + *size;
  *sec = b;
  *size += M64_NATIVE_MARK_BYTES;
  return 0;
}
