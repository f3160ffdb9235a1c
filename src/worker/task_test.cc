#include "worker/task.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "common/fs.h"

namespace barge {
namespace {

namespace fs = std::filesystem;

class ListOutputsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("list-outputs-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "sub");
    ASSERT_TRUE(WriteFile((dir_ / "a.csv").string(), "1\n").ok());
    ASSERT_TRUE(WriteFile((dir_ / "sub/b.csv").string(), "22\n").ok());
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Refusal() {
    absl::StatusOr<std::vector<FileEntry>> files = ListOutputs(dir_.string());
    EXPECT_FALSE(files.ok());
    EXPECT_TRUE(absl::IsInvalidArgument(files.status())) << files.status();
    return std::string(files.status().message());
  }
  fs::path dir_;
};

TEST_F(ListOutputsTest, RegularFilesInSubdirectoriesSortedByName) {
  absl::StatusOr<std::vector<FileEntry>> files = ListOutputs(dir_.string());
  ASSERT_TRUE(files.ok()) << files.status();
  ASSERT_EQ(files->size(), 2u);
  EXPECT_EQ((*files)[0].relative_path, "a.csv");
  EXPECT_EQ((*files)[0].size, 2);
  EXPECT_EQ((*files)[1].relative_path, "sub/b.csv");
  EXPECT_EQ((*files)[1].size, 3);
}

TEST_F(ListOutputsTest, ASymbolicLinkOfAnyKindIsRefusedByName) {
  fs::create_symlink("a.csv", dir_ / "latest.csv");
  EXPECT_EQ(Refusal(), "output latest.csv is a symbolic link (to a.csv); write the file itself");
  fs::remove(dir_ / "latest.csv");
  fs::create_directory_symlink("/etc", dir_ / "sub/etc");
  EXPECT_EQ(Refusal(), "output sub/etc is a symbolic link (to /etc); write the file itself");
  fs::remove(dir_ / "sub/etc");
  fs::create_symlink("nowhere", dir_ / "dangling");
  EXPECT_NE(Refusal().find("output dangling is a symbolic link (to nowhere)"), std::string::npos);
}

TEST_F(ListOutputsTest, NamesThatCannotBeCarriedAndSpecialFilesAreRefused) {
  ASSERT_TRUE(WriteFile((dir_ / "new\nline.txt").string(), "x").ok());
  EXPECT_NE(Refusal().find("output new\\nline.txt holds a control character"), std::string::npos);
  fs::remove(dir_ / "new\nline.txt");
  ASSERT_TRUE(WriteFile((dir_ / "bad\xff.txt").string(), "x").ok());
  EXPECT_NE(Refusal().find("output bad\\xff.txt is not valid UTF-8"), std::string::npos);
  fs::remove(dir_ / "bad\xff.txt");
  ASSERT_EQ(::mkfifo((dir_ / "pipe").c_str(), 0644), 0);
  EXPECT_NE(Refusal().find("output pipe is not a regular file"), std::string::npos);
}

TEST_F(ListOutputsTest, AnOutputDirectoryReplacedByALinkIsRefused) {
  fs::path real = dir_.string() + "-real";
  fs::rename(dir_, real);
  fs::create_directory_symlink(real, dir_);
  EXPECT_NE(Refusal().find("the output directory was replaced by a symbolic link"),
            std::string::npos);
  fs::remove(dir_);
  fs::rename(real, dir_);
}

// Recorded inputs of any shape resolve without an exception (one would end the worker thread):
// entries that are not what barge writes are skipped or read with their defaults.
TEST(ResolveTask, InputsOfTheWrongShapeNeverThrow) {
  absl::StatusOr<Pipeline> pipeline = ParsePipeline(
      "name: p\nsteps:\n  - name: a\n    run: cat \"$BARGE_INPUT\"\n", "/tmp/p/p.yaml", {});
  ASSERT_TRUE(pipeline.ok()) << pipeline.status();
  RunRecord run;
  run.id = "r1";
  TaskRecord task;
  task.key = {"r1", "a", 0};
  task.item_json = "null";
  task.inputs_json =
      R"([{"path": 5}, {"path": "/d/x.csv", "view": 7, "schema_only": "yes"}, 3, {"view": "v"}])";
  AttemptPaths paths = PathsFor("/root", "/scratch", task.key, 1);
  absl::StatusOr<ResolvedTask> resolved = ResolveTask(*pipeline, run, task, "[]", 1, paths);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->inputs, std::vector<std::string>{"/d/x.csv"});
}

TEST(TaskEnvironment, KeepsBargesOwnVariablesFromTasks) {
  for (const char* name : {"BARGE_STATE", "BARGE_TOKEN", "BARGE_ROOT", "PGPASSWORD", "PGHOST",
                           "PGSERVICEFILE", "PGSSLKEY"}) {
    EXPECT_TRUE(IsBargeOnlyVariable(name)) << name;
  }
  for (const char* name : {"PATH", "HOME", "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "PG",
                           "PGx", "PAGER", "LANG"}) {
    EXPECT_FALSE(IsBargeOnlyVariable(name)) << name;
  }
  ::setenv("BARGE_TOKEN", "secret-token", 1);
  ::setenv("PGPASSWORD", "secret-password", 1);
  ResolvedTask task;
  task.env = {{"BARGE_STEP", "s"}, {"PGAPPNAME", "from-the-step"}};
  std::vector<std::string> env = TaskEnvironment(task);
  ::unsetenv("BARGE_TOKEN");
  ::unsetenv("PGPASSWORD");
  auto has = [&](const std::string& kv) { return std::count(env.begin(), env.end(), kv) == 1; };
  EXPECT_FALSE(has("BARGE_TOKEN=secret-token"));
  EXPECT_FALSE(has("PGPASSWORD=secret-password"));
  EXPECT_TRUE(has("BARGE_STEP=s"));
  EXPECT_TRUE(has("PGAPPNAME=from-the-step"));
}

}  // namespace
}  // namespace barge
