// Sends nacks (retries, dead letters, hand-backs), retrying transient
// failures with backoff until the job's lease runs out or Stop()'s settle
// budget is spent, and reports failures to the log and the observer.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "job_tracker.h"
#include "runtime.h"
#include "settle.h"

namespace spool::internal {

// The deadline of one settle or extension RPC for a lease of
// `visibility_timeout`: a third of it, within 0.5..5 s.
absl::Duration SettleRpcTimeout(absl::Duration visibility_timeout);

class NackSender {
 public:
  NackSender(Runtime& runtime, JobTracker& jobs)
      : runtime_(runtime), jobs_(jobs) {}

  absl::Status Send(const ActiveJobPtr& job, const SettleAction& action);
  // Nack with zero delay for a job this worker will not run; cancels it
  // and stops tracking it.
  void HandBack(const ActiveJobPtr& job, const std::string& reason);

 private:
  Runtime& runtime_;
  JobTracker& jobs_;
};

}  // namespace spool::internal
