// The StateStore over SQL, written once for SQLite (one file, WAL mode; the default for laptops)
// and PostgreSQL (a fleet's shared state), through the DbConnection boundary. Write transactions
// take their locks up front (BEGIN IMMEDIATE on SQLite); claims skip rows other claimers hold
// (FOR UPDATE SKIP LOCKED on PostgreSQL).
#pragma once

#include <map>
#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "store/db.h"
#include "store/state_store.h"

namespace barge {

class SqlStateStore : public StateStore {
 public:
  // Takes the connection, applies pending migrations. Times come from `clock` if given (tests;
  // it must outlive the store), else from the database's clock where the dialect has one, so
  // that leases never depend on a worker's clock, else from this host's.
  static absl::StatusOr<std::unique_ptr<SqlStateStore>> Open(std::unique_ptr<DbConnection> db,
                                                             Clock* clock);

  int64_t NowMs() override;
  absl::StatusOr<int> SchemaVersion() override;

  absl::Status CreateRun(const RunRecord& run, const std::vector<StepRecord>& steps) override;
  absl::StatusOr<RunRecord> GetRun(const std::string& run_id) override;
  absl::StatusOr<std::vector<RunRecord>> ListRuns(const RunFilter& filter) override;
  absl::Status DeleteRun(const std::string& run_id) override;
  absl::StatusOr<std::vector<StepRecord>> GetSteps(const std::string& run_id) override;
  absl::StatusOr<std::vector<StepCounts>> CountTasks(const std::string& run_id) override;
  absl::StatusOr<bool> HasTasksIn(const std::string& run_id, const std::string& step,
                                  const std::vector<std::string>& states) override;
  absl::StatusOr<bool> StartStep(const std::string& run_id, const std::string& step,
                                 const std::string& shared_inputs_json, int64_t count,
                                 const Placement& placement,
                                 const std::function<NewTask(int64_t)>& make_task) override;
  absl::StatusOr<bool> TransitionStep(const std::string& run_id, const std::string& step,
                                      const std::string& from, const std::string& to) override;
  absl::StatusOr<bool> TransitionRun(const std::string& run_id, const std::string& from,
                                     const std::string& to, const std::string& error) override;
  absl::StatusOr<std::string> PinStepImage(const std::string& run_id, const std::string& step,
                                           const std::string& reference) override;

  absl::StatusOr<std::vector<TaskRecord>> Claim(const ClaimRequest& request) override;
  absl::StatusOr<std::vector<bool>> Complete(const std::vector<Completion>& batch) override;
  absl::StatusOr<std::vector<TaskKey>> Heartbeat(const std::string& worker_id,
                                                 int64_t lease_ms) override;
  absl::StatusOr<int64_t> ReapExpired(int max_infra_failures) override;
  absl::StatusOr<int64_t> ReleaseWorker(const std::string& worker_id, const std::string& reason,
                                        int max_infra_failures, const char* attempt_state) override;

  absl::StatusOr<int64_t> RequeueTasks(const std::string& run_id,
                                       const std::vector<std::string>& states) override;
  absl::StatusOr<bool> CancelRun(const std::string& run_id, const std::string& reason) override;

  absl::StatusOr<std::vector<TaskRecord>> ListTasks(const TaskFilter& filter) override;
  absl::StatusOr<TaskRecord> GetTask(const TaskKey& key) override;
  absl::StatusOr<std::vector<AttemptRecord>> ListAttempts(const TaskKey& key) override;
  absl::StatusOr<std::vector<EventRecord>> ListEvents(const std::string& run_id) override;
  absl::Status AddEvent(const EventRecord& event) override;

  absl::StatusOr<std::vector<AttemptRecord>> ListRunAttempts(const std::string& run_id) override;
  absl::StatusOr<std::vector<TaskLoad>> LoadByQueue() override;
  absl::StatusOr<std::vector<PendingGroup>> PendingByStep() override;
  absl::StatusOr<std::vector<std::string>> ListBusyWorkers() override;
  absl::StatusOr<std::vector<FinishedAttempt>> AttemptsFinished(int64_t from_ms,
                                                                int64_t to_ms) override;

  absl::Status PutSchedule(const ScheduleRecord& schedule) override;
  absl::StatusOr<ScheduleRecord> GetSchedule(const std::string& name) override;
  absl::StatusOr<std::vector<ScheduleRecord>> ListSchedules() override;
  absl::StatusOr<bool> DeleteSchedule(const std::string& name) override;
  absl::StatusOr<bool> SetScheduleEnabled(const std::string& name, bool enabled) override;
  absl::StatusOr<bool> RecordFire(const ScheduleFire& fire, int64_t from_last_slot) override;
  absl::StatusOr<std::vector<ScheduleFire>> ListFires(const std::string& schedule,
                                                      int64_t limit) override;

  absl::Status RegisterWorker(const WorkerRecord& worker) override;
  absl::Status DeregisterWorker(const std::string& worker_id) override;
  absl::StatusOr<std::vector<WorkerRecord>> ListWorkers() override;
  absl::StatusOr<std::vector<WorkerRecord>> ListRunWorkers(const std::string& run_id) override;
  absl::Status SetWorkerStatus(const std::string& worker_id, const std::string& status) override;
  absl::Status PublishWorkerShapes(const std::vector<WorkerShape>& shapes) override;
  absl::StatusOr<std::vector<WorkerShape>> ListWorkerShapes() override;
  absl::Status ReportWorkerStats(const std::string& worker_id,
                                 const std::string& stats_json) override;

 private:
  SqlStateStore(std::unique_ptr<DbConnection> db, Clock* clock)
      : db_(std::move(db)), clock_(clock) {}

  // The store's time. REQUIRES: mu_ held.
  int64_t Now() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Status Migrate() ABSL_LOCKS_EXCLUDED(mu_);
  // Refuses a schema migrated by a newer barge.
  absl::Status CheckNotNewer(int64_t version) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A cached prepared statement, reset and ready for binding.
  absl::StatusOr<DbStatement*> Stmt(const std::string& sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs `body` inside BEGIN IMMEDIATE ... COMMIT, rolling back if it fails.
  absl::Status InTransaction(const std::function<absl::Status()>& body)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs `attempt` (a transaction, or one statement that commits on its own) and runs it again
  // after a deadlock or a serialization failure, up to 5 times, with cached statements reset.
  absl::Status Retrying(const std::function<absl::Status()>& attempt)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status InsertEvent(const std::string& run_id, const std::string& kind,
                           const std::string& step, int64_t index, const std::string& message)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Claims the longest prefix of candidates that fits, in one statement (data-modifying CTEs);
  // appends the tasks to `claimed` and returns how many candidates there were.
  absl::StatusOr<int64_t> ClaimInOneStatement(const ClaimRequest& request,
                                              std::vector<TaskRecord>& claimed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Claims task by task what fits, skipping any too large for the room left (in a transaction).
  absl::StatusOr<std::vector<TaskRecord>> ClaimTaskByTask(const ClaimRequest& request)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  struct CommittedCompletions {
    // The start of each attempt taken, by task and attempt number.
    std::map<std::pair<TaskKey, int>, int64_t> started_at;
    int64_t now = 0;  // the time they were committed at
  };
  // Commits each completion whose attempt still holds its task's lease and records its attempt.
  absl::StatusOr<CommittedCompletions> CommitCompletions(const std::vector<Completion>& batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Events of accepted failures and retries; rejected completions marked as fenced attempts.
  absl::Status RecordCompletionEvents(const std::vector<Completion>& batch,
                                      const std::vector<bool>& accepted)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The clock as SQL: the database's own when it has one and no clock was injected, else a
  // parameter that BindClock binds.
  bool ClockInSql() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string ClockSql() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void BindClock(DbStatement& q) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A running task's lease, as ReleaseLeases reads it.
  struct LeaseRow {
    TaskKey key;
    int attempt = 0;
    int infra_failures = 0;
    std::string owner;
    int64_t started_at = 0;
  };
  // Returns a leased task to the queue as an infrastructure failure (reaped, worker gone or
  // drained), and records its attempt as `attempt_state`. False if the attempt no longer holds
  // the task.
  absl::StatusOr<bool> ReleaseLease(const LeaseRow& lease, const std::string& reason,
                                    int max_infra_failures, const char* attempt_state)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The leases of running tasks matching `where` (bound by `bind`), locked if `lock`.
  absl::StatusOr<std::vector<LeaseRow>> ReadLeases(const std::string& where,
                                                   const std::function<void(DbStatement&)>& bind,
                                                   bool lock) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records an attempt that ended without a completion from its worker (lost, cancelled).
  absl::Status InsertEndedAttempt(const LeaseRow& lease, const std::string& state,
                                  const std::string& failure_class, int64_t now,
                                  const std::string& error) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Releases every running task's lease matching `where` (bound by `bind`), each with the reason
  // `reason(lease_owner)`. Returns how many were released.
  absl::StatusOr<int64_t> ReleaseLeases(
      const std::string& where, const std::function<void(DbStatement&)>& bind,
      const std::function<std::string(const std::string& owner)>& reason, int max_infra_failures,
      const char* attempt_state) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::vector<ScheduleRecord>> QuerySchedules(const std::string& where,
                                                             const std::string& name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::vector<AttemptRecord>> QueryAttempts(
      const std::string& sql_tail, const std::function<void(DbStatement&)>& bind)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sets one text column (a literal name, never user input) of a worker's row.
  absl::Status SetWorkerText(const char* column, const std::string& worker_id,
                             const std::string& value) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::vector<WorkerRecord>> QueryWorkers(
      const std::string& sql_tail, const std::function<void(DbStatement&)>& bind)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::vector<TaskRecord>> QueryTasks(const std::string& sql_tail,
                                                     const std::function<void(DbStatement&)>& bind)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Every call holds mu_ for its whole length: one connection, one transaction at a time. The
  // lambdas the calls hand to InTransaction and Retrying begin with mu_.AssertHeld(): clang's
  // analysis (scripts/thread_safety.py) does not follow a held lock into a lambda.
  absl::Mutex mu_;
  std::unique_ptr<DbConnection> db_ ABSL_GUARDED_BY(mu_);
  Clock* clock_;  // null: the database's clock, or system_clock_
  SystemClock system_clock_;
  // Of the connection the cached statements were prepared on.
  int64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  // The database's clock as read when the current transaction began (-1: none): one clock for
  // the whole transaction, and no round trip of its own.
  int64_t transaction_now_ ABSL_GUARDED_BY(mu_) = -1;
  std::map<std::string, std::unique_ptr<DbStatement>, std::less<>> statements_ ABSL_GUARDED_BY(mu_);
};

}  // namespace barge
