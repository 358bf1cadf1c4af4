// The timers' scheduling rules on TimerQueue, with no thread and no real
// time: callbacks in time order (not scheduling order), equal times in
// scheduling order, never before their time, distinct ids, Cancel. Then a
// few short real-time smoke tests of Timer, the real clock built on it:
// its thread runs callbacks, is preempted by an earlier one, lets callbacks
// schedule and cancel, and shuts down promptly.
#include "core/timer.h"

#include <atomic>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/timer_queue.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace spool::core {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// Thread-safe record of which callbacks ran, in order.
class RunLog {
 public:
  void Add(int v) {
    absl::MutexLock lock(&mu_);
    v_.push_back(v);
  }
  std::vector<int> Get() {
    absl::MutexLock lock(&mu_);
    return v_;
  }
  // Waits until `n` entries are logged; false on timeout.
  bool WaitFor(size_t n, absl::Duration timeout = absl::Seconds(10)) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return v_.size() >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
  }

 private:
  absl::Mutex mu_;
  std::vector<int> v_ ABSL_GUARDED_BY(mu_);
};

// Runs every callback of `q` due at `now`, in the order PopDue gives them.
void RunDue(TimerQueue& q, absl::Time now) {
  while (auto fn = q.PopDue(now)) fn();
}

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

TEST(TimerQueue, RunsCallbacksInTimeOrderNotBeforeTheirTime) {
  TimerQueue q;
  std::vector<int> ran;
  // Scheduled out of order.
  q.Add(kT0 + absl::Milliseconds(60), [&] { ran.push_back(3); });
  q.Add(kT0, [&] { ran.push_back(1); });
  q.Add(kT0 + absl::Milliseconds(90), [&] { ran.push_back(4); });
  q.Add(kT0 + absl::Milliseconds(30), [&] { ran.push_back(2); });
  EXPECT_EQ(q.First().first, kT0);
  RunDue(q, kT0 - absl::Nanoseconds(1));
  EXPECT_THAT(ran, IsEmpty());
  RunDue(q, kT0 + absl::Milliseconds(60));
  EXPECT_THAT(ran, ElementsAre(1, 2, 3));
  EXPECT_EQ(q.First().first, kT0 + absl::Milliseconds(90));
  RunDue(q, kT0 + absl::Hours(1));
  EXPECT_THAT(ran, ElementsAre(1, 2, 3, 4));
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.First().first, absl::InfiniteFuture());
}

TEST(TimerQueue, EqualTimesRunInSchedulingOrder) {
  TimerQueue q;
  std::vector<int> ran;
  for (int i = 0; i < 5; ++i) q.Add(kT0, [&ran, i] { ran.push_back(i); });
  RunDue(q, kT0);
  EXPECT_THAT(ran, ElementsAre(0, 1, 2, 3, 4));
}

TEST(TimerQueue, IdsAreDistinctAndNeverZero) {
  TimerQueue q;
  TimerQueue::Id a = q.Add(kT0, [] {});
  TimerQueue::Id b = q.Add(kT0, [] {});
  q.Cancel(b);
  TimerQueue::Id c = q.Add(kT0, [] {});
  EXPECT_NE(a, 0u);
  EXPECT_NE(a, b);
  EXPECT_NE(b, c);  // Not reused after a cancel.
  EXPECT_NE(a, c);
}

TEST(TimerQueue, CancelPreventsTheRunAndIsTrueOnce) {
  TimerQueue q;
  std::vector<int> ran;
  TimerQueue::Id cancelled = q.Add(kT0, [&] { ran.push_back(1); });
  TimerQueue::Id later =
      q.Add(kT0 + absl::Seconds(1), [&] { ran.push_back(2); });
  EXPECT_TRUE(q.Cancel(cancelled));
  EXPECT_FALSE(q.Cancel(cancelled));
  EXPECT_FALSE(q.Cancel(later + 1000));
  EXPECT_EQ(q.First().second, later);
  RunDue(q, kT0 + absl::Seconds(1));
  EXPECT_THAT(ran, ElementsAre(2));
  EXPECT_FALSE(q.Cancel(later));  // Already ran.
}

TEST(TimerQueue, ClearDropsEverything) {
  TimerQueue q;
  int runs = 0;
  for (int i = 0; i < 10; ++i) q.Add(kT0, [&] { ++runs; });
  q.Clear();
  RunDue(q, kT0 + absl::Hours(1));
  EXPECT_EQ(runs, 0);
  EXPECT_EQ(q.size(), 0u);
}

TEST(Timer, RunsACallback) {
  Timer timer;
  absl::Notification done;
  timer.Schedule(absl::Now(), [&] { done.Notify(); });
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
}

TEST(Timer, PastTimesRunImmediately) {
  Timer timer;
  absl::Notification done;
  timer.Schedule(absl::Now() - absl::Hours(1), [&] { done.Notify(); });
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
}

TEST(Timer, DoesNotRunBeforeItsTime) {
  Timer timer;
  absl::Notification done;
  absl::Time ran_at;
  const absl::Time when = absl::Now() + absl::Milliseconds(150);
  timer.Schedule(when, [&] {
    ran_at = absl::Now();
    done.Notify();
  });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_GE(ran_at, when);
}

TEST(Timer, EarlierCallbackScheduledLaterPreemptsTheWait) {
  // The thread is waiting for a callback an hour away; a new one due now
  // must run without waiting for the first.
  Timer timer;
  RunLog log;
  timer.Schedule(absl::Now() + absl::Hours(1), [&] { log.Add(1); });
  absl::SleepFor(absl::Milliseconds(20));  // Let the thread start waiting.
  timer.Schedule(absl::Now() + absl::Milliseconds(10), [&] { log.Add(2); });
  ASSERT_TRUE(log.WaitFor(1, absl::Seconds(5)));
  EXPECT_THAT(log.Get(), ElementsAre(2));
}

TEST(Timer, CancelFromInsideACallback) {
  Timer timer;
  RunLog log;
  const absl::Time base = absl::Now() + absl::Milliseconds(30);
  Timer::Id second =
      timer.Schedule(base + absl::Milliseconds(50), [&] { log.Add(2); });
  std::atomic<bool> cancelled{false};
  timer.Schedule(base, [&] {
    cancelled = timer.Cancel(second);
    log.Add(1);
  });
  timer.Schedule(base + absl::Milliseconds(100), [&] { log.Add(3); });
  ASSERT_TRUE(log.WaitFor(2));
  EXPECT_TRUE(cancelled.load());
  EXPECT_THAT(log.Get(), ElementsAre(1, 3));
}

TEST(Timer, ScheduleFromInsideACallback) {
  Timer timer;
  RunLog log;
  timer.Schedule(absl::Now(), [&] {
    log.Add(1);
    timer.Schedule(absl::Now() + absl::Milliseconds(10), [&] { log.Add(2); });
  });
  ASSERT_TRUE(log.WaitFor(2));
  EXPECT_THAT(log.Get(), ElementsAre(1, 2));
}

TEST(Timer, ShutdownDropsPendingCallbacks) {
  std::atomic<int> runs{0};
  Timer timer;
  for (int i = 0; i < 10; ++i) {
    timer.Schedule(absl::Now() + absl::Seconds(1) + absl::Milliseconds(i),
                   [&] { runs.fetch_add(1); });
  }
  timer.Shutdown();  // Joins the thread: nothing can run after this.
  EXPECT_EQ(runs.load(), 0);
  // Nothing is pending any more.
  EXPECT_FALSE(timer.Cancel(1));
}

TEST(Timer, ShutdownIsIdempotentAndDestructorSafe) {
  std::atomic<int> runs{0};
  {
    Timer timer;
    timer.Schedule(absl::Now() + absl::Seconds(1), [&] { runs.fetch_add(1); });
    timer.Shutdown();
    timer.Shutdown();
  }  // Destructor shuts down again.
  EXPECT_EQ(runs.load(), 0);
}

TEST(Timer, ShutdownWaitsForARunningCallback) {
  Timer timer;
  absl::Notification started;
  std::atomic<bool> finished{false};
  timer.Schedule(absl::Now(), [&] {
    started.Notify();
    absl::SleepFor(absl::Milliseconds(100));
    finished = true;
  });
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(absl::Seconds(10)));
  timer.Shutdown();
  EXPECT_TRUE(finished.load());
}

TEST(Timer, DestructorDropsFarFutureCallbacksPromptly) {
  std::atomic<int> runs{0};
  const absl::Time start = absl::Now();
  {
    Timer timer;
    timer.Schedule(absl::Now() + absl::Hours(1), [&] { runs.fetch_add(1); });
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(runs.load(), 0);
}

TEST(Timer, IdleTimerShutsDownPromptly) {
  Timer timer;
  absl::SleepFor(absl::Milliseconds(10));  // Thread waiting with nothing due.
  const absl::Time start = absl::Now();
  timer.Shutdown();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

}  // namespace
}  // namespace spool::core
