// The job as a handler sees it, and the cancellation signal that tells a
// running handler to give up (worker shutting down, or its lease was lost).
#pragma once

#include <map>
#include <memory>
#include <string>

#include "absl/time/time.h"

namespace spool {

namespace internal {
struct CancelState;
}  // namespace internal

// Read side of a cancellation signal. Cheap to copy; all copies observe the
// same signal. A default-constructed token is never cancelled.
class CancellationToken {
 public:
  CancellationToken() = default;

  // True once the job should stop: the worker is past its Stop() deadline
  // (the job has already been handed back to the queue), or the lease was
  // lost and another worker may now run the job.
  bool cancelled() const;

  // Blocks until cancelled or `timeout` passes; returns cancelled(). Handlers
  // that sleep or wait should use this instead of sleeping blindly.
  bool WaitForCancellation(absl::Duration timeout) const;

 private:
  friend class CancellationSource;
  explicit CancellationToken(std::shared_ptr<internal::CancelState> state)
      : state_(std::move(state)) {}
  std::shared_ptr<internal::CancelState> state_;
};

// Write side of a cancellation signal. Handy for unit-testing handlers.
class CancellationSource {
 public:
  CancellationSource();
  void Cancel();
  bool cancelled() const;
  CancellationToken token() const { return CancellationToken(state_); }

 private:
  std::shared_ptr<internal::CancelState> state_;
};

// One delivery of a job to a handler. Plain data so handlers can be unit
// tested by building a Job by hand.
struct Job {
  std::string id;
  std::string queue;
  std::string payload;
  std::map<std::string, std::string> headers;
  int priority = 0;
  // 1 on the first delivery.
  int attempt = 0;
  // How many attempts the job may use before it goes dead (0 = unknown).
  int max_attempts = 0;
  absl::Time enqueued_at = absl::InfinitePast();
  // The lease expiry at delivery; the worker extends it while the handler runs.
  absl::Time lease_expires_at = absl::InfinitePast();
  CancellationToken cancellation;

  bool cancelled() const { return cancellation.cancelled(); }
  // True when a Retry outcome would send the job dead instead.
  bool is_last_attempt() const {
    return max_attempts > 0 && attempt >= max_attempts;
  }
};

}  // namespace spool
