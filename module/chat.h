/*
 * chat.h — conversations in a model's chat format, written as token ids, in the module so
 * that m64run and the page share one copy (issue 19: hosts only move bytes).
 *
 * m64c recognises the GGUF's tokenizer.chat_template (a Jinja program) by its markers and
 * records a name in the bundle's metadata (`chat.template`); here each known name is a
 * few lines saying where the markers go, as llama.cpp's built-in templates place them.
 * This is not a Jinja engine: templates of other shapes are "none".
 *
 * A turn is written as text and markers ("<|eot_id|>", "</s>" ...). A marker that is a
 * token of the vocabulary becomes that token; everything between two such tokens is one
 * run of plain text, tokenized as a whole without parsing special-token text, so what the
 * user typed can never turn into a control token.
 */
#ifndef M64_CHAT_H
#define M64_CHAT_H

#include <stdint.h>

enum { CHAT_NONE = 0, CHAT_LLAMA3, CHAT_CHATML, CHAT_LLAMA2, CHAT_MISTRAL, CHAT_ZEPHYR, CHAT_GEMMA, CHAT_PHI3 };
enum { CHAT_STARTED = 1 }; /* chat_turn flags: not the conversation's first turn */
enum { CHAT_EKIND = -2, CHAT_ETOKENIZER = -3 }; /* besides -1: out (or scratch) too small */

/* The kind named by these len bytes ("llama3", "chatml", ...), CHAT_NONE if unknown. */
int32_t chat_kind(const char *name, uint32_t len);
/* A user turn, with the system message sys (sys_len 0: none) before it, and the assistant's
 * header after it; the first turn (flags without CHAT_STARTED) starts with BOS where the
 * vocabulary asks for one. scratch holds at least sys_len + user_len + 256 bytes. Returns
 * the number of ids written to out (max ids), or -1 / CHAT_EKIND / CHAT_ETOKENIZER. */
int32_t chat_turn(int32_t kind, int32_t flags, const char *sys, uint32_t sys_len, const char *user,
                  uint32_t user_len, char *scratch, uint32_t scratch_cap, int32_t *out, uint32_t max);
/* What closes the assistant's reply, less its first id when that is `last` (the model
 * usually ends its reply with the closing marker itself, which the host has already run). */
int32_t chat_end(int32_t kind, int32_t last, char *scratch, uint32_t scratch_cap, int32_t *out, uint32_t max);

#endif
