/*
 * chat_template.c — names the chat format of a GGUF's tokenizer.chat_template.
 *
 * The template is a Jinja program; m64 does not run Jinja. Instead the module knows a few
 * formats (module/chat.c), and this recognises them by the markers their templates must
 * print, in the spirit of llama.cpp's own heuristics. The name goes into the bundle's
 * metadata as `chat.template`; anything else is "none".
 */
#include <string.h>

#include "compiler_internal.h"

static int has(const m64_str *t, const char *needle) {
  const size_t n = strlen(needle);
  for (size_t i = 0; n <= t->len && i + n <= t->len; i++)
    if (memcmp(t->ptr + i, needle, n) == 0) return 1;
  return 0;
}

const char *m64c_chat_template_name(const m64_gguf *g) {
  m64_str t;
  if (m64_gguf_get_str(g, "tokenizer.chat_template", &t)) return "none";
  if (has(&t, "<|start_header_id|>") && has(&t, "<|end_header_id|>") && has(&t, "<|eot_id|>"))
    return "llama3";
  if (has(&t, "<|im_start|>") && !has(&t, "<|im_sep|>")) return "chatml"; /* Qwen 2/3 (3's <think> is the model's) */
  if (has(&t, "<start_of_turn>")) return "gemma";
  if (has(&t, "[INST]") && !has(&t, "[SYSTEM_PROMPT]") && !has(&t, "[AVAILABLE_TOOLS]"))
    return has(&t, "<<SYS>>") ? "llama2" : "mistral";
  if (has(&t, "<|user|>") && has(&t, "<|assistant|>") && !has(&t, "<|end|>")) return "zephyr";
  if (has(&t, "<|assistant|>") && has(&t, "<|end|>")) return "phi3";
  return "none";
}
