// PollCall: one Lease call. It runs the lease query and, when that finds
// nothing and the call may wait, parks in the WakeHub until woken, cancelled
// or out of time, then queries again. It holds no thread and no session while
// it waits. Jobs leased by a query that was overtaken by a cancel or the
// deadline are handed straight back (StoreSession::ReleaseLeases).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/clock.h"
#include "core/executor.h"
#include "core/observer.h"
#include "core/queue_config_cache.h"
#include "core/types.h"
#include "core/wake_hub.h"

namespace spool::core {

template <typename T>
using Callback = absl::AnyInvocable<void(absl::StatusOr<T>)>;

// The caller's handle on a pending Lease.
class LeaseCall {
 public:
  virtual ~LeaseCall() = default;
  // Ends the call with CANCELLED; it leases nothing afterwards (jobs leased
  // by a query in flight are released again).
  virtual void Cancel() = 0;
};

// What every PollCall of one queue core shares; owned by the JobQueue.
struct PollContext {
  Executor* executor = nullptr;
  Clock* clock = nullptr;
  WakeHub* hub = nullptr;
  Observer* observer = nullptr;
  QueueConfigCache* configs = nullptr;
  const std::atomic<bool>* shutting_down = nullptr;
  // Jobs a call handed back became ready again (wake and tell replicas).
  std::function<void(const std::string& queue, int64_t jobs)> released;
};

class PollCall : public LeaseCall,
                 public Waiter,
                 public std::enable_shared_from_this<PollCall> {
 public:
  // `default_timeout`: params.visibility_timeout is taken from the queue's
  // settings. The call waits for jobs until `wait_until`.
  PollCall(const PollContext* context, LeaseParams params, bool default_timeout,
           absl::Time wait_until, Callback<std::vector<LeasedJob>> done);

  // Arms the deadline and runs the first query.
  void Start();
  void Cancel() override;
  void Wake() override;
  int Capacity() const override { return params_.max_jobs; }
  // Ends the wait with no jobs (server shutdown).
  void FinishEmpty();

 private:
  bool finished();
  void Submit();
  void Attempt(absl::StatusOr<StoreSession*> session);
  // Ends the call once (later calls return false). A timeout is counted
  // before the reply leaves, so a client never sees it uncounted.
  bool Finish(absl::StatusOr<std::vector<LeasedJob>> result,
              bool timed_out = false);

  const PollContext* const cx_;
  LeaseParams params_;
  bool default_timeout_;
  const absl::Time wait_until_;
  absl::Mutex mu_;
  Clock::TimerId timer_id_ ABSL_GUARDED_BY(mu_) = 0;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  Callback<std::vector<LeasedJob>> done_ ABSL_GUARDED_BY(mu_);
};

}  // namespace spool::core
