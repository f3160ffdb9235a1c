// The PostgreSQL DbConnection, over libpq. Statements are prepared once per connection
// ("?" placeholders become $1, $2, ...), parameters and results travel as text.
#pragma once

#include <libpq-fe.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "store/db.h"

namespace barge {

class PgDb : public DbConnection {
 public:
  // Connects to a postgres:// or postgresql:// URL (libpq's connection URI syntax).
  static absl::StatusOr<std::unique_ptr<PgDb>> Open(const std::string& url);
  ~PgDb() override;

  const Dialect& dialect() const override;
  absl::StatusOr<std::unique_ptr<DbStatement>> Prepare(std::string_view sql) override;
  absl::Status Exec(std::string_view sql) override;
  absl::StatusOr<int64_t> Begin() override;
  absl::Status InsertRows(std::string_view table, const std::vector<std::string>& columns,
                          int64_t count, const std::function<void(int64_t, DbRow&)>& fill) override;
  int64_t Changes() const override { return changes_; }
  bool IsRetryable(const absl::Status& status) const override;
  int64_t generation() const override { return generation_; }

  // Turns a failed result (or none: libpq returns null when it cannot even send) into a status
  // carrying the reason, "(SQLSTATE xxxxx)" when the server sent one, and the start of `what`
  // (the statement). Unavailable when the connection is lost, which it then tries to reset.
  absl::Status Check(PGresult* result, std::string_view what);
  PGconn* conn() { return conn_; }
  void set_changes(int64_t n) { changes_ = n; }

 private:
  explicit PgDb(PGconn* conn) : conn_(conn) {}
  PGconn* conn_;
  int64_t changes_ = 0;
  int next_statement_ = 0;
  int64_t generation_ = 0;
};

// Replaces "?" placeholders outside quotes with $1, $2, ... (exposed for tests).
std::string NumberPlaceholders(std::string_view sql);

}  // namespace barge
