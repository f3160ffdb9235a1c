// End to end: the quickstart and the inspection commands, through the real binary.
#include <set>

#include "common/strings.h"
#include "harness.h"

namespace barge::testing {
namespace {

class RunTest : public E2eTest {};

const std::string kQuickstart = Cat(BARGE_SOURCE_DIR, "/examples/quickstart/pipeline.yaml");

TEST_F(RunTest, QuickstartProducesTheExpectedReport) {
  Result r = Barge({"run", kQuickstart, "--workers", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string id = RunIdFrom(r);
  ASSERT_FALSE(id.empty()) << r.out;
  EXPECT_NE(r.out.find(Cat(id, " succeeded")), std::string::npos) << r.out;

  nlohmann::json tasks = Json({"tasks", id, "--json"});
  ASSERT_EQ(tasks.size(), 3u + 6u + 6u + 1u);
  for (const auto& t : tasks) {
    EXPECT_EQ(t["state"], "succeeded") << t.dump();
    EXPECT_EQ(t["attempts"], 1);
    EXPECT_EQ(t["exit_code"], 0);
  }
  nlohmann::json merge = Json({"tasks", id, "--step", "merge", "--json"});
  ASSERT_EQ(merge.size(), 1u);
  ASSERT_EQ(merge[0]["outputs"].size(), 1u);
  std::string report = Read(merge[0]["outputs"][0]["path"]);
  EXPECT_EQ(report, "hello ada\nhello grace\nhello linus\nsum of doubled squares: 110\n");
  // The same report is in the merge task's log, which `barge logs` prints.
  Result logs = Barge({"logs", id, "merge", "0"});
  EXPECT_EQ(logs.exit_code, 0);
  EXPECT_EQ(logs.out, report);
  // Every attempt's working directory is gone, and with the last one the run's own.
  ASSERT_TRUE(std::filesystem::is_directory(dir() / ".barge/scratch"));
  EXPECT_FALSE(std::filesystem::exists(dir() / ".barge/scratch" / id));
}

TEST_F(RunTest, QuickstartOnPostgres) {
  if (!UsePostgres()) GTEST_SKIP() << "no BARGE_TEST_POSTGRES server";
  Result r = Barge({"run", kQuickstart, "--root", (dir() / "data").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string id = RunIdFrom(r);
  EXPECT_EQ(Barge({"logs", id, "merge", "0"}).out,
            "hello ada\nhello grace\nhello linus\nsum of doubled squares: 110\n");
  nlohmann::json runs = Json({"runs", "--json"});
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0]["state"], "succeeded");
  EXPECT_FALSE(std::filesystem::exists(dir() / ".barge/state.db"));  // state went to PostgreSQL
}

TEST_F(RunTest, ParamsOverrideAndJsonListings) {
  Result r = Barge({"run", kQuickstart, "--param", "greeting=hej", "--param", "squares=3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string id = RunIdFrom(r);
  Result logs = Barge({"logs", id, "merge", "0"});
  EXPECT_EQ(logs.out, "hej ada\nhej grace\nhej linus\nsum of doubled squares: 10\n");

  Result second = Barge({"run", kQuickstart});
  ASSERT_EQ(second.exit_code, 0);
  nlohmann::json runs = Json({"runs", "--json"});
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0]["id"], RunIdFrom(second));  // newest first
  EXPECT_EQ(runs[1]["id"], id);
  EXPECT_EQ(runs[1]["pipeline"], "quickstart");
  EXPECT_EQ(runs[1]["state"], "succeeded");
  EXPECT_TRUE(runs[1]["created_at"].get<std::string>().ends_with("Z"));

  nlohmann::json status = Json({"status", id, "--json"});
  EXPECT_EQ(status["state"], "succeeded");
  ASSERT_EQ(status["steps"].size(), 4u);
  EXPECT_EQ(status["steps"][1]["name"], "square");
  EXPECT_EQ(status["steps"][1]["tasks"], 3);
  EXPECT_EQ(status["steps"][1]["succeeded"], 3);
}

TEST_F(RunTest, TaskEnvironmentMatchesAwsBatch) {
  std::string p = Write("env.yaml", R"Y(
name: env
steps:
  - name: show
    foreach: [{name: a b, n: "1"}, plain]
    env: {EXTRA: "x-{index}"}
    run: [sh, -c, 'env | grep -E "^(BARGE_|AWS_BATCH|EXTRA)" | sort > "$BARGE_OUTPUT_DIR/env"']
)Y");
  Result r = Barge({"run", p});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string id = RunIdFrom(r);
  nlohmann::json tasks = Json({"tasks", id, "--json"});
  std::string env0 = Read(tasks[0]["outputs"][0]["path"]);
  std::string env1 = Read(tasks[1]["outputs"][0]["path"]);
  EXPECT_NE(env0.find("AWS_BATCH_JOB_ARRAY_INDEX=0\n"), std::string::npos) << env0;
  EXPECT_NE(env0.find("AWS_BATCH_JOB_ATTEMPT=1\n"), std::string::npos);
  EXPECT_NE(env0.find(R"(BARGE_ITEM={"n":"1","name":"a b"})"), std::string::npos) << env0;
  EXPECT_NE(env0.find(Cat("BARGE_RUN_ID=", id, "\n")), std::string::npos);
  EXPECT_NE(env0.find("BARGE_STEP=show\n"), std::string::npos);
  EXPECT_NE(env0.find("EXTRA=x-0\n"), std::string::npos);
  EXPECT_NE(env1.find("BARGE_ITEM=plain\n"), std::string::npos) << env1;
  EXPECT_NE(env1.find("BARGE_TASK_INDEX=1\n"), std::string::npos);
  EXPECT_NE(
      env1.find(Cat("BARGE_OUTPUT_DIR=", dir().string(), "/.barge/data/runs/", id, "/show/1/a1\n")),
      std::string::npos)
      << env1;
}

TEST_F(RunTest, HostileFileNamesAreNeverInterpreted) {
  // Each name would do damage if a shell ever interpreted it.
  const std::vector<std::string> names = {
      "with space.txt", "quote'single.txt",  "dq\"uote.txt", "$(touch PWNED).txt",
      "semi;colon.txt", "-leading-dash.txt", "`tick`.txt"};
  for (const std::string& n : names) Write(Cat("in/", n), n);
  std::string p = Write("files.yaml", R"(
name: files
steps:
  - name: copy
    foreach: files("in/*")
    run: cat {item} "$BARGE_INPUT" > "$BARGE_OUTPUT_DIR/copy" && echo {item} > "$BARGE_OUTPUT_DIR/name"
  - name: argv
    foreach: files("in/*")
    run: [cp, --, "{item}", "${BARGE_OUTPUT_DIR}/x"]
)");
  Result r = Barge({"run", p});
  EXPECT_EQ(r.exit_code, 1);  // the argv step fails: no shell expands ${BARGE_OUTPUT_DIR}
  std::string id = RunIdFrom(r);
  nlohmann::json copies = Json({"tasks", id, "--step", "copy", "--json"});
  ASSERT_EQ(copies.size(), names.size());
  std::set<std::string> seen;
  for (const auto& t : copies) {
    ASSERT_EQ(t["state"], "succeeded") << t.dump();
    std::string path = t["item"];
    std::string name = std::filesystem::path(path).filename().string();
    std::string copy, recorded;
    for (const auto& o : t["outputs"]) {
      std::string out = o["path"];
      if (out.ends_with("/copy")) copy = Read(out);
      if (out.ends_with("/name")) recorded = Read(out);
    }
    EXPECT_EQ(copy, name + name);
    EXPECT_EQ(recorded, path + "\n");
    seen.insert(name);
  }
  EXPECT_EQ(seen.size(), names.size());
  EXPECT_FALSE(std::filesystem::exists(dir() / "PWNED"));
  EXPECT_FALSE(std::filesystem::exists(dir() / ".barge/scratch/PWNED"));
}

TEST_F(RunTest, ExecRerunsOneTaskInIsolation) {
  std::string p = Write("exec.yaml", R"(
name: ex
steps:
  - name: make
    foreach: range(3)
    run: echo "value $BARGE_TASK_INDEX" > "$BARGE_OUTPUT_DIR/v"
  - name: read
    foreach: outputs(make)
    run: cat "$BARGE_INPUT"; tr a-z A-Z < "$BARGE_INPUT" > "$BARGE_OUTPUT_DIR/up"
)");
  Result r = Barge({"run", p});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string id = RunIdFrom(r);
  Result ex = Barge({"exec", id, "read", "2"});
  ASSERT_EQ(ex.exit_code, 0) << ex.err;
  EXPECT_NE(ex.out.find("#   /bin/sh\n#   -c\n"), std::string::npos) << ex.out;
  EXPECT_NE(ex.out.find(Cat("/runs/", id, "/make/2/a1/v\n")), std::string::npos) << ex.out;
  EXPECT_NE(ex.out.find("BARGE_TASK_INDEX=2"), std::string::npos);
  EXPECT_NE(ex.out.find("value 2\n"), std::string::npos) << ex.out;  // the task's own output
  // It wrote into a fresh directory, not into the run's committed outputs.
  size_t at = ex.err.find(" in ");
  ASSERT_NE(at, std::string::npos) << ex.err;
  std::string out_dir = ex.err.substr(at + 4, ex.err.find('\n', at) - at - 4);
  EXPECT_EQ(Read(out_dir + "/up"), "VALUE 2\n");
  EXPECT_EQ(out_dir.find(Cat("/runs/", id)), std::string::npos);
  nlohmann::json tasks = Json({"tasks", id, "--step", "read", "--json"});
  EXPECT_EQ(tasks[2]["attempts"], 1);
}

}  // namespace
}  // namespace barge::testing
