// The StateStore contract: every implementation runs these tests, SQLite and PostgreSQL (the
// latter when BARGE_TEST_POSTGRES names a server).
#include "store/state_store.h"

#include <gtest/gtest.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <stdexcept>

#include "common/clock.h"
#include "common/labels.h"
#include "common/status.h"
#include "common/strings.h"
#include "store/pg_db.h"
#include "store/schema.h"
#include "store/sql_store.h"
#include "store/sqlite_db.h"
#include "testing/postgres.h"
#include "testing/temp_dir.h"

namespace barge {
namespace {

struct Impl {
  std::string name;
  std::function<absl::StatusOr<std::unique_ptr<StateStore>>(const std::string& dir, Clock&)> open;
};

// What ctest shows beside the test name (else GoogleTest prints the struct's bytes).
[[maybe_unused]] void PrintTo(const Impl& c, std::ostream* os) { *os << c.name; }

// The PostgreSQL server the tests use (scripts/test.sh starts one), or "" to skip those tests.
std::string TestPostgresUrl() {
  const char* url = std::getenv("BARGE_TEST_POSTGRES");
  return url != nullptr ? url : "";
}

// A PostgreSQL store in a schema of its own, named after the test's directory.
absl::StatusOr<std::unique_ptr<StateStore>> OpenPostgresIn(const std::string& dir, Clock* clock) {
  ASSIGN_OR_RETURN(
      std::string url,
      PostgresSchemaUrl(TestPostgresUrl(), "t", std::filesystem::path(dir).filename().string()));
  return OpenStateStore(url, clock);
}

class StateStoreContract : public ::testing::TestWithParam<Impl> {
 protected:
  void SetUp() override {
    if (GetParam().name == "postgres" && TestPostgresUrl().empty()) {
      if (std::getenv("BARGE_REQUIRE_POSTGRES") != nullptr) {
        FAIL() << "BARGE_REQUIRE_POSTGRES is set but BARGE_TEST_POSTGRES is not";
      }
      GTEST_SKIP() << "no BARGE_TEST_POSTGRES server (scripts/test.sh starts one)";
    }
    Reopen();
  }
  void TearDown() override { store_.reset(); }
  void Reopen() {
    store_.reset();
    auto s = GetParam().open(dir_.path().string(), clock_);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
  }

  // A connection of its own to the store's database, for what the interface cannot do.
  std::unique_ptr<DbConnection> RawDb() {
    absl::StatusOr<std::unique_ptr<DbConnection>> db;
    if (GetParam().name == "sqlite") {
      db = SqliteDb::Open(dir_.path().string() + "/state.db");
    } else {
      absl::StatusOr<std::string> url = PostgresSchemaUrl(
          TestPostgresUrl(), "t", std::filesystem::path(dir_.path()).filename().string());
      if (url.ok())
        db = PgDb::Open(*url);
      else
        db = url.status();
    }
    EXPECT_TRUE(db.ok()) << db.status();
    return db.ok() ? std::move(*db) : nullptr;
  }

  // A run "r1" with one started step "s" of `n` tasks needing `cpu` each.
  void MakeRun(int n, double cpu = 1, int64_t memory = 0) {
    RunRecord run{.id = "r1",
                  .pipeline = "p",
                  .spec_path = "/p.yaml",
                  .spec_source = "x",
                  .params_json = "{}",
                  .root = "/data",
                  .created_at = clock_.NowMs()};
    ASSERT_TRUE(store_->CreateRun(run, {{.name = "s", .position = 0}}).ok());
    auto started = store_->StartStep(
        "r1", "s", "[]", n, {.cpu = cpu, .memory = memory},
        [](int64_t i) { return NewTask{.index = i, .item_json = std::to_string(i)}; });
    ASSERT_TRUE(started.ok()) << started.status();
    ASSERT_TRUE(*started);
  }

  std::vector<TaskRecord> Claim(const std::string& worker, int n, double cpu = 100,
                                int64_t lease_ms = 10'000) {
    auto c = store_->Claim({.worker_id = worker,
                            .free_cpu = cpu,
                            .free_memory = 1LL << 40,
                            .max_tasks = n,
                            .lease_ms = lease_ms});
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *c : std::vector<TaskRecord>{};
  }

  Completion Success(const TaskRecord& t, const std::string& worker) {
    return Completion{.key = t.key,
                      .attempt = t.attempt,
                      .worker_id = worker,
                      .task_state = state::kSucceeded,
                      .attempt_state = state::kSucceeded,
                      .exit_code = 0,
                      .outputs_json = R"([{"path":"/o"}])"};
  }

  ManualClock clock_{1'700'000'000'000};
  ScopedTempDir dir_{"store"};
  std::unique_ptr<StateStore> store_;
};

TEST_P(StateStoreContract, MigrationsApplyOnceAndSurviveReopen) {
  const int latest = Migrations().back().version;
  ASSERT_EQ(*store_->SchemaVersion(), latest);
  MakeRun(3);
  Reopen();
  EXPECT_EQ(*store_->SchemaVersion(), latest);
  EXPECT_EQ(store_->GetRun("r1")->state, state::kRunning);
}

TEST_P(StateStoreContract, RefusesASchemaMigratedByANewerBarge) {
  MakeRun(1);
  const int latest = Migrations().back().version;
  {
    std::unique_ptr<DbConnection> db = RawDb();
    ASSERT_NE(db, nullptr);
    ASSERT_TRUE(db->Exec(Cat("INSERT INTO schema_migrations VALUES (", latest + 1, ", 0)")).ok());
  }
  store_.reset();
  auto reopened = GetParam().open(dir_.path().string(), clock_);
  ASSERT_FALSE(reopened.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(reopened.status())) << reopened.status();
  EXPECT_NE(reopened.status().message().find(Cat("version ", latest + 1)), std::string::npos)
      << reopened.status();
}

TEST_P(StateStoreContract, SchedulesKeepTheirSlotAndRecordEachSlotOnce) {
  ScheduleRecord r{.name = "nightly",
                   .cron = "0 2 * * *",
                   .time_zone = "Europe/Berlin",
                   .spec_path = "/p.yaml",
                   .spec_source = "name: p",
                   .root = "/data"};
  ASSERT_TRUE(store_->PutSchedule(r).ok());
  ScheduleRecord got = *store_->GetSchedule("nightly");
  EXPECT_EQ(got.last_slot, clock_.NowMs()) << "a new schedule starts now: no back-filling";
  EXPECT_EQ(got.time_zone, "Europe/Berlin");
  EXPECT_TRUE(got.enabled);

  const int64_t from = got.last_slot, slot = from + 3'600'000;
  EXPECT_TRUE(*store_->RecordFire({"nightly", slot, "fired", "nightly-1", 0}, from));
  // A second recorder that read the same last_slot loses: the slot is not handled twice.
  EXPECT_FALSE(*store_->RecordFire({"nightly", slot, "fired", "nightly-2", 0}, from));
  std::vector<ScheduleFire> fires = *store_->ListFires("nightly", 10);
  ASSERT_EQ(fires.size(), 1u);
  EXPECT_EQ(fires[0].run_id, "nightly-1");
  EXPECT_EQ(fires[0].at, clock_.NowMs());

  // Redefining keeps last_slot, so no slot is handled again.
  r.cron = "0 3 * * *";
  r.enabled = false;
  ASSERT_TRUE(store_->PutSchedule(r).ok());
  got = *store_->GetSchedule("nightly");
  EXPECT_EQ(got.last_slot, slot);
  EXPECT_EQ(got.cron, "0 3 * * *");
  EXPECT_FALSE(got.enabled);
  EXPECT_TRUE(*store_->SetScheduleEnabled("nightly", true));
  EXPECT_FALSE(*store_->SetScheduleEnabled("weekly", true));
  EXPECT_EQ(store_->ListSchedules()->size(), 1u);
  EXPECT_TRUE(*store_->DeleteSchedule("nightly"));
  EXPECT_FALSE(*store_->DeleteSchedule("nightly"));
  EXPECT_TRUE(absl::IsNotFound(store_->GetSchedule("nightly").status()));
}

TEST_P(StateStoreContract, LoadByQueueGroupsReadyWaitingAndRunning) {
  MakeRun(5, /*cpu=*/2, /*memory=*/1024);
  std::vector<TaskRecord> claimed = Claim("w1", 2);
  ASSERT_EQ(claimed.size(), 2u);
  // One claimed task fails and backs off for a minute: it waits, it is not ready.
  Completion retry = Success(claimed[0], "w1");
  retry.task_state = state::kPending;
  retry.attempt_state = state::kFailed;
  retry.not_before = clock_.NowMs() + 60'000;
  ASSERT_TRUE(store_->Complete({retry}).ok());
  std::vector<TaskLoad> load = *store_->LoadByQueue();
  ASSERT_EQ(load.size(), 3u);
  std::map<std::string, int64_t> by_state;
  for (const TaskLoad& l : load) {
    EXPECT_EQ(l.queue, "default");
    EXPECT_EQ(l.cpu, 2);
    EXPECT_EQ(l.memory, 1024);
    by_state[l.state] = l.count;
  }
  EXPECT_EQ(by_state["ready"], 3);
  EXPECT_EQ(by_state["running"], 1);
  EXPECT_EQ(by_state["waiting"], 1);

  EXPECT_EQ(*store_->ListBusyWorkers(), std::vector<std::string>{"w1"});
  clock_.AdvanceMs(5'000);
  ASSERT_TRUE(store_->Complete({Success(claimed[1], "w1")}).ok());
  std::vector<FinishedAttempt> done = *store_->AttemptsFinished(0, clock_.NowMs());
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(done[0].state, state::kFailed);
  EXPECT_EQ(done[1].state, state::kSucceeded);
  EXPECT_EQ(done[1].duration_ms, 5'000);
  EXPECT_TRUE(store_->AttemptsFinished(clock_.NowMs(), clock_.NowMs() + 1)->empty());
  EXPECT_EQ(store_->ListRunAttempts("r1")->size(), 2u);
  EXPECT_EQ(*store_->ListBusyWorkers(), std::vector<std::string>{}) << "w1 holds nothing now";
}

TEST_P(StateStoreContract, ATaskTooLargeAtTheHeadDoesNotHideSmallerOnes) {
  RunRecord run{.id = "r1", .pipeline = "p", .params_json = "{}", .created_at = clock_.NowMs()};
  ASSERT_TRUE(
      store_->CreateRun(run, {{.name = "big", .position = 0}, {.name = "small", .position = 1}})
          .ok());
  auto make = [](int64_t i) { return NewTask{.index = i}; };
  ASSERT_TRUE(*store_->StartStep("r1", "big", "[]", 50, {.cpu = 8}, make));
  ASSERT_TRUE(*store_->StartStep("r1", "small", "[]", 3, {.cpu = 1, .memory = 1 << 20}, make));
  auto c = store_->Claim({.worker_id = "w", .free_cpu = 2, .free_memory = 1 << 21, .max_tasks = 5});
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->size(), 2u) << "two one-cpu tasks fit in two cpus";
  for (const TaskRecord& t : *c) EXPECT_EQ(t.key.step, "small");
  // Memory counts too: with room for one more 1 MiB task, one is taken.
  c = store_->Claim({.worker_id = "w2", .free_cpu = 4, .free_memory = 1 << 20, .max_tasks = 5});
  ASSERT_EQ(c->size(), 1u);
  EXPECT_EQ((*c)[0].key.step, "small");
}

TEST_P(StateStoreContract, ATaskThatFitsOnlyAloneDoesNotStopTheClaimShort) {
  RunRecord run{.id = "r1", .pipeline = "p", .params_json = "{}", .created_at = clock_.NowMs()};
  ASSERT_TRUE(
      store_->CreateRun(run, {{.name = "two", .position = 0}, {.name = "one", .position = 1}})
          .ok());
  auto make = [](int64_t i) { return NewTask{.index = i}; };
  ASSERT_TRUE(*store_->StartStep("r1", "two", "[]", 2, {.cpu = 2}, make));
  ASSERT_TRUE(*store_->StartStep("r1", "one", "[]", 1, {.cpu = 1}, make));
  // In 3 cpus: two[0] takes 2; two[1] would need 2 more, so it is passed over for one[0].
  auto c = store_->Claim({.worker_id = "w", .free_cpu = 3, .max_tasks = 5});
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->size(), 2u);
  EXPECT_EQ((*c)[0].key, (TaskKey{"r1", "two", 0}));
  EXPECT_EQ((*c)[1].key, (TaskKey{"r1", "one", 0}));
  EXPECT_EQ(store_->GetTask({"r1", "two", 1})->state, state::kPending);
}

TEST_P(StateStoreContract, AttemptsAreRecordedWithWorkerAndTimesHoweverTheyEnd) {
  MakeRun(4);
  int64_t claimed_at = clock_.NowMs();
  std::vector<TaskRecord> w1 = Claim("w1", 3, 100, /*lease_ms=*/1000);
  // While running, an attempt is listed from its task, and its worker counts as the run's.
  auto running = store_->ListAttempts(w1[0].key).value();
  ASSERT_EQ(running.size(), 1u);
  EXPECT_EQ(running[0].state, state::kRunning);
  EXPECT_EQ(running[0].worker_id, "w1");
  EXPECT_EQ(running[0].started_at, claimed_at);
  ASSERT_EQ(store_->ListRunWorkers("r1")->size(), 0u) << "w1 never registered";
  ASSERT_TRUE(store_->RegisterWorker({.id = "w1", .host = "h", .started_at = claimed_at}).ok());
  ASSERT_EQ(store_->ListRunWorkers("r1")->size(), 1u);

  clock_.AdvanceMs(700);
  ASSERT_TRUE((*store_->Complete({Success(w1[0], "w1")}))[0]);
  clock_.AdvanceMs(400);  // w1's other leases expire
  ASSERT_EQ(*store_->ReapExpired(10), 2);
  std::vector<TaskRecord> w2 = Claim("w2", 4);
  ASSERT_EQ(w2.size(), 3u);
  // One batch from the zombie w1 and the live w2: only w2's is taken.
  auto taken = store_->Complete({Success(w1[1], "w1"), Success(w2[0], "w2")});
  ASSERT_TRUE(taken.ok()) << taken.status();
  EXPECT_EQ(*taken, (std::vector<bool>{false, true}));
  ASSERT_TRUE(*store_->CancelRun("r1", "stop"));

  auto done = store_->ListAttempts(w1[0].key).value();
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].state, state::kSucceeded);
  EXPECT_EQ(done[0].worker_id, "w1");
  EXPECT_EQ(done[0].started_at, claimed_at);
  EXPECT_EQ(done[0].finished_at, claimed_at + 700);
  auto fenced = store_->ListAttempts(w1[1].key).value();
  ASSERT_EQ(fenced.size(), 2u);
  EXPECT_EQ(fenced[0].state, "fenced");
  EXPECT_EQ(fenced[0].worker_id, "w1");
  EXPECT_EQ(fenced[0].started_at, claimed_at);
  EXPECT_EQ(fenced[0].failure_class, failure::kInfrastructure);
  EXPECT_EQ(fenced[1].state, state::kSucceeded);
  EXPECT_EQ(fenced[1].worker_id, "w2");
  auto cancelled = store_->ListAttempts(w2[1].key).value();
  ASSERT_EQ(cancelled.size(), 2u);
  EXPECT_EQ(cancelled[0].state, "lost");
  EXPECT_EQ(cancelled[1].state, state::kCancelled);
  EXPECT_EQ(cancelled[1].worker_id, "w2");
  EXPECT_EQ(cancelled[1].started_at, claimed_at + 1100);
  EXPECT_EQ(cancelled[1].finished_at, claimed_at + 1100);
  // Every attempt once: 4 tasks, 3 + 3 attempts, none still running.
  auto all = store_->ListRunAttempts("r1").value();
  EXPECT_EQ(all.size(), 6u);
  for (const AttemptRecord& a : all) EXPECT_NE(a.state, state::kRunning);
}

TEST_P(StateStoreContract, HasTasksInProbesOneStepsStates) {
  MakeRun(3);
  const std::vector<std::string> active = {state::kPending, state::kRunning};
  const std::vector<std::string> bad = {state::kFailed, state::kCancelled};
  EXPECT_TRUE(*store_->HasTasksIn("r1", "s", active));
  EXPECT_FALSE(*store_->HasTasksIn("r1", "s", bad));
  EXPECT_FALSE(*store_->HasTasksIn("r1", "other", active));
  EXPECT_FALSE(*store_->HasTasksIn("r1", "s", {}));
  std::vector<TaskRecord> all = Claim("w", 3);
  ASSERT_EQ(all.size(), 3u);
  Completion failed = Success(all[2], "w");
  failed.task_state = failed.attempt_state = state::kFailed;
  ASSERT_TRUE(store_->Complete({Success(all[0], "w"), Success(all[1], "w"), failed}).ok());
  EXPECT_FALSE(*store_->HasTasksIn("r1", "s", active));
  EXPECT_TRUE(*store_->HasTasksIn("r1", "s", bad));
  EXPECT_TRUE(*store_->HasTasksIn("r1", "s", {state::kSucceeded}));
}

TEST_P(StateStoreContract, AReadSeesWhatAnotherConnectionCommittedSinceTheLastRead) {
  MakeRun(1);
  auto other = GetParam().open(dir_.path().string(), clock_);
  ASSERT_TRUE(other.ok()) << other.status();
  // One-row reads must not leave their statement open: on SQLite an open statement keeps its
  // read snapshot, and the next read of this connection would not see the other's commits.
  ASSERT_TRUE(store_->GetRun("r1").ok());
  ASSERT_TRUE(store_->SchemaVersion().ok());
  auto claimed = (*other)->Claim({.worker_id = "w", .free_cpu = 1, .max_tasks = 1});
  ASSERT_TRUE(claimed.ok()) << claimed.status();
  ASSERT_EQ(claimed->size(), 1u);
  EXPECT_EQ(store_->GetTask({"r1", "s", 0})->state, state::kRunning);
}

TEST_P(StateStoreContract, CreateRunRejectsDuplicateIds) {
  MakeRun(1);
  RunRecord again{.id = "r1", .pipeline = "p", .params_json = "{}"};
  EXPECT_TRUE(absl::IsAlreadyExists(store_->CreateRun(again, {})));
  EXPECT_TRUE(absl::IsNotFound(store_->GetRun("nope").status()));
}

TEST_P(StateStoreContract, StartStepIsIdempotent) {
  MakeRun(4);
  auto again =
      store_->StartStep("r1", "s", "[]", 4, {}, [](int64_t i) { return NewTask{.index = i}; });
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);
  auto counts = store_->CountTasks("r1");
  ASSERT_EQ(counts->size(), 1u);
  EXPECT_EQ((*counts)[0].pending, 4);
}

// A step's tasks go in by bulk insert (COPY on PostgreSQL): every value must come back as it
// went in, whatever characters it holds, over more rows than one insert statement takes.
TEST_P(StateStoreContract, StartStepStoresEveryValueVerbatim) {
  RunRecord run{.id = "r1", .pipeline = "p", .params_json = "{}", .created_at = clock_.NowMs()};
  ASSERT_TRUE(store_->CreateRun(run, {{.name = "a"}, {.name = "s", .position = 3}}).ok());
  const std::vector<std::string> awkward = {"",
                                            R"(\N)",
                                            "tab\there",
                                            "line\nbreak\r\n",
                                            R"({"path":"C:\\x\\y"})",
                                            "naïve 日本 ✓",
                                            "'quoted' \"and\" $1 ?"};
  auto item = [&](int64_t i) { return Cat(awkward[i % awkward.size()], "#", i); };
  const Placement placement{
      .cpu = 0.25, .memory = 3LL << 30, .queue = "q\t1", .required_labels = "gpu=a10\\x"};
  constexpr int64_t kTasks = 613;  // two full statements of 250 and a remainder, on SQLite
  auto started = store_->StartStep("r1", "s", "[]", kTasks, placement, [&](int64_t i) {
    return NewTask{.index = i, .item_json = item(i), .inputs_json = i % 2 ? item(i + 1) : ""};
  });
  ASSERT_TRUE(started.ok()) << started.status();
  ASSERT_TRUE(*started);
  auto tasks = store_->ListTasks({.run_id = "r1"});
  ASSERT_TRUE(tasks.ok()) << tasks.status();
  ASSERT_EQ(tasks->size(), static_cast<size_t>(kTasks));
  std::set<int64_t> seen;
  for (const TaskRecord& t : *tasks) {
    seen.insert(t.key.index);
    EXPECT_EQ(t.key.step, "s");
    EXPECT_EQ(t.position, 3);
    EXPECT_EQ(t.state, state::kPending);
    EXPECT_EQ(t.item_json, item(t.key.index));
    EXPECT_EQ(t.inputs_json, t.key.index % 2 ? item(t.key.index + 1) : "");
    EXPECT_EQ(t.cpu, 0.25);
    EXPECT_EQ(t.memory, 3LL << 30);
    EXPECT_EQ(t.queue, placement.queue);
    EXPECT_EQ(t.required_labels, placement.required_labels);
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(kTasks));
  EXPECT_EQ(*seen.rbegin(), kTasks - 1);
}

// A bulk insert that fails (here two tasks with one index) rolls back the whole step start.
TEST_P(StateStoreContract, AFailedStepStartLeavesNoTasksAndTheStepPending) {
  RunRecord run{.id = "r1", .pipeline = "p", .params_json = "{}", .created_at = clock_.NowMs()};
  ASSERT_TRUE(store_->CreateRun(run, {{.name = "s"}}).ok());
  auto started = store_->StartStep("r1", "s", "[]", 300, {},
                                   [](int64_t i) { return NewTask{.index = i == 299 ? 7 : i}; });
  EXPECT_FALSE(started.ok());
  auto tasks = store_->ListTasks({.run_id = "r1"});
  ASSERT_TRUE(tasks.ok()) << tasks.status();
  EXPECT_TRUE(tasks->empty());
  auto steps = store_->GetSteps("r1");
  ASSERT_TRUE(steps.ok()) << steps.status();
  EXPECT_EQ((*steps)[0].state, state::kPending);
  // And the store is usable afterwards: the step starts cleanly.
  started =
      store_->StartStep("r1", "s", "[]", 300, {}, [](int64_t i) { return NewTask{.index = i}; });
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_TRUE(*started);
  EXPECT_EQ(store_->ListTasks({.run_id = "r1"})->size(), 300u);
}

// A transaction that ends in an exception (here a task that cannot be built, midway through the
// bulk insert) is rolled back: nothing of it is visible, the write lock is released for every
// other connection, and this connection is not left inside a failed transaction or a COPY.
TEST_P(StateStoreContract, AnExceptionInsideATransactionRollsItBack) {
  RunRecord run{.id = "r1", .pipeline = "p", .params_json = "{}", .created_at = clock_.NowMs()};
  ASSERT_TRUE(store_->CreateRun(run, {{.name = "s"}}).ok());
  EXPECT_THROW((void)store_->StartStep("r1", "s", "[]", 300, {},
                                       [](int64_t i) {
                                         if (i == 299) throw std::runtime_error("no such item");
                                         return NewTask{.index = i};
                                       }),
               std::runtime_error);
  auto other = GetParam().open(dir_.path().string(), clock_);
  ASSERT_TRUE(other.ok()) << other.status();
  absl::Status written = (*other)->AddEvent({.run_id = "r1", .kind = "ping"});
  EXPECT_TRUE(written.ok()) << written;
  auto tasks = store_->ListTasks({.run_id = "r1"});
  ASSERT_TRUE(tasks.ok()) << tasks.status();
  EXPECT_TRUE(tasks->empty());
  auto steps = store_->GetSteps("r1");
  ASSERT_TRUE(steps.ok()) << steps.status();
  EXPECT_EQ((*steps)[0].state, state::kPending);
  auto started =
      store_->StartStep("r1", "s", "[]", 300, {}, [](int64_t i) { return NewTask{.index = i}; });
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_TRUE(*started);
  EXPECT_EQ((*other)->ListTasks({.run_id = "r1"})->size(), 300u);
}

TEST_P(StateStoreContract, ClaimHonoursQueuesAndRequiredLabels) {
  RunRecord run{.id = "r1", .pipeline = "p", .params_json = "{}", .created_at = clock_.NowMs()};
  ASSERT_TRUE(store_
                  ->CreateRun(run, {{.name = "any", .position = 0},
                                    {.name = "arm", .position = 1},
                                    {.name = "gpu", .position = 2}})
                  .ok());
  auto start = [&](const std::string& step, Placement p) {
    ASSERT_TRUE(
        store_->StartStep("r1", step, "[]", 2, p, [](int64_t i) { return NewTask{.index = i}; })
            .ok());
  };
  start("any", {});
  start("arm", {.required_labels = "arch=arm64"});
  start("gpu", {.queue = "gpu", .required_labels = "arch=amd64,gpu=a10"});
  auto claim = [&](const std::string& worker, const std::string& queue, const Labels& labels) {
    auto c = store_->Claim({.worker_id = worker,
                            .free_cpu = 100,
                            .max_tasks = 10,
                            .queue = queue,
                            .accepts = LabelSubsets(labels)});
    EXPECT_TRUE(c.ok()) << c.status();
    std::vector<std::string> steps;
    for (const TaskRecord& t : *c) steps.push_back(Cat(t.key.step, "/", t.key.index));
    return steps;
  };
  // An amd64 worker on the default queue: neither the arm64 tasks nor the gpu queue's.
  EXPECT_EQ(claim("x86", "default", {{"arch", "amd64"}}),
            (std::vector<std::string>{"any/0", "any/1"}));
  EXPECT_EQ(claim("arm", "default", {{"arch", "arm64"}, {"zone", "a"}}),
            (std::vector<std::string>{"arm/0", "arm/1"}));
  // A driver's pool (no queue or labels given) takes any task of its run.
  auto c = store_->Claim({.worker_id = "d", .run_id = "r1", .free_cpu = 1, .max_tasks = 1});
  ASSERT_TRUE(c.ok() && c->size() == 1u);
  EXPECT_EQ((*c)[0].key.step, "gpu");
  // The gpu queue needs both labels; extra labels on the worker do not matter.
  EXPECT_TRUE(claim("gpu1", "gpu", {{"gpu", "a10"}}).empty());
  EXPECT_EQ(claim("gpu2", "gpu", {{"arch", "amd64"}, {"gpu", "a10"}, {"ssd", "yes"}}),
            (std::vector<std::string>{"gpu/1"}));
  auto task = store_->GetTask({"r1", "gpu", 1});
  ASSERT_TRUE(task.ok());
  EXPECT_EQ(task->queue, "gpu");
  EXPECT_EQ(task->required_labels, "arch=amd64,gpu=a10");
}

TEST_P(StateStoreContract, ClaimLeasesEachTaskOnce) {
  MakeRun(5);
  std::vector<TaskRecord> a = Claim("w1", 3);
  std::vector<TaskRecord> b = Claim("w2", 10);
  ASSERT_EQ(a.size(), 3u);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(a[0].key.index, 0);
  EXPECT_EQ(a[0].attempt, 1);
  EXPECT_EQ(a[0].lease_owner, "w1");
  EXPECT_EQ(a[0].lease_expires_at, clock_.NowMs() + 10'000);
  EXPECT_EQ(b[1].key.index, 4);
  EXPECT_TRUE(Claim("w3", 10).empty());
  auto attempts = store_->ListAttempts(a[0].key);
  ASSERT_EQ(attempts->size(), 1u);
  EXPECT_EQ((*attempts)[0].worker_id, "w1");
  EXPECT_EQ((*attempts)[0].state, state::kRunning);
}

TEST_P(StateStoreContract, ClaimRespectsCpuAndMemory) {
  MakeRun(4, /*cpu=*/1.5, /*memory=*/1 << 20);
  EXPECT_EQ(Claim("w1", 10, /*cpu=*/3.0).size(), 2u);
  auto c = store_->Claim(
      {.worker_id = "w2", .free_cpu = 8, .free_memory = (1 << 20) + 5, .max_tasks = 10});
  EXPECT_EQ(c->size(), 1u);
}

TEST_P(StateStoreContract, CompleteCommitsAndFencesStaleAttempts) {
  MakeRun(1);
  TaskRecord t = Claim("w1", 1, 100, /*lease_ms=*/1000)[0];
  clock_.AdvanceMs(1001);
  ASSERT_EQ(*store_->ReapExpired(10), 1);
  TaskRecord again = store_->GetTask(t.key).value();
  EXPECT_EQ(again.state, state::kPending);
  EXPECT_EQ(again.infra_failures, 1);
  EXPECT_EQ(again.app_failures, 0);
  TaskRecord t2 = Claim("w2", 1)[0];
  EXPECT_EQ(t2.attempt, 2);
  // The zombie's late result is rejected; the live attempt's is committed.
  auto zombie = store_->Complete({Success(t, "w1")});
  ASSERT_TRUE(zombie.ok());
  EXPECT_FALSE((*zombie)[0]);
  auto live = store_->Complete({Success(t2, "w2")});
  EXPECT_TRUE((*live)[0]);
  TaskRecord done = store_->GetTask(t.key).value();
  EXPECT_EQ(done.state, state::kSucceeded);
  EXPECT_EQ(done.committed_attempt, 2);
  auto attempts = store_->ListAttempts(t.key).value();
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts[0].state, "fenced");
  EXPECT_EQ(attempts[0].failure_class, failure::kInfrastructure);
  EXPECT_EQ(attempts[1].state, state::kSucceeded);
  // A duplicate completion of the committed attempt changes nothing.
  EXPECT_FALSE((*store_->Complete({Success(t2, "w2")}))[0]);
}

TEST_P(StateStoreContract, HeartbeatExtendsLeasesAndReportsRevocations) {
  MakeRun(2);
  std::vector<TaskRecord> held = Claim("w1", 2, 100, 1000);
  clock_.AdvanceMs(900);
  auto still = store_->Heartbeat("w1", 1000);
  ASSERT_TRUE(still.ok());
  EXPECT_EQ(still->size(), 2u);
  clock_.AdvanceMs(900);  // past the first lease, within the extended one
  EXPECT_EQ(*store_->ReapExpired(10), 0);
  ASSERT_TRUE(*store_->CancelRun("r1", "stop"));
  EXPECT_TRUE(store_->Heartbeat("w1", 1000)->empty());
  EXPECT_EQ(store_->GetTask(held[0].key)->state, state::kCancelled);
  EXPECT_EQ(store_->ListAttempts(held[0].key)->at(0).state, state::kCancelled);
}

TEST_P(StateStoreContract, RetryWaitsForNotBefore) {
  MakeRun(1);
  TaskRecord t = Claim("w1", 1)[0];
  Completion c{.key = t.key,
               .attempt = 1,
               .worker_id = "w1",
               .task_state = state::kPending,
               .attempt_state = state::kFailed,
               .failure_class = failure::kApplication,
               .charge_retry = true,
               .not_before = clock_.NowMs() + 5000,
               .exit_code = 1,
               .error = "exit code 1"};
  ASSERT_TRUE((*store_->Complete({c}))[0]);
  EXPECT_TRUE(Claim("w1", 1).empty());
  clock_.AdvanceMs(5000);
  std::vector<TaskRecord> again = Claim("w1", 1);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].attempt, 2);
  EXPECT_EQ(again[0].app_failures, 1);
}

TEST_P(StateStoreContract, InfrastructureBudgetFailsTheTaskEventually) {
  MakeRun(1);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(Claim("w1", 1, 100, 10).size(), 1u);
    clock_.AdvanceMs(11);
    ASSERT_EQ(*store_->ReapExpired(/*max_infra_failures=*/2), 1);
  }
  TaskRecord t = store_->GetTask({"r1", "s", 0}).value();
  EXPECT_EQ(t.state, state::kFailed);
  EXPECT_NE(t.error.find("gave up after 3 infrastructure failures"), std::string::npos) << t.error;
}

TEST_P(StateStoreContract, ReleaseWorkerRequeuesItsTasksAtOnce) {
  MakeRun(3);
  ASSERT_TRUE(store_->RegisterWorker({.id = "w1", .host = "h", .pid = 1, .pid_start = "5"}).ok());
  Claim("w1", 2);
  EXPECT_EQ(*store_->ReleaseWorker("w1", "worker w1 is gone", 10, state::kLost), 2);
  EXPECT_TRUE(store_->ListWorkers()->empty());
  EXPECT_EQ(Claim("w2", 10).size(), 3u);
  auto attempts = store_->ListAttempts({"r1", "s", 0}).value();
  EXPECT_EQ(attempts[0].state, state::kLost);
  EXPECT_EQ(attempts[0].error, "worker w1 is gone");
}

TEST_P(StateStoreContract, ADrainedWorkersAttemptsAreRecordedAsDrained) {
  MakeRun(2);
  ASSERT_TRUE(store_->RegisterWorker({.id = "w1", .host = "h", .pid = 1, .pid_start = "5"}).ok());
  Claim("w1", 2);
  EXPECT_EQ(*store_->ReleaseWorker("w1", "drained: spot notice", 10, state::kDrained), 2);
  for (int64_t i = 0; i < 2; ++i) {
    auto attempts = store_->ListAttempts({"r1", "s", i}).value();
    ASSERT_EQ(attempts.size(), 1u);
    EXPECT_EQ(attempts[0].state, state::kDrained);
    EXPECT_EQ(attempts[0].failure_class, failure::kInfrastructure);
    EXPECT_EQ(store_->GetTask({"r1", "s", i})->state, state::kPending);
  }
}

TEST_P(StateStoreContract, RequeueReopensAFailedRun) {
  MakeRun(2);
  std::vector<TaskRecord> t = Claim("w1", 2);
  Completion fail{.key = t[0].key,
                  .attempt = 1,
                  .worker_id = "w1",
                  .task_state = state::kFailed,
                  .attempt_state = state::kFailed,
                  .failure_class = failure::kApplication,
                  .charge_retry = true,
                  .exit_code = 3,
                  .error = "exit code 3"};
  ASSERT_TRUE(store_->Complete({fail, Success(t[1], "w1")}).ok());
  ASSERT_TRUE(*store_->TransitionStep("r1", "s", state::kRunning, state::kFailed));
  ASSERT_TRUE(*store_->TransitionRun("r1", state::kRunning, state::kFailed, "step s failed"));
  EXPECT_EQ(*store_->RequeueTasks("r1", {state::kFailed}), 1);
  EXPECT_EQ(store_->GetRun("r1")->state, state::kRunning);
  EXPECT_EQ(store_->GetSteps("r1")->at(0).state, state::kRunning);
  TaskRecord again = store_->GetTask(t[0].key).value();
  EXPECT_EQ(again.state, state::kPending);
  EXPECT_EQ(again.app_failures, 0);
  EXPECT_EQ(store_->GetTask(t[1].key)->state, state::kSucceeded);
}

TEST_P(StateStoreContract, ListsAndFilters) {
  MakeRun(3);
  TaskRecord t = Claim("w1", 1)[0];
  ASSERT_TRUE(store_->Complete({Success(t, "w1")}).ok());
  auto done = store_->ListTasks({.run_id = "r1", .state = std::string(state::kSucceeded)});
  ASSERT_EQ(done->size(), 1u);
  EXPECT_EQ((*done)[0].outputs_json, R"([{"path":"/o"}])");
  EXPECT_EQ(store_->ListTasks({.run_id = "r1", .limit = 2})->size(), 2u);
  EXPECT_EQ(store_->ListRuns({.limit = 10})->size(), 1u);
  EXPECT_FALSE(store_->ListEvents("r1")->empty());
}

TEST_P(StateStoreContract, ListsRunsByStatePipelineAndAgeAndDeletesFinishedOnes) {
  MakeRun(2);  // r1, pipeline p, running
  TaskRecord t = Claim("w1", 1)[0];
  ASSERT_TRUE(store_->Complete({Success(t, "w1")}).ok());
  auto make = [&](const std::string& id, const std::string& pipeline) {
    RunRecord run{.id = id,
                  .pipeline = pipeline,
                  .params_json = "{}",
                  .root = "/data",
                  .created_at = clock_.NowMs()};
    ASSERT_TRUE(store_->CreateRun(run, {{.name = "s", .position = 0}}).ok());
  };
  clock_.AdvanceMs(1'000);
  make("old", "p");
  ASSERT_TRUE(*store_->TransitionRun("old", state::kRunning, state::kSucceeded, ""));
  int64_t between = clock_.NowMs() + 1;
  clock_.AdvanceMs(1'000);
  make("new", "q");
  ASSERT_TRUE(*store_->TransitionRun("new", state::kRunning, state::kFailed, "boom"));

  auto ids = [&](const RunFilter& f) {
    std::vector<RunRecord> runs = store_->ListRuns(f).value();
    std::vector<std::string> out;
    for (const RunRecord& r : runs) out.push_back(r.id);
    return out;
  };
  EXPECT_EQ(ids({}), (std::vector<std::string>{"new", "old", "r1"}));
  EXPECT_EQ(ids({.pipeline = "p"}), (std::vector<std::string>{"old", "r1"}));
  EXPECT_EQ(ids({.state = std::string(state::kFailed)}), std::vector<std::string>{"new"});
  EXPECT_EQ(ids({.finished_before = between}), std::vector<std::string>{"old"});
  EXPECT_EQ(ids({.limit = 1, .offset = 1}), std::vector<std::string>{"old"});

  // A running run is refused and keeps every row.
  EXPECT_TRUE(absl::IsFailedPrecondition(store_->DeleteRun("r1")));
  EXPECT_EQ(store_->ListTasks({.run_id = "r1"})->size(), 2u);
  EXPECT_EQ(store_->ListAttempts(t.key)->size(), 1u);
  EXPECT_TRUE(absl::IsNotFound(store_->DeleteRun("nope")));

  // A finished one goes whole; the others stay.
  ASSERT_TRUE(*store_->CancelRun("r1", "stop"));
  ASSERT_TRUE(store_->DeleteRun("r1").ok());
  EXPECT_TRUE(absl::IsNotFound(store_->GetRun("r1").status()));
  EXPECT_TRUE(store_->ListTasks({.run_id = "r1"})->empty());
  EXPECT_TRUE(store_->ListAttempts(t.key)->empty());
  EXPECT_TRUE(store_->ListEvents("r1")->empty());
  EXPECT_TRUE(store_->GetSteps("r1")->empty());
  EXPECT_EQ(ids({}), (std::vector<std::string>{"new", "old"}));

  // gc marks a run deleting first: from then on it cannot be re-queued, and it can be deleted.
  ASSERT_TRUE(*store_->TransitionRun("new", state::kFailed, state::kDeleting, ""));
  EXPECT_TRUE(absl::IsFailedPrecondition(store_->RequeueTasks("new", {state::kFailed}).status()));
  EXPECT_EQ(store_->GetRun("new")->state, state::kDeleting);
  EXPECT_EQ(ids({.state = std::string(state::kDeleting)}), std::vector<std::string>{"new"});
  ASSERT_TRUE(store_->DeleteRun("new").ok());
  EXPECT_EQ(ids({}), std::vector<std::string>{"old"});
}

// Regression: a handle whose last read left a snapshot open, then writing after another handle
// committed, failed at once with "database is locked" instead of waiting its turn.
TEST_P(StateStoreContract, HandlesInterleaveReadsAndWritesWithoutSpuriousBusy) {
  MakeRun(2);
  auto other = GetParam().open(dir_.path().string(), clock_);
  ASSERT_TRUE(other.ok()) << other.status();
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(store_->GetRun("r1").ok());
    ASSERT_TRUE(store_->GetTask({"r1", "s", 0}).ok());
    ASSERT_TRUE((*other)->AddEvent({.run_id = "r1", .kind = "ping"}).ok());
    absl::Status s = store_->RegisterWorker({.id = Cat("w", i), .host = "h", .pid = i});
    ASSERT_TRUE(s.ok()) << s;
    ASSERT_TRUE((*other)->Heartbeat(Cat("w", i), 1000).ok());
  }
  EXPECT_EQ(store_->ListWorkers()->size(), 20u);
}

INSTANTIATE_TEST_SUITE_P(
    Implementations, StateStoreContract,
    ::testing::Values(Impl{"sqlite",
                           [](const std::string& dir,
                              Clock& clock) -> absl::StatusOr<std::unique_ptr<StateStore>> {
                             return OpenStateStore(dir + "/state.db", &clock);
                           }},
                      Impl{"postgres",
                           [](const std::string& dir,
                              Clock& clock) -> absl::StatusOr<std::unique_ptr<StateStore>> {
                             return OpenPostgresIn(dir, &clock);
                           }}),
    [](const ::testing::TestParamInfo<Impl>& info) { return info.param.name; });

TEST(PostgresStore, LeasesUseTheDatabaseClock) {
  if (TestPostgresUrl().empty()) GTEST_SKIP() << "no BARGE_TEST_POSTGRES server";
  ScopedTempDir dir("pgclock");
  auto store = OpenPostgresIn(dir.path().string(), /*clock=*/nullptr);
  ASSERT_TRUE(store.ok()) << store.status();
  int64_t db_now = (*store)->NowMs();
  EXPECT_LT(std::abs(db_now - SystemClock().NowMs()), 5'000);
}

TEST(PostgresStore, NumbersPlaceholdersOutsideQuotes) {
  EXPECT_EQ(NumberPlaceholders("SELECT ? , '?', \"?\" WHERE a = ? AND b = ?"),
            "SELECT $1 , '?', \"?\" WHERE a = $2 AND b = $3");
}

TEST(PostgresStore, BadUrlIsAClearError) {
  auto store = OpenStateStore("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2");
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("connecting to PostgreSQL"), std::string::npos)
      << store.status();
}

// A state file written by a barge of schema 1 opens in this one: the new columns get their
// defaults and the old runs' tasks stay claimable.
TEST(SchemaMigration, VersionOneStateFileUpgradesInPlace) {
  ScopedTempDir dir("migrate");
  std::string path = (dir.path() / "state.db").string();
  {
    auto db = SqliteDb::Open(path);
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE((*db)
                    ->Exec("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                           "applied_at BIGINT NOT NULL)")
                    .ok());
    for (const std::string& sql : Migrations().front().statements) {
      ASSERT_TRUE((*db)->Exec(ReplaceAll(sql, "{serial_pk}", (*db)->dialect().serial_pk)).ok());
    }
    ASSERT_TRUE((*db)->Exec("INSERT INTO schema_migrations VALUES (1, 0)").ok());
    ASSERT_TRUE((*db)
                    ->Exec("INSERT INTO runs (id, pipeline, state, spec_path, spec_source, "
                           "params_json, root, created_at) VALUES ('old', 'p', 'running', '', "
                           "'', '{}', '/d', 1)")
                    .ok());
    ASSERT_TRUE((*db)
                    ->Exec("INSERT INTO tasks (run_id, step, idx, position, state, item_json, "
                           "inputs_json, cpu, memory) VALUES ('old', 's', 0, 0, 'pending', "
                           "'null', '', 1, 0)")
                    .ok());
  }
  ManualClock clock(1'000);
  auto store = OpenStateStore(path, &clock);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ(*(*store)->SchemaVersion(), Migrations().back().version);
  auto c = (*store)->Claim({.worker_id = "w",
                            .free_cpu = 1,
                            .max_tasks = 1,
                            .queue = "default",
                            .accepts = LabelSubsets(MachineLabels())});
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->size(), 1u);
  EXPECT_EQ((*c)[0].key.run_id, "old");
  EXPECT_EQ((*c)[0].queue, "default");
  EXPECT_EQ((*c)[0].required_labels, "");
}

}  // namespace
}  // namespace barge
