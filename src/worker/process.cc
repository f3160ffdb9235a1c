#include "worker/process.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/clock.h"
#include "common/strings.h"

namespace barge {
namespace {

int PidfdOpen(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

// Waits until the pidfd is readable (the child exited), the cancel fd fires, or `timeout_ms`
// passes (-1: forever). Returns 1 on exit, 2 on cancel, 0 on timeout.
int WaitFor(int pidfd, int cancel_fd, int64_t timeout_ms) {
  int64_t deadline = timeout_ms < 0 ? -1 : MonotonicMs() + timeout_ms;
  for (;;) {
    struct pollfd fds[2] = {{pidfd, POLLIN, 0}, {cancel_fd, POLLIN, 0}};
    int nfds = cancel_fd >= 0 ? 2 : 1;
    int wait_ms = -1;
    if (deadline >= 0) {
      int64_t left = deadline - MonotonicMs();
      if (left <= 0) return 0;
      wait_ms = static_cast<int>(std::min<int64_t>(left, 1'000'000));
    }
    int rc = ::poll(fds, nfds, wait_ms);
    if (rc < 0) {
      if (errno == EINTR) continue;
      return 1;  // cannot wait: fall through to a blocking waitpid
    }
    if (fds[0].revents != 0) return 1;
    if (nfds == 2 && fds[1].revents != 0) return 2;
    if (rc == 0 && deadline >= 0 && MonotonicMs() >= deadline) return 0;
  }
}

// Space set aside at the end of a log while its task runs, so that what a task says on a disk it
// has just filled ("No space left on device") still reaches its log: blocks allocated beyond the
// end of the file (FALLOC_FL_KEEP_SIZE) take appends without needing free space. Handed back
// (the hole punched) when the task has ended. Best effort: some file systems cannot.
class LogReserve {
 public:
  static constexpr off_t kBytes = 64 << 10;
  explicit LogReserve(int fd) : fd_(fd) {
    struct stat st {};
    if (::fstat(fd_, &st) == 0) {
      ::fallocate(fd_, FALLOC_FL_KEEP_SIZE, st.st_size, kBytes);
    }
  }
  ~LogReserve() {
    struct stat st {};
    if (::fstat(fd_, &st) == 0) {
      ::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, st.st_size, kBytes);
    }
    ::close(fd_);
  }
  LogReserve(const LogReserve&) = delete;
  LogReserve& operator=(const LogReserve&) = delete;

 private:
  int fd_;
};

std::vector<char*> CStrings(const std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (const std::string& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

}  // namespace

CancelToken::CancelToken() : fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

CancelToken::~CancelToken() {
  if (fd_ >= 0) ::close(fd_);
}

void CancelToken::Cancel() {
  if (cancelled_.exchange(true)) return;
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(fd_, &one, sizeof one);
}

ProcessResult PosixProcessRunner::Run(const ProcessSpec& spec, const CancelToken& cancel) {
  ProcessResult result;
  int64_t start = MonotonicMs();
  int log_fd = ::open(spec.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    result.log_failed = true;
    result.error = Cat("opening log ", spec.log_path, ": ", std::strerror(errno));
    return result;
  }
  LogReserve reserve(log_fd);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, log_fd, 1);
  posix_spawn_file_actions_adddup2(&actions, log_fd, 2);
  posix_spawn_file_actions_addchdir_np(&actions, spec.cwd.c_str());

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);    // the worker blocks signals in its threads
  posix_spawnattr_setsigdefault(&attr, &all);  // and may ignore some; the task gets defaults
  posix_spawnattr_setpgroup(&attr, 0);         // its own group, so the whole tree can be stopped
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);

  std::vector<char*> argv = CStrings(spec.argv);
  std::vector<char*> envp = CStrings(spec.env);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, argv[0], &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    result.error = Cat("cannot start ", spec.argv[0], ": ", std::strerror(rc));
    return result;
  }
  result.started = true;
  if (reaper_ != nullptr) reaper_->Register(pid);

  int pidfd = PidfdOpen(pid);
  auto signal_group = [&](int sig) { ::kill(-pid, sig); };
  if (pidfd >= 0) {
    int64_t timeout = spec.timeout_ms > 0 ? spec.timeout_ms : -1;
    int why = WaitFor(pidfd, cancel.fd(), timeout);
    if (why != 1) {
      result.timed_out = why == 0;
      result.cancelled = why == 2;
      signal_group(SIGTERM);
      if (WaitFor(pidfd, -1, spec.kill_grace_ms) == 0) signal_group(SIGKILL);
      WaitFor(pidfd, -1, -1);
    }
  }
  // The child is now a zombie (or we could not get a pidfd): its pid, and so its group id, cannot
  // be reused yet. Kill whatever it left running in its group, then reap it.
  if (pidfd >= 0) signal_group(SIGKILL);
  // Before the reap: until then no new process can take the group's id.
  if (reaper_ != nullptr) reaper_->Unregister(pid);
  int status = 0;
  struct rusage usage {};
  while (::wait4(pid, &status, 0, &usage) < 0 && errno == EINTR) {
  }
  if (pidfd < 0) signal_group(SIGKILL);
  if (pidfd >= 0) ::close(pidfd);

  result.wall_ms = MonotonicMs() - start;
  result.cpu_seconds = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                       static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  result.max_rss_kb = usage.ru_maxrss;
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.term_signal = WTERMSIG(status);
  }
  if (result.timed_out) {
    result.error = Cat("timed out after ", spec.timeout_ms / 1000.0, "s");
  } else if (result.cancelled) {
    result.error = "stopped";
  } else if (result.term_signal != 0) {
    result.error =
        Cat("killed by signal ", result.term_signal, " (", strsignal(result.term_signal), ")");
  } else if (result.exit_code != 0) {
    result.error = Cat("exit code ", result.exit_code);
  }
  return result;
}

std::string ProcessStartTime(int64_t pid) {
  std::ifstream in(Cat("/proc/", pid, "/stat"));
  std::string line;
  if (!std::getline(in, line)) return "";
  // The command name (field 2) is in parentheses and may hold spaces; fields resume after ')'.
  size_t close = line.rfind(')');
  if (close == std::string::npos) return "";
  std::istringstream fields(line.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22 && fields >> field; ++i) {
    if (i == 22) return field;
  }
  return "";
}

bool LocalProcessAlive(int64_t pid, const std::string& start_time) {
  if (pid <= 0) return false;
  std::string now = ProcessStartTime(pid);
  return !now.empty() && now == start_time;
}

}  // namespace barge
