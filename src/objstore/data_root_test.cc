#include "objstore/data_root.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "common/fs.h"
#include "testing/temp_dir.h"

namespace barge {
namespace {

TEST(DataRoot, TheLayoutNamesEveryAttemptFileWithoutADisk) {
  const AttemptId a{"r1", "clean", 7, 2};
  EXPECT_EQ(DataRoot::RunPrefix("r1"), "runs/r1/");
  EXPECT_EQ(DataRoot::AttemptKey(a), "runs/r1/clean/7/a2");
  EXPECT_EQ(DataRoot::LogKey(a), "runs/r1/clean/7/a2.log");
  EXPECT_EQ(DataRoot::ManifestKey(a), "runs/r1/clean/7/a2.manifest.json");

  const DataRoot s3("s3://bucket/prefix", nullptr, std::nullopt);
  EXPECT_EQ(s3.Location(DataRoot::LogKey(a)), "s3://bucket/prefix/runs/r1/clean/7/a2.log");
  EXPECT_EQ(*s3.KeyOf("s3://bucket/prefix/runs/r1/clean/7/a2.log"), DataRoot::LogKey(a));
  // Anything else is refused, however it is spelt.
  for (const char* outside : {"s3://bucket/other/runs/r1/x.log", "s3://bucket/prefix2/x", "/etc"}) {
    absl::StatusOr<std::string> key = s3.KeyOf(outside);
    EXPECT_TRUE(absl::IsPermissionDenied(key.status())) << outside << ": " << key.status();
  }
  for (const char* climbing : {"s3://bucket/prefix/runs/../../x", "s3://bucket/prefix/"}) {
    absl::StatusOr<std::string> key = s3.KeyOf(climbing);
    EXPECT_TRUE(absl::IsInvalidArgument(key.status())) << climbing << ": " << key.status();
  }
}

TEST(DataRoot, RootsAreRecordedInOneFormAndToldApartInOnePlace) {
  EXPECT_EQ(*NormalizeRoot("s3://bucket/prefix//"), "s3://bucket/prefix");
  EXPECT_EQ(*NormalizeRoot("/data/root"), "/data/root");
  EXPECT_EQ(*NormalizeRoot("rel"), (std::filesystem::current_path() / "rel").string());
  EXPECT_FALSE(NormalizeRoot("s3://").ok());
  EXPECT_TRUE(IsLocalRoot("/data/root"));
  EXPECT_FALSE(IsLocalRoot("s3://bucket"));
}

TEST(DataRoot, ALocalRootReadsItsFilesAndNeverFollowsALinkOut) {
  ScopedTempDir temp("data-root");
  std::string root = (temp.path() / "root").string();
  ObjectStores stores;
  absl::StatusOr<DataRoot> data = DataRoot::Open(root, stores);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_FALSE(std::filesystem::exists(root)) << "opening a root creates nothing";
  ASSERT_EQ(data->local_dir(), root);
  const AttemptId a{"r1", "s", 0, 1};
  ASSERT_TRUE(MakeDirs(data->Location("runs/r1/s/0")).ok());
  ASSERT_TRUE(WriteFile(data->Location(DataRoot::LogKey(a)), "hello\n").ok());
  absl::StatusOr<std::string> key = data->KeyOf(data->Location(DataRoot::LogKey(a)));
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(*data->store().Get(*key, ByteRange{.offset = 1, .length = 3}), "ell");
  EXPECT_EQ(data->store().List(DataRoot::RunPrefix("r1"))->size(), 1u);

  // A task can write links under a local root; a location through one is not followed.
  ASSERT_TRUE(WriteFile((temp.path() / "secret").string(), "no\n").ok());
  std::string link = data->Location("runs/r1/s/0/a2.log");
  ASSERT_EQ(::symlink((temp.path() / "secret").c_str(), link.c_str()), 0);
  absl::StatusOr<std::string> through = data->KeyOf(link);
  EXPECT_TRUE(absl::IsPermissionDenied(through.status())) << through.status();
}

}  // namespace
}  // namespace barge
