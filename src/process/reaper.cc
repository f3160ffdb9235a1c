#include "process/reaper.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>
#include <vector>

#include "common/strings.h"

namespace barge {
absl::StatusOr<std::unique_ptr<TaskReaper>> TaskReaper::Start(const std::string& self_exe) {
  // SOCK_SEQPACKET: each registration is one message, whichever thread sends it. Close-on-exec,
  // so no task inherits either end: a task holding barge's end would keep the helper from ever
  // seeing end of file.
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    return absl::InternalError(Cat("starting the task reaper: socketpair: ", std::strerror(errno)));
  }
  if (sv[1] == kReaperFd) {  // dup2 onto itself would keep close-on-exec
    int moved = ::fcntl(sv[1], F_DUPFD_CLOEXEC, kReaperFd + 1);
    ::close(sv[1]);
    sv[1] = moved;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, sv[1], kReaperFd);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSID);
  std::vector<std::string> args = {self_exe, "__reaper"};
  std::vector<char*> argv = {args[0].data(), args[1].data(), nullptr};
  char* envp[] = {nullptr};
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, argv[0], &actions, &attr, argv.data(), envp);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(sv[1]);
  if (rc != 0) {
    ::close(sv[0]);
    return absl::InternalError(Cat("starting the task reaper ", self_exe, ": ", std::strerror(rc)));
  }
  return std::unique_ptr<TaskReaper>(new TaskReaper(sv[0], pid));
}

TaskReaper::~TaskReaper() {
  ::close(fd_);
  int status = 0;
  while (::waitpid(helper_, &status, 0) < 0 && errno == EINTR) {
  }
}

void TaskReaper::Unregister(pid_t process_group) {
  Send(ReaperMessage::kUnregister, process_group);
}

void TaskReaper::RegisterSelf() const {
  ReaperMessage m{ReaperMessage::kRegister, static_cast<int32_t>(::syscall(SYS_getpid))};
  while (::send(fd_, &m, sizeof m, MSG_NOSIGNAL) < 0 && errno == EINTR) {
  }
}

void TaskReaper::Send(int32_t op, pid_t process_group) {
  ReaperMessage m{op, static_cast<int32_t>(process_group)};
  ssize_t n;
  do {
    n = ::send(fd_, &m, sizeof m, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n != sizeof m && !warned_.exchange(true)) {
    std::fprintf(stderr,
                 "barge: the task reaper (process %d) is gone: tasks may outlive this process if "
                 "it is killed: %s\n",
                 static_cast<int>(helper_), std::strerror(errno));
  }
}

int RunReaper(int fd) {
  // Only the socket is ours: whatever else barge had open when it started us is not.
  ::close_range(static_cast<unsigned>(fd) + 1, ~0U, 0);
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGQUIT, SIG_IGN);
  ::signal(SIGHUP, SIG_IGN);
  std::set<int32_t> groups;
  for (;;) {
    ReaperMessage m{};
    ssize_t n = ::recv(fd, &m, sizeof m, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // barge has ended, however it ended
    if (n != sizeof m || m.process_group <= 1) continue;
    if (m.op == ReaperMessage::kRegister) groups.insert(m.process_group);
    if (m.op == ReaperMessage::kUnregister) groups.erase(m.process_group);
  }
  for (int32_t group : groups) ::kill(-group, SIGKILL);
  return 0;
}

}  // namespace barge
