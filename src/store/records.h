// The records the state store reads and writes (runs, steps, tasks, attempts, workers, events,
// schedules, queue load), and the names of their states: plain data shared by every role
// interface (run_store.h, task_queue.h, schedule_store.h, fleet_registry.h, telemetry.h), so
// that a header needing one role does not include the others.
//
// Times are milliseconds since the epoch, from the store's clock.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

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
// A container task killed for exceeding its resources.memory; retried as kApplication is.
inline constexpr const char kOutOfMemory[] = "out_of_memory";
}  // namespace failure

struct RunRecord {
  std::string id;
  std::string pipeline;
  std::string state;
  std::string spec_path;    // where the spec was read from, for display and relative paths
  std::string spec_source;  // frozen copy of the YAML text
  std::string params_json;  // resolved params, a JSON object of strings
  std::string root;         // data root for this run's outputs and logs
  // The sha256 of the run's code bundle under the root (bundle/bundle.h); "" for a run made
  // without one (its tasks see the pipeline's own directory).
  std::string bundle;
  // The submitter's local files uploaded under the root for a fleet (bundle/ship.h): a JSON
  // object from each files() pattern to the stored copies it matched.
  std::string uploads_json = "{}";
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
  // A container step's image as its first attempt pinned it (name@sha256:... or sha256:<id>);
  // "" until then.
  std::string image;
};

struct TaskKey {
  std::string run_id;
  std::string step;
  int64_t index = 0;
  friend bool operator==(const TaskKey&, const TaskKey&) = default;
  friend auto operator<=>(const TaskKey&, const TaskKey&) = default;
};

// Where a step's tasks may run: what each reserves, and which workers may take them.
struct Placement {
  double cpu = 1;
  int64_t memory = 0;
  std::string queue = "default";
  std::string required_labels;  // CanonicalLabels() of the step's labels; "" = any worker
};

// A task to create when a step starts.
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
  std::string status;             // why it takes no tasks for now (quarantined ...); '' if it does
};

// The size of the workers an autoscaler starts for a queue, up to max_workers of them.
struct WorkerShape {
  std::string queue = "default";
  double cpu = 0;
  int64_t memory = 0;
  std::string labels_json = "{}";
  int max_workers = 0;
  std::string publisher;  // who published it (the server's host and pid)
  int64_t updated_at = 0;
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

// Pending tasks of one step that share what they need of a worker, with how many there are.
struct PendingGroup {
  std::string run_id;
  std::string step;
  std::string queue;
  double cpu = 0;
  int64_t memory = 0;
  std::string required_labels;  // CanonicalLabels
  int64_t count = 0;
};

// One finished attempt, for duration metrics.
struct FinishedAttempt {
  std::string queue;
  std::string state;
  int64_t duration_ms = 0;
  int64_t finished_at = 0;
};

}  // namespace barge
