/*
 * tokenizer.h — the module's tokenizer (freestanding; see base.h).
 *
 * Blob format (the bundle's TOKENIZER section, made by compiler/tokblob.c), version 1.
 * All fields little-endian, no alignment or padding anywhere:
 *
 *   off  size  field
 *     0     4  magic "M64T"
 *     4     4  u32 version (TOK_BLOB_VERSION = 1)
 *     8     4  u32 model kind: 1 = SentencePiece ("llama"), 2 = BPE (reserved, rejected)
 *    12     4  u32 n_vocab, 1 .. TOK_MAX_VOCAB
 *    16     4  i32 bos id  (-1 = none; otherwise < n_vocab)
 *    20     4  i32 eos id  (same)
 *    24     4  i32 unk id  (same)
 *    28     4  i32 pad id  (same)
 *    32     4  u32 flags: bit 0 add_bos (tokenizer.ggml.add_bos_token),
 *                         bit 1 add_space_prefix (tokenizer.ggml.add_space_prefix);
 *                         other bits must be 0
 *    36     4  u32 reserved, must be 0
 *    40        n_vocab token records, in id order, each:
 *                f32 score, u8 type (TOK_TYPE_*: 1..6), u32 length (<= TOK_MAX_TOKEN_LEN),
 *                length bytes of text (SentencePiece form: a space is U+2581 "▁")
 *   end        nothing may follow the last record
 *
 * Behaviour (matches llama.cpp's SentencePiece tokenizer on the shared reference vectors):
 *   encode  non-empty text gets one leading space if add_space_prefix; every ' ' becomes
 *           "▁"; UTF-8 characters (length from the lead byte only) are merged pairwise,
 *           best-scoring pair first (ties: leftmost); leftovers that are no token fall back
 *           to "<0xXX>" byte tokens, else the 1-byte token, else unk. Only normal,
 *           user-defined, unused and byte tokens are matched against text, so a literal
 *           "<s>" in the input never becomes BOS. Special-token text is never parsed.
 *   piece   normal: text with "▁" -> ' '; byte "<0xXX>": that byte; user-defined: text as
 *           is; control, unknown, unused: nothing (llama.cpp with special = false).
 *           Leading-space rule: when add_space_prefix is set and the token starts a text
 *           (prev < 0, or prev is the BOS id) one leading space is dropped, which undoes
 *           the space encode added. This reproduces the reference "detok" strings, which
 *           llama.cpp computed over the ids without BOS (first piece: prev = -1).
 *
 * State lives in file-level statics: one tokenizer per module instance. tok_load keeps
 * pointers into the blob, so the blob must stay valid (unchanged) for as long as the
 * tokenizer is used; the host's m64_alloc'ed copy lives as long as the instance.
 */
#ifndef M64_MODULE_TOKENIZER_H
#define M64_MODULE_TOKENIZER_H

#include <stdint.h>

#define TOK_BLOB_MAGIC "M64T"
#define TOK_BLOB_VERSION 1u
#define TOK_HEADER_BYTES 40u
#define TOK_MAX_VOCAB (1u << 20)
#define TOK_MAX_TOKEN_LEN 1024u

enum { TOK_MODEL_SPM = 1, TOK_MODEL_BPE = 2 };
enum {
  TOK_TYPE_NORMAL = 1, TOK_TYPE_UNKNOWN = 2, TOK_TYPE_CONTROL = 3,
  TOK_TYPE_USER_DEFINED = 4, TOK_TYPE_UNUSED = 5, TOK_TYPE_BYTE = 6
};
enum { TOK_FLAG_ADD_BOS = 1u, TOK_FLAG_ADD_SPACE_PREFIX = 2u };

/* Error codes of tok_load / tok_encode / tok_piece. */
enum {
  TOK_ETRUNCATED = -1,   /* tok_load: blob ends inside a field */
  TOK_EFORMAT = -2,      /* tok_load: bad magic, version, flags, type or id */
  TOK_EUNSUPPORTED = -3, /* tok_load: model kind other than SentencePiece */
  TOK_ELIMIT = -4,       /* tok_load: n_vocab or a token length above the caps */
  TOK_ENOMEM = -5,       /* any: mm_alloc failed (workspace limit) */
  TOK_ENOTLOADED = -6,   /* encode/piece before a successful tok_load */
};

/* Parses and validates the blob and builds the lookup tables (mm_alloc). 0 ok, else a
 * TOK_E* code; a failed load leaves no tokenizer loaded. Safe on hostile bytes. */
int32_t tok_load(const uint8_t *blob, uint32_t size);
/* Encodes len bytes of UTF-8 text into out (max ids), BOS first if add_bos != 0 and the
 * vocabulary has one. Returns the number of ids; -1 if out is too small (out's contents
 * are then unspecified); TOK_ENOMEM / TOK_ENOTLOADED on those errors. */
int32_t tok_encode(const char *text, uint32_t len, int32_t add_bos, int32_t *out, uint32_t max);
/* Writes the bytes token id stands for when it follows token prev (-1 = none) into out.
 * Returns the byte count (never more than TOK_MAX_TOKEN_LEN); -1 for an id out of
 * range; -2 if max is too small (nothing written); TOK_ENOTLOADED before a load. */
int32_t tok_piece(int32_t prev, int32_t id, char *out, uint32_t max);
int32_t tok_bos(void);      /* -1 when none / not loaded */
int32_t tok_eos(void);      /* -1 when none / not loaded */
uint32_t tok_n_vocab(void); /* 0 when not loaded */
/* The blob's add_bos flag (tokenizer.ggml.add_bos_token): whether prompts get BOS. */
int32_t tok_add_bos(void);

#endif
