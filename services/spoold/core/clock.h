// Clock: the time and the timers the core runs on (long-poll deadlines,
// wake-ups for scheduled jobs, periodic maintenance, notification pacing).
// Timer (core/timer.h) is the real clock; tests inject a manual one whose
// timers fire when the test advances it. Callbacks must be short: they hand
// real work to the Executor.
#pragma once

#include <cstdint>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"

namespace spool::core {

class Clock {
 public:
  using TimerId = uint64_t;  // Never 0.

  virtual ~Clock() = default;
  virtual absl::Time Now() = 0;
  // Runs `fn` at or soon after `when` (never on the calling thread).
  virtual TimerId Schedule(absl::Time when, absl::AnyInvocable<void()> fn) = 0;
  // True when the callback was removed before it started.
  virtual bool Cancel(TimerId id) = 0;
  // Drops pending callbacks; later ones never run.
  virtual void Shutdown() = 0;
};

}  // namespace spool::core
