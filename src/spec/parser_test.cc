#include <gtest/gtest.h>

#include <set>

#include "common/strings.h"
#include "spec/pipeline.h"

namespace barge {
namespace {

absl::StatusOr<Pipeline> Parse(const std::string& text, const ParamOverrides& params = {}) {
  return ParsePipeline(text, "/tmp/p/pipeline.yaml", params);
}

std::string ErrorOf(const std::string& text, const ParamOverrides& params = {}) {
  absl::StatusOr<Pipeline> p = Parse(text, params);
  EXPECT_FALSE(p.ok()) << "expected an error for:\n" << text;
  if (p.ok()) return "";
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  return ToString(p.status().message());
}

TEST(Parser, ParsesEveryKey) {
  absl::StatusOr<Pipeline> p = Parse(R"(
name: demo
params: {day: "2026-01-01", n: 3}
steps:
  - name: a
    foreach: range({params.n})
    run: echo {index} {params.day}
    env: {DAY: "{params.day}", I: "{item}"}
    resources: {cpu: 2, memory: 512MiB}
    retries: 3
    retry_delay: 2s
    timeout: 1m30s
    queue: big-mem
    labels: {arch: arm64, zone: eu-west-1a}
  - name: b
    foreach: outputs(a)
    run: [cat, "{params.day}"]
  - name: c
    needs: [a, b]
    foreach:
      - {k: x}
      - {k: y}
    run: echo {item.k}
)",
                                     {{"n", "5"}});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->name, "demo");
  ASSERT_EQ(p->steps.size(), 3u);
  const Step& a = p->steps[0];
  EXPECT_EQ(a.foreach.kind, ForeachKind::kRange);
  EXPECT_EQ(a.foreach.count, 5);  // --param n=5 overrides the default 3
  EXPECT_TRUE(a.shell);
  EXPECT_EQ(a.cpu, 2);
  EXPECT_EQ(a.memory_bytes, 512LL << 20);
  EXPECT_EQ(a.retries, 3);
  EXPECT_EQ(a.retry_delay_ms, 2000);
  EXPECT_EQ(a.timeout_ms, 90'000);
  EXPECT_EQ(a.queue, "big-mem");
  EXPECT_EQ(CanonicalLabels(a.labels), "arch=arm64,zone=eu-west-1a");
  EXPECT_EQ(p->steps[1].queue, "default");
  EXPECT_TRUE(p->steps[1].labels.empty());
  ASSERT_EQ(a.env.size(), 2u);
  const Step& b = p->steps[1];
  EXPECT_EQ(b.foreach.kind, ForeachKind::kOutputs);
  EXPECT_EQ(b.needs, std::vector<std::string>{"a"});  // implied by outputs(a)
  EXPECT_FALSE(b.shell);
  EXPECT_EQ(b.argv, (std::vector<std::string>{"cat", "{params.day}"}));
  const Step& c = p->steps[2];
  EXPECT_EQ(c.foreach.kind, ForeachKind::kList);
  ASSERT_EQ(c.foreach.items.size(), 2u);
  EXPECT_EQ(c.foreach.items[1]["k"], "y");
}

TEST(Parser, FilesGlobResolvesAgainstThePipelineDirectory) {
  absl::StatusOr<Pipeline> p = Parse(R"(
name: g
params: {day: d1}
steps:
  - name: a
    foreach: files("raw/{params.day}/*.csv")
    run: cat "$BARGE_INPUT"
)");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->steps[0].foreach.kind, ForeachKind::kFiles);
  EXPECT_EQ(p->steps[0].foreach.pattern, "/tmp/p/raw/d1/*.csv");
}

TEST(Parser, MalformedYamlNamesLineAndColumn) {
  std::string e = ErrorOf("name: x\nsteps:\n  - name: a\n    run: [unclosed\n");
  EXPECT_NE(e.find("/tmp/p/pipeline.yaml:"), std::string::npos) << e;
  EXPECT_NE(e.find("malformed YAML"), std::string::npos) << e;
}

TEST(Parser, BadQueueAndLabelsNameTheirPosition) {
  std::string e = ErrorOf(R"(
name: p
steps:
  - name: a
    run: "true"
    queue: "gpu queue"
    labels: {arch: "arm 64", "bad key": x, zone: [a, b]}
)");
  EXPECT_NE(e.find(":6:12: step \"a\": queue \"gpu queue\""), std::string::npos) << e;
  EXPECT_NE(e.find(":7:20: step \"a\": labels.arch: \"arm 64\" is not a label value"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("\"bad key\" is not a label name"), std::string::npos) << e;
  EXPECT_NE(e.find("labels.zone"), std::string::npos) << e;
}

TEST(Parser, UnknownKeyNamesItsPosition) {
  std::string e = ErrorOf("name: x\nsteps:\n  - name: a\n    rn: echo\n    run: echo\n");
  EXPECT_NE(e.find("pipeline.yaml:4:5: step \"a\": unknown key \"rn\""), std::string::npos) << e;
}

TEST(Parser, UnknownTopLevelKey) {
  std::string e = ErrorOf("name: x\nstep:\n  - name: a\n");
  EXPECT_NE(e.find(":2:1: pipeline: unknown key \"step\""), std::string::npos) << e;
}

TEST(Parser, SecretsNameParamsAndEnvVariables) {
  absl::StatusOr<Pipeline> p = Parse(R"(
name: x
params: {pw: hunter2-long, day: "2026-01-01", api_token: tok-value}
secrets: [pw, DB_PASS]
steps:
  - name: a
    env: {DB_PASS: "prefix-{params.day}", PER_TASK: "{index}", PLAIN: shown}
    run: echo
)");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->IsSecret("pw"));
  EXPECT_TRUE(p->IsSecret("DB_PASS"));
  EXPECT_TRUE(p->IsSecret("api_token"));  // secret-looking, listed or not
  EXPECT_FALSE(p->IsSecret("day"));
  EXPECT_FALSE(p->IsSecret("PLAIN"));
  EXPECT_EQ(p->SecretValues(),
            (std::vector<std::string>{"hunter2-long", "prefix-2026-01-01", "tok-value"}));
  EXPECT_EQ(DeclaredSecrets(p->source), (std::set<std::string>{"pw", "DB_PASS"}));
  EXPECT_TRUE(DeclaredSecrets("name: x\nsteps: []\n").empty());
  EXPECT_TRUE(DeclaredSecrets("secrets: [unclosed\n").empty());

  std::string e = ErrorOf(
      "name: x\nsecrets: [pw, NOPE]\nparams: {pw: a}\nsteps:\n  - name: a\n"
      "    run: echo\n");
  EXPECT_NE(e.find(":2:15: secrets: \"NOPE\" names no param and no env variable of a step"),
            std::string::npos)
      << e;
  e = ErrorOf("name: x\nsecrets: pw\nsteps:\n  - name: a\n    run: echo\n");
  EXPECT_NE(e.find(":2:10: secrets must be a list"), std::string::npos) << e;
}

TEST(Parser, WrongTypes) {
  EXPECT_NE(ErrorOf("name: x\nsteps:\n  - name: a\n    run: echo\n    retries: many\n")
                .find(":5:14: step \"a\": retries must be a whole number"),
            std::string::npos);
  EXPECT_NE(ErrorOf("name: x\nsteps:\n  - name: a\n    run: {x: 1}\n")
                .find(":4:10: step \"a\": run must be a shell command"),
            std::string::npos);
  EXPECT_NE(ErrorOf("name: x\nsteps: {a: 1}\n").find(":2:8: steps must be a non-empty list"),
            std::string::npos);
}

TEST(Parser, DuplicateAndMissingSteps) {
  std::string dup =
      ErrorOf("name: x\nsteps:\n  - name: a\n    run: echo\n  - name: a\n    run: echo\n");
  EXPECT_NE(dup.find(":5:5: duplicate step name \"a\""), std::string::npos) << dup;
  std::string missing = ErrorOf("name: x\nsteps:\n  - name: a\n    needs: [nope]\n    run: echo\n");
  EXPECT_NE(missing.find(":4:12: step \"a\" needs \"nope\", which is not a step"),
            std::string::npos)
      << missing;
  std::string noname = ErrorOf("name: x\nsteps:\n  - run: echo\n");
  EXPECT_NE(noname.find(":3:5: step: missing required key \"name\""), std::string::npos) << noname;
}

TEST(Parser, Cycles) {
  std::string e = ErrorOf(R"(name: x
steps:
  - name: a
    needs: [c]
    run: echo
  - name: b
    needs: [a]
    run: echo
  - name: c
    needs: [b]
    run: echo
)");
  EXPECT_NE(e.find(":3:5: steps form a cycle: a -> c -> b -> a"), std::string::npos) << e;
}

TEST(Parser, BadForeach) {
  EXPECT_NE(ErrorOf("name: x\nsteps:\n  - name: a\n    foreach: range(-1)\n    run: echo\n")
                .find(":4:14: step \"a\": foreach: range(-1): expected a whole number"),
            std::string::npos);
  EXPECT_NE(ErrorOf("name: x\nsteps:\n  - name: a\n    foreach: everything\n    run: echo\n")
                .find("\"everything\" is not range(N)"),
            std::string::npos);
  EXPECT_NE(ErrorOf("name: x\nsteps:\n  - name: a\n    foreach: outputs(ghost)\n    run: echo\n")
                .find(":4:14: step \"a\" needs \"ghost\""),
            std::string::npos);
}

TEST(Parser, BadDurationsAndSizes) {
  std::string d = ErrorOf("name: x\nsteps:\n  - name: a\n    run: echo\n    timeout: 10\n");
  EXPECT_NE(d.find(":5:14: step \"a\": timeout: invalid duration \"10\": missing unit"),
            std::string::npos)
      << d;
  std::string s =
      ErrorOf("name: x\nsteps:\n  - name: a\n    run: echo\n    resources: {memory: 2 lots}\n");
  EXPECT_NE(s.find("resources.memory: invalid size \"2 lots\""), std::string::npos) << s;
}

TEST(Parser, TemplatesMustResolve) {
  EXPECT_NE(ErrorOf("name: x\nsteps:\n  - name: a\n    run: echo {params.nope}\n")
                .find(":4:10: step \"a\": {params.nope} names no declared param"),
            std::string::npos);
  EXPECT_NE(
      ErrorOf("name: x\nsteps:\n  - name: a\n    run: echo {item}\n").find("{item} needs foreach"),
      std::string::npos);
  EXPECT_NE(ErrorOf("name: x\nsteps:\n  - name: a\n    foreach: [{k: 1}, {j: 2}]\n"
                    "    run: echo {item.k}\n")
                .find("foreach item {\"j\":\"2\"} has no key \"k\""),
            std::string::npos);
  // Other braces are the shell's and awk's business.
  EXPECT_TRUE(Parse("name: x\nsteps:\n  - name: a\n    run: awk '{print $1}' ${HOME}\n").ok());
}

TEST(Parser, UnknownParamOverrideIsAnError) {
  EXPECT_NE(ErrorOf("name: x\nparams: {a: 1}\nsteps:\n  - name: s\n    run: echo\n", {{"b", "2"}})
                .find("--param b: the pipeline declares no param \"b\""),
            std::string::npos);
}

TEST(Parser, ReportsSeveralErrorsAtOnce) {
  std::string e = ErrorOf(
      "name: x\nsteps:\n  - name: a\n    bogus: 1\n    run: echo\n"
      "  - name: b\n    run: echo\n    timeout: soon\n");
  EXPECT_NE(e.find("unknown key \"bogus\""), std::string::npos);
  EXPECT_NE(e.find("invalid duration \"soon\""), std::string::npos);
}

TEST(Parser, ParamFlags) {
  absl::StatusOr<ParamOverrides> ok = ParseParamFlags({"day=2026-01-01", "expr=a=b"});
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ((*ok)["day"], "2026-01-01");
  EXPECT_EQ((*ok)["expr"], "a=b");
  EXPECT_FALSE(ParseParamFlags({"novalue"}).ok());
}

}  // namespace
}  // namespace barge

namespace barge {
namespace {

TEST(Parser, Schedule) {
  absl::StatusOr<Pipeline> p = Parse(
      "name: n\nschedule: {cron: '0 2 * * *', timezone: Europe/Berlin, catchup: all, "
      "overlap: queue}\nsteps:\n  - name: s\n    run: 'true'\n");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->schedule.cron, "0 2 * * *");
  EXPECT_EQ(p->schedule.time_zone, "Europe/Berlin");
  EXPECT_EQ(p->schedule.catchup, "all");
  EXPECT_EQ(p->schedule.overlap, "queue");
  p = Parse("name: n\nschedule: '@daily'\nsteps:\n  - name: s\n    run: 'true'\n");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->schedule.cron, "@daily");
  EXPECT_EQ(p->schedule.time_zone, "UTC");
  EXPECT_EQ(p->schedule.catchup, "latest");
  EXPECT_EQ(ErrorOf("name: n\nschedule: '0 2 * *'\nsteps:\n  - name: s\n    run: 'true'\n"),
            "/tmp/p/pipeline.yaml:2:11: schedule: cron \"0 2 * *\": expected 5 fields (minute "
            "hour day month weekday), got 4");
  EXPECT_EQ(ErrorOf("name: n\nschedule: {cron: '@daily', overlap: sometimes}\nsteps:\n"
                    "  - name: s\n    run: 'true'\n"),
            "/tmp/p/pipeline.yaml:2:37: overlap: expected skip, queue or allow");
}

}  // namespace
}  // namespace barge

namespace barge {
namespace {

TEST(Parser, ImageRequiresAContainerWorker) {
  absl::StatusOr<Pipeline> p = Parse(R"(
name: demo
steps:
  - name: score
    image: localhost/barge-test:1
    run: echo hi
    resources: {cpu: 2, memory: 64MiB}
  - name: gpu
    image: ghcr.io/acme/score@sha256:0123
    labels: {container: docker, gpu: a10}
    run: [score]
  - name: plain
    run: echo hi
)");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->steps[0].image, "localhost/barge-test:1");
  EXPECT_EQ(p->steps[0].image_location.line, 5);
  EXPECT_EQ(p->steps[0].labels, (Labels{{"container", "podman"}}));
  EXPECT_EQ(p->steps[1].labels, (Labels{{"container", "docker"}, {"gpu", "a10"}}));
  EXPECT_EQ(p->steps[2].image, "");
  EXPECT_TRUE(p->steps[2].labels.empty());
}

TEST(Parser, ImageIsRefusedOnASqlStepAndWhenMalformed) {
  EXPECT_EQ(ErrorOf(R"(
name: demo
steps:
  - name: q
    image: localhost/x:1
    sql: SELECT 1
)"),
            "/tmp/p/pipeline.yaml:5:12: step \"q\": image applies to run steps only (a sql step "
            "runs in barge itself)");
  EXPECT_EQ(ErrorOf(R"(
name: demo
steps:
  - name: a
    image: "-v /:/host"
    run: echo
)"),
            "/tmp/p/pipeline.yaml:5:12: step \"a\": image \"-v /:/host\" is not an image "
            "reference (such as python:3.12-slim)");
  EXPECT_NE(ErrorOf("name: demo\nsteps:\n  - name: a\n    image: [x]\n    run: echo\n"), "");
}

}  // namespace
}  // namespace barge
