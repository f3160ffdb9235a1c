#include "worker/worker.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <set>

#include "common/clock.h"
#include "common/redact.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/text.h"
#include "common/units.h"
#include "nlohmann/json.hpp"
#include "objstore/object_store.h"
#include "worker/policy.h"

namespace barge {

std::string NewWorkerId() {
  std::mt19937 rng(std::random_device{}());
  return fmt::format("{}-{}-{:04x}", HostName(), ::getpid(), rng() & 0xffff);
}

absl::StatusOr<int64_t> ReleaseDeadLocalWorkers(FleetRegistry& fleet, TaskQueue& queue,
                                                int max_infra_failures) {
  ASSIGN_OR_RETURN(std::vector<WorkerRecord> workers, fleet.ListWorkers());
  std::string host = HostName();
  int64_t released = 0;
  for (const WorkerRecord& w : workers) {
    if (w.host != host || LocalProcessAlive(w.pid, w.pid_start)) continue;
    ASSIGN_OR_RETURN(int64_t n, queue.ReleaseWorker(w.id,
                                                    Cat("worker ", w.id, " is gone (process ",
                                                        w.pid, " on ", host, " no longer exists)"),
                                                    max_infra_failures, state::kLost));
    released += n;
  }
  return released;
}

Worker::Worker(RunStore& runs, TaskQueue& queue, FleetRegistry& fleet, Engine& engine,
               ProcessRunner& runner, WorkerOptions options)
    : runs_(runs),
      queue_(queue),
      fleet_(fleet),
      engine_(engine),
      runner_(runner),
      pins_(runs),
      options_(std::move(options)),
      clock_(options_.clock != nullptr ? *options_.clock : system_clock_),
      rng_(std::random_device{}()) {}

Worker::~Worker() {
  for (auto& [key, r] : running_) {
    r.cancel->Cancel();
    if (r.thread.joinable()) r.thread.join();
  }
}

void Worker::CancelRunning() {
  for (auto& [key, r] : running_) r.cancel->Cancel();
}

void Worker::RequestDrain(int64_t timeout_ms) {
  absl::MutexLock lock(&mu_);
  int64_t deadline = clock_.ElapsedMs() + std::max<int64_t>(0, timeout_ms);
  if (drain_deadline_asked_ < 0 || deadline < drain_deadline_asked_) {
    drain_deadline_asked_ = deadline;
  }
  ++drain_asks_;
}

void Worker::RequestStop() {
  absl::MutexLock lock(&mu_);
  stop_requested_ = true;
}

absl::StatusOr<Worker::RunContext*> Worker::ContextFor(const std::string& run_id) {
  auto it = contexts_.find(run_id);
  if (it != contexts_.end()) return &it->second;
  RunContext ctx;
  ASSIGN_OR_RETURN(ctx.run, runs_.GetRun(run_id));
  ASSIGN_OR_RETURN(ctx.pipeline, engine_.PipelineFor(ctx.run));
  return &contexts_.emplace(run_id, std::move(ctx)).first->second;
}

absl::Status Worker::Dispatch(TaskRecord task) {
  ASSIGN_OR_RETURN(RunContext * ctx, ContextFor(task.key.run_id));
  auto shared = ctx->shared_inputs.find(task.key.step);
  if (shared == ctx->shared_inputs.end()) {
    ASSIGN_OR_RETURN(std::vector<StepRecord> steps, runs_.GetSteps(task.key.run_id));
    // A step's shared inputs are fixed when it starts; steps not started yet are not cached.
    for (const StepRecord& s : steps) {
      if (s.started_at > 0) ctx->shared_inputs[s.name] = s.inputs_json;
    }
    shared = ctx->shared_inputs.find(task.key.step);
  }
  Running r;
  r.paths = PathsFor(ctx->run.root, options_.scratch_dir, task.key, task.attempt);
  ASSIGN_OR_RETURN(ResolvedTask resolved,
                   ResolveTask(*ctx->pipeline, ctx->run, task,
                               shared == ctx->shared_inputs.end() ? "[]" : shared->second,
                               task.attempt, r.paths));
  r.cancel = std::make_unique<CancelToken>();
  r.task = std::move(task);
  used_cpu_ += r.task.cpu;
  used_memory_ += r.task.memory;
  TaskKey key = r.task.key;
  const CancelToken* cancel = r.cancel.get();
  AttemptPaths paths = r.paths;
  auto [it, inserted] = running_.emplace(key, std::move(r));
  it->second.thread = std::thread([this, key, cancel, paths, resolved = std::move(resolved)] {
    AttemptOutcome outcome;
    try {
      ResolvedTask pinned = resolved;
      pins_.Pin(key, pinned);  // here, not in the loop: it may pull the image
      outcome = RunAttempt(runner_, engine_.object_stores(), pinned, paths, *cancel);
    } catch (const std::exception& e) {
      // Whatever it was (something the task wrote that barge misread), it fails this attempt as
      // the task's own failure, charged to its retries: never the process, never retried forever.
      outcome = AttemptOutcome{};
      outcome.error = Cat("barge could not run the attempt: ", ShowBytes(e.what()));
    }
    absl::MutexLock lock(&mu_);
    finished_.push_back({key, std::move(outcome)});
  });
  return absl::OkStatus();
}

absl::Status Worker::CommitFinished(std::vector<Finished> finished) {
  std::vector<Completion> batch;
  // The clock (a round trip on PostgreSQL) only dates retries: read it only for a failure.
  bool any_failed = std::any_of(finished.begin(), finished.end(),
                                [](const Finished& f) { return !f.outcome.Succeeded(); });
  int64_t now = any_failed ? runs_.NowMs() : 0;
  for (Finished& f : finished) {
    auto it = running_.find(f.key);
    if (it == running_.end()) continue;
    Running& r = it->second;
    if (r.thread.joinable()) r.thread.join();
    used_cpu_ -= r.task.cpu;
    used_memory_ -= r.task.memory;
    bool revoked = r.cancel->cancelled();
    if (!revoked) {
      ASSIGN_OR_RETURN(RunContext * ctx, ContextFor(r.task.key.run_id));
      const Step* step = ctx->pipeline->FindStep(r.task.key.step);
      if (step == nullptr) return absl::InternalError(Cat("no step ", r.task.key.step));
      Completion c =
          DecideCompletion(r.task, *step, f.outcome, now, options_.max_infra_failures, rng_);
      c.worker_id = options_.id;
      c.log_path = r.paths.kept_log();
      c.output_path = r.paths.kept_outputs();
      dirty_runs_.insert(r.task.key.run_id);
      NoteOutcome(c);
      batch.push_back(std::move(c));
    }
    running_.erase(it);
  }
  // Completions wait here until the store takes them: a store that is briefly unreachable loses
  // no result, and a late one is fenced if the lease moved on meanwhile.
  for (Completion& c : batch) unsent_.push_back(std::move(c));
  if (unsent_.empty()) return absl::OkStatus();
  RETURN_IF_ERROR(queue_.Complete(unsent_).status());
  unsent_.clear();
  return absl::OkStatus();
}

absl::Status Worker::Tolerate(const absl::Status& status) {
  if (status.ok()) backoff_ms_ = 0;
  if (status.ok() || !absl::IsUnavailable(status)) return status;
  backoff_ms_ = std::clamp<int64_t>(backoff_ms_ * 2, 100, 5'000);
  std::fprintf(stderr, "barge worker %s: state store unavailable, retrying in %s: %s\n",
               options_.id.c_str(), FormatDurationMs(backoff_ms_).c_str(),
               ToString(status.message()).c_str());
  return absl::OkStatus();
}

absl::Status Worker::HeartbeatAndRevoke() {
  absl::StatusOr<std::vector<TaskKey>> beat = queue_.Heartbeat(options_.id, options_.lease_ms);
  if (!beat.ok()) {
    if (clock_.ElapsedMs() - last_heartbeat_ok_ > options_.lease_ms) {
      // Our leases have expired by now: others may run these tasks. Stop ours.
      CancelRunning();
    }
    return beat.status();
  }
  last_heartbeat_ok_ = clock_.ElapsedMs();
  // The worker's S3 traffic, for the server's metrics; written only when it changed.
  nlohmann::json stats = engine_.object_stores().Counters();
  if (std::string text = DumpJson(stats); text != reported_stats_) {
    if (fleet_.ReportWorkerStats(options_.id, text).ok()) reported_stats_ = text;
  }
  std::vector<TaskKey>& held = *beat;
  std::sort(held.begin(), held.end());
  for (auto& [key, r] : running_) {
    if (!std::binary_search(held.begin(), held.end(), key)) r.cancel->Cancel();
  }
  return absl::OkStatus();
}

constexpr std::string_view kDriverQueuePrefix = "run:";

std::string DriverQueue(const std::string& run_id) { return Cat(kDriverQueuePrefix, run_id); }

std::string DriverPoolRun(const WorkerRecord& worker) {
  if (!worker.queue.starts_with(kDriverQueuePrefix)) return "";
  return worker.queue.substr(kDriverQueuePrefix.size());
}

void Worker::ReportStatus(const std::string& status) {
  if (status == reported_status_) return;
  // Best effort: the registry is a display; a store that is down is retried by the next call.
  if (fleet_.SetWorkerStatus(options_.id, status).ok()) reported_status_ = status;
}

void Worker::NoteOutcome(const Completion& c) {
  if (options_.run_id) return;
  if (!c.infra_failure) {
    infra_streak_ = 0;
    quarantine_ms_ = 0;
    if (probation_) {
      probation_ = false;
      std::fprintf(stderr, "barge worker %s: an attempt ran cleanly; out of quarantine\n",
                   options_.id.c_str());
    }
    return;
  }
  ++infra_streak_;
  last_infra_error_ = MaskSecretsInText(c.error);
  std::fprintf(stderr,
               "barge worker %s: attempt %d of %s[%lld] (run %s) failed for an infrastructure "
               "reason: %s\n",
               options_.id.c_str(), c.attempt, c.key.step.c_str(),
               static_cast<long long>(c.key.index), c.key.run_id.c_str(),
               last_infra_error_.c_str());
  // Several failures committed together count once: a quarantine is not lengthened from inside.
  if (infra_streak_ < options_.quarantine_after || quarantine_until_ >= 0) return;
  constexpr int64_t kMaxQuarantineMs = 10 * 60 * 1000;
  quarantine_ms_ =
      quarantine_ms_ == 0 ? options_.quarantine_ms : std::min(quarantine_ms_ * 2, kMaxQuarantineMs);
  quarantine_until_ = clock_.ElapsedMs() + quarantine_ms_;
  probation_ = true;
  std::string why =
      Cat(infra_streak_,
          " attempts in a row failed for infrastructure reasons; last: ", last_infra_error_);
  std::fprintf(stderr, "barge worker %s: quarantined for %s, claiming nothing: %s\n",
               options_.id.c_str(), FormatDurationMs(quarantine_ms_).c_str(), why.c_str());
  ReportStatus(Cat("quarantined until ", IsoTime(runs_.NowMs() + quarantine_ms_), ": ", why));
}

bool Worker::MayClaim() {
  if (quarantine_until_ >= 0) {
    if (clock_.ElapsedMs() < quarantine_until_) return false;
    quarantine_until_ = -1;
    std::fprintf(stderr, "barge worker %s: quarantine over; taking one task at a time\n",
                 options_.id.c_str());
    ReportStatus(
        Cat("on probation after quarantine (", last_infra_error_, "): one task at a time"));
  }
  if (probation_) {
    if (!running_.empty()) return false;
  } else if (!reported_status_.empty()) {
    ReportStatus("");
  }
  return true;
}

absl::StatusOr<std::vector<TaskRecord>> Worker::ClaimWhatFits() {
  double free_cpu = options_.cpu - used_cpu_;
  if (free_cpu < 1e-9 || !MayClaim()) return std::vector<TaskRecord>{};
  ClaimRequest req;
  req.worker_id = options_.id;
  req.run_id = options_.run_id;
  req.free_cpu = free_cpu;
  req.free_memory = options_.memory > 0 ? options_.memory - used_memory_ : INT64_MAX / 2;
  req.max_tasks = probation_ ? 1 : std::max(1, static_cast<int>(free_cpu + 0.999));
  req.lease_ms = options_.lease_ms;
  if (!options_.run_id) {
    req.queue = options_.queue;
    req.accepts = accepts_;
  }
  return queue_.Claim(req);
}

absl::Status Worker::AdvanceRuns(bool all_running) {
  if (options_.run_id) {
    ASSIGN_OR_RETURN(driven_run_, engine_.Advance(*options_.run_id));
    return absl::OkStatus();
  }
  // Fleet mode: the worker that completes a task advances its run, so runs make progress with
  // no driver alive. Now and then it also advances every running run, in case the worker that
  // finished a step died before advancing it.
  std::set<std::string> runs;
  runs.swap(dirty_runs_);
  if (all_running) {
    ASSIGN_OR_RETURN(std::vector<RunRecord> running,
                     runs_.ListRuns({.state = std::string(state::kRunning)}));
    for (const RunRecord& r : running) runs.insert(r.id);
  }
  for (const std::string& id : runs) {
    absl::StatusOr<RunRecord> run = engine_.Advance(id);
    absl::Status s = run.status();
    if (absl::IsUnavailable(s)) return s;  // the store: the caller backs off and comes back
    if (!s.ok()) {
      // One run that cannot be advanced must not stop this worker from serving the others.
      std::fprintf(stderr, "barge worker %s: advancing run %s: %s\n", options_.id.c_str(),
                   id.c_str(), ToString(s.message()).c_str());
    }
    if (run.ok() && IsFinalRunState(run->state)) ForgetRun(id);
  }
  // What the sweep did not find running has ended, here or elsewhere: forget it too.
  if (all_running) {
    std::vector<std::string> ended;
    for (const auto& [id, ctx] : contexts_) {
      if (!runs.contains(id)) ended.push_back(id);
    }
    for (const std::string& id : ended) ForgetRun(id);
  }
  return absl::OkStatus();
}

void Worker::ForgetRun(const std::string& run_id) {
  for (const auto& [key, r] : running_) {
    if (key.run_id == run_id) return;  // its tasks still finish here
  }
  contexts_.erase(run_id);
}

absl::Status Worker::Register() {
  WorkerRecord self;
  self.id = options_.id;
  self.host = HostName();
  self.pid = ::getpid();
  self.pid_start = ProcessStartTime(self.pid);
  self.cpu = options_.cpu;
  self.memory = options_.memory;
  self.labels_json = DumpJson(nlohmann::json(options_.labels));
  self.queue = options_.run_id ? DriverQueue(*options_.run_id) : options_.queue;
  accepts_ = LabelSubsets(options_.labels);
  RETURN_IF_ERROR(fleet_.RegisterWorker(self));
  return ReleaseDeadLocalWorkers(fleet_, queue_, options_.max_infra_failures).status();
}

std::vector<Worker::Finished> Worker::TakeRequests(Loop& loop) {
  std::vector<Finished> finished;
  bool stop = false;
  int64_t drain_asked = -1;
  {
    absl::MutexLock lock(&mu_);
    finished.swap(finished_);
    stop = stop_requested_;
    drain_asked = drain_deadline_asked_;
    loop.drain_asks_seen = drain_asks_;
  }
  loop.now = clock_.ElapsedMs();
  if (stop && !loop.stopping) {
    loop.stopping = true;
    if (options_.run_id) {
      loop.cancel_status =
          WithContext(runs_.CancelRun(*options_.run_id, "cancelled (interrupted)").status(),
                      "marking the run cancelled");
    }
    CancelRunning();
  }
  if (drain_asked >= 0 && (loop.drain_deadline < 0 || drain_asked < loop.drain_deadline)) {
    loop.drain_deadline = drain_asked;
  }
  if (loop.drain_deadline >= 0 && !loop.drain_killed && loop.now >= loop.drain_deadline) {
    // Out of time: stop what still runs; its leases go back to the queue in Finish.
    loop.drain_killed = true;
    CancelRunning();
  }
  return finished;
}

absl::Status Worker::DoWork(Loop& loop) {
  ASSIGN_OR_RETURN(std::vector<TaskRecord> claimed, ClaimWhatFits());
  if (claimed.empty() && HasRoom() && (loop.need_advance || running_.empty())) {
    bool sweep = !options_.run_id && loop.now >= loop.next_sweep;
    RETURN_IF_ERROR(AdvanceRuns(sweep));
    if (sweep) loop.next_sweep = loop.now + 5'000;
    loop.need_advance = false;
    if (options_.run_id && IsFinalRunState(driven_run_.state)) return absl::OkStatus();
    ASSIGN_OR_RETURN(claimed, ClaimWhatFits());
  }
  for (TaskRecord& t : claimed) RETURN_IF_ERROR(Dispatch(std::move(t)));
  if (loop.now >= loop.next_reap) {
    RETURN_IF_ERROR(queue_.ReapExpired(options_.max_infra_failures).status());
    loop.next_reap = loop.now + std::max<int64_t>(options_.lease_ms / 4, 1000);
  }
  return absl::OkStatus();
}

bool Worker::HasRoom() const { return options_.cpu - used_cpu_ > 1e-9; }

bool Worker::DrivenRunDone() const {
  return options_.run_id && IsFinalRunState(driven_run_.state) && running_.empty() &&
         unsent_.empty();
}

absl::Status Worker::PeriodicDuties(Loop& loop) {
  if (loop.now >= loop.next_heartbeat) {
    RETURN_IF_ERROR(Tolerate(HeartbeatAndRevoke()));
    loop.next_heartbeat = loop.now + options_.heartbeat_ms;
  }
  if (options_.on_tick && loop.now >= loop.next_tick) {
    options_.on_tick();
    loop.next_tick = loop.now + options_.tick_ms;
  }
  return absl::OkStatus();
}

void Worker::WaitForWork(const Loop& loop) {
  int64_t wake =
      std::min(loop.next_heartbeat, options_.on_tick ? loop.next_tick : loop.next_heartbeat);
  if (loop.drain_deadline >= 0 && !loop.drain_killed) wake = std::min(wake, loop.drain_deadline);
  if (running_.empty() || HasRoom()) {
    wake = std::min(wake, loop.now + options_.idle_poll_ms);
  }
  if (backoff_ms_ > 0) wake = loop.now + backoff_ms_;
  absl::MutexLock lock(&mu_);
  int64_t wait_ms = std::max<int64_t>(0, wake - clock_.ElapsedMs());
  auto news = [&] {
    // Await evaluates it under mu_ (AssertReaderHeld, as absl asks of a condition's checks).
    mu_.AssertReaderHeld();
    return !finished_.empty() || (stop_requested_ && !loop.stopping) ||
           drain_asks_ != loop.drain_asks_seen;
  };
  mu_.AwaitWithTimeout(absl::Condition(&news), absl::Milliseconds(wait_ms));
}

absl::StatusOr<RunRecord> Worker::Finish(const Loop& loop, const absl::Status& loop_status) {
  if (loop.drain_killed) {
    // Tasks stopped by the drain were not committed: hand their leases back now, as an
    // infrastructure failure that does not charge the tasks' retries.
    (void)queue_.ReleaseWorker(options_.id, "drained: the worker was stopped (spot interruption)",
                               options_.max_infra_failures, state::kDrained);
  }
  (void)fleet_.DeregisterWorker(options_.id);
  RETURN_IF_ERROR(loop_status);
  RETURN_IF_ERROR(loop.cancel_status);
  if (options_.run_id && IsFinalRunState(driven_run_.state)) return driven_run_;
  if (options_.run_id) return runs_.GetRun(*options_.run_id);
  return RunRecord{};
}

absl::StatusOr<RunRecord> Worker::Run() {
  RETURN_IF_ERROR(Register());
  Loop loop;
  loop.next_heartbeat = clock_.ElapsedMs() + options_.heartbeat_ms;
  last_heartbeat_ok_ = clock_.ElapsedMs();
  absl::Status loop_status;
  for (;;) {
    std::vector<Finished> finished = TakeRequests(loop);
    int64_t backoff_before = backoff_ms_;
    if (!finished.empty() || !unsent_.empty()) {
      loop_status = Tolerate(CommitFinished(std::move(finished)));
      if (!loop_status.ok()) break;
      loop.need_advance = true;
    }
    if (loop.stopping || loop.drain_deadline >= 0) {
      if (running_.empty() && unsent_.empty()) break;
    } else if (backoff_ms_ == backoff_before) {
      // A turn of ordinary work; a transient store error skips the rest until the next turn.
      RETURN_IF_ERROR(Tolerate(DoWork(loop)));
      if (DrivenRunDone()) break;
    }
    RETURN_IF_ERROR(PeriodicDuties(loop));
    WaitForWork(loop);
  }
  return Finish(loop, loop_status);
}

}  // namespace barge
