// Telemetry: the aggregates of the state store that the server's metrics and autoscaler read:
// the demand on each queue, which workers are busy, and the attempts that finished in a time
// window. Read-only; each call is one grouped query, however many runs there are.
//
//   ASSIGN_OR_RETURN(std::vector<TaskLoad> load, telemetry.LoadByQueue());
//
// Thread-safety: implementations are safe to call from several threads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "store/records.h"

namespace barge {

class Telemetry {
 public:
  virtual ~Telemetry() = default;

  // The store's clock (ms since the epoch); windows are taken on it.
  virtual int64_t NowMs() = 0;

  // Pending and running tasks of all runs, grouped (see TaskLoad).
  virtual absl::StatusOr<std::vector<TaskLoad>> LoadByQueue() = 0;
  // Pending tasks of all runs, grouped by run, step and what they need of a worker.
  virtual absl::StatusOr<std::vector<PendingGroup>> PendingByStep() = 0;
  // Ids of the workers holding a running task.
  virtual absl::StatusOr<std::vector<std::string>> ListBusyWorkers() = 0;
  // Attempts that finished in (from_ms, to_ms], oldest first.
  virtual absl::StatusOr<std::vector<FinishedAttempt>> AttemptsFinished(int64_t from_ms,
                                                                        int64_t to_ms) = 0;
};

}  // namespace barge
