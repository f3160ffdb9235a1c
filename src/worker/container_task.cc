#include "worker/container_task.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <vector>

#include "common/fs.h"
#include "common/strings.h"
#include "common/units.h"
#include "container/runtime.h"

namespace barge {
namespace {

// barge's note in the attempt's log, so `barge logs` shows why barge failed it. Best effort.
void Note(const std::string& log_path, const std::string& line) {
  int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  std::string text = Cat("barge: ", line, "\n");
  [[maybe_unused]] ssize_t n = ::write(fd, text.data(), text.size());
  ::close(fd);
}

std::string EnvValue(const ResolvedTask& task, std::string_view name) {
  for (const auto& [k, v] : task.env) {
    if (k == name) return v;
  }
  return "";
}

// The end of the attempt's log: what the runtime's client said last.
std::string LogTail(const std::string& log_path) {
  absl::StatusOr<std::string> text = ReadFile(log_path);
  if (!text.ok()) return "";
  constexpr size_t kTail = 16 << 10;
  return text->size() > kTail ? text->substr(text->size() - kTail) : *text;
}

// The attempt fails before any container ran: barge's or the worker's problem, not the task's.
ProcessResult NotRun(const AttemptPaths& paths, const std::string& why, AttemptOutcome& outcome) {
  Note(paths.log_path, why);
  outcome.infra_failure = true;
  ProcessResult r;
  r.started = true;
  r.exit_code = 125;  // as the runtimes exit when they cannot run a container
  r.error = why;
  return r;
}

// Total CPU time of a cgroup v1 cpuacct hierarchy or a v2 cgroup, in seconds; -1 if unknown.
double CgroupCpuSeconds(const std::string& cgroup_parent) {
  if (absl::StatusOr<std::string> ns =
          ReadFile(Cat("/sys/fs/cgroup/cpuacct", cgroup_parent, "/cpuacct.usage"));
      ns.ok()) {
    return static_cast<double>(std::strtoll(ns->c_str(), nullptr, 10)) / 1e9;
  }
  if (absl::StatusOr<std::string> stat =
          ReadFile(Cat("/sys/fs/cgroup", cgroup_parent, "/cpu.stat"));
      stat.ok() && stat->starts_with("usage_usec ")) {
    return static_cast<double>(std::strtoll(stat->c_str() + 11, nullptr, 10)) / 1e6;
  }
  return -1;
}

}  // namespace

void ImagePins::Pin(const TaskKey& key, ResolvedTask& task) {
  if (task.image.empty()) return;
  std::pair<std::string, std::string> step(key.run_id, key.step);
  {
    absl::MutexLock lock(&mu_);
    if (auto it = pinned_.find(step); it != pinned_.end()) {
      task.image = it->second;
      return;
    }
  }
  std::string pinned;
  if (absl::StatusOr<std::vector<StepRecord>> steps = runs_.GetSteps(key.run_id); !steps.ok()) {
    task.image_error =
        Cat("reading the pinned image of step ", key.step, ": ", steps.status().message());
    return;
  } else {
    for (const StepRecord& s : *steps) {
      if (s.name == key.step) pinned = s.image;
    }
  }
  if (pinned.empty()) {
    absl::StatusOr<const ContainerRuntime*> runtime = DetectContainerRuntime();
    if (!runtime.ok()) {
      task.image_error = Cat("step ", key.step, " names an image, but this worker has ",
                             runtime.status().message());
      return;
    }
    absl::StatusOr<std::string> resolved = PinImage(**runtime, task.image);
    if (!resolved.ok()) {
      task.image_error = std::string(resolved.status().message());
      return;
    }
    absl::StatusOr<std::string> winner = runs_.PinStepImage(key.run_id, key.step, *resolved);
    if (!winner.ok()) {
      task.image_error = Cat("pinning image ", *resolved, ": ", winner.status().message());
      return;
    }
    pinned = *winner;
  }
  absl::MutexLock lock(&mu_);
  pinned_[step] = pinned;
  task.image = pinned;
}

ProcessResult RunInContainer(ProcessRunner& runner, const ResolvedTask& task,
                             const AttemptPaths& paths, ProcessSpec spec, const CancelToken& cancel,
                             AttemptOutcome& outcome) {
  if (!task.image_error.empty()) return NotRun(paths, task.image_error, outcome);
  absl::StatusOr<const ContainerRuntime*> found = DetectContainerRuntime();
  if (!found.ok()) {
    return NotRun(paths,
                  Cat("this step names an image, but this worker has ", found.status().message()),
                  outcome);
  }
  const ContainerRuntime& runtime = **found;
  ContainerRunSpec c;
  c.name = ContainerName(EnvValue(task, "BARGE_RUN_ID"), EnvValue(task, "BARGE_STEP"),
                         std::strtoll(EnvValue(task, "BARGE_TASK_INDEX").c_str(), nullptr, 10),
                         std::atoi(EnvValue(task, "BARGE_ATTEMPT").c_str()));
  c.image = task.image;
  c.argv = task.argv;
  c.workdir = paths.scratch_dir;
  c.uid = ::getuid();
  c.gid = ::getgid();
  c.keep_id = runtime.name == "podman" && ::geteuid() != 0;
  c.cpu = task.cpu;
  c.memory_bytes = task.memory_bytes;
  if (UsesCgroupParents(runtime)) c.cgroup_parent = Cat("/barge/", c.name);
  // Each path once, and nothing under the working directory, which is bound already (staged
  // inputs live there).
  std::set<std::string> bound = {paths.scratch_dir};
  auto bind = [&](const std::string& given, bool read_only) {
    if (given.empty()) return;
    // A relative source would name a volume, not a directory.
    std::string path = std::filesystem::absolute(given).lexically_normal().string();
    if (path.starts_with(paths.scratch_dir + "/")) return;
    if (!bound.insert(path).second) return;
    c.mounts.push_back({path, read_only});
  };
  bind(paths.output_dir, /*read_only=*/false);
  bind(EnvValue(task, "BARGE_PIPELINE_DIR"), /*read_only=*/true);
  for (const std::string& in : task.inputs) bind(in, /*read_only=*/true);
  for (const auto& [name, value] : task.env) c.env.push_back(name);
  spec.argv = ContainerRunArgv(runtime, c);

  // If barge dies meanwhile, its reaper removes the container (the client it kills cannot).
  TaskReaper* reaper = runner.reaper();
  int cleanup = reaper != nullptr ? reaper->RegisterCleanup(ReapContainerArgv(runtime, c.name)) : 0;
  ProcessResult result = runner.Run(spec, cancel);
  bool oom = false;
  bool stopped_by_barge = result.timed_out || result.cancelled;
  if (result.started && !stopped_by_barge && result.exit_code == 137 && c.memory_bytes > 0) {
    oom = ContainerRanOutOfMemory(runtime, c.name, c.cgroup_parent, c.memory_bytes);
  }
  // Removed whatever happened: a client killed by a timeout, a cancel or a drain (or one that
  // ended on its own) may leave its container running or stopped.
  CommandResult removed = RunCommand(RemoveContainerArgv(runtime, {c.name}), 60'000);
  if (removed.exit_code != 0) {
    Note(paths.log_path, Cat("removing container ", c.name, ": ", Trim(removed.output)));
  }
  if (!c.cgroup_parent.empty()) {
    // The client's CPU time is not the task's: the container's cgroup has it.
    if (double cpu = CgroupCpuSeconds(c.cgroup_parent); cpu >= 0) result.cpu_seconds = cpu;
    RemoveCgroupParent(c.cgroup_parent);
  }
  if (reaper != nullptr) reaper->UnregisterCleanup(cleanup);
  if (oom) {
    result.error = Cat("out of memory: the container exceeded its ", FormatBytes(c.memory_bytes),
                       " limit (resources.memory)");
    outcome.failure_class = failure::kOutOfMemory;
    Note(paths.log_path, result.error);
  } else if (result.started && !stopped_by_barge && result.exit_code == 125 &&
             IsImageProblem(LogTail(paths.log_path))) {
    // The runtime could not get the image here (absent, not pullable): another worker, or this
    // one later, may; the task itself never ran.
    result.error = Cat("the container runtime could not get image ", c.image, " (see the log)");
    outcome.infra_failure = true;
  }
  return result;
}

}  // namespace barge
