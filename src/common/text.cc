#include "common/text.h"

#include <cstdint>

#include "common/strings.h"

namespace barge {
namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 if none starts there.
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  uint8_t b = byte(i);
  if (b < 0x80) return 1;
  size_t n;
  uint32_t cp;
  if (b >= 0xC2 && b <= 0xDF) {
    n = 2, cp = b & 0x1F;
  } else if (b >= 0xE0 && b <= 0xEF) {
    n = 3, cp = b & 0x0F;
  } else if (b >= 0xF0 && b <= 0xF4) {
    n = 4, cp = b & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000)) return 0;  // overlong
  if (cp >= 0xD800 && cp <= 0xDFFF) return 0;                        // surrogate
  if (cp > 0x10FFFF) return 0;
  return n;
}

}  // namespace

size_t Utf8ValidPrefix(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t n = Utf8SequenceLength(s, i);
    if (n == 0) break;
    i += n;
  }
  return i;
}

bool IsValidUtf8(std::string_view s) { return Utf8ValidPrefix(s) == s.size(); }

std::string ShowBytes(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<uint8_t>(s[i]);
    size_t n = Utf8SequenceLength(s, i);
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (n == 0 || c < 0x20 || c == 0x7F) {
      out += fmt::format("\\x{:02x}", c);
      i += 1;
      continue;
    } else {
      out.append(s.substr(i, n));
      i += n;
      continue;
    }
    i += 1;
  }
  return out;
}

absl::Status CheckCarriable(std::string_view what, std::string_view value) {
  if (value.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError(Cat(what, " ", ShowBytes(value), " holds a NUL byte"));
  }
  if (!IsValidUtf8(value)) {
    return absl::InvalidArgumentError(Cat(what, " ", ShowBytes(value), " is not valid UTF-8"));
  }
  return absl::OkStatus();
}

absl::Status CheckCarriableName(std::string_view what, std::string_view name) {
  if (absl::Status s = CheckCarriable(what, name); !s.ok()) return s;
  for (char c : name) {
    auto b = static_cast<uint8_t>(c);
    if (b < 0x20 || b == 0x7F) {
      return absl::InvalidArgumentError(
          Cat(what, " ", ShowBytes(name), " holds a control character (such as a newline)"));
    }
  }
  return absl::OkStatus();
}

std::string DumpJson(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace barge
