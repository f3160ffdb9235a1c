// barge runs, status, tasks, logs, cancel, cost, gc: reading and steering runs through the state
// store.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <thread>
#include <utility>

#include "cli/commands.h"
#include "common/fs.h"
#include "common/labels.h"
#include "common/redact.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/text.h"
#include "common/units.h"
#include "fleet/placement.h"
#include "gc/gc.h"
#include "nlohmann/json.hpp"
#include "objstore/stager.h"
#include "store/state_store.h"
#include "views/run_views.h"

namespace barge {
namespace {

int64_t Elapsed(const RunRecord& r, int64_t now) {
  return (r.finished_at > 0 ? r.finished_at : now) - r.created_at;
}

void PrintJson(const nlohmann::json& j) { std::printf("%s\n", DumpJson(j, 2).c_str()); }

// Runs `body` with an opened context, reporting its error if it fails. These commands look at
// or steer existing runs, so they never create a state store.
int InContext(const Locations& where, const std::function<absl::Status(Context&)>& body) {
  absl::StatusOr<std::unique_ptr<Context>> ctx = OpenContext(where, StoreMode::kExisting);
  if (!ctx.ok()) return ReportError(ctx.status());
  absl::Status s = body(**ctx);
  return s.ok() ? 0 : ReportError(s);
}

}  // namespace

int CmdRuns(const Locations& where, bool json, const RunFilter& filter) {
  return InContext(where, [&](Context& ctx) -> absl::Status {
    ASSIGN_OR_RETURN(std::vector<RunRecord> runs, ctx.store->ListRuns(filter));
    int64_t now = ctx.store->NowMs();
    if (json) {
      nlohmann::json out = nlohmann::json::array();
      for (const RunRecord& r : runs) out.push_back(RunJson(r, now));
      PrintJson(out);
      return absl::OkStatus();
    }
    std::printf("%-22s %-20s %-10s %-24s %s\n", "RUN", "PIPELINE", "STATE", "CREATED", "ELAPSED");
    for (const RunRecord& r : runs) {
      std::printf("%-22s %-20s %-10s %-24s %s\n", r.id.c_str(), r.pipeline.c_str(), r.state.c_str(),
                  IsoTime(r.created_at).c_str(), FormatDurationMs(Elapsed(r, now)).c_str());
    }
    return absl::OkStatus();
  });
}

int CmdStatus(const Locations& where, const std::string& run_arg, bool json) {
  return InContext(where, [&](Context& ctx) -> absl::Status {
    ASSIGN_OR_RETURN(std::string id, ResolveRunId(*ctx.store, run_arg));
    ASSIGN_OR_RETURN(RunRecord run, ctx.store->GetRun(id));
    ASSIGN_OR_RETURN(std::vector<StepRecord> steps, ctx.store->GetSteps(id));
    ASSIGN_OR_RETURN(std::vector<StepCounts> counts, ctx.store->CountTasks(id));
    std::map<std::string, StepCounts> by_step;
    for (const StepCounts& c : counts) by_step[c.step] = c;
    int64_t now = ctx.store->NowMs();
    ASSIGN_OR_RETURN(std::vector<Seat> seats, SeatsFor(run, *ctx.store));
    nlohmann::json steps_json = StepsJson(run, steps, counts, now, &seats);
    auto step_elapsed = [&](const StepRecord& s) -> int64_t {
      if (s.started_at == 0) return 0;
      return (s.finished_at > 0 ? s.finished_at : now) - s.started_at;
    };
    if (json) {
      nlohmann::json out = RunJson(run, now);
      out["steps"] = steps_json;
      PrintJson(out);
      return absl::OkStatus();
    }
    std::printf("run       %s\npipeline  %s\nstate     %s\ncreated   %s\nelapsed   %s\n",
                run.id.c_str(), run.pipeline.c_str(), run.state.c_str(),
                IsoTime(run.created_at).c_str(), FormatDurationMs(Elapsed(run, now)).c_str());
    if (!run.bundle.empty()) std::printf("bundle    %s\n", run.bundle.substr(0, 12).c_str());
    if (!run.error.empty()) std::printf("error     %s\n", run.error.c_str());
    std::printf("\n%-20s %-10s %8s %8s %8s %8s %8s %10s\n", "STEP", "STATE", "TASKS", "DONE",
                "RUNNING", "PENDING", "FAILED", "ELAPSED");
    for (const StepRecord& s : steps) {
      const StepCounts& c = by_step[s.name];
      std::printf("%-20s %-10s %8lld %8lld %8lld %8lld %8lld %10s\n", s.name.c_str(),
                  s.state.c_str(), static_cast<long long>(c.Total()),
                  static_cast<long long>(c.Done()), static_cast<long long>(c.running),
                  static_cast<long long>(c.pending), static_cast<long long>(c.failed),
                  FormatDurationMs(step_elapsed(s)).c_str());
    }
    for (const nlohmann::json& s : steps_json) {
      if (!s.contains("unplaceable")) continue;
      std::printf("\nstep %s: no live or configured worker can take its pending tasks: %s\n",
                  s["name"].get<std::string>().c_str(),
                  s["unplaceable"].get<std::string>().c_str());
    }
    return absl::OkStatus();
  });
}

int CmdTasks(const Locations& where, const TasksOptions& options) {
  // --state filtered by task state before it named the store everywhere: say so to an old script.
  for (const char* s : {"pending", "running", "succeeded", "failed", "cancelled"}) {
    if (where.state == s && !std::filesystem::exists(s)) {
      return ReportError(absl::InvalidArgumentError(
          Cat("--state ", s, ": --state names the state store; to list the ", s,
              " tasks use --only ", s)));
    }
  }
  return InContext(where, [&](Context& ctx) -> absl::Status {
    ASSIGN_OR_RETURN(std::string id, ResolveRunId(*ctx.store, options.run));
    TaskFilter filter{.run_id = id, .limit = options.limit};
    if (!options.step.empty()) filter.step = options.step;
    if (!options.only.empty()) filter.state = options.only;
    ASSIGN_OR_RETURN(std::vector<TaskRecord> tasks, ctx.store->ListTasks(filter));
    if (options.json) {
      nlohmann::json out = nlohmann::json::array();
      for (const TaskRecord& t : tasks) {
        out.push_back(TaskJson(t));
        if (options.attempts) {
          ASSIGN_OR_RETURN(std::vector<AttemptRecord> attempts, ctx.store->ListAttempts(t.key));
          nlohmann::json list = nlohmann::json::array();
          for (const AttemptRecord& a : attempts) list.push_back(AttemptJson(a));
          out.back()["attempt_history"] = std::move(list);
        }
      }
      PrintJson(out);
      return absl::OkStatus();
    }
    std::printf("%-20s %7s %-10s %8s %5s %9s  %s\n", "STEP", "INDEX", "STATE", "ATTEMPTS", "EXIT",
                "ELAPSED", "ERROR");
    for (const TaskRecord& t : tasks) {
      int64_t elapsed = t.finished_at > 0 && t.started_at > 0 ? t.finished_at - t.started_at : 0;
      std::printf("%-20s %7lld %-10s %8d %5s %9s  %s\n", t.key.step.c_str(),
                  static_cast<long long>(t.key.index), t.state.c_str(), t.attempt,
                  t.exit_code >= 0 ? std::to_string(t.exit_code).c_str() : "-",
                  elapsed > 0 ? FormatDurationMs(elapsed).c_str() : "-", t.error.c_str());
    }
    return absl::OkStatus();
  });
}

namespace {

// Writes `log` from byte `at` to what it holds now, advancing `at`. A piece of a live log that
// went away meanwhile (the whole log was uploaded) ends the pass early: the caller reopens.
absl::Status CopyLog(const AttemptLog& log, int64_t& at) {
  // A part at a time: a log may be far larger than memory.
  constexpr int64_t kPart = 1 << 20;
  while (at < log.size) {
    absl::StatusOr<std::string> part = log.read(at, std::min(kPart, log.size - at));
    if (absl::IsNotFound(part.status()) && log.live) break;
    if (!part.ok()) return part.status();
    if (part->empty()) break;  // cut short since it was opened
    if (std::fwrite(part->data(), 1, part->size(), stdout) != part->size()) {
      return absl::UnavailableError("writing the log to standard output failed");
    }
    at += static_cast<int64_t>(part->size());
  }
  std::fflush(stdout);
  return absl::OkStatus();
}

}  // namespace

int CmdLogs(const Locations& where, const std::string& run_arg, const std::string& step,
            int64_t index, int attempt, bool follow) {
  return InContext(where, [&](Context& ctx) -> absl::Status {
    ASSIGN_OR_RETURN(std::string id, ResolveRunId(*ctx.store, run_arg));
    const TaskKey key{id, step, index};
    if (!follow) {
      ASSIGN_OR_RETURN(AttemptLog log,
                       OpenAttemptLog(*ctx.store, *ctx.object_stores, key, attempt));
      int64_t at = 0;
      return CopyLog(log, at);
    }
    // Following: the attempt asked for (or the latest once there is one), until it ends and its
    // whole log is printed. A task that has not started yet is waited for.
    int64_t at = 0;
    bool told_waiting = false;
    for (;;) {
      absl::StatusOr<AttemptLog> log = OpenAttemptLog(*ctx.store, *ctx.object_stores, key, attempt);
      if (log.ok()) {
        attempt = log->attempt;  // keep to this attempt, even if a retry starts after it
        RETURN_IF_ERROR(CopyLog(*log, at));
        if (!log->live) return absl::OkStatus();
      } else if (absl::IsNotFound(log.status()) && attempt == 0) {
        if (!std::exchange(told_waiting, true)) {
          std::fprintf(stderr, "barge logs: %s; waiting\n",
                       ToString(log.status().message()).c_str());
        }
      } else if (!absl::IsUnavailable(log.status())) {
        return log.status();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  });
}

int CmdWorkers(const Locations& where, bool json) {
  return InContext(where, [&](Context& ctx) -> absl::Status {
    ASSIGN_OR_RETURN(std::vector<WorkerRecord> workers, ctx.store->ListWorkers());
    int64_t now = ctx.store->NowMs();
    if (json) {
      nlohmann::json out = nlohmann::json::array();
      for (const WorkerRecord& w : workers) out.push_back(WorkerJson(w, now));
      PrintJson(out);
      return absl::OkStatus();
    }
    std::printf("%-36s %-20s %8s %6s %10s %10s %-12s %s\n", "WORKER", "HOST", "PID", "CPU",
                "MEMORY", "HEARTBEAT", "QUEUE", "LABELS");
    for (const WorkerRecord& w : workers) {
      std::printf("%-36s %-20s %8lld %6g %10s %10s %-12s %s\n", w.id.c_str(), w.host.c_str(),
                  static_cast<long long>(w.pid), w.cpu, FormatBytes(w.memory).c_str(),
                  (FormatDurationMs(now - w.heartbeat_at) + " ago").c_str(), w.queue.c_str(),
                  CanonicalLabels(LabelsFromJson(w.labels_json)).c_str());
      if (!w.status.empty()) std::printf("  %s\n", w.status.c_str());
    }
    ASSIGN_OR_RETURN(std::vector<Unplaceable> stuck, FindUnplaceable(*ctx.store, *ctx.store));
    if (!stuck.empty()) std::printf("\nTasks no live or configured worker can take:\n");
    for (const Unplaceable& u : stuck) {
      std::printf("  run %s step %s: %lld pending: %s\n", u.run_id.c_str(), u.step.c_str(),
                  static_cast<long long>(u.count), u.why.c_str());
    }
    return absl::OkStatus();
  });
}

int CmdCancel(const Locations& where, const std::string& run_arg) {
  return InContext(where, [&](Context& ctx) -> absl::Status {
    ASSIGN_OR_RETURN(std::string id, ResolveRunId(*ctx.store, run_arg));
    ASSIGN_OR_RETURN(bool cancelled, ctx.store->CancelRun(id, "cancelled by barge cancel"));
    if (!cancelled) {
      ASSIGN_OR_RETURN(RunRecord run, ctx.store->GetRun(id));
      return absl::FailedPreconditionError(Cat("run ", id, " already ", run.state));
    }
    std::printf("%s cancelled\n", id.c_str());
    return absl::OkStatus();
  });
}

int CmdWait(const Locations& where, const std::string& run_arg, const std::string& every) {
  absl::StatusOr<int64_t> every_ms = ParseDurationMs(every);
  if (!every_ms.ok()) return ReportError(WithContext(every_ms.status(), "--every"));
  absl::StatusOr<std::unique_ptr<Context>> ctx = OpenContext(where, StoreMode::kExisting);
  if (!ctx.ok()) return ReportError(ctx.status());
  StateStore& store = *(*ctx)->store;
  absl::StatusOr<std::string> id = ResolveRunId(store, run_arg);
  if (!id.ok()) return ReportError(id.status());
  bool told_unavailable = false;
  for (;;) {
    absl::StatusOr<RunRecord> run = store.GetRun(*id);
    if (absl::IsUnavailable(run.status())) {
      if (!std::exchange(told_unavailable, true)) {
        std::fprintf(stderr, "barge wait: %s; still waiting\n",
                     MaskSecretsInText(ToString(run.status().message())).c_str());
      }
    } else if (!run.ok()) {
      return ReportError(run.status());
    } else if (run->state != state::kRunning) {
      std::fprintf(stderr, "%s %s in %s%s%s\n", run->id.c_str(), run->state.c_str(),
                   FormatDurationMs(Elapsed(*run, store.NowMs())).c_str(),
                   run->error.empty() ? "" : ": ", run->error.c_str());
      if (run->state == state::kSucceeded) return 0;
      return run->state == state::kCancelled ? 130 : 1;
    } else {
      told_unavailable = false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(std::max<int64_t>(10, *every_ms)));
  }
}

absl::StatusOr<Prices> ResolvePrices(const std::string& flag) {
  std::string path = flag;
  if (path.empty()) {
    const char* env = std::getenv("BARGE_PRICES");
    if (env != nullptr) path = env;
  }
  if (path.empty()) return DefaultPrices();
  return LoadPrices(path);
}

int CmdCost(const Locations& where, const std::string& run_arg, const std::string& prices_flag,
            bool json) {
  absl::StatusOr<Prices> prices = ResolvePrices(prices_flag);
  if (!prices.ok()) return ReportError(WithContext(prices.status(), "prices"));
  return InContext(where, [&](Context& ctx) -> absl::Status {
    ASSIGN_OR_RETURN(std::string id, ResolveRunId(*ctx.store, run_arg));
    ASSIGN_OR_RETURN(CostReport report, ComputeRunCost(*ctx.store, *ctx.store, id, *prices));
    if (json) {
      PrintJson(CostReportJson(report));
    } else {
      std::fputs(FormatCostReport(report).c_str(), stdout);
    }
    return absl::OkStatus();
  });
}

int CmdGc(const Locations& where, const std::string& older_than, bool dry_run, bool json) {
  absl::StatusOr<int64_t> age = ParseDurationMs(older_than);
  if (!age.ok()) return ReportError(WithContext(age.status(), "--older-than"));
  return InContext(where, [&](Context& ctx) -> absl::Status {
    GcOptions options{
        .finished_before = ctx.store->NowMs() - *age, .dry_run = dry_run, .scratch = ctx.scratch};
    const char* verb = dry_run ? "would delete" : "deleted";
    auto line = [&](const GcRun& gc) {
      if (json) return;
      std::printf("%s %s  %s  %s  finished %s  %lld files, %s\n", verb, gc.run.id.c_str(),
                  gc.run.pipeline.c_str(), gc.run.state.c_str(),
                  IsoTime(gc.run.finished_at).c_str(), static_cast<long long>(gc.objects),
                  FormatBytes(gc.bytes).c_str());
      std::fflush(stdout);
    };
    ASSIGN_OR_RETURN(GcReport report,
                     CollectGarbage(*ctx.store, *ctx.object_stores, options, line));
    if (json) {
      nlohmann::json runs = nlohmann::json::array();
      for (const GcRun& gc : report.runs) {
        runs.push_back({{"id", gc.run.id},
                        {"pipeline", gc.run.pipeline},
                        {"state", gc.run.state},
                        {"finished_at", IsoTime(gc.run.finished_at)},
                        {"objects", gc.objects},
                        {"bytes", gc.bytes}});
      }
      PrintJson({{"dry_run", dry_run},
                 {"runs", runs},
                 {"objects", report.objects},
                 {"bytes", report.bytes}});
    } else {
      std::printf("%s %zu runs finished before %s: %lld files, %s\n", verb, report.runs.size(),
                  IsoTime(options.finished_before).c_str(), static_cast<long long>(report.objects),
                  FormatBytes(report.bytes).c_str());
    }
    if (report.failures.empty()) return absl::OkStatus();
    for (size_t i = 0; i + 1 < report.failures.size(); ++i) ReportError(report.failures[i]);
    return report.failures.back();
  });
}

}  // namespace barge
