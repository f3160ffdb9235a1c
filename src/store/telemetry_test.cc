// The Telemetry contract, which every implementation runs: SQLite, and PostgreSQL when
// BARGE_TEST_POSTGRES names a server.
#include "store/telemetry.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "testing/store_contract.h"

namespace barge {
namespace {

class TelemetryContract : public StoreContract {};

TEST_P(TelemetryContract, LoadByQueueGroupsReadyWaitingAndRunning) {
  MakeRun(5, /*cpu=*/2, /*memory=*/1024);
  std::vector<TaskRecord> claimed = Claim("w1", 2);
  ASSERT_EQ(claimed.size(), 2u);
  // One claimed task fails and backs off for a minute: it waits, it is not ready.
  Completion retry = Success(claimed[0], "w1");
  retry.task_state = state::kPending;
  retry.attempt_state = state::kFailed;
  retry.not_before = clock_.NowMs() + 60'000;
  ASSERT_TRUE(store_->Complete({retry}).ok());
  std::vector<TaskLoad> load = *store_->LoadByQueue();
  ASSERT_EQ(load.size(), 3u);
  std::map<std::string, int64_t> by_state;
  for (const TaskLoad& l : load) {
    EXPECT_EQ(l.queue, "default");
    EXPECT_EQ(l.cpu, 2);
    EXPECT_EQ(l.memory, 1024);
    by_state[l.state] = l.count;
  }
  EXPECT_EQ(by_state["ready"], 3);
  EXPECT_EQ(by_state["running"], 1);
  EXPECT_EQ(by_state["waiting"], 1);

  EXPECT_EQ(*store_->ListBusyWorkers(), std::vector<std::string>{"w1"});
  clock_.AdvanceMs(5'000);
  ASSERT_TRUE(store_->Complete({Success(claimed[1], "w1")}).ok());
  std::vector<FinishedAttempt> done = *store_->AttemptsFinished(0, clock_.NowMs());
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(done[0].state, state::kFailed);
  EXPECT_EQ(done[1].state, state::kSucceeded);
  EXPECT_EQ(done[1].duration_ms, 5'000);
  EXPECT_TRUE(store_->AttemptsFinished(clock_.NowMs(), clock_.NowMs() + 1)->empty());
  EXPECT_EQ(store_->ListRunAttempts("r1")->size(), 2u);
  EXPECT_EQ(*store_->ListBusyWorkers(), std::vector<std::string>{}) << "w1 holds nothing now";
}

INSTANTIATE_TEST_SUITE_P(Implementations, TelemetryContract, StoreImplementations(),
                         ImplementationName);

}  // namespace
}  // namespace barge
