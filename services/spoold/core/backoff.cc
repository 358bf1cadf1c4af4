#include "core/backoff.h"

#include <algorithm>
#include <cmath>

namespace spool::core {

absl::Duration RetryBackoff(const store::QueueConfig& queue, int attempt,
                            double unit_random) {
  const double initial = absl::ToDoubleSeconds(queue.backoff_initial);
  const double cap = absl::ToDoubleSeconds(queue.backoff_max);
  const int exponent = attempt > 1 ? attempt - 1 : 0;  // No INT_MIN - 1.
  // Grows past the cap quickly; pow of a large exponent is inf, min() fixes it.
  double seconds =
      std::min(cap, initial * std::pow(queue.backoff_factor, exponent));
  const double jitter = std::clamp(queue.backoff_jitter, 0.0, 0.99);
  seconds *= 1.0 + jitter * (2.0 * unit_random - 1.0);
  // The cap holds after jitter too: at the cap, delays spread below it.
  return absl::Seconds(std::clamp(seconds, 0.0, cap));
}

}  // namespace spool::core
