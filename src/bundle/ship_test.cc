#include "bundle/ship.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "common/fs.h"
#include "objstore/data_root.h"
#include "spec/pipeline.h"
#include "testing/temp_dir.h"

namespace barge {
namespace {

class Ship : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = tmp_.path().string();
    ASSERT_TRUE(MakeDirs(dir_ + "/proj/data").ok());
    ASSERT_TRUE(WriteFile(dir_ + "/proj/run.sh", "#!/bin/sh\necho hi\n").ok());
    ASSERT_TRUE(WriteFile(dir_ + "/proj/data/a.csv", "x\n1\n").ok());
    ASSERT_TRUE(WriteFile(dir_ + "/proj/data/b.csv", "x\n2\n").ok());
    ASSERT_TRUE(WriteFile(dir_ + "/elsewhere.csv", "x\n3\n").ok());
    absl::StatusOr<Pipeline> p = ParsePipeline(
        "name: p\nsteps:\n"
        "  - name: a\n    foreach: files(\"data/*.csv\")\n    run: ./run.sh\n"
        "  - name: b\n    sql: SELECT * FROM more\n    inputs:\n"
        "      more: files(\"" +
            dir_ + "/elsewhere.csv\")\n",
        dir_ + "/proj/pipeline.yaml", {});
    ASSERT_TRUE(p.ok()) << p.status();
    pipeline_ = *std::move(p);
    options_.scratch = dir_ + "/scratch";
    root_ = dir_ + "/root";
  }
  ScopedTempDir tmp_{"ship"};
  std::string dir_, root_;
  Pipeline pipeline_;
  ShipOptions options_;
  ObjectStores stores_;
};

TEST_F(Ship, StoresTheBundleOncePerContent) {
  absl::StatusOr<Shipment> first = ShipRun(pipeline_, root_, stores_, options_);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->bundle_stored);
  EXPECT_EQ(first->bundle.size(), 64u);
  EXPECT_TRUE(std::filesystem::exists(root_ + "/" + BundleKey(first->bundle)));
  EXPECT_EQ(first->uploads_json, "{}") << "a store on one machine reads files in place";
  absl::StatusOr<Shipment> second = ShipRun(pipeline_, root_, stores_, options_);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_FALSE(second->bundle_stored);
  EXPECT_EQ(second->bundle, first->bundle);
  ASSERT_TRUE(WriteFile(dir_ + "/proj/run.sh", "#!/bin/sh\necho changed\n").ok());
  absl::StatusOr<Shipment> third = ShipRun(pipeline_, root_, stores_, options_);
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_TRUE(third->bundle_stored);
  EXPECT_NE(third->bundle, first->bundle);
  // The scratch copy of the archive is gone once stored.
  for (const auto& e : std::filesystem::directory_iterator(options_.scratch)) {
    ADD_FAILURE() << "left behind: " << e.path();
  }
}

TEST_F(Ship, ASharedStoreWithALocalRootIsRefusedUnlessTheRootIsShared) {
  options_.shared_state = true;
  absl::StatusOr<Shipment> refused = ShipRun(pipeline_, root_, stores_, options_);
  EXPECT_TRUE(absl::IsFailedPrecondition(refused.status())) << refused.status();
  EXPECT_NE(refused.status().message().find("--shared-root"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(root_)) << "a refused submission stored something";

  options_.shared_root = true;
  absl::StatusOr<Shipment> shipped = ShipRun(pipeline_, root_, stores_, options_);
  ASSERT_TRUE(shipped.ok()) << shipped.status();
  EXPECT_EQ(shipped->files_matched, 3);
  EXPECT_EQ(shipped->files_stored, 3);
  // Each pattern maps to the stored copies of what it matched, under files/<sha256>/<name>.
  std::optional<std::vector<std::string>> a =
      UploadedMatches(shipped->uploads_json, pipeline_.steps[0].foreach.pattern);
  ASSERT_TRUE(a.has_value()) << shipped->uploads_json;
  ASSERT_EQ(a->size(), 2u);
  absl::StatusOr<std::string> sha = Sha256File(dir_ + "/proj/data/a.csv");
  ASSERT_TRUE(sha.ok());
  EXPECT_EQ((*a)[0], root_ + "/" + UploadKey(*sha, "a.csv"));
  EXPECT_EQ(ReadFile((*a)[0]).value(), "x\n1\n");
  std::optional<std::vector<std::string>> more =
      UploadedMatches(shipped->uploads_json, pipeline_.steps[1].inputs[0].source.pattern);
  ASSERT_TRUE(more.has_value());
  EXPECT_EQ(more->size(), 1u);
  EXPECT_FALSE(UploadedMatches(shipped->uploads_json, "/not/a/pattern/*").has_value());

  // Unchanged files are not stored again.
  absl::StatusOr<Shipment> again = ShipRun(pipeline_, root_, stores_, options_);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->files_stored, 0);
  EXPECT_EQ(again->uploads_json, shipped->uploads_json);
}

TEST_F(Ship, TheRootAndScratchInsideThePipelineDirectoryStayOutOfTheBundle) {
  root_ = dir_ + "/proj/.barge/data";
  options_.scratch = dir_ + "/proj/.barge/scratch";
  options_.exclude = {options_.scratch, root_};
  absl::StatusOr<Shipment> first = ShipRun(pipeline_, root_, stores_, options_);
  ASSERT_TRUE(first.ok()) << first.status();
  // The stored bundle itself is now inside the directory: the next pack must not include it.
  absl::StatusOr<Shipment> second = ShipRun(pipeline_, root_, stores_, options_);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->bundle, first->bundle);
  EXPECT_EQ(second->packed.files, 3);  // run.sh, data/a.csv, data/b.csv
}

}  // namespace
}  // namespace barge
