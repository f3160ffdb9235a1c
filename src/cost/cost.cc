#include "cost/cost.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "common/fs.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/units.h"
#include "fmt/format.h"

namespace barge {
namespace {

constexpr double kGiB = 1024.0 * 1024 * 1024;

// The spot machine that holds `cpu` vCPUs and `memory_gib`: the cheapest instance of the table
// that fits, or, when none is large enough, one of exactly that size at the table's cheapest spot
// rate per vCPU.
InstancePrice SpotMachineFor(const std::vector<InstancePrice>& table, double cpu,
                             double memory_gib) {
  const InstancePrice* best = nullptr;
  double per_vcpu = 0;
  for (const InstancePrice& i : table) {
    if (per_vcpu == 0 || i.spot_hour / i.vcpu < per_vcpu) per_vcpu = i.spot_hour / i.vcpu;
    if (i.vcpu + 1e-9 < cpu || i.memory_gib + 1e-9 < memory_gib) continue;
    if (best == nullptr || i.spot_hour < best->spot_hour) best = &i;
  }
  if (best != nullptr) return *best;
  return {.vcpu = cpu, .memory_gib = memory_gib, .spot_hour = per_vcpu * cpu};
}

// What part of a machine an attempt holds: the larger of its cpu and memory shares, at most all.
double ShareOf(double cpu, double memory_gib, double machine_cpu, double machine_gib) {
  double share = cpu / machine_cpu;
  if (machine_gib > 0) share = std::max(share, memory_gib / machine_gib);
  return std::min(1.0, share);
}

std::string Usd(double usd) { return fmt::format("${:.{}f}", usd, usd < 0.01 ? 6 : 4); }

}  // namespace

Prices DefaultPrices() {
  Prices p;
  p.instances = {
      {"m7g.large", 2, 8, 0.0326, 0.0816},    {"m7g.xlarge", 4, 16, 0.0650, 0.1632},
      {"m7g.2xlarge", 8, 32, 0.1300, 0.3264}, {"m7g.4xlarge", 16, 64, 0.2600, 0.6528},
      {"c7g.xlarge", 4, 8, 0.0580, 0.1450},   {"r7g.xlarge", 4, 32, 0.0850, 0.2142},
      {"m7i.xlarge", 4, 16, 0.0800, 0.2016},  {"m7i.2xlarge", 8, 32, 0.1600, 0.4032},
  };
  return p;
}

absl::StatusOr<Prices> LoadPrices(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) return absl::InvalidArgumentError(Cat(path, ": not a JSON object"));
  Prices p = DefaultPrices();
  std::map<std::string, double*> numbers = {{"fargate_vcpu_hour", &p.fargate_vcpu_hour},
                                            {"fargate_gb_hour", &p.fargate_gb_hour},
                                            {"fargate_spot_vcpu_hour", &p.fargate_spot_vcpu_hour},
                                            {"fargate_spot_gb_hour", &p.fargate_spot_gb_hour},
                                            {"glue_dpu_hour", &p.glue_dpu_hour},
                                            {"emr_uplift", &p.emr_uplift}};
  for (const auto& [key, value] : j.items()) {
    if (auto it = numbers.find(key); it != numbers.end()) {
      if (!value.is_number() || value.get<double>() < 0) {
        return absl::InvalidArgumentError(Cat(path, ": ", key, ": expected a number >= 0"));
      }
      *it->second = value.get<double>();
    } else if (key == "emr_instance" && value.is_string()) {
      p.emr_instance = value.get<std::string>();
    } else if (key == "instances" && value.is_array()) {
      p.instances.clear();
      for (const nlohmann::json& i : value) {
        try {
          p.instances.push_back({i.at("name").get<std::string>(), i.at("vcpu").get<double>(),
                                 i.at("memory_gib").get<double>(), i.at("spot_hour").get<double>(),
                                 i.at("on_demand_hour").get<double>()});
        } catch (const nlohmann::json::exception& e) {
          return absl::InvalidArgumentError(
              Cat(path,
                  ": instances: each needs name, vcpu, memory_gib, spot_hour and "
                  "on_demand_hour (",
                  e.what(), ")"));
        }
        if (p.instances.back().vcpu <= 0 || p.instances.back().memory_gib <= 0) {
          return absl::InvalidArgumentError(
              Cat(path, ": instances: ", p.instances.back().name, " has no vcpu or memory"));
        }
      }
    } else {
      return absl::InvalidArgumentError(Cat(path, ": unknown or malformed key \"", key, "\""));
    }
  }
  if (p.instances.empty()) return absl::InvalidArgumentError(Cat(path, ": instances is empty"));
  return p;
}

absl::StatusOr<CostReport> ComputeRunCost(RunStore& runs, FleetRegistry& fleet,
                                          const std::string& run_id, const Prices& prices) {
  ASSIGN_OR_RETURN(RunRecord run, runs.GetRun(run_id));
  ASSIGN_OR_RETURN(std::vector<TaskRecord> tasks, runs.ListTasks({.run_id = run_id}));
  ASSIGN_OR_RETURN(std::vector<AttemptRecord> attempts, runs.ListRunAttempts(run_id));
  ASSIGN_OR_RETURN(std::vector<WorkerRecord> workers, fleet.ListRunWorkers(run_id));
  std::map<TaskKey, const TaskRecord*> task_of;
  for (const TaskRecord& t : tasks) task_of[t.key] = &t;
  std::map<std::string, const WorkerRecord*> worker_of;
  for (const WorkerRecord& w : workers) worker_of[w.id] = &w;

  const int64_t now = runs.NowMs();
  CostReport r;
  r.run_id = run_id;
  r.tasks = static_cast<int64_t>(tasks.size());
  r.attempts = static_cast<int64_t>(attempts.size());
  r.wall_seconds = ((run.finished_at > 0 ? run.finished_at : now) - run.created_at) / 1000.0;
  double barge = 0, fargate = 0, fargate_spot = 0;
  std::vector<std::pair<int64_t, double>> edges;  // (time, +cpu at start / -cpu at end)
  for (const AttemptRecord& a : attempts) {
    auto t = task_of.find(a.key);
    if (t == task_of.end()) continue;
    const TaskRecord& task = *t->second;
    int64_t end = a.finished_at > 0 ? a.finished_at : (a.state == state::kRunning ? now : 0);
    if (end <= a.started_at) continue;
    double hours = (end - a.started_at) / 3'600'000.0;
    double memory_gib = std::max<double>(task.memory, a.max_rss_kb * 1024.0) / kGiB;
    r.task_seconds += hours * 3600;
    r.cpu_seconds += a.cpu_seconds;
    r.reserved_vcpu_hours += hours * task.cpu;
    r.peak_rss_bytes = std::max<int64_t>(r.peak_rss_bytes, a.max_rss_kb * 1024);
    edges.push_back({a.started_at, task.cpu});
    edges.push_back({end, -task.cpu});

    // A known worker holds its whole machine and the attempt a share of the worker; otherwise the
    // attempt holds a share of the machine that would fit it.
    double share = 1, hour_price = 0;
    if (auto w = worker_of.find(a.worker_id); w != worker_of.end() && w->second->cpu > 0) {
      const WorkerRecord& worker = *w->second;
      double worker_gib = std::max(worker.memory / kGiB, memory_gib);
      hour_price = SpotMachineFor(prices.instances, worker.cpu, worker_gib).spot_hour;
      share = ShareOf(task.cpu, memory_gib, worker.cpu, worker_gib);
    } else {
      InstancePrice machine = SpotMachineFor(prices.instances, task.cpu, memory_gib);
      hour_price = machine.spot_hour;
      share = ShareOf(task.cpu, memory_gib, machine.vcpu, machine.memory_gib);
    }
    barge += hours * share * hour_price;

    double billed = std::max(hours, 1.0 / 60);
    double vcpu = std::max(0.25, task.cpu);
    double gb = std::max(0.5, memory_gib);
    fargate += billed * (vcpu * prices.fargate_vcpu_hour + gb * prices.fargate_gb_hour);
    fargate_spot +=
        billed * (vcpu * prices.fargate_spot_vcpu_hour + gb * prices.fargate_spot_gb_hour);
  }
  std::sort(edges.begin(), edges.end());  // ends (negative) sort before starts at the same time
  double concurrent = 0;
  for (const auto& [at, delta] : edges) {
    concurrent += delta;
    r.peak_vcpus = std::max(r.peak_vcpus, concurrent);
  }
  double run_hours = std::max(r.wall_seconds, 60.0) / 3600;
  int dpus = std::max(2, static_cast<int>(std::ceil(r.peak_vcpus / 4 - 1e-9)));
  double glue = dpus * run_hours * prices.glue_dpu_hour;
  double emr = 0;
  std::string emr_basis;
  for (const InstancePrice& i : prices.instances) {
    if (i.name != prices.emr_instance) continue;
    int nodes = std::max(1, static_cast<int>(std::ceil(r.peak_vcpus / i.vcpu - 1e-9)));
    emr = nodes * i.on_demand_hour * (1 + prices.emr_uplift) * run_hours;
    emr_basis = Cat(nodes, " x ", i.name, " on demand + ", std::lround(prices.emr_uplift * 100),
                    "% EMR for the run's wall time (min 1 min)");
  }
  r.lines = {
      {"barge-ec2-spot", barge,
       "each attempt's share of its worker's cheapest fitting spot instance, per second"},
      {"fargate", fargate,
       "a task per attempt sized to its reservation, per second, 1 min minimum"},
      {"fargate-spot", fargate_spot, "as fargate, at Fargate Spot rates"},
      {"glue", glue,
       Cat(dpus, " DPU (peak ", r.peak_vcpus,
           " vCPU / 4, min 2) for the run's wall time (min 1 "
           "min)")},
      {"emr", emr, emr_basis.empty() ? "emr_instance not in the price table" : emr_basis},
  };
  return r;
}

nlohmann::json CostReportJson(const CostReport& r) {
  nlohmann::json lines = nlohmann::json::array();
  for (const CostLine& l : r.lines) {
    lines.push_back({{"platform", l.platform}, {"usd", l.usd}, {"basis", l.basis}});
  }
  return {{"run", r.run_id},
          {"tasks", r.tasks},
          {"attempts", r.attempts},
          {"wall_seconds", r.wall_seconds},
          {"task_seconds", r.task_seconds},
          {"cpu_seconds", r.cpu_seconds},
          {"reserved_vcpu_hours", r.reserved_vcpu_hours},
          {"peak_vcpus", r.peak_vcpus},
          {"peak_rss_bytes", r.peak_rss_bytes},
          {"costs", lines}};
}

std::string FormatCostReport(const CostReport& r) {
  std::string out =
      Cat("run        ", r.run_id, "\ntasks      ", r.tasks, " (", r.attempts,
          " attempts)\nwall time  ", FormatDurationMs(std::llround(r.wall_seconds * 1000)),
          "\ntask time  ", FormatDurationMs(std::llround(r.task_seconds * 1000)), " (",
          fmt::format("{:.1f}", r.cpu_seconds), " cpu-seconds measured, peak ", r.peak_vcpus,
          " vCPU reserved at once, peak memory ", FormatBytes(r.peak_rss_bytes), ")\n\n");
  const double barge = r.lines.empty() ? 0 : r.lines.front().usd;
  out += fmt::format("{:<16}{:>12}  {:<10}{}\n", "PLATFORM", "COST", "VS BARGE", "BASIS");
  for (const CostLine& l : r.lines) {
    std::string ratio =
        barge > 0 && &l != &r.lines.front() ? fmt::format("{:.1f}x", l.usd / barge) : "";
    out += fmt::format("{:<16}{:>12}  {:<10}{}\n", l.platform, Usd(l.usd), ratio, l.basis);
  }
  return out;
}

}  // namespace barge
