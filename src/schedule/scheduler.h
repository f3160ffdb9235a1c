// The scheduler: fires each due slot of every enabled schedule exactly once.
//
//   Scheduler scheduler(/*schedules=*/store, /*runs=*/store, engine);
//   ASSIGN_OR_RETURN(Scheduler::TickResult r, scheduler.Tick());  // every few seconds
//
// Exactly once, across restarts and concurrent servers: a slot's run has a deterministic id
// (<schedule>-<slot as yyyymmdd-hhmm UTC>), so creating it twice fails with AlreadyExists; and
// the slot is then recorded with a compare-and-set on the schedule's last_slot. A server that
// dies between the two creates nothing new on its next tick, it only records the slot.
//
// Policies: slots missed while no server ran follow `catchup` (latest: fire only the newest;
// all: fire each in order; none: fire none but a slot that is due right now, i.e. less than
// `grace_ms` old). A slot that comes while the schedule's previous run is still going follows
// `overlap` (skip it; queue: wait, and fire it when that run ends; allow: fire anyway).
//
// Time is the store's clock (a ManualClock in tests).
//
// Thread-safety: one Tick at a time per Scheduler; several schedulers may share a store.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bundle/ship.h"
#include "engine/engine.h"
#include "spec/pipeline.h"
#include "store/run_store.h"
#include "store/schedule_store.h"

namespace barge {

struct SchedulerOptions {
  int64_t grace_ms = 60'000;  // catchup none: how old a slot may be and still fire
  int max_fires_per_tick = 100;
  // How a fired run is shipped (bundle/ship.h), from the pipeline file's directory as it is at
  // the slot; nullopt: not at all.
  std::optional<ShipOptions> ship;
};

class Scheduler {
 public:
  // Reads and records slots in `schedules`; looks up the runs it fired in `runs`.
  Scheduler(ScheduleStore& schedules, RunStore& runs, Engine& engine, SchedulerOptions options = {})
      : schedules_(schedules), runs_(runs), engine_(engine), options_(options) {}

  struct TickResult {
    std::vector<ScheduleFire> recorded;  // fired and skipped slots
    std::vector<std::string> errors;     // one per schedule that could not fire, with its name
  };
  // Handles every due slot. A schedule that fails (its spec no longer parses, say) is reported
  // in `errors` and tried again next tick; the others go on.
  absl::StatusOr<TickResult> Tick();

  // The run id of a schedule's slot.
  static std::string RunIdFor(const std::string& schedule, int64_t slot_ms);

 private:
  absl::Status TickOne(const ScheduleRecord& schedule, int64_t now,
                       std::vector<ScheduleFire>& recorded);
  // Creates the slot's run (or finds it created by an earlier attempt) and starts it.
  absl::Status Fire(const ScheduleRecord& schedule, int64_t slot);
  // Whether the newest fired run of the schedule has not finished.
  absl::StatusOr<bool> PreviousRunGoing(const std::string& schedule);

  ScheduleStore& schedules_;
  RunStore& runs_;
  Engine& engine_;
  SchedulerOptions options_;
};

// The schedule a pipeline declares (`schedule:`; cron "" if none), named after it, with its spec
// frozen and runs rooted at `root`.
ScheduleRecord ScheduleFromPipeline(const Pipeline& pipeline, const std::string& root);

// Checks a schedule's fields (name, cron and zone, policies, spec) before it is stored.
absl::Status ValidateSchedule(const ScheduleRecord& schedule);

}  // namespace barge
