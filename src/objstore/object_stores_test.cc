// ObjectStores and what takes it: staging, files() globs and data roots run here against
// in-memory stores passed in through the opener (no disk store, no S3 server), which proves that
// nothing reaches a store but through the ObjectStores it is given.
#include "objstore/object_stores.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <vector>

#include "common/fs.h"
#include "objstore/data_root.h"
#include "objstore/glob.h"
#include "objstore/stager.h"
#include "testing/memory_store.h"
#include "testing/temp_dir.h"

namespace barge {
namespace {

// Hands out one MemoryObjectStore per URL and remembers the URLs it was asked for.
class MemoryStores {
 public:
  MemoryObjectStore& Bucket(const std::string& url) {
    auto& store = made_[url];
    if (store == nullptr) store = std::make_unique<MemoryObjectStore>(url);
    return *store;
  }
  ObjectStores::Opener Opener() {
    return [this](const std::string& url) -> absl::StatusOr<std::unique_ptr<ObjectStore>> {
      opened_.push_back(url);
      if (!made_.contains(url)) return absl::NotFoundError("no such bucket " + url);
      return std::move(made_[url]);
    };
  }
  const std::vector<std::string>& opened() const { return opened_; }

 private:
  std::map<std::string, std::unique_ptr<MemoryObjectStore>> made_;
  std::vector<std::string> opened_;
};

TEST(ObjectStores, OpensEachUrlOnceAndRetriesAFailedOpen) {
  MemoryStores fakes;
  MemoryObjectStore& raw = fakes.Bucket("s3://raw");
  ObjectStores stores(fakes.Opener());
  EXPECT_EQ(*stores.Open("s3://raw"), &raw);
  EXPECT_EQ(*stores.Open("s3://raw"), &raw);
  EXPECT_TRUE(absl::IsNotFound(stores.Open("s3://other").status()));
  EXPECT_TRUE(absl::IsNotFound(stores.Open("s3://other").status()));
  EXPECT_EQ(fakes.opened(), (std::vector<std::string>{"s3://raw", "s3://other", "s3://other"}));
}

TEST(ObjectStores, StagingReadsEachObjectFromItsBucketsStoreAndLeavesLocalPathsAlone) {
  MemoryStores fakes;
  MemoryObjectStore& raw = fakes.Bucket("s3://raw");
  ASSERT_TRUE(raw.Put("in/a.csv", "a\n").ok());
  ASSERT_TRUE(raw.Put("in/deep/b.csv", "b\n").ok());
  ObjectStores stores(fakes.Opener());
  ScopedTempDir dir("stores");
  InputCache cache((dir.path() / "cache").string(), 1 << 20);
  std::string into = (dir.path() / "inputs").string();

  auto staged = StageInputs({"s3://raw/in/a.csv", "/local/c.csv", "s3://raw/in/deep/b.csv"}, into,
                            cache, stores);
  ASSERT_TRUE(staged.ok()) << staged.status();
  EXPECT_EQ(*staged, (std::vector<std::string>{into + "/raw/in/a.csv", "/local/c.csv",
                                               into + "/raw/in/deep/b.csv"}));
  EXPECT_EQ(*ReadFile((*staged)[0]), "a\n");
  EXPECT_EQ(*ReadFile((*staged)[2]), "b\n");
  EXPECT_EQ(raw.calls("GetToFile"), 2);
  EXPECT_EQ(fakes.opened(), std::vector<std::string>{"s3://raw"});
  EXPECT_EQ(*StagedPath("s3://raw/in/a.csv", into), (*staged)[0]);
  EXPECT_EQ(*StagedPath("/local/c.csv", into), std::nullopt);
}

TEST(ObjectStores, AStoreFaultWhileStagingNamesTheInputAndKeepsItsCode) {
  MemoryStores fakes;
  MemoryObjectStore& raw = fakes.Bucket("s3://raw");
  ASSERT_TRUE(raw.Put("a.csv", "a\n").ok());
  raw.set_fault([](std::string_view method, std::string_view) {
    return method == "GetToFile" ? absl::UnavailableError("503 SlowDown after 5 tries")
                                 : absl::OkStatus();
  });
  ObjectStores stores(fakes.Opener());
  ScopedTempDir dir("stores");
  InputCache cache((dir.path() / "cache").string(), 1 << 20);

  auto staged = StageInputs({"s3://raw/a.csv"}, (dir.path() / "in").string(), cache, stores);
  ASSERT_TRUE(absl::IsUnavailable(staged.status())) << staged.status();
  EXPECT_EQ(staged.status().message(), "staging s3://raw/a.csv: 503 SlowDown after 5 tries");
  EXPECT_EQ(cache.downloads(), 0);
  EXPECT_TRUE(absl::IsNotFound(
      StageInputs({"s3://gone/a.csv"}, (dir.path() / "in").string(), cache, stores).status()));
}

TEST(ObjectStores, AFilesGlobListsOnlyThePrefixBeforeTheFirstWildcard) {
  MemoryStores fakes;
  MemoryObjectStore& raw = fakes.Bucket("s3://raw");
  for (const char* key : {"ev/2026/b.csv", "ev/2026/a.csv", "ev/2026/x/c.csv", "ev/2026/a.txt"}) {
    ASSERT_TRUE(raw.Put(key, "x").ok());
  }
  std::vector<std::string> prefixes;
  raw.set_fault([&](std::string_view method, std::string_view key) {
    if (method == "List") prefixes.emplace_back(key);
    return absl::OkStatus();
  });
  ObjectStores stores(fakes.Opener());

  auto files = GlobInputs("s3://raw/ev/2026/*.csv", stores);
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_EQ(*files, (std::vector<std::string>{"s3://raw/ev/2026/a.csv", "s3://raw/ev/2026/b.csv"}));
  EXPECT_EQ(prefixes, std::vector<std::string>{"ev/2026/"});

  raw.set_fault([](std::string_view, std::string_view) { return absl::UnavailableError("down"); });
  EXPECT_TRUE(absl::IsUnavailable(GlobInputs("s3://raw/ev/*", stores).status()));
}

TEST(ObjectStores, AnObjectStoreRootIsOpenedThroughTheStoresItIsGiven) {
  MemoryStores fakes;
  MemoryObjectStore& bucket = fakes.Bucket("s3://data/prefix");
  ObjectStores stores(fakes.Opener());
  absl::StatusOr<DataRoot> root = DataRoot::Open("s3://data/prefix", stores);
  ASSERT_TRUE(root.ok()) << root.status();
  EXPECT_EQ(&root->store(), &bucket);
  EXPECT_EQ(root->local_dir(), std::nullopt);
  EXPECT_EQ(*root->KeyOf("s3://data/prefix/runs/r1/s/0/a1.log"), "runs/r1/s/0/a1.log");
}

}  // namespace
}  // namespace barge
