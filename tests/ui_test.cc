// The web UI in headless Chromium: prepares a failed run, a running run, a 10,000-task run and a
// schedule, starts `barge serve`, and runs tests/ui/ui_test.cjs (playwright-core) against it.
// Screenshots go to <build>/test-artifacts/ui.
#include <signal.h>

#include <filesystem>

#include "common/clock.h"
#include "common/strings.h"
#include "engine/engine.h"
#include "harness.h"
#include "store/state_store.h"
#include "testing/s3rver.h"

namespace barge::testing {
namespace {

constexpr char kToken[] = "ui-test-token-0123456789abcdef";

// A succeeded run of 30,000 tasks spread over 8 workers, written through the store: more
// attempts than the Gantt chart draws one by one.
std::string MakeBigRun(const std::filesystem::path& dir) {
  ManualClock clock(SystemClock().NowMs() - 600'000);
  auto store = OpenStateStore((dir / ".barge/state.db").string(), &clock).value();
  ObjectStores stores;
  Engine engine(*store, stores);
  auto p = ParsePipeline(
      "name: big\nsteps:\n  - name: shard\n    foreach: range(30000)\n"
      "    run: 'true'\n  - name: merge\n    needs: [shard]\n    run: 'true'\n",
      (dir / "big.yaml").string(), {});
  std::string id = engine.CreateRun(*p, (dir / ".barge/data").string()).value();
  EXPECT_TRUE(engine.Advance(id).ok());
  for (int round = 0;; ++round) {
    int claimed_total = 0;
    for (int w = 0; w < 8; ++w) {
      std::string worker = Cat("ip-10-0-0-", w, "-4242-beef");
      if (round == 0) {
        EXPECT_TRUE(store->RegisterWorker({.id = worker, .host = "h", .cpu = 8}).ok());
      }
      auto claimed = store->Claim({.worker_id = worker, .free_cpu = 50, .max_tasks = 50});
      EXPECT_TRUE(claimed.ok());
      clock.AdvanceMs(40 + 7 * w);
      std::vector<Completion> done;
      for (const TaskRecord& t : *claimed) {
        done.push_back({.key = t.key,
                        .attempt = t.attempt,
                        .worker_id = worker,
                        .task_state = state::kSucceeded,
                        .attempt_state = state::kSucceeded,
                        .exit_code = 0,
                        .cpu_seconds = 0.03,
                        .max_rss_kb = 4096});
      }
      claimed_total += static_cast<int>(done.size());
      EXPECT_TRUE(store->Complete(done).ok());
    }
    EXPECT_TRUE(engine.Advance(id).ok());
    if (claimed_total == 0) break;
  }
  return id;
}

class UiTest : public E2eTest {
 protected:
  void TearDown() override {
    server_.Stop();
    if (worker_ > 0) {
      ::kill(worker_, SIGKILL);
      Wait(worker_);
    }
    E2eTest::TearDown();
  }
  ListeningProcess server_;
  pid_t worker_ = -1;
};

TEST_F(UiTest, SignInDagGanttFailedLogCancelAndABigRun) {
  std::string playwright = Cat(BARGE_SOURCE_DIR, "/.deps/playwright");
  if (!std::filesystem::exists(playwright + "/node_modules/playwright-core") ||
      !std::filesystem::exists("/usr/bin/chromium")) {
    if (std::getenv("BARGE_REQUIRE_BROWSER") != nullptr) {
      FAIL() << "BARGE_REQUIRE_BROWSER is set but chromium or playwright-core is missing "
                "(scripts/bootstrap.sh installs both)";
    }
    GTEST_SKIP() << "no chromium or playwright-core";
  }
  Write("fails.yaml",
        "name: fails\nsteps:\n  - name: work\n    foreach: range(3)\n"
        "    run: echo line-$BARGE_TASK_INDEX-of-output; test $BARGE_TASK_INDEX -ne 1 || exit 3\n"
        "  - name: report\n    needs: [work]\n    run: 'true'\n");
  Result failed = Barge({"run", "fails.yaml"});
  ASSERT_EQ(failed.exit_code, 1) << failed.err;
  std::string failed_id = RunIdFrom(failed);
  std::string big_id = MakeBigRun(dir());
  Write("waits.yaml", "name: waits\nsteps:\n  - name: s\n    foreach: range(5)\n    run: 'true'\n");
  Result waiting = Barge({"run", "--detach", "waits.yaml"});
  ASSERT_EQ(waiting.exit_code, 0) << waiting.err;
  std::string running_id(Trim(waiting.out));
  // A task that prints a line, waits for the browser's go, and prints another; its worker serves
  // only its queue, so the waiting run above stays waiting (and says no worker can take it).
  Write("talks.yaml", MarksIn("name: talks\nsteps:\n  - name: t\n    queue: talk\n    run: echo first; "
                              "while [ ! -e @MARKS@/go ]; do sleep 0.05; done; echo second\n"));
  Result talking = Barge({"run", "--detach", "talks.yaml"});
  ASSERT_EQ(talking.exit_code, 0) << talking.err;
  std::string talking_id(Trim(talking.out));
  worker_ = StartBarge({"worker", "--queue", "talk", "--cpu", "1"});
  Write("nightly.yaml",
        "name: nightly\nschedule: '30 2 * * *'\nsteps:\n  - name: s\n    run: 'true'\n");
  ASSERT_EQ(Barge({"schedule", "add", "nightly.yaml", "--timezone", "Europe/Berlin"}).exit_code, 0);

  ::setenv("BARGE_TOKEN", kToken, 1);
  ASSERT_TRUE(server_.Start(ServeCommand(dir()), (dir() / "serve.log").string()));
  ::unsetenv("BARGE_TOKEN");

  std::string out = Cat(BARGE_ARTIFACT_DIR, "/ui");
  std::filesystem::remove_all(out);
  std::filesystem::create_directories(out);
  std::string node_cmd = "exec node";
  for (const std::string& a :
       {Cat(BARGE_SOURCE_DIR, "/tests/ui/ui_test.cjs"), playwright, server_.Endpoint(),
        std::string(kToken), failed_id, running_id, big_id, out, talking_id,
        (dir() / "go").string()}) {
    node_cmd += " '" + a + "'";
  }
  pid_t node = StartProcess({"/bin/sh", "-c", node_cmd + " > node.out 2> node.err"});
  int code = Wait(node);
  std::string log = Read((dir() / "node.out").string()) + Read((dir() / "node.err").string());
  std::printf("%s", log.c_str());
  ASSERT_EQ(code, 0) << log;
  for (const char* shot :
       {"01-runs.png", "02-failed-run.png", "03-failed-task-log.png", "04-cancelled-run.png",
        "05-big-run.png", "06-workers.png", "07-schedules.png"}) {
    EXPECT_GT(std::filesystem::file_size(Cat(out, "/", shot)), 10'000u) << shot;
  }
  // The cancel the browser clicked reached the store.
  EXPECT_EQ(Json({"status", running_id, "--json"})["state"], "cancelled");
  EXPECT_EQ(Json({"status", big_id, "--json"})["state"], "succeeded");
}

}  // namespace
}  // namespace barge::testing
