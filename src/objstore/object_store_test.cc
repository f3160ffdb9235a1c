// The ObjectStore contract: every implementation runs these tests.
#include "objstore/object_store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <random>

#include "common/fs.h"
#include "common/shell.h"
#include "common/status.h"
#include "common/strings.h"
#include "objstore/s3_store.h"
#include "testing/s3rver.h"
#include "testing/temp_dir.h"

namespace barge {
namespace {

struct Impl {
  std::string name;
  std::function<absl::StatusOr<std::unique_ptr<ObjectStore>>(const std::string& dir)> open;
};

// What ctest shows beside the test name (else GoogleTest prints the struct's bytes).
[[maybe_unused]] void PrintTo(const Impl& c, std::ostream* os) { *os << c.name; }

// An S3 store on the test server, under a prefix of its own; small parts and pages so that
// multipart transfers and list pagination are exercised.
absl::StatusOr<std::unique_ptr<ObjectStore>> OpenOnS3rver(const std::string& dir) {
  S3rver* server = S3rver::Shared();
  if (server == nullptr) return absl::UnavailableError(S3rver::Why());
  server->ExportEnvironment();
  ASSIGN_OR_RETURN(
      S3Options o,
      S3OptionsFromUrl(server->Url(std::filesystem::path(dir).parent_path().filename().string())));
  o.part_size = 64 << 10;
  o.list_page_size = 2;
  o.conditional_writes = false;  // s3rver ignores If-None-Match
  return std::unique_ptr<ObjectStore>(new S3ObjectStore(o));
}

class ObjectStoreContract : public ::testing::TestWithParam<Impl> {
 protected:
  void SetUp() override {
    if (GetParam().name == "s3" && S3rver::Shared() == nullptr) {
      if (std::getenv("BARGE_REQUIRE_S3") != nullptr) FAIL() << S3rver::Why();
      GTEST_SKIP() << S3rver::Why();
    }
    auto s = GetParam().open((dir_.path() / "store").string());
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
  }
  ScopedTempDir dir_{"objstore"};
  std::unique_ptr<ObjectStore> store_;
};

TEST_P(ObjectStoreContract, PutGetHeadWholeAndRanged) {
  std::string data = "0123456789abcdef";
  auto put = store_->Put("a/b/data.bin", data);
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ(put->size, 16);
  EXPECT_EQ(*store_->Get("a/b/data.bin"), data);
  EXPECT_EQ(*store_->Get("a/b/data.bin", ByteRange{4, 3}), "456");
  EXPECT_EQ(*store_->Get("a/b/data.bin", ByteRange{10, -1}), "abcdef");
  EXPECT_EQ(*store_->Get("a/b/data.bin", ByteRange{14, 100}), "ef");
  // Ranges that hold nothing: empty, not an error (a log read at its end).
  EXPECT_EQ(*store_->Get("a/b/data.bin", ByteRange{16, 10}), "");
  EXPECT_EQ(*store_->Get("a/b/data.bin", ByteRange{40, -1}), "");
  EXPECT_EQ(*store_->Get("a/b/data.bin", ByteRange{3, 0}), "");
  auto head = store_->Head("a/b/data.bin");
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->size, 16);
  EXPECT_EQ(head->etag, put->etag);
  ASSERT_TRUE(store_->Put("a/b/data.bin", "new").ok());  // replaced whole
  EXPECT_EQ(*store_->Get("a/b/data.bin"), "new");
  EXPECT_NE(store_->Head("a/b/data.bin")->etag, put->etag);
  EXPECT_TRUE(absl::IsNotFound(store_->Get("a/missing").status()));
  EXPECT_TRUE(absl::IsNotFound(store_->Head("a/missing").status()));
}

TEST_P(ObjectStoreContract, FilesUpAndDown) {
  std::string local = (dir_.path() / "up.txt").string();
  ASSERT_TRUE(WriteFile(local, "from a file\n").ok());
  ASSERT_TRUE(store_->PutFile("f/up.txt", local).ok());
  std::string down = (dir_.path() / "deep/down.txt").string();
  auto info = store_->GetToFile("f/up.txt", down);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->size, 12);
  EXPECT_EQ(*ReadFile(down), "from a file\n");
}

TEST_P(ObjectStoreContract, LargeObjectsGoInPartsAndComeBackWhole) {
  std::string big;
  std::mt19937 rng(7);
  for (int i = 0; i < 300'000; ++i) big += static_cast<char>(rng());
  std::string local = (dir_.path() / "big.bin").string();
  ASSERT_TRUE(WriteFile(local, big).ok());
  auto up = store_->PutFile("big/object.bin", local);
  ASSERT_TRUE(up.ok()) << up.status();
  EXPECT_EQ(up->size, 300'000);
  EXPECT_EQ(store_->Head("big/object.bin")->size, 300'000);
  std::string down = (dir_.path() / "big.down").string();
  auto got = store_->GetToFile("big/object.bin", down);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(*ReadFile(down) == big);
  EXPECT_TRUE(*store_->Get("big/object.bin", ByteRange{123'456, 10}) == big.substr(123'456, 10));
}

TEST_P(ObjectStoreContract, ListsByPrefixInKeyOrder) {
  for (const char* k : {"runs/r1/b", "runs/r1/a/x", "runs/r10/c", "runs/r2/d", "other"}) {
    ASSERT_TRUE(store_->Put(k, k).ok());
  }
  auto keys = [&](std::string_view prefix) {
    std::vector<std::string> out;
    absl::StatusOr<std::vector<ObjectInfo>> listed = store_->List(prefix);  // outlives the loop
    EXPECT_TRUE(listed.ok()) << listed.status();
    for (const ObjectInfo& o : *listed) out.push_back(o.key);
    return out;
  };
  EXPECT_EQ(keys("runs/r1/"), (std::vector<std::string>{"runs/r1/a/x", "runs/r1/b"}));
  EXPECT_EQ(keys("runs/r1"), (std::vector<std::string>{"runs/r1/a/x", "runs/r1/b", "runs/r10/c"}));
  EXPECT_EQ(keys("").size(), 5u);
  EXPECT_TRUE(keys("nothing/").empty());
  EXPECT_EQ((*store_->List("runs/r2/"))[0].size, 9);
}

TEST_P(ObjectStoreContract, BatchDeleteIgnoresMissingKeys) {
  for (const char* k : {"d/1", "d/2", "d/3"}) ASSERT_TRUE(store_->Put(k, "x").ok());
  ASSERT_TRUE(store_->Delete({"d/1", "d/3", "d/never"}).ok());
  auto left = store_->List("d/");
  ASSERT_EQ(left->size(), 1u);
  EXPECT_EQ((*left)[0].key, "d/2");
}

TEST_P(ObjectStoreContract, PutIfAbsentCreatesOnce) {
  auto first = store_->PutIfAbsent("locks/slot", "one");
  if (absl::IsUnimplemented(first.status())) {
    // A store that cannot create atomically says so and writes nothing.
    EXPECT_TRUE(absl::IsNotFound(store_->Head("locks/slot").status()));
    return;
  }
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(*first);
  EXPECT_FALSE(*store_->PutIfAbsent("locks/slot", "two"));
  EXPECT_EQ(*store_->Get("locks/slot"), "one");
}

TEST_P(ObjectStoreContract, KeysThatEscapeAreRefused) {
  for (const char* k : {"", "/etc/passwd", "../up", "a/../../b", "a//b", "a/./b"}) {
    EXPECT_TRUE(absl::IsInvalidArgument(store_->Put(k, "x").status())) << k;
    EXPECT_TRUE(absl::IsInvalidArgument(store_->Get(k).status())) << k;
  }
  EXPECT_TRUE(absl::IsInvalidArgument(store_->Put(std::string("a\0b", 3), "x").status()));
  EXPECT_TRUE(store_->List("").value().empty());  // nothing was written anywhere
}

TEST_P(ObjectStoreContract, ABackslashIsAnOrdinaryCharacterOfAKey) {
  // A task may name an output "back\\slash.txt" on any root.
  ASSERT_TRUE(store_->Put("d/back\\slash.txt", "x").ok());
  EXPECT_EQ(*store_->Get("d/back\\slash.txt"), "x");
  std::vector<ObjectInfo> listed = store_->List("d/").value();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].key, "d/back\\slash.txt");
}

INSTANTIATE_TEST_SUITE_P(
    Implementations, ObjectStoreContract,
    ::testing::Values(Impl{"local", [](const std::string& dir) { return OpenObjectStore(dir); }},
                      Impl{"file_url",
                           [](const std::string& dir) { return OpenObjectStore("file://" + dir); }},
                      Impl{"s3", OpenOnS3rver}),
    [](const ::testing::TestParamInfo<Impl>& info) { return info.param.name; });

TEST(OpenObjectStore, RefusesBadS3Urls) {
  for (const char* url : {"s3://", "s3://Upper/x", "s3://bucket/../x", "s3://b_u/x"}) {
    auto s = OpenObjectStore(url);
    EXPECT_TRUE(absl::IsInvalidArgument(s.status())) << url;
  }
}

// The AWS CLI as an outside peer: it reads back, byte for byte, what barge wrote (whole and in
// parts, with awkward key names), and barge reads what it wrote (its own multipart layout).
TEST(S3Interop, AwsCliAndBargeReadEachOthersObjects) {
  S3rver* server = S3rver::Shared();
  if (server == nullptr || !std::filesystem::exists("/usr/bin/aws")) {
    if (std::getenv("BARGE_REQUIRE_S3") != nullptr) FAIL() << "no s3rver or AWS CLI";
    GTEST_SKIP() << "no s3rver or /usr/bin/aws";
  }
  server->ExportEnvironment();
  ScopedTempDir dir("interop");
  auto options = S3OptionsFromUrl(server->Url("interop"));
  ASSERT_TRUE(options.ok()) << options.status();
  options->part_size = 5 << 20;  // S3's smallest part
  S3ObjectStore store(*options);
  auto aws = [&](const std::string& args) {
    std::string cmd = Cat("/usr/bin/aws --endpoint-url ", server->Endpoint(), " s3 ", args,
                          " >/dev/null 2>", (dir.path() / "aws.err").string());
    int rc = std::system(cmd.c_str());
    EXPECT_EQ(rc, 0) << cmd << ": " << ReadFile((dir.path() / "aws.err").string()).value_or("");
  };
  std::mt19937 rng(11);
  auto random_file = [&](const std::string& name, int64_t size) {
    std::string data(static_cast<size_t>(size), '\0');
    for (char& c : data) c = static_cast<char>(rng());
    std::string path = (dir.path() / name).string();
    EXPECT_TRUE(WriteFile(path, data).ok());
    return std::make_pair(path, data);
  };

  for (const auto& [key, size] : std::vector<std::pair<std::string, int64_t>>{
           {"from-barge/small.txt", 1000},
           {"from-barge/with space/ü+&=.bin", 70'000},
           {"from-barge/big.bin", (12 << 20) + 12345}}) {  // 3 parts
    auto [path, data] = random_file("up.bin", size);
    auto up = store.PutFile(key, path);
    ASSERT_TRUE(up.ok()) << up.status();
    std::string back = (dir.path() / "aws-read.bin").string();
    aws(Cat("cp ", ShellQuote(server->Url("interop/" + key)), " ", back));
    EXPECT_TRUE(ReadFile(back).value_or("") == data) << key;
  }
  auto [path, data] = random_file("aws-up.bin", (9 << 20) + 7);  // the CLI goes multipart at 8 MiB
  aws(Cat("cp ", path, " ", ShellQuote(server->Url("interop/from-aws/big.bin"))));
  std::string down = (dir.path() / "barge-read.bin").string();
  auto got = store.GetToFile("from-aws/big.bin", down);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->size, static_cast<int64_t>(data.size()));
  EXPECT_TRUE(ReadFile(down).value_or("") == data);
  auto listed = store.List("from-");
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(listed->size(), 4u);
}

// The proxy of tests/s3_fault_proxy.py in front of the shared s3rver.
class S3ThroughProxy : public S3rverTest {
 protected:
  // Faults at random at `fault_rate`, and in a fixed cycle on PUTs and multipart completions.
  void StartProxy(double fault_rate, int seed, const std::string& put_faults = "",
                  const std::string& complete_faults = "") {
    ASSERT_TRUE(
        proxy_.Start({"/usr/bin/python3", Cat(BARGE_SOURCE_DIR, "/tests/s3_fault_proxy.py"),
                      "--upstream", server_->Endpoint(), "--fault-rate", std::to_string(fault_rate),
                      "--seed", std::to_string(seed), "--log", faults_log(), "--put-faults",
                      put_faults, "--complete-faults", complete_faults},
                     (dir_.path() / "proxy.err").string()))
        << ReadFile((dir_.path() / "proxy.err").string()).value_or("");
    server_->ExportEnvironment(proxy_.Endpoint());
  }
  std::string faults_log() const { return (dir_.path() / "faults.log").string(); }
  S3Options Options(const std::string& prefix) {
    S3Options o = S3OptionsFromUrl(server_->Url(prefix)).value();
    o.part_size = 64 << 10;
    o.conditional_writes = false;
    return o;
  }

  ScopedTempDir dir_{"s3proxy"};
  ListeningProcess proxy_;
};

// Every kind of request barge sends carries a signature that botocore recomputes to the same
// value; a wrong secret is refused as S3 would, and the secret appears in no error.
TEST_F(S3ThroughProxy, SignaturesVerifyAndAWrongSecretIsRefused) {
  StartProxy(0, 1);
  S3ObjectStore store(Options("signed"));
  std::string big(300'000, 'x');
  ASSERT_TRUE(WriteFile((dir_.path() / "big").string(), big).ok());
  ASSERT_TRUE(store.Put("a key/with spaces+plus&amp=eq.txt", "hello").ok());
  ASSERT_TRUE(store.PutFile("multi/part.bin", (dir_.path() / "big").string()).ok());
  EXPECT_EQ(*store.Get("a key/with spaces+plus&amp=eq.txt"), "hello");
  EXPECT_EQ(store.Head("multi/part.bin")->size, 300'000);
  EXPECT_EQ(store.List("")->size(), 2u);
  EXPECT_TRUE(store.GetToFile("multi/part.bin", (dir_.path() / "down").string()).ok());
  EXPECT_TRUE(store.Delete({"multi/part.bin"}).ok());
  EXPECT_EQ(ReadFile(faults_log()).value_or(""), "");  // no request was refused

  ::setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-0123456789", 1);
  S3ObjectStore wrong(Options("signed"));
  absl::StatusOr<ObjectInfo> put = wrong.Put("x", "y");
  EXPECT_TRUE(absl::IsPermissionDenied(put.status())) << put.status();
  EXPECT_NE(put.status().message().find("SignatureDoesNotMatch"), std::string::npos);
  EXPECT_EQ(put.status().message().find("not-the-secret"), std::string::npos);
}

// At a 30% fault rate (503 SlowDown, 500, resets mid-body, PUTs and multipart completions
// applied but answered 500) every object written and read is exactly right, and no multipart
// upload is left behind.
TEST_F(S3ThroughProxy, ThirtyPercentFaultsChangeNoByte) {
  StartProxy(0.3, 20261122, "applied500,slowdown,reset", "applied500,error200");
  S3Options o = Options("faulty");
  o.max_attempts = 20;
  o.retry_base_ms = 1;
  o.retry_cap_ms = 20;
  S3ObjectStore store(o);
  std::mt19937 rng(5);
  std::map<std::string, std::string> written;
  for (int i = 0; i < 12; ++i) {
    std::string data(static_cast<size_t>(i % 3 == 0 ? 200'000 + i : 1000 + i), '\0');
    for (char& c : data) c = static_cast<char>(rng());
    std::string key = Cat("obj/", i);
    std::string local = (dir_.path() / Cat("up", i)).string();
    ASSERT_TRUE(WriteFile(local, data).ok());
    auto up = store.PutFile(key, local);  // objects over 64 KiB go in parts
    ASSERT_TRUE(up.ok()) << key << ": " << up.status();
    written[key] = data;
  }
  auto listed = store.List("obj/");
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), written.size());
  for (const auto& [key, data] : written) {
    std::string down = (dir_.path() / "down").string();
    auto got = store.GetToFile(key, down);
    ASSERT_TRUE(got.ok()) << key << ": " << got.status();
    EXPECT_TRUE(ReadFile(down).value_or("") == data) << key;
    auto whole = store.Get(key);
    ASSERT_TRUE(whole.ok()) << key << ": " << whole.status();
    EXPECT_TRUE(*whole == data) << key;
  }
  ASSERT_TRUE(store.Delete({"obj/0", "obj/1"}).ok());
  EXPECT_EQ(store.List("obj/")->size(), written.size() - 2);
  EXPECT_EQ(server_->DanglingUploads(), 0);
  std::string faults = ReadFile(faults_log()).value_or("");
  for (const char* kind :
       {"slowdown ", "error500 ", "reset ", "applied500 PUT", "applied500 POST", "error200 POST"}) {
    EXPECT_NE(faults.find(kind), std::string::npos) << kind << " never injected:\n" << faults;
  }
  EXPECT_EQ(faults.find("badsignature"), std::string::npos);
  std::printf("[  FAULTS  ] %zu injected, %lld retries for %lld requests\n",
              static_cast<size_t>(std::count(faults.begin(), faults.end(), '\n')),
              static_cast<long long>(store.counters().retries.load()),
              static_cast<long long>(store.counters().requests.load()));
}

}  // namespace
}  // namespace barge
