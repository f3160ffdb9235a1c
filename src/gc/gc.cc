#include "gc/gc.h"

#include <algorithm>
#include <filesystem>

#include "common/fs.h"
#include "common/status.h"
#include "common/strings.h"
#include "objstore/data_root.h"
#include "objstore/object_store.h"

namespace barge {
namespace {

// Deletes (or, dry, only counts) the data of run `id` under its recorded `root`.
absl::Status DeleteRunData(ObjectStores& stores, const std::string& root, const std::string& id,
                           bool dry_run, GcRun& out) {
  std::string prefix = DataRoot::RunPrefix(id);
  // The id becomes a path: it must be one plain segment.
  if (id.empty() || id.find('/') != std::string::npos || !CheckKey(prefix + "x").ok()) {
    return absl::InvalidArgumentError(Cat("run id \"", id, "\" is not a plain name"));
  }
  ASSIGN_OR_RETURN(DataRoot data, DataRoot::Open(root, stores));
  ASSIGN_OR_RETURN(std::vector<ObjectInfo> objects, data.store().List(prefix));
  std::vector<std::string> keys;
  for (const ObjectInfo& o : objects) {
    keys.push_back(o.key);
    out.bytes += o.size;
  }
  out.objects = static_cast<int64_t>(keys.size());
  if (dry_run) return absl::OkStatus();
  // A directory also holds what no object store lists (the run's directories, the half-written
  // temporary files of an attempt that was killed): it goes whole, in one walk.
  if (data.local_dir()) return RemoveTree(data.Location(prefix));
  return data.store().Delete(keys);
}

}  // namespace

absl::StatusOr<GcReport> CollectGarbage(RunStore& store, ObjectStores& stores,
                                        const GcOptions& options,
                                        const std::function<void(const GcRun&)>& on_run) {
  // Runs a crashed gc left half-deleted come first, whatever their age.
  ASSIGN_OR_RETURN(std::vector<RunRecord> runs,
                   store.ListRuns({.state = std::string(state::kDeleting)}));
  ASSIGN_OR_RETURN(std::vector<RunRecord> old,
                   store.ListRuns({.finished_before = options.finished_before}));
  std::reverse(old.begin(), old.end());  // oldest first
  for (RunRecord& r : old) {
    if (r.state != state::kDeleting) runs.push_back(std::move(r));
  }
  GcReport report;
  for (RunRecord& run : runs) {
    GcRun gc{.run = std::move(run)};
    auto failed = [&](const absl::Status& s) {
      report.failures.push_back(WithContext(s, Cat("collecting run ", gc.run.id)));
    };
    if (!options.dry_run && gc.run.state != state::kDeleting) {
      // First mark it, in one compare-and-set: a resume that got there first wins (the run is
      // left alone), and one that comes later is refused. Only then is anything deleted.
      absl::StatusOr<bool> marked =
          store.TransitionRun(gc.run.id, gc.run.state, state::kDeleting, "");
      if (!marked.ok()) {
        failed(marked.status());
        continue;
      }
      if (!*marked) continue;
    }
    absl::Status s = DeleteRunData(stores, gc.run.root, gc.run.id, options.dry_run, gc);
    if (s.ok() && !options.dry_run && !options.scratch.empty()) {
      s = RemoveTree(Cat(options.scratch, "/", gc.run.id));
    }
    if (s.ok() && !options.dry_run) s = store.DeleteRun(gc.run.id);
    if (!s.ok()) {
      failed(s);
      continue;
    }
    report.objects += gc.objects;
    report.bytes += gc.bytes;
    if (on_run) on_run(gc);
    report.runs.push_back(std::move(gc));
  }
  return report;
}

}  // namespace barge
