// Placement: which workers could ever take a task, and why none can. A task fits a worker when
// its cpu and memory fit in the worker's, it waits in the worker's queue and its required labels
// are among the worker's. The workers considered ("seats") are the live fleet workers, the
// worker sizes autoscalers publish (they may start them), and a run's own local pool, which
// takes any task of its run that fits it.
//
//   ASSIGN_OR_RETURN(std::vector<Seat> seats, FleetSeats(fleet));
//   std::string why = WhyNoSeat({.cpu = 4, .memory = 30 << 30, .queue = "default"}, seats, run);
//   if (!why.empty()) ...  // "needs 30 GiB of memory; the largest worker of queue default ..."
//
// Thread-safety: functions only.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/labels.h"
#include "spec/pipeline.h"
#include "store/fleet_registry.h"
#include "store/telemetry.h"

namespace barge {

struct Seat {
  std::string what;  // "worker <id>" or "autoscaled worker of queue <q>"
  double cpu = 0;
  int64_t memory = 0;  // 0: not said (fits any memory)
  std::string queue;
  Labels labels;
  std::string driver_of;  // a run's local pool: the run it drives (it takes any of its tasks)
  // False for an autoscaler's worker size: the machines it starts may have labels (arch,
  // container runtime) the configuration does not say, so labels are not held against it.
  bool labels_known = true;
};

// What a task needs of a worker.
struct SeatNeed {
  double cpu = 1;
  int64_t memory = 0;
  std::string queue = "default";
  Labels labels;
};

SeatNeed NeedOf(const Step& step);
// `required_labels` is the tasks' canonical spelling (common/labels.h); a bad one needs nothing.
SeatNeed NeedOf(const PendingGroup& group);

// Workers whose heartbeat is older than this are not counted as live.
inline constexpr int64_t kSeatHeartbeatMs = 90'000;
// Worker sizes published longer ago than this (by a server that stopped) are not counted.
inline constexpr int64_t kShapeFreshMs = 10 * 60'000;

// The live workers and the autoscalers' published worker sizes, as of the registry's clock.
absl::StatusOr<std::vector<Seat>> FleetSeats(FleetRegistry& fleet);

// "" when a seat can take a task of `run_id` that needs `need`; otherwise why none can, naming
// the nearest miss ("needs 30 GiB of memory; the largest worker of queue default has 16 GiB").
std::string WhyNoSeat(const SeatNeed& need, const std::vector<Seat>& seats,
                      const std::string& run_id);

// Pending tasks that no seat can take, one line per step: "run R step S: N tasks: why".
struct Unplaceable {
  std::string run_id;
  std::string step;
  int64_t count = 0;
  std::string why;
};
absl::StatusOr<std::vector<Unplaceable>> FindUnplaceable(FleetRegistry& fleet,
                                                         Telemetry& telemetry);

// Of a run's steps with pending tasks (`counts`), those no seat can take, with why (by step).
std::map<std::string, std::string> UnplaceableSteps(const Pipeline& pipeline,
                                                    const std::vector<StepCounts>& counts,
                                                    const std::vector<Seat>& seats,
                                                    const std::string& run_id);

// A submission left to the fleet: an error naming the step's file and line when no seat can
// take its tasks and there are seats; OK, with a warning line in `warning`, when there are no
// seats at all (nothing to check against).
absl::Status CheckPipelineSeats(const Pipeline& pipeline, const std::vector<Seat>& seats,
                                std::string& warning);

}  // namespace barge
