// barge gc: finished runs older than the cutoff lose their data (local directory or S3 prefix)
// and then their records; running runs and young runs are untouched; --dry-run deletes nothing
// and reports exactly what a real pass then deletes.
#include <filesystem>

#include "common/strings.h"
#include "harness.h"
#include "objstore/object_store.h"
#include "testing/s3rver.h"

namespace barge::testing {
namespace {

namespace fs = std::filesystem;

constexpr char kPipeline[] = R"(
name: two
params: {fail: "0"}
steps:
  - name: make
    foreach: range(3)
    run: seq 1 {index} > "$BARGE_OUTPUT_DIR/n"; echo made {index}
  - name: check
    needs: [make]
    run: test {params.fail} = 0
)";

// Files and bytes under a local run's data directory.
std::pair<int64_t, int64_t> Tally(const fs::path& dir) {
  int64_t files = 0, bytes = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    ++files;
    bytes += static_cast<int64_t>(e.file_size());
  }
  return {files, bytes};
}

class GcTest : public E2eTest {
 protected:
  fs::path RunDir(const std::string& id) { return dir() / ".barge/data/runs" / id; }
};

TEST_F(GcTest, CollectsFinishedRunsOnlyAndDryRunTellsExactlyWhat) {
  Write("two.yaml", kPipeline);
  Result ok = Barge({"run", "two.yaml"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  std::string succeeded = RunIdFrom(ok);
  Result bad = Barge({"run", "two.yaml", "-p", "fail=1"});
  ASSERT_EQ(bad.exit_code, 1) << bad.err;
  std::string failed = RunIdFrom(bad);
  Result detached = Barge({"run", "--detach", "two.yaml"});  // running: no worker drives it
  ASSERT_EQ(detached.exit_code, 0) << detached.err;
  std::string running(Trim(detached.out));
  ASSERT_TRUE(fs::exists(RunDir(succeeded)));
  auto [files_ok, bytes_ok] = Tally(RunDir(succeeded));
  auto [files_bad, bytes_bad] = Tally(RunDir(failed));
  ASSERT_GT(files_ok, 6);  // 3 outputs, logs and manifests

  // barge runs filters by state and pipeline in the store.
  nlohmann::json only_failed = Json({"runs", "--only", "failed", "--json"});
  ASSERT_EQ(only_failed.size(), 1u);
  EXPECT_EQ(only_failed[0]["id"], failed);
  EXPECT_EQ(Json({"runs", "--pipeline", "two", "--json"}).size(), 3u);
  EXPECT_TRUE(Json({"runs", "--pipeline", "other", "--json"}).empty());
  EXPECT_EQ(Barge({"runs", "--only", "fine"}).exit_code, 2);

  // Young runs are not collected.
  nlohmann::json none = Json({"gc", "--older-than", "1h", "--json"});
  EXPECT_TRUE(none["runs"].empty());

  nlohmann::json dry = Json({"gc", "--older-than", "0s", "--dry-run", "--json"});
  ASSERT_EQ(dry["runs"].size(), 2u) << dry.dump();
  EXPECT_EQ(dry["runs"][0]["id"], succeeded);  // oldest first
  EXPECT_EQ(dry["runs"][0]["objects"], files_ok);
  EXPECT_EQ(dry["runs"][0]["bytes"], bytes_ok);
  EXPECT_EQ(dry["runs"][1]["id"], failed);
  EXPECT_EQ(dry["runs"][1]["state"], "failed");
  EXPECT_EQ(dry["objects"], files_ok + files_bad);
  EXPECT_TRUE(fs::exists(RunDir(succeeded))) << "a dry run deletes nothing";
  EXPECT_EQ(Barge({"status", succeeded}).exit_code, 0);

  Result gc = Barge({"gc", "--older-than", "0s"});
  ASSERT_EQ(gc.exit_code, 0) << gc.err;
  EXPECT_NE(gc.out.find(Cat("deleted ", succeeded, "  two  succeeded")), std::string::npos)
      << gc.out;
  EXPECT_NE(gc.out.find(Cat("deleted 2 runs finished before")), std::string::npos) << gc.out;
  for (const std::string& id : {succeeded, failed}) {
    EXPECT_FALSE(fs::exists(RunDir(id))) << id;
    Result status = Barge({"status", id});
    EXPECT_EQ(status.exit_code, 2) << id << ": " << status.out;
  }
  nlohmann::json left = Json({"status", running, "--json"});
  EXPECT_EQ(left["state"], "running");
  nlohmann::json runs = Json({"runs", "--json"});
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0]["id"], running);

  // Nothing left to collect; a bad cutoff changes nothing and names the flag.
  EXPECT_TRUE(Json({"gc", "--older-than", "0s", "--json"})["runs"].empty());
  Result wrong = Barge({"gc", "--older-than", "soon"});
  EXPECT_EQ(wrong.exit_code, 2);
  EXPECT_NE(wrong.err.find("--older-than: invalid duration \"soon\""), std::string::npos)
      << wrong.err;
  EXPECT_EQ(Json({"runs", "--json"}).size(), 1u);
}

TEST_F(GcTest, DeletesARunsObjectsUnderAnS3Root) {
  S3rver* server = S3rver::Shared();
  if (server == nullptr) {
    if (std::getenv("BARGE_REQUIRE_S3") != nullptr) FAIL() << S3rver::Why();
    GTEST_SKIP() << S3rver::Why();
  }
  server->ExportEnvironment();
  std::string prefix = dir().filename().string();
  auto store = OpenObjectStore(server->Url(prefix));
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->Put("keep/me.txt", "other data").ok());
  Write("two.yaml", kPipeline);
  std::string root = server->Url(prefix);
  Result first = Barge({"run", "two.yaml", "--root", root});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  std::string id = RunIdFrom(first);
  auto objects = (*store)->List(Cat("runs/", id, "/"));
  ASSERT_TRUE(objects.ok()) << objects.status();
  ASSERT_GT(objects->size(), 6u);
  int64_t bytes = 0;
  for (const ObjectInfo& o : *objects) bytes += o.size;

  nlohmann::json gc = Json({"gc", "--older-than", "0s", "--json"});
  ASSERT_EQ(gc["runs"].size(), 1u) << gc.dump();
  EXPECT_EQ(gc["runs"][0]["objects"], static_cast<int64_t>(objects->size()));
  EXPECT_EQ(gc["runs"][0]["bytes"], bytes);
  EXPECT_TRUE((*store)->List(Cat("runs/", id, "/"))->empty());
  EXPECT_EQ((*store)->Get("keep/me.txt").value_or(""), "other data");
  EXPECT_EQ(Barge({"status", id}).exit_code, 2);
}

}  // namespace
}  // namespace barge::testing
