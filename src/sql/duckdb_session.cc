#include <duckdb.h>

#include "common/strings.h"
#include "sql/sql_engine.h"

namespace barge {
namespace {

absl::Status ErrorFor(duckdb_error_type type, std::string message) {
  switch (type) {
    case DUCKDB_ERROR_IO:
    case DUCKDB_ERROR_INVALID_INPUT:
      return absl::DataLossError(message);
    case DUCKDB_ERROR_OUT_OF_MEMORY:
      return absl::ResourceExhaustedError(message);
    case DUCKDB_ERROR_INTERNAL:
    case DUCKDB_ERROR_FATAL:
      return absl::InternalError(message);
    default:
      return absl::InvalidArgumentError(message);
  }
}

class DuckDbSession : public SqlSession {
 public:
  ~DuckDbSession() override {
    if (conn_ != nullptr) duckdb_disconnect(&conn_);
    if (db_ != nullptr) duckdb_close(&db_);
  }

  absl::Status Open(const SqlOptions& options) {
    duckdb_config config = nullptr;
    if (duckdb_create_config(&config) == DuckDBError) {
      return absl::InternalError("duckdb: cannot create a config");
    }
    auto set = [&](const char* name, const std::string& value) {
      duckdb_set_config(config, name, value.c_str());
    };
    if (options.threads > 0) set("threads", std::to_string(options.threads));
    if (options.memory_limit > 0) set("memory_limit", Cat(options.memory_limit / 1024, "KiB"));
    if (!options.temp_dir.empty()) set("temp_directory", options.temp_dir);
    char* error = nullptr;
    duckdb_state state = duckdb_open_ext(nullptr, &db_, config, &error);
    duckdb_destroy_config(&config);
    if (state == DuckDBError) {
      std::string message = error != nullptr ? error : "unknown error";
      duckdb_free(error);
      return absl::InternalError(Cat("duckdb: opening: ", message));
    }
    if (duckdb_connect(db_, &conn_) == DuckDBError) {
      return absl::InternalError("duckdb: cannot connect");
    }
    return absl::OkStatus();
  }

  absl::StatusOr<SqlResult> Query(std::string_view sql) override {
    duckdb_result result;
    std::string text(sql);
    if (duckdb_query(conn_, text.c_str(), &result) == DuckDBError) {
      const char* message = duckdb_result_error(&result);
      absl::Status s = ErrorFor(duckdb_result_error_type(&result),
                                message != nullptr ? message : "unknown error");
      duckdb_destroy_result(&result);
      return s;
    }
    SqlResult out;
    idx_t columns = duckdb_column_count(&result);
    idx_t rows = duckdb_row_count(&result);
    for (idx_t c = 0; c < columns; ++c) out.columns.push_back(duckdb_column_name(&result, c));
    out.rows.reserve(rows);
    for (idx_t r = 0; r < rows; ++r) {
      std::vector<std::optional<std::string>> row;
      for (idx_t c = 0; c < columns; ++c) {
        if (duckdb_value_is_null(&result, c, r)) {
          row.push_back(std::nullopt);
          continue;
        }
        char* value = duckdb_value_varchar(&result, c, r);
        row.push_back(value != nullptr ? std::string(value) : std::string());
        duckdb_free(value);
      }
      out.rows.push_back(std::move(row));
    }
    duckdb_destroy_result(&result);
    return out;
  }

  absl::Status Prepare(std::string_view sql) override {
    duckdb_prepared_statement prepared = nullptr;
    std::string text(sql);
    absl::Status s = absl::OkStatus();
    if (duckdb_prepare(conn_, text.c_str(), &prepared) == DuckDBError) {
      const char* message = duckdb_prepare_error(prepared);
      s = absl::InvalidArgumentError(message != nullptr ? message : "cannot prepare the query");
    }
    duckdb_destroy_prepare(&prepared);
    return s;
  }

  absl::Status CheckSyntax(std::string_view sql) override {
    duckdb_extracted_statements statements = nullptr;
    std::string text(sql);
    idx_t count = duckdb_extract_statements(conn_, text.c_str(), &statements);
    absl::Status s = absl::OkStatus();
    if (count == 0) {
      const char* message = duckdb_extract_statements_error(statements);
      s = absl::InvalidArgumentError(message != nullptr ? message : "no SQL statement");
    } else if (count > 1) {
      s = absl::InvalidArgumentError(Cat("expected one SQL query, found ", count, " statements"));
    }
    duckdb_destroy_extracted(&statements);
    return s;
  }

 private:
  duckdb_database db_ = nullptr;
  duckdb_connection conn_ = nullptr;
};

}  // namespace

absl::StatusOr<std::unique_ptr<SqlSession>> OpenDuckDb(const SqlOptions& options) {
  auto session = std::make_unique<DuckDbSession>();
  if (absl::Status s = session->Open(options); !s.ok()) return s;
  return std::unique_ptr<SqlSession>(std::move(session));
}

std::string SqlQuote(std::string_view text) { return Cat("'", ReplaceAll(text, "'", "''"), "'"); }

}  // namespace barge
