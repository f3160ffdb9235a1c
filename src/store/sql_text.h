// Text for error messages: a SQL statement by its start, not its whole text; a multi-line
// library message on one line.
#pragma once

#include <cctype>
#include <string>
#include <string_view>

namespace barge {

// `text` with runs of whitespace (newlines, tabs) collapsed to one space, cut to about `max`
// bytes ("..." marks a cut). For SQL, the default is enough to tell which statement failed
// without kilobytes of SQL in a log line.
inline std::string OneLine(std::string_view text, size_t max = 100) {
  std::string out;
  for (char c : text) {
    bool space = std::isspace(static_cast<unsigned char>(c)) != 0;
    if (space && (out.empty() || out.back() == ' ')) continue;
    if (out.size() >= max) {
      while (!out.empty() && out.back() == ' ') out.pop_back();
      return out + "...";
    }
    out += space ? ' ' : c;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

}  // namespace barge
