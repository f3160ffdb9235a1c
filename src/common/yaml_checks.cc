#include "common/yaml_checks.h"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "common/strings.h"
#include "common/text.h"
#include "yaml-cpp/eventhandler.h"

namespace barge {
namespace {
constexpr size_t kMaxErrors = 20;

// Ends the parse at the first thing LoadYaml refuses.
struct Refused {
  YAML::Mark mark;
  std::string reason;
};

// Counts what a document expands to, event by event. Each anchored node's expanded size and
// height are remembered when it ends, so that an alias adds them without being walked.
class ExpansionCounter : public YAML::EventHandler {
 public:
  ExpansionCounter(const YamlLimits& limits, std::string_view text)
      : limits_(limits), text_(text) {}

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override { Leaf(mark, anchor); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                const std::string& value) override {
    if (value.find('\0') != std::string::npos) {
      throw Refused{mark, Cat("\"", ShowBytes(value),
                              "\" holds a NUL byte, which no command, file name or environment "
                              "variable can carry")};
    }
    Leaf(mark, anchor);
  }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    if (++aliases_ > limits_.max_aliases) {
      throw Refused{mark, Cat("more than ", limits_.max_aliases, " aliases")};
    }
    // The parser knows an anchor from where its node starts: an alias inside that node would
    // make the tree a cycle, which anything that walks it follows until the stack overflows.
    auto it = anchors_.find(anchor);
    if (it == anchors_.end() || open_anchors_.contains(anchor)) {
      throw Refused{mark, Cat("alias ", AliasAt(mark), " refers to a node that contains it")};
    }
    Add(mark, it->second);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    Open(mark, anchor);
  }
  void OnSequenceEnd() override { Close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    Open(mark, anchor);
  }
  void OnMapEnd() override { Close(); }

 private:
  struct Extent {
    int64_t nodes = 1;   // the node and everything under it, aliases expanded
    int64_t height = 1;  // levels, itself included
  };
  struct OpenNode {
    YAML::anchor_t anchor;
    int64_t nodes_before;  // nodes_ before it began
    int64_t child_height;
  };

  // Counts a complete node of `extent` at the current level.
  void Add(const YAML::Mark& mark, Extent extent) {
    if (static_cast<int64_t>(open_.size()) + extent.height > limits_.max_depth) {
      throw Refused{mark, Cat("nested deeper than ", limits_.max_depth, " levels")};
    }
    nodes_ += extent.nodes;
    if (nodes_ > limits_.max_nodes) {
      throw Refused{mark, Cat("the document expands to more than ", limits_.max_nodes,
                              " YAML nodes (counting each use of an alias)")};
    }
    if (!open_.empty())
      open_.back().child_height = std::max(open_.back().child_height, extent.height);
  }
  void Leaf(const YAML::Mark& mark, YAML::anchor_t anchor) {
    Add(mark, Extent{});
    if (anchor != YAML::NullAnchor) anchors_[anchor] = Extent{};
  }
  void Open(const YAML::Mark& mark, YAML::anchor_t anchor) {
    Add(mark, Extent{});  // the list or map itself, one level down from here
    open_.push_back({anchor, nodes_ - 1, 0});
    if (anchor != YAML::NullAnchor) open_anchors_.insert(anchor);
  }
  void Close() {
    OpenNode node = open_.back();
    open_.pop_back();
    Extent extent{nodes_ - node.nodes_before, node.child_height + 1};
    if (node.anchor != YAML::NullAnchor) {
      open_anchors_.erase(node.anchor);
      anchors_[node.anchor] = extent;
    }
    if (!open_.empty())
      open_.back().child_height = std::max(open_.back().child_height, extent.height);
  }

  // "*name" as written at `mark`, for messages.
  std::string AliasAt(const YAML::Mark& mark) const {
    if (mark.pos < 0 || static_cast<size_t>(mark.pos) >= text_.size() || text_[mark.pos] != '*') {
      return "this alias";
    }
    std::string_view rest = text_.substr(mark.pos);
    return std::string(rest.substr(0, rest.find_first_of(" \t\r\n,[]{}", 1)));
  }

  const YamlLimits& limits_;
  std::string_view text_;
  int64_t nodes_ = 0;
  int64_t aliases_ = 0;
  std::vector<OpenNode> open_;
  std::map<YAML::anchor_t, Extent> anchors_;  // of the nodes that have ended
  std::set<YAML::anchor_t> open_anchors_;     // of the lists and maps not ended yet
};

SourceLocation LocationOf(const YAML::Mark& mark) { return {mark.line + 1, mark.column + 1}; }

// Where the first byte that is not UTF-8 text (or is NUL) sits in `text`, and what it is; or
// nullopt if there is none.
std::optional<std::pair<SourceLocation, std::string>> FirstNonText(std::string_view text) {
  size_t at = std::min(Utf8ValidPrefix(text), text.find('\0'));
  if (at >= text.size()) return std::nullopt;
  size_t newline = text.substr(0, at).rfind('\n');
  size_t line_start = newline == std::string_view::npos ? 0 : newline + 1;
  SourceLocation where{static_cast<int>(std::count(text.begin(), text.begin() + at, '\n')) + 1,
                       static_cast<int>(at - line_start) + 1};
  if (text[at] == '\0') return std::make_pair(where, std::string("a NUL byte in the text"));
  return std::make_pair(where, Cat("byte ", ShowBytes(text.substr(at, 1)),
                                   " is not valid UTF-8 (barge reads YAML files as UTF-8)"));
}

}  // namespace

SourceLocation LocationOf(const YAML::Node& node) {
  YAML::Mark m = node.Mark();
  if (m.is_null()) return {};
  return LocationOf(m);
}

std::optional<YAML::Node> LoadYaml(std::string_view text, YamlDiagnostics& diag,
                                   const YamlLimits& limits) {
  if (auto bad = FirstNonText(text)) {
    diag.Error(bad->first, bad->second);
    return std::nullopt;
  }
  try {
    std::istringstream in{std::string(text)};
    YAML::Parser parser(in);
    ExpansionCounter counter(limits, text);
    parser.HandleNextDocument(counter);
    return YAML::Load(std::string(text));
  } catch (const Refused& e) {
    diag.Error(LocationOf(e.mark), e.reason);
  } catch (const YAML::ParserException& e) {
    diag.Error(LocationOf(e.mark), Cat("malformed YAML: ", e.msg));
  } catch (const YAML::Exception& e) {
    diag.Error(LocationOf(e.mark), Cat("unreadable YAML: ", e.msg));
  }
  return std::nullopt;
}

nlohmann::json YamlToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return node.Scalar();
    case YAML::NodeType::Sequence: {
      nlohmann::json arr = nlohmann::json::array();
      for (const auto& child : node) arr.push_back(YamlToJson(child));
      return arr;
    }
    case YAML::NodeType::Map: {
      nlohmann::json obj = nlohmann::json::object();
      for (auto it = node.begin(); it != node.end(); ++it) {
        obj[it->first.Scalar()] = YamlToJson(it->second);
      }
      return obj;
    }
    default:
      return nullptr;
  }
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
    // A copy: `it->first` lives in a proxy that dies with the expression (a reference to it
    // dangled; g++ 12's -Wdangling-pointer saw it).
    const YAML::Node key = it->first;
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
