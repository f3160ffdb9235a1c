#include "container/runtime.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>

#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/fs.h"
#include "common/strings.h"
#include "nlohmann/json.hpp"

extern char** environ;

namespace barge {
namespace {

constexpr size_t kMaxOutput = 64 << 10;

// `program` as execvp would find it, or "" if it is not on PATH.
std::string FindOnPath(const std::string& program) {
  if (program.find('/') != std::string::npos)
    return ::access(program.c_str(), X_OK) == 0 ? program : "";
  const char* env = std::getenv("PATH");
  std::string_view path = env != nullptr ? env : "/usr/local/bin:/usr/bin:/bin";
  for (size_t start = 0; start <= path.size();) {
    size_t end = path.find(':', start);
    if (end == std::string_view::npos) end = path.size();
    std::string dir(path.substr(start, end - start));
    std::string candidate = Cat(dir.empty() ? "." : dir, "/", program);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

std::string FirstLine(std::string_view text) {
  text = Trim(text);
  size_t nl = text.find('\n');
  return std::string(Trim(text.substr(0, nl)));
}

int64_t ReadNumber(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return -1;
  return std::strtoll(text->c_str(), nullptr, 10);
}

}  // namespace

CommandResult RunCommand(const std::vector<std::string>& argv, int64_t timeout_ms) {
  CommandResult result;
  int pipefd[2];
  if (argv.empty() || ::pipe2(pipefd, O_CLOEXEC) != 0) return result;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, pipefd[1], 1);
  posix_spawn_file_actions_adddup2(&actions, pipefd[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  // A group of its own, so that a timeout kills whatever it started too.
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(pipefd[1]);
  if (rc != 0) {
    ::close(pipefd[0]);
    result.output = Cat("cannot start ", argv[0], ": ", std::strerror(rc));
    return result;
  }
  int64_t deadline = MonotonicMs() + timeout_ms;
  bool timed_out = false;
  char buf[4096];
  for (;;) {
    int64_t left = deadline - MonotonicMs();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    struct pollfd p = {pipefd[0], POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1'000'000)));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;
    ssize_t got = ::read(pipefd[0], buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    if (result.output.size() < kMaxOutput) result.output.append(buf, static_cast<size_t>(got));
  }
  ::close(pipefd[0]);
  if (timed_out) ::kill(-pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    result.output += Cat("\n", argv[0], ": no answer in ", timeout_ms / 1000.0, "s\n");
  } else if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  }
  return result;
}

absl::StatusOr<ContainerRuntime> ProbeContainerRuntime(const std::string& program) {
  ContainerRuntime rt;
  rt.program = FindOnPath(program);
  if (rt.program.empty()) return absl::UnavailableError(Cat(program, " is not on PATH"));
  CommandResult v = RunCommand({rt.program, "version", "--format", "{{.Client.Version}}"}, 20'000);
  if (v.exit_code != 0 || Trim(v.output).empty()) {
    return absl::UnavailableError(Cat(rt.program,
                                      " version: ", v.exit_code == -1 ? "did not run" : "failed",
                                      ": ", FirstLine(v.output)));
  }
  rt.version = FirstLine(v.output);
  // The label names the runtime's kind: by its name, else (a wrapper) by what it says it is.
  std::string base = std::filesystem::path(rt.program).filename().string();
  if (base.find("podman") != std::string::npos) {
    rt.name = "podman";
  } else if (base.find("docker") != std::string::npos) {
    rt.name = "docker";
  } else {
    CommandResult kind = RunCommand({rt.program, "--version"}, 20'000);
    rt.name = kind.output.find("podman") != std::string::npos ? "podman" : "docker";
  }
  return rt;
}

bool UsesCgroupParents(const ContainerRuntime& runtime) {
  static absl::Mutex mu;
  static auto* known = new std::map<std::string, bool>();
  absl::MutexLock lock(&mu);
  auto it = known->find(runtime.program);
  if (it != known->end()) return it->second;
  bool uses = false;
  if (::geteuid() == 0) {  // rootless, the runtime cannot create cgroups at all
    CommandResult manager =
        runtime.name == "podman"
            ? RunCommand({runtime.program, "info", "--format", "{{.Host.CgroupManager}}"}, 60'000)
            : RunCommand({runtime.program, "info", "--format", "{{.CgroupDriver}}"}, 60'000);
    uses = manager.exit_code == 0 && FirstLine(manager.output) == "cgroupfs";
  }
  known->emplace(runtime.program, uses);
  return uses;
}

absl::StatusOr<const ContainerRuntime*> DetectContainerRuntime() {
  static std::once_flag once;
  static absl::StatusOr<ContainerRuntime>* detected = nullptr;
  std::call_once(once, [] {
    const char* env = std::getenv("BARGE_CONTAINER_RUNTIME");
    if (env != nullptr && *env != '\0') {
      if (std::string_view(env) == "none") {
        detected = new absl::StatusOr<ContainerRuntime>(
            absl::NotFoundError("no container runtime (BARGE_CONTAINER_RUNTIME=none)"));
      } else {
        absl::StatusOr<ContainerRuntime> rt = ProbeContainerRuntime(env);
        detected = new absl::StatusOr<ContainerRuntime>(
            rt.ok() ? std::move(rt)
                    : absl::NotFoundError(
                          Cat("BARGE_CONTAINER_RUNTIME=", env, ": ", rt.status().message())));
      }
      return;
    }
    std::vector<std::string> tried;
    for (const char* program : {"podman", "docker"}) {
      absl::StatusOr<ContainerRuntime> rt = ProbeContainerRuntime(program);
      if (rt.ok()) {
        detected = new absl::StatusOr<ContainerRuntime>(std::move(rt));
        return;
      }
      tried.emplace_back(rt.status().message());
    }
    detected = new absl::StatusOr<ContainerRuntime>(
        absl::NotFoundError(Cat("no container runtime (podman or docker): ", Join(tried, "; "))));
  });
  if (!detected->ok()) return detected->status();
  return &**detected;
}

std::string ContainerName(std::string_view run_id, std::string_view step, int64_t index,
                          int attempt) {
  static std::mutex mu;
  static std::mt19937_64 rng(std::random_device{}());
  uint64_t random;
  {
    std::lock_guard<std::mutex> lock(mu);
    random = rng();
  }
  std::string name = Cat("barge-", run_id, "-", step, "-", index, "-a", attempt, "-",
                         fmt::format("{:06x}", random & 0xffffff));
  for (char& c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-';
    if (!ok) c = '_';
  }
  return name;
}

std::vector<std::string> ContainerRunArgv(const ContainerRuntime& runtime,
                                          const ContainerRunSpec& spec) {
  std::vector<std::string> argv = {runtime.program, "run", "--name", spec.name, "--user",
                                   Cat(spec.uid, ":", spec.gid),
                                   // The task reaches what a plain task on the worker reaches.
                                   "--network", "host",
                                   // stdin is /dev/null; signals the client gets go to the
                                   // container (the default, said for docker's sake).
                                   "--sig-proxy=true"};
  if (spec.keep_id) argv.push_back("--userns=keep-id");
  if (!spec.cgroup_parent.empty()) argv.insert(argv.end(), {"--cgroup-parent", spec.cgroup_parent});
  if (spec.cpu > 0) argv.insert(argv.end(), {"--cpus", fmt::format("{:g}", spec.cpu)});
  if (spec.memory_bytes > 0) {
    // Swap equal to memory: no swap, so the limit is a hard one.
    std::string bytes = std::to_string(spec.memory_bytes);
    argv.insert(argv.end(), {"--memory", bytes, "--memory-swap", bytes});
  }
  if (!spec.workdir.empty()) {
    argv.insert(argv.end(),
                {"-v", Cat(spec.workdir, ":", spec.workdir, ":rw"), "-w", spec.workdir});
  }
  for (const ContainerMount& m : spec.mounts) {
    argv.insert(argv.end(), {"-v", Cat(m.path, ":", m.path, m.read_only ? ":ro" : ":rw")});
  }
  for (const std::string& name : spec.env) argv.insert(argv.end(), {"-e", name});
  argv.push_back(spec.image);
  argv.insert(argv.end(), spec.argv.begin(), spec.argv.end());
  return argv;
}

std::vector<std::string> ReapContainerArgv(const ContainerRuntime& runtime,
                                           const std::string& name) {
  // Names are of ContainerName's characters: safe in a glob. The cgroup parent's directories
  // (the monitor's is left behind) are removed like RemoveCgroupParent does.
  // The monitor may still be in its cgroup for a moment after `rm` returns: a few tries.
  return {"/bin/sh", "-c",
          "\"$0\" rm -f -t 0 \"$1\" >/dev/null 2>&1; for d in /sys/fs/cgroup/*/barge/\"$1\" "
          "/sys/fs/cgroup/barge/\"$1\"; do for try in 1 2 3 4 5 6 7 8 9 10; do "
          "[ -d \"$d\" ] || break; for c in \"$d\"/*/; do rmdir \"$c\" 2>/dev/null; done; "
          "rmdir \"$d\" 2>/dev/null && break; sleep 0.2; done; done; exit 0",
          runtime.program, name};
}

std::vector<std::string> RemoveContainerArgv(const ContainerRuntime& runtime,
                                             const std::vector<std::string>& names) {
  std::vector<std::string> argv = {runtime.program, "rm", "-f", "-t", "0"};
  argv.insert(argv.end(), names.begin(), names.end());
  return argv;
}

absl::StatusOr<std::string> PinImage(const ContainerRuntime& runtime, const std::string& image) {
  auto inspect = [&] {
    return RunCommand(
        {runtime.program, "image", "inspect", "--format", "{{.Id}} {{json .RepoDigests}}", image});
  };
  CommandResult found = inspect();
  std::string pull_output;
  if (found.exit_code != 0) {
    // Not here: pull it (a registry's image, on a worker that has not run it yet).
    CommandResult pull = RunCommand({runtime.program, "pull", image}, 30 * 60'000);
    pull_output = pull.output;
    if (pull.exit_code == 0) found = inspect();
  }
  if (found.exit_code != 0) {
    return absl::UnavailableError(Cat("image ", image,
                                      " is not on this worker and cannot be pulled: ",
                                      Trim(pull_output.empty() ? found.output : pull_output)));
  }
  std::string text(Trim(found.output));
  size_t space = text.find(' ');
  std::string id = text.substr(0, space);
  if (!id.starts_with("sha256:")) id = Cat("sha256:", id);
  // Already a digest: the reference is immutable as it stands.
  if (image.find("@sha256:") != std::string::npos) return image;
  nlohmann::json digests = space == std::string::npos
                               ? nlohmann::json()
                               : nlohmann::json::parse(text.substr(space + 1), nullptr, false);
  if (!digests.is_array() || digests.empty()) return id;
  // The digest of the repository named, if the image has several ("python:3" ->
  // docker.io/library/python).
  std::string repo = image.substr(0, image.find('@'));
  if (size_t colon = repo.rfind(':');
      colon != std::string::npos && repo.find('/', colon) == std::string::npos) {
    repo.resize(colon);
  }
  std::string first;
  for (const auto& d : digests) {
    if (!d.is_string()) continue;
    std::string ref = d.get<std::string>();
    if (first.empty()) first = ref;
    std::string name = ref.substr(0, ref.find('@'));
    if (name == repo || name.ends_with(Cat("/", repo))) return ref;
  }
  return first.empty() ? id : first;
}

bool IsImageProblem(std::string_view output) {
  for (std::string_view needle :
       {"image not known", "pull access denied", "manifest unknown", "no such image",
        "unable to find image", "initializing source", "error pulling image",
        "repository does not exist", "not found: manifest", "short-name",
        "failed to resolve reference", "unable to pull", "name unknown",
        "requested access to the resource is denied"}) {
    std::string lower(output);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower.find(needle) != std::string::npos) return true;
  }
  return false;
}

bool ContainerRanOutOfMemory(const ContainerRuntime& runtime, const std::string& name,
                             const std::string& cgroup_parent, int64_t memory_bytes) {
  CommandResult state =
      RunCommand({runtime.program, "inspect", "--format", "{{.State.OOMKilled}}", name}, 20'000);
  if (state.exit_code == 0 && FirstLine(state.output) == "true") return true;
  if (cgroup_parent.empty() || memory_bytes <= 0) return false;
  // cgroup v2: memory.events of a cgroup counts the OOM kills of its whole subtree.
  std::string v2 = Cat("/sys/fs/cgroup", cgroup_parent, "/memory.events");
  if (absl::StatusOr<std::string> events = ReadFile(v2); events.ok()) {
    size_t at = events->find("\noom_kill ");
    if (events->starts_with("oom_kill ")) at = 0;
    return at != std::string::npos &&
           std::strtoll(events->c_str() + events->find("oom_kill ", at) + 9, nullptr, 10) > 0;
  }
  // cgroup v1: the OOM counters live in the container's own cgroup, which is gone with it by
  // now; the parent's peak (hierarchical) use outlives it. The container is killed by the kernel
  // when its use reaches the limit and nothing can be reclaimed, so a container that ended by
  // SIGKILL (which barge did not send) with the parent's peak at the limit ran out of memory.
  // The peak also holds the runtime's monitor (conmon, <parent>/conmon), so this can misread a
  // container that was at its limit (page cache fills it) and was SIGKILLed by someone else:
  // rare, and said in the README. (The monitor's own peak comes after the container's exit,
  // when it runs the runtime's cleanup, so it cannot be subtracted.)
  int64_t peak =
      ReadNumber(Cat("/sys/fs/cgroup/memory", cgroup_parent, "/memory.max_usage_in_bytes"));
  // A few pages of slack: the kernel charges and reclaims in pages around the limit.
  constexpr int64_t kSlack = 64 << 10;
  return peak >= memory_bytes - kSlack;
}

void RemoveCgroupParent(const std::string& cgroup_parent) {
  if (cgroup_parent.empty()) return;
  std::error_code ec;
  std::vector<std::string> dirs;
  for (const auto& entry : std::filesystem::directory_iterator("/sys/fs/cgroup", ec)) {
    dirs.push_back(Cat(entry.path().string(), cgroup_parent));  // v1: one per controller
  }
  dirs.push_back(Cat("/sys/fs/cgroup", cgroup_parent));  // v2
  // The runtime's monitor may still be in its cgroup for a moment after the container is
  // removed (rmdir refuses a cgroup in use): a few tries, for up to 2 s.
  for (int attempt = 0; attempt < 20; ++attempt) {
    bool left = false;
    for (const std::string& dir : dirs) {
      if (!std::filesystem::exists(dir, ec)) continue;
      // Children first (the monitor's, and any the runtime left).
      for (const auto& child : std::filesystem::directory_iterator(dir, ec)) {
        if (child.is_directory(ec)) ::rmdir(child.path().c_str());
      }
      // Not /barge itself: another container may be being created under it at this moment.
      if (::rmdir(dir.c_str()) != 0) left = true;
    }
    if (!left) return;
    ::usleep(100'000);
  }
}

}  // namespace barge
