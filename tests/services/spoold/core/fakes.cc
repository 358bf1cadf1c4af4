#include "fakes.h"

namespace spool::core::testing {

using ::testing::_;
using ::testing::Invoke;
using ::testing::Return;

absl::Time ManualClock::Now() {
  absl::MutexLock lock(&mu_);
  return now_;
}

Clock::TimerId ManualClock::Schedule(absl::Time when,
                                     absl::AnyInvocable<void()> fn) {
  absl::MutexLock lock(&mu_);
  const TimerId id = timers_.Add(when, std::move(fn));
  if (stopped_) timers_.Cancel(id);  // After Shutdown nothing runs.
  return id;
}

bool ManualClock::Cancel(TimerId id) {
  absl::MutexLock lock(&mu_);
  return timers_.Cancel(id);
}

void ManualClock::Shutdown() {
  absl::MutexLock lock(&mu_);
  stopped_ = true;
  timers_.Clear();
}

void ManualClock::Advance(absl::Duration d) {
  absl::Time until;
  {
    absl::MutexLock lock(&mu_);
    until = now_ + d;
  }
  while (true) {
    absl::AnyInvocable<void()> fn;
    {
      absl::MutexLock lock(&mu_);
      const absl::Time next = timers_.First().first;
      if (next > until) {
        now_ = until;
        return;
      }
      now_ = std::max(now_, next);
      fn = timers_.PopDue(now_);
    }
    fn();
  }
}

size_t ManualClock::PendingTimers() {
  absl::MutexLock lock(&mu_);
  return timers_.size();
}

absl::Time ManualClock::NextTimer() {
  absl::MutexLock lock(&mu_);
  return timers_.First().first;
}

void ManualExecutor::Submit(Task task) {
  absl::MutexLock lock(&mu_);
  tasks_.push_back(std::move(task));
}

size_t ManualExecutor::Pending() {
  absl::MutexLock lock(&mu_);
  return tasks_.size();
}

Executor::Task ManualExecutor::Take() {
  absl::MutexLock lock(&mu_);
  if (tasks_.empty()) return nullptr;
  Task task = std::move(tasks_.front());
  tasks_.pop_front();
  return task;
}

bool ManualExecutor::RunNext(absl::StatusOr<StoreSession*> session) {
  Task task = Take();
  if (task == nullptr) return false;
  task(std::move(session));
  return true;
}

int ManualExecutor::RunAll(absl::StatusOr<StoreSession*> session) {
  int n = 0;
  while (RunNext(session)) ++n;
  return n;
}

void MockStoreSession::SetQuietDefaults() {
  ON_CALL(*this, Ping()).WillByDefault(Return(absl::OkStatus()));
  ON_CALL(*this, EnsureQueue(_))
      .WillByDefault(Invoke([](const std::string& name) {
        QueueConfig c;
        c.name = name;
        return absl::StatusOr<QueueConfig>(c);
      }));
  ON_CALL(*this, Enqueue(_))
      .WillByDefault(Invoke([](const std::vector<NewJob>& jobs) {
        std::vector<EnqueueResult> out(jobs.size());
        for (size_t i = 0; i < jobs.size(); ++i) {
          out[i].job_id = static_cast<int64_t>(i + 1);
        }
        return absl::StatusOr<std::vector<EnqueueResult>>(out);
      }));
  ON_CALL(*this, Lease(_)).WillByDefault(Return(std::vector<LeasedJob>()));
  ON_CALL(*this, ReleaseLeases(_)).WillByDefault(Return(absl::OkStatus()));
  ON_CALL(*this, ReapExpiredLeases(_)).WillByDefault(Return(ReapResult()));
  ON_CALL(*this, PromoteScheduled(_)).WillByDefault(Return(QueueCounts()));
  ON_CALL(*this, NextScheduledRunAt())
      .WillByDefault(Return(std::optional<absl::Time>()));
  ON_CALL(*this, PurgeFinished(_)).WillByDefault(Return(int64_t{0}));
  ON_CALL(*this, PurgeIdempotencyKeys(_)).WillByDefault(Return(int64_t{0}));
  ON_CALL(*this, Notify(_, _)).WillByDefault(Return(absl::OkStatus()));
}

}  // namespace spool::core::testing
