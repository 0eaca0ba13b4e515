/*
 * tokblob.h — builds the module's tokenizer blob (format: module/tokenizer.h)
 * from a GGUF file's tokenizer.ggml.* metadata. Host side (m64c), native C11.
 */
#ifndef M64_TOKBLOB_H
#define M64_TOKBLOB_H

#include <stddef.h>
#include <stdint.h>

#include "m64_formats.h"

#ifdef __cplusplus
extern "C" {
#endif

/* On success *blob is a malloc'ed blob of *size bytes (caller frees) and 0 is returned.
 * Otherwise *blob is NULL and e names the problem: M64_ENOTFOUND (no vocabulary, or a BPE
 * one without merges), M64_EUNSUPPORTED (a tokenizer model other than "llama" and "gpt2",
 * or a BPE pre-tokenizer other than those listed in the message), M64_ETYPE / M64_EFORMAT
 * (a key of the wrong type, mismatched array lengths, an id out of range, a merge naming
 * text that is no token, repeated BPE token texts), M64_ELIMIT (over the tokenizer.h
 * caps), M64_ENOMEM.
 * Besides copying the vocabulary it applies llama.cpp's text-based rules: tokens such as
 * "<|eot_id|>", "<|im_end|>" or FIM markers become control tokens, and the end-of-generation
 * ones (with EOS, EOT and EOM) get TOK_TYPE_EOG. */
int m64_tokblob_build(const m64_gguf *g, uint8_t **blob, size_t *size, m64_err *e);

#ifdef __cplusplus
}
#endif
#endif
