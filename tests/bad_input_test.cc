// Bad input: each case exits 2 with file:line:col and a reason, and records no run. Bytes barge
// cannot carry (not UTF-8, NUL) are refused where they are known; where they only appear while a
// run goes (a file a step creates), that run fails cleanly and every process goes on serving.
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>

#include "common/strings.h"
#include "harness.h"
#include "server_fixture.h"
#include "store/state_store.h"

namespace barge::testing {
namespace {

struct Case {
  std::string name;
  std::string yaml;
  std::string expected;  // a fragment of stderr, after "<file>:"
  std::vector<std::string> extra_args;
  std::vector<std::string> commands = {"validate", "run"};
};

// What ctest shows beside the test name (else GoogleTest prints the struct's bytes).
[[maybe_unused]] void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class BadInputTest : public E2eTest, public ::testing::WithParamInterface<Case> {};

TEST_P(BadInputTest, ExitsTwoWithLocationAndRecordsNothing) {
  const Case& c = GetParam();
  std::string p = Write("p.yaml", c.yaml);
  for (const std::string& cmd : c.commands) {
    std::vector<std::string> args = {cmd, p};
    args.insert(args.end(), c.extra_args.begin(), c.extra_args.end());
    Result r = Barge(args);
    EXPECT_EQ(r.exit_code, 2) << cmd << ": " << r.err;
    EXPECT_NE(r.err.find(Cat(p, ":", c.expected)), std::string::npos) << cmd << " stderr:\n"
                                                                      << r.err;
    EXPECT_EQ(r.out, "") << cmd;
  }
  nlohmann::json runs = Json({"runs", "--json"});
  EXPECT_EQ(runs.size(), 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BadInputTest,
    ::testing::Values(
        Case{"MalformedYaml", "name: x\nsteps:\n  - name: a\n    run: [echo, b\n  - name: c\n",
             "5:9: malformed YAML: end of sequence flow not found"},
        Case{"Cycle",
             "name: x\nsteps:\n  - name: a\n    needs: b\n    run: echo\n  - name: b\n"
             "    needs: a\n    run: echo\n",
             "3:5: steps form a cycle: a -> b -> a"},
        Case{"UnknownKey", "name: x\nsteps:\n  - name: a\n    run: echo\n    retires: 3\n",
             "5:5: step \"a\": unknown key \"retires\""},
        Case{"MissingNeeds", "name: x\nsteps:\n  - name: a\n    needs: [ghost]\n    run: echo\n",
             "4:12: step \"a\" needs \"ghost\", which is not a step of this pipeline"},
        Case{"WrongType", "name: x\nsteps:\n  - name: a\n    run: echo\n    retries: [1]\n",
             "5:14: step \"a\": retries must be a whole number"},
        Case{"NonexistentGlob",
             "name: x\nsteps:\n  - name: a\n    foreach: files(\"nothing/*.csv\")\n    run: echo\n",
             "4:14: step \"a\": files(\""},
        Case{"BadDuration", "name: x\nsteps:\n  - name: a\n    run: echo\n    timeout: 5 min\n",
             "5:14: step \"a\": timeout: invalid duration \"5 min\""},
        Case{"UnknownParam",
             "name: x\nparams: {day: d}\nsteps:\n  - name: a\n    run: echo\n",
             "1:1: --param month: the pipeline declares no param \"month\"",
             {"-p", "month=1"}},
        Case{"ParamNotUtf8",
             "name: x\nparams: {p: a}\nsteps:\n  - name: a\n    run: echo {params.p}\n",
             "1:1: --param p: value a\\xffb is not valid UTF-8",
             {"-p",
              "p=a\xff"
              "b"}},
        Case{"ItemNotUtf8",
             "name: x\nsteps:\n  - name: a\n    foreach: [ok, \"b\xff\"]\n    run: echo {item}\n",
             "4:21: byte \\xff is not valid UTF-8"},
        Case{"NulInRun", "name: x\nsteps:\n  - name: a\n    run: \"echo a\\0b\"\n",
             "4:10: \"echo a\\x00b\" holds a NUL byte"},
        Case{"NulInArgv", "name: x\nsteps:\n  - name: a\n    run: [echo, \"a\\x00\"]\n",
             "4:17: \"a\\x00\" holds a NUL byte"},
        Case{"NulInEnv",
             "name: x\nsteps:\n  - name: a\n    run: echo\n    env: {X: \"a\\u0000\"}\n",
             "5:14: \"a\\x00\" holds a NUL byte"},
        Case{"NulInItem",
             "name: x\nsteps:\n  - name: a\n    foreach: [\"\\0\"]\n    run: echo {item}\n",
             "4:15: \"\\x00\" holds a NUL byte"},
        Case{"NulInParam",
             "name: x\nparams: {p: \"\\0\"}\nsteps:\n  - name: a\n    run: echo {params.p}\n",
             "2:13: \"\\x00\" holds a NUL byte"},
        Case{"TooDeep",
             Cat("name: x\ndescription: ", std::string(70, '['), std::string(70, ']'),
                 "\nsteps:\n  - name: a\n    run: echo\n"),
             "2:77: nested deeper than 64 levels"},
        Case{"TooManyItems",
             Cat("name: x\nsteps:\n  - name: a\n    run: echo\n    foreach: [",
                 Repeated("1", 100'001, ","), "]\n"),
             "5:14: step \"a\": foreach: 100001 items; at most 100000 (use range(N) or files())"},
        Case{"AliasInsideItsAnchor",
             "name: x\nsteps:\n  - name: a\n    foreach: [&m {k: *m}]\n    run: echo\n",
             "4:22: alias *m refers to a node that contains it"},
        Case{"TooBigForThePool",
             "name: x\nsteps:\n  - name: a\n    run: echo\n    resources: {cpu: 64}\n",
             "3:5: step \"a\" needs 64 cpu but the local pool has 2",
             {"--workers", "2"},
             {"run"}}),
    [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

TEST_F(E2eTest, MissingFileAndUnknownRun) {
  Result r = Barge({"run", "does-not-exist.yaml"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("does-not-exist.yaml: No such file or directory"), std::string::npos)
      << r.err;
  Result s = Barge({"status", "20990101-000000-beef"});
  EXPECT_EQ(s.exit_code, 2);
  EXPECT_NE(s.err.find("no run \"20990101-000000-beef\""), std::string::npos) << s.err;
  Result usage = Barge({"run"});
  EXPECT_EQ(usage.exit_code, 2);
  Result help = Barge({"tasks", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("--state"), std::string::npos);
}

// Ten levels of anchors, nine references each: 563 bytes that would expand to 9^10 scalars.
std::string AliasBomb() {
  std::string levels = "      - {a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]";
  for (char c = 'b'; c <= 'j'; ++c) {
    std::string ref = Cat("*", std::string(1, c - 1));
    levels += Cat(",\n         ", std::string(1, c), ": &", std::string(1, c), " [",
                  Repeated(ref, 9, ", "), "]");
  }
  return Cat("name: bomb\nsteps:\n  - name: a\n    run: echo {item.a}\n    foreach:\n", levels,
             "}\n");
}

TEST_F(E2eTest, AnAliasBombIsRefusedAtOnce) {
  std::string bomb = AliasBomb();
  ASSERT_LT(bomb.size(), 700u);
  std::string p = Write("bomb.yaml", bomb);
  for (const char* cmd : {"validate", "run"}) {
    auto start = std::chrono::steady_clock::now();
    Result r = Barge({cmd, p});
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_EQ(r.exit_code, 2) << cmd << ": " << r.err;
    EXPECT_NE(r.err.find(Cat(p, ":")), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("expands to more than 250000 YAML nodes"), std::string::npos) << r.err;
    // Unbounded, this took minutes and gigabytes; the bound leaves room for a loaded machine.
    EXPECT_LT(seconds, 10.0) << cmd;
  }
}

// Writes `text` to dir/relative (creating directories) and returns its path.
std::string WriteIn(const std::filesystem::path& dir, const std::string& relative,
                    const std::string& text) {
  std::filesystem::path p = dir / relative;
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p) << text;
  return p.string();
}

// A pipeline whose first step creates a file named `printf_name` (printf-escaped for sh) next to
// an ordinary one in dir/in, and whose second step fans out over in/*: the bad name is only known
// once the run goes.
std::string CreatesThenReads(const std::filesystem::path& dir, const std::string& printf_name) {
  WriteIn(dir, "in/ok.csv", "1\n");
  return WriteIn(
      dir, "creates.yaml",
      Cat("name: creates\nsteps:\n  - name: make\n    run: touch \"", (dir / "in").string(),
          "/$(printf '", printf_name, "')\"\n  - name: each\n    needs: [make]\n",
          "    foreach: files(\"in/*\")\n    run: echo {item}\n"));
}

std::string Good(const std::filesystem::path& dir) {
  return WriteIn(dir, "good.yaml",
                 "name: good\nsteps:\n  - name: a\n    foreach: range(3)\n    run: echo fine\n");
}

bool Alive(pid_t pid) {
  int status = 0;
  return ::waitpid(pid, &status, WNOHANG) == 0;
}

class BadBytesTest : public E2eTest {};

TEST_F(BadBytesTest, AFileNameThatIsNotUtf8FailsItsRunAndNothingElse) {
  std::string p = CreatesThenReads(dir(), "bad\\377.csv");
  Result r = Barge({"run", p});
  ASSERT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("bad\\xff.csv"), std::string::npos) << r.err;
  nlohmann::json runs = Json({"runs", "--json"});
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0]["state"], "failed");
  std::string error = runs[0]["error"];
  EXPECT_NE(error.find("step each: files(\""), std::string::npos) << error;
  EXPECT_NE(error.find("bad\\xff.csv is not valid UTF-8"), std::string::npos) << error;
  Result resume = Barge({"resume", "last"});
  EXPECT_NE(resume.exit_code, 134) << resume.err;
  // The store is as usable as before. (A pipeline beside that file could not be bundled:
  // ABadlyNamedFileBesideAPipelineIsRefusedAtSubmit.)
  Result good = Barge({"run", Good(dir() / "good")});
  EXPECT_EQ(good.exit_code, 0) << good.err;
}

TEST_F(BadBytesTest, ABadlyNamedFileBesideAPipelineIsRefusedAtSubmit) {
  std::filesystem::create_directories(dir() / "in");
  Write("in/bad\377.csv", "");
  Result r = Barge({"run", Good(dir())});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("in/bad\\xff.csv is not valid UTF-8"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(".bargeignore"), std::string::npos) << r.err;
  EXPECT_TRUE(Json({"runs", "--json"}).empty());
  Write(".bargeignore", "in/\n");
  EXPECT_EQ(Barge({"run", Good(dir())}).exit_code, 0);
}

TEST_F(BadBytesTest, ANewlineInAMatchedFileNameIsRefusedToo) {
  std::string p = CreatesThenReads(dir(), "two\\nlines.csv");
  Result r = Barge({"run", p});
  ASSERT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("two\\nlines.csv holds a control character"), std::string::npos) << r.err;
}

TEST_F(BadBytesTest, AFleetWorkerFailsTheBadRunAndGoesOn) {
  pid_t worker = StartBarge({"worker", "--cpu", "2"});
  std::string p = CreatesThenReads(dir(), "bad\\377.csv");
  Result bad = Barge({"run", p, "--detach"});
  ASSERT_EQ(bad.exit_code, 0) << bad.err;
  std::string bad_id = bad.out.substr(0, bad.out.find('\n'));
  WaitUntil(
      [&] {
        return !Alive(worker) || Json({"status", bad_id, "--json"})["state"] != "running";
      },
      "the bad run to end");
  ASSERT_TRUE(Alive(worker)) << "the worker died: " << Read((dir() / ".bg1.err").string());
  EXPECT_EQ(Json({"status", bad_id, "--json"})["state"], "failed");
  Result good = Barge({"run", Good(dir() / "good"), "--detach"});
  ASSERT_EQ(good.exit_code, 0) << good.err;
  std::string good_id = good.out.substr(0, good.out.find('\n'));
  WaitUntil(
      [&] {
        return !Alive(worker) || Json({"status", good_id, "--json"})["state"] != "running";
      },
      "the good run to end");
  EXPECT_EQ(Json({"status", good_id, "--json"})["state"], "succeeded");
  ASSERT_TRUE(Alive(worker));
  ::kill(worker, SIGTERM);
  EXPECT_EQ(Wait(worker), 0);
}

constexpr char kToken[] = "bad-bytes-token-0123456789abcdef";

class BadBytesServeTest : public ServerTest {
 protected:
  BadBytesServeTest() : ServerTest(kToken) {}
  httplib::Headers Auth() { return {{"Authorization", Cat("Bearer ", kToken)}}; }
  int Health() {
    httplib::Result r = client_->Get("/api/health");
    return r ? r->status : -1;
  }
  httplib::Result Submit(const nlohmann::json& body) {
    return client_->Post("/api/runs", Auth(), body.dump(), "application/json");
  }
  // What every test checks afterwards: the server answers, and a good run still goes through.
  void ExpectServing() {
    EXPECT_EQ(Health(), 200);
    httplib::Result good = Submit({{"spec", Read(Good(dir()))}});
    ASSERT_TRUE(good);
    EXPECT_EQ(good->status, 201) << good->body;
    httplib::Result runs = client_->Get("/api/runs", Auth());
    ASSERT_TRUE(runs);
    EXPECT_EQ(runs->status, 200) << runs->body;
    Result cli = Barge({"runs", "--json"});
    EXPECT_EQ(cli.exit_code, 0) << cli.err << " (the store must not stay locked)";
  }
  // POST /api/runs of bad specs and params: each a 400 that names the problem.
  void SubmitsBadInput() {
    Write("in/bad\xff.csv", "1\n");
    std::string files =
        "name: f\nsteps:\n  - name: a\n    foreach: files(\"in/*\")\n    run: echo\n";
    httplib::Result r = Submit({{"spec", files}});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << r->body;
    EXPECT_NE(r->body.find("bad\\\\xff.csv"), std::string::npos) << r->body;
    EXPECT_EQ(Health(), 200);

    std::string param = "name: p\nparams: {p: x}\nsteps:\n  - name: a\n    run: echo {params.p}\n";
    r = Submit({{"spec", param}, {"params", {{"p", std::string("a\0b", 3)}}}});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << r->body;
    EXPECT_NE(r->body.find("a\\\\x00b holds a NUL byte"), std::string::npos) << r->body;

    auto start = std::chrono::steady_clock::now();
    r = Submit({{"spec", AliasBomb()}});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << r->body;
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
    ExpectServing();
  }
};

TEST_F(BadBytesServeTest, BadSubmissionsAreRefusedAndTheServerGoesOn) {
  StartServer({});
  SubmitsBadInput();
}

TEST_F(BadBytesServeTest, BadSubmissionsAreRefusedAndTheServerGoesOnPostgres) {
  if (!UsePostgres()) GTEST_SKIP() << "no BARGE_TEST_POSTGRES server";
  StartServer({});
  SubmitsBadInput();
}

TEST_F(BadBytesServeTest, ARunThatMeetsABadNameFailsAndTheServerAndWorkerGoOn) {
  StartServer({});
  pid_t worker = StartBarge({"worker", "--cpu", "2"});
  httplib::Result r = Submit({{"spec", Read(CreatesThenReads(dir(), "bad\\377.csv"))}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 201) << r->body;
  std::string id = nlohmann::json::parse(r->body)["id"];
  WaitUntil(
      [&] {
        return !Alive(worker) || Json({"status", id, "--json"})["state"] != "running";
      },
      "the run to end");
  ASSERT_TRUE(Alive(worker)) << Read((dir() / ".bg1.err").string());
  EXPECT_EQ(Json({"status", id, "--json"})["state"], "failed");
  ExpectServing();
  ::kill(worker, SIGTERM);
  EXPECT_EQ(Wait(worker), 0);
}

TEST_F(BadBytesServeTest, AScheduledPipelineThatMeetsABadNameFailsItsRunOnly) {
  Write("in/bad\xff.csv", "1\n");
  Write(".bargeignore", "in/\n");  // data, not code: its bad name does not stop the bundle
  std::string spec =
      "name: nightly\nsteps:\n  - name: a\n    foreach: files(\"in/*\")\n"
      "    run: echo {item}\n";
  Write("nightly.yaml", spec);
  {
    auto store = OpenStateStore((dir() / ".barge/state.db").string()).value();
    int64_t hour = 3'600'000, now = store->NowMs();
    ASSERT_TRUE(store
                    ->PutSchedule({.name = "nightly",
                                   .cron = "0 * * * *",
                                   .time_zone = "UTC",
                                   .spec_path = (dir() / "nightly.yaml").string(),
                                   .spec_source = spec,
                                   .root = (dir() / ".barge/data").string(),
                                   .last_slot = (now / hour - 1) * hour})
                    .ok());
  }
  StartServer({});
  WaitUntil(
      [&] {
        nlohmann::json runs = Json({"runs", "--json"});
        return runs.size() == 1 && runs[0]["state"] != "running";
      },
      "the slot's run to end");
  nlohmann::json run = Json({"runs", "--json"})[0];
  EXPECT_EQ(run["state"], "failed");
  EXPECT_NE(run["error"].get<std::string>().find("bad\\xff.csv is not valid UTF-8"),
            std::string::npos)
      << run;
  ExpectServing();
}

}  // namespace
}  // namespace barge::testing
