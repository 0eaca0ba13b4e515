/*
 * chat_template.c — names the chat format a chat template's text prints.
 *
 * A GGUF's tokenizer.chat_template is a Jinja program; m64 does not run Jinja. Instead the
 * module knows a few formats (module/chat.c), and this recognises them by the markers
 * their templates must print, in the spirit of llama.cpp's own heuristics. m64c names the
 * bundle's `chat.template` with it; m64run --chat-template-file reads a template with it.
 */
#include <string.h>

#include "m64_formats.h"

static int has(const char *t, size_t len, const char *needle) {
  const size_t n = strlen(needle);
  for (size_t i = 0; n <= len && i + n <= len; i++)
    if (memcmp(t + i, needle, n) == 0) return 1;
  return 0;
}

const char *m64_chat_template_detect(const char *t, size_t len) {
  if (!t) return "none";
  if (has(t, len, "<|start_header_id|>") && has(t, len, "<|end_header_id|>") && has(t, len, "<|eot_id|>"))
    return "llama3";
  if (has(t, len, "<|im_start|>") && !has(t, len, "<|im_sep|>")) return "chatml"; /* Qwen 2/3 (3's <think> is the model's) */
  if (has(t, len, "<start_of_turn>")) return "gemma";
  if (has(t, len, "[INST]") && !has(t, len, "[SYSTEM_PROMPT]") && !has(t, len, "[AVAILABLE_TOOLS]"))
    return has(t, len, "<<SYS>>") ? "llama2" : "mistral";
  if (has(t, len, "<|user|>") && has(t, len, "<|assistant|>") && !has(t, len, "<|end|>")) return "zephyr";
  if (has(t, len, "<|assistant|>") && has(t, len, "<|end|>")) return "phi3";
  return "none";
}
