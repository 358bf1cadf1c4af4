// Schema migrations: the numbered files of migrations/, compiled into spoold,
// applied in order and recorded in spool_schema_migrations. An advisory lock
// makes concurrent starts of several replicas safe: one applies, the others
// wait and then find nothing left to do.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace spool::store {

struct Migration {
  int version = 0;
  std::string name;  // File name, e.g. "0001_init.sql".
  std::string sql;
};

// The migrations built into this binary, in version order.
const std::vector<Migration>& EmbeddedMigrations();

// Applies every pending migration, each in its own transaction. Returns the
// number applied.
absl::StatusOr<int> ApplyMigrations(const std::string& database_url);

// OK when the database has every migration this binary knows;
// FAILED_PRECONDITION naming the first missing one otherwise.
absl::Status CheckSchemaCurrent(const std::string& database_url);

}  // namespace spool::store
