/* tokenizer.c — the module's tokenizers over the TOKENIZER blob (tokenizer.h): SentencePiece
 * and byte-level BPE, special-token text, pieces. */
#include "tokenizer.h"

#include "base.h"
#include "unicode_ranges.h"

/* One vocabulary entry; the text stays in the blob (text_off is relative to tok_blob). */
typedef struct tok_entry {
  uint32_t text_off;
  uint16_t text_len; /* <= TOK_MAX_TOKEN_LEN */
  uint8_t type;      /* TOK_TYPE_* without the EOG bit */
  uint8_t eog;
  float score;
} tok_entry;

static const uint8_t *tok_blob;
static const tok_entry *tok_entries;
static uint32_t tok_count;       /* 0 = not loaded */
static uint32_t tok_kind, tok_pre;
static int32_t tok_bos_id = -1, tok_eos_id = -1, tok_unk_id = -1;
static uint32_t tok_flags;
/* text -> id, open addressing (id + 1, 0 = empty). SentencePiece: the tokens matched
 * against text; BPE: every token. */
static const uint32_t *tok_hash;
static uint32_t tok_hash_mask;
/* SentencePiece: byte fallback ("<0xXX>", else the 1-byte token, else unk).
 * BPE: the token of each byte's GPT-2 character, -1 if the vocabulary lacks it. */
static int32_t tok_byte_id[256];
/* BPE merges: the blob's (left, right, result) records and a pair -> rank table (rank + 1,
 * 0 = empty). */
static const uint8_t *tok_merge_pairs;
static const uint32_t *tok_merge_hash;
static uint32_t tok_merge_mask;
/* Control, user-defined and unknown tokens, longest text first (ties: lower id), and the
 * first bytes of their texts (to skip the search when a text has none of them). */
static const int32_t *tok_specials;
static uint32_t tok_n_specials, tok_n_user;
static uint8_t tok_first_any[32], tok_first_user[32];
/* GPT-2's byte <-> printable character mapping. */
static uint16_t byte_cp[256];
static int16_t cp_byte[324];

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

/* SentencePiece token types whose text is matched against input text. Control and unknown
 * tokens are left out so that literal "<s>" in a prompt stays text. */
static int matchable(uint8_t type) {
  return type == TOK_TYPE_NORMAL || type == TOK_TYPE_USER_DEFINED ||
         type == TOK_TYPE_UNUSED || type == TOK_TYPE_BYTE;
}

static int is_special(uint8_t type) {
  return type == TOK_TYPE_CONTROL || type == TOK_TYPE_USER_DEFINED || type == TOK_TYPE_UNKNOWN;
}

static int valid_id(int32_t id, uint32_t n) { return id == -1 || (id >= 0 && (uint32_t)id < n); }

static uint32_t utf8_put(uint8_t *d, uint32_t cp) {
  if (cp < 0x80) { d[0] = (uint8_t)cp; return 1; }
  if (cp < 0x800) { d[0] = (uint8_t)(0xC0 | cp >> 6); d[1] = (uint8_t)(0x80 | (cp & 63)); return 2; }
  if (cp < 0x10000) {
    d[0] = (uint8_t)(0xE0 | cp >> 12);
    d[1] = (uint8_t)(0x80 | (cp >> 6 & 63));
    d[2] = (uint8_t)(0x80 | (cp & 63));
    return 3;
  }
  d[0] = (uint8_t)(0xF0 | cp >> 18);
  d[1] = (uint8_t)(0x80 | (cp >> 12 & 63));
  d[2] = (uint8_t)(0x80 | (cp >> 6 & 63));
  d[3] = (uint8_t)(0x80 | (cp & 63));
  return 4;
}

/* GPT-2's mapping: printable Latin-1 bytes stand for themselves, the other 68 bytes take
 * the code points from U+0100 on, in byte order. */
static void init_byte_map(void) {
  uint32_t next = 256;
  for (uint32_t i = 0; i < 324; i++) cp_byte[i] = -1;
  for (uint32_t b = 0; b < 256; b++) {
    int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    byte_cp[b] = (uint16_t)(printable ? b : next++);
    cp_byte[byte_cp[b]] = (int16_t)b;
  }
}

static uint32_t merge_slot(uint32_t a, uint32_t b) { /* murmur3's finalizer over the pair */
  uint32_t h = a * 0x9E3779B1u + b;
  h ^= h >> 16;
  h *= 0x85EBCA6Bu;
  h ^= h >> 13;
  h *= 0xC2B2AE35u;
  return h ^ h >> 16;
}

/* Rank of the merge (a, b), -1 if there is none. */
static int32_t merge_rank(int32_t a, int32_t b) {
  for (uint32_t i = merge_slot((uint32_t)a, (uint32_t)b) & tok_merge_mask;;
       i = (i + 1) & tok_merge_mask) {
    uint32_t slot = tok_merge_hash[i];
    if (!slot) return -1;
    const uint8_t *m = tok_merge_pairs + TOK_MERGE_BYTES * (slot - 1);
    if (read_u32(m) == (uint32_t)a && read_u32(m + 4) == (uint32_t)b) return (int32_t)(slot - 1);
  }
}

/* Rounds up to a power of two >= want (at least 16). */
static uint32_t table_size(uint64_t want) {
  uint32_t cap = 16;
  while (cap < want) cap <<= 1;
  return cap;
}

/* BPE merges: the pair -> rank table. A merge's result must be as long as its two parts
 * together (m64c wrote the token their texts make; the ids were range-checked). */
static int32_t load_merges(const uint8_t *pairs, uint32_t n_merges, const tok_entry *entries) {
  uint32_t cap = table_size((uint64_t)n_merges + n_merges / 2);
  uint32_t *table = (uint32_t *)mm_alloc(cap * 4);
  if (!table) return TOK_ENOMEM;
  mm_memset(table, 0, cap * 4);
  for (uint32_t r = 0; r < n_merges; r++) {
    const uint8_t *m = pairs + TOK_MERGE_BYTES * r;
    uint32_t a = read_u32(m), b = read_u32(m + 4), made = read_u32(m + 8);
    if (entries[made].text_len != (uint32_t)entries[a].text_len + entries[b].text_len)
      return TOK_EFORMAT;
    for (uint32_t i = merge_slot(a, b) & (cap - 1);; i = (i + 1) & (cap - 1)) {
      uint32_t slot = table[i];
      if (!slot) {
        table[i] = r + 1;
        break;
      }
      const uint8_t *o = pairs + TOK_MERGE_BYTES * (slot - 1);
      if (read_u32(o) == a && read_u32(o + 4) == b) break; /* a repeated pair keeps its best rank */
    }
  }
  tok_merge_hash = table;
  tok_merge_mask = cap - 1;
  return 0;
}

/* Special tokens sorted by text length, longest first (a counting sort: lengths are capped). */
static int32_t load_specials(const tok_entry *entries, uint32_t n) {
  static uint32_t count[TOK_MAX_TOKEN_LEN + 2];
  mm_memset(count, 0, sizeof count);
  mm_memset(tok_first_any, 0, sizeof tok_first_any);
  mm_memset(tok_first_user, 0, sizeof tok_first_user);
  uint32_t total = 0, user = 0;
  for (uint32_t i = 0; i < n; i++) {
    const tok_entry *t = &entries[i];
    if (!is_special(t->type) || t->text_len == 0) continue;
    count[TOK_MAX_TOKEN_LEN - t->text_len]++;
    total++;
    uint8_t c = tok_blob[t->text_off];
    tok_first_any[c >> 3] |= (uint8_t)(1u << (c & 7));
    if (t->type == TOK_TYPE_USER_DEFINED) {
      user++;
      tok_first_user[c >> 3] |= (uint8_t)(1u << (c & 7));
    }
  }
  int32_t *ids = (int32_t *)mm_alloc(total ? total * 4 : 4);
  if (!ids) return TOK_ENOMEM;
  uint32_t start = 0;
  for (uint32_t k = 0; k <= TOK_MAX_TOKEN_LEN; k++) {
    uint32_t c = count[k];
    count[k] = start;
    start += c;
  }
  for (uint32_t i = 0; i < n; i++) {
    const tok_entry *t = &entries[i];
    if (is_special(t->type) && t->text_len) ids[count[TOK_MAX_TOKEN_LEN - t->text_len]++] = (int32_t)i;
  }
  tok_specials = ids;
  tok_n_specials = total;
  tok_n_user = user;
  return 0;
}

int32_t tok_load(const uint8_t *blob, uint32_t size) {
  tok_count = 0; /* a failed load leaves nothing loaded */
  if (!blob || size < TOK_HEADER_BYTES) return TOK_ETRUNCATED;
  if (mm_memcmp(blob, TOK_BLOB_MAGIC, 4) != 0) return TOK_EFORMAT;
  if (read_u32(blob + 4) != TOK_BLOB_VERSION) return TOK_EFORMAT;
  uint32_t kind = read_u32(blob + 8);
  if (kind != TOK_MODEL_SPM && kind != TOK_MODEL_BPE) return TOK_EFORMAT;
  uint32_t n = read_u32(blob + 12);
  if (n == 0) return TOK_EFORMAT;
  if (n > TOK_MAX_VOCAB) return TOK_ELIMIT;
  int32_t bos = (int32_t)read_u32(blob + 16), eos = (int32_t)read_u32(blob + 20);
  int32_t unk = (int32_t)read_u32(blob + 24), pad = (int32_t)read_u32(blob + 28);
  if (!valid_id(bos, n) || !valid_id(eos, n) || !valid_id(unk, n) || !valid_id(pad, n))
    return TOK_EFORMAT;
  uint32_t flags = read_u32(blob + 32);
  uint32_t allowed = TOK_FLAG_ADD_BOS | (kind == TOK_MODEL_SPM ? TOK_FLAG_ADD_SPACE_PREFIX
                                                               : TOK_FLAG_IGNORE_MERGES);
  if (flags & ~allowed) return TOK_EFORMAT;
  if (read_u32(blob + 36) != 0) return TOK_EFORMAT;
  uint32_t pos = TOK_HEADER_BYTES, pre = 0, n_merges = 0;
  if (kind == TOK_MODEL_BPE) {
    if (size < TOK_BPE_HEADER_BYTES) return TOK_ETRUNCATED;
    pre = read_u32(blob + 40);
    if (pre < TOK_PRE_LLAMA3 || pre > TOK_PRE_GPT2) return TOK_EFORMAT;
    n_merges = read_u32(blob + 44);
    if (n_merges > TOK_MAX_MERGES) return TOK_ELIMIT;
    pos = TOK_BPE_HEADER_BYTES;
  }
  /* every record is at least 9 bytes: reject a short blob before allocating */
  const uint64_t merge_bytes = (uint64_t)n_merges * TOK_MERGE_BYTES;
  if ((uint64_t)size - pos < (uint64_t)n * 9 + merge_bytes) return TOK_ETRUNCATED;

  /* pass 1: validate every record and merge without allocating */
  const uint32_t first_record = pos;
  for (uint32_t i = 0; i < n; i++) {
    if (size - pos < 9) return TOK_ETRUNCATED;
    uint32_t score_bits = read_u32(blob + pos);
    if ((score_bits & 0x7f800000u) == 0x7f800000u && (score_bits & 0x007fffffu))
      return TOK_EFORMAT; /* NaN would break the merge order */
    uint8_t type = blob[pos + 4] & (uint8_t)~TOK_TYPE_EOG;
    if (type < TOK_TYPE_NORMAL || type > TOK_TYPE_BYTE) return TOK_EFORMAT;
    uint32_t len = read_u32(blob + pos + 5);
    if (len > TOK_MAX_TOKEN_LEN) return TOK_ELIMIT;
    pos += 9;
    if (size - pos < len) return TOK_ETRUNCATED;
    pos += len;
  }
  if ((uint64_t)size - pos < merge_bytes) return TOK_ETRUNCATED;
  if ((uint64_t)size - pos > merge_bytes) return TOK_EFORMAT; /* trailing bytes */
  const uint8_t *pairs = blob + pos;
  for (uint32_t r = 0; r < n_merges; r++) {
    const uint8_t *m = pairs + TOK_MERGE_BYTES * r;
    if (read_u32(m) >= n || read_u32(m + 4) >= n || read_u32(m + 8) >= n) return TOK_EFORMAT;
  }

  /* pass 2: entries and the text -> id hash table (load factor <= 1/2) */
  uint32_t cap = table_size(2 * (uint64_t)n);
  tok_entry *entries = (tok_entry *)mm_alloc(n * (uint32_t)sizeof(tok_entry));
  uint32_t *hash = (uint32_t *)mm_alloc(cap * 4);
  if (!entries || !hash) return TOK_ENOMEM;
  mm_memset(hash, 0, cap * 4);
  pos = first_record;
  for (uint32_t i = 0; i < n; i++) {
    tok_entry *t = &entries[i];
    uint32_t score_bits = read_u32(blob + pos);
    mm_memcpy(&t->score, &score_bits, 4);
    t->type = blob[pos + 4] & (uint8_t)~TOK_TYPE_EOG;
    t->eog = (blob[pos + 4] & TOK_TYPE_EOG) != 0;
    t->text_len = (uint16_t)read_u32(blob + pos + 5);
    t->text_off = pos + 9;
    pos += 9 + t->text_len;
    if (kind == TOK_MODEL_SPM && !matchable(t->type)) continue;
    const uint8_t *s = blob + t->text_off;
    for (uint32_t h = fnv1a(s, t->text_len) & (cap - 1);; h = (h + 1) & (cap - 1)) {
      uint32_t slot = hash[h];
      const tok_entry *o = slot ? &entries[slot - 1] : 0;
      if (!o) {
        hash[h] = i + 1;
        break;
      }
      if (o->text_len == t->text_len && mm_memcmp(blob + o->text_off, s, t->text_len) == 0) {
        if (kind == TOK_MODEL_BPE) return TOK_EFORMAT; /* BPE texts are distinct */
        hash[h] = i + 1; /* a duplicate text maps to its last id, as in llama.cpp */
        break;
      }
    }
  }

  init_byte_map();
  for (uint32_t b = 0; b < 256; b++) {
    int32_t id;
    if (kind == TOK_MODEL_BPE) {
      uint8_t ch[4];
      id = lookup_in(hash, cap - 1, blob, entries, ch, utf8_put(ch, byte_cp[b]));
    } else {
      static const char hex[] = "0123456789ABCDEF";
      uint8_t name[6] = {'<', '0', 'x', (uint8_t)hex[b >> 4], (uint8_t)hex[b & 15], '>'};
      uint8_t raw = (uint8_t)b;
      id = lookup_in(hash, cap - 1, blob, entries, name, 6);
      if (id < 0) id = lookup_in(hash, cap - 1, blob, entries, &raw, 1);
      if (id < 0) id = unk; /* -1: the byte is dropped (no unk either) */
    }
    tok_byte_id[b] = id;
  }

  tok_blob = blob;
  if (kind == TOK_MODEL_BPE) {
    int32_t rc = load_merges(pairs, n_merges, entries);
    if (rc) return rc;
  }
  int32_t rc = load_specials(entries, n);
  if (rc) return rc;
  tok_merge_pairs = pairs;
  tok_entries = entries;
  tok_hash = hash;
  tok_hash_mask = cap - 1;
  tok_kind = kind;
  tok_pre = pre;
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

int32_t tok_is_eog(int32_t id) {
  if (!tok_count || id < 0 || (uint32_t)id >= tok_count) return 0;
  return id == tok_eos_id || tok_entries[id].eog;
}

int32_t tok_find(const char *text, uint32_t len) {
  if (!tok_count || (!text && len)) return -1;
  const uint8_t *s = (const uint8_t *)text;
  if (tok_kind == TOK_MODEL_BPE) return lookup(s, len);
  /* SentencePiece's table holds only matchable tokens: scan (last id wins, as above) */
  for (uint32_t i = tok_count; i-- > 0;) {
    const tok_entry *t = &tok_entries[i];
    if (t->text_len == len && mm_memcmp(tok_blob + t->text_off, s, len) == 0) return (int32_t)i;
  }
  return -1;
}

/* ---- encoding: shared state ---- */

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

/* BPE: one symbol per byte of a word, holding the token it has become (-1 once merged
 * into its left neighbour, or for a byte the vocabulary lacks). */
typedef struct bpe_sym {
  int32_t id, prev, next;
} bpe_sym;

typedef struct bpe_pair {
  uint32_t rank;
  int32_t left; /* the right symbol is left's next at pop time */
} bpe_pair;

/* One scratch area, reused across calls and replaced only by a larger one (no free). */
static uint8_t *scratch;
static uint64_t scratch_size;

typedef struct encoder {
  int32_t *out;
  uint32_t n_out, max;
  int overflow;   /* out was too small */
  int32_t *mark;  /* special-token partition: -1 text, id at a token's start, -2 inside */
  /* SentencePiece */
  uint8_t *esc; /* escaped text */
  symbol *sym;
  bigram *heap;
  uint32_t heap_n;
  merge_rec *rec;
  /* BPE */
  uint32_t *cpts;  /* the fragment's code points */
  uint8_t *cls;    /* their classes (CL_*) */
  uint8_t *wbytes; /* a word's UTF-8 bytes, then its GPT-2 characters */
  bpe_sym *bsym;
  bpe_pair *bheap;
  uint32_t bheap_n;
  uint32_t *ends; /* tok_split: word ends are recorded here instead of merging */
  uint32_t n_ends, max_ends, at;
} encoder;

static void emit(encoder *e, int32_t id) {
  if (id < 0) return;
  if (e->n_out >= e->max) {
    e->overflow = 1;
    return;
  }
  e->out[e->n_out++] = id;
}

/* ---- SentencePiece ---- */

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
  int32_t id = lookup(e->esc + l->start, l->n + r->n);
  if (id < 0) return;
  bigram b = {tok_entries[id].score, left, right, l->n + r->n};
  heap_push(e, b);
}

/* Emits the piece [start of symbol s, len bytes): as one token if it is one, else split
 * back into the two pieces it was merged from, else as bytes. */
static void resegment(encoder *e, int32_t s, uint32_t len, int depth) {
  uint32_t start = e->sym[s].start;
  int32_t id = lookup(e->esc + start, len);
  if (id >= 0) {
    emit(e, id);
    return;
  }
  if (depth < 64) {
    for (int32_t r = e->sym[s].last_merge; r >= 0; r = e->rec[r].older) {
      const merge_rec *m = &e->rec[r];
      if (m->left_len + m->right_len != len) continue;
      resegment(e, s, m->left_len, depth + 1);
      resegment(e, m->right, m->right_len, depth + 1);
      return;
    }
  }
  for (uint32_t i = 0; i < len; i++) emit(e, tok_byte_id[e->esc[start + i]]);
}

/* Escaped length of a stretch of text: spaces become 3-byte "▁", plus the prefix. */
static uint64_t spm_escaped_len(const uint8_t *in, uint32_t len) {
  uint64_t n = (tok_flags & TOK_FLAG_ADD_SPACE_PREFIX) ? 3 : 0;
  for (uint32_t i = 0; i < len; i++) n += in[i] == ' ' ? 3 : 1;
  return n;
}

static void spm_fragment(encoder *e, const uint8_t *in, uint32_t len) {
  uint8_t *esc = e->esc;
  /* escape: optional leading space, then ' ' -> U+2581 */
  uint32_t w = 0;
  if (tok_flags & TOK_FLAG_ADD_SPACE_PREFIX) { esc[w++] = 0xE2; esc[w++] = 0x96; esc[w++] = 0x81; }
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
    symbol *s = &e->sym[n_sym];
    s->prev = n_sym - 1;
    s->next = p + cl == w ? -1 : n_sym + 1;
    s->start = p;
    s->n = cl;
    s->last_merge = -1;
    n_sym++;
    p += cl;
  }

  e->heap_n = 0;
  for (int32_t i = 1; i < n_sym; i++) try_pair(e, i - 1, i);
  int32_t n_rec = 0;
  while (e->heap_n) {
    bigram b = heap_pop(e);
    symbol *l = &e->sym[b.left], *r = &e->sym[b.right];
    if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue; /* stale */
    merge_rec *m = &e->rec[n_rec];
    m->right = b.right;
    m->left_len = l->n;
    m->right_len = r->n;
    m->older = l->last_merge;
    l->last_merge = n_rec++;
    l->n += r->n;
    r->n = 0;
    l->next = r->next;
    if (r->next >= 0) e->sym[r->next].prev = b.left;
    try_pair(e, l->prev, b.left);
    try_pair(e, b.left, l->next);
  }

  if (n_sym)
    for (int32_t i = 0; i >= 0; i = e->sym[i].next) resegment(e, i, e->sym[i].n, 0);
}

/* ---- BPE: code points and their classes ---- */

enum { CL_LETTER = 1, CL_NUMBER = 2, CL_SPACE = 4, CL_PRESENT = 8 };

static uint8_t classify(uint32_t cp) {
  uint8_t c = CL_PRESENT;
  if (cp < 0x80) {
    if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return c | CL_LETTER;
    if (cp >= '0' && cp <= '9') return c | CL_NUMBER;
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return c | CL_SPACE;
    return c;
  }
  for (uint32_t i = 0; i < sizeof uni_white_space / sizeof uni_white_space[0]; i++)
    if (uni_white_space[i] == cp) return c | CL_SPACE;
  uint32_t lo = 0, hi = sizeof uni_runs / sizeof uni_runs[0]; /* last run starting <= cp */
  while (hi - lo > 1) {
    uint32_t mid = (lo + hi) / 2;
    if ((uni_runs[mid] >> 2) <= cp) lo = mid;
    else hi = mid;
  }
  uint32_t k = uni_runs[lo] & 3;
  return (uint8_t)(c | (k == UNI_LETTER ? CL_LETTER : k == UNI_NUMBER ? CL_NUMBER : 0));
}

/* One code point as llama.cpp reads UTF-8: a malformed sequence is one byte of U+FFFD.
 * Code points past U+10FFFF (where llama.cpp throws) become U+FFFD as well. */
static uint32_t next_cp(const uint8_t *s, uint32_t n, uint32_t *adv) {
  uint8_t b = s[0];
  uint32_t need, cp;
  *adv = 1;
  if (b < 0x80) return b;
  if (b < 0xC0) return 0xFFFD;
  if (b < 0xE0) { need = 1; cp = b & 0x1F; }
  else if (b < 0xF0) { need = 2; cp = b & 0x0F; }
  else if (b < 0xF8) { need = 3; cp = b & 0x07; }
  else return 0xFFFD;
  if (need >= n) return 0xFFFD;
  for (uint32_t i = 1; i <= need; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0xFFFD;
    cp = cp << 6 | (s[i] & 0x3F);
  }
  *adv = need + 1;
  return cp > 0x10FFFF ? 0xFFFD : cp;
}

/* ---- BPE: merging one word ---- */

static int pair_before(bpe_pair a, bpe_pair b) {
  return a.rank < b.rank || (a.rank == b.rank && a.left < b.left);
}

static void bpe_push(encoder *e, int32_t left) {
  if (left < 0) return;
  int32_t right = e->bsym[left].next;
  if (right < 0) return;
  int32_t a = e->bsym[left].id, b = e->bsym[right].id;
  if (a < 0 || b < 0) return;
  int32_t rank = merge_rank(a, b);
  if (rank < 0) return;
  bpe_pair p = {(uint32_t)rank, left};
  uint32_t i = e->bheap_n++;
  while (i > 0) {
    uint32_t parent = (i - 1) / 2;
    if (!pair_before(p, e->bheap[parent])) break;
    e->bheap[i] = e->bheap[parent];
    i = parent;
  }
  e->bheap[i] = p;
}

static bpe_pair bpe_pop(encoder *e) {
  bpe_pair top = e->bheap[0], last = e->bheap[--e->bheap_n];
  uint32_t i = 0, n = e->bheap_n;
  for (;;) {
    uint32_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && pair_before(e->bheap[c + 1], e->bheap[c])) c++;
    if (!pair_before(e->bheap[c], last)) break;
    e->bheap[i] = e->bheap[c];
    i = c;
  }
  if (n) e->bheap[i] = last;
  return top;
}

/* Tokens of the word made of code points [lo, hi). */
static void bpe_word(encoder *e, uint32_t lo, uint32_t hi) {
  uint8_t *w = e->wbytes;
  uint32_t nb = 0;
  for (uint32_t i = lo; i < hi; i++) nb += utf8_put(w + nb, e->cpts[i]);
  if (e->ends) {
    e->at += nb;
    if (e->n_ends < e->max_ends) e->ends[e->n_ends] = e->at;
    else e->overflow = 1;
    e->n_ends++;
    return;
  }
  if (nb == 1) {
    emit(e, tok_byte_id[w[0]]);
    return;
  }
  if (tok_flags & TOK_FLAG_IGNORE_MERGES) { /* the word as GPT-2 characters, after its bytes */
    uint8_t *m = w + nb;
    uint32_t nm = 0;
    for (uint32_t i = 0; i < nb; i++) nm += utf8_put(m + nm, byte_cp[w[i]]);
    int32_t id = lookup(m, nm);
    if (id >= 0) {
      emit(e, id);
      return;
    }
  }
  bpe_sym *s = e->bsym;
  for (uint32_t i = 0; i < nb; i++) {
    s[i].id = tok_byte_id[w[i]];
    s[i].prev = (int32_t)i - 1;
    s[i].next = i + 1 < nb ? (int32_t)i + 1 : -1;
  }
  e->bheap_n = 0;
  for (uint32_t i = 0; i + 1 < nb; i++) bpe_push(e, (int32_t)i);
  while (e->bheap_n) {
    bpe_pair p = bpe_pop(e);
    bpe_sym *l = &s[p.left];
    int32_t r = l->next;
    const uint8_t *m = tok_merge_pairs + TOK_MERGE_BYTES * p.rank;
    /* stale unless the pair still holds the merge's two tokens */
    if (r < 0 || l->id != (int32_t)read_u32(m) || s[r].id != (int32_t)read_u32(m + 4)) continue;
    l->id = (int32_t)read_u32(m + 8);
    s[r].id = -1;
    l->next = s[r].next;
    if (l->next >= 0) s[l->next].prev = p.left;
    bpe_push(e, l->prev);
    bpe_push(e, p.left);
  }
  for (int32_t i = 0; i >= 0; i = s[i].next) emit(e, s[i].id); /* a missing byte: dropped */
}

/* ---- BPE: pre-tokenizers (llama.cpp's, written out by hand) ---- */

#define CLS(i) ((i) < hi ? e->cls[i] : 0) /* 0 past the end: no class, not present */
#define CP(i) (e->cpts[i])

static uint32_t ascii_lower(uint32_t cp) { return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp; }

/* Length of a contraction 's 't 're 've 'm 'll 'd at p (0 if none); any case if fold. */
static uint32_t contraction(const encoder *e, uint32_t p, uint32_t hi, int fold) {
  if (CP(p) != '\'' || p + 1 >= hi) return 0;
  uint32_t a = fold ? ascii_lower(CP(p + 1)) : CP(p + 1);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (p + 2 >= hi) return 0;
  uint32_t b = fold ? ascii_lower(CP(p + 2)) : CP(p + 2);
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

/* White space run at p: its length, and the end of its last \r or \n (0 if none). */
static uint32_t space_run(const encoder *e, uint32_t p, uint32_t hi, uint32_t *last_nl) {
  uint32_t n = 0;
  *last_nl = 0;
  while (CLS(p + n) & CL_SPACE) {
    if (CP(p + n) == '\r' || CP(p + n) == '\n') *last_nl = p + n + 1;
    n++;
  }
  return n;
}

/* llama-bpe (max_digits 3) and qwen2 (max_digits 1):
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}|
 *    ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+                              */
static void split_llama3(encoder *e, uint32_t lo, uint32_t hi, uint32_t max_digits) {
  for (uint32_t p = lo; p < hi;) {
    uint32_t cp = CP(p), c = e->cls[p], q;
    if ((q = contraction(e, p, hi, 1))) {
      bpe_word(e, p, p + q);
      p += q;
      continue;
    }
    if (cp != '\r' && cp != '\n' && !(c & CL_NUMBER) &&
        ((c & CL_LETTER) || (CLS(p + 1) & CL_LETTER))) {
      for (q = p + 1; CLS(q) & CL_LETTER; q++) {}
      bpe_word(e, p, q);
      p = q;
      continue;
    }
    if (c & CL_NUMBER) {
      for (q = p; q < hi && (e->cls[q] & CL_NUMBER) && q - p < max_digits; q++) {}
      bpe_word(e, p, q);
      p = q;
      continue;
    }
    uint32_t c2 = cp == ' ' ? CLS(p + 1) : c;
    if (!(c2 & (CL_SPACE | CL_LETTER | CL_NUMBER))) {
      q = p + (cp == ' ');
      while (q < hi && !(e->cls[q] & (CL_SPACE | CL_LETTER | CL_NUMBER))) q++;
      while (q < hi && (CP(q) == '\r' || CP(q) == '\n')) q++;
      bpe_word(e, p, q);
      p = q;
      continue;
    }
    uint32_t last_nl, n = space_run(e, p, hi, &last_nl);
    if (last_nl) q = last_nl;                  /* \s*[\r\n]+ */
    else if (n > 1 && p + n < hi) q = p + n - 1; /* \s+(?!\S): leave one before the word */
    else if (n) q = p + n;                     /* \s+ */
    else q = p + 1;
    bpe_word(e, p, q);
    p = q;
  }
}

/* gpt2:  's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+  */
static void split_gpt2(encoder *e, uint32_t lo, uint32_t hi) {
  for (uint32_t p = lo; p < hi;) {
    uint32_t cp = CP(p), q;
    if ((q = contraction(e, p, hi, 0))) {
      bpe_word(e, p, p + q);
      p += q;
      continue;
    }
    uint32_t c2 = cp == ' ' ? CLS(p + 1) : e->cls[p];
    uint32_t want = c2 & CL_LETTER ? CL_LETTER : c2 & CL_NUMBER ? CL_NUMBER : 0;
    if (want) {
      for (q = p + (cp == ' '); CLS(q) & want; q++) {}
      bpe_word(e, p, q);
      p = q;
      continue;
    }
    if (c2 && !(c2 & CL_SPACE)) {
      for (q = p + (cp == ' '); q < hi && !(e->cls[q] & (CL_SPACE | CL_LETTER | CL_NUMBER)); q++) {}
      bpe_word(e, p, q);
      p = q;
      continue;
    }
    uint32_t last_nl, n = space_run(e, p, hi, &last_nl);
    if (n > 1 && p + n < hi) q = p + n - 1;
    else if (n) q = p + n;
    else q = p + 1;
    bpe_word(e, p, q);
    p = q;
  }
}

#undef CLS
#undef CP

static void bpe_fragment(encoder *e, const uint8_t *in, uint32_t len) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < len;) {
    uint32_t adv, cp = next_cp(in + i, len - i, &adv);
    e->cpts[n] = cp;
    e->cls[n++] = classify(cp);
    i += adv;
  }
  switch (tok_pre) {
    case TOK_PRE_LLAMA3: split_llama3(e, 0, n, 3); break;
    case TOK_PRE_QWEN2: split_llama3(e, 0, n, 1); break;
    case TOK_PRE_GPT2: split_gpt2(e, 0, n); break;
    default: { /* smollm: every number character alone (\p{N}), then gpt2 between them */
      uint32_t from = 0;
      for (uint32_t i = 0; i < n; i++) {
        if (!(e->cls[i] & CL_NUMBER)) continue;
        if (from < i) split_gpt2(e, from, i);
        bpe_word(e, i, i + 1);
        from = i + 1;
      }
      if (from < n) split_gpt2(e, from, n);
    }
  }
}

/* ---- special-token text ---- */

static int has_first_byte(const uint8_t *set, const uint8_t *s, uint32_t len) {
  for (uint32_t i = 0; i < len; i++)
    if (set[s[i] >> 3] & (1u << (s[i] & 7))) return 1;
  return 0;
}

/* Marks the special tokens in s, llama.cpp's way: longest token first, each taking its
 * leftmost non-overlapping occurrences inside the stretches no token claimed yet. */
static void partition(encoder *e, const uint8_t *s, uint32_t len, int all) {
  int32_t *mark = e->mark;
  for (uint32_t i = 0; i < len; i++) mark[i] = -1;
  for (uint32_t k = 0; k < tok_n_specials; k++) {
    int32_t id = tok_specials[k];
    const tok_entry *t = &tok_entries[id];
    if (!all && t->type != TOK_TYPE_USER_DEFINED) continue;
    const uint8_t *text = tok_blob + t->text_off;
    uint32_t L = t->text_len;
    if (L > len) continue;
    for (uint32_t p = 0; p < len;) {
      if (mark[p] != -1) {
        p++;
        continue;
      }
      uint32_t end = p;
      while (end < len && mark[end] == -1) end++;
      for (uint32_t q = p; end - q >= L;) {
        if (s[q] == text[0] && mm_memcmp(s + q, text, L) == 0) {
          mark[q] = id;
          for (uint32_t j = 1; j < L; j++) mark[q + j] = -2;
          q += L;
        } else {
          q++;
        }
      }
      p = end;
    }
  }
}

/* Scratch layout for one call; sizes in 64-bit so a huge len cannot wrap. */
static uint64_t align8(uint64_t x) { return (x + 7) & ~(uint64_t)7; }

/* Lays out the scratch for len bytes of text (mark array first when split). */
static int32_t prepare(encoder *e, const uint8_t *in, uint32_t len, int split) {
  uint64_t need = split ? align8(4 * (uint64_t)len) : 0;
  const uint64_t off_work = need;
  uint64_t off_a, off_b, off_c, off_d;
  if (tok_kind == TOK_MODEL_SPM) {
    /* symbols <= bytes; pushes <= (n - 1) initial + 2 per merge; merges <= n - 1 */
    uint64_t n_max = spm_escaped_len(in, len);
    off_a = need + align8(n_max);                            /* symbols */
    off_b = off_a + align8(n_max * sizeof(symbol));          /* heap */
    off_c = off_b + align8(3 * n_max * sizeof(bigram));      /* merge records */
    off_d = off_c + align8(n_max * sizeof(merge_rec));
    need = off_d;
  } else {
    /* a word's bytes: <= 3 per input byte (a bad byte is 3-byte U+FFFD), then up to 2 per
     * byte as GPT-2 characters; pushes <= (n - 1) initial + 2 per merge */
    uint64_t nb = 3 * (uint64_t)len + 4;
    off_a = need + align8(4 * (uint64_t)len);     /* classes */
    off_b = off_a + align8(len);                  /* word bytes */
    off_c = off_b + align8(3 * nb);               /* symbols */
    off_d = off_c + align8(nb * sizeof(bpe_sym)); /* heap */
    need = off_d + align8(3 * nb * sizeof(bpe_pair));
  }
  if (need > 0xFFFFFFF0ull || len > 0x3FFFFFFFu) return TOK_ENOMEM;
  if (need > scratch_size) {
    uint64_t grow = need + need / 4 + 4096;
    if (grow > 0xFFFFFFF0ull) grow = need;
    uint8_t *p = (uint8_t *)mm_alloc((uint32_t)grow);
    if (!p) return TOK_ENOMEM;
    scratch = p;
    scratch_size = grow;
  }
  e->mark = (int32_t *)scratch;
  if (tok_kind == TOK_MODEL_SPM) {
    e->esc = scratch + off_work;
    e->sym = (symbol *)(scratch + off_a);
    e->heap = (bigram *)(scratch + off_b);
    e->rec = (merge_rec *)(scratch + off_c);
  } else {
    e->cpts = (uint32_t *)(scratch + off_work);
    e->cls = scratch + off_a;
    e->wbytes = scratch + off_b;
    e->bsym = (bpe_sym *)(scratch + off_c);
    e->bheap = (bpe_pair *)(scratch + off_d);
  }
  return 0;
}

int32_t tok_encode(const char *text, uint32_t len, int32_t flags, int32_t *out, uint32_t max) {
  if (!tok_count) return TOK_ENOTLOADED;
  encoder e = {0};
  e.out = out;
  e.max = max;
  if ((flags & TOK_ENCODE_ADD_BOS) && (tok_flags & TOK_FLAG_ADD_BOS) && tok_bos_id >= 0)
    emit(&e, tok_bos_id);
  if (len == 0) return e.overflow ? -1 : (int32_t)e.n_out;

  const uint8_t *in = (const uint8_t *)text;
  const int all = (flags & TOK_ENCODE_SPECIAL) != 0;
  const int split = (all ? tok_n_specials : tok_n_user) > 0 &&
                    has_first_byte(all ? tok_first_any : tok_first_user, in, len);
  int32_t rc = prepare(&e, in, len, split);
  if (rc) return rc;
  if (split) partition(&e, in, len, all);
  for (uint32_t p = 0; p < len && !e.overflow;) {
    if (split && e.mark[p] >= 0) { /* a special token */
      emit(&e, e.mark[p]);
      p += tok_entries[e.mark[p]].text_len;
      continue;
    }
    uint32_t q = split ? p + 1 : len;
    while (q < len && e.mark[q] == -1) q++;
    if (tok_kind == TOK_MODEL_SPM) spm_fragment(&e, in + p, q - p);
    else bpe_fragment(&e, in + p, q - p);
    p = q;
  }
  return e.overflow ? -1 : (int32_t)e.n_out;
}

int32_t tok_split(const char *text, uint32_t len, uint32_t *ends, uint32_t max) {
  if (!tok_count || tok_kind != TOK_MODEL_BPE) return TOK_ENOTLOADED;
  encoder e = {0};
  e.ends = ends;
  e.max_ends = max;
  if (len == 0) return 0;
  int32_t rc = prepare(&e, (const uint8_t *)text, len, 0);
  if (rc) return rc;
  bpe_fragment(&e, (const uint8_t *)text, len);
  return e.overflow ? -1 : (int32_t)e.n_ends;
}

/* ---- decoding ---- */

static int hex_digit(uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* A BPE token's text, GPT-2 characters back to bytes; characters outside the mapping
 * (only in odd vocabularies) are copied as they are. Never longer than the text. */
static uint32_t bpe_unmap(const uint8_t *s, uint32_t n, uint8_t *buf) {
  uint32_t k = 0;
  for (uint32_t i = 0; i < n;) {
    uint32_t adv, cp = next_cp(s + i, n - i, &adv);
    if (cp < 324 && cp_byte[cp] >= 0) buf[k++] = (uint8_t)cp_byte[cp];
    else for (uint32_t j = 0; j < adv; j++) buf[k++] = s[i + j];
    i += adv;
  }
  return k;
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
  default:
    if (tok_kind == TOK_MODEL_BPE) {
      k = bpe_unmap(s, n, buf);
      break;
    }
    for (uint32_t i = 0; i < n;) { /* SentencePiece: U+2581 back to ' ' */
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
