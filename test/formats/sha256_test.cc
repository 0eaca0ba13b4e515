#include <gtest/gtest.h>

#include <string>

#include "test_util.h"

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha_hex("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha_hex("abc", 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  EXPECT_EQ(sha_hex(two_blocks.data(), two_blocks.size()),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  std::string million(1000000, 'a');
  EXPECT_EQ(sha_hex(million.data(), million.size()),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, StreamingInOddChunksMatchesOneShot) {
  std::string million(1000000, 'a');
  m64_sha256 s;
  uint8_t d[32];
  char hex[65];
  m64_sha256_init(&s);
  size_t pos = 0, step = 1;
  while (pos < million.size()) {
    size_t n = std::min(step, million.size() - pos);
    m64_sha256_update(&s, million.data() + pos, n);
    pos += n;
    step = step * 3 % 1000 + 1;
  }
  m64_sha256_final(&s, d);
  m64_sha256_hex(d, hex);
  EXPECT_STREQ(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(GgmlTypes, BlockTable) {
  EXPECT_STREQ(m64_ggml_type_info(M64_GGML_Q4_K).name, "Q4_K");
  EXPECT_EQ(m64_ggml_type_info(M64_GGML_Q4_K).block_bytes, 144u);
  EXPECT_EQ(m64_ggml_type_info(M64_GGML_Q8_0).block_elems, 32u);
  EXPECT_EQ(m64_ggml_type_info(4).name, nullptr);   // removed Q4_2
  EXPECT_EQ(m64_ggml_type_info(999).name, nullptr);
  uint64_t n = 0;
  EXPECT_EQ(m64_ggml_row_bytes(M64_GGML_Q8_0, 64, &n), 0);
  EXPECT_EQ(n, 68u);
  EXPECT_EQ(m64_ggml_row_bytes(M64_GGML_F16, 7, &n), 0);
  EXPECT_EQ(n, 14u);
  EXPECT_EQ(m64_ggml_row_bytes(M64_GGML_Q6_K, 255, &n), M64_EFORMAT);
  EXPECT_EQ(m64_ggml_row_bytes(99, 1, &n), M64_EFORMAT);
}
