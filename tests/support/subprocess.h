// Child processes for tests: spawning, reaping, ports and temp dirs.
//
// Used by TestPostgres and SpooldProcess. Every child is forked from one
// long-lived helper thread and gets a parent-death signal, so a test binary
// that crashes or is killed by a ctest timeout does not leak servers.
#pragma once

#include <sys/types.h>

#include <csignal>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace spool::testing {

// A user to run a child as (used to run PostgreSQL as `postgres` when root).
struct RunAsUser {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string name;
};

// How to start a child process.
struct SpawnOptions {
  // argv[0] must be a path to the executable.
  std::vector<std::string> argv;
  // Variables set (or overriding) on top of the inherited environment.
  std::vector<std::pair<std::string, std::string>> set_env;
  // Prefixes of inherited variables to drop, e.g. "PG".
  std::vector<std::string> drop_env_prefixes;
  // stdout and stderr are appended to this file; empty means /dev/null.
  std::string output_path;
  // The child's working directory; empty keeps the current one.
  std::string working_dir;
  // Switch to this user before exec (needs root).
  std::optional<RunAsUser> run_as;
  // Sent to the child when the test process dies.
  int death_signal = SIGKILL;
};

// Starts a child process; fails if it cannot be forked or exec'd.
absl::StatusOr<pid_t> Spawn(const SpawnOptions& options);

// Reaps `pid` if it has exited: its wait status, or nullopt while it runs.
std::optional<int> TryReap(pid_t pid);

// Waits up to `timeout` for `pid` to exit and returns its wait status.
// DeadlineExceeded if it is still running then.
absl::StatusOr<int> WaitForExit(pid_t pid, absl::Duration timeout);

// Sends `signal`, waits up to `timeout`, then SIGKILLs and reaps. Returns the
// wait status. Never leaves a zombie.
int SignalAndReap(pid_t pid, int signal, absl::Duration timeout);

// Runs a command to completion (up to `timeout`) and returns its exit code.
absl::StatusOr<int> RunToCompletion(const SpawnOptions& options,
                                    absl::Duration timeout);

// A wait status as a shell would show it: the exit code, or 128 + signal.
int ExitCode(int wait_status);

// "exit code 3" / "killed by signal 9 (Killed)".
std::string DescribeWaitStatus(int wait_status);

// A loopback TCP port that is free right now (bind to port 0). Racy: another
// process may take it before the caller binds it; servers the tests start
// use PortReservation instead.
absl::StatusOr<int> PickFreePort();

// A loopback TCP port the OS chose (bind to 127.0.0.1:0), kept out of
// everyone else's hands while this object lives: it holds a bound socket with
// SO_REUSEADDR that never listens. Linux then gives the port to no other
// bind(port 0) or outgoing connection and refuses it to binders without
// SO_REUSEADDR, while a server that sets SO_REUSEADDR on its listening socket
// (PostgreSQL and gRPC both do) can still bind and listen on it. So there is
// no window between choosing the port and the server binding it, and a
// server restarted on the same port finds it still free.
class PortReservation {
 public:
  static absl::StatusOr<PortReservation> Reserve();

  PortReservation() = default;
  PortReservation(PortReservation&& other) noexcept;
  PortReservation& operator=(PortReservation&& other) noexcept;
  ~PortReservation();

  // 0 when empty (default-constructed or moved from).
  int port() const { return port_; }

 private:
  PortReservation(int fd, int port) : fd_(fd), port_(port) {}

  int fd_ = -1;
  int port_ = 0;
};

// mkdtemp with the given name prefix under `parent`, or under $TMPDIR (else
// /tmp) when `parent` is empty.
absl::StatusOr<std::string> MakeTempDir(absl::string_view prefix,
                                        absl::string_view parent = "");

// The last `max_bytes` of a file ("" if it cannot be read).
std::string ReadFileTail(const std::string& path, size_t max_bytes);

// Appends a line to a file (used to mark restarts in logs).
void AppendToFile(const std::string& path, absl::string_view text);

// The `postgres` system user when this process runs as root, nullopt when
// not root, or an error when root but there is no such user.
absl::StatusOr<std::optional<RunAsUser>> PostgresUserIfRoot();

}  // namespace spool::testing
