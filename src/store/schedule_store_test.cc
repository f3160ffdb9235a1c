// The ScheduleStore contract, which every implementation runs: SQLite, and PostgreSQL when
// BARGE_TEST_POSTGRES names a server.
#include "store/schedule_store.h"

#include <gtest/gtest.h>

#include <vector>

#include "testing/store_contract.h"

namespace barge {
namespace {

class ScheduleStoreContract : public StoreContract {};

TEST_P(ScheduleStoreContract, SchedulesKeepTheirSlotAndRecordEachSlotOnce) {
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

INSTANTIATE_TEST_SUITE_P(Implementations, ScheduleStoreContract, StoreImplementations(),
                         ImplementationName);

}  // namespace
}  // namespace barge
