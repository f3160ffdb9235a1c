// The engine plans and advances runs: it creates a run from a parsed pipeline, starts a step
// (expanding its fan-out into tasks) once every step it needs has succeeded, finishes steps whose
// tasks are all done, and finishes the run. RequeueRun sends a finished run's failed tasks round
// again (`barge resume`, `barge retry`, the API).
//
// Advance() holds no state between calls and every transition it makes is conditional in the
// store, so any process may call it at any time, concurrently with others: the driver, a worker
// that just completed a task, or `barge resume` after a crash.
//
//   Engine engine(runs);  // a RunStore, such as the StateStore
//   ASSIGN_OR_RETURN(std::string id, engine.CreateRun(pipeline, root));
//   ASSIGN_OR_RETURN(RunRecord run, engine.Advance(id));   // run.state: running, succeeded, ...
//
// Thread-safety: safe to call from several threads if the RunStore is.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "objstore/object_stores.h"
#include "spec/pipeline.h"
#include "store/run_store.h"

namespace barge {

// A new run id: sortable by creation time and readable, e.g. "20261122-134501-7f3a".
std::string NewRunId(int64_t now_ms);

// Whether a run or task state is final.
bool IsFinalRunState(const std::string& state);

// Re-queues a run's failed tasks (and, unless `failed_only`, its cancelled ones) with a fresh
// retry budget; 0 for a run that succeeded. FailedPrecondition for a retry of a run still going.
absl::StatusOr<int64_t> RequeueRun(RunStore& runs, const std::string& run_id, bool failed_only);

// What a submission shipped for a run (bundle/ship.h): its code bundle's hash, and the stored
// copies of the submitter's files that its files() patterns matched.
struct Shipped {
  std::string bundle;
  std::string uploads_json = "{}";
};

class Engine {
 public:
  // files() inputs are listed through `stores`. REQUIRES: both outlive the engine.
  Engine(RunStore& runs, ObjectStores& stores) : runs_(runs), stores_(stores) {}

  // The object stores of this engine's command, for the parts built on it (the worker stages
  // and uploads through them, the API reads logs and checks inputs through them).
  ObjectStores& object_stores() const { return stores_; }

  // Records a new run of `pipeline` (its spec frozen, params resolved) with outputs under `root`.
  // With a `run_id`, the run gets that id, and AlreadyExists if it is taken (how a schedule
  // fires a slot at most once); without, a fresh one.
  absl::StatusOr<std::string> CreateRun(const Pipeline& pipeline, const std::string& root,
                                        const std::string& run_id = "",
                                        const Shipped& shipped = Shipped());

  // Makes every transition that is due and returns the run as it stands afterwards. A run that
  // can never go on (its spec no longer validates, a step reads a name barge cannot carry, an
  // exception while planning it) is failed with the reason, and returned: one bad run never
  // stops a caller that advances many. Errors are the store's.
  absl::StatusOr<RunRecord> Advance(const std::string& run_id);

  // The run's pipeline, parsed from its frozen spec. Cached per run until the run is seen to
  // finish (by Advance), and at most kMaxCachedPipelines at once.
  absl::StatusOr<std::shared_ptr<const Pipeline>> PipelineFor(const RunRecord& run);
  static constexpr size_t kMaxCachedPipelines = 256;
  size_t CachedPipelines();

 private:
  absl::StatusOr<RunRecord> AdvancePasses(const std::string& run_id);
  // Moves a running run to failed with `why`; sets `changed` if it did.
  absl::Status FailRun(const std::string& run_id, const std::string& why, bool& changed);
  // One pass; sets `changed` if it made a transition.
  absl::Status AdvanceOnce(const RunRecord& run, bool& changed);
  // Creates the tasks of a step whose needs have all succeeded, or fails the run if what it
  // reads cannot be carried (see StepPlan::refusal); sets `changed` if it did either.
  absl::Status StartStep(const RunRecord& run, const Pipeline& pipeline, const Step& step,
                         bool& changed);
  struct StepPlan;  // what a step's inputs make of it (engine.cc)
  // The fan-out of `step` by its ForeachKind: how many tasks, and the upstream tasks, matched
  // files or bucket inputs they take one by one.
  absl::Status PlanFanout(const RunRecord& run, const Pipeline& pipeline, const Step& step,
                          StepPlan& plan);
  // The inputs every task of `step` reads: its named inputs, or every needed step's outputs.
  absl::Status GatherSharedInputs(const RunRecord& run, const Pipeline& pipeline, const Step& step,
                                  StepPlan& plan);
  // Adds the outputs of step `from`'s committed tasks to the shared inputs, as `view` if given.
  absl::Status AddOutputsOf(const RunRecord& run, const Step& step, const std::string& from,
                            const std::string& view, StepPlan& plan);
  // Task `i` of `step`: its item and its own inputs, by the kind of its fan-out.
  static NewTask MakeTask(const Step& step, const StepPlan& plan, int64_t i);
  // The files a files() `pattern` of `run` matches: the stored copies its submission recorded
  // (a fleet's run), else a glob through the stores.
  absl::StatusOr<std::vector<std::string>> MatchFiles(const RunRecord& run,
                                                      const std::string& pattern);
  // The tasks of a step that succeeded or were cached: their outputs are committed.
  absl::StatusOr<std::vector<TaskRecord>> CommittedTasks(const std::string& run_id,
                                                         const std::string& step);
  absl::StatusOr<std::string> FailureSummary(const std::string& run_id, const std::string& step);

  RunStore& runs_;
  ObjectStores& stores_;
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<const Pipeline>> pipelines_ ABSL_GUARDED_BY(mu_);
};

}  // namespace barge
