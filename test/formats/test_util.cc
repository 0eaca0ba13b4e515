#include "test_util.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>

TempDir::TempDir() {
  char tmpl[] = "/tmp/m64_formats_XXXXXX";
  if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}
TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}
std::vector<std::string> TempDir::list() const {
  std::vector<std::string> out;
  for (auto &e : std::filesystem::directory_iterator(path_)) out.push_back(e.path().filename());
  return out;
}

std::vector<uint8_t> read_file(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}
void write_file(const std::string &path, const std::vector<uint8_t> &bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write((const char *)bytes.data(), (std::streamsize)bytes.size());
}
bool file_exists(const std::string &path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}
std::string to_string(m64_str s) { return std::string(s.ptr, s.len); }
std::string sha_hex(const void *data, size_t n) {
  m64_sha256 s;
  uint8_t d[32];
  char hex[65];
  m64_sha256_init(&s);
  m64_sha256_update(&s, data, n);
  m64_sha256_final(&s, d);
  m64_sha256_hex(d, hex);
  return hex;
}

std::vector<uint8_t> native_section(const std::string &code) {
  Bytes b;
  b.raw("M64NATIV", 8).u32(64).u32(0).zeros(32).u64(code.size()).u64(0).raw(code.data(), code.size());
  return b.v;
}
