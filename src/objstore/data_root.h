// DataRoot: a run's data root, where its outputs and logs live, as one ObjectStore, with the
// layout of attempts inside it in one place.
//
// A root is recorded on each run (RunRecord::root) as an absolute directory path or an
// s3://bucket[/prefix] URL; NormalizeRoot() makes that form from what a user typed, and is the
// one place that tells the two kinds apart. The layout is the same on both:
//
//   runs/<run>/<step>/<index>/a<attempt>/...           the attempt's outputs
//   runs/<run>/<step>/<index>/a<attempt>.log           its log
//   runs/<run>/<step>/<index>/a<attempt>.manifest.json its manifest, written last
//
//   ASSIGN_OR_RETURN(DataRoot root, DataRoot::Open(run.root, stores));
//   std::string log = root.Location(DataRoot::LogKey({run, step, index, 2}));  // path or URL
//   ASSIGN_OR_RETURN(std::string key, root.KeyOf(log));  // DataRoot::LogKey({run, step, index, 2})
//   ASSIGN_OR_RETURN(auto objects, root.store().List(DataRoot::RunPrefix(run.id)));
//
// A local root is also where attempts write their outputs in place (local_dir()); on an object
// store they write beside their scratch directory and the files are uploaded under the same keys.
//
// Thread-safety: a DataRoot is immutable; its store is as thread-safe as the store itself.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/statusor.h"
#include "objstore/object_store.h"
#include "objstore/object_stores.h"

namespace barge {

// One attempt of one task, as the layout names it.
struct AttemptId {
  std::string_view run_id;
  std::string_view step;
  int64_t index = 0;
  int attempt = 0;
};

// The recorded form of a root a user gave: an s3:// URL without trailing slashes (checked as
// one), or else an absolute path (relative ones resolved against the working directory).
absl::StatusOr<std::string> NormalizeRoot(std::string_view root);

// Whether a recorded root is a local directory (rather than an object store URL).
bool IsLocalRoot(std::string_view root);

class DataRoot {
 public:
  // Opens the store of a recorded root. An S3 store comes from `stores`, shared by every user of
  // the same root in this command (its connections and credentials are reused); REQUIRES:
  // `stores` outlives the DataRoot. A local root is a LocalObjectStore of its own.
  static absl::StatusOr<DataRoot> Open(const std::string& root, ObjectStores& stores);
  // A root over a given store (tests): `local_dir` if the store's keys are files under it.
  DataRoot(std::string root, std::shared_ptr<ObjectStore> store,
           std::optional<std::string> local_dir)
      : root_(std::move(root)), store_(std::move(store)), local_dir_(std::move(local_dir)) {}

  // The root as recorded.
  const std::string& root() const { return root_; }
  // The local directory of the root, if it is one.
  const std::optional<std::string>& local_dir() const { return local_dir_; }
  ObjectStore& store() const { return *store_; }

  // The layout: keys relative to the root.
  static std::string RunPrefix(std::string_view run_id);  // "runs/<run>/"
  static std::string AttemptKey(const AttemptId& a);   // its outputs: "runs/<run>/<step>/<i>/a<n>"
  static std::string LogKey(const AttemptId& a);       // AttemptKey + ".log"
  static std::string ManifestKey(const AttemptId& a);  // AttemptKey + ".manifest.json"
  // While an attempt runs on an object-store root, its log so far, in pieces named by the byte
  // offset each starts at: "<log key>.live/<offset as 16 digits>" (worker/live_log.h).
  static std::string LiveLogPrefix(std::string_view log_key);  // "<log key>.live/"
  static std::string LiveLogPieceKey(std::string_view log_key, int64_t offset);

  // Where `key` is, as recorded and shown: a path under a local root, a URL under an S3 one.
  std::string Location(std::string_view key) const;
  // The key of a recorded location under this root. PermissionDenied for a location outside it
  // (on a local root, also through a symbolic link): a tampered or foreign record is never
  // followed. InvalidArgument for a key no store takes (CheckKey: "..", too long, ...).
  absl::StatusOr<std::string> KeyOf(std::string_view location) const;

 private:
  std::string root_;
  std::shared_ptr<ObjectStore> store_;
  std::optional<std::string> local_dir_;
};

}  // namespace barge
