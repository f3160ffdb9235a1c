#include "fleet/autoscaler.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <cstdlib>

#include "common/clock.h"
#include "common/fs.h"
#include "common/strings.h"
#include "store/state_store.h"
#include "testing/temp_dir.h"

namespace barge {
namespace {

constexpr int64_t kGiB = int64_t{1} << 30;

TEST(WorkersNeeded, PacksByCpuAndMemory) {
  // 10 one-cpu tasks into 4-cpu workers: 3 workers.
  EXPECT_EQ(WorkersNeeded({{"q", "ready", 1, 0, 7}, {"q", "running", 1, 0, 3}}, 4, 16 * kGiB), 3);
  // Memory binds: 3 tasks of 6 GiB into 16 GiB workers: 2 per worker.
  EXPECT_EQ(WorkersNeeded({{"q", "ready", 1, 6 * kGiB, 3}}, 4, 16 * kGiB), 2);
  // Waiting tasks (backing off) do not count; a task larger than a worker gets one of its own.
  EXPECT_EQ(WorkersNeeded({{"q", "waiting", 1, 0, 50}, {"q", "ready", 8, 0, 1}}, 4, 16 * kGiB), 1);
  // Mixed sizes, largest first: 3 + 1 fill a worker, the 2s pair up.
  EXPECT_EQ(WorkersNeeded(
                {{"q", "ready", 3, 0, 1}, {"q", "ready", 2, 0, 2}, {"q", "ready", 1, 0, 1}}, 4, 0),
            2);
  EXPECT_EQ(WorkersNeeded({}, 4, 0), 0);
}

// Records what it was asked; Current() is what it was last asked.
class FakeProvider : public WorkerProvider {
 public:
  explicit FakeProvider(std::vector<int>* asked) : asked_(asked) {}
  absl::Status Scale(int desired, const std::vector<WorkerRecord>&,
                     const std::vector<std::string>&) override {
    asked_->push_back(desired);
    current_ = desired;
    return absl::OkStatus();
  }
  int Current() override { return current_; }

 private:
  std::vector<int>* asked_;
  int current_ = 0;
};

TEST(Autoscaler, GrowsToMaxAndShrinksToZeroOnlyAfterIdle) {
  ScopedTempDir dir("scale");
  ManualClock clock(1'000'000);
  auto store = OpenStateStore((dir.path() / "s.db").string(), &clock).value();
  ASSERT_TRUE(
      store->CreateRun({.id = "r", .pipeline = "p", .created_at = clock.NowMs()}, {{.name = "s"}})
          .ok());
  ASSERT_TRUE(*store->StartStep("r", "s", "[]", 200, {.cpu = 1},
                                [](int64_t i) { return NewTask{.index = i}; }));
  std::vector<int> asked;
  std::map<std::string, std::unique_ptr<WorkerProvider>> providers;
  providers["default"] = std::make_unique<FakeProvider>(&asked);
  Autoscaler scaler(*store, *store,
                    {{.queue = "default",
                      .min = 0,
                      .max = 5,
                      .idle_ms = 60'000,
                      .worker_cpu = 2,
                      .worker_memory = 0}},
                    std::move(providers), clock);
  ASSERT_TRUE(scaler.Tick().ok());
  EXPECT_EQ(asked.back(), 5) << "200 ready tasks need 100 workers; max is 5";
  EXPECT_EQ(scaler.Status()["queues"][0]["demand"], 100);

  ASSERT_TRUE(store->CancelRun("r", "done").ok());
  clock.AdvanceMs(1'000);
  ASSERT_TRUE(scaler.Tick().ok());
  EXPECT_EQ(asked.back(), 5) << "no demand, but not idle for a minute yet";
  clock.AdvanceMs(59'999);
  ASSERT_TRUE(scaler.Tick().ok());
  EXPECT_EQ(asked.back(), 5) << "idle for 1 ms short of a minute";
  clock.AdvanceMs(1);
  ASSERT_TRUE(scaler.Tick().ok());
  EXPECT_EQ(asked.back(), 0) << "idle for a minute: down to min";
}

// Starts nothing: records what it was asked, and ends a child when the test says.
class FakeLauncher : public ProcessLauncher {
 public:
  absl::StatusOr<pid_t> Start(const ProcessSpec& spec) override {
    started.push_back(spec);
    return next_pid_++;
  }
  void Signal(pid_t pid, int sig) override { signalled.push_back({pid, sig}); }
  std::optional<int> Reap(pid_t pid, bool) override {
    auto it = ended.find(pid);
    if (it == ended.end()) return std::nullopt;
    int status = it->second;
    ended.erase(it);
    return status;
  }

  std::vector<ProcessSpec> started;
  std::vector<std::pair<pid_t, int>> signalled;
  std::map<pid_t, int> ended;  // pid -> wait status, for the next Reap

 private:
  pid_t next_pid_ = 100;
};

// The local provider starts workers through its launcher, without the server's token, waits out
// a respawn hold on the clock it is given (no sleeping), and drains idle workers only.
TEST(LocalProvider, HoldsRespawnsOnItsClockAfterAWorkerFailsAndStopsIdleWorkersOnly) {
  ScopedTempDir dir("local");
  ::setenv("BARGE_TOKEN", "server-token-0123456789", 1);
  ManualClock clock(5'000'000);
  FakeLauncher launcher;
  std::string logs = (dir.path() / "logs").string();
  std::unique_ptr<WorkerProvider> provider =
      NewLocalProvider({.queue = "etl", .worker_cpu = 2, .worker_memory = kGiB},
                       {"/bin/barge", "worker"}, logs, launcher, clock);
  ASSERT_TRUE(provider->Scale(2, {}, {}).ok());
  ::unsetenv("BARGE_TOKEN");
  ASSERT_EQ(launcher.started.size(), 2u);
  EXPECT_EQ(launcher.started[0].argv,
            (std::vector<std::string>{"/bin/barge", "worker", "--queue", "etl", "--cpu", "2",
                                      "--memory", Cat(kGiB, "B"), "--drain-timeout", "24h"}));
  EXPECT_EQ(launcher.started[0].log_path, logs + "/worker-etl.log");
  for (const std::string& e : launcher.started[0].env) {
    EXPECT_FALSE(e.starts_with("BARGE_TOKEN=")) << "a worker must not see the server's token";
  }
  EXPECT_EQ(provider->Current(), 2);

  launcher.ended[100] = 1 << 8;  // exit code 1, unasked
  absl::Status failed = provider->Scale(2, {}, {});
  EXPECT_EQ(failed.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(failed.message().find("worker process 100 stopped unasked"), std::string::npos)
      << failed;
  EXPECT_EQ(provider->Current(), 1);
  clock.AdvanceMs(9'999);
  ASSERT_TRUE(provider->Scale(2, {}, {}).ok());
  EXPECT_EQ(launcher.started.size(), 2u) << "no respawn within 10 s of the failure";
  clock.AdvanceMs(1);
  ASSERT_TRUE(provider->Scale(2, {}, {}).ok());
  EXPECT_EQ(launcher.started.size(), 3u) << "a respawn once the hold is over";

  // Down to zero: 101 holds a task, so only 102 is asked to drain.
  std::vector<WorkerRecord> workers = {{.id = "w101", .host = HostName(), .pid = 101},
                                       {.id = "w102", .host = HostName(), .pid = 102}};
  ASSERT_TRUE(provider->Scale(0, workers, {"w101"}).ok());
  EXPECT_EQ(launcher.signalled, (std::vector<std::pair<pid_t, int>>{{102, SIGTERM}}));
  EXPECT_EQ(provider->Current(), 1);
  launcher.ended[102] = 0;  // drained and exited
  EXPECT_EQ(provider->Current(), 1);
  provider->StopAll();
  EXPECT_EQ(launcher.signalled.back(), (std::pair<pid_t, int>{101, SIGTERM}));
}

TEST(AutoscaleConfig, ParsesAndNamesBadKeys) {
  ScopedTempDir dir("scalecfg");
  std::string path = (dir.path() / "a.yaml").string();
  ASSERT_TRUE(WriteFile(path,
                        "queues:\n  - queue: gpu\n    max: 3\n    idle: 30s\n"
                        "    worker: {cpu: 4, memory: 8GiB, labels: 'gpu=a10'}\n"
                        "    provider: command\n    command: 'scale {queue} {desired}'\n")
                  .ok());
  auto cfg = LoadAutoscaleConfig(path);
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  ASSERT_EQ(cfg->size(), 1u);
  EXPECT_EQ((*cfg)[0].queue, "gpu");
  EXPECT_EQ((*cfg)[0].max, 3);
  EXPECT_EQ((*cfg)[0].idle_ms, 30'000);
  EXPECT_EQ((*cfg)[0].worker_memory, 8 * kGiB);
  EXPECT_EQ((*cfg)[0].provider, "command");

  ASSERT_TRUE(WriteFile(path, "queues:\n  - queue: q\n    maxx: 3\n").ok());
  EXPECT_EQ(LoadAutoscaleConfig(path).status().message(),
            path +
                ":3:5: queue: unknown key \"maxx\" (allowed: command, idle, max, min, provider, "
                "queue, worker)");
  ASSERT_TRUE(WriteFile(path, "queues:\n  - queue: q\n    min: 4\n    max: 2\n").ok());
  EXPECT_NE(LoadAutoscaleConfig(path).status().message().find("need 0 <= min <= max"),
            std::string::npos);
  ASSERT_TRUE(WriteFile(path, "queues:\n  - provider: command\n    command: 'x'\n").ok());
  EXPECT_NE(LoadAutoscaleConfig(path).status().message().find("needs a command with {desired}"),
            std::string::npos);
  // Every mistake at once, each at its place.
  ASSERT_TRUE(WriteFile(path,
                        "queues:\n  - queue: a\n    max: many\n    worker: {cpu: 0, gpus: 1}\n"
                        "  - queue: a\n    idle: soon\n")
                  .ok());
  std::string errors(LoadAutoscaleConfig(path).status().message());
  EXPECT_NE(errors.find(path + ":3:10: max: expected a whole number"), std::string::npos) << errors;
  EXPECT_NE(errors.find(path + ":4:19: worker.cpu: must be > 0"), std::string::npos) << errors;
  EXPECT_NE(errors.find(path + ":4:22: worker: unknown key \"gpus\""), std::string::npos) << errors;
  EXPECT_NE(errors.find(":6:11: idle: "), std::string::npos) << errors;
  EXPECT_NE(errors.find(":5:5: queue a given twice"), std::string::npos) << errors;
}

}  // namespace
}  // namespace barge
