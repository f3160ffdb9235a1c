#include "common/labels.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace barge {
namespace {

TEST(Labels, ParseAndCanonicalSpelling) {
  absl::StatusOr<Labels> l = ParseLabels(" zone=eu-1 , arch=arm64,gpu=nvidia/a10 ");
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->size(), 3u);
  EXPECT_EQ(CanonicalLabels(*l), "arch=arm64,gpu=nvidia/a10,zone=eu-1");
  EXPECT_TRUE(ParseLabels("")->empty());
  EXPECT_EQ(CanonicalLabels({}), "");
}

TEST(Labels, BadLabelsAreRefusedWithTheReason) {
  EXPECT_NE(ParseLabels("arch").status().message().find("not key=value"), std::string::npos);
  EXPECT_NE(ParseLabels("a=1,a=2").status().message().find("given twice"), std::string::npos);
  EXPECT_FALSE(ParseLabels("a=").ok());
  EXPECT_FALSE(ParseLabels("a b=1").ok());
  EXPECT_FALSE(ParseLabels("a=1;rm -rf").ok());
  EXPECT_FALSE(ParseLabels("a=1,b=2,c=3,d=4,e=5,f=6,g=7,h=8,i=9").ok());  // more than kMaxLabels
}

TEST(Labels, SubsetsAreEveryRequirementAWorkerSatisfies) {
  std::vector<std::string> s = LabelSubsets({{"arch", "arm64"}, {"gpu", "a10"}});
  std::sort(s.begin(), s.end());
  EXPECT_EQ(s, (std::vector<std::string>{"", "arch=arm64", "arch=arm64,gpu=a10", "gpu=a10"}));
  EXPECT_EQ(LabelSubsets({}), std::vector<std::string>{""});
  Labels eight;
  for (int i = 0; i < kMaxLabels; ++i) eight["k" + std::to_string(i)] = "v";
  EXPECT_EQ(LabelSubsets(eight).size(), 256u);
}

TEST(Labels, MachineLabelsUseContainerSpelling) {
  Labels m = MachineLabels();
  EXPECT_EQ(m["os"], "linux");
  EXPECT_NE(m["arch"], "x86_64");
  EXPECT_NE(m["arch"], "aarch64");
  Merge(m, {{"arch", "riscv64"}, {"gpu", "a10"}});
  EXPECT_EQ(m["arch"], "riscv64");
  EXPECT_EQ(m["gpu"], "a10");
}

}  // namespace
}  // namespace barge
