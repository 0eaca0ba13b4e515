// runtime_test — wasm-rt.h implementation (traps, guard pages, stack depth, memories,
// tables) and the native loader, driven through real wasm2c output compiled at test time.
#include <gtest/gtest.h>

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "m64_wasm.h"
#include "native.h"
#include "native_abi.h"

#ifndef M64_TEST_CLANG
#define M64_TEST_CLANG "clang-19"
#endif
#ifndef M64_TEST_WASM2C
#define M64_TEST_WASM2C M64_SOURCE_DIR "/compiler/toolchain/node_modules/.bin/wasm2c"
#endif
#ifndef M64_TEST_SIMDE_INCLUDE
#define M64_TEST_SIMDE_INCLUDE "/usr/include"
#endif

// ---------------------------------------------------------------------------------------
// Host side of the test modules' imports (module "m64"). Resolved by the .so from this
// executable (ENABLE_EXPORTS).
struct w2c_m64 {
  wasm_rt_memory_t memory{};  // what ABI-2 modules import as m64.memory
  int parallel_calls = 0;
  int reenter_calls = 0;
  uint32_t inner_trap = 0;
  void *inner_inst = nullptr;
  uint32_t (*inner_div)(void *, uint32_t, uint32_t) = nullptr;
  std::vector<uint32_t> released;
};

extern "C" {
uint32_t w2c_m64_test_add(struct w2c_m64 *, uint32_t a, uint32_t b) { return a + b; }

void w2c_m64_test_fail(struct w2c_m64 *, uint32_t code) {
  if (code != 0) m64_wasm_host_trapf("layer %u cannot be paged", code);
}

// Re-enters the module from inside an import: a nested m64_wasm_call that traps must
// unwind only to itself.
uint32_t w2c_m64_test_reenter(struct w2c_m64 *h, uint32_t n) {
  h->reenter_calls++;
  struct Ctx {
    w2c_m64 *h;
    uint32_t r;
  } c{h, 0};
  wasm_rt_trap_t t = m64_wasm_call(
      [](void *p) {
        Ctx *c = static_cast<Ctx *>(p);
        c->r = c->h->inner_div(c->h->inner_inst, 1, 0);
      },
      &c);
  h->inner_trap = (uint32_t)t;
  return n * 2;
}

uint32_t w2c_m64_layer_acquire(struct w2c_m64 *h, uint32_t layer) {
  if (layer == 999) m64_wasm_host_trap("layer 999 is not in the image");
  (void)h;
  return 4096u * layer;
}
void w2c_m64_layer_release(struct w2c_m64 *h, uint32_t layer) { h->released.push_back(layer); }
void w2c_m64_layer_prefetch(struct w2c_m64 *, uint32_t) {}
void w2c_m64_log(struct w2c_m64 *, uint32_t, uint32_t) {}
wasm_rt_memory_t *w2c_m64_memory(struct w2c_m64 *h) { return &h->memory; }
void w2c_m64_parallel(struct w2c_m64 *h) { h->parallel_calls++; }
}

namespace {

// ---------------------------------------------------------------------------------------
// Building test modules: C -> wasm32/wasm64 -> wasm2c -> shared object, cached by content.
std::string ReadFile(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

uint64_t Fnv1a(const std::string &s, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

int Run(const std::string &cmd, const std::string &log) {
  std::string full = cmd + " >>" + log + " 2>&1";
  return std::system(full.c_str());
}

struct BuildSpec {
  std::string name;    // module source: modules/<name>.c
  std::string target;  // wasm32 | wasm64
  bool native_glue;    // link module/native_glue.c (else modules/test_glue.c)
};

// Flags the AOT compile of wasm2c output needs (see the report / m64_wasm.h).
const char *kAotFlags =
    "-std=c11 -O2 -fPIC -shared -ffp-contract=off -Wall -Wextra -Werror "
    "-Wno-unused-parameter -Wno-unused-function -Wno-c23-extensions";

std::vector<uint8_t> BuildModule(const BuildSpec &spec) {
  static std::map<std::string, std::vector<uint8_t>> memo;
  auto it = memo.find(spec.name);
  if (it != memo.end()) return it->second;

  const std::string src_dir = M64_SOURCE_DIR;
  const std::string mod_src = src_dir + "/test/runtime/modules/" + spec.name + ".c";
  const std::string glue_src = spec.native_glue ? src_dir + "/module/native_glue.c"
                                                : src_dir + "/test/runtime/modules/test_glue.c";
  // Modules built against the real glue follow module ABI 2: memory imported from the
  // host, __stack_pointer exported (as compiler/toolchain.c links them).
  const std::string wasm_flags =
      "--target=" + spec.target +
      " -msimd128 -mbulk-memory -O2 -nostdlib -Wl,--no-entry -Wl,--export-dynamic"
      " -Wl,--import-undefined -fuse-ld=lld -I " + src_dir + "/module" +
      (spec.native_glue ? " -Xlinker --import-memory=m64,memory -Xlinker --export=__stack_pointer" : "");
  const std::string wasm2c_flags = spec.target == "wasm64" ? "--enable-memory64" : "";
  const std::string vis = spec.native_glue ? " -fvisibility=hidden" : "";
  std::string key = ReadFile(mod_src) + ReadFile(glue_src) +
                    ReadFile(src_dir + "/module/wasm-rt.h") +
                    ReadFile(src_dir + "/module/native_abi.h") +
                    ReadFile(src_dir + "/module/exports.h") +
                    ReadFile(src_dir + "/module/m64_module.h") + wasm_flags +
                    wasm2c_flags + kAotFlags + vis;
  char hash[32];
  snprintf(hash, sizeof hash, "%016llx", (unsigned long long)Fnv1a(key));

  const std::string cache = std::string(M64_BINARY_DIR) + "/test/runtime/module_cache";
  mkdir((std::string(M64_BINARY_DIR) + "/test").c_str(), 0755);
  mkdir((std::string(M64_BINARY_DIR) + "/test/runtime").c_str(), 0755);
  mkdir(cache.c_str(), 0755);
  const std::string final_so = cache + "/" + spec.name + "-" + hash + ".so";
  std::string bytes = ReadFile(final_so);
  if (bytes.empty()) {
    // Build in a private directory, then publish atomically (tests run in parallel).
    std::string tmpl = cache + "/build-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (mkdtemp(buf.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp failed in " << cache;
      return {};
    }
    const std::string dir = buf.data();
    const std::string log = dir + "/build.log";
    const std::string wasm = dir + "/m.wasm", c = dir + "/m64mod.c", h = dir + "/m64mod.h";
    const std::string so = dir + "/m.so";
    int rc = Run(std::string(M64_TEST_CLANG) + " " + wasm_flags + " -o " + wasm + " " + mod_src,
                 log);
    if (rc == 0)
      rc = Run(std::string(M64_TEST_WASM2C) + " " + wasm2c_flags + " " + wasm + " -o " + c +
                   " -n m64mod",
               log);
    if (rc == 0)
      rc = Run(std::string(M64_TEST_CLANG) + " " + kAotFlags + vis + " -I " + src_dir +
                   "/module -I " + M64_TEST_SIMDE_INCLUDE +
                   " -DM64_MODULE_HEADER='\"" + h + "\"' " + c + " " + glue_src + " -o " + so,
               log);
    if (rc != 0) {
      ADD_FAILURE() << "building module " << spec.name << " failed:\n" << ReadFile(log);
      return {};
    }
    rename(so.c_str(), final_so.c_str());
    Run("rm -rf '" + dir + "'", "/dev/null");
    bytes = ReadFile(final_so);
  }
  std::vector<uint8_t> out(bytes.begin(), bytes.end());
  memo[spec.name] = out;
  return out;
}

// Runs any callable inside m64_wasm_call. The callable must not own anything with a
// destructor across the trap point (siglongjmp skips C++ frames).
template <class F>
wasm_rt_trap_t Call(F &&f) {
  using Fn = typename std::remove_reference<F>::type;
  return m64_wasm_call([](void *c) { (*static_cast<Fn *>(c))(); }, &f);
}

// One loaded module + one instance. Exports are found by their wasm2c names.
class Instance {
 public:
  explicit Instance(const BuildSpec &spec) {
    std::vector<uint8_t> so = BuildModule(spec);
    if (so.empty()) return;
    m64_err e{};
    if (m64_native_load(so.data(), so.size(), &so_, &e) != 0) {
      ADD_FAILURE() << "m64_native_load: " << e.msg;
      return;
    }
    auto size = static_cast<const uint64_t *>(m64_native_sym(so_, "M64_TEST_INSTANCE_SIZE"));
    inst_size_ = size ? *size : 0;
    instantiate_ = reinterpret_cast<void (*)(void *, w2c_m64 *)>(
        m64_native_sym(so_, "wasm2c_m64mod_instantiate"));
    free_ = reinterpret_cast<void (*)(void *)>(m64_native_sym(so_, "wasm2c_m64mod_free"));
  }
  ~Instance() {
    Free();
    m64_native_unload(so_);
  }
  bool Loaded() const { return so_ != nullptr && inst_size_ && instantiate_ && free_; }

  wasm_rt_trap_t Instantiate() {
    inst_ = calloc(1, inst_size_);
    wasm_rt_init();
    return Call([&] { instantiate_(inst_, &host_); });
  }
  void Free() {
    if (inst_ != nullptr) free_(inst_);
    ::free(inst_);
    inst_ = nullptr;
  }

  template <class Sig>
  Sig *Export(const char *name) {
    void *p = m64_native_sym(so_, (std::string("w2c_m64mod_") + name).c_str());
    EXPECT_NE(p, nullptr) << name;
    return reinterpret_cast<Sig *>(p);
  }
  wasm_rt_memory_t *Memory() { return Export<wasm_rt_memory_t *(void *)>("memory")(inst_); }

  void *inst() { return inst_; }
  w2c_m64 &host() { return host_; }

 private:
  m64_native *so_ = nullptr;
  uint64_t inst_size_ = 0;
  void (*instantiate_)(void *, w2c_m64 *) = nullptr;
  void (*free_)(void *) = nullptr;
  void *inst_ = nullptr;
  w2c_m64 host_;
};

const BuildSpec kBasic{"basic", "wasm32", false};
const BuildSpec kMem64{"mem64", "wasm64", false};
const BuildSpec kAbi{"abi_stub", "wasm32", true};

using U32_U32 = uint32_t(void *, uint32_t);
using U32_U32U32 = uint32_t(void *, uint32_t, uint32_t);
using U32_V = uint32_t(void *);
using F32_U32 = float(void *, uint32_t);
using U32_F32 = uint32_t(void *, float);
using V_U32U32 = void(void *, uint32_t, uint32_t);
using V_U32U32U32 = void(void *, uint32_t, uint32_t, uint32_t);
using V_V = void(void *);

class BasicTest : public ::testing::Test {
 protected:
  void SetUp() override {
    m64_wasm_set_alloc_cap(UINT64_MAX);
    mod_ = new Instance(kBasic);
    ASSERT_TRUE(mod_->Loaded());
    ASSERT_EQ(mod_->Instantiate(), WASM_RT_TRAP_NONE);
    inst_ = mod_->inst();
  }
  void TearDown() override {
    delete mod_;
    m64_wasm_set_alloc_cap(UINT64_MAX);
    EXPECT_EQ(wasm_rt_call_stack_depth, 0u);
  }
  // Expects a sane module afterwards: a trap must leave the instance usable.
  void ExpectStillWorks() {
    float r = -1;
    auto simd_sum = mod_->Export<F32_U32>("simd_sum");
    EXPECT_EQ(Call([&] { r = simd_sum(inst_, 16); }), WASM_RT_TRAP_NONE);
    EXPECT_EQ(r, 120.0f);
  }

  Instance *mod_ = nullptr;
  void *inst_ = nullptr;
};

// ---------------------------------------------------------------------------------------
TEST(TrapNames, Strings) {
  EXPECT_STREQ(m64_wasm_trap_name(WASM_RT_TRAP_OOB), "out of bounds memory access");
  EXPECT_STREQ(m64_wasm_trap_name(WASM_RT_TRAP_UNREACHABLE), "unreachable executed");
  EXPECT_STREQ(m64_wasm_trap_name(WASM_RT_TRAP_EXHAUSTION), "call stack exhausted");
  EXPECT_STREQ(m64_wasm_trap_name(WASM_RT_TRAP_DIV_BY_ZERO), "integer divide by zero");
  EXPECT_STREQ(m64_wasm_trap_name(WASM_RT_TRAP_INVALID_CONVERSION),
               "invalid conversion to integer");
  EXPECT_STREQ(m64_wasm_trap_name(WASM_RT_TRAP_HOST), "host import failed");
  EXPECT_STREQ(m64_wasm_trap_name((wasm_rt_trap_t)1234), "unknown trap");
  EXPECT_STREQ(wasm_rt_strerror(WASM_RT_TRAP_INT_OVERFLOW), "integer overflow");
}

TEST(NativeLoad, GarbageIsAnErrorNotACrash) {
  m64_native *n = reinterpret_cast<m64_native *>(0x1);
  m64_err e{};
  std::vector<uint8_t> junk(4096);
  for (size_t i = 0; i < junk.size(); i++) junk[i] = (uint8_t)(i * 131 + 7);
  EXPECT_EQ(m64_native_load(junk.data(), junk.size(), &n, &e), M64_EFORMAT);
  EXPECT_EQ(n, nullptr);
  EXPECT_STRNE(e.msg, "");

  // Valid ELF header, garbage after it: the check before dlopen (elf_check.h) refuses it.
  std::vector<uint8_t> so = BuildModule(kBasic);
  ASSERT_FALSE(so.empty());
  std::vector<uint8_t> bad(so.begin(), so.begin() + 64);
  bad.resize(8192, 0xA5);
  e = m64_err{};
  EXPECT_EQ(m64_native_load(bad.data(), bad.size(), &n, &e), M64_EFORMAT);
  EXPECT_EQ(n, nullptr);
  EXPECT_NE(std::string(e.msg).find("native code: "), std::string::npos) << e.msg;
  // Cut short: its segments would be mapped past the end of the file (SIGBUS in dlopen).
  std::vector<uint8_t> cut(so.begin(), so.begin() + so.size() / 2);
  e = m64_err{};
  EXPECT_EQ(m64_native_load(cut.data(), cut.size(), &n, &e), M64_EFORMAT);
  EXPECT_NE(std::string(e.msg).find("past the object's end"), std::string::npos) << e.msg;

  e = m64_err{};
  EXPECT_NE(m64_native_load(so.data(), 10, &n, &e), 0);
  EXPECT_NE(m64_native_load(nullptr, 0, &n, &e), 0);
  m64_native_unload(nullptr);
}

TEST(NativeLoad, TwoModulesLoadedTogetherStayDistinct) {
  std::vector<uint8_t> a = BuildModule(kBasic), b = BuildModule(kAbi);
  ASSERT_FALSE(a.empty());
  ASSERT_FALSE(b.empty());
  m64_err e{};
  m64_native *na = nullptr, *nb = nullptr, *nc = nullptr;
  ASSERT_EQ(m64_native_load(a.data(), a.size(), &na, &e), 0) << e.msg;
  ASSERT_EQ(m64_native_load(b.data(), b.size(), &nb, &e), 0) << e.msg;
  EXPECT_NE(m64_native_sym(na, "w2c_m64mod_simd_sum"), nullptr);
  EXPECT_EQ(m64_native_sym(na, M64_NATIVE_ABI_SYMBOL), nullptr);
  EXPECT_NE(m64_native_sym(nb, M64_NATIVE_ABI_SYMBOL), nullptr);
  // With -fvisibility=hidden only the ABI table is exported.
  EXPECT_EQ(m64_native_sym(nb, "w2c_m64mod_m64_alloc"), nullptr);
  m64_native_unload(na);
  // Reload after unload (fd numbers get reused) must give the new object, not a stale one.
  ASSERT_EQ(m64_native_load(b.data(), b.size(), &nc, &e), 0) << e.msg;
  EXPECT_NE(m64_native_sym(nc, M64_NATIVE_ABI_SYMBOL), nullptr);
  m64_native_unload(nc);
  ASSERT_EQ(m64_native_load(a.data(), a.size(), &na, &e), 0) << e.msg;
  EXPECT_NE(m64_native_sym(na, "w2c_m64mod_simd_sum"), nullptr);
  m64_native_unload(na);
  m64_native_unload(nb);
}

TEST(NativeLoad, TempFileFallback) {
  setenv("M64_NATIVE_NO_MEMFD", "1", 1);
  {
    Instance mod(kBasic);
    unsetenv("M64_NATIVE_NO_MEMFD");
    ASSERT_TRUE(mod.Loaded());
    ASSERT_EQ(mod.Instantiate(), WASM_RT_TRAP_NONE);
    float r = 0;
    auto simd_sum = mod.Export<F32_U32>("simd_sum");
    EXPECT_EQ(Call([&] { r = simd_sum(mod.inst(), 1024); }), WASM_RT_TRAP_NONE);
    EXPECT_EQ(r, 523776.0f);
  }
  unsetenv("M64_NATIVE_NO_MEMFD");
}

// ---------------------------------------------------------------------------------------
TEST_F(BasicTest, SimdSum) {
  float r = 0;
  auto simd_sum = mod_->Export<F32_U32>("simd_sum");
  EXPECT_EQ(Call([&] { r = simd_sum(inst_, 1024); }), WASM_RT_TRAP_NONE);
  EXPECT_EQ(r, 523776.0f);  // 0 + 1 + ... + 1023, exact in f32
}

TEST_F(BasicTest, CallIndirect) {
  auto apply = mod_->Export<U32_U32U32>("apply");
  auto apply_raw = mod_->Export<U32_U32U32>("apply_raw");
  uint32_t r[3] = {};
  EXPECT_EQ(Call([&] {
              r[0] = apply(inst_, 0, 5);
              r[1] = apply(inst_, 1, 5);
              r[2] = apply(inst_, 2, 5);
            }),
            WASM_RT_TRAP_NONE);
  EXPECT_EQ(r[0], 6u);
  EXPECT_EQ(r[1], 10u);
  EXPECT_EQ(r[2], 25u);
  EXPECT_EQ(Call([&] { apply_raw(inst_, 100000, 1); }), WASM_RT_TRAP_CALL_INDIRECT);
  EXPECT_EQ(Call([&] { apply_raw(inst_, 0, 1); }), WASM_RT_TRAP_CALL_INDIRECT);  // null slot
  ExpectStillWorks();
}

TEST_F(BasicTest, HostImport) {
  auto call_add = mod_->Export<U32_U32U32>("call_add");
  uint32_t r = 0;
  EXPECT_EQ(Call([&] { r = call_add(inst_, 2, 3); }), WASM_RT_TRAP_NONE);
  EXPECT_EQ(r, 50u);
}

TEST_F(BasicTest, MemoryGrow) {
  auto pages = mod_->Export<U32_V>("mem_pages");
  auto grow = mod_->Export<U32_U32>("mem_grow");
  auto store = mod_->Export<V_U32U32>("store_u32");
  auto load = mod_->Export<U32_U32>("load_u8");
  uint32_t p0 = 0, old = 0, p1 = 0, v = 0;
  ASSERT_EQ(Call([&] { p0 = pages(inst_); }), WASM_RT_TRAP_NONE);
  ASSERT_GE(p0, 1u);
  const uint32_t end0 = p0 * 65536u;
  // Just past the end: a guard-page fault before growing...
  EXPECT_EQ(Call([&] { load(inst_, end0); }), WASM_RT_TRAP_OOB);
  ASSERT_EQ(Call([&] {
              old = grow(inst_, 3);
              p1 = pages(inst_);
              store(inst_, end0 + 3 * 65536u - 4, 0xA1B2C3D4u);
              v = load(inst_, end0 + 3 * 65536u - 1);
            }),
            WASM_RT_TRAP_NONE);
  EXPECT_EQ(old, p0);
  EXPECT_EQ(p1, p0 + 3);
  EXPECT_EQ(v, 0xA1u);
  wasm_rt_memory_t *mem = mod_->Memory();
  EXPECT_EQ(mem->pages, (uint64_t)p0 + 3);
  EXPECT_EQ(mem->size, (uint64_t)(p0 + 3) * 65536u);
  // ...and readable zeroes after it.
  EXPECT_EQ(Call([&] { v = load(inst_, end0); }), WASM_RT_TRAP_NONE);
  EXPECT_EQ(v, 0u);
  // Growing by 0 reports the size; beyond 4 GiB fails with -1.
  EXPECT_EQ(Call([&] { old = grow(inst_, 0); }), WASM_RT_TRAP_NONE);
  EXPECT_EQ(old, p0 + 3);
  EXPECT_EQ(Call([&] { old = grow(inst_, 65536); }), WASM_RT_TRAP_NONE);
  EXPECT_EQ(old, 0xFFFFFFFFu);
}

TEST_F(BasicTest, MemoryGrowRefusedBeyondHostCap) {
  auto pages = mod_->Export<U32_V>("mem_pages");
  auto grow = mod_->Export<U32_U32>("mem_grow");
  uint32_t p0 = 0, r1 = 0, r2 = 0, r3 = 0;
  ASSERT_EQ(Call([&] { p0 = pages(inst_); }), WASM_RT_TRAP_NONE);
  m64_wasm_memory_set_cap(mod_->Memory(), p0 + 2);
  EXPECT_EQ(m64_wasm_memory_cap(mod_->Memory()), (uint64_t)p0 + 2);
  EXPECT_EQ(Call([&] {
              r1 = grow(inst_, 3);  // p0 + 3 > cap
              r2 = grow(inst_, 2);  // exactly the cap
              r3 = grow(inst_, 1);
            }),
            WASM_RT_TRAP_NONE);
  EXPECT_EQ(r1, 0xFFFFFFFFu);
  EXPECT_EQ(r2, p0);
  EXPECT_EQ(r3, 0xFFFFFFFFu);
  EXPECT_EQ(mod_->Memory()->pages, (uint64_t)p0 + 2);
}

TEST_F(BasicTest, InstantiateBeyondCapTrapsWithHostMessage) {
  m64_wasm_set_alloc_cap(1);  // the module's initial memory (data + stack) is larger
  Instance other(kBasic);
  ASSERT_TRUE(other.Loaded());
  EXPECT_EQ(other.Instantiate(), WASM_RT_TRAP_HOST);
  EXPECT_NE(std::string(m64_wasm_last_host_message()).find("workspace cap"), std::string::npos)
      << m64_wasm_last_host_message();
  other.Free();  // freeing a half-built instance is safe
  m64_wasm_set_alloc_cap(UINT64_MAX);
}

TEST_F(BasicTest, OutOfBoundsTraps) {
  auto load = mod_->Export<U32_U32>("load_u8");
  auto load_off = mod_->Export<U32_U32>("load_u32_off");
  auto load_v = mod_->Export<F32_U32>("load_v128");
  auto fill = mod_->Export<V_U32U32U32>("fill");
  auto copy = mod_->Export<V_U32U32U32>("copy");
  const uint32_t size = (uint32_t)mod_->Memory()->size;
  uint32_t v = 1;
  EXPECT_EQ(Call([&] { v = load(inst_, size - 1); }), WASM_RT_TRAP_NONE);
  EXPECT_EQ(Call([&] { load(inst_, size); }), WASM_RT_TRAP_OOB);
  EXPECT_EQ(Call([&] { load(inst_, 0xFFFFFFFFu); }), WASM_RT_TRAP_OOB);
  // address + constant offset beyond 4 GiB: inside the 4 GiB guard region.
  EXPECT_EQ(Call([&] { load_off(inst_, 0xFFFFFFF0u); }), WASM_RT_TRAP_OOB);
  // A v128 straddling the end.
  EXPECT_EQ(Call([&] { load_v(inst_, size - 8); }), WASM_RT_TRAP_OOB);
  // Bulk memory is range-checked explicitly.
  EXPECT_EQ(Call([&] { fill(inst_, size - 4, 0, 8); }), WASM_RT_TRAP_OOB);
  EXPECT_EQ(Call([&] { copy(inst_, 0, size - 4, 8); }), WASM_RT_TRAP_OOB);
  EXPECT_EQ(Call([&] { fill(inst_, 0xFFFFFFF0u, 0, 0x20); }), WASM_RT_TRAP_OOB);
  ExpectStillWorks();
  // Repeated faults keep working (the signal mask is restored each time).
  for (int i = 0; i < 100; i++) ASSERT_EQ(Call([&] { load(inst_, size + i); }), WASM_RT_TRAP_OOB);
  ExpectStillWorks();
}

TEST_F(BasicTest, Unreachable) {
  auto un = mod_->Export<V_V>("trap_unreachable");
  wasm_rt_trap_t t = Call([&] { un(inst_); });
  EXPECT_EQ(t, WASM_RT_TRAP_UNREACHABLE);
  EXPECT_STREQ(m64_wasm_trap_name(t), "unreachable executed");
  ExpectStillWorks();
}

TEST_F(BasicTest, IntegerDivision) {
  auto div_s = mod_->Export<U32_U32U32>("div_s");
  auto rem_u = mod_->Export<U32_U32U32>("rem_u");
  uint32_t r = 0;
  EXPECT_EQ(Call([&] { r = div_s(inst_, (uint32_t)-7, 2); }), WASM_RT_TRAP_NONE);
  EXPECT_EQ((int32_t)r, -3);
  wasm_rt_trap_t t = Call([&] { div_s(inst_, 1, 0); });
  EXPECT_EQ(t, WASM_RT_TRAP_DIV_BY_ZERO);
  EXPECT_STREQ(m64_wasm_trap_name(t), "integer divide by zero");
  EXPECT_EQ(Call([&] { div_s(inst_, 0x80000000u, 0xFFFFFFFFu); }), WASM_RT_TRAP_INT_OVERFLOW);
  EXPECT_EQ(Call([&] { rem_u(inst_, 5, 0); }), WASM_RT_TRAP_DIV_BY_ZERO);
  ExpectStillWorks();
}

TEST_F(BasicTest, InvalidConversion) {
  auto trunc = mod_->Export<U32_F32>("trunc_f32");
  uint32_t r = 0;
  EXPECT_EQ(Call([&] { r = trunc(inst_, -3.75f); }), WASM_RT_TRAP_NONE);
  EXPECT_EQ((int32_t)r, -3);
  EXPECT_EQ(Call([&] { trunc(inst_, std::nanf("")); }), WASM_RT_TRAP_INVALID_CONVERSION);
  EXPECT_EQ(Call([&] { trunc(inst_, 1e10f); }), WASM_RT_TRAP_INT_OVERFLOW);
  ExpectStillWorks();
}

TEST_F(BasicTest, StackExhaustion) {
  auto recurse = mod_->Export<U32_U32>("recurse");
  const uint32_t max = m64_wasm_max_call_depth();
  for (int round = 0; round < 3; round++) {
    uint32_t r = 0;
    wasm_rt_trap_t t = Call([&] { recurse(inst_, 0x40000000u); });
    EXPECT_EQ(t, WASM_RT_TRAP_EXHAUSTION);
    EXPECT_STREQ(m64_wasm_trap_name(t), "call stack exhausted");
    EXPECT_EQ(wasm_rt_call_stack_depth, 0u);
    // Just under the limit still works after a trap (no leaked depth).
    const uint32_t n = max - 10;
    EXPECT_EQ(Call([&] { r = recurse(inst_, n); }), WASM_RT_TRAP_NONE);
    EXPECT_EQ(r, (n + 1) / 2);
  }
  ExpectStillWorks();
}

TEST_F(BasicTest, HostTrap) {
  auto call_fail = mod_->Export<U32_U32>("call_fail");
  uint32_t r = 0;
  wasm_rt_trap_t t = Call([&] { r = call_fail(inst_, 5); });
  EXPECT_EQ(t, WASM_RT_TRAP_HOST);
  EXPECT_STREQ(m64_wasm_last_host_message(), "layer 5 cannot be paged");
  EXPECT_EQ(r, 0u);
  EXPECT_EQ(Call([&] { r = call_fail(inst_, 0); }), WASM_RT_TRAP_NONE);
  EXPECT_EQ(r, 7u);
  ExpectStillWorks();
}

TEST_F(BasicTest, NestedCallTrapUnwindsOnlyTheInnerCall) {
  auto reenter = mod_->Export<U32_U32>("call_reenter");
  mod_->host().inner_inst = inst_;
  mod_->host().inner_div = mod_->Export<U32_U32U32>("div_s");
  uint32_t r = 0;
  EXPECT_EQ(Call([&] { r = reenter(inst_, 4); }), WASM_RT_TRAP_NONE);
  EXPECT_EQ(r, 9u);
  EXPECT_EQ(mod_->host().reenter_calls, 1);
  EXPECT_EQ(mod_->host().inner_trap, (uint32_t)WASM_RT_TRAP_DIV_BY_ZERO);
  EXPECT_FALSE(m64_wasm_in_call());
}

TEST_F(BasicTest, TrapsOnOtherThreads) {
  const uint32_t size = (uint32_t)mod_->Memory()->size;
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int i = 0; i < 4; i++) {
    threads.emplace_back([&, i] {
      Instance mine(kBasic);
      if (!mine.Loaded() || mine.Instantiate() != WASM_RT_TRAP_NONE) return;
      void *in = mine.inst();
      auto load = mine.Export<U32_U32>("load_u8");
      auto recurse = mine.Export<U32_U32>("recurse");
      int good = 1;
      for (int k = 0; k < 20; k++) {
        good &= Call([&] { load(in, size + (uint32_t)k); }) == WASM_RT_TRAP_OOB;
        good &= Call([&] { recurse(in, 0x40000000u); }) == WASM_RT_TRAP_EXHAUSTION;
        good &= wasm_rt_call_stack_depth == 0;
      }
      ok[i] = good;
    });
  }
  for (auto &t : threads) t.join();
  for (int i = 0; i < 4; i++) EXPECT_EQ(ok[i], 1) << "thread " << i;
  ExpectStillWorks();
}

// ---------------------------------------------------------------------------------------
// Two memories in one process, each with its own cap: growing one to its bound leaves
// the other's untouched (the workspace bound belongs to a session, not the process).
TEST(MemoryCap, EachMemoryKeepsItsOwnCap) {
  wasm_rt_memory_t a, b;
  wasm_rt_allocate_memory(&a, 1, 65536, false, 65536);
  wasm_rt_allocate_memory(&b, 1, 65536, false, 65536);
  m64_wasm_memory_set_cap(&a, 4);
  m64_wasm_memory_set_cap(&b, 8);
  EXPECT_EQ(m64_wasm_memory_cap(&a), 4u);
  EXPECT_EQ(m64_wasm_memory_cap(&b), 8u);
  EXPECT_EQ(wasm_rt_grow_memory(&a, 5), UINT64_MAX);  // 6 > 4
  EXPECT_EQ(wasm_rt_grow_memory(&b, 5), 1u);          // 6 <= 8
  EXPECT_EQ(wasm_rt_grow_memory(&a, 3), 1u);          // exactly a's cap
  EXPECT_EQ(wasm_rt_grow_memory(&b, 2), 6u);          // exactly b's cap
  EXPECT_EQ(wasm_rt_grow_memory(&a, 1), UINT64_MAX);
  EXPECT_EQ(wasm_rt_grow_memory(&b, 1), UINT64_MAX);
  EXPECT_EQ(a.pages, 4u);
  EXPECT_EQ(b.pages, 8u);
  m64_wasm_memory_set_cap(&a, UINT64_MAX);  // no cap: up to the declared maximum
  EXPECT_EQ(wasm_rt_grow_memory(&a, 100), 4u);
  wasm_rt_free_memory(&a);
  wasm_rt_free_memory(&b);
}

TEST(Memory64, ExplicitBoundsChecksAndGrow) {
  m64_wasm_set_alloc_cap(UINT64_MAX);
  Instance mod(kMem64);
  ASSERT_TRUE(mod.Loaded());
  ASSERT_EQ(mod.Instantiate(), WASM_RT_TRAP_NONE);
  void *in = mod.inst();
  using U32_U64 = uint32_t(void *, uint64_t);
  using U64_U64 = uint64_t(void *, uint64_t);
  using V_U64U32 = void(void *, uint64_t, uint32_t);
  auto load = mod.Export<U32_U64>("load_u8");
  auto store = mod.Export<V_U64U32>("store_u8");
  auto grow = mod.Export<U64_U64>("mem_grow");
  wasm_rt_memory_t *mem = mod.Memory();
  EXPECT_TRUE(mem->is64);
  const uint64_t size = mem->size;
  uint64_t old = 0;
  uint32_t v = 0;
  EXPECT_EQ(Call([&] { store(in, size - 1, 0x5A); }), WASM_RT_TRAP_NONE);
  EXPECT_EQ(Call([&] { load(in, size); }), WASM_RT_TRAP_OOB);
  EXPECT_EQ(Call([&] { load(in, (uint64_t)1 << 40); }), WASM_RT_TRAP_OOB);
  EXPECT_EQ(Call([&] { load(in, UINT64_MAX); }), WASM_RT_TRAP_OOB);
  EXPECT_EQ(Call([&] { old = grow(in, 100); }), WASM_RT_TRAP_NONE);  // may move the data
  EXPECT_EQ(old, size / 65536);
  EXPECT_EQ(Call([&] { v = load(in, size - 1) + load(in, size + 100 * 65536 - 1); }),
            WASM_RT_TRAP_NONE);
  EXPECT_EQ(v, 0x5Au);  // old contents kept, new pages zero
  m64_wasm_memory_set_cap(mem, mem->pages + 1);
  EXPECT_EQ(Call([&] { old = grow(in, 2); }), WASM_RT_TRAP_NONE);
  EXPECT_EQ(old, UINT64_MAX);
}

// ---------------------------------------------------------------------------------------
TEST(NativeGlue, AbiTable) {
  m64_wasm_set_alloc_cap(UINT64_MAX);
  std::vector<uint8_t> so = BuildModule(kAbi);
  ASSERT_FALSE(so.empty());
  m64_err e{};
  m64_native *n = nullptr;
  ASSERT_EQ(m64_native_load(so.data(), so.size(), &n, &e), 0) << e.msg;
  auto abi = static_cast<const m64_native_abi *>(m64_native_sym(n, M64_NATIVE_ABI_SYMBOL));
  ASSERT_NE(abi, nullptr);
  EXPECT_EQ(abi->abi_version, M64_NATIVE_ABI_VERSION);
  EXPECT_EQ(abi->module_abi_version, M64_MODULE_ABI_NEWEST);  // m64_module.h's, checked against it in the glue
  ASSERT_GT(abi->instance_size, 0u);
  uint64_t min_pages = 0, max_pages = 0;
  abi->memory_limits(&min_pages, &max_pages);
  EXPECT_GE(min_pages, 1u);
  EXPECT_LE(max_pages, 65536u);

  void *inst = calloc(1, abi->instance_size);
  w2c_m64 host;
  struct Mem {
    w2c_m64 *host;
    uint64_t min, max;
  } m{&host, min_pages, max_pages};
  ASSERT_EQ(m64_wasm_call([](void *p) {
              auto m = static_cast<Mem *>(p);
              wasm_rt_allocate_memory(&m->host->memory, m->min, m->max, false, 65536);
            },
                          &m),
            WASM_RT_TRAP_NONE);
  struct Ctx {
    const m64_native_abi *abi;
    void *inst;
    w2c_m64 *host;
    uint32_t r[16];
  } c{abi, inst, &host, {}};
  ASSERT_EQ(m64_wasm_call([](void *p) {
              auto c = static_cast<Ctx *>(p);
              c->abi->instantiate(c->inst, c->host);
            },
                          &c),
            WASM_RT_TRAP_NONE);
  wasm_rt_memory_t *mem = abi->memory(inst);
  ASSERT_EQ(mem, &host.memory) << "the instance uses the host's memory";
  // each instance's shadow stack is the host's to place
  uint32_t *sp = abi->stack_pointer(inst);
  ASSERT_NE(sp, nullptr);
  EXPECT_GT(*sp, 0u);
  ASSERT_EQ(m64_wasm_call([](void *p) {
              auto c = static_cast<Ctx *>(p);
              const m64_native_abi *a = c->abi;
              c->r[0] = a->m64_abi_version(c->inst);
              c->r[1] = a->m64_n_vocab(c->inst);
              c->r[2] = a->m64_n_layers(c->inst);
              c->r[3] = a->m64_n_ctx_train(c->inst);
              c->r[4] = a->m64_state_bytes(c->inst, 3);
              c->r[5] = a->m64_init(c->inst, 0);
              c->r[6] = a->m64_init(c->inst, 16);
              c->r[7] = a->m64_forward(c->inst, 7, 3);
              c->r[8] = a->m64_tok_bos(c->inst);
              c->r[9] = a->m64_tok_eos(c->inst);
              c->r[10] = a->m64_alloc(c->inst, 1024);
            },
                          &c),
            WASM_RT_TRAP_NONE);
  EXPECT_EQ(c.r[0], M64_MODULE_ABI_NEWEST);
  EXPECT_EQ(c.r[1], 32000u);
  EXPECT_EQ(c.r[2], 5u);
  EXPECT_EQ(c.r[3], 2048u);
  EXPECT_EQ(c.r[4], 3000u);
  EXPECT_EQ((int32_t)c.r[5], -2);
  EXPECT_EQ((int32_t)c.r[6], 0);
  EXPECT_EQ(c.r[7], 4096u * 3 + 7);
  EXPECT_EQ(host.released, std::vector<uint32_t>{3});
  EXPECT_EQ(c.r[8], 1u);
  EXPECT_EQ(c.r[9], 2u);
  const uint32_t buf = c.r[10];
  ASSERT_NE(buf, 0u);
  EXPECT_EQ(buf % 64, 0u);

  // Tokenizer and sampler exports move data through module memory.
  memcpy(mem->data + buf, "hi", 2);
  c.r[11] = buf;
  ASSERT_EQ(m64_wasm_call([](void *p) {
              auto c = static_cast<Ctx *>(p);
              const m64_native_abi *a = c->abi;
              uint32_t b = c->r[11];
              c->r[12] = a->m64_tok_encode(c->inst, b, 2, 1, b + 16, 8);
              c->r[13] = a->m64_tok_piece(c->inst, 0, 'Z', b + 64, 4);
              c->r[14] = a->m64_tok_load(c->inst, b, 2);
            },
                          &c),
            WASM_RT_TRAP_NONE);
  EXPECT_EQ(c.r[12], 3u);
  int32_t ids[3];
  memcpy(ids, mem->data + buf + 16, sizeof ids);
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ(ids[1], 'h');
  EXPECT_EQ(ids[2], 'i');
  EXPECT_EQ(c.r[13], 1u);
  EXPECT_EQ(mem->data[buf + 64], 'Z');
  EXPECT_EQ(c.r[14], 0u);

  float logits[4] = {0.5f, 3.0f, -1.0f, 2.0f};
  memcpy(mem->data + buf + 128, logits, sizeof logits);
  ASSERT_EQ(m64_wasm_call([](void *p) {
              auto c = static_cast<Ctx *>(p);
              c->abi->m64_sampler_seed(c->inst, 1, 0);
              c->r[15] = c->abi->m64_sample(c->inst, c->r[11] + 128, 0.0f, 4, 1.0f);
            },
                          &c),
            WASM_RT_TRAP_NONE);
  EXPECT_EQ(c.r[15], 1u);
  ASSERT_EQ(m64_wasm_call([](void *p) {  // ABI 3: token lookup and end of generation
              auto c = static_cast<Ctx *>(p);
              c->r[12] = c->abi->m64_tok_find(c->inst, c->r[11], 2);
              c->r[13] = c->abi->m64_tok_is_eog(c->inst, 2);
              c->r[14] = c->abi->m64_tok_is_eog(c->inst, 1);
            },
                          &c),
            WASM_RT_TRAP_NONE);
  EXPECT_EQ(c.r[12], (uint32_t)'h');
  EXPECT_EQ(c.r[13], 1u);
  EXPECT_EQ(c.r[14], 0u);
  ASSERT_EQ(m64_wasm_call([](void *p) {  // ABI 4: chat formats, every argument passed through
              auto c = static_cast<Ctx *>(p);
              c->r[12] = c->abi->m64_chat_kind(c->inst, c->r[11], 2);
              c->r[13] = c->abi->m64_chat_turn(c->inst, 7, 1, c->r[11], 3, 4, c->r[11] + 512, 256,
                                               c->r[11] + 256, 8);
              c->r[14] = c->abi->m64_chat_end(c->inst, 7, 9, c->r[11] + 512, 256, c->r[11] + 320, 8);
            },
                          &c),
            WASM_RT_TRAP_NONE);
  EXPECT_EQ(c.r[12], 2u);
  ASSERT_EQ(c.r[13], 5u);
  ASSERT_EQ(c.r[14], 2u);
  int32_t turn[5], end[2];
  memcpy(turn, mem->data + buf + 256, sizeof turn);
  memcpy(end, mem->data + buf + 320, sizeof end);
  EXPECT_EQ(turn[0], 7);
  EXPECT_EQ(turn[1], 1);
  EXPECT_EQ(turn[2], 3);
  EXPECT_EQ(turn[3], 4);
  EXPECT_EQ(turn[4], (int32_t)'h');
  EXPECT_EQ(end[0], 7);
  EXPECT_EQ(end[1], 9);
  // ABI 4: the full sampler gets every argument, the penalised ids through memory
  const int32_t last[2] = {3, 4};
  memcpy(mem->data + buf + 192, last, sizeof last);
  ASSERT_EQ(m64_wasm_call([](void *p) {
              auto c = static_cast<Ctx *>(p);
              c->r[12] = c->abi->m64_sample_ex(c->inst, c->r[11] + 128, 0.0f, 2, 1.0f, 0.5f, 1.0f, 0.002f, 0.0003f,
                                               c->r[11] + 192, 2, 1);
            },
                          &c),
            WASM_RT_TRAP_NONE);
  EXPECT_EQ((int32_t)c.r[12], 2 + 5 + 100 + 2 + 3 + 700000 + 1000000);

  // A layer the host cannot page: the import traps, the call reports it.
  ASSERT_EQ(m64_wasm_call([](void *p) {
              auto c = static_cast<Ctx *>(p);
              c->abi->m64_forward(c->inst, 0, 999);
            },
                          &c),
            WASM_RT_TRAP_HOST);
  EXPECT_STREQ(m64_wasm_last_host_message(), "layer 999 is not in the image");

  // threads: m64_threads then m64.parallel -> the host runs m64_worker shares
  ASSERT_EQ(m64_wasm_call([](void *p) {
              auto c = static_cast<Ctx *>(p);
              c->r[12] = c->abi->m64_threads(c->inst, 3);
              c->abi->m64_worker(c->inst, 1, 3);
            },
                          &c),
            WASM_RT_TRAP_NONE);
  EXPECT_EQ(c.r[12], 0u);
  EXPECT_EQ(host.parallel_calls, 1);

  abi->free(inst);
  free(inst);
  wasm_rt_free_memory(&host.memory);
  m64_native_unload(n);
}

// ---------------------------------------------------------------------------------------
TEST(TrapDeathTest, TrapOutsideCallAborts) {
  EXPECT_DEATH(wasm_rt_trap(WASM_RT_TRAP_OOB), "outside m64_wasm_call");
}

TEST(TrapDeathTest, FaultOutsideReservationsStaysACrash) {
  EXPECT_EXIT(
      {
        void *p = mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        volatile int *bad = static_cast<volatile int *>(p);
        m64_wasm_call([](void *q) { (void)*static_cast<volatile int *>(q); },
                      const_cast<int *>(bad));
        std::exit(0);
      },
      ::testing::KilledBySignal(SIGSEGV), "");
}

}  // namespace
