// Validating hand-written YAML files (pipelines, the autoscaler's config) with errors that
// name file:line:col and the reason, collected so that one run reports every mistake.
//
//   YamlDiagnostics diag(path);
//   std::optional<YAML::Node> root = LoadYaml(text, diag);
//   if (!root) return diag.ToStatus();
//   ForEachEntry(*root, "worker", {"cpu", "memory"}, diag, [&](key, key_node, value) {...});
//   if (!diag.ok()) return diag.ToStatus();
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "common/source_location.h"
#include "nlohmann/json.hpp"
#include "yaml-cpp/yaml.h"

namespace barge {

// Where `node` starts, or {0, 0} if unknown.
SourceLocation LocationOf(const YAML::Node& node);

// A node as JSON: scalars as strings, lists as arrays, maps as objects, anything else null.
nlohmann::json YamlToJson(const YAML::Node& node);

// "a map", "a list", "a scalar", "empty": for "must be X, not Y" messages.
const char* YamlTypeName(const YAML::Node& node);

// Collects "path:line:col: reason" errors (the first 20).
class YamlDiagnostics {
 public:
  explicit YamlDiagnostics(std::string path) : path_(std::move(path)) {}

  void Error(SourceLocation at, std::string_view reason);
  void Error(const YAML::Node& node, std::string_view reason) { Error(LocationOf(node), reason); }
  bool ok() const { return errors_.empty(); }
  // InvalidArgument with every error, one per line.
  absl::Status ToStatus() const;

 private:
  std::string path_;
  std::vector<std::string> errors_;
};

// How large a YAML document may be once its aliases are expanded. yaml-cpp shares an aliased
// node rather than copying it, but anything that walks or converts the tree visits it once per
// reference: ten levels of anchors with nine references each are 600 bytes of text and 9^10
// nodes to walk.
struct YamlLimits {
  int max_depth = 64;            // nesting of lists and maps, counted through aliases
  int64_t max_nodes = 250'000;   // scalars, lists and maps (keys included), aliases expanded
  int64_t max_aliases = 10'000;  // `*name` references in the text
};

// Parses the first document of `text`, refusing, with a located error in `diag` and nullopt:
// text that is not UTF-8 or holds a NUL byte; malformed YAML; a scalar holding a NUL byte (as the
// escapes "\0", "\x00" and "\u0000" write it), which no command, name or environment variable
// can carry; an alias inside the node its anchor names (a cycle); and a document beyond `limits`.
// The limits are checked on the parser's events, in time and memory linear in the text, before any
// tree is built.
std::optional<YAML::Node> LoadYaml(std::string_view text, YamlDiagnostics& diag,
                                   const YamlLimits& limits = {});

// Calls `fn(key, key_node, value)` for each entry of `map`, reporting keys that are not strings,
// duplicates, and keys outside `allowed` (unless it is empty) instead.
void ForEachEntry(
    const YAML::Node& map, std::string_view where, const std::set<std::string_view>& allowed,
    YamlDiagnostics& diag,
    const std::function<void(const std::string&, const YAML::Node&, const YAML::Node&)>& fn);

// Whether `node` is a scalar; reports "`what` must be a string, not ..." if not.
bool ExpectScalar(const YAML::Node& node, std::string_view what, YamlDiagnostics& diag);

}  // namespace barge
