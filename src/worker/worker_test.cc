// The worker against a state store that keeps dropping out: it backs off, keeps its results
// until the store takes them, and finishes the run with every task committed once.
#include "worker/worker.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "common/clock.h"
#include "common/fs.h"
#include "common/status.h"
#include "common/strings.h"
#include "store/forwarding_store.h"
#include "store/state_store.h"
#include "testing/temp_dir.h"

namespace barge {
namespace {

// Forwards to a real store, but every `period`-th call to the calls a worker makes while it
// runs (GetRun and every queue call but ReleaseWorker) fails as if the database were unreachable.
class FlakyStore : public ForwardingRunStore, public TaskQueue {
 public:
  FlakyStore(StateStore& inner, int period)
      : ForwardingRunStore(inner), queue_(inner), period_(period) {}
  int failures() const { return failures_; }

  int64_t NowMs() override { return queue_.NowMs(); }
  absl::StatusOr<RunRecord> GetRun(const std::string& id) override {
    RETURN_IF_ERROR(MaybeFail());
    return ForwardingRunStore::GetRun(id);
  }
  absl::StatusOr<std::vector<TaskRecord>> Claim(const ClaimRequest& request) override {
    RETURN_IF_ERROR(MaybeFail());
    return queue_.Claim(request);
  }
  absl::StatusOr<std::vector<bool>> Complete(const std::vector<Completion>& batch) override {
    RETURN_IF_ERROR(MaybeFail());
    return queue_.Complete(batch);
  }
  absl::StatusOr<std::vector<TaskKey>> Heartbeat(const std::string& worker,
                                                 int64_t lease_ms) override {
    RETURN_IF_ERROR(MaybeFail());
    return queue_.Heartbeat(worker, lease_ms);
  }
  absl::StatusOr<int64_t> ReapExpired(int max) override {
    RETURN_IF_ERROR(MaybeFail());
    return queue_.ReapExpired(max);
  }
  absl::StatusOr<int64_t> ReleaseWorker(const std::string& worker_id, const std::string& reason,
                                        int max_infra_failures,
                                        const char* attempt_state) override {
    return queue_.ReleaseWorker(worker_id, reason, max_infra_failures, attempt_state);
  }

 private:
  absl::Status MaybeFail() {
    if (++calls_ % period_ != 0) return absl::OkStatus();
    ++failures_;
    return absl::UnavailableError("postgres: server closed the connection unexpectedly");
  }

  TaskQueue& queue_;
  int period_;
  std::atomic<int> calls_{0};
  std::atomic<int> failures_{0};
};

TEST(Worker, RidesOutAStoreThatKeepsDroppingOut) {
  ScopedTempDir dir("worker");
  auto real = OpenStateStore((dir.path() / "state.db").string()).value();
  FlakyStore flaky(*real, /*period=*/3);
  ObjectStores stores;
  Engine engine(flaky, stores);
  auto pipeline = ParsePipeline(
      "name: w\nsteps:\n  - name: s\n    foreach: range(12)\n"
      "    run: echo $BARGE_TASK_INDEX > \"$BARGE_OUTPUT_DIR/i\"\n",
      (dir.path() / "p.yaml").string(), {});
  ASSERT_TRUE(pipeline.ok()) << pipeline.status();
  std::string id = engine.CreateRun(*pipeline, (dir.path() / "data").string()).value();
  PosixProcessRunner runner;
  Worker worker(flaky, flaky, *real, engine, runner,
                {.id = "w1",
                 .cpu = 2,
                 .run_id = id,
                 .scratch_dir = (dir.path() / "scratch").string(),
                 .heartbeat_ms = 100,
                 .idle_poll_ms = 10});
  absl::StatusOr<RunRecord> done = worker.Run();
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state, state::kSucceeded);
  EXPECT_GT(flaky.failures(), 3);
  auto tasks = real->ListTasks({.run_id = id}).value();
  ASSERT_EQ(tasks.size(), 12u);
  for (const TaskRecord& t : tasks) {
    EXPECT_EQ(t.state, state::kSucceeded);
    EXPECT_EQ(t.attempt, 1) << "task " << t.key.index << " ran again";
    auto out = nlohmann::json::parse(t.outputs_json);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(ReadFile(out[0]["path"]).value(), Cat(t.key.index, "\n"));
  }
}

// A fleet worker (no run of its own) over a SQLite store, and runs of a one-task pipeline.
class FleetWorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = OpenStateStore((dir_.path() / "state.db").string()).value();
    engine_ = std::make_unique<Engine>(*store_, stores_);
    absl::StatusOr<Pipeline> p = ParsePipeline("name: w\nsteps:\n  - name: s\n    run: \"true\"\n",
                                               (dir_.path() / "p.yaml").string(), {});
    ASSERT_TRUE(p.ok()) << p.status();
    pipeline_ = *std::move(p);
  }
  // A new run, its step started (its task queued).
  std::string StartRun() {
    std::string id = engine_->CreateRun(pipeline_, (dir_.path() / "data").string()).value();
    EXPECT_EQ(engine_->Advance(id)->state, state::kRunning);
    return id;
  }
  // Serves with `worker` until `done` holds (true) or 60 s pass (false), then stops it.
  bool ServeUntil(Worker& worker, const std::function<bool()>& done) {
    std::thread serve([&] { (void)worker.Run(); });
    bool ok = false;
    for (int64_t deadline = MonotonicMs() + 60'000; !ok && MonotonicMs() < deadline;) {
      ok = done();
      if (!ok) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    worker.RequestStop();
    serve.join();
    return ok;
  }
  WorkerOptions Options(const std::string& id) {
    return {.id = id,
            .cpu = 2,
            .scratch_dir = (dir_.path() / "scratch").string(),
            .heartbeat_ms = 50,
            .idle_poll_ms = 10};
  }

  ScopedTempDir dir_{"worker"};
  ObjectStores stores_;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<Engine> engine_;
  Pipeline pipeline_;
  PosixProcessRunner runner_;
};

// A fleet worker's sweep advances every running run, however many newer runs there are: a run
// whose only task was committed without anyone advancing it (its worker died in between) is
// finished by the next worker's sweep even with 250 newer runs in the store.
TEST_F(FleetWorkerTest, SweepAdvancesARunningRunBehind250NewerOnes) {
  std::string old = StartRun();
  auto claimed = store_->Claim({.worker_id = "gone", .free_cpu = 1, .max_tasks = 1}).value();
  ASSERT_EQ(claimed.size(), 1u);
  ASSERT_TRUE(store_
                  ->Complete({{.key = claimed[0].key,
                               .attempt = 1,
                               .worker_id = "gone",
                               .task_state = state::kSucceeded,
                               .attempt_state = state::kSucceeded}})
                  .ok());
  for (int i = 0; i < 250; ++i) {
    std::string id = engine_->CreateRun(pipeline_, (dir_.path() / "data").string()).value();
    ASSERT_TRUE(store_->CancelRun(id, "not this one").ok());
  }
  ASSERT_EQ(store_->GetRun(old)->state, state::kRunning);
  Worker worker(*store_, *store_, *store_, *engine_, runner_, Options("w2"));
  EXPECT_TRUE(ServeUntil(worker, [&] { return store_->GetRun(old)->state != state::kRunning; }));
  EXPECT_EQ(store_->GetRun(old)->state, state::kSucceeded);
}

// A long-lived worker keeps nothing of runs that have ended: its run contexts and the engine's
// parsed pipelines go when the run finishes, whichever worker finishes it.
TEST_F(FleetWorkerTest, ForgetsRunsThatHaveEnded) {
  std::vector<std::string> ids;
  for (int i = 0; i < 30; ++i) ids.push_back(StartRun());
  Worker worker(*store_, *store_, *store_, *engine_, runner_, Options("w1"));
  ASSERT_TRUE(ServeUntil(worker, [&] {
    for (const std::string& id : ids) {
      if (store_->GetRun(id)->state != state::kSucceeded) return false;
    }
    return true;
  }));
  EXPECT_EQ(worker.CachedRuns(), 0u);
  EXPECT_EQ(engine_->CachedPipelines(), 0u);
}

// Holds every attempt until it is stopped.
class BlockingRunner : public ProcessRunner {
 public:
  ProcessResult Run(const ProcessSpec&, const CancelToken& cancel) override {
    {
      std::lock_guard lock(mu_);
      running_ = &cancel;
      cv_.notify_all();
    }
    struct pollfd fd = {cancel.fd(), POLLIN, 0};
    while (::poll(&fd, 1, -1) < 0) {
    }
    std::lock_guard lock(mu_);
    running_ = nullptr;
    return {.started = true, .cancelled = true, .error = "stopped"};
  }
  // The running attempt's cancel token, once one runs (null after 60 s without).
  const CancelToken* WaitRunning() {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(60), [&] { return running_ != nullptr; });
    return running_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  const CancelToken* running_ = nullptr;
};

// A drain's deadline is kept on the worker's clock: a ManualClock moved past it stops the task
// and hands it back, without the hour of real time going by, and one moved to 1 ms short of it
// does not.
TEST_F(FleetWorkerTest, ADrainDeadlineIsKeptOnTheWorkersClock) {
  std::string id = StartRun();
  ManualClock clock(1'000'000);
  BlockingRunner runner;
  std::mutex mu;
  std::condition_variable turned;
  int64_t last_turn = 0;  // the clock at the worker's last on_tick
  WorkerOptions options = Options("w1");
  options.cpu = 1;
  options.clock = &clock;
  options.tick_ms = 1;
  options.on_tick = [&] {
    std::lock_guard lock(mu);
    last_turn = clock.ElapsedMs();
    turned.notify_all();
  };
  // Waits for a turn of the worker's loop at `time` or later (its drain check comes first).
  auto wait_turn_at = [&](int64_t time) {
    std::unique_lock lock(mu);
    return turned.wait_for(lock, std::chrono::seconds(60), [&] { return last_turn >= time; });
  };
  Worker worker(*store_, *store_, *store_, *engine_, runner, options);
  absl::StatusOr<RunRecord> done;
  std::thread serve([&] { done = worker.Run(); });
  const CancelToken* task = runner.WaitRunning();
  ASSERT_NE(task, nullptr);
  worker.RequestDrain(3'600'000);
  clock.AdvanceMs(3'599'999);
  EXPECT_TRUE(wait_turn_at(4'599'999));
  EXPECT_FALSE(task->cancelled()) << "stopped before its drain deadline";
  clock.AdvanceMs(1);
  serve.join();
  ASSERT_TRUE(done.ok()) << done.status();
  auto tasks = store_->ListTasks({.run_id = id}).value();
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0].state, state::kPending);
  EXPECT_EQ(tasks[0].app_failures, 0);
  auto attempts = store_->ListAttempts(tasks[0].key).value();
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].state, state::kDrained);
}

// Whatever throws while an attempt runs (here the runner itself) fails that attempt, as the
// task's own failure naming the cause: the worker neither dies nor retries it forever.
class ThrowingRunner : public ProcessRunner {
 public:
  ProcessResult Run(const ProcessSpec&, const CancelToken&) override {
    throw std::runtime_error("injected fault");
  }
};

TEST(Worker, AnExceptionInAnAttemptFailsThatTaskOnly) {
  ScopedTempDir dir("worker");
  auto store = OpenStateStore((dir.path() / "state.db").string()).value();
  ObjectStores stores;
  Engine engine(*store, stores);
  auto pipeline = ParsePipeline("name: w\nsteps:\n  - name: s\n    run: \"true\"\n",
                                (dir.path() / "p.yaml").string(), {});
  ASSERT_TRUE(pipeline.ok()) << pipeline.status();
  std::string id = engine.CreateRun(*pipeline, (dir.path() / "data").string()).value();
  ThrowingRunner runner;
  Worker worker(*store, *store, *store, engine, runner,
                {.id = "w1",
                 .cpu = 1,
                 .run_id = id,
                 .scratch_dir = (dir.path() / "scratch").string(),
                 .heartbeat_ms = 50,
                 .idle_poll_ms = 10});
  absl::StatusOr<RunRecord> done = worker.Run();
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state, state::kFailed);
  auto tasks = store->ListTasks({.run_id = id}).value();
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0].state, state::kFailed);
  EXPECT_EQ(tasks[0].attempt, 1);
  EXPECT_EQ(tasks[0].infra_failures, 0);
  EXPECT_NE(tasks[0].error.find("injected fault"), std::string::npos) << tasks[0].error;
  auto attempts = store->ListAttempts(tasks[0].key).value();
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].failure_class, failure::kApplication);
}

}  // namespace
}  // namespace barge
