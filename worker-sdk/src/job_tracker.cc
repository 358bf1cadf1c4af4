#include "job_tracker.h"

#include <algorithm>

#include "settle.h"

namespace spool::internal {

void JobTracker::Track(const std::vector<ActiveJobPtr>& jobs) {
  absl::MutexLock lock(&mu_);
  for (const ActiveJobPtr& job : jobs) tracked_[job.get()] = job;
  ++version_;
}

void JobTracker::Untrack(const ActiveJobPtr& job) {
  absl::MutexLock lock(&mu_);
  tracked_.erase(job.get());
}

bool JobTracker::BeginRun(const ActiveJobPtr& job) {
  absl::MutexLock lock(&mu_);
  if (job->abandoned || job->lease_lost) {
    tracked_.erase(job.get());
    return false;
  }
  job->phase = ActiveJob::Phase::kRunning;
  return true;
}

const char* JobTracker::EndRun(const ActiveJobPtr& job) {
  absl::MutexLock lock(&mu_);
  if (job->abandoned || job->lease_lost) {
    tracked_.erase(job.get());
    return job->abandoned ? "handed_back_at_shutdown" : "lease_lost";
  }
  job->phase = ActiveJob::Phase::kSettling;
  return nullptr;
}

void JobTracker::Abandon(const ActiveJobPtr& job) {
  absl::MutexLock lock(&mu_);
  job->abandoned = true;
}

std::vector<ActiveJobPtr> JobTracker::AbandonRunning() {
  std::vector<ActiveJobPtr> running;
  absl::MutexLock lock(&mu_);
  for (const auto& [ptr, job] : tracked_) {
    if (job->phase == ActiveJob::Phase::kRunning && !job->abandoned &&
        !job->lease_lost) {
      job->abandoned = true;
      running.push_back(job);
    }
  }
  return running;
}

void JobTracker::SetSettleGiveUp(absl::Time t) {
  absl::MutexLock lock(&mu_);
  settle_give_up_at_ = t;
}

absl::Time JobTracker::settle_give_up_at() {
  absl::MutexLock lock(&mu_);
  return settle_give_up_at_;
}

absl::Time JobTracker::SettleGiveUpTime(const ActiveJob& job) {
  absl::MutexLock lock(&mu_);
  return std::min(job.lease_expires_at, settle_give_up_at_);
}

bool JobTracker::WaitForDueExtensions(std::vector<ActiveJobPtr>* due) {
  absl::MutexLock lock(&mu_);
  while (true) {
    if (extensions_stopped_) return false;
    const absl::Time now = clock_.Now();
    absl::Time earliest = absl::InfiniteFuture();
    for (const auto& [ptr, job] : tracked_) {
      if (job->lease_lost || job->abandoned) continue;
      if (job->next_extend_at <= now) {
        due->push_back(job);
      } else {
        earliest = std::min(earliest, job->next_extend_at);
      }
    }
    if (!due->empty()) return true;
    const uint64_t seen_version = version_;
    auto changed = [this, seen_version]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return extensions_stopped_ || version_ != seen_version;
    };
    // Wake at least once a second: never sleep forever on a stale view.
    clock_.AwaitWithDeadline(mu_, absl::Condition(&changed),
                             std::min(earliest, now + absl::Seconds(1)));
  }
}

void JobTracker::StopExtensions() {
  absl::MutexLock lock(&mu_);
  extensions_stopped_ = true;
}

void JobTracker::Extended(const ActiveJobPtr& job, absl::Time now) {
  absl::MutexLock lock(&mu_);
  job->lease_expires_at = now + job->visibility_timeout;
  job->next_extend_at = now + ExtensionInterval(job->visibility_timeout);
}

void JobTracker::RetryExtensionAt(const ActiveJobPtr& job, absl::Time at) {
  absl::MutexLock lock(&mu_);
  job->next_extend_at = at;
}

bool JobTracker::MarkLeaseLost(const ActiveJobPtr& job) {
  absl::MutexLock lock(&mu_);
  // While settling, the ack/nack itself reports what happened (and a
  // NOT_FOUND there usually means our ack just landed).
  const bool report =
      job->phase != ActiveJob::Phase::kSettling && !job->abandoned;
  job->lease_lost = true;
  return report;
}

}  // namespace spool::internal
