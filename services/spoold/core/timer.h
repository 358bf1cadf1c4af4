// Timer: the real-time Clock. One thread runs the callbacks at their times
// (long-poll deadlines, wake-ups for delayed jobs, periodic maintenance).
// Callbacks must be short: they hand real work to the Executor.
#pragma once

#include <cstdint>
#include <map>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/clock.h"

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
  std::map<std::pair<absl::Time, Id>, absl::AnyInvocable<void()>> pending_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<Id, absl::Time> when_ ABSL_GUARDED_BY(mu_);
  Id next_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace spool::core
