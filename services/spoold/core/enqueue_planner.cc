#include "core/enqueue_planner.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace spool::core {

absl::flat_hash_map<std::string, int64_t> DepthLimitedWants(
    const EnqueueRequests& requests, const QueueConfigs& configs) {
  absl::flat_hash_map<std::string, int64_t> limited;
  for (const std::vector<JobInput>* jobs : requests) {
    for (const JobInput& j : *jobs) {
      if (configs.at(j.queue).max_depth > 0) ++limited[j.queue];
    }
  }
  return limited;
}

namespace {

// Decides which requests fit, request by request in arrival order.
void Admit(const EnqueueRequests& requests, const QueueDepths& depths,
           std::vector<absl::Status>& refused) {
  absl::flat_hash_map<std::string, int64_t> depth;
  for (size_t r = 0; r < requests.size(); ++r) {
    absl::flat_hash_map<std::string, int64_t> adds;
    for (const JobInput& j : *requests[r]) {
      if (depths.contains(j.queue)) ++adds[j.queue];
    }
    for (const auto& [name, count] : adds) {
      const QueueDepth& d = depths.at(name);
      auto it = depth.try_emplace(name, d.depth).first;
      if (it->second + count > d.max_depth) {
        refused[r] = absl::ResourceExhaustedError(
            absl::StrCat("queue ", name, " is full: ", it->second,
                         " jobs are waiting or running and its max depth is ",
                         d.max_depth, "; retry later"));
        break;
      }
    }
    if (refused[r].ok()) {
      for (const auto& [name, count] : adds) depth[name] += count;
    }
  }
}

NewJob RowFor(JobInput&& in, const QueueConfig& config) {
  NewJob row;
  row.queue = std::move(in.queue);
  row.payload = std::move(in.payload);
  row.priority = static_cast<int16_t>(in.priority);
  row.run_at = in.run_at;
  row.delay = in.delay.value_or(absl::ZeroDuration());
  row.max_attempts =
      in.max_attempts > 0 ? in.max_attempts : config.max_attempts;
  row.idempotency_key = std::move(in.idempotency_key);
  row.idempotency_window = config.idempotency_window;
  row.headers = std::move(in.headers);
  std::sort(row.headers.begin(), row.headers.end());
  return row;
}

}  // namespace

void PlanEnqueue(const EnqueueRequests& requests, const QueueConfigs& configs,
                 const QueueDepths* depths, EnqueuePlan& plan) {
  plan.rows.clear();
  plan.slots.assign(requests.size(), {});
  plan.refused.assign(requests.size(), absl::OkStatus());
  if (depths != nullptr) Admit(requests, *depths, plan.refused);
  absl::flat_hash_map<std::pair<std::string, std::string>, int> first_key;
  for (size_t r = 0; r < requests.size(); ++r) {
    if (!plan.refused[r].ok()) continue;
    std::vector<JobInput>& jobs = *requests[r];
    std::vector<EnqueuePlan::Slot>& slots = plan.slots[r];
    slots.resize(jobs.size());
    for (size_t i = 0; i < jobs.size(); ++i) {
      JobInput in = depths == nullptr ? std::move(jobs[i]) : jobs[i];
      if (!in.idempotency_key.empty()) {
        auto [it, inserted] =
            first_key.emplace(std::make_pair(in.queue, in.idempotency_key),
                              static_cast<int>(plan.rows.size()));
        if (!inserted) {
          slots[i].same_as = it->second;
          continue;
        }
      }
      const QueueConfig& config = configs.at(in.queue);
      slots[i].row = static_cast<int>(plan.rows.size());
      plan.rows.push_back(RowFor(std::move(in), config));
    }
  }
}

EnqueueOutcome AnswerEnqueue(const EnqueuePlan& plan,
                             const std::vector<EnqueueResult>& inserted) {
  EnqueueOutcome out;
  out.results.resize(plan.slots.size());
  for (size_t r = 0; r < plan.slots.size(); ++r) {
    if (!plan.refused[r].ok()) continue;
    const std::vector<EnqueuePlan::Slot>& slots = plan.slots[r];
    std::vector<EnqueueResult>& results = out.results[r];
    results.resize(slots.size());
    for (size_t i = 0; i < slots.size(); ++i) {
      const EnqueuePlan::Slot& slot = slots[i];
      const int row = slot.row >= 0 ? slot.row : slot.same_as;
      EnqueueResult& result = results[i];
      result = inserted[row];
      const std::string& queue = plan.rows[row].queue;
      auto& [created, duplicates] = out.counts[queue];
      if (slot.row < 0) {
        result.duplicate = true;
        result.scheduled_for.reset();
      }
      if (result.duplicate) {
        ++duplicates;
      } else {
        ++created;
        if (result.scheduled_for.has_value()) {
          out.earliest_scheduled =
              std::min(out.earliest_scheduled, *result.scheduled_for);
        } else {
          ++out.ready[queue];
        }
      }
    }
  }
  return out;
}

}  // namespace spool::core
