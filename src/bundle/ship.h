// Shipping a run: what a submission puts under the run's root so that its tasks behave the same
// on whichever machine they land. Called once per submission (`barge run`, `--detach` or not,
// POST /api/runs, a schedule's fire), before the run is created:
//
//   ASSIGN_OR_RETURN(Shipment s, ShipRun(pipeline, ctx.root, stores, options));
//   engine.CreateRun(pipeline, ctx.root, "", {.bundle = s.bundle, .uploads_json = s.uploads_json});
//
// 1. The code bundle: the pipeline's directory packed (bundle/bundle.h) and stored at
//    <root>/bundles/<sha256>.tar.zst, uploaded only if no object of that name is there yet (so a
//    second run of unchanged code uploads nothing). Every run gets one, on a laptop too: its
//    tasks see the bundle as $BARGE_PIPELINE_DIR, so what works here works on a fleet.
// 2. The submitter's files, for a run other machines may run (a shared state store): every local
//    file that a files() pattern matches (a step's foreach or a named input) is stored under
//    <root>/files/<sha256>/<its name>, again only if absent, and the run records which stored
//    copies each pattern matched (RunRecord::uploads_json); the engine plans from that record
//    instead of globbing a disk it cannot see, and workers stage the copies like any object.
//
// A run whose state store is shared but whose root is a local directory is refused
// (FailedPrecondition, saying how to fix it) unless the root is declared shared (--shared-root:
// every worker mounts it at the same path, as on NFS).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bundle/bundle.h"
#include "objstore/object_stores.h"
#include "spec/pipeline.h"

namespace barge {

struct ShipOptions {
  bool shared_state = false;  // other machines may run the tasks (PostgreSQL)
  bool shared_root = false;   // a local root every worker mounts at the same path
  bool bundle = true;         // false: no bundle (a spec posted without a pipeline directory)
  int64_t bundle_max = 256LL << 20;
  std::string scratch;               // where the archive is written before it is stored
  std::vector<std::string> exclude;  // left out of the bundle: the root, state and scratch dirs
};

struct Shipment {
  std::string bundle;               // the bundle's sha256
  std::string uploads_json = "{}";  // RunRecord::uploads_json
  PackedBundle packed;
  bool bundle_stored = false;  // false: the root held it already
  int64_t files_stored = 0;    // submitter's files stored now (not already there)
  int64_t file_bytes_stored = 0;
  int64_t files_matched = 0;  // submitter's files the run reads
};

absl::StatusOr<Shipment> ShipRun(const Pipeline& pipeline, const std::string& root,
                                 ObjectStores& stores, const ShipOptions& options);

// Where the stored copy of a submitter's file with content `sha256` and base name `name` lives
// under a root: "files/<sha256>/<name>".
std::string UploadKey(const std::string& sha256, const std::string& name);

// The stored copies a files() `pattern` matched at submit, from a run's uploads_json; nullopt if
// the run recorded none for it (a run on one machine, an s3:// pattern): glob it then.
std::optional<std::vector<std::string>> UploadedMatches(const std::string& uploads_json,
                                                        const std::string& pattern);

}  // namespace barge
