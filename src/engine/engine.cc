#include "engine/engine.h"

#include <random>

#include "bundle/ship.h"
#include "common/fs.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/text.h"
#include "objstore/glob.h"

namespace barge {
namespace {

constexpr int kMaxPassesPerAdvance = 64;

// Groups a partitioned step's outputs by bucket: a file written for bucket i lives under a
// "barge_bucket=i/" directory. A bucket no upstream task wrote to gets one schema-only entry (any
// other bucket's file), so that its reader still sees the right columns and zero rows.
absl::StatusOr<std::vector<nlohmann::json>> GroupByBucket(const std::vector<TaskRecord>& upstream,
                                                          int64_t buckets) {
  std::vector<nlohmann::json> by_bucket(static_cast<size_t>(buckets), nlohmann::json::array());
  std::string any_file;
  for (const TaskRecord& t : upstream) {
    nlohmann::json outs = nlohmann::json::parse(t.outputs_json, nullptr, false);
    if (!outs.is_array()) continue;
    for (const auto& o : outs) {
      if (!o.is_object() || !o.contains("path") || !o["path"].is_string()) continue;
      std::string path = o["path"].get<std::string>();
      size_t at = path.find("/barge_bucket=");
      if (at == std::string::npos) continue;
      int64_t b = std::strtoll(path.c_str() + at + 14, nullptr, 10);
      if (b < 0 || b >= buckets) {
        return absl::InternalError(Cat("output ", path, " names bucket ", b, " of ", buckets));
      }
      by_bucket[static_cast<size_t>(b)].push_back(o);
      if (any_file.empty()) any_file = path;
    }
  }
  if (!any_file.empty()) {
    for (auto& files : by_bucket) {
      if (files.empty()) files.push_back({{"path", any_file}, {"schema_only", true}});
    }
  }
  return by_bucket;
}

}  // namespace

std::string NewRunId(int64_t now_ms) {
  time_t secs = static_cast<time_t>(now_ms / 1000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char stamp[32];
  strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
  static thread_local std::mt19937 rng(std::random_device{}());
  return fmt::format("{}-{:04x}", stamp, rng() & 0xffff);
}

bool IsFinalRunState(const std::string& s) {
  return s == state::kSucceeded || s == state::kFailed || s == state::kCancelled ||
         s == state::kDeleting;
}

absl::StatusOr<std::string> Engine::CreateRun(const Pipeline& pipeline, const std::string& root,
                                              const std::string& run_id, const Shipped& shipped) {
  RunRecord run;
  run.bundle = shipped.bundle;
  run.uploads_json = shipped.uploads_json;
  run.pipeline = pipeline.name;
  run.spec_path = pipeline.path;
  run.spec_source = pipeline.source;
  nlohmann::json params = nlohmann::json::object();
  for (const auto& [k, v] : pipeline.params) params[k] = v;
  run.params_json = DumpJson(params);
  run.root = root;
  std::vector<StepRecord> steps;
  for (size_t i = 0; i < pipeline.steps.size(); ++i) {
    steps.push_back({.name = pipeline.steps[i].name, .position = static_cast<int>(i)});
  }
  if (!run_id.empty()) {
    run.created_at = runs_.NowMs();
    run.id = run_id;
    RETURN_IF_ERROR(runs_.CreateRun(run, steps));
    return run.id;
  }
  // Ids carry a random suffix; retry on the rare collision within one second.
  for (int tries = 0;; ++tries) {
    run.created_at = runs_.NowMs();
    run.id = NewRunId(run.created_at);
    absl::Status s = runs_.CreateRun(run, steps);
    if (s.ok()) return run.id;
    if (!absl::IsAlreadyExists(s) || tries >= 5) return s;
  }
}

absl::StatusOr<std::shared_ptr<const Pipeline>> Engine::PipelineFor(const RunRecord& run) {
  absl::MutexLock lock(&mu_);
  if (auto it = pipelines_.find(run.id); it != pipelines_.end()) return it->second;
  ParamOverrides params;
  nlohmann::json j = nlohmann::json::parse(run.params_json, nullptr, false);
  if (j.is_object()) {
    for (const auto& [k, v] : j.items()) {
      if (v.is_string()) params[k] = v.get<std::string>();
    }
  }
  ASSIGN_OR_RETURN(Pipeline p, ParsePipeline(run.spec_source, run.spec_path, params));
  auto shared = std::make_shared<const Pipeline>(std::move(p));
  // A finished run is only read (its logs, barge exec): not kept, so readers cannot crowd out
  // the runs being planned.
  if (IsFinalRunState(run.state)) return shared;
  // Bounded, whoever asks (readers of finished runs too): past the bound, start afresh; the
  // runs still going are parsed again when next needed.
  if (pipelines_.size() >= kMaxCachedPipelines) pipelines_.clear();
  pipelines_[run.id] = shared;
  return shared;
}

absl::StatusOr<RunRecord> Engine::Advance(const std::string& run_id) {
  absl::StatusOr<RunRecord> run;
  try {
    run = AdvancePasses(run_id);
  } catch (const std::exception& e) {
    // A value nothing refused earlier, or a bug: this run cannot go on, but every caller (a
    // worker's sweep, the server's tick) goes on with the others. The store rolled back
    // whatever transaction the exception left.
    bool changed = false;
    RETURN_IF_ERROR(
        FailRun(run_id, Cat("internal error while advancing the run: ", e.what()), changed));
    run = runs_.GetRun(run_id);
  }
  // A finished run is planned no more: its parsed pipeline need not stay in a process that
  // serves runs for months.
  if (run.ok() && IsFinalRunState(run->state)) {
    absl::MutexLock lock(&mu_);
    pipelines_.erase(run_id);
  }
  return run;
}

size_t Engine::CachedPipelines() {
  absl::MutexLock lock(&mu_);
  return pipelines_.size();
}

absl::Status Engine::FailRun(const std::string& run_id, const std::string& why, bool& changed) {
  ASSIGN_OR_RETURN(bool moved, runs_.TransitionRun(run_id, state::kRunning, state::kFailed, why));
  changed |= moved;
  return absl::OkStatus();
}

absl::StatusOr<RunRecord> Engine::AdvancePasses(const std::string& run_id) {
  for (int pass = 0; pass < kMaxPassesPerAdvance; ++pass) {
    ASSIGN_OR_RETURN(RunRecord run, runs_.GetRun(run_id));
    if (IsFinalRunState(run.state)) return run;
    bool changed = false;
    RETURN_IF_ERROR(WithContext(AdvanceOnce(run, changed), Cat("run ", run_id)));
    if (!changed) return run;
  }
  return runs_.GetRun(run_id);
}

absl::StatusOr<std::string> Engine::FailureSummary(const std::string& run_id,
                                                   const std::string& step) {
  ASSIGN_OR_RETURN(
      std::vector<TaskRecord> failed,
      runs_.ListTasks(
          {.run_id = run_id, .step = step, .state = std::string(state::kFailed), .limit = 1}));
  if (failed.empty()) return Cat("step ", step, " failed");
  const TaskRecord& t = failed.front();
  return Cat("step ", step, " failed: task ", t.key.index, ": ", t.error);
}

absl::Status Engine::AdvanceOnce(const RunRecord& run, bool& changed) {
  ASSIGN_OR_RETURN(std::vector<StepRecord> steps, runs_.GetSteps(run.id));

  std::map<std::string, std::string> step_state;
  bool any_failed = false, all_succeeded = true, active = false;
  std::string first_failed;
  for (StepRecord& s : steps) {
    if (s.state == state::kRunning) {
      // Probes, not counts: every worker advances its runs after each batch it completes.
      ASSIGN_OR_RETURN(bool unfinished,
                       runs_.HasTasksIn(run.id, s.name, {state::kPending, state::kRunning}));
      if (!unfinished) {
        ASSIGN_OR_RETURN(bool failed,
                         runs_.HasTasksIn(run.id, s.name, {state::kFailed, state::kCancelled}));
        std::string to = failed ? state::kFailed : state::kSucceeded;
        ASSIGN_OR_RETURN(bool moved, runs_.TransitionStep(run.id, s.name, state::kRunning, to));
        if (moved) {
          s.state = to;
          changed = true;
        }
      } else {
        active = true;
      }
    }
    if (s.state == state::kFailed || s.state == state::kCancelled) {
      if (first_failed.empty()) first_failed = s.name;
      any_failed = true;
    }
    if (s.state != state::kSucceeded) all_succeeded = false;
    step_state[s.name] = s.state;
  }

  if (all_succeeded) {
    ASSIGN_OR_RETURN(bool moved,
                     runs_.TransitionRun(run.id, state::kRunning, state::kSucceeded, ""));
    changed |= moved;
    return absl::OkStatus();
  }
  if (any_failed) {
    // Nothing new starts; the run fails once the steps still running have finished.
    if (!active) {
      ASSIGN_OR_RETURN(std::string why, FailureSummary(run.id, first_failed));
      ASSIGN_OR_RETURN(bool moved,
                       runs_.TransitionRun(run.id, state::kRunning, state::kFailed, why));
      changed |= moved;
    }
    return absl::OkStatus();
  }

  std::shared_ptr<const Pipeline> pipeline;
  for (const StepRecord& s : steps) {
    if (s.state != state::kPending) continue;
    if (!pipeline) {
      absl::StatusOr<std::shared_ptr<const Pipeline>> parsed = PipelineFor(run);
      if (absl::IsInvalidArgument(parsed.status())) {
        // Frozen by an older barge that accepted what this one refuses: it can never go on.
        return FailRun(run.id, Cat("its spec does not validate: ", parsed.status().message()),
                       changed);
      }
      RETURN_IF_ERROR(parsed.status());
      pipeline = *std::move(parsed);
    }
    const Step* step = pipeline->FindStep(s.name);
    if (step == nullptr) return absl::InternalError(Cat("step ", s.name, " not in the spec"));
    bool ready = true;
    for (const std::string& need : step->needs) {
      if (step_state[need] != state::kSucceeded) ready = false;
    }
    if (ready)
      RETURN_IF_ERROR(
          WithContext(StartStep(run, *pipeline, *step, changed), Cat("starting step ", s.name)));
  }
  return absl::OkStatus();
}

// What a step's inputs make of it, worked out before any of its tasks exists, or why the run
// cannot go on.
struct Engine::StepPlan {
  // Why the run fails instead (a files() that matches nothing, a name barge cannot carry);
  // empty if the step can start.
  std::string refusal;
  int64_t count = 1;                                // tasks
  std::vector<TaskRecord> upstream;                 // kOutputs, kBuckets: the upstream step's tasks
  std::vector<std::string> files;                   // kFiles: the matched files, one a task
  std::vector<nlohmann::json> bucket_inputs;        // kBuckets: the files of bucket i, by i
  nlohmann::json shared = nlohmann::json::array();  // the inputs every task reads
};

namespace {

// What a step reads becomes task items, inputs and $BARGE_INPUT_LIST lines: a name barge cannot
// carry (not UTF-8, NUL, a newline) fails the run, naming it, before any task exists. These
// return the reason the run fails, or "" if it can go on.

// For the files a files() input of `step` matched; `where` names the input.
std::string FilesRefusal(const Step& step, const std::vector<std::string>& matched,
                         const std::string& where) {
  if (matched.empty()) return Cat("step ", step.name, ": ", where, " matches no files");
  for (const std::string& f : matched) {
    absl::Status s = CheckCarriableName("file", f);
    if (!s.ok()) return Cat("step ", step.name, ": ", where, ": ", s.message());
  }
  return "";
}

// For the outputs of the upstream tasks `done` that `step` reads.
std::string OutputsRefusal(const Step& step, const std::vector<TaskRecord>& done) {
  for (const TaskRecord& t : done) {
    nlohmann::json outs = nlohmann::json::parse(t.outputs_json, nullptr, false);
    if (!outs.is_array()) continue;
    for (const auto& o : outs) {
      if (!o.is_object() || !o.contains("path") || !o["path"].is_string()) continue;
      absl::Status s = CheckCarriableName("output", o["path"].get<std::string>());
      if (!s.ok()) {
        return Cat("step ", step.name, ": input from step ", t.key.step, " task ", t.key.index,
                   ": ", s.message());
      }
    }
  }
  return "";
}

}  // namespace

absl::StatusOr<std::vector<TaskRecord>> Engine::CommittedTasks(const std::string& run_id,
                                                               const std::string& step) {
  std::vector<TaskRecord> done;
  ASSIGN_OR_RETURN(std::vector<TaskRecord> tasks,
                   runs_.ListTasks({.run_id = run_id, .step = step}));
  for (TaskRecord& t : tasks) {
    if (t.state == state::kSucceeded || t.state == state::kCached) done.push_back(std::move(t));
  }
  return done;
}

absl::Status Engine::PlanFanout(const RunRecord& run, const Pipeline& pipeline, const Step& step,
                                StepPlan& plan) {
  const Foreach& foreach = step.foreach;
  switch (foreach.kind) {
    case ForeachKind::kOutputs: {
      ASSIGN_OR_RETURN(plan.upstream, CommittedTasks(run.id, foreach.step));
      plan.refusal = OutputsRefusal(step, plan.upstream);
      plan.count = static_cast<int64_t>(plan.upstream.size());
      break;
    }
    case ForeachKind::kBuckets: {
      const Step* up = pipeline.FindStep(foreach.step);
      plan.count = up != nullptr ? up->partition.buckets : 0;
      ASSIGN_OR_RETURN(plan.upstream, CommittedTasks(run.id, foreach.step));
      plan.refusal = OutputsRefusal(step, plan.upstream);
      if (!plan.refusal.empty()) break;
      ASSIGN_OR_RETURN(plan.bucket_inputs, GroupByBucket(plan.upstream, plan.count));
      break;
    }
    case ForeachKind::kFiles: {
      ASSIGN_OR_RETURN(plan.files, MatchFiles(run, foreach.pattern));
      plan.refusal = FilesRefusal(step, plan.files, Cat("files(\"", foreach.pattern, "\")"));
      plan.count = static_cast<int64_t>(plan.files.size());
      break;
    }
    case ForeachKind::kRange:
      plan.count = foreach.count;
      break;
    case ForeachKind::kList:
      plan.count = static_cast<int64_t>(foreach.items.size());
      break;
    case ForeachKind::kNone:
      break;
  }
  return absl::OkStatus();
}

absl::Status Engine::AddOutputsOf(const RunRecord& run, const Step& step, const std::string& from,
                                  const std::string& view, StepPlan& plan) {
  ASSIGN_OR_RETURN(std::vector<TaskRecord> done, CommittedTasks(run.id, from));
  plan.refusal = OutputsRefusal(step, done);
  if (!plan.refusal.empty()) return absl::OkStatus();
  for (const TaskRecord& t : done) {
    nlohmann::json outs = nlohmann::json::parse(t.outputs_json, nullptr, false);
    if (!outs.is_array()) continue;
    for (auto& o : outs) {
      if (!view.empty()) o["view"] = view;
      plan.shared.push_back(std::move(o));
    }
  }
  return absl::OkStatus();
}

absl::Status Engine::GatherSharedInputs(const RunRecord& run, const Pipeline& pipeline,
                                        const Step& step, StepPlan& plan) {
  // Named inputs replace the default "everything the step needs".
  for (const NamedInput& in : step.inputs) {
    if (in.source.kind == ForeachKind::kOutputs) {
      RETURN_IF_ERROR(AddOutputsOf(run, step, in.source.step, in.name, plan));
    } else {
      ASSIGN_OR_RETURN(std::vector<std::string> matched, MatchFiles(run, in.source.pattern));
      plan.refusal = FilesRefusal(step, matched,
                                  Cat("inputs.", in.name, ": files(\"", in.source.pattern, "\")"));
      for (const std::string& f : matched) plan.shared.push_back({{"path", f}, {"view", in.name}});
    }
    if (!plan.refusal.empty()) return absl::OkStatus();
  }
  // Without named inputs, every needed step's outputs; but a step fanned out over another's
  // outputs reads those as its tasks' own inputs, and nothing shared.
  if (!step.inputs.empty() || step.foreach.kind == ForeachKind::kOutputs ||
      step.foreach.kind == ForeachKind::kBuckets) {
    return absl::OkStatus();
  }
  for (const Step& s : pipeline.steps) {
    if (std::find(step.needs.begin(), step.needs.end(), s.name) == step.needs.end()) continue;
    RETURN_IF_ERROR(AddOutputsOf(run, step, s.name, "", plan));
    if (!plan.refusal.empty()) return absl::OkStatus();
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> Engine::MatchFiles(const RunRecord& run,
                                                            const std::string& pattern) {
  if (std::optional<std::vector<std::string>> stored = UploadedMatches(run.uploads_json, pattern)) {
    return *std::move(stored);
  }
  return GlobInputs(pattern, stores_);
}

NewTask Engine::MakeTask(const Step& step, const StepPlan& plan, int64_t i) {
  NewTask t;
  t.index = i;
  size_t n = static_cast<size_t>(i);
  switch (step.foreach.kind) {
    case ForeachKind::kRange:
      t.item_json = std::to_string(i);
      break;
    case ForeachKind::kList:
      t.item_json = DumpJson(step.foreach.items[n]);
      break;
    case ForeachKind::kFiles:
      t.item_json = DumpJson(plan.files[n]);
      t.inputs_json = DumpJson(nlohmann::json::array({{{"path", plan.files[n]}}}));
      break;
    case ForeachKind::kOutputs:
      t.inputs_json = plan.upstream[n].outputs_json;
      break;
    case ForeachKind::kBuckets:
      t.item_json = std::to_string(i);
      t.inputs_json = DumpJson(plan.bucket_inputs[n]);
      break;
    case ForeachKind::kNone:
      break;
  }
  return t;
}

absl::Status Engine::StartStep(const RunRecord& run, const Pipeline& pipeline, const Step& step,
                               bool& changed) {
  StepPlan plan;
  RETURN_IF_ERROR(PlanFanout(run, pipeline, step, plan));
  if (plan.refusal.empty()) RETURN_IF_ERROR(GatherSharedInputs(run, pipeline, step, plan));
  if (!plan.refusal.empty()) return FailRun(run.id, plan.refusal, changed);
  ASSIGN_OR_RETURN(bool started,
                   runs_.StartStep(run.id, step.name, DumpJson(plan.shared), plan.count,
                                   {.cpu = step.cpu,
                                    .memory = step.memory_bytes,
                                    .queue = step.queue,
                                    .required_labels = CanonicalLabels(step.labels)},
                                   [&](int64_t i) { return MakeTask(step, plan, i); }));
  changed |= started;
  return absl::OkStatus();
}

absl::StatusOr<int64_t> RequeueRun(RunStore& runs, const std::string& run_id, bool failed_only) {
  ASSIGN_OR_RETURN(RunRecord run, runs.GetRun(run_id));
  if (run.state == state::kSucceeded) return 0;
  if (failed_only && run.state == state::kRunning) {
    return absl::FailedPreconditionError(
        Cat("run ", run_id,
            " is still running; retry re-queues the failed tasks of a finished run (resume "
            "continues an interrupted one)"));
  }
  std::vector<std::string> states = {state::kFailed};
  if (!failed_only) states.push_back(state::kCancelled);
  return runs.RequeueTasks(run_id, states);
}

}  // namespace barge
