// String helpers over fmt. (Debian's abseil defines its own absl::string_view, so absl's string
// utilities do not mix with std::string_view; barge builds strings with fmt instead.)
//
//   std::string m = Cat("run ", id, ": ", 42, " tasks");
//   std::string s = Join(names, ", ");
#pragma once

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/string_view.h"

template <>
struct fmt::formatter<absl::string_view> : fmt::formatter<std::string_view> {
  auto format(absl::string_view s, format_context& ctx) const {
    return fmt::formatter<std::string_view>::format(std::string_view(s.data(), s.size()), ctx);
  }
};

namespace barge {

// Concatenates the text forms of its arguments (strings, numbers, absl::string_view).
template <typename... Args>
std::string Cat(const Args&... args) {
  std::string out;
  (fmt::format_to(std::back_inserter(out), "{}", args), ...);
  return out;
}

template <typename Range>
std::string Join(const Range& parts, std::string_view sep) {
  return fmt::format("{}", fmt::join(parts, sep));
}

// `item` `n` times, `sep` between: Repeated("?", 3, ", ") is "?, ?, ?" (SQL placeholders).
inline std::string Repeated(std::string_view item, size_t n, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    if (i > 0) out += sep;
    out += item;
  }
  return out;
}

inline std::string_view Trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::string ReplaceAll(std::string_view text, std::string_view from, std::string_view to);

// The message of a status as a std::string.
inline std::string ToString(absl::string_view s) { return std::string(s.data(), s.size()); }

}  // namespace barge
