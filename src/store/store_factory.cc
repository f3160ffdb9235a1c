#include <filesystem>

#include "common/fs.h"
#include "common/status.h"
#include "common/strings.h"
#include "store/pg_db.h"
#include "store/sql_store.h"
#include "store/sqlite_db.h"
#include "store/state_store.h"

namespace barge {

absl::StatusOr<std::unique_ptr<StateStore>> OpenStateStore(const std::string& url, Clock* clock) {
  if (url.starts_with("postgres://") || url.starts_with("postgresql://")) {
    ASSIGN_OR_RETURN(std::unique_ptr<PgDb> db, PgDb::Open(url));
    ASSIGN_OR_RETURN(std::unique_ptr<SqlStateStore> store,
                     SqlStateStore::Open(std::move(db), clock));
    return std::unique_ptr<StateStore>(std::move(store));
  }
  std::string path = url;
  if (path.starts_with("sqlite://")) {
    path = path.substr(9);
  } else if (path.starts_with("sqlite:")) {
    path = path.substr(7);
  } else if (path.find("://") != std::string::npos) {
    return absl::InvalidArgumentError(
        Cat("state store \"", url,
            "\": unsupported scheme (use a path, sqlite:PATH or postgres://...)"));
  }
  if (path.empty()) return absl::InvalidArgumentError("state store: empty path");
  std::filesystem::path parent = std::filesystem::path(AbsolutePath(path)).parent_path();
  RETURN_IF_ERROR(MakeDirs(parent.string()));
  ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db, SqliteDb::Open(path));
  ASSIGN_OR_RETURN(std::unique_ptr<SqlStateStore> store, SqlStateStore::Open(std::move(db), clock));
  return std::unique_ptr<StateStore>(std::move(store));
}

}  // namespace barge
