#include "schedule/scheduler.h"

#include "absl/time/time.h"
#include "common/labels.h"
#include "common/status.h"
#include "common/strings.h"
#include "nlohmann/json.hpp"
#include "schedule/cron.h"
#include "spec/pipeline.h"

namespace barge {
namespace {

constexpr int kMaxSlotsScanned = 200'000;  // a minutely schedule missed for over four months

absl::StatusOr<ParamOverrides> ParamsOf(const ScheduleRecord& s) {
  nlohmann::json j = nlohmann::json::parse(s.params_json, nullptr, false);
  if (!j.is_object()) {
    return absl::InvalidArgumentError(Cat("schedule ", s.name, ": params are not a JSON object"));
  }
  ParamOverrides out;
  for (const auto& [k, v] : j.items()) {
    if (!v.is_string()) {
      return absl::InvalidArgumentError(
          Cat("schedule ", s.name, ": param ", k, " is not a string"));
    }
    out[k] = v.get<std::string>();
  }
  return out;
}

}  // namespace

std::string Scheduler::RunIdFor(const std::string& schedule, int64_t slot_ms) {
  return Cat(schedule, "-",
             absl::FormatTime("%Y%m%d-%H%M", absl::FromUnixMillis(slot_ms), absl::UTCTimeZone()));
}

ScheduleRecord ScheduleFromPipeline(const Pipeline& p, const std::string& root) {
  return {.name = p.name,
          .cron = p.schedule.cron,
          .time_zone = p.schedule.time_zone,
          .catchup = p.schedule.catchup,
          .overlap = p.schedule.overlap,
          .spec_path = p.path,
          .spec_source = p.source,
          .root = root};
}

absl::Status ValidateSchedule(const ScheduleRecord& s) {
  if (!IsValidLabelText(s.name) || s.name.find('/') != std::string::npos) {
    return absl::InvalidArgumentError(
        Cat("schedule name \"", s.name, "\": use 1-63 letters, digits, '_', '-' or '.'"));
  }
  RETURN_IF_ERROR(Cron::Parse(s.cron, s.time_zone).status());
  if (!IsScheduleCatchup(s.catchup)) {
    return absl::InvalidArgumentError(
        Cat("catchup \"", s.catchup, "\": expected latest, all or none"));
  }
  if (!IsScheduleOverlap(s.overlap)) {
    return absl::InvalidArgumentError(
        Cat("overlap \"", s.overlap, "\": expected skip, queue or allow"));
  }
  ASSIGN_OR_RETURN(ParamOverrides params, ParamsOf(s));
  return ParsePipeline(s.spec_source, s.spec_path, params).status();
}

absl::StatusOr<Scheduler::TickResult> Scheduler::Tick() {
  ASSIGN_OR_RETURN(std::vector<ScheduleRecord> schedules, schedules_.ListSchedules());
  TickResult result;
  int64_t now = schedules_.NowMs();
  for (const ScheduleRecord& s : schedules) {
    if (!s.enabled) continue;
    absl::Status st = TickOne(s, now, result.recorded);
    if (!st.ok()) result.errors.push_back(Cat("schedule ", s.name, ": ", st.message()));
  }
  return result;
}

absl::StatusOr<bool> Scheduler::PreviousRunGoing(const std::string& schedule) {
  ASSIGN_OR_RETURN(std::vector<ScheduleFire> fires, schedules_.ListFires(schedule, 20));
  for (const ScheduleFire& f : fires) {
    if (f.outcome != "fired") continue;
    absl::StatusOr<RunRecord> run = runs_.GetRun(f.run_id);
    if (absl::IsNotFound(run.status())) return false;
    RETURN_IF_ERROR(run.status());
    return !IsFinalRunState(run->state);
  }
  return false;
}

absl::Status Scheduler::Fire(const ScheduleRecord& s, int64_t slot) {
  ASSIGN_OR_RETURN(ParamOverrides params, ParamsOf(s));
  ASSIGN_OR_RETURN(Pipeline pipeline, ParsePipeline(s.spec_source, s.spec_path, params));
  std::string id = RunIdFor(s.name, slot);
  // Another server may have created it since we looked: then it is ours to start all the same.
  Shipped shipped;
  if (options_.ship) {
    ASSIGN_OR_RETURN(Shipment ship,
                     ShipRun(pipeline, s.root, engine_.object_stores(), *options_.ship));
    shipped = {.bundle = ship.bundle, .uploads_json = ship.uploads_json};
  }
  absl::StatusOr<std::string> created = engine_.CreateRun(pipeline, s.root, id, shipped);
  if (!created.ok() && !absl::IsAlreadyExists(created.status())) return created.status();
  return engine_.Advance(id).status();
}

absl::Status Scheduler::TickOne(const ScheduleRecord& s, int64_t now,
                                std::vector<ScheduleFire>& recorded) {
  ASSIGN_OR_RETURN(Cron cron, Cron::Parse(s.cron, s.time_zone));
  std::vector<int64_t> due;
  for (int64_t t = cron.NextAfterMs(s.last_slot); t >= 0 && t <= now; t = cron.NextAfterMs(t)) {
    due.push_back(t);
    if (static_cast<int>(due.size()) >= kMaxSlotsScanned) break;
  }
  if (due.empty()) return absl::OkStatus();

  int64_t last = s.last_slot;
  // Records `fire` if no other scheduler got there first; false: stop, another one did.
  auto record = [&](ScheduleFire fire) -> absl::StatusOr<bool> {
    fire.schedule = s.name;
    ASSIGN_OR_RETURN(bool moved, schedules_.RecordFire(fire, last));
    if (!moved) return false;
    last = fire.slot;
    fire.at = schedules_.NowMs();
    recorded.push_back(std::move(fire));
    return true;
  };

  if (s.catchup == "latest") {
    due.erase(due.begin(), due.end() - 1);
  } else if (s.catchup == "none") {
    int64_t newest = due.back();
    if (now - newest >= options_.grace_ms) {
      // Every due slot was missed: move past them, firing nothing.
      return record({.slot = newest, .outcome = "skipped", .run_id = "missed (catchup: none)"})
          .status();
    }
    due.erase(due.begin(), due.end() - 1);
  }
  int fired = 0;
  for (int64_t slot : due) {
    if (fired >= options_.max_fires_per_tick) break;
    // A server that stopped between creating a slot's run and recording it: record it now.
    absl::StatusOr<RunRecord> existing = runs_.GetRun(RunIdFor(s.name, slot));
    if (!existing.ok() && !absl::IsNotFound(existing.status())) return existing.status();
    if (s.overlap != "allow" && !existing.ok()) {
      ASSIGN_OR_RETURN(bool going, PreviousRunGoing(s.name));
      if (going && s.overlap == "queue") return absl::OkStatus();  // fire it once that run ends
      if (going) {
        ASSIGN_OR_RETURN(bool ok, record({.slot = slot,
                                          .outcome = "skipped",
                                          .run_id = "previous run still going (overlap: skip)"}));
        if (!ok) return absl::OkStatus();
        continue;
      }
    }
    if (existing.ok()) {
      RETURN_IF_ERROR(engine_.Advance(existing->id).status());  // created; maybe never started
    } else {
      RETURN_IF_ERROR(Fire(s, slot));
    }
    ASSIGN_OR_RETURN(bool ok,
                     record({.slot = slot, .outcome = "fired", .run_id = RunIdFor(s.name, slot)}));
    if (!ok) return absl::OkStatus();
    ++fired;
  }
  return absl::OkStatus();
}

}  // namespace barge
