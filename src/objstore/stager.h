// Input staging for tasks whose inputs live in an object store: each input URL becomes a local
// file in the task's scratch directory. A per-worker cache keyed by the object's ETag means an
// input shared by many tasks is downloaded once, and a changed object is downloaded again.
//
//   InputCache cache(scratch_root + "/.cache", 10LL << 30);
//   ASSIGN_OR_RETURN(std::vector<std::string> local,
//                    StageInputs({"s3://raw/a.csv", "/data/b.csv"}, task_scratch + "/inputs",
//                                cache, stores));
//
// Local paths pass through unchanged: a task reads a local input in place, with no copy, under
// the path the user gave (StagedPath is the one place staging tells the two kinds apart). A URL
// whose key would escape the staging directory
// ("..", an absolute path, NUL, empty segments) is refused as InvalidArgument: bad input.
#pragma once

#include <cstdint>
#include <future>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "objstore/object_store.h"
#include "objstore/object_stores.h"

namespace barge {

class InputCache {
 public:
  // Files live in `dir`; least recently used ones are removed beyond `max_bytes`.
  InputCache(std::string dir, int64_t max_bytes);

  // A local file with the object's current content: the cached copy if its ETag is current,
  // else a fresh download. Concurrent calls for one object share one download. The file stays
  // valid for the caller after eviction only if the caller links or copies it first.
  absl::StatusOr<std::string> Fetch(ObjectStore& store, const std::string& key);

  int64_t downloads() const {
    absl::MutexLock lock(&mu_);
    return downloads_;
  }
  int64_t hits() const {
    absl::MutexLock lock(&mu_);
    return hits_;
  }

 private:
  struct Entry {
    std::string path;
    std::string etag;
    int64_t size = 0;
    std::list<std::string>::iterator lru;
  };
  void EvictLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::string dir_;
  int64_t max_bytes_;
  mutable absl::Mutex mu_;
  std::map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);  // by store URL + key
  std::list<std::string> lru_ ABSL_GUARDED_BY(mu_);            // most recent first
  std::map<std::string, std::shared_future<absl::StatusOr<std::string>>> in_flight_
      ABSL_GUARDED_BY(mu_);
  int64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t downloads_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t hits_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t serial_ ABSL_GUARDED_BY(mu_) = 0;
};

// Where StageInputs puts `input` under `into`: into/<bucket>/<key> for an object URL, nullopt for
// a local path (read in place). InvalidArgument for a URL that names no object or a bad key.
absl::StatusOr<std::optional<std::string>> StagedPath(const std::string& input,
                                                      const std::string& into);

// Stages every input (in parallel) at its StagedPath under `into`; returns the local paths in
// the same order. Each object is read from its bucket's store in `stores`.
absl::StatusOr<std::vector<std::string>> StageInputs(const std::vector<std::string>& inputs,
                                                     const std::string& into, InputCache& cache,
                                                     ObjectStores& stores, int parallelism = 8);

}  // namespace barge
