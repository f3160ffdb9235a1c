// The pipeline travels: a run's code bundle and the submitter's files reach workers that cannot
// see the submitter's disk. Each fleet worker runs in a mount namespace of its own, where a tmpfs
// hides the pipeline's directory, with PostgreSQL state and an S3 root (the test s3rver). The
// same pipeline on a laptop gives the same bytes.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "common/strings.h"
#include "harness.h"
#include "hidden_fleet.h"
#include "objstore/object_store.h"
#include "testing/podman.h"
#include "testing/s3rver.h"

namespace barge::testing {
namespace {

class ProjectTest : public E2eTest {
 protected:
  // Scripts beside the pipeline, called as ./script (shell), through $BARGE_PIPELINE_DIR (argv
  // and shell), and data files beside it read through files("data/*.csv"); with `image`, also a
  // step that runs a script of the bundle in a container (testing/podman.h's image).
  void WriteProject(const std::string& proj, bool image = false);
  // The report a run committed, read through `read` (a local path or an S3 URL).
  std::string ReportOf(const std::string& id,
                       const std::function<std::string(const std::string&)>& read);
};

void ProjectTest::WriteProject(const std::string& proj, bool image) {
  ProjectTest& t = *this;
  std::string score = image ? Cat(R"yaml(
  - name: score
    image: )yaml",
                                  kTestImage, R"yaml(
    foreach: outputs(clean)
    run: ./score.sh
    resources: {cpu: 1, memory: 256MiB})yaml")
                            : "";
  t.Write(proj + "/score.sh",
          "#!/bin/sh\necho \"$(wc -l < \"$BARGE_INPUT\") lines in task $BARGE_TASK_INDEX, uid "
          "$(id -u)\" > \"$BARGE_OUTPUT_DIR/score.txt\"\n");
  t.Write(proj + "/pipeline.yaml", Cat(R"yaml(name: travel
steps:
  - name: transform
    foreach: files("data/*.csv")
    run: ./transform.sh "$BARGE_INPUT" > "$BARGE_OUTPUT_DIR/$(basename "$BARGE_INPUT")"
  - name: clean
    needs: [transform]
    foreach: outputs(transform)
    run: ["$BARGE_PIPELINE_DIR/bin/clean", "{index}"]
  - name: report
    needs: [clean)yaml",
                                       image ? ", score" : "", R"yaml(]
    run: $BARGE_PIPELINE_DIR/report.sh)yaml",
                                       score, "\n"));
  t.Write(proj + "/transform.sh", "#!/bin/sh\ntr a-z A-Z < \"$1\"\n");
  t.Write(proj + "/bin/clean",
          "#!/bin/sh\nsed 's/,/;/g' \"$BARGE_INPUT\" > \"$BARGE_OUTPUT_DIR/clean-$1.txt\"\n");
  t.Write(proj + "/report.sh",
          "#!/bin/sh\nsort $(cat \"$BARGE_INPUT_LIST\") > \"$BARGE_OUTPUT_DIR/report.txt\"\n"
          "cat lookup.txt >> \"$BARGE_OUTPUT_DIR/report.txt\"\n");
  t.Write(proj + "/lookup.txt", "read through ./lookup.txt in the working directory\n");
  for (const char* script : {"/transform.sh", "/bin/clean", "/report.sh", "/score.sh"}) {
    std::filesystem::permissions(t.dir() / (proj + script), std::filesystem::perms::owner_exec,
                                 std::filesystem::perm_options::add);
  }
  t.Write(proj + "/data/a.csv", "id,name\n1,alice\n");
  t.Write(proj + "/data/b.csv", "id,name\n2,bob\n3,carol\n");
  t.Write(proj + "/data/c.csv", "id,name\n4,dave\n");
  // Left out of the bundle: nothing of it reaches a worker.
  t.Write(proj + "/.bargeignore", "notes/\n");
  t.Write(proj + "/notes/big.txt", std::string(1 << 20, 'x'));
}

std::string ProjectTest::ReportOf(const std::string& id,
                                  const std::function<std::string(const std::string&)>& read) {
  nlohmann::json tasks = Json({"tasks", id, "--json"});
  for (const auto& task : tasks) {
    if (task["step"] != "report") continue;
    for (const auto& o : task["outputs"]) {
      std::string path = o["path"];
      if (path.ends_with("/report.txt")) return read(path);
    }
  }
  ADD_FAILURE() << "run " << id << " committed no report: " << tasks.dump();
  return "";
}

TEST_F(ProjectTest, ScriptsBesideThePipelineRunByRelativePathAndThroughThePipelineDirectory) {
  WriteProject("proj");
  Result r = Barge({"run", (dir() / "proj/pipeline.yaml").string()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.err.find("barge: bundle "), std::string::npos) << r.err;
  std::string report = ReportOf("last", [&](const std::string& p) { return Read(p); });
  EXPECT_EQ(report,
            "1;ALICE\n2;BOB\n3;CAROL\n4;DAVE\nID;NAME\nID;NAME\nID;NAME\n"
            "read through ./lookup.txt in the working directory\n");
  // The run records its bundle, and `barge status` shows it.
  nlohmann::json status = Json({"status", "last", "--json"});
  std::string bundle = status["bundle"];
  ASSERT_EQ(bundle.size(), 64u) << status.dump();
  EXPECT_TRUE(std::filesystem::exists(dir() / ".barge/data/bundles" / (bundle + ".tar.zst")));
  EXPECT_NE(Barge({"status", "last"}).out.find("bundle    " + bundle.substr(0, 12)),
            std::string::npos);

  // The bundle is the code as submitted: a later edit of the script does not change what
  // `barge exec` runs for that run.
  Write("proj/transform.sh", "#!/bin/sh\necho edited\n");
  Result exec = Barge({"exec", "last", "transform", "0"});
  EXPECT_EQ(exec.exit_code, 0) << exec.err;
  EXPECT_NE(exec.out.find("# code bundle: " + bundle), std::string::npos) << exec.out;
  EXPECT_EQ(exec.out.find("edited"), std::string::npos) << exec.out;

  // A second run of unchanged code stores nothing new; a changed script makes a new bundle.
  Write("proj/transform.sh", "#!/bin/sh\ntr a-z A-Z < \"$1\"\n");
  Result again = Barge({"run", (dir() / "proj/pipeline.yaml").string()});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.err.find("already stored"), std::string::npos) << again.err;
  EXPECT_EQ(Json({"status", "last", "--json"})["bundle"], bundle);
}

TEST_F(ProjectTest, ABundleOverItsCapIsRefusedNamingItsLargestFile) {
  WriteProject("proj");
  Write("proj/model.bin", std::string(3 << 20, 'm'));
  Result r = Barge({"run", (dir() / "proj/pipeline.yaml").string(), "--bundle-max", "2MiB"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("model.bin"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(".bargeignore"), std::string::npos) << r.err;
  EXPECT_TRUE(Json({"runs", "--json"}).empty()) << "a refused submission made a run";
}

TEST_F(ProjectTest, TheReadmesFirstExampleIsExamplesDailyAndRunsAsWritten) {
  std::string readme = Read(Cat(BARGE_SOURCE_DIR, "/README.md"));
  size_t start = readme.find("```yaml\nname: events-daily");
  ASSERT_NE(start, std::string::npos);
  start += 8;
  std::string block = readme.substr(start, readme.find("```", start) - start);
  std::string example = Read(Cat(BARGE_SOURCE_DIR, "/examples/daily/pipeline.yaml"));
  EXPECT_NE(example.find(block), std::string::npos) << "examples/daily/pipeline.yaml is not the "
                                                       "README's example:\n"
                                                    << block;
  Result r = Barge({"run", Cat(BARGE_SOURCE_DIR, "/examples/daily/pipeline.yaml")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string report = ReportOf("last", [&](const std::string& p) { return Read(p); });
  EXPECT_EQ(std::count(report.begin(), report.end(), '\n'), 40) << report;  // 8 shards x 5
  EXPECT_NE(report.find("SHARD-7,USER-"), std::string::npos) << report;
}

class TravelTest : public HiddenFleet<ProjectTest> {
 protected:
  void SetUp() override {
    HiddenFleet<ProjectTest>::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    std::string why;
    if (!SetUpPodman(dir().string(), &why)) {
      if (PodmanRequired()) FAIL() << why;
      GTEST_SKIP() << why;
    }
    WriteProject("proj", /*image=*/true);
  }
  void TearDown() override {
    HiddenFleet<ProjectTest>::TearDown();
    ::unsetenv("CONTAINERS_CONF");
  }
  void StartWorkers(int n) {
    for (int i = 0; i < n; ++i) StartHiddenWorker();
  }
  std::string ReadUrl(const std::string& url) {
    auto [bucket, key] = SplitObjectUrl(url).value();
    std::unique_ptr<ObjectStore> store = OpenObjectStore(bucket).value();  // the whole bucket
    absl::StatusOr<std::string> got = store->Get(key);
    EXPECT_TRUE(got.ok()) << url << ": " << got.status();
    return got.ok() ? *got : "";
  }
  std::string SubmitAndWait() {
    Result r = Barge({"run", proj_ + "/pipeline.yaml", "--detach", "--root", RootUrl()});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    last_submit_err_ = r.err;
    std::string id = r.out.substr(0, r.out.find('\n'));
    Result waited = Barge({"wait", id});
    EXPECT_EQ(waited.exit_code, 0)
        << waited.out << waited.err << Barge({"tasks", id, "--only", "failed"}).out;
    return id;
  }

  std::string last_submit_err_;
};

TEST_F(TravelTest, ThreeWorkersThatCannotSeeTheSubmittersDiskGiveTheLaptopsBytes) {
  Result laptop =
      Barge({"run", proj_ + "/pipeline.yaml", "--state", (dir() / "laptop/state.db").string(),
             "--root", (dir() / "laptop/data").string()});
  ASSERT_EQ(laptop.exit_code, 0) << laptop.err;
  std::string expected;
  {
    // The laptop's own store: read its report while BARGE_STATE points at PostgreSQL.
    Result tasks =
        Barge({"tasks", "last", "--json", "--state", (dir() / "laptop/state.db").string()});
    nlohmann::json j = nlohmann::json::parse(tasks.out);
    for (const auto& t : j) {
      for (const auto& o : t["outputs"]) {
        std::string p = o["path"];
        if (p.ends_with("/report.txt")) expected = Read(p);
      }
    }
  }
  ASSERT_FALSE(expected.empty());

  // The container step ran the bundle's script as the worker's user, in the image.
  EXPECT_NE(expected.find(Cat("3 lines in task 1, uid ", ::getuid())), std::string::npos)
      << expected;
  StartWorkers(3);
  std::string id = SubmitAndWait();
  EXPECT_EQ(ReportOf(id, [&](const std::string& u) { return ReadUrl(u); }), expected);
  EXPECT_TRUE(ContainersNamed("barge-" + id).empty()) << "a container outlived its task";
  // The tasks read stored copies of the submitter's files, never its paths.
  nlohmann::json transform = Json({"tasks", id, "--step", "transform", "--json"});
  ASSERT_EQ(transform.size(), 3u);
  for (const auto& t : transform) {
    EXPECT_EQ(t["item"].get<std::string>().rfind(RootUrl() + "/files/", 0), 0u) << t.dump();
  }
  // Worker scratch trees never held the ignored notes.
  int bundles_unpacked = 0;
  for (int i = 0; i < 3; ++i) {
    if (!std::filesystem::exists(dir() / Cat("w", i))) continue;  // took no task
    bundles_unpacked += std::filesystem::exists(dir() / Cat("w", i, "/.bundles")) ? 1 : 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir() / Cat("w", i))) {
      EXPECT_NE(e.path().filename(), "big.txt") << e.path();
    }
  }
  EXPECT_GE(bundles_unpacked, 1);
  std::vector<std::string> bundles = Keys("bundles/");
  ASSERT_EQ(bundles.size(), 1u);

  // Unchanged code and data: the second submission stores nothing.
  std::string again = SubmitAndWait();
  EXPECT_NE(last_submit_err_.find("already stored"), std::string::npos) << last_submit_err_;
  EXPECT_NE(last_submit_err_.find("0 stored"), std::string::npos) << last_submit_err_;
  EXPECT_EQ(Keys("bundles/").size(), 1u);
  EXPECT_EQ(Keys("files/").size(), 3u);
  EXPECT_EQ(ReportOf(again, [&](const std::string& u) { return ReadUrl(u); }), expected);
}

TEST_F(TravelTest, TheReadmesFirstExampleRunsAsWrittenOnThreeWorkersThatCannotSeeIt) {
  std::filesystem::remove_all(proj_);
  std::filesystem::copy(Cat(BARGE_SOURCE_DIR, "/examples/daily"), proj_,
                        std::filesystem::copy_options::recursive);
  Result laptop =
      Barge({"run", proj_ + "/pipeline.yaml", "--state", (dir() / "laptop/state.db").string(),
             "--root", (dir() / "laptop/data").string()});
  ASSERT_EQ(laptop.exit_code, 0) << laptop.err;
  std::string expected = Read(Json({"tasks", "last", "--step", "report", "--json", "--state",
                                    (dir() / "laptop/state.db").string()})[0]["outputs"][0]["path"]
                                  .get<std::string>());
  ASSERT_FALSE(expected.empty());
  StartWorkers(3);
  std::string id = SubmitAndWait();
  EXPECT_EQ(ReportOf(id, [&](const std::string& u) { return ReadUrl(u); }), expected);
}

TEST_F(TravelTest, ASharedStoreWithALocalRootIsRefusedUnlessDeclaredShared) {
  Result r =
      Barge({"run", proj_ + "/pipeline.yaml", "--detach", "--root", (dir() / "data").string()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--shared-root"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--root s3://"), std::string::npos) << r.err;
  EXPECT_TRUE(Json({"runs", "--json"}).empty()) << "a refused submission made a run";
  // Declared shared (every worker mounts it): accepted, and its files are stored in the root.
  Result shared = Barge({"run", proj_ + "/pipeline.yaml", "--detach", "--root",
                         (dir() / "data").string(), "--shared-root"});
  EXPECT_EQ(shared.exit_code, 0) << shared.err;
  EXPECT_TRUE(std::filesystem::exists(dir() / "data/files")) << shared.err;
}

}  // namespace
}  // namespace barge::testing
