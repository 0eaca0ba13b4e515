/*
 * chat_template.c — names the chat format of a GGUF's tokenizer.chat_template (by the
 * markers it prints: m64_chat_template_detect). The name goes into the bundle's metadata as
 * `chat.template`; anything else is "none".
 */
#include "compiler_internal.h"

const char *m64c_chat_template_name(const m64_gguf *g) {
  m64_str t;
  if (m64_gguf_get_str(g, "tokenizer.chat_template", &t)) return "none";
  return m64_chat_template_detect(t.ptr, t.len); /* formats/common/chat_template.c */
}
