// test_util.h — small helpers shared by the formats tests.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

extern "C" {
#include "m64_formats.h"
}

// A fresh directory under /tmp, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string &path() const { return path_; }
  std::string file(const std::string &name) const { return path_ + "/" + name; }
  std::vector<std::string> list() const;  // entry names
 private:
  std::string path_;
};

std::vector<uint8_t> read_file(const std::string &path);
void write_file(const std::string &path, const std::vector<uint8_t> &bytes);
bool file_exists(const std::string &path);

// Little-endian byte builder for hand-made (often broken) files.
struct Bytes {
  std::vector<uint8_t> v;
  Bytes &u8(uint8_t x) { v.push_back(x); return *this; }
  Bytes &u32(uint32_t x) { for (int i = 0; i < 4; i++) v.push_back(uint8_t(x >> (8 * i))); return *this; }
  Bytes &u64(uint64_t x) { for (int i = 0; i < 8; i++) v.push_back(uint8_t(x >> (8 * i))); return *this; }
  Bytes &raw(const void *p, size_t n) { auto b = (const uint8_t *)p; v.insert(v.end(), b, b + n); return *this; }
  Bytes &str(const std::string &s) { u64(s.size()); return raw(s.data(), s.size()); }
  Bytes &pad(size_t align) { while (v.size() % align) v.push_back(0); return *this; }
  Bytes &zeros(size_t n) { v.insert(v.end(), n, 0); return *this; }
};

std::string to_string(m64_str s);
// A NATIVE section as the reader accepts it (docs/FORMAT.md): the 64-byte header (magic,
// header size, no mark, a zero wasm hash, the code size) followed by code.
std::vector<uint8_t> native_section(const std::string &code);
std::string sha_hex(const void *data, size_t n);
