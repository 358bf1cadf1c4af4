// Enqueueing in batches: the `batch` scenario and the pre-fill of `process`.
#pragma once

#include <string>
#include <vector>

namespace spool::bench {

// Enqueues `total` jobs (payloads "0", "1", ...) on `queue` in EnqueueBatch
// calls of `batch_size` from `callers` threads. Returns the job ids; jobs of
// failed calls are counted in *failed.
std::vector<std::string> EnqueueBatches(const std::vector<std::string>& targets,
                                        const std::string& queue, int total,
                                        int batch_size, int callers,
                                        int* failed);

}  // namespace spool::bench
