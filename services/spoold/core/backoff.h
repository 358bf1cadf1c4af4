// Retry backoff: exponential from the queue's initial delay by its factor,
// capped, with ± jitter so retries of a failed batch spread out.
#pragma once

#include "absl/time/time.h"
#include "store/types.h"

namespace spool::core {

// Delay before retry after `attempt` (1-based) failed. `unit_random` is a
// uniform sample in [0, 1): 0.5 gives the un-jittered delay.
absl::Duration RetryBackoff(const store::QueueConfig& queue, int attempt,
                            double unit_random);

}  // namespace spool::core
