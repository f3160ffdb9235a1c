// The RunStore contract (runs, steps, tasks, attempts; starting steps, requeueing, listing and
// deleting runs), which every implementation runs: SQLite, and PostgreSQL when
// BARGE_TEST_POSTGRES names a server.
#include "store/run_store.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "common/strings.h"
#include "testing/store_contract.h"

namespace barge {
namespace {

class RunStoreContract : public StoreContract {};

TEST_P(RunStoreContract, HasTasksInProbesOneStepsStates) {
  MakeRun(3);
  const std::vector<std::string> active = {state::kPending, state::kRunning};
  const std::vector<std::string> bad = {state::kFailed, state::kCancelled};
  EXPECT_TRUE(*store_->HasTasksIn("r1", "s", active));
  EXPECT_FALSE(*store_->HasTasksIn("r1", "s", bad));
  EXPECT_FALSE(*store_->HasTasksIn("r1", "other", active));
  EXPECT_FALSE(*store_->HasTasksIn("r1", "s", {}));
  std::vector<TaskRecord> all = Claim("w", 3);
  ASSERT_EQ(all.size(), 3u);
  Completion failed = Success(all[2], "w");
  failed.task_state = failed.attempt_state = state::kFailed;
  ASSERT_TRUE(store_->Complete({Success(all[0], "w"), Success(all[1], "w"), failed}).ok());
  EXPECT_FALSE(*store_->HasTasksIn("r1", "s", active));
  EXPECT_TRUE(*store_->HasTasksIn("r1", "s", bad));
  EXPECT_TRUE(*store_->HasTasksIn("r1", "s", {state::kSucceeded}));
}

TEST_P(RunStoreContract, CreateRunRejectsDuplicateIds) {
  MakeRun(1);
  RunRecord again{.id = "r1", .pipeline = "p", .params_json = "{}"};
  EXPECT_TRUE(absl::IsAlreadyExists(store_->CreateRun(again, {})));
  EXPECT_TRUE(absl::IsNotFound(store_->GetRun("nope").status()));
}

TEST_P(RunStoreContract, StartStepIsIdempotent) {
  MakeRun(4);
  auto again =
      store_->StartStep("r1", "s", "[]", 4, {}, [](int64_t i) { return NewTask{.index = i}; });
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);
  auto counts = store_->CountTasks("r1");
  ASSERT_EQ(counts->size(), 1u);
  EXPECT_EQ((*counts)[0].pending, 4);
}

// A step's tasks go in by bulk insert (COPY on PostgreSQL): every value must come back as it
// went in, whatever characters it holds, over more rows than one insert statement takes.
TEST_P(RunStoreContract, StartStepStoresEveryValueVerbatim) {
  RunRecord run{.id = "r1", .pipeline = "p", .params_json = "{}", .created_at = clock_.NowMs()};
  ASSERT_TRUE(store_->CreateRun(run, {{.name = "a"}, {.name = "s", .position = 3}}).ok());
  const std::vector<std::string> awkward = {"",
                                            R"(\N)",
                                            "tab\there",
                                            "line\nbreak\r\n",
                                            R"({"path":"C:\\x\\y"})",
                                            "naïve 日本 ✓",
                                            "'quoted' \"and\" $1 ?"};
  auto item = [&](int64_t i) { return Cat(awkward[i % awkward.size()], "#", i); };
  const Placement placement{
      .cpu = 0.25, .memory = 3LL << 30, .queue = "q\t1", .required_labels = "gpu=a10\\x"};
  constexpr int64_t kTasks = 613;  // two full statements of 250 and a remainder, on SQLite
  auto started = store_->StartStep("r1", "s", "[]", kTasks, placement, [&](int64_t i) {
    return NewTask{.index = i, .item_json = item(i), .inputs_json = i % 2 ? item(i + 1) : ""};
  });
  ASSERT_TRUE(started.ok()) << started.status();
  ASSERT_TRUE(*started);
  auto tasks = store_->ListTasks({.run_id = "r1"});
  ASSERT_TRUE(tasks.ok()) << tasks.status();
  ASSERT_EQ(tasks->size(), static_cast<size_t>(kTasks));
  std::set<int64_t> seen;
  for (const TaskRecord& t : *tasks) {
    seen.insert(t.key.index);
    EXPECT_EQ(t.key.step, "s");
    EXPECT_EQ(t.position, 3);
    EXPECT_EQ(t.state, state::kPending);
    EXPECT_EQ(t.item_json, item(t.key.index));
    EXPECT_EQ(t.inputs_json, t.key.index % 2 ? item(t.key.index + 1) : "");
    EXPECT_EQ(t.cpu, 0.25);
    EXPECT_EQ(t.memory, 3LL << 30);
    EXPECT_EQ(t.queue, placement.queue);
    EXPECT_EQ(t.required_labels, placement.required_labels);
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(kTasks));
  EXPECT_EQ(*seen.rbegin(), kTasks - 1);
}

// A bulk insert that fails (here two tasks with one index) rolls back the whole step start.
TEST_P(RunStoreContract, AFailedStepStartLeavesNoTasksAndTheStepPending) {
  RunRecord run{.id = "r1", .pipeline = "p", .params_json = "{}", .created_at = clock_.NowMs()};
  ASSERT_TRUE(store_->CreateRun(run, {{.name = "s"}}).ok());
  auto started = store_->StartStep("r1", "s", "[]", 300, {},
                                   [](int64_t i) { return NewTask{.index = i == 299 ? 7 : i}; });
  EXPECT_FALSE(started.ok());
  auto tasks = store_->ListTasks({.run_id = "r1"});
  ASSERT_TRUE(tasks.ok()) << tasks.status();
  EXPECT_TRUE(tasks->empty());
  auto steps = store_->GetSteps("r1");
  ASSERT_TRUE(steps.ok()) << steps.status();
  EXPECT_EQ((*steps)[0].state, state::kPending);
  // And the store is usable afterwards: the step starts cleanly.
  started =
      store_->StartStep("r1", "s", "[]", 300, {}, [](int64_t i) { return NewTask{.index = i}; });
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_TRUE(*started);
  EXPECT_EQ(store_->ListTasks({.run_id = "r1"})->size(), 300u);
}

TEST_P(RunStoreContract, PinStepImageKeepsTheFirstReference) {
  MakeRun(2);
  EXPECT_EQ(store_->GetSteps("r1")->at(0).image, "");
  auto first = store_->PinStepImage("r1", "s", "localhost/x@sha256:aaa");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, "localhost/x@sha256:aaa");
  // A later (or concurrent) pin reads the winner's reference.
  EXPECT_EQ(*store_->PinStepImage("r1", "s", "sha256:bbb"), "localhost/x@sha256:aaa");
  EXPECT_EQ(store_->GetSteps("r1")->at(0).image, "localhost/x@sha256:aaa");
  // It survives a retry of the run.
  std::vector<TaskRecord> t = Claim("w1", 2);
  Completion fail{.key = t[0].key,
                  .attempt = 1,
                  .worker_id = "w1",
                  .task_state = state::kFailed,
                  .attempt_state = state::kFailed,
                  .failure_class = failure::kOutOfMemory,
                  .charge_retry = true,
                  .exit_code = 137,
                  .error = "out of memory"};
  ASSERT_TRUE(store_->Complete({fail, Success(t[1], "w1")}).ok());
  EXPECT_EQ(*store_->RequeueTasks("r1", {state::kFailed}), 1);
  EXPECT_EQ(store_->GetSteps("r1")->at(0).image, "localhost/x@sha256:aaa");
  EXPECT_EQ(store_->ListAttempts(t[0].key)->at(0).failure_class, failure::kOutOfMemory);
  EXPECT_TRUE(absl::IsNotFound(store_->PinStepImage("r1", "nope", "sha256:c").status()));
}

TEST_P(RunStoreContract, RequeueReopensAFailedRun) {
  MakeRun(2);
  std::vector<TaskRecord> t = Claim("w1", 2);
  Completion fail{.key = t[0].key,
                  .attempt = 1,
                  .worker_id = "w1",
                  .task_state = state::kFailed,
                  .attempt_state = state::kFailed,
                  .failure_class = failure::kApplication,
                  .charge_retry = true,
                  .exit_code = 3,
                  .error = "exit code 3"};
  ASSERT_TRUE(store_->Complete({fail, Success(t[1], "w1")}).ok());
  ASSERT_TRUE(*store_->TransitionStep("r1", "s", state::kRunning, state::kFailed));
  ASSERT_TRUE(*store_->TransitionRun("r1", state::kRunning, state::kFailed, "step s failed"));
  EXPECT_EQ(*store_->RequeueTasks("r1", {state::kFailed}), 1);
  EXPECT_EQ(store_->GetRun("r1")->state, state::kRunning);
  EXPECT_EQ(store_->GetSteps("r1")->at(0).state, state::kRunning);
  TaskRecord again = store_->GetTask(t[0].key).value();
  EXPECT_EQ(again.state, state::kPending);
  EXPECT_EQ(again.app_failures, 0);
  EXPECT_EQ(store_->GetTask(t[1].key)->state, state::kSucceeded);
}

TEST_P(RunStoreContract, ListsAndFilters) {
  MakeRun(3);
  TaskRecord t = Claim("w1", 1)[0];
  ASSERT_TRUE(store_->Complete({Success(t, "w1")}).ok());
  auto done = store_->ListTasks({.run_id = "r1", .state = std::string(state::kSucceeded)});
  ASSERT_EQ(done->size(), 1u);
  EXPECT_EQ((*done)[0].outputs_json, R"([{"path":"/o"}])");
  EXPECT_EQ(store_->ListTasks({.run_id = "r1", .limit = 2})->size(), 2u);
  EXPECT_EQ(store_->ListRuns({.limit = 10})->size(), 1u);
  EXPECT_FALSE(store_->ListEvents("r1")->empty());
}

TEST_P(RunStoreContract, ListsRunsByStatePipelineAndAgeAndDeletesFinishedOnes) {
  MakeRun(2);  // r1, pipeline p, running
  TaskRecord t = Claim("w1", 1)[0];
  ASSERT_TRUE(store_->Complete({Success(t, "w1")}).ok());
  auto make = [&](const std::string& id, const std::string& pipeline) {
    RunRecord run{.id = id,
                  .pipeline = pipeline,
                  .params_json = "{}",
                  .root = "/data",
                  .created_at = clock_.NowMs()};
    ASSERT_TRUE(store_->CreateRun(run, {{.name = "s", .position = 0}}).ok());
  };
  clock_.AdvanceMs(1'000);
  make("old", "p");
  ASSERT_TRUE(*store_->TransitionRun("old", state::kRunning, state::kSucceeded, ""));
  int64_t between = clock_.NowMs() + 1;
  clock_.AdvanceMs(1'000);
  make("new", "q");
  ASSERT_TRUE(*store_->TransitionRun("new", state::kRunning, state::kFailed, "boom"));

  auto ids = [&](const RunFilter& f) {
    std::vector<RunRecord> runs = store_->ListRuns(f).value();
    std::vector<std::string> out;
    for (const RunRecord& r : runs) out.push_back(r.id);
    return out;
  };
  EXPECT_EQ(ids({}), (std::vector<std::string>{"new", "old", "r1"}));
  EXPECT_EQ(ids({.pipeline = "p"}), (std::vector<std::string>{"old", "r1"}));
  EXPECT_EQ(ids({.state = std::string(state::kFailed)}), std::vector<std::string>{"new"});
  EXPECT_EQ(ids({.finished_before = between}), std::vector<std::string>{"old"});
  EXPECT_EQ(ids({.limit = 1, .offset = 1}), std::vector<std::string>{"old"});

  // A running run is refused and keeps every row.
  EXPECT_TRUE(absl::IsFailedPrecondition(store_->DeleteRun("r1")));
  EXPECT_EQ(store_->ListTasks({.run_id = "r1"})->size(), 2u);
  EXPECT_EQ(store_->ListAttempts(t.key)->size(), 1u);
  EXPECT_TRUE(absl::IsNotFound(store_->DeleteRun("nope")));

  // A finished one goes whole; the others stay.
  ASSERT_TRUE(*store_->CancelRun("r1", "stop"));
  ASSERT_TRUE(store_->DeleteRun("r1").ok());
  EXPECT_TRUE(absl::IsNotFound(store_->GetRun("r1").status()));
  EXPECT_TRUE(store_->ListTasks({.run_id = "r1"})->empty());
  EXPECT_TRUE(store_->ListAttempts(t.key)->empty());
  EXPECT_TRUE(store_->ListEvents("r1")->empty());
  EXPECT_TRUE(store_->GetSteps("r1")->empty());
  EXPECT_EQ(ids({}), (std::vector<std::string>{"new", "old"}));

  // gc marks a run deleting first: from then on it cannot be re-queued, and it can be deleted.
  ASSERT_TRUE(*store_->TransitionRun("new", state::kFailed, state::kDeleting, ""));
  EXPECT_TRUE(absl::IsFailedPrecondition(store_->RequeueTasks("new", {state::kFailed}).status()));
  EXPECT_EQ(store_->GetRun("new")->state, state::kDeleting);
  EXPECT_EQ(ids({.state = std::string(state::kDeleting)}), std::vector<std::string>{"new"});
  ASSERT_TRUE(store_->DeleteRun("new").ok());
  EXPECT_EQ(ids({}), std::vector<std::string>{"old"});
}

INSTANTIATE_TEST_SUITE_P(Implementations, RunStoreContract, StoreImplementations(),
                         ImplementationName);

}  // namespace
}  // namespace barge
