// RunStore: the runs role of the state store. Runs (with a frozen copy of their spec), their
// steps and tasks, every attempt's record, and the event log; the transitions that advance a
// run (starting a step creates its tasks), and resume, retry, cancel and delete. The engine,
// the views (CLI, API, cost) and gc use it; claiming and completing tasks is TaskQueue's.
//
// All transitions are transactional and idempotent: any process may advance a run, and killing
// one at any moment loses nothing that was committed.
//
//   ASSIGN_OR_RETURN(RunRecord run, runs.GetRun(id));
//   ASSIGN_OR_RETURN(bool started, runs.StartStep(id, "clean", "[]", n, placement, make_task));
//
// Thread-safety: implementations are safe to call from several threads.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "store/records.h"

namespace barge {

class RunStore {
 public:
  virtual ~RunStore() = default;

  // The store's clock (ms since the epoch), used for leases and times.
  virtual int64_t NowMs() = 0;
  // The schema version of the database after migrations (for tests, `barge version` and the
  // API's health check, which reads it to show the store is reachable).
  virtual absl::StatusOr<int> SchemaVersion() = 0;

  // --- runs and steps ---
  // Creates a run in state running and its steps in state pending. AlreadyExists if the id is
  // taken.
  virtual absl::Status CreateRun(const RunRecord& run, const std::vector<StepRecord>& steps) = 0;
  virtual absl::StatusOr<RunRecord> GetRun(const std::string& run_id) = 0;  // NotFound
  // Newest first.
  virtual absl::StatusOr<std::vector<RunRecord>> ListRuns(const RunFilter& filter) = 0;
  // Deletes a finished or deleting run's rows (the run, its steps, tasks, attempts and events)
  // in one transaction. NotFound if there is no such run; FailedPrecondition, deleting nothing,
  // if it is running.
  virtual absl::Status DeleteRun(const std::string& run_id) = 0;
  virtual absl::StatusOr<std::vector<StepRecord>> GetSteps(const std::string& run_id) = 0;
  virtual absl::StatusOr<std::vector<StepCounts>> CountTasks(const std::string& run_id) = 0;
  // Whether any task of the step is in one of `states`: one index probe however many tasks the
  // step has, where CountTasks reads every one (seconds for a million).
  virtual absl::StatusOr<bool> HasTasksIn(const std::string& run_id, const std::string& step,
                                          const std::vector<std::string>& states) = 0;

  // Moves a pending step to running and creates its `count` tasks (make_task(i) for i in
  // [0, count)), all in one transaction; the tasks are then in the queue (TaskQueue::Claim).
  // Returns false, creating nothing, if the step was not pending (another process started it).
  virtual absl::StatusOr<bool> StartStep(const std::string& run_id, const std::string& step,
                                         const std::string& shared_inputs_json, int64_t count,
                                         const Placement& placement,
                                         const std::function<NewTask(int64_t)>& make_task) = 0;
  // Sets a step's state if it is currently `from`; returns whether it changed.
  virtual absl::StatusOr<bool> TransitionStep(const std::string& run_id, const std::string& step,
                                              const std::string& from, const std::string& to) = 0;
  // Sets a run's state if it is currently `from`; returns whether it changed.
  virtual absl::StatusOr<bool> TransitionRun(const std::string& run_id, const std::string& from,
                                             const std::string& to, const std::string& error) = 0;

  // Records `reference` as the image of the run's step `step` unless one is recorded already
  // (first writer wins), and returns the one recorded: every attempt, retry and resume of the
  // step then runs the same image. NotFound if there is no such step.
  virtual absl::StatusOr<std::string> PinStepImage(const std::string& run_id,
                                                   const std::string& step,
                                                   const std::string& reference) = 0;

  // --- resume, retry, cancel ---
  // Re-queues a finished or interrupted run's tasks in `states` (with a fresh retry budget),
  // reopens their steps and the run. Returns how many tasks were re-queued.
  virtual absl::StatusOr<int64_t> RequeueTasks(const std::string& run_id,
                                               const std::vector<std::string>& states) = 0;
  // Cancels a running run: pending and running tasks and unfinished steps become cancelled.
  // Returns false if the run was already finished.
  virtual absl::StatusOr<bool> CancelRun(const std::string& run_id, const std::string& reason) = 0;

  // --- tasks, attempts, events ---
  virtual absl::StatusOr<std::vector<TaskRecord>> ListTasks(const TaskFilter& filter) = 0;
  virtual absl::StatusOr<TaskRecord> GetTask(const TaskKey& key) = 0;  // NotFound
  virtual absl::StatusOr<std::vector<AttemptRecord>> ListAttempts(const TaskKey& key) = 0;
  // Every attempt of every task of a run, in (step position, index, attempt) order.
  virtual absl::StatusOr<std::vector<AttemptRecord>> ListRunAttempts(const std::string& run_id) = 0;
  virtual absl::StatusOr<std::vector<EventRecord>> ListEvents(const std::string& run_id) = 0;
  virtual absl::Status AddEvent(const EventRecord& event) = 0;
};

}  // namespace barge
