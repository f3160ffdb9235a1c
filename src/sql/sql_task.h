// The child side of a SQL task: `barge __sql SPEC.json`, run by a worker in the attempt's
// scratch directory. It opens DuckDB with the task's threads and memory limit (spilling into
// the scratch directory), builds one view per input from the committed input files (paths are
// quoted by barge, never pasted into the user's SQL), runs the query and writes the result into
// the output directory: one file, or one file per non-empty bucket under "barge_bucket=N/".
//
// It reports through its exit code (0 success, 1 the query failed, 65 an input file is corrupt
// or unreadable) and a result file, ".barge_result.json" in its working directory:
//   {"rows": N, "schema": [{"name": ..., "type": ...}], "error": "...", "failure_class": "..."}
#pragma once

#include <string>

#include "nlohmann/json.hpp"

namespace barge {

inline constexpr char kSqlSpecFile[] = ".barge_sql.json";
inline constexpr char kTaskResultFile[] = ".barge_result.json";
inline constexpr int kExitBadInput = 65;  // EX_DATAERR

// Runs the SQL task described by the JSON file at `spec_path`; returns the exit code.
int RunSqlTask(const std::string& spec_path);

}  // namespace barge
