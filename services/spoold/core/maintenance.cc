#include "core/maintenance.h"

#include <utility>

#include "absl/container/flat_hash_map.h"
#include "base/log.h"

namespace spool::core {

Maintenance::Maintenance(Executor* executor, Clock* clock, Observer* observer,
                         Options options, JobsReady jobs_ready)
    : executor_(executor),
      clock_(clock),
      observer_(observer),
      options_(options),
      jobs_ready_(std::move(jobs_ready)) {}

void Maintenance::Start() { SchedulePeriodic(clock_->Now()); }

void Maintenance::Stop() { stopped_ = true; }

void Maintenance::NoteScheduled(absl::Time when) {
  absl::MutexLock lock(&mu_);
  if (stopped_ || when >= scheduled_wakeup_) return;
  if (scheduled_timer_ != 0) clock_->Cancel(scheduled_timer_);
  scheduled_wakeup_ = when;
  scheduled_timer_ = clock_->Schedule(when, [this] {
    {
      absl::MutexLock lock(&mu_);
      scheduled_wakeup_ = absl::InfiniteFuture();
      scheduled_timer_ = 0;
    }
    Run(false);
  });
}

void Maintenance::SchedulePeriodic(absl::Time when) {
  if (stopped_) return;
  clock_->Schedule(when, [this] {
    bool retention;
    {
      absl::MutexLock lock(&mu_);
      retention = clock_->Now() >= next_retention_;
      if (retention) {
        next_retention_ = clock_->Now() + options_.retention_interval;
      }
    }
    Run(retention);
    SchedulePeriodic(clock_->Now() + options_.interval);
  });
}

void Maintenance::Run(bool retention) {
  {
    absl::MutexLock lock(&mu_);
    if (running_) {
      again_ = true;
      return;
    }
    running_ = true;
  }
  executor_->Submit([this, retention](absl::StatusOr<StoreSession*> session) {
    // One pass; a lost connection ends it (the next pass reconnects).
    if (session.ok()) Pass(*session, retention);
    bool again;
    {
      absl::MutexLock lock(&mu_);
      running_ = false;
      again = again_;
      again_ = false;
    }
    if (again && !stopped_) Run(false);
  });
}

void Maintenance::Pass(StoreSession* s, bool retention) {
  const int batch = options_.batch;
  constexpr int kMaxBatches = 10;
  for (int i = 0; i < kMaxBatches; ++i) {
    auto reaped = s->ReapExpiredLeases(batch);
    if (!reaped.ok()) return;
    absl::flat_hash_map<std::string, int64_t> dead;
    for (const auto& [q, n] : reaped->dead) dead[q] = n;
    for (const auto& [q, n] : reaped->made_ready) {
      observer_->OnLeasesExpired(q, n, dead[q]);
      dead.erase(q);
      jobs_ready_(q, n);
    }
    for (const auto& [q, n] : dead) observer_->OnLeasesExpired(q, 0, n);
    if (reaped->total > 0) {
      LogInfo("expired leases returned", {{"jobs", reaped->total}});
    }
    if (reaped->total < batch) break;
  }
  for (int i = 0; i < kMaxBatches; ++i) {
    auto promoted = s->PromoteScheduled(batch);
    if (!promoted.ok()) return;
    int64_t total = 0;
    for (const auto& [q, n] : *promoted) {
      total += n;
      jobs_ready_(q, n);
    }
    if (total < batch) break;
  }
  auto next = s->NextScheduledRunAt();
  if (!next.ok()) return;
  if (next->has_value()) NoteScheduled(**next);
  if (!retention) return;
  // Deletes in batches until a batch comes back short (or kMaxBatches).
  auto purge = [&](auto op) -> absl::StatusOr<int64_t> {
    int64_t total = 0;
    for (int i = 0; i < kMaxBatches; ++i) {
      auto n = op(batch);
      if (!n.ok()) return n.status();
      total += *n;
      if (*n < batch) break;
    }
    return total;
  };
  auto purged = purge([s](int b) { return s->PurgeFinished(b); });
  if (!purged.ok()) return;
  auto keys = purge([s](int b) { return s->PurgeIdempotencyKeys(b); });
  if (!keys.ok()) return;
  if (*purged > 0 || *keys > 0) {
    LogInfo("retention clean-up",
            {{"jobs_deleted", *purged}, {"keys_deleted", *keys}});
  }
}

}  // namespace spool::core
