// Pipelines reading their inputs from S3 (the test s3rver): files("s3://...") fans out over a
// listing, command and SQL steps read staged copies, bad keys and missing objects are bad input.
#include <algorithm>
#include <atomic>
#include <filesystem>
#include <set>
#include <thread>

#include "common/strings.h"
#include "harness.h"
#include "objstore/object_store.h"
#include "testing/s3rver.h"

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
  // tests/s3_fault_proxy.py in front of the server, answering ListObjectsV2 itself in pages of
  // at most 7 entries (some empty, tokens that need encoding) over the server's keys, and
  // refusing a DeleteObjects of more than 1,000 keys. Its pages and deletes go to proxy_log().
  void StartListingProxy(ListeningProcess& proxy) {
    ASSERT_TRUE(proxy.Start({"/usr/bin/python3", Cat(BARGE_SOURCE_DIR, "/tests/s3_fault_proxy.py"),
                             "--upstream", server_->Endpoint(), "--list-page-size", "7",
                             "--upstream-dir", server_->DataDir(), "--log", proxy_log()},
                            (dir() / "proxy.err").string()))
        << Read((dir() / "proxy.err").string());
  }
  std::string proxy_log() { return (dir() / "proxy.log").string(); }
  // Writes `keys` under this test's prefix straight to the server, eight at a time.
  void PutAll(const std::vector<std::string>& keys) {
    std::vector<std::thread> threads;
    std::atomic<size_t> next{0};
    std::atomic<int> failed{0};
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&] {
        std::unique_ptr<ObjectStore> store = OpenObjectStore(server_->Url(prefix_)).value();
        for (size_t i = next++; i < keys.size(); i = next++) {
          if (!store->Put(keys[i], keys[i]).ok()) ++failed;
        }
      });
    }
    for (std::thread& t : threads) t.join();
    ASSERT_EQ(failed, 0);
  }
  // Every key under `prefix`, through a store opened now (so through the current endpoint).
  std::vector<std::string> Keys(const std::string& prefix) {
    std::vector<std::string> out;
    absl::StatusOr<std::vector<ObjectInfo>> listed =
        OpenObjectStore(server_->Url(prefix_)).value()->List(prefix);
    EXPECT_TRUE(listed.ok()) << listed.status();
    if (listed.ok()) {
      for (const ObjectInfo& o : *listed) out.push_back(o.key);
    }
    return out;
  }

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

// With --root s3://..., every attempt's outputs, manifest and log are written to the bucket in
// the same layout as on disk; downstream tasks stage them back; `barge logs` reads them there.
TEST_F(S3PipelineTest, RootOnS3KeepsOutputsManifestsAndLogsInTheBucket) {
  for (int f = 0; f < 3; ++f) {
    ASSERT_TRUE(store_->Put(Cat("in/", f, ".txt"), Cat(f + 1, "\n")).ok());
  }
  std::string p = Write("root.yaml", Cat(R"yaml(
name: on-s3
steps:
  - name: square
    foreach: files(")yaml",
                                         Url("in/*.txt"), R"yaml(")
    run: |
      echo "squaring $(cat {item})"
      echo $(( $(cat {item}) * $(cat {item}) )) > "$BARGE_OUTPUT_DIR/sq"
  - name: total
    needs: [square]
    run: |
      sum=0
      while IFS= read -r f; do sum=$((sum + $(cat "$f"))); done < "$BARGE_INPUT_LIST"
      echo "$sum" > "$BARGE_OUTPUT_DIR/total"
)yaml"));
  std::string root = Url("root");
  Result r = Barge({"run", p, "--root", root});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string id = RunIdFrom(r);
  nlohmann::json total = Json({"tasks", id, "--step", "total", "--json"})[0];
  std::string url = total["outputs"][0]["path"];
  EXPECT_EQ(url, Cat(root, "/runs/", id, "/total/0/a1/total"));
  auto key = [&](const std::string& rest) { return Cat("root/runs/", id, "/", rest); };
  EXPECT_EQ(*store_->Get(key("total/0/a1/total")), "14\n");  // 1 + 4 + 9
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(*store_->Get(key(Cat("square/", i, "/a1/sq"))), Cat((i + 1) * (i + 1), "\n"));
    EXPECT_TRUE(store_->Head(key(Cat("square/", i, "/a1.manifest.json"))).ok());
  }
  EXPECT_EQ(Barge({"logs", id, "square", "1"}).out, "squaring 2\n");
  // Nothing was left in the local data directory or scratch.
  EXPECT_FALSE(std::filesystem::exists(dir() / ".barge/data/runs"));
  EXPECT_FALSE(std::filesystem::exists(dir() / ".barge/scratch" / id));
  Result bad = Barge({"run", p, "--root", "s3://Not_A_Bucket/x"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--root"), std::string::npos) << bad.err;
}

// The events example (generate, clean, shuffle into buckets, aggregate, report) with its root
// on S3 gives, byte for byte, the report it gives on a local disk.
TEST_F(S3PipelineTest, TheEventsExampleOnS3MatchesItsLocalRun) {
  std::string pipeline = Cat(BARGE_SOURCE_DIR, "/examples/events/pipeline.yaml");
  std::vector<std::string> small = {"-p", "rows_per_file=5000", "-p", "buckets=5"};
  auto report_sha = [&](const std::vector<std::string>& where) {
    std::vector<std::string> args = {"run", pipeline};
    args.insert(args.end(), small.begin(), small.end());
    args.insert(args.end(), where.begin(), where.end());
    Result r = Barge(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<std::string> tasks = {"tasks", RunIdFrom(r), "--step", "report", "--json"};
    tasks.insert(tasks.end(), where.begin(), where.end() - 2);  // the state flags, not --root
    nlohmann::json t = Json(tasks);
    return t.empty() ? std::string() : t[0]["outputs"][0]["sha256"].get<std::string>();
  };
  std::string on_s3 = report_sha({"--root", Url("events")});
  std::string local =
      report_sha({"--store", (dir() / "local.db").string(), "--root", (dir() / "local").string()});
  EXPECT_FALSE(on_s3.empty());
  EXPECT_EQ(on_s3, local);
  auto buckets = store_->List("events/runs/");
  ASSERT_TRUE(buckets.ok()) << buckets.status();
  EXPECT_GT(buckets->size(), 40u);  // every task's outputs, manifests and logs are there
}

// A wrong secret key is the user's configuration, not an internal error: exit 2, saying so.
TEST_F(S3PipelineTest, AWrongSecretKeyIsAConfigurationErrorExitTwo) {
  ASSERT_TRUE(store_->Put("in/a.csv", "x\n1\n").ok());
  std::string p =
      Write("s3in.yaml", Cat("name: s3in\nsteps:\n  - name: each\n    foreach: files(\"",
                             Url("in/*.csv"), "\")\n    run: cat \"$BARGE_INPUT\"\n"));
  ListeningProcess proxy;  // checks every signature as S3 would (s3rver does not)
  ASSERT_TRUE(proxy.Start({"/usr/bin/python3", Cat(BARGE_SOURCE_DIR, "/tests/s3_fault_proxy.py"),
                           "--upstream", server_->Endpoint()},
                          (dir() / "proxy.err").string()));
  server_->ExportEnvironment(proxy.Endpoint());
  ::setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret", 1);
  Result r = Barge({"run", p});
  server_->ExportEnvironment();
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("403"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("check the AWS credentials"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("not-the-secret"), std::string::npos) << r.err;
}

// The same run through tests/s3_fault_proxy.py at a 30% fault rate (503 SlowDown, 500, resets
// mid-body, PUTs applied but answered 500) and with every signature checked by botocore: the
// report is byte for byte the fault-free one, and no multipart upload is left behind.
TEST_F(S3PipelineTest, AThirtyPercentFaultRateChangesNoOutput) {
  std::string pipeline = Cat(BARGE_SOURCE_DIR, "/examples/events/pipeline.yaml");
  std::vector<std::string> small = {"-p", "rows_per_file=5000", "-p", "buckets=5"};
  auto report_sha = [&](const std::string& root, const std::string& store) {
    std::vector<std::string> args = {"run", pipeline, "--root", root, "--store", store};
    args.insert(args.end(), small.begin(), small.end());
    Result r = Barge(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    nlohmann::json t =
        Json({"tasks", RunIdFrom(r), "--step", "report", "--json", "--store", store});
    return t.empty() ? std::string() : t[0]["outputs"][0]["sha256"].get<std::string>();
  };
  std::string clean = report_sha(Url("clean"), (dir() / "clean.db").string());
  ListeningProcess proxy;
  std::string faults = (dir() / "faults.log").string();
  ASSERT_TRUE(proxy.Start(
      {"/usr/bin/python3", Cat(BARGE_SOURCE_DIR, "/tests/s3_fault_proxy.py"), "--upstream",
       server_->Endpoint(), "--fault-rate", "0.3", "--seed", "7", "--log", faults},
      (dir() / "proxy.err").string()));
  server_->ExportEnvironment(proxy.Endpoint());
  std::string faulty = report_sha(Url("faulty"), (dir() / "faulty.db").string());
  EXPECT_FALSE(clean.empty());
  EXPECT_EQ(faulty, clean);
  std::string injected = Read(faults);
  EXPECT_GT(std::count(injected.begin(), injected.end(), '\n'), 20) << injected;
  EXPECT_EQ(injected.find("badsignature"), std::string::npos) << injected;
  EXPECT_EQ(server_->DanglingUploads(), 0);
}

// What `got` has that `want` lacks and the other way round, for a failure message.
std::string Diff(const std::vector<std::string>& got, const std::vector<std::string>& want) {
  std::multiset<std::string> extra(got.begin(), got.end());
  std::multiset<std::string> missing(want.begin(), want.end());
  for (const std::string& k : want) {
    if (auto it = extra.find(k); it != extra.end()) extra.erase(it);
  }
  for (const std::string& k : got) {
    if (auto it = missing.find(k); it != missing.end()) missing.erase(it);
  }
  return Cat("extra or repeated: [",
             Join(std::vector<std::string>(extra.begin(), extra.end()), ", "), "]; missing: [",
             Join(std::vector<std::string>(missing.begin(), missing.end()), ", "), "]");
}

// Names that trip paging: "a1.log" and "a1" sort before "a1/", as a task's manifest
// "a1.manifest.json" sorts before its outputs under "a1/"; and names that must be encoded.
const std::vector<std::string> kTrickyNames = {"a1",
                                               "a1.log",
                                               "a1/x",
                                               "a1/y",
                                               "a1/z/deep",
                                               "a 1 space.csv",
                                               "plus+sign.csv",
                                               "pct%41.csv",
                                               "\xc3\xbc"
                                               "n"
                                               "\xc3\xaf"
                                               "c"
                                               "\xc3\xb6"
                                               "d"
                                               "\xc3\xa9 \xe2\x82\xac.csv",  // "ünïcödé €.csv"
                                               "amp&lt;.csv",
                                               "tilde~eq=.csv"};

// More than 1,000 keys, listed through a server whose paging is right but hostile (pages of at
// most 7 entries, empty pages still truncated, tokens with '+', '/' and '='): barge's listing
// and files() expansion return exactly the keys, none dropped or repeated.
TEST_F(S3PipelineTest, ListingsOfOverAThousandKeysThroughHostilePagesAreExact) {
  std::vector<std::string> keys;
  for (const std::string& n : kTrickyNames) keys.push_back(Cat("many/", n));
  for (int i = 0; i < 1234; ++i) keys.push_back(Cat("many/k", 10000 + i));
  PutAll(keys);
  std::sort(keys.begin(), keys.end());
  ASSERT_EQ(Keys("many/"), keys) << Diff(Keys("many/"), keys);  // straight from the server

  ListeningProcess proxy;
  StartListingProxy(proxy);
  server_->ExportEnvironment(proxy.Endpoint());
  std::vector<std::string> listed = Keys("many/");
  EXPECT_EQ(listed, keys) << Diff(listed, keys);
  EXPECT_EQ(Keys("many/a1"), (std::vector<std::string>{"many/a1", "many/a1.log", "many/a1/x",
                                                       "many/a1/y", "many/a1/z/deep"}));
  std::string log = Read(proxy_log());
  EXPECT_GT(std::count(log.begin(), log.end(), '\n'), 300) << "pages of at most 7 entries";
  EXPECT_NE(log.find("listpage 0 0 true"), std::string::npos) << "an empty truncated page";
  EXPECT_EQ(log.find("badtoken"), std::string::npos) << log.substr(0, 2000);

  // files(): the listing covers everything before the first wildcard, all 1,245 keys.
  std::string p = Write("tricky.yaml", Cat(R"(
name: tricky
steps:
  - name: each
    foreach: files(")",
                                           Url("many/[!k]*"), R"(")
    run: cat {item} > "$BARGE_OUTPUT_DIR/copy"
)"));
  Result r = Barge({"run", p});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::set<std::string> items;
  for (const auto& t : Json({"tasks", RunIdFrom(r), "--json"})) {
    EXPECT_TRUE(items.insert(t["item"].get<std::string>()).second) << t["item"];
  }
  std::set<std::string> expected;
  for (const std::string& n : kTrickyNames) {
    if (n.find('/') == std::string::npos) expected.insert(Url(Cat("many/", n)));
  }
  EXPECT_EQ(items, expected);
  EXPECT_EQ(Read(proxy_log()).find("badtoken"), std::string::npos);
}

// A run with more than 1,000 outputs on an S3 root: outputs() records each once, and gc,
// listing through the hostile pages, deletes every object in batches S3 accepts (at most 1,000
// keys each) and nothing outside the run.
TEST_F(S3PipelineTest, GcDeletesOverAThousandObjectsThroughHostilePages) {
  std::string p = Write("wide.yaml", R"yaml(
name: wide
steps:
  - name: make
    run: |
      cd "$BARGE_OUTPUT_DIR"
      for i in $(seq 10000 11099); do echo "$i" > "k$i"; done
      mkdir -p a1/z
      for f in a1.log a1/x a1/y a1/z/deep "a 1 space.csv" plus+sign.csv tilde~eq=.csv; do
        echo "$f" > "$f"
      done
  - name: count
    needs: [make]
    run: wc -l < "$BARGE_INPUT_LIST" | tr -d ' ' > "$BARGE_OUTPUT_DIR/n"
)yaml");
  std::string root = Url("wide");
  Result r = Barge({"run", p, "--root", root});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string id = RunIdFrom(r);
  nlohmann::json make = Json({"tasks", id, "--step", "make", "--json"})[0];
  std::set<std::string> outputs;
  for (const auto& o : make["outputs"]) outputs.insert(o["path"].get<std::string>());
  EXPECT_EQ(outputs.size(), 1107u);
  EXPECT_EQ(make["outputs"].size(), 1107u);
  EXPECT_EQ(outputs.count(Cat(root, "/runs/", id, "/make/0/a1/a1.log")), 1u);
  EXPECT_EQ(outputs.count(Cat(root, "/runs/", id, "/make/0/a1/a 1 space.csv")), 1u);
  EXPECT_EQ(store_->Get(Cat("wide/runs/", id, "/count/0/a1/n")).value_or(""), "1107\n");
  ASSERT_TRUE(store_->Put("wide/runs/keep.txt", "not the run's").ok());
  ListeningProcess proxy;
  StartListingProxy(proxy);
  server_->ExportEnvironment(proxy.Endpoint());
  // s3rver's own listing finds 1,110 here: its pages drop "make/0/a1.log" and
  // "count/0/a1.log", which sort before the "a1/" outputs.
  std::vector<std::string> before = Keys(Cat("wide/runs/", id, "/"));
  EXPECT_EQ(before.size(), 1112u);  // 1,107 + 1 outputs, two manifests, two logs
  EXPECT_EQ(std::count(before.begin(), before.end(), Cat("wide/runs/", id, "/make/0/a1.log")), 1);
  nlohmann::json gc = Json({"gc", "--older-than", "0s", "--json"});
  ASSERT_EQ(gc["runs"].size(), 1u) << gc.dump();
  EXPECT_EQ(gc["runs"][0]["objects"], static_cast<int64_t>(before.size()));
  server_->ExportEnvironment();
  std::vector<std::string> left = Keys(Cat("wide/runs/", id, "/"));
  EXPECT_TRUE(left.empty()) << left.size() << " left, first " << (left.empty() ? "" : left[0]);
  EXPECT_EQ(store_->Get("wide/runs/keep.txt").value_or(""), "not the run's");
  std::string log = Read(proxy_log());
  EXPECT_NE(log.find("\ndelete 1000 POST "), std::string::npos);
  EXPECT_NE(log.find(Cat("\ndelete ", before.size() - 1000, " POST ")), std::string::npos);
  EXPECT_EQ(log.find("badtoken"), std::string::npos);
}

}  // namespace
}  // namespace barge::testing
