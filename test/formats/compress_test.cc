// Compressed bundles (docs/FORMAT.md, "Compressed bundles"): the zstd writer, the reader's
// checks, the bounded layer decoder, and that content and raw hashes are those of the
// uncompressed bundle.
#include <gtest/gtest.h>
#include <zstd.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "test_util.h"

namespace {

struct BundleCloser { void operator()(m64_bundle *b) const { m64_bundle_close(b); } };
using BundlePtr = std::unique_ptr<m64_bundle, BundleCloser>;
struct DecoderFree { void operator()(m64_layer_decoder *d) const { m64_layer_decoder_free(d); } };
using DecoderPtr = std::unique_ptr<m64_layer_decoder, DecoderFree>;

DecoderPtr decoder() {
  m64_layer_decoder *d = nullptr;
  m64_err err;
  EXPECT_EQ(m64_layer_decoder_new(&d, &err), 0) << err.msg;
  return DecoderPtr(d);
}

m64_tensor_entry tensor(const char *name, uint32_t type, uint64_t nbytes) {
  m64_tensor_entry t;
  memset(&t, 0, sizeof t);
  snprintf(t.name, sizeof t.name, "%s", name);
  m64_type_info ti = m64_ggml_type_info(type);
  t.type = type;
  t.n_dims = 1;
  t.ne[0] = nbytes / ti.block_bytes * ti.block_elems;
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

// Weights with the structure real ones have: F16/F32 values of similar magnitude (similar
// high bytes), and quant blocks whose scales vary slowly while the quants look random.
std::vector<uint8_t> weights(uint32_t type, uint64_t n, uint32_t seed) {
  std::vector<uint8_t> v(n);
  uint32_t x = seed * 2654435761u + 1;
  auto rnd = [&x]() { x ^= x << 13; x ^= x >> 17; x ^= x << 5; return x; };
  m64_type_info ti = m64_ggml_type_info(type);
  for (uint64_t i = 0; i < n; i++) v[i] = uint8_t(rnd());
  if (type == M64_GGML_F32)
    for (uint64_t i = 3; i < n; i += 4) v[i] = uint8_t(0x3c + (rnd() & 1));
  if (type == M64_GGML_F16)
    for (uint64_t i = 1; i < n; i += 2) v[i] = uint8_t(0x2c + (rnd() & 3));
  if (type == M64_GGML_Q4_K || type == M64_GGML_Q8_0)
    for (uint64_t b = 0; b + ti.block_bytes <= n; b += ti.block_bytes) v[b + 1] = 0x1c;  // f16 d high byte
  return v;
}

struct Model {
  std::vector<m64_tensor_entry> tensors;
  std::vector<m64_layer_entry> layers;
  std::vector<std::vector<uint8_t>> data;
};

// Every field table the codec knows, blocks larger than one 4 KiB chunk, an odd-sized
// tensor of a type without fields, and an empty layer.
Model make_model() {
  Model m;
  m.tensors = {tensor("token_embd.weight", M64_GGML_Q4_K, 144 * 100),
               tensor("output_norm.weight", M64_GGML_F32, 4 * 1000),
               tensor("blk.0.attn_q.weight", M64_GGML_F16, 2 * 9000),
               tensor("blk.0.misc", M64_GGML_I8, 333),
               tensor("blk.0.attn_k.weight", M64_GGML_Q8_0, 34 * 200),
               tensor("blk.1.a", M64_GGML_Q4_0, 18 * 300), tensor("blk.1.b", M64_GGML_Q4_1, 20 * 300),
               tensor("blk.1.c", M64_GGML_Q5_0, 22 * 300), tensor("blk.1.d", M64_GGML_Q5_1, 24 * 300),
               tensor("blk.1.e", M64_GGML_IQ4_NL, 18 * 300), tensor("blk.1.f", M64_GGML_Q2_K, 84 * 70),
               tensor("blk.1.g", M64_GGML_Q3_K, 110 * 70), tensor("blk.1.h", M64_GGML_Q5_K, 176 * 70),
               tensor("blk.1.i", M64_GGML_Q6_K, 210 * 70), tensor("blk.1.j", M64_GGML_IQ4_XS, 136 * 70),
               tensor("blk.1.k", M64_GGML_BF16, 2 * 3001)};
  m.layers = {layer("globals", 0, 2), layer("blk.0", 2, 3), layer("blk.1", 5, 11), layer("blk.2", 16, 0)};
  for (size_t i = 0; i < m.tensors.size(); i++)
    m.data.push_back(weights(m.tensors[i].type, m.tensors[i].nbytes, uint32_t(i + 1)));
  uint32_t n_seg;
  uint64_t seg_sizes[M64_MAX_SECTIONS];
  m64_err err;
  EXPECT_EQ(m64_plan_layout(m.layers.data(), uint32_t(m.layers.size()), m.tensors.data(),
                            uint32_t(m.tensors.size()), 0, &n_seg, seg_sizes, &err), 0) << err.msg;
  return m;
}

const std::string kMeta(2000, 'm');
const std::vector<uint8_t> kWasm = {0, 'a', 's', 'm', 1, 0, 0, 0};

std::string write(const TempDir &dir, const Model &m, const m64_compress_options *z, const char *name) {
  std::string path = dir.file(name);
  m64_bundle_writer *w = nullptr;
  m64_err err;
  EXPECT_EQ(m64_bw_open(path.c_str(), &w, &err), 0) << err.msg;
  if (z) {
    EXPECT_EQ(m64_bw_set_compression(w, z, &err), 0) << err.msg;
  }
  EXPECT_EQ(m64_bw_add_section(w, M64_SEC_METADATA, "metadata", kMeta.data(), kMeta.size(), &err), 0) << err.msg;
  EXPECT_EQ(m64_bw_add_section(w, M64_SEC_MODULE_WASM, "module", kWasm.data(), kWasm.size(), &err), 0) << err.msg;
  const std::vector<uint8_t> native = native_section("");
  EXPECT_EQ(m64_bw_add_section(w, M64_SEC_NATIVE, "empty", native.data(), native.size(), &err), 0) << err.msg;
  EXPECT_EQ(m64_bw_set_layout(w, m.layers.data(), uint32_t(m.layers.size()), m.tensors.data(),
                              uint32_t(m.tensors.size()), &err), 0) << err.msg;
  for (size_t i = m.tensors.size(); i-- > 0;)  // reverse order: layers wait for their last tensor
    EXPECT_EQ(m64_bw_write_tensor(w, uint32_t(i), m.data[i].data(), &err), 0) << err.msg;
  EXPECT_EQ(m64_bw_commit(w, &err), 0) << err.msg;
  return path;
}

BundlePtr open_file(const std::string &path) {
  m64_bundle *b = nullptr;
  m64_err err;
  EXPECT_EQ(m64_bundle_open(path.c_str(), &b, &err), 0) << err.msg;
  return BundlePtr(b);
}

// Raw layer bytes as the uncompressed bundle maps them.
std::vector<uint8_t> raw_layer(const m64_bundle *b, uint32_t i) {
  const uint8_t *p = m64_bundle_layer_data(b, i);
  return std::vector<uint8_t>(p, p + m64_bundle_layer(b, i)->size);
}

}  // namespace

TEST(Compressed, SameContentLayoutAndHashesAsUncompressed) {
  TempDir dir;
  Model m = make_model();
  m64_compress_options z = {3, 4096, 0, 0, 0};
  BundlePtr plain = open_file(write(dir, m, nullptr, "plain.m64"));
  BundlePtr comp = open_file(write(dir, m, &z, "z.m64"));
  ASSERT_TRUE(plain && comp);
  EXPECT_FALSE(m64_bundle_compressed(plain.get()));
  EXPECT_TRUE(m64_bundle_compressed(comp.get()));
  EXPECT_LT(m64_bundle_file_size(comp.get()), m64_bundle_file_size(plain.get()));
  m64_err err;
  EXPECT_EQ(m64_bundle_verify_all(comp.get(), &err), 0) << err.msg;

  // Sections: same content and content hash; the large metadata section is stored compressed.
  for (uint32_t kind : {M64_SEC_METADATA, M64_SEC_MODULE_WASM, M64_SEC_NATIVE, M64_SEC_LAYER_INDEX}) {
    const m64_section *a = m64_bundle_find_section(plain.get(), kind, nullptr);
    const m64_section *c = m64_bundle_find_section(comp.get(), kind, nullptr);
    ASSERT_TRUE(a && c) << kind;
    if (kind != M64_SEC_LAYER_INDEX) {  // the index has bigger records when compressed
      EXPECT_EQ(std::string((const char *)a->data, a->size), std::string((const char *)c->data, c->size));
      EXPECT_EQ(memcmp(a->sha256, c->sha256, 32), 0) << kind;
    }
  }
  const m64_section *meta = m64_bundle_find_section(comp.get(), M64_SEC_METADATA, nullptr);
  EXPECT_EQ(meta->codec, 1u);
  EXPECT_LT(meta->stored_size, meta->size);
  char v[8];
  EXPECT_EQ(m64_bundle_meta(comp.get(), "nothing", v, sizeof v), M64_ENOTFOUND);

  // Layers: raw layout and raw hash equal; decoding gives the mapped bytes of the plain one.
  ASSERT_EQ(m64_bundle_n_layers(comp.get()), m64_bundle_n_layers(plain.get()));
  DecoderPtr d = decoder();
  for (uint32_t i = 0; i < m64_bundle_n_layers(comp.get()); i++) {
    const m64_layer_entry *a = m64_bundle_layer(plain.get(), i), *c = m64_bundle_layer(comp.get(), i);
    EXPECT_EQ(a->size, c->size);
    EXPECT_EQ(a->offset, c->offset);
    EXPECT_EQ(memcmp(a->sha256, c->sha256, 32), 0) << c->name;
    EXPECT_EQ(c->codec, 1u);
    EXPECT_EQ(c->filter, 1u);
    EXPECT_EQ(c->chunk_size, 4096u);
    EXPECT_EQ(m64_bundle_layer_data(comp.get(), i), nullptr);
    std::vector<uint8_t> out(c->size + 64, 0xee);  // the tail shows nothing is written past size
    ASSERT_EQ(m64_bundle_read_layer(comp.get(), i, d.get(), out.data(), 1, &err), 0) << err.msg;
    EXPECT_EQ(std::vector<uint8_t>(out.begin(), out.begin() + c->size), raw_layer(plain.get(), i)) << c->name;
    EXPECT_EQ(std::vector<uint8_t>(out.begin() + c->size, out.end()), std::vector<uint8_t>(64, 0xee));
  }
  // The weights that look like real ones compress; an F32/F16 layer by at least 15%.
  const m64_layer_entry *g = m64_bundle_layer(comp.get(), 0), *b0 = m64_bundle_layer(comp.get(), 1);
  EXPECT_LT(g->stored_size, g->size);
  EXPECT_LT(double(b0->stored_size), 0.85 * double(b0->size));
}

TEST(Compressed, ChunksThatDoNotPayAreStoredAsIs) {
  TempDir dir;
  Model m = make_model();
  for (size_t i = 0; i < m.data.size(); i++)  // random bytes everywhere: nothing compresses
    m.data[i] = weights(M64_GGML_I8, m.data[i].size(), uint32_t(100 + i));
  m64_compress_options z = {3, 4096, 0, 0, 0}, demanding = {3, 4096, 0, 0, 50};
  BundlePtr a = open_file(write(dir, m, &z, "a.m64"));
  BundlePtr b = open_file(write(dir, m, &demanding, "b.m64"));
  ASSERT_TRUE(a && b);
  m64_err err;
  for (BundlePtr *p : {&a, &b}) {
    EXPECT_EQ(m64_bundle_verify_all(p->get(), &err), 0) << err.msg;
    // every tensor of blk.0 in 4 KiB chunks, each at most 8 bytes more than its raw bytes
    const m64_layer_entry *l = m64_bundle_layer(p->get(), 1);
    EXPECT_LE(l->stored_size, l->size + 8 * 16) << l->name;
  }
  // demanding half the bytes back: every stream is stored as is (skippable frames)
  const m64_layer_entry *l = m64_bundle_layer(b.get(), 1);
  uint64_t tensors_bytes = 0, in_frames = 0, frames = 0;
  for (uint32_t t = l->first_tensor; t < l->first_tensor + l->n_tensors; t++)
    tensors_bytes += m64_bundle_tensor(b.get(), t)->nbytes;
  const uint8_t *p = m64_bundle_layer_stored(b.get(), 1), *end = p + l->stored_size;
  while (p + 8 <= end) {
    uint32_t magic, n;
    memcpy(&magic, p, 4);
    memcpy(&n, p + 4, 4);
    ASSERT_EQ(magic, 0x184D2A50u) << "frame " << frames;
    in_frames += n;
    p += 8 + n;
    frames++;
  }
  EXPECT_EQ(p, end);
  EXPECT_EQ(in_frames, tensors_bytes);
  EXPECT_GT(frames, 6u);  // several chunks, several streams each
}

TEST(Compressed, SplittingFieldsPaysOnF16) {
  TempDir dir;
  Model m = make_model();
  m64_compress_options split = {3, 0, 0, 0, 0}, whole = {3, 0, 1, 0, 0};
  BundlePtr a = open_file(write(dir, m, &split, "split.m64"));
  BundlePtr b = open_file(write(dir, m, &whole, "whole.m64"));
  ASSERT_TRUE(a && b);
  EXPECT_EQ(m64_bundle_layer(b.get(), 1)->filter, 0u);
  EXPECT_LT(m64_bundle_layer(a.get(), 1)->stored_size, m64_bundle_layer(b.get(), 1)->stored_size);
  m64_err err;
  EXPECT_EQ(m64_bundle_verify_all(b.get(), &err), 0) << err.msg;
}

TEST(Compressed, FlippedByteInALayerIsNamed) {
  TempDir dir;
  Model m = make_model();
  m64_compress_options z = {3, 4096, 0, 0, 0};
  std::string path = write(dir, m, &z, "z.m64");
  uint64_t at;
  {
    BundlePtr b = open_file(path);
    const m64_layer_entry *l = m64_bundle_layer(b.get(), 2);
    const m64_section *seg = m64_bundle_find_section(b.get(), M64_SEC_SEGMENT, "segment.0");
    at = seg->offset + l->stored_offset + l->stored_size / 2;
  }
  std::vector<uint8_t> f = read_file(path);
  f[at] ^= 0x40;
  m64_bundle *raw = nullptr;
  m64_err err;
  ASSERT_EQ(m64_bundle_open_memory(f.data(), f.size(), &raw, &err), 0) << err.msg;  // layers: lazily
  BundlePtr b(raw);
  EXPECT_EQ(m64_bundle_verify_layer(b.get(), 1, &err), 0) << err.msg;
  EXPECT_EQ(m64_bundle_verify_layer(b.get(), 2, &err), M64_EHASH);
  EXPECT_NE(std::string(err.msg).find("'blk.1'"), std::string::npos) << err.msg;
  DecoderPtr d = decoder();
  std::vector<uint8_t> out(m64_bundle_layer(b.get(), 2)->size);
  EXPECT_EQ(m64_bundle_read_layer(b.get(), 2, d.get(), out.data(), 1, &err), M64_EHASH);
  EXPECT_NE(std::string(err.msg).find("'blk.1'"), std::string::npos) << err.msg;
  // Unverified, the damaged frame is decoded or refused, never written past the layer.
  std::vector<uint8_t> big(out.size() + 4096, 0xee);
  m64_bundle_read_layer(b.get(), 2, d.get(), big.data(), 0, &err);
  EXPECT_EQ(std::vector<uint8_t>(big.begin() + out.size(), big.end()), std::vector<uint8_t>(4096, 0xee));
  EXPECT_EQ(m64_bundle_verify_all(b.get(), &err), M64_EHASH);
}

// Hand-made frames for a one-tensor layer of 4096 raw bytes (I8: no field split).
struct OneLayer {
  m64_tensor_entry t = tensor("x", M64_GGML_I8, 4096);
  m64_layer_entry l = layer("blk.7", 0, 1);
  std::vector<uint8_t> stored;
  OneLayer() {
    l.size = 4096;
    l.codec = 1;
    l.chunk_size = 1u << 20;
  }
  int decode(std::vector<uint8_t> &dst, std::string *msg) {
    l.stored_size = stored.size();
    m64_err err;
    err.msg[0] = 0;
    DecoderPtr d = decoder();
    int rc = m64_layer_decode(&l, &t, stored.data(), d.get(), dst.data(), &err);
    *msg = err.msg;
    return rc;
  }
};

std::vector<uint8_t> zframe(const std::vector<uint8_t> &src, bool with_size = true) {
  std::vector<uint8_t> out(ZSTD_compressBound(src.size()));
  ZSTD_CCtx *c = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, with_size ? 1 : 0);
  size_t n;
  if (with_size) {
    n = ZSTD_compress2(c, out.data(), out.size(), src.data(), src.size());
  } else {  // streamed: the frame header carries no size
    ZSTD_inBuffer in = {src.data(), src.size(), 0};
    ZSTD_outBuffer o = {out.data(), out.size(), 0};
    ZSTD_compressStream2(c, &o, &in, ZSTD_e_end);
    n = o.pos;
  }
  ZSTD_freeCCtx(c);
  out.resize(n);
  return out;
}

TEST(Compressed, FramesMustDeclareExactlyTheirChunk) {
  std::vector<uint8_t> dst(4096 + 4096, 0xee);
  const std::vector<uint8_t> guard(4096, 0xee);
  std::string msg;
  OneLayer ok;
  ok.stored = zframe(std::vector<uint8_t>(4096, 7));
  EXPECT_EQ(ok.decode(dst, &msg), 0) << msg;
  EXPECT_EQ(dst[0], 7);
  EXPECT_EQ(dst[4095], 7);
  EXPECT_EQ(std::vector<uint8_t>(dst.begin() + 4096, dst.end()), guard);

  OneLayer more;  // claims (and holds) twice the layer: refused before any byte is written
  more.stored = zframe(std::vector<uint8_t>(8192, 9));
  EXPECT_EQ(more.decode(dst, &msg), M64_EFORMAT);
  EXPECT_NE(msg.find("claims 8192 bytes"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'blk.7'"), std::string::npos) << msg;
  EXPECT_EQ(std::vector<uint8_t>(dst.begin() + 4096, dst.end()), guard);

  OneLayer less;
  less.stored = zframe(std::vector<uint8_t>(100, 9));
  EXPECT_EQ(less.decode(dst, &msg), M64_EFORMAT) << msg;

  OneLayer unsized;  // a streamed frame does not say how much it will produce
  unsized.stored = zframe(std::vector<uint8_t>(4096, 9), false);
  EXPECT_EQ(unsized.decode(dst, &msg), M64_EFORMAT);
  EXPECT_NE(msg.find("declared size"), std::string::npos) << msg;

  OneLayer trailing;
  trailing.stored = zframe(std::vector<uint8_t>(4096, 9));
  trailing.stored.push_back(0);
  EXPECT_EQ(trailing.decode(dst, &msg), M64_EFORMAT);
  EXPECT_NE(msg.find("after its last frame"), std::string::npos) << msg;

  OneLayer truncated;
  truncated.stored = zframe(std::vector<uint8_t>(4096, 9));
  truncated.stored.resize(truncated.stored.size() - 3);
  EXPECT_EQ(truncated.decode(dst, &msg), M64_EFORMAT) << msg;

  OneLayer raw;  // a chunk stored as is (skippable frame) must hold exactly its chunk
  Bytes rf;
  rf.u32(0x184D2A50u).u32(4096).zeros(4096);
  raw.stored = rf.v;
  EXPECT_EQ(raw.decode(dst, &msg), 0) << msg;
  EXPECT_EQ(dst[0], 0);
  rf.v[4] = 0;  // now claims 4096 + 4096 - ... = a different size
  rf.v[5] = 0x20;
  raw.stored = rf.v;
  EXPECT_EQ(raw.decode(dst, &msg), M64_EFORMAT);
  EXPECT_NE(msg.find("raw chunk"), std::string::npos) << msg;
  raw.stored.resize(raw.stored.size() - 1);  // and one byte short of its claim
  raw.stored[4] = 0, raw.stored[5] = 0x10;
  EXPECT_EQ(raw.decode(dst, &msg), M64_EFORMAT) << msg;
  EXPECT_EQ(std::vector<uint8_t>(dst.begin() + 4096, dst.end()), guard);

  OneLayer chunk;  // a chunk size the format does not allow
  chunk.stored = zframe(std::vector<uint8_t>(4096, 9));
  chunk.l.chunk_size = 3000;
  EXPECT_EQ(chunk.decode(dst, &msg), M64_EFORMAT) << msg;
  EXPECT_EQ(std::vector<uint8_t>(dst.begin() + 4096, dst.end()), guard);
}

TEST(Compressed, SectionRecordsAreBounded) {
  TempDir dir;
  Model m = make_model();
  m64_compress_options z = {3, 0, 0, 0, 0};
  std::vector<uint8_t> f = read_file(write(dir, m, &z, "z.m64"));
  auto rehash = [](std::vector<uint8_t> &g) {
    uint32_t n;
    memcpy(&n, &g[16], 4);
    m64_sha256 s;
    m64_sha256_init(&s);
    m64_sha256_update(&s, g.data(), 64);
    m64_sha256_update(&s, g.data() + 96, size_t(n) * 128);
    m64_sha256_final(&s, g.data() + 64);
  };
  auto open_code = [](std::vector<uint8_t> g, std::string *msg) {
    m64_bundle *b = nullptr;
    m64_err err;
    err.msg[0] = 0;
    int rc = m64_bundle_open_memory(g.data(), g.size(), &b, &err);
    m64_bundle_close(b);
    *msg = err.msg;
    return rc;
  };
  std::string msg;
  ASSERT_EQ(open_code(f, &msg), 0) << msg;
  uint8_t *rec = f.data() + 96;  // section 0: metadata, codec 1
  uint32_t codec;
  memcpy(&codec, rec + 52, 4);
  ASSERT_EQ(codec, 1u);
  std::vector<uint8_t> g = f;  // claims 1 TiB of content
  uint64_t huge = 1ull << 40;
  memcpy(g.data() + 96 + 104, &huge, 8);
  rehash(g);
  EXPECT_EQ(open_code(g, &msg), M64_ELIMIT) << msg;
  g = f;  // claims one byte more than its frame holds
  uint64_t raw;
  memcpy(&raw, rec + 104, 8);
  raw += 1;
  memcpy(g.data() + 96 + 104, &raw, 8);
  rehash(g);
  EXPECT_EQ(open_code(g, &msg), M64_EFORMAT) << msg;
  EXPECT_NE(msg.find("metadata"), std::string::npos) << msg;
  g = f;  // an unknown codec
  g[96 + 52] = 2;
  rehash(g);
  EXPECT_EQ(open_code(g, &msg), M64_EFORMAT) << msg;
  g = f;  // without the flag, the records are those of an uncompressed bundle: refused
  g[12] = 0;
  rehash(g);
  EXPECT_NE(open_code(g, &msg), 0);
  g = f;  // an unknown flag
  g[12] = 3;
  rehash(g);
  EXPECT_EQ(open_code(g, &msg), M64_EUNSUPPORTED) << msg;
  // Every truncation fails cleanly.
  for (size_t n = 0; n < f.size(); n += 97) {
    std::vector<uint8_t> t(f.begin(), f.begin() + n);
    EXPECT_NE(open_code(t, &msg), 0) << n;
  }
}

TEST(Compressed, WriterRejectsMisuse) {
  TempDir dir;
  Model m = make_model();
  m64_err err;
  m64_bundle_writer *w = nullptr;
  ASSERT_EQ(m64_bw_open(dir.file("a.m64").c_str(), &w, &err), 0) << err.msg;
  m64_compress_options bad_level = {25, 0, 0, 0, 0}, bad_chunk = {3, 5000, 0, 0, 0}, ok = {3, 0, 0, 0, 0};
  EXPECT_EQ(m64_bw_set_compression(w, &bad_level, &err), M64_ELIMIT);
  EXPECT_EQ(m64_bw_set_compression(w, &bad_chunk, &err), M64_ELIMIT);
  ASSERT_EQ(m64_bw_set_compression(w, &ok, &err), 0) << err.msg;
  ASSERT_EQ(m64_bw_add_section(w, M64_SEC_METADATA, "metadata", "a = b", 5, &err), 0) << err.msg;
  ASSERT_EQ(m64_bw_set_layout(w, m.layers.data(), uint32_t(m.layers.size()), m.tensors.data(),
                              uint32_t(m.tensors.size()), &err), 0) << err.msg;
  EXPECT_EQ(m64_bw_add_section(w, M64_SEC_NATIVE, "late", "x", 1, &err), M64_EUNSUPPORTED);
  // Layer 0 complete: it is compressed at once, so its tensors can no longer change.
  ASSERT_EQ(m64_bw_write_tensor(w, 0, m.data[0].data(), &err), 0) << err.msg;
  ASSERT_EQ(m64_bw_write_tensor(w, 1, m.data[1].data(), &err), 0) << err.msg;
  EXPECT_EQ(m64_bw_write_tensor(w, 0, m.data[0].data(), &err), M64_EFORMAT);
  EXPECT_NE(m64_bw_commit(w, &err), 0);  // the other tensors are missing
  m64_bw_abort(w);
  EXPECT_TRUE(dir.list().empty());

  ASSERT_EQ(m64_bw_open(dir.file("b.m64").c_str(), &w, &err), 0) << err.msg;
  ASSERT_EQ(m64_bw_add_section(w, M64_SEC_METADATA, "metadata", "a = b", 5, &err), 0) << err.msg;
  EXPECT_NE(m64_bw_set_compression(w, &ok, &err), 0);  // too late: a section is written
  m64_bw_abort(w);
}
