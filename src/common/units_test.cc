#include "common/units.h"

#include <gtest/gtest.h>

#include "common/shell.h"

namespace barge {
namespace {

TEST(Units, ParsesDurations) {
  EXPECT_EQ(*ParseDurationMs("250ms"), 250);
  EXPECT_EQ(*ParseDurationMs("30s"), 30'000);
  EXPECT_EQ(*ParseDurationMs("5m"), 300'000);
  EXPECT_EQ(*ParseDurationMs("1h30m"), 5'400'000);
  EXPECT_EQ(*ParseDurationMs("1.5s"), 1'500);
}

TEST(Units, RejectsBadDurations) {
  EXPECT_FALSE(ParseDurationMs("30").ok());
  EXPECT_FALSE(ParseDurationMs("").ok());
  EXPECT_FALSE(ParseDurationMs("5 parsecs").ok());
  EXPECT_NE(ParseDurationMs("3x").status().message().find("unknown unit \"x\""), std::string::npos);
}

TEST(Units, ParsesSizes) {
  EXPECT_EQ(*ParseSizeBytes("512MiB"), 512LL << 20);
  EXPECT_EQ(*ParseSizeBytes("2GiB"), 2LL << 30);
  EXPECT_EQ(*ParseSizeBytes("1G"), 1LL << 30);
  EXPECT_EQ(*ParseSizeBytes("1GB"), 1'000'000'000LL);
  EXPECT_EQ(*ParseSizeBytes("100B"), 100);
  EXPECT_FALSE(ParseSizeBytes("2").ok());
  EXPECT_FALSE(ParseSizeBytes("2 bananas").ok());
  EXPECT_FALSE(ParseSizeBytes("-1GiB").ok());
}

TEST(Units, Formats) {
  EXPECT_EQ(FormatDurationMs(850), "850ms");
  EXPECT_EQ(FormatDurationMs(12'300), "12.3s");
  EXPECT_EQ(FormatDurationMs(245'000), "4m05s");
  EXPECT_EQ(FormatBytes(1536), "1.5KiB");
}

TEST(Shell, QuotesEverythingIntoOneWord) {
  EXPECT_EQ(ShellQuote("abc"), "'abc'");
  EXPECT_EQ(ShellQuote("it's"), "'it'\\''s'");
  EXPECT_EQ(ShellQuote("$(rm -rf /); `x`"), "'$(rm -rf /); `x`'");
}

}  // namespace
}  // namespace barge
