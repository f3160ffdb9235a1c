// The autoscaler of `barge serve`, end to end: the local provider grows a pool of real
// `barge worker` processes with the queue and drains it to zero when idle; the command provider
// runs its template with the desired counts.
#include <httplib.h>

#include <fstream>

#include "common/strings.h"
#include "server_fixture.h"

namespace barge::testing {
namespace {

constexpr char kToken[] = "autoscale-token-0123456789";

class AutoscaleTest : public ServerTest {
 protected:
  AutoscaleTest() : ServerTest(kToken) {}
  void Serve(const std::string& autoscale_yaml) {
    StartServer({"--autoscale", Write("autoscale.yaml", autoscale_yaml)});
  }
  nlohmann::json Scaler() {
    auto r = client_->Get("/api/autoscaler", {{"Authorization", Cat("Bearer ", kToken)}});
    EXPECT_TRUE(r && r->status == 200);
    return r ? nlohmann::json::parse(r->body, nullptr, false)["queues"][0] : nlohmann::json();
  }
  std::vector<std::string> Lines(const std::string& file) {
    std::ifstream in(file);
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }
};

TEST_F(AutoscaleTest, LocalWorkersGrowToMaxThenDrainToZeroLosingNothing) {
  bool pg = UsePostgres();
  std::printf("[ store ] %s\n", pg ? "postgres" : "sqlite");
  Serve(
      "queues:\n  - queue: default\n    max: 3\n    idle: 2s\n"
      "    worker: {cpu: 1, memory: 1GiB}\n");
  Write("many.yaml",
        "name: many\nsteps:\n  - name: work\n    foreach: range(200)\n"
        "    run: sleep 0.05; echo $BARGE_TASK_INDEX > \"$BARGE_OUTPUT_DIR/i\"\n");
  Result r = Barge({"run", "--detach", "many.yaml"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string id = r.out.substr(0, r.out.find('\n'));

  size_t most = 0;
  WaitUntil(
      [&] {
        most = std::max(most, Json({"workers", "--json"}).size());
        return most == 3;
      },
      "three registered workers");
  EXPECT_EQ(Scaler()["desired"], 3);
  nlohmann::json scaler = Scaler();
  EXPECT_GT(scaler["demand"].get<int>(), 3) << scaler.dump();
  std::printf("[ scaler ] %s\n", scaler.dump().c_str());
  EXPECT_LE(scaler["demand"].get<int>(), 200)
      << "one-cpu tasks, one per one-cpu worker: " << scaler.dump();
  WaitUntil([&] { return Json({"status", id, "--json"})["state"] != "running"; }, "the run ends");
  EXPECT_EQ(Json({"status", id, "--json"})["state"], "succeeded");
  WaitUntil(
      [&] {
        return Json({"workers", "--json"}).empty();
      },
      "the pool drains to zero once idle");
  EXPECT_EQ(Scaler()["current"], 0);

  nlohmann::json tasks = Json({"tasks", id, "--json"});
  ASSERT_EQ(tasks.size(), 200u);
  for (const nlohmann::json& t : tasks) {
    EXPECT_EQ(t["state"], "succeeded");
    EXPECT_EQ(t["attempts"], 1) << "task " << t["index"] << " ran again";
    EXPECT_EQ(t["retries_used"], 0);
    EXPECT_EQ(t["infra_failures"], 0) << "scale-in stopped a busy worker";
  }
  std::string log = Read((dir() / "serve.log").string());
  EXPECT_EQ(log.find(kToken), std::string::npos) << "the token never reaches a log";
}

TEST_F(AutoscaleTest, CommandProviderGetsTheDesiredCounts) {
  std::string out = (dir() / "desired.log").string();
  Serve(
      Cat("queues:\n  - queue: etl\n    max: 4\n    idle: 1s\n    worker: {cpu: 2}\n"
          "    provider: command\n    command: 'echo {queue} {desired} ${BARGE_TOKEN:-} >> ",
          out, "'\n"));
  WaitUntil([&] { return Lines(out).size() == 1; }, "the first desired count");
  // The command runs without the server's token (it is in the server's environment).
  EXPECT_EQ(Lines(out), std::vector<std::string>{"etl 0"});
  Write("etl.yaml",
        "name: etl\nsteps:\n  - name: work\n    queue: etl\n    foreach: range(5)\n"
        "    run: 'true'\n");
  Result r = Barge({"run", "--detach", "etl.yaml"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string id = r.out.substr(0, r.out.find('\n'));
  // Five one-cpu tasks packed into two-cpu workers: three.
  WaitUntil([&] { return Lines(out).size() == 2; }, "a scale-out");
  EXPECT_EQ(Lines(out).back(), "etl 3");
  ASSERT_EQ(Barge({"cancel", id}).exit_code, 0);
  WaitUntil([&] { return Lines(out).size() == 3; }, "a scale-in after idle");
  EXPECT_EQ(Lines(out), (std::vector<std::string>{"etl 0", "etl 3", "etl 0"}));
}

}  // namespace
}  // namespace barge::testing
