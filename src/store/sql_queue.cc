// SqlStateStore: queue semantics (claim, complete, heartbeat, reap), resume and cancel.
#include <map>
#include <set>
#include <utility>

#include "common/status.h"
#include "common/strings.h"
#include "store/sql_rows.h"
#include "store/sql_store.h"

namespace barge {
using namespace sql_rows;

absl::StatusOr<std::vector<TaskRecord>> SqlStateStore::Claim(const ClaimRequest& request) {
  std::lock_guard lock(mu_);
  std::vector<TaskRecord> claimed;
  if (request.max_tasks <= 0) return claimed;
  RETURN_IF_ERROR(InTransaction([&]() -> absl::Status {
    claimed.clear();  // a retried transaction starts over
    int64_t now = Now();
    // Only tasks that fit on their own are candidates, so a task too large for this worker at
    // the head of the queue never hides smaller ones behind it. Every row returned is locked
    // (a write to its tuple, and one more row for other claimers to skip), so take only a few
    // more than can be claimed: enough for small tasks to fill the room a larger one leaves.
    std::string labels_filter;
    if (request.accepts) {
      std::vector<std::string> marks(request.accepts->size(), "?");
      labels_filter = Cat(" AND required_labels IN (", Join(marks, ", "), ")");
    }
    std::string sql =
        Cat("SELECT ", kTaskColumns,
            " FROM tasks WHERE state = 'pending' AND not_before <= ? AND cpu <= ? AND memory <= ?",
            request.run_id ? " AND run_id = ?" : "", request.queue ? " AND queue = ?" : "",
            labels_filter, " ORDER BY run_id, position, idx LIMIT ?", db_->dialect().skip_locked);
    ASSIGN_OR_RETURN(DbStatement * q, Stmt(sql));
    q->Bind(now).Bind(request.free_cpu + 1e-9).Bind(std::max<int64_t>(request.free_memory, 0));
    if (request.run_id) q->Bind(*request.run_id);
    if (request.queue) q->Bind(*request.queue);
    if (request.accepts) {
      for (const std::string& a : *request.accepts) q->Bind(a);
    }
    q->Bind(static_cast<int64_t>(request.max_tasks) + 4);
    double cpu = request.free_cpu;
    int64_t memory = request.free_memory;
    for (;;) {
      ASSIGN_OR_RETURN(bool row, q->Step());
      if (!row || static_cast<int>(claimed.size()) >= request.max_tasks) break;
      TaskRecord t = ReadTask(*q);
      if (t.cpu > cpu + 1e-9 || (t.memory > 0 && t.memory > memory)) continue;
      cpu -= t.cpu;
      memory -= t.memory;
      claimed.push_back(std::move(t));
    }
    q->Reset();
    if (claimed.empty()) return absl::OkStatus();
    // Set-based: one UPDATE per (run, step) among the claimed tasks (usually one) and one
    // INSERT for all their attempts, whatever the batch size.
    std::map<std::pair<std::string, std::string>, std::vector<int64_t>> groups;
    for (const TaskRecord& t : claimed) groups[{t.key.run_id, t.key.step}].push_back(t.key.index);
    for (const auto& [group, indexes] : groups) {
      std::vector<std::string> marks(indexes.size(), "CAST(? AS BIGINT)");
      ASSIGN_OR_RETURN(
          DbStatement * up,
          Stmt(Cat("UPDATE tasks SET state = 'running', attempt = attempt + 1, lease_owner = ?, "
                   "lease_expires_at = ?, started_at = ?, finished_at = 0 "
                   // No state test: these rows were selected in this transaction under its
                   // locks. (With one, SQLite may scan the partial index of pending tasks.)
                   "WHERE run_id = ? AND step = ? AND idx IN (",
                   Join(marks, ", "), ")")));
      up->Bind(request.worker_id).Bind(now + request.lease_ms).Bind(now);
      up->Bind(group.first).Bind(group.second);
      for (int64_t i : indexes) up->Bind(i);
      RETURN_IF_ERROR(up->Run());
    }
    std::vector<std::string> rows(
        claimed.size(),
        "(?, ?, CAST(? AS BIGINT), CAST(? AS INTEGER), ?, 'running', CAST(? AS BIGINT))");
    ASSIGN_OR_RETURN(DbStatement * att,
                     Stmt(Cat("INSERT INTO attempts (run_id, step, idx, attempt, worker_id, "
                              "state, started_at) VALUES ",
                              Join(rows, ", "))));
    for (TaskRecord& t : claimed) {
      t.state = state::kRunning;
      t.attempt += 1;
      t.lease_owner = request.worker_id;
      t.lease_expires_at = now + request.lease_ms;
      t.started_at = now;
      att->Bind(t.key.run_id)
          .Bind(t.key.step)
          .Bind(t.key.index)
          .Bind(t.attempt)
          .Bind(request.worker_id)
          .Bind(now);
    }
    RETURN_IF_ERROR(att->Run());
    return absl::OkStatus();
  }));
  return claimed;
}

absl::StatusOr<std::vector<bool>> SqlStateStore::Complete(const std::vector<Completion>& batch) {
  std::lock_guard lock(mu_);
  std::vector<bool> accepted;
  if (batch.empty()) return accepted;
  RETURN_IF_ERROR(InTransaction([&]() -> absl::Status {
    accepted.assign(batch.size(), false);
    int64_t now = Now();
    // Set-based: one UPDATE takes every completion whose attempt still holds its lease (the
    // fencing check) and says which; one more records those attempts. Only the rare cases
    // (fenced attempts, failure events) are written row by row.
    std::vector<std::string> task_rows(
        batch.size(),
        "(?, ?, CAST(? AS BIGINT), CAST(? AS INTEGER), ?, ?, CAST(? AS INTEGER), "
        "CAST(? AS INTEGER), ?, CAST(? AS INTEGER), ?, CAST(? AS BIGINT))");
    ASSIGN_OR_RETURN(
        DbStatement * up,
        Stmt(Cat("UPDATE tasks SET state = v.column6, "
                 "app_failures = app_failures + v.column7, "
                 "infra_failures = infra_failures + v.column8, "
                 "committed_attempt = CASE WHEN v.column6 = 'succeeded' THEN tasks.attempt "
                 "ELSE committed_attempt END, "
                 "outputs_json = CASE WHEN v.column6 = 'succeeded' THEN v.column9 "
                 "ELSE outputs_json END, "
                 "exit_code = v.column10, error = v.column11, lease_owner = '', "
                 "lease_expires_at = 0, not_before = v.column12, finished_at = CAST(? AS BIGINT) "
                 "FROM (VALUES ",
                 Join(task_rows, ", "),
                 ") AS v WHERE tasks.run_id = v.column1 AND tasks.step = v.column2 "
                 "AND tasks.idx = v.column3 AND tasks.attempt = v.column4 "
                 "AND tasks.state = 'running' AND tasks.lease_owner = v.column5 "
                 "RETURNING tasks.run_id, tasks.step, tasks.idx")));
    up->Bind(now);
    for (const Completion& c : batch) {
      up->Bind(c.key.run_id)
          .Bind(c.key.step)
          .Bind(c.key.index)
          .Bind(c.attempt)
          .Bind(c.worker_id)
          .Bind(c.task_state)
          .Bind(c.charge_retry ? 1 : 0)
          .Bind(c.infra_failure ? 1 : 0)
          .Bind(c.outputs_json)
          .Bind(c.exit_code)
          .Bind(c.error)
          .Bind(c.not_before);
    }
    std::set<TaskKey> taken;
    for (;;) {
      ASSIGN_OR_RETURN(bool row, up->Step());
      if (!row) break;
      taken.insert({up->Text(0), up->Text(1), up->Int(2)});
    }
    up->Reset();
    std::vector<const Completion*> recorded;
    for (size_t i = 0; i < batch.size(); ++i) {
      accepted[i] = taken.contains(batch[i].key);
      if (accepted[i]) recorded.push_back(&batch[i]);
    }
    if (!recorded.empty()) {
      std::vector<std::string> attempt_rows(
          recorded.size(),
          "(?, ?, CAST(? AS BIGINT), CAST(? AS INTEGER), ?, ?, CAST(? AS INTEGER), ?, "
          "CAST(? AS DOUBLE PRECISION), CAST(? AS BIGINT), ?, ?)");
      ASSIGN_OR_RETURN(
          DbStatement * att,
          Stmt(Cat("UPDATE attempts SET state = v.column5, failure_class = v.column6, "
                   "finished_at = CAST(? AS BIGINT), exit_code = v.column7, error = v.column8, "
                   "cpu_seconds = v.column9, max_rss_kb = v.column10, log_path = v.column11, "
                   "output_path = v.column12 FROM (VALUES ",
                   Join(attempt_rows, ", "),
                   ") AS v WHERE attempts.run_id = v.column1 AND attempts.step = v.column2 "
                   "AND attempts.idx = v.column3 AND attempts.attempt = v.column4")));
      att->Bind(now);
      for (const Completion* c : recorded) {
        att->Bind(c->key.run_id)
            .Bind(c->key.step)
            .Bind(c->key.index)
            .Bind(c->attempt)
            .Bind(c->attempt_state)
            .Bind(c->failure_class)
            .Bind(c->exit_code)
            .Bind(c->error)
            .Bind(c->cpu_seconds)
            .Bind(c->max_rss_kb)
            .Bind(c->log_path)
            .Bind(c->output_path);
      }
      RETURN_IF_ERROR(att->Run());
    }
    ASSIGN_OR_RETURN(DbStatement * fenced,
                     Stmt("UPDATE attempts SET state = 'fenced', finished_at = ?, exit_code = ?, "
                          "cpu_seconds = ?, max_rss_kb = ?, log_path = ?, "
                          "error = CASE WHEN error = '' THEN CAST(? AS TEXT) ELSE error || '; ' || "
                          "CAST(? AS TEXT) END "
                          "WHERE run_id = ? AND step = ? AND idx = ? AND attempt = ? "
                          "AND state IN ('running', 'lost')"));
    for (size_t i = 0; i < batch.size(); ++i) {
      const Completion& c = batch[i];
      if (accepted[i]) {
        if (c.task_state != state::kSucceeded) {
          std::string kind =
              c.task_state == state::kPending ? "task_retry" : Cat("task_", c.task_state);
          RETURN_IF_ERROR(InsertEvent(c.key.run_id, kind, c.key.step, c.key.index,
                                      Cat("attempt ", c.attempt, ": ", c.error)));
        }
        continue;
      }
      const char* why = "completion rejected: this attempt no longer holds the task's lease";
      fenced->Reset();
      RETURN_IF_ERROR(fenced->Bind(now)
                          .Bind(c.exit_code)
                          .Bind(c.cpu_seconds)
                          .Bind(c.max_rss_kb)
                          .Bind(c.log_path)
                          .Bind(why)
                          .Bind(why)
                          .Bind(c.key.run_id)
                          .Bind(c.key.step)
                          .Bind(c.key.index)
                          .Bind(c.attempt)
                          .Run());
      if (db_->Changes() > 0) {
        RETURN_IF_ERROR(InsertEvent(c.key.run_id, "attempt_fenced", c.key.step, c.key.index,
                                    Cat("attempt ", c.attempt, " by ", c.worker_id)));
      }
    }
    return absl::OkStatus();
  }));
  return accepted;
}

absl::StatusOr<std::vector<TaskKey>> SqlStateStore::Heartbeat(const std::string& worker_id,
                                                              int64_t lease_ms) {
  std::lock_guard lock(mu_);
  std::vector<TaskKey> held;
  RETURN_IF_ERROR(InTransaction([&]() -> absl::Status {
    int64_t now = Now();
    ASSIGN_OR_RETURN(DbStatement * up, Stmt("UPDATE tasks SET lease_expires_at = ? "
                                            "WHERE lease_owner = ? AND state = 'running'"));
    RETURN_IF_ERROR(up->Bind(now + lease_ms).Bind(worker_id).Run());
    ASSIGN_OR_RETURN(DbStatement * w, Stmt("UPDATE workers SET heartbeat_at = ? WHERE id = ?"));
    RETURN_IF_ERROR(w->Bind(now).Bind(worker_id).Run());
    ASSIGN_OR_RETURN(DbStatement * q, Stmt("SELECT run_id, step, idx FROM tasks "
                                           "WHERE lease_owner = ? AND state = 'running'"));
    q->Bind(worker_id);
    for (;;) {
      ASSIGN_OR_RETURN(bool row, q->Step());
      if (!row) break;
      held.push_back({q->Text(0), q->Text(1), q->Int(2)});
    }
    return absl::OkStatus();
  }));
  return held;
}

absl::StatusOr<bool> SqlStateStore::ReleaseLease(const TaskKey& key, int attempt,
                                                 int infra_failures, const std::string& reason,
                                                 int max_infra_failures) {
  int64_t now = Now();
  bool give_up = infra_failures + 1 > max_infra_failures;
  std::string error =
      give_up ? Cat(reason, "; gave up after ", infra_failures + 1, " infrastructure failures")
              : reason;
  ASSIGN_OR_RETURN(DbStatement * up,
                   Stmt("UPDATE tasks SET state = ?, infra_failures = infra_failures + 1, "
                        "lease_owner = '', lease_expires_at = 0, not_before = 0, error = ?, "
                        "finished_at = ? WHERE run_id = ? AND step = ? AND idx = ? "
                        "AND attempt = ? AND state = 'running'"));
  RETURN_IF_ERROR(up->Bind(give_up ? state::kFailed : state::kPending)
                      .Bind(error)
                      .Bind(now)
                      .Bind(key.run_id)
                      .Bind(key.step)
                      .Bind(key.index)
                      .Bind(attempt)
                      .Run());
  if (db_->Changes() == 0) return false;
  ASSIGN_OR_RETURN(DbStatement * att,
                   Stmt("UPDATE attempts SET state = 'lost', failure_class = 'infrastructure', "
                        "error = ?, finished_at = ? "
                        "WHERE run_id = ? AND step = ? AND idx = ? AND attempt = ?"));
  RETURN_IF_ERROR(att->Bind(reason)
                      .Bind(now)
                      .Bind(key.run_id)
                      .Bind(key.step)
                      .Bind(key.index)
                      .Bind(attempt)
                      .Run());
  RETURN_IF_ERROR(InsertEvent(key.run_id, "task_lost", key.step, key.index,
                              Cat("attempt ", attempt, ": ", error)));
  return true;
}

absl::StatusOr<int64_t> SqlStateStore::ReleaseLeases(
    const std::string& where, const std::function<void(DbStatement&)>& bind,
    const std::function<std::string(const std::string& owner)>& reason, int max_infra_failures) {
  struct Lease {
    TaskKey key;
    int attempt;
    int infra_failures;
    std::string owner;
  };
  ASSIGN_OR_RETURN(DbStatement * q,
                   Stmt(Cat("SELECT run_id, step, idx, attempt, infra_failures, lease_owner "
                            "FROM tasks WHERE state = 'running' AND ",
                            where)));
  bind(*q);
  std::vector<Lease> leases;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    leases.push_back({{q->Text(0), q->Text(1), q->Int(2)},
                      static_cast<int>(q->Int(3)),
                      static_cast<int>(q->Int(4)),
                      q->Text(5)});
  }
  q->Reset();
  int64_t released = 0;
  for (const Lease& l : leases) {
    ASSIGN_OR_RETURN(bool ok, ReleaseLease(l.key, l.attempt, l.infra_failures, reason(l.owner),
                                           max_infra_failures));
    released += ok ? 1 : 0;
  }
  return released;
}

absl::StatusOr<int64_t> SqlStateStore::ReapExpired(int max_infra_failures) {
  std::lock_guard lock(mu_);
  int64_t reaped = 0;
  RETURN_IF_ERROR(InTransaction([&]() -> absl::Status {
    ASSIGN_OR_RETURN(reaped, ReleaseLeases(
                                 "lease_expires_at < ?", [&](DbStatement& q) { q.Bind(Now()); },
                                 [](const std::string& owner) {
                                   return Cat("lease expired (worker ", owner, " lost)");
                                 },
                                 max_infra_failures));
    return absl::OkStatus();
  }));
  return reaped;
}

absl::StatusOr<int64_t> SqlStateStore::ReleaseWorker(const std::string& worker_id,
                                                     const std::string& reason,
                                                     int max_infra_failures) {
  std::lock_guard lock(mu_);
  int64_t released = 0;
  RETURN_IF_ERROR(InTransaction([&]() -> absl::Status {
    ASSIGN_OR_RETURN(released, ReleaseLeases(
                                   "lease_owner = ?", [&](DbStatement& q) { q.Bind(worker_id); },
                                   [&](const std::string&) { return reason; }, max_infra_failures));
    ASSIGN_OR_RETURN(DbStatement * stop,
                     Stmt("UPDATE workers SET stopped_at = ? WHERE id = ? AND stopped_at = 0"));
    return stop->Bind(Now()).Bind(worker_id).Run();
  }));
  return released;
}

absl::StatusOr<int64_t> SqlStateStore::RequeueTasks(const std::string& run_id,
                                                    const std::vector<std::string>& states) {
  std::lock_guard lock(mu_);
  int64_t requeued = 0;
  RETURN_IF_ERROR(InTransaction([&]() -> absl::Status {
    std::vector<std::string> quoted;
    for (const std::string& s : states) {
      if (s != state::kFailed && s != state::kCancelled) {
        return absl::InvalidArgumentError(Cat("cannot re-queue tasks in state ", s));
      }
      quoted.push_back(Cat("'", s, "'"));
    }
    std::string in = Join(quoted, ", ");
    ASSIGN_OR_RETURN(DbStatement * up,
                     Stmt(Cat("UPDATE tasks SET state = 'pending', app_failures = 0, "
                              "infra_failures = 0, not_before = 0, lease_owner = '', "
                              "error = '' WHERE run_id = ? AND state IN (",
                              in, ")")));
    RETURN_IF_ERROR(up->Bind(run_id).Run());
    requeued = db_->Changes();
    // Reopen finished steps: those with tasks to run again, and those that never started.
    ASSIGN_OR_RETURN(
        DbStatement * steps,
        Stmt("UPDATE steps SET finished_at = 0, state = CASE WHEN started_at > 0 THEN 'running' "
             "ELSE 'pending' END WHERE run_id = ? AND state IN ('failed', 'cancelled')"));
    RETURN_IF_ERROR(steps->Bind(run_id).Run());
    // Checked in the same transaction as the re-queue, so a gc that marked the run first wins
    // and a gc that comes second finds it running.
    ASSIGN_OR_RETURN(DbStatement * run,
                     Stmt("UPDATE runs SET state = 'running', error = '', finished_at = 0 "
                          "WHERE id = ? AND state <> 'deleting'"));
    RETURN_IF_ERROR(run->Bind(run_id).Run());
    if (db_->Changes() == 0) {
      return absl::FailedPreconditionError(
          Cat("run ", run_id, " is being deleted by barge gc (or does not exist)"));
    }
    return InsertEvent(run_id, "run_requeued", "", -1,
                       Cat(requeued, " tasks (", in, ") re-queued"));
  }));
  return requeued;
}

absl::StatusOr<bool> SqlStateStore::CancelRun(const std::string& run_id,
                                              const std::string& reason) {
  std::lock_guard lock(mu_);
  bool cancelled = false;
  RETURN_IF_ERROR(InTransaction([&]() -> absl::Status {
    int64_t now = Now();
    ASSIGN_OR_RETURN(DbStatement * run,
                     Stmt("UPDATE runs SET state = 'cancelled', error = ?, finished_at = ? "
                          "WHERE id = ? AND state = 'running'"));
    RETURN_IF_ERROR(run->Bind(reason).Bind(now).Bind(run_id).Run());
    if (db_->Changes() == 0) return absl::OkStatus();
    cancelled = true;
    ASSIGN_OR_RETURN(DbStatement * att,
                     Stmt("UPDATE attempts SET state = 'cancelled', error = ?, finished_at = ? "
                          "WHERE run_id = ? AND state = 'running'"));
    RETURN_IF_ERROR(att->Bind(reason).Bind(now).Bind(run_id).Run());
    ASSIGN_OR_RETURN(DbStatement * tasks,
                     Stmt("UPDATE tasks SET state = 'cancelled', lease_owner = '', "
                          "lease_expires_at = 0, error = ?, finished_at = ? "
                          "WHERE run_id = ? AND state IN ('pending', 'running')"));
    RETURN_IF_ERROR(tasks->Bind(reason).Bind(now).Bind(run_id).Run());
    ASSIGN_OR_RETURN(DbStatement * steps,
                     Stmt("UPDATE steps SET state = 'cancelled', finished_at = ? "
                          "WHERE run_id = ? AND state IN ('pending', 'running')"));
    RETURN_IF_ERROR(steps->Bind(now).Bind(run_id).Run());
    return InsertEvent(run_id, "run_cancelled", "", -1, reason);
  }));
  return cancelled;
}

}  // namespace barge
