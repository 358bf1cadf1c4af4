#include "core/timer_queue.h"

namespace spool::core {

TimerQueue::Id TimerQueue::Add(absl::Time when, absl::AnyInvocable<void()> fn) {
  const Id id = next_id_++;
  pending_.emplace(std::make_pair(when, id), std::move(fn));
  when_[id] = when;
  return id;
}

bool TimerQueue::Cancel(Id id) {
  auto it = when_.find(id);
  if (it == when_.end()) return false;
  pending_.erase({it->second, id});
  when_.erase(it);
  return true;
}

absl::AnyInvocable<void()> TimerQueue::PopDue(absl::Time now) {
  auto first = pending_.begin();
  if (first == pending_.end() || first->first.first > now) return nullptr;
  absl::AnyInvocable<void()> fn = std::move(first->second);
  when_.erase(first->first.second);
  pending_.erase(first);
  return fn;
}

void TimerQueue::Clear() {
  pending_.clear();
  when_.clear();
}

std::pair<absl::Time, TimerQueue::Id> TimerQueue::First() const {
  if (pending_.empty()) return {absl::InfiniteFuture(), 0};
  return pending_.begin()->first;
}

}  // namespace spool::core
