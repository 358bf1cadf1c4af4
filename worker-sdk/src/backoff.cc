#include "backoff.h"

#include <algorithm>
#include <cmath>

namespace spool::internal {

absl::Duration BackoffDelay(const BackoffPolicy& policy, int attempt,
                            double unit) {
  const double initial_s = std::max(0.0, absl::ToDoubleSeconds(policy.initial));
  const double max_s = std::max(initial_s, absl::ToDoubleSeconds(policy.max));
  const double multiplier = std::max(1.0, policy.multiplier);
  const double jitter = std::clamp(policy.jitter, 0.0, 1.0);
  // Grow in doubles and cap before anything overflows.
  double base = initial_s * std::pow(multiplier, std::max(0, attempt));
  if (!std::isfinite(base) || base > max_s) base = max_s;
  unit = std::clamp(unit, 0.0, 1.0);
  const double factor = 1.0 - jitter + 2.0 * jitter * unit;
  return absl::Seconds(base * factor);
}

absl::Duration Backoff::Next() {
  const double unit = absl::Uniform(gen_, 0.0, 1.0);
  absl::Duration delay = BackoffDelay(policy_, attempt_, unit);
  if (attempt_ < 64) ++attempt_;
  return delay;
}

}  // namespace spool::internal
