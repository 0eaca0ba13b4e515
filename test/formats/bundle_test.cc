#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "test_util.h"

namespace {

struct BundleCloser { void operator()(m64_bundle *b) const { m64_bundle_close(b); } };
using BundlePtr = std::unique_ptr<m64_bundle, BundleCloser>;

m64_tensor_entry tensor(const char *name, uint64_t nbytes) {
  m64_tensor_entry t;
  memset(&t, 0, sizeof t);
  snprintf(t.name, sizeof t.name, "%s", name);
  t.type = M64_GGML_I8;
  t.n_dims = 1;
  t.ne[0] = nbytes;
  t.ne[1] = t.ne[2] = t.ne[3] = 1;
  t.nbytes = nbytes;
  return t;
}
m64_layer_entry layer(const char *name, uint32_t first, uint32_t n) {
  m64_layer_entry l;
  memset(&l, 0, sizeof l);
  snprintf(l.name, sizeof l.name, "%s", name);
  l.first_tensor = first;
  l.n_tensors = n;
  return l;
}

// A model-shaped layout: globals + 3 blocks, sizes chosen to need 2+ segments at 200000.
struct Model {
  std::vector<m64_tensor_entry> tensors;
  std::vector<m64_layer_entry> layers;
  std::vector<std::vector<uint8_t>> data;
  uint32_t n_segments = 0;
  uint64_t segment_sizes[M64_MAX_SECTIONS] = {};
};

Model make_model(uint64_t segment_max) {
  Model m;
  m.tensors = {tensor("token_embd.weight", 1000), tensor("output_norm.weight", 33),
               tensor("blk.0.attn_q.weight", 70000), tensor("blk.0.ffn_norm.weight", 7),
               tensor("blk.1.attn_q.weight", 70000), tensor("blk.1.ffn_norm.weight", 7),
               tensor("blk.2.attn_q.weight", 5), tensor("blk.2.ffn_norm.weight", 100)};
  m.tensors[4].n_dims = 2;  // a matrix stored as row pairs (700 x 100)
  m.tensors[4].ne[0] = 100, m.tensors[4].ne[1] = 700;
  m.tensors[4].layout = M64_LAYOUT_PAIRS;
  m.layers = {layer("globals", 0, 2), layer("blk.0", 2, 2), layer("blk.1", 4, 2), layer("blk.2", 6, 2)};
  for (size_t i = 0; i < m.tensors.size(); i++) {
    std::vector<uint8_t> d(m.tensors[i].nbytes);
    for (size_t k = 0; k < d.size(); k++) d[k] = uint8_t(k * 31 + i * 7 + 1);
    m.data.push_back(d);
  }
  m64_err err;
  EXPECT_EQ(m64_plan_layout(m.layers.data(), uint32_t(m.layers.size()), m.tensors.data(),
                            uint32_t(m.tensors.size()), segment_max, &m.n_segments,
                            m.segment_sizes, &err), 0) << err.msg;
  return m;
}

const char kMeta[] = "arch = llama\nn_layers=3\n  spaced   =  a b c  \r\nempty =\n";
const std::vector<uint8_t> kTokenizer = {1, 2, 3, 4, 5};
const std::vector<uint8_t> kWasm = {0, 'a', 's', 'm', 1, 0, 0, 0};

// Writes the model as the compiler will: small sections, layout, tensors (reverse order), commit.
std::string write_bundle(const TempDir &dir, const Model &m, const char *name = "m.m64") {
  std::string path = dir.file(name);
  m64_bundle_writer *w = nullptr;
  m64_err err;
  EXPECT_EQ(m64_bw_open(path.c_str(), &w, &err), 0) << err.msg;
  EXPECT_TRUE(file_exists(m64_bw_temp_path(w)));
  EXPECT_EQ(m64_bw_add_section(w, M64_SEC_METADATA, "metadata", kMeta, strlen(kMeta), &err), 0) << err.msg;
  EXPECT_EQ(m64_bw_add_section(w, M64_SEC_TOKENIZER, "tokenizer", kTokenizer.data(), kTokenizer.size(), &err), 0);
  EXPECT_EQ(m64_bw_add_section(w, M64_SEC_MODULE_WASM, "module.wasm", kWasm.data(), kWasm.size(), &err), 0);
  const std::vector<uint8_t> elf = native_section("elf!"), none = native_section("");
  EXPECT_EQ(m64_bw_add_section(w, M64_SEC_NATIVE, "x86_64-linux-gnu", elf.data(), elf.size(), &err), 0);
  EXPECT_EQ(m64_bw_add_section(w, M64_SEC_NATIVE, "aarch64-linux-gnu", none.data(), none.size(), &err), 0);
  EXPECT_EQ(m64_bw_set_layout(w, m.layers.data(), uint32_t(m.layers.size()), m.tensors.data(),
                              uint32_t(m.tensors.size()), &err), 0) << err.msg;
  for (size_t i = m.tensors.size(); i-- > 0;)
    EXPECT_EQ(m64_bw_write_tensor(w, uint32_t(i), m.data[i].data(), &err), 0) << err.msg;
  EXPECT_EQ(m64_bw_commit(w, &err), 0) << err.msg;
  return path;
}

BundlePtr open_ok(const std::vector<uint8_t> &bytes) {
  m64_bundle *b = nullptr;
  m64_err err;
  EXPECT_EQ(m64_bundle_open_memory(bytes.data(), bytes.size(), &b, &err), 0) << err.msg;
  return BundlePtr(b);
}
int open_code(const std::vector<uint8_t> &bytes, std::string *msg = nullptr) {
  std::vector<uint8_t> copy(bytes);  // exact size, for sanitizers
  m64_bundle *b = nullptr;
  m64_err err;
  err.msg[0] = 0;
  int rc = m64_bundle_open_memory(copy.empty() ? nullptr : copy.data(), copy.size(), &b, &err);
  m64_bundle_close(b);
  if (rc) {
    EXPECT_GT(strlen(err.msg), 0u);
  }
  if (msg) *msg = err.msg;
  return rc;
}

// Recomputes the header hash after a test edits the header or section table
// (docs/FORMAT.md: SHA-256 of bytes [0, 64) followed by the table, stored at 64).
void rehash_header(std::vector<uint8_t> &f) {
  uint32_t n;
  memcpy(&n, &f[16], 4);
  m64_sha256 s;
  m64_sha256_init(&s);
  m64_sha256_update(&s, f.data(), 64);
  m64_sha256_update(&s, f.data() + 96, size_t(n) * 128);
  m64_sha256_final(&s, f.data() + 64);
}
uint8_t *record(std::vector<uint8_t> &f, uint32_t i) { return f.data() + 96 + 128 * i; }

}  // namespace

TEST(BundleLayout, AlignsTensorsAndLayersAndSplitsSegments) {
  Model m = make_model(200000);
  // Tensors: 64-byte aligned, in order, inside their layer.
  EXPECT_EQ(m.tensors[0].offset, 0u);
  EXPECT_EQ(m.tensors[1].offset, 1024u);
  EXPECT_EQ(m.layers[0].size, 1024u + 33);
  EXPECT_EQ(m.tensors[3].offset, 70016u);
  EXPECT_EQ(m.layers[1].size, 70016u + 7);
  // globals at 0; blk.0 at 64 KiB (ends 135559); blk.1 at 196608 would end past 200000.
  EXPECT_EQ(m.layers[0].segment, 0u);
  EXPECT_EQ(m.layers[1].segment, 0u);
  EXPECT_EQ(m.layers[1].offset, 65536u);
  EXPECT_EQ(m.layers[2].segment, 1u);
  EXPECT_EQ(m.layers[2].offset, 0u);
  EXPECT_EQ(m.layers[3].segment, 1u);
  EXPECT_EQ(m.layers[3].offset, 131072u);
  EXPECT_EQ(m.n_segments, 2u);
  EXPECT_EQ(m.segment_sizes[0], 65536u + 70023);
  EXPECT_EQ(m.segment_sizes[1], 131072u + 64 + 100);
  for (auto &l : m.layers) EXPECT_EQ(l.offset % M64_LAYER_ALIGN, 0u);
  for (auto &t : m.tensors) EXPECT_EQ(t.offset % M64_TENSOR_ALIGN, 0u);

  Model big = make_model(0);  // default 16 GiB: one segment
  EXPECT_EQ(big.n_segments, 1u);
}

TEST(BundleLayout, Errors) {
  std::vector<m64_tensor_entry> ts = {tensor("a", 100), tensor("b", 300000)};
  std::vector<m64_layer_entry> ls = {layer("l0", 0, 1), layer("l1", 1, 1)};
  uint32_t n_seg;
  uint64_t sizes[M64_MAX_SECTIONS];
  m64_err err;
  EXPECT_EQ(m64_plan_layout(ls.data(), 2, ts.data(), 2, 200000, &n_seg, sizes, &err), M64_ELIMIT);
  EXPECT_NE(std::string(err.msg).find("'l1'"), std::string::npos) << err.msg;
  ls[1] = layer("l1", 0, 2);  // tensor 0 in two layers
  EXPECT_EQ(m64_plan_layout(ls.data(), 2, ts.data(), 2, 0, &n_seg, sizes, &err), M64_EFORMAT);
  ls[1] = layer("l1", 1, 5);  // out of the table
  EXPECT_EQ(m64_plan_layout(ls.data(), 2, ts.data(), 2, 0, &n_seg, sizes, &err), M64_EFORMAT);
  ls[1] = layer("l1", 2, 0);  // tensor 1 owned by nobody
  EXPECT_EQ(m64_plan_layout(ls.data(), 2, ts.data(), 2, 0, &n_seg, sizes, &err), M64_EFORMAT);
  ls[1] = layer("l1", 1, 1);
  ASSERT_EQ(m64_plan_layout(ls.data(), 2, ts.data(), 2, 0, &n_seg, sizes, &err), 0) << err.msg;
  ts[1].layout = 2;  // no such block layout
  EXPECT_EQ(m64_plan_layout(ls.data(), 2, ts.data(), 2, 0, &n_seg, sizes, &err), M64_EFORMAT);
  EXPECT_NE(std::string(err.msg).find("unknown block layout 2"), std::string::npos) << err.msg;
  ts[1].layout = M64_LAYOUT_PAIRS;  // row pairs of a vector
  EXPECT_EQ(m64_plan_layout(ls.data(), 2, ts.data(), 2, 0, &n_seg, sizes, &err), M64_EFORMAT);
  EXPECT_NE(std::string(err.msg).find("row-pair layout needs a matrix"), std::string::npos) << err.msg;
}

TEST(Bundle, WriteReadRoundTrip) {
  TempDir dir;
  Model m = make_model(200000);
  std::string path = write_bundle(dir, m);
  EXPECT_EQ(dir.list(), std::vector<std::string>{"m.m64"});  // temp file renamed away

  m64_bundle *raw = nullptr;
  m64_err err;
  ASSERT_EQ(m64_bundle_open(path.c_str(), &raw, &err), 0) << err.msg;
  BundlePtr b(raw);
  EXPECT_EQ(m64_bundle_version(b.get()), 1u);
  auto bytes = read_file(path);
  EXPECT_EQ(m64_bundle_file_size(b.get()), bytes.size());
  EXPECT_EQ(memcmp(bytes.data(), M64_BUNDLE_MAGIC, 8), 0);
  // 5 added + LAYER_INDEX + 2 segments, in call order.
  ASSERT_EQ(m64_bundle_n_sections(b.get()), 8u);
  const uint32_t kinds[] = {M64_SEC_METADATA, M64_SEC_TOKENIZER, M64_SEC_MODULE_WASM, M64_SEC_NATIVE,
                            M64_SEC_NATIVE, M64_SEC_LAYER_INDEX, M64_SEC_SEGMENT, M64_SEC_SEGMENT};
  for (uint32_t i = 0; i < 8; i++) EXPECT_EQ(m64_bundle_section_at(b.get(), i)->kind, kinds[i]) << i;
  EXPECT_EQ(m64_bundle_section_at(b.get(), 8), nullptr);
  const m64_section *tok = m64_bundle_find_section(b.get(), M64_SEC_TOKENIZER, nullptr);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(std::vector<uint8_t>(tok->data, tok->data + tok->size), kTokenizer);
  EXPECT_EQ(sha_hex(tok->data, tok->size), sha_hex(kTokenizer.data(), kTokenizer.size()));
  const m64_section *nat = m64_bundle_find_section(b.get(), M64_SEC_NATIVE, "x86_64-linux-gnu");
  ASSERT_NE(nat, nullptr);
  EXPECT_EQ(std::string((const char *)nat->data + 64, nat->size - 64), "elf!");
  EXPECT_NE(m64_bundle_find_section(b.get(), M64_SEC_NATIVE, "aarch64-linux-gnu"), nullptr);
  EXPECT_EQ(m64_bundle_find_section(b.get(), M64_SEC_NATIVE, "riscv"), nullptr);
  for (const char *seg : {"segment.0", "segment.1"}) {
    const m64_section *s = m64_bundle_find_section(b.get(), M64_SEC_SEGMENT, seg);
    ASSERT_NE(s, nullptr) << seg;
    EXPECT_EQ(s->offset % M64_LAYER_ALIGN, 0u);
    EXPECT_EQ(s->size, m.segment_sizes[seg[8] - '0']);
    for (uint8_t x : s->sha256) EXPECT_EQ(x, 0);
  }

  ASSERT_EQ(m64_bundle_n_segments(b.get()), 2u);
  ASSERT_EQ(m64_bundle_n_layers(b.get()), 4u);
  ASSERT_EQ(m64_bundle_n_tensors(b.get()), 8u);
  for (uint32_t i = 0; i < 4; i++) {
    const m64_layer_entry *l = m64_bundle_layer(b.get(), i);
    EXPECT_STREQ(l->name, m.layers[i].name);
    EXPECT_EQ(l->segment, m.layers[i].segment);
    EXPECT_EQ(l->offset, m.layers[i].offset);
    EXPECT_EQ(l->size, m.layers[i].size);
    const uint8_t *data = m64_bundle_layer_data(b.get(), i);
    // The hash covers the layer's bytes including the zero padding between tensors.
    std::vector<uint8_t> expect(l->size, 0);
    for (uint32_t t = l->first_tensor; t < l->first_tensor + l->n_tensors; t++)
      memcpy(expect.data() + m.tensors[t].offset, m.data[t].data(), m.data[t].size());
    EXPECT_EQ(std::vector<uint8_t>(data, data + l->size), expect) << l->name;
    char hex[65];
    m64_sha256_hex(l->sha256, hex);
    EXPECT_EQ(hex, sha_hex(expect.data(), expect.size()));
    EXPECT_EQ(m64_bundle_verify_layer(b.get(), i, &err), 0) << err.msg;
  }
  EXPECT_EQ(m64_bundle_layer(b.get(), 4), nullptr);
  for (uint32_t t = 0; t < 8; t++) {
    const m64_tensor_entry *te = m64_bundle_tensor(b.get(), t);
    EXPECT_STREQ(te->name, m.tensors[t].name);
    EXPECT_EQ(te->offset, m.tensors[t].offset);
    EXPECT_EQ(te->nbytes, m.tensors[t].nbytes);
    EXPECT_EQ(te->type, m.tensors[t].type);
    EXPECT_EQ(te->layout, t == 4 ? M64_LAYOUT_PAIRS : M64_LAYOUT_ROWS) << te->name;
    EXPECT_EQ(te->ne[0], m.tensors[t].ne[0]);
  }
  EXPECT_EQ(m64_bundle_verify_all(b.get(), &err), 0) << err.msg;
  EXPECT_EQ(m64_bundle_verify_layer(b.get(), 9, &err), M64_ENOTFOUND);

  char v[64];
  ASSERT_EQ(m64_bundle_meta(b.get(), "arch", v, sizeof v), 0);
  EXPECT_STREQ(v, "llama");
  ASSERT_EQ(m64_bundle_meta(b.get(), "n_layers", v, sizeof v), 0);
  EXPECT_STREQ(v, "3");
  ASSERT_EQ(m64_bundle_meta(b.get(), "spaced", v, sizeof v), 0);
  EXPECT_STREQ(v, "a b c");
  ASSERT_EQ(m64_bundle_meta(b.get(), "empty", v, sizeof v), 0);
  EXPECT_STREQ(v, "");
  EXPECT_EQ(m64_bundle_meta(b.get(), "missing", v, sizeof v), M64_ENOTFOUND);
  EXPECT_EQ(m64_bundle_meta(b.get(), "arch", v, 3), M64_ELIMIT);

  // The same bytes through open_memory.
  BundlePtr mem = open_ok(bytes);
  ASSERT_TRUE(mem);
  EXPECT_EQ(m64_bundle_verify_all(mem.get(), &err), 0) << err.msg;
}

TEST(Bundle, VerifyLayerDetectsAFlippedByte) {
  TempDir dir;
  Model m = make_model(200000);
  std::string path = write_bundle(dir, m);
  auto bytes = read_file(path);
  BundlePtr b = open_ok(bytes);
  ASSERT_TRUE(b);
  const m64_section *seg1 = m64_bundle_find_section(b.get(), M64_SEC_SEGMENT, "segment.1");
  uint64_t at = seg1->offset + m.layers[3].offset + m.tensors[7].offset + 50;
  b.reset();
  bytes[at] ^= 0x10;
  std::string copy = dir.file("flipped.m64");
  write_file(copy, bytes);
  m64_bundle *raw = nullptr;
  m64_err err;
  ASSERT_EQ(m64_bundle_open(copy.c_str(), &raw, &err), 0) << err.msg;  // layers are checked lazily
  BundlePtr fb(raw);
  EXPECT_EQ(m64_bundle_verify_layer(fb.get(), 2, &err), 0) << err.msg;
  EXPECT_EQ(m64_bundle_verify_layer(fb.get(), 3, &err), M64_EHASH);
  EXPECT_NE(std::string(err.msg).find("'blk.2'"), std::string::npos) << err.msg;
  EXPECT_EQ(m64_bundle_verify_all(fb.get(), &err), M64_EHASH);
}

TEST(Bundle, CorruptionIsRejectedAtOpen) {
  TempDir dir;
  Model m = make_model(200000);
  auto good = read_file(write_bundle(dir, m));
  ASSERT_TRUE(open_ok(good));
  std::string msg;

  auto f = good;
  f[0] = 'X';
  EXPECT_EQ(open_code(f), M64_EFORMAT);
  f = good;
  f[8] = 2;  // version
  EXPECT_EQ(open_code(f), M64_EUNSUPPORTED);
  f = good;
  f[100] ^= 1;  // section table byte: header hash catches it
  EXPECT_EQ(open_code(f), M64_EHASH);
  // A flipped METADATA byte: the section hash catches it.
  f = good;
  uint64_t meta_off;
  memcpy(&meta_off, record(f, 0) + 56, 8);
  f[meta_off] ^= 1;
  EXPECT_EQ(open_code(f, &msg), M64_EHASH);
  EXPECT_NE(msg.find("metadata"), std::string::npos) << msg;
  // Deeper checks, with the header hash fixed up so they are reached.
  f = good;
  f[16] = 0xff; f[17] = 0xff;  // n_sections 65535: over the cap, checked before the hash
  EXPECT_EQ(open_code(f), M64_ELIMIT);
  f = good;
  uint32_t more = 200;  // under the cap: the table would run into the sections (caught by hash)
  memcpy(&f[16], &more, 4);
  EXPECT_EQ(open_code(f), M64_EHASH);
  f = good;
  uint32_t many = 1000;
  memcpy(&f[16], &many, 4);
  EXPECT_EQ(open_code(f), M64_ELIMIT);
  f = good;
  uint64_t off;
  memcpy(&off, record(f, 6) + 56, 8);  // segment.0
  off += 4096;
  memcpy(record(f, 6) + 56, &off, 8);
  rehash_header(f);
  EXPECT_EQ(open_code(f, &msg), M64_EFORMAT);
  EXPECT_NE(msg.find("aligned"), std::string::npos) << msg;
  f = good;
  memcpy(&off, record(f, 0) + 56, 8);
  memcpy(record(f, 1) + 56, &off, 8);  // tokenizer placed over metadata
  rehash_header(f);
  EXPECT_NE(open_code(f), 0);
  f = good;
  memset(record(f, 2) + 4, 'x', 48);  // name without NUL
  rehash_header(f);
  EXPECT_EQ(open_code(f, &msg), M64_EFORMAT);
  f = good;
  uint64_t huge = ~0ull - 10;
  memcpy(record(f, 3) + 64, &huge, 8);  // size overflows offset + size
  rehash_header(f);
  EXPECT_EQ(open_code(f), M64_EFORMAT);
  f = good;
  memset(record(f, 3) + 4, 0, 48);  // two NATIVE sections with the same name
  memset(record(f, 4) + 4, 0, 48);
  memcpy(record(f, 3) + 4, "tokenizer", 10);
  memcpy(record(f, 4) + 4, "tokenizer", 10);
  rehash_header(f);
  EXPECT_EQ(open_code(f, &msg), M64_EFORMAT);
  EXPECT_NE(msg.find("duplicate"), std::string::npos) << msg;
  f = good;
  uint32_t kind = M64_SEC_METADATA;
  memcpy(record(f, 5), &kind, 4);  // no LAYER_INDEX any more
  rehash_header(f);
  EXPECT_EQ(open_code(f), M64_EFORMAT);
  f = good;
  f.push_back(0);  // file size differs from the header's
  EXPECT_EQ(open_code(f), M64_EFORMAT);
}

TEST(Bundle, EveryTruncationFails) {
  TempDir dir;
  Model m = make_model(200000);
  auto good = read_file(write_bundle(dir, m));
  ASSERT_TRUE(open_ok(good));
  for (size_t n = 0; n < good.size(); n += (n < 2048 ? 1 : 997)) {
    std::vector<uint8_t> cut(good.begin(), good.begin() + n);
    ASSERT_NE(open_code(cut), 0) << n;
  }
}

TEST(BundleWriter, AbortAndFailuresLeaveNoFiles) {
  TempDir dir;
  m64_err err;
  std::string path = dir.file("x.m64");
  m64_bundle_writer *w = nullptr;
  ASSERT_EQ(m64_bw_open(path.c_str(), &w, &err), 0) << err.msg;
  std::string tmp = m64_bw_temp_path(w);
  EXPECT_EQ(tmp.rfind(path + ".tmp.", 0), 0u) << tmp;
  EXPECT_EQ(m64_bw_add_section(w, M64_SEC_METADATA, "metadata", "a = b\n", 6, &err), 0);
  EXPECT_EQ(m64_bw_add_section(w, M64_SEC_METADATA, "metadata", "a = b\n", 6, &err), M64_EFORMAT);
  EXPECT_EQ(m64_bw_add_section(w, M64_SEC_SEGMENT, "segment.0", "", 0, &err), M64_EFORMAT);
  EXPECT_EQ(m64_bw_add_section(w, M64_SEC_NATIVE, std::string(48, 'n').c_str(), "", 0, &err), M64_ELIMIT);
  EXPECT_TRUE(file_exists(tmp));
  m64_bw_abort(w);
  EXPECT_FALSE(file_exists(tmp));
  EXPECT_TRUE(dir.list().empty());
  m64_bw_abort(nullptr);

  // Commit with a tensor never written: fails, removes the temp file; abort frees.
  Model m = make_model(0);
  ASSERT_EQ(m64_bw_open(path.c_str(), &w, &err), 0);
  EXPECT_EQ(m64_bw_write_tensor(w, 0, m.data[0].data(), &err), M64_EFORMAT);  // before layout
  ASSERT_EQ(m64_bw_set_layout(w, m.layers.data(), 4, m.tensors.data(), 8, &err), 0) << err.msg;
  EXPECT_EQ(m64_bw_set_layout(w, m.layers.data(), 4, m.tensors.data(), 8, &err), M64_EFORMAT);
  EXPECT_EQ(m64_bw_write_tensor(w, 8, m.data[0].data(), &err), M64_ENOTFOUND);
  EXPECT_EQ(m64_bw_write_tensor(w, 0, m.data[0].data(), &err), 0);
  EXPECT_EQ(m64_bw_commit(w, &err), M64_EFORMAT);
  EXPECT_NE(std::string(err.msg).find("never written"), std::string::npos) << err.msg;
  EXPECT_TRUE(dir.list().empty());
  m64_bw_abort(w);

  // A bad layout is rejected and leaves the writer usable.
  ASSERT_EQ(m64_bw_open(path.c_str(), &w, &err), 0);
  auto bad = m.layers;
  bad[1].offset += 64;  // not 64 KiB aligned
  EXPECT_EQ(m64_bw_set_layout(w, bad.data(), 4, m.tensors.data(), 8, &err), M64_EFORMAT);
  EXPECT_NE(std::string(err.msg).find("aligned"), std::string::npos) << err.msg;
  EXPECT_EQ(m64_bw_set_layout(w, m.layers.data(), 4, m.tensors.data(), 8, &err), 0) << err.msg;
  m64_bw_abort(w);
  EXPECT_TRUE(dir.list().empty());
}

TEST(BundleWriter, MissingDirectoryIsEio) {
  m64_bundle_writer *w = nullptr;
  m64_err err;
  err.msg[0] = 0;
  EXPECT_EQ(m64_bw_open("/nonexistent-m64-dir/x/y.m64", &w, &err), M64_EIO);
  EXPECT_EQ(w, nullptr);
  EXPECT_NE(std::string(err.msg).find("No such file"), std::string::npos) << err.msg;
}

TEST(BundleWriter, SectionsAfterLayoutGoPastTheSegments) {
  TempDir dir;
  Model m = make_model(200000);
  std::string path = dir.file("late.m64");
  m64_bundle_writer *w = nullptr;
  m64_err err;
  ASSERT_EQ(m64_bw_open(path.c_str(), &w, &err), 0);
  ASSERT_EQ(m64_bw_set_layout(w, m.layers.data(), 4, m.tensors.data(), 8, &err), 0) << err.msg;
  for (uint32_t i = 0; i < 8; i++) ASSERT_EQ(m64_bw_write_tensor(w, i, m.data[i].data(), &err), 0);
  ASSERT_EQ(m64_bw_add_section(w, M64_SEC_METADATA, "metadata", "k = v\n", 6, &err), 0);
  ASSERT_EQ(m64_bw_commit(w, &err), 0) << err.msg;
  m64_bundle *raw = nullptr;
  ASSERT_EQ(m64_bundle_open(path.c_str(), &raw, &err), 0) << err.msg;
  BundlePtr b(raw);
  char v[8];
  EXPECT_EQ(m64_bundle_meta(b.get(), "k", v, sizeof v), 0);
  EXPECT_STREQ(v, "v");
  EXPECT_EQ(m64_bundle_verify_all(b.get(), &err), 0) << err.msg;
}

// A bundle has one module, and may carry its relaxed-SIMD variant (for browsers) after it:
// any other second module would be run by one host and ignored by another.
TEST(Bundle, TheRelaxedModuleMayFollowTheModuleAndNothingElse) {
  TempDir dir;
  Model m = make_model(200000);
  auto write = [&](std::vector<const char *> names, std::string *msg) {
    std::string path = dir.file("wasm.m64");
    m64_bundle_writer *w = nullptr;
    m64_err err;
    EXPECT_EQ(m64_bw_open(path.c_str(), &w, &err), 0);
    for (const char *name : names)
      EXPECT_EQ(m64_bw_add_section(w, M64_SEC_MODULE_WASM, name, kWasm.data(), kWasm.size(), &err), 0) << err.msg;
    EXPECT_EQ(m64_bw_set_layout(w, m.layers.data(), uint32_t(m.layers.size()), m.tensors.data(),
                                uint32_t(m.tensors.size()), &err), 0) << err.msg;
    for (size_t i = 0; i < m.tensors.size(); i++) EXPECT_EQ(m64_bw_write_tensor(w, uint32_t(i), m.data[i].data(), &err), 0);
    EXPECT_EQ(m64_bw_commit(w, &err), 0) << err.msg;
    m64_bundle *b = nullptr;
    err.msg[0] = 0;
    const int rc = m64_bundle_open(path.c_str(), &b, &err);
    *msg = err.msg;
    const m64_section *first = rc ? nullptr : m64_bundle_find_section(b, M64_SEC_MODULE_WASM, nullptr);
    const std::string first_name = first ? first->name : "";
    m64_bundle_close(b);
    unlink(path.c_str());
    return rc ? std::string("refused") : first_name;
  };
  std::string msg;
  EXPECT_EQ(write({"module", M64_RELAXED_MODULE}, &msg), "module") << msg;
  EXPECT_EQ(write({"module"}, &msg), "module") << msg;
  EXPECT_EQ(write({"module", "module2"}, &msg), "refused");
  EXPECT_NE(msg.find("2 MODULE_WASM sections; a bundle has one at most"), std::string::npos) << msg;
  EXPECT_EQ(write({"module", M64_RELAXED_MODULE, "module2"}, &msg), "refused");
  EXPECT_NE(msg.find("3 MODULE_WASM sections; a bundle has one at most beside its module.relaxed"), std::string::npos) << msg;
  EXPECT_EQ(write({M64_RELAXED_MODULE, "module"}, &msg), "refused");
  EXPECT_NE(msg.find("comes before the module"), std::string::npos) << msg;
  EXPECT_EQ(write({M64_RELAXED_MODULE}, &msg), "refused");
}

// Mutations inside the header/table and inside LAYER_INDEX, with the hashes fixed up so the
// structural checks (not just the hashes) are exercised. Must never crash.
TEST(Bundle, StructuralMutationsNeverCrash) {
  TempDir dir;
  Model m = make_model(200000);
  auto good = read_file(write_bundle(dir, m));
  ASSERT_TRUE(open_ok(good));
  const uint32_t n_sec = 8, li = 5;
  uint64_t li_off, li_size;
  memcpy(&li_off, record(good, li) + 56, 8);
  memcpy(&li_size, record(good, li) + 64, 8);
  std::vector<size_t> positions;
  for (size_t i = 0; i < 96 + n_sec * 128; i++)
    if (i < 64 || i >= 96) positions.push_back(i);
  for (size_t i = 0; i < li_size; i++) positions.push_back(li_off + i);
  int opened = 0;
  std::vector<uint8_t> f(good);  // mutated in place and restored: the file is ~400 KB
  for (size_t pos : positions) {
    if (pos >= 16 && pos < 20) continue;  // n_sections: covered elsewhere, rehash would overread
    for (uint8_t x : {uint8_t(0), uint8_t(0xff), uint8_t(good[pos] ^ 0x40), uint8_t(good[pos] + 1)}) {
      f[pos] = x;
      if (pos >= li_off) {
        m64_sha256 s;
        m64_sha256_init(&s);
        m64_sha256_update(&s, f.data() + li_off, li_size);
        m64_sha256_final(&s, record(f, li) + 72);
      }
      rehash_header(f);
      m64_bundle *b = nullptr;
      m64_err err;
      if (m64_bundle_open_memory(f.data(), f.size(), &b, &err) == 0) {
        opened++;
        for (uint32_t i = 0; i < m64_bundle_n_layers(b); i++) {
          const m64_layer_entry *l = m64_bundle_layer(b, i);
          const uint8_t *d = m64_bundle_layer_data(b, i);
          if (l->size) {
            ASSERT_LE(d + l->size, f.data() + f.size());
          }
        }
        m64_bundle_close(b);
      }
      memcpy(f.data(), good.data(), 96 + n_sec * 128);
      memcpy(f.data() + li_off, good.data() + li_off, li_size);
    }
  }
  EXPECT_GT(opened, 0);  // e.g. a changed byte in a section name
}
