// QueueRunner's handler threads: take a leased job, run the handler, and
// settle its outcome (ack through the AckBatcher, nack through the
// NackSender), unless the job was handed back or its lease lost meanwhile.
#include <deque>
#include <exception>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "queue_runner.h"
#include "settle.h"

namespace spool::internal {

void QueueRunner::HandlerLoop(size_t index) {
  while (true) {
    ActiveJobPtr job;
    {
      absl::MutexLock lock(&mu_);
      auto has_work = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !ready_.empty() || handlers_exit_;
      };
      mu_.Await(absl::Condition(&has_work));
      if (ready_.empty()) return;
      job = std::move(ready_.front());
      ready_.pop_front();
      thread_in_job_[index] = true;
    }
    RunJob(job);
    absl::MutexLock lock(&mu_);
    thread_in_job_[index] = false;
    --busy_;
  }
}

void QueueRunner::RunJob(const ActiveJobPtr& job) {
  if (!jobs_.BeginRun(job)) return;
  Logger& log = runtime_.log;
  const Clock& clock = runtime_.clock;
  runtime_.Observe([&](WorkerObserver& o) { o.OnJobStarted(job->job); });
  const absl::Time started = clock.Now();
  bool threw = false;
  Outcome outcome = Outcome::Success();
  try {
    outcome = handler_->Handle(job->job);
  } catch (...) {
    threw = true;
    outcome = OutcomeFromException(std::current_exception());
  }
  const absl::Duration took = clock.Now() - started;
  if (threw) {
    const absl::Status status = absl::UnknownError(outcome.error());
    log.Warn("handler_exception", {{"queue", name_},
                                   {"job_id", job->job.id},
                                   {"attempt", absl::StrCat(job->job.attempt)},
                                   {"error", outcome.error()}});
    runtime_.Observe([&](WorkerObserver& o) {
      o.OnJobFailed(job->job, JobFailure::kHandlerException, status);
    });
  }
  runtime_.Observe(
      [&](WorkerObserver& o) { o.OnJobFinished(job->job, outcome, took); });

  if (const char* discard_reason = jobs_.EndRun(job)) {
    log.Info("outcome_discarded",
             {{"queue", name_},
              {"job_id", job->job.id},
              {"outcome", Outcome::KindName(outcome.kind())},
              {"reason", discard_reason}});
    return;
  }

  SettleAction action = ToSettleAction(outcome);
  if (action.kind == SettleAction::Kind::kAck) {
    acks_.Add(job, std::move(action.result));
    return;
  }
  if (action.dead_letter) {
    log.Warn("job_failed", {{"queue", name_},
                            {"job_id", job->job.id},
                            {"attempt", absl::StrCat(job->job.attempt)},
                            {"error", action.error}});
  } else if (!threw) {
    log.Info("job_retry", {{"queue", name_},
                           {"job_id", job->job.id},
                           {"attempt", absl::StrCat(job->job.attempt)},
                           {"delay_ms", action.retry_delay.has_value()
                                            ? Ms(*action.retry_delay)
                                            : std::string("queue_backoff")},
                           {"error", action.error}});
  }
  (void)nacks_.Send(job, action);
  jobs_.Untrack(job);
}

int QueueRunner::HandBackQueued() {
  std::deque<ActiveJobPtr> queued;
  {
    absl::MutexLock lock(&mu_);
    queued.swap(ready_);
    busy_ -= static_cast<int>(queued.size());
  }
  for (const ActiveJobPtr& job : queued) {
    nacks_.HandBack(job, "worker stopping: job leased but not started");
  }
  return static_cast<int>(queued.size());
}

bool QueueRunner::WaitIdle(absl::Time until) {
  absl::MutexLock lock(&mu_);
  auto idle = [this]()
                  ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return busy_ <= 0; };
  return runtime_.clock.AwaitWithDeadline(mu_, absl::Condition(&idle), until);
}

void QueueRunner::ReleaseHandlerThreads() {
  absl::MutexLock lock(&mu_);
  handlers_exit_ = true;
}

int QueueRunner::JoinOrLeaveHandlerThreads() {
  std::vector<bool> in_job;
  {
    absl::MutexLock lock(&mu_);
    in_job = thread_in_job_;
  }
  int left_behind = 0;
  for (size_t i = 0; i < handler_threads_.size(); ++i) {
    std::thread& t = handler_threads_[i];
    if (!t.joinable()) continue;
    if (!in_job[i]) {
      t.join();  // idle: handlers_exit_ makes it return at once
    } else {
      t.detach();
      ++left_behind;
    }
  }
  return left_behind;
}

}  // namespace spool::internal
