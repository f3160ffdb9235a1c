#include "server/metrics.h"

#include <cmath>

#include "common/status.h"
#include "common/strings.h"
#include "fmt/format.h"
#include "nlohmann/json.hpp"

namespace barge {
namespace {

// A label value with backslash, quote and newline escaped.
std::string Esc(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

std::string Num(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

void Header(std::string& out, const char* name, const char* type, const char* help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

}  // namespace

const std::vector<double>& Metrics::DurationBuckets() {
  static const std::vector<double> kBuckets = {0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 14400};
  return kBuckets;
}

Metrics::Metrics(Telemetry& telemetry, ScheduleStore& schedules, FleetRegistry& fleet,
                 int64_t settle_ms)
    : telemetry_(telemetry),
      schedules_(schedules),
      fleet_(fleet),
      settle_ms_(settle_ms),
      watermark_ms_(telemetry.NowMs()) {}

absl::Status Metrics::CollectFinished() {
  int64_t until = telemetry_.NowMs() - settle_ms_;
  if (until <= watermark_ms_) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::vector<FinishedAttempt> done,
                   telemetry_.AttemptsFinished(watermark_ms_, until));
  const std::vector<double>& bounds = DurationBuckets();
  for (const FinishedAttempt& a : done) {
    Histogram& h = durations_[{a.queue, a.state}];
    if (h.counts.empty()) h.counts.assign(bounds.size() + 1, 0);
    double seconds = std::max<int64_t>(0, a.duration_ms) / 1000.0;
    size_t b = 0;
    while (b < bounds.size() && seconds > bounds[b]) ++b;
    h.counts[b]++;
    h.count++;
    h.sum += seconds;
  }
  watermark_ms_ = until;
  return absl::OkStatus();
}

absl::StatusOr<std::string> Metrics::Render() {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(CollectFinished());
  ASSIGN_OR_RETURN(std::vector<TaskLoad> load, telemetry_.LoadByQueue());
  ASSIGN_OR_RETURN(std::vector<WorkerRecord> workers, fleet_.ListWorkers());
  ASSIGN_OR_RETURN(std::vector<ScheduleRecord> schedules, schedules_.ListSchedules());
  std::string out;

  Header(out, "barge_up", "gauge", "1 while the server can read the state store.");
  out += "barge_up 1\n";

  std::map<std::pair<std::string, std::string>, int64_t> tasks;  // (queue, state)
  std::map<std::string, int64_t> depth;
  for (const TaskLoad& l : load) {
    tasks[{l.queue, l.state}] += l.count;
    depth[l.queue] += l.state == "running" ? 0 : l.count;
  }
  Header(out, "barge_tasks", "gauge",
         "Unfinished tasks by queue and state (ready: claimable now; waiting: backing off).");
  for (const auto& [key, n] : tasks) {
    out += fmt::format("barge_tasks{{queue=\"{}\",state=\"{}\"}} {}\n", Esc(key.first),
                       Esc(key.second), n);
  }
  Header(out, "barge_queue_depth", "gauge", "Pending tasks by queue.");
  for (const auto& [queue, n] : depth) {
    out += fmt::format("barge_queue_depth{{queue=\"{}\"}} {}\n", Esc(queue), n);
  }

  Header(out, "barge_task_duration_seconds", "histogram",
         "Wall time of task attempts finished since the server started, by queue and outcome.");
  const std::vector<double>& bounds = DurationBuckets();
  for (const auto& [key, h] : durations_) {
    std::string labels =
        fmt::format("queue=\"{}\",outcome=\"{}\"", Esc(key.first), Esc(key.second));
    int64_t cumulative = 0;
    for (size_t b = 0; b <= bounds.size(); ++b) {
      cumulative += h.counts[b];
      std::string le = b < bounds.size() ? Num(bounds[b]) : "+Inf";
      out += fmt::format("barge_task_duration_seconds_bucket{{{},le=\"{}\"}} {}\n", labels, le,
                         cumulative);
    }
    out += fmt::format("barge_task_duration_seconds_sum{{{}}} {}\n", labels, Num(h.sum));
    out += fmt::format("barge_task_duration_seconds_count{{{}}} {}\n", labels, h.count);
  }

  std::map<std::string, int64_t> per_queue;
  for (const WorkerRecord& w : workers) per_queue[w.queue]++;
  Header(out, "barge_workers", "gauge", "Registered workers by queue.");
  for (const auto& [queue, n] : per_queue) {
    out += fmt::format("barge_workers{{queue=\"{}\"}} {}\n", Esc(queue), n);
  }

  static const std::vector<std::pair<const char*, const char*>> kS3 = {
      {"s3_requests", "barge_worker_s3_requests_total"},
      {"s3_retries", "barge_worker_s3_retries_total"},
      {"s3_bytes_up", "barge_worker_s3_bytes_up_total"},
      {"s3_bytes_down", "barge_worker_s3_bytes_down_total"}};
  std::vector<nlohmann::json> stats;  // per worker, parsed once for all four counters
  for (const WorkerRecord& w : workers)
    stats.push_back(nlohmann::json::parse(w.stats_json, nullptr, false));
  for (const auto& [key, name] : kS3) {
    Header(out, name, "counter", "S3 traffic of each live worker, as it last reported.");
    for (size_t i = 0; i < workers.size(); ++i) {
      const WorkerRecord& w = workers[i];
      const nlohmann::json& s = stats[i];
      int64_t v =
          s.is_object() && s.contains(key) && s[key].is_number() ? s[key].get<int64_t>() : 0;
      out += fmt::format("{}{{worker=\"{}\"}} {}\n", name, Esc(w.id), v);
    }
  }

  Header(out, "barge_schedule_lag_seconds", "gauge",
         "How late the schedule's newest slot was handled (recorded minus slot time).");
  for (const ScheduleRecord& s : schedules) {
    ASSIGN_OR_RETURN(std::vector<ScheduleFire> fires, schedules_.ListFires(s.name, 1));
    if (!fires.empty()) {
      out += fmt::format("barge_schedule_lag_seconds{{schedule=\"{}\"}} {}\n", Esc(s.name),
                         Num((fires[0].at - fires[0].slot) / 1000.0));
    }
  }
  return out;
}

}  // namespace barge
