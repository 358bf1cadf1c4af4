// JobQueue: the queue core. It applies Spool's rules (validation, queue
// defaults, backoff, idempotency, depth limits, fencing) on top of the store,
// runs every database call on the SessionPool, and answers through callbacks,
// so gRPC threads never block.
//
// Long-polls hold neither a thread nor a connection while they wait: they sit
// in the WakeHub until a job for their queue appears on this replica, another
// replica announces one (LISTEN/NOTIFY, coalesced and sent outside the
// job-writing statement), maintenance makes one due, or a slow fallback poll
// fires, and then they run the lease query again.
//
// Background work (expired leases, due scheduled jobs, retention, key expiry)
// runs here on every replica, in bounded SKIP LOCKED batches.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/clock.h"
#include "core/executor.h"
#include "core/group_commit.h"
#include "core/limits.h"
#include "core/listener.h"
#include "core/observer.h"
#include "core/timer.h"
#include "core/types.h"
#include "core/validation.h"
#include "core/wake_hub.h"

namespace spool::core {

struct JobQueueOptions {
  Limits limits;
  // How long a queue's settings are cached before being read again.
  absl::Duration queue_config_ttl = absl::Seconds(5);
  // A queue with waiters re-runs its lease query this often even without a
  // notification, so a lost NOTIFY only delays a job.
  absl::Duration fallback_poll = absl::Seconds(1);
  // Expired leases and due jobs are checked at least this often.
  absl::Duration maintenance_interval = absl::Seconds(1);
  // Finished jobs and expired idempotency keys are purged this often.
  absl::Duration retention_interval = absl::Seconds(30);
  int maintenance_batch = 1000;
  // Health is lost after this long without a successful ping.
  absl::Duration health_interval = absl::Seconds(1);
  // A long-poll returns this long before the caller's deadline.
  absl::Duration deadline_margin = absl::Milliseconds(50);
  std::string notify_channel = "spool_jobs";
  // At most one cross-replica NOTIFY per this interval: the first of a
  // burst goes at once, the rest of the burst rides on the next one.
  absl::Duration notify_interval = absl::Milliseconds(10);
  // Enqueue and Ack statements (each combining every call waiting) that may
  // run at once.
  int group_commit_in_flight = 2;
  // Identifies this replica in notifications (to ignore its own).
  std::string replica_id;
  bool listen = true;
};

// The caller's handle on a pending Lease.
class LeaseCall {
 public:
  virtual ~LeaseCall() = default;
  // Ends the call with CANCELLED; it leases nothing afterwards (jobs leased
  // by a query in flight are released again).
  virtual void Cancel() = 0;
};

template <typename T>
using Callback = absl::AnyInvocable<void(absl::StatusOr<T>)>;

class JobQueue {
 public:
  // `executor` runs every storage call; `clock` (default: a real Timer of
  // its own) times waits and background work; `listen` creates the
  // cross-replica listener when options.listen (none when null).
  JobQueue(Executor* executor, JobQueueOptions options,
           Observer* observer = nullptr, Clock* clock = nullptr,
           ListenerFactory listen = nullptr);
  ~JobQueue();

  // Starts the listener, the health check and maintenance.
  void Start();
  // Ends waiting long-polls with no jobs and makes later ones return at
  // once. The server then finishes in-flight calls.
  void BeginShutdown();
  // Stops background work; call after the RPC server has stopped.
  void Stop();

  const Limits& limits() const { return options_.limits; }

  // `batch` decides how errors name a job: "jobs[i]" rather than "job".
  void Enqueue(std::vector<JobInput> jobs, bool batch,
               Callback<std::vector<EnqueueResult>> done);

  // `deadline` is the caller's deadline (InfiniteFuture if none).
  std::shared_ptr<LeaseCall> Lease(LeaseInput input, absl::Time deadline,
                                   Callback<std::vector<LeasedJob>> done);

  // One status per completion, in order.
  void Ack(std::vector<CompletionInput> completions,
           Callback<std::vector<absl::Status>> done);
  void Nack(NackInput input, Callback<NackResult> done);
  void ExtendLease(std::string job_id, std::string lease_id,
                   std::optional<absl::Duration> visibility_timeout,
                   Callback<absl::Time> done);
  void GetJob(std::string job_id, Callback<Job> done);

  // True while the database answered the last health ping.
  bool Healthy() const { return healthy_.load(); }
  // Called with the new value whenever Healthy() changes.
  void SetHealthCallback(absl::AnyInvocable<void(bool)> fn);

  int64_t WaitingLongPolls() { return hub_.WaitingCount(); }

  // A job became ready on `queue` (here or elsewhere): wake waiters here and,
  // when `publish`, tell the other replicas.
  void JobsReady(const std::string& queue, int64_t jobs, bool publish);

 private:
  class PollCall;
  friend class PollCall;

  struct PendingEnqueue {
    std::vector<JobInput> jobs;
    Callback<std::vector<EnqueueResult>> done;
  };
  struct PendingAck {
    std::vector<Completion> valid;
    std::vector<size_t> index;  // Position of each valid completion.
    std::vector<absl::Status> results;
    Callback<std::vector<absl::Status>> done;
  };
  void ProcessEnqueues(absl::StatusOr<StoreSession*> session,
                       std::vector<PendingEnqueue>& group);
  void ProcessAcks(absl::StatusOr<StoreSession*> session,
                   std::vector<PendingAck>& group);

  absl::StatusOr<QueueConfig> QueueConfigFor(StoreSession* session,
                                             const std::string& name);
  void Publish(const std::string& queue);
  void FlushNotifications();
  void SendNotifications();
  void OnNotification(const std::string& payload);
  void NoteScheduled(absl::Time when);
  void ScheduleMaintenance(absl::Time when);
  void ScheduleFallbackPoll();
  void RunMaintenance(bool retention);
  void ScheduleHealthCheck();
  void SetHealthy(bool healthy);
  double RandomUnit();

  Executor* const pool_;
  const JobQueueOptions options_;
  Observer* const observer_;
  Observer null_observer_;
  WakeHub hub_;
  std::unique_ptr<Clock> own_clock_;
  Clock* const clock_;
  ListenerFactory listen_;
  std::unique_ptr<NotificationListener> listener_;
  std::unique_ptr<GroupCommit<PendingEnqueue>> enqueues_;
  std::unique_ptr<GroupCommit<PendingAck>> acks_;

  std::atomic<bool> shutting_down_{false};
  std::atomic<bool> stopped_{false};
  std::atomic<bool> healthy_{false};

  absl::Mutex mu_;
  struct CachedQueue {
    QueueConfig config;
    absl::Time expires;
  };
  absl::flat_hash_map<std::string, CachedQueue> queue_cache_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> pending_notify_ ABSL_GUARDED_BY(mu_);
  bool notify_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool notify_armed_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time next_notify_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // The armed wake-up for the earliest scheduled job.
  absl::Time scheduled_wakeup_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  Clock::TimerId scheduled_timer_ ABSL_GUARDED_BY(mu_) = 0;
  bool maintenance_running_ ABSL_GUARDED_BY(mu_) = false;
  bool maintenance_again_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time next_retention_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::AnyInvocable<void(bool)> health_callback_ ABSL_GUARDED_BY(mu_);
  uint64_t random_state_ ABSL_GUARDED_BY(mu_);
};

}  // namespace spool::core
