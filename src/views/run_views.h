// Reading runs for people: the JSON forms of runs, steps, tasks, attempts, workers and schedules,
// and a task attempt's log. The read side shared by the CLI (`barge status --json`, `barge logs`)
// and the HTTP API, so both say the same thing; nothing here changes a run.
//
//   nlohmann::json j = RunJson(run, runs.NowMs());
//   ASSIGN_OR_RETURN(AttemptLog log,
//                    OpenAttemptLog(runs, stores, {id, "clean", 3}, /*attempt=*/0));
//   ASSIGN_OR_RETURN(std::string last_kb,
//                    log.read(std::max<int64_t>(0, log.size - 1024), 1024));
//
// Thread-safety: plain functions; safe if the RunStore is.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fleet/placement.h"
#include "nlohmann/json.hpp"
#include "objstore/object_stores.h"
#include "store/run_store.h"

namespace barge {

nlohmann::json RunJson(const RunRecord& run, int64_t now_ms);
// Steps in pipeline order with their task counts by state and, when `pipeline` parses, the
// steps each one needs (the DAG's edges). Given the fleet's `seats` (fleet/placement.h), a
// running run's step whose pending tasks no seat can take says why, as "unplaceable".
nlohmann::json StepsJson(const RunRecord& run, const std::vector<StepRecord>& steps,
                         const std::vector<StepCounts>& counts, int64_t now_ms,
                         const std::vector<Seat>* seats = nullptr);
// The seats StepsJson weighs a run's pending tasks against: the fleet's while the run is
// running (two reads of the registry), none once it has ended.
absl::StatusOr<std::vector<Seat>> SeatsFor(const RunRecord& run, FleetRegistry& fleet);
nlohmann::json TaskJson(const TaskRecord& task);
nlohmann::json AttemptJson(const AttemptRecord& attempt);
nlohmann::json WorkerJson(const WorkerRecord& worker, int64_t now_ms);
// A schedule with its next slot after now ("" if its cron no longer parses).
nlohmann::json ScheduleJson(const ScheduleRecord& schedule, int64_t now_ms);

struct AttemptLog {
  int attempt = 0;
  std::string location;  // path or s3:// URL
  int64_t size = 0;      // when opened
  bool live = false;     // the attempt is still running, so the log may grow
  // Reads bytes [offset, offset + length) of the log (fewer at its end): a pread of the file, or
  // a ranged GET of the object, never the whole log.
  std::function<absl::StatusOr<std::string>(int64_t offset, int64_t length)> read;
};

// The log of a task's attempt (0: the latest), opened for ranged reads. NotFound if the task has
// not started or the attempt or its log does not exist; PermissionDenied if the recorded location
// is outside the run's root (a tampered or foreign record is never followed).
// The log is read through the run root's store in `stores`, which must outlive the AttemptLog.
absl::StatusOr<AttemptLog> OpenAttemptLog(RunStore& runs, ObjectStores& stores, const TaskKey& key,
                                          int attempt);

}  // namespace barge
