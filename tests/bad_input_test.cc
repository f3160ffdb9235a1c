// Bad input: each case exits 2 with file:line:col and a reason, and records no run.
#include "common/strings.h"
#include "harness.h"

namespace barge::testing {
namespace {

struct Case {
  std::string name;
  std::string yaml;
  std::string expected;  // a fragment of stderr, after "<file>:"
  std::vector<std::string> extra_args;
  std::vector<std::string> commands = {"validate", "run"};
};

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

}  // namespace
}  // namespace barge::testing
