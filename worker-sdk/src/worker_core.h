// The Worker's runtime: per-queue leasing loops and handler threads, one
// lease-extension thread and one ack-batching thread, all sharing the
// bookkeeping of the jobs this worker holds.
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ack_buffer.h"
#include "connection.h"
#include "log.h"
#include "settle.h"
#include "spool/worker.h"

namespace spool::internal {

// One leased job from lease to settle.
struct ActiveJob {
  enum class Phase {
    kQueued,    // leased, waiting for a handler thread
    kRunning,   // handler running
    kSettling,  // ack pending or nack being sent
  };

  Job job;
  CancellationSource cancel;
  std::string lease_id;
  absl::Duration visibility_timeout;

  // Guarded by WorkerCore::jobs_mu_.
  Phase phase = Phase::kQueued;
  // Handed back by Stop(); the handler's outcome is ignored.
  bool abandoned = false;
  // Extension found the lease gone; no more extensions, outcome ignored.
  bool lease_lost = false;
  // Local estimate: answer time + visibility timeout (no clock skew).
  absl::Time lease_expires_at;
  absl::Time next_extend_at;
};
using ActiveJobPtr = std::shared_ptr<ActiveJob>;

class WorkerCore : public std::enable_shared_from_this<WorkerCore> {
 public:
  explicit WorkerCore(WorkerOptions options);
  ~WorkerCore();

  absl::Status Register(std::string queue, std::shared_ptr<Handler> handler,
                        QueueOptions options);
  absl::Status Start();
  absl::Status Stop(absl::Duration deadline);
  bool running() const;
  const std::string& worker_id() const { return worker_id_; }

 private:
  struct Queue {
    std::string name;
    std::shared_ptr<Handler> handler;
    QueueOptions options;

    absl::Mutex mu;
    // Leased, not yet started.
    std::deque<ActiveJobPtr> ready ABSL_GUARDED_BY(mu);
    // Jobs in `ready` plus jobs held by handler threads: the used slots.
    int busy ABSL_GUARDED_BY(mu) = 0;
    bool leasing_stopped ABSL_GUARDED_BY(mu) = false;
    bool handlers_exit ABSL_GUARDED_BY(mu) = false;
    // The in-flight Lease call, for Stop() to cancel.
    grpc::ClientContext* lease_context ABSL_GUARDED_BY(mu) = nullptr;
    // Per handler thread: has it returned?
    std::vector<bool> thread_exited ABSL_GUARDED_BY(mu);
    // Per handler thread: is it holding a job (running or settling it)?
    std::vector<bool> thread_in_job ABSL_GUARDED_BY(mu);

    std::thread lease_thread;
    std::vector<std::thread> handler_threads;
  };

  struct PendingAck {
    ActiveJobPtr job;
    std::string result;
    // An earlier Ack carrying it failed in a way that may have applied it.
    bool maybe_applied = false;
    int failures = 0;
  };

  enum class State { kIdle, kRunning, kStopping, kStopped };

  // Thread bodies.
  void LeaseLoop(Queue* queue);
  void HandlerLoop(Queue* queue, size_t index);
  void ExtendLoop();
  void AckLoop();

  void RunJob(Queue* queue, const ActiveJobPtr& job);
  void ExtendOne(const ActiveJobPtr& job);
  void ProcessAckResults(std::vector<PendingAck>& batch,
                         const v1::AckResponse& response);
  // For an ack whose earlier attempt may have landed and now gets
  // FAILED_PRECONDITION/NOT_FOUND: did it land? (GetJob.)
  bool AckProbablyApplied(const ActiveJob& job);

  // Sends a nack, retrying transient failures until the lease runs out or
  // the shutdown budget is spent. Reports failures to log and observer.
  absl::Status SendNack(const ActiveJobPtr& job, const SettleAction& action);
  // Nack with zero delay for a job this worker will not run.
  void HandBack(const ActiveJobPtr& job, const std::string& reason);

  void AddAck(const ActiveJobPtr& job, std::string result);
  void Track(const std::vector<ActiveJobPtr>& jobs);
  void Untrack(const ActiveJobPtr& job);
  absl::Time SettleGiveUpTime(const ActiveJob& job);

  void ReportFailure(const ActiveJob& job, JobFailure failure,
                     const absl::Status& status);
  template <typename F>
  void Observe(F&& f);

  static absl::Duration RpcTimeout(absl::Duration visibility_timeout);

  const WorkerOptions options_;
  const std::string worker_id_;
  Logger log_;
  std::shared_ptr<Connection> connection_;
  absl::Status connection_status_;

  mutable absl::Mutex state_mu_;
  State state_ ABSL_GUARDED_BY(state_mu_) = State::kIdle;
  absl::Status stop_status_ ABSL_GUARDED_BY(state_mu_);
  // Serialises Stop() callers.
  absl::Mutex stop_mu_;

  std::vector<std::unique_ptr<Queue>> queues_;  // fixed after Start()

  absl::Mutex jobs_mu_;
  absl::flat_hash_map<ActiveJob*, ActiveJobPtr> tracked_
      ABSL_GUARDED_BY(jobs_mu_);
  uint64_t tracked_version_ ABSL_GUARDED_BY(jobs_mu_) = 0;
  bool extend_stop_ ABSL_GUARDED_BY(jobs_mu_) = false;
  // Past this, settle retries stop (set by Stop()).
  absl::Time settle_give_up_at_ ABSL_GUARDED_BY(jobs_mu_) =
      absl::InfiniteFuture();
  std::thread extend_thread_;

  absl::Mutex ack_mu_;
  AckBuffer<PendingAck> acks_ ABSL_GUARDED_BY(ack_mu_);
  int acks_in_flight_ ABSL_GUARDED_BY(ack_mu_) = 0;
  bool ack_draining_ ABSL_GUARDED_BY(ack_mu_) = false;
  bool ack_stop_ ABSL_GUARDED_BY(ack_mu_) = false;
  absl::Time ack_give_up_at_ ABSL_GUARDED_BY(ack_mu_) = absl::InfiniteFuture();
  std::thread ack_thread_;
};

}  // namespace spool::internal
