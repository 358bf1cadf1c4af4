#include "store/pg_error.h"

#include <pqxx/pqxx>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/log.h"

namespace spool::store {
namespace {

void Warn(const PgFailureContext& context, const char* msg,
          std::initializer_list<LogField> fields) {
  if (!context.log) return;
  Log(LogLevel::kWarning, msg, fields);
}

// Maps an sql_error by its SQLSTATE class.
absl::Status SqlErrorToStatus(const pqxx::sql_error& e,
                              const PgFailureContext& context, bool* lost) {
  const std::string& state = e.sqlstate();
  const std::string cls = state.substr(0, 2);
  Warn(context, "database error",
       {{"op", context.op}, {"sqlstate", state}, {"error", e.what()}});
  if (context.own_statement_timeout && state == "57014") {
    return absl::DeadlineExceededError(
        "the database statement ran past its statement_timeout");
  }
  if (cls == "08" || cls == "57" || !context.connection_open) {
    *lost = true;
    return absl::UnavailableError("the database is unavailable");
  }
  if (cls == "53") {
    return absl::UnavailableError("the database is out of resources");
  }
  if (cls == "40") {
    return absl::AbortedError("the database aborted a conflicting update");
  }
  if (cls == "22") {
    return absl::InvalidArgumentError("the database rejected a value");
  }
  return absl::InternalError(absl::StrCat("database error ", state));
}

absl::Status Classify(std::exception_ptr error, const PgFailureContext& context,
                      bool* lost) {
  const bool open = context.connection_open;
  try {
    std::rethrow_exception(error);
  } catch (const pqxx::broken_connection& e) {
    *lost = true;
    Warn(context, "database connection lost",
         {{"op", context.op}, {"error", e.what()}});
    // The statement may have committed before the connection went: say so,
    // so callers retry only what is safe to repeat (e.g. with an
    // idempotency key).
    return absl::UnavailableError(
        "the database connection was lost during the call; it may or may "
        "not have taken effect");
  } catch (const pqxx::in_doubt_error& e) {
    *lost = true;
    Warn(context, "database commit in doubt",
         {{"op", context.op}, {"error", e.what()}});
    return absl::UnavailableError(
        "the database connection was lost while committing");
  } catch (const pqxx::statement_completion_unknown& e) {
    *lost = !open;
    Warn(context, "database statement outcome unknown",
         {{"op", context.op}, {"error", e.what()}});
    return absl::UnavailableError(
        "the database could not tell whether the call took effect");
  } catch (const pqxx::transaction_rollback& e) {
    // Serialization failures and deadlocks (SQLSTATE class 40). In libpqxx 6
    // these are not sql_errors, so they are caught here.
    *lost = !open;
    Warn(context, "database conflict",
         {{"op", context.op}, {"error", e.what()}});
    return absl::AbortedError("the database aborted a conflicting update");
  } catch (const pqxx::sql_error& e) {
    return SqlErrorToStatus(e, context, lost);
  } catch (const std::exception& e) {
    *lost = !open;
    Warn(context, "database failure",
         {{"op", context.op}, {"error", e.what()}});
  } catch (...) {
    *lost = !open;
    Warn(context, "database failure",
         {{"op", context.op}, {"error", "unknown exception"}});
  }
  if (*lost) return absl::UnavailableError("the database is unavailable");
  return absl::InternalError("unexpected database failure");
}

}  // namespace

absl::Status PgErrorToStatus(std::exception_ptr error,
                             const PgFailureContext& context,
                             bool* connection_lost) {
  bool lost = false;
  absl::Status status = Classify(error, context, &lost);
  if (connection_lost != nullptr) *connection_lost = lost;
  return status;
}

absl::Status PgConnectErrorToStatus(std::exception_ptr error,
                                    absl::string_view purpose) {
  const std::string why = purpose.empty() ? "" : absl::StrCat(" ", purpose);
  try {
    std::rethrow_exception(error);
  } catch (const pqxx::broken_connection& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot connect to PostgreSQL", why, ": ", e.what()));
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot open a PostgreSQL session", why, ": ", e.what()));
  } catch (...) {
    return absl::UnavailableError(
        absl::StrCat("cannot open a PostgreSQL session", why));
  }
}

}  // namespace spool::store
