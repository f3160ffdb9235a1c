#include "sql/sql_task.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

#include "common/fs.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/text.h"
#include "sql/sql_engine.h"
#include "store/records.h"

namespace barge {
namespace {

// A file's format from its name, or "" if the name does not tell.
std::string FormatOf(const std::string& path) {
  std::string name = std::filesystem::path(path).filename().string();
  auto ends = [&](const char* ext) { return name.ends_with(ext); };
  if (ends(".parquet") || ends(".pq")) return "parquet";
  if (ends(".csv") || ends(".csv.gz") || ends(".csv.zst")) return "csv";
  if (ends(".tsv") || ends(".tsv.gz")) return "tsv";
  if (ends(".json") || ends(".jsonl") || ends(".ndjson") || ends(".json.gz")) return "json";
  return "";
}

// The format a view reads `path` in: its `read: format` if given, else the file name's.
std::string FormatIn(const nlohmann::json& view, const std::string& path) {
  std::string forced = view.value("format", "");
  return forced.empty() ? FormatOf(path) : forced;
}

// One reader over files of one format.
std::string ReaderOf(const nlohmann::json& view, const std::string& format,
                     const std::vector<std::string>& paths) {
  std::vector<std::string> quoted;
  for (const std::string& p : paths) quoted.push_back(SqlQuote(p));
  std::string list = Cat("[", Join(quoted, ", "), "]");
  // Bucket files live under "barge_bucket=N/": not a Hive partition column to add to the rows.
  const char* common = ", union_by_name = true, hive_partitioning = false";
  if (format == "parquet") return Cat("read_parquet(", list, common, ")");
  if (format == "json" || format == "ndjson") return Cat("read_json_auto(", list, common, ")");
  std::string options = common;
  std::string delimiter = format == "tsv" ? "\t" : view.value("delimiter", "");
  if (!delimiter.empty()) options += Cat(", delim = ", SqlQuote(delimiter));
  int header = view.value("header", -1);
  if (header >= 0) options += header == 1 ? ", header = true" : ", header = false";
  return Cat("read_csv(", list, options, ")");
}

// The SELECT a view is made of: the `read: format` if given, else each file's format from its
// name, one reader per format joined by name.
absl::StatusOr<std::string> ViewSql(const nlohmann::json& view,
                                    const std::vector<std::string>& paths) {
  std::map<std::string, std::vector<std::string>> by_format;
  for (const std::string& p : paths) {
    std::string format = FormatIn(view, p);
    if (format.empty()) {
      return absl::DataLossError(Cat("cannot tell the format of ", p,
                                     " from its name; set read: {format: csv|tsv|parquet|json}"));
    }
    by_format[format].push_back(p);
  }
  std::vector<std::string> selects;
  for (const auto& [format, files] : by_format) {
    selects.push_back(Cat("SELECT * FROM ", ReaderOf(view, format, files)));
  }
  return Join(selects, " UNION ALL BY NAME ");
}

// The files of `paths` that are empty (0 bytes) and of an uncompressed text format (CSV, TSV,
// JSON): they hold neither rows nor columns.
std::set<std::string> EmptyTextFiles(const nlohmann::json& view,
                                     const std::vector<std::string>& paths) {
  std::set<std::string> out;
  for (const std::string& p : paths) {
    // A 0-byte Parquet or compressed file is corrupt rather than empty: left to the reader.
    if (FormatIn(view, p) == "parquet" || p.ends_with(".gz") || p.ends_with(".zst")) continue;
    std::error_code ec;
    if (std::filesystem::file_size(p, ec) == 0 && !ec) out.insert(p);
  }
  return out;
}

std::string Ident(const std::string& name) {
  return Cat("\"", ReplaceAll(name, "\"", "\"\""), "\"");
}

struct Failure {
  int exit_code;
  std::string failure_class;
  std::string message;
};

absl::StatusOr<nlohmann::json> Run(const nlohmann::json& spec, Failure& failure) {
  SqlOptions options;
  options.threads = spec.value("threads", 0);
  options.memory_limit = spec.value("memory", int64_t{0});
  options.temp_dir = spec.value("temp_dir", "");
  ASSIGN_OR_RETURN(std::unique_ptr<SqlSession> db, OpenDuckDb(options));
  std::string where = Cat("step ", spec.value("step", ""), ", task ", spec.value("index", 0));
  // Validate checked the query as the first task renders it; each task's own rendering is
  // checked here, before any input is read and before DuckDB binds it (binding EXPORT DATABASE
  // already creates its directory).
  std::string query = spec.value("query", "");
  if (absl::Status s = db->CheckQuery(query); !s.ok()) {
    failure = {1, failure::kApplication, Cat(where, ": sql: ", s.message())};
    return s;
  }

  for (const auto& view : spec["views"]) {
    std::vector<std::string> paths = view.value("paths", std::vector<std::string>{});
    std::string schema_path = view.value("schema_path", "");
    std::string name = view.value("name", "input");
    // A 0-byte text file has no header to take columns from (DuckDB would read one column,
    // "column0", and the query would fail to bind). Beside other files it adds no rows; alone,
    // the view takes its columns from the schema file if there is one, or the input is bad.
    std::set<std::string> empty = EmptyTextFiles(view, paths);
    if (!empty.empty() && empty.size() < paths.size()) {
      std::erase_if(paths, [&](const std::string& p) { return empty.contains(p); });
    } else if (!empty.empty() && schema_path.empty()) {
      const std::string& first = *std::find_if(
          paths.begin(), paths.end(), [&](const std::string& p) { return empty.contains(p); });
      failure = {kExitBadInput, failure::kBadInput,
                 Cat(where, ": input ", name, ": ", first,
                     " is empty (0 bytes): there is nothing to take the columns from",
                     empty.size() > 1 ? Cat(" (nor have the other ", empty.size() - 1, ")") : "")};
      return absl::DataLossError(failure.message);
    } else if (!empty.empty()) {
      paths.clear();
    }
    std::string body;
    if (!paths.empty()) {
      absl::StatusOr<std::string> select = ViewSql(view, paths);
      if (!select.ok()) {
        failure = {kExitBadInput, failure::kBadInput,
                   Cat(where, ": input ", name, ": ", select.status().message())};
        return select.status();
      }
      body = *select;
    } else if (!schema_path.empty()) {
      ASSIGN_OR_RETURN(std::string select, ViewSql(view, {schema_path}));
      body = Cat("SELECT * FROM (", select, ") LIMIT 0");
    } else {
      continue;
    }
    // Binding the view reads every file's header or footer, so a corrupt or unreadable file
    // shows up here, named, before the user's query runs.
    absl::StatusOr<SqlResult> made = db->Query(Cat("CREATE VIEW ", Ident(name), " AS ", body));
    if (!made.ok()) {
      failure = {kExitBadInput, failure::kBadInput,
                 Cat(where, ": reading input ", name, ": ", made.status().message())};
      return made.status();
    }
  }

  const nlohmann::json& output = spec["output"];
  std::string format = output.value("format", "parquet");
  std::string compression = output.value("compression", "zstd");
  std::string copy_options = Cat("FORMAT ", format == "json" ? "json" : format);
  if (format == "parquet") {
    copy_options += Cat(", COMPRESSION ", compression == "none" ? "uncompressed" : compression);
  }
  if (format == "csv") copy_options += ", HEADER true";
  std::string out_dir = spec.value("output_dir", "");
  std::string copy;
  const nlohmann::json& partition = spec["partition"];
  if (partition.is_object() && partition.value("buckets", 0) > 0) {
    copy = Cat("COPY (SELECT *, (hash(", partition.value("by", ""), ") % ",
               partition.value("buckets", 0), ")::BIGINT AS barge_bucket FROM ", AsSubquery(query),
               " AS barge_query) TO ", SqlQuote(out_dir), " (", copy_options,
               ", PARTITION_BY (barge_bucket), OVERWRITE_OR_IGNORE true)");
  } else {
    copy = Cat("COPY ", AsSubquery(query), " TO ", SqlQuote(Cat(out_dir, "/part-0.", format)), " (",
               copy_options, ")");
  }
  absl::StatusOr<SqlResult> copied = db->Query(copy);
  if (!copied.ok()) {
    bool bad_input = absl::IsDataLoss(copied.status());
    absl::Status reported = copied.status();
    // Binding the bare query again places the error in the user's own text, not in our COPY.
    if (absl::IsInvalidArgument(reported)) {
      if (absl::Status bare = db->Prepare(query); !bare.ok()) reported = bare;
    }
    failure = {bad_input ? kExitBadInput : 1,
               bad_input ? failure::kBadInput : failure::kApplication,
               Cat(where, ": ", reported.message())};
    return copied.status();
  }
  int64_t rows = 0;
  if (!copied->rows.empty() && copied->rows[0][0]) rows = std::stoll(*copied->rows[0][0]);
  // The schema, from what was written (a footer read), rather than by binding the query again.
  nlohmann::json schema = nlohmann::json::array();
  std::vector<std::string> written;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(out_dir)) {
    if (entry.is_regular_file()) written.push_back(entry.path().string());
    if (!written.empty()) break;
  }
  if (!written.empty()) {
    nlohmann::json view = {{"format", format}};
    ASSIGN_OR_RETURN(std::string select, ViewSql(view, written));
    ASSIGN_OR_RETURN(SqlResult described, db->Query(Cat("DESCRIBE ", select)));
    for (const auto& row : described.rows) {
      schema.push_back({{"name", row[0].value_or("")}, {"type", row[1].value_or("")}});
    }
  }
  return nlohmann::json{{"rows", rows}, {"schema", schema}};
}

}  // namespace

int RunSqlTask(const std::string& spec_path) {
  absl::StatusOr<std::string> text = ReadFile(spec_path);
  nlohmann::json spec = text.ok() ? nlohmann::json::parse(*text, nullptr, false) : nlohmann::json();
  if (!spec.is_object()) {
    std::fprintf(stderr, "barge __sql: cannot read the task spec %s\n", spec_path.c_str());
    return 3;
  }
  Failure failure{3, failure::kApplication, ""};
  absl::StatusOr<nlohmann::json> result = Run(spec, failure);
  nlohmann::json report;
  int code = 0;
  if (result.ok()) {
    report = *result;
    std::fprintf(stderr, "%lld rows written\n",
                 static_cast<long long>(report.value("rows", int64_t{0})));
  } else {
    if (failure.message.empty()) failure.message = ToString(result.status().message());
    report = {{"error", failure.message}, {"failure_class", failure.failure_class}};
    std::fprintf(stderr, "%s\n", failure.message.c_str());
    code = failure.exit_code;
  }
  (void)WriteFile(kTaskResultFile, DumpJson(report));
  return code;
}

}  // namespace barge
