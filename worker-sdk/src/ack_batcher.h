// The ack batcher: one thread that gathers handlers' successes into Ack
// RPCs (up to ack_batch_size, each completion waiting at most
// ack_flush_delay for company, see AckBuffer), retries them with backoff
// while spoold is unreachable, confirms an ack whose earlier try may have
// landed (GetJob), and drains within Stop()'s budget.
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ack_buffer.h"
#include "backoff.h"
#include "job_tracker.h"
#include "runtime.h"
#include "spool/v1/spool.pb.h"

namespace spool::internal {

class AckBatcher {
 public:
  AckBatcher(Runtime& runtime, JobTracker& jobs);

  void Start(std::shared_ptr<const void> owner);
  // Queues the ack of a handled job; after Stop() it is dropped and
  // reported.
  void Add(const ActiveJobPtr& job, std::string result);
  // Flushes what is pending, retrying until `give_up_at` (+2 s for an RPC
  // in flight); then stops the thread and reports what was not delivered.
  // Returns how many acks were not delivered.
  int DrainAndStop(absl::Time give_up_at);

 private:
  struct PendingAck {
    ActiveJobPtr job;
    std::string result;
    // An earlier Ack carrying it failed in a way that may have applied it.
    bool maybe_applied = false;
    int failures = 0;
  };

  void Run();
  // Waits for a batch that is due; false when stopped.
  bool TakeDueBatch(std::vector<PendingAck>* batch, absl::Time* oldest);
  void SendBatch(std::vector<PendingAck>& batch, absl::Time oldest,
                 Backoff& backoff);
  void ProcessResults(std::vector<PendingAck>& batch,
                      const v1::AckResponse& response);
  // For an ack whose earlier attempt may have landed and now gets
  // FAILED_PRECONDITION/NOT_FOUND: did it land? (GetJob.)
  bool ProbablyApplied(const ActiveJob& job);

  Runtime& runtime_;
  JobTracker& jobs_;
  std::thread thread_;

  absl::Mutex mu_;
  AckBuffer<PendingAck> acks_ ABSL_GUARDED_BY(mu_);
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time give_up_at_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
};

}  // namespace spool::internal
