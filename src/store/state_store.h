// StateStore: the only memory of barge. Runs (with a frozen copy of their spec), steps, tasks,
// every attempt, live workers and an event log. Any process may read and advance a run; all
// transitions are transactional and idempotent, so killing any process at any moment loses
// nothing that was committed.
//
// Queue semantics live here: Claim() leases ready tasks atomically, Heartbeat() extends a
// worker's leases, ReapExpired() returns expired leases to the queue, and Complete() accepts a
// result only from the current attempt's lease holder (the attempt number is the fencing token).
//
// Policy (retry or fail, backoff) is decided by the caller and passed in a Completion; the store
// only applies it, under fencing. Times are milliseconds since the epoch, from the store's clock.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<StateStore> store, OpenStateStore("sqlite:.barge/state.db"));
//   ASSIGN_OR_RETURN(auto claimed, store->Claim({.worker_id = id, .free_cpu = 2, ...}));
//
// Thread-safety: implementations are safe to call from several threads (calls are serialised).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace barge {

// Run states: running, succeeded, failed, cancelled; deleting (barge gc is removing it: it can no
// longer be resumed or retried).
// Step states: pending (not started), running (tasks created), succeeded, failed, cancelled.
// Task states: pending (queued, maybe waiting for not_before), running (leased), succeeded,
//              failed, cancelled. (`cached` is reserved for the task cache; nothing produces it.)
// Attempt states: running, succeeded, failed, lost (lease expired or worker gone), cancelled,
//                 drained (its worker was drained and handed the task back), fenced.
namespace state {
inline constexpr const char kPending[] = "pending";
inline constexpr const char kRunning[] = "running";
inline constexpr const char kSucceeded[] = "succeeded";
inline constexpr const char kFailed[] = "failed";
inline constexpr const char kCancelled[] = "cancelled";
inline constexpr const char kCached[] = "cached";
inline constexpr const char kLost[] = "lost";
inline constexpr const char kDrained[] = "drained";
inline constexpr const char kFenced[] = "fenced";  // a late result of a lost attempt, not committed
inline constexpr const char kDeleting[] = "deleting";
}  // namespace state

// Failure classes recorded on attempts.
namespace failure {
inline constexpr const char kApplication[] = "application";
inline constexpr const char kInfrastructure[] = "infrastructure";
inline constexpr const char kBadInput[] = "bad_input";
}  // namespace failure

struct RunRecord {
  std::string id;
  std::string pipeline;
  std::string state;
  std::string spec_path;    // where the spec was read from, for display and relative paths
  std::string spec_source;  // frozen copy of the YAML text
  std::string params_json;  // resolved params, a JSON object of strings
  std::string root;         // data root for this run's outputs and logs
  std::string error;
  int64_t created_at = 0;
  int64_t finished_at = 0;  // 0 while not finished
};

struct StepRecord {
  std::string run_id;
  std::string name;
  int position = 0;  // order in the pipeline file
  std::string state;
  std::string inputs_json = "[]";  // inputs shared by every task of the step
  int64_t task_count = 0;
  int64_t started_at = 0;
  int64_t finished_at = 0;
};

struct TaskKey {
  std::string run_id;
  std::string step;
  int64_t index = 0;
  friend bool operator==(const TaskKey&, const TaskKey&) = default;
  friend auto operator<=>(const TaskKey&, const TaskKey&) = default;
};

// A task to create when a step starts.
// Where a step's tasks may run: what each reserves, and which workers may take them.
struct Placement {
  double cpu = 1;
  int64_t memory = 0;
  std::string queue = "default";
  std::string required_labels;  // CanonicalLabels() of the step's labels; "" = any worker
};

struct NewTask {
  int64_t index = 0;
  std::string item_json = "null";
  std::string inputs_json;  // empty: the step's shared inputs
};

struct TaskRecord {
  TaskKey key;
  int position = 0;
  std::string state;
  std::string item_json;
  std::string inputs_json;  // empty: the step's shared inputs apply
  double cpu = 1;
  int64_t memory = 0;
  int attempt = 0;  // number of the latest attempt (0: never started)
  int app_failures = 0;
  int infra_failures = 0;
  int committed_attempt = 0;  // the attempt whose outputs are the task's (0: none)
  int exit_code = -1;
  std::string error;
  std::string outputs_json = "[]";  // the committed attempt's files
  std::string lease_owner;
  int64_t lease_expires_at = 0;
  int64_t not_before = 0;
  int64_t started_at = 0;   // of the latest attempt
  int64_t finished_at = 0;  // of the latest attempt
  std::string queue = "default";
  std::string required_labels;
};

struct AttemptRecord {
  TaskKey key;
  int attempt = 0;
  std::string worker_id;
  std::string state;
  std::string failure_class;  // empty on success
  int64_t started_at = 0;
  int64_t finished_at = 0;
  int exit_code = -1;
  std::string error;
  double cpu_seconds = 0;
  int64_t max_rss_kb = 0;
  std::string log_path;
  std::string output_path;
};

struct ClaimRequest {
  std::string worker_id;
  std::optional<std::string> run_id;  // claim only this run's tasks
  double free_cpu = 0;
  int64_t free_memory = 0;  // bytes; tasks with memory 0 always fit
  int max_tasks = 1;
  int64_t lease_ms = 60'000;
  std::optional<std::string> queue;  // claim only from this queue
  // Claim only tasks whose required labels are one of these (LabelSubsets() of the worker's
  // labels); nullopt: any task.
  std::optional<std::vector<std::string>> accepts;
};

// The outcome of one attempt, with the transition the caller decided on.
struct Completion {
  TaskKey key;
  int attempt = 0;
  std::string worker_id;
  std::string task_state;     // succeeded | failed | pending (retry) | cancelled
  std::string attempt_state;  // succeeded | failed | lost | cancelled | drained
  std::string failure_class;  // "" on success
  bool charge_retry = false;  // counts against the step's retries
  bool infra_failure = false;
  int64_t not_before = 0;  // for a retry: earliest time to claim again
  int exit_code = -1;
  std::string error;
  double cpu_seconds = 0;
  int64_t max_rss_kb = 0;
  std::string log_path;
  std::string output_path;
  std::string outputs_json = "[]";
};

struct WorkerRecord {
  std::string id;
  std::string host;
  int64_t pid = 0;
  std::string pid_start;  // the process's start time in clock ticks, to tell pid reuse apart
  double cpu = 0;
  int64_t memory = 0;
  std::string labels_json = "{}";
  std::string queue = "default";
  int64_t started_at = 0;
  int64_t heartbeat_at = 0;
  int64_t stopped_at = 0;         // 0 while registered
  std::string stats_json = "{}";  // the worker's counters, e.g. {"s3_bytes_in": 123}
};

struct EventRecord {
  int64_t id = 0;
  std::string run_id;
  int64_t at = 0;
  std::string kind;
  std::string step;
  int64_t index = -1;
  std::string message;
};

struct RunFilter {
  std::optional<std::string> state;
  std::optional<std::string> pipeline;
  int64_t finished_before = 0;  // > 0: only runs that finished before this time (ms)
  int64_t limit = -1;           // -1: all
  int64_t offset = 0;
};

struct TaskFilter {
  std::string run_id;
  std::optional<std::string> step;
  std::optional<std::string> state;
  int64_t limit = -1;
  int64_t offset = 0;
};

// Task counts of one step by state.
struct StepCounts {
  std::string step;
  int64_t pending = 0, running = 0, succeeded = 0, failed = 0, cancelled = 0, cached = 0;
  int64_t Total() const { return pending + running + succeeded + failed + cancelled + cached; }
  int64_t Done() const { return succeeded + cached; }
};

// A schedule: a pipeline's frozen spec that the server runs at every cron slot. Slots at or
// before last_slot are handled (fired or skipped); each slot gets one ScheduleFire.
struct ScheduleRecord {
  std::string name;
  std::string cron;                // 5 fields or a macro (schedule/cron.h)
  std::string time_zone;           // IANA name
  std::string catchup = "latest";  // missed slots: latest | all | none
  std::string overlap = "skip";    // previous run still going: skip | queue | allow
  std::string spec_path;
  std::string spec_source;
  std::string params_json = "{}";  // overrides, a JSON object of strings
  std::string root;
  bool enabled = true;
  int64_t last_slot = 0;
  int64_t created_at = 0;
  int64_t updated_at = 0;
};

// What happened at one slot of a schedule.
struct ScheduleFire {
  std::string schedule;
  int64_t slot = 0;
  std::string outcome;  // fired | skipped
  std::string run_id;   // fired: the run; skipped: the reason
  int64_t at = 0;       // when it was recorded; at - slot is the scheduler's lag
};

// Tasks waiting or running, grouped by what they reserve: the demand on a queue.
struct TaskLoad {
  std::string queue;
  std::string state;  // ready (pending, claimable now), waiting (pending, backing off), running
  double cpu = 0;
  int64_t memory = 0;
  int64_t count = 0;
};

// One finished attempt, for duration metrics.
struct FinishedAttempt {
  std::string queue;
  std::string state;
  int64_t duration_ms = 0;
  int64_t finished_at = 0;
};

class StateStore {
 public:
  virtual ~StateStore() = default;

  // The store's clock, used for leases and times.
  virtual int64_t NowMs() = 0;

  // Schema version after migrations (for tests and `barge version`).
  virtual absl::StatusOr<int> SchemaVersion() = 0;

  // --- runs and steps ---
  // Creates a run in state running and its steps in state pending. AlreadyExists if the id is
  // taken.
  virtual absl::Status CreateRun(const RunRecord& run, const std::vector<StepRecord>& steps) = 0;
  virtual absl::StatusOr<RunRecord> GetRun(const std::string& run_id) = 0;  // NotFound
  // Newest first.
  virtual absl::StatusOr<std::vector<RunRecord>> ListRuns(const RunFilter& filter) = 0;
  // Deletes a finished or deleting run's rows (the run, its steps, tasks, attempts and events)
  // in one transaction. NotFound if there is no such run; FailedPrecondition, deleting nothing,
  // if it is running.
  virtual absl::Status DeleteRun(const std::string& run_id) = 0;
  virtual absl::StatusOr<std::vector<StepRecord>> GetSteps(const std::string& run_id) = 0;
  virtual absl::StatusOr<std::vector<StepCounts>> CountTasks(const std::string& run_id) = 0;
  // Whether any task of the step is in one of `states`: one index probe however many tasks the
  // step has, where CountTasks reads every one (seconds for a million).
  virtual absl::StatusOr<bool> HasTasksIn(const std::string& run_id, const std::string& step,
                                          const std::vector<std::string>& states) = 0;

  // Moves a pending step to running and creates its `count` tasks (make_task(i) for i in
  // [0, count)), all in one transaction. Returns false, creating nothing, if the step was not
  // pending (another process started it).
  virtual absl::StatusOr<bool> StartStep(const std::string& run_id, const std::string& step,
                                         const std::string& shared_inputs_json, int64_t count,
                                         const Placement& placement,
                                         const std::function<NewTask(int64_t)>& make_task) = 0;
  // Sets a step's state if it is currently `from`; returns whether it changed.
  virtual absl::StatusOr<bool> TransitionStep(const std::string& run_id, const std::string& step,
                                              const std::string& from, const std::string& to) = 0;
  // Sets a run's state if it is currently `from`; returns whether it changed.
  virtual absl::StatusOr<bool> TransitionRun(const std::string& run_id, const std::string& from,
                                             const std::string& to, const std::string& error) = 0;

  // --- queue ---
  // Leases up to max_tasks pending tasks whose not_before has passed and that fit in the free
  // resources, starting a new attempt of each. Atomic with respect to other claimers.
  virtual absl::StatusOr<std::vector<TaskRecord>> Claim(const ClaimRequest& request) = 0;
  // Applies completions in one transaction. Returns, for each, whether it was accepted; a
  // completion from anyone but the current attempt's lease holder is rejected (fenced) and its
  // attempt recorded as fenced.
  virtual absl::StatusOr<std::vector<bool>> Complete(const std::vector<Completion>& batch) = 0;
  // Extends the leases of all running tasks held by `worker_id` and the worker's heartbeat.
  // Returns the tasks it still holds; a task it ran that is missing was revoked (cancelled or
  // reaped) and must be stopped.
  virtual absl::StatusOr<std::vector<TaskKey>> Heartbeat(const std::string& worker_id,
                                                         int64_t lease_ms) = 0;
  // Returns running tasks whose lease expired to the queue (an infrastructure failure, not
  // charged to retries); a task past `max_infra_failures` fails. Returns how many were reaped.
  virtual absl::StatusOr<int64_t> ReapExpired(int max_infra_failures) = 0;
  // Like ReapExpired, for every running task held by a worker known to be dead, or by one that
  // drained: its attempts are recorded as `attempt_state` (state::kLost or state::kDrained).
  virtual absl::StatusOr<int64_t> ReleaseWorker(const std::string& worker_id,
                                                const std::string& reason, int max_infra_failures,
                                                const char* attempt_state) = 0;

  // --- resume, retry, cancel ---
  // Re-queues a finished or interrupted run's tasks in `states` (with a fresh retry budget),
  // reopens their steps and the run. Returns how many tasks were re-queued.
  virtual absl::StatusOr<int64_t> RequeueTasks(const std::string& run_id,
                                               const std::vector<std::string>& states) = 0;
  // Cancels a running run: pending and running tasks and unfinished steps become cancelled.
  // Returns false if the run was already finished.
  virtual absl::StatusOr<bool> CancelRun(const std::string& run_id, const std::string& reason) = 0;

  // --- queries ---
  virtual absl::StatusOr<std::vector<TaskRecord>> ListTasks(const TaskFilter& filter) = 0;
  virtual absl::StatusOr<TaskRecord> GetTask(const TaskKey& key) = 0;  // NotFound
  virtual absl::StatusOr<std::vector<AttemptRecord>> ListAttempts(const TaskKey& key) = 0;
  virtual absl::StatusOr<std::vector<EventRecord>> ListEvents(const std::string& run_id) = 0;
  virtual absl::Status AddEvent(const EventRecord& event) = 0;

  // Every attempt of every task of a run, in (step position, index, attempt) order.
  virtual absl::StatusOr<std::vector<AttemptRecord>> ListRunAttempts(const std::string& run_id) = 0;
  // Ids of the workers holding a running task.
  virtual absl::StatusOr<std::vector<std::string>> ListBusyWorkers() = 0;
  // Pending and running tasks of all runs, grouped (see TaskLoad).
  virtual absl::StatusOr<std::vector<TaskLoad>> LoadByQueue() = 0;
  // Attempts that finished in (from_ms, to_ms], oldest first.
  virtual absl::StatusOr<std::vector<FinishedAttempt>> AttemptsFinished(int64_t from_ms,
                                                                        int64_t to_ms) = 0;

  // --- schedules ---
  // Creates or replaces a schedule's definition. A new schedule starts at last_slot = now; an
  // existing one keeps its last_slot, so changing a definition never re-fires a slot.
  virtual absl::Status PutSchedule(const ScheduleRecord& schedule) = 0;
  virtual absl::StatusOr<ScheduleRecord> GetSchedule(const std::string& name) = 0;  // NotFound
  virtual absl::StatusOr<std::vector<ScheduleRecord>> ListSchedules() = 0;
  // Returns false if there was no such schedule. Its fires are kept.
  virtual absl::StatusOr<bool> DeleteSchedule(const std::string& name) = 0;
  virtual absl::StatusOr<bool> SetScheduleEnabled(const std::string& name, bool enabled) = 0;
  // Records the outcome of a slot and moves last_slot to it, if last_slot is still `from`. Returns
  // false, changing nothing, if another process moved it first. A slot already recorded keeps its
  // first outcome.
  virtual absl::StatusOr<bool> RecordFire(const ScheduleFire& fire, int64_t from_last_slot) = 0;
  // The newest fires of a schedule, newest first.
  virtual absl::StatusOr<std::vector<ScheduleFire>> ListFires(const std::string& schedule,
                                                              int64_t limit) = 0;

  // --- workers ---
  virtual absl::Status RegisterWorker(const WorkerRecord& worker) = 0;
  virtual absl::Status DeregisterWorker(const std::string& worker_id) = 0;
  // Registered workers (alive, or dead but not yet released).
  virtual absl::StatusOr<std::vector<WorkerRecord>> ListWorkers() = 0;
  // Every worker, stopped ones too, that ran an attempt of the run.
  virtual absl::StatusOr<std::vector<WorkerRecord>> ListRunWorkers(const std::string& run_id) = 0;
  // Stores a worker's counters (a JSON object), as of now.
  virtual absl::Status ReportWorkerStats(const std::string& worker_id,
                                         const std::string& stats_json) = 0;
};

class Clock;

// Opens the store named by `url`: "postgres://..." / "postgresql://..." (PostgreSQL), or
// "sqlite:PATH", "sqlite://PATH" or a plain path (SQLite, creating the file). Applies pending
// migrations. Times come from the database's clock (PostgreSQL) or this host's (SQLite), unless
// a `clock` is given (tests); it must outlive the store.
absl::StatusOr<std::unique_ptr<StateStore>> OpenStateStore(const std::string& url,
                                                           Clock* clock = nullptr);

}  // namespace barge
