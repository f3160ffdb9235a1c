// barge run, validate, resume, retry, exec: the commands that run tasks.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "cli/commands.h"
#include "cli/progress.h"
#include "cli/signals.h"
#include "common/fs.h"
#include "common/labels.h"
#include "common/redact.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/units.h"
#include "container/runtime.h"
#include "engine/engine.h"
#include "fleet/placement.h"
#include "store/state_store.h"
#include "views/run_views.h"
#include "worker/worker.h"

namespace barge {
namespace {

constexpr int kMaxInfraFailures = 10;

int64_t MachineMemory() {
  return static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) *
         static_cast<int64_t>(sysconf(_SC_PAGE_SIZE));
}

int DefaultWorkers() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

// Every step must fit in the local pool, or it would wait forever.
absl::Status CheckFits(const Pipeline& p, int workers) {
  for (const Step& s : p.steps) {
    if (s.cpu > workers + 1e-9) {
      return absl::InvalidArgumentError(
          Cat(p.path, ":", s.location.line, ":", s.location.column, ": step \"", s.name,
              "\" needs ", s.cpu, " cpu but the local pool has ", workers, " (raise --workers)"));
    }
    if (s.memory_bytes > MachineMemory()) {
      return absl::InvalidArgumentError(
          Cat(p.path, ":", s.location.line, ":", s.location.column, ": step \"", s.name,
              "\" needs ", FormatBytes(s.memory_bytes), " of memory but this machine has ",
              FormatBytes(MachineMemory())));
    }
  }
  return absl::OkStatus();
}

// A run left to the fleet's workers (--detach, --workers 0) is checked against them: the live
// workers and the worker sizes autoscalers publish; with neither, nothing is checked (a warning).
absl::Status CheckFleetFits(FleetRegistry& fleet, const Pipeline& p) {
  ASSIGN_OR_RETURN(std::vector<Seat> seats, FleetSeats(fleet));
  std::string warning;
  RETURN_IF_ERROR(CheckPipelineSeats(p, seats, warning));
  if (!warning.empty()) std::fprintf(stderr, "barge: warning: %s\n", warning.c_str());
  return absl::OkStatus();
}

// Steps with an image need a container runtime on this machine when it runs them itself.
absl::Status CheckContainerRuntime(const Pipeline& p) {
  for (const Step& s : p.steps) {
    if (s.image.empty()) continue;
    absl::StatusOr<const ContainerRuntime*> runtime = DetectContainerRuntime();
    if (runtime.ok()) return absl::OkStatus();
    return absl::FailedPreconditionError(
        Cat(p.path, ":", s.image_location.line, ":", s.image_location.column, ": step ", s.name,
            " names an image, but this machine has no container runtime (podman or docker); "
            "install podman, or submit with --detach to a fleet whose workers have one"));
  }
  return absl::OkStatus();
}

// The labels of a worker on this machine: what it is, what it was given, and the container
// runtime it found (container=podman), which is what lets it take steps with an image.
Labels WorkerLabels(const Labels& given) {
  Labels labels = MachineLabels();
  if (absl::StatusOr<const ContainerRuntime*> runtime = DetectContainerRuntime(); runtime.ok()) {
    labels["container"] = (*runtime)->name;
  }
  Merge(labels, given);
  return labels;
}

// One per process that runs tasks, started before its runner and outliving it (process/reaper.h).
// Without one (it could not start), tasks still run, as before.
std::unique_ptr<TaskReaper> StartReaper() {
  absl::StatusOr<std::unique_ptr<TaskReaper>> reaper = TaskReaper::Start(SelfExecutable());
  if (reaper.ok()) return std::move(*reaper);
  std::fprintf(stderr, "barge: warning: %s; tasks may outlive this process if it is killed\n",
               ToString(reaper.status().message()).c_str());
  return nullptr;
}

int ExitCodeForRun(const RunRecord& run) {
  if (run.state == state::kSucceeded) return 0;
  if (run.state == state::kCancelled) return 130;
  return 1;
}

// Whether Ctrl-C on a command that follows `run` cancels the run, or only stops the command's
// own part: it cancels a run the command created, or one nobody else can be running (a local
// state store), or when asked (--cancel-on-interrupt). Otherwise (resume, retry or follow on a
// shared store) the fleet's workers carry on without this command.
bool InterruptCancelsRun(const Context& ctx, const DriveOptions& drive, bool created) {
  return created || !ctx.shared_state || drive.cancel_on_interrupt;
}

void TellInterrupted(const std::string& run_id, int sig, bool cancels, bool runs_tasks) {
  if (cancels) {
    std::fprintf(stderr, "\nbarge: %s: %scancelling the run\n", strsignal(sig),
                 runs_tasks ? "stopping tasks and " : "");
  } else {
    std::fprintf(stderr,
                 "\nbarge: %s: %sthe run goes on on the fleet's workers (`barge wait %s` follows "
                 "it, `barge cancel %s` stops it)\n",
                 strsignal(sig), runs_tasks ? "handing this machine's tasks back; " : "",
                 run_id.c_str(), run_id.c_str());
  }
}

// The end of a followed run, as barge run prints it; returns the exit code.
int ReportRunEnd(Context& ctx, const RunRecord& run) {
  int64_t elapsed = (run.finished_at > 0 ? run.finished_at : ctx.store->NowMs()) - run.created_at;
  std::printf("%s %s in %s\n", run.id.c_str(), run.state.c_str(),
              FormatDurationMs(elapsed).c_str());
  if (!run.error.empty()) std::fprintf(stderr, "barge: %s\n", run.error.c_str());
  if (run.state == state::kFailed) {
    std::fprintf(stderr, "barge: see `barge tasks %s --only failed` and `barge resume %s`\n",
                 run.id.c_str(), run.id.c_str());
  }
  return ExitCodeForRun(run);
}

// Follows `run_id` to its end, showing progress, while other workers run it (--workers 0).
int FollowRun(Context& ctx, const std::string& run_id, bool cancels) {
  Progress progress(*ctx.store, run_id, stderr);
  absl::Notification interrupted;
  int signal_seen = 0;
  SignalWatcher signals([&](int sig) {
    if (interrupted.HasBeenNotified()) return;
    signal_seen = sig;
    interrupted.Notify();
  });
  const absl::Duration tick = absl::Milliseconds(progress.interactive() ? 200 : 1'000);
  bool told_unavailable = false;
  for (;;) {
    if (interrupted.WaitForNotificationWithTimeout(tick)) {
      TellInterrupted(run_id, signal_seen, cancels, /*runs_tasks=*/false);
      if (!cancels) return 130;
      absl::StatusOr<bool> cancelled = ctx.store->CancelRun(run_id, "cancelled (interrupted)");
      if (!cancelled.ok()) return ReportError(cancelled.status());
      cancels = false;  // wait for the workers to stop the tasks, then report the end
    }
    absl::StatusOr<RunRecord> run = ctx.store->GetRun(run_id);
    if (absl::IsUnavailable(run.status())) {
      if (!std::exchange(told_unavailable, true)) {
        std::fprintf(stderr, "barge: %s; still following run %s\n",
                     MaskSecretsInText(ToString(run.status().message())).c_str(), run_id.c_str());
      }
      continue;
    }
    if (!run.ok()) return ReportError(WithContext(run.status(), Cat("run ", run_id)));
    told_unavailable = false;
    progress.Update();
    if (IsFinalRunState(run->state)) {
      progress.Finish();
      return ReportRunEnd(ctx, *run);
    }
  }
}

// Drives `run_id` to its end with a local pool of `drive.workers` slots (none: follows it),
// showing progress. `created`: this command created the run. Returns the exit code.
int DriveRun(Context& ctx, const std::string& run_id, const DriveOptions& drive, bool created) {
  const bool cancels = InterruptCancelsRun(ctx, drive, created);
  if (drive.workers == 0) return FollowRun(ctx, run_id, cancels);
  absl::StatusOr<int64_t> lease_ms = ParseDurationMs(drive.lease);
  if (!lease_ms.ok()) return ReportError(WithContext(lease_ms.status(), "--lease"));
  Engine engine(*ctx.store, *ctx.object_stores);
  std::unique_ptr<TaskReaper> reaper = StartReaper();
  PosixProcessRunner runner(reaper.get());
  Progress progress(*ctx.store, run_id, stderr);
  WorkerOptions options;
  options.id = NewWorkerId();
  options.cpu = drive.workers > 0 ? drive.workers : DefaultWorkers();
  options.memory = MachineMemory();
  options.run_id = run_id;
  // Shown by `barge workers` (a driver's pool takes any task of its run). The runtime is looked
  // for only when the run has a step with an image: it costs a few of its commands.
  options.labels = MachineLabels();
  if (absl::StatusOr<RunRecord> run = ctx.store->GetRun(run_id); run.ok()) {
    if (absl::StatusOr<std::shared_ptr<const Pipeline>> p = engine.PipelineFor(*run); p.ok()) {
      if (std::any_of((*p)->steps.begin(), (*p)->steps.end(),
                      [](const Step& s) { return !s.image.empty(); })) {
        options.labels = WorkerLabels({});
      }
    }
  }
  options.scratch_dir = ctx.scratch;
  options.lease_ms = *lease_ms;
  options.heartbeat_ms = std::clamp<int64_t>(*lease_ms / 3, 100, 2'000);
  options.max_infra_failures = kMaxInfraFailures;
  options.tick_ms = progress.interactive() ? 200 : 1'000;
  options.on_tick = [&] { progress.Update(); };
  if (ctx.shared_state) {
    std::fprintf(stderr,
                 "barge: a local pool of %g cpu runs tasks of run %s alongside the fleet's "
                 "workers (--workers 0: leave them to the fleet)\n",
                 options.cpu, run_id.c_str());
  }
  StateStore& store = *ctx.store;
  Worker worker(/*runs=*/store, /*queue=*/store, /*fleet=*/store, engine, runner, options);
  absl::StatusOr<RunRecord> final_run;
  std::atomic<bool> handed_back{false};
  {
    SignalWatcher signals([&](int sig) {
      if (handed_back.exchange(true)) return;
      TellInterrupted(run_id, sig, cancels, /*runs_tasks=*/true);
      if (cancels) {
        worker.RequestStop();
      } else {
        worker.RequestDrain(0);  // stop this pool's tasks now; their leases go back unchanged
      }
    });
    final_run = worker.Run();
  }
  if (!final_run.ok()) return ReportError(WithContext(final_run.status(), Cat("run ", run_id)));
  progress.Finish();
  if (handed_back && !cancels) return 130;
  return ReportRunEnd(ctx, *final_run);
}

absl::StatusOr<Pipeline> LoadChecked(const std::string& file,
                                     const std::vector<std::string>& param_flags,
                                     ObjectStores& stores) {
  ASSIGN_OR_RETURN(ParamOverrides params, ParseParamFlags(param_flags));
  ASSIGN_OR_RETURN(Pipeline p, LoadPipeline(file, params));
  RETURN_IF_ERROR(CheckInputs(p, stores));
  RETURN_IF_ERROR(CheckSql(p));
  return p;
}

}  // namespace

int CmdValidate(const std::string& file, const std::vector<std::string>& params) {
  ObjectStores stores;
  absl::StatusOr<Pipeline> p = LoadChecked(file, params, stores);
  if (!p.ok()) return ReportError(p.status());
  if (absl::Status s = CheckContainerRuntime(*p); !s.ok()) return ReportError(s);
  int64_t fanouts = 0;
  for (const Step& s : p->steps) fanouts += s.foreach.kind != ForeachKind::kNone ? 1 : 0;
  std::printf("%s: ok: pipeline %s, %zu steps (%lld fan out)\n", file.c_str(), p->name.c_str(),
              p->steps.size(), static_cast<long long>(fanouts));
  return 0;
}

int CmdRun(const Locations& where, const RunOptions& options) {
  // The stores that list the inputs are the run's: one set for the whole command.
  auto stores = std::make_unique<ObjectStores>();
  absl::StatusOr<Pipeline> p = LoadChecked(options.pipeline, options.params, *stores);
  if (!p.ok()) return ReportError(p.status());
  // A local pool checks the pipeline against this machine; a run left to workers elsewhere
  // (--detach, --workers 0) against the fleet it goes to, once the store is open.
  const bool runs_here = !options.drive.detach && options.drive.workers != 0;
  if (runs_here) {
    int workers = options.drive.workers > 0 ? options.drive.workers : DefaultWorkers();
    if (absl::Status s = CheckFits(*p, workers); !s.ok()) return ReportError(s);
    if (absl::Status s = CheckContainerRuntime(*p); !s.ok()) return ReportError(s);
  }
  absl::StatusOr<std::unique_ptr<Context>> ctx =
      OpenContext(where, StoreMode::kCreate, std::move(stores));
  if (!ctx.ok()) return ReportError(ctx.status());
  if (!runs_here) {
    absl::Status fits = CheckFleetFits(*(*ctx)->store, *p);
    if (!fits.ok()) return ReportError(fits);
  }
  absl::StatusOr<int64_t> bundle_max = ParseSizeBytes(options.bundle_max);
  if (!bundle_max.ok()) return ReportError(WithContext(bundle_max.status(), "--bundle-max"));
  absl::StatusOr<Shipment> shipped = Ship(**ctx, *p, *bundle_max);
  if (!shipped.ok()) return ReportError(shipped.status());
  Engine engine(*(*ctx)->store, *(*ctx)->object_stores);
  absl::StatusOr<std::string> id = engine.CreateRun(
      *p, (*ctx)->root, "", {.bundle = shipped->bundle, .uploads_json = shipped->uploads_json});
  if (!id.ok()) return ReportError(id.status());
  if (options.drive.detach) {
    absl::StatusOr<RunRecord> run = engine.Advance(*id);
    if (!run.ok()) return ReportError(run.status());
    std::printf("%s\n", id->c_str());
    return 0;
  }
  std::printf("run %s\n", id->c_str());
  std::fflush(stdout);
  return DriveRun(**ctx, *id, options.drive, /*created=*/true);
}

int CmdResume(const Locations& where, const std::string& run_arg, const DriveOptions& drive,
              bool failed_only) {
  absl::StatusOr<std::unique_ptr<Context>> ctx = OpenContext(where, StoreMode::kExisting);
  if (!ctx.ok()) return ReportError(ctx.status());
  StateStore& store = *(*ctx)->store;
  absl::StatusOr<std::string> id = ResolveRunId(store, run_arg);
  if (!id.ok()) return ReportError(id.status());
  absl::StatusOr<RunRecord> run = store.GetRun(*id);
  if (!run.ok()) return ReportError(run.status());
  if (run->state == state::kSucceeded) {
    std::printf("%s already succeeded\n", id->c_str());
    return 0;
  }
  // Tasks leased by a driver on this host that is gone are released now, not after their lease.
  absl::StatusOr<int64_t> released = ReleaseDeadLocalWorkers(store, store, kMaxInfraFailures);
  if (!released.ok()) return ReportError(released.status());
  absl::StatusOr<int64_t> requeued = RequeueRun(store, *id, failed_only);
  if (!requeued.ok()) return ReportError(requeued.status());
  std::fprintf(stderr, "barge: %s: re-queued %lld tasks, released %lld from lost workers\n",
               failed_only ? "retry" : "resume", static_cast<long long>(*requeued),
               static_cast<long long>(*released));
  if (drive.detach) {
    std::printf("%s\n", id->c_str());
    return 0;
  }
  std::printf("run %s\n", id->c_str());
  std::fflush(stdout);
  return DriveRun(**ctx, *id, drive, /*created=*/false);
}

int CmdWorker(const Locations& where, const WorkerCommandOptions& options) {
  absl::StatusOr<int64_t> lease_ms = ParseDurationMs(options.lease);
  if (!lease_ms.ok()) return ReportError(WithContext(lease_ms.status(), "--lease"));
  absl::StatusOr<int64_t> drain_ms = ParseDurationMs(options.drain_timeout);
  if (!drain_ms.ok()) return ReportError(WithContext(drain_ms.status(), "--drain-timeout"));
  int64_t memory = MachineMemory();
  if (!options.memory.empty()) {
    absl::StatusOr<int64_t> m = ParseSizeBytes(options.memory);
    if (!m.ok()) return ReportError(WithContext(m.status(), "--memory"));
    memory = *m;
  }
  if (!IsValidLabelText(options.queue)) {
    return ReportError(absl::InvalidArgumentError(
        Cat("--queue \"", options.queue, "\": use 1-63 letters, digits, '_', '-', '.' or '/'")));
  }
  absl::StatusOr<Labels> labels = ParseLabels(options.labels);
  if (!labels.ok()) return ReportError(WithContext(labels.status(), "--labels"));
  absl::StatusOr<std::unique_ptr<Context>> ctx = OpenContext(where);
  if (!ctx.ok()) return ReportError(ctx.status());
  StateStore& store = *(*ctx)->store;
  Engine engine(store, *(*ctx)->object_stores);
  std::unique_ptr<TaskReaper> reaper = StartReaper();
  PosixProcessRunner runner(reaper.get());
  WorkerOptions wo;
  wo.queue = options.queue;
  wo.labels = WorkerLabels(*labels);
  wo.id = NewWorkerId();
  wo.cpu = options.cpu > 0 ? options.cpu : DefaultWorkers();
  wo.memory = memory;
  wo.scratch_dir = (*ctx)->scratch;
  wo.lease_ms = *lease_ms;
  wo.heartbeat_ms = std::clamp<int64_t>(*lease_ms / 3, 100, 10'000);
  wo.idle_poll_ms = 250;
  wo.max_infra_failures = kMaxInfraFailures;
  Worker worker(/*runs=*/store, /*queue=*/store, /*fleet=*/store, engine, runner, wo);
  std::fprintf(stderr, "barge worker %s: %g cpu, %s, lease %s, queue %s, labels %s, serving %s\n",
               wo.id.c_str(), wo.cpu, FormatBytes(wo.memory).c_str(),
               FormatDurationMs(wo.lease_ms).c_str(), wo.queue.c_str(),
               CanonicalLabels(wo.labels).c_str(),
               (*ctx)->state_url.find("://") != std::string::npos ? "a shared state store"
                                                                  : (*ctx)->state_url.c_str());
  absl::StatusOr<RunRecord> done;
  {
    int signals_seen = 0;
    SignalWatcher signals([&](int sig) {
      // The first signal is a spot interruption notice: drain. A second one: stop now.
      int64_t timeout = ++signals_seen == 1 ? *drain_ms : 0;
      std::fprintf(stderr, "barge worker: %s: draining (%s)\n", strsignal(sig),
                   FormatDurationMs(timeout).c_str());
      worker.RequestDrain(timeout);
    });
    done = worker.Run();
  }
  if (!done.ok()) return ReportError(WithContext(done.status(), Cat("worker ", wo.id)));
  std::fprintf(stderr, "barge worker %s: stopped\n", wo.id.c_str());
  return 0;
}

int CmdExec(const Locations& where, const std::string& run_arg, const std::string& step,
            int64_t index, bool keep) {
  absl::StatusOr<std::unique_ptr<Context>> ctx = OpenContext(where, StoreMode::kExisting);
  if (!ctx.ok()) return ReportError(ctx.status());
  StateStore& store = *(*ctx)->store;
  auto body = [&]() -> absl::StatusOr<int> {
    ASSIGN_OR_RETURN(std::string id, ResolveRunId(store, run_arg));
    ASSIGN_OR_RETURN(RunRecord run, store.GetRun(id));
    ASSIGN_OR_RETURN(TaskRecord task, store.GetTask({id, step, index}));
    Engine engine(store, *(*ctx)->object_stores);
    ASSIGN_OR_RETURN(std::shared_ptr<const Pipeline> pipeline, engine.PipelineFor(run));
    ASSIGN_OR_RETURN(std::vector<StepRecord> steps, store.GetSteps(id));
    std::string shared = "[]";
    for (const StepRecord& s : steps) {
      if (s.name == step) shared = s.inputs_json;
    }
    int attempt = std::max(1, task.attempt);
    // A fresh directory of its own: outputs and working directory, never the run's.
    std::string dir = Cat((*ctx)->scratch, "/exec/", id, "-", step, "-", index, "-", store.NowMs());
    AttemptPaths paths;
    paths.root = run.root;  // where the run's bundle is fetched from
    paths.bundle_cache = Cat((*ctx)->scratch, "/.bundles");
    paths.output_dir = dir + "/out";
    paths.scratch_dir = dir + "/work";
    paths.log_path = "/dev/stdout";
    paths.manifest_path = dir + "/manifest.json";
    ASSIGN_OR_RETURN(ResolvedTask resolved,
                     ResolveTask(*pipeline, run, task, shared, attempt, paths));
    ImagePins pins(store);
    pins.Pin(task.key, resolved);
    std::printf("# barge exec: run %s, step %s, task %lld (attempt %d as recorded)\n", id.c_str(),
                step.c_str(), static_cast<long long>(index), attempt);
    // Printed masked (common/redact.h): the values of the pipeline's secrets wherever they
    // appear, and secret-looking text; the task gets every value unchanged.
    Redactor redact;
    for (const std::string& secret : pipeline->SecretValues()) redact.AddWithQuotedForms(secret);
    std::printf("# command:\n");
    for (const std::string& a : resolved.argv) {
      std::printf("#   %s\n", MaskSecretsInText(redact(a)).c_str());
    }
    std::printf("# environment:\n");
    for (const auto& [k, v] : resolved.env) {
      std::string shown =
          pipeline->IsSecret(k) ? std::string(kRedacted) : MaskEnvValue(k, redact(v));
      std::printf("#   %s=%s\n", k.c_str(), shown.c_str());
    }
    if (!resolved.bundle.empty()) {
      std::printf("# code bundle: %s (the run's, as submitted)\n", resolved.bundle.c_str());
    }
    if (!resolved.image.empty() || !resolved.image_error.empty()) {
      std::printf("# image: %s\n", resolved.image_error.empty() ? resolved.image.c_str()
                                                                : resolved.image_error.c_str());
    }
    std::printf("# inputs (%zu):\n", resolved.inputs.size());
    for (const std::string& in : resolved.inputs) std::printf("#   %s\n", in.c_str());
    std::printf("# working directory: %s\n# output directory: %s\n", paths.scratch_dir.c_str(),
                paths.output_dir.c_str());
    std::fflush(stdout);
    std::unique_ptr<TaskReaper> reaper = StartReaper();
    PosixProcessRunner runner(reaper.get());
    CancelToken cancel;
    AttemptOutcome outcome =
        RunAttempt(runner, *(*ctx)->object_stores, resolved, paths, cancel, keep);
    std::fflush(stdout);
    if (!outcome.Succeeded()) {
      std::fprintf(stderr, "# task failed: %s\n", MaskSecretsInText(outcome.error).c_str());
      if (outcome.infra_failure) return 3;
      return outcome.process.exit_code > 0 ? outcome.process.exit_code : 1;
    }
    std::fprintf(stderr, "# task succeeded: %lld bytes of output in %s\n",
                 static_cast<long long>(outcome.bytes_out), paths.output_dir.c_str());
    return 0;
  };
  absl::StatusOr<int> code = body();
  if (!code.ok()) return ReportError(code.status());
  return *code;
}

}  // namespace barge
