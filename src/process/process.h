// Starting processes: the boundary between barge and the operating system.
//
// ProcessRunner runs one task's process to its end; ProcessLauncher starts a process that runs
// beside barge (the autoscaler's `barge worker` processes, its provider's scaling command), which
// the caller signals and reaps. Both start children the same way.
//
// PosixProcessRunner starts the child with vfork and exec (so the cost does not grow with the
// parent's size) in its own process group, stdin from /dev/null, stdout and
// stderr appended to a log file, in a given working directory. It waits on a pidfd, so a timeout
// and a cancel request are served without signal handlers: on either, SIGTERM goes to the whole
// group, then SIGKILL after a grace period. When the child exits, any process it left behind in
// its group is killed, so nothing writes to an attempt's outputs after it has finished. With a
// TaskReaper, the group is also killed if barge itself dies while the task runs.
//
// Thread-safety: Run() may be called from many threads at once; so may PosixProcessLauncher's
// methods, for different pids.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "process/reaper.h"

namespace barge {

// A one-shot, thread-safe "please stop" flag that can also be waited on with poll().
class CancelToken {
 public:
  CancelToken();
  ~CancelToken();
  CancelToken(const CancelToken&) = delete;
  CancelToken& operator=(const CancelToken&) = delete;

  void Cancel();
  bool cancelled() const { return cancelled_.load(); }
  int fd() const { return fd_; }  // readable once cancelled

 private:
  int fd_;
  std::atomic<bool> cancelled_{false};
};

struct ProcessSpec {
  std::vector<std::string> argv;  // argv[0] is looked up on PATH if it has no '/'
  std::vector<std::string> env;   // the complete environment, "NAME=value"
  std::string cwd;                // "": the caller's
  std::string log_path;           // created or appended to; stdout and stderr
  int64_t timeout_ms = 0;         // 0: none
  int64_t kill_grace_ms = 10'000;
  // A task gets a process group of its own (so that it is stopped whole); a process the
  // ProcessLauncher starts may stay in the caller's instead, so that a terminal's Ctrl-C reaches
  // it as it reaches the caller.
  bool own_process_group = true;
};

struct ProcessResult {
  bool started = false;     // false: spawn failed, see error
  bool log_failed = false;  // not started because the log could not be opened (barge's fault)
  int exit_code = -1;       // when exited normally
  int term_signal = 0;      // when killed by a signal
  bool timed_out = false;
  bool cancelled = false;
  double cpu_seconds = 0;  // user + system, including reaped descendants
  int64_t max_rss_kb = 0;
  int64_t wall_ms = 0;
  std::string error;  // why it failed to start, or a description of how it ended
  bool Succeeded() const { return started && exit_code == 0 && !timed_out && !cancelled; }
};

class ProcessRunner {
 public:
  virtual ~ProcessRunner() = default;
  // Runs the process to its end; returns early (after stopping it) if `cancel` fires.
  virtual ProcessResult Run(const ProcessSpec& spec, const CancelToken& cancel) = 0;
  // The reaper the runner registers its tasks with, if any (for what a task leaves outside its
  // process group: a container, process/reaper.h RegisterCleanup).
  virtual TaskReaper* reaper() { return nullptr; }
};

class PosixProcessRunner : public ProcessRunner {
 public:
  // With a `reaper` (borrowed; must outlive the runner), every task's process group is registered
  // with it while the task runs, so that it is killed if this process dies.
  explicit PosixProcessRunner(TaskReaper* reaper = nullptr) : reaper_(reaper) {}
  ProcessResult Run(const ProcessSpec& spec, const CancelToken& cancel) override;
  TaskReaper* reaper() override { return reaper_; }

  // Called in Run right after the child has started, with its pid (tests stop barge there).
  void SetAfterSpawnForTesting(std::function<void(pid_t)> hook) { after_spawn_ = std::move(hook); }

 private:
  TaskReaper* reaper_;
  std::function<void(pid_t)> after_spawn_;
};

// Processes started to run on their own. Start() returns once the child has started: as
// PosixProcessRunner starts one (a process group of its own, stdin from /dev/null, stdout and
// stderr appended to spec.log_path, spec.env its whole environment), without a timeout (its
// timeout_ms and kill_grace_ms are not used) and not registered with any reaper.
class ProcessLauncher {
 public:
  virtual ~ProcessLauncher() = default;
  // Returns the started child's pid. Internal, naming argv[0], if it could not be started.
  virtual absl::StatusOr<pid_t> Start(const ProcessSpec& spec) = 0;
  // Sends `sig` to the child `pid` (not to its group).
  virtual void Signal(pid_t pid, int sig) = 0;
  // The child's wait status (as waitpid(2) gives it) once it has ended, and it is then reaped:
  // its pid may be reused. nullopt while it runs; with `block`, waits for it to end.
  virtual std::optional<int> Reap(pid_t pid, bool block) = 0;
};

class PosixProcessLauncher : public ProcessLauncher {
 public:
  absl::StatusOr<pid_t> Start(const ProcessSpec& spec) override;
  void Signal(pid_t pid, int sig) override;
  std::optional<int> Reap(pid_t pid, bool block) override;
};

// This machine's host name ("localhost" if it has none). With a pid and its start time, it names
// a process across a fleet.
std::string HostName();

// The start time of a local process (field 22 of /proc/PID/stat), or "" if there is none. Two
// processes with the same pid and start time are the same process.
std::string ProcessStartTime(int64_t pid);

// Whether the local process `pid` started at `start_time` is still alive.
bool LocalProcessAlive(int64_t pid, const std::string& start_time);

}  // namespace barge
