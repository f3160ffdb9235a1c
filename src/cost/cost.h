// What a run cost, and what the same work would have cost elsewhere, from what was measured:
// every attempt's wall time, cpu-seconds and peak memory, its task's reservation, and the size of
// the worker it ran on.
//
//   ASSIGN_OR_RETURN(CostReport report,
//                    ComputeRunCost(store, /*fleet=*/store, run_id, DefaultPrices()));
//   std::puts(FormatCostReport(report).c_str());
//
// The models (all per attempt, lost and failed attempts included, since they were paid for):
// - barge on EC2 spot: each attempt pays its share of its worker's instance — the larger of its
//   cpu and memory share — for its wall time, per second; the instance is the cheapest in the
//   price table that fits the worker (or the task, for a worker that is not known).
// - Fargate and Fargate Spot: a task sized to the reservation (at least 0.25 vCPU and 0.5 GB;
//   memory at least the measured peak), per second with a one-minute minimum.
// - AWS Glue: the run's peak concurrent vCPUs in 4-vCPU DPUs (at least 2) for the run's wall
//   time (at least one minute).
// - EMR: on-demand instances of the EMR type, enough for the peak concurrent vCPUs, for the
//   run's wall time (at least one minute), plus the EMR uplift (25%).
//
// Thread-safety: plain functions.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "store/fleet_registry.h"
#include "store/run_store.h"

namespace barge {

struct InstancePrice {
  std::string name;
  double vcpu = 0;
  double memory_gib = 0;
  double spot_hour = 0;       // USD per hour
  double on_demand_hour = 0;  // USD per hour
};

struct Prices {
  double fargate_vcpu_hour = 0.04048;
  double fargate_gb_hour = 0.004445;
  double fargate_spot_vcpu_hour = 0.01245795;
  double fargate_spot_gb_hour = 0.00136886;
  double glue_dpu_hour = 0.44;
  double emr_uplift = 0.25;
  std::string emr_instance = "m7g.xlarge";
  std::vector<InstancePrice> instances;  // the EC2 table
};

// us-east-1 list prices of late 2026 for a few common types (spot prices are typical, not live).
Prices DefaultPrices();

// Reads a JSON price file; keys it omits keep their defaults, unknown keys are an error.
absl::StatusOr<Prices> LoadPrices(const std::string& path);

struct CostLine {
  std::string platform;  // barge-ec2-spot, fargate, fargate-spot, glue, emr
  double usd = 0;
  std::string basis;  // how it was computed, in words
};

struct CostReport {
  std::string run_id;
  int64_t tasks = 0;
  int64_t attempts = 0;
  double wall_seconds = 0;  // the run's, created to finished (or now)
  double task_seconds = 0;  // sum of attempts' wall time
  double cpu_seconds = 0;   // sum of attempts' measured cpu time
  double reserved_vcpu_hours = 0;
  double peak_vcpus = 0;        // most vCPUs reserved at once
  int64_t peak_rss_bytes = 0;   // the largest attempt's peak
  std::vector<CostLine> lines;  // barge first
};

absl::StatusOr<CostReport> ComputeRunCost(RunStore& runs, FleetRegistry& fleet,
                                          const std::string& run_id, const Prices& prices);

nlohmann::json CostReportJson(const CostReport& report);
std::string FormatCostReport(const CostReport& report);

}  // namespace barge
