// The store's one mapping of libpqxx exceptions to absl::Status. Every place
// that talks to PostgreSQL (Session, StatsReader, the migrator, Listener)
// converts its failures here, so a SQLSTATE means the same status everywhere.
//
// Statuses carry fixed, actionable messages: never SQL text, row values or
// connection parameters. The exception's own text goes to the log (warning,
// with the operation and SQLSTATE), where operators can read it.
#pragma once

#include <exception>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace spool::store {

// Where a statement or transaction failed.
struct PgFailureContext {
  // Names the operation in the log line ("lease", "migrate", ...).
  absl::string_view op;
  // Whether the connection was still open after the failure
  // (pqxx::connection::is_open()); a closed one is always lost.
  bool connection_open = true;
  // True when the caller set statement_timeout itself (the stats reader):
  // SQLSTATE 57014 is then its own deadline expiring, DEADLINE_EXCEEDED with
  // the connection kept, instead of an operator cancelling it (UNAVAILABLE).
  bool own_statement_timeout = false;
  // False to skip the warning (a reconnect loop that already reported the
  // outage).
  bool log = true;
};

// Maps `error`, thrown by a statement or transaction on an open connection:
//   broken_connection              UNAVAILABLE (may or may not have taken
//                                  effect), connection lost
//   in_doubt_error                 UNAVAILABLE (lost while committing), lost
//   statement_completion_unknown   UNAVAILABLE (outcome unknown)
//   transaction_rollback (40xxx)   ABORTED (serialization failure, deadlock)
//   sql_error by SQLSTATE class    08, 57: UNAVAILABLE, lost; 53: UNAVAILABLE
//                                  (out of resources); 40: ABORTED; 22:
//                                  INVALID_ARGUMENT; others INTERNAL
//   anything else                  INTERNAL (UNAVAILABLE when lost)
// Any failure on a connection that is no longer open counts as lost. Sets
// *connection_lost (when not null) to whether the connection must be
// replaced.
absl::Status PgErrorToStatus(std::exception_ptr error,
                             const PgFailureContext& context,
                             bool* connection_lost);

// Maps `error`, thrown while opening a connection (and preparing it), to
// UNAVAILABLE. The message keeps libpq's reason (host unreachable,
// authentication failed, ...; libpq never includes the password), which is
// what the operator needs to fix the URL. `purpose`, when not empty, says
// why spoold connected ("to migrate").
absl::Status PgConnectErrorToStatus(std::exception_ptr error,
                                    absl::string_view purpose);

}  // namespace spool::store
