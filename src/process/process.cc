#include "process/process.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/clock.h"
#include "common/strings.h"

namespace barge {
namespace {

// Where to stop closing descriptors one by one if close_range is not there (before Linux 5.9,
// or refused by a seccomp filter). Called in the vforked child: getrlimit is a plain system call.
int CloseLimit() {
  struct rlimit open_files {};
  return ::getrlimit(RLIMIT_NOFILE, &open_files) == 0 && open_files.rlim_cur != RLIM_INFINITY
             ? static_cast<int>(std::min<rlim_t>(open_files.rlim_cur, 1 << 20))
             : 1 << 16;
}

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

// Starts argv[0] (looked up on PATH if it has no '/') as the leader of a new process group, with
// stdin from /dev/null, stdout and stderr on `log_fd` and no other descriptor open, in `cwd` ("":
// barge's), every
// signal at its default and none blocked. Returns its pid, or -1 with *error set.
//
// vfork, as glibc's posix_spawn does (so the cost does not grow with barge's size), written out
// because of one step posix_spawn cannot take: the child registers its group with the reaper
// before it runs the task's program, so there is no moment in which barge could die and leave an
// unregistered task behind. Between vfork and exec the child shares barge's memory and may only
// make system calls; every argument is prepared before, and all signals are blocked around it
// so that none of barge's handlers runs in the child.
pid_t Spawn(const std::vector<char*>& argv, const std::vector<char*>& envp, const char* cwd,
            int log_fd, bool own_group, TaskReaper* reaper, int* error) {
  // The files argv[0] may name, tried in order as execvp would (barge's PATH, as posix_spawnp
  // used), but without execvp's retry of a file without "#!" through /bin/sh: such a file fails
  // with "Exec format error", as it did under posix_spawnp.
  std::vector<std::string> candidates;
  std::string_view program = argv[0];
  if (program.find('/') != std::string_view::npos) {
    candidates.emplace_back(program);
  } else {
    const char* env = std::getenv("PATH");
    std::string_view path = env != nullptr ? env : "/usr/local/bin:/usr/bin:/bin";
    for (size_t start = 0;;) {
      size_t colon = std::min(path.find(':', start), path.size());
      std::string_view dir = path.substr(start, colon - start);
      candidates.push_back(Cat(dir.empty() ? std::string_view(".") : dir, "/", program));
      if (colon == path.size()) break;
      start = colon + 1;
    }
  }
  std::vector<const char*> files;
  for (const std::string& c : candidates) files.push_back(c.c_str());
  sigset_t all, none, saved;
  sigfillset(&all);
  sigemptyset(&none);
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  volatile int child_errno = 0;
  ::pthread_sigmask(SIG_SETMASK, &all, &saved);
  pid_t pid = ::vfork();
  if (pid == 0) {
    auto fail = [&] {
      child_errno = errno;
      ::_exit(127);
    };
    if (own_group && ::setpgid(0, 0) != 0) fail();
    if (reaper != nullptr) reaper->RegisterSelf();
    // The log first: dup2 onto fds 1 and 2 also clears close-on-exec, unless it is one of them.
    for (int fd : {1, 2}) {
      if (log_fd == fd ? ::fcntl(fd, F_SETFD, 0) != 0 : ::dup2(log_fd, fd) < 0) fail();
    }
    int null = ::open("/dev/null", O_RDONLY);
    if (null < 0 || ::dup2(null, 0) < 0) fail();
    // Nothing else barge has or was handed without close-on-exec reaches the task.
    if (::close_range(3, ~0U, 0) != 0) {
      for (int fd = 3, end = CloseLimit(); fd < end; ++fd) ::close(fd);
    }
    if (cwd[0] != '\0' && ::chdir(cwd) != 0) fail();
    for (int sig = 1; sig < NSIG; ++sig) {
      if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &default_action, nullptr);
    }
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    int why = ENOENT;
    for (const char* file : files) {
      ::execve(file, argv.data(), envp.data());
      if (errno == EACCES) {
        why = EACCES;  // as execvp: keep looking, and say so if nothing else is found
      } else if (errno != ENOENT && errno != ENOTDIR) {
        why = errno;
        break;
      }
    }
    errno = why;
    fail();
  }
  int vfork_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  if (pid < 0) {
    *error = vfork_errno;
    return -1;
  }
  if (child_errno != 0) {
    // The child registered its group before it failed: unregister it while the zombie still
    // holds the id (a reused id must never be left for the reaper to kill), then reap it.
    if (reaper != nullptr) reaper->Unregister(pid);
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    *error = child_errno;
    return -1;
  }
  return pid;
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

absl::StatusOr<pid_t> PosixProcessLauncher::Start(const ProcessSpec& spec) {
  int log_fd = ::open(spec.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    return absl::InternalError(
        Cat("starting ", spec.argv[0], ": opening ", spec.log_path, ": ", std::strerror(errno)));
  }
  std::vector<char*> argv = CStrings(spec.argv);
  std::vector<char*> envp = CStrings(spec.env);
  int spawn_errno = 0;
  pid_t pid = Spawn(argv, envp, spec.cwd.c_str(), log_fd, spec.own_process_group,
                    /*reaper=*/nullptr, &spawn_errno);
  ::close(log_fd);
  if (pid < 0) {
    return absl::InternalError(Cat("starting ", spec.argv[0], ": ", std::strerror(spawn_errno)));
  }
  return pid;
}

void PosixProcessLauncher::Signal(pid_t pid, int sig) { ::kill(pid, sig); }

std::optional<int> PosixProcessLauncher::Reap(pid_t pid, bool block) {
  int status = 0;
  pid_t rc;
  while ((rc = ::waitpid(pid, &status, block ? 0 : WNOHANG)) < 0 && errno == EINTR) {
  }
  if (rc != pid) return std::nullopt;
  return status;
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
  std::vector<char*> argv = CStrings(spec.argv);
  std::vector<char*> envp = CStrings(spec.env);
  int spawn_errno = 0;
  pid_t pid =
      Spawn(argv, envp, spec.cwd.c_str(), log_fd, /*own_group=*/true, reaper_, &spawn_errno);
  if (pid < 0) {
    result.error = Cat("cannot start ", spec.argv[0], ": ", std::strerror(spawn_errno));
    return result;
  }
  result.started = true;
  if (after_spawn_) after_spawn_(pid);

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

std::string HostName() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  return buf;
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
