// The time source of a Worker's runtime: lease-extension schedules, the ack
// flush delay, retry backoff waits and Stop()'s budgets all read and wait on
// it, so tests can drive them with a manual clock. RPC deadlines are not on
// it: gRPC counts them in real time (see RealDeadline).
#pragma once

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace spool::internal {

class Clock {
 public:
  virtual ~Clock() = default;

  virtual absl::Time Now() const = 0;

  // With `mu` held: waits until `cond` holds or Now() reaches `deadline`,
  // as absl::Mutex::AwaitWithDeadline does on real time. Returns whether
  // `cond` holds.
  virtual bool AwaitWithDeadline(absl::Mutex& mu, const absl::Condition& cond,
                                 absl::Time deadline) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) = 0;

  // Waits for `d` on this clock.
  void SleepFor(absl::Duration d) const;

  // absl::Now() and absl::Mutex's own timed waits.
  static const Clock& Real();
};

// The real-time deadline for an RPC that must end by `t` on `clock`.
absl::Time RealDeadline(const Clock& clock, absl::Time t);

}  // namespace spool::internal
