// One registered queue at run time: its leasing loop (lease_loop.cc), which
// long-polls Lease for at most as many jobs as there are free handler
// slots, and its pool of `concurrency` handler threads (handler_pool.cc),
// which run the handler and settle the outcome. Stop() drives it through
// the shutdown steps below.
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ack_batcher.h"
#include "backoff.h"
#include "grpcpp/client_context.h"
#include "job_tracker.h"
#include "nack_sender.h"
#include "runtime.h"
#include "spool/v1/spool.pb.h"
#include "spool/worker.h"

namespace spool::internal {

class QueueRunner {
 public:
  QueueRunner(std::string name, std::shared_ptr<Handler> handler,
              QueueOptions options, Runtime& runtime, JobTracker& jobs,
              NackSender& nacks, AckBatcher& acks);

  const std::string& name() const { return name_; }
  const QueueOptions& options() const { return options_; }

  // Starts the handler threads and the leasing thread, marked as `owner`'s
  // runtime threads and keeping it alive.
  void Start(const std::shared_ptr<const void>& owner);

  // Shutdown steps, in Stop()'s order.
  // Stops leasing: cancels the Lease in flight (a cancelled Lease leases
  // nothing). Then JoinLeaseThread().
  void StopLeasing();
  void JoinLeaseThread();
  // Hands back the jobs leased but not started; returns how many.
  int HandBackQueued();
  // Waits until no handler holds a job, or `until`; false on timeout.
  bool WaitIdle(absl::Time until);
  // Idle handler threads return.
  void ReleaseHandlerThreads();
  // Joins handler threads that returned or are idle; detaches those still
  // in a job (they keep the owner alive). Returns how many were left.
  int JoinOrLeaveHandlerThreads();

 private:
  void LeaseLoop();
  // Leases up to `free_slots` jobs; false once leasing stopped.
  bool LeaseOnce(int free_slots, Backoff& backoff, bool* failing);
  void Enqueue(const v1::LeaseResponse& response);
  void HandlerLoop(size_t index);
  void RunJob(const ActiveJobPtr& job);

  const std::string name_;
  const std::shared_ptr<Handler> handler_;
  const QueueOptions options_;
  Runtime& runtime_;
  JobTracker& jobs_;
  NackSender& nacks_;
  AckBatcher& acks_;

  absl::Mutex mu_;
  // Leased, not yet started.
  std::deque<ActiveJobPtr> ready_ ABSL_GUARDED_BY(mu_);
  // Jobs in `ready_` plus jobs held by handler threads: the used slots.
  int busy_ ABSL_GUARDED_BY(mu_) = 0;
  bool leasing_stopped_ ABSL_GUARDED_BY(mu_) = false;
  bool handlers_exit_ ABSL_GUARDED_BY(mu_) = false;
  // The in-flight Lease call, for StopLeasing() to cancel.
  grpc::ClientContext* lease_context_ ABSL_GUARDED_BY(mu_) = nullptr;
  // Per handler thread: is it holding a job (running or settling it)?
  std::vector<bool> thread_in_job_ ABSL_GUARDED_BY(mu_);

  std::thread lease_thread_;
  std::vector<std::thread> handler_threads_;
};

}  // namespace spool::internal
