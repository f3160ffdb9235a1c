// The checks that need more than the file itself: globs against the filesystem, SQL against
// the SQL engine, --param flags, and the pipeline files of a directory.
#include <algorithm>
#include <filesystem>

#include "common/fs.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/text.h"
#include "objstore/glob.h"
#include "spec/pipeline.h"
#include "spec/template.h"
#include "sql/sql_engine.h"

namespace barge {

absl::Status CheckInputs(const Pipeline& pipeline, ObjectStores& stores) {
  std::vector<std::string> errors;
  for (const Step& s : pipeline.steps) {
    std::vector<const Foreach*> globs = {&s.foreach};
    for (const NamedInput& in : s.inputs) globs.push_back(&in.source);
    for (const Foreach* f : globs) {
      if (f->kind != ForeachKind::kFiles) continue;
      ASSIGN_OR_RETURN(std::vector<std::string> files, GlobInputs(f->pattern, stores));
      std::string where = Cat(pipeline.path, ":", f->location.line, ":", f->location.column,
                              ": step \"", s.name, "\": files(\"", f->pattern, "\")");
      if (files.empty()) errors.push_back(Cat(where, " matches no files"));
      // Each match becomes an item, an input and a line of $BARGE_INPUT_LIST.
      for (const std::string& file : files) {
        if (absl::Status bad = CheckCarriableName("file", file); !bad.ok()) {
          errors.push_back(Cat(where, ": ", bad.message()));
          break;
        }
      }
    }
  }
  if (errors.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(Join(errors, "\n"));
}

absl::Status CheckSql(const Pipeline& pipeline) {
  std::unique_ptr<SqlSession> session;
  std::vector<std::string> errors;
  for (const Step& s : pipeline.steps) {
    if (!s.is_sql()) continue;
    if (!session) {
      ASSIGN_OR_RETURN(session, OpenDuckDb({.threads = 1}));
    }
    // Placeholders are text substitutions; check the query as the first task would run it
    // (each task checks its own rendering again before it runs).
    std::map<std::string, std::string> params = pipeline.ParamMap();
    const nlohmann::json* item = s.foreach.items.empty() ? nullptr : &s.foreach.items.front();
    absl::Status st = session->CheckQuery(
        RenderTemplate(s.sql, TemplateValues{&params, item, 0}, /*shell_quote=*/false));
    if (!st.ok()) {
      errors.push_back(Cat(pipeline.path, ":", s.sql_location.line, ":", s.sql_location.column,
                           ": step \"", s.name, "\": sql: ", st.message()));
    }
  }
  if (errors.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(Join(errors, "\n"));
}

absl::StatusOr<std::vector<std::string>> PipelineFilesIn(const std::string& dir) {
  std::error_code ec;
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    std::string ext = entry.path().extension().string();
    if (ext == ".yaml" || ext == ".yml") files.push_back(entry.path().string());
  }
  if (ec) return absl::NotFoundError(Cat(dir, ": ", ec.message()));
  std::sort(files.begin(), files.end());
  return files;
}

absl::StatusOr<ParamOverrides> ParseParamFlags(const std::vector<std::string>& flags) {
  ParamOverrides out;
  for (const std::string& flag : flags) {
    size_t eq = flag.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(Cat("--param \"", flag, "\": expected NAME=VALUE"));
    }
    out[flag.substr(0, eq)] = flag.substr(eq + 1);
  }
  return out;
}

}  // namespace barge
