// The SQLite DbConnection: a thin RAII wrapper over the SQLite C API, reporting errors as
// absl::Status.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "store/db.h"

namespace barge {

class SqliteStatement : public DbStatement {
 public:
  SqliteStatement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  SqliteStatement(SqliteStatement&& other) noexcept
      : db_(other.db_), stmt_(std::exchange(other.stmt_, nullptr)) {}
  SqliteStatement(const SqliteStatement&) = delete;
  SqliteStatement& operator=(const SqliteStatement&) = delete;
  ~SqliteStatement() override;

  using DbStatement::Bind;
  DbStatement& Bind(int64_t value) override;
  DbStatement& Bind(double value) override;
  DbStatement& Bind(std::string_view value) override;
  absl::StatusOr<bool> Step() override;
  void Reset() override;
  int64_t Int(int col) const override { return sqlite3_column_int64(stmt_, col); }
  double Double(int col) const override { return sqlite3_column_double(stmt_, col); }
  std::string Text(int col) const override;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
  int next_bind_ = 1;
};

class SqliteDb : public DbConnection {
 public:
  // Opens (creating) the database file in WAL mode with a busy timeout.
  static absl::StatusOr<std::unique_ptr<SqliteDb>> Open(const std::string& path);
  ~SqliteDb() override;

  const Dialect& dialect() const override;
  absl::StatusOr<std::unique_ptr<DbStatement>> Prepare(std::string_view sql) override;
  absl::Status Exec(std::string_view sql) override;  // one or more statements, no results
  int64_t Changes() const override { return sqlite3_changes64(db_); }
  bool IsRetryable(const absl::Status& status) const override { return false; }

 private:
  explicit SqliteDb(sqlite3* db) : db_(db) {}
  sqlite3* db_;
};

}  // namespace barge
