// Jittered exponential backoff used for call retries and reconnects.
#pragma once

#include "absl/random/random.h"
#include "absl/time/time.h"
#include "spool/client.h"

namespace spool::internal {

// The delay before retry number `attempt` (0-based) for a random `unit` in
// [0, 1): min(max, initial * multiplier^attempt) * (1 - jitter +
// 2*jitter*unit). Pure, for tests.
absl::Duration BackoffDelay(const BackoffPolicy& policy, int attempt,
                            double unit);

// Stateful backoff: Next() grows the delay, Reset() after a success.
// Not thread-safe.
class Backoff {
 public:
  explicit Backoff(BackoffPolicy policy) : policy_(policy) {}

  absl::Duration Next();
  void Reset() { attempt_ = 0; }
  int attempt() const { return attempt_; }

 private:
  BackoffPolicy policy_;
  int attempt_ = 0;
  absl::BitGen gen_;
};

}  // namespace spool::internal
