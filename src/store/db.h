// The boundary between the SQL state store and a database: a connection that prepares
// statements, and statements that bind parameters left to right ("?" placeholders) and step
// through rows. SQLite and PostgreSQL (libpq) implement it; SqlStateStore is written once
// against it, with the few differences between the two in a Dialect.
//
// Thread-safety: a connection and its statements are used from one thread at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/status.h"

namespace barge {

class DbStatement {
 public:
  virtual ~DbStatement() = default;
  // Binds parameters left to right, starting with the first. Chainable.
  virtual DbStatement& Bind(int64_t value) = 0;
  virtual DbStatement& Bind(double value) = 0;
  virtual DbStatement& Bind(std::string_view value) = 0;
  DbStatement& Bind(int value) { return Bind(static_cast<int64_t>(value)); }
  DbStatement& Bind(const std::string& value) { return Bind(std::string_view(value)); }
  DbStatement& Bind(const char* value) { return Bind(std::string_view(value)); }

  // Executes on the first call and advances; true while a row is available.
  virtual absl::StatusOr<bool> Step() = 0;
  // Executes to completion, ignoring rows.
  absl::Status Run();
  // Forgets results and bindings, ready to execute again.
  virtual void Reset() = 0;

  virtual int64_t Int(int col) const = 0;
  virtual double Double(int col) const = 0;
  virtual std::string Text(int col) const = 0;
};

// One row of a bulk insert (DbConnection::InsertRows): its values, added in column order.
class DbRow {
 public:
  virtual ~DbRow() = default;
  virtual DbRow& Add(int64_t value) = 0;
  virtual DbRow& Add(double value) = 0;
  virtual DbRow& Add(std::string_view value) = 0;
  DbRow& Add(int value) { return Add(static_cast<int64_t>(value)); }
  DbRow& Add(const std::string& value) { return Add(std::string_view(value)); }
  DbRow& Add(const char* value) { return Add(std::string_view(value)); }
};

struct Dialect {
  const char* begin;           // starts a write transaction that takes its locks up front
  const char* serial_pk;       // an auto-incrementing 64-bit primary key column
  const char* skip_locked;     // appended to the claim query: skip rows another claimer holds
  const char* for_update;      // appended to a query: lock the rows it reads ("" if `begin` does)
  const char* migration_lock;  // run first in the migration transaction ("" if none needed)
  const char* now_ms;  // SQL for the database's clock in ms since the epoch ("": use the host's)
  // Whether WITH may hold INSERT/UPDATE (a claim or a completion batch is then one statement).
  bool data_modifying_ctes;
  // Run after a bulk insert of tasks, so the planner knows the queue is large ("" if not needed).
  const char* refresh_task_stats;
};

class DbConnection {
 public:
  virtual ~DbConnection() = default;
  virtual const Dialect& dialect() const = 0;
  virtual absl::StatusOr<std::unique_ptr<DbStatement>> Prepare(std::string_view sql) = 0;
  // Runs statements without parameters or results.
  virtual absl::Status Exec(std::string_view sql) = 0;
  // Starts a write transaction (`dialect().begin`). Returns the database's clock read at its
  // start, in ms since the epoch, if that comes at no extra round trip; else -1.
  virtual absl::StatusOr<int64_t> Begin() {
    RETURN_IF_ERROR(Exec(dialect().begin));
    return -1;
  }
  // Inserts `count` rows into `table` (its `columns`), in the current transaction: `fill(i, row)`
  // adds row i's values. By default many rows per INSERT statement; PostgreSQL streams them with
  // COPY, about three times faster for a million-task step. If `fill` throws, the insert is
  // abandoned with the connection ready for a ROLLBACK, and the exception propagates.
  virtual absl::Status InsertRows(std::string_view table, const std::vector<std::string>& columns,
                                  int64_t count, const std::function<void(int64_t, DbRow&)>& fill);
  // Rows changed by the last statement that ran on this connection.
  virtual int64_t Changes() const = 0;
  // Whether a failed transaction may simply be tried again (deadlock, serialization failure).
  virtual bool IsRetryable(const absl::Status& status) const = 0;
  // Changes whenever the connection was re-established; prepared statements from before are
  // gone then.
  virtual int64_t generation() const { return 0; }
};

}  // namespace barge
