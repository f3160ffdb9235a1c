// `barge serve`'s HTTP API, driven over a real socket: authentication on every route, runs,
// tasks, logs, schedules, metrics and errors.
#include <httplib.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <set>
#include <thread>

#include "common/strings.h"
#include "engine/engine.h"
#include "server/api.h"
#include "server_fixture.h"
#include "store/state_store.h"
#include "testing/temp_dir.h"

namespace barge::testing {
namespace {

constexpr char kToken[] = "test-token-0123456789abcdef";

class ServeTest : public ServerTest {
 protected:
  ServeTest() : ServerTest(kToken) {}
  // Starts `barge serve` in dir() on a free port.
  void Serve(const std::vector<std::string>& extra = {}) { StartServer(extra); }
  struct Reply {
    int status = 0;
    nlohmann::json json;
    std::string body;
  };
  Reply Call(const std::string& method, const std::string& path, const std::string& body = "",
             const std::string& token = kToken) {
    httplib::Headers headers;
    if (!token.empty()) headers.emplace("Authorization", Cat("Bearer ", token));
    httplib::Result r = method == "GET"    ? client_->Get(path, headers)
                        : method == "POST" ? client_->Post(path, headers, body, "application/json")
                        : method == "PATCH"
                            ? client_->Patch(path, headers, body, "application/json")
                        : method == "PUT" ? client_->Put(path, headers, body, "application/json")
                                          : client_->Delete(path, headers);
    EXPECT_TRUE(r) << method << " " << path << ": " << httplib::to_string(r.error());
    Reply out;
    if (!r) return out;
    out.status = r->status;
    out.body = r->body;
    out.json = nlohmann::json::parse(r->body, nullptr, false);
    bodies_ += r->body;
    return out;
  }
  // A spec submitted through the API: `n` tasks that wait for a worker (none runs here).
  static std::string WaitingSpec(int n) {
    return Cat("name: waiting\nsteps:\n  - name: fan\n    foreach: range(", n,
               ")\n    run: 'true'\n  - name: after\n    needs: [fan]\n    run: 'true'\n");
  }

  std::string bodies_;  // every response body, to check that no secret ever appears
};

TEST_F(ServeTest, EveryRouteButHealthRefusesAMissingOrWrongToken) {
  Serve();
  // The route table itself, so that a new route cannot skip the check.
  ScopedTempDir scratch("routes");
  auto store = OpenStateStore((scratch.path() / "s.db").string()).value();
  ObjectStores stores;
  Engine engine(*store, stores);
  Api api(*store, *store, *store, engine, {.token = "x"});
  std::vector<Api::RouteInfo> routes = api.Routes();
  ASSERT_GE(routes.size(), 20u);
  int checked = 0;
  for (const Api::RouteInfo& r : routes) {
    std::string path = ReplaceAll(
        ReplaceAll(ReplaceAll(ReplaceAll(r.pattern, "{run}", "r1"), "{step}", "s"), "{index}", "0"),
        "{name}", "n");
    if (!r.needs_token) {
      EXPECT_EQ(r.pattern, "/api/health") << "only the health check is public";
      EXPECT_EQ(Call(r.method, path, "", "").status, 200);
      continue;
    }
    for (const std::string& token :
         {std::string(), std::string("wrong-token-0123456789"), std::string(kToken) + "x"}) {
      Reply reply = Call(r.method, path, "{}", token);
      EXPECT_EQ(reply.status, 401) << r.method << " " << path << " with token '" << token << "'";
      EXPECT_EQ(reply.json["error"]["code"], "unauthorized");
      ++checked;
    }
  }
  EXPECT_EQ(checked, 3 * (static_cast<int>(routes.size()) - 1));
  // An unknown path says nothing without a token either.
  EXPECT_EQ(Call("GET", "/api/nothing", "", "").status, 401);
  EXPECT_EQ(Call("GET", "/api/nothing").status, 404);
  EXPECT_EQ(Call("DELETE", "/api/runs").status, 405);
  EXPECT_EQ(bodies_.find(kToken), std::string::npos);
}

TEST_F(ServeTest, SubmitListPageFilterAndCancelARun) {
  Serve();
  Reply created = Call("POST", "/api/runs", nlohmann::json({{"spec", WaitingSpec(25)}}).dump());
  ASSERT_EQ(created.status, 201) << created.body;
  std::string id = created.json["id"];
  EXPECT_EQ(created.json["state"], "running");

  Reply runs = Call("GET", "/api/runs?limit=10");
  ASSERT_EQ(runs.status, 200);
  ASSERT_EQ(runs.json["items"].size(), 1u);
  EXPECT_EQ(runs.json["items"][0]["id"], id);
  EXPECT_EQ(Call("GET", "/api/runs?state=succeeded").json["items"].size(), 0u);

  Reply run = Call("GET", "/api/runs/" + id);
  ASSERT_EQ(run.json["steps"].size(), 2u);
  EXPECT_EQ(run.json["steps"][0]["tasks"], 25);
  EXPECT_EQ(run.json["steps"][0]["pending"], 25);
  EXPECT_EQ(run.json["steps"][1]["needs"], nlohmann::json({"fan"}));

  Reply page1 = Call("GET", Cat("/api/runs/", id, "/tasks?limit=10"));
  ASSERT_EQ(page1.json["items"].size(), 10u);
  EXPECT_EQ(page1.json["next_offset"], 10);
  EXPECT_EQ(page1.json["items"][9]["index"], 9);
  Reply page3 = Call("GET", Cat("/api/runs/", id, "/tasks?limit=10&offset=20"));
  ASSERT_EQ(page3.json["items"].size(), 5u);
  EXPECT_TRUE(page3.json["next_offset"].is_null());
  EXPECT_EQ(Call("GET", Cat("/api/runs/", id, "/tasks?state=pending&step=fan&limit=100"))
                .json["items"]
                .size(),
            25u);
  EXPECT_EQ(Call("GET", Cat("/api/runs/", id, "/tasks?limit=0")).status, 400);

  // Metrics see the queue.
  Reply metrics = Call("GET", "/metrics");
  EXPECT_NE(metrics.body.find("barge_tasks{queue=\"default\",state=\"ready\"} 25"),
            std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("barge_queue_depth{queue=\"default\"} 25"), std::string::npos);

  Reply cancelled = Call("POST", Cat("/api/runs/", id, "/cancel"));
  EXPECT_EQ(cancelled.status, 200) << cancelled.body;
  EXPECT_EQ(cancelled.json["state"], "cancelled");
  Reply again = Call("POST", Cat("/api/runs/", id, "/cancel"));
  EXPECT_EQ(again.status, 409);
  EXPECT_EQ(again.json["error"]["code"], "conflict");
  EXPECT_EQ(
      Call("GET", Cat("/api/runs/", id, "/tasks?state=cancelled&limit=100")).json["items"].size(),
      25u)
      << "the 25 tasks of the started step; the next step never started";
  EXPECT_EQ(Json({"status", id, "--json"})["state"], "cancelled") << "the CLI sees the same run";
  EXPECT_EQ(bodies_.find(kToken), std::string::npos);
}

TEST_F(ServeTest, FailedTaskAttemptsLogTailRetryCostAndTimeline) {
  Write("fails.yaml",
        "name: fails\nsteps:\n  - name: work\n    foreach: range(3)\n"
        "    run: echo line-$BARGE_TASK_INDEX-of-output; test $BARGE_TASK_INDEX -ne 1 || exit 3\n");
  Result r = Barge({"run", "fails.yaml"});
  ASSERT_EQ(r.exit_code, 1) << r.err;
  std::string id = RunIdFrom(r);
  Serve();
  Reply failed = Call("GET", Cat("/api/runs/", id, "/tasks?state=failed"));
  ASSERT_EQ(failed.json["items"].size(), 1u);
  EXPECT_EQ(failed.json["items"][0]["index"], 1);
  EXPECT_EQ(failed.json["items"][0]["exit_code"], 3);

  Reply task = Call("GET", Cat("/api/runs/", id, "/tasks/work/1"));
  ASSERT_EQ(task.json["attempt_history"].size(), 1u);
  EXPECT_EQ(task.json["attempt_history"][0]["failure_class"], "application");

  Reply log = Call("GET", Cat("/api/runs/", id, "/tasks/work/1/log"));
  ASSERT_EQ(log.status, 200) << log.body;
  std::string text = log.json["text"];
  EXPECT_NE(text.find("line-1-of-output"), std::string::npos);
  Reply tail = Call("GET", Cat("/api/runs/", id, "/tasks/work/1/log?tail=7"));
  EXPECT_EQ(tail.json["text"], text.substr(text.size() - 7));
  Reply range = Call("GET", Cat("/api/runs/", id, "/tasks/work/1/log?offset=2&length=4"));
  EXPECT_EQ(range.json["text"], text.substr(2, 4));
  EXPECT_EQ(Call("GET", Cat("/api/runs/", id, "/tasks/work/1/log?attempt=7")).status, 404);
  EXPECT_EQ(Call("GET", Cat("/api/runs/", id, "/tasks/work/x/log")).status, 400);
  EXPECT_EQ(Call("GET", Cat("/api/runs/", id, "/tasks/..%2F..%2Fetc/0/log")).status, 404);

  Reply timeline = Call("GET", Cat("/api/runs/", id, "/timeline"));
  EXPECT_EQ(timeline.json["rows"].size(), 3u);
  EXPECT_EQ(timeline.json["attempts"], 3);
  EXPECT_EQ(timeline.json["coalesced"], false);
  EXPECT_EQ(timeline.json["rows"][0][7], 1) << "each bar one attempt";
  nlohmann::json cli_cost = Json({"cost", id, "--json"});
  EXPECT_EQ(cli_cost["attempts"], 3);
  EXPECT_EQ(cli_cost["costs"][0]["platform"], "barge-ec2-spot");
  EXPECT_EQ(Barge({"cost", "no-such-run"}).exit_code, 2);
  Write("prices.json", R"({"glue_dpu_hour": "cheap"})");
  Result bad_prices = Barge({"cost", id, "--prices", "prices.json"});
  EXPECT_EQ(bad_prices.exit_code, 2);
  EXPECT_NE(bad_prices.err.find("glue_dpu_hour: expected a number"), std::string::npos)
      << bad_prices.err;
  Reply cost = Call("GET", Cat("/api/runs/", id, "/cost"));
  ASSERT_EQ(cost.status, 200) << cost.body;
  EXPECT_EQ(cost.json["attempts"], 3);
  EXPECT_EQ(cost.json["costs"].size(), 5u);

  Reply retry = Call("POST", Cat("/api/runs/", id, "/retry"));
  ASSERT_EQ(retry.status, 200) << retry.body;
  EXPECT_EQ(retry.json["requeued"], 1);
  EXPECT_EQ(retry.json["state"], "running");
  EXPECT_EQ(Call("POST", Cat("/api/runs/", id, "/retry")).status, 409)
      << "a retry of a run still going is refused";
  ASSERT_EQ(Call("POST", Cat("/api/runs/", id, "/cancel")).status, 200);
  Reply resumed = Call("POST", Cat("/api/runs/", id, "/resume"));
  ASSERT_EQ(resumed.status, 200) << resumed.body;
  EXPECT_EQ(resumed.json["requeued"], 1) << "the cancelled task is queued again";
  EXPECT_EQ(resumed.json["state"], "running");
  EXPECT_EQ(Call("GET", "/api/runs/no-such-run").json["error"]["code"], "not_found");
}

TEST_F(ServeTest, ALogRecordedOutsideTheRootIsNeverServed) {
  Serve();
  // A tampered record: an attempt whose log is /etc/passwd.
  auto store = OpenStateStore((dir() / ".barge/state.db").string()).value();
  ObjectStores stores;
  Engine engine(*store, stores);
  auto p = ParsePipeline("name: t\nsteps:\n  - name: s\n    run: 'true'\n",
                         (dir() / "t.yaml").string(), {});
  std::string id = engine.CreateRun(*p, (dir() / ".barge/data").string()).value();
  ASSERT_TRUE(engine.Advance(id).ok());
  auto claimed = store->Claim({.worker_id = "w", .free_cpu = 1, .max_tasks = 1});
  ASSERT_EQ(claimed->size(), 1u);
  ASSERT_TRUE(store
                  ->Complete({{.key = (*claimed)[0].key,
                               .attempt = 1,
                               .worker_id = "w",
                               .task_state = state::kSucceeded,
                               .attempt_state = state::kSucceeded,
                               .log_path = "/etc/passwd"}})
                  .ok());
  Reply log = Call("GET", Cat("/api/runs/", id, "/tasks/s/0/log"));
  EXPECT_EQ(log.status, 403) << log.body;
  EXPECT_EQ(log.body.find("root:"), std::string::npos);
  Result cli = Barge({"logs", id, "s", "0"});
  EXPECT_NE(cli.exit_code, 0) << "the CLI refuses it too";
  EXPECT_NE(cli.err.find("outside the run's root"), std::string::npos) << cli.err;
  EXPECT_EQ(cli.out.find("root:"), std::string::npos);
}

TEST_F(ServeTest, MalformedAndUnknownFieldsAreClearBadRequests) {
  Serve();
  Reply bad = Call("POST", "/api/runs", "{not json");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(std::string(bad.json["error"]["message"]).find("malformed JSON body"),
            std::string::npos);
  Reply unknown = Call("POST", "/api/runs", R"({"spec": "x", "priority": 1})");
  EXPECT_EQ(unknown.status, 400);
  EXPECT_EQ(unknown.json["error"]["message"],
            "unknown field \"priority\" (allowed: pipeline, spec, params)");
  Reply both = Call("POST", "/api/runs", R"({"spec": "x", "pipeline": "y"})");
  EXPECT_EQ(both.status, 400);
  Reply spec = Call("POST", "/api/runs", R"({"spec": "name: x\nsteps: []\n"})");
  EXPECT_EQ(spec.status, 400);
  EXPECT_EQ(std::string(spec.json["error"]["message"]).find("spec:2:"), 0u)
      << "spec errors name the line of the request's spec: " << spec.body;
  Reply param =
      Call("POST", "/api/runs",
           R"({"spec": "name: x\nsteps: [{name: a, run: 'true'}]\n", "params": {"nope": "1"}})");
  EXPECT_EQ(param.status, 400);
  EXPECT_EQ(
      std::string(param.json["error"]["message"]),
      "spec:1:1: params.nope: the pipeline declares no param \"nope\" (declare it under params:)")
      << param.body;
  EXPECT_EQ(Call("POST", "/api/runs", "[1, 2]").status, 400);
  EXPECT_EQ(Call("POST", "/api/runs/r/cancel", R"({"why": 1})").status, 400);
  EXPECT_EQ(Call("PATCH", "/api/schedules/n", R"({"cron": 5})").status, 404);
  EXPECT_EQ(Json({"runs", "--json"}).size(), 0u) << "bad requests change nothing";
}

// A second server on a port in use fails to start, rather than sharing the port with the first
// (which SO_REUSEPORT would let the kernel do, splitting requests between two servers).
TEST_F(ServeTest, ASecondServerOnABusyPortFailsToStart) {
  Serve();
  int port = server_.port();
  pid_t second = StartBarge({"serve", "--listen", Cat("127.0.0.1:", port)});
  std::string err = LastBackgroundErr();
  int code = -1;
  auto exited = [&] {
    int status = 0;
    if (::waitpid(second, &status, WNOHANG) != second) return false;
    code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return true;
  };
  for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
       !exited() && std::chrono::steady_clock::now() < deadline;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (code < 0) {
    ::kill(second, SIGKILL);
    Wait(second);
  }
  EXPECT_EQ(code, 2) << "the second server started on a port in use";
  EXPECT_NE(Read(err).find(Cat("cannot listen on 127.0.0.1:", port, " (in use")), std::string::npos)
      << Read(err);
  EXPECT_EQ(Call("GET", "/api/runs").status, 200) << "the first server still answers";
}

TEST_F(ServeTest, RegisteredPipelinesAndSchedules) {
  Write("pipelines/nightly.yaml",
        "name: nightly\nschedule: {cron: '0 2 * * *', timezone: Europe/Berlin}\n"
        "params:\n  day: x\nsteps:\n  - name: s\n    run: echo {{ params.day }}\n");
  Serve({"--pipelines", (dir() / "pipelines").string()});
  Reply pipelines = Call("GET", "/api/pipelines");
  ASSERT_EQ(pipelines.json.size(), 1u);
  EXPECT_EQ(pipelines.json[0]["name"], "nightly");
  EXPECT_EQ(pipelines.json[0]["schedule"], "0 2 * * *");

  Reply schedules = Call("GET", "/api/schedules");
  ASSERT_EQ(schedules.json.size(), 1u) << "the pipeline's schedule: was registered";
  EXPECT_EQ(schedules.json[0]["timezone"], "Europe/Berlin");
  EXPECT_EQ(schedules.json[0]["enabled"], true);
  EXPECT_FALSE(std::string(schedules.json[0]["next_slot"]).empty());

  Reply run =
      Call("POST", "/api/runs", R"({"pipeline": "nightly", "params": {"day": "2026-11-22"}})");
  ASSERT_EQ(run.status, 201) << run.body;
  EXPECT_EQ(run.json["params"]["day"], "2026-11-22");
  EXPECT_EQ(Call("POST", "/api/runs", R"({"pipeline": "weekly"})").status, 404);

  Reply added =
      Call("POST", "/api/schedules",
           R"({"name": "hourly", "pipeline": "nightly", "cron": "@hourly", "catchup": "all"})");
  ASSERT_EQ(added.status, 201) << added.body;
  EXPECT_EQ(added.json["catchup"], "all");
  EXPECT_EQ(Call("POST", "/api/schedules", R"({"name": "hourly", "pipeline": "nightly"})").status,
            409);
  Reply bad_cron = Call("POST", "/api/schedules",
                        R"({"name": "bad", "pipeline": "nightly", "cron": "0 25 * * *"})");
  EXPECT_EQ(bad_cron.status, 400);
  EXPECT_NE(std::string(bad_cron.json["error"]["message"]).find("hour: 25 is out of range"),
            std::string::npos);

  Reply paused = Call("PATCH", "/api/schedules/hourly", R"({"enabled": false})");
  EXPECT_EQ(paused.status, 200) << paused.body;
  EXPECT_EQ(paused.json["enabled"], false);
  EXPECT_EQ(Call("PATCH", "/api/schedules/hourly", R"({"enabld": false})").status, 400);
  EXPECT_EQ(Call("GET", "/api/schedules/hourly").json["fires"].size(), 0u);
  EXPECT_EQ(Call("DELETE", "/api/schedules/hourly").status, 200);
  EXPECT_EQ(Call("DELETE", "/api/schedules/hourly").status, 404);
  Result list = Barge({"schedule", "list"});
  EXPECT_NE(list.out.find("nightly"), std::string::npos) << "the CLI sees the same schedules";
}

TEST_F(ServeTest, TheServerFiresMissedSlotsOnceAcrossARestart) {
  // A schedule whose last handled slot was three hours ago, on the hour, catching up on all.
  Write("hourly.yaml", "name: hourly\nsteps:\n  - name: s\n    run: 'true'\n");
  {
    auto store = OpenStateStore((dir() / ".barge/state.db").string()).value();
    int64_t hour = 3'600'000, now = store->NowMs();
    ASSERT_TRUE(store
                    ->PutSchedule({.name = "hourly",
                                   .cron = "0 * * * *",
                                   .time_zone = "UTC",
                                   .catchup = "all",
                                   .overlap = "allow",
                                   .spec_path = (dir() / "hourly.yaml").string(),
                                   .spec_source = Read((dir() / "hourly.yaml").string()),
                                   .root = (dir() / ".barge/data").string(),
                                   .last_slot = (now / hour - 3) * hour})
                    .ok());
  }
  Serve();
  WaitUntil([&] { return Json({"runs", "--json"}).size() == 3; }, "three missed slots fired");
  Reply fires = Call("GET", "/api/schedules/hourly");
  ASSERT_EQ(fires.json["fires"].size(), 3u);
  for (const nlohmann::json& f : fires.json["fires"]) {
    EXPECT_EQ(f["outcome"], "fired");
    EXPECT_EQ(f["run"].get<std::string>().rfind("hourly-", 0), 0u);
  }
  server_.Stop();
  // A probe schedule with one missed slot: once its run exists, the restarted server has made a
  // full pass over the schedules, "hourly" included.
  {
    auto store = OpenStateStore((dir() / ".barge/state.db").string()).value();
    int64_t hour = 3'600'000, now = store->NowMs();
    ScheduleRecord probe = store->GetSchedule("hourly").value();
    probe.name = "probe";
    probe.last_slot = (now / hour - 1) * hour;
    ASSERT_TRUE(store->PutSchedule(probe).ok());
  }
  Serve();
  WaitUntil([&] { return Json({"runs", "--json"}).size() >= 4; }, "the probe's slot fired");
  EXPECT_EQ(Json({"runs", "--json"}).size(), 4u) << "no slot of hourly fired twice";
  EXPECT_EQ(Call("GET", "/api/schedules/hourly").json["fires"].size(), 3u);
}

}  // namespace
}  // namespace barge::testing
