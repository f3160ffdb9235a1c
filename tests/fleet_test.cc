// A fleet on one machine: standalone `barge worker` processes sharing a PostgreSQL state store,
// with processes on loopback standing in for hosts. Each fault has its own outcome.
#include <signal.h>

#include <chrono>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "common/strings.h"
#include "harness.h"

namespace barge::testing {
namespace {

class FleetTest : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    if (!UsePostgres()) GTEST_SKIP() << "no BARGE_TEST_POSTGRES server";
  }
  void TearDown() override {
    for (pid_t w : workers_) {
      ::kill(w, SIGKILL);
      Wait(w);
    }
    E2eTest::TearDown();
  }
  pid_t StartWorker(const std::vector<std::string>& extra = {}, const std::string& lease = "2s") {
    std::vector<std::string> args = {"worker", "--cpu", "2", "--lease", lease};
    args.insert(args.end(), extra.begin(), extra.end());
    pid_t pid = StartBarge(args);
    workers_.push_back(pid);
    return pid;
  }
  int StopWorker(pid_t pid, int sig) {
    ::kill(pid, sig);
    int code = Wait(pid);
    workers_.erase(std::remove(workers_.begin(), workers_.end(), pid), workers_.end());
    return code;
  }
  std::string Submit(const std::string& pipeline, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"run", pipeline, "--detach", "--root",
                                     (dir() / "data").string()};
    args.insert(args.end(), extra.begin(), extra.end());
    Result r = Barge(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::string id = r.out.substr(0, r.out.find('\n'));
    EXPECT_FALSE(id.empty());
    return id;
  }
  std::string RunState(const std::string& id) {
    return Json({"status", id, "--json"})["state"].get<std::string>();
  }
  std::map<int64_t, int> SideEffects() {
    std::map<int64_t, int> seen;
    std::istringstream in(Read((dir() / "side.txt").string()));
    for (std::string l; std::getline(in, l);) seen[std::stoll(l)]++;
    return seen;
  }

  std::vector<pid_t> workers_;
};

TEST_F(FleetTest, DetachedRunAdvancesWithNoDriverAndWorkersDrainOnSigterm) {
  std::string id = Submit(Cat(BARGE_SOURCE_DIR, "/examples/quickstart/pipeline.yaml"));
  EXPECT_EQ(RunState(id), "running");
  pid_t a = StartWorker(), b = StartWorker();
  WaitUntil([&] { return RunState(id) == "succeeded"; }, "the run to succeed");
  EXPECT_EQ(Barge({"logs", id, "merge", "0"}).out,
            "hello ada\nhello grace\nhello linus\nsum of doubled squares: 110\n");
  EXPECT_EQ(Json({"workers", "--json"}).size(), 2u);
  EXPECT_EQ(StopWorker(a, SIGTERM), 0);
  EXPECT_EQ(StopWorker(b, SIGTERM), 0);
  EXPECT_EQ(Json({"workers", "--json"}).size(), 0u);  // de-registered on exit
}

TEST_F(FleetTest, AKilledWorkersTasksFinishElsewhereWithoutChargingRetries) {
  std::string p = Write("many.yaml", Cat(R"(
name: many
params: {side: x}
steps:
  - name: work
    foreach: range(60)
    run: echo "$BARGE_TASK_INDEX" >> {params.side}; sleep 0.1
)"));
  std::string id = Submit(p, {"-p", Cat("side=", (dir() / "side.txt").string())});
  pid_t victim = StartWorker();
  WaitUntil([&] { return SideEffects().size() >= 6; }, "the first worker to get going");
  EXPECT_EQ(StopWorker(victim, SIGKILL), 128 + SIGKILL);
  StartWorker();
  WaitUntil([&] { return RunState(id) == "succeeded"; }, "the run to succeed");
  std::map<int64_t, int> seen = SideEffects();
  int rerun = 0;
  for (const auto& t : Json({"tasks", id, "--json"})) {
    int64_t i = t["index"];
    EXPECT_EQ(t["state"], "succeeded");
    EXPECT_GE(seen[i], 1);
    EXPECT_EQ(t["retries_used"], 0);
    if (t["attempts"] > 1) {
      ++rerun;
      EXPECT_EQ(t["infra_failures"], 1) << t.dump();
    } else {
      EXPECT_EQ(seen[i], 1) << "task " << i << " ran twice but was committed once";
    }
  }
  EXPECT_GE(rerun, 1);  // the victim held leases when it died
  EXPECT_LE(rerun, 2);
}

TEST_F(FleetTest, SigtermDrainsAndReleasesUnfinishedTasksAtOnce) {
  std::string p = Write("stuck.yaml", R"(
name: stuck
steps:
  - name: stuck
    foreach: range(2)
    retries: 0
    run: |
      echo started > "$BARGE_PIPELINE_DIR/started.$BARGE_TASK_INDEX.$BARGE_ATTEMPT"
      if [ "$BARGE_ATTEMPT" = 1 ]; then exec sleep 60; fi
)");
  std::string id = Submit(p);
  pid_t a = StartWorker({"--drain-timeout", "300ms"});
  WaitUntil(
      [&] {
        return std::filesystem::exists(dir() / "started.0.1") &&
               std::filesystem::exists(dir() / "started.1.1");
      },
      "both tasks to start");
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(StopWorker(a, SIGTERM), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
  // The leases came back at once (not after they expired), without charging retries.
  for (const auto& t : Json({"tasks", id, "--json"})) {
    EXPECT_EQ(t["state"], "pending") << t.dump();
    EXPECT_EQ(t["retries_used"], 0);
    EXPECT_NE(t["error"].get<std::string>().find("drained"), std::string::npos) << t.dump();
  }
  StartWorker();
  WaitUntil([&] { return RunState(id) == "succeeded"; }, "the run to succeed elsewhere");
  for (const auto& t : Json({"tasks", id, "--json", "--attempts"})) {
    EXPECT_EQ(t["committed_attempt"], 2);
    EXPECT_EQ(t["attempt_history"][0]["state"], "lost");
    EXPECT_NE(t["attempt_history"][0]["error"].get<std::string>().find("drained"),
              std::string::npos);
  }
}

TEST_F(FleetTest, AZombieWorkersLateResultIsFenced) {
  std::string p = Write("zombie.yaml", R"(
name: zombie
steps:
  - name: slow
    run: |
      echo started > "$BARGE_PIPELINE_DIR/started.$BARGE_ATTEMPT"
      if [ "$BARGE_ATTEMPT" = 1 ]; then sleep 3; fi
      echo "attempt $BARGE_ATTEMPT" > "$BARGE_OUTPUT_DIR/who"
)");
  std::string id = Submit(p);
  pid_t zombie = StartWorker({}, "1s");
  WaitUntil([&] { return std::filesystem::exists(dir() / "started.1"); }, "attempt 1");
  ASSERT_EQ(::kill(zombie, SIGSTOP), 0);  // paused past its lease
  pid_t live = StartWorker({}, "1s");
  WaitUntil([&] { return RunState(id) == "succeeded"; }, "the live attempt to commit");
  ASSERT_EQ(::kill(zombie, SIGCONT), 0);
  // Resumed, the zombie finds its lease gone: whatever it reports is not committed.
  WaitUntil(
      [&] {
        std::string state = Json({"tasks", id, "--json"})[0]["state"];
        return state == "succeeded";
      },
      "the task to stay committed");
  EXPECT_EQ(StopWorker(zombie, SIGTERM), 0);
  EXPECT_EQ(StopWorker(live, SIGTERM), 0);
  nlohmann::json t = Json({"tasks", id, "--json", "--attempts"})[0];
  EXPECT_EQ(t["committed_attempt"], 2);
  EXPECT_EQ(Read(t["outputs"][0]["path"]), "attempt 2\n");
  EXPECT_EQ(t["retries_used"], 0);
  EXPECT_EQ(t["infra_failures"], 1);
  const nlohmann::json& history = t["attempt_history"];
  ASSERT_EQ(history.size(), 2u);
  // The zombie's attempt: its lease expired (lost), and if it reported late, it was fenced.
  std::string first = history[0]["state"];
  EXPECT_TRUE(first == "lost" || first == "fenced") << history.dump();
  EXPECT_EQ(history[0]["failure_class"], "infrastructure");
  EXPECT_NE(history[0]["error"].get<std::string>().find("lease expired"), std::string::npos);
  EXPECT_EQ(history[1]["state"], "succeeded");
  EXPECT_NE(history[0]["worker"], history[1]["worker"]);
}

TEST_F(FleetTest, QueuesAndLabelsRouteTasksToTheWorkersThatHaveThem) {
  std::string p = Write("routed.yaml", R"(
name: routed
steps:
  - name: plain
    foreach: range(4)
    run: echo plain > "$BARGE_OUTPUT_DIR/x"
  - name: gpu
    foreach: range(3)
    queue: gpu
    labels: {gpu: a10}
    run: echo gpu > "$BARGE_OUTPUT_DIR/x"
  - name: special
    foreach: range(2)
    labels: {zone: special}
    run: echo special > "$BARGE_OUTPUT_DIR/x"
)");
  std::string id = Submit(p);
  pid_t plain = StartWorker();
  pid_t gpu = StartWorker({"--queue", "gpu", "--labels", "gpu=a10,ssd=yes"});
  auto worker_of = [&](const nlohmann::json& task) -> pid_t {
    std::string w = task["attempt_history"].back()["worker"];  // "<host>-<pid>-<random>"
    size_t end = w.rfind('-'), start = w.rfind('-', end - 1);
    return static_cast<pid_t>(std::stol(w.substr(start + 1, end - start - 1)));
  };
  auto states = [&] {
    std::map<std::string, std::string> out;
    for (const auto& t : Json({"tasks", id, "--json"})) {
      out[Cat(t["step"].get<std::string>(), "/", t["index"].get<int>())] = t["state"];
    }
    return out;
  };
  WaitUntil(
      [&] {
        int done = 0;
        for (const auto& [task, state] : states()) done += state == "succeeded";
        return done == 7;
      },
      "the plain and gpu tasks to finish");
  // Nobody has zone=special: those tasks wait, however idle the workers are.
  for (const auto& [task, state] : states()) {
    EXPECT_EQ(state, task.starts_with("special/") ? "pending" : "succeeded") << task;
  }
  nlohmann::json listed = Json({"workers", "--json"});
  ASSERT_EQ(listed.size(), 2u);
  for (const auto& w : listed) {
    if (w["queue"] == "gpu") {
      EXPECT_EQ(w["labels"]["gpu"], "a10");
      EXPECT_EQ(w["labels"]["os"], "linux");
    }
  }
  pid_t special = StartWorker({"--labels", "zone=special"});
  WaitUntil([&] { return RunState(id) == "succeeded"; }, "the run to succeed");
  for (const auto& t : Json({"tasks", id, "--json", "--attempts"})) {
    std::string step = t["step"];
    pid_t expected = step == "plain" ? plain : step == "gpu" ? gpu : special;
    EXPECT_EQ(worker_of(t), expected) << t.dump();
    EXPECT_EQ(t["queue"], step == "gpu" ? "gpu" : "default");
    EXPECT_EQ(Read(t["outputs"][0]["path"]), step + "\n");
  }
  // A bad label is refused before the worker registers.
  Result bad = Barge({"worker", "--labels", "gpu"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--labels: label \"gpu\" is not key=value"), std::string::npos) << bad.err;
}

// Contention: many workers on one queue. Every task is leased once and committed once; none is
// lost. (bench/ runs the same at larger sizes; 2,000 tasks keep CI quick.)
TEST_F(FleetTest, EightWorkersDrainOneQueueWithNoDoubleLeaseAndNoLoss) {
  constexpr int kTasks = 2000;
  std::string side = (dir() / "side.txt").string();
  std::string p = Write("noop.yaml", Cat(R"(
name: contention
params: {side: x}
steps:
  - name: noop
    foreach: range()",
                                         kTasks, R"()
    run: echo "$BARGE_TASK_INDEX" >> {params.side}
)"));
  std::string id = Submit(p, {"-p", Cat("side=", side)});
  for (int i = 0; i < 8; ++i) StartWorker({}, "60s");
  WaitUntil([&] { return RunState(id) == "succeeded"; }, "the queue to drain");
  std::map<int64_t, int> seen = SideEffects();
  EXPECT_EQ(seen.size(), static_cast<size_t>(kTasks));
  for (const auto& [index, times] : seen) EXPECT_EQ(times, 1) << "task " << index;
  std::set<std::string> workers_used;
  int total_attempts = 0;
  for (const auto& t : Json({"tasks", id, "--json", "--attempts"})) {
    EXPECT_EQ(t["attempts"], 1);
    EXPECT_EQ(t["committed_attempt"], 1);
    total_attempts += static_cast<int>(t["attempt_history"].size());
    workers_used.insert(t["attempt_history"][0]["worker"].get<std::string>());
  }
  EXPECT_EQ(total_attempts, kTasks);   // no task was ever leased twice
  EXPECT_GE(workers_used.size(), 4u);  // the work was actually shared
}

}  // namespace
}  // namespace barge::testing
