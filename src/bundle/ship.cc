#include "bundle/ship.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <set>

#include "common/fs.h"
#include "common/status.h"
#include "common/strings.h"
#include "nlohmann/json.hpp"
#include "objstore/data_root.h"
#include "objstore/glob.h"

namespace barge {
namespace {

// Stores `local` at `key` unless an object is there already. Returns whether it stored it.
absl::StatusOr<bool> StoreIfAbsent(ObjectStore& store, const std::string& key,
                                   const std::string& local) {
  absl::StatusOr<ObjectInfo> there = store.Head(key);
  if (there.ok()) return false;
  if (!absl::IsNotFound(there.status())) return there.status();
  RETURN_IF_ERROR(store.PutFile(key, local).status());
  return true;
}

// The local files() patterns of the pipeline: its steps' foreach and named inputs.
std::set<std::string> LocalPatterns(const Pipeline& pipeline) {
  std::set<std::string> out;
  for (const Step& step : pipeline.steps) {
    if (step.foreach.kind == ForeachKind::kFiles && !IsObjectStoreUrl(step.foreach.pattern)) {
      out.insert(step.foreach.pattern);
    }
    for (const NamedInput& in : step.inputs) {
      if (in.source.kind == ForeachKind::kFiles && !IsObjectStoreUrl(in.source.pattern)) {
        out.insert(in.source.pattern);
      }
    }
  }
  return out;
}

// Packs the pipeline's directory and stores the archive under the root if it is not there.
absl::Status ShipBundle(const Pipeline& pipeline, DataRoot& data, const ShipOptions& options,
                        Shipment& out) {
  RETURN_IF_ERROR(MakeDirs(options.scratch));
  static std::atomic<int64_t> serial{0};
  std::string archive = Cat(options.scratch, "/.bundle-", ::getpid(), "-", ++serial, ".tar.zst");
  BundleOptions bundle_options{.max_bytes = options.bundle_max, .exclude = options.exclude};
  absl::StatusOr<PackedBundle> packed = PackBundle(pipeline.dir, archive, bundle_options);
  if (!packed.ok()) {
    ::unlink(archive.c_str());
    return WithContext(packed.status(), Cat("packing ", pipeline.dir, " into the run's bundle"));
  }
  out.packed = *packed;
  out.bundle = packed->sha256;
  absl::StatusOr<bool> stored = StoreIfAbsent(data.store(), BundleKey(out.bundle), archive);
  ::unlink(archive.c_str());
  RETURN_IF_ERROR(WithContext(stored.status(), Cat("storing the bundle under ", data.root())));
  out.bundle_stored = *stored;
  return absl::OkStatus();
}

}  // namespace

std::string UploadKey(const std::string& sha256, const std::string& name) {
  return Cat("files/", sha256, "/", name);
}

std::optional<std::vector<std::string>> UploadedMatches(const std::string& uploads_json,
                                                        const std::string& pattern) {
  nlohmann::json j = nlohmann::json::parse(uploads_json, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  auto it = j.find(pattern);
  if (it == j.end() || !it->is_array()) return std::nullopt;
  std::vector<std::string> out;
  for (const auto& f : *it) {
    if (f.is_object() && f.contains("url") && f["url"].is_string()) {
      out.push_back(f["url"].get<std::string>());
    }
  }
  return out;
}

absl::StatusOr<Shipment> ShipRun(const Pipeline& pipeline, const std::string& root,
                                 ObjectStores& stores, const ShipOptions& options) {
  if (options.shared_state && IsLocalRoot(root) && !options.shared_root) {
    return absl::FailedPreconditionError(
        Cat("the state store is shared, so workers on other machines may run this run's tasks, but "
            "its data root ",
            root,
            " is a local directory they cannot see; give a root they all reach (--root s3://BUCKET/"
            "PREFIX, or BARGE_ROOT), or, if every worker mounts ",
            root, " at that same path (NFS), say so with --shared-root"));
  }
  ASSIGN_OR_RETURN(DataRoot data, DataRoot::Open(root, stores));
  Shipment out;

  // 1. The code bundle.
  if (options.bundle) RETURN_IF_ERROR(ShipBundle(pipeline, data, options, out));

  // 2. The submitter's files, for a fleet.
  if (!options.shared_state) return out;
  nlohmann::json uploads = nlohmann::json::object();
  for (const std::string& pattern : LocalPatterns(pipeline)) {
    ASSIGN_OR_RETURN(std::vector<std::string> matched, GlobInputs(pattern, stores));
    nlohmann::json copies = nlohmann::json::array();
    for (const std::string& path : matched) {
      ASSIGN_OR_RETURN(std::string sha, Sha256File(path));
      std::string key = UploadKey(sha, std::filesystem::path(path).filename().string());
      absl::StatusOr<bool> put = StoreIfAbsent(data.store(), key, path);
      RETURN_IF_ERROR(WithContext(put.status(), Cat("storing ", path, " under ", root)));
      if (*put) {
        ++out.files_stored;
        std::error_code ec;
        out.file_bytes_stored += static_cast<int64_t>(std::filesystem::file_size(path, ec));
      }
      ++out.files_matched;
      copies.push_back({{"path", path}, {"url", data.Location(key)}});
    }
    uploads[pattern] = std::move(copies);
  }
  out.uploads_json = uploads.dump();
  return out;
}

}  // namespace barge
