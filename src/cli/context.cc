#include "cli/context.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "common/fs.h"
#include "common/redact.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/units.h"
#include "objstore/data_root.h"
#include "store/state_store.h"
#include "store/store_url.h"

namespace barge {
namespace {

std::string FirstOf(const std::string& flag, const char* env, const std::string& fallback) {
  if (!flag.empty()) return flag;
  const char* value = std::getenv(env);
  if (value != nullptr && *value != '\0') return value;
  return fallback;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Context>> OpenContext(const Locations& flags, StoreMode mode,
                                                     std::unique_ptr<ObjectStores> stores) {
  auto ctx = std::make_unique<Context>();
  ctx->object_stores = stores != nullptr ? std::move(stores) : std::make_unique<ObjectStores>();
  ctx->state_url = FirstOf(flags.state, "BARGE_STATE", ".barge/state.db");
  const char* env = std::getenv("BARGE_STATE");
  const char* source = !flags.state.empty()             ? "--state"
                       : env != nullptr && *env != '\0' ? "BARGE_STATE"
                                                        : "the default state store";
  absl::StatusOr<StoreUrl> store_url = ParseStoreUrl(ctx->state_url);
  if (!store_url.ok()) return WithContext(store_url.status(), source);
  // Data and scratch default to directories beside a local state file.
  std::string base = ".barge";
  std::string open_url = ctx->state_url;
  if (store_url->kind == StoreUrl::Kind::kSqlite) {
    std::string path = AbsolutePath(store_url->target);
    base = std::filesystem::path(path).parent_path().string();
    ctx->state_dir = base;
    std::error_code ec;
    if (mode == StoreMode::kExisting && !std::filesystem::exists(path, ec)) {
      open_url = "sqlite::memory:";  // empty, and gone when the command ends
    }
  }
  absl::StatusOr<std::string> root =
      NormalizeRoot(FirstOf(flags.root, "BARGE_ROOT", base + "/data"));
  if (!root.ok()) return WithContext(root.status(), "--root");
  ctx->root = *std::move(root);
  ctx->scratch = AbsolutePath(FirstOf(flags.scratch, "BARGE_SCRATCH", base + "/scratch"));
  ctx->shared_state = store_url->kind != StoreUrl::Kind::kSqlite;
  ctx->shared_root = flags.shared_root || FirstOf("", "BARGE_SHARED_ROOT", "") == "1";
  ASSIGN_OR_RETURN(ctx->store, OpenStateStore(open_url));
  return ctx;
}

ShipOptions ShipOptionsFor(const Context& ctx, int64_t bundle_max) {
  ShipOptions o;
  o.shared_state = ctx.shared_state;
  o.shared_root = ctx.shared_root;
  o.bundle_max = bundle_max;
  o.scratch = ctx.scratch;
  o.exclude = {ctx.scratch};
  if (IsLocalRoot(ctx.root)) o.exclude.push_back(ctx.root);
  if (!ctx.state_dir.empty()) o.exclude.push_back(ctx.state_dir);
  return o;
}

absl::StatusOr<Shipment> Ship(const Context& ctx, const Pipeline& pipeline, int64_t bundle_max) {
  ASSIGN_OR_RETURN(
      Shipment s, ShipRun(pipeline, ctx.root, *ctx.object_stores, ShipOptionsFor(ctx, bundle_max)));
  std::string line =
      Cat("barge: bundle ", s.bundle.substr(0, 12), ": ", s.packed.files, " files, ",
          FormatBytes(s.packed.bytes),
          s.bundle_stored ? Cat(", stored (", FormatBytes(s.packed.archive_bytes), ")")
                          : std::string(", already stored"));
  if (s.files_matched > 0) {
    line = Cat(line, "; ", s.files_matched, " local input files, ", s.files_stored, " stored (",
               FormatBytes(s.file_bytes_stored), ")");
  }
  std::fprintf(stderr, "%s\n", line.c_str());
  return s;
}

absl::StatusOr<std::string> ResolveRunId(RunStore& runs, const std::string& id) {
  if (id == "last" || id == "latest") {
    ASSIGN_OR_RETURN(std::vector<RunRecord> newest, runs.ListRuns({.limit = 1}));
    if (newest.empty()) return absl::NotFoundError("there are no runs yet");
    return newest.front().id;
  }
  RETURN_IF_ERROR(runs.GetRun(id).status());
  return id;
}

int ReportError(const absl::Status& status) {
  std::string message = MaskSecretsInText(ToString(status.message()));
  // Multi-line messages (a list of spec errors) print as they are, one per line.
  if (message.find('\n') != std::string::npos || message.find(": error") != std::string::npos) {
    std::fprintf(stderr, "barge: error:\n%s\n", message.c_str());
  } else {
    std::fprintf(stderr, "barge: error: %s\n", message.c_str());
  }
  return ExitCodeFor(status);
}

}  // namespace barge
