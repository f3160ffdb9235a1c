// Black-box test harness: runs the real `barge` binary in a fresh temporary directory per test.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace barge::testing {

struct Result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

class E2eTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Runs `barge args...` in dir() with state, data and scratch under dir()/.barge.
  Result Barge(const std::vector<std::string>& args);
  // Starts `[prefix...] barge args...` in the background; returns its pid (the prefix must exec
  // barge in place, as `ip netns exec` does). Output goes to files in dir().
  pid_t StartBarge(const std::vector<std::string>& args,
                   const std::vector<std::string>& prefix = {});
  // Starts any program (argv[0] looked up in PATH) in the background, as StartBarge does.
  pid_t StartProcess(const std::vector<std::string>& argv);
  // Waits for a background barge to exit; returns its exit code (128+signal if killed).
  int Wait(pid_t pid);
  // The file the latest background process writes its stderr to.
  std::string LastBackgroundErr() const {
    return (dir_ / (".bg" + std::to_string(background_) + ".err")).string();
  }

  // `yaml` with dir() in place of @MARKS@: where a test's tasks leave marks (pids, "started")
  // for it to see. (Not $BARGE_PIPELINE_DIR: that is the run's read-only bundle.)
  std::string MarksIn(const std::string& yaml) const;
  // Writes a file relative to dir() (creating directories) and returns its absolute path.
  std::string Write(const std::string& relative, const std::string& text);
  std::string Read(const std::string& path);
  nlohmann::json Json(const std::vector<std::string>& args);
  // Polls until `done()` holds: a wait for a real condition, never a fixed sleep. Fails the test
  // after `timeout`, naming `what`.
  void WaitUntil(const std::function<bool()>& done, const std::string& what,
                 std::chrono::seconds timeout = std::chrono::minutes(1));
  const std::filesystem::path& dir() const { return dir_; }
  // Points every later barge command at a fresh schema on the test PostgreSQL server
  // (BARGE_TEST_POSTGRES) through BARGE_STATE. Returns false, changing nothing, if there is no
  // server and BARGE_REQUIRE_POSTGRES is unset; fails the test if it is set.
  bool UsePostgres();

 private:
  std::filesystem::path dir_;
  int background_ = 0;
};

// A shell command that starts `barge serve` in `dir` on a free port of loopback, ticking every
// 100 ms, with `extra` arguments; for ListeningProcess, which reads the port it prints.
std::vector<std::string> ServeCommand(const std::filesystem::path& dir,
                                      const std::vector<std::string>& extra = {});

// For tests of `barge serve`: BARGE_TOKEN is `token` while the test runs, which every barge the
// test starts inherits; the derived fixture starts and stops the server.
class TokenTest : public E2eTest {
 protected:
  explicit TokenTest(const char* token) : token_(token) {}
  void SetUp() override {
    E2eTest::SetUp();
    ::setenv("BARGE_TOKEN", token_, 1);
  }
  void TearDown() override {
    ::unsetenv("BARGE_TOKEN");
    E2eTest::TearDown();
  }

 private:
  const char* token_;
};

// Live (not zombie) processes on this host whose environment holds `entry` ("NAME=value"), such
// as every process of one run's tasks (BARGE_RUN_ID=<id>), grandchildren included.
std::vector<pid_t> ProcessesWithEnv(const std::string& entry);

// Two tasks that hold processes for a long time on their first attempt: one execs into sleep,
// one leaves a shell waiting on a forked sleep (a grandchild of barge, in the task's group).
// Later attempts finish at once. Each attempt appends "<index> <attempt>" to the file named by
// param `side`, and an attempt that outlived its holder would append "<index> late".
inline constexpr char kHoldingTasksPipeline[] = R"(
name: hold
params: {side: x}
steps:
  - name: hold
    foreach: range(2)
    run: |
      echo "$BARGE_TASK_INDEX $BARGE_ATTEMPT" >> {params.side}
      if [ "$BARGE_ATTEMPT" = 1 ]; then
        if [ "$BARGE_TASK_INDEX" = 0 ]; then exec sleep 47.5; fi
        sleep 47; echo "$BARGE_TASK_INDEX late" >> {params.side}
      fi
)";

// The first line of stdout of `barge run` is "run <id>".
std::string RunIdFrom(const Result& r);

}  // namespace barge::testing
