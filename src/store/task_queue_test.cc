// The TaskQueue contract (claims that fit, leases, heartbeats, fencing, retries, reaping and
// releasing workers), which every implementation runs: SQLite, and PostgreSQL when
// BARGE_TEST_POSTGRES names a server.
#include "store/task_queue.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/labels.h"
#include "common/strings.h"
#include "testing/store_contract.h"

namespace barge {
namespace {

class TaskQueueContract : public StoreContract {};

TEST_P(TaskQueueContract, ATaskTooLargeAtTheHeadDoesNotHideSmallerOnes) {
  RunRecord run{.id = "r1", .pipeline = "p", .params_json = "{}", .created_at = clock_.NowMs()};
  ASSERT_TRUE(
      store_->CreateRun(run, {{.name = "big", .position = 0}, {.name = "small", .position = 1}})
          .ok());
  auto make = [](int64_t i) { return NewTask{.index = i}; };
  ASSERT_TRUE(*store_->StartStep("r1", "big", "[]", 50, {.cpu = 8}, make));
  ASSERT_TRUE(*store_->StartStep("r1", "small", "[]", 3, {.cpu = 1, .memory = 1 << 20}, make));
  auto c = store_->Claim({.worker_id = "w", .free_cpu = 2, .free_memory = 1 << 21, .max_tasks = 5});
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->size(), 2u) << "two one-cpu tasks fit in two cpus";
  for (const TaskRecord& t : *c) EXPECT_EQ(t.key.step, "small");
  // Memory counts too: with room for one more 1 MiB task, one is taken.
  c = store_->Claim({.worker_id = "w2", .free_cpu = 4, .free_memory = 1 << 20, .max_tasks = 5});
  ASSERT_EQ(c->size(), 1u);
  EXPECT_EQ((*c)[0].key.step, "small");
}

TEST_P(TaskQueueContract, ATaskThatFitsOnlyAloneDoesNotStopTheClaimShort) {
  RunRecord run{.id = "r1", .pipeline = "p", .params_json = "{}", .created_at = clock_.NowMs()};
  ASSERT_TRUE(
      store_->CreateRun(run, {{.name = "two", .position = 0}, {.name = "one", .position = 1}})
          .ok());
  auto make = [](int64_t i) { return NewTask{.index = i}; };
  ASSERT_TRUE(*store_->StartStep("r1", "two", "[]", 2, {.cpu = 2}, make));
  ASSERT_TRUE(*store_->StartStep("r1", "one", "[]", 1, {.cpu = 1}, make));
  // In 3 cpus: two[0] takes 2; two[1] would need 2 more, so it is passed over for one[0].
  auto c = store_->Claim({.worker_id = "w", .free_cpu = 3, .max_tasks = 5});
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->size(), 2u);
  EXPECT_EQ((*c)[0].key, (TaskKey{"r1", "two", 0}));
  EXPECT_EQ((*c)[1].key, (TaskKey{"r1", "one", 0}));
  EXPECT_EQ(store_->GetTask({"r1", "two", 1})->state, state::kPending);
}

TEST_P(TaskQueueContract, AttemptsAreRecordedWithWorkerAndTimesHoweverTheyEnd) {
  MakeRun(4);
  int64_t claimed_at = clock_.NowMs();
  std::vector<TaskRecord> w1 = Claim("w1", 3, 100, /*lease_ms=*/1000);
  // While running, an attempt is listed from its task, and its worker counts as the run's.
  auto running = store_->ListAttempts(w1[0].key).value();
  ASSERT_EQ(running.size(), 1u);
  EXPECT_EQ(running[0].state, state::kRunning);
  EXPECT_EQ(running[0].worker_id, "w1");
  EXPECT_EQ(running[0].started_at, claimed_at);
  ASSERT_EQ(store_->ListRunWorkers("r1")->size(), 0u) << "w1 never registered";
  ASSERT_TRUE(store_->RegisterWorker({.id = "w1", .host = "h", .started_at = claimed_at}).ok());
  ASSERT_EQ(store_->ListRunWorkers("r1")->size(), 1u);

  clock_.AdvanceMs(700);
  ASSERT_TRUE((*store_->Complete({Success(w1[0], "w1")}))[0]);
  clock_.AdvanceMs(400);  // w1's other leases expire
  ASSERT_EQ(*store_->ReapExpired(10), 2);
  std::vector<TaskRecord> w2 = Claim("w2", 4);
  ASSERT_EQ(w2.size(), 3u);
  // One batch from the zombie w1 and the live w2: only w2's is taken.
  auto taken = store_->Complete({Success(w1[1], "w1"), Success(w2[0], "w2")});
  ASSERT_TRUE(taken.ok()) << taken.status();
  EXPECT_EQ(*taken, (std::vector<bool>{false, true}));
  ASSERT_TRUE(*store_->CancelRun("r1", "stop"));

  auto done = store_->ListAttempts(w1[0].key).value();
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].state, state::kSucceeded);
  EXPECT_EQ(done[0].worker_id, "w1");
  EXPECT_EQ(done[0].started_at, claimed_at);
  EXPECT_EQ(done[0].finished_at, claimed_at + 700);
  auto fenced = store_->ListAttempts(w1[1].key).value();
  ASSERT_EQ(fenced.size(), 2u);
  EXPECT_EQ(fenced[0].state, "fenced");
  EXPECT_EQ(fenced[0].worker_id, "w1");
  EXPECT_EQ(fenced[0].started_at, claimed_at);
  EXPECT_EQ(fenced[0].failure_class, failure::kInfrastructure);
  EXPECT_EQ(fenced[1].state, state::kSucceeded);
  EXPECT_EQ(fenced[1].worker_id, "w2");
  auto cancelled = store_->ListAttempts(w2[1].key).value();
  ASSERT_EQ(cancelled.size(), 2u);
  EXPECT_EQ(cancelled[0].state, "lost");
  EXPECT_EQ(cancelled[1].state, state::kCancelled);
  EXPECT_EQ(cancelled[1].worker_id, "w2");
  EXPECT_EQ(cancelled[1].started_at, claimed_at + 1100);
  EXPECT_EQ(cancelled[1].finished_at, claimed_at + 1100);
  // Every attempt once: 4 tasks, 3 + 3 attempts, none still running.
  auto all = store_->ListRunAttempts("r1").value();
  EXPECT_EQ(all.size(), 6u);
  for (const AttemptRecord& a : all) EXPECT_NE(a.state, state::kRunning);
}

TEST_P(TaskQueueContract, ClaimHonoursQueuesAndRequiredLabels) {
  RunRecord run{.id = "r1", .pipeline = "p", .params_json = "{}", .created_at = clock_.NowMs()};
  ASSERT_TRUE(store_
                  ->CreateRun(run, {{.name = "any", .position = 0},
                                    {.name = "arm", .position = 1},
                                    {.name = "gpu", .position = 2}})
                  .ok());
  auto start = [&](const std::string& step, Placement p) {
    ASSERT_TRUE(
        store_->StartStep("r1", step, "[]", 2, p, [](int64_t i) { return NewTask{.index = i}; })
            .ok());
  };
  start("any", {});
  start("arm", {.required_labels = "arch=arm64"});
  start("gpu", {.queue = "gpu", .required_labels = "arch=amd64,gpu=a10"});
  auto claim = [&](const std::string& worker, const std::string& queue, const Labels& labels) {
    auto c = store_->Claim({.worker_id = worker,
                            .free_cpu = 100,
                            .max_tasks = 10,
                            .queue = queue,
                            .accepts = LabelSubsets(labels)});
    EXPECT_TRUE(c.ok()) << c.status();
    std::vector<std::string> steps;
    for (const TaskRecord& t : *c) steps.push_back(Cat(t.key.step, "/", t.key.index));
    return steps;
  };
  // An amd64 worker on the default queue: neither the arm64 tasks nor the gpu queue's.
  EXPECT_EQ(claim("x86", "default", {{"arch", "amd64"}}),
            (std::vector<std::string>{"any/0", "any/1"}));
  EXPECT_EQ(claim("arm", "default", {{"arch", "arm64"}, {"zone", "a"}}),
            (std::vector<std::string>{"arm/0", "arm/1"}));
  // A driver's pool (no queue or labels given) takes any task of its run.
  auto c = store_->Claim({.worker_id = "d", .run_id = "r1", .free_cpu = 1, .max_tasks = 1});
  ASSERT_TRUE(c.ok() && c->size() == 1u);
  EXPECT_EQ((*c)[0].key.step, "gpu");
  // The gpu queue needs both labels; extra labels on the worker do not matter.
  EXPECT_TRUE(claim("gpu1", "gpu", {{"gpu", "a10"}}).empty());
  EXPECT_EQ(claim("gpu2", "gpu", {{"arch", "amd64"}, {"gpu", "a10"}, {"ssd", "yes"}}),
            (std::vector<std::string>{"gpu/1"}));
  auto task = store_->GetTask({"r1", "gpu", 1});
  ASSERT_TRUE(task.ok());
  EXPECT_EQ(task->queue, "gpu");
  EXPECT_EQ(task->required_labels, "arch=amd64,gpu=a10");
}

TEST_P(TaskQueueContract, ClaimLeasesEachTaskOnce) {
  MakeRun(5);
  std::vector<TaskRecord> a = Claim("w1", 3);
  std::vector<TaskRecord> b = Claim("w2", 10);
  ASSERT_EQ(a.size(), 3u);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(a[0].key.index, 0);
  EXPECT_EQ(a[0].attempt, 1);
  EXPECT_EQ(a[0].lease_owner, "w1");
  EXPECT_EQ(a[0].lease_expires_at, clock_.NowMs() + 10'000);
  EXPECT_EQ(b[1].key.index, 4);
  EXPECT_TRUE(Claim("w3", 10).empty());
  auto attempts = store_->ListAttempts(a[0].key);
  ASSERT_EQ(attempts->size(), 1u);
  EXPECT_EQ((*attempts)[0].worker_id, "w1");
  EXPECT_EQ((*attempts)[0].state, state::kRunning);
}

TEST_P(TaskQueueContract, ClaimRespectsCpuAndMemory) {
  MakeRun(4, /*cpu=*/1.5, /*memory=*/1 << 20);
  EXPECT_EQ(Claim("w1", 10, /*cpu=*/3.0).size(), 2u);
  auto c = store_->Claim(
      {.worker_id = "w2", .free_cpu = 8, .free_memory = (1 << 20) + 5, .max_tasks = 10});
  EXPECT_EQ(c->size(), 1u);
}

TEST_P(TaskQueueContract, CompleteCommitsAndFencesStaleAttempts) {
  MakeRun(1);
  TaskRecord t = Claim("w1", 1, 100, /*lease_ms=*/1000)[0];
  clock_.AdvanceMs(1001);
  ASSERT_EQ(*store_->ReapExpired(10), 1);
  TaskRecord again = store_->GetTask(t.key).value();
  EXPECT_EQ(again.state, state::kPending);
  EXPECT_EQ(again.infra_failures, 1);
  EXPECT_EQ(again.app_failures, 0);
  TaskRecord t2 = Claim("w2", 1)[0];
  EXPECT_EQ(t2.attempt, 2);
  // The zombie's late result is rejected; the live attempt's is committed.
  auto zombie = store_->Complete({Success(t, "w1")});
  ASSERT_TRUE(zombie.ok());
  EXPECT_FALSE((*zombie)[0]);
  auto live = store_->Complete({Success(t2, "w2")});
  EXPECT_TRUE((*live)[0]);
  TaskRecord done = store_->GetTask(t.key).value();
  EXPECT_EQ(done.state, state::kSucceeded);
  EXPECT_EQ(done.committed_attempt, 2);
  auto attempts = store_->ListAttempts(t.key).value();
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts[0].state, "fenced");
  EXPECT_EQ(attempts[0].failure_class, failure::kInfrastructure);
  EXPECT_EQ(attempts[1].state, state::kSucceeded);
  // A duplicate completion of the committed attempt changes nothing.
  EXPECT_FALSE((*store_->Complete({Success(t2, "w2")}))[0]);
}

TEST_P(TaskQueueContract, HeartbeatExtendsLeasesAndReportsRevocations) {
  MakeRun(2);
  std::vector<TaskRecord> held = Claim("w1", 2, 100, 1000);
  clock_.AdvanceMs(900);
  auto still = store_->Heartbeat("w1", 1000);
  ASSERT_TRUE(still.ok());
  EXPECT_EQ(still->size(), 2u);
  clock_.AdvanceMs(900);  // past the first lease, within the extended one
  EXPECT_EQ(*store_->ReapExpired(10), 0);
  ASSERT_TRUE(*store_->CancelRun("r1", "stop"));
  EXPECT_TRUE(store_->Heartbeat("w1", 1000)->empty());
  EXPECT_EQ(store_->GetTask(held[0].key)->state, state::kCancelled);
  EXPECT_EQ(store_->ListAttempts(held[0].key)->at(0).state, state::kCancelled);
}

// A black-hole worker (it cannot reach S3) must not take back the task it just failed while a
// healthy one is there to take it; alone, it may after kAvoidWorkerMs.
TEST_P(TaskQueueContract, AnInfrastructureFailureLeavesTheRetryToAnotherWorkerForAWhile) {
  MakeRun(2);
  std::vector<TaskRecord> held = Claim("sick", 2);
  ASSERT_EQ(held.size(), 2u);
  std::vector<Completion> failed;
  for (const TaskRecord& t : held) {
    failed.push_back({.key = t.key,
                      .attempt = t.attempt,
                      .worker_id = "sick",
                      .task_state = state::kPending,
                      .attempt_state = state::kFailed,
                      .failure_class = failure::kInfrastructure,
                      .infra_failure = true,
                      .error = "HEAD s3://b/bundle: connection refused"});
  }
  ASSERT_EQ(*store_->Complete(failed), (std::vector<bool>{true, true}));
  EXPECT_TRUE(Claim("sick", 2).empty()) << "the worker that failed them took them back at once";
  std::vector<TaskRecord> healthy = Claim("healthy", 1);
  ASSERT_EQ(healthy.size(), 1u);
  EXPECT_EQ(healthy[0].attempt, 2);
  clock_.AdvanceMs(kAvoidWorkerMs);
  std::vector<TaskRecord> alone = Claim("sick", 2);
  ASSERT_EQ(alone.size(), 1u) << "no other worker took it: the same one may try again";
  EXPECT_EQ(alone[0].attempt, 2);
  // An application failure is the task's own: any worker may retry it, this one included.
  Completion app{.key = alone[0].key,
                 .attempt = alone[0].attempt,
                 .worker_id = "sick",
                 .task_state = state::kPending,
                 .attempt_state = state::kFailed,
                 .failure_class = failure::kApplication,
                 .charge_retry = true,
                 .exit_code = 1,
                 .error = "exit code 1"};
  ASSERT_TRUE((*store_->Complete({app}))[0]);
  EXPECT_EQ(Claim("sick", 1).size(), 1u);
}

TEST_P(TaskQueueContract, RetryWaitsForNotBefore) {
  MakeRun(1);
  TaskRecord t = Claim("w1", 1)[0];
  Completion c{.key = t.key,
               .attempt = 1,
               .worker_id = "w1",
               .task_state = state::kPending,
               .attempt_state = state::kFailed,
               .failure_class = failure::kApplication,
               .charge_retry = true,
               .not_before = clock_.NowMs() + 5000,
               .exit_code = 1,
               .error = "exit code 1"};
  ASSERT_TRUE((*store_->Complete({c}))[0]);
  EXPECT_TRUE(Claim("w1", 1).empty());
  clock_.AdvanceMs(5000);
  std::vector<TaskRecord> again = Claim("w1", 1);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].attempt, 2);
  EXPECT_EQ(again[0].app_failures, 1);
}

TEST_P(TaskQueueContract, InfrastructureBudgetFailsTheTaskEventually) {
  MakeRun(1);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(Claim("w1", 1, 100, 10).size(), 1u);
    clock_.AdvanceMs(11);
    ASSERT_EQ(*store_->ReapExpired(/*max_infra_failures=*/2), 1);
  }
  TaskRecord t = store_->GetTask({"r1", "s", 0}).value();
  EXPECT_EQ(t.state, state::kFailed);
  EXPECT_NE(t.error.find("gave up after 3 infrastructure failures"), std::string::npos) << t.error;
}

TEST_P(TaskQueueContract, ReleaseWorkerRequeuesItsTasksAtOnce) {
  MakeRun(3);
  ASSERT_TRUE(store_->RegisterWorker({.id = "w1", .host = "h", .pid = 1, .pid_start = "5"}).ok());
  Claim("w1", 2);
  EXPECT_EQ(*store_->ReleaseWorker("w1", "worker w1 is gone", 10, state::kLost), 2);
  EXPECT_TRUE(store_->ListWorkers()->empty());
  EXPECT_EQ(Claim("w2", 10).size(), 3u);
  auto attempts = store_->ListAttempts({"r1", "s", 0}).value();
  EXPECT_EQ(attempts[0].state, state::kLost);
  EXPECT_EQ(attempts[0].error, "worker w1 is gone");
}

TEST_P(TaskQueueContract, ADrainedWorkersAttemptsAreRecordedAsDrained) {
  MakeRun(2);
  ASSERT_TRUE(store_->RegisterWorker({.id = "w1", .host = "h", .pid = 1, .pid_start = "5"}).ok());
  Claim("w1", 2);
  EXPECT_EQ(*store_->ReleaseWorker("w1", "drained: spot notice", 10, state::kDrained), 2);
  for (int64_t i = 0; i < 2; ++i) {
    auto attempts = store_->ListAttempts({"r1", "s", i}).value();
    ASSERT_EQ(attempts.size(), 1u);
    EXPECT_EQ(attempts[0].state, state::kDrained);
    EXPECT_EQ(attempts[0].failure_class, failure::kInfrastructure);
    EXPECT_EQ(store_->GetTask({"r1", "s", i})->state, state::kPending);
  }
}

INSTANTIATE_TEST_SUITE_P(Implementations, TaskQueueContract, StoreImplementations(),
                         ImplementationName);

}  // namespace
}  // namespace barge
