// Operating a fleet (issue 16): which machine runs what (--detach on retry and resume,
// --workers 0, Ctrl-C), a worker that cannot reach S3 quarantining itself, following a running
// attempt's log from another machine, and submissions checked against the fleet rather than the
// laptop. Fleet workers run in mount namespaces of their own in which the submitter's pipeline
// directory is an empty tmpfs, with PostgreSQL state and an S3 root (the test s3rver).
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <set>

#include "common/strings.h"
#include "harness.h"
#include "hidden_fleet.h"

namespace barge::testing {
namespace {

class OperateTest : public HiddenFleet<E2eTest> {
 protected:
  // Writes proj/<name> with @MARKS@ replaced and returns its path.
  std::string Pipeline(const std::string& name, const std::string& yaml) {
    return Write("proj/" + name, MarksIn(yaml));
  }
  std::string Submit(const std::string& pipeline) {
    Result r = Barge({"run", pipeline, "--detach", "--root", RootUrl()});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out.substr(0, r.out.find('\n'));
  }
  // The ids of the live fleet workers (not a run's own pool).
  std::set<std::string> FleetWorkerIds() {
    std::set<std::string> ids;
    for (const auto& w : Json({"workers", "--json"})) {
      if (w["queue"] == "default") ids.insert(w["id"].get<std::string>());
    }
    return ids;
  }
  // Every attempt of the run, as {worker, state}.
  std::vector<std::pair<std::string, std::string>> Attempts(const std::string& id) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& t : Json({"tasks", id, "--json", "--attempts"})) {
      for (const auto& a : t["attempt_history"]) {
        out.emplace_back(a["worker"].get<std::string>(), a["state"].get<std::string>());
      }
    }
    return out;
  }
};

// Task 1 fails until the file `fixed` exists.
constexpr char kFlakyPipeline[] = R"(
name: flaky
steps:
  - name: flaky
    foreach: range(3)
    run: |
      if [ "$BARGE_TASK_INDEX" = 1 ] && [ ! -e "@MARKS@/fixed" ]; then exit 3; fi
      echo "$BARGE_TASK_INDEX" > "$BARGE_OUTPUT_DIR/out.txt"
)";

TEST_F(OperateTest, WorkersZeroFollowsAndRetryDetachRequeuesWithoutJoiningTheFleet) {
  std::string p = Pipeline("flaky.yaml", kFlakyPipeline);
  StartHiddenWorker();
  WaitUntil([&] { return FleetWorkerIds().size() == 1; }, "the worker to register");
  std::set<std::string> fleet = FleetWorkerIds();
  // Followed to its end, exit code and all, while only the fleet runs it.
  Result followed = Barge({"run", p, "--workers", "0", "--root", RootUrl()});
  EXPECT_EQ(followed.exit_code, 1) << followed.err;
  EXPECT_EQ(followed.err.find("local pool"), std::string::npos) << followed.err;
  std::string id = RunIdFrom(followed);
  EXPECT_EQ(Json({"status", id, "--json"})["state"], "failed");

  Write("fixed", "");
  Result retried = Barge({"retry", id, "--detach"});
  ASSERT_EQ(retried.exit_code, 0) << retried.err;
  EXPECT_EQ(retried.out, id + "\n");
  EXPECT_NE(retried.err.find("re-queued 1 tasks"), std::string::npos) << retried.err;
  Result waited = Barge({"wait", id});
  EXPECT_EQ(waited.exit_code, 0) << waited.err;
  // Every attempt, the failed one and its retry included, ran on the fleet's worker.
  std::vector<std::pair<std::string, std::string>> attempts = Attempts(id);
  EXPECT_EQ(attempts.size(), 4u);
  for (const auto& [worker, state] : attempts) {
    EXPECT_TRUE(fleet.contains(worker)) << worker << " (" << state << ") is not a fleet worker";
  }
}

TEST_F(OperateTest, CtrlCOnResumeHandsItsTasksBackAndLeavesTheRunToTheFleet) {
  std::string p = Pipeline("hold.yaml", R"(
name: hold
steps:
  - name: hold
    run: |
      echo started > "@MARKS@/started.$BARGE_ATTEMPT"
      while [ ! -e "@MARKS@/go" ]; do sleep 0.05; done
      echo "attempt $BARGE_ATTEMPT" > "$BARGE_OUTPUT_DIR/out.txt"
)");
  std::string id = Submit(p);  // no worker yet
  ASSERT_EQ(Barge({"cancel", id}).exit_code, 0);
  EXPECT_EQ(Json({"status", id, "--json"})["state"], "cancelled");
  // The laptop resumes it with a pool of its own, then is interrupted while its task runs.
  pid_t resume = StartBarge({"resume", id, "--workers", "1"});
  std::string resume_err = LastBackgroundErr();
  WaitUntil([&] { return std::filesystem::exists(dir() / "started.1"); },
            "the laptop's pool to start the task");
  ASSERT_EQ(::kill(resume, SIGINT), 0);
  EXPECT_EQ(Wait(resume), 130);
  EXPECT_NE(Read(resume_err).find("goes on on the fleet"), std::string::npos) << Read(resume_err);
  EXPECT_EQ(Json({"status", id, "--json"})["state"], "running") << "Ctrl-C cancelled the run";
  nlohmann::json t = Json({"tasks", id, "--json"})[0];
  EXPECT_EQ(t["state"], "pending") << t.dump();
  EXPECT_EQ(t["retries_used"], 0) << t.dump();

  StartHiddenWorker();
  Write("go", "");
  Result waited = Barge({"wait", id});
  EXPECT_EQ(waited.exit_code, 0) << waited.err;
  std::vector<std::pair<std::string, std::string>> attempts = Attempts(id);
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts[0].second, "drained");
  EXPECT_EQ(attempts[1].second, "succeeded");
  EXPECT_NE(attempts[0].first, attempts[1].first);
}

TEST_F(OperateTest, AWorkerThatCannotReachS3QuarantinesItselfAndTheHealthyOneFinishesTheRun) {
  std::string p = Pipeline("many.yaml", R"(
name: many
steps:
  - name: many
    foreach: range(6)
    run: echo "$BARGE_TASK_INDEX" > "$BARGE_OUTPUT_DIR/out.txt"
)");
  // Its S3 endpoint is a closed port: every attempt fails to fetch the run's code bundle.
  pid_t black_hole = StartHiddenWorker({"AWS_ENDPOINT_URL=http://127.0.0.1:9"});
  std::string black_hole_err = LastBackgroundErr();
  std::string id = Submit(p);
  std::string black_hole_id;
  WaitUntil(
      [&] {
        for (const auto& w : Json({"workers", "--json"})) {
          if (w["status"].get<std::string>().starts_with("quarantined until")) {
            black_hole_id = w["id"];
            return true;
          }
        }
        return false;
      },
      "the worker to quarantine itself", std::chrono::minutes(2));
  std::string log = Read(black_hole_err);
  EXPECT_NE(log.find("failed for an infrastructure reason"), std::string::npos) << log;
  EXPECT_NE(log.find("quarantined for 30.0s, claiming nothing: 3 attempts in a row failed"),
            std::string::npos)
      << log;
  Result listed = Barge({"workers"});
  EXPECT_NE(listed.out.find("quarantined until"), std::string::npos) << listed.out;

  StartHiddenWorker();
  Result waited = Barge({"wait", id});
  EXPECT_EQ(waited.exit_code, 0) << waited.err;
  int64_t infra_failures = 0;
  for (const auto& t : Json({"tasks", id, "--json", "--attempts"})) {
    EXPECT_EQ(t["state"], "succeeded") << t.dump();
    infra_failures += t["infra_failures"].get<int64_t>();
    const auto& history = t["attempt_history"];
    EXPECT_NE(history.back()["worker"], black_hole_id) << t.dump();
  }
  // Two claims of two tasks each before it stopped claiming; none of them charged a retry.
  EXPECT_GE(infra_failures, 3);
  EXPECT_LE(infra_failures, 4);
  ::kill(black_hole, SIGTERM);
  EXPECT_EQ(Wait(black_hole), 0);
}

TEST_F(OperateTest, LogsFollowARunningAttemptOnAWorkerThatCannotBeSeen) {
  std::string p = Pipeline("talk.yaml", R"(
name: talk
steps:
  - name: talk
    run: |
      echo first
      while [ ! -e "@MARKS@/go" ]; do sleep 0.05; done
      echo second
)");
  StartHiddenWorker({"BARGE_LIVE_LOG_INTERVAL=100ms"});
  std::string id = Submit(p);
  pid_t follow = StartBarge({"logs", "-f", id, "talk", "0"});
  std::string out = LastBackgroundErr().replace(LastBackgroundErr().size() - 4, 4, ".out");
  WaitUntil([&] { return Read(out) == "first\n"; }, "the running attempt's first line");
  Write("go", "");
  EXPECT_EQ(Wait(follow), 0);
  EXPECT_EQ(Read(out), "first\nsecond\n");
  EXPECT_EQ(Barge({"wait", id}).exit_code, 0);
  // The pieces shipped while it ran are gone once the whole log is up.
  for (const std::string& key : Keys("runs/")) {
    EXPECT_EQ(key.find(".live/"), std::string::npos) << key;
  }
  Result whole = Barge({"logs", id, "talk", "0"});
  EXPECT_EQ(whole.out, "first\nsecond\n");
}

// Where no fleet is needed: a SQLite store and workers on this machine.
class FitTest : public E2eTest {};

TEST_F(FitTest, ADetachedRunIsCheckedAgainstTheFleetAndWhatNoWorkerCanTakeIsReported) {
  // More than this (or any CI) machine has: the laptop is not what runs it.
  std::string big = Write("big.yaml", R"(name: big
steps:
  - name: huge
    resources: {memory: 300GiB}
    run: "true"
)");
  Result unchecked = Barge({"run", big, "--detach"});
  ASSERT_EQ(unchecked.exit_code, 0) << unchecked.err;
  EXPECT_NE(unchecked.err.find("warning: no live worker"), std::string::npos) << unchecked.err;
  std::string id = unchecked.out.substr(0, unchecked.out.find('\n'));

  pid_t worker = StartBarge({"worker", "--cpu", "2", "--memory", "16GiB"});
  WaitUntil([&] { return Json({"workers", "--json"}).size() == 1; }, "the worker to register");
  Result refused = Barge({"run", big, "--detach"});
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("big.yaml:3:5: step \"huge\": no worker of the fleet can take its "
                             "tasks: needs 300.0GiB of memory; the largest worker of queue "
                             "default with the cpu has 16.0GiB"),
            std::string::npos)
      << refused.err;
  std::string gpu =
      Write("gpu.yaml", "name: gpu\nsteps:\n  - name: g\n    queue: gpu\n    run: \"true\"\n");
  Result no_queue = Barge({"run", gpu, "--detach"});
  EXPECT_EQ(no_queue.exit_code, 2);
  EXPECT_NE(no_queue.err.find("queue gpu: no live or configured worker serves it"),
            std::string::npos)
      << no_queue.err;
  EXPECT_EQ(Json({"runs", "--json"}).size(), 1u) << "a refused submission created a run";

  // The run submitted before the worker came waits for what no worker has, and says so.
  Result status = Barge({"status", id});
  EXPECT_NE(status.out.find("step huge: no live or configured worker can take its pending "
                            "tasks: needs 300.0GiB of memory"),
            std::string::npos)
      << status.out;
  EXPECT_NE(Json({"status", id, "--json"})["steps"][0]["unplaceable"].get<std::string>().find(
                "needs 300.0GiB"),
            std::string::npos);
  Result workers = Barge({"workers"});
  EXPECT_NE(workers.out.find(Cat("run ", id, " step huge: 1 pending: needs 300.0GiB")),
            std::string::npos)
      << workers.out;

  std::string small =
      Write("small.yaml",
            "name: small\nsteps:\n  - name: s\n    resources: {memory: 1GiB}\n    run: \"true\"\n");
  Result fits = Barge({"run", small, "--detach"});
  ASSERT_EQ(fits.exit_code, 0) << fits.err;
  EXPECT_EQ(Barge({"wait", fits.out.substr(0, fits.out.find('\n'))}).exit_code, 0);
  ::kill(worker, SIGTERM);
  EXPECT_EQ(Wait(worker), 0);
}

}  // namespace
}  // namespace barge::testing
