// Pipelines reading their inputs from S3 (the test s3rver): files("s3://...") fans out over a
// listing, command and SQL steps read staged copies, bad keys and missing objects are bad input.
#include "common/strings.h"
#include "harness.h"
#include "objstore/object_store.h"
#include "objstore/s3_testing.h"

namespace barge::testing {
namespace {

class S3PipelineTest : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    server_ = S3rver::Shared();
    if (server_ == nullptr) {
      if (std::getenv("BARGE_REQUIRE_S3") != nullptr) FAIL() << S3rver::Why();
      GTEST_SKIP() << S3rver::Why();
    }
    server_->ExportEnvironment();  // inherited by every barge this test starts
    prefix_ = dir().filename().string();
    auto s = OpenObjectStore(server_->Url(prefix_));
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
  }
  std::string Url(const std::string& key) { return server_->Url(Cat(prefix_, "/", key)); }

  S3rver* server_ = nullptr;
  std::string prefix_;
  std::unique_ptr<ObjectStore> store_;
};

TEST_F(S3PipelineTest, FilesFanOutOverAListingAndStepsReadStagedCopies) {
  int64_t rows = 0, amount = 0;
  for (int f = 0; f < 3; ++f) {
    std::string csv = "user_id,amount\n";
    for (int i = 0; i <= f * 10; ++i) {
      csv += Cat(i % 7, ",", i * (f + 1), "\n");
      ++rows;
      amount += i * (f + 1);
    }
    ASSERT_TRUE(store_->Put(Cat("raw/day=", f, "/events.csv"), csv).ok());
  }
  ASSERT_TRUE(store_->Put("raw/notes.txt", "not a csv").ok());
  std::string p = Write("s3.yaml", Cat(R"(
name: from-s3
steps:
  - name: count
    foreach: files(")",
                                       Url("raw/*/events.csv"), R"(")
    run: tail -n +2 {item} | wc -l | tr -d ' ' > "$BARGE_OUTPUT_DIR/n"
  - name: total
    inputs: {events: files(")",
                                       Url("raw/*/*.csv"), R"(")}
    sql: SELECT count(*) AS n, sum(amount) AS amount FROM events
    output: {format: csv}
)"));
  Result r = Barge({"run", p});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string id = RunIdFrom(r);
  nlohmann::json counts = Json({"tasks", id, "--step", "count", "--json"});
  ASSERT_EQ(counts.size(), 3u);  // notes.txt did not match
  for (const auto& t : counts) {
    int64_t i = t["index"];
    EXPECT_EQ(Read(t["outputs"][0]["path"]), Cat(i * 10 + 1, "\n"));
  }
  nlohmann::json total = Json({"tasks", id, "--step", "total", "--json"})[0];
  EXPECT_EQ(Read(total["outputs"][0]["path"]), Cat("n,amount\n", rows, ",", amount, "\n"));
}

TEST_F(S3PipelineTest, AnObjectGoneBeforeItsTaskRunsIsBadInputAndNotRetried) {
  ASSERT_TRUE(store_->Put("raw/a.csv", "x\n1\n").ok());
  ASSERT_TRUE(store_->Put("raw/b.csv", "x\n2\n").ok());
  std::string p = Write("gone.yaml", Cat(R"(
name: gone
steps:
  - name: read
    retries: 3
    foreach: files(")",
                                         Url("raw/*.csv"), R"(")
    run: cat {item} > "$BARGE_OUTPUT_DIR/copy"
)"));
  // Submitting lists the bucket and queues both tasks; b.csv is deleted before either runs.
  Result submitted = Barge({"run", p, "--detach"});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  std::string id = submitted.out.substr(0, submitted.out.find('\n'));
  ASSERT_EQ(Json({"tasks", id, "--json"}).size(), 2u);
  ASSERT_TRUE(store_->Delete({"raw/b.csv"}).ok());
  Result r = Barge({"resume", id});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  nlohmann::json tasks = Json({"tasks", id, "--json", "--attempts"});
  ASSERT_EQ(tasks.size(), 2u);
  EXPECT_EQ(tasks[0]["state"], "succeeded");
  EXPECT_EQ(Read(tasks[0]["outputs"][0]["path"]), "x\n1\n");
  EXPECT_EQ(tasks[1]["state"], "failed");
  EXPECT_EQ(tasks[1]["attempts"], 1);  // bad input: not retried, despite retries: 3
  EXPECT_EQ(tasks[1]["attempt_history"][0]["failure_class"], "bad_input");
  EXPECT_NE(tasks[1]["error"].get<std::string>().find("raw/b.csv"), std::string::npos)
      << tasks[1].dump();
}

TEST_F(S3PipelineTest, ValidateSaysWhenAnS3PatternMatchesNothing) {
  std::string p = Write("none.yaml", Cat(R"(
name: none
steps:
  - name: read
    foreach: files(")",
                                         Url("nothing/*.csv"), R"(")
    run: cat {item}
)"));
  Result r = Barge({"validate", p});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("matches no files"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace barge::testing
