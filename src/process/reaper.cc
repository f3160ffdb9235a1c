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
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/strings.h"

extern char** environ;

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
  // Only what a cleanup command (a container runtime's client) needs of barge's environment.
  std::vector<char*> envp;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view kv(*e);
    for (std::string_view keep : {"PATH=", "HOME=", "USER=", "LOGNAME=", "TMPDIR=", "XDG_",
                                  "CONTAINERS_", "DOCKER_", "REGISTRY_AUTH_FILE="}) {
      if (kv.starts_with(keep)) {
        envp.push_back(*e);
        break;
      }
    }
  }
  envp.push_back(nullptr);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, argv[0], &actions, &attr, argv.data(), envp.data());
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

int TaskReaper::RegisterCleanup(const std::vector<std::string>& argv) {
  int id = next_cleanup_.fetch_add(1);
  std::string payload;
  for (const std::string& a : argv) payload.append(a.c_str(), a.size() + 1);
  if (payload.size() > kMaxCleanupBytes) payload.clear();
  Send(ReaperMessage::kRegisterCleanup, id, payload);
  return id;
}

void TaskReaper::UnregisterCleanup(int id) { Send(ReaperMessage::kUnregisterCleanup, id); }

void TaskReaper::Send(int32_t op, pid_t process_group, std::string_view payload) {
  ReaperMessage m{op, static_cast<int32_t>(process_group)};
  std::string message(reinterpret_cast<const char*>(&m), sizeof m);
  message.append(payload);
  ssize_t n;
  do {
    n = ::send(fd_, message.data(), message.size(), MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(message.size()) && !warned_.exchange(true)) {
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
  std::map<int32_t, std::vector<std::string>> cleanups;
  std::vector<char> buf(sizeof(ReaperMessage) + kMaxCleanupBytes);
  for (;;) {
    ReaperMessage m{};
    ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // barge has ended, however it ended
    if (static_cast<size_t>(n) < sizeof m) continue;
    std::memcpy(&m, buf.data(), sizeof m);
    if (m.op == ReaperMessage::kRegisterCleanup) {
      std::vector<std::string> argv;
      for (size_t at = sizeof m; at < static_cast<size_t>(n);) {
        const char* arg = buf.data() + at;
        size_t len = ::strnlen(arg, static_cast<size_t>(n) - at);
        argv.emplace_back(arg, len);
        at += len + 1;
      }
      if (!argv.empty()) cleanups[m.process_group] = std::move(argv);
      continue;
    }
    if (m.op == ReaperMessage::kUnregisterCleanup) cleanups.erase(m.process_group);
    if (static_cast<size_t>(n) != sizeof m || m.process_group <= 1) continue;
    if (m.op == ReaperMessage::kRegister) groups.insert(m.process_group);
    if (m.op == ReaperMessage::kUnregister) groups.erase(m.process_group);
  }
  for (int32_t group : groups) ::kill(-group, SIGKILL);
  // The groups first: a container's client killed, its container is removed by its cleanup.
  std::vector<pid_t> started;
  for (auto& [id, argv] : cleanups) {
    std::vector<char*> args;
    for (std::string& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    pid_t pid = -1;
    if (::posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), environ) == 0) {
      started.push_back(pid);
    }
  }
  for (pid_t pid : started) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  return 0;
}

}  // namespace barge
