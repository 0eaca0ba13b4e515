/* signature.c — the SIGNATURE section: what one Ed25519 signature covers, checking it,
 * and signing a bundle file (docs/FORMAT.md "Signature").
 *
 * The signed message is
 *   "m64 bundle signature v1\0"                                  24 bytes
 *   header bytes [0, 64)                                         (all but header_sha256)
 *   the section table, n_sections x 128 bytes, as in the file,
 *     with the SIGNATURE record's sha256 field zeroed            (it hashes the signature)
 *   u32 n_layers, then per layer in index order: its sha256, and in a compressed bundle
 *     its stored_sha256                                          (32 or 64 bytes each)
 * The table holds every section's SHA-256 (the layer index's among them) and the header
 * the file size and flags, so the signature covers every byte the runtime uses; the layer
 * hashes are repeated so that what verifies are the very hashes the pager checks. */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../bundle/bundle_internal.h"
#include "sign_internal.h"

static const char DOMAIN[] = "m64 bundle signature v1"; /* its NUL is part of the message */
#define SIG_MAGIC "M64SIGN\0"
#define SIG_VERSION 1u
#define SIG_ALG_ED25519 1u
/* SIGNATURE section content (M64_SIGN_SECTION_BYTES) */
#define SG_MAGIC 0      /* 8 bytes */
#define SG_VERSION 8    /* u32 */
#define SG_ALG 12       /* u32 */
#define SG_KEY 16       /* 32 bytes: the signer's Ed25519 public key */
#define SG_SIG 48       /* 64 bytes: the signature */
#define SG_RESERVED 112 /* 16 bytes, 0 */

const char *m64_sig_status_name(m64_sig_status s) {
  switch (s) {
    case M64_SIG_UNSIGNED: return "unsigned";
    case M64_SIG_TRUSTED: return "valid";
    case M64_SIG_UNKNOWN_SIGNER: return "unknown signer";
    case M64_SIG_INVALID: return "invalid";
  }
  return "?";
}

/* The message over hdr_table (header then n records) with record sig_idx's hash zeroed,
 * and b's layer hashes. malloc'ed; NULL when out of memory. */
static uint8_t *build_message(const uint8_t *hdr_table, uint32_t n, uint32_t sig_idx, const m64_bundle *b,
                              size_t *len) {
  const int z = (m64__rd_u32(hdr_table + BH_FLAGS) & BH_F_COMPRESSED) != 0;
  const uint32_t nl = m64_bundle_n_layers(b);
  const size_t per_layer = z ? 64 : 32;
  const size_t n_bytes = sizeof DOMAIN + BH_SHA256 + (size_t)n * SR_SIZE + 4 + (size_t)nl * per_layer;
  uint8_t *m = malloc(n_bytes), *p = m;
  if (!m) return NULL;
  memcpy(p, DOMAIN, sizeof DOMAIN);
  p += sizeof DOMAIN;
  memcpy(p, hdr_table, BH_SHA256);
  p += BH_SHA256;
  memcpy(p, hdr_table + BH_SIZE, (size_t)n * SR_SIZE);
  memset(p + (size_t)sig_idx * SR_SIZE + SR_SHA256, 0, 32);
  p += (size_t)n * SR_SIZE;
  m64__wr_u32(p, nl);
  p += 4;
  for (uint32_t i = 0; i < nl; i++) {
    const m64_layer_entry *l = m64_bundle_layer(b, i);
    memcpy(p, l->sha256, 32);
    p += 32;
    if (z) {
      memcpy(p, l->stored_sha256, 32);
      p += 32;
    }
  }
  *len = n_bytes;
  return m;
}

static m64_sig_status invalid(m64_sig_info *info, const char *why) {
  info->status = M64_SIG_INVALID;
  snprintf(info->why, sizeof info->why, "%s", why);
  return info->status;
}

/* The copy of the header and table says what the parsed bundle says: the bytes that
 * verify are the bytes the runtime uses (a file changed since it was opened does not). */
static int same_as_parsed(const uint8_t *h, size_t len, const m64_bundle *b) {
  const uint32_t n = m64_bundle_n_sections(b);
  const int z = m64_bundle_compressed(b);
  if (len != BH_SIZE + (size_t)n * SR_SIZE || m64__rd_u32(h + BH_N_SECTIONS) != n ||
      m64__rd_u64(h + BH_FILE_SIZE) != m64_bundle_file_size(b) ||
      ((m64__rd_u32(h + BH_FLAGS) & BH_F_COMPRESSED) != 0) != (z != 0))
    return 0;
  for (uint32_t i = 0; i < n; i++) {
    const uint8_t *r = h + BH_SIZE + (size_t)i * SR_SIZE;
    const m64_section *s = m64_bundle_section_at(b, i);
    if (m64__rd_u32(r + SR_KIND) != s->kind || memcmp(r + SR_NAME, s->name, sizeof s->name) != 0 ||
        m64__rd_u64(r + SR_OFFSET) != s->offset || m64__rd_u64(r + SR_SIZE_FIELD) != s->stored_size ||
        memcmp(r + SR_SHA256, s->sha256, 32) != 0)
      return 0;
    if (z && (m64__rd_u32(r + SR_CODEC) != s->codec || m64__rd_u64(r + SR_RAW_SIZE) != s->size)) return 0;
  }
  return 1;
}

m64_sig_status m64_signature_verify(const m64_bundle *b, m64_sig_info *info) {
  memset(info, 0, sizeof *info);
  const uint32_t n = m64_bundle_n_sections(b);
  uint32_t idx = 0, count = 0;
  for (uint32_t i = 0; i < n; i++)
    if (m64_bundle_section_at(b, i)->kind == M64_SEC_SIGNATURE) idx = i, count++;
  if (!count) return info->status = M64_SIG_UNSIGNED;
  if (m64__sodium_ready(NULL)) return invalid(info, "libsodium could not be initialised");
  if (count > 1) return invalid(info, "the bundle has more than one signature section");
  const m64_section *s = m64_bundle_section_at(b, idx);
  if (s->size != M64_SIGN_SECTION_BYTES) return invalid(info, "the signature section has the wrong size");
  uint8_t sec[M64_SIGN_SECTION_BYTES]; /* a copy: the bytes checked are the bytes used */
  memcpy(sec, s->data, sizeof sec);
  memcpy(info->key, sec + SG_KEY, 32);
  m64_sign_fingerprint(info->key, info->fingerprint);
  static const uint8_t zero[16];
  if (memcmp(sec + SG_MAGIC, SIG_MAGIC, 8) != 0 || strcmp(s->name, M64_SIGN_SECTION_NAME) != 0)
    return invalid(info, "the signature section is malformed");
  if (m64__rd_u32(sec + SG_VERSION) != SIG_VERSION || m64__rd_u32(sec + SG_ALG) != SIG_ALG_ED25519 ||
      memcmp(sec + SG_RESERVED, zero, sizeof zero) != 0)
    return invalid(info, "the signature has a version or algorithm this m64 does not know");
  size_t hl = 0;
  const uint8_t *raw = m64_bundle_header_bytes(b, &hl);
  uint8_t *h = malloc(hl ? hl : 1);
  if (!h) return invalid(info, "out of memory");
  memcpy(h, raw, hl);
  if (!same_as_parsed(h, hl, b)) {
    free(h);
    return invalid(info, "the bundle's header changed while it was read");
  }
  size_t len = 0;
  uint8_t *msg = build_message(h, n, idx, b, &len);
  free(h);
  if (!msg) return invalid(info, "out of memory");
  const int bad = crypto_sign_verify_detached(sec + SG_SIG, msg, len, sec + SG_KEY) != 0;
  free(msg);
  if (bad) {
    char why[200];
    snprintf(why, sizeof why, "the signature by %s does not match the bundle: it was changed after it was signed",
             info->fingerprint);
    return invalid(info, why);
  }
  return info->status = M64_SIG_UNKNOWN_SIGNER;
}

m64_sig_status m64_signature_check(const m64_bundle *b, const char *trust_dir, m64_sig_info *info) {
  if (m64_signature_verify(b, info) != M64_SIG_UNKNOWN_SIGNER) return info->status;
  m64_err e = {{0}};
  if (m64_trust_find(trust_dir, info->key, info->signer, sizeof info->signer, &e) == 0)
    return info->status = M64_SIG_TRUSTED;
  snprintf(info->why, sizeof info->why, "%s", e.msg);
  return info->status;
}

/* Copies bytes [0, n) of fd_in to fd_out: in the kernel where it can (a reflink on file
 * systems that have them), else through a buffer. */
static int copy_bytes(int fd_in, int fd_out, uint64_t n, const char *in, const char *tmp, m64_err *e) {
  loff_t off_in = 0, off_out = 0;
  while ((uint64_t)off_in < n) {
    ssize_t k = copy_file_range(fd_in, &off_in, fd_out, &off_out, (size_t)(n - (uint64_t)off_in), 0);
    if (k > 0) continue;
    if (k == 0) return m64_fail(e, M64_EIO, "%s ended while it was copied", in);
    if (errno == EINTR) continue;
    if (errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP) {
      const int code = m64__errno_code(errno);
      return m64_fail(e, code, "copying %s to %s: %s", in, tmp, code == M64_ENOSPC ? "disk full" : strerror(errno));
    }
    break; /* no copy_file_range across these files: the plain way */
  }
  enum { CHUNK = 1 << 20 };
  uint8_t *buf = malloc(CHUNK);
  if (!buf) return m64_fail(e, M64_ENOMEM, "out of memory");
  int rc = 0;
  while (!rc && (uint64_t)off_in < n) {
    const size_t k = n - (uint64_t)off_in < CHUNK ? (size_t)(n - (uint64_t)off_in) : CHUNK;
    rc = m64__pread_all(fd_in, buf, k, (uint64_t)off_in, in, e);
    if (!rc) rc = m64__pwrite_all(fd_out, buf, k, (uint64_t)off_in, tmp, e);
    off_in += (loff_t)k;
  }
  free(buf);
  return rc;
}

/* The new header and table (*hdr, *hdr_len bytes, the old table's length at least so
 * that dropped records leave zeros) and where the signature section goes. */
typedef struct plan {
  uint8_t *hdr;
  size_t hdr_len, table_len;
  uint32_t n, idx;
  uint64_t sig_off, file_size;
} plan;

static int plan_signature(const m64_bundle *b, plan *p, m64_err *e) {
  size_t hl = 0;
  const uint8_t *raw = m64_bundle_header_bytes(b, &hl);
  const uint32_t n = m64_bundle_n_sections(b);
  const int z = m64_bundle_compressed(b);
  uint32_t sigs = 0, old = 0;
  for (uint32_t i = 0; i < n; i++)
    if (m64_bundle_section_at(b, i)->kind == M64_SEC_SIGNATURE) sigs++, old = i;
  const m64_section *os = sigs == 1 ? m64_bundle_section_at(b, old) : NULL;
  const int reuse = os && os->stored_size == M64_SIGN_SECTION_BYTES && os->codec == CODEC_NONE;
  p->hdr = calloc(1, BH_SIZE + (size_t)(n + 1) * SR_SIZE);
  if (!p->hdr) return m64_fail(e, M64_ENOMEM, "out of memory");
  memcpy(p->hdr, raw, BH_SIZE);
  uint32_t k = 0;
  uint64_t first = UINT64_MAX; /* the first section byte: the table must end before it */
  for (uint32_t i = 0; i < n; i++) {
    const m64_section *s = m64_bundle_section_at(b, i);
    if (s->kind == M64_SEC_SIGNATURE && !reuse) continue; /* replaced by the new one */
    memcpy(p->hdr + BH_SIZE + (size_t)k * SR_SIZE, raw + BH_SIZE + (size_t)i * SR_SIZE, SR_SIZE);
    if (s->offset < first) first = s->offset;
    k++;
  }
  if (reuse) {
    p->idx = old, p->n = n, p->sig_off = os->offset, p->file_size = m64_bundle_file_size(b);
  } else {
    if (k + 1 > M64_MAX_SECTIONS || BH_SIZE + (uint64_t)(k + 1) * SR_SIZE > first)
      return m64_fail(e, M64_ELIMIT, "no room in the section table for a signature record");
    uint64_t at;
    if (m64__align_up(m64_bundle_file_size(b), SECTION_ALIGN, &at))
      return m64_fail(e, M64_ELIMIT, "file size overflows");
    p->idx = k, p->n = k + 1, p->sig_off = at, p->file_size = at + M64_SIGN_SECTION_BYTES;
  }
  p->table_len = (size_t)p->n * SR_SIZE;
  p->hdr_len = BH_SIZE + (size_t)(n > p->n ? n : p->n) * SR_SIZE;
  uint8_t *r = p->hdr + BH_SIZE + (size_t)p->idx * SR_SIZE;
  memset(r, 0, SR_SIZE);
  m64__wr_u32(r + SR_KIND, M64_SEC_SIGNATURE);
  memcpy(r + SR_NAME, M64_SIGN_SECTION_NAME, sizeof M64_SIGN_SECTION_NAME - 1);
  m64__wr_u64(r + SR_OFFSET, p->sig_off);
  m64__wr_u64(r + SR_SIZE_FIELD, M64_SIGN_SECTION_BYTES);
  if (z) m64__wr_u64(r + SR_RAW_SIZE, M64_SIGN_SECTION_BYTES); /* codec 0: stored as is */
  m64__wr_u32(p->hdr + BH_N_SECTIONS, p->n);
  m64__wr_u64(p->hdr + BH_FILE_SIZE, p->file_size);
  return 0;
}

static int sign_into(const char *in, const char *out, const m64_bundle *b, const uint8_t sk[64],
                     const m64_pubkey *pub, void (*on_temp)(const char *), m64_err *e) {
  plan p = {0};
  int rc = plan_signature(b, &p, e);
  uint8_t content[M64_SIGN_SECTION_BYTES] = {0};
  size_t len = 0;
  uint8_t *msg = rc ? NULL : build_message(p.hdr, p.n, p.idx, b, &len);
  if (!rc && !msg) rc = m64_fail(e, M64_ENOMEM, "out of memory");
  if (!rc) {
    memcpy(content + SG_MAGIC, SIG_MAGIC, 8);
    m64__wr_u32(content + SG_VERSION, SIG_VERSION);
    m64__wr_u32(content + SG_ALG, SIG_ALG_ED25519);
    memcpy(content + SG_KEY, pub->key, 32);
    crypto_sign_detached(content + SG_SIG, NULL, msg, len, sk);
    uint8_t *r = p.hdr + BH_SIZE + (size_t)p.idx * SR_SIZE;
    m64_sha256 h;
    m64_sha256_init(&h);
    m64_sha256_update(&h, content, sizeof content);
    m64_sha256_final(&h, r + SR_SHA256);
    m64_sha256_init(&h);
    m64_sha256_update(&h, p.hdr, BH_SHA256);
    m64_sha256_update(&h, p.hdr + BH_SIZE, p.table_len);
    m64_sha256_final(&h, p.hdr + BH_SHA256);
  }
  free(msg);
  char *tmp = rc ? NULL : m64__temp_path(out);
  if (!rc && !tmp) rc = m64_fail(e, M64_ENOMEM, "out of memory");
  int fd_in = -1, fd = -1;
  if (!rc && (fd_in = open(in, O_RDONLY | O_CLOEXEC)) < 0)
    rc = m64_fail(e, M64_EIO, "cannot open %s: %s", in, strerror(errno));
  if (!rc) {
    fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) rc = m64_fail(e, m64__errno_code(errno), "%s: cannot create: %s", tmp, strerror(errno));
    else if (on_temp) on_temp(tmp);
  }
  if (!rc) rc = copy_bytes(fd_in, fd, m64_bundle_file_size(b), in, tmp, e);
  if (!rc && ftruncate(fd, (off_t)p.file_size) != 0) {
    const int code = m64__errno_code(errno);
    rc = m64_fail(e, code, "%s: cannot resize: %s", tmp, code == M64_ENOSPC ? "disk full" : strerror(errno));
  }
  if (!rc) rc = m64__pwrite_all(fd, p.hdr, p.hdr_len, 0, tmp, e);
  if (!rc) rc = m64__pwrite_all(fd, content, sizeof content, p.sig_off, tmp, e);
  if (!rc) rc = m64__sync_and_rename(fd, tmp, out, e);
  if (rc && fd >= 0) unlink(tmp);
  if (fd >= 0) close(fd);
  if (fd_in >= 0) close(fd_in);
  if (fd >= 0 && on_temp) on_temp(NULL);
  free(tmp);
  free(p.hdr);
  return rc;
}

int m64_sign_bundle(const char *in, const char *out, const char *keyfile, m64_pubkey *signer,
                    void (*on_temp)(const char *), m64_err *e) {
  return m64_sign_bundle_progress(in, out, keyfile, signer, on_temp, NULL, NULL, e);
}

int m64_sign_bundle_progress(const char *in, const char *out, const char *keyfile, m64_pubkey *signer,
                             void (*on_temp)(const char *), m64_progress_fn progress, void *ctx, m64_err *e) {
  uint8_t sk[64];
  m64_pubkey pub;
  int rc = m64__read_secret(keyfile, sk, &pub, e);
  if (rc) return rc;
  m64_bundle *b = NULL;
  /* every hash checked first: a signature over a damaged layer would vouch for it */
  if (!(rc = m64_bundle_open(in, &b, e)) && !(rc = m64_bundle_verify_all_progress(b, progress, ctx, e)))
    rc = sign_into(in, out, b, sk, &pub, on_temp, e);
  sodium_memzero(sk, sizeof sk);
  m64_bundle_close(b);
  if (rc) return rc;
  /* what was written verifies (and names this key) before anyone is told it is signed */
  m64_sig_info info;
  if ((rc = m64_bundle_open(out, &b, e))) return rc;
  const m64_sig_status st = m64_signature_verify(b, &info);
  m64_bundle_close(b);
  if (st != M64_SIG_UNKNOWN_SIGNER || memcmp(info.key, pub.key, 32) != 0)
    return m64_fail(e, M64_EIO, "%s: the signed bundle does not verify (%s)", out, info.why);
  if (signer) *signer = pub;
  return 0;
}
