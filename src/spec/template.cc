#include "spec/template.h"

#include <cctype>

#include "common/shell.h"
#include "common/text.h"

namespace barge {
namespace {

bool IsIdentStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsIdentChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
}

bool IsIdentifier(std::string_view s) {
  if (s.empty() || !IsIdentStart(s[0])) return false;
  for (char c : s) {
    if (!IsIdentChar(c)) return false;
  }
  return true;
}

}  // namespace

std::vector<Placeholder> FindPlaceholders(std::string_view text) {
  std::vector<Placeholder> out;
  size_t pos = 0;
  while ((pos = text.find('{', pos)) != std::string_view::npos) {
    size_t close = text.find('}', pos + 1);
    if (close == std::string_view::npos) break;
    std::string_view inner = text.substr(pos + 1, close - pos - 1);
    Placeholder p;
    p.begin = pos;
    p.end = close + 1;
    bool matched = true;
    if (inner == "item") {
      p.kind = Placeholder::kItem;
    } else if (inner == "index") {
      p.kind = Placeholder::kIndex;
    } else if (inner.starts_with("item.") && IsIdentifier(inner.substr(5))) {
      p.kind = Placeholder::kItemKey;
      p.key = inner.substr(5);
    } else if (inner.starts_with("params.") && IsIdentifier(inner.substr(7))) {
      p.kind = Placeholder::kParam;
      p.key = inner.substr(7);
    } else {
      matched = false;
    }
    if (matched) {
      out.push_back(std::move(p));
      pos = close + 1;
    } else {
      pos += 1;
    }
  }
  return out;
}

std::string ItemText(const nlohmann::json& item) {
  if (item.is_string()) return item.get<std::string>();
  if (item.is_null()) return "";
  return DumpJson(item);
}

std::string RenderTemplate(std::string_view text, const TemplateValues& values, bool shell_quote) {
  std::string out;
  size_t last = 0;
  for (const Placeholder& p : FindPlaceholders(text)) {
    out.append(text.substr(last, p.begin - last));
    std::string value;
    switch (p.kind) {
      case Placeholder::kParam:
        if (values.params != nullptr) {
          auto it = values.params->find(p.key);
          if (it != values.params->end()) value = it->second;
        }
        break;
      case Placeholder::kItem:
        if (values.item != nullptr) value = ItemText(*values.item);
        break;
      case Placeholder::kItemKey:
        if (values.item != nullptr && values.item->is_object() && values.item->contains(p.key)) {
          value = ItemText((*values.item)[p.key]);
        }
        break;
      case Placeholder::kIndex:
        value = std::to_string(values.index);
        break;
    }
    out += shell_quote ? ShellQuote(value) : value;
    last = p.end;
  }
  out.append(text.substr(last));
  return out;
}

}  // namespace barge
