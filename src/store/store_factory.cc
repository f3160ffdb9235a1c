#include <libpq-fe.h>

#include <cctype>
#include <filesystem>

#include "common/fs.h"
#include "common/redact.h"
#include "common/status.h"
#include "common/strings.h"
#include "store/pg_db.h"
#include "store/sql_store.h"
#include "store/sqlite_db.h"
#include "store/state_store.h"
#include "store/store_url.h"

namespace barge {
namespace {

// No password in the example: every message is masked once more where it is printed.
constexpr const char* kForms =
    "use a path, sqlite:PATH or postgres://USER@HOST/DB, with the password after USER: "
    "or in PGPASSWORD";

// The "scheme" of "scheme:rest" (RFC 3986: a letter, then letters, digits, '+', '-', '.'), or "".
std::string SchemeOf(const std::string& url) {
  size_t colon = url.find(':');
  if (colon == std::string::npos || colon == 0 ||
      std::isalpha(static_cast<unsigned char>(url[0])) == 0) {
    return "";
  }
  for (size_t i = 0; i < colon; ++i) {
    char c = url[i];
    if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '+' && c != '-' && c != '.') {
      return "";
    }
  }
  std::string scheme = url.substr(0, colon);
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return scheme;
}

absl::Status Refuse(const std::string& url, std::string_view why) {
  return absl::InvalidArgumentError(
      Cat("state store \"", MaskSecretsInText(url), "\": ", why, " (", kForms, ")"));
}

// libpq's own URI parser, without connecting: catches what it would refuse later, with its
// reason. Returns the password it found.
absl::StatusOr<std::string> CheckPostgresUrl(const std::string& url) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(url.c_str(), &error);
  if (options != nullptr) {
    std::string password;
    for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
      if (std::string_view(o->keyword) == "password" && o->val != nullptr) password = o->val;
    }
    PQconninfoFree(options);
    return password;
  }
  std::string why = error != nullptr ? std::string(Trim(error)) : "out of memory";
  if (error != nullptr) PQfreemem(error);
  return Refuse(url, Cat("not a valid PostgreSQL URL: ", MaskPasswordOf(url, why)));
}

// Whether libpq would read `value` as a keyword/value connection string (host=... password=...):
// its own parser accepts it. A file name such as "dt=2024-05-01/state.db" names no libpq keyword.
bool IsLibpqKeywordString(const std::string& value) {
  if (value.find('=') == std::string::npos) return false;
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(value.c_str(), &error);
  if (error != nullptr) PQfreemem(error);
  if (options == nullptr) return false;
  PQconninfoFree(options);
  return true;
}

// Schemes that are URLs even without "//" after them: a store value starting with one of these
// is a mistake, never a file name. Any other "word:" prefix ("backup-10:00.db") is part of a path.
bool IsUrlScheme(const std::string& scheme) {
  for (const char* s : {"file", "mysql", "mariadb", "http", "https", "s3", "redis", "sqlite3"}) {
    if (scheme == s) return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<StoreUrl> ParseStoreUrl(const std::string& url) {
  if (Trim(url).empty()) return Refuse(url, "empty");
  std::string scheme = SchemeOf(url);
  if (scheme == "postgres" || scheme == "postgresql") {
    if (!url.starts_with("postgres://") && !url.starts_with("postgresql://")) {
      return Refuse(url, Cat("malformed PostgreSQL URL: expected \"", scheme, "://\""));
    }
    ASSIGN_OR_RETURN(std::string password, CheckPostgresUrl(url));
    return StoreUrl{.kind = StoreUrl::Kind::kPostgres, .target = url, .password = password};
  }
  if (scheme == "sqlite") {
    std::string path = url.substr(url.compare(6, 3, "://") == 0 ? 9 : 7);
    if (path.empty()) return Refuse(url, "no path after \"sqlite:\"");
    return StoreUrl{.kind = StoreUrl::Kind::kSqlite, .target = path};
  }
  if (!scheme.empty() && (IsUrlScheme(scheme) || url.compare(scheme.size(), 3, "://") == 0)) {
    return Refuse(url, Cat("unsupported scheme \"", scheme, "\""));
  }
  if (url.find("://") != std::string::npos) return Refuse(url, "not a URL barge knows");
  if (IsLibpqKeywordString(url)) {
    return Refuse(url,
                  "looks like a libpq keyword string (host=... dbname=...), which barge does not "
                  "take; write it as a postgres:// URL, or a file name with '=' as ./NAME");
  }
  return StoreUrl{.kind = StoreUrl::Kind::kSqlite, .target = url};
}

absl::StatusOr<std::unique_ptr<StateStore>> OpenStateStore(const std::string& url, Clock* clock) {
  ASSIGN_OR_RETURN(StoreUrl where, ParseStoreUrl(url));
  if (where.kind == StoreUrl::Kind::kPostgres) {
    ASSIGN_OR_RETURN(std::unique_ptr<PgDb> db, PgDb::Open(where.target));
    ASSIGN_OR_RETURN(std::unique_ptr<SqlStateStore> store,
                     SqlStateStore::Open(std::move(db), clock));
    return std::unique_ptr<StateStore>(std::move(store));
  }
  std::filesystem::path parent = std::filesystem::path(AbsolutePath(where.target)).parent_path();
  RETURN_IF_ERROR(MakeDirs(parent.string()));
  ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db, SqliteDb::Open(where.target));
  ASSIGN_OR_RETURN(std::unique_ptr<SqlStateStore> store, SqlStateStore::Open(std::move(db), clock));
  return std::unique_ptr<StateStore>(std::move(store));
}

}  // namespace barge
