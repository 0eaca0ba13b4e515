/* tokenizer.c — SentencePiece ("llama") tokenizer over the TOKENIZER blob (tokenizer.h). */
#include "tokenizer.h"

#include "base.h"

/* One vocabulary entry; the text stays in the blob (text_off is relative to tok_blob). */
typedef struct tok_entry {
  uint32_t text_off;
  uint16_t text_len; /* <= TOK_MAX_TOKEN_LEN */
  uint8_t type;
  uint8_t unused;
  float score;
} tok_entry;

static const uint8_t *tok_blob;
static const tok_entry *tok_entries;
static uint32_t tok_count;       /* 0 = not loaded */
static int32_t tok_bos_id = -1, tok_eos_id = -1, tok_unk_id = -1;
static uint32_t tok_flags;
static const uint32_t *tok_hash; /* open addressing: id + 1, 0 = empty */
static uint32_t tok_hash_mask;
static int32_t tok_byte_id[256]; /* byte fallback: "<0xXX>", else the 1-byte token, else unk */

static uint32_t read_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t fnv1a(const uint8_t *s, uint32_t n) {
  uint32_t h = 2166136261u;
  for (uint32_t i = 0; i < n; i++) h = (h ^ s[i]) * 16777619u;
  return h;
}

static int32_t lookup_in(const uint32_t *hash, uint32_t mask, const uint8_t *blob,
                         const tok_entry *entries, const uint8_t *s, uint32_t n) {
  for (uint32_t i = fnv1a(s, n) & mask;; i = (i + 1) & mask) {
    uint32_t slot = hash[i];
    if (!slot) return -1;
    const tok_entry *t = &entries[slot - 1];
    if (t->text_len == n && mm_memcmp(blob + t->text_off, s, n) == 0) return (int32_t)(slot - 1);
  }
}

static int32_t lookup(const uint8_t *s, uint32_t n) {
  return lookup_in(tok_hash, tok_hash_mask, tok_blob, tok_entries, s, n);
}

/* Token types whose text is matched against input text. Control and unknown tokens are
 * left out so that literal "<s>" in a prompt stays text. */
static int matchable(uint8_t type) {
  return type == TOK_TYPE_NORMAL || type == TOK_TYPE_USER_DEFINED ||
         type == TOK_TYPE_UNUSED || type == TOK_TYPE_BYTE;
}

static int valid_id(int32_t id, uint32_t n) { return id == -1 || (id >= 0 && (uint32_t)id < n); }

int32_t tok_load(const uint8_t *blob, uint32_t size) {
  tok_count = 0; /* a failed load leaves nothing loaded */
  if (!blob || size < TOK_HEADER_BYTES) return TOK_ETRUNCATED;
  if (mm_memcmp(blob, TOK_BLOB_MAGIC, 4) != 0) return TOK_EFORMAT;
  if (read_u32(blob + 4) != TOK_BLOB_VERSION) return TOK_EFORMAT;
  uint32_t kind = read_u32(blob + 8);
  if (kind == TOK_MODEL_BPE) return TOK_EUNSUPPORTED;
  if (kind != TOK_MODEL_SPM) return TOK_EFORMAT;
  uint32_t n = read_u32(blob + 12);
  if (n == 0) return TOK_EFORMAT;
  if (n > TOK_MAX_VOCAB) return TOK_ELIMIT;
  int32_t bos = (int32_t)read_u32(blob + 16), eos = (int32_t)read_u32(blob + 20);
  int32_t unk = (int32_t)read_u32(blob + 24), pad = (int32_t)read_u32(blob + 28);
  if (!valid_id(bos, n) || !valid_id(eos, n) || !valid_id(unk, n) || !valid_id(pad, n))
    return TOK_EFORMAT;
  uint32_t flags = read_u32(blob + 32);
  if (flags & ~(TOK_FLAG_ADD_BOS | TOK_FLAG_ADD_SPACE_PREFIX)) return TOK_EFORMAT;
  if (read_u32(blob + 36) != 0) return TOK_EFORMAT;
  /* every record is at least 9 bytes: reject a short blob before allocating per n */
  if ((uint64_t)size - TOK_HEADER_BYTES < (uint64_t)n * 9) return TOK_ETRUNCATED;

  /* pass 1: validate every record without allocating */
  uint32_t pos = TOK_HEADER_BYTES;
  for (uint32_t i = 0; i < n; i++) {
    if (size - pos < 9) return TOK_ETRUNCATED;
    uint32_t score_bits = read_u32(blob + pos);
    if ((score_bits & 0x7f800000u) == 0x7f800000u && (score_bits & 0x007fffffu))
      return TOK_EFORMAT; /* NaN would break the merge order */
    uint8_t type = blob[pos + 4];
    if (type < TOK_TYPE_NORMAL || type > TOK_TYPE_BYTE) return TOK_EFORMAT;
    uint32_t len = read_u32(blob + pos + 5);
    if (len > TOK_MAX_TOKEN_LEN) return TOK_ELIMIT;
    pos += 9;
    if (size - pos < len) return TOK_ETRUNCATED;
    pos += len;
  }
  if (pos != size) return TOK_EFORMAT; /* trailing bytes */

  /* pass 2: entries and the text -> id hash table (load factor <= 1/2) */
  uint32_t cap = 16;
  while (cap < 2 * n) cap <<= 1;
  tok_entry *entries = (tok_entry *)mm_alloc(n * (uint32_t)sizeof(tok_entry));
  uint32_t *hash = (uint32_t *)mm_alloc(cap * 4);
  if (!entries || !hash) return TOK_ENOMEM;
  mm_memset(hash, 0, cap * 4);
  pos = TOK_HEADER_BYTES;
  for (uint32_t i = 0; i < n; i++) {
    tok_entry *t = &entries[i];
    uint32_t score_bits = read_u32(blob + pos);
    mm_memcpy(&t->score, &score_bits, 4);
    t->type = blob[pos + 4];
    t->unused = 0;
    t->text_len = (uint16_t)read_u32(blob + pos + 5);
    t->text_off = pos + 9;
    pos += 9 + t->text_len;
    if (!matchable(t->type)) continue;
    const uint8_t *s = blob + t->text_off;
    for (uint32_t h = fnv1a(s, t->text_len) & (cap - 1);; h = (h + 1) & (cap - 1)) {
      uint32_t slot = hash[h];
      const tok_entry *o = slot ? &entries[slot - 1] : 0;
      if (!o ||
          (o->text_len == t->text_len && mm_memcmp(blob + o->text_off, s, t->text_len) == 0)) {
        hash[h] = i + 1; /* a duplicate text maps to its last id, as in llama.cpp */
        break;
      }
    }
  }

  for (uint32_t b = 0; b < 256; b++) {
    static const char hex[] = "0123456789ABCDEF";
    uint8_t name[6] = {'<', '0', 'x', (uint8_t)hex[b >> 4], (uint8_t)hex[b & 15], '>'};
    uint8_t raw = (uint8_t)b;
    int32_t id = lookup_in(hash, cap - 1, blob, entries, name, 6);
    if (id < 0) id = lookup_in(hash, cap - 1, blob, entries, &raw, 1);
    tok_byte_id[b] = id >= 0 ? id : unk; /* -1: the byte is dropped (no unk either) */
  }

  tok_blob = blob;
  tok_entries = entries;
  tok_hash = hash;
  tok_hash_mask = cap - 1;
  tok_bos_id = bos;
  tok_eos_id = eos;
  tok_unk_id = unk;
  (void)pad;
  tok_flags = flags;
  tok_count = n;
  return 0;
}

int32_t tok_bos(void) { return tok_count ? tok_bos_id : -1; }
int32_t tok_eos(void) { return tok_count ? tok_eos_id : -1; }
uint32_t tok_n_vocab(void) { return tok_count; }
int32_t tok_add_bos(void) { return tok_count && (tok_flags & TOK_FLAG_ADD_BOS) ? 1 : 0; }

/* ---- encoding ---- */

typedef struct symbol {
  int32_t prev, next; /* linked list of live symbols; -1 at the ends */
  uint32_t start, n;  /* bytes in the escaped text; n = 0 once merged into its left */
  int32_t last_merge; /* newest merge record that grew this symbol, -1 none */
} symbol;

typedef struct bigram {
  float score;
  int32_t left, right;
  uint32_t size; /* bytes of the pair when pushed; a different sum later means stale */
} bigram;

/* How a symbol grew: it absorbed `right` (right_len bytes) when it was left_len bytes. */
typedef struct merge_rec {
  int32_t right;
  uint32_t left_len, right_len;
  int32_t older; /* previous record of the same symbol */
} merge_rec;

/* One scratch area, reused across calls and replaced only by a larger one (no free). */
static uint8_t *scratch;
static uint64_t scratch_size;

typedef struct encoder {
  const uint8_t *text; /* escaped text */
  symbol *sym;
  bigram *heap;
  uint32_t heap_n;
  merge_rec *rec;
  int32_t *out;
  uint32_t n_out, max;
} encoder;

/* Max-heap order: higher score first, then the leftmost pair. */
static int before(const bigram *a, const bigram *b) {
  return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void heap_push(encoder *e, bigram b) {
  uint32_t i = e->heap_n++;
  while (i > 0) {
    uint32_t parent = (i - 1) / 2;
    if (!before(&b, &e->heap[parent])) break;
    e->heap[i] = e->heap[parent];
    i = parent;
  }
  e->heap[i] = b;
}

static bigram heap_pop(encoder *e) {
  bigram top = e->heap[0];
  bigram last = e->heap[--e->heap_n];
  uint32_t i = 0, n = e->heap_n;
  for (;;) {
    uint32_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && before(&e->heap[c + 1], &e->heap[c])) c++;
    if (!before(&e->heap[c], &last)) break;
    e->heap[i] = e->heap[c];
    i = c;
  }
  if (n) e->heap[i] = last;
  return top;
}

static void try_pair(encoder *e, int32_t left, int32_t right) {
  if (left < 0 || right < 0) return;
  const symbol *l = &e->sym[left], *r = &e->sym[right];
  int32_t id = lookup(e->text + l->start, l->n + r->n);
  if (id < 0) return;
  bigram b = {tok_entries[id].score, left, right, l->n + r->n};
  heap_push(e, b);
}

static int emit(encoder *e, int32_t id) {
  if (id < 0) return 0;
  if (e->n_out >= e->max) return -1;
  e->out[e->n_out++] = id;
  return 0;
}

/* Emits the piece [start of symbol s, len bytes): as one token if it is one, else split
 * back into the two pieces it was merged from, else as bytes. */
static int resegment(encoder *e, int32_t s, uint32_t len, int depth) {
  uint32_t start = e->sym[s].start;
  int32_t id = lookup(e->text + start, len);
  if (id >= 0) return emit(e, id);
  if (depth < 64) {
    for (int32_t r = e->sym[s].last_merge; r >= 0; r = e->rec[r].older) {
      const merge_rec *m = &e->rec[r];
      if (m->left_len + m->right_len != len) continue;
      if (resegment(e, s, m->left_len, depth + 1)) return -1;
      return resegment(e, m->right, m->right_len, depth + 1);
    }
  }
  for (uint32_t i = 0; i < len; i++)
    if (emit(e, tok_byte_id[e->text[start + i]])) return -1;
  return 0;
}

/* Scratch layout for one call; sizes in 64-bit so a huge len cannot wrap. */
static uint64_t align8(uint64_t x) { return (x + 7) & ~(uint64_t)7; }

int32_t tok_encode(const char *text, uint32_t len, int32_t add_bos, int32_t *out, uint32_t max) {
  if (!tok_count) return TOK_ENOTLOADED;
  encoder e = {0};
  e.out = out;
  e.max = max;
  if (add_bos && tok_bos_id >= 0 && emit(&e, tok_bos_id)) return -1;
  if (len == 0) return (int32_t)e.n_out; /* no space prefix for empty text */

  const uint8_t *in = (const uint8_t *)text;
  int prefix = (tok_flags & TOK_FLAG_ADD_SPACE_PREFIX) != 0;
  uint64_t esc_len = 0;
  for (uint32_t i = 0; i < len; i++) esc_len += in[i] == ' ' ? 3 : 1;
  esc_len += prefix ? 3 : 0;
  /* symbols <= bytes; pushes <= (n - 1) initial + 2 per merge; merges <= n - 1 */
  uint64_t n_max = esc_len;
  uint64_t off_sym = align8(esc_len);
  uint64_t off_heap = off_sym + align8(n_max * sizeof(symbol));
  uint64_t off_rec = off_heap + align8(3 * n_max * sizeof(bigram));
  uint64_t need = off_rec + align8(n_max * sizeof(merge_rec));
  if (need > 0xFFFFFFF0ull || n_max > 0x3FFFFFFFull) return TOK_ENOMEM;
  if (need > scratch_size) {
    uint64_t grow = need + need / 4 + 4096;
    if (grow > 0xFFFFFFF0ull) grow = need;
    uint8_t *p = (uint8_t *)mm_alloc((uint32_t)grow);
    if (!p) return TOK_ENOMEM;
    scratch = p;
    scratch_size = grow;
  }
  uint8_t *esc = scratch;
  e.sym = (symbol *)(scratch + off_sym);
  e.heap = (bigram *)(scratch + off_heap);
  e.rec = (merge_rec *)(scratch + off_rec);
  e.text = esc;

  /* escape: optional leading space, then ' ' -> U+2581 */
  uint32_t w = 0;
  if (prefix) { esc[w++] = 0xE2; esc[w++] = 0x96; esc[w++] = 0x81; }
  for (uint32_t i = 0; i < len; i++) {
    if (in[i] == ' ') { esc[w++] = 0xE2; esc[w++] = 0x96; esc[w++] = 0x81; }
    else esc[w++] = in[i];
  }

  /* one symbol per UTF-8 character; the length comes from the lead byte alone (a stray
   * continuation byte is one character), cut short at the end of the text */
  int32_t n_sym = 0;
  for (uint32_t p = 0; p < w;) {
    static const uint8_t len_by_high_nibble[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    uint32_t cl = len_by_high_nibble[esc[p] >> 4];
    if (cl > w - p) cl = w - p;
    symbol *s = &e.sym[n_sym];
    s->prev = n_sym - 1;
    s->next = p + cl == w ? -1 : n_sym + 1;
    s->start = p;
    s->n = cl;
    s->last_merge = -1;
    n_sym++;
    p += cl;
  }

  for (int32_t i = 1; i < n_sym; i++) try_pair(&e, i - 1, i);
  int32_t n_rec = 0;
  while (e.heap_n) {
    bigram b = heap_pop(&e);
    symbol *l = &e.sym[b.left], *r = &e.sym[b.right];
    if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue; /* stale */
    merge_rec *m = &e.rec[n_rec];
    m->right = b.right;
    m->left_len = l->n;
    m->right_len = r->n;
    m->older = l->last_merge;
    l->last_merge = n_rec++;
    l->n += r->n;
    r->n = 0;
    l->next = r->next;
    if (r->next >= 0) e.sym[r->next].prev = b.left;
    try_pair(&e, l->prev, b.left);
    try_pair(&e, b.left, l->next);
  }

  for (int32_t i = 0; i >= 0; i = e.sym[i].next)
    if (resegment(&e, i, e.sym[i].n, 0)) return -1;
  return (int32_t)e.n_out;
}

/* ---- decoding ---- */

static int hex_digit(uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

int32_t tok_piece(int32_t prev, int32_t id, char *out, uint32_t max) {
  if (!tok_count) return TOK_ENOTLOADED;
  if (id < 0 || (uint32_t)id >= tok_count) return -1;
  const tok_entry *t = &tok_entries[id];
  const uint8_t *s = tok_blob + t->text_off;
  uint32_t n = t->text_len;
  uint8_t buf[TOK_MAX_TOKEN_LEN];
  uint32_t k = 0;
  switch (t->type) {
  case TOK_TYPE_CONTROL:
  case TOK_TYPE_UNKNOWN:
  case TOK_TYPE_UNUSED:
    return 0;
  case TOK_TYPE_USER_DEFINED:
    mm_memcpy(buf, s, n);
    k = n;
    break;
  case TOK_TYPE_BYTE:
    if (n == 6 && s[0] == '<' && s[1] == '0' && s[2] == 'x' && s[5] == '>' &&
        hex_digit(s[3]) >= 0 && hex_digit(s[4]) >= 0) {
      buf[k++] = (uint8_t)(hex_digit(s[3]) << 4 | hex_digit(s[4]));
      break;
    }
    /* a byte token without the "<0xXX>" form: show its text like a normal token */
    /* fall through */
  default: /* normal: U+2581 back to ' ' */
    for (uint32_t i = 0; i < n;) {
      if (i + 2 < n && s[i] == 0xE2 && s[i + 1] == 0x96 && s[i + 2] == 0x81) {
        buf[k++] = ' ';
        i += 3;
      } else {
        buf[k++] = s[i++];
      }
    }
    break;
  }
  uint32_t from = 0;
  /* undo the space encode put in front of the text */
  if ((tok_flags & TOK_FLAG_ADD_SPACE_PREFIX) && (prev < 0 || prev == tok_bos_id) && k &&
      buf[0] == ' ')
    from = 1;
  if (k - from > max) return -2;
  if (k > from) mm_memcpy(out, buf + from, k - from);
  return (int32_t)(k - from);
}
