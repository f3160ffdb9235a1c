// Garbage collection of finished runs: `barge gc --older-than 30d`.
//
//   GcOptions options{.finished_before = now - 30 * kDayMs};
//   ASSIGN_OR_RETURN(GcReport report, CollectGarbage(store, stores, options));
//
// A run is collected when it finished (succeeded, failed or cancelled) before the cutoff. It is
// first marked `deleting` by a compare-and-set on its state, so a concurrent `barge resume`
// either wins (and the run is skipped) or is refused; then its data under <root>/runs/<id>/ (a
// local directory or an S3 prefix) is deleted, then its rows. A gc killed part-way leaves the
// run `deleting`, and the next gc, whatever its cutoff, finishes it. Running runs are never
// touched. What a collected run produced is gone: it can no longer be resumed, retried or
// inspected.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "objstore/object_stores.h"
#include "store/run_store.h"

namespace barge {

struct GcOptions {
  int64_t finished_before = 0;  // ms since the epoch; runs finished before it are collected
  bool dry_run = false;         // count what would go, delete nothing
  std::string scratch;          // this machine's scratch directory: a run's leftovers go too
};

struct GcRun {
  RunRecord run;
  int64_t objects = 0;  // files or S3 objects of its data
  int64_t bytes = 0;
};

struct GcReport {
  std::vector<GcRun> runs;  // collected
  int64_t objects = 0;
  int64_t bytes = 0;
  // Runs that could not be collected (their store unreachable, say), each error naming its run.
  // Such a run stays `deleting` and is tried again by the next gc; the others go on.
  std::vector<absl::Status> failures;
};

// Collects every run left `deleting`, then every run finished before options.finished_before,
// oldest first, calling `on_run` after each one collected (for progress). A run that cannot be
// collected is listed in the report's `failures` and the others go on; the error returned is
// only for listing the runs. Data on an object store is deleted through `stores`.
absl::StatusOr<GcReport> CollectGarbage(RunStore& store, ObjectStores& stores,
                                        const GcOptions& options,
                                        const std::function<void(const GcRun&)>& on_run = {});

}  // namespace barge
