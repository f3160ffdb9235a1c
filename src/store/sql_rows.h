// Row mappings shared by the SQL store's source files (SQLite and PostgreSQL alike). Internal to
// src/store.
#pragma once

#include "store/db.h"
#include "store/records.h"

namespace barge::sql_rows {

inline constexpr char kTaskColumns[] =
    "run_id, step, idx, position, state, item_json, inputs_json, cpu, memory, attempt, "
    "app_failures, infra_failures, committed_attempt, exit_code, error, outputs_json, "
    "lease_owner, lease_expires_at, not_before, started_at, finished_at, queue, required_labels";

inline TaskRecord ReadTask(const DbStatement& s) {
  TaskRecord t;
  t.key = {s.Text(0), s.Text(1), s.Int(2)};
  t.position = static_cast<int>(s.Int(3));
  t.state = s.Text(4);
  t.item_json = s.Text(5);
  t.inputs_json = s.Text(6);
  t.cpu = s.Double(7);
  t.memory = s.Int(8);
  t.attempt = static_cast<int>(s.Int(9));
  t.app_failures = static_cast<int>(s.Int(10));
  t.infra_failures = static_cast<int>(s.Int(11));
  t.committed_attempt = static_cast<int>(s.Int(12));
  t.exit_code = static_cast<int>(s.Int(13));
  t.error = s.Text(14);
  t.outputs_json = s.Text(15);
  t.lease_owner = s.Text(16);
  t.lease_expires_at = s.Int(17);
  t.not_before = s.Int(18);
  t.started_at = s.Int(19);
  t.finished_at = s.Int(20);
  t.queue = s.Text(21);
  t.required_labels = s.Text(22);
  return t;
}

inline constexpr char kRunColumns[] =
    "id, pipeline, state, spec_path, spec_source, params_json, root, error, created_at, "
    "finished_at, bundle, uploads_json";

inline RunRecord ReadRun(const DbStatement& s) {
  RunRecord r;
  r.id = s.Text(0);
  r.pipeline = s.Text(1);
  r.state = s.Text(2);
  r.spec_path = s.Text(3);
  r.spec_source = s.Text(4);
  r.params_json = s.Text(5);
  r.root = s.Text(6);
  r.error = s.Text(7);
  r.created_at = s.Int(8);
  r.finished_at = s.Int(9);
  r.bundle = s.Text(10);
  r.uploads_json = s.Text(11);
  return r;
}

}  // namespace barge::sql_rows
