// Unit tests for core/timer: callbacks run in time order (not scheduling
// order), not before their time, Cancel prevents a run, Shutdown drops what
// is pending. Uses short real delays.
#include "core/timer.h"

#include <atomic>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
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

TEST(Timer, RunsCallbacksInTimeOrder) {
  Timer timer;
  RunLog log;
  const absl::Time base = absl::Now() + absl::Milliseconds(100);
  // Scheduled out of order.
  timer.Schedule(base + absl::Milliseconds(60), [&] { log.Add(3); });
  timer.Schedule(base, [&] { log.Add(1); });
  timer.Schedule(base + absl::Milliseconds(90), [&] { log.Add(4); });
  timer.Schedule(base + absl::Milliseconds(30), [&] { log.Add(2); });
  ASSERT_TRUE(log.WaitFor(4));
  EXPECT_THAT(log.Get(), ElementsAre(1, 2, 3, 4));
}

TEST(Timer, EqualTimesRunInSchedulingOrder) {
  Timer timer;
  RunLog log;
  const absl::Time when = absl::Now() + absl::Milliseconds(50);
  for (int i = 0; i < 5; ++i) timer.Schedule(when, [&log, i] { log.Add(i); });
  ASSERT_TRUE(log.WaitFor(5));
  EXPECT_THAT(log.Get(), ElementsAre(0, 1, 2, 3, 4));
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

TEST(Timer, IdsAreDistinct) {
  Timer timer;
  const absl::Time later = absl::Now() + absl::Hours(1);
  Timer::Id a = timer.Schedule(later, [] {});
  Timer::Id b = timer.Schedule(later, [] {});
  Timer::Id c = timer.Schedule(later, [] {});
  EXPECT_NE(a, b);
  EXPECT_NE(b, c);
  EXPECT_NE(a, c);
}

TEST(Timer, CancelPreventsTheRun) {
  Timer timer;
  RunLog log;
  const absl::Time when = absl::Now() + absl::Milliseconds(80);
  Timer::Id cancelled = timer.Schedule(when, [&] { log.Add(1); });
  timer.Schedule(when + absl::Milliseconds(40), [&] { log.Add(2); });
  EXPECT_TRUE(timer.Cancel(cancelled));
  ASSERT_TRUE(log.WaitFor(1));
  // The later callback ran, so the cancelled one's time has long passed.
  EXPECT_THAT(log.Get(), ElementsAre(2));
}

TEST(Timer, CancelTwiceOrUnknownReturnsFalse) {
  Timer timer;
  Timer::Id id = timer.Schedule(absl::Now() + absl::Hours(1), [] {});
  EXPECT_TRUE(timer.Cancel(id));
  EXPECT_FALSE(timer.Cancel(id));
  EXPECT_FALSE(timer.Cancel(id + 1000));
}

TEST(Timer, CancelAfterRunReturnsFalse) {
  Timer timer;
  absl::Notification done;
  Timer::Id id = timer.Schedule(absl::Now(), [&] { done.Notify(); });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_FALSE(timer.Cancel(id));
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
