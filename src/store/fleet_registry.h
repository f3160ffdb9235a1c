// FleetRegistry: the workers role of the state store. Each worker process registers itself
// (its host, pid, resources, labels and queue), reports its counters while it runs and
// deregisters when it stops; the registry keeps stopped workers for the runs they served (cost
// reports). Workers, the autoscaler, metrics, the API and cost use it. A dead worker's leases
// are released through TaskQueue::ReleaseWorker.
//
//   RETURN_IF_ERROR(fleet.RegisterWorker({.id = id, .host = host, .cpu = 4}));
//   ASSIGN_OR_RETURN(std::vector<WorkerRecord> live, fleet.ListWorkers());
//
// Thread-safety: implementations are safe to call from several threads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "store/records.h"

namespace barge {

class FleetRegistry {
 public:
  virtual ~FleetRegistry() = default;

  // The store's clock (ms since the epoch); heartbeats are compared with it.
  virtual int64_t NowMs() = 0;

  // Registers a worker as of now; an id registered before is marked alive again, keeping its
  // first record.
  virtual absl::Status RegisterWorker(const WorkerRecord& worker) = 0;
  // Marks a worker stopped; it is no longer listed by ListWorkers.
  virtual absl::Status DeregisterWorker(const std::string& worker_id) = 0;
  // Registered workers (alive, or dead but not yet released).
  virtual absl::StatusOr<std::vector<WorkerRecord>> ListWorkers() = 0;
  // Every worker, stopped ones too, that ran an attempt of the run.
  virtual absl::StatusOr<std::vector<WorkerRecord>> ListRunWorkers(const std::string& run_id) = 0;
  // Stores a worker's counters (a JSON object), as of now.
  virtual absl::Status ReportWorkerStats(const std::string& worker_id,
                                         const std::string& stats_json) = 0;
  // Says why a worker takes no tasks for now ('' once it does again), for `barge workers`.
  virtual absl::Status SetWorkerStatus(const std::string& worker_id, const std::string& status) = 0;
  // Replaces the worker sizes autoscalers start (one per queue), as of now.
  virtual absl::Status PublishWorkerShapes(const std::vector<WorkerShape>& shapes) = 0;
  virtual absl::StatusOr<std::vector<WorkerShape>> ListWorkerShapes() = 0;
};

}  // namespace barge
