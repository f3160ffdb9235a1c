// TaskQueue: the queue role of the state store. Claim() leases ready tasks atomically,
// Heartbeat() extends a worker's leases, ReapExpired() and ReleaseWorker() return lost leases to
// the queue, and Complete() accepts a result only from the current attempt's lease holder (the
// attempt number is the fencing token). Tasks enter the queue when a step starts
// (RunStore::StartStep). Workers, the server's reaper and the benchmarks use it.
//
// Policy (retry or fail, backoff) is decided by the caller and passed in a Completion; the queue
// only applies it, under fencing. Lease expiries come from the store's clock.
//
//   ASSIGN_OR_RETURN(std::vector<TaskRecord> claimed,
//                    queue.Claim({.worker_id = id, .free_cpu = 2, .max_tasks = 4}));
//
// Thread-safety: implementations are safe to call from several threads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "store/records.h"

namespace barge {

// How long a task whose attempt failed on a worker for an infrastructure reason (or whose lease
// that worker lost) waits for another worker before that one may claim it again.
inline constexpr int64_t kAvoidWorkerMs = 5'000;

class TaskQueue {
 public:
  virtual ~TaskQueue() = default;

  // The store's clock (ms since the epoch), used for leases and times.
  virtual int64_t NowMs() = 0;

  // Leases up to max_tasks pending tasks whose not_before has passed and that fit in the free
  // resources, starting a new attempt of each. Atomic with respect to other claimers. A task
  // whose last attempt failed on this worker for an infrastructure reason is left to other
  // workers for kAvoidWorkerMs, unless the claim is for one run (a run's own pool).
  virtual absl::StatusOr<std::vector<TaskRecord>> Claim(const ClaimRequest& request) = 0;
  // Applies completions in one transaction. Returns, for each, whether it was accepted; a
  // completion from anyone but the current attempt's lease holder is rejected (fenced) and its
  // attempt recorded as fenced.
  virtual absl::StatusOr<std::vector<bool>> Complete(const std::vector<Completion>& batch) = 0;
  // Extends the leases of all running tasks held by `worker_id` and the worker's heartbeat.
  // Returns the tasks it still holds; a task it ran that is missing was revoked (cancelled or
  // reaped) and must be stopped.
  virtual absl::StatusOr<std::vector<TaskKey>> Heartbeat(const std::string& worker_id,
                                                         int64_t lease_ms) = 0;
  // Returns running tasks whose lease expired to the queue (an infrastructure failure, not
  // charged to retries); a task past `max_infra_failures` fails. Returns how many were reaped.
  virtual absl::StatusOr<int64_t> ReapExpired(int max_infra_failures) = 0;
  // Like ReapExpired, for every running task held by a worker known to be dead, or by one that
  // drained: its attempts are recorded as `attempt_state` (state::kLost or state::kDrained).
  virtual absl::StatusOr<int64_t> ReleaseWorker(const std::string& worker_id,
                                                const std::string& reason, int max_infra_failures,
                                                const char* attempt_state) = 0;
};

}  // namespace barge
