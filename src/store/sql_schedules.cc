// SqlStateStore: schedules and their fires, and the aggregate queries the server reads for the
// autoscaler and metrics.
#include "common/status.h"
#include "common/strings.h"
#include "store/sql_store.h"

namespace barge {

absl::StatusOr<std::vector<TaskLoad>> SqlStateStore::LoadByQueue() {
  absl::MutexLock lock(&mu_);
  int64_t now = Now();
  ASSIGN_OR_RETURN(
      DbStatement * q,
      Stmt("SELECT queue, CASE WHEN state = 'running' THEN 'running' "
           "WHEN not_before <= ? THEN 'ready' ELSE 'waiting' END AS load_state, cpu, memory, "
           "COUNT(*) FROM tasks WHERE state IN ('pending', 'running') "
           "GROUP BY queue, load_state, cpu, memory ORDER BY queue, load_state, cpu, memory"));
  q->Bind(now);
  std::vector<TaskLoad> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    out.push_back({q->Text(0), q->Text(1), q->Double(2), q->Int(3), q->Int(4)});
  }
  return out;
}

absl::StatusOr<std::vector<PendingGroup>> SqlStateStore::PendingByStep() {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(DbStatement * q,
                   Stmt("SELECT run_id, step, queue, cpu, memory, required_labels, COUNT(*) "
                        "FROM tasks WHERE state = 'pending' "
                        "GROUP BY run_id, step, queue, cpu, memory, required_labels "
                        "ORDER BY run_id, step"));
  std::vector<PendingGroup> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    out.push_back(
        {q->Text(0), q->Text(1), q->Text(2), q->Double(3), q->Int(4), q->Text(5), q->Int(6)});
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> SqlStateStore::ListBusyWorkers() {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(DbStatement * q, Stmt("SELECT DISTINCT lease_owner FROM tasks "
                                         "WHERE state = 'running' ORDER BY lease_owner"));
  std::vector<std::string> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    out.push_back(q->Text(0));
  }
  return out;
}

absl::StatusOr<std::vector<FinishedAttempt>> SqlStateStore::AttemptsFinished(int64_t from_ms,
                                                                             int64_t to_ms) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(
      DbStatement * q,
      Stmt("SELECT t.queue, a.state, a.finished_at - a.started_at, a.finished_at FROM attempts a "
           "JOIN tasks t ON t.run_id = a.run_id AND t.step = a.step AND t.idx = a.idx "
           "WHERE a.finished_at > ? AND a.finished_at <= ? ORDER BY a.finished_at"));
  q->Bind(from_ms).Bind(to_ms);
  std::vector<FinishedAttempt> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    out.push_back({q->Text(0), q->Text(1), q->Int(2), q->Int(3)});
  }
  return out;
}

absl::Status SqlStateStore::PutSchedule(const ScheduleRecord& r) {
  absl::MutexLock lock(&mu_);
  return InTransaction([&]() -> absl::Status {
    mu_.AssertHeld();
    int64_t now = Now();
    ASSIGN_OR_RETURN(
        DbStatement * q,
        Stmt("INSERT INTO schedules (name, cron, time_zone, catchup, overlap, spec_path, "
             "spec_source, params_json, root, enabled, last_slot, created_at, updated_at) "
             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
             "cron = excluded.cron, time_zone = excluded.time_zone, catchup = excluded.catchup, "
             "overlap = excluded.overlap, spec_path = excluded.spec_path, "
             "spec_source = excluded.spec_source, params_json = excluded.params_json, "
             "root = excluded.root, enabled = excluded.enabled, updated_at = excluded.updated_at"));
    return q->Bind(r.name)
        .Bind(r.cron)
        .Bind(r.time_zone)
        .Bind(r.catchup)
        .Bind(r.overlap)
        .Bind(r.spec_path)
        .Bind(r.spec_source)
        .Bind(r.params_json)
        .Bind(r.root)
        .Bind(int64_t{r.enabled ? 1 : 0})
        .Bind(r.last_slot > 0 ? r.last_slot : now)
        .Bind(now)
        .Bind(now)
        .Run();
  });
}

absl::StatusOr<std::vector<ScheduleRecord>> SqlStateStore::QuerySchedules(const std::string& where,
                                                                          const std::string& name) {
  ASSIGN_OR_RETURN(
      DbStatement * q,
      Stmt(Cat("SELECT name, cron, time_zone, catchup, overlap, spec_path, spec_source, "
               "params_json, root, enabled, last_slot, created_at, updated_at FROM schedules ",
               where, " ORDER BY name")));
  if (!name.empty()) q->Bind(name);
  std::vector<ScheduleRecord> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    ScheduleRecord r;
    r.name = q->Text(0);
    r.cron = q->Text(1);
    r.time_zone = q->Text(2);
    r.catchup = q->Text(3);
    r.overlap = q->Text(4);
    r.spec_path = q->Text(5);
    r.spec_source = q->Text(6);
    r.params_json = q->Text(7);
    r.root = q->Text(8);
    r.enabled = q->Int(9) != 0;
    r.last_slot = q->Int(10);
    r.created_at = q->Int(11);
    r.updated_at = q->Int(12);
    out.push_back(std::move(r));
  }
  return out;
}

absl::StatusOr<ScheduleRecord> SqlStateStore::GetSchedule(const std::string& name) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(std::vector<ScheduleRecord> found, QuerySchedules("WHERE name = ?", name));
  if (found.empty()) return absl::NotFoundError(Cat("no schedule \"", name, "\""));
  return found.front();
}

absl::StatusOr<std::vector<ScheduleRecord>> SqlStateStore::ListSchedules() {
  absl::MutexLock lock(&mu_);
  return QuerySchedules("", "");
}

absl::StatusOr<bool> SqlStateStore::DeleteSchedule(const std::string& name) {
  absl::MutexLock lock(&mu_);
  bool deleted = false;
  RETURN_IF_ERROR(InTransaction([&]() -> absl::Status {
    mu_.AssertHeld();
    ASSIGN_OR_RETURN(DbStatement * q, Stmt("DELETE FROM schedules WHERE name = ?"));
    RETURN_IF_ERROR(q->Bind(name).Run());
    deleted = db_->Changes() > 0;
    return absl::OkStatus();
  }));
  return deleted;
}

absl::StatusOr<bool> SqlStateStore::SetScheduleEnabled(const std::string& name, bool enabled) {
  absl::MutexLock lock(&mu_);
  bool changed = false;
  RETURN_IF_ERROR(InTransaction([&]() -> absl::Status {
    mu_.AssertHeld();
    ASSIGN_OR_RETURN(DbStatement * q,
                     Stmt("UPDATE schedules SET enabled = ?, updated_at = ? WHERE name = ?"));
    RETURN_IF_ERROR(q->Bind(int64_t{enabled ? 1 : 0}).Bind(Now()).Bind(name).Run());
    changed = db_->Changes() > 0;
    return absl::OkStatus();
  }));
  return changed;
}

absl::StatusOr<bool> SqlStateStore::RecordFire(const ScheduleFire& fire, int64_t from_last_slot) {
  absl::MutexLock lock(&mu_);
  bool moved = false;
  RETURN_IF_ERROR(InTransaction([&]() -> absl::Status {
    mu_.AssertHeld();
    ASSIGN_OR_RETURN(DbStatement * move,
                     Stmt("UPDATE schedules SET last_slot = ? WHERE name = ? AND last_slot = ?"));
    RETURN_IF_ERROR(move->Bind(fire.slot).Bind(fire.schedule).Bind(from_last_slot).Run());
    moved = db_->Changes() > 0;
    if (!moved) return absl::OkStatus();
    ASSIGN_OR_RETURN(DbStatement * ins,
                     Stmt("INSERT INTO schedule_fires (schedule, slot, outcome, run_id, at) "
                          "VALUES (?, ?, ?, ?, ?) ON CONFLICT (schedule, slot) DO NOTHING"));
    return ins->Bind(fire.schedule)
        .Bind(fire.slot)
        .Bind(fire.outcome)
        .Bind(fire.run_id)
        .Bind(fire.at > 0 ? fire.at : Now())
        .Run();
  }));
  return moved;
}

absl::StatusOr<std::vector<ScheduleFire>> SqlStateStore::ListFires(const std::string& schedule,
                                                                   int64_t limit) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(DbStatement * q,
                   Stmt("SELECT schedule, slot, outcome, run_id, at FROM schedule_fires "
                        "WHERE schedule = ? ORDER BY slot DESC LIMIT ?"));
  q->Bind(schedule).Bind(limit < 0 ? INT64_MAX : limit);
  std::vector<ScheduleFire> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    out.push_back({q->Text(0), q->Int(1), q->Text(2), q->Text(3), q->Int(4)});
  }
  return out;
}

}  // namespace barge
