// Timer: the real-time Clock. One thread runs the callbacks at their times
// (long-poll deadlines, wake-ups for delayed jobs, periodic maintenance).
// Callbacks must be short: they hand real work to the Executor.
#pragma once

#include <cstdint>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/clock.h"
#include "core/timer_queue.h"

namespace spool::core {

class Timer : public Clock {
 public:
  using Id = TimerId;

  Timer();
  ~Timer() override;

  // absl::Now().
  absl::Time Now() override;
  // Runs `fn` on the timer thread at or soon after `when`.
  Id Schedule(absl::Time when, absl::AnyInvocable<void()> fn) override;
  // True when the callback was removed before it started.
  bool Cancel(Id id) override;
  // Drops pending callbacks and joins the thread.
  void Shutdown() override;

 private:
  void Run();

  absl::Mutex mu_;
  TimerQueue pending_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace spool::core
