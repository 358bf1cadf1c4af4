// A Clock for tests of the Worker's runtime: time stands still until the
// test calls Advance(), so lease-extension schedules, ack flush delays and
// backoff waits happen exactly when the test says. A wait re-checks its
// condition and the clock every millisecond of real time (Advance() cannot
// wake a waiter blocked on another mutex), which only bounds how soon a
// waiter notices; what it sees is decided by the test.
#pragma once

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "clock.h"

namespace spool::testing {

class ManualClock final : public internal::Clock {
 public:
  explicit ManualClock(absl::Time start = absl::FromUnixSeconds(1700000000))
      : now_(start) {}

  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }

  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }

  bool AwaitWithDeadline(absl::Mutex& mu, const absl::Condition& cond,
                         absl::Time deadline) const override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    while (true) {
      if (mu.AwaitWithTimeout(cond, absl::Milliseconds(1))) return true;
      if (Now() >= deadline) return false;
    }
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace spool::testing
