// A throwaway PostgreSQL server for tests.
//
// Each test binary starts one server (see SharedPostgres) in a fresh temp dir
// on a loopback port the OS chose and that stays reserved for it (see
// PortReservation), and each test gets isolation from a database of
// its own (CreateDatabase). The server keeps durable settings (fsync,
// synchronous_commit and full_page_writes on) so that crash and restart tests
// mean something. PostgreSQL refuses to run as root: when the tests run as
// root the server runs as the `postgres` system user.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "tests/support/subprocess.h"

namespace spool::testing {

class TestPostgres {
 public:
  // initdb into a new temp dir under /tmp, then start the server on
  // a reserved 127.0.0.1 port and wait until it accepts connections.
  static absl::StatusOr<std::unique_ptr<TestPostgres>> Start();

  // Stops the server (fast shutdown) and removes its directory.
  ~TestPostgres();

  TestPostgres(const TestPostgres&) = delete;
  TestPostgres& operator=(const TestPostgres&) = delete;

  // postgresql://spool@127.0.0.1:PORT/postgres (superuser, no password).
  std::string AdminUrl() const;
  // The URL of another database on this server.
  std::string UrlFor(absl::string_view database) const;

  // Creates a new, uniquely named, empty database and returns its URL.
  // Thread-safe.
  absl::StatusOr<std::string> CreateDatabase();

  // Fast shutdown (SIGINT): disconnects clients, checkpoints, waits for exit.
  // OK if already stopped.
  absl::Status Stop();
  // Starts the server again on the same directory and port and waits until
  // it accepts connections. OK if already running. (Not named Start: C++
  // cannot overload it with the static Start().)
  absl::Status StartAgain();
  // Stop() then StartAgain().
  absl::Status Restart();

  bool IsRunning();
  int Port() const { return port_.port(); }
  // The postmaster's process id, -1 when stopped.
  pid_t Pid();
  // The temp dir holding data/, the socket and postgres.log.
  const std::string& Dir() const { return dir_; }
  // The end of the server log, for failure messages.
  std::string LogTail(size_t max_bytes = 8192) const;

 private:
  TestPostgres(std::string dir, std::optional<RunAsUser> run_as);

  absl::Status InitDb();
  absl::Status WriteConfig();
  absl::Status Launch() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status StopLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string DataDir() const { return dir_ + "/data"; }
  std::string LogPath() const { return dir_ + "/postgres.log"; }

  const std::string dir_;
  const std::optional<RunAsUser> run_as_;
  const pid_t owner_pid_;  // Only this process stops and removes the server.
  // Held while this object lives, so a restart finds the port free too.
  PortReservation port_;
  std::atomic<int> next_database_{0};

  absl::Mutex mu_;
  pid_t pid_ ABSL_GUARDED_BY(mu_) = -1;  // The postmaster, -1 when stopped.
};

// One lazily started TestPostgres per test binary, stopped and removed at
// process exit. Thread-safe. If it cannot start, it records a gtest failure
// (with the reason) and returns nullptr: callers ASSERT_NE(..., nullptr).
TestPostgres* SharedPostgres();

// A fixture giving each test a fresh database on the shared server.
class PostgresTest : public ::testing::Test {
 protected:
  void SetUp() override;

  TestPostgres* postgres_ = nullptr;
  std::string database_url_;
};

}  // namespace spool::testing
