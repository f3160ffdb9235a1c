// What every command needs: where state, data and scratch live (from flags, then BARGE_STATE,
// BARGE_ROOT and BARGE_SCRATCH, then defaults under ./.barge), and the opened state store.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "bundle/ship.h"
#include "common/clock.h"
#include "common/units.h"
#include "objstore/object_stores.h"
#include "store/state_store.h"

namespace barge {

struct Locations {
  std::string state;         // flag value, if given
  std::string root;          // flag value, if given
  std::string scratch;       // flag value, if given
  bool shared_root = false;  // --shared-root: every worker mounts the local root at its path
};

struct Context {
  std::string state_url;
  std::string root;
  std::string scratch;
  std::string state_dir;      // the directory of a SQLite state file; "" for PostgreSQL
  bool shared_state = false;  // PostgreSQL: workers on other machines may run the tasks
  bool shared_root = false;   // --shared-root or BARGE_SHARED_ROOT=1
  // The command's object stores (objstore/object_stores.h), for everything it builds.
  std::unique_ptr<ObjectStores> object_stores;
  std::unique_ptr<StateStore> store;
};

// Whether a command may create a SQLite state store that does not exist yet. Commands that look
// at or steer existing runs do not (kExisting): a missing file is seen as an empty store (no
// runs, no workers, no schedules), and a mistyped --state leaves no database file behind.
enum class StoreMode { kCreate, kExisting };

// Resolves locations and opens the store. A store value that is neither a PostgreSQL URL nor a
// SQLite path (see store/store_url.h) is refused, naming where it came from (--state or
// BARGE_STATE) with its password masked. The context's object stores are `stores` if given (a
// command that listed inputs before it opened its context), else fresh ones.
absl::StatusOr<std::unique_ptr<Context>> OpenContext(
    const Locations& flags, StoreMode mode = StoreMode::kCreate,
    std::unique_ptr<ObjectStores> stores = nullptr);

// How a submission from this context ships its run (bundle/ship.h): the bundle left out of the
// root, state and scratch directories, files uploaded for a shared store.
ShipOptions ShipOptionsFor(const Context& ctx, int64_t bundle_max);

// Ships `pipeline` for a new run in `ctx` and says on stderr what it stored (one line).
absl::StatusOr<Shipment> Ship(const Context& ctx, const Pipeline& pipeline, int64_t bundle_max);

// Resolves "last" / "latest" to the newest run; checks that other ids exist.
absl::StatusOr<std::string> ResolveRunId(RunStore& runs, const std::string& id);

// Prints `status` as "barge: error: ..." to stderr, with any URL password or other recognisable
// secret masked (common/redact.h), and returns its exit code.
int ReportError(const absl::Status& status);

}  // namespace barge
