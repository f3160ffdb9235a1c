// Pipeline YAML -> Pipeline, with every error located at file:line:col.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <optional>
#include <regex>
#include <set>

#include "common/fs.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/text.h"
#include "common/units.h"
#include "common/yaml_checks.h"
#include "objstore/object_store.h"
#include "schedule/cron.h"
#include "spec/pipeline.h"
#include "spec/template.h"
#include "yaml-cpp/yaml.h"

namespace barge {
namespace {

constexpr int64_t kMaxRange = 100'000'000;
// A literal foreach list is held in memory by every process that plans or runs the step; larger
// fan-outs are range(N) (never materialised) or files("glob").
constexpr size_t kMaxForeachItems = 100'000;

bool IsValidName(std::string_view name) {
  static const std::regex kName("[A-Za-z0-9_][A-Za-z0-9_-]*");
  return name.size() <= 128 && std::regex_match(name.begin(), name.end(), kName);
}

bool IsEnvName(std::string_view name) {
  static const std::regex kEnv("[A-Za-z_][A-Za-z0-9_]*");
  return std::regex_match(name.begin(), name.end(), kEnv);
}

std::optional<int64_t> ParseInteger(const std::string& text) {
  static const std::regex kInt("-?[0-9]+");
  if (!std::regex_match(text, kInt) || text.size() > 18) return std::nullopt;
  return std::stoll(text);
}

class Parser {
 public:
  Parser(const std::string& path, const ParamOverrides& overrides)
      : diag_(path), overrides_(overrides) {}

  absl::StatusOr<Pipeline> Parse(std::string_view text, const std::string& path) {
    pipeline_.path = AbsolutePath(path);
    pipeline_.dir = std::filesystem::path(pipeline_.path).parent_path().string();
    pipeline_.source = std::string(text);
    std::optional<YAML::Node> loaded = LoadYaml(text, diag_);
    if (!loaded) return diag_.ToStatus();
    const YAML::Node& root = *loaded;
    if (!root.IsMap()) {
      diag_.Error(root.IsDefined() && !root.IsNull() ? LocationOf(root) : SourceLocation{1, 1},
                  "a pipeline file must be a map with name, params and steps");
      return diag_.ToStatus();
    }
    ParseTop(root);
    if (diag_.ok()) CheckGraph();
    if (!diag_.ok()) return diag_.ToStatus();
    return std::move(pipeline_);
  }

 private:
  // schedule: "0 2 * * *" | {cron, timezone, catchup, overlap}
  void ParseSchedule(const YAML::Node& node) {
    PipelineSchedule& sched = pipeline_.schedule;
    sched.location = LocationOf(node);
    if (node.IsScalar()) {
      sched.cron = node.Scalar();
    } else if (node.IsMap()) {
      ForEachEntry(node, "schedule", {"cron", "timezone", "catchup", "overlap"}, diag_,
                   [&](const std::string& key, const YAML::Node& k, const YAML::Node& v) {
                     if (!ExpectScalar(v, key, diag_)) return;
                     if (key == "cron") sched.cron = v.Scalar();
                     if (key == "timezone") sched.time_zone = v.Scalar();
                     if (key == "catchup") sched.catchup = v.Scalar();
                     if (key == "overlap") sched.overlap = v.Scalar();
                     if (key == "catchup" && !IsScheduleCatchup(v.Scalar())) {
                       diag_.Error(v, "catchup: expected latest, all or none");
                     }
                     if (key == "overlap" && !IsScheduleOverlap(v.Scalar())) {
                       diag_.Error(v, "overlap: expected skip, queue or allow");
                     }
                   });
    } else {
      diag_.Error(node, "schedule: expected a cron expression or a map with cron and timezone");
      return;
    }
    if (sched.cron.empty()) {
      diag_.Error(node, "schedule: missing required key \"cron\"");
      return;
    }
    absl::StatusOr<Cron> cron = Cron::Parse(sched.cron, sched.time_zone);
    if (!cron.ok()) diag_.Error(node, Cat("schedule: ", cron.status().message()));
  }

  void ParseTop(const YAML::Node& root) {
    std::optional<YAML::Node> name_node, steps_node, secrets_node;
    ForEachEntry(root, "pipeline",
                 {"name", "description", "params", "secrets", "steps", "schedule"}, diag_,
                 [&](const std::string& key, const YAML::Node& k, const YAML::Node& v) {
                   if (key == "name") name_node.emplace(v);
                   if (key == "secrets") secrets_node.emplace(v);
                   if (key == "schedule") ParseSchedule(v);
                   if (key == "params") ParseParams(v);
                   if (key == "steps") steps_node.emplace(v);
                   if (key == "description") ExpectScalar(v, "description", diag_);
                 });
    if (!name_node) {
      diag_.Error(root, "pipeline: missing required key \"name\"");
    } else if (ExpectScalar(*name_node, "name", diag_)) {
      pipeline_.name = name_node->Scalar();
      if (!IsValidName(pipeline_.name)) {
        diag_.Error(*name_node, "name: use letters, digits, '_' and '-' only");
      }
    }
    for (const auto& [key, value] : overrides_) {
      if (!param_map_.contains(key)) {
        diag_.Error(SourceLocation{1, 1},
                    Cat("--param ", ShowBytes(key), ": the pipeline declares no param \"",
                        ShowBytes(key), "\" (declare it under params:)"));
      } else if (absl::Status s = CheckCarriable(Cat("--param ", key, ": value"), value); !s.ok()) {
        diag_.Error(SourceLocation{1, 1}, ToString(s.message()));
      }
    }
    for (auto& [key, value] : pipeline_.params) {
      if (auto it = overrides_.find(key); it != overrides_.end()) value = it->second;
      param_map_[key] = value;
    }
    if (!steps_node) {
      diag_.Error(root, "pipeline: missing required key \"steps\"");
      return;
    }
    if (!steps_node->IsSequence() || steps_node->size() == 0) {
      diag_.Error(*steps_node, "steps must be a non-empty list of steps");
      return;
    }
    for (const auto& node : *steps_node) ParseStep(node);
    if (secrets_node) ParseSecrets(*secrets_node);
  }

  // secrets: [NAME, ...]: params and step env variables whose values barge never shows.
  void ParseSecrets(const YAML::Node& node) {
    if (!node.IsSequence()) {
      diag_.Error(node,
                  Cat("secrets must be a list of param and env names, not ", YamlTypeName(node)));
      return;
    }
    for (const auto& n : node) {
      if (!ExpectScalar(n, "secrets", diag_)) continue;
      const std::string& name = n.Scalar();
      bool known = param_map_.contains(name);
      for (const Step& step : pipeline_.steps) {
        for (const auto& [k, v] : step.env) known = known || k == name;
      }
      if (!known) {
        diag_.Error(n, Cat("secrets: \"", ShowBytes(name),
                           "\" names no param and no env variable of a step"));
        continue;
      }
      pipeline_.secrets.insert(name);
    }
  }

  void ParseParams(const YAML::Node& node) {
    if (node.IsNull()) return;
    if (!node.IsMap()) {
      diag_.Error(node, Cat("params must be a map, not ", YamlTypeName(node)));
      return;
    }
    ForEachEntry(node, "params", {}, diag_,
                 [&](const std::string& key, const YAML::Node& k, const YAML::Node& v) {
                   if (!IsEnvName(key)) {
                     diag_.Error(k, Cat("param \"", key, "\": use letters, digits and '_' only"));
                     return;
                   }
                   if (!v.IsScalar()) {
                     diag_.Error(
                         v, Cat("param \"", key, "\" must be a scalar, not ", YamlTypeName(v)));
                     return;
                   }
                   pipeline_.params.emplace_back(key, v.Scalar());
                   param_map_[key] = v.Scalar();
                 });
  }

  // Checks placeholders in a template against params and the step's items.
  void CheckTemplate(const YAML::Node& at, std::string_view text, const Step& step) {
    for (const Placeholder& p : FindPlaceholders(text)) {
      switch (p.kind) {
        case Placeholder::kParam:
          if (!param_map_.contains(p.key)) {
            diag_.Error(
                at, Cat("step \"", step.name, "\": {params.", p.key, "} names no declared param"));
          }
          break;
        case Placeholder::kItem:
          if (step.foreach.kind == ForeachKind::kNone ||
              step.foreach.kind == ForeachKind::kOutputs) {
            diag_.Error(at, Cat("step \"", step.name,
                                "\": {item} needs foreach: range(N), a list or files(...)"));
          }
          break;
        case Placeholder::kItemKey:
          if (step.foreach.kind != ForeachKind::kList) {
            diag_.Error(at, Cat("step \"", step.name, "\": {item.", p.key,
                                "} needs foreach: a list of maps"));
            break;
          }
          for (const auto& item : step.foreach.items) {
            if (!item.is_object() || !item.contains(p.key)) {
              diag_.Error(at, Cat("step \"", step.name, "\": {item.", p.key, "}: foreach item ",
                                  ItemText(item), " has no key \"", p.key, "\""));
              break;
            }
          }
          break;
        case Placeholder::kIndex:
          break;
      }
    }
  }

  std::string SubstituteParams(std::string_view text) {
    TemplateValues values{&param_map_, nullptr, 0};
    return RenderTemplate(text, values, /*shell_quote=*/false);
  }

  void ParseForeach(const YAML::Node& node, Step& step) {
    step.foreach.location = LocationOf(node);
    std::string where = Cat("step \"", step.name, "\": foreach");
    if (node.IsSequence()) {
      step.foreach.kind = ForeachKind::kList;
      if (node.size() > kMaxForeachItems) {
        diag_.Error(node, Cat(where, ": ", node.size(), " items; at most ", kMaxForeachItems,
                              " (use range(N) or files())"));
        return;
      }
      for (const auto& item : node) {
        if (!item.IsScalar() && !item.IsMap()) {
          diag_.Error(item,
                      Cat(where, ": list items must be scalars or maps, not ", YamlTypeName(item)));
          continue;
        }
        step.foreach.items.push_back(YamlToJson(item));
      }
      return;
    }
    if (!node.IsScalar()) {
      diag_.Error(node, Cat(where,
                            " must be range(N), files(\"glob\"), outputs(step), buckets(step) "
                            "or a list, not ",
                            YamlTypeName(node)));
      return;
    }
    ParseSourceExpr(node, where, step.foreach);
  }

  // Parses range(N), files("glob"), outputs(step) or buckets(step) into `out`.
  void ParseSourceExpr(const YAML::Node& node, const std::string& where, Foreach& out) {
    out.location = LocationOf(node);
    for (const Placeholder& p : FindPlaceholders(node.Scalar())) {
      if (p.kind != Placeholder::kParam || !param_map_.contains(p.key)) {
        diag_.Error(node, Cat(where, ": only declared {params.NAME} may appear here"));
        return;
      }
    }
    std::string expr = SubstituteParams(node.Scalar());
    std::smatch m;
    static const std::regex kRange(R"(\s*range\(\s*([^)]*?)\s*\)\s*)");
    static const std::regex kFiles(R"re(\s*files\(\s*"(.*)"\s*\)\s*)re");
    static const std::regex kStepRef(R"(\s*(outputs|buckets)\(\s*([^)]*?)\s*\)\s*)");
    if (std::regex_match(expr, m, kRange)) {
      out.kind = ForeachKind::kRange;
      std::optional<int64_t> n = ParseInteger(m[1].str());
      if (!n || *n < 0 || *n > kMaxRange) {
        diag_.Error(node, Cat(where, ": range(", m[1].str(),
                              "): expected a whole number from 0 to ", kMaxRange));
        return;
      }
      out.count = *n;
    } else if (std::regex_match(expr, m, kFiles)) {
      out.kind = ForeachKind::kFiles;
      std::string pattern = m[1].str();
      if (pattern.empty()) {
        diag_.Error(node, Cat(where, ": files(\"\") needs a glob"));
        return;
      }
      out.pattern = pattern.starts_with("/") || IsObjectStoreUrl(pattern)
                        ? pattern
                        : (std::filesystem::path(pipeline_.dir) / pattern).string();
    } else if (std::regex_match(expr, m, kStepRef)) {
      out.kind = m[1].str() == "outputs" ? ForeachKind::kOutputs : ForeachKind::kBuckets;
      out.step = m[2].str();
      if (!IsValidName(out.step)) {
        diag_.Error(node, Cat(where, ": ", m[1].str(), "(", out.step, "): expected a step name"));
      }
    } else {
      diag_.Error(node, Cat(where, ": \"", expr,
                            "\" is not range(N), files(\"glob\"), outputs(step), buckets(step) "
                            "or a list"));
    }
  }

  void ParseSql(const YAML::Node& node, Step& step) {
    std::string where = Cat("step \"", step.name, "\": sql");
    if (!ExpectScalar(node, where, diag_)) return;
    step.sql = node.Scalar();
    step.sql_location = LocationOf(node);
    if (Trim(step.sql).empty()) diag_.Error(node, Cat(where, " is empty"));
  }

  void ParseInputs(const YAML::Node& node, Step& step) {
    std::string where = Cat("step \"", step.name, "\": inputs");
    if (!node.IsMap()) {
      diag_.Error(node,
                  Cat(where, " must be a map of view name: outputs(step) or files(\"glob\")"));
      return;
    }
    ForEachEntry(
        node, where, {}, diag_,
        [&](const std::string& name, const YAML::Node& k, const YAML::Node& v) {
          if (!IsEnvName(name) || name == "input") {
            diag_.Error(k, Cat(where, ": \"", name,
                               "\" is not a usable view name (letters, digits, '_'; "
                               "not \"input\")"));
            return;
          }
          if (!ExpectScalar(v, Cat(where, ".", name), diag_)) return;
          NamedInput in{.name = name};
          ParseSourceExpr(v, Cat(where, ".", name), in.source);
          if (in.source.kind != ForeachKind::kOutputs && in.source.kind != ForeachKind::kFiles &&
              in.source.kind != ForeachKind::kNone) {
            diag_.Error(
                v, Cat(where, ".", name, ": a named input is outputs(step) or files(\"glob\")"));
            return;
          }
          step.inputs.push_back(std::move(in));
        });
  }

  void ParseRead(const YAML::Node& node, Step& step) {
    std::string where = Cat("step \"", step.name, "\": read");
    if (!node.IsMap()) {
      diag_.Error(node, Cat(where, " must be a map like {format: csv, delimiter: \";\"}"));
      return;
    }
    ForEachEntry(node, where, {"format", "delimiter", "header"}, diag_,
                 [&](const std::string& key, const YAML::Node& k, const YAML::Node& v) {
                   if (!ExpectScalar(v, Cat(where, ".", key), diag_)) return;
                   const std::string& text = v.Scalar();
                   if (key == "format") {
                     static const std::set<std::string> kFormats = {"csv", "tsv", "parquet", "json",
                                                                    "ndjson"};
                     if (!kFormats.contains(text)) {
                       diag_.Error(v, Cat(where, ".format: \"", text,
                                          "\" is not csv, tsv, parquet, json or ndjson"));
                     }
                     step.read.format = text;
                   } else if (key == "delimiter") {
                     if (text.size() != 1) {
                       diag_.Error(v, Cat(where, ".delimiter must be one character"));
                     }
                     step.read.delimiter = text;
                   } else if (text == "true" || text == "false") {
                     step.read.header = text == "true" ? 1 : 0;
                   } else {
                     diag_.Error(v, Cat(where, ".header must be true or false"));
                   }
                 });
  }

  void ParseOutput(const YAML::Node& node, Step& step) {
    std::string where = Cat("step \"", step.name, "\": output");
    if (!node.IsMap()) {
      diag_.Error(node, Cat(where, " must be a map like {format: parquet, compression: zstd}"));
      return;
    }
    bool compression_given = false;
    ForEachEntry(
        node, where, {"format", "compression"}, diag_,
        [&](const std::string& key, const YAML::Node& k, const YAML::Node& v) {
          if (!ExpectScalar(v, Cat(where, ".", key), diag_)) return;
          const std::string& text = v.Scalar();
          if (key == "format") {
            if (text != "parquet" && text != "csv" && text != "json") {
              diag_.Error(v, Cat(where, ".format: \"", text, "\" is not parquet, csv or json"));
            }
            step.output.format = text;
          } else {
            if (text != "zstd" && text != "snappy" && text != "none") {
              diag_.Error(v,
                          Cat(where, ".compression: \"", text, "\" is not zstd, snappy or none"));
            }
            step.output.compression = text;
            compression_given = true;
          }
        });
    if (step.output.format != "parquet") {
      if (compression_given && step.output.compression != "none") {
        diag_.Error(node, Cat(where, ": compression applies to parquet only"));
      }
      step.output.compression = "none";
    }
  }

  void ParsePartition(const YAML::Node& node, Step& step) {
    std::string where = Cat("step \"", step.name, "\": partition");
    if (!node.IsMap()) {
      diag_.Error(node, Cat(where, " must be a map like {by: user_id, buckets: 8}"));
      return;
    }
    ForEachEntry(node, where, {"by", "buckets"}, diag_,
                 [&](const std::string& key, const YAML::Node& k, const YAML::Node& v) {
                   if (!ExpectScalar(v, Cat(where, ".", key), diag_)) return;
                   if (key == "by") {
                     step.partition.by = v.Scalar();
                     return;
                   }
                   std::string text = SubstituteParams(v.Scalar());
                   std::optional<int64_t> n = ParseInteger(text);
                   if (!n || *n < 1 || *n > 100'000) {
                     diag_.Error(v, Cat(where, ".buckets: \"", text,
                                        "\" is not a whole number from 1 to 100000"));
                     return;
                   }
                   step.partition.buckets = *n;
                 });
    if (step.partition.by.empty()) diag_.Error(node, Cat(where, ": missing required key \"by\""));
    if (step.partition.buckets == 0) {
      diag_.Error(node, Cat(where, ": missing required key \"buckets\""));
    }
  }

  void ParseRun(const YAML::Node& node, Step& step, const YAML::Node& key) {
    std::string where = Cat("step \"", step.name, "\": run");
    if (node.IsScalar()) {
      step.shell = true;
      step.command = node.Scalar();
      if (step.command.find_first_not_of(" \t\n") == std::string::npos) {
        diag_.Error(node, Cat(where, " is empty"));
      }
    } else if (node.IsSequence()) {
      step.shell = false;
      for (const auto& arg : node) {
        if (!arg.IsScalar()) {
          diag_.Error(arg, Cat(where, ": each argument must be a string, not ", YamlTypeName(arg)));
          continue;
        }
        step.argv.push_back(arg.Scalar());
      }
      if (node.size() == 0) diag_.Error(node, Cat(where, " is an empty list"));
    } else {
      diag_.Error(node.IsNull() ? key : node,
                  Cat(where, " must be a shell command (a string) or an argv list"));
    }
  }

  void ParseResources(const YAML::Node& node, Step& step) {
    std::string where = Cat("step \"", step.name, "\": resources");
    if (!node.IsMap()) {
      diag_.Error(node, Cat(where, " must be a map like {cpu: 1, memory: 2GiB}"));
      return;
    }
    ForEachEntry(
        node, where, {"cpu", "memory"}, diag_,
        [&](const std::string& key, const YAML::Node& k, const YAML::Node& v) {
          if (!ExpectScalar(v, Cat(where, ".", key), diag_)) return;
          if (key == "cpu") {
            char* end = nullptr;
            double cpu = std::strtod(v.Scalar().c_str(), &end);
            if (end != v.Scalar().c_str() + v.Scalar().size() || !(cpu > 0) || cpu > 1024) {
              diag_.Error(v, Cat(where, ".cpu: \"", v.Scalar(), "\" is not a number of cores > 0"));
              return;
            }
            step.cpu = cpu;
          } else {
            absl::StatusOr<int64_t> bytes = ParseSizeBytes(v.Scalar());
            if (!bytes.ok()) {
              diag_.Error(v, Cat(where, ".memory: ", bytes.status().message()));
              return;
            }
            step.memory_bytes = *bytes;
          }
        });
  }

  void ParseStepLabels(const YAML::Node& node, Step& step) {
    std::string where = Cat("step \"", step.name, "\": labels");
    if (!node.IsMap()) {
      diag_.Error(node, Cat(where, " must be a map like {arch: arm64}"));
      return;
    }
    ForEachEntry(node, where, {}, diag_,
                 [&](const std::string& key, const YAML::Node& k, const YAML::Node& v) {
                   if (!IsValidLabelText(key)) {
                     diag_.Error(k, Cat(where, ": \"", key,
                                        "\" is not a label name (1-63 letters, digits, '_', "
                                        "'-', '.' or '/')"));
                   } else if (ExpectScalar(v, Cat(where, ".", key), diag_)) {
                     if (!IsValidLabelText(v.Scalar())) {
                       diag_.Error(v, Cat(where, ".", key, ": \"", v.Scalar(),
                                          "\" is not a label value (1-63 letters, digits, '_', "
                                          "'-', '.' or '/')"));
                     } else {
                       step.labels[key] = v.Scalar();
                     }
                   }
                 });
    if (step.labels.size() > kMaxLabels) {
      diag_.Error(node, Cat(where, ": at most ", kMaxLabels, " labels"));
    }
  }

  // image: an OCI image reference ("python:3.12-slim", "ghcr.io/acme/score@sha256:..."), used as
  // written: the runtime is the judge of its syntax, barge only refuses what would read as an
  // option or as several words.
  void ParseImage(const YAML::Node& v, const std::string& where, Step& step) {
    if (!ExpectScalar(v, Cat(where, ": image"), diag_)) return;
    const std::string& image = v.Scalar();
    step.image_location = LocationOf(v);
    if (image.empty() || image.starts_with("-") ||
        image.find_first_of(" \t\r\n") != std::string::npos || image.size() > 255) {
      diag_.Error(v, Cat(where, ": image \"", ShowBytes(image),
                         "\" is not an image reference (such as python:3.12-slim)"));
      return;
    }
    step.image = image;
  }

  std::optional<int64_t> ParseDurationNode(const YAML::Node& v, std::string_view where) {
    if (!ExpectScalar(v, where, diag_)) return std::nullopt;
    absl::StatusOr<int64_t> ms = ParseDurationMs(v.Scalar());
    if (!ms.ok()) {
      diag_.Error(v, Cat(where, ": ", ms.status().message()));
      return std::nullopt;
    }
    return *ms;
  }

  // What a step's keys leave for after all of them are read: nodes parsed in an order of their
  // own, and the template texts to check once the step is complete.
  struct StepNodes {
    std::optional<YAML::Node> run, run_key, foreach, inputs, partition;
    std::vector<std::pair<YAML::Node, std::string>> templates;
  };

  void ParseNeeds(const YAML::Node& v, const std::string& where, Step& step) {
    if (v.IsScalar()) {
      step.needs.push_back(v.Scalar());
    } else if (v.IsSequence()) {
      for (const auto& n : v) {
        if (ExpectScalar(n, Cat(where, ": each of needs"), diag_)) step.needs.push_back(n.Scalar());
      }
    } else {
      diag_.Error(v, Cat(where, ": needs must be a step name or a list of them"));
    }
    needs_nodes_.emplace(step.name, v);
  }

  void ParseEnv(const YAML::Node& v, const std::string& where, Step& step, StepNodes& later) {
    if (!v.IsMap()) {
      diag_.Error(v, Cat(where, ": env must be a map of NAME: value"));
      return;
    }
    ForEachEntry(v, Cat(where, ": env"), {}, diag_,
                 [&](const std::string& name, const YAML::Node& ek, const YAML::Node& ev) {
                   if (!IsEnvName(name)) {
                     diag_.Error(
                         ek, Cat(where, ": env name \"", name, "\" is not a valid variable name"));
                   } else if (name.starts_with("BARGE_")) {
                     diag_.Error(ek, Cat(where, ": env name \"", name, "\" is reserved for barge"));
                   } else if (ExpectScalar(ev, Cat(where, ": env ", name), diag_)) {
                     step.env.emplace_back(name, ev.Scalar());
                     later.templates.emplace_back(ev, ev.Scalar());
                   }
                 });
  }

  // retries, retry_delay, queue and timeout: how the step's tasks are scheduled and retried.
  void ParseScheduling(const std::string& key, const YAML::Node& v, const std::string& where,
                       Step& step) {
    if (key == "retries") {
      std::optional<int64_t> n;
      if (v.IsScalar()) n = ParseInteger(v.Scalar());
      if (!n || *n < 0 || *n > 100) {
        diag_.Error(v, Cat(where, ": retries must be a whole number from 0 to 100"));
        return;
      }
      step.retries = static_cast<int>(*n);
    } else if (key == "retry_delay") {
      if (auto ms = ParseDurationNode(v, Cat(where, ": retry_delay"))) step.retry_delay_ms = *ms;
    } else if (key == "queue") {
      if (!ExpectScalar(v, Cat(where, ": queue"), diag_)) return;
      if (!IsValidLabelText(v.Scalar())) {
        diag_.Error(v, Cat(where, ": queue \"", v.Scalar(),
                           "\": use 1-63 letters, digits, '_', '-', '.' or '/'"));
        return;
      }
      step.queue = v.Scalar();
    } else if (key == "timeout") {
      if (auto ms = ParseDurationNode(v, Cat(where, ": timeout"))) {
        if (*ms <= 0) {
          diag_.Error(v, Cat(where, ": timeout must be positive"));
        } else {
          step.timeout_ms = *ms;
        }
      }
    }
  }

  // One key of a step: parsed now, or kept in `later`.
  void ParseStepKey(const std::string& key, const YAML::Node& k, const YAML::Node& v,
                    const std::string& where, Step& step, StepNodes& later) {
    if (key == "name") {
      if (ExpectScalar(v, "name", diag_) && !IsValidName(step.name)) {
        diag_.Error(v, Cat("step name \"", step.name, "\": use letters, digits, '_' and '-' only"));
      }
    } else if (key == "description") {
      ExpectScalar(v, Cat(where, ": description"), diag_);
    } else if (key == "needs") {
      ParseNeeds(v, where, step);
    } else if (key == "foreach") {
      later.foreach.emplace(v);
    } else if (key == "run") {
      later.run.emplace(v);
      later.run_key.emplace(k);
    } else if (key == "sql") {
      ParseSql(v, step);
      if (v.IsScalar()) later.templates.emplace_back(v, v.Scalar());
    } else if (key == "inputs") {
      later.inputs.emplace(v);
    } else if (key == "read") {
      ParseRead(v, step);
    } else if (key == "output") {
      ParseOutput(v, step);
    } else if (key == "partition") {
      later.partition.emplace(v);
    } else if (key == "env") {
      ParseEnv(v, where, step, later);
    } else if (key == "resources") {
      ParseResources(v, step);
    } else if (key == "labels") {
      ParseStepLabels(v, step);
    } else if (key == "image") {
      ParseImage(v, where, step);
    } else {
      ParseScheduling(key, v, where, step);
    }
  }

  static void AddNeed(Step& step, const std::string& name) {
    if (std::find(step.needs.begin(), step.needs.end(), name) == step.needs.end()) {
      step.needs.push_back(name);
    }
  }

  // The fan-out and inputs, with the needs they imply: outputs(x) and buckets(x) need x.
  void ParseSources(Step& step, const StepNodes& later) {
    if (later.foreach) ParseForeach(*later.foreach, step);
    if (step.foreach.kind == ForeachKind::kOutputs) AddNeed(step, step.foreach.step);
    if (later.inputs) ParseInputs(*later.inputs, step);
    if (later.partition) ParsePartition(*later.partition, step);
    for (const NamedInput& in : step.inputs) {
      if (in.source.kind == ForeachKind::kOutputs) AddNeed(step, in.source.step);
    }
    if (step.foreach.kind == ForeachKind::kBuckets) AddNeed(step, step.foreach.step);
  }

  // What the step runs: a command (run) or a query (sql), exactly one of them.
  void ParseWhatRuns(const YAML::Node& node, const std::string& where, Step& step,
                     StepNodes& later) {
    if (!step.is_sql()) {
      for (const char* key : {"inputs", "read", "output", "partition"}) {
        if (node[key]) diag_.Error(node[key], Cat(where, ": ", key, " applies to sql steps only"));
      }
    }
    if (step.is_sql() && node["image"]) {
      diag_.Error(node["image"], Cat(where,
                                     ": image applies to run steps only (a sql step runs "
                                     "in barge itself)"));
      step.image.clear();
    }
    if (!step.image.empty() && !step.labels.contains("container")) {
      // Only a worker with a container runtime can run it (worker/worker.h: the label is the
      // runtime it found), podman unless the step names another.
      step.labels["container"] = "podman";
    }
    if (later.run && step.is_sql()) {
      diag_.Error(*later.run_key, Cat(where, ": a step has either run or sql, not both"));
    } else if (!later.run && !step.is_sql()) {
      diag_.Error(node, Cat(where, ": missing required key \"run\" (or \"sql\")"));
    } else if (later.run) {
      ParseRun(*later.run, step, *later.run_key);
      if (step.shell) {
        later.templates.emplace_back(*later.run, step.command);
      } else {
        size_t i = 0;
        for (const auto& arg : *later.run) {
          if (i < step.argv.size()) later.templates.emplace_back(arg, step.argv[i++]);
        }
      }
    }
  }

  void ParseStep(const YAML::Node& node) {
    if (!node.IsMap()) {
      diag_.Error(node, Cat("each step must be a map, not ", YamlTypeName(node)));
      return;
    }
    Step step;
    step.location = LocationOf(node);
    if (node["name"] && node["name"].IsScalar()) step.name = node["name"].Scalar();
    std::string where = step.name.empty() ? "step" : Cat("step \"", step.name, "\"");
    StepNodes later;
    ForEachEntry(node, where,
                 {"name", "description", "needs", "foreach", "run", "sql", "inputs", "read",
                  "output", "partition", "env", "resources", "retries", "retry_delay", "timeout",
                  "queue", "labels", "image"},
                 diag_, [&](const std::string& key, const YAML::Node& k, const YAML::Node& v) {
                   ParseStepKey(key, k, v, where, step, later);
                 });
    if (step.name.empty()) diag_.Error(node, "step: missing required key \"name\"");
    ParseSources(step, later);
    ParseWhatRuns(node, where, step, later);
    for (const auto& [at, text] : later.templates) CheckTemplate(at, text, step);
    pipeline_.steps.push_back(std::move(step));
  }

  void CheckGraph() {
    std::map<std::string, const Step*> by_name;
    for (const Step& s : pipeline_.steps) {
      if (!by_name.emplace(s.name, &s).second) {
        diag_.Error(s.location, Cat("duplicate step name \"", s.name, "\""));
      }
    }
    for (const Step& s : pipeline_.steps) {
      for (const std::string& need : s.needs) {
        if (need == s.name) {
          diag_.Error(s.location, Cat("step \"", s.name, "\" needs itself"));
        } else if (!by_name.contains(need)) {
          SourceLocation at = s.location;
          if (auto it = needs_nodes_.find(s.name); it != needs_nodes_.end()) {
            at = LocationOf(it->second);
          }
          if ((s.foreach.kind == ForeachKind::kOutputs ||
               s.foreach.kind == ForeachKind::kBuckets) &&
              s.foreach.step == need) {
            at = s.foreach.location;
          }
          diag_.Error(at, Cat("step \"", s.name, "\" needs \"", need,
                              "\", which is not a step of this pipeline"));
        }
      }
    }
    for (const Step& s : pipeline_.steps) {
      if (s.foreach.kind != ForeachKind::kBuckets) continue;
      auto up = by_name.find(s.foreach.step);
      if (up != by_name.end() && up->second->partition.buckets == 0) {
        diag_.Error(s.foreach.location,
                    Cat("step \"", s.name, "\": buckets(", s.foreach.step, "): step \"",
                        s.foreach.step, "\" has no partition: {by, buckets}"));
      }
    }
    if (!diag_.ok()) return;
    // Depth-first search for a cycle; report it once, as a path.
    std::map<std::string, int> color;  // 0 white, 1 on stack, 2 done
    std::vector<std::string> stack;
    std::function<bool(const Step&)> visit = [&](const Step& s) -> bool {
      color[s.name] = 1;
      stack.push_back(s.name);
      for (const std::string& need : s.needs) {
        if (color[need] == 1) {
          auto from = std::find(stack.begin(), stack.end(), need);
          std::vector<std::string> cycle(from, stack.end());
          cycle.push_back(need);
          diag_.Error(by_name[need]->location, Cat("steps form a cycle: ", Join(cycle, " -> ")));
          return true;
        }
        if (color[need] == 0 && visit(*by_name[need])) return true;
      }
      stack.pop_back();
      color[s.name] = 2;
      return false;
    };
    for (const Step& s : pipeline_.steps) {
      if (color[s.name] == 0 && visit(s)) break;
    }
  }

  YamlDiagnostics diag_;
  const ParamOverrides& overrides_;
  Pipeline pipeline_;
  std::map<std::string, std::string> param_map_;
  std::map<std::string, YAML::Node> needs_nodes_;
};

}  // namespace

const Step* Pipeline::FindStep(std::string_view name) const {
  for (const Step& s : steps) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

std::map<std::string, std::string> Pipeline::ParamMap() const {
  return {params.begin(), params.end()};
}

absl::StatusOr<Pipeline> ParsePipeline(std::string_view text, const std::string& path,
                                       const ParamOverrides& overrides) {
  return Parser(path, overrides).Parse(text, path);
}

absl::StatusOr<Pipeline> LoadPipeline(const std::string& path, const ParamOverrides& overrides) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return absl::InvalidArgumentError(text.status().message());
  return ParsePipeline(*text, path, overrides);
}

}  // namespace barge
