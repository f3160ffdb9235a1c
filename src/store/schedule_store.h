// ScheduleStore: the schedules role of the state store. A schedule is a pipeline's frozen spec
// that the server runs at every cron slot; each slot handled (fired or skipped) is recorded once
// as a ScheduleFire, and moving a schedule's last_slot is a compare-and-set, so two servers
// never fire one slot twice. The scheduler, `barge schedule`, the API and metrics use it.
//
//   ASSIGN_OR_RETURN(std::vector<ScheduleRecord> due, schedules.ListSchedules());
//   ASSIGN_OR_RETURN(bool moved, schedules.RecordFire(fire, /*from_last_slot=*/s.last_slot));
//
// Thread-safety: implementations are safe to call from several threads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "store/records.h"

namespace barge {

class ScheduleStore {
 public:
  virtual ~ScheduleStore() = default;

  // The store's clock (ms since the epoch); slots are compared with it.
  virtual int64_t NowMs() = 0;

  // Creates or replaces a schedule's definition. A new schedule starts at last_slot = now; an
  // existing one keeps its last_slot, so changing a definition never re-fires a slot.
  virtual absl::Status PutSchedule(const ScheduleRecord& schedule) = 0;
  virtual absl::StatusOr<ScheduleRecord> GetSchedule(const std::string& name) = 0;  // NotFound
  virtual absl::StatusOr<std::vector<ScheduleRecord>> ListSchedules() = 0;
  // Returns false if there was no such schedule. Its fires are kept.
  virtual absl::StatusOr<bool> DeleteSchedule(const std::string& name) = 0;
  virtual absl::StatusOr<bool> SetScheduleEnabled(const std::string& name, bool enabled) = 0;
  // Records the outcome of a slot and moves last_slot to it, if last_slot is still `from`. Returns
  // false, changing nothing, if another process moved it first. A slot already recorded keeps its
  // first outcome.
  virtual absl::StatusOr<bool> RecordFire(const ScheduleFire& fire, int64_t from_last_slot) = 0;
  // The newest fires of a schedule, newest first.
  virtual absl::StatusOr<std::vector<ScheduleFire>> ListFires(const std::string& schedule,
                                                              int64_t limit) = 0;
};

}  // namespace barge
