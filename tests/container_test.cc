// Steps with `image:`, run for real with podman on a locally built image (src/testing/podman.h).
// Skipped, saying why, where podman cannot run containers, unless BARGE_REQUIRE_PODMAN=1.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <set>

#include "common/strings.h"
#include "container/runtime.h"
#include "harness.h"
#include "testing/podman.h"

namespace barge::testing {
namespace {

class ContainerTest : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    std::string why;
    if (!SetUpPodman(dir().string(), &why)) {
      if (PodmanRequired()) FAIL() << why;
      GTEST_SKIP() << why;
    }
  }
  void TearDown() override {
    for (const std::string& id : runs_) {
      std::vector<std::string> left = ContainersNamed(Cat("barge-", id));
      if (!left.empty()) RunCommand(RemoveContainerArgv({.program = "podman"}, left));
    }
    for (const std::string& image : images_) RunCommand({"podman", "rmi", "-f", image});
    ::unsetenv("CONTAINERS_CONF");
    E2eTest::TearDown();
  }

  std::string LatestRunId() {
    nlohmann::json runs = Json({"runs", "--json"});
    std::string id = runs.empty() ? "" : runs[0]["id"].get<std::string>();
    if (!id.empty()) runs_.insert(id);
    return id;
  }
  std::string Track(const std::string& id) {
    runs_.insert(id);
    return id;
  }
  // The pinned image of the run's step, as `barge status` shows it.
  std::string PinnedImage(const std::string& id, const std::string& step) {
    nlohmann::json status = Json({"status", id, "--json"});
    for (const auto& s : status["steps"]) {
      if (s["name"] == step && s.contains("image")) return s["image"].get<std::string>();
    }
    return "";
  }
  std::vector<std::string> Running(const std::string& id) {
    CommandResult ps =
        RunCommand({"podman", "ps", "--filter", Cat("name=barge-", id), "--format", "{{.Names}}"});
    return ps.output.empty() ? std::vector<std::string>{} : std::vector<std::string>{ps.output};
  }

  // Whether no cgroup barge gave a container of the run is left (cgroup v1 layout; elsewhere
  // there is nothing to look at).
  bool CgroupsGone(const std::string& id) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator("/sys/fs/cgroup/memory/barge", ec)) {
      if (e.path().filename().string().starts_with(Cat("barge-", id))) return false;
    }
    return true;
  }

  std::set<std::string> runs_;
  std::vector<std::string> images_;  // removed after the test, however it ended
};

TEST_F(ContainerTest, WritesOutputsAsTheWorkerAndSeesOnlyTheTasksVariables) {
  Write("greeting.txt", "from the pipeline directory\n");
  std::string p = Write("c.yaml", Cat(R"(
name: c
steps:
  - name: make
    image: )",
                                      kTestImage, R"(
    env: {GREETING: hello}
    run: |
      echo "$GREETING $BARGE_STEP $BARGE_TASK_INDEX" > "$BARGE_OUTPUT_DIR/out.txt"
      cat "$BARGE_PIPELINE_DIR/greeting.txt" >> "$BARGE_OUTPUT_DIR/out.txt"
      env | sort > "$BARGE_OUTPUT_DIR/env.txt"
      pwd > "$BARGE_OUTPUT_DIR/pwd.txt"
      if echo x > "$BARGE_PIPELINE_DIR/written"; then exit 4; fi
  - name: count
    image: )",
                                      kTestImage, R"(
    foreach: outputs(make)
    run: wc -l < "$BARGE_INPUT" > "$BARGE_OUTPUT_DIR/lines"
)"));
  ::setenv("WORKER_ONLY_VARIABLE", "must-not-leak", 1);
  Result r = Barge({"run", p});
  ::unsetenv("WORKER_ONLY_VARIABLE");
  std::string id = Track(RunIdFrom(r));
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;

  nlohmann::json make = Json({"tasks", id, "--step", "make", "--json"});
  ASSERT_EQ(make.size(), 1u);
  std::map<std::string, std::string> outputs;
  for (const auto& o : make[0]["outputs"]) {
    std::string path = o["path"].get<std::string>();
    outputs[std::filesystem::path(path).filename().string()] = path;
  }
  ASSERT_EQ(outputs.size(), 3u);
  EXPECT_EQ(Read(outputs["out.txt"]), "hello make 0\nfrom the pipeline directory\n");
  struct stat st {};
  ASSERT_EQ(::stat(outputs["out.txt"].c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, ::getuid());
  EXPECT_EQ(st.st_gid, ::getgid());
  std::string env = Read(outputs["env.txt"]);
  EXPECT_NE(env.find("GREETING=hello\n"), std::string::npos) << env;
  EXPECT_NE(env.find(Cat("BARGE_RUN_ID=", id, "\n")), std::string::npos) << env;
  EXPECT_NE(env.find("BARGE_OUTPUT_DIR=/"), std::string::npos) << env;
  EXPECT_EQ(env.find("WORKER_ONLY_VARIABLE"), std::string::npos) << env;
  EXPECT_EQ(env.find("CONTAINERS_CONF"), std::string::npos) << env;
  // The working directory is the attempt's scratch directory, at its own path.
  EXPECT_NE(Read(outputs["pwd.txt"]).find(Cat("/", id, "/make-0-a1")), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir() / "written"));

  nlohmann::json count = Json({"tasks", id, "--step", "count", "--json"});
  ASSERT_EQ(count.size(), 1u);
  EXPECT_EQ(count[0]["state"], "succeeded");

  std::string pinned = PinnedImage(id, "make");
  EXPECT_TRUE(pinned.starts_with("localhost/barge-test@sha256:")) << pinned;
  EXPECT_TRUE(ContainersNamed(Cat("barge-", id)).empty());
}

TEST_F(ContainerTest, ATaskOverItsMemoryFailsAsOutOfMemory) {
  std::string p = Write("oom.yaml", Cat(R"(
name: oom
steps:
  - name: hog
    image: )",
                                        kTestImage, R"(
    resources: {memory: 32MiB}
    run: dd if=/dev/zero of=/dev/null bs=200M count=1
)"));
  Result r = Barge({"run", p});
  std::string id = Track(RunIdFrom(r));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  nlohmann::json tasks = Json({"tasks", id, "--json", "--attempts"});
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0]["state"], "failed");
  EXPECT_EQ(tasks[0]["exit_code"], 137);
  EXPECT_EQ(tasks[0]["error"],
            "out of memory: the container exceeded its 32.0MiB limit (resources.memory)");
  ASSERT_EQ(tasks[0]["attempt_history"].size(), 1u);
  EXPECT_EQ(tasks[0]["attempt_history"][0]["failure_class"], "out_of_memory");
  EXPECT_NE(Barge({"logs", id, "hog", "0"}).out.find("barge: out of memory"), std::string::npos);
  EXPECT_TRUE(ContainersNamed(Cat("barge-", id)).empty());
  EXPECT_TRUE(CgroupsGone(id));
}

TEST_F(ContainerTest, ATaskThatTimesOutLeavesNoContainer) {
  std::string p = Write("slow.yaml", Cat(R"(
name: slow
steps:
  - name: slow
    image: )",
                                         kTestImage, R"(
    timeout: 1s
    run: [sleep, "60"]
)"));
  Result r = Barge({"run", p});
  std::string id = Track(RunIdFrom(r));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  nlohmann::json tasks = Json({"tasks", id, "--json"});
  EXPECT_EQ(tasks[0]["error"], "timed out after 1s");
  EXPECT_TRUE(ContainersNamed(Cat("barge-", id)).empty());
  EXPECT_TRUE(CgroupsGone(id));
}

TEST_F(ContainerTest, AKilledWorkerLeavesNoContainerRunning) {
  std::string p = Write("hold.yaml", Cat(R"(
name: hold
steps:
  - name: hold
    image: )",
                                         kTestImage, R"(
    run: [sleep, "120"]
)"));
  Result submitted = Barge({"run", p, "--detach"});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  std::string id = Track(std::string(Trim(submitted.out)));
  pid_t worker = StartBarge({"worker", "--cpu", "1"});
  WaitUntil([&] { return !Running(id).empty(); }, "the task's container to run");
  nlohmann::json workers = Json({"workers", "--json"});
  ASSERT_FALSE(workers.empty());
  EXPECT_EQ(workers[0]["labels"]["container"], "podman") << workers.dump();
  ASSERT_EQ(::kill(worker, SIGKILL), 0);
  EXPECT_EQ(Wait(worker), 128 + SIGKILL);
  WaitUntil([&] { return ContainersNamed(Cat("barge-", id)).empty(); },
            "the container to be removed after its worker died", std::chrono::seconds(30));
  // And the cgroup barge gave it.
  WaitUntil([&] { return CgroupsGone(id); }, "its cgroup to be removed", std::chrono::seconds(10));
}

TEST_F(ContainerTest, AKilledDriverLeavesNoContainerRunning) {
  std::string p = Write("hold.yaml", Cat(R"(
name: hold
steps:
  - name: hold
    image: )",
                                         kTestImage, R"(
    run: [sleep, "120"]
)"));
  pid_t driver = StartBarge({"run", p});
  std::string id;
  WaitUntil([&] { return !(id = LatestRunId()).empty() && !Running(id).empty(); },
            "the task's container to run");
  ASSERT_EQ(::kill(driver, SIGKILL), 0);
  EXPECT_EQ(Wait(driver), 128 + SIGKILL);
  WaitUntil([&] { return ContainersNamed(Cat("barge-", id)).empty(); },
            "the container to be removed after its driver died", std::chrono::seconds(30));
  WaitUntil([&] { return CgroupsGone(id); }, "its cgroup to be removed", std::chrono::seconds(10));
}

TEST_F(ContainerTest, ARetryRunsThePinnedImageEvenIfTheTagMoved) {
  std::string tag = Cat("localhost/barge-pin-", ::getpid(), ":1");
  images_.push_back(tag);
  ASSERT_EQ(RunCommand({"podman", "tag", kTestImage, tag}).exit_code, 0);
  std::string p = Write("pin.yaml", Cat(R"(
name: pin
steps:
  - name: which
    image: )",
                                        tag, R"(
    run: |
      [ "$BARGE_ATTEMPT" != 1 ] || exit 3
      if ls /marker >/dev/null 2>&1; then echo new; else echo old; fi > "$BARGE_OUTPUT_DIR/which"
)"));
  Result first = Barge({"run", p});
  std::string id = Track(RunIdFrom(first));
  EXPECT_EQ(first.exit_code, 1);
  std::string pinned = PinnedImage(id, "which");
  EXPECT_TRUE(pinned.starts_with(Cat("localhost/barge-pin-", ::getpid(), "@sha256:"))) << pinned;

  // The tag now names another image (with /marker): the retry still runs the pinned one.
  std::string rootfs = (dir() / "rootfs2").string();
  std::filesystem::create_directories(rootfs + "/bin");
  std::filesystem::copy_file("/bin/busybox", rootfs + "/bin/busybox");
  for (const char* tool : {"sh", "ls", "echo"}) {
    std::filesystem::create_symlink("busybox", Cat(rootfs, "/bin/", tool));
  }
  Write("rootfs2/marker", "");
  CommandResult moved =
      RunCommand({"sh", "-c", Cat("tar -C '", rootfs, "' -c . | podman import - ", tag)});
  ASSERT_EQ(moved.exit_code, 0) << moved.output;
  Result retried = Barge({"retry", id});
  EXPECT_EQ(retried.exit_code, 0) << retried.err;
  EXPECT_EQ(PinnedImage(id, "which"), pinned);
  nlohmann::json tasks = Json({"tasks", id, "--json"});
  ASSERT_EQ(tasks[0]["state"], "succeeded");
  EXPECT_EQ(Read(tasks[0]["outputs"][0]["path"].get<std::string>()), "old\n");
}

TEST_F(ContainerTest, AnImageThatIsNotThereIsTheWorkersFailure) {
  std::string p = Write("absent.yaml", R"(
name: absent
steps:
  - name: a
    image: localhost/barge-no-such-image:1
    run: [echo, hi]
)");
  Result r = Barge({"run", p});
  std::string id = Track(RunIdFrom(r));
  EXPECT_EQ(r.exit_code, 1);
  nlohmann::json tasks = Json({"tasks", id, "--json", "--attempts"});
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0]["state"], "failed");
  EXPECT_EQ(tasks[0]["attempt_history"][0]["failure_class"], "infrastructure");
  std::string log = Barge({"logs", id, "a", "0"}).out;
  EXPECT_NE(log.find("localhost/barge-no-such-image:1"), std::string::npos) << log;
}

TEST_F(ContainerTest, WithoutARuntimeValidateAndRunRefuseAndDetachIsLeftToTheFleet) {
  std::string p = Write("c.yaml", Cat(R"(
name: c
steps:
  - name: score
    image: )",
                                      kTestImage, R"(
    run: echo hi
)"));
  ::setenv("BARGE_CONTAINER_RUNTIME", "none", 1);
  Result validate = Barge({"validate", p});
  Result run = Barge({"run", p});
  Result detached = Barge({"run", p, "--detach"});
  ::unsetenv("BARGE_CONTAINER_RUNTIME");
  const char* message =
      "step score names an image, but this machine has no container runtime (podman or docker); "
      "install podman, or submit with --detach to a fleet whose workers have one";
  EXPECT_NE(validate.exit_code, 0);
  EXPECT_NE(validate.err.find(Cat(p, ":5:12: ", message)), std::string::npos) << validate.err;
  EXPECT_NE(run.exit_code, 0);
  EXPECT_NE(run.err.find(message), std::string::npos) << run.err;
  // Detached, it is checked against the fleet, not this machine: with no worker there is
  // nothing to check it against.
  EXPECT_EQ(detached.exit_code, 0) << detached.err;
  EXPECT_EQ(detached.err.find(message), std::string::npos) << detached.err;
  EXPECT_NE(detached.err.find("warning: no live worker"), std::string::npos) << detached.err;
}

}  // namespace
}  // namespace barge::testing
