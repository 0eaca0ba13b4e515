// cmd/args.c's -e escapes (m64_unescape), as llama.cpp's -e: what each escape becomes, and
// text that ends inside one.
#include <gtest/gtest.h>

#include <string>

extern "C" {
#include "args.h"
}

namespace {

std::string Unescape(std::string s) {
  std::string buf = s + '\0';  // room for the terminator m64_unescape keeps
  size_t n = s.size();
  m64_unescape(&buf[0], &n);
  EXPECT_EQ(buf[n], '\0');
  return buf.substr(0, n);
}

TEST(Escapes, EachEscapeBecomesItsByte) {
  EXPECT_EQ(Unescape("a\\nb\\tc\\rd"), "a\nb\tc\rd");
  EXPECT_EQ(Unescape("\\\\ \\' \\\" \\?"), "\\ ' \" ?");
  EXPECT_EQ(Unescape("\\a\\b\\f\\v"), "\a\b\f\v");
  EXPECT_EQ(Unescape("\\x41\\x4a\\x4Bz"), "AJKz");
  EXPECT_EQ(Unescape("\\x7g"), "\x07g");  // one hex digit
  EXPECT_EQ(Unescape("\\101\\60\\0x"), std::string("A0\0x", 4));
  EXPECT_EQ(Unescape("\\400"), std::string("\0400", 2));  // octal stops before passing 0377
  EXPECT_EQ(Unescape("plain"), "plain");
}

TEST(Escapes, UnknownAndCutShortEscapesStayAsTheyWere) {
  EXPECT_EQ(Unescape("\\q"), "\\q");
  EXPECT_EQ(Unescape("end\\"), "end\\");
  EXPECT_EQ(Unescape("\\x"), "\\x");
  EXPECT_EQ(Unescape("\\xg"), "\\xg");
  EXPECT_EQ(Unescape(""), "");
  // every byte value after a backslash, at the end of the text or not: never past the end
  for (int c = 0; c < 256; c++) {
    std::string s = "\\";
    s += (char)c;
    Unescape(s);
    Unescape(s + "1");
    Unescape("\\x" + std::string(1, (char)c));
  }
}

}  // namespace
