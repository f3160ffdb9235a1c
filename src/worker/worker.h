// Worker: claims tasks from the state store, runs each attempt in a child process on its own
// thread, heartbeats its leases and commits results in batches. `barge run` drives one run with
// an in-process Worker; `barge worker` (the fleet) runs the same loop over every run.
//
//   Worker worker(store, store, store, engine, runner,
//                 {.id = NewWorkerId(), .cpu = 2, .run_id = id, ...});
//   ASSIGN_OR_RETURN(RunRecord final_run, worker.Run());
//
// Thread-safety: Run() is called once, from one thread; RequestStop() from any thread.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/labels.h"
#include "engine/engine.h"
#include "process/process.h"
#include "store/fleet_registry.h"
#include "store/run_store.h"
#include "store/task_queue.h"
#include "worker/container_task.h"
#include "worker/task.h"

namespace barge {

struct WorkerOptions {
  std::string id;
  double cpu = 1;                     // concurrent cpu this worker offers
  int64_t memory = 0;                 // bytes it offers
  std::optional<std::string> run_id;  // drive only this run, and return when it ends; else
                                      // serve every run until stopped (`barge worker`)
  // Fleet mode only (no run_id): the queue served and the labels offered. A driver's pool runs
  // every task of its run, whatever their queue and labels.
  std::string queue = "default";
  Labels labels;
  std::string scratch_dir;  // local working directories of attempts
  int64_t lease_ms = 60'000;
  int64_t heartbeat_ms = 2'000;
  int64_t idle_poll_ms = 200;  // how often to look for work when there is none
  int max_infra_failures = 10;
  // Fleet mode only: after this many attempts in a row fail for infrastructure reasons (it
  // cannot reach S3, its disk is full), the worker claims nothing for `quarantine_ms`, doubling
  // each time up to 10 minutes, then takes one task at a time until one does not fail so.
  int quarantine_after = 3;
  int64_t quarantine_ms = 30'000;
  int64_t tick_ms = 1'000;        // how often on_tick is called
  std::function<void()> on_tick;  // progress display
  // Times the heartbeats, drains, sweeps and waits (its ElapsedMs()); null: the system's.
  // Borrowed; must outlive the worker.
  Clock* clock = nullptr;
};

// A worker id unique across hosts and time: "<host>-<pid>-<random>".
std::string NewWorkerId();

// The queue a run's local pool (a driver: `barge run`) registers with: "run:<id>". Such a worker
// takes any task of that run and no other.
std::string DriverQueue(const std::string& run_id);
// The run a registered worker is the local pool of; "" for a fleet worker.
std::string DriverPoolRun(const WorkerRecord& worker);

// Releases the leases of workers registered from this host whose process is gone, so their
// tasks run again at once instead of after their leases expire. Returns how many tasks.
absl::StatusOr<int64_t> ReleaseDeadLocalWorkers(FleetRegistry& fleet, TaskQueue& queue,
                                                int max_infra_failures);

class Worker {
 public:
  // The worker registers itself in `fleet`, claims from `queue` and reads and cancels runs in
  // `runs` (usually one StateStore for all three).
  Worker(RunStore& runs, TaskQueue& queue, FleetRegistry& fleet, Engine& engine,
         ProcessRunner& runner, WorkerOptions options);
  ~Worker();

  // Runs until the run named in the options is finished (returning it), or until stopped.
  absl::StatusOr<RunRecord> Run();

  // Stops: cancels the run being driven (Ctrl-C), stops running tasks and returns.
  void RequestStop();

  // Drains (a spot interruption notice): claims nothing more, lets running tasks finish for up
  // to `timeout_ms`, then stops the rest and hands their leases back to the queue at once,
  // without charging their retries. Run() returns when nothing runs any more. Asked again, the
  // earlier of the two deadlines holds (RequestDrain(0): stop the tasks now).
  void RequestDrain(int64_t timeout_ms);

  // How many runs this worker keeps a parsed context of: those it has tasks of, until it sees
  // them end. Not thread-safe: call when Run() has returned.
  size_t CachedRuns() const { return contexts_.size(); }

 private:
  struct Running {
    TaskRecord task;
    AttemptPaths paths;
    std::unique_ptr<CancelToken> cancel;
    std::thread thread;
  };
  struct Finished {
    TaskKey key;
    AttemptOutcome outcome;
  };
  struct RunContext {
    RunRecord run;
    std::shared_ptr<const Pipeline> pipeline;
    std::map<std::string, std::string> shared_inputs;  // by step
  };

  // What one Run() carries from one turn of its loop to the next. Times are clock_.ElapsedMs().
  struct Loop {
    int64_t now = 0;  // this turn's
    int64_t next_heartbeat = 0;
    int64_t next_tick = 0;
    int64_t next_reap = 0;
    int64_t next_sweep = 0;
    bool need_advance = true;
    bool stopping = false;        // cancelling (Ctrl-C on `barge run`)
    int64_t drain_deadline = -1;  // draining (SIGTERM on `barge worker`): no new claims
    int drain_asks_seen = 0;
    bool drain_killed = false;
    absl::Status cancel_status;  // kept apart: later commits must not hide it
  };

  // Registers this worker, and releases the tasks of dead workers of this host.
  absl::Status Register();
  // Takes what attempts and RequestStop/RequestDrain left since the last turn, and acts on a
  // stop or a drain deadline passed. Returns the attempts that finished.
  std::vector<Finished> TakeRequests(Loop& loop);
  // Claims and dispatches what fits, advancing runs when there is nothing to claim, and reaps
  // expired leases now and then.
  absl::Status DoWork(Loop& loop);
  // Whether a cpu slot is free for another task.
  bool HasRoom() const;
  // Whether the run this worker drives has ended and nothing of it is left to commit.
  bool DrivenRunDone() const;
  // Heartbeats and calls on_tick when they are due.
  absl::Status PeriodicDuties(Loop& loop);
  // Sleeps until an attempt finishes, a stop or drain is asked for, or the next periodic duty.
  void WaitForWork(const Loop& loop);
  // After the loop: hands back a drain's stopped tasks, deregisters, and says what Run returns.
  absl::StatusOr<RunRecord> Finish(const Loop& loop, const absl::Status& loop_status);
  // Asks every running attempt to stop (its thread still reports back).
  void CancelRunning();
  absl::StatusOr<RunContext*> ContextFor(const std::string& run_id);
  // Drops the run's context unless a task of it is still running here.
  void ForgetRun(const std::string& run_id);
  absl::Status Dispatch(TaskRecord task);
  absl::Status CommitFinished(std::vector<Finished> finished);
  absl::Status HeartbeatAndRevoke();
  absl::StatusOr<std::vector<TaskRecord>> ClaimWhatFits();
  // Advances the driven run, or (fleet mode) the runs this worker completed tasks of, and every
  // running run when `all_running`.
  absl::Status AdvanceRuns(bool all_running);
  // OK for a transient store error (unreachable), after logging it and growing the backoff;
  // `status` otherwise.
  absl::Status Tolerate(const absl::Status& status);
  // Counts a committed attempt's outcome toward quarantine (fleet mode), logging infrastructure
  // failures, and enters quarantine when they keep coming.
  void NoteOutcome(const Completion& c);
  // Whether the worker may claim now, leaving quarantine (for probation) when it is over.
  bool MayClaim();
  // Says in the registry (`barge workers`) why the worker takes no tasks; "" when it does.
  void ReportStatus(const std::string& status);

  RunStore& runs_;
  TaskQueue& queue_;
  FleetRegistry& fleet_;
  Engine& engine_;
  ProcessRunner& runner_;
  ImagePins pins_;  // the images of container steps, as their runs pinned them
  WorkerOptions options_;
  SystemClock system_clock_;
  Clock& clock_;
  std::mt19937_64 rng_;

  double used_cpu_ = 0;
  int64_t used_memory_ = 0;
  std::vector<std::string> accepts_;  // LabelSubsets(options_.labels)
  std::map<TaskKey, Running> running_;
  std::map<std::string, RunContext> contexts_;
  std::set<std::string> dirty_runs_;  // runs with tasks completed since they were last advanced
  RunRecord driven_run_;
  std::vector<Completion> unsent_;  // results the store has not taken yet
  int64_t backoff_ms_ = 0;          // > 0 while the store is unreachable
  int64_t last_heartbeat_ok_ = 0;
  std::string reported_stats_ = "{}";  // the stats last written with a heartbeat
  // Quarantine (fleet mode): infrastructure failures in a row, the last one's error, the
  // current quarantine's length and end (clock_.ElapsedMs(); -1: none), and probation after it.
  int infra_streak_ = 0;
  std::string last_infra_error_;
  int64_t quarantine_ms_ = 0;
  int64_t quarantine_until_ = -1;
  bool probation_ = false;
  std::string reported_status_;

  // What other threads hand the loop: finished attempts, a stop, drain asks. Changing them under
  // mu_ wakes the loop's wait (WaitForWork).
  absl::Mutex mu_;
  std::vector<Finished> finished_ ABSL_GUARDED_BY(mu_);
  bool stop_requested_ ABSL_GUARDED_BY(mu_) = false;
  // The earliest drain deadline asked for (clock_.ElapsedMs(); -1: none), and how many asks so far:
  // a later ask with a shorter timeout (a second SIGTERM) brings the deadline forward.
  int64_t drain_deadline_asked_ ABSL_GUARDED_BY(mu_) = -1;
  int drain_asks_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace barge
