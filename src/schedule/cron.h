// Cron expressions: when a schedule's slots fall, in a time zone.
//
//   ASSIGN_OR_RETURN(Cron cron, Cron::Parse("30 2 * * 1-5", "Europe/Berlin"));
//   int64_t slot = cron.NextAfterMs(now_ms);   // the first slot strictly after now
//
// Five fields (minute hour day-of-month month day-of-week) with `*`, numbers, ranges `a-b`,
// steps `*/n` and `a-b/n`, lists `a,b`, month names jan-dec and day names sun-sat (0 and 7 are
// Sunday); or one of @yearly (@annually), @monthly, @weekly, @daily (@midnight), @hourly. When
// both day fields are restricted, a day matches if either does (as in Vixie cron).
//
// Daylight-saving changes follow Vixie cron: a schedule with a fixed hour fires once per local
// day — a local time that is skipped (spring forward) fires at the moment of the change, one that
// happens twice (fall back) fires at its first occurrence; a schedule whose hour field is `*`
// fires on every matching minute of elapsed time, so an hourly job runs in both repeated hours.
//
// Thread-safety: immutable after Parse.
#pragma once

#include <bitset>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace barge {

class Cron {
 public:
  // Parses `expr` in the IANA zone `time_zone` ("" or "UTC": UTC). InvalidArgument naming the
  // field and the reason, or the unknown zone.
  static absl::StatusOr<Cron> Parse(const std::string& expr, const std::string& time_zone);

  // The first slot strictly after `after_ms` (ms since the epoch), or -1 if there is none within
  // five years (e.g. "0 0 30 2 *").
  int64_t NextAfterMs(int64_t after_ms) const;

  const std::string& expr() const { return expr_; }
  const std::string& time_zone() const { return zone_name_; }

 private:
  bool DayMatches(const absl::CivilDay& day) const;
  int64_t NextFixedHour(int64_t after_ms) const;
  int64_t NextAnyHour(int64_t after_ms) const;

  std::string expr_;
  std::string zone_name_;
  absl::TimeZone zone_;
  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_;     // 1-31
  std::bitset<13> months_;   // 1-12
  std::bitset<7> weekdays_;  // 0 = Sunday
  bool any_hour_ = false;
  bool any_day_ = false;
  bool any_weekday_ = false;
};

// A schedule's policies: for slots missed while no server ran (catchup), and for a slot that comes
// while the previous run is still going (overlap).
inline bool IsScheduleCatchup(std::string_view v) {
  return v == "latest" || v == "all" || v == "none";
}
inline bool IsScheduleOverlap(std::string_view v) {
  return v == "skip" || v == "queue" || v == "allow";
}

}  // namespace barge
