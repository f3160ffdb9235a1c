#include "store/db.h"

#include <algorithm>

#include "common/strings.h"

namespace barge {
namespace {

// A row whose values are bound to a multi-row INSERT's parameters.
class BoundRow : public DbRow {
 public:
  void set_statement(DbStatement* statement) { statement_ = statement; }
  DbRow& Add(int64_t value) override { return Bound(value); }
  DbRow& Add(double value) override { return Bound(value); }
  DbRow& Add(std::string_view value) override { return Bound(value); }

 private:
  template <typename T>
  DbRow& Bound(T value) {
    statement_->Bind(value);
    return *this;
  }
  DbStatement* statement_ = nullptr;
};

}  // namespace

absl::Status DbStatement::Run() {
  for (;;) {
    absl::StatusOr<bool> row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
  }
}

absl::Status DbConnection::InsertRows(std::string_view table,
                                      const std::vector<std::string>& columns, int64_t count,
                                      const std::function<void(int64_t, DbRow&)>& fill) {
  // Many rows per statement: a million rows are 4,000 statements, not a million round trips.
  // Full chunks share one prepared statement; the remainder gets its own.
  constexpr int64_t kChunk = 250;
  std::string row = Cat("(", Repeated("?", columns.size(), ", "), ")");
  auto prepare = [&](int64_t rows) {
    return Prepare(Cat("INSERT INTO ", table, " (", Join(columns, ", "), ") VALUES ",
                       Repeated(row, rows, ", ")));
  };
  std::unique_ptr<DbStatement> full;
  BoundRow bound;
  for (int64_t first = 0; first < count; first += kChunk) {
    int64_t rows = std::min(kChunk, count - first);
    std::unique_ptr<DbStatement> remainder;
    if (rows == kChunk && full == nullptr) {
      ASSIGN_OR_RETURN(full, prepare(rows));
    } else if (rows < kChunk) {
      ASSIGN_OR_RETURN(remainder, prepare(rows));
    }
    DbStatement* insert = rows == kChunk ? full.get() : remainder.get();
    insert->Reset();
    bound.set_statement(insert);
    for (int64_t i = first; i < first + rows; ++i) fill(i, bound);
    RETURN_IF_ERROR(insert->Run());
  }
  return absl::OkStatus();
}

}  // namespace barge
