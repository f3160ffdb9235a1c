#include "store/sqlite_db.h"

#include "common/strings.h"

namespace barge {
namespace {

absl::Status SqliteError(sqlite3* db, int rc, std::string_view what) {
  std::string message = Cat("sqlite: ", what, ": ", sqlite3_errmsg(db));
  if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) return absl::UnavailableError(message);
  if (rc == SQLITE_CONSTRAINT) return absl::AlreadyExistsError(message);
  return absl::InternalError(message);
}

}  // namespace

SqliteStatement::~SqliteStatement() {
  if (stmt_ != nullptr) sqlite3_finalize(stmt_);
}

DbStatement& SqliteStatement::Bind(int64_t value) {
  sqlite3_bind_int64(stmt_, next_bind_++, value);
  return *this;
}

DbStatement& SqliteStatement::Bind(double value) {
  sqlite3_bind_double(stmt_, next_bind_++, value);
  return *this;
}

DbStatement& SqliteStatement::Bind(std::string_view value) {
  sqlite3_bind_text(stmt_, next_bind_++, value.data(), static_cast<int>(value.size()),
                    SQLITE_TRANSIENT);
  return *this;
}

absl::StatusOr<bool> SqliteStatement::Step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return SqliteError(db_, rc, sqlite3_sql(stmt_));
}

void SqliteStatement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  next_bind_ = 1;
}

std::string SqliteStatement::Text(int col) const {
  const unsigned char* text = sqlite3_column_text(stmt_, col);
  if (text == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(text),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
}

absl::StatusOr<std::unique_ptr<SqliteDb>> SqliteDb::Open(const std::string& path) {
  sqlite3* raw = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  std::unique_ptr<SqliteDb> db(new SqliteDb(raw));
  if (rc != SQLITE_OK) {
    return absl::InvalidArgumentError(Cat("opening state store ", path, ": ", sqlite3_errstr(rc)));
  }
  // A long busy timeout: other barge processes (a status query, a cancel) hold the write lock
  // for milliseconds at a time.
  sqlite3_busy_timeout(raw, 30'000);
  // WAL lets readers run beside the writer. synchronous=NORMAL in WAL mode keeps the database
  // consistent across process crashes and loses no committed transaction unless the machine
  // itself loses power.
  absl::Status s =
      db->Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;");
  if (!s.ok()) return s;
  return db;
}

SqliteDb::~SqliteDb() { sqlite3_close_v2(db_); }

const Dialect& SqliteDb::dialect() const {
  // BEGIN IMMEDIATE takes the write lock at once, so claims from several processes are atomic
  // and a writer never starts from a stale snapshot.
  static const Dialect kSqlite = {.begin = "BEGIN IMMEDIATE",
                                  .serial_pk = "INTEGER PRIMARY KEY AUTOINCREMENT",
                                  .skip_locked = "",
                                  .for_update = "",
                                  .migration_lock = "",
                                  .now_ms = "",
                                  .data_modifying_ctes = false,
                                  .refresh_task_stats = ""};
  return kSqlite;
}

absl::StatusOr<std::unique_ptr<DbStatement>> SqliteDb::Prepare(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) return SqliteError(db_, rc, Cat("preparing ", sql));
  return std::make_unique<SqliteStatement>(db_, stmt);
}

absl::Status SqliteDb::Exec(std::string_view sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, std::string(sql).c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string message = err != nullptr ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    if (rc == SQLITE_BUSY) return absl::UnavailableError(Cat("sqlite: ", message));
    return absl::InternalError(Cat("sqlite: ", message));
  }
  return absl::OkStatus();
}

}  // namespace barge
