// Notifier: tells the other replicas which queues got jobs, through
// StoreSession::Notify, coalesced: the first queue of a burst goes at once,
// NOTIFYs are at least `interval` apart, and one NOTIFY carries every queue
// that got jobs since the last (payload: replica id, then one queue per
// line), sent outside the job-writing statement. Parse() reads another
// replica's payload.
#pragma once

#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/clock.h"
#include "core/executor.h"

namespace spool::core {

class Notifier {
 public:
  struct Options {
    std::string channel = "spool_jobs";
    std::string replica_id;
    absl::Duration interval = absl::Milliseconds(10);
  };

  Notifier(Executor* executor, Clock* clock, Options options);

  // `queue` got jobs: announce it (now, or with the next NOTIFY).
  void Publish(const std::string& queue);

  // The queues a received payload names; none when this replica sent it.
  std::vector<std::string> Parse(const std::string& payload) const;

 private:
  void Flush();
  void Send();

  Executor* const executor_;
  Clock* const clock_;
  const Options options_;
  absl::Mutex mu_;
  absl::flat_hash_set<std::string> pending_ ABSL_GUARDED_BY(mu_);
  bool in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool armed_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time next_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace spool::core
