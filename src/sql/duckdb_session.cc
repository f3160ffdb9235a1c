#include <dlfcn.h>
#include <duckdb.h>

#include <algorithm>
#include <cctype>

#include "common/status.h"
#include "common/strings.h"
#include "sql/sql_engine.h"

namespace barge {
namespace {

// DuckDB's C API, loaded on first use with dlopen: libduckdb.so is large, and every barge
// process that never runs SQL (status, tasks, a worker running shell steps) would otherwise pay
// tens of milliseconds at start-up to load and relocate it.
struct DuckDbApi {
  decltype(&::duckdb_create_config) create_config = nullptr;
  decltype(&::duckdb_set_config) set_config = nullptr;
  decltype(&::duckdb_destroy_config) destroy_config = nullptr;
  decltype(&::duckdb_open_ext) open_ext = nullptr;
  decltype(&::duckdb_free) free = nullptr;
  decltype(&::duckdb_connect) connect = nullptr;
  decltype(&::duckdb_disconnect) disconnect = nullptr;
  decltype(&::duckdb_close) close = nullptr;
  decltype(&::duckdb_query) query = nullptr;
  decltype(&::duckdb_result_error) result_error = nullptr;
  decltype(&::duckdb_result_error_type) result_error_type = nullptr;
  decltype(&::duckdb_destroy_result) destroy_result = nullptr;
  decltype(&::duckdb_column_count) column_count = nullptr;
  decltype(&::duckdb_row_count) row_count = nullptr;
  decltype(&::duckdb_column_name) column_name = nullptr;
  decltype(&::duckdb_value_is_null) value_is_null = nullptr;
  decltype(&::duckdb_value_varchar) value_varchar = nullptr;
  decltype(&::duckdb_prepare) prepare = nullptr;
  decltype(&::duckdb_prepare_error) prepare_error = nullptr;
  decltype(&::duckdb_destroy_prepare) destroy_prepare = nullptr;
  decltype(&::duckdb_extract_statements) extract_statements = nullptr;
  decltype(&::duckdb_extract_statements_error) extract_statements_error = nullptr;
  decltype(&::duckdb_destroy_extracted) destroy_extracted = nullptr;
};

template <typename Fn>
absl::Status Load(void* handle, const char* name, Fn& out) {
  out = reinterpret_cast<Fn>(dlsym(handle, name));
  if (out == nullptr) return absl::InternalError(Cat("libduckdb.so has no ", name));
  return absl::OkStatus();
}

absl::StatusOr<const DuckDbApi*> Api() {
  static absl::StatusOr<DuckDbApi> loaded = []() -> absl::StatusOr<DuckDbApi> {
    // Found through the binary's run path (set at build time), then the usual places.
    void* handle = dlopen("libduckdb.so", RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      return absl::FailedPreconditionError(
          Cat("cannot load DuckDB (needed by SQL steps): ", dlerror(),
              " -- run scripts/bootstrap.sh, or put libduckdb.so on LD_LIBRARY_PATH"));
    }
    DuckDbApi api;
    RETURN_IF_ERROR(Load(handle, "duckdb_create_config", api.create_config));
    RETURN_IF_ERROR(Load(handle, "duckdb_set_config", api.set_config));
    RETURN_IF_ERROR(Load(handle, "duckdb_destroy_config", api.destroy_config));
    RETURN_IF_ERROR(Load(handle, "duckdb_open_ext", api.open_ext));
    RETURN_IF_ERROR(Load(handle, "duckdb_free", api.free));
    RETURN_IF_ERROR(Load(handle, "duckdb_connect", api.connect));
    RETURN_IF_ERROR(Load(handle, "duckdb_disconnect", api.disconnect));
    RETURN_IF_ERROR(Load(handle, "duckdb_close", api.close));
    RETURN_IF_ERROR(Load(handle, "duckdb_query", api.query));
    RETURN_IF_ERROR(Load(handle, "duckdb_result_error", api.result_error));
    RETURN_IF_ERROR(Load(handle, "duckdb_result_error_type", api.result_error_type));
    RETURN_IF_ERROR(Load(handle, "duckdb_destroy_result", api.destroy_result));
    RETURN_IF_ERROR(Load(handle, "duckdb_column_count", api.column_count));
    RETURN_IF_ERROR(Load(handle, "duckdb_row_count", api.row_count));
    RETURN_IF_ERROR(Load(handle, "duckdb_column_name", api.column_name));
    RETURN_IF_ERROR(Load(handle, "duckdb_value_is_null", api.value_is_null));
    RETURN_IF_ERROR(Load(handle, "duckdb_value_varchar", api.value_varchar));
    RETURN_IF_ERROR(Load(handle, "duckdb_prepare", api.prepare));
    RETURN_IF_ERROR(Load(handle, "duckdb_prepare_error", api.prepare_error));
    RETURN_IF_ERROR(Load(handle, "duckdb_destroy_prepare", api.destroy_prepare));
    RETURN_IF_ERROR(Load(handle, "duckdb_extract_statements", api.extract_statements));
    RETURN_IF_ERROR(Load(handle, "duckdb_extract_statements_error", api.extract_statements_error));
    RETURN_IF_ERROR(Load(handle, "duckdb_destroy_extracted", api.destroy_extracted));
    return api;
  }();
  if (!loaded.ok()) return loaded.status();
  return &*loaded;
}

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

// The statement's first word, upper-cased, after blanks and comments; "(" for a parenthesis.
// Only names the statement in a message: what is allowed is decided by the parser.
bool IsWordChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_'; }

// The position of the first character of `sql` from `i` on that is neither white space nor in a
// comment, as DuckDB's lexer skips them: "--" to the end of the line ('\n' or '\r'), and
// "/* ... */", which nest.
size_t SkipSpaceAndComments(std::string_view sql, size_t i) {
  for (;;) {
    while (i < sql.size() && std::isspace(static_cast<unsigned char>(sql[i]))) ++i;
    if (sql.substr(i, 2) == "--") {
      i = std::min(sql.size(), sql.find_first_of("\n\r", i));
    } else if (sql.substr(i, 2) == "/*") {
      int depth = 0;
      do {
        if (sql.substr(i, 2) == "/*") {
          ++depth;
          i += 2;
        } else if (sql.substr(i, 2) == "*/") {
          --depth;
          i += 2;
        } else {
          ++i;
        }
      } while (depth > 0 && i < sql.size());
    } else {
      return i;
    }
  }
}

std::string LeadingKeyword(std::string_view sql) {
  size_t i = SkipSpaceAndComments(sql, 0);
  if (i >= sql.size()) return "";
  if (sql[i] == '(') return "(";
  std::string word;
  while (i < sql.size() && IsWordChar(sql[i])) {
    word += static_cast<char>(std::toupper(static_cast<unsigned char>(sql[i++])));
  }
  return word.empty() ? "this" : word;
}

// Whether `sql` holds the words IMPORT DATABASE anywhere, with only white space or comments
// between them, quotes or not. DuckDB's parser itself executes IMPORT DATABASE (it reads the
// directory's schema.sql and load.sql), so such text must never reach the parser, not even to
// be counted: text that closes barge's parentheses ("SELECT 1) TO 'x'; IMPORT DATABASE ...")
// would reach it as a statement of its own. Quotes are not followed, so the scan cannot be led
// astray by them; a query with these words inside a string is refused too. This gives the clear
// message; what guarantees that nothing is read is that the parser runs without file access
// (Statements), which also stops PRAGMA import_database and forms no scan foresees.
bool MentionsImportDatabase(std::string_view sql) {
  auto word_at = [&](size_t i, std::string_view word) {
    if (i + word.size() > sql.size() || (i > 0 && IsWordChar(sql[i - 1]))) return false;
    for (size_t k = 0; k < word.size(); ++k) {
      if (std::toupper(static_cast<unsigned char>(sql[i + k])) != word[k]) return false;
    }
    return i + word.size() == sql.size() || !IsWordChar(sql[i + word.size()]);
  };
  for (size_t i = 0; i < sql.size(); ++i) {
    if (!word_at(i, "IMPORT")) continue;
    if (word_at(SkipSpaceAndComments(sql, i + 6), "DATABASE")) return true;
  }
  return false;
}

bool IsQueryKeyword(const std::string& word) {
  for (const char* q : {"(", "SELECT", "FROM", "WITH", "VALUES", "TABLE", "PIVOT", "PIVOT_WIDER",
                        "UNPIVOT", "PIVOT_LONGER"}) {
    if (word == q) return true;
  }
  return false;
}

class DuckDbSession : public SqlSession {
 public:
  explicit DuckDbSession(const DuckDbApi& api) : api_(&api) {}
  ~DuckDbSession() override {
    if (conn_ != nullptr) api_->disconnect(&conn_);
    if (db_ != nullptr) api_->close(&db_);
  }

  absl::Status Open(const SqlOptions& options) {
    duckdb_config config = nullptr;
    if (api_->create_config(&config) == DuckDBError) {
      return absl::InternalError("duckdb: cannot create a config");
    }
    absl::Status configured = absl::OkStatus();
    auto set = [&](const char* name, const std::string& value) {
      if (api_->set_config(config, name, value.c_str()) == DuckDBError && configured.ok()) {
        configured = absl::InternalError(Cat("duckdb: cannot set ", name, " = ", value));
      }
    };
    if (options.threads > 0) set("threads", std::to_string(options.threads));
    if (options.memory_limit > 0) set("memory_limit", Cat(options.memory_limit / 1024, "KiB"));
    if (!options.temp_dir.empty()) set("temp_directory", options.temp_dir);
    // Nothing is fetched from the network or loaded behind the query's back, and the query
    // cannot undo any of this: lock_configuration refuses every later SET.
    set("autoinstall_known_extensions", "false");
    set("autoload_known_extensions", "false");
    set("allow_community_extensions", "false");
    if (!options.external_access) set("enable_external_access", "false");
    set("lock_configuration", "true");
    if (!configured.ok()) {
      api_->destroy_config(&config);
      return configured;
    }
    char* error = nullptr;
    duckdb_state state = api_->open_ext(nullptr, &db_, config, &error);
    api_->destroy_config(&config);
    if (state == DuckDBError) {
      std::string message = error != nullptr ? error : "unknown error";
      api_->free(error);
      return absl::InternalError(Cat("duckdb: opening: ", message));
    }
    if (api_->connect(db_, &conn_) == DuckDBError) {
      return absl::InternalError("duckdb: cannot connect");
    }
    return absl::OkStatus();
  }

  absl::StatusOr<SqlResult> Query(std::string_view sql) override {
    duckdb_result result;
    std::string text(sql);
    if (api_->query(conn_, text.c_str(), &result) == DuckDBError) {
      const char* message = api_->result_error(&result);
      absl::Status s = ErrorFor(api_->result_error_type(&result),
                                message != nullptr ? message : "unknown error");
      api_->destroy_result(&result);
      return s;
    }
    SqlResult out;
    idx_t columns = api_->column_count(&result);
    idx_t rows = api_->row_count(&result);
    for (idx_t c = 0; c < columns; ++c) out.columns.push_back(api_->column_name(&result, c));
    out.rows.reserve(rows);
    for (idx_t r = 0; r < rows; ++r) {
      std::vector<std::optional<std::string>> row;
      for (idx_t c = 0; c < columns; ++c) {
        if (api_->value_is_null(&result, c, r)) {
          row.push_back(std::nullopt);
          continue;
        }
        char* value = api_->value_varchar(&result, c, r);
        row.push_back(value != nullptr ? std::string(value) : std::string());
        api_->free(value);
      }
      out.rows.push_back(std::move(row));
    }
    api_->destroy_result(&result);
    return out;
  }

  absl::Status Prepare(std::string_view sql) override {
    duckdb_prepared_statement prepared = nullptr;
    std::string text(sql);
    absl::Status s = absl::OkStatus();
    if (api_->prepare(conn_, text.c_str(), &prepared) == DuckDBError) {
      const char* message = api_->prepare_error(prepared);
      s = absl::InvalidArgumentError(message != nullptr ? message : "cannot prepare the query");
    }
    api_->destroy_prepare(&prepared);
    return s;
  }

  absl::Status CheckQuery(std::string_view sql) override {
    // What runs is COPY (query) TO ...: only a query fits in those parentheses. The query alone
    // must also be one statement, or text such as "SELECT 1) TO 'x'; ATTACH ...; COPY (SELECT 1"
    // would fit by closing the parentheses itself.
    if (MentionsImportDatabase(sql)) {
      return absl::InvalidArgumentError(
          "IMPORT statement: a SQL step runs one read-only query (SELECT, FROM, WITH, "
          "VALUES, TABLE, PIVOT or UNPIVOT); barge writes its result to the step's output "
          "itself (the words IMPORT DATABASE are refused anywhere in a query, strings included)");
    }
    absl::StatusOr<idx_t> wrapped = Statements(Cat("COPY ", AsSubquery(sql), " TO 'x'"));
    if (wrapped.ok() && *wrapped == 1) return CountIsOne(sql);
    std::string keyword = LeadingKeyword(sql);
    ASSIGN_OR_RETURN(idx_t count, Statements(std::string(sql)));
    if (count != 1) {
      return absl::InvalidArgumentError(
          Cat("expected one SQL query, found ", count, " statements"));
    }
    if (IsQueryKeyword(keyword)) {
      return absl::InvalidArgumentError(
          Cat("the query cannot run as a subquery (a ';' or text after it?)",
              wrapped.ok() ? "" : Cat(": ", wrapped.status().message())));
    }
    return absl::InvalidArgumentError(
        Cat(keyword,
            " statement: a SQL step runs one read-only query (SELECT, FROM, WITH, "
            "VALUES, TABLE, PIVOT or UNPIVOT); barge writes its result to the step's "
            "output itself"));
  }

 private:
  // How many statements DuckDB's parser finds in `sql`; its error if it finds none. Parsing
  // runs pragmas such as import_database, which read files: it is done in a database of its own
  // without file access, so that no text, however crafted, makes checking it read anything.
  absl::StatusOr<idx_t> Statements(const std::string& sql) {
    if (checker_ == nullptr) {
      auto checker = std::make_unique<DuckDbSession>(*api_);
      RETURN_IF_ERROR(checker->Open({.threads = 1, .external_access = false}));
      checker_ = std::move(checker);
    }
    duckdb_extracted_statements statements = nullptr;
    idx_t count = api_->extract_statements(checker_->conn_, sql.c_str(), &statements);
    absl::StatusOr<idx_t> out = count;
    if (count == 0) {
      const char* message = api_->extract_statements_error(statements);
      out = absl::InvalidArgumentError(message != nullptr ? message : "no SQL statement");
    }
    api_->destroy_extracted(&statements);
    return out;
  }
  absl::Status CountIsOne(std::string_view sql) {
    ASSIGN_OR_RETURN(idx_t count, Statements(std::string(sql)));
    if (count == 1) return absl::OkStatus();
    return absl::InvalidArgumentError(Cat("expected one SQL query, found ", count, " statements"));
  }

  const DuckDbApi* api_;
  duckdb_database db_ = nullptr;
  duckdb_connection conn_ = nullptr;
  std::unique_ptr<DuckDbSession> checker_;  // for Statements(); opened on first use
};

}  // namespace

absl::StatusOr<std::unique_ptr<SqlSession>> OpenDuckDb(const SqlOptions& options) {
  absl::StatusOr<const DuckDbApi*> api = Api();
  if (!api.ok()) return api.status();
  auto session = std::make_unique<DuckDbSession>(**api);
  if (absl::Status s = session->Open(options); !s.ok()) return s;
  return std::unique_ptr<SqlSession>(std::move(session));
}

std::string AsSubquery(std::string_view query) {
  size_t end = query.size();
  while (end > 0 &&
         (query[end - 1] == ';' || std::isspace(static_cast<unsigned char>(query[end - 1])))) {
    --end;
  }
  return Cat("(\n", query.substr(0, end), "\n)");
}

std::string SqlQuote(std::string_view text) { return Cat("'", ReplaceAll(text, "'", "''"), "'"); }

}  // namespace barge
