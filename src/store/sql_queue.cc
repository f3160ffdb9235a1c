// SqlStateStore: queue semantics (claim, complete, heartbeat, reap), resume and cancel.
#include <algorithm>
#include <map>
#include <tuple>
#include <utility>

#include "common/status.h"
#include "common/strings.h"
#include "store/sql_rows.h"
#include "store/sql_store.h"
#include "store/task_queue.h"

namespace barge {
using namespace sql_rows;

namespace {

// The WHERE clause that picks a claim's candidates: pending, due, each fitting on its own, and
// in the request's run, queue and labels. Binds in order: now, cpu, memory, [run], [queue],
// [labels...]. `now` is SQL for the clock.
// `now` is an SQL expression of the time; BindCandidateFilter binds the rest, and `now_value`
// for its second use where `now` is a placeholder.
std::string CandidateFilter(const ClaimRequest& request, const std::string& now) {
  std::string labels;
  if (request.accepts) {
    labels = Cat(" AND required_labels IN (", Repeated("?", request.accepts->size(), ", "), ")");
  }
  // A task whose last attempt failed on this worker for an infrastructure reason is left to the
  // others for kAvoidWorkerMs; after that this worker may take it again (it may be the only one).
  // Not for a run's own pool (a claim of one run): it is the one that runs it.
  std::string avoid = request.run_id ? ""
                                     : Cat(" AND (avoid_worker <> ? OR not_before <= CAST(", now,
                                           " AS BIGINT) - ", kAvoidWorkerMs, ")");
  return Cat("state = 'pending' AND not_before <= ", now, " AND cpu <= ? AND memory <= ?",
             request.run_id ? " AND run_id = ?" : "", request.queue ? " AND queue = ?" : "", labels,
             avoid);
}

void BindCandidateFilter(DbStatement& q, const ClaimRequest& request,
                         std::optional<int64_t> now_value) {
  q.Bind(request.free_cpu + 1e-9).Bind(std::max<int64_t>(request.free_memory, 0));
  if (request.run_id) q.Bind(*request.run_id);
  if (request.queue) q.Bind(*request.queue);
  if (request.accepts) {
    for (const std::string& a : *request.accepts) q.Bind(a);
  }
  if (request.run_id) return;
  q.Bind(request.worker_id);
  if (now_value) q.Bind(*now_value);
}

}  // namespace

bool SqlStateStore::ClockInSql() const {
  return clock_ == nullptr && *db_->dialect().now_ms != '\0';
}

std::string SqlStateStore::ClockSql() const {
  return ClockInSql() ? Cat("(", db_->dialect().now_ms, ")") : "CAST(? AS BIGINT)";
}

void SqlStateStore::BindClock(DbStatement& q) {
  if (!ClockInSql()) q.Bind(Now());
}

absl::StatusOr<std::vector<TaskRecord>> SqlStateStore::Claim(const ClaimRequest& request) {
  absl::MutexLock lock(&mu_);
  std::vector<TaskRecord> claimed;
  if (request.max_tasks <= 0) return claimed;
  ClaimRequest rest = request;
  if (db_->dialect().data_modifying_ctes) {
    int64_t candidates = 0;
    RETURN_IF_ERROR(Retrying([&]() -> absl::Status {
      mu_.AssertHeld();
      claimed.clear();
      ASSIGN_OR_RETURN(candidates, ClaimInOneStatement(request, claimed));
      return absl::OkStatus();
    }));
    if (static_cast<int64_t>(claimed.size()) >= candidates) return claimed;
    // A task further on did not fit in what the ones before it left: fill up task by task.
    for (const TaskRecord& t : claimed) {
      rest.free_cpu -= t.cpu;
      rest.free_memory -= t.memory;
    }
    rest.max_tasks -= static_cast<int>(claimed.size());
    if (rest.max_tasks <= 0 || rest.free_cpu < 1e-9) return claimed;
  }
  std::vector<TaskRecord> more;
  RETURN_IF_ERROR(InTransaction([&]() -> absl::Status {
    mu_.AssertHeld();
    more.clear();  // a retried transaction starts over
    ASSIGN_OR_RETURN(more, ClaimTaskByTask(rest));
    return absl::OkStatus();
  }));
  for (TaskRecord& t : more) claimed.push_back(std::move(t));
  return claimed;
}

absl::StatusOr<int64_t> SqlStateStore::ClaimInOneStatement(const ClaimRequest& request,
                                                           std::vector<TaskRecord>& claimed) {
  // One statement, so one round trip and no explicit transaction: lock the first max_tasks
  // candidates, keep the longest prefix whose running sums of cpu and memory fit, and lease
  // those. Also returns how many candidates there were, so the caller knows whether one was
  // left out for lack of room.
  ASSIGN_OR_RETURN(
      DbStatement * q,
      Stmt(Cat("WITH n AS (SELECT ", ClockSql(),
               " AS ms), "
               "c AS (SELECT run_id AS c_run, step AS c_step, idx AS c_idx, position AS c_pos, "
               "cpu AS c_cpu, CASE WHEN memory > 0 THEN memory ELSE 0 END AS c_mem FROM tasks "
               "WHERE ",
               CandidateFilter(request, "(SELECT ms FROM n)"),
               " ORDER BY run_id, position, idx LIMIT ? FOR UPDATE OF tasks SKIP LOCKED), "
               "f AS (SELECT c_run, c_step, c_idx, SUM(c_cpu) OVER w AS f_cpu, "
               "SUM(c_mem) OVER w AS f_mem, COUNT(*) OVER () AS f_candidates FROM c "
               "WINDOW w AS (ORDER BY c_run, c_pos, c_idx ROWS UNBOUNDED PRECEDING)) "
               "UPDATE tasks SET state = 'running', attempt = attempt + 1, lease_owner = ?, "
               "lease_expires_at = n.ms + ?, started_at = n.ms, finished_at = 0 FROM f, n "
               "WHERE tasks.run_id = f.c_run AND tasks.step = f.c_step AND tasks.idx = f.c_idx "
               "AND f.f_cpu <= ? AND f.f_mem <= ? RETURNING ",
               kTaskColumns, ", f.f_candidates")));
  BindClock(*q);
  BindCandidateFilter(*q, request, std::nullopt);
  q->Bind(static_cast<int64_t>(request.max_tasks));
  q->Bind(request.worker_id).Bind(request.lease_ms);
  q->Bind(request.free_cpu + 1e-9).Bind(std::max<int64_t>(request.free_memory, 0));
  int64_t candidates = 0;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    claimed.push_back(ReadTask(*q));
    candidates = q->Int(23);
  }
  q->Reset();
  std::sort(claimed.begin(), claimed.end(), [](const TaskRecord& a, const TaskRecord& b) {
    return std::tie(a.key.run_id, a.position, a.key.index) <
           std::tie(b.key.run_id, b.position, b.key.index);
  });
  return candidates;
}

absl::StatusOr<std::vector<TaskRecord>> SqlStateStore::ClaimTaskByTask(
    const ClaimRequest& request) {
  std::vector<TaskRecord> claimed;
  int64_t now = Now();
  // Only tasks that fit on their own are candidates, so a task too large for this worker at
  // the head of the queue never hides smaller ones behind it. Every row returned is locked
  // (a write to its tuple, and one more row for other claimers to skip), so take only a few
  // more than can be claimed: enough for small tasks to fill the room a larger one leaves.
  ASSIGN_OR_RETURN(
      DbStatement * q,
      Stmt(Cat("SELECT ", kTaskColumns, " FROM tasks WHERE ", CandidateFilter(request, "?"),
               " ORDER BY run_id, position, idx LIMIT ?", db_->dialect().skip_locked)));
  q->Bind(now);
  BindCandidateFilter(*q, request, now);
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
  if (claimed.empty()) return claimed;
  // Set-based: one UPDATE per (run, step) among the claimed tasks (usually one), whatever the
  // batch size.
  std::map<std::pair<std::string, std::string>, std::vector<int64_t>> groups;
  for (const TaskRecord& t : claimed) groups[{t.key.run_id, t.key.step}].push_back(t.key.index);
  for (const auto& [group, indexes] : groups) {
    ASSIGN_OR_RETURN(
        DbStatement * up,
        Stmt(Cat("UPDATE tasks SET state = 'running', attempt = attempt + 1, lease_owner = ?, "
                 "lease_expires_at = ?, started_at = ?, finished_at = 0 "
                 // No state test: these rows were selected in this transaction under its
                 // locks. (With one, SQLite may scan the partial index of pending tasks.)
                 "WHERE run_id = ? AND step = ? AND idx IN (",
                 Repeated("CAST(? AS BIGINT)", indexes.size(), ", "), ")")));
    up->Bind(request.worker_id).Bind(now + request.lease_ms).Bind(now);
    up->Bind(group.first).Bind(group.second);
    for (int64_t i : indexes) up->Bind(i);
    RETURN_IF_ERROR(up->Run());
  }
  for (TaskRecord& t : claimed) {
    t.state = state::kRunning;
    t.attempt += 1;
    t.lease_owner = request.worker_id;
    t.lease_expires_at = now + request.lease_ms;
    t.started_at = now;
  }
  return claimed;
}

absl::StatusOr<std::vector<bool>> SqlStateStore::Complete(const std::vector<Completion>& batch) {
  absl::MutexLock lock(&mu_);
  std::vector<bool> accepted;
  if (batch.empty()) return accepted;
  bool all_succeeded = std::all_of(batch.begin(), batch.end(), [](const Completion& c) {
    return c.task_state == state::kSucceeded;
  });
  // Which completions were taken, in batch order.
  auto commit = [&]() -> absl::Status {
    mu_.AssertHeld();
    ASSIGN_OR_RETURN(CommittedCompletions taken, CommitCompletions(batch));
    accepted.assign(batch.size(), false);
    for (size_t i = 0; i < batch.size(); ++i) {
      accepted[i] = taken.started_at.contains({batch[i].key, batch[i].attempt});
    }
    return absl::OkStatus();
  };
  if (db_->dialect().data_modifying_ctes && all_succeeded) {
    // The usual batch: one statement commits every completion that still holds its lease and
    // records its attempt. Rejected ones (rare: zombies) are marked fenced afterwards; a crash in
    // between leaves such an attempt recorded as lost instead, and the task's outcome intact.
    RETURN_IF_ERROR(Retrying(commit));
    if (std::find(accepted.begin(), accepted.end(), false) == accepted.end()) return accepted;
    RETURN_IF_ERROR(InTransaction([&] {
      mu_.AssertHeld();
      return RecordCompletionEvents(batch, accepted);
    }));
    return accepted;
  }
  RETURN_IF_ERROR(InTransaction([&]() -> absl::Status {
    mu_.AssertHeld();
    RETURN_IF_ERROR(commit());
    return RecordCompletionEvents(batch, accepted);
  }));
  return accepted;
}

namespace {

// One completion's values as a row of `v` (kTakeCompletions and kAttemptValues name its columns).
constexpr char kCompletionRow[] =
    "(?, ?, CAST(? AS BIGINT), CAST(? AS INTEGER), ?, ?, CAST(? AS INTEGER), CAST(? AS INTEGER), "
    "?, CAST(? AS INTEGER), ?, CAST(? AS BIGINT), ?, ?, CAST(? AS DOUBLE PRECISION), "
    "CAST(? AS BIGINT), ?, ?)";

void BindCompletion(DbStatement& q, const Completion& c) {
  q.Bind(c.key.run_id)
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
      .Bind(c.not_before)
      .Bind(c.attempt_state)
      .Bind(c.failure_class)
      .Bind(c.cpu_seconds)
      .Bind(c.max_rss_kb)
      .Bind(c.log_path)
      .Bind(c.output_path);
}

// Takes every completion in `v` whose attempt still holds its task's lease (the fencing check),
// at time `n.ms`; returns the key, attempt number and start of each taken, and the time.
constexpr char kTakeCompletions[] =
    "UPDATE tasks SET state = v.column6, app_failures = app_failures + v.column7, "
    "infra_failures = infra_failures + v.column8, "
    "committed_attempt = CASE WHEN v.column6 = 'succeeded' THEN tasks.attempt "
    "ELSE committed_attempt END, "
    "outputs_json = CASE WHEN v.column6 = 'succeeded' THEN v.column9 ELSE outputs_json END, "
    "exit_code = v.column10, error = v.column11, lease_owner = '', lease_expires_at = 0, "
    "not_before = CASE WHEN v.column8 = 1 THEN n.ms ELSE v.column12 END, "
    "avoid_worker = CASE WHEN v.column8 = 1 THEN v.column5 ELSE '' END, "
    "finished_at = n.ms FROM v, n "
    "WHERE tasks.run_id = v.column1 AND tasks.step = v.column2 AND tasks.idx = v.column3 "
    "AND tasks.attempt = v.column4 AND tasks.state = 'running' "
    "AND tasks.lease_owner = v.column5 "
    "RETURNING tasks.run_id AS t_run, tasks.step AS t_step, tasks.idx AS t_idx, "
    "tasks.attempt AS t_attempt, tasks.started_at AS t_started, tasks.finished_at AS t_now";

}  // namespace

absl::StatusOr<SqlStateStore::CommittedCompletions> SqlStateStore::CommitCompletions(
    const std::vector<Completion>& batch) {
  std::string values = Cat("v AS (VALUES ", Repeated(kCompletionRow, batch.size(), ", "), ")");
  std::string clock = Cat("n AS (SELECT ", ClockSql(), " AS ms)");
  CommittedCompletions taken;
  auto read_taken = [&](DbStatement& q) -> absl::Status {
    for (;;) {
      ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      taken.started_at[{{q.Text(0), q.Text(1), q.Int(2)}, static_cast<int>(q.Int(3))}] = q.Int(4);
      taken.now = q.Int(5);
    }
    q.Reset();
    return absl::OkStatus();
  };
  constexpr char kAttemptColumns[] =
      "INSERT INTO attempts (run_id, step, idx, attempt, worker_id, state, failure_class, "
      "started_at, finished_at, exit_code, error, cpu_seconds, max_rss_kb, log_path, "
      "output_path) ";
  constexpr char kAttemptValues[] =
      "SELECT v.column1, v.column2, v.column3, v.column4, v.column5, v.column13, v.column14, "
      "t_started, t_now, v.column10, v.column11, v.column15, v.column16, v.column17, v.column18 "
      "FROM t JOIN v ON v.column1 = t_run AND v.column2 = t_step AND v.column3 = t_idx "
      "AND v.column4 = t_attempt";
  if (db_->dialect().data_modifying_ctes) {
    // One statement: take the completions, record their attempts, say which were taken.
    ASSIGN_OR_RETURN(
        DbStatement * q,
        Stmt(Cat("WITH ", clock, ", ", values, ", t AS (", kTakeCompletions, "), a AS (",
                 kAttemptColumns, kAttemptValues,
                 ") SELECT t_run, t_step, t_idx, t_attempt, t_started, t_now FROM t")));
    BindClock(*q);
    for (const Completion& c : batch) BindCompletion(*q, c);
    RETURN_IF_ERROR(read_taken(*q));
    return taken;
  }
  // SQLite: the same in two statements, inside the caller's transaction.
  ASSIGN_OR_RETURN(DbStatement * up,
                   Stmt(Cat("WITH ", clock, ", ", values, " ", kTakeCompletions)));
  BindClock(*up);
  for (const Completion& c : batch) BindCompletion(*up, c);
  RETURN_IF_ERROR(read_taken(*up));
  if (taken.started_at.empty()) return taken;
  std::vector<const Completion*> recorded;
  for (const Completion& c : batch) {
    if (taken.started_at.contains({c.key, c.attempt})) recorded.push_back(&c);
  }
  constexpr char kAttemptRow[] =
      "(?, ?, CAST(? AS BIGINT), CAST(? AS INTEGER), ?, ?, ?, "
      "CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS INTEGER), ?, "
      "CAST(? AS DOUBLE PRECISION), CAST(? AS BIGINT), ?, ?)";
  ASSIGN_OR_RETURN(DbStatement * att, Stmt(Cat(kAttemptColumns, "VALUES ",
                                               Repeated(kAttemptRow, recorded.size(), ", "))));
  for (const Completion* c : recorded) {
    att->Bind(c->key.run_id)
        .Bind(c->key.step)
        .Bind(c->key.index)
        .Bind(c->attempt)
        .Bind(c->worker_id)
        .Bind(c->attempt_state)
        .Bind(c->failure_class)
        .Bind(taken.started_at[{c->key, c->attempt}])
        .Bind(taken.now)
        .Bind(c->exit_code)
        .Bind(c->error)
        .Bind(c->cpu_seconds)
        .Bind(c->max_rss_kb)
        .Bind(c->log_path)
        .Bind(c->output_path);
  }
  RETURN_IF_ERROR(att->Run());
  return taken;
}

absl::Status SqlStateStore::RecordCompletionEvents(const std::vector<Completion>& batch,
                                                   const std::vector<bool>& accepted) {
  int64_t now = Now();
  ASSIGN_OR_RETURN(DbStatement * fenced,
                   Stmt(Cat("UPDATE attempts SET state = '", state::kFenced,
                            "', finished_at = ?, exit_code = ?, "
                            "cpu_seconds = ?, max_rss_kb = ?, log_path = ?, "
                            "error = CASE WHEN error = '' THEN CAST(? AS TEXT) ELSE error || '; ' "
                            "|| CAST(? AS TEXT) END "
                            "WHERE run_id = ? AND step = ? AND idx = ? AND attempt = ? "
                            "AND state = '",
                            state::kLost, "'")));
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
}

absl::StatusOr<std::vector<TaskKey>> SqlStateStore::Heartbeat(const std::string& worker_id,
                                                              int64_t lease_ms) {
  absl::MutexLock lock(&mu_);
  std::vector<TaskKey> held;
  RETURN_IF_ERROR(InTransaction([&]() -> absl::Status {
    mu_.AssertHeld();
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

absl::StatusOr<bool> SqlStateStore::ReleaseLease(const LeaseRow& lease, const std::string& reason,
                                                 int max_infra_failures,
                                                 const char* attempt_state) {
  int64_t now = Now();
  const TaskKey& key = lease.key;
  bool give_up = lease.infra_failures + 1 > max_infra_failures;
  std::string error = give_up ? Cat(reason, "; gave up after ", lease.infra_failures + 1,
                                    " infrastructure failures")
                              : reason;
  // The task row first: its lock decides a race with the holder's own completion.
  ASSIGN_OR_RETURN(DbStatement * up,
                   Stmt("UPDATE tasks SET state = ?, infra_failures = infra_failures + 1, "
                        "avoid_worker = lease_owner, lease_owner = '', lease_expires_at = 0, "
                        "not_before = 0, error = ?, "
                        "finished_at = ? WHERE run_id = ? AND step = ? AND idx = ? "
                        "AND attempt = ? AND state = 'running'"));
  RETURN_IF_ERROR(up->Bind(give_up ? state::kFailed : state::kPending)
                      .Bind(error)
                      .Bind(now)
                      .Bind(key.run_id)
                      .Bind(key.step)
                      .Bind(key.index)
                      .Bind(lease.attempt)
                      .Run());
  if (db_->Changes() == 0) return false;
  RETURN_IF_ERROR(InsertEndedAttempt(lease, attempt_state, failure::kInfrastructure, now, reason));
  RETURN_IF_ERROR(InsertEvent(key.run_id, "task_lost", key.step, key.index,
                              Cat("attempt ", lease.attempt, ": ", error)));
  return true;
}

absl::StatusOr<std::vector<SqlStateStore::LeaseRow>> SqlStateStore::ReadLeases(
    const std::string& where, const std::function<void(DbStatement&)>& bind, bool lock) {
  ASSIGN_OR_RETURN(
      DbStatement * q,
      Stmt(Cat("SELECT run_id, step, idx, attempt, infra_failures, lease_owner, started_at "
               "FROM tasks WHERE state = 'running' AND ",
               where, lock ? db_->dialect().for_update : "")));
  bind(*q);
  std::vector<LeaseRow> leases;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    leases.push_back({.key = {q->Text(0), q->Text(1), q->Int(2)},
                      .attempt = static_cast<int>(q->Int(3)),
                      .infra_failures = static_cast<int>(q->Int(4)),
                      .owner = q->Text(5),
                      .started_at = q->Int(6)});
  }
  q->Reset();
  return leases;
}

absl::StatusOr<int64_t> SqlStateStore::ReleaseLeases(
    const std::string& where, const std::function<void(DbStatement&)>& bind,
    const std::function<std::string(const std::string& owner)>& reason, int max_infra_failures,
    const char* attempt_state) {
  ASSIGN_OR_RETURN(std::vector<LeaseRow> leases, ReadLeases(where, bind, /*lock=*/false));
  int64_t released = 0;
  for (const LeaseRow& l : leases) {
    ASSIGN_OR_RETURN(bool ok, ReleaseLease(l, reason(l.owner), max_infra_failures, attempt_state));
    released += ok ? 1 : 0;
  }
  return released;
}

absl::Status SqlStateStore::InsertEndedAttempt(const LeaseRow& lease, const std::string& state,
                                               const std::string& failure_class, int64_t now,
                                               const std::string& error) {
  ASSIGN_OR_RETURN(DbStatement * att,
                   Stmt("INSERT INTO attempts (run_id, step, idx, attempt, worker_id, state, "
                        "failure_class, started_at, finished_at, error) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
  return att->Bind(lease.key.run_id)
      .Bind(lease.key.step)
      .Bind(lease.key.index)
      .Bind(lease.attempt)
      .Bind(lease.owner)
      .Bind(state)
      .Bind(failure_class)
      .Bind(lease.started_at)
      .Bind(now)
      .Bind(error)
      .Run();
}

absl::StatusOr<int64_t> SqlStateStore::ReapExpired(int max_infra_failures) {
  absl::MutexLock lock(&mu_);
  int64_t reaped = 0;
  RETURN_IF_ERROR(InTransaction([&]() -> absl::Status {
    mu_.AssertHeld();
    ASSIGN_OR_RETURN(reaped, ReleaseLeases(
                                 "lease_expires_at < ?",
                                 [&](DbStatement& q) {
                                   mu_.AssertHeld();
                                   q.Bind(Now());
                                 },
                                 [](const std::string& owner) {
                                   return Cat("lease expired (worker ", owner, " lost)");
                                 },
                                 max_infra_failures, state::kLost));
    return absl::OkStatus();
  }));
  return reaped;
}

absl::StatusOr<int64_t> SqlStateStore::ReleaseWorker(const std::string& worker_id,
                                                     const std::string& reason,
                                                     int max_infra_failures,
                                                     const char* attempt_state) {
  absl::MutexLock lock(&mu_);
  int64_t released = 0;
  RETURN_IF_ERROR(InTransaction([&]() -> absl::Status {
    mu_.AssertHeld();
    ASSIGN_OR_RETURN(released, ReleaseLeases(
                                   "lease_owner = ?", [&](DbStatement& q) { q.Bind(worker_id); },
                                   [&](const std::string&) { return reason; }, max_infra_failures,
                                   attempt_state));
    ASSIGN_OR_RETURN(DbStatement * stop,
                     Stmt("UPDATE workers SET stopped_at = ? WHERE id = ? AND stopped_at = 0"));
    return stop->Bind(Now()).Bind(worker_id).Run();
  }));
  return released;
}

absl::StatusOr<int64_t> SqlStateStore::RequeueTasks(const std::string& run_id,
                                                    const std::vector<std::string>& states) {
  absl::MutexLock lock(&mu_);
  int64_t requeued = 0;
  RETURN_IF_ERROR(InTransaction([&]() -> absl::Status {
    mu_.AssertHeld();
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
  absl::MutexLock lock(&mu_);
  bool cancelled = false;
  RETURN_IF_ERROR(InTransaction([&]() -> absl::Status {
    mu_.AssertHeld();
    int64_t now = Now();
    ASSIGN_OR_RETURN(DbStatement * run,
                     Stmt("UPDATE runs SET state = 'cancelled', error = ?, finished_at = ? "
                          "WHERE id = ? AND state = 'running'"));
    RETURN_IF_ERROR(run->Bind(reason).Bind(now).Bind(run_id).Run());
    if (db_->Changes() == 0) return absl::OkStatus();
    cancelled = true;
    // Locked first, so no completion of a running attempt slips in between its record and the
    // task's cancellation.
    ASSIGN_OR_RETURN(std::vector<LeaseRow> running,
                     ReadLeases(
                         "run_id = ?", [&](DbStatement& q) { q.Bind(run_id); }, /*lock=*/true));
    for (const LeaseRow& l : running) {
      RETURN_IF_ERROR(InsertEndedAttempt(l, state::kCancelled, "", now, reason));
    }
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
