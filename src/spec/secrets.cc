// What of a pipeline is secret: its `secrets:` and secret-looking names (spec/pipeline.h).
#include <algorithm>
#include <optional>

#include "common/redact.h"
#include "common/yaml_checks.h"
#include "spec/pipeline.h"
#include "spec/template.h"
#include "yaml-cpp/yaml.h"

namespace barge {

bool Pipeline::IsSecret(std::string_view name) const {
  return IsSecretName(name) || secrets.contains(std::string(name));
}

std::vector<std::string> Pipeline::SecretValues() const {
  std::set<std::string> values;
  for (const auto& [k, v] : params) {
    if (IsSecret(k) && !v.empty()) values.insert(v);
  }
  const std::map<std::string, std::string> param_map = ParamMap();
  for (const Step& step : steps) {
    for (const auto& [k, v] : step.env) {
      if (!IsSecret(k)) continue;
      // A value that depends on the task ({item}, {index}) is masked by name where printed.
      std::vector<Placeholder> found = FindPlaceholders(v);
      if (std::any_of(found.begin(), found.end(),
                      [](const Placeholder& p) { return p.kind != Placeholder::kParam; })) {
        continue;
      }
      std::string value = RenderTemplate(v, {.params = &param_map}, /*shell_quote=*/false);
      if (!value.empty()) values.insert(value);
    }
  }
  return {values.begin(), values.end()};
}

std::set<std::string> DeclaredSecrets(std::string_view source) {
  std::set<std::string> names;
  if (source.find("secrets") == std::string_view::npos) return names;  // the common case, cheaply
  YamlDiagnostics diag("pipeline");
  std::optional<YAML::Node> loaded = LoadYaml(source, diag);
  if (!loaded || !loaded->IsMap()) return names;
  const YAML::Node& root = *loaded;
  const YAML::Node list = root["secrets"];
  if (!list.IsSequence()) return names;
  for (const YAML::Node& n : list) {
    if (n.IsScalar()) names.insert(n.Scalar());
  }
  return names;
}

std::map<std::string, std::string> SecretParams(std::string_view source,
                                                const nlohmann::json& params) {
  std::map<std::string, std::string> out;
  if (!params.is_object()) return out;
  std::set<std::string> declared = DeclaredSecrets(source);
  for (const auto& [k, v] : params.items()) {
    if (IsSecretName(k) || declared.contains(k)) out[k] = v.is_string() ? v.get<std::string>() : "";
  }
  return out;
}

}  // namespace barge
