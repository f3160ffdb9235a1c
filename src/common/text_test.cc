#include "common/text.h"

#include <gtest/gtest.h>

namespace barge {
namespace {

TEST(Text, Utf8ValidPrefixStopsAtTheFirstBadByte) {
  EXPECT_EQ(Utf8ValidPrefix(""), 0u);
  EXPECT_EQ(Utf8ValidPrefix("abc\xc3\xa9"), 5u);
  EXPECT_EQ(Utf8ValidPrefix("ab\xff"
                            "cd"),
            2u);
  EXPECT_EQ(Utf8ValidPrefix("a\xc3"), 1u);          // truncated
  EXPECT_EQ(Utf8ValidPrefix("a\xed\xa0\x80"), 1u);  // a surrogate
  EXPECT_EQ(Utf8ValidPrefix("a\xc0\xaf"), 1u);      // overlong '/'
  EXPECT_TRUE(IsValidUtf8("\xf0\x9f\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // above U+10FFFF
}

TEST(Text, ShowBytesIsUnambiguous) {
  EXPECT_EQ(ShowBytes("a\xff\n\\b\xc3\xa9"), "a\\xff\\n\\\\b\xc3\xa9");
  EXPECT_EQ(ShowBytes(std::string("\0\x7f", 2)), "\\x00\\x7f");
}

TEST(Text, CarriableValuesAndNames) {
  EXPECT_TRUE(CheckCarriable("item", "a b\n\xc3\xa9").ok());
  EXPECT_EQ(CheckCarriable("item", "a\xff").message(), "item a\\xff is not valid UTF-8");
  EXPECT_EQ(CheckCarriable("item", std::string("a\0", 2)).message(),
            "item a\\x00 holds a NUL byte");
  EXPECT_EQ(CheckCarriableName("file", "a\nb").message(),
            "file a\\nb holds a control character (such as a newline)");
  EXPECT_TRUE(CheckCarriableName("file", "r\xc3\xa9sum\xc3\xa9 1.csv").ok());
}

TEST(Text, DumpJsonNeverThrows) {
  nlohmann::json j = {{"k", "a\xff"}};
  EXPECT_THROW((void)j.dump(), nlohmann::json::type_error);
  EXPECT_EQ(DumpJson(j), "{\"k\":\"a\xef\xbf\xbd\"}");
}

}  // namespace
}  // namespace barge
