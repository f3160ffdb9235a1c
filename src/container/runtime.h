// Container runtimes (podman, docker): how a step with `image:` runs its command in an OCI image
// on a worker, and the few facts barge asks the runtime for.
//
//   ASSIGN_OR_RETURN(const ContainerRuntime* rt, DetectContainerRuntime());
//   ASSIGN_OR_RETURN(std::string ref, PinImage(*rt, "localhost/score:1"));  // name@sha256:...
//   ContainerRunSpec c{.name = ContainerName(key, attempt), .image = ref, .argv = task.argv, ...};
//   spec.argv = ContainerRunArgv(*rt, c);  // podman run --name ... IMAGE ARGV...
//   ... run it; then RunCommand(RemoveContainerArgv(*rt, {c.name}))
//
// The runtime's client is the process barge spawns, in the task's process group, with the
// task's log as its stdout and stderr; the container itself is run by the runtime (podman's
// conmon, docker's daemon), outside that group, so barge removes it by name when the client has
// ended, however it ended, and registers that removal with the TaskReaper for the case of barge
// itself dying (process/reaper.h).
//
// Thread-safety: everything here may be called from many threads at once.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace barge {

struct ContainerRuntime {
  std::string program;  // as found: an absolute path when found on PATH
  std::string name;     // "podman" or "docker": the value of the worker label `container`
  std::string version;  // the client's
};

// Whether the runtime creates cgroups itself under the cgroup parent a container names
// (cgroupfs manager or driver, as root): barge then gives each container a parent of its own, to
// read its memory and CPU use after it exits (ContainerRanOutOfMemory). With the systemd manager
// a parent must be a slice, which barge does not make. Asked once per process and runtime (`info`
// may take seconds).
bool UsesCgroupParents(const ContainerRuntime& runtime);

// This machine's runtime: BARGE_CONTAINER_RUNTIME (a program name or path; "none": no runtime),
// else podman, else docker, found on PATH, and only if it answers `version`. Probed once per
// process. NotFound, saying what was tried, if there is none.
absl::StatusOr<const ContainerRuntime*> DetectContainerRuntime();

// Probes `program` (uncached): Unavailable if it does not run or answer.
absl::StatusOr<ContainerRuntime> ProbeContainerRuntime(const std::string& program);

// What a short command barge runs (the runtime's client) printed and how it ended.
struct CommandResult {
  int exit_code = -1;  // -1: not started, killed, or timed out
  std::string output;  // stdout and stderr, interleaved, at most 64 KiB
};
// Runs `argv` (argv[0] looked up on PATH) with barge's environment and stdin from /dev/null;
// kills it after `timeout_ms`.
CommandResult RunCommand(const std::vector<std::string>& argv, int64_t timeout_ms = 60'000);

// "barge-<run>-<step>-<index>-a<attempt>-<random>", in the characters container names allow
// ([a-zA-Z0-9_.-], others become '_').
std::string ContainerName(std::string_view run_id, std::string_view step, int64_t index,
                          int attempt);

struct ContainerMount {
  std::string path;  // bound at the same path inside
  bool read_only = true;
};

struct ContainerRunSpec {
  std::string name;
  std::string image;              // the pinned reference
  std::vector<std::string> argv;  // the task's command
  std::vector<std::string> env;   // names of variables passed from the client's environment
  std::string workdir;            // also mounted read-write
  std::vector<ContainerMount> mounts;
  uint32_t uid = 0, gid = 0;  // the user it runs as
  // Rootless podman: map the worker's uid to itself inside (--userns=keep-id), so that what the
  // container writes belongs to the worker and not to one of its subordinate uids.
  bool keep_id = false;
  double cpu = 0;             // 0: no limit
  int64_t memory_bytes = 0;   // 0: no limit; else a hard limit, swap included
  std::string cgroup_parent;  // "": the runtime's default
};

// `<runtime> run` with the options for `spec` (no --rm: barge inspects the container after it
// exits, then removes it): --name, --user, --network host, the binds, -w, limits, -e NAME for
// each variable (the values stay out of the command line, which other users may read; the
// client passes them from its own environment), then the image and the task's argv.
std::vector<std::string> ContainerRunArgv(const ContainerRuntime& runtime,
                                          const ContainerRunSpec& spec);

// `<runtime> rm -f -t 0 NAME...`: stops (SIGKILL, no grace) and removes; a missing name is no
// error.
std::vector<std::string> RemoveContainerArgv(const ContainerRuntime& runtime,
                                             const std::vector<std::string>& names);

// What barge's reaper runs for a container of barge's that is still there when barge has died:
// RemoveContainerArgv, then RemoveCgroupParent's work, in one /bin/sh command.
std::vector<std::string> ReapContainerArgv(const ContainerRuntime& runtime,
                                           const std::string& name);

// Resolves `image` on this machine to an immutable reference: `name@sha256:...` from the image's
// repository digests when it has one, else its image id `sha256:<id>`. An image that is not
// present is pulled first. Unavailable, with the runtime's output, if it cannot be found or
// pulled.
absl::StatusOr<std::string> PinImage(const ContainerRuntime& runtime, const std::string& image);

// Whether the output of a `run` that failed before the task's command ran (exit code 125) says
// the image could not be found or pulled: the worker's problem, not the task's.
bool IsImageProblem(std::string_view output);

// Whether the container `name`, which ended with exit code 137 (SIGKILL) that barge did not
// send, was killed for exceeding `memory_bytes`: the runtime's own verdict (State.OOMKilled)
// when it says so, else (some runtimes report false under cgroup v1) the memory cgroup of
// `cgroup_parent` (ContainerRunSpec::cgroup_parent): on cgroup v2 its memory.events counts an
// oom_kill; on v1 its peak use reached the limit. Call before the container is removed.
bool ContainerRanOutOfMemory(const ContainerRuntime& runtime, const std::string& name,
                             const std::string& cgroup_parent, int64_t memory_bytes);

// Removes the cgroup directories the runtime created for `cgroup_parent` (empty once the
// container is removed). Best effort.
void RemoveCgroupParent(const std::string& cgroup_parent);

}  // namespace barge
