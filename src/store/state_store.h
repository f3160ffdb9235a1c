// StateStore: the only memory of barge, as one object that plays every role of the store:
// RunStore (runs, steps, tasks, attempts, events), TaskQueue (claims, leases, fencing),
// ScheduleStore (schedules and their fires), FleetRegistry (workers) and Telemetry (queue load,
// finished attempts). One SQL implementation (sql_store.h) provides them all over SQLite or
// PostgreSQL; OpenStateStore() picks it from a URL at the top of each command, which hands each
// part of barge the roles it uses, and only those:
//
//   ASSIGN_OR_RETURN(std::unique_ptr<StateStore> store, OpenStateStore("sqlite:.barge/state.db"));
//   Engine engine(*store);                               // a RunStore
//   Worker worker(*store, *store, *store, engine, ...);  // runs, queue, fleet
//
// Thread-safety: implementations are safe to call from several threads (calls are serialised).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "store/fleet_registry.h"
#include "store/records.h"
#include "store/run_store.h"
#include "store/schedule_store.h"
#include "store/task_queue.h"
#include "store/telemetry.h"

namespace barge {

class StateStore : public RunStore,
                   public TaskQueue,
                   public ScheduleStore,
                   public FleetRegistry,
                   public Telemetry {
 public:
  ~StateStore() override = default;

  // The store's clock, one for every role: used for leases and times.
  int64_t NowMs() override = 0;
};

class Clock;

// Opens the store named by `url`: "postgres://..." / "postgresql://..." (PostgreSQL), or
// "sqlite:PATH", "sqlite://PATH" or a plain path (SQLite, creating the file). Applies pending
// migrations. Times come from the database's clock (PostgreSQL) or this host's (SQLite), unless
// a `clock` is given (tests); it must outlive the store.
absl::StatusOr<std::unique_ptr<StateStore>> OpenStateStore(const std::string& url,
                                                           Clock* clock = nullptr);

}  // namespace barge
