// The store's one libpqxx-exception mapping, on exception objects built in
// the test: no database. Pins every code and message that callers (and
// clients, through the gRPC edge) see.
#include "store/pg_error.h"

#include <gtest/gtest.h>

#include <exception>
#include <pqxx/pqxx>
#include <stdexcept>
#include <string>

namespace spool::store {
namespace {

struct Mapped {
  absl::Status status;
  bool lost = false;
};

template <typename E>
Mapped Map(const E& e, PgFailureContext context = {.op = "test"}) {
  Mapped m;
  m.lost = !m.lost;  // Overwritten: proves the flag is always set.
  m.status = PgErrorToStatus(std::make_exception_ptr(e), context, &m.lost);
  return m;
}

pqxx::sql_error SqlError(const char* sqlstate) {
  return pqxx::sql_error("ERROR:  secret detail", "SELECT secret FROM t",
                         sqlstate);
}

TEST(PgErrorTest, BrokenConnectionIsUnavailableOutcomeUnknownAndLost) {
  Mapped m = Map(pqxx::broken_connection("server closed the connection"));
  EXPECT_EQ(m.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(m.status.message(),
            "the database connection was lost during the call; it may or may "
            "not have taken effect");
  EXPECT_TRUE(m.lost);
}

TEST(PgErrorTest, InDoubtCommitIsUnavailableAndLost) {
  Mapped m = Map(pqxx::in_doubt_error("commit in doubt"));
  EXPECT_EQ(m.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(m.status.message(),
            "the database connection was lost while committing");
  EXPECT_TRUE(m.lost);
}

TEST(PgErrorTest, StatementCompletionUnknownKeepsAnOpenConnection) {
  Mapped open = Map(pqxx::statement_completion_unknown("40003"));
  EXPECT_EQ(open.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(open.status.message(),
            "the database could not tell whether the call took effect");
  EXPECT_FALSE(open.lost);

  Mapped closed = Map(pqxx::statement_completion_unknown("40003"),
                      {.op = "test", .connection_open = false});
  EXPECT_EQ(closed.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(closed.lost);
}

TEST(PgErrorTest, SerializationFailureAndDeadlockAreAborted) {
  for (const Mapped& m : {Map(pqxx::serialization_failure("40001")),
                          Map(pqxx::deadlock_detected("40P01")),
                          Map(pqxx::transaction_rollback("40000"))}) {
    EXPECT_EQ(m.status.code(), absl::StatusCode::kAborted);
    EXPECT_EQ(m.status.message(), "the database aborted a conflicting update");
    EXPECT_FALSE(m.lost);
  }
  EXPECT_TRUE(Map(pqxx::serialization_failure("40001"),
                  {.op = "test", .connection_open = false})
                  .lost);
}

TEST(PgErrorTest, SqlErrorsMapBySqlstateClass) {
  struct Case {
    const char* sqlstate;
    absl::StatusCode code;
    const char* message;
    bool lost;
  };
  const Case cases[] = {
      {"08006", absl::StatusCode::kUnavailable, "the database is unavailable",
       true},
      {"57P01", absl::StatusCode::kUnavailable, "the database is unavailable",
       true},
      {"57014", absl::StatusCode::kUnavailable, "the database is unavailable",
       true},
      {"53300", absl::StatusCode::kUnavailable,
       "the database is out of resources", false},
      {"40001", absl::StatusCode::kAborted,
       "the database aborted a conflicting update", false},
      {"22P02", absl::StatusCode::kInvalidArgument,
       "the database rejected a value", false},
      {"42601", absl::StatusCode::kInternal, "database error 42601", false},
      {"23505", absl::StatusCode::kInternal, "database error 23505", false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.sqlstate);
    Mapped m = Map(SqlError(c.sqlstate));
    EXPECT_EQ(m.status.code(), c.code);
    EXPECT_EQ(m.status.message(), c.message);
    EXPECT_EQ(m.lost, c.lost);
  }
}

TEST(PgErrorTest, SqlErrorOnAClosedConnectionIsUnavailableAndLost) {
  Mapped m = Map(SqlError("42601"), {.op = "test", .connection_open = false});
  EXPECT_EQ(m.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(m.status.message(), "the database is unavailable");
  EXPECT_TRUE(m.lost);
}

TEST(PgErrorTest, OwnStatementTimeoutIsADeadlineAndKeepsTheConnection) {
  Mapped m = Map(
      SqlError("57014"),
      {.op = "test", .connection_open = true, .own_statement_timeout = true});
  EXPECT_EQ(m.status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_FALSE(m.lost);
  // Other class-57 states still mean the server is going away.
  Mapped shutdown = Map(
      SqlError("57P01"),
      {.op = "test", .connection_open = true, .own_statement_timeout = true});
  EXPECT_EQ(shutdown.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(shutdown.lost);
}

TEST(PgErrorTest, MessagesNeverCarrySqlTextOrServerDetail) {
  for (const char* state : {"08006", "53300", "40001", "22P02", "42601"}) {
    Mapped m = Map(SqlError(state));
    EXPECT_EQ(std::string(m.status.message()).find("secret"), std::string::npos)
        << m.status;
  }
  Mapped broken = Map(pqxx::broken_connection("host=db password=secret"));
  EXPECT_EQ(std::string(broken.status.message()).find("secret"),
            std::string::npos);
}

TEST(PgErrorTest, OtherFailuresAreInternalUnlessTheConnectionIsGone) {
  Mapped usage = Map(pqxx::usage_error("bad use"));
  EXPECT_EQ(usage.status.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(usage.status.message(), "unexpected database failure");
  EXPECT_FALSE(usage.lost);

  Mapped closed =
      Map(std::runtime_error("boom"), {.op = "test", .connection_open = false});
  EXPECT_EQ(closed.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(closed.status.message(), "the database is unavailable");
  EXPECT_TRUE(closed.lost);

  Mapped odd = Map(42);  // Not even a std::exception.
  EXPECT_EQ(odd.status.code(), absl::StatusCode::kInternal);
}

TEST(PgErrorTest, NullConnectionLostPointerIsAllowed) {
  absl::Status s =
      PgErrorToStatus(std::make_exception_ptr(pqxx::broken_connection("x")),
                      {.op = "test"}, nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
}

TEST(PgErrorTest, ConnectFailuresAreUnavailableWithLibpqReason) {
  absl::Status refused = PgConnectErrorToStatus(
      std::make_exception_ptr(pqxx::broken_connection("Connection refused")),
      "to migrate");
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(refused.message(),
            "cannot connect to PostgreSQL to migrate: Connection refused");

  absl::Status prepare = PgConnectErrorToStatus(
      std::make_exception_ptr(pqxx::usage_error("prepare failed")), "");
  EXPECT_EQ(prepare.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(prepare.message(),
            "cannot open a PostgreSQL session: prepare failed");
}

}  // namespace
}  // namespace spool::store
