#include "objstore/stager.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "common/fs.h"
#include "common/strings.h"
#include "testing/s3rver.h"
#include "testing/temp_dir.h"

namespace barge {
namespace {

class Staging : public S3rverTest {
 protected:
  void SetUp() override {
    S3rverTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    prefix_ = Cat("staging-", ::testing::UnitTest::GetInstance()->current_test_info()->name());
    auto s = OpenObjectStore(server_->Url(prefix_));
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
  }
  std::string Url(const std::string& key) { return server_->Url(Cat(prefix_, "/", key)); }
  std::string Scratch(const std::string& task) { return (dir_.path() / task).string(); }

  std::string prefix_;
  std::unique_ptr<ObjectStore> store_;
  ObjectStores stores_;
  ScopedTempDir dir_{"staging"};
};

TEST_F(Staging, SharedInputsAreFetchedOnceAndLocalPathsPassThrough) {
  for (const char* k : {"x.csv", "y.csv", "deep/z.csv"}) ASSERT_TRUE(store_->Put(k, k).ok());
  InputCache cache(Scratch(".cache"), 1 << 20);
  auto a =
      StageInputs({Url("x.csv"), Url("y.csv"), "/local/file.csv"}, Scratch("a"), cache, stores_);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ((*a)[2], "/local/file.csv");
  EXPECT_EQ(*ReadFile((*a)[0]), "x.csv");
  EXPECT_EQ((*a)[0], Cat(Scratch("a"), "/barge-test/", prefix_, "/x.csv"));
  auto b = StageInputs({Url("y.csv"), Url("deep/z.csv")}, Scratch("b"), cache, stores_);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(*ReadFile((*b)[1]), "deep/z.csv");
  auto c = StageInputs({Url("x.csv")}, Scratch("c"), cache, stores_);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(cache.downloads(), 3);
  EXPECT_EQ(cache.hits(), 2);
}

TEST_F(Staging, AChangedObjectIsFetchedAgain) {
  ASSERT_TRUE(store_->Put("v.txt", "version 1").ok());
  InputCache cache(Scratch(".cache"), 1 << 20);
  auto first = StageInputs({Url("v.txt")}, Scratch("a"), cache, stores_);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(store_->Put("v.txt", "version 2, longer").ok());
  auto second = StageInputs({Url("v.txt")}, Scratch("b"), cache, stores_);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(*ReadFile((*second)[0]), "version 2, longer");
  EXPECT_EQ(*ReadFile((*first)[0]), "version 1");  // the first task's copy is its own
  EXPECT_EQ(cache.downloads(), 2);
}

TEST_F(Staging, TheCacheStaysWithinItsBudgetAndStagedFilesSurviveEviction) {
  std::vector<std::string> urls;
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(store_->Put(Cat("f", i), std::string(1000, static_cast<char>('a' + i))).ok());
    urls.push_back(Url(Cat("f", i)));
  }
  InputCache cache(Scratch(".cache"), 2500);
  auto staged = StageInputs(urls, Scratch("t"), cache, stores_, 1);
  ASSERT_TRUE(staged.ok()) << staged.status();
  int64_t cached = 0;
  for (const auto& e : std::filesystem::directory_iterator(Scratch(".cache"))) {
    cached += static_cast<int64_t>(e.file_size());
  }
  EXPECT_LE(cached, 2500);
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(*ReadFile((*staged)[i]), std::string(1000, static_cast<char>('a' + i)));
  }
}

TEST_F(Staging, ManyTasksAskingAtOnceShareOneDownload) {
  ASSERT_TRUE(store_->Put("hot.bin", std::string(200'000, 'h')).ok());
  InputCache cache(Scratch(".cache"), 1 << 20);
  std::vector<std::thread> tasks;
  std::atomic<int> ok{0};
  for (int t = 0; t < 8; ++t) {
    tasks.emplace_back([&, t] {
      auto s = StageInputs({Url("hot.bin")}, Scratch(Cat("task", t)), cache, stores_);
      if (s.ok() && ReadFile((*s)[0]).value_or("") == std::string(200'000, 'h')) ++ok;
    });
  }
  for (auto& t : tasks) t.join();
  EXPECT_EQ(ok, 8);
  EXPECT_EQ(cache.downloads(), 1);
}

TEST_F(Staging, KeysThatWouldEscapeTheScratchDirectoryAreBadInput) {
  InputCache cache(Scratch(".cache"), 1 << 20);
  for (const std::string& url :
       {Url("a/../../../etc/passwd"), Url("/abs"), Cat("s3://", S3rver::kBucket, "/"),
        std::string("s3://barge-test//x"), std::string("s3://barge-test/a/./b"),
        std::string("s3://barge-test/nul\0x", 22)}) {
    auto s = StageInputs({url}, Scratch("t"), cache, stores_);
    EXPECT_TRUE(absl::IsInvalidArgument(s.status())) << url << ": " << s.status();
  }
  EXPECT_FALSE(std::filesystem::exists(Scratch("t")));
}

}  // namespace
}  // namespace barge
