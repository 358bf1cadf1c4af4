// The queue's domain types: what the core, the gRPC handlers and any store
// implementation exchange. Plain data without protobuf or SQL types, so the
// core stays independent of the wire format and of PostgreSQL; a store
// converts its rows to these.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/time.h"

namespace spool::core {

// Stored job states; the numbers match spool.v1.JobState.
enum class JobState : int16_t {
  kScheduled = 1,
  kReady = 2,
  kLeased = 3,
  kSucceeded = 4,
  kDead = 5,
  kCancelled = 6,
};

// Header name/value pairs, in name order.
using Headers = std::vector<std::pair<std::string, std::string>>;

// A queue's settings (table spool_queues).
struct QueueConfig {
  std::string name;
  absl::Duration visibility_timeout = absl::Seconds(30);
  int32_t max_attempts = 20;
  absl::Duration backoff_initial = absl::Seconds(1);
  double backoff_factor = 2.0;
  absl::Duration backoff_max = absl::Hours(1);
  double backoff_jitter = 0.2;
  absl::Duration dead_retention = absl::Hours(24 * 14);
  absl::Duration succeeded_retention = absl::ZeroDuration();
  absl::Duration idempotency_window = absl::Hours(1);
  int64_t max_depth = 0;  // 0: unlimited.
};

// A validated job to insert. Times are resolved by the database clock.
struct NewJob {
  std::string queue;
  std::string payload;
  int16_t priority = 0;
  // Exactly one of these decides run_at: an absolute time, or now() + delay.
  std::optional<absl::Time> run_at;
  absl::Duration delay = absl::ZeroDuration();
  int32_t max_attempts = 20;
  std::string idempotency_key;  // Empty: none.
  absl::Duration idempotency_window = absl::Hours(1);
  Headers headers;
};

struct EnqueueResult {
  int64_t job_id = 0;
  bool duplicate = false;
  // The job's run time when it was created scheduled (to arm a wake-up).
  std::optional<absl::Time> scheduled_for;
};

struct LeasedJob {
  int64_t job_id = 0;
  std::string lease_id;
  std::string queue;
  std::string payload;
  Headers headers;
  int16_t priority = 0;
  int32_t attempt = 0;
  int32_t max_attempts = 0;
  absl::Time run_at;
  absl::Time enqueued_at;
  absl::Time lease_expires_at;
};

struct LeaseParams {
  std::string queue;
  int32_t max_jobs = 1;
  // Jobs are taken in order while their sizes (payload + headers + 200)
  // total at most this; the first is always taken.
  int64_t max_bytes = 3 << 20;
  absl::Duration visibility_timeout = absl::Seconds(30);
  std::string worker_id;
};

// One acknowledgement; the result bytes are kept only by queues that retain
// succeeded jobs.
struct Completion {
  int64_t job_id = 0;
  std::string lease_id;
  std::string result;
};

// The fencing facts about a job, read to classify a refused state change and
// to compute a retry's backoff.
struct JobLease {
  int64_t job_id = 0;
  std::string queue;
  JobState state = JobState::kReady;
  std::string lease_id;  // Empty when not leased.
  int32_t attempt = 0;
  int32_t max_attempts = 0;
};

struct NackParams {
  int64_t job_id = 0;
  std::string lease_id;
  // Unset: the queue's backoff for the job's attempt (spool_backoff_us),
  // jittered by `backoff_unit`, a uniform sample in [0, 1).
  std::optional<absl::Duration> retry_delay;
  double backoff_unit = 0.5;
  std::string error;
  bool dead_letter = false;
};

struct NackResult {
  std::string queue;
  JobState state = JobState::kReady;
  std::optional<absl::Time> next_run_at;
  absl::Duration processing = absl::ZeroDuration();  // Leased -> nacked.
};

struct Job {
  int64_t job_id = 0;
  std::string queue;
  JobState state = JobState::kReady;
  int16_t priority = 0;
  int32_t attempt = 0;
  int32_t max_attempts = 0;
  std::string payload;
  Headers headers;
  std::string idempotency_key;
  absl::Time enqueued_at;
  absl::Time run_at;
  std::optional<absl::Time> lease_expires_at;
  std::optional<absl::Time> finished_at;
  std::string last_error;
  std::string result;
  std::string worker_id;
};

// How many jobs of each queue a maintenance pass made ready.
using QueueCounts = std::vector<std::pair<std::string, int64_t>>;

// The outcome of one acknowledgement.
struct AckItem {
  absl::Status status;  // OK, NOT_FOUND or FAILED_PRECONDITION.
  std::string queue;    // Set when the job exists.
  std::optional<absl::Duration> processing;  // Leased -> acked, when OK.
};

// The current depth of one depth-limited queue and its limit.
struct QueueDepth {
  // Scheduled, ready or leased jobs: exact (counted up to max_depth) or,
  // when not counted, an upper bound under which the wanted jobs fit.
  int64_t depth = 0;
  int64_t max_depth = 0;
  bool counted = false;
};
using QueueDepths = absl::flat_hash_map<std::string, QueueDepth>;

// What a maintenance pass did, per queue.
struct ReapResult {
  QueueCounts made_ready;  // Expired leases returned to the queue.
  QueueCounts dead;        // Expired on their last attempt.
  int64_t total = 0;
};

}  // namespace spool::core
