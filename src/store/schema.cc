#include "store/schema.h"

namespace barge {

const std::vector<Migration>& Migrations() {
  static const std::vector<Migration> kMigrations = {
      {1,
       {
           R"(CREATE TABLE runs (
                id TEXT PRIMARY KEY,
                pipeline TEXT NOT NULL,
                state TEXT NOT NULL,
                spec_path TEXT NOT NULL,
                spec_source TEXT NOT NULL,
                params_json TEXT NOT NULL,
                root TEXT NOT NULL,
                error TEXT NOT NULL DEFAULT '',
                created_at BIGINT NOT NULL,
                finished_at BIGINT NOT NULL DEFAULT 0))",
           R"(CREATE TABLE steps (
                run_id TEXT NOT NULL,
                name TEXT NOT NULL,
                position INTEGER NOT NULL,
                state TEXT NOT NULL,
                inputs_json TEXT NOT NULL DEFAULT '[]',
                task_count BIGINT NOT NULL DEFAULT 0,
                started_at BIGINT NOT NULL DEFAULT 0,
                finished_at BIGINT NOT NULL DEFAULT 0,
                PRIMARY KEY (run_id, name)))",
           R"(CREATE TABLE tasks (
                run_id TEXT NOT NULL,
                step TEXT NOT NULL,
                idx BIGINT NOT NULL,
                position INTEGER NOT NULL,
                state TEXT NOT NULL,
                item_json TEXT NOT NULL,
                inputs_json TEXT NOT NULL,
                cpu DOUBLE PRECISION NOT NULL,
                memory BIGINT NOT NULL,
                attempt INTEGER NOT NULL DEFAULT 0,
                app_failures INTEGER NOT NULL DEFAULT 0,
                infra_failures INTEGER NOT NULL DEFAULT 0,
                committed_attempt INTEGER NOT NULL DEFAULT 0,
                exit_code INTEGER NOT NULL DEFAULT -1,
                error TEXT NOT NULL DEFAULT '',
                outputs_json TEXT NOT NULL DEFAULT '[]',
                lease_owner TEXT NOT NULL DEFAULT '',
                lease_expires_at BIGINT NOT NULL DEFAULT 0,
                not_before BIGINT NOT NULL DEFAULT 0,
                started_at BIGINT NOT NULL DEFAULT 0,
                finished_at BIGINT NOT NULL DEFAULT 0,
                PRIMARY KEY (run_id, step, idx)))",
           // The queue: pending tasks in claim order (oldest run, earliest step, lowest index).
           "CREATE INDEX tasks_queue ON tasks (run_id, position, idx) WHERE state = 'pending'",
           "CREATE INDEX tasks_by_state ON tasks (run_id, step, state)",
           "CREATE INDEX tasks_leases ON tasks (lease_owner) WHERE state = 'running'",
           "CREATE INDEX tasks_expiry ON tasks (lease_expires_at) WHERE state = 'running'",
           R"(CREATE TABLE attempts (
                run_id TEXT NOT NULL,
                step TEXT NOT NULL,
                idx BIGINT NOT NULL,
                attempt INTEGER NOT NULL,
                worker_id TEXT NOT NULL,
                state TEXT NOT NULL,
                failure_class TEXT NOT NULL DEFAULT '',
                started_at BIGINT NOT NULL,
                finished_at BIGINT NOT NULL DEFAULT 0,
                exit_code INTEGER NOT NULL DEFAULT -1,
                error TEXT NOT NULL DEFAULT '',
                cpu_seconds DOUBLE PRECISION NOT NULL DEFAULT 0,
                max_rss_kb BIGINT NOT NULL DEFAULT 0,
                log_path TEXT NOT NULL DEFAULT '',
                output_path TEXT NOT NULL DEFAULT '',
                PRIMARY KEY (run_id, step, idx, attempt)))",
           R"(CREATE TABLE workers (
                id TEXT PRIMARY KEY,
                host TEXT NOT NULL,
                pid BIGINT NOT NULL,
                pid_start TEXT NOT NULL,
                cpu DOUBLE PRECISION NOT NULL,
                memory BIGINT NOT NULL,
                labels_json TEXT NOT NULL DEFAULT '{}',
                started_at BIGINT NOT NULL,
                heartbeat_at BIGINT NOT NULL))",
           R"(CREATE TABLE events (
                id {serial_pk},
                run_id TEXT NOT NULL,
                at BIGINT NOT NULL,
                kind TEXT NOT NULL,
                step TEXT NOT NULL DEFAULT '',
                idx BIGINT NOT NULL DEFAULT -1,
                message TEXT NOT NULL DEFAULT ''))",
           "CREATE INDEX events_by_run ON events (run_id, id)",
       }},
      // Queues and labels: which workers may take a task.
      {2,
       {
           "ALTER TABLE tasks ADD COLUMN queue TEXT NOT NULL DEFAULT 'default'",
           "ALTER TABLE tasks ADD COLUMN required_labels TEXT NOT NULL DEFAULT ''",
           "ALTER TABLE workers ADD COLUMN queue TEXT NOT NULL DEFAULT 'default'",
           // A fleet worker's queue: one queue's pending tasks in claim order.
           "CREATE INDEX tasks_queue_by_name ON tasks (queue, run_id, position, idx) "
           "WHERE state = 'pending'",
       }},
      // Schedules, and finished attempts by time for metrics.
      {3,
       {
           R"(CREATE TABLE schedules (
                name TEXT PRIMARY KEY,
                cron TEXT NOT NULL,
                time_zone TEXT NOT NULL,
                catchup TEXT NOT NULL,
                overlap TEXT NOT NULL,
                spec_path TEXT NOT NULL,
                spec_source TEXT NOT NULL,
                params_json TEXT NOT NULL,
                root TEXT NOT NULL,
                enabled INTEGER NOT NULL,
                last_slot BIGINT NOT NULL,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL))",
           R"(CREATE TABLE schedule_fires (
                schedule TEXT NOT NULL,
                slot BIGINT NOT NULL,
                outcome TEXT NOT NULL,
                run_id TEXT NOT NULL,
                at BIGINT NOT NULL,
                PRIMARY KEY (schedule, slot)))",
           "CREATE INDEX attempts_by_finish ON attempts (finished_at)",
           // Workers are kept after they stop (for a run's cost); stats are a worker's own
           // counters (S3 bytes and retries), written with its heartbeat.
           "ALTER TABLE workers ADD COLUMN stopped_at BIGINT NOT NULL DEFAULT 0",
           "ALTER TABLE workers ADD COLUMN stats_json TEXT NOT NULL DEFAULT '{}'",
           "CREATE INDEX workers_live ON workers (started_at) WHERE stopped_at = 0",
       }},
      // An attempt's row is written once, when it ends; a running attempt is read from its task
      // row. (Rows of attempts running across the upgrade are now read from there.)
      {4,
       {
           "DELETE FROM attempts WHERE state = 'running'",
       }},
      // A run's code bundle (its sha256, bundle/bundle.h) and the submitter's files uploaded
      // for it (pattern -> stored copies, bundle/ship.h).
      {5,
       {
           "ALTER TABLE runs ADD COLUMN bundle TEXT NOT NULL DEFAULT ''",
           "ALTER TABLE runs ADD COLUMN uploads_json TEXT NOT NULL DEFAULT '{}'",
           // A container step's image, pinned by its first attempt to an immutable reference
           // (RunStore::PinStepImage); '' until then, and for steps without an image.
           "ALTER TABLE steps ADD COLUMN image TEXT NOT NULL DEFAULT ''",
       }},
      {6,
       {
           // The worker whose attempt last failed for an infrastructure reason (or whose lease
           // was lost): it takes the task again only if no other worker has for a while.
           "ALTER TABLE tasks ADD COLUMN avoid_worker TEXT NOT NULL DEFAULT ''",
           // Why a worker takes no tasks for now (quarantined, ...); '' while it does.
           "ALTER TABLE workers ADD COLUMN status TEXT NOT NULL DEFAULT ''",
           // The worker sizes an autoscaler starts per queue (FleetRegistry::PublishWorkerShapes),
           // so that a submission can be checked against workers that do not exist yet.
           R"(CREATE TABLE worker_shapes (
                queue TEXT PRIMARY KEY,
                cpu DOUBLE PRECISION NOT NULL,
                memory BIGINT NOT NULL,
                labels_json TEXT NOT NULL,
                max_workers INTEGER NOT NULL,
                publisher TEXT NOT NULL,
                updated_at BIGINT NOT NULL))",
       }},
  };
  return kMigrations;
}

}  // namespace barge
