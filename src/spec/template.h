// Placeholders in `run` and `env` values: {params.NAME}, {item}, {item.KEY}, {index}.
//
// Only those exact shapes are placeholders; any other text in braces (awk's {print $1}, the
// shell's ${VAR}) is left alone. In a shell command every substituted value is shell-quoted, so
// it is always one word and never interpreted; in argv and env values it is substituted as is.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"

namespace barge {

struct Placeholder {
  enum Kind { kParam, kItem, kItemKey, kIndex } kind;
  std::string key;   // param name or item key
  size_t begin = 0;  // offset of '{' in the text
  size_t end = 0;    // one past '}'
};

// All placeholders in `text`, in order.
std::vector<Placeholder> FindPlaceholders(std::string_view text);

struct TemplateValues {
  const std::map<std::string, std::string>* params = nullptr;
  const nlohmann::json* item = nullptr;  // null when the step has no item
  int64_t index = 0;
};

// The text form of an item: strings as they are, numbers as written, objects as compact JSON.
std::string ItemText(const nlohmann::json& item);

// Substitutes placeholders. REQUIRES: the text was validated (every placeholder resolves); an
// unresolvable one renders as empty.
std::string RenderTemplate(std::string_view text, const TemplateValues& values, bool shell_quote);

}  // namespace barge
