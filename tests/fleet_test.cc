// A fleet on one machine: standalone `barge worker` processes sharing a PostgreSQL state store.
// Where network namespaces are available (root), every test builds hosts out of them: PostgreSQL
// on host 0, workers spread over hosts 1-3, each host with its own address and hostname, joined
// by a bridge whose links a test can cut. Elsewhere the same tests run with processes on
// loopback against the shared test server; each test prints which mode it ran in.
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "common/strings.h"
#include "engine/engine.h"
#include "harness.h"
#include "netns_lab.h"
#include "store/pg_db.h"
#include "store/state_store.h"
#include "testing/postgres.h"

namespace barge::testing {
namespace {

constexpr int kDbHost = 0;
constexpr int kWorkerHosts = 3;  // hosts 1..3

class FleetTest : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    std::string why = "BARGE_TEST_NETNS=0";
    const char* netns = std::getenv("BARGE_TEST_NETNS");
    if (netns == nullptr || std::string(netns) != "0") {
      lab_ = NetnsLab::Create(1 + kWorkerHosts, &why);
    }
    if (lab_ != nullptr) {
      // Short: the server's Unix socket lives there, and socket paths stop at 107 bytes.
      static int servers = 0;
      pg_dir_ = Cat(::testing::TempDir(), "barge-pg-", ::getpid(), "-", ++servers);
      std::vector<std::string> start = lab_->On(kDbHost);
      for (std::string a : {Cat(BARGE_SOURCE_DIR, "/scripts/postgres.sh"), std::string("start"),
                            pg_dir_, lab_->Address(kDbHost), lab_->Subnet()}) {
        start.push_back(a);
      }
      bool ok = false;
      std::string url(Trim(Capture(start, &ok)));
      ASSERT_TRUE(ok) << "could not start PostgreSQL on host " << kDbHost;
      absl::StatusOr<std::string> schema_url = PostgresSchemaUrl(url, "e2e", "fleet");
      ASSERT_TRUE(schema_url.ok()) << schema_url.status();
      ::setenv("BARGE_STATE", schema_url->c_str(), 1);
      ::setenv("BARGE_SHARED_ROOT", "1", 1);  // the hosts share this machine's disk
      mode_ = Cat("netns: PostgreSQL on host 0 at ", lab_->Address(kDbHost),
                  ", workers on hosts 1-3, bridge ", lab_->Subnet());
    } else {
      if (!UsePostgres()) GTEST_SKIP() << "no BARGE_TEST_POSTGRES server";
      mode_ = Cat("loopback: processes on this host (no network namespaces: ", why, ")");
    }
    std::printf("[   MODE   ] %s\n", mode_.c_str());
    RecordProperty("mode", mode_);
  }
  void TearDown() override {
    for (const auto& [w, host] : workers_) {
      ::kill(w, SIGCONT);
      ::kill(w, SIGKILL);
      Wait(w);
    }
    if (!pg_dir_.empty()) {
      Sh(Cat(BARGE_SOURCE_DIR, "/scripts/postgres.sh stop ", pg_dir_));
    }
    lab_.reset();
    E2eTest::TearDown();
  }
  bool netns() const { return lab_ != nullptr; }
  // Starts a worker on `host` (by default the next worker host in turn).
  pid_t StartWorker(const std::vector<std::string>& extra = {}, const std::string& lease = "2s",
                    int host = -1, const std::vector<std::string>& env = {}) {
    if (host < 0) host = 1 + (next_host_++ % kWorkerHosts);
    std::vector<std::string> args = {"worker", "--cpu", "2", "--lease", lease};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<std::string> prefix = lab_ != nullptr ? lab_->On(host) : std::vector<std::string>{};
    if (!env.empty()) {
      prefix.push_back("env");
      prefix.insert(prefix.end(), env.begin(), env.end());
    }
    pid_t pid = StartBarge(args, prefix);
    workers_[pid] = host;
    return pid;
  }
  int StopWorker(pid_t pid, int sig) {
    ::kill(pid, sig);
    int code = Wait(pid);
    workers_.erase(pid);
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
  // Tasks succeeded over all steps, from `barge status --json`.
  static int64_t Succeeded(const nlohmann::json& status) {
    int64_t n = 0;
    for (const auto& s : status["steps"]) n += s["succeeded"].get<int64_t>();
    return n;
  }
  std::map<int64_t, int> SideEffects() {
    std::map<int64_t, int> seen;
    std::istringstream in(Read((dir() / "side.txt").string()));
    for (std::string l; std::getline(in, l);) seen[std::stoll(l)]++;
    return seen;
  }
  // The pid inside a worker id "<host>-<pid>-<random>".
  static pid_t PidOf(const std::string& worker) {
    size_t end = worker.rfind('-'), start = worker.rfind('-', end - 1);
    return static_cast<pid_t>(std::stol(worker.substr(start + 1, end - start - 1)));
  }
  // Each task's committed output files' contents, by "step/index".
  std::map<std::string, std::string> CommittedOutputs(const nlohmann::json& tasks) {
    std::map<std::string, std::string> out;
    for (const auto& t : tasks) {
      std::string all;
      for (const auto& o : t["outputs"]) {
        std::string path = o["path"];
        all += Cat(path.substr(path.rfind('/') + 1), "=", Read(path), ";");
      }
      out[Cat(t["step"].get<std::string>(), "/", t["index"].get<int64_t>())] = all;
    }
    return out;
  }

  std::unique_ptr<NetnsLab> lab_;
  std::string pg_dir_;
  std::string mode_;
  std::map<pid_t, int> workers_;  // pid -> host
  int next_host_ = 0;
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

TEST_F(FleetTest, NoTaskProcessOutlivesAKilledWorker) {
  // As FaultTest.NoTaskProcessOutlivesAKilledDriver, for `barge worker`: the first attempts hold
  // an exec'd sleep and a shell's forked sleep; later ones finish at once.
  std::string p = Write("hold.yaml", kHoldingTasksPipeline);
  std::string side = (dir() / "side.txt").string();
  std::string id = Submit(p, {"-p", Cat("side=", side)});
  std::string marker = Cat("BARGE_RUN_ID=", id);
  pid_t victim = StartWorker();
  // Both first attempts have written their line (so the kill cannot land before one did), and
  // their three processes run: sh + its sleep for one task, the exec'd sleep for the other.
  auto started_lines = [&] {
    std::string text = Read(side);
    return std::count(text.begin(), text.end(), '\n');
  };
  WaitUntil([&] { return started_lines() == 2; }, "both tasks to start");
  WaitUntil([&] { return ProcessesWithEnv(marker).size() == 3; }, "the tasks' three processes");
  EXPECT_EQ(StopWorker(victim, SIGKILL), 128 + SIGKILL);
  WaitUntil([&] { return ProcessesWithEnv(marker).empty(); },
            "every task process to end with its worker", std::chrono::seconds(10));
  StartWorker();
  WaitUntil([&] { return RunState(id) == "succeeded"; }, "the run to succeed");
  std::string lines = Read(side);
  EXPECT_EQ(lines.find("late"), std::string::npos) << lines;
  EXPECT_EQ(std::count(lines.begin(), lines.end(), '\n'), 4) << lines;
  for (const auto& t : Json({"tasks", id, "--json"})) {
    EXPECT_EQ(t["attempts"], 2) << t.dump();
    EXPECT_EQ(t["infra_failures"], 1) << t.dump();
  }
}

TEST_F(FleetTest, SigtermDrainsAndReleasesUnfinishedTasksAtOnce) {
  std::string p = Write("stuck.yaml", MarksIn(R"(
name: stuck
steps:
  - name: stuck
    foreach: range(2)
    retries: 0
    run: |
      echo started > "@MARKS@/started.$BARGE_TASK_INDEX.$BARGE_ATTEMPT"
      if [ "$BARGE_ATTEMPT" = 1 ]; then exec sleep 60; fi
)"));
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
    EXPECT_EQ(t["attempt_history"][0]["state"], "drained");
    EXPECT_NE(t["attempt_history"][0]["error"].get<std::string>().find("drained"),
              std::string::npos);
  }
}

// The README: the first SIGTERM drains (tasks may finish within --drain-timeout), a second one
// stops them at once and hands their leases back.
TEST_F(FleetTest, ASecondSigtermStopsTheTasksAtOnce) {
  std::string p = Write("long.yaml", MarksIn(R"(
name: long
steps:
  - name: long
    retries: 0
    run: |
      echo started > "@MARKS@/started.$BARGE_ATTEMPT"
      if [ "$BARGE_ATTEMPT" = 1 ]; then exec sleep 60; fi
)"));
  std::string id = Submit(p);
  pid_t a = StartWorker({"--drain-timeout", "60s"});
  std::string err = LastBackgroundErr();
  WaitUntil([&] { return std::filesystem::exists(dir() / "started.1"); }, "the task to start");
  auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(::kill(a, SIGTERM), 0);
  // Signals of one kind do not queue: wait until the first has been taken.
  WaitUntil([&] { return Read(err).find("draining (1m") != std::string::npos; },
            "the worker to start draining");
  ASSERT_EQ(::kill(a, SIGTERM), 0);
  EXPECT_EQ(StopWorker(a, 0), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20))
      << "the second SIGTERM did not stop the task";
  nlohmann::json t = Json({"tasks", id, "--json"})[0];
  EXPECT_EQ(t["state"], "pending") << t.dump();
  EXPECT_EQ(t["retries_used"], 0) << t.dump();
}

TEST_F(FleetTest, AZombieWorkersLateResultIsFenced) {
  std::string p = Write("zombie.yaml", MarksIn(R"(
name: zombie
steps:
  - name: slow
    run: |
      echo started > "@MARKS@/started.$BARGE_ATTEMPT"
      if [ "$BARGE_ATTEMPT" = 1 ]; then sleep 3; fi
      echo "attempt $BARGE_ATTEMPT" > "$BARGE_OUTPUT_DIR/who"
)"));
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
    EXPECT_EQ(PidOf(t["attempt_history"].back()["worker"]), expected) << t.dump();
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
  // About 15 s here; a slower or busier CI machine may take several times that.
  WaitUntil([&] { return RunState(id) == "succeeded"; }, "the queue to drain",
            std::chrono::minutes(5));
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

// A worker's link is cut mid-task: the database expires its leases, the others run its tasks,
// and the cut-off worker stops its own copies once it cannot renew their leases. When the link
// comes back it reconnects and carries on; nothing it reports late is committed.
TEST_F(FleetTest, ACutLinkMovesTheWorkersTasksElsewhere) {
  std::string p = Write("cut.yaml", MarksIn(R"(
name: cut
steps:
  - name: work
    foreach: range(12)
    run: |
      echo $$ > "@MARKS@/pid.$BARGE_TASK_INDEX.$BARGE_ATTEMPT"
      if [ -n "$SLOW_HOST" ]; then sleep 30 & wait; fi
      echo $((BARGE_TASK_INDEX * 7)) > "$BARGE_OUTPUT_DIR/v"
)"));
  std::string id = Submit(p);
  pid_t victim = StartWorker({}, "2s", 1, {"SLOW_HOST=1"});
  std::vector<pid_t> shells;
  WaitUntil(
      [&] {
        shells.clear();
        for (int i = 0; i < 12; ++i) {
          std::string f = Read((dir() / Cat("pid.", i, ".1")).string());
          if (!f.empty()) shells.push_back(static_cast<pid_t>(std::stol(f)));
        }
        return shells.size() == 2;  // the victim offers 2 cpu: two tasks run on it
      },
      "the victim to start two tasks");
  if (netns()) {
    lab_->Cut(1);
  } else {
    ::kill(victim, SIGSTOP);  // loopback: a paused process stands in for a cut link
  }
  StartWorker({}, "2s", 2);
  StartWorker({}, "2s", 3);
  WaitUntil([&] { return RunState(id) == "succeeded"; }, "the others to finish the run");
  if (netns()) {
    // Still cut off, the victim gives up its tasks once it cannot renew their leases.
    WaitUntil([&] { return ::kill(shells[0], 0) != 0 && ::kill(shells[1], 0) != 0; },
              "the cut-off worker to stop its tasks");
    lab_->Restore(1);
  } else {
    ::kill(victim, SIGCONT);
  }
  EXPECT_EQ(::waitpid(victim, nullptr, WNOHANG), 0) << "the victim exited instead of retrying";
  EXPECT_EQ(StopWorker(victim, SIGTERM), 0);  // it reconnected, drained and de-registered
  nlohmann::json tasks = Json({"tasks", id, "--json", "--attempts"});
  int moved = 0;
  for (const auto& t : tasks) {
    int64_t i = t["index"];
    EXPECT_EQ(t["state"], "succeeded");
    EXPECT_EQ(Read(t["outputs"][0]["path"]), Cat(i * 7, "\n"));
    EXPECT_EQ(t["retries_used"], 0);
    int committed = 0;
    for (const auto& a : t["attempt_history"]) {
      bool on_victim = PidOf(a["worker"]) == victim;
      if (a["state"] == "succeeded") {
        ++committed;
        EXPECT_FALSE(on_victim) << t.dump();
      } else {
        EXPECT_TRUE(on_victim) << t.dump();
        EXPECT_TRUE(a["state"] == "lost" || a["state"] == "fenced") << t.dump();
        EXPECT_EQ(a["failure_class"], "infrastructure");
        EXPECT_NE(a["error"].get<std::string>().find("lease expired"), std::string::npos)
            << t.dump();
        ++moved;
      }
    }
    EXPECT_EQ(committed, 1) << t.dump();
  }
  EXPECT_EQ(moved, 2);
}

// Twenty times during a 1,000-task run, a random worker is killed with SIGKILL at a random point
// of progress and a new one started. Every task is committed exactly once, no retry is charged,
// and the outputs are byte for byte those of a fault-free run.
TEST_F(FleetTest, TwentyKillNinesDuringAThousandTasksLoseNothingAndCommitNothingTwice) {
  std::string p = Write("thousand.yaml", R"(
name: thousand
steps:
  - name: square
    foreach: range(1000)
    run: |
      echo $((BARGE_TASK_INDEX * BARGE_TASK_INDEX)) > "$BARGE_OUTPUT_DIR/sq"
      sleep 0.0$((BARGE_TASK_INDEX % 4))
  - name: total
    needs: [square]
    run: |
      sum=0
      while IFS= read -r f; do sum=$((sum + $(cat "$f"))); done < "$BARGE_INPUT_LIST"
      echo "$sum" > "$BARGE_OUTPUT_DIR/total"
)");
  // The fault-free reference: the same file run locally on its own SQLite state.
  Result clean = Barge({"run", p, "--state", (dir() / "clean/state.db").string(), "--root",
                        (dir() / "clean/data").string()});
  ASSERT_EQ(clean.exit_code, 0) << clean.err;
  std::map<std::string, std::string> expected = CommittedOutputs(
      Json({"tasks", "last", "--json", "--store", (dir() / "clean/state.db").string()}));
  ASSERT_EQ(expected.size(), 1001u);
  ASSERT_EQ(expected["total/0"], "total=332833500\n;");

  std::string id = Submit(p);
  for (int i = 0; i < 3; ++i) StartWorker({}, "2s");
  const unsigned seed = 20261122;
  std::printf("[   SEED   ] %u\n", seed);
  std::mt19937 rng(seed);
  // The kill points, as counts of tasks done, drawn up front over the first 80% of the run: how
  // far progress overshoots a point between two polls (more on a loaded machine) then delays one
  // kill but does not add up over twenty, so the run cannot finish before the last.
  std::vector<int64_t> points(20);
  for (int64_t& point : points) point = std::uniform_int_distribution<int64_t>(10, 800)(rng);
  std::sort(points.begin(), points.end());
  int kills = 0;
  int64_t progress = 0;
  for (int64_t point : points) {
    bool finished = false;
    WaitUntil(
        [&] {
          nlohmann::json status = Json({"status", id, "--json"});
          progress = Succeeded(status);
          finished = status["state"] != "running";
          return progress >= point || finished;
        },
        "progress to the next kill");
    if (finished) break;
    auto it = workers_.begin();
    std::advance(it, std::uniform_int_distribution<size_t>(0, workers_.size() - 1)(rng));
    auto [victim, host] = *it;
    EXPECT_EQ(StopWorker(victim, SIGKILL), 128 + SIGKILL);
    StartWorker({}, "2s", host);
    ++kills;
  }
  EXPECT_EQ(kills, 20) << "the run finished before all 20 kills";
  std::printf("[  KILLS   ] %d kills between %lld and %lld tasks done\n", kills,
              static_cast<long long>(points.front()), static_cast<long long>(progress));
  // The rest of the run, by workers that lost tasks at the last kill, on a possibly loaded machine.
  WaitUntil([&] { return RunState(id) == "succeeded"; }, "the run to succeed",
            std::chrono::minutes(5));

  nlohmann::json tasks = Json({"tasks", id, "--json", "--attempts"});
  EXPECT_EQ(CommittedOutputs(tasks), expected);
  int lost = 0;
  for (const auto& t : tasks) {
    EXPECT_EQ(t["state"], "succeeded");
    EXPECT_EQ(t["retries_used"], 0) << t.dump();
    int committed = 0;
    for (const auto& a : t["attempt_history"]) {
      if (a["state"] == "succeeded") {
        ++committed;
        EXPECT_EQ(a["attempt"], t["committed_attempt"]);
      } else {
        ++lost;
        EXPECT_TRUE(a["state"] == "lost" || a["state"] == "fenced") << t.dump();
        EXPECT_EQ(a["failure_class"], "infrastructure") << t.dump();
      }
    }
    EXPECT_EQ(committed, 1) << t.dump();
    EXPECT_EQ(t["infra_failures"].get<int>(), t["attempts"].get<int>() - 1) << t.dump();
  }
  std::printf("[   LOST   ] %d attempts lost to 20 kills, all run again elsewhere\n", lost);
  EXPECT_GE(lost, 5);  // the kills hit running tasks
}

// Contention at full size: eight processes on three hosts run the fleet's claim and complete
// protocol against one PostgreSQL until 100,000 no-op tasks are drained. (No child process per
// task: this is the queue under contention, which `barge worker` uses unchanged; the test above
// runs real workers on a smaller queue.) Every task is leased exactly once; none is lost.
TEST_F(FleetTest, EightProcessesDrainAHundredThousandTasksWithNoDoubleLeaseAndNoLoss) {
  constexpr int64_t kTasks = 100'000;
  constexpr int kProcesses = 8;
  const std::string url = std::getenv("BARGE_STATE");
  std::string run_id;
  {
    absl::StatusOr<std::unique_ptr<StateStore>> store = OpenStateStore(url);
    ASSERT_TRUE(store.ok()) << store.status();
    run_id = NewRunId((*store)->NowMs());
    RunRecord run{.id = run_id,
                  .pipeline = "contention",
                  .spec_path = "-",
                  .spec_source = "-",
                  .params_json = "{}",
                  .root = dir().string(),
                  .created_at = (*store)->NowMs()};
    ASSERT_TRUE((*store)->CreateRun(run, {{.name = "noop", .position = 0}}).ok());
    ASSERT_TRUE((*store)
                    ->StartStep(run_id, "noop", "[]", kTasks, {},
                                [](int64_t i) { return NewTask{.index = i}; })
                    .ok());
  }
  auto start = std::chrono::steady_clock::now();
  std::vector<pid_t> drainers;
  for (int p = 0; p < kProcesses; ++p) {
    std::vector<std::string> argv =
        lab_ != nullptr ? lab_->On(1 + p % kWorkerHosts) : std::vector<std::string>{};
    for (std::string a : {std::string(BARGE_QUEUE_DRAINER), url, run_id, Cat("drainer-", p),
                          std::string("16"), (dir() / Cat("claimed.", p)).string()}) {
      argv.push_back(a);
    }
    drainers.push_back(StartProcess(argv));
  }
  for (pid_t d : drainers) EXPECT_EQ(Wait(d), 0);
  std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  std::printf("[   RATE   ] %lld tasks by %d processes in %.1f s: %.0f claims+completions/s\n",
              static_cast<long long>(kTasks), kProcesses, took.count(), kTasks / took.count());

  std::vector<int> leased(kTasks, 0);
  int busy = 0;
  for (int p = 0; p < kProcesses; ++p) {
    std::istringstream in(Read((dir() / Cat("claimed.", p)).string()));
    int64_t index = 0, attempt = 0, mine = 0;
    while (in >> index >> attempt) {
      ASSERT_TRUE(index >= 0 && index < kTasks) << index;
      EXPECT_EQ(attempt, 1) << "task " << index;
      ++leased[index];
      ++mine;
    }
    busy += mine > 0;
  }
  int64_t never = 0, twice = 0;
  for (int n : leased) {
    never += n == 0;
    twice += n > 1;
  }
  EXPECT_EQ(never, 0) << "tasks lost";
  EXPECT_EQ(twice, 0) << "tasks leased twice";
  EXPECT_GE(busy, 6) << "the work was not shared";
  // The state store agrees: one attempt per task, every task succeeded.
  absl::StatusOr<std::unique_ptr<StateStore>> store = OpenStateStore(url);
  ASSERT_TRUE(store.ok());
  absl::StatusOr<std::vector<StepCounts>> counts = (*store)->CountTasks(run_id);
  ASSERT_TRUE(counts.ok() && counts->size() == 1u);
  EXPECT_EQ((*counts)[0].succeeded, kTasks);
  absl::StatusOr<std::unique_ptr<PgDb>> db = PgDb::Open(url);
  ASSERT_TRUE(db.ok()) << db.status();
  absl::StatusOr<std::unique_ptr<DbStatement>> q = (*db)->Prepare(
      "SELECT COUNT(*), COUNT(DISTINCT idx), MAX(attempt) FROM attempts WHERE run_id = ?");
  ASSERT_TRUE(q.ok()) << q.status();
  (*q)->Bind(run_id);
  ASSERT_TRUE(*(*q)->Step());
  EXPECT_EQ((*q)->Int(0), kTasks);
  EXPECT_EQ((*q)->Int(1), kTasks);
  EXPECT_EQ((*q)->Int(2), 1);
}

}  // namespace
}  // namespace barge::testing
