// Engine transitions, driven by hand through the store (no processes).
#include "engine/engine.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "common/clock.h"
#include "common/strings.h"
#include "store/state_store.h"
#include "testing/temp_dir.h"

namespace barge {
namespace {

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::move(OpenStateStore((dir_ / "state.db").string(), &clock_).value());
    engine_ = std::make_unique<Engine>(*store_, stores_);
  }

  std::string Create(const std::string& yaml) {
    absl::StatusOr<Pipeline> p = ParsePipeline(yaml, (dir_ / "p.yaml").string(), {});
    EXPECT_TRUE(p.ok()) << p.status();
    return engine_->CreateRun(*p, (dir_ / "data").string()).value();
  }

  // Claims everything claimable and completes it with `task_state`.
  int CompleteAll(const std::string& step, const std::string& task_state) {
    auto claimed = store_->Claim(
        {.worker_id = "w", .free_cpu = 1000, .free_memory = 1LL << 40, .max_tasks = 1000});
    int n = 0;
    std::vector<Completion> batch;
    for (const TaskRecord& t : *claimed) {
      EXPECT_EQ(t.key.step, step);
      batch.push_back(
          {.key = t.key,
           .attempt = t.attempt,
           .worker_id = "w",
           .task_state = task_state,
           .attempt_state = task_state,
           .exit_code = task_state == state::kSucceeded ? 0 : 1,
           .error = task_state == state::kSucceeded ? "" : "exit code 1",
           .outputs_json =
               nlohmann::json::array({{{"path", Cat("/out/", step, "/", t.key.index)}}}).dump()});
      ++n;
    }
    EXPECT_TRUE(store_->Complete(batch).ok());
    return n;
  }

  std::string StepState(const std::string& run, const std::string& step) {
    std::vector<StepRecord> steps = store_->GetSteps(run).value();
    for (const StepRecord& s : steps) {
      if (s.name == step) return s.state;
    }
    return "";
  }

  ManualClock clock_{1'700'000'000'000};
  ScopedTempDir temp_{"engine"};
  const std::filesystem::path& dir_ = temp_.path();
  ObjectStores stores_;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<Engine> engine_;
};

constexpr char kDiamond[] = R"(
name: diamond
steps:
  - name: a
    foreach: range(3)
    run: "true"
  - name: b
    foreach: outputs(a)
    run: "true"
  - name: c
    foreach: [x, y]
    run: "true"
  - name: d
    needs: [b, c]
    run: "true"
)";

TEST_F(EngineTest, StartsStepsAsTheirNeedsSucceed) {
  std::string run = Create(kDiamond);
  RunRecord r = engine_->Advance(run).value();
  EXPECT_EQ(r.state, state::kRunning);
  EXPECT_EQ(StepState(run, "a"), state::kRunning);
  EXPECT_EQ(StepState(run, "c"), state::kRunning);
  EXPECT_EQ(StepState(run, "b"), state::kPending);
  // Advancing again changes nothing: it is idempotent.
  engine_->Advance(run).value();
  EXPECT_EQ(store_->CountTasks(run)->size(), 2u);

  auto claimed = store_->Claim({.worker_id = "w", .free_cpu = 2, .max_tasks = 2});
  ASSERT_EQ(claimed->size(), 2u);  // a[0], a[1]: step a comes first in the queue
  EXPECT_EQ((*claimed)[0].key.step, "a");
}

TEST_F(EngineTest, OutputsFanOutAndFinalMergeSeeUpstreamOutputs) {
  std::string run = Create(kDiamond);
  engine_->Advance(run).value();
  // a and c are both queued; complete them in one sweep.
  auto claimed = store_->Claim({.worker_id = "w", .free_cpu = 100, .max_tasks = 100});
  ASSERT_EQ(claimed->size(), 5u);
  std::vector<Completion> batch;
  for (const TaskRecord& t : *claimed) {
    batch.push_back({.key = t.key,
                     .attempt = 1,
                     .worker_id = "w",
                     .task_state = state::kSucceeded,
                     .attempt_state = state::kSucceeded,
                     .outputs_json = nlohmann::json::array(
                                         {{{"path", Cat("/out/", t.key.step, "/", t.key.index)}}})
                                         .dump()});
  }
  ASSERT_TRUE(store_->Complete(batch).ok());
  engine_->Advance(run).value();
  EXPECT_EQ(StepState(run, "a"), state::kSucceeded);
  EXPECT_EQ(StepState(run, "b"), state::kRunning);
  auto b_tasks = store_->ListTasks({.run_id = run, .step = "b"}).value();
  ASSERT_EQ(b_tasks.size(), 3u);
  EXPECT_EQ(b_tasks[2].inputs_json, R"([{"path":"/out/a/2"}])");
  EXPECT_EQ(CompleteAll("b", state::kSucceeded), 3);
  engine_->Advance(run).value();
  auto steps = store_->GetSteps(run).value();
  EXPECT_EQ(steps[3].state, state::kRunning);
  EXPECT_EQ(steps[3].inputs_json, R"([{"path":"/out/b/0"},{"path":"/out/b/1"},{"path":"/out/b/2"},)"
                                  R"({"path":"/out/c/0"},{"path":"/out/c/1"}])");
  EXPECT_EQ(CompleteAll("d", state::kSucceeded), 1);
  EXPECT_EQ(engine_->Advance(run)->state, state::kSucceeded);
}

TEST_F(EngineTest, AFailedStepLetsRunningStepsFinishThenFailsTheRun) {
  std::string run = Create(R"(
name: f
steps:
  - name: a
    run: "true"
  - name: b
    foreach: range(2)
    run: "true"
  - name: c
    needs: [a]
    run: "true"
)");
  engine_->Advance(run).value();
  auto a = store_->Claim({.worker_id = "w", .free_cpu = 1, .max_tasks = 1}).value();
  ASSERT_EQ(a[0].key.step, "a");
  ASSERT_TRUE(store_
                  ->Complete({{.key = a[0].key,
                               .attempt = 1,
                               .worker_id = "w",
                               .task_state = state::kFailed,
                               .attempt_state = state::kFailed,
                               .exit_code = 2,
                               .error = "exit code 2"}})
                  .ok());
  RunRecord r = engine_->Advance(run).value();
  EXPECT_EQ(StepState(run, "a"), state::kFailed);
  EXPECT_EQ(r.state, state::kRunning);  // b still has work
  EXPECT_EQ(StepState(run, "c"), state::kPending);
  EXPECT_EQ(CompleteAll("b", state::kSucceeded), 2);
  r = engine_->Advance(run).value();
  EXPECT_EQ(r.state, state::kFailed);
  EXPECT_EQ(r.error, "step a failed: task 0: exit code 2");
  EXPECT_EQ(StepState(run, "c"), state::kPending);  // never started
}

TEST_F(EngineTest, EmptyFanOutSucceeds) {
  std::string run = Create("name: e\nsteps:\n  - name: a\n    foreach: range(0)\n    run: x\n");
  EXPECT_EQ(engine_->Advance(run)->state, state::kSucceeded);
}

TEST_F(EngineTest, RunIdsAreSortableAndDistinct) {
  std::string a = NewRunId(1'700'000'000'000), b = NewRunId(1'700'000'001'000);
  EXPECT_LT(a, b);
  EXPECT_EQ(a.substr(0, 15), "20231114-221320");
}

}  // namespace
}  // namespace barge
