// Enqueue planning, pure: a group of Enqueue requests (combined by group
// commit), the settings of their queues and, for depth-limited queues, their
// current depths -> the rows to insert, where each job's answer comes from,
// and which requests are refused. Then the inserted rows -> each request's
// answer and what to report and wake.
//
// Rules: requests are taken in arrival order and a request that would
// overfill a limited queue is refused alone (RESOURCE_EXHAUSTED), never
// part of it; an idempotency key repeated within the group inserts one row
// and the later jobs answer with its job as a duplicate; queue defaults fill
// max_attempts and the idempotency window; headers are sorted by name.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/types.h"
#include "core/validation.h"

namespace spool::core {

using QueueConfigs = absl::flat_hash_map<std::string, QueueConfig>;
// One request's jobs; the planner moves them out when it may (no limits).
using EnqueueRequests = std::vector<std::vector<JobInput>*>;

struct EnqueuePlan {
  // Where one job's answer comes from.
  struct Slot {
    int row = -1;      // The row inserted for this job, or
    int same_as = -1;  // the row of the earlier job with the same key.
  };
  std::vector<NewJob> rows;
  std::vector<std::vector<Slot>> slots;  // Per request, per job (accepted).
  std::vector<absl::Status> refused;     // Per request; OK when accepted.
};

// Queue -> jobs the group wants to add, for every queue with a max depth.
// Empty: no limit applies and the group is one plain insert.
absl::flat_hash_map<std::string, int64_t> DepthLimitedWants(
    const EnqueueRequests& requests, const QueueConfigs& configs);

// Fills `plan` (replacing what it held). `depths` null: no limits, and the
// jobs are moved out of `requests`; otherwise they are copied, because a
// depth-limited transaction may be planned again on retry. `configs` holds
// every queue named.
void PlanEnqueue(const EnqueueRequests& requests, const QueueConfigs& configs,
                 const QueueDepths* depths, EnqueuePlan& plan);

// The answers to a plan once its rows were inserted (`inserted`: one result
// per row, in row order).
struct EnqueueOutcome {
  // Per request; empty for a refused one.
  std::vector<std::vector<EnqueueResult>> results;
  // Queue -> (created, duplicates).
  absl::flat_hash_map<std::string, std::pair<int64_t, int64_t>> counts;
  // Queue -> jobs created ready now (to wake waiters for).
  absl::flat_hash_map<std::string, int64_t> ready;
  // The earliest run time of a job created scheduled.
  absl::Time earliest_scheduled = absl::InfiniteFuture();
};
EnqueueOutcome AnswerEnqueue(const EnqueuePlan& plan,
                             const std::vector<EnqueueResult>& inserted);

}  // namespace spool::core
