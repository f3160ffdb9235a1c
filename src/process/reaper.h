// TaskReaper: no task process outlives the barge process that started it, however barge ends
// (SIGKILL and the OOM killer included, which no handler of barge's own can catch).
//
// Start() spawns one small helper per barge process: this executable run again as the hidden
// `barge __reaper`, in a session of its own (so a Ctrl-C meant for barge does not reach it),
// joined to barge by a socket pair. Barge registers each task's process group right after
// spawning its leader (the child registers itself, before it runs the task's program: see
// RegisterSelf), and unregisters it once the group has been killed, before the leader is reaped
// (so its id cannot have been reused). When barge ends the socket reaches end of file and
// the helper SIGKILLs every group still registered, then exits. The cost per task is two
// send(2) calls; there is no extra process per task.
//
//   absl::StatusOr<std::unique_ptr<TaskReaper>> reaper = TaskReaper::Start(SelfExecutable());
//   PosixProcessRunner runner(reaper.ok() ? reaper->get() : nullptr);
//
// What a task starts outside its group and the reaper cannot kill (a container, which the
// runtime runs) is covered by a cleanup command registered beside it (RegisterCleanup): the
// helper runs every command still registered after killing the groups, with the variables of
// barge's environment that container runtimes read (PATH, HOME, XDG_*, CONTAINERS_*, DOCKER_*).
//
//   int id = reaper->RegisterCleanup({"podman", "rm", "-f", "-t", "0", name});
//   ... run the task, remove the container ...
//   reaper->UnregisterCleanup(id);
//
// Not covered: a process that leaves its task's process group (setsid, setpgid), as a daemon
// would.
//
// Thread-safety: RegisterSelf() (in children) and Unregister() may be called from many threads
// at once.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace barge {

class TaskReaper {
 public:
  // Spawns `self_exe __reaper`. Fails if it cannot be started.
  static absl::StatusOr<std::unique_ptr<TaskReaper>> Start(const std::string& self_exe);
  // Takes over `fd`, the barge end of a socket pair whose other end `helper` serves with
  // RunReaper (tests start the helper themselves).
  static std::unique_ptr<TaskReaper> Adopt(int fd, pid_t helper) {
    return std::unique_ptr<TaskReaper>(new TaskReaper(fd, helper));
  }
  // Closes the socket (the helper then kills whatever is still registered) and waits for it.
  ~TaskReaper();
  TaskReaper(const TaskReaper&) = delete;
  TaskReaper& operator=(const TaskReaper&) = delete;

  void Unregister(pid_t process_group);
  // Registers the calling process's own group (a task's leader, whose group id is its pid).
  // Async-signal-safe and allocation-free: for a spawned child between vfork and exec, so that
  // the group is registered before the task's program runs and even if barge dies in between
  // (the child's copy of the socket keeps it open until the message is sent). Errors are left
  // to Unregister.
  void RegisterSelf() const;

  // Registers `argv` to be run if barge dies before UnregisterCleanup(id); returns the id.
  // At most kMaxCleanupBytes of arguments.
  int RegisterCleanup(const std::vector<std::string>& argv);
  void UnregisterCleanup(int id);

  pid_t helper_pid() const { return helper_; }

 private:
  TaskReaper(int fd, pid_t helper) : fd_(fd), helper_(helper) {}
  void Send(int32_t op, pid_t process_group, std::string_view payload = {});

  int fd_;
  pid_t helper_;
  std::atomic<bool> warned_{false};
  std::atomic<int> next_cleanup_{1};
};

// The helper's main loop (`barge __reaper`): reads registrations from file descriptor `fd` until
// end of file, then SIGKILLs every process group still registered. Returns the exit code.
int RunReaper(int fd);

// The file descriptor `barge __reaper` finds its socket on.
inline constexpr int kReaperFd = 3;

// What barge sends its helper, one SOCK_SEQPACKET message each.
struct ReaperMessage {
  static constexpr int32_t kRegister = 1;
  static constexpr int32_t kUnregister = 2;
  // process_group is then a cleanup id; the message goes on with its argv, each NUL-terminated.
  static constexpr int32_t kRegisterCleanup = 3;
  static constexpr int32_t kUnregisterCleanup = 4;
  int32_t op;
  int32_t process_group;
};
inline constexpr size_t kMaxCleanupBytes = 16 << 10;

}  // namespace barge
