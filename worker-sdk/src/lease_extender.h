// The lease extender: one thread that extends each running job's lease
// every third of its visibility timeout (ExtensionInterval), retries
// transient failures soon, and cancels a handler whose lease is gone.
#pragma once

#include <memory>
#include <thread>

#include "job_tracker.h"
#include "runtime.h"

namespace spool::internal {

class LeaseExtender {
 public:
  LeaseExtender(Runtime& runtime, JobTracker& jobs)
      : runtime_(runtime), jobs_(jobs) {}

  // Starts the thread, marked as `owner`'s runtime thread and keeping it
  // alive.
  void Start(std::shared_ptr<const void> owner);
  // No more extensions; joins the thread (an RPC in flight ends by its own
  // deadline).
  void Stop();

 private:
  void Run();
  void ExtendOne(const ActiveJobPtr& job);

  Runtime& runtime_;
  JobTracker& jobs_;
  std::thread thread_;
};

}  // namespace spool::internal
