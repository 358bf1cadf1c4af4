// A throwaway PostgreSQL and spoold for --start, started with the test
// support launchers (tests/support: TestPostgres, SpooldProcess), whose ports
// the OS chooses and keeps reserved, and the few direct database operations
// the scenarios need on it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tests/support/spoold_process.h"
#include "tests/support/test_postgres.h"

namespace spool::bench {

class LocalServer {
 public:
  // Starts PostgreSQL (durable settings) and `spoold_binary
  // --database_url=... --listen=127.0.0.1:PORT --migrate --metrics_listen=
  // --log_level=warning SPOOLD_FLAGS...`, and waits until spoold serves.
  static absl::StatusOr<std::unique_ptr<LocalServer>> Start(
      const std::string& spoold_binary,
      const std::vector<std::string>& spoold_flags);

  // Terminates spoold (SIGTERM, waits), then stops PostgreSQL and removes
  // its directory. Idempotent; also run by the destructor.
  void Stop();
  ~LocalServer() { Stop(); }

  std::string target() const { return spoold_->Target(); }
  // postgresql://spool@127.0.0.1:PORT/postgres, the database spoold uses.
  std::string url() const { return postgres_->AdminUrl(); }
  int spoold_pid() const { return spoold_->Pid(); }
  int postgres_pid() const { return postgres_->Pid(); }

  // Vacuums and analyzes the jobs table (as pgbench vacuums before a run), so
  // a scenario does not pay for an autovacuum of the previous one's rows,
  // then lets the machine go quiet.
  void Settle();
  // Creates `queue` with a max depth (spoold reads it on the queue's first
  // use).
  absl::Status LimitQueue(const std::string& queue, int64_t max_depth);
  // Connections to spoold's database other than this one's; -1 on error.
  int64_t DatabaseConnections();

 private:
  LocalServer() = default;

  std::unique_ptr<testing::TestPostgres> postgres_;
  std::unique_ptr<testing::SpooldProcess> spoold_;
};

}  // namespace spool::bench
