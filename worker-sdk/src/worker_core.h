// The Worker's runtime: registration and start-up (worker_core.cc) and the
// shutdown sequence (shutdown.cc), over its parts: per-queue leasing loops
// and handler pools (QueueRunner), the lease extender, the ack batcher, the
// nack sender, and the bookkeeping of the jobs this worker holds
// (JobTracker), all on one injected Clock.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ack_batcher.h"
#include "clock.h"
#include "job_tracker.h"
#include "lease_extender.h"
#include "nack_sender.h"
#include "queue_runner.h"
#include "runtime.h"
#include "spool/worker.h"

namespace spool::internal {

class WorkerCore : public std::enable_shared_from_this<WorkerCore> {
 public:
  // `clock` must outlive the core (tests pass a manual one).
  explicit WorkerCore(WorkerOptions options,
                      const Clock& clock = Clock::Real());
  ~WorkerCore();

  absl::Status Register(std::string queue, std::shared_ptr<Handler> handler,
                        QueueOptions options);
  absl::Status Start();
  absl::Status Stop(absl::Duration deadline);
  bool running() const;
  const std::string& worker_id() const { return runtime_.worker_id; }

 private:
  enum class State { kIdle, kRunning, kStopping, kStopped };

  // What the shutdown steps found, for Stop()'s status and log line.
  struct StopReport {
    int handed_back_queued = 0;
    int handed_back_running = 0;
    int acks_left = 0;
    int left_behind = 0;
  };

  // Shutdown steps (shutdown.cc), in order.
  void StopLeasing();
  int HandBackQueued();
  void WaitForHandlers(absl::Time until);
  int CancelAndHandBackRunning();
  void LetHandlerThreadsReturn();
  int FlushAcks(absl::Time handlers_deadline);
  void StopLeaseExtension();
  int JoinOrLeaveHandlerThreads();
  absl::Status Finish(const StopReport& report, absl::Time stop_started);

  Runtime runtime_;
  absl::Status connection_status_;
  JobTracker jobs_;
  NackSender nacks_;
  AckBatcher acks_;
  LeaseExtender extender_;
  std::vector<std::unique_ptr<QueueRunner>> queues_;  // fixed after Start()

  mutable absl::Mutex state_mu_;
  State state_ ABSL_GUARDED_BY(state_mu_) = State::kIdle;
  absl::Status stop_status_ ABSL_GUARDED_BY(state_mu_);
  // Serialises Stop() callers.
  absl::Mutex stop_mu_;
};

}  // namespace spool::internal
