// The state store's schema as versioned migrations, shared by every SQL implementation. Each
// migration is applied once, in order, inside a transaction, and recorded in schema_migrations.
// Never edit a released migration: add a new one.
#pragma once

#include <string>
#include <vector>

namespace barge {

struct Migration {
  int version;
  std::vector<std::string> statements;  // "{serial_pk}" is replaced per dialect
};

const std::vector<Migration>& Migrations();

}  // namespace barge
