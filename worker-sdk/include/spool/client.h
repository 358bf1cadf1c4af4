// spool::Client: the producer side. Enqueues jobs and reads their state from
// one or more spoold replicas over a load-balanced gRPC connection.
//
// Retry rule. Every call has an overall deadline (ClientOptions::
// default_deadline unless given) and is retried on UNAVAILABLE with jittered
// exponential backoff until that deadline or max_attempts:
//  - GetJob, and Enqueue / EnqueueBatch whose jobs all carry an idempotency
//    key, are retried whenever they fail with UNAVAILABLE: the server dedups
//    a repeat, so a retry can never create a second job.
//  - An Enqueue without idempotency key is sent only over a connection that
//    is READY, and is retried only while no connection became ready (the
//    request provably never left this process). Once sent, an UNAVAILABLE
//    answer is returned to the caller as is: the job may or may not exist.
//    Give jobs an idempotency key to get full retries.
//  - ABORTED (spoold's database rolled the statement back after a conflict:
//    nothing was written) is retried for every call, keyed or not.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace grpc {
class Channel;
class ChannelCredentials;
}  // namespace grpc

namespace spool {

namespace internal {
class Connection;
}  // namespace internal

// Jittered exponential backoff: the n-th delay is
// min(max, initial * multiplier^n) scaled by a random factor in
// [1 - jitter, 1 + jitter].
struct BackoffPolicy {
  absl::Duration initial = absl::Milliseconds(50);
  absl::Duration max = absl::Seconds(2);
  double multiplier = 2.0;
  double jitter = 0.2;
};

struct ClientOptions {
  // Where spoold runs. One entry may be "host:port" (every address the name
  // resolves to is used), or any gRPC target URI ("dns:///name:port",
  // "ipv4:10.0.0.1:50051,10.0.0.2:50051", "unix:/path"). Several entries
  // are balanced together. Calls are spread over all healthy addresses with
  // gRPC's round_robin policy.
  std::vector<std::string> targets;
  // Channel credentials, e.g. grpc::SslCredentials(...). Null: plaintext.
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  // Overrides the :authority / TLS server name when non-empty.
  std::string authority;
  // Extra metadata sent with every call (e.g. {"authorization", "Bearer x"}).
  std::vector<std::pair<std::string, std::string>> metadata;
  // Overall deadline of one Client call, retries included.
  absl::Duration default_deadline = absl::Seconds(10);
  // Backoff between attempts of one call.
  BackoffPolicy retry_backoff;
  // Attempts per call, first included (>= 1).
  int max_attempts = 5;
  // Upper bound of gRPC's own reconnect backoff, so a restarted spoold is
  // found again quickly.
  absl::Duration max_reconnect_backoff = absl::Seconds(2);
  // HTTP/2 keepalive: after keepalive_time without hearing from spoold the
  // connection is pinged, and dropped when no answer comes within
  // keepalive_timeout; its calls fail UNAVAILABLE (and are retried where
  // safe) and new calls go to the other addresses. This finds a spoold host
  // or network path that vanished without closing the connection, which
  // would otherwise hold every call on it until its deadline. Idle channels
  // ping too. spoold accepts pings every 10 s (--min_client_ping_interval);
  // zero turns keepalive off. Keep the timeout well above 5 s: a spoold with
  // no calls in flight on the connection was seen to answer pings up to
  // ~4 s late (its gRPC polls idle connections on a slow timer).
  absl::Duration keepalive_time = absl::Seconds(30);
  absl::Duration keepalive_timeout = absl::Seconds(10);
  // Largest response accepted (a Lease of 256 jobs of 1 MiB is 256 MiB);
  // -1 means no limit.
  int max_receive_message_bytes = -1;
  // Advanced: use this channel instead of building one from `targets`.
  std::shared_ptr<grpc::Channel> channel;
};

// One job to enqueue.
struct JobOptions {
  std::string queue;
  std::string payload;
  // [-100, 100]; higher runs first.
  int priority = 0;
  // At most one of delay and run_at.
  std::optional<absl::Duration> delay;
  std::optional<absl::Time> run_at;
  // 0: the queue's default.
  int max_attempts = 0;
  // A repeat with the same (queue, key) within the queue's idempotency window
  // returns the first job (duplicate = true). Also makes retries safe.
  std::string idempotency_key;
  std::map<std::string, std::string> headers;
};

struct EnqueueResult {
  std::string job_id;
  // True when an earlier job with the same idempotency key was returned.
  bool duplicate = false;
};

enum class JobState {
  kUnspecified,
  kScheduled,
  kReady,
  kLeased,
  kSucceeded,
  kDead,
  kCancelled,
};

const char* JobStateName(JobState state);

// A job's state as stored by spoold (GetJob).
struct JobInfo {
  std::string id;
  std::string queue;
  JobState state = JobState::kUnspecified;
  int priority = 0;
  int attempt = 0;
  int max_attempts = 0;
  std::string payload;
  std::map<std::string, std::string> headers;
  std::string idempotency_key;
  std::optional<absl::Time> enqueued_at;
  std::optional<absl::Time> run_at;
  std::optional<absl::Time> lease_expires_at;
  std::optional<absl::Time> finished_at;
  std::string last_error;
  std::string result;
  std::string worker_id;
};

// Per-call overrides.
struct CallOptions {
  // Zero: ClientOptions::default_deadline.
  absl::Duration deadline = absl::ZeroDuration();
};

// Thread-safe: one Client may serve many threads. Cheap to move.
class Client {
 public:
  // Builds the connection (lazily connected: spoold need not be up yet).
  // Fails only on invalid options.
  static absl::StatusOr<Client> Connect(ClientOptions options);
  static absl::StatusOr<Client> Connect(std::string target);

  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;
  ~Client();

  absl::StatusOr<EnqueueResult> Enqueue(const JobOptions& job,
                                        const CallOptions& call = {});
  // Up to 1,000 jobs, atomically: all or none. Results in request order.
  absl::StatusOr<std::vector<EnqueueResult>> EnqueueBatch(
      const std::vector<JobOptions>& jobs, const CallOptions& call = {});
  absl::StatusOr<JobInfo> GetJob(std::string_view job_id,
                                 const CallOptions& call = {});

  // Waits until some spoold address is connected; false on timeout.
  bool WaitForConnected(absl::Duration timeout);

 private:
  explicit Client(std::shared_ptr<internal::Connection> connection);
  std::shared_ptr<internal::Connection> connection_;
};

}  // namespace spool
