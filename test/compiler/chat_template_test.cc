// m64c's recognition of chat templates (compiler/chat_template.c): real templates' telling
// fragments map to the formats module/chat.c writes; anything else is "none".
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

extern "C" {
#include "compiler_internal.h"
}

namespace {

std::string name_of(const char *tmpl) {
  m64_gguf_writer *w = m64_gguf_writer_new(0);
  EXPECT_EQ(m64_gguf_w_str(w, "general.architecture", "llama"), 0);
  if (tmpl) {
    EXPECT_EQ(m64_gguf_w_str(w, "tokenizer.chat_template", tmpl), 0);
  }
  char path[] = "/tmp/m64chat.XXXXXX";
  int fd = mkstemp(path);
  close(fd);
  m64_err e{};
  EXPECT_EQ(m64_gguf_writer_save(w, path, &e), 0) << e.msg;
  m64_gguf_writer_free(w);
  m64_gguf *g = nullptr;
  EXPECT_EQ(m64_gguf_open(path, &g, &e), 0) << e.msg;
  std::string name = g ? m64c_chat_template_name(g) : "";
  m64_gguf_close(g);
  unlink(path);
  return name;
}

TEST(ChatTemplate, RecognisesTheKnownFormats) {
  EXPECT_EQ(name_of("{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
                    "{{ m['content'] | trim }}<|eot_id|>{% endfor %}"),
            "llama3");
  EXPECT_EQ(name_of("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"),
            "chatml");
  EXPECT_EQ(name_of("{% if m['role'] == 'system' %}<<SYS>>\\n' + content + '\\n<</SYS>>{% endif %}[INST] "),
            "llama2");
  EXPECT_EQ(name_of("{{ bos_token }}{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}"),
            "mistral");
  EXPECT_EQ(name_of("{% for m in messages %}<|user|>\n{{ m.content }}</s>\n<|assistant|>\n{% endfor %}"),
            "zephyr");
  EXPECT_EQ(name_of("{{ bos_token }}{% for m in messages %}<start_of_turn>{{ role }}\n{{ m['content'] | trim }}"
                    "<end_of_turn>\n{% endfor %}"),
            "gemma");
  EXPECT_EQ(name_of("{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}<|end|>\n{% endfor %}<|assistant|>\n"),
            "phi3");
  EXPECT_EQ(name_of("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
                    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}"),
            "chatml");  // Qwen3
}

TEST(ChatTemplate, OthersAreNone) {
  EXPECT_EQ(name_of(nullptr), "none");
  EXPECT_EQ(name_of("<|im_start|>{{ role }}<|im_sep|>"), "none");                              // phi-4
}

}  // namespace
