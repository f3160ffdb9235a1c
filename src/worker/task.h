// One task attempt, from its records to a finished process: where its files go, the exact
// command and environment it runs with, and the manifest of what it wrote.
//
// ResolveTask() is deterministic for a given run, task and attempt, so `barge exec` reproduces
// exactly what a worker ran.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/fs.h"
#include "nlohmann/json.hpp"
#include "objstore/object_stores.h"
#include "process/process.h"
#include "spec/pipeline.h"
#include "store/records.h"

namespace barge {

// Where an attempt's files live. Outputs and the log are under the root, scoped by attempt, so
// that nothing is ever renamed: the task's output is whichever attempt the store committed.
//
// With a root in an object store (s3://...), the attempt writes beside its scratch directory
// (<scratch dir>.out/, .log, .manifest.json) and RunAttempt uploads those to the same layout
// under the root, the `*_url` fields; the outputs first, the manifest last, then the worker
// commits. Nothing is renamed there either.
struct AttemptPaths {
  std::string root;           // the run's data root, as recorded (objstore/data_root.h)
  std::string output_dir;     // <root>/runs/<run>/<step>/<index>/a<attempt>/
  std::string log_path;       // <root>/runs/<run>/<step>/<index>/a<attempt>.log
  std::string manifest_path;  // <root>/runs/<run>/<step>/<index>/a<attempt>.manifest.json
  std::string scratch_dir;    // <scratch>/<run>/<step>-<index>-a<attempt>/ (the working directory)
  std::string output_url, log_url, manifest_url;  // object-store roots only
  // <scratch>/.bundles: this machine's unpacked code bundles (bundle/bundle.h BundleCache).
  std::string bundle_cache;

  bool remote() const { return !output_url.empty(); }
  // Where the attempt's log and outputs are kept, as recorded in the state store.
  const std::string& kept_log() const { return remote() ? log_url : log_path; }
  const std::string& kept_outputs() const { return remote() ? output_url : output_dir; }
};

AttemptPaths PathsFor(const std::string& root, const std::string& scratch, const TaskKey& key,
                      int attempt);

struct ResolvedTask {
  std::vector<std::string> argv;  // {"/bin/sh", "-c", command} or the argv form
  std::vector<std::pair<std::string, std::string>> env;  // barge's variables and the step's env
  std::vector<std::string> inputs;                       // input paths, in order
  std::string item_text;
  int64_t timeout_ms = 0;
  // Files to write into the scratch directory before the process starts (name, contents).
  std::vector<std::pair<std::string, std::string>> scratch_files;
  // Inputs in an object store, fetched into <scratch>/inputs/<bucket>/<key> before the process
  // starts; `inputs`, the item and the SQL views already name those local copies.
  std::vector<std::string> staged_urls;
  // The run's code bundle (its sha256) and where it is unpacked ($BARGE_PIPELINE_DIR): fetched
  // into AttemptPaths::bundle_cache before the process starts. Without a bundle (a run made
  // before bundles), the pipeline's own directory.
  std::string bundle;
  std::string pipeline_dir;
  // A step with `image:` (worker/container_task.h): the image as the spec names it, until the
  // worker pins it (ImagePins::Pin); then the pinned reference, or "" and image_error set.
  std::string image;
  std::string image_error;
  double cpu = 0;            // the step's resources: a container's limits
  int64_t memory_bytes = 0;  // 0: none
};

// This executable's path; SQL tasks run as `<it> __sql SPEC`.
std::string SelfExecutable();

// Resolves the command, environment and inputs of `task`'s attempt `attempt`. `shared_inputs_json`
// is the step's inputs, used when the task has none of its own.
//
// The argv form of `run:` has no shell, so barge expands `$NAME` and `${NAME}` in its elements
// itself, for the variables it sets (BARGE_*, AWS_BATCH_*, the step's env:); `$$` is a `$`.
absl::StatusOr<ResolvedTask> ResolveTask(const Pipeline& pipeline, const RunRecord& run,
                                         const TaskRecord& task,
                                         const std::string& shared_inputs_json, int attempt,
                                         const AttemptPaths& paths);

// Whether a variable of barge's own environment is kept from tasks: barge's configuration and
// control-plane secrets (every BARGE_* variable, such as BARGE_STATE, which may hold the store's
// password, and BARGE_TOKEN) and libpq's PG* variables (PGPASSWORD, PGHOST, ...), which configure
// and authenticate barge's own state-store connection. A step's `env:` may still set PG* names.
bool IsBargeOnlyVariable(std::string_view name);

// The process environment: this process's environment less the variables IsBargeOnlyVariable
// names, with `task.env` (barge's task variables and the step's `env:`) laid over it.
std::vector<std::string> TaskEnvironment(const ResolvedTask& task);

// The files a task left in its output directory, sorted by relative path. InvalidArgument, the
// task's own fault, naming the entry, for anything that cannot be committed faithfully: a
// symbolic link (to a file, a directory, nowhere, or itself), a fifo, socket or device, or a name
// that CheckCarriableName refuses. Internal if the directory cannot be read.
absl::StatusOr<std::vector<FileEntry>> ListOutputs(const std::string& dir);

struct AttemptOutcome {
  ProcessResult process;
  bool infra_failure = false;  // barge could not set the attempt up (disk full, permissions)
  std::string error;           // why it failed; empty on success
  std::string failure_class;   // set by the task's result file (bad_input); else by the policy
  nlohmann::json result;       // the task's result file (rows, schema), if it wrote one
  std::string outputs_json = "[]";
  int64_t bytes_out = 0;
  bool Succeeded() const { return !infra_failure && process.Succeeded() && error.empty(); }
};

// Prepares the attempt's directories and input list (staging inputs from `stores`), runs it, and
// on success writes its manifest (uploaded through `stores` on an object-store root). The scratch
// directory is removed afterwards unless `keep_scratch`.
AttemptOutcome RunAttempt(ProcessRunner& runner, ObjectStores& stores, const ResolvedTask& task,
                          const AttemptPaths& paths, const CancelToken& cancel,
                          bool keep_scratch = false);

}  // namespace barge
