// Request validation for the queue core: pure functions, each returning
// INVALID_ARGUMENT with a message that names the offending field (the caller
// passes the field path, e.g. "jobs[3]") and the allowed range.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/limits.h"
#include "core/types.h"

namespace spool::core {

// A job as a client submitted it, before defaults are applied.
struct JobInput {
  std::string queue;
  std::string payload;
  int32_t priority = 0;
  std::optional<absl::Duration> delay;
  std::optional<absl::Time> run_at;
  int32_t max_attempts = 0;  // 0: the queue's default.
  std::string idempotency_key;
  Headers headers;
};

struct LeaseInput {
  std::string queue;
  int32_t max_jobs = 0;  // 0 means 1.
  std::optional<absl::Duration> wait;
  std::optional<absl::Duration> visibility_timeout;  // Unset: queue default.
  std::string worker_id;
};

struct NackInput {
  std::string job_id;
  std::string lease_id;
  std::optional<absl::Duration> retry_delay;  // Unset: the queue's backoff.
  std::string error;
  bool dead_letter = false;
};

struct CompletionInput {
  std::string job_id;
  std::string lease_id;
  std::string result;
};

// [A-Za-z0-9][A-Za-z0-9_.-]{0,127}
absl::Status ValidateQueueName(absl::string_view name, absl::string_view field);

// Checks every field of a job against the limits; `now` is the server clock
// used to bound run_at.
absl::Status ValidateJob(const JobInput& job, const Limits& limits,
                         absl::Time now, absl::string_view field);

absl::Status ValidateLease(const LeaseInput& lease, const Limits& limits);

absl::Status ValidateVisibilityTimeout(absl::Duration timeout,
                                       const Limits& limits,
                                       absl::string_view field);

// Job ids are decimal positive integers; anything else is INVALID_ARGUMENT.
absl::StatusOr<int64_t> ParseJobId(absl::string_view id,
                                   absl::string_view field);

// Lease ids are lowercase or uppercase canonical UUIDs.
absl::Status ValidateLeaseId(absl::string_view id, absl::string_view field);

// The number of jobs one Enqueue call may carry (checked before the jobs are
// converted, so an oversized batch costs nothing).
absl::Status ValidateEnqueueBatchSize(size_t jobs, const Limits& limits);

// An Ack call's completions, checked one by one: a bad completion gets its
// own INVALID_ARGUMENT result and the rest still go ahead.
struct CheckedCompletions {
  std::vector<Completion> valid;
  std::vector<size_t> index;          // Position of each valid completion.
  std::vector<absl::Status> results;  // One per input; OK for valid ones.
};
// INVALID_ARGUMENT for the whole call when it has too many completions.
absl::StatusOr<CheckedCompletions> CheckCompletions(
    std::vector<CompletionInput> completions, const Limits& limits);

// A nack's store parameters (backoff_unit left at its default for the
// caller to draw).
absl::StatusOr<NackParams> CheckNack(NackInput input, const Limits& limits);

// A lease extension's job id, once its ids and timeout are checked.
absl::StatusOr<int64_t> CheckExtendLease(
    absl::string_view job_id, absl::string_view lease_id,
    const std::optional<absl::Duration>& visibility_timeout,
    const Limits& limits);

// The nack error text as stored: NUL bytes removed, cut at max_error_bytes
// on a UTF-8 boundary with a "…[truncated]" marker.
std::string SanitizeErrorText(absl::string_view error, int max_bytes);

}  // namespace spool::core
