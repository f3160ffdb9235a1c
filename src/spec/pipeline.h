// The pipeline file, parsed and validated: what a run is made of.
//
//   ASSIGN_OR_RETURN(Pipeline p, LoadPipeline("pipeline.yaml", {{"day", "2026-01-01"}}));
//   for (const Step& s : p.steps) ...
//
// Parsing is pure (no filesystem access beyond reading the file), so a worker can re-parse a
// run's frozen copy of the spec and get the same Pipeline. CheckInputs() is the separate,
// filesystem-dependent check that `files(...)` globs match something.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/labels.h"
#include "common/source_location.h"
#include "nlohmann/json.hpp"
#include "objstore/object_stores.h"

namespace barge {

enum class ForeachKind {
  kNone,     // one task; its inputs are all committed outputs of the steps it needs
  kRange,    // range(N): tasks 0..N-1, item = index
  kList,     // a YAML list: one task per item (scalar or map)
  kFiles,    // files("glob"): one task per matching file (local or s3://), item = its path or URL
  kOutputs,  // outputs(step): one task per task of `step`, consuming that task's outputs
  kBuckets,  // buckets(step): one task per bucket of a partitioned `step`, reading that bucket
};

struct Foreach {
  ForeachKind kind = ForeachKind::kNone;
  int64_t count = 0;                  // kRange
  std::vector<nlohmann::json> items;  // kList: strings or objects of strings
  std::string pattern;                // kFiles: absolute glob, params substituted
  std::string step;                   // kOutputs
  SourceLocation location;
};

// A named input of a SQL step: a view over every committed output of a step, or over files.
struct NamedInput {
  std::string name;  // the view's name
  Foreach source;    // kOutputs or kFiles
};

// How a SQL step reads its inputs; by default the format follows each file's extension.
struct ReadOptions {
  std::string format;     // "", csv, tsv, parquet, json, ndjson
  std::string delimiter;  // csv: "" means detect
  int header = -1;        // csv: -1 detect, 0 no, 1 yes
};

struct OutputOptions {
  std::string format = "parquet";    // parquet, csv, json (newline-delimited)
  std::string compression = "zstd";  // parquet: zstd, snappy, none; csv/json: none
};

// partition: {by: expr, buckets: N}: the map side of a shuffle.
struct Partition {
  std::string by;
  int64_t buckets = 0;  // 0: not partitioned
};

struct Step {
  std::string name;
  std::vector<std::string> needs;
  Foreach foreach;
  bool shell = true;              // `run:` given as a string, run by /bin/sh -c
  std::string command;            // shell form, with placeholders
  std::vector<std::string> argv;  // argv form (`run:` as a list), with placeholders
  std::vector<std::pair<std::string, std::string>> env;  // values may hold placeholders
  double cpu = 1;
  int64_t memory_bytes = 0;  // 0: no reservation
  int retries = 0;
  int64_t retry_delay_ms = 1000;  // base of the exponential backoff between retries
  int64_t timeout_ms = 0;         // 0: no timeout
  std::string queue = "default";  // the queue its tasks wait in (`barge worker --queue`)
  Labels labels;                  // labels a worker must have to run its tasks
  // `image:`: the OCI image its command runs in (container/runtime.h), as written; "" runs it on
  // the worker itself. Such a step requires the label container=podman unless `labels:` names
  // `container` itself.
  std::string image;
  SourceLocation image_location;
  std::string sql;                 // a SQL step's query (a SELECT); empty for command steps
  std::vector<NamedInput> inputs;  // SQL steps: named views
  ReadOptions read;
  OutputOptions output;
  Partition partition;
  SourceLocation location;
  SourceLocation sql_location;

  bool is_sql() const { return !sql.empty(); }
};

// schedule: when `barge serve` runs the pipeline on its own (schedule/cron.h).
struct PipelineSchedule {
  std::string cron;                // "" : not scheduled
  std::string time_zone = "UTC";   // IANA name
  std::string catchup = "latest";  // slots missed while the server was down: latest | all | none
  std::string overlap = "skip";    // previous run still going: skip | queue | allow
  SourceLocation location;
};

struct Pipeline {
  std::string name;
  std::string path;  // absolute path of the file
  std::string dir;   // its directory; relative globs resolve against it
  std::string source;
  std::vector<std::pair<std::string, std::string>> params;  // after --param overrides
  std::vector<Step> steps;                                  // in file order
  PipelineSchedule schedule;
  // `secrets:` — params and env variables whose values barge shows as [redacted].
  std::set<std::string> secrets;

  // Whether the value of param or env variable `name` is never shown: listed under secrets:,
  // or a secret-looking name (common/redact.h IsSecretName: API_TOKEN, DB_PASSWORD, ...).
  bool IsSecret(std::string_view name) const;
  // The values of those params and env variables (env values with {params.x} substituted),
  // for masking wherever they appear.
  std::vector<std::string> SecretValues() const;

  const Step* FindStep(std::string_view name) const;
  std::map<std::string, std::string> ParamMap() const;
};

using ParamOverrides = std::map<std::string, std::string>;

// Parses and validates pipeline text. `path` is used for error messages and to resolve relative
// globs. Every error reads "path:line:col: reason"; all errors found are returned, one per line,
// as an InvalidArgument status.
absl::StatusOr<Pipeline> ParsePipeline(std::string_view text, const std::string& path,
                                       const ParamOverrides& overrides);

// The names listed under `secrets:` in pipeline text (none if it does not parse): cheap when the
// text has no such key. For showing a stored run's params without parsing its whole spec.
std::set<std::string> DeclaredSecrets(std::string_view source);

// The secret ones of a stored run's `params` (a JSON object of strings), by name and value ("" for
// a value that is not a string): those with secret-looking names and those its pipeline text
// lists under secrets:. Without parsing the whole spec (see DeclaredSecrets).
std::map<std::string, std::string> SecretParams(std::string_view source,
                                                const nlohmann::json& params);

// Reads `path` and parses it.
absl::StatusOr<Pipeline> LoadPipeline(const std::string& path, const ParamOverrides& overrides);

// Checks what depends on the filesystem or an object store (listed through `stores`): every
// files("glob") matches at least one file.
absl::Status CheckInputs(const Pipeline& pipeline, ObjectStores& stores);

// Checks that every SQL step's query parses, with the SQL engine (no data is read).
absl::Status CheckSql(const Pipeline& pipeline);

// The pipeline files (*.yaml, *.yml) directly in `dir`, sorted. NotFound if it cannot be read.
absl::StatusOr<std::vector<std::string>> PipelineFilesIn(const std::string& dir);

// Parses "k=v" flags into overrides; InvalidArgument on a malformed one.
absl::StatusOr<ParamOverrides> ParseParamFlags(const std::vector<std::string>& flags);

}  // namespace barge
