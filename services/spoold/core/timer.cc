#include "core/timer.h"

#include "absl/time/clock.h"

namespace spool::core {

Timer::Timer() : thread_([this] { Run(); }) {}

Timer::~Timer() { Shutdown(); }

absl::Time Timer::Now() { return absl::Now(); }

Timer::Id Timer::Schedule(absl::Time when, absl::AnyInvocable<void()> fn) {
  absl::MutexLock lock(&mu_);
  Id id = next_id_++;
  pending_.emplace(std::make_pair(when, id), std::move(fn));
  when_[id] = when;
  return id;
}

bool Timer::Cancel(Id id) {
  absl::MutexLock lock(&mu_);
  auto it = when_.find(id);
  if (it == when_.end()) return false;
  pending_.erase({it->second, id});
  when_.erase(it);
  return true;
}

void Timer::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      // Already stopped (or stopping on another thread).
    }
    stopping_ = true;
    pending_.clear();
    when_.clear();
  }
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) {
    thread_.join();
  }
}

void Timer::Run() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    if (pending_.empty()) {
      mu_.Await(absl::Condition(
          +[](Timer* t) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return t->stopping_ || !t->pending_.empty();
          },
          this));
      continue;
    }
    auto first = pending_.begin();
    absl::Time when = first->first.first;
    if (absl::Now() < when) {
      // Wakes early when an earlier callback is scheduled or on shutdown.
      size_t size = pending_.size();
      Id first_id = first->first.second;
      struct Args {
        Timer* t;
        size_t size;
        Id first_id;
      } args{this, size, first_id};
      mu_.AwaitWithDeadline(
          absl::Condition(
              +[](Args* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                return a->t->stopping_ || a->t->pending_.empty() ||
                       a->t->pending_.size() != a->size ||
                       a->t->pending_.begin()->first.second != a->first_id;
              },
              &args),
          when);
      continue;
    }
    Id id = first->first.second;
    absl::AnyInvocable<void()> fn = std::move(first->second);
    pending_.erase(first);
    when_.erase(id);
    mu_.Unlock();
    fn();
    mu_.Lock();
  }
}

}  // namespace spool::core
