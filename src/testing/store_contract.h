// Test support: the fixture of the state store's contract suites (store/*_store_test.cc,
// task_queue_test.cc, telemetry_test.cc), run over every implementation: SQLite, and
// PostgreSQL when BARGE_TEST_POSTGRES names a server (else those tests are skipped, or fail if
// BARGE_REQUIRE_POSTGRES is set). Each test gets a fresh store in a temporary directory (its own
// PostgreSQL schema) on a ManualClock.
//
//   class TaskQueueContract : public StoreContract {};
//   TEST_P(TaskQueueContract, ClaimLeasesEachTaskOnce) { MakeRun(4); ... }
//   INSTANTIATE_TEST_SUITE_P(Implementations, TaskQueueContract, StoreImplementations(),
//                            ImplementationName);  // .../sqlite, .../postgres
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "store/db.h"
#include "store/state_store.h"
#include "testing/temp_dir.h"

namespace barge {

// One implementation of the store, opened in a test's directory.
struct StoreImpl {
  std::string name;  // "sqlite" | "postgres"
  std::function<absl::StatusOr<std::unique_ptr<StateStore>>(const std::string& dir, Clock&)> open;
};

// What GoogleTest prints for a parameter (else the struct's bytes): its name.
inline void PrintTo(const StoreImpl& impl, std::ostream* os) { *os << impl.name; }

// SQLite and PostgreSQL.
::testing::internal::ParamGenerator<StoreImpl> StoreImplementations();
// The name ctest shows for a parameter: the implementation's ("sqlite", "postgres").
std::string ImplementationName(const ::testing::TestParamInfo<StoreImpl>& info);

// The PostgreSQL server the tests use (scripts/test.sh starts one), or "" to skip those tests.
std::string TestPostgresUrl();
// A PostgreSQL store in a schema of its own, named after the test's directory.
absl::StatusOr<std::unique_ptr<StateStore>> OpenPostgresIn(const std::string& dir, Clock* clock);

class StoreContract : public ::testing::TestWithParam<StoreImpl> {
 protected:
  void SetUp() override;
  void TearDown() override { store_.reset(); }
  // Opens the store afresh: a restarted process.
  void Reopen();
  // A connection of its own to the store's database, for what the interface cannot do.
  std::unique_ptr<DbConnection> RawDb();
  // A run "r1" with one started step "s" of `n` tasks needing `cpu` each.
  void MakeRun(int n, double cpu = 1, int64_t memory = 0);
  // Claims up to `n` tasks for `worker` with `cpu` free (and memory to spare).
  std::vector<TaskRecord> Claim(const std::string& worker, int n, double cpu = 100,
                                int64_t lease_ms = 10'000);
  // A successful completion of `t`'s attempt by `worker`.
  Completion Success(const TaskRecord& t, const std::string& worker);

  ManualClock clock_{1'700'000'000'000};
  ScopedTempDir dir_{"store"};
  std::unique_ptr<StateStore> store_;
};

}  // namespace barge
