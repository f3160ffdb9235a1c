#include "store/sqlite_db.h"

#include <sys/stat.h>

#include "common/strings.h"
#include "store/sql_text.h"

namespace barge {
namespace {

std::string FileOf(sqlite3* db) {
  const char* name = db != nullptr ? sqlite3_db_filename(db, "main") : nullptr;
  return name != nullptr && *name != '\0' ? name : "(unnamed)";
}

// Every message names the database file: "read-only" or "not a database" is no use without it.
absl::Status SqliteError(sqlite3* db, int rc, std::string_view reason, std::string_view sql) {
  std::string message = Cat("sqlite ", FileOf(db), ": ", reason);
  if (!sql.empty()) message += Cat(" (in: ", OneLine(sql), ")");
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(message);
    case SQLITE_CONSTRAINT:
      return absl::AlreadyExistsError(message);
    default:
      return absl::InternalError(message);
  }
}

// Faults of the file itself rather than of a statement: the state store named is not one barge
// can use, which is the caller's to fix (exit 2), not an internal error.
bool IsFileFault(int rc) {
  switch (rc & 0xff) {
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return true;
    default:
      return false;
  }
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
  return SqliteError(db_, rc, sqlite3_errmsg(db_), sqlite3_sql(stmt_));
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
  // Root may write to any file; a state file without write permission is still meant read-only.
  if (struct stat st;
      ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0222) == 0) {
    return absl::FailedPreconditionError(Cat("state store ", path, ": the file is read-only (mode ",
                                             fmt::format("{:04o}", st.st_mode & 07777),
                                             "); barge writes to its state store"));
  }
  sqlite3* raw = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  std::unique_ptr<SqliteDb> db(new SqliteDb(raw));
  if (rc != SQLITE_OK) {
    return absl::FailedPreconditionError(
        Cat("state store ", path, ": cannot open: ", sqlite3_errstr(rc)));
  }
  // SQLite falls back to read-only when it may not write the file.
  if (sqlite3_db_readonly(raw, "main") == 1) {
    return absl::FailedPreconditionError(
        Cat("state store ", path, ": the file is read-only (no write permission)"));
  }
  // A long busy timeout: other barge processes (a status query, a cancel) hold the write lock
  // for milliseconds at a time.
  sqlite3_busy_timeout(raw, 30'000);
  // WAL lets readers run beside the writer. synchronous=NORMAL in WAL mode keeps the database
  // consistent across process crashes and loses no committed transaction unless the machine
  // itself loses power. The first statement reads the file: a file that is not a database, or a
  // directory where the WAL cannot be created, shows here.
  char* err = nullptr;
  rc = sqlite3_exec(raw,
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
                    nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string reason = err != nullptr ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    std::string message = Cat("state store ", path, ": ", reason);
    if (IsFileFault(rc)) return absl::FailedPreconditionError(message);
    return absl::InternalError(message);
  }
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
  if (rc != SQLITE_OK) return SqliteError(db_, rc, Cat("preparing: ", sqlite3_errmsg(db_)), sql);
  return std::make_unique<SqliteStatement>(db_, stmt);
}

absl::Status SqliteDb::Exec(std::string_view sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, std::string(sql).c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string message = err != nullptr ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    return SqliteError(db_, rc, message, sql);
  }
  return absl::OkStatus();
}

}  // namespace barge
