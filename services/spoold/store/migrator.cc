#include "store/migrator.h"

#include <exception>
#include <memory>
#include <pqxx/pqxx>
#include <set>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "store/pg_error.h"

namespace spool::store {
namespace {

// Arbitrary constant shared by every spoold: "spool" in ASCII.
constexpr int64_t kMigrationLockKey = 0x73706f6f6c;

std::set<int> AppliedVersions(pqxx::connection& conn) {
  pqxx::nontransaction tx(conn);
  tx.exec(
      "CREATE TABLE IF NOT EXISTS spool_schema_migrations ("
      " version integer PRIMARY KEY,"
      " name text NOT NULL,"
      " applied_at timestamptz NOT NULL DEFAULT now())");
  std::set<int> out;
  for (const auto& row :
       tx.exec("SELECT version FROM spool_schema_migrations")) {
    out.insert(row[0].as<int>());
  }
  return out;
}

absl::StatusOr<std::unique_ptr<pqxx::connection>> Open(
    const std::string& database_url, absl::string_view purpose) {
  try {
    return std::make_unique<pqxx::connection>(database_url);
  } catch (...) {
    return PgConnectErrorToStatus(std::current_exception(), purpose);
  }
}

}  // namespace

absl::StatusOr<int> ApplyMigrations(const std::string& database_url) {
  auto owned = Open(database_url, "to migrate");
  if (!owned.ok()) return owned.status();
  pqxx::connection& conn = **owned;
  try {
    {
      pqxx::nontransaction tx(conn);
      // Quiet "already exists" notices from CREATE ... IF NOT EXISTS.
      tx.exec("SET client_min_messages = warning");
      tx.exec_params("SELECT pg_advisory_lock($1)", kMigrationLockKey);
    }
    int applied = 0;
    std::set<int> done = AppliedVersions(conn);
    for (const Migration& m : EmbeddedMigrations()) {
      if (done.count(m.version)) continue;
      pqxx::work tx(conn);
      tx.exec(m.sql);
      tx.exec_params(
          "INSERT INTO spool_schema_migrations (version, name) VALUES ($1, $2)",
          m.version, m.name);
      tx.commit();
      ++applied;
      LogInfo("applied migration", {{"version", m.version}, {"name", m.name}});
    }
    {
      pqxx::nontransaction tx(conn);
      tx.exec_params("SELECT pg_advisory_unlock($1)", kMigrationLockKey);
    }
    return applied;
  } catch (...) {
    absl::Status s = PgErrorToStatus(
        std::current_exception(),
        {.op = "migrate", .connection_open = conn.is_open()}, nullptr);
    return absl::Status(s.code(),
                        absl::StrCat("migration failed: ", s.message()));
  }
}

absl::Status CheckSchemaCurrent(const std::string& database_url) {
  auto owned = Open(database_url, "");
  if (!owned.ok()) return owned.status();
  pqxx::connection& conn = **owned;
  try {
    pqxx::nontransaction tx(conn);
    pqxx::row exists =
        tx.exec1("SELECT to_regclass('spool_schema_migrations') IS NOT NULL");
    std::set<int> done;
    if (exists[0].as<bool>()) {
      for (const auto& row :
           tx.exec("SELECT version FROM spool_schema_migrations")) {
        done.insert(row[0].as<int>());
      }
    }
    for (const Migration& m : EmbeddedMigrations()) {
      if (!done.count(m.version)) {
        return absl::FailedPreconditionError(absl::StrCat(
            "the database lacks migration ", m.name,
            ": run `spoold migrate` or start spoold with --migrate"));
      }
    }
    return absl::OkStatus();
  } catch (...) {
    absl::Status s = PgErrorToStatus(
        std::current_exception(),
        {.op = "check_schema", .connection_open = conn.is_open()}, nullptr);
    return absl::Status(
        s.code(),
        absl::StrCat("cannot read the schema version: ", s.message()));
  }
}

}  // namespace spool::store
