#include "cost/cost.h"

#include <gtest/gtest.h>

#include "common/clock.h"
#include "common/fs.h"
#include "store/state_store.h"
#include "testing/temp_dir.h"

namespace barge {
namespace {

constexpr int64_t kGiB = int64_t{1} << 30;

class CostTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = OpenStateStore((dir_.path() / "state.db").string(), &clock_).value();
    ASSERT_TRUE(store_
                    ->CreateRun({.id = "r",
                                 .pipeline = "p",
                                 .spec_path = "/p.yaml",
                                 .spec_source = "x",
                                 .params_json = "{}",
                                 .root = "/d",
                                 .created_at = clock_.NowMs()},
                                {{.name = "s", .position = 0}})
                    .ok());
    ASSERT_TRUE(*store_->StartStep("r", "s", "[]", 2, {.cpu = 1},
                                   [](int64_t i) { return NewTask{.index = i}; }));
  }
  // Runs both tasks at once on a 4-cpu, 16 GiB worker for half an hour, each peaking at 1 GiB.
  void RunBothOn(const std::string& worker) {
    ASSERT_TRUE(
        store_->RegisterWorker({.id = worker, .host = "h", .cpu = 4, .memory = 16 * kGiB}).ok());
    auto claimed = store_->Claim({.worker_id = worker, .free_cpu = 4, .max_tasks = 2});
    ASSERT_EQ(claimed->size(), 2u);
    clock_.AdvanceMs(30 * 60'000);
    std::vector<Completion> done;
    for (const TaskRecord& t : *claimed) {
      done.push_back({.key = t.key,
                      .attempt = t.attempt,
                      .worker_id = worker,
                      .task_state = state::kSucceeded,
                      .attempt_state = state::kSucceeded,
                      .exit_code = 0,
                      .cpu_seconds = 1200,
                      .max_rss_kb = 1024 * 1024});
    }
    ASSERT_TRUE(store_->Complete(done).ok());
    ASSERT_TRUE(store_->DeregisterWorker(worker).ok());
  }
  double Line(const CostReport& r, const std::string& platform) {
    for (const CostLine& l : r.lines) {
      if (l.platform == platform) return l.usd;
    }
    ADD_FAILURE() << "no line " << platform;
    return -1;
  }

  ManualClock clock_{1'800'000'000'000};
  ScopedTempDir dir_{"cost"};
  std::unique_ptr<StateStore> store_;
};

TEST_F(CostTest, EveryModelFromMeasuredAttempts) {
  RunBothOn("w1");
  CostReport r = ComputeRunCost(*store_, *store_, "r", DefaultPrices()).value();
  EXPECT_EQ(r.tasks, 2);
  EXPECT_EQ(r.attempts, 2);
  EXPECT_DOUBLE_EQ(r.task_seconds, 3600);
  EXPECT_DOUBLE_EQ(r.cpu_seconds, 2400);
  EXPECT_DOUBLE_EQ(r.peak_vcpus, 2);
  EXPECT_EQ(r.peak_rss_bytes, kGiB);
  EXPECT_DOUBLE_EQ(r.wall_seconds, 1800);
  // The stopped worker's size is still known: a 4-cpu 16 GiB worker is an m7g.xlarge at $0.065
  // spot; each task holds a quarter of it for half an hour.
  EXPECT_NEAR(Line(r, "barge-ec2-spot"), 2 * 0.5 * 0.25 * 0.0650, 1e-12);
  EXPECT_NEAR(Line(r, "fargate"), 2 * 0.5 * (1 * 0.04048 + 1 * 0.004445), 1e-12);
  EXPECT_NEAR(Line(r, "fargate-spot"), 2 * 0.5 * (0.01245795 + 0.00136886), 1e-12);
  EXPECT_NEAR(Line(r, "glue"), 2 * 0.5 * 0.44, 1e-12);  // 2 DPU minimum, half an hour
  EXPECT_NEAR(Line(r, "emr"), 1 * 0.1632 * 1.25 * 0.5, 1e-12);
  std::string text = FormatCostReport(r);
  EXPECT_NE(text.find("barge-ec2-spot"), std::string::npos);
  EXPECT_NE(text.find("$0.0163"), std::string::npos) << text;
  EXPECT_EQ(CostReportJson(r)["costs"].size(), 5u);
}

TEST_F(CostTest, ShortTasksPayTheOneMinuteMinimumOnFargate) {
  ASSERT_TRUE(store_->RegisterWorker({.id = "w", .host = "h", .cpu = 4, .memory = 16 * kGiB}).ok());
  auto claimed = store_->Claim({.worker_id = "w", .free_cpu = 4, .max_tasks = 1});
  clock_.AdvanceMs(6'000);
  ASSERT_TRUE(store_
                  ->Complete({{.key = (*claimed)[0].key,
                               .attempt = 1,
                               .worker_id = "w",
                               .task_state = state::kSucceeded,
                               .attempt_state = state::kSucceeded}})
                  .ok());
  CostReport r = ComputeRunCost(*store_, *store_, "r", DefaultPrices()).value();
  EXPECT_NEAR(Line(r, "fargate"), (1.0 / 60) * (0.04048 + 0.5 * 0.004445), 1e-12);
  EXPECT_NEAR(Line(r, "barge-ec2-spot"), (6.0 / 3600) * 0.25 * 0.0650, 1e-12);
}

TEST_F(CostTest, PriceFileOverridesAndRejectsUnknownKeys) {
  std::string path = (dir_.path() / "prices.json").string();
  ASSERT_TRUE(WriteFile(path, R"({"glue_dpu_hour": 1.0, "instances": [
      {"name": "tiny", "vcpu": 4, "memory_gib": 16, "spot_hour": 1.0, "on_demand_hour": 2.0}],
      "emr_instance": "tiny"})")
                  .ok());
  Prices p = LoadPrices(path).value();
  EXPECT_EQ(p.glue_dpu_hour, 1.0);
  EXPECT_EQ(p.fargate_vcpu_hour, 0.04048) << "keys not given keep their defaults";
  RunBothOn("w1");
  CostReport r = ComputeRunCost(*store_, *store_, "r", p).value();
  EXPECT_NEAR(Line(r, "barge-ec2-spot"), 2 * 0.5 * 0.25 * 1.0, 1e-12);
  EXPECT_NEAR(Line(r, "emr"), 2.0 * 1.25 * 0.5, 1e-12);

  ASSERT_TRUE(WriteFile(path, R"({"glue_dpu_hours": 1.0})").ok());
  EXPECT_NE(LoadPrices(path).status().message().find("unknown or malformed key \"glue_dpu_hours\""),
            std::string::npos);
  ASSERT_TRUE(WriteFile(path, R"({"fargate_gb_hour": -1})").ok());
  EXPECT_NE(LoadPrices(path).status().message().find("expected a number >= 0"), std::string::npos);
}

TEST_F(CostTest, UnknownRunIsNotFound) {
  EXPECT_TRUE(absl::IsNotFound(ComputeRunCost(*store_, *store_, "nope", DefaultPrices()).status()));
}

}  // namespace
}  // namespace barge
