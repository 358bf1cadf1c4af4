// What a handler returns: success (ack), retry later (nack), or permanent
// failure (dead letter). A handler that throws is treated as Retry with the
// exception's message as the error.
#pragma once

#include <optional>
#include <string>

#include "absl/time/time.h"

namespace spool {

class Outcome {
 public:
  enum class Kind { kSuccess, kRetry, kFail };

  // The job is done; `result` (at most 64 KiB) is kept by the server when the
  // queue retains succeeded jobs, and GetJob returns it.
  static Outcome Success(std::string result = {});
  // Try again after the queue's backoff for this attempt. On the last attempt
  // the server sends the job dead instead.
  static Outcome Retry(std::string error = {});
  // Try again after `delay` (negative counts as zero: ready at once).
  static Outcome Retry(absl::Duration delay, std::string error = {});
  // Never retry: the job goes straight to the dead letters with `error`.
  static Outcome Fail(std::string error);

  Kind kind() const { return kind_; }
  bool is_success() const { return kind_ == Kind::kSuccess; }
  bool is_retry() const { return kind_ == Kind::kRetry; }
  bool is_fail() const { return kind_ == Kind::kFail; }
  // Success only.
  const std::string& result() const { return result_; }
  // Retry and Fail.
  const std::string& error() const { return error_; }
  // Retry only; unset means the queue's backoff.
  const std::optional<absl::Duration>& retry_delay() const {
    return retry_delay_;
  }

  // "success", "retry" or "fail".
  static const char* KindName(Kind kind);

 private:
  Outcome(Kind kind, std::string result, std::string error,
          std::optional<absl::Duration> delay)
      : kind_(kind),
        result_(std::move(result)),
        error_(std::move(error)),
        retry_delay_(delay) {}

  Kind kind_;
  std::string result_;
  std::string error_;
  std::optional<absl::Duration> retry_delay_;
};

}  // namespace spool
