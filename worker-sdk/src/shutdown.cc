// WorkerCore::Stop(): the graceful shutdown sequence, one named step each
// (see Worker::Stop in spool/worker.h for the contract).
#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "worker_core.h"

namespace spool::internal {

absl::Status WorkerCore::Stop(absl::Duration deadline) {
  if (IsRuntimeThreadOf(this)) {
    return absl::FailedPreconditionError(
        "Worker::Stop() was called from the worker's own thread (a handler or "
        "an observer callback); it waits for those threads to finish, so "
        "call it from another thread");
  }
  absl::MutexLock stop_lock(&stop_mu_);
  {
    absl::MutexLock lock(&state_mu_);
    if (state_ == State::kIdle) {
      state_ = State::kStopped;
      return absl::OkStatus();
    }
    if (state_ == State::kStopped) return stop_status_;
    state_ = State::kStopping;
  }
  const Clock& clock = runtime_.clock;
  const absl::Time stop_started = clock.Now();
  const absl::Time handlers_deadline =
      stop_started + std::max(deadline, absl::ZeroDuration());
  jobs_.SetSettleGiveUp(handlers_deadline +
                        runtime_.options.shutdown_flush_timeout);
  runtime_.log.Info("worker_stopping", {{"worker_id", runtime_.worker_id},
                                        {"deadline_ms", Ms(deadline)}});

  StopReport report;
  StopLeasing();
  report.handed_back_queued = HandBackQueued();
  WaitForHandlers(handlers_deadline);
  report.handed_back_running = CancelAndHandBackRunning();
  LetHandlerThreadsReturn();
  report.acks_left = FlushAcks(handlers_deadline);
  StopLeaseExtension();
  report.left_behind = JoinOrLeaveHandlerThreads();
  return Finish(report, stop_started);
}

// 1. Stop leasing; a cancelled Lease leases nothing.
void WorkerCore::StopLeasing() {
  for (auto& q : queues_) q->StopLeasing();
  for (auto& q : queues_) q->JoinLeaseThread();
}

// 2. Hand back what was leased but not started.
int WorkerCore::HandBackQueued() {
  int handed_back = 0;
  for (auto& q : queues_) handed_back += q->HandBackQueued();
  return handed_back;
}

// 3. Let running handlers finish until the deadline.
void WorkerCore::WaitForHandlers(absl::Time until) {
  for (auto& q : queues_) {
    if (!q->WaitIdle(until)) return;
  }
}

// 4. Cancel the stragglers and hand their jobs back at once.
int WorkerCore::CancelAndHandBackRunning() {
  const std::vector<ActiveJobPtr> stragglers = jobs_.AbandonRunning();
  for (const ActiveJobPtr& job : stragglers) job->cancel.Cancel();
  for (const ActiveJobPtr& job : stragglers) {
    runtime_.log.Warn("job_handed_back",
                      {{"queue", job->job.queue},
                       {"job_id", job->job.id},
                       {"reason", "handler still running at stop deadline"}});
    nacks_.HandBack(job,
                    "worker stopping: handler still running at stop deadline");
  }
  return static_cast<int>(stragglers.size());
}

// 5. Let handler threads return (cancelled handlers should be quick).
void WorkerCore::LetHandlerThreadsReturn() {
  for (auto& q : queues_) q->ReleaseHandlerThreads();
  WaitForHandlers(runtime_.clock.Now() + runtime_.options.cancel_grace);
}

// 6. Flush acks, retrying while spoold is unreachable, within the budget.
// The budget is shared with the nacks above, but acks (earned work) always
// get at least a second of their own.
int WorkerCore::FlushAcks(absl::Time handlers_deadline) {
  return acks_.DrainAndStop(
      std::max(handlers_deadline + runtime_.options.shutdown_flush_timeout,
               runtime_.clock.Now() + absl::Seconds(1)));
}

// 7. No more leases to extend.
void WorkerCore::StopLeaseExtension() { extender_.Stop(); }

// 8. Join handler threads that returned; leave the others behind (they keep
// this core alive through their shared_ptr).
int WorkerCore::JoinOrLeaveHandlerThreads() {
  int left_behind = 0;
  for (auto& q : queues_) left_behind += q->JoinOrLeaveHandlerThreads();
  return left_behind;
}

absl::Status WorkerCore::Finish(const StopReport& report,
                                absl::Time stop_started) {
  absl::Status status;
  if (report.handed_back_running > 0 || report.acks_left > 0 ||
      report.left_behind > 0) {
    status = absl::DeadlineExceededError(
        absl::StrCat("stop deadline passed: ", report.handed_back_running,
                     " running job(s) cancelled and handed back, ",
                     report.acks_left, " ack(s) not delivered, ",
                     report.left_behind, " handler thread(s) still running"));
  }
  runtime_.log.Info(
      "worker_stopped",
      {{"worker_id", runtime_.worker_id},
       {"took_ms", Ms(runtime_.clock.Now() - stop_started)},
       {"handed_back_queued", absl::StrCat(report.handed_back_queued)},
       {"handed_back_running", absl::StrCat(report.handed_back_running)},
       {"acks_not_delivered", absl::StrCat(report.acks_left)},
       {"threads_left_behind", absl::StrCat(report.left_behind)}});
  absl::MutexLock lock(&state_mu_);
  state_ = State::kStopped;
  stop_status_ = status;
  return status;
}

}  // namespace spool::internal
