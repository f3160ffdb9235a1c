#include "schedule/scheduler.h"

#include <gtest/gtest.h>

#include "absl/time/civil_time.h"
#include "common/clock.h"
#include "store/forwarding_store.h"
#include "store/state_store.h"
#include "testing/temp_dir.h"

namespace barge {
namespace {

int64_t Utc(int y, int mo, int d, int h, int mi) {
  return absl::ToUnixMillis(
      absl::FromCivil(absl::CivilMinute(y, mo, d, h, mi), absl::UTCTimeZone()));
}

constexpr char kSpec[] = "name: nightly\nsteps:\n  - name: s\n    run: 'true'\n";

// A store whose RecordFire fails while `fail` is set: a server that dies after creating a slot's
// run and before recording the slot.
class DiesBeforeRecording : public ForwardingScheduleStore {
 public:
  using ForwardingScheduleStore::ForwardingScheduleStore;
  bool fail = true;
  absl::StatusOr<bool> RecordFire(const ScheduleFire& f, int64_t from) override {
    if (fail) return absl::UnavailableError("killed");
    return inner_.RecordFire(f, from);
  }
};

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }
  // Opens the state file afresh: a restarted server.
  void Reopen() {
    store_.reset();
    store_ = OpenStateStore((dir_.path() / "state.db").string(), &clock_).value();
  }
  void Add(const std::string& cron, const std::string& catchup, const std::string& overlap,
           const std::string& zone = "UTC") {
    ScheduleRecord r{.name = "nightly",
                     .cron = cron,
                     .time_zone = zone,
                     .catchup = catchup,
                     .overlap = overlap,
                     .spec_path = (dir_.path() / "p.yaml").string(),
                     .spec_source = kSpec,
                     .root = (dir_.path() / "data").string()};
    ASSERT_TRUE(ValidateSchedule(r).ok()) << ValidateSchedule(r);
    ASSERT_TRUE(store_->PutSchedule(r).ok());
  }
  // Ticks a fresh scheduler; returns the ids of the runs it fired.
  std::vector<std::string> Tick() {
    Engine engine(*store_, stores_);
    Scheduler scheduler(*store_, *store_, engine);
    auto r = scheduler.Tick();
    EXPECT_TRUE(r.ok()) << r.status();
    std::vector<std::string> fired;
    if (!r.ok()) return fired;
    for (const std::string& e : r->errors) ADD_FAILURE() << e;
    for (const ScheduleFire& f : r->recorded) {
      if (f.outcome == "fired") fired.push_back(f.run_id);
    }
    return fired;
  }
  std::vector<std::string> AllRunIds() {
    std::vector<std::string> ids;
    std::vector<RunRecord> runs = store_->ListRuns({}).value();
    for (const RunRecord& r : runs) ids.insert(ids.begin(), r.id);
    return ids;
  }
  void FinishAllRuns() {
    std::vector<RunRecord> runs = store_->ListRuns({}).value();
    for (const RunRecord& r : runs) {
      ASSERT_TRUE(store_->CancelRun(r.id, "test").ok());
    }
  }

  ManualClock clock_{Utc(2026, 1, 1, 0, 0)};
  ScopedTempDir dir_{"sched"};
  ObjectStores stores_;
  std::unique_ptr<StateStore> store_;
};

using Ids = std::vector<std::string>;

TEST_F(SchedulerTest, FiresEachSlotOnceAcrossRestarts) {
  Add("0 * * * *", "all", "allow");
  EXPECT_EQ(Tick(), Ids{}) << "nothing is due yet";
  clock_.AdvanceMs(3 * 3'600'000 + 60'000);  // 03:01: the 01:00, 02:00 and 03:00 slots
  EXPECT_EQ(Tick(),
            (Ids{"nightly-20260101-0100", "nightly-20260101-0200", "nightly-20260101-0300"}));
  EXPECT_EQ(Tick(), Ids{});
  Reopen();
  EXPECT_EQ(Tick(), Ids{}) << "a restarted server does not fire a handled slot again";
  EXPECT_EQ(AllRunIds().size(), 3u);
  EXPECT_EQ(store_->GetRun("nightly-20260101-0100")->state, state::kRunning)
      << "the run was started: its step is planned";
  EXPECT_EQ(store_->ListTasks({.run_id = "nightly-20260101-0100"})->size(), 1u);
}

TEST_F(SchedulerTest, AServerKilledBetweenCreatingAndRecordingNeverFiresTwice) {
  Add("0 * * * *", "all", "skip");
  clock_.AdvanceMs(3'600'000);
  DiesBeforeRecording dying(*store_);
  {
    Engine engine(*store_, stores_);
    Scheduler scheduler(dying, *store_, engine);
    auto r = scheduler.Tick();
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->errors.size(), 1u);
    EXPECT_NE(r->errors[0].find("killed"), std::string::npos);
  }
  EXPECT_EQ(AllRunIds(), Ids{"nightly-20260101-0100"});
  Reopen();
  // The slot's run exists and is still going; with overlap skip it must not count as "the
  // previous run": the slot is recorded as fired, and no second run appears.
  EXPECT_EQ(Tick(), Ids{"nightly-20260101-0100"});
  EXPECT_EQ(AllRunIds(), Ids{"nightly-20260101-0100"});
  auto fires = *store_->ListFires("nightly", 10);
  ASSERT_EQ(fires.size(), 1u);
  EXPECT_EQ(fires[0].outcome, "fired");
}

TEST_F(SchedulerTest, CatchupLatestFiresOnlyTheNewestMissedSlot) {
  Add("0 * * * *", "latest", "allow");
  clock_.AdvanceMs(5 * 3'600'000 + 1'000);
  EXPECT_EQ(Tick(), Ids{"nightly-20260101-0500"});
  EXPECT_EQ(AllRunIds().size(), 1u);
}

TEST_F(SchedulerTest, CatchupNoneSkipsStaleSlotsButFiresADueOne) {
  Add("0 * * * *", "none", "allow");
  clock_.AdvanceMs(5 * 3'600'000 + 10 * 60'000);  // 05:10: the newest slot is 10 minutes old
  EXPECT_EQ(Tick(), Ids{});
  auto fires = *store_->ListFires("nightly", 10);
  ASSERT_EQ(fires.size(), 1u);
  EXPECT_EQ(fires[0].outcome, "skipped");
  EXPECT_EQ(fires[0].slot, Utc(2026, 1, 1, 5, 0));
  clock_.AdvanceMs(50 * 60'000 + 5'000);  // 06:00:05: within the grace period
  EXPECT_EQ(Tick(), Ids{"nightly-20260101-0600"});
}

TEST_F(SchedulerTest, CatchupAllFiresEveryMissedSlotInOrder) {
  Add("*/20 * * * *", "all", "allow");
  clock_.AdvanceMs(60 * 60'000);
  EXPECT_EQ(Tick(),
            (Ids{"nightly-20260101-0020", "nightly-20260101-0040", "nightly-20260101-0100"}));
}

TEST_F(SchedulerTest, OverlapSkipRecordsTheSlotAsSkipped) {
  Add("0 * * * *", "all", "skip");
  clock_.AdvanceMs(3'600'000);
  EXPECT_EQ(Tick(), Ids{"nightly-20260101-0100"});
  clock_.AdvanceMs(3'600'000);
  EXPECT_EQ(Tick(), Ids{}) << "the 01:00 run is still going";
  auto fires = *store_->ListFires("nightly", 10);
  ASSERT_EQ(fires.size(), 2u);
  EXPECT_EQ(fires[0].outcome, "skipped");
  EXPECT_NE(fires[0].run_id.find("previous run still going"), std::string::npos);
  FinishAllRuns();
  clock_.AdvanceMs(3'600'000);
  EXPECT_EQ(Tick(), Ids{"nightly-20260101-0300"});
}

TEST_F(SchedulerTest, OverlapQueueWaitsForThePreviousRun) {
  Add("0 * * * *", "all", "queue");
  clock_.AdvanceMs(3'600'000);
  EXPECT_EQ(Tick(), Ids{"nightly-20260101-0100"});
  clock_.AdvanceMs(3'600'000);
  EXPECT_EQ(Tick(), Ids{});
  EXPECT_EQ(store_->ListFires("nightly", 10)->size(), 1u) << "the 02:00 slot waits, unrecorded";
  FinishAllRuns();
  EXPECT_EQ(Tick(), Ids{"nightly-20260101-0200"});
}

TEST_F(SchedulerTest, OverlapAllowRunsSideBySide) {
  Add("0 * * * *", "all", "allow");
  clock_.AdvanceMs(3'600'000);
  EXPECT_EQ(Tick(), Ids{"nightly-20260101-0100"});
  clock_.AdvanceMs(3'600'000);
  EXPECT_EQ(Tick(), Ids{"nightly-20260101-0200"});
  EXPECT_EQ(store_->GetRun("nightly-20260101-0100")->state, state::kRunning);
}

TEST_F(SchedulerTest, TimeZonesAndDaylightSavingChanges) {
  // 02:30 New York time, daily, ticked every 10 minutes from 6 to 9 March 2026: on the 8th the
  // clocks jump from 02:00 to 03:00, and the slot fires once, at the change (07:00 UTC).
  clock_.AdvanceMs(Utc(2026, 3, 6, 12, 0) - clock_.NowMs());
  Add("30 2 * * *", "all", "allow", "America/New_York");
  Ids fired;
  while (clock_.NowMs() < Utc(2026, 3, 9, 12, 0)) {
    clock_.AdvanceMs(10 * 60'000);
    for (const std::string& id : Tick()) fired.push_back(id);
  }
  EXPECT_EQ(fired,
            (Ids{"nightly-20260307-0730", "nightly-20260308-0700", "nightly-20260309-0630"}));
  // Autumn: 01:30 happens twice on 1 November; a daily job runs once, at the first.
  ASSERT_TRUE(store_->DeleteSchedule("nightly").ok());
  clock_.AdvanceMs(Utc(2026, 10, 31, 12, 0) - clock_.NowMs());
  Add("30 1 * * *", "all", "allow", "America/New_York");
  fired.clear();
  while (clock_.NowMs() < Utc(2026, 11, 2, 12, 0)) {
    clock_.AdvanceMs(10 * 60'000);
    for (const std::string& id : Tick()) fired.push_back(id);
  }
  EXPECT_EQ(fired, (Ids{"nightly-20261101-0530", "nightly-20261102-0630"}));
}

TEST_F(SchedulerTest, ValidationNamesTheProblem) {
  ScheduleRecord r{.name = "n", .cron = "0 2 * * *", .time_zone = "UTC", .spec_source = kSpec};
  EXPECT_TRUE(ValidateSchedule(r).ok());
  r.catchup = "sometimes";
  EXPECT_NE(ValidateSchedule(r).message().find("catchup \"sometimes\""), std::string::npos);
  r.catchup = "all";
  r.overlap = "never";
  EXPECT_NE(ValidateSchedule(r).message().find("overlap \"never\""), std::string::npos);
  r.overlap = "skip";
  r.cron = "0 25 * * *";
  EXPECT_NE(ValidateSchedule(r).message().find("hour: 25 is out of range"), std::string::npos);
  r.cron = "@daily";
  r.spec_source = "name: n\nsteps: []\n";
  EXPECT_FALSE(ValidateSchedule(r).ok());
  r.spec_source = kSpec;
  r.name = "../x";
  EXPECT_NE(ValidateSchedule(r).message().find("schedule name"), std::string::npos);
}

}  // namespace
}  // namespace barge
