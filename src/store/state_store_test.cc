// The StateStore contract as a whole (migrations, several connections to one database,
// transactions that roll back), which every implementation runs: SQLite, and PostgreSQL when
// BARGE_TEST_POSTGRES names a server. Then the PostgreSQL store's own tests and a schema upgrade.
#include "store/state_store.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "common/clock.h"
#include "common/labels.h"
#include "common/strings.h"
#include "store/pg_db.h"
#include "store/schema.h"
#include "store/sqlite_db.h"
#include "testing/store_contract.h"
#include "testing/temp_dir.h"

namespace barge {
namespace {

class StateStoreContract : public StoreContract {};

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

// What `barge workers`, `barge status` and submissions read about where tasks can go: a worker's
// status (quarantined), the autoscalers' worker sizes, and pending tasks grouped by need.
TEST_P(StateStoreContract, KeepsWorkerStatusWorkerSizesAndPendingNeeds) {
  ASSERT_TRUE(store_->RegisterWorker({.id = "w1", .host = "h", .cpu = 2}).ok());
  EXPECT_EQ(store_->ListWorkers()->at(0).status, "");
  ASSERT_TRUE(store_->SetWorkerStatus("w1", "quarantined until 12:00").ok());
  EXPECT_EQ(store_->ListWorkers()->at(0).status, "quarantined until 12:00");

  ASSERT_TRUE(store_->PublishWorkerShapes({{.queue = "default", .cpu = 4, .memory = 8 << 20,
                                            .labels_json = R"({"gpu":"a10"})", .max_workers = 3,
                                            .publisher = "h:1"},
                                           {.queue = "etl", .cpu = 2, .max_workers = 1}})
                  .ok());
  std::vector<WorkerShape> shapes = *store_->ListWorkerShapes();
  ASSERT_EQ(shapes.size(), 2u);
  EXPECT_EQ(shapes[0].queue, "default");
  EXPECT_EQ(shapes[0].memory, 8 << 20);
  EXPECT_EQ(shapes[0].labels_json, R"({"gpu":"a10"})");
  EXPECT_EQ(shapes[0].max_workers, 3);
  EXPECT_EQ(shapes[0].updated_at, clock_.NowMs());
  // Published again, the set is replaced, not added to.
  ASSERT_TRUE(store_->PublishWorkerShapes({{.queue = "etl", .cpu = 8, .max_workers = 2}}).ok());
  shapes = *store_->ListWorkerShapes();
  ASSERT_EQ(shapes.size(), 1u);
  EXPECT_EQ(shapes[0].cpu, 8);

  MakeRun(3);
  std::vector<PendingGroup> pending = *store_->PendingByStep();
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].run_id, "r1");
  EXPECT_EQ(pending[0].count, 3);
  ASSERT_EQ(store_->Claim({.worker_id = "w1", .free_cpu = 1, .max_tasks = 1})->size(), 1u);
  EXPECT_EQ(store_->PendingByStep()->at(0).count, 2);
}

INSTANTIATE_TEST_SUITE_P(Implementations, StateStoreContract, StoreImplementations(),
                         ImplementationName);

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
