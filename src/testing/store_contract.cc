#include "testing/store_contract.h"

#include <cstdlib>
#include <filesystem>

#include "common/status.h"
#include "store/pg_db.h"
#include "store/sqlite_db.h"
#include "testing/postgres.h"

namespace barge {

::testing::internal::ParamGenerator<StoreImpl> StoreImplementations() {
  return ::testing::Values(
      StoreImpl{
          "sqlite",
          [](const std::string& dir, Clock& clock) -> absl::StatusOr<std::unique_ptr<StateStore>> {
            return OpenStateStore(dir + "/state.db", &clock);
          }},
      StoreImpl{
          "postgres",
          [](const std::string& dir, Clock& clock) -> absl::StatusOr<std::unique_ptr<StateStore>> {
            return OpenPostgresIn(dir, &clock);
          }});
}

std::string ImplementationName(const ::testing::TestParamInfo<StoreImpl>& info) {
  return info.param.name;
}

std::string TestPostgresUrl() {
  const char* url = std::getenv("BARGE_TEST_POSTGRES");
  return url != nullptr ? url : "";
}

absl::StatusOr<std::unique_ptr<StateStore>> OpenPostgresIn(const std::string& dir, Clock* clock) {
  ASSIGN_OR_RETURN(
      std::string url,
      PostgresSchemaUrl(TestPostgresUrl(), "t", std::filesystem::path(dir).filename().string()));
  return OpenStateStore(url, clock);
}

void StoreContract::SetUp() {
  if (GetParam().name == "postgres" && TestPostgresUrl().empty()) {
    if (std::getenv("BARGE_REQUIRE_POSTGRES") != nullptr) {
      FAIL() << "BARGE_REQUIRE_POSTGRES is set but BARGE_TEST_POSTGRES is not";
    }
    GTEST_SKIP() << "no BARGE_TEST_POSTGRES server (scripts/test.sh starts one)";
  }
  Reopen();
}

void StoreContract::Reopen() {
  store_.reset();
  auto s = GetParam().open(dir_.path().string(), clock_);
  ASSERT_TRUE(s.ok()) << s.status();
  store_ = std::move(*s);
}

std::unique_ptr<DbConnection> StoreContract::RawDb() {
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

void StoreContract::MakeRun(int n, double cpu, int64_t memory) {
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

std::vector<TaskRecord> StoreContract::Claim(const std::string& worker, int n, double cpu,
                                             int64_t lease_ms) {
  auto c = store_->Claim({.worker_id = worker,
                          .free_cpu = cpu,
                          .free_memory = 1LL << 40,
                          .max_tasks = n,
                          .lease_ms = lease_ms});
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : std::vector<TaskRecord>{};
}

Completion StoreContract::Success(const TaskRecord& t, const std::string& worker) {
  return Completion{.key = t.key,
                    .attempt = t.attempt,
                    .worker_id = worker,
                    .task_state = state::kSucceeded,
                    .attempt_state = state::kSucceeded,
                    .exit_code = 0,
                    .outputs_json = R"([{"path":"/o"}])"};
}

}  // namespace barge
