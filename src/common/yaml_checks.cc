#include "common/yaml_checks.h"

#include "common/strings.h"

namespace barge {
namespace {
constexpr size_t kMaxErrors = 20;
}  // namespace

SourceLocation LocationOf(const YAML::Node& node) {
  YAML::Mark m = node.Mark();
  if (m.is_null()) return {};
  return {m.line + 1, m.column + 1};
}

const char* YamlTypeName(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "a scalar";
    case YAML::NodeType::Null:
      return "empty";
    default:
      return "undefined";
  }
}

void YamlDiagnostics::Error(SourceLocation at, std::string_view reason) {
  if (errors_.size() < kMaxErrors) {
    errors_.push_back(Cat(path_, ":", at.line, ":", at.column, ": ", reason));
  }
}

absl::Status YamlDiagnostics::ToStatus() const {
  return absl::InvalidArgumentError(Join(errors_, "\n"));
}

void ForEachEntry(
    const YAML::Node& map, std::string_view where, const std::set<std::string_view>& allowed,
    YamlDiagnostics& diag,
    const std::function<void(const std::string&, const YAML::Node&, const YAML::Node&)>& fn) {
  std::set<std::string> seen;
  for (auto it = map.begin(); it != map.end(); ++it) {
    const YAML::Node& key = it->first;
    if (!key.IsScalar()) {
      diag.Error(key, Cat(where, ": keys must be strings"));
      continue;
    }
    std::string name = key.Scalar();
    if (!seen.insert(name).second) {
      diag.Error(key, Cat(where, ": duplicate key \"", name, "\""));
      continue;
    }
    if (!allowed.empty() && !allowed.contains(name)) {
      std::vector<std::string_view> names(allowed.begin(), allowed.end());
      diag.Error(key,
                 Cat(where, ": unknown key \"", name, "\" (allowed: ", Join(names, ", "), ")"));
      continue;
    }
    fn(name, key, it->second);
  }
}

bool ExpectScalar(const YAML::Node& node, std::string_view what, YamlDiagnostics& diag) {
  if (node.IsScalar()) return true;
  diag.Error(node, Cat(what, " must be a string, not ", YamlTypeName(node)));
  return false;
}

}  // namespace barge
