// m64_parse_size: the --workspace and --segment-max arguments.
#include <gtest/gtest.h>

#include "m64_formats.h"

TEST(ParseSize, UnitsArePowersOf1024) {
  EXPECT_EQ(m64_parse_size("65536"), 65536u);
  EXPECT_EQ(m64_parse_size("512K"), 512u * 1024);
  EXPECT_EQ(m64_parse_size("512M"), 512ull << 20);
  EXPECT_EQ(m64_parse_size("4G"), 4ull << 30);
  EXPECT_EQ(m64_parse_size("4GiB"), 4ull << 30);
  EXPECT_EQ(m64_parse_size("4gb"), 0u) << "lower-case b is not a unit";
  EXPECT_EQ(m64_parse_size("1.5G"), 3ull << 29);
  EXPECT_EQ(m64_parse_size("2T"), 2ull << 40);
}

TEST(ParseSize, MalformedIsZero) {
  for (const char *bad : {"", "G", "-1M", "12Q", "4G4", "nan", "1e30T", "  "})
    EXPECT_EQ(m64_parse_size(bad), 0u) << bad;
}
