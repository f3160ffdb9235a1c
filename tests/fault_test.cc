// Faults: retries, timeouts, a driver killed mid-run and resumed, interrupts and cancellation.
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "common/strings.h"
#include "harness.h"
#include "store/state_store.h"

namespace barge::testing {
namespace {

class FaultTest : public E2eTest {
 protected:
  int CountLines(const std::string& path) {
    std::string text = Read(path);
    return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
  }
  void KillDriverAndResume();
  std::string LatestRunId() {
    nlohmann::json runs = Json({"runs", "--json"});
    return runs.empty() ? "" : runs[0]["id"].get<std::string>();
  }
};

TEST_F(FaultTest, ATaskThatFailsOnceIsRetried) {
  std::string p = Write("retry.yaml", R"(
name: flaky
steps:
  - name: flaky
    foreach: range(3)
    retries: 2
    retry_delay: 10ms
    run: |
      echo "attempt $BARGE_ATTEMPT"
      if [ "$BARGE_TASK_INDEX" = 1 ] && [ "$BARGE_ATTEMPT" = 1 ]; then exit 7; fi
      echo ok > "$BARGE_OUTPUT_DIR/done"
)");
  Result r = Barge({"run", p});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string id = RunIdFrom(r);
  nlohmann::json tasks = Json({"tasks", id, "--json"});
  EXPECT_EQ(tasks[0]["attempts"], 1);
  EXPECT_EQ(tasks[1]["attempts"], 2);
  EXPECT_EQ(tasks[1]["retries_used"], 1);
  EXPECT_EQ(tasks[1]["committed_attempt"], 2);
  EXPECT_EQ(tasks[1]["state"], "succeeded");
  EXPECT_EQ(Barge({"logs", id, "flaky", "1", "--attempt", "1"}).out, "attempt 1\n");
  EXPECT_EQ(Barge({"logs", id, "flaky", "1"}).out, "attempt 2\n");
  // The failed attempt left no committed output; only attempt 2's is the task's.
  ASSERT_EQ(tasks[1]["outputs"].size(), 1u);
  EXPECT_NE(tasks[1]["outputs"][0]["path"].get<std::string>().find("/flaky/1/a2/done"),
            std::string::npos);
}

// A retry waits its delay after the failure: 400 ms, less at most half by jitter.
TEST_F(FaultTest, ARetryStartsNoSoonerThanItsDelayAfterTheFailure) {
  std::string p = Write("delay.yaml", R"(
name: delayed
steps:
  - name: once
    retries: 1
    retry_delay: 400ms
    run: '[ "$BARGE_ATTEMPT" = 2 ]'
)");
  Result r = Barge({"run", p});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto store = OpenStateStore((dir() / ".barge/state.db").string());
  ASSERT_TRUE(store.ok()) << store.status();
  auto attempts = (*store)->ListAttempts({RunIdFrom(r), "once", 0});
  ASSERT_TRUE(attempts.ok()) << attempts.status();
  ASSERT_EQ(attempts->size(), 2u);
  EXPECT_EQ((*attempts)[0].state, "failed");
  EXPECT_EQ((*attempts)[1].state, "succeeded");
  // The delay is counted from just before the failure was committed, so allow a little.
  EXPECT_GE((*attempts)[1].started_at - (*attempts)[0].finished_at, 150);
}

TEST_F(FaultTest, ExhaustedRetriesFailTheRunAndRetryRerunsOnlyFailedTasks) {
  std::string p = Write("fail.yaml", R"(
name: failing
steps:
  - name: work
    foreach: range(4)
    run: |
      echo "$BARGE_TASK_INDEX" >> ../../../../side.txt
      [ "$BARGE_TASK_INDEX" != 2 ] || [ -e ../../../../fixed ]
  - name: after
    needs: [work]
    run: echo after >> ../../../../side.txt
)");
  Result r = Barge({"run", p});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  std::string id = RunIdFrom(r);
  EXPECT_NE(r.err.find("step work failed: task 2: exit code 1"), std::string::npos) << r.err;
  nlohmann::json failed = Json({"tasks", id, "--only", "failed", "--json"});
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0]["index"], 2);
  EXPECT_EQ(failed[0]["exit_code"], 1);
  EXPECT_EQ(Json({"status", id, "--json"})["steps"][1]["state"], "pending");  // never started

  Write("fixed", "");
  Result retried = Barge({"retry", id});
  ASSERT_EQ(retried.exit_code, 0) << retried.err;
  std::multiset<std::string> lines;
  std::istringstream side(Read((dir() / "side.txt").string()));
  for (std::string l; std::getline(side, l);) lines.insert(l);
  EXPECT_EQ(lines.count("0"), 1u);  // succeeded the first time: not run again
  EXPECT_EQ(lines.count("2"), 2u);  // failed, then retried
  EXPECT_EQ(lines.count("after"), 1u);
  EXPECT_EQ(Json({"status", id, "--json"})["state"], "succeeded");
}

TEST_F(FaultTest, TimeoutKillsTheTaskAndFailsIt) {
  std::string p = Write("slow.yaml", R"(
name: slow
steps:
  - name: slow
    timeout: 300ms
    run: echo started; sleep 30
)");
  auto start = std::chrono::steady_clock::now();
  Result r = Barge({"run", p});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(25));
  nlohmann::json tasks = Json({"tasks", RunIdFrom(r), "--json"});
  EXPECT_EQ(tasks[0]["state"], "failed");
  EXPECT_EQ(tasks[0]["error"], "timed out after 0.3s");
  EXPECT_EQ(Barge({"logs", RunIdFrom(r), "slow", "0"}).out, "started\n");
}

// The crash test of the core issue: SIGKILL the driver mid-run, resume, and check that every
// task ran and that no task committed before the kill ran again.
void FaultTest::KillDriverAndResume() {
  constexpr int kTasks = 240;
  std::string side = (dir() / "side.txt").string();
  std::string p = Write("crash.yaml", Cat(R"(
name: crash
params: {side: x}
steps:
  - name: append
    foreach: range()",
                                          kTasks, R"()
    run: echo "$BARGE_TASK_INDEX" >> {params.side}
  - name: total
    needs: [append]
    run: wc -l < {params.side} > "$BARGE_OUTPUT_DIR/lines"
)"));
  pid_t driver = StartBarge({"run", p, "--workers", "2", "-p", Cat("side=", side)});
  WaitUntil([&] { return CountLines(side) >= kTasks / 4; }, "a quarter of the tasks");
  ASSERT_EQ(::kill(driver, SIGKILL), 0);
  EXPECT_EQ(Wait(driver), 128 + SIGKILL);

  std::string id = LatestRunId();
  ASSERT_FALSE(id.empty());
  std::set<int64_t> committed;
  for (const auto& t : Json({"tasks", id, "--step", "append", "--json"})) {
    if (t["state"] == "succeeded") committed.insert(t["index"].get<int64_t>());
  }
  ASSERT_FALSE(committed.empty());
  ASSERT_LT(committed.size(), static_cast<size_t>(kTasks)) << "the kill came too late to test";

  Result resumed = Barge({"resume", id});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("from lost workers"), std::string::npos);

  std::map<int64_t, int> seen;
  std::istringstream in(Read(side));
  for (std::string l; std::getline(in, l);) seen[std::stoll(l)]++;
  for (int64_t i = 0; i < kTasks; ++i) EXPECT_GE(seen[i], 1) << "task " << i << " never ran";
  for (int64_t i : committed) EXPECT_EQ(seen[i], 1) << "committed task " << i << " ran again";

  nlohmann::json status = Json({"status", id, "--json"});
  EXPECT_EQ(status["state"], "succeeded");
  // Tasks that were running when the driver died show the lost attempt with its reason.
  int lost = 0;
  for (const auto& t : Json({"tasks", id, "--step", "append", "--json"})) {
    EXPECT_EQ(t["state"], "succeeded");
    if (t["attempts"] > 1) {
      ++lost;
      EXPECT_EQ(t["infra_failures"], 1);
      EXPECT_EQ(t["retries_used"], 0);  // not charged to retries
    }
  }
  EXPECT_LE(lost, 2);  // at most the two that were leased by the dead driver
}

TEST_F(FaultTest, DriverKilledMidRunIsResumedWithoutRedoingCommittedWork) { KillDriverAndResume(); }

TEST_F(FaultTest, DriverKilledMidRunIsResumedOnPostgres) {
  if (!UsePostgres()) GTEST_SKIP() << "no BARGE_TEST_POSTGRES server";
  KillDriverAndResume();
}

TEST_F(FaultTest, NoTaskProcessOutlivesAKilledDriver) {
  std::string p = Write("hold.yaml", kHoldingTasksPipeline);
  std::string side = (dir() / "side.txt").string();
  pid_t driver = StartBarge({"run", p, "--workers", "2", "-p", Cat("side=", side)});
  WaitUntil([&] { return CountLines(side) == 2; }, "both tasks to start");
  std::string id = LatestRunId();
  std::string marker = Cat("BARGE_RUN_ID=", id);
  // sh + its sleep for one task, the exec'd sleep for the other.
  WaitUntil([&] { return ProcessesWithEnv(marker).size() == 3; }, "the tasks' three processes");
  ASSERT_EQ(::kill(driver, SIGKILL), 0);
  EXPECT_EQ(Wait(driver), 128 + SIGKILL);
  WaitUntil([&] { return ProcessesWithEnv(marker).empty(); },
            "every task process to end with its driver", std::chrono::seconds(10));

  Result resumed = Barge({"resume", id});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  std::string lines = Read(side);
  EXPECT_EQ(lines.find("late"), std::string::npos) << lines;
  EXPECT_EQ(CountLines(side), 4) << lines;  // each task's attempts 1 and 2, nothing else
  for (const auto& t : Json({"tasks", id, "--json"})) {
    EXPECT_EQ(t["state"], "succeeded") << t.dump();
    EXPECT_EQ(t["attempts"], 2) << t.dump();  // the lost one, and the one committed
    EXPECT_EQ(t["infra_failures"], 1) << t.dump();
  }
}

TEST_F(FaultTest, ATaskThatFailsOnAFullDiskSaysSoInItsLogAndError) {
  // A data root on a 1 MiB tmpfs, which the task fills.
  std::string small = (dir() / "small").string();
  std::filesystem::create_directories(small);
  if (std::system(Cat("mount -t tmpfs -o size=1M tmpfs '", small, "' 2>/dev/null").c_str()) != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here (not root, or no privilege)";
  }
  struct Unmount {
    std::string dir;
    ~Unmount() { (void)std::system(Cat("umount -l '", dir, "'").c_str()); }
  } unmount{small};
  std::string p = Write("fill.yaml", R"(
name: fill
steps:
  - name: fill
    run: dd if=/dev/zero of="$BARGE_OUTPUT_DIR/big" bs=64k count=64
)");
  Result r = Barge({"run", p, "--root", small});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  std::string id = RunIdFrom(r);
  nlohmann::json t = Json({"tasks", id, "--json"})[0];
  EXPECT_EQ(t["state"], "failed");
  EXPECT_EQ(t["infra_failures"], 0);
  std::string error = t["error"];
  EXPECT_NE(error.find("exit code 1 (no space left on device? the file system holding "),
            std::string::npos)
      << error;
  std::string log = Barge({"logs", id, "fill", "0"}).out;
  // dd's own message: the log was empty when the disk filled, so it needed space of its own.
  EXPECT_NE(log.find("dd: error writing"), std::string::npos) << log;
  EXPECT_NE(log.find("No space left on device"), std::string::npos) << log;
}

TEST_F(FaultTest, InterruptCancelsTheRunAndStopsItsTasks) {
  std::string p = Write("long.yaml", MarksIn(R"(
name: long
steps:
  - name: wait
    foreach: range(2)
    run: echo $$ > "@MARKS@/pid.$BARGE_TASK_INDEX"; exec sleep 60
)"));
  pid_t driver = StartBarge({"run", p, "--workers", "2"});
  std::string pid0 = (dir() / "pid.0").string(), pid1 = (dir() / "pid.1").string();
  WaitUntil([&] { return CountLines(pid0) == 1 && CountLines(pid1) == 1; }, "both tasks");
  ASSERT_EQ(::kill(driver, SIGINT), 0);
  EXPECT_EQ(Wait(driver), 130);
  std::string id = LatestRunId();
  EXPECT_EQ(Json({"status", id, "--json"})["state"], "cancelled");
  for (const auto& t : Json({"tasks", id, "--json"})) EXPECT_EQ(t["state"], "cancelled");
  for (const std::string& f : {pid0, pid1}) {
    pid_t task = static_cast<pid_t>(std::stol(Read(f)));
    std::string stat = Read(Cat("/proc/", task, "/stat"));
    EXPECT_TRUE(stat.empty() || stat.find(") Z") != std::string::npos) << "task still running";
  }
  // Resuming re-queues the cancelled tasks; `barge cancel` from another process stops them.
  pid_t again = StartBarge({"resume", id});
  WaitUntil(
      [&] {
        return Json({"status", id, "--json"})["steps"][0]["running"] == 2;
      },
      "the resumed tasks to run");
  Result cancel = Barge({"cancel", id});
  EXPECT_EQ(cancel.exit_code, 0) << cancel.err;
  EXPECT_EQ(Wait(again), 130);
  EXPECT_EQ(Barge({"cancel", id}).exit_code, 2);  // already cancelled
}

}  // namespace
}  // namespace barge::testing
