// Test doubles for the queue core's seams (core/clock.h, core/executor.h,
// core/store.h): a manual clock whose timers fire when the test advances
// it, an executor that runs tasks when the test says, and a gmock store
// session scripted per test. Together they make core logic deterministic:
// no PostgreSQL, no threads of their own, no real time.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/clock.h"
#include "core/executor.h"
#include "core/store.h"
#include "core/timer_queue.h"
#include "gmock/gmock.h"

namespace spool::core::testing {

// Time stands still until Advance(); due timers then run on the caller's
// thread, in time order (equal times in scheduling order), including timers
// they schedule that fall due within the advanced span.
class ManualClock : public Clock {
 public:
  explicit ManualClock(absl::Time start = absl::FromUnixSeconds(1'700'000'000))
      : now_(start) {}

  absl::Time Now() override;
  TimerId Schedule(absl::Time when, absl::AnyInvocable<void()> fn) override;
  bool Cancel(TimerId id) override;
  void Shutdown() override;

  // Moves time forward by `d`, running every timer due on the way.
  void Advance(absl::Duration d);
  // Runs the timers due now without moving time.
  void RunDue() { Advance(absl::ZeroDuration()); }
  // Timers pending, and the time of the earliest (InfiniteFuture if none).
  size_t PendingTimers();
  absl::Time NextTimer();

 private:
  absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
  TimerQueue timers_ ABSL_GUARDED_BY(mu_);
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

// Queues tasks; the test runs them one by one (handing each a session or an
// error) or all, including tasks they submit.
class ManualExecutor : public Executor {
 public:
  void Submit(Task task) override;

  size_t Pending();
  // Runs the oldest task with `session`; false when none is queued.
  bool RunNext(absl::StatusOr<StoreSession*> session);
  // Runs tasks (also those submitted meanwhile) until none is left; returns
  // how many ran.
  int RunAll(absl::StatusOr<StoreSession*> session);
  // Takes the oldest task without running it (to run it later, e.g. after a
  // cancel that must happen while its query "runs").
  Task Take();

 private:
  absl::Mutex mu_;
  std::deque<Task> tasks_ ABSL_GUARDED_BY(mu_);
};

// A store session scripted with gmock: ON_CALL/EXPECT_CALL per test.
class MockStoreSession : public StoreSession {
 public:
  MOCK_METHOD(absl::Status, Ping, (), (override));
  MOCK_METHOD(absl::StatusOr<QueueConfig>, EnsureQueue,
              (const std::string& name), (override));
  MOCK_METHOD(absl::StatusOr<std::vector<EnqueueResult>>, Enqueue,
              (const std::vector<NewJob>& jobs), (override));
  MOCK_METHOD(
      absl::StatusOr<std::vector<EnqueueResult>>, EnqueueWithinDepth,
      ((const absl::flat_hash_map<std::string, int64_t>& wanted),
       absl::Duration recount_after,
       (absl::FunctionRef<const std::vector<NewJob>&(const QueueDepths&)>
            choose)),
      (override));
  MOCK_METHOD(absl::StatusOr<std::vector<LeasedJob>>, Lease,
              (const LeaseParams& params), (override));
  MOCK_METHOD(absl::Status, ReleaseLeases, (const std::vector<LeasedJob>& jobs),
              (override));
  MOCK_METHOD(absl::StatusOr<std::vector<AckItem>>, Ack,
              (const std::vector<Completion>& completions), (override));
  MOCK_METHOD(absl::StatusOr<JobLease>, GetJobLease, (int64_t job_id),
              (override));
  MOCK_METHOD(absl::StatusOr<NackResult>, Nack, (const NackParams& params),
              (override));
  MOCK_METHOD(absl::StatusOr<absl::Time>, ExtendLease,
              (int64_t job_id, const std::string& lease_id,
               absl::Duration visibility_timeout),
              (override));
  MOCK_METHOD(absl::StatusOr<Job>, GetJob, (int64_t job_id), (override));
  MOCK_METHOD(absl::StatusOr<ReapResult>, ReapExpiredLeases, (int limit),
              (override));
  MOCK_METHOD(absl::StatusOr<QueueCounts>, PromoteScheduled, (int limit),
              (override));
  MOCK_METHOD(absl::StatusOr<std::optional<absl::Time>>, NextScheduledRunAt, (),
              (override));
  MOCK_METHOD(absl::StatusOr<int64_t>, PurgeFinished, (int limit), (override));
  MOCK_METHOD(absl::StatusOr<int64_t>, PurgeIdempotencyKeys, (int limit),
              (override));
  MOCK_METHOD(absl::Status, Notify,
              (const std::string& channel, const std::string& payload),
              (override));

  // Answers that do nothing: queues exist with default settings, nothing to
  // lease, reap, promote or purge; writes succeed.
  void SetQuietDefaults();
};

}  // namespace spool::core::testing
