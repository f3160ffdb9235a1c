// End to end: the quickstart and the inspection commands, through the real binary.
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <set>

#include "common/strings.h"
#include "harness.h"
#include "objstore/object_store.h"
#include "testing/s3rver.h"

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

// Sets environment variables for the barge processes a test starts; restores them after.
class ScopedEnv {
 public:
  explicit ScopedEnv(std::vector<std::pair<std::string, std::string>> vars) : vars_(vars) {
    for (const auto& [k, v] : vars_) ::setenv(k.c_str(), v.c_str(), 1);
  }
  ~ScopedEnv() {
    for (const auto& [k, v] : vars_) ::unsetenv(k.c_str());
  }

 private:
  std::vector<std::pair<std::string, std::string>> vars_;
};

TEST_F(RunTest, TaskEnvironmentHoldsNoneOfBargesOwnSecrets) {
  std::string p = Write("env.yaml", R"Y(
name: env
steps:
  - name: show
    env: {PGAPPNAME: set-by-the-step}
    run: env | sort > "$BARGE_OUTPUT_DIR/env"
)Y");
  ScopedEnv env({{"BARGE_TOKEN", "token-secret-1234567890"},
                 {"BARGE_STATE", (dir() / ".barge/state.db").string()},
                 {"BARGE_INPUT_CACHE", "1GiB"},
                 {"PGPASSWORD", "pg-secret-0987654321"},
                 {"PGSERVICEFILE", "/nonexistent/pg_service.conf"},
                 {"AWS_ACCESS_KEY_ID", "AKIA-for-the-data"},
                 {"PGAPPNAME", "from-barge"}});
  Result r = Barge({"run", p});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json tasks = Json({"tasks", RunIdFrom(r), "--json"});
  std::string seen = Read(tasks[0]["outputs"][0]["path"]);
  for (const char* hidden : {"BARGE_TOKEN=", "BARGE_STATE=", "BARGE_INPUT_CACHE=", "PGPASSWORD=",
                             "PGSERVICEFILE=", "token-secret", "pg-secret", "from-barge"}) {
    EXPECT_EQ(seen.find(hidden), std::string::npos) << hidden << " reached the task:\n" << seen;
  }
  // What tasks need still reaches them: the data's credentials, PATH and HOME, barge's task
  // variables, and what the step sets, PG* names included.
  for (const char* kept : {"AWS_ACCESS_KEY_ID=AKIA-for-the-data\n",
                           "PATH=", "HOME=", "BARGE_STEP=show\n", "PGAPPNAME=set-by-the-step\n"}) {
    EXPECT_NE(seen.find(kept), std::string::npos) << kept << " is missing:\n" << seen;
  }
  // `barge exec` runs the task with the same environment, into an output directory it prints.
  Result ex = Barge({"exec", RunIdFrom(r), "show", "0", "--keep"});
  ASSERT_EQ(ex.exit_code, 0) << ex.err;
  size_t at = ex.out.find("# output directory: ");
  ASSERT_NE(at, std::string::npos) << ex.out;
  at += 20;
  std::string exec_seen = Read(ex.out.substr(at, ex.out.find('\n', at) - at) + "/env");
  EXPECT_NE(exec_seen.find("BARGE_STEP=show\n"), std::string::npos) << exec_seen;
  for (const char* hidden : {"BARGE_TOKEN=", "BARGE_STATE=", "PGPASSWORD=", "token-secret"}) {
    EXPECT_EQ(exec_seen.find(hidden), std::string::npos) << hidden << " reached exec's task";
  }
}

// A task runs as barge's user, so without more it could read barge's environment (the token, the
// store's password) from /proc/<barge>/environ. Run as root, the test runs barge as `nobody`
// (root could read anything): the task then cannot read the environment of any barge process.
TEST_F(RunTest, ATaskCannotReadBargesEnvironmentThroughProc) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run barge as another user";
  std::string p = Write("peek.yaml", R"Y(
name: peek
steps:
  - name: peek
    run: |
      cat /proc/$PPID/environ > "$BARGE_OUTPUT_DIR/parent" 2>&1 || true
      for f in /proc/[0-9]*/environ; do cat "$f"; done 2>/dev/null | tr '\0' '\n' > "$BARGE_OUTPUT_DIR/all"
)Y");
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir())) {
    ASSERT_EQ(::chown(e.path().c_str(), 65534, 65534), 0) << e.path();
  }
  ASSERT_EQ(::chown(dir().c_str(), 65534, 65534), 0);
  if (std::system(Cat("setpriv --reuid=65534 --regid=65534 --clear-groups test -w '",
                      dir().string(), "' && test -x '", BARGE_BINARY, "'")
                      .c_str()) != 0) {
    GTEST_SKIP() << "cannot run barge as nobody here (setpriv, or a test directory nobody cannot "
                    "reach)";
  }
  ScopedEnv env(
      {{"BARGE_TOKEN", "token-secret-1234567890"}, {"PGPASSWORD", "pg-secret-0987654321"}});
  pid_t pid = StartBarge({"run", p, "--state", (dir() / ".barge/state.db").string()},
                         {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"});
  ASSERT_EQ(Wait(pid), 0) << Read((dir() / ".bg1.err").string());
  std::string out = Read((dir() / ".bg1.out").string());
  nlohmann::json tasks = Json({"tasks", out.substr(4, out.find('\n') - 4), "--json"});
  ASSERT_EQ(tasks.size(), 1u) << out;
  std::string parent, all;
  for (const auto& o : tasks[0]["outputs"]) {
    if (o["path"].get<std::string>().ends_with("/parent")) parent = Read(o["path"]);
    if (o["path"].get<std::string>().ends_with("/all")) all = Read(o["path"]);
  }
  EXPECT_NE(parent.find("Permission denied"), std::string::npos) << parent;
  for (const char* secret : {"token-secret", "pg-secret"}) {
    EXPECT_EQ(parent.find(secret), std::string::npos) << secret << " read by the task:\n" << parent;
    EXPECT_EQ(all.find(secret), std::string::npos) << secret << " read by the task:\n" << all;
  }
  EXPECT_NE(all.find("BARGE_STEP=peek\n"), std::string::npos) << "the task read no environment";
}

TEST_F(RunTest, ASymlinkedOutputFailsTheTaskAndNothingDownstreamSeesItTwice) {
  std::string p = Write("links.yaml", R"Y(
name: links
steps:
  - name: write
    retries: 1
    retry_delay: 10ms
    run: |
      printf 'id,amount\n1,10\n2,20\n' > "$BARGE_OUTPUT_DIR/part-0.csv"
      ln -s part-0.csv "$BARGE_OUTPUT_DIR/latest.csv"
  - name: total
    needs: [write]
    run: cat $(cat "$BARGE_INPUT_LIST") | grep -vc id > "$BARGE_OUTPUT_DIR/rows"
)Y");
  Result r = Barge({"run", p});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  std::string id = RunIdFrom(r);
  nlohmann::json write = Json({"tasks", id, "--step", "write", "--json", "--attempts"});
  ASSERT_EQ(write.size(), 1u);
  EXPECT_EQ(write[0]["state"], "failed");
  EXPECT_EQ(write[0]["attempts"], 2) << write.dump();  // its one retry, and no more
  EXPECT_EQ(write[0]["infra_failures"], 0) << write.dump();
  EXPECT_NE(write[0]["error"].get<std::string>().find(
                "output latest.csv is a symbolic link (to part-0.csv); write the file itself"),
            std::string::npos)
      << write.dump();
  ASSERT_EQ(write[0]["attempt_history"].size(), 2u) << write.dump();
  for (const auto& a : write[0]["attempt_history"]) {
    EXPECT_EQ(a["failure_class"], "application") << a.dump();
  }
  EXPECT_TRUE(write[0]["outputs"].empty()) << write.dump();
  // The log says why barge failed a task whose command exited 0.
  EXPECT_NE(Barge({"logs", id, "write", "0"}).out.find("barge: output latest.csv is a symbolic"),
            std::string::npos);
  for (const auto& t : Json({"tasks", id, "--step", "total", "--json"})) {
    EXPECT_NE(t["state"], "succeeded") << t.dump();  // it never read the rows at all
  }
}

TEST_F(RunTest, OutputsThatCannotBeCommittedFaithfullyAreTheTasksOwnFailure) {
  // Each task leaves one thing in its output directory beside a good file; each is refused by
  // name, as the task's own failure, and nothing of it is committed.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"ln -s /etc/passwd p", "output p is a symbolic link (to /etc/passwd)"},
      {"ln -s /tmp d", "output d is a symbolic link (to /tmp)"},
      {"ln -s nowhere dangling", "output dangling is a symbolic link (to nowhere)"},
      {"ln -s loop loop", "output loop is a symbolic link (to loop)"},
      {"mkdir sub && ln -s ../good.txt sub/up",
       "output sub/up is a symbolic link (to ../good.txt)"},
      {"touch 'new\nline.txt'", "output new\\nline.txt holds a control character"},
      {"touch \"$(printf 'bad\\377.txt')\"", "output bad\\xff.txt is not valid UTF-8"},
      {"mkfifo pipe", "output pipe is not a regular file"},
  };
  std::string items;
  for (size_t i = 0; i < cases.size(); ++i) {
    Write(Cat("case", i, ".sh"),
          Cat("cd \"$BARGE_OUTPUT_DIR\" && echo good > good.txt && ", cases[i].first, "\n"));
    items += Cat(i == 0 ? "" : ", ", i);
  }
  std::string p = Write("bad.yaml", Cat(R"Y(
name: bad
steps:
  - name: leave
    foreach: [)Y",
                                        items, R"Y(]
    run: sh "$BARGE_PIPELINE_DIR/case$BARGE_ITEM.sh"
)Y"));
  Result r = Barge({"run", p});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  nlohmann::json tasks = Json({"tasks", RunIdFrom(r), "--json"});
  ASSERT_EQ(tasks.size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& t = tasks[i];
    EXPECT_EQ(t["state"], "failed") << cases[i].first << ": " << t.dump();
    EXPECT_EQ(t["infra_failures"], 0) << cases[i].first;
    EXPECT_EQ(t["attempts"], 1) << cases[i].first;
    EXPECT_NE(t["error"].get<std::string>().find(cases[i].second), std::string::npos)
        << cases[i].first << ": " << t["error"];
    EXPECT_TRUE(t["outputs"].empty()) << t.dump();
  }
}

TEST_F(RunTest, AResultFileOfTheWrongShapeIsTheTasksOwnFailureNeverAnAbort) {
  // What a task writes to .barge_result.json is read only where it has the expected type; the
  // rest is ignored, or named in the task's error. barge itself carries on (it aborted on
  // {"error": 1}; a deep "rows" would overflow its stack when copied into the manifest).
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"(echo '{"error": 1}' > .barge_result.json; exit 1)",
       "\"error\" in .barge_result.json is not a string"},
      {R"(echo '{"error": {"x": [1]}, "failure_class": 2}' > .barge_result.json; exit 1)",
       "\"error\" in .barge_result.json is not a string"},
      {R"(echo '{"error": "boom", "failure_class": ["bad_input"]}' > .barge_result.json; exit 3)",
       "boom"},
      {R"(echo '{"rows": "many", "schema": 5}' > .barge_result.json)", ""},
      {R"({ printf '{"rows": '; head -c 1000000 /dev/zero | tr '\0' '['; )"
       R"(head -c 1000000 /dev/zero | tr '\0' ']'; printf '}'; } > .barge_result.json)",
       ""},
  };
  std::string items;
  for (size_t i = 0; i < cases.size(); ++i) {
    Write(Cat("case", i, ".sh"), cases[i].first + "\n");
    items += Cat(i == 0 ? "" : ", ", i);
  }
  std::string p = Write("result.yaml", Cat(R"Y(
name: result
steps:
  - name: report
    foreach: [)Y",
                                           items, R"Y(]
    run: sh "$BARGE_PIPELINE_DIR/case$BARGE_ITEM.sh"
)Y"));
  Result r = Barge({"run", p});
  EXPECT_EQ(r.exit_code, 1) << r.err;  // 134 when it aborted
  nlohmann::json tasks = Json({"tasks", RunIdFrom(r), "--json"});
  ASSERT_EQ(tasks.size(), cases.size()) << r.err;
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& t = tasks[i];
    bool fails = !cases[i].second.empty();
    EXPECT_EQ(t["state"], fails ? "failed" : "succeeded") << cases[i].first << ": " << t.dump();
    EXPECT_EQ(t["infra_failures"], 0) << cases[i].first;
    EXPECT_EQ(t["attempts"], 1) << cases[i].first;
    if (fails) {
      EXPECT_NE(t["error"].get<std::string>().find(cases[i].second), std::string::npos)
          << cases[i].first << ": " << t["error"];
    }
  }
  nlohmann::json status = Json({"status", RunIdFrom(r), "--json"});
  EXPECT_EQ(status["state"], "failed") << status.dump();
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
  // The argv step has no shell: barge expands its own ${BARGE_OUTPUT_DIR} and nothing of a name.
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::string id = RunIdFrom(r);
  nlohmann::json argv = Json({"tasks", id, "--step", "argv", "--json"});
  ASSERT_EQ(argv.size(), names.size());
  for (const auto& t : argv) {
    ASSERT_EQ(t["state"], "succeeded") << t.dump();
    ASSERT_EQ(t["outputs"].size(), 1u) << t.dump();
    EXPECT_EQ(Read(t["outputs"][0]["path"]),
              std::filesystem::path(t["item"].get<std::string>()).filename().string());
  }
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

// Outputs on an S3 root (the test s3rver) follow the same rules as on disk.
class S3OutputTest : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    server_ = S3rver::Shared();
    if (server_ == nullptr) {
      if (std::getenv("BARGE_REQUIRE_S3") != nullptr) FAIL() << S3rver::Why();
      GTEST_SKIP() << S3rver::Why();
    }
    server_->ExportEnvironment();
    root_ = server_->Url(dir().filename().string());
  }
  S3rver* server_ = nullptr;
  std::string root_;
};

TEST_F(S3OutputTest, ASymlinkedOutputIsTheTasksOwnFailureNotTheInfrastructures) {
  std::string p = Write("links.yaml", R"Y(
name: links
steps:
  - name: write
    retries: 1
    retry_delay: 10ms
    foreach: [part-0.csv, /etc/passwd]
    run: |
      echo 1,10 > "$BARGE_OUTPUT_DIR/part-0.csv"
      ln -s {item} "$BARGE_OUTPUT_DIR/latest.csv"
)Y");
  Result r = Barge({"run", p, "--root", root_});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  nlohmann::json tasks = Json({"tasks", RunIdFrom(r), "--json"});
  ASSERT_EQ(tasks.size(), 2u);
  for (const auto& t : tasks) {
    EXPECT_EQ(t["state"], "failed") << t.dump();
    EXPECT_EQ(t["attempts"], 2) << t.dump();
    EXPECT_EQ(t["infra_failures"], 0) << t.dump();
    EXPECT_NE(t["error"].get<std::string>().find(Cat("output latest.csv is a symbolic link (to ",
                                                     t["item"].get<std::string>(),
                                                     "); write the file itself")),
              std::string::npos)
        << t.dump();
  }
}

TEST_F(S3OutputTest, AnOutputNameWithABackslashRoundTrips) {
  std::string p = Write("back.yaml", R"Y(
name: back
steps:
  - name: write
    run: printf 'one\ntwo\n' > "$BARGE_OUTPUT_DIR/back\\slash.txt"
  - name: read
    needs: [write]
    run: |
      while IFS= read -r f; do basename "$f"; cat "$f"; done < "$BARGE_INPUT_LIST" > "$BARGE_OUTPUT_DIR/seen"
)Y");
  Result r = Barge({"run", p, "--root", root_});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string id = RunIdFrom(r);
  nlohmann::json write = Json({"tasks", id, "--step", "write", "--json"});
  ASSERT_EQ(write[0]["outputs"].size(), 1u) << write.dump();
  std::string url = write[0]["outputs"][0]["path"];
  EXPECT_TRUE(url.ends_with("/a1/back\\slash.txt")) << url;
  nlohmann::json read = Json({"tasks", id, "--step", "read", "--json"});
  absl::StatusOr<std::unique_ptr<ObjectStore>> store = OpenObjectStore(root_);
  ASSERT_TRUE(store.ok()) << store.status();
  std::string seen_url = read[0]["outputs"][0]["path"];
  absl::StatusOr<std::string> seen = (*store)->Get(seen_url.substr(root_.size() + 1));
  ASSERT_TRUE(seen.ok()) << seen.status();
  EXPECT_EQ(*seen, "back\\slash.txt\none\ntwo\n");
}

// barge wait follows a detached run to its end and exits as barge run would have.
TEST_F(E2eTest, WaitExitsAsTheRunEnded) {
  auto submit = [&](const std::string& name, const std::string& run) {
    std::string p = Write(name + ".yaml", Cat("name: ", name,
                                              "\nsteps:\n  - name: s\n"
                                              "    retries: 0\n    run: ",
                                              run, "\n"));
    Result r = Barge({"run", p, "--detach"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out.substr(0, r.out.find('\n'));
  };
  std::string ok = submit("ok", "'true'"), bad = submit("bad", "'false'");
  std::string held = submit("held", "sleep 30");
  ASSERT_EQ(Barge({"cancel", held}).exit_code, 0);
  Result cancelled = Barge({"wait", held});
  EXPECT_EQ(cancelled.exit_code, 130) << cancelled.err;
  EXPECT_NE(cancelled.err.find(Cat(held, " cancelled")), std::string::npos) << cancelled.err;

  pid_t worker = StartBarge({"worker", "--cpu", "2"});
  Result succeeded = Barge({"wait", ok, "--every", "50ms"});
  EXPECT_EQ(succeeded.exit_code, 0) << succeeded.err;
  EXPECT_NE(succeeded.err.find(Cat(ok, " succeeded in ")), std::string::npos) << succeeded.err;
  Result failed = Barge({"wait", bad, "--every", "50ms"});
  EXPECT_EQ(failed.exit_code, 1) << failed.err;
  EXPECT_NE(failed.err.find(Cat(bad, " failed in ")), std::string::npos) << failed.err;
  ::kill(worker, SIGTERM);
  EXPECT_EQ(Wait(worker), 0);

  EXPECT_EQ(Barge({"wait", "no-such-run"}).exit_code, 2);
  EXPECT_EQ(Barge({"wait", ok, "--every", "soon"}).exit_code, 2);
}

}  // namespace
}  // namespace barge::testing
