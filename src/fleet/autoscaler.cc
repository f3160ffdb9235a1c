#include "fleet/autoscaler.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>

#include "common/clock.h"
#include "common/fs.h"
#include "common/labels.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/text.h"
#include "common/units.h"
#include "common/yaml_checks.h"
#include "yaml-cpp/yaml.h"

extern char** environ;

namespace barge {
namespace {

// `node` as a T, or an error "<where>: expected <what>" (yaml-cpp's own message says less).
template <typename T>
std::optional<T> As(const YAML::Node& node, std::string_view where, std::string_view what,
                    YamlDiagnostics& diag) {
  try {
    if (node.IsScalar()) return node.as<T>();
  } catch (const YAML::Exception&) {
  }
  diag.Error(node, Cat(where, ": expected ", what));
  return std::nullopt;
}

void ParseWorker(const YAML::Node& node, QueueScaling& q, YamlDiagnostics& diag) {
  if (!node.IsMap()) {
    diag.Error(node, Cat("worker: expected a map, not ", YamlTypeName(node)));
    return;
  }
  ForEachEntry(node, "worker", {"cpu", "memory", "labels"}, diag,
               [&](const std::string& key, const YAML::Node&, const YAML::Node& v) {
                 std::string where = Cat("worker.", key);
                 if (key == "cpu") {
                   q.worker_cpu = As<double>(v, where, "a number", diag).value_or(q.worker_cpu);
                   if (q.worker_cpu <= 0) diag.Error(v, "worker.cpu: must be > 0");
                   return;
                 }
                 if (!ExpectScalar(v, where, diag)) return;
                 if (key == "memory") {
                   absl::StatusOr<int64_t> memory = ParseSizeBytes(v.Scalar());
                   if (memory.ok()) {
                     q.worker_memory = *memory;
                   } else {
                     diag.Error(v, Cat(where, ": ", memory.status().message()));
                   }
                 } else {
                   q.worker_labels = v.Scalar();
                   absl::Status labels = ParseLabels(q.worker_labels).status();
                   if (!labels.ok()) diag.Error(v, Cat(where, ": ", labels.message()));
                 }
               });
}

QueueScaling ParseQueue(const YAML::Node& node, YamlDiagnostics& diag) {
  QueueScaling q;
  if (!node.IsMap()) {
    diag.Error(node, Cat("each queue must be a map, not ", YamlTypeName(node)));
    return q;
  }
  ForEachEntry(node, "queue", {"queue", "min", "max", "idle", "worker", "provider", "command"},
               diag, [&](const std::string& key, const YAML::Node&, const YAML::Node& v) {
                 if (key == "min" || key == "max") {
                   int& bound = key == "min" ? q.min : q.max;
                   bound = As<int>(v, key, "a whole number", diag).value_or(bound);
                   return;
                 }
                 if (key == "worker") {
                   ParseWorker(v, q, diag);
                   return;
                 }
                 if (!ExpectScalar(v, key, diag)) return;
                 if (key == "queue") {
                   q.queue = v.Scalar();
                   if (!IsValidLabelText(q.queue)) diag.Error(v, "queue: bad name");
                 } else if (key == "idle") {
                   absl::StatusOr<int64_t> idle = ParseDurationMs(v.Scalar());
                   if (idle.ok()) {
                     q.idle_ms = *idle;
                   } else {
                     diag.Error(v, Cat("idle: ", idle.status().message()));
                   }
                 } else if (key == "provider") {
                   q.provider = v.Scalar();
                   if (q.provider != "local" && q.provider != "command") {
                     diag.Error(v, "provider: expected local or command");
                   }
                 } else {
                   q.command = v.Scalar();
                 }
               });
  if (q.min < 0 || q.max < q.min || q.max > 10'000) {
    diag.Error(node, Cat("queue ", q.queue, ": need 0 <= min <= max <= 10000"));
  }
  if (q.provider == "command" && q.command.find("{desired}") == std::string::npos) {
    diag.Error(node, Cat("queue ", q.queue, ": a command provider needs a command with {desired}"));
  }
  return q;
}

// The server's environment but its API token: neither a worker nor a provider command needs it,
// and what they start should not be able to read it.
std::vector<std::string> EnvironmentWithoutToken() {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!std::string_view(*e).starts_with("BARGE_TOKEN=")) env.emplace_back(*e);
  }
  return env;
}

// Starts `argv` with stdout and stderr appended to `log`; returns its pid. It stays in the
// server's process group: Ctrl-C on a `barge serve` in a terminal reaches its workers too, and
// with StopAll's SIGTERM that is the second signal that stops their tasks at once.
absl::StatusOr<pid_t> Start(ProcessLauncher& launcher, std::vector<std::string> argv,
                            std::string log) {
  return launcher.Start({.argv = std::move(argv),
                         .env = EnvironmentWithoutToken(),
                         .log_path = std::move(log),
                         .own_process_group = false});
}

constexpr int64_t kRespawnHoldMs = 10'000;

class LocalProvider : public WorkerProvider {
 public:
  LocalProvider(const QueueScaling& q, std::vector<std::string> argv, std::string log_dir,
                ProcessLauncher& launcher, Clock& clock)
      : queue_(q),
        argv_(std::move(argv)),
        log_dir_(std::move(log_dir)),
        launcher_(launcher),
        clock_(clock) {}
  ~LocalProvider() override { StopAll(); }

  absl::Status Scale(int desired, const std::vector<WorkerRecord>& workers,
                     const std::vector<std::string>& busy) override {
    int current = Current();  // reaps exited workers, noting one that stopped unasked
    if (!failure_.empty()) {
      // A worker that fails at once would fail again: report it instead of respawning in a loop.
      std::string failure = std::move(failure_);
      failure_.clear();
      hold_until_ = clock_.ElapsedMs() + kRespawnHoldMs;
      return absl::FailedPreconditionError(failure);
    }
    for (; current < desired && clock_.ElapsedMs() >= hold_until_; ++current) {
      std::vector<std::string> argv = argv_;
      argv.insert(argv.end(), {"--queue", queue_.queue, "--cpu", Cat(queue_.worker_cpu), "--memory",
                               Cat(queue_.worker_memory, "B"), "--drain-timeout", "24h"});
      if (!queue_.worker_labels.empty())
        argv.insert(argv.end(), {"--labels", queue_.worker_labels});
      RETURN_IF_ERROR(MakeDirs(log_dir_));
      ASSIGN_OR_RETURN(pid_t pid,
                       Start(launcher_, argv, Cat(log_dir_, "/worker-", queue_.queue, ".log")));
      children_[pid] = false;
    }
    if (current <= desired) return absl::OkStatus();
    // Stop idle workers only; a busy one is left to finish, and is asked on a later tick.
    std::string host = HostName();
    for (auto& [pid, draining] : children_) {
      if (current <= desired) break;
      if (draining) continue;
      bool is_busy = false;
      for (const WorkerRecord& w : workers) {
        if (w.host == host && w.pid == pid) {
          is_busy = std::find(busy.begin(), busy.end(), w.id) != busy.end();
        }
      }
      if (is_busy) continue;
      launcher_.Signal(pid, SIGTERM);  // drain: stop claiming, finish, deregister, exit
      draining = true;
      --current;
    }
    return absl::OkStatus();
  }

  int Current() override {
    Reap();
    return static_cast<int>(
        std::count_if(children_.begin(), children_.end(), [](const auto& c) { return !c.second; }));
  }

  void StopAll() override {
    for (auto& [pid, draining] : children_) {
      if (!draining) launcher_.Signal(pid, SIGTERM);
      draining = true;
    }
  }

 private:
  void Reap() {
    for (auto it = children_.begin(); it != children_.end();) {
      if (std::optional<int> status = launcher_.Reap(it->first, /*block=*/false)) {
        if (!it->second && !(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)) {
          failure_ = Cat("worker process ", it->first, " stopped unasked (status ", *status,
                         "); see ", log_dir_, "/worker-", queue_.queue, ".log");
        }
        it = children_.erase(it);
      } else {
        ++it;
      }
    }
  }

  QueueScaling queue_;
  std::vector<std::string> argv_;
  std::string log_dir_;
  ProcessLauncher& launcher_;
  Clock& clock_;
  std::map<pid_t, bool> children_;  // pid -> asked to drain
  std::string failure_;             // why a worker stopped that was not asked to
  int64_t hold_until_ = 0;          // no new workers before this (after a failed one)
};

class CommandProvider : public WorkerProvider {
 public:
  CommandProvider(const QueueScaling& q, ProcessLauncher& launcher)
      : queue_(q), launcher_(launcher) {}

  absl::Status Scale(int desired, const std::vector<WorkerRecord>&,
                     const std::vector<std::string>&) override {
    if (desired == sent_) return absl::OkStatus();
    std::string cmd =
        ReplaceAll(ReplaceAll(queue_.command, "{queue}", queue_.queue), "{desired}", Cat(desired));
    ASSIGN_OR_RETURN(pid_t pid, Start(launcher_, {"/bin/sh", "-c", cmd}, "/dev/stderr"));
    int status = launcher_.Reap(pid, /*block=*/true).value_or(-1);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      return absl::UnavailableError(
          Cat("scaling command for desired=", desired, " failed (status ", status, ")"));
    }
    sent_ = desired;
    return absl::OkStatus();
  }
  int Current() override { return std::max(0, sent_); }

 private:
  QueueScaling queue_;
  ProcessLauncher& launcher_;
  int sent_ = -1;  // the count the command last set (-1: never run)
};

}  // namespace

absl::StatusOr<std::vector<QueueScaling>> LoadAutoscaleConfig(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::ParserException& e) {
    return absl::InvalidArgumentError(
        Cat(path, ":", e.mark.line + 1, ":", e.mark.column + 1, ": malformed YAML: ", e.msg));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(Cat(path, ": ", e.what()));
  }
  YamlDiagnostics diag(path);
  std::vector<QueueScaling> out;
  if (!root.IsMap() || !root["queues"] || !root["queues"].IsSequence()) {
    diag.Error(SourceLocation{1, 1}, "expected a map with a list \"queues\"");
    return diag.ToStatus();
  }
  ForEachEntry(root, "autoscale", {"queues"}, diag,
               [&](const std::string&, const YAML::Node&, const YAML::Node& queues) {
                 for (const YAML::Node& n : queues) {
                   QueueScaling q = ParseQueue(n, diag);
                   for (const QueueScaling& other : out) {
                     if (other.queue == q.queue) {
                       diag.Error(n, Cat("queue ", q.queue, " given twice"));
                     }
                   }
                   out.push_back(std::move(q));
                 }
               });
  if (!diag.ok()) return diag.ToStatus();
  return out;
}

int64_t WorkersNeeded(const std::vector<TaskLoad>& load, double worker_cpu, int64_t worker_memory) {
  // First-fit decreasing over task groups: bins are workers' remaining (cpu, memory).
  std::vector<TaskLoad> groups;
  for (const TaskLoad& l : load) {
    if (l.state == "ready" || l.state == "running") groups.push_back(l);
  }
  std::sort(groups.begin(), groups.end(), [](const TaskLoad& a, const TaskLoad& b) {
    return std::tie(a.cpu, a.memory) > std::tie(b.cpu, b.memory);
  });
  std::vector<std::pair<double, int64_t>> bins;
  int64_t oversized = 0;
  constexpr int64_t kEnough = 100'000;  // more workers than any pool: stop packing
  for (const TaskLoad& g : groups) {
    for (int64_t n = 0; n < g.count; ++n) {
      if (g.cpu > worker_cpu + 1e-9 || (worker_memory > 0 && g.memory > worker_memory)) {
        ++oversized;
        continue;
      }
      bool placed = false;
      for (auto& [cpu, mem] : bins) {
        if (cpu + 1e-9 >= g.cpu && mem >= g.memory) {
          cpu -= g.cpu;
          mem -= g.memory;
          placed = true;
          break;
        }
      }
      if (!placed) {
        if (static_cast<int64_t>(bins.size()) >= kEnough) return kEnough;
        bins.push_back({worker_cpu - g.cpu, worker_memory - g.memory});
      }
    }
  }
  return static_cast<int64_t>(bins.size()) + oversized;
}

std::unique_ptr<WorkerProvider> NewLocalProvider(const QueueScaling& q,
                                                 std::vector<std::string> worker_argv,
                                                 std::string log_dir, ProcessLauncher& launcher,
                                                 Clock& clock) {
  return std::make_unique<LocalProvider>(q, std::move(worker_argv), std::move(log_dir), launcher,
                                         clock);
}

std::unique_ptr<WorkerProvider> NewCommandProvider(const QueueScaling& q,
                                                   ProcessLauncher& launcher) {
  return std::make_unique<CommandProvider>(q, launcher);
}

Autoscaler::Autoscaler(Telemetry& telemetry, FleetRegistry& fleet, std::vector<QueueScaling> queues,
                       std::map<std::string, std::unique_ptr<WorkerProvider>> providers,
                       Clock& clock)
    : telemetry_(telemetry),
      fleet_(fleet),
      queues_(std::move(queues)),
      providers_(std::move(providers)),
      clock_(clock) {}

Autoscaler::~Autoscaler() = default;

absl::Status Autoscaler::Tick() {
  absl::MutexLock lock(&mu_);
  if (int64_t started = clock_.ElapsedMs(); load_pacer_.Due(started)) {
    ASSIGN_OR_RETURN(load_, telemetry_.LoadByQueue());
    load_pacer_.Took(started, clock_.ElapsedMs());
  }
  const std::vector<TaskLoad>& load = load_;
  if (int64_t t = clock_.ElapsedMs(); t >= next_publish_) {
    std::vector<WorkerShape> shapes;
    for (const QueueScaling& q : queues_) {
      absl::StatusOr<Labels> labels = ParseLabels(q.worker_labels);
      shapes.push_back({.queue = q.queue,
                        .cpu = q.worker_cpu,
                        .memory = q.worker_memory,
                        .labels_json = DumpJson(nlohmann::json(labels.ok() ? *labels : Labels{})),
                        .max_workers = q.max,
                        .publisher = Cat(HostName(), ":", ::getpid())});
    }
    RETURN_IF_ERROR(WithContext(fleet_.PublishWorkerShapes(shapes), "publishing worker sizes"));
    next_publish_ = t + 60'000;
  }
  ASSIGN_OR_RETURN(std::vector<WorkerRecord> workers, fleet_.ListWorkers());
  ASSIGN_OR_RETURN(std::vector<std::string> busy, telemetry_.ListBusyWorkers());
  const int64_t now = clock_.ElapsedMs();
  absl::Status first_error;
  for (const QueueScaling& q : queues_) {
    std::vector<TaskLoad> mine;
    for (const TaskLoad& l : load) {
      if (l.queue == q.queue) mine.push_back(l);
    }
    std::vector<WorkerRecord> queue_workers;
    for (const WorkerRecord& w : workers) {
      if (w.queue == q.queue) queue_workers.push_back(w);
    }
    QueueState& st = state_[q.queue];
    WorkerProvider& provider = *providers_.at(q.queue);
    st.demand = WorkersNeeded(mine, q.worker_cpu, q.worker_memory);
    int want = static_cast<int>(std::clamp<int64_t>(st.demand, q.min, q.max));
    int current = provider.Current();
    if (want >= current) {
      st.desired = want;
      st.lower_since = 0;
    } else {
      // Scale in only once the lower demand has lasted `idle`.
      if (st.lower_since == 0) st.lower_since = now;
      st.desired = now - st.lower_since >= q.idle_ms ? want : current;
    }
    absl::Status s = provider.Scale(st.desired, queue_workers, busy);
    st.last_error = s.ok() ? "" : ToString(s.message());
    if (!s.ok() && first_error.ok()) first_error = WithContext(s, Cat("queue ", q.queue));
  }
  return first_error;
}

nlohmann::json Autoscaler::Status() {
  absl::MutexLock lock(&mu_);
  nlohmann::json queues = nlohmann::json::array();
  int64_t now = clock_.ElapsedMs();
  for (const QueueScaling& q : queues_) {
    const QueueState& st = state_[q.queue];
    queues.push_back({{"queue", q.queue},
                      {"provider", q.provider},
                      {"min", q.min},
                      {"max", q.max},
                      {"idle_ms", q.idle_ms},
                      {"worker_cpu", q.worker_cpu},
                      {"worker_memory", q.worker_memory},
                      {"demand", st.demand},
                      {"desired", st.desired},
                      {"current", providers_.at(q.queue)->Current()},
                      {"scale_in_pending_ms", st.lower_since > 0 ? now - st.lower_since : 0},
                      {"error", st.last_error}});
  }
  return {{"queues", queues}};
}

void Autoscaler::StopAll() {
  absl::MutexLock lock(&mu_);
  for (auto& [queue, provider] : providers_) provider->StopAll();
}

}  // namespace barge
