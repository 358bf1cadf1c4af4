// The queue's fencing rule as the caller reads it: why a state change on a
// leased job (ack, nack, lease extension) was refused. A queue rule, not a
// storage detail, so it lives in the core; stores call it to word refusals.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "core/types.h"

namespace spool::core {

// FAILED_PRECONDITION naming what happened to the job: `state` is its state
// now, `same_lease` whether the refused lease id is still the recorded one.
absl::Status LeaseMismatchStatus(int64_t job_id, JobState state,
                                 bool same_lease);

}  // namespace spool::core
