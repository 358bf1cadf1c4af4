// StoreSession: what the queue core needs from storage, one method per
// statement or transaction. The PostgreSQL implementation is store::Session;
// unit tests script their own. Every state change a method makes is atomic
// and every change to a leased job is fenced by its lease id: those rules
// live in the implementation (SQL) and are tested against it.
//
// Not thread-safe: a session belongs to one task at a time (see Executor).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/types.h"

namespace spool::core {

class StoreSession {
 public:
  virtual ~StoreSession() = default;

  // Round trip to the database.
  virtual absl::Status Ping() = 0;

  // Creates the queue with default settings if it does not exist, and
  // returns its settings.
  virtual absl::StatusOr<QueueConfig> EnsureQueue(const std::string& name) = 0;

  // Inserts jobs in one statement; idempotency keys that are still held map
  // to their existing job (duplicate = true). Keys must be unique per queue
  // within one call. Results are in input order. ABORTED: nothing was
  // written and the call may be repeated.
  virtual absl::StatusOr<std::vector<EnqueueResult>> Enqueue(
      const std::vector<NewJob>& jobs) = 0;

  // Enqueue into depth-limited queues, exact with any number of replicas:
  // in one transaction, locks the queues in `wanted` (queue -> jobs the
  // caller may add), finds their depths (the stored bound when counted
  // within `recount_after` and the wanted jobs fit under it, else an exact
  // count), passes them to `choose`, inserts the jobs it returns and keeps
  // each queue's depth bound. A queue no longer limited is missing from the
  // depths. `choose` runs once per call; its jobs must outlive the call.
  virtual absl::StatusOr<std::vector<EnqueueResult>> EnqueueWithinDepth(
      const absl::flat_hash_map<std::string, int64_t>& wanted,
      absl::Duration recount_after,
      absl::FunctionRef<const std::vector<NewJob>&(const QueueDepths&)>
          choose) = 0;

  // Leases up to max_jobs ready jobs, each exactly once across sessions, in
  // priority order, each with a fresh lease id and attempt + 1.
  virtual absl::StatusOr<std::vector<LeasedJob>> Lease(
      const LeaseParams& params) = 0;

  // Returns leased jobs to ready without counting the attempt, fenced by
  // lease id (a long-poll that ended while it leased).
  virtual absl::Status ReleaseLeases(const std::vector<LeasedJob>& jobs) = 0;

  // Finishes leased jobs. One result per completion, in input order.
  virtual absl::StatusOr<std::vector<AckItem>> Ack(
      const std::vector<Completion>& completions) = 0;

  // The fencing facts of a job; NOT_FOUND when it does not exist.
  virtual absl::StatusOr<JobLease> GetJobLease(int64_t job_id) = 0;

  // Fenced retry or dead-letter; FAILED_PRECONDITION when the lease is no
  // longer current.
  virtual absl::StatusOr<NackResult> Nack(const NackParams& params) = 0;

  // Fenced lease extension to now + visibility_timeout; returns the expiry.
  // FAILED_PRECONDITION when the lease is no longer current.
  virtual absl::StatusOr<absl::Time> ExtendLease(
      int64_t job_id, const std::string& lease_id,
      absl::Duration visibility_timeout) = 0;

  virtual absl::StatusOr<Job> GetJob(int64_t job_id) = 0;

  // Maintenance, each in bounded batches, safe with several replicas.
  virtual absl::StatusOr<ReapResult> ReapExpiredLeases(int limit) = 0;
  virtual absl::StatusOr<QueueCounts> PromoteScheduled(int limit) = 0;
  // The earliest run time of a scheduled job, if any.
  virtual absl::StatusOr<std::optional<absl::Time>> NextScheduledRunAt() = 0;
  virtual absl::StatusOr<int64_t> PurgeFinished(int limit) = 0;
  virtual absl::StatusOr<int64_t> PurgeIdempotencyKeys(int limit) = 0;

  // Tells other replicas (their NotificationListener) about `payload`.
  virtual absl::Status Notify(const std::string& channel,
                              const std::string& payload) = 0;
};

}  // namespace spool::core
