#include "common/text.h"

#include <gtest/gtest.h>

namespace barge {
namespace {

TEST(TextTest, Utf8) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain.csv"));
  EXPECT_TRUE(IsValidUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("\xff"));
  EXPECT_FALSE(IsValidUtf8("a\xc3"));              // truncated
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));           // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xe0\x80\xaf"));       // overlong, three bytes
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));       // surrogate U+D800
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));   // above U+10FFFF
}

TEST(TextTest, ShowBytesIsUnambiguous) {
  EXPECT_EQ(ShowBytes("data/\xff.csv"), "data/\\xff.csv");
  EXPECT_EQ(ShowBytes("new\nline"), "new\\nline");
  EXPECT_EQ(ShowBytes("back\\slash"), "back\\\\slash");
  EXPECT_EQ(ShowBytes(std::string("nu\0l", 4)), "nu\\x00l");
  EXPECT_EQ(ShowBytes("caf\xc3\xa9"), "caf\xc3\xa9");
  EXPECT_TRUE(IsValidUtf8(ShowBytes("\xc3\x28\xa0\xa1\xe2\x28\xa1")));
}

TEST(TextTest, CheckCarriable) {
  EXPECT_TRUE(CheckCarriable("item", "caf\xc3\xa9\nx").ok());
  absl::Status bad = CheckCarriable("file", "a\xff");
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.message(), "file a\\xff is not valid UTF-8");
  EXPECT_EQ(CheckCarriable("param p", std::string("x\0y", 3)).message(),
            "param p x\\x00y holds a NUL byte");
  EXPECT_TRUE(CheckCarriableName("output", "part-0.csv").ok());
  EXPECT_EQ(CheckCarriableName("output", "new\nline.txt").message(),
            "output new\\nline.txt holds a control character (such as a newline)");
}

TEST(TextTest, DumpJsonNeverThrows) {
  nlohmann::json j = {{"name", std::string("a\xff" "b")}};
  EXPECT_THROW((void)j.dump(), nlohmann::json::type_error);
  EXPECT_EQ(DumpJson(j), "{\"name\":\"a\xef\xbf\xbd" "b\"}");
  EXPECT_EQ(DumpJson(nlohmann::json::array({1, 2}), 1), "[\n 1,\n 2\n]");
}

}  // namespace
}  // namespace barge
