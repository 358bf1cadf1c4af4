// Session: one PostgreSQL connection with spoold's prepared statements. Every
// method is one SQL statement or one transaction, so each state change is
// atomic, and every change to a leased job is fenced by its
// lease id. libpqxx exceptions never leave this class: they become
// absl::Status (UNAVAILABLE when the connection is lost, after which broken()
// is true and the session must be replaced).
//
// Not thread-safe: a Session belongs to one thread at a time (see SessionPool).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/store.h"
#include "store/types.h"

namespace spool::store {

class Session : public core::StoreSession {
 public:
  // Connects and prepares statements. `url` is a libpq URL or key/value string.
  static absl::StatusOr<std::unique_ptr<Session>> Connect(
      const std::string& url);
  ~Session() override;

  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // True after the connection was lost; the session is then useless.
  bool broken() const { return broken_; }

  // Round trip to the server ("SELECT 1").
  absl::Status Ping() override;

  // Creates the queue with default settings if it does not exist, and
  // returns its settings.
  absl::StatusOr<QueueConfig> EnsureQueue(const std::string& name) override;

  // Inserts jobs in one statement; idempotency keys that are still held map to
  // their existing job (duplicate = true). Keys must be unique per queue
  // within one call. Results are in input order.
  absl::StatusOr<std::vector<EnqueueResult>> Enqueue(
      const std::vector<NewJob>& jobs) override;

  // Enqueue into depth-limited queues, exact with any number of replicas: in
  // one transaction, locks the settings rows of the queues in `wanted` (so
  // writers to one limited queue take turns), finds their depths, passes
  // them to `choose`, inserts the jobs it returns and keeps each queue's
  // depth bound (migrations/0003). `wanted` maps each limited queue to the
  // jobs the caller may add to it. A depth is the stored bound when that was
  // counted within `recount_after` and the wanted jobs fit under it, else an
  // exact count (up to the max depth). A queue no longer limited is missing
  // from the depths. `choose` runs once; its jobs must outlive the call.
  absl::StatusOr<std::vector<EnqueueResult>> EnqueueWithinDepth(
      const absl::flat_hash_map<std::string, int64_t>& wanted,
      absl::Duration recount_after,
      absl::FunctionRef<const std::vector<NewJob>&(const QueueDepths&)> choose)
      override;

  // Leases up to max_jobs ready jobs (FOR UPDATE SKIP LOCKED), in priority
  // order, each with a fresh lease id and attempt + 1.
  absl::StatusOr<std::vector<LeasedJob>> Lease(
      const LeaseParams& params) override;

  // Returns leased jobs to ready without counting the attempt, fenced by
  // lease id (used when a long-poll was cancelled while it leased).
  absl::Status ReleaseLeases(const std::vector<LeasedJob>& jobs) override;

  // Finishes leased jobs: deleted, or kept with their result when the queue
  // retains succeeded jobs. One result per completion, in input order.
  absl::StatusOr<std::vector<AckItem>> Ack(
      const std::vector<Completion>& completions) override;

  // Reads the fencing facts of a job; NOT_FOUND when it does not exist.
  absl::StatusOr<JobLease> GetJobLease(int64_t job_id) override;

  // Fenced retry or dead-letter. A job whose attempts are used up goes dead.
  // FAILED_PRECONDITION when the lease is no longer current.
  absl::StatusOr<NackResult> Nack(const NackParams& params) override;

  // Fenced lease extension to now + visibility_timeout; returns the expiry.
  // FAILED_PRECONDITION when the lease is no longer current.
  absl::StatusOr<absl::Time> ExtendLease(
      int64_t job_id, const std::string& lease_id,
      absl::Duration visibility_timeout) override;

  absl::StatusOr<Job> GetJob(int64_t job_id) override;

  // Maintenance, each in bounded batches and safe with several replicas
  // running it at once (SKIP LOCKED).
  absl::StatusOr<ReapResult> ReapExpiredLeases(int limit) override;
  absl::StatusOr<QueueCounts> PromoteScheduled(int limit) override;
  // The earliest run time of a scheduled job, if any.
  absl::StatusOr<std::optional<absl::Time>> NextScheduledRunAt() override;
  absl::StatusOr<int64_t> PurgeFinished(int limit) override;
  absl::StatusOr<int64_t> PurgeIdempotencyKeys(int limit) override;

  // Sends one NOTIFY on `channel` (outside any job-writing transaction).
  absl::Status Notify(const std::string& channel,
                      const std::string& payload) override;

 private:
  struct Conn;  // Wraps the pqxx::connection, kept out of this header.
  explicit Session(std::unique_ptr<Conn> conn);
  // Converts the exception being handled to a status; marks broken_ when the
  // connection is gone.
  absl::Status ConvertException(const char* op);

  std::unique_ptr<Conn> conn_;
  bool broken_ = false;
};

// The SQL of one of the prepared statements, by name ("lease", "enqueue",
// ...): for plan checks in tests and for operators reading EXPLAIN output.
std::string StatementSql(absl::string_view name);

}  // namespace spool::store
