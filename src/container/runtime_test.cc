#include "container/runtime.h"

#include <gtest/gtest.h>

#include <regex>

namespace barge {
namespace {

TEST(ContainerRunArgv, WrapsTheTaskWithItsBindsLimitsAndVariables) {
  ContainerRuntime podman{.program = "/usr/bin/podman", .name = "podman"};
  ContainerRunSpec spec{.name = "barge-r1-score-3-a1-00ab12",
                        .image = "localhost/x@sha256:aa",
                        .argv = {"/bin/sh", "-c", "echo hi"},
                        .env = {"BARGE_STEP", "DAY"},
                        .workdir = "/scratch/r1/score-3-a1",
                        .mounts = {{"/data/runs/r1/score/3/a1", false}, {"/pipe", true}},
                        .uid = 1000,
                        .gid = 100,
                        .cpu = 1.5,
                        .memory_bytes = 64 << 20,
                        .cgroup_parent = "/barge/barge-r1-score-3-a1-00ab12"};
  std::vector<std::string> want = {"/usr/bin/podman",
                                   "run",
                                   "--name",
                                   "barge-r1-score-3-a1-00ab12",
                                   "--user",
                                   "1000:100",
                                   "--network",
                                   "host",
                                   "--sig-proxy=true",
                                   "--cgroup-parent",
                                   "/barge/barge-r1-score-3-a1-00ab12",
                                   "--cpus",
                                   "1.5",
                                   "--memory",
                                   "67108864",
                                   "--memory-swap",
                                   "67108864",
                                   "-v",
                                   "/scratch/r1/score-3-a1:/scratch/r1/score-3-a1:rw",
                                   "-w",
                                   "/scratch/r1/score-3-a1",
                                   "-v",
                                   "/data/runs/r1/score/3/a1:/data/runs/r1/score/3/a1:rw",
                                   "-v",
                                   "/pipe:/pipe:ro",
                                   "-e",
                                   "BARGE_STEP",
                                   "-e",
                                   "DAY",
                                   "localhost/x@sha256:aa",
                                   "/bin/sh",
                                   "-c",
                                   "echo hi"};
  EXPECT_EQ(ContainerRunArgv(podman, spec), want);
}

TEST(ContainerRunArgv, NoLimitsWhenTheStepSetsNone) {
  ContainerRuntime docker{.program = "docker", .name = "docker"};
  std::vector<std::string> argv =
      ContainerRunArgv(docker, {.name = "n", .image = "img", .argv = {"true"}});
  for (const char* flag : {"--cpus", "--memory", "--memory-swap", "--cgroup-parent", "-w"}) {
    EXPECT_EQ(std::find(argv.begin(), argv.end(), flag), argv.end()) << flag;
  }
  EXPECT_EQ(argv.back(), "true");
  EXPECT_EQ(argv[argv.size() - 2], "img");
}

TEST(ContainerName, IsUniqueAndUsesOnlyAllowedCharacters) {
  std::string a = ContainerName("20260101-abc", "score", 7, 2);
  std::string b = ContainerName("20260101-abc", "score", 7, 2);
  EXPECT_NE(a, b);
  EXPECT_TRUE(std::regex_match(a, std::regex("barge-20260101-abc-score-7-a2-[0-9a-f]{6}"))) << a;
  EXPECT_TRUE(std::regex_match(ContainerName("r:1", "s/t", 0, 1),
                               std::regex("barge-r_1-s_t-0-a1-[0-9a-f]{6}")));
}

TEST(RemoveContainerArgv, KillsWithoutGrace) {
  EXPECT_EQ(RemoveContainerArgv({.program = "podman"}, {"a", "b"}),
            (std::vector<std::string>{"podman", "rm", "-f", "-t", "0", "a", "b"}));
}

TEST(IsImageProblem, TellsAnAbsentImageFromOtherRuntimeErrors) {
  EXPECT_TRUE(IsImageProblem(
      "Trying to pull localhost/nope:1...\nError: initializing source docker://localhost/nope:1: "
      "pinging container registry localhost: connection refused"));
  EXPECT_TRUE(IsImageProblem("Error: localhost/nope:1: image not known"));
  EXPECT_TRUE(
      IsImageProblem("Unable to find image 'nope:1' locally\ndocker: Error response from "
                     "daemon: pull access denied for nope"));
  EXPECT_FALSE(IsImageProblem("Error: statfs /no/such/dir: no such file or directory"));
  EXPECT_FALSE(IsImageProblem("Error: runc: exec failed: executable file not found"));
}

TEST(RunCommand, CapturesOutputAndExitCodeAndTimesOut) {
  CommandResult r = RunCommand({"sh", "-c", "echo out; echo err >&2; exit 3"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.output, "out\nerr\n");
  CommandResult slow = RunCommand({"sleep", "30"}, 100);
  EXPECT_EQ(slow.exit_code, -1);
  EXPECT_NE(slow.output.find("no answer"), std::string::npos);
  CommandResult missing = RunCommand({"/no/such/program"});
  EXPECT_EQ(missing.exit_code, -1);
  EXPECT_NE(missing.output.find("cannot start /no/such/program"), std::string::npos);
}

}  // namespace
}  // namespace barge
