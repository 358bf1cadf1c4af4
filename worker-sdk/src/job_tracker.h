// The jobs a Worker holds, from lease to settle, and their per-job state
// (phase, lease expiry, next extension). Shared by the queues' handler
// threads, the lease extender and shutdown; one mutex guards it all.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "clock.h"
#include "spool/job.h"

namespace spool::internal {

// One leased job from lease to settle. `job`, `cancel`, `lease_id` and
// `visibility_timeout` are fixed at lease time; the rest belongs to the
// JobTracker's mutex.
struct ActiveJob {
  enum class Phase {
    kQueued,    // leased, waiting for a handler thread
    kRunning,   // handler running
    kSettling,  // ack pending or nack being sent
  };

  Job job;
  CancellationSource cancel;
  std::string lease_id;
  absl::Duration visibility_timeout;

  Phase phase = Phase::kQueued;
  // Handed back by Stop(); the handler's outcome is ignored.
  bool abandoned = false;
  // Extension found the lease gone; no more extensions, outcome ignored.
  bool lease_lost = false;
  // Local estimate: answer time + visibility timeout (no clock skew).
  absl::Time lease_expires_at;
  absl::Time next_extend_at;
};
using ActiveJobPtr = std::shared_ptr<ActiveJob>;

class JobTracker {
 public:
  explicit JobTracker(const Clock& clock) : clock_(clock) {}

  void Track(const std::vector<ActiveJobPtr>& jobs);
  void Untrack(const ActiveJobPtr& job);

  // Handler threads. BeginRun marks `job` running, or untracks it and
  // returns false when it was handed back or its lease is lost. EndRun
  // moves it to settling, or untracks it and returns why its outcome is
  // discarded.
  bool BeginRun(const ActiveJobPtr& job);
  const char* EndRun(const ActiveJobPtr& job);

  // Marks `job` handed back (its outcome will be ignored).
  void Abandon(const ActiveJobPtr& job);
  // Marks every running job handed back and returns them (Stop's deadline).
  std::vector<ActiveJobPtr> AbandonRunning();

  // Settle retries stop at `t` (set by Stop()); InfiniteFuture until then.
  void SetSettleGiveUp(absl::Time t);
  absl::Time settle_give_up_at();
  // min(the job's lease expiry, the settle give-up time).
  absl::Time SettleGiveUpTime(const ActiveJob& job);

  // The lease extender. WaitForDueExtensions blocks until some job's
  // extension is due (returning them) or StopExtensions() (returning
  // false).
  bool WaitForDueExtensions(std::vector<ActiveJobPtr>* due);
  void StopExtensions();
  // After a successful extension at `now`.
  void Extended(const ActiveJobPtr& job, absl::Time now);
  // After a transient failure: try again at `at`.
  void RetryExtensionAt(const ActiveJobPtr& job, absl::Time at);
  // The lease is gone: no more extensions. Returns whether the loss is for
  // the extender to report (not while settling, nor after a hand-back).
  bool MarkLeaseLost(const ActiveJobPtr& job);

 private:
  const Clock& clock_;
  absl::Mutex mu_;
  absl::flat_hash_map<ActiveJob*, ActiveJobPtr> tracked_ ABSL_GUARDED_BY(mu_);
  uint64_t version_ ABSL_GUARDED_BY(mu_) = 0;
  bool extensions_stopped_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time settle_give_up_at_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
};

}  // namespace spool::internal
