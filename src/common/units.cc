#include "common/units.h"

#include <fmt/format.h>
#include <fmt/printf.h>

#include <cctype>
#include <cmath>
#include <ctime>
#include <utility>

#include "common/strings.h"

namespace barge {
namespace {

// Splits "12.5GiB" into 12.5 and "GiB"; false if there is no leading number.
bool SplitNumber(std::string_view text, size_t& pos, double& value) {
  size_t start = pos;
  while (pos < text.size() &&
         (std::isdigit(static_cast<unsigned char>(text[pos])) || text[pos] == '.')) {
    ++pos;
  }
  if (pos == start) return false;
  std::string number(text.substr(start, pos - start));
  char* end = nullptr;
  value = std::strtod(number.c_str(), &end);
  return end == number.c_str() + number.size();
}

}  // namespace

absl::StatusOr<int64_t> ParseDurationMs(std::string_view text) {
  text = Trim(text);
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        fmt::sprintf("invalid duration \"%s\": %s (examples: 500ms, 30s, 5m, 1h30m)", text, why));
  };
  if (text.empty()) return bad("empty");
  size_t pos = 0;
  double total = 0;
  while (pos < text.size()) {
    double value;
    if (!SplitNumber(text, pos, value)) return bad("expected a number");
    size_t unit_start = pos;
    while (pos < text.size() && std::isalpha(static_cast<unsigned char>(text[pos]))) ++pos;
    std::string_view unit = text.substr(unit_start, pos - unit_start);
    if (unit.empty()) return bad("missing unit");
    static constexpr std::pair<std::string_view, double> kUnits[] = {
        {"ms", 1}, {"s", 1e3}, {"m", 60e3}, {"h", 3600e3}, {"d", 86400e3}};
    bool found = false;
    for (const auto& [name, factor] : kUnits) {
      if (unit == name) {
        total += value * factor;
        found = true;
      }
    }
    if (!found) return bad(fmt::sprintf("unknown unit \"%s\"", unit));
  }
  if (total > 1e15) return bad("too large");
  return static_cast<int64_t>(std::llround(total));
}

absl::StatusOr<int64_t> ParseSizeBytes(std::string_view text) {
  text = Trim(text);
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        fmt::sprintf("invalid size \"%s\": %s (examples: 512MiB, 2GiB, 1.5G)", text, why));
  };
  size_t pos = 0;
  double value;
  if (!SplitNumber(text, pos, value)) return bad("expected a number");
  std::string_view unit = Trim(text.substr(pos));
  if (unit.empty()) return bad("missing unit");
  static constexpr std::pair<std::string_view, double> kUnits[] = {
      {"B", 1},    {"K", 1024.0},         {"Ki", 1024.0},         {"KiB", 1024.0},
      {"KB", 1e3}, {"M", 1048576.0},      {"Mi", 1048576.0},      {"MiB", 1048576.0},
      {"MB", 1e6}, {"G", 1073741824.0},   {"Gi", 1073741824.0},   {"GiB", 1073741824.0},
      {"GB", 1e9}, {"T", 1099511627776.}, {"Ti", 1099511627776.}, {"TiB", 1099511627776.},
      {"TB", 1e12}};
  for (const auto& [name, factor] : kUnits) {
    if (unit == name) {
      double bytes = value * factor;
      if (bytes > 9e18) return bad("too large");
      return static_cast<int64_t>(std::llround(bytes));
    }
  }
  return bad(fmt::sprintf("unknown unit \"%s\"", unit));
}

std::string FormatDurationMs(int64_t ms) {
  if (ms < 0) ms = 0;
  if (ms < 1000) return fmt::sprintf("%dms", ms);
  if (ms < 60'000) return fmt::sprintf("%.1fs", ms / 1000.0);
  int64_t s = ms / 1000;
  if (s < 3600) return fmt::sprintf("%dm%02ds", s / 60, s % 60);
  return fmt::sprintf("%dh%02dm", s / 3600, (s % 3600) / 60);
}

std::string FormatBytes(int64_t bytes) {
  static constexpr const char* kNames[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int i = 0;
  while (value >= 1024 && i < 4) {
    value /= 1024;
    ++i;
  }
  if (i == 0) return fmt::sprintf("%dB", bytes);
  return fmt::sprintf("%.1f%s", value, kNames[i]);
}

std::string IsoTime(int64_t ms) {
  if (ms <= 0) return "";
  time_t secs = static_cast<time_t>(ms / 1000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03d}Z", buf, ms % 1000);
}

}  // namespace barge
