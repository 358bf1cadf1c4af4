// JobQueue: the queue core's facade. It applies Spool's rules (validation,
// queue defaults, backoff, idempotency, depth limits, fencing) on top of a
// StoreSession, runs every storage call on the Executor, and answers through
// callbacks, so gRPC threads never block. It wires the units that do the
// work, one job each:
//   validation        request checks (Enqueue, Lease, Ack, Nack, Extend)
//   enqueue_planner   a group of enqueues -> rows, answers, depth refusals
//   group_commit      concurrent Enqueue and Ack calls -> one statement
//   poll_call         one long-poll: query, park in the WakeHub, retry
//   queue_config_cache, notifier (coalesced cross-replica NOTIFY),
//   maintenance (expiry, promotion, retention), health_monitor.
//
// Long-polls hold neither a thread nor a connection while they wait: they
// sit in the WakeHub until a job for their queue appears on this replica,
// another replica announces one, maintenance makes one due, or a slow
// fallback poll fires, and then they run the lease query again.
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
#include "core/enqueue_planner.h"
#include "core/executor.h"
#include "core/group_commit.h"
#include "core/health_monitor.h"
#include "core/limits.h"
#include "core/listener.h"
#include "core/maintenance.h"
#include "core/notifier.h"
#include "core/observer.h"
#include "core/poll_call.h"
#include "core/queue_config_cache.h"
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
  bool Healthy() const { return health_.Healthy(); }
  // Called with the new value whenever Healthy() changes.
  void SetHealthCallback(absl::AnyInvocable<void(bool)> fn);

  int64_t WaitingLongPolls() { return hub_.WaitingCount(); }

  // A job became ready on `queue` (here or elsewhere): wake waiters here and,
  // when `publish`, tell the other replicas.
  void JobsReady(const std::string& queue, int64_t jobs, bool publish);

 private:
  struct PendingEnqueue {
    std::vector<JobInput> jobs;
    Callback<std::vector<EnqueueResult>> done;
  };
  struct PendingAck {
    CheckedCompletions completions;
    Callback<std::vector<absl::Status>> done;
  };
  void ProcessEnqueues(absl::StatusOr<StoreSession*> session,
                       std::vector<PendingEnqueue>& group);
  // Inserts the plan's rows (built by PlanEnqueue, within the queues' depth
  // limits when `limited` is not empty); an ABORTED attempt is tried once
  // more.
  absl::StatusOr<std::vector<EnqueueResult>> InsertPlanned(
      StoreSession* s, const EnqueueRequests& requests,
      const QueueConfigs& configs,
      const absl::flat_hash_map<std::string, int64_t>& limited,
      EnqueuePlan& plan);
  void ProcessAcks(absl::StatusOr<StoreSession*> session,
                   std::vector<PendingAck>& group);
  void OnNotification(const std::string& payload);
  void ScheduleFallbackPoll();
  double RandomUnit();

  Executor* const executor_;
  const JobQueueOptions options_;
  Observer* const observer_;
  Observer null_observer_;
  std::unique_ptr<Clock> own_clock_;
  Clock* const clock_;
  ListenerFactory listen_;
  WakeHub hub_;
  QueueConfigCache configs_;
  std::atomic<bool> shutting_down_{false};
  std::atomic<bool> stopped_{false};
  PollContext poll_context_;
  Notifier notifier_;
  Maintenance maintenance_;
  HealthMonitor health_;
  std::unique_ptr<NotificationListener> listener_;
  std::unique_ptr<GroupCommit<PendingEnqueue>> enqueues_;
  std::unique_ptr<GroupCommit<PendingAck>> acks_;
};

}  // namespace spool::core
