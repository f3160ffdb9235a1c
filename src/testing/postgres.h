// Test support: a schema of its own on a shared PostgreSQL test server, so tests running at the
// same time never see each other's tables. Used by the unit and end-to-end tests alike.
#pragma once

#include <cctype>
#include <functional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/status.h"
#include "common/strings.h"
#include "fmt/format.h"
#include "store/pg_db.h"

namespace barge {

// Creates (if missing; reopening a store must find its tables) the schema `prefix` + `name`
// (lowercased, other characters as '_'; a name past PostgreSQL's 63-character limit is cut and
// given a hash of the whole, so that long test names that differ only at the end never share a
// schema) on the server at `base_url`, and returns a URL whose connections use it.
inline absl::StatusOr<std::string> PostgresSchemaUrl(const std::string& base_url,
                                                     std::string_view prefix,
                                                     std::string_view name) {
  std::string schema(prefix);
  for (char c : name) {
    schema +=
        std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::tolower(c)) : '_';
  }
  constexpr size_t kMaxIdentifier = 63;
  if (schema.size() > kMaxIdentifier) {
    std::string hash = fmt::format("_{:016x}", std::hash<std::string>{}(schema));
    schema = schema.substr(0, kMaxIdentifier - hash.size()) + hash;
  }
  ASSIGN_OR_RETURN(std::unique_ptr<PgDb> admin, PgDb::Open(base_url));
  RETURN_IF_ERROR(admin->Exec(Cat("CREATE SCHEMA IF NOT EXISTS ", schema)));
  return Cat(base_url, "?options=-csearch_path%3D", schema);
}

}  // namespace barge
