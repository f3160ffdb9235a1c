// /metrics: the fleet's state in Prometheus text format (version 0.0.4), read from the state
// store at each scrape.
//
//   Metrics metrics(/*telemetry=*/store, /*schedules=*/store, /*fleet=*/store);
//   ASSIGN_OR_RETURN(std::string text, metrics.Render());
//
// Gauges: tasks by queue and state (ready, waiting, running), queue depth, live workers by queue,
// scheduler lag per schedule. Counters: each worker's S3 requests, retries and bytes (as the
// worker reports them), and a histogram of task attempt durations by queue and outcome, counting
// attempts that finished since this server started (counters reset with the server, as
// Prometheus expects). An attempt is counted once its finish is `settle_ms` old, so that
// attempts committed late by a slow transaction are not missed.
//
// Thread-safety: Render() is serialised internally.
#pragma once

#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "store/fleet_registry.h"
#include "store/schedule_store.h"
#include "store/telemetry.h"

namespace barge {

class Metrics {
 public:
  // Reads tasks and attempts from `telemetry`, scheduler lag from `schedules` and live workers
  // and their counters from `fleet`.
  Metrics(Telemetry& telemetry, ScheduleStore& schedules, FleetRegistry& fleet,
          int64_t settle_ms = 5'000);

  absl::StatusOr<std::string> Render();

  // Bucket upper bounds of the duration histogram, in seconds.
  static const std::vector<double>& DurationBuckets();

 private:
  struct Histogram {
    std::vector<int64_t> counts;  // per bucket, not cumulative
    int64_t count = 0;
    double sum = 0;
  };
  absl::Status CollectFinished() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Telemetry& telemetry_;
  ScheduleStore& schedules_;
  FleetRegistry& fleet_;
  const int64_t settle_ms_;
  absl::Mutex mu_;
  int64_t watermark_ms_
      ABSL_GUARDED_BY(mu_);  // attempts finished at or before this are counted; starts at start-up
  std::map<std::pair<std::string, std::string>, Histogram> durations_
      ABSL_GUARDED_BY(mu_);  // (queue, state)
};

}  // namespace barge
