// A real spoold process for integration tests.
//
// Forks/execs the spoold binary on a loopback port the OS chose and that stays
// reserved for it while this object lives (see PortReservation), against a
// given database (with --migrate and metrics off), waits until
// grpc.health.v1 reports SERVING, and lets tests kill, terminate and restart
// it. The binary is the build's spoold ($<TARGET_FILE:spoold>), $SPOOLD_BIN if
// set, or the one Start() names.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/channel.h"
#include "tests/support/subprocess.h"

namespace spool::testing {

class SpooldProcess {
 public:
  using ServingStatus = ::grpc::health::v1::HealthCheckResponse::ServingStatus;

  // Starts `spoold --database_url=URL --listen=127.0.0.1:PORT --migrate
  // --metrics_listen= EXTRA_FLAGS...` and waits up to 20 s for SERVING.
  // `binary` (a spoold or a wrapper script that execs one) overrides
  // BinaryPath() when not empty.
  static absl::StatusOr<std::unique_ptr<SpooldProcess>> Start(
      std::string database_url, std::vector<std::string> extra_flags = {},
      std::string binary = "");

  // SIGKILLs the process if it still runs and removes its temp dir.
  ~SpooldProcess();

  SpooldProcess(const SpooldProcess&) = delete;
  SpooldProcess& operator=(const SpooldProcess&) = delete;

  // The spoold binary used: $SPOOLD_BIN, else the build's spoold.
  static absl::StatusOr<std::string> BinaryPath();

  // "127.0.0.1:PORT"; stays the same across Restart().
  std::string Target() const;
  int Port() const { return port_.port(); }

  // A shared channel to Target() (fast reconnects, no message size limit);
  // a new one after Restart().
  std::shared_ptr<grpc::Channel> Channel();
  // A separate channel (its own TCP connection) to Target().
  std::shared_ptr<grpc::Channel> NewChannel() const;

  // The process id, or -1 when not running.
  int Pid();
  bool IsRunning();

  // SIGKILL and reap.
  absl::Status Kill9();
  // SIGTERM, then wait up to `timeout` for exit; returns the exit code
  // (128 + signal if a signal ended it). On timeout it SIGKILLs and returns
  // DeadlineExceeded.
  absl::StatusOr<int> Terminate(absl::Duration timeout = absl::Seconds(30));
  // Starts the process again on the same port and flags (terminating it
  // first if it still runs) and waits for SERVING.
  absl::Status Restart();

  // One grpc.health.v1.Health/Check for service "".
  absl::StatusOr<ServingStatus> HealthStatus(
      absl::Duration timeout = absl::Seconds(2));
  // Polls HealthStatus() until it returns `want`.
  absl::Status WaitForHealth(ServingStatus want, absl::Duration timeout);

  // The end of spoold's stdout+stderr (all runs), for failure messages.
  std::string LogTail(size_t max_bytes = 16384) const;
  const std::string& LogPath() const { return log_path_; }

 private:
  SpooldProcess(std::string binary, std::string dir,
                std::vector<std::string> args);

  // Start-up; a port clash is reported as kAlreadyExists.
  absl::Status LaunchAndWait() ABSL_EXCLUSIVE_LOCKS_REQUIRED(lifecycle_mu_);
  absl::StatusOr<int> TerminateLocked(absl::Duration timeout)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(lifecycle_mu_);
  absl::Status Kill9Locked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(lifecycle_mu_);
  pid_t CurrentPid() const ABSL_LOCKS_EXCLUDED(mu_);

  const std::string binary_;
  const std::string dir_;
  const std::string log_path_;
  const std::vector<std::string> args_;  // Without --listen.
  const pid_t owner_pid_;
  // Held while this object lives, so Restart() finds the port free too.
  PortReservation port_;
  int runs_ ABSL_GUARDED_BY(lifecycle_mu_) = 0;

  // Serializes start/stop; held while waiting for the process.
  absl::Mutex lifecycle_mu_;
  // Guards the fields below; never held while waiting.
  mutable absl::Mutex mu_;
  pid_t pid_ ABSL_GUARDED_BY(mu_) = -1;
  std::shared_ptr<grpc::Channel> channel_ ABSL_GUARDED_BY(mu_);
};

}  // namespace spool::testing
