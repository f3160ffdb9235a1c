// Role wrappers that forward every call to another implementation of the role: the bases for
// wrappers that change a few calls (fault injection in tests, instrumentation) without restating
// the role. A wrapper forwards only the role it wraps; hand the other roles over unwrapped.
//
//   class FlakyRuns : public ForwardingRunStore {
//     absl::StatusOr<RunRecord> GetRun(const std::string& id) override { ... }
//   };
//   FlakyRuns runs(*store);
//   Scheduler scheduler(/*schedules=*/*store, runs, engine);
//
// Thread-safety: as the wrapped store.
#pragma once

#include "store/run_store.h"
#include "store/schedule_store.h"

namespace barge {

class ForwardingRunStore : public RunStore {
 public:
  explicit ForwardingRunStore(RunStore& inner) : inner_(inner) {}

  int64_t NowMs() override { return inner_.NowMs(); }
  absl::StatusOr<int> SchemaVersion() override { return inner_.SchemaVersion(); }
  absl::Status CreateRun(const RunRecord& run, const std::vector<StepRecord>& steps) override {
    return inner_.CreateRun(run, steps);
  }
  absl::StatusOr<RunRecord> GetRun(const std::string& run_id) override {
    return inner_.GetRun(run_id);
  }
  absl::StatusOr<std::vector<RunRecord>> ListRuns(const RunFilter& filter) override {
    return inner_.ListRuns(filter);
  }
  absl::Status DeleteRun(const std::string& run_id) override { return inner_.DeleteRun(run_id); }
  absl::StatusOr<std::vector<StepRecord>> GetSteps(const std::string& run_id) override {
    return inner_.GetSteps(run_id);
  }
  absl::StatusOr<std::vector<StepCounts>> CountTasks(const std::string& run_id) override {
    return inner_.CountTasks(run_id);
  }
  absl::StatusOr<bool> HasTasksIn(const std::string& run_id, const std::string& step,
                                  const std::vector<std::string>& states) override {
    return inner_.HasTasksIn(run_id, step, states);
  }
  absl::StatusOr<bool> StartStep(const std::string& run_id, const std::string& step,
                                 const std::string& shared_inputs_json, int64_t count,
                                 const Placement& placement,
                                 const std::function<NewTask(int64_t)>& make_task) override {
    return inner_.StartStep(run_id, step, shared_inputs_json, count, placement, make_task);
  }
  absl::StatusOr<bool> TransitionStep(const std::string& run_id, const std::string& step,
                                      const std::string& from, const std::string& to) override {
    return inner_.TransitionStep(run_id, step, from, to);
  }
  absl::StatusOr<bool> TransitionRun(const std::string& run_id, const std::string& from,
                                     const std::string& to, const std::string& error) override {
    return inner_.TransitionRun(run_id, from, to, error);
  }
  absl::StatusOr<int64_t> RequeueTasks(const std::string& run_id,
                                       const std::vector<std::string>& states) override {
    return inner_.RequeueTasks(run_id, states);
  }
  absl::StatusOr<std::string> PinStepImage(const std::string& run_id, const std::string& step,
                                           const std::string& reference) override {
    return inner_.PinStepImage(run_id, step, reference);
  }
  absl::StatusOr<bool> CancelRun(const std::string& run_id, const std::string& reason) override {
    return inner_.CancelRun(run_id, reason);
  }
  absl::StatusOr<std::vector<TaskRecord>> ListTasks(const TaskFilter& filter) override {
    return inner_.ListTasks(filter);
  }
  absl::StatusOr<TaskRecord> GetTask(const TaskKey& key) override { return inner_.GetTask(key); }
  absl::StatusOr<std::vector<AttemptRecord>> ListAttempts(const TaskKey& key) override {
    return inner_.ListAttempts(key);
  }
  absl::StatusOr<std::vector<AttemptRecord>> ListRunAttempts(const std::string& run_id) override {
    return inner_.ListRunAttempts(run_id);
  }
  absl::StatusOr<std::vector<EventRecord>> ListEvents(const std::string& run_id) override {
    return inner_.ListEvents(run_id);
  }
  absl::Status AddEvent(const EventRecord& event) override { return inner_.AddEvent(event); }

 protected:
  RunStore& inner_;
};

class ForwardingScheduleStore : public ScheduleStore {
 public:
  explicit ForwardingScheduleStore(ScheduleStore& inner) : inner_(inner) {}

  int64_t NowMs() override { return inner_.NowMs(); }
  absl::Status PutSchedule(const ScheduleRecord& schedule) override {
    return inner_.PutSchedule(schedule);
  }
  absl::StatusOr<ScheduleRecord> GetSchedule(const std::string& name) override {
    return inner_.GetSchedule(name);
  }
  absl::StatusOr<std::vector<ScheduleRecord>> ListSchedules() override {
    return inner_.ListSchedules();
  }
  absl::StatusOr<bool> DeleteSchedule(const std::string& name) override {
    return inner_.DeleteSchedule(name);
  }
  absl::StatusOr<bool> SetScheduleEnabled(const std::string& name, bool enabled) override {
    return inner_.SetScheduleEnabled(name, enabled);
  }
  absl::StatusOr<bool> RecordFire(const ScheduleFire& fire, int64_t from_last_slot) override {
    return inner_.RecordFire(fire, from_last_slot);
  }
  absl::StatusOr<std::vector<ScheduleFire>> ListFires(const std::string& schedule,
                                                      int64_t limit) override {
    return inner_.ListFires(schedule, limit);
  }

 protected:
  ScheduleStore& inner_;
};

}  // namespace barge
