// hostile_test — issue 21: no crash and no false success on a hostile bundle. Hand-made
// variants of a real bundle (the fixture's tiny_a.m64: `m64c build` output with native
// code), one per consistency rule (docs/FORMAT.md, "Consistency rules checked at open") and
// per kind of corrupt native object, each with every hash made to agree so that only the
// rule can notice. Each must be a clean error naming the field: at open (the C API and
// m64run), or, for the native object, before dlopen even when the code is trusted
// (--trust-bundle-native / trust_bundle_native = 1), never a SIGBUS or SIGSEGV.
#include <gtest/gtest.h>

#include <elf.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

extern "C" {
#include "bundle/bundle_internal.h"
#include "m64_formats.h"
#include "m64_runtime.h"
}

namespace {

const std::string kArt = M64_SECURITY_ARTIFACTS;
const std::string kBin = M64_BINARY_DIR;
const std::string kRun = kBin + "/cmd/m64run", kC = kBin + "/cmd/m64c";
[[maybe_unused]] const int kKeySet = setenv("M64_LOCAL_KEY", (kArt + "/local.key").c_str(), 1);

std::string ReadFile(const std::string &p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}
void WriteFile(const std::string &p, const std::string &s) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << s;
}

struct TempDir {
  std::string path;
  TempDir() {
    std::string t = kBin + "/test/security/hostile-XXXXXX";
    path = mkdtemp(&t[0]) ? t : "";
  }
  ~TempDir() {
    if (!path.empty()) (void)!system(("rm -rf '" + path + "'").c_str());
  }
};

uint8_t *P(std::string &b, uint64_t at) { return reinterpret_cast<uint8_t *>(&b[0]) + at; }

// Every section stored as is gets its hash back, then the header (as an attacker would).
void Rehash(std::string &b) {
  const uint32_t n = m64__rd_u32(P(b, BH_N_SECTIONS));
  const bool z = m64__rd_u32(P(b, BH_FLAGS)) & BH_F_COMPRESSED;
  for (uint32_t i = 0; i < n; i++) {
    uint8_t *r = P(b, BH_SIZE + (uint64_t)i * SR_SIZE);
    if (m64__rd_u32(r + SR_KIND) == M64_SEC_SEGMENT || (z && m64__rd_u32(r + SR_CODEC))) continue;
    m64_sha256 h;
    m64_sha256_init(&h);
    m64_sha256_update(&h, P(b, m64__rd_u64(r + SR_OFFSET)), (size_t)m64__rd_u64(r + SR_SIZE_FIELD));
    m64_sha256_final(&h, r + SR_SHA256);
  }
  m64_sha256 h;
  m64_sha256_init(&h);
  m64_sha256_update(&h, P(b, 0), BH_SHA256);
  m64_sha256_update(&h, P(b, BH_SIZE), (size_t)n * SR_SIZE);
  m64_sha256_final(&h, P(b, BH_SHA256));
}

// Where things are in a bundle's bytes.
struct Map {
  uint64_t index = 0;                  // LAYER_INDEX file offset (stored as is)
  uint32_t n_layers = 0, n_sections = 0, layer_record = LR_SIZE;
  uint64_t native = 0, native_size = 0; // NATIVE section: offset, size
  uint32_t native_rec = 0, segment_rec = 0;
  std::vector<m64_layer_entry> layers;
  std::vector<m64_tensor_entry> tensors;
  uint64_t LayerRec(uint32_t i) const { return index + LI_HEADER_SIZE + (uint64_t)i * layer_record; }
  uint64_t TensorRec(uint32_t i) const {
    return index + LI_HEADER_SIZE + (uint64_t)n_layers * layer_record + (uint64_t)i * TR_SIZE;
  }
  uint64_t Rec(uint32_t i) const { return BH_SIZE + (uint64_t)i * SR_SIZE; }
};

Map Locate(const std::string &b) {
  Map m;
  m64_bundle *mb = nullptr;
  m64_err e{};
  EXPECT_EQ(m64_bundle_open_memory(b.data(), b.size(), &mb, &e), 0) << e.msg;
  if (!mb) return m;
  m.n_sections = m64_bundle_n_sections(mb);
  for (uint32_t i = 0; i < m.n_sections; i++) {
    const m64_section *s = m64_bundle_section_at(mb, i);
    if (s->kind == M64_SEC_LAYER_INDEX) m.index = s->offset;
    if (s->kind == M64_SEC_NATIVE) m.native = s->offset, m.native_size = s->stored_size, m.native_rec = i;
    if (s->kind == M64_SEC_SEGMENT && !strcmp(s->name, "segment.0")) m.segment_rec = i;
  }
  m.n_layers = m64_bundle_n_layers(mb);
  m.layer_record = m64_bundle_compressed(mb) ? LR_SIZE_Z : LR_SIZE;
  for (uint32_t i = 0; i < m.n_layers; i++) m.layers.push_back(*m64_bundle_layer(mb, i));
  for (uint32_t i = 0; i < m64_bundle_n_tensors(mb); i++) m.tensors.push_back(*m64_bundle_tensor(mb, i));
  m64_bundle_close(mb);
  return m;
}

// Opening must fail with M64_EFORMAT and a message holding every one of `names`.
void ExpectRejected(const std::string &b, std::initializer_list<const char *> names) {
  m64_bundle *mb = nullptr;
  m64_err e{};
  const int rc = m64_bundle_open_memory(b.data(), b.size(), &mb, &e);
  m64_bundle_close(mb);
  EXPECT_EQ(rc, M64_EFORMAT) << "opened: a false success";
  for (const char *n : names) EXPECT_NE(std::string(e.msg).find(n), std::string::npos) << e.msg;
}

struct Run {
  int status;
  std::string err;
};
// m64run on bytes b, as a separate process (a crash must show as a signal, not end this test).
Run M64run(const TempDir &d, const std::string &b, const std::string &flags) {
  const std::string path = d.path + "/case.m64";
  WriteFile(path, b);
  const std::string cmd = "cd '" + d.path + "' && ulimit -c 0 && exec " + kRun + " case.m64 -p hi -n 2 -t 1 " +
                          flags + " >/dev/null 2>err";
  Run r{system(cmd.c_str()), ReadFile(d.path + "/err")};
  return r;
}
void ExpectCleanError(const Run &r, const char *name) {
  EXPECT_TRUE(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 1)
      << (WIFSIGNALED(r.status) ? "killed by signal " + std::to_string(WTERMSIG(r.status)) : "status " + std::to_string(r.status))
      << "\n" << r.err;
  EXPECT_EQ(r.err.rfind("m64run: error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(name), std::string::npos) << r.err;
}

std::string Tiny() { return ReadFile(kArt + "/tiny_a.m64"); }

// ---------------------------------------------------------------- consistency at open
TEST(Consistency, TheFixtureIsConsistent) {
  const std::string b = Tiny();
  m64_bundle *mb = nullptr;
  m64_err e{};
  ASSERT_EQ(m64_bundle_open_memory(b.data(), b.size(), &mb, &e), 0) << e.msg;
  m64_bundle_close(mb);
  std::string c = b;
  Rehash(c); // the helper changes nothing of a consistent bundle
  EXPECT_EQ(c, b);
}

// The first false success: a segment whose recorded size is one byte off.
TEST(Consistency, ASegmentOneByteLongerOrShorterThanItsLayers) {
  TempDir d;
  const std::string good = Tiny();
  const Map m = Locate(good);
  for (int delta : {+1, -1}) {
    std::string b = good;
    uint8_t *r = P(b, m.Rec(m.segment_rec));
    m64__wr_u64(r + SR_SIZE_FIELD, m64__rd_u64(r + SR_SIZE_FIELD) + (uint64_t)(int64_t)delta);
    Rehash(b);
    ExpectRejected(b, {"segment", delta > 0 ? "segment.0" : "blk.1"});
    ExpectCleanError(M64run(d, b, ""), "segment");
  }
}

// The second: a layer record shrunk, its old hash kept.
TEST(Consistency, ALayerShrunkKeepingItsOldHash) {
  TempDir d;
  const std::string good = Tiny();
  const Map m = Locate(good);
  ASSERT_GE(m.n_layers, 2u);
  const m64_layer_entry &l = m.layers[1];
  const uint32_t last = l.first_tensor + l.n_tensors - 1;
  const m64_tensor_entry &t = m.tensors[last];
  // the layer alone: its last tensor now ends past it
  std::string b = good;
  m64__wr_u64(P(b, m.LayerRec(1) + LR_SIZE_FIELD), l.size - 64);
  Rehash(b);
  ExpectRejected(b, {"'blk.0'"});
  ExpectCleanError(M64run(d, b, ""), "blk.0");
  // with its last tensor's byte count shrunk to match: the tensor no longer fits its shape
  m64__wr_u64(P(b, m.TensorRec(last) + TR_NBYTES), t.nbytes - 64);
  Rehash(b);
  ExpectRejected(b, {"nbytes", t.name});
  // with whole rows off its shape too: every record agrees, but not the metadata
  const uint64_t row = t.nbytes / t.ne[1];
  b = good;
  m64__wr_u64(P(b, m.LayerRec(1) + LR_SIZE_FIELD), l.size - row);
  m64__wr_u64(P(b, m.TensorRec(last) + TR_NBYTES), t.nbytes - row);
  m64__wr_u64(P(b, m.TensorRec(last) + TR_NE + 8), t.ne[1] - 1);
  Rehash(b);
  ExpectRejected(b, {"model.weight_bytes"});
  ExpectCleanError(M64run(d, b, ""), "model.weight_bytes");
  // a layer longer than its tensors: its hash would cover bytes no tensor owns
  b = good;
  m64__wr_u64(P(b, m.LayerRec(1) + LR_SIZE_FIELD), l.size + 1);
  Rehash(b);
  ExpectRejected(b, {"'blk.0'", "recorded size", "hash covers"});
}

TEST(Consistency, TensorsSitWhereThePlannerPutsThem) {
  const std::string good = Tiny();
  const Map m = Locate(good);
  const m64_layer_entry &l = m.layers[1];
  std::string b = good; // every tensor 64 bytes later, the layer grown to match
  for (uint32_t t = l.first_tensor; t < l.first_tensor + l.n_tensors; t++)
    m64__wr_u64(P(b, m.TensorRec(t) + TR_OFFSET), m.tensors[t].offset + 64);
  m64__wr_u64(P(b, m.LayerRec(1) + LR_SIZE_FIELD), l.size + 64);
  Rehash(b);
  ExpectRejected(b, {m.tensors[l.first_tensor].name, "offset 64"});
  b = good; // a type that does not match the byte count
  m64__wr_u32(P(b, m.TensorRec(0) + TR_TYPE), M64_GGML_F16);
  Rehash(b);
  ExpectRejected(b, {m.tensors[0].name, "F16"});
  b = good; // two tensors of one name
  memcpy(P(b, m.TensorRec(1) + TR_NAME), m.tensors[0].name, sizeof m.tensors[0].name);
  Rehash(b);
  ExpectRejected(b, {"two tensors are named"});
}

TEST(Consistency, SectionsAndTheFileAgree) {
  TempDir d;
  const std::string good = Tiny();
  const Map m = Locate(good);
  std::string b = good + std::string(4096, '\0'); // bytes past the last section
  m64__wr_u64(P(b, BH_FILE_SIZE), b.size());
  Rehash(b);
  ExpectRejected(b, {"last section"});
  ExpectCleanError(M64run(d, b, ""), "last section");
  b = good; // a reserved header field
  P(b, BH_RESERVED1)[3] = 1;
  Rehash(b);
  ExpectRejected(b, {"reserved"});
  b = good; // a reserved section-record field
  P(b, m.Rec(0) + SR_RESERVED1)[0] = 1;
  Rehash(b);
  ExpectRejected(b, {"reserved", "metadata"});
  b = good; // a second METADATA section: tools would disagree on which one counts
  m64__wr_u32(P(b, m.Rec(1) + SR_KIND), M64_SEC_METADATA);
  Rehash(b);
  ExpectRejected(b, {"METADATA"});
  b = good; // a section 64-byte misaligned
  uint8_t *r = P(b, m.Rec(0));
  m64__wr_u64(r + SR_OFFSET, m64__rd_u64(r + SR_OFFSET) - 8);
  Rehash(b);
  ExpectRejected(b, {"aligned", "metadata"});
}

TEST(Consistency, TheNativeHeaderAgreesWithItsSection) {
  TempDir d;
  const std::string good = Tiny();
  const Map m = Locate(good);
  ASSERT_NE(m.native, 0u);
  std::string b = good;
  m64__wr_u64(P(b, m.native + 48), m64__rd_u64(P(b, m.native + 48)) + 1); // code size one too many
  Rehash(b);
  ExpectRejected(b, {"code size"});
  ExpectCleanError(M64run(d, b, "--trust-bundle-native"), "code size");
}

// A compressed bundle whose LAYER_INDEX (compressed by the writer) is rewritten stored as
// is at the end of the file, so that its records can be edited; the old bytes stay as a gap.
std::string IndexStoredAsIs(const std::string &good) {
  m64_bundle *mb = nullptr;
  m64_err e{};
  EXPECT_EQ(m64_bundle_open_memory(good.data(), good.size(), &mb, &e), 0) << e.msg;
  if (!mb) return good;
  std::string index;
  uint32_t rec = 0;
  for (uint32_t i = 0; i < m64_bundle_n_sections(mb); i++) {
    const m64_section *s = m64_bundle_section_at(mb, i);
    if (s->kind == M64_SEC_LAYER_INDEX) index.assign((const char *)s->data, s->size), rec = i;
  }
  m64_bundle_close(mb);
  std::string b = good;
  const uint64_t at = (good.size() + 63) & ~63ull;
  b.resize(at, '\0');
  b += index;
  uint8_t *r = P(b, BH_SIZE + (uint64_t)rec * SR_SIZE);
  m64__wr_u32(r + SR_CODEC, 0);
  m64__wr_u64(r + SR_OFFSET, at);
  m64__wr_u64(r + SR_SIZE_FIELD, index.size());
  m64__wr_u64(r + SR_RAW_SIZE, index.size());
  m64__wr_u64(P(b, BH_FILE_SIZE), b.size());
  Rehash(b);
  return b;
}

// Compressed bundles: frames fill each segment back to back; sizes agree with frame headers.
TEST(Consistency, CompressedFramesFillTheirSegments) {
  TempDir d;
  const std::string z = d.path + "/z.m64";
  ASSERT_EQ(system((kC + " compress " + kArt + "/tiny_a.m64 -o " + z + " -q").c_str()), 0);
  const std::string base = IndexStoredAsIs(ReadFile(z));
  const Map m = Locate(base);
  ASSERT_EQ(m.layer_record, LR_SIZE_Z);
  ASSERT_GE(m.n_layers, 2u);
  std::string b = base; // a gap between two layers' frames
  m64__wr_u64(P(b, m.LayerRec(1) + LR_STORED_OFFSET), m.layers[1].stored_offset + 1);
  Rehash(b);
  ExpectRejected(b, {"stored_offset"});
  b = base; // a layer's frames one byte short of what its frames hold
  m64__wr_u64(P(b, m.LayerRec(2) + LR_STORED_SIZE), m.layers[2].stored_size - 1);
  Rehash(b);
  ExpectRejected(b, {"segment"});
  b = base; // a layer's raw offset away from where the planner puts it (unused: still wrong)
  m64__wr_u64(P(b, m.LayerRec(2) + LR_OFFSET), m.layers[2].offset + 65536);
  Rehash(b);
  ExpectRejected(b, {"'blk.1'", "belongs at"});
  b = base; // a chunk size the decoder does not take
  m64__wr_u32(P(b, m.LayerRec(0) + LR_CHUNK_SIZE), 5000);
  Rehash(b);
  ExpectRejected(b, {"chunk_size"});
  ExpectCleanError(M64run(d, b, ""), "chunk_size");
}

// ---------------------------------------------------------------- the native object
// The fixture's native code as a bundle whose object was changed by edit (the mark no
// longer checks out: so refused by default, loaded with trust).
std::string WithObject(const std::function<void(std::string &obj, const Map &m)> &edit) {
  std::string b = Tiny();
  const Map m = Locate(b);
  std::string obj = b.substr(m.native + 64, (size_t)m64__rd_u64(P(b, m.native + 48)));
  edit(obj, m);
  std::string sec = b.substr(m.native, 64) + obj;
  m64__wr_u32(P(sec, 12), 0); // no mark
  m64__wr_u64(P(sec, 48), obj.size());
  b.replace(m.native, sec.size(), sec); // the object does not grow: the rest is a gap
  m64__wr_u64(P(b, m.Rec(m.native_rec) + SR_SIZE_FIELD), sec.size());
  Rehash(b);
  return b;
}

// The C API with trust_bundle_native = 1: must be a clean error naming what.
void ExpectLoadRefused(const TempDir &d, const std::string &b, const char *what) {
  const std::string path = d.path + "/obj.m64";
  WriteFile(path, b);
  m64_session_options o{};
  o.trust_bundle_native = 1;
  o.n_threads = 1;
  m64_session *s = nullptr;
  m64_err e{};
  EXPECT_EQ(m64_session_open(path.c_str(), &o, &s, &e), M64_EFORMAT) << e.msg;
  EXPECT_EQ(s, nullptr);
  m64_session_close(s);
  EXPECT_NE(std::string(e.msg).find(what), std::string::npos) << e.msg;
  o.trust_bundle_native = 0; // by default it is refused before anything reads it
  EXPECT_EQ(m64_session_open(path.c_str(), &o, &s, &e), M64_EUNTRUSTED) << e.msg;
  m64_session_close(s);
}

// The SIGBUS: an object cut short is mapped past the end of its file.
TEST(NativeObject, ATruncatedObjectIsAnErrorNotASigbus) {
  TempDir d;
  for (double frac : {0.25, 0.5, 0.9, 0.999}) {
    std::string b = WithObject([frac](std::string &obj, const Map &) { obj.resize((size_t)(obj.size() * frac)); });
    ExpectCleanError(M64run(d, b, "--trust-bundle-native"), "native code: ");
    ExpectLoadRefused(d, b, "native code: ");
  }
  std::string b = WithObject([](std::string &obj, const Map &) { obj.resize(obj.size() / 2); });
  ExpectLoadRefused(d, b, "past the object's end");
}

// Elf64 structures inside the object (the fixture's is a clang -shared x86-64 object).
Elf64_Ehdr Ehdr(const std::string &o) {
  Elf64_Ehdr h;
  memcpy(&h, o.data(), sizeof h);
  return h;
}
Elf64_Phdr Phdr(const std::string &o, unsigned i) {
  Elf64_Phdr p;
  memcpy(&p, o.data() + Ehdr(o).e_phoff + i * sizeof p, sizeof p);
  return p;
}
// File offset of the d_val of the dynamic entry with tag (0 when absent).
size_t DynVal(const std::string &o, int64_t tag) {
  for (unsigned i = 0; i < Ehdr(o).e_phnum; i++) {
    const Elf64_Phdr p = Phdr(o, i);
    if (p.p_type != PT_DYNAMIC) continue;
    for (size_t at = p.p_offset; at + 16 <= p.p_offset + p.p_filesz; at += 16) {
      Elf64_Dyn dyn;
      memcpy(&dyn, o.data() + at, sizeof dyn);
      if (dyn.d_tag == tag) return at + 8;
    }
  }
  return 0;
}

// The SIGSEGV: dynamic-section addresses outside the image. Each one the loader
// dereferences while it loads, set wild.
TEST(NativeObject, WildDynamicSectionAddressesAreErrorsNotCrashes) {
  TempDir d;
  const struct { int64_t tag; const char *name; } tags[] = {
      {DT_STRTAB, "DT_STRTAB"}, {DT_SYMTAB, "DT_SYMTAB"}, {DT_RELA, "DT_RELA"}, {DT_JMPREL, "DT_JMPREL"},
      {DT_GNU_HASH, "DT_GNU_HASH"}, {DT_VERSYM, "DT_VERSYM"}, {DT_VERNEED, "DT_VERNEED"},
      {DT_INIT_ARRAY, "DT_INIT_ARRAY"}, {DT_INIT, "DT_INIT"}, {DT_STRSZ, "DT_STRTAB"},
      {DT_RELASZ, "DT_RELA"}};
  for (const auto &t : tags)
    for (uint64_t wild : {0x7fff00000000ull, 0x10000000ull, ~0ull}) {
      SCOPED_TRACE(t.name + std::string(" = ") + std::to_string(wild));
      bool present = true;
      std::string b = WithObject([&](std::string &obj, const Map &) {
        const size_t at = DynVal(obj, t.tag);
        present = at != 0;
        if (present) m64__wr_u64(P(obj, at), wild);
      });
      if (!present) continue;
      ExpectLoadRefused(d, b, t.name);
      ExpectCleanError(M64run(d, b, "--trust-bundle-native"), t.name);
    }
}

TEST(NativeObject, ProgramHeadersMustDescribeTheObject) {
  TempDir d;
  // e_machine of another architecture
  std::string b = WithObject([](std::string &obj, const Map &) { P(obj, 18)[0] ^= 0x7f; });
  ExpectLoadRefused(d, b, "e_machine");
  // the writable PT_LOAD's file bytes past the end of the object
  b = WithObject([](std::string &obj, const Map &) {
    const Elf64_Ehdr h = Ehdr(obj);
    for (unsigned i = 0; i < h.e_phnum; i++)
      if (Phdr(obj, i).p_type == PT_LOAD && (Phdr(obj, i).p_flags & PF_W))
        m64__wr_u64(P(obj, h.e_phoff + i * sizeof(Elf64_Phdr) + 32), obj.size()); // p_filesz
  });
  ExpectLoadRefused(d, b, "PT_LOAD");
  ExpectCleanError(M64run(d, b, "--trust-bundle-native"), "PT_LOAD");
  // PT_DYNAMIC outside every PT_LOAD
  b = WithObject([](std::string &obj, const Map &) {
    const Elf64_Ehdr h = Ehdr(obj);
    for (unsigned i = 0; i < h.e_phnum; i++)
      if (Phdr(obj, i).p_type == PT_DYNAMIC) m64__wr_u64(P(obj, h.e_phoff + i * sizeof(Elf64_Phdr) + 16), 0x7fff0000ull);
  });
  ExpectLoadRefused(d, b, "PT_DYNAMIC");
  // program headers past the end of the object
  b = WithObject([](std::string &obj, const Map &) { m64__wr_u64(P(obj, 32), obj.size() - 8); });
  ExpectLoadRefused(d, b, "e_phoff");
}

// The dynamic section restates what the section headers say (a linker writes both): one
// changed alone would run the wrong code (DT_INIT inside a function) or skip work the
// loader must do. Program headers must map each section with the permissions it needs.
TEST(NativeObject, DynamicEntriesAndSegmentsAgreeWithTheSections) {
  TempDir d;
  const struct { int64_t tag; int64_t delta; const char *name; } moved[] = {
      {DT_INIT, 1, "DT_INIT"}, {DT_FINI, -1, "DT_FINI"}, {DT_RELASZ, -24, "DT_RELA"},
      {DT_PLTRELSZ, -24, "DT_JMPREL"}, {DT_STRSZ, -1, "string table"}, {DT_INIT_ARRAY, 8, "DT_INIT_ARRAY"}};
  for (const auto &m : moved) {
    SCOPED_TRACE(m.name);
    std::string b = WithObject([&](std::string &obj, const Map &) {
      const size_t at = DynVal(obj, m.tag);
      ASSERT_NE(at, 0u);
      m64__wr_u64(P(obj, at), m64__rd_u64(P(obj, at)) + (uint64_t)m.delta);
    });
    ExpectLoadRefused(d, b, m.name);
    ExpectCleanError(M64run(d, b, "--trust-bundle-native"), m.name);
  }
  // DT_VERSYM dropped (its tag made DT_DEBUG): glibc would dereference it anyway
  std::string b = WithObject([](std::string &obj, const Map &) {
    const size_t at = DynVal(obj, DT_VERSYM);
    ASSERT_NE(at, 0u);
    m64__wr_u64(P(obj, at - 8), DT_DEBUG);
  });
  ExpectLoadRefused(d, b, "DT_VERSYM");
  // the first PT_LOAD unreadable (p_flags 0): the loader reads the hash and string tables there
  b = WithObject([](std::string &obj, const Map &) { m64__wr_u32(P(obj, Ehdr(obj).e_phoff + 4), 0); });
  ExpectLoadRefused(d, b, "PT_LOAD");
  ExpectCleanError(M64run(d, b, "--trust-bundle-native"), "PT_LOAD");
  // the code segment mapped from the file's first bytes (its ELF header) instead
  b = WithObject([](std::string &obj, const Map &) {
    const Elf64_Ehdr h = Ehdr(obj);
    for (unsigned i = 0; i < h.e_phnum; i++)
      if (Phdr(obj, i).p_type == PT_LOAD && (Phdr(obj, i).p_flags & PF_X))
        m64__wr_u64(P(obj, h.e_phoff + i * sizeof(Elf64_Phdr) + 8), 0);
  });
  ExpectLoadRefused(d, b, "PT_LOAD");
}

#if defined(__x86_64__)
// Relocations glibc applies without looking: the first DT_RELACOUNT entries as RELATIVE,
// the PLT's entries as slots to bind; and symbols that cannot be what the loader expects.
TEST(NativeObject, RelocationsAndSymbolsTheLoaderTrusts) {
  TempDir d;
  std::string b = WithObject([](std::string &obj, const Map &) {
    const size_t at = DynVal(obj, DT_RELACOUNT);
    ASSERT_NE(at, 0u);
    m64__wr_u64(P(obj, at), m64__rd_u64(P(obj, at)) + 1); // one past the RELATIVE ones
  });
  ExpectLoadRefused(d, b, "DT_RELACOUNT");
  ExpectCleanError(M64run(d, b, "--trust-bundle-native"), "DT_RELACOUNT");
  b = WithObject([](std::string &obj, const Map &) {
    const size_t at = DynVal(obj, DT_JMPREL);
    ASSERT_NE(at, 0u);
    ASSERT_EQ(Phdr(obj, 0).p_offset, Phdr(obj, 0).p_vaddr);
    m64__wr_u64(P(obj, m64__rd_u64(P(obj, at)) + 8), 0); // the first PLT slot: R_X86_64_NONE
  });
  ExpectLoadRefused(d, b, "PLT");
  ExpectCleanError(M64run(d, b, "--trust-bundle-native"), "PLT");
  b = WithObject([](std::string &obj, const Map &) {
    const size_t at = DynVal(obj, DT_SYMTAB);
    ASSERT_NE(at, 0u);
    P(obj, m64__rd_u64(P(obj, at)) + 2 * sizeof(Elf64_Sym) + 4)[0] = 0; // symbol 2: local, undefined
  });
  ExpectLoadRefused(d, b, "symbol 2");
}
#endif

#if defined(__x86_64__)
// A relocation that would write outside the image, or name a symbol past the table.
TEST(NativeObject, RelocationsStayInsideTheImage) {
  TempDir d;
  for (int field : {0, 8}) {
    std::string b = WithObject([field](std::string &obj, const Map &) {
      const size_t at = DynVal(obj, DT_RELA);
      ASSERT_NE(at, 0u);
      const uint64_t va = m64__rd_u64(P(obj, at));
      // the table lies in the first PT_LOAD, whose file offsets equal its addresses
      ASSERT_EQ(Phdr(obj, 0).p_offset, Phdr(obj, 0).p_vaddr);
      uint8_t *rel = P(obj, va);
      if (field == 0) m64__wr_u64(rel, 0x7fff00000000ull); // r_offset
      else m64__wr_u64(rel + 8, (uint64_t)0xfffffu << 32 | R_X86_64_GLOB_DAT); // r_info: symbol 2^20
    });
    ExpectLoadRefused(d, b, field == 0 ? "r_offset" : "symbol");
    ExpectCleanError(M64run(d, b, "--trust-bundle-native"), field == 0 ? "r_offset" : "symbol");
  }
}
#endif

}  // namespace
