#include "tests/support/spoold_process.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "tests/support/subprocess.h"

namespace spool::testing {
namespace {

constexpr absl::Duration kStartTimeout = absl::Seconds(20);
constexpr absl::Duration kKillTimeout = absl::Seconds(10);
constexpr int kPortAttempts = 3;
constexpr char kRunMarker[] = "=== spool test: starting spoold";

// Whether `pid` (our child) still runs, without reaping it.
bool PeekRunning(pid_t pid) {
  if (pid <= 0) return false;
  siginfo_t info{};
  if (waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    return false;
  }
  return info.si_pid == 0;
}

// The log of the latest run only.
std::string LastRun(std::string log) {
  size_t at = log.rfind(kRunMarker);
  return at == std::string::npos ? log : log.substr(at);
}

bool LooksLikePortInUse(absl::string_view log) {
  return absl::StrContains(log, "ddress already in use") ||
         absl::StrContains(log, "ailed to add") ||
         absl::StrContains(log, "ailed to bind") ||
         absl::StrContains(log, "annot listen");
}

absl::Status FromGrpc(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

}  // namespace

SpooldProcess::SpooldProcess(std::string binary, std::string dir,
                             std::vector<std::string> args)
    : binary_(std::move(binary)),
      dir_(std::move(dir)),
      log_path_(dir_ + "/spoold.log"),
      args_(std::move(args)),
      owner_pid_(getpid()) {}

absl::StatusOr<std::string> SpooldProcess::BinaryPath() {
  if (const char* env = std::getenv("SPOOLD_BIN");
      env != nullptr && *env != '\0') {
    return std::string(env);
  }
#ifdef SPOOL_SPOOLD_PATH
  return std::string(SPOOL_SPOOLD_PATH);
#else
  return absl::NotFoundError(
      "no spoold binary: the build has no spoold target and SPOOLD_BIN is "
      "not set");
#endif
}

absl::StatusOr<std::unique_ptr<SpooldProcess>> SpooldProcess::Start(
    std::string database_url, std::vector<std::string> extra_flags,
    std::string binary_override) {
  absl::StatusOr<std::string> binary =
      binary_override.empty() ? BinaryPath() : std::move(binary_override);
  if (!binary.ok()) return binary.status();
  if (access(binary->c_str(), X_OK) != 0) {
    return absl::NotFoundError(
        absl::StrCat("spoold binary ", *binary, " is not executable"));
  }
  absl::StatusOr<std::string> dir = MakeTempDir("spoold-");
  if (!dir.ok()) return dir.status();

  std::vector<std::string> args = {
      absl::StrCat("--database_url=", database_url), "--migrate",
      "--metrics_listen="};
  for (std::string& flag : extra_flags) args.push_back(std::move(flag));
  std::unique_ptr<SpooldProcess> process(
      new SpooldProcess(*std::move(binary), *std::move(dir), std::move(args)));

  absl::MutexLock lock(&process->lifecycle_mu_);
  absl::Status last;
  for (int attempt = 0; attempt < kPortAttempts; ++attempt) {
    absl::StatusOr<PortReservation> port = PortReservation::Reserve();
    if (!port.ok()) return port.status();
    process->port_ = *std::move(port);
    // A clash needs a server binding this very port number with
    // SO_REUSEADDR (e.g. one configured with a fixed port).
    last = process->LaunchAndWait();
    if (!absl::IsAlreadyExists(last)) break;
  }
  if (!last.ok()) return last;
  return process;
}

SpooldProcess::~SpooldProcess() {
  if (getpid() != owner_pid_) return;  // A forked child must not touch it.
  {
    absl::MutexLock lock(&lifecycle_mu_);
    Kill9Locked().IgnoreError();
  }
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

absl::Status SpooldProcess::LaunchAndWait() {
  ++runs_;
  AppendToFile(log_path_, absl::StrCat(kRunMarker, " (run ", runs_,
                                       ") on port ", Port(), " ===\n"));
  SpawnOptions options;
  options.argv = {binary_, args_[0], absl::StrCat("--listen=", Target())};
  options.argv.insert(options.argv.end(), args_.begin() + 1, args_.end());
  options.output_path = log_path_;
  options.death_signal = SIGKILL;
  absl::StatusOr<pid_t> pid = Spawn(options);
  if (!pid.ok()) return pid.status();
  {
    absl::MutexLock lock(&mu_);
    pid_ = *pid;
    channel_ = NewChannel();
  }

  const absl::Time deadline = absl::Now() + kStartTimeout;
  for (;;) {
    if (!PeekRunning(*pid)) {
      int status = SignalAndReap(*pid, SIGKILL, kKillTimeout);
      {
        absl::MutexLock lock(&mu_);
        pid_ = -1;
      }
      const std::string log = LastRun(LogTail(16384));
      std::string message =
          absl::StrCat("spoold exited before serving (",
                       DescribeWaitStatus(status), "); log:\n", log);
      if (LooksLikePortInUse(log)) {
        return absl::AlreadyExistsError(message);
      }
      return absl::FailedPreconditionError(message);
    }
    absl::StatusOr<ServingStatus> health =
        HealthStatus(absl::Milliseconds(250));
    if (health.ok() &&
        *health == grpc::health::v1::HealthCheckResponse::SERVING) {
      return absl::OkStatus();
    }
    if (absl::Now() > deadline) {
      Kill9Locked().IgnoreError();
      return absl::DeadlineExceededError(absl::StrCat(
          "spoold not SERVING within ", absl::FormatDuration(kStartTimeout),
          " (last health check: ",
          health.ok()
              ? grpc::health::v1::HealthCheckResponse::ServingStatus_Name(
                    *health)
              : health.status().ToString(),
          "); log:\n", LastRun(LogTail(16384))));
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
}

std::string SpooldProcess::Target() const {
  return absl::StrCat("127.0.0.1:", Port());
}

std::shared_ptr<grpc::Channel> SpooldProcess::Channel() {
  absl::MutexLock lock(&mu_);
  if (channel_ == nullptr) channel_ = NewChannel();
  return channel_;
}

std::shared_ptr<grpc::Channel> SpooldProcess::NewChannel() const {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  // Reconnect quickly after a kill or restart (the default backoff is 1 s
  // growing to 120 s).
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  // (GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, despite its name, is the least
  // time a connection attempt may take: left at gRPC's 20 s, so bursts of
  // new connections to a busy spoold are not cut off.)
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // Its own TCP connection, not one shared with other channels.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(Target(), grpc::InsecureChannelCredentials(),
                                   args);
}

pid_t SpooldProcess::CurrentPid() const {
  absl::MutexLock lock(&mu_);
  return pid_;
}

int SpooldProcess::Pid() { return CurrentPid(); }

bool SpooldProcess::IsRunning() { return PeekRunning(CurrentPid()); }

absl::Status SpooldProcess::Kill9() {
  absl::MutexLock lock(&lifecycle_mu_);
  return Kill9Locked();
}

absl::Status SpooldProcess::Kill9Locked() {
  const pid_t pid = CurrentPid();
  if (pid <= 0) return absl::OkStatus();
  SignalAndReap(pid, SIGKILL, kKillTimeout);
  absl::MutexLock lock(&mu_);
  pid_ = -1;
  return absl::OkStatus();
}

absl::StatusOr<int> SpooldProcess::Terminate(absl::Duration timeout) {
  absl::MutexLock lock(&lifecycle_mu_);
  return TerminateLocked(timeout);
}

absl::StatusOr<int> SpooldProcess::TerminateLocked(absl::Duration timeout) {
  const pid_t pid = CurrentPid();
  if (pid <= 0) {
    return absl::FailedPreconditionError("spoold is not running");
  }
  kill(pid, SIGTERM);
  absl::StatusOr<int> status = WaitForExit(pid, timeout);
  if (!status.ok()) SignalAndReap(pid, SIGKILL, kKillTimeout);
  {
    absl::MutexLock lock(&mu_);
    pid_ = -1;
  }
  if (!status.ok()) {
    return absl::DeadlineExceededError(absl::StrCat(
        "spoold did not exit within ", absl::FormatDuration(timeout),
        " of SIGTERM; killed it. Log:\n", LastRun(LogTail(8192))));
  }
  return ExitCode(*status);
}

absl::Status SpooldProcess::Restart() {
  absl::MutexLock lock(&lifecycle_mu_);
  if (CurrentPid() > 0) {
    absl::StatusOr<int> code = TerminateLocked(absl::Seconds(30));
    if (!code.ok()) return code.status();
  }
  return LaunchAndWait();
}

absl::StatusOr<SpooldProcess::ServingStatus> SpooldProcess::HealthStatus(
    absl::Duration timeout) {
  auto stub = grpc::health::v1::Health::NewStub(Channel());
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  context.set_wait_for_ready(true);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service("");
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) return FromGrpc(status);
  return response.status();
}

absl::Status SpooldProcess::WaitForHealth(ServingStatus want,
                                          absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::string last = "none";
  for (;;) {
    const absl::Duration left = deadline - absl::Now();
    absl::StatusOr<ServingStatus> health = HealthStatus(
        std::clamp(left, absl::Milliseconds(50), absl::Seconds(1)));
    if (health.ok() && *health == want) return absl::OkStatus();
    last =
        health.ok()
            ? grpc::health::v1::HealthCheckResponse::ServingStatus_Name(*health)
            : health.status().ToString();
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "health did not become ",
          grpc::health::v1::HealthCheckResponse::ServingStatus_Name(want),
          " within ", absl::FormatDuration(timeout), "; last: ", last));
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
}

std::string SpooldProcess::LogTail(size_t max_bytes) const {
  return ReadFileTail(log_path_, max_bytes);
}

}  // namespace spool::testing
