#include "worker/task.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "bundle/bundle.h"
#include "common/fs.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/text.h"
#include "common/units.h"
#include "objstore/data_root.h"
#include "objstore/stager.h"
#include "spec/template.h"
#include "sql/sql_task.h"
#include "worker/container_task.h"
#include "worker/live_log.h"

extern char** environ;

namespace barge {

AttemptPaths PathsFor(const std::string& root, const std::string& scratch, const TaskKey& key,
                      int attempt) {
  const AttemptId id{key.run_id, key.step, key.index, attempt};
  // Locations under the root, as DataRoot lays them out and records them.
  const DataRoot layout(root, nullptr, std::nullopt);
  AttemptPaths p;
  p.root = root;
  p.output_dir = layout.Location(DataRoot::AttemptKey(id));
  p.log_path = layout.Location(DataRoot::LogKey(id));
  p.manifest_path = layout.Location(DataRoot::ManifestKey(id));
  p.scratch_dir = Cat(scratch, "/", key.run_id, "/", key.step, "-", key.index, "-a", attempt);
  p.bundle_cache = Cat(scratch, "/.bundles");
  if (!IsLocalRoot(root)) {
    p.output_url = std::exchange(p.output_dir, Cat(p.scratch_dir, ".out"));
    p.log_url = std::exchange(p.log_path, Cat(p.scratch_dir, ".log"));
    p.manifest_url = std::exchange(p.manifest_path, Cat(p.scratch_dir, ".manifest.json"));
  }
  return p;
}

namespace {

// Where an attempt's inputs from object stores are staged (objstore/stager.h).
std::string InputsDir(const AttemptPaths& paths) { return Cat(paths.scratch_dir, "/inputs"); }

// `text` with $NAME and ${NAME} replaced by `vars`' values where NAME is one of them (anything
// else is left as written), and $$ by $.
std::string ExpandVariables(const std::string& text,
                            const std::map<std::string, std::string>& vars) {
  auto is_name_char = [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  };
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '$' || i + 1 == text.size()) {
      out += text[i];
      continue;
    }
    if (text[i + 1] == '$') {
      out += '$';
      ++i;
      continue;
    }
    size_t start = i + 1, end = start;
    bool braced = text[start] == '{';
    if (braced) ++start;
    end = start;
    while (end < text.size() && is_name_char(text[end])) ++end;
    if (braced && (end == text.size() || text[end] != '}')) end = start;  // not a ${NAME}
    auto it = end > start ? vars.find(text.substr(start, end - start)) : vars.end();
    if (it == vars.end()) {
      out += text[i];
      continue;
    }
    out += it->second;
    i = braced ? end : end - 1;
  }
  return out;
}

}  // namespace

absl::StatusOr<ResolvedTask> ResolveTask(const Pipeline& pipeline, const RunRecord& run,
                                         const TaskRecord& task,
                                         const std::string& shared_inputs_json, int attempt,
                                         const AttemptPaths& paths) {
  const Step* step = pipeline.FindStep(task.key.step);
  if (step == nullptr) {
    return absl::InternalError(Cat("run ", run.id, " has no step ", task.key.step));
  }
  ResolvedTask out;
  out.timeout_ms = step->timeout_ms;
  nlohmann::json views = nlohmann::json::object();  // SQL steps: view name -> its files
  nlohmann::json item = nlohmann::json::parse(task.item_json, nullptr, false);
  if (item.is_discarded()) item = nullptr;
  out.item_text = ItemText(item);
  // An input in an object store is read from its staged copy in the scratch directory.
  auto local_copy = [&](const std::string& path) -> absl::StatusOr<std::string> {
    ASSIGN_OR_RETURN(std::optional<std::string> staged, StagedPath(path, InputsDir(paths)));
    if (!staged) return path;
    out.staged_urls.push_back(path);
    return *std::move(staged);
  };
  if (item.is_string() && IsObjectStoreUrl(item.get<std::string>())) {
    ASSIGN_OR_RETURN(std::string local, local_copy(item.get<std::string>()));
    item = local;
    out.item_text = local;
  }
  const std::string& inputs_json = task.inputs_json.empty() ? shared_inputs_json : task.inputs_json;
  nlohmann::json inputs = nlohmann::json::parse(inputs_json, nullptr, false);
  if (inputs.is_array()) {
    for (const auto& in : inputs) {
      if (!in.is_object() || !in.contains("path") || !in["path"].is_string()) continue;
      ASSIGN_OR_RETURN(std::string path, local_copy(in["path"].get<std::string>()));
      const nlohmann::json& name = in.contains("view") ? in["view"] : nlohmann::json();
      nlohmann::json& view = views[name.is_string() ? name.get<std::string>() : "input"];
      if (in.contains("schema_only") && in["schema_only"].is_boolean() &&
          in["schema_only"].get<bool>()) {
        view["schema_path"] = path;  // an empty bucket: columns only
        continue;
      }
      view["paths"].push_back(path);
      out.inputs.push_back(path);
    }
  }

  std::sort(out.staged_urls.begin(), out.staged_urls.end());
  out.staged_urls.erase(std::unique(out.staged_urls.begin(), out.staged_urls.end()),
                        out.staged_urls.end());

  std::map<std::string, std::string> params = pipeline.ParamMap();
  TemplateValues values{&params, item.is_null() ? nullptr : &item, task.key.index};
  if (!run.bundle.empty()) {
    out.bundle = run.bundle;
    out.pipeline_dir = Cat(paths.bundle_cache, "/", run.bundle);
  } else {
    out.pipeline_dir = pipeline.dir;
  }
  std::string index = std::to_string(task.key.index);
  std::string attempt_text = std::to_string(attempt);
  out.env = {
      {"BARGE_RUN_ID", run.id},
      {"BARGE_PIPELINE", run.pipeline},
      {"BARGE_PIPELINE_DIR", out.pipeline_dir},
      {"BARGE_STEP", task.key.step},
      {"BARGE_TASK_INDEX", index},
      {"BARGE_ATTEMPT", attempt_text},
      {"BARGE_ITEM", out.item_text},
      {"BARGE_INPUT", out.inputs.empty() ? "" : out.inputs.front()},
      {"BARGE_INPUT_LIST", Cat(paths.scratch_dir, "/.barge_inputs")},
      {"BARGE_OUTPUT_DIR", paths.output_dir},
      {"BARGE_SCRATCH_DIR", paths.scratch_dir},
      {"AWS_BATCH_JOB_ID", Cat(run.id, ":", task.key.step)},
      {"AWS_BATCH_JOB_ARRAY_INDEX", index},
      {"AWS_BATCH_JOB_ATTEMPT", attempt_text},
  };
  for (const auto& [name, value] : step->env) {
    out.env.emplace_back(name, RenderTemplate(value, values, /*shell_quote=*/false));
  }
  if (step->is_sql()) {
    nlohmann::json view_list = nlohmann::json::array();
    for (auto& [name, view] : views.items()) {
      view["name"] = name;
      view["format"] = step->read.format;
      view["delimiter"] = step->read.delimiter;
      view["header"] = step->read.header;
      view_list.push_back(view);
    }
    nlohmann::json spec = {
        {"step", step->name},
        {"index", task.key.index},
        {"query", RenderTemplate(step->sql, values, /*shell_quote=*/false)},
        {"views", view_list},
        {"output_dir", paths.output_dir},
        {"output", {{"format", step->output.format}, {"compression", step->output.compression}}},
        {"partition", {{"by", step->partition.by}, {"buckets", step->partition.buckets}}},
        {"threads", std::max(1, static_cast<int>(step->cpu + 0.5))},
        {"memory", step->memory_bytes},
        {"temp_dir", Cat(paths.scratch_dir, "/duckdb_tmp")}};
    out.scratch_files.emplace_back(kSqlSpecFile, DumpJson(spec, 2));
    out.argv = {SelfExecutable(), "__sql", Cat(paths.scratch_dir, "/", kSqlSpecFile)};
  } else if (step->shell) {
    out.argv = {"/bin/sh", "-c", RenderTemplate(step->command, values, /*shell_quote=*/true)};
  } else {
    std::map<std::string, std::string> vars(out.env.begin(), out.env.end());
    for (const std::string& arg : step->argv) {
      out.argv.push_back(ExpandVariables(RenderTemplate(arg, values, /*shell_quote=*/false), vars));
    }
  }
  if (!step->image.empty()) {
    out.image = step->image;
    out.cpu = step->cpu;
    out.memory_bytes = step->memory_bytes;
  }
  return out;
}

std::string SelfExecutable() {
  std::error_code ec;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("barge") : self.string();
}

bool IsBargeOnlyVariable(std::string_view name) {
  if (name.starts_with("BARGE_")) return true;
  // libpq's variables (PGPASSWORD, PGHOST, PGSERVICEFILE, ...): all upper case after "PG".
  if (name.size() > 2 && name.starts_with("PG")) {
    return std::all_of(name.begin() + 2, name.end(),
                       [](char c) { return (c >= 'A' && c <= 'Z') || c == '_'; });
  }
  return false;
}

std::vector<std::string> TaskEnvironment(const ResolvedTask& task) {
  std::map<std::string, std::string> merged;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view kv(*e);
    size_t eq = kv.find('=');
    if (eq == std::string_view::npos || IsBargeOnlyVariable(kv.substr(0, eq))) continue;
    merged[std::string(kv.substr(0, eq))] = std::string(kv.substr(eq + 1));
  }
  for (const auto& [k, v] : task.env) merged[k] = v;
  std::vector<std::string> out;
  out.reserve(merged.size());
  for (const auto& [k, v] : merged) out.push_back(Cat(k, "=", v));
  return out;
}

namespace {

// One input cache per scratch root, shared by every attempt this process runs. Its size:
// BARGE_INPUT_CACHE (e.g. 20GiB), default 4 GiB.
InputCache& InputCacheAt(const std::string& dir) {
  static absl::Mutex mu;
  static auto* caches = new std::map<std::string, std::unique_ptr<InputCache>>();
  absl::MutexLock lock(&mu);
  auto& cache = (*caches)[dir];
  if (!cache) {
    int64_t bytes = 4LL << 30;
    if (const char* env = std::getenv("BARGE_INPUT_CACHE"); env != nullptr) {
      if (absl::StatusOr<int64_t> b = ParseSizeBytes(env); b.ok()) bytes = *b;
    }
    cache = std::make_unique<InputCache>(dir, bytes);
  }
  return *cache;
}

// One bundle cache per directory, shared by every attempt this process runs. Its size:
// BARGE_BUNDLE_CACHE (e.g. 10GiB), default 2 GiB.
BundleCache& BundleCacheAt(const std::string& dir) {
  static absl::Mutex mu;
  static auto* caches = new std::map<std::string, std::unique_ptr<BundleCache>>();
  absl::MutexLock lock(&mu);
  auto& cache = (*caches)[dir];
  if (!cache) {
    int64_t bytes = 2LL << 30;
    if (const char* env = std::getenv("BARGE_BUNDLE_CACHE"); env != nullptr) {
      if (absl::StatusOr<int64_t> b = ParseSizeBytes(env); b.ok()) bytes = *b;
    }
    cache = std::make_unique<BundleCache>(dir, bytes);
  }
  return *cache;
}

// The run's code bundle, unpacked on this machine (fetched from the run's root if it is not).
absl::StatusOr<BundleCache::Lease> FetchBundle(ObjectStores& stores, const AttemptPaths& paths,
                                               const std::string& sha256) {
  return BundleCacheAt(paths.bundle_cache).Get(sha256, [&](const std::string& archive) {
    ASSIGN_OR_RETURN(DataRoot data, DataRoot::Open(paths.root, stores));
    return data.store().GetToFile(BundleKey(sha256), archive).status();
  });
}

// Relative paths in a command (`./fetch.sh`, `python ./score.py`, `bin/x`) are the bundle's (the
// pipeline's directory as submitted): its top-level entries appear in the working directory as
// symbolic links, except where barge's own files are.
void LinkPipelineEntries(const std::string& pipeline_dir, const std::string& scratch_dir) {
  if (pipeline_dir.empty()) return;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(pipeline_dir, ec)) {
    std::string name = entry.path().filename().string();
    if (name == "inputs" || name == ".barge_inputs" || name == kSqlSpecFile ||
        name == kTaskResultFile || name == "duckdb_tmp") {
      continue;
    }
    (void)::symlink(entry.path().c_str(), Cat(scratch_dir, "/", name).c_str());
  }
}

// Appends barge's own note to an attempt's log, so `barge logs` shows why barge failed it.
// Best effort: the log may be on a full disk.
void AppendToLog(const std::string& log_path, const std::string& line) {
  int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  [[maybe_unused]] ssize_t n = ::write(fd, line.data(), line.size());
  ::close(fd);
}

// A task that fails on a full disk usually says so on stderr, but its log is often on that same
// disk and the message is lost. "" or a note naming the directory whose file system is (nearly)
// full, for the attempt's recorded error.
std::string FullDiskNote(const AttemptPaths& paths) {
  constexpr uint64_t kNearlyFull = 1 << 20;
  for (const std::string& dir : {paths.output_dir, paths.scratch_dir}) {
    struct statvfs fs {};
    if (::statvfs(dir.c_str(), &fs) != 0) continue;
    uint64_t blocks = ::geteuid() == 0 ? fs.f_bfree : fs.f_bavail;
    uint64_t free_bytes = blocks * fs.f_frsize;
    if (free_bytes < kNearlyFull) {
      return Cat("no space left on device? the file system holding ", dir, " has ",
                 FormatBytes(static_cast<int64_t>(free_bytes)), " free");
    }
  }
  return "";
}

// What a symbolic link points to, for a message.
std::string LinkTarget(const std::filesystem::path& link) {
  std::error_code ec;
  std::filesystem::path target = std::filesystem::read_symlink(link, ec);
  return ec ? std::string("?") : ShowBytes(target.string());
}

}  // namespace

absl::StatusOr<std::vector<FileEntry>> ListOutputs(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::symlink_status(dir, ec).type() == fs::file_type::symlink) {
    return absl::InvalidArgumentError(
        Cat("the output directory was replaced by a symbolic link (to ", LinkTarget(dir),
            "); write files into it instead"));
  }
  std::vector<FileEntry> out;
  fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec), end;
  if (ec) return absl::InternalError(Cat("listing ", dir, ": ", ec.message()));
  for (; it != end; it.increment(ec)) {
    if (ec) return absl::InternalError(Cat("listing ", dir, ": ", ec.message()));
    std::string name = it->path().lexically_relative(dir).generic_string();
    RETURN_IF_ERROR(CheckCarriableName("output", name));
    fs::file_type type = it->symlink_status(ec).type();
    if (ec) return absl::InternalError(Cat("listing ", dir, ": ", ec.message()));
    if (type == fs::file_type::directory) continue;
    if (type == fs::file_type::symlink) {
      return absl::InvalidArgumentError(Cat("output ", name, " is a symbolic link (to ",
                                            LinkTarget(it->path()), "); write the file itself"));
    }
    if (type != fs::file_type::regular) {
      return absl::InvalidArgumentError(
          Cat("output ", name, " is not a regular file (a fifo, socket or device)"));
    }
    int64_t size = static_cast<int64_t>(it->file_size(ec));
    if (ec)
      return absl::InternalError(
          Cat("reading the size of ", it->path().string(), ": ", ec.message()));
    out.push_back({std::move(name), size});
  }
  std::sort(out.begin(), out.end(), [](const FileEntry& a, const FileEntry& b) {
    return a.relative_path < b.relative_path;
  });
  return out;
}

namespace {

absl::Status Publish(const AttemptPaths& paths, bool succeeded, ObjectStores& stores) {
  ASSIGN_OR_RETURN(DataRoot data, DataRoot::Open(paths.root, stores));
  auto put = [&](const std::string& local, const std::string& location) -> absl::Status {
    ASSIGN_OR_RETURN(std::string key, data.KeyOf(location));
    return data.store().PutFile(key, local).status();
  };
  std::error_code ec;
  if (std::filesystem::exists(paths.log_path, ec)) {
    RETURN_IF_ERROR(put(paths.log_path, paths.log_url));
  }
  if (!succeeded) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::vector<FileEntry> files, ListOutputs(paths.output_dir));
  for (const FileEntry& f : files) {
    RETURN_IF_ERROR(put(Cat(paths.output_dir, "/", f.relative_path),
                        Cat(paths.output_url, "/", f.relative_path)));
  }
  return put(paths.manifest_path, paths.manifest_url);
}

// What barge uses of a task's result file (which the task itself may write): "error" and
// "failure_class" if strings, "rows" if a whole number, "schema" as its {name, type} columns of
// strings. The rest is dropped, so nothing of another shape or depth reaches barge's code; a
// field barge would have used but cannot is named in `problem`.
nlohmann::json UsableResult(const nlohmann::json& j, std::string& problem) {
  nlohmann::json out = nlohmann::json::object();
  for (const char* key : {"error", "failure_class"}) {
    auto it = j.find(key);
    if (it == j.end()) continue;
    if (it->is_string()) {
      out[key] = it->get<std::string>();
    } else {
      problem = Cat(problem, problem.empty() ? "" : "; ", "\"", key, "\" in ", kTaskResultFile,
                    " is not a string");
    }
  }
  if (auto it = j.find("rows"); it != j.end() && it->is_number_integer()) {
    out["rows"] = it->get<int64_t>();
  }
  if (auto it = j.find("schema"); it != j.end() && it->is_array()) {
    nlohmann::json schema = nlohmann::json::array();
    for (const auto& column : *it) {
      if (!column.is_object()) continue;
      auto name = column.find("name");
      auto type = column.find("type");
      if (name == column.end() || !name->is_string() || type == column.end() ||
          !type->is_string()) {
        continue;
      }
      schema.push_back({{"name", name->get<std::string>()}, {"type", type->get<std::string>()}});
    }
    out["schema"] = std::move(schema);
  }
  return out;
}

// Lists the output directory and writes the manifest beside it.
absl::Status WriteManifest(const ResolvedTask& task, const AttemptPaths& paths,
                           AttemptOutcome& outcome) {
  ASSIGN_OR_RETURN(std::vector<FileEntry> files, ListOutputs(paths.output_dir));
  nlohmann::json manifest_files = nlohmann::json::array();
  nlohmann::json outputs = nlohmann::json::array();
  for (const FileEntry& f : files) {
    std::string path = Cat(paths.output_dir, "/", f.relative_path);
    ASSIGN_OR_RETURN(std::string sha, Sha256File(path));
    manifest_files.push_back({{"path", f.relative_path}, {"size", f.size}, {"sha256", sha}});
    outputs.push_back({{"path", Cat(paths.kept_outputs(), "/", f.relative_path)},
                       {"size", f.size},
                       {"sha256", sha}});
    outcome.bytes_out += f.size;
  }
  nlohmann::json manifest = {{"files", manifest_files}, {"bytes", outcome.bytes_out}};
  if (outcome.result.contains("rows")) manifest["rows"] = outcome.result["rows"];
  if (outcome.result.contains("schema")) manifest["schema"] = outcome.result["schema"];
  outcome.outputs_json = DumpJson(outputs);
  return WriteFile(paths.manifest_path, DumpJson(manifest, 2) + "\n");
}

// Creates an attempt's output and working directories. Another attempt of the same run, ending
// at that moment, may remove their parent (the run's scratch directory, when it was empty)
// between its creation and theirs: then it is created again.
absl::Status MakeAttemptDirs(const AttemptPaths& paths) {
  absl::Status s;
  for (int tries = 0; tries < 3; ++tries) {
    s = MakeDirs(paths.output_dir);
    if (s.ok()) s = MakeDirs(paths.scratch_dir);
    if (s.ok()) return s;
  }
  return s;
}

}  // namespace

AttemptOutcome RunAttempt(ProcessRunner& runner, ObjectStores& stores, const ResolvedTask& task,
                          const AttemptPaths& paths, const CancelToken& cancel, bool keep_scratch) {
  AttemptOutcome outcome;
  auto setup_failed = [&](const absl::Status& s) {
    outcome.infra_failure = true;
    outcome.error = Cat("setting up the attempt: ", s.message());
    return outcome;
  };
  auto remove_scratch = [&] {
    if (keep_scratch) return;
    (void)RemoveTree(paths.scratch_dir);
    // The run's directory too, once its last attempt here is gone (rmdir leaves a non-empty
    // one alone), so a long-lived worker does not collect one empty directory per run.
    (void)::rmdir(std::filesystem::path(paths.scratch_dir).parent_path().c_str());
  };
  if (absl::Status s = MakeAttemptDirs(paths); !s.ok()) return setup_failed(s);
  BundleCache::Lease bundle;  // held until the process ends: the bundle is not evicted under it
  if (!task.bundle.empty()) {
    absl::StatusOr<BundleCache::Lease> got = FetchBundle(stores, paths, task.bundle);
    if (!got.ok()) {
      remove_scratch();
      if (absl::IsNotFound(got.status())) {
        // Gone from the root (removed by hand): no attempt can ever get it.
        outcome.process.exit_code = kExitBadInput;
        outcome.failure_class = failure::kBadInput;
        outcome.error = Cat("the run's code bundle ", task.bundle.substr(0, 12),
                            " is gone from its root: ", got.status().message());
        return outcome;
      }
      return setup_failed(WithContext(got.status(), "fetching the run's code bundle"));
    }
    bundle = *std::move(got);
  }
  // A run without a bundle (a spec posted with no directory of its own) links nothing in: its
  // "directory" may be anything, such as a server's working directory.
  if (!bundle.path().empty()) LinkPipelineEntries(bundle.path(), paths.scratch_dir);
  if (!task.staged_urls.empty()) {
    std::string cache_dir =
        (std::filesystem::path(paths.scratch_dir) / "../../.input-cache").lexically_normal();
    absl::StatusOr<std::vector<std::string>> staged =
        StageInputs(task.staged_urls, InputsDir(paths), InputCacheAt(cache_dir), stores);
    if (!staged.ok()) {
      remove_scratch();
      // A key that cannot be staged or an object that is gone is the input's fault: not
      // retried. Anything else (the store unreachable after retries) is the infrastructure's.
      if (absl::IsInvalidArgument(staged.status()) || absl::IsNotFound(staged.status()) ||
          absl::IsPermissionDenied(staged.status())) {
        outcome.process.exit_code = kExitBadInput;
        outcome.failure_class = failure::kBadInput;
        outcome.error = std::string(staged.status().message());
        return outcome;
      }
      return setup_failed(staged.status());
    }
  }
  std::string list;
  for (const std::string& in : task.inputs) {
    // One path a line: a name with a newline would read as two inputs. Such names are refused
    // where they enter (outputs, files()); this keeps any that got in from being misread.
    if (absl::Status s = CheckCarriableName("input", in); !s.ok()) {
      remove_scratch();
      outcome.process.exit_code = kExitBadInput;
      outcome.failure_class = failure::kBadInput;
      outcome.error = std::string(s.message());
      return outcome;
    }
    list += in + "\n";
  }
  if (absl::Status s = WriteFile(Cat(paths.scratch_dir, "/.barge_inputs"), list); !s.ok()) {
    return setup_failed(s);
  }
  for (const auto& [name, contents] : task.scratch_files) {
    if (absl::Status s = WriteFile(Cat(paths.scratch_dir, "/", name), contents); !s.ok()) {
      return setup_failed(s);
    }
  }
  ProcessSpec spec;
  spec.argv = task.argv;
  spec.env = TaskEnvironment(task);
  spec.cwd = paths.scratch_dir;
  spec.log_path = paths.log_path;
  spec.timeout_ms = task.timeout_ms;
  // On an object-store root the log is followed through pieces shipped while the task runs.
  std::optional<DataRoot> live_root;
  std::unique_ptr<LiveLog> live_log;
  if (paths.remote()) {
    if (absl::StatusOr<DataRoot> data = DataRoot::Open(paths.root, stores); data.ok()) {
      if (absl::StatusOr<std::string> key = data->KeyOf(paths.log_url); key.ok()) {
        live_root = *std::move(data);
        live_log = std::make_unique<LiveLog>(live_root->store(), *key, paths.log_path,
                                             LiveLogIntervalMs());
      }
    }
  }
  outcome.process = task.image.empty() && task.image_error.empty()
                        ? runner.Run(spec, cancel)
                        : RunInContainer(runner, task, paths, spec, cancel, outcome);
  if (live_log) live_log->Stop();
  // A task may report more than its exit code: a message, a failure class, rows and schema.
  std::string result_problem;
  if (absl::StatusOr<std::string> report = ReadFile(Cat(paths.scratch_dir, "/", kTaskResultFile));
      report.ok()) {
    nlohmann::json j = nlohmann::json::parse(*report, nullptr, false);
    if (j.is_object()) outcome.result = UsableResult(j, result_problem);
  }
  if (outcome.process.log_failed) {
    remove_scratch();
    return setup_failed(absl::InternalError(outcome.process.error));
  } else if (!outcome.process.started) {
    // The command could not be started (not found, not executable): the task's own fault,
    // reported the way a shell would (exit code 127).
    outcome.process.exit_code = 127;
    outcome.error = outcome.process.error;
  } else if (!outcome.process.Succeeded()) {
    outcome.error = outcome.process.error;
    if (!outcome.process.timed_out && !outcome.process.cancelled) {
      if (auto it = outcome.result.find("error"); it != outcome.result.end()) {
        // Strings both, or absent: see UsableResult.
        if (std::string message = it->get<std::string>(); !message.empty()) outcome.error = message;
        if (auto c = outcome.result.find("failure_class"); c != outcome.result.end()) {
          outcome.failure_class = c->get<std::string>();
        }
      }
      if (!result_problem.empty()) outcome.error = Cat(outcome.error, " (", result_problem, ")");
    }
    if (!outcome.process.cancelled) {
      if (std::string note = FullDiskNote(paths); !note.empty()) {
        outcome.error = Cat(outcome.error, " (", note, ")");
        AppendToLog(paths.log_path, Cat("barge: ", note, "\n"));
      }
    }
  } else if (absl::Status s = WriteManifest(task, paths, outcome); absl::IsInvalidArgument(s)) {
    // What the task left in its output directory cannot be committed (a link, a name that
    // cannot be carried): the task's own failure, charged to its retries like a non-zero exit.
    outcome.error = std::string(s.message());
    AppendToLog(paths.log_path, Cat("barge: ", outcome.error, "\n"));
  } else if (!s.ok()) {
    outcome.infra_failure = true;
    outcome.error = Cat("writing the manifest: ", s.message());
  }
  if (paths.remote()) {
    // The log always; the outputs and then the manifest only for a success. A failed upload
    // is the infrastructure's fault: the task runs again, without using its retries.
    absl::Status up = Publish(paths, outcome.Succeeded(), stores);
    if (absl::IsInvalidArgument(up) && outcome.Succeeded()) {
      // The store refuses what the task wrote (a key too long, an object too large): the same
      // upload would be refused again, so it is the task's failure, not the infrastructure's.
      outcome.error = Cat("uploading the attempt's files: ", up.message());
      AppendToLog(paths.log_path, Cat("barge: ", outcome.error, "\n"));
      (void)Publish(paths, /*succeeded=*/false, stores);  // the log again, with that line
    } else if (!up.ok() && outcome.Succeeded()) {
      outcome.infra_failure = true;
      outcome.error = Cat("uploading the attempt's files: ", up.message());
    }
    // The whole log is up (or the attempt is retried): its live pieces are done with.
    if (live_log && up.ok()) live_log->Discard();
    if (!keep_scratch) {
      (void)RemoveTree(paths.output_dir);
      ::unlink(paths.log_path.c_str());
      ::unlink(paths.manifest_path.c_str());
    }
  }
  remove_scratch();
  return outcome;
}

}  // namespace barge
