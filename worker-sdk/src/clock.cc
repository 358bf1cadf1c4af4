#include "clock.h"

#include "absl/time/clock.h"

namespace spool::internal {
namespace {

class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  bool AwaitWithDeadline(absl::Mutex& mu, const absl::Condition& cond,
                         absl::Time deadline) const override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return mu.AwaitWithDeadline(cond, deadline);
  }
};

}  // namespace

void Clock::SleepFor(absl::Duration d) const {
  static constexpr bool kNever = false;
  absl::Mutex mu;
  absl::MutexLock lock(&mu);
  AwaitWithDeadline(mu, absl::Condition(&kNever), Now() + d);
}

const Clock& Clock::Real() {
  static const RealClock* const clock = new RealClock();
  return *clock;
}

absl::Time RealDeadline(const Clock& clock, absl::Time t) {
  if (&clock == &Clock::Real()) return t;
  return absl::Now() + (t - clock.Now());
}

}  // namespace spool::internal
