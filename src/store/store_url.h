// What a state store URL may be, decided in one place for OpenStateStore and the CLI.
//
//   postgres://USER:PASSWORD@HOST[:PORT]/DB[?...]   PostgreSQL (also postgresql://), checked by
//                                                   libpq's own parser without connecting
//   sqlite:PATH, sqlite://PATH                      SQLite, any path
//   PATH                                            SQLite, if the value does not look like
//                                                   anything else: no "scheme:" prefix, no
//                                                   "://", and no '=' before its first '/'
//
// Anything else is refused, never taken for a file name: an unsupported scheme (mysql://...), a
// malformed PostgreSQL URL (postgresql:/user:pw@host), a libpq keyword string
// (host=db password=x). Write a path that looks like one of these as sqlite:PATH or ./PATH.
// Error messages show the value with its password masked.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace barge {

struct StoreUrl {
  enum class Kind { kSqlite, kPostgres };
  Kind kind = Kind::kSqlite;
  std::string target;  // kSqlite: the file path as given; kPostgres: the URL
  // kPostgres: the password as libpq reads it from the URL (percent-decoded), "" if none; for
  // redaction.
  std::string password;
};

// Classifies `url` by the rules above. InvalidArgument, naming the problem, for what is refused.
absl::StatusOr<StoreUrl> ParseStoreUrl(const std::string& url);

}  // namespace barge
