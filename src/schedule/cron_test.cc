#include "schedule/cron.h"

#include <gtest/gtest.h>

#include "absl/time/civil_time.h"

namespace barge {
namespace {

// Milliseconds of a UTC civil time.
int64_t Utc(int y, int mo, int d, int h, int mi) {
  return absl::ToUnixMillis(
      absl::FromCivil(absl::CivilMinute(y, mo, d, h, mi), absl::UTCTimeZone()));
}

std::vector<int64_t> Slots(const Cron& c, int64_t from, int n) {
  std::vector<int64_t> out;
  for (int i = 0; i < n; ++i) {
    from = c.NextAfterMs(from);
    out.push_back(from);
  }
  return out;
}

TEST(CronTest, EveryFifteenMinutesIsStrictlyAfter) {
  Cron c = *Cron::Parse("*/15 * * * *", "");
  EXPECT_EQ(c.NextAfterMs(Utc(2026, 1, 1, 10, 0)), Utc(2026, 1, 1, 10, 15));
  EXPECT_EQ(c.NextAfterMs(Utc(2026, 1, 1, 10, 0) - 1), Utc(2026, 1, 1, 10, 0));
  EXPECT_EQ(c.NextAfterMs(Utc(2026, 1, 1, 23, 50)), Utc(2026, 1, 2, 0, 0));
}

TEST(CronTest, RangesListsNamesAndSteps) {
  Cron c = *Cron::Parse("30 9-17/4 * * mon-fri", "UTC");
  // 2026-01-02 is a Friday; the weekend is skipped.
  EXPECT_EQ(Slots(c, Utc(2026, 1, 2, 12, 0), 3),
            (std::vector<int64_t>{Utc(2026, 1, 2, 13, 30), Utc(2026, 1, 2, 17, 30),
                                  Utc(2026, 1, 5, 9, 30)}));
  Cron months = *Cron::Parse("0 0 1 jan,JUL *", "UTC");
  EXPECT_EQ(months.NextAfterMs(Utc(2026, 2, 1, 0, 0)), Utc(2026, 7, 1, 0, 0));
  Cron sunday7 = *Cron::Parse("0 12 * * 7", "UTC");  // 7 is Sunday too
  EXPECT_EQ(sunday7.NextAfterMs(Utc(2026, 1, 1, 0, 0)), Utc(2026, 1, 4, 12, 0));
}

TEST(CronTest, BothDayFieldsRestrictedMatchEither) {
  // The 13th, or any Friday.
  Cron c = *Cron::Parse("0 0 13 * fri", "UTC");
  EXPECT_EQ(
      Slots(c, Utc(2026, 1, 1, 0, 0), 3),
      (std::vector<int64_t>{Utc(2026, 1, 2, 0, 0), Utc(2026, 1, 9, 0, 0), Utc(2026, 1, 13, 0, 0)}));
}

TEST(CronTest, ADayFieldStartingWithAStarMatchesBoth) {
  // As in Vixie cron: "*/2" in the day field still ANDs with the weekday field. Odd days that are
  // Mondays; 2026-01-03 (odd, a Saturday) is not one.
  Cron c = *Cron::Parse("0 0 */2 * 1", "UTC");
  EXPECT_EQ(
      Slots(c, Utc(2026, 1, 1, 0, 0), 3),
      (std::vector<int64_t>{Utc(2026, 1, 5, 0, 0), Utc(2026, 1, 19, 0, 0), Utc(2026, 2, 9, 0, 0)}));
  // The same with the star on the weekday side: the 1st of a month that falls on Mon-Wed.
  Cron w = *Cron::Parse("0 0 1 * */1", "UTC");
  EXPECT_EQ(w.NextAfterMs(Utc(2026, 1, 1, 0, 0)), Utc(2026, 2, 1, 0, 0));
}

TEST(CronTest, Macros) {
  EXPECT_EQ(Cron::Parse("@daily", "")->NextAfterMs(Utc(2026, 3, 4, 5, 6)), Utc(2026, 3, 5, 0, 0));
  EXPECT_EQ(Cron::Parse("@hourly", "")->NextAfterMs(Utc(2026, 3, 4, 5, 6)), Utc(2026, 3, 4, 6, 0));
  EXPECT_EQ(Cron::Parse("@monthly", "")->NextAfterMs(Utc(2026, 3, 4, 5, 6)), Utc(2026, 4, 1, 0, 0));
  EXPECT_EQ(Cron::Parse("@weekly", "")->NextAfterMs(Utc(2026, 1, 1, 0, 0)), Utc(2026, 1, 4, 0, 0));
  EXPECT_EQ(Cron::Parse("@yearly", "")->NextAfterMs(Utc(2026, 3, 4, 5, 6)), Utc(2027, 1, 1, 0, 0));
}

TEST(CronTest, TimeZoneShiftsTheSlot) {
  // 02:00 in Berlin is 01:00 UTC in winter and 00:00 UTC in summer.
  Cron c = *Cron::Parse("0 2 * * *", "Europe/Berlin");
  EXPECT_EQ(c.NextAfterMs(Utc(2026, 1, 10, 12, 0)), Utc(2026, 1, 11, 1, 0));
  EXPECT_EQ(c.NextAfterMs(Utc(2026, 7, 10, 12, 0)), Utc(2026, 7, 11, 0, 0));
  // A zone with a half-hour offset: 09:00 in Kolkata is 03:30 UTC.
  EXPECT_EQ(Cron::Parse("0 9 * * *", "Asia/Kolkata")->NextAfterMs(Utc(2026, 1, 1, 12, 0)),
            Utc(2026, 1, 2, 3, 30));
}

TEST(CronTest, SpringForwardRunsASkippedTimeOnceAtTheChange) {
  // New York, 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00 UTC); 02:30 never happens.
  Cron c = *Cron::Parse("30 2 * * *", "America/New_York");
  EXPECT_EQ(Slots(c, Utc(2026, 3, 7, 12, 0), 2),
            (std::vector<int64_t>{Utc(2026, 3, 8, 7, 0), Utc(2026, 3, 9, 6, 30)}));
  // Every quarter hour of the skipped hour collapses into one slot at the change.
  Cron q = *Cron::Parse("*/15 2 * * *", "America/New_York");
  EXPECT_EQ(Slots(q, Utc(2026, 3, 8, 6, 0), 2),
            (std::vector<int64_t>{Utc(2026, 3, 8, 7, 0), Utc(2026, 3, 9, 6, 0)}));
}

TEST(CronTest, FallBackRunsAFixedTimeOnceButHourlyJobsTwice) {
  // New York, 2026-11-01: 02:00 EDT falls back to 01:00 EST; 01:30 happens at 05:30 and 06:30 UTC.
  Cron daily = *Cron::Parse("30 1 * * *", "America/New_York");
  EXPECT_EQ(Slots(daily, Utc(2026, 10, 31, 12, 0), 2),
            (std::vector<int64_t>{Utc(2026, 11, 1, 5, 30), Utc(2026, 11, 2, 6, 30)}));
  Cron hourly = *Cron::Parse("30 * * * *", "America/New_York");
  EXPECT_EQ(Slots(hourly, Utc(2026, 11, 1, 5, 0), 3),
            (std::vector<int64_t>{Utc(2026, 11, 1, 5, 30), Utc(2026, 11, 1, 6, 30),
                                  Utc(2026, 11, 1, 7, 30)}));
}

TEST(CronTest, DaylightSavingWithAMinuteWildcardOrAnHourStep) {
  // A fixed hour with every minute, on the spring day: the skipped minutes collapse into one run
  // at the change (07:00 UTC), then the next day's 02:00-02:59 run minute by minute.
  Cron spring = *Cron::Parse("* 2 * * *", "America/New_York");
  EXPECT_EQ(
      Slots(spring, Utc(2026, 3, 8, 6, 0), 3),
      (std::vector<int64_t>{Utc(2026, 3, 8, 7, 0), Utc(2026, 3, 9, 6, 0), Utc(2026, 3, 9, 6, 1)}));
  // On the autumn day the same job runs in the first 01:xx only (05:00-05:59 UTC), not again.
  Cron autumn = *Cron::Parse("* 1 * * *", "America/New_York");
  EXPECT_EQ(Slots(autumn, Utc(2026, 11, 1, 5, 58), 3),
            (std::vector<int64_t>{Utc(2026, 11, 1, 5, 59), Utc(2026, 11, 2, 6, 0),
                                  Utc(2026, 11, 2, 6, 1)}));
  // An hour step is a fixed hour: in Berlin's repeated 02:xx (2026-10-25) it runs once, at the
  // first occurrence (00:30 UTC), then at 04:30 local (03:30 UTC).
  Cron step = *Cron::Parse("30 */2 * * *", "Europe/Berlin");
  EXPECT_EQ(Slots(step, Utc(2026, 10, 24, 23, 0), 2),
            (std::vector<int64_t>{Utc(2026, 10, 25, 0, 30), Utc(2026, 10, 25, 3, 30)}));
}

TEST(CronTest, ImpossibleDateHasNoSlot) {
  EXPECT_EQ(Cron::Parse("0 0 30 2 *", "")->NextAfterMs(Utc(2026, 1, 1, 0, 0)), -1);
}

TEST(CronTest, ErrorsNameTheField) {
  auto bad = [](const std::string& expr, const std::string& zone = "") {
    absl::StatusOr<Cron> c = Cron::Parse(expr, zone);
    EXPECT_FALSE(c.ok()) << expr;
    return c.ok() ? std::string() : std::string(c.status().message());
  };
  EXPECT_NE(bad("61 * * * *").find("minute: 61 is out of range 0-59"), std::string::npos);
  EXPECT_NE(bad("* 5-2 * * *").find("hour: range \"5-2\" runs backwards"), std::string::npos);
  EXPECT_NE(bad("* * * * *  *").find("expected 5 fields"), std::string::npos);
  EXPECT_NE(bad("* * * foo *").find("month: \"foo\" is not a number"), std::string::npos);
  EXPECT_NE(bad("*/0 * * * *").find("bad step"), std::string::npos);
  EXPECT_NE(bad("@fortnightly").find("unknown macro"), std::string::npos);
  EXPECT_NE(bad("@daily", "Mars/Olympus").find("unknown time zone \"Mars/Olympus\""),
            std::string::npos);
}

}  // namespace
}  // namespace barge
