// TimerQueue: the bookkeeping of pending timers, without threads or time of
// its own: callbacks ordered by due time (equal times in scheduling order),
// ids that are never reused, cancellation. Timer (the real clock) and the
// tests' manual clock both keep their timers in one, so the scheduling rules
// are the same in both and tested once, without real time. Not thread-safe:
// the owner locks.
#pragma once

#include <cstddef>
#include <map>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "core/clock.h"

namespace spool::core {

class TimerQueue {
 public:
  using Id = Clock::TimerId;

  Id Add(absl::Time when, absl::AnyInvocable<void()> fn);
  // True when the callback was pending (and is now removed).
  bool Cancel(Id id);
  // Removes and returns the earliest callback due at `now`; null if none.
  absl::AnyInvocable<void()> PopDue(absl::Time now);
  void Clear();

  bool empty() const { return pending_.empty(); }
  size_t size() const { return pending_.size(); }
  // The earliest pending timer's time and id; InfiniteFuture and 0 if none.
  std::pair<absl::Time, Id> First() const;

 private:
  std::map<std::pair<absl::Time, Id>, absl::AnyInvocable<void()>> pending_;
  absl::flat_hash_map<Id, absl::Time> when_;
  Id next_id_ = 1;
};

}  // namespace spool::core
