#include "engine/engine.h"

#include <random>

#include "common/fs.h"
#include "common/status.h"
#include "common/strings.h"

namespace barge {
namespace {

constexpr int kMaxPassesPerAdvance = 64;

bool IsFinalStepState(const std::string& s) {
  return s == state::kSucceeded || s == state::kFailed || s == state::kCancelled;
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
  return s == state::kSucceeded || s == state::kFailed || s == state::kCancelled;
}

absl::StatusOr<std::string> Engine::CreateRun(const Pipeline& pipeline, const std::string& root) {
  RunRecord run;
  run.pipeline = pipeline.name;
  run.spec_path = pipeline.path;
  run.spec_source = pipeline.source;
  nlohmann::json params = nlohmann::json::object();
  for (const auto& [k, v] : pipeline.params) params[k] = v;
  run.params_json = params.dump();
  run.root = root;
  std::vector<StepRecord> steps;
  for (size_t i = 0; i < pipeline.steps.size(); ++i) {
    steps.push_back({.name = pipeline.steps[i].name, .position = static_cast<int>(i)});
  }
  // Ids carry a random suffix; retry on the rare collision within one second.
  for (int tries = 0;; ++tries) {
    run.created_at = store_.NowMs();
    run.id = NewRunId(run.created_at);
    absl::Status s = store_.CreateRun(run, steps);
    if (s.ok()) return run.id;
    if (!absl::IsAlreadyExists(s) || tries >= 5) return s;
  }
}

absl::StatusOr<std::shared_ptr<const Pipeline>> Engine::PipelineFor(const RunRecord& run) {
  std::lock_guard lock(mu_);
  if (auto it = pipelines_.find(run.id); it != pipelines_.end()) return it->second;
  ParamOverrides params;
  nlohmann::json j = nlohmann::json::parse(run.params_json, nullptr, false);
  if (j.is_object()) {
    for (const auto& [k, v] : j.items()) params[k] = v.get<std::string>();
  }
  ASSIGN_OR_RETURN(Pipeline p, ParsePipeline(run.spec_source, run.spec_path, params));
  auto shared = std::make_shared<const Pipeline>(std::move(p));
  pipelines_[run.id] = shared;
  return shared;
}

absl::StatusOr<RunRecord> Engine::Advance(const std::string& run_id) {
  for (int pass = 0; pass < kMaxPassesPerAdvance; ++pass) {
    ASSIGN_OR_RETURN(RunRecord run, store_.GetRun(run_id));
    if (IsFinalRunState(run.state)) return run;
    bool changed = false;
    RETURN_IF_ERROR(WithContext(AdvanceOnce(run, changed), Cat("run ", run_id)));
    if (!changed) return run;
  }
  return store_.GetRun(run_id);
}

absl::StatusOr<std::string> Engine::FailureSummary(const std::string& run_id,
                                                   const std::string& step) {
  ASSIGN_OR_RETURN(
      std::vector<TaskRecord> failed,
      store_.ListTasks(
          {.run_id = run_id, .step = step, .state = std::string(state::kFailed), .limit = 1}));
  if (failed.empty()) return Cat("step ", step, " failed");
  const TaskRecord& t = failed.front();
  return Cat("step ", step, " failed: task ", t.key.index, ": ", t.error);
}

absl::Status Engine::AdvanceOnce(const RunRecord& run, bool& changed) {
  ASSIGN_OR_RETURN(std::vector<StepRecord> steps, store_.GetSteps(run.id));
  ASSIGN_OR_RETURN(std::vector<StepCounts> counts_list, store_.CountTasks(run.id));
  std::map<std::string, StepCounts> counts;
  for (StepCounts& c : counts_list) counts[c.step] = c;

  std::map<std::string, std::string> step_state;
  bool any_failed = false, all_succeeded = true, active = false;
  std::string first_failed;
  for (StepRecord& s : steps) {
    const StepCounts& c = counts[s.name];
    if (s.state == state::kRunning) {
      if (c.pending + c.running == 0) {
        std::string to = (c.failed + c.cancelled == 0) ? state::kSucceeded : state::kFailed;
        ASSIGN_OR_RETURN(bool moved, store_.TransitionStep(run.id, s.name, state::kRunning, to));
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
                     store_.TransitionRun(run.id, state::kRunning, state::kSucceeded, ""));
    changed |= moved;
    return absl::OkStatus();
  }
  if (any_failed) {
    // Nothing new starts; the run fails once the steps still running have finished.
    if (!active) {
      ASSIGN_OR_RETURN(std::string why, FailureSummary(run.id, first_failed));
      ASSIGN_OR_RETURN(bool moved,
                       store_.TransitionRun(run.id, state::kRunning, state::kFailed, why));
      changed |= moved;
    }
    return absl::OkStatus();
  }

  std::shared_ptr<const Pipeline> pipeline;
  for (const StepRecord& s : steps) {
    if (s.state != state::kPending) continue;
    if (!pipeline) {
      ASSIGN_OR_RETURN(pipeline, PipelineFor(run));
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

absl::Status Engine::StartStep(const RunRecord& run, const Pipeline& pipeline, const Step& step,
                               bool& changed) {
  // Inputs: the committed outputs of the steps this one needs, in pipeline order.
  auto outputs_of = [&](const std::string& name) -> absl::StatusOr<std::vector<TaskRecord>> {
    std::vector<TaskRecord> done;
    ASSIGN_OR_RETURN(std::vector<TaskRecord> tasks,
                     store_.ListTasks({.run_id = run.id, .step = name}));
    for (TaskRecord& t : tasks) {
      if (t.state == state::kSucceeded || t.state == state::kCached) done.push_back(std::move(t));
    }
    return done;
  };
  nlohmann::json shared = nlohmann::json::array();
  std::vector<TaskRecord> upstream;
  std::vector<std::string> files;
  int64_t count = 1;
  switch (step.foreach.kind) {
    case ForeachKind::kOutputs: {
      ASSIGN_OR_RETURN(upstream, outputs_of(step.foreach.step));
      count = static_cast<int64_t>(upstream.size());
      break;
    }
    case ForeachKind::kFiles: {
      ASSIGN_OR_RETURN(files, GlobFiles(step.foreach.pattern));
      if (files.empty()) {
        ASSIGN_OR_RETURN(bool moved,
                         store_.TransitionRun(run.id, state::kRunning, state::kFailed,
                                              Cat("step ", step.name, ": files(\"",
                                                  step.foreach.pattern, "\") matches no files")));
        changed |= moved;
        return absl::OkStatus();
      }
      count = static_cast<int64_t>(files.size());
      break;
    }
    case ForeachKind::kRange:
      count = step.foreach.count;
      break;
    case ForeachKind::kList:
      count = static_cast<int64_t>(step.foreach.items.size());
      break;
    case ForeachKind::kNone:
      break;
  }
  if (step.foreach.kind != ForeachKind::kOutputs) {
    for (const Step& s : pipeline.steps) {
      if (std::find(step.needs.begin(), step.needs.end(), s.name) == step.needs.end()) continue;
      ASSIGN_OR_RETURN(std::vector<TaskRecord> done, outputs_of(s.name));
      for (const TaskRecord& t : done) {
        nlohmann::json outs = nlohmann::json::parse(t.outputs_json, nullptr, false);
        if (outs.is_array()) {
          for (auto& o : outs) shared.push_back(std::move(o));
        }
      }
    }
  }
  auto make_task = [&](int64_t i) {
    NewTask t;
    t.index = i;
    switch (step.foreach.kind) {
      case ForeachKind::kRange:
        t.item_json = std::to_string(i);
        break;
      case ForeachKind::kList:
        t.item_json = step.foreach.items[static_cast<size_t>(i)].dump();
        break;
      case ForeachKind::kFiles:
        t.item_json = nlohmann::json(files[static_cast<size_t>(i)]).dump();
        t.inputs_json = nlohmann::json::array({{{"path", files[static_cast<size_t>(i)]}}}).dump();
        break;
      case ForeachKind::kOutputs:
        t.inputs_json = upstream[static_cast<size_t>(i)].outputs_json;
        break;
      case ForeachKind::kNone:
        break;
    }
    return t;
  };
  ASSIGN_OR_RETURN(bool started, store_.StartStep(run.id, step.name, shared.dump(), count, step.cpu,
                                                  step.memory_bytes, make_task));
  changed |= started;
  return absl::OkStatus();
}

}  // namespace barge
