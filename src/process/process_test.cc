#include "process/process.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <thread>

#include "common/fs.h"
#include "common/strings.h"
#include "testing/temp_dir.h"
#include "worker/policy.h"

namespace barge {
namespace {

// Whether `pid` exists and is not a zombie waiting for its (new) parent to reap it.
bool Running(int64_t pid) {
  absl::StatusOr<std::string> stat = ReadFile(Cat("/proc/", pid, "/stat"));
  if (!stat.ok()) return false;
  size_t close = stat->rfind(')');
  return close != std::string::npos && stat->substr(close + 2, 1) != "Z";
}

class ProcessTest : public ::testing::Test {
 protected:
  ProcessSpec Shell(const std::string& command) {
    ProcessSpec spec;
    spec.argv = {"/bin/sh", "-c", command};
    spec.env = {"PATH=/usr/bin:/bin", "GREETING=hi"};
    spec.cwd = dir_.string();
    spec.log_path = (dir_ / "log").string();
    return spec;
  }
  std::string Log() { return ReadFile((dir_ / "log").string()).value_or(""); }

  ScopedTempDir temp_{"proc"};
  const std::filesystem::path& dir_ = temp_.path();
  PosixProcessRunner runner_;
};

TEST_F(ProcessTest, CapturesOutputExitCodeAndWorkingDirectory) {
  CancelToken cancel;
  ProcessResult r = runner_.Run(Shell("echo $GREETING; pwd; echo oops >&2; exit 3"), cancel);
  EXPECT_TRUE(r.started);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_FALSE(r.Succeeded());
  EXPECT_EQ(r.error, "exit code 3");
  EXPECT_EQ(Log(), Cat("hi\n", dir_.string(), "\noops\n"));
}

TEST_F(ProcessTest, RecordsCpuAndMemory) {
  CancelToken cancel;
  ProcessResult r = runner_.Run(Shell("i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"), cancel);
  EXPECT_TRUE(r.Succeeded());
  EXPECT_GT(r.cpu_seconds, 0.01);
  EXPECT_GT(r.max_rss_kb, 100);
}

TEST_F(ProcessTest, TimeoutStopsTheWholeGroup) {
  CancelToken cancel;
  ProcessSpec spec = Shell("sleep 30 & echo $! > child; wait");
  spec.timeout_ms = 300;
  ProcessResult r = runner_.Run(spec, cancel);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.term_signal, SIGTERM);
  EXPECT_EQ(r.error, "timed out after 0.3s");
  int64_t child = std::stoll(ReadFile((dir_ / "child").string()).value());
  // The background sleep was signalled too; it dies as soon as it is scheduled.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (Running(child) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  EXPECT_FALSE(Running(child));
  EXPECT_LT(r.wall_ms, 10'000);
}

TEST_F(ProcessTest, KillsAfterGraceWhenTermIsIgnored) {
  CancelToken cancel;
  ProcessSpec spec = Shell("trap '' TERM; echo ready; while :; do :; done");
  spec.timeout_ms = 200;
  spec.kill_grace_ms = 200;
  ProcessResult r = runner_.Run(spec, cancel);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.term_signal, SIGKILL);
}

TEST_F(ProcessTest, CancelStopsARunningProcess) {
  CancelToken cancel;
  ProcessResult r;
  std::thread t([&] { r = runner_.Run(Shell("echo started; exec sleep 30"), cancel); });
  // Wait for a real condition: the child has written to its log.
  while (Log().empty()) std::this_thread::yield();
  cancel.Cancel();
  t.join();
  EXPECT_TRUE(r.cancelled);
  EXPECT_FALSE(r.Succeeded());
}

TEST_F(ProcessTest, SpawnFailureIsReported) {
  CancelToken cancel;
  ProcessSpec spec = Shell("");
  spec.argv = {"/nonexistent/tool", "x"};
  ProcessResult r = runner_.Run(spec, cancel);
  EXPECT_FALSE(r.started);
  EXPECT_NE(r.error.find("cannot start /nonexistent/tool"), std::string::npos) << r.error;
}

TEST_F(ProcessTest, AMissingWorkingDirectoryIsASpawnFailure) {
  CancelToken cancel;
  ProcessSpec spec = Shell("true");
  spec.cwd = (dir_ / "gone").string();
  ProcessResult r = runner_.Run(spec, cancel);
  EXPECT_FALSE(r.started);
  EXPECT_NE(r.error.find("No such file or directory"), std::string::npos) << r.error;
}

// A child that registered its group and then failed to start is unregistered before its id can
// be reused: the reaper must never hold an id that may come to name someone else's group.
TEST_F(ProcessTest, AFailedStartLeavesNothingRegistered) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  pid_t helper = ::fork();  // stands in for the reaper: passes every message on
  ASSERT_GE(helper, 0);
  if (helper == 0) {
    ::close(sv[0]);
    ::close(pipe_fds[0]);
    ReaperMessage m{};
    while (::recv(sv[1], &m, sizeof m, 0) == sizeof m) {
      if (::write(pipe_fds[1], &m, sizeof m) != sizeof m) break;
    }
    ::_exit(0);
  }
  ::close(sv[1]);
  ::close(pipe_fds[1]);
  {
    std::unique_ptr<TaskReaper> reaper = TaskReaper::Adopt(sv[0], helper);
    PosixProcessRunner runner(reaper.get());
    CancelToken cancel;
    ProcessSpec missing_dir = Shell("true");
    missing_dir.cwd = (dir_ / "gone").string();
    ProcessSpec missing_program = Shell("");
    missing_program.argv = {"/nonexistent/tool"};
    for (const ProcessSpec& spec : {missing_dir, missing_program}) {
      EXPECT_FALSE(runner.Run(spec, cancel).started);
    }
    EXPECT_TRUE(runner.Run(Shell("true"), cancel).Succeeded());
  }                                   // the reaper's socket closes: the helper has everything
  std::map<int32_t, int> registered;  // group -> registrations minus unregistrations
  ReaperMessage m{};
  int messages = 0;
  while (::read(pipe_fds[0], &m, sizeof m) == sizeof m) {
    ++messages;
    registered[m.process_group] += m.op == ReaperMessage::kRegister ? 1 : -1;
  }
  ::close(pipe_fds[0]);
  EXPECT_EQ(messages, 6) << "three starts, each registered and unregistered";
  for (const auto& [group, count] : registered) {
    EXPECT_EQ(count, 0) << "group " << group << " left registered";
  }
}

// A file without "#!" is not run through /bin/sh behind the step's back (execvp would).
TEST_F(ProcessTest, AFileThatIsNoProgramFailsToStart) {
  std::string script = (dir_ / "no-shebang").string();
  ASSERT_TRUE(WriteFile(script, "echo ran > ran.txt\n").ok());
  ASSERT_EQ(::chmod(script.c_str(), 0755), 0);
  CancelToken cancel;
  ProcessSpec spec = Shell("");
  spec.argv = {script};
  ProcessResult r = runner_.Run(spec, cancel);
  EXPECT_FALSE(r.started);
  EXPECT_NE(r.error.find("Exec format error"), std::string::npos) << r.error;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "ran.txt"));
}

TEST_F(ProcessTest, LooksUpTheProgramOnPath) {
  CancelToken cancel;
  ProcessSpec spec = Shell("");
  spec.argv = {"sh", "-c", "echo found"};
  ProcessResult r = runner_.Run(spec, cancel);
  EXPECT_TRUE(r.Succeeded()) << r.error;
  EXPECT_EQ(Log(), "found\n");
}

// barge ignores and blocks signals of its own; a task starts with none of that, and with only
// stdin, stdout and stderr open.
TEST_F(ProcessTest, TheTaskGetsDefaultSignalsAndOnlyItsStandardFiles) {
  struct sigaction ignore {
  }, saved_pipe{};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGPIPE, &ignore, &saved_pipe), 0);
  sigset_t term, saved_mask;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &term, &saved_mask), 0);
  CancelToken cancel;
  ProcessResult r = runner_.Run(
      Shell("grep -E '^Sig(Blk|Ign):' /proc/self/status; exec ls /proc/self/fd"), cancel);
  ::pthread_sigmask(SIG_SETMASK, &saved_mask, nullptr);
  ::sigaction(SIGPIPE, &saved_pipe, nullptr);
  EXPECT_TRUE(r.Succeeded()) << r.error;
  // ls's own descriptor for the directory it lists is 3.
  EXPECT_EQ(Log(), "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n0\n1\n2\n3\n");
}

// The reaper covers a task from before its program runs: a barge killed the moment the child has
// started (before it could have said anything to the reaper itself) leaves nothing behind.
TEST_F(ProcessTest, NoTaskOutlivesABargeKilledTheMomentItStartedIt) {
  std::string pid_file = (dir_ / "task.pid").string();
  pid_t barge = ::fork();
  ASSERT_GE(barge, 0);
  if (barge == 0) {  // stands in for barge: a reaper of its own, then one task
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) ::_exit(1);
    pid_t helper = ::fork();
    if (helper == 0) {
      ::close(sv[0]);
      ::setsid();
      ::_exit(RunReaper(sv[1]));
    }
    ::close(sv[1]);
    std::unique_ptr<TaskReaper> reaper = TaskReaper::Adopt(sv[0], helper);
    PosixProcessRunner runner(reaper.get());
    runner.SetAfterSpawnForTesting([&](pid_t task) {
      std::ofstream(pid_file) << task << "\n";
      ::kill(::getpid(), SIGKILL);
    });
    CancelToken cancel;
    runner.Run(Shell("exec sleep 30"), cancel);
    ::_exit(1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(barge, &status, 0), barge);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  int64_t task = std::stoll(ReadFile(pid_file).value_or("0"));
  ASSERT_GT(task, 0);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (Running(task) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  bool survived = Running(task);
  if (survived) ::kill(static_cast<pid_t>(task), SIGKILL);
  EXPECT_FALSE(survived) << "the task outlived the barge that started it";
}

// A cleanup command still registered when barge dies is run by the reaper (how a container,
// which no process group of barge's holds, is removed); one unregistered in time is not.
TEST_F(ProcessTest, TheReaperRunsTheCleanupsOfADeadBarge) {
  std::string ran = (dir_ / "ran").string();
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  pid_t helper = ::fork();
  ASSERT_GE(helper, 0);
  if (helper == 0) {
    ::close(sv[0]);
    ::_exit(RunReaper(sv[1]));
  }
  ::close(sv[1]);
  {
    std::unique_ptr<TaskReaper> reaper = TaskReaper::Adopt(sv[0], helper);
    int kept = reaper->RegisterCleanup({"sh", "-c", "echo kept \"$1\" >> " + ran, "sh", "a b"});
    int dropped = reaper->RegisterCleanup({"sh", "-c", "echo dropped >> " + ran});
    EXPECT_NE(kept, dropped);
    reaper->UnregisterCleanup(dropped);
  }  // closes the socket, as barge's death would, and waits for the helper
  EXPECT_EQ(ReadFile(ran).value_or(""), "kept a b\n");
}

TEST_F(ProcessTest, ALaunchedProcessStaysInTheCallersGroupOnlyWhenAsked) {
  // The autoscaler's workers stay in barge serve's group, so that a terminal's Ctrl-C reaches
  // them; anything else started gets a group of its own, as tasks do.
  PosixProcessLauncher launcher;
  for (bool own : {true, false}) {
    ProcessSpec spec = Shell("sleep 30");
    spec.own_process_group = own;
    absl::StatusOr<pid_t> pid = launcher.Start(spec);
    ASSERT_TRUE(pid.ok()) << pid.status();
    pid_t group = ::getpgid(*pid);
    launcher.Signal(*pid, SIGKILL);
    std::optional<int> status = launcher.Reap(*pid, /*block=*/true);
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(WIFSIGNALED(*status));
    EXPECT_EQ(group, own ? *pid : ::getpgrp()) << "own_process_group=" << own;
  }
}

TEST(Liveness, KnowsThisProcessAndNotAGhost) {
  std::string start = ProcessStartTime(::getpid());
  EXPECT_FALSE(start.empty());
  EXPECT_TRUE(LocalProcessAlive(::getpid(), start));
  EXPECT_FALSE(LocalProcessAlive(::getpid(), start + "1"));  // same pid, other process
  EXPECT_FALSE(LocalProcessAlive(0, start));
}

TEST(Policy, ClassifiesFailures) {
  std::mt19937_64 rng(1);
  Step step;
  step.retries = 2;
  step.retry_delay_ms = 1000;
  TaskRecord task;
  task.attempt = 1;
  AttemptOutcome app;
  app.process.started = true;
  app.process.exit_code = 1;
  app.error = "exit code 1";
  Completion c = DecideCompletion(task, step, app, 10'000, 10, rng);
  EXPECT_EQ(c.task_state, state::kPending);
  EXPECT_TRUE(c.charge_retry);
  EXPECT_GE(c.not_before, 10'500);
  EXPECT_LT(c.not_before, 11'000);
  task.app_failures = 2;
  c = DecideCompletion(task, step, app, 10'000, 10, rng);
  EXPECT_EQ(c.task_state, state::kFailed);
  EXPECT_EQ(c.error, "exit code 1 (after 3 attempts)");

  AttemptOutcome infra;
  infra.infra_failure = true;
  infra.error = "setting up the attempt: disk full";
  task.app_failures = 2;
  c = DecideCompletion(task, step, infra, 10'000, 10, rng);
  EXPECT_EQ(c.task_state, state::kPending);
  EXPECT_FALSE(c.charge_retry);
  EXPECT_TRUE(c.infra_failure);
  EXPECT_EQ(c.failure_class, failure::kInfrastructure);
}

TEST(Policy, BackoffGrowsAndIsCapped) {
  std::mt19937_64 rng(7);
  EXPECT_LT(RetryDelayMs(1000, 1, rng), 1000);
  EXPECT_GE(RetryDelayMs(1000, 4, rng), 4000);
  EXPECT_LE(RetryDelayMs(1000, 40, rng), 600'000);
}

}  // namespace
}  // namespace barge
