// The SQLite StateStore: one file, WAL mode, write transactions with BEGIN IMMEDIATE so that
// claims from several processes on one machine are atomic. The default for laptops.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/clock.h"
#include "store/sqlite_db.h"
#include "store/state_store.h"

namespace barge {

class SqliteStateStore : public StateStore {
 public:
  // Opens or creates `path` and applies pending migrations. `clock` must outlive the store.
  static absl::StatusOr<std::unique_ptr<SqliteStateStore>> Open(const std::string& path,
                                                                Clock& clock);

  int64_t NowMs() override { return clock_.NowMs(); }
  absl::StatusOr<int> SchemaVersion() override;

  absl::Status CreateRun(const RunRecord& run, const std::vector<StepRecord>& steps) override;
  absl::StatusOr<RunRecord> GetRun(const std::string& run_id) override;
  absl::StatusOr<std::vector<RunRecord>> ListRuns(int64_t limit) override;
  absl::StatusOr<std::vector<StepRecord>> GetSteps(const std::string& run_id) override;
  absl::StatusOr<std::vector<StepCounts>> CountTasks(const std::string& run_id) override;
  absl::StatusOr<bool> StartStep(const std::string& run_id, const std::string& step,
                                 const std::string& shared_inputs_json, int64_t count, double cpu,
                                 int64_t memory,
                                 const std::function<NewTask(int64_t)>& make_task) override;
  absl::StatusOr<bool> TransitionStep(const std::string& run_id, const std::string& step,
                                      const std::string& from, const std::string& to) override;
  absl::StatusOr<bool> TransitionRun(const std::string& run_id, const std::string& from,
                                     const std::string& to, const std::string& error) override;

  absl::StatusOr<std::vector<TaskRecord>> Claim(const ClaimRequest& request) override;
  absl::StatusOr<std::vector<bool>> Complete(const std::vector<Completion>& batch) override;
  absl::StatusOr<std::vector<TaskKey>> Heartbeat(const std::string& worker_id,
                                                 int64_t lease_ms) override;
  absl::StatusOr<int64_t> ReapExpired(int max_infra_failures) override;
  absl::StatusOr<int64_t> ReleaseWorker(const std::string& worker_id, const std::string& reason,
                                        int max_infra_failures) override;

  absl::StatusOr<int64_t> RequeueTasks(const std::string& run_id,
                                       const std::vector<std::string>& states) override;
  absl::StatusOr<bool> CancelRun(const std::string& run_id, const std::string& reason) override;

  absl::StatusOr<std::vector<TaskRecord>> ListTasks(const TaskFilter& filter) override;
  absl::StatusOr<TaskRecord> GetTask(const TaskKey& key) override;
  absl::StatusOr<std::vector<AttemptRecord>> ListAttempts(const TaskKey& key) override;
  absl::StatusOr<std::vector<EventRecord>> ListEvents(const std::string& run_id) override;
  absl::Status AddEvent(const EventRecord& event) override;

  absl::Status RegisterWorker(const WorkerRecord& worker) override;
  absl::Status DeregisterWorker(const std::string& worker_id) override;
  absl::StatusOr<std::vector<WorkerRecord>> ListWorkers() override;

 private:
  SqliteStateStore(std::unique_ptr<SqliteDb> db, Clock& clock)
      : db_(std::move(db)), clock_(clock) {}

  absl::Status Migrate();
  // A cached prepared statement, reset and ready for binding.
  absl::StatusOr<SqliteStatement*> Stmt(const std::string& sql);
  // Runs `body` inside BEGIN IMMEDIATE ... COMMIT, rolling back if it fails.
  absl::Status InTransaction(const std::function<absl::Status()>& body);
  absl::Status InsertEvent(const std::string& run_id, const std::string& kind,
                           const std::string& step, int64_t index, const std::string& message);
  // Returns a leased task to the queue as an infrastructure failure (reaped or worker gone).
  absl::StatusOr<bool> ReleaseLease(const TaskKey& key, int attempt, int infra_failures,
                                    const std::string& reason, int max_infra_failures);
  // Releases every running task's lease matching `where` (bound by `bind`), each with the reason
  // `reason(lease_owner)`. Returns how many were released.
  absl::StatusOr<int64_t> ReleaseLeases(
      const std::string& where, const std::function<void(SqliteStatement&)>& bind,
      const std::function<std::string(const std::string& owner)>& reason, int max_infra_failures);
  absl::StatusOr<std::vector<TaskRecord>> QueryTasks(
      const std::string& sql_tail, const std::function<void(SqliteStatement&)>& bind);

  std::mutex mu_;
  std::unique_ptr<SqliteDb> db_;
  Clock& clock_;
  std::map<std::string, std::unique_ptr<SqliteStatement>> statements_;
};

}  // namespace barge
