#include "store/pg_db.h"

#include <cstdlib>

#include "common/redact.h"
#include "common/status.h"
#include "common/strings.h"
#include "store/sql_text.h"

namespace barge {
namespace {

class PgStatement : public DbStatement {
 public:
  PgStatement(PgDb& db, std::string name, std::string sql)
      : db_(db), name_(std::move(name)), sql_(std::move(sql)) {}
  ~PgStatement() override { Clear(); }

  using DbStatement::Bind;
  DbStatement& Bind(int64_t value) override {
    params_.push_back(std::to_string(value));
    return *this;
  }
  DbStatement& Bind(double value) override {
    params_.push_back(fmt::format("{}", value));
    return *this;
  }
  DbStatement& Bind(std::string_view value) override {
    params_.emplace_back(value);
    return *this;
  }

  absl::StatusOr<bool> Step() override {
    if (result_ == nullptr) {
      std::vector<const char*> values;
      for (const std::string& p : params_) values.push_back(p.c_str());
      result_ = PQexecPrepared(db_.conn(), name_.c_str(), static_cast<int>(values.size()),
                               values.data(), nullptr, nullptr, 0);
      if (absl::Status s = db_.Check(result_, sql_); !s.ok()) {
        Clear();
        return s;
      }
      const char* tuples = PQcmdTuples(result_);
      db_.set_changes(tuples != nullptr && *tuples != '\0' ? std::atoll(tuples) : 0);
      row_ = -1;
    }
    return ++row_ < PQntuples(result_);
  }

  void Reset() override {
    Clear();
    params_.clear();
  }

  int64_t Int(int col) const override { return std::atoll(PQgetvalue(result_, row_, col)); }
  double Double(int col) const override { return std::atof(PQgetvalue(result_, row_, col)); }
  std::string Text(int col) const override {
    return std::string(PQgetvalue(result_, row_, col),
                       static_cast<size_t>(PQgetlength(result_, row_, col)));
  }

 private:
  void Clear() {
    if (result_ != nullptr) PQclear(result_);
    result_ = nullptr;
  }

  PgDb& db_;
  std::string name_;
  std::string sql_;
  std::vector<std::string> params_;
  PGresult* result_ = nullptr;
  int row_ = -1;
};

// A row in COPY's text format: values separated by tabs, with backslash escapes for the
// characters that would end a value or a row.
class CopyRow : public DbRow {
 public:
  explicit CopyRow(std::string& out) : out_(out) {}
  DbRow& Add(int64_t value) override { return Value(std::to_string(value)); }
  DbRow& Add(double value) override { return Value(fmt::format("{}", value)); }
  DbRow& Add(std::string_view value) override {
    Separate();
    for (char c : value) {
      switch (c) {
        case '\\':
          out_ += "\\\\";
          break;
        case '\n':
          out_ += "\\n";
          break;
        case '\r':
          out_ += "\\r";
          break;
        case '\t':
          out_ += "\\t";
          break;
        default:
          out_ += c;
      }
    }
    return *this;
  }
  void End() {
    out_ += '\n';
    first_ = true;
  }

 private:
  void Separate() {
    if (!first_) out_ += '\t';
    first_ = false;
  }
  DbRow& Value(const std::string& text) {
    Separate();
    out_ += text;
    return *this;
  }
  std::string& out_;
  bool first_ = true;
};

}  // namespace

std::string NumberPlaceholders(std::string_view sql) {
  std::string out;
  int n = 0;
  char quote = 0;
  for (char c : sql) {
    if (quote != 0) {
      if (c == quote) quote = 0;
      out += c;
    } else if (c == '\'' || c == '"') {
      quote = c;
      out += c;
    } else if (c == '?') {
      out += Cat("$", ++n);
    } else {
      out += c;
    }
  }
  return out;
}

absl::StatusOr<std::unique_ptr<PgDb>> PgDb::Open(const std::string& url) {
  // A peer that vanishes (a cut link, a dead database host) must not block a worker for TCP's
  // fifteen-minute retransmission timeout: a worker whose store calls hang cannot notice that its
  // leases are gone. Bounded connects, keepalives on idle connections and a limit on unacked
  // sends turn it into an error within seconds. Settings in the URL come later and win.
  static const char* const kKeys[] = {"connect_timeout",     "keepalives",       "keepalives_idle",
                                      "keepalives_interval", "keepalives_count", "tcp_user_timeout",
                                      "application_name",    "dbname",           nullptr};
  const char* const values[] = {"10", "1", "5", "2", "3", "10000", "barge", url.c_str(), nullptr};
  PGconn* conn = PQconnectdbParams(kKeys, values, /*expand_dbname=*/1);
  if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
    std::string message = conn != nullptr ? PQerrorMessage(conn) : "out of memory";
    if (conn != nullptr) PQfinish(conn);
    // libpq's messages name the host and port; masked all the same, in case one ever echoes the
    // URL or its password (an unencoded '@' in a password ends up in the host name).
    message = MaskPasswordOf(url, Trim(message));
    return absl::UnavailableError(Cat("connecting to PostgreSQL: ", message));
  }
  std::unique_ptr<PgDb> db(new PgDb(conn));
  // Quiet "relation already exists, skipping" notices from migrations.
  PQsetNoticeProcessor(
      conn, [](void*, const char*) {}, nullptr);
  // The queue's tables grow from empty to millions of rows within one run, faster than
  // autovacuum's statistics follow. A generic plan cached while `attempts` was small joins
  // completions to it by scanning it whole; measured, that made draining 100k tasks 4x slower
  // than 10k. Planning each execution against the table's current size costs ~0.1 ms.
  RETURN_IF_ERROR(db->Exec("SET plan_cache_mode = force_custom_plan"));
  return db;
}

PgDb::~PgDb() { PQfinish(conn_); }

const Dialect& PgDb::dialect() const {
  static const Dialect kPostgres = {
      .begin = "BEGIN",
      .serial_pk = "BIGSERIAL PRIMARY KEY",
      .skip_locked = " FOR UPDATE SKIP LOCKED",
      .for_update = " FOR UPDATE",
      .migration_lock = "SELECT pg_advisory_xact_lock(7261)",
      .now_ms = "(extract(epoch FROM clock_timestamp()) * 1000)::BIGINT",
      .data_modifying_ctes = true,
      // Statistics from when the table was small make the claim query sort every pending row
      // (measured: 59 ms per claim with 38k pending) instead of reading the queue index in
      // order; autovacuum would notice only after its next nap.
      .refresh_task_stats = "ANALYZE tasks"};
  return kPostgres;
}

absl::Status PgDb::Check(PGresult* result, std::string_view what) {
  ExecStatusType status = PQresultStatus(result);
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return absl::OkStatus();
  const char* state = result != nullptr ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  // A lost connection often leaves no result, or one without a message: the reason ("server
  // closed the connection unexpectedly", "no connection to the server") is then the connection's.
  // The server's own errors come in fields: the primary message and a detail, without the
  // "LINE 1: <the statement>" context PQresultErrorMessage() would add.
  std::string reason;
  if (const char* primary =
          result != nullptr ? PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY) : nullptr) {
    reason = primary;
    if (const char* detail = PQresultErrorField(result, PG_DIAG_MESSAGE_DETAIL)) {
      reason += Cat(": ", detail);
    }
  }
  if (Trim(reason).empty() && result != nullptr) reason = PQresultErrorMessage(result);
  if (Trim(reason).empty()) reason = PQerrorMessage(conn_);
  if (Trim(reason).empty()) reason = PQresStatus(status);
  std::string message = Cat("postgres: ", MaskSecretsInText(OneLine(reason, 500)));
  if (state != nullptr && *state != '\0') message += Cat(" (SQLSTATE ", state, ")");
  message += Cat(" in: ", OneLine(what));
  if (PQstatus(conn_) != CONNECTION_OK) {
    PQreset(conn_);  // try to reconnect now; prepared statements are gone either way
    ++generation_;
    return absl::UnavailableError(message);
  }
  if (state != nullptr && std::string_view(state) == "23505") {
    return absl::AlreadyExistsError(message);
  }
  return absl::InternalError(message);
}

absl::StatusOr<std::unique_ptr<DbStatement>> PgDb::Prepare(std::string_view sql) {
  std::string name = Cat("barge_", ++next_statement_);
  std::string numbered = NumberPlaceholders(sql);
  PGresult* result = PQprepare(conn_, name.c_str(), numbered.c_str(), 0, nullptr);
  absl::Status s = Check(result, sql);
  PQclear(result);
  if (!s.ok()) return s;
  return std::make_unique<PgStatement>(*this, std::move(name), std::string(sql));
}

absl::Status PgDb::Exec(std::string_view sql) {
  PGresult* result = PQexec(conn_, std::string(sql).c_str());
  absl::Status s = Check(result, sql);
  PQclear(result);
  return s;
}

absl::StatusOr<int64_t> PgDb::Begin() {
  // One round trip: a simple query may hold several statements, and returns the last result.
  static const std::string kBeginNow = Cat(dialect().begin, "; SELECT ", dialect().now_ms);
  PGresult* result = PQexec(conn_, kBeginNow.c_str());
  absl::Status s = Check(result, kBeginNow);
  int64_t now = s.ok() && PQntuples(result) == 1 ? std::atoll(PQgetvalue(result, 0, 0)) : -1;
  PQclear(result);
  if (!s.ok()) return s;
  return now;
}

absl::Status PgDb::InsertRows(std::string_view table, const std::vector<std::string>& columns,
                              int64_t count, const std::function<void(int64_t, DbRow&)>& fill) {
  std::string copy = Cat("COPY ", table, " (", Join(columns, ", "), ") FROM STDIN");
  PGresult* started = PQexec(conn_, copy.c_str());
  if (PQresultStatus(started) != PGRES_COPY_IN) {
    absl::Status s = Check(started, copy);
    PQclear(started);
    return s.ok() ? absl::InternalError(Cat("postgres: no COPY in: ", OneLine(copy))) : s;
  }
  PQclear(started);
  // Sent in pieces of about a megabyte; COPY's errors (a duplicate key, a bad value) come with
  // its result at the end.
  constexpr size_t kPiece = 1 << 20;
  std::string buffer;
  CopyRow row(buffer);
  const char* send_error = nullptr;
  auto send = [&] {
    if (send_error == nullptr && !buffer.empty() &&
        PQputCopyData(conn_, buffer.data(), static_cast<int>(buffer.size())) != 1) {
      send_error = "sending rows";
    }
    buffer.clear();
  };
  try {
    for (int64_t i = 0; i < count && send_error == nullptr; ++i) {
      fill(i, row);
      row.End();
      if (buffer.size() >= kPiece) send();
    }
  } catch (...) {
    // Ends the COPY as failed, so that the caller can roll back: a connection left in COPY IN
    // refuses every later command.
    PQputCopyEnd(conn_, "a row could not be built");
    while (PGresult* result = PQgetResult(conn_)) PQclear(result);
    throw;
  }
  send();
  if (PQputCopyEnd(conn_, send_error) != 1 && send_error == nullptr) send_error = "ending COPY";
  absl::Status status;
  int64_t rows = 0;
  while (PGresult* result = PQgetResult(conn_)) {
    absl::Status s = Check(result, copy);
    if (s.ok()) rows += std::atoll(PQcmdTuples(result));
    if (status.ok()) status = s;
    PQclear(result);
  }
  if (status.ok() && send_error != nullptr) {
    status = absl::UnavailableError(Cat("postgres: ", send_error, ": ",
                                        MaskSecretsInText(Trim(PQerrorMessage(conn_))),
                                        " in: ", OneLine(copy)));
  }
  changes_ = rows;
  return status;
}

bool PgDb::IsRetryable(const absl::Status& status) const {
  std::string_view m(status.message().data(), status.message().size());
  return m.find("(SQLSTATE 40001)") != std::string_view::npos ||
         m.find("(SQLSTATE 40P01)") != std::string_view::npos;
}

}  // namespace barge
