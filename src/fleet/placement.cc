#include "fleet/placement.h"

#include <algorithm>
#include <map>
#include <set>

#include "common/status.h"
#include "common/strings.h"
#include "common/units.h"
#include "worker/worker.h"

namespace barge {
namespace {

bool HasAll(const Labels& offered, const Labels& needed) {
  return std::all_of(needed.begin(), needed.end(), [&](const auto& kv) {
    auto it = offered.find(kv.first);
    return it != offered.end() && it->second == kv.second;
  });
}

std::string FormatCpu(double cpu) { return Cat(cpu); }

}  // namespace

SeatNeed NeedOf(const Step& step) {
  return {.cpu = step.cpu, .memory = step.memory_bytes, .queue = step.queue, .labels = step.labels};
}

SeatNeed NeedOf(const PendingGroup& group) {
  absl::StatusOr<Labels> labels = ParseLabels(group.required_labels);
  return {.cpu = group.cpu,
          .memory = group.memory,
          .queue = group.queue,
          .labels = labels.ok() ? *labels : Labels{}};
}

absl::StatusOr<std::vector<Seat>> FleetSeats(FleetRegistry& fleet) {
  ASSIGN_OR_RETURN(std::vector<WorkerRecord> workers, fleet.ListWorkers());
  ASSIGN_OR_RETURN(std::vector<WorkerShape> shapes, fleet.ListWorkerShapes());
  int64_t now = fleet.NowMs();
  std::vector<Seat> seats;
  for (const WorkerRecord& w : workers) {
    if (now - w.heartbeat_at > kSeatHeartbeatMs) continue;
    seats.push_back({.what = Cat("worker ", w.id),
                     .cpu = w.cpu,
                     .memory = w.memory,
                     .queue = w.queue,
                     .labels = LabelsFromJson(w.labels_json),
                     .driver_of = DriverPoolRun(w)});
  }
  for (const WorkerShape& s : shapes) {
    if (now - s.updated_at > kShapeFreshMs || s.max_workers <= 0) continue;
    seats.push_back({.what = Cat("autoscaled worker of queue ", s.queue),
                     .cpu = s.cpu,
                     .memory = s.memory,
                     .queue = s.queue,
                     .labels = LabelsFromJson(s.labels_json),
                     .labels_known = false});
  }
  return seats;
}

std::string WhyNoSeat(const SeatNeed& need, const std::vector<Seat>& seats,
                      const std::string& run_id) {
  // Narrowed step by step (queue, labels, cpu, memory); the first step that leaves none says why.
  std::vector<const Seat*> in_queue;
  std::set<std::string> queues;
  for (const Seat& s : seats) {
    if (!s.driver_of.empty()) {
      if (s.driver_of == run_id) in_queue.push_back(&s);
      continue;
    }
    queues.insert(s.queue);
    if (s.queue == need.queue) in_queue.push_back(&s);
  }
  if (in_queue.empty()) {
    if (queues.empty()) return "no live or configured worker";
    std::vector<std::string> names(queues.begin(), queues.end());
    return Cat("queue ", need.queue, ": no live or configured worker serves it (workers serve ",
               Join(names, ", "), ")");
  }
  std::vector<const Seat*> labelled;
  for (const Seat* s : in_queue) {
    if (!s->driver_of.empty() || !s->labels_known || HasAll(s->labels, need.labels)) {
      labelled.push_back(s);
    }
  }
  if (labelled.empty()) {
    return Cat("needs labels ", CanonicalLabels(need.labels), "; no worker of queue ", need.queue,
               " has them (they offer ", CanonicalLabels(in_queue.front()->labels), ")");
  }
  std::vector<const Seat*> with_cpu;
  double most_cpu = 0;
  for (const Seat* s : labelled) {
    most_cpu = std::max(most_cpu, s->cpu);
    if (need.cpu <= s->cpu + 1e-9) with_cpu.push_back(s);
  }
  if (with_cpu.empty()) {
    return Cat("needs ", FormatCpu(need.cpu), " cpu; the largest worker of queue ", need.queue,
               " has ", FormatCpu(most_cpu));
  }
  int64_t most_memory = 0;
  for (const Seat* s : with_cpu) {
    if (s->memory <= 0 || need.memory <= s->memory) return "";
    most_memory = std::max(most_memory, s->memory);
  }
  return Cat("needs ", FormatBytes(need.memory), " of memory; the largest worker of queue ",
             need.queue, " with the cpu has ", FormatBytes(most_memory));
}

absl::StatusOr<std::vector<Unplaceable>> FindUnplaceable(FleetRegistry& fleet,
                                                         Telemetry& telemetry) {
  ASSIGN_OR_RETURN(std::vector<Seat> seats, FleetSeats(fleet));
  ASSIGN_OR_RETURN(std::vector<PendingGroup> pending, telemetry.PendingByStep());
  std::map<std::pair<std::string, std::string>, Unplaceable> by_step;
  for (const PendingGroup& g : pending) {
    std::string why = WhyNoSeat(NeedOf(g), seats, g.run_id);
    if (why.empty()) continue;
    Unplaceable& u = by_step[{g.run_id, g.step}];
    u.run_id = g.run_id;
    u.step = g.step;
    u.count += g.count;
    if (u.why.empty()) u.why = why;
  }
  std::vector<Unplaceable> out;
  for (auto& [key, u] : by_step) out.push_back(std::move(u));
  return out;
}

std::map<std::string, std::string> UnplaceableSteps(const Pipeline& pipeline,
                                                    const std::vector<StepCounts>& counts,
                                                    const std::vector<Seat>& seats,
                                                    const std::string& run_id) {
  std::map<std::string, std::string> out;
  for (const StepCounts& c : counts) {
    if (c.pending == 0) continue;
    const Step* step = pipeline.FindStep(c.step);
    if (step == nullptr) continue;
    std::string why = WhyNoSeat(NeedOf(*step), seats, run_id);
    if (!why.empty()) out[c.step] = std::move(why);
  }
  return out;
}

absl::Status CheckPipelineSeats(const Pipeline& pipeline, const std::vector<Seat>& seats,
                                std::string& warning) {
  bool any_fleet =
      std::any_of(seats.begin(), seats.end(), [](const Seat& s) { return s.driver_of.empty(); });
  if (!any_fleet) {
    warning =
        "no live worker and no autoscaler's worker size to check the run's resources "
        "against: its tasks wait until a worker that can take them joins";
    return absl::OkStatus();
  }
  for (const Step& step : pipeline.steps) {
    std::string why = WhyNoSeat(NeedOf(step), seats, "");
    if (why.empty()) continue;
    return absl::InvalidArgumentError(Cat(pipeline.path, ":", step.location.line, ":",
                                          step.location.column, ": step \"", step.name,
                                          "\": no worker of the fleet can take its tasks: ", why));
  }
  return absl::OkStatus();
}

}  // namespace barge
