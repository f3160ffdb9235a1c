#include "objstore/data_root.h"

#include <algorithm>
#include <filesystem>

#include "common/fs.h"
#include "common/status.h"
#include "common/strings.h"
#include "objstore/local_store.h"
#include "objstore/s3_store.h"

namespace barge {

bool IsLocalRoot(std::string_view root) { return !IsObjectStoreUrl(root); }

absl::StatusOr<std::string> NormalizeRoot(std::string_view root) {
  std::string out(root);
  if (IsLocalRoot(out)) return AbsolutePath(out);
  RETURN_IF_ERROR(S3OptionsFromUrl(out).status());
  while (out.ends_with("/")) out.pop_back();
  return out;
}

absl::StatusOr<DataRoot> DataRoot::Open(const std::string& root, ObjectStores& stores) {
  if (IsLocalRoot(root)) {
    // Opening creates nothing: a reader of a root that is not there finds no objects.
    return DataRoot(root, std::make_shared<LocalObjectStore>(root), root);
  }
  ASSIGN_OR_RETURN(ObjectStore * shared, stores.Open(root));
  // Owned by `stores`, which outlives the root (objstore/data_root.h).
  return DataRoot(root, std::shared_ptr<ObjectStore>(shared, [](ObjectStore*) {}), std::nullopt);
}

std::string DataRoot::RunPrefix(std::string_view run_id) { return Cat("runs/", run_id, "/"); }

std::string DataRoot::AttemptKey(const AttemptId& a) {
  return Cat("runs/", a.run_id, "/", a.step, "/", a.index, "/a", a.attempt);
}

std::string DataRoot::LogKey(const AttemptId& a) { return Cat(AttemptKey(a), ".log"); }

std::string DataRoot::LiveLogPrefix(std::string_view log_key) { return Cat(log_key, ".live/"); }

std::string DataRoot::LiveLogPieceKey(std::string_view log_key, int64_t offset) {
  std::string digits = std::to_string(offset);
  return Cat(LiveLogPrefix(log_key), std::string(16 - std::min<size_t>(16, digits.size()), '0'),
             digits);
}

std::string DataRoot::ManifestKey(const AttemptId& a) {
  return Cat(AttemptKey(a), ".manifest.json");
}

std::string DataRoot::Location(std::string_view key) const { return Cat(root_, "/", key); }

absl::StatusOr<std::string> DataRoot::KeyOf(std::string_view location) const {
  std::string prefix = Cat(root_, "/");
  if (!location.starts_with(prefix)) {
    return absl::PermissionDeniedError(
        Cat("\"", location, "\" is not under the run's root ", root_));
  }
  std::string key(location.substr(prefix.size()));
  RETURN_IF_ERROR(CheckKey(key));
  if (local_dir_) {
    // Nor by way of a symbolic link: a task can write under a local root, links included.
    std::error_code ec;
    std::filesystem::path dir = std::filesystem::weakly_canonical(*local_dir_, ec);
    std::filesystem::path file =
        ec ? std::filesystem::path() : std::filesystem::weakly_canonical(std::string(location), ec);
    auto [end, unused] = std::mismatch(dir.begin(), dir.end(), file.begin(), file.end());
    if (ec || end != dir.end() || file == dir) {
      return absl::PermissionDeniedError(
          Cat("\"", location, "\" leads outside the run's root ", root_));
    }
  }
  return key;
}

}  // namespace barge
