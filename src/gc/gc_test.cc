// barge gc's protocol against a real (SQLite) store and a local data root: a gc killed between
// deleting a run's data and its rows is finished by the next one whatever its cutoff, and a run
// resumed between gc's listing and its marking is left alone with its data.
#include "gc/gc.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "common/clock.h"
#include "common/fs.h"
#include "common/strings.h"
#include "engine/engine.h"
#include "store/forwarding_store.h"
#include "store/state_store.h"
#include "testing/temp_dir.h"

namespace barge {
namespace {

class GcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::move(OpenStateStore((dir_ / "state.db").string(), &clock_).value());
  }

  // A failed run of one task, finished an hour before now, with one file of data.
  std::string FailedRun() {
    Engine engine(*store_, stores_);
    absl::StatusOr<Pipeline> p = ParsePipeline("name: p\nsteps:\n  - name: s\n    run: 'false'\n",
                                               (dir_ / "p.yaml").string(), {});
    std::string id = engine.CreateRun(*p, root_).value();
    EXPECT_TRUE(engine.Advance(id).ok());
    TaskRecord t = store_->Claim({.worker_id = "w", .free_cpu = 1}).value().at(0);
    EXPECT_TRUE(store_
                    ->Complete({{.key = t.key,
                                 .attempt = t.attempt,
                                 .worker_id = "w",
                                 .task_state = state::kFailed,
                                 .attempt_state = state::kFailed}})
                    .ok());
    EXPECT_EQ(engine.Advance(id)->state, state::kFailed);
    EXPECT_TRUE(MakeDirs(std::filesystem::path(DataFile(id)).parent_path().string()).ok());
    EXPECT_TRUE(WriteFile(DataFile(id), "output").ok());
    clock_.AdvanceMs(3'600'000);
    return id;
  }
  std::string DataFile(const std::string& id) { return Cat(root_, "/runs/", id, "/s/0/a1/out"); }

  ManualClock clock_{1'700'000'000'000};
  ScopedTempDir temp_{"gc"};
  const std::filesystem::path& dir_ = temp_.path();
  std::string root_ = (dir_ / "data").string();
  ObjectStores stores_;
  std::unique_ptr<StateStore> store_;
};

// Fails DeleteRun the first `failures` times: gc killed after deleting the data.
class DeleteRunFails : public ForwardingRunStore {
 public:
  using ForwardingRunStore::ForwardingRunStore;
  absl::Status DeleteRun(const std::string& run_id) override {
    if (failures-- > 0) return absl::UnavailableError("connection lost");
    return ForwardingRunStore::DeleteRun(run_id);
  }
  int failures = 1;
};

TEST_F(GcTest, AGcKilledPartWayIsFinishedByTheNextWhateverItsCutoff) {
  std::string id = FailedRun();
  DeleteRunFails flaky(*store_);
  std::string other = FailedRun();  // not affected by the first one's failure
  absl::StatusOr<GcReport> first =
      CollectGarbage(flaky, stores_, {.finished_before = clock_.NowMs()});
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->failures.size(), 1u);
  EXPECT_NE(first->failures[0].message().find(Cat("collecting run ", id)), std::string::npos)
      << first->failures[0];
  ASSERT_EQ(first->runs.size(), 1u);
  EXPECT_EQ(first->runs[0].run.id, other);
  EXPECT_EQ(store_->GetRun(id)->state, state::kDeleting);
  EXPECT_FALSE(std::filesystem::exists(DataFile(id)));
  // It cannot be resumed now.
  EXPECT_TRUE(absl::IsFailedPrecondition(store_->RequeueTasks(id, {state::kFailed}).status()));
  EXPECT_EQ(store_->GetRun(id)->state, state::kDeleting);

  // A cutoff that this run's age does not pass still collects it: it is half-deleted.
  absl::StatusOr<GcReport> second = CollectGarbage(*store_, stores_, {.finished_before = 1});
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_EQ(second->runs.size(), 1u);
  EXPECT_EQ(second->runs[0].run.id, id);
  EXPECT_TRUE(absl::IsNotFound(store_->GetRun(id).status()));
}

// Resumes the run right after gc lists the old runs: the race gc's marking settles.
class ResumedWhileListing : public ForwardingRunStore {
 public:
  using ForwardingRunStore::ForwardingRunStore;
  absl::StatusOr<std::vector<RunRecord>> ListRuns(const RunFilter& filter) override {
    absl::StatusOr<std::vector<RunRecord>> runs = ForwardingRunStore::ListRuns(filter);
    if (filter.finished_before > 0) {
      for (const RunRecord& r : *runs) EXPECT_TRUE(RequeueTasks(r.id, {state::kFailed}).ok());
    }
    return runs;
  }
};

TEST_F(GcTest, ARunResumedAfterListingKeepsItsDataAndRows) {
  std::string id = FailedRun();
  ResumedWhileListing racing(*store_);
  absl::StatusOr<GcReport> report =
      CollectGarbage(racing, stores_, {.finished_before = clock_.NowMs()});
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->runs.empty());
  EXPECT_EQ(store_->GetRun(id)->state, state::kRunning);
  EXPECT_EQ(ReadFile(DataFile(id)).value_or(""), "output");
}

TEST_F(GcTest, ADryRunCountsAndChangesNothing) {
  std::string id = FailedRun();
  absl::StatusOr<GcReport> report =
      CollectGarbage(*store_, stores_, {.finished_before = clock_.NowMs(), .dry_run = true});
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->runs.size(), 1u);
  EXPECT_EQ(report->objects, 1);
  EXPECT_EQ(report->bytes, 6);
  EXPECT_EQ(store_->GetRun(id)->state, state::kFailed);
  EXPECT_TRUE(std::filesystem::exists(DataFile(id)));
  // Younger than the cutoff: not listed.
  EXPECT_TRUE(CollectGarbage(*store_, stores_, {.finished_before = clock_.NowMs() - 7'200'000})
                  ->runs.empty());
}

}  // namespace
}  // namespace barge
