#include "bundle/ignore.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "common/fs.h"
#include "testing/temp_dir.h"

namespace barge {
namespace {

TEST(IgnoreRules, BlankLinesAndCommentsAreSkipped) {
  IgnoreRules rules;
  rules.AddFile("\n# *.txt\n   \n\\#lit\n", "");
  EXPECT_EQ(rules.size(), 1u);
  EXPECT_FALSE(rules.Ignored("a.txt", false));
  EXPECT_FALSE(rules.Ignored("# *.txt", false));
  EXPECT_TRUE(rules.Ignored("#lit", false));
}

TEST(IgnoreRules, NegationLastMatchWins) {
  IgnoreRules rules;
  rules.AddFile("*.log\n!keep.log\n", "");
  EXPECT_TRUE(rules.Ignored("a.log", false));
  EXPECT_TRUE(rules.Ignored("deep/b.log", false));
  EXPECT_FALSE(rules.Ignored("keep.log", false));
  EXPECT_FALSE(rules.Ignored("deep/keep.log", false));
  IgnoreRules reversed;
  reversed.AddFile("!keep.log\n*.log\n", "");
  EXPECT_TRUE(reversed.Ignored("keep.log", false));
}

TEST(IgnoreRules, TrailingSlashMatchesDirectoriesOnly) {
  IgnoreRules rules;
  rules.AddFile("build/\n", "");
  EXPECT_TRUE(rules.Ignored("build", true));
  EXPECT_TRUE(rules.Ignored("src/build", true));
  EXPECT_FALSE(rules.Ignored("build", false));
}

TEST(IgnoreRules, UnanchoredPatternMatchesAtAnyDepth) {
  IgnoreRules rules;
  rules.AddFile("*.o\ncache\n", "");
  EXPECT_TRUE(rules.Ignored("a.o", false));
  EXPECT_TRUE(rules.Ignored("x/y/z/a.o", false));
  EXPECT_TRUE(rules.Ignored("x/cache", true));
  EXPECT_FALSE(rules.Ignored("a.oo", false));
}

TEST(IgnoreRules, SlashAtStartOrMiddleAnchorsToTheFilesDirectory) {
  IgnoreRules rules;
  rules.AddFile("/top.txt\ndoc/out\n", "");
  EXPECT_TRUE(rules.Ignored("top.txt", false));
  EXPECT_FALSE(rules.Ignored("sub/top.txt", false));
  EXPECT_TRUE(rules.Ignored("doc/out", false));
  EXPECT_FALSE(rules.Ignored("x/doc/out", false));
  IgnoreRules sub;
  sub.AddFile("/only.txt\nany.txt\n", "sub");
  EXPECT_TRUE(sub.Ignored("sub/only.txt", false));
  EXPECT_FALSE(sub.Ignored("sub/deeper/only.txt", false));
  EXPECT_FALSE(sub.Ignored("only.txt", false));
  EXPECT_TRUE(sub.Ignored("sub/deeper/any.txt", false));
  EXPECT_FALSE(sub.Ignored("any.txt", false));
  EXPECT_FALSE(sub.Ignored("subway/any.txt", false));
}

TEST(IgnoreRules, WildcardsStayWithinOneSegment) {
  IgnoreRules rules;
  rules.AddFile("a/*.csv\nfile?.txt\nv[0-9]\n", "");
  EXPECT_TRUE(rules.Ignored("a/x.csv", false));
  EXPECT_FALSE(rules.Ignored("a/b/x.csv", false));
  EXPECT_TRUE(rules.Ignored("file1.txt", false));
  EXPECT_FALSE(rules.Ignored("file12.txt", false));
  EXPECT_TRUE(rules.Ignored("v7", false));
  EXPECT_FALSE(rules.Ignored("vx", false));
  IgnoreRules dots;
  dots.AddFile("*.csv\n", "");
  EXPECT_TRUE(dots.Ignored(".hidden.csv", false));  // '*' matches a leading dot, as in git
}

TEST(IgnoreRules, DoubleStarMatchesAnyNumberOfSegments) {
  IgnoreRules lead;
  lead.AddFile("**/logs\n", "");
  EXPECT_TRUE(lead.Ignored("logs", true));
  EXPECT_TRUE(lead.Ignored("a/b/logs", true));
  IgnoreRules trail;
  trail.AddFile("out/**\n", "");
  EXPECT_FALSE(trail.Ignored("out", true));
  EXPECT_TRUE(trail.Ignored("out/a", false));
  EXPECT_TRUE(trail.Ignored("out/a/b", false));
  EXPECT_FALSE(trail.Ignored("x/out/a", false));
  IgnoreRules middle;
  middle.AddFile("a/**/b\n", "");
  EXPECT_TRUE(middle.Ignored("a/b", false));
  EXPECT_TRUE(middle.Ignored("a/x/b", false));
  EXPECT_TRUE(middle.Ignored("a/x/y/b", false));
  EXPECT_FALSE(middle.Ignored("a/x/c", false));
}

TEST(IgnoreRules, TrailingSpacesAreDroppedAndCarriageReturnsToo) {
  IgnoreRules rules;
  rules.AddFile("a.txt   \r\n", "");
  EXPECT_TRUE(rules.Ignored("a.txt", false));
}

class IgnoreWalk : public ::testing::Test {
 protected:
  void Write(const std::string& rel, const std::string& data = "x") {
    std::filesystem::path p = dir_.path() / rel;
    ASSERT_TRUE(MakeDirs(p.parent_path().string()).ok());
    ASSERT_TRUE(WriteFile(p.string(), data).ok());
  }
  std::vector<std::string> Paths(const std::vector<std::string>& exclude = {}) {
    auto entries = WalkUnignored(dir_.path().string(), exclude);
    EXPECT_TRUE(entries.ok()) << entries.status();
    std::vector<std::string> out;
    if (entries.ok()) {
      for (const WalkEntry& e : *entries) out.push_back(e.path);
    }
    return out;
  }
  ScopedTempDir dir_{"ignore"};
};

TEST_F(IgnoreWalk, ListsDepthFirstInByteOrderWithoutGit) {
  Write("b.txt");
  Write("a/z.txt");
  Write("a.txt");
  Write(".git/config");
  Write("sub/.git");  // a submodule's .git file
  EXPECT_EQ(Paths(), (std::vector<std::string>{"a", "a/z.txt", "a.txt", "b.txt", "sub"}));
}

TEST_F(IgnoreWalk, AnExcludedDirectoryIsNotDescendedInto) {
  Write(".gitignore", "build/\n!build/keep.txt\n");
  Write("build/keep.txt");
  Write("build/x.o");
  Write("main.sh");
  EXPECT_EQ(Paths(), (std::vector<std::string>{".gitignore", "main.sh"}));
}

TEST_F(IgnoreWalk, EachIgnoreFileAppliesToItsSubtreeAndBargeignoreComesLast) {
  Write(".gitignore", "*.tmp\n");
  Write(".bargeignore", "!keep.tmp\n/data/\n");
  Write("keep.tmp");
  Write("drop.tmp");
  Write("data/big.bin");
  Write("sub/data/small.csv");
  Write("sub/.gitignore", "!drop.tmp\n/local.txt\n");
  Write("sub/drop.tmp");
  Write("sub/local.txt");
  Write("sub/deeper/local.txt");
  Write("other/local.txt");
  EXPECT_EQ(Paths(), (std::vector<std::string>{".bargeignore", ".gitignore", "keep.tmp", "other",
                                               "other/local.txt", "sub", "sub/.gitignore",
                                               "sub/data", "sub/data/small.csv", "sub/deeper",
                                               "sub/deeper/local.txt", "sub/drop.tmp"}));
}

TEST_F(IgnoreWalk, ExcludedAbsoluteDirectoriesAreLeftOut) {
  Write("state/db");
  Write("scratch/t/1");
  Write("main.sh");
  std::string base = dir_.path().string();
  EXPECT_EQ(Paths({base + "/state/", base + "/x/../scratch"}),
            (std::vector<std::string>{"main.sh"}));
}

TEST_F(IgnoreWalk, ReportsKindsModesSizesAndLinkTargets) {
  Write("run.sh", "#!/bin/sh\n");
  ASSERT_EQ(::chmod((dir_.path() / "run.sh").c_str(), 0755), 0);
  ASSERT_EQ(::symlink("run.sh", (dir_.path() / "link").c_str()), 0);
  auto entries = WalkUnignored(dir_.path().string(), {});
  ASSERT_TRUE(entries.ok()) << entries.status();
  ASSERT_EQ(entries->size(), 2u);
  EXPECT_EQ((*entries)[0].path, "link");
  EXPECT_EQ((*entries)[0].kind, WalkEntry::Kind::kSymlink);
  EXPECT_EQ((*entries)[0].link_target, "run.sh");
  EXPECT_EQ((*entries)[1].kind, WalkEntry::Kind::kFile);
  EXPECT_EQ((*entries)[1].mode, 0755u);
  EXPECT_EQ((*entries)[1].size, 10);
}

TEST(IgnoreWalkErrors, NotADirectoryIsNotFound) {
  auto entries = WalkUnignored("/nonexistent/barge/dir", {});
  EXPECT_EQ(entries.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace barge
