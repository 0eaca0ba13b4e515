#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "test_util.h"

namespace {

struct GgufCloser { void operator()(m64_gguf *g) const { m64_gguf_close(g); } };
using GgufPtr = std::unique_ptr<m64_gguf, GgufCloser>;

// Opens from memory; on failure returns the code and leaves the message in err.
int open_bytes(const std::vector<uint8_t> &bytes, GgufPtr *out, m64_err *err) {
  m64_gguf *g = nullptr;
  int rc = m64_gguf_open_memory(bytes.data(), bytes.size(), &g, err);
  if (rc == 0) out->reset(g);
  else EXPECT_EQ(g, nullptr);
  return rc;
}

// Expects opening to fail with code and a non-empty message; returns the message.
std::string expect_fail(const std::vector<uint8_t> &bytes, int code) {
  m64_err err;
  err.msg[0] = 0;
  GgufPtr g;
  // An exact-size heap copy, so reading past the end is caught by sanitizers.
  std::vector<uint8_t> copy(bytes);
  int rc = open_bytes(copy, &g, &err);
  EXPECT_EQ(rc, code) << "message: " << err.msg;
  EXPECT_GT(strlen(err.msg), 0u);
  return err.msg;
}

struct TensorSpec {
  std::string name = "w";
  uint32_t n_dims = 2;
  std::vector<uint64_t> ne = {8, 2};
  uint32_t type = M64_GGML_F32;
  uint64_t offset = 0;
};

// A hand-made GGUF: one string kv, an optional general.alignment (u32), the tensors, and
// data_bytes of zeros after the header padding.
std::vector<uint8_t> make_gguf(const std::vector<TensorSpec> &ts, int64_t alignment = -1,
                               uint32_t version = 3, size_t data_bytes = 64) {
  Bytes b;
  b.raw("GGUF", 4).u32(version).u64(ts.size()).u64(alignment >= 0 ? 2 : 1);
  b.str("general.architecture").u32(M64_GGUF_STRING).str("llama");
  if (alignment >= 0) b.str("general.alignment").u32(M64_GGUF_U32).u32(uint32_t(alignment));
  for (auto &t : ts) {
    b.str(t.name).u32(t.n_dims);
    for (uint32_t d = 0; d < t.n_dims && d < t.ne.size(); d++) b.u64(t.ne[d]);
    b.u32(t.type).u64(t.offset);
  }
  size_t align = alignment > 0 && (alignment & (alignment - 1)) == 0 && alignment <= 65536 ? size_t(alignment) : 32;
  b.pad(align).zeros(data_bytes);
  return b.v;
}

}  // namespace

TEST(GgufReader, HandMadeValidFileOpens) {
  auto bytes = make_gguf({TensorSpec{}});
  m64_err err;
  GgufPtr g;
  ASSERT_EQ(open_bytes(bytes, &g, &err), 0) << err.msg;
  EXPECT_EQ(m64_gguf_version(g.get()), 3u);
  EXPECT_EQ(m64_gguf_alignment(g.get()), 32u);
  EXPECT_EQ(m64_gguf_data_offset(g.get()) % 32, 0u);
  const m64_gguf_tensor *t = m64_gguf_find_tensor(g.get(), "w");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->nbytes, 64u);
  EXPECT_EQ(t->n_elems, 16u);
  EXPECT_EQ(t->ne[2], 1u);
  EXPECT_EQ(t->data, bytes.data() + m64_gguf_data_offset(g.get()));
}

TEST(GgufReader, BrokenHeaders) {
  EXPECT_NE(expect_fail({}, M64_EFORMAT).find("empty"), std::string::npos);
  auto ok = make_gguf({TensorSpec{}});
  auto bad_magic = ok;
  bad_magic[0] = 'X';
  EXPECT_NE(expect_fail(bad_magic, M64_EFORMAT).find("magic"), std::string::npos);
  EXPECT_NE(expect_fail(make_gguf({TensorSpec{}}, -1, 1), M64_EUNSUPPORTED).find("version 1"), std::string::npos);
  expect_fail(make_gguf({TensorSpec{}}, -1, 4), M64_EUNSUPPORTED);
  expect_fail(make_gguf({TensorSpec{}}, -1, 0x03000000), M64_EUNSUPPORTED);  // big-endian v3
  expect_fail(std::vector<uint8_t>(ok.begin(), ok.begin() + 10), M64_EFORMAT);

  Bytes huge_tensors;
  huge_tensors.raw("GGUF", 4).u32(3).u64(1ull << 40).u64(0).zeros(64);
  EXPECT_NE(expect_fail(huge_tensors.v, M64_ELIMIT).find("n_tensors"), std::string::npos);
  Bytes many_tensors;  // under the cap but more than the file can hold
  many_tensors.raw("GGUF", 4).u32(3).u64(60000).u64(0).zeros(64);
  expect_fail(many_tensors.v, M64_EFORMAT);
  Bytes huge_kv;
  huge_kv.raw("GGUF", 4).u32(3).u64(0).u64(~0ull).zeros(64);
  expect_fail(huge_kv.v, M64_ELIMIT);
}

TEST(GgufReader, BrokenKvs) {
  Bytes huge_key;
  huge_key.raw("GGUF", 4).u32(3).u64(0).u64(1).u64(1ull << 62).zeros(64);
  EXPECT_NE(expect_fail(huge_key.v, M64_ELIMIT).find("length"), std::string::npos);

  Bytes long_key;  // under the cap, past the end of the file
  long_key.raw("GGUF", 4).u32(3).u64(0).u64(1).u64(1000).zeros(64);
  EXPECT_NE(expect_fail(long_key.v, M64_EFORMAT).find("past end of file"), std::string::npos);

  Bytes huge_str;
  huge_str.raw("GGUF", 4).u32(3).u64(0).u64(1).str("k").u32(M64_GGUF_STRING).u64(~0ull).zeros(8);
  expect_fail(huge_str.v, M64_ELIMIT);

  Bytes huge_arr;
  huge_arr.raw("GGUF", 4).u32(3).u64(0).u64(1).str("k").u32(M64_GGUF_ARRAY).u32(M64_GGUF_U8).u64(1ull << 40).zeros(8);
  EXPECT_NE(expect_fail(huge_arr.v, M64_ELIMIT).find("array count"), std::string::npos);

  Bytes big_arr;  // under the cap, more elements than bytes left
  big_arr.raw("GGUF", 4).u32(3).u64(0).u64(1).str("k").u32(M64_GGUF_ARRAY).u32(M64_GGUF_STRING).u64(1000000).zeros(8);
  expect_fail(big_arr.v, M64_EFORMAT);

  Bytes bad_type;
  bad_type.raw("GGUF", 4).u32(3).u64(0).u64(1).str("k").u32(13).zeros(8);
  expect_fail(bad_type.v, M64_EFORMAT);

  Bytes bad_elem;
  bad_elem.raw("GGUF", 4).u32(3).u64(0).u64(1).str("k").u32(M64_GGUF_ARRAY).u32(77).u64(1).zeros(8);
  expect_fail(bad_elem.v, M64_EFORMAT);

  Bytes dup;
  dup.raw("GGUF", 4).u32(3).u64(0).u64(2).str("k").u32(M64_GGUF_U8).u8(1).str("k").u32(M64_GGUF_U8).u8(2);
  EXPECT_NE(expect_fail(dup.v, M64_EFORMAT).find("duplicate"), std::string::npos);

  Bytes deep;  // arrays nested 20 deep
  deep.raw("GGUF", 4).u32(3).u64(0).u64(1).str("k").u32(M64_GGUF_ARRAY);
  for (int i = 0; i < 20; i++) deep.u32(M64_GGUF_ARRAY).u64(1);
  deep.u32(M64_GGUF_U8).u64(0);
  expect_fail(deep.v, M64_EUNSUPPORTED);
}

TEST(GgufReader, NestedArraysAreWalkedButNotIndexed) {
  Bytes b;
  b.raw("GGUF", 4).u32(3).u64(0).u64(2).str("nested").u32(M64_GGUF_ARRAY).u32(M64_GGUF_ARRAY).u64(2);
  b.u32(M64_GGUF_I32).u64(2).u32(1).u32(2);
  b.u32(M64_GGUF_STRING).u64(1).str("x");
  b.str("after").u32(M64_GGUF_U32).u32(7);
  m64_err err;
  GgufPtr g;
  ASSERT_EQ(open_bytes(b.v, &g, &err), 0) << err.msg;
  m64_gguf_vtype et;
  uint64_t n;
  ASSERT_EQ(m64_gguf_get_arr(g.get(), "nested", &et, &n), 0);
  EXPECT_EQ(et, M64_GGUF_ARRAY);
  EXPECT_EQ(n, 2u);
  int32_t v;
  EXPECT_EQ(m64_gguf_arr_i32(g.get(), "nested", 0, &v), M64_ETYPE);
  uint32_t after;
  ASSERT_EQ(m64_gguf_get_u32(g.get(), "after", &after), 0);
  EXPECT_EQ(after, 7u);
}

TEST(GgufReader, BrokenTensors) {
  TensorSpec t;
  t.n_dims = 5;
  t.ne = {1, 1, 1, 1, 1};
  EXPECT_NE(expect_fail(make_gguf({t}), M64_ELIMIT).find("n_dims"), std::string::npos);
  t = TensorSpec{};
  t.n_dims = 0;
  t.ne = {};
  expect_fail(make_gguf({t}), M64_EFORMAT);
  t = TensorSpec{};
  t.n_dims = 3;
  t.ne = {1ull << 32, 1ull << 32, 1ull << 32};
  EXPECT_NE(expect_fail(make_gguf({t}), M64_EFORMAT).find("overflow"), std::string::npos);
  t = TensorSpec{};
  t.ne = {32, 1ull << 60};  // element count fits, byte count does not
  expect_fail(make_gguf({t}), M64_EFORMAT);
  t = TensorSpec{};
  t.offset = 4;
  EXPECT_NE(expect_fail(make_gguf({t}), M64_EFORMAT).find("alignment"), std::string::npos);
  t = TensorSpec{};
  t.offset = 1 << 20;
  EXPECT_NE(expect_fail(make_gguf({t}), M64_EFORMAT).find("past end of file"), std::string::npos);
  t = TensorSpec{};
  t.offset = ~0ull & ~31ull;
  expect_fail(make_gguf({t}), M64_EFORMAT);
  t = TensorSpec{};
  t.ne = {16, 2};  // 128 bytes, only 64 in the file
  std::string msg = expect_fail(make_gguf({t}), M64_EFORMAT);
  EXPECT_NE(msg.find("tensor 0 'w': data ["), std::string::npos) << msg;
  t = TensorSpec{};
  t.type = 99;
  EXPECT_NE(expect_fail(make_gguf({t}), M64_EUNSUPPORTED).find("type 99"), std::string::npos);
  t = TensorSpec{};
  t.type = M64_GGML_Q4_0;
  t.ne = {33, 1};  // not a whole number of 32-element blocks
  expect_fail(make_gguf({t}), M64_EFORMAT);
  t = TensorSpec{};
  t.name = std::string(64, 'x');
  expect_fail(make_gguf({t}), M64_ELIMIT);
  t = TensorSpec{};
  t.name = std::string("a\0b", 3);
  expect_fail(make_gguf({t}), M64_EFORMAT);
  TensorSpec a, b;
  b.offset = 64;
  expect_fail(make_gguf({a, b}, -1, 3, 128), M64_EFORMAT);  // duplicate name "w"
  b.name = "w2";
  m64_err err;
  GgufPtr g;
  EXPECT_EQ(open_bytes(make_gguf({a, b}, -1, 3, 128), &g, &err), 0) << err.msg;
}

TEST(GgufReader, BadAlignment) {
  EXPECT_NE(expect_fail(make_gguf({TensorSpec{}}, 0), M64_EFORMAT).find("power of two"), std::string::npos);
  expect_fail(make_gguf({TensorSpec{}}, 3), M64_EFORMAT);
  EXPECT_NE(expect_fail(make_gguf({TensorSpec{}}, 1 << 30), M64_ELIMIT).find("alignment"), std::string::npos);
  m64_err err;
  GgufPtr g;
  ASSERT_EQ(open_bytes(make_gguf({TensorSpec{}}, 128), &g, &err), 0) << err.msg;
  EXPECT_EQ(m64_gguf_alignment(g.get()), 128u);
  EXPECT_EQ(m64_gguf_data_offset(g.get()) % 128, 0u);
}

TEST(GgufReader, FilesOnDisk) {
  TempDir dir;
  m64_gguf *g = nullptr;
  m64_err err;
  EXPECT_EQ(m64_gguf_open(dir.file("missing.gguf").c_str(), &g, &err), M64_EIO);
  EXPECT_NE(std::string(err.msg).find("missing.gguf"), std::string::npos);
  write_file(dir.file("empty.gguf"), {});
  EXPECT_EQ(m64_gguf_open(dir.file("empty.gguf").c_str(), &g, &err), M64_EFORMAT);
  EXPECT_NE(std::string(err.msg).find("empty"), std::string::npos);
  write_file(dir.file("short.gguf"), {'G', 'G', 'U', 'F', 3, 0});
  EXPECT_EQ(m64_gguf_open(dir.file("short.gguf").c_str(), &g, &err), M64_EFORMAT);
  EXPECT_NE(std::string(err.msg).find("too small"), std::string::npos);
  EXPECT_EQ(m64_gguf_open(dir.path().c_str(), &g, &err), M64_EIO);  // a directory
  EXPECT_EQ(g, nullptr);
}

// ---- writer -> reader

namespace {
std::vector<uint8_t> write_everything(const TempDir &dir, uint32_t alignment) {
  m64_gguf_writer *w = m64_gguf_writer_new(alignment);
  EXPECT_NE(w, nullptr);
  uint8_t u8 = 200; int8_t i8 = -100; uint16_t u16 = 60000; int16_t i16 = -30000;
  uint64_t u64 = 1ull << 40; int64_t i64 = -(1ll << 40); double f64 = 2.5e100;
  EXPECT_EQ(m64_gguf_w_scalar(w, "t.u8", M64_GGUF_U8, &u8), 0);
  EXPECT_EQ(m64_gguf_w_scalar(w, "t.i8", M64_GGUF_I8, &i8), 0);
  EXPECT_EQ(m64_gguf_w_scalar(w, "t.u16", M64_GGUF_U16, &u16), 0);
  EXPECT_EQ(m64_gguf_w_scalar(w, "t.i16", M64_GGUF_I16, &i16), 0);
  EXPECT_EQ(m64_gguf_w_u32(w, "t.u32", 4000000000u), 0);
  EXPECT_EQ(m64_gguf_w_i32(w, "t.i32", -2000000000), 0);
  EXPECT_EQ(m64_gguf_w_f32(w, "t.f32", 1.5f), 0);
  EXPECT_EQ(m64_gguf_w_bool(w, "t.bool", 1), 0);
  EXPECT_EQ(m64_gguf_w_str(w, "t.str", "héllo wörld"), 0);
  EXPECT_EQ(m64_gguf_w_scalar(w, "t.u64", M64_GGUF_U64, &u64), 0);
  EXPECT_EQ(m64_gguf_w_scalar(w, "t.i64", M64_GGUF_I64, &i64), 0);
  EXPECT_EQ(m64_gguf_w_scalar(w, "t.f64", M64_GGUF_F64, &f64), 0);
  const char *strs[] = {"<s>", "", "▁the", "\n", "日本"};
  EXPECT_EQ(m64_gguf_w_arr_str(w, "a.str", strs, 5), 0);
  float fs[] = {0.5f, -1.0f, 3.25f};
  EXPECT_EQ(m64_gguf_w_arr_f32(w, "a.f32", fs, 3), 0);
  int32_t is[] = {1, -2, 3, 2147483647};
  EXPECT_EQ(m64_gguf_w_arr_i32(w, "a.i32", is, 4), 0);
  uint8_t u8s[] = {1, 2, 255};
  EXPECT_EQ(m64_gguf_w_arr(w, "a.u8", M64_GGUF_U8, u8s, 3), 0);
  int16_t i16s[] = {-5, 5};
  EXPECT_EQ(m64_gguf_w_arr(w, "a.i16", M64_GGUF_I16, i16s, 2), 0);
  uint64_t u64s[] = {1ull << 50, 7};
  EXPECT_EQ(m64_gguf_w_arr(w, "a.u64", M64_GGUF_U64, u64s, 2), 0);
  double f64s[] = {0.25, 1e300};
  EXPECT_EQ(m64_gguf_w_arr(w, "a.f64", M64_GGUF_F64, f64s, 2), 0);
  EXPECT_EQ(m64_gguf_w_arr(w, "a.empty", M64_GGUF_U32, nullptr, 0), 0);

  std::vector<float> f32(8 * 3);
  for (size_t i = 0; i < f32.size(); i++) f32[i] = float(i) * 0.5f;
  uint64_t ne_f32[] = {8, 3};
  EXPECT_EQ(m64_gguf_w_tensor(w, "f32", M64_GGML_F32, 2, ne_f32, f32.data()), 0);
  std::vector<uint8_t> q8(34 * 2 * 2 * 2);
  for (size_t i = 0; i < q8.size(); i++) q8[i] = uint8_t(i * 7);
  uint64_t ne_q8[] = {64, 2, 2};
  EXPECT_EQ(m64_gguf_w_tensor(w, "q8", M64_GGML_Q8_0, 3, ne_q8, q8.data()), 0);
  uint64_t ne_q4k[] = {256, 1, 1, 2};
  EXPECT_EQ(m64_gguf_w_tensor_fill(w, "q4k", M64_GGML_Q4_K, 4, ne_q4k,
                                   [](void *, uint64_t off, void *buf, size_t n) {
                                     for (size_t i = 0; i < n; i++) ((uint8_t *)buf)[i] = uint8_t(off + i);
                                     return 0;
                                   }, nullptr), 0);
  uint64_t ne_f16[] = {3};
  uint16_t f16[] = {0x3c00, 0x4000, 0xc000};
  EXPECT_EQ(m64_gguf_w_tensor(w, "f16", M64_GGML_F16, 1, ne_f16, f16), 0);
  m64_err err;
  std::string path = dir.file("all.gguf");
  EXPECT_EQ(m64_gguf_writer_save(w, path.c_str(), &err), 0) << err.msg;
  m64_gguf_writer_free(w);
  EXPECT_EQ(dir.list().size(), 1u);  // no temp file left behind
  return read_file(path);
}
}  // namespace

TEST(GgufWriter, RoundTripEveryValueType) {
  for (uint32_t alignment : {0u, 64u}) {
    TempDir dir;
    auto bytes = write_everything(dir, alignment);
    m64_err err;
    GgufPtr gp;
    ASSERT_EQ(open_bytes(bytes, &gp, &err), 0) << err.msg;
    const m64_gguf *g = gp.get();
    EXPECT_EQ(m64_gguf_version(g), 3u);
    EXPECT_EQ(m64_gguf_alignment(g), alignment ? alignment : 32u);
    EXPECT_EQ(m64_gguf_n_kv(g), alignment == 64 ? 21u : 20u);

    uint32_t u32; int32_t i32; uint64_t u64; int64_t i64; float f; double d; int b; m64_str s;
    ASSERT_EQ(m64_gguf_get_u32(g, "t.u8", &u32), 0); EXPECT_EQ(u32, 200u);
    ASSERT_EQ(m64_gguf_get_i32(g, "t.i8", &i32), 0); EXPECT_EQ(i32, -100);
    EXPECT_EQ(m64_gguf_get_u32(g, "t.i8", &u32), M64_ETYPE);  // negative does not fit
    ASSERT_EQ(m64_gguf_get_u32(g, "t.u16", &u32), 0); EXPECT_EQ(u32, 60000u);
    ASSERT_EQ(m64_gguf_get_i32(g, "t.i16", &i32), 0); EXPECT_EQ(i32, -30000);
    ASSERT_EQ(m64_gguf_get_u32(g, "t.u32", &u32), 0); EXPECT_EQ(u32, 4000000000u);
    EXPECT_EQ(m64_gguf_get_i32(g, "t.u32", &i32), M64_ETYPE);
    ASSERT_EQ(m64_gguf_get_u64(g, "t.u32", &u64), 0); EXPECT_EQ(u64, 4000000000u);
    ASSERT_EQ(m64_gguf_get_i32(g, "t.i32", &i32), 0); EXPECT_EQ(i32, -2000000000);
    ASSERT_EQ(m64_gguf_get_f32(g, "t.f32", &f), 0); EXPECT_EQ(f, 1.5f);
    ASSERT_EQ(m64_gguf_get_bool(g, "t.bool", &b), 0); EXPECT_EQ(b, 1);
    EXPECT_EQ(m64_gguf_get_bool(g, "t.u8", &b), M64_ETYPE);
    ASSERT_EQ(m64_gguf_get_str(g, "t.str", &s), 0); EXPECT_EQ(to_string(s), "héllo wörld");
    EXPECT_EQ(m64_gguf_get_str(g, "t.u32", &s), M64_ETYPE);
    ASSERT_EQ(m64_gguf_get_u64(g, "t.u64", &u64), 0); EXPECT_EQ(u64, 1ull << 40);
    EXPECT_EQ(m64_gguf_get_u32(g, "t.u64", &u32), M64_ETYPE);
    ASSERT_EQ(m64_gguf_get_i64(g, "t.i64", &i64), 0); EXPECT_EQ(i64, -(1ll << 40));
    ASSERT_EQ(m64_gguf_get_f64(g, "t.f64", &d), 0); EXPECT_EQ(d, 2.5e100);
    ASSERT_EQ(m64_gguf_get_f32(g, "t.f64", &f), 0); EXPECT_TRUE(std::isinf(f));
    EXPECT_EQ(m64_gguf_get_f32(g, "t.str", &f), M64_ETYPE);
    EXPECT_EQ(m64_gguf_get_u32(g, "nope", &u32), M64_ENOTFOUND);
    EXPECT_EQ(m64_gguf_find_kv(g, "nope"), -1);
    int64_t idx = m64_gguf_find_kv(g, "t.str");
    ASSERT_GE(idx, 0);
    EXPECT_EQ(to_string(m64_gguf_kv_key(g, uint64_t(idx))), "t.str");
    EXPECT_EQ(m64_gguf_kv_type(g, uint64_t(idx)), M64_GGUF_STRING);

    m64_gguf_vtype et; uint64_t n;
    ASSERT_EQ(m64_gguf_get_arr(g, "a.str", &et, &n), 0);
    EXPECT_EQ(et, M64_GGUF_STRING); EXPECT_EQ(n, 5u);
    const char *strs[] = {"<s>", "", "▁the", "\n", "日本"};
    for (uint64_t i = 0; i < 5; i++) {
      ASSERT_EQ(m64_gguf_arr_str(g, "a.str", i, &s), 0);
      EXPECT_EQ(to_string(s), strs[i]);
    }
    EXPECT_EQ(m64_gguf_arr_str(g, "a.str", 5, &s), M64_ENOTFOUND);
    EXPECT_EQ(m64_gguf_arr_f32(g, "a.str", 0, &f), M64_ETYPE);
    EXPECT_EQ(m64_gguf_get_arr(g, "t.u32", &et, &n), M64_ETYPE);
    ASSERT_EQ(m64_gguf_arr_f32(g, "a.f32", 2, &f), 0); EXPECT_EQ(f, 3.25f);
    ASSERT_EQ(m64_gguf_arr_i32(g, "a.i32", 1, &i32), 0); EXPECT_EQ(i32, -2);
    ASSERT_EQ(m64_gguf_arr_i32(g, "a.i32", 3, &i32), 0); EXPECT_EQ(i32, 2147483647);
    ASSERT_EQ(m64_gguf_arr_i32(g, "a.u8", 2, &i32), 0); EXPECT_EQ(i32, 255);
    ASSERT_EQ(m64_gguf_arr_i32(g, "a.i16", 0, &i32), 0); EXPECT_EQ(i32, -5);
    EXPECT_EQ(m64_gguf_arr_i32(g, "a.u64", 0, &i32), M64_ETYPE);
    ASSERT_EQ(m64_gguf_arr_i32(g, "a.u64", 1, &i32), 0); EXPECT_EQ(i32, 7);
    ASSERT_EQ(m64_gguf_arr_f32(g, "a.f64", 0, &f), 0); EXPECT_EQ(f, 0.25f);
    ASSERT_EQ(m64_gguf_get_arr(g, "a.empty", &et, &n), 0); EXPECT_EQ(n, 0u);
    EXPECT_EQ(m64_gguf_arr_i32(g, "a.empty", 0, &i32), M64_ENOTFOUND);

    ASSERT_EQ(m64_gguf_n_tensors(g), 4u);
    const m64_gguf_tensor *t = m64_gguf_tensor_at(g, 0);
    EXPECT_STREQ(t->name, "f32");
    EXPECT_EQ(t->nbytes, 96u);
    float v;
    memcpy(&v, t->data + 4 * 5, 4);
    EXPECT_EQ(v, 2.5f);
    t = m64_gguf_find_tensor(g, "q8");
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->type, uint32_t(M64_GGML_Q8_0));
    EXPECT_EQ(t->n_dims, 3u);
    EXPECT_EQ(t->nbytes, 34u * 2 * 2 * 2);
    EXPECT_EQ(t->data[5], uint8_t(35));
    t = m64_gguf_find_tensor(g, "q4k");
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->nbytes, 288u);
    EXPECT_EQ(t->ne[3], 2u);
    EXPECT_EQ(t->data[287], uint8_t(287));
    t = m64_gguf_find_tensor(g, "f16");
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->nbytes, 6u);
    EXPECT_EQ(m64_gguf_find_tensor(g, "f1"), nullptr);
    for (uint64_t i = 0; i < m64_gguf_n_tensors(g); i++) {
      EXPECT_EQ(m64_gguf_tensor_at(g, i)->offset % m64_gguf_alignment(g), 0u);
      EXPECT_EQ(uint64_t(m64_gguf_tensor_at(g, i)->data - bytes.data()) % m64_gguf_alignment(g), 0u);
    }
    EXPECT_EQ(m64_gguf_tensor_at(g, 4), nullptr);
  }
}

TEST(GgufWriter, RejectsBadInputAndReportsItAtSave) {
  TempDir dir;
  m64_err err;
  EXPECT_EQ(m64_gguf_writer_new(3), nullptr);
  m64_gguf_writer *w = m64_gguf_writer_new(0);
  EXPECT_EQ(m64_gguf_w_u32(w, "k", 1), 0);
  EXPECT_EQ(m64_gguf_w_u32(w, "k", 2), M64_EFORMAT);
  uint64_t ne[] = {33};
  EXPECT_EQ(m64_gguf_w_tensor(w, "q", M64_GGML_Q4_0, 1, ne, nullptr), M64_EFORMAT);
  EXPECT_EQ(m64_gguf_writer_save(w, dir.file("x.gguf").c_str(), &err), M64_EFORMAT);
  EXPECT_NE(std::string(err.msg).find("duplicate key 'k'"), std::string::npos) << err.msg;
  EXPECT_FALSE(file_exists(dir.file("x.gguf")));
  m64_gguf_writer_free(w);

  w = m64_gguf_writer_new(0);
  EXPECT_EQ(m64_gguf_writer_save(w, (dir.path() + "/no/such/dir/x.gguf").c_str(), &err), M64_EIO);
  EXPECT_GT(strlen(err.msg), 0u);
  m64_gguf_writer_free(w);
  EXPECT_TRUE(dir.list().empty());
}

// Every prefix of a valid file must be rejected cleanly (run under ASan to catch overreads).
TEST(GgufReader, EveryTruncationFails) {
  TempDir dir;
  m64_gguf_writer *w = m64_gguf_writer_new(0);
  m64_gguf_w_str(w, "general.architecture", "llama");
  m64_gguf_w_u32(w, "llama.block_count", 1);
  const char *toks[] = {"a", "bc", ""};
  m64_gguf_w_arr_str(w, "tokenizer.ggml.tokens", toks, 3);
  float sc[] = {1, 2, 3};
  m64_gguf_w_arr_f32(w, "tokenizer.ggml.scores", sc, 3);
  float data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  uint64_t ne[] = {4, 2};
  m64_gguf_w_tensor(w, "a", M64_GGML_F32, 2, ne, data);
  m64_gguf_w_tensor(w, "b", M64_GGML_F32, 2, ne, data);
  m64_err err;
  ASSERT_EQ(m64_gguf_writer_save(w, dir.file("t.gguf").c_str(), &err), 0) << err.msg;
  m64_gguf_writer_free(w);
  auto full = read_file(dir.file("t.gguf"));
  {
    GgufPtr g;
    ASSERT_EQ(open_bytes(full, &g, &err), 0) << err.msg;
  }
  for (size_t n = 0; n < full.size(); n++) {
    std::vector<uint8_t> cut(full.begin(), full.begin() + n);
    m64_gguf *g = nullptr;
    err.msg[0] = 0;
    int rc = m64_gguf_open_memory(cut.empty() ? nullptr : cut.data(), cut.size(), &g, &err);
    ASSERT_NE(rc, 0) << "prefix of " << n << " bytes opened";
    ASSERT_EQ(g, nullptr);
    ASSERT_GT(strlen(err.msg), 0u) << n;
  }
}

// ---- the real models

namespace {
std::string model(const char *name) { return std::string(M64_SHARED_MODELS) + "/" + name; }

GgufPtr open_model(const char *name) {
  std::string path = model(name);
  if (!file_exists(path)) return nullptr;
  m64_gguf *g = nullptr;
  m64_err err;
  EXPECT_EQ(m64_gguf_open(path.c_str(), &g, &err), 0) << err.msg;
  return GgufPtr(g);
}
}  // namespace

TEST(GgufModels, Stories260K) {
  if (!file_exists(model("stories260K.gguf")))
    GTEST_SKIP() << "stories260K.gguf not found in " << M64_SHARED_MODELS;
  GgufPtr gp = open_model("stories260K.gguf");
  ASSERT_TRUE(gp);
  const m64_gguf *g = gp.get();
  EXPECT_EQ(m64_gguf_version(g), 3u);
  m64_str s;
  ASSERT_EQ(m64_gguf_get_str(g, "general.architecture", &s), 0);
  EXPECT_EQ(to_string(s), "llama");
  const m64_gguf_tensor *t = m64_gguf_find_tensor(g, "token_embd.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->type, uint32_t(M64_GGML_F32));
  EXPECT_EQ(t->n_dims, 2u);
  EXPECT_EQ(t->ne[0], 64u);
  EXPECT_EQ(t->ne[1], 512u);
  uint32_t blocks;
  ASSERT_EQ(m64_gguf_get_u32(g, "llama.block_count", &blocks), 0);
  EXPECT_EQ(blocks, 5u);
  m64_gguf_vtype et;
  uint64_t n;
  ASSERT_EQ(m64_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n), 0);
  EXPECT_EQ(et, M64_GGUF_STRING);
  EXPECT_EQ(n, 512u);
  ASSERT_EQ(m64_gguf_arr_str(g, "tokenizer.ggml.tokens", 1, &s), 0);
  EXPECT_EQ(to_string(s), "<s>");
  EXPECT_EQ(m64_gguf_file_size(g), 1185376u);
}

TEST(GgufModels, Llama2TinyRandom) {
  if (!file_exists(model("llama-2-tiny-random.gguf")))
    GTEST_SKIP() << "llama-2-tiny-random.gguf not found in " << M64_SHARED_MODELS;
  GgufPtr gp = open_model("llama-2-tiny-random.gguf");
  ASSERT_TRUE(gp);
  uint64_t n;
  ASSERT_EQ(m64_gguf_get_arr(gp.get(), "tokenizer.ggml.tokens", nullptr, &n), 0);
  EXPECT_EQ(n, 32000u);
  int f16 = 0;
  for (uint64_t i = 0; i < m64_gguf_n_tensors(gp.get()); i++)
    f16 += m64_gguf_tensor_at(gp.get(), i)->type == M64_GGML_F16;
  EXPECT_GT(f16, 0);
}

TEST(GgufModels, Llama3BpeTiny) {
  if (!file_exists(model("llama3-bpe-tiny.gguf")))
    GTEST_SKIP() << "llama3-bpe-tiny.gguf not found in " << M64_SHARED_MODELS;
  GgufPtr gp = open_model("llama3-bpe-tiny.gguf");
  ASSERT_TRUE(gp);
  const m64_gguf *g = gp.get();
  uint64_t n_tok, n_merges;
  ASSERT_EQ(m64_gguf_get_arr(g, "tokenizer.ggml.tokens", nullptr, &n_tok), 0);
  EXPECT_EQ(n_tok, 128256u);
  ASSERT_EQ(m64_gguf_get_arr(g, "tokenizer.ggml.merges", nullptr, &n_merges), 0);
  EXPECT_EQ(n_merges, 280147u);
  // Random access over all 400k strings: O(1) each.
  uint64_t total = 0;
  m64_str s;
  for (uint64_t i = n_tok; i-- > 0;) {
    ASSERT_EQ(m64_gguf_arr_str(g, "tokenizer.ggml.tokens", i, &s), 0);
    total += s.len;
  }
  for (uint64_t i = 0; i < n_merges; i += 1) {
    ASSERT_EQ(m64_gguf_arr_str(g, "tokenizer.ggml.merges", i, &s), 0);
    total += s.len;
  }
  EXPECT_GT(total, 0u);
  ASSERT_EQ(m64_gguf_arr_str(g, "tokenizer.ggml.tokens", 128000, &s), 0);
  EXPECT_EQ(to_string(s), "<|begin_of_text|>");
  int q8 = 0;
  for (uint64_t i = 0; i < m64_gguf_n_tensors(g); i++)
    q8 += m64_gguf_tensor_at(g, i)->type == M64_GGML_Q8_0;
  EXPECT_GT(q8, 0);
}

// Single-byte mutations of a valid file: each must open or fail cleanly, never crash.
TEST(GgufReader, ByteMutationsNeverCrash) {
  TempDir dir;
  m64_gguf_writer *w = m64_gguf_writer_new(0);
  m64_gguf_w_str(w, "general.architecture", "llama");
  const char *toks[] = {"a", "bc", ""};
  m64_gguf_w_arr_str(w, "tokenizer.ggml.tokens", toks, 3);
  int32_t types[] = {1, 2, 3};
  m64_gguf_w_arr_i32(w, "tokenizer.ggml.token_type", types, 3);
  uint8_t q[34 * 2] = {};
  uint64_t ne[] = {32, 2};
  m64_gguf_w_tensor(w, "q", M64_GGML_Q8_0, 2, ne, q);
  m64_err err;
  ASSERT_EQ(m64_gguf_writer_save(w, dir.file("t.gguf").c_str(), &err), 0) << err.msg;
  m64_gguf_writer_free(w);
  auto full = read_file(dir.file("t.gguf"));
  int opened = 0, failed = 0;
  for (size_t i = 0; i < full.size(); i++) {
    for (uint8_t x : {uint8_t(0), uint8_t(0xff), uint8_t(full[i] + 1), uint8_t(0x80)}) {
      std::vector<uint8_t> f(full);
      f[i] = x;
      m64_gguf *g = nullptr;
      err.msg[0] = 0;
      if (m64_gguf_open_memory(f.data(), f.size(), &g, &err) == 0) {
        opened++;
        // Touch everything the reader hands out.
        for (uint64_t k = 0; k < m64_gguf_n_kv(g); k++) (void)m64_gguf_kv_key(g, k);
        uint64_t n = 0;
        m64_str s;
        if (m64_gguf_get_arr(g, "tokenizer.ggml.tokens", nullptr, &n) == 0)
          for (uint64_t k = 0; k < n; k++) (void)m64_gguf_arr_str(g, "tokenizer.ggml.tokens", k, &s);
        for (uint64_t k = 0; k < m64_gguf_n_tensors(g); k++) {
          const m64_gguf_tensor *t = m64_gguf_tensor_at(g, k);
          if (t->nbytes) {
            ASSERT_LE(t->data + t->nbytes, f.data() + f.size());
          }
        }
        m64_gguf_close(g);
      } else {
        failed++;
        ASSERT_GT(strlen(err.msg), 0u);
      }
    }
  }
  EXPECT_GT(opened, 0);
  EXPECT_GT(failed, 0);
}
