// A thin RAII wrapper over the SQLite C API: a connection and prepared statements that report
// errors as absl::Status. Used only by SqliteStateStore.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace barge {

class SqliteStatement {
 public:
  SqliteStatement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  SqliteStatement(SqliteStatement&& other) noexcept
      : db_(other.db_), stmt_(std::exchange(other.stmt_, nullptr)) {}
  SqliteStatement(const SqliteStatement&) = delete;
  SqliteStatement& operator=(const SqliteStatement&) = delete;
  ~SqliteStatement();

  // Binds parameters left to right, starting at 1. Chainable.
  SqliteStatement& Bind(int64_t value);
  SqliteStatement& Bind(int value) { return Bind(static_cast<int64_t>(value)); }
  SqliteStatement& Bind(double value);
  SqliteStatement& Bind(std::string_view value);
  SqliteStatement& Bind(const std::string& value) { return Bind(std::string_view(value)); }
  SqliteStatement& Bind(const char* value) { return Bind(std::string_view(value)); }

  // Advances; true while a row is available.
  absl::StatusOr<bool> Step();
  // Runs to completion, ignoring rows.
  absl::Status Run();
  // Resets for re-execution with new bindings.
  void Reset();

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  double Double(int col) const { return sqlite3_column_double(stmt_, col); }
  std::string Text(int col) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
  int next_bind_ = 1;
};

class SqliteDb {
 public:
  // Opens (creating) the database file in WAL mode with a busy timeout.
  static absl::StatusOr<std::unique_ptr<SqliteDb>> Open(const std::string& path);
  ~SqliteDb();

  absl::StatusOr<SqliteStatement> Prepare(std::string_view sql);
  absl::Status Exec(std::string_view sql);  // one or more statements, no results
  int64_t Changes() const { return sqlite3_changes64(db_); }

 private:
  explicit SqliteDb(sqlite3* db) : db_(db) {}
  sqlite3* db_;
};

}  // namespace barge
