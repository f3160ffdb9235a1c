#include "store/sql_store.h"

#include "absl/cleanup/cleanup.h"
#include "common/status.h"
#include "common/strings.h"
#include "store/schema.h"
#include "store/sql_rows.h"

namespace barge {
using namespace sql_rows;

absl::StatusOr<std::unique_ptr<SqlStateStore>> SqlStateStore::Open(std::unique_ptr<DbConnection> db,
                                                                   Clock* clock) {
  std::unique_ptr<SqlStateStore> store(new SqlStateStore(std::move(db), clock));
  RETURN_IF_ERROR(WithContext(store->Migrate(), "migrating the state store"));
  return store;
}

int64_t SqlStateStore::NowMs() {
  absl::MutexLock lock(&mu_);
  return Now();
}

int64_t SqlStateStore::Now() {
  if (clock_ != nullptr) return clock_->NowMs();
  if (transaction_now_ >= 0) return transaction_now_;
  if (*db_->dialect().now_ms != '\0') {
    absl::StatusOr<DbStatement*> q = Stmt(Cat("SELECT ", db_->dialect().now_ms));
    if (q.ok()) {
      absl::StatusOr<bool> row = (*q)->Step();
      if (row.ok() && *row) {
        int64_t now = (*q)->Int(0);
        (*q)->Reset();
        return now;
      }
    }
    // The database is unreachable: the caller's next statement reports it.
  }
  return system_clock_.NowMs();
}

absl::StatusOr<DbStatement*> SqlStateStore::Stmt(const std::string& sql) {
  if (db_->generation() != generation_) {
    statements_.clear();  // reconnected: the database forgot them
    generation_ = db_->generation();
  }
  auto it = statements_.find(sql);
  if (it == statements_.end()) {
    ASSIGN_OR_RETURN(std::unique_ptr<DbStatement> stmt, db_->Prepare(sql));
    it = statements_.emplace(sql, std::move(stmt)).first;
  }
  it->second->Reset();
  return it->second.get();
}

absl::Status SqlStateStore::InTransaction(const std::function<absl::Status()>& body) {
  // Deadlocks and serialization failures (PostgreSQL) are retried: every body is idempotent
  // up to its commit.
  return Retrying([&]() -> absl::Status {
    mu_.AssertHeld();
    // Rolled back on every way out but a commit: an error, a Begin that failed halfway, and an
    // exception from `body` alike. A connection left inside a transaction would hold SQLite's
    // write lock against every process, and on PostgreSQL fail each later statement (25P02) or
    // commit the half-done work with the next transaction.
    absl::Cleanup rollback = [this] {
      mu_.AssertHeld();
      transaction_now_ = -1;
      (void)db_->Exec("ROLLBACK");
    };
    ASSIGN_OR_RETURN(transaction_now_, db_->Begin());
    absl::Status s = body();
    transaction_now_ = -1;
    if (s.ok()) s = db_->Exec("COMMIT");
    if (s.ok()) std::move(rollback).Cancel();
    return s;
  });
}

absl::Status SqlStateStore::Retrying(const std::function<absl::Status()>& attempt) {
  // A cached statement left mid-result holds an old read snapshot on SQLite: a write started
  // from a stale snapshot fails at once with SQLITE_BUSY instead of waiting, and later reads
  // outside a transaction would miss what other processes committed. Release them all, before
  // each attempt and after the last.
  auto release = [this] {
    mu_.AssertHeld();
    for (auto& [sql, stmt] : statements_) stmt->Reset();
  };
  absl::Cleanup release_at_end = release;  // an exception from `attempt` too
  for (int n = 1;; ++n) {
    release();
    absl::Status s = attempt();
    if (s.ok() || n >= 5 || !db_->IsRetryable(s)) return s;
  }
}

absl::Status SqlStateStore::Migrate() {
  absl::MutexLock lock(&mu_);
  // Most opens find the schema current: check without taking the write lock.
  {
    absl::StatusOr<std::unique_ptr<DbStatement>> q =
        db_->Prepare("SELECT MAX(version) FROM schema_migrations");
    if (q.ok()) {
      absl::StatusOr<bool> row = (*q)->Step();
      if (row.ok() && *row && (*q)->Int(0) >= Migrations().back().version) {
        return CheckNotNewer((*q)->Int(0));
      }
    }
  }
  return InTransaction([&]() -> absl::Status {
    mu_.AssertHeld();
    // Processes starting together migrate one at a time.
    if (*db_->dialect().migration_lock != '\0')
      RETURN_IF_ERROR(db_->Exec(db_->dialect().migration_lock));
    RETURN_IF_ERROR(
        db_->Exec("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                  "applied_at BIGINT NOT NULL)"));
    int current = 0;
    {
      ASSIGN_OR_RETURN(std::unique_ptr<DbStatement> q,
                       db_->Prepare("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"));
      ASSIGN_OR_RETURN(bool row, q->Step());
      if (row) current = static_cast<int>(q->Int(0));
    }
    RETURN_IF_ERROR(CheckNotNewer(current));
    for (const Migration& m : Migrations()) {
      if (m.version <= current) continue;
      for (const std::string& sql : m.statements) {
        RETURN_IF_ERROR(db_->Exec(ReplaceAll(sql, "{serial_pk}", db_->dialect().serial_pk)));
      }
      ASSIGN_OR_RETURN(std::unique_ptr<DbStatement> ins,
                       db_->Prepare("INSERT INTO schema_migrations VALUES (?, ?)"));
      RETURN_IF_ERROR(ins->Bind(m.version).Bind(Now()).Run());
    }
    return absl::OkStatus();
  });
}

absl::Status SqlStateStore::CheckNotNewer(int64_t version) {
  // A newer barge may have changed what the rows mean (version 4 writes an attempt's row only
  // when it ends): an older one must not read or write them.
  const int latest = Migrations().back().version;
  if (version <= latest) return absl::OkStatus();
  return absl::FailedPreconditionError(
      Cat("the state store's schema is version ", version, ", newer than this barge knows (",
          latest, "): upgrade barge on this machine; every worker of a fleet must be upgraded"));
}

absl::StatusOr<int> SqlStateStore::SchemaVersion() {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(DbStatement * q, Stmt("SELECT MAX(version) FROM schema_migrations"));
  ASSIGN_OR_RETURN(bool row, q->Step());
  int version = row ? static_cast<int>(q->Int(0)) : 0;
  q->Reset();  // an open statement would hold SQLite's read snapshot (see GetRun)
  return version;
}

absl::Status SqlStateStore::InsertEvent(const std::string& run_id, const std::string& kind,
                                        const std::string& step, int64_t index,
                                        const std::string& message) {
  ASSIGN_OR_RETURN(DbStatement * q,
                   Stmt("INSERT INTO events (run_id, at, kind, step, idx, message) "
                        "VALUES (?, ?, ?, ?, ?, ?)"));
  return q->Bind(run_id).Bind(Now()).Bind(kind).Bind(step).Bind(index).Bind(message).Run();
}

absl::Status SqlStateStore::CreateRun(const RunRecord& run, const std::vector<StepRecord>& steps) {
  absl::MutexLock lock(&mu_);
  return InTransaction([&]() -> absl::Status {
    mu_.AssertHeld();
    ASSIGN_OR_RETURN(DbStatement * q, Stmt(Cat("INSERT INTO runs (", kRunColumns,
                                               ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")));
    absl::Status s = q->Bind(run.id)
                         .Bind(run.pipeline)
                         .Bind(state::kRunning)
                         .Bind(run.spec_path)
                         .Bind(run.spec_source)
                         .Bind(run.params_json)
                         .Bind(run.root)
                         .Bind("")
                         .Bind(run.created_at)
                         .Bind(int64_t{0})
                         .Bind(run.bundle)
                         .Bind(run.uploads_json)
                         .Run();
    if (absl::IsAlreadyExists(s)) return absl::AlreadyExistsError("run " + run.id + " exists");
    RETURN_IF_ERROR(s);
    for (const StepRecord& step : steps) {
      ASSIGN_OR_RETURN(DbStatement * ins, Stmt("INSERT INTO steps (run_id, name, position, state) "
                                               "VALUES (?, ?, ?, ?)"));
      RETURN_IF_ERROR(
          ins->Bind(run.id).Bind(step.name).Bind(step.position).Bind(state::kPending).Run());
    }
    return InsertEvent(run.id, "run_created", "", -1, run.pipeline);
  });
}

absl::StatusOr<RunRecord> SqlStateStore::GetRun(const std::string& run_id) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(DbStatement * q, Stmt(Cat("SELECT ", kRunColumns, " FROM runs WHERE id = ?")));
  q->Bind(run_id);
  ASSIGN_OR_RETURN(bool row, q->Step());
  if (!row) return absl::NotFoundError(Cat("no run \"", run_id, "\""));
  RunRecord run = ReadRun(*q);
  // Reset now: a statement left open after its row keeps SQLite's read snapshot, and this
  // connection's later reads would miss what other processes commit until it is reused.
  q->Reset();
  return run;
}

absl::StatusOr<std::vector<RunRecord>> SqlStateStore::ListRuns(const RunFilter& filter) {
  absl::MutexLock lock(&mu_);
  std::string where = "1 = 1";
  if (filter.state) where += " AND state = ?";
  if (filter.pipeline) where += " AND pipeline = ?";
  if (filter.finished_before > 0) where += " AND finished_at > 0 AND finished_at < ?";
  ASSIGN_OR_RETURN(DbStatement * q,
                   Stmt(Cat("SELECT ", kRunColumns, " FROM runs WHERE ", where,
                            " ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?")));
  if (filter.state) q->Bind(*filter.state);
  if (filter.pipeline) q->Bind(*filter.pipeline);
  if (filter.finished_before > 0) q->Bind(filter.finished_before);
  q->Bind(filter.limit < 0 ? INT64_MAX : filter.limit).Bind(std::max<int64_t>(filter.offset, 0));
  std::vector<RunRecord> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    out.push_back(ReadRun(*q));
  }
  return out;
}

absl::Status SqlStateStore::DeleteRun(const std::string& run_id) {
  absl::MutexLock lock(&mu_);
  return InTransaction([&]() -> absl::Status {
    mu_.AssertHeld();
    ASSIGN_OR_RETURN(DbStatement * q, Stmt("SELECT state FROM runs WHERE id = ?"));
    q->Bind(run_id);
    ASSIGN_OR_RETURN(bool found, q->Step());
    if (!found) return absl::NotFoundError(Cat("no run ", run_id));
    std::string run_state = q->Text(0);
    q->Reset();
    if (run_state == state::kRunning) {
      return absl::FailedPreconditionError(Cat("run ", run_id, " is ", run_state));
    }
    for (const char* table : {"events", "attempts", "tasks", "steps"}) {
      ASSIGN_OR_RETURN(DbStatement * del, Stmt(Cat("DELETE FROM ", table, " WHERE run_id = ?")));
      RETURN_IF_ERROR(del->Bind(run_id).Run());
    }
    ASSIGN_OR_RETURN(DbStatement * del, Stmt("DELETE FROM runs WHERE id = ?"));
    return del->Bind(run_id).Run();
  });
}

absl::StatusOr<std::vector<StepRecord>> SqlStateStore::GetSteps(const std::string& run_id) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(
      DbStatement * q,
      Stmt("SELECT run_id, name, position, state, inputs_json, task_count, "
           "started_at, finished_at, image FROM steps WHERE run_id = ? ORDER BY position"));
  q->Bind(run_id);
  std::vector<StepRecord> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    StepRecord s;
    s.run_id = q->Text(0);
    s.name = q->Text(1);
    s.position = static_cast<int>(q->Int(2));
    s.state = q->Text(3);
    s.inputs_json = q->Text(4);
    s.task_count = q->Int(5);
    s.started_at = q->Int(6);
    s.finished_at = q->Int(7);
    s.image = q->Text(8);
    out.push_back(std::move(s));
  }
  return out;
}

absl::StatusOr<bool> SqlStateStore::HasTasksIn(const std::string& run_id, const std::string& step,
                                               const std::vector<std::string>& states) {
  absl::MutexLock lock(&mu_);
  if (states.empty()) return false;
  // One probe of tasks_by_state (run_id, step, state) per state.
  ASSIGN_OR_RETURN(DbStatement * q,
                   Stmt(Cat("SELECT 1 FROM tasks WHERE run_id = ? AND step = ? AND state IN (",
                            Repeated("?", states.size(), ", "), ") LIMIT 1")));
  q->Bind(run_id).Bind(step);
  for (const std::string& s : states) q->Bind(s);
  ASSIGN_OR_RETURN(bool row, q->Step());
  q->Reset();
  return row;
}

absl::StatusOr<std::vector<StepCounts>> SqlStateStore::CountTasks(const std::string& run_id) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(DbStatement * q, Stmt("SELECT step, state, COUNT(*) FROM tasks WHERE run_id = ? "
                                         "GROUP BY step, state ORDER BY step"));
  q->Bind(run_id);
  std::vector<StepCounts> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    std::string step = q->Text(0), st = q->Text(1);
    if (out.empty() || out.back().step != step) out.push_back(StepCounts{.step = step});
    StepCounts& c = out.back();
    int64_t n = q->Int(2);
    if (st == state::kPending)
      c.pending += n;
    else if (st == state::kRunning)
      c.running += n;
    else if (st == state::kSucceeded)
      c.succeeded += n;
    else if (st == state::kFailed)
      c.failed += n;
    else if (st == state::kCancelled)
      c.cancelled += n;
    else if (st == state::kCached)
      c.cached += n;
  }
  return out;
}

// Steps at least this large refresh the planner's statistics of the tasks table.
constexpr int64_t kRefreshStatsAfter = 1000;

absl::StatusOr<bool> SqlStateStore::StartStep(const std::string& run_id, const std::string& step,
                                              const std::string& shared_inputs_json, int64_t count,
                                              const Placement& placement,
                                              const std::function<NewTask(int64_t)>& make_task) {
  absl::MutexLock lock(&mu_);
  bool started = false;
  RETURN_IF_ERROR(InTransaction([&]() -> absl::Status {
    mu_.AssertHeld();
    int64_t now = Now();
    ASSIGN_OR_RETURN(DbStatement * up,
                     Stmt("UPDATE steps SET state = ?, inputs_json = ?, task_count = ?, "
                          "started_at = ? WHERE run_id = ? AND name = ? AND state = ?"));
    RETURN_IF_ERROR(up->Bind(state::kRunning)
                        .Bind(shared_inputs_json)
                        .Bind(count)
                        .Bind(now)
                        .Bind(run_id)
                        .Bind(step)
                        .Bind(state::kPending)
                        .Run());
    if (db_->Changes() == 0) return absl::OkStatus();
    started = true;
    ASSIGN_OR_RETURN(DbStatement * pos,
                     Stmt("SELECT position FROM steps WHERE run_id = ? AND name = ?"));
    pos->Bind(run_id).Bind(step);
    ASSIGN_OR_RETURN(bool found, pos->Step());
    int64_t position = found ? pos->Int(0) : 0;
    pos->Reset();
    static const std::vector<std::string> kColumns = {
        "run_id",      "step", "idx",    "position", "state",          "item_json",
        "inputs_json", "cpu",  "memory", "queue",    "required_labels"};
    RETURN_IF_ERROR(db_->InsertRows("tasks", kColumns, count, [&](int64_t i, DbRow& row) {
      NewTask t = make_task(i);
      row.Add(run_id)
          .Add(step)
          .Add(t.index)
          .Add(position)
          .Add(state::kPending)
          .Add(t.item_json)
          .Add(t.inputs_json)
          .Add(placement.cpu)
          .Add(placement.memory)
          .Add(placement.queue)
          .Add(placement.required_labels);
    }));
    return InsertEvent(run_id, "step_started", step, -1, Cat(count, " tasks"));
  }));
  if (started && count >= kRefreshStatsAfter && *db_->dialect().refresh_task_stats != '\0') {
    // Best effort: a failure here only leaves the planner less informed.
    db_->Exec(db_->dialect().refresh_task_stats).IgnoreError();
  }
  return started;
}

absl::StatusOr<bool> SqlStateStore::TransitionStep(const std::string& run_id,
                                                   const std::string& step, const std::string& from,
                                                   const std::string& to) {
  absl::MutexLock lock(&mu_);
  bool changed = false;
  RETURN_IF_ERROR(InTransaction([&]() -> absl::Status {
    mu_.AssertHeld();
    ASSIGN_OR_RETURN(DbStatement * q, Stmt("UPDATE steps SET state = ?, finished_at = ? "
                                           "WHERE run_id = ? AND name = ? AND state = ?"));
    RETURN_IF_ERROR(q->Bind(to).Bind(Now()).Bind(run_id).Bind(step).Bind(from).Run());
    changed = db_->Changes() > 0;
    if (!changed) return absl::OkStatus();
    return InsertEvent(run_id, Cat("step_", to), step, -1, "");
  }));
  return changed;
}

absl::StatusOr<std::string> SqlStateStore::PinStepImage(const std::string& run_id,
                                                        const std::string& step,
                                                        const std::string& reference) {
  absl::MutexLock lock(&mu_);
  std::string pinned;
  RETURN_IF_ERROR(InTransaction([&]() -> absl::Status {
    mu_.AssertHeld();
    // Conditional on no image yet: of attempts on many workers pinning at once, one wins and the
    // rest read its reference.
    ASSIGN_OR_RETURN(DbStatement * pin, Stmt("UPDATE steps SET image = ? "
                                             "WHERE run_id = ? AND name = ? AND image = ''"));
    RETURN_IF_ERROR(pin->Bind(reference).Bind(run_id).Bind(step).Run());
    bool won = db_->Changes() > 0;
    ASSIGN_OR_RETURN(DbStatement * q,
                     Stmt("SELECT image FROM steps WHERE run_id = ? AND name = ?"));
    q->Bind(run_id).Bind(step);
    ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) return absl::NotFoundError(Cat("run ", run_id, " has no step ", step));
    pinned = q->Text(0);
    q->Reset();
    if (!won) return absl::OkStatus();
    return InsertEvent(run_id, "image_pinned", step, -1, pinned);
  }));
  return pinned;
}

absl::StatusOr<bool> SqlStateStore::TransitionRun(const std::string& run_id,
                                                  const std::string& from, const std::string& to,
                                                  const std::string& error) {
  absl::MutexLock lock(&mu_);
  bool changed = false;
  RETURN_IF_ERROR(InTransaction([&]() -> absl::Status {
    mu_.AssertHeld();
    bool finished = to != state::kRunning;
    ASSIGN_OR_RETURN(DbStatement * q, Stmt("UPDATE runs SET state = ?, error = ?, finished_at = ? "
                                           "WHERE id = ? AND state = ?"));
    RETURN_IF_ERROR(
        q->Bind(to).Bind(error).Bind(finished ? Now() : 0).Bind(run_id).Bind(from).Run());
    changed = db_->Changes() > 0;
    if (!changed) return absl::OkStatus();
    return InsertEvent(run_id, Cat("run_", to), "", -1, error);
  }));
  return changed;
}

absl::StatusOr<std::vector<TaskRecord>> SqlStateStore::QueryTasks(
    const std::string& sql_tail, const std::function<void(DbStatement&)>& bind) {
  ASSIGN_OR_RETURN(DbStatement * q, Stmt(Cat("SELECT ", kTaskColumns, " FROM tasks ", sql_tail)));
  bind(*q);
  std::vector<TaskRecord> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    out.push_back(ReadTask(*q));
  }
  return out;
}

absl::StatusOr<std::vector<TaskRecord>> SqlStateStore::ListTasks(const TaskFilter& filter) {
  absl::MutexLock lock(&mu_);
  std::string where = "WHERE run_id = ?";
  if (filter.step) where += " AND step = ?";
  if (filter.state) where += " AND state = ?";
  return QueryTasks(Cat(where, " ORDER BY position, idx LIMIT ? OFFSET ?"), [&](DbStatement& q) {
    q.Bind(filter.run_id);
    if (filter.step) q.Bind(*filter.step);
    if (filter.state) q.Bind(*filter.state);
    q.Bind(filter.limit < 0 ? INT64_MAX : filter.limit).Bind(filter.offset);
  });
}

absl::StatusOr<TaskRecord> SqlStateStore::GetTask(const TaskKey& key) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(std::vector<TaskRecord> tasks,
                   QueryTasks("WHERE run_id = ? AND step = ? AND idx = ?", [&](DbStatement& q) {
                     q.Bind(key.run_id).Bind(key.step).Bind(key.index);
                   }));
  if (tasks.empty()) {
    return absl::NotFoundError(
        Cat("run ", key.run_id, " has no task ", key.step, "[", key.index, "]"));
  }
  return tasks.front();
}

// Every attempt: those that ended, each written once as it ended, and those running now, whose
// record is still their task's row.
constexpr const char kAllAttempts[] =
    "SELECT run_id, step, idx, attempt, worker_id, state, failure_class, started_at, "
    "finished_at, exit_code, error, cpu_seconds, max_rss_kb, log_path, output_path "
    "FROM attempts UNION ALL "
    "SELECT run_id, step, idx, attempt, lease_owner, 'running', '', started_at, 0, -1, '', "
    "0.0, 0, '', '' FROM tasks WHERE state = 'running'";

absl::StatusOr<std::vector<AttemptRecord>> SqlStateStore::QueryAttempts(
    const std::string& sql_tail, const std::function<void(DbStatement&)>& bind) {
  ASSIGN_OR_RETURN(DbStatement * q,
                   Stmt(Cat("SELECT a.run_id, a.step, a.idx, a.attempt, a.worker_id, a.state, "
                            "a.failure_class, a.started_at, a.finished_at, a.exit_code, a.error, "
                            "a.cpu_seconds, a.max_rss_kb, a.log_path, a.output_path FROM (",
                            kAllAttempts, ") a ", sql_tail)));
  bind(*q);
  std::vector<AttemptRecord> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    AttemptRecord a;
    a.key = {q->Text(0), q->Text(1), q->Int(2)};
    a.attempt = static_cast<int>(q->Int(3));
    a.worker_id = q->Text(4);
    a.state = q->Text(5);
    a.failure_class = q->Text(6);
    a.started_at = q->Int(7);
    a.finished_at = q->Int(8);
    a.exit_code = static_cast<int>(q->Int(9));
    a.error = q->Text(10);
    a.cpu_seconds = q->Double(11);
    a.max_rss_kb = q->Int(12);
    a.log_path = q->Text(13);
    a.output_path = q->Text(14);
    out.push_back(std::move(a));
  }
  return out;
}

absl::StatusOr<std::vector<AttemptRecord>> SqlStateStore::ListAttempts(const TaskKey& key) {
  absl::MutexLock lock(&mu_);
  return QueryAttempts("WHERE a.run_id = ? AND a.step = ? AND a.idx = ? ORDER BY a.attempt",
                       [&](DbStatement& q) { q.Bind(key.run_id).Bind(key.step).Bind(key.index); });
}

absl::StatusOr<std::vector<AttemptRecord>> SqlStateStore::ListRunAttempts(
    const std::string& run_id) {
  absl::MutexLock lock(&mu_);
  return QueryAttempts(
      "JOIN steps s ON s.run_id = a.run_id AND s.name = a.step WHERE a.run_id = ? "
      "ORDER BY s.position, a.idx, a.attempt",
      [&](DbStatement& q) { q.Bind(run_id); });
}

absl::StatusOr<std::vector<EventRecord>> SqlStateStore::ListEvents(const std::string& run_id) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(DbStatement * q,
                   Stmt("SELECT id, run_id, at, kind, step, idx, message FROM events "
                        "WHERE run_id = ? ORDER BY id"));
  q->Bind(run_id);
  std::vector<EventRecord> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    out.push_back(
        {q->Int(0), q->Text(1), q->Int(2), q->Text(3), q->Text(4), q->Int(5), q->Text(6)});
  }
  return out;
}

absl::Status SqlStateStore::AddEvent(const EventRecord& event) {
  absl::MutexLock lock(&mu_);
  return InTransaction([&] {
    mu_.AssertHeld();
    return InsertEvent(event.run_id, event.kind, event.step, event.index, event.message);
  });
}

absl::Status SqlStateStore::RegisterWorker(const WorkerRecord& w) {
  absl::MutexLock lock(&mu_);
  return InTransaction([&]() -> absl::Status {
    mu_.AssertHeld();
    int64_t now = Now();
    ASSIGN_OR_RETURN(
        DbStatement * q,
        Stmt(
            "INSERT INTO workers (id, host, pid, pid_start, cpu, memory, labels_json, "
            "queue, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, stopped_at = 0"));
    return q->Bind(w.id)
        .Bind(w.host)
        .Bind(w.pid)
        .Bind(w.pid_start)
        .Bind(w.cpu)
        .Bind(w.memory)
        .Bind(w.labels_json)
        .Bind(w.queue)
        .Bind(now)
        .Bind(now)
        .Run();
  });
}

absl::Status SqlStateStore::DeregisterWorker(const std::string& worker_id) {
  absl::MutexLock lock(&mu_);
  return InTransaction([&]() -> absl::Status {
    mu_.AssertHeld();
    ASSIGN_OR_RETURN(DbStatement * q,
                     Stmt("UPDATE workers SET stopped_at = ? WHERE id = ? AND stopped_at = 0"));
    return q->Bind(Now()).Bind(worker_id).Run();
  });
}

absl::StatusOr<std::vector<WorkerRecord>> SqlStateStore::QueryWorkers(
    const std::string& sql_tail, const std::function<void(DbStatement&)>& bind) {
  ASSIGN_OR_RETURN(
      DbStatement * q,
      Stmt(Cat("SELECT id, host, pid, pid_start, cpu, memory, labels_json, queue, "
               "started_at, heartbeat_at, stopped_at, stats_json, status FROM workers ",
               sql_tail)));
  bind(*q);
  std::vector<WorkerRecord> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    out.push_back({q->Text(0), q->Text(1), q->Int(2), q->Text(3), q->Double(4), q->Int(5),
                   q->Text(6), q->Text(7), q->Int(8), q->Int(9), q->Int(10), q->Text(11),
                   q->Text(12)});
  }
  return out;
}

absl::StatusOr<std::vector<WorkerRecord>> SqlStateStore::ListWorkers() {
  absl::MutexLock lock(&mu_);
  return QueryWorkers("WHERE stopped_at = 0 ORDER BY started_at, id", [](DbStatement&) {});
}

absl::StatusOr<std::vector<WorkerRecord>> SqlStateStore::ListRunWorkers(const std::string& run_id) {
  absl::MutexLock lock(&mu_);
  return QueryWorkers(
      "WHERE id IN (SELECT worker_id FROM attempts WHERE run_id = ? "
      "UNION SELECT lease_owner FROM tasks WHERE run_id = ? AND state = 'running') "
      "ORDER BY started_at, id",
      [&](DbStatement& q) { q.Bind(run_id).Bind(run_id); });
}

absl::Status SqlStateStore::SetWorkerText(const char* column, const std::string& worker_id,
                                          const std::string& value) {
  absl::MutexLock lock(&mu_);
  return InTransaction([&]() -> absl::Status {
    mu_.AssertHeld();
    ASSIGN_OR_RETURN(DbStatement * q,
                     Stmt(Cat("UPDATE workers SET ", column, " = ? WHERE id = ?")));
    return q->Bind(value).Bind(worker_id).Run();
  });
}

absl::Status SqlStateStore::ReportWorkerStats(const std::string& worker_id,
                                              const std::string& stats_json) {
  return SetWorkerText("stats_json", worker_id, stats_json);
}

absl::Status SqlStateStore::SetWorkerStatus(const std::string& worker_id,
                                            const std::string& status) {
  return SetWorkerText("status", worker_id, status);
}

absl::Status SqlStateStore::PublishWorkerShapes(const std::vector<WorkerShape>& shapes) {
  absl::MutexLock lock(&mu_);
  return InTransaction([&]() -> absl::Status {
    mu_.AssertHeld();
    ASSIGN_OR_RETURN(DbStatement * clear, Stmt("DELETE FROM worker_shapes"));
    RETURN_IF_ERROR(clear->Run());
    int64_t now = Now();
    for (const WorkerShape& s : shapes) {
      ASSIGN_OR_RETURN(DbStatement * q,
                       Stmt("INSERT INTO worker_shapes (queue, cpu, memory, labels_json, "
                            "max_workers, publisher, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)"));
      RETURN_IF_ERROR(q->Bind(s.queue)
                          .Bind(s.cpu)
                          .Bind(s.memory)
                          .Bind(s.labels_json)
                          .Bind(s.max_workers)
                          .Bind(s.publisher)
                          .Bind(now)
                          .Run());
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<WorkerShape>> SqlStateStore::ListWorkerShapes() {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(DbStatement * q,
                   Stmt("SELECT queue, cpu, memory, labels_json, max_workers, publisher, "
                        "updated_at FROM worker_shapes ORDER BY queue"));
  std::vector<WorkerShape> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    out.push_back({q->Text(0), q->Double(1), q->Int(2), q->Text(3), static_cast<int>(q->Int(4)),
                   q->Text(5), q->Int(6)});
  }
  q->Reset();
  return out;
}

}  // namespace barge
