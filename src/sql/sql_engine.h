// A SQL engine behind barge's own narrow interface. The one implementation is embedded DuckDB,
// used only through its stable C API.
//
//   ASSIGN_OR_RETURN(auto db, OpenDuckDb({.threads = 2, .memory_limit = 1 << 30}));
//   ASSIGN_OR_RETURN(SqlResult r, db->Query("SELECT 42 AS answer"));
//   r.rows[0][0] == "42"
//
// Errors keep DuckDB's message, with a status code by class: InvalidArgument for SQL the
// engine rejects (syntax, unknown names, bad casts), DataLoss for unreadable or corrupt input
// data (I/O and invalid-input errors), ResourceExhausted for out of memory, Internal otherwise.
//
// Thread-safety: a session is used from one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace barge {

struct SqlResult {
  std::vector<std::string> columns;
  std::vector<std::vector<std::optional<std::string>>> rows;  // values as text; nullopt is NULL
};

class SqlSession {
 public:
  virtual ~SqlSession() = default;
  // Runs one or more statements; returns the last one's result.
  virtual absl::StatusOr<SqlResult> Query(std::string_view sql) = 0;
  // Parses and binds one statement without running it (names and types are checked). Error
  // positions refer to `sql` itself.
  virtual absl::Status Prepare(std::string_view sql) = 0;
  // Checks, with DuckDB's parser alone (nothing is bound, read or run), that `sql` is one
  // read-only query a SQL step can run: it parses as exactly one statement, and as the subquery
  // barge wraps it in (see AsSubquery), which only a SELECT, FROM, WITH, VALUES, TABLE, PIVOT or
  // UNPIVOT query does. COPY, EXPORT, IMPORT, ATTACH, DETACH, INSTALL, LOAD, SET, RESET, PRAGMA,
  // CALL, CREATE (SECRET, TABLE, ...), INSERT, DESCRIBE and the like are InvalidArgument naming
  // the statement; so is a syntax error (DuckDB's message, positions in `sql`).
  virtual absl::Status CheckQuery(std::string_view sql) = 0;
};

// `query` as the parenthesised subquery a SQL step runs it as: on lines of its own, so that a
// trailing `-- comment` cannot swallow what barge writes after it, and without trailing
// semicolons. Every use of a step's query goes through this, so CheckQuery checks what runs.
std::string AsSubquery(std::string_view query);

struct SqlOptions {
  int threads = 0;              // 0: the engine's default (all cores)
  int64_t memory_limit = 0;     // bytes; 0: the engine's default
  std::string temp_dir;         // where to spill; empty: the engine's default
  bool external_access = true;  // false: no file is read or written, whatever the SQL says
};

// An in-memory DuckDB database and a connection to it. Extensions are never downloaded nor
// loaded on demand (parquet, json and csv are built in), community extensions are refused, and
// the configuration is locked once open, so no statement can change a setting. File access
// stays on: steps read their inputs and write their outputs through it, so this is no sandbox.
absl::StatusOr<std::unique_ptr<SqlSession>> OpenDuckDb(const SqlOptions& options);

// `text` as a SQL string literal: O'Brien -> 'O''Brien'. Used for every path barge puts in SQL.
std::string SqlQuote(std::string_view text);

}  // namespace barge
