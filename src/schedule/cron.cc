#include "schedule/cron.h"

#include <array>
#include <charconv>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "common/status.h"
#include "common/strings.h"

namespace barge {
namespace {

struct Field {
  const char* name;
  int lo, hi;
  const std::array<const char*, 12>* names;  // names[i] stands for lo + i
};

const std::array<const char*, 12> kMonthNames = {"jan", "feb", "mar", "apr", "may", "jun",
                                                 "jul", "aug", "sep", "oct", "nov", "dec"};
const std::array<const char*, 12> kDayNames = {"sun", "mon", "tue", "wed", "thu", "fri",
                                               "sat", "",    "",    "",    "",    ""};

const Field kFields[5] = {{"minute", 0, 59, nullptr},
                          {"hour", 0, 23, nullptr},
                          {"day of month", 1, 31, nullptr},
                          {"month", 1, 12, &kMonthNames},
                          {"day of week", 0, 7, &kDayNames}};

absl::StatusOr<int> ParseValue(std::string_view text, const Field& f) {
  if (f.names != nullptr) {
    std::string lower = absl::AsciiStrToLower(std::string(text));
    for (int i = 0; i < 12; ++i) {
      if (lower == (*f.names)[i]) return f.lo + i;
    }
  }
  int v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) {
    return absl::InvalidArgumentError(Cat(f.name, ": \"", text, "\" is not a number"));
  }
  if (v < f.lo || v > f.hi) {
    return absl::InvalidArgumentError(Cat(f.name, ": ", v, " is out of range ", f.lo, "-", f.hi));
  }
  return v;
}

// Sets the bits of one field ("*/15", "1-5", "mon,wed"); `any` is whether it was a bare "*".
absl::Status ParseField(std::string_view text, const Field& f, std::vector<bool>& bits, bool& any) {
  bits.assign(f.hi + 1, false);
  any = text == "*";
  for (absl::string_view piece : absl::StrSplit(std::string(text), ',')) {
    std::string_view part(piece.data(), piece.size());
    if (part.empty()) return absl::InvalidArgumentError(Cat(f.name, ": empty list element"));
    int step = 1;
    if (size_t slash = part.find('/'); slash != std::string_view::npos) {
      std::string_view s = part.substr(slash + 1);
      auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), step);
      if (ec != std::errc() || end != s.data() + s.size() || step < 1) {
        return absl::InvalidArgumentError(Cat(f.name, ": bad step \"", s, "\""));
      }
      part = part.substr(0, slash);
    }
    int lo = f.lo, hi = f.hi;
    if (part != "*") {
      size_t dash = part.find('-');
      ASSIGN_OR_RETURN(lo, ParseValue(part.substr(0, dash), f));
      if (dash != std::string_view::npos) {
        ASSIGN_OR_RETURN(hi, ParseValue(part.substr(dash + 1), f));
        if (hi < lo) {
          return absl::InvalidArgumentError(Cat(f.name, ": range \"", part, "\" runs backwards"));
        }
      } else if (step > 1) {
        hi = f.hi;  // "5/15" means from 5 to the end, every 15
      } else {
        hi = lo;
      }
    }
    for (int v = lo; v <= hi; v += step) bits[v] = true;
  }
  return absl::OkStatus();
}

std::string ExpandMacro(const std::string& expr) {
  if (expr == "@yearly" || expr == "@annually") return "0 0 1 1 *";
  if (expr == "@monthly") return "0 0 1 * *";
  if (expr == "@weekly") return "0 0 * * 0";
  if (expr == "@daily" || expr == "@midnight") return "0 0 * * *";
  if (expr == "@hourly") return "0 * * * *";
  return expr;
}

// The absolute time of a local civil minute: the first occurrence of a repeated one, the moment
// of the change for a skipped one.
absl::Time Resolve(const absl::TimeZone& zone, const absl::CivilMinute& civil) {
  absl::TimeZone::TimeInfo ti = zone.At(civil);
  return ti.kind == absl::TimeZone::TimeInfo::SKIPPED ? ti.trans : ti.pre;
}

constexpr int64_t kHorizonMinutes = int64_t{5} * 366 * 24 * 60;

}  // namespace

absl::StatusOr<Cron> Cron::Parse(const std::string& expr, const std::string& time_zone) {
  Cron c;
  c.expr_ = std::string(Trim(expr));
  c.zone_name_ = time_zone.empty() ? "UTC" : time_zone;
  if (!absl::LoadTimeZone(c.zone_name_, &c.zone_)) {
    return absl::InvalidArgumentError(
        Cat("unknown time zone \"", c.zone_name_, "\" (use an IANA name such as Europe/Berlin)"));
  }
  std::string expanded = ExpandMacro(c.expr_);
  if (!expanded.empty() && expanded[0] == '@') {
    return absl::InvalidArgumentError(
        Cat("cron \"", c.expr_,
            "\": unknown macro (use @yearly, @monthly, @weekly, @daily or @hourly)"));
  }
  std::vector<std::string> parts = absl::StrSplit(expanded, ' ', absl::SkipWhitespace());
  if (parts.size() != 5) {
    return absl::InvalidArgumentError(
        Cat("cron \"", c.expr_, "\": expected 5 fields (minute hour day month weekday), got ",
            parts.size()));
  }
  std::vector<bool> bits[5];
  bool any[5];
  for (int i = 0; i < 5; ++i) {
    absl::Status s = ParseField(parts[i], kFields[i], bits[i], any[i]);
    if (!s.ok()) return WithContext(s, Cat("cron \"", c.expr_, "\""));
  }
  for (int v = 0; v < 60; ++v) c.minutes_[v] = bits[0][v];
  for (int v = 0; v < 24; ++v) c.hours_[v] = bits[1][v];
  for (int v = 1; v <= 31; ++v) c.days_[v] = bits[2][v];
  for (int v = 1; v <= 12; ++v) c.months_[v] = bits[3][v];
  for (int v = 0; v <= 7; ++v) {
    if (bits[4][v]) c.weekdays_[v % 7] = true;
  }
  c.any_hour_ = any[1];
  // Vixie cron (and cronie) treat a day field as unrestricted when it starts with '*', so "*/2"
  // restricts the days yet still combines with the weekday field by AND, not OR.
  c.any_day_ = parts[2][0] == '*';
  c.any_weekday_ = parts[4][0] == '*';
  return c;
}

bool Cron::DayMatches(const absl::CivilDay& day) const {
  if (!months_[day.month()]) return false;
  int weekday = (static_cast<int>(absl::GetWeekday(day)) + 1) % 7;  // absl: Monday = 0
  bool dom = days_[day.day()];
  bool dow = weekdays_[weekday];
  if (any_day_ || any_weekday_) return dom && dow;
  return dom || dow;
}

int64_t Cron::NextAfterMs(int64_t after_ms) const {
  return any_hour_ ? NextAnyHour(after_ms) : NextFixedHour(after_ms);
}

// Walks local civil time: each matching local minute is one slot.
int64_t Cron::NextFixedHour(int64_t after_ms) const {
  const absl::Time after = absl::FromUnixMillis(after_ms);
  absl::CivilMinute civil = absl::ToCivilMinute(after, zone_);
  const absl::CivilMinute end = civil + kHorizonMinutes;
  while (civil < end) {
    absl::CivilDay day(civil);
    if (!DayMatches(day)) {
      civil = absl::CivilMinute(day + 1);
      continue;
    }
    if (!hours_[civil.hour()]) {
      civil = absl::CivilMinute(absl::CivilHour(civil) + 1);
      continue;
    }
    if (minutes_[civil.minute()]) {
      absl::Time t = Resolve(zone_, civil);
      if (t > after) return absl::ToUnixMillis(t);
    }
    civil += 1;
  }
  return -1;
}

// Walks elapsed time minute by minute, matching each minute's local reading.
int64_t Cron::NextAnyHour(int64_t after_ms) const {
  absl::Time t = absl::FromUnixMillis(after_ms);
  t = absl::FromUnixSeconds((absl::ToUnixSeconds(t) / 60 + 1) * 60);  // next whole minute
  const absl::Time end = t + absl::Minutes(kHorizonMinutes);
  while (t < end) {
    absl::CivilMinute civil = absl::ToCivilMinute(t, zone_);
    absl::CivilDay day(civil);
    if (!DayMatches(day)) {
      // Jump to the next local midnight (never backwards, whatever the zone does there).
      absl::Time next = Resolve(zone_, absl::CivilMinute(day + 1));
      t = next > t ? next : t + absl::Minutes(1);
      continue;
    }
    if (minutes_[civil.minute()]) return absl::ToUnixMillis(t);
    t += absl::Minutes(1);
  }
  return -1;
}

}  // namespace barge
