#include "common/labels.h"

#include <sys/utsname.h>

#include "common/strings.h"
#include "nlohmann/json.hpp"

namespace barge {

bool IsValidLabelText(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.' || c == '/';
    if (!ok) return false;
  }
  return true;
}

absl::StatusOr<Labels> ParseLabels(std::string_view text) {
  Labels out;
  if (Trim(text).empty()) return out;
  size_t start = 0;
  for (;;) {
    size_t comma = text.find(',', start);
    std::string_view part = Trim(text.substr(
        start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
    size_t eq = part.find('=');
    if (eq == std::string_view::npos) {
      return absl::InvalidArgumentError(
          Cat("label \"", part, "\" is not key=value (as in arch=arm64,gpu=a10)"));
    }
    std::string key(Trim(part.substr(0, eq))), value(Trim(part.substr(eq + 1)));
    for (const std::string& s : {key, value}) {
      if (!IsValidLabelText(s)) {
        return absl::InvalidArgumentError(
            Cat("label \"", part,
                "\": keys and values are 1-63 letters, digits, '_', '-', '.' or '/'"));
      }
    }
    if (!out.emplace(key, value).second) {
      return absl::InvalidArgumentError(Cat("label \"", key, "\" is given twice"));
    }
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  if (out.size() > kMaxLabels) {
    return absl::InvalidArgumentError(Cat(out.size(), " labels; at most ", kMaxLabels));
  }
  return out;
}

std::string CanonicalLabels(const Labels& labels) {
  std::vector<std::string> parts;
  for (const auto& [k, v] : labels) parts.push_back(Cat(k, "=", v));
  return Join(parts, ",");
}

std::vector<std::string> LabelSubsets(const Labels& labels) {
  std::vector<std::pair<std::string, std::string>> all(labels.begin(), labels.end());
  if (all.size() > kMaxLabels) all.resize(kMaxLabels);
  std::vector<std::string> out;
  for (uint32_t mask = 0; mask < (1u << all.size()); ++mask) {
    Labels subset;
    for (size_t i = 0; i < all.size(); ++i) {
      if (mask & (1u << i)) subset.insert(all[i]);
    }
    out.push_back(CanonicalLabels(subset));
  }
  return out;
}

Labels MachineLabels() {
  struct utsname u {};
  std::string arch = ::uname(&u) == 0 ? u.machine : "unknown";
  if (arch == "x86_64") arch = "amd64";
  if (arch == "aarch64") arch = "arm64";
  return {{"arch", arch}, {"os", "linux"}};
}

void Merge(Labels& base, const Labels& extra) {
  for (const auto& [k, v] : extra) base[k] = v;
}

Labels LabelsFromJson(std::string_view json) {
  Labels labels;
  nlohmann::json j = nlohmann::json::parse(json, nullptr, false);
  if (!j.is_object()) return labels;
  for (const auto& [k, v] : j.items()) labels[k] = v.is_string() ? v.get<std::string>() : "";
  return labels;
}

}  // namespace barge
