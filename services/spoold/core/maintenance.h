// Maintenance: the background work every replica runs, in bounded SKIP
// LOCKED batches through the store: expired leases back to ready (or dead),
// due scheduled jobs promoted, and every `retention_interval` finished jobs
// and expired idempotency keys purged. A pass runs every `interval`, and
// early when the earliest scheduled job falls due (NoteScheduled arms one
// wake-up for it). Passes never overlap: one asked for while another runs
// follows it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/clock.h"
#include "core/executor.h"
#include "core/observer.h"

namespace spool::core {

class Maintenance {
 public:
  struct Options {
    absl::Duration interval = absl::Seconds(1);
    absl::Duration retention_interval = absl::Seconds(30);
    int batch = 1000;
  };
  // Jobs became ready on a queue (wake waiters, tell replicas).
  using JobsReady = std::function<void(const std::string& queue, int64_t)>;

  Maintenance(Executor* executor, Clock* clock, Observer* observer,
              Options options, JobsReady jobs_ready);

  // The first pass now (with retention), then one every interval.
  void Start();
  // A job is scheduled for `when`: run a pass then, if that is earlier than
  // the wake-up armed.
  void NoteScheduled(absl::Time when);
  // No pass or wake-up is armed afterwards (timers already armed are the
  // clock's to drop).
  void Stop();

 private:
  void SchedulePeriodic(absl::Time when);
  void Run(bool retention);
  void Pass(StoreSession* s, bool retention);

  Executor* const executor_;
  Clock* const clock_;
  Observer* const observer_;
  const Options options_;
  const JobsReady jobs_ready_;
  std::atomic<bool> stopped_{false};
  absl::Mutex mu_;
  // The armed wake-up for the earliest scheduled job.
  absl::Time scheduled_wakeup_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  Clock::TimerId scheduled_timer_ ABSL_GUARDED_BY(mu_) = 0;
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  bool again_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time next_retention_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace spool::core
